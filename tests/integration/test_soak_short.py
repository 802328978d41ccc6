"""Scenario: the short fault-injection soak (scripts/soak.py), about 2 minutes: 100
instances at a 100 ms interval against real redis-servers and a real ZooKeeper, with
every fault of the soak's cycle injected (Redis SIGKILL/SIGSTOP, garbage on a Redis port,
auth change, stats socket floods, over-long lines and clients that never read, ZooKeeper
restart, SIGSTOP past the session timeout, forced expiry, external node deletion, SIGHUP
reloads adding and removing instances). After a warm-up cycle, at every quiet checkpoint,
threads, fds, the agent's zk_watches and the server's watch count for its session must be
exactly the baseline's, heap within 256 KiB and RSS within 1 MiB of it; the agent exits 0
at SIGTERM. The long run (1,000,000+ probes) is `scripts/soak.sh`, see docs/leak-safety.md.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))

import harness  # noqa: E402
import soak  # noqa: E402


def sanitized_binary():
    """True for an ASan build: its allocator's quarantine makes RSS meaningless as a leak
    measure there (heap_bytes, threads, fds and watches are still exact)."""
    with open(harness.agent_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def test_short_soak_with_faults(env):
    asan = sanitized_binary()
    o = soak.options(["--duration", "75", "--instances", "100", "--interval-ms", "100",
                      "--timeout-ms", "90" if not asan else "100",
                      "--rss-bound", str(-1 if asan else 1 << 20)])
    s = soak.Soak(env, o)
    summary = s.run()
    print({k: v for k, v in summary.items() if k != "checkpoints"})
    assert summary["ok"], "soak failed: %s" % summary["failures"]
    # It really did what it says: the whole cycle ran, after warm-up, with faults seen.
    assert summary["cycles"] >= 2 and len(summary["checkpoints"]) >= 2
    assert summary["probes_total"] >= 50000
    assert summary["probes_failed"] > 0, "faults injected but no probe failed"
    assert summary["sessions_expired"] >= 2, "forced expiries not seen by the agent"
    assert summary["config_reloads"] >= 4
    assert summary["too_long_answers_ok"] >= 40
    base, final = summary["baseline"], summary["final"]
    for k in ("threads", "fds", "zk_watches", "server_watches"):
        assert final[k] == base[k], (k, base[k], final[k])
    assert final["heap_bytes"] - base["heap_bytes"] <= 256 << 10
    if not asan:
        assert final["rss_bytes"] - base["rss_bytes"] <= 1 << 20
    assert summary["exit_status"] == 0

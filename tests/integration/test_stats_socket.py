"""Scenario: the stats socket under normal use and abuse: every documented field, help,
unknown commands, over-long lines, many idle clients, a client that never reads, and
sentinel-agentctl's exit codes. Probing never stalls meanwhile."""

import json
import re
import socket
import time

import pytest

from harness import StatsClient, instance, proc_fds, proc_threads, wait_until

STATS_FIELDS = [
    "version", "pid", "uptime_s", "threads", "rss_bytes", "heap_bytes", "fds", "instances",
    "probes_total", "probes_ok", "probes_failed", "probes_timeout", "probes_inflight",
    "max_inflight", "probes_skipped", "zk_state", "zk_session_id", "zk_writes_ok",
    "zk_writes_failed", "zk_pending", "zk_watches", "zk_reconnects", "zk_sessions_expired",
    "config_reloads", "config_reload_failures",
]


@pytest.fixture
def agent(env):
    r = env.redis()
    a = env.agent([instance("cache-a", r), instance("cache-b", r, cluster="other")],
                  interval="100ms", timeout="90ms")
    a.wait_instance("cache-a", timeout=5, state="up")
    a.wait_instance("cache-b", timeout=5, state="up")
    return a


def probing_advances(a, times=3, timeout=5.0):
    """Asserts that cache-a's last_check_ms advances TIMES times, asked from fresh clients."""
    seen = [a.instance("cache-a")["last_check_ms"]]

    def advanced():
        v = a.instance("cache-a")["last_check_ms"]
        if v != seen[-1]:
            seen.append(v)
        return len(seen) > times
    wait_until(advanced, timeout=timeout, msg="last_check_ms to advance %d times" % times)


def test_stats_fields(agent, env):
    a = agent
    raw = a.command("stats")
    assert raw.endswith("\n\n") and raw.count("\n") == 2, "one line of JSON then an empty line"
    st = json.loads(raw)
    missing = [f for f in STATS_FIELDS if f not in st]
    assert not missing, "stats lacks %s" % missing
    assert re.fullmatch(r"\d+\.\d+\.\d+", st["version"]), st["version"]
    assert st["pid"] == a.pid
    assert st["uptime_s"] >= 0
    assert st["threads"] >= 1
    assert st["fds"] > 0
    assert st["rss_bytes"] > 0
    assert st["heap_bytes"] > 0
    assert st["instances"] == 2
    assert st["max_inflight"] == 1024
    assert 0 <= st["probes_inflight"] <= 2
    assert st["probes_total"] == st["probes_ok"] + st["probes_failed"]
    assert st["zk_state"] in ("connected", "connecting", "expired", "closed")
    assert st["zk_state"] != "connected"  # hosts is a closed port
    assert isinstance(st["zk_session_id"], str)
    assert re.fullmatch(r"(0x)?[0-9a-fA-F]+", st["zk_session_id"]), st["zk_session_id"]
    for f in ("zk_writes_ok", "zk_writes_failed", "zk_pending", "zk_watches", "zk_reconnects",
              "zk_sessions_expired", "config_reloads", "config_reload_failures",
              "probes_skipped", "probes_timeout"):
        assert isinstance(st[f], int) and st[f] >= 0, (f, st[f])
    assert st["zk_writes_ok"] == 0
    assert st["config_reloads"] == 0 and st["config_reload_failures"] == 0
    # Read from the kernel: they agree with /proc seen from outside (the answering
    # connection and a directory scan may add an fd or two).
    assert st["threads"] == proc_threads(a.pid)
    assert abs(st["fds"] - proc_fds(a.pid)) <= 3, (st["fds"], proc_fds(a.pid))
    assert 0.5 < st["rss_bytes"] / a.rss_bytes() < 2.0
    # uptime grows
    t = st["uptime_s"]
    wait_until(lambda: a.stats()["uptime_s"] > t, timeout=3, msg="uptime_s to grow")


def test_instances_answer(agent):
    raw = agent.command("instances")
    assert raw.endswith("\n\n") and raw.count("\n") == 2
    insts = json.loads(raw)
    assert isinstance(insts, list)
    assert sorted(i["name"] for i in insts) == ["cache-a", "cache-b"]
    by = {i["name"]: i for i in insts}
    assert by["cache-b"]["cluster"] == "other"
    assert by["cache-a"]["cluster"] == "default"


def test_help_lists_commands(agent):
    raw = agent.command("help")
    assert raw.endswith("\n\n")
    for cmd in ("stats", "instances", "metrics"):
        assert re.search(r"\b%s\b" % cmd, raw), "help does not list %s:\n%s" % (cmd, raw)


def test_metrics(agent):
    raw = agent.command("metrics")
    assert raw.endswith("\n\n")
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total",
                 "process_start_time_seconds", "process_threads"):
        assert re.search(r"^%s(\{[^}]*\})? [0-9.e+-]+$" % name, raw, re.M), "no %s" % name
    up = re.search(r'^sentinel_agent_instance_up\{[^}]*name="cache-a"[^}]*\} 1(\.0+)?$', raw, re.M)
    assert up, "no sentinel_agent_instance_up for cache-a = 1"
    assert re.search(r"^sentinel_agent_probes_total\{[^}]*result=", raw, re.M)
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return
    families = {f.name: f for f in text_string_to_metric_families(raw.rstrip("\n") + "\n")}
    assert any(n.startswith("sentinel_agent_") for n in families)


def test_several_commands_on_one_connection(agent):
    with agent.client() as c:
        st = json.loads(c.command("stats"))
        insts = json.loads(c.command("instances"))
        assert st["instances"] == len(insts) == 2
        # Pipelined: two commands in one write, two answers in order.
        c.send("stats\nhelp\n")
        json.loads(c.read_answer().decode())
        assert "instances" in c.read_answer().decode()


def test_unknown_command(agent, env):
    ans = json.loads(agent.command("bogus"))
    assert set(ans) == {"error"}
    assert ans["error"].startswith("unknown command: ") and "bogus" in ans["error"], ans
    # The connection stays usable after an error.
    with agent.client() as c:
        assert "error" in json.loads(c.command("frobnicate now"))
        assert json.loads(c.command("stats"))["pid"] == agent.pid
    r = env.run_ctl("-s", agent.stats_socket, "bogus")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "unknown command" in r.stdout + r.stderr


def test_ctl(agent, env):
    r = env.run_ctl("-s", agent.stats_socket, "stats")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert json.loads(r.stdout)["pid"] == agent.pid
    r = env.run_ctl("-c", agent.conf_path, "instances")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert len(json.loads(r.stdout)) == 2
    r = env.run_ctl("-s", "/nonexistent/stats.sock", "stats")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    # A socket file nobody listens on is "cannot connect" too.
    dead = env.path("dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(dead)
    s.close()
    r = env.run_ctl("-s", dead, "stats")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)


def test_line_too_long(agent):
    with agent.client() as c:
        c.send(b"x" * 2000 + b"\n")
        ans = c.read_answer()
        assert json.loads(ans.decode()) == {"error": "line too long"}
        assert c.wait_eof(timeout=3)
        assert c.buf == b""
    # A long line without its LF yet is cut off the same way, and nothing is lost.
    with agent.client() as c:
        c.send(b"y" * 1500)
        assert json.loads(c.read_answer().decode()) == {"error": "line too long"}
        assert c.wait_eof(timeout=3)
    # Exactly 1024 bytes is still a line (an unknown command, not too long).
    with agent.client() as c:
        ans = json.loads(c.command("z" * 1024))
        assert ans["error"].startswith("unknown command: "), ans
    assert agent.stats()["pid"] == agent.pid
    probing_advances(agent)


def test_many_idle_clients(agent):
    a = agent
    clients = []
    try:
        for _ in range(200):
            try:
                clients.append(StatsClient(a.stats_socket, timeout=5))
            except OSError:
                break
        assert len(clients) >= 150, "could connect only %d clients" % len(clients)
        t_connected = time.monotonic()
        # Probing goes on, and a fresh client still gets answers.
        probing_advances(a, times=5)
        st = a.stats()
        assert st["probes_total"] == st["probes_ok"] + st["probes_failed"]
        assert a.instance("cache-a")["state"] == "up"
        # Some of the idle ones still answer too (those the agent kept).
        alive = 0
        for c in clients[:5]:
            try:
                json.loads(c.command("stats", timeout=3))
                alive += 1
            except (OSError, EOFError):
                pass
        assert alive >= 1
        # Idle clients are closed after 10 s (not much before, not much after).
        idle = clients[5:]

        def all_closed():
            for c in idle:
                if not c.eof:
                    try:
                        c.wait_eof(timeout=0.01)
                    except socket.timeout:
                        return False
            return True
        wait_until(all_closed, timeout=15, interval=0.2, msg="idle clients to be closed")
        elapsed = time.monotonic() - t_connected
        assert 8.0 <= elapsed <= 14.0, "idle clients closed after %.1fs" % elapsed
        probing_advances(a)
    finally:
        for c in clients:
            c.close()


def test_client_that_never_reads(agent):
    a = agent
    hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hog.settimeout(5)
    hog.connect(a.stats_socket)
    try:
        hog.setblocking(False)
        data = b"metrics\n" * 500
        sent = 0
        t_end = time.monotonic() + 5
        while sent < len(data) and time.monotonic() < t_end:
            try:
                sent += hog.send(data[sent:])
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break  # the agent may drop a client that never reads: fine
        peak = [0]

        def check():
            peak[0] = max(peak[0], a.rss_bytes())
            assert peak[0] < 64 << 20, "agent RSS %d bytes" % peak[0]
            return True
        seen = [a.instance("cache-a")["last_check_ms"]]

        def advanced():
            check()
            v = a.instance("cache-a")["last_check_ms"]
            if v != seen[-1]:
                seen.append(v)
            return len(seen) > 10
        wait_until(advanced, timeout=6, msg="probing to advance while a client never reads")
        assert a.stats()["pid"] == a.pid
        check()
    finally:
        hog.close()
    probing_advances(a)
    assert a.rss_bytes() < 64 << 20

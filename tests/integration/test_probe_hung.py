"""Scenario: a hung redis-server (SIGSTOP) goes down with reason `timeout` while another
instance keeps being probed on time; after SIGCONT it is up again."""

import time

from harness import instance, wait_until


def test_sigstop_only_delays_its_own_instance(env):
    hung = env.redis()
    live = env.redis()
    a = env.agent([instance("hung", hung), instance("live", live)],
                  interval="200ms", timeout="100ms", rise=2, fall=2)
    a.wait_instance("hung", timeout=5, state="up")
    a.wait_instance("live", timeout=5, state="up")
    timeouts0 = a.stats()["probes_timeout"]

    mark = a.log_mark()
    hung.sigstop()

    # While the hung instance times out, the live one keeps being probed on schedule.
    seen = []

    def live_advances():
        inst = a.instance("live")
        assert inst["state"] == "up" and inst["consecutive_fail"] == 0, inst
        if not seen or inst["last_check_ms"] != seen[-1]:
            seen.append(inst["last_check_ms"])
        return len(seen) >= 8
    t0 = time.monotonic()
    wait_until(live_advances, timeout=4, interval=0.03,
               msg="live instance's last_check_ms to advance 7 times")
    elapsed = time.monotonic() - t0
    # 7 advances at a 200 ms interval take about 1.4 s; nothing waited on the hung one.
    assert elapsed < 3.0, "live probes were slowed down: %r in %.1fs" % (seen, elapsed)
    assert all(b > a_ for a_, b in zip(seen, seen[1:])), seen

    down = a.wait_instance("hung", timeout=3, state="down")
    assert down["reason"] == "timeout"
    a.wait_log(r"^info instance hung: up -> down \(timeout\)$", timeout=2, since=mark)
    st = a.stats()
    assert st["probes_timeout"] > timeouts0
    assert st["probes_timeout"] <= st["probes_failed"]
    assert st["probes_total"] == st["probes_ok"] + st["probes_failed"]
    # It keeps trying on schedule, one probe at a time, and the live one stays up.
    wait_until(lambda: a.stats()["probes_timeout"] >= st["probes_timeout"] + 3, timeout=3,
               msg="more timeouts while hung")
    assert a.instance("live")["state"] == "up"

    mark = a.log_mark()
    hung.sigcont()
    up = a.wait_instance("hung", timeout=5, state="up")
    assert up["reason"] == "" and up["role"] == "master"
    a.wait_log(r"^info instance hung: down -> up\b", timeout=2, since=mark)
    assert a.instance("live")["state"] == "up"

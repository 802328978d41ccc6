"""Scenario: a fork-held socket. A Redis killed with kill -9 while a BGSAVE child runs: the
child keeps the agent's connection open (no EOF) but says nothing, and the port refuses new
connections. Played by fakeredis.FakeRedis.freeze(). When the first probe on the silent link
times out, the agent also tries a fresh connection; it is refused, so the instance is `down`
at that first timeout -- not `fall` (2) timeouts or another interval later.

Observed from outside: the stats counter `probes_timeout` (the first timeout) and the
instance's state, polled every few ms; down must follow the first timeout within 200 ms, with
exactly one timeout counted. Default settings: interval 1 s, timeout 500 ms, fall 2."""

import time

from fakeredis import fake_redis
from harness import instance, wait_until


def test_fork_held_socket_down_at_first_timeout(env):
    fake = fake_redis(env)
    a = env.agent([instance("forked", fake)], interval="1s", timeout="500ms", rise=2, fall=2)
    a.wait_instance("forked", timeout=10, state="up")
    assert fake.connections == 1

    # Freeze right after a probe completed: the next probe is the first on a silent link.
    check0 = a.instance("forked")["last_check_ms"]
    wait_until(lambda: a.instance("forked")["last_check_ms"] != check0, 3, interval=0.005,
               msg="a probe to complete")
    timeouts0 = a.stats()["probes_timeout"]
    t_freeze = time.monotonic()
    fake.freeze()

    seen = {}

    def observe():
        st = a.stats()
        inst = a.instance("forked")
        now = time.monotonic()
        if st["probes_timeout"] > timeouts0 and "timeout" not in seen:
            seen["timeout"] = now
        if inst["state"] == "down":
            seen["down"] = now
            seen["timeouts"] = a.stats()["probes_timeout"] - timeouts0
            seen["inst"] = inst
            return True
        return False
    wait_until(observe, 6, interval=0.005, msg="forked to go down")
    t_to = seen.get("timeout", seen["down"])
    print("freeze -> first timeout %.0f ms, -> down %.0f ms (down %.0f ms after the first timeout), "
          "%d timeouts, reason %r" % ((t_to - t_freeze) * 1000, (seen["down"] - t_freeze) * 1000,
                                      (seen["down"] - t_to) * 1000, seen["timeouts"], seen["inst"]["reason"]))
    assert seen["down"] - t_to <= 0.2, "down %.0f ms after the first timeout (bound 200 ms)" \
        % ((seen["down"] - t_to) * 1000)
    assert seen["timeouts"] == 1, "%d timeouts counted before down" % seen["timeouts"]
    assert seen["down"] - t_freeze <= 1.0 + 0.5 + 0.3

    # It stays down: every new connect is refused, and the held link is not used again.
    f0 = a.stats()["probes_failed"]
    wait_until(lambda: a.stats()["probes_failed"] >= f0 + 2, 3, msg="more failed probes")
    assert a.instance("forked")["state"] == "down"
    assert fake.connections == 1

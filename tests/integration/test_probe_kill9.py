"""Scenario: a redis-server killed with SIGKILL is down at once (connection refused),
logged as a state change; restarted on the same port it is up again after `rise`
successful probes."""

from harness import instance, wait_until


def test_kill9_then_restart(env):
    r = env.redis()
    other = env.redis()
    a = env.agent([instance("victim", r), instance("bystander", other)],
                  interval="200ms", timeout="150ms", rise=3, fall=2)
    up = a.wait_instance("victim", timeout=5, state="up")
    a.wait_instance("bystander", timeout=5, state="up")

    mark = a.log_mark()
    r.kill9()
    # The agent holds a connection: EOF is immediate, and a refused reconnect is conclusive.
    down = a.wait_instance("victim", timeout=2, state="down")
    assert down["reason"] == "connection refused"
    assert down["role"] == "unknown"
    assert down["since_ms"] > up["since_ms"]
    a.wait_log(r"^info instance victim: up -> down \(connection refused\)$", timeout=2, since=mark)
    assert a.instance("bystander")["state"] == "up"

    # While redis is gone it stays down, and failures are counted.
    failed0 = a.stats()["probes_failed"]
    wait_until(lambda: a.stats()["probes_failed"] >= failed0 + 2, timeout=3,
               msg="failed probes to be counted")
    assert a.instance("victim")["state"] == "down"

    mark = a.log_mark()
    r.restart()

    # Up only after `rise` (3) consecutive successes: while still down, consecutive_ok < 3.
    def observe():
        inst = a.instance("victim")
        if inst["state"] == "down":
            assert inst["consecutive_ok"] < 3, inst
            return None
        return inst
    inst = wait_until(observe, timeout=5, interval=0.01, msg="victim to be up again")
    assert inst["state"] == "up" and inst["reason"] == "" and inst["role"] == "master"
    assert inst["consecutive_ok"] >= 3
    a.wait_log(r"^info instance victim: down -> up\b", timeout=2, since=mark)
    st = a.stats()
    assert st["probes_total"] == st["probes_ok"] + st["probes_failed"]
    assert a.instance("bystander")["state"] == "up"

"""Scenario: peers that are not Redis. A server answering garbage is down with
`protocol error`; a black hole that never answers is down with `timeout`; the agent stays
alive, keeps answering its stats socket and keeps a real Redis up."""

from harness import GarbageServer, instance, pid_alive, wait_until


def test_garbage_and_black_holes(env):
    http = env.garbage_server(GarbageServer.HTTP)
    junk = env.garbage_server(GarbageServer.JUNK)
    hole = env.black_hole(accept=False)
    mute = env.black_hole(accept=True)
    r = env.redis()
    a = env.agent([
        instance("http", http),
        instance("junk", junk),
        instance("hole", hole),
        instance("mute", mute),
        instance("real", r),
    ], interval="200ms", timeout="100ms", rise=2, fall=2)

    for name in ("http", "junk"):
        inst = a.wait_instance(name, timeout=5, state="down")
        assert inst["reason"] == "protocol error", inst
        assert inst["role"] == "unknown"
    for name in ("hole", "mute"):
        inst = a.wait_instance(name, timeout=5, state="down")
        assert inst["reason"] == "timeout", inst
    a.wait_instance("real", timeout=5, state="up")

    # The garbage was actually received and answered, more than once (it keeps trying).
    wait_until(lambda: http.connections >= 2 and junk.connections >= 2, timeout=5,
               msg="the agent to reconnect to the garbage servers")

    # Still alive, still probing, still answering; nothing came back up by accident.
    st0 = a.stats()
    check0 = a.instance("real")["last_check_ms"]
    wait_until(lambda: a.stats()["probes_failed"] >= st0["probes_failed"] + 8, timeout=5,
               msg="failures to keep being counted")
    assert pid_alive(a.pid) and a.running()
    states = {i["name"]: (i["state"], i["reason"]) for i in a.instances()}
    assert states == {
        "http": ("down", "protocol error"),
        "junk": ("down", "protocol error"),
        "hole": ("down", "timeout"),
        "mute": ("down", "timeout"),
        "real": ("up", ""),
    }
    assert a.instance("real")["last_check_ms"] > check0
    st = a.stats()
    assert st["probes_timeout"] > 0
    assert st["probes_total"] == st["probes_ok"] + st["probes_failed"]
    assert "stats" in a.command("help")
    a.wait_log(r"^info instance http: unknown -> down \(protocol error\)$", timeout=1)
    a.wait_log(r"^info instance hole: unknown -> down \(timeout\)$", timeout=1)
    assert a.stop() == 0

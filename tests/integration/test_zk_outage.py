"""Scenario: ZooKeeper down at agent start, restarted within the session, and frozen
(SIGSTOP) longer than 2/3 of the session timeout: probing and the stats socket never
stop, and the nodes are published, kept (same session, same czxid) or rewritten."""

import time

from harness import instance, wait_until
from zk import ZooKeeper, kazoo, node_doc, session_of, zk_agent


def _stats_fast(a):
    t0 = time.monotonic()
    st = a.stats()
    assert time.monotonic() - t0 < 0.5, "stats socket slow while ZooKeeper is out"
    return st


def test_zookeeper_down_at_start(env):
    zk = env.register(ZooKeeper(env.dir, start=False))
    r = env.redis()
    a = zk_agent(env, zk, [instance("c", r)], name="h")
    inst = a.wait_instance("c", timeout=5, state="up")
    assert inst["published"] is False
    st = _stats_fast(a)
    assert st["zk_state"] == "connecting" and session_of(st) == 0
    c0 = inst["last_check_ms"]
    a.wait_instance("c", timeout=3, last_check_ms=lambda v: v > c0 + 500)
    zk.start()
    k = kazoo(env, zk)
    wait_until(lambda: node_doc(k, "/sa/default/c")[0], 10, msg="node published")
    a.wait_instance("c", timeout=3, published=True)
    st = a.stats()
    assert st["zk_state"] == "connected" and st["zk_reconnects"] == 0
    assert node_doc(k, "/sa/agents/h")[0]["instances"] == 1
    assert a.threads() == 3


def test_zookeeper_restart_keeps_session_and_nodes(env):
    zk = env.register(ZooKeeper(env.dir))
    r = env.redis()
    # fall=3: a probe made slow by a loaded machine (ASan) must not rewrite the node; the
    # kill -9 below is still seen at once (a refused connection is conclusive).
    a = zk_agent(env, zk, [instance("c", r)], name="h", session_timeout="6s",
                 interval="200ms", timeout="150ms", rise=1, fall=3)
    k = kazoo(env, zk)
    a.wait_instance("c", timeout=5, published=True)
    sid = session_of(a.stats())
    _, st0 = node_doc(k, "/sa/default/c")
    k.stop()
    zk.restart()
    k = kazoo(env, zk)
    wait_until(lambda: a.stats()["zk_reconnects"] == 1 and a.stats()["zk_state"] == "connected",
               10, msg="agent reconnected")
    st = a.stats()
    assert session_of(st) == sid and st["zk_sessions_expired"] == 0
    doc, st1 = node_doc(k, "/sa/default/c")
    assert st1.czxid == st0.czxid and st1.version == st0.version
    # A change while ZooKeeper is down is written once it is back.
    zk.kill9()
    r.kill9()
    a.wait_instance("c", timeout=3, state="down", published=False)
    _stats_fast(a)
    zk.start()
    wait_until(lambda: (node_doc(k, "/sa/default/c")[0] or {}).get("state") == "down", 10)
    a.wait_instance("c", timeout=3, published=True)
    assert node_doc(k, "/sa/default/c")[1].czxid == st0.czxid
    assert session_of(a.stats()) == sid
    wait_until(lambda: sorted(zk.wchc().get(sid, [])) == ["/sa/agents/h", "/sa/default/c"], 3)
    assert a.threads() == 3


def test_zookeeper_frozen_longer_than_two_thirds_of_timeout(env):
    zk = env.register(ZooKeeper(env.dir))
    r = env.redis()
    a = zk_agent(env, zk, [instance("c", r)], name="h", session_timeout="3s",
                 interval="100ms", timeout="80ms", rise=1, fall=1)
    k = kazoo(env, zk)
    a.wait_instance("c", timeout=5, published=True)
    sid = session_of(a.stats())
    _, st0 = node_doc(k, "/sa/default/c")
    k.stop()
    zk.sigstop()
    t0 = time.monotonic()
    try:
        c0 = a.instance("c")["last_check_ms"]
        # The client gives up the connection after 2/3 of 3 s; probing never waits on it.
        wait_until(lambda: _stats_fast(a)["zk_state"] == "connecting", 4)
        a.wait_instance("c", timeout=2, last_check_ms=lambda v: v > c0 + 1000)
        while time.monotonic() - t0 < 2.5:
            _stats_fast(a)
            time.sleep(0.1)
    finally:
        zk.sigcont()
    k = kazoo(env, zk)
    wait_until(lambda: a.stats()["zk_state"] == "connected", 10)
    st = a.stats()
    assert st["zk_reconnects"] >= 1
    if session_of(st) == sid:
        assert node_doc(k, "/sa/default/c")[1].czxid == st0.czxid
    a.wait_instance("c", timeout=3, published=True)
    assert node_doc(k, "/sa/default/c")[1].ephemeralOwner == session_of(st)
    assert a.threads() == 3

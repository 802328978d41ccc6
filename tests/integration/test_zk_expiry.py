"""Scenario: the agent's session expires (the agent frozen by SIGSTOP longer than its
session timeout): on SIGCONT it opens a new session and re-creates its nodes and watches
at once, with zk_sessions_expired = 1 and the same thread count."""

import time

from harness import instance, wait_until
from zk import kazoo, node_doc, session_of, stop_agent_until_expired, zk_agent, zookeeper


def test_session_expiry_recreates_everything(env):
    zk = zookeeper(env)
    r = env.redis()
    down = "127.0.0.1:%d" % env.closed_port()
    a = zk_agent(env, zk, [instance("c", r, cluster="x"), instance("d", down, cluster="y")],
                 name="h", session_timeout="2s")
    k = kazoo(env, zk)
    a.wait_instance("c", timeout=5, published=True)
    a.wait_instance("d", timeout=5, published=True)
    old = session_of(a.stats())
    threads = a.threads()
    assert threads == 3

    stop_agent_until_expired(a, zk, old)
    t0 = time.monotonic()
    paths = ["/sa/agents/h", "/sa/x/c", "/sa/y/d"]

    def recreated():
        sids = {node_doc(k, p)[1].ephemeralOwner if node_doc(k, p)[1] else None for p in paths}
        return len(sids) == 1 and None not in sids and old not in sids and sids
    sids = wait_until(recreated, 5, interval=0.01, msg="nodes re-created in a new session")
    took = time.monotonic() - t0
    new = sids.pop()
    print("nodes re-created %.0f ms after SIGCONT" % (took * 1000))
    st = a.stats()
    assert st["zk_sessions_expired"] == 1
    assert session_of(st) == new and st["zk_state"] == "connected"
    assert st["zk_reconnects"] >= 1
    assert node_doc(k, "/sa/x/c")[0]["state"] == "up"
    assert node_doc(k, "/sa/y/d")[0]["state"] == "down"
    a.wait_instance("c", timeout=2, published=True)
    wait_until(lambda: a.stats()["zk_watches"] == 3, 2)
    wait_until(lambda: sorted(zk.wchc().get(new, [])) == paths, 3)
    assert old not in zk.wchc()
    assert a.threads() == threads
    assert "expired" in a.log()
    # The agent keeps working on the new session: a deleted node comes back.
    k.delete("/sa/x/c")
    wait_until(lambda: node_doc(k, "/sa/x/c")[0], 1.0, interval=0.005)
    assert a.stop() == 0

"""Scenario: a reload (SIGHUP) that drops an instance deletes its node (and its watch), one
that adds an instance publishes it, and the agent node's instance count follows; a reload
that changes the ZooKeeper settings moves every node to a new session."""

import signal
import time

from harness import instance, wait_until
from zk import kazoo, node_doc, session_of, zk_agent, zookeeper


def test_reload_adds_and_removes_nodes(env):
    zk = zookeeper(env)
    r = env.redis()
    down = "127.0.0.1:%d" % env.closed_port()
    a = zk_agent(env, zk, [instance("keep", r), instance("gone", down, cluster="y")], name="h")
    k = kazoo(env, zk)
    a.wait_instance("keep", timeout=5, published=True)
    a.wait_instance("gone", timeout=5, published=True)
    sid = session_of(a.stats())
    _, keep0 = node_doc(k, "/sa/default/keep")

    a.instances_conf = [instance("keep", r), instance("new", r, cluster="z")]
    a.write_config()
    a.signal(signal.SIGHUP)
    wait_until(lambda: k.exists("/sa/y/gone") is None, 3, msg="removed instance's node deleted")
    wait_until(lambda: node_doc(k, "/sa/z/new")[0], 5, msg="added instance published")
    wait_until(lambda: node_doc(k, "/sa/agents/h")[0]["instances"] == 2, 3)
    assert node_doc(k, "/sa/default/keep")[1].czxid == keep0.czxid
    a.wait_instance("new", timeout=3, published=True)
    wait_until(lambda: a.stats()["zk_watches"] == 3, 3)
    wait_until(lambda: sorted(zk.wchc().get(sid, [])) ==
               ["/sa/agents/h", "/sa/default/keep", "/sa/z/new"], 3)
    assert session_of(a.stats()) == sid

    # New ZooKeeper settings (another root): a new session; the old nodes vanish.
    a.zookeeper["root"] = "/sa2"
    a.write_config()
    a.signal(signal.SIGHUP)
    wait_until(lambda: node_doc(k, "/sa2/default/keep")[0] and node_doc(k, "/sa2/z/new")[0]
               and node_doc(k, "/sa2/agents/h")[0], 5, msg="nodes under the new root")
    for p in ("/sa/default/keep", "/sa/z/new", "/sa/agents/h"):
        assert k.exists(p) is None
    new = session_of(a.stats())
    assert new != sid
    wait_until(lambda: sid not in zk.session_ids(), 3, msg="old session closed")
    wait_until(lambda: a.threads() == 3, 3, msg="the old session's threads gone")


def test_moving_away_from_a_frozen_zookeeper_blocks_nothing(env):
    """The old session is closed off the loop: zookeeper_close() waits for a server that
    may not answer, and meanwhile the agent keeps answering and publishing to the new one."""
    old_zk, new_zk = zookeeper(env), zookeeper(env, name="zk2")
    r = env.redis()
    a = zk_agent(env, old_zk, [instance("c", r)], name="h")
    a.wait_instance("c", timeout=5, published=True)
    k = kazoo(env, new_zk)
    old_zk.sigstop()
    try:
        a.zookeeper["hosts"] = new_zk.hosts
        a.write_config()
        mark = a.log_mark()
        a.signal(signal.SIGHUP)
        a.wait_log("settings changed: opening a new session", timeout=3, since=mark)
        t0 = time.monotonic()
        st = a.stats()
        answered = time.monotonic() - t0
        print("stats answered %.0f ms after the reload" % (answered * 1000))
        assert answered < 0.5
        wait_until(lambda: node_doc(k, "/sa/default/c")[0], 1.0, interval=0.01,
                   msg="published to the new ZooKeeper while the old one is frozen")
        assert st["config_reloads"] == 1
        assert a.threads() > 3  # the old client's threads and the closer, still waiting
    finally:
        old_zk.sigcont()
    wait_until(lambda: a.threads() == 3, 10, msg="the old session closed, its threads gone")
    a.wait_instance("c", timeout=2, published=True)
    assert session_of(a.stats()) in new_zk.session_ids()
    assert a.stop() == 0

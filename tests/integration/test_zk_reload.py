"""Scenario: a reload (SIGHUP) that drops an instance deletes its node (and its watch), one
that adds an instance publishes it, and the agent node's instance count follows; a reload
that changes the ZooKeeper settings moves every node to a new session."""

import signal

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
    assert new != sid and sid not in zk.session_ids()
    assert a.threads() == 3

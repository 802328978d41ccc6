"""Scenario: the ensemble is wiped (data dir lost) and comes back empty on the same address.

The server then refuses the agent's old session forever without ever expiring it (the
client has seen zxids the new server never had). The agent must not wait forever: after a
few session timeouts without a connection it opens a new session and publishes everything
again under it."""

import shutil

from harness import instance, wait_until
from zk import ZooKeeper, kazoo, node_doc, session_of, zk_agent


def test_wiped_ensemble_gets_a_new_session(env):
    zk = env.register(ZooKeeper(env.dir))
    r = env.redis()
    a = zk_agent(env, zk, [instance("c", r)], name="h", session_timeout="2s")
    a.wait_instance("c", timeout=5, state="up", published=True)
    old_sid = session_of(a.stats())
    assert old_sid != 0
    threads = a.threads()
    # Push the server's zxid well past what an empty server will have.
    k = kazoo(env, zk)
    for i in range(20):
        k.create("/filler-%d" % i, b"x")
    k.stop()

    mark = a.log_mark()
    zk.kill9()
    shutil.rmtree(zk.data_dir)
    zk.start()

    k = kazoo(env, zk)
    # 3 session timeouts (6 s) of refusals, then a new session and the nodes again.
    wait_until(lambda: node_doc(k, "/sa/default/c")[0] is not None, 20, interval=0.1,
               msg="node re-published on the wiped ensemble")
    # it was the give-up path, not an expiry the server announced
    a.wait_log(r"warn zookeeper: not connected for \d+s: giving up session 0x%x" % old_sid,
               since=mark)
    doc, st = node_doc(k, "/sa/default/c")
    assert doc["state"] == "up" and doc["agent"] == "h"
    stats = a.stats()
    new_sid = session_of(stats)
    assert new_sid not in (0, old_sid)
    assert st.ephemeralOwner == new_sid
    assert node_doc(k, "/sa/agents/h")[0]["instances"] == 1
    assert stats["zk_state"] == "connected"
    assert a.instance("c")["published"] is True
    # the old handle's threads were closed: the count is where it was
    assert a.threads() == threads

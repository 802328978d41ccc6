"""Scenario: a replica's broken link is published. The master of a replica is killed
(kill -9): the replica stays `up` (it still answers PING) but its node's `link` leaves
"connected" (ROLE says connect/connecting) within one interval plus a margin of Redis saying
so, with `master` unchanged; when the master is back, `link` "connected" is published again
just as fast. A consumer that needs fresh data skips a replica whose link is not connected.

At the default interval (1 s); measured by an independent kazoo client, times printed."""

import time

from harness import LOOPBACK, instance, wait_until
from zk import kazoo, node_doc, zk_agent, zookeeper

BOUND_S = 1.5  # interval 1 s + margin
NOT_CONNECTED = ("none", "connect", "connecting", "handshake", "sync")


def test_broken_link_published(env):
    zk = zookeeper(env)
    master = env.redis()
    replica = env.redis(replicaof=master)

    def redis_link():
        return replica.client().execute_command("ROLE")[3].decode()

    wait_until(lambda: redis_link() == "connected", 10, msg="the replica's link to be connected")
    a = zk_agent(env, zk, [instance("m", master, cluster="c"), instance("r", replica, cluster="c")],
                 interval="1s", timeout="500ms")
    k = kazoo(env, zk)

    def doc():
        return node_doc(k, "/sa/c/r")[0] or {}

    wait_until(lambda: doc().get("state") == "up" and doc().get("role") == "replica", 10,
               msg="r published up as a replica")
    d = doc()
    master_addr = "%s:%d" % (LOOPBACK, master.port)
    assert (d.get("master"), d.get("link")) == (master_addr, "connected"), d

    master.kill9()
    wait_until(lambda: redis_link() in NOT_CONNECTED, 10, msg="the replica to notice")
    t0 = time.monotonic()
    wait_until(lambda: doc().get("link") in NOT_CONNECTED, 15, interval=0.01,
               msg="r published with its link broken")
    dt = time.monotonic() - t0
    print("broken link published %.0f ms after ROLE said %r" % (dt * 1000, redis_link()))
    d = doc()
    assert d["state"] == "up" and d["role"] == "replica" and d["master"] == master_addr, d
    assert dt <= BOUND_S, "broken link published after %.2f s (bound %.1f s)" % (dt, BOUND_S)
    assert a.instance("r")["link"] in NOT_CONNECTED

    master.start()
    wait_until(lambda: redis_link() == "connected", 10, msg="the replica to reconnect")
    t0 = time.monotonic()
    wait_until(lambda: doc().get("link") == "connected", 15, interval=0.01,
               msg="r published with its link connected again")
    dt = time.monotonic() - t0
    print("restored link published %.0f ms after ROLE said connected" % (dt * 1000))
    assert dt <= BOUND_S, "restored link published after %.2f s (bound %.1f s)" % (dt, BOUND_S)
    assert doc()["state"] == "up"

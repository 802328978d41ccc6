"""Scenario: an operator's switchover (`REPLICAOF NO ONE` on the replica, then `REPLICAOF` on
the old master, at a random phase of the probe interval) is published within one interval
plus a margin, at the default interval of 1 s: ROLE goes with every probe. A plain
REPLICAOF sends nothing to the agent's link, so only probing can see it. The new replica's
node names its new master and, once the link is up, `link` "connected"; a change of
`master` or `link` is written at once too.

Measured by an independent kazoo client polling the znodes; the measured times are printed.
"""

import random
import time

from harness import LOOPBACK, instance, wait_until
from zk import kazoo, node_doc, zk_agent, zookeeper

INTERVAL_S = 1.0
MARGIN_S = 0.5  # a round trip, a ZooKeeper write and this machine's noise


def test_switchover_published_within_interval(env):
    zk = zookeeper(env)
    a_srv = env.redis()
    b_srv = env.redis(replicaof=a_srv)
    wait_until(lambda: b_srv.client().execute_command("ROLE")[3] == b"connected", 10,
               msg="the replica's link to be connected")
    zk_agent(env, zk, [instance("a", a_srv, cluster="c"), instance("b", b_srv, cluster="c")],
                     interval="1s", timeout="500ms", rise=2, fall=2)
    k = kazoo(env, zk)

    def doc(name):
        return node_doc(k, "/sa/c/" + name)[0] or {}

    wait_until(lambda: doc("a").get("role") == "master" and doc("b").get("role") == "replica", 10,
               msg="a published as master and b as replica")

    def switch(new, old, new_name, old_name):
        # A random phase of the probe interval; then the promotion and the demotion, as an
        # orchestrator does them.
        time.sleep(random.uniform(0, INTERVAL_S))
        t0 = time.monotonic()
        new.client().execute_command("REPLICAOF", "NO", "ONE")
        old.client().execute_command("REPLICAOF", LOOPBACK, str(new.port))
        # Wait far longer than the bound, so a failure says how late it was.
        wait_until(lambda: doc(new_name).get("role") == "master", 15, interval=0.01,
                   msg="%s published as master" % new_name)
        t_new = time.monotonic() - t0
        wait_until(lambda: doc(old_name).get("role") == "replica", 15, interval=0.01,
                   msg="%s published as replica" % old_name)
        t_old = time.monotonic() - t0
        print("switchover to %s: promoted node says master after %.0f ms, demoted node says "
              "replica after %.0f ms" % (new_name, t_new * 1000, t_old * 1000))
        bound = INTERVAL_S + MARGIN_S
        assert t_new <= bound, "promoted %s published as master after %.2f s (bound %.2f s)" \
            % (new_name, t_new, bound)
        assert t_old <= bound, "demoted %s published as replica after %.2f s (bound %.2f s)" \
            % (old_name, t_old, bound)
        d = doc(old_name)
        assert d.get("master") == "%s:%d" % (LOOPBACK, new.port), d
        # The link comes up after a sync; the change of `link` alone is written at once.
        wait_until(lambda: new.client().execute_command("ROLE")[2], 10,
                   msg="the new master to list its replica")
        wait_until(lambda: old.client().execute_command("ROLE")[3] == b"connected", 10,
                   msg="the new replica's link to be connected")
        t_link = time.monotonic()
        wait_until(lambda: doc(old_name).get("link") == "connected", 10, interval=0.01,
                   msg="%s published with link connected" % old_name)
        dt = time.monotonic() - t_link
        print("  link connected published %.0f ms after Redis said so" % (dt * 1000))
        assert dt <= bound, "link change published after %.2f s" % dt
        d = doc(new_name)
        assert (d.get("master"), d.get("link")) == ("", ""), d

    switch(b_srv, a_srv, "b", "a")
    switch(a_srv, b_srv, "a", "b")

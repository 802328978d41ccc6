"""Scenario: a rolling restart of a three-server ZooKeeper ensemble, one server at a time,
the followers first and the leader last, as an operator upgrades it (SIGTERM, start,
wait until it serves again). The agent loses no node (a kazoo watcher sees nothing
deleted or re-created; every czxid is unchanged) and no session (same id, no expiry), and
publishes a Redis state change normally once the ensemble is through."""

import re
import time

from harness import instance, wait_until
from zk import NodeWatch, ensemble, kazoo, node_doc, session_of, zk_agent

NAMES = ("a", "b", "c")
PATHS = ["/sa/default/%s" % n for n in NAMES] + ["/sa/agents/h"]


def test_rolling_restart_loses_nothing(env):
    ens = ensemble(env)
    redises = {n: env.redis() for n in NAMES}
    a = zk_agent(env, ens, [instance(n, r) for n, r in redises.items()], name="h",
                 session_timeout="10s")
    for n in NAMES:
        a.wait_instance(n, timeout=10, state="up", published=True)
    sid = session_of(a.stats())
    k = kazoo(env, ens)
    before = {p: node_doc(k, p)[1] for p in PATHS}
    assert all(s is not None and s.ephemeralOwner == sid for s in before.values()), before
    watch = NodeWatch(k, PATHS)
    wait_until(lambda: watch.seen() == set(PATHS), 5, msg="the watcher has seen every node")
    mark = a.log_mark()

    leader = ens.leader()
    order = [s for s in ens.servers if s is not leader] + [leader]
    steps = []
    for s in order:
        t0 = time.monotonic()
        was = s.mode()
        held = ens.holder(sid) is s
        s.stop()
        ens.start_server(s)  # back in the quorum
        wait_until(lambda: a.stats()["zk_state"] == "connected" and ens.holder(sid) is not None,
                   15, msg="the agent connected again after restarting %s" % s.name)
        st = a.stats()
        assert session_of(st) == sid and st["zk_sessions_expired"] == 0, st
        steps.append("%s (%s%s) %.1fs" % (s.name, was, ", held the session" if held else "",
                                         time.monotonic() - t0))
    print("rolling restart: %s; zk_reconnects %d" % (", ".join(steps), a.stats()["zk_reconnects"]))

    redises["a"].kill9()
    wait_until(lambda: (node_doc(k, "/sa/default/a")[0] or {}).get("state") == "down", 5,
               msg="a published down after the rolling restart")
    a.wait_instance("a", timeout=3, published=True)

    st = a.stats()
    assert session_of(st) == sid and st["zk_sessions_expired"] == 0
    assert st["zk_reconnects"] >= 1  # at least the leader's restart dropped every client
    for p, s0 in before.items():
        s1 = node_doc(k, p)[1]
        assert s1 is not None and s1.czxid == s0.czxid and s1.ephemeralOwner == sid, (p, s0, s1)
    assert watch.lost() == []
    log = a.log()[mark:]
    assert not re.search(r"(?i)expired|giving up session|vanished", log), log

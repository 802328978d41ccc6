"""Scenario: a three-server ZooKeeper ensemble loses the server holding the agent's session
(kill -9). The session moves to another server: same session id, no expiry, every node
keeps its czxid and no consumer ever sees one deleted, and a Redis that died meanwhile is
published as down after the move.

The server that dies is a follower, so no election mixes into this scenario (the leader's
death is test_zk_ensemble_leader.py): the client picks its server at random, so an agent
that lands on the leader is restarted until it holds its session on a follower.
(leaderServes=no would do it too, but then the leader answers no four-letter word.)"""

import re
import time

from harness import instance, wait_until
from zk import NodeWatch, ensemble, kazoo, node_doc, session_of, zk_agent

PATHS = ["/sa/default/a", "/sa/default/b", "/sa/agents/h"]


def test_session_moves_when_its_server_dies(env):
    ens = ensemble(env)
    r1, r2 = env.redis(), env.redis()
    # session_timeout 10s: a move takes well under it, so nothing may expire.
    a = zk_agent(env, ens, [instance("a", r1), instance("b", r2)], name="h",
                 session_timeout="10s")
    for attempt in range(10):
        for name in ("a", "b"):
            a.wait_instance(name, timeout=10, state="up", published=True)
        st = a.stats()
        sid = session_of(st)
        assert st["zk_state"] == "connected" and sid != 0
        holder = ens.wait_holder(sid, timeout=5)
        if holder.mode() == "follower":
            break
        assert a.stop() == 0
        a.start()
    else:
        raise AssertionError("the agent never held its session on a follower")
    k = kazoo(env, ens)
    before = {p: node_doc(k, p)[1] for p in PATHS}
    assert all(s is not None and s.ephemeralOwner == sid for s in before.values()), before
    watch = NodeWatch(k, PATHS)
    wait_until(lambda: watch.seen() == set(PATHS), 5, msg="the watcher has seen every node")

    mark = a.log_mark()
    t0 = time.monotonic()
    holder.kill9()
    r1.kill9()  # a state change while the session has no server

    new = ens.wait_holder(sid, timeout=10, exclude=holder)
    t_moved = time.monotonic() - t0
    wait_until(lambda: (node_doc(k, "/sa/default/a")[0] or {}).get("state") == "down", 10,
               msg="a published down after the move")
    t_published = time.monotonic() - t0
    a.wait_instance("a", timeout=3, state="down", published=True)
    print("session 0x%x (agent start %d) moved from %s to %s in %.2fs; a down published "
          "%.2fs after the kill" % (sid, attempt + 1, holder.name, new.name, t_moved, t_published))

    st = a.stats()
    assert session_of(st) == sid, "the session changed: %r" % st
    assert st["zk_sessions_expired"] == 0 and st["zk_state"] == "connected"
    assert st["zk_reconnects"] >= 1
    for p, s0 in before.items():
        s1 = node_doc(k, p)[1]
        assert s1 is not None and s1.czxid == s0.czxid and s1.ephemeralOwner == sid, (p, s0, s1)
    assert node_doc(k, "/sa/default/b")[1].version == before["/sa/default/b"].version
    assert watch.lost() == []
    log = a.log()[mark:]
    assert not re.search(r"(?i)expired|giving up session|vanished", log), log
    # Once the dead server is back, the ensemble is whole and the agent has not moved again
    # for nothing.
    ens.start_server(holder)
    assert session_of(a.stats()) == sid and a.stats()["zk_sessions_expired"] == 0

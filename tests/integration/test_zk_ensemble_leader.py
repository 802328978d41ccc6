"""Scenario: a three-server ZooKeeper ensemble loses its leader (kill -9). The two others
elect a new one; every client connection to them is dropped meanwhile. The agent's session
survives the election (same id, no expiry, every node keeps its czxid, no consumer sees a
node deleted), and Redis state changes made during the election are published once it is
over. The agent may hold its session on the leader itself or on a follower (the client
picks at random); both must end the same way."""

import re
import time

from harness import instance, wait_until
from zk import NodeWatch, ensemble, kazoo, node_doc, session_of, zk_agent

PATHS = ["/sa/default/a", "/sa/default/b", "/sa/default/c", "/sa/agents/h"]


def _state(k, name):
    return (node_doc(k, "/sa/default/" + name)[0] or {}).get("state")


def test_leader_dies_session_survives_election(env):
    ens = ensemble(env)
    r1, r2, r3 = env.redis(), env.redis(), env.redis()
    a = zk_agent(env, ens, [instance("a", r1), instance("b", r2), instance("c", r3)], name="h",
                 session_timeout="10s")
    for name in ("a", "b", "c"):
        a.wait_instance(name, timeout=10, state="up", published=True)
    st = a.stats()
    sid = session_of(st)
    assert st["zk_state"] == "connected" and sid != 0
    k = kazoo(env, ens)
    before = {p: node_doc(k, p)[1] for p in PATHS}
    assert all(s is not None and s.ephemeralOwner == sid for s in before.values()), before
    watch = NodeWatch(k, PATHS)
    wait_until(lambda: watch.seen() == set(PATHS), 5, msg="the watcher has seen every node")

    leader = ens.leader()
    holder = ens.wait_holder(sid, timeout=5)
    mark = a.log_mark()
    t0 = time.monotonic()
    leader.kill9()
    # Changes during the election: one instance dies, another comes back as down -> up later.
    r1.kill9()
    r2.kill9()
    a.wait_instance("a", timeout=3, state="down")
    new_leader = ens.leader(timeout=30)
    t_elected = time.monotonic() - t0
    assert new_leader is not leader
    r2.start()
    wait_until(lambda: _state(k, "a") == "down", 15, msg="a published down after the election")
    t_published = time.monotonic() - t0
    a.wait_instance("b", timeout=10, state="up", published=True)  # down and back up
    wait_until(lambda: _state(k, "b") == "up", 5, msg="b published up again")
    t_b = time.monotonic() - t0
    a.wait_instance("a", timeout=3, state="down", published=True)
    a.wait_instance("c", timeout=3, state="up", published=True)
    assert _state(k, "c") == "up"
    new_holder = ens.wait_holder(sid, timeout=5)
    print("session 0x%x on %s (%s); leader %s killed; %s elected after %.2fs; a down published "
          "%.2fs and b up again %.2fs after the kill; session now on %s"
          % (sid, holder.name, "the leader" if holder is leader else "a follower", leader.name,
             new_leader.name, t_elected, t_published, t_b, new_holder.name))

    st = a.stats()
    assert session_of(st) == sid, "the session changed: %r" % st
    assert st["zk_sessions_expired"] == 0 and st["zk_state"] == "connected"
    assert st["zk_reconnects"] >= 1
    for p, s0 in before.items():
        s1 = node_doc(k, p)[1]
        assert s1 is not None and s1.czxid == s0.czxid and s1.ephemeralOwner == sid, (p, s0, s1)
    assert watch.lost() == []
    log = a.log()[mark:]
    assert not re.search(r"(?i)expired|giving up session|vanished", log), log

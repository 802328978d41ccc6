"""Scenario: two of the three servers of a ZooKeeper ensemble die (the leader and a
follower): the last one has no quorum and serves nobody. They come back before the
session timeout. Probing never stops meanwhile (probes_total keeps growing, the stats
socket answers at once, a Redis that dies is seen down), and once the quorum is back the
agent keeps its session (same id, no expiry, nodes keep their czxid) and ZooKeeper again
holds every instance's current state within 1 s (SPEC: "every node is reconciled within
1 s"). The bound asserted is 5 s, for a loaded machine; the measured time is printed."""

import time

from harness import instance, wait_until
from zk import ensemble, kazoo, node_doc, session_of, zk_agent

PATHS = ["/sa/default/a", "/sa/default/b", "/sa/agents/h"]
OUTAGE_S = 3.0  # from the kill to the restart; the JVMs' start and the election add ~2 s
RECONCILE_BOUND_S = 5.0


def _stats_fast(a):
    t0 = time.monotonic()
    st = a.stats()
    assert time.monotonic() - t0 < 0.5, "stats socket slow while the ensemble has no quorum"
    return st


def test_quorum_lost_and_back_within_session_timeout(env):
    ens = ensemble(env)
    r1, r2 = env.redis(), env.redis()
    a = zk_agent(env, ens, [instance("a", r1), instance("b", r2)], name="h",
                 session_timeout="10s")
    for name in ("a", "b"):
        a.wait_instance(name, timeout=10, state="up", published=True)
    sid = session_of(a.stats())
    k = kazoo(env, ens)
    before = {p: node_doc(k, p)[1] for p in PATHS}
    assert all(s is not None and s.ephemeralOwner == sid for s in before.values()), before
    k.stop()  # a fresh client reads the result; this one's back-off is not under test

    leader = ens.leader()
    victims = [leader, next(s for s in ens.servers if s is not leader)]
    survivor = next(s for s in ens.servers if s not in victims)
    t_kill = time.monotonic()
    for s in victims:
        s.kill9()
    wait_until(lambda: _stats_fast(a)["zk_state"] != "connected", 5,
               msg="the agent to notice that the last server serves nobody")
    assert survivor.mode() is None

    # Probing goes on: every sample sees more probes, and a Redis death is seen at once.
    r1.kill9()
    a.wait_instance("a", timeout=3, state="down", published=False)
    samples = [_stats_fast(a)["probes_total"]]
    while time.monotonic() - t_kill < OUTAGE_S:
        time.sleep(0.5)
        samples.append(_stats_fast(a)["probes_total"])
    assert all(y > x for x, y in zip(samples, samples[1:])), samples
    assert _stats_fast(a)["zk_state"] != "connected"

    for s in victims:
        s.start(wait=False)
    # The moment the quorum is back: a leader and a follower serving.
    wait_until(lambda: sorted(m for m in ens.modes().values() if m) in
               (["follower", "leader"], ["follower", "follower", "leader"]),
               30, interval=0.01, msg="a quorum again")
    t_quorum = time.monotonic()

    def reconciled():
        st = a.stats()
        return (st["zk_state"] == "connected"
                and all(i["published"] for i in a.instances()))
    wait_until(reconciled, 30, interval=0.01, msg="every instance published again")
    t_done = time.monotonic()
    reconcile_s = t_done - t_quorum
    k = kazoo(env, ens)
    doc, st_a = node_doc(k, "/sa/default/a")
    assert doc["state"] == "down" and doc["reason"] == "connection refused", doc
    print("no quorum for %.2fs (%d probes meanwhile); agent reconciled %.3fs after the quorum "
          "returned" % (t_quorum - t_kill, samples[-1] - samples[0], reconcile_s))
    assert reconcile_s < RECONCILE_BOUND_S, (
        "reconciled %.2fs after the quorum returned\n%s" % (reconcile_s, a.log_tail()))

    st = a.stats()
    assert session_of(st) == sid, "the session changed: %r" % st
    assert st["zk_sessions_expired"] == 0 and st["zk_reconnects"] >= 1
    for p, s0 in before.items():
        s1 = node_doc(k, p)[1]
        assert s1 is not None and s1.czxid == s0.czxid and s1.ephemeralOwner == sid, (p, s0, s1)
    assert node_doc(k, "/sa/default/b")[0]["state"] == "up"
    ens.wait_serving()

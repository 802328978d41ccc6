"""Scenario: after a crash (SIGKILL) a restarted agent of the same name takes over its
stale ephemeral nodes at once, without waiting for the old session to expire; a node held
by another agent is a conflict: logged, counted, not overwritten, taken when released."""

import json
import re
import signal
import time

from harness import instance, wait_until
from zk import kazoo, node_doc, session_of, zk_agent, zookeeper


def test_sigkill_restart_takes_over_within_3s(env):
    zk = zookeeper(env)
    r = env.redis()
    a = zk_agent(env, zk, [instance("c", r)], name="h", session_timeout="15s")
    k = kazoo(env, zk)
    a.wait_instance("c", timeout=5, published=True)
    old = session_of(a.stats())
    a.signal(signal.SIGKILL)
    a.wait_exit(5)
    assert node_doc(k, "/sa/default/c")[1].ephemeralOwner == old  # still there, stale
    t0 = time.monotonic()
    a.start()

    def taken():
        owners = {p: (node_doc(k, p)[1].ephemeralOwner if node_doc(k, p)[1] else None)
                  for p in ("/sa/default/c", "/sa/agents/h")}
        return all(o not in (None, old) for o in owners.values()) and owners
    owners = wait_until(taken, 3, interval=0.01, msg="stale nodes taken over")
    took = time.monotonic() - t0
    print("stale nodes taken over %.0f ms after restart" % (took * 1000))
    assert old in zk.session_ids() or True  # the old session may still be alive: no waiting
    new = session_of(a.stats())
    assert set(owners.values()) == {new}
    assert node_doc(k, "/sa/agents/h")[0]["pid"] == a.pid
    assert a.stats()["zk_conflicts"] == 0
    assert "taking over" in a.log()


def test_node_of_another_agent_is_a_conflict(env):
    zk = zookeeper(env)
    r = env.redis()
    other = kazoo(env, zk)
    other.ensure_path("/sa/default")
    theirs = json.dumps({"name": "c", "agent": "someone-else", "state": "up"}).encode()
    other.create("/sa/default/c", theirs, ephemeral=True)
    a = zk_agent(env, zk, [instance("c", r)], name="h")
    a.wait_instance("c", timeout=5, state="up")
    wait_until(lambda: a.stats()["zk_conflicts"] == 1, 3)
    a.wait_log("conflict: /sa/default/c", timeout=2)
    k = kazoo(env, zk)
    assert k.get("/sa/default/c")[0] == theirs
    assert a.instance("c")["published"] is False
    # When the other one lets go, ours appears within 1 s (the watch).
    t0 = time.monotonic()
    other.delete("/sa/default/c")
    wait_until(lambda: (node_doc(k, "/sa/default/c")[0] or {}).get("agent") == "h", 1.0,
               interval=0.005)
    print("taken %.0f ms after release" % ((time.monotonic() - t0) * 1000))
    a.wait_instance("c", timeout=2, published=True)
    assert a.stats()["zk_conflicts"] == 1


def test_takeover_is_one_multi_and_no_node_ever_goes_missing(env):
    """The takeover after a crash is delete(version) + create in one multi per batch: a
    consumer's watches and reads see each node change owner (new czxid), never vanish."""
    import threading

    zk = zookeeper(env)
    r = env.redis()
    names = ["c%d" % i for i in range(6)]
    paths = ["/sa/default/" + n for n in names] + ["/sa/agents/h"]
    a = zk_agent(env, zk, [instance(n, r) for n in names], name="h", session_timeout="15s")
    for n in names:
        a.wait_instance(n, timeout=5, published=True)
    k = kazoo(env, zk)
    before = {p: node_doc(k, p)[1].czxid for p in paths}
    old = session_of(a.stats())

    missing = []  # (what, path) a consumer saw missing
    stop = threading.Event()

    def on_data(path):
        def fn(data, stat, event=None):
            if stat is None and not stop.is_set():
                missing.append(("watch", path, event and event.type))
        return fn
    for p in paths:
        k.DataWatch(p, on_data(p))

    def on_children(children):
        gone = set(names) - set(children)
        if gone and not stop.is_set():
            missing.append(("children", sorted(gone)))
    k.ChildrenWatch("/sa/default", on_children)

    reader = kazoo(env, zk)

    def poll():
        while not stop.is_set():
            for p in paths:
                if reader.exists(p) is None and not stop.is_set():
                    missing.append(("read", p))
    t = threading.Thread(target=poll, daemon=True)
    t.start()

    a.signal(signal.SIGKILL)
    a.wait_exit(5)
    a.start()

    def taken():
        st = {p: node_doc(k, p)[1] for p in paths}
        return all(s is not None and s.ephemeralOwner not in (0, old) for s in st.values()) and st
    st = wait_until(taken, 5, interval=0.01, msg="every stale node taken over")
    time.sleep(0.3)  # let the watches' re-reads finish
    stop.set()
    t.join(5)
    assert not missing, missing[:5]
    new = session_of(a.stats())
    for p in paths:
        assert st[p].ephemeralOwner == new
        assert st[p].czxid != before[p], p  # a new node, not the stale one rewritten
    log = a.log()
    assert re.search(r"took over \d+ nodes of our previous session in one request", log), log
    assert a.stats()["zk_conflicts"] == 0

"""Scenario: nodes that are due together are created (and at shutdown deleted) in multi
requests of up to 128, and a batch that fails because one of its nodes is already there never
loses a node: the stale nodes of a crashed incarnation are taken over, another agent's node is
a conflict, and every other node is published.

ZooKeeper is started only once every instance's state is known, so that the whole set is due
in the same loop iteration, as after a new session."""

import json
import re
import signal

from harness import instance, wait_until
from zk import kazoo, node_doc, session_of, zk_agent, zookeeper

N = 300


def start_late(env, name, instances, zk=None):
    """An agent whose ZooKeeper comes up only after all INSTANCES are up; returns (agent, zk)."""
    zk = zk or zookeeper(env, start=False)
    a = zk_agent(env, zk, instances, name=name, log_level="debug", max_inflight=N)
    wait_until(lambda: all(i["state"] == "up" for i in a.instances()), 10,
               msg="every instance up before ZooKeeper starts")
    zk.start()
    return a, zk


def batch_sizes(text):
    return [int(m) for m in re.findall(r"creating (\d+) nodes in one request\b(?! failed)", text)]


def all_published(a, k, n):
    def done():
        return (len(k.get_children("/sa/default")) == n
                and all(i["published"] for i in a.instances()) and a.stats())
    return done


def test_a_whole_set_is_created_in_batches_of_at_most_128(env):
    r = env.redis()
    names = ["i%03d" % i for i in range(N)]
    a, zk = start_late(env, "h", [instance(n, r) for n in names])
    k = kazoo(env, zk)
    st = wait_until(all_published(a, k, N), 15, msg="all nodes published")
    sid = session_of(st)
    sizes = batch_sizes(a.log())
    print("multi requests: %s" % sizes)
    assert sizes and max(sizes) == 128 and sum(sizes) >= N
    assert len(sizes) <= 4  # 300 nodes and the agent's own: 128 + 128 + 45
    for n in names[::37]:
        doc, stat = node_doc(k, "/sa/default/" + n)
        assert doc["name"] == n and doc["state"] == "up" and doc["agent"] == "h"
        assert stat.ephemeralOwner == sid
    assert st["zk_writes_ok"] == N + 1 and st["zk_writes_failed"] == 0
    wait_until(lambda: a.stats()["zk_watches"] == N + 1, 5)
    wait_until(lambda: len(zk.wchc().get(sid, [])) == N + 1, 5)

    # Shutdown deletes the set the same way: in multi requests of up to 128.
    a.signal(signal.SIGTERM)
    assert a.wait_exit(10) == 0
    assert k.get_children("/sa/default") == []
    deleted = [int(m) for m in re.findall(r"deleted (\d+) nodes in one request", a.log())]
    print("multi deletes: %s" % deleted)
    assert deleted and max(deleted) == 128 and sum(deleted) <= N + 1


def test_failed_batches_take_over_stale_nodes_and_respect_a_conflict(env):
    r = env.redis()
    names = ["i%03d" % i for i in range(N)]
    theirs = json.dumps({"name": "i150", "agent": "someone-else", "state": "up"}).encode()

    # A previous incarnation of "h" crashed and left all of its nodes behind, except i150,
    # which another agent holds. Both clients live on across the restart of the server.
    zk = zookeeper(env)
    old = kazoo(env, zk)
    other = kazoo(env, zk)
    other.create("/sa/default/i150", theirs, ephemeral=True, makepath=True)
    for n in names:
        if n != "i150":
            doc = {"name": n, "agent": "h", "state": "down"}
            old.create("/sa/default/" + n, json.dumps(doc).encode(), ephemeral=True)
    zk.stop()  # so that the agent finds the whole set due when it first connects
    a, zk = start_late(env, "h", [instance(n, r) for n in names], zk)
    k = kazoo(env, zk)

    def settled():
        owners = {}
        for n in names:
            doc, stat = node_doc(k, "/sa/default/" + n)
            owners[n] = stat.ephemeralOwner if stat else None
            if n != "i150" and (doc is None or doc.get("agent") != "h" or doc["state"] != "up"):
                return False
        return owners
    owners = wait_until(settled, 20, interval=0.1, msg="stale nodes taken over")
    sid = session_of(a.stats())
    assert {o for n, o in owners.items() if n != "i150"} == {sid}
    assert k.get("/sa/default/i150")[0] == theirs
    wait_until(lambda: a.stats()["zk_conflicts"] == 1, 5)
    assert a.instance("i150")["published"] is False
    log = a.log()
    assert re.search(r"creating \d+ nodes in one request failed \(node exists\)", log)
    assert "taking over /sa/default/i000" in log
    assert "conflict: /sa/default/i150" in log
    a.signal(signal.SIGTERM)
    assert a.wait_exit(10) == 0

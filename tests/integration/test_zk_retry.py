"""Scenario: a write ZooKeeper refuses (here NoAuth: someone made the cluster's container
read-only) is logged, counted and retried with backoff; once the cause is gone every node is
published without any other event to wake the publisher."""

from kazoo.security import OPEN_ACL_UNSAFE, make_acl

from harness import instance, wait_until
from zk import kazoo, node_doc, zk_agent, zookeeper


def test_refused_creates_are_retried_until_they_succeed(env):
    zk = zookeeper(env)
    r = env.redis()
    admin = kazoo(env, zk)
    admin.ensure_path("/sa")
    admin.create("/sa/default", b"", acl=[make_acl("world", "anyone", read=True, admin=True)])
    names = ["a", "b", "c"]
    a = zk_agent(env, zk, [instance(n, r) for n in names], name="h")
    for n in names:
        a.wait_instance(n, timeout=5, state="up")
    a.wait_log(r"failed: not authenticated \(retry in", timeout=5)
    wait_until(lambda: a.stats()["zk_writes_failed"] >= 1, 3)
    assert not any(i["published"] for i in a.instances())

    admin.set_acls("/sa/default", OPEN_ACL_UNSAFE)
    k = kazoo(env, zk)
    # Backoff: 0.5 s after the first failure, doubling; the creates are retried in time.
    wait_until(lambda: all(i["published"] for i in a.instances()), 10,
               msg="every node published after the ACL was opened")
    for n in names:
        doc, stat = node_doc(k, "/sa/default/" + n)
        assert doc["agent"] == "h" and doc["state"] == "up"
    wait_until(lambda: a.stats()["zk_watches"] == len(names) + 1, 3)

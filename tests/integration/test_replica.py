"""Scenario: a master and its replica are reported with their roles."""

from harness import instance


def test_master_and_replica_roles(env):
    master = env.redis()
    replica = env.redis(replicaof=master)
    a = env.agent([instance("m", master, cluster="c1"), instance("r", replica, cluster="c1")])
    m = a.wait_instance("m", timeout=5, state="up")
    r = a.wait_instance("r", timeout=5, state="up")
    assert m["role"] == "master"
    assert r["role"] == "replica"
    assert m["reason"] == "" and r["reason"] == ""

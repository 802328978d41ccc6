"""Scenario: an instance against a live redis-server is reported up, as a master, with
a latency, and its probe counters grow consistently."""

import harness
from harness import instance, wait_until

INSTANCE_FIELDS = {"name", "cluster", "address", "state", "role", "since_ms", "last_check_ms",
                   "latency_us", "consecutive_ok", "consecutive_fail", "reason", "published"}


def test_live_redis_is_up_master(env):
    r = env.redis()
    t0 = harness.now_ms()
    a = env.agent([instance("cache-a", r, cluster="cache")])

    inst = a.wait_instance("cache-a", timeout=5, state="up")
    assert INSTANCE_FIELDS <= set(inst), "missing fields: %s" % (INSTANCE_FIELDS - set(inst))
    assert inst["role"] == "master"
    assert inst["reason"] == ""
    assert inst["latency_us"] > 0
    assert inst["cluster"] == "cache"
    assert inst["address"] == r.address
    assert inst["consecutive_ok"] >= 1 and inst["consecutive_fail"] == 0
    assert t0 - 1000 <= inst["since_ms"] <= harness.now_ms() + 1000
    assert inst["since_ms"] <= inst["last_check_ms"] <= harness.now_ms() + 1000
    # ZooKeeper is unreachable here, so nothing can be published.
    assert inst["published"] is False

    st = a.stats()
    assert st["instances"] == 1
    assert st["probes_ok"] >= 1

    # probes_ok keeps growing, and every snapshot is self-consistent.
    first_ok = st["probes_ok"]
    first_check = inst["last_check_ms"]

    def grown():
        s = a.stats()
        assert s["probes_total"] == s["probes_ok"] + s["probes_failed"], s
        return s if s["probes_ok"] >= first_ok + 3 else None
    st = wait_until(grown, timeout=5, msg="probes_ok to grow by 3")
    assert st["probes_failed"] == 0
    assert st["probes_timeout"] == 0
    inst = a.instance("cache-a")
    assert inst["state"] == "up" and inst["last_check_ms"] > first_check


def test_default_cluster_and_state_logged(env):
    r = env.redis()
    a = env.agent([instance("plain", r)])
    inst = a.wait_instance("plain", timeout=5, state="up")
    assert inst["cluster"] == "default"
    # The first conclusive result is a state change, logged at info.
    a.wait_log(r"^info instance plain: unknown -> up\b", timeout=2)

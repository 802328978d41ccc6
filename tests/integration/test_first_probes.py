"""Scenario: first probes at once. An agent with `interval = 10s` publishes every instance
(up or down) right after its ZooKeeper session starts, not spread over the first 10 s:
every instance node's ctime is within 1 s of the agent node's (the benchmark's target is
500 ms); instances a reload (SIGHUP) adds are published within 1.5 s of the reload. The
spread rounds come after: the agent does not probe everything every few hundred ms.

30 instances on 3 redis-servers plus 2 closed ports; the ctimes are ZooKeeper's own."""

import signal
import time

from harness import free_port, instance, wait_until
from zk import kazoo, zk_agent, zookeeper

BOUND_MS = 1000


def _instances(servers, dead_ports, prefix, n):
    out = [instance("%s%02d" % (prefix, i), servers[i % len(servers)], cluster="c") for i in range(n)]
    out += [instance("%sdead%d" % (prefix, j), "127.0.0.1:%d" % p, cluster="c")
            for j, p in enumerate(dead_ports)]
    return out


def test_interval_10s_publishes_all_at_once(env):
    zk = zookeeper(env)
    servers = [env.redis() for _ in range(3)]
    dead = [free_port(), free_port()]
    insts = _instances(servers, dead, "i", 30)
    k = kazoo(env, zk)
    a = zk_agent(env, zk, insts, interval="10s", timeout="500ms", rise=2, fall=2)
    names = [i["name"] for i in insts]

    def all_nodes():
        if not k.exists("/sa/c"):
            return None
        kids = set(k.get_children("/sa/c"))
        return kids if kids >= set(names) else None

    t0 = time.monotonic()
    try:
        wait_until(all_nodes, 15, interval=0.02, msg="all 32 nodes")
    except AssertionError:
        have = set(k.get_children("/sa/c")) if k.exists("/sa/c") else set()
        raise AssertionError("after 15 s, %d of 32 nodes published" % len(have & set(names)))
    print("all nodes seen %.0f ms after the agent's stats socket answered" % ((time.monotonic() - t0) * 1000))
    agent_ctime = k.get("/sa/agents/%s" % a.label)[1].ctime
    lags = sorted(k.get("/sa/c/" + n)[1].ctime - agent_ctime for n in names)
    print("node ctime - agent node ctime (ms): min %d, median %d, max %d"
          % (lags[0], lags[len(lags) // 2], lags[-1]))
    assert lags[-1] <= BOUND_MS, "last node created %d ms after the agent node (bound %d ms): %r" \
        % (lags[-1], BOUND_MS, lags)
    for n in names:
        want = "down" if "dead" in n else "up"
        assert a.instance(n)["state"] == want

    # Then the rounds: 32 instances at 10 s make about 3 probes a second, not a storm.
    p0 = a.stats()["probes_total"]
    t1 = time.monotonic()
    wait_until(lambda: time.monotonic() - t1 >= 2.0, 3, interval=0.1)
    rate = (a.stats()["probes_total"] - p0) / (time.monotonic() - t1)
    # downinter (250 ms) applies to the 2 dead ones: 8/s; the 30 live ones: 3/s.
    assert rate <= 20, "probing at %.1f/s after the first round" % rate


def test_reload_adds_instances_probed_at_once(env):
    zk = zookeeper(env)
    servers = [env.redis() for _ in range(2)]
    k = kazoo(env, zk)
    first = _instances(servers, [], "old", 5)
    a = zk_agent(env, zk, first, interval="10s", timeout="500ms")
    wait_until(lambda: k.exists("/sa/c") and len(k.get_children("/sa/c")) == 5, 15,
               msg="the first 5 nodes")
    added = _instances(servers, [free_port()], "new", 20)
    a.instances_conf = first + added
    a.write_config()
    t0 = time.monotonic()
    a.signal(signal.SIGHUP)
    names = set(i["name"] for i in added)
    try:
        wait_until(lambda: set(k.get_children("/sa/c")) >= names, 15, interval=0.02,
                   msg="the 21 added nodes")
    except AssertionError:
        raise AssertionError("after 15 s, %d of 21 added nodes published"
                             % len(set(k.get_children("/sa/c")) & names))
    dt = time.monotonic() - t0
    print("21 added instances published %.0f ms after SIGHUP" % (dt * 1000))
    assert dt <= 1.5, "added instances published %.2f s after the reload (bound 1.5 s)" % dt
    assert a.stats()["config_reloads"] == 1

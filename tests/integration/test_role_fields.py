"""Scenario: ROLE fills the status document. A master with one replica and a replica of it
are published with `role`, `master` ("host:port" for a replica, "" otherwise), `link` (the
replica's link state as ROLE says it, "" otherwise) and `replicas` (ROLE's replica count for
a master, 0 otherwise); the stats socket's `instances` objects carry the same four fields.
A Redis Sentinel (redis-server --sentinel) is published with role `sentinel`."""

import os
import subprocess

from harness import LOOPBACK, REDIS_SERVER, child_env, free_port, instance, wait_until
from zk import kazoo, node_doc, zk_agent, zookeeper

DOC_FIELDS = {"name", "cluster", "address", "agent", "state", "role", "master", "link",
              "replicas", "since_ms", "latency_us", "reason"}


class SentinelProcess:
    """A redis-server in sentinel mode monitoring nothing (cleanup() for the Env)."""

    def __init__(self, env):
        self.port = free_port()
        d = env.path("sentinel")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind %s\ndaemonize no\ndir %s\nlogfile %s/sentinel.log\n"
                    % (self.port, LOOPBACK, d, d))
        self.proc = subprocess.Popen([REDIS_SERVER, conf, "--sentinel"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=child_env())
        self.address = "%s:%d" % (LOOPBACK, self.port)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_role_master_link_replicas(env):
    zk = zookeeper(env)
    master = env.redis()
    replica = env.redis(replicaof=master)
    wait_until(lambda: replica.client().execute_command("ROLE")[3] == b"connected", 10,
               msg="the replica's link to be connected")
    # The replica says "connected" a moment before the master lists it (ROLE shows online
    # replicas only), and a replica count alone is never written: wait for both sides.
    wait_until(lambda: len(master.client().execute_command("ROLE")[2]) == 1, 10,
               msg="the master to list its replica")
    sentinel = env.register(SentinelProcess(env))
    a = zk_agent(env, zk, [instance("m", master, cluster="c1"),
                           instance("r", replica, cluster="c1"),
                           instance("s", sentinel.address, cluster="c1")],
                 interval="200ms", timeout="150ms")
    k = kazoo(env, zk)

    def published(name, **want):
        def check():
            doc, _ = node_doc(k, "/sa/c1/" + name)
            if doc is None:
                return None
            return doc if all(doc.get(f) == v for f, v in want.items()) else None
        try:
            return wait_until(check, 5, msg="node %s to have %r" % (name, want))
        except AssertionError as e:
            raise AssertionError("%s; node now: %r" % (e, node_doc(k, "/sa/c1/" + name)[0]))

    m = published("m", state="up", role="master")
    r = published("r", state="up", role="replica")
    s = published("s", state="up")

    assert set(m) == DOC_FIELDS, "document fields: %r" % sorted(m)
    assert set(r) == DOC_FIELDS, "document fields: %r" % sorted(r)
    assert (m["master"], m["link"], m["replicas"]) == ("", "", 1), m
    assert (r["master"], r["link"], r["replicas"]) == ("%s:%d" % (LOOPBACK, master.port),
                                                       "connected", 0), r
    assert s["role"] == "sentinel", s
    assert (s["master"], s["link"], s["replicas"]) == ("", "", 0), s

    # The stats socket says the same.
    insts = {i["name"]: i for i in a.instances()}
    for name, doc in (("m", m), ("r", r), ("s", s)):
        got = {f: insts[name].get(f) for f in ("role", "master", "link", "replicas")}
        assert got == {f: doc[f] for f in got}, (name, insts[name])

    # A second replica: `replicas` follows in the stats answer (a count change alone writes
    # nothing to ZooKeeper, so the node may keep 1).
    # Redis 7 waits repl-diskless-sync-delay (5 s) before it syncs a new replica and lists it:
    # wait for the master to say 2, then the agent must follow within a few probes.
    replica2 = env.redis(replicaof=master)
    wait_until(lambda: len(master.client().execute_command("ROLE")[2]) == 2, 15,
               msg="the master to list its second replica")
    a.wait_instance("m", timeout=2, replicas=2)
    assert replica2.ping()

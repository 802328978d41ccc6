"""Scenario: `sentinel-agentctl cluster`, the fleet view read from ZooKeeper. Two agents
(different names) publish to one ZooKeeper: a master and its replica in cluster c1, one
more Redis in c2. The ctl shows every instance with its agent, state and role, as JSON in
a pipe and as a table on a terminal; filters by cluster; --watch prints a new view when a
Redis dies; an unreachable ZooKeeper is exit 3 within the connect timeout."""

import json
import os
import select
import signal
import subprocess
import time

import pytest

from ctltest import run_ctl_pty
from harness import Env, child_env, ctl_bin, instance, wait_until
from zk import zk_agent, zookeeper

ROOT = "/sa"


@pytest.fixture(scope="module")
def world():
    """One ZooKeeper, three Redis servers and two agents for the whole file (starting
    ZooKeeper costs seconds)."""
    env = Env()
    try:
        zk = zookeeper(env)
        master = env.redis()
        replica = env.redis(replicaof=master)
        victim = env.redis()
        a = zk_agent(env, zk, [instance("m", master, cluster="c1"),
                               instance("v", victim, cluster="c2")], root=ROOT, name="host-a")
        b = zk_agent(env, zk, [instance("r", replica, cluster="c1")], root=ROOT,
                     name="host-b")
        w = {"env": env, "zk": zk, "a": a, "b": b, "victim": victim, "master": master}

        def all_published():
            docs = cluster_json(w)
            return (len(docs) == 3 and all(d["state"] == "up" for d in docs) and
                    any(d["name"] == "r" and d["link"] == "connected" for d in docs) and docs)
        wait_until(all_published, timeout=15, interval=0.1,
                   msg="3 documents up in ZooKeeper, the replica's link connected")
        yield w
    finally:
        env.cleanup()


def cluster_json(w, *args):
    r = w["env"].run_ctl("-c", w["a"].conf_path, "cluster", *args)
    assert r.returncode == 0, r
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1, r.stdout
    return json.loads(r.stdout)


def test_json_rows_per_instance(world):
    docs = cluster_json(world)
    by = {(d["cluster"], d["name"]): d for d in docs}
    assert set(by) == {("c1", "m"), ("c1", "r"), ("c2", "v")}, docs
    assert [(d["cluster"], d["name"]) for d in docs] == sorted(by), "sorted by cluster, name"
    assert by[("c1", "m")]["agent"] == "host-a" and by[("c2", "v")]["agent"] == "host-a"
    assert by[("c1", "r")]["agent"] == "host-b"
    assert by[("c1", "m")]["role"] == "master" and by[("c1", "r")]["role"] == "replica"
    for d in docs:
        assert d["state"] == "up" and d["reason"] == "" and d["since_ms"] > 0, d
    # The replica's master and link, as its ROLE says; a master has neither.
    r, m = by[("c1", "r")], by[("c1", "m")]
    assert r["master"] == "127.0.0.1:%d" % world["master"].port and r["link"] == "connected", r
    # (its replicas count is not asserted: a count alone causes no write, SPEC)
    assert m["master"] == "" and m["link"] == "", m


def test_filter_by_cluster(world):
    docs = cluster_json(world, "c2")
    assert [(d["cluster"], d["name"]) for d in docs] == [("c2", "v")]
    assert cluster_json(world, "no-such-cluster") == []


def test_zookeeper_named_on_the_command_line(world):
    # An operator who cannot read the config names ZooKeeper and the root.
    r = world["env"].run_ctl("-z", world["zk"].hosts, "-r", ROOT, "cluster", "c1")
    assert r.returncode == 0, r
    assert sorted(d["name"] for d in json.loads(r.stdout)) == ["m", "r"]


def test_table_on_a_terminal(world):
    t = run_ctl_pty("-c", world["a"].conf_path, "cluster", cols=200)
    assert t.returncode == 0, t
    lines = t.stdout.splitlines()
    assert lines[0].split() == ["CLUSTER", "NAME", "ADDRESS", "AGENT", "STATE", "ROLE",
                                "MASTER", "LINK", "SINCE", "REASON"], t.stdout
    rows = {(ln.split()[0], ln.split()[1]): ln.split() for ln in lines[1:]}
    assert set(rows) == {("c1", "m"), ("c1", "r"), ("c2", "v")}, t.stdout
    assert rows[("c1", "r")][3:6] == ["host-b", "up", "replica"], t.stdout
    assert rows[("c1", "m")][3:6] == ["host-a", "up", "master"], t.stdout
    assert rows[("c1", "r")][6:8] == ["127.0.0.1:%d" % world["master"].port, "connected"], t.stdout
    assert all(ln.endswith("ago  -") for ln in lines[1:]), t.stdout  # SINCE, empty REASON
    assert t.stderr == "", t


def test_unreachable_zookeeper_exit_3(world):
    env = world["env"]
    conf = env.write("nozk.conf", "[agent]\nstats_socket = %s\n[zookeeper]\nhosts = "
                     "127.0.0.1:%d\nroot = /sa\n" % (env.path("x.sock"), env.closed_port()))
    t0 = time.monotonic()
    r = env.run_ctl("-c", conf, "cluster")
    elapsed = time.monotonic() - t0
    assert r.returncode == 3, r
    assert r.stdout == ""
    assert "ZooKeeper" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert elapsed < 8, elapsed  # the 5 s connect timeout, plus start-up
    r = env.run_ctl("-c", conf, "cluster", "--watch", timeout=15)
    assert r.returncode == 3, r


def test_watch_prints_a_new_view_when_redis_dies(world):
    """Last in the file: it kills the Redis of instance v."""
    p = subprocess.Popen([ctl_bin(), "-c", world["a"].conf_path, "cluster", "--watch"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=child_env())
    buf = b""

    def next_view(timeout):
        nonlocal buf
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            assert left > 0, "no new view within %.0fs (got %r)" % (timeout, buf)
            r, _, _ = select.select([p.stdout], [], [], left)
            if r:
                chunk = os.read(p.stdout.fileno(), 65536)
                assert chunk, "ctl exited: %r" % p.stderr.read()
                buf += chunk
        line, buf = buf.split(b"\n", 1)
        return {(d["cluster"], d["name"]): d for d in json.loads(line)}

    try:
        first = next_view(10)
        assert first[("c2", "v")]["state"] == "up", first
        world["victim"].kill9()
        view = next_view(10)
        while view[("c2", "v")]["state"] != "down":
            view = next_view(10)
        assert view[("c1", "m")]["state"] == "up"
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()

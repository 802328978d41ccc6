"""Scenario: the agent's own faults are not Redis failures.

- `probes_agent_errors` is a `stats` field (0 on a healthy agent) and a Prometheus counter in
  `metrics`, named `sentinel_agent_probes_agent_errors_total` (TYPE counter, no labels).
- An agent whose soft open-files limit is lowered while it runs (prlimit --pid) and which is
  then reloaded with many more instances publishes no running Redis as `down`: an EMFILE
  while opening a link changes no state and writes nothing (counted in
  `probes_agent_errors`), whether the agent re-raises its soft limit or not. Every node that
  exists says `up` and was never rewritten (version 0 for the added ones), and an
  independent kazoo data watch on every node never sees `down`. The stats socket keeps
  answering (an agent that re-raises its soft limit at reload, or keeps fds in reserve for
  its own sockets, does).
- Its hard limit lowered below what the reload needs (instances + 64): the reload is
  refused with the reason logged naming RLIMIT_NOFILE; the old instances keep running.

60 instances on 3 redis-servers."""

import signal
import subprocess
import threading
import time

from harness import instance, wait_until
from zk import kazoo, node_doc, zk_agent, zookeeper

METRIC = "sentinel_agent_probes_agent_errors_total"


def prlimit(pid, soft, hard):
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (soft, hard)], check=True)


def _farm(env, n):
    servers = [env.redis() for _ in range(3)]
    return [instance("i%02d" % i, servers[i % 3], cluster="c") for i in range(n)]


def _stats(a):
    return wait_until(lambda: a.stats(), 10, interval=0.1, msg="the stats socket to answer")


def test_counter_in_stats_and_metrics(env):
    r = env.redis()
    a = env.agent([instance("x", r)])
    a.wait_instance("x", state="up")
    st = a.stats()
    assert st.get("probes_agent_errors") == 0, "stats lacks probes_agent_errors: %r" % sorted(st)
    text = a.metrics()
    assert "# TYPE %s counter" % METRIC in text, "no counter %s in metrics" % METRIC
    assert "\n%s 0\n" % METRIC in text, [ln for ln in text.splitlines() if "agent_errors" in ln]


class Watches:
    """Independent kazoo data watches on a set of node paths, recording every state seen."""

    def __init__(self, k, paths):
        self.seen = {p: [] for p in paths}
        self.lock = threading.Lock()
        for p in paths:
            k.DataWatch(p, self._cb(p))

    def _cb(self, path):
        import json

        def cb(data, stat, event=None):
            if data:
                with self.lock:
                    self.seen[path].append(json.loads(data.decode()).get("state"))
        return cb

    def downs(self):
        with self.lock:
            return sorted(p for p, states in self.seen.items() if "down" in states)


def _start(env, first):
    zk = zookeeper(env)
    k = kazoo(env, zk)
    a = zk_agent(env, zk, first, interval="500ms", timeout="300ms")
    wait_until(lambda: all((node_doc(k, "/sa/c/" + i["name"])[0] or {}).get("state") == "up"
                           for i in first), 10, msg="the first instances published up")
    return k, a


def test_soft_limit_lowered_then_reload_publishes_no_down(env):
    everything = _farm(env, 60)
    first = everything[:10]
    k, a = _start(env, first)
    versions = {i["name"]: node_doc(k, "/sa/c/" + i["name"])[1].version for i in first}
    watches = Watches(k, ["/sa/c/" + i["name"] for i in everything])

    fds = a.fds()
    hard = int(open("/proc/%d/limits" % a.pid).read().split("Max open files")[1].split()[1])
    prlimit(a.pid, fds + 4, hard)
    print("agent holds %d fds; soft limit lowered to %d (hard %d)" % (fds, fds + 4, hard))
    st0 = _stats(a)
    a.instances_conf = everything
    a.write_config()
    a.signal(signal.SIGHUP)
    wait_until(lambda: _stats(a)["config_reloads"] == st0["config_reloads"] + 1, 10,
               msg="the reload to be applied")
    # Watch the nodes for 3 s (every added instance meets the limit many times meanwhile:
    # interval 500 ms, downinter 250 ms); a down seen ends the window at once.
    t0 = time.monotonic()
    wait_until(lambda: watches.downs() or time.monotonic() - t0 >= 3.0, 5, interval=0.05)
    assert watches.downs() == [], "published down: %r" % watches.downs()
    st = _stats(a)
    insts = {i["name"]: i for i in a.instances()}
    downs = sorted(n for n, i in insts.items() if i["state"] == "down")
    assert downs == [], "probed down: %r" % [(n, insts[n]["reason"]) for n in downs[:5]]
    up = [n for n, i in insts.items() if i["state"] == "up"]
    print("after the reload: %d of 60 up, probes_agent_errors %s" % (len(up), st.get("probes_agent_errors")))
    assert len(up) == 60 or st.get("probes_agent_errors", 0) > 0, st
    for i in everything:
        doc, zst = node_doc(k, "/sa/c/" + i["name"])
        if doc is None:
            continue
        assert doc["state"] == "up", doc
        if i["name"] in versions:
            assert zst.version == versions[i["name"]], (i["name"], zst.version)
        else:
            assert zst.version == 0, "%s rewritten %d times" % (i["name"], zst.version)


def test_hard_limit_lowered_then_reload_refused(env):
    everything = _farm(env, 60)
    first = everything[:10]
    k, a = _start(env, first)
    # 10 + 64 fit under 100; 60 + 64 do not.
    prlimit(a.pid, 100, 100)
    st0 = _stats(a)
    mark = a.log_mark()
    a.instances_conf = everything
    a.write_config()
    a.signal(signal.SIGHUP)
    wait_until(lambda: _stats(a)["config_reload_failures"] + _stats(a)["config_reloads"]
               > st0["config_reload_failures"] + st0["config_reloads"], 10, msg="the reload to end")
    st = _stats(a)
    assert st["config_reload_failures"] == st0["config_reload_failures"] + 1, \
        "the reload was applied (%d instances)" % st["instances"]
    assert st["instances"] == 10
    a.wait_log(r"RLIMIT_NOFILE", timeout=2, since=mark)
    assert all(i["state"] == "up" for i in a.instances())
    assert sorted(k.get_children("/sa/c")) == sorted(i["name"] for i in first)

#!/usr/bin/python3
"""transitions.py -- how fast sentinel-agent publishes the transitions a consumer acts on,
measured from the outside beside Redis Sentinel in the same run.

Each transition is timed from the moment it happens in Redis to the moment an independent
observer sees it: for the agent, a kazoo data watch on the instance's znode (the time its
change notification arrives with a document saying the new state or role); for Sentinel, its
own pub/sub events (+sdown, -sdown, +switch-master). Rows:

  switchover      REPLICAOF NO ONE on the replica + REPLICAOF on the old master at a random
                  phase -> the promoted node says `master` (target: interval + 50 ms, max)
  failover        Sentinel monitors a master with one replica; kill -9 the master -> our
                  node for the promoted replica says `master`, vs Sentinel's +switch-master
  kill9_down      kill -9 -> `down` (+sdown)                      (target: median <= 10 ms)
  restart_up      restart after kill -9 -> `up` (-sdown), from the moment the new Redis
                  accepts connections               (target: median <= 200 ms, max <= 400 ms)
  sigstop_down    SIGSTOP -> `down` (+sdown)  (target: interval + fall x timeout + 50 ms, max)
  sigcont_up      SIGCONT -> `up` (-sdown)                        (target: median <= 20 ms)
  start_n1000     N = 1,000 instances at interval 10 s: last node's ctime - agent node's
                  ctime, i.e. after the session            (target: 500 ms)

The fault rows are seen at once by two agents and Sentinel: the agent at the SPEC defaults
(interval 1 s, timeout 500 ms, rise 2, fall 2) and one at the probe budget of Sentinel's
down-after 500 (interval 500 ms, timeout 250 ms), Sentinel with down-after-milliseconds 500.

Servers come from tests/integration/harness.py and zk.py (imported, not copied); every
process this script starts is registered in one harness.Env and stopped at the end, on an
error, on Ctrl-C or SIGTERM. Raw results: bench/results/transitions-latest.json; a markdown
table is printed on stdout.

    /usr/bin/python3 bench/transitions.py --build build [--reps 12] [--quick]
"""

import argparse
import json
import logging
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402
from harness import LOOPBACK, REDIS_SERVER, child_env, free_port, instance  # noqa: E402
from zk import kazoo, zk_agent, zookeeper  # noqa: E402
from bench import SentinelEvents  # noqa: E402 -- bench/bench.py, beside this file

REDIS_SENTINEL = shutil.which("redis-sentinel")
DEFAULT = dict(interval="1s", timeout="500ms", rise=2, fall=2)
EQUAL = dict(interval="500ms", timeout="250ms", rise=2, fall=2)
DOWN_AFTER_MS = 500


def log(msg):
    print("[transitions %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def wait_for(pred, timeout, what, interval=0.005):
    return harness.wait_until(pred, timeout, interval=interval, msg=what)


def summarize(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "median": round(statistics.median(xs), 1), "max": round(max(xs), 1),
            "min": round(min(xs), 1), "values": [round(x, 1) for x in xs]}


# ------------------------------------------------------------------------- observers

class NodeWatch:
    """An independent kazoo DataWatch on one znode: every document it reports, with the
    monotonic time its callback ran (the change notification plus one read)."""

    def __init__(self, k, path):
        self.path = path
        self.events = []
        self.cond = threading.Condition()
        k.DataWatch(path, self._cb)

    def _cb(self, data, stat, event=None):
        t = time.monotonic()
        doc = json.loads(data.decode()) if data else None
        with self.cond:
            self.events.append((t, doc))
            self.cond.notify_all()

    def current(self):
        with self.cond:
            return self.events[-1][1] if self.events else None

    def wait(self, pred, after, timeout):
        """Time of the first document seen at or after AFTER that satisfies PRED; None if
        none within TIMEOUT. The document current at AFTER counts at AFTER (already true)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                before = [e for e in self.events if e[0] < after]
                if before and before[-1][1] is not None and pred(before[-1][1]):
                    return after
                for t, doc in self.events:
                    if t >= after and doc is not None and pred(doc):
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def state_is(s):
    return lambda d: d.get("state") == s


def role_is(r):
    return lambda d: d.get("state") == "up" and d.get("role") == r


class Sentinel:
    """One redis-sentinel (or redis-server --sentinel) on loopback, registered in ENV."""

    def __init__(self, env, masters, quorum, failover_timeout_ms=3000):
        self.dir = env.path("sentinel%d" % env.next_id())
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        lines = ["port %d" % self.port, "bind %s" % LOOPBACK, "daemonize no", "dir %s" % self.dir,
                 "logfile %s" % os.path.join(self.dir, "sentinel.log"), "protected-mode no"]
        for name, port in masters:
            lines += ["sentinel monitor %s %s %d %d" % (name, LOOPBACK, port, quorum),
                      "sentinel down-after-milliseconds %s %d" % (name, DOWN_AFTER_MS),
                      "sentinel failover-timeout %s %d" % (name, failover_timeout_ms),
                      "sentinel parallel-syncs %s 1" % name]
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        argv = [REDIS_SENTINEL, self.conf] if REDIS_SENTINEL else [REDIS_SERVER, self.conf, "--sentinel"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=child_env(), cwd=self.dir)
        env.register(self)
        import redis
        self.client = redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=2)
        wait_for(lambda: self._ping(), 10, "sentinel to answer PING", 0.01)
        self.events = SentinelEvents(self.port, ("+sdown", "-sdown", "+switch-master"))
        env.register(self.events)

    def _ping(self):
        try:
            return self.client.ping()
        except Exception:  # noqa: BLE001 -- not up yet
            return False

    def replicas_ok(self, name):
        """Replicas Sentinel knows for NAME that it could promote (flags exactly "slave")."""
        out = []
        for r in self.client.execute_command("SENTINEL", "REPLICAS", name):
            d = dict(zip(r[::2], r[1::2])) if isinstance(r, list) else r
            d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                 for k, v in d.items()}
            if d.get("flags") == "slave" and d.get("master-link-status") == "ok":
                out.append(int(d["port"]))
        return out

    def cleanup(self):
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def first_accept(port, stop, out):
    """Thread body: connect() to PORT every millisecond until one succeeds; OUT["t"] is then
    the monotonic time the new Redis first accepted a connection."""
    while not stop.is_set():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect((LOOPBACK, port))
            out["t"] = time.monotonic()
            return
        except OSError:
            time.sleep(0.001)
        finally:
            s.close()


def ms(t, t0):
    return None if t is None else (t - t0) * 1000


# ------------------------------------------------------------------------------ rows

def run_switchover(env, zk, k, reps):
    a_srv = env.redis(name="sw-a")
    b_srv = env.redis(name="sw-b", replicaof=a_srv)
    wait_for(lambda: b_srv.client().execute_command("ROLE")[3] == b"connected", 15, "replica link")
    zk_agent(env, zk, [instance("a", a_srv, cluster="sw"), instance("b", b_srv, cluster="sw")],
             root="/bench", name="sw-agent", session_timeout="10s", **DEFAULT)
    w = {"a": NodeWatch(k, "/bench/sw/a"), "b": NodeWatch(k, "/bench/sw/b")}
    wait_for(lambda: (w["a"].current() or {}).get("role") == "master"
             and (w["b"].current() or {}).get("role") == "replica", 15, "a master, b replica")
    srv = {"a": a_srv, "b": b_srv}
    res = []
    master, replica = "a", "b"
    for i in range(reps):
        time.sleep(random.uniform(0, 1.0))
        t0 = time.monotonic()
        srv[replica].client().execute_command("REPLICAOF", "NO", "ONE")
        srv[master].client().execute_command("REPLICAOF", LOOPBACK, str(srv[replica].port))
        t = w[replica].wait(role_is("master"), t0, 20)
        res.append(ms(t, t0))
        log("switchover #%d: %s says master after %s ms" % (i, replica, fmt(res[-1])))
        # settle before the next one: the old master's node says replica, its link is up
        w[master].wait(role_is("replica"), t0, 20)
        wait_for(lambda: srv[master].client().execute_command("ROLE")[3] == b"connected", 20,
                 "the demoted one's link")
        master, replica = replica, master
    return {"agent": summarize(res)}


def run_failover(env, zk, k, reps):
    s0 = env.redis(name="fo-0")
    s1 = env.redis(name="fo-1", replicaof=s0)
    wait_for(lambda: s1.client().execute_command("ROLE")[3] == b"connected", 15, "replica link")
    sent = Sentinel(env, [("fo", s0.port)], quorum=1)
    zk_agent(env, zk, [instance("fo0", s0, cluster="fo"), instance("fo1", s1, cluster="fo")],
             root="/bench", name="fo-agent", session_timeout="10s", **DEFAULT)
    srv = {s0.port: ("fo0", s0), s1.port: ("fo1", s1)}
    w = {"fo0": NodeWatch(k, "/bench/fo/fo0"), "fo1": NodeWatch(k, "/bench/fo/fo1")}
    ours, theirs, lead = [], [], []
    master_port = s0.port
    for i in range(reps):
        replica_port = [p for p in srv if p != master_port][0]
        wait_for(lambda: replica_port in sent.replicas_ok("fo"), 40,
                 "Sentinel to know a healthy replica", 0.2)
        wait_for(lambda: (w[srv[master_port][0]].current() or {}).get("role") == "master"
                 and (w[srv[replica_port][0]].current() or {}).get("role") == "replica", 20,
                 "nodes to show master and replica")
        time.sleep(random.uniform(0, 1.0))
        t0 = time.monotonic()
        srv[master_port][1].kill9()
        name_new = srv[replica_port][0]
        tour = w[name_new].wait(role_is("master"), t0, 60)
        tsent = sent.events.wait("+switch-master", lambda p: p[0] == "fo" and p[-1] == str(replica_port),
                                 t0, 60)
        ours.append(ms(tour, t0))
        theirs.append(ms(tsent, t0))
        lead.append(None if tour is None or tsent is None else (tsent - tour) * 1000)
        log("failover #%d: our node says master after %s ms, +switch-master after %s ms"
            % (i, fmt(ours[-1]), fmt(theirs[-1])))
        # The old master comes back as a replica of the new one.
        old = srv[master_port][1]
        old.start()
        try:
            relink(old, replica_port, 30)
        except Exception as e:  # noqa: BLE001 -- keep the repetitions measured so far
            log("failover: the old master did not relink (%r): %d of %d reps measured"
                % (e, i + 1, reps))
            return {"agent": summarize(ours), "sentinel": summarize(theirs),
                    "agent_lead_ms": summarize(lead), "error": repr(e)}
        master_port = replica_port
    return {"agent": summarize(ours), "sentinel": summarize(theirs), "agent_lead_ms": summarize(lead)}


def relink(server, master_port, timeout):
    """Makes SERVER a replica of MASTER_PORT and waits for its link. REPLICAOF is sent again
    whenever ROLE still says master (Sentinel, finishing its failover, may reconfigure the
    restarted server meanwhile), and a master's short ROLE reply is no error."""
    def linked():
        role = server.client().execute_command("ROLE")
        if role[0] == b"master":
            server.client().execute_command("REPLICAOF", LOOPBACK, str(master_port))
            return False
        return len(role) > 3 and role[3] == b"connected"
    server.client().execute_command("REPLICAOF", LOOPBACK, str(master_port))
    wait_for(linked, timeout, "old master relinked", 0.05)


def run_faults(env, zk, k, reps):
    """kill -9 / restart and SIGSTOP / SIGCONT of one Redis, seen by the default agent, the
    equal-budget agent and Sentinel (quorum 2 with one Sentinel: sdown only, no failover)."""
    v = env.redis(name="victim")
    sent = Sentinel(env, [("victim", v.port)], quorum=2)
    zk_agent(env, zk, [instance("victim", v, cluster="fd")], root="/bench", name="fd-default",
             session_timeout="10s", **DEFAULT)
    zk_agent(env, zk, [instance("victim", v, cluster="fe")], root="/bench", name="fd-equal",
             session_timeout="10s", **EQUAL)
    watches = {"default": NodeWatch(k, "/bench/fd/victim"), "equal": NodeWatch(k, "/bench/fe/victim")}
    wait_for(lambda: all((w.current() or {}).get("state") == "up" for w in watches.values()), 15,
             "both agents' nodes up")
    rows = {r: {"default": [], "equal": [], "sentinel": []}
            for r in ("kill9_down", "restart_up", "sigstop_down", "sigcont_up")}
    is_victim = lambda p: len(p) >= 2 and p[0] == "master" and p[1] == "victim"  # noqa: E731

    def observe(row, state, sdown_channel, t0, timeout):
        for who, w in watches.items():
            rows[row][who].append(ms(w.wait(state_is(state), t0, timeout), t0))
        rows[row]["sentinel"].append(ms(sent.events.wait(sdown_channel, is_victim, t0, timeout), t0))
        log("%s #%d: default %s, equal %s, sentinel %s ms" % (
            row, len(rows[row]["sentinel"]) - 1, fmt(rows[row]["default"][-1]),
            fmt(rows[row]["equal"][-1]), fmt(rows[row]["sentinel"][-1])))

    for i in range(reps):
        # kill -9 at a random phase -> down; restart at a random moment -> up
        time.sleep(random.uniform(0, 1.0))
        t0 = time.monotonic()
        v.kill9()
        observe("kill9_down", "down", "+sdown", t0, 10)
        time.sleep(random.uniform(0, 1.0))
        stop, acc = threading.Event(), {}
        th = threading.Thread(target=first_accept, args=(v.port, stop, acc), daemon=True)
        th.start()
        v.start()
        stop.set()
        th.join(2)
        observe("restart_up", "up", "-sdown", acc.get("t", time.monotonic()), 10)
        # SIGSTOP at a random phase -> down; SIGCONT at a random moment -> up
        time.sleep(random.uniform(0, 1.0))
        t0 = time.monotonic()
        v.sigstop()
        observe("sigstop_down", "down", "+sdown", t0, 10)
        time.sleep(random.uniform(0, 1.0))
        t0 = time.monotonic()
        v.sigcont()
        observe("sigcont_up", "up", "-sdown", t0, 10)
    return {row: {who: summarize(xs) for who, xs in d.items()} for row, d in rows.items()}


def run_start(env, zk, k, n, per_server=100):
    servers = [env.redis(name="st%d" % j) for j in range((n + per_server - 1) // per_server)]
    insts = [instance("n%04d" % i, servers[i // per_server], cluster="st") for i in range(n)]
    t_spawn = time.monotonic()
    a = zk_agent(env, zk, insts, root="/bench", name="st-agent", session_timeout="10s",
                 interval="10s", timeout="500ms", rise=2, fall=2)
    names = set(i["name"] for i in insts)
    wait_for(lambda: k.exists("/bench/st") and set(k.get_children("/bench/st")) >= names, 60,
             "all %d nodes" % n, 0.05)
    t_all = time.monotonic()
    agent_ctime = k.get("/bench/agents/st-agent")[1].ctime
    lags = [k.get("/bench/st/" + nm)[1].ctime - agent_ctime for nm in names]
    a.stop()
    return {"agent": {"last_node_after_session_ms": max(lags),
                      "median_node_after_session_ms": statistics.median(lags),
                      "spawn_to_all_seen_ms": round((t_all - t_spawn) * 1000, 1)}}


# --------------------------------------------------------------------------- report

def fmt(x):
    return "-" if x is None else "%.0f" % x


def cell(s):
    if not s:
        return "—"
    return "%s / %s" % (fmt(s["median"]), fmt(s["max"]))


TARGETS = {
    "switchover": "max ≤ interval + 50 ms (1,050)",
    "failover": "no later than Sentinel's +switch-master",
    "kill9_down": "median ≤ 10",
    "restart_up": "median ≤ 200, max ≤ 400",
    "sigstop_down": "max ≤ interval + fall × timeout + 50 (2,050; equal budget 1,050)",
    "sigcont_up": "median ≤ 20",
    "start_n1000": "≤ 500 after the session",
}
LABELS = {
    "switchover": "`REPLICAOF NO ONE` + `REPLICAOF` → promoted node says `master`",
    "failover": "Sentinel failover (kill -9 master) → promoted node says `master`",
    "kill9_down": "kill -9 → `down`",
    "restart_up": "restart after kill -9 → `up` (from first accept)",
    "sigstop_down": "SIGSTOP → `down`",
    "sigcont_up": "SIGCONT → `up`",
    "start_n1000": "start, N = 1,000, interval 10 s → last node after the session",
}


def markdown(res):
    out = ["| transition (ms, median / max) | agent (1 s / 500 ms) | agent (500 ms / 250 ms) "
           "| Redis Sentinel (down-after 500) | target |", "|---|---:|---:|---:|---|"]
    rows = res["rows"]
    if "switchover" in rows:
        out.append("| %s | %s | — | INFO every 10 s | %s |" % (
            LABELS["switchover"], cell(rows["switchover"]["agent"]), TARGETS["switchover"]))
    if "failover" in rows:
        out.append("| %s | %s | — | %s (+switch-master) | %s |" % (
            LABELS["failover"], cell(rows["failover"]["agent"]), cell(rows["failover"]["sentinel"]),
            TARGETS["failover"]))
    for r in ("kill9_down", "restart_up", "sigstop_down", "sigcont_up"):
        if r in rows:
            d = rows[r]
            out.append("| %s | %s | %s | %s | %s |" % (LABELS[r], cell(d["default"]), cell(d["equal"]),
                                                       cell(d["sentinel"]), TARGETS[r]))
    if "start_n1000" in rows:
        d = rows["start_n1000"]["agent"]
        out.append("| %s | %s | — | — | %s |" % (LABELS["start_n1000"], fmt(d["last_node_after_session_ms"]),
                                                TARGETS["start_n1000"]))
    notes = []
    eq, se = (rows.get("sigstop_down") or {}).get("equal"), (rows.get("sigstop_down") or {}).get("sentinel")
    if eq and se:
        notes.append("SIGSTOP → down at an equal probe budget: agent %s ms vs Sentinel %s ms (median): %s."
                     % (fmt(eq["median"]), fmt(se["median"]),
                        "the agent wins" if eq["median"] < se["median"] else "Sentinel wins"))
    lead = (rows.get("failover") or {}).get("agent_lead_ms")
    if lead:
        notes.append("Failover: our node says master %s ms (median; min %s) before Sentinel's "
                     "+switch-master." % (fmt(lead["median"]), fmt(lead["min"])))
    return "\n".join(out + ([""] + notes if notes else []))


# ----------------------------------------------------------------------------- main

class Terminated(BaseException):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build dir holding sentinel-agent (default: build)")
    ap.add_argument("--reps", type=int, default=12, help="repetitions of each transition (10+)")
    ap.add_argument("--quick", action="store_true", help="3 reps, no N = 1,000 row (a check that it works)")
    ap.add_argument("--n", type=int, default=1000, help="instances of the start row")
    ap.add_argument("--only", default="", help="comma-separated rows: switchover,failover,faults,start")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "transitions-latest.json"))
    args = ap.parse_args()
    if args.quick:
        args.reps = 3
    only = set(x for x in args.only.split(",") if x) or {"switchover", "failover", "faults", "start"}
    if args.quick:
        only.discard("start")
    logging.getLogger("kazoo").setLevel(logging.ERROR)  # its reconnect chatter at teardown
    os.environ["SA_BUILD_DIR"] = os.path.abspath(args.build)
    if not os.access(harness.agent_bin(), os.X_OK):
        sys.exit("transitions.py: no sentinel-agent in %s (build it first)" % args.build)
    if not REDIS_SENTINEL:
        log("redis-sentinel not installed (apt-get install redis-sentinel): using redis-server --sentinel")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the N = 1,000 agent inherits it

    def on_term(signum, frame):
        raise Terminated()
    signal.signal(signal.SIGTERM, on_term)

    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reps": args.reps, "quick": args.quick,
           "host": platform.node(), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
           "agent_version": subprocess.run([harness.agent_bin(), "-V"], capture_output=True,
                                           text=True).stdout.strip(),
           "sentinel": REDIS_SENTINEL or REDIS_SERVER + " --sentinel",
           "settings": {"default": DEFAULT, "equal": EQUAL, "sentinel_down_after_ms": DOWN_AFTER_MS},
           "rows": {}}
    env = harness.Env()
    try:
        zk = zookeeper(env)
        k = kazoo(env, zk)
        if "switchover" in only:
            log("switchover, %d reps" % args.reps)
            res["rows"]["switchover"] = run_switchover(env, zk, k, args.reps)
        if "failover" in only:
            log("Sentinel failover, %d reps" % args.reps)
            res["rows"]["failover"] = run_failover(env, zk, k, args.reps)
        if "faults" in only:
            log("kill -9 / restart / SIGSTOP / SIGCONT, %d reps" % args.reps)
            res["rows"].update(run_faults(env, zk, k, args.reps))
        if "start" in only:
            log("start at N = %d, interval 10 s" % args.n)
            res["rows"]["start_n1000"] = run_start(env, zk, k, args.n)
    except (KeyboardInterrupt, Terminated):
        log("interrupted: cleaning up")
        res["interrupted"] = True
    except Exception as e:  # noqa: BLE001 -- a phase missed its deadline: keep what was measured
        log("failed: %r; cleaning up" % (e,))
        res["error"] = repr(e)
    finally:
        env.cleanup()
    res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    log("raw results in %s" % args.out)
    print(markdown(res))
    return 1 if res.get("interrupted") or res.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())

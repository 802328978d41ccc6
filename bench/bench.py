#!/usr/bin/python3
"""bench.py -- sentinel-agent at scale, measured side by side with Redis Sentinel.

Starts its own throwaway redis-servers (the "farm"), one ZooKeeper, the agent and (for
N <= --sentinel-max) one redis-sentinel monitoring the same instances, all on 127.0.0.1 in a
private temp dir, and measures every process from the outside, the same way:

  * CPU: utime+stime from /proc/PID/stat over a window after warm-up (plus the precise
    per-thread sum_exec_runtime from /proc/PID/task/*/schedstat as a cross-check), expressed
    per instance-second (one probe per instance per second at interval 1 s);
  * RSS (VmRSS), threads, open fds from /proc;
  * detection latency: fault (kill -9 or SIGSTOP of a random instance's redis-server at a
    random phase) to the moment an independent observer sees it -- a kazoo watch on the
    instance's znode for the agent, Sentinel's own +sdown pub/sub event for Sentinel;
    recovery (restart / SIGCONT to up, resp. -sdown) likewise;
  * agent start: READY=1 on our own NOTIFY_SOCKET, all N nodes seen in ZooKeeper, and the
    nodes' ctime span from the agent node's creation; SIGTERM to exit with all nodes gone;
  * the floor: after the agent, on the same farm and the agent's instance list, probe-floor
    (bench/floor.c, a bare epoll client sending the agent's bytes, ROLE + PING in one write)
    measured by the same CPU window, its N probes sent all at once each interval ("burst")
    and in 10 groups ("rounds10"), and PING alone in 10 groups ("rounds10-ping"): what one
    loopback round trip costs a client on this machine, the agent's irreducible part;
  * Redis's own CPU: utime+stime (and schedstat) summed over the farm's redis-servers over
    each process's window -- the agent alone, Sentinel alone, each floor run -- less the
    idle farm's (a window with no client at all, before the agent starts), per probe.

Everything it starts is registered and stopped at the end, on error, on Ctrl-C or SIGTERM;
every phase has a deadline. Raw results go to a JSON file; bench/report.py turns them into
docs/performance.md and docs/perf/*.png.

    /usr/bin/python3 bench/bench.py --build build-bench --n 100,1000,10000
"""

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The integration harness owns how a throwaway redis-server and ZooKeeper are started,
# waited for and stopped; the benchmark uses the same classes.
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402
import zk as zkmod  # noqa: E402

LOOPBACK = harness.LOOPBACK
REDIS_SERVER = harness.REDIS_SERVER
REDIS_SENTINEL = "/usr/bin/redis-sentinel"
CLK_TCK = os.sysconf("SC_CLK_TCK")
INTERVAL_S = 1.0
TIMEOUT_MS = 500
FALL = 2
RISE = 2
# The floor's runs: (label, slots, mode). Two send patterns of the agent's own bytes (ROLE +
# PING in one write, --mode pingrole): all N probes at the start of each interval, and N/10
# every 100 ms, as the agent sends them in its probe rounds (agent/instance.c); and the old
# PING-only floor in rounds, for comparison: what ROLE costs a client, and Redis.
FLOOR_RUNS = (("burst", 1, "pingrole"), ("rounds10", 10, "pingrole"),
              ("rounds10-ping", 10, "ping"))


class PhaseTimeout(Exception):
    pass


class Interrupted(BaseException):
    pass


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def wait_for(pred, timeout, what, interval=0.01):
    """Polls PRED until truthy and returns it; PhaseTimeout after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise PhaseTimeout("%s: not within %.1f s" % (what, timeout))
        time.sleep(interval)


def raise_fd_limit(want=65536):
    """Children inherit it: the agent needs N fds, each redis-server N/K, Sentinel 2N."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for lim in ((want, want), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, lim)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# ------------------------------------------------------------------ /proc from outside

def proc_cpu_s(pid):
    """utime+stime of PID (all its threads) in seconds, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_sched_s(pid):
    """Sum of sum_exec_runtime (ns) over PID's live threads, in seconds."""
    total = 0
    d = "/proc/%d/task" % pid
    for tid in os.listdir(d):
        try:
            with open(os.path.join(d, tid, "schedstat")) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def proc_threads_sched(pid):
    """{"TID comm": seconds of sum_exec_runtime} of PID's live threads."""
    out = {}
    d = "/proc/%d/task" % pid
    for tid in os.listdir(d):
        try:
            with open(os.path.join(d, tid, "schedstat")) as f:
                ns = int(f.read().split()[0])
            with open(os.path.join(d, tid, "comm")) as f:
                comm = f.read().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out["%s %s" % (tid, comm)] = ns / 1e9
    return out


def proc_ctxsw(pid):
    """Context switches (voluntary, involuntary) summed over PID's live threads: each
    voluntary one is a sleep, hence a wake-up."""
    vol = invol = 0
    d = "/proc/%d/task" % pid
    for tid in os.listdir(d):
        try:
            with open(os.path.join(d, tid, "status")) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return vol, invol


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_snapshot(pid):
    st = proc_status(pid)
    return {
        "rss_bytes": int(st["VmRSS"].split()[0]) * 1024,
        "hwm_bytes": int(st["VmHWM"].split()[0]) * 1024,
        "threads": int(st["Threads"]),
        "fds": len(os.listdir("/proc/%d/fd" % pid)),
    }


def group_cpu(pids):
    """(utime+stime, schedstat) seconds summed over PIDS (a farm's redis-servers); a pid
    that has gone is skipped, and counted in the third element."""
    cpu = sched = 0.0
    gone = 0
    for pid in pids:
        try:
            cpu += proc_cpu_s(pid)
            sched += proc_sched_s(pid)
        except (FileNotFoundError, ProcessLookupError):
            gone += 1
    return cpu, sched, gone


def machine_cpu():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ----------------------------------------------------------------------- processes

class Procs:
    """Registry of every process the benchmark starts; cleanup() ends them all. Only our
    own children (by Popen object, hence by pid we have not reaped) are ever signalled."""

    def __init__(self):
        self.items = []  # [name, Popen, graceful]
        self.owned = []  # harness servers (redis-server, ZooKeeper): their cleanup() ends them
        self.lock = threading.Lock()

    def own(self, obj):
        """Registers a harness server object; cleanup() ends it after the processes."""
        with self.lock:
            self.owned.append(obj)
        return obj

    def spawn(self, name, argv, log_path, env=None, cwd=None, graceful=False):
        with open(log_path, "ab") as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env, cwd=cwd)
        with self.lock:
            self.items.append([name, p, graceful])
        return p

    def forget(self, p):
        with self.lock:
            self.items = [it for it in self.items if it[1] is not p]

    @staticmethod
    def end(p, graceful=False, grace_s=3.0):
        if p.poll() is not None:
            return
        try:
            p.send_signal(signal.SIGCONT)
            p.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        except ProcessLookupError:
            return
        try:
            p.wait(grace_s if graceful else 10)
            return
        except subprocess.TimeoutExpired:
            pass
        try:
            p.kill()
        except ProcessLookupError:
            return
        p.wait(10)

    def cleanup(self):
        with self.lock:
            items = list(reversed(self.items))
            self.items = []
        # Graceful ones (agent, sentinel) first, so the agent can still delete its nodes.
        for name, p, graceful in sorted(items, key=lambda it: 0 if it[2] else 1):
            try:
                self.end(p, graceful)
            except Exception as e:  # noqa: BLE001 -- keep going
                log("cleanup of %s failed: %r" % (name, e))
        with self.lock:
            owned = list(reversed(self.owned))
            self.owned = []
        for obj in owned:
            try:
                obj.cleanup()
            except Exception as e:  # noqa: BLE001 -- keep going
                log("cleanup of %s failed: %r" % (obj.name, e))


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
            return True
        except OSError:
            return False


def alloc_ports(n, low=20000, high=32000):
    """N free loopback ports below the ephemeral range (so outgoing connections of the
    agent, Sentinel and the tests running beside us never take them)."""
    base = random.randrange(low, max(low + 1, high - n - 500))
    out = []
    p = base
    while len(out) < n:
        if p >= high:
            raise RuntimeError("not enough free ports in %d..%d" % (low, high))
        if port_free(p):
            out.append(p)
        p += 1
    return out


def redis_ping(port, timeout=0.3):
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_server(workdir, port, hz):
    """A farm server (not started): the harness's redis-server with room for many clients,
    its cron at HZ a second (see --redis-hz)."""
    return harness.RedisServer(workdir, port=port, name="redis-%d" % port, start=False,
                               extra_conf=["maxclients 20000", "loglevel warning", "hz %d" % hz,
                                           "dynamic-hz no"])


class Farm:
    """K redis-servers."""

    def __init__(self, procs, workdir, k, hz):
        ports = alloc_ports(k)
        self.servers = [procs.own(redis_server(workdir, p, hz)) for p in ports]

    def start(self, timeout=120.0):
        t0 = time.monotonic()
        for s in self.servers:
            s.start(wait=False)
        pending = list(self.servers)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise PhaseTimeout("%d redis-servers not answering" % len(pending))
            for s in pending:
                if s.proc.poll() is not None:
                    raise RuntimeError("redis-server :%d exited (%s)" % (s.port, s.proc.returncode))
            pending = [s for s in pending if not s.is_ready()]
            if pending:
                time.sleep(0.05)
        return time.monotonic() - t0

    def stop(self, procs):
        for s in self.servers:
            s.cleanup()

    def pids(self):
        """The redis-servers' pids now (a victim restarted after kill -9 has a new one)."""
        return [s.proc.pid for s in self.servers if s.proc is not None and s.proc.poll() is None]


def zookeeper(procs, workdir):
    """The harness's standalone ZooKeeper (not started), with the heap and JIT of a real
    deployment rather than of a short test."""
    return procs.own(zkmod.ZooKeeper(
        workdir, name="zk", port=alloc_ports(1)[0], start=False,
        jvm_opts=["-Xmx1g", "-XX:+UseSerialGC"],
        # The agent is measured, not the disk of this VM: no fsync per transaction.
        extra_cfg=["forceSync=no"]))


class Notify:
    """Our own NOTIFY_SOCKET: records when READY=1 (and the rest) arrives."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.msgs = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.msgs.append((time.monotonic(), data.decode(errors="replace")))

    def first(self, key):
        for t, m in list(self.msgs):
            if key in m.split("\n"):
                return t
        return None

    def close(self):
        self.stop.set()
        self.thread.join(1)
        self.sock.close()


class Agent:
    def __init__(self, procs, workdir, build, zk_hosts, root, instances, n, wrap=None):
        self.procs = procs
        self.wrap = wrap.split() if wrap else []
        self.dir = os.path.join(workdir, "agent")
        os.makedirs(self.dir, exist_ok=True)
        self.bin = os.path.join(build, "sentinel-agent")
        self.root = root
        self.cluster = "bench"
        self.name = "bench-agent"
        self.conf = os.path.join(self.dir, "agent.conf")
        self.stats_path = os.path.join(self.dir, "stats.sock")
        lines = ["[agent]", "name = %s" % self.name, "interval = %dms" % int(INTERVAL_S * 1000),
                 "timeout = %dms" % TIMEOUT_MS, "rise = %d" % RISE, "fall = %d" % FALL,
                 "max_inflight = %d" % max(1024, n), "stats_socket = %s" % self.stats_path,
                 "log_level = info", "shutdown_timeout = 10s", "",
                 "[zookeeper]", "hosts = %s" % zk_hosts, "root = %s" % root,
                 "session_timeout = 10s"]
        for name, port in instances:
            lines += ["", "[instance %s]" % name, "address = %s:%d" % (LOOPBACK, port),
                      "cluster = %s" % self.cluster]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.notify = Notify(os.path.join(self.dir, "notify.sock"))
        self.proc = None
        self.t_spawn = None

    def start(self):
        env = dict(os.environ)
        for k in ("JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(k, None)
        env["NOTIFY_SOCKET"] = self.notify.path
        self.t_spawn = time.monotonic()
        self.t_spawn_wall = time.time()
        self.proc = self.procs.spawn("agent", self.wrap + [self.bin, "-c", self.conf],
                                     os.path.join(self.dir, "stderr.log"), env=env, graceful=True)

    @property
    def pid(self):
        return self.proc.pid

    def command(self, cmd, timeout=5.0):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.stats_path)
            s.sendall(cmd.encode() + b"\n")
            buf = b""
            while b"\n\n" not in buf:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
        return buf.decode()

    def stats(self):
        return json.loads(self.command("stats"))

    def node_path(self, name):
        return "%s/%s/%s" % (self.root, self.cluster, name)


class Sentinel:
    def __init__(self, procs, workdir, masters):
        self.procs = procs
        self.dir = os.path.join(workdir, "sentinel")
        os.makedirs(self.dir, exist_ok=True)
        self.port = alloc_ports(1)[0]
        self.conf = os.path.join(self.dir, "sentinel.conf")
        lines = ["port %d" % self.port, "bind %s" % LOOPBACK, "daemonize no",
                 "dir %s" % self.dir, "logfile sentinel.log", "protected-mode no"]
        for name, port in masters:
            # quorum 2 with one Sentinel: it judges sdown (what we time) but never starts a
            # failover, which the farm could not complete anyway (no replicas).
            lines += ["sentinel monitor %s %s %d 2" % (name, LOOPBACK, port),
                      "sentinel down-after-milliseconds %s %d" % (name, TIMEOUT_MS)]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self, timeout=30.0):
        self.t_spawn = time.monotonic()
        self.proc = self.procs.spawn("sentinel", [REDIS_SENTINEL, self.conf],
                                     os.path.join(self.dir, "stdout.log"), cwd=self.dir,
                                     graceful=True)
        wait_for(lambda: redis_ping(self.port), timeout, "sentinel PING", 0.005)
        self.t_ready = time.monotonic()

    @property
    def pid(self):
        return self.proc.pid


class Floor:
    """probe-floor (bench/floor.c) on a list of addresses, one connection each. It prints
    its counters as JSON lines on stdout: one when all are connected (signals are safe to
    send from then on, not before), one per SIGUSR1, the last at SIGTERM."""

    def __init__(self, procs, workdir, build, addrs, slots, label, mode):
        self.procs = procs
        self.dir = os.path.join(workdir, "floor-%s" % label)
        os.makedirs(self.dir, exist_ok=True)
        self.bin = os.path.join(build, "probe-floor")
        self.slots = slots
        self.label = label
        self.mode = mode
        self.addr_file = os.path.join(self.dir, "addrs")
        with open(self.addr_file, "w") as f:
            f.write("".join("%s:%d\n" % a for a in addrs))
        self.log_path = os.path.join(self.dir, "out.log")  # stdout and stderr
        self.proc = None

    def start(self):
        self.proc = self.procs.spawn(
            "floor-%s" % self.label,
            [self.bin, "--interval-ms", str(int(INTERVAL_S * 1000)), "--slots", str(self.slots),
             "--mode", self.mode, self.addr_file], self.log_path, graceful=True)

    @property
    def pid(self):
        return self.proc.pid

    def _read(self):
        """(complete JSON lines, other lines) of its output so far."""
        js, other = [], []
        with open(self.log_path) as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # being written
                if line.startswith("{"):
                    js.append(json.loads(line))
                else:
                    other.append(line.strip())
        return js, other

    def _alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError("probe-floor (%s) exited with %s: %s" % (
                self.label, self.proc.returncode, "; ".join(self._read()[1]) or "no message"))

    def _line(self, i, timeout, what):
        """Its Ith JSON line, once printed."""
        def line():
            self._alive()
            js = self._read()[0]
            return js[i] if len(js) > i else None
        return wait_for(line, timeout, "probe-floor (%s) %s" % (self.label, what), 0.002)

    def connected(self, timeout):
        return self._line(0, timeout, "connecting")

    def counters(self, timeout=5.0):
        """SIGUSR1, then the line it prints (only after connected())."""
        self._alive()
        have = len(self._read()[0])
        self.proc.send_signal(signal.SIGUSR1)
        return self._line(have, timeout, "counters")

    def stop(self, timeout=10.0):
        """SIGTERM: (exit code or None if it had to be killed, final counters or None)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        self.procs.end(self.proc)
        self.procs.forget(self.proc)
        js = self._read()[0]
        return rc, (js[-1] if js and js[-1].get("event") == "exit" else None)


class SentinelEvents:
    """Sentinel's own pub/sub events on CHANNELS, each timestamped on arrival with its words
    (bench/transitions.py uses it too, with +switch-master)."""

    def __init__(self, port, channels=("+sdown", "-sdown")):
        import redis
        self.r = redis.Redis(host=LOOPBACK, port=port, socket_timeout=5)
        self.ps = self.r.pubsub(ignore_subscribe_messages=True)
        self.ps.subscribe(*channels)
        self.events = []  # (time, channel, words)
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                m = self.ps.get_message(timeout=0.2)
            except Exception:  # noqa: BLE001 -- the sentinel went away
                return
            if m is None or m.get("type") != "message":
                continue
            t = time.monotonic()
            with self.cond:
                self.events.append((t, m["channel"].decode(), m["data"].decode().split()))
                self.cond.notify_all()

    def wait(self, channel, match, after, timeout):
        """The time of the first event on CHANNEL at or after AFTER whose words MATCH (a
        callable), waiting up to TIMEOUT seconds; None if none came."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, ch, words in self.events:
                    if ch == channel and t >= after and match(words):
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def wait_master(self, channel, name, after, timeout):
        """wait() for an event about the master called NAME ("master NAME ip port")."""
        return self.wait(channel, lambda w: len(w) >= 2 and w[0] == "master" and w[1] == name,
                         after, timeout)

    def close(self):
        self.stop.set()
        self.thread.join(1)
        try:
            self.ps.close()
            self.r.close()
        except Exception:  # noqa: BLE001
            pass

    cleanup = close  # for a harness env's register()


class NodeWatch:
    """An independent kazoo data watch on one znode: the time a change notification
    arrives, then the document it led to."""

    def __init__(self, kz, path):
        self.kz = kz
        self.path = path
        self.ev = threading.Event()
        self.times = []

    def _cb(self, event):
        self.times.append(time.monotonic())
        self.ev.set()

    def read(self):
        from kazoo.exceptions import NoNodeError
        try:
            data, _ = self.kz.get(self.path, watch=self._cb)
            return json.loads(data.decode()).get("state")
        except NoNodeError:
            self.kz.exists(self.path, watch=self._cb)
            return None

    def wait_state(self, want, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.ev.wait(left):
                return None
            self.ev.clear()
            t = self.times[-1]
            if self.read() == want:
                return t


# -------------------------------------------------------------------- measurements

def fmt_opt(v, fmt="%.2f"):
    return "-" if v is None else fmt % v


def summarize(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "median": statistics.median(xs), "max": max(xs), "min": min(xs)}


def cpu_window(pids, window, agent=None, counter=None, groups=None):
    """CPU of each pid over WINDOW seconds, and the machine's load meanwhile. COUNTER, if
    given, is read where the agent's stats are: a callable returning a dict of counters,
    whose differences over the window come back as out["counters"]. GROUPS ({name: [pid]},
    e.g. the farm's redis-servers) come back summed, as out["groups"][name]."""
    groups = groups or {}
    t0 = time.monotonic()
    g0 = {k: group_cpu(v) for k, v in groups.items()}
    a0 = {k: (proc_cpu_s(p), proc_sched_s(p), proc_ctxsw(p)) for k, p in pids.items()}
    th0 = proc_threads_sched(pids["agent"]) if "agent" in pids else {}
    m0 = machine_cpu()
    st0 = agent.stats() if agent else None
    c0 = counter() if counter else None
    la0 = loadavg()
    time.sleep(window)
    c1 = counter() if counter else None
    st1 = agent.stats() if agent else None
    a1 = {k: (proc_cpu_s(p), proc_sched_s(p), proc_ctxsw(p)) for k, p in pids.items()}
    th1 = proc_threads_sched(pids["agent"]) if "agent" in pids else {}
    g1 = {k: group_cpu(v) for k, v in groups.items()}
    m1 = machine_cpu()
    t1 = time.monotonic()
    out = {"window_s": t1 - t0, "loadavg_before": la0, "loadavg_after": loadavg(),
           "machine_busy_pct": 100.0 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]),
           "procs": {}}
    out["agent_threads_sched_s"] = {k: th1[k] - th0.get(k, 0.0) for k in th1}
    for k in pids:
        out["procs"][k] = {"cpu_s": a1[k][0] - a0[k][0], "sched_s": a1[k][1] - a0[k][1],
                           "wakeups": a1[k][2][0] - a0[k][2][0],
                           "preempted": a1[k][2][1] - a0[k][2][1]}
    out["groups"] = {k: {"cpu_s": g1[k][0] - g0[k][0], "sched_s": g1[k][1] - g0[k][1],
                         "procs": len(groups[k]), "gone": g1[k][2]} for k in groups}
    if agent:
        out["agent_probes"] = st1["probes_total"] - st0["probes_total"]
        out["agent_probes_skipped"] = st1["probes_skipped"] - st0["probes_skipped"]
        out["agent_probes_failed"] = st1["probes_failed"] - st0["probes_failed"]
    if counter:
        out["counters"] = {k: c1[k] - c0[k] for k in c1
                           if isinstance(c1[k], int) and not isinstance(c1[k], bool) and k in c0}
    return out


def redis_figures(grp, window_s, probes, idle):
    """The farm's own CPU over a window (GRP, a cpu_window group) per probe of the prober
    measured in it: gross, and net of the idle farm's rate (IDLE, run["redis_idle"])."""
    out = dict(grp)
    out["us_per_probe"] = grp["cpu_s"] * 1e6 / max(1, probes)
    out["sched_us_per_probe"] = grp["sched_s"] * 1e6 / max(1, probes)
    if idle:
        out["net_us_per_probe"] = (grp["cpu_s"] - idle["cpu_per_s"] * window_s) * 1e6 / max(1, probes)
        out["net_sched_us_per_probe"] = ((grp["sched_s"] - idle["sched_per_s"] * window_s) * 1e6
                                         / max(1, probes))
    return out


def redis_idle(farm, seconds):
    """The farm's own CPU with no client at all (serverCron and the like), per second."""
    win = cpu_window({}, seconds, groups={"redis": farm.pids()})
    g = win["groups"]["redis"]
    return {"window_s": win["window_s"], "cpu_s": g["cpu_s"], "sched_s": g["sched_s"],
            "servers": g["procs"], "cpu_per_s": g["cpu_s"] / win["window_s"],
            "sched_per_s": g["sched_s"] / win["window_s"],
            "machine_busy_pct": win["machine_busy_pct"]}


def floor_run(args, procs, workdir, addrs, slots, label, mode, farm, idle):
    """One probe-floor measurement on ADDRS, the agent's instance list in its order: start,
    warm-up, the CPU window exactly as the agent's (the farm's redis-servers measured over
    it too), SIGTERM. Figures per probe (sent in the window), or {"error": ...} with
    whatever was measured before it failed."""
    n = len(addrs)
    fl = Floor(procs, workdir, args.build, addrs, slots, label, mode)
    res = {"slots": slots, "mode": mode}
    try:
        fl.start()
        fl.connected(args.phase_timeout)
        time.sleep(args.warmup)
        win = cpu_window({"floor": fl.pid}, args.window, counter=fl.counters,
                         groups={"redis": farm.pids()})
        p = win["procs"]["floor"]
        c = {k: v for k, v in win["counters"].items()  # not its settings, constant
             if k not in ("connections", "slots", "interval_ms", "probe_bytes")}
        probes = c["sent"]
        res.update({
            "window_s": win["window_s"], "machine_busy_pct": win["machine_busy_pct"],
            "loadavg_before": win["loadavg_before"], "loadavg_after": win["loadavg_after"],
            "cpu_s": p["cpu_s"], "sched_s": p["sched_s"], "wakeups": p["wakeups"],
            "preempted": p["preempted"], "probes": probes, "replies": c["replies"],
            "window_counters": c,
            "us_per_probe": p["cpu_s"] * 1e6 / max(1, probes),
            "sched_us_per_probe": p["sched_s"] * 1e6 / max(1, probes),
            "wakeups_per_probe": p["wakeups"] / max(1, probes),
            "us_per_instance_s": p["cpu_s"] * 1e6 / (n * win["window_s"]),
            "redis": redis_figures(win["groups"]["redis"], win["window_s"], probes, idle),
        })
        res.update(proc_snapshot(fl.pid))
        rc, final = fl.stop()
        res["exit_code"] = rc
        res["final"] = final
        # A floor over fewer probes than asked would be too low: every PING answered
        # (but those in flight at SIGTERM, at most one per connection), nothing else.
        problems = []
        if rc != 0:
            problems.append("exit code %s" % rc)
        if final is None:
            problems.append("no final counters")
        elif final.get("mode", "ping") != mode:
            problems.append("ran in mode %s, not %s" % (final.get("mode"), mode))
        else:
            if final["errors"]:
                problems.append("%d errors" % final["errors"])
            if not 0 <= final["sent"] - final["replies"] <= n:
                problems.append("%d sent, %d replies" % (final["sent"], final["replies"]))
        if probes < 0.9 * n * win["window_s"] / INTERVAL_S:
            problems.append("%d probes in %.1f s, expected %.0f" % (
                probes, win["window_s"], n * win["window_s"] / INTERVAL_S))
        if problems:
            res["error"] = "; ".join(problems)
    except (PhaseTimeout, RuntimeError, OSError, ValueError) as e:
        res["error"] = str(e)
    finally:
        if fl.proc is not None:
            procs.end(fl.proc, graceful=True)
            procs.forget(fl.proc)
    return res


PERF_ENTRY_POINTS = (  # kernel symbols: kernel stacks unwind whatever the binary's build
    ("ksys_write", "write() (TCP send, loopback delivery, wake-up of the peer)"),
    ("sock_def_readable", "  of which waking the peer (sock_def_readable)"),
    ("__napi_poll", "  of which the peer's TCP receive run in our context (loopback)"),
    ("ksys_read", "read()"),
    ("do_epoll_wait", "epoll_wait()"),
    ("__x64_sys_clock_nanosleep", "nanosleep() (libev collect interval)"),
    ("__sys_connect", "connect()"),
    ("finish_task_switch.isra.0", "sleeping and being woken (finish_task_switch)"),
)


def perf_profile(pid, seconds, outdir, label):
    """perf record -g of PID for SECONDS (if perf is installed): the top symbols, and the
    share of the time spent under the main system calls (children view)."""
    perf = shutil.which("perf")
    if not perf:
        return None
    data = os.path.join(outdir, "perf-%s.data" % label)
    try:
        subprocess.run([perf, "record", "-q", "-g", "-F", "1999", "-p", str(pid), "-o", data, "--",
                        "sleep", str(seconds)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=seconds + 30)
        rep = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                              "--sort", "dso,symbol", "--percent-limit", "1"],
                             capture_output=True, text=True, timeout=120)
        lines = [l.rstrip() for l in rep.stdout.splitlines()
                 if l.strip() and not l.startswith("#") and "%" in l]
        lines = [l.replace("-      -", "").rstrip() for l in lines]
        dsos = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                               "--sort", "dso"], capture_output=True, text=True, timeout=120)
        dso_lines = [l.strip() for l in dsos.stdout.splitlines()
                     if l.strip() and not l.startswith("#") and "%" in l]
        ch = subprocess.run([perf, "report", "-i", data, "--stdio", "--children", "-g", "none",
                             "--sort", "symbol"], capture_output=True, text=True, timeout=120)
        share = {}
        for l in ch.stdout.splitlines():
            parts = l.split()
            if len(parts) >= 4 and parts[0].endswith("%") and parts[2] in ("[k]", "[.]"):
                share.setdefault(parts[3], float(parts[0].rstrip("%")))
        nsamp = next((l for l in rep.stdout.splitlines() if l.startswith("# Samples")), "")
        out = ["%s (perf record -g -F 1999, %d s)" % (nsamp.lstrip("# "), seconds), "",
               "by object: " + ", ".join(dso_lines[:6]), "",
               "time under (children, inclusive):"]
        seen = set()
        for sym, what in PERF_ENTRY_POINTS:
            if sym in share and what not in seen:
                seen.add(what)
                out.append("  %5.1f %%  %s" % (share[sym], what))
        out += ["", "top symbols (self):"] + lines[:25]
        if not os.environ.get("SA_BENCH_KEEP_PERF"):
            os.unlink(data)
        return "\n".join(out)
    except (subprocess.TimeoutExpired, OSError) as e:
        return "perf failed: %r" % (e,)


def fault_reps(kind, reps, victims, agent, kz, sev, detect_timeout, recover_timeout):
    """REPS faults of KIND ('kill9' or 'sigstop'), each on the redis-server of a random
    instance at a random phase of the probe period."""
    res = {"agent_detect_ms": [], "agent_recover_ms": [], "sentinel_detect_ms": [],
           "sentinel_recover_ms": [], "victims": [], "misses": []}
    for rep in range(reps):
        name, server = random.choice(victims)
        watch = NodeWatch(kz, agent.node_path(name))
        state = watch.read()
        if state != "up":
            wait_for(lambda: watch.read() == "up", 10, "%s up before the fault" % name, 0.1)
        time.sleep(random.uniform(0, INTERVAL_S))  # random phase
        t0 = time.monotonic()
        if kind == "kill9":
            server.kill9()
        else:
            server.sigstop()
        ta = watch.wait_state("down", detect_timeout)
        ts = sev.wait_master("+sdown", name, t0, detect_timeout) if sev else None
        # The fault ends: restart (after kill -9) or SIGCONT.
        t1 = time.monotonic()
        if kind == "kill9":
            server.start(wait=False)
        else:
            server.sigcont()
        if ta is None:
            res["misses"].append("agent did not publish %s down within %.1f s" % (name, detect_timeout))
            wait_for(lambda: watch.read() == "up", recover_timeout, "%s back up" % name, 0.05)
            ra = None
        else:
            ra = watch.wait_state("up", recover_timeout)
        rs = sev.wait_master("-sdown", name, t1, recover_timeout) if sev else None
        if sev and ts is None:
            res["misses"].append("sentinel: no +sdown for %s within %.1f s" % (name, detect_timeout))
        res["victims"].append(name)
        res["agent_detect_ms"].append(None if ta is None else (ta - t0) * 1000)
        res["agent_recover_ms"].append(None if ra is None else (ra - t1) * 1000)
        if sev:
            res["sentinel_detect_ms"].append(None if ts is None else (ts - t0) * 1000)
            res["sentinel_recover_ms"].append(None if rs is None else (rs - t1) * 1000)
        log("  %s #%d %s: agent %s / %s ms, sentinel %s / %s ms" % (
            kind, rep + 1, name,
            "-" if ta is None else "%.1f" % ((ta - t0) * 1000),
            "-" if ra is None else "%.0f" % ((ra - t1) * 1000),
            "-" if ts is None else "%.1f" % ((ts - t0) * 1000),
            "-" if rs is None else "%.0f" % ((rs - t1) * 1000)))
        time.sleep(0.3)
    return res


def node_ctimes(kz, paths):
    """ctime (ms, server wall clock) of each path, with pipelined asynchronous exists."""
    out = []
    for i in range(0, len(paths), 2000):
        asyncs = [kz.exists_async(p) for p in paths[i:i + 2000]]
        for a in asyncs:
            st = a.get(timeout=30)
            if st is not None:
                out.append(st.ctime)
    return out


def run_one(args, procs, zk, kz, n, workdir):
    use_sentinel = n <= args.sentinel_max
    k = n if use_sentinel else max(1, n // args.per_server)
    # Without Sentinel the farm is shared (N/K connections per server), but the faults must
    # still hit one instance, as they do with Sentinel: SOLO extra servers host one instance
    # each, and the timed faults pick among those. A kill -9 of a shared server (N/K
    # instances down at once) is measured apart, as "kill9_host".
    solo = 0 if use_sentinel or k >= n else min(args.reps, n // 2)
    if k > args.max_servers:
        raise RuntimeError("N=%d would need %d redis-servers (about 3 MiB each); the limit is "
                           "--max-servers %d" % (n, k, args.max_servers))
    run = {"n": n, "k": k, "sentinel": use_sentinel, "agent": {}, "sentinel_res": None,
           "loadavg_start": loadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    rdir = os.path.join(workdir, "n%d" % n)
    os.makedirs(rdir, exist_ok=True)
    run["solo"] = solo
    log("N=%d: starting %d redis-servers" % (n, k + solo))
    farm = Farm(procs, rdir, k + solo, args.redis_hz)
    run["farm_start_s"] = farm.start()
    if args.idle_window:
        log("N=%d: the idle farm, %d s (no client)" % (n, args.idle_window))
        run["redis_idle"] = redis_idle(farm, args.idle_window)
    instances = []  # (name, server)
    for i in range(n - solo):
        instances.append(("i%05d" % i, farm.servers[i % k]))
    for j in range(solo):
        instances.append(("i%05d" % (n - solo + j), farm.servers[k + j]))
    victims = instances[n - solo:] if solo else instances
    root = "/bench/n%d" % n
    agent = Agent(procs, rdir, args.build, zk.hosts, root,
                  [(nm, s.port) for nm, s in instances], n, args.wrap)
    sentinel = sev = None
    try:
        # ---- agent start: READY, all nodes published
        log("N=%d: starting the agent" % n)
        cluster_path = "%s/%s" % (root, agent.cluster)
        zk_cpu0, mach0 = proc_cpu_s(zk.proc.pid), machine_cpu()
        agent.start()
        seen = {}

        def all_published():
            if agent.proc.poll() is not None:
                raise RuntimeError("agent exited (%s)" % agent.proc.returncode)
            try:
                c = len(kz.get_children(cluster_path))
            except Exception:  # noqa: BLE001 -- NoNode before the first create
                c = 0
            seen["c"] = c
            return c >= n
        # Polled gently: listing 10,000 children 100 times a second would load the very
        # ZooKeeper the agent is publishing to; the nodes' ctimes give the precise figures.
        wait_for(all_published, args.phase_timeout, "all %d nodes published" % n,
                 0.02 if n <= 1000 else 0.1)
        t_all = time.monotonic()
        mach1 = machine_cpu()
        startup_cpu = {"agent_cpu_s": proc_cpu_s(agent.pid),
                       "zookeeper_cpu_s": proc_cpu_s(zk.proc.pid) - zk_cpu0,
                       "wall_s": t_all - agent.t_spawn,
                       "machine_busy_pct": 100.0 * (mach1[0] - mach0[0]) / max(1, mach1[1] - mach0[1])}
        t_ready = wait_for(lambda: agent.notify.first("READY=1"), 5, "READY=1", 0.01)
        a = run["agent"]
        a["ready_ms"] = (t_ready - agent.t_spawn) * 1000
        a["all_published_seen_ms"] = (t_all - agent.t_spawn) * 1000
        a["startup_cpu"] = startup_cpu
        st = kz.exists("%s/agents/%s" % (root, agent.name))
        ctimes = node_ctimes(kz, [agent.node_path(nm) for nm, _ in instances])
        if st is not None and ctimes:
            a["agent_node_ctime_ms"] = st.ctime - agent.t_spawn_wall * 1000
            a["publish_span_from_session_ms"] = max(ctimes) - st.ctime
            a["first_node_from_session_ms"] = min(ctimes) - st.ctime
            cs = sorted(c - st.ctime for c in ctimes)
            a["publish_ctime_pct_ms"] = {str(q): cs[min(len(cs) - 1, int(len(cs) * q / 100))]
                                         for q in (10, 25, 50, 75, 90, 99, 100)}
        log("N=%d: READY %.0f ms, all %d nodes seen %.0f ms after start" % (
            n, a["ready_ms"], n, a["all_published_seen_ms"]))

        # ---- steady state, the agent alone on the farm: CPU window (the redis-servers'
        # own CPU over it too), RSS, threads, fds
        log("N=%d: warm-up %d s, then a %d s CPU window, the agent alone" % (
            n, args.warmup, args.window))
        if os.environ.get("SA_BENCH_TRACE"):
            prev = None
            for _ in range(int(args.warmup / 0.5)):
                st = agent.stats()
                cur = (st["probes_ok"], st["probes_failed"], st["probes_skipped"], st["zk_pending"])
                if prev:
                    log("  +%.1fs ok %d failed %d skipped %d zk_pending %d" % (
                        time.monotonic() - agent.t_spawn, cur[0] - prev[0], cur[1] - prev[1],
                        cur[2] - prev[2], cur[3]))
                prev = cur
                time.sleep(0.5)
        else:
            time.sleep(args.warmup)
        pids = {"agent": agent.pid, "zookeeper": zk.proc.pid}
        win = cpu_window(pids, args.window, agent, groups={"redis": farm.pids()})
        run["cpu"] = win
        a["cpu_s"] = win["procs"]["agent"]["cpu_s"]
        a["sched_s"] = win["procs"]["agent"]["sched_s"]
        a["probes"] = win["agent_probes"]
        a["wakeups_per_probe"] = win["procs"]["agent"]["wakeups"] / max(1, win["agent_probes"])
        a["us_per_probe"] = a["cpu_s"] * 1e6 / max(1, win["agent_probes"])
        a["us_per_instance_s"] = a["cpu_s"] * 1e6 / (n * win["window_s"])
        a["us_per_instance_s_sched"] = a["sched_s"] * 1e6 / (n * win["window_s"])
        a["redis"] = redis_figures(win["groups"]["redis"], win["window_s"], win["agent_probes"],
                                   run.get("redis_idle"))
        a.update(proc_snapshot(agent.pid))
        a["stats"] = agent.stats()
        log("N=%d: threads %s" % (n, {k: round(v * 1e3, 1) for k, v in win["agent_threads_sched_s"].items()}))
        log("N=%d: agent %.2f wake-ups/probe" % (n, a["wakeups_per_probe"]))
        log("N=%d: agent %.2f us/probe (%.2f sched), rss %.1f MiB, %d threads, %d fds; "
            "redis-servers %s us/probe net of idle (%.2f gross)" % (
                n, a["us_per_probe"], a["us_per_instance_s_sched"], a["rss_bytes"] / 2**20,
                a["threads"], a["fds"], fmt_opt(a["redis"].get("net_us_per_probe")),
                a["redis"]["us_per_probe"]))
        outdir = os.path.dirname(os.path.abspath(args.out))
        if args.perf:
            a["perf"] = perf_profile(agent.pid, args.perf, outdir, "agent-n%d" % n)

        # ---- Sentinel on the same farm, beside the agent for the faults
        if use_sentinel:
            log("N=%d: starting redis-sentinel, warm-up %d s" % (n, args.warmup))
            sentinel = Sentinel(procs, rdir, [(nm, s.port) for nm, s in instances])
            sentinel.start()
            sev = SentinelEvents(sentinel.port)
            run["sentinel_res"] = {"ready_ms": (sentinel.t_ready - sentinel.t_spawn) * 1000}
            time.sleep(args.warmup)

        # ---- faults
        for kind, det_to in (("kill9", 5.0), ("sigstop", 6.0)):
            log("N=%d: %d x %s%s" % (n, args.reps, kind, " (one instance each)" if solo else ""))
            res = fault_reps(kind, args.reps, victims, agent, kz, sev, det_to, 15.0)
            run[kind] = res
        if solo and args.reps:
            log("N=%d: 3 x kill9 of a shared server (%d instances down at once)" % (n, n // k))
            run["kill9_host"] = fault_reps("kill9", 3, instances[:n - solo], agent, kz, None,
                                           5.0, 15.0)

        # ---- shutdown: SIGTERM to exit with every node gone
        log("N=%d: SIGTERM" % n)
        t0 = time.monotonic()
        agent.proc.send_signal(signal.SIGTERM)
        gone = {}

        def all_gone():
            if "exit" not in gone and agent.proc.poll() is not None:
                gone["exit"] = time.monotonic()
            if "nodes" not in gone:
                try:
                    c = len(kz.get_children(cluster_path))
                except Exception:  # noqa: BLE001 -- NoNode
                    c = 0
                if c == 0 and kz.exists("%s/agents/%s" % (root, agent.name)) is None:
                    gone["nodes"] = time.monotonic()
            return "exit" in gone and "nodes" in gone
        wait_for(all_gone, 20, "agent exit with all nodes gone", 0.005)
        a["exit_code"] = agent.proc.returncode
        a["sigterm_exit_ms"] = (gone["exit"] - t0) * 1000
        a["sigterm_nodes_gone_ms"] = (gone["nodes"] - t0) * 1000
        a["sigterm_all_ms"] = (max(gone.values()) - t0) * 1000
        procs.forget(agent.proc)
        log("N=%d: agent exit %.0f ms, nodes gone %.0f ms after SIGTERM" % (
            n, a["sigterm_exit_ms"], a["sigterm_nodes_gone_ms"]))

        # ---- Sentinel alone on the farm: its CPU window (the redis-servers' with it)
        if sentinel:
            sev.close()
            sev = None
            log("N=%d: Sentinel alone: warm-up %d s, then a %d s CPU window" % (
                n, args.warmup, args.window))
            time.sleep(args.warmup)
            swin = cpu_window({"sentinel": sentinel.pid}, args.window,
                              groups={"redis": farm.pids()})
            run["cpu_sentinel"] = swin
            s = run["sentinel_res"]
            s["cpu_s"] = swin["procs"]["sentinel"]["cpu_s"]
            s["sched_s"] = swin["procs"]["sentinel"]["sched_s"]
            s["us_per_instance_s"] = s["cpu_s"] * 1e6 / (n * swin["window_s"])
            s["us_per_instance_s_sched"] = s["sched_s"] * 1e6 / (n * swin["window_s"])
            # Sentinel's "probes": one per instance-second, to read beside ours (it sends a
            # PING every 500 ms, an INFO every 10 s and a hello every 2 s per master).
            s["redis"] = redis_figures(swin["groups"]["redis"], swin["window_s"],
                                       n * swin["window_s"] / INTERVAL_S, run.get("redis_idle"))
            s.update(proc_snapshot(sentinel.pid))
            log("N=%d: sentinel %.2f us/master-s, rss %.1f MiB, %d fds; redis-servers %s us "
                "per instance-s net of idle" % (
                    n, s["us_per_instance_s"], s["rss_bytes"] / 2**20, s["fds"],
                    fmt_opt(s["redis"].get("net_us_per_probe"))))
            if args.perf:
                s["perf"] = perf_profile(sentinel.pid, args.perf, outdir, "sentinel-n%d" % n)
            t0 = time.monotonic()
            sentinel.proc.send_signal(signal.SIGTERM)
            try:
                sentinel.proc.wait(20)
                run["sentinel_res"]["sigterm_exit_ms"] = (time.monotonic() - t0) * 1000
            except subprocess.TimeoutExpired:
                run["sentinel_res"]["sigterm_exit_ms"] = None
            procs.forget(sentinel.proc)

        # ---- the floor: a bare client, alone on the same farm, the agent's instances
        if not args.no_floor:
            ports = {s.port for _, s in instances}
            wait_for(lambda: all(redis_ping(p) for p in ports), args.phase_timeout,
                     "every redis-server answering before the floor", 0.1)
            run["floor"] = {}
            for label, slots, mode in FLOOR_RUNS:
                if label not in args.floor_runs:
                    continue
                log("N=%d: floor, %s (--slots %d --mode %s): warm-up %d s, then a %d s CPU "
                    "window" % (n, label, slots, mode, args.warmup, args.window))
                fr = floor_run(args, procs, rdir, [(LOOPBACK, s.port) for _, s in instances],
                               slots, label, mode, farm, run.get("redis_idle"))
                run["floor"][label] = fr
                if "error" in fr:
                    log("N=%d: FLOOR %s FAILED: %s" % (n, label, fr["error"]))
                else:
                    log("N=%d: floor %s %.2f us/probe (%.2f sched), %.2f wake-ups/probe, "
                        "%d probes; redis-servers %s us/probe net of idle" % (
                            n, label, fr["us_per_probe"], fr["sched_us_per_probe"],
                            fr["wakeups_per_probe"], fr["probes"],
                            fmt_opt(fr["redis"].get("net_us_per_probe"))))
    finally:
        if sev:
            sev.close()
        if agent.proc is not None:
            procs.end(agent.proc, graceful=True)
            procs.forget(agent.proc)
        agent.notify.close()
        if sentinel and sentinel.proc is not None:
            procs.end(sentinel.proc, graceful=True)
            procs.forget(sentinel.proc)
        farm.stop(procs)
    run["loadavg_end"] = loadavg()
    return run


def versions(build):
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return None
    return {"agent": out([os.path.join(build, "sentinel-agent"), "-V"]),
            "redis": out([REDIS_SERVER, "--version"]),
            "kernel": os.uname().release,
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                         if l.startswith("model name")), None),
            "nproc": os.cpu_count()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"),
                    help="build dir holding sentinel-agent (a Release build)")
    ap.add_argument("--n", default="100,1000,10000", help="instance counts, comma-separated")
    ap.add_argument("--sentinel-max", type=int, default=1000,
                    help="run Redis Sentinel beside the agent for N up to this (0: never)")
    ap.add_argument("--per-server", type=int, default=100,
                    help="instances per redis-server when Sentinel does not take part")
    ap.add_argument("--max-servers", type=int, default=2000,
                    help="refuse a farm of more redis-servers than this")
    ap.add_argument("--warmup", type=int, default=10, help="seconds before the CPU window")
    ap.add_argument("--window", type=int, default=60, help="CPU window, seconds")
    ap.add_argument("--reps", type=int, default=12, help="repetitions of each fault")
    ap.add_argument("--perf", type=int, default=15,
                    help="seconds of perf record per process after the CPU window (0: off)")
    ap.add_argument("--phase-timeout", type=float, default=60.0, help="deadline of start-up phases")
    ap.add_argument("--time-limit", type=int, default=3600, help="deadline of the whole run, s")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the floor (probe-floor, a bare epoll client measured "
                         "after the agent on the same farm)")
    ap.add_argument("--floor-runs", default=",".join(r[0] for r in FLOOR_RUNS),
                    help="which floor runs, comma-separated, of: %s (ROLE + PING in one "
                         "write, all at once / in 10 groups; PING alone in 10 groups)" %
                         ", ".join(r[0] for r in FLOOR_RUNS))
    ap.add_argument("--redis-hz", type=int, default=1,
                    help="the farm's redis-servers' hz (Redis's default is 10). An idle "
                         "redis-server's cron costs about 1.2 ms of CPU a second at hz 10 on a "
                         "2-CPU VM: at one server per instance that is ~1,200 us per "
                         "instance-second, burying the probes' own cost to Redis (~10 us) and "
                         "loading the machine; at hz 1 a tenth of it")
    ap.add_argument("--idle-window", type=int, default=None,
                    help="seconds of the idle farm (no client) measured before the agent "
                         "starts, subtracted from the redis-servers' CPU (default: --window; "
                         "0: off)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "latest.json"),
                    help="raw results (JSON)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--wrap", default=None,
                    help="command prefix for the agent, e.g. \"valgrind --tool=callgrind "
                         "--callgrind-out-file=/tmp/cg.out\" (figures are then meaningless "
                         "but the profile is exact)")
    args = ap.parse_args()
    ns = [int(x) for x in args.n.split(",") if x.strip()]
    if args.idle_window is None:
        args.idle_window = args.window
    args.floor_runs = [x.strip() for x in args.floor_runs.split(",") if x.strip()]
    unknown = set(args.floor_runs) - {r[0] for r in FLOOR_RUNS}
    if unknown:
        sys.exit("bench.py: unknown --floor-runs %s" % ",".join(sorted(unknown)))
    random.seed(args.seed)

    if not os.path.exists(os.path.join(args.build, "sentinel-agent")):
        sys.exit("bench.py: no sentinel-agent in %s (build it first)" % args.build)
    if not args.no_floor and not os.path.exists(os.path.join(args.build, "probe-floor")):
        sys.exit("bench.py: no probe-floor in %s (cmake --build %s --target probe-floor; "
                 "it is not built by default), or run with --no-floor" % (args.build, args.build))
    if any(n <= args.sentinel_max for n in ns) and not os.path.exists(REDIS_SENTINEL):
        sys.exit("bench.py: %s missing (apt-get install redis-sentinel)" % REDIS_SENTINEL)

    procs = Procs()

    def on_signal(signum, frame):
        raise Interrupted("signal %d" % signum)

    def on_alarm(signum, frame):
        raise Interrupted("time limit of %d s reached" % args.time_limit)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.time_limit)

    import logging
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    from kazoo.client import KazooClient

    fdlim = raise_fd_limit()
    workdir = tempfile.mkdtemp(prefix="sa-bench-", dir="/tmp")
    results = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": vars(args),
                        "versions": versions(args.build), "fd_limit": fdlim,
                        "loadavg_start": loadavg(), "interval_s": INTERVAL_S,
                        "timeout_ms": TIMEOUT_MS, "rise": RISE, "fall": FALL,
                        # each process's CPU window with it alone on the farm (older
                        # results: agent and Sentinel in one window)
                        "windows": "apart", "redis_hz": args.redis_hz,
                        "floor_runs": [list(r) for r in FLOOR_RUNS
                                       if r[0] in args.floor_runs]},
               "runs": []}
    kz = None
    rc = 0
    try:
        zk = zookeeper(procs, workdir)
        log("starting ZooKeeper on %s" % zk.hosts)
        zk.start(timeout=60.0)
        kz = KazooClient(hosts=zk.hosts, timeout=10.0)
        kz.start(timeout=15)
        for n in ns:
            results["runs"].append(run_one(args, procs, zk, kz, n, workdir))
            save(args.out, results)
    except Interrupted as e:
        log("interrupted: %s" % e)
        rc = 130
    except Exception as e:  # noqa: BLE001 -- report, clean up, keep partial results
        import traceback
        traceback.print_exc()
        log("failed: %r" % (e,))
        rc = 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if kz is not None:
            try:
                kz.stop()
                kz.close()
            except Exception:  # noqa: BLE001
                pass
        procs.cleanup()
        results["meta"]["loadavg_end"] = loadavg()
        save(args.out, results)
        if os.environ.get("SA_BENCH_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log("work dir kept: %s" % workdir)
    log("raw results: %s" % args.out)
    return rc


def save(path, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""soak.py -- fault-injection soak of sentinel-agent: the real agent against real
redis-servers and a real ZooKeeper, with faults injected on a schedule, while its own
counters and the kernel's are sampled. Fails (exit 1) if, after warm-up, threads, fds or
watches move at a quiet checkpoint, or heap / RSS grow beyond the stated bounds.

    /usr/bin/python3 scripts/soak.py --build-dir build --duration 120
    /usr/bin/python3 scripts/soak.py --build-dir build --probes 1000000 --out soak-out

One fault cycle, repeated until the duration or the probe count is reached:
  1. SIGHUP reload that adds EXTRA instances
  2. a Redis SIGKILLed, restarted a second later
  3. a Redis SIGSTOPped for 2 s, then SIGCONT
  4. a Redis killed and its port taken by a garbage server (HTTP / junk / a huge bulk
     header), then the Redis restarted on the same port
  5. auth change: requirepass changed and the agent's links killed, then restored
  6. stats socket abuse: 300 clients at once (cap 256), over-long lines, clients that
     pipeline 500 commands and never read
  7. external deletion of some of the agent's nodes
  8. ZooKeeper SIGKILLed and restarted on the same data dir
  9. ZooKeeper SIGSTOPped longer than the session timeout, then SIGCONT
 10. forced session expiry: the agent frozen until the server drops its session
 11. SIGHUP reload that removes the EXTRA instances again
 12. settle, then a checkpoint: every instance up and published, ZooKeeper connected,
    and threads, fds, zk_watches, the server's watch count for our session, heap and
    RSS read at this quiet point.

The baseline is the first checkpoint after warm-up (one full fault cycle and at least
--warmup-probes probes), so that one-time growth (buffers sized by the first flood,
the ZooKeeper client's re-init, the allocator's second arena) is not counted as a leak.
The RSS after the first 10,000 probes (before any fault) is recorded too.

Every second a sampler writes a CSV row (OUT/samples.csv) for scripts/plot-soak.sh;
OUT/summary.json holds the checkpoints and the verdict.
"""

import argparse
import csv
import json
import logging
import os
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
from harness import instance, wait_until  # noqa: E402
import zk as zkmod  # noqa: E402

N_PLAIN = 8  # plain redis-servers
PW1, PW2 = "soak-pw-1", "soak-pw-2"


def PortGarbage(port, payload):
    """A garbage server bound to PORT (where a killed Redis listened)."""
    return harness.GarbageServer(payload, port=port)


GARBAGE = [harness.GarbageServer.HTTP, harness.GarbageServer.JUNK,
           b"$1000000000\r\n" + b"x" * 4096]


class Soak:
    def __init__(self, env, opts, log=print):
        self.env = env
        self.o = opts
        self.log = log
        self.failures = []
        self.checkpoints = []
        self.r10k = None
        self.cycles = 0
        self.phase = "start"
        self.t0 = time.monotonic()
        self.samples = []
        self.sample_lock = threading.Lock()
        self.stop_sampler = threading.Event()
        self.too_long_ok = 0
        self.too_long_bad = 0
        self.abuse_rejected = 0

    # ------------------------------------------------------------------ set-up
    def setup(self):
        o = self.o
        self.log("soak: starting ZooKeeper and %d redis-servers" % (N_PLAIN + 2))
        self.zk = zkmod.zookeeper(self.env)
        self.plain = [self.env.redis() for _ in range(N_PLAIN)]
        self.auth = self.env.redis(password=PW1)
        self.swap = self.env.redis()  # the one a garbage server replaces
        self.servers = self.plain + [self.auth, self.swap]
        self.base = []
        for i in range(o.instances):
            k = i % len(self.servers)
            srv = self.servers[k]
            keys = {"cluster": "c%d" % k}
            if srv is self.auth:
                keys["password"] = PW1
            self.base.append(instance("i%03d" % i, srv, **keys))
        self.extra = [instance("x%02d" % i, self.plain[i % N_PLAIN], cluster="extra")
                      for i in range(o.extra)]
        self.agent = zkmod.zk_agent(self.env, self.zk, list(self.base), root="/soak",
                                    session_timeout="%ds" % o.session_timeout, name="soak",
                                    interval="%dms" % o.interval_ms,
                                    timeout="%dms" % o.timeout_ms, shutdown_timeout="10s",
                                    log_level="info")
        self.kz = zkmod.kazoo(self.env, self.zk)
        self.sampler = threading.Thread(target=self._sampler, daemon=True)
        self.sampler.start()

    # ---------------------------------------------------------------- sampling
    def _server_watches(self, sid):
        if not sid or self.zk.stopped or not self.zk.running():
            return -1
        try:
            return len(zkmod.parse_wchc(zkmod.fourlw(self.zk.port, "wchc", timeout=0.5))
                       .get(sid, []))
        except OSError:
            return -1

    def read(self):
        """One reading of the agent's and the kernel's counters."""
        st = self.agent.stats()
        pid = self.agent.pid
        sid = zkmod.session_of(st)
        return {
            "t_s": round(time.monotonic() - self.t0, 2),
            "probes_total": st["probes_total"],
            "probes_failed": st["probes_failed"],
            "probes_inflight": st["probes_inflight"],
            "rss_bytes": harness.proc_rss_bytes(pid),
            "heap_bytes": st["heap_bytes"],
            "threads": harness.proc_threads(pid),
            "fds": harness.proc_fds(pid),
            "agent_threads": st["threads"],
            "agent_fds": st["fds"],
            "agent_rss_bytes": st["rss_bytes"],
            "zk_watches": st["zk_watches"],
            "server_watches": self._server_watches(sid),
            "zk_state": st["zk_state"],
            "zk_sessions_expired": st["zk_sessions_expired"],
            "config_reloads": st["config_reloads"],
            "phase": self.phase,
        }

    def _sampler(self):
        while not self.stop_sampler.wait(self.o.sample_s):
            if not self.agent.running():
                return
            try:
                row = self.read()
            except (OSError, EOFError, ValueError, KeyError):
                continue  # frozen on purpose, or busy: the next sample will do
            with self.sample_lock:
                self.samples.append(row)
            if self.r10k is None and row["probes_total"] >= 10000:
                self.r10k = row

    def probes(self):
        return self.agent.stats()["probes_total"]

    def fail(self, msg):
        self.log("soak: FAIL: " + msg)
        self.failures.append(msg)

    def check_alive(self):
        if not self.agent.running():
            raise AssertionError("agent died with %s:\n%s" % (self.agent.proc.returncode,
                                                               self.agent.log_tail()))

    # ------------------------------------------------------------------ faults
    def reload(self, insts):
        before = self.agent.stats()["config_reloads"]
        self.agent.instances_conf = list(insts)
        self.agent.write_config()
        self.agent.signal(signal.SIGHUP)
        wait_until(lambda: self.agent.stats()["config_reloads"] > before, 10,
                   msg="SIGHUP reload counted")

    def redis_kill_restart(self, r):
        r.kill9()
        time.sleep(1.0)  # fault duration, not an assertion
        r.start()

    def redis_stop_cont(self, r):
        r.sigstop()
        time.sleep(2.0)
        r.sigcont()

    def garbage_swap(self):
        payload = GARBAGE[self.cycles % len(GARBAGE)]
        self.swap.kill9()
        g = PortGarbage(self.swap.port, payload)
        try:
            time.sleep(3.0)
        finally:
            g.cleanup()
        self.swap.start()

    def auth_change(self):
        import redis
        c = self.auth.client(password=PW1)
        try:
            c.config_set("requirepass", PW2)
        finally:
            c.close()
        c = self.auth.client(password=PW2)
        try:
            c.client_kill_filter(_type="normal", skipme=True)
            time.sleep(2.0)
            c.config_set("requirepass", PW1)
            c.client_kill_filter(_type="normal", skipme=True)
        except redis.exceptions.RedisError as e:
            self.log("soak: auth change: %s" % e)
        finally:
            c.close()

    def stats_abuse(self):
        path = self.agent.stats_socket
        socks = []
        try:
            # a flood beyond the client cap, each with a command it never reads the answer of
            for _ in range(300):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(2)
                try:
                    s.connect(path)
                    s.sendall(b"stats\n")
                except OSError:
                    self.abuse_rejected += 1
                socks.append(s)
            # clients that pipeline without reading
            for _ in range(20):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(0.5)
                try:
                    s.connect(path)
                    s.sendall(b"metrics\n" * 500)
                except OSError:
                    pass
                socks.append(s)
            time.sleep(1.0)
        finally:
            for s in socks:
                s.close()
        # The flood's clients stay connected until the agent has read their EOF; until then
        # new connections beyond the cap are closed at once, by design. Wait for the slots.
        wait_until(lambda: self.agent.stats().get("stats_clients", 1) <= 1, 20, interval=0.1,
                   msg="the flood's connections to be closed by the agent")
        # over-long lines: each must get the error answer and EOF
        for i in range(20):
            try:
                with harness.StatsClient(path, timeout=5) as c:
                    c.send(b"x" * (2000 + 97 * i))
                    ans = c.read_answer(5)
                    if ans == b'{"error":"line too long"}\n\n':
                        self.too_long_ok += 1
                    else:
                        self.too_long_bad += 1
            except (OSError, EOFError):
                self.too_long_bad += 1

    def delete_nodes(self):
        for inst in self.base[:5]:
            p = "/soak/%s/%s" % (inst["cluster"], inst["name"])
            try:
                self.kz.delete(p)
            except Exception:  # noqa: BLE001 -- not there right now: fine
                pass

    def zk_restart(self):
        self.zk.restart()
        # kazoo reconnects by itself; wait for it so that the next fault can use it
        wait_until(lambda: self.kz.connected, 30, interval=0.1, msg="kazoo reconnected")

    def zk_stop_cont(self):
        self.zk.sigstop()
        time.sleep(self.o.session_timeout * 1.5)
        self.zk.sigcont()

    def force_expiry(self):
        sid = wait_until(lambda: zkmod.session_of(self.agent.stats()), 30,
                         msg="agent session before expiry")
        wait_until(lambda: sid in self.zk.session_ids(), 30, msg="session on the server")
        zkmod.stop_agent_until_expired(self.agent, self.zk, sid, timeout=60)

    # -------------------------------------------------------------- checkpoints
    def settle(self, timeout=60):
        names = set(i["name"] for i in self.base)

        def settled():
            self.check_alive()
            st = self.agent.stats()
            if st["zk_state"] != "connected":
                return False
            insts = self.agent.instances()
            if set(i["name"] for i in insts) != names:
                return False
            return all(i["state"] == "up" and i["published"] for i in insts)
        wait_until(settled, timeout, interval=0.2, msg="every instance up and published")

    def checkpoint(self):
        self.phase = "checkpoint"
        self.settle()
        base = self.checkpoints[0] if self.checkpoints and self.warmed() else None
        # At a quiet point the counted things must be exactly where they were; poll a
        # little, since a watch re-arm or a reconnect may be completing right now.
        last = {}

        def steady():
            r = self.read()
            last["r"] = r
            if r["server_watches"] < 0 or r["zk_watches"] != r["server_watches"]:
                return False
            if base is None:
                time.sleep(1.0)
                r2 = self.read()
                last["r"] = r2
                return r2 if all(r2[k] == r[k] for k in ("threads", "fds", "zk_watches",
                                                          "server_watches")) else False
            return r if all(r[k] == base[k] for k in ("threads", "fds", "zk_watches",
                                                       "server_watches")) else False
        try:
            r = wait_until(steady, 20, interval=0.5, msg="quiet counters")
        except harness.WaitTimeout:
            r = last.get("r") or self.read()
            if base is not None:
                self.fail("checkpoint %d: counters moved: %s vs baseline %s" % (
                    len(self.checkpoints), {k: r[k] for k in ("threads", "fds", "zk_watches",
                                                              "server_watches")},
                    {k: base[k] for k in ("threads", "fds", "zk_watches", "server_watches")}))
            else:
                self.fail("warm-up checkpoint never steady: %s" % r)
        r["cycle"] = self.cycles
        if base is not None:
            if r["heap_bytes"] > base["heap_bytes"] + self.o.heap_bound:
                self.fail("checkpoint %d: heap %d > baseline %d + %d" % (
                    len(self.checkpoints), r["heap_bytes"], base["heap_bytes"], self.o.heap_bound))
            if self.o.rss_bound >= 0 and r["rss_bytes"] > base["rss_bytes"] + self.o.rss_bound:
                self.fail("checkpoint %d: RSS %d > baseline %d + %d" % (
                    len(self.checkpoints), r["rss_bytes"], base["rss_bytes"], self.o.rss_bound))
        if not self.warmed():
            self.checkpoints = [r]  # still warming up: this is the newest candidate baseline
        else:
            self.checkpoints.append(r)
        self.log("soak: checkpoint cycle %d probes %d rss %d heap %d threads %d fds %d "
                 "watches %d/%d" % (self.cycles, r["probes_total"], r["rss_bytes"],
                                    r["heap_bytes"], r["threads"], r["fds"], r["zk_watches"],
                                    r["server_watches"]))
        return r

    def warmed(self):
        return getattr(self, "_warmed", False)

    # --------------------------------------------------------------------- run
    def cycle(self):
        steps = [
            ("reload-add", lambda: self.reload(self.base + self.extra)),
            ("redis-kill9", lambda: self.redis_kill_restart(self.plain[self.cycles % N_PLAIN])),
            ("redis-sigstop", lambda: self.redis_stop_cont(self.plain[(self.cycles + 1) % N_PLAIN])),
            ("garbage", self.garbage_swap),
            ("auth-change", self.auth_change),
            ("stats-abuse", self.stats_abuse),
            ("zk-delete-nodes", self.delete_nodes),
            ("zk-restart", self.zk_restart),
            ("zk-sigstop", self.zk_stop_cont),
            ("zk-expiry", self.force_expiry),
            ("reload-remove", lambda: self.reload(self.base)),
        ]
        for name, fn in steps:
            self.check_alive()
            self.phase = name
            fn()
            time.sleep(self.o.gap_s)
        self.cycles += 1

    def done(self):
        elapsed = time.monotonic() - self.t0
        if self.o.probes and self.probes() < self.o.probes:
            return False
        return elapsed >= self.o.duration

    def run(self):
        self.setup()
        self.phase = "warm-up"
        self.settle()
        wait_until(lambda: self.r10k is not None or self.probes() >= 10000, 120, interval=0.5,
                   msg="10,000 probes")
        while self.r10k is None:
            time.sleep(self.o.sample_s)
        while True:
            self.cycle()
            self.checkpoint()
            if not self.warmed() and self.checkpoints[0]["probes_total"] >= self.o.warmup_probes:
                self._warmed = True
                self.log("soak: baseline taken after %d cycle(s)" % self.cycles)
            if self.warmed() and self.done() and len(self.checkpoints) >= 2:
                break
        self.phase = "stop"
        self.stop_sampler.set()
        self.sampler.join(5)
        final = self.checkpoints[-1]
        rc = self.agent.stop(timeout=20)
        if rc != 0:
            self.fail("agent exit status %s at SIGTERM" % rc)
        if self.too_long_bad:
            self.fail("%d over-long lines did not get the line-too-long answer" % self.too_long_bad)
        return self.summary(final, rc)

    def summary(self, final, rc):
        base = self.checkpoints[0]
        s = {
            "ok": not self.failures,
            "failures": self.failures,
            "instances": self.o.instances,
            "interval_ms": self.o.interval_ms,
            "cycles": self.cycles,
            "elapsed_s": round(time.monotonic() - self.t0, 1),
            "probes_total": final["probes_total"],
            "probes_failed": final["probes_failed"],
            "sessions_expired": final["zk_sessions_expired"],
            "config_reloads": final["config_reloads"],
            "after_10k": self.r10k,
            "baseline": base,
            "final": final,
            "checkpoints": self.checkpoints,
            "rss_growth_vs_baseline": final["rss_bytes"] - base["rss_bytes"],
            "rss_growth_vs_10k": final["rss_bytes"] - self.r10k["rss_bytes"],
            "heap_growth_vs_baseline": final["heap_bytes"] - base["heap_bytes"],
            "heap_growth_vs_10k": final["heap_bytes"] - self.r10k["heap_bytes"],
            "rss_bound": self.o.rss_bound,
            "heap_bound": self.o.heap_bound,
            "too_long_answers_ok": self.too_long_ok,
            "stats_flood_rejected_connects": self.abuse_rejected,
            "exit_status": rc,
        }
        return s

    def write(self, outdir, summary):
        os.makedirs(outdir, exist_ok=True)
        with self.sample_lock:
            rows = list(self.samples)
        if rows:
            with open(os.path.join(outdir, "samples.csv"), "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                w.writeheader()
                w.writerows(rows)
        with open(os.path.join(outdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)


def options(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get("SA_BUILD_DIR", "build"))
    ap.add_argument("--duration", type=float, default=120, help="seconds, at least")
    ap.add_argument("--probes", type=int, default=0, help="run until this many probes, at least")
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--extra", type=int, default=10, help="instances a reload adds and removes")
    ap.add_argument("--interval-ms", type=int, default=100)
    ap.add_argument("--timeout-ms", type=int, default=80)
    ap.add_argument("--session-timeout", type=int, default=3, help="seconds")
    ap.add_argument("--warmup-probes", type=int, default=10000)
    ap.add_argument("--rss-bound", type=int, default=1 << 20,
                    help="bytes of RSS growth allowed after warm-up (-1: not checked)")
    ap.add_argument("--heap-bound", type=int, default=256 << 10,
                    help="bytes of heap growth allowed after warm-up")
    ap.add_argument("--sample-s", type=float, default=1.0)
    ap.add_argument("--gap-s", type=float, default=0.5, help="pause between faults")
    ap.add_argument("--out", default=None, help="directory for samples.csv and summary.json")
    return ap.parse_args(argv)


def main():
    o = options()
    logging.basicConfig(level=logging.ERROR)  # kazoo's connection chatter is expected here
    # SIGTERM/SIGINT end the run through the finally below, which stops every process started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    os.environ["SA_BUILD_DIR"] = os.path.abspath(o.build_dir)
    env = harness.Env()
    soak = Soak(env, o, log=lambda m: print(m, flush=True))
    summary = None
    try:
        summary = soak.run()
    except AssertionError as e:
        soak.fail(str(e))
    finally:
        soak.stop_sampler.set()
        if summary is None and soak.checkpoints:
            summary = {"ok": False, "failures": soak.failures, "checkpoints": soak.checkpoints}
        if o.out and summary is not None:
            soak.write(o.out, summary)
        if soak.failures:
            print("--- agent stderr (tail) ---\n" + soak.agent.log_tail(40)
                  if hasattr(soak, "agent") else "", flush=True)
        env.cleanup(failed=bool(soak.failures))
    if summary:
        print(json.dumps({k: v for k, v in summary.items() if k != "checkpoints"}, indent=1))
    print("soak: %s" % ("PASS" if not soak.failures else "FAIL"))
    return 0 if not soak.failures else 1


if __name__ == "__main__":
    sys.exit(main())

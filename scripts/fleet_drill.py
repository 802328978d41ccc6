#!/usr/bin/python3
"""fleet_drill.py -- a fleet of sentinel-agents against one three-server ZooKeeper ensemble,
driven through the failures an ensemble sees in production, measured from ZooKeeper's side.

    /usr/bin/python3 scripts/fleet_drill.py --build-dir build [--agents 50 --instances 20]

One ensemble (tests/integration/zk.py's Ensemble, on loopback), AGENTS agents with INSTANCES
instances each (instance i of every agent probes the shared redis-server i, in cluster
cNN), interval 1 s, session timeout 10 s. Phases, each ending with ZooKeeper matching every
agent's state again:

  startup   every agent started at once
  steady    nothing happens for --steady seconds
  leader    the leader is killed while redis-server 0 dies (AGENTS instances down at once);
            the old leader and the Redis come back
  follower  the follower holding the most agent sessions is killed while redis-server 1
            dies; both come back
  rolling   rolling restart of the ensemble (followers, then the leader; SIGTERM, start,
            wait until it serves) while redis-server 2 is down; it comes back afterwards
  agents    10 % of the agents SIGKILLed and started again (they take their nodes over)

Per phase: ZooKeeper requests/s (client packets received, all servers) and writes/s
(transactions: the zxid's counter), mean and peak second; sessions (the leader's
zk_global_sessions) and watches (`wchs`, all servers) at the end; nodes lost (a consumer's
children watches saw a published node missing: must be 0); nodes re-created (czxid
changed); session expiries counted by the agents; and the time from the fault until
ZooKeeper holds every agent's current state again (every node's `state` equal to what the
agent probed, owned by the agent's current session, every instance published).

Exit 0 when no node was lost and no session expired, 1 otherwise. OUT/fleet.json holds the
figures; the table goes to stdout.
"""

import argparse
import json
import logging
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
from harness import instance  # noqa: E402
import zk as zkmod  # noqa: E402

ROOT = "/fleet"


def log(msg):
    print("[fleet %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ------------------------------------------------------------------ ZooKeeper's side

class Sampler:
    """Once a second: client packets received (per server; a restarted server's counter
    starts again from 0) and the highest zxid (its low 32 bits count transactions within an
    epoch; a new leader starts a new epoch). Keeps running totals and per-second series."""

    def __init__(self, ens):
        self.ens = ens
        self.lock = threading.RLock()
        self.requests = 0
        self.writes = 0
        self.series = []  # (t, requests_total, writes_total): the drill's own reads excluded
        self.own = 0  # requests the drill itself sent (its reads, its four-letter words)
        self._pkts = {}
        self._zxid = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        # Every four-letter word (ours: mntr, srvr, wchs, cons) counts as a packet received.
        orig = zkmod.fourlw

        def counted(port, cmd, timeout=2.0):
            self.count_own(1)
            return orig(port, cmd, timeout)
        zkmod.fourlw = counted

    def _sample(self):
        zxids = []
        for s in self.ens.servers:
            if not s.running() or s.stopped:
                continue
            try:
                m = s.mntr()
                pk = int(m.get("zk_packets_received", "0"))
                srvr = s.fourlw("srvr", timeout=1.0)
            except (OSError, ValueError):
                continue
            prev = self._pkts.get(s.myid)
            if prev is not None:
                self.requests += pk - prev if pk >= prev else pk
            self._pkts[s.myid] = pk
            for line in srvr.splitlines():
                if line.startswith("Zxid: "):
                    zxids.append(int(line.split()[1], 16))
        if zxids:
            z = max(zxids)
            if self._zxid is not None:
                if z >> 32 == self._zxid >> 32:
                    self.writes += max(0, (z & 0xffffffff) - (self._zxid & 0xffffffff))
                elif z >> 32 > self._zxid >> 32:
                    self.writes += z & 0xffffffff
            if self._zxid is None or z > self._zxid:
                self._zxid = z
        self.series.append((time.monotonic(), self.requests - self.own, self.writes))

    def _run(self):
        while not self._stop.wait(1.0):
            with self.lock:
                self._sample()

    def snapshot(self):
        with self.lock:
            self._sample()
            return self.series[-1]

    def count_own(self, n):
        with self.lock:
            self.own += n

    def peaks(self, t0, t1):
        """Highest (requests, writes) per second between T0 and T1, over windows of at least
        a second (an extra sample taken at a phase's edge would otherwise divide a few
        packets by a few milliseconds)."""
        with self.lock:
            pts = [p for p in self.series if t0 <= p[0] <= t1]
        pr = pw = 0.0
        i = 0
        for j in range(1, len(pts)):
            if pts[j][0] - pts[i][0] < 0.9:
                continue
            (ta, ra, wa), (tb, rb, wb) = pts[i], pts[j]
            pr = max(pr, (rb - ra) / (tb - ta))
            pw = max(pw, (wb - wa) / (tb - ta))
            i = j
        return pr, pw

    def stop(self):
        self._stop.set()
        self._thread.join(3)


def ensemble_counts(ens):
    """(sessions per the leader, total watches over all servers)."""
    sessions = None
    watches = 0
    for s in ens.servers:
        if not s.running() or s.stopped:
            continue
        try:
            m = s.mntr()
            if m.get("zk_server_state") == "leader":
                sessions = int(m.get("zk_global_sessions", "0"))
            for line in s.fourlw("wchs").splitlines():
                if line.startswith("Total watches:"):
                    watches += int(line.split(":")[1])
        except (OSError, ValueError):
            continue
    return sessions, watches


class LossWatch:
    """A consumer's view: a children watch on /fleet/agents and every cluster. Once ARM()ed
    with the set of published nodes, a listing that lacks one of them is a loss, and the
    listing that has it again ends the gap."""

    def __init__(self, kz, clusters):
        from kazoo.recipe.watchers import ChildrenWatch
        self.lock = threading.Lock()
        self.expected = {}  # parent -> set of names
        self.lost = []  # paths, once per disappearance
        self.gaps = []  # seconds each disappearance lasted
        self.since = {}  # path -> when it was seen missing
        self.armed = False
        self._w = [ChildrenWatch(kz, p, func=self._cb(p))
                   for p in ["%s/agents" % ROOT] + ["%s/%s" % (ROOT, c) for c in clusters]]

    def _cb(self, parent):
        def cb(children):
            now = time.monotonic()
            with self.lock:
                if not self.armed:
                    return
                have = set(children)
                for name in self.expected.get(parent, ()):
                    path = "%s/%s" % (parent, name)
                    if name not in have and path not in self.since:
                        self.since[path] = now
                        self.lost.append(path)
                    elif name in have and path in self.since:
                        self.gaps.append(now - self.since.pop(path))
        return cb

    def arm(self, paths):
        with self.lock:
            self.expected = {}
            for p in paths:
                parent, _, name = p.rpartition("/")
                self.expected.setdefault(parent, set()).add(name)
            self.armed = True

    def mark(self):
        with self.lock:
            return len(self.lost), len(self.gaps)

    def since_mark(self, mark):
        """(paths lost since MARK, the longest gap ended since, how many are still missing)."""
        with self.lock:
            return self.lost[mark[0]:], max(self.gaps[mark[1]:], default=0.0), len(self.since)


# ----------------------------------------------------------------------- the fleet

class Fleet:
    def __init__(self, env, ens, redises, n_agents, per_agent, sampler):
        self.env = env
        self.sampler = sampler
        self.ens = ens
        self.redises = redises
        self.agents = []
        for h in range(n_agents):
            insts = [instance("h%02d-i%02d" % (h, i), redises[i % len(redises)],
                              cluster="c%02d" % i) for i in range(per_agent)]
            a = harness.Agent(env, insts, name="h%02d" % h, start=False,
                              zookeeper={"hosts": ens.hosts, "root": ROOT,
                                         "session_timeout": "10s"},
                              interval="1s", timeout="500ms", rise=2, fall=2,
                              log_level="info")
            self.agents.append(a)
        self.clusters = sorted({"c%02d" % i for i in range(per_agent)})

    def start(self, agents=None):
        agents = self.agents if agents is None else agents
        for a in agents:
            a.start(wait_ready=False)
        for a in agents:
            a.wait_ready(30)

    def paths(self):
        out = []
        for a in self.agents:
            out.append("%s/agents/%s" % (ROOT, a.label))
            out += ["%s/%s/%s" % (ROOT, i["cluster"], i["name"]) for i in a.instances_conf]
        return out

    def expired(self):
        return sum(a.stats()["zk_sessions_expired"] for a in self.agents if a.running())

    def sessions(self):
        return {a.label: zkmod.session_of(a.stats()) for a in self.agents}

    def agents_settled(self):
        """Every agent connected with every instance published: {label: (sid, instances)}
        or None."""
        out = {}
        for a in self.agents:
            st = a.stats()
            if st["zk_state"] != "connected":
                return None
            insts = a.instances()
            if not all(i["published"] for i in insts):
                return None
            out[a.label] = (zkmod.session_of(st), insts)
        return out

    def zk_matches(self, kz, settled):
        """ZooKeeper holds, for every instance, the agent's probed state under the agent's
        current session."""
        reqs = []
        # Under the sampler's lock, so no sample falls between sending these reads and the
        # servers counting them: they are subtracted from the requests in step.
        with self.sampler.lock:
            for label, (sid, insts) in settled.items():
                reqs.append((sid, None, kz.get_async("%s/agents/%s" % (ROOT, label))))
                for i in insts:
                    want = "maint" if i.get("maint") else i["state"]
                    reqs.append((sid, want, kz.get_async("%s/%s/%s" % (ROOT, i["cluster"],
                                                                        i["name"]))))
            self.sampler.count_own(len(reqs))
            for _, _, r in reqs:
                r.wait(10)
        for sid, want, r in reqs:
            try:
                data, st = r.get(timeout=10)
            except Exception:  # noqa: BLE001 -- missing, or the connection is down
                return False
            if st.ephemeralOwner != sid:
                return False
            if want is not None and json.loads(data.decode())["state"] != want:
                return False
        return True

    def wait_converged(self, kz, t0, timeout=120):
        """Seconds from T0 until ZooKeeper matches every agent's state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                settled = self.agents_settled()
            except (OSError, EOFError, ValueError):
                settled = None
            if settled is not None and self.zk_matches(kz, settled):
                return time.monotonic() - t0
            time.sleep(0.05)
        raise AssertionError("ZooKeeper did not match every agent's state within %d s" % timeout)

    def czxids(self, kz):
        out = {}
        with self.sampler.lock:
            reqs = [(p, kz.exists_async(p)) for p in self.paths()]
            self.sampler.count_own(len(reqs))
            for _, r in reqs:
                r.wait(10)
        for p, r in reqs:
            st = r.get(timeout=10)
            out[p] = st.czxid if st is not None else None
        return out


# ------------------------------------------------------------------------ phases

class Drill:
    def __init__(self, env, ens, fleet, kz, sampler, loss):
        self.env, self.ens, self.fleet, self.kz = env, ens, fleet, kz
        self.sampler, self.loss = sampler, loss
        self.results = []
        self.czx = None

    def run(self, name, fault, restore=None, quiet=5.0, measure=True):
        """Runs FAULT (returns a note, or (note, the time convergence is measured from;
        default: the fault's start)), waits until ZooKeeper matches every agent, runs
        RESTORE likewise, then QUIET seconds; records the phase's figures."""
        log("phase %s" % name)
        t0, r0, w0 = self.sampler.snapshot()
        exp0 = self.fleet.expired()
        lost0 = self.loss.mark() if self.loss else None
        out = fault() or ""
        note, t_ref = out if isinstance(out, tuple) else (out, t0)
        converge = self.fleet.wait_converged(self.kz, t_ref)
        if not measure:
            converge = None
        else:
            log("  %s: ZooKeeper matches every agent %.2f s after the fault" % (name, converge))
        restore_s = None
        if restore is not None:
            tr = time.monotonic()
            restore()
            restore_s = self.fleet.wait_converged(self.kz, tr)
            log("  %s: restored, matching again after %.2f s" % (name, restore_s))
        time.sleep(quiet)
        t1, r1, w1 = self.sampler.snapshot()
        sessions, watches = ensemble_counts(self.ens)
        czx = self.fleet.czxids(self.kz)
        recreated = sum(1 for p, c in czx.items() if self.czx and self.czx.get(p) not in (None, c))
        missing = sum(1 for c in czx.values() if c is None)
        self.czx = czx
        pr, pw = self.sampler.peaks(t0, t1)
        lost, gap, still = self.loss.since_mark(lost0) if lost0 else ([], 0.0, 0)
        dt = t1 - t0
        res = {
            "phase": name, "seconds": round(dt, 1), "note": note,
            "requests_per_s": round(max(0, r1 - r0) / dt, 1), "writes_per_s": round((w1 - w0) / dt, 1),
            "peak_requests_per_s": round(pr, 1), "peak_writes_per_s": round(pw, 1),
            "requests": r1 - r0, "writes": w1 - w0,
            "sessions": sessions, "watches": watches,
            "agent_watches": sum(a.stats()["zk_watches"] for a in self.fleet.agents),
            "nodes_lost": len(lost), "longest_gap_s": round(gap, 3),
            "nodes_missing_at_end": missing + still,
            "nodes_recreated": recreated,
            "expiries": self.fleet.expired() - exp0,
            "converge_s": None if converge is None else round(converge, 2),
            "restore_converge_s": None if restore_s is None else round(restore_s, 2),
        }
        log("  %s" % json.dumps(res))
        self.results.append(res)
        return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--instances", type=int, default=20, help="instances per agent")
    ap.add_argument("--redis", type=int, default=20, help="shared redis-servers")
    ap.add_argument("--steady", type=float, default=60.0, help="seconds of the steady phase")
    ap.add_argument("--kill-fraction", type=float, default=0.10)
    ap.add_argument("--out", default="fleet-out")
    args = ap.parse_args()
    os.environ["SA_BUILD_DIR"] = os.path.abspath(args.build_dir)
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    os.makedirs(args.out, exist_ok=True)

    env = harness.Env()
    sampler = None
    rc = 0
    try:
        log("ensemble of 3, %d redis-servers" % args.redis)
        ens = env.register(zkmod.Ensemble(env.dir, jvm_opts=["-Xmx512m", "-XX:+UseSerialGC"]))
        ens.POLL_S = 0.25  # our own four-letter words are subtracted, but fewer is better
        redises = [env.redis(extra_conf=["maxclients 10000"]) for _ in range(args.redis)]
        kz = zkmod.kazoo(env, ens, connection_retry={"max_tries": -1, "delay": 0.05,
                                                     "backoff": 1.5, "max_delay": 0.5})
        sampler = Sampler(ens)
        fleet = Fleet(env, ens, redises, args.agents, args.instances, sampler)
        loss = None  # watches children, so it starts once the containers exist
        drill = Drill(env, ens, fleet, kz, sampler, None)

        def startup():
            fleet.start()
            return "%d agents x %d instances" % (args.agents, args.instances)
        drill.run("startup", startup)
        loss = drill.loss = LossWatch(kz, fleet.clusters)
        loss.arm(fleet.paths())
        drill.czx = fleet.czxids(kz)
        sids = fleet.sessions()

        drill.run("steady", lambda: time.sleep(args.steady) or "%.0f s, no change" % args.steady,
                  quiet=0, measure=False)

        def kill_leader():
            ldr = ens.leader()
            drill.victim = ldr
            ldr.kill9()
            redises[0].kill9()
            new = ens.leader(timeout=60)
            return "%s killed, %s elected; redis 0 down (%d instances)" % (
                ldr.name, new.name, args.agents)

        def restore_server():
            ens.start_server(drill.victim)
            drill.redis_victim.start()

        drill.redis_victim = redises[0]
        drill.run("leader", kill_leader, restore_server)

        def kill_follower():
            sids_now = set(fleet.sessions().values())
            ldr = ens.leader()
            best, nbest = None, -1
            for s in ens.servers:
                if s is ldr:
                    continue
                n = len(s.session_ids() & sids_now)
                if n > nbest:
                    best, nbest = s, n
            drill.victim = best
            best.kill9()
            redises[1].kill9()
            return "%s killed (held %d agent sessions); redis 1 down" % (best.name, nbest)
        drill.redis_victim = redises[1]
        drill.run("follower", kill_follower, restore_server)

        def rolling():
            redises[2].kill9()
            ldr = ens.leader()
            steps = []
            for s in [x for x in ens.servers if x is not ldr] + [ldr]:
                t = time.monotonic()
                s.stop()
                ens.start_server(s)
                steps.append("%s %.1fs" % (s.name, time.monotonic() - t))
            return ("rolling: " + ", ".join(steps) + "; redis 2 down meanwhile; matching "
                    "measured from the last server's return", time.monotonic())

        def restore_redis2():
            redises[2].start()
        drill.run("rolling", rolling, restore_redis2)

        nkill = max(1, int(round(args.agents * args.kill_fraction)))
        victims = fleet.agents[::max(1, len(fleet.agents) // nkill)][:nkill]

        def kill_agents():
            for a in victims:
                a.proc.kill()
            for a in victims:
                a.proc.wait(10)
            fleet.start(victims)
            return "%d agents SIGKILLed and restarted" % len(victims)
        drill.run("agents", kill_agents)

        new_sids = fleet.sessions()
        changed = sorted(k for k in sids if sids[k] != new_sids[k])
        expected = sorted(a.label for a in victims)
        summary = {"agents": args.agents, "instances_per_agent": args.instances,
                   "redis_servers": args.redis, "phases": drill.results,
                   "sessions_changed": changed, "sessions_expected_to_change": expected}
        with open(os.path.join(args.out, "fleet.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print_table(drill.results)
        bad = [r for r in drill.results if r["nodes_lost"] or r["expiries"]
               or r["nodes_missing_at_end"]]
        if changed != expected:
            log("FAIL: sessions changed for %s, expected only %s" % (changed, expected))
            rc = 1
        if bad:
            log("FAIL: nodes lost or sessions expired in %s" % [r["phase"] for r in bad])
            rc = 1
    except Exception:  # noqa: BLE001 -- report, then tear down
        import traceback
        traceback.print_exc()
        rc = 1
    finally:
        if sampler:
            sampler.stop()
        env.cleanup(failed=rc != 0)
    return rc


def print_table(results):
    cols = [("phase", "%-9s"), ("seconds", "%7s"), ("requests_per_s", "%7s"),
            ("peak_requests_per_s", "%8s"), ("writes_per_s", "%7s"), ("peak_writes_per_s", "%8s"),
            ("sessions", "%8s"), ("watches", "%7s"), ("nodes_lost", "%5s"),
            ("longest_gap_s", "%6s"), ("nodes_recreated", "%9s"), ("expiries", "%8s"), ("converge_s", "%8s"),
            ("restore_converge_s", "%8s")]
    heads = ["phase", "s", "req/s", "peak", "wr/s", "peak", "sessions", "watches", "lost",
             "gap s", "recreated", "expiries", "match s", "restore"]
    print(" ".join((fmt % h) for (_, fmt), h in zip(cols, heads)))
    for r in results:
        print(" ".join((fmt % ("-" if r[k] is None else r[k])) for k, fmt in cols))
    for r in results:
        print("%s: %s" % (r["phase"], r["note"]))


if __name__ == "__main__":
    sys.exit(main())

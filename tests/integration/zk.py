"""zk.py -- throwaway ZooKeeper for the integration tests: one standalone
ZooKeeperServerMain on a free loopback port with its own data dir, or a three-server
ensemble (QuorumPeerMain, Ensemble), driven from outside (stop, kill -9, SIGSTOP/SIGCONT,
restart on the same data dir), plus four-letter-word queries (wchc, cons, mntr, srvr: who
leads, who holds a session), an independent kazoo client, and a forced session expiry.

Nothing here sleeps to assert: readiness and conditions are polled with deadlines.
"""

import os
import re
import signal
import socket
import threading
import time

from harness import LOOPBACK, ServerProcess, free_port, wait_until

JAVA = "/usr/bin/java"
# zookeeper.jar's manifest names its dependencies (Debian's Class-Path), so the jar suffices.
CLASSPATH = "/usr/share/java/zookeeper.jar"
MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# The ensemble's servers log through it (to their stdout): elections are worth reading.
SLF4J_SIMPLE = "/usr/share/java/slf4j-simple.jar"
TICK_MS = 500


def fourlw(port, cmd, timeout=2.0):
    """Sends a four-letter word to 127.0.0.1:PORT and returns the whole answer text."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(cmd.encode())
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


def parse_wchc(text):
    """wchc answer -> {session_id (int): [paths]}."""
    out = {}
    cur = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("0x"):
            cur = int(line.strip(), 16)
            out.setdefault(cur, [])
        elif cur is not None and line[:1] in ("\t", " "):
            out[cur].append(line.strip())
    return out


class KazooClients:
    """Independent kazoo clients of whatever `self.hosts` names (one server or an ensemble)."""

    def client(self, auth=None, timeout=10.0, **kw):
        """A started kazoo client; AUTH is "user:password" for digest auth. The caller
        stops it (or lets Env cleanup do it through register())."""
        from kazoo.client import KazooClient
        kw.setdefault("timeout", 10.0)
        if auth:
            kw["auth_data"] = [("digest", auth)]
        c = KazooClient(hosts=self.hosts, **kw)
        c.start(timeout=timeout)
        return c

    def expire_session(self, session_id, password, timeout=10.0):
        """Forces SESSION_ID to expire the way the Java client FAQ does: a second
        connection with the same id and password, then closed (closing ends the session
        for both)."""
        from kazoo.client import KazooClient
        c = KazooClient(hosts=self.hosts, client_id=(session_id, password), timeout=timeout)
        c.start(timeout=timeout)
        c.stop()
        c.close()


class ZooKeeper(ServerProcess, KazooClients):
    """A standalone ZooKeeper 3.8 in WORKDIR/NAME. start() waits until `ruok` says `imok`.

    jvm_opts replaces the JVM options (bench.py gives it a bigger heap and full JIT);
    extra_cfg adds zoo.cfg lines (e.g. "forceSync=no")."""

    KIND = "zookeeper"
    MAIN = MAIN
    START_TIMEOUT = 30.0
    READY_INTERVAL = 0.05
    JVM_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

    def __init__(self, workdir, name="zk", port=None, start=True, jvm_opts=None, extra_cfg=()):
        super().__init__(workdir, name, port, stdout_name="zk.log")
        self.data_dir = os.path.join(self.dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        self.jvm_opts = list(self.JVM_OPTS if jvm_opts is None else jvm_opts)
        with open(self.cfg, "w") as f:
            f.write("\n".join(self.cfg_lines() + list(extra_cfg)) + "\n")
        if start:
            self.start()

    def cfg_lines(self):
        return [
            "tickTime=%d" % TICK_MS,
            "dataDir=%s" % self.data_dir,
            "clientPort=%d" % self.port,
            "clientPortAddress=%s" % LOOPBACK,
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "maxClientCnxns=0",
            "minSessionTimeout=1000",
            "maxSessionTimeout=20000",
        ]

    def argv(self):
        return ([JAVA] + self.jvm_opts + ["-Dzookeeper.admin.enableServer=false",
                                          "-cp", CLASSPATH, self.MAIN, self.cfg])

    def probe_ready(self):
        return fourlw(self.port, "ruok", timeout=0.5) == "imok"

    @property
    def hosts(self):
        """The agent's `hosts` value."""
        return "%s:%d" % (LOOPBACK, self.port)

    def restart(self, timeout=None):
        """kill -9 then start on the same port and data dir: sessions survive it."""
        super().restart(timeout)

    # -- four-letter words
    def fourlw(self, cmd, timeout=2.0):
        return fourlw(self.port, cmd, timeout)

    def wchc(self):
        """{session_id: [watched paths]} from the server's own bookkeeping."""
        return parse_wchc(self.fourlw("wchc"))

    def mntr(self):
        out = {}
        for line in self.fourlw("mntr").splitlines():
            k, _, v = line.partition("\t")
            out[k] = v
        return out

    def cons(self):
        return self.fourlw("cons")

    def session_ids(self):
        """Session ids of the live connections (from `cons`)."""
        return set(int(m, 16) for m in re.findall(r"sid=0x([0-9a-f]+)", self.cons()))


class QuorumPeer(ZooKeeper):
    """One server of an Ensemble: QuorumPeerMain with its own client, peer and election
    ports, its data dir holding `myid`, and the ensemble's server list in zoo.cfg. Ready
    (start()) means its process answers `ruok`; it serves clients only once it has joined
    a quorum (Ensemble.wait_serving). It logs through slf4j-simple (elections, sessions)."""

    KIND = "zookeeper peer"
    MAIN = QUORUM_MAIN

    def __init__(self, workdir, myid, ports, start=False, **kw):
        self.myid = myid
        self.ports = ports  # [(client, peer, election)] of every server, by myid - 1
        super().__init__(workdir, name="zk%d" % myid, port=ports[myid - 1][0], start=False, **kw)
        with open(os.path.join(self.data_dir, "myid"), "w") as f:
            f.write("%d\n" % myid)
        if start:
            self.start()

    def cfg_lines(self):
        lines = super().cfg_lines() + [
            "initLimit=10",
            "syncLimit=4",
            "standaloneEnabled=false",
            "reconfigEnabled=false",
        ]
        for i, (_, peer, election) in enumerate(self.ports):
            lines.append("server.%d=%s:%d:%d" % (i + 1, LOOPBACK, peer, election))
        return lines

    def argv(self):
        cp = CLASSPATH + "".join(":" + j for j in (SLF4J_SIMPLE,) if os.path.exists(j))
        return ([JAVA] + self.jvm_opts
                + ["-Dzookeeper.admin.enableServer=false",
                   # A dead peer's election port refuses at once on loopback; a frozen one
                   # should not hold an election for the default 5 s.
                   "-Dzookeeper.cnxTimeout=1000",
                   "-Dorg.slf4j.simpleLogger.showDateTime=true",
                   "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                   # one INFO line per four-letter word would drown the rest
                   "-Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.server.NIOServerCnxn=warn",
                   "-Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.server.command=warn",
                   "-cp", cp, self.MAIN, self.cfg])

    def mode(self):
        """"leader", "follower", or None (down, or not serving: no quorum, electing)."""
        try:
            m = re.search(r"^Mode: (\w+)", self.fourlw("srvr", timeout=1.0), re.MULTILINE)
        except OSError:
            return None
        return m.group(1) if m and m.group(1) in ("leader", "follower") else None


class Ensemble(KazooClients):
    """A three-server (SIZE) ZooKeeper ensemble on loopback: `hosts` lists every server,
    `servers[i]` is the QuorumPeer with myid i + 1 (kill9/stop/start/restart/sigstop it).
    start() returns once every server serves (one leader, the rest followers)."""

    START_TIMEOUT = 60.0
    POLL_S = 0.05  # four-letter words while waiting (each is a packet the servers count)

    def __init__(self, workdir, name="ensemble", size=3, start=True, **kw):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        used = set()
        ports = []
        for _ in range(size):
            trio = []
            while len(trio) < 3:
                p = free_port()
                if p not in used:
                    used.add(p)
                    trio.append(p)
            ports.append(tuple(trio))
        self.servers = [QuorumPeer(self.dir, i + 1, ports, **kw) for i in range(size)]
        if start:
            self.start()

    @property
    def hosts(self):
        """The agent's `hosts` value: every server, client ports in myid order."""
        return ",".join(s.hosts for s in self.servers)

    def server(self, which):
        """A QuorumPeer from a QuorumPeer, an index (0-based) or None."""
        return which if isinstance(which, QuorumPeer) else self.servers[which]

    def start(self, timeout=None):
        for s in self.servers:
            if not s.running():
                s.start(wait=False)
        self.wait_serving(timeout=timeout)

    def start_server(self, which, serving=True, timeout=None):
        """Starts one server; with SERVING, waits until it has joined the quorum."""
        s = self.server(which)
        s.start(timeout=timeout)
        if serving:
            self.wait_serving([s], timeout)
        return s

    def kill9(self, which):
        s = self.server(which)
        s.kill9()
        return s

    def stop_server(self, which):
        s = self.server(which)
        s.stop()
        return s

    def running(self):
        return [s for s in self.servers if s.running()]

    def modes(self):
        """{myid: mode or None} of every server."""
        return {s.myid: (s.mode() if s.running() and not s.stopped else None) for s in self.servers}

    def wait_serving(self, servers=None, timeout=None):
        """Waits until each of SERVERS (default: every running one) is leader or follower,
        with exactly one leader among them."""
        timeout = self.START_TIMEOUT if timeout is None else timeout

        def serving():
            want = servers or self.running()
            for s in want:
                if not s.running():
                    raise AssertionError("zookeeper peer %s exited:\n%s" % (s.name, s.log_tail()))
            modes = {s.myid: s.mode() for s in self.running() if not s.stopped}
            return (all(modes.get(s.myid) for s in want)
                    and list(modes.values()).count("leader") == 1)
        try:
            wait_until(serving, timeout, interval=self.POLL_S, msg="the ensemble to serve")
        except AssertionError as e:
            raise AssertionError("%s\nmodes: %r\n%s" % (e, self.modes(), self.log_tails())) from None

    def leader(self, timeout=30.0):
        """The server that says "Mode: leader" (waits for an election to end)."""
        def find():
            leaders = [s for s in self.running() if not s.stopped and s.mode() == "leader"]
            return leaders[0] if len(leaders) == 1 else None
        return wait_until(find, timeout, interval=self.POLL_S, msg="one leader in the ensemble")

    def followers(self):
        return [s for s in self.running() if s.mode() == "follower"]

    def holder(self, session_id):
        """The server whose `cons` lists a connection of SESSION_ID, or None."""
        for s in self.running():
            if s.stopped:
                continue
            try:
                if session_id in s.session_ids():
                    return s
            except OSError:
                continue
        return None

    def wait_holder(self, session_id, timeout=30.0, exclude=None):
        """Waits until some server (other than EXCLUDE) holds SESSION_ID; returns it."""
        def find():
            h = self.holder(session_id)
            return h if h is not None and h is not exclude else None
        return wait_until(find, timeout, interval=self.POLL_S,
                          msg="a server holding session 0x%x" % session_id)

    def session_ids(self):
        """Session ids connected to any running server."""
        out = set()
        for s in self.running():
            if not s.stopped:
                try:
                    out |= s.session_ids()
                except OSError:
                    pass
        return out

    def mntr(self, which):
        return self.server(which).mntr()

    def log_tails(self, n=15):
        return "\n".join("--- %s (%s) ---\n%s" % (s.name, "running" if s.running() else "down",
                                                   s.log_tail(n)) for s in self.servers)

    def cleanup(self):
        errors = []
        for s in self.servers:
            try:
                s.cleanup()
            except Exception as e:  # noqa: BLE001 -- stop the others anyway
                errors.append(e)
        if errors:
            raise errors[0]


class KazooHandle:
    """Env-registrable wrapper so a kazoo client is stopped at teardown."""

    def __init__(self, client):
        self.client = client

    def cleanup(self):
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # noqa: BLE001 -- teardown
            pass


class NodeWatch:
    """Watches PATHS from an independent kazoo CLIENT (a DataWatch each, re-armed by kazoo
    across its own reconnects) and records every time a path that had been seen was then
    seen absent (deleted) or with another czxid (deleted and re-created): what a consumer
    would have noticed. lost() lists those sightings; seen() the paths seen at least once."""

    def __init__(self, client, paths):
        from kazoo.recipe.watchers import DataWatch
        self._lock = threading.Lock()
        self._czxid = {}
        self._lost = []
        self._watches = [DataWatch(client, p, func=self._func(p)) for p in paths]

    def _func(self, path):
        def cb(data, stat, event=None):
            with self._lock:
                if stat is None:
                    if path in self._czxid:
                        self._lost.append("%s %s" % (path, "deleted (%s)" % event.type
                                                     if event is not None else "absent"))
                    return
                first = self._czxid.setdefault(path, stat.czxid)
                if stat.czxid != first:
                    self._lost.append("%s re-created (czxid 0x%x -> 0x%x)"
                                      % (path, first, stat.czxid))
        return cb

    def seen(self):
        with self._lock:
            return set(self._czxid)

    def lost(self):
        with self._lock:
            return list(self._lost)


def zookeeper(env, **kw):
    """Starts a ZooKeeper owned by ENV (torn down with it)."""
    return env.register(ZooKeeper(env.dir, **kw))


def ensemble(env, **kw):
    """Starts a three-server ensemble owned by ENV; returns once it serves."""
    return env.register(Ensemble(env.dir, **kw))


def kazoo(env, zk, **kw):
    """An independent kazoo client on ZK, owned by ENV."""
    c = zk.client(**kw)
    env.register(KazooHandle(c))
    return c


def stop_agent_until_expired(agent, zk, session_id, timeout=30.0):
    """Freezes AGENT (SIGSTOP) until the server has dropped SESSION_ID (it is gone from
    `cons` and from `wchc`), then SIGCONT: the agent learns of the expiry on reconnect."""
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: session_id not in zk.session_ids() and session_id not in zk.wchc(),
                   timeout, interval=0.1, msg="session 0x%x to expire on the server" % session_id)
    finally:
        os.kill(agent.pid, signal.SIGCONT)


def session_of(stats):
    """The agent's session id (int) from its `stats` object; 0 without one."""
    sid = stats.get("zk_session_id") or "0"
    return int(sid, 16) if isinstance(sid, str) else int(sid)


def wait_session_gone(zk, session_id, timeout=10.0):
    wait_until(lambda: session_id not in zk.session_ids(), timeout, interval=0.05,
               msg="session 0x%x to leave the server" % session_id)


def monotonic_ms():
    return int(time.monotonic() * 1000)


def zk_agent(env, zk, instances, root="/sa", session_timeout="4s", auth=None, **kw):
    """An Agent publishing to ZK under ROOT (the [zookeeper] section filled in)."""
    zkconf = {"hosts": zk if isinstance(zk, str) else zk.hosts, "root": root,
              "session_timeout": session_timeout}
    if auth:
        zkconf["auth"] = auth
    zkconf.update(kw.pop("zookeeper", {}) or {})
    return env.agent(instances, zookeeper=zkconf, **kw)


def node_doc(client, path):
    """(decoded JSON, ZnodeStat) of PATH read with an independent client, or (None, None)."""
    import json
    try:
        data, st = client.get(path)
    except Exception:  # noqa: BLE001 -- NoNodeError and friends: not there (yet)
        return None, None
    return json.loads(data.decode("utf-8")), st

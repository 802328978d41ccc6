"""zk.py -- a throwaway ZooKeeper server for the integration tests: one standalone
ZooKeeperServerMain on a free loopback port with its own data dir, driven from outside
(stop, kill -9, SIGSTOP/SIGCONT, restart on the same data dir), plus four-letter-word
queries (wchc, cons, mntr), an independent kazoo client, and a forced session expiry.

Nothing here sleeps to assert: readiness and conditions are polled with deadlines.
"""

import os
import re
import signal
import socket
import time

from harness import LOOPBACK, ServerProcess, wait_until

JAVA = "/usr/bin/java"
# zookeeper.jar's manifest names its dependencies (Debian's Class-Path), so the jar suffices.
CLASSPATH = "/usr/share/java/zookeeper.jar"
MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
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


def zookeeper(env, **kw):
    """Starts a ZooKeeper owned by ENV (torn down with it)."""
    return env.register(ZooKeeper(env.dir, **kw))


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

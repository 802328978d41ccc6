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
import subprocess
import time

from harness import LOOPBACK, child_env, free_port, wait_until

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


class ZooKeeper:
    """A standalone ZooKeeper 3.8 in WORKDIR/NAME. start() waits until `ruok` says `imok`."""

    def __init__(self, workdir, name="zk", port=None, start=True):
        self.dir = os.path.join(workdir, name)
        self.data_dir = os.path.join(self.dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = port or free_port()
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        self.log_path = os.path.join(self.dir, "zk.log")
        self.proc = None
        self.stopped = False
        with open(self.cfg, "w") as f:
            f.write("\n".join([
                "tickTime=%d" % TICK_MS,
                "dataDir=%s" % self.data_dir,
                "clientPort=%d" % self.port,
                "clientPortAddress=%s" % LOOPBACK,
                "admin.enableServer=false",
                "4lw.commands.whitelist=*",
                "maxClientCnxns=0",
                "minSessionTimeout=1000",
                "maxSessionTimeout=20000",
            ]) + "\n")
        if start:
            self.start()

    @property
    def hosts(self):
        """The agent's `hosts` value."""
        return "%s:%d" % (LOOPBACK, self.port)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=30.0):
        assert not self.running(), "already running"
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [JAVA, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                 "-Dzookeeper.admin.enableServer=false", "-cp", CLASSPATH, MAIN, self.cfg],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=child_env(), cwd=self.dir)
        self.stopped = False

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("zookeeper exited with %s:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                return fourlw(self.port, "ruok", timeout=0.5) == "imok"
            except OSError:
                return False
        wait_until(ready, timeout, interval=0.05, msg="zookeeper ruok -> imok")

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout=10.0):
        """SIGTERM (it closes its sockets); the data dir is kept for restart()."""
        if not self.running():
            return
        self.sigcont()
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill9(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(10)

    def sigstop(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        if self.proc is not None and self.stopped:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False

    def restart(self, timeout=30.0):
        """kill -9 then start on the same port and data dir: sessions survive it."""
        self.kill9()
        self.start(timeout)

    def cleanup(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.sigcont()
        self.proc.kill()
        self.proc.wait(10)

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

    # -- independent clients
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
    zkconf = {"hosts": zk.hosts if isinstance(zk, ZooKeeper) else zk, "root": root,
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

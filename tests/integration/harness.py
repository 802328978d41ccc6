"""harness.py -- black-box test harness for sentinel-agent: throwaway redis-server
processes, misbehaving TCP peers, and the agent itself, all on 127.0.0.1 in a private
temp dir, observed only from the outside (stats socket, stderr, exit codes, /proc).

Every object that starts a process or a thread is created through an Env, which
records it and tears it down in Env.cleanup() (the `env` fixture in conftest.py calls
it, pass or fail). Nothing here sleeps to assert: wait_until() polls with a deadline.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
LOOPBACK = "127.0.0.1"

# Environment variables that would change how the agent talks (journald prefixes,
# sd_notify); the tests want the plain foreground behaviour.
_SCRUB_ENV = ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID",
              "LISTEN_FDS", "LISTEN_PID")


# --------------------------------------------------------------------------- basics

def build_dir():
    """The CMake build dir holding the binaries ($SA_BUILD_DIR)."""
    d = os.environ.get("SA_BUILD_DIR")
    if not d:
        raise RuntimeError("SA_BUILD_DIR is not set (the CMake build dir)")
    return d


def agent_bin():
    return os.path.join(build_dir(), "sentinel-agent")


def ctl_bin():
    return os.path.join(build_dir(), "sentinel-agentctl")


# Leaks inside the ZooKeeper library that LeakSanitizer cannot tell apart by function
# (tests/lsan.supp says why); only the ASan build reads it.
LSAN_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lsan.supp")


def child_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
    env.setdefault("LSAN_OPTIONS",
                   "print_suppressions=0:suppressions=" + os.path.normpath(LSAN_SUPP))
    if extra:
        env.update(extra)
    return env


def free_port():
    """A loopback TCP port nobody listens on right now (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def now_ms():
    return int(time.time() * 1000)


class WaitTimeout(AssertionError):
    pass


def wait_until(pred, timeout=5.0, interval=0.02, msg=None):
    """Polls PRED until it returns something truthy, and returns that. Raises
    WaitTimeout (an AssertionError) after TIMEOUT seconds, with MSG and the last value
    or exception seen. An AssertionError raised by PRED (an invariant checked while
    polling) propagates at once; other exceptions (a socket error, say) are retried."""
    deadline = time.monotonic() + timeout
    last = None
    last_exc = None
    while True:
        try:
            last = pred()
            last_exc = None
            if last:
                return last
        except AssertionError:
            raise  # an invariant checked inside the predicate failed: fail now
        except Exception as e:  # noqa: BLE001 -- report it if it never settles
            last_exc = e
        if time.monotonic() >= deadline:
            detail = "last exception: %r" % (last_exc,) if last_exc else "last value: %r" % (last,)
            raise WaitTimeout("timed out after %.1fs waiting for %s (%s)"
                              % (timeout, msg or getattr(pred, "__name__", "condition"), detail))
        time.sleep(interval)


def _kill_process(proc, term_timeout=5.0):
    """Ends a Popen child for good: SIGCONT (it may be stopped), SIGTERM, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    for sig in (signal.SIGCONT, signal.SIGTERM):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return
    try:
        proc.wait(term_timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        return
    proc.wait(10)


# ----------------------------------------------------------------- /proc from outside

def proc_status(pid):
    """/proc/PID/status as a dict of strings."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_threads(pid):
    return int(proc_status(pid)["Threads"])


def proc_rss_bytes(pid):
    return int(proc_status(pid)["VmRSS"].split()[0]) * 1024


def proc_fd_targets(pid):
    """{fd: readlink target} of /proc/PID/fd."""
    d = "/proc/%d/fd" % pid
    out = {}
    for name in os.listdir(d):
        try:
            out[int(name)] = os.readlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
    return out


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------- server processes

class ServerProcess:
    """One throwaway server process (redis-server, a ZooKeeper server) in its own directory
    WORKDIR/NAME on a loopback PORT (None: a free one), driven from outside: start and wait
    until it answers, stop (SIGTERM), kill -9, SIGSTOP/SIGCONT, restart in place, read the
    tail of its log. Its stdout and stderr go to stdout_path; log_path is the file worth
    showing when it fails (the same file unless the server keeps its own log).

    A subclass gives argv() and probe_ready() (one readiness check, which may raise: a
    refused connection just means "not yet"), and may set START_TIMEOUT and READY_INTERVAL.
    Env (or bench.py's registry) owns the object and calls cleanup()."""

    KIND = "server"
    START_TIMEOUT = 10.0
    READY_INTERVAL = 0.02

    def __init__(self, workdir, name, port=None, stdout_name=None):
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port() if port is None else port
        self.stdout_path = os.path.join(self.dir, stdout_name or self.KIND + ".stdout")
        self.log_path = self.stdout_path
        self.proc = None
        self.stopped = False  # SIGSTOPped by sigstop(), until sigcont()

    # -- what a subclass says
    def argv(self):
        raise NotImplementedError

    def probe_ready(self):
        raise NotImplementedError

    # -- process
    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=None, wait=True):
        """Starts the process (appending to its output file) and, with WAIT, waits until it
        answers (AssertionError, with the log's tail, if it exits or never answers)."""
        assert not self.running(), "%s %s already running" % (self.KIND, self.name)
        with open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=child_env(), cwd=self.dir)
        self.stopped = False
        if wait:
            self.wait_ready(timeout)

    def is_ready(self):
        """One readiness check that never raises (for polling many servers at once)."""
        try:
            return bool(self.probe_ready())
        except Exception:  # noqa: BLE001 -- not answering yet
            return False

    def wait_ready(self, timeout=None):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("%s %s exited with %s:\n%s"
                                     % (self.KIND, self.name, self.proc.returncode, self.log_tail()))
            return self.probe_ready()
        wait_until(ready, self.START_TIMEOUT if timeout is None else timeout,
                   interval=self.READY_INTERVAL, msg="%s %s to answer" % (self.KIND, self.name))

    def stop(self, timeout=10.0):
        """Graceful shutdown (SIGCONT, SIGTERM); kill -9 if it takes longer than TIMEOUT."""
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
        self.stopped = False

    def sigstop(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False

    def restart(self, timeout=None):
        """kill -9, then start again in place (same port, same directory)."""
        self.kill9()
        self.before_restart()
        self.start(timeout)

    def before_restart(self):
        """What a kill -9 leaves behind that a new start must not find."""

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return ""

    def cleanup(self):
        """Ends it for good (teardown: no grace)."""
        if not self.running():
            return
        self.sigcont()
        self.proc.kill()
        self.proc.wait(10)


# ------------------------------------------------------------------------ redis-server

class RedisServer(ServerProcess):
    """A throwaway redis-server on 127.0.0.1 (and/or a unix socket) in DIR.

    port=None picks a free port; unix=True adds a unix socket DIR/redis.sock and, unless a
    port is given, turns TCP off (port 0). users is {name: password} (ACL users with
    +@all). replicaof is another RedisServer (or "host port"). extra_conf: more config
    lines (bench.py: maxclients, loglevel). start=False leaves it to start()."""

    KIND = "redis-server"
    START_TIMEOUT = 10.0

    def __init__(self, workdir, port=None, unix=False, password=None, users=None,
                 replicaof=None, name="redis", extra_conf=(), start=True):
        if port is None and unix:
            port = 0
        super().__init__(workdir, name, port, stdout_name="redis.stdout")
        self.unix_path = os.path.join(self.dir, "redis.sock") if unix else None
        self.password = password
        self.users = dict(users or {})
        if isinstance(replicaof, RedisServer):
            replicaof = "%s %d" % (LOOPBACK, replicaof.port)
        self.replicaof = replicaof
        self.extra_conf = list(extra_conf)
        self.conf_path = os.path.join(self.dir, "redis.conf")
        self.log_path = os.path.join(self.dir, "redis.log")
        self._write_conf()
        if start:
            self.start()

    def _write_conf(self):
        lines = [
            "port %d" % self.port,
            "bind %s" % LOOPBACK,
            'save ""',
            "appendonly no",
            "daemonize no",
            "dir %s" % self.dir,
            "logfile %s" % self.log_path,
        ]
        if self.unix_path:
            lines += ["unixsocket %s" % self.unix_path, "unixsocketperm 700"]
        if self.password is not None:
            lines.append("requirepass %s" % self.password)
        for user, pw in self.users.items():
            lines.append("user %s on >%s ~* +@all" % (user, pw))
        if self.replicaof:
            lines.append("replicaof %s" % self.replicaof)
            if self.password is not None:
                lines.append("masterauth %s" % self.password)
        lines += self.extra_conf
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def argv(self):
        return [REDIS_SERVER, self.conf_path]

    def probe_ready(self):
        return self.ping()

    @property
    def address(self):
        """The agent's `address` value for this server (unix socket when it has one)."""
        if self.unix_path:
            return "unix:" + self.unix_path
        return "%s:%d" % (LOOPBACK, self.port)

    def client(self, **kw):
        args = dict(socket_timeout=1.0, socket_connect_timeout=1.0, password=self.password)
        args.update(kw)
        if self.unix_path and self.port == 0:
            return redis.Redis(unix_socket_path=self.unix_path, **args)
        return redis.Redis(host=LOOPBACK, port=self.port, **args)

    def ping(self):
        c = self.client()
        try:
            return c.ping()
        finally:
            c.close()

    def stop(self, timeout=10.0):
        """Graceful shutdown (SIGTERM): redis closes its listeners and removes its unix
        socket file."""
        super().stop(timeout)

    def before_restart(self):
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)  # a kill -9 leaves it behind; redis would replace it anyway


# -------------------------------------------------------------- misbehaving TCP peers

class TcpPeer:
    """A loopback TCP server on Python threads: one accept thread, one thread per connection
    running serve(conn) (subclasses say what a peer does). PORT 0 picks a free port; a given
    port (where a killed Redis listened) is retried for up to 5 s. BACKLOG 0 with
    accept=False gives a listener that never accepts. cleanup() stops everything."""

    def __init__(self, port=0, backlog=64, accept=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                self.sock.bind((LOOPBACK, port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.address = "%s:%d" % (LOOPBACK, self.port)
        self.connections = 0
        self._stop = threading.Event()
        self._conns = []
        self._lock = threading.Lock()
        self._thread = None
        if accept:
            self.sock.settimeout(0.2)
            self._thread = threading.Thread(target=self._accept_loop, daemon=True)
            self._thread.start()

    @property
    def stopping(self):
        return self._stop.is_set()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(c)
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        c.settimeout(0.2)
        try:
            self.serve(c)
        except OSError:
            pass
        finally:
            c.close()

    def recv_chunks(self, c, size=4096):
        """Yields what C sends (b"" on a quiet moment) until EOF or cleanup()."""
        while not self._stop.is_set():
            try:
                data = c.recv(size)
            except socket.timeout:
                yield b""
                continue
            if not data:
                return
            yield data

    def serve(self, c):
        raise NotImplementedError

    def cleanup(self):
        self._stop.set()
        self.sock.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(2)


class GarbageServer(TcpPeer):
    """A TCP server that accepts everything and answers any input with non-RESP bytes
    (default an HTTP error)."""

    HTTP = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    JUNK = b"@@garbage@@\r\n"

    def __init__(self, payload=HTTP, port=0):
        self.payload = payload
        super().__init__(port=port)

    def serve(self, c):
        for data in self.recv_chunks(c):
            if data:
                c.sendall(self.payload)


class BlackHole(TcpPeer):
    """A TCP peer that never answers. accept=False: a listener with backlog 0 that never
    accepts (once its tiny queue is full, connects hang in SYN_SENT). accept=True: accepts
    and reads everything but never writes a byte."""

    def __init__(self, accept=False):
        self.accept = accept
        super().__init__(backlog=0, accept=accept)

    def serve(self, c):
        for _ in self.recv_chunks(c):
            pass


# ----------------------------------------------------------------- stats socket client

class StatsClient:
    """A raw client of the stats socket: send bytes, read answers (which end with an
    empty line, i.e. the bytes end with b"\\n\\n"), notice EOF. Every read has a
    deadline."""

    def __init__(self, path, timeout=5.0):
        self.path = path
        # With a timeout set, Python's socket is non-blocking underneath, and a unix connect
        # to a listener whose backlog is momentarily full fails with EAGAIN instead of
        # waiting: retry until the deadline, as a blocking client would wait.
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                self.sock.close()
                if time.monotonic() >= deadline:
                    raise socket.timeout("stats socket %s: backlog full for %.1fs" % (path, timeout))
                time.sleep(0.005)
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("stats socket: no complete answer in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk

    def read_answer(self, timeout=5.0):
        """Reads one answer; returns its bytes including the final empty line. Raises
        socket.timeout, or EOFError if the server closed before a complete answer."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\n\n")
            if i >= 0:
                # An answer ends at its first empty line (answers contain none inside);
                # whatever follows belongs to the next, pipelined, answer.
                ans, self.buf = self.buf[:i + 2], self.buf[i + 2:]
                return ans
            if self.eof:
                raise EOFError("stats socket closed after %r" % self.buf[:200])
            self._fill(deadline)

    def command(self, cmd, timeout=5.0):
        self.send(cmd + "\n")
        return self.read_answer(timeout).decode()

    def wait_eof(self, timeout=5.0):
        """True once the server has closed the connection (data before EOF is kept in
        self.buf); raises socket.timeout otherwise."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            self._fill(deadline)
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------- agent

def _fmt_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def instance(name, address, **keys):
    """One [instance NAME] for Agent(instances=[...]). ADDRESS may be a RedisServer,
    GarbageServer, BlackHole or a string. KEYS: password, username, cluster, interval,
    timeout, rise, fall, or anything else (written as is)."""
    if not isinstance(address, str):
        address = address.address
    d = {"name": name, "address": address}
    d.update(keys)
    return d


class Agent:
    """A running sentinel-agent with its own config, stats socket and stderr file.

    instances: list of instance() dicts. agent_keys: [agent] keys (None drops a default;
    name, interval, timeout, rise, fall, log_level, shutdown_timeout, max_inflight, ...).
    zookeeper: [zookeeper] keys; hosts defaults to a closed loopback port, so ZooKeeper
    is simply unreachable. args: extra command-line arguments."""

    DEFAULTS = {
        "interval": "200ms",
        "timeout": "150ms",
        "rise": 2,
        "fall": 2,
        "log_level": "info",
        "shutdown_timeout": "5s",
    }

    def __init__(self, env, instances=(), zookeeper=None, args=(), start=True,
                 wait_ready=True, name=None, **agent_keys):
        self.env = env
        self.label = name or "agent%d" % env.next_id()
        self.dir = env.path(self.label)
        os.makedirs(self.dir, exist_ok=True)
        self.conf_path = os.path.join(self.dir, "sentinel-agent.conf")
        self.stats_socket = agent_keys.pop("stats_socket", os.path.join(self.dir, "stats.sock"))
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.instances_conf = list(instances)
        keys = {"name": self.label}
        keys.update(self.DEFAULTS)
        keys["stats_socket"] = self.stats_socket
        # Maintenance marks stay in the test's own dir, never in the host's state_dir.
        keys["state_dir"] = self.dir
        keys.update(agent_keys)
        self.agent_keys = {k: v for k, v in keys.items() if v is not None}
        zk = {"hosts": "%s:%d" % (LOOPBACK, env.closed_port())}
        zk.update(zookeeper or {})
        self.zookeeper = {k: v for k, v in zk.items() if v is not None}
        self.args = list(args)
        self.proc = None
        self.write_config()
        if start:
            self.start(wait_ready=wait_ready)

    # -- config
    def config_text(self):
        out = ["[agent]"]
        out += ["%s = %s" % (k, _fmt_value(v)) for k, v in self.agent_keys.items()]
        out += ["", "[zookeeper]"]
        out += ["%s = %s" % (k, _fmt_value(v)) for k, v in self.zookeeper.items()]
        for inst in self.instances_conf:
            out += ["", "[instance %s]" % inst["name"]]
            out += ["%s = %s" % (k, _fmt_value(v)) for k, v in inst.items() if k != "name"]
        return "\n".join(out) + "\n"

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())

    # -- process
    def start(self, wait_ready=True, timeout=10.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        # Append, so a restarted agent keeps the earlier log for the failure report.
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([agent_bin(), "-c", self.conf_path] + self.args,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=child_env())
        finally:
            out.close()
            err.close()
        self.env.register(self)
        if wait_ready:
            self.wait_ready(timeout)

    def wait_ready(self, timeout=10.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("sentinel-agent exited with %s during start-up; stderr:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                with StatsClient(self.stats_socket, timeout=1.0) as c:
                    return json.loads(c.command("stats", timeout=1.0))
            except (OSError, EOFError, ValueError):
                return None
        deadline = time.monotonic() + timeout
        while True:
            st = ready()
            if st:
                return st
            if time.monotonic() > deadline:
                raise AssertionError("stats socket %s never answered within %.0fs; stderr:\n%s"
                                     % (self.stats_socket, timeout, self.log()))
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=10.0):
        """Waits for the process to end; returns its exit code (negative: killed by a
        signal). Raises AssertionError if it is still running after TIMEOUT."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("sentinel-agent (pid %d) still running %.1fs later; stderr:\n%s"
                                 % (self.proc.pid, timeout, self.log_tail())) from None

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code."""
        if not self.running():
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def cleanup(self):
        _kill_process(self.proc, term_timeout=8.0)

    # -- stderr
    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        return "".join(self.log().splitlines(True)[-n:])

    def log_mark(self):
        """Position in the stderr text, for wait_log(..., since=mark)."""
        return len(self.log())

    def wait_log(self, pattern, timeout=5.0, since=0):
        """Waits for a line matching PATTERN (a regex, searched per line with MULTILINE)
        in stderr after position SINCE; returns the match."""
        rx = re.compile(pattern, re.MULTILINE)
        try:
            return wait_until(lambda: rx.search(self.log()[since:]), timeout,
                              interval=0.02, msg="log line /%s/" % pattern)
        except WaitTimeout as e:
            raise WaitTimeout("%s\n--- agent stderr ---\n%s" % (e, self.log_tail())) from None

    # -- stats socket
    def client(self, timeout=5.0):
        return StatsClient(self.stats_socket, timeout)

    def command(self, text, timeout=5.0):
        """Sends one command on a fresh connection; returns the raw answer text (it ends
        with an empty line)."""
        with self.client(timeout) as c:
            return c.command(text, timeout)

    def stats(self):
        return json.loads(self.command("stats"))

    def instances(self):
        return json.loads(self.command("instances"))

    def instance(self, name):
        for i in self.instances():
            if i.get("name") == name:
                return i
        raise KeyError("no instance %r in the agent's answer" % name)

    def metrics(self):
        return self.command("metrics")

    def wait_instance(self, name, timeout=5.0, **expect):
        """Waits until instance NAME has every field of EXPECT equal to the given value
        (a callable value is a predicate); returns the instance object."""
        last = {}

        def match():
            inst = self.instance(name)
            last["v"] = inst
            for k, v in expect.items():
                ok = v(inst.get(k)) if callable(v) else inst.get(k) == v
                if not ok:
                    return None
            return inst
        try:
            return wait_until(match, timeout, msg="instance %s to have %r" % (name, expect))
        except WaitTimeout as e:
            raise WaitTimeout("%s\nlast seen: %r\n--- agent stderr ---\n%s"
                              % (e, last.get("v"), self.log_tail())) from None

    # -- /proc
    def threads(self):
        return proc_threads(self.pid)

    def fds(self):
        return proc_fds(self.pid)

    def settled_fds(self, hold=0.5, timeout=10.0):
        """The agent's open fds once the count has held still for HOLD seconds: a stats
        client the harness has just closed stays open on the agent's side until the agent
        reads its EOF, which under valgrind can take a while."""
        deadline = time.monotonic() + timeout
        n, since = self.fds(), time.monotonic()
        while time.monotonic() - since < hold:
            if time.monotonic() > deadline:
                raise WaitTimeout("the agent's fd count did not settle in %.1fs" % timeout)
            time.sleep(0.05)
            m = self.fds()
            if m != n:
                n, since = m, time.monotonic()
        return n

    def rss_bytes(self):
        return proc_rss_bytes(self.pid)


# ----------------------------------------------------------------------- environment

class Env:
    """One test's private world: a short temp dir (unix socket paths must stay under 108
    bytes) and a registry of everything started, torn down by cleanup()."""

    def __init__(self, keep_on_failure=True):
        self.dir = tempfile.mkdtemp(prefix="sa-it-", dir="/tmp")
        self._owned = []
        self._ids = 0
        self._closed_ports = []
        self.keep_on_failure = keep_on_failure

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def next_id(self):
        self._ids += 1
        return self._ids

    def register(self, obj):
        if obj not in self._owned:
            self._owned.append(obj)
        return obj

    def closed_port(self):
        """A loopback port with no listener (ZooKeeper default: unreachable)."""
        if not self._closed_ports:
            self._closed_ports.append(free_port())
        return self._closed_ports[0]

    def redis(self, **kw):
        kw.setdefault("name", "redis%d" % self.next_id())
        return self.register(RedisServer(self.dir, **kw))

    def garbage_server(self, payload=GarbageServer.HTTP):
        return self.register(GarbageServer(payload))

    def black_hole(self, accept=False):
        return self.register(BlackHole(accept))

    def agent(self, instances=(), **kw):
        a = Agent(self, instances, **kw)
        return self.register(a)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def run(self, argv, timeout=15.0, **kw):
        """Runs a command to completion (text mode, output captured)."""
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=child_env(), **kw)

    def run_agent(self, *args, timeout=15.0):
        return self.run([agent_bin()] + list(args), timeout=timeout)

    def run_ctl(self, *args, timeout=15.0):
        return self.run([ctl_bin()] + list(args), timeout=timeout)

    def agents(self):
        return [o for o in self._owned if isinstance(o, Agent)]

    def cleanup(self, failed=False):
        errors = []
        # Agents first (they hold connections to the servers), then the servers.
        for obj in sorted(reversed(self._owned), key=lambda o: 0 if isinstance(o, Agent) else 1):
            try:
                obj.cleanup()
            except Exception as e:  # noqa: BLE001 -- keep tearing down the rest
                errors.append(e)
        self._owned = []
        if not (failed and self.keep_on_failure and os.environ.get("SA_KEEP_TMP")):
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]

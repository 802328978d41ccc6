"""sd_notify under a fake systemd: a real AF_UNIX datagram socket as NOTIFY_SOCKET receives
READY=1 (only once the stats socket answers), STATUS= summaries, WATCHDOG=1 at about half of
WATCHDOG_USEC (none while the agent is stopped), RELOADING=1 then READY=1 around a reload,
and STOPPING=1 at shutdown.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

from harness import Agent, StatsClient, agent_bin, child_env, instance, wait_until

STATUS_RX = re.compile(r"^\d+ instances?: \d+ up, \d+ down(, \d+ unknown)?; "
                       r"zookeeper (connected|connecting|expired|closed)$")


class NotifySocket:
    """What systemd listens on: a datagram socket collecting every notification, each as
    (monotonic arrival time, [lines]). A thread reads it; cleanup() stops it."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode().splitlines()))

    def snapshot(self):
        with self._lock:
            return list(self.messages)

    def mark(self):
        return len(self.snapshot())

    def lines(self, since=0):
        """Every line received after message number SINCE, in order, with arrival times."""
        return [(t, line) for t, lines in self.snapshot()[since:] for line in lines]

    def wait_line(self, pred, since=0, timeout=10.0, msg=None):
        """Waits for a line after message SINCE satisfying PRED (a string: equality);
        returns (message index, arrival time, line)."""
        if isinstance(pred, str):
            want = pred
            pred = lambda line: line == want  # noqa: E731
            msg = msg or want

        def find():
            for i, (t, lines) in enumerate(self.snapshot()[since:], since):
                for line in lines:
                    if pred(line):
                        return (i, t, line)
            return None
        return wait_until(find, timeout, msg="notification %s (got %r)"
                          % (msg, [m[1] for m in self.snapshot()[since:]][-10:]))

    def count(self, line, since=0, start=None, end=None):
        return sum(1 for t, ln in self.lines(since) if ln == line
                   and (start is None or t >= start) and (end is None or t <= end))

    def cleanup(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class NotifyAgent(Agent):
    """An Agent whose process gets EXTRA_ENV (the harness scrubs NOTIFY_SOCKET and
    WATCHDOG_USEC from its children, so start() is Agent.start() with that one change)."""

    def __init__(self, env, extra_env, **kw):
        self.extra_env = dict(extra_env)
        super().__init__(env, **kw)

    def start(self, wait_ready=True, timeout=10.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen([agent_bin(), "-c", self.conf_path] + self.args,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=child_env(self.extra_env))
        self.env.register(self)
        if wait_ready:
            self.wait_ready(timeout)


def notify_agent(env, instances, watchdog_usec=None, **kw):
    ns = env.register(NotifySocket(env.path("notify.sock")))
    extra = {"NOTIFY_SOCKET": ns.path}
    if watchdog_usec is not None:
        extra["WATCHDOG_USEC"] = str(watchdog_usec)
    a = NotifyAgent(env, extra, instances=instances, wait_ready=False, **kw)
    return a, ns


def test_notify_lifecycle(env):
    r = env.redis()
    a, ns = notify_agent(env, [instance("up1", r), instance("down1", "127.0.0.1:1")],
                         watchdog_usec=1000000)

    # READY=1 comes with a STATUS line, and only once the stats socket answers: the very
    # first connection attempt after it must succeed.
    i, _, _ = ns.wait_line("READY=1")
    with StatsClient(a.stats_socket, timeout=2.0) as c:
        assert '"pid":%d' % a.pid in c.command("stats", timeout=2.0)
    ready_msg = ns.snapshot()[i][1]
    status = [ln[len("STATUS="):] for ln in ready_msg if ln.startswith("STATUS=")]
    assert len(status) == 1 and STATUS_RX.match(status[0]), ready_msg
    # The summary follows the instances' states.
    ns.wait_line("STATUS=2 instances: 1 up, 1 down; zookeeper connecting", timeout=5)

    # WATCHDOG=1 at about half of WATCHDOG_USEC (1 s): ~6 in 3 s.
    t0 = time.monotonic()
    wait_until(lambda: time.monotonic() - t0 >= 3.0 and ns.count("WATCHDOG=1", start=t0) > 0,
               5, msg="3 s of watchdog pings")
    pings = ns.count("WATCHDOG=1", start=t0, end=t0 + 3.0)
    assert 4 <= pings <= 8, pings

    # A valid reload: RELOADING=1, then READY=1.
    m = ns.mark()
    a.signal(signal.SIGHUP)
    ri, _, _ = ns.wait_line("RELOADING=1", since=m)
    ns.wait_line("READY=1", since=ri)
    wait_until(lambda: a.stats()["config_reloads"] == 1, 3)
    # An invalid one too (the old config keeps running, so the service is ready again).
    with open(a.conf_path, "a") as f:
        f.write("\n[bogus]\n")
    m = ns.mark()
    a.signal(signal.SIGHUP)
    ri, _, _ = ns.wait_line("RELOADING=1", since=m)
    ns.wait_line("READY=1", since=ri)
    assert a.stats()["config_reload_failures"] == 1
    a.write_config()

    # No ping while the process is stopped (the loop cannot run), pings again after.
    os.kill(a.pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        time.sleep(2.0)  # the stop itself, not a wait for a condition
        # (a ping sent just before the stop may still be arriving in the first 0.1 s)
        during = ns.count("WATCHDOG=1", start=stopped_at + 0.1)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    assert during == 0
    resumed = ns.count("WATCHDOG=1")
    wait_until(lambda: ns.count("WATCHDOG=1") >= resumed + 2, 3, msg="pings after SIGCONT")

    # SIGTERM: STOPPING=1, then no more pings, exit 0.
    m = ns.mark()
    a.signal(signal.SIGTERM)
    si, st, _ = ns.wait_line("STOPPING=1", since=m)
    assert a.wait_exit(10) == 0
    assert ns.count("WATCHDOG=1", since=si + 1) == 0
    assert ns.count("READY=1", since=si) == 0


def test_no_watchdog_pings_without_watchdog_usec(env):
    r = env.redis()
    a, ns = notify_agent(env, [instance("a", r)])
    _, t_ready, _ = ns.wait_line("READY=1")
    ns.wait_line("STATUS=1 instance: 1 up, 0 down; zookeeper connecting", timeout=5)
    wait_until(lambda: time.monotonic() - t_ready > 1.5, 3)
    assert ns.count("WATCHDOG=1") == 0
    assert a.stop() == 0
    ns.wait_line("STOPPING=1")


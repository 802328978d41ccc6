"""Scenario: "Redis" peers that never stop answering (issue 12). Four endless replies -- a
bulk announced as 2 GB and then streamed, a status line that never ends, an array of 60 KB
bulks that never ends, nested arrays of integers that never end -- each make the link hold
more than 64 KiB: each instance is down with `protocol error: reply too large`, each link is
closed as soon as that happens (not at the probe deadline), the agent's RSS grows by at most
32 MiB over 6 s of it, and a healthy Redis beside them stays up.

Then the two hostile answers that are not about size: a flood of pipelined `+PONG` (hiredis
0.14 used to abort the agent on the first reply nobody asked for) and nesting deeper than
hiredis's 7 levels: the agent lives, each such link is closed, memory stays flat."""

import socket
import threading
import time

from harness import TcpPeer, instance, pid_alive, proc_fd_targets, wait_until

MAX_HELD = 64 * 1024
CHUNK = 64 * 1024


class EndlessPeer(TcpPeer):
    """Answers the first command it reads with HEAD, then streams body() as fast as loopback
    goes until the agent closes the connection. Records, per connection, the monotonic time
    at which more than 64 KiB had been sent and the time the close was seen."""

    def __init__(self, head):
        self.head = head
        self.closes = []  # (seconds from > 64 KiB sent to the close seen, bytes sent)
        self.lock = threading.Lock()
        super().__init__()

    def body(self):
        while True:
            yield b"x" * CHUNK

    def serve(self, c):
        c.settimeout(10)  # a close seen, not a timeout of ours, ends the stream
        try:
            if not c.recv(4096):
                return
        except OSError:
            return
        sent, t_over = 0, None
        try:
            c.sendall(self.head)
            sent += len(self.head)
            for chunk in self.body():
                if self.stopping:
                    return
                c.sendall(chunk)
                sent += len(chunk)
                if t_over is None and sent > MAX_HELD:
                    t_over = time.monotonic()
        except (BrokenPipeError, ConnectionResetError):
            if t_over is not None:
                with self.lock:
                    self.closes.append((time.monotonic() - t_over, sent))
        except OSError:
            pass


class EndlessLine(EndlessPeer):
    """`+xxxx...` with no CRLF ever."""

    def __init__(self):
        super().__init__(b"+")


class EndlessBulks(EndlessPeer):
    """`*4096` of 60,000-byte bulks, each under the bound, their sum over it."""

    def __init__(self):
        super().__init__(b"*4096\r\n")

    def body(self):
        one = b"$60000\r\n" + b"b" * 60000 + b"\r\n"
        while True:
            yield one


class EndlessIntegers(EndlessPeer):
    """`*4096` of `*4096` of `:1`: tiny on the wire, a reply object each."""

    def __init__(self):
        super().__init__(b"*4096\r\n*4096\r\n")

    def body(self):
        while True:
            yield b":1\r\n" * (CHUNK // 4)


class Flood(TcpPeer):
    """Answers every command with a stream of `+PONG` that never ends."""

    def serve(self, c):
        c.settimeout(10)
        try:
            if not c.recv(4096):
                return
            while not self.stopping:
                c.sendall(b"+PONG\r\n" * 4096)
        except OSError:
            pass


class DeepNesting(TcpPeer):
    """Answers every command with arrays nested 100 deep (hiredis stops at 7)."""

    def serve(self, c):
        for data in self.recv_chunks(c):
            if data:
                c.sendall(b"*1\r\n" * 100 + b":1\r\n")


def test_endless_replies_are_cut_at_64k(env):
    peers = {
        "bulk2g": env.register(EndlessPeer(b"$2000000000\r\n")),
        "line": env.register(EndlessLine()),
        "bulks": env.register(EndlessBulks()),
        "ints": env.register(EndlessIntegers()),
    }
    r = env.redis()
    # A deadline far from the close we expect: a link cut at the deadline would be seen.
    a = env.agent([instance(n, p) for n, p in peers.items()] + [instance("real", r)],
                  interval="1s", timeout="800ms", rise=2, fall=2)
    a.wait_instance("real", timeout=10, state="up")
    rss0 = a.stats()["rss_bytes"]

    peak = rss0
    end = time.monotonic() + 6
    while time.monotonic() < end:
        peak = max(peak, a.stats()["rss_bytes"], a.rss_bytes())
        time.sleep(0.05)
    growth = peak - rss0
    print("rss start %d, peak %d, growth %d bytes" % (rss0, peak, growth))
    assert growth <= 32 * 1024 * 1024, growth

    for name, p in peers.items():
        inst = a.instance(name)
        assert (inst["state"], inst["reason"]) == ("down", "protocol error: reply too large"), inst
        with p.lock:
            closes = list(p.closes)
        assert len(closes) >= 3, (name, closes)  # probed again every interval, cut each time
        worst = max(t for t, _ in closes)
        print("%s: %d links cut, worst %.1f ms after 64 KiB sent, at most %d bytes sent" %
              (name, len(closes), worst * 1000, max(n for _, n in closes)))
        # At once, not at the 800 ms deadline (generous for a shared machine).
        assert worst < 0.5, (name, closes)

    st = a.stats()
    assert st["probes_timeout"] == 0, st
    real = a.instance("real")
    assert (real["state"], real["reason"]) == ("up", ""), real
    assert a.log().count("instance real: up -> down") == 0
    assert pid_alive(a.pid) and a.running()
    assert a.stop() == 0


def test_flood_and_deep_nesting(env):
    flood = env.register(Flood())
    deep = env.register(DeepNesting())
    r = env.redis()
    a = env.agent([instance("flood", flood), instance("deep", deep), instance("real", r)],
                  interval="300ms", timeout="200ms", rise=2, fall=2)
    a.wait_instance("real", timeout=10, state="up")
    inst = a.wait_instance("deep", timeout=5, state="down")
    assert inst["reason"] == "protocol error", inst
    rss0 = a.stats()["rss_bytes"]

    # Every flood link is closed once its PONG is read: the agent reconnects, again and again.
    n0 = flood.connections
    wait_until(lambda: flood.connections >= n0 + 5, timeout=10,
               msg="the agent to keep closing the flooding links")
    peak = rss0
    for _ in range(40):
        peak = max(peak, a.stats()["rss_bytes"])
        time.sleep(0.05)
    assert peak - rss0 <= 8 * 1024 * 1024, (rss0, peak)
    assert pid_alive(a.pid) and a.running()
    assert a.instance("deep")["reason"] == "protocol error"
    assert a.instance("real")["state"] == "up"
    # The flood holds no links open: fds stay at a fixed number plus one per instance.
    assert a.fds() <= 32, proc_fd_targets(a.pid)
    assert a.stop() == 0

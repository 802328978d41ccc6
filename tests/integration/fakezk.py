"""fakezk.py -- hostile "ZooKeeper" servers for the integration tests: TCP listeners on
loopback that speak just enough of the ZooKeeper wire protocol to misbehave in a chosen way.

The protocol, as far as it matters here: every packet is a 4-byte big-endian length, then a
jute record. The client opens with a ConnectRequest (protocolVersion int32, lastZxidSeen
int64, timeOut int32, sessionId int64, passwd buffer = int32 length + bytes, readOnly bool:
45 bytes); the server answers a ConnectResponse (protocolVersion int32, timeOut int32,
sessionId int64, passwd buffer, readOnly bool: 41 bytes). After that, requests and replies
are length-prefixed too (a reply starts with xid int32, zxid int64, err int32).

Modes (FakeZooKeeper.MODES):
  silent          accept, read everything, never answer a byte
  garbage         answer the handshake with random bytes, then keep reading, never more
  expired         answer the handshake with timeOut 0: the client takes it as an expired
                  session (a new handle each time, if the agent re-initialises)
  bad_frame       a plausible ConnectResponse, then a frame whose length is -1 (the client
                  allocates nothing and cannot make progress on that connection)
  huge_frame      a plausible ConnectResponse, then a frame announcing ~2 GiB and a stream
                  of bytes as fast as loopback goes (256 MiB in all, HUGE_FRAME_CAP)
  drop_on_accept  close every connection as soon as it is accepted
  drop_handshake  read the ConnectRequest, close without answering
  drop_after      answer a plausible ConnectResponse, then close

`connections` counts accepted connections; `handshakes` counts ConnectRequests read.

measure_agent_against() runs an agent against one of them and checks what must hold.
"""

import os
import random
import socket
import struct
import time

import harness
from harness import TcpPeer, instance

CONNECT_REQUEST_LEN = 45
HUGE_FRAME_CAP = 256 * 1024 * 1024  # bytes streamed in all, to spare the test machine


def connect_response(timeout_ms=10000, session_id=0x1234567890ABCDEF, passwd=b"p" * 16):
    body = struct.pack(">iiq", 0, timeout_ms, session_id)
    body += struct.pack(">i", len(passwd)) + passwd + b"\x00"
    return struct.pack(">i", len(body)) + body


class FakeZooKeeper(TcpPeer):
    MODES = ("silent", "garbage", "expired", "bad_frame", "huge_frame", "drop_on_accept",
             "drop_handshake", "drop_after")

    def __init__(self, mode, seed=12):
        assert mode in self.MODES, mode
        self.mode = mode
        self.rng = random.Random(seed)
        self.handshakes = 0
        self.streamed = 0  # bytes sent in huge_frame mode
        super().__init__(backlog=128)

    def _read_handshake(self, c):
        """Reads a whole ConnectRequest (length + 45 bytes); returns False at EOF/stop."""
        buf = b""
        for data in self.recv_chunks(c):
            buf += data
            if len(buf) >= 4:
                (n,) = struct.unpack(">i", buf[:4])
                if len(buf) >= 4 + max(0, min(n, 4096)):
                    with self._lock:
                        self.handshakes += 1
                    return True
        return False

    def _drain(self, c):
        for _ in self.recv_chunks(c):
            pass

    def serve(self, c):
        m = self.mode
        if m == "drop_on_accept":
            return
        if m == "silent":
            self._drain(c)
            return
        if not self._read_handshake(c):
            return
        if m == "drop_handshake":
            return
        if m == "garbage":
            with self._lock:
                junk = bytes(self.rng.getrandbits(8) for _ in range(64))
            c.sendall(junk)
            self._drain(c)
            return
        if m == "expired":
            c.sendall(connect_response(timeout_ms=0, session_id=0))
            self._drain(c)
            return
        c.sendall(connect_response())
        if m == "drop_after":
            return
        if m == "bad_frame":
            c.sendall(struct.pack(">i", -1) + b"\xff" * 16)
            self._drain(c)
            return
        if m == "huge_frame":
            c.sendall(struct.pack(">i", 0x7FFFFFF0))
            chunk = b"\xab" * 65536
            while not self.stopping and self.streamed < HUGE_FRAME_CAP:
                try:
                    c.sendall(chunk)
                except socket.timeout:
                    continue
                with self._lock:
                    self.streamed += len(chunk)
            self._drain(c)
            return


# --------------------------------------------------------------- the agent against one

INTERVAL = 0.1  # s, the probe interval configured below
SESSION_TIMEOUT = 10.0  # s, the agent's default
WARMUP = 1.5
WINDOW = 5.0
# The C client waits recv_timeout/60 after trying every server, and nothing longer: with
# one server that is its whole reconnect pace (ZooKeeper 3.8 zookeeper_interest()).
# Measured: 6/s when every connect fails before a session; 8/s (16/s under ASan) when each
# one establishes a session first, since a drop after a good handshake is retried at once.
# A spin is thousands a second (see the "expired" case); the bound is 5 times the pace.
LIBRARY_PACE = 60.0 / SESSION_TIMEOUT
MAX_CONNECTS_PER_S = 5 * LIBRARY_PACE
# A server that drops every connection right after a good handshake: the agent backs off by
# itself after 3 such connections in a row (then after each one), 0.5 s doubling: by the window
# it waits 1 s or more between connections. 3/s leaves room for the first few and for load.
MAX_CONNECTS_PER_S_BACKOFF = 3.0
# Our own lines and the client's (each distinct text at most once a minute): a handful.
MAX_LOG_LINES = 40
# One handle's two threads and the loop; while a handle given up is being closed, its two
# threads and the thread closing it (the next handle opens only after that).
MAX_THREADS = 4
MAX_CPU = 0.20
MAX_GROWTH = 2 * 1024 * 1024
MAX_PEAK_RSS = 64 * 1024 * 1024  # VmHWM: whatever happened during warm-up too
# A frame of 2 GiB streamed at loopback speed fills ~32 MiB per watchdog tick (250 ms) before
# the handle is given up: half the unit's MemoryMax=256M.
MAX_PEAK_RSS_HUGE = 128 * 1024 * 1024
MAX_STATS_LATENCY = 0.2

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of PID, in seconds, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _sanitized():
    with open(harness.agent_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def peak_rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _timed_stats(a):
    t0 = time.monotonic()
    st = a.stats()
    return time.monotonic() - t0, st


def measure_agent_against(env, mode):
    """Starts a FakeZooKeeper(MODE) and an agent probing a real Redis every 100 ms with
    hosts = the fake; after WARMUP, watches it for WINDOW seconds and asserts:
      1. probing never stalls: probes_total grows at >= half the configured rate, and the
         instance stays up;
      2. every `stats` (one each 200 ms) answers within MAX_STATS_LATENCY;
      3. rss_bytes and heap_bytes grow by less than MAX_GROWTH, the peak RSS (VmHWM, warm-up
         included) stays under MAX_PEAK_RSS; threads stay at most MAX_THREADS;
      4. no reconnect spin: the fake sees at most MAX_CONNECTS_PER_S connects a second
         (MAX_CONNECTS_PER_S_BACKOFF for drop_after), the agent uses less than MAX_CPU of one
         core (utime + stime), and writes at most MAX_LOG_LINES lines in all.
    Prints the numbers (pytest -s); returns them as a dict."""
    fake = FakeZooKeeper(mode)
    env.register(fake)
    r = env.redis()
    # The client callocs whatever length a frame announces: glibc returns NULL for an
    # impossible one (a negative length read as size_t), which is what production sees; ASan
    # aborts instead unless told to behave like glibc.
    saved = os.environ.get("ASAN_OPTIONS")
    if _sanitized():
        os.environ["ASAN_OPTIONS"] = ((saved + ":") if saved else "") + "allocator_may_return_null=1"
    try:
        a = env.agent([instance("cache-a", r)], interval="100ms", timeout="90ms",
                      log_level=os.environ.get("FAKEZK_LOGLEVEL", "info"),
                      zookeeper={"hosts": fake.address})
    finally:
        if saved is None:
            os.environ.pop("ASAN_OPTIONS", None)
        else:
            os.environ["ASAN_OPTIONS"] = saved
    a.wait_instance("cache-a", timeout=5, state="up")
    time.sleep(WARMUP)

    lat0, st0 = _timed_stats(a)
    conns0, cpu0, t0 = fake.connections, cpu_seconds(a.pid), time.monotonic()
    latencies, threads, states = [lat0], {st0["threads"]}, {st0["zk_state"]}
    down = []
    while time.monotonic() - t0 < WINDOW:
        time.sleep(0.2)
        lat, st = _timed_stats(a)
        latencies.append(lat)
        threads.add(st["threads"])
        states.add(st["zk_state"])
        inst = a.instance("cache-a")
        if inst["state"] != "up":
            down.append(inst)
    elapsed = time.monotonic() - t0
    conns = fake.connections - conns0
    cpu = (cpu_seconds(a.pid) - cpu0) / elapsed
    _, st1 = _timed_stats(a)
    m = {
        "connects_per_s": conns / elapsed,
        "cpu": cpu,
        "probes_per_s": (st1["probes_total"] - st0["probes_total"]) / elapsed,
        "rss_growth": st1["rss_bytes"] - st0["rss_bytes"],
        "heap_growth": st1["heap_bytes"] - st0["heap_bytes"],
        "peak_rss": peak_rss_bytes(a.pid),
        "heap": st1["heap_bytes"],
        "threads": sorted(threads),
        "max_latency": max(latencies),
        "log_lines": len(a.log().splitlines()),
    }
    print("\nzk %-14s connects %.2f/s (%d in %.1fs, %d handshakes in all), cpu %.1f%%, "
          "probes %.1f/s, rss %+d KiB (peak %d MiB), heap %+d KiB (%d MiB), threads %s, zk_state %s, stats max "
          "%.1f ms, zk_reconnects %d, zk_sessions_expired %d, %d log lines%s"
          % (mode, m["connects_per_s"], conns, elapsed, fake.handshakes, cpu * 100,
             m["probes_per_s"], m["rss_growth"] // 1024, m["peak_rss"] >> 20,
             m["heap_growth"] // 1024, m["heap"] >> 20,
             m["threads"], sorted(states), m["max_latency"] * 1000, st1["zk_reconnects"],
             st1["zk_sessions_expired"], m["log_lines"],
             (", streamed %d KiB" % (fake.streamed // 1024)) if mode == "huge_frame" else ""))

    if os.environ.get("FAKEZK_LOG"):
        print(a.log())
    assert not down, "the instance left up: %r" % down[:1]
    assert m["probes_per_s"] >= 0.5 / INTERVAL, "probing stalled: %.1f/s" % m["probes_per_s"]
    assert m["max_latency"] < MAX_STATS_LATENCY, latencies
    # ASan's quarantine keeps freed memory resident (the idle "silent" case grows 1.5 MiB):
    # there, RSS growth says nothing; heap_bytes and the peak still do. Where the library
    # allocates and frees whatever sizes the garbage announces (garbage, huge_frame), the
    # quarantine (256 MiB) holds those too: RSS grew 17.5 MiB with heap_bytes flat, so under
    # ASan only heap_bytes is checked there.
    assert m["heap_growth"] < MAX_GROWTH, m
    if not (_sanitized() and mode in ("garbage", "huge_frame")):
        rss_limit = 4 * MAX_GROWTH if _sanitized() else MAX_GROWTH
        assert m["rss_growth"] < rss_limit, m
    peak_limit = MAX_PEAK_RSS_HUGE if mode == "huge_frame" else MAX_PEAK_RSS
    if _sanitized() and mode in ("garbage", "huge_frame"):
        # ASan writes the shadow of a 2 GiB calloc (256 MiB) at once: the peak says nothing
        # there. What the agent let in still does: it stopped the stream early.
        assert fake.streamed < MAX_PEAK_RSS_HUGE, "streamed %d MiB" % (fake.streamed >> 20)
    else:
        assert m["peak_rss"] < peak_limit, "peak RSS %d MiB" % (m["peak_rss"] >> 20)
    assert max(threads) <= MAX_THREADS, "thread count: %s" % m["threads"]
    max_rate = MAX_CONNECTS_PER_S_BACKOFF if mode == "drop_after" else MAX_CONNECTS_PER_S
    assert m["connects_per_s"] <= max_rate, (
        "reconnect spin: %d connects in %.1fs" % (conns, elapsed))
    assert m["log_lines"] <= MAX_LOG_LINES, "%d log lines" % m["log_lines"]
    # Under ASan each huge calloc (garbage, huge_frame) costs the shadow writes of 2 GiB.
    cpu_limit = 2 * MAX_CPU if _sanitized() else MAX_CPU
    assert cpu < cpu_limit, "agent CPU %.1f%% of a core" % (cpu * 100)
    assert a.running()
    return m

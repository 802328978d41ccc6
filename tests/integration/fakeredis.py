"""fakeredis.py -- a scripted Redis look-alike for the integration tests: a TCP peer (built on
harness.TcpPeer, so the Env tears it down) that speaks enough RESP to be probed -- PING, ROLE,
AUTH -- with a ROLE answer the test chooses, and that can be frozen the way a killed Redis
with a fork child looks from outside: the connections it holds stay open but silent, and its
port refuses new connections.

    fake = fake_redis(env, role_reply=encode([b"active-replica", b"10.0.0.1", 6379, ...]))
    ...
    fake.freeze()
"""

import socket
import threading

from harness import TcpPeer


def _bulk(b):
    if isinstance(b, str):
        b = b.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


def encode(value):
    """RESP2 encoding of a Python value: bytes/str -> bulk string, int -> integer, list ->
    array, None -> null bulk."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, (bytes, str)):
        return _bulk(value)
    if isinstance(value, (list, tuple)):
        return b"*%d\r\n" % len(value) + b"".join(encode(v) for v in value)
    raise TypeError("cannot encode %r" % (value,))


class CommandParser:
    """Incremental parser of client commands: RESP arrays of bulk strings, or inline lines.
    feed() returns the complete commands as lists of bytes (upper-cased first element)."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            cmd, used = self._one(self.buf)
            if cmd is None:
                return out
            self.buf = self.buf[used:]
            if cmd:
                cmd[0] = cmd[0].upper()
                out.append(cmd)

    @staticmethod
    def _one(buf):
        if not buf:
            return None, 0
        if buf[:1] != b"*":
            i = buf.find(b"\r\n")
            if i < 0:
                return None, 0
            return buf[:i].split(), i + 2
        i = buf.find(b"\r\n")
        if i < 0:
            return None, 0
        n = int(buf[1:i])
        pos = i + 2
        args = []
        for _ in range(n):
            j = buf.find(b"\r\n", pos)
            if j < 0 or buf[pos:pos + 1] != b"$":
                return None, 0
            ln = int(buf[pos + 1:j])
            start = j + 2
            if len(buf) < start + ln + 2:
                return None, 0
            args.append(buf[start:start + ln])
            pos = start + ln + 2
        return args, pos


class FakeRedis(TcpPeer):
    """A Redis look-alike on 127.0.0.1. PING -> +PONG; ROLE -> ROLE_REPLY (raw RESP bytes;
    default a master with no replicas); AUTH -> +OK; anything else -> an -ERR.

    freeze(): from then on nothing is answered on the open connections (they stay open, their
    input is read and dropped) and the listening socket is shut, so a new connect() to the
    port is refused -- a Redis killed with kill -9 while a BGSAVE child holds its client
    sockets. commands counts the commands received, by name."""

    MASTER = encode([b"master", 0, []])

    def __init__(self, role_reply=MASTER, port=0):
        self.role_reply = role_reply
        self.frozen = threading.Event()
        self.commands = {}
        self._count_lock = threading.Lock()
        super().__init__(port=port)

    def _count(self, name):
        with self._count_lock:
            self.commands[name] = self.commands.get(name, 0) + 1

    def serve(self, c):
        parser = CommandParser()
        for data in self.recv_chunks(c):
            if not data or self.frozen.is_set():
                continue
            out = b""
            for cmd in parser.feed(data):
                name = cmd[0].decode(errors="replace")
                self._count(name)
                if name == "PING":
                    out += b"+PONG\r\n"
                elif name == "ROLE":
                    out += self.role_reply
                elif name == "AUTH":
                    out += b"+OK\r\n"
                else:
                    out += b"-ERR unknown command '%s'\r\n" % cmd[0]
            if out and not self.frozen.is_set():
                c.sendall(out)

    def freeze(self):
        """Stops answering on the open connections and refuses new ones (see the class)."""
        self.frozen.set()
        try:
            # shutdown() on a listening socket stops it listening at once: queued and new
            # connects are reset (refused), and the accept thread wakes up with an error.
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def fake_redis(env, **kw):
    """A FakeRedis owned by ENV (stopped at teardown)."""
    return env.register(FakeRedis(**kw))

"""TILT: when the agent's own loop stalls (SIGSTOP of the agent), timeouts judged on that bad
timing do not take an instance down.

A slow but healthy Redis stand-in answers every command after 100 ms (timeout 190 ms,
interval 200 ms), so a probe is in flight half of the time; each SIGSTOP of the agent then
freezes a probe whose deadline fires a second late on SIGCONT. Without TILT every such probe
would be a timeout and, with fall = 1, a transition to down.
"""

import signal
import socket
import threading
import time

from harness import Agent, LOOPBACK, instance, wait_until


class SlowRedis:
    """Answers PING with +PONG and ROLE with a master reply, each after DELAY seconds."""

    def __init__(self, delay):
        self.delay = delay
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.address = "%s:%d" % self.sock.getsockname()
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(0.2)
        buf = b""
        while not self.stop.is_set():
            try:
                data = c.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            # Commands arrive as RESP arrays of one bulk string, PING or ROLE, possibly
            # several in one segment: wait once, then answer them all in order.
            out = b""
            while True:
                ip, ir = buf.find(b"PING\r\n"), buf.find(b"ROLE\r\n")
                found = [i for i in (ip, ir) if i >= 0]
                if not found:
                    break
                first = min(found)
                out += b"+PONG\r\n" if first == ip else b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"
                buf = buf[first + 6:]
            if out:
                time.sleep(self.delay)
                try:
                    c.sendall(out)
                except OSError:
                    return
        c.close()

    def cleanup(self):
        self.stop.set()
        self.sock.close()


def test_agent_stall_does_not_take_instances_down(env):
    slow = env.register(SlowRedis(0.10))
    a = Agent(env, instances=[instance("slow", slow.address)], interval="200ms",
              timeout="190ms", rise=1, fall=1)
    up = a.wait_instance("slow", state="up", role="master")
    for _ in range(20):
        a.signal(signal.SIGSTOP)
        time.sleep(1.0)
        a.signal(signal.SIGCONT)
        time.sleep(0.3)
        if a.stats()["probes_tilted"] >= 2:
            break
    assert "-> down" not in a.log(), a.log_tail()
    st = a.stats()
    assert st["probes_tilted"] >= 1, st
    after = a.instance("slow")
    assert after["state"] == "up" and after["since_ms"] == up["since_ms"]
    a.wait_log(r"warn agent: the event loop ran late")
    # a real failure is still seen after a stall
    slow.cleanup()
    a.wait_instance("slow", state="down", timeout=5)

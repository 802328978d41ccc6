"""TILT: when the agent's own loop stalls (SIGSTOP of the agent), timeouts judged on that bad
timing do not take an instance down.

A slow but healthy Redis stand-in answers every command after 100 ms (timeout 190 ms,
interval 200 ms), so a probe is in flight half of the time; each SIGSTOP of the agent then
freezes a probe whose deadline fires a second late on SIGCONT. Without TILT every such probe
would be a timeout and, with fall = 1, a transition to down.
"""

import random
import signal
import time

from harness import Agent, TcpPeer, instance


class SlowRedis(TcpPeer):
    """Answers PING with +PONG and ROLE with a master reply, each after DELAY seconds."""

    def __init__(self, delay):
        self.delay = delay
        super().__init__(backlog=16)

    def serve(self, c):
        buf = b""
        for data in self.recv_chunks(c):
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
                c.sendall(out)


def test_agent_stall_does_not_take_instances_down(env):
    slow = env.register(SlowRedis(0.10))
    a = Agent(env, instances=[instance("slow", slow.address)], interval="200ms",
              timeout="190ms", rise=1, fall=1)
    up = a.wait_instance("slow", state="up", role="master")
    rng = random.Random(4)
    for _ in range(20):
        a.signal(signal.SIGSTOP)
        time.sleep(1.0)
        a.signal(signal.SIGCONT)
        # a random phase: a fixed pause can lock onto the probe period and always stop the
        # agent between probes
        time.sleep(rng.uniform(0.2, 0.45))
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

"""Scenario: recoveries are published well under a second at the default settings
(interval 1 s, timeout 500 ms, rise 2, fall 2, downinter 250 ms), and kill -9 stays fast.

- SIGCONT after SIGSTOP (the instance went down on timeouts): the node says `up` within
  500 ms of the SIGCONT (a reply arriving after its probe timed out triggers a new probe at
  once, and the confirming probes of `rise` follow at once).
- Restart after kill -9: the node says `up` within 1 s of the Redis answering PING again
  (down, it is probed every `downinter`).
- kill -9 of a running Redis: the node says `down` within 300 ms (EOF on the held link, then
  a refused connect: conclusive).

Three repetitions each at a random phase; measured by an independent kazoo client polling
the node; every measured value is printed."""

import random
import time

from harness import instance, wait_until
from zk import kazoo, node_doc, zk_agent, zookeeper

REPS = 3


def _setup(env):
    zk = zookeeper(env)
    r = env.redis()
    bystander = env.redis()
    a = zk_agent(env, zk, [instance("v", r, cluster="c"), instance("b", bystander, cluster="c")],
                 interval="1s", timeout="500ms", rise=2, fall=2)
    k = kazoo(env, zk)

    def state():
        return (node_doc(k, "/sa/c/v")[0] or {}).get("state")

    def wait_state(want, timeout):
        t0 = time.monotonic()
        wait_until(lambda: state() == want, timeout, interval=0.005, msg="node v to say %s" % want)
        return time.monotonic() - t0

    wait_state("up", 10)
    return r, a, wait_state


def test_sigcont_recovery_well_under_a_second(env):
    r, a, wait_state = _setup(env)
    took = []
    for i in range(REPS):
        r.sigstop()
        down = wait_state("down", 10)
        # Resume at a random moment of the down period (a probe may be in flight).
        time.sleep(random.uniform(0, 1.0))
        t0 = time.monotonic()
        r.sigcont()
        wait_state("up", 10)
        dt = time.monotonic() - t0
        took.append(dt)
        print("rep %d: SIGSTOP -> down %.0f ms; SIGCONT -> up %.0f ms" % (i, down * 1000, dt * 1000))
    assert max(took) <= 0.5, "SIGCONT -> up took %s ms (bound 500 ms)" % [round(t * 1000) for t in took]
    assert a.instance("b")["state"] == "up"


def test_restart_recovery_and_kill9(env):
    r, a, wait_state = _setup(env)
    ups, downs = [], []
    for i in range(REPS):
        time.sleep(random.uniform(0, 1.0))
        t0 = time.monotonic()
        r.kill9()
        downs.append(time.monotonic() - t0 + wait_state("down", 5))
        time.sleep(random.uniform(0, 1.0))
        t_spawn = time.monotonic()
        r.start()  # returns once the new redis-server answers PING
        t_ready = time.monotonic()
        wait_state("up", 10)
        ups.append(time.monotonic() - t_ready)
        print("rep %d: kill -9 -> down %.0f ms; restart -> up %.0f ms after it answered PING "
              "(%.0f ms after the spawn)" % (i, downs[-1] * 1000, ups[-1] * 1000,
                                             (time.monotonic() - t_spawn) * 1000))
    assert max(downs) <= 0.3, "kill -9 -> down took %s ms (bound 300 ms)" % [round(t * 1000) for t in downs]
    assert max(ups) <= 1.0, "restart -> up took %s ms (bound 1000 ms)" % [round(t * 1000) for t in ups]
    assert a.instance("b")["state"] == "up"

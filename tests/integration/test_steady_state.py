"""Scenario: steady state. 20 instances over 3 redis-servers probed every 100 ms for
about 15 s: thread count and open fds seen in /proc stay constant, and fds stay within
one per instance plus a small fixed number."""

import time

from harness import instance, wait_until

N_INSTANCES = 20
FIXED_FDS = 20


def test_threads_and_fds_constant(env):
    servers = [env.redis() for _ in range(3)]
    insts = [instance("i%02d" % i, servers[i % 3], cluster="c%d" % (i % 3))
             for i in range(N_INSTANCES)]
    a = env.agent(insts, interval="100ms", timeout="90ms", rise=2, fall=2)

    def all_up():
        return all(i["state"] == "up" for i in a.instances())
    wait_until(all_up, timeout=5, msg="all 20 instances up")
    start = a.stats()

    samples = []  # (t, threads, fds, fd targets)
    t_end = time.monotonic() + 15
    warmup_until = time.monotonic() + 5
    while time.monotonic() < t_end:
        assert a.running(), "agent died:\n%s" % a.log_tail()
        if time.monotonic() >= warmup_until:
            samples.append((round(time.monotonic() - warmup_until, 1), a.threads(), a.fds()))
        time.sleep(0.25)  # sampling period, not an assertion

    assert len(samples) >= 20
    threads = {s[1] for s in samples}
    fds = {s[2] for s in samples}
    assert len(threads) == 1, "thread count changed: %s" % samples
    assert len(fds) == 1, "open fd count changed: %s" % samples
    assert samples[0][2] <= N_INSTANCES + FIXED_FDS, "%d fds for %d instances" % (
        samples[0][2], N_INSTANCES)

    end = a.stats()
    assert end["threads"] == samples[-1][1]
    done = end["probes_total"] - start["probes_total"]
    # 20 instances x 10/s x ~15 s = ~3000 probes; demand a good part of them.
    assert done >= 2000, "only %d probes in ~15 s" % done
    failed = end["probes_failed"] - start["probes_failed"]
    assert failed <= done // 100, "%d of %d probes failed against healthy servers" % (failed, done)
    assert all_up()
    assert a.stop() == 0

#!/usr/bin/python3
"""bench/upgrade.py N [N ...] -- time of a zero-gap upgrade at N instances: SIGUSR2 to READY=1
(from a fake NOTIFY_SOCKET), to every instance probed again, and the longest interval any
instance went unprobed (an upper bound: each instance's last check read just before SIGUSR2,
then its first check after it). N names spread over 10 redis-servers, interval 1s, one
ZooKeeper. Reuses tests/integration/harness.py; SA_BUILD_DIR names the build.

One run on the 2-core development machine (shared, loaded), RelWithDebInfo build, after
issue 11 (first probes at once through the queue) was merged in; figures in
docs/performance.md ("Upgrade in place"):
  N=1000:  SIGUSR2 -> READY=1 194 ms; all probed again 256 ms; longest unprobed 1228 ms
  N=10000: SIGUSR2 -> READY=1 1725 ms; all probed again 4081 ms; longest unprobed 4661 ms
In both the session was resumed and only the agent node was rewritten (zk_writes_ok 1).
Parsing a 10,000-instance config takes about 60 ms (`-t`), so the config check child is not
where the time goes; the rest is 10,000 Redis links stopped and connected again (they are
not handed over)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Env, instance, now_ms, wait_until  # noqa: E402
from test_notify import notify_agent  # noqa: E402
from zk import zk_agent, zookeeper  # noqa: E402


def run(n):
    env = Env()
    try:
        zk = zookeeper(env)
        rs = [env.redis() for _ in range(10)]
        insts = [instance("i%05d" % i, rs[i % len(rs)]) for i in range(n)]
        a, ns = notify_agent(env, insts, zookeeper={"hosts": zk.hosts, "root": "/sa",
                                                     "session_timeout": "10s"},
                             name="h", interval="1s", timeout="500ms", max_inflight=n)
        ns.wait_line("READY=1", timeout=60)
        wait_until(lambda: all(i["published"] for i in a.instances()), 120, interval=0.5)
        time.sleep(2)
        before = {i["name"]: i["last_check_ms"] for i in a.instances()}
        mark = ns.mark()
        t0, w0 = time.monotonic(), now_ms()
        a.signal(signal.SIGUSR2)
        _, t_ready, _ = ns.wait_line("READY=1", since=mark, timeout=60)

        def all_probed():
            inst = a.instances()
            return inst if all(i["last_check_ms"] > w0 for i in inst) else None
        inst = wait_until(all_probed, 60, interval=0.05)
        t_all = time.monotonic()
        gap = max(i["last_check_ms"] - before[i["name"]] for i in inst)
        wait_until(lambda: all(i["published"] for i in a.instances()), 60, interval=0.2)
        st = a.stats()
        print("N=%d: SIGUSR2 -> READY=1 %.0f ms; -> all probed again %.0f ms; longest unprobed "
              "%d ms (interval 1000 ms); session resumed %s, zk_writes_ok %d"
              % (n, (t_ready - t0) * 1000, (t_all - t0) * 1000, gap, st["zk_session_resumed"],
                 st["zk_writes_ok"]), flush=True)
    finally:
        env.cleanup()


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["1000", "10000"]:
        run(int(arg))

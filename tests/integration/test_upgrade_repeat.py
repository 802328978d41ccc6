"""Scenario: 50 upgrades in a row leave nothing behind: threads, open fds, ZooKeeper watches
(ours and the server's) and RSS are the same before and after, the session and every node
(czxid) are kept. Nothing leaks across exec: an fd left without close-on-exec would add one
per upgrade. The ASan build runs it too; test_upgrade_valgrind.py runs a few under
valgrind."""

import signal
import time

from harness import instance, wait_until
from zk import NodeWatch, kazoo, node_doc, session_of, zk_agent, zookeeper

ROUNDS = 50


def test_fifty_upgrades_leave_nothing_behind(env):
    zk = zookeeper(env)
    rs = [env.redis() for _ in range(3)]
    names = ["r%d" % i for i in range(len(rs))]
    a = zk_agent(env, zk, [instance(n, r) for n, r in zip(names, rs)], name="h",
                 session_timeout="6s")
    for n in names:
        a.wait_instance(n, timeout=5, published=True, state="up")
    wait_until(lambda: a.stats()["zk_watches"] == len(names) + 1, 5)
    k = kazoo(env, zk)
    paths = ["/sa/default/%s" % n for n in names] + ["/sa/agents/h"]
    czxid = {p: node_doc(k, p)[1].czxid for p in paths}
    watch = NodeWatch(k, paths)
    wait_until(lambda: watch.seen() == set(paths), 5)
    sid = session_of(a.stats())
    time.sleep(1.0)  # let the allocator settle after start-up
    fds0, threads0, rss0 = a.settled_fds(), a.threads(), a.rss_bytes()
    wchc0 = zk.wchc()

    t_total = time.monotonic()
    for i in range(ROUNDS):
        a.signal(signal.SIGUSR2)
        wait_until(lambda: a.stats()["upgrades"] == i + 1, 20, interval=0.02,
                   msg="upgrade %d" % (i + 1))
        wait_until(lambda: a.stats()["zk_session_resumed"]
                   and a.stats()["zk_watches"] == len(paths), 10, interval=0.02)
    took = time.monotonic() - t_total
    for n in names:
        a.wait_instance(n, timeout=5, published=True, state="up")
    wait_until(lambda: zk.wchc() == wchc0, 5, msg="the server's watches as before")
    wait_until(lambda: a.fds() == fds0, 5, msg="fds %d as before" % fds0)
    time.sleep(1.0)
    fds1, threads1, rss1 = a.fds(), a.threads(), a.rss_bytes()
    st = a.stats()
    print("%d upgrades in %.1f s (%.0f ms each); fds %d -> %d, threads %d -> %d, "
          "RSS %d -> %d KiB" % (ROUNDS, took, took * 1000 / ROUNDS, fds0, fds1, threads0,
                                threads1, rss0 // 1024, rss1 // 1024))
    assert fds1 == fds0
    assert threads1 == threads0
    # Each image starts afresh: RSS is that of a new process, not a grown one.
    assert rss1 < rss0 + 2 * 1024 * 1024, (rss0, rss1)
    assert session_of(st) == sid
    assert st["zk_sessions_expired"] == 0
    assert st["zk_watches"] == len(paths)
    assert watch.lost() == []
    for p in paths:
        assert node_doc(k, p)[1].czxid == czxid[p], p
    assert a.pid == st["pid"]

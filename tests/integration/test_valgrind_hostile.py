"""Scenario: the agent under valgrind memcheck against hostile peers -- a "ZooKeeper" that
answers the handshake plausibly and then drops every connection (session established and
lost over and over), stats clients that dribble bytes without a newline until the idle
limit, more clients than the cap (so a silent one is closed to make room), an HTTP slowloris
client, and a burst of connects to both listeners -- then SIGTERM. valgrind must report 0
errors and nothing definitely, indirectly or possibly lost (tests/valgrind.supp).

The garbage-answer cases of fakezk.py are left out: two make the ZooKeeper client spin
(see test_zk_hostile.py), which under valgrind only burns the time budget.

Skipped for a sanitizer build (valgrind cannot run ASan binaries)."""

import os
import socket
import time

import pytest

import harness
from fakezk import FakeZooKeeper
from harness import LOOPBACK, StatsClient, free_port, instance
from test_valgrind import VALGRIND, _sanitized, _wrapper, assert_clean


def test_hostile_peers_under_valgrind(env, monkeypatch):
    if not os.access(VALGRIND, os.X_OK):
        pytest.skip("valgrind not installed")
    if _sanitized():
        pytest.skip("ASan build: valgrind cannot run it")
    script, log = _wrapper(env)
    monkeypatch.setattr(harness, "agent_bin", lambda: script)

    fake = env.register(FakeZooKeeper("drop_after"))
    r = env.redis()
    port = free_port()
    a = env.agent([instance("cache-a", r)], interval="200ms", timeout="150ms",
                  shutdown_timeout="20s", metrics_listen="%s:%d" % (LOOPBACK, port),
                  zookeeper={"hosts": fake.address, "session_timeout": "2s"},
                  wait_ready=False)
    a.wait_ready(timeout=60)
    a.wait_instance("cache-a", timeout=30, state="up")

    # Bursts past both caps: accepted, the excess closed at once.
    burst = []
    for _ in range(300):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(a.stats_socket)
        burst.append(s)
    for _ in range(40):
        burst.append(socket.create_connection((LOOPBACK, port), timeout=10))
    # Dribblers and a slowloris; once they waited more than a second, the operator gets a
    # slot anyway (the longest-idle client is closed).
    for s in burst:
        try:
            s.send(b"x")
        except OSError:
            pass
    time.sleep(1.5)
    with StatsClient(a.stats_socket, timeout=30) as c:
        assert c.command("stats", timeout=30).endswith("\n\n")
    for i in range(12):  # the idle limit (10 s) cuts the rest off
        for s in burst:
            try:
                s.send(b"y")
            except OSError:
                pass
        time.sleep(1.0)
    assert fake.handshakes >= 3, "ZooKeeper sessions were not established and lost"
    for s in burst:
        s.close()

    rc = a.stop(timeout=60)
    assert_clean(log, rc)

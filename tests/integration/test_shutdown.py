"""Scenario: SIGTERM and SIGINT stop the agent cleanly (exit 0, within shutdown_timeout,
socket file removed, stop logged) even with a probe stuck in flight; a second agent
cannot steal a live stats socket; a stale one left by a crash is taken over."""

import os
import signal
import time

import pytest

from harness import instance, pid_alive


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(env, sig):
    r = env.redis()
    hung = env.redis()
    hole = env.black_hole(accept=True)
    a = env.agent([instance("live", r), instance("hung", hung), instance("hole", hole)],
                  interval="200ms", timeout="150ms", shutdown_timeout="3s")
    a.wait_instance("live", timeout=5, state="up")
    a.wait_instance("hung", timeout=5, state="up")
    hung.sigstop()  # its next probes hang until the deadline
    a.wait_instance("hole", timeout=5, state="down")
    assert os.path.exists(a.stats_socket)

    mark = a.log_mark()
    t0 = time.monotonic()
    a.signal(sig)
    rc = a.wait_exit(timeout=3.5)
    elapsed = time.monotonic() - t0
    assert rc == 0, "exit code %s; stderr:\n%s" % (rc, a.log_tail())
    assert elapsed <= 3.5
    assert not os.path.exists(a.stats_socket), "stats socket file left behind"
    tail = a.log()[mark:]
    assert any(w in tail.lower() for w in ("stopp", "shut", "exit")), \
        "no stop message in the log after the signal:\n%s" % tail


def test_second_agent_on_same_socket_fails(env):
    r = env.redis()
    first = env.agent([instance("a", r)], name="first")
    first.wait_instance("a", timeout=5, state="up")
    second = env.agent([instance("a", r)], name="second", stats_socket=first.stats_socket,
                       wait_ready=False)
    rc = second.wait_exit(timeout=10)
    assert rc != 0, "a second agent started on a live stats socket"
    assert rc > 0, "second agent died from signal %d" % -rc
    # The first one is untouched: same socket file, still answering as itself, still probing.
    assert first.running() and pid_alive(first.pid)
    assert os.path.exists(first.stats_socket)
    assert first.stats()["pid"] == first.pid
    c0 = first.instance("a")["last_check_ms"]
    first.wait_instance("a", timeout=3, last_check_ms=lambda v: v > c0)
    assert first.stop() == 0


def test_stale_socket_after_crash_is_taken_over(env):
    r = env.redis()
    a = env.agent([instance("a", r)])
    a.wait_instance("a", timeout=5, state="up")
    a.signal(signal.SIGKILL)
    assert a.wait_exit(timeout=5) == -signal.SIGKILL
    assert os.path.exists(a.stats_socket)  # a crash leaves the file behind
    a.start()
    assert a.stats()["pid"] == a.pid
    a.wait_instance("a", timeout=5, state="up")
    assert a.stop() == 0
    assert not os.path.exists(a.stats_socket)

"""Scenario: the agent under valgrind memcheck against "Redis" peers that never stop answering
(test_probe_endless.py's: a 2 GB bulk, an endless line, endless bulks and integer arrays, a
+PONG flood, nesting past 7 levels) beside a real Redis, for a few seconds of links cut at
64 KiB and reopened, then SIGTERM. valgrind must report 0 errors (the bounded read path frees
links from inside its own read callback) and nothing definitely, indirectly or possibly lost.

Skipped for a sanitizer build (valgrind cannot run ASan binaries)."""

import os
import time

import pytest

import harness
from harness import instance
from test_probe_endless import DeepNesting, EndlessIntegers, EndlessLine, EndlessBulks, \
    EndlessPeer, Flood
from test_valgrind import VALGRIND, _sanitized, _wrapper, assert_clean

TOO_LARGE = "protocol error: reply too large"


def test_endless_replies_under_valgrind(env, monkeypatch):
    if not os.access(VALGRIND, os.X_OK):
        pytest.skip("valgrind not installed")
    if _sanitized():
        pytest.skip("ASan build: valgrind cannot run it")
    script, log = _wrapper(env)
    monkeypatch.setattr(harness, "agent_bin", lambda: script)

    peers = {
        "bulk2g": env.register(EndlessPeer(b"$2000000000\r\n")),
        "line": env.register(EndlessLine()),
        "bulks": env.register(EndlessBulks()),
        "ints": env.register(EndlessIntegers()),
    }
    flood = env.register(Flood())
    deep = env.register(DeepNesting())
    r = env.redis()
    insts = [instance(n, p) for n, p in peers.items()]
    insts += [instance("flood", flood), instance("deep", deep), instance("real", r)]
    a = env.agent(insts, interval="1s", timeout="1s", shutdown_timeout="20s",
                  wait_ready=False)
    a.wait_ready(timeout=60)
    a.wait_instance("real", timeout=30, state="up")
    for name in peers:
        a.wait_instance(name, timeout=30, state="down", reason=TOO_LARGE)
    a.wait_instance("deep", timeout=30, state="down", reason="protocol error")
    n0 = {n: len(p.closes) for n, p in peers.items()}
    time.sleep(4)  # links cut and reopened, the flood's closed after each PONG
    for name, p in peers.items():
        assert len(p.closes) > n0[name], name
    assert flood.connections >= 3

    rc = a.stop(timeout=60)
    assert_clean(log, rc)

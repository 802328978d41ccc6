"""Scenario: upgrades under valgrind memcheck, which follows the exec (--trace-children=yes):
every image of the process (and every config check child) must report 0 errors, and the
last one, stopped with SIGTERM, nothing definitely, indirectly or possibly lost; fds and
threads the same after the upgrades as before. A handful of upgrades only (each image starts
under valgrind in about a second); test_upgrade_repeat.py does 50 on the plain and ASan
builds. Skipped for a sanitizer build (valgrind cannot run ASan binaries)."""

import glob
import os
import re
import shutil
import signal

import pytest

import harness
from harness import instance, wait_until
from zk import session_of, zk_agent, zookeeper

VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"
SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "valgrind.supp")
ROUNDS = 5


def _sanitized():
    with open(harness.agent_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def test_upgrades_under_valgrind(env, monkeypatch):
    if not os.access(VALGRIND, os.X_OK):
        pytest.skip("valgrind not installed")
    if _sanitized():
        pytest.skip("ASan build: valgrind cannot run it")
    logdir = env.path("vg")
    os.makedirs(logdir)
    script = env.write("agent-under-valgrind.sh", """#!/bin/sh
exec %s --tool=memcheck --trace-children=yes --error-exitcode=99 --leak-check=full \\
  --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \\
  --track-fds=no --num-callers=30 --suppressions=%s --log-file=%s/vg.%%p.%%n.log %s "$@"
""" % (VALGRIND, os.path.abspath(SUPP), logdir, harness.agent_bin()))
    os.chmod(script, 0o755)
    monkeypatch.setattr(harness, "agent_bin", lambda: script)

    zk = zookeeper(env)
    r = env.redis()
    a = zk_agent(env, zk, [instance("c", r)], name="h", session_timeout="10s",
                 shutdown_timeout="20s")
    a.wait_instance("c", timeout=30, published=True)
    sid = session_of(a.stats())
    fds0, threads0 = a.settled_fds(), a.threads()
    for i in range(ROUNDS):
        a.signal(signal.SIGUSR2)
        wait_until(lambda: a.stats()["upgrades"] == i + 1, 60, interval=0.1,
                   msg="upgrade %d under valgrind" % (i + 1))
        wait_until(lambda: a.stats()["zk_session_resumed"], 30, interval=0.1)
    a.wait_instance("c", timeout=30, published=True)
    assert session_of(a.stats()) == sid
    assert a.stats()["zk_sessions_expired"] == 0
    wait_until(lambda: a.fds() == fds0, 10, msg="fds as before")
    assert a.threads() == threads0
    rc = a.stop(timeout=60)
    logs = sorted(glob.glob(os.path.join(logdir, "*.log")))
    texts = {p: open(p).read() for p in logs}
    images = [p for p, t in texts.items() if re.search(r"Command: \S+ -c ", t)]
    print("%d valgrind logs, %d of the agent's images" % (len(logs), len(images)))
    assert len(images) >= ROUNDS + 1, logs
    for p, text in texts.items():
        summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        if summary is None:
            continue  # an image replaced by exec writes no summary
        assert summary.group(1) == "0", "valgrind errors in %s:\n%s" % (p, text[-20000:])
        for kind in ("definitely", "indirectly", "possibly"):
            m = re.search(r"%s lost: ([\d,]+) bytes" % kind, text)
            assert m is None or m.group(1) == "0", "%s lost in %s:\n%s" % (kind, p, text[-20000:])
    assert rc == 0, "exit status %s (99: valgrind found errors)" % rc

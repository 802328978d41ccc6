"""Scenario: the agent under valgrind memcheck through every path -- probes that succeed,
time out (a SIGSTOPped Redis, a black hole), reconnect (Redis SIGKILLed and restarted),
meet garbage, a wrong password and a missing unix socket; ZooKeeper publishing, an
external node deletion, a server restart and a forced session expiry; SIGHUP reloads
(add, remove, refused); every stats socket command and an over-long line -- then SIGTERM.
valgrind must report 0 errors and nothing definitely, indirectly or possibly lost; with
tests/valgrind.supp (ZooKeeper client internals, each suppression says why). The clean
shutdown frees what the agent owns: "still reachable" is listed in the log for reading,
and must be none of ours (no frame of agent/ in any reachable record).

Skipped for a sanitizer build (valgrind cannot run ASan binaries)."""

import os
import re
import shutil
import signal
import time

import pytest

import harness
from harness import instance, wait_until
from zk import kazoo, node_doc, session_of, stop_agent_until_expired, zk_agent, zookeeper

VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"
SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "valgrind.supp")


def _sanitized():
    with open(harness.agent_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def _wrapper(env):
    """A script that runs the real agent under memcheck; its log goes to VG_LOG."""
    log = env.path("valgrind.log")
    script = env.write("agent-under-valgrind.sh", """#!/bin/sh
exec %s --tool=memcheck --error-exitcode=99 --leak-check=full \\
  --show-leak-kinds=all --errors-for-leak-kinds=definite,indirect,possible \\
  --track-fds=no --num-callers=30 --suppressions=%s --log-file=%s %s "$@"
""" % (VALGRIND, os.path.abspath(SUPP), log, harness.agent_bin()))
    os.chmod(script, 0o755)
    return script, log


def assert_clean(log, rc):
    """The agent's valgrind LOG says 0 errors and nothing definitely, indirectly or possibly
    lost, and it exited RC 0; returns the log's text."""
    text = open(log).read()
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    assert summary, "no valgrind summary in %s:\n%s" % (log, text[-3000:])
    print(text[text.find("HEAP SUMMARY"):])
    assert summary.group(1) == "0", "valgrind errors:\n%s" % text[-20000:]
    for kind in ("definitely", "indirectly", "possibly"):
        m = re.search(r"%s lost: ([\d,]+) bytes" % kind, text)
        assert m is None or m.group(1) == "0", "%s lost:\n%s" % (kind, text[-20000:])
    assert rc == 0, "exit status %s (99: valgrind found errors)\n%s" % (rc, text[-5000:])
    return text


def test_agent_under_valgrind(env, monkeypatch):
    if not os.access(VALGRIND, os.X_OK):
        pytest.skip("valgrind not installed")
    if _sanitized():
        pytest.skip("ASan build: valgrind cannot run it")
    script, log = _wrapper(env)
    monkeypatch.setattr(harness, "agent_bin", lambda: script)

    zk = zookeeper(env)
    ok = env.redis()
    victim = env.redis()
    auth = env.redis(password="right")
    garbage = env.garbage_server()
    hole = env.black_hole()
    missing = "unix:" + env.path("no-such.sock")
    insts = [instance("ok", ok, cluster="a"), instance("victim", victim, cluster="a"),
             instance("auth", auth, password="wrong", cluster="b"),
             instance("garbage", garbage, cluster="b"), instance("hole", hole, cluster="c"),
             instance("missing", missing, cluster="c")]
    a = zk_agent(env, zk, insts, root="/vg", session_timeout="2s", name="vg",
                 interval="200ms", timeout="150ms", shutdown_timeout="20s", wait_ready=False)
    a.wait_ready(timeout=60)
    k = kazoo(env, zk)

    # probes: up, timeout, garbage, auth failed, missing socket -- all published
    a.wait_instance("ok", timeout=30, state="up", published=True)
    a.wait_instance("auth", timeout=30, state="down", reason="auth failed", published=True)
    a.wait_instance("hole", timeout=30, state="down", reason="timeout")
    a.wait_instance("garbage", timeout=30, state="down")
    a.wait_instance("missing", timeout=30, state="down", reason="no such socket")

    # reconnect: SIGKILL and restart; a hung Redis times out, then recovers
    a.wait_instance("victim", timeout=30, state="up")
    victim.kill9()
    a.wait_instance("victim", timeout=30, state="down", reason="connection refused")
    victim.start()
    a.wait_instance("victim", timeout=30, state="up", published=True)
    victim.sigstop()
    a.wait_instance("victim", timeout=30, state="down", reason="timeout")
    victim.sigcont()
    a.wait_instance("victim", timeout=30, state="up")

    # ZooKeeper: external deletion, server restart, forced expiry
    k.delete("/vg/a/ok")
    wait_until(lambda: node_doc(k, "/vg/a/ok")[0], 30, msg="deleted node re-created")
    zk.restart()
    wait_until(lambda: a.stats()["zk_state"] == "connected", 60, interval=0.2)
    sid = session_of(a.stats())
    wait_until(lambda: sid in zk.session_ids(), 30, interval=0.2)
    stop_agent_until_expired(a, zk, sid, timeout=60)
    wait_until(lambda: a.stats()["zk_sessions_expired"] >= 1 and
               a.stats()["zk_state"] == "connected", 60, interval=0.2, msg="new session")
    a.wait_instance("ok", timeout=30, published=True)

    # reloads: add one, remove one, then a refused one
    before = a.stats()["config_reloads"]
    a.instances_conf = insts[:5] + [instance("added", ok, cluster="d")]
    a.write_config()
    a.signal(signal.SIGHUP)
    a.wait_instance("added", timeout=30, state="up", published=True)
    assert a.stats()["config_reloads"] == before + 1
    with open(a.conf_path, "a") as f:
        f.write("[instance bad\n")
    a.signal(signal.SIGHUP)
    wait_until(lambda: a.stats()["config_reload_failures"] >= 1, 30, interval=0.2)

    # stats socket: every command, an unknown one, an over-long line, a pipeline
    for cmd in ("help", "stats", "instances", "metrics", "nonsense"):
        assert a.command(cmd, timeout=30).endswith("\n\n")
    with a.client(timeout=30) as c:
        c.send(b"y" * 3000)
        assert c.read_answer(30) == b'{"error":"line too long"}\n\n'
    with a.client(timeout=30) as c:
        c.send("stats\ninstances\nmetrics\n")
        for _ in range(3):
            c.read_answer(30)

    time.sleep(1.0)  # a few more probe rounds on every path (not an assertion)
    rc = a.stop(timeout=60)
    text = assert_clean(log, rc)
    # Whatever is still reachable at exit (after tests/valgrind.supp) must have been
    # allocated by a library, not by the agent's own code: the first frame after the
    # allocator of every loss record is a library's, never one of our source files.
    ours = []
    for rec in re.split(r"\n==\d+== \n", text):
        if "in loss record" not in rec:
            continue
        frames = re.findall(r"(?:at|by) 0x[0-9A-F]+: (.*)", rec)
        callers = [f for f in frames if not re.match(r"(malloc|calloc|realloc|strdup|"
                                                     r"posix_memalign|memalign) ", f)]
        if callers and re.search(r"\(\w+\.c:\d+\)$", callers[0]):
            ours.append(rec)
    assert not ours, "memory of ours left at exit:\n%s" % "\n\n".join(ours)
    m = re.search(r"still reachable: ([\d,]+) bytes", text)
    print("still reachable (libraries only): %s bytes" % (m.group(1) if m else "0"))

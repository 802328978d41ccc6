"""Scenario: sentinel-agentctl as an operator and as a script see it. On a terminal, `stats`
is aligned key/value lines and `instances` a table; with -j or in a pipe the answer is the
socket's bytes unchanged; an error answer goes to stderr with exit 1; no socket is exit 2;
a usage error 64."""

import json
import os
import re

import pytest

from ctltest import CannedSocket, run_ctl_pty
from harness import instance

STATS = (b'{"version":"0.1.0","pid":4242,"uptime_s":3725,"threads":3,"rss_bytes":5242880,'
         b'"instances":2,"zk_state":"connected","zk_session_id":"0x1000abc"}\n')
INSTANCES = (
    b'[{"name":"cache-a","cluster":"cache","address":"127.0.0.1:6379","state":"up",'
    b'"role":"replica","master":"10.0.0.5:6379","link":"connected","replicas":0,'
    b'"since_ms":1000,"last_check_ms":2000,"latency_us":312,"consecutive_ok":5,'
    b'"consecutive_fail":0,"reason":"","maint":null,"published":true},'
    b'{"name":"cache-b","cluster":"cache","address":"127.0.0.1:6380","state":"down",'
    b'"role":"unknown","since_ms":1000,"latency_us":1500,'
    b'"reason":"' + b"connection refused " * 10 + b'","published":false}]\n')
HELP = b"commands: help stats instances metrics\n"


@pytest.fixture
def canned(env):
    path = env.path("canned.sock")
    env.register(CannedSocket(path, {"stats": STATS, "instances": INSTANCES, "help": HELP}))
    return path


def test_json_in_a_pipe_is_the_socket_answer(env, canned):
    for cmd, ans in (("stats", STATS), ("instances", INSTANCES), ("help", HELP)):
        r = env.run_ctl("-s", canned, cmd)
        assert r.returncode == 0, r
        assert r.stdout.encode() == ans, (cmd, r.stdout)
        assert r.stderr == ""
        # -j changes nothing in a pipe.
        assert env.run_ctl("-s", canned, "-j", cmd).stdout.encode() == ans


def test_stats_table_on_a_terminal(canned):
    r = run_ctl_pty("-s", canned, "stats")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    keys = [ln.split()[0] for ln in lines]
    # The agent's field order, one aligned pair per line.
    assert keys == ["version", "pid", "uptime_s", "threads", "rss_bytes", "instances",
                    "zk_state", "zk_session_id"], r.stdout
    starts = {ln.index(ln.split()[1], len(ln.split()[0])) for ln in lines}
    assert len(starts) == 1, r.stdout
    assert re.search(r"^rss_bytes +5242880 \(5\.0 MiB\)$", r.stdout, re.M), r.stdout
    assert re.search(r"^zk_state +connected$", r.stdout, re.M), r.stdout


def test_instances_table_on_a_terminal(canned):
    r = run_ctl_pty("-s", canned, "instances", cols=200)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    head = lines[0].split()
    assert head == ["NAME", "CLUSTER", "ADDRESS", "STATE", "ROLE", "MASTER", "LINK", "SINCE",
                    "LATENCY", "REASON", "PUBLISHED"], r.stdout
    assert len(lines) == 3, r.stdout
    a = lines[1].split()
    assert a[:7] == ["cache-a", "cache", "127.0.0.1:6379", "up", "replica", "10.0.0.5:6379",
                     "connected"], lines[1]
    assert a[-1] == "yes" and "312us" in a
    b = lines[2]
    # Fields the agent did not send are "-"; columns line up under their headers.
    assert b.split()[:7] == ["cache-b", "cache", "127.0.0.1:6380", "down", "unknown", "-", "-"]
    for col in ("STATE", "ROLE", "SINCE", "PUBLISHED"):
        x = lines[0].index(col)
        assert lines[1][x] != " " and lines[2][x] != " ", (col, r.stdout)
    assert b.rstrip().endswith("no") and "1.5ms" in b
    assert "connection refused" in b


def test_narrow_terminal_cuts_the_reason_only(canned):
    wide = run_ctl_pty("-s", canned, "instances", cols=400)
    narrow = run_ctl_pty("-s", canned, "instances", cols=130)
    assert "\u2026" not in wide.stdout
    assert "\u2026" in narrow.stdout, narrow.stdout
    assert max(len(ln) for ln in narrow.stdout.splitlines()) <= 130, narrow.stdout
    # -j on a terminal is the JSON, never cut.
    j = run_ctl_pty("-s", canned, "-j", "instances", cols=80)
    assert j.stdout.encode() == INSTANCES.replace(b"\n", b"") + b"\n"


def test_other_commands_print_unchanged_on_a_terminal(canned):
    r = run_ctl_pty("-s", canned, "help")
    assert r.returncode == 0 and r.stdout.encode() == HELP, r


def test_error_answer_on_stderr_exit_1(env, canned):
    r = env.run_ctl("-s", canned, "bogus", "word")
    assert r.returncode == 1, r
    assert r.stdout == ""
    assert json.loads(r.stderr) == {"error": "unknown command: bogus word"}
    t = run_ctl_pty("-s", canned, "bogus")
    assert t.returncode == 1 and t.stdout == "", t
    assert t.stderr == "sentinel-agentctl: unknown command: bogus\n", t


def test_no_socket_exit_2(env):
    r = env.run_ctl("-s", env.path("nothing.sock"), "stats")
    assert r.returncode == 2, r
    assert r.stdout == "" and "cannot connect" in r.stderr
    r = env.run_ctl("-c", env.path("missing.conf"), "stats")
    assert r.returncode == 2, r
    assert r.stdout == "" and "missing.conf" in r.stderr


def test_usage_errors_exit_64(env):
    for argv in ([], ["-Z"], ["-s", "a", "-c", "b", "stats"], ["-z", "h:1", "stats"],
                 ["-s", "a", "cluster"], ["cluster", "a", "b"], ["cluster", "--bogus"]):
        r = env.run_ctl(*argv)
        assert r.returncode == 64, (argv, r)
        assert r.stdout == "", (argv, r)


def test_real_agent_table_and_pipe(env):
    redis = env.redis()
    a = env.agent([instance("up1", redis, cluster="c1"),
                   instance("down1", "127.0.0.1:%d" % env.closed_port(), cluster="c1")])
    a.wait_instance("up1", state="up")
    a.wait_instance("down1", state="down")
    r = env.run_ctl("-c", a.conf_path, "instances")
    assert r.returncode == 0, r
    assert {i["name"]: i["state"] for i in json.loads(r.stdout)} == {"up1": "up",
                                                                     "down1": "down"}
    t = run_ctl_pty("-c", a.conf_path, "instances")
    assert t.returncode == 0, t
    rows = {ln.split()[0]: ln.split() for ln in t.stdout.splitlines()[1:]}
    assert rows["up1"][3] == "up" and rows["up1"][4] == "master", t.stdout
    assert rows["down1"][3] == "down", t.stdout
    s = run_ctl_pty("-s", a.stats_socket, "stats")
    assert re.search(r"^pid +%d$" % a.pid, s.stdout, re.M), s.stdout
    assert os.path.exists(a.stats_socket)

"""Scenario: the log format (SPEC "Logging", issue 13). A run that touches most paths (start
with a Redis up and one down, ZooKeeper with digest auth, a Redis killed -9 and restarted, a
maintenance mark, a reload with a change, a ZooKeeper restart, the agent itself killed -9 and
restarted onto its old nodes, SIGTERM), at log level info and at debug. Every stderr line is
`LEVEL component: message` with a one-word component or `instance NAME`; no line holds a
pointer (a hex number not named as a session id); no line holds a password."""

import re
import signal

import pytest

from harness import instance, wait_until
from zk import ZooKeeper, kazoo, node_doc, session_of, zk_agent

LINE = re.compile(r"^(error|warn|info|debug) ([a-z]+|instance [A-Za-z0-9._-]+): \S.*$")
# A session id is printed as hex after a word naming it ("session 0x...", "sessionId=0x...");
# any other long hex number is taken for a pointer.
SESSION_HEX = re.compile(r"(?i)session\w*[=: ]+\(?0x[0-9a-f]+")
POINTER = re.compile(r"0x[0-9a-fA-F]{6,}")
REDIS_PASSWORD = "r3dis-pw-Xq7"
ZK_PASSWORD = "zk-pw-Jm4"
LEVELS = ("error", "warn", "info", "debug")


def check_lines(text, level):
    lines = text.splitlines()
    assert lines, "no log at all"
    bad = [l for l in lines if not LINE.match(l)]
    assert not bad, "lines outside `LEVEL component: message`:\n%s" % "\n".join(bad[:20])
    allowed = LEVELS[:LEVELS.index(level) + 1]
    louder = [l for l in lines if l.split(" ", 1)[0] not in allowed]
    assert not louder, "lines above log_level %s:\n%s" % (level, "\n".join(louder[:20]))
    ptrs = [l for l in lines if POINTER.search(SESSION_HEX.sub("session", l))]
    assert not ptrs, "pointers in the log:\n%s" % "\n".join(ptrs[:20])
    for secret in (REDIS_PASSWORD, ZK_PASSWORD):
        leaks = [l for l in lines if secret in l]
        assert not leaks, "a password in the log:\n%s" % "\n".join(leaks[:20])
    return lines


@pytest.mark.parametrize("level", ["info", "debug"])
def test_log_format(env, level):
    zk = env.register(ZooKeeper(env.dir))
    r = env.redis(password=REDIS_PASSWORD)
    gone = env.closed_port()
    a = zk_agent(env, zk, [instance("cache-a", r, password=REDIS_PASSWORD, cluster="cache"),
                           instance("cache-b", "127.0.0.1:%d" % gone, cluster="cache",
                                    password=REDIS_PASSWORD)],
                 name="host1", auth="agent:" + ZK_PASSWORD, session_timeout="4s",
                 log_level=level)
    k = kazoo(env, zk, auth="agent:" + ZK_PASSWORD)
    a.wait_instance("cache-a", timeout=10, state="up", published=True)
    a.wait_instance("cache-b", timeout=10, state="down", published=True)

    # a Redis killed -9 and restarted
    r.kill9()
    a.wait_instance("cache-a", state="down")
    r.restart()
    a.wait_instance("cache-a", timeout=10, state="up", published=True)

    # a maintenance mark on and off
    assert '"ok":true' in a.command("maint cache-b on 1m drill")
    assert '"ok":true' in a.command("maint cache-b off")

    # a reload with a change (a new instance, one retimed)
    mark = a.log_mark()
    a.instances_conf.append(instance("cache-c", r, password=REDIS_PASSWORD, cluster="cache"))
    a.instances_conf[1]["interval"] = "300ms"
    a.write_config()
    a.signal(signal.SIGHUP)
    a.wait_log(r"configuration reloaded", since=mark)
    a.wait_instance("cache-c", timeout=10, state="up", published=True)

    # ZooKeeper restarted: the session is kept
    sid = session_of(a.stats())
    k.stop()
    zk.restart()
    wait_until(lambda: a.stats()["zk_state"] == "connected" and a.stats()["zk_reconnects"] >= 1,
               15, msg="the agent reconnected to ZooKeeper")
    assert session_of(a.stats()) == sid

    # the agent killed -9 and restarted: it takes its old session's nodes over
    a.proc.kill()
    a.proc.wait()
    a.start()
    a.wait_instance("cache-a", timeout=15, state="up", published=True)
    k = kazoo(env, zk, auth="agent:" + ZK_PASSWORD)
    wait_until(lambda: node_doc(k, "/sa/cache/cache-c")[0], 10, msg="cache-c published")

    assert a.stop() == 0
    lines = check_lines(a.log(), level)

    # the scenario did reach the paths it means to check
    text = "\n".join(lines)
    for expect in (r"^info instance cache-a: up -> down \(.+\)$",
                   r"^info instance cache-a: down -> up$",
                   r"^info instance cache-b: unknown -> down \(connection refused\)$",
                   r"configuration reloaded",
                   r"^\w+ zookeeper: .*session 0x[0-9a-f]+"):
        assert re.search(expect, text, re.M), "no line /%s/ in:\n%s" % (expect, text)
    if level == "debug":
        assert re.search(r"^debug zkclient: ", text, re.M), "no zkclient line at debug"
    else:
        assert not re.search(r"^debug ", text, re.M)

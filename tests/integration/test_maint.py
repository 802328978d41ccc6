"""Scenario: maintenance marks. `maint NAME on [DURATION] [REASON]` publishes state "maint"
(with the reason, else "maintenance") while probing goes on and `instances` shows the probed
state beside the mark; `maint NAME off` and the end of the duration publish the probed state
again at once. Marks are kept in state_dir: they survive a restart, a corrupt file is
logged and ignored, a reload that removes the instance drops its mark. Only root or the
agent's own user may set them; anyone who may connect may still read."""

import json
import os
import signal
import stat

from harness import ctl_bin, instance, now_ms, wait_until
from zk import kazoo, node_doc, zk_agent, zookeeper

NOBODY = 65534


def _ctl(env, a, *words):
    return env.run_ctl("-s", a.stats_socket, *words)


def _node(k, path, **expect):
    """Waits until the node at PATH has every field of EXPECT; returns the document."""
    last = {}

    def match():
        doc, _ = node_doc(k, path)
        last["doc"] = doc
        return doc if doc and all(doc.get(f) == v for f, v in expect.items()) else None
    try:
        return wait_until(match, 5, msg="node %s to have %r" % (path, expect))
    except AssertionError as e:
        raise AssertionError("%s; last: %r" % (e, last.get("doc"))) from None


def _state_file(a):
    with open(os.path.join(a.dir, "maint.json")) as f:
        return json.load(f)


def _metric(text, name, inst):
    for line in text.splitlines():
        if line.startswith(name + "{") and 'name="%s"' % inst in line:
            return line.rsplit(" ", 1)[1]
    raise AssertionError("no %s for %s in:\n%s" % (name, inst, text))


def _setup(env, **kw):
    zk = zookeeper(env)
    r = env.redis()
    a = zk_agent(env, zk, [instance("cache-a", r, cluster="cache"),
                           instance("dead", "127.0.0.1:%d" % env.closed_port(), cluster="cache")],
                 name="host-1", **kw)
    k = kazoo(env, zk)
    a.wait_instance("cache-a", published=True, state="up")
    a.wait_instance("dead", published=True, state="down")
    return zk, r, a, k


def test_on_off_and_expiry(env):
    zk, r, a, k = _setup(env)
    up = _node(k, "/sa/cache/cache-a", state="up")

    # on, with a duration and a reason of several words (the ctl joins them)
    mark = a.log_mark()
    t0 = now_ms()
    p = _ctl(env, a, "maint", "cache-a", "on", "2h", "kernel", "upgrade")
    assert p.returncode == 0 and p.stdout.strip() == '{"ok":true}', (p.stdout, p.stderr)
    doc = _node(k, "/sa/cache/cache-a", state="maint", reason="kernel upgrade")
    assert t0 <= doc["since_ms"] <= now_ms() and doc["role"] == "master"
    a.wait_log(r"^info instance cache-a: maintenance on \(kernel upgrade, until "
               r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\) by uid 0$", since=mark)
    # the probed state and the mark side by side
    inst = a.instance("cache-a")
    assert inst["state"] == "up" and inst["reason"] == ""
    assert inst["maint"]["reason"] == "kernel upgrade"
    assert abs(inst["maint"]["until_ms"] - (t0 + 2 * 3600 * 1000)) < 5000
    assert a.instance("dead")["maint"] is None
    assert a.stats()["instances_maint"] == 1
    m = a.metrics()
    assert _metric(m, "sentinel_agent_instance_maint", "cache-a") == "1"
    assert _metric(m, "sentinel_agent_instance_maint", "dead") == "0"
    assert "# TYPE sentinel_agent_instance_maint gauge" in m
    # kept in state_dir, written atomically, private
    f = _state_file(a)
    assert f["version"] == 1 and list(f["marks"]) == ["cache-a"]
    assert f["marks"]["cache-a"]["reason"] == "kernel upgrade"
    assert f["marks"]["cache-a"]["since_ms"] == doc["since_ms"]
    assert stat.S_IMODE(os.stat(os.path.join(a.dir, "maint.json")).st_mode) == 0o600
    assert not [n for n in os.listdir(a.dir) if n.endswith(".tmp")]

    # probing goes on under the mark: the Redis dies, `instances` says so, the node stays maint
    r.kill9()
    a.wait_instance("cache-a", state="down")
    doc, _ = node_doc(k, "/sa/cache/cache-a")
    assert doc["state"] == "maint" and doc["reason"] == "kernel upgrade"
    r.start()
    a.wait_instance("cache-a", state="up", timeout=10)

    # off: the probed state at once
    mark = a.log_mark()
    p = _ctl(env, a, "maint", "cache-a", "off")
    assert p.returncode == 0, p.stderr
    doc = _node(k, "/sa/cache/cache-a", state="up", reason="")
    assert doc["since_ms"] >= up["since_ms"]
    a.wait_log(r"^info instance cache-a: maintenance off by uid 0$", since=mark)
    assert a.instance("cache-a")["maint"] is None
    assert a.stats()["instances_maint"] == 0
    assert _state_file(a)["marks"] == {}
    # off again is no error
    assert _ctl(env, a, "maint", "cache-a", "off").returncode == 0

    # a mark that ends by itself, with the default reason, on an instance that is down
    mark = a.log_mark()
    assert a.command("maint dead on 1s").strip() == '{"ok":true}'
    _node(k, "/sa/cache/dead", state="maint", reason="maintenance")
    assert a.instance("dead")["maint"]["until_ms"] > 0
    _node(k, "/sa/cache/dead", state="down", reason="connection refused")
    a.wait_log(r"^info instance dead: maintenance ended$", since=mark)
    assert a.instance("dead")["maint"] is None
    assert _state_file(a)["marks"] == {}


def test_bad_commands(env):
    r = env.redis()
    a = env.agent([instance("cache-a", r)])
    for cmd, err in [
        ("maint nosuch on", "no such instance: nosuch"),
        ("maint cache-a on 5x", 'bad duration "5x"'),
        ("maint cache-a on 0s", 'bad duration "0s"'),
        ("maint cache-a on 25h", 'bad duration "25h"'),
        ("maint cache-a on 1.5h", 'bad duration "1.5h"'),
        ("maint cache-a", "usage: maint NAME on"),
        ("maint", "usage: maint NAME on"),
        ("maint cache-a sideways", "usage: maint NAME on"),
        ("maint cache-a off now", "maint NAME off takes nothing more"),
        ("maint cache-a on 1m " + "x" * 200, "reason too long"),
        ("maint cache-a on 1m a\x01b", "control characters"),
    ]:
        ans = json.loads(a.command(cmd))
        assert err in ans.get("error", ""), (cmd, ans)
    # the ctl: an error answer goes to stderr, exit 1
    p = env.run_ctl("-s", a.stats_socket, "maint", "nosuch", "on")
    assert p.returncode == 1 and "no such instance: nosuch" in p.stderr and p.stdout == ""
    assert a.instance("cache-a")["maint"] is None and a.stats()["instances_maint"] == 0
    # a reason that starts like a word, not a number, needs no duration
    assert json.loads(a.command("maint cache-a on disk swap")) == {"ok": True}
    assert a.instance("cache-a")["maint"] == {"until_ms": 0, "reason": "disk swap"}
    # help lists the commands
    assert "maint NAME on [DURATION] [REASON]" in a.command("help")


def test_restart_keeps_the_mark(env):
    zk, r, a, k = _setup(env)
    assert a.command("maint cache-a on 1h rack move").strip() == '{"ok":true}'
    doc = _node(k, "/sa/cache/cache-a", state="maint", reason="rack move")
    until = a.instance("cache-a")["maint"]["until_ms"]
    assert a.stop() == 0
    a.start()
    back = _node(k, "/sa/cache/cache-a", state="maint", reason="rack move")
    assert back["since_ms"] == doc["since_ms"]
    inst = a.wait_instance("cache-a", state="up")
    assert inst["maint"] == {"until_ms": until, "reason": "rack move"}
    assert a.stats()["instances_maint"] == 1
    a.wait_log(r"^info maint: cache-a stays in maintenance \(rack move\)$")
    # and a mark whose end passed while the agent was down is gone
    assert a.command("maint dead on 1s").strip() == '{"ok":true}'
    assert a.stop() == 0
    wait_until(lambda: now_ms() > _state_file(a)["marks"]["dead"]["until_ms"] + 100, 5)
    mark = a.log_mark()
    a.start()
    a.wait_log(r"^info maint: the mark of dead ended while the agent was stopped$", since=mark)
    a.wait_instance("dead", published=True)
    _node(k, "/sa/cache/dead", state="down")
    assert a.instance("dead")["maint"] is None
    assert list(_state_file(a)["marks"]) == ["cache-a"]


def test_corrupt_or_unreadable_file_is_ignored(env):
    r = env.redis()
    a = env.agent([instance("cache-a", r)], start=False)
    for text in ("{not json", '{"version":2,"marks":{}}',
                 '{"version":1,"marks":{"cache-a":{"until_ms":"soon","reason":"x","since_ms":1}}}'):
        with open(os.path.join(a.dir, "maint.json"), "w") as f:
            f.write(text)
        mark = a.log_mark()
        a.start()
        a.wait_log(r"^warn maint: .*maint\.json is corrupt \(.*\): ignored, starting without "
                   r"maintenance marks$", since=mark)
        assert a.instance("cache-a")["maint"] is None and a.stats()["instances_maint"] == 0
        assert a.stop() == 0
    # a directory where the file should be: unreadable, logged, not fatal
    os.remove(os.path.join(a.dir, "maint.json"))
    os.mkdir(os.path.join(a.dir, "maint.json"))
    mark = a.log_mark()
    a.start()
    a.wait_log(r"^warn maint: cannot read .*maint\.json: .*; starting without maintenance marks$",
               since=mark)
    # setting a mark then cannot be kept, but works in memory
    assert json.loads(a.command("maint cache-a on")) == {"ok": True}
    a.wait_log(r"^warn maint: cannot rename .*: maintenance marks are kept in memory only$",
               since=mark)
    assert a.instance("cache-a")["maint"]["reason"] == "maintenance"
    assert a.stop() == 0
    os.rmdir(os.path.join(a.dir, "maint.json"))
    # a good file after a corrupt one is written whole on the next change
    a.start()
    assert json.loads(a.command("maint cache-a on 10m ok")) == {"ok": True}
    assert _state_file(a)["marks"]["cache-a"]["reason"] == "ok"


def test_missing_state_dir_keeps_marks_in_memory(env):
    r = env.redis()
    missing = env.path("no-such-dir")
    a = env.agent([instance("cache-a", r)], state_dir=missing)
    a.wait_log(r"^warn maint: state_dir %s does not exist: maintenance marks are kept in "
               r"memory only$" % missing)
    assert json.loads(a.command("maint cache-a on 1m")) == {"ok": True}
    assert a.instance("cache-a")["maint"]["reason"] == "maintenance"
    assert len([ln for ln in a.log().splitlines() if ln.startswith("warn maint:")]) == 1
    assert not os.path.exists(missing)


def _as_nobody(env, *args):
    return env.run([ctl_bin(), "-s"] + list(args), user=NOBODY, group=NOBODY, extra_groups=[])


def test_only_root_or_the_agent_user_may_change(env):
    r = env.redis()
    a = env.agent([instance("cache-a", r)], stats_socket_mode="0666")
    os.chmod(env.dir, 0o755)  # let nobody reach the socket
    os.chmod(a.dir, 0o755)
    assert os.geteuid() == 0, "the permission test runs as root"
    p = _as_nobody(env, a.stats_socket, "maint", "cache-a", "on", "1m", "x")
    assert p.returncode == 1 and "permission denied" in p.stderr, (p.returncode, p.stderr)
    p = _as_nobody(env, a.stats_socket, "maint", "cache-a", "off")
    assert p.returncode == 1 and "permission denied" in p.stderr
    assert a.instance("cache-a")["maint"] is None
    # reading is open to whoever may connect
    p = _as_nobody(env, a.stats_socket, "stats")
    assert p.returncode == 0 and json.loads(p.stdout)["instances"] == 1
    p = _as_nobody(env, a.stats_socket, "instances")
    assert p.returncode == 0 and json.loads(p.stdout)[0]["maint"] is None
    # root may
    assert _ctl(env, a, "maint", "cache-a", "on").returncode == 0
    p = _as_nobody(env, a.stats_socket, "instances")
    assert json.loads(p.stdout)[0]["maint"] == {"until_ms": 0, "reason": "maintenance"}


def test_agent_user_may_change(env):
    """An agent running as nobody: nobody may set marks, another non-root uid may not."""
    r = env.redis()
    os.chmod(env.dir, 0o755)
    a = env.agent([instance("cache-a", r)], stats_socket_mode="0666", start=False)
    os.chmod(a.dir, 0o777)  # its socket and state file are made by nobody
    import subprocess
    from harness import agent_bin, child_env
    out = open(a.stdout_path, "ab")
    err = open(a.stderr_path, "ab")
    a.proc = subprocess.Popen([agent_bin(), "-c", a.conf_path], stdin=subprocess.DEVNULL,
                              stdout=out, stderr=err, env=child_env(), user=NOBODY, group=NOBODY,
                              extra_groups=[])
    out.close()
    err.close()
    env.register(a)
    a.wait_ready()
    p = _as_nobody(env, a.stats_socket, "maint", "cache-a", "on", "5m", "by", "the", "agent")
    assert p.returncode == 0, p.stderr
    assert a.instance("cache-a")["maint"]["reason"] == "by the agent"
    p = env.run([ctl_bin(), "-s", a.stats_socket, "maint", "cache-a", "off"], user=NOBODY - 1,
                group=NOBODY - 1, extra_groups=[])
    assert p.returncode == 1 and "permission denied" in p.stderr, p.stderr
    assert os.stat(os.path.join(a.dir, "maint.json")).st_uid == NOBODY


def test_reload_that_removes_the_instance_drops_its_mark(env):
    zk, r, a, k = _setup(env)
    assert a.command("maint cache-a on 1h a").strip() == '{"ok":true}'
    assert a.command("maint dead on 1h b").strip() == '{"ok":true}'
    _node(k, "/sa/cache/dead", state="maint", reason="b")
    assert sorted(_state_file(a)["marks"]) == ["cache-a", "dead"]
    a.instances_conf = [i for i in a.instances_conf if i["name"] != "dead"]
    a.write_config()
    mark = a.log_mark()
    a.signal(signal.SIGHUP)
    a.wait_log(r"^info agent: configuration reloaded", since=mark)
    a.wait_log(r"^info instance dead: maintenance mark dropped: the instance was removed$",
               since=mark)
    assert list(_state_file(a)["marks"]) == ["cache-a"]
    assert a.stats()["instances_maint"] == 1
    wait_until(lambda: node_doc(k, "/sa/cache/dead") == (None, None), 5,
               msg="the removed instance's node to go")
    # the instance comes back by another reload: without its old mark
    a.instances_conf.append(instance("dead", "127.0.0.1:%d" % env.closed_port(), cluster="cache"))
    a.write_config()
    a.signal(signal.SIGHUP)
    _node(k, "/sa/cache/dead", state="down")
    assert a.instance("dead")["maint"] is None
    _node(k, "/sa/cache/cache-a", state="maint", reason="a")

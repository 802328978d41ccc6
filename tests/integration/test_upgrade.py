"""Scenario: zero-gap upgrade (SIGUSR2 and the `upgrade` command). The agent checks the
installed binary against its config, re-executes it in place (same pid) and hands over the
stats socket and the ZooKeeper session: an independent client watching every node sees no
node deleted or re-created (czxid and ephemeralOwner unchanged), the server's watch count
for the session is the same, nothing expired; a state change made just before is published
just after; a broken config changes nothing and the log says why; a session the server no
longer knows (the ensemble was wiped) falls back to the takeover path."""

import json
import os
import signal
import threading
import time

import pytest

from harness import LOOPBACK, instance, wait_until
from zk import NodeWatch, kazoo, node_doc, session_of, zk_agent, zookeeper


class EventLog:
    """Raw exists-watches on PATHS from an independent client, re-armed as they fire: every
    event type seen, per path."""

    def __init__(self, client, paths):
        self.client = client
        self.events = []
        self._lock = threading.Lock()
        for p in paths:
            self._arm(p)

    def _arm(self, path):
        def fire(ev):
            with self._lock:
                self.events.append((path, ev.type))
            try:
                self._arm(path)
            except Exception:  # noqa: BLE001 -- client closing at teardown
                pass
        self.client.exists(path, watch=fire)

    def types(self):
        with self._lock:
            return [t for _, t in self.events]


def upgrade(a, via="signal", timeout=20.0):
    """Upgrades A and waits until the new image answers (its uptime restarted, upgrades + 1)."""
    before = a.stats()
    if via == "signal":
        a.signal(signal.SIGUSR2)
    else:
        ans = json.loads(a.command("upgrade", timeout=15))
        assert ans == {"ok": True}, ans

    def done():
        try:
            st = a.stats()
        except (OSError, EOFError, ValueError):
            return None
        return st if st["upgrades"] == before["upgrades"] + 1 else None
    st = wait_until(done, timeout, interval=0.02, msg="the new image to answer")
    assert st["pid"] == before["pid"] == a.pid
    return before, st


def paths_of(names, root="/sa", cluster="default", agent="h"):
    return ["%s/%s/%s" % (root, cluster, n) for n in names] + ["%s/agents/%s" % (root, agent)]


def test_upgrade_keeps_session_nodes_and_watches(env):
    zk = zookeeper(env)
    rs = [env.redis() for _ in range(3)]
    names = ["r%d" % i for i in range(3)]
    a = zk_agent(env, zk, [instance(n, r) for n, r in zip(names, rs)], name="h", log_level="debug",
                 session_timeout="6s")
    for n in names:
        a.wait_instance(n, timeout=5, published=True, state="up")
    wait_until(lambda: a.stats()["zk_watches"] == 4, 5)
    k = kazoo(env, zk)
    paths = paths_of(names)
    stats_before = {p: node_doc(k, p)[1] for p in paths}
    docs_before = {p: node_doc(k, p)[0] for p in paths}
    watch = NodeWatch(k, paths)
    events = EventLog(k, paths)
    wait_until(lambda: watch.seen() == set(paths), 5)
    sid = session_of(a.stats())
    wchc_before = zk.wchc()
    fds_before = a.fds()

    t0 = time.monotonic()
    before, after = upgrade(a)
    print("upgrade answered by the new image after %.0f ms" % ((time.monotonic() - t0) * 1000))
    assert after["uptime_s"] <= before["uptime_s"] + 1
    assert after["upgraded_from"] == before["version"]
    wait_until(lambda: a.stats()["zk_session_resumed"] and a.stats()["zk_watches"] == 4, 5)
    st = a.stats()
    assert session_of(st) == sid
    assert st["zk_sessions_expired"] == 0
    assert st["zk_watches"] == before["zk_watches"] == 4
    for n in names:
        a.wait_instance(n, timeout=5, published=True, state="up")
    wait_until(lambda: zk.wchc() == wchc_before, 5, msg="same watches on the server")
    time.sleep(0.5)  # any late event would show now
    assert watch.lost() == []
    assert not [t for t in events.types() if t in ("DELETED", "CREATED")], events.events
    for p in paths:
        _, s = node_doc(k, p)
        assert s.czxid == stats_before[p].czxid, p
        assert s.ephemeralOwner == sid, p
    # Instance nodes were not rewritten (same content); the agent node says the new start.
    for n in names:
        p = "/sa/default/%s" % n
        assert node_doc(k, p)[1].version == stats_before[p].version, p
        assert node_doc(k, p)[0]["since_ms"] == docs_before[p]["since_ms"]
    assert node_doc(k, "/sa/agents/h")[0]["pid"] == a.pid
    assert a.fds() == fds_before
    assert "session 0x%x resumed" % sid in a.log()
    assert a.stats()["probes_total"] > 0

    # The command does the same, answering once the check passed.
    before, after = upgrade(a, via="command")
    assert after["upgrades"] == 2
    wait_until(lambda: a.stats()["zk_session_resumed"], 5)
    assert session_of(a.stats()) == sid
    assert watch.lost() == []


def test_replica_and_maintenance_nodes_survive_untouched(env):
    """The hand-over carries the role info (master, link, replicas): a replica's node is
    found unchanged and not rewritten; a maintenance mark (state_dir) survives the exec and
    its node stays "maint" in place."""
    zk = zookeeper(env)
    master = env.redis()
    replica = env.redis(replicaof=master)
    other = env.redis()
    wait_until(lambda: replica.client().execute_command("ROLE")[3] == b"connected", 10,
               msg="the replica's link to be connected")
    wait_until(lambda: len(master.client().execute_command("ROLE")[2]) == 1, 10,
               msg="the master to list its replica")
    a = zk_agent(env, zk, [instance("m", master), instance("r", replica),
                           instance("c", other)], name="h", interval="500ms",
                 session_timeout="6s")
    for n in ("m", "r", "c"):
        a.wait_instance(n, timeout=5, published=True, state="up")
    assert json.loads(a.command("maint c on 2h upgrade drill")) == {"ok": True}
    k = kazoo(env, zk)
    wait_until(lambda: (node_doc(k, "/sa/default/c")[0] or {}).get("state") == "maint", 5,
               msg="c published in maintenance")
    rdoc, _ = node_doc(k, "/sa/default/r")
    assert rdoc["role"] == "replica" and rdoc["link"] == "connected", rdoc
    assert rdoc["master"] == "%s:%d" % (LOOPBACK, master.port), rdoc
    wait_until(lambda: node_doc(k, "/sa/default/m")[0]["replicas"] == 1, 5)
    paths = paths_of(["m", "r", "c"])
    before = {p: node_doc(k, p) for p in paths}
    events = EventLog(k, paths)

    upgrade(a)
    wait_until(lambda: a.stats()["zk_session_resumed"] and a.stats()["zk_watches"] == 4, 5)
    probes = a.stats()["probes_total"]
    wait_until(lambda: a.stats()["probes_total"] >= probes + 6, 5, msg="probed again")
    time.sleep(0.3)
    assert not [t for t in events.types() if t in ("DELETED", "CREATED")], events.events
    for name in ("m", "r", "c"):
        p = "/sa/default/%s" % name
        doc, stat = node_doc(k, p)
        assert stat.czxid == before[p][1].czxid, p
        assert stat.version == before[p][1].version, (p, doc, before[p][0])
    rdoc, _ = node_doc(k, "/sa/default/r")
    assert (rdoc["role"], rdoc["master"], rdoc["link"]) == (
        "replica", "%s:%d" % (LOOPBACK, master.port), "connected")
    cdoc, _ = node_doc(k, "/sa/default/c")
    assert cdoc["state"] == "maint" and cdoc["reason"] == "upgrade drill", cdoc
    assert a.instance("c")["maint"]["reason"] == "upgrade drill"
    assert a.stats()["instances_maint"] == 1


def test_state_change_just_before_is_published_just_after(env):
    zk = zookeeper(env)
    r1, r2 = env.redis(), env.redis()
    a = zk_agent(env, zk, [instance("a1", r1), instance("a2", r2)], name="h",
                 interval="1s", timeout="500ms")
    for n in ("a1", "a2"):
        a.wait_instance(n, timeout=5, published=True, state="up")
    k = kazoo(env, zk)
    czxid = node_doc(k, "/sa/default/a1")[1].czxid
    r1.kill9()
    t0 = time.monotonic()
    a.signal(signal.SIGUSR2)
    wait_until(lambda: (node_doc(k, "/sa/default/a1")[0] or {}).get("state") == "down", 5,
               interval=0.01, msg="a1 published down")
    print("down published %.0f ms after SIGUSR2" % ((time.monotonic() - t0) * 1000))
    doc, st = node_doc(k, "/sa/default/a1")
    assert st.czxid == czxid  # rewritten in place, never deleted
    assert doc["reason"] == "connection refused"
    wait_until(lambda: a.stats()["upgrades"] == 1, 5)
    assert a.stats()["zk_sessions_expired"] == 0


def test_broken_config_changes_nothing(env):
    zk = zookeeper(env)
    r = env.redis()
    a = zk_agent(env, zk, [instance("c", r)], name="h")
    a.wait_instance("c", timeout=5, published=True)
    before = a.stats()
    with open(a.conf_path, "a") as f:
        f.write("\n[agent]\nbogus_key = 1\n")
    mark = a.log_mark()
    a.signal(signal.SIGUSR2)
    a.wait_log(r"error agent: upgrade refused: .* -t -c .* exited with 78", timeout=10,
               since=mark)
    assert "bogus_key" in a.log()[mark:]
    ans = json.loads(a.command("upgrade", timeout=15))
    assert ans["error"].startswith("upgrade refused: ") and "78" in ans["error"], ans
    time.sleep(0.3)
    st = a.stats()
    assert st["pid"] == before["pid"] and st["upgrades"] == 0
    assert st["uptime_s"] >= before["uptime_s"]
    assert session_of(st) == session_of(before)
    assert a.instance("c")["published"] is True
    probes = st["probes_total"]
    wait_until(lambda: a.stats()["probes_total"] > probes, 3, msg="still probing")


def test_unresumable_session_takes_over(env):
    zk = zookeeper(env)
    r = env.redis()
    a = zk_agent(env, zk, [instance("c", r)], name="h", session_timeout="4s")
    a.wait_instance("c", timeout=5, published=True)
    old = session_of(a.stats())
    # Freeze the agent, wipe the ensemble (a fresh data dir: the session is unknown), upgrade.
    os.kill(a.pid, signal.SIGSTOP)
    zk.stop()
    import shutil
    shutil.rmtree(zk.data_dir, ignore_errors=True)
    os.makedirs(zk.data_dir)
    zk.start()
    os.kill(a.pid, signal.SIGUSR2)
    os.kill(a.pid, signal.SIGCONT)
    wait_until(lambda: a.stats()["upgrades"] == 1, 15)
    k = kazoo(env, zk)
    wait_until(lambda: (node_doc(k, "/sa/default/c")[1] or None) is not None
               and node_doc(k, "/sa/agents/h")[1] is not None, 15, msg="nodes published")
    st = a.stats()
    assert session_of(st) not in (0, old)
    assert st["zk_session_resumed"] is False
    assert node_doc(k, "/sa/default/c")[1].ephemeralOwner == session_of(st)
    assert node_doc(k, "/sa/default/c")[0]["state"] == "up"
    assert "cannot be resumed" in a.log() or "giving up session" in a.log()


def test_upgrade_needs_root_or_our_user(env):
    r = env.redis()
    a = env.agent([instance("c", r)], stats_socket_mode="0666")
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another user")
    os.chmod(env.dir, 0o755)  # nobody must reach the socket: only SO_PEERCRED refuses it
    os.chmod(a.dir, 0o755)
    probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
             "s.sendall(b'upgrade\\n'); print(s.recv(4096).decode())")
    out = env.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                   "/usr/bin/python3", "-c", probe, a.stats_socket])
    assert json.loads(out.stdout) == {"error": "permission denied"}, out
    assert a.stats()["upgrades"] == 0
    # Root (and the agent's own user) may.
    assert json.loads(a.command("upgrade", timeout=15)) == {"ok": True}
    wait_until(lambda: a.stats()["upgrades"] == 1, 10)


def test_systemd_sees_reloading_then_ready_same_pid(env):
    from test_notify import notify_agent
    r = env.redis()
    a, ns = notify_agent(env, [instance("c", r)])
    ns.wait_line("READY=1")
    a.wait_ready()
    mark = ns.mark()
    t0 = time.monotonic()
    a.signal(signal.SIGUSR2)
    i, t_rel, _ = ns.wait_line("RELOADING=1", since=mark)
    j, t_ready, _ = ns.wait_line("READY=1", since=i)
    print("SIGUSR2 -> READY=1: %.0f ms" % ((t_ready - t0) * 1000))
    assert j > i
    wait_until(lambda: a.stats()["upgrades"] == 1, 5)
    assert a.stats()["pid"] == a.pid and a.running()
    # Every datagram came from the same process (SCM credentials are not needed: the pid is
    # the process systemd forked, and it never changed).
    assert a.proc.poll() is None


def test_ctl_upgrade_says_what_happened(env):
    zk = zookeeper(env)
    r = env.redis()
    a = zk_agent(env, zk, [instance("c", r)], name="h")
    a.wait_instance("c", timeout=5, published=True)
    sid = a.stats()["zk_session_id"]
    # On a terminal: one line saying what happened.
    import pty
    import subprocess
    from harness import child_env, ctl_bin
    master, slave = pty.openpty()
    p = subprocess.run([ctl_bin(), "-s", a.stats_socket, "upgrade"], stdin=subprocess.DEVNULL,
                       stdout=slave, stderr=subprocess.PIPE, env=child_env(), timeout=40)
    os.close(slave)
    text = os.read(master, 4096).decode().replace("\r\n", "\n")
    os.close(master)
    assert p.returncode == 0, p
    v = a.stats()["version"]
    assert text == "upgraded: %s -> %s (pid %d), ZooKeeper session %s kept\n" % (
        v, v, a.pid, sid), text
    out = env.run_ctl("-s", a.stats_socket, "-j", "upgrade", timeout=40)
    assert out.returncode == 0, out
    j = json.loads(out.stdout)
    assert j["zk_session_kept"] is True and j["pid"] == a.pid and j["zk_session"] == sid
    # A broken config: exit 1, the reason on stderr, nothing changed.
    with open(a.conf_path, "a") as f:
        f.write("\n[agent]\ninterval = soon\n")
    out = env.run_ctl("-s", a.stats_socket, "upgrade", timeout=40)
    assert out.returncode == 1, out
    assert "upgrade refused" in out.stderr and "exited with 78" in out.stderr, out.stderr
    assert a.stats()["upgrades"] == 2

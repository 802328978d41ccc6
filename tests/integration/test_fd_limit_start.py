"""Scenario: the open-files limit at start.

- Started with a soft RLIMIT_NOFILE of 32 (hard 4096) and 60 instances, the agent raises its
  soft limit to the hard one (visible in /proc/PID/limits) and every instance is `up`; none
  is down with "Too many open files", and `probes_agent_errors` stays 0.
- A hard limit too low for the config (instances + 64 > hard limit) is a configuration
  error naming the limit: exit 78, and stderr says so. Wording for the implementer:
  `FILE: error: 60 instances need 124 open files, more than the hard limit of 100
  (RLIMIT_NOFILE)`; the test asserts the file name, "RLIMIT_NOFILE" and the limit's value.
  The boundary is exact: hard 123 is refused, hard 124 runs.

60 instances on 3 redis-servers (20 connections each; names differ, addresses repeat)."""

import contextlib
import resource
import subprocess

from harness import Agent, agent_bin, instance, wait_until

N = 60


@contextlib.contextmanager
def children_nofile(soft, hard):
    """Processes started meanwhile (through subprocess.Popen, as harness.Agent does) get
    RLIMIT_NOFILE (SOFT, HARD)."""
    real = subprocess.Popen

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def popen(*args, **kw):
        kw["preexec_fn"] = limit
        return real(*args, **kw)
    subprocess.Popen = popen
    try:
        yield
    finally:
        subprocess.Popen = real


def nofile_limits(pid):
    """(soft, hard) "Max open files" of PID from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files in /proc/%d/limits" % pid)


def _instances(env, n=N):
    servers = [env.redis() for _ in range(3)]
    return [instance("i%02d" % i, servers[i % 3]) for i in range(n)]


def test_soft_limit_32_with_60_instances_all_up(env):
    insts = _instances(env)
    a = Agent(env, insts, start=False, interval="500ms", timeout="300ms")
    env.register(a)
    with children_nofile(32, 4096):
        a.start()
    def all_up():
        states = {i["name"]: (i["state"], i["reason"]) for i in a.instances()}
        return states if all(s == "up" for s, _ in states.values()) else None
    try:
        wait_until(all_up, 10, interval=0.1, msg="all 60 instances up")
    except AssertionError as e:
        try:
            bad = {i["name"]: (i["state"], i["reason"]) for i in a.instances() if i["state"] != "up"}
        except OSError as e2:
            raise AssertionError("the stats socket does not answer (%r); %s" % (e2, e)) from None
        raise AssertionError("%d of 60 not up: %r" % (len(bad), sorted(bad.items())[:5])) from None
    assert nofile_limits(a.pid) == (4096, 4096), "soft limit not raised: %r" % (nofile_limits(a.pid),)
    st = a.stats()
    assert st.get("probes_agent_errors") == 0, st
    assert st["fds"] > 32, st
    assert "Too many open files" not in a.log()


def _run_with_hard(env, conf, hard):
    """Runs the agent under prlimit (which execs it) with RLIMIT_NOFILE HARD:HARD; it must
    exit at once."""
    try:
        return subprocess.run(["prlimit", "--nofile=%d:%d" % (hard, hard), agent_bin(), "-c", conf],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("hard limit %d: the agent was still running after 5 s (no exit 78); "
                             "stderr:\n%s" % (hard, (e.stderr or b"").decode(errors="replace")[-2000:]))


def test_hard_limit_too_low_exits_78_naming_it(env):
    insts = _instances(env)
    a = Agent(env, insts, start=False)
    for hard in (100, 123):
        p = _run_with_hard(env, a.conf_path, hard)
        assert p.returncode == 78, "hard limit %d: exit %d, stderr:\n%s" % (hard, p.returncode, p.stderr)
        lines = [ln for ln in p.stderr.splitlines() if "RLIMIT_NOFILE" in ln]
        assert lines, "hard limit %d: stderr does not name RLIMIT_NOFILE:\n%s" % (hard, p.stderr)
        assert lines[0].startswith(a.conf_path + ":") and " error: " in lines[0], lines[0]
        assert str(hard) in lines[0] and "124" in lines[0], lines[0]

    # Exactly enough: 60 + 64 = 124 runs, and all are up.
    env.register(a)
    with children_nofile(124, 124):
        a.start()
    wait_until(lambda: all(i["state"] == "up" for i in a.instances()), 10, interval=0.1,
               msg="all 60 up at hard limit 124")
    assert a.stop() == 0

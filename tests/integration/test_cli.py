"""Scenario: the sentinel-agent command line: version, help, config check (ok and with
several errors, each as FILE:LINE), and the exit codes for usage and config errors."""

import os
import re

from harness import free_port

ERROR_LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+): error: (?P<msg>.+)$")


def valid_config(env, name="valid.conf"):
    return env.write(name, "\n".join([
        "[agent]",
        "name = cli-test",
        "interval = 1s",
        "timeout = 500ms",
        "stats_socket = %s" % env.path("stats.sock"),
        "",
        "[zookeeper]",
        "hosts = 127.0.0.1:%d" % free_port(),
        "",
        "[instance cache-a]",
        "address = 127.0.0.1:%d" % free_port(),
        "password = secret",
        "",
    ]))


def error_lines(stderr, path):
    out = []
    for line in stderr.splitlines():
        m = ERROR_LINE.match(line)
        if m:
            assert m.group("file") == path, line
            out.append(int(m.group("line")))
    return out


def test_version(env):
    r = env.run_agent("-V")
    assert r.returncode == 0, r
    assert re.fullmatch(r"sentinel-agent \d+\.\d+\.\d+\n", r.stdout), repr(r.stdout)
    r2 = env.run_agent("--version")
    assert r2.returncode == 0 and r2.stdout == r.stdout


def test_help(env):
    for opt in ("-h", "--help"):
        r = env.run_agent(opt)
        assert r.returncode == 0, r
        assert re.search(r"(?i)usage", r.stdout), repr(r.stdout)
        for o in ("-c", "-t", "-l", "-V", "-h"):
            assert o in r.stdout, "help does not mention %s" % o


def test_check_config_ok(env):
    path = valid_config(env)
    for opt in ("-t", "--check-config"):
        r = env.run_agent("-c", path, opt)
        assert r.returncode == 0, r
        assert r.stdout == "%s: ok\n" % path
        assert not ERROR_LINE.search(r.stderr)
    # -t only checks: it never creates the stats socket.
    assert not os.path.exists(env.path("stats.sock"))


def test_check_config_reports_every_error(env):
    path = env.write("bad.conf", "\n".join([
        "[agent]",                          # 1
        "name = cli-test",                  # 2
        "rise = lots",                      # 3  bad value
        "frobnicate = 1",                   # 4  unknown key
        "stats_socket = %s" % env.path("s.sock"),  # 5
        "",                                 # 6
        "[zookeeper]",                      # 7
        "hosts = 127.0.0.1:%d" % free_port(),  # 8
        "",                                 # 9
        "[instance cache-a]",               # 10
        "address = 127.0.0.1:6379",         # 11
        "colour = blue",                    # 12 unknown key
        "",
    ]))
    r = env.run_agent("-c", path, "-t")
    assert r.returncode == 78, r
    assert "ok" not in r.stdout
    lines = error_lines(r.stderr, path)
    assert sorted(lines) == [3, 4, 12], r.stderr


def test_section_level_errors_name_the_header(env):
    path = env.write("bad2.conf", "\n".join([
        "[agent]",                          # 1
        "stats_socket = %s" % env.path("s.sock"),  # 2
        "",                                 # 3
        "[zookeeper]",                      # 4
        "hosts = 127.0.0.1:%d" % free_port(),  # 5
        "",                                 # 6
        "[instance a]",                     # 7  missing address
        "cluster = x",                      # 8
        "",                                 # 9
        "[instance b]",                     # 10
        "address = 127.0.0.1:6379",         # 11
        "",                                 # 12
        "[instance b]",                     # 13 duplicate
        "address = 127.0.0.1:6380",         # 14
        "",
    ]))
    r = env.run_agent("-c", path, "-t")
    assert r.returncode == 78, r
    lines = error_lines(r.stderr, path)
    assert 7 in lines and 13 in lines, r.stderr
    assert len(lines) == 2, r.stderr


def test_invalid_config_without_t_exits_78(env):
    path = env.write("bad3.conf", "[agent]\nstats_socket = %s\nbogus_key = 1\n[zookeeper]\n"
                     "hosts = 127.0.0.1:1\n" % env.path("s.sock"))
    r = env.run_agent("-c", path)
    assert r.returncode == 78, r
    assert error_lines(r.stderr, path) == [3], r.stderr
    assert not os.path.exists(env.path("s.sock"))


def test_missing_config_exits_78(env):
    missing = env.path("no-such-dir", "sentinel-agent.conf")
    r = env.run_agent("-c", missing)
    assert r.returncode == 78, r
    assert missing in r.stderr
    r = env.run_agent("-c", missing, "-t")
    assert r.returncode == 78, r


def test_usage_errors_exit_64(env):
    path = valid_config(env)
    r = env.run_agent("-c", path, "-l", "loud")
    assert r.returncode == 64, r
    r = env.run_agent("-c", path, "--log-level", "loud", "-t")
    assert r.returncode == 64, r
    for bad in (["--frobnicate"], ["-Z"], ["-c"]):
        r = env.run_agent(*bad)
        assert r.returncode == 64, (bad, r)
    # A valid level is accepted.
    r = env.run_agent("-c", path, "-l", "debug", "-t")
    assert r.returncode == 0, r

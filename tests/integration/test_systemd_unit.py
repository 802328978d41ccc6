"""The systemd unit: it says what SPEC.md requires (Type=notify, SIGHUP reload, watchdog,
restart policy, runtime and state directories, sandboxing) and passes `systemd-analyze verify` once its
commands point at the built binaries and its man: documentation can be found.
"""

import os
import re
import subprocess

import pytest

from harness import agent_bin, build_dir, child_env
from unitcheck import ANALYZE, man_tree, unit_for_binaries, unit_settings, verify

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
UNIT = os.path.join(SRC, "systemd", "sentinel-agent.service")
SYSUSERS = os.path.join(SRC, "systemd", "sentinel-agent.sysusers")


@pytest.fixture
def tmp(tmp_path):
    return str(tmp_path)


def test_unit_says_what_the_spec_requires():
    s = unit_settings(UNIT)
    one = {k: v[0] for k, v in s.items() if len(v) == 1}
    assert one[("Service", "Type")] == "notify"
    assert one[("Service", "ExecReload")] == "/bin/kill -HUP $MAINPID"
    assert re.fullmatch(r"\d+s", one[("Service", "WatchdogSec")])
    assert one[("Service", "Restart")] == "on-failure"
    assert one[("Service", "RestartPreventExitStatus")] == "78"
    assert one[("Service", "RuntimeDirectory")] == "sentinel-agent"
    assert one[("Service", "ExecStart")] == \
        "/usr/sbin/sentinel-agent --config /etc/sentinel-agent/sentinel-agent.conf"
    assert one[("Service", "ExecStartPre")].startswith("/usr/sbin/sentinel-agent --check-config")
    # The default stats socket lives in the runtime directory the unit creates.
    assert "/run/sentinel-agent/stats.sock" in open(
        os.path.join(SRC, "config", "sentinel-agent.conf")).read()
    # Sandboxed, as an unprivileged user that the sysusers file declares.
    assert one[("Service", "ProtectSystem")] == "strict"
    assert one[("Service", "NoNewPrivileges")] == "yes"
    assert one[("Service", "CapabilityBoundingSet")] == ""
    user = one[("Service", "User")]
    with open(SYSUSERS) as f:
        decl = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    assert ["u", user] in [d[:2] for d in decl]
    # Hardening extras that cost the agent nothing.
    assert one[("Service", "PrivateMounts")] == "yes"
    assert one[("Service", "RemoveIPC")] == "yes"
    assert one[("Service", "UMask")] == "0077"
    # state_dir's default is the directory systemd creates for the agent.
    assert one[("Service", "StateDirectory")] == "sentinel-agent"
    assert "/var/lib/sentinel-agent" in open(
        os.path.join(SRC, "config", "sentinel-agent.conf")).read()
    # The agent is in the operators' group, so it can give the stats socket to it
    # (stats_socket_group); the sysusers file declares that group.
    groups = one[("Service", "SupplementaryGroups")].split()
    assert groups == ["sentinel-agent-ops"]
    for g in groups:
        assert ["g", g] in [d[:2] for d in decl]
    # Every man page the unit cites exists in docs/man.
    for ref in " ".join(s[("Unit", "Documentation")]).split():
        m = re.fullmatch(r"man:([\w.-]+)\((\d)\)", ref)
        assert m, ref
        assert os.path.exists(os.path.join(SRC, "docs", "man", "%s.%s" % m.groups())), ref


def test_systemd_analyze_verify_passes(tmp):
    if not os.access(agent_bin(), os.X_OK):
        pytest.fail("build first: %s" % agent_bin())
    unit = unit_for_binaries(UNIT, tmp, build_dir())
    rc, lines = verify(unit, man_tree(os.path.join(tmp, "man"), os.path.join(SRC, "docs", "man")))
    assert lines == [] and rc == 0, "\n".join(lines)


def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp):
    """The check above can fail: a misspelt key and a missing binary are reported."""
    unit = unit_for_binaries(UNIT, tmp, os.path.join(tmp, "nowhere"))
    with open(unit) as f:
        text = f.read()
    with open(unit, "w") as f:
        f.write(text.replace("WatchdogSec=", "WatchdogSecs="))
    rc, lines = verify(unit, man_tree(os.path.join(tmp, "man"), os.path.join(SRC, "docs", "man")))
    out = "\n".join(lines)
    assert "WatchdogSecs" in out
    assert "nowhere/sentinel-agent" in out and rc != 0


def test_sandbox_exposure_is_low(tmp):
    unit = unit_for_binaries(UNIT, tmp, build_dir())
    p = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", unit],
                       capture_output=True, text=True, timeout=60,
                       env=child_env({"SYSTEMD_LOG_COLOR": "0"}))
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", p.stdout)
    assert m, p.stdout[-2000:] + p.stderr
    assert float(m.group(1)) <= 2.0, m.group(0)

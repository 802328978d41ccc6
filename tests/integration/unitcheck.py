"""unitcheck.py -- helpers for the systemd unit checks: read a unit's settings, point a
copy of it at other binaries, lay man pages out for MANPATH, run `systemd-analyze verify`.
"""

import os
import shutil
import subprocess

from harness import child_env

MAN_PAGES = ("sentinel-agent.8", "sentinel-agent.conf.5", "sentinel-agentctl.1")
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def unit_settings(path):
    """{(section, key): [values]} of a unit file."""
    out = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.setdefault((section, k.strip()), []).append(v.strip())
    return out


def man_tree(root, src_dir):
    """Lays the man pages of SRC_DIR out as ROOT/manN/PAGE (a MANPATH entry); returns ROOT."""
    for page in MAN_PAGES:
        d = os.path.join(root, "man" + page[-1])
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(src_dir, page), d)
    return root


def verify(unit_path, manpath):
    """Runs systemd-analyze verify on UNIT_PATH; returns (exit code, output lines that
    mention the unit)."""
    env = child_env({"MANPATH": manpath, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""})
    p = subprocess.run([ANALYZE, "verify", unit_path], capture_output=True, text=True,
                       env=env, timeout=60)
    name = os.path.basename(unit_path)
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if name in ln]
    return p.returncode, lines


def unit_for_binaries(src_unit, dst_dir, sbin):
    """Copies SRC_UNIT into DST_DIR with its /usr/sbin commands pointing into SBIN."""
    with open(src_unit) as f:
        text = f.read()
    text = text.replace("/usr/sbin/sentinel-agent", os.path.join(sbin, "sentinel-agent"))
    dst = os.path.join(dst_dir, "sentinel-agent.service")
    with open(dst, "w") as f:
        f.write(text)
    return dst

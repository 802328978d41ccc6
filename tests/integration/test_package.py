"""The Debian package: `cpack -G DEB` from a fresh /usr-prefixed build gives a .deb with
the binaries, the unit, the sysusers file, the man pages and the config (a conffile), the
shared-library Depends, and maintainer scripts; extracted (never installed: that is
scripts/package-check.sh's job), its binaries run, its example config is valid, its unit
passes `systemd-analyze verify` and its man pages render.
"""

import os
import re
import shutil
import subprocess

import pytest

from harness import agent_bin, child_env
from unitcheck import ANALYZE, unit_for_binaries, verify

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))

EXPECTED_FILES = {
    "./usr/sbin/sentinel-agent": "-rwxr-xr-x",
    "./usr/bin/sentinel-agentctl": "-rwxr-xr-x",
    "./usr/lib/systemd/system/sentinel-agent.service": "-rw-r--r--",
    "./usr/lib/sysusers.d/sentinel-agent.conf": "-rw-r--r--",
    "./etc/sentinel-agent/sentinel-agent.conf": "-rw-r--r--",
    "./usr/share/man/man8/sentinel-agent.8.gz": "-rw-r--r--",
    "./usr/share/man/man5/sentinel-agent.conf.5.gz": "-rw-r--r--",
    "./usr/share/man/man1/sentinel-agentctl.1.gz": "-rw-r--r--",
}
# Debian 12 names of the shared libraries the binaries link.
EXPECTED_DEPENDS = ("libc6", "libev4", "libhiredis0.14", "libzookeeper-mt2",
                    "libjansson4", "libsystemd0")


def run(argv, timeout=120, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=child_env(kw.pop("env", None)), **kw)
    assert p.returncode == 0, "%s exited %d:\n%s\n%s" % (argv, p.returncode, p.stdout[-3000:],
                                                          p.stderr[-3000:])
    return p.stdout


def project_version():
    return run([agent_bin(), "-V"]).split()[1]


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """Builds the package in a throwaway build dir configured as a package build is."""
    d = str(tmp_path_factory.mktemp("deb"))
    build = os.path.join(d, "build")
    run(["cmake", "-S", SRC, "-B", build, "-DCMAKE_INSTALL_PREFIX=/usr", "-DSA_TESTS=OFF",
         "-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
    run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2)], timeout=300)
    run(["cpack", "-G", "DEB"], cwd=build)
    debs = [f for f in os.listdir(build) if f.endswith(".deb")]
    assert len(debs) == 1, debs
    yield os.path.join(build, debs[0])
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
    r = str(tmp_path_factory.mktemp("root"))
    run(["dpkg-deb", "-x", deb, r])
    return r


def test_contents(deb):
    listing = {}
    for line in run(["dpkg-deb", "-c", deb]).splitlines():
        f = line.split()
        listing[f[5]] = (f[0], f[1])
    for path, mode in EXPECTED_FILES.items():
        assert path in listing, "%s missing from the package:\n%s" % (path, "\n".join(listing))
        assert listing[path] == (mode, "root/root"), (path, listing[path])
    files = [p for p, (m, _) in listing.items() if not m.startswith("d")]
    assert sorted(files) == sorted(EXPECTED_FILES), "unexpected files: %r" % (
        sorted(set(files) - set(EXPECTED_FILES)))


def test_control(deb, tmp_path):
    fields = dict(re.findall(r"^(\w[\w-]*): (.*)$", run(["dpkg-deb", "-f", deb]), re.M))
    assert fields["Package"] == "sentinel-agent"
    assert fields["Version"] == project_version()
    assert fields["Architecture"] == run(["dpkg", "--print-architecture"]).strip()
    assert "@" in fields["Maintainer"]
    assert fields["Description"].strip()
    depends = {d.strip().split()[0] for d in fields["Depends"].split(",")}
    for lib in EXPECTED_DEPENDS:
        assert lib in depends, "%s not in Depends: %s" % (lib, fields["Depends"])

    ctrl = str(tmp_path / "DEBIAN")
    run(["dpkg-deb", "-e", deb, ctrl])
    with open(os.path.join(ctrl, "conffiles")) as f:
        assert f.read().split() == ["/etc/sentinel-agent/sentinel-agent.conf"]
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(ctrl, script)
        assert os.access(path, os.X_OK), script
        run(["sh", "-n", path])
    with open(os.path.join(ctrl, "postinst")) as f:
        assert "systemd-sysusers sentinel-agent.conf" in f.read()


def test_extracted_binaries_and_config(root):
    version = project_version()
    assert run([os.path.join(root, "usr/sbin/sentinel-agent"), "-V"]).strip() == \
        "sentinel-agent " + version
    assert run([os.path.join(root, "usr/bin/sentinel-agentctl"), "-V"]).strip() == \
        "sentinel-agentctl " + version
    conf = os.path.join(root, "etc/sentinel-agent/sentinel-agent.conf")
    assert run([os.path.join(root, "usr/sbin/sentinel-agent"), "-t", "-c", conf]).strip() == \
        conf + ": ok"
    # stripped, as a package's binaries are
    out = run(["file", "-b", os.path.join(root, "usr/sbin/sentinel-agent")])
    assert "ELF" in out and "not stripped" not in out, out
    # the sysusers line declares the user the unit runs as
    with open(os.path.join(root, "usr/lib/sysusers.d/sentinel-agent.conf")) as f:
        assert any(ln.split()[:2] == ["u", "sentinel-agent"] for ln in f if ln.strip()
                   and not ln.startswith("#"))


def test_extracted_unit_verifies(root, tmp_path):
    unit = os.path.join(root, "usr/lib/systemd/system/sentinel-agent.service")
    with open(unit) as f:
        text = f.read()
    assert "ExecStart=/usr/sbin/sentinel-agent --config /etc/sentinel-agent/sentinel-agent.conf" \
        in text
    # Verified where the binaries really are: the extracted tree.
    copy = unit_for_binaries(unit, str(tmp_path), os.path.join(root, "usr/sbin"))
    rc, lines = verify(copy, os.path.join(root, "usr/share/man"))
    assert lines == [] and rc == 0, "\n".join(lines)
    assert os.path.exists(ANALYZE)


@pytest.mark.parametrize("page,words", [
    ("man8/sentinel-agent.8.gz", ["--check-config", "SIGHUP", "WATCHDOG=1", "EXIT STATUS"]),
    ("man5/sentinel-agent.conf.5.gz", ["metrics_listen", "session_timeout", "max_inflight"]),
    ("man1/sentinel-agentctl.1.gz", ["instances", "metrics", "EXIT STATUS"]),
])
def test_man_pages_render(root, page, words):
    p = subprocess.run(["man", "--warnings", "-l", os.path.join(root, "usr/share/man", page)],
                       capture_output=True, text=True, timeout=60,
                       env=child_env({"MANWIDTH": "100", "MAN_KEEP_FORMATTING": "0",
                                      "LC_ALL": "C.UTF-8", "PAGER": "cat"}))
    assert p.returncode == 0 and p.stderr == "", p.stderr
    text = re.sub(r".\x08", "", p.stdout)
    for w in words:
        assert w in text, "%s lacks %r" % (page, w)

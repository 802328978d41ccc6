"""The Debian package: scripts/package.sh, from a build it configures for /usr itself, gives
a .deb with the binaries (hardened: hardening-check), the unit, the sysusers file, the man
pages, the config (a conffile), /usr/share/doc/sentinel-agent (DEP-5 copyright, changelog),
the shared-library and sysusers Depends, and debhelper's maintainer scripts; lintian finds
no error and no warning in it. cpack in a build for /usr/local refuses instead of packaging
it wrong. Extracted (never installed: that is scripts/package-check.sh's job), its binaries
run, its example config is valid, its unit passes `systemd-analyze verify` and its man pages
render.
"""

import grp
import gzip
import os
import re
import shutil
import subprocess

import pytest

from harness import agent_bin, build_dir, child_env
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
    "./usr/share/doc/sentinel-agent/copyright": "-rw-r--r--",
    "./usr/share/doc/sentinel-agent/changelog.gz": "-rw-r--r--",
    "./usr/share/bash-completion/completions/sentinel-agentctl": "-rw-r--r--",
}
# Debian 12 names of shared libraries the binaries link (dpkg-shlibdeps finds them all;
# these are the ones the agent cannot do without).
EXPECTED_DEPENDS = ("libc6", "libev4", "libhiredis0.14", "libzookeeper-mt2", "libjansson4",
                    "libsystemd0")
# What dh_installsysusers adds: the postinst runs systemd-sysusers.
SYSUSERS_DEPENDS = "systemd | systemd-standalone-sysusers | systemd-sysusers"
# Debian 12's glibc start files carry no CET property, so no Debian 12 executable has it
# (docs/operations.md); everything else hardening-check looks for must be there.
HARDENING_CHECK = ["hardening-check", "--nocfprotection"]


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
    """Builds the package as a release is built: scripts/package.sh in a throwaway dir."""
    d = str(tmp_path_factory.mktemp("deb"))
    out = run([os.path.join(SRC, "scripts", "package.sh"), os.path.join(d, "build")],
              timeout=300).split()
    assert len(out) == 1 and out[0].endswith(".deb"), out
    yield out[0]
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


def control_dir(deb, tmp_path):
    ctrl = str(tmp_path / "DEBIAN")
    run(["dpkg-deb", "-e", deb, ctrl])
    return ctrl


def test_control(deb, tmp_path):
    fields = dict(re.findall(r"^(\w[\w-]*): (.*)$", run(["dpkg-deb", "-f", deb]), re.M))
    assert fields["Package"] == "sentinel-agent"
    assert fields["Version"] == project_version()
    assert fields["Architecture"] == run(["dpkg", "--print-architecture"]).strip()
    m = re.fullmatch(r".+ <[^@>]+@([^@>]+)>", fields["Maintainer"])
    assert m and "." in m.group(1) and "localhost" not in m.group(1), fields["Maintainer"]
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert SYSUSERS_DEPENDS in depends, fields["Depends"]
    names = {d.split()[0] for d in depends}
    for lib in EXPECTED_DEPENDS:
        assert lib in names, "%s not in Depends: %s" % (lib, fields["Depends"])
    # The extended description: lines of at most 80 characters, none empty.
    info = run(["dpkg-deb", "-f", deb, "Description"]).rstrip("\n").split("\n")
    assert info[0].strip() and len(info) > 1, info
    for line in info[1:]:
        assert line.startswith(" ") and line.strip() and len(line) <= 80, repr(line)

    ctrl = control_dir(deb, tmp_path)
    with open(os.path.join(ctrl, "conffiles")) as f:
        assert f.read().split() == ["/etc/sentinel-agent/sentinel-agent.conf"]
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(ctrl, script)
        assert os.access(path, os.X_OK), script
        run(["sh", "-n", path])


def test_maintainer_scripts_are_debhelpers(deb, tmp_path):
    """systemd is driven through deb-systemd-helper/deb-systemd-invoke as dh_installsystemd
    writes it (policy-rc.d is honoured, enablement is tracked for purge); systemctl only
    for daemon-reload. The postinst creates the users with systemd-sysusers."""
    ctrl = control_dir(deb, tmp_path)
    text = {}
    for script in ("postinst", "prerm", "postrm"):
        with open(os.path.join(ctrl, script)) as f:
            text[script] = f.read()
        for n, line in enumerate(text[script].splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"(^|[;&|]|\s)systemctl\b", code):
                assert "daemon-reload" in code, "%s:%d calls systemctl: %s" % (script, n, line)
    assert "systemd-sysusers" in text["postinst"] and "sentinel-agent.conf" in text["postinst"]
    assert "deb-systemd-helper update-state 'sentinel-agent.service'" in text["postinst"]
    assert "deb-systemd-invoke try-restart 'sentinel-agent.service'" in text["postinst"]
    # An upgrade re-executes a running agent in place first; a restart only if that fails.
    assert "sentinel-agentctl -j upgrade" in text["postinst"]
    assert text["postinst"].index("sentinel-agentctl -j upgrade") < \
        text["postinst"].index("deb-systemd-invoke try-restart")
    assert "deb-systemd-invoke stop 'sentinel-agent.service'" in text["prerm"]
    assert "deb-systemd-helper purge 'sentinel-agent.service'" in text["postrm"]
    # A fresh install enables and starts nothing: the example config is only an example.
    assert "deb-systemd-invoke start" not in text["postinst"]


def test_doc_dir(root):
    doc = os.path.join(root, "usr/share/doc/sentinel-agent")
    with open(os.path.join(doc, "copyright")) as f:
        text = f.read()
    # DEP-5: a Format line, then a Files paragraph with Copyright and License.
    assert text.startswith(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
    assert re.search(r"^Files: \*$", text, re.M)
    assert re.search(r"^Copyright: \S", text, re.M)
    assert re.search(r"^License: \S", text, re.M)
    # The changelog's latest entry is this version, signed as the package's maintainer.
    with gzip.open(os.path.join(doc, "changelog.gz"), "rt") as f:
        changelog = f.read()
    first = changelog.splitlines()[0]
    assert first.startswith("sentinel-agent (%s) " % project_version()), first
    assert re.search(r"^ -- .+ <.+@.+\..+>  \w{3}, \d{1,2} \w{3} \d{4} ", changelog, re.M)


def has(tool):
    return shutil.which(tool) is not None


@pytest.mark.skipif(not has("lintian"), reason="lintian not installed (scripts/install-deps.sh)")
def test_lintian_finds_no_error_nor_warning(deb):
    p = subprocess.run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0",
                        deb], capture_output=True, text=True, timeout=240, env=child_env())
    tags = [ln for ln in p.stdout.splitlines() if re.match(r"^[EW]: ", ln)]
    assert p.returncode == 0 and tags == [], p.stdout + p.stderr


@pytest.mark.skipif(not has("hardening-check"),
                    reason="hardening-check not installed (devscripts; scripts/install-deps.sh)")
def test_packaged_binaries_are_hardened(root):
    bins = [os.path.join(root, "usr/sbin/sentinel-agent"),
            os.path.join(root, "usr/bin/sentinel-agentctl")]
    p = subprocess.run(HARDENING_CHECK + bins, capture_output=True, text=True, timeout=60,
                       env=child_env())
    assert p.returncode == 0, p.stdout + p.stderr


def cache_value(build, key):
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split("=", 1)[1].strip()
    return ""


@pytest.mark.skipif(not has("hardening-check"),
                    reason="hardening-check not installed (devscripts; scripts/install-deps.sh)")
def test_test_build_is_hardened_too():
    """Every build gets the flags, not just the package's: the binaries under test."""
    argv = list(HARDENING_CHECK)
    if cache_value(build_dir(), "SA_SANITIZE").upper() in ("ON", "1", "TRUE", "YES"):
        argv.append("--nofortify")      # left to ASan there (cmake/hardening.cmake)
    p = subprocess.run(argv + [agent_bin(), os.path.join(build_dir(), "sentinel-agentctl")],
                       capture_output=True, text=True, timeout=60, env=child_env())
    assert p.returncode == 0, p.stdout + p.stderr


def test_cpack_refuses_a_build_not_for_usr(tmp_path):
    """A build for cmake's default /usr/local would give a unit naming /usr/local/sbin and a
    conffile under /usr/local/etc in a package that installs to /usr: cpack says no."""
    build = str(tmp_path / "build")
    run(["cmake", "-S", SRC, "-B", build, "-DSA_TESTS=OFF", "-DCMAKE_INSTALL_PREFIX=/usr/local"])
    p = subprocess.run(["cpack", "-G", "DEB"], cwd=build, capture_output=True, text=True,
                       timeout=120, env=child_env())
    assert p.returncode != 0, p.stdout
    assert "CMAKE_INSTALL_PREFIX=/usr/local" in p.stdout + p.stderr, p.stdout + p.stderr
    assert not [f for f in os.listdir(build) if f.endswith(".deb")]


def test_extracted_binaries_and_config(root):
    version = project_version()
    assert run([os.path.join(root, "usr/sbin/sentinel-agent"), "-V"]).strip() == \
        "sentinel-agent " + version
    assert run([os.path.join(root, "usr/bin/sentinel-agentctl"), "-V"]).strip() == \
        "sentinel-agentctl " + version
    conf = os.path.join(root, "etc/sentinel-agent/sentinel-agent.conf")
    # The example names the group the package creates (stats_socket_group): on a host
    # without it, -t says so, with the line.
    try:
        grp.getgrnam("sentinel-agent-ops")
        assert run([os.path.join(root, "usr/sbin/sentinel-agent"), "-t", "-c", conf]).strip() \
            == conf + ": ok"
    except KeyError:
        p = subprocess.run([os.path.join(root, "usr/sbin/sentinel-agent"), "-t", "-c", conf],
                           capture_output=True, text=True, timeout=60, env=child_env())
        assert p.returncode == 78 and re.search(
            r":\d+: error: bad stats_socket_group \"sentinel-agent-ops\": no such group$",
            p.stderr.strip()), p.stderr
    # stripped, as a package's binaries are
    out = run(["file", "-b", os.path.join(root, "usr/sbin/sentinel-agent")])
    assert "ELF" in out and "not stripped" not in out, out
    # the sysusers lines declare the user the unit runs as and the operators' group
    with open(os.path.join(root, "usr/lib/sysusers.d/sentinel-agent.conf")) as f:
        decl = [ln.split()[:2] for ln in f if ln.strip() and not ln.startswith("#")]
    assert ["u", "sentinel-agent"] in decl and ["g", "sentinel-agent-ops"] in decl, decl


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
    ("man8/sentinel-agent.8.gz", ["--check-config", "SIGHUP", "WATCHDOG=1", "EXIT STATUS",
                                  "FILES", "EXAMPLES", "/var/lib/sentinel-agent"]),
    ("man5/sentinel-agent.conf.5.gz", ["metrics_listen", "session_timeout", "max_inflight",
                                       "stats_socket_group", "state_dir", "FILES",
                                       "EXAMPLES"]),
    ("man1/sentinel-agentctl.1.gz", ["instances", "metrics", "EXIT STATUS", "FILES",
                                     "EXAMPLES"]),
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


@pytest.mark.parametrize("page", ["sentinel-agent.8", "sentinel-agent.conf.5",
                                  "sentinel-agentctl.1"])
def test_man_page_source_is_clean(page):
    """A real date in .TH (mandoc cannot parse a bare year) and nothing from mandoc -Tlint,
    style messages included."""
    path = os.path.join(SRC, "docs", "man", page)
    with open(path) as f:
        th = next(ln for ln in f if ln.startswith(".TH "))
    assert re.match(r'\.TH \S+ \d \d{4}-\d{2}-\d{2} "sentinel-agent %s" ' % project_version(),
                    th), th
    if not has("mandoc"):
        pytest.skip("mandoc not installed (scripts/install-deps.sh)")
    p = subprocess.run(["mandoc", "-Tlint", path], capture_output=True, text=True, timeout=60,
                       env=child_env())
    assert p.returncode == 0 and p.stdout + p.stderr == "", p.stdout + p.stderr

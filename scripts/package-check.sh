#!/bin/sh
# package-check.sh [DEB] -- checks the sentinel-agent .deb with lintian (no error, no warning)
# and hardening-check, installs it on this machine for real (dpkg -i), checks the installed
# files, users, unit and config, then removes it again (dpkg -r, then dpkg --purge) and checks
# what each leaves behind.
#
# This changes the machine (it installs a package and creates the sentinel-agent system
# user and groups, which stay), so it is not part of the default test run: run it, as root,
# on a throwaway Debian 12 machine or container. Without DEB it builds one in build-deb/
# with scripts/package.sh.
set -eu
cd "$(dirname "$0")/.."

fail() {
    echo "package-check: FAIL: $*" >&2
    exit 1
}
step() {
    echo "package-check: $*"
}

[ "$(id -u)" = 0 ] || fail "run as root (it runs dpkg -i)"
if dpkg-query -W -f='${Status}' sentinel-agent 2>/dev/null | grep -q 'install ok installed'; then
    fail "sentinel-agent is already installed here; this check installs and removes its own"
fi

deb=${1:-}
if [ -z "$deb" ]; then
    step "building the package in build-deb/ (scripts/package.sh)"
    deb=$(./scripts/package.sh build-deb)
fi
[ -f "$deb" ] || fail "no such package: $deb"

step "lintian"
# Errors and warnings fail; overrides would be in packaging/deb/ (there are none). lintian
# warns that it runs as root: this script must, for dpkg -i.
out=$(lintian --fail-on error,warning --tag-display-limit 0 "$deb" 2>&1) ||
    fail "lintian: $out"
echo "$out" | grep -v '^running with root privileges is not recommended!$' || true

step "hardening-check on the packaged binaries"
# Debian 12's glibc start files carry no CET property, so no Debian 12 executable has it
# (docs/operations.md): control-flow protection is not asked for.
tmp=$(mktemp -d)
dpkg-deb -x "$deb" "$tmp"
hardening-check --nocfprotection "$tmp/usr/sbin/sentinel-agent" "$tmp/usr/bin/sentinel-agentctl" ||
    fail "hardening-check"
rm -rf "$tmp"

cleanup() {
    if dpkg-query -W sentinel-agent >/dev/null 2>&1; then
        step "removing the package"
        dpkg --purge sentinel-agent >/dev/null || echo "package-check: dpkg --purge failed" >&2
    fi
}
trap cleanup EXIT

step "dpkg -i $deb"
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -i "$deb"; then
    step "dependencies missing: apt-get -f install"
    apt-get install -f -y -qq --no-install-recommends >/dev/null || fail "installation failed"
fi

step "checking the installed files"
for f in /usr/sbin/sentinel-agent /usr/bin/sentinel-agentctl \
    /usr/lib/systemd/system/sentinel-agent.service /usr/lib/sysusers.d/sentinel-agent.conf \
    /etc/sentinel-agent/sentinel-agent.conf /usr/share/doc/sentinel-agent/copyright \
    /usr/share/doc/sentinel-agent/changelog.gz; do
    [ -e "$f" ] || fail "$f not installed"
done
version=$(/usr/sbin/sentinel-agent -V) || fail "sentinel-agent -V failed"
step "installed: $version"
dpkg-query -W -f='${Conffiles}\n' sentinel-agent | grep -q '/etc/sentinel-agent/sentinel-agent.conf' ||
    fail "the config is not a conffile"

step "checking the users, groups and the config's rights"
getent passwd sentinel-agent >/dev/null || fail "postinst did not create the sentinel-agent user"
getent group sentinel-agent-ops >/dev/null ||
    fail "postinst did not create the sentinel-agent-ops group"
rights=$(stat -c %U:%G:%a /etc/sentinel-agent/sentinel-agent.conf)
[ "$rights" = root:sentinel-agent:640 ] || fail "config rights are $rights, not root:sentinel-agent:640"
/usr/sbin/sentinel-agent -t -c /etc/sentinel-agent/sentinel-agent.conf >/dev/null ||
    fail "the installed example config does not validate"
if command -v runuser >/dev/null 2>&1; then
    runuser -u sentinel-agent -- /usr/sbin/sentinel-agent -t >/dev/null ||
        fail "the sentinel-agent user cannot read its config"
fi

step "systemd-analyze verify"
# Images that drop /usr/share/man (dpkg path-exclude) lack the pages Documentation= cites.
manpath=
if [ ! -e /usr/share/man/man8/sentinel-agent.8.gz ]; then
    step "man pages were not installed (dpkg path-exclude?): using the package's copy"
    tmp=$(mktemp -d)
    dpkg-deb -x "$deb" "$tmp"
    manpath=$tmp/usr/share/man
fi
out=$(MANPATH=${manpath:-$(manpath 2>/dev/null || echo /usr/share/man)} \
    systemd-analyze verify /usr/lib/systemd/system/sentinel-agent.service 2>&1) ||
    fail "systemd-analyze verify: $out"
if echo "$out" | grep -q sentinel-agent; then
    fail "systemd-analyze verify: $out"
fi
[ -n "$manpath" ] && rm -rf "$tmp"

if [ -d /run/systemd/system ]; then
    step "systemd is running: checking that the unit is known and not started by the install"
    systemctl cat sentinel-agent.service >/dev/null || fail "systemctl does not know the unit"
    state=$(systemctl is-active sentinel-agent.service || true)
    [ "$state" = inactive ] || fail "the install started the service ($state)"
fi

step "dpkg -r: the binaries go, the administrator's config stays"
dpkg -r sentinel-agent >/dev/null || fail "dpkg -r failed"
[ ! -e /usr/sbin/sentinel-agent ] || fail "/usr/sbin/sentinel-agent left behind by dpkg -r"
[ ! -e /usr/lib/systemd/system/sentinel-agent.service ] || fail "unit left behind by dpkg -r"
[ -e /etc/sentinel-agent/sentinel-agent.conf ] || fail "dpkg -r removed the conffile"
step "dpkg --purge: the config and state_dir go too"
# What the unit's StateDirectory= and a maintenance mark would leave.
mkdir -p /var/lib/sentinel-agent
touch /var/lib/sentinel-agent/package-check
trap - EXIT
dpkg --purge sentinel-agent >/dev/null || fail "dpkg --purge failed"
[ ! -e /etc/sentinel-agent/sentinel-agent.conf ] || fail "config left behind by dpkg --purge"
[ ! -e /var/lib/sentinel-agent ] || fail "/var/lib/sentinel-agent left behind by dpkg --purge"
step "ok ($version)"

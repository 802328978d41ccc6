#!/bin/sh
# install-deps.sh -- installs, with apt-get, the Debian 12 packages sentinel-agent needs to
# build, test, package (cpack's dpkg-shlibdeps and file; dpkg-buildflags for the hardening
# flags; lintian, hardening-check from devscripts and mandoc for the package checks;
# systemd-analyze and man for the unit checks; clang/libFuzzer, valgrind and gnuplot for the
# leak-safety runs) and run its demo.
# Idempotent: installs only what is missing. Run as root.
set -eu

PKGS="build-essential cmake pkg-config
libev-dev libhiredis-dev libzookeeper-mt-dev libsystemd-dev libjansson-dev
libcmocka-dev
redis-server redis-tools zookeeper default-jre-headless
python3 python3-pytest python3-redis python3-kazoo python3-prometheus-client
socat procps
dpkg-dev file man-db systemd lintian devscripts mandoc
clang libclang-rt-14-dev valgrind gnuplot-nox"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: missing packages:$missing; run as root to install them" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing

#!/bin/sh
# package.sh [BUILD_DIR] -- builds the Debian package: configures BUILD_DIR (default build-deb/)
# for /usr, as a package must be, builds it without the tests and runs cpack. Prints the path
# of the .deb. Any build dir will do; an existing one is reconfigured for /usr.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build-deb}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
    -DSA_TESTS=OFF -DSA_SANITIZE=OFF -DSA_FUZZ=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
rm -f "$dir"/sentinel-agent_*.deb
# cpack's progress lines go to a log, shown only when it fails.
if ! (cd "$dir" && cpack -G DEB >cpack.log 2>&1); then
    cat "$dir/cpack.log" >&2
    exit 1
fi
ls "$dir"/sentinel-agent_*.deb

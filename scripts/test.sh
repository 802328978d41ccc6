#!/bin/sh
# test.sh -- installs what is missing, builds, and runs the whole default test suite with ctest.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
cd build
ctest --output-on-failure -j 2 "$@"

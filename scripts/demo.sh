#!/bin/sh
# demo.sh -- installs what is missing, builds, and runs the local demo in the foreground:
# two throwaway redis-servers and a ZooKeeper on loopback, the agent against them.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
exec /usr/bin/python3 scripts/demo.py --build-dir build "$@"

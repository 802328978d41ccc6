#!/bin/sh
# fleet-drill.sh [fleet_drill.py options...] -- installs what is missing, builds (build/),
# and runs the fleet drill: one three-server ZooKeeper ensemble on loopback, 50 agents x 20
# instances on shared redis-servers, through a leader kill, a follower kill, a rolling
# restart and 10 % of the agents SIGKILLed (about five minutes). Not part of the default
# test run. Figures in fleet-out/fleet.json, the table on stdout; docs/zookeeper.md
# ("An ensemble under a fleet") reads them.
#   ./scripts/fleet-drill.sh
#   ./scripts/fleet-drill.sh --agents 10 --steady 10     # a quick look
# Exit 0 when no node was lost and no session expired, 1 otherwise.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
exec /usr/bin/python3 scripts/fleet_drill.py --build-dir build --out "${FLEET_OUT:-fleet-out}" "$@"

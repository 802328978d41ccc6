#!/bin/sh
# soak.sh [soak.py options...] -- installs what is missing, builds (build/), and runs the
# fault-injection soak against real redis-servers and a real ZooKeeper, then plots it.
# Default: the long run of docs/leak-safety.md, 100 instances at 100 ms until 1,050,000
# probes (about 25 minutes), samples and summary in soak-out/, the plot in soak-out/soak.png.
#   ./scripts/soak.sh                       # the long run
#   ./scripts/soak.sh --duration 120        # about two minutes (what the test suite runs)
# Exit 0 when the soak passed, 1 when a bound was broken (the reason is printed).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
out=${SOAK_OUT:-soak-out}
rc=0
if [ $# -eq 0 ]; then
    set -- --duration 0 --probes 1050000
fi
/usr/bin/python3 scripts/soak.py --build-dir build --out "$out" "$@" || rc=$?
if [ -f "$out/samples.csv" ]; then
    ./scripts/plot-soak.sh "$out/samples.csv" "$out/soak.png" "sentinel-agent soak with faults"
fi
exit "$rc"

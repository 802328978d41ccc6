#!/bin/sh
# bench.sh [bench.py options] -- the performance benchmark, outside the default test run:
# sentinel-agent at N = 100, 1,000 and 10,000 instances, side by side with Redis Sentinel
# (N <= 1,000), on throwaway redis-servers and a throwaway ZooKeeper on loopback.
#
# Installs what is missing (scripts/install-deps.sh, plus redis-sentinel, gnuplot-nox and
# linux-perf), builds a Release build in build-bench, runs bench/bench.py (raw results in
# bench/results/latest.json), then bench/report.py, which rewrites the generated part of
# docs/performance.md and docs/perf/*.png. Takes about 22 minutes with the defaults (7 of them
# the floor, bench/floor.c; --no-floor skips it); a quick look:
# ./scripts/bench.sh --n 100 --window 10 --reps 3 --out /tmp/bench.json --no-report
# The transitions (switchover, failover, recoveries) are bench/transitions.py, run apart.
# Run it on a quiet machine: CPU figures are only as good as the machine's idleness.
set -eu
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
missing=""
for p in redis-sentinel gnuplot-nox linux-perf; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "bench.sh: missing packages:$missing; run as root to install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi

report=1
out=bench/results/latest.json
n=$#
prev=""
while [ "$n" -gt 0 ]; do
    a=$1
    shift
    n=$((n - 1))
    if [ "$a" = --no-report ]; then
        report=0
        continue
    fi
    [ "$prev" = --out ] && out=$a
    prev=$a
    set -- "$@" "$a"
done

cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSA_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target sentinel-agent sentinel-agentctl probe-floor
/usr/bin/python3 bench/bench.py --build build-bench --out "$out" "$@"
if [ "$report" = 1 ]; then
    /usr/bin/python3 bench/report.py "$out"
fi

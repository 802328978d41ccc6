#!/bin/sh
# bench.sh [--quick] [--no-report] [--no-transitions] [bench.py options] -- the performance
# benchmark, outside the default test run: sentinel-agent at N = 100, 1,000 and 10,000
# instances, side by side with Redis Sentinel (N <= 1,000), on throwaway redis-servers and a
# throwaway ZooKeeper on loopback, then the transitions (switchover, failover, recoveries,
# start at N = 1,000) beside Sentinel.
#
# Installs what is missing (scripts/install-deps.sh, plus redis-sentinel, gnuplot-nox and
# linux-perf), builds a Release build in build-bench, runs bench/bench.py (raw results in
# bench/results/latest.json), then bench/transitions.py (bench/results/transitions-latest.json),
# then bench/report.py, which rewrites the generated part of docs/performance.md and
# docs/perf/*.png from both. Takes about 45 minutes with the defaults (see
# docs/performance.md); run it on a quiet machine: CPU figures are only as good as the
# machine's idleness.
#
# --quick: a check that everything works end to end, in about 5 minutes: N = 100 only, short
# windows, one fault of each kind, transitions.py --quick; raw results, the rendered doc and
# its plots go to a temp dir (printed), never over the committed ones.
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
transitions=1
quick=0
out=bench/results/latest.json
n=$#
prev=""
while [ "$n" -gt 0 ]; do
    a=$1
    shift
    n=$((n - 1))
    case "$a" in
    --no-report) report=0; continue ;;
    --no-transitions) transitions=0; continue ;;
    --quick) quick=1; continue ;;
    esac
    [ "$prev" = --out ] && out=$a
    prev=$a
    set -- "$@" "$a"
done

tr_out=bench/results/transitions-latest.json
doc=docs/performance.md
plots=docs/perf
tr_args=""
if [ "$quick" = 1 ]; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/sa-bench-quick.XXXXXX")
    out=$tmp/latest.json
    tr_out=$tmp/transitions.json
    doc=$tmp/performance.md
    plots=$tmp/perf
    cp docs/performance.md "$doc"
    tr_args=--quick
    set -- --n 100 --sentinel-max 100 --warmup 2 --window 5 --reps 1 --perf 0 "$@" --out "$out"
fi

cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSA_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target sentinel-agent sentinel-agentctl probe-floor
rc=0
/usr/bin/python3 bench/bench.py --build build-bench --out "$out" "$@" || rc=$?
if [ "$transitions" = 1 ]; then
    # shellcheck disable=SC2086
    /usr/bin/python3 bench/transitions.py --build build-bench --out "$tr_out" $tr_args || rc=$?
fi
if [ "$report" = 1 ]; then
    /usr/bin/python3 bench/report.py "$out" --transitions "$tr_out" --doc "$doc" --plots "$plots"
fi
[ "$quick" = 1 ] && echo "bench.sh: quick results, doc and plots in $tmp"
exit "$rc"

#!/bin/sh
# test.sh -- installs what is missing, builds, and runs the whole default test suite:
#   1. the normal build (build/) and its unit + integration tests with ctest (the short
#      fault-injection soak and the valgrind memcheck scenario are among them);
#   2. an ASan+UBSan build (build-asan/) and the same tests on it: any sanitizer report fails
#      (the agent aborts, and every report also lands in a log dir checked afterwards);
#   3. the libFuzzer targets (build-fuzz/, clang), each for FUZZ_SECONDS (default 20) on a copy
#      of its seed corpus in fuzz/corpus/.
# Extra arguments go to the first ctest. SA_TEST_QUICK=1 runs step 1 only. It stops at the
# first failing step; the closing lines of each ctest run are repeated at the end.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
tmp=$(mktemp -d /tmp/sa-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# run_ctest BUILD_DIR NAME [ctest args...]: ctest with its output shown and kept for the end.
run_ctest() {
    dir=$1
    name=$2
    shift 2
    { (cd "$dir" && ctest --output-on-failure -j 2 "$@"; echo $? >"$tmp/$name.rc") 2>&1; } |
        tee "$tmp/$name.log"
    grep -E '^[0-9]+% tests passed|^Total Test time' "$tmp/$name.log" |
        sed "s/^/[$name] /" >>"$tmp/summary"
    return "$(cat "$tmp/$name.rc")"
}

# The last line sums every ctest run and fuzz target as "tests: N passed, N failed".
finish() {
    echo "== summary"
    cat "$tmp/summary" 2>/dev/null || true
    awk '
        /tests passed, [0-9]+ tests? failed out of/ {
            for (i = 1; i <= NF; i++) {
                if ($i == "failed") f += $(i - 2)
                if ($i == "of") t += $(i + 1)
            }
        }
        /^\[fuzz\] .*: ok/ { t++ }
        /^\[fuzz\] .*: FAILED/ { t++; f++ }
        END { printf "tests: %d passed, %d failed\n", t - f, f }
    ' "$tmp/summary" 2>/dev/null
    exit "$1"
}

./scripts/build.sh build
run_ctest build ctest "$@" || finish $?
[ "${SA_TEST_QUICK:-0}" = 1 ] && finish 0

echo "== ASan+UBSan build: unit and integration tests"
./scripts/build.sh build-asan -DSA_SANITIZE=ON >"$tmp/build-asan.log" 2>&1 ||
    { cat "$tmp/build-asan.log"; finish 1; }
mkdir "$tmp/san"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$tmp/san/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$tmp/san/ubsan"
rc=0
run_ctest build-asan ctest-asan || rc=$?
unset ASAN_OPTIONS UBSAN_OPTIONS
# A hostile ZooKeeper test announces impossible frame sizes on purpose; the agent runs with
# allocator_may_return_null=1 there (glibc's behaviour), and ASan notes each refused
# allocation in a file of its own. Such a file, holding nothing else, is not a report.
for f in "$tmp/san"/*; do
    [ -e "$f" ] || continue
    grep -qvE '^==[0-9]+==WARNING: AddressSanitizer failed to allocate 0x[0-9a-f]+ bytes$|^$' "$f" ||
        rm -f "$f"
done
if [ -n "$(ls -A "$tmp/san")" ]; then
    for f in "$tmp/san"/*; do
        echo "--- sanitizer report $f ---"
        cat "$f"
    done
    echo "[sanitizers] reports above: failing" >>"$tmp/summary"
    rc=1
else
    echo "[sanitizers] no ASan/UBSan/LSan report" >>"$tmp/summary"
fi
[ "$rc" = 0 ] || finish "$rc"

echo "== libFuzzer targets, ${FUZZ_SECONDS:=20} s each"
CC=clang ./scripts/build.sh build-fuzz -DSA_FUZZ=ON -DSA_TESTS=OFF >"$tmp/build-fuzz.log" 2>&1 ||
    { cat "$tmp/build-fuzz.log"; finish 1; }
for bin in build-fuzz/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=${bin##*/fuzz_}
    mkdir -p "$tmp/fuzz/$name"
    cp fuzz/corpus/"$name"/* "$tmp/fuzz/$name"/ 2>/dev/null || true
    if (cd "$tmp/fuzz" && "$OLDPWD/$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
            -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 "$tmp/fuzz/$name" \
            >"$tmp/fuzz/$name.log" 2>&1); then
        line="fuzz_$name: ok, $(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/fuzz/$name.log") runs"
    else
        echo "--- fuzz_$name failed; its log: ---"
        tail -60 "$tmp/fuzz/$name.log"
        for f in "$tmp/fuzz"/crash-* "$tmp/fuzz"/leak-* "$tmp/fuzz"/timeout-*; do
            [ -e "$f" ] && echo "input: $(od -An -c "$f" | head -5)"
        done
        line="fuzz_$name: FAILED"
        rc=1
    fi
    echo "$line"
    echo "[fuzz] $line" >>"$tmp/summary"
done
finish "$rc"

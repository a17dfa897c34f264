#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang in build-fuzz
# and run each one for a bounded time, starting from its seed corpus.
#
#   tools/fuzz.sh [SECONDS]     total fuzzing time, split evenly (default 60)
#
# FUZZ_BUILD_DIR picks another build directory than build-fuzz (e.g. for
# two runs side by side).
#
# Every target runs even when an earlier one fails; the script exits 1 when
# any of them crashed, leaked, tripped ASan/UBSan, timed out or ran out of
# memory, and prints where the reproducer was saved (build-fuzz/artifacts/;
# replay it with build-fuzz/bin/<target> <file>). The seed corpora under
# tests/fuzz/corpus/ are copied to a temp dir first, so the repo stays clean.
# Without clang there is nothing to build: the script says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

total=${1:-60}
if ! [[ $total =~ ^[0-9]+$ ]] || [ "$total" -lt 1 ]; then
    echo "usage: tools/fuzz.sh [SECONDS]" >&2
    exit 2
fi
if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang is not installed; skipping the libFuzzer targets"
    exit 0
fi

targets=()
for src in tests/fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue
    t=$(basename "$src" .c)
    targets+=("$t")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz: no tests/fuzz/fuzz_*.c targets"
    exit 0
fi
per=$((total / ${#targets[@]}))
[ "$per" -ge 1 ] || per=1

build=${FUZZ_BUILD_DIR:-build-fuzz}
echo "fuzz: building ${targets[*]} in $build (clang, CAIRN_FUZZ=ON)"
# -Wno-unknown-warning-option: the warning set is written for gcc as well
# (-Wno-format-truncation), and clang must not turn that into an -Werror.
CC=clang cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCAIRN_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="-Wno-unknown-warning-option" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$build/fuzz-build.log" 2>&1 || {
    tail -40 "$build/fuzz-build.log"
    echo "fuzz: the build failed (full log: $build/fuzz-build.log)"
    exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts="$build/artifacts"
mkdir -p "$artifacts"

# UBSan findings abort (the build recovers by default); ASan leaks count.
# A single malloc over -rss_limit_mb (libFuzzer's default malloc limit) is a
# finding too: outside input must not choose how much the decoder reserves.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"

failed=()
for t in "${targets[@]}"; do
    corpus="$work/$t"
    mkdir -p "$corpus"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp -R "tests/fuzz/corpus/$t/." "$corpus/"
    fi
    args=(-max_total_time="$per" -rss_limit_mb=2048
          -timeout=25 -max_len=4096 -print_final_stats=1
          -artifact_prefix="$artifacts/$t-")
    [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
    log="$work/$t.log"
    echo "fuzz: $t for ${per}s ($(ls "$corpus" | wc -l) seeds)"
    set +e
    "$build/bin/$t" "${args[@]}" "$corpus" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        grep -E '^==[0-9]+==ERROR|SUMMARY|runtime error|deadly signal|Test unit written|^artifact_prefix|libFuzzer: ' \
            "$log" | head -20 || true
        tail -60 "$log"
        cp "$log" "$artifacts/$t.log"
        echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} execs; log: $artifacts/$t.log"
    else
        echo "fuzz: $t ok: ${execs:-?} execs, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l)"
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${per}s each without a finding"

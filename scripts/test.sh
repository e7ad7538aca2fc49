#!/usr/bin/env bash
# Builds the sanitizer build and runs every test; ends with one summary line
# "N passed, N failed". Exit status is non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# Freed memory is filled (max_free_fill_size): libuv is not instrumented, so
# a handle freed before its close callback shows up only as garbage it reads.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:max_free_fill_size=4096:free_fill_byte=255}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

if [ ! -f build-test/build.ninja ]; then
  meson setup build-test -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || exit 1
fi
ninja -C build-test || { echo "0 passed, 1 failed: build"; exit 1; }

# The code must also compile warning-free with clang.
if command -v clang >/dev/null; then
  if [ ! -f build-clang/build.ninja ]; then
    CC=clang meson setup build-clang >/dev/null || exit 1
  fi
  ninja -C build-clang >/dev/null || { ninja -C build-clang | tail -20; echo "0 passed, 1 failed: clang build"; exit 1; }
fi

unit_pass=0; unit_fail=0
meson test -C build-test --suite unit --print-errorlogs > build-test/unit.log 2>&1
unit_pass=$(grep -E '^Ok:' build-test/unit.log | awk '{print $2}')
unit_fail=$(( $(grep -E '^Fail:' build-test/unit.log | awk '{print $2}') + $(grep -E '^Timeout:' build-test/unit.log | awk '{print $2}') ))
if [ "$unit_fail" -ne 0 ]; then cat build-test/unit.log; fi
echo "unit: ${unit_pass} passed, ${unit_fail} failed"

cd tests/integration
HERALD_BIN="$PWD/../../build-test/herald" /usr/bin/python3 -m pytest -q -rfE "$@" > ../../build-test/integration.log 2>&1
it_rc=$?
cd ../..
tail -40 build-test/integration.log
summary=$(grep -E '^[=]* ?[0-9]+ (passed|failed)' build-test/integration.log | tail -1)
it_pass=$(echo "$summary" | grep -oE '[0-9]+ passed' | awk '{print $1}'); it_pass=${it_pass:-0}
it_fail=$(echo "$summary" | grep -oE '[0-9]+ (failed|error)' | awk '{s+=$1} END {print s+0}')
[ "$it_rc" -ne 0 ] && [ "$it_fail" -eq 0 ] && it_fail=1

total_pass=$((unit_pass + it_pass)); total_fail=$((unit_fail + it_fail))
echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" -eq 0 ]

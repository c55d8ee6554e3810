#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Runs weft's test programs and prints one "N passed, N failed" line.
#
#   sh tests/run.sh BIN...
#
# Runs each given test binary, then the layering test (tests/layering.sh),
# every tests/e2e/*.sh and the fault-injection suite (tests/faults/run.sh)
# (with BUILD exported; WEFT_E2E=0 skips them), each bounded by `timeout` (TEST_TIMEOUT
# seconds, default 600).  A program exiting 77 is a skip: it is reported,
# and counted neither as passed nor as failed.  The exit status is non-zero
# if anything failed.
#
# SAN=thread or SAN=address (as set by `make tsan` / `make asan`) selects
# the sanitizer options below.  Check runs every test in a forked child
# (CK_FORK=yes) so a crash or timeout fails one test, not the program; to
# debug a test run the binary by hand: CK_FORK=no gdb build/tests/NAME, and
# pick tests with CK_RUN_SUITE / CK_RUN_CASE.

BUILD=${BUILD:-build}
export BUILD

limit=${TEST_TIMEOUT:-600}
root=$(cd "$(dirname "$0")/.." && pwd)

CK_FORK=yes
export CK_FORK

case "${SAN:-}" in
thread)
	TSAN_OPTIONS=${TSAN_OPTIONS:-"halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp"}
	CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}
	export TSAN_OPTIONS CK_TIMEOUT_MULTIPLIER
	;;
address)
	ASAN_OPTIONS=${ASAN_OPTIONS:-"detect_leaks=1:abort_on_error=0"}
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-"print_stacktrace=1:halt_on_error=1"}
	CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-2}
	export ASAN_OPTIONS UBSAN_OPTIONS CK_TIMEOUT_MULTIPLIER
	;;
esac

passed=0
failed=0
failures=""

# run NAME CMD...: run one program under the wall-clock bound and count it.
run() {
	name=$1
	shift
	start=$(date +%s)
	timeout "$limit" "$@"
	rc=$?
	secs=$(($(date +%s) - start))
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS $name (${secs}s)"
	elif [ "$rc" -eq 77 ]; then
		echo "SKIP $name"
	else
		failed=$((failed + 1))
		failures="$failures $name"
		if [ "$rc" -eq 124 ]; then
			echo "FAIL $name (killed after ${limit}s)"
		else
			echo "FAIL $name (exit status $rc, ${secs}s)"
		fi
	fi
}

for bin in "$@"; do
	if [ ! -x "$bin" ]; then
		failed=$((failed + 1))
		failures="$failures $bin"
		echo "FAIL $bin (not an executable)"
		continue
	fi
	run "$(basename "$bin")" "$bin"
done

if [ "${WEFT_E2E:-1}" != 0 ]; then
	run layering sh "$root/tests/layering.sh"
	for script in "$root"/tests/e2e/*.sh; do
		[ -f "$script" ] || continue
		run "e2e/$(basename "$script")" sh "$script"
	done
	run faults sh "$root/tests/faults/run.sh"
fi

for name in $failures; do
	echo "failed: $name"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

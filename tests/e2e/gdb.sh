#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The gdb helper (gdb/weft.py) on a live process with 1,000 parked tasks
# (tests/e2e/gdb_parked.c, stopped by SIGTRAP): `info weft-tasks` lists
# every one, parked on its channel, `weft-bt N` walks a parked task's stack
# down to its body and the task entry, and the stopped thread's own
# registers are back afterwards.  Skips (77) without gdb.
set -u

BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$BUILD/tests/e2e/gdb_parked
name=gdb

fail() {
	echo "FAIL $name: $*"
	exit 1
}

if ! command -v gdb >/dev/null 2>&1; then
	echo "SKIP $name: gdb not installed (apt-get install gdb)"
	exit 77
fi
[ -x "$bin" ] || fail "$bin not built"

tmp=$(mktemp -d) || fail "mktemp"
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

# The sanitizers' own threads and shadow memory make gdb slow, not wrong.
limit=120
[ -n "${SAN:-}" ] && limit=400
WEFT_WORKERS=2 timeout "$limit" gdb -nx -batch \
	-ex "source $root/gdb/weft.py" \
	-ex 'handle SIGUSR1 SIGUSR2 SIGPIPE nostop noprint pass' \
	-ex run \
	-ex 'echo ==tasks==\n' -ex 'info weft-tasks' \
	-ex 'echo ==bt==\n' \
	-ex 'python gdb.execute("weft-bt %d" % int(gdb.parse_and_eval("first_id")))' \
	-ex 'echo ==own==\n' -ex 'bt 8' \
	-ex 'echo ==running==\n' -ex 'weft-bt 1' \
	-ex kill \
	"$bin" >"$tmp/out" 2>&1
rc=$?
[ "$rc" -eq 124 ] && fail "gdb killed after ${limit}s: $(tail -20 "$tmp/out")"

section() {
	sed -n "/^==$1==\$/,/^==/p" "$tmp/out"
}

n=$(section tasks | grep -c '"parked" suspended: waiting on chan recv 0x')
[ "$n" -eq 1000 ] || fail "info weft-tasks listed $n of 1000 parked tasks: $(head -40 "$tmp/out")"
section tasks | grep -q '^1001 tasks$' ||
	fail "no '1001 tasks' line: $(section tasks | tail -5)"
section tasks | grep -q '^  task #1 "main" running' ||
	fail "main not listed as running: $(section tasks | head -5)"
[ -n "${KEEP:-}" ] && echo "output: $tmp/out"
bt=$(section bt)
echo "$bt" | grep -q '^task #[0-9]* "parked":' || fail "no task header: $bt"
echo "$bt" | grep -q ' parked_body (' || fail "no parked_body frame: $bt"
echo "$bt" | grep -q 'chan_' || fail "no channel frame: $bt"
echo "$bt" | grep -q ' weft__task_entry (' || fail "no task entry frame: $bt"
section own | grep -q 'raise' ||
	fail "the thread's own registers were not restored: $(section own)"
section running | grep -q 'task #1 is running, not parked' ||
	fail "weft-bt of a running task: $(section running)"
echo "PASS $name (1000 parked tasks listed, a parked stack walked)"

#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The fault-injection suite: the churn program and the example servers
# under resource limits, with io_uring blocked and with injected
# allocation failures.  Each case asserts that nothing was lost.
#
#   sh tests/faults/run.sh [CASE...]      (default: every case)
#
# churn-no-uring  churn_faults under no_uring (io_uring_setup fails with
#                 EPERM): the runtime falls back to epoll (the summary says
#                 backend=epoll) and every invariant holds.
# churn-as        under prlimit --as (512 MiB) with --flood 5000: a flood
#                 of parked tasks needs more stacks than the address space
#                 holds, so spawns must start failing; every spawn must
#                 either run or be refused with an error (refused_nomem >
#                 0), no crash, no hang.
# churn-nofile    under prlimit --nofile=24: socketpair() runs out of fds
#                 (refused_nofile > 0) and every invariant holds.
# churn-alloc     with WEFT_FAULT_ALLOC=13: every 13th task descriptor,
#                 stack, channel, future, group or member allocation fails;
#                 the failures must surface as -ENOMEM (refused_nomem > 0)
#                 and nothing may be lost.
# httpd-nofile, echo-nofile      the server under prlimit --nofile=64,
# httpd-no-uring, echo-no-uring  the server under no_uring (it must hold
#                 an epoll fd and no io_uring fd), each driven by loadgen
#                 with more connections open at once than the fd limit
#                 allows: every connection answered correctly or closed by
#                 the server (none hung, none wrong); after each of two
#                 identical rounds the server's fd count returns to what it
#                 was before any load, and its RSS after the second round
#                 is within 4 MiB of the first.
#
# The churn's invariants are listed at the top of churn_faults.c.  Every
# command is bounded by `timeout`; servers listen on 127.0.0.1 port 0 and
# are stopped by their pid, also on failure.  A case exits 77 (SKIP) when
# it cannot apply (prlimit missing, RLIMIT_AS under a sanitizer).  Prints
# PASS/FAIL/SKIP per case and one "N passed, N failed" line; the exit status
# is non-zero if a case failed.  BUILD (default build) selects the build,
# SAN=address|thread the sanitizer settings of tests/run.sh.

BUILD=${BUILD:-build}
export BUILD
root=$(cd "$(dirname "$0")/../.." && pwd)
fb=$BUILD/tests/faults
churn=$fb/churn_faults
no_uring=$fb/no_uring
loadgen=$fb/loadgen

case "${SAN:-}" in
thread)
	TSAN_OPTIONS=${TSAN_OPTIONS:-"halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp"}
	export TSAN_OPTIONS
	;;
address)
	ASAN_OPTIONS=${ASAN_OPTIONS:-"detect_leaks=1:abort_on_error=0"}
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-"print_stacktrace=1:halt_on_error=1"}
	export ASAN_OPTIONS UBSAN_OPTIONS
	;;
esac

# Sizes: each churn case runs CHURN_SECONDS (two runs of half each) on 2
# workers; each server round opens ROUND_CONNS connections, PARALLEL at once.
churn_secs=${CHURN_SECONDS:-5}
round_conns=8000
parallel=300
if [ -n "${SAN:-}" ]; then
	round_conns=1000
	parallel=150
fi

# --- one case at a time, in a subshell with its own cleanup -------------

# fail MSG: end the current case as failed.
fail() {
	echo "  $case_name: $*"
	exit 1
}

skip() {
	echo "  $case_name: $*"
	exit 77
}

# bounded SECS CMD...: run CMD under timeout, stdout into $tmp/out, stderr
# into $tmp/err, status into $rc.  In the background with a wait, so that a
# signal to the script reaches the cleanup, which kills CMD by its pid.
bounded() {
	secs=$1
	shift
	timeout "$secs" "$@" >"$tmp/out" 2>"$tmp/err" &
	cpid=$!
	wait "$cpid"
	rc=$?
	cpid=
}

case_cleanup() {
	if [ -n "$cpid" ]; then
		kill "$cpid" 2>/dev/null
		wait "$cpid" 2>/dev/null
	fi
	stop_server
	rm -rf "$tmp"
}

# --- churn cases -----------------------------------------------------------

# churn_case CMD...: run the churn (prefixed by CMD...) and check its
# summary: exit 0, an "OK" line.  Sets $summary.
churn_case() {
	bounded 120 "$@" "$churn" --seconds "$churn_secs" --workers 2 \
		${flood:+--flood "$flood"}
	summary=$(grep '^churn_faults: ' "$tmp/out" | head -n 1)
	nostack=$(grep -c 'no stack for task' "$tmp/err")
	if grep -q -e "Sanitizer" -e "runtime error:" "$tmp/err"; then
		head -n 40 "$tmp/err"
		fail "a sanitizer finding"
	fi
	case $rc in
	0) ;;
	124) fail "killed by timeout after 120 s: $(cat "$tmp/out")" ;;
	1 | 3)
		cat "$tmp/out"
		[ "$nostack" -gt 0 ] &&
			echo "  $case_name: stderr: $nostack x" \
			     "'$(grep -m 1 'no stack for task' "$tmp/err")'"
		fail "invariants broken (exit status $rc)"
		;;
	*)
		cat "$tmp/out"
		tail -n 20 "$tmp/err"
		fail "exit status $rc (crashed?)"
		;;
	esac
}

# field NAME: the value of NAME=... in $summary.
field() {
	echo "$summary" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

case_churn_no_uring() {
	churn_case "$no_uring"
	[ "$(field backend)" = epoll ] ||
		fail "backend is '$(field backend)', expected epoll: $summary"
	echo "  $summary"
}

case_churn_as() {
	command -v prlimit >/dev/null 2>&1 ||
		skip "prlimit not found (apt-get install util-linux)"
	# The sanitizers map terabytes of shadow memory at start.
	[ -n "${SAN:-}" ] && skip "RLIMIT_AS does not apply under SAN=$SAN"
	flood=5000
	churn_case prlimit --as=$((512 * 1024 * 1024))
	flood=
	[ "$(field refused_nomem)" -gt 0 ] ||
		fail "no spawn was refused: the limit was never reached"
	echo "  $summary"
}

case_churn_nofile() {
	command -v prlimit >/dev/null 2>&1 ||
		skip "prlimit not found (apt-get install util-linux)"
	churn_case prlimit --nofile=24
	[ "$(field refused_nofile)" -gt 0 ] ||
		fail "nothing was refused for want of fds: $summary"
	echo "  $summary"
}

case_churn_alloc() {
	churn_case env WEFT_FAULT_ALLOC=13
	[ "$(field refused_nomem)" -gt 0 ] ||
		fail "no injected failure surfaced: $summary"
	echo "  $summary"
}

# --- server cases ----------------------------------------------------------

spid=

stop_server() {
	if [ -n "$spid" ]; then
		kill "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
		spid=
	fi
	exec 3<&-
}

# start_server CMD...: start the server in the background, read its
# "listening on" line through a FIFO (no polling) and set $addr and $spid.
start_server() {
	rm -f "$tmp/listen"
	mkfifo "$tmp/listen" || fail "mkfifo"
	"$@" >"$tmp/listen" 2>"$tmp/server.err" &
	spid=$!
	exec 3<"$tmp/listen"
	line=$(timeout 10 head -n 1 <&3)
	case "$line" in
	*": listening on "*) addr=${line#*": listening on "} ;;
	*)
		cat "$tmp/server.err"
		stop_server
		fail "no 'listening on' line (got '$line')"
		;;
	esac
}

fds_of() {
	ls "/proc/$spid/fd" 2>/dev/null | wc -l
}

rss_of() {
	sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$spid/status"
}

# wait_fds N WHAT: poll (bounded: 10 s) until the server holds N fds or
# fewer; the server closes a connection's fd once it has seen the EOF.
wait_fds() {
	i=0
	while [ "$(fds_of)" -gt "$1" ]; do
		i=$((i + 1))
		[ $i -gt 200 ] &&
			fail "$2: the server holds $(fds_of) fds, $1 before the load"
		sleep 0.05
	done
}

check_server() {
	if grep -q -e "Sanitizer" -e "runtime error:" "$tmp/server.err"; then
		head -n 40 "$tmp/server.err"
		fail "the server reported a sanitizer finding"
	fi
	kill -0 "$spid" 2>/dev/null || {
		cat "$tmp/server.err"
		fail "the server died"
	}
}

# load ROUND: one round of loadgen against $addr; must exit 0.
load() {
	bounded 60 "$loadgen" "$kind" "$addr" "$round_conns" "$parallel" 10000
	check_server
	[ $rc -eq 124 ] && fail "round $1: loadgen killed after 60 s"
	[ $rc -eq 0 ] || {
		cat "$tmp/out" "$tmp/err"
		fail "round $1: connections lost: $(tail -n 1 "$tmp/out")"
	}
	result=$(cat "$tmp/out")
}

# server_case KIND BIN CMD...: start BIN under CMD..., two rounds of load.
server_case() {
	kind=$1
	bin=$2
	shift 2
	[ -x "$bin" ] || fail "$bin not built"
	start_server "$@" "$bin" --port 0 --workers 2
	if [ "$under" = no_uring ]; then
		links=$(ls -l "/proc/$spid/fd" 2>/dev/null)
		echo "$links" | grep -q 'io_uring' &&
			fail "the server holds an io_uring fd under no_uring"
		echo "$links" | grep -q 'eventpoll' ||
			fail "the server holds no epoll fd under no_uring"
	fi
	base=$(fds_of)
	load 1
	wait_fds "$base" "after round 1"
	rss1=$(rss_of)
	load 2
	wait_fds "$base" "after round 2"
	rss2=$(rss_of)
	check_server
	# The second round does what the first did, so whatever the server
	# keeps between rounds (descriptor and stack caches, malloc arenas)
	# reached its high-water mark in the first.  4 MiB of slack covers
	# allocator noise; a leak of 512 bytes per connection over a round's
	# connections is more than that.  Not checked under sanitizers (their
	# quarantine and shadow memory grow on their own).
	if [ -z "${SAN:-}" ] && [ "$rss2" -gt $((rss1 + 4096)) ]; then
		fail "RSS grew from $rss1 KiB after round 1 to $rss2 KiB" \
		     "after round 2"
	fi
	echo "  $result; fds $base; RSS $rss1 -> $rss2 KiB"
	stop_server
}

case_server() {
	srv=$1
	under=$2
	kind=http
	[ "$srv" = echo ] && kind=echo
	case $under in
	nofile)
		command -v prlimit >/dev/null 2>&1 ||
			skip "prlimit not found (apt-get install util-linux)"
		# PARALLEL (300) connections at once against 64 fds: the
		# accept loop must hit EMFILE and back off.
		server_case "$kind" "$BUILD/weft-$srv" prlimit --nofile=64
		;;
	no_uring)
		server_case "$kind" "$BUILD/weft-$srv" "$no_uring"
		;;
	esac
}

# --- the driver ------------------------------------------------------------

cases="churn-no-uring churn-as churn-nofile churn-alloc httpd-nofile \
httpd-no-uring echo-nofile echo-no-uring"
all=$cases
[ $# -gt 0 ] && all=$*
flood=

for f in "$churn" "$no_uring" "$loadgen"; do
	[ -x "$f" ] || { echo "FAIL faults: $f not built"; exit 1; }
done
command -v timeout >/dev/null 2>&1 || {
	echo "FAIL faults: timeout not found"
	exit 1
}

passed=0
failed=0
failures=""
for case_name in $all; do
	start=$(date +%s)
	(
		tmp=$(mktemp -d) || exit 1
		cpid=
		trap case_cleanup EXIT
		trap 'exit 1' INT TERM HUP
		case $case_name in
		churn-no-uring) case_churn_no_uring ;;
		churn-as) case_churn_as ;;
		churn-nofile) case_churn_nofile ;;
		churn-alloc) case_churn_alloc ;;
		httpd-nofile) case_server httpd nofile ;;
		httpd-no-uring) case_server httpd no_uring ;;
		echo-nofile) case_server echo nofile ;;
		echo-no-uring) case_server echo no_uring ;;
		*) fail "no such case (cases: $(echo $cases))" ;;
		esac
	)
	rc=$?
	secs=$(($(date +%s) - start))
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS faults/$case_name (${secs}s)"
	elif [ $rc -eq 77 ]; then
		echo "SKIP faults/$case_name"
	else
		failed=$((failed + 1))
		failures="$failures $case_name"
		echo "FAIL faults/$case_name (${secs}s)"
	fi
done

for name in $failures; do
	echo "failed: faults/$name"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

# SPDX-License-Identifier: MIT
#
# Shared by the end-to-end scripts that drive an example server (sourced,
# not run: tests/run.sh runs only tests/e2e/*.sh).  The sourcing script sets
# $bin (the server binary) and $name (its label in messages) first.  Gives
# fail, stop_server, cleanup (installed as the EXIT trap), bounded,
# start_server and check_alive, and the scratch folder $tmp.

prog=$(basename "$bin")

fail() {
	echo "FAIL $name: $*"
	exit 1
}

[ -x "$bin" ] || fail "$bin not built"
command -v timeout >/dev/null 2>&1 || fail "timeout not found"
if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP $name: python3 not found (install it: apt-get install python3)"
	exit 77
fi

tmp=$(mktemp -d) || fail "mktemp"
pid=
cpid=

# Stop the server started last (if any), by its pid.
stop_server() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		pid=
	fi
	exec 3<&-
}

cleanup() {
	if [ -n "$cpid" ]; then
		kill "$cpid" 2>/dev/null
		wait "$cpid" 2>/dev/null
	fi
	stop_server
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# bounded SECS CMD...: run CMD under `timeout SECS`, its output into $out
# and its status into $rc.  In the background with a wait, so that a signal
# to this script stops it at once (cleanup then kills CMD by its pid).
bounded() {
	secs=$1
	shift
	timeout "$secs" "$@" >"$tmp/cmd.out" 2>&1 &
	cpid=$!
	wait "$cpid"
	rc=$?
	cpid=
	out=$(cat "$tmp/cmd.out")
}

# start_server LABEL ARGS...: start $bin in the background, wait for
# its "listening on" line (through a FIFO, no polling) and set $addr to
# what follows "on ".  The FIFO stays open on fd 3 while the server runs.
# Returns 1 (instead of failing) only when WEFT_IO=uring cannot start
# because the kernel refuses io_uring.
start_server() {
	label=$1
	shift
	rm -f "$tmp/out"
	mkfifo "$tmp/out" || fail "mkfifo"
	"$bin" "$@" >"$tmp/out" 2>"$tmp/err.$label" &
	pid=$!
	exec 3<"$tmp/out"
	line=$(timeout 10 head -n 1 <&3)
	case "$line" in
	"$prog: listening on "*)
		addr=${line#"$prog: listening on "}
		;;
	*)
		stop_server
		# Only a kernel that refuses io_uring excuses its half.
		if [ "$label" = uring ] && grep -q \
		   -e "runtime: Function not implemented" \
		   -e "runtime: Operation not permitted" "$tmp/err.$label"; then
			echo "$name: io_uring unavailable here," \
			     "epoll only: $(cat "$tmp/err.$label")"
			return 1
		fi
		cat "$tmp/err.$label" >&2
		fail "$label: no 'listening on' line (got '$line')"
		;;
	esac
}

# The server must still be running after a test, and have reported no
# sanitizer finding (those that do not stop it, such as UBSan's without
# halt_on_error).
check_alive() {
	if grep -q -e "Sanitizer" -e "runtime error:" "$tmp/err.$1"; then
		cat "$tmp/err.$1" >&2
		fail "$1: the server reported a sanitizer finding"
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$tmp/err.$1" >&2
		wait "$pid"
		rc=$?
		pid=
		fail "$1: server died (exit status $rc)"
	fi
}

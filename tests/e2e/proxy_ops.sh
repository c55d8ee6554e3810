#!/bin/sh
# SPDX-License-Identifier: MIT
#
# weft-proxy's operations side end to end, on loopback (Python 3 backends
# and clients in tests/e2e/lib/proxy_ops.py, which starts the proxy, reads
# its "listening on" lines from a pipe and stops every process by its pid):
#   reload          4 clients in new connections and 4 on keep-alive
#                   sessions for 3 s, SIGHUP every 300 ms with a file whose
#                   pool alternates between backends A and B: 0 failures,
#                   then new connections reach the last pool's backend
#                   only; a syntax error and a changed bind address are
#                   refused ("reload refused") and the old pool serves;
#   worker-kill     --procs 2, SIGKILL the child holding some of 20 open
#                   sessions: exactly those fail, new connections succeed,
#                   a new child takes the slot;
#   health          active checks (interval=100ms rise=2 fall=2): a stopped
#                   backend goes down (weft_proxy_server_up 0) and gets no
#                   session, restarted on its port it comes back and gets
#                   traffic; send="PING\r\n" expect="PONG" keeps a backend
#                   answering NOPE down; eject failures=2 for=500ms: a
#                   refusing server gets no connect attempt until it
#                   returns;
#   queue           listener max_conns 2 + queue 2 timeout=300ms, and a
#                   server max_conns=1: queue length 2, the next refused at
#                   once (end=refused), a freed slot serves a queued one, a
#                   left one ends queue_timeout at ~300 ms;
#   proxy-protocol  accept_proxy: v1 and v2 headers stripped, the log has
#                   the header's client; 3 malformed headers closed and
#                   counted while a concurrent session goes on; send_proxy
#                   v1 and v2 carry the client's addresses to the backend;
#   config          -t -c on cmd/weft-proxy/weft-proxy.conf exits 0; a file
#                   with 3 errors prints exactly those 3 FILE:LINE lines;
#   metrics         /metrics through a strict text-format parser (names,
#                   labels, values, TYPE before samples, histograms
#                   cumulative to +Inf == _count); after N sessions the
#                   session and byte totals are exact; /status agrees;
#   log-reopen      rename the access log, SIGUSR1: new lines in a new file
#                   at the path, old ones stay, none lost;
#   drain           drain_timeout 1s, SIGQUIT: the session works until cut
#                   at the deadline (end=drain), new connections are
#                   refused, the master exits 0;
#   timeouts        idle_timeout cuts a silent session (end=idle_timeout)
#                   and spares a busy one; session_timeout cuts a busy one.
# `sh tests/e2e/proxy_ops.sh CASE...` runs only those cases.  BUILD picks
# the build (build/asan, build/tsan with SAN=address/thread: the time
# bounds stretch, never the behaviour).  Exit 77 only without python3.
set -u

BUILD=${BUILD:-build}
bin=$BUILD/weft-proxy
name="proxy_ops"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export ROOT

. "$(dirname "$0")/lib/server.sh"

all="reload worker-kill health queue proxy-protocol config metrics
log-reopen drain timeouts"
cases=${*:-$all}
for c in $cases; do
	case " $(echo $all) " in
	*" $c "*) ;;
	*) fail "unknown case '$c' (cases: $(echo $all))" ;;
	esac
	mkdir "$tmp/$c" || fail "mkdir"
	# Under a sanitizer each case may take 4x as long.
	limit=40
	[ -n "${SAN:-}" ] && limit=120
	bounded "$limit" python3 "$ROOT/tests/e2e/lib/proxy_ops.py" "$c" \
		"$bin" "$tmp/$c"
	echo "$out"
	[ "$rc" -eq 0 ] || fail "$c (exit status $rc)"
done
exit 0

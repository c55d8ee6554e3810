#!/bin/sh
# SPDX-License-Identifier: MIT
#
# weft-proxy's data path end to end, on loopback, each case against a
# fresh `weft-proxy --procs 1 --workers 1` and Python backends:
#   payload      five connections at once, random payloads of 0, 1,
#                100 KiB, 8 MiB and 64 MiB (16 MiB under SAN, to keep
#                time) sent both ways at once; per connection the
#                client's sent sha256 == the backend's received and the
#                backend's sent == the client's received; with splice
#                auto (--listen mode: the admin's weft_proxy_pipes > 0
#                after) and splice off (a config file, 2 worker threads:
#                no pipe ever);
#   half-close   the client's FIN reaches the backend after all its bytes
#                (300 KiB), the backend then answers and closes, the
#                client gets it all then EOF; the reverse (the server's
#                FIN first, the client keeps sending and the server gets
#                it all); and a half-closed session whose server stays
#                silent, cut by SIGTERM's drain, ends without a sanitizer
#                finding (it was a use-after-free);
#   refused      --upstream to a bound, non-listening port: each client is
#                closed at once with no bytes (the detail says whether it
#                saw EOF or a reset: a reset when its "hello" was still
#                unread in the proxy), end=connect_failed in the access
#                log, 5 refused connects in the metrics, the proxy lives;
#                with dead,live,dead upstreams all 30 connections are
#                served (retry to the next server);
#   reset        2 worker threads.  The backend sends bytes then resets
#                (SO_LINGER 0): the client gets those bytes then
#                ECONNRESET, not EOF; the client resets: the backend sees
#                ECONNRESET; logged server_reset, client_reset (1000 B,
#                and 300 KiB past the splice threshold); then 40 backends
#                at once write and reset unsynchronised: all 40 clients
#                see a reset (a reset met by splice was once a clean EOF);
#   slow-reader  64 MiB each way in turn to a reader that reads nothing
#                (64 KiB socket buffers at the ends): the writer blocks
#                before the end and the proxy child's RSS grows < 16 MiB
#                meanwhile; then the reader takes it all, sha256 equal;
#   blackhole    a backlog-1 listener whose queue is full (SYNs dropped),
#                connect_timeout 300ms, retries 0 (a config file): the
#                client is closed within 0.25..3 s, end=connect_failed,
#                one cause="timeout" connect error in the metrics;
#   slowloris    200 clients each send a byte every 200 ms while 20
#                clients do round trips against an echo backend: none
#                fails, p99 < 200 ms (x3 under SAN; the figure printed);
#   idle         10,000 idle proxied connections (2,000 under SAN), each
#                after one round trip: the child's sockets <= 2 per
#                connection + 16, its pipes <= 512; RSS per idle
#                connection printed (not asserted); a sample of 100 still
#                echoes.  Needs 2 fds per connection in this process and
#                in the proxy child: below a hard RLIMIT_NOFILE of ~21,000
#                that cannot be raised (no CAP_SYS_RESOURCE) it uses as
#                many connections as fit and says so.
# `sh tests/e2e/proxy_data.sh CASE...` runs only those cases.  The
# clients and backends are tests/e2e/proxy_data.py, which starts the
# proxy itself (each backend's port must exist first) and stops it by its
# pid, checking its exit status and stderr for sanitizer reports.  Python
# 3 is needed (exit 77 without it); every case is bounded by timeout.
set -u

BUILD=${BUILD:-build}
bin=$BUILD/weft-proxy
name=proxy_data
py=$(dirname "$0")/proxy_data.py

. "$(dirname "$0")/lib/server.sh"

cases=" $* "
# want CASE: run this case?
want() {
	[ "$cases" = "  " ] || case "$cases" in *" $1 "*) ;; *) return 1 ;; esac
}

# Seconds a case may take (x3 under a sanitizer).
mult=1
[ -n "${SAN:-}" ] && mult=3

for c in payload half-close refused reset slow-reader blackhole \
	 slowloris idle; do
	want "$c" || continue
	bounded $((60 * mult)) python3 "$py" "$c" "$bin" "$tmp"
	if [ "$rc" -ne 0 ]; then
		[ -f "$tmp/err.$c" ] && cat "$tmp/err.$c"
		[ "$rc" -eq 124 ] && out="$out (killed after $((60 * mult)) s)"
		fail "$c: $out"
	fi
	echo "ok $c ($out)"
done
exit 0

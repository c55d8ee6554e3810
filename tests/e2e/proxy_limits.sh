#!/bin/sh
# SPDX-License-Identifier: MIT
#
# weft-proxy at its limits, on loopback:
#   nofile    the proxy's RLIMIT_NOFILE cut to 48 (prlimit on the master;
#             the worker inherits it) and 60 clients holding sessions open
#             against an echo backend: the proxy never dies, the sessions it
#             could not take wait (in the listen queue, or as a connect that
#             failed for want of an fd: end=error, never blamed on the
#             server: no connect error is counted against it), and once the
#             first ones close every later client is served: each of 60
#             round trips in a second wave succeeds;
#   bad-file  -t on files with errors exits 1 with FILE:LINE for each, and a
#             missing file exits 1 naming it; a bad command line exits 2.
# `sh tests/e2e/proxy_limits.sh CASE...` runs only those cases.
# Clients are Python 3 (exit 77 without it); every process is stopped by
# its pid.  Bounded by timeout (~20 s).
set -u

BUILD=${BUILD:-build}
bin=$BUILD/weft-proxy
name=proxy_limits

. "$(dirname "$0")/lib/server.sh"

cases=${*:-"nofile bad-file"}

cat >"$tmp/nofile.py" <<'EOF'
import os
import re
import socket
import sys
import time
import urllib.request

proxy, admin = sys.argv[1], sys.argv[2]


def die(msg):
    print("FAIL proxy_limits nofile: " + msg)
    sys.exit(1)


def addr(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def rt(c, tag):
    c.sendall(tag)
    got = b""
    while len(got) < len(tag):
        b = c.recv(4096)
        if not b:
            return False
        got += b
    return got == tag


def metrics():
    with urllib.request.urlopen("http://%s/metrics" % admin, timeout=5) as r:
        return r.read().decode()


def value(text, name, labels):
    for line in text.splitlines():
        if line.startswith(name + "{") and all(l in line for l in labels):
            return float(line.rsplit(" ", 1)[1])
    return None


# First wave: 60 clients connect and hold their sessions; only some fit.
held = []
for i in range(60):
    c = socket.create_connection(addr(proxy), timeout=10)
    held.append(c)
# Those the proxy serves answer; the others wait for an fd.  Find the
# served ones with a round trip that may time out.
served = 0
for i, c in enumerate(held):
    c.settimeout(0.5)
    try:
        if rt(c, b"w1-%d" % i):
            served += 1
    except (socket.timeout, ConnectionError):
        pass
if served == 0:
    die("no session was served under the fd limit")
if served == 60:
    die("all 60 sessions served: the fd limit was not reached")
# Close them all; the proxy must recover and serve a second wave fully.
for c in held:
    c.close()
deadline = time.monotonic() + 10
ok = 0
for i in range(60):
    while True:
        try:
            c = socket.create_connection(addr(proxy), timeout=5)
            c.settimeout(5)
            good = rt(c, b"w2-%d" % i)
            c.close()
        except (socket.timeout, ConnectionError):
            good = False
        if good:
            ok += 1
            break
        if time.monotonic() > deadline:
            die("second wave: client %d not served within 10 s" % i)
m = metrics()
errs = sum(value(m, "weft_proxy_server_connect_errors_total",
                 ['cause="%s"' % c]) or 0
           for c in ("refused", "timeout", "unreachable", "other"))
if errs:
    die("fd exhaustion was counted against the server (%d errors)" % errs)
up = value(m, "weft_proxy_server_up", ['server="s1"'])
if up != 1:
    die("the server is not up after fd exhaustion (%r)" % up)
print("ok nofile (first wave: %d of 60 served under the limit; second "
      "wave: 60 of 60)" % served)
EOF

run_nofile() {
	command -v prlimit >/dev/null 2>&1 || {
		echo "SKIP nofile: prlimit not found (apt-get install util-linux)"
		return 0
	}
	# The backend: weft-echo.
	bin=$BUILD/weft-echo
	prog=weft-echo
	start_server echo --host 127.0.0.1 --port 0 --workers 1
	echo_pid=$pid
	echo_addr=$addr
	exec 4<&3
	pid=
	bin=$BUILD/weft-proxy
	prog=weft-proxy
	rm -f "$tmp/out"
	mkfifo "$tmp/out" || fail "mkfifo"
	prlimit --nofile=48 "$bin" --listen 127.0.0.1:0 \
		--upstream "$echo_addr" --admin 127.0.0.1:0 --procs 1 \
		--workers 1 >"$tmp/out" 2>"$tmp/err.nofile" &
	pid=$!
	exec 3<"$tmp/out"
	lines=$(timeout 10 head -n 2 <&3)
	l1=$(printf '%s\n' "$lines" | sed -n 1p)
	l2=$(printf '%s\n' "$lines" | sed -n 2p)
	paddr=${l1#"weft-proxy: listening on "}
	aaddr=${l2#"weft-proxy: admin on "}
	[ "$paddr" != "$l1" ] && [ "$aaddr" != "$l2" ] ||
		fail "nofile: no listening lines (got '$l1' '$l2')"
	bounded 60 python3 "$tmp/nofile.py" "$paddr" "$aaddr"
	[ "$rc" -eq 0 ] || { cat "$tmp/err.nofile" >&2; fail "nofile: $out"; }
	echo "$out"
	check_alive nofile
	stop_server
	kill "$echo_pid" 2>/dev/null
	wait "$echo_pid" 2>/dev/null
	exec 4<&-
}

run_bad_file() {
	f=$tmp/bad.conf
	cat >"$f" <<'EOF'
global {
    workers 0;
}
pool p {
    server a 127.0.0.1:99999;
}
listen l {
    bind 127.0.0.1:0;
    pool nope;
}
EOF
	bounded 10 "$bin" -t -c "$f"
	[ "$rc" -eq 1 ] || fail "bad-file: exit status $rc, not 1"
	for want in "$f:2:" "$f:5:" "$f:9:"; do
		printf '%s\n' "$out" | grep -q "^$want" ||
			fail "bad-file: no '$want' error in: $out"
	done
	n=$(printf '%s\n' "$out" | grep -c "^$f:")
	[ "$n" -eq 3 ] || fail "bad-file: $n errors, not 3: $out"
	bounded 10 "$bin" -t -c "$tmp/none.conf"
	[ "$rc" -eq 1 ] || fail "bad-file: a missing file exits $rc"
	printf '%s\n' "$out" | grep -q "none.conf" ||
		fail "bad-file: a missing file is not named: $out"
	bounded 10 "$bin" --listen 127.0.0.1:0
	[ "$rc" -eq 2 ] || fail "bad-file: --listen alone exits $rc, not 2"
	bounded 10 "$bin" --procs x -c "$f"
	[ "$rc" -eq 2 ] || fail "bad-file: --procs x exits $rc, not 2"
	echo "ok bad-file (3 errors with their lines, a missing file, bad" \
	     "command lines)"
}

for c in $cases; do
	case $c in
	nofile) run_nofile ;;
	bad-file) run_bad_file ;;
	*) fail "unknown case $c" ;;
	esac
done
echo "PASS $name"

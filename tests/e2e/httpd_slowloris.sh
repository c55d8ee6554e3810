#!/bin/sh
# SPDX-License-Identifier: MIT
#
# weft-httpd's request-head deadline (--header-timeout-ms), once per I/O
# backend, against `weft-httpd --port 0 --idle-ms 800
# --header-timeout-ms 2000`:
#   drip        a client sends a request head one byte every 400 ms (half
#               the idle time, so the idle clock never runs out): the server
#               answers 408 with Connection: close and closes, no sooner
#               than 2 s after the first byte and within 2 s of slack after;
#   keep-alive  the same on a second request of a keep-alive connection,
#               timed from that request's first byte (the first one, sent
#               whole, gets its 200);
#   silent      a connection that sends nothing is closed by --idle-ms,
#               with no answer: the head's clock starts at its first byte;
#   errors      --header-timeout-ms 0 or garbage exits 2.
# Without the deadline the drip client would hold its connection for ever;
# the client gives up (and the test fails) 6 s after its first byte.  The
# client is Python 3 (exit 77 without it).  Every server is killed by its
# pid, also on failure.  Bounded to ~40 s by timeout.
set -u

BUILD=${BUILD:-build}
bin=$BUILD/weft-httpd
name=httpd_slowloris

. "$(dirname "$0")/lib/server.sh"

idle_ms=800
header_ms=2000
# Sanitizer builds answer later; the bound is a hang detector, not a bench.
slack_ms=2000
[ -n "${SAN:-}" ] && slack_ms=4000

cat >"$tmp/client.py" <<'EOF'
import socket
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
port = int(port)
idle = int(sys.argv[2]) / 1000.0
header = int(sys.argv[3]) / 1000.0
slack = int(sys.argv[4]) / 1000.0
GIVE_UP = 6.0
HEAD = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Drip: " + b"a" * 64 + b"\r\n\r\n"


class Fail(Exception):
    pass


def connect():
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def drip(s, what):
    """Drip HEAD a byte every idle/2 until the server closes; check it."""
    got = b""
    t0 = time.monotonic()
    for i in range(len(HEAD)):
        try:
            s.sendall(HEAD[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
        # Wait idle/2 for the next byte, watching for the server's answer.
        s.settimeout(idle / 2)
        try:
            b = s.recv(4096)
            if not b:
                break
            got += b
            # The answer is in: read the rest up to the close.
            s.settimeout(10)
            while True:
                b = s.recv(4096)
                if not b:
                    break
                got += b
            break
        except socket.timeout:
            pass
        if time.monotonic() - t0 > GIVE_UP:
            raise Fail("%s: still open %.1f s after the first byte "
                       "(no head deadline?)" % (what, GIVE_UP))
    else:
        raise Fail("%s: the whole head went out without a close" % what)
    took = time.monotonic() - t0
    s.close()
    lines = got.split(b"\r\n")
    if not got.startswith(b"HTTP/1.1 408 "):
        raise Fail("%s: expected a 408, got %r" % (what, got[:80]))
    if b"connection: close" not in [ln.lower() for ln in lines]:
        raise Fail("%s: 408 without Connection: close: %r" % (what, got))
    if took < header - 0.05:
        raise Fail("%s: closed after %.2f s, before the %.1f s head "
                   "deadline" % (what, took, header))
    if took > header + slack:
        raise Fail("%s: closed after %.2f s, more than %.1f s past the "
                   "head deadline" % (what, took, slack))
    return took


def read_answer(s, what):
    buf = b""
    while b"Hello, world" not in buf:
        b = s.recv(4096)
        if not b:
            raise Fail("%s: closed before the answer: %r" % (what, buf))
        buf += b
    if not buf.startswith(b"HTTP/1.1 200 "):
        raise Fail("%s: expected a 200, got %r" % (what, buf[:80]))


def check_drip():
    return "drip: 408 after %.2f s" % drip(connect(), "drip")


def check_keepalive():
    s = connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    read_answer(s, "keep-alive first request")
    return "keep-alive: 408 after %.2f s" % drip(s, "keep-alive drip")


def check_silent():
    s = connect()
    t0 = time.monotonic()
    s.settimeout(idle + slack)
    try:
        b = s.recv(4096)
    except socket.timeout:
        raise Fail("silent: still open %.1f s after connecting"
                   % (idle + slack))
    took = time.monotonic() - t0
    if b:
        raise Fail("silent: an answer to nothing: %r" % b[:80])
    if took < idle - 0.05:
        raise Fail("silent: closed after %.2f s, before --idle-ms" % took)
    return "silent: closed after %.2f s" % took


try:
    for fn in (check_drip, check_keepalive, check_silent):
        print(fn())
except Fail as e:
    print(e)
    sys.exit(1)
except OSError as e:
    print("%s: %s" % (fn.__name__, e))
    sys.exit(1)
EOF

summary=
for io in uring epoll; do
	WEFT_IO=$io
	export WEFT_IO
	start_server "$io" --port 0 --workers 2 --idle-ms "$idle_ms" \
		--header-timeout-ms "$header_ms" || continue
	bounded 30 python3 "$tmp/client.py" "$addr" "$idle_ms" "$header_ms" \
		"$slack_ms"
	check_alive "$io"
	[ $rc -eq 124 ] && fail "$io: client did not finish within 30 s"
	if [ $rc -ne 0 ]; then
		echo "$out" >&2
		fail "$io: $(echo "$out" | tail -n 1)"
	fi
	echo "$out" | sed "s/^/$name: $io: /"
	summary="$summary $io: ok;"
	stop_server
done
unset WEFT_IO

for bad in "--header-timeout-ms 0" "--header-timeout-ms x" \
	   "--header-timeout-ms 86400001"; do
	# shellcheck disable=SC2086 # split on purpose
	bounded 10 "$bin" $bad
	[ $rc -eq 2 ] || fail "'weft-httpd $bad': exit status $rc, expected 2"
done

echo "PASS $name ($(echo "$summary" | sed 's/^ //; s/;$//'))"

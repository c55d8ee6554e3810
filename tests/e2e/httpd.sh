#!/bin/sh
# SPDX-License-Identifier: MIT
#
# weft-httpd end to end on loopback, once per I/O backend (WEFT_IO=uring,
# then WEFT_IO=epoll), each against a fresh `weft-httpd --port 0`:
#   a GET gets 200 "Hello, world"; 100 requests on one keep-alive
#   connection; 50 pipelined requests in one write get exactly 50 answers
#   (and 500 do across many buffer refills); a request sent a byte at a
#   time is answered once, after its last byte; "Connection: close" in any
#   case and HTTP/1.0 without keep-alive close after the answer; HEAD has
#   no body; a 5 KiB header gets 431, garbage and bad versions 400,
#   Transfer-Encoding 501, all followed by a clean close; a POST body
#   (even one that looks like a request, or is larger than the server's
#   buffer) is dropped, not parsed.  "Exactly N answers" is checked by
#   ending each connection with a "Connection: close" request and reading
#   to EOF: nothing may come besides the expected answers.
# With wrk installed, `wrk -t1 -c50 -d1s` must see requests and no socket
# errors or non-2xx answers.  Without sanitizers it also prints the RSS an
# idle keep-alive connection costs the server (for information).
# The clients are Python 3 (exit 77 without it).  Every server is killed by
# its pid, also on failure.  Bounded to ~60 s by timeout.
set -u

BUILD=${BUILD:-build}
bin=$BUILD/weft-httpd
name=httpd

. "$(dirname "$0")/lib/server.sh"

cat >"$tmp/client.py" <<'EOF'
import os
import socket
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
port = int(port)
server_pid = int(sys.argv[2])
rss_conns = int(sys.argv[3])
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
CLOSE = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


class Fail(Exception):
    pass


class Conn:
    def __init__(self):
        self.s = socket.create_connection((host, port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def fill(self, what):
        b = self.s.recv(65536)
        if not b:
            raise Fail("%s: connection closed early (%r buffered)"
                       % (what, self.buf[:80]))
        self.buf += b

    def answer(self, what, status=200, head=False):
        """Read one answer; check its status (and the body of a 200)."""
        i = self.buf.find(b"\r\n\r\n")
        while i < 0:
            self.fill(what)
            i = self.buf.find(b"\r\n\r\n")
        lines = self.buf[:i].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or parts[0] != b"HTTP/1.1":
            raise Fail("%s: bad status line %r" % (what, lines[0]))
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower()] = v.strip().lower()
        n = 0 if head else int(hdrs.get(b"content-length", b"0"))
        while len(self.buf) < i + 4 + n:
            self.fill(what)
        body = self.buf[i + 4:i + 4 + n]
        self.buf = self.buf[i + 4 + n:]
        if int(parts[1]) != status:
            raise Fail("%s: status %s, expected %d"
                       % (what, parts[1].decode(), status))
        if status == 200 and not head:
            if body != b"Hello, world":
                raise Fail("%s: body %r" % (what, body))
            if hdrs.get(b"content-type") != b"text/plain":
                raise Fail("%s: content-type %r"
                           % (what, hdrs.get(b"content-type")))
        return hdrs

    def eof(self, what):
        """Nothing more may come: the next thing is the server's close."""
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    break
                self.buf += b
        except ConnectionResetError:
            raise Fail("%s: connection reset instead of closed" % what)
        if self.buf:
            raise Fail("%s: %d unexpected bytes: %r"
                       % (what, len(self.buf), self.buf[:80]))
        self.s.close()

    def finish(self, what):
        """Close the exchange with a Connection: close request."""
        self.send(CLOSE)
        h = self.answer(what + " (closing request)")
        if h.get(b"connection") != b"close":
            raise Fail("%s: close answer without Connection: close" % what)
        self.eof(what)

    def silent(self, what):
        """No answer may have arrived yet."""
        # (A socket with a timeout would poll first: make it non-blocking.)
        self.s.settimeout(0)
        try:
            b = self.s.recv(65536)
        except BlockingIOError:
            return
        finally:
            self.s.settimeout(10)
        raise Fail("%s: premature answer %r" % (what, b[:80]))


def check_get():
    c = Conn()
    c.send(GET)
    h = c.answer("GET")
    if h.get(b"content-length") != b"12":
        raise Fail("GET: content-length %r" % h.get(b"content-length"))
    c.finish("GET")


def check_keepalive():
    c = Conn()
    for i in range(100):
        c.send(GET)
        c.answer("keep-alive request %d" % i)
    c.finish("keep-alive")


def check_pipelined(n):
    c = Conn()
    c.send(GET * n)
    for i in range(n):
        c.answer("pipelined %d of %d" % (i + 1, n))
    c.finish("pipelined %d" % n)
    # The same with the close request inside the one write.
    c = Conn()
    c.send(GET * (n - 1) + CLOSE)
    for i in range(n):
        c.answer("pipelined+close %d of %d" % (i + 1, n))
    c.eof("pipelined+close %d" % n)


def check_partial():
    c = Conn()
    req = b"GET /partial HTTP/1.1\r\nHost: t\r\nX-A: b\r\n\r\n"
    for i in range(len(req)):
        c.silent("partial, before byte %d" % i)
        c.send(req[i:i + 1])
    c.answer("partial")
    c.finish("partial")


def check_close():
    for v in (b"Connection: close", b"connection: CLOSE",
              b"CONNECTION:   Close  ", b"Connection: TE, close"):
        c = Conn()
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n" + v + b"\r\n\r\n")
        c.answer(repr(v))
        c.eof(repr(v))
    c = Conn()
    c.send(b"GET / HTTP/1.0\r\n\r\n")
    c.answer("HTTP/1.0")
    c.eof("HTTP/1.0")
    c = Conn()
    for i in range(3):
        c.send(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        h = c.answer("HTTP/1.0 keep-alive %d" % i)
        if h.get(b"connection") != b"keep-alive":
            raise Fail("HTTP/1.0 keep-alive: no Connection: keep-alive")
    c.finish("HTTP/1.0 keep-alive")


def check_head():
    c = Conn()
    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + GET)
    h = c.answer("HEAD", head=True)
    if h.get(b"content-length") != b"12":
        raise Fail("HEAD: content-length %r" % h.get(b"content-length"))
    c.answer("GET after HEAD")
    c.finish("HEAD")


def check_errors():
    cases = [
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431),
        (b"\x00\x01\x02garbage\r\n\r\n", 400),
        (b"HELLO\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad : space\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"0\r\n\r\n", 501),
    ]
    for req, status in cases:
        what = "%d for %r" % (status, req[:40])
        c = Conn()
        c.send(req)
        h = c.answer(what, status)
        if h.get(b"connection") != b"close":
            raise Fail("%s: no Connection: close" % what)
        c.eof(what)
    # The answer before a bad request in the same write still comes.
    c = Conn()
    c.send(GET + b"BAD\r\n\r\n")
    c.answer("GET before garbage")
    c.answer("garbage after GET", 400)
    c.eof("garbage after GET")
    # A large header that fits is fine.
    c = Conn()
    c.send(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 1000 + b"\r\n\r\n")
    c.answer("1000-byte header")
    c.finish("1000-byte header")


def check_post():
    c = Conn()
    body = GET  # a body that looks like a request must not be one
    c.send(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) +
           body)
    c.answer("POST")
    c.finish("POST")
    # Headers and body in separate writes, then a body larger than any
    # buffer with the next request in the same write.
    c = Conn()
    c.send(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
    c.silent("POST without its body")
    c.send(b"01234")
    c.silent("POST with half its body")
    c.send(b"56789")
    c.answer("POST in pieces")
    big = os.urandom(100000)
    c.send(b"POST / HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % len(big) +
           big + GET)
    c.answer("100 KB POST")
    c.answer("GET after 100 KB POST")
    c.send(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    c.answer("empty POST")
    c.finish("POST in pieces")


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle_rss(n):
    """KiB of server RSS per idle keep-alive connection (first use)."""
    before = vm_rss(server_pid)
    conns = []
    for i in range(n):
        c = Conn()
        c.send(GET)
        conns.append(c)
    for c in conns:
        c.answer("idle connection")
    after = vm_rss(server_pid)
    for c in conns:
        c.s.close()
    return (after - before) / n


checks = [
    ("GET", check_get),
    ("keep-alive", check_keepalive),
    ("pipelined 50", lambda: check_pipelined(50)),
    ("pipelined 500", lambda: check_pipelined(500)),
    ("partial", check_partial),
    ("close", check_close),
    ("HEAD", check_head),
    ("errors", check_errors),
    ("POST", check_post),
]
what = "start"
try:
    for what, fn in checks:
        fn()
    what = "idle RSS"
    print("%d check groups passed" % len(checks))
    if rss_conns:
        print("idle keep-alive connection: %.1f KiB of server RSS each"
              " (%d connections)" % (idle_rss(rss_conns), rss_conns))
except Fail as e:
    print(e)
    sys.exit(1)
except OSError as e:
    print("%s: %s" % (what, e))
    sys.exit(1)
EOF

rss_conns=2000
[ -n "${SAN:-}" ] && rss_conns=0

summary=
for io in uring epoll; do
	WEFT_IO=$io
	export WEFT_IO
	start_server "$io" --port 0 || continue
	bounded 30 python3 "$tmp/client.py" "$addr" "$pid" "$rss_conns"
	check_alive "$io"
	[ $rc -eq 124 ] && fail "$io: client did not finish within 30 s"
	if [ $rc -ne 0 ]; then
		echo "$out" >&2
		fail "$io: $(echo "$out" | tail -n 1)"
	fi
	echo "$out" | sed "s/^/httpd: $io: /"
	summary="$summary $io: ok"

	if command -v wrk >/dev/null 2>&1; then
		bounded 10 wrk -t1 -c50 -d1s "http://$addr/"
		check_alive "$io"
		[ $rc -eq 0 ] || fail "$io: wrk exit status $rc: $out"
		reqs=$(echo "$out" |
		       sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p')
		[ "${reqs:-0}" -gt 0 ] || fail "$io: wrk made no requests: $out"
		case "$out" in
		*"Socket errors"* | *"Non-2xx"*)
			fail "$io: wrk saw errors: $out"
			;;
		esac
		echo "httpd: $io: wrk -t1 -c50 -d1s: $reqs requests"
		summary="$summary, wrk $reqs requests;"
	else
		summary="$summary (no wrk);"
	fi
	stop_server
done
unset WEFT_IO

for bad in "--port 70000" "--workers -1" "--stack 1k" "--stack 2g" \
	   "--stack 64x" "--bogus" "extra"; do
	# shellcheck disable=SC2086 # split on purpose
	bounded 10 "$bin" $bad
	[ $rc -eq 2 ] || fail "'weft-httpd $bad': exit status $rc, expected 2"
done

echo "PASS $name ($(echo "$summary" | sed 's/^ //; s/;$//'))"

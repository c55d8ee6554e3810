#!/bin/sh
# SPDX-License-Identifier: MIT
#
# weft-echo end to end on loopback, once per I/O backend (WEFT_IO=uring,
# then WEFT_IO=epoll), each against a fresh `weft-echo --port 0 --workers 2`:
#   correctness  four clients at once echo random payloads of 1 B .. 1 MiB
#                byte for byte, plus a half-close (EOF after the echo);
#   10k          10,000 connections open at once (1,000 under TSan), each
#                echoes its own message; the server must hold them all and
#                close every one after the clients leave (fd count);
#   reset        clients that close with SO_LINGER {1,0} (RST) before, while
#                and after the server writes; the server keeps serving and
#                closes their fds;
#   unix         one echo over --unix PATH;
#   errors       a bad option exits 2, a port in use exits 1 with strerror.
# The clients are Python 3 (exit 77 without it).  Every server is killed by
# its pid, also on failure.  Bounded to ~60 s by timeout.
set -u

BUILD=${BUILD:-build}
bin=$BUILD/weft-echo
name="echo"
conns=10000
if [ "${SAN:-}" = thread ]; then
	# TSan keeps a shadow state per fiber: 10,000 would take minutes.
	conns=1000
	echo "echo: SAN=thread, $conns connections instead of 10000"
fi

. "$(dirname "$0")/lib/server.sh"

cat >"$tmp/client.py" <<'EOF'
import os
import random
import resource
import socket
import struct
import sys
import threading
import time

mode, target = sys.argv[1], sys.argv[2]
TIMEOUT = 20


def die(msg):
    print(msg)
    sys.exit(1)


def dial():
    if mode == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(target)
        return s
    host, port = target.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    parts = []
    while n:
        b = s.recv(min(n, 1 << 20))
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def echo(s, payload, what):
    """Send payload from a thread while reading the echo back."""
    err = []

    def sender():
        try:
            s.sendall(payload)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=sender)
    t.start()
    got = recv_exact(s, len(payload))
    t.join()
    if err:
        raise AssertionError("%s: send failed: %s" % (what, err[0]))
    if got != payload:
        if len(got) != len(payload):
            raise AssertionError("%s: %d of %d bytes came back"
                                 % (what, len(got), len(payload)))
        off = next(i for i in range(len(got)) if got[i] != payload[i])
        raise AssertionError("%s: byte %d differs" % (what, off))


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def wait_fds(pid, limit, what):
    """The server closes its side once it reads EOF: wait for that."""
    deadline = time.monotonic() + 10
    while True:
        n = fd_count(pid)
        if n is None or n <= limit:
            return
        if time.monotonic() > deadline:
            die("%s: server still holds %d fds, expected <= %d"
                % (what, n, limit))
        time.sleep(0.02)


def correctness():
    sizes = [1, 2, 3, 100, 1000, 4095, 4096, 4097, 8191, 8192, 8193,
             65535, 65536, 100000, 262144, 1 << 20]
    rng = random.Random(1)
    sizes += [rng.randint(1, 1 << 20) for _ in range(8)]
    errors = []

    def client(k):
        try:
            r = random.Random(k)
            mine = sizes[:]
            r.shuffle(mine)
            s = dial()
            for n in mine:
                echo(s, r.randbytes(n), "client %d, %d bytes" % (k, n))
            s.close()
        except (AssertionError, OSError) as e:
            errors.append("client %d: %s" % (k, e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        die(errors[0])
    # Half-close: everything comes back, then the server closes too.
    s = dial()
    payload = random.Random(9).randbytes(300000)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = recv_exact(s, len(payload) + 1)
    if got != payload:
        die("half-close: got %d bytes back of %d, or different ones"
            % (len(got), len(payload)))
    s.close()
    return "%d payloads x 4 clients" % len(sizes)


def many(nconn, pid, base):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < nconn + 64:
        die("RLIMIT_NOFILE hard limit %d is below %d" % (hard, nconn + 64))
    if base is not None:
        wait_fds(pid, base, "before opening %d connections" % nconn)
    t0 = time.monotonic()
    socks = []
    try:
        for i in range(nconn):
            socks.append(dial())
    except OSError as e:
        die("connection %d of %d: %s" % (len(socks) + 1, nconn, e))
    t_open = time.monotonic() - t0
    msgs = [struct.pack("<Q", i) + os.urandom(24) for i in range(nconn)]
    try:
        for s, m in zip(socks, msgs):
            s.sendall(m)
        for i, (s, m) in enumerate(zip(socks, msgs)):
            got = recv_exact(s, len(m))
            if got != m:
                die("connection %d: echo differs (%d bytes)" % (i, len(got)))
    except OSError as e:
        die("echo on %d connections: %s" % (nconn, e))
    elapsed = time.monotonic() - t0
    held = fd_count(pid)
    if held is not None and held < base + nconn:
        die("server holds %d fds with %d connections open (%d before)"
            % (held, nconn, base))
    for s in socks:
        s.close()
    if base is not None:
        wait_fds(pid, base, "after closing %d connections" % nconn)
    return "%d connections open at once, echoed in %.2f s (connect %.2f s)" \
        % (nconn, elapsed, t_open)


def reset(pid, base):
    linger = struct.pack("ii", 1, 0)
    socks = []
    for i in range(60):
        s = dial()
        if i % 3 == 0:
            s.sendall(b"x" * 100)              # RST before the echo
        elif i % 3 == 1:
            s.setblocking(False)               # RST while it writes
            try:
                while True:
                    s.send(b"y" * 65536)
            except BlockingIOError:
                pass
        else:
            echo(s, b"z" * 5000, "reset client %d" % i)  # RST after
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        socks.append(s)
    for s in socks:
        s.close()
    s = dial()
    echo(s, os.urandom(70000), "round trip after resets")
    s.close()
    if base is not None:
        wait_fds(pid, base, "after the resets")
    return "60 resets"


try:
    if mode == "tcp":
        pid = int(sys.argv[4])
        base = fd_count(pid)  # the idle server's own fds
        print(correctness())
        print(many(int(sys.argv[3]), pid, base))
        print(reset(pid, base))
    else:
        s = dial()
        echo(s, os.urandom(100000), "unix round trip")
        s.close()
        print("unix round trip")
except (AssertionError, OSError) as e:
    die(str(e))
EOF

summary=
for io in uring epoll; do
	WEFT_IO=$io
	export WEFT_IO
	start_server "$io" --port 0 --workers 2 || continue
	bounded 40 python3 "$tmp/client.py" tcp "$addr" "$conns" "$pid"
	check_alive "$io"
	[ $rc -eq 124 ] && fail "$io: client did not finish within 40 s"
	if [ $rc -ne 0 ]; then
		echo "$out" >&2
		fail "$io: $(echo "$out" | tail -n 1)"
	fi
	echo "$out" | sed "s/^/echo: $io: /"
	many=$(echo "$out" | sed -n '2s/ (connect.*//p')
	summary="$summary $io: $many;"

	# A second server on the same port must fail cleanly.
	port=${addr##*:}
	bounded 10 "$bin" --port "$port"
	[ $rc -eq 1 ] || fail "$io: port in use: exit status $rc, expected 1"
	case "$out" in
	*"Address already in use"*) ;;
	*) fail "$io: port in use: stderr is '$out'" ;;
	esac
	stop_server

	start_server "$io.unix" --unix "$tmp/echo.sock" --workers 2 ||
		fail "$io.unix: cannot start"
	bounded 20 python3 "$tmp/client.py" unix "$tmp/echo.sock"
	check_alive "$io.unix"
	if [ $rc -ne 0 ]; then
		echo "$out" >&2
		fail "$io: unix: $(echo "$out" | tail -n 1)"
	fi
	stop_server
done
unset WEFT_IO

for bad in "--port 70000" "--workers x" "--bogus" "--idle-ms 0" "extra"; do
	# shellcheck disable=SC2086 # split on purpose
	bounded 10 "$bin" $bad
	[ $rc -eq 2 ] || fail "'weft-echo $bad': exit status $rc, expected 2"
done

echo "PASS $name ($(echo "$summary" | sed 's/^ //; s/;$//'))"

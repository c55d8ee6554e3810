#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The pre-fork supervisor end to end (weft-httpd and weft-echo --procs),
# on loopback:
#   reload-shared,   weft-httpd --procs 2 --workers 1 [--reuseport] under
#   reload-reuseport two clients that open a connection per request as fast
#                    as they can and two keep-alive clients, while the
#                    master gets SIGHUP every 200 ms for RELOAD_SECONDS
#                    (3 by default): 0 failed connections or requests, the
#                    generations came up, none was killed, the old ones
#                    all drained;
#   upgrade          the same load with SIGUSR2 (binary upgrade) every
#                    second: 0 failures, each new master takes over, each
#                    old one drains and exits;
#   upgrade-fail     SIGUSR2 when the binary on disk exits at once: the old
#                    master says so and keeps serving;
#   worker-kill      SIGKILL one worker (reuseport, 20 keep-alive
#                    connections open): exactly the connections it held
#                    fail, the other worker never stops, the slot has a
#                    new worker answering within a bound (time printed);
#   master-kill      SIGKILL the master: every worker exits within 1 s
#                    and the port is free;
#   crash-loop       workers that cannot start (WEFT_IO=bogus): backoff
#                    in the log, exit status 1 with the cause named;
#   drain            weft-echo --procs 1 --drain-ms 300, SIGQUIT: a busy
#                    connection keeps echoing inside the deadline, an
#                    idle one is closed at it, the master exits 0;
#   reload-nofile    weft-echo --procs 1; the master's RLIMIT_NOFILE cut to
#                    4 (prlimit), SIGHUP: it cannot make the new child's
#                    socketpair, says so and retries with backoff while
#                    the old generation goes on echoing; the limit back,
#                    the reload completes;
#   listen-fds       weft-echo under socket activation (LISTEN_FDS=1 on
#                    fd 3, LISTEN_PID): it serves the socket it was
#                    handed and binds nothing of its own;
#   errors           --reuseport without --procs exits 2.
# `sh tests/e2e/prefork.sh CASE...` runs only those cases (the names
# above; reload-shared and reload-reuseport count as one each).
# Clients are Python 3 (exit 77 without it).  Every server is stopped by
# its pid; every wait is bounded.
set -u

BUILD=${BUILD:-build}
bin=$BUILD/weft-httpd
name="prefork"
reload_secs=${RELOAD_SECONDS:-3}
echo_bin=$BUILD/weft-echo

. "$(dirname "$0")/lib/server.sh"
[ -x "$echo_bin" ] || fail "$echo_bin not built"

cat >"$tmp/pf.py" <<'EOF'
import os
import signal
import socket
import subprocess
import sys
import threading
import time

REQ = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def die(msg):
    print(msg)
    sys.exit(1)


def children(ppid):
    """Live (not zombie) children of ppid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        if rest[0] != "Z" and int(rest[1]) == ppid:
            out.append(int(d))
    return sorted(out)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


def wait_for(cond, secs, what):
    end = time.monotonic() + secs
    while not cond():
        if time.monotonic() > end:
            die("timed out waiting for " + what)
        time.sleep(0.005)


def read_response(s):
    """One response: (closes, ok).  Raises on EOF mid-way."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        if not b:
            raise EOFError("EOF after %d bytes of a response" % len(buf))
        buf += b
    head, body = buf.split(b"\r\n\r\n", 1)
    while len(body) < 12:
        b = s.recv(4096)
        if not b:
            raise EOFError("EOF inside a body")
        body += b
    if not head.startswith(b"HTTP/1.1 200 ") or body != b"Hello, world":
        raise ValueError("bad response %r" % buf[:80])
    return b"connection: close" in head.lower()


def dial(host, port):
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def new_master(errfile, old, secs):
    """The master that took over from `old` (its log line), or die."""
    end = time.monotonic() + secs
    want = "new master "
    while time.monotonic() < end:
        with open(errfile) as f:
            for line in f:
                if (want in line and "is serving; master %d drains" % old
                        in line):
                    return int(line.split(want)[1].split()[0])
        time.sleep(0.01)
    die("no new master took over from %d" % old)


def reload_load(host, port, master, secs, hup_ms, sig=signal.SIGHUP,
                errfile=None):
    stats = {"ok": 0, "fail": 0, "reconnects": 0}
    errors = []
    lock = threading.Lock()
    stop = time.monotonic() + secs

    def failed(what, e):
        with lock:
            stats["fail"] += 1
            if len(errors) < 5:
                errors.append("%s: %r" % (what, e))

    def churn():
        while time.monotonic() < stop:
            try:
                s = dial(host, port)
                s.sendall(REQ)
                read_response(s)
                s.close()
                with lock:
                    stats["ok"] += 1
            except Exception as e:
                failed("new connection", e)

    def keepalive():
        s = None
        while time.monotonic() < stop:
            try:
                if s is None:
                    s = dial(host, port)
                s.sendall(REQ)
                closes = read_response(s)
                with lock:
                    stats["ok"] += 1
                if closes:
                    s.close()
                    s = None
                    with lock:
                        stats["reconnects"] += 1
            except Exception as e:
                failed("keep-alive", e)
                if s:
                    s.close()
                s = None
        if s:
            s.close()

    ts = [threading.Thread(target=churn) for _ in range(2)]
    ts += [threading.Thread(target=keepalive) for _ in range(2)]
    for t in ts:
        t.start()
    hups = 0
    masters = [master]
    while time.monotonic() < stop:
        time.sleep(hup_ms / 1000.0)
        os.kill(master, sig)
        hups += 1
        if sig == signal.SIGUSR2:
            master = new_master(errfile, master, 10)
            masters.append(master)
    for t in ts:
        t.join()
    if sig == signal.SIGUSR2:
        # Every old master drains and exits.
        for m in masters[:-1]:
            wait_for(lambda: not alive(m), 15, "old master %d to exit" % m)
        with open(os.environ["MASTER_FILE"], "w") as f:
            f.write("%d\n" % master)
    print("requests=%d failed=%d signals=%d keepalive_reconnects=%d"
          % (stats["ok"], stats["fail"], hups, stats["reconnects"]))
    if stats["fail"]:
        die("failures: " + "; ".join(errors))
    if stats["ok"] < 100 or stats["reconnects"] < 1:
        die("too little traffic to mean anything")


def sockets_of(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(
                    "socket:"):
                n += 1
        except OSError:
            pass
    return n


def ready(master, errfile, pid):
    """Until the master's status (SIGUSR1) says `pid` is ready: it has
    closed the master's fds and serves, so its fd table is its own."""
    want = " pid %d generation " % pid

    def said():
        os.kill(master, signal.SIGUSR1)
        time.sleep(0.02)
        with open(errfile) as f:
            return any(want in l and " ready " in l for l in f)

    wait_for(said, 10, "worker %d to be ready" % pid)


def worker_kill(host, port, master, errfile):
    wait_for(lambda: len(children(master)) == 2, 10, "two workers")
    a, b = children(master)
    ready(master, errfile, a)
    ready(master, errfile, b)
    base = sockets_of(a)
    conns = []
    for _ in range(20):
        s = dial(host, port)
        s.sendall(REQ)
        read_response(s)
        conns.append(s)
    held = sockets_of(a) - base
    if held < 1 or held > 19:
        die("worker %d holds %d of 20 connections: cannot tell" % (a, held))
    t0 = time.monotonic()
    os.kill(a, signal.SIGKILL)
    wait_for(lambda: not alive(a), 5, "the killed worker to go")
    failed = 0
    for s in conns:
        try:
            s.sendall(REQ)
            read_response(s)
        except Exception:
            failed += 1
        s.close()
    if failed != held:
        die("%d connections failed, the killed worker held %d"
            % (failed, held))

    def replaced():
        c = children(master)
        return len(c) == 2 and a not in c

    wait_for(replaced, 10, "a new worker in the slot")
    (new,) = [p for p in children(master) if p != b]
    ready(master, errfile, new)
    base = sockets_of(new)

    # Serving again: new connections reach the new worker (reuseport
    # hashes some of them to its slot).
    def serving():
        s = dial(host, port)
        s.sendall(REQ)
        read_response(s)
        got = sockets_of(new) > base
        s.close()
        return got

    wait_for(serving, 10, "the new worker to answer")
    ms = (time.monotonic() - t0) * 1000
    if not alive(b):
        die("the other worker %d stopped" % b)
    print("killed worker held %d connections, %d failed; slot serving "
          "again %.0f ms after the kill; worker %d untouched"
          % (held, failed, ms, b))
    if ms > 2000:
        die("the slot took %.0f ms to serve again" % ms)


def master_kill(host, port, master):
    wait_for(lambda: len(children(master)) == 2, 10, "two workers")
    kids = children(master)
    s = dial(host, port)
    s.sendall(REQ)
    read_response(s)
    t0 = time.monotonic()
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: not any(alive(k) for k in kids), 5,
             "the workers to exit")
    ms = (time.monotonic() - t0) * 1000
    s.close()
    # The killed master's own exit closes its fds one by one (under TSan,
    # after tearing down its shadow memory): the workers can be gone
    # before its listener is.  Nobody else keeps the port.
    wait_for(lambda: not alive(master), 5, "the master to exit")
    # Nobody keeps the port: a new listener can have it.  Our own
    # connection's server side may linger a moment in FIN_WAIT (the
    # kernel finishes the close the dead process left); SO_REUSEADDR
    # passes only TIME_WAIT, so retry, bounded.
    def can_listen():
        t = socket.socket()
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            t.bind((host, port))
            t.listen()
            return True
        except OSError:
            return False
        finally:
            t.close()

    if not can_listen():
        try:
            wait_for(can_listen, 5, "the port to be free")
        except SystemExit:
            who = subprocess.run(["ss", "-tanpH", "sport = :%d" % port],
                                 capture_output=True, text=True,
                                 timeout=5).stdout.strip()
            die("port %d still held: %s" % (port, who))
    print("workers gone %.0f ms after the master's SIGKILL" % ms)
    # The sanitizers' exit paths are slower: 2 s there.
    if ms >= (2000 if os.environ.get("SAN") else 1000):
        die("the workers took %.0f ms to exit" % ms)


def drain(host, port, master):
    wait_for(lambda: len(children(master)) == 1, 10, "the worker")
    busy = dial(host, port)
    idle = dial(host, port)
    for s in (busy, idle):
        s.sendall(b"x")
        if s.recv(1) != b"x":
            die("no echo before the drain")
    t0 = time.monotonic()
    os.kill(master, signal.SIGQUIT)
    # Inside the deadline the busy connection keeps echoing.
    while time.monotonic() - t0 < 0.15:
        busy.sendall(b"y")
        if busy.recv(1) != b"y":
            die("echo stopped inside the drain deadline")
    busy.close()
    idle.settimeout(5)
    try:
        got = idle.recv(1)
    except ConnectionResetError:
        got = b""
    ms = (time.monotonic() - t0) * 1000
    if got != b"":
        die("idle connection got %r" % got)
    print("idle connection closed %.0f ms after SIGQUIT (deadline 300)"
          % ms)
    if ms < 250 or ms > 2500:
        die("closed at %.0f ms, want about 300" % ms)


def listen_fds(binary):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    port = ls.getsockname()[1]
    lfd = ls.fileno()
    p = subprocess.Popen(
        ["sh", "-c",
         'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --procs 2 --workers 1 '
         '--port 1', binary],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=[3],
        preexec_fn=lambda: os.dup2(lfd, 3))
    try:
        line = p.stdout.readline().decode()
        if line.strip() != "weft-echo: listening on 127.0.0.1:%d" % port:
            die("listening line %r, want port %d" % (line, port))
        ls.close()	# only the server holds it now
        for i in range(10):
            s = dial("127.0.0.1", port)
            s.sendall(b"abc")
            if s.recv(3) != b"abc":
                die("no echo on the handed socket")
            s.close()
        p.send_signal(signal.SIGQUIT)
        rc = p.wait(10)
        err = p.stderr.read().decode()
        if rc != 0:
            die("exit status %d: %s" % (rc, err))
        if "cannot listen" in err:
            die("it listened by itself: " + err)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print("served the LISTEN_FDS socket, exit 0")


mode = sys.argv[1]
if mode == "reload":
    host, port = sys.argv[2].rsplit(":", 1)
    reload_load(host, int(port), int(sys.argv[3]), float(sys.argv[4]),
                int(sys.argv[5]))
elif mode == "upgrade":
    host, port = sys.argv[2].rsplit(":", 1)
    reload_load(host, int(port), int(sys.argv[3]), float(sys.argv[4]),
                int(sys.argv[5]), signal.SIGUSR2, sys.argv[6])
elif mode == "children":
    print(len(children(int(sys.argv[2]))))
elif mode == "listen-fds":
    listen_fds(sys.argv[2])
elif mode == "worker-kill":
    host, port = sys.argv[2].rsplit(":", 1)
    worker_kill(host, int(port), int(sys.argv[3]), sys.argv[4])
else:
    host, port = sys.argv[2].rsplit(":", 1)
    {"master-kill": master_kill,
     "drain": drain}[mode](host, int(port), int(sys.argv[3]))
EOF

cases=" $* "
# want CASE: run this case?
want() {
	[ "$cases" = "  " ] || case "$cases" in *" $1 "*) ;; *) return 1 ;; esac
}

# wait_children N: until the master $pid has exactly N live children.
wait_children() {
	i=0
	while [ "$(python3 "$tmp/pf.py" children "$pid")" != "$1" ]; do
		i=$((i + 1))
		[ "$i" -lt 500 ] || fail "master $pid: not $1 children"
		sleep 0.02
	done
}

# wait_exit SECS: until the server $pid exits; its status into $rc.
wait_exit() {
	i=0
	while kill -0 "$pid" 2>/dev/null &&
	      [ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" != Z ]; do
		i=$((i + 1))
		[ "$i" -lt $(($1 * 50)) ] || fail "server $pid did not exit"
		sleep 0.02
	done
	wait "$pid"
	rc=$?
	pid=
}

for mode in shared reuseport; do
	label=reload-$mode
	want $label || continue
	flag=
	[ $mode = reuseport ] && flag=--reuseport
	start_server $label --port 0 --procs 2 --workers 1 $flag
	bounded $((reload_secs + 30)) python3 "$tmp/pf.py" reload "$addr" "$pid" \
		"$reload_secs" 200
	[ "$rc" -eq 0 ] || { cat "$tmp/err.$label"; fail "$label: $out"; }
	check_alive $label
	gens=$(grep -c "ready in" "$tmp/err.$label")
	[ "$gens" -ge 3 ] || fail "$label: only $gens generations came up"
	if grep -q -e "killed" -e "restarting" "$tmp/err.$label"; then
		cat "$tmp/err.$label"
		fail "$label: a worker was killed or died"
	fi
	# Back to two workers once the old generations drained.
	wait_children 2
	kill -QUIT "$pid"
	wait_exit 15
	[ "$rc" -eq 0 ] || fail "$label: master exit status $rc after QUIT"
	echo "PASS $name $label: $out, $gens generations"
done

label=upgrade
if want $label; then
start_server $label --port 0 --procs 2 --workers 1 --reuseport
first=$pid
MASTER_FILE=$tmp/master
export MASTER_FILE
bounded $((reload_secs + 60)) python3 "$tmp/pf.py" upgrade "$addr" "$pid" \
	"$reload_secs" 1000 "$tmp/err.$label"
[ "$rc" -eq 0 ] || { cat "$tmp/err.$label"; fail "$label: $out"; }
wait "$first"
rc=$?
[ "$rc" -eq 0 ] || fail "$label: the first master exited with $rc"
# The last master is not our child: stop it by its pid, poll its end.
pid=$(cat "$tmp/master")
kill -QUIT "$pid"
i=0
while [ -d /proc/"$pid" ] &&
      [ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" != Z ]; do
	i=$((i + 1))
	[ "$i" -lt 750 ] || fail "$label: master $pid did not stop"
	sleep 0.02
done
pid=
grep -q "keeps serving" "$tmp/err.$label" &&
	{ cat "$tmp/err.$label"; fail "$label: an upgrade failed"; }
exec 3<&-
echo "PASS $name $label: $out"
fi

label=upgrade-fail
if want $label; then
# A copy of the binary, replaced by one that exits at once once started.
cp "$bin" "$tmp/httpd-copy"
orig_bin=$bin
bin=$tmp/httpd-copy
start_server $label --port 0 --procs 1 --workers 1
printf '#!/bin/sh\nexit 3\n' >"$tmp/httpd-copy.new"
chmod +x "$tmp/httpd-copy.new"
mv "$tmp/httpd-copy.new" "$tmp/httpd-copy"
# (A USR2 while generation 1 starts waits for it; this one comes after.)
i=0
until grep -q "generation 1 ready" "$tmp/err.$label"; do
	i=$((i + 1))
	[ "$i" -lt 500 ] || { cat "$tmp/err.$label"; fail "$label: no gen 1"; }
	sleep 0.02
done
kill -USR2 "$pid"
i=0
until grep -q "binary upgrade failed" "$tmp/err.$label"; do
	i=$((i + 1))
	[ "$i" -lt 500 ] || { cat "$tmp/err.$label"; fail "$label: no report"; }
	sleep 0.02
done
grep -q "exited with status 3 before it served; generation 1 keeps serving" \
	"$tmp/err.$label" || { cat "$tmp/err.$label"; fail "$label: log"; }
check_alive $label
bounded 10 python3 - "$addr" <<'PYEOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
sys.exit(0 if b"Hello, world" in s.recv(4096) else 1)
PYEOF
[ "$rc" -eq 0 ] || fail "$label: the old master no longer serves"
kill -QUIT "$pid"
wait_exit 15
[ "$rc" -eq 0 ] || fail "$label: master exit status $rc"
exec 3<&-
bin=$orig_bin
echo "PASS $name $label: the old master kept serving"
fi

label=worker-kill
if want $label; then
start_server $label --port 0 --procs 2 --workers 1 --reuseport
bounded 40 python3 "$tmp/pf.py" worker-kill "$addr" "$pid" "$tmp/err.$label"
[ "$rc" -eq 0 ] || { cat "$tmp/err.$label"; fail "$label: $out"; }
grep -q "was killed by signal 9 (Killed); restarting in 100 ms" \
	"$tmp/err.$label" || { cat "$tmp/err.$label"; fail "$label: log"; }
check_alive $label
stop_server
echo "PASS $name $label: $out"
fi

label=master-kill
if want $label; then
start_server $label --port 0 --procs 2 --workers 1
bounded 20 python3 "$tmp/pf.py" master-kill "$addr" "$pid"
[ "$rc" -eq 0 ] || { cat "$tmp/err.$label"; fail "$label: $out"; }
wait "$pid" 2>/dev/null
pid=
exec 3<&-
echo "PASS $name $label: $out"
fi

label=crash-loop
if want $label; then
# The workers' runtime refuses the backend; the master never reads it.
WEFT_IO=bogus
export WEFT_IO
start_server $label --port 0 --procs 1 --workers 1
unset WEFT_IO
wait_exit 20
[ "$rc" -eq 1 ] || { cat "$tmp/err.$label"; fail "$label: exit $rc"; }
for want in "cannot start the runtime: Invalid argument" \
	"before it was ready; restarting in 100 ms" \
	"restarting in 800 ms" \
	"generation 1 never became ready: the child of slot 0 died 5 times at start-up (last exited with status 70); stopping"; do
	grep -q "$want" "$tmp/err.$label" ||
		{ cat "$tmp/err.$label"; fail "$label: no '$want'"; }
done
exec 3<&-
echo "PASS $name $label: exit 1, backoff 100..800 ms in the log"
fi

bin=$echo_bin
prog=weft-echo
label=drain
if want $label; then
start_server $label --port 0 --procs 1 --workers 1 --drain-ms 300
bounded 20 python3 "$tmp/pf.py" drain "$addr" "$pid"
[ "$rc" -eq 0 ] || { cat "$tmp/err.$label"; fail "$label: $out"; }
wait_exit 10
[ "$rc" -eq 0 ] || fail "$label: master exit status $rc"
exec 3<&-
echo "PASS $name $label: $out"
fi

label=reload-nofile
if want $label && command -v prlimit >/dev/null 2>&1; then
start_server $label --port 0 --procs 1 --workers 1
cat >"$tmp/echo1.py" <<'PYEOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b"ping")
sys.exit(0 if s.recv(4) == b"ping" else 1)
PYEOF
wait_children 1
old_limit=$(prlimit --pid "$pid" --nofile --output SOFT --noheadings)
prlimit --pid "$pid" --nofile=4: || fail "$label: prlimit"
kill -HUP "$pid"
i=0
until grep -q "cannot fork a child for slot 0: Too many open files" \
	"$tmp/err.$label"; do
	i=$((i + 1))
	[ "$i" -lt 500 ] || { cat "$tmp/err.$label"; fail "$label: no report"; }
	sleep 0.02
done
bounded 10 python3 "$tmp/echo1.py" "$addr"
[ "$rc" -eq 0 ] || fail "$label: the old generation stopped echoing"
grep -q "generation 2 ready" "$tmp/err.$label" &&
	fail "$label: generation 2 started without fds"
prlimit --pid "$pid" --nofile="$old_limit": || fail "$label: prlimit back"
i=0
until grep -q "generation 2 ready" "$tmp/err.$label"; do
	i=$((i + 1))
	[ "$i" -lt 1000 ] || { cat "$tmp/err.$label"; fail "$label: no gen 2"; }
	sleep 0.02
done
bounded 10 python3 "$tmp/echo1.py" "$addr"
[ "$rc" -eq 0 ] || fail "$label: generation 2 does not echo"
check_alive $label
kill -QUIT "$pid"
wait_exit 15
[ "$rc" -eq 0 ] || fail "$label: master exit status $rc"
exec 3<&-
echo "PASS $name $label: refused for want of fds, old generation served," \
	"reload done once the limit came back"
fi

label=listen-fds
if want $label; then
bounded 30 python3 "$tmp/pf.py" listen-fds "$echo_bin"
[ "$rc" -eq 0 ] || fail "$label: $out"
echo "PASS $name $label: $out"
fi

want errors || exit 0
bounded 10 "$echo_bin" --reuseport
[ "$rc" -eq 2 ] || fail "errors: --reuseport alone: exit $rc ($out)"
case "$out" in
*"need --procs"*) ;;
*) fail "errors: --reuseport alone said '$out'" ;;
esac
echo "PASS $name errors"
exit 0

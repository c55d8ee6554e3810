# SPDX-License-Identifier: MIT
#
# The clients and backends of tests/e2e/proxy_data.sh (which says what
# each case checks).  `python3 proxy_data.py CASE BIN TMP` runs one case
# against a fresh weft-proxy (BIN) that it starts itself, because every
# case needs its backend's port before the proxy can start; it prints
# one detail line and exits 0, or prints the failure and exits 1.  The
# proxy is stopped by its pid (SIGTERM to the master) on every path.
import hashlib
import os
import resource
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from procfs import alive, children  # noqa: E402

CASE, BIN, TMP = sys.argv[1], sys.argv[2], sys.argv[3]
SAN = os.environ.get("SAN", "")
MIB = 1 << 20
# Sanitizers are slower: bounds that are about time grow there.
SLOW = 3 if SAN else 1


class Fail(Exception):
    pass


def die(msg):
    raise Fail(msg)


def wait_for(cond, secs, what):
    end = time.monotonic() + secs * SLOW
    while not cond():
        if time.monotonic() > end:
            die("timed out waiting for " + what)
        time.sleep(0.005)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    die("no VmRSS for %d" % pid)


def fd_kinds(pid):
    kinds = {"socket": 0, "pipe": 0, "other": 0}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        k = t.split(":", 1)[0]
        kinds[k if k in kinds else "other"] += 1
    return kinds


class Proxy:
    """A weft-proxy master (--procs 1) and its one child; a `conf` text
    must have `admin 127.0.0.1:0;` in its global block."""

    def __init__(self, upstreams=None, conf=None, log=False, extra=(),
                 workers=1):
        self.err = os.path.join(TMP, "err.%s" % CASE)
        self.log = os.path.join(TMP, "access.%s" % CASE) if log else None
        if conf is not None:
            path = os.path.join(TMP, "%s.conf" % CASE)
            with open(path, "w") as f:
                f.write(conf)
            args = [BIN, "-c", path, "--procs", "1", "--workers", str(workers)]
        else:
            args = [BIN, "--listen", "127.0.0.1:0", "--upstream",
                    ",".join("127.0.0.1:%d" % p for p in upstreams),
                    "--procs", "1", "--workers", str(workers)]
            if log:
                args += ["--access-log", self.log]
            args += ["--admin", "127.0.0.1:0"]
        args += list(extra)
        if log:
            open(self.log, "w").close()
        self.errf = open(self.err, "w")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE,
                                  stderr=self.errf)
        self.pid = self.p.pid
        self.outbuf = b""
        line = self.line()
        want = "weft-proxy: listening on "
        if not line.startswith(want):
            self.stop(check=False)
            die("no 'listening on' line (got %r): %s"
                % (line, open(self.err).read()))
        host, port = line[len(want):].strip().rsplit(":", 1)
        self.addr = (host, int(port))
        line = self.line()
        want = "weft-proxy: admin on "
        if not line.startswith(want):
            self.stop(check=False)
            die("no 'admin on' line (got %r)" % line)
        host, port = line[len(want):].strip().rsplit(":", 1)
        self.admin = (host, int(port))
        wait_for(lambda: len(children(self.pid)) == 1, 10, "the child")
        self.child = children(self.pid)[0]

    def dial(self, timeout=10):
        s = socket.create_connection(self.addr, timeout=timeout * SLOW)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def line(self):
        """The master's next stdout line ("" after 10 s or at EOF)."""
        fd = self.p.stdout.fileno()
        end = time.monotonic() + 10 * SLOW
        while b"\n" not in self.outbuf:
            left = end - time.monotonic()
            r, _, _ = select.select([fd], [], [], max(left, 0))
            b = os.read(fd, 4096) if r else b""
            if not b:
                return ""
            self.outbuf += b
        line, self.outbuf = self.outbuf.split(b"\n", 1)
        return line.decode() + "\n"

    def metric(self, name):
        """The value of one Prometheus sample ('name{labels}') now."""
        s = socket.create_connection(self.admin, timeout=10 * SLOW)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n"
                  b"Connection: close\r\n\r\n")
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
        s.close()
        for line in buf.decode().split("\n"):
            if line.startswith(name + " "):
                return float(line.split()[-1])
        die("no metric %s in: %s" % (name, buf[:2000]))

    def check(self):
        """Still running, same child, no sanitizer report."""
        with open(self.err) as f:
            err = f.read()
        if "Sanitizer" in err or "runtime error:" in err:
            die("sanitizer finding:\n" + err)
        if self.p.poll() is not None:
            die("the master died (status %s): %s" % (self.p.returncode, err))
        if not alive(self.child) or children(self.pid) != [self.child]:
            die("the child %d died or was replaced: %s" % (self.child, err))

    def log_ends(self, n, secs=5):
        """The end= fields of the first n access log lines (waits)."""
        def lines():
            with open(self.log) as f:
                return [l for l in f.read().split("\n") if l]

        wait_for(lambda: len(lines()) >= n, secs,
                 "%d access log lines in %s" % (n, self.log))
        return [l.rsplit("end=", 1)[1] for l in lines()]

    def stop(self, check=True):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15 * SLOW)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                if check:
                    die("the master ignored SIGTERM for 15 s")
        self.errf.close()
        if check:
            with open(self.err) as f:
                err = f.read()
            if "Sanitizer" in err or "runtime error:" in err:
                die("sanitizer finding:\n" + err)
            if self.p.returncode != 0:
                die("master exit status %d after SIGTERM: %s"
                    % (self.p.returncode, err))


class Backend:
    """A listener whose connections each get handler(sock) in a thread."""

    def __init__(self, handler, rcvbuf=0, backlog=128):
        self.ls = socket.socket()
        if rcvbuf:
            self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(backlog)
        self.port = self.ls.getsockname()[1]
        self.handler = handler
        self.errors = []
        self.threads = []
        t = threading.Thread(target=self.loop, daemon=True)
        t.start()

    def loop(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            c.settimeout(30 * SLOW)
            t = threading.Thread(target=self.run, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def run(self, c):
        try:
            self.handler(c)
        except Exception as e:
            self.errors.append(repr(e))
        finally:
            c.close()

    def join(self, n, secs=30):
        wait_for(lambda: len(self.threads) >= n, secs,
                 "%d backend connections" % n)
        for t in self.threads:
            t.join(secs * SLOW)
            if t.is_alive():
                die("a backend connection did not finish")
        if self.errors:
            die("backend: " + "; ".join(self.errors[:5]))


class EchoServer:
    """An echo backend for many connections: one thread, selectors."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4096)
        self.ls.setblocking(False)
        self.port = self.ls.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.ls, selectors.EVENT_READ)
        self.conns = 0
        t = threading.Thread(target=self.loop, daemon=True)
        t.start()

    def loop(self):
        while True:
            for key, _ in self.sel.select():
                s = key.fileobj
                if s is self.ls:
                    try:
                        c, _ = s.accept()
                    except BlockingIOError:
                        continue
                    c.setblocking(False)
                    self.conns += 1
                    self.sel.register(c, selectors.EVENT_READ)
                    continue
                try:
                    b = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    b = b""
                if not b:
                    self.sel.unregister(s)
                    s.close()
                    self.conns -= 1
                    continue
                s.setblocking(True)	# small answers: never blocks long
                s.sendall(b)
                s.setblocking(False)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            die("EOF after %d of %d bytes" % (len(buf), n))
        buf += b
    return buf


def send_stream(s, data, chunk=256 << 10):
    mv = memoryview(data)
    for i in range(0, len(data), chunk):
        s.sendall(mv[i:i + chunk])


def recv_hash(s):
    """Read to EOF: (bytes, sha256 hex)."""
    h = hashlib.sha256()
    n = 0
    while True:
        b = s.recv(1 << 20)
        if not b:
            return n, h.hexdigest()
        h.update(b)
        n += len(b)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


# ---- 1. payload ----

def payload_sizes():
    big = 16 * MIB if SAN else 64 * MIB
    return [0, 1, 100 << 10, 8 * MIB, big]


def payload_run(proxy):
    sizes = payload_sizes()
    out = []
    errs = []

    def client(n):
        try:
            data = os.urandom(n)
            s = proxy.dial(60)
            got = {}
            t = threading.Thread(target=lambda: got.update(r=recv_hash(s)))
            t.start()
            send_stream(s, data)
            s.shutdown(socket.SHUT_WR)
            t.join(120 * SLOW)
            if t.is_alive():
                errs.append("client %d: no EOF from the proxy" % n)
                return
            s.close()
            out.append((n, sha(data), got["r"]))
        except Exception as e:
            errs.append("client %d: %r" % (n, e))

    ts = [threading.Thread(target=client, args=(n,)) for n in sizes]
    for t in ts:
        t.start()
    for t in ts:
        t.join(180 * SLOW)
    if errs:
        die("; ".join(errs))
    return out


def payload():
    t0 = time.monotonic()
    sizes = payload_sizes()
    lock = threading.Lock()
    back = []

    def handler(c):
        # The backend's sizes: the client's in reverse, by accept order.
        with lock:
            n = sizes[len(sizes) - 1 - handler.n % len(sizes)]
            handler.n += 1
        data = os.urandom(n)
        got = {}
        t = threading.Thread(target=lambda: got.update(r=recv_hash(c)))
        t.start()
        send_stream(c, data)
        c.shutdown(socket.SHUT_WR)
        t.join(120 * SLOW)
        with lock:
            back.append((got["r"], (n, sha(data))))
    handler.n = 0

    detail = []
    for mode in ("auto", "off"):
        b = Backend(handler)
        back.clear()
        handler.n = 0
        if mode == "auto":
            px = Proxy([b.port])
        else:
            # Two worker threads this time.
            px = Proxy(workers=2,
                       conf="global { splice off; admin 127.0.0.1:0; }\n"
                       "pool p { server a 127.0.0.1:%d; }\n"
                       "listen l { bind 127.0.0.1:0; pool p; }\n" % b.port)
        try:
            out = payload_run(px)
            b.join(len(sizes))
            # Splice auto took pipes for the large transfers (they stay
            # in the free list); splice off never does.
            pipes = px.metric("weft_proxy_pipes")
            if (pipes > 0) != (mode == "auto"):
                die("splice %s: weft_proxy_pipes %d after the transfers"
                    % (mode, pipes))
            px.check()
        finally:
            px.stop()
        # Each connection: client sent == backend received and backend
        # sent == client received, matched as pairs.
        cl = sorted(((n, h), r) for n, h, r in out)
        bk = sorted(back)
        if cl != bk:
            die("splice %s: hashes differ:\nclient (sent, got) %r\n"
                "backend (got, sent) %r" % (mode, cl, bk))
        detail.append("splice %s (%d pipes)" % (mode, pipes))
    print("sizes %s both ways at once, sha256 equal, %s; %.1fs"
          % ("/".join(str(n) for n in sizes), " and ".join(detail),
             time.monotonic() - t0))


# ---- 2. half-close ----

def half_close():
    t0 = time.monotonic()
    req = os.urandom(300 << 10)	# past the splice threshold
    ans = os.urandom(200 << 10)
    seen = {}

    def client_first(c):
        n, h = recv_hash(c)	# to the client's FIN
        seen["got"] = (n, h)
        send_stream(c, ans)
        c.shutdown(socket.SHUT_WR)

    b = Backend(client_first)
    px = Proxy([b.port])
    try:
        s = px.dial()
        send_stream(s, req)
        s.shutdown(socket.SHUT_WR)
        n, h = recv_hash(s)
        s.close()
        b.join(1)
        if seen["got"] != (len(req), sha(req)):
            die("client half-close: backend got %r before EOF" % (seen,))
        if (n, h) != (len(ans), sha(ans)):
            die("client half-close: client got %d bytes of %d" %
                (n, len(ans)))

        # The reverse: the server half-closes first, the client goes on.
        def server_first(c):
            send_stream(c, ans)
            c.shutdown(socket.SHUT_WR)
            seen["rev"] = recv_hash(c)

        b2 = Backend(server_first)
        px.stop()
        px = Proxy([b2.port])
        s = px.dial()
        n, h = recv_hash(s)	# the server's FIN reaches us
        if (n, h) != (len(ans), sha(ans)):
            die("server half-close: client got %d of %d bytes" %
                (n, len(ans)))
        send_stream(s, req)	# still open this way
        s.shutdown(socket.SHUT_WR)
        b2.join(1)
        if seen["rev"] != (len(req), sha(req)):
            die("server half-close: backend then got %d of %d bytes"
                % (seen["rev"][0], len(req)))
        if s.recv(1) != b"":
            die("server half-close: bytes after EOF")
        s.close()

        # A half-closed session whose server never answers, cut by the
        # stop (SIGTERM: 1 s of drain, then cancelled): both directions
        # must end before the session goes (stop() checks the exit
        # status and the sanitizers' reports).
        got = threading.Event()
        done = threading.Event()

        def silent(c):
            recv_hash(c)
            got.set()
            done.wait(30 * SLOW)	# open, silent, until the proxy is gone

        b3 = Backend(silent)
        px.stop()
        px = Proxy([b3.port])
        s = px.dial()
        s.sendall(b"half")
        s.shutdown(socket.SHUT_WR)
        if not got.wait(10 * SLOW):
            die("cut: the backend never saw the FIN")
        px.check()
        px.stop()
        done.set()
        if s.recv(1) != b"":
            die("cut: bytes from a silent server")
        s.close()
    finally:
        px.stop()
    print("client FIN then answer, and server FIN then client data: all "
          "bytes, EOF both ways; a half-closed session cut by SIGTERM "
          "ends cleanly; %.1fs" % (time.monotonic() - t0))


# ---- 3. upstream refused ----

def refused():
    t0 = time.monotonic()
    dead = socket.socket()	# bound, never listening: connect -> RST
    dead.bind(("127.0.0.1", 0))
    dport = dead.getsockname()[1]
    px = Proxy([dport], log=True)
    seen = set()
    try:
        for i in range(5):
            s = px.dial()
            s.sendall(b"hello")
            t = time.monotonic()
            try:
                b = s.recv(100)
                what = "EOF" if b == b"" else None
                if b:
                    die("refused: got %r from a dead upstream" % b)
            except ConnectionResetError:
                what = "reset"
            ms = (time.monotonic() - t) * 1000
            if ms > 1000 * SLOW:
                die("refused: closed after %.0f ms" % ms)
            seen.add(what)
            s.close()
        ends = px.log_ends(5)
        if set(ends) != {"connect_failed"}:
            die("refused: access log ends %r" % ends)
        n = px.metric('weft_proxy_server_connect_errors_total{pool="main",'
                      'server="s1",cause="refused"}')
        if n != 5:
            die("refused: %d refused connects counted, want 5" % n)
        px.check()
    finally:
        px.stop()

    b = EchoServer()
    px = Proxy([dport, b.port, dport])
    try:
        for i in range(30):
            s = px.dial()
            msg = b"ping%d" % i
            s.sendall(msg)
            if recv_exact(s, len(msg)) != msg:
                die("retry: wrong echo")
            s.close()
        px.check()
    finally:
        px.stop()
    dead.close()
    print("dead upstream: client sees %s at once, end=connect_failed, 5 refused "
          "connects counted, "
          "proxy alive; dead,live,dead: 30/30 connections served; %.1fs"
          % ("/".join(sorted(seen)), time.monotonic() - t0))


# ---- 4. reset mid-stream ----

def reset():
    t0 = time.monotonic()
    detail = []
    for size in (1000, 300 << 10):
        data = os.urandom(size)
        go = threading.Event()
        seen = {}

        def server_resets(c):
            c.sendall(data)
            if not go.wait(20 * SLOW):
                raise Fail("the client never got the bytes")
            rst_close(c)

        b = Backend(server_resets)
        # Two worker threads: the directions of a session may end on
        # different threads (down_main cancels the handler on a reset).
        px = Proxy([b.port], log=True, workers=2)
        try:
            s = px.dial()
            got = recv_exact(s, size)
            if got != data:
                die("reset: the bytes before the reset differ")
            go.set()
            try:
                b2 = s.recv(100)
                die("server reset: the client saw %s, not a reset"
                    % ("a clean EOF" if b2 == b"" else "%r" % b2))
            except ConnectionResetError:
                pass
            s.close()
            b.join(1)

            # The reverse: the client resets, the backend sees a reset.
            def client_resets(c):
                recv_exact(c, size)
                go.set()
                try:
                    b3 = c.recv(100)
                    seen["r"] = "EOF" if b3 == b"" else repr(b3)
                except ConnectionResetError:
                    seen["r"] = "reset"

            go.clear()
            b.handler = client_resets
            s = px.dial()
            s.sendall(data)
            if not go.wait(20 * SLOW):
                die("client reset: the backend never got the bytes")
            rst_close(s)
            b.join(2)
            if seen.get("r") != "reset":
                die("client reset: the backend saw %s" % seen.get("r"))
            ends = px.log_ends(2)
            if ends[:2] != ["server_reset", "client_reset"]:
                die("reset: access log ends %r" % ends)

            # 40 at once, unsynchronised: the backend writes and resets
            # at once (the kernel may drop what it had not sent); every
            # client must still end with a reset, never a clean EOF.
            def quick_reset(c):
                c.sendall(data)
                rst_close(c)

            b.handler = quick_reset
            res = []

            def client():
                s = None
                try:
                    # The reset can come before connect() has returned.
                    s = px.dial()
                    while s.recv(1 << 16):
                        pass
                    res.append("EOF")
                except ConnectionResetError:
                    res.append("reset")
                except Exception as e:
                    res.append(repr(e))
                if s:
                    s.close()

            ts = [threading.Thread(target=client) for _ in range(40)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30 * SLOW)
            if res != ["reset"] * 40:
                die("reset: 40 quick resets ended %r" %
                    {r: res.count(r) for r in set(res)})
            b.join(42)
            ends = px.log_ends(42)[2:]
            if ends != ["server_reset"] * 40:
                die("reset: 40 quick resets logged %r" %
                    {r: ends.count(r) for r in set(ends)})
            px.check()
        finally:
            px.stop()
        detail.append("%d B" % size)
    print("after %s: client gets ECONNRESET, backend gets ECONNRESET; log "
          "server_reset/client_reset; 40 quick resets at once all reach "
          "their clients as resets (2 workers); %.1fs"
          % (" and ".join(detail), time.monotonic() - t0))


# ---- 5. slow reader ----

def stall(px, w, r, data, what):
    """Write data on w while nobody reads r: w must block before the end
    with the proxy child's RSS bounded; then r reads it all.  Returns
    (MiB written when blocked, MiB the RSS grew)."""
    total = len(data)
    base = rss_kib(px.child)
    w.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
    w.setblocking(False)
    sent = 0
    mv = memoryview(data)
    # Until the writer is blocked: not writable for a whole second
    # (nobody reads, so it cannot become writable again).
    while True:
        try:
            sent += w.send(mv[sent:sent + (1 << 20)])
            if sent == total:
                die("%s: all %d MiB went in while nobody read"
                    % (what, total >> 20))
            continue
        except BlockingIOError:
            pass
        _, ok, _ = select.select([], [w], [], 1.0)
        if not ok:
            break
    peak = base
    for _ in range(5):
        peak = max(peak, rss_kib(px.child))
    grown = (peak - base) / 1024
    if grown > 16:
        die("%s: proxy RSS grew %.1f MiB (%d -> %d KiB) while the writer "
            "was blocked" % (what, grown, base, peak))
    got = {}
    t = threading.Thread(target=lambda: got.update(r=recv_hash(r)))
    t.start()
    w.setblocking(True)
    w.settimeout(60 * SLOW)
    w.sendall(mv[sent:])
    w.shutdown(socket.SHUT_WR)
    t.join(60 * SLOW)
    if got.get("r") != (total, sha(data)):
        die("%s: the reader got %r of %d bytes, hash %s" %
            (what, got.get("r", (None,))[0], total,
             "ok" if got.get("r", (0, ""))[1] == sha(data) else "differs"))
    return sent / MIB, grown


def slow_reader():
    t0 = time.monotonic()
    total = 64 * MIB
    data = os.urandom(total)
    held = {}
    accepted = threading.Event()
    done = threading.Event()

    def hold(c):
        held["c"] = c
        accepted.set()
        if not done.wait(120 * SLOW):
            raise Fail("never finished")

    b = Backend(hold, rcvbuf=64 << 10)
    px = Proxy([b.port])
    detail = []
    try:
        for what in ("client -> server", "server -> client"):
            accepted.clear()
            done.clear()
            s = px.dial()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            if not accepted.wait(10 * SLOW):
                die("slow-reader: the backend got no connection")
            c = held["c"]
            if what == "client -> server":
                blocked, grown = stall(px, s, c, data, what)
            else:
                blocked, grown = stall(px, c, s, data, what)
            done.set()
            s.close()
            detail.append("%s blocked after %.1f of %d MiB, RSS +%.1f MiB"
                          % (what, blocked, total >> 20, grown))
        b.join(2)
        px.check()
    finally:
        done.set()
        px.stop()
    print("%s; then all read, sha256 equal; %.1fs"
          % ("; ".join(detail), time.monotonic() - t0))


# ---- 6. blackhole ----

def blackhole():
    t0 = time.monotonic()
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1)
    hport = hole.getsockname()[1]
    # Fill its accept queue (backlog 1 holds 2 on Linux) until a connect
    # no longer completes: from then on its SYNs are dropped.
    fill = []
    while True:
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", hport))
        except BlockingIOError:
            pass
        fill.append(c)
        _, w, _ = select.select([], [c], [], 0.5)
        if not w:
            break
        if len(fill) > 16:
            die("blackhole: the queue never filled")
    px = Proxy(conf="pool p { server a 127.0.0.1:%d; connect_timeout 300ms;"
               " retries 0; }\nlisten l { bind 127.0.0.1:0; pool p; }\n"
               "global { access_log %s; admin 127.0.0.1:0; }\n"
               % (hport, os.path.join(TMP, "access.%s" % CASE)), log=True)
    try:
        s = px.dial()
        t = time.monotonic()
        try:
            b = s.recv(100)
            what = "EOF"
            if b:
                die("blackhole: got %r" % b)
        except ConnectionResetError:
            what = "reset"
        ms = (time.monotonic() - t) * 1000
        s.close()
        if ms > 3000 or ms < 250:
            die("blackhole: closed after %.0f ms (timeout 300 ms)" % ms)
        ends = px.log_ends(1)
        if ends != ["connect_failed"]:
            die("blackhole: access log ends %r" % ends)
        to = px.metric('weft_proxy_server_connect_errors_total{pool="p",'
                       'server="a",cause="timeout"}')
        if to != 1:
            die("blackhole: %d connect timeouts counted, want 1" % to)
        px.check()
    finally:
        px.stop()
        for c in fill:
            c.close()
        hole.close()
    print("SYNs dropped: client %s after %.0f ms (connect_timeout 300ms), "
          "end=connect_failed, 1 timeout counted; %.1fs" % (what, ms, time.monotonic() - t0))


# ---- 7. slowloris ----

def slowloris():
    t0 = time.monotonic()
    nslow, nfast = 200, 20
    bound = 200 * SLOW
    secs = 2.0
    b = EchoServer()
    px = Proxy([b.port])
    try:
        slow = [px.dial() for _ in range(nslow)]
        for s in slow:
            s.setblocking(False)
        stop = time.monotonic() + secs
        lat = []
        errs = []
        lock = threading.Lock()

        def fast():
            try:
                s = px.dial()
                mine = []
                i = 0
                while time.monotonic() < stop:
                    msg = b"%08d" % i * 8
                    t = time.monotonic()
                    s.sendall(msg)
                    if recv_exact(s, len(msg)) != msg:
                        raise Fail("wrong echo")
                    mine.append(time.monotonic() - t)
                    i += 1
                s.close()
                with lock:
                    lat.extend(mine)
            except Exception as e:
                with lock:
                    errs.append(repr(e))

        ts = [threading.Thread(target=fast) for _ in range(nfast)]
        for t in ts:
            t.start()
        ticks = 0
        while time.monotonic() < stop:
            for s in slow:
                s.send(b"x")
                try:
                    s.recv(4096)	# drain the echoes
                except BlockingIOError:
                    pass
            ticks += 1
            time.sleep(0.2)	# the slowloris pace, not a synchronisation
        for t in ts:
            t.join(30 * SLOW)
        if errs:
            die("slowloris: %d normal clients failed: %s"
                % (len(errs), "; ".join(errs[:3])))
        lat.sort()
        p99 = lat[int(len(lat) * 0.99)] * 1000
        if p99 > bound:
            die("slowloris: p99 %.1f ms > %d ms" % (p99, bound))
        for s in slow:
            s.close()
        px.check()
    finally:
        px.stop()
    print("%d slow clients (%d bytes each), %d normal: %d round trips, "
          "p50 %.2f ms, p99 %.2f ms (bound %d), max %.1f ms; %.1fs"
          % (nslow, ticks, nfast, len(lat), lat[len(lat) // 2] * 1000, p99,
             bound, lat[-1] * 1000, time.monotonic() - t0))


# ---- 8. idle ----

def idle():
    t0 = time.monotonic()
    n = 2000 if SAN else 10000
    need = 2 * n + 1000
    note = ""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (max(soft, need), max(hard, need)))
    except (ValueError, OSError):
        # Without CAP_SYS_RESOURCE the hard limit stays: the proxy child
        # (which raises its soft limit to it) needs 2 fds a connection,
        # and so does this process (clients and backend).
        if hard < need:
            n = (hard - 1000) // 2
            note = " (RLIMIT_NOFILE hard limit %d: %d only)" % (hard, n)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = EchoServer()
    px = Proxy([b.port])	# inherits the raised limit
    try:
        s = px.dial()
        s.sendall(b"warm")
        recv_exact(s, 4)
        base_rss = rss_kib(px.child)
        base_fd = fd_kinds(px.child)
        conns = [s]
        for i in range(n - 1):
            s = px.dial()
            s.sendall(b"r%07d" % i)
            if recv_exact(s, 8) != b"r%07d" % i:
                die("idle: wrong echo on connection %d" % i)
            conns.append(s)
        kinds = fd_kinds(px.child)
        rss = rss_kib(px.child)
        socks = kinds["socket"] - base_fd["socket"]
        if socks > 2 * n or kinds["socket"] > 2 * n + 16:
            die("idle: %d sockets in the child for %d connections (%r)"
                % (kinds["socket"], n, kinds))
        if kinds["pipe"] > 2 * 256 or kinds["other"] > 64:
            die("idle: the child holds %r fds" % kinds)
        total_fd = sum(kinds.values())
        for i in range(0, n, n // 100):
            s = conns[i]
            s.sendall(b"again!")
            if recv_exact(s, 6) != b"again!":
                die("idle: connection %d no longer echoes" % i)
        for s in conns:
            s.close()
        px.check()
    finally:
        px.stop()
    print("%d idle connections%s: child fds %d (%d sockets, %d pipes, %d "
          "other; 2 per connection + %d), RSS %d -> %d KiB = %.0f B per "
          "idle connection; a sample of 100 still echoes; %.1fs"
          % (n, note, total_fd, kinds["socket"], kinds["pipe"], kinds["other"],
             total_fd - 2 * n, base_rss, rss,
             (rss - base_rss) * 1024.0 / n, time.monotonic() - t0))


def on_term(sig, frame):
    sys.exit(1)


signal.signal(signal.SIGTERM, on_term)
try:
    {"payload": payload, "half-close": half_close, "refused": refused,
     "reset": reset, "slow-reader": slow_reader, "blackhole": blackhole,
     "slowloris": slowloris, "idle": idle}[CASE]()
except Fail as e:
    print(e)
    sys.exit(1)

# SPDX-License-Identifier: MIT
#
# The clients, backends and checks of tests/e2e/proxy_ops.sh (run by it,
# one case per run: python3 lib/proxy_ops.py CASE BIN TMPDIR).  Starts the
# proxy itself (its "listening on" lines read from a pipe, no polling),
# stops it and every backend by its pid in a finally, bounds every wait.
# Prints "ok CASE (detail)" or "FAIL ..." and exits 1.
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procfs import alive, children  # noqa: E402

SAN = os.environ.get("SAN", "")
# Time bounds stretch under the sanitizers (never the behaviour asked).
SLOW = 4.0 if SAN else 1.0
HOST = "127.0.0.1"
CASE = sys.argv[1]
BIN = sys.argv[2]
TMP = sys.argv[3]


class Fail(Exception):
    pass


def die(msg):
    raise Fail(msg)


def wait_for(cond, secs, what, step=0.01):
    """Poll cond() until true; die after secs (scaled)."""
    end = time.monotonic() + secs * SLOW
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            die("timed out (%.1f s) waiting for %s" % (secs * SLOW, what))
        time.sleep(step)


def signal_exit(sig, frame):
    raise SystemExit(1)


signal.signal(signal.SIGTERM, signal_exit)

# ---- backends ----


class Backend:
    """A TCP server on loopback, one thread per connection.

    mode "name": each line "x\\n" is answered "NAME:x\\n" (request /
    response, the answer says which backend); "raw": everything received
    is recorded per connection, each "\\n" answered "ok\\n"; "pong": a
    health check target answering `reply` to whatever it gets."""

    def __init__(self, name, mode="name", port=0, reply=b"PONG\r\n"):
        self.name = name
        self.mode = mode
        self.reply = reply
        self.accepted = 0
        self.records = []	# raw mode: bytes of each ended connection
        self.lock = threading.Lock()
        self.conns = []
        self.ls = None
        self.port = port
        self.start()

    def start(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((HOST, self.port))
        ls.listen(128)
        self.port = ls.getsockname()[1]
        self.ls = ls
        self.stopping = False
        self.thr = threading.Thread(target=self.accept_loop, args=(ls,),
                                    daemon=True)
        self.thr.start()

    def accept_loop(self, ls):
        while not self.stopping:
            r, _, _ = select.select([ls], [], [], 0.05)
            if not r or self.stopping:
                continue
            try:
                c, _ = ls.accept()
            except OSError:
                continue
            with self.lock:
                self.accepted += 1
                self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        got = b""
        buf = b""
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                got += b
                if self.mode == "pong":
                    c.sendall(self.reply)
                    continue
                buf += b
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if self.mode == "name":
                        c.sendall(self.name.encode() + b":" + line + b"\n")
                    else:
                        c.sendall(b"ok\n")
        except OSError:
            pass
        finally:
            with self.lock:
                self.records.append(got)
                if c in self.conns:
                    self.conns.remove(c)
            c.close()

    def stop(self):
        """Close the listener (connects are refused from now on)."""
        self.stopping = True
        self.thr.join()
        self.ls.close()

    def close_all(self):
        with self.lock:
            cs = list(self.conns)
        for c in cs:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ---- the proxy ----

class Proxy:
    def __init__(self, args, label):
        self.err = os.path.join(TMP, "err." + label)
        self.errf = open(self.err, "w")
        self.p = subprocess.Popen([BIN] + args, stdout=subprocess.PIPE,
                                  stderr=self.errf)
        self.pid = self.p.pid
        self.listen = []
        self.admin = None
        want = args.count("--listen")
        cfg = None
        if "-c" in args:
            with open(args[args.index("-c") + 1]) as f:
                cfg = f.read()
            want = len(re.findall(r"^\s*listen\s", cfg, re.M))
        want_admin = "--admin" in args or (cfg and re.search(
            r"^\s*admin\s", cfg, re.M))
        end = time.monotonic() + 10 * SLOW
        buf = b""
        while len(self.listen) < want or (want_admin and not self.admin):
            left = end - time.monotonic()
            r, _, _ = select.select([self.p.stdout], [], [], max(left, 0))
            if not r:
                self.stop()
                die("no listening lines from the proxy: %s" % self.log())
            b = os.read(self.p.stdout.fileno(), 4096)
            if not b:
                self.stop()
                die("the proxy exited at start: %s" % self.log())
            buf += b
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.decode()
                m = re.match(r"weft-proxy: (listening|admin) on (.*):(\d+)$",
                             line)
                if not m:
                    die("unexpected line %r" % line)
                a = (m.group(2), int(m.group(3)))
                if m.group(1) == "admin":
                    self.admin = a
                else:
                    self.listen.append(a)

    def log(self):
        with open(self.err) as f:
            return f.read()

    def log_count(self, s):
        return self.log().count(s)

    def children(self):
        return children(self.pid)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, secs=10):
        """Signal the master, wait for its exit; its status."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(secs * SLOW)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                die("the proxy did not exit after signal %d" % sig)
        self.errf.close()
        return self.p.returncode

    def metrics(self, idx=None):
        return parse_prom(http_get(self.admin, "/metrics"))

    def status(self):
        return json.loads(http_get(self.admin, "/status"))


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


def http_get(addr, path):
    s = socket.create_connection(addr, timeout=5 * SLOW)
    s.sendall(("GET %s HTTP/1.0\r\n\r\n" % path).encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.0 200 "):
        die("GET %s: %r" % (path, head[:60]))
    m = re.search(rb"Content-Length: (\d+)", head)
    if not m or int(m.group(1)) != len(body):
        die("GET %s: Content-Length does not match the body" % path)
    return body.decode()


# ---- a strict Prometheus text format (0.0.4) parser ----

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_value(v, where):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)",
                        v):
        die("%s: bad value %r" % (where, v))
    return float(v)


def parse_labels(s, where):
    """s is what is inside the braces; returns a tuple of (name, value)."""
    out = []
    i = 0
    while i < len(s):
        m = re.match(LNAME, s[i:])
        if not m:
            die("%s: bad label name at %r" % (where, s[i:]))
        ln = m.group(0)
        i += len(ln)
        if s[i:i + 2] != '="':
            die("%s: want =\" after label %s" % (where, ln))
        i += 2
        v = ""
        while True:
            if i >= len(s):
                die("%s: unterminated label value" % where)
            c = s[i]
            if c == "\\":
                if s[i + 1:i + 2] not in ("\\", '"', "n"):
                    die("%s: bad escape in a label value" % where)
                v += {"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]]
                i += 2
                continue
            if c == "\n":
                die("%s: newline in a label value" % where)
            i += 1
            if c == '"':
                break
            v += c
        if any(k == ln for k, _ in out):
            die("%s: duplicate label %s" % (where, ln))
        out.append((ln, v))
        if i < len(s):
            if s[i] != ",":
                die("%s: want , between labels" % where)
            i += 1
    return tuple(out)


def parse_prom(text):
    """{(name, labels): value}; dies on anything out of the format."""
    if not text.endswith("\n"):
        die("metrics: no final newline")
    types = {}
    helps = set()
    samples = {}
    order = []
    fam_of = {}
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "metrics line %d (%r)" % (n, line[:80])
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (%s) (.*)" % NAME, line)
            if not m:
                if re.match(r"# (HELP|TYPE)", line):
                    die("%s: bad HELP/TYPE line" % where)
                continue	# a comment
            kind, name, rest = m.groups()
            if kind == "TYPE":
                if rest not in TYPES:
                    die("%s: unknown type" % where)
                if name in types:
                    die("%s: second TYPE for %s" % (where, name))
                if any(fam_of[k] == name for k in samples):
                    die("%s: TYPE after the family's samples" % where)
                types[name] = rest
            else:
                if name in helps:
                    die("%s: second HELP for %s" % (where, name))
                helps.add(name)
            continue
        if not line.strip():
            die("%s: empty line" % where)
        m = re.fullmatch(r"(%s)(\{(.*)\})? (\S+)( -?\d+)?" % NAME, line)
        if not m:
            die("%s: not a sample line" % where)
        name, _, lab, val, _ = m.groups()
        labels = parse_labels(lab or "", where)
        fam = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and types.get(name[:-len(suf)]) == \
                    "histogram":
                fam = name[:-len(suf)]
        if fam not in types:
            die("%s: sample without a TYPE line" % where)
        if types[fam] == "histogram" and fam == name:
            die("%s: bare histogram sample" % where)
        key = (name, labels)
        if key in samples:
            die("%s: duplicate sample" % where)
        v = parse_value(val, where)
        if types[fam] == "counter" and (v < 0 or v != v):
            die("%s: negative counter" % where)
        samples[key] = v
        fam_of[key] = fam
        order.append(key)
    # Families stay together.
    seen = []
    for k in order:
        f = fam_of[k]
        if seen and seen[-1] == f:
            continue
        if f in seen:
            die("metrics: family %s is split" % f)
        seen.append(f)
    # Histograms: per label set, cumulative buckets ending in +Inf ==
    # _count, and a _sum.
    for fam, t in types.items():
        if t != "histogram":
            continue
        groups = {}
        for (name, labels), v in samples.items():
            if name == fam + "_bucket":
                rest = tuple(x for x in labels if x[0] != "le")
                le = [x[1] for x in labels if x[0] == "le"]
                if len(le) != 1:
                    die("%s: a bucket without le" % fam)
                groups.setdefault(rest, []).append(
                    (parse_value(le[0], fam), le[0], v))
        if not groups:
            die("histogram %s has no buckets" % fam)
        for rest, bs in groups.items():
            prev_le = None
            prev = 0
            for le, les, v in bs:	# in file order
                if prev_le is not None and le <= prev_le:
                    die("%s%r: le not increasing" % (fam, rest))
                if v < prev:
                    die("%s%r: buckets not cumulative" % (fam, rest))
                prev_le, prev = le, v
            if bs[-1][1] != "+Inf":
                die("%s%r: the last bucket is not +Inf" % (fam, rest))
            cnt = samples.get((fam + "_count", rest))
            if cnt is None or (fam + "_sum", rest) not in samples:
                die("%s%r: no _count or _sum" % (fam, rest))
            if cnt != bs[-1][2]:
                die("%s%r: +Inf bucket %g != _count %g"
                    % (fam, rest, bs[-1][2], cnt))
    return samples


def metric(ms, name, **labels):
    want = set(labels.items())
    vals = [v for (n, ls), v in ms.items() if n == name and
            want <= set(ls)]
    if not vals:
        die("no metric %s%r" % (name, labels))
    return sum(vals)


# ---- clients ----

def dial(addr, timeout=5):
    s = socket.create_connection(addr, timeout=timeout * SLOW)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def readline(s):
    buf = b""
    while not buf.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            raise EOFError("EOF after %r" % buf)
        buf += b
    return buf


def ask(s, msg=b"x"):
    """One round trip on a name-mode backend; the backend's name."""
    s.sendall(msg + b"\n")
    line = readline(s).decode().rstrip("\n")
    name, _, echo = line.partition(":")
    if echo.encode() != msg:
        raise ValueError("bad answer %r" % line)
    return name


def one(addr, msg=b"x"):
    s = dial(addr)
    try:
        return ask(s, msg)
    finally:
        s.close()


def closed_at_once(s, secs):
    """True when the peer closes (EOF or reset) within secs."""
    s.settimeout(secs * SLOW)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def log_lines(path):
    try:
        with open(path) as f:
            return [l for l in f.read().split("\n") if l]
    except FileNotFoundError:
        return []


LOGRE = re.compile(r"\S+ client=(\S+) listener=(\S+) server=(\S+) "
                   r"bytes_in=(\d+) bytes_out=(\d+) connect_ms=[\d.]+ "
                   r"duration_ms=[\d.]+ end=(\w+)$")


def log_parsed(path):
    out = []
    for l in log_lines(path):
        m = LOGRE.match(l)
        if not m:
            die("bad access log line %r" % l)
        out.append(m.groups())
    return out


def write_file(path, text):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)


# ---- the cases ----

def case_reload():
    a = Backend("A")
    b = Backend("B")
    conf = os.path.join(TMP, "reload.conf")

    def cfg(port, bind="127.0.0.1:0"):
        return ("global { procs 1; workers 1; drain_timeout 20s; }\n"
                "pool p { server s 127.0.0.1:%d; }\n"
                "listen main { bind %s; pool p; }\n" % (port, bind))
    write_file(conf, cfg(a.port))
    px = Proxy(["-c", conf], "reload")
    try:
        addr = px.listen[0]
        if one(addr) != "A":
            die("first generation does not reach A")
        stats = {"ok": 0, "fail": 0, "A": 0, "B": 0}
        errors = []
        lock = threading.Lock()
        stop = time.monotonic() + 3.0

        def failed(what, e):
            with lock:
                stats["fail"] += 1
                if len(errors) < 5:
                    errors.append("%s: %r" % (what, e))

        def churn():
            while time.monotonic() < stop:
                try:
                    n = one(addr)
                    with lock:
                        stats["ok"] += 1
                        stats[n] += 1
                except Exception as e:
                    failed("new connection", e)

        def keepalive():
            try:
                s = dial(addr)
                while time.monotonic() < stop:
                    ask(s)
                    with lock:
                        stats["ok"] += 1
                s.close()
            except Exception as e:
                failed("keep-alive", e)

        ts = [threading.Thread(target=churn) for _ in range(4)]
        ts += [threading.Thread(target=keepalive) for _ in range(4)]
        for t in ts:
            t.start()
        hups = 0
        while time.monotonic() < stop:
            time.sleep(0.3)
            hups += 1
            write_file(conf, cfg((b if hups % 2 else a).port))
            px.p.send_signal(signal.SIGHUP)
        for t in ts:
            t.join()
        if stats["fail"]:
            die("%d failures under reloads: %s"
                % (stats["fail"], "; ".join(errors)))
        if stats["ok"] < 100 or not stats["A"] or not stats["B"]:
            die("too little traffic or one backend never served: %r"
                % stats)
        # A last reload to the other backend: once its generation is
        # ready and the old ones have stopped (an old child accepts from
        # the shared socket until its drain signal is handled, and exits
        # once its last session ends), new connections go there and only
        # there.
        wait_for(lambda: px.log_count(" ready in ") >= 2, 10,
                 "a reloaded generation")
        last = "A" if hups % 2 else "B"
        gens = px.log_count(" ready in ")
        write_file(conf, cfg((a if last == "A" else b).port))
        px.p.send_signal(signal.SIGHUP)
        wait_for(lambda: px.log_count(" ready in ") > gens, 10,
                 "the last generation")
        wait_for(lambda: len(px.children()) == 1, 10,
                 "the old generations to exit")
        got = [one(addr) for _ in range(20)]
        if got != [last] * 20:
            die("after the reload to %s, new connections went to %r"
                % (last, got))
        # A syntax error: refused, the old configuration serves.
        write_file(conf, cfg((b if last == "A" else a).port) +
                   "listen x { bind 127.0.0.1:0 pool p; }\n{{\n")
        px.p.send_signal(signal.SIGHUP)
        wait_for(lambda: px.log_count("reload refused: %s has errors"
                                      % conf) == 1, 5,
                 "'reload refused' for a bad file")
        if "%s:5: " % conf not in px.log():
            die("the bad file's error (line 5) is not on stderr")
        got = [one(addr) for _ in range(10)]
        if got != [last] * 10:
            die("after a refused reload: %r" % got)
        # Another bind address: refused too.
        write_file(conf, cfg((b if last == "A" else a).port,
                             "127.0.0.2:0"))
        px.p.send_signal(signal.SIGHUP)
        wait_for(lambda: px.log_count("reload refused: %s changes the "
                                      "listening addresses" % conf) == 1,
                 5, "'reload refused' for a changed bind")
        got = [one(addr) for _ in range(10)]
        if got != [last] * 10:
            die("after a refused bind change: %r" % got)
        if not px.alive():
            die("the master died")
        # The old generations drained (their keep-alive sessions ended
        # with the load) and exited; none had to be killed.
        wait_for(lambda: len(px.children()) == 1, 10,
                 "the old generations to exit")
        if "killed" in px.log() or "restarting" in px.log():
            die("a child was killed or died: %s" % px.log()[-600:])
        return ("%d round trips, %d reloads, 0 failed; bad file and bind "
                "change refused" % (stats["ok"], hups))
    finally:
        px.stop()


def case_worker_kill():
    a = Backend("A")
    px = Proxy(["--listen", "127.0.0.1:0", "--upstream",
                "127.0.0.1:%d" % a.port, "--procs", "2", "--workers", "1"],
               "worker-kill")
    try:
        addr = px.listen[0]
        wait_for(lambda: len(px.children()) == 2, 10, "two children")
        wait_for(lambda: px.log_count(" ready in ") >= 1, 10,
                 "generation 1 ready")
        k1, k2 = px.children()
        base = sockets_of(k1)
        conns = []
        for _ in range(20):
            s = dial(addr)
            ask(s)
            conns.append(s)
        delta = sockets_of(k1) - base
        if delta % 2 or not (2 <= delta <= 38):
            die("child %d holds %d sockets for 20 sessions: cannot tell"
                % (k1, delta))
        held = delta // 2	# a client socket and a server one each
        t0 = time.monotonic()
        os.kill(k1, signal.SIGKILL)
        wait_for(lambda: not alive(k1), 5, "the killed child to go")
        failed = 0
        for s in conns:
            try:
                ask(s)
            except Exception:
                failed += 1
            s.close()
        if failed != held:
            die("%d sessions failed, the killed child held %d"
                % (failed, held))
        # New connections keep succeeding, before and after the
        # replacement.
        for _ in range(30):
            one(addr)
        wait_for(lambda: len(px.children()) == 2 and
                 k1 not in px.children(), 5, "a replacement child")
        ms = (time.monotonic() - t0) * 1000
        (new,) = [p for p in px.children() if p != k2]
        for _ in range(30):
            one(addr)
        if not alive(k2):
            die("the other child died")
        return ("killed child held %d of 20 sessions, exactly those "
                "failed; 60 new connections ok; child %d replaced it "
                "within %.0f ms" % (held, new, ms))
    finally:
        px.stop()


def case_health():
    a = Backend("A")
    b = Backend("B")
    good = Backend("G", "pong", reply=b"PONG\r\n")
    bad = Backend("W", "pong", reply=b"NOPE\r\n")
    hole = socket.socket()	# bound, never listening: connects refused
    hole.bind((HOST, 0))
    rport = hole.getsockname()[1]
    e2 = Backend("E")
    conf = os.path.join(TMP, "health.conf")
    write_file(conf, """global { procs 1; workers 1; admin 127.0.0.1:0; }
pool p {
    server a 127.0.0.1:%d;
    server b 127.0.0.1:%d;
    check interval=100ms timeout=100ms rise=2 fall=2;
}
pool pp {
    server good 127.0.0.1:%d;
    server wrong 127.0.0.1:%d;
    check interval=100ms timeout=100ms rise=2 fall=2 send="PING\\r\\n" expect="PONG";
}
pool ej {
    server r 127.0.0.1:%d;
    server e 127.0.0.1:%d;
    eject failures=2 for=500ms;
}
listen main { bind 127.0.0.1:0; pool p; }
listen checked { bind 127.0.0.1:0; pool pp; }
listen eject { bind 127.0.0.1:0; pool ej; }
""" % (a.port, b.port, good.port, bad.port, rport, e2.port))
    px = Proxy(["-c", conf], "health")
    try:
        addr = px.listen[0]

        def up(pool, srv):
            return metric(px.metrics(), "weft_proxy_server_up", pool=pool,
                          server=srv)
        got = [one(addr) for _ in range(10)]
        if set(got) != {"A", "B"}:
            die("both up, yet connections went to %r" % got)
        t0 = time.monotonic()
        a.stop()
        wait_for(lambda: up("p", "a") == 0, 2, "server a down")
        down_ms = (time.monotonic() - t0) * 1000
        got = [one(addr) for _ in range(10)]
        if got != ["B"] * 10:
            die("a down, yet connections went to %r" % got)
        t0 = time.monotonic()
        a.start()	# the same port
        wait_for(lambda: up("p", "a") == 1, 2, "server a up again")
        up_ms = (time.monotonic() - t0) * 1000
        got = [one(addr) for _ in range(10)]
        if "A" not in got:
            die("a back up, yet no connection reached it: %r" % got)
        # send/expect: a wrong answer keeps it down, the right one up.
        wait_for(lambda: up("pp", "wrong") == 0, 2, "'wrong' down")
        if not bad.records and not bad.conns:
            die("the check never reached the wrong backend")
        for _ in range(5):
            ms = px.metrics()
            if metric(ms, "weft_proxy_server_up", pool="pp",
                      server="wrong") != 0:
                die("a check answered NOPE came back up")
            if metric(ms, "weft_proxy_server_up", pool="pp",
                      server="good") != 1:
                die("the PONG server is down")
            time.sleep(0.1)
        with good.lock:
            rec = b"".join(good.records)
        if rec and not rec.startswith(b"PING\r\n"):
            die("the check sent %r" % rec[:20])
        # Passive ejection: two refused connects, then none until it
        # returns.
        eaddr = px.listen[2]

        def cerr():
            return metric(px.metrics(),
                          "weft_proxy_server_connect_errors_total",
                          pool="ej", server="r", cause="refused")
        n = 0
        while cerr() < 2:
            if one(eaddr) != "E":
                die("not served by e")
            n += 1
            if n > 20:
                die("20 sessions and r failed %d times" % cerr())
        t_ej = time.monotonic()
        if cerr() != 2:
            die("r failed %d times, want 2" % cerr())
        k = 0
        while time.monotonic() < t_ej + 0.35:
            one(eaddr)
            k += 1
        if cerr() != 2:
            die("ejected r got connection attempts (%d errors)" % cerr())
        wait_for(lambda: one(eaddr) and cerr() > 2, 3,
                 "r to get attempts again after the ejection")
        back_ms = (time.monotonic() - t_ej) * 1000
        if back_ms < 450:
            die("r returned after %.0f ms, ejected for 500" % back_ms)
        if "ejected for 500 ms" not in px.log():
            die("no ejection line in the log")
        return ("down in %.0f ms, up in %.0f ms; expect=PONG keeps "
                "a wrong answer down; ejected r took none of %d sessions, "
                "back after %.0f ms" % (down_ms, up_ms, k, back_ms))
    finally:
        px.stop()
        hole.close()


def case_queue():
    h = Backend("H")
    alog = os.path.join(TMP, "queue.log")
    conf = os.path.join(TMP, "queue.conf")
    write_file(conf, """global { procs 1; workers 1; admin 127.0.0.1:0;
    access_log %s; }
pool p { server h 127.0.0.1:%d; }
pool one { server h 127.0.0.1:%d max_conns=1; }
listen lis { bind 127.0.0.1:0; pool p; max_conns 2; queue 2 timeout=300ms; }
listen srv { bind 127.0.0.1:0; pool one; queue 2 timeout=300ms; }
""" % (alog, h.port, h.port))
    px = Proxy(["-c", conf], "queue")
    out = []
    try:
        for li, name, nactive in ((0, "lis", 2), (1, "srv", 1)):
            addr = px.listen[li]

            def ends(why):
                return sum(1 for l in log_parsed(alog)
                           if l[1] == name and l[5] == why)

            def qlen():
                return metric(px.metrics(), "weft_proxy_queue_length",
                              listener=name)
            act = [dial(addr) for _ in range(nactive)]
            for s in act:
                ask(s)
            # Left waiting: ends with queue_timeout, about 300 ms on.
            t0 = time.monotonic()
            w = dial(addr)
            wait_for(lambda: qlen() == 1, 1, "one queued")
            if not closed_at_once(w, 2):
                die("%s: a queued session was not closed" % name)
            ms = (time.monotonic() - t0) * 1000
            w.close()
            if ms < 250:
                die("%s: queue timeout after %.0f ms, want 300" % (name, ms))
            wait_for(lambda: ends("queue_timeout") == 1, 2,
                     "%s: end=queue_timeout in the log" % name)
            # Two queued, the next refused at once, a freed slot lets one
            # through.
            q = [dial(addr), dial(addr)]
            for s in q:
                s.sendall(b"q\n")
            wait_for(lambda: qlen() == 2, 0.2, "%s: queue length 2" % name)
            r = dial(addr)
            if not closed_at_once(r, 0.2):
                die("%s: the 5th was not refused at once" % name)
            r.close()
            act.pop().close()
            served = None
            for s in q:
                s.settimeout(1 * SLOW)
                try:
                    line = readline(s)
                    if line != b"H:q\n":
                        die("%s: a queued one got %r" % (name, line))
                    served = s
                    break
                except (EOFError, socket.timeout, ConnectionResetError):
                    continue
            if not served:
                die("%s: no queued session got through" % name)
            ask(served)
            wait_for(lambda: ends("refused") == 1, 2,
                     "%s: end=refused in the log" % name)
            wait_for(lambda: ends("queue_timeout") == 2, 2,
                     "%s: the other queued one timing out" % name)
            for s in q + act:
                s.close()
            wait_for(lambda: metric(px.metrics(),
                                    "weft_proxy_connections_active",
                                    listener=name) == 0, 2,
                     "%s: sessions to end" % name)
            out.append("%s: timeout at %.0f ms, 5th refused, freed slot "
                       "served a queued one" % (name, ms))
        return "; ".join(out)
    finally:
        px.stop()


def v2_header(src, sport, dst, dport, length=None):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + \
        struct.pack("!HH", sport, dport)
    n = len(body) if length is None else length
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) +
            struct.pack("!H", n) + body)


def parse_v2(b):
    if b[:12] != b"\r\n\r\n\x00\r\nQUIT\n":
        die("no v2 signature: %r" % b[:16])
    if b[12] != 0x21 or b[13] != 0x11:
        die("v2: ver/cmd %x family %x" % (b[12], b[13]))
    n = struct.unpack("!H", b[14:16])[0]
    body = b[16:16 + n]
    src = socket.inet_ntoa(body[0:4])
    dst = socket.inet_ntoa(body[4:8])
    sp, dp = struct.unpack("!HH", body[8:12])
    return (src, sp, dst, dp), b[16 + n:]


def case_proxy_protocol():
    raw = Backend("R", "raw")
    alog = os.path.join(TMP, "pp.log")
    conf = os.path.join(TMP, "pp.conf")
    write_file(conf, """global { procs 1; workers 1; admin 127.0.0.1:0;
    access_log %s; }
pool plain { server r 127.0.0.1:%d; }
pool s1 { server r 127.0.0.1:%d; send_proxy v1; }
pool s2 { server r 127.0.0.1:%d; send_proxy v2; }
listen acc { bind 127.0.0.1:0; pool plain; accept_proxy on;
    proxy_timeout 300ms; }
listen v1 { bind 127.0.0.1:0; pool s1; }
listen v2 { bind 127.0.0.1:0; pool s2; }
listen relay1 { bind 127.0.0.1:0; pool s1; accept_proxy on; }
listen relay2 { bind 127.0.0.1:0; pool s2; accept_proxy on; }
""" % (alog, raw.port, raw.port, raw.port))
    px = Proxy(["-c", conf], "pp")
    try:
        acc, l1, l2, r1, r2 = px.listen

        def session(addr, first, data=b"hello\n"):
            """Send first+data, read "ok", close; the backend's record."""
            n = len(raw.records)
            s = dial(addr)
            s.sendall(first + data)
            if readline(s) != b"ok\n":
                die("no answer")
            me = s.getsockname()
            s.close()
            wait_for(lambda: len(raw.records) > n, 2, "the backend's end")
            return raw.records[n], me

        def errors():
            return metric(px.metrics(),
                          "weft_proxy_proxy_header_errors_total")
        rec, _ = session(acc, b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n")
        if rec != b"hello\n":
            die("v1: the backend got %r" % rec)
        rec, _ = session(acc, v2_header("9.8.7.6", 3333, "5.6.7.8", 2222))
        if rec != b"hello\n":
            die("v2: the backend got %r" % rec)
        wait_for(lambda: len(log_parsed(alog)) >= 2, 2, "two log lines")
        clients = [l[0] for l in log_parsed(alog)[:2]]
        if clients != ["1.2.3.4:1111", "9.8.7.6:3333"]:
            die("log clients %r" % clients)
        # Split across segments, UNKNOWN, LOCAL, TLVs after the addresses:
        # accepted, the data intact.
        n = len(raw.records)
        s = dial(acc)
        for part in (b"PROX", b"Y TCP4 1.2.3.4 5.6", b".7.8 1111 2222\r",
                     b"\nhel", b"lo\n"):
            s.sendall(part)
            time.sleep(0.02)	# separate segments, not a synchronisation
        if readline(s) != b"ok\n":
            die("a split v1 header: no answer")
        s.close()
        wait_for(lambda: len(raw.records) > n, 2, "the backend's end")
        if raw.records[n] != b"hello\n":
            die("split v1: the backend got %r" % raw.records[n])
        tlv = b"\x04\x00\x03abc"	# PP2_TYPE_NOOP, 3 bytes
        h2 = v2_header("9.8.7.6", 3333, "5.6.7.8", 2222,
                       length=12 + len(tlv)) + tlv
        local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0, 0])
        for what, hdr in (("UNKNOWN", b"PROXY UNKNOWN\r\n"),
                          ("v2 TLV", h2), ("v2 LOCAL", local)):
            rec, _ = session(acc, hdr)
            if rec != b"hello\n":
                die("%s: the backend got %r" % (what, rec))
        # Malformed headers, a good session open meanwhile.
        keep = dial(acc)
        keep.sendall(b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nk\n")
        if readline(keep) != b"ok\n":
            die("the concurrent session failed")
        base = errors()
        bad = [b"GET / HTTP/1.0\r\n\r\n", b"PROXY TCP4 bad\r\n",
               v2_header("1.1.1.1", 1, "2.2.2.2", 2, length=0xFFFF)]
        for i, hdr in enumerate(bad):
            s = dial(acc)
            s.sendall(hdr)
            if not closed_at_once(s, 1):
                die("malformed header %d: not closed" % i)
            s.close()
            keep.sendall(b"k\n")
            if readline(keep) != b"ok\n":
                die("the concurrent session failed after bad header %d" % i)
            wait_for(lambda: errors() == base + i + 1, 1,
                     "header error %d counted" % i)
        keep.close()
        # Silent past proxy_timeout: closed and counted as late.
        t0 = time.monotonic()
        s = dial(acc)
        if not closed_at_once(s, 2):
            die("a silent client was not closed at proxy_timeout")
        late_ms = (time.monotonic() - t0) * 1000
        s.close()
        if late_ms < 250:
            die("closed after %.0f ms, proxy_timeout 300 ms" % late_ms)
        wait_for(lambda: errors() == base + 4, 1, "the late header counted")
        bads = wait_for(lambda: (lambda b: b if len(b) >= 4 else None)(
            [l for l in log_parsed(alog) if l[5] == "bad_proxy_header"]),
            2, "end=bad_proxy_header lines")
        if len(bads) != 4:
            die("%d bad_proxy_header lines, want 4" % len(bads))
        # send_proxy v1 / v2: the backend sees the client's addresses.
        rec, me = session(l1, b"")
        want = ("PROXY TCP4 %s %s %d %d\r\n" % (me[0], l1[0], me[1],
                                                 l1[1])).encode()
        if rec != want + b"hello\n":
            die("send_proxy v1: backend got %r, want %r" % (rec, want))
        rec, me = session(l2, b"")
        addrs, rest = parse_v2(rec)
        if addrs != (me[0], me[1], l2[0], l2[1]) or rest != b"hello\n":
            die("send_proxy v2: %r then %r, want %r"
                % (addrs, rest, (me, l2)))
        # accept_proxy into send_proxy: the header's addresses go on.
        rec, _ = session(r1, b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n")
        if rec != b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nhello\n":
            die("relay v1: backend got %r" % rec)
        rec, _ = session(r1, b"PROXY TCP6 ::1 2001:db8::2 1111 2222\r\n")
        if rec != b"PROXY TCP6 ::1 2001:db8::2 1111 2222\r\nhello\n":
            die("relay v1 (TCP6): backend got %r" % rec)
        rec, _ = session(r2, v2_header("9.8.7.6", 3333, "5.6.7.8", 2222))
        addrs, rest = parse_v2(rec)
        if addrs != ("9.8.7.6", 3333, "5.6.7.8", 2222) or rest != b"hello\n":
            die("relay v2: %r then %r" % (addrs, rest))
        return ("v1/v2 accepted (client=1.2.3.4:1111, 9.8.7.6:3333), 3 "
                "malformed and 1 late closed and counted, split/UNKNOWN/LOCAL/"
                "TLV accepted, send_proxy v1/v2 carry the client's (or "
                "the header's) address")
    finally:
        px.stop()


def case_config():
    root = os.environ["ROOT"]
    ex = os.path.join(root, "cmd/weft-proxy/weft-proxy.conf")
    if not os.path.exists(ex):
        die("no example file %s" % ex)
    r = subprocess.run([BIN, "-t", "-c", ex], capture_output=True,
                       text=True, timeout=10 * SLOW)
    if r.returncode != 0 or r.stdout.strip() != \
            "weft-proxy: configuration %s is valid" % ex:
        die("the example: exit %d, %r %r" % (r.returncode, r.stdout,
                                              r.stderr))
    bad = os.path.join(TMP, "bad.conf")
    write_file(bad, """global {
    procs 1;
    frobnicate 3;
}
pool p {
    server s 127.0.0.1:1;
    connect_timeout 5 parsecs;
}
listen l {
    bind 127.0.0.1:0;
    pool nosuch;
}
""")
    r = subprocess.run([BIN, "-t", "-c", bad], capture_output=True,
                       text=True, timeout=10 * SLOW)
    lines = r.stderr.strip().split("\n")
    pre = [l.split(": ", 1)[0] for l in lines]
    want = ["%s:%d" % (bad, n) for n in (3, 7, 11)]
    if r.returncode != 1 or pre != want:
        die("3 errors: exit %d, stderr %r, want lines %r"
            % (r.returncode, r.stderr, want))
    return "example valid; 3 errors reported as %s" % ", ".join(
        w.rsplit(":", 1)[1] for w in want)


def case_metrics():
    e = Backend("E")
    px = Proxy(["--listen", "127.0.0.1:0", "--upstream",
                "127.0.0.1:%d" % e.port, "--admin", "127.0.0.1:0",
                "--procs", "1"], "metrics")
    try:
        addr = px.listen[0]
        m0 = px.metrics()	# a scrape with nothing carried yet
        if metric(m0, "weft_proxy_connections_total") != 0:
            die("sessions before any")
        n = 25
        sent = recv = 0
        for i in range(n):
            s = dial(addr)
            msg = b"m" * (i * 37 + 1)
            s.sendall(msg + b"\n")
            got = readline(s)
            s.close()
            sent += len(msg) + 1
            recv += len(got)
        ms = wait_for(lambda: (lambda m: m if sum(
            v for (k, _), v in m.items()
            if k == "weft_proxy_sessions_ended_total") == n else None)(
                px.metrics()), 3, "%d sessions to end" % n)
        checks = {
            "connections_total": (metric(ms, "weft_proxy_connections_total"),
                                  n),
            "bytes in": (metric(ms, "weft_proxy_bytes_total",
                                direction="in"), sent),
            "bytes out": (metric(ms, "weft_proxy_bytes_total",
                                 direction="out"), recv),
            "server bytes in": (metric(ms, "weft_proxy_server_bytes_total",
                                       direction="in"), sent),
            "server total": (metric(ms,
                                    "weft_proxy_server_connections_total"),
                             n),
            "active": (metric(ms, "weft_proxy_connections_active"), 0),
            "session count": (metric(ms, "weft_proxy_session_seconds_count"),
                              n),
            "connect count": (metric(ms, "weft_proxy_connect_seconds_count"),
                              n),
            "client_close": (metric(ms, "weft_proxy_sessions_ended_total",
                                    reason="client_close"), n),
        }
        for what, (got, want) in checks.items():
            if got != want:
                die("%s: %g, want %d" % (what, got, want))
        # Past the splice threshold (64 KiB) both ways: still exact.
        s = dial(addr)
        big = b"b" * (700 << 10)
        threading.Thread(target=s.sendall, args=(big + b"\n",),
                         daemon=True).start()
        got = b""
        while not got.endswith(b"\n"):
            b = s.recv(1 << 16)
            if not b:
                die("EOF inside the big answer")
            got += b
        s.close()
        if got != b"E:" + big + b"\n":
            die("the big answer was %d bytes, want %d"
                % (len(got), len(big) + 3))
        n += 1
        sent += len(big) + 1
        recv += len(got)
        ms = wait_for(lambda: (lambda m: m if sum(
            v for (k, _), v in m.items()
            if k == "weft_proxy_sessions_ended_total") == n else None)(
                px.metrics()), 3, "the big session to end")
        for what, got_v, want in (
                ("bytes in", metric(ms, "weft_proxy_bytes_total",
                                    direction="in"), sent),
                ("bytes out", metric(ms, "weft_proxy_bytes_total",
                                     direction="out"), recv),
                ("server bytes out",
                 metric(ms, "weft_proxy_server_bytes_total",
                        direction="out"), recv)):
            if got_v != want:
                die("after a spliced session, %s: %d, want %d"
                    % (what, got_v, want))
        if metric(ms, "weft_proxy_pipes") < 0:
            die("negative pipes")
        # The admin listener's refusals.
        for req, want in ((b"GET /nope HTTP/1.0\r\n\r\n", b" 404 "),
                          (b"POST /metrics HTTP/1.0\r\n\r\n", b" 405 ")):
            a = socket.create_connection(px.admin, timeout=5 * SLOW)
            a.sendall(req)
            head = a.recv(100)
            a.close()
            if want not in head.split(b"\r\n")[0]:
                die("admin %r answered %r" % (req[:14], head[:40]))
        st = px.status()
        l0 = st["listeners"][0]
        if (l0["total"], l0["bytes_in"], l0["bytes_out"], l0["active"]) != \
                (n, sent, recv, 0) or \
                l0["ended"]["client_close"] != n or \
                st["pools"][0]["servers"][0]["total"] != n or \
                st["pools"][0]["servers"][0]["up"] is not True or \
                st["pid"] != int(re.search(
                    r'pid="(\d+)"', http_get(px.admin, "/metrics")).group(1)):
            die("/status disagrees: %r" % st)
        return ("%d samples parse strictly; %d sessions, %d/%d bytes "
                "match; /status agrees" % (len(ms), n, sent, recv))
    finally:
        px.stop()


def case_log_reopen():
    e = Backend("E")
    path = os.path.join(TMP, "access.log")
    px = Proxy(["--listen", "127.0.0.1:0", "--upstream",
                "127.0.0.1:%d" % e.port, "--access-log", path,
                "--procs", "2"], "log-reopen")

    def opened(pid):
        out = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                out.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
            except OSError:
                pass
        return out

    def reopened():
        kids = px.children()
        return len(kids) == 2 and all(
            path in opened(k) and path + ".1" not in opened(k)
            for k in kids)
    try:
        addr = px.listen[0]
        wait_for(lambda: px.log_count(" ready in ") >= 1, 10, "ready")
        for _ in range(10):
            one(addr)
        wait_for(lambda: len(log_lines(path)) == 10, 3, "10 log lines")
        os.rename(path, path + ".1")
        px.p.send_signal(signal.SIGUSR1)
        # Both worker processes let the renamed file go.
        wait_for(reopened, 3, "both children to reopen the log")
        for _ in range(10):
            one(addr)
        wait_for(lambda: len(log_lines(path)) >= 10, 3, "10 new lines")
        # Every line in exactly one place.
        old = log_parsed(path + ".1")
        new = log_parsed(path)
        if len(old) != 10 or len(new) != 10:
            die("old file %d lines, new %d, want 10 and 10"
                % (len(old), len(new)))
        if any(l[5] != "client_close" for l in old + new):
            die("unexpected end= in %r" % (old + new))
        if not px.alive() or len(px.children()) != 2:
            die("a child or the master died on SIGUSR1")
        return ("--procs 2: both children reopened; 10 lines in the "
                "rotated file, 10 in the new one")
    finally:
        px.stop()


def case_drain():
    e = Backend("E")
    alog = os.path.join(TMP, "drain.log")
    conf = os.path.join(TMP, "drain.conf")
    write_file(conf, """global { procs 1; workers 1; drain_timeout 1s;
    access_log %s; }
pool p { server e 127.0.0.1:%d; }
listen main { bind 127.0.0.1:0; pool p; }
""" % (alog, e.port))
    px = Proxy(["-c", conf], "drain")
    try:
        addr = px.listen[0]
        wait_for(lambda: px.log_count(" ready in ") >= 1, 10, "ready")
        s = dial(addr)
        ask(s)
        t0 = time.monotonic()
        px.p.send_signal(signal.SIGQUIT)
        # Works inside the drain, until cut at its deadline; a connection
        # made meanwhile is never served (the draining child stopped
        # accepting; the kernel may still complete its handshake).
        s.settimeout(5 * SLOW)
        n = 0
        late = None
        try:
            while True:
                ask(s)
                n += 1
                if late is None and time.monotonic() - t0 > 0.2:
                    try:
                        late = socket.create_connection(addr, timeout=1)
                        late.sendall(b"late\n")
                        late.setblocking(False)
                    except OSError:
                        late = False	# refused: fine too
                time.sleep(0.01)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        cut_ms = (time.monotonic() - t0) * 1000
        if cut_ms < 900 or cut_ms > 3000 * SLOW:
            die("the session was cut at %.0f ms, drain_timeout 1 s" % cut_ms)

        def refused():
            try:
                c = socket.create_connection(addr, timeout=0.5)
            except ConnectionRefusedError:
                return True
            c.close()
            return False
        wait_for(refused, 2, "new connections refused")
        ref_ms = (time.monotonic() - t0) * 1000
        if late:
            try:
                got = late.recv(100)
            except (BlockingIOError, ConnectionResetError):
                got = b""
            late.close()
            if got:
                die("a connection made during the drain was served: %r"
                    % got)
        # The one SIGQUIT is enough: wait for the exit (a second one
        # could land after the master restored its signal mask).
        try:
            rc = px.p.wait(5 * SLOW)
        except subprocess.TimeoutExpired:
            die("the master did not exit after the drain")
        if rc != 0:
            die("master exit status %d: %s" % (rc, px.log()[-400:]))
        ends = [l[5] for l in log_parsed(alog)]
        if ends != ["drain"]:
            die("log ends %r, want ['drain']" % ends)
        if re.search(r"child \d+ .* exited with status [1-9]", px.log()):
            die("a child failed its drain: %s" % px.log()[-400:])
        return ("%d round trips in the drain, cut at %.0f ms (end=drain), "
                "new connections refused by %.0f ms, exit 0"
                % (n, cut_ms, ref_ms))
    finally:
        px.stop()


def case_timeouts():
    e = Backend("E")
    alog = os.path.join(TMP, "timeouts.log")
    conf = os.path.join(TMP, "timeouts.conf")
    write_file(conf, """global { procs 1; workers 1; access_log %s; }
pool p { server e 127.0.0.1:%d; }
listen idle { bind 127.0.0.1:0; pool p; idle_timeout 300ms; }
listen whole { bind 127.0.0.1:0; pool p; session_timeout 500ms;
    idle_timeout off; }
""" % (alog, e.port))
    px = Proxy(["-c", conf], "timeouts")
    try:
        idle, whole = px.listen
        # A busy session outlives idle_timeout; a silent one is cut at it.
        busy = dial(idle)
        quiet = dial(idle)
        ask(busy)
        ask(quiet)
        t0 = time.monotonic()
        q_ms = None
        while time.monotonic() - t0 < 0.6 * SLOW or q_ms is None:
            if time.monotonic() - t0 > 2 * SLOW:
                die("an idle session outlived idle_timeout")
            ask(busy)
            # Pacing the busy one, and watching the quiet one end.
            r, _, _ = select.select([quiet], [], [], 0.05)
            if r and q_ms is None:
                q_ms = (time.monotonic() - t0) * 1000
                if not closed_at_once(quiet, 1):
                    die("the idle session got bytes")
        if q_ms < 250 or q_ms > 1000 * SLOW:
            die("idle_timeout 300 ms cut at %.0f ms" % q_ms)
        ask(busy)
        busy.close()
        quiet.close()
        # session_timeout cuts even a busy one.
        s = dial(whole)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 3 * SLOW:
                ask(s)
                time.sleep(0.02)
            die("a session outlived session_timeout")
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        w_ms = (time.monotonic() - t0) * 1000
        s.close()
        if w_ms < 450 or w_ms > 1500 * SLOW:
            die("session_timeout 500 ms cut at %.0f ms" % w_ms)
        ends = wait_for(lambda: (lambda l: l if len(l) == 3 else None)(
            sorted((x[1], x[5]) for x in log_parsed(alog))), 2,
            "three log lines")
        if ends != [("idle", "client_close"), ("idle", "idle_timeout"),
                    ("whole", "session_timeout")]:
            die("log ends %r" % ends)
        return ("idle one cut at %.0f ms (idle_timeout 300), busy one "
                "kept; session_timeout 500 cut at %.0f ms" % (q_ms, w_ms))
    finally:
        px.stop()


CASES = {
    "reload": case_reload,
    "worker-kill": case_worker_kill,
    "health": case_health,
    "queue": case_queue,
    "proxy-protocol": case_proxy_protocol,
    "config": case_config,
    "metrics": case_metrics,
    "log-reopen": case_log_reopen,
    "drain": case_drain,
    "timeouts": case_timeouts,
}


def main():
    t0 = time.monotonic()
    try:
        detail = CASES[CASE]()
    except Exception as e:
        what = str(e) if isinstance(e, Fail) else repr(e)
        print("FAIL %s: %s (after %.1f s)" % (CASE, what,
                                             time.monotonic() - t0))
        for f in os.listdir(TMP):
            if f.startswith("err."):
                with open(os.path.join(TMP, f)) as fh:
                    tail = fh.read()[-1500:]
                print("--- %s (tail) ---\n%s" % (f, tail))
        sys.exit(1)
    for f in os.listdir(TMP):
        if f.startswith("err."):
            with open(os.path.join(TMP, f)) as fh:
                t = fh.read()
            if "Sanitizer" in t or "runtime error:" in t:
                print("FAIL %s: sanitizer finding:\n%s" % (CASE, t[-3000:]))
                sys.exit(1)
    print("ok %s (%s; %.1f s)" % (CASE, detail, time.monotonic() - t0))


main()

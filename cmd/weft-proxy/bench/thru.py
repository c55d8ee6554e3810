# thru.py PROXYBIN off|auto|on SIZE_MB [CHUNK]: push SIZE_MB through the proxy to a sink; report proxy CPU per GiB and MB/s
import os, socket, subprocess, sys, threading, time
binp, mode, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunk = int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 20
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(8)
port = ls.getsockname()[1]
import tempfile
cfg = os.path.join(tempfile.mkdtemp(), "thru.conf")
open(cfg, "w").write("global { splice %s; }\npool p { server a 127.0.0.1:%d; }\nlisten l { bind 127.0.0.1:0; pool p; }\n" % (mode, port))
pr = subprocess.Popen([binp, "-c", cfg, "--procs", "1", "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = pr.stdout.readline(); pport = int(line.rsplit(":", 1)[1])
kid = None
for _ in range(100):
    try:
        kid = int(open("/proc/%d/task/%d/children" % (pr.pid, pr.pid)).read().split()[0]); break
    except Exception: time.sleep(0.02)
def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
got = [0]
def sink():
    c, _ = ls.accept(); b = bytearray(1 << 20); v = memoryview(b)
    while True:
        n = c.recv_into(v)
        if not n: break
        got[0] += n
t = threading.Thread(target=sink); t.start()
s = socket.create_connection(("127.0.0.1", pport))
buf = os.urandom(chunk)
c0 = cpu(kid); t0 = time.time()
left = mb << 20
while left > 0:
    n = min(left, len(buf)); s.sendall(buf[:n]); left -= n
s.shutdown(socket.SHUT_WR); t.join(); dt = time.time() - t0; c1 = cpu(kid)
s.close(); pr.terminate(); pr.wait()
assert got[0] == mb << 20, got[0]
print("splice=%s chunk=%d %d MiB: %.0f MiB/s, proxy CPU %.3f s per GiB" % (mode, chunk, mb, mb / dt, (c1 - c0) * 1024 / mb))

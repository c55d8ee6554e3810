#!/bin/bash
# ab.sh: HAProxy and weft-proxy (io_uring, then WEFT_IO=epoll) back to back.
#
# One weft-httpd backend; HAProxy (nbthread 1, mode tcp), and two
# weft-proxy processes with one worker each, started once.  Then, R
# rounds: wrk -t1 -cC -d4s through each in turn, perf stat over the 2 s in
# the middle of the run on the proxy's serving process.  Prints req/s, p99,
# proxy CPU per request and system calls per request.  Manual (not part of
# make test or make bench); loopback, ports 19000-19004, every process
# stopped by its pid.   Usage: C=1000 R=3 cmd/weft-proxy/bench/ab.sh
set -u
cd "$(dirname "$0")/../../.."
C=${C:-100}; R=${R:-3}; B=build
for t in haproxy wrk perf; do
	command -v $t >/dev/null || { echo "ab.sh: needs $t (apt-get install haproxy wrk linux-perf)"; exit 1; }
done
tmp=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
cat > "$tmp/hap.cfg" <<CFG
global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend f
    bind 127.0.0.1:19001
    default_backend b
backend b
    server s1 127.0.0.1:19000
CFG
up() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "ab.sh: port $1 never opened"; exit 1; }
$B/weft-httpd --port 19000 --workers 1 >/dev/null 2>&1 & pids+=($!); up 19000
haproxy -f "$tmp/hap.cfg" -db >/dev/null 2>&1 & HAP=$!; pids+=($HAP); up 19001
$B/weft-proxy --listen 127.0.0.1:19003 --upstream 127.0.0.1:19000 --procs 1 --workers 1 >/dev/null 2>&1 & P=$!; pids+=($P); up 19003
WEFT_IO=epoll $B/weft-proxy --listen 127.0.0.1:19004 --upstream 127.0.0.1:19000 --procs 1 --workers 1 >/dev/null 2>&1 & P2=$!; pids+=($P2); up 19004
K=$(cat /proc/$P/task/$P/children); K2=$(cat /proc/$P2/task/$P2/children)
for _ in $(seq "$R"); do
	for x in "haproxy 19001 $HAP" "uring 19003 $K" "epoll 19004 $K2"; do
		set -- $x
		wrk -t1 -c"$C" -d4s --latency http://127.0.0.1:$2/ > "$tmp/w" & W=$!
		sleep 1		# into the run: measure its steady middle
		st=$(perf stat -x, -e raw_syscalls:sys_enter,task-clock -p $3 -- sleep 2 2>&1)
		wait $W
		rps=$(awk '/Requests\/sec/{print $2}' "$tmp/w"); p99=$(awk '$1=="99%"{print $2}' "$tmp/w")
		sc=$(echo "$st" | awk -F, '/sys_enter/{print $1}'); tc=$(echo "$st" | awk -F, '/task-clock/{print $1}')
		python3 -c "r=$rps;print('$1 c$C rps=%d p99=$p99 cpu_us/req=%.2f syscalls/req=%.2f'%(r,$tc*1000/(2*r),$sc/(2*r)))"
	done
done

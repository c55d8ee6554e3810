/* SPDX-License-Identifier: MIT */
/*
 * http: a "Hello, world" HTTP/1.1 keep-alive server under wrk.
 *
 * Every implementation is a server process on 127.0.0.1 that answers each
 * complete request head ("\r\n\r\n"-terminated; pipelining-safe, the bytes
 * after it kept for the next one) with the same 200 response, never closes
 * a connection first, and keeps at most 2 KiB of input per connection:
 *
 *   threads    `weft-bench --serve threads`: a blocking accept loop and one
 *              detached thread per connection (default attributes), its
 *              2 KiB buffer on its stack.
 *   epoll      `weft-bench --serve epoll`: one thread, one epoll set
 *              (connections edge-triggered), non-blocking sockets, a
 *              malloc'd 2 KiB buffer per connection.  Single-threaded
 *              whatever --workers says: the baseline the ratios compare
 *              with.
 *   epoll-mt   `weft-bench --serve epoll --workers N`: N such threads, each
 *              with its own epoll set and SO_REUSEPORT listener.  Only when
 *              --workers > 1 (with 1 it is the epoll row).
 *   nginx      if installed (Debian nginx-light or nginx): a generated
 *              config, `return 200 "Hello, world";`, worker_processes N,
 *              access_log off, keepalive_requests 1,000,000.
 *   go         if Go is installed (Debian golang-1.19): the goroutine-per-
 *              connection server in go_server[] below (standard library
 *              only, built offline in a scratch directory), GOMAXPROCS=N.
 *   weft       weft-httpd from weft-bench's own directory, --workers N.
 *   weft-procs weft-httpd --procs N --workers 1: N processes of one worker
 *              each under the pre-fork supervisor, one shared listener
 *              (processes x coroutines, against weft's threads x
 *              coroutines on the same N cores).
 *   weft-procs-rp
 *              the same with --reuseport: one SO_REUSEPORT listener per
 *              process slot, owned by the master.
 *
 * N is --workers.  Each child measures one implementation:
 *
 *   1. Start the server and check it: three pipelined requests in one
 *      write, then one head split over two writes; every answer must be a
 *      200 whose body is "Hello, world".
 *   2. `wrk -t1 -c100 -dD --latency`, then the same with -c1000 (D = 8 s,
 *      2 s with --quick); a Lua done() hook prints wrk's totals.
 *        req_per_s_cC       requests / wrk's duration
 *        p99_ms_cC          99th percentile latency
 *        cpu_us_per_req_cC  the server's utime+stime (all its threads and
 *                           processes, /proc/PID/stat) over the wrk run,
 *                           divided by the requests served
 *        rss_kib_cC         the server's peak RSS, sampled every 100 ms
 *        errors_cC          socket errors + non-2xx answers, only when
 *                           there were any (and a note says which)
 *   3. Stop it (SIGTERM; SIGKILL after 3 s), start a fresh one, check it,
 *      wait 100 ms, read its RSS, open 5,000 connections, send one request
 *      on each and read the answer, keep them all open, wait 250 ms, read
 *      the RSS again:
 *        idle_kib_per_conn  (RSS with them - RSS before) / 5,000
 *
 * wrk -t1 saturates one CPU by itself, so on a 2-CPU machine a 1-worker
 * server has the other one; cpu_us_per_req says what each request cost the
 * server whatever wrk managed to send.  RSS and CPU cover the server's
 * whole process tree (nginx: master and workers).  The child raises
 * RLIMIT_NOFILE to its hard limit and the servers inherit it.  Every server
 * runs in the child's process group with PR_SET_PDEATHSIG, so the
 * harness's kill of the group ends them too when a child fails.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "goprog.h"
#include "httpload.h"
#include "proc.h"
#include "report.h"
#include "scenarios.h"
#include "util.h"

#define IDLE_CONNS	5000
#define LOAD_CONNS_LO	100
#define LOAD_CONNS_HI	1000

/* ---- the Go server (built and run only when Go is installed) ---- */

static const char go_server[] =
	"// weft-bench's Go comparison: one goroutine per connection.\n"
	"package main\n"
	"\n"
	"import (\n"
	"\t\"bytes\"\n"
	"\t\"flag\"\n"
	"\t\"fmt\"\n"
	"\t\"net\"\n"
	"\t\"os\"\n"
	"\t\"strconv\"\n"
	"\t\"strings\"\n"
	"\t\"time\"\n"
	")\n"
	"\n"
	"const resp = \"HTTP/1.1 200 OK\\r\\n\" +\n"
	"\t\"Content-Type: text/plain\\r\\n\" +\n"
	"\t\"Content-Length: 12\\r\\n\\r\\nHello, world\"\n"
	"\n"
	"var batch = []byte(strings.Repeat(resp, 32))\n"
	"var end = []byte(\"\\r\\n\\r\\n\")\n"
	"\n"
	"func serve(c net.Conn) {\n"
	"\tdefer c.Close()\n"
	"\tbuf := make([]byte, 2048)\n"
	"\tn, scanned := 0, 0\n"
	"\tfor {\n"
	"\t\tm, err := c.Read(buf[n:])\n"
	"\t\tif m <= 0 {\n"
	"\t\t\treturn\n"
	"\t\t}\n"
	"\t\tn += m\n"
	"\t\tfrom, start, owed := scanned-3, 0, 0\n"
	"\t\tif from < 0 {\n"
	"\t\t\tfrom = 0\n"
	"\t\t}\n"
	"\t\tfor {\n"
	"\t\t\ti := bytes.Index(buf[from:n], end)\n"
	"\t\t\tif i < 0 {\n"
	"\t\t\t\tbreak\n"
	"\t\t\t}\n"
	"\t\t\towed++\n"
	"\t\t\tstart = from + i + 4\n"
	"\t\t\tfrom = start\n"
	"\t\t}\n"
	"\t\tcopy(buf, buf[start:n])\n"
	"\t\tn -= start\n"
	"\t\tscanned = n\n"
	"\t\tfor owed > 0 {\n"
	"\t\t\tk := owed\n"
	"\t\t\tif k > 32 {\n"
	"\t\t\t\tk = 32\n"
	"\t\t\t}\n"
	"\t\t\tif _, err := c.Write(batch[:k*len(resp)]); err != nil {\n"
	"\t\t\t\treturn\n"
	"\t\t\t}\n"
	"\t\t\towed -= k\n"
	"\t\t}\n"
	"\t\tif n == len(buf) || err != nil {\n"
	"\t\t\treturn\n"
	"\t\t}\n"
	"\t}\n"
	"}\n"
	"\n"
	"func main() {\n"
	"\thost := flag.String(\"host\", \"127.0.0.1\", \"address\")\n"
	"\tport := flag.Int(\"port\", 0, \"port (0: any)\")\n"
	"\tflag.Parse()\n"
	"\tln, err := net.Listen(\"tcp\", net.JoinHostPort(*host, "
	"strconv.Itoa(*port)))\n"
	"\tif err != nil {\n"
	"\t\tfmt.Fprintln(os.Stderr, err)\n"
	"\t\tos.Exit(1)\n"
	"\t}\n"
	"\tfmt.Printf(\"weft-bench-go: listening on %s\\n\", ln.Addr())\n"
	"\tfor {\n"
	"\t\tc, err := ln.Accept()\n"
	"\t\tif err != nil {\n"
	"\t\t\ttime.Sleep(time.Millisecond)\n"
	"\t\t\tcontinue\n"
	"\t\t}\n"
	"\t\tgo serve(c)\n"
	"\t}\n"
	"}\n";

/* wrk's done() hook: one line the child parses. */
static const char wrk_script[] =
	"done = function(summary, latency, requests)\n"
	"  local e = summary.errors\n"
	"  io.write(string.format(\"weft-bench-wrk: requests=%.0f "
	"duration_us=%.0f p99_us=%.0f connect=%.0f read=%.0f write=%.0f "
	"status=%.0f timeout=%.0f\\n\",\n"
	"    summary.requests, summary.duration, latency:percentile(99),\n"
	"    e.connect, e.read, e.write, e.status, e.timeout))\n"
	"end\n";

/* ---- the client side: checks, wrk, idle connections ---- */

static const char http_req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

struct reader {
	int fd;
	size_t len;
	char buf[1024 + 1];	/* NUL-terminated */
};

static int
send_str(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

static long
content_length(const char *head, size_t len)
{
	const char *p = head;
	const char *end = head + len;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);

		if (!eol)
			break;
		if (!strncasecmp(p, "Content-Length:", 15))
			return strtol(p + 15, NULL, 10);
		p = eol + 2;
	}
	return -1;
}

/*
 * Read one whole response (5 s at most) and check it is a 200 saying
 * "Hello, world".  0, or -1 with the reason in err.
 */
static int
read_response(struct reader *r, char *err, size_t errlen)
{
	for (;;) {
		char *end = memmem(r->buf, r->len, "\r\n\r\n", 4);
		struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
		ssize_t n;

		if (end) {
			size_t head = (size_t)(end - r->buf) + 4;
			long clen = content_length(r->buf, head);

			if (head < 13 || memcmp(r->buf, "HTTP/1.1 200 ", 13)) {
				snprintf(err, errlen, "answer '%.*s'",
					 (int)strcspn(r->buf, "\r\n"), r->buf);
				return -1;
			}
			if (clen != 12) {
				snprintf(err, errlen, "Content-Length %ld, "
					 "not 12", clen);
				return -1;
			}
			if (r->len >= head + 12) {
				if (memcmp(r->buf + head, "Hello, world", 12)) {
					snprintf(err, errlen, "body '%.12s'",
						 r->buf + head);
					return -1;
				}
				r->len -= head + 12;
				memmove(r->buf, r->buf + head + 12, r->len);
				r->buf[r->len] = '\0';
				return 0;
			}
		}
		if (r->len == sizeof(r->buf) - 1) {
			snprintf(err, errlen, "answer too long");
			return -1;
		}
		n = poll(&pfd, 1, 5000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			snprintf(err, errlen, "no answer within 5 s");
			return -1;
		}
		n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len,
			 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "connection %s",
				 n ? strerror(errno) : "closed");
			return -1;
		}
		r->len += (size_t)n;
		r->buf[r->len] = '\0';
	}
}

/* Pipelining and a split head, each answered in full: or the run fails. */
void
http_check(struct bench_server *s)
{
	struct reader r = { .len = 0 };
	char three[3 * sizeof(http_req)];
	size_t half = sizeof(http_req) / 2;
	char err[128];
	int i;

	r.fd = bench_connect_port(s->port);
	if (r.fd < 0)
		bench_proc_fail("%s: connect: %s", s->impl, strerror(-r.fd));
	snprintf(three, sizeof(three), "%s%s%s", http_req, http_req,
		 http_req);
	if (send_str(r.fd, three, strlen(three)) < 0)
		bench_proc_fail("%s: send: %s", s->impl, strerror(errno));
	for (i = 0; i < 3; i++) {
		if (read_response(&r, err, sizeof(err)) < 0)
			bench_proc_fail("%s: pipelined request %d of 3: %s",
					s->impl, i + 1, err);
	}
	if (send_str(r.fd, http_req, half) < 0)
		bench_proc_fail("%s: send: %s", s->impl, strerror(errno));
	bench_sleep_ms(20);
	if (send_str(r.fd, http_req + half, strlen(http_req) - half) < 0)
		bench_proc_fail("%s: send: %s", s->impl, strerror(errno));
	if (read_response(&r, err, sizeof(err)) < 0)
		bench_proc_fail("%s: request split over two writes: %s",
				s->impl, err);
	if (r.len)
		bench_proc_fail("%s: %zu bytes more than 4 answers", s->impl,
				r.len);
	close(r.fd);
}

void
http_run_wrk(const char *wrk, struct bench_server *s, int conns, int secs,
	     struct http_load *l)
{
	int64_t deadline = bench_now() + (int64_t)(secs + 30) * 1000000000;
	long connect, rd, wr, status, timeout;
	char c[16], d[16], url[64], script[PATH_MAX], log[PATH_MAX];
	char *argv[] = { (char *)wrk, "-t1", "-c", c, "-d", d, "--latency",
			 "-s", script, url, NULL };
	double req, dur_us, p99_us, cpu0, cpu1;
	uint64_t total0 = 0, steal0 = 0, total1 = 0, steal1 = 0;
	static char out[65536];
	const char *p;
	int st;

	snprintf(c, sizeof(c), "%d", conns);
	snprintf(d, sizeof(d), "%ds", secs);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	snprintf(script, sizeof(script), "%s/done.lua", bench_scratch_dir);
	snprintf(log, sizeof(log), "%s/wrk-c%d.log", bench_scratch_dir, conns);

	memset(l, 0, sizeof(*l));
	l->conns = conns;
	bench_tree_refresh(s);
	cpu0 = bench_tree_cpu_s(s);
	bench_cpu_ticks(&total0, &steal0);
	bench_wrk_pid = bench_spawn(argv, NULL, log);
	for (;;) {
		long rss;
		pid_t r;

		bench_sleep_ms(100);
		rss = bench_tree_rss_kib(s);
		if (rss > l->rss_kib)
			l->rss_kib = rss;
		r = waitpid(bench_wrk_pid, &st, WNOHANG);
		if (r == bench_wrk_pid)
			break;
		if (bench_now() > deadline)
			bench_proc_fail("%s: wrk -c%d still running after %d s",
					s->impl, conns, secs + 30);
	}
	bench_wrk_pid = 0;
	cpu1 = bench_tree_cpu_s(s);
	bench_cpu_ticks(&total1, &steal1);
	if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
		s->pid = 0;
		bench_proc_fail("%s died under wrk -c%d: %s", s->impl, conns,
				bench_log_tail(s->log));
	}
	if (bench_read_file(log, out, sizeof(out)) < 0 ||
	    !(p = strstr(out, "weft-bench-wrk: ")) ||
	    sscanf(p, "weft-bench-wrk: requests=%lf duration_us=%lf "
		   "p99_us=%lf connect=%ld read=%ld write=%ld status=%ld "
		   "timeout=%ld", &req, &dur_us, &p99_us, &connect, &rd, &wr,
		   &status, &timeout) != 8)
		bench_proc_fail("%s: wrk -c%d: %s", s->impl, conns,
				bench_log_tail(log));
	if (req < 1 || dur_us <= 0)
		bench_proc_fail("%s: wrk -c%d: no request answered", s->impl,
				conns);
	l->requests = (long)req;
	l->secs = dur_us / 1e6;
	l->p99_ms = p99_us / 1e3;
	l->cpu_us = (cpu1 - cpu0) * 1e6 / req;
	l->errors = connect + rd + wr + status + timeout;
	snprintf(l->errwhat, sizeof(l->errwhat), "connect %ld, read %ld, "
		 "write %ld, timeout %ld, non-2xx %ld", connect, rd, wr,
		 timeout, status);
	if (total1 > total0)
		l->steal = (double)(steal1 - steal0) /
			   (double)(total1 - total0);
}

/*
 * RSS of the server per idle keep-alive connection, in KiB: n connections
 * opened one after the other, each answered once and kept open.  The
 * growth of its open fds per connection into *fds_per_conn (unless NULL).
 */
double
http_idle(struct bench_server *s, int n, double *fds_per_conn)
{
	int *fds = calloc((size_t)n, sizeof(*fds));
	long base, rss, fd0, fd1;
	struct reader r;
	char err[128];
	int i;

	if (!fds)
		bench_proc_fail("out of memory");
	bench_tree_refresh(s);
	bench_sleep_ms(100);
	base = bench_tree_rss_kib(s);
	fd0 = bench_tree_fds(s);
	for (i = 0; i < n; i++) {
		int ret;

		fds[i] = bench_connect_port(s->port);
		if (fds[i] < 0)
			bench_proc_fail("%s: idle connection %d of %d: %s",
					s->impl, i + 1, n, strerror(-fds[i]));
		ret = send_str(fds[i], http_req, strlen(http_req));
		if (ret < 0)
			bench_proc_fail("%s: idle connection %d of %d: "
					"send: %s", s->impl, i + 1, n,
					strerror(-ret));
		r.fd = fds[i];
		r.len = 0;
		if (read_response(&r, err, sizeof(err)) < 0)
			bench_proc_fail("%s: idle connection %d of %d: %s",
					s->impl, i + 1, n, err);
	}
	bench_sleep_ms(250);
	bench_tree_refresh(s);	/* a server that forks per connection */
	rss = bench_tree_rss_kib(s);
	fd1 = bench_tree_fds(s);
	if (fds_per_conn)
		*fds_per_conn = (double)(fd1 - fd0) / n;
	for (i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return (double)(rss - base) / n;
}

/* ---- the implementations ---- */

/* What differs between implementations: how to start the server. */
struct impl {
	const char *name;
	char *argv[16];
	char *env[8];
	int port;		/* fixed (nginx), or 0: from its log */
	int workers;
	char store[8][PATH_MAX];	/* strings argv and env point to */
};

static char *
impl_str(struct impl *im, int i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static char *
impl_str(struct impl *im, int i, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(im->store[i], sizeof(im->store[i]), fmt, ap);
	va_end(ap);
	return im->store[i];
}

static void
setup_serve(struct impl *im, const char *kind, int workers)
{
	char exe[PATH_MAX];

	bench_self_path(exe, sizeof(exe), false);
	im->argv[0] = impl_str(im, 0, "%s", exe);
	im->argv[1] = "--serve";
	im->argv[2] = (char *)kind;
	im->argv[3] = "--port";
	im->argv[4] = "0";
	im->argv[5] = "--workers";
	im->argv[6] = impl_str(im, 1, "%d", workers);
	im->workers = workers;
}

static void
setup_weft(struct impl *im, int workers)
{
	char dir[PATH_MAX];

	bench_self_path(dir, sizeof(dir), true);
	im->argv[0] = impl_str(im, 0, "%s/weft-httpd", dir);
	if (access(im->argv[0], X_OK) < 0)
		bench_proc_fail("%s: %s (make builds it)", im->argv[0],
				strerror(errno));
	im->argv[1] = "--host";
	im->argv[2] = "127.0.0.1";
	im->argv[3] = "--port";
	im->argv[4] = "0";
	im->argv[5] = "--workers";
	im->argv[6] = impl_str(im, 1, "%d", workers);
	im->workers = workers;
}

static void
setup_weft_procs(struct impl *im, int procs, bool reuseport)
{
	setup_weft(im, 1);
	im->argv[7] = "--procs";
	im->argv[8] = impl_str(im, 2, "%d", procs);
	im->argv[9] = reuseport ? "--reuseport" : NULL;
	im->workers = procs;
}

static void
setup_nginx(struct impl *im, int workers, long nofile)
{
	static const char *const also[] = {
		"/usr/sbin/nginx", "/usr/local/sbin/nginx",
		"/usr/local/nginx/sbin/nginx", NULL,
	};
	/* Temp-path directives exist only with their module built in. */
	static const char *const mods[] = { "proxy", "fastcgi", "uwsgi",
					    "scgi" };
	char bin[PATH_MAX], conf[PATH_MAX], log[PATH_MAX];
	char *vargv[] = { bin, "-V", NULL };
	static char text[65536], temps[1024];
	size_t used = 0;
	size_t i;

	if (!bench_find_prog(NULL, "nginx", also, bin, sizeof(bin)))
		bench_proc_skip("nginx not installed "
				"(Debian package nginx-light)");
	snprintf(log, sizeof(log), "%s/nginx-V.log", bench_scratch_dir);
	if (bench_run_cmd(vargv, NULL, log, 10) != 0 ||
	    bench_read_file(log, text, sizeof(text)) <= 0)
		bench_proc_fail("%s -V failed: %s", bin, bench_log_tail(log));
	for (i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
		char without[64];

		snprintf(without, sizeof(without), "--without-http_%s_module",
			 mods[i]);
		if (strstr(text, without))
			continue;
		used += (size_t)snprintf(temps + used, sizeof(temps) - used,
					 "\t%s_temp_path %s/%s;\n", mods[i],
					 bench_scratch_dir, mods[i]);
	}
	im->port = bench_free_port();
	snprintf(conf, sizeof(conf), "%s/nginx.conf", bench_scratch_dir);
	snprintf(text, sizeof(text),
		 "# generated by weft-bench (the http scenario)\n"
		 "daemon off;\n"
		 "master_process on;\n"
		 "worker_processes %d;\n"
		 "pid %s/nginx.pid;\n"
		 "error_log stderr warn;\n"
		 "worker_rlimit_nofile %ld;\n"
		 "events {\n"
		 "\tworker_connections %d;\n"
		 "}\n"
		 "http {\n"
		 "\taccess_log off;\n"
		 "\tkeepalive_requests 1000000;\n"
		 "\tkeepalive_timeout 300s;\n"
		 "\tdefault_type text/plain;\n"
		 "\tclient_body_temp_path %s/body;\n"
		 "%s"
		 "\tserver {\n"
		 "\t\tlisten 127.0.0.1:%d;\n"
		 "\t\tlocation / {\n"
		 "\t\t\treturn 200 \"Hello, world\";\n"
		 "\t\t}\n"
		 "\t}\n"
		 "}\n", workers, bench_scratch_dir, nofile,
		 IDLE_CONNS + LOAD_CONNS_HI + 1000, bench_scratch_dir, temps,
		 im->port);
	if (bench_write_file(conf, text) < 0)
		bench_proc_fail("%s: %s", conf, strerror(errno));
	im->argv[0] = impl_str(im, 0, "%s", bin);
	im->argv[1] = "-p";
	im->argv[2] = impl_str(im, 1, "%s/", bench_scratch_dir);
	im->argv[3] = "-e";
	im->argv[4] = "stderr";
	im->argv[5] = "-c";
	im->argv[6] = impl_str(im, 2, "%s", conf);
	im->workers = workers;
}

static void
setup_go(struct impl *im, int workers)
{
	char bin[PATH_MAX];
	int ret;

	ret = bench_go_compile(bench_scratch_dir, "go-httpd", go_server, bin,
			       sizeof(bin));
	if (ret == -ENOENT)
		bench_proc_skip("go not installed "
				"(Debian package golang-1.19)");
	if (ret < 0)
		bench_proc_fail("go build failed: %s",
				bench_go_log(bench_scratch_dir));
	im->argv[0] = impl_str(im, 0, "%s", bin);
	im->argv[1] = "--host";
	im->argv[2] = "127.0.0.1";
	im->argv[3] = "--port";
	im->argv[4] = "0";
	im->env[0] = impl_str(im, 1, "GOMAXPROCS=%d", workers);
	im->workers = workers;
}

void
http_emit_load(const struct http_load *l, int workers)
{
	char m[32];

	snprintf(m, sizeof(m), "req_per_s_c%d", l->conns);
	bench_emit(m, KIND_HIGHER, l->requests / l->secs, "req/s", l->conns,
		   workers);
	snprintf(m, sizeof(m), "p99_ms_c%d", l->conns);
	bench_emit(m, KIND_TIME, l->p99_ms, "ms", l->conns, workers);
	snprintf(m, sizeof(m), "cpu_us_per_req_c%d", l->conns);
	bench_emit(m, KIND_TIME, l->cpu_us, "us", l->conns, workers);
	snprintf(m, sizeof(m), "rss_kib_c%d", l->conns);
	bench_emit(m, KIND_MEMORY, (double)l->rss_kib, "KiB", l->conns,
		   workers);
	/* Another guest's load makes every number here worse. */
	if (l->steal >= 0.05)
		bench_note("the hypervisor stole %.0f%% of the CPU time during "
			   "wrk -c%d", 100 * l->steal, l->conns);
	if (l->errors) {
		snprintf(m, sizeof(m), "errors_c%d", l->conns);
		bench_emit(m, KIND_INFO, (double)l->errors, "count", l->conns,
			   workers);
		bench_note("%ld wrk errors at -c%d (%s)", l->errors, l->conns,
			   l->errwhat);
	}
}

long
http_client_setup(const struct bench_cfg *cfg, const char *name, long idle,
		  int fds_per_idle, char *wrk, size_t len)
{
	long nidle = bench_size(cfg, idle, idle);
	long need = nidle * fds_per_idle + 200;
	struct rlimit rl;
	char path[PATH_MAX];
	int ret;

	/* Orphans of a server (nginx workers) become ours to reap. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (!bench_find_prog(NULL, "wrk", NULL, wrk, len))
		bench_skip("wrk not installed (Debian package wrk)");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)need) {
		if (rl.rlim_cur < 1300)
			bench_fail("RLIMIT_NOFILE is %lu: need 1,300 or more",
				   (unsigned long)rl.rlim_cur);
		nidle = ((long)rl.rlim_cur - 200) / fds_per_idle;
		bench_note("RLIMIT_NOFILE %lu: %ld idle connections, not %ld",
			   (unsigned long)rl.rlim_cur, nidle, idle);
	}
	ret = bench_scratch(name, bench_scratch_dir,
			    sizeof(bench_scratch_dir));
	if (ret < 0) {
		bench_scratch_dir[0] = '\0';
		bench_fail("scratch directory: %s", strerror(-ret));
	}
	snprintf(path, sizeof(path), "%s/done.lua", bench_scratch_dir);
	if (bench_write_file(path, wrk_script) < 0)
		bench_proc_fail("%s: %s", path, strerror(errno));
	return nidle;
}

static int
http_run(const struct bench_cfg *cfg, enum bench_impl which)
{
	static struct impl im;
	struct bench_server srv;
	struct http_load load[2];
	struct rlimit rl;
	char wrk[PATH_MAX];
	int secs = cfg->quick ? 2 : 8;
	long nidle;
	double idle;

	nidle = http_client_setup(cfg, "http", IDLE_CONNS, 1, wrk,
				  sizeof(wrk));
	getrlimit(RLIMIT_NOFILE, &rl);

	memset(&im, 0, sizeof(im));
	switch (which) {
	case IMPL_THREADS:
		setup_serve(&im, "threads", 1);
		break;
	case IMPL_EPOLL:
		setup_serve(&im, "epoll", 1);
		break;
	case IMPL_EPOLL_MT:
		if (cfg->workers < 2)
			bench_proc_skip("--workers 1: "
					"the epoll row is the same");
		setup_serve(&im, "epoll", cfg->workers);
		break;
	case IMPL_NGINX:
		setup_nginx(&im, cfg->workers, (long)rl.rlim_cur);
		break;
	case IMPL_GO:
		setup_go(&im, cfg->workers);
		break;
	case IMPL_WEFT:
		setup_weft(&im, cfg->workers);
		break;
	case IMPL_WEFT_PROCS:
		setup_weft_procs(&im, cfg->workers, false);
		break;
	case IMPL_WEFT_PROCS_RP:
		setup_weft_procs(&im, cfg->workers, true);
		break;
	default:
		bench_proc_fail("no such implementation");
	}

	memset(&srv, 0, sizeof(srv));
	srv.impl = bench_impl_name(which);
	snprintf(srv.log, sizeof(srv.log), "%s/server.log", bench_scratch_dir);
	bench_server_start(&srv, im.argv, im.env, im.port);
	http_check(&srv);
	http_run_wrk(wrk, &srv, LOAD_CONNS_LO, secs, &load[0]);
	bench_sleep_ms(300);
	http_run_wrk(wrk, &srv, LOAD_CONNS_HI, secs, &load[1]);
	bench_server_stop(&srv);

	/*
	 * A fresh server: no pools or caches grown by the load above.  (nginx
	 * gets its port back: it sets SO_REUSEADDR.)
	 */
	bench_server_start(&srv, im.argv, im.env, im.port);
	http_check(&srv);
	idle = http_idle(&srv, (int)nidle, NULL);
	bench_server_stop(&srv);
	bench_cleanup();

	http_emit_load(&load[0], im.workers);
	http_emit_load(&load[1], im.workers);
	bench_emit("idle_kib_per_conn", KIND_MEMORY, idle, "KiB", nidle,
		   im.workers);
	return 0;
}

int
http_threads(const struct bench_cfg *cfg)
{
	return http_run(cfg, IMPL_THREADS);
}

int
http_epoll(const struct bench_cfg *cfg)
{
	return http_run(cfg, IMPL_EPOLL);
}

int
http_epoll_mt(const struct bench_cfg *cfg)
{
	return http_run(cfg, IMPL_EPOLL_MT);
}

int
http_nginx(const struct bench_cfg *cfg)
{
	return http_run(cfg, IMPL_NGINX);
}

int
http_go(const struct bench_cfg *cfg)
{
	return http_run(cfg, IMPL_GO);
}

int
http_weft(const struct bench_cfg *cfg)
{
	return http_run(cfg, IMPL_WEFT);
}

int
http_weft_procs(const struct bench_cfg *cfg)
{
	return http_run(cfg, IMPL_WEFT_PROCS);
}

int
http_weft_procs_rp(const struct bench_cfg *cfg)
{
	return http_run(cfg, IMPL_WEFT_PROCS_RP);
}

/* SPDX-License-Identifier: MIT */
/*
 * proxy: TCP proxies between wrk and a weft-httpd backend.
 *
 * wrk -> proxy -> backend, all on 127.0.0.1, keep-alive HTTP/1.1 through
 * the proxy.  The backend is weft-httpd from weft-bench's own directory,
 * --workers 1 (unpinned, as the http scenario runs its servers).  Every
 * proxy gets one worker thread or process whatever --workers says, so the
 * rows compare what one core's worth of each proxy does:
 *
 *   threads  `weft-bench --serve-proxy threads --upstream HOST:PORT`
 *            (servers.c): blocking sockets, a blocking accept loop, two
 *            detached threads per connection (default attributes), one per
 *            direction, each copying with read()/send() through a 16 KiB
 *            buffer on its stack and carrying EOF on as shutdown(SHUT_WR).
 *   nginx    if installed with the stream module (Debian nginx-light and
 *            libnginx-mod-stream): `stream { server { proxy_pass } }`,
 *            worker_processes 1, no access log, proxy_half_close on
 *            where nginx has it (1.21.4 on; master + 1 worker).
 *   go       if Go is installed (Debian golang-1.19): go_proxy[] below,
 *            two goroutines per connection, each an io.Copy (splice(2) on
 *            Linux for TCP to TCP) then CloseWrite, GOMAXPROCS=1.
 *   weft     weft-proxy: $WEFT_PROXY, else weft-proxy beside weft-bench;
 *            `--listen 127.0.0.1:0 --upstream 127.0.0.1:PORT --procs 1
 *            --workers 1` (master + 1 child).  Skipped while not built.
 *   haproxy  if /usr/sbin/haproxy (or haproxy in $PATH) exists: mode tcp,
 *            nbthread 1, maxconn 30,000 or what RLIMIT_NOFILE allows
 *            (HAProxy wants two fds per connection), no logging, in the
 *            foreground
 *            (-db: one process).
 *
 * Each child measures one proxy:
 *
 *   1. Start the backend, check it (http.c's pipelining and split-head
 *      check); start the proxy, wait for its "listening on" line (or its
 *      fixed port to accept), run the same check through it; then one
 *      request followed by shutdown(SHUT_WR), whose answer and EOF must
 *      come back (a note says so if not: the half-close is not carried).
 *   2. `wrk -t1 -c100` and `-c1000` through the proxy, as http does (8 s,
 *      2 s with --quick):
 *        req_per_s_cC, p99_ms_cC  as wrk saw them
 *        cpu_us_per_req_cC        the proxy's utime+stime (its whole
 *                                 process tree: master and worker) over
 *                                 the run per request; the backend's CPU
 *                                 is not in it
 *        rss_kib_cC               the proxy's peak RSS (tree)
 *   3. A fresh proxy (same backend): 2,000 connections through it, each
 *      sends one request and reads the answer (so the proxy holds both of
 *      its sockets), all kept open:
 *        idle_kib_per_conn        the proxy's RSS growth / 2,000
 *        idle_fds_per_conn        its open fds' growth / 2,000 (2 for a
 *                                 proxy that holds a client and an
 *                                 upstream socket and nothing else)
 *
 * Three busy processes (wrk, proxy, backend) share the machine's CPUs: on
 * two CPUs req/s is bounded by whichever of them is starved, so
 * cpu_us_per_req says what the proxy itself spends.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "goprog.h"
#include "httpload.h"
#include "proc.h"
#include "report.h"
#include "scenarios.h"
#include "util.h"

/*
 * Not 5,000 as in http: Go's io.Copy splices through a pipe per blocked
 * direction (four more fds per connection), and 5,000 of them do not fit
 * in the 20,000 fds these machines allow.
 */
#define PROXY_IDLE	2000
#define PROXY_CONNS_LO	100
#define PROXY_CONNS_HI	1000

/* ---- the Go proxy (built and run only when Go is installed) ---- */

static const char go_proxy[] =
	"// weft-bench's Go proxy: one goroutine per direction.\n"
	"package main\n"
	"\n"
	"import (\n"
	"\t\"flag\"\n"
	"\t\"fmt\"\n"
	"\t\"io\"\n"
	"\t\"net\"\n"
	"\t\"os\"\n"
	"\t\"time\"\n"
	")\n"
	"\n"
	"// Copy until EOF and pass the half-close on; on an error end both.\n"
	"func pipe(dst, src *net.TCPConn, done chan<- struct{}) {\n"
	"\tif _, err := io.Copy(dst, src); err != nil {\n"
	"\t\tdst.Close()\n"
	"\t\tsrc.Close()\n"
	"\t} else {\n"
	"\t\tdst.CloseWrite()\n"
	"\t}\n"
	"\tdone <- struct{}{}\n"
	"}\n"
	"\n"
	"func serve(c *net.TCPConn, upstream string) {\n"
	"\tu, err := net.Dial(\"tcp\", upstream)\n"
	"\tif err != nil {\n"
	"\t\tc.Close()\n"
	"\t\treturn\n"
	"\t}\n"
	"\tuc := u.(*net.TCPConn)\n"
	"\tdone := make(chan struct{}, 2)\n"
	"\tgo pipe(uc, c, done)\n"
	"\tgo pipe(c, uc, done)\n"
	"\t<-done\n"
	"\t<-done\n"
	"\tc.Close()\n"
	"\tuc.Close()\n"
	"}\n"
	"\n"
	"func main() {\n"
	"\tlisten := flag.String(\"listen\", \"127.0.0.1:0\", \"address\")\n"
	"\tupstream := flag.String(\"upstream\", \"\", \"HOST:PORT\")\n"
	"\tflag.Parse()\n"
	"\tln, err := net.Listen(\"tcp\", *listen)\n"
	"\tif err != nil {\n"
	"\t\tfmt.Fprintln(os.Stderr, err)\n"
	"\t\tos.Exit(1)\n"
	"\t}\n"
	"\tfmt.Printf(\"weft-bench-go-proxy: listening on %s\\n\", "
	"ln.Addr())\n"
	"\tfor {\n"
	"\t\tc, err := ln.Accept()\n"
	"\t\tif err != nil {\n"
	"\t\t\ttime.Sleep(time.Millisecond)\n"
	"\t\t\tcontinue\n"
	"\t\t}\n"
	"\t\tgo serve(c.(*net.TCPConn), *upstream)\n"
	"\t}\n"
	"}\n";

/* ---- the proxies ---- */

/* How to start one proxy in front of the backend on port `up`. */
struct pimpl {
	char *argv[16];
	char *env[4];
	int port;		/* fixed (nginx, haproxy); 0: from its log */
	char store[6][PATH_MAX];	/* strings argv and env point to */
};

static char *
pimpl_str(struct pimpl *pi, int i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static char *
pimpl_str(struct pimpl *pi, int i, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pi->store[i], sizeof(pi->store[i]), fmt, ap);
	va_end(ap);
	return pi->store[i];
}

static void
setup_threads(struct pimpl *pi, int up)
{
	char exe[PATH_MAX];

	bench_self_path(exe, sizeof(exe), false);
	pi->argv[0] = pimpl_str(pi, 0, "%s", exe);
	pi->argv[1] = "--serve-proxy";
	pi->argv[2] = "threads";
	pi->argv[3] = "--upstream";
	pi->argv[4] = pimpl_str(pi, 1, "127.0.0.1:%d", up);
	pi->argv[5] = "--port";
	pi->argv[6] = "0";
}

static void
setup_nginx(struct pimpl *pi, int up, long nofile)
{
	static const char *const also[] = {
		"/usr/sbin/nginx", "/usr/local/sbin/nginx",
		"/usr/local/nginx/sbin/nginx", NULL,
	};
	static const char *const mods[] = {
		"/usr/lib/nginx/modules/ngx_stream_module.so",
		"/usr/share/nginx/modules/ngx_stream_module.so",
		"/usr/lib64/nginx/modules/ngx_stream_module.so",
	};
	char bin[PATH_MAX], conf[PATH_MAX], log[PATH_MAX], load[PATH_MAX + 32];
	char *vargv[] = { bin, "-V", NULL };
	static char text[65536];
	int major, minor, patch;
	const char *half = "";
	const char *p;
	size_t i;

	if (!bench_find_prog(NULL, "nginx", also, bin, sizeof(bin)))
		bench_proc_skip("nginx not installed "
				"(install: apt-get install nginx-light "
				"libnginx-mod-stream)");
	snprintf(log, sizeof(log), "%s/nginx-V.log", bench_scratch_dir);
	if (bench_run_cmd(vargv, NULL, log, 10) != 0 ||
	    bench_read_file(log, text, sizeof(text)) <= 0)
		bench_proc_fail("%s -V failed: %s", bin, bench_log_tail(log));
	/* Built in (--with-stream), or a dynamic module to load. */
	load[0] = '\0';
	if (!strstr(text, "--with-stream ") &&
	    !strstr(text, "--with-stream\n")) {
		for (i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
			if (access(mods[i], R_OK) == 0)
				break;
		}
		if (i == sizeof(mods) / sizeof(mods[0]))
			bench_proc_skip("nginx has no stream module (install: "
					"apt-get install libnginx-mod-stream)");
		snprintf(load, sizeof(load), "load_module %s;\n", mods[i]);
	}
	/* proxy_half_close (1.21.4 on) carries a client's EOF on. */
	p = strstr(text, "nginx/");
	if (p && sscanf(p, "nginx/%d.%d.%d", &major, &minor, &patch) == 3 &&
	    (major > 1 || (major == 1 && (minor > 21 ||
					  (minor == 21 && patch >= 4)))))
		half = "\t\tproxy_half_close on;\n";
	pi->port = bench_free_port();
	snprintf(conf, sizeof(conf), "%s/nginx.conf", bench_scratch_dir);
	snprintf(text, sizeof(text),
		 "# generated by weft-bench (the proxy scenario)\n"
		 "%s"
		 "daemon off;\n"
		 "master_process on;\n"
		 "worker_processes 1;\n"
		 "pid %s/nginx.pid;\n"
		 "error_log stderr warn;\n"
		 "worker_rlimit_nofile %ld;\n"
		 "events {\n"
		 "\tworker_connections %d;\n"
		 "}\n"
		 "stream {\n"
		 "\tserver {\n"
		 "\t\tlisten 127.0.0.1:%d;\n"
		 "\t\tproxy_pass 127.0.0.1:%d;\n"
		 "\t\tproxy_timeout 300s;\n"
		 "%s"
		 "\t}\n"
		 "}\n", load, bench_scratch_dir, nofile,
		 2 * (PROXY_IDLE + PROXY_CONNS_HI) + 1000, pi->port, up, half);
	if (bench_write_file(conf, text) < 0)
		bench_proc_fail("%s: %s", conf, strerror(errno));
	pi->argv[0] = pimpl_str(pi, 0, "%s", bin);
	pi->argv[1] = "-p";
	pi->argv[2] = pimpl_str(pi, 1, "%s/", bench_scratch_dir);
	pi->argv[3] = "-e";
	pi->argv[4] = "stderr";
	pi->argv[5] = "-c";
	pi->argv[6] = pimpl_str(pi, 2, "%s", conf);
}

static void
setup_go(struct pimpl *pi, int up)
{
	char bin[PATH_MAX];
	int ret;

	ret = bench_go_compile(bench_scratch_dir, "go-proxy", go_proxy, bin,
			       sizeof(bin));
	if (ret == -ENOENT)
		bench_proc_skip("go not installed "
				"(install: apt-get install golang-1.19)");
	if (ret < 0)
		bench_proc_fail("go build failed: %s",
				bench_go_log(bench_scratch_dir));
	pi->argv[0] = pimpl_str(pi, 0, "%s", bin);
	pi->argv[1] = "-listen";
	pi->argv[2] = "127.0.0.1:0";
	pi->argv[3] = "-upstream";
	pi->argv[4] = pimpl_str(pi, 1, "127.0.0.1:%d", up);
	pi->env[0] = "GOMAXPROCS=1";
}

static void
setup_weft(struct pimpl *pi, int up)
{
	const char *env = getenv("WEFT_PROXY");
	char dir[PATH_MAX];

	if (env && *env) {
		pi->argv[0] = pimpl_str(pi, 0, "%s", env);
	} else {
		bench_self_path(dir, sizeof(dir), true);
		pi->argv[0] = pimpl_str(pi, 0, "%s/weft-proxy", dir);
	}
	if (access(pi->argv[0], X_OK) < 0)
		bench_proc_skip("%s: %s (make builds it; or set WEFT_PROXY)",
				pi->argv[0], strerror(errno));
	pi->argv[1] = "--listen";
	pi->argv[2] = "127.0.0.1:0";
	pi->argv[3] = "--upstream";
	pi->argv[4] = pimpl_str(pi, 1, "127.0.0.1:%d", up);
	pi->argv[5] = "--procs";
	pi->argv[6] = "1";
	pi->argv[7] = "--workers";
	pi->argv[8] = "1";
}

static void
setup_haproxy(struct pimpl *pi, int up, long nofile)
{
	static const char *const first[] = { "/usr/sbin/haproxy", NULL };
	long maxconn = (nofile - 500) / 2;
	char bin[PATH_MAX], conf[PATH_MAX];
	static char text[4096];

	if (maxconn > 30000)
		maxconn = 30000;
	if (!bench_find_prog(first, "haproxy", NULL, bin, sizeof(bin)))
		bench_proc_skip("haproxy not installed "
				"(install: apt-get install haproxy)");
	pi->port = bench_free_port();
	snprintf(conf, sizeof(conf), "%s/haproxy.cfg", bench_scratch_dir);
	snprintf(text, sizeof(text),
		 "# generated by weft-bench (the proxy scenario)\n"
		 "global\n"
		 "\tnbthread 1\n"
		 "\tmaxconn %ld\n"
		 "\tpidfile %s/haproxy.pid\n"
		 "defaults\n"
		 "\tmode tcp\n"
		 "\tmaxconn %ld\n"
		 "\ttimeout connect 5s\n"
		 "\ttimeout client 300s\n"
		 "\ttimeout server 300s\n"
		 "frontend fe\n"
		 "\tbind 127.0.0.1:%d\n"
		 "\tdefault_backend be\n"
		 "backend be\n"
		 "\tserver backend 127.0.0.1:%d\n",
		 maxconn, bench_scratch_dir, maxconn, pi->port, up);
	if (bench_write_file(conf, text) < 0)
		bench_proc_fail("%s: %s", conf, strerror(errno));
	pi->argv[0] = pimpl_str(pi, 0, "%s", bin);
	pi->argv[1] = "-db";
	pi->argv[2] = "-f";
	pi->argv[3] = pimpl_str(pi, 1, "%s", conf);
}

/*
 * A request, then shutdown(SHUT_WR): a proxy that carries the half-close
 * on delivers the answer and then the backend's EOF (weft-httpd closes
 * after answering a client that has finished sending).  NULL if so, else
 * what went wrong, for a note: the load figures do not depend on it.
 */
static const char *
halfclose_check(int port)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	int64_t deadline = bench_now() + 5 * (int64_t)1000000000;
	static char buf[4096];
	const char *what = NULL;
	size_t len = 0;
	int fd;

	fd = bench_connect_port(port);
	if (fd < 0)
		return "connect failed";
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)(sizeof(req) - 1) || shutdown(fd, SHUT_WR) < 0) {
		close(fd);
		return "send or shutdown failed";
	}
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - bench_now();
		ssize_t n;

		if (left <= 0) {
			what = "no EOF within 5 s";
			break;
		}
		if (poll(&pfd, 1, (int)(left / 1000000 + 1)) <= 0)
			continue;
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			what = "connection reset before the answer's end";
			break;
		}
		if (n == 0) {
			buf[len] = '\0';
			if (strncmp(buf, "HTTP/1.1 200 ", 13) ||
			    !strstr(buf, "Hello, world"))
				what = "EOF without the whole answer";
			break;
		}
		len += (size_t)n;
		if (len == sizeof(buf) - 1) {
			what = "answer too long";
			break;
		}
	}
	close(fd);
	return what;
}

static int
proxy_run(const struct bench_cfg *cfg, enum bench_impl which)
{
	static struct pimpl pi;
	static struct bench_server backend, proxy;
	struct http_load load[2];
	char dir[PATH_MAX], wrk[PATH_MAX];
	char *bargv[] = { dir, "--host", "127.0.0.1", "--port", "0",
			  "--workers", "1", NULL };
	int secs = cfg->quick ? 2 : 8;
	const char *halfclose;
	double idle, idle_fds;
	struct rlimit rl;
	long nidle;

	/* The proxy holds two sockets per idle connection. */
	nidle = http_client_setup(cfg, "proxy", PROXY_IDLE, 2, wrk,
				  sizeof(wrk));
	getrlimit(RLIMIT_NOFILE, &rl);

	bench_self_path(dir, sizeof(dir), true);
	strncat(dir, "/weft-httpd", sizeof(dir) - strlen(dir) - 1);
	if (access(dir, X_OK) < 0)
		bench_proc_fail("%s: %s (make builds it)", dir,
				strerror(errno));
	memset(&backend, 0, sizeof(backend));
	backend.impl = "backend weft-httpd";
	snprintf(backend.log, sizeof(backend.log), "%s/backend.log",
		 bench_scratch_dir);
	bench_server_start(&backend, bargv, NULL, 0);
	http_check(&backend);

	/* A missing proxy skips the child; the cleanup stops the backend. */
	memset(&pi, 0, sizeof(pi));
	switch (which) {
	case IMPL_THREADS:
		setup_threads(&pi, backend.port);
		break;
	case IMPL_NGINX:
		setup_nginx(&pi, backend.port, (long)rl.rlim_cur);
		break;
	case IMPL_GO:
		setup_go(&pi, backend.port);
		break;
	case IMPL_WEFT:
		setup_weft(&pi, backend.port);
		break;
	case IMPL_HAPROXY:
		setup_haproxy(&pi, backend.port, (long)rl.rlim_cur);
		break;
	default:
		bench_proc_fail("no such implementation");
	}

	memset(&proxy, 0, sizeof(proxy));
	proxy.impl = bench_impl_name(which);
	snprintf(proxy.log, sizeof(proxy.log), "%s/proxy.log",
		 bench_scratch_dir);
	bench_server_start(&proxy, pi.argv, pi.env, pi.port);
	http_check(&proxy);
	halfclose = halfclose_check(proxy.port);
	http_run_wrk(wrk, &proxy, PROXY_CONNS_LO, secs, &load[0]);
	bench_sleep_ms(300);
	http_run_wrk(wrk, &proxy, PROXY_CONNS_HI, secs, &load[1]);
	bench_server_stop(&proxy);

	/* A fresh proxy: no pools or caches grown by the load above. */
	bench_server_start(&proxy, pi.argv, pi.env, pi.port);
	http_check(&proxy);
	idle = http_idle(&proxy, (int)nidle, &idle_fds);
	bench_server_stop(&proxy);
	bench_server_stop(&backend);
	bench_cleanup();

	http_emit_load(&load[0], 1);
	http_emit_load(&load[1], 1);
	bench_emit("idle_kib_per_conn", KIND_MEMORY, idle, "KiB", nidle, 1);
	bench_emit("idle_fds_per_conn", KIND_INFO, idle_fds, "fds", nidle, 1);
	if (halfclose)
		bench_note("half-close not carried through: %s", halfclose);
	return 0;
}

int
proxy_threads(const struct bench_cfg *cfg)
{
	return proxy_run(cfg, IMPL_THREADS);
}

int
proxy_nginx(const struct bench_cfg *cfg)
{
	return proxy_run(cfg, IMPL_NGINX);
}

int
proxy_go(const struct bench_cfg *cfg)
{
	return proxy_run(cfg, IMPL_GO);
}

int
proxy_weft(const struct bench_cfg *cfg)
{
	return proxy_run(cfg, IMPL_WEFT);
}

int
proxy_haproxy(const struct bench_cfg *cfg)
{
	return proxy_run(cfg, IMPL_HAPROXY);
}

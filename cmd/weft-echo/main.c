/* SPDX-License-Identifier: MIT */
/*
 * weft-echo: a TCP (or Unix socket) echo server, one task per connection.
 *
 *   weft-echo [--host H] [--port P] [--workers N] [--idle-ms MS]
 *             [--unix PATH] [--procs P [--reuseport] [--drain-ms MS]]
 *
 * Once it listens it prints exactly one line to stdout,
 * "weft-echo: listening on HOST:PORT" (or "unix:PATH"), with the real port
 * when --port 0 asked for a free one, so scripts can read it.  It serves
 * until it is killed.  Exit status 2 for a bad command line, 1 when it
 * cannot listen or the runtime fails.
 *
 * With --procs P a master process listens, prints the line once and
 * supervises P worker processes under weft_prefork() (SIGHUP reloads,
 * SIGQUIT drains and stops, SIGTERM/SIGINT stop fast).  A draining worker
 * stops accepting and lets its connections go on until --drain-ms, then
 * closes them.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

/*
 * Bytes read per round trip.  On the task's stack: the default 64 KiB stack
 * is committed lazily, so an idle connection holds only the pages its
 * deepest call touched.
 */
#define ECHO_BUF 8192

struct echo_opts {
	const char *host;
	const char *unix_path;
	int port;
	int64_t idle;		/* ns a connection may stay silent */
	int procs;		/* --procs; 0: no supervisor */
	int reuseport;		/* --reuseport */
	int64_t drain;		/* --drain-ms, ns; 0: weft_prefork's */
};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: weft-echo [--host H] [--port P] [--workers N]"
		" [--idle-ms MS]\n"
		"                 [--unix PATH] [--procs P [--reuseport]"
		" [--drain-ms MS]]\n\n"
		"Echoes every byte back, one weft task per connection.\n"
		"  --host H      address to listen on (default 127.0.0.1;"
		" \"*\": all)\n"
		"  --port P      TCP port (default 7000; 0: a free one)\n"
		"  --workers N   worker threads (default: WEFT_WORKERS,"
		" else one per CPU)\n"
		"  --idle-ms MS  close a connection silent this long"
		" (default 60000)\n"
		"  --unix PATH   listen on a Unix socket instead"
		" ('@name': abstract)\n"
		"  --procs P     P worker processes under a supervisor"
		" (HUP reloads,\n"
		"                QUIT drains, TERM stops; default: one"
		" process)\n"
		"  --reuseport   with --procs: one SO_REUSEPORT socket per"
		" process slot\n"
		"  --drain-ms MS with --procs: how long a draining process"
		" keeps its\n"
		"                connections (default 10000)\n");
}

static long
parse_long(const char *s, const char *what, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max) {
		fprintf(stderr, "weft-echo: %s must be %ld..%ld, not '%s'\n",
			what, min, max, s);
		exit(2);
	}
	return v;
}

/*
 * Every connection is an fd: let the soft RLIMIT_NOFILE go up to the hard
 * one, as a server expecting thousands of clients must.
 */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		fprintf(stderr, "weft-echo: cannot raise RLIMIT_NOFILE: %s\n",
			strerror(errno));
}

/* Print the one "listening on" line, with the address the kernel chose. */
static int
announce(int lfd, const struct echo_opts *o)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST];
	char port[NI_MAXSERV];
	int ret;

	if (o->unix_path) {
		printf("weft-echo: listening on unix:%s\n", o->unix_path);
		return fflush(stdout) == 0 ? 0 : -EIO;
	}
	if (getsockname(lfd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	ret = getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host),
			  port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	if (ret)
		return -EINVAL;
	if (ss.ss_family == AF_INET6)
		printf("weft-echo: listening on [%s]:%s\n", host, port);
	else
		printf("weft-echo: listening on %s:%s\n", host, port);
	return fflush(stdout) == 0 ? 0 : -EIO;
}

/*
 * One connection: read what has arrived, write all of it back, until the
 * peer closes, an error (a reset, say) or `idle` of silence.
 * Runs in its own task; owns `fd`.
 */
static void
echo_conn(int fd, void *arg)
{
	const struct echo_opts *o = arg;
	char buf[ECHO_BUF];
	ssize_t n;

	for (;;) {
		n = weft_recv(fd, buf, sizeof(buf), 0, weft_now() + o->idle);
		if (n <= 0)
			break;
		if (weft_write_full(fd, buf, (size_t)n, NULL,
				    weft_now() + o->idle) < 0)
			break;
	}
	weft_close(fd, WEFT_DEADLINE_NONE);
}

/* The first task: listen, announce, run the accept loop. */
static void *
echo_main(void *arg)
{
	const struct echo_opts *o = arg;
	int lfd;
	int ret;

	if (o->unix_path)
		lfd = weft_unix_listen(o->unix_path, NULL);
	else
		lfd = weft_tcp_listen(o->host, o->port, NULL);
	if (lfd < 0) {
		if (o->unix_path)
			fprintf(stderr, "weft-echo: cannot listen on %s: %s\n",
				o->unix_path, strerror(-lfd));
		else
			fprintf(stderr,
				"weft-echo: cannot listen on %s:%d: %s\n",
				o->host, o->port, strerror(-lfd));
		return (void *)(intptr_t)1;
	}
	ret = announce(lfd, o);
	if (ret < 0) {
		fprintf(stderr, "weft-echo: cannot announce the address: %s\n",
			strerror(-ret));
		weft_close(lfd, WEFT_DEADLINE_NONE);
		return (void *)(intptr_t)1;
	}
	ret = weft_serve(lfd, echo_conn, (void *)o, NULL);
	/*
	 * Only an accept error a server cannot survive gets here.  Do not
	 * wait (up to `idle`) for the open connections: leave now.
	 */
	fprintf(stderr, "weft-echo: accept loop stopped: %s\n", strerror(-ret));
	_exit(1);
}

/* Under --procs, in the master: the one "listening on" line. */
static int
prefork_listening(const int *fds, int nfds, void *arg)
{
	int ret;

	(void)nfds;
	ret = announce(fds[0], arg);
	if (ret < 0)
		fprintf(stderr, "weft-echo: cannot announce the address: %s\n",
			strerror(-ret));
	return ret;
}

/* Under --procs: one worker process's main task. */
static int
prefork_child(const struct weft_prefork_child *c)
{
	struct weft_serve_opts so = { .stop = c->drain };
	int ret;

	ret = weft_prefork_ready(c);
	if (ret < 0) {
		fprintf(stderr, "weft-echo: worker %d cannot report ready: "
			"%s\n", (int)getpid(), strerror(-ret));
		return 1;
	}
	ret = weft_serve(c->fds[0], echo_conn, c->arg, &so);
	if (ret == 0 || ret == -ECANCELED)
		return 0;	/* drained */
	fprintf(stderr, "weft-echo: accept loop stopped: %s\n",
		strerror(-ret));
	return 1;
}

static int
run_prefork(struct echo_opts *o, const struct weft_config *cfg)
{
	struct weft_prefork_listen l = {
		.host = o->host,
		.port = o->port,
		.unix_path = o->unix_path,
	};
	struct weft_prefork_opts po = {
		.procs = o->procs,
		.mode = o->reuseport ? WEFT_PREFORK_REUSEPORT
				     : WEFT_PREFORK_SHARED,
		.listen = &l,
		.nlisten = 1,
		.cfg = *cfg,
		.child_main = prefork_child,
		.on_listen = prefork_listening,
		.arg = o,
		.drain_ns = o->drain,
		.name = "weft-echo",
	};
	int ret = weft_prefork(&po);

	if (ret == -ECHILD)
		return 1;	/* the supervisor said why */
	if (ret < 0) {
		fprintf(stderr, "weft-echo: supervisor failed: %s\n",
			strerror(-ret));
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "workers", required_argument, NULL, 'w' },
		{ "idle-ms", required_argument, NULL, 'i' },
		{ "unix", required_argument, NULL, 'u' },
		{ "procs", required_argument, NULL, 'P' },
		{ "reuseport", no_argument, NULL, 'R' },
		{ "drain-ms", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct echo_opts o = {
		.host = "127.0.0.1",
		.port = 7000,
		.idle = 60 * WEFT_SEC,
	};
	struct weft_config cfg = { 0 };
	void *result = NULL;
	int opt;
	int ret;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			o.host = optarg;
			break;
		case 'p':
			o.port = (int)parse_long(optarg, "--port", 0, 65535);
			break;
		case 'w':
			cfg.workers = (int)parse_long(optarg, "--workers", 0,
						      1024);
			break;
		case 'i':
			o.idle = parse_long(optarg, "--idle-ms", 1,
					    86400000) * WEFT_MSEC;
			break;
		case 'u':
			if (!*optarg) {
				fprintf(stderr,
					"weft-echo: --unix needs a path\n");
				return 2;
			}
			o.unix_path = optarg;
			break;
		case 'P':
			o.procs = (int)parse_long(optarg, "--procs", 1, 1024);
			break;
		case 'R':
			o.reuseport = 1;
			break;
		case 'D':
			o.drain = parse_long(optarg, "--drain-ms", 1,
					     86400000) * WEFT_MSEC;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "weft-echo: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}

	/* Writes to a reset peer must fail with EPIPE, not kill the server. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if ((o.reuseport || o.drain) && !o.procs) {
		fprintf(stderr, "weft-echo: --reuseport and --drain-ms need"
			" --procs\n");
		return 2;
	}
	if (o.procs)
		return run_prefork(&o, &cfg);

	ret = weft_run(echo_main, &o, &cfg, &result);
	if (ret < 0) {
		fprintf(stderr, "weft-echo: cannot start the runtime: %s\n",
			strerror(-ret));
		return 1;
	}
	return (int)(intptr_t)result;
}

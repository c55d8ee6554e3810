/* SPDX-License-Identifier: MIT */
/*
 * weft-proxy: a TCP (layer 4) proxy daemon, one pair of coroutines per
 * connection, under weft's pre-fork supervisor.
 *
 *   weft-proxy -c FILE            run a configuration
 *   weft-proxy -t -c FILE         check it: exit 0, or 1 with every error
 *                                 as FILE:LINE: message
 *   weft-proxy --listen ADDR --upstream ADDR[,ADDR...]
 *                                 one listener, no file (like socat)
 *   options: --procs N, --workers N (override the file's), --admin ADDR,
 *            --access-log PATH|stderr (with --listen), --version, --help
 *
 * Once each listener is open the master prints
 * "weft-proxy: listening on HOST:PORT" (the real port when the address
 * asked for port 0; "unix:PATH" for a Unix socket), and
 * "weft-proxy: admin on HOST:PORT" for the metrics listener.
 *
 * Signals (to the master): SIGHUP re-reads the file and starts a new
 * generation of worker processes with it, the old ones draining (a file
 * with errors, or one that changes the listeners, is refused: the running
 * configuration keeps serving and the reason is logged); SIGQUIT drains
 * (up to drain_timeout) and stops; SIGTERM and SIGINT stop fast; SIGUSR1
 * reopens the access logs (every worker process); SIGUSR2 re-executes
 * the binary, handing it the listeners.  cmd/weft-proxy/README.md has
 * the whole reference.
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
#include <sys/un.h>
#include <unistd.h>

#include <weft.h>

#include "config.h"
#include "proxy.h"

/* The configuration in force; the master replaces it on a reload. */
static struct px_config *g_cfg;
static const char *g_file;	/* -c FILE, or NULL (--listen mode) */
static int g_procs = -1;	/* --procs; -1: the file's */
static int g_workers = -1;	/* --workers; -1: the file's */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: weft-proxy -c FILE [-t] [--procs N] [--workers N]\n"
		"       weft-proxy --listen ADDR --upstream ADDR[,ADDR...]\n"
		"                  [--admin ADDR] [--access-log PATH|stderr]\n"
		"                  [--procs N] [--workers N]\n"
		"       weft-proxy --version | --help\n"
		"ADDR: HOST:PORT, [V6]:PORT or unix:PATH (port 0: any free "
		"port)\n"
		"Reference: cmd/weft-proxy/README.md\n");
}

static long
parse_long(const char *s, const char *what, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "weft-proxy: %s: '%s' is not a number in "
			"%ld..%ld\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		fprintf(stderr, "weft-proxy: cannot raise RLIMIT_NOFILE: %s\n",
			strerror(errno));
}

/* The address a listening socket really has, as "h:p" / "[h]:p" / unix. */
static void
sock_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST];
	char port[NI_MAXSERV];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, len, "?");
		return;
	}
	if (ss.ss_family == AF_UNIX) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;

		if (!un->sun_path[0] && sl > sizeof(sa_family_t))
			snprintf(buf, len, "unix:@%.*s",
				 (int)(sl - sizeof(sa_family_t) - 1),
				 un->sun_path + 1);
		else
			snprintf(buf, len, "unix:%s", un->sun_path);
		return;
	}
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
		 host, port);
}

static int
on_listen(const int *fds, int nfds, void *arg)
{
	char name[256];

	(void)arg;
	for (int i = 0; i < nfds; i++) {
		sock_name(fds[i], name, sizeof(name));
		if (g_cfg->has_admin && i == nfds - 1)
			printf("weft-proxy: admin on %s\n", name);
		else
			printf("weft-proxy: listening on %s\n", name);
	}
	return fflush(stdout) == 0 ? 0 : -EIO;
}

static bool
same_addr(const struct px_addr *a, const struct px_addr *b)
{
	return a->port == b->port && !strcmp(a->host, b->host) &&
	       !strcmp(a->path, b->path);
}

/* SIGHUP, in the master: read the file again. */
static int
on_reload(void *arg)
{
	struct px_config *n;
	int r;

	(void)arg;
	if (!g_file) {
		fprintf(stderr, "weft-proxy: reload: no file (--listen mode); "
			"restarting the workers with the same settings\n");
		return 0;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	r = px_config_load(g_file, n, stderr);
	if (r) {
		fprintf(stderr, "weft-proxy: reload refused: %s has %s; the "
			"running configuration keeps serving\n", g_file,
			r > 0 ? "errors" : "become unreadable");
		free(n);
		return -EINVAL;
	}
	r = n->nlisteners == g_cfg->nlisteners &&
	    n->has_admin == g_cfg->has_admin &&
	    (!n->has_admin || same_addr(&n->admin, &g_cfg->admin));
	for (int i = 0; r && i < n->nlisteners; i++)
		r = same_addr(&n->listeners[i].bind, &g_cfg->listeners[i].bind);
	if (!r) {
		fprintf(stderr, "weft-proxy: reload refused: %s changes the "
			"listening addresses (or the admin one), which needs "
			"a restart; the running configuration keeps serving\n",
			g_file);
		px_config_free(n);
		free(n);
		return -EINVAL;
	}
	if (g_procs >= 0)
		n->procs = g_procs;
	if (g_workers >= 0)
		n->workers = g_workers;
	px_config_free(g_cfg);
	free(g_cfg);
	g_cfg = n;
	fprintf(stderr, "weft-proxy: reloading %s\n", g_file);
	return 0;
}

/* SIGUSR1, forwarded by the master: reopen the access log. */
static void *
usr1_main(void *arg)
{
	sigset_t *set = arg;

	while (weft_signal_wait(set, WEFT_DEADLINE_NONE) >= 0)
		px_log_reopen();
	return NULL;
}

/* One worker process's main task. */
static int
child_main(const struct weft_prefork_child *c)
{
	static sigset_t usr1;
	struct px_state st;
	struct weft_task *t;
	int r;

	/* First, so a rotation signal is never lost to SIG_IGN later. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	weft_signal_notify(&usr1);
	r = px_state_make(&st, g_cfg, c->fds, c->nfds);
	if (r < 0) {
		px_msg("cannot set up: %s", strerror(-r));
		return 1;
	}
	st.drain = c->drain;
	if (px_log_open(g_cfg->access_log) < 0)
		return 1;
	if (weft_spawn(&t, usr1_main, &usr1, NULL) == 0)
		weft_detach(t);
	r = weft_prefork_ready(c);
	if (r < 0) {
		px_msg("cannot report ready: %s", strerror(-r));
		return 1;
	}
	r = px_serve(&st);
	px_log_close();
	px_state_free(&st);
	/*
	 * -ECANCELED: the supervisor cancelled this task at the drain
	 * deadline, the ordinary end of a drain that had sessions left.
	 */
	return r < 0 && r != -ECANCELED ? 1 : 0;
}

static int
run(void)
{
	struct weft_prefork_listen *l;
	int n = g_cfg->nlisteners + g_cfg->has_admin;
	struct weft_prefork_opts po = {
		.procs = g_cfg->procs,
		.cfg = { .workers = g_cfg->workers },
		.child_main = child_main,
		.reload = on_reload,
		.on_listen = on_listen,
		.drain_ns = g_cfg->drain_timeout,
		.name = "weft-proxy",
		.flags = WEFT_PREFORK_FORWARD_USR1,
	};
	int r;

	l = calloc((size_t)n, sizeof(*l));
	if (!l)
		return 1;
	for (int i = 0; i < n; i++) {
		const struct px_addr *a = i < g_cfg->nlisteners
						  ? &g_cfg->listeners[i].bind
						  : &g_cfg->admin;

		if (a->path[0]) {
			l[i].unix_path = a->path;
		} else {
			l[i].host = a->host[0] ? a->host : NULL;
			l[i].port = a->port;
		}
	}
	po.listen = l;
	po.nlisten = n;
	r = weft_prefork(&po);
	free(l);
	if (r == -ECHILD)
		return 1;	/* the supervisor said why */
	if (r < 0) {
		fprintf(stderr, "weft-proxy: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'L' },
		{ "upstream", required_argument, NULL, 'U' },
		{ "admin", required_argument, NULL, 'A' },
		{ "access-log", required_argument, NULL, 'l' },
		{ "procs", required_argument, NULL, 'P' },
		{ "workers", required_argument, NULL, 'w' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = NULL;
	const char *upstream = NULL;
	const char *admin = NULL;
	const char *alog = NULL;
	bool check = false;
	int opt;
	int r;

	while ((opt = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			g_file = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'L':
			listen = optarg;
			break;
		case 'U':
			upstream = optarg;
			break;
		case 'A':
			admin = optarg;
			break;
		case 'l':
			alog = optarg;
			break;
		case 'P':
			g_procs = (int)parse_long(optarg, "--procs", 0, 1024);
			break;
		case 'w':
			g_workers = (int)parse_long(optarg, "--workers", 0,
						    1024);
			break;
		case 'V':
			printf("weft-proxy %s\n", weft_version());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "weft-proxy: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!g_file == !listen || (listen && !upstream) ||
	    (upstream && !listen) || (g_file && (admin || alog))) {
		fprintf(stderr, "weft-proxy: give either -c FILE, or --listen "
			"and --upstream (--admin and --access-log go with "
			"--listen; put them in the file otherwise)\n");
		usage(stderr);
		return 2;
	}
	g_cfg = calloc(1, sizeof(*g_cfg));
	if (!g_cfg)
		return 1;
	if (g_file)
		r = px_config_load(g_file, g_cfg, stderr);
	else
		r = px_config_args(listen, upstream, g_cfg, stderr);
	if (r == 0 && admin) {
		if (px_addr_parse(admin, &g_cfg->admin, true) < 0) {
			fprintf(stderr, "--admin: bad address '%s'\n", admin);
			r = 1;
		}
		g_cfg->has_admin = true;
	}
	if (r == 0 && alog)
		snprintf(g_cfg->access_log, sizeof(g_cfg->access_log), "%s",
			 strcmp(alog, "off") ? alog : "");
	if (r)
		return check || r > 0 ? 1 : 1;
	if (check) {
		printf("weft-proxy: configuration %s is valid\n",
		       g_file ? g_file : "(command line)");
		return 0;
	}
	if (g_procs >= 0)
		g_cfg->procs = g_procs;
	if (g_workers >= 0)
		g_cfg->workers = g_workers;
	/* Writes to a reset peer fail with EPIPE; they never kill us. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	return run();
}

/* SPDX-License-Identifier: MIT */
/*
 * Process, file and port helpers of a weft-bench child (see proc.h): find
 * and run programs, start and stop the http scenario's servers and wrk,
 * read their process trees' CPU time and RSS from /proc, and undo all of
 * it when the child fails.  goprog.c runs the Go toolchain with the same
 * helpers.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "util.h"

/* Everything the child must undo before it exits, whatever happens. */
char bench_scratch_dir[256];		/* mkdtemp()ed; "" when none */
static struct bench_server *running[BENCH_MAX_RUNNING];	/* NULL: free */
pid_t bench_wrk_pid;

/* Keep s in (or take it out of) the servers bench_cleanup() kills. */
static void
running_set(struct bench_server *s, bool on)
{
	int i;

	for (i = 0; i < BENCH_MAX_RUNNING; i++) {
		if (running[i] == (on ? NULL : s)) {
			running[i] = on ? s : NULL;
			return;
		}
	}
	if (on)
		bench_fail("more than %d servers at once", BENCH_MAX_RUNNING);
}

void
bench_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Read a small file into buf (NUL-terminated); bytes read or -errno. */
ssize_t
bench_read_file(const char *path, char *buf, size_t size)
{
	size_t have = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (have < size - 1) {
		ssize_t n = read(fd, buf + have, size - 1 - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	buf[have] = '\0';
	return (ssize_t)have;
}

int
bench_write_file(const char *path, const char *text)
{
	size_t len = strlen(text);
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		return -EIO;
	}
	return close(fd) < 0 ? -errno : 0;
}

/* The last line or so of a log, on one line, for an error message. */
const char *
bench_log_tail(const char *path)
{
	static char buf[65536];
	ssize_t n = bench_read_file(path, buf, sizeof(buf));
	char *p;

	if (n <= 0)
		return "(no output)";
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	p = n > 110 ? buf + n - 110 : buf;
	for (char *q = p; *q; q++) {
		if (*q == '\n' || *q == '\t')
			*q = ' ';
	}
	return p;
}

void
bench_cleanup(void)
{
	int status;
	int i;

	if (bench_wrk_pid > 0) {
		kill(bench_wrk_pid, SIGKILL);
		waitpid(bench_wrk_pid, &status, 0);
		bench_wrk_pid = 0;
	}
	/* The last one started first: a proxy before its backend. */
	for (i = BENCH_MAX_RUNNING - 1; i >= 0; i--) {
		struct bench_server *s = running[i];

		running[i] = NULL;
		if (s && s->pid > 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			s->pid = 0;
		}
	}
	if (bench_scratch_dir[0]) {
		bench_rmtree(bench_scratch_dir);
		bench_scratch_dir[0] = '\0';
	}
}

void
bench_proc_fail(const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bench_cleanup();
	bench_fail("%s", msg);
}

void
bench_proc_skip(const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bench_cleanup();
	bench_skip("%s", msg);
}

static bool
find_in_path(const char *path, const char *name, char *out, size_t len)
{
	const char *p;

	for (p = path; p && *p; ) {
		const char *colon = strchr(p, ':');
		size_t dl = colon ? (size_t)(colon - p) : strlen(p);

		if (dl && (size_t)snprintf(out, len, "%.*s/%s", (int)dl, p,
					   name) < len &&
		    access(out, X_OK) == 0)
			return true;
		p += dl + (colon ? 1 : 0);
	}
	return false;
}

/*
 * The first executable of: the absolute paths in `first`, `name` in $PATH
 * (unless name is NULL), the paths in `then`.  NULL if none.
 */
const char *
bench_find_prog(const char *const *first, const char *name,
	  const char *const *then, char *out, size_t len)
{
	const char *path = getenv("PATH");
	const char *const *lists[2] = { first, then };
	int l;

	for (l = 0; l < 2; l++) {
		const char *const *a;

		for (a = lists[l]; a && *a; a++) {
			if (access(*a, X_OK) == 0) {
				snprintf(out, len, "%s", *a);
				return out;
			}
		}
		if (l == 0 && name && find_in_path(path, name, out, len))
			return out;
	}
	return NULL;
}

/* ---- /proc: CPU time and RSS of a process tree ---- */

/* pid and every descendant (by /proc/PID/task/TID/children), in s->tree. */
void
bench_tree_refresh(struct bench_server *s)
{
	int i;

	s->tree[0] = s->pid;
	s->ntree = 1;
	for (i = 0; i < s->ntree; i++) {
		char path[64];
		struct dirent *e;
		DIR *d;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)s->tree[i]);
		d = opendir(path);
		if (!d)
			continue;
		while ((e = readdir(d))) {
			char file[128], buf[4096];
			char *p, *end;

			if (e->d_name[0] == '.')
				continue;
			snprintf(file, sizeof(file), "%s/%.32s/children", path,
				 e->d_name);
			if (bench_read_file(file, buf, sizeof(buf)) <= 0)
				continue;
			for (p = buf; s->ntree < BENCH_MAX_TREE; p = end) {
				long child = strtol(p, &end, 10);

				if (end == p)
					break;
				s->tree[s->ntree++] = (pid_t)child;
			}
		}
		closedir(d);
	}
}

/* utime+stime (+ those of reaped children) of one process, in ticks. */
static long
proc_cpu_ticks(pid_t pid)
{
	unsigned long ut, st;
	long cut, cst;
	char path[64];
	char buf[1024];
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (bench_read_file(path, buf, sizeof(buf)) <= 0)
		return 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%lu %lu %ld %ld", &ut, &st, &cut, &cst) != 4)
		return 0;
	return (long)(ut + st) + cut + cst;
}

static long
proc_rss_kib(pid_t pid)
{
	unsigned long size, resident;
	char path[64];
	char buf[256];

	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	if (bench_read_file(path, buf, sizeof(buf)) <= 0 ||
	    sscanf(buf, "%lu %lu", &size, &resident) != 2)
		return 0;
	return (long)resident * (sysconf(_SC_PAGESIZE) / 1024);
}

double
bench_tree_cpu_s(const struct bench_server *s)
{
	long ticks = 0;
	int i;

	for (i = 0; i < s->ntree; i++)
		ticks += proc_cpu_ticks(s->tree[i]);
	return (double)ticks / sysconf(_SC_CLK_TCK);
}

long
bench_tree_rss_kib(const struct bench_server *s)
{
	long kib = 0;
	int i;

	for (i = 0; i < s->ntree; i++)
		kib += proc_rss_kib(s->tree[i]);
	return kib;
}

/* Open file descriptors of the tree (/proc/PID/fd entries). */
long
bench_tree_fds(const struct bench_server *s)
{
	long n = 0;
	int i;

	for (i = 0; i < s->ntree; i++) {
		char path[64];
		struct dirent *e;
		DIR *d;

		snprintf(path, sizeof(path), "/proc/%d/fd", (int)s->tree[i]);
		d = opendir(path);
		if (!d)
			continue;
		while ((e = readdir(d))) {
			if (e->d_name[0] != '.')
				n++;
		}
		closedir(d);
	}
	return n;
}

/* This executable, or with `dir`, its directory. */
void
bench_self_path(char *out, size_t len, bool dir)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);
	char *slash;

	if (n <= 0)
		bench_proc_fail("readlink /proc/self/exe: %s", strerror(errno));
	out[n] = '\0';
	slash = strrchr(out, '/');
	if (dir && slash)
		*slash = '\0';
}

/* ---- starting and stopping processes ---- */

/*
 * fork() and exec argv[0] with stdout and stderr into `log` and the extra
 * environment `env` (NULL-terminated "NAME=value"s, or NULL).  The process
 * dies with this child (PR_SET_PDEATHSIG) and stays in its process group.
 */
pid_t
bench_spawn(char *const argv[], char *const env[], const char *log)
{
	pid_t parent = getpid();
	pid_t pid;
	int fd;

	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
		  0644);
	if (fd < 0)
		bench_proc_fail("%s: %s", log, strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		bench_proc_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(fd, 1);
		dup2(fd, 2);
		for (; env && *env; env++)
			putenv(*env);
		execv(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	return pid;
}

/* Run a command to its end (bounded by limit_s); its exit status or -1. */
int
bench_run_cmd(char *const argv[], char *const env[], const char *log,
	      int limit_s)
{
	int64_t deadline = bench_now() + (int64_t)limit_s * 1000000000;
	pid_t pid = bench_spawn(argv, env, log);
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (bench_now() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		bench_sleep_ms(10);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A listening TCP socket on host:port, or -errno. */
int
bench_listen(const char *host, int port, bool reuseport, int flags)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
	};
	int one = 1;
	int err;
	int fd;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto out_close;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 4096) < 0)
		goto out_close;
	return fd;

out_close:
	err = -errno;
	close(fd);
	return err;
}

int
bench_local_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	return ntohs(sa.sin_port);
}

int
bench_connect_port(int port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* A port nobody listens on right now (for nginx, which cannot say). */
int
bench_free_port(void)
{
	int fd = bench_listen("127.0.0.1", 0, false, 0);
	int port;

	if (fd < 0)
		bench_proc_fail("finding a free port: %s", strerror(-fd));
	port = bench_local_port(fd);
	close(fd);
	return port;
}

/*
 * Start a server and wait (10 s at most) until it listens: until its log
 * has a "listening on HOST:PORT" line if port is 0, else until port
 * accepts a connection.
 */
void
bench_server_start(struct bench_server *s, char *const argv[],
		   char *const env[], int port)
{
	int64_t deadline = bench_now() + 10 * (int64_t)1000000000;
	static char buf[65536];
	int status;

	s->pid = bench_spawn(argv, env, s->log);
	s->port = 0;
	running_set(s, true);
	for (;;) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			bench_proc_fail("%s exited before listening: %s",
					s->impl, bench_log_tail(s->log));
		}
		if (port) {
			int fd = bench_connect_port(port);

			if (fd >= 0) {
				close(fd);
				s->port = port;
			}
		} else if (bench_read_file(s->log, buf, sizeof(buf)) > 0) {
			char *p = strstr(buf, "listening on ");
			char *eol = p ? strchr(p, '\n') : NULL;

			if (eol) {
				*eol = '\0';
				p = strrchr(p, ':');
				s->port = p ? atoi(p + 1) : 0;
				if (s->port <= 0)
					bench_proc_fail("%s: no port in '%s'",
							s->impl,
							bench_log_tail(s->log));
			}
		}
		if (s->port)
			break;
		if (bench_now() > deadline)
			bench_proc_fail("%s not listening after 10 s: %s",
					s->impl, bench_log_tail(s->log));
		bench_sleep_ms(5);
	}
	bench_tree_refresh(s);
}

/* SIGTERM, then SIGKILL after 3 s; reap it and what is left of its tree. */
void
bench_server_stop(struct bench_server *s)
{
	int64_t deadline = bench_now() + 3 * (int64_t)1000000000;
	int status;
	int i;

	if (s->pid <= 0)
		return;
	bench_tree_refresh(s);
	kill(s->pid, SIGTERM);
	while (waitpid(s->pid, &status, WNOHANG) != s->pid) {
		if (bench_now() > deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			break;
		}
		bench_sleep_ms(5);
	}
	/*
	 * Orphaned descendants (nginx workers of a killed master) are ours
	 * now (PR_SET_CHILD_SUBREAPER): waitpid() tells which are still
	 * alive without touching anybody else's process.
	 */
	for (i = 1; i < s->ntree; i++) {
		if (waitpid(s->tree[i], &status, WNOHANG) == 0) {
			kill(s->tree[i], SIGKILL);
			waitpid(s->tree[i], &status, 0);
		}
	}
	s->pid = 0;
	running_set(s, false);
}

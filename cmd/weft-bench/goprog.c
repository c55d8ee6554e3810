/* SPDX-License-Identifier: MIT */
/*
 * Building and running a small embedded Go program for the go
 * implementation of the chan and skynet scenarios: the same offline build
 * as the http scenario's Go server (http.c), in a scratch directory with
 * its own GOCACHE and GOPATH, no module proxy, no cgo.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static char go_scratch[256];

static void go_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void
go_fail(const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (go_scratch[0])
		bench_rmtree(go_scratch);
	bench_fail("%s", msg);
}

static ssize_t
go_read_file(const char *path, char *buf, size_t size)
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

/* The last ~110 bytes of a log on one line, for an error message. */
static const char *
go_log_tail(const char *path)
{
	static char buf[16384];
	ssize_t n = go_read_file(path, buf, sizeof(buf));
	char *p, *q;

	if (n <= 0)
		return "(no output)";
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	p = n > 110 ? buf + n - 110 : buf;
	for (q = p; *q; q++) {
		if (*q == '\n' || *q == '\t')
			*q = ' ';
	}
	return p;
}

static bool
go_find(char *out, size_t len)
{
	static const char *const first[] = { "/usr/lib/go-1.19/bin/go", NULL };
	static const char *const later[] = {
		"/usr/lib/go/bin/go", "/usr/local/go/bin/go", NULL,
	};
	const char *path = getenv("PATH");
	const char *const *a;
	const char *p;

	for (a = first; *a; a++) {
		if (access(*a, X_OK) == 0) {
			snprintf(out, len, "%s", *a);
			return true;
		}
	}
	for (p = path; p && *p; ) {
		const char *colon = strchr(p, ':');
		size_t dl = colon ? (size_t)(colon - p) : strlen(p);

		if (dl && (size_t)snprintf(out, len, "%.*s/go", (int)dl, p) <
			  len && access(out, X_OK) == 0)
			return true;
		p += dl + (colon ? 1 : 0);
	}
	for (a = later; *a; a++) {
		if (access(*a, X_OK) == 0) {
			snprintf(out, len, "%s", *a);
			return true;
		}
	}
	return false;
}

/* Run argv with env added, output into log; exit status or -1. */
static int
go_run_cmd(char *const argv[], char *const env[], const char *log,
	   int limit_s)
{
	int64_t deadline = bench_now() + (int64_t)limit_s * 1000000000;
	pid_t parent = getpid();
	int status;
	pid_t pid;
	int fd;

	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
		  0644);
	if (fd < 0)
		go_fail("%s: %s", log, strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		go_fail("fork: %s", strerror(errno));
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
	for (;;) {
		struct timespec ts = { 0, 5000000 };
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
		nanosleep(&ts, NULL);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void
bench_go_build(const char *name, const char *src, char *bin, size_t binlen)
{
	char go[PATH_MAX], file[PATH_MAX], log[PATH_MAX];
	char gocache[PATH_MAX + 16], gopath[PATH_MAX + 16];
	char home[PATH_MAX + 16];
	char *argv[] = { go, "build", "-o", bin, file, NULL };
	char *env[] = { gocache, gopath, home, "GOFLAGS=-mod=mod",
			"GOPROXY=off", "CGO_ENABLED=0", "GOTOOLCHAIN=local",
			NULL };
	int fd, ret;
	size_t len = strlen(src);

	if (!go_find(go, sizeof(go)))
		bench_skip("go not installed (Debian package golang-1.19)");
	ret = bench_scratch(name, go_scratch, sizeof(go_scratch));
	if (ret < 0)
		bench_fail("scratch directory: %s", strerror(-ret));
	snprintf(file, sizeof(file), "%s/main.go", go_scratch);
	snprintf(bin, binlen, "%s/%s", go_scratch, name);
	snprintf(log, sizeof(log), "%s/go-build.log", go_scratch);
	snprintf(gocache, sizeof(gocache), "GOCACHE=%s/gocache", go_scratch);
	snprintf(gopath, sizeof(gopath), "GOPATH=%s/gopath", go_scratch);
	snprintf(home, sizeof(home), "HOME=%s", go_scratch);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, src, len) != (ssize_t)len)
		go_fail("%s: %s", file, strerror(errno));
	close(fd);
	if (go_run_cmd(argv, env, log, 120) != 0)
		go_fail("go build failed: %s", go_log_tail(log));
}

double
bench_go_run(const char *bin, const char *arg1, const char *arg2,
	     int gomaxprocs, int limit_s)
{
	char log[PATH_MAX], procs[32], out[4096];
	char *argv[] = { (char *)bin, (char *)arg1, (char *)arg2, NULL };
	char *env[] = { procs, NULL };
	char *end;
	double v;

	snprintf(procs, sizeof(procs), "GOMAXPROCS=%d", gomaxprocs);
	snprintf(log, sizeof(log), "%s/run.log", go_scratch);
	if (go_run_cmd(argv, env, log, limit_s) != 0)
		go_fail("%s %s %s failed: %s", bin, arg1, arg2,
			go_log_tail(log));
	if (go_read_file(log, out, sizeof(out)) <= 0)
		go_fail("%s %s: no output", bin, arg1);
	v = strtod(out, &end);
	if (end == out || !(v > 0))
		go_fail("%s %s: bad output: %s", bin, arg1, go_log_tail(log));
	return v;
}

void
bench_go_done(void)
{
	if (go_scratch[0]) {
		bench_rmtree(go_scratch);
		go_scratch[0] = '\0';
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * Building and running small embedded Go programs: the offline build
 * (bench_go_compile: own GOCACHE and GOPATH, no module proxy, no cgo) that
 * the http scenario's Go server and the chan and skynet go implementations
 * share, and a scratch directory with a run helper for the latter two.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "goprog.h"
#include "proc.h"
#include "util.h"

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

int
bench_go_compile(const char *dir, const char *name, const char *src,
		 char *bin, size_t binlen)
{
	static const char *const first[] = { "/usr/lib/go-1.19/bin/go", NULL };
	static const char *const later[] = {
		"/usr/lib/go/bin/go", "/usr/local/go/bin/go", NULL,
	};
	char go[PATH_MAX], file[PATH_MAX], log[PATH_MAX];
	char gocache[PATH_MAX + 16], gopath[PATH_MAX + 16];
	char home[PATH_MAX + 16];
	char *argv[] = { go, "build", "-o", bin, file, NULL };
	char *env[] = { gocache, gopath, home, "GOFLAGS=-mod=mod",
			"GOPROXY=off", "CGO_ENABLED=0", "GOTOOLCHAIN=local",
			NULL };

	if (!bench_find_prog(first, "go", later, go, sizeof(go)))
		return -ENOENT;
	snprintf(file, sizeof(file), "%s/main.go", dir);
	snprintf(bin, binlen, "%s/%s", dir, name);
	snprintf(log, sizeof(log), "%s/go-build.log", dir);
	snprintf(gocache, sizeof(gocache), "GOCACHE=%s/gocache", dir);
	snprintf(gopath, sizeof(gopath), "GOPATH=%s/gopath", dir);
	snprintf(home, sizeof(home), "HOME=%s", dir);
	if (bench_write_file(file, src) < 0)
		return -EIO;
	return bench_run_cmd(argv, env, log, 120) == 0 ? 0 : -EIO;
}

const char *
bench_go_log(const char *dir)
{
	char log[PATH_MAX];

	snprintf(log, sizeof(log), "%s/go-build.log", dir);
	return bench_log_tail(log);
}

void
bench_go_build(const char *name, const char *src, char *bin, size_t binlen)
{
	int ret;

	ret = bench_scratch(name, go_scratch, sizeof(go_scratch));
	if (ret < 0)
		bench_fail("scratch directory: %s", strerror(-ret));
	ret = bench_go_compile(go_scratch, name, src, bin, binlen);
	if (ret == -ENOENT) {
		bench_rmtree(go_scratch);
		bench_skip("go not installed (Debian package golang-1.19)");
	}
	if (ret < 0)
		go_fail("go build failed: %s", bench_go_log(go_scratch));
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
	if (bench_run_cmd(argv, env, log, limit_s) != 0)
		go_fail("%s %s %s failed: %s", bin, arg1, arg2,
			bench_log_tail(log));
	if (bench_read_file(log, out, sizeof(out)) <= 0)
		go_fail("%s %s: no output", bin, arg1);
	v = strtod(out, &end);
	if (end == out || !(v > 0))
		go_fail("%s %s: bad output: %s", bin, arg1, bench_log_tail(log));
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

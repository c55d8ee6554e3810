/* SPDX-License-Identifier: MIT */
/* Measurement helpers shared by the scenarios: clock, RSS, CPUs, futex. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "util.h"

int bench_result_fd = -1;

int64_t
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Read a small /proc file into buf without stdio (no allocation, so the
 * reading itself does not move the RSS it is measuring).
 */
static int
read_proc(const char *path, char *buf, size_t size)
{
	ssize_t len;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, buf, size - 1);
	if (len < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	buf[len] = '\0';
	return 0;
}

/* statm's second field is the resident page count (file + anon + shmem). */
long
bench_rss(void)
{
	unsigned long size;
	unsigned long resident;
	char buf[256];
	int ret;

	ret = read_proc("/proc/self/statm", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
		return -EINVAL;
	return (long)resident * sysconf(_SC_PAGESIZE);
}

/*
 * Kernel stacks are what a thread costs beyond its RSS: 16 KiB each on
 * x86-64, invisible in /proc/self/statm.  The counter is machine-wide, so
 * the delta is only meaningful over thousands of threads.
 */
long
bench_kernel_stack(void)
{
	char buf[8192];
	char *p;
	long kib;
	int ret;

	ret = read_proc("/proc/meminfo", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	p = strstr(buf, "KernelStack:");
	if (!p || sscanf(p, "KernelStack: %ld kB", &kib) != 1)
		return -EINVAL;
	return kib * 1024;
}

void *
bench_alloc_touched(size_t size)
{
	void *p = malloc(size);

	if (!p)
		bench_fail("cannot allocate %zu bytes", size);
	memset(p, 0, size);
	return p;
}

int
bench_cpu_ticks(uint64_t *total, uint64_t *steal)
{
	unsigned long long v[8] = { 0 };
	char buf[512];
	int ret;
	int i;

	ret = read_proc("/proc/stat", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	/* user nice system idle iowait irq softirq steal (guest is in user) */
	if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 4)
		return -EINVAL;
	*total = 0;
	for (i = 0; i < 8; i++)
		*total += v[i];
	*steal = v[7];
	return 0;
}

long
bench_size(const struct bench_cfg *cfg, long quick, long full)
{
	long n = (cfg->quick ? quick : full) / BENCH_SHRINK;

	return n > 0 ? n : 1;
}

int
bench_cpu(int n)
{
	cpu_set_t set;
	int cpu;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -1;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &set) && n-- == 0)
			return cpu;
	}
	return -1;
}

int
bench_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	return 0;
}

int
bench_futex_wait(int *addr, int val, bool shared)
{
	int op = shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE;

	if (syscall(SYS_futex, addr, op, val, NULL, NULL, 0) < 0)
		return -errno;
	return 0;
}

int
bench_futex_wake(int *addr, int n, bool shared)
{
	int op = shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE;
	long ret;

	ret = syscall(SYS_futex, addr, op, n, NULL, NULL, 0);
	if (ret < 0)
		return -errno;
	return (int)ret;
}

/* Whole records only: a pipe write of <= PIPE_BUF bytes is atomic. */
static void
send_rec(const struct bench_rec *rec)
{
	const char *p = (const char *)rec;
	size_t left = sizeof(*rec);

	_Static_assert(sizeof(*rec) <= 4096, "bench_rec must fit PIPE_BUF");
	while (left) {
		ssize_t n = write(bench_result_fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(3);
		p += n;
		left -= (size_t)n;
	}
}

/*
 * Create n threads running body(NULL), then join them all (default
 * attributes).  Returns the wall time in ns.
 */
int64_t
bench_thread_round(pthread_t *t, long n, void *(*body)(void *))
{
	int64_t t0 = bench_now();
	long i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = pthread_create(&t[i], NULL, body, NULL);
		if (ret)
			bench_fail("pthread_create #%ld: %s", i, strerror(ret));
	}
	for (i = 0; i < n; i++) {
		ret = pthread_join(t[i], NULL);
		if (ret)
			bench_fail("pthread_join #%ld: %s", i, strerror(ret));
	}
	return bench_now() - t0;
}

/*
 * Fork n children that each run child() (which returns their exit status),
 * then reap them all.  Returns the wall time in ns; *failed (if non-NULL)
 * counts children that did not exit 0.
 */
int64_t
bench_fork_round(pid_t *pids, long n, int (*child)(void), long *failed)
{
	int64_t t0 = bench_now();
	int status;
	long i;

	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			bench_fail("fork #%ld: %s", i, strerror(errno));
		if (pids[i] == 0)
			_exit(child());
	}
	for (i = 0; i < n; i++) {
		if (waitpid(pids[i], &status, 0) < 0)
			bench_fail("waitpid #%ld: %s", i, strerror(errno));
		if (failed && (!WIFEXITED(status) || WEXITSTATUS(status)))
			(*failed)++;
	}
	return bench_now() - t0;
}

void
bench_emit(const char *metric, enum metric_kind kind, double value,
	   const char *unit, long n, int workers)
{
	struct bench_rec rec;

	memset(&rec, 0, sizeof(rec));
	rec.type = REC_METRIC;
	rec.kind = kind;
	snprintf(rec.metric, sizeof(rec.metric), "%s", metric);
	snprintf(rec.unit, sizeof(rec.unit), "%s", unit);
	rec.value = value;
	rec.n = n;
	rec.workers = workers;
	send_rec(&rec);
}

void
bench_fail(const char *fmt, ...)
{
	struct bench_rec rec;
	va_list ap;

	memset(&rec, 0, sizeof(rec));
	rec.type = REC_ERROR;
	va_start(ap, fmt);
	vsnprintf(rec.msg, sizeof(rec.msg), fmt, ap);
	va_end(ap);
	send_rec(&rec);
	_exit(1);
}

void
bench_skip(const char *fmt, ...)
{
	struct bench_rec rec;
	va_list ap;

	memset(&rec, 0, sizeof(rec));
	rec.type = REC_SKIP;
	va_start(ap, fmt);
	vsnprintf(rec.msg, sizeof(rec.msg), fmt, ap);
	va_end(ap);
	send_rec(&rec);
	_exit(0);
}

void
bench_note(const char *fmt, ...)
{
	struct bench_rec rec;
	va_list ap;

	memset(&rec, 0, sizeof(rec));
	rec.type = REC_NOTE;
	va_start(ap, fmt);
	vsnprintf(rec.msg, sizeof(rec.msg), fmt, ap);
	va_end(ap);
	send_rec(&rec);
}

int
bench_scratch(const char *name, char *buf, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	struct bench_rec rec;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(buf, len, "%s/weft-bench-%s.XXXXXX", tmp, name) >=
	    len || strlen(buf) >= sizeof(rec.msg))
		return -ENAMETOOLONG;
	if (!mkdtemp(buf))
		return -errno;
	memset(&rec, 0, sizeof(rec));
	rec.type = REC_SCRATCH;
	snprintf(rec.msg, sizeof(rec.msg), "%s", buf);
	send_rec(&rec);
	return 0;
}

static int
rmtree_entry(const char *path, const struct stat *st, int flag,
	     struct FTW *ftw)
{
	remove(path);
	return 0;
}

void
bench_rmtree(const char *path)
{
	nftw(path, rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

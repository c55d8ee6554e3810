/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the I/O tests (tests/unit/io_*.c), on top of harness.h.
 * Header only, static functions; uses only the public weft.h and libc.
 *
 * Every I/O test runs once per backend.  Tests are added with
 * tcase_add_loop_test(): IO_ADD() gives two iterations (_i 0: io_uring,
 * 1: epoll), IO_ADD_W() four (the same, with 1 and then 2 workers).  The
 * body calls IO_RUN(fn, arg, workers), which runs `fn` under weft_run()
 * with that backend, checks inside that weft_io_backend() is the one asked
 * for, then asserts that no task recorded a failure, that the runtime is
 * empty and that the process has exactly the fds it had before the run
 * (weft leaks none, and each test closes its own).
 *
 * When the kernel refuses io_uring (seccomp, io_uring_disabled) the uring
 * iterations print why and pass without running; the epoll ones still run.
 */
#ifndef WEFT_TESTS_IO_HARNESS_H
#define WEFT_TESTS_IO_HARNESS_H

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Iterations of a loop test: backends, and backends x {1, 2} workers. */
#define IO_CASES   2
#define IO_CASES_W 4

#define IO_ADD(tc, fn)	 tcase_add_loop_test((tc), (fn), 0, IO_CASES)
#define IO_ADD_W(tc, fn) tcase_add_loop_test((tc), (fn), 0, IO_CASES_W)

/* The backend and (for IO_ADD_W) the worker count of iteration `i`. */
#define IO_BACKEND(i) (((i)&1) ? "epoll" : "uring")
#define IO_WORKERS(i) (1 + (i) / 2)

/* Can this process set up an io_uring at all?  0 unknown, 1 yes, 2 no. */
static int io_uring_ok;

static bool io_uring_usable(void) __attribute__((unused));
static bool
io_uring_usable(void)
{
	struct io_uring_params p;
	long fd;

	if (io_uring_ok == 0) {
		memset(&p, 0, sizeof(p));
		fd = syscall(__NR_io_uring_setup, 4, &p);
		io_uring_ok = fd >= 0 ? 1 : 2;
		if (fd >= 0)
			close((int)fd);
		else
			fprintf(stderr,
				"io_uring_setup: %s: io_uring cases "
				"are skipped\n",
				strerror(errno));
	}
	return io_uring_ok == 1;
}

/*
 * At the top of a loop test: pass without running if the backend is out,
 * or if WEFT_TEST_IO names the other one (for debugging one backend:
 * `WEFT_TEST_IO=epoll CK_FORK=no gdb build/tests/io_basic`).
 */
#define IO_SKIP_UNLESS_BACKEND()                                               \
	do {                                                                   \
		const char *only_ = getenv("WEFT_TEST_IO");                    \
		if (only_ && *only_ && strcmp(only_, IO_BACKEND(_i)) != 0)     \
			return;                                                \
		if (!((_i)&1) && !io_uring_usable()) {                         \
			fprintf(stderr, "SKIP %s (uring): no io_uring\n",      \
				__func__);                                     \
			return;                                                \
		}                                                              \
	} while (0)

/* Number of open fds of the process (entries of /proc/self/fd). */
static int io_count_fds(void) __attribute__((unused));
static int
io_count_fds(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

struct io_env {
	const char *backend;
	int workers;
	weft_fn fn;
	void *arg;
};

static void *
io_env_main(void *arg)
{
	struct io_env *e = arg;
	const char *b = weft_io_backend();

	T_EXPECT(b != NULL && strcmp(b, e->backend) == 0,
		 "weft_io_backend() is \"%s\" in a run asked for \"%s\"",
		 b ? b : "(null)", e->backend);
	T_EXPECT_INT(weft_workers(), ==, e->workers);
	return e->fn(e->arg);
}

/*
 * Run `fn(arg)` with `backend` and `workers`; assert as T_RUN() does, and
 * that the process's fd count is unchanged.  Test thread only.
 */
static void io_run(weft_fn fn, void *arg, const char *backend, int workers,
		   void **result) __attribute__((unused));
static void
io_run(weft_fn fn, void *arg, const char *backend, int workers, void **result)
{
	struct weft_config cfg = t_config(workers);
	struct io_env e = {backend, workers, fn, arg};
	int before = io_count_fds();
	int after;
	int r;

	cfg.io_backend = backend;
	r = weft_run(io_env_main, &e, &cfg, result);
	ck_assert_msg(r == 0, "[%s, %d workers] weft_run returned %d (%s)",
		      backend, workers, r, strerror(r < 0 ? -r : r));
	ck_assert_msg(atomic_load(&t_fail_count) == 0,
		      "[%s, %d workers] %d failure(s) inside tasks; first: %s",
		      backend, workers, atomic_load(&t_fail_count), t_fail_msg);
	T_ASSERT_RUNTIME_EMPTY();
	after = io_count_fds();
	ck_assert_msg(before == after,
		      "[%s, %d workers] %d fds open before the run, %d after",
		      backend, workers, before, after);
}

/* In a loop test: run `fn(arg)` with this iteration's backend. */
#define IO_RUN(fn, arg, workers)                                               \
	io_run((fn), (arg), IO_BACKEND(_i), (workers), NULL)

/* A deadline for waits that must succeed: a stall detector, not a bound. */
static int64_t io_dl(void) __attribute__((unused));
static int64_t
io_dl(void)
{
	return weft_now() + t_stall_ns();
}

/*
 * How late a deadline may fire before a test calls it broken: generous
 * (2 s), scaled like Check's timeouts under the sanitizers.
 */
static int64_t io_late_ns(void) __attribute__((unused));
static int64_t
io_late_ns(void)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	double mult = m ? atof(m) : 1.0;

	if (mult < 1.0)
		mult = 1.0;
	return (int64_t)(2.0 * mult * (double)WEFT_SEC);
}

/* Byte `off` of data stream `seed`: order and content checks in one. */
static inline uint8_t
io_pat(uint64_t seed, uint64_t off)
{
	uint64_t x = off + seed * 0x9e3779b97f4a7c15ull;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (uint8_t)x;
}

static void io_fill(void *buf, size_t len, uint64_t seed, uint64_t off)
	__attribute__((unused));
static void
io_fill(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = io_pat(seed, off + i);
}

/* Index of the first byte of `buf` that is not stream `seed`, or -1. */
static long io_mismatch(const void *buf, size_t len, uint64_t seed,
			uint64_t off) __attribute__((unused));
static long
io_mismatch(const void *buf, size_t len, uint64_t seed, uint64_t off)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != io_pat(seed, off + i))
			return (long)i;
	return -1;
}

/* FNV-1a, continued from `h` (start with IO_FNV_INIT). */
#define IO_FNV_INIT 0xcbf29ce484222325ull

static uint64_t io_fnv(uint64_t h, const void *buf, size_t len)
	__attribute__((unused));
static uint64_t
io_fnv(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* pipe2(O_CLOEXEC) inside a task; records a failure. */
static bool io_pipe(int fds[2]) __attribute__((unused));
static bool
io_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) == 0)
		return true;
	t_failf(__FILE__, __LINE__, "pipe2: %s", strerror(errno));
	return false;
}

/* A unix stream socketpair inside a task; records a failure. */
static bool io_socketpair(int sv[2]) __attribute__((unused));
static bool
io_socketpair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0)
		return true;
	t_failf(__FILE__, __LINE__, "socketpair: %s", strerror(errno));
	return false;
}

static void io_close2(int fds[2]) __attribute__((unused));
static void
io_close2(int fds[2])
{
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	fds[0] = fds[1] = -1;
}

/* Spawn `fn(arg)`; NULL (and a recorded failure) if that fails. */
static struct weft_task *io_spawn(weft_fn fn, void *arg)
	__attribute__((unused));
static struct weft_task *
io_spawn(weft_fn fn, void *arg)
{
	struct weft_task *t = NULL;
	int r = weft_spawn(&t, fn, arg, NULL);

	T_EXPECT(r == 0, "weft_spawn returned %d", r);
	return r == 0 ? t : NULL;
}

/*
 * Join `t` and return its result as an integer.  A join that stalls is a
 * failure; the task is then cancelled so the run can end.
 */
static intptr_t io_join(struct weft_task *t) __attribute__((unused));
static intptr_t
io_join(struct weft_task *t)
{
	void *res = NULL;
	int r;

	if (!t)
		return INTPTR_MIN;
	r = weft_join(t, &res, io_dl());
	if (r == -ETIMEDOUT) {
		t_failf(__FILE__, __LINE__, "a task did not finish: stalled");
		weft_cancel(t);
		r = weft_join(t, &res, WEFT_DEADLINE_NONE);
	}
	T_EXPECT(r == 0, "weft_join returned %d", r);
	return r == 0 ? t_int(res) : INTPTR_MIN;
}

/* Wait (inside a task) until `t` is parked. */
#define IO_WAIT_PARKED(t)                                                      \
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the task to park")

/* Is fd `fd` open?  Any thread. */
static bool io_fd_open(int fd) __attribute__((unused));
static bool
io_fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* Is `flag` set in the fd's status flags (F_GETFL)? */
static bool io_has_fl(int fd, int flag) __attribute__((unused));
static bool
io_has_fl(int fd, int flag)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & flag) == flag;
}

static bool io_has_cloexec(int fd) __attribute__((unused));
static bool
io_has_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl >= 0 && (fl & FD_CLOEXEC);
}

/* Does the machine have an IPv6 loopback?  socket + bind ::1. */
static bool io_have_ipv6(void) __attribute__((unused));
static bool
io_have_ipv6(void)
{
	struct sockaddr_in6 a;
	bool ok;
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_loopback;
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* The local port of socket `fd` (IPv4 or IPv6), or -1. */
static int io_local_port(int fd) __attribute__((unused));
static int
io_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

/* The address family of socket `fd`, or -1. */
static int io_family(int fd) __attribute__((unused));
static int
io_family(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	return ss.ss_family;
}

/* A socket option's int value, or INT_MIN. */
static int io_sockopt(int fd, int level, int name) __attribute__((unused));
static int
io_sockopt(int fd, int level, int name)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len) != 0)
		return -0x7fffffff - 1;
	return v;
}

/* A fresh private directory; test thread only. */
static void io_tmpdir(char *buf, size_t len) __attribute__((unused));
static void
io_tmpdir(char *buf, size_t len)
{
	const char *base = getenv("TMPDIR");

	snprintf(buf, len, "%s/weft-io-XXXXXX", base && *base ? base : "/tmp");
	ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp(%s): %s", buf,
		      strerror(errno));
}

/* Remove `dir` and the files in it (flat); test thread only. */
static void io_rmdir(const char *dir) __attribute__((unused));
static void
io_rmdir(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	rmdir(dir);
}

/*
 * Wait for child `pid` for up to `ns`; kill it (SIGKILL) if it is still
 * running then, and reap it.  Returns its wait status; *timed_out says
 * whether it had to be killed.  Test thread only.
 */
static int io_wait_child(pid_t pid, int64_t ns, bool *timed_out)
	__attribute__((unused));
static int
io_wait_child(pid_t pid, int64_t ns, bool *timed_out)
{
	int64_t end = weft_now() + ns;
	struct timespec ts = {0, 5 * 1000 * 1000};
	int status = 0;
	pid_t r;

	*timed_out = false;
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			ck_abort_msg("waitpid(%d): %s", (int)pid,
				     strerror(errno));
		if (weft_now() > end)
			break;
		nanosleep(&ts, NULL);
	}
	*timed_out = true;
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	return status;
}

#endif /* WEFT_TESTS_IO_HARNESS_H */

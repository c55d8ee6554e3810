/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of weft's Check unit tests.  Header only (static
 * functions), because the Makefile turns every tests/unit/X.c into its own
 * test program.  Uses only the public weft.h.
 *
 * Assertions inside tasks: Check's ck_assert*() must only be called on the
 * test's own thread (with CK_FORK=no a failure longjmp()s, which would jump
 * off a coroutine stack onto another thread).  Code running in a task or a
 * helper thread records a failure with T_EXPECT()/T_EXPECT_INT() instead;
 * T_RUN() reports the first one, with its file and line, once weft_run()
 * has returned.
 *
 * Debugging: `CK_FORK=no gdb build/tests/NAME`; select tests with
 * CK_RUN_SUITE / CK_RUN_CASE.
 */
#ifndef WEFT_TESTS_HARNESS_H
#define WEFT_TESTS_HARNESS_H

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft.h>

/*
 * "A million" tasks, scaled down under the sanitizers.  TSan keeps a thread
 * state and trace per fiber (about 0.9 MB resident each with GCC 12's
 * libtsan): on this 24 GB machine it dies with "internal allocator is out
 * of memory" at about 7,000 live fibers, so TSan gets 4,000.  ASan's
 * redzones and quarantine make a million slow and memory-hungry.
 */
#if defined(WEFT_TSAN)
#define T_MILLION 4000
#elif defined(WEFT_ASAN)
#define T_MILLION 100000
#else
#define T_MILLION 1000000
#endif

/* Check timeouts (seconds, scaled by CK_TIMEOUT_MULTIPLIER by Check). */
#define T_TIMEOUT      60
#define T_TIMEOUT_LONG 120

#define T_KIB ((size_t)1024)

/* The first failure recorded by a task or helper thread. */
static atomic_int t_fail_count;
static char t_fail_msg[1024];

static void t_failf(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), unused));

static void
t_failf(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (atomic_fetch_add(&t_fail_count, 1) != 0)
		return;
	n = snprintf(t_fail_msg, sizeof(t_fail_msg), "%s:%d: ", file, line);
	if (n < 0 || (size_t)n >= sizeof(t_fail_msg))
		return;
	va_start(ap, fmt);
	vsnprintf(t_fail_msg + n, sizeof(t_fail_msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Record a failure unless `cond` holds.  Any thread; never aborts. */
#define T_EXPECT(cond, ...)                                                    \
	do {                                                                   \
		if (!(cond))                                                   \
			t_failf(__FILE__, __LINE__, __VA_ARGS__);              \
	} while (0)

/* Record a failure unless `(a) op (b)`, printing both values. */
#define T_EXPECT_INT(a, op, b)                                                 \
	do {                                                                   \
		intmax_t a_ = (intmax_t)(a);                                   \
		intmax_t b_ = (intmax_t)(b);                                   \
		if (!(a_ op b_))                                               \
			t_failf(__FILE__, __LINE__,                            \
				"expected %s %s %s, got %jd vs %jd", #a, #op,  \
				#b, a_, b_);                                   \
	} while (0)

static bool t_failed(void) __attribute__((unused));
static bool
t_failed(void)
{
	return atomic_load(&t_fail_count) != 0;
}

/* Fail the test (on the test's thread) if a task recorded a failure. */
#define T_ASSERT_NO_TASK_FAILURES()                                            \
	ck_assert_msg(atomic_load(&t_fail_count) == 0,                         \
		      "%d failure(s) inside tasks; first: %s",                 \
		      atomic_load(&t_fail_count), t_fail_msg)

/*
 * After a run the runtime must be empty: nothing running, no live task, no
 * stack in use, no stack memory left mapped (libuv's MAKE_VALGRIND_HAPPY).
 */
#define T_ASSERT_RUNTIME_EMPTY()                                               \
	do {                                                                   \
		struct weft_stats s_;                                          \
		memset(&s_, 0xa5, sizeof(s_));                                 \
		ck_assert_int_eq(weft_stats(&s_), 0);                          \
		ck_assert_msg(s_.running == 0,                                 \
			      "runtime still running: running=%d",             \
			      s_.running);                                     \
		ck_assert_msg(s_.tasks_live == 0,                              \
			      "%" PRIu64 " task(s) still live",                \
			      s_.tasks_live);                                  \
		ck_assert_msg(s_.stacks_in_use == 0,                           \
			      "%" PRIu64 " stack(s) still in use",             \
			      s_.stacks_in_use);                               \
		ck_assert_msg(s_.stack_bytes_mapped == 0,                      \
			      "%" PRIu64 " stack bytes still mapped",          \
			      s_.stack_bytes_mapped);                          \
	} while (0)

/*
 * Run `fn(arg)` under weft_run(), then assert that it returned 0, that no
 * task recorded a failure and that the runtime is empty.
 */
#define T_RUN(fn, arg, cfg, result)                                            \
	do {                                                                   \
		int r_ = weft_run((fn), (arg), (cfg), (result));               \
		ck_assert_msg(r_ == 0, "weft_run(%s) returned %d (%s)", #fn,   \
			      r_, strerror(r_ < 0 ? -r_ : r_));                \
		T_ASSERT_NO_TASK_FAILURES();                                   \
		T_ASSERT_RUNTIME_EMPTY();                                      \
	} while (0)

/*
 * How long a wait may take before a test calls it a stall (a lost wake-up,
 * a starved task).  This is a deadlock detector that turns a hang into a
 * message, not a timing assertion: it is far above any correct run and
 * scales with CK_TIMEOUT_MULTIPLIER like Check's own timeouts.
 */
static int64_t t_stall_ns(void) __attribute__((unused));
static int64_t
t_stall_ns(void)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	double mult = m ? atof(m) : 1.0;

	if (mult < 1.0)
		mult = 1.0;
	return (int64_t)(20.0 * mult) * WEFT_SEC;
}

/*
 * Inside a task: poll `cond` every millisecond with weft_sleep().  Records a
 * failure and yields false if weft_sleep() fails or the wait stalls.
 */
#define T_WAIT(cond, what)                                                     \
	({                                                                     \
		int64_t end_ = weft_now() + t_stall_ns();                      \
		bool ok_ = true;                                               \
		while (!(cond)) {                                              \
			int w_ = weft_sleep(WEFT_MSEC);                        \
			if (w_ != 0 || weft_now() > end_) {                    \
				t_failf(__FILE__, __LINE__,                    \
					"waiting for %s: %s (%d)", (what),     \
					w_ ? "weft_sleep failed" : "stalled",  \
					w_);                                   \
				ok_ = false;                                   \
				break;                                         \
			}                                                      \
		}                                                              \
		ok_;                                                           \
	})

/*
 * Inside a task: poll until the counter `now_expr` reaches `target`, every
 * millisecond with weft_sleep().  A stall is t_stall_ns() without the
 * counter moving, not a total: a million first touches of fresh stack
 * pages take most of that on a VM whose page faults cost 20 us each.
 */
#define T_WAIT_COUNT(now_expr, target, what)                                   \
	({                                                                     \
		long last_ = -1;                                               \
		int64_t end_ = 0;                                              \
		bool ok_ = true;                                               \
		for (;;) {                                                     \
			long v_ = (long)(now_expr);                            \
			if (v_ >= (long)(target))                              \
				break;                                         \
			if (v_ != last_) {                                     \
				last_ = v_;                                    \
				end_ = weft_now() + t_stall_ns();              \
			}                                                      \
			int w_ = weft_sleep(WEFT_MSEC);                        \
			if (w_ != 0 || weft_now() > end_) {                    \
				t_failf(__FILE__, __LINE__,                    \
					"waiting for %s: %s at %ld of %ld (%d)", \
					(what),                                \
					w_ ? "weft_sleep failed" : "stalled",  \
					v_, (long)(target), w_);               \
				ok_ = false;                                   \
				break;                                         \
			}                                                      \
		}                                                              \
		ok_;                                                           \
	})

/* On a plain thread: the same, with nanosleep(). */
#define T_WAIT_THREAD(cond, what)                                              \
	({                                                                     \
		int64_t end_ = weft_now() + t_stall_ns();                      \
		bool ok_ = true;                                               \
		while (!(cond)) {                                              \
			struct timespec ts_ = {0, 1000 * 1000};                \
			nanosleep(&ts_, NULL);                                 \
			if (weft_now() > end_) {                               \
				t_failf(__FILE__, __LINE__,                    \
					"waiting for %s: stalled", (what));    \
				ok_ = false;                                   \
				break;                                         \
			}                                                      \
		}                                                              \
		ok_;                                                           \
	})

static inline void
t_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Burn CPU on the current worker for `ns` without parking or yielding. */
static void t_burn(int64_t ns) __attribute__((unused));
static void
t_burn(int64_t ns)
{
	int64_t end = weft_now() + ns;

	while (weft_now() < end)
		t_cpu_relax();
}

/* xorshift64*: a small per-task generator (rand() is not thread-safe). */
static uint64_t t_rand(uint64_t *state) __attribute__((unused));
static uint64_t
t_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* A zeroed configuration with `workers` workers (0: the default). */
static inline struct weft_config
t_config(int workers)
{
	struct weft_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.workers = workers;
	return cfg;
}

/*
 * Run child(arg) in a forked process whose stderr is a pipe, and collect
 * what it writes: up to cap - 1 bytes into out, NUL-terminated (the rest
 * is read and dropped, so the child never blocks), then its wait status.
 * child must not return (it _exit()s, or dies).  Returns the bytes kept.
 */
static size_t t_child_stderr(void (*child)(void *), void *arg, char *out,
			     size_t cap, int *status) __attribute__((unused));
static size_t
t_child_stderr(void (*child)(void *), void *arg, char *out, size_t cap,
	       int *status)
{
	char sink[4096];
	size_t len = 0;
	ssize_t n;
	int pfd[2];
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], STDERR_FILENO);
		close(pfd[1]);
		child(arg);
		_exit(0);
	}
	close(pfd[1]);
	for (;;) {
		if (len < cap - 1)
			n = read(pfd[0], out + len, cap - 1 - len);
		else
			n = read(pfd[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (len < cap - 1)
			len += (size_t)n;
	}
	out[len] = '\0';
	close(pfd[0]);
	while (waitpid(pid, status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	return len;
}

static inline void *
t_ptr(intptr_t v)
{
	return (void *)v;
}

static inline intptr_t
t_int(void *p)
{
	return (intptr_t)p;
}

/*
 * Checked fixture of every test case: no runtime may be running when a test
 * starts, and the runtime must be empty when it ends.
 */
static void t_setup(void) __attribute__((unused));
static void
t_setup(void)
{
	struct weft_stats s;

	atomic_store(&t_fail_count, 0);
	t_fail_msg[0] = '\0';
	ck_assert_int_eq(weft_stats(&s), 0);
	ck_assert_msg(s.running == 0, "a runtime is running before the test");
}

static void t_teardown(void) __attribute__((unused));
static void
t_teardown(void)
{
	T_ASSERT_NO_TASK_FAILURES();
	T_ASSERT_RUNTIME_EMPTY();
	/* Tests that set it undo it; CK_FORK=no runs them in one process. */
	unsetenv("WEFT_WORKERS");
}

/* A test case with the fixture and a timeout, added to `s`. */
static TCase *t_tcase(Suite *s, const char *name, double timeout)
	__attribute__((unused));
static TCase *
t_tcase(Suite *s, const char *name, double timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

/* Run one suite with CK_ENV (CK_RUN_SUITE, CK_RUN_CASE, CK_FORK, ...). */
static int t_main(Suite *s) __attribute__((unused));
static int
t_main(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* WEFT_TESTS_HARNESS_H */

/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics: the deadlock detector (cycles of joins and futures, a
 * channel deadlock without a cycle, report-only mode, and no report while a
 * timer, I/O, a pool job or a foreign thread can still wake a task),
 * weft_dump(), the dump on a signal and the slow-task report.
 *
 * A deadlock aborts the process, so those tests run weft in a forked child
 * and read its stderr through a pipe, within a bounded time; a child that
 * outlives it is killed by pid.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io_harness.h"

/*
 * Children
 */

struct child {
	pid_t pid;
	int fd;			/* read end of the child's stderr */
	int in;			/* write end of the child's stdin, or -1 */
	int status;
	bool exited;
	size_t len;
	char out[64 * 1024];
};

/*
 * The configuration the children run with: zero (every setting from the
 * environment or its default) unless a test sets fields before
 * child_start(), which zeroes it again once the child has forked.
 */
static struct weft_config child_cfg;

/*
 * Fork a child that sets `env` ("NAME=value" strings, NULL-terminated),
 * runs body() and exits with its result.  Its stderr goes to c->fd, its
 * stdin comes from c->in.  The test's thread only.
 */
static void
child_start(struct child *c, int (*body)(void), const char *const *env)
{
	int err[2], in[2];

	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(pipe(err), 0);
	ck_assert_int_eq(pipe(in), 0);
	fflush(stdout);
	fflush(stderr);
	c->pid = fork();
	ck_assert_int_ne(c->pid, -1);
	if (c->pid == 0) {
		dup2(err[1], 2);
		dup2(in[0], 0);
		close(err[0]);
		close(err[1]);
		close(in[0]);
		close(in[1]);
		setvbuf(stderr, NULL, _IONBF, 0);
		for (; env && *env; env++)
			putenv((char *)*env);
		/*
		 * A hang ends as SIGALRM.  Check's own handler for it kills
		 * the whole process group (the test included): not here.
		 */
		signal(SIGALRM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		alarm((unsigned)(t_stall_ns() / WEFT_SEC));
		_exit(body());
	}
	close(err[1]);
	close(in[0]);
	c->fd = err[0];
	c->in = in[1];
	/* The child has its copy; the next child starts from zero again. */
	memset(&child_cfg, 0, sizeof(child_cfg));
}

/*
 * Read the child's stderr until EOF, until `until` (if non-NULL) has
 * appeared `count` times, or until `ms` milliseconds passed.  Returns
 * true if it stopped for EOF or for `until`.
 */
static bool
child_read(struct child *c, const char *until, int count, int64_t ms)
{
	int64_t end = weft_now() + ms * WEFT_MSEC;

	for (;;) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int64_t left = end - weft_now();
		int seen = 0;
		ssize_t n;

		if (until)
			for (const char *s = c->out; (s = strstr(s, until));
			     s++)
				seen++;
		if (until && seen >= count)
			return true;
		if (left <= 0)
			return false;
		if (poll(&p, 1, (int)(left / WEFT_MSEC) + 1) <= 0)
			continue;
		if (c->len >= sizeof(c->out) - 1)
			return false;
		n = read(c->fd, c->out + c->len, sizeof(c->out) - 1 - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return !until;
		c->len += (size_t)n;
		c->out[c->len] = '\0';
	}
}

/* Wait for the child to end, killing it by pid if it is not gone in `ms`. */
static void
child_wait(struct child *c, int64_t ms)
{
	int64_t end = weft_now() + ms * WEFT_MSEC;
	pid_t r;

	while ((r = waitpid(c->pid, &c->status, WNOHANG)) == 0 &&
	       weft_now() < end) {
		/* Drain its stderr meanwhile so that it cannot block. */
		child_read(c, NULL, 0, 10);
	}
	if (r == 0) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
			;
	}
	c->exited = true;
	close(c->fd);
	if (c->in >= 0)
		close(c->in);
}

static int
count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *s = hay; (s = strstr(s, needle)); s++)
		n++;
	return n;
}

/* Milliseconds a child is given, scaled like Check's timeouts. */
static int64_t
child_ms(void)
{
	return t_stall_ns() / WEFT_MSEC;
}

#define DEADLOCK_MSG "weft: all tasks are asleep - deadlock!"

static void
assert_aborted(const struct child *c)
{
	ck_assert_msg(WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGABRT,
		      "the child %s %d, expected SIGABRT; stderr: %.2000s",
		      WIFSIGNALED(c->status) ? "died of signal" : "exited with",
		      WIFSIGNALED(c->status) ? WTERMSIG(c->status)
					     : WEXITSTATUS(c->status),
		      c->out);
}

static void
assert_exit0(const struct child *c)
{
	ck_assert_msg(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0,
		      "the child %s %d, expected exit 0; stderr: %.2000s",
		      WIFSIGNALED(c->status) ? "died of signal" : "exited with",
		      WIFSIGNALED(c->status) ? WTERMSIG(c->status)
					     : WEXITSTATUS(c->status),
		      c->out);
}

static struct weft_task *
spawn_named(weft_fn fn, void *arg, const char *name)
{
	struct weft_spawn_opts o;
	struct weft_task *t = NULL;

	memset(&o, 0, sizeof(o));
	o.name = name;
	T_EXPECT_INT(weft_spawn(&t, fn, arg, &o), ==, 0);
	return t;
}

/*
 * A join cycle: alpha joins beta, beta joins alpha; main waits on a
 * channel nobody sends on.
 */
struct pair {
	struct weft_task *t[2];
	struct weft_chan *go;
	struct pair_arg {
		struct pair *p;
		int self;
	} arg[2];
};

static void *
join_other(void *arg)
{
	struct pair_arg *a = arg;
	int tok;

	weft_chan_recv(a->p->go, &tok, WEFT_DEADLINE_NONE);
	weft_join(a->p->t[1 - a->self], NULL, WEFT_DEADLINE_NONE);
	return NULL;
}

static void *
join_cycle_main(void *unused)
{
	struct pair p;
	struct weft_chan *never;
	int tok, v;

	(void)unused;
	weft_chan_make(&p.go, sizeof(int), 2);
	weft_chan_make(&never, sizeof(int), 0);
	for (int i = 0; i < 2; i++)
		p.arg[i] = (struct pair_arg){ .p = &p, .self = i };
	p.t[0] = spawn_named(join_other, &p.arg[0], "alpha");
	p.t[1] = spawn_named(join_other, &p.arg[1], "beta");
	/* Both handles are set before either task looks at them. */
	tok = 0;
	weft_chan_send(p.go, &tok, WEFT_DEADLINE_NONE);
	tok = 1;
	weft_chan_send(p.go, &tok, WEFT_DEADLINE_NONE);
	weft_chan_recv(never, &v, WEFT_DEADLINE_NONE);
	return NULL;
}

static int
join_cycle_child(void)
{
	return weft_run(join_cycle_main, NULL, &child_cfg, NULL) == 0 ? 3 : 4;
}

/* One of the two orders the cycle may be printed in. */
static bool
has_cycle_line(const char *out, const char *a, const char *b)
{
	char l1[128], l2[128];

	snprintf(l1, sizeof(l1), "cycle: %s (#", a);
	snprintf(l2, sizeof(l2), "cycle: %s (#", b);
	const char *s = strstr(out, l1) ? strstr(out, l1) : strstr(out, l2);
	const char *e;

	if (!s)
		return false;
	e = strchr(s, '\n');
	if (!e)
		return false;
	/* "x (#i) -> y (#j) -> x (#i)": three names, two arrows. */
	{
		char line[256];
		size_t n = (size_t)(e - s);

		if (n >= sizeof(line))
			return false;
		memcpy(line, s, n);
		line[n] = '\0';
		return strstr(line, a) && strstr(line, b) &&
		       count_of(line, " -> ") == 2;
	}
}

START_TEST(join_cycle_is_reported_and_aborts)
{
	static struct child c;

	child_start(&c, join_cycle_child, NULL);
	child_read(&c, NULL, 0, child_ms());
	child_wait(&c, child_ms());
	ck_assert_msg(strstr(c.out, DEADLOCK_MSG), "no report: %.2000s",
		      c.out);
	ck_assert_msg(strstr(c.out, "\"alpha\" suspended: waiting on join") &&
		      strstr(c.out, "\"beta\" suspended: waiting on join"),
		      "tasks not listed: %.2000s", c.out);
	ck_assert_msg(strstr(c.out, "waiting on chan recv"),
		      "main's channel wait not listed: %.2000s", c.out);
	ck_assert_msg(has_cycle_line(c.out, "alpha", "beta"),
		      "no cycle line: %.2000s", c.out);
	ck_assert_int_eq(count_of(c.out, "cycle: "), 1);
	assert_aborted(&c);
}
END_TEST

/*
 * The seed's example: alpha waits on beta's task future, beta on alpha's.
 * Main waits on alpha's future too (no edge of its own in the cycle).
 */
static void *
wait_other_future(void *arg)
{
	struct pair_arg *a = arg;
	int tok;

	weft_chan_recv(a->p->go, &tok, WEFT_DEADLINE_NONE);
	weft_future_wait(weft_task_future(a->p->t[1 - a->self]), NULL,
			 WEFT_DEADLINE_NONE);
	return NULL;
}

static void *
future_cycle_main(void *unused)
{
	struct pair p;
	int tok = 0;

	(void)unused;
	weft_chan_make(&p.go, sizeof(int), 2);
	for (int i = 0; i < 2; i++)
		p.arg[i] = (struct pair_arg){ .p = &p, .self = i };
	p.t[0] = spawn_named(wait_other_future, &p.arg[0], "alpha");
	p.t[1] = spawn_named(wait_other_future, &p.arg[1], "beta");
	weft_chan_send(p.go, &tok, WEFT_DEADLINE_NONE);
	weft_chan_send(p.go, &tok, WEFT_DEADLINE_NONE);
	weft_join(p.t[0], NULL, WEFT_DEADLINE_NONE);
	return NULL;
}

static int
future_cycle_child(void)
{
	return weft_run(future_cycle_main, NULL, &child_cfg, NULL) == 0 ? 3 : 4;
}

START_TEST(future_cycle_is_reported_and_aborts)
{
	static struct child c;

	child_start(&c, future_cycle_child, NULL);
	child_read(&c, NULL, 0, child_ms());
	child_wait(&c, child_ms());
	ck_assert_msg(strstr(c.out, DEADLOCK_MSG), "no report: %.2000s",
		      c.out);
	ck_assert_msg(strstr(c.out, "\"alpha\" suspended: waiting on future") &&
		      strstr(c.out, "\"beta\" suspended: waiting on future"),
		      "tasks not listed: %.2000s", c.out);
	ck_assert_msg(strstr(c.out, "\"main\" suspended: waiting on join"),
		      "main not listed: %.2000s", c.out);
	ck_assert_msg(has_cycle_line(c.out, "alpha", "beta"),
		      "no cycle line: %.2000s", c.out);
	ck_assert_int_eq(count_of(c.out, "cycle: "), 1);
	assert_aborted(&c);
}
END_TEST

/* A channel deadlock: no cycle, still a deadlock. */
static void *
send_forever(void *arg)
{
	int v = 1;

	weft_chan_send(arg, &v, WEFT_DEADLINE_NONE);
	return NULL;
}

static void *
chan_deadlock_main(void *unused)
{
	struct weft_chan *a, *b;
	int v;

	(void)unused;
	weft_chan_make(&a, sizeof(int), 0);
	weft_chan_make(&b, sizeof(int), 0);
	weft_detach(spawn_named(send_forever, b, "gamma"));
	weft_chan_recv(a, &v, WEFT_DEADLINE_NONE);
	return NULL;
}

static int
chan_deadlock_child(void)
{
	return weft_run(chan_deadlock_main, NULL, &child_cfg, NULL) == 0 ? 3 : 4;
}

START_TEST(chan_deadlock_without_cycle_is_reported)
{
	static struct child c;

	child_start(&c, chan_deadlock_child, NULL);
	child_read(&c, NULL, 0, child_ms());
	child_wait(&c, child_ms());
	ck_assert_msg(strstr(c.out, DEADLOCK_MSG), "no report: %.2000s",
		      c.out);
	ck_assert_msg(strstr(c.out, "\"gamma\" suspended: waiting on chan send"),
		      "gamma not listed: %.2000s", c.out);
	ck_assert_msg(strstr(c.out, "suspended: waiting on chan recv"),
		      "main not listed: %.2000s", c.out);
	ck_assert_msg(!strstr(c.out, "cycle: "), "a cycle: %.2000s", c.out);
	assert_aborted(&c);
}
END_TEST

/* Start a child, read its stderr to EOF, and assert it exited 0. */
static void
child_run_to_exit(struct child *c, int (*body)(void), const char *const *env)
{
	child_start(c, body, env);
	child_read(c, NULL, 0, child_ms());
	child_wait(c, child_ms());
	assert_exit0(c);
}

/*
 * Start a child that must report one deadlock and then keep waiting (no
 * abort); assert both, then kill it.
 */
static void
child_reports_once_and_waits(struct child *c, const char *const *env)
{
	pid_t r;

	child_start(c, join_cycle_child, env);
	ck_assert_msg(child_read(c, DEADLOCK_MSG, 1, child_ms()),
		      "no report: %.2000s", c->out);
	/* Ten idle ticks of the monitor: a repeat would show by then. */
	child_read(c, DEADLOCK_MSG, 2, 1000);
	ck_assert_int_eq(count_of(c->out, DEADLOCK_MSG), 1);
	r = waitpid(c->pid, &c->status, WNOHANG);
	ck_assert_msg(r == 0, "the child ended: status %d; %.2000s", c->status,
		      c->out);
	ck_assert_int_eq(kill(c->pid, SIGKILL), 0);
	child_wait(c, child_ms());
	ck_assert(WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGKILL);
}

/*
 * WEFT_DEADLOCK=report: one report, the process goes on.  Nothing inside
 * the child can end this deadlock (a thread that could is a reason not to
 * report), so the test watches for a second report for a while, checks
 * that the child is still alive, and kills it.
 */
START_TEST(report_mode_reports_once_and_does_not_abort)
{
	static const char *const env[] = { "WEFT_DEADLOCK=report", NULL };
	static struct child c;

	child_reports_once_and_waits(&c, env);
	ck_assert_msg(strstr(c.out, "WEFT_DEADLOCK=report"),
		      "no report-mode note: %.2000s", c.out);
}
END_TEST

/*
 * No false deadlocks.  These run in the test's own process, in report
 * mode, and assert that nothing was reported (in abort mode a false
 * report would kill the test).
 */
#define QUIET_WAIT (500 * WEFT_MSEC)	/* > two idle monitor ticks */

static void
no_report_begin(void)
{
	setenv("WEFT_DEADLOCK", "report", 1);
}

static void
no_report_end(void)
{
	struct weft_stats s;

	unsetenv("WEFT_DEADLOCK");
	ck_assert_int_eq(weft_stats(&s), 0);
	ck_assert_msg(s.deadlocks == 0, "%" PRIu64 " deadlock(s) reported",
		      s.deadlocks);
}

static void *
sleeper(void *unused)
{
	(void)unused;
	T_EXPECT_INT(weft_sleep(QUIET_WAIT), ==, 0);
	return NULL;
}

/* Main joins a sleeper; another task waits on a channel main closes. */
static void *
timer_main(void *unused)
{
	struct weft_chan *ch;
	struct weft_task *w;

	(void)unused;
	weft_chan_make(&ch, sizeof(int), 0);
	w = spawn_named(send_forever, ch, "blocked");
	T_EXPECT_INT(weft_join(spawn_named(sleeper, NULL, "sleeper"), NULL,
			       WEFT_DEADLINE_NONE), ==, 0);
	weft_chan_close(ch);
	T_EXPECT_INT(weft_join(w, NULL, WEFT_DEADLINE_NONE), ==, 0);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(no_deadlock_while_a_timer_is_armed)
{
	no_report_begin();
	T_RUN(timer_main, NULL, NULL, NULL);
	no_report_end();
}
END_TEST

/* A pipe whose writer is another process, writing after QUIET_WAIT. */
static void *
io_main(void *arg)
{
	int fd = (int)t_int(arg);
	char b = 0;

	T_EXPECT_INT(weft_read(fd, &b, 1, WEFT_DEADLINE_NONE), ==, 1);
	T_EXPECT_INT(b, ==, 'x');
	return NULL;
}

static void
no_deadlock_io(const char *backend)
{
	struct weft_config cfg = t_config(0);
	struct timespec ts = { 0, QUIET_WAIT };
	int pfd[2], status;
	pid_t pid;

	cfg.io_backend = backend;
	ck_assert_int_eq(pipe(pfd), 0);
	fflush(stderr);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(pfd[0]);
		nanosleep(&ts, NULL);
		_exit(write(pfd[1], "x", 1) == 1 ? 0 : 1);
	}
	close(pfd[1]);
	no_report_begin();
	T_RUN(io_main, t_ptr(pfd[0]), &cfg, NULL);
	no_report_end();
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

START_TEST(no_deadlock_while_io_is_in_flight)
{
	if (!io_uring_usable()) {
		fprintf(stderr, "SKIP %s: no io_uring (the epoll case runs)\n",
			__func__);
		return;
	}
	no_deadlock_io("uring");
}
END_TEST

START_TEST(no_deadlock_while_io_is_in_flight_epoll)
{
	no_deadlock_io("epoll");
}
END_TEST

/* A pool job that blocks its thread for QUIET_WAIT. */
static void *
blocking_job(void *unused)
{
	struct timespec ts = { 0, QUIET_WAIT };

	(void)unused;
	nanosleep(&ts, NULL);
	return t_ptr(7);
}

static void *
pool_main(void *unused)
{
	void *res = NULL;

	(void)unused;
	T_EXPECT_INT(weft_blocking(blocking_job, NULL, &res,
				   WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 7);
	return NULL;
}

START_TEST(no_deadlock_while_a_pool_job_runs)
{
	no_report_begin();
	T_RUN(pool_main, NULL, NULL, NULL);
	no_report_end();
}
END_TEST

/* A plain thread holds the channel and sends after QUIET_WAIT. */
static void *
late_sender(void *arg)
{
	struct timespec ts = { 0, QUIET_WAIT };
	int v = 42;

	nanosleep(&ts, NULL);
	T_EXPECT_INT(weft_chan_send(arg, &v, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

static void *
foreign_main(void *unused)
{
	struct weft_chan *ch;
	pthread_t th;
	int v = 0;

	(void)unused;
	weft_chan_make(&ch, sizeof(int), 0);
	T_EXPECT_INT(pthread_create(&th, NULL, late_sender, ch), ==, 0);
	T_EXPECT_INT(weft_chan_recv(ch, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(v, ==, 42);
	/* Joining a thread blocks the worker: it has sent already. */
	pthread_join(th, NULL);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(no_deadlock_while_a_foreign_thread_holds_a_channel)
{
	no_report_begin();
	T_RUN(foreign_main, NULL, NULL, NULL);
	no_report_end();
}
END_TEST

/*
 * A lock-order inversion: "ab" holds m1 and wants m2, "ba" holds m2 and
 * wants m1 (both hold their first before either asks for its second);
 * main joins ab.
 */
static struct weft_mutex inv_m[2] = { WEFT_MUTEX_INIT, WEFT_MUTEX_INIT };
static struct weft_waitgroup inv_wg = WEFT_WAITGROUP_INIT;

static void *
inv_locker(void *arg)
{
	int first = (int)(intptr_t)arg;

	weft_mutex_lock(&inv_m[first], WEFT_DEADLINE_NONE);
	weft_waitgroup_done(&inv_wg);
	weft_waitgroup_wait(&inv_wg, WEFT_DEADLINE_NONE);
	weft_mutex_lock(&inv_m[1 - first], WEFT_DEADLINE_NONE);
	return NULL;
}

static void *
inversion_main(void *unused)
{
	struct weft_task *ab, *ba;

	(void)unused;
	weft_waitgroup_add(&inv_wg, 2);
	ab = spawn_named(inv_locker, (void *)(intptr_t)0, "ab");
	ba = spawn_named(inv_locker, (void *)(intptr_t)1, "ba");
	weft_join(ab, NULL, WEFT_DEADLINE_NONE);
	weft_join(ba, NULL, WEFT_DEADLINE_NONE);
	return NULL;
}

static int
inversion_child(void)
{
	return weft_run(inversion_main, NULL, &child_cfg, NULL) == 0 ? 3 : 4;
}

START_TEST(mutex_inversion_is_reported_with_its_cycle)
{
	static struct child c;

	child_start(&c, inversion_child, NULL);
	child_read(&c, NULL, 0, child_ms());
	child_wait(&c, child_ms());
	ck_assert_msg(strstr(c.out, DEADLOCK_MSG), "no report: %.2000s",
		      c.out);
	ck_assert_msg(strstr(c.out, "\"ab\" suspended: waiting on mutex") &&
		      strstr(c.out, "(held by ba (#") &&
		      strstr(c.out, "\"ba\" suspended: waiting on mutex") &&
		      strstr(c.out, "(held by ab (#"),
		      "owners not named: %.2000s", c.out);
	ck_assert_msg(has_cycle_line(c.out, "ab", "ba"),
		      "no cycle line: %.2000s", c.out);
	ck_assert_int_eq(count_of(c.out, "cycle: "), 1);
	ck_assert_msg(strstr(c.out, "inv_locker+"), "no frames: %.2000s",
		      c.out);
	assert_aborted(&c);
}
END_TEST

/* Go's select {}: the only task sleeps without end. */
static void *
sleep_forever_main(void *arg)
{
	if (arg)
		weft_sleep(INT64_MAX);
	else
		weft_sleep_until(WEFT_DEADLINE_NONE);
	return NULL;
}

static int
sleep_forever_child(void)
{
	return weft_run(sleep_forever_main, NULL, &child_cfg, NULL) == 0 ? 3 :
	       4;
}

static int
sleep_max_child(void)
{
	return weft_run(sleep_forever_main, (void *)1, &child_cfg, NULL) == 0 ?
	       3 : 4;
}

START_TEST(a_lone_task_sleeping_forever_is_a_deadlock)
{
	static struct child c;
	int (*const body[2])(void) = { sleep_forever_child, sleep_max_child };

	for (int i = 0; i < 2; i++) {
		memset(&c, 0, sizeof(c));
		child_start(&c, body[i], NULL);
		child_read(&c, NULL, 0, child_ms());
		child_wait(&c, child_ms());
		ck_assert_msg(strstr(c.out, DEADLOCK_MSG), "no report: %.2000s",
			      c.out);
		ck_assert_msg(strstr(c.out, "\"main\" suspended: waiting on "
				     "sleep") && strstr(c.out, ", forever"),
			      "sleep not listed: %.2000s", c.out);
		ck_assert_msg(strstr(c.out, "sleep_forever_main+"),
			      "no frames: %.2000s", c.out);
		assert_aborted(&c);
	}
}
END_TEST

/*
 * weft_dump()
 */

static void *
recv_once(void *arg)
{
	int v;

	T_EXPECT_INT(weft_chan_recv(arg, &v, WEFT_DEADLINE_NONE), ==, -EPIPE);
	return NULL;
}

static void *
dump_main(void *unused)
{
	struct weft_chan *ch;
	struct weft_task *t;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)unused;
	weft_chan_make(&ch, sizeof(int), 0);
	t = spawn_named(recv_once, ch, "dumpee");
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "dumpee to park");
	f = open_memstream(&buf, &len);
	T_EXPECT(f != NULL, "open_memstream");
	if (f) {
		T_EXPECT_INT(weft_dump(f), ==, 0);
		fclose(f);
		T_EXPECT(strstr(buf, "weft: dump: ") != NULL, "header: %s",
			 buf);
		T_EXPECT(strstr(buf, "\"dumpee\" suspended: waiting on chan "
				"recv") != NULL, "dumpee: %s", buf);
		T_EXPECT(strstr(buf, "worker 0: tasks_run ") != NULL,
			 "worker counters: %s", buf);
		T_EXPECT(strstr(buf, "io completed") != NULL, "io: %s", buf);
		T_EXPECT(strstr(buf, "stacks: ") != NULL, "stacks: %s", buf);
		/* The caller itself is running, on this worker. */
		T_EXPECT(strstr(buf, " running on worker ") != NULL,
			 "running task: %s", buf);
		free(buf);
	}
	weft_chan_close(ch);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(dump_lists_a_parked_task_and_what_it_waits_on)
{
	T_RUN(dump_main, NULL, NULL, NULL);
}
END_TEST

/*
 * Backtraces: CROWD tasks parked at one call site share one stack (or the
 * two or three a channel's wait paths give), named down to their body and
 * to the function that spawned them.
 */
#define CROWD 64

static __attribute__((noinline)) void *
crowd_body(void *arg)
{
	int v;

	T_EXPECT_INT(weft_chan_recv(arg, &v, WEFT_DEADLINE_NONE), ==, -EPIPE);
	/* Not a tail call: crowd_body keeps its frame while parked. */
	__asm__ volatile("" ::: "memory");
	return NULL;
}

/*
 * Sum the task counts of the "stack K: M tasks" groups whose frames name
 * `fn`; *groups receives how many groups did.
 */
static long
stack_tasks_naming(const char *out, const char *fn, int *groups)
{
	const char *s = strstr(out, "\nstacks (");
	long sum = 0;

	*groups = 0;
	while (s && (s = strstr(s, "\n  stack "))) {
		const char *end = strstr(s + 1, "\n  stack ");
		const char *cyc = strstr(s + 1, "\ncycle: ");
		const char *hit = strstr(s, fn);
		long m = 0;

		if (cyc && (!end || cyc < end))
			end = cyc;
		sscanf(strchr(s, ':') + 1, " %ld", &m);
		if (hit && (!end || hit < end)) {
			sum += m;
			(*groups)++;
		}
		s = end;
	}
	return sum;
}

static void *
crowd_main(void *unused)
{
	struct weft_task *t[CROWD];
	struct weft_chan *ch;
	char *buf = NULL, want[64];
	size_t len = 0;
	int groups = 0;
	long n;
	FILE *f;

	(void)unused;
	weft_chan_make(&ch, sizeof(int), 0);
	for (int i = 0; i < CROWD; i++)
		t[i] = spawn_named(crowd_body, ch, "crowd");
	for (int i = 0; i < CROWD; i++)
		T_WAIT(weft_task_state(t[i]) == WEFT_SUSPENDED, "crowd to park");
	f = open_memstream(&buf, &len);
	T_EXPECT(f != NULL, "open_memstream");
	if (f) {
		T_EXPECT_INT(weft_dump(f), ==, 0);
		fclose(f);
		n = stack_tasks_naming(buf, "crowd_body+", &groups);
		T_EXPECT(n == CROWD, "%ld of %d tasks on crowd_body stacks: %s",
			 n, CROWD, buf);
		T_EXPECT(groups >= 1 && groups <= 3,
			 "%d groups for one call site: %s", groups, buf);
		snprintf(want, sizeof(want), "created by #%" PRIu64
			 " at spawn_named+", weft_task_id(weft_self()));
		T_EXPECT(count_of(buf, want) == CROWD, "created by: %s", buf);
		T_EXPECT(strstr(buf, "(cap 0, 0 queued)") != NULL,
			 "channel detail: %s", buf);
		free(buf);
	}
	weft_chan_close(ch);
	for (int i = 0; i < CROWD; i++)
		T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE), ==, 0);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(dump_groups_identical_stacks_and_names_their_frames)
{
	T_RUN(crowd_main, NULL, NULL, NULL);
}
END_TEST

/* An I/O wait shows its fd, its operation and the time left. */
static void *
read_pipe(void *arg)
{
	int *fds = arg;
	char b;

	T_EXPECT_INT(weft_read(fds[0], &b, 1, weft_now() + 60 * WEFT_SEC),
		     ==, 1);
	return NULL;
}

static void *
io_dump_main(void *unused)
{
	struct weft_task *t;
	char *buf = NULL, want[64];
	size_t len = 0;
	int fds[2];
	FILE *f;

	(void)unused;
	T_EXPECT_INT(pipe(fds), ==, 0);
	t = spawn_named(read_pipe, fds, "reader");
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "reader to park");
	f = open_memstream(&buf, &len);
	if (f) {
		T_EXPECT_INT(weft_dump(f), ==, 0);
		fclose(f);
		snprintf(want, sizeof(want),
			 "\"reader\" suspended: waiting on I/O read fd %d",
			 fds[0]);
		T_EXPECT(strstr(buf, want) != NULL, "want %s: %s", want, buf);
		T_EXPECT(strstr(buf, ", deadline in ") != NULL,
			 "deadline: %s", buf);
		T_EXPECT(strstr(buf, "read_pipe+") != NULL, "frames: %s", buf);
		free(buf);
	}
	T_EXPECT_INT(write(fds[1], "x", 1), ==, 1);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	close(fds[0]);
	close(fds[1]);
	return NULL;
}

START_TEST(dump_shows_an_io_wait_with_fd_and_deadline)
{
	T_RUN(io_dump_main, NULL, NULL, NULL);
}
END_TEST

/* A mutex wait names the owner, here the running task that dumps. */
static struct weft_mutex held_m = WEFT_MUTEX_INIT;

static void *
lock_held(void *unused)
{
	(void)unused;
	T_EXPECT_INT(weft_mutex_lock(&held_m, WEFT_DEADLINE_NONE), ==, 0);
	weft_mutex_unlock(&held_m);
	return NULL;
}

static void *
owner_dump_main(void *unused)
{
	struct weft_task *t;
	char *buf = NULL, want[64];
	size_t len = 0;
	FILE *f;

	(void)unused;
	T_EXPECT_INT(weft_mutex_lock(&held_m, WEFT_DEADLINE_NONE), ==, 0);
	t = spawn_named(lock_held, NULL, "locker");
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "locker to park");
	f = open_memstream(&buf, &len);
	if (f) {
		T_EXPECT_INT(weft_dump(f), ==, 0);
		fclose(f);
		snprintf(want, sizeof(want), "(held by main (#%" PRIu64 "))",
			 weft_task_id(weft_self()));
		T_EXPECT(strstr(buf, "\"locker\" suspended: waiting on mutex") &&
			 strstr(buf, want), "want %s: %s", want, buf);
		free(buf);
	}
	weft_mutex_unlock(&held_m);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(dump_names_a_mutex_owner_that_runs)
{
	T_RUN(owner_dump_main, NULL, NULL, NULL);
}
END_TEST

START_TEST(dump_without_runtime_says_so)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(weft_dump(f), 0);
	fclose(f);
	ck_assert_msg(strstr(buf, "no runtime") != NULL, "%s", buf);
	free(buf);
	ck_assert_int_eq(weft_dump(NULL), -EINVAL);
}
END_TEST

/*
 * The dump on a signal: the child says "ready" once its task is parked,
 * the test sends the signal, reads the dump, then lets the child finish by
 * writing to its stdin (the main task waits on it: I/O, not a deadlock).
 */
static void *
sig_main(void *unused)
{
	struct weft_chan *ch;
	struct weft_task *t;
	char b;

	(void)unused;
	weft_chan_make(&ch, sizeof(int), 0);
	t = spawn_named(recv_once, ch, "sigdumpee");
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "sigdumpee to park");
	fputs("ready\n", stderr);
	T_EXPECT_INT(weft_read(0, &b, 1, WEFT_DEADLINE_NONE), ==, 1);
	weft_chan_close(ch);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	weft_chan_release(ch);
	return NULL;
}

static int
sig_child(void)
{
	int r = weft_run(sig_main, NULL, &child_cfg, NULL);

	if (r || t_failed()) {
		fprintf(stderr, "child: weft_run %d, %s\n", r, t_fail_msg);
		return 1;
	}
	return 0;
}

START_TEST(dump_signal_prints_the_dump)
{
	static const char *const env[] = { "WEFT_DUMP_SIGNAL=SIGUSR1", NULL };
	static struct child c;

	child_start(&c, sig_child, env);
	ck_assert_msg(child_read(&c, "ready\n", 1, child_ms()),
		      "child not ready: %.2000s", c.out);
	ck_assert_int_eq(kill(c.pid, SIGUSR1), 0);
	ck_assert_msg(child_read(&c, "\"sigdumpee\" suspended: waiting on "
				 "chan recv", 1, child_ms()),
		      "no dump: %.2000s", c.out);
	ck_assert(strstr(c.out, "weft: dump: ") != NULL);
	ck_assert_int_eq(write(c.in, "q", 1), 1);
	child_read(&c, NULL, 0, child_ms());
	child_wait(&c, child_ms());
	assert_exit0(&c);
}
END_TEST

/*
 * Slow tasks
 */
static void *
hog(void *unused)
{
	(void)unused;
	t_burn(300 * WEFT_MSEC);
	return NULL;
}

/*
 * A hog that spends nearly all of its time in its own loop (t_burn spends
 * much of it in clock_gettime, whose libc frame has no frame pointer).
 */
static volatile unsigned long spin_sink;

static __attribute__((noinline)) void *
spin_hog(void *unused)
{
	int64_t end = weft_now() + 300 * WEFT_MSEC;

	(void)unused;
	while (weft_now() < end)
		for (int i = 0; i < 1000000; i++)
			spin_sink++;
	__asm__ volatile("" ::: "memory");
	return NULL;
}

static void *
spin_main(void *unused)
{
	(void)unused;
	T_EXPECT_INT(weft_join(spawn_named(spin_hog, NULL, "hog"), NULL,
			       WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

static int
spin_child(void)
{
	return weft_run(spin_main, NULL, &child_cfg, NULL) || t_failed();
}

static void *
slow_main(void *unused)
{
	(void)unused;
	T_EXPECT_INT(weft_join(spawn_named(hog, NULL, "hog"), NULL,
			       WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

static int
slow_child(void)
{
	struct weft_stats s;
	int r = weft_run(slow_main, NULL, &child_cfg, NULL);

	if (r || t_failed())
		return 1;
	weft_stats(&s);
	fprintf(stderr, "slow_tasks=%" PRIu64 "\n", s.slow_tasks);
	return 0;
}

START_TEST(slow_task_is_reported_once)
{
	static const char *const env[] = { "WEFT_SLOW_MS=50", NULL };
	static struct child c;
	char want[64];

	child_run_to_exit(&c, slow_child, env);
	/* Once, though it kept its worker for six thresholds. */
	ck_assert_msg(count_of(c.out, "\"hog\" has kept worker ") == 1,
		      "%.2000s", c.out);
	ck_assert_msg(strstr(c.out, "weft: slow task #"), "%.2000s", c.out);
	/* Counted: as many as were reported (main, on a slow machine). */
	snprintf(want, sizeof(want), "slow_tasks=%d\n",
		 count_of(c.out, "weft: slow task #") -
		 count_of(c.out, " gave worker "));
	ck_assert_msg(strstr(c.out, want), "%.2000s", c.out);
}
END_TEST

/*
 * The report says where the task was (sampled on its worker: the hog's
 * own frame), and once it gives the worker back, how long it ran in all
 * (300 ms of burn, to a monitor tick).
 */
START_TEST(slow_task_report_says_where_and_for_how_long)
{
	static const char *const env[] = { "WEFT_SLOW_MS=50", NULL };
	static struct child c;
	const char *s;
	long ms = -1;

	child_run_to_exit(&c, spin_child, env);
	s = strstr(c.out, "\"hog\" has kept worker ");
	ck_assert_msg(s && strstr(s, ", now at:\n    "), "%.2000s", c.out);
#if !defined(WEFT_TSAN)
	/*
	 * Under TSan the sample lands in its instrumentation (spin_sink++),
	 * which keeps no frame pointer, so the hog's own frame is skipped.
	 */
	ck_assert_msg(strstr(s, "\n    spin_hog+"), "%.2000s", c.out);
#endif
	ck_assert_int_eq(count_of(c.out, "\"hog\" gave worker "), 1);
	s = strstr(c.out, "\"hog\" gave worker ");
	ck_assert(sscanf(s, "\"hog\" gave worker %*d back after running %ld",
			 &ms) == 1);
	ck_assert_msg(ms >= 250 && ms < 5000, "ran %ld ms: %.2000s", ms,
		      c.out);
}
END_TEST

START_TEST(slow_task_report_off_with_zero)
{
	static const char *const env[] = { "WEFT_SLOW_MS=0", NULL };
	static struct child c;

	child_run_to_exit(&c, slow_child, env);
	ck_assert_msg(!strstr(c.out, "slow task"), "%.2000s", c.out);
	ck_assert(strstr(c.out, "slow_tasks=0\n") != NULL);
}
END_TEST

/*
 * weft_config's diagnostics fields: each wins over its environment
 * variable, which is only the fallback.
 */
START_TEST(slow_ms_field_wins_over_env)
{
	static const char *const env[] = { "WEFT_SLOW_MS=0", NULL };
	static struct child c;

	child_cfg.slow_ms = 50;
	child_run_to_exit(&c, slow_child, env);
	ck_assert_msg(count_of(c.out, "\"hog\" has kept worker ") == 1,
		      "%.2000s", c.out);
	ck_assert_msg(strstr(c.out, "(threshold 50 ms)"), "%.2000s", c.out);
}
END_TEST

START_TEST(slow_ms_minus_one_turns_the_report_off)
{
	static const char *const env[] = { "WEFT_SLOW_MS=50", NULL };
	static struct child c;

	child_cfg.slow_ms = -1;
	child_run_to_exit(&c, slow_child, env);
	ck_assert_msg(!strstr(c.out, "slow task"), "%.2000s", c.out);
	ck_assert(strstr(c.out, "slow_tasks=0\n") != NULL);
}
END_TEST

/*
 * The log hook: a message arrives whole, once, through the hook and not on
 * stderr.  The child's hook marks what it passes on.
 */
static void
mark_log(void *arg, const char *msg)
{
	char buf[8192];
	int n = snprintf(buf, sizeof(buf), "%s%s", (const char *)arg, msg);

	if (n > 0)
		(void)!write(2, buf, (size_t)n < sizeof(buf) ? (size_t)n :
			     sizeof(buf) - 1);
}

START_TEST(log_hook_receives_the_slow_and_deadlock_reports)
{
	static struct child c;

	child_cfg.slow_ms = 50;
	child_cfg.log = mark_log;
	child_cfg.log_arg = "HOOK:";
	child_run_to_exit(&c, slow_child, NULL);
	/* The hog's report and its end (main's too, on a slow machine). */
	ck_assert_msg(count_of(c.out, "HOOK:weft: slow task #") >= 2 &&
		      count_of(c.out, "HOOK:weft: slow task #") ==
		      count_of(c.out, "weft: slow task #"),
		      "%.2000s", c.out);

	memset(&c, 0, sizeof(c));
	child_cfg.log = mark_log;
	child_cfg.log_arg = "HOOK:";
	child_start(&c, sleep_forever_child, NULL);
	child_read(&c, NULL, 0, child_ms());
	child_wait(&c, child_ms());
	/* One message: the header and the task lines under one mark. */
	ck_assert_msg(count_of(c.out, "HOOK:" DEADLOCK_MSG "\n  task #1 "
			       "\"main\" suspended") == 1 &&
		      count_of(c.out, "HOOK:") == 1, "%.2000s", c.out);
	assert_aborted(&c);
}
END_TEST

/* Collects what a run refused said. */
static char refused_log[4096];

static void
collect_log(void *arg, const char *msg)
{
	(void)arg;
	strncat(refused_log, msg, sizeof(refused_log) -
		strlen(refused_log) - 1);
}

static void *
must_not_run(void *unused)
{
	(void)unused;
	abort();
}

/* weft_run(cfg) with `var` set (if non-NULL): -EINVAL, and `said` logged. */
static void
assert_refused(struct weft_config *cfg, const char *var, const char *said)
{
	refused_log[0] = '\0';
	cfg->log = collect_log;
	if (var)
		ck_assert_int_eq(putenv((char *)var), 0);
	ck_assert_int_eq(weft_run(must_not_run, NULL, cfg, NULL), -EINVAL);
	if (var) {
		char name[64];

		snprintf(name, sizeof(name), "%.*s",
			 (int)(strchr(var, '=') - var), var);
		unsetenv(name);
	}
	ck_assert_msg(strstr(refused_log, said) &&
		      strstr(refused_log, "refused (-EINVAL)"),
		      "want \"%s\", logged: %s", said, refused_log);
}

START_TEST(invalid_diagnostics_settings_are_refused_with_a_message)
{
	struct weft_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	assert_refused(&cfg, "WEFT_SLOW_MS=fast",
		       "weft: WEFT_SLOW_MS=fast: not a number");
	assert_refused(&cfg, "WEFT_DEADLOCK=sometimes",
		       "weft: WEFT_DEADLOCK=sometimes: not abort, report or");
	assert_refused(&cfg, "WEFT_DUMP_SIGNAL=SIGNOPE",
		       "weft: WEFT_DUMP_SIGNAL=SIGNOPE: not a catchable");
	cfg.slow_ms = -5;
	assert_refused(&cfg, NULL, "weft_config.slow_ms=-5");
	cfg.slow_ms = 0;
	cfg.deadlock = 9;
	assert_refused(&cfg, NULL, "weft_config.deadlock=9");
	cfg.deadlock = 0;
	cfg.dump_signal = SIGKILL;
	assert_refused(&cfg, NULL, "weft_config.dump_signal=9");
	cfg.dump_signal = 0;
	cfg.reserved_[1] = 7;
	assert_refused(&cfg, NULL, "weft_config.reserved_=7");
	cfg.reserved_[1] = 0;
	/* An argument for no hook is a mistake too (said on stderr). */
	cfg.log = NULL;
	cfg.log_arg = &cfg;
	ck_assert_int_eq(weft_run(must_not_run, NULL, &cfg, NULL), -EINVAL);
}
END_TEST

START_TEST(deadlock_report_field_wins_over_env)
{
	static const char *const env[] = { "WEFT_DEADLOCK=abort", NULL };
	static struct child c;

	child_cfg.deadlock = WEFT_DEADLOCK_REPORT;
	child_reports_once_and_waits(&c, env);
}
END_TEST

START_TEST(deadlock_off_field_turns_the_detector_off)
{
	static const char *const env[] = { "WEFT_DEADLOCK=abort", NULL };
	static struct child c;
	pid_t r;

	child_cfg.deadlock = WEFT_DEADLOCK_OFF;
	child_start(&c, join_cycle_child, env);
	/* Ten idle ticks of the monitor: a report would show by then. */
	child_read(&c, DEADLOCK_MSG, 1, 1000);
	ck_assert_msg(!strstr(c.out, DEADLOCK_MSG), "%.2000s", c.out);
	r = waitpid(c.pid, &c.status, WNOHANG);
	ck_assert_msg(r == 0, "the child ended: status %d; %.2000s", c.status,
		      c.out);
	ck_assert_int_eq(kill(c.pid, SIGKILL), 0);
	child_wait(&c, child_ms());
	ck_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL);
}
END_TEST

START_TEST(dump_signal_field_prints_the_dump)
{
	static struct child c;

	child_cfg.dump_signal = SIGUSR2;
	child_start(&c, sig_child, NULL);
	ck_assert_msg(child_read(&c, "ready\n", 1, child_ms()),
		      "child not ready: %.2000s", c.out);
	ck_assert_int_eq(kill(c.pid, SIGUSR2), 0);
	ck_assert_msg(child_read(&c, "\"sigdumpee\" suspended: waiting on "
				 "chan recv", 1, child_ms()),
		      "no dump: %.2000s", c.out);
	ck_assert_int_eq(write(c.in, "q", 1), 1);
	child_read(&c, NULL, 0, child_ms());
	child_wait(&c, child_ms());
	assert_exit0(&c);
}
END_TEST

static Suite *
diag_suite(void)
{
	Suite *s = suite_create("runtime/diag");
	TCase *tc;

	tc = t_tcase(s, "deadlock", T_TIMEOUT);
	tcase_add_test(tc, future_cycle_is_reported_and_aborts);
	tcase_add_test(tc, join_cycle_is_reported_and_aborts);
	tcase_add_test(tc, chan_deadlock_without_cycle_is_reported);
	tcase_add_test(tc, report_mode_reports_once_and_does_not_abort);
	tcase_add_test(tc, mutex_inversion_is_reported_with_its_cycle);
	tcase_add_test(tc, a_lone_task_sleeping_forever_is_a_deadlock);

	tc = t_tcase(s, "no_false_deadlock", T_TIMEOUT);
	tcase_add_test(tc, no_deadlock_while_a_timer_is_armed);
	tcase_add_test(tc, no_deadlock_while_io_is_in_flight);
	tcase_add_test(tc, no_deadlock_while_io_is_in_flight_epoll);
	tcase_add_test(tc, no_deadlock_while_a_pool_job_runs);
	tcase_add_test(tc, no_deadlock_while_a_foreign_thread_holds_a_channel);

	tc = t_tcase(s, "dump", T_TIMEOUT);
	tcase_add_test(tc, dump_lists_a_parked_task_and_what_it_waits_on);
	tcase_add_test(tc, dump_without_runtime_says_so);
	tcase_add_test(tc, dump_groups_identical_stacks_and_names_their_frames);
	tcase_add_test(tc, dump_shows_an_io_wait_with_fd_and_deadline);
	tcase_add_test(tc, dump_names_a_mutex_owner_that_runs);
	tcase_add_test(tc, dump_signal_prints_the_dump);

	tc = t_tcase(s, "slow", T_TIMEOUT);
	tcase_add_test(tc, slow_task_is_reported_once);
	tcase_add_test(tc, slow_task_report_off_with_zero);
	tcase_add_test(tc, slow_task_report_says_where_and_for_how_long);

	tc = t_tcase(s, "config", T_TIMEOUT);
	tcase_add_test(tc, slow_ms_field_wins_over_env);
	tcase_add_test(tc, slow_ms_minus_one_turns_the_report_off);
	tcase_add_test(tc, invalid_diagnostics_settings_are_refused_with_a_message);
	tcase_add_test(tc, log_hook_receives_the_slow_and_deadlock_reports);
	tcase_add_test(tc, deadlock_report_field_wins_over_env);
	tcase_add_test(tc, deadlock_off_field_turns_the_detector_off);
	tcase_add_test(tc, dump_signal_field_prints_the_dump);
	return s;
}

int
main(void)
{
	return t_main(diag_suite());
}

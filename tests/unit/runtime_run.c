/* SPDX-License-Identifier: MIT */
/*
 * weft_run(): its result, running twice in one process, refusing nested
 * and concurrent runs, configuration checks, waiting for every task, an
 * empty runtime afterwards, the backend a failed run reports, and the
 * statistics of a run.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void *
ret_arg(void *arg)
{
	return arg;
}

static void *
set_flag(void *arg)
{
	atomic_store((atomic_int *)arg, 1);
	return NULL;
}

/* Spawn `n` tasks returning their index; return the sum of their joins. */
static uint64_t
spawn_sum(int n, uint64_t *ids)
{
	struct weft_task **t = calloc((size_t)n, sizeof(*t));
	uint64_t sum = 0;
	void *res;
	int made;
	int i;

	T_EXPECT(t != NULL, "calloc failed");
	if (!t)
		return 0;
	for (made = 0; made < n; made++) {
		if (weft_spawn(&t[made], ret_arg, t_ptr(made), NULL) != 0)
			break;
		if (ids)
			ids[made] = weft_task_id(t[made]);
	}
	T_EXPECT_INT(made, ==, n);
	for (i = 0; i < made; i++) {
		res = NULL;
		T_EXPECT_INT(weft_join(t[i], &res, WEFT_DEADLINE_NONE), ==, 0);
		sum += (uint64_t)t_int(res);
	}
	free(t);
	return sum;
}

/*
 * lifecycle
 */

START_TEST(run_returns_main_result)
{
	void *res = NULL;

	T_RUN(ret_arg, t_ptr(0x12345), NULL, &res);
	ck_assert_ptr_eq(res, t_ptr(0x12345));
	/* A NULL result pointer is fine too. */
	T_RUN(ret_arg, t_ptr(1), NULL, NULL);
}
END_TEST

#define TWICE_FIRST  1000
#define TWICE_SECOND 10

struct twice {
	int n;
	uint64_t sum;
	uint64_t ids[TWICE_FIRST + 1];
};

static void *
twice_main(void *arg)
{
	struct twice *tw = arg;

	tw->ids[tw->n] = weft_task_id(weft_self());
	tw->sum = spawn_sum(tw->n, tw->ids);
	return t_ptr(tw->n);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
sum_worker_stats(int workers, uint64_t *spawns, uint64_t *run)
{
	struct weft_worker_stats ws;
	int i;

	*spawns = 0;
	*run = 0;
	for (i = 0; i < workers; i++) {
		ck_assert_int_eq(weft_worker_stats(i, &ws), 0);
		*spawns += ws.spawns;
		*run += ws.tasks_run;
	}
}

START_TEST(run_twice_in_one_process)
{
	struct weft_config one = t_config(1);
	struct weft_config two = t_config(2);
	struct twice *a = calloc(1, sizeof(*a));
	struct twice *b = calloc(1, sizeof(*b));
	struct weft_worker_stats ws;
	struct weft_stats s;
	uint64_t spawns;
	uint64_t run;
	void *res = NULL;
	size_t i;
	size_t j;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	a->n = TWICE_FIRST;
	b->n = TWICE_SECOND;

	T_RUN(twice_main, a, &one, &res);
	ck_assert_ptr_eq(res, t_ptr(TWICE_FIRST));
	ck_assert_uint_eq(a->sum,
			  (uint64_t)TWICE_FIRST * (TWICE_FIRST - 1) / 2);
	ck_assert_int_eq(weft_stats(&s), 0);
	ck_assert_int_eq(s.workers, 1);
	ck_assert_msg(s.tasks_spawned >= TWICE_FIRST,
		      "first run: tasks_spawned %" PRIu64, s.tasks_spawned);

	res = NULL;
	T_RUN(twice_main, b, &two, &res);
	ck_assert_ptr_eq(res, t_ptr(TWICE_SECOND));
	ck_assert_uint_eq(b->sum,
			  (uint64_t)TWICE_SECOND * (TWICE_SECOND - 1) / 2);

	/* The statistics describe the second run only. */
	ck_assert_int_eq(weft_stats(&s), 0);
	ck_assert_int_eq(s.workers, 2);
	ck_assert_msg(s.tasks_spawned == TWICE_SECOND ||
			      s.tasks_spawned == TWICE_SECOND + 1,
		      "second run: tasks_spawned %" PRIu64 ", want %d "
		      "(or %d counting the main task)",
		      s.tasks_spawned, TWICE_SECOND, TWICE_SECOND + 1);
	sum_worker_stats(2, &spawns, &run);
	ck_assert_msg(spawns == TWICE_SECOND,
		      "second run: workers counted %" PRIu64 " spawns", spawns);
	ck_assert_msg(run >= TWICE_SECOND + 1 && run < TWICE_FIRST,
		      "second run: workers ran %" PRIu64 " tasks", run);
	ck_assert_int_eq(weft_worker_stats(1, &ws), 0);
	ck_assert_int_eq(weft_worker_stats(2, &ws), -EINVAL);

	/* Task ids are unique in the process, across runs. */
	for (i = 0; i <= TWICE_FIRST; i++)
		for (j = 0; j <= TWICE_SECOND; j++)
			ck_assert_msg(a->ids[i] != b->ids[j],
				      "task id %" PRIu64 " used in both runs",
				      a->ids[i]);
	qsort(a->ids, TWICE_FIRST + 1, sizeof(a->ids[0]), cmp_u64);
	for (i = 1; i <= TWICE_FIRST; i++)
		ck_assert_msg(a->ids[i] != a->ids[i - 1],
			      "task id %" PRIu64 " given twice", a->ids[i]);
	free(a);
	free(b);
}
END_TEST

#define DETACHED 16

struct detached {
	atomic_int flag[DETACHED];
	atomic_int grandchild;
	atomic_int napper_started;
	atomic_int late_spawn;		/* the grandchild's weft_spawn() */
};

static atomic_int detached_started;

static void *
nap_then_flag(void *arg)
{
	int i;

	atomic_fetch_add(&detached_started, 1);
	for (i = 0; i < 3; i++)
		weft_sleep(2 * WEFT_MSEC);
	atomic_store((atomic_int *)arg, 1);
	return NULL;
}

static void *
nap_then_spawn(void *arg)
{
	struct detached *d = arg;

	atomic_store(&d->napper_started, 1);
	/* Ends only when main's return cancels it. */
	T_EXPECT_INT(weft_sleep(3600 * WEFT_SEC), ==, -ECANCELED);
	atomic_store(&d->late_spawn,
		     weft_spawn(NULL, nap_then_flag, &d->grandchild, NULL) + 1);
	return NULL;
}

static void *
detached_main(void *arg)
{
	struct detached *d = arg;
	struct weft_task *t;
	int i;

	for (i = 0; i < DETACHED; i++) {
		if (i % 2) {
			T_EXPECT_INT(weft_spawn(NULL, nap_then_flag,
						&d->flag[i], NULL),
				     ==, 0);
		} else if (weft_spawn(&t, nap_then_flag, &d->flag[i], NULL) ==
			   0) {
			T_EXPECT_INT(weft_detach(t), ==, 0);
		} else {
			T_EXPECT(0, "weft_spawn failed");
		}
	}
	T_EXPECT_INT(weft_spawn(NULL, nap_then_spawn, d, NULL), ==, 0);
	/*
	 * Return once all have started (a task still queued when main
	 * returns is cancelled and never runs): weft_run() cancels them and
	 * must wait for every one to finish.
	 */
	T_WAIT(atomic_load(&detached_started) == DETACHED &&
	       atomic_load(&d->napper_started), "the detached tasks to start");
	return NULL;
}

START_TEST(run_cancels_and_waits_for_detached_tasks)
{
	struct detached d;
	int i;

	memset(&d, 0, sizeof(d));
	atomic_store(&detached_started, 0);
	T_RUN(detached_main, &d, NULL, NULL);
	for (i = 0; i < DETACHED; i++)
		ck_assert_msg(atomic_load(&d.flag[i]) == 1,
			      "detached task %d had not finished", i);
	/* Spawned after main returned: accepted, but started cancelled. */
	ck_assert_int_eq(atomic_load(&d.late_spawn), 1);
	ck_assert_msg(atomic_load(&d.grandchild) == 0,
		      "a task spawned after main returned ran");
}
END_TEST

static void *
nested_run_main(void *arg)
{
	int *r = arg;

	*r = weft_run(ret_arg, NULL, NULL, NULL);
	return NULL;
}

START_TEST(run_from_inside_task_returns_ebusy)
{
	int r = 1;

	T_RUN(nested_run_main, &r, NULL, NULL);
	ck_assert_msg(r == -EBUSY, "nested weft_run() returned %d", r);
}
END_TEST

struct concurrent {
	atomic_int done;
	int r;
};

static void *
concurrent_thread(void *arg)
{
	struct concurrent *c = arg;

	c->r = weft_run(ret_arg, NULL, NULL, NULL);
	atomic_store(&c->done, 1);
	return NULL;
}

static void *
concurrent_main(void *arg)
{
	struct concurrent *c = arg;
	pthread_t th;
	int r;

	r = pthread_create(&th, NULL, concurrent_thread, c);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(atomic_load(&c->done), "the second weft_run() to return");
	pthread_join(th, NULL);
	return NULL;
}

START_TEST(run_from_other_thread_during_run_returns_ebusy)
{
	struct concurrent c;

	memset(&c, 0, sizeof(c));
	c.r = 1;
	T_RUN(concurrent_main, &c, NULL, NULL);
	ck_assert_msg(c.r == -EBUSY, "concurrent weft_run() returned %d", c.r);
}
END_TEST

/*
 * Everything a run can leave behind: joined, detached, cancelled before
 * start, cancelled while parked, finished but joined late, big stacks.
 */
struct mixed_run {
	bool one_worker; /* the cancels surely precede the start */
	atomic_int never;
	atomic_int parked;
};

static void *
park_hour(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return t_ptr(weft_sleep(3600 * WEFT_SEC));
}

static void *
mixed_run_main(void *arg)
{
	struct mixed_run *m = arg;
	struct weft_spawn_opts big;
	struct weft_task *t[8];
	int i;

	memset(&big, 0, sizeof(big));
	big.stack_size = 512 * T_KIB;
	/*
	 * Cancelled before start (with one worker and no park point yet;
	 * with more, another worker may start them first).
	 */
	if (weft_spawn(&t[0], set_flag, &m->never, NULL) == 0) {
		T_EXPECT_INT(weft_cancel(t[0]), ==, 0);
		i = weft_join(t[0], NULL, WEFT_DEADLINE_NONE);
		if (m->one_worker)
			T_EXPECT_INT(i, ==, -ECHILD);
		else
			T_EXPECT(i == -ECHILD || i == 0, "join: %d", i);
	}
	if (weft_spawn(&t[1], set_flag, &m->never, NULL) == 0) {
		T_EXPECT_INT(weft_cancel(t[1]), ==, 0);
		T_EXPECT_INT(weft_detach(t[1]), ==, 0);
	}
	/* Parked, then cancelled; one joined, one detached. */
	T_EXPECT_INT(weft_spawn(&t[2], park_hour, &m->parked, &big), ==, 0);
	T_EXPECT_INT(weft_spawn(&t[3], park_hour, &m->parked, NULL), ==, 0);
	T_WAIT(atomic_load(&m->parked) == 2, "the sleepers to park");
	T_EXPECT_INT(weft_cancel(t[2]), ==, 0);
	T_EXPECT_INT(weft_cancel(t[3]), ==, 0);
	T_EXPECT_INT(weft_detach(t[3]), ==, 0);
	T_EXPECT_INT(weft_join(t[2], NULL, WEFT_DEADLINE_NONE), ==, 0);
	/* Finished long before it is joined. */
	T_EXPECT_INT(weft_spawn(&t[4], ret_arg, NULL, &big), ==, 0);
	for (i = 0; i < 10; i++)
		weft_sleep(WEFT_USEC * 100);
	T_EXPECT_INT(weft_join(t[4], NULL, WEFT_DEADLINE_NONE), ==, 0);
	/* Spawned without a handle. */
	T_EXPECT_INT(weft_spawn(NULL, ret_arg, NULL, &big), ==, 0);
	return NULL;
}

START_TEST(runtime_is_empty_after_mixed_workload)
{
	struct weft_config one = t_config(1);
	struct mixed_run m;

	memset(&m, 0, sizeof(m));
	m.one_worker = true;
	/* T_RUN asserts tasks_live, stacks_in_use, stack bytes are 0. */
	T_RUN(mixed_run_main, &m, &one, NULL);
	ck_assert_int_eq(atomic_load(&m.never), 0);
	memset(&m, 0, sizeof(m));
	T_RUN(mixed_run_main, &m, NULL, NULL);
}
END_TEST

START_TEST(version_matches_header)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", WEFT_VERSION_MAJOR,
		 WEFT_VERSION_MINOR, WEFT_VERSION_PATCH);
	ck_assert_ptr_nonnull(weft_version());
	ck_assert_str_eq(weft_version(), want);
}
END_TEST

/*
 * config
 */

static void *
must_not_run(void *arg)
{
	atomic_store((atomic_int *)arg, 1);
	return NULL;
}

/* weft_run(cfg) must fail with -EINVAL without running anything. */
static void
check_rejected(const struct weft_config *cfg, const char *what)
{
	atomic_int ran = 0;
	struct weft_stats s;
	void *res = t_ptr(0x77);
	int r;

	r = weft_run(must_not_run, &ran, cfg, &res);
	ck_assert_msg(r == -EINVAL, "%s: weft_run returned %d, want -EINVAL",
		      what, r);
	ck_assert_msg(atomic_load(&ran) == 0, "%s: the main task ran", what);
	ck_assert_int_eq(weft_stats(&s), 0);
	ck_assert_msg(s.running == 0, "%s: runtime left running", what);
	ck_assert_int_eq(weft_workers(), -ESRCH);
}

START_TEST(negative_workers_returns_einval)
{
	struct weft_config cfg = t_config(-1);

	check_rejected(&cfg, "workers = -1");
	cfg.workers = INT_MIN;
	check_rejected(&cfg, "workers = INT_MIN");
}
END_TEST

START_TEST(nonzero_reserved_returns_einval)
{
	struct weft_config cfg;
	char what[32];
	size_t i;

	for (i = 0; i < sizeof(cfg.reserved_) / sizeof(cfg.reserved_[0]); i++) {
		cfg = t_config(1);
		cfg.reserved_[i] = 1;
		snprintf(what, sizeof(what), "reserved_[%zu] = 1", i);
		check_rejected(&cfg, what);
	}
}
END_TEST

/* Each configuration field out of its range, one at a time. */
START_TEST(config_field_out_of_range_returns_einval)
{
	static const struct {
		const char *what;
		long slow_ms, pool_threads;
		int deadlock, dump_signal;
	} bad[] = {
		{ "slow_ms = -2", -2, 0, 0, 0 },
		{ "slow_ms = LONG_MIN", LONG_MIN, 0, 0, 0 },
		{ "slow_ms = LONG_MAX", LONG_MAX, 0, 0, 0 },
		{ "deadlock = -1", 0, 0, -1, 0 },
		{ "deadlock = 4", 0, 0, 4, 0 },
		{ "dump_signal = -2", 0, 0, 0, -2 },
		{ "dump_signal = SIGKILL", 0, 0, 0, SIGKILL },
		{ "dump_signal = SIGSTOP", 0, 0, 0, SIGSTOP },
		{ "dump_signal = NSIG", 0, 0, 0, NSIG },
		{ "pool_threads = -1", 0, -1, 0, 0 },
		{ "pool_threads = 1025", 0, 1025, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct weft_config cfg = t_config(1);

		cfg.slow_ms = bad[i].slow_ms;
		cfg.pool_threads = bad[i].pool_threads;
		cfg.deadlock = bad[i].deadlock;
		cfg.dump_signal = bad[i].dump_signal;
		check_rejected(&cfg, bad[i].what);
	}
}
END_TEST

static void *
count_one(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return NULL;
}

/* The edges of each range are accepted and the run goes ahead. */
START_TEST(config_field_edges_are_accepted)
{
	struct weft_config cfg = t_config(1);
	atomic_int ran = 0;

	cfg.slow_ms = -1;
	cfg.deadlock = WEFT_DEADLOCK_OFF;
	cfg.dump_signal = -1;
	cfg.pool_threads = 1024;
	ck_assert_int_eq(weft_run(count_one, &ran, &cfg, NULL), 0);
	cfg.slow_ms = 1;
	cfg.deadlock = WEFT_DEADLOCK_ABORT;
	cfg.dump_signal = SIGUSR2;
	cfg.pool_threads = 1;
	ck_assert_int_eq(weft_run(count_one, &ran, &cfg, NULL), 0);
	ck_assert_int_eq(atomic_load(&ran), 2);
}
END_TEST

START_TEST(tiny_stack_size_returns_einval)
{
	struct weft_config cfg = t_config(1);

	cfg.stack_size = 1;
	check_rejected(&cfg, "stack_size = 1");
}
END_TEST

START_TEST(failed_run_leaves_runtime_usable)
{
	struct weft_config bad = t_config(-1);
	struct weft_config good = t_config(2);
	void *res = NULL;

	check_rejected(&bad, "workers = -1");
	T_RUN(ret_arg, t_ptr(5), &good, &res);
	ck_assert_ptr_eq(res, t_ptr(5));
}
END_TEST

/*
 * backend
 *
 * A run forced onto io_uring where the kernel refuses it fails, and must
 * not leave weft_io_backend() naming io_uring.  The refusal is made with a
 * seccomp filter (io_uring_setup fails with EPERM, as under Docker's
 * default profile) installed in a forked child, because a filter cannot
 * be removed again; the child writes what it saw down a pipe and the test
 * asserts on it here.
 */
#if defined(__x86_64__)
#define T_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define T_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* Make io_uring_setup(2) fail with EPERM from now on.  0 or -errno. */
static int
deny_io_uring_setup(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, T_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(f) / sizeof(f[0]),
		.filter = f,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	return 0;
}

/* What the child saw; names are "" for NULL. */
struct backend_report {
	int r_first;		/* the run before the filter (if any) */
	int r_filter;		/* deny_io_uring_setup() */
	int setup_errno;	/* io_uring_setup() under the filter */
	int r_forced;		/* the run forced onto io_uring */
	char after_forced[16];	/* weft_io_backend() after it */
	int r_default;		/* a run with the default backend */
	char after_default[16];
};

static void
backend_name(char *buf, size_t len)
{
	const char *b = weft_io_backend();

	snprintf(buf, len, "%s", b ? b : "");
}

/* The child's body: never returns. */
static void
backend_child(int fd, bool epoll_first)
{
	struct weft_config cfg = t_config(2);
	struct backend_report rep;
	long r;

	memset(&rep, 0, sizeof(rep));
	if (epoll_first) {
		cfg.io_backend = "epoll";
		rep.r_first = weft_run(ret_arg, NULL, &cfg, NULL);
	}
	rep.r_filter = deny_io_uring_setup();
	r = syscall(__NR_io_uring_setup, 2, NULL);
	rep.setup_errno = r < 0 ? errno : 0;
	cfg.io_backend = "uring";
	rep.r_forced = weft_run(ret_arg, NULL, &cfg, NULL);
	backend_name(rep.after_forced, sizeof(rep.after_forced));
	cfg.io_backend = NULL;
	rep.r_default = weft_run(ret_arg, NULL, &cfg, NULL);
	backend_name(rep.after_default, sizeof(rep.after_default));
	_exit(write(fd, &rep, sizeof(rep)) == (ssize_t)sizeof(rep) ? 0 : 1);
}

/* Fork a child that runs backend_child(); its report into *rep. */
static void
backend_fork(struct backend_report *rep, bool epoll_first)
{
	int status;
	int p[2];
	pid_t pid;
	ssize_t n;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		backend_child(p[1], epoll_first);
	}
	close(p[1]);
	n = read(p[0], rep, sizeof(*rep));
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child: status 0x%x", status);
	ck_assert_int_eq(n, (ssize_t)sizeof(*rep));
	ck_assert_msg(rep->r_filter == 0, "seccomp filter: %s",
		      strerror(-rep->r_filter));
	ck_assert_msg(rep->setup_errno == EPERM,
		      "io_uring_setup under the filter: errno %d",
		      rep->setup_errno);
	ck_assert_msg(rep->r_forced < 0,
		      "forced io_uring run without io_uring returned %d",
		      rep->r_forced);
	/* The fallback still works, and then counts as what ran. */
	ck_assert_int_eq(rep->r_default, 0);
	ck_assert_str_eq(rep->after_default, "epoll");
}

START_TEST(failed_uring_run_reports_no_backend)
{
	struct backend_report rep;

	backend_fork(&rep, false);
	ck_assert_msg(rep.after_forced[0] == '\0',
		      "weft_io_backend() after a failed first run: \"%s\"",
		      rep.after_forced);
}
END_TEST

START_TEST(failed_uring_run_reports_the_last_good_backend)
{
	struct backend_report rep;

	backend_fork(&rep, true);
	ck_assert_int_eq(rep.r_first, 0);
	ck_assert_str_eq(rep.after_forced, "epoll");
}
END_TEST

/*
 * stats
 */

struct live {
	int r;
	struct weft_stats s;
	int workers;
};

static void *
live_main(void *arg)
{
	struct live *l = arg;

	l->workers = weft_workers();
	l->r = weft_stats(&l->s);
	return NULL;
}

START_TEST(stats_are_live_during_run)
{
	struct weft_config cfg = t_config(3);
	struct live l;

	memset(&l, 0, sizeof(l));
	l.r = 1;
	T_RUN(live_main, &l, &cfg, NULL);
	ck_assert_int_eq(l.r, 0);
	ck_assert_int_eq(l.workers, 3);
	ck_assert_int_eq(l.s.running, 1);
	ck_assert_int_eq(l.s.workers, 3);
	ck_assert_msg(l.s.tasks_live >= 1,
		      "tasks_live %" PRIu64 " inside the main task",
		      l.s.tasks_live);
	ck_assert_msg(l.s.stacks_in_use >= 1,
		      "stacks_in_use %" PRIu64 " inside the main task",
		      l.s.stacks_in_use);
	ck_assert_msg(l.s.stack_bytes_mapped > 0,
		      "no stack bytes mapped inside the main task");
}
END_TEST

#define COUNTED 100

static void *
counted_main(void *arg)
{
	uint64_t *sum = arg;

	*sum = spawn_sum(COUNTED, NULL);
	return NULL;
}

START_TEST(stats_count_the_run)
{
	struct weft_config cfg = t_config(2);
	struct weft_stats s;
	uint64_t spawns;
	uint64_t run;
	uint64_t sum = 0;

	T_RUN(counted_main, &sum, &cfg, NULL);
	ck_assert_uint_eq(sum, (uint64_t)COUNTED * (COUNTED - 1) / 2);
	ck_assert_int_eq(weft_stats(&s), 0);
	ck_assert_int_eq(s.workers, 2);
	ck_assert_int_eq(s.running, 0);
	ck_assert_msg(s.tasks_spawned == COUNTED ||
			      s.tasks_spawned == COUNTED + 1,
		      "tasks_spawned %" PRIu64 ", want %d (or %d counting "
		      "the main task)",
		      s.tasks_spawned, COUNTED, COUNTED + 1);
	sum_worker_stats(2, &spawns, &run);
	ck_assert_msg(spawns == COUNTED,
		      "workers counted %" PRIu64 " spawns, want %d", spawns,
		      COUNTED);
	ck_assert_msg(run >= COUNTED + 1,
		      "workers ran %" PRIu64 " tasks, want >= %d", run,
		      COUNTED + 1);
}
END_TEST

START_TEST(stats_bad_arguments_return_einval)
{
	struct weft_config cfg = t_config(2);
	struct weft_worker_stats ws;

	ck_assert_int_eq(weft_stats(NULL), -EINVAL);
	T_RUN(ret_arg, NULL, &cfg, NULL);
	ck_assert_int_eq(weft_worker_stats(-1, &ws), -EINVAL);
	ck_assert_int_eq(weft_worker_stats(2, &ws), -EINVAL);
	ck_assert_int_eq(weft_worker_stats(INT_MAX, &ws), -EINVAL);
	ck_assert_int_eq(weft_worker_stats(1, &ws), 0);
}
END_TEST

static Suite *
runtime_run_suite(void)
{
	Suite *s = suite_create("runtime/run");
	TCase *tc;

	tc = t_tcase(s, "lifecycle", T_TIMEOUT);
	tcase_add_test(tc, run_returns_main_result);
	tcase_add_test(tc, run_twice_in_one_process);
	tcase_add_test(tc, run_cancels_and_waits_for_detached_tasks);
	tcase_add_test(tc, run_from_inside_task_returns_ebusy);
	tcase_add_test(tc, run_from_other_thread_during_run_returns_ebusy);
	tcase_add_test(tc, runtime_is_empty_after_mixed_workload);
	tcase_add_test(tc, version_matches_header);

	tc = t_tcase(s, "config", T_TIMEOUT);
	tcase_add_test(tc, negative_workers_returns_einval);
	tcase_add_test(tc, nonzero_reserved_returns_einval);
	tcase_add_test(tc, config_field_out_of_range_returns_einval);
	tcase_add_test(tc, config_field_edges_are_accepted);
	tcase_add_test(tc, tiny_stack_size_returns_einval);
	tcase_add_test(tc, failed_run_leaves_runtime_usable);

	tc = t_tcase(s, "backend", T_TIMEOUT);
	tcase_add_test(tc, failed_uring_run_reports_no_backend);
	tcase_add_test(tc, failed_uring_run_reports_the_last_good_backend);

	tc = t_tcase(s, "stats", T_TIMEOUT);
	tcase_add_test(tc, stats_are_live_during_run);
	tcase_add_test(tc, stats_count_the_run);
	tcase_add_test(tc, stats_bad_arguments_return_einval);

	return s;
}

int
main(void)
{
	return t_main(runtime_run_suite());
}

/* SPDX-License-Identifier: MIT */
/*
 * Blocking pools: user pools (make, map, free), weft_blocking on the
 * default pool from tasks and plain threads, deadlines, cancellation, idle
 * threads exiting, malformed arguments.
 *
 * Jobs that must stay running block on a gate (a pthread mutex and cond)
 * the test opens; nothing waits on a sleep.  main() sets
 * WEFT_POOL_THREADS=2 before any test, so the default pool has exactly two
 * threads to fill.
 */
#include <dirent.h>
#include <pthread.h>

#include "harness.h"

#define DEFAULT_THREADS 2

/* A gate jobs wait on until the test opens it. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;		/* under lock */
	atomic_int started;	/* jobs that reached the gate */
	atomic_int finished;	/* jobs that passed it and returned */
};

static void
gate_init(struct gate *g)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->open = false;
	atomic_store(&g->started, 0);
	atomic_store(&g->finished, 0);
}

static void
gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void
gate_destroy(struct gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

/* Pool job: wait at the gate, return 42. */
static void *
gate_job(void *arg)
{
	struct gate *g = arg;

	atomic_fetch_add(&g->started, 1);
	pthread_mutex_lock(&g->lock);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	atomic_fetch_add(&g->finished, 1);
	return t_ptr(42);
}

/* Pool job that must never run. */
static atomic_int never_ran;

static void *
never_job(void *arg)
{
	(void)arg;
	atomic_fetch_add(&never_ran, 1);
	return NULL;
}

static void *
double_job(void *arg)
{
	return t_ptr(t_int(arg) * 2);
}

/* Threads of this process named "weft-pool*" (/proc/self/task/N/comm). */
static int
count_pool_threads(void)
{
	char path[300], comm[32];
	struct dirent *d;
	DIR *dir = opendir("/proc/self/task");
	int n = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;	/* exited meanwhile */
		if (fgets(comm, sizeof(comm), f) &&
		    strncmp(comm, "weft-pool-", 10) == 0)
			n++;
		fclose(f);
	}
	closedir(dir);
	return n;
}

/* Spawn fn(arg) with a handle. */
static struct weft_task *
spawn1(weft_fn fn, void *arg)
{
	struct weft_task *t = NULL;

	T_EXPECT_INT(weft_spawn(&t, fn, arg, NULL), ==, 0);
	return t;
}

static int
join_int(struct weft_task *t)
{
	void *res = NULL;

	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	return (int)t_int(res);
}

/*
 * --- map: many jobs, bounded concurrency, order ---
 */

#define MANY 1000

static atomic_int conc_now;
static atomic_int conc_peak;

/*
 * Records how many jobs run at once.  Until a second job has been seen
 * running beside another, each job waits (bounded) for that: a pool that
 * ran one job at a time fails here instead of passing by luck.
 */
static void *
conc_job(void *arg)
{
	int now = atomic_fetch_add(&conc_now, 1) + 1;
	int peak = atomic_load(&conc_peak);
	int64_t end = weft_now() + t_stall_ns();

	while (now > peak &&
	       !atomic_compare_exchange_weak(&conc_peak, &peak, now))
		;
	while (atomic_load(&conc_peak) < 2) {
		if (weft_now() > end) {
			T_EXPECT(false, "never two jobs at once");
			break;
		}
		t_cpu_relax();
	}
	atomic_fetch_sub(&conc_now, 1);
	return t_ptr(t_int(arg) * 3 + 1);
}

static void *
many_main(void *arg)
{
	void **args = calloc(MANY, sizeof(*args));
	void **res = calloc(MANY, sizeof(*res));
	struct weft_pool *p = NULL;
	int i;

	(void)arg;
	T_EXPECT(args && res, "calloc");
	if (!args || !res)
		goto out;
	for (i = 0; i < MANY; i++)
		args[i] = t_ptr(i);
	T_EXPECT_INT(weft_pool_make(&p, 4, NULL), ==, 0);
	T_EXPECT_INT(weft_pool_map(p, conc_job, args, res, MANY,
				   WEFT_DEADLINE_NONE), ==, 0);
	for (i = 0; i < MANY; i++)
		T_EXPECT_INT(t_int(res[i]), ==, i * 3 + 1);
	T_EXPECT_INT(atomic_load(&conc_peak), <=, 4);
	T_EXPECT_INT(atomic_load(&conc_peak), >, 1);
	T_EXPECT_INT(weft_pool_free(p), ==, 0);
out:
	free(args);
	free(res);
	return NULL;
}

START_TEST(map_1000_jobs_at_most_4_at_once)
{
	struct weft_config cfg = t_config(2);

	T_RUN(many_main, NULL, &cfg, NULL);
}
END_TEST

/* A queue of 4 slots: map waits for room instead of failing. */
static void *
order_main(void *arg)
{
	struct weft_pool_opts o = { .queue_max = 4 };
	struct weft_pool *p = NULL;
	void *args[100], *res[100];
	int i;

	(void)arg;
	for (i = 0; i < 100; i++) {
		args[i] = t_ptr(i);
		res[i] = t_ptr(-1);
	}
	T_EXPECT_INT(weft_pool_make(&p, 3, &o), ==, 0);
	T_EXPECT_INT(weft_pool_map(p, double_job, args, res, 100,
				   WEFT_DEADLINE_NONE), ==, 0);
	for (i = 0; i < 100; i++)
		T_EXPECT_INT(t_int(res[i]), ==, 2 * i);
	/* n == 0 is a no-op. */
	T_EXPECT_INT(weft_pool_map(p, double_job, NULL, NULL, 0,
				   WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_pool_free(p), ==, 0);
	return NULL;
}

START_TEST(map_results_in_order_through_a_small_queue)
{
	struct weft_config cfg = t_config(2);

	T_RUN(order_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * --- map: deadline and cancellation leave args/results alone ---
 */

/* The deadlock detector's view (io/io.h; hidden in the shared library). */
int weft__pool_busy(void);
int weft__pool_threads(void);

struct map_stop {
	struct gate gate;
	struct weft_pool *p;
	void *args[8];
	void *res[8];
	int64_t deadline;
	atomic_int calls;	/* stop_job calls */
	atomic_int returned;	/* map has returned */
	atomic_int late_touch;	/* a job ran after map returned */
};

/* First job blocks on the gate; the others must never start. */
static void *
stop_job(void *arg)
{
	struct map_stop *m = arg;

	if (atomic_load(&m->returned))
		atomic_fetch_add(&m->late_touch, 1);
	if (atomic_fetch_add(&m->calls, 1) == 0)
		return gate_job(&m->gate);
	return t_ptr(7);
}

static void *
stop_mapper(void *arg)
{
	struct map_stop *m = arg;
	int r = weft_pool_map(m->p, stop_job, m->args, m->res, 8,
			      m->deadline);

	atomic_store(&m->returned, 1);
	return t_ptr(r);
}

/*
 * One map of 8 jobs on a 1-thread pool, stopped by a deadline or by
 * weft_cancel() while its first job runs.  Returns false (and the test
 * retries with a later deadline) if the deadline passed before the first
 * job could start, which a loaded machine may cause.
 */
static bool
map_stop_once(bool cancel, int64_t after)
{
	struct map_stop m;
	struct weft_task *t;
	bool started;
	int base = weft__pool_busy();
	int i, r;

	memset(&m, 0, sizeof(m));
	gate_init(&m.gate);
	for (i = 0; i < 8; i++) {
		m.args[i] = &m;
		m.res[i] = t_ptr(-1);
	}
	T_EXPECT_INT(weft_pool_make(&m.p, 1, NULL), ==, 0);
	m.deadline = cancel ? WEFT_DEADLINE_NONE : weft_now() + after;
	t = spawn1(stop_mapper, &m);
	T_WAIT(atomic_load(&m.gate.started) >= 1 ||
	       atomic_load(&m.returned), "the first job to start");
	started = atomic_load(&m.gate.started) >= 1;
	if (cancel)
		T_EXPECT_INT(weft_cancel(t), ==, 0);
	else
		T_WAIT(weft_now() > m.deadline, "the deadline");
	if (started) {
		/*
		 * map removes the queued jobs at once but must wait for the
		 * running one: it has not returned while the gate is shut.
		 * Its task parks before the deadline too, so wait for what
		 * the stop does (only the running job left on the pool), not
		 * for the park: the timer or cancel may not have run it yet.
		 */
		T_WAIT(weft__pool_busy() == base + 1,
		       "map to remove its queued jobs");
		T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "map to park");
		T_EXPECT_INT(atomic_load(&m.returned), ==, 0);
	}
	gate_open(&m.gate);
	r = join_int(t);
	T_EXPECT_INT(r, ==, cancel ? -ECANCELED : -ETIMEDOUT);
	/* The running job's result is in; nothing else ran or was written. */
	T_EXPECT_INT(t_int(m.res[0]), ==, started ? 42 : -1);
	for (i = 1; i < 8; i++)
		T_EXPECT_INT(t_int(m.res[i]), ==, -1);
	T_EXPECT_INT(atomic_load(&m.calls), ==, started ? 1 : 0);
	T_EXPECT_INT(atomic_load(&m.late_touch), ==, 0);
	T_EXPECT_INT(weft_pool_free(m.p), ==, 0);
	T_EXPECT_INT(atomic_load(&m.calls), ==, started ? 1 : 0);
	gate_destroy(&m.gate);
	return started;
}

static void *
map_stop_main(void *arg)
{
	bool cancel = arg != NULL;
	int64_t after = 20 * WEFT_MSEC;
	int tries = 0;

	while (!map_stop_once(cancel, after) && !t_failed() && ++tries < 6)
		after *= 4;
	T_EXPECT(tries < 6, "the first job never started in time");
	return NULL;
}

START_TEST(map_deadline_waits_for_running_removes_queued)
{
	struct weft_config cfg = t_config(2);

	T_RUN(map_stop_main, NULL, &cfg, NULL);
}
END_TEST

START_TEST(map_cancel_waits_for_running_removes_queued)
{
	struct weft_config cfg = t_config(2);

	T_RUN(map_stop_main, t_ptr(1), &cfg, NULL);
}
END_TEST

/*
 * --- weft_blocking on the default pool ---
 */

static void *
blocking_value_main(void *arg)
{
	void *res = NULL;

	(void)arg;
	T_EXPECT_INT(weft_blocking(double_job, t_ptr(21), &res,
				   WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 42);
	/* result may be NULL. */
	T_EXPECT_INT(weft_blocking(double_job, t_ptr(1), NULL,
				   WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(blocking_from_task_returns_value)
{
	struct weft_config cfg = t_config(2);

	T_RUN(blocking_value_main, NULL, &cfg, NULL);
}
END_TEST

/* A task that holds one default-pool thread at the gate. */
static void *
blocker_task(void *arg)
{
	void *res = NULL;
	int r = weft_blocking(gate_job, arg, &res, WEFT_DEADLINE_NONE);

	T_EXPECT_INT(r, ==, 0);
	T_EXPECT_INT(t_int(res), ==, 42);
	return NULL;
}

/* Fill every default-pool thread with a gate job; returns the blockers. */
static void
fill_default_pool(struct gate *g, struct weft_task **ts)
{
	for (int i = 0; i < DEFAULT_THREADS; i++)
		ts[i] = spawn1(blocker_task, g);
	T_WAIT(atomic_load(&g->started) == DEFAULT_THREADS,
	       "the pool's threads to block");
}

static void
drain_default_pool(struct gate *g, struct weft_task **ts)
{
	gate_open(g);
	for (int i = 0; i < DEFAULT_THREADS; i++)
		join_int(ts[i]);
}

static void *
never_task(void *arg)
{
	return t_ptr(weft_blocking(never_job, NULL, NULL,
				   WEFT_DEADLINE_NONE));
}

static void *
blocking_queued_main(void *arg)
{
	struct weft_task *ts[DEFAULT_THREADS], *t;
	struct gate g;

	(void)arg;
	atomic_store(&never_ran, 0);
	gate_init(&g);
	fill_default_pool(&g, ts);
	/* Not started by the deadline: removed, never runs. */
	T_EXPECT_INT(weft_blocking(never_job, NULL, NULL,
				   weft_now() + 10 * WEFT_MSEC), ==,
		     -ETIMEDOUT);
	/* Cancelled while queued: removed too. */
	t = spawn1(never_task, NULL);
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the task to park");
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(join_int(t), ==, -ECANCELED);
	drain_default_pool(&g, ts);
	/* Were they still queued, they would run now, first in line. */
	T_EXPECT_INT(weft_blocking(double_job, t_ptr(2), NULL,
				   WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(atomic_load(&never_ran), ==, 0);
	gate_destroy(&g);
	return NULL;
}

START_TEST(blocking_queued_job_removed_by_deadline_and_cancel)
{
	struct weft_config cfg = t_config(2);

	T_RUN(blocking_queued_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * weft_config.pool_threads wins over WEFT_POOL_THREADS (2 in this suite):
 * with 1, a second job waits in the queue while the first holds the only
 * thread; with 3, three jobs run at once.
 */
static void *
pool_limit_main(void *arg)
{
	int limit = t_int(arg);
	struct weft_task *ts[3];
	struct gate g;

	atomic_store(&never_ran, 0);
	gate_init(&g);
	for (int i = 0; i < limit; i++)
		ts[i] = spawn1(blocker_task, &g);
	T_WAIT(atomic_load(&g.started) == limit, "the pool's threads to block");
	if (limit == 1)
		T_EXPECT_INT(weft_blocking(never_job, NULL, NULL,
					   weft_now() + 10 * WEFT_MSEC), ==,
			     -ETIMEDOUT);
	gate_open(&g);
	for (int i = 0; i < limit; i++)
		join_int(ts[i]);
	T_EXPECT_INT(atomic_load(&never_ran), ==, 0);
	gate_destroy(&g);
	return NULL;
}

START_TEST(pool_threads_field_lowers_the_default_pool_limit)
{
	struct weft_config cfg = t_config(2);

	cfg.pool_threads = 1;
	T_RUN(pool_limit_main, t_ptr(1), &cfg, NULL);
}
END_TEST

START_TEST(pool_threads_field_raises_the_default_pool_limit)
{
	struct weft_config cfg = t_config(2);

	cfg.pool_threads = 3;
	T_RUN(pool_limit_main, t_ptr(3), &cfg, NULL);
}
END_TEST

static void *
abandon_task(void *arg)
{
	void *res = t_ptr(-1);
	int r = weft_blocking(gate_job, arg, &res, WEFT_DEADLINE_NONE);

	T_EXPECT_INT(t_int(res), ==, -1);	/* untouched */
	return t_ptr(r);
}

static void *
blocking_running_main(void *arg)
{
	struct gate g;
	struct weft_task *t;
	void *res = t_ptr(-1);

	(void)arg;
	gate_init(&g);
	/*
	 * Deadline while running: returns at once, the job runs on.  If the
	 * deadline passed before a thread took the job (a loaded machine),
	 * it was removed instead: try again with a later one.
	 */
	for (int64_t after = 10 * WEFT_MSEC;
	     atomic_load(&g.started) == 0 && after < 100 * WEFT_SEC;
	     after *= 4)
		T_EXPECT_INT(weft_blocking(gate_job, &g, &res,
					   weft_now() + after), ==,
			     -ETIMEDOUT);
	T_EXPECT_INT(t_int(res), ==, -1);
	T_EXPECT_INT(atomic_load(&g.started), ==, 1);
	T_EXPECT_INT(atomic_load(&g.finished), ==, 0);
	/* Cancelled while running: the same. */
	t = spawn1(abandon_task, &g);
	T_WAIT(atomic_load(&g.started) == 2, "the second job to start");
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(join_int(t), ==, -ECANCELED);
	T_EXPECT_INT(atomic_load(&g.finished), ==, 0);
	/* The abandoned jobs finish (and are freed by the pool). */
	gate_open(&g);
	T_WAIT(atomic_load(&g.finished) == 2, "the abandoned jobs to end");
	/* The pool thread touches the job after fn: wait for the pool. */
	T_EXPECT_INT(weft_blocking(double_job, t_ptr(1), NULL,
				   WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_blocking(double_job, t_ptr(1), NULL,
				   WEFT_DEADLINE_NONE), ==, 0);
	gate_destroy(&g);
	return NULL;
}

START_TEST(blocking_running_job_abandoned_by_deadline_and_cancel)
{
	struct weft_config cfg = t_config(2);

	T_RUN(blocking_running_main, NULL, &cfg, NULL);
}
END_TEST

static void *
thread_call(void *arg)
{
	void *res = NULL;

	(void)arg;
	T_EXPECT_INT(weft_blocking(double_job, t_ptr(5), &res,
				   WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 10);
	return NULL;
}

static void *
thread_timeout(void *arg)
{
	(void)arg;
	T_EXPECT_INT(weft_blocking(never_job, NULL, NULL,
				   weft_now() + 10 * WEFT_MSEC), ==,
		     -ETIMEDOUT);
	return NULL;
}

static void *
blocking_thread_main2(void *arg)
{
	struct weft_task *ts[DEFAULT_THREADS];
	struct gate g;
	pthread_t th;

	(void)arg;
	atomic_store(&never_ran, 0);
	gate_init(&g);
	T_EXPECT_INT(pthread_create(&th, NULL, thread_call, NULL), ==, 0);
	T_EXPECT_INT(pthread_join(th, NULL), ==, 0);
	fill_default_pool(&g, ts);
	T_EXPECT_INT(pthread_create(&th, NULL, thread_timeout, NULL), ==, 0);
	T_EXPECT_INT(pthread_join(th, NULL), ==, 0);
	drain_default_pool(&g, ts);
	T_EXPECT_INT(weft_blocking(double_job, t_ptr(2), NULL,
				   WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(atomic_load(&never_ran), ==, 0);
	gate_destroy(&g);
	return NULL;
}

START_TEST(blocking_from_plain_thread)
{
	struct weft_config cfg = t_config(2);

	T_RUN(blocking_thread_main2, NULL, &cfg, NULL);
}
END_TEST

START_TEST(blocking_without_runtime_returns_esrch)
{
	struct weft_future *f = NULL;

	ck_assert_int_eq(weft_blocking(double_job, NULL, NULL,
				       WEFT_DEADLINE_NONE), -ESRCH);
	ck_assert_int_eq(weft_blocking_submit(&f, double_job, NULL), -ESRCH);
}
END_TEST

/*
 * --- threads: on demand, exit when idle, named ---
 */

static void *
idle_main(void *arg)
{
	struct weft_pool_opts o = { .idle_ns = 20 * WEFT_MSEC };
	int base = count_pool_threads();
	struct weft_pool *p = NULL;
	void *args[64], *res[64];
	int i;

	(void)arg;
	T_EXPECT(base >= 0, "cannot read /proc/self/task");
	for (i = 0; i < 64; i++)
		args[i] = t_ptr(i);
	T_EXPECT_INT(weft_pool_make(&p, 3, &o), ==, 0);
	/* No job, no thread. */
	T_EXPECT_INT(count_pool_threads(), <=, base);
	T_EXPECT_INT(weft_pool_map(p, conc_job, args, res, 64,
				   WEFT_DEADLINE_NONE), ==, 0);
	/* Two ran at once (conc_job insists), so two threads were made. */
	T_EXPECT_INT(atomic_load(&conc_peak), >=, 2);
	/* Idle threads leave: bounded poll, not a sleep. */
	T_WAIT(count_pool_threads() <= base, "idle pool threads to exit");
	/* And come back on demand. */
	T_EXPECT_INT(weft_pool_map(p, double_job, args, res, 64,
				   WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res[63]), ==, 126);
	T_WAIT(count_pool_threads() <= base, "idle pool threads to exit");
	T_EXPECT_INT(weft_pool_free(p), ==, 0);
	return NULL;
}

START_TEST(idle_threads_exit)
{
	struct weft_config cfg = t_config(2);

	T_RUN(idle_main, NULL, &cfg, NULL);
}
END_TEST

/* Pool threads carry the names the deadlock detector looks for. */
static void *
name_job(void *arg)
{
	char name[16] = "";

	(void)arg;
	pthread_getname_np(pthread_self(), name, sizeof(name));
	return t_ptr(strncmp(name, "weft-pool-", 10) == 0);
}

static void *
name_main(void *arg)
{
	void *res = NULL;

	(void)arg;
	T_EXPECT_INT(weft_blocking(name_job, NULL, &res,
				   WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 1);
	return NULL;
}

START_TEST(pool_threads_are_named_weft_pool)
{
	struct weft_config cfg = t_config(1);

	T_RUN(name_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * --- free ---
 */

struct free_ctx {
	struct gate gate;
	struct weft_pool *p;
	void *args[6];
	void *res[6];
};

static void *
free_job(void *arg)
{
	struct free_ctx *c = arg;

	if (atomic_load(&c->gate.started) == 0)
		return gate_job(&c->gate);
	atomic_fetch_add(&never_ran, 1);
	return NULL;
}

static void *
free_mapper(void *arg)
{
	struct free_ctx *c = arg;

	return t_ptr(weft_pool_map(c->p, free_job, c->args, c->res, 6,
				   WEFT_DEADLINE_NONE));
}

static void *
free_task(void *arg)
{
	struct free_ctx *c = arg;

	return t_ptr(weft_pool_free(c->p));
}

static void *
free_main(void *arg)
{
	struct weft_task *m, *f;
	struct free_ctx c;

	(void)arg;
	atomic_store(&never_ran, 0);
	memset(&c, 0, sizeof(c));
	gate_init(&c.gate);
	for (int i = 0; i < 6; i++)
		c.args[i] = &c;
	T_EXPECT_INT(weft_pool_make(&c.p, 1, NULL), ==, 0);
	m = spawn1(free_mapper, &c);
	T_WAIT(atomic_load(&c.gate.started) == 1, "the first job to start");
	f = spawn1(free_task, &c);
	/* free cancels the queued jobs but waits for the running one. */
	T_WAIT(weft_task_state(f) == WEFT_SUSPENDED, "free to park");
	/*
	 * free woke the map (its batch was cancelled); the map removes
	 * nothing more and parks again for the running job.  Wait for that
	 * second park: it may not have run yet.
	 */
	T_WAIT(weft_task_state(m) == WEFT_SUSPENDED, "the map to park again");
	T_EXPECT_INT(weft_task_state(f), ==, WEFT_SUSPENDED);
	gate_open(&c.gate);
	T_EXPECT_INT(join_int(f), ==, 0);
	T_EXPECT_INT(join_int(m), ==, -EPIPE);
	T_EXPECT_INT(atomic_load(&c.gate.finished), ==, 1);
	T_EXPECT_INT(atomic_load(&never_ran), ==, 0);
	T_EXPECT_INT(t_int(c.res[0]), ==, 42);
	gate_destroy(&c.gate);
	return NULL;
}

START_TEST(free_cancels_queued_waits_for_running)
{
	struct weft_config cfg = t_config(2);

	T_RUN(free_main, NULL, &cfg, NULL);
}
END_TEST

/* A job that frees its own pool would wait for itself. */
static void *
self_free_job(void *arg)
{
	return t_ptr(weft_pool_free(arg));
}

START_TEST(free_from_own_job_returns_edeadlk)
{
	struct weft_pool *p = NULL;
	void *args[1], *res[1] = { NULL };

	ck_assert_int_eq(weft_pool_make(&p, 1, NULL), 0);
	args[0] = p;
	ck_assert_int_eq(weft_pool_map(p, self_free_job, args, res, 1,
				       WEFT_DEADLINE_NONE), 0);
	ck_assert_int_eq(t_int(res[0]), -EDEADLK);
	ck_assert_int_eq(weft_pool_free(p), 0);
}
END_TEST

/* From a plain thread, outside any runtime: make, map, free. */
START_TEST(pool_on_plain_thread)
{
	struct weft_pool *p = NULL;
	void *args[16], *res[16];
	int i;

	for (i = 0; i < 16; i++)
		args[i] = t_ptr(i);
	ck_assert_int_eq(weft_pool_make(&p, 2, NULL), 0);
	ck_assert_int_eq(weft_pool_map(p, double_job, args, res, 16,
				       WEFT_DEADLINE_NONE), 0);
	for (i = 0; i < 16; i++)
		ck_assert_int_eq(t_int(res[i]), 2 * i);
	ck_assert_int_eq(weft_pool_free(p), 0);
}
END_TEST

/*
 * --- submit: futures ---
 */

static void *
submit_many_main(void *arg)
{
	struct weft_future **fs = calloc(MANY, sizeof(*fs));
	struct weft_pool *p = NULL;
	void *v;
	int i;

	(void)arg;
	atomic_store(&conc_peak, 0);
	T_EXPECT(fs != NULL, "calloc");
	if (!fs)
		return NULL;
	T_EXPECT_INT(weft_pool_make(&p, 4, NULL), ==, 0);
	for (i = 0; i < MANY; i++)
		T_EXPECT_INT(weft_pool_submit(p, &fs[i], conc_job, t_ptr(i)),
			     ==, 0);
	T_EXPECT_INT(weft_wait_all(fs, MANY, WEFT_DEADLINE_NONE), ==, 0);
	for (i = 0; i < MANY; i++) {
		v = NULL;
		T_EXPECT_INT(weft_future_state(fs[i]), ==, WEFT_FUTURE_DONE);
		T_EXPECT_INT(weft_future_result(fs[i], &v), ==, 0);
		T_EXPECT_INT(t_int(v), ==, i * 3 + 1);
		weft_future_release(fs[i]);
	}
	T_EXPECT_INT(atomic_load(&conc_peak), <=, 4);
	T_EXPECT_INT(atomic_load(&conc_peak), >, 1);
	T_EXPECT_INT(weft_pool_free(p), ==, 0);
	free(fs);
	return NULL;
}

START_TEST(submit_1000_jobs_at_most_4_at_once)
{
	struct weft_config cfg = t_config(2);

	T_RUN(submit_many_main, NULL, &cfg, NULL);
}
END_TEST

/* One thread held at a gate, a queue of 2: the third queued job fails. */
static void *
full_main(void *arg)
{
	struct weft_pool_opts o = { .queue_max = 2 };
	struct weft_future *fs[3], *extra = NULL;
	struct weft_pool *p = NULL;
	struct gate g;
	void *v;

	(void)arg;
	gate_init(&g);
	T_EXPECT_INT(weft_pool_make(&p, 1, &o), ==, 0);
	T_EXPECT_INT(weft_pool_submit(p, &fs[0], gate_job, &g), ==, 0);
	T_WAIT(atomic_load(&g.started) == 1, "the gate job to start");
	T_EXPECT_INT(weft_pool_submit(p, &fs[1], double_job, t_ptr(1)), ==, 0);
	T_EXPECT_INT(weft_pool_submit(p, &fs[2], double_job, t_ptr(2)), ==, 0);
	T_EXPECT_INT(weft_pool_submit(p, &extra, double_job, t_ptr(3)), ==,
		     -EAGAIN);
	T_EXPECT(extra == NULL, "a failed submit set *out");
	gate_open(&g);
	T_EXPECT_INT(weft_wait_all(fs, 3, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_future_result(fs[0], &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 42);
	T_EXPECT_INT(weft_future_result(fs[2], &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 4);
	/* Room again. */
	T_EXPECT_INT(weft_pool_submit(p, &extra, double_job, t_ptr(3)), ==, 0);
	T_EXPECT_INT(weft_future_wait(extra, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 6);
	for (int i = 0; i < 3; i++)
		weft_future_release(fs[i]);
	weft_future_release(extra);
	T_EXPECT_INT(weft_pool_free(p), ==, 0);
	gate_destroy(&g);
	return NULL;
}

START_TEST(full_queue_returns_eagain)
{
	struct weft_config cfg = t_config(2);

	T_RUN(full_main, NULL, &cfg, NULL);
}
END_TEST

static void *
cancel_main(void *arg)
{
	struct weft_future *run = NULL, *queued = NULL;
	struct weft_pool *p = NULL;
	struct gate g;
	void *v = NULL;

	(void)arg;
	atomic_store(&never_ran, 0);
	gate_init(&g);
	T_EXPECT_INT(weft_pool_make(&p, 1, NULL), ==, 0);
	T_EXPECT_INT(weft_pool_submit(p, &run, gate_job, &g), ==, 0);
	T_WAIT(atomic_load(&g.started) == 1, "the gate job to start");
	T_EXPECT_INT(weft_future_state(run), ==, WEFT_FUTURE_RUNNING);
	T_EXPECT_INT(weft_pool_submit(p, &queued, never_job, NULL), ==, 0);
	T_EXPECT_INT(weft_future_state(queued), ==, WEFT_FUTURE_PENDING);
	/* Not started: removed, completes as cancelled at once. */
	T_EXPECT_INT(weft_future_cancel(queued), ==, 0);
	T_EXPECT_INT(weft_future_state(queued), ==, WEFT_FUTURE_CANCELLED);
	T_EXPECT_INT(weft_future_result(queued, NULL), ==, -ECANCELED);
	T_EXPECT_INT(weft_future_cancel(queued), ==, -EALREADY);
	/* Running: cannot be stopped; it completes with its value. */
	T_EXPECT_INT(weft_future_cancel(run), ==, -EBUSY);
	T_EXPECT_INT(weft_future_state(run), ==, WEFT_FUTURE_RUNNING);
	gate_open(&g);
	T_EXPECT_INT(weft_future_wait(run, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 42);
	T_EXPECT_INT(weft_future_state(run), ==, WEFT_FUTURE_DONE);
	T_EXPECT_INT(weft_future_cancel(run), ==, -EALREADY);
	T_EXPECT_INT(weft_pool_free(p), ==, 0);
	/* The cancelled job was not merely late: the pool has run dry. */
	T_EXPECT_INT(atomic_load(&never_ran), ==, 0);
	weft_future_release(run);
	weft_future_release(queued);
	gate_destroy(&g);
	return NULL;
}

START_TEST(cancel_before_start_removes_running_returns_ebusy)
{
	struct weft_config cfg = t_config(2);

	T_RUN(cancel_main, NULL, &cfg, NULL);
}
END_TEST

struct free_futs {
	struct weft_pool *p;
	struct weft_future *fs[4];
	struct gate gate;
};

static void *
free_futs_task(void *arg)
{
	struct free_futs *c = arg;

	return t_ptr(weft_pool_free(c->p));
}

static void *
free_futs_main(void *arg)
{
	struct free_futs c;
	struct weft_task *f;
	void *v = NULL;
	int i;

	(void)arg;
	atomic_store(&never_ran, 0);
	memset(&c, 0, sizeof(c));
	gate_init(&c.gate);
	T_EXPECT_INT(weft_pool_make(&c.p, 1, NULL), ==, 0);
	T_EXPECT_INT(weft_pool_submit(c.p, &c.fs[0], gate_job, &c.gate), ==,
		     0);
	T_WAIT(atomic_load(&c.gate.started) == 1, "the gate job to start");
	for (i = 1; i < 4; i++)
		T_EXPECT_INT(weft_pool_submit(c.p, &c.fs[i], never_job, NULL),
			     ==, 0);
	f = spawn1(free_futs_task, &c);
	/* Queued ones are cancelled; the running one is waited for. */
	for (i = 1; i < 4; i++) {
		T_EXPECT_INT(weft_future_wait(c.fs[i], NULL,
					      WEFT_DEADLINE_NONE), ==,
			     -ECANCELED);
		T_EXPECT_INT(weft_future_state(c.fs[i]), ==,
			     WEFT_FUTURE_CANCELLED);
	}
	T_WAIT(weft_task_state(f) == WEFT_SUSPENDED, "free to park");
	T_EXPECT_INT(weft_future_state(c.fs[0]), ==, WEFT_FUTURE_RUNNING);
	gate_open(&c.gate);
	T_EXPECT_INT(join_int(f), ==, 0);
	/* free returned after the running job completed. */
	T_EXPECT_INT(weft_future_state(c.fs[0]), ==, WEFT_FUTURE_DONE);
	T_EXPECT_INT(weft_future_result(c.fs[0], &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 42);
	T_EXPECT_INT(atomic_load(&never_ran), ==, 0);
	for (i = 0; i < 4; i++)
		weft_future_release(c.fs[i]);
	gate_destroy(&c.gate);
	return NULL;
}

START_TEST(free_cancels_queued_futures_waits_for_running)
{
	struct weft_config cfg = t_config(2);

	T_RUN(free_futs_main, NULL, &cfg, NULL);
}
END_TEST

static void *
bsubmit_thread(void *arg)
{
	struct weft_future *f = NULL;
	void *v = NULL;

	(void)arg;
	T_EXPECT_INT(weft_blocking_submit(&f, double_job, t_ptr(8)), ==, 0);
	if (!f)
		return NULL;
	T_EXPECT_INT(weft_future_wait(f, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 16);
	weft_future_release(f);
	return NULL;
}

static void *
bsubmit_main(void *arg)
{
	struct weft_future *f = NULL;
	pthread_t th;
	void *v = NULL;

	(void)arg;
	T_EXPECT_INT(weft_blocking_submit(&f, double_job, t_ptr(4)), ==, 0);
	T_EXPECT_INT(weft_future_wait(f, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 8);
	weft_future_release(f);
	T_EXPECT_INT(pthread_create(&th, NULL, bsubmit_thread, NULL), ==, 0);
	T_EXPECT_INT(pthread_join(th, NULL), ==, 0);
	return NULL;
}

START_TEST(blocking_submit_returns_future)
{
	struct weft_config cfg = t_config(2);

	T_RUN(bsubmit_main, NULL, &cfg, NULL);
}
END_TEST

static void *
busy_main(void *arg)
{
	struct weft_future *fs[3];
	struct weft_pool *p = NULL;
	struct gate g;
	int base = weft__pool_busy();

	(void)arg;
	gate_init(&g);
	T_EXPECT_INT(weft_pool_make(&p, 1, NULL), ==, 0);
	T_EXPECT_INT(weft_pool_submit(p, &fs[0], gate_job, &g), ==, 0);
	T_WAIT(atomic_load(&g.started) == 1, "the gate job to start");
	T_EXPECT_INT(weft_pool_submit(p, &fs[1], double_job, NULL), ==, 0);
	T_EXPECT_INT(weft_pool_submit(p, &fs[2], double_job, NULL), ==, 0);
	/* One running, two queued. */
	T_EXPECT_INT(weft__pool_busy(), ==, base + 3);
	T_EXPECT_INT(weft__pool_threads(), >=, 1);
	gate_open(&g);
	T_EXPECT_INT(weft_wait_all(fs, 3, WEFT_DEADLINE_NONE), ==, 0);
	T_WAIT(weft__pool_busy() == base, "the pool to drain");
	T_EXPECT_INT(weft_pool_free(p), ==, 0);
	for (int i = 0; i < 3; i++)
		weft_future_release(fs[i]);
	gate_destroy(&g);
	return NULL;
}

START_TEST(pool_busy_counts_queued_and_running)
{
	struct weft_config cfg = t_config(2);

	T_RUN(busy_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * --- malformed arguments ---
 */

START_TEST(malformed_args_return_einval)
{
	struct weft_pool_opts o;
	struct weft_pool *p = NULL;
	void *a[1] = { NULL }, *r[1];
	struct weft_future *f = NULL;

	ck_assert_int_eq(weft_pool_make(NULL, 1, NULL), -EINVAL);
	ck_assert_int_eq(weft_pool_make(&p, 0, NULL), -EINVAL);
	ck_assert_int_eq(weft_pool_make(&p, -3, NULL), -EINVAL);
	ck_assert_int_eq(weft_pool_make(&p, 1025, NULL), -EINVAL);
	memset(&o, 0, sizeof(o));
	o.idle_ns = -1;
	ck_assert_int_eq(weft_pool_make(&p, 1, &o), -EINVAL);
	memset(&o, 0, sizeof(o));
	o.reserved_[2] = 1;
	ck_assert_int_eq(weft_pool_make(&p, 1, &o), -EINVAL);
	ck_assert_ptr_null(p);

	ck_assert_int_eq(weft_pool_make(&p, 1024, NULL), 0);
	ck_assert_int_eq(weft_pool_map(NULL, double_job, a, r, 1,
				       WEFT_DEADLINE_NONE), -EINVAL);
	ck_assert_int_eq(weft_pool_map(p, NULL, a, r, 1,
				       WEFT_DEADLINE_NONE), -EINVAL);
	ck_assert_int_eq(weft_pool_map(p, double_job, NULL, r, 1,
				       WEFT_DEADLINE_NONE), -EINVAL);
	ck_assert_int_eq(weft_pool_map(p, double_job, a, NULL, 1,
				       WEFT_DEADLINE_NONE), -EINVAL);
	ck_assert_int_eq(weft_pool_submit(p, NULL, double_job, NULL),
			 -EINVAL);
	ck_assert_int_eq(weft_pool_submit(p, &f, NULL, NULL), -EINVAL);
	ck_assert_ptr_null(f);
	ck_assert_int_eq(weft_pool_free(p), 0);
	ck_assert_int_eq(weft_pool_free(NULL), -EINVAL);
	ck_assert_int_eq(weft_blocking(NULL, NULL, NULL, WEFT_DEADLINE_NONE),
			 -EINVAL);
	ck_assert_int_eq(weft_blocking_submit(NULL, double_job, NULL),
			 -EINVAL);
	ck_assert_int_eq(weft_blocking_submit(&f, NULL, NULL), -EINVAL);
	ck_assert_int_eq(weft_pool_submit(NULL, &f, double_job, NULL),
			 -EINVAL);
}
END_TEST

static Suite *
pool_suite(void)
{
	Suite *s = suite_create("runtime/pool");
	TCase *tc;

	tc = t_tcase(s, "map", T_TIMEOUT);
	tcase_add_test(tc, map_1000_jobs_at_most_4_at_once);
	tcase_add_test(tc, map_results_in_order_through_a_small_queue);
	tcase_add_test(tc, map_deadline_waits_for_running_removes_queued);
	tcase_add_test(tc, map_cancel_waits_for_running_removes_queued);
	tcase_add_test(tc, pool_on_plain_thread);

	tc = t_tcase(s, "submit", T_TIMEOUT);
	tcase_add_test(tc, submit_1000_jobs_at_most_4_at_once);
	tcase_add_test(tc, full_queue_returns_eagain);
	tcase_add_test(tc, cancel_before_start_removes_running_returns_ebusy);
	tcase_add_test(tc, free_cancels_queued_futures_waits_for_running);
	tcase_add_test(tc, pool_busy_counts_queued_and_running);

	tc = t_tcase(s, "blocking", T_TIMEOUT);
	tcase_add_test(tc, blocking_from_task_returns_value);
	tcase_add_test(tc, blocking_queued_job_removed_by_deadline_and_cancel);
	tcase_add_test(tc, pool_threads_field_lowers_the_default_pool_limit);
	tcase_add_test(tc, pool_threads_field_raises_the_default_pool_limit);
	tcase_add_test(tc,
		       blocking_running_job_abandoned_by_deadline_and_cancel);
	tcase_add_test(tc, blocking_from_plain_thread);
	tcase_add_test(tc, blocking_without_runtime_returns_esrch);
	tcase_add_test(tc, blocking_submit_returns_future);

	tc = t_tcase(s, "threads", T_TIMEOUT);
	tcase_add_test(tc, idle_threads_exit);
	tcase_add_test(tc, pool_threads_are_named_weft_pool);

	tc = t_tcase(s, "free", T_TIMEOUT);
	tcase_add_test(tc, free_cancels_queued_waits_for_running);
	tcase_add_test(tc, free_from_own_job_returns_edeadlk);

	tc = t_tcase(s, "args", T_TIMEOUT);
	tcase_add_test(tc, malformed_args_return_einval);
	return s;
}

int
main(void)
{
	/* Before the default pool is made (first use, in a test). */
	setenv("WEFT_POOL_THREADS", "2", 1);
	return t_main(pool_suite());
}

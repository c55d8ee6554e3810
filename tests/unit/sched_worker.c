/* SPDX-License-Identifier: MIT */
/*
 * Workers: how many there are, work spreading across them, a hogged worker
 * not stalling the others, spawning and cancelling from plain threads, and
 * yield.
 */
#include <pthread.h>
#include <sched.h>

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

struct sleeper {
	atomic_int started;
};

static void *
sleep_an_hour(void *arg)
{
	struct sleeper *s = arg;

	atomic_store(&s->started, 1);
	return t_ptr(weft_sleep(3600 * WEFT_SEC));
}

/*
 * workers
 */

#define ID_TASKS 64

struct count {
	int workers_in_task;
	int ids[ID_TASKS];
};

static void *
record_worker(void *arg)
{
	int *slot = arg;

	weft_yield();
	*slot = weft_worker_id();
	return NULL;
}

static void *
count_main(void *arg)
{
	struct count *c = arg;
	struct weft_task *t[ID_TASKS];
	int i;
	int r;

	c->workers_in_task = weft_workers();
	for (i = 0; i < ID_TASKS; i++) {
		c->ids[i] = -1000;
		r = weft_spawn(&t[i], record_worker, &c->ids[i], NULL);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			t[i] = NULL;
	}
	for (i = 0; i < ID_TASKS; i++)
		if (t[i])
			T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE),
				     ==, 0);
	return NULL;
}

/* Run with `cfg` and check that the run had `want` workers. */
static void
check_worker_count(const struct weft_config *cfg, int want)
{
	struct weft_worker_stats ws;
	struct weft_stats s;
	struct count c;
	int i;

	memset(&c, 0, sizeof(c));
	T_RUN(count_main, &c, cfg, NULL);
	ck_assert_msg(c.workers_in_task == want,
		      "weft_workers() in a task is %d, want %d",
		      c.workers_in_task, want);
	for (i = 0; i < ID_TASKS; i++)
		ck_assert_msg(c.ids[i] >= 0 && c.ids[i] < want,
			      "task %d saw weft_worker_id() %d, workers %d", i,
			      c.ids[i], want);
	ck_assert_int_eq(weft_stats(&s), 0);
	ck_assert_int_eq(s.workers, want);
	ck_assert_int_eq(weft_worker_stats(want - 1, &ws), 0);
	ck_assert_int_eq(weft_worker_stats(want, &ws), -EINVAL);
	ck_assert_int_eq(weft_worker_stats(-1, &ws), -EINVAL);
}

START_TEST(workers_from_config)
{
	struct weft_config cfg = t_config(3);

	unsetenv("WEFT_WORKERS");
	check_worker_count(&cfg, 3);
}
END_TEST

START_TEST(workers_from_env)
{
	struct weft_config cfg = t_config(0);

	ck_assert_int_eq(setenv("WEFT_WORKERS", "3", 1), 0);
	check_worker_count(&cfg, 3);
}
END_TEST

START_TEST(config_workers_override_env)
{
	struct weft_config cfg = t_config(2);

	ck_assert_int_eq(setenv("WEFT_WORKERS", "3", 1), 0);
	check_worker_count(&cfg, 2);
}
END_TEST

START_TEST(default_workers_match_affinity_cpus)
{
	cpu_set_t set;
	int cpus;

	unsetenv("WEFT_WORKERS");
	CPU_ZERO(&set);
	ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	cpus = CPU_COUNT(&set);
	check_worker_count(NULL, cpus);
}
END_TEST

START_TEST(workers_outside_run_returns_esrch)
{
	struct weft_config cfg = t_config(1);

	ck_assert_int_eq(weft_workers(), -ESRCH);
	T_RUN(ret_arg, NULL, &cfg, NULL);
	ck_assert_int_eq(weft_workers(), -ESRCH);
}
END_TEST

/*
 * spread: CPU-bound tasks spawned on one worker end up on all of them.
 */

#define SPREAD_TASKS 64

struct spread {
	int worker[SPREAD_TASKS];
};

static void *
burn_task(void *arg)
{
	int *slot = arg;

	*slot = weft_worker_id();
	t_burn(2 * WEFT_MSEC);
	return NULL;
}

static void *
spread_main(void *arg)
{
	struct spread *sp = arg;
	struct weft_task *t[SPREAD_TASKS];
	int i;
	int r;

	for (i = 0; i < SPREAD_TASKS; i++) {
		sp->worker[i] = -1000;
		r = weft_spawn(&t[i], burn_task, &sp->worker[i], NULL);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			t[i] = NULL;
	}
	for (i = 0; i < SPREAD_TASKS; i++)
		if (t[i])
			T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE),
				     ==, 0);
	return NULL;
}

static void
check_spread(int workers, bool from_env)
{
	struct weft_config cfg = t_config(from_env ? 0 : workers);
	struct weft_worker_stats ws;
	struct weft_stats s;
	struct spread sp;
	char env[16];
	char seen[256] = "";
	uint64_t run_total = 0;
	int idle = 0;
	int i;

	if (from_env) {
		snprintf(env, sizeof(env), "%d", workers);
		ck_assert_int_eq(setenv("WEFT_WORKERS", env, 1), 0);
	} else {
		unsetenv("WEFT_WORKERS");
	}
	T_RUN(spread_main, &sp, &cfg, NULL);
	ck_assert_int_eq(weft_stats(&s), 0);
	ck_assert_int_eq(s.workers, workers);
	for (i = 0; i < workers; i++) {
		size_t len = strlen(seen);

		ck_assert_int_eq(weft_worker_stats(i, &ws), 0);
		snprintf(seen + len, sizeof(seen) - len, " w%d:%" PRIu64, i,
			 ws.tasks_run);
		if (ws.tasks_run == 0)
			idle++;
		run_total += ws.tasks_run;
		ck_assert_msg(ws.stolen >= ws.steals,
			      "worker %d: %" PRIu64 " steals took %" PRIu64
			      " tasks",
			      i, ws.steals, ws.stolen);
	}
	ck_assert_msg(idle == 0, "%d of %d workers ran no task; tasks_run:%s",
		      idle, workers, seen);
	ck_assert_msg(run_total >= SPREAD_TASKS + 1,
		      "workers ran %" PRIu64 " tasks in all, want >= %d",
		      run_total, SPREAD_TASKS + 1);
	/* The tasks' own view agrees. */
	for (i = 0; i < workers; i++) {
		int j;

		for (j = 0; j < SPREAD_TASKS; j++)
			if (sp.worker[j] == i)
				break;
		ck_assert_msg(j < SPREAD_TASKS,
			      "no task saw itself on worker %d; tasks_run:%s",
			      i, seen);
	}
}

START_TEST(work_spreads_to_every_worker_env_2)
{
	check_spread(2, true);
}
END_TEST

START_TEST(work_spreads_to_every_worker_env_4)
{
	check_spread(4, true);
}
END_TEST

START_TEST(work_spreads_to_every_worker_config_2)
{
	check_spread(2, false);
}
END_TEST

START_TEST(work_spreads_to_every_worker_config_4)
{
	check_spread(4, false);
}
END_TEST

/*
 * hog: a task that never parks holds one of two workers.
 */

#define HOG_BATCH 32

struct hog {
	atomic_int running;
	atomic_int release;
	atomic_int done;
	int total;
};

static void
hog_finish_one(struct hog *h)
{
	if (atomic_fetch_add(&h->done, 1) + 1 == h->total)
		atomic_store(&h->release, 1);
}

static void *
hog_task(void *arg)
{
	struct hog *h = arg;
	int64_t end = weft_now() + t_stall_ns();

	atomic_store(&h->running, 1);
	while (!atomic_load(&h->release)) {
		if (weft_now() > end) {
			t_failf(__FILE__, __LINE__,
				"the hog was never released: %d of %d other "
				"tasks finished",
				atomic_load(&h->done), h->total);
			break;
		}
		t_cpu_relax();
	}
	return t_ptr(0x406);
}

static void *
hog_child(void *arg)
{
	int i;

	for (i = 0; i < 3; i++)
		T_EXPECT_INT(weft_yield(), ==, 0);
	hog_finish_one(arg);
	return NULL;
}

static void
spawn_hog_child(struct hog *h)
{
	int r = weft_spawn(NULL, hog_child, h, NULL);

	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		hog_finish_one(h);
}

static void *
hog_sleeper(void *arg)
{
	T_EXPECT_INT(weft_sleep(WEFT_MSEC), ==, 0);
	spawn_hog_child(arg);
	hog_finish_one(arg);
	return NULL;
}

static void *
hog_yielder(void *arg)
{
	int i;

	for (i = 0; i < 10; i++)
		T_EXPECT_INT(weft_yield(), ==, 0);
	spawn_hog_child(arg);
	hog_finish_one(arg);
	return NULL;
}

static void *
hog_main(void *arg)
{
	struct hog *h = arg;
	struct weft_task *hog;
	struct weft_task *t[2 * HOG_BATCH];
	void *res = NULL;
	int i;
	int r;

	/* Each batch task finishes itself and one child. */
	h->total = 2 * 2 * HOG_BATCH;
	r = weft_spawn(&hog, hog_task, h, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(atomic_load(&h->running), "the hog to start");
	/* All of these are spawned after the hog took its worker. */
	for (i = 0; i < 2 * HOG_BATCH; i++) {
		r = weft_spawn(&t[i], i % 2 ? hog_yielder : hog_sleeper, h,
			       NULL);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0) {
			t[i] = NULL;
			hog_finish_one(h);
			hog_finish_one(h);
		}
	}
	for (i = 0; i < 2 * HOG_BATCH; i++)
		if (t[i])
			T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE),
				     ==, 0);
	T_EXPECT_INT(weft_join(hog, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 0x406);
	return NULL;
}

START_TEST(hog_does_not_stall_other_tasks)
{
	struct weft_config cfg = t_config(2);
	struct hog h;

	memset(&h, 0, sizeof(h));
	T_RUN(hog_main, &h, &cfg, NULL);
	ck_assert_int_eq(atomic_load(&h.done), h.total);
}
END_TEST

/*
 * The hog is the main task itself, and the sleepers parked on its worker
 * just before it stopped yielding: their timers must still fire (another
 * worker has to expire them).  Rounds repeat until at least one sleeper
 * parked on the hog's worker, so the case is really exercised.
 */
#define HOGT_SLEEPERS 16
#define HOGT_ROUNDS   10

struct hogt_round;

struct hogt_slot {
	struct hogt_round *round;
	int worker;
};

struct hogt_round {
	struct hogt_slot slot[HOGT_SLEEPERS];
	atomic_int started;
	atomic_int done;
};

struct hogt {
	int rounds;
	int parked_on_hog;
};

static void *
hogt_sleeper(void *arg)
{
	struct hogt_slot *sl = arg;

	sl->worker = weft_worker_id();
	atomic_fetch_add(&sl->round->started, 1);
	T_EXPECT_INT(weft_sleep(10 * WEFT_MSEC), ==, 0);
	atomic_fetch_add(&sl->round->done, 1);
	return NULL;
}

static void *
hogt_main(void *arg)
{
	struct hogt *ht = arg;
	struct weft_task *t[HOGT_SLEEPERS];
	struct hogt_round rd;
	int64_t end;
	int made;
	int mine;
	int w;
	int i;
	int r;

	for (ht->rounds = 0; ht->rounds < HOGT_ROUNDS; ht->rounds++) {
		memset(&rd, 0, sizeof(rd));
		for (made = 0; made < HOGT_SLEEPERS; made++) {
			rd.slot[made].round = &rd;
			r = weft_spawn(&t[made], hogt_sleeper, &rd.slot[made],
				       NULL);
			T_EXPECT_INT(r, ==, 0);
			if (r != 0)
				break;
		}
		/* Let them run (most on this worker) and park. */
		end = weft_now() + t_stall_ns();
		while (atomic_load(&rd.started) < made && weft_now() < end)
			weft_yield();
		T_EXPECT_INT(atomic_load(&rd.started), ==, made);
		w = weft_worker_id();
		mine = 0;
		for (i = 0; i < made; i++)
			if (rd.slot[i].worker == w)
				mine++;
		/* Hog this worker until every sleeper has woken. */
		end = weft_now() + t_stall_ns();
		while (atomic_load(&rd.done) < made) {
			if (weft_now() > end) {
				t_failf(__FILE__, __LINE__,
					"round %d: %d of %d sleepers (%d "
					"parked on the hogged worker) never "
					"woke",
					ht->rounds,
					made - atomic_load(&rd.done), made,
					mine);
				break;
			}
			t_cpu_relax();
		}
		for (i = 0; i < made; i++)
			T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE),
				     ==, 0);
		ht->parked_on_hog += mine;
		if (mine > 0 || t_failed())
			break;
	}
	return NULL;
}

START_TEST(hogged_worker_timers_still_fire)
{
	struct weft_config cfg = t_config(2);
	struct hogt ht;

	memset(&ht, 0, sizeof(ht));
	T_RUN(hogt_main, &ht, &cfg, NULL);
	ck_assert_msg(ht.parked_on_hog > 0,
		      "in %d rounds no sleeper parked on the hog's worker: "
		      "the case was not exercised",
		      ht.rounds);
}
END_TEST

/*
 * foreign: plain threads spawn, cancel and detach.
 */

struct foreign_spawn {
	_Atomic(struct weft_task *) handle;
	atomic_int detached_ran;
	atomic_int spawned;
	int r_spawn;
	int r_spawn_detached;
	struct weft_task *seen_self;
	int seen_worker;
	int workers;
	void *result;
	int r_join;
};

static void *
foreign_child(void *arg)
{
	struct foreign_spawn *fs = arg;

	fs->seen_self = weft_self();
	fs->seen_worker = weft_worker_id();
	fs->workers = weft_workers();
	return t_ptr(0xf0f0);
}

static void *
foreign_spawner(void *arg)
{
	struct foreign_spawn *fs = arg;
	struct weft_task *t = NULL;

	fs->r_spawn = weft_spawn(&t, foreign_child, fs, NULL);
	fs->r_spawn_detached =
		weft_spawn(NULL, set_flag, &fs->detached_ran, NULL);
	atomic_store(&fs->handle, t);
	atomic_store(&fs->spawned, 1);
	return NULL;
}

static void *
foreign_spawn_main(void *arg)
{
	struct foreign_spawn *fs = arg;
	struct weft_task *t;
	pthread_t th;
	int r;

	r = pthread_create(&th, NULL, foreign_spawner, fs);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(atomic_load(&fs->spawned), "the thread to spawn");
	pthread_join(th, NULL);
	t = atomic_load(&fs->handle);
	if (t)
		fs->r_join = weft_join(t, &fs->result, WEFT_DEADLINE_NONE);
	/* Returning would cancel the detached one if it had not run. */
	T_WAIT(atomic_load(&fs->detached_ran), "the detached task");
	return NULL;
}

static void
check_foreign_spawn(struct foreign_spawn *fs)
{
	struct weft_worker_stats ws;
	uint64_t global = 0;
	int i;

	ck_assert_int_eq(fs->r_spawn, 0);
	ck_assert_int_eq(fs->r_spawn_detached, 0);
	ck_assert_int_eq(fs->r_join, 0);
	ck_assert_ptr_eq(fs->result, t_ptr(0xf0f0));
	ck_assert_ptr_nonnull(fs->seen_self);
	ck_assert_msg(fs->seen_worker >= 0 && fs->seen_worker < fs->workers,
		      "the task ran on worker %d of %d", fs->seen_worker,
		      fs->workers);
	/* The detached one ran. */
	ck_assert_int_eq(atomic_load(&fs->detached_ran), 1);
	/* From a plain thread, tasks go through the global queue. */
	for (i = 0; i < fs->workers; i++) {
		ck_assert_int_eq(weft_worker_stats(i, &ws), 0);
		global += ws.global_gets;
	}
	ck_assert_msg(global >= 2, "global_gets %" PRIu64 ", want >= 2",
		      global);
}

START_TEST(spawn_from_foreign_thread_runs_task)
{
	struct foreign_spawn fs;

	memset(&fs, 0, sizeof(fs));
	fs.r_spawn = fs.r_spawn_detached = fs.r_join = 1;
	T_RUN(foreign_spawn_main, &fs, NULL, NULL);
	check_foreign_spawn(&fs);
}
END_TEST

static void *
early_thread(void *arg)
{
	struct foreign_spawn *fs = arg;

	/* Started before weft_run(): wait for the runtime to come up. */
	if (T_WAIT_THREAD(weft_workers() > 0, "weft_run() to start"))
		foreign_spawner(fs);
	else
		atomic_store(&fs->spawned, 1);
	return NULL;
}

static void *
early_thread_main(void *arg)
{
	struct foreign_spawn *fs = arg;
	struct weft_task *t;

	T_WAIT(atomic_load(&fs->spawned), "the early thread to spawn");
	t = atomic_load(&fs->handle);
	if (t)
		fs->r_join = weft_join(t, &fs->result, WEFT_DEADLINE_NONE);
	/* Returning would cancel the detached one if it had not run. */
	T_WAIT(atomic_load(&fs->detached_ran), "the detached task");
	return NULL;
}

START_TEST(spawn_from_thread_started_before_run)
{
	struct foreign_spawn fs;
	pthread_t th;

	memset(&fs, 0, sizeof(fs));
	fs.r_spawn = fs.r_spawn_detached = fs.r_join = 1;
	ck_assert_int_eq(pthread_create(&th, NULL, early_thread, &fs), 0);
	T_RUN(early_thread_main, &fs, NULL, NULL);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	check_foreign_spawn(&fs);
}
END_TEST

/*
 * Every task is parked (the main task in a join, the other in a one-hour
 * sleep), so the workers are idle; a plain thread then spawns a task that
 * cancels the sleeper.  Nothing else could wake the runtime.
 */
struct idle_wake {
	struct sleeper s;
	struct weft_task *main_task;
	struct weft_task *sleeper;
	bool by_spawn;
	int r_foreign;
	void *result;
	int r_join;
};

static void *
cancel_arg(void *arg)
{
	T_EXPECT_INT(weft_cancel(arg), ==, 0);
	return NULL;
}

static void *
idle_waker(void *arg)
{
	struct idle_wake *iw = arg;

	if (!T_WAIT_THREAD(weft_task_state(iw->sleeper) == WEFT_SUSPENDED &&
				   weft_task_state(iw->main_task) ==
					   WEFT_SUSPENDED,
			   "both tasks to park")) {
		/* Unblock the run; the failure is recorded. */
		weft_cancel(iw->sleeper);
		return NULL;
	}
	if (iw->by_spawn)
		iw->r_foreign = weft_spawn(NULL, cancel_arg, iw->sleeper, NULL);
	else
		iw->r_foreign = weft_cancel(iw->sleeper);
	return NULL;
}

static void *
idle_wake_main(void *arg)
{
	struct idle_wake *iw = arg;
	pthread_t th;
	int r;

	iw->main_task = weft_self();
	r = weft_spawn(&iw->sleeper, sleep_an_hour, &iw->s, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	r = pthread_create(&th, NULL, idle_waker, iw);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0) {
		weft_cancel(iw->sleeper);
		weft_join(iw->sleeper, NULL, WEFT_DEADLINE_NONE);
		return NULL;
	}
	iw->r_join = weft_join(iw->sleeper, &iw->result, WEFT_DEADLINE_NONE);
	pthread_join(th, NULL);
	return NULL;
}

static void
check_idle_wake(bool by_spawn)
{
	struct idle_wake iw;

	memset(&iw, 0, sizeof(iw));
	iw.by_spawn = by_spawn;
	iw.r_foreign = iw.r_join = 1;
	T_RUN(idle_wake_main, &iw, NULL, NULL);
	ck_assert_msg(iw.r_foreign == 0, "foreign %s returned %d",
		      by_spawn ? "weft_spawn" : "weft_cancel", iw.r_foreign);
	ck_assert_int_eq(iw.r_join, 0);
	ck_assert_int_eq(t_int(iw.result), -ECANCELED);
}

START_TEST(foreign_spawn_wakes_idle_workers)
{
	check_idle_wake(true);
}
END_TEST

START_TEST(foreign_cancel_wakes_sleeping_task)
{
	check_idle_wake(false);
}
END_TEST

struct foreign_detach {
	atomic_int ran;
	struct weft_task *t;
	int r_detach;
};

static void *
wait_then_set(void *arg)
{
	struct foreign_detach *fd = arg;
	int i;

	for (i = 0; i < 5; i++)
		weft_sleep(WEFT_MSEC);
	atomic_store(&fd->ran, 1);
	return NULL;
}

static void *
foreign_detacher(void *arg)
{
	struct foreign_detach *fd = arg;

	fd->r_detach = weft_detach(fd->t);
	return NULL;
}

static void *
foreign_detach_main(void *arg)
{
	struct foreign_detach *fd = arg;
	pthread_t th;
	int r;

	r = weft_spawn(&fd->t, wait_then_set, fd, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	r = pthread_create(&th, NULL, foreign_detacher, fd);
	T_EXPECT_INT(r, ==, 0);
	if (r == 0)
		pthread_join(th, NULL);
	/* Returning would cancel it if it had not started yet. */
	T_WAIT(atomic_load(&fd->ran), "the detached task");
	return NULL;
}

START_TEST(detach_from_foreign_thread)
{
	struct foreign_detach fd;

	memset(&fd, 0, sizeof(fd));
	fd.r_detach = 1;
	T_RUN(foreign_detach_main, &fd, NULL, NULL);
	ck_assert_int_eq(fd.r_detach, 0);
	ck_assert_int_eq(atomic_load(&fd.ran), 1);
}
END_TEST

START_TEST(spawn_without_runtime_returns_esrch)
{
	struct weft_task *t = (struct weft_task *)&t;
	struct weft_config cfg = t_config(1);
	atomic_int ran = 0;

	ck_assert_int_eq(weft_spawn(&t, set_flag, &ran, NULL), -ESRCH);
	ck_assert_ptr_eq(t, (struct weft_task *)&t);
	ck_assert_int_eq(weft_spawn(NULL, set_flag, &ran, NULL), -ESRCH);
	/* And once a run has ended. */
	T_RUN(ret_arg, NULL, &cfg, NULL);
	ck_assert_int_eq(weft_spawn(&t, set_flag, &ran, NULL), -ESRCH);
	ck_assert_int_eq(weft_spawn(NULL, set_flag, &ran, NULL), -ESRCH);
	ck_assert_int_eq(atomic_load(&ran), 0);
}
END_TEST

/*
 * regress: a plain thread spawning while weft_run tears down.  The spawn
 * used to take a descriptor from the pool before checking that the run was
 * still on, so teardown could free it under the spawner (ASan sees that),
 * or the -ESRCH path could put freed memory back on the pool's free list.
 */
#define TEARDOWN_ROUNDS 20
#define TEARDOWN_MAX_SPAWNS 200000

struct teardown_race {
	atomic_int stop;
	atomic_int done;	/* the spammer has returned */
	atomic_long spawned;	/* successful foreign spawns */
	atomic_long refused;	/* -ESRCH: no run, or it is stopping */
	atomic_long ran;	/* tasks that ran */
	atomic_long other;	/* any other return code */
	atomic_long round_spawns;
};

static void *
teardown_count(void *arg)
{
	atomic_fetch_add(&((struct teardown_race *)arg)->ran, 1);
	return NULL;
}

static void *
teardown_spammer(void *arg)
{
	struct teardown_race *tr = arg;
	long n = 0;
	int r;

	while (!atomic_load(&tr->stop) && n < TEARDOWN_MAX_SPAWNS) {
		r = weft_spawn(NULL, teardown_count, tr, NULL);
		if (r == 0) {
			atomic_fetch_add(&tr->spawned, 1);
			atomic_fetch_add(&tr->round_spawns, 1);
			n++;
		} else if (r == -ESRCH) {
			atomic_fetch_add(&tr->refused, 1);
		} else {
			atomic_fetch_add(&tr->other, 1);
		}
	}
	atomic_store(&tr->done, 1);
	return NULL;
}

/* Returns once the spammer has got a task into this run. */
static void *
teardown_main(void *arg)
{
	struct teardown_race *tr = arg;

	T_WAIT(atomic_load(&tr->round_spawns) > 0 ||
	       atomic_load(&tr->done), "a foreign spawn to land in the run");
	return NULL;
}

START_TEST(regress_foreign_spawn_racing_teardown)
{
	struct weft_config cfg = t_config(2);
	struct teardown_race tr;
	pthread_t th;
	struct weft_stats st;
	long accepted = 0;
	int round;

	memset(&tr, 0, sizeof(tr));
	ck_assert_int_eq(pthread_create(&th, NULL, teardown_spammer, &tr), 0);
	for (round = 0; round < TEARDOWN_ROUNDS; round++) {
		atomic_store(&tr.round_spawns, 0);
		T_RUN(teardown_main, &tr, &cfg, NULL);
		/* Counted by the run that accepted them (main excluded). */
		ck_assert_int_eq(weft_stats(&st), 0);
		accepted += (long)st.tasks_spawned - 1;
	}
	atomic_store(&tr.stop, 1);
	pthread_join(th, NULL);
	ck_assert_int_eq(atomic_load(&tr.other), 0);
	/*
	 * Every spawn that succeeded was accepted by a run, which finished
	 * it (T_RUN: no task left live): it ran, or, landing after main had
	 * returned, it started cancelled and was finished without running.
	 */
	ck_assert_msg(accepted == atomic_load(&tr.spawned),
		      "%ld foreign spawns succeeded but %ld were accepted",
		      atomic_load(&tr.spawned), accepted);
	ck_assert_msg(atomic_load(&tr.ran) <= atomic_load(&tr.spawned),
		      "%ld tasks ran of %ld spawned", atomic_load(&tr.ran),
		      atomic_load(&tr.spawned));
	ck_assert_msg(atomic_load(&tr.spawned) >= TEARDOWN_ROUNDS,
		      "only %ld spawns landed", atomic_load(&tr.spawned));
}
END_TEST

/*
 * yield
 */

#define YIELD_TASKS 10

static void *
yield_first_main(void *arg)
{
	atomic_int *ran = arg;
	struct weft_task *t[YIELD_TASKS];
	int seen = 0;
	int i;
	int r;

	for (i = 0; i < YIELD_TASKS; i++) {
		r = weft_spawn(&t[i], set_flag, &ran[i], NULL);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			t[i] = NULL;
	}
	/* One worker: every task queued before the yield runs first. */
	T_EXPECT_INT(weft_yield(), ==, 0);
	for (i = 0; i < YIELD_TASKS; i++)
		seen += atomic_load(&ran[i]);
	T_EXPECT(seen == YIELD_TASKS,
		 "after one weft_yield() %d of %d runnable tasks had run", seen,
		 YIELD_TASKS);
	for (i = 0; i < YIELD_TASKS; i++)
		if (t[i])
			T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE),
				     ==, 0);
	return NULL;
}

START_TEST(yield_runs_other_runnable_tasks_first)
{
	struct weft_config cfg = t_config(1);
	atomic_int ran[YIELD_TASKS];
	int i;

	for (i = 0; i < YIELD_TASKS; i++)
		atomic_init(&ran[i], 0);
	T_RUN(yield_first_main, ran, &cfg, NULL);
}
END_TEST

static void *
yield_alone_main(void *arg)
{
	int i;

	for (i = 0; i < 1000; i++)
		T_EXPECT_INT(weft_yield(), ==, 0);
	return NULL;
}

START_TEST(yield_returns_zero)
{
	struct weft_config cfg = t_config(1);

	T_RUN(yield_alone_main, NULL, &cfg, NULL);
	T_RUN(yield_alone_main, NULL, NULL, NULL);
}
END_TEST

/* Two tasks on one worker take turns: each yield switches to the other. */
struct pingpong {
	atomic_int turn;
	int out_of_turn;
};

static void *
pingpong_task(void *arg)
{
	struct pingpong *pp = arg;
	int i;

	for (i = 0; i < 1000; i++) {
		if (atomic_load(&pp->turn) != 1)
			pp->out_of_turn++;
		atomic_store(&pp->turn, 0);
		weft_yield();
	}
	return NULL;
}

static void *
pingpong_main(void *arg)
{
	struct pingpong *pp = arg;
	struct weft_task *t;
	int i;
	int r;

	atomic_store(&pp->turn, 0);
	r = weft_spawn(&t, pingpong_task, pp, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	for (i = 0; i < 1000; i++) {
		if (atomic_load(&pp->turn) != 0)
			pp->out_of_turn++;
		atomic_store(&pp->turn, 1);
		weft_yield();
	}
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(yield_alternates_two_tasks_on_one_worker)
{
	struct weft_config cfg = t_config(1);
	struct pingpong pp;

	memset(&pp, 0, sizeof(pp));
	T_RUN(pingpong_main, &pp, &cfg, NULL);
	ck_assert_msg(pp.out_of_turn == 0, "%d turns out of order",
		      pp.out_of_turn);
}
END_TEST

/*
 * Two tasks that only yield, on one worker, while the other worker sleeps:
 * a yield readies nobody, so unless the yield itself wakes the sleeper the
 * pair can share one worker indefinitely (it did under TSan, where a
 * switch is slow enough that a thief mostly finds the ring empty).  Each
 * round, the pair must end up on two workers at once.
 */
#define SPREAD_ROUNDS 20

struct yield_pair {
	atomic_int w_main;	/* worker the main task last ran on */
	atomic_int w_peer;	/* worker the peer last ran on */
	atomic_int apart;	/* they were seen on different workers */
	int rounds;
};

static void *
pair_peer(void *arg)
{
	struct yield_pair *sp = arg;
	int64_t end = weft_now() + t_stall_ns();

	while (!atomic_load(&sp->apart) && weft_now() < end) {
		int w = weft_worker_id();

		atomic_store(&sp->w_peer, w);
		if (atomic_load(&sp->w_main) >= 0 &&
		    atomic_load(&sp->w_main) != w)
			atomic_store(&sp->apart, 1);
		weft_yield();
	}
	return NULL;
}

static void *
pair_main(void *arg)
{
	struct yield_pair *sp = arg;
	struct weft_task *t;

	for (sp->rounds = 0; sp->rounds < SPREAD_ROUNDS; sp->rounds++) {
		int64_t end = weft_now() + t_stall_ns();

		atomic_store(&sp->apart, 0);
		atomic_store(&sp->w_main, -1);
		atomic_store(&sp->w_peer, -1);
		T_EXPECT_INT(weft_spawn(&t, pair_peer, sp, NULL), ==, 0);
		while (!atomic_load(&sp->apart) && weft_now() < end) {
			int w = weft_worker_id();

			atomic_store(&sp->w_main, w);
			if (atomic_load(&sp->w_peer) >= 0 &&
			    atomic_load(&sp->w_peer) != w)
				atomic_store(&sp->apart, 1);
			weft_yield();
		}
		T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
		if (!atomic_load(&sp->apart))
			break;
	}
	return NULL;
}

START_TEST(yielding_pair_spreads_to_an_idle_worker)
{
	struct weft_config cfg = t_config(2);
	struct yield_pair sp;

	memset(&sp, 0, sizeof(sp));
	T_RUN(pair_main, &sp, &cfg, NULL);
	ck_assert_msg(sp.rounds == SPREAD_ROUNDS,
		      "round %d: two yielding tasks shared one worker for "
		      "%.0f s while the other slept",
		      sp.rounds, t_stall_ns() / 1e9);
}
END_TEST

/*
 * A wake that fills an empty run-next wakes no idle worker (sched.h,
 * weft__ready_on): the waker usually parks next and runs it itself.  A
 * waker that keeps the CPU instead must not strand the woken task while
 * another worker sleeps: the monitor sees a worker stuck in one task with
 * work queued and wakes a sleeper, which steals the run-next.  The waker
 * here never yields until the woken task has run, so only that rescue can
 * run it.
 */
#define RESCUE_ROUNDS 3

struct rescue {
	struct weft_chan *ch;
	atomic_int ran_on;	/* the receiver's worker after the recv; -1 */
	int rounds;
};

static void *
rescue_receiver(void *arg)
{
	struct rescue *rs = arg;
	int v = 0;

	T_EXPECT_INT(weft_chan_recv(rs->ch, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(v, ==, 7);
	atomic_store(&rs->ran_on, weft_worker_id());
	return NULL;
}

static void *
rescue_main(void *arg)
{
	struct rescue *rs = arg;
	struct weft_task *t;
	int v = 7;

	T_EXPECT_INT(weft_chan_make(&rs->ch, sizeof(int), 0), ==, 0);
	for (rs->rounds = 0; rs->rounds < RESCUE_ROUNDS; rs->rounds++) {
		int64_t end;
		int waker_on;

		atomic_store(&rs->ran_on, -1);
		T_EXPECT_INT(weft_spawn(&t, rescue_receiver, rs, NULL), ==, 0);
		T_WAIT(weft_task_state(t) == WEFT_SUSPENDED,
		       "the receiver to park");
		T_EXPECT_INT(weft_chan_send(rs->ch, &v, WEFT_DEADLINE_NONE),
			     ==, 0);
		/* Keep this worker: no yield, no park, until it has run. */
		waker_on = weft_worker_id();
		end = weft_now() + t_stall_ns();
		while (atomic_load(&rs->ran_on) < 0 && weft_now() < end)
			t_cpu_relax();
		if (atomic_load(&rs->ran_on) < 0)
			break;
		T_EXPECT_INT(atomic_load(&rs->ran_on), !=, waker_on);
		T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	}
	if (rs->rounds < RESCUE_ROUNDS)
		T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	weft_chan_release(rs->ch);
	return NULL;
}

START_TEST(runnext_of_a_busy_waker_runs_on_an_idle_worker)
{
	struct weft_config cfg = t_config(2);
	struct rescue rs;

	memset(&rs, 0, sizeof(rs));
	T_RUN(rescue_main, &rs, &cfg, NULL);
	ck_assert_msg(rs.rounds == RESCUE_ROUNDS,
		      "round %d: a task woken into the run-next of a worker "
		      "that kept busy did not run for %.0f s while the other "
		      "worker slept", rs.rounds, t_stall_ns() / 1e9);
}
END_TEST

/*
 * Fairness past the local ring: 1,000 tasks yielding in a loop on one
 * worker are more than its 256-slot ring holds, so some always wait in
 * the global queue.  Every task notes the global switch count each time it
 * runs; between two runs of one task, a fair scheduler lets the other
 * 999 run about once each.  Counted, not timed: the widest gap any task
 * saw must stay under 8 rounds of all tasks (8,000 switches).  Before the
 * fix the global queue gave up one task per 61 scheduler rounds of 61
 * switches each, and a task could wait ~100,000 switches.
 */
#define FAIR_TASKS 1000
#define FAIR_ROUNDS 40

static atomic_long fair_switches;
static atomic_long fair_widest;

static void *
fair_yielder(void *arg)
{
	long last = atomic_load(&fair_switches);

	(void)arg;
	for (int r = 0; r < FAIR_ROUNDS; r++) {
		long now;

		T_EXPECT_INT(weft_yield(), ==, 0);
		now = atomic_fetch_add(&fair_switches, 1) + 1;
		/* The first rounds include the start-up of all the others. */
		if (r >= 2) {
			long gap = now - last, w = atomic_load(&fair_widest);

			while (gap > w &&
			       !atomic_compare_exchange_weak(&fair_widest, &w,
							     gap))
				;
		}
		last = now;
	}
	return NULL;
}

static void *
fair_main(void *arg)
{
	static struct weft_task *t[FAIR_TASKS];

	(void)arg;
	atomic_store(&fair_switches, 0);
	atomic_store(&fair_widest, 0);
	for (int i = 0; i < FAIR_TASKS; i++)
		T_EXPECT_INT(weft_spawn(&t[i], fair_yielder, NULL, NULL), ==,
			     0);
	for (int i = 0; i < FAIR_TASKS; i++)
		T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT(atomic_load(&fair_widest) < 8L * FAIR_TASKS,
		 "a task waited %ld switches between two runs (%d tasks "
		 "yielding: fair is ~%d)", atomic_load(&fair_widest),
		 FAIR_TASKS, FAIR_TASKS);
	return NULL;
}

START_TEST(yielders_past_the_ring_all_run_every_round)
{
	struct weft_config cfg = t_config(1);

	T_RUN(fair_main, NULL, &cfg, NULL);
}
END_TEST

static Suite *
sched_worker_suite(void)
{
	Suite *s = suite_create("sched/worker");
	TCase *tc;

	tc = t_tcase(s, "workers", T_TIMEOUT);
	tcase_add_test(tc, workers_from_config);
	tcase_add_test(tc, workers_from_env);
	tcase_add_test(tc, config_workers_override_env);
	tcase_add_test(tc, default_workers_match_affinity_cpus);
	tcase_add_test(tc, workers_outside_run_returns_esrch);

	tc = t_tcase(s, "spread", T_TIMEOUT);
	tcase_add_test(tc, work_spreads_to_every_worker_env_2);
	tcase_add_test(tc, work_spreads_to_every_worker_env_4);
	tcase_add_test(tc, work_spreads_to_every_worker_config_2);
	tcase_add_test(tc, work_spreads_to_every_worker_config_4);

	tc = t_tcase(s, "hog", T_TIMEOUT);
	tcase_add_test(tc, hog_does_not_stall_other_tasks);
	tcase_add_test(tc, hogged_worker_timers_still_fire);

	tc = t_tcase(s, "foreign", T_TIMEOUT);
	tcase_add_test(tc, spawn_from_foreign_thread_runs_task);
	tcase_add_test(tc, spawn_from_thread_started_before_run);
	tcase_add_test(tc, foreign_spawn_wakes_idle_workers);
	tcase_add_test(tc, foreign_cancel_wakes_sleeping_task);
	tcase_add_test(tc, detach_from_foreign_thread);
	tcase_add_test(tc, spawn_without_runtime_returns_esrch);
	tcase_add_test(tc, regress_foreign_spawn_racing_teardown);

	tc = t_tcase(s, "yield", T_TIMEOUT);
	tcase_add_test(tc, yield_returns_zero);
	tcase_add_test(tc, yield_runs_other_runnable_tasks_first);
	tcase_add_test(tc, yield_alternates_two_tasks_on_one_worker);
	tcase_add_test(tc, yielders_past_the_ring_all_run_every_round);
	tcase_add_test(tc, yielding_pair_spreads_to_an_idle_worker);
	tcase_add_test(tc, runnext_of_a_busy_waker_runs_on_an_idle_worker);

	return s;
}

int
main(void)
{
	return t_main(sched_worker_suite());
}

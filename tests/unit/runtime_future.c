/* SPDX-License-Identifier: MIT */
/*
 * Futures and task states: every task state transition, set/fail/cancel,
 * done callbacks (order, already-done, never in the completer's frame),
 * completion from a foreign thread, plain-thread waiters, wait_any,
 * wait_all, join_for, cancellation while waiting, and weft_run cancelling
 * the tasks left when its main function returns.
 */
#include <pthread.h>

#include "harness.h"

/* Wait (yielding) until t is parked. */
static void
wait_parked(struct weft_task *t)
{
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the task to park");
}

/*
 * Task states
 */

struct states {
	struct weft_future *gate;
	enum weft_task_state seen_by_self;
	int wait_ret;
};

static void *
states_child(void *arg)
{
	struct states *s = arg;

	s->seen_by_self = weft_task_state(weft_self());
	s->wait_ret = weft_future_wait(s->gate, NULL, WEFT_DEADLINE_NONE);
	return t_ptr(7);
}

static void *
states_main(void *arg)
{
	struct states *s = arg;
	struct weft_future *tf;
	struct weft_task *t, *t2;
	void *res = NULL;

	T_EXPECT_INT(weft_future_make(&s->gate), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, states_child, s, NULL), ==, 0);
	/* One worker and no yield yet: it has not run. */
	T_EXPECT_INT(weft_task_state(t), ==, WEFT_PENDING);
	tf = weft_future_retain(weft_task_future(t));
	T_EXPECT_INT(weft_future_state(tf), ==, WEFT_FUTURE_PENDING);
	T_EXPECT_INT(weft_future_result(tf, NULL), ==, -EAGAIN);
	T_EXPECT_INT(weft_yield(), ==, 0);
	/* It ran, saw itself RUNNING, and parked on the gate. */
	wait_parked(t);
	T_EXPECT_INT(s->seen_by_self, ==, WEFT_RUNNING);
	T_EXPECT_INT(weft_future_state(tf), ==, WEFT_FUTURE_RUNNING);
	T_EXPECT_INT(weft_future_set(s->gate, NULL), ==, 0);
	/* Woken: runnable again, not yet run (one worker, no yield). */
	T_EXPECT_INT(weft_task_state(t), ==, WEFT_RUNNING);
	T_EXPECT_INT(weft_future_wait(tf, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT(res == t_ptr(7), "task future value %p", res);
	T_EXPECT_INT(weft_task_state(t), ==, WEFT_DONE);
	T_EXPECT_INT(weft_future_state(tf), ==, WEFT_FUTURE_DONE);
	T_EXPECT_INT(s->wait_ret, ==, 0);
	/* Only the task completes its future. */
	T_EXPECT_INT(weft_future_set(tf, NULL), ==, -EPERM);
	T_EXPECT_INT(weft_future_fail(tf, -EIO), ==, -EPERM);
	T_EXPECT_INT(weft_future_cancel(tf), ==, -EALREADY);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	/* The future outlives the handle. */
	T_EXPECT_INT(weft_future_result(tf, &res), ==, 0);
	weft_future_release(tf);

	/* Cancelled before it ran. */
	T_EXPECT_INT(weft_spawn(&t2, states_child, s, NULL), ==, 0);
	tf = weft_future_retain(weft_task_future(t2));
	T_EXPECT_INT(weft_cancel(t2), ==, 0);
	T_EXPECT_INT(weft_task_state(t2), ==, WEFT_CANCELLED);
	T_EXPECT_INT(weft_future_wait(tf, NULL, WEFT_DEADLINE_NONE), ==,
		     -ECANCELED);
	T_EXPECT_INT(weft_future_state(tf), ==, WEFT_FUTURE_CANCELLED);
	T_EXPECT_INT(weft_join(t2, NULL, WEFT_DEADLINE_NONE), ==, -ECHILD);
	weft_future_release(tf);
	weft_future_release(s->gate);
	return NULL;
}

START_TEST(task_state_each_transition_is_observed)
{
	struct weft_config cfg = t_config(1);
	struct states s = {0};

	T_RUN(states_main, &s, &cfg, NULL);
}
END_TEST

/*
 * Set, fail, cancel, result
 */

static void *
outcomes_main(void *arg)
{
	struct weft_future *a, *b, *c;
	void *v = NULL;

	(void)arg;
	T_EXPECT_INT(weft_future_make(&a), ==, 0);
	T_EXPECT_INT(weft_future_make(&b), ==, 0);
	T_EXPECT_INT(weft_future_make(&c), ==, 0);
	T_EXPECT_INT(weft_future_result(a, &v), ==, -EAGAIN);
	T_EXPECT_INT(weft_future_set(a, t_ptr(5)), ==, 0);
	T_EXPECT_INT(weft_future_set(a, t_ptr(6)), ==, -EALREADY);
	T_EXPECT_INT(weft_future_fail(a, -EIO), ==, -EALREADY);
	T_EXPECT_INT(weft_future_result(a, &v), ==, 0);
	T_EXPECT(v == t_ptr(5), "first set wins: %p", v);
	T_EXPECT_INT(weft_future_fail(b, 3), ==, -EINVAL);
	T_EXPECT_INT(weft_future_fail(b, -EIO), ==, 0);
	T_EXPECT_INT(weft_future_wait(b, &v, 0), ==, -EIO);
	T_EXPECT_INT(weft_future_state(b), ==, WEFT_FUTURE_DONE);
	T_EXPECT_INT(weft_future_wait(c, NULL, weft_now() + WEFT_MSEC), ==,
		     -ETIMEDOUT);
	T_EXPECT_INT(weft_future_cancel(c), ==, 0);
	T_EXPECT_INT(weft_future_cancel(c), ==, -EALREADY);
	T_EXPECT_INT(weft_future_state(c), ==, WEFT_FUTURE_CANCELLED);
	T_EXPECT_INT(weft_future_result(c, NULL), ==, -ECANCELED);
	weft_future_release(a);
	weft_future_release(b);
	weft_future_release(c);
	return NULL;
}

START_TEST(future_first_completion_wins_and_reports_outcome)
{
	struct weft_future *f = NULL;

	/* No runtime: nothing to make it on. */
	ck_assert_int_eq(weft_future_make(&f), -ESRCH);
	T_RUN(outcomes_main, NULL, NULL, NULL);
}
END_TEST

/*
 * Done callbacks
 */

struct cbs {
	struct weft_future *f;
	struct weft_future *all;	/* set by the last callback */
	atomic_int n;
	int order[8];
	struct weft_task *setter;
	atomic_int inside;		/* 1 while set()/on_done() runs */
	atomic_int bad_frame;
	atomic_int bad_task;
	atomic_int off_worker;
};

static void
cb_record(struct weft_future *f, void *arg)
{
	struct cbs *c = (struct cbs *)((char *)arg - ((intptr_t)arg & 7));
	int tag = (int)((intptr_t)arg & 7);
	int i = atomic_fetch_add(&c->n, 1);

	(void)f;
	if (i < 8)
		c->order[i] = tag;
	if (atomic_load(&c->inside))
		atomic_fetch_add(&c->bad_frame, 1);
	if (weft_self() == c->setter)
		atomic_fetch_add(&c->bad_task, 1);
	if (weft_worker_id() < 0)
		atomic_fetch_add(&c->off_worker, 1);
	if (tag == 4)
		weft_future_set(c->all, NULL);
}

static void *
cbs_main(void *arg)
{
	struct cbs *c = arg;

	T_EXPECT_INT(weft_future_make(&c->f), ==, 0);
	T_EXPECT_INT(weft_future_make(&c->all), ==, 0);
	c->setter = weft_self();
	T_EXPECT_INT(weft_future_on_done(c->f, cb_record, (char *)c + 1),
		     ==, 0);
	T_EXPECT_INT(weft_future_on_done(c->f, cb_record, (char *)c + 2),
		     ==, 0);
	T_EXPECT_INT(weft_future_on_done(NULL, cb_record, c), ==, -EINVAL);
	atomic_store(&c->inside, 1);
	T_EXPECT_INT(weft_future_set(c->f, NULL), ==, 0);
	atomic_store(&c->inside, 0);
	/* One worker: the callbacks cannot have run before we park. */
	T_EXPECT_INT(atomic_load(&c->n), ==, 0);
	/* Registered after completion: still runs, after the first two. */
	atomic_store(&c->inside, 1);
	T_EXPECT_INT(weft_future_on_done(c->f, cb_record, (char *)c + 3),
		     ==, 0);
	T_EXPECT_INT(weft_future_on_done(c->f, cb_record, (char *)c + 4),
		     ==, 0);
	atomic_store(&c->inside, 0);
	T_EXPECT_INT(weft_future_wait(c->all, NULL,
				      weft_now() + t_stall_ns()), ==, 0);
	weft_future_release(c->f);
	weft_future_release(c->all);
	return NULL;
}

START_TEST(on_done_runs_in_order_and_after_done_on_a_worker)
{
	struct weft_config cfg = t_config(1);
	static struct cbs c __attribute__((aligned(8)));

	memset(&c, 0, sizeof(c));
	T_RUN(cbs_main, &c, &cfg, NULL);
	ck_assert_int_eq(atomic_load(&c.n), 4);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(c.order[i] == i + 1, "callback %d ran as %d",
			      c.order[i], i + 1);
	ck_assert_int_eq(atomic_load(&c.bad_frame), 0);
	ck_assert_int_eq(atomic_load(&c.bad_task), 0);
	ck_assert_int_eq(atomic_load(&c.off_worker), 0);
}
END_TEST

/*
 * Foreign threads
 */

struct foreign {
	struct weft_future *f;
	struct weft_future *cb_done;
	atomic_int cb_on_worker;
	atomic_int thread_waiting;
	int thread_ret;
	void *thread_val;
};

static void *
foreign_completer(void *arg)
{
	struct foreign *fo = arg;

	/* The task parks before this thread starts (see foreign_main). */
	if (weft_future_set(fo->f, t_ptr(99)) != 0)
		t_failf(__FILE__, __LINE__, "foreign set failed");
	return NULL;
}

static void
foreign_cb(struct weft_future *f, void *arg)
{
	struct foreign *fo = arg;
	void *v = NULL;

	if (weft_worker_id() >= 0 && weft_future_result(f, &v) == 0 &&
	    v == t_ptr(99))
		atomic_store(&fo->cb_on_worker, 1);
	weft_future_set(fo->cb_done, NULL);
}

static void *
foreign_main(void *arg)
{
	struct foreign *fo = arg;
	pthread_t th;
	void *v = NULL;

	T_EXPECT_INT(weft_future_make(&fo->f), ==, 0);
	T_EXPECT_INT(weft_future_make(&fo->cb_done), ==, 0);
	T_EXPECT_INT(weft_future_on_done(fo->f, foreign_cb, fo), ==, 0);
	T_EXPECT_INT(pthread_create(&th, NULL, foreign_completer, fo), ==, 0);
	T_EXPECT_INT(weft_future_wait(fo->f, &v, weft_now() + t_stall_ns()),
		     ==, 0);
	T_EXPECT(v == t_ptr(99), "value from the foreign thread: %p", v);
	T_EXPECT_INT(weft_future_wait(fo->cb_done, NULL,
				      weft_now() + t_stall_ns()), ==, 0);
	T_EXPECT_INT(pthread_join(th, NULL), ==, 0);
	weft_future_release(fo->f);
	weft_future_release(fo->cb_done);
	return NULL;
}

START_TEST(foreign_thread_completes_future_and_callback_runs_on_worker)
{
	struct foreign fo;

	memset(&fo, 0, sizeof(fo));
	T_RUN(foreign_main, &fo, NULL, NULL);
	ck_assert_int_eq(atomic_load(&fo.cb_on_worker), 1);
}
END_TEST

static void *
plain_waiter(void *arg)
{
	struct foreign *fo = arg;

	/* A deadline first: it must time out on a pending future. */
	if (weft_future_wait(fo->f, NULL, weft_now() + WEFT_MSEC) !=
	    -ETIMEDOUT)
		t_failf(__FILE__, __LINE__, "plain wait did not time out");
	atomic_store(&fo->thread_waiting, 1);
	fo->thread_ret = weft_future_wait(fo->f, &fo->thread_val,
					  weft_now() + t_stall_ns());
	return NULL;
}

static void *
plain_main(void *arg)
{
	struct foreign *fo = arg;
	pthread_t th;

	T_EXPECT_INT(weft_future_make(&fo->f), ==, 0);
	T_EXPECT_INT(pthread_create(&th, NULL, plain_waiter, fo), ==, 0);
	T_WAIT(atomic_load(&fo->thread_waiting), "the thread to wait");
	T_EXPECT_INT(weft_future_set(fo->f, t_ptr(3)), ==, 0);
	T_EXPECT_INT(pthread_join(th, NULL), ==, 0);
	weft_future_release(fo->f);
	return NULL;
}

START_TEST(plain_thread_waits_for_future)
{
	struct foreign fo;

	memset(&fo, 0, sizeof(fo));
	T_RUN(plain_main, &fo, NULL, NULL);
	ck_assert_int_eq(fo.thread_ret, 0);
	ck_assert_ptr_eq(fo.thread_val, t_ptr(3));
}
END_TEST

/*
 * wait_any, wait_all
 */

struct setter {
	struct weft_future *f;
	struct weft_future *go;
};

static void *
set_after_gate(void *arg)
{
	struct setter *s = arg;

	if (s->go)
		weft_future_wait(s->go, NULL, WEFT_DEADLINE_NONE);
	weft_future_set(s->f, t_ptr(1));
	return NULL;
}

static void *
any_main(void *arg)
{
	struct weft_future *fs[12];
	struct setter st;
	struct weft_task *t;
	int i;

	(void)arg;
	for (i = 0; i < 12; i++)
		T_EXPECT_INT(weft_future_make(&fs[i]), ==, 0);
	T_EXPECT_INT(weft_wait_any(fs, 0, WEFT_DEADLINE_NONE), ==, -EINVAL);
	T_EXPECT_INT(weft_wait_any(fs, 3, weft_now() + WEFT_MSEC), ==,
		     -ETIMEDOUT);
	/* The one a task completes while we wait (10 > the stack records). */
	st.f = fs[7];
	st.go = NULL;
	T_EXPECT_INT(weft_spawn(&t, set_after_gate, &st, NULL), ==, 0);
	T_EXPECT_INT(weft_wait_any(fs, 10, weft_now() + t_stall_ns()), ==, 7);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	/* Several complete already: the lowest index. */
	T_EXPECT_INT(weft_future_set(fs[2], NULL), ==, 0);
	T_EXPECT_INT(weft_wait_any(fs, 10, WEFT_DEADLINE_NONE), ==, 2);
	T_EXPECT_INT(weft_wait_any(fs + 3, 2, weft_now() + WEFT_MSEC), ==,
		     -ETIMEDOUT);
	for (i = 0; i < 12; i++)
		weft_future_release(fs[i]);
	return NULL;
}

START_TEST(wait_any_returns_the_first_to_complete)
{
	T_RUN(any_main, NULL, NULL, NULL);
}
END_TEST

static void *
all_main(void *arg)
{
	struct weft_future *fs[3];
	struct setter st;
	struct weft_task *t;

	(void)arg;
	for (int i = 0; i < 3; i++)
		T_EXPECT_INT(weft_future_make(&fs[i]), ==, 0);
	T_EXPECT_INT(weft_future_set(fs[0], NULL), ==, 0);
	T_EXPECT_INT(weft_future_fail(fs[2], -EIO), ==, 0);
	T_EXPECT_INT(weft_wait_all(fs, 3, weft_now() + 2 * WEFT_MSEC), ==,
		     -ETIMEDOUT);
	T_EXPECT_INT(weft_future_state(fs[1]), ==, WEFT_FUTURE_PENDING);
	st.f = fs[1];
	st.go = NULL;
	T_EXPECT_INT(weft_spawn(&t, set_after_gate, &st, NULL), ==, 0);
	T_EXPECT_INT(weft_wait_all(fs, 3, weft_now() + t_stall_ns()), ==, 0);
	T_EXPECT_INT(weft_future_result(fs[1], NULL), ==, 0);
	T_EXPECT_INT(weft_future_result(fs[2], NULL), ==, -EIO);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	for (int i = 0; i < 3; i++)
		weft_future_release(fs[i]);
	return NULL;
}

START_TEST(wait_all_times_out_then_gathers)
{
	T_RUN(all_main, NULL, NULL, NULL);
}
END_TEST

/*
 * join_for, cancellation
 */

struct sleeper {
	atomic_int ret;
	atomic_int started;
};

static void *
sleep_long(void *arg)
{
	struct sleeper *s = arg;

	atomic_store(&s->started, 1);
	atomic_store(&s->ret, weft_sleep(1000 * WEFT_SEC));
	return t_ptr(11);
}

static void *
quick_value(void *arg)
{
	(void)arg;
	return t_ptr(12);
}

static void *
join_for_main(void *arg)
{
	struct sleeper s = { 1, 0 };
	struct weft_task *t;
	void *res = NULL;

	(void)arg;
	T_EXPECT_INT(weft_spawn(&t, sleep_long, &s, NULL), ==, 0);
	T_EXPECT_INT(weft_join_for(t, NULL, WEFT_DEADLINE_NONE, 0x8), ==,
		     -EINVAL);
	/* Without the flag: it times out and the task runs on. */
	T_EXPECT_INT(weft_join_for(t, NULL, weft_now() + WEFT_MSEC, 0), ==,
		     -ETIMEDOUT);
	T_EXPECT(!weft_task_is_cancelled(t), "cancelled without the flag");
	/* With it: cancelled, awaited, handle released. */
	T_EXPECT_INT(weft_join_for(t, &res, weft_now() + WEFT_MSEC,
				   WEFT_JOIN_CANCEL), ==, -ETIMEDOUT);
	T_EXPECT_INT(atomic_load(&s.ret), ==, -ECANCELED);
	T_EXPECT(res == NULL, "result written on timeout");

	/* A task that finishes in time: its value, nothing cancelled. */
	T_EXPECT_INT(weft_spawn(&t, quick_value, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_join_for(t, &res, weft_now() + t_stall_ns(),
				   WEFT_JOIN_CANCEL), ==, 0);
	T_EXPECT(res == t_ptr(12), "join_for result %p", res);

	/* A cancelled caller: the task is still cancelled and awaited. */
	s.started = 0;
	atomic_store(&s.ret, 0);
	T_EXPECT_INT(weft_spawn(&t, sleep_long, &s, NULL), ==, 0);
	while (!atomic_load(&s.started))
		weft_yield();
	T_EXPECT_INT(weft_cancel(weft_self()), ==, 0);
	T_EXPECT_INT(weft_join_for(t, &res, WEFT_DEADLINE_NONE,
				   WEFT_JOIN_CANCEL), ==, -ECANCELED);
	T_EXPECT_INT(atomic_load(&s.ret), ==, -ECANCELED);
	T_EXPECT(weft_task_is_cancelled(weft_self()), "the caller uncancelled");
	return NULL;
}

START_TEST(join_for_cancels_on_timeout_and_waits)
{
	T_RUN(join_for_main, NULL, NULL, NULL);
}
END_TEST

struct cwait {
	struct weft_future *f;
	atomic_int ret;
};

static void *
cwait_child(void *arg)
{
	struct cwait *c = arg;

	atomic_store(&c->ret, weft_future_wait(c->f, NULL,
					       WEFT_DEADLINE_NONE));
	return NULL;
}

static void *
cwait_any_child(void *arg)
{
	struct cwait *c = arg;
	struct weft_future *fs[2] = { c->f, c->f };

	atomic_store(&c->ret, weft_wait_any(fs, 2, WEFT_DEADLINE_NONE));
	return NULL;
}

static void *
cwait_main(void *arg)
{
	struct cwait c = { NULL, 1 };
	struct weft_task *t;

	(void)arg;
	T_EXPECT_INT(weft_future_make(&c.f), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, cwait_child, &c, NULL), ==, 0);
	wait_parked(t);
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(atomic_load(&c.ret), ==, -ECANCELED);
	T_EXPECT_INT(weft_future_state(c.f), ==, WEFT_FUTURE_PENDING);

	atomic_store(&c.ret, 1);
	T_EXPECT_INT(weft_spawn(&t, cwait_any_child, &c, NULL), ==, 0);
	wait_parked(t);
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(atomic_load(&c.ret), ==, -ECANCELED);
	/* The records are gone: completing now wakes nobody stale. */
	T_EXPECT_INT(weft_future_set(c.f, NULL), ==, 0);
	weft_future_release(c.f);
	return NULL;
}

START_TEST(cancel_while_waiting_on_future_returns_ecanceled)
{
	T_RUN(cwait_main, NULL, NULL, NULL);
}
END_TEST

/* Many completers racing many waiters; the records must all unlink. */
#if defined(WEFT_TSAN)
#define T_RACE 200
#else
#define T_RACE 2000
#endif

struct race {
	struct weft_future *fs[4];
	atomic_int done;
};

static void *
race_waiter(void *arg)
{
	struct race *r = arg;
	int i = weft_wait_any(r->fs, 4, weft_now() + t_stall_ns());

	T_EXPECT(i >= 0 && i < 4, "wait_any returned %d", i);
	T_EXPECT_INT(weft_wait_all(r->fs, 4, weft_now() + t_stall_ns()), ==,
		     0);
	atomic_fetch_add(&r->done, 1);
	return NULL;
}

static void *
race_setter(void *arg)
{
	struct weft_future *f = arg;

	weft_future_set(f, NULL);
	return NULL;
}

static void *
race_main(void *arg)
{
	(void)arg;
	for (int round = 0; round < T_RACE / 20; round++) {
		struct race r;
		struct weft_task *w[20];
		struct weft_task *s[4];

		atomic_store(&r.done, 0);
		for (int i = 0; i < 4; i++)
			T_EXPECT_INT(weft_future_make(&r.fs[i]), ==, 0);
		for (int i = 0; i < 20; i++)
			T_EXPECT_INT(weft_spawn(&w[i], race_waiter, &r, NULL),
				     ==, 0);
		for (int i = 0; i < 4; i++)
			T_EXPECT_INT(weft_spawn(&s[i], race_setter, r.fs[i],
						NULL), ==, 0);
		for (int i = 0; i < 20; i++)
			weft_join(w[i], NULL, WEFT_DEADLINE_NONE);
		for (int i = 0; i < 4; i++)
			weft_join(s[i], NULL, WEFT_DEADLINE_NONE);
		T_EXPECT_INT(atomic_load(&r.done), ==, 20);
		for (int i = 0; i < 4; i++)
			weft_future_release(r.fs[i]);
	}
	return NULL;
}

START_TEST(completions_race_waiters_on_several_workers)
{
	struct weft_config cfg = t_config(4);

	T_RUN(race_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * weft_run and stragglers
 */

struct strag {
	struct weft_future *never;
	atomic_int cancelled;
	atomic_int late_ok;
	atomic_int parked;
};

static void *
late_child(void *arg)
{
	(void)arg;
	return NULL;
}

static void *
straggler(void *arg)
{
	struct strag *s = arg;
	struct weft_task *late;

	atomic_fetch_add(&s->parked, 1);
	if (weft_future_wait(s->never, NULL, WEFT_DEADLINE_NONE) ==
	    -ECANCELED)
		atomic_fetch_add(&s->cancelled, 1);
	/* Spawned after main returned: starts cancelled, never runs. */
	if (weft_spawn(&late, late_child, NULL, NULL) == 0) {
		if (weft_task_state(late) == WEFT_CANCELLED &&
		    weft_join(late, NULL, WEFT_DEADLINE_NONE) == -ECHILD)
			atomic_fetch_add(&s->late_ok, 1);
	}
	return NULL;
}

static void *
strag_main(void *arg)
{
	struct strag *s = arg;

	T_EXPECT_INT(weft_future_make(&s->never), ==, 0);
	for (int i = 0; i < 10; i++)
		T_EXPECT_INT(weft_spawn(NULL, straggler, s, NULL), ==, 0);
	T_WAIT(atomic_load(&s->parked) == 10, "the stragglers to start");
	/* Return with ten tasks parked forever (and one never started). */
	T_EXPECT_INT(weft_spawn(NULL, straggler, s, NULL), ==, 0);
	return NULL;
}

START_TEST(run_cancels_and_awaits_tasks_left_when_main_returns)
{
	struct strag s;

	memset(&s, 0, sizeof(s));
	T_RUN(strag_main, &s, NULL, NULL);
	ck_assert_int_eq(atomic_load(&s.cancelled), atomic_load(&s.parked));
	ck_assert_int_ge(atomic_load(&s.cancelled), 10);
	ck_assert_int_eq(atomic_load(&s.late_ok), atomic_load(&s.parked));
	weft_future_release(s.never);
}
END_TEST

/* Completed with no runtime: the callback runs in the next run. */
static atomic_int orphan_ran;
static atomic_int orphan_on_worker;

static void
orphan_cb(struct weft_future *f, void *arg)
{
	(void)f;
	(void)arg;
	if (weft_worker_id() >= 0)
		atomic_store(&orphan_on_worker, 1);
	atomic_store(&orphan_ran, 1);
}

static void *
orphan_make_main(void *arg)
{
	struct weft_future **out = arg;

	T_EXPECT_INT(weft_future_make(out), ==, 0);
	T_EXPECT_INT(weft_future_on_done(*out, orphan_cb, NULL), ==, 0);
	return NULL;
}

static void *
orphan_adopt_main(void *arg)
{
	(void)arg;
	T_WAIT(atomic_load(&orphan_ran), "the orphaned callback");
	return NULL;
}

START_TEST(callbacks_of_future_completed_without_runtime_run_next_run)
{
	struct weft_future *f = NULL;

	T_RUN(orphan_make_main, &f, NULL, NULL);
	ck_assert_int_eq(weft_future_set(f, NULL), 0);
	ck_assert_int_eq(atomic_load(&orphan_ran), 0);
	T_RUN(orphan_adopt_main, NULL, NULL, NULL);
	ck_assert_int_eq(atomic_load(&orphan_on_worker), 1);
	weft_future_release(f);
}
END_TEST

static Suite *
future_suite(void)
{
	Suite *s = suite_create("runtime/future");
	TCase *tc;

	tc = t_tcase(s, "states", T_TIMEOUT);
	tcase_add_test(tc, task_state_each_transition_is_observed);
	tcase_add_test(tc, future_first_completion_wins_and_reports_outcome);

	tc = t_tcase(s, "callbacks", T_TIMEOUT);
	tcase_add_test(tc, on_done_runs_in_order_and_after_done_on_a_worker);
	tcase_add_test(tc,
		       foreign_thread_completes_future_and_callback_runs_on_worker);
	tcase_add_test(tc,
		       callbacks_of_future_completed_without_runtime_run_next_run);

	tc = t_tcase(s, "waiting", T_TIMEOUT);
	tcase_add_test(tc, plain_thread_waits_for_future);
	tcase_add_test(tc, wait_any_returns_the_first_to_complete);
	tcase_add_test(tc, wait_all_times_out_then_gathers);
	tcase_add_test(tc, join_for_cancels_on_timeout_and_waits);
	tcase_add_test(tc, cancel_while_waiting_on_future_returns_ecanceled);
	tcase_add_test(tc, completions_race_waiters_on_several_workers);

	tc = t_tcase(s, "run", T_TIMEOUT);
	tcase_add_test(tc, run_cancels_and_awaits_tasks_left_when_main_returns);

	return s;
}

int
main(void)
{
	return t_main(future_suite());
}

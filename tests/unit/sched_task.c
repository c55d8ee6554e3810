/* SPDX-License-Identifier: MIT */
/*
 * Tasks: spawn, join, detach, cancel, identity, state and calling context.
 */
#include <pthread.h>

#include "harness.h"

/* A task that returns its argument (an index). */
static void *
ret_arg(void *arg)
{
	return arg;
}

/* A task that sets *(atomic_int *)arg and returns 0x77. */
static void *
set_flag(void *arg)
{
	atomic_store((atomic_int *)arg, 1);
	return t_ptr(0x77);
}

/*
 * A task held at a gate: it says it started, then polls until released.
 * It records what it sees of itself.
 */
struct gate {
	atomic_int started;
	atomic_int release;
	struct weft_task *self;
	uint64_t id;
	char name[32];
	enum weft_task_state state;
};

static void *
gated(void *arg)
{
	struct gate *g = arg;

	g->self = weft_self();
	g->id = weft_task_id(g->self);
	g->state = weft_task_state(g->self);
	atomic_store(&g->started, 1);
	T_WAIT(atomic_load(&g->release), "the gate to open");
	snprintf(g->name, sizeof(g->name), "%s", weft_task_name(weft_self()));
	return t_ptr(0x5eed);
}

/* A task that parks in a one-hour sleep and returns what weft_sleep said. */
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
 * spawn_join
 */

struct join_value {
	int spawn;
	int join;
	void *result;
};

static void *
join_value_main(void *arg)
{
	struct join_value *jv = arg;
	struct weft_task *t = NULL;

	jv->spawn = weft_spawn(&t, ret_arg, t_ptr(0xabcdef), NULL);
	if (jv->spawn != 0)
		return NULL;
	jv->join = weft_join(t, &jv->result, WEFT_DEADLINE_NONE);
	return t_ptr(42);
}

START_TEST(join_returns_task_value)
{
	struct join_value jv = {-1, -1, NULL};
	void *res = NULL;

	T_RUN(join_value_main, &jv, NULL, &res);
	ck_assert_int_eq(jv.spawn, 0);
	ck_assert_int_eq(jv.join, 0);
	ck_assert_ptr_eq(jv.result, t_ptr(0xabcdef));
	ck_assert_ptr_eq(res, t_ptr(42));
}
END_TEST

static void *
join_null_result_main(void *arg)
{
	struct weft_task *t;
	int r;

	r = weft_spawn(&t, ret_arg, t_ptr(7), NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r == 0)
		T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(join_with_null_result_releases_handle)
{
	T_RUN(join_null_result_main, NULL, NULL, NULL);
}
END_TEST

static void *
join_finished_main(void *arg)
{
	struct weft_task *t;
	void *res = NULL;
	int r;

	r = weft_spawn(&t, ret_arg, t_ptr(99), NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(weft_task_state(t) == WEFT_DONE, "the task to finish");
	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 99);
	return NULL;
}

START_TEST(join_of_finished_task_returns_value)
{
	T_RUN(join_finished_main, NULL, NULL, NULL);
}
END_TEST

/* Spawn tasks lo..hi-1 (each returns its index), join them all in order. */
struct range {
	long lo;
	long hi;
	uint64_t sum;
	long joined;
	long wrong; /* joins whose result was not the index */
};

static void
spawn_join_range(struct range *rg)
{
	long n = rg->hi - rg->lo;
	struct weft_task **t;
	long i;
	long made;
	int r;

	t = calloc((size_t)n, sizeof(*t));
	T_EXPECT(t != NULL, "calloc(%ld handles) failed", n);
	if (!t)
		return;
	for (made = 0; made < n; made++) {
		r = weft_spawn(&t[made], ret_arg, t_ptr(rg->lo + made), NULL);
		if (r != 0) {
			t_failf(__FILE__, __LINE__,
				"weft_spawn #%ld returned %d", rg->lo + made,
				r);
			break;
		}
	}
	for (i = 0; i < made; i++) {
		void *res = NULL;

		r = weft_join(t[i], &res, WEFT_DEADLINE_NONE);
		if (r != 0) {
			t_failf(__FILE__, __LINE__,
				"weft_join #%ld returned %d", rg->lo + i, r);
			continue;
		}
		rg->joined++;
		rg->sum += (uint64_t)t_int(res);
		if (t_int(res) != rg->lo + i)
			rg->wrong++;
	}
	free(t);
}

static void *
range_task(void *arg)
{
	spawn_join_range(arg);
	return NULL;
}

struct many {
	long n;
	int spawners;
	struct range rg[8];
};

static void *
many_main(void *arg)
{
	struct many *m = arg;
	struct weft_task *sp[8];
	int i;
	int r;

	if (m->spawners == 1) {
		m->rg[0].lo = 0;
		m->rg[0].hi = m->n;
		spawn_join_range(&m->rg[0]);
		return NULL;
	}
	for (i = 0; i < m->spawners; i++) {
		m->rg[i].lo = m->n * i / m->spawners;
		m->rg[i].hi = m->n * (i + 1) / m->spawners;
		r = weft_spawn(&sp[i], range_task, &m->rg[i], NULL);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			sp[i] = NULL;
	}
	for (i = 0; i < m->spawners; i++)
		if (sp[i])
			T_EXPECT_INT(weft_join(sp[i], NULL, WEFT_DEADLINE_NONE),
				     ==, 0);
	return NULL;
}

static void
check_many(struct many *m)
{
	struct weft_stats s;
	uint64_t want = (uint64_t)m->n * (uint64_t)(m->n - 1) / 2;
	uint64_t sum = 0;
	long joined = 0;
	long wrong = 0;
	int i;

	for (i = 0; i < m->spawners; i++) {
		sum += m->rg[i].sum;
		joined += m->rg[i].joined;
		wrong += m->rg[i].wrong;
	}
	ck_assert_msg(joined == m->n, "joined %ld of %ld tasks", joined, m->n);
	ck_assert_msg(wrong == 0, "%ld joins returned another task's value",
		      wrong);
	ck_assert_msg(sum == want, "sum of results %" PRIu64 ", want %" PRIu64,
		      sum, want);
	ck_assert_int_eq(weft_stats(&s), 0);
	ck_assert_msg(s.tasks_spawned >= (uint64_t)m->n,
		      "tasks_spawned %" PRIu64 " < %ld", s.tasks_spawned, m->n);
}

START_TEST(million_tasks_from_one_spawner_sum_correctly)
{
	struct many m = {.n = T_MILLION, .spawners = 1};

	T_RUN(many_main, &m, NULL, NULL);
	check_many(&m);
}
END_TEST

START_TEST(million_tasks_from_several_spawners_sum_correctly)
{
	struct many m = {.n = T_MILLION, .spawners = 8};

	T_RUN(many_main, &m, NULL, NULL);
	check_many(&m);
}
END_TEST

/* fib(n) by spawning fib(n-1) and fib(n-2) and joining both. */
static void *
fib_task(void *arg)
{
	long n = t_int(arg);
	struct weft_task *a;
	struct weft_task *b;
	void *ra = NULL;
	void *rb = NULL;
	int r;

	if (n < 2)
		return arg;
	r = weft_spawn(&a, fib_task, t_ptr(n - 1), NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return t_ptr(0);
	r = weft_spawn(&b, fib_task, t_ptr(n - 2), NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r == 0)
		T_EXPECT_INT(weft_join(b, &rb, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_join(a, &ra, WEFT_DEADLINE_NONE), ==, 0);
	return t_ptr(t_int(ra) + t_int(rb));
}

START_TEST(recursive_spawn_tree_computes_fibonacci)
{
#if defined(WEFT_TSAN)
	long n = 15, want = 610; /* 1,973 tasks */
#else
	long n = 20, want = 6765; /* 21,891 tasks */
#endif
	void *res = NULL;

	T_RUN(fib_task, t_ptr(n), NULL, &res);
	ck_assert_int_eq(t_int(res), want);
}
END_TEST

struct join_timeout {
	struct gate g;
	int r_past;
	int r_zero;
	int r_started;
	enum weft_task_state state;
	int r_final;
	void *result;
};

static void *
join_timeout_main(void *arg)
{
	struct join_timeout *jt = arg;
	struct weft_task *t;
	int r;

	r = weft_spawn(&t, gated, &jt->g, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	jt->r_past = weft_join(t, &jt->result, weft_now() - 1);
	jt->r_zero = weft_join(t, &jt->result, 0);
	T_WAIT(atomic_load(&jt->g.started), "the task to start");
	jt->r_started = weft_join(t, &jt->result, weft_now() - 1);
	jt->state = weft_task_state(t);
	atomic_store(&jt->g.release, 1);
	jt->result = NULL;
	jt->r_final = weft_join(t, &jt->result, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(join_past_deadline_returns_etimedout_and_task_keeps_running)
{
	struct join_timeout jt;

	memset(&jt, 0, sizeof(jt));
	T_RUN(join_timeout_main, &jt, NULL, NULL);
	ck_assert_msg(jt.r_past == -ETIMEDOUT,
		      "join(now - 1) before start returned %d", jt.r_past);
	ck_assert_msg(jt.r_zero == -ETIMEDOUT, "join(deadline 0) returned %d",
		      jt.r_zero);
	ck_assert_msg(jt.r_started == -ETIMEDOUT,
		      "join(now - 1) of a running task returned %d",
		      jt.r_started);
	ck_assert_msg(jt.state == WEFT_RUNNING || jt.state == WEFT_SUSPENDED,
		      "state after timed-out joins is %d", (int)jt.state);
	ck_assert_msg(jt.r_final == 0, "final join returned %d", jt.r_final);
	ck_assert_ptr_eq(jt.result, t_ptr(0x5eed));
}
END_TEST

static void *
join_never_early_main(void *arg)
{
	struct gate *g = arg;
	struct weft_task *t;
	int64_t dl;
	int64_t now;
	int i;
	int r;

	r = weft_spawn(&t, gated, g, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	for (i = 1; i <= 5; i++) {
		dl = weft_now() + i * WEFT_MSEC;
		r = weft_join(t, NULL, dl);
		now = weft_now();
		T_EXPECT_INT(r, ==, -ETIMEDOUT);
		T_EXPECT(now >= dl,
			 "join(+%d ms) returned %" PRId64
			 " ns before its deadline",
			 i, dl - now);
	}
	atomic_store(&g->release, 1);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(join_deadline_never_returns_early)
{
	struct gate g;

	memset(&g, 0, sizeof(g));
	T_RUN(join_never_early_main, &g, NULL, NULL);
}
END_TEST

struct join_self {
	int r_main;
	int r_main_dl;
	int r_task;
};

static void *
join_self_task(void *arg)
{
	struct join_self *js = arg;

	js->r_task = weft_join(weft_self(), NULL, WEFT_DEADLINE_NONE);
	return NULL;
}

static void *
join_self_main(void *arg)
{
	struct join_self *js = arg;
	struct weft_task *t;
	int r;

	js->r_main = weft_join(weft_self(), NULL, WEFT_DEADLINE_NONE);
	js->r_main_dl = weft_join(weft_self(), NULL, weft_now() + WEFT_SEC);
	r = weft_spawn(&t, join_self_task, js, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r == 0)
		T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(join_self_returns_edeadlk)
{
	struct join_self js = {1, 1, 1};

	T_RUN(join_self_main, &js, NULL, NULL);
	ck_assert_int_eq(js.r_main, -EDEADLK);
	ck_assert_int_eq(js.r_main_dl, -EDEADLK);
	ck_assert_int_eq(js.r_task, -EDEADLK);
}
END_TEST

/*
 * detach
 */

struct detach {
	atomic_int done;
	int r_detach;
};

static void *
yield_then_set(void *arg)
{
	struct detach *d = arg;
	int i;

	for (i = 0; i < 10; i++)
		T_EXPECT_INT(weft_yield(), ==, 0);
	atomic_store(&d->done, 1);
	return NULL;
}

static void *
detach_main(void *arg)
{
	struct detach *d = arg;
	struct weft_task *t;
	int r;

	r = weft_spawn(&t, yield_then_set, d, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	d->r_detach = weft_detach(t);
	T_WAIT(atomic_load(&d->done), "the detached task to finish");
	return NULL;
}

START_TEST(detached_task_runs_to_completion)
{
	struct detach d = {0, 1};

	T_RUN(detach_main, &d, NULL, NULL);
	ck_assert_int_eq(d.r_detach, 0);
	ck_assert_int_eq(atomic_load(&d.done), 1);
}
END_TEST

static void *
spawn_no_handle_main(void *arg)
{
	T_EXPECT_INT(weft_spawn(NULL, set_flag, arg, NULL), ==, 0);
	/* Main's return would cancel it if it had not run yet. */
	T_WAIT(atomic_load((atomic_int *)arg) == 1, "the detached task");
	return NULL;
}

START_TEST(spawn_without_handle_runs_detached)
{
	atomic_int ran = 0;

	/* weft_run() returns only after the detached task has finished. */
	T_RUN(spawn_no_handle_main, &ran, NULL, NULL);
	ck_assert_int_eq(atomic_load(&ran), 1);
}
END_TEST

static void *
detach_finished_main(void *arg)
{
	struct weft_task *t;
	int r;

	r = weft_spawn(&t, set_flag, arg, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(weft_task_state(t) == WEFT_DONE, "the task to finish");
	T_EXPECT_INT(weft_detach(t), ==, 0);
	return NULL;
}

START_TEST(detach_of_finished_task_frees_it)
{
	atomic_int ran = 0;

	T_RUN(detach_finished_main, &ran, NULL, NULL);
	ck_assert_int_eq(atomic_load(&ran), 1);
}
END_TEST

/*
 * cancel
 */

struct cancel_sleep {
	struct sleeper s;
	bool cancelled_before;
	int r_cancel;
	bool cancelled_after;
	int r_join;
	void *result;
};

static void *
cancel_sleep_main(void *arg)
{
	struct cancel_sleep *cs = arg;
	struct weft_task *t;
	int r;

	r = weft_spawn(&t, sleep_an_hour, &cs->s, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(atomic_load(&cs->s.started), "the task to start");
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the task to park");
	cs->cancelled_before = weft_task_is_cancelled(t);
	cs->r_cancel = weft_cancel(t);
	cs->cancelled_after = weft_task_is_cancelled(t);
	cs->r_join = weft_join(t, &cs->result, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(cancel_sleeping_task_makes_its_sleep_return_ecanceled)
{
	struct cancel_sleep cs;

	memset(&cs, 0, sizeof(cs));
	cs.r_cancel = cs.r_join = 1;
	T_RUN(cancel_sleep_main, &cs, NULL, NULL);
	ck_assert_msg(!cs.cancelled_before, "cancelled before weft_cancel()");
	ck_assert_int_eq(cs.r_cancel, 0);
	ck_assert_msg(cs.cancelled_after, "not cancelled after weft_cancel()");
	ck_assert_msg(cs.r_join == 0, "join returned %d", cs.r_join);
	ck_assert_msg(t_int(cs.result) == -ECANCELED,
		      "the cancelled weft_sleep() returned %ld, want %d",
		      (long)t_int(cs.result), -ECANCELED);
}
END_TEST

struct sticky {
	struct sleeper s;
	int r_sleep;
	int r_sleep_again;
	int r_sleep_zero;
	int r_until_past;
	int r_until_future;
	int r_yield;
	int r_yield_again;
	int r_spawn;
	int r_join;
	int r_join_deadline;
	int r_detach;
	int r_join_past;	/* join of a live task, deadline already due */
	struct sleeper hour;
	int short_sleeps_not_cancelled;
	bool still_cancelled;
};

static void *
yield_a_while(void *arg)
{
	int i;

	for (i = 0; i < 100; i++)
		weft_yield();
	return NULL;
}

static void *
sticky_task(void *arg)
{
	struct sticky *st = arg;
	struct weft_task *child;

	atomic_store(&st->s.started, 1);
	st->r_sleep = weft_sleep(3600 * WEFT_SEC);
	st->r_sleep_again = weft_sleep(WEFT_MSEC);
	st->r_sleep_zero = weft_sleep(0);
	st->r_until_past = weft_sleep_until(weft_now() - 1);
	st->r_until_future = weft_sleep_until(weft_now() + WEFT_MSEC);
	st->r_yield = weft_yield();
	st->r_yield_again = weft_yield();
	/* Spawning is not a cancellation point; joining is. */
	st->r_spawn = weft_spawn(&child, yield_a_while, NULL, NULL);
	if (st->r_spawn == 0) {
		st->r_join = weft_join(child, NULL, WEFT_DEADLINE_NONE);
		st->r_join_deadline =
			weft_join(child, NULL, weft_now() + WEFT_SEC);
		/* The handle survived both failed joins. */
		st->r_detach = weft_detach(child);
	}
	/*
	 * Cancellation beats a deadline that is already due, and a timer
	 * that could fire on another worker (regress: the deadline used to
	 * be claimed before the flag was looked at).
	 */
	/* st outlives the run; the detached child may outlive this task. */
	if (weft_spawn(&child, sleep_an_hour, &st->hour, NULL) == 0) {
		st->r_join_past = weft_join(child, NULL, weft_now());
		for (int i = 0; i < 200; i++)
			if (weft_sleep(WEFT_USEC) != -ECANCELED)
				st->short_sleeps_not_cancelled++;
		weft_cancel(child);
		weft_detach(child);
	}
	st->still_cancelled = weft_task_is_cancelled(weft_self());
	return t_ptr(0x57);
}

static void *
sticky_main(void *arg)
{
	struct sticky *st = arg;
	struct weft_task *t;
	void *res = NULL;
	int r;

	r = weft_spawn(&t, sticky_task, st, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the task to park");
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 0x57);
	return NULL;
}

START_TEST(cancellation_is_sticky)
{
	struct sticky st;

	memset(&st, 0, sizeof(st));
	T_RUN(sticky_main, &st, NULL, NULL);
	ck_assert_msg(st.r_sleep == -ECANCELED, "interrupted sleep returned %d",
		      st.r_sleep);
	ck_assert_msg(st.r_sleep_again == -ECANCELED,
		      "later weft_sleep(1 ms) returned %d", st.r_sleep_again);
	ck_assert_msg(st.r_sleep_zero == -ECANCELED,
		      "later weft_sleep(0) returned %d", st.r_sleep_zero);
	ck_assert_msg(st.r_until_past == -ECANCELED,
		      "later weft_sleep_until(past) returned %d",
		      st.r_until_past);
	ck_assert_msg(st.r_until_future == -ECANCELED,
		      "later weft_sleep_until(future) returned %d",
		      st.r_until_future);
	ck_assert_msg(st.r_yield == -ECANCELED,
		      "later weft_yield() returned %d", st.r_yield);
	ck_assert_msg(st.r_yield_again == -ECANCELED,
		      "second weft_yield() returned %d", st.r_yield_again);
	ck_assert_msg(st.r_spawn == 0,
		      "weft_spawn in a cancelled task returned %d", st.r_spawn);
	ck_assert_msg(st.r_join == -ECANCELED,
		      "weft_join in a cancelled task returned %d", st.r_join);
	ck_assert_msg(st.r_join_deadline == -ECANCELED,
		      "weft_join(deadline) in a cancelled task returned %d",
		      st.r_join_deadline);
	ck_assert_msg(st.r_detach == 0, "detach after failed joins returned %d",
		      st.r_detach);
	ck_assert_msg(st.r_join_past == -ECANCELED,
		      "weft_join(past deadline) in a cancelled task returned %d",
		      st.r_join_past);
	ck_assert_msg(st.short_sleeps_not_cancelled == 0,
		      "%d of 200 weft_sleep(1 us) after cancel did not return "
		      "-ECANCELED", st.short_sleeps_not_cancelled);
	ck_assert_msg(st.still_cancelled, "cancel flag was cleared");
}
END_TEST

struct unstarted {
	atomic_int ran;
	int r_cancel;
	enum weft_task_state state;
	bool is_cancelled;
	int ran_before_join;
	int r_join;
	int r_detach;
};

static void *
cancel_unstarted_main(void *arg)
{
	struct unstarted *u = arg;
	struct weft_task *t;
	int i;
	int r;

	/* One worker and no park point between spawn and cancel. */
	r = weft_spawn(&t, set_flag, &u->ran, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	u->r_cancel = weft_cancel(t);
	u->state = weft_task_state(t);
	u->is_cancelled = weft_task_is_cancelled(t);
	/* Give it every chance to run (wrongly). */
	for (i = 0; i < 10; i++) {
		weft_yield();
		weft_sleep(WEFT_USEC * 100);
	}
	u->ran_before_join = atomic_load(&u->ran);
	u->r_join = weft_join(t, NULL, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(cancel_unstarted_task_never_runs)
{
	struct weft_config cfg = t_config(1);
	struct unstarted u;

	memset(&u, 0, sizeof(u));
	u.r_cancel = u.r_join = 1;
	T_RUN(cancel_unstarted_main, &u, &cfg, NULL);
	ck_assert_int_eq(u.r_cancel, 0);
	ck_assert_msg(u.state == WEFT_CANCELLED,
		      "state after cancel is %d, want WEFT_CANCELLED (%d)",
		      (int)u.state, (int)WEFT_CANCELLED);
	ck_assert_msg(u.is_cancelled, "weft_task_is_cancelled() is false");
	ck_assert_msg(u.ran_before_join == 0, "the cancelled task ran");
	ck_assert_msg(u.r_join == -ECHILD,
		      "join of a never-started task returned %d, want -ECHILD",
		      u.r_join);
	ck_assert_msg(atomic_load(&u.ran) == 0,
		      "the cancelled task ran before weft_run() returned");
}
END_TEST

/* The same, joining at once: the join parks and the worker dequeues t. */
static void *
cancel_join_at_once_main(void *arg)
{
	struct unstarted *u = arg;
	struct weft_task *t;
	int r;

	r = weft_spawn(&t, set_flag, &u->ran, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	u->r_cancel = weft_cancel(t);
	u->r_join = weft_join(t, NULL, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(join_right_after_cancelling_unstarted_task_returns_echild)
{
	struct weft_config cfg = t_config(1);
	struct unstarted u;

	memset(&u, 0, sizeof(u));
	u.r_cancel = u.r_join = 1;
	T_RUN(cancel_join_at_once_main, &u, &cfg, NULL);
	ck_assert_int_eq(u.r_cancel, 0);
	ck_assert_msg(u.r_join == -ECHILD,
		      "join of a never-started task returned %d, want -ECHILD",
		      u.r_join);
	ck_assert_msg(atomic_load(&u.ran) == 0, "the cancelled task ran");
}
END_TEST

static void *
cancel_unstarted_detach_main(void *arg)
{
	struct unstarted *u = arg;
	struct weft_task *t;
	int i;
	int r;

	r = weft_spawn(&t, set_flag, &u->ran, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	u->r_cancel = weft_cancel(t);
	u->state = weft_task_state(t);
	u->r_detach = weft_detach(t);
	for (i = 0; i < 10; i++)
		weft_yield();
	return NULL;
}

START_TEST(cancel_unstarted_task_then_detach_frees_it)
{
	struct weft_config cfg = t_config(1);
	struct unstarted u;

	memset(&u, 0, sizeof(u));
	u.r_cancel = u.r_detach = 1;
	/* T_RUN checks that no task or stack is left behind. */
	T_RUN(cancel_unstarted_detach_main, &u, &cfg, NULL);
	ck_assert_int_eq(u.r_cancel, 0);
	ck_assert_int_eq(u.state, WEFT_CANCELLED);
	ck_assert_int_eq(u.r_detach, 0);
	ck_assert_msg(atomic_load(&u.ran) == 0, "the cancelled task ran");
}
END_TEST

static void *
cancel_finished_main(void *arg)
{
	atomic_int ran = 0;
	struct weft_task *t;
	void *res = NULL;
	int r;

	r = weft_spawn(&t, set_flag, &ran, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(weft_task_state(t) == WEFT_DONE, "the task to finish");
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_task_state(t), ==, WEFT_DONE);
	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 0x77);
	return NULL;
}

START_TEST(cancel_finished_task_does_nothing)
{
	T_RUN(cancel_finished_main, NULL, NULL, NULL);
}
END_TEST

static void *
cancel_twice_main(void *arg)
{
	struct sleeper s = {0};
	struct weft_task *t;
	void *res = NULL;
	int r;

	r = weft_spawn(&t, sleep_an_hour, &s, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the task to park");
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, -ECANCELED);
	return NULL;
}

START_TEST(cancel_twice_returns_zero)
{
	T_RUN(cancel_twice_main, NULL, NULL, NULL);
}
END_TEST

/*
 * Cancel lands at a random point of a task that parks over and over (joins
 * with a past deadline), many times over: whichever step of the park it
 * hits, the task's blocking call must return -ECANCELED.  Two workers, so
 * the cancel really races the park.
 */
#if defined(WEFT_TSAN)
#define RACE_ROUNDS 200
#else
#define RACE_ROUNDS 2000
#endif

struct park_race {
	atomic_int started;
	atomic_int release;
	struct weft_task *child;
	int ret;
	long loops;
};

static void *
wait_for_release(void *arg)
{
	T_WAIT(atomic_load((atomic_int *)arg), "release");
	return NULL;
}

static void *
join_in_a_loop(void *arg)
{
	struct park_race *pr = arg;
	struct weft_task *child;
	int r;

	r = weft_spawn(&child, wait_for_release, &pr->release, NULL);
	T_EXPECT_INT(r, ==, 0);
	atomic_store(&pr->started, 1);
	if (r != 0)
		return NULL;
	do {
		pr->loops++;
		pr->ret = weft_join(child, NULL, 0);
	} while (pr->ret == -ETIMEDOUT);
	/* Cancelled, this task can no longer join: the main task will. */
	pr->child = child;
	atomic_store(&pr->release, 1);
	return NULL;
}

static void *
park_race_main(void *arg)
{
	long *odd = arg;
	struct park_race pr;
	struct weft_task *t;
	int round;
	int r;

	for (round = 0; round < RACE_ROUNDS && !t_failed(); round++) {
		memset(&pr, 0, sizeof(pr));
		r = weft_spawn(&t, join_in_a_loop, &pr, NULL);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			break;
		while (!atomic_load(&pr.started))
			weft_yield();
		/* Vary where in the loop the first cancel lands. */
		t_burn((round % 13) * WEFT_USEC);
		while (weft_task_state(t) != WEFT_DONE)
			weft_cancel(t);
		T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
		if (pr.child)
			T_EXPECT_INT(
				weft_join(pr.child, NULL, WEFT_DEADLINE_NONE),
				==, 0);
		if (pr.ret != -ECANCELED && (*odd)++ == 0)
			t_failf(__FILE__, __LINE__,
				"round %d: a join of the "
				"cancelled task returned %d after %ld loops",
				round, pr.ret, pr.loops);
	}
	return NULL;
}

START_TEST(cancel_racing_a_park_is_safe)
{
	struct weft_config cfg = t_config(2);
	long odd = 0;

	T_RUN(park_race_main, &odd, &cfg, NULL);
	ck_assert_int_eq(odd, 0);
}
END_TEST

/*
 * identity
 */

START_TEST(self_is_null_outside_task)
{
	ck_assert_ptr_null(weft_self());
}
END_TEST

struct self_check {
	struct gate g;
	struct weft_task *main_self;
	struct weft_task *handle;
	uint64_t handle_id;
	int r_join;
};

static void *
self_main(void *arg)
{
	struct self_check *sc = arg;
	struct weft_task *t;
	int r;

	sc->main_self = weft_self();
	r = weft_spawn(&t, gated, &sc->g, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	sc->handle = t;
	sc->handle_id = weft_task_id(t);
	T_WAIT(atomic_load(&sc->g.started), "the task to start");
	atomic_store(&sc->g.release, 1);
	sc->r_join = weft_join(t, NULL, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(self_is_spawn_handle_inside_task)
{
	struct self_check sc;

	memset(&sc, 0, sizeof(sc));
	T_RUN(self_main, &sc, NULL, NULL);
	ck_assert_ptr_nonnull(sc.main_self);
	ck_assert_ptr_nonnull(sc.handle);
	ck_assert_ptr_ne(sc.main_self, sc.handle);
	ck_assert_msg(sc.g.self == sc.handle,
		      "weft_self() in the task is %p, its handle is %p",
		      (void *)sc.g.self, (void *)sc.handle);
	ck_assert_uint_eq(sc.g.id, sc.handle_id);
	ck_assert_int_eq(sc.r_join, 0);
}
END_TEST

#define IDS_LIVE 500
#define IDS_SEQ	 500

struct ids {
	uint64_t id[IDS_LIVE + IDS_SEQ + 1];
	atomic_int release;
};

static void *
wait_release(void *arg)
{
	T_WAIT(atomic_load((atomic_int *)arg), "release");
	return NULL;
}

static void *
ids_main(void *arg)
{
	struct ids *ids = arg;
	struct weft_task *t[IDS_LIVE];
	struct weft_task *s;
	int n = 0;
	int i;
	int r;
	int made;

	ids->id[n++] = weft_task_id(weft_self());
	/* Live at the same time... */
	for (made = 0; made < IDS_LIVE; made++) {
		r = weft_spawn(&t[made], wait_release, &ids->release, NULL);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			break;
		ids->id[n++] = weft_task_id(t[made]);
	}
	atomic_store(&ids->release, 1);
	for (i = 0; i < made; i++)
		T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE), ==, 0);
	if (made < IDS_LIVE)
		return NULL;
	/* ...and one after another, when memory can be reused. */
	for (i = 0; i < IDS_SEQ; i++) {
		r = weft_spawn(&s, ret_arg, NULL, NULL);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			return NULL;
		ids->id[n++] = weft_task_id(s);
		T_EXPECT_INT(weft_join(s, NULL, WEFT_DEADLINE_NONE), ==, 0);
	}
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

START_TEST(task_ids_are_unique_and_positive)
{
	struct ids *ids = calloc(1, sizeof(*ids));
	size_t n = IDS_LIVE + IDS_SEQ + 1;
	size_t i;

	ck_assert_ptr_nonnull(ids);
	T_RUN(ids_main, ids, NULL, NULL);
	qsort(ids->id, n, sizeof(ids->id[0]), cmp_u64);
	ck_assert_msg(ids->id[0] > 0, "a task id is 0");
	for (i = 1; i < n; i++)
		ck_assert_msg(ids->id[i] != ids->id[i - 1],
			      "task id %" PRIu64 " given twice", ids->id[i]);
	free(ids);
}
END_TEST

struct names {
	struct gate g;
	char seen_by_main[32];
	int r_join;
};

static void *
name_copied_main(void *arg)
{
	struct names *nm = arg;
	struct weft_spawn_opts opts;
	struct weft_task *t;
	char buf[32];
	int r;

	memset(&opts, 0, sizeof(opts));
	snprintf(buf, sizeof(buf), "%s", "named-task");
	opts.name = buf;
	r = weft_spawn(&t, gated, &nm->g, &opts);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	/* The runtime must have taken a copy. */
	memset(buf, 'X', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	snprintf(nm->seen_by_main, sizeof(nm->seen_by_main), "%s",
		 weft_task_name(t));
	atomic_store(&nm->g.release, 1);
	nm->r_join = weft_join(t, NULL, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(task_name_is_copied)
{
	struct names nm;

	memset(&nm, 0, sizeof(nm));
	T_RUN(name_copied_main, &nm, NULL, NULL);
	ck_assert_int_eq(nm.r_join, 0);
	ck_assert_str_eq(nm.seen_by_main, "named-task");
	ck_assert_str_eq(nm.g.name, "named-task");
}
END_TEST

struct long_name {
	char seen[64];
	size_t len;
};

static void *
name_truncated_main(void *arg)
{
	struct long_name *ln = arg;
	struct weft_spawn_opts opts;
	struct weft_task *t;
	const char *name;
	int r;

	memset(&opts, 0, sizeof(opts));
	opts.name = "abcdefghijklmnopqrstuvwxyz0123456789";
	r = weft_spawn(&t, ret_arg, NULL, &opts);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	name = weft_task_name(t);
	ln->len = strlen(name);
	snprintf(ln->seen, sizeof(ln->seen), "%s", name);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(task_name_is_truncated_to_23_bytes)
{
	struct long_name ln;

	memset(&ln, 0, sizeof(ln));
	T_RUN(name_truncated_main, &ln, NULL, NULL);
	ck_assert_uint_eq(ln.len, 23);
	ck_assert_str_eq(ln.seen, "abcdefghijklmnopqrstuvw");
}
END_TEST

struct unnamed {
	char no_opts[32];
	char null_name[32];
};

static void *
unnamed_main(void *arg)
{
	struct unnamed *un = arg;
	struct weft_spawn_opts opts;
	struct weft_task *t;
	const char *name;

	memset(&opts, 0, sizeof(opts));
	if (weft_spawn(&t, ret_arg, NULL, NULL) == 0) {
		name = weft_task_name(t);
		snprintf(un->no_opts, sizeof(un->no_opts), "%s",
			 name ? name : "(null)");
		weft_join(t, NULL, WEFT_DEADLINE_NONE);
	}
	if (weft_spawn(&t, ret_arg, NULL, &opts) == 0) {
		name = weft_task_name(t);
		snprintf(un->null_name, sizeof(un->null_name), "%s",
			 name ? name : "(null)");
		weft_join(t, NULL, WEFT_DEADLINE_NONE);
	}
	return NULL;
}

START_TEST(unnamed_task_has_empty_name)
{
	struct unnamed un;

	memset(&un, '?', sizeof(un));
	un.no_opts[31] = un.null_name[31] = '\0';
	T_RUN(unnamed_main, &un, NULL, NULL);
	ck_assert_str_eq(un.no_opts, "");
	ck_assert_str_eq(un.null_name, "");
}
END_TEST

/*
 * state
 */

static void *
state_pending_main(void *arg)
{
	enum weft_task_state *st = arg;
	struct weft_task *t;
	int r;

	/* One worker, no park point: the task cannot have started. */
	r = weft_spawn(&t, ret_arg, NULL, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	*st = weft_task_state(t);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(state_is_pending_before_first_run)
{
	struct weft_config cfg = t_config(1);
	enum weft_task_state st = (enum weft_task_state) - 1;

	T_RUN(state_pending_main, &st, &cfg, NULL);
	ck_assert_int_eq(st, WEFT_PENDING);
}
END_TEST

static void *
state_self_main(void *arg)
{
	struct gate *g = arg;
	struct weft_task *t;
	int r;

	r = weft_spawn(&t, gated, g, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	atomic_store(&g->release, 1);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_task_state(weft_self()), ==, WEFT_RUNNING);
	return NULL;
}

START_TEST(state_is_running_inside_task)
{
	struct gate g;

	memset(&g, 0, sizeof(g));
	g.state = (enum weft_task_state) - 1;
	T_RUN(state_self_main, &g, NULL, NULL);
	ck_assert_int_eq(g.state, WEFT_RUNNING);
}
END_TEST

static void *
yield_until_released(void *arg)
{
	struct gate *g = arg;

	atomic_store(&g->started, 1);
	while (!atomic_load(&g->release))
		weft_yield();
	return NULL;
}

static void *
state_runnable_main(void *arg)
{
	struct gate *g = arg;
	struct weft_task *t;
	int i;
	int r;

	r = weft_spawn(&t, yield_until_released, g, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	for (i = 0; i < 1000 && !atomic_load(&g->started); i++)
		weft_yield();
	T_EXPECT(atomic_load(&g->started), "the task never started");
	/* One worker: the task is in the run queue, not parked. */
	g->state = weft_task_state(t);
	atomic_store(&g->release, 1);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(state_is_running_when_runnable_after_yield)
{
	struct weft_config cfg = t_config(1);
	struct gate g;

	memset(&g, 0, sizeof(g));
	g.state = (enum weft_task_state) - 1;
	T_RUN(state_runnable_main, &g, &cfg, NULL);
	ck_assert_int_eq(g.state, WEFT_RUNNING);
}
END_TEST

struct state_sleep {
	struct sleeper s;
	enum weft_task_state sleeping;
	enum weft_task_state after;
	void *result;
};

static void *
state_sleep_main(void *arg)
{
	struct state_sleep *ss = arg;
	struct weft_task *t;
	int i;
	int r;

	r = weft_spawn(&t, sleep_an_hour, &ss->s, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	/*
	 * One worker: once the flag is seen, the task has gone on into
	 * weft_sleep() and parked before this task could run again.
	 */
	for (i = 0; i < 1000 && !atomic_load(&ss->s.started); i++)
		weft_yield();
	T_EXPECT(atomic_load(&ss->s.started), "the task never started");
	ss->sleeping = weft_task_state(t);
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_WAIT(weft_task_state(t) == WEFT_DONE, "the task to finish");
	ss->after = weft_task_state(t);
	T_EXPECT_INT(weft_join(t, &ss->result, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(state_is_suspended_while_sleeping_and_done_after_return)
{
	struct weft_config cfg = t_config(1);
	struct state_sleep ss;

	memset(&ss, 0, sizeof(ss));
	T_RUN(state_sleep_main, &ss, &cfg, NULL);
	ck_assert_msg(ss.sleeping == WEFT_SUSPENDED,
		      "state while sleeping is %d", (int)ss.sleeping);
	/* It ran before the cancel, so it is DONE, not CANCELLED. */
	ck_assert_msg(ss.after == WEFT_DONE, "state after return is %d",
		      (int)ss.after);
	ck_assert_int_eq(t_int(ss.result), -ECANCELED);
}
END_TEST

struct state_join {
	struct gate g;
	atomic_int joiner_started;
	enum weft_task_state joiner;
};

static void *
join_gated(void *arg)
{
	struct state_join *sj = arg;
	struct weft_task *t;
	int r;

	r = weft_spawn(&t, gated, &sj->g, NULL);
	T_EXPECT_INT(r, ==, 0);
	atomic_store(&sj->joiner_started, 1);
	if (r == 0)
		T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

static void *
state_join_main(void *arg)
{
	struct state_join *sj = arg;
	struct weft_task *t;
	int i;
	int r;

	r = weft_spawn(&t, join_gated, sj, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	/* One worker: after both flags, the joiner is parked in join. */
	for (i = 0; i < 1000 && !(atomic_load(&sj->joiner_started) &&
				  atomic_load(&sj->g.started));
	     i++)
		weft_yield();
	sj->joiner = weft_task_state(t);
	atomic_store(&sj->g.release, 1);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(state_is_suspended_while_joining)
{
	struct weft_config cfg = t_config(1);
	struct state_join sj;

	memset(&sj, 0, sizeof(sj));
	T_RUN(state_join_main, &sj, &cfg, NULL);
	ck_assert_msg(sj.joiner == WEFT_SUSPENDED,
		      "state of a task parked in weft_join() is %d",
		      (int)sj.joiner);
}
END_TEST

/*
 * context
 */

START_TEST(calls_outside_runtime_return_eperm)
{
	ck_assert_int_eq(weft_yield(), -EPERM);
	ck_assert_int_eq(weft_sleep(0), -EPERM);
	ck_assert_int_eq(weft_sleep(WEFT_MSEC), -EPERM);
	ck_assert_int_eq(weft_sleep_until(0), -EPERM);
	ck_assert_int_eq(weft_sleep_until(weft_now() + WEFT_MSEC), -EPERM);
	ck_assert_int_eq(weft_worker_id(), -EPERM);
	ck_assert_ptr_null(weft_self());
}
END_TEST

struct foreign {
	struct gate g;
	struct weft_task *t;
	atomic_int done;
	struct weft_task *self;
	int worker_id;
	int r_yield;
	int r_sleep;
	int r_sleep_until;
	int r_join;
	int r_join_deadline;
	int r_final_join;
};

static void *
foreign_calls(void *arg)
{
	struct foreign *f = arg;

	f->self = weft_self();
	f->worker_id = weft_worker_id();
	f->r_yield = weft_yield();
	f->r_sleep = weft_sleep(WEFT_MSEC);
	f->r_sleep_until = weft_sleep_until(weft_now() + WEFT_MSEC);
	f->r_join = weft_join(f->t, NULL, WEFT_DEADLINE_NONE);
	f->r_join_deadline = weft_join(f->t, NULL, weft_now() + WEFT_MSEC);
	atomic_store(&f->done, 1);
	return NULL;
}

static void *
foreign_main(void *arg)
{
	struct foreign *f = arg;
	pthread_t th;
	int r;

	r = weft_spawn(&f->t, gated, &f->g, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	r = pthread_create(&th, NULL, foreign_calls, f);
	T_EXPECT_INT(r, ==, 0);
	if (r == 0) {
		T_WAIT(atomic_load(&f->done), "the helper thread");
		pthread_join(th, NULL);
	}
	atomic_store(&f->g.release, 1);
	/* The handle is still ours after the helper's failed joins. */
	f->r_final_join = weft_join(f->t, NULL, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(calls_from_foreign_thread_return_eperm)
{
	struct foreign f;

	memset(&f, 0, sizeof(f));
	f.self = (struct weft_task *)&f;
	T_RUN(foreign_main, &f, NULL, NULL);
	ck_assert_ptr_null(f.self);
	ck_assert_int_eq(f.worker_id, -EPERM);
	ck_assert_int_eq(f.r_yield, -EPERM);
	ck_assert_int_eq(f.r_sleep, -EPERM);
	ck_assert_int_eq(f.r_sleep_until, -EPERM);
	ck_assert_int_eq(f.r_join, -EPERM);
	ck_assert_int_eq(f.r_join_deadline, -EPERM);
	ck_assert_int_eq(f.r_final_join, 0);
}
END_TEST

static Suite *
sched_task_suite(void)
{
	Suite *s = suite_create("sched/task");
	TCase *tc;

	tc = t_tcase(s, "spawn_join", T_TIMEOUT_LONG);
	tcase_add_test(tc, join_returns_task_value);
	tcase_add_test(tc, join_with_null_result_releases_handle);
	tcase_add_test(tc, join_of_finished_task_returns_value);
	tcase_add_test(tc, million_tasks_from_one_spawner_sum_correctly);
	tcase_add_test(tc, million_tasks_from_several_spawners_sum_correctly);
	tcase_add_test(tc, recursive_spawn_tree_computes_fibonacci);
	tcase_add_test(
		tc,
		join_past_deadline_returns_etimedout_and_task_keeps_running);
	tcase_add_test(tc, join_deadline_never_returns_early);
	tcase_add_test(tc, join_self_returns_edeadlk);

	tc = t_tcase(s, "detach", T_TIMEOUT);
	tcase_add_test(tc, detached_task_runs_to_completion);
	tcase_add_test(tc, spawn_without_handle_runs_detached);
	tcase_add_test(tc, detach_of_finished_task_frees_it);

	tc = t_tcase(s, "cancel", T_TIMEOUT);
	tcase_add_test(tc,
		       cancel_sleeping_task_makes_its_sleep_return_ecanceled);
	tcase_add_test(tc, cancellation_is_sticky);
	tcase_add_test(tc, cancel_unstarted_task_never_runs);
	tcase_add_test(
		tc, join_right_after_cancelling_unstarted_task_returns_echild);
	tcase_add_test(tc, cancel_unstarted_task_then_detach_frees_it);
	tcase_add_test(tc, cancel_finished_task_does_nothing);
	tcase_add_test(tc, cancel_twice_returns_zero);
	tcase_add_test(tc, cancel_racing_a_park_is_safe);

	tc = t_tcase(s, "identity", T_TIMEOUT);
	tcase_add_test(tc, self_is_null_outside_task);
	tcase_add_test(tc, self_is_spawn_handle_inside_task);
	tcase_add_test(tc, task_ids_are_unique_and_positive);
	tcase_add_test(tc, task_name_is_copied);
	tcase_add_test(tc, task_name_is_truncated_to_23_bytes);
	tcase_add_test(tc, unnamed_task_has_empty_name);

	tc = t_tcase(s, "state", T_TIMEOUT);
	tcase_add_test(tc, state_is_pending_before_first_run);
	tcase_add_test(tc, state_is_running_inside_task);
	tcase_add_test(tc, state_is_running_when_runnable_after_yield);
	tcase_add_test(tc,
		       state_is_suspended_while_sleeping_and_done_after_return);
	tcase_add_test(tc, state_is_suspended_while_joining);

	tc = t_tcase(s, "context", T_TIMEOUT);
	tcase_add_test(tc, calls_outside_runtime_return_eperm);
	tcase_add_test(tc, calls_from_foreign_thread_return_eperm);

	return s;
}

int
main(void)
{
	return t_main(sched_task_suite());
}

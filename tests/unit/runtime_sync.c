/* SPDX-License-Identifier: MIT */
/*
 * Sync primitives: mutex (fast path, deadlines, cancellation, starvation
 * mode), rwlock, cond, waitgroup, semaphore and once, on coroutines and on
 * plain threads.
 */
#include <pthread.h>

#include "harness.h"

#if defined(WEFT_TSAN)
#define T_TASKS 200
#else
#define T_TASKS 1000
#endif

/* Spawn `n` tasks running fn(arg) and join them all; records failures. */
static void
spawn_join(int n, weft_fn fn, void *arg)
{
	struct weft_task **ts = calloc((size_t)n, sizeof(*ts));
	int i;

	T_EXPECT(ts != NULL, "calloc");
	if (!ts)
		return;
	for (i = 0; i < n; i++)
		T_EXPECT_INT(weft_spawn(&ts[i], fn, arg, NULL), ==, 0);
	for (i = 0; i < n; i++)
		T_EXPECT_INT(weft_join(ts[i], NULL, WEFT_DEADLINE_NONE), ==, 0);
	free(ts);
}

/* Spawn one task with a handle. */
static struct weft_task *
spawn1(weft_fn fn, void *arg)
{
	struct weft_task *t = NULL;

	T_EXPECT_INT(weft_spawn(&t, fn, arg, NULL), ==, 0);
	return t;
}

/* Join `t` and return its result as an int. */
static int
join_int(struct weft_task *t)
{
	void *res = NULL;

	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	return (int)t_int(res);
}

static void
wait_parked(struct weft_task *t)
{
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the task to park");
}

static int64_t
in_ms(int ms)
{
	return weft_now() + ms * WEFT_MSEC;
}

/*
 * Mutex
 */

struct counter {
	struct weft_mutex m;
	long n;
	int iters;
};

static void *
count_task(void *arg)
{
	struct counter *c = arg;
	int i;

	for (i = 0; i < c->iters; i++) {
		T_EXPECT_INT(weft_mutex_lock(&c->m, WEFT_DEADLINE_NONE), ==, 0);
		long v = c->n;
		if (i % 8 == 0)
			weft_yield();	/* hold it across a switch */
		c->n = v + 1;
		T_EXPECT_INT(weft_mutex_unlock(&c->m), ==, 0);
	}
	return NULL;
}

static void *
counter_main(void *arg)
{
	struct counter *c = arg;

	spawn_join(T_TASKS, count_task, c);
	return NULL;
}

static void
mutex_counter(int workers)
{
	struct weft_config cfg = t_config(workers);
	struct counter c = { WEFT_MUTEX_INIT, 0, 100 };

	T_RUN(counter_main, &c, &cfg, NULL);
	ck_assert_int_eq(c.n, (long)T_TASKS * 100);
	/* Left unlocked, no waiter: a plain thread can take it. */
	ck_assert_int_eq(weft_mutex_trylock(&c.m), 0);
	ck_assert_int_eq(weft_mutex_unlock(&c.m), 0);
}

START_TEST(mutex_counter_is_exact_on_1_worker)
{
	mutex_counter(1);
}
END_TEST

START_TEST(mutex_counter_is_exact_on_2_workers)
{
	mutex_counter(2);
}
END_TEST

START_TEST(mutex_counter_is_exact_on_4_workers)
{
	mutex_counter(4);
}
END_TEST

START_TEST(mutex_trylock_and_unlock_eperm_outside_runtime)
{
	struct weft_mutex m = WEFT_MUTEX_INIT;

	ck_assert_int_eq(weft_mutex_unlock(&m), -EPERM);
	ck_assert_int_eq(weft_mutex_trylock(&m), 0);
	ck_assert_int_eq(weft_mutex_trylock(&m), -EAGAIN);
	ck_assert_int_eq(weft_mutex_lock(&m, weft_now() + WEFT_MSEC),
			 -ETIMEDOUT);
	ck_assert_int_eq(weft_mutex_unlock(&m), 0);
	ck_assert_int_eq(weft_mutex_unlock(&m), -EPERM);
	ck_assert_int_eq(weft_mutex_lock(&m, WEFT_DEADLINE_NONE), 0);
	ck_assert_int_eq(weft_mutex_unlock(&m), 0);
}
END_TEST

struct mx2 {
	struct weft_mutex m;
	atomic_int got;
};

static void *
lock_short_deadline(void *arg)
{
	struct mx2 *x = arg;

	return t_ptr(weft_mutex_lock(&x->m, in_ms(20)));
}

static void *
lock_forever(void *arg)
{
	struct mx2 *x = arg;
	int r = weft_mutex_lock(&x->m, WEFT_DEADLINE_NONE);

	if (r == 0) {
		atomic_store(&x->got, 1);
		T_EXPECT_INT(weft_mutex_unlock(&x->m), ==, 0);
	}
	return t_ptr(r);
}

static void *
mutex_deadline_main(void *arg)
{
	struct mx2 *x = arg;
	struct weft_task *a;
	struct weft_task *b;

	T_EXPECT_INT(weft_mutex_lock(&x->m, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_mutex_trylock(&x->m), ==, -EAGAIN);
	/* b queues first with no deadline, a behind it times out. */
	b = spawn1(lock_forever, x);
	wait_parked(b);
	a = spawn1(lock_short_deadline, x);
	T_EXPECT_INT(join_int(a), ==, -ETIMEDOUT);
	/* A past deadline while held. */
	a = spawn1(lock_short_deadline, x);
	T_EXPECT_INT(join_int(a), ==, -ETIMEDOUT);
	T_EXPECT_INT(atomic_load(&x->got), ==, 0);
	/* No lost hand-off: b still gets it. */
	T_EXPECT_INT(weft_mutex_unlock(&x->m), ==, 0);
	T_EXPECT_INT(join_int(b), ==, 0);
	T_EXPECT_INT(atomic_load(&x->got), ==, 1);
	T_EXPECT_INT(weft_mutex_lock(&x->m, in_ms(1000)), ==, 0);
	T_EXPECT_INT(weft_mutex_unlock(&x->m), ==, 0);
	T_EXPECT_INT(weft_mutex_unlock(&x->m), ==, -EPERM);
	return NULL;
}

START_TEST(mutex_lock_deadline_times_out_without_losing_handoff)
{
	struct weft_config cfg = t_config(2);
	struct mx2 x = { WEFT_MUTEX_INIT, 0 };

	T_RUN(mutex_deadline_main, &x, &cfg, NULL);
}
END_TEST

static void *
mutex_cancel_main(void *arg)
{
	struct mx2 *x = arg;
	struct weft_task *b;

	T_EXPECT_INT(weft_mutex_lock(&x->m, WEFT_DEADLINE_NONE), ==, 0);
	b = spawn1(lock_forever, x);
	wait_parked(b);
	T_EXPECT_INT(weft_cancel(b), ==, 0);
	T_EXPECT_INT(join_int(b), ==, -ECANCELED);
	T_EXPECT_INT(atomic_load(&x->got), ==, 0);
	T_EXPECT_INT(weft_mutex_unlock(&x->m), ==, 0);
	/* The cancelled waiter left nothing behind. */
	T_EXPECT_INT(weft_mutex_trylock(&x->m), ==, 0);
	T_EXPECT_INT(weft_mutex_unlock(&x->m), ==, 0);
	return NULL;
}

START_TEST(mutex_cancel_while_waiting_returns_ecanceled)
{
	struct weft_config cfg = t_config(2);
	struct mx2 x = { WEFT_MUTEX_INIT, 0 };

	T_RUN(mutex_cancel_main, &x, &cfg, NULL);
}
END_TEST

/* Starvation: a waiter gets the lock while a barger relocks at once. */
struct starve {
	struct weft_mutex m;
	atomic_int stop;
	atomic_int barging;
	long rounds;
};

static void *
barger(void *arg)
{
	struct starve *s = arg;

	while (!atomic_load(&s->stop)) {
		T_EXPECT_INT(weft_mutex_lock(&s->m, WEFT_DEADLINE_NONE), ==, 0);
		atomic_store(&s->barging, 1);
		t_burn(20 * WEFT_USEC);
		s->rounds++;
		T_EXPECT_INT(weft_mutex_unlock(&s->m), ==, 0);
	}
	return NULL;
}

static void *
starve_waiter(void *arg)
{
	struct starve *s = arg;
	int r;

	T_WAIT(atomic_load(&s->barging), "the barger to start");
	r = weft_mutex_lock(&s->m, weft_now() + 10 * WEFT_SEC);
	atomic_store(&s->stop, 1);
	if (r == 0)
		T_EXPECT_INT(weft_mutex_unlock(&s->m), ==, 0);
	return t_ptr(r);
}

static void *
starve_main(void *arg)
{
	struct starve *s = arg;
	struct weft_task *b = spawn1(barger, s);
	struct weft_task *w = spawn1(starve_waiter, s);

	T_EXPECT_INT(join_int(w), ==, 0);
	join_int(b);
	return NULL;
}

START_TEST(mutex_starving_waiter_gets_lock_from_tight_relocker)
{
	struct weft_config cfg = t_config(2);
	struct starve s = { WEFT_MUTEX_INIT, 0, 0, 0 };
	int64_t t0 = weft_now();

	T_RUN(starve_main, &s, &cfg, NULL);
	/* Bounded: far below the waiter's 10 s deadline. */
	ck_assert_msg(weft_now() - t0 < 5 * WEFT_SEC, "took %lld ms",
		      (long long)((weft_now() - t0) / WEFT_MSEC));
}
END_TEST

/*
 * Rwlock
 */

struct rw {
	struct weft_rwlock l;
	atomic_int readers;
	atomic_int writers;
	atomic_int max_readers;
	atomic_int bad;
	atomic_int order;
	int w_order;
	int r_order;
	int iters;
};

static void *
reader_meets_another(void *arg)
{
	struct rw *x = arg;
	int64_t end = weft_now() + t_stall_ns();
	int n;

	T_EXPECT_INT(weft_rwlock_rdlock(&x->l, WEFT_DEADLINE_NONE), ==, 0);
	n = atomic_fetch_add(&x->readers, 1) + 1;
	/* Stay until a second reader is inside too (bounded). */
	while (atomic_load(&x->max_readers) < 2 && weft_now() < end) {
		if (n > atomic_load(&x->max_readers))
			atomic_store(&x->max_readers, n);
		n = atomic_load(&x->readers);
		weft_yield();
	}
	atomic_fetch_sub(&x->readers, 1);
	T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	return NULL;
}

static void *
many_readers_main(void *arg)
{
	spawn_join(8, reader_meets_another, arg);
	return NULL;
}

START_TEST(rwlock_admits_many_readers_at_once)
{
	struct weft_config cfg = t_config(2);
	struct rw x = { .l = WEFT_RWLOCK_INIT };

	T_RUN(many_readers_main, &x, &cfg, NULL);
	ck_assert_int_ge(atomic_load(&x.max_readers), 2);
}
END_TEST

static void *
rw_mixed(void *arg)
{
	struct rw *x = arg;
	uint64_t rnd = (uint64_t)(uintptr_t)weft_self();
	int i;

	for (i = 0; i < x->iters; i++) {
		if (t_rand(&rnd) % 4 == 0) {
			T_EXPECT_INT(weft_rwlock_wrlock(&x->l,
							WEFT_DEADLINE_NONE),
				     ==, 0);
			if (atomic_fetch_add(&x->writers, 1) != 0 ||
			    atomic_load(&x->readers) != 0)
				atomic_fetch_add(&x->bad, 1);
			weft_yield();
			atomic_fetch_sub(&x->writers, 1);
		} else {
			T_EXPECT_INT(weft_rwlock_rdlock(&x->l,
							WEFT_DEADLINE_NONE),
				     ==, 0);
			atomic_fetch_add(&x->readers, 1);
			if (atomic_load(&x->writers) != 0)
				atomic_fetch_add(&x->bad, 1);
			weft_yield();
			atomic_fetch_sub(&x->readers, 1);
		}
		T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	}
	return NULL;
}

static void *
rw_mixed_main(void *arg)
{
	spawn_join(50, rw_mixed, arg);
	return NULL;
}

START_TEST(rwlock_writer_excludes_readers_and_writers)
{
	struct weft_config cfg = t_config(4);
	struct rw x = { .l = WEFT_RWLOCK_INIT, .iters = 100 };

	T_RUN(rw_mixed_main, &x, &cfg, NULL);
	ck_assert_int_eq(atomic_load(&x.bad), 0);
	ck_assert_int_eq(weft_rwlock_unlock(&x.l), -EPERM);
}
END_TEST

static void *
rw_writer(void *arg)
{
	struct rw *x = arg;
	int r = weft_rwlock_wrlock(&x->l, WEFT_DEADLINE_NONE);

	if (r == 0) {
		x->w_order = atomic_fetch_add(&x->order, 1) + 1;
		T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	}
	return t_ptr(r);
}

static void *
rw_writer_short(void *arg)
{
	struct rw *x = arg;

	return t_ptr(weft_rwlock_wrlock(&x->l, in_ms(30)));
}

static void *
rw_reader(void *arg)
{
	struct rw *x = arg;
	int r = weft_rwlock_rdlock(&x->l, WEFT_DEADLINE_NONE);

	if (r == 0) {
		x->r_order = atomic_fetch_add(&x->order, 1) + 1;
		T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	}
	return t_ptr(r);
}

static void *
rw_pref_main(void *arg)
{
	struct rw *x = arg;
	struct weft_task *w;
	struct weft_task *r;

	T_EXPECT_INT(weft_rwlock_rdlock(&x->l, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_rwlock_tryrdlock(&x->l), ==, 0);
	T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	T_EXPECT_INT(weft_rwlock_trywrlock(&x->l), ==, -EAGAIN);
	w = spawn1(rw_writer, x);
	wait_parked(w);
	/* A waiting writer stops new readers. */
	T_EXPECT_INT(weft_rwlock_tryrdlock(&x->l), ==, -EAGAIN);
	T_EXPECT_INT(weft_rwlock_rdlock(&x->l, in_ms(10)), ==, -ETIMEDOUT);
	r = spawn1(rw_reader, x);
	wait_parked(r);
	T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	T_EXPECT_INT(join_int(w), ==, 0);
	T_EXPECT_INT(join_int(r), ==, 0);
	T_EXPECT_INT(x->w_order, ==, 1);
	T_EXPECT_INT(x->r_order, ==, 2);

	/* A writer that times out lets the readers queued behind it in. */
	T_EXPECT_INT(weft_rwlock_rdlock(&x->l, WEFT_DEADLINE_NONE), ==, 0);
	w = spawn1(rw_writer_short, x);
	wait_parked(w);
	r = spawn1(rw_reader, x);
	wait_parked(r);
	T_EXPECT_INT(join_int(w), ==, -ETIMEDOUT);
	T_EXPECT_INT(join_int(r), ==, 0);	/* while we still read */
	T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	T_EXPECT_INT(weft_rwlock_trywrlock(&x->l), ==, 0);
	T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	return NULL;
}

START_TEST(rwlock_waiting_writer_stops_new_readers)
{
	struct weft_config cfg = t_config(2);
	struct rw x = { .l = WEFT_RWLOCK_INIT };

	T_RUN(rw_pref_main, &x, &cfg, NULL);
}
END_TEST

static void *
rw_cancel_main(void *arg)
{
	struct rw *x = arg;
	struct weft_task *w;
	struct weft_task *r;

	T_EXPECT_INT(weft_rwlock_wrlock(&x->l, WEFT_DEADLINE_NONE), ==, 0);
	w = spawn1(rw_writer, x);
	r = spawn1(rw_reader, x);
	wait_parked(w);
	wait_parked(r);
	weft_cancel(w);
	weft_cancel(r);
	T_EXPECT_INT(join_int(w), ==, -ECANCELED);
	T_EXPECT_INT(join_int(r), ==, -ECANCELED);
	T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	T_EXPECT_INT(weft_rwlock_trywrlock(&x->l), ==, 0);
	T_EXPECT_INT(weft_rwlock_unlock(&x->l), ==, 0);
	return NULL;
}

START_TEST(rwlock_cancel_while_waiting_returns_ecanceled)
{
	struct weft_config cfg = t_config(2);
	struct rw x = { .l = WEFT_RWLOCK_INIT };

	T_RUN(rw_cancel_main, &x, &cfg, NULL);
}
END_TEST

/*
 * Cond
 */

#define QCAP 4

struct pc {
	struct weft_mutex m;
	struct weft_cond notempty;
	struct weft_cond notfull;
	int buf[QCAP];
	int head;
	int len;
	int items;		/* per producer */
	int producers_left;
	long sum;
	long count;
	bool broadcast;
};

static void *
producer(void *arg)
{
	struct pc *q = arg;
	int i;

	for (i = 1; i <= q->items; i++) {
		weft_mutex_lock(&q->m, WEFT_DEADLINE_NONE);
		while (q->len == QCAP)
			T_EXPECT_INT(weft_cond_wait(&q->notfull, &q->m,
						    WEFT_DEADLINE_NONE),
				     ==, 0);
		q->buf[(q->head + q->len) % QCAP] = i;
		q->len++;
		if (q->broadcast)
			weft_cond_broadcast(&q->notempty);
		else
			weft_cond_signal(&q->notempty);
		weft_mutex_unlock(&q->m);
	}
	weft_mutex_lock(&q->m, WEFT_DEADLINE_NONE);
	q->producers_left--;
	weft_cond_broadcast(&q->notempty);
	weft_mutex_unlock(&q->m);
	return NULL;
}

static void *
consumer(void *arg)
{
	struct pc *q = arg;

	weft_mutex_lock(&q->m, WEFT_DEADLINE_NONE);
	for (;;) {
		while (q->len == 0 && q->producers_left > 0)
			T_EXPECT_INT(weft_cond_wait(&q->notempty, &q->m,
						    WEFT_DEADLINE_NONE),
				     ==, 0);
		if (q->len == 0)
			break;
		q->sum += q->buf[q->head];
		q->count++;
		q->head = (q->head + 1) % QCAP;
		q->len--;
		if (q->broadcast)
			weft_cond_broadcast(&q->notfull);
		else
			weft_cond_signal(&q->notfull);
		if (q->count % 16 == 0) {
			weft_mutex_unlock(&q->m);
			weft_yield();
			weft_mutex_lock(&q->m, WEFT_DEADLINE_NONE);
		}
	}
	weft_mutex_unlock(&q->m);
	return NULL;
}

static void *
pc_main(void *arg)
{
	struct pc *q = arg;
	struct weft_task *t[8];
	int i;

	for (i = 0; i < 4; i++)
		t[i] = spawn1(consumer, q);
	for (i = 4; i < 8; i++)
		t[i] = spawn1(producer, q);
	for (i = 0; i < 8; i++)
		join_int(t[i]);
	return NULL;
}

static void
producer_consumer(bool broadcast)
{
	struct weft_config cfg = t_config(2);
	struct pc q = { .m = WEFT_MUTEX_INIT, .notempty = WEFT_COND_INIT,
			.notfull = WEFT_COND_INIT, .items = 2000,
			.producers_left = 4, .broadcast = broadcast };
	long n = q.items;

	T_RUN(pc_main, &q, &cfg, NULL);
	ck_assert_int_eq(q.count, 4 * n);
	ck_assert_int_eq(q.sum, 4 * n * (n + 1) / 2);
}

START_TEST(cond_producer_consumer_with_signal)
{
	producer_consumer(false);
}
END_TEST

START_TEST(cond_producer_consumer_with_broadcast)
{
	producer_consumer(true);
}
END_TEST

struct gate {
	struct weft_mutex m;
	struct weft_cond go;
	struct weft_cond ready;
	int waiting;
	bool open;
	atomic_int passed;
};

static void *
gate_waiter(void *arg)
{
	struct gate *g = arg;

	weft_mutex_lock(&g->m, WEFT_DEADLINE_NONE);
	g->waiting++;
	weft_cond_signal(&g->ready);
	while (!g->open)
		T_EXPECT_INT(weft_cond_wait(&g->go, &g->m, WEFT_DEADLINE_NONE),
			     ==, 0);
	atomic_fetch_add(&g->passed, 1);
	weft_mutex_unlock(&g->m);
	return NULL;
}

static void *
broadcast_main(void *arg)
{
	struct gate *g = arg;
	struct weft_task *t[20];
	int i;

	for (i = 0; i < 20; i++)
		t[i] = spawn1(gate_waiter, g);
	weft_mutex_lock(&g->m, WEFT_DEADLINE_NONE);
	while (g->waiting < 20)
		weft_cond_wait(&g->ready, &g->m, WEFT_DEADLINE_NONE);
	T_EXPECT_INT(atomic_load(&g->passed), ==, 0);
	g->open = true;
	T_EXPECT_INT(weft_cond_broadcast(&g->go), ==, 0);
	weft_mutex_unlock(&g->m);
	for (i = 0; i < 20; i++)
		join_int(t[i]);
	T_EXPECT_INT(atomic_load(&g->passed), ==, 20);
	return NULL;
}

START_TEST(cond_broadcast_wakes_every_waiter)
{
	struct weft_config cfg = t_config(2);
	struct gate g = { .m = WEFT_MUTEX_INIT, .go = WEFT_COND_INIT,
			  .ready = WEFT_COND_INIT };

	T_RUN(broadcast_main, &g, &cfg, NULL);
}
END_TEST

static void *
cond_deadline_main(void *arg)
{
	struct gate *g = arg;
	int64_t t0;

	T_EXPECT_INT(weft_mutex_lock(&g->m, WEFT_DEADLINE_NONE), ==, 0);
	t0 = weft_now();
	T_EXPECT_INT(weft_cond_wait(&g->go, &g->m, t0 + 10 * WEFT_MSEC), ==,
		     -ETIMEDOUT);
	T_EXPECT(weft_now() >= t0 + 10 * WEFT_MSEC, "returned early");
	/* Held: trylock fails, the unlock succeeds once. */
	T_EXPECT_INT(weft_mutex_trylock(&g->m), ==, -EAGAIN);
	T_EXPECT_INT(weft_mutex_unlock(&g->m), ==, 0);
	T_EXPECT_INT(weft_mutex_unlock(&g->m), ==, -EPERM);
	/* Without holding the mutex: -EPERM, nothing queued. */
	T_EXPECT_INT(weft_cond_wait(&g->go, &g->m, WEFT_DEADLINE_NONE), ==,
		     -EPERM);
	T_EXPECT_INT(weft_cond_signal(&g->go), ==, 0);
	return NULL;
}

START_TEST(cond_wait_deadline_times_out_holding_mutex)
{
	struct weft_config cfg = t_config(2);
	struct gate g = { .m = WEFT_MUTEX_INIT, .go = WEFT_COND_INIT };

	T_RUN(cond_deadline_main, &g, &cfg, NULL);
}
END_TEST

static void *
cond_cancelled_waiter(void *arg)
{
	struct gate *g = arg;
	int r;

	weft_mutex_lock(&g->m, WEFT_DEADLINE_NONE);
	r = weft_cond_wait(&g->go, &g->m, WEFT_DEADLINE_NONE);
	/* Held again, even though cancelled and main held it meanwhile. */
	T_EXPECT_INT(weft_mutex_trylock(&g->m), ==, -EAGAIN);
	atomic_store(&g->passed, 1);
	T_EXPECT_INT(weft_mutex_unlock(&g->m), ==, 0);
	return t_ptr(r);
}

static void *
cond_cancel_main(void *arg)
{
	struct gate *g = arg;
	struct weft_task *t = spawn1(cond_cancelled_waiter, g);
	int i;

	wait_parked(t);
	/* Hold the mutex while cancelling: the waiter must wait for it. */
	weft_mutex_lock(&g->m, WEFT_DEADLINE_NONE);
	weft_cancel(t);
	for (i = 0; i < 100; i++)
		weft_yield();
	T_EXPECT_INT(atomic_load(&g->passed), ==, 0);
	weft_mutex_unlock(&g->m);
	T_EXPECT_INT(join_int(t), ==, -ECANCELED);
	T_EXPECT_INT(atomic_load(&g->passed), ==, 1);
	T_EXPECT_INT(weft_mutex_trylock(&g->m), ==, 0);
	T_EXPECT_INT(weft_mutex_unlock(&g->m), ==, 0);
	return NULL;
}

START_TEST(cond_cancel_returns_ecanceled_with_mutex_held)
{
	struct weft_config cfg = t_config(2);
	struct gate g = { .m = WEFT_MUTEX_INIT, .go = WEFT_COND_INIT };

	T_RUN(cond_cancel_main, &g, &cfg, NULL);
}
END_TEST

/* The same on one worker: the relocking waiter must not spin it. */
START_TEST(cond_cancel_relocks_on_one_worker)
{
	struct weft_config cfg = t_config(1);
	struct gate g = { .m = WEFT_MUTEX_INIT, .go = WEFT_COND_INIT };

	T_RUN(cond_cancel_main, &g, &cfg, NULL);
}
END_TEST

/*
 * Waitgroup
 */

struct wgx {
	struct weft_waitgroup wg;
	atomic_int n;
};

static void *
wg_worker(void *arg)
{
	struct wgx *x = arg;

	weft_yield();
	atomic_fetch_add(&x->n, 1);
	T_EXPECT_INT(weft_waitgroup_done(&x->wg), ==, 0);
	return NULL;
}

static void *
wg_main(void *arg)
{
	struct wgx *x = arg;
	int i;

	T_EXPECT_INT(weft_waitgroup_add(&x->wg, T_TASKS), ==, 0);
	for (i = 0; i < T_TASKS; i++)
		T_EXPECT_INT(weft_spawn(NULL, wg_worker, x, NULL), ==, 0);
	T_EXPECT_INT(weft_waitgroup_wait(&x->wg, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(atomic_load(&x->n), ==, T_TASKS);
	return NULL;
}

START_TEST(waitgroup_waits_for_1000_tasks)
{
	struct weft_config cfg = t_config(4);
	struct wgx x = { WEFT_WAITGROUP_INIT, 0 };

	T_RUN(wg_main, &x, &cfg, NULL);
}
END_TEST

START_TEST(waitgroup_negative_is_einval_and_zero_returns_at_once)
{
	struct weft_waitgroup wg = WEFT_WAITGROUP_INIT;

	ck_assert_int_eq(weft_waitgroup_wait(&wg, WEFT_DEADLINE_NONE), 0);
	ck_assert_int_eq(weft_waitgroup_done(&wg), -EINVAL);
	ck_assert_int_eq(weft_waitgroup_add(&wg, 2), 0);
	ck_assert_int_eq(weft_waitgroup_add(&wg, -3), -EINVAL);
	ck_assert_int_eq(weft_waitgroup_wait(&wg, weft_now() + WEFT_MSEC),
			 -ETIMEDOUT);
	ck_assert_int_eq(weft_waitgroup_add(&wg, -2), 0);
	ck_assert_int_eq(weft_waitgroup_wait(&wg, 0), 0);
}
END_TEST

static void *
wg_wait_forever(void *arg)
{
	return t_ptr(weft_waitgroup_wait(arg, WEFT_DEADLINE_NONE));
}

static void *
wg_cancel_main(void *arg)
{
	struct weft_waitgroup *wg = arg;
	struct weft_task *t;

	weft_waitgroup_add(wg, 1);
	T_EXPECT_INT(weft_waitgroup_wait(wg, in_ms(5)), ==, -ETIMEDOUT);
	t = spawn1(wg_wait_forever, wg);
	wait_parked(t);
	weft_cancel(t);
	T_EXPECT_INT(join_int(t), ==, -ECANCELED);
	T_EXPECT_INT(weft_waitgroup_done(wg), ==, 0);
	return NULL;
}

START_TEST(waitgroup_cancel_while_waiting_returns_ecanceled)
{
	struct weft_config cfg = t_config(2);
	struct weft_waitgroup wg = WEFT_WAITGROUP_INIT;

	T_RUN(wg_cancel_main, &wg, &cfg, NULL);
}
END_TEST

/*
 * Semaphore
 */

struct semx {
	struct weft_sem s;
	atomic_int inside;
	atomic_int max;
	atomic_int over;
	atomic_int arrived;
};

static void *
sem_user(void *arg)
{
	struct semx *x = arg;
	int i;
	int n;

	/*
	 * All start together: a task that ran its 20 rounds before the next
	 * was spawned (a slow spawn, a steal to an idle worker) would never
	 * meet another inside.
	 */
	atomic_fetch_add(&x->arrived, 1);
	T_WAIT(atomic_load(&x->arrived) >= 100, "every user to arrive");
	for (i = 0; i < 20; i++) {
		T_EXPECT_INT(weft_sem_acquire(&x->s, WEFT_DEADLINE_NONE), ==,
			     0);
		n = atomic_fetch_add(&x->inside, 1) + 1;
		if (n > 3)
			atomic_fetch_add(&x->over, 1);
		if (n > atomic_load(&x->max))
			atomic_store(&x->max, n);
		weft_yield();
		atomic_fetch_sub(&x->inside, 1);
		T_EXPECT_INT(weft_sem_release(&x->s), ==, 0);
	}
	return NULL;
}

static void *
sem_main(void *arg)
{
	spawn_join(100, sem_user, arg);
	return NULL;
}

START_TEST(sem_bounds_concurrency)
{
	struct weft_config cfg = t_config(4);
	struct semx x;

	memset(&x, 0, sizeof(x));
	ck_assert_int_eq(weft_sem_init(&x.s, 3), 0);
	T_RUN(sem_main, &x, &cfg, NULL);
	ck_assert_int_eq(atomic_load(&x.over), 0);
	ck_assert_int_le(atomic_load(&x.max), 3);
	ck_assert_int_ge(atomic_load(&x.max), 2);
	/* All three units are back. */
	ck_assert_int_eq(weft_sem_tryacquire(&x.s), 0);
	ck_assert_int_eq(weft_sem_tryacquire(&x.s), 0);
	ck_assert_int_eq(weft_sem_tryacquire(&x.s), 0);
	ck_assert_int_eq(weft_sem_tryacquire(&x.s), -EAGAIN);
}
END_TEST

static struct weft_sem static_sem = WEFT_SEM_INIT(3);

START_TEST(sem_static_init_and_deadline)
{
	ck_assert_int_eq(weft_sem_tryacquire(&static_sem), 0);
	ck_assert_int_eq(weft_sem_tryacquire(&static_sem), 0);
	ck_assert_int_eq(weft_sem_acquire(&static_sem, WEFT_DEADLINE_NONE), 0);
	ck_assert_int_eq(weft_sem_tryacquire(&static_sem), -EAGAIN);
	ck_assert_int_eq(weft_sem_acquire(&static_sem, weft_now() + WEFT_MSEC),
			 -ETIMEDOUT);
	ck_assert_int_eq(weft_sem_release(&static_sem), 0);
	ck_assert_int_eq(weft_sem_tryacquire(&static_sem), 0);
	ck_assert_int_eq(weft_sem_release(&static_sem), 0);
	ck_assert_int_eq(weft_sem_release(&static_sem), 0);
	ck_assert_int_eq(weft_sem_release(&static_sem), 0);
}
END_TEST

static void *
sem_wait_forever(void *arg)
{
	return t_ptr(weft_sem_acquire(arg, WEFT_DEADLINE_NONE));
}

static void *
sem_cancel_main(void *arg)
{
	struct weft_sem *s = arg;
	struct weft_task *a;
	struct weft_task *b;

	a = spawn1(sem_wait_forever, s);
	wait_parked(a);
	b = spawn1(sem_wait_forever, s);
	wait_parked(b);
	weft_cancel(a);
	T_EXPECT_INT(join_int(a), ==, -ECANCELED);
	/* The unit goes to b, not to the cancelled a. */
	T_EXPECT_INT(weft_sem_release(s), ==, 0);
	T_EXPECT_INT(join_int(b), ==, 0);
	T_EXPECT_INT(weft_sem_tryacquire(s), ==, -EAGAIN);
	return NULL;
}

START_TEST(sem_cancel_while_waiting_returns_ecanceled)
{
	struct weft_config cfg = t_config(2);
	struct weft_sem s = WEFT_SEM_INIT(0);

	T_RUN(sem_cancel_main, &s, &cfg, NULL);
}
END_TEST

/*
 * Once
 */

struct oncex {
	struct weft_once o;
	atomic_int runs;
	atomic_int done;
	atomic_int bad;
};

static void
once_fn(void *arg)
{
	struct oncex *x = arg;
	int i;

	atomic_fetch_add(&x->runs, 1);
	for (i = 0; i < 10; i++)
		weft_yield();	/* let the others pile up */
	atomic_store(&x->done, 1);
}

static void *
once_caller(void *arg)
{
	struct oncex *x = arg;

	T_EXPECT_INT(weft_once(&x->o, once_fn, x, WEFT_DEADLINE_NONE), ==, 0);
	if (!atomic_load(&x->done))
		atomic_fetch_add(&x->bad, 1);
	return NULL;
}

static void *
once_main(void *arg)
{
	spawn_join(100, once_caller, arg);
	return NULL;
}

START_TEST(once_runs_fn_exactly_once_for_racing_callers)
{
	struct weft_config cfg = t_config(4);
	struct oncex x = { WEFT_ONCE_INIT, 0, 0, 0 };

	T_RUN(once_main, &x, &cfg, NULL);
	ck_assert_int_eq(atomic_load(&x.runs), 1);
	ck_assert_int_eq(atomic_load(&x.bad), 0);
	/* Done for good, also on a plain thread. */
	ck_assert_int_eq(weft_once(&x.o, once_fn, &x, WEFT_DEADLINE_NONE), 0);
	ck_assert_int_eq(atomic_load(&x.runs), 1);
}
END_TEST

/* fn blocks on a semaphore so that other callers must wait for it. */
struct once_slow {
	struct weft_once o;
	struct weft_sem gate;
	atomic_int started;
	atomic_int runs;
};

static void
once_slow_fn(void *arg)
{
	struct once_slow *x = arg;

	atomic_fetch_add(&x->runs, 1);
	atomic_store(&x->started, 1);
	T_EXPECT_INT(weft_sem_acquire(&x->gate, WEFT_DEADLINE_NONE), ==, 0);
}

static void *
once_slow_caller(void *arg)
{
	struct once_slow *x = arg;

	return t_ptr(weft_once(&x->o, once_slow_fn, x, WEFT_DEADLINE_NONE));
}

static void *
once_wait_main(void *arg)
{
	struct once_slow *x = arg;
	struct weft_task *a;
	struct weft_task *b;

	T_EXPECT_INT(weft_once(&x->o, NULL, NULL, WEFT_DEADLINE_NONE), ==,
		     -EINVAL);
	a = spawn1(once_slow_caller, x);
	T_WAIT(atomic_load(&x->started), "fn to start");
	T_EXPECT_INT(weft_once(&x->o, once_slow_fn, x, in_ms(5)), ==,
		     -ETIMEDOUT);
	b = spawn1(once_slow_caller, x);
	wait_parked(b);
	weft_cancel(b);
	T_EXPECT_INT(join_int(b), ==, -ECANCELED);
	T_EXPECT_INT(weft_sem_release(&x->gate), ==, 0);
	T_EXPECT_INT(join_int(a), ==, 0);
	T_EXPECT_INT(weft_once(&x->o, once_slow_fn, x, 0), ==, 0);
	T_EXPECT_INT(atomic_load(&x->runs), ==, 1);
	return NULL;
}

START_TEST(once_waiters_time_out_and_cancel_while_fn_runs)
{
	struct weft_config cfg = t_config(2);
	struct once_slow x = { WEFT_ONCE_INIT, WEFT_SEM_INIT(0), 0, 0 };

	T_RUN(once_wait_main, &x, &cfg, NULL);
}
END_TEST

START_TEST(counters_report_overflow)
{
	struct weft_waitgroup wg = WEFT_WAITGROUP_INIT;
	struct weft_sem s;

	ck_assert_int_eq(weft_waitgroup_add(&wg, INT64_MAX), 0);
	ck_assert_int_eq(weft_waitgroup_add(&wg, 1), -EOVERFLOW);
	ck_assert_int_eq(weft_waitgroup_add(&wg, -INT64_MAX), 0);
	ck_assert_int_eq(weft_waitgroup_wait(&wg, WEFT_DEADLINE_NONE), 0);
	ck_assert_int_eq(weft_sem_init(&s, UINT64_MAX), 0);
	ck_assert_int_eq(weft_sem_release(&s), -EOVERFLOW);
	ck_assert_int_eq(weft_sem_tryacquire(&s), 0);
	ck_assert_int_eq(weft_sem_release(&s), 0);
}
END_TEST

/*
 * Plain threads and coroutines together
 */

struct mixed {
	struct weft_mutex m;
	struct weft_waitgroup all;	/* coroutines + the thread */
	struct weft_waitgroup coros;	/* coroutines only */
	long n;
	int thread_timeouts;
};

#define MIXED_CORO 20
#define MIXED_ITERS 200

static void *
mixed_thread(void *arg)
{
	struct mixed *x = arg;
	int i;

	for (i = 0; i < MIXED_ITERS; i++) {
		T_EXPECT_INT(weft_mutex_lock(&x->m, WEFT_DEADLINE_NONE), ==, 0);
		x->n++;
		T_EXPECT_INT(weft_mutex_unlock(&x->m), ==, 0);
	}
	/* Blocks this thread until the coroutines are through. */
	T_EXPECT_INT(weft_waitgroup_wait(&x->coros, WEFT_DEADLINE_NONE), ==,
		     0);
	T_EXPECT_INT(weft_waitgroup_done(&x->all), ==, 0);
	return NULL;
}

static void *
mixed_coro(void *arg)
{
	struct mixed *x = arg;
	int i;

	for (i = 0; i < MIXED_ITERS; i++) {
		T_EXPECT_INT(weft_mutex_lock(&x->m, WEFT_DEADLINE_NONE), ==, 0);
		long v = x->n;
		weft_yield();	/* make the thread block on the mutex */
		x->n = v + 1;
		T_EXPECT_INT(weft_mutex_unlock(&x->m), ==, 0);
	}
	weft_waitgroup_done(&x->coros);
	weft_waitgroup_done(&x->all);
	return NULL;
}

static void *
mixed_main(void *arg)
{
	struct mixed *x = arg;
	pthread_t th;
	int i;

	weft_waitgroup_add(&x->all, MIXED_CORO + 1);
	weft_waitgroup_add(&x->coros, MIXED_CORO);
	T_EXPECT_INT(pthread_create(&th, NULL, mixed_thread, x), ==, 0);
	for (i = 0; i < MIXED_CORO; i++)
		T_EXPECT_INT(weft_spawn(NULL, mixed_coro, x, NULL), ==, 0);
	T_EXPECT_INT(weft_waitgroup_wait(&x->all, WEFT_DEADLINE_NONE), ==, 0);
	/* The thread is past its last weft call. */
	pthread_join(th, NULL);
	T_EXPECT_INT(x->n, ==, (MIXED_CORO + 1) * MIXED_ITERS);
	return NULL;
}

START_TEST(plain_thread_and_coroutines_share_mutex_and_waitgroup)
{
	struct weft_config cfg = t_config(2);
	struct mixed x = { .m = WEFT_MUTEX_INIT, .all = WEFT_WAITGROUP_INIT,
			   .coros = WEFT_WAITGROUP_INIT };

	T_RUN(mixed_main, &x, &cfg, NULL);
}
END_TEST

struct thr_to {
	struct weft_mutex m;
	struct weft_cond c;
	int r_lock;
	int r_cond;
	int r_unlock;
};

static void *
timeout_thread(void *arg)
{
	struct thr_to *x = arg;

	x->r_lock = weft_mutex_lock(&x->m, weft_now() + 5 * WEFT_MSEC);
	return NULL;
}

static void *
thread_timeout_main(void *arg)
{
	struct thr_to *x = arg;
	pthread_t th;

	weft_mutex_lock(&x->m, WEFT_DEADLINE_NONE);
	T_EXPECT_INT(pthread_create(&th, NULL, timeout_thread, x), ==, 0);
	/* Give the thread time to give up; joining blocks this worker. */
	pthread_join(th, NULL);
	T_EXPECT_INT(x->r_lock, ==, -ETIMEDOUT);
	weft_mutex_unlock(&x->m);
	return NULL;
}

START_TEST(plain_thread_lock_times_out)
{
	struct weft_config cfg = t_config(2);
	struct thr_to x = { .m = WEFT_MUTEX_INIT, .c = WEFT_COND_INIT };

	T_RUN(thread_timeout_main, &x, &cfg, NULL);
	/* Cond on a plain thread (no runtime). */
	ck_assert_int_eq(weft_mutex_lock(&x.m, WEFT_DEADLINE_NONE), 0);
	ck_assert_int_eq(weft_cond_wait(&x.c, &x.m, weft_now() + WEFT_MSEC),
			 -ETIMEDOUT);
	ck_assert_int_eq(weft_mutex_unlock(&x.m), 0);
}
END_TEST

/*
 * Timeouts racing hand-offs: many tasks lock with deadlines of a few
 * microseconds to a millisecond while the lock changes hands (often in
 * starvation mode).  Every successful lock must be a real one (the counter
 * stays exact) and no hand-off may be lost (the mutex ends unlocked).
 */
struct race {
	struct weft_mutex m;
	struct weft_sem s;
	long n;
	atomic_long ok;
	atomic_long timeouts;
	atomic_int inside;
	atomic_int over;
};

static void *
race_task(void *arg)
{
	struct race *x = arg;
	uint64_t rnd = (uint64_t)(uintptr_t)weft_self() * 2654435761u;
	int i;
	int r;

	for (i = 0; i < 50; i++) {
		int64_t dl = weft_now() +
			     (int64_t)(t_rand(&rnd) % (1000 * WEFT_USEC));
		r = weft_mutex_lock(&x->m, dl);
		if (r == -ETIMEDOUT) {
			atomic_fetch_add(&x->timeouts, 1);
			continue;
		}
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			continue;
		long v = x->n;
		if (t_rand(&rnd) % 2)
			weft_yield();
		else
			t_burn(20 * WEFT_USEC);
		x->n = v + 1;
		atomic_fetch_add(&x->ok, 1);
		T_EXPECT_INT(weft_mutex_unlock(&x->m), ==, 0);
	}
	for (i = 0; i < 50; i++) {
		int64_t dl = weft_now() +
			     (int64_t)(t_rand(&rnd) % (500 * WEFT_USEC));
		r = weft_sem_acquire(&x->s, dl);
		if (r == -ETIMEDOUT)
			continue;
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			continue;
		if (atomic_fetch_add(&x->inside, 1) >= 2)
			atomic_fetch_add(&x->over, 1);
		weft_yield();
		atomic_fetch_sub(&x->inside, 1);
		T_EXPECT_INT(weft_sem_release(&x->s), ==, 0);
	}
	return NULL;
}

static void *
race_main(void *arg)
{
	spawn_join(100, race_task, arg);
	return NULL;
}

START_TEST(timeouts_racing_handoffs_lose_nothing)
{
	struct weft_config cfg = t_config(4);
	struct race x;

	memset(&x, 0, sizeof(x));
	weft_sem_init(&x.s, 2);
	T_RUN(race_main, &x, &cfg, NULL);
	ck_assert_int_gt(x.n, 0);
	ck_assert_int_eq(x.n, atomic_load(&x.ok));
	ck_assert_int_eq(atomic_load(&x.over), 0);
	ck_assert_int_eq(weft_mutex_trylock(&x.m), 0);
	ck_assert_int_eq(weft_mutex_unlock(&x.m), 0);
	ck_assert_int_eq(weft_sem_tryacquire(&x.s), 0);
	ck_assert_int_eq(weft_sem_tryacquire(&x.s), 0);
	ck_assert_int_eq(weft_sem_tryacquire(&x.s), -EAGAIN);
}
END_TEST

static Suite *
sync_suite(void)
{
	Suite *s = suite_create("runtime/sync");
	TCase *tc;

	tc = t_tcase(s, "mutex", T_TIMEOUT);
	tcase_add_test(tc, mutex_counter_is_exact_on_1_worker);
	tcase_add_test(tc, mutex_counter_is_exact_on_2_workers);
	tcase_add_test(tc, mutex_counter_is_exact_on_4_workers);
	tcase_add_test(tc, mutex_trylock_and_unlock_eperm_outside_runtime);
	tcase_add_test(tc,
		       mutex_lock_deadline_times_out_without_losing_handoff);
	tcase_add_test(tc, mutex_cancel_while_waiting_returns_ecanceled);
	tcase_add_test(tc, mutex_starving_waiter_gets_lock_from_tight_relocker);
	tcase_add_test(tc, timeouts_racing_handoffs_lose_nothing);

	tc = t_tcase(s, "rwlock", T_TIMEOUT);
	tcase_add_test(tc, rwlock_admits_many_readers_at_once);
	tcase_add_test(tc, rwlock_writer_excludes_readers_and_writers);
	tcase_add_test(tc, rwlock_waiting_writer_stops_new_readers);
	tcase_add_test(tc, rwlock_cancel_while_waiting_returns_ecanceled);

	tc = t_tcase(s, "cond", T_TIMEOUT);
	tcase_add_test(tc, cond_producer_consumer_with_signal);
	tcase_add_test(tc, cond_producer_consumer_with_broadcast);
	tcase_add_test(tc, cond_broadcast_wakes_every_waiter);
	tcase_add_test(tc, cond_wait_deadline_times_out_holding_mutex);
	tcase_add_test(tc, cond_cancel_returns_ecanceled_with_mutex_held);
	tcase_add_test(tc, cond_cancel_relocks_on_one_worker);

	tc = t_tcase(s, "waitgroup", T_TIMEOUT);
	tcase_add_test(tc, waitgroup_waits_for_1000_tasks);
	tcase_add_test(
		tc, waitgroup_negative_is_einval_and_zero_returns_at_once);
	tcase_add_test(tc, waitgroup_cancel_while_waiting_returns_ecanceled);

	tc = t_tcase(s, "sem", T_TIMEOUT);
	tcase_add_test(tc, sem_bounds_concurrency);
	tcase_add_test(tc, sem_static_init_and_deadline);
	tcase_add_test(tc, sem_cancel_while_waiting_returns_ecanceled);

	tc = t_tcase(s, "once", T_TIMEOUT);
	tcase_add_test(tc, once_runs_fn_exactly_once_for_racing_callers);
	tcase_add_test(tc, once_waiters_time_out_and_cancel_while_fn_runs);
	tcase_add_test(tc, counters_report_overflow);

	tc = t_tcase(s, "threads", T_TIMEOUT);
	tcase_add_test(tc,
		       plain_thread_and_coroutines_share_mutex_and_waitgroup);
	tcase_add_test(tc, plain_thread_lock_times_out);

	return s;
}

int
main(void)
{
	return t_main(sync_suite());
}

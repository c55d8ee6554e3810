/* SPDX-License-Identifier: MIT */
/*
 * Channels and select: rendezvous and buffered transfer across workers,
 * FIFO order, close semantics, select fairness, deadlines and the
 * non-blocking form, cancellation of every kind of wait, plain threads
 * feeding coroutines, Go's daisy chain and the skynet tree.
 */
#include <pthread.h>

#include "harness.h"

#if defined(WEFT_TSAN)
#define DAISY 1000
#define SKYNET_N 10000
#define ROUNDS 2000
#elif defined(WEFT_ASAN)
#define DAISY 10000
#define SKYNET_N 100000
#define ROUNDS 20000
#else
#define DAISY 10000
#define SKYNET_N 1000000
#define ROUNDS 20000
#endif

static struct weft_chan *
mk(size_t elem, size_t cap)
{
	struct weft_chan *ch = NULL;

	ck_assert_int_eq(weft_chan_make(&ch, elem, cap), 0);
	return ch;
}

/* Rendezvous and buffered ping-pong between two tasks on two workers. */
struct pp {
	struct weft_chan *a, *b;
	int n;
};

static void *
pp_echo(void *arg)
{
	struct pp *p = arg;
	int v;

	for (int i = 0; i < p->n; i++) {
		T_EXPECT_INT(weft_chan_recv(p->a, &v, WEFT_DEADLINE_NONE), ==, 0);
		T_EXPECT_INT(v, ==, i);
		T_EXPECT_INT(weft_chan_send(p->b, &v, WEFT_DEADLINE_NONE), ==, 0);
	}
	return NULL;
}

static void *
pp_main(void *arg)
{
	size_t cap = (size_t)t_int(arg);
	struct pp p = { mk(sizeof(int), cap), mk(sizeof(int), cap), ROUNDS };
	struct weft_task *t;
	int v;

	T_EXPECT_INT(weft_spawn(&t, pp_echo, &p, NULL), ==, 0);
	for (int i = 0; i < p.n; i++) {
		T_EXPECT_INT(weft_chan_send(p.a, &i, WEFT_DEADLINE_NONE), ==, 0);
		T_EXPECT_INT(weft_chan_recv(p.b, &v, WEFT_DEADLINE_NONE), ==, 0);
		T_EXPECT_INT(v, ==, i);
	}
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	weft_chan_release(p.a);
	weft_chan_release(p.b);
	return NULL;
}

START_TEST(unbuffered_ping_pong_across_two_workers)
{
	struct weft_config cfg = t_config(2);

	T_RUN(pp_main, t_ptr(0), &cfg, NULL);
}
END_TEST

START_TEST(buffered_ping_pong_across_two_workers)
{
	struct weft_config cfg = t_config(2);

	T_RUN(pp_main, t_ptr(4), &cfg, NULL);
}
END_TEST

/* A buffered channel keeps FIFO order; trysend/tryrecv say -EAGAIN. */
static void *
fifo_main(void *arg)
{
	struct weft_chan *ch = mk(sizeof(uint64_t), 64);
	uint64_t v;

	(void)arg;
	T_EXPECT_INT(weft_chan_cap(ch), ==, 64);
	T_EXPECT_INT(weft_chan_tryrecv(ch, &v), ==, -EAGAIN);
	for (uint64_t i = 0; i < 64; i++)
		T_EXPECT_INT(weft_chan_trysend(ch, &i), ==, 0);
	T_EXPECT_INT(weft_chan_len(ch), ==, 64);
	v = 99;
	T_EXPECT_INT(weft_chan_trysend(ch, &v), ==, -EAGAIN);
	T_EXPECT_INT(weft_chan_send(ch, &v, weft_now() + WEFT_MSEC), ==,
		     -ETIMEDOUT);
	for (uint64_t i = 0; i < 64; i++) {
		T_EXPECT_INT(weft_chan_recv(ch, &v, WEFT_DEADLINE_NONE), ==, 0);
		T_EXPECT_INT(v, ==, i);
	}
	T_EXPECT_INT(weft_chan_recv(ch, &v, weft_now() + WEFT_MSEC), ==,
		     -ETIMEDOUT);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(buffered_channel_is_fifo)
{
	T_RUN(fifo_main, NULL, NULL, NULL);
}
END_TEST

/* Close: buffered values drain, then -EPIPE; waiting senders get -EPIPE. */
static void *
blocked_sender(void *arg)
{
	int v = 7;

	return t_ptr(weft_chan_send(arg, &v, WEFT_DEADLINE_NONE));
}

static void *
blocked_receiver(void *arg)
{
	int v;

	return t_ptr(weft_chan_recv(arg, &v, WEFT_DEADLINE_NONE));
}

static void *
close_main(void *arg)
{
	struct weft_chan *ch = mk(sizeof(int), 2);
	struct weft_chan *un = mk(sizeof(int), 0);
	struct weft_chan *empty = mk(sizeof(int), 0);
	struct weft_task *s[4], *r[4];
	void *res;
	int v;

	(void)arg;
	v = 1;
	T_EXPECT_INT(weft_chan_send(ch, &v, WEFT_DEADLINE_NONE), ==, 0);
	v = 2;
	T_EXPECT_INT(weft_chan_send(ch, &v, WEFT_DEADLINE_NONE), ==, 0);
	for (int i = 0; i < 4; i++)
		T_EXPECT_INT(weft_spawn(&s[i], blocked_sender, un, NULL), ==, 0);
	for (int i = 0; i < 4; i++)
		T_EXPECT_INT(weft_spawn(&r[i], blocked_receiver, empty, NULL),
			     ==, 0);
	for (int i = 0; i < 4; i++) {
		T_WAIT(weft_task_state(s[i]) == WEFT_SUSPENDED, "sender parks");
		T_WAIT(weft_task_state(r[i]) == WEFT_SUSPENDED,
		       "receiver parks");
	}
	T_EXPECT_INT(weft_chan_close(ch), ==, 0);
	T_EXPECT_INT(weft_chan_close(ch), ==, -EPIPE);
	T_EXPECT_INT(weft_chan_close(un), ==, 0);
	T_EXPECT_INT(weft_chan_close(empty), ==, 0);
	for (int i = 0; i < 4; i++) {
		T_EXPECT_INT(weft_join(s[i], &res, WEFT_DEADLINE_NONE), ==, 0);
		T_EXPECT_INT(t_int(res), ==, -EPIPE);
		T_EXPECT_INT(weft_join(r[i], &res, WEFT_DEADLINE_NONE), ==, 0);
		T_EXPECT_INT(t_int(res), ==, -EPIPE);
	}
	T_EXPECT_INT(weft_chan_send(ch, &v, WEFT_DEADLINE_NONE), ==, -EPIPE);
	T_EXPECT_INT(weft_chan_recv(ch, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(v, ==, 1);
	T_EXPECT_INT(weft_chan_recv(ch, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(v, ==, 2);
	T_EXPECT_INT(weft_chan_recv(ch, &v, WEFT_DEADLINE_NONE), ==, -EPIPE);
	T_EXPECT_INT(weft_chan_tryrecv(ch, &v), ==, -EPIPE);
	weft_chan_release(ch);
	weft_chan_release(un);
	weft_chan_release(empty);
	return NULL;
}

START_TEST(close_drains_then_epipe_and_releases_senders)
{
	struct weft_config cfg = t_config(2);

	T_RUN(close_main, NULL, &cfg, NULL);
}
END_TEST

/* Select: every ready case is chosen about equally often. */
#define FAIR_CASES 4
#define FAIR_ROUNDS 8000

static void *
fair_main(void *arg)
{
	struct weft_chan *ch[FAIR_CASES];
	struct weft_select_case c[FAIR_CASES];
	int hits[FAIR_CASES] = { 0 };
	int v = 1, out[FAIR_CASES];

	(void)arg;
	for (int i = 0; i < FAIR_CASES; i++) {
		ch[i] = mk(sizeof(int), 1);
		c[i] = (struct weft_select_case){ ch[i], WEFT_SELECT_RECV,
						  &out[i], 1 };
	}
	for (int r = 0; r < FAIR_ROUNDS; r++) {
		int k;

		for (int i = 0; i < FAIR_CASES; i++)
			if (weft_chan_len(ch[i]) == 0)
				T_EXPECT_INT(weft_chan_trysend(ch[i], &v), ==,
					     0);
		k = weft_select(c, FAIR_CASES, WEFT_DEADLINE_NONE);
		T_EXPECT(k >= 0 && k < FAIR_CASES, "select returned %d", k);
		if (k < 0 || k >= FAIR_CASES)
			break;
		T_EXPECT_INT(c[k].result, ==, 0);
		hits[k]++;
	}
	/* Expected 2000 each; 6 sigma is about 230. */
	for (int i = 0; i < FAIR_CASES; i++)
		T_EXPECT(hits[i] > 1700 && hits[i] < 2300,
			 "case %d chosen %d times of %d", i, hits[i],
			 FAIR_ROUNDS);
	for (int i = 0; i < FAIR_CASES; i++)
		weft_chan_release(ch[i]);
	return NULL;
}

START_TEST(select_chooses_ready_cases_uniformly)
{
	T_RUN(fair_main, NULL, NULL, NULL);
}
END_TEST

/* Select waits, with deadline, non-blocking, send cases, closed channels. */
static void *
late_send(void *arg)
{
	int v = 42;

	weft_yield();
	T_EXPECT_INT(weft_chan_send(arg, &v, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

static void *
late_recv(void *arg)
{
	int v = 0;

	T_EXPECT_INT(weft_chan_recv(arg, &v, WEFT_DEADLINE_NONE), ==, 0);
	return t_ptr(v);
}

static void *
select_main(void *arg)
{
	struct weft_chan *a = mk(sizeof(int), 0), *b = mk(sizeof(int), 0);
	struct weft_select_case c[3];
	struct weft_task *t;
	int64_t dl;
	void *res;
	int in = 0, out = 5, k;

	(void)arg;
	c[0] = (struct weft_select_case){ a, WEFT_SELECT_RECV, &in, 1 };
	c[1] = (struct weft_select_case){ b, WEFT_SELECT_SEND, &out, 1 };
	c[2] = (struct weft_select_case){ NULL, 0, NULL, 1 };
	/* Nothing ready: the non-blocking form and a deadline. */
	T_EXPECT_INT(weft_select(c, 3, 0), ==, -EAGAIN);
	dl = weft_now() + 20 * WEFT_MSEC;
	T_EXPECT_INT(weft_select(c, 3, dl), ==, -ETIMEDOUT);
	T_EXPECT(weft_now() >= dl, "select returned before its deadline");
	/* A receive case fired by a sender that comes later. */
	T_EXPECT_INT(weft_spawn(&t, late_send, a, NULL), ==, 0);
	k = weft_select(c, 3, WEFT_DEADLINE_NONE);
	T_EXPECT_INT(k, ==, 0);
	T_EXPECT_INT(c[0].result, ==, 0);
	T_EXPECT_INT(in, ==, 42);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	/* A send case fired by a receiver that comes later. */
	T_EXPECT_INT(weft_spawn(&t, late_recv, b, NULL), ==, 0);
	k = weft_select(c, 3, WEFT_DEADLINE_NONE);
	T_EXPECT_INT(k, ==, 1);
	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 5);
	/* A closed channel fires its receive case with -EPIPE. */
	T_EXPECT_INT(weft_chan_close(a), ==, 0);
	k = weft_select(c, 1, WEFT_DEADLINE_NONE);
	T_EXPECT_INT(k, ==, 0);
	T_EXPECT_INT(c[0].result, ==, -EPIPE);
	/* Bad input. */
	c[2].ch = b;
	c[2].op = 99;
	T_EXPECT_INT(weft_select(c, 3, 0), ==, -EINVAL);
	T_EXPECT_INT(weft_select(NULL, 1, 0), ==, -EINVAL);
	weft_chan_release(a);
	weft_chan_release(b);
	return NULL;
}

START_TEST(select_waits_times_out_and_sees_close)
{
	struct weft_config cfg = t_config(2);

	T_RUN(select_main, NULL, &cfg, NULL);
}
END_TEST

/* Cancellation of a task blocked in send, recv and select. */
static void *
sel_blocked(void *arg)
{
	struct weft_select_case c = { arg, WEFT_SELECT_RECV, NULL, 1 };

	return t_ptr(weft_select(&c, 1, WEFT_DEADLINE_NONE));
}

static void *
cancel_main(void *arg)
{
	struct weft_chan *ch = mk(sizeof(int), 0);
	weft_fn fns[3] = { blocked_sender, blocked_receiver, sel_blocked };
	struct weft_task *t;
	void *res;
	int v = 3;

	(void)arg;
	for (int i = 0; i < 3; i++) {
		T_EXPECT_INT(weft_spawn(&t, fns[i], ch, NULL), ==, 0);
		T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "task parks");
		weft_cancel(t);
		T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
		T_EXPECT_INT(t_int(res), ==, -ECANCELED);
	}
	/* The channel still works: no stale waiter swallows a value. */
	T_EXPECT_INT(weft_spawn(&t, late_recv, ch, NULL), ==, 0);
	T_EXPECT_INT(weft_chan_send(ch, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 3);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(cancel_while_waiting_in_send_recv_select)
{
	struct weft_config cfg = t_config(2);

	T_RUN(cancel_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * A cancel that lands while the victim is between arming its park and
 * leaving the CPU must not be lost: the victim waits with no deadline, in a
 * lock-guarded park (runtime.h), whose flag read under the channel's lock
 * must see the flag or else the canceller must find the park armed.  Nobody
 * sends on the channel, so a lost cancel hangs the join (and the test's
 * timeout fails it).  The canceller runs on the other worker, or on a plain
 * thread.
 */
#define CANCEL_RACE_ROUNDS 3000

struct cancel_race {
	struct weft_chan *never;
	atomic_int armed;	/* the victim is about to receive */
	int ret;		/* what its receive returned */
};

static void *
race_victim(void *arg)
{
	struct cancel_race *cr = arg;
	int v;

	atomic_store(&cr->armed, 1);
	cr->ret = weft_chan_recv(cr->never, &v, WEFT_DEADLINE_NONE);
	return NULL;
}

struct race_thread {
	struct weft_task *_Atomic victim;
	atomic_int stop;
	atomic_long done;
};

static void *
race_thread_canceller(void *arg)
{
	struct race_thread *rt = arg;
	struct weft_task *t;

	while (!atomic_load(&rt->stop)) {
		t = atomic_exchange(&rt->victim, NULL);
		if (!t) {
			t_cpu_relax();
			continue;
		}
		weft_cancel(t);
		atomic_fetch_add(&rt->done, 1);
	}
	return NULL;
}

static void *
cancel_race_main(void *arg)
{
	struct race_thread rt = { .victim = NULL };
	struct cancel_race cr;
	struct weft_task *t;
	pthread_t th;
	long lost = 0;

	(void)arg;
	T_EXPECT_INT(pthread_create(&th, NULL, race_thread_canceller, &rt),
		     ==, 0);
	for (int round = 0; round < CANCEL_RACE_ROUNDS && !t_failed();
	     round++) {
		memset(&cr, 0, sizeof(cr));
		cr.never = mk(sizeof(int), 0);
		T_EXPECT_INT(weft_spawn(&t, race_victim, &cr, NULL), ==, 0);
		/* Spin (no yield) until it is about to park, then cancel. */
		while (!atomic_load(&cr.armed))
			if (weft_workers() == 1 || round % 4 == 3)
				weft_yield();
		if (round % 2) {
			long before = atomic_load(&rt.done);

			atomic_store(&rt.victim, t);
			while (atomic_load(&rt.done) == before)
				weft_yield();
		} else {
			t_burn((round % 7) * 100);
			weft_cancel(t);
		}
		T_EXPECT_INT(weft_join(t, NULL, weft_now() + t_stall_ns()), ==, 0);
		if (cr.ret != -ECANCELED)
			lost++;
		weft_chan_release(cr.never);
	}
	atomic_store(&rt.stop, 1);
	pthread_join(th, NULL);
	T_EXPECT_INT(lost, ==, 0);
	return NULL;
}

START_TEST(cancel_racing_a_channel_park_is_never_lost)
{
	struct weft_config cfg = t_config(2);

	T_RUN(cancel_race_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * A receive woken by a send and cancelled at the same moment: exactly one
 * of the two wins (a value is never both delivered and dropped for the
 * cancel), and the channel may be freed as soon as the receiver is back,
 * with the canceller (a plain thread) perhaps still inside weft_cancel()
 * on its way to the channel's lock (under ASan a visit to freed memory
 * fails the test).
 */
#define WAKE_CANCEL_ROUNDS 2000

struct wake_cancel {
	struct weft_chan *ch;
	int v;
	int ret;
	atomic_int back;	/* the receive returned */
};

static void *
wake_cancel_victim(void *arg)
{
	struct wake_cancel *wc = arg;

	wc->ret = weft_chan_recv(wc->ch, &wc->v, WEFT_DEADLINE_NONE);
	atomic_store(&wc->back, 1);
	return NULL;
}

static void *
wake_cancel_main(void *arg)
{
	struct race_thread rt = { .victim = NULL };
	struct wake_cancel wc;
	struct weft_task *t;
	long delivered = 0, cancelled = 0, before;
	pthread_t th;
	int seven = 7, sent;

	(void)arg;
	T_EXPECT_INT(pthread_create(&th, NULL, race_thread_canceller, &rt),
		     ==, 0);
	for (int round = 0; round < WAKE_CANCEL_ROUNDS && !t_failed();
	     round++) {
		memset(&wc, 0, sizeof(wc));
		wc.v = -1;
		wc.ch = mk(sizeof(int), 0);
		T_EXPECT_INT(weft_spawn(&t, wake_cancel_victim, &wc, NULL), ==,
			     0);
		while (weft_task_state(t) != WEFT_SUSPENDED)
			weft_yield();
		before = atomic_load(&rt.done);
		atomic_store(&rt.victim, t);
		t_burn((round % 5) * 200);
		sent = weft_chan_trysend(wc.ch, &seven);
		while (!atomic_load(&wc.back))
			weft_yield();
		/* The only reference: freed now, the canceller may be busy. */
		weft_chan_release(wc.ch);
		while (atomic_load(&rt.done) == before)
			weft_yield();
		T_EXPECT_INT(weft_join(t, NULL, weft_now() + t_stall_ns()), ==,
			     0);
		if (sent == 0) {
			T_EXPECT_INT(wc.ret, ==, 0);
			T_EXPECT_INT(wc.v, ==, 7);
			delivered++;
		} else {
			T_EXPECT_INT(sent, ==, -EAGAIN);
			T_EXPECT_INT(wc.ret, ==, -ECANCELED);
			T_EXPECT_INT(wc.v, ==, -1);
			cancelled++;
		}
	}
	atomic_store(&rt.stop, 1);
	pthread_join(th, NULL);
	T_EXPECT_INT(delivered + cancelled, ==, WAKE_CANCEL_ROUNDS);
	printf("wake_cancel: %ld delivered, %ld cancelled\n", delivered,
	       cancelled);
	return NULL;
}

START_TEST(cancel_racing_a_send_delivers_or_cancels_never_both)
{
	struct weft_config cfg = t_config(2);

	T_RUN(wake_cancel_main, NULL, &cfg, NULL);
}
END_TEST

/* A plain thread feeds coroutines (it blocks on the channel). */
#define FEED 5000

static void *
feeder(void *arg)
{
	for (int i = 0; i < FEED; i++)
		if (weft_chan_send(arg, &i, WEFT_DEADLINE_NONE) != 0)
			return t_ptr(1);
	weft_chan_close(arg);
	return NULL;
}

static void *
eater(void *arg)
{
	int64_t sum = 0;
	int v;

	while (weft_chan_recv(arg, &v, WEFT_DEADLINE_NONE) == 0)
		sum += v;
	return t_ptr((intptr_t)sum);
}

static void *
feed_main(void *arg)
{
	struct weft_chan *ch = mk(sizeof(int), 0);
	struct weft_task *t[4];
	pthread_t th;
	int64_t sum = 0;
	void *res;

	(void)arg;
	for (int i = 0; i < 4; i++)
		T_EXPECT_INT(weft_spawn(&t[i], eater, ch, NULL), ==, 0);
	T_EXPECT_INT(pthread_create(&th, NULL, feeder, ch), ==, 0);
	for (int i = 0; i < 4; i++) {
		T_EXPECT_INT(weft_join(t[i], &res, WEFT_DEADLINE_NONE), ==, 0);
		sum += t_int(res);
	}
	pthread_join(th, &res);
	T_EXPECT(res == NULL, "the feeding thread failed to send");
	T_EXPECT_INT(sum, ==, (int64_t)FEED * (FEED - 1) / 2);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(plain_thread_feeds_coroutines)
{
	struct weft_config cfg = t_config(2);

	T_RUN(feed_main, NULL, &cfg, NULL);
}
END_TEST

/* Go's daisy chain: DAISY tasks each pass n+1 to the left. */
struct link {
	struct weft_chan *left, *right;
};

static void *
whisper(void *arg)
{
	struct link *l = arg;
	int v;

	if (weft_chan_recv(l->right, &v, WEFT_DEADLINE_NONE) == 0) {
		v++;
		weft_chan_send(l->left, &v, WEFT_DEADLINE_NONE);
	}
	weft_chan_release(l->right);
	weft_chan_release(l->left);
	free(l);
	return NULL;
}

static void *
daisy_main(void *arg)
{
	struct weft_chan *leftmost = mk(sizeof(int), 0), *left = leftmost;
	struct weft_chan *right;
	int v = 1;

	(void)arg;
	for (int i = 0; i < DAISY; i++) {
		struct link *l = malloc(sizeof(*l));

		right = mk(sizeof(int), 0);
		l->left = weft_chan_retain(left);
		l->right = weft_chan_retain(right);
		T_EXPECT_INT(weft_spawn(NULL, whisper, l, NULL), ==, 0);
		if (left != leftmost)
			weft_chan_release(left);
		left = right;
	}
	T_EXPECT_INT(weft_chan_send(right, &v, WEFT_DEADLINE_NONE), ==, 0);
	weft_chan_release(right);
	T_EXPECT_INT(weft_chan_recv(leftmost, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(v, ==, DAISY + 1);
	weft_chan_release(leftmost);
	return NULL;
}

START_TEST(daisy_chain_of_ten_thousand)
{
	struct weft_config cfg = t_config(2);

	T_RUN(daisy_main, NULL, &cfg, NULL);
}
END_TEST

/* Skynet: a tree of tasks with fan-out 10 sums 0..N-1 through channels. */
struct sky {
	struct weft_chan *out;
	int64_t num;
	int64_t size;
};

static void *
skynet(void *arg)
{
	struct sky *s = arg;
	int64_t sum = 0, v;

	if (s->size == 1) {
		sum = s->num;
	} else {
		struct weft_chan *ch = mk(sizeof(int64_t), 10);
		int64_t step = s->size / 10;

		for (int i = 0; i < 10; i++) {
			struct sky *c = malloc(sizeof(*c));

			c->out = weft_chan_retain(ch);
			c->num = s->num + i * step;
			c->size = step;
			T_EXPECT_INT(weft_spawn(NULL, skynet, c, NULL), ==, 0);
		}
		for (int i = 0; i < 10; i++) {
			T_EXPECT_INT(weft_chan_recv(ch, &v, WEFT_DEADLINE_NONE),
				     ==, 0);
			sum += v;
		}
		weft_chan_release(ch);
	}
	T_EXPECT_INT(weft_chan_send(s->out, &sum, WEFT_DEADLINE_NONE), ==, 0);
	weft_chan_release(s->out);
	free(s);
	return NULL;
}

static void *
skynet_main(void *arg)
{
	struct weft_chan *ch = mk(sizeof(int64_t), 1);
	struct sky *root = malloc(sizeof(*root));
	int64_t sum = 0;

	(void)arg;
	root->out = weft_chan_retain(ch);
	root->num = 0;
	root->size = SKYNET_N;
	T_EXPECT_INT(weft_spawn(NULL, skynet, root, NULL), ==, 0);
	T_EXPECT_INT(weft_chan_recv(ch, &sum, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(sum, ==, (int64_t)SKYNET_N * (SKYNET_N - 1) / 2);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(skynet_sums_through_channels)
{
	struct weft_config cfg = t_config(2);

	T_RUN(skynet_main, NULL, &cfg, NULL);
}
END_TEST

static void *
bad_main(void *arg)
{
	struct weft_chan *ch = NULL;

	(void)arg;
	T_EXPECT_INT(weft_chan_make(&ch, 0, 1), ==, -EINVAL);
	T_EXPECT_INT(weft_chan_make(&ch, 65537, 1), ==, -EINVAL);
	T_EXPECT_INT(weft_chan_make(NULL, 4, 1), ==, -EINVAL);
	T_EXPECT_INT(weft_chan_send(NULL, &ch, 0), ==, -EINVAL);
	T_EXPECT_INT(weft_chan_close(NULL), ==, -EINVAL);
	return NULL;
}

START_TEST(bad_arguments_are_einval)
{
	T_RUN(bad_main, NULL, NULL, NULL);
}
END_TEST

static Suite *
chan_suite(void)
{
	Suite *s = suite_create("runtime/chan");
	TCase *tc;

	tc = t_tcase(s, "chan", T_TIMEOUT);
	tcase_add_test(tc, unbuffered_ping_pong_across_two_workers);
	tcase_add_test(tc, buffered_ping_pong_across_two_workers);
	tcase_add_test(tc, buffered_channel_is_fifo);
	tcase_add_test(tc, close_drains_then_epipe_and_releases_senders);
	tcase_add_test(tc, plain_thread_feeds_coroutines);
	tcase_add_test(tc, bad_arguments_are_einval);

	tc = t_tcase(s, "select", T_TIMEOUT);
	tcase_add_test(tc, select_chooses_ready_cases_uniformly);
	tcase_add_test(tc, select_waits_times_out_and_sees_close);
	tcase_add_test(tc, cancel_while_waiting_in_send_recv_select);
	tcase_add_test(tc, cancel_racing_a_channel_park_is_never_lost);
	tcase_add_test(tc, cancel_racing_a_send_delivers_or_cancels_never_both);

	tc = t_tcase(s, "scale", T_TIMEOUT_LONG);
	tcase_add_test(tc, daisy_chain_of_ten_thousand);
	tcase_add_test(tc, skynet_sums_through_channels);

	return s;
}

int
main(void)
{
	return t_main(chan_suite());
}

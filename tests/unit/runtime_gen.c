/* SPDX-License-Identifier: MIT */
/*
 * Generators: states, next/send/yield, close, yield_from, resuming from
 * other tasks and workers, concurrent resume, bodies that block, many
 * generators at once, and calls outside coroutine context.
 */
#include <unistd.h>

#include "harness.h"

/* Under TSan every generator is a fiber: see T_MILLION in harness.h. */
#if defined(WEFT_TSAN)
#define N_GENS 4000
#else
#define N_GENS 10000
#endif

/*
 * Counts 0..9, checking its own state on the way, then returns 0x42.
 * arg: an int that receives the number of yields that returned 0.
 */
static void *
count_body(struct weft_gen *g, void *arg)
{
	int *ok = arg;

	for (intptr_t i = 0; i < 10; i++) {
		T_EXPECT_INT(weft_gen_state(g), ==, WEFT_GEN_RUNNING);
		if (weft_gen_yield(g, t_ptr(i), NULL) == 0)
			(*ok)++;
	}
	return t_ptr(0x42);
}

static void *
count_main(void *arg)
{
	struct weft_gen *g;
	int ok = 0;
	void *v = NULL;

	T_EXPECT_INT(weft_gen_make(&g, count_body, &ok, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_state(g), ==, WEFT_GEN_CREATED);
	for (intptr_t i = 0; i < 10; i++) {
		T_EXPECT_INT(weft_gen_next(g, &v), ==, 1);
		T_EXPECT_INT(t_int(v), ==, i);
		T_EXPECT_INT(weft_gen_state(g), ==, WEFT_GEN_SUSPENDED);
	}
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 0x42);
	T_EXPECT_INT(ok, ==, 10);
	T_EXPECT_INT(weft_gen_state(g), ==, WEFT_GEN_CLOSED);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, -EPIPE);
	T_EXPECT_INT(weft_gen_send(g, NULL, &v), ==, -EPIPE);
	T_EXPECT_INT(weft_gen_close(g), ==, 0);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);
	return NULL;
}

START_TEST(counts_through_states_and_returns_value)
{
	struct weft_config cfg = t_config(1);

	T_RUN(count_main, NULL, &cfg, NULL);
}
END_TEST

/* Yields the running total of what is sent in; returns it on NULL. */
static void *
acc_body(struct weft_gen *g, void *arg)
{
	intptr_t total = 0;
	void *in = NULL;

	for (;;) {
		T_EXPECT_INT(weft_gen_yield(g, t_ptr(total), &in), ==, 0);
		if (!in)
			return t_ptr(-total);
		total += t_int(in);
	}
}

static void *
send_main(void *arg)
{
	struct weft_gen *g;
	void *v = NULL;

	T_EXPECT_INT(weft_gen_make(&g, acc_body, NULL, NULL), ==, 0);
	/* The first resume must send NULL, as Python's TypeError. */
	T_EXPECT_INT(weft_gen_send(g, t_ptr(5), &v), ==, -EINVAL);
	T_EXPECT_INT(weft_gen_state(g), ==, WEFT_GEN_CREATED);
	T_EXPECT_INT(weft_gen_send(g, NULL, &v), ==, 1);
	T_EXPECT_INT(t_int(v), ==, 0);
	for (intptr_t i = 1; i <= 100; i++) {
		T_EXPECT_INT(weft_gen_send(g, t_ptr(i), &v), ==, 1);
		T_EXPECT_INT(t_int(v), ==, i * (i + 1) / 2);
	}
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, -5050);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);
	return NULL;
}

START_TEST(send_passes_values_in)
{
	struct weft_config cfg = t_config(1);

	T_RUN(send_main, NULL, &cfg, NULL);
}
END_TEST

/* Closing: the body sees -ECANCELED from its yield and cleans up. */
struct closer {
	int ran;
	int cleaned;
	int ignore;		/* yields to make after a close */
	void *sent_on_cancel;
};

static void *
close_body(struct weft_gen *g, void *arg)
{
	struct closer *c = arg;
	void *in = t_ptr(1);
	int r;

	c->ran = 1;
	for (intptr_t i = 0;; i++) {
		r = weft_gen_yield(g, t_ptr(i), &in);
		if (r == -ECANCELED) {
			c->sent_on_cancel = in;
			if (c->ignore > 0) {
				c->ignore--;
				continue;
			}
			/* Cleanup may block: the closer blocks. */
			T_EXPECT_INT(weft_sleep(WEFT_MSEC), ==, 0);
			c->cleaned = 1;
			return t_ptr(0x99);
		}
		T_EXPECT_INT(r, ==, 0);
	}
}

static void *
close_main(void *arg)
{
	struct closer c = { 0 };
	struct weft_gen *g;
	void *v;

	/* Close of a suspended body runs its cleanup. */
	T_EXPECT_INT(weft_gen_make(&g, close_body, &c, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 1);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 1);
	T_EXPECT_INT(t_int(v), ==, 1);
	T_EXPECT_INT(weft_gen_free(g), ==, -EBUSY);
	T_EXPECT_INT(weft_gen_close(g), ==, 0);
	T_EXPECT_INT(c.cleaned, ==, 1);
	T_EXPECT(c.sent_on_cancel == NULL, "yield's *sent on close");
	T_EXPECT_INT(weft_gen_state(g), ==, WEFT_GEN_CLOSED);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, -EPIPE);
	T_EXPECT_INT(weft_gen_close(g), ==, 0);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);

	/* Close of a generator never started: CLOSED without running. */
	memset(&c, 0, sizeof(c));
	T_EXPECT_INT(weft_gen_make(&g, close_body, &c, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_close(g), ==, 0);
	T_EXPECT_INT(weft_gen_state(g), ==, WEFT_GEN_CLOSED);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, -EPIPE);
	T_EXPECT_INT(c.ran, ==, 0);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);

	/* Free of a generator never started. */
	T_EXPECT_INT(weft_gen_make(&g, close_body, &c, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);
	T_EXPECT_INT(c.ran, ==, 0);

	/* A body that yields after a close: -EPROTO, still SUSPENDED. */
	memset(&c, 0, sizeof(c));
	c.ignore = 1;
	T_EXPECT_INT(weft_gen_make(&g, close_body, &c, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 1);
	T_EXPECT_INT(weft_gen_close(g), ==, -EPROTO);
	T_EXPECT_INT(weft_gen_state(g), ==, WEFT_GEN_SUSPENDED);
	T_EXPECT_INT(c.cleaned, ==, 0);
	T_EXPECT_INT(weft_gen_close(g), ==, 0);
	T_EXPECT_INT(c.cleaned, ==, 1);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);
	return NULL;
}

START_TEST(close_runs_cleanup_and_closes)
{
	struct weft_config cfg = t_config(1);

	T_RUN(close_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * yield_from through two levels.  subsub yields 1, 2 (sleeping between),
 * records what it is sent and returns 100 + the sum of it.  sub yields 10,
 * delegates to subsub, yields its result + 1 and returns 200.  top
 * delegates to sub and returns its result + 1.
 */
struct chain {
	intptr_t subsub_got;
	int subsub_cleaned;
	int sub_cancelled;
	int top_cancelled;
};

static void *
subsub_body(struct weft_gen *g, void *arg)
{
	struct chain *ch = arg;
	void *in = NULL;

	for (intptr_t i = 1; i <= 2; i++) {
		int r = weft_gen_yield(g, t_ptr(i), &in);

		if (r == -ECANCELED) {
			ch->subsub_cleaned = 1;
			return NULL;
		}
		T_EXPECT_INT(weft_sleep(WEFT_MSEC / 10), ==, 0);
		ch->subsub_got += t_int(in);
	}
	return t_ptr(100 + ch->subsub_got);
}

static void *
sub_body(struct weft_gen *g, void *arg)
{
	struct chain *ch = arg;
	struct weft_gen *ss;
	void *in = NULL;
	void *r = NULL;
	int ret;

	T_EXPECT_INT(weft_gen_yield(g, t_ptr(10), &in), ==, 0);
	T_EXPECT_INT(t_int(in), ==, 7);
	T_EXPECT_INT(weft_gen_make(&ss, subsub_body, ch, NULL), ==, 0);
	ret = weft_gen_yield_from(g, ss, &r);
	T_EXPECT_INT(weft_gen_state(ss), ==, WEFT_GEN_CLOSED);
	T_EXPECT_INT(weft_gen_free(ss), ==, 0);
	if (ret == -ECANCELED) {
		ch->sub_cancelled = 1;
		return NULL;
	}
	T_EXPECT_INT(ret, ==, 0);
	T_EXPECT_INT(weft_gen_yield(g, t_ptr(t_int(r) + 1), &in), ==, 0);
	return t_ptr(200);
}

static void *
top_body(struct weft_gen *g, void *arg)
{
	struct chain *ch = arg;
	struct weft_gen *sub;
	void *r = NULL;
	int ret;

	T_EXPECT_INT(weft_gen_make(&sub, sub_body, ch, NULL), ==, 0);
	ret = weft_gen_yield_from(g, sub, &r);
	T_EXPECT_INT(weft_gen_state(sub), ==, WEFT_GEN_CLOSED);
	T_EXPECT_INT(weft_gen_free(sub), ==, 0);
	if (ret == -ECANCELED) {
		ch->top_cancelled = 1;
		return NULL;
	}
	T_EXPECT_INT(ret, ==, 0);
	return t_ptr(t_int(r) + 1);
}

static void *
yield_from_main(void *arg)
{
	struct chain ch = { 0 };
	struct weft_gen *g;
	void *v = NULL;

	T_EXPECT_INT(weft_gen_make(&g, top_body, &ch, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 1);
	T_EXPECT_INT(t_int(v), ==, 10);
	T_EXPECT_INT(weft_gen_send(g, t_ptr(7), &v), ==, 1);
	T_EXPECT_INT(t_int(v), ==, 1);
	T_EXPECT_INT(weft_gen_send(g, t_ptr(20), &v), ==, 1);
	T_EXPECT_INT(t_int(v), ==, 2);
	T_EXPECT_INT(weft_gen_send(g, t_ptr(30), &v), ==, 1);
	T_EXPECT_INT(t_int(v), ==, 151);	/* 100 + 20 + 30, + 1 */
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 201);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);

	/* Closing the top while it delegates closes the whole chain. */
	memset(&ch, 0, sizeof(ch));
	T_EXPECT_INT(weft_gen_make(&g, top_body, &ch, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 1);
	T_EXPECT_INT(weft_gen_send(g, t_ptr(7), &v), ==, 1);
	T_EXPECT_INT(t_int(v), ==, 1);
	T_EXPECT_INT(weft_gen_close(g), ==, 0);
	T_EXPECT_INT(ch.subsub_cleaned, ==, 1);
	T_EXPECT_INT(ch.sub_cancelled, ==, 1);
	T_EXPECT_INT(ch.top_cancelled, ==, 1);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);
	return NULL;
}

START_TEST(yield_from_passes_values_sends_and_result)
{
	struct weft_config cfg = t_config(2);

	T_RUN(yield_from_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * A generator handed between tasks on two workers.  The body yields
 * 0, 1, 2, ... sleeping now and then; each step is taken by a new task.
 */
#define HOP_STEPS 200

struct hop {
	struct weft_gen *g;
	intptr_t expect;
	atomic_int moved;	/* steps whose body changed worker meanwhile */
	atomic_int differ;	/* steps resumed off the maker's worker */
	int maker_worker;
};

static void *
hop_body(struct weft_gen *g, void *arg)
{
	struct hop *h = arg;

	for (intptr_t i = 0;; i++) {
		int before = weft_worker_id();

		if (i % 3 == 0)
			T_EXPECT_INT(weft_sleep(WEFT_MSEC / 20), ==, 0);
		else
			T_EXPECT_INT(weft_yield(), ==, 0);
		if (weft_worker_id() != before)
			atomic_fetch_add(&h->moved, 1);
		T_EXPECT_INT(weft_gen_state(g), ==, WEFT_GEN_RUNNING);
		if (i == HOP_STEPS)
			return t_ptr(-1);
		T_EXPECT_INT(weft_gen_yield(g, t_ptr(i), NULL), ==, 0);
	}
}

static void *
hop_step(void *arg)
{
	struct hop *h = arg;
	void *v = NULL;
	int r;

	if (weft_worker_id() != h->maker_worker)
		atomic_fetch_add(&h->differ, 1);
	r = weft_gen_next(h->g, &v);
	if (h->expect == HOP_STEPS) {
		T_EXPECT_INT(r, ==, 0);
		T_EXPECT_INT(t_int(v), ==, -1);
	} else {
		T_EXPECT_INT(r, ==, 1);
		T_EXPECT_INT(t_int(v), ==, h->expect);
	}
	/* Busy a little, so the other worker has something to steal. */
	t_burn(WEFT_MSEC / 50);
	return NULL;
}

static void *
hop_main(void *arg)
{
	struct hop *h = arg;
	struct weft_task *t;

	h->maker_worker = weft_worker_id();
	T_EXPECT_INT(weft_gen_make(&h->g, hop_body, h, NULL), ==, 0);
	for (h->expect = 0; h->expect <= HOP_STEPS; h->expect++) {
		T_EXPECT_INT(weft_spawn(&t, hop_step, h, NULL), ==, 0);
		T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	}
	T_EXPECT_INT(weft_gen_state(h->g), ==, WEFT_GEN_CLOSED);
	T_EXPECT_INT(weft_gen_free(h->g), ==, 0);
	return NULL;
}

START_TEST(resumed_from_other_tasks_and_workers)
{
	struct weft_config cfg = t_config(2);
	struct hop h;

	memset(&h, 0, sizeof(h));
	T_RUN(hop_main, &h, &cfg, NULL);
	/* Correctness is asserted above; migration depends on scheduling. */
	if (getenv("WEFT_TEST_VERBOSE") ||
	    (!atomic_load(&h.differ) && !atomic_load(&h.moved)))
		fprintf(stderr, "gen: %d of %d steps resumed on another "
			"worker, %d moved inside the body\n",
			atomic_load(&h.differ), HOP_STEPS + 1,
			atomic_load(&h.moved));
}
END_TEST

/*
 * With every stack unguarded, each switch-out checks the canary and the
 * saved sp of the stack the task runs on: a body that parks must be checked
 * against its generator's stack, not the task's.
 */
START_TEST(parks_inside_body_with_canary_checked_stacks)
{
	struct weft_config cfg = t_config(2);
	struct hop h;

	cfg.guarded_stacks = -1;
	memset(&h, 0, sizeof(h));
	T_RUN(hop_main, &h, &cfg, NULL);
	T_RUN(yield_from_main, NULL, &cfg, NULL);
}
END_TEST

/* A second caller gets -EBUSY while the body blocks for the first. */
struct busy {
	struct weft_gen *g;
	atomic_int in_body;
	atomic_int release;
};

static void *
busy_body(struct weft_gen *g, void *arg)
{
	struct busy *b = arg;

	atomic_store(&b->in_body, 1);
	T_WAIT(atomic_load(&b->release), "the release of the body");
	T_EXPECT_INT(weft_sleep(WEFT_MSEC), ==, 0);
	T_EXPECT_INT(weft_gen_yield(g, t_ptr(5), NULL), ==, 0);
	return t_ptr(6);
}

static void *
busy_first(void *arg)
{
	struct busy *b = arg;
	void *v = NULL;

	T_EXPECT_INT(weft_gen_next(b->g, &v), ==, 1);
	T_EXPECT_INT(t_int(v), ==, 5);
	return NULL;
}

static void *
busy_main(void *arg)
{
	struct busy b;
	struct weft_task *t;
	void *v = NULL;

	memset(&b, 0, sizeof(b));
	T_EXPECT_INT(weft_gen_make(&b.g, busy_body, &b, NULL), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, busy_first, &b, NULL), ==, 0);
	T_WAIT(atomic_load(&b.in_body), "the body to start");
	T_EXPECT_INT(weft_gen_state(b.g), ==, WEFT_GEN_RUNNING);
	T_EXPECT_INT(weft_gen_next(b.g, &v), ==, -EBUSY);
	T_EXPECT_INT(weft_gen_send(b.g, NULL, &v), ==, -EBUSY);
	T_EXPECT_INT(weft_gen_close(b.g), ==, -EBUSY);
	T_EXPECT_INT(weft_gen_free(b.g), ==, -EBUSY);
	atomic_store(&b.release, 1);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_gen_state(b.g), ==, WEFT_GEN_SUSPENDED);
	T_EXPECT_INT(weft_gen_next(b.g, &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 6);
	T_EXPECT_INT(weft_gen_free(b.g), ==, 0);
	return NULL;
}

START_TEST(concurrent_resume_returns_ebusy)
{
	struct weft_config cfg = t_config(2);

	T_RUN(busy_main, NULL, &cfg, NULL);
}
END_TEST

/*
 * Several tasks on two workers race to resume one generator: every value
 * 0..RACE_N-1 must come out exactly once, the losers getting -EBUSY.
 */
#define RACE_N 2000
#define RACE_TASKS 6

struct race {
	struct weft_gen *g;
	atomic_int seen[RACE_N];
	atomic_int busy;
	atomic_int done;
};

static void *
race_body(struct weft_gen *g, void *arg)
{
	for (intptr_t i = 0; i < RACE_N; i++) {
		if (i % 7 == 0)
			T_EXPECT_INT(weft_yield(), ==, 0);
		else if (i % 50 == 0)
			T_EXPECT_INT(weft_sleep(WEFT_MSEC / 100), ==, 0);
		T_EXPECT_INT(weft_gen_yield(g, t_ptr(i), NULL), ==, 0);
	}
	return t_ptr(-1);
}

static void *
race_task(void *arg)
{
	struct race *r = arg;
	void *v;
	int ret;

	for (;;) {
		v = NULL;
		ret = weft_gen_next(r->g, &v);
		if (ret == -EBUSY) {
			atomic_fetch_add(&r->busy, 1);
			T_EXPECT_INT(weft_yield(), ==, 0);
			continue;
		}
		if (ret == 1) {
			T_EXPECT(t_int(v) >= 0 && t_int(v) < RACE_N,
				 "value %jd", (intmax_t)t_int(v));
			if (t_int(v) >= 0 && t_int(v) < RACE_N)
				atomic_fetch_add(&r->seen[t_int(v)], 1);
			continue;
		}
		if (ret == 0) {
			T_EXPECT_INT(t_int(v), ==, -1);
			atomic_fetch_add(&r->done, 1);
		} else {
			T_EXPECT_INT(ret, ==, -EPIPE);
		}
		return NULL;
	}
}

static void *
race_main(void *arg)
{
	struct race *r = arg;
	struct weft_task *t[RACE_TASKS];

	T_EXPECT_INT(weft_gen_make(&r->g, race_body, NULL, NULL), ==, 0);
	for (int i = 0; i < RACE_TASKS; i++)
		T_EXPECT_INT(weft_spawn(&t[i], race_task, r, NULL), ==, 0);
	for (int i = 0; i < RACE_TASKS; i++)
		T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(atomic_load(&r->done), ==, 1);
	for (int i = 0; i < RACE_N; i++)
		T_EXPECT_INT(atomic_load(&r->seen[i]), ==, 1);
	T_EXPECT_INT(weft_gen_free(r->g), ==, 0);
	return NULL;
}

START_TEST(racing_resumers_see_each_value_once)
{
	struct weft_config cfg = t_config(2);
	struct race *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	T_RUN(race_main, r, &cfg, NULL);
	if (getenv("WEFT_TEST_VERBOSE"))
		fprintf(stderr, "gen: %d resumes refused with -EBUSY\n",
			atomic_load(&r->busy));
	free(r);
}
END_TEST

/* A body that reads a pipe: the caller blocks until the data arrives. */
static void *
reader_body(struct weft_gen *g, void *arg)
{
	int fd = *(int *)arg;
	char c;

	for (;;) {
		ssize_t n = weft_read(fd, &c, 1, WEFT_DEADLINE_NONE);

		if (n <= 0)
			return t_ptr(n);
		T_EXPECT_INT(weft_gen_yield(g, t_ptr(c), NULL), ==, 0);
	}
}

static void *
writer(void *arg)
{
	int fd = *(int *)arg;

	for (char c = 'a'; c <= 'e'; c++) {
		T_EXPECT_INT(weft_sleep(WEFT_MSEC), ==, 0);
		T_EXPECT_INT(weft_write(fd, &c, 1, WEFT_DEADLINE_NONE), ==, 1);
	}
	close(fd);
	return NULL;
}

static void *
io_main(void *arg)
{
	struct weft_task *t;
	struct weft_gen *g;
	int fds[2];
	void *v = NULL;

	T_EXPECT_INT(pipe(fds), ==, 0);
	T_EXPECT_INT(weft_gen_make(&g, reader_body, &fds[0], NULL), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, writer, &fds[1], NULL), ==, 0);
	for (char c = 'a'; c <= 'e'; c++) {
		T_EXPECT_INT(weft_gen_next(g, &v), ==, 1);
		T_EXPECT_INT(t_int(v), ==, c);
	}
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 0);	/* end of file */
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);
	close(fds[0]);
	return NULL;
}

START_TEST(body_blocking_on_io_blocks_the_caller)
{
	struct weft_config cfg = t_config(2);

	T_RUN(io_main, NULL, &cfg, NULL);
}
END_TEST

/* Many generators alive at once, each yielding its index twice. */
static void *
twice_body(struct weft_gen *g, void *arg)
{
	T_EXPECT_INT(weft_gen_yield(g, arg, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_yield(g, arg, NULL), ==, 0);
	return arg;
}

static void *
many_main(void *arg)
{
	struct weft_gen **gs = calloc(N_GENS, sizeof(*gs));
	struct weft_gen_opts opts;
	void *v;

	memset(&opts, 0, sizeof(opts));
	opts.stack_size = 16 * 1024;
	T_EXPECT(gs != NULL, "calloc");
	if (!gs)
		return NULL;
	for (intptr_t i = 0; i < N_GENS; i++)
		T_EXPECT_INT(weft_gen_make(&gs[i], twice_body, t_ptr(i),
					   i % 2 ? &opts : NULL), ==, 0);
	for (int round = 0; round < 2; round++)
		for (intptr_t i = 0; i < N_GENS; i++) {
			v = NULL;
			T_EXPECT_INT(weft_gen_next(gs[i], &v), ==, 1);
			T_EXPECT_INT(t_int(v), ==, i);
		}
	for (intptr_t i = 0; i < N_GENS; i++) {
		T_EXPECT_INT(weft_gen_next(gs[i], &v), ==, 0);
		T_EXPECT_INT(t_int(v), ==, i);
		T_EXPECT_INT(weft_gen_free(gs[i]), ==, 0);
	}
	free(gs);
	return NULL;
}

START_TEST(ten_thousand_generators_alive)
{
	struct weft_config cfg = t_config(2);

	T_RUN(many_main, NULL, &cfg, NULL);
}
END_TEST

/* Bad arguments and calls from the wrong place. */
static void *
noop_body(struct weft_gen *g, void *arg)
{
	return arg;
}

/* Inner body: the outer generator is not its to yield or resume. */
static void *
inner_body(struct weft_gen *g, void *arg)
{
	struct weft_gen *outer = arg;
	void *v;

	T_EXPECT_INT(weft_gen_yield(outer, NULL, NULL), ==, -EPERM);
	T_EXPECT_INT(weft_gen_next(outer, &v), ==, -EBUSY);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, -EBUSY);
	T_EXPECT_INT(weft_gen_close(g), ==, -EBUSY);
	return t_ptr(3);
}

static void *
outer_body(struct weft_gen *g, void *arg)
{
	struct weft_gen *in;
	void *v = NULL;

	T_EXPECT_INT(weft_gen_make(&in, inner_body, g, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_next(in, &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 3);
	T_EXPECT_INT(weft_gen_free(in), ==, 0);
	return t_ptr(4);
}

static void *
args_main(void *arg)
{
	struct weft_gen_opts opts;
	struct weft_gen *g;
	struct weft_gen *h;
	void *v;

	memset(&opts, 0, sizeof(opts));
	T_EXPECT_INT(weft_gen_make(&g, NULL, NULL, NULL), ==, -EINVAL);
	opts.reserved_[2] = 1;
	T_EXPECT_INT(weft_gen_make(&g, noop_body, NULL, &opts), ==, -EINVAL);
	opts.reserved_[2] = 0;
	opts.stack_size = 1024;
	T_EXPECT_INT(weft_gen_make(&g, noop_body, NULL, &opts), ==, -EINVAL);
	T_EXPECT_INT(weft_gen_make(&g, noop_body, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_make(&h, noop_body, NULL, NULL), ==, 0);
	/* Yield outside the body of g. */
	T_EXPECT_INT(weft_gen_yield(g, NULL, NULL), ==, -EPERM);
	T_EXPECT_INT(weft_gen_yield_from(g, h, &v), ==, -EPERM);
	T_EXPECT_INT(weft_gen_state(h), ==, WEFT_GEN_CREATED);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 0);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);
	T_EXPECT_INT(weft_gen_free(h), ==, 0);
	T_EXPECT_INT(weft_gen_make(&g, outer_body, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_gen_next(g, &v), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 4);
	T_EXPECT_INT(weft_gen_free(g), ==, 0);
	return NULL;
}

START_TEST(bad_arguments_and_wrong_context)
{
	struct weft_config cfg = t_config(1);
	struct weft_gen *g = NULL;
	void *v;

	ck_assert_int_eq(weft_gen_make(&g, noop_body, NULL, NULL), -EPERM);
	ck_assert_ptr_null(g);
	ck_assert_int_eq(weft_gen_next(NULL, &v), -EPERM);
	T_RUN(args_main, NULL, &cfg, NULL);
}
END_TEST

static Suite *
gen_suite(void)
{
	Suite *s = suite_create("runtime/gen");
	TCase *tc;

	tc = t_tcase(s, "protocol", T_TIMEOUT);
	tcase_add_test(tc, counts_through_states_and_returns_value);
	tcase_add_test(tc, send_passes_values_in);
	tcase_add_test(tc, close_runs_cleanup_and_closes);
	tcase_add_test(tc, yield_from_passes_values_sends_and_result);
	tcase_add_test(tc, bad_arguments_and_wrong_context);

	tc = t_tcase(s, "blocking", T_TIMEOUT);
	tcase_add_test(tc, resumed_from_other_tasks_and_workers);
	tcase_add_test(tc, parks_inside_body_with_canary_checked_stacks);
	tcase_add_test(tc, concurrent_resume_returns_ebusy);
	tcase_add_test(tc, racing_resumers_see_each_value_once);
	tcase_add_test(tc, body_blocking_on_io_blocks_the_caller);

	tc = t_tcase(s, "scale", T_TIMEOUT_LONG);
	tcase_add_test(tc, ten_thousand_generators_alive);

	return s;
}

int
main(void)
{
	return t_main(gen_suite());
}

/* SPDX-License-Identifier: MIT */
/*
 * Stacks: a million parked tasks fit, stack sizes are honoured, the guard
 * page budget is respected, and an overflowing task is caught and named.
 */
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* The runtime's test seams (sched/stack.c). */
extern bool weft__stack_no_regions;
extern bool weft__stack_guard_regions(void);

static void *
ret_arg(void *arg)
{
	return arg;
}

/*
 * parked
 */

struct parked {
	long n;
	long made;
	atomic_long started;
	struct weft_stats during;
	long joined;
	long not_cancelled;
	long first_ret;
};

static void *
park_far(void *arg)
{
	struct parked *p = arg;

	atomic_fetch_add(&p->started, 1);
	return t_ptr(weft_sleep_until(weft_now() + 3600 * WEFT_SEC));
}

static void *
parked_main(void *arg)
{
	struct parked *p = arg;
	struct weft_task **t;
	void *res;
	long i;
	int r;

	t = calloc((size_t)p->n, sizeof(*t));
	T_EXPECT(t != NULL, "calloc(%ld handles) failed", p->n);
	if (!t)
		return NULL;
	for (p->made = 0; p->made < p->n; p->made++) {
		r = weft_spawn(&t[p->made], park_far, p, NULL);
		if (r != 0) {
			t_failf(__FILE__, __LINE__,
				"weft_spawn #%ld returned %d", p->made, r);
			break;
		}
	}
	T_WAIT_COUNT(atomic_load(&p->started), p->made, "every task to park");
	T_EXPECT_INT(weft_stats(&p->during), ==, 0);
	for (i = 0; i < p->made; i++)
		T_EXPECT_INT(weft_cancel(t[i]), ==, 0);
	for (i = 0; i < p->made; i++) {
		res = NULL;
		r = weft_join(t[i], &res, WEFT_DEADLINE_NONE);
		if (r != 0) {
			t_failf(__FILE__, __LINE__,
				"weft_join #%ld returned %d", i, r);
			continue;
		}
		p->joined++;
		if (t_int(res) != -ECANCELED && p->not_cancelled++ == 0)
			p->first_ret = (long)t_int(res);
	}
	free(t);
	return NULL;
}

static long
max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

START_TEST(million_tasks_parked_at_once)
{
	struct parked p;
	long maps = max_map_count();

	memset(&p, 0, sizeof(p));
	p.n = T_MILLION;
	T_RUN(parked_main, &p, NULL, NULL);
	ck_assert_int_eq(p.made, p.n);
	ck_assert_msg(p.during.tasks_live >= (uint64_t)p.n,
		      "tasks_live %" PRIu64 " with %ld tasks parked",
		      p.during.tasks_live, p.n);
	ck_assert_msg(p.during.stacks_in_use >= (uint64_t)p.n,
		      "stacks_in_use %" PRIu64 " with %ld tasks parked",
		      p.during.stacks_in_use, p.n);
	if (weft__stack_guard_regions())
		ck_assert_msg(p.during.stacks_guarded >= (uint64_t)p.n,
			      "%" PRIu64 " guarded stacks of %ld: guard "
			      "regions guard every one",
			      p.during.stacks_guarded, p.n);
	else if (maps > 0)
		ck_assert_msg(p.during.stacks_guarded <= (uint64_t)maps / 4,
			      "%" PRIu64 " guarded stacks, default budget is "
			      "vm.max_map_count/4 = %ld",
			      p.during.stacks_guarded, maps / 4);
	ck_assert_int_eq(p.joined, p.n);
	ck_assert_msg(p.not_cancelled == 0,
		      "%ld parked tasks did not get -ECANCELED (first: %ld)",
		      p.not_cancelled, p.first_ret);
}
END_TEST

/*
 * size
 */

#define BIG_LOCAL (128 * T_KIB)

static unsigned
big_local_sum(void)
{
	unsigned sum = 0;
	size_t i;

	for (i = 0; i < BIG_LOCAL; i += 64)
		sum += (unsigned char)(char)i;
	return sum;
}

/* Uses a 128 KiB local array, touching every cache line of it. */
static void *
big_local(void *arg)
{
	volatile char buf[BIG_LOCAL];
	unsigned sum = 0;
	size_t i;

	for (i = 0; i < sizeof(buf); i += 64)
		buf[i] = (char)i;
	for (i = 0; i < sizeof(buf); i += 64)
		sum += (unsigned char)buf[i];
	return t_ptr(sum);
}

static void *
big_stack_main(void *arg)
{
	const struct weft_spawn_opts *opts = arg;
	struct weft_task *t;
	void *res = NULL;
	int r;

	r = weft_spawn(&t, big_local, NULL, opts);
	T_EXPECT_INT(r, ==, 0);
	if (r == 0)
		T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	return res;
}

START_TEST(spawn_stack_size_256k_fits_128k_local)
{
	struct weft_spawn_opts opts;
	void *res = NULL;

	memset(&opts, 0, sizeof(opts));
	opts.stack_size = 256 * T_KIB;
	T_RUN(big_stack_main, &opts, NULL, &res);
	ck_assert_uint_eq((unsigned)t_int(res), big_local_sum());
}
END_TEST

START_TEST(config_stack_size_is_the_default)
{
	struct weft_config cfg = t_config(0);
	void *res = NULL;

	cfg.stack_size = 256 * T_KIB;
	T_RUN(big_stack_main, NULL, &cfg, &res);
	ck_assert_uint_eq((unsigned)t_int(res), big_local_sum());
}
END_TEST

/* Tasks with different stack sizes, all alive at once, each using some. */
#define MIXED_TASKS 64

static const size_t mixed_sizes[] = {
	32 * T_KIB,
	64 * T_KIB,
	256 * T_KIB,
	1024 * T_KIB,
};

struct mixed {
	atomic_int started;
	atomic_int release;
};

struct mixed_arg {
	struct mixed *m;
	size_t use;
};

static void *
use_stack(void *arg)
{
	struct mixed_arg *ma = arg;
	volatile char *p = __builtin_alloca(ma->use);
	size_t i;
	int sum = 0;

	for (i = 0; i < ma->use; i += 256)
		p[i] = 1;
	atomic_fetch_add(&ma->m->started, 1);
	T_WAIT(atomic_load(&ma->m->release), "release");
	for (i = 0; i < ma->use; i += 256)
		sum += p[i];
	return t_ptr(sum);
}

static void *
mixed_main(void *arg)
{
	struct mixed *m = arg;
	struct mixed_arg ma[MIXED_TASKS];
	struct weft_task *t[MIXED_TASKS];
	struct weft_spawn_opts opts;
	void *res;
	int made;
	int i;
	int r;

	memset(&opts, 0, sizeof(opts));
	for (made = 0; made < MIXED_TASKS; made++) {
		opts.stack_size = mixed_sizes[made % 4];
		ma[made].m = m;
		ma[made].use = opts.stack_size / 4;
		r = weft_spawn(&t[made], use_stack, &ma[made], &opts);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			break;
	}
	T_WAIT(atomic_load(&m->started) == made, "the tasks to start");
	atomic_store(&m->release, 1);
	for (i = 0; i < made; i++) {
		res = NULL;
		T_EXPECT_INT(weft_join(t[i], &res, WEFT_DEADLINE_NONE), ==, 0);
		T_EXPECT_INT(t_int(res), ==, (intptr_t)(ma[i].use / 256));
	}
	return NULL;
}

START_TEST(mixed_stack_sizes_coexist)
{
	struct mixed m;

	memset(&m, 0, sizeof(m));
	T_RUN(mixed_main, &m, NULL, NULL);
}
END_TEST

struct bad_size {
	int r[4];
	struct weft_task *t;
};

static void *
bad_size_main(void *arg)
{
	struct bad_size *bs = arg;
	struct weft_spawn_opts opts;
	static const size_t sizes[4] = {1, 100, SIZE_MAX, SIZE_MAX - 4095};
	int i;

	memset(&opts, 0, sizeof(opts));
	for (i = 0; i < 4; i++) {
		opts.stack_size = sizes[i];
		bs->t = NULL;
		bs->r[i] = weft_spawn(&bs->t, ret_arg, NULL, &opts);
		if (bs->r[i] == 0)
			weft_join(bs->t, NULL, WEFT_DEADLINE_NONE);
	}
	return NULL;
}

/*
 * Stacks of a size other than the run's default are pooled per size: a
 * task's 48 KiB stack stays cached when it ends, and the next 48 KiB task
 * takes it instead of mapping a new one.
 */
struct odd_reuse {
	struct weft_stats in_second;
};

static void *
odd_second(void *arg)
{
	struct odd_reuse *o = arg;

	weft_stats(&o->in_second);
	return NULL;
}

static void *
odd_reuse_main(void *arg)
{
	struct odd_reuse *o = arg;
	struct weft_spawn_opts opts = { .stack_size = 48 * T_KIB };
	struct weft_stats before, after;
	struct weft_task *t;

	T_EXPECT_INT(weft_stats(&before), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, ret_arg, NULL, &opts), ==, 0);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_stats(&after), ==, 0);
	/* Kept: one more cached stack, no more address space than in use. */
	T_EXPECT_INT(after.stacks_cached, ==, before.stacks_cached + 1);
	T_EXPECT_INT(weft_spawn(&t, odd_second, o, &opts), ==, 0);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	/* The second task ran on it: the cache was one smaller meanwhile. */
	T_EXPECT_INT(o->in_second.stacks_cached, ==, before.stacks_cached);
	T_EXPECT_INT(o->in_second.stack_bytes_mapped, ==,
		     after.stack_bytes_mapped);
	return NULL;
}

START_TEST(odd_size_stacks_are_reused)
{
	struct weft_config cfg = t_config(1);
	struct odd_reuse o;

	memset(&o, 0, sizeof(o));
	T_RUN(odd_reuse_main, &o, &cfg, NULL);
}
END_TEST

START_TEST(spawn_bad_stack_size_returns_einval)
{
	struct bad_size bs;

	memset(&bs, 0, sizeof(bs));
	T_RUN(bad_size_main, &bs, NULL, NULL);
	ck_assert_msg(bs.r[0] == -EINVAL, "stack_size 1: %d", bs.r[0]);
	ck_assert_msg(bs.r[1] == -EINVAL, "stack_size 100: %d", bs.r[1]);
	ck_assert_msg(bs.r[2] == -EINVAL, "stack_size SIZE_MAX: %d", bs.r[2]);
	ck_assert_msg(bs.r[3] == -EINVAL, "stack_size SIZE_MAX-4095: %d",
		      bs.r[3]);
}
END_TEST

/*
 * guards: with `n` tasks parked, how many stacks carry a guard page.
 */

struct guards {
	int n;
	atomic_int started;
	atomic_int release;
	struct weft_stats during;
};

static void *
guard_parker(void *arg)
{
	struct guards *g = arg;

	atomic_fetch_add(&g->started, 1);
	T_WAIT(atomic_load(&g->release), "release");
	return NULL;
}

static void *
guards_main(void *arg)
{
	struct guards *g = arg;
	struct weft_task **t = calloc((size_t)g->n, sizeof(*t));
	int made;
	int i;

	T_EXPECT(t != NULL, "calloc failed");
	if (!t)
		return NULL;
	for (made = 0; made < g->n; made++)
		if (weft_spawn(&t[made], guard_parker, g, NULL) != 0)
			break;
	T_EXPECT_INT(made, ==, g->n);
	T_WAIT_COUNT(atomic_load(&g->started), made, "the tasks to park");
	T_EXPECT_INT(weft_stats(&g->during), ==, 0);
	atomic_store(&g->release, 1);
	for (i = 0; i < made; i++)
		T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE), ==, 0);
	free(t);
	return NULL;
}

START_TEST(default_config_guards_every_stack_within_budget)
{
	struct guards g;

	memset(&g, 0, sizeof(g));
	g.n = 100;
	T_RUN(guards_main, &g, NULL, NULL);
	ck_assert_msg(g.during.stacks_guarded >= (uint64_t)g.n,
		      "%" PRIu64 " guarded stacks with %d tasks parked",
		      g.during.stacks_guarded, g.n);
}
END_TEST

START_TEST(guarded_stacks_minus_one_maps_no_guards)
{
	struct weft_config cfg = t_config(0);
	struct guards g;

	memset(&g, 0, sizeof(g));
	g.n = 100;
	cfg.guarded_stacks = -1;
	T_RUN(guards_main, &g, &cfg, NULL);
	ck_assert_msg(g.during.stacks_in_use >= (uint64_t)g.n,
		      "stacks_in_use %" PRIu64, g.during.stacks_in_use);
	ck_assert_msg(g.during.stacks_guarded == 0,
		      "%" PRIu64 " guarded stacks with guarded_stacks = -1",
		      g.during.stacks_guarded);
}
END_TEST

START_TEST(guarded_stacks_budget_is_respected)
{
	struct weft_config cfg = t_config(0);
	struct guards g;

	memset(&g, 0, sizeof(g));
	g.n = 100;
	cfg.guarded_stacks = 10;
	/* The budget is for kernels without guard regions. */
	weft__stack_no_regions = true;
	T_RUN(guards_main, &g, &cfg, NULL);
	weft__stack_no_regions = false;
	ck_assert_msg(g.during.stacks_in_use >= (uint64_t)g.n,
		      "stacks_in_use %" PRIu64, g.during.stacks_in_use);
	ck_assert_msg(g.during.stacks_guarded <= 10,
		      "%" PRIu64 " guarded stacks with guarded_stacks = 10",
		      g.during.stacks_guarded);
}
END_TEST

/*
 * overflow: a task named "deep-recursor" recurses without bound in a child
 * process; the child must die and say which task overflowed.
 */

#define OVERFLOW_NAME "deep-recursor"

struct overflow {
	bool yield_each; /* yield in every frame (canary checks) */
	atomic_int stop;
};

static int __attribute__((noinline)) recurse(int depth, bool yield_each)
{
	volatile char frame[512];
	size_t i;

	if (depth == INT_MAX)
		return 0;
	for (i = 0; i < sizeof(frame); i++)
		frame[i] = (char)(depth + (int)i);
	if (yield_each)
		weft_yield();
	/* Not a tail call: the frame is read after the call returns. */
	return recurse(depth + 1, yield_each) + frame[depth % 512];
}

static void *
recursor(void *arg)
{
	struct overflow *o = arg;

	return t_ptr(recurse(0, o->yield_each));
}

/* Keeps a second task runnable so every yield is a real switch. */
static void *
ticker(void *arg)
{
	struct overflow *o = arg;

	while (!atomic_load(&o->stop))
		weft_yield();
	return NULL;
}

static void *
overflow_main(void *arg)
{
	struct overflow *o = arg;
	struct weft_spawn_opts opts;
	struct weft_task *t;

	memset(&opts, 0, sizeof(opts));
	opts.name = OVERFLOW_NAME;
	if (o->yield_each)
		weft_spawn(NULL, ticker, o, NULL);
	if (weft_spawn(&t, recursor, o, &opts) == 0)
		weft_join(t, NULL, WEFT_DEADLINE_NONE);
	atomic_store(&o->stop, 1);
	return NULL;
}

struct child_arg {
	long guarded;
	bool yield_each;
};

static void
overflow_child(void *p)
{
	const struct child_arg *a = p;
	long guarded = a->guarded;
	bool yield_each = a->yield_each;
	struct weft_config cfg = t_config(yield_each ? 1 : 0);
	struct rlimit no_core = {0, 0};
	struct overflow o;
	int r;

	memset(&o, 0, sizeof(o));
	o.yield_each = yield_each;
	cfg.guarded_stacks = guarded;
	setrlimit(RLIMIT_CORE, &no_core);
	/* A hang becomes SIGALRM, which the parent reports as such. */
	alarm((unsigned)(t_stall_ns() / WEFT_SEC));
	r = weft_run(overflow_main, &o, &cfg, NULL);
	fprintf(stderr, "weft_run returned %d: the overflow was not caught\n",
		r);
	_exit(0);
}

static void
check_overflow(long guarded, bool yield_each)
{
	static char out[64 * 1024];
	struct child_arg arg = { guarded, yield_each };
	bool died;
	bool named;
	int status;

	t_child_stderr(overflow_child, &arg, out, sizeof(out), &status);
	ck_assert_msg(!(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM),
		      "the overflowing child hung; stderr: %.600s", out);
	died = (WIFSIGNALED(status) &&
		(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGABRT)) ||
	       (WIFEXITED(status) && WEXITSTATUS(status) != 0);
	ck_assert_msg(died, "the child %s %d; stderr: %.600s",
		      WIFSIGNALED(status) ? "died of signal" : "exited with",
		      WIFSIGNALED(status) ? WTERMSIG(status)
					  : WEXITSTATUS(status),
		      out);
	named = strstr(out, "stack overflow") && strstr(out, OVERFLOW_NAME);
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
	/* The sanitizer's own SEGV handler may get there first. */
	if (!named && strstr(out, "Sanitizer: stack-overflow"))
		named = true;
#endif
	ck_assert_msg(
		named,
		"stderr does not name the overflow of task \"" OVERFLOW_NAME
		"\": %.600s",
		out);
}

START_TEST(overflow_of_guarded_stack_names_the_task)
{
	check_overflow(0, false);
}
END_TEST

START_TEST(overflow_of_canary_stack_names_the_task)
{
	check_overflow(-1, true);
}
END_TEST

static Suite *
sched_stack_suite(void)
{
	Suite *s = suite_create("sched/stack");
	TCase *tc;

	tc = t_tcase(s, "parked", T_TIMEOUT_LONG);
	tcase_add_test(tc, million_tasks_parked_at_once);

	tc = t_tcase(s, "size", T_TIMEOUT);
	tcase_add_test(tc, spawn_stack_size_256k_fits_128k_local);
	tcase_add_test(tc, config_stack_size_is_the_default);
	tcase_add_test(tc, mixed_stack_sizes_coexist);
	tcase_add_test(tc, odd_size_stacks_are_reused);
	tcase_add_test(tc, spawn_bad_stack_size_returns_einval);

	tc = t_tcase(s, "guards", T_TIMEOUT);
	tcase_add_test(tc, default_config_guards_every_stack_within_budget);
	tcase_add_test(tc, guarded_stacks_minus_one_maps_no_guards);
	tcase_add_test(tc, guarded_stacks_budget_is_respected);

	tc = t_tcase(s, "overflow", T_TIMEOUT);
	tcase_add_test(tc, overflow_of_guarded_stack_names_the_task);
	tcase_add_test(tc, overflow_of_canary_stack_names_the_task);

	return s;
}

int
main(void)
{
	return t_main(sched_stack_suite());
}

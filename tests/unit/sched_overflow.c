/* SPDX-License-Identifier: MIT */
/*
 * Stack overflows are never silent and never touch another task's stack.
 *
 * Each case runs in a forked child on one worker: it spawns neighbour tasks
 * that fill most of their stacks with a pattern and park, then a "victim"
 * task whose stack lies just above a neighbour's (it checks, and the main
 * task retries with a fresh one when it does not), and the victim overflows
 * in one of several shapes: one frame of 66 KiB, 70 KiB or 1 MiB that
 * writes only its lowest byte (a program built without
 * -fstack-clash-protection), a 1 MiB frame built with it, a recursion of
 * sparse 1 KiB frames, a recursion of dense frames.  The child must die of
 * SIGABRT after weft's "stack overflow in task ID (NAME)" line with the
 * victim's id and name, and a hook the runtime calls just before abort()
 * checks every neighbour's pattern: none may be touched.
 *
 * The cases run on guarded stacks (the default), past the old guard budget
 * (more stacks than vm.max_map_count/4), with a million tasks live, and
 * with the guard regions of Linux 6.13 turned off (the mprotect guards of
 * older kernels, within their budget).
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
extern void (*weft__stack_overflow_hook)(const struct weft_task *t);

enum shape {
	FRAME_66K,
	FRAME_70K,
	FRAME_1M_PROBED,	/* built with -fstack-clash-protection */
	FRAME_1M_BIG_GUARD,	/* unprobed, stack_guard = 2 MiB */
	SPARSE_RECURSION,
	DENSE_RECURSION,
};

static const char *const shape_names[] = {
	"frame-66k", "frame-70k", "frame-1m-probed", "frame-1m-2m-guard",
	"sparse-recursion", "dense-recursion",
};

enum mode {
	GUARDED,		/* defaults */
	PAST_BUDGET,		/* more live stacks than the old budget */
	MILLION,		/* T_MILLION tasks live */
	LEGACY,			/* no guard regions: mprotect guards */
};

#define NEIGHBOURS 48
#define NB_BUF (40 * 1024)	/* of a 64 KiB stack */

struct neighbour {
	volatile char *lo;	/* its pattern buffer, NULL until filled */
	int idx;
};

static struct {
	enum shape shape;
	enum mode mode;
	struct weft_chan *hold;	/* neighbours and fillers park on it */
	struct neighbour nb[NEIGHBOURS + 8];
	atomic_int nb_filled;
	atomic_long fillers_parked;
	int nnb;
	size_t window;		/* "just below" the victim: two slots */
	char *victim_top;
} g;

static char
pattern(int idx, size_t i)
{
	return (char)(idx * 131 + (int)(i * 7) + 1);
}

static void *
filler(void *arg)
{
	atomic_fetch_add(&g.fillers_parked, 1);
	return t_ptr(weft_chan_recv(g.hold, NULL, WEFT_DEADLINE_NONE));
}

static void *
neighbour(void *arg)
{
	struct neighbour *nb = arg;
	volatile char buf[NB_BUF];
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(nb->idx, i);
	nb->lo = buf;
	atomic_fetch_add(&g.nb_filled, 1);
	weft_chan_recv(g.hold, NULL, WEFT_DEADLINE_NONE);
	for (i = 0; i < sizeof(buf); i++)
		bad += buf[i] != pattern(nb->idx, i);
	nb->lo = NULL;
	return t_ptr(bad);
}

/* Called by the runtime after its report, on the faulting context. */
static void
check_neighbours(const struct weft_task *t)
{
	char msg[160];
	int checked = 0, corrupted = 0, n;

	for (int k = 0; k < g.nnb; k++) {
		volatile char *lo = g.nb[k].lo;

		if (!lo)
			continue;
		checked++;
		for (size_t i = 0; i < NB_BUF; i++)
			if (lo[i] != pattern(g.nb[k].idx, i)) {
				corrupted++;
				break;
			}
	}
	(void)t;
	n = snprintf(msg, sizeof(msg),
		     "neighbours: %d checked, %d corrupted\n", checked,
		     corrupted);
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
		return;
}

/* A frame of `N` bytes that writes only its lowest byte. */
#define BIG_FRAME(fname, N, attr)                                              \
	static int __attribute__((noinline, attr)) fname(void)                 \
	{                                                                      \
		volatile char frame[N];                                        \
		frame[0] = 1;                                                  \
		return frame[0];                                               \
	}

BIG_FRAME(frame_66k, 66 * 1024, optimize("no-stack-clash-protection"))
BIG_FRAME(frame_70k, 70 * 1024, optimize("no-stack-clash-protection"))
BIG_FRAME(frame_1m_unprobed, 1024 * 1024, optimize("no-stack-clash-protection"))
BIG_FRAME(frame_1m_probed, 1024 * 1024, optimize("stack-clash-protection"))

static int __attribute__((noinline, optimize("no-stack-clash-protection")))
sparse(int depth)
{
	volatile char frame[1024];

	frame[0] = (char)depth;
	if (depth == INT_MAX)
		return 0;
	return sparse(depth + 1) + frame[0];
}

static int __attribute__((noinline)) dense(int depth)
{
	volatile char frame[512];

	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (char)(depth + (int)i);
	if (depth == INT_MAX)
		return 0;
	return dense(depth + 1) + frame[depth % 512];
}

static void *
victim(void *arg)
{
	char top;
	bool near = false;

	g.victim_top = &top;
	/* Is a neighbour's pattern in the stacks just below ours? */
	for (int k = 0; k < g.nnb; k++) {
		char *lo = (char *)g.nb[k].lo;

		if (lo && lo < &top && lo + g.window > &top)
			near = true;
	}
	/* Old kernels' guards are separate mappings, placed by mmap. */
	if (!near && g.mode != LEGACY)
		return t_ptr(1);
	switch (g.shape) {
	case FRAME_66K:
		return t_ptr(frame_66k());
	case FRAME_70K:
		return t_ptr(frame_70k());
	case FRAME_1M_PROBED:
		return t_ptr(frame_1m_probed());
	case FRAME_1M_BIG_GUARD:
		return t_ptr(frame_1m_unprobed());
	case SPARSE_RECURSION:
		return t_ptr(sparse(0));
	case DENSE_RECURSION:
		return t_ptr(dense(0));
	}
	return NULL;
}

static int
add_neighbour(void)
{
	struct neighbour *nb = &g.nb[g.nnb];
	int want = g.nnb + 1;

	nb->idx = g.nnb++;
	if (weft_spawn(NULL, neighbour, nb, NULL) != 0)
		return -1;
	T_WAIT_COUNT(atomic_load(&g.nb_filled), want, "a neighbour to fill");
	return 0;
}

static void *
overflow_main(void *arg)
{
	struct weft_spawn_opts opts = { .name = shape_names[g.shape] };
	long fillers = 0;
	char msg[96];
	int n;

	if (weft_chan_make(&g.hold, 1, 0) != 0)
		return NULL;
	if (g.mode == PAST_BUDGET) {
		FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
		long maps = 65530;

		if (f) {
			if (fscanf(f, "%ld", &maps) != 1)
				maps = 65530;
			fclose(f);
		}
		fillers = maps / 4 + 64;
		/*
		 * TSan counts each fiber as a thread and dies past 8,128;
		 * the plain and ASan builds run the whole count.
		 */
		if (fillers > T_MILLION)
			fillers = T_MILLION;
	} else if (g.mode == MILLION) {
		fillers = T_MILLION;
	}
	for (long i = 0; i < fillers; i++)
		if (weft_spawn(NULL, filler, NULL, NULL) != 0) {
			fprintf(stderr, "filler %ld: spawn failed\n", i);
			return NULL;
		}
	T_WAIT_COUNT(atomic_load(&g.fillers_parked), fillers,
		     "the fillers to park");
	for (int i = 0; i < NEIGHBOURS; i++)
		if (add_neighbour() != 0)
			return NULL;
	/* Up to 8 tries for a victim whose stack is just above one. */
	for (int tries = 0; tries < 8; tries++) {
		struct weft_task *t;
		void *res = NULL;

		if (weft_spawn(&t, victim, NULL, &opts) != 0)
			break;
		n = snprintf(msg, sizeof(msg), "victim id %llu\n",
			     (unsigned long long)weft_task_id(t));
		if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
			break;
		if (weft_join(t, &res, WEFT_DEADLINE_NONE) != 0)
			break;
		if (t_int(res) != 1) {
			fprintf(stderr, "the victim returned: the overflow "
					"was not caught\n");
			break;
		}
		if (tries == 7 || add_neighbour() != 0) {
			fprintf(stderr, "no victim landed above a neighbour\n");
			break;
		}
	}
	check_neighbours(NULL);
	weft_chan_close(g.hold);
	return NULL;
}

struct child_arg {
	enum shape shape;
	enum mode mode;
};

static void
overflow_child(void *p)
{
	const struct child_arg *a = p;
	enum shape shape = a->shape;
	enum mode mode = a->mode;
	struct weft_config cfg = t_config(1);
	struct rlimit no_core = {0, 0};
	int r;

	g.shape = shape;
	g.mode = mode;
	if (shape == FRAME_1M_BIG_GUARD)
		cfg.stack_guard = 2 * 1024 * 1024;
	g.window = 2 * (64 * 1024 + (cfg.stack_guard ? cfg.stack_guard :
						      64 * 1024));
	weft__stack_no_regions = mode == LEGACY;
	weft__stack_overflow_hook = check_neighbours;
	setrlimit(RLIMIT_CORE, &no_core);
	/* A hang becomes SIGALRM, which the parent reports as such. */
	alarm((unsigned)(3 * t_stall_ns() / WEFT_SEC));
	r = weft_run(overflow_main, NULL, &cfg, NULL);
	fprintf(stderr, "weft_run returned %d: the overflow was not caught\n",
		r);
	_exit(0);
}

static void
check_overflow(enum shape shape, enum mode mode)
{
	static char out[64 * 1024];
	struct child_arg arg = { shape, mode };
	char want[128];
	const char *id, *last = NULL;
	int status;

	t_child_stderr(overflow_child, &arg, out, sizeof(out), &status);
	ck_assert_msg(!(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM),
		      "the child hung; stderr: %.800s", out);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
		      "the child %s %d, not SIGABRT; stderr: %.800s",
		      WIFSIGNALED(status) ? "died of signal" : "exited with",
		      WIFSIGNALED(status) ? WTERMSIG(status)
					  : WEXITSTATUS(status),
		      out);
	for (id = strstr(out, "victim id "); id;
	     id = strstr(id + 1, "victim id "))
		last = id;
	ck_assert_msg(last != NULL, "no victim was spawned: %.800s", out);
	snprintf(want, sizeof(want), "weft: stack overflow in task %llu (%s)",
		 strtoull(last + 10, NULL, 10), shape_names[shape]);
	ck_assert_msg(strstr(out, want) != NULL,
		      "stderr lacks \"%s\": %.800s", want, out);
	ck_assert_msg(strstr(out, "neighbours: ") != NULL,
		      "the neighbour check did not run: %.800s", out);
	ck_assert_msg(strstr(out, " 0 corrupted") != NULL,
		      "a neighbour's stack was written: %.800s", out);
}

#define CASE(name, shape, mode)                                                \
	START_TEST(name)                                                       \
	{                                                                      \
		check_overflow(shape, mode);                                   \
	}                                                                      \
	END_TEST

CASE(guarded_frame_66k, FRAME_66K, GUARDED)
CASE(guarded_frame_70k, FRAME_70K, GUARDED)
CASE(guarded_frame_1m_probed, FRAME_1M_PROBED, GUARDED)
CASE(guarded_frame_1m_2m_guard, FRAME_1M_BIG_GUARD, GUARDED)
CASE(guarded_sparse_recursion, SPARSE_RECURSION, GUARDED)
CASE(guarded_dense_recursion, DENSE_RECURSION, GUARDED)
CASE(past_budget_frame_70k, FRAME_70K, PAST_BUDGET)
CASE(past_budget_frame_1m_probed, FRAME_1M_PROBED, PAST_BUDGET)
CASE(past_budget_sparse_recursion, SPARSE_RECURSION, PAST_BUDGET)
CASE(million_frame_70k, FRAME_70K, MILLION)
CASE(million_sparse_recursion, SPARSE_RECURSION, MILLION)
CASE(legacy_frame_70k, FRAME_70K, LEGACY)
CASE(legacy_frame_1m_probed, FRAME_1M_PROBED, LEGACY)
CASE(legacy_sparse_recursion, SPARSE_RECURSION, LEGACY)

/* Where the kernel has guard regions, every stack gets one. */
static void *
count_main(void *arg)
{
	struct weft_stats *s = arg;

	for (int i = 0; i < 100; i++)
		if (weft_spawn(NULL, filler, NULL, NULL) != 0)
			return NULL;
	T_WAIT_COUNT(atomic_load(&g.fillers_parked), 100, "the fillers");
	T_EXPECT_INT(weft_stats(s), ==, 0);
	weft_chan_close(g.hold);
	return NULL;
}

START_TEST(every_stack_guarded_past_the_budget)
{
	struct weft_config cfg = t_config(0);
	struct weft_stats s;

	memset(&s, 0, sizeof(s));
	cfg.guarded_stacks = 10;
	ck_assert_int_eq(weft_chan_make(&g.hold, 1, 0), 0);
	T_RUN(count_main, &s, &cfg, NULL);
	weft_chan_release(g.hold);
	if (!weft__stack_guard_regions()) {
		fprintf(stderr, "every_stack_guarded_past_the_budget: this "
				"kernel has no guard regions (Linux < 6.13)\n");
		ck_assert_msg(s.stacks_guarded <= 10, "%" PRIu64 " guarded",
			      s.stacks_guarded);
		return;
	}
	ck_assert_msg(s.stacks_guarded >= 101,
		      "%" PRIu64 " guarded stacks with 101 live",
		      s.stacks_guarded);
}
END_TEST

static Suite *
sched_overflow_suite(void)
{
	Suite *s = suite_create("sched/overflow");
	TCase *tc;

	tc = t_tcase(s, "guarded", T_TIMEOUT);
	tcase_add_test(tc, guarded_frame_66k);
	tcase_add_test(tc, guarded_frame_70k);
	tcase_add_test(tc, guarded_frame_1m_probed);
	tcase_add_test(tc, guarded_frame_1m_2m_guard);
	tcase_add_test(tc, guarded_sparse_recursion);
	tcase_add_test(tc, guarded_dense_recursion);
	tcase_add_test(tc, every_stack_guarded_past_the_budget);

	tc = t_tcase(s, "past_budget", T_TIMEOUT);
	tcase_add_test(tc, past_budget_frame_70k);
	tcase_add_test(tc, past_budget_frame_1m_probed);
	tcase_add_test(tc, past_budget_sparse_recursion);

	tc = t_tcase(s, "million", T_TIMEOUT_LONG);
	tcase_add_test(tc, million_frame_70k);
	tcase_add_test(tc, million_sparse_recursion);

	tc = t_tcase(s, "legacy", T_TIMEOUT);
	tcase_add_test(tc, legacy_frame_70k);
	tcase_add_test(tc, legacy_frame_1m_probed);
	tcase_add_test(tc, legacy_sparse_recursion);
	return s;
}

int
main(void)
{
	return t_main(sched_overflow_suite());
}

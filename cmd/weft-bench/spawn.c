/* SPDX-License-Identifier: MIT */
/*
 * spawn: create, run and join N empty tasks.
 *
 * ns_per_task is the wall time from before the first create to after the
 * last join, divided by N: creation, one run of an empty body, exit and
 * join, with all N handles outstanding at once (spawn everything, then join
 * everything).  The handle array is allocated and touched before the clock
 * starts, and one untimed round of the same size runs first, so pools and
 * caches are as warm as in a program that spawns all day.
 *
 *   weft       one worker; weft_spawn() x N, then weft_join() x N.  Also
 *              ns_per_task_detached: N detached spawns (no handle), the
 *              main task calling weft_yield() until every task has counted
 *              itself done (weft.h has no wait group to block on yet).
 *   threads    pthread_create() x N, then pthread_join() x N (default
 *              attributes: 8 MiB stacks, which is what people get).
 *   processes  fork() x N, the child _exit()s at once, then waitpid() x N.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#include "bench.h"
#include "scenarios.h"
#include "util.h"

/* ---- weft ---- */

struct spawn_weft_arg {
	long n;
	struct weft_task **h;
	int64_t ns;		/* out: timed spawn+join round */
	int64_t ns_detached;	/* out: timed detached round */
};

static atomic_long detached_done;

static void *
empty_task(void *arg)
{
	return arg;
}

static void *
counting_task(void *arg)
{
	atomic_fetch_add_explicit(&detached_done, 1, memory_order_relaxed);
	return arg;
}

/* One round: N spawns, then N joins, each result checked.  Returns ns. */
static int64_t
weft_round(struct weft_task **h, long n)
{
	int64_t t0 = bench_now();
	void *res;
	long i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = weft_spawn(&h[i], empty_task, (void *)(i + 1), NULL);
		if (ret < 0)
			bench_fail("weft_spawn #%ld: %s", i, strerror(-ret));
	}
	for (i = 0; i < n; i++) {
		ret = weft_join(h[i], &res, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_join #%ld: %s", i, strerror(-ret));
		if (res != (void *)(i + 1))
			bench_fail("weft_join #%ld: result %p, expected %p", i,
				   res, (void *)(i + 1));
	}
	return bench_now() - t0;
}

/* N detached spawns; yield until all have run.  Returns ns. */
static int64_t
weft_round_detached(long n)
{
	long base = atomic_load(&detached_done);
	int64_t t0 = bench_now();
	long i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = weft_spawn(NULL, counting_task, NULL, NULL);
		if (ret < 0)
			bench_fail("weft_spawn (detached) #%ld: %s", i,
				   strerror(-ret));
	}
	while (atomic_load_explicit(&detached_done, memory_order_relaxed) -
	       base < n) {
		ret = weft_yield();
		if (ret < 0)
			bench_fail("weft_yield: %s", strerror(-ret));
	}
	return bench_now() - t0;
}

static void *
spawn_weft_main(void *p)
{
	struct spawn_weft_arg *a = p;

	weft_round(a->h, a->n);
	a->ns = weft_round(a->h, a->n);
	weft_round_detached(a->n);
	a->ns_detached = weft_round_detached(a->n);
	return NULL;
}

int
spawn_weft(const struct bench_cfg *cfg)
{
	struct spawn_weft_arg a = {
		.n = bench_size(cfg, 200000, 1000000),
	};
	struct weft_config wc = { .workers = 1 };
	int ret;

	a.h = bench_alloc_touched((size_t)a.n * sizeof(*a.h));
	ret = weft_run(spawn_weft_main, &a, &wc, NULL);
	if (ret < 0)
		bench_fail("weft_run: %s", strerror(-ret));
	bench_emit("ns_per_task", KIND_TIME, (double)a.ns / a.n, "ns", a.n, 1);
	bench_emit("ns_per_task_detached", KIND_TIME,
		   (double)a.ns_detached / a.n, "ns", a.n, 1);
	free(a.h);
	return 0;
}

/* ---- threads ---- */

static void *
empty_thread(void *arg)
{
	return arg;
}

int
spawn_threads(const struct bench_cfg *cfg)
{
	long n = bench_size(cfg, 10000, 20000);
	pthread_t *t = bench_alloc_touched((size_t)n * sizeof(*t));
	int64_t ns;

	bench_thread_round(t, n, empty_thread);
	ns = bench_thread_round(t, n, empty_thread);
	bench_emit("ns_per_task", KIND_TIME, (double)ns / n, "ns", n, 1);
	free(t);
	return 0;
}

/* ---- processes ---- */

static int
exit_at_once(void)
{
	return 0;
}

int
spawn_processes(const struct bench_cfg *cfg)
{
	long n = bench_size(cfg, 2000, 5000);
	pid_t *pids = bench_alloc_touched((size_t)n * sizeof(*pids));
	int64_t ns;

	bench_fork_round(pids, n, exit_at_once, NULL);
	ns = bench_fork_round(pids, n, exit_at_once, NULL);
	bench_emit("ns_per_task", KIND_TIME, (double)ns / n, "ns", n, 1);
	free(pids);
	return 0;
}

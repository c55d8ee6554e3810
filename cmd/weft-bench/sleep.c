/* SPDX-License-Identifier: MIT */
/*
 * sleep: N tasks each sleeping 10 ms, all at the same time.
 *
 * wall_ms runs from before the first spawn to after the last join;
 * overhead_ms = wall_ms - 10 is what creating, timing, waking and joining
 * N sleepers costs on top of the sleep itself.  One untimed round of the
 * same size runs first.  Every sleeper checks that it slept at least
 * 10 ms; a short sleep fails the run.  The JSON key "n" holds N.
 *
 *   weft       N = 100,000 tasks calling weft_sleep(10 ms), on all
 *              --workers (wall_ms, overhead_ms) and on one worker
 *              (wall_ms_1w, overhead_ms_1w).
 *   threads    N = 10,000 threads calling clock_nanosleep(10 ms):
 *              thread-per-task stops well short of 100,000 here
 *              (pid_max 32768, and the 2 memory maps per thread stack).
 *   processes  N = 1,000 (2,000 without --quick) forked children.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "bench.h"
#include "scenarios.h"
#include "util.h"

#define SLEEP_NS (10 * 1000000L)

static atomic_long early;	/* sleepers that woke before 10 ms */

static void
emit_wall(const char *wall, const char *overhead, int64_t ns, long n,
	  int workers)
{
	if (atomic_load(&early))
		bench_fail("%ld sleepers woke before 10 ms",
			   atomic_load(&early));
	bench_emit(wall, KIND_TIME, ns / 1e6, "ms", n, workers);
	bench_emit(overhead, KIND_TIME, (ns - SLEEP_NS) / 1e6, "ms", n,
		   workers);
}

/* ---- weft ---- */

struct sleep_arg {
	long n;
	struct weft_task **h;
	int64_t ns;		/* out: the timed round */
};

static void *
sleeper(void *p)
{
	int64_t t0 = weft_now();
	int ret;

	ret = weft_sleep(SLEEP_NS);
	if (ret == 0 && weft_now() - t0 < SLEEP_NS)
		atomic_fetch_add(&early, 1);
	return (void *)(intptr_t)ret;
}

static int64_t
weft_round(struct sleep_arg *a)
{
	int64_t t0 = bench_now();
	void *res;
	long i;
	int ret;

	for (i = 0; i < a->n; i++) {
		ret = weft_spawn(&a->h[i], sleeper, NULL, NULL);
		if (ret < 0)
			bench_fail("weft_spawn #%ld: %s", i, strerror(-ret));
	}
	for (i = 0; i < a->n; i++) {
		ret = weft_join(a->h[i], &res, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_join #%ld: %s", i, strerror(-ret));
		if (res)
			bench_fail("weft_sleep in task #%ld returned %ld", i,
				   (long)(intptr_t)res);
	}
	return bench_now() - t0;
}

static void *
sleep_weft_main(void *p)
{
	struct sleep_arg *a = p;

	weft_round(a);
	a->ns = weft_round(a);
	return NULL;
}

static int64_t
sleep_weft_once(struct sleep_arg *a, int workers)
{
	struct weft_config wc = { .workers = workers };
	int ret;

	ret = weft_run(sleep_weft_main, a, &wc, NULL);
	if (ret < 0)
		bench_fail("weft_run: %s", strerror(-ret));
	return a->ns;
}

int
sleep_weft(const struct bench_cfg *cfg)
{
	struct sleep_arg a = { .n = bench_size(cfg, 100000, 100000) };
	int64_t ns;

	a.h = bench_alloc_touched((size_t)a.n * sizeof(*a.h));
	ns = sleep_weft_once(&a, cfg->workers);
	emit_wall("wall_ms", "overhead_ms", ns, a.n, cfg->workers);
	ns = sleep_weft_once(&a, 1);
	emit_wall("wall_ms_1w", "overhead_ms_1w", ns, a.n, 1);
	free(a.h);
	return 0;
}

/* ---- threads and processes ---- */

static void
sleep_10ms(void)
{
	struct timespec ts = { .tv_nsec = SLEEP_NS };
	int64_t t0 = bench_now();

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
	if (bench_now() - t0 < SLEEP_NS)
		atomic_fetch_add(&early, 1);
}

static void *
sleep_thread(void *arg)
{
	sleep_10ms();
	return arg;
}

int
sleep_threads(const struct bench_cfg *cfg)
{
	long n = bench_size(cfg, 10000, 10000);
	pthread_t *t = bench_alloc_touched((size_t)n * sizeof(*t));
	int64_t ns;

	bench_thread_round(t, n, sleep_thread);
	ns = bench_thread_round(t, n, sleep_thread);
	emit_wall("wall_ms", "overhead_ms", ns, n, 1);
	free(t);
	return 0;
}

/* A child: sleep 10 ms, fail if that returned early. */
static int
sleep_child(void)
{
	sleep_10ms();
	return atomic_load(&early) ? 1 : 0;
}

int
sleep_processes(const struct bench_cfg *cfg)
{
	long n = bench_size(cfg, 1000, 2000);
	pid_t *pids = bench_alloc_touched((size_t)n * sizeof(*pids));
	long failed = 0;
	int64_t ns;

	bench_fork_round(pids, n, sleep_child, &failed);
	ns = bench_fork_round(pids, n, sleep_child, &failed);
	if (failed)
		atomic_fetch_add(&early, failed);
	emit_wall("wall_ms", "overhead_ms", ns, n, 1);
	free(pids);
	return 0;
}

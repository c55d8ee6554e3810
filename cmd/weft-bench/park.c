/* SPDX-License-Identifier: MIT */
/*
 * park: N tasks alive and blocked at the same time.
 *
 * rss_bytes_per_task is (RSS with all N blocked - RSS just before the first
 * spawn) / N, RSS being /proc/self/statm's resident pages times the page
 * size.  The baseline is taken after the runtime has started and after the
 * handle array has been allocated and touched, so the difference is what
 * the N tasks themselves cost in user memory: stacks, descriptors, timer
 * and queue entries.  n_tasks says how many were blocked at once.
 *
 *   weft       one worker; every task counts itself and parks in
 *              weft_sleep_until(an hour from now).  The main task polls
 *              with weft_sleep(1 ms) until all N have counted, reads the
 *              RSS, then weft_cancel()s and joins each task (each sleep
 *              must return -ECANCELED).  N = 1,000,000 in every mode.
 *              Without --quick, a second figure with all --workers:
 *              rss_bytes_per_task_nw.
 *   threads    as many threads as the machine's pid_max comfortably
 *              allows, default attributes, each blocked in FUTEX_WAIT.
 *              RSS does not include the kernel's own per-thread memory,
 *              so kstack_bytes_per_task reports the growth of the
 *              system-wide KernelStack counter per thread beside it.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft.h>

#include "bench.h"
#include "scenarios.h"
#include "util.h"

/* ---- weft ---- */

struct park_arg {
	long n;
	struct weft_task **h;
	int64_t deadline;	/* far future: nobody wakes up by itself */
	atomic_long parked;
	long rss_delta;		/* out */
};

static void *
parker(void *p)
{
	struct park_arg *a = p;

	atomic_fetch_add_explicit(&a->parked, 1, memory_order_relaxed);
	return (void *)(intptr_t)weft_sleep_until(a->deadline);
}

static void *
park_weft_main(void *p)
{
	struct park_arg *a = p;
	long base;
	long rss;
	void *res;
	long i;
	int ret;

	a->deadline = weft_now() + 3600 * WEFT_SEC;
	base = bench_rss();
	for (i = 0; i < a->n; i++) {
		ret = weft_spawn(&a->h[i], parker, a, NULL);
		if (ret < 0)
			bench_fail("weft_spawn #%ld of %ld: %s", i, a->n,
				   strerror(-ret));
	}
	while (atomic_load(&a->parked) < a->n) {
		ret = weft_sleep(WEFT_MSEC);
		if (ret < 0)
			bench_fail("weft_sleep: %s", strerror(-ret));
	}
	/* With several workers the last counted task may not be parked yet. */
	weft_sleep(WEFT_MSEC);
	rss = bench_rss();
	if (base < 0 || rss < 0)
		bench_fail("cannot read /proc/self/statm");
	a->rss_delta = rss - base;

	for (i = 0; i < a->n; i++)
		weft_cancel(a->h[i]);
	for (i = 0; i < a->n; i++) {
		ret = weft_join(a->h[i], &res, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_join #%ld after weft_cancel: %s", i,
				   strerror(-ret));
		if ((intptr_t)res != -ECANCELED)
			bench_fail("weft_sleep_until in task #%ld returned "
				   "%ld after weft_cancel, expected -ECANCELED",
				   i, (long)(intptr_t)res);
	}
	return NULL;
}

static long
park_weft_once(long n, int workers)
{
	struct weft_config wc = { .workers = workers };
	struct park_arg a = { .n = n };
	int ret;

	a.h = bench_alloc_touched((size_t)n * sizeof(*a.h));
	ret = weft_run(park_weft_main, &a, &wc, NULL);
	if (ret < 0)
		bench_fail("weft_run: %s", strerror(-ret));
	free(a.h);
	return a.rss_delta;
}

int
park_weft(const struct bench_cfg *cfg)
{
	long n = bench_size(cfg, 1000000, 1000000);
	long delta;

	delta = park_weft_once(n, 1);
	bench_emit("rss_bytes_per_task", KIND_MEMORY, (double)delta / n,
		   "bytes", n, 1);
	bench_emit("n_tasks", KIND_INFO, n, "tasks", n, 1);
	if (!cfg->quick && cfg->workers > 1) {
		delta = park_weft_once(n, cfg->workers);
		bench_emit("rss_bytes_per_task_nw", KIND_MEMORY,
			   (double)delta / n, "bytes", n, cfg->workers);
	}
	return 0;
}

/* ---- threads ---- */

struct park_threads {
	atomic_long parked;
	int release;		/* futex word: 1 lets everybody go */
};

static void *
park_thread(void *p)
{
	struct park_threads *pt = p;

	atomic_fetch_add(&pt->parked, 1);
	/* Acquire pairs with the release store in park_threads(). */
	while (!__atomic_load_n(&pt->release, __ATOMIC_ACQUIRE))
		bench_futex_wait(&pt->release, 0, false);
	return NULL;
}

int
park_threads(const struct bench_cfg *cfg)
{
	struct timespec ms = { .tv_nsec = 1000000 };
	long n = bench_size(cfg, 10000, 20000);
	struct park_threads pt = { .release = 0 };
	long base, kbase, rss, kstack;
	pthread_t *t;
	long i;
	int ret;

	t = bench_alloc_touched((size_t)n * sizeof(*t));
	base = bench_rss();
	kbase = bench_kernel_stack();
	for (i = 0; i < n; i++) {
		ret = pthread_create(&t[i], NULL, park_thread, &pt);
		if (ret)
			bench_fail("pthread_create #%ld of %ld: %s", i, n,
				   strerror(ret));
	}
	while (atomic_load(&pt.parked) < n)
		nanosleep(&ms, NULL);
	nanosleep(&ms, NULL);
	rss = bench_rss();
	kstack = bench_kernel_stack();
	if (base < 0 || rss < 0)
		bench_fail("cannot read /proc/self/statm");

	__atomic_store_n(&pt.release, 1, __ATOMIC_RELEASE);
	bench_futex_wake(&pt.release, INT_MAX, false);
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	free(t);

	bench_emit("rss_bytes_per_task", KIND_MEMORY, (double)(rss - base) / n,
		   "bytes", n, 1);
	bench_emit("n_tasks", KIND_INFO, n, "tasks", n, 1);
	if (kbase >= 0 && kstack >= 0)
		bench_emit("kstack_bytes_per_task", KIND_INFO,
			   (double)(kstack - kbase) / n, "bytes", n, 1);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * mutex: a contended counter.
 *
 * ns_per_lock is the wall time of all lock / increment / unlock rounds
 * divided by their number; the final count is checked.
 *
 *   weft       1,000 tasks (100 with --quick) on --workers workers, each
 *              doing K rounds on one weft_mutex; the clock starts once all
 *              are spawned (they wait at a start gate) and stops when the
 *              last has been joined.
 *   threads    2 x CPUs threads (at least 4) on one pthread_mutex, the
 *              same total number of rounds.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "bench.h"
#include "scenarios.h"
#include "util.h"

struct counter {
	struct weft_mutex wm;
	pthread_mutex_t pm;
	long count;
	long k;			/* rounds per task or thread */
	atomic_int go;
};

/* ---- weft ---- */

struct mrun {
	struct counter c;
	long tasks;
	int64_t ns;
};

static void *
locker(void *p)
{
	struct counter *c = p;
	long i;
	int ret;

	while (!atomic_load_explicit(&c->go, memory_order_acquire))
		weft_yield();
	for (i = 0; i < c->k; i++) {
		ret = weft_mutex_lock(&c->wm, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_mutex_lock: %s", strerror(-ret));
		c->count++;
		ret = weft_mutex_unlock(&c->wm);
		if (ret < 0)
			bench_fail("weft_mutex_unlock: %s", strerror(-ret));
	}
	return NULL;
}

static void *
mutex_weft_main(void *p)
{
	struct mrun *r = p;
	struct weft_task **t;
	int64_t t0;
	long i;
	int ret;

	t = calloc((size_t)r->tasks, sizeof(*t));
	if (!t)
		bench_fail("out of memory");
	for (i = 0; i < r->tasks; i++) {
		ret = weft_spawn(&t[i], locker, &r->c, NULL);
		if (ret < 0)
			bench_fail("weft_spawn: %s", strerror(-ret));
	}
	t0 = bench_now();
	atomic_store_explicit(&r->c.go, 1, memory_order_release);
	for (i = 0; i < r->tasks; i++) {
		ret = weft_join(t[i], NULL, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_join: %s", strerror(-ret));
	}
	r->ns = bench_now() - t0;
	free(t);
	return NULL;
}

int
mutex_weft(const struct bench_cfg *cfg)
{
	static struct mrun r = { .c = { .wm = WEFT_MUTEX_INIT } };
	struct weft_config wc = { .workers = cfg->workers };
	long total;
	int ret;

	r.tasks = bench_size(cfg, 100, 1000);
	if (r.tasks < 2)
		r.tasks = 2;
	total = bench_size(cfg, 500000, 4000000);
	r.c.k = total / r.tasks;
	total = r.c.k * r.tasks;
	ret = weft_run(mutex_weft_main, &r, &wc, NULL);
	if (ret < 0)
		bench_fail("weft_run: %s", strerror(-ret));
	if (r.c.count != total)
		bench_fail("counter is %ld after %ld increments", r.c.count,
			   total);
	bench_emit("ns_per_lock", KIND_TIME, (double)r.ns / (double)total,
		   "ns", total, cfg->workers);
	return 0;
}

/* ---- threads ---- */

static void *
plocker(void *p)
{
	struct counter *c = p;
	long i;

	while (!atomic_load_explicit(&c->go, memory_order_acquire))
		sched_yield();
	for (i = 0; i < c->k; i++) {
		pthread_mutex_lock(&c->pm);
		c->count++;
		pthread_mutex_unlock(&c->pm);
	}
	return NULL;
}

int
mutex_threads(const struct bench_cfg *cfg)
{
	static struct counter c = { .pm = PTHREAD_MUTEX_INITIALIZER };
	int nthreads = 2 * cfg->ncpus < 4 ? 4 : 2 * cfg->ncpus;
	pthread_t *t;
	long total;
	int64_t t0;
	int ret;
	int i;

	if (nthreads > 64)
		nthreads = 64;
	total = bench_size(cfg, 500000, 4000000);
	c.k = total / nthreads;
	total = c.k * nthreads;
	t = calloc((size_t)nthreads, sizeof(*t));
	if (!t)
		bench_fail("out of memory");
	for (i = 0; i < nthreads; i++) {
		ret = pthread_create(&t[i], NULL, plocker, &c);
		if (ret)
			bench_fail("pthread_create: %s", strerror(ret));
	}
	t0 = bench_now();
	atomic_store_explicit(&c.go, 1, memory_order_release);
	for (i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	t0 = bench_now() - t0;
	free(t);
	if (c.count != total)
		bench_fail("counter is %ld after %ld increments", c.count,
			   total);
	bench_emit("ns_per_lock", KIND_TIME, (double)t0 / (double)total, "ns",
		   total, nthreads);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * fanout: one CPU-bound job split into 256 chunks run in parallel.
 *
 * The job sums a cheap 64-bit mixing hash over 2^27 consecutive integers;
 * chunk i takes the i-th 1/256 of the range.  ms_1w is the wall time of the
 * whole job with one worker, ms_nw with --workers workers, from before the
 * first chunk is started to after the last one is collected, and speedup =
 * ms_1w / ms_nw (the ideal is the worker count).  In each configuration
 * a warm-up pass of 1/16 of the job runs first, then the job twice; the
 * faster of the two counts, because on a shared virtual machine noise only
 * ever adds time (single passes here vary by 30%).  The sums of the two
 * configurations must agree.
 *
 *   weft       weft_run() with 1, then with N workers; the main task
 *              spawns one task per chunk and joins them all, so the
 *              other workers get their share by stealing.
 *   threads    a pool of 1, then N threads pulling chunk numbers from a
 *              shared atomic counter (thread creation is in the timing,
 *              as weft's spawns are).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <weft.h>

#include "bench.h"
#include "scenarios.h"
#include "util.h"

#define CHUNKS		256
#define JOB_ITERS	(1L << 27)

/* One cache line per chunk: workers write their sums side by side. */
struct chunk {
	uint64_t lo;
	uint64_t hi;
	uint64_t sum;
	char pad[40];
};

static struct chunk chunks[CHUNKS] __attribute__((aligned(64)));

/* splitmix64's finaliser, summed: cheap, branch-free, not foldable. */
static uint64_t
hash_range(uint64_t lo, uint64_t hi)
{
	uint64_t sum = 0;
	uint64_t x;

	for (x = lo; x < hi; x++) {
		uint64_t h = x * 0x9e3779b97f4a7c15ULL;

		h ^= h >> 30;
		h *= 0xbf58476d1ce4e5b9ULL;
		h ^= h >> 27;
		h *= 0x94d049bb133111ebULL;
		h ^= h >> 31;
		sum += h;
	}
	return sum;
}

static void
chunks_init(long iters)
{
	int i;

	for (i = 0; i < CHUNKS; i++) {
		chunks[i].lo = (uint64_t)(iters * i / CHUNKS);
		chunks[i].hi = (uint64_t)(iters * (i + 1) / CHUNKS);
		chunks[i].sum = 0;
	}
}

static uint64_t
chunks_total(void)
{
	uint64_t total = 0;
	int i;

	for (i = 0; i < CHUNKS; i++)
		total += chunks[i].sum;
	return total;
}

static void
emit_speedup(int64_t ns1, int64_t nsn, uint64_t sum1, uint64_t sumn,
	     int workers)
{
	if (sum1 != sumn)
		bench_fail("sums differ: %llu with 1 worker, %llu with %d",
			   (unsigned long long)sum1, (unsigned long long)sumn,
			   workers);
	bench_emit("speedup", KIND_HIGHER, (double)ns1 / nsn, "x", CHUNKS,
		   workers);
	bench_emit("ms_1w", KIND_TIME, ns1 / 1e6, "ms", CHUNKS, 1);
	bench_emit("ms_nw", KIND_TIME, nsn / 1e6, "ms", CHUNKS, workers);
}

/* ---- weft ---- */

struct fanout_arg {
	long iters;		/* the whole job */
	int64_t ns;		/* out: the timed pass */
	uint64_t sum;		/* out: its total */
};

static void *
chunk_task(void *p)
{
	struct chunk *c = p;

	c->sum = hash_range(c->lo, c->hi);
	return NULL;
}

static int64_t
weft_pass(long iters)
{
	struct weft_task *t[CHUNKS];
	int64_t t0;
	int ret;
	int i;

	chunks_init(iters);
	t0 = bench_now();
	for (i = 0; i < CHUNKS; i++) {
		ret = weft_spawn(&t[i], chunk_task, &chunks[i], NULL);
		if (ret < 0)
			bench_fail("weft_spawn: %s", strerror(-ret));
	}
	for (i = 0; i < CHUNKS; i++) {
		ret = weft_join(t[i], NULL, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_join: %s", strerror(-ret));
	}
	return bench_now() - t0;
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static void *
fanout_weft_main(void *p)
{
	struct fanout_arg *a = p;

	weft_pass(a->iters / 16);
	a->ns = weft_pass(a->iters);
	a->ns = min64(a->ns, weft_pass(a->iters));
	a->sum = chunks_total();
	return NULL;
}

static int64_t
fanout_weft_once(long iters, int workers, uint64_t *sum)
{
	struct weft_config wc = { .workers = workers };
	struct fanout_arg a = { .iters = iters };
	int ret;

	ret = weft_run(fanout_weft_main, &a, &wc, NULL);
	if (ret < 0)
		bench_fail("weft_run: %s", strerror(-ret));
	*sum = a.sum;
	return a.ns;
}

int
fanout_weft(const struct bench_cfg *cfg)
{
	long iters = bench_size(cfg, JOB_ITERS, JOB_ITERS);
	uint64_t sum1, sumn;
	int64_t ns1, nsn;

	ns1 = fanout_weft_once(iters, 1, &sum1);
	nsn = fanout_weft_once(iters, cfg->workers, &sumn);
	emit_speedup(ns1, nsn, sum1, sumn, cfg->workers);
	return 0;
}

/* ---- threads ---- */

static atomic_int next_chunk;

static void *
pool_thread(void *arg)
{
	int i;

	while ((i = atomic_fetch_add(&next_chunk, 1)) < CHUNKS)
		chunks[i].sum = hash_range(chunks[i].lo, chunks[i].hi);
	return arg;
}

static int64_t
threads_pass(long iters, int nthreads)
{
	pthread_t t[nthreads];
	int64_t t0;
	int ret;
	int i;

	chunks_init(iters);
	atomic_store(&next_chunk, 0);
	t0 = bench_now();
	for (i = 0; i < nthreads; i++) {
		ret = pthread_create(&t[i], NULL, pool_thread, NULL);
		if (ret)
			bench_fail("pthread_create: %s", strerror(ret));
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	return bench_now() - t0;
}

int
fanout_threads(const struct bench_cfg *cfg)
{
	long iters = bench_size(cfg, JOB_ITERS, JOB_ITERS);
	uint64_t sum1, sumn;
	int64_t ns1, nsn;

	threads_pass(iters / 16, 1);
	ns1 = threads_pass(iters, 1);
	ns1 = min64(ns1, threads_pass(iters, 1));
	sum1 = chunks_total();
	threads_pass(iters / 16, cfg->workers);
	nsn = threads_pass(iters, cfg->workers);
	nsn = min64(nsn, threads_pass(iters, cfg->workers));
	sumn = chunks_total();
	emit_speedup(ns1, nsn, sum1, sumn, cfg->workers);
	return 0;
}

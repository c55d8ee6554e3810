/* SPDX-License-Identifier: MIT */
/*
 * yield: two tasks handing control back and forth on one CPU.
 *
 * ns_per_switch is the time of the measured hand-offs divided by their
 * number; each hand-off is one switch from one task to the other.  The
 * first 1000 hand-offs of each side are a warm-up and are not timed.  The
 * clock starts in the first task after its warm-up and stops when the
 * second of the two tasks finishes.
 *
 *   weft       one worker, two tasks each calling weft_yield() M times:
 *              2M switches (the main task is parked in weft_join()
 *              meanwhile, so the run queue holds just the two).
 *   threads    two threads pinned to the same CPU pass a token through a
 *              futex (FUTEX_WAIT/WAKE_PRIVATE): the kernel's thread
 *              switch plus two system calls.  ns_per_switch_xcpu: the
 *              same with the threads pinned to two different CPUs, so
 *              each hand-off is a cross-CPU wake-up.
 *   processes  the same token passing between two processes pinned to one
 *              CPU, the futex in a MAP_SHARED page (shared futex ops).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#include "bench.h"
#include "scenarios.h"
#include "util.h"

#define WARMUP 1000

/* ---- weft ---- */

struct yield_arg {
	long m;			/* yields per task */
	atomic_int started;
	atomic_int finished;
	int64_t t0;
	int64_t t1;
};

static void *
yielder(void *p)
{
	struct yield_arg *a = p;
	int err = 0;
	long i;

	for (i = 0; i < WARMUP; i++)
		err |= weft_yield();
	if (atomic_fetch_add(&a->started, 1) == 0)
		a->t0 = bench_now();
	for (i = 0; i < a->m; i++)
		err |= weft_yield();
	if (atomic_fetch_add(&a->finished, 1) == 1)
		a->t1 = bench_now();
	if (err)
		bench_fail("weft_yield failed (or'ed results %d)", err);
	return NULL;
}

static void *
yield_weft_main(void *p)
{
	struct weft_task *t[2];
	int ret;
	int i;

	for (i = 0; i < 2; i++) {
		ret = weft_spawn(&t[i], yielder, p, NULL);
		if (ret < 0)
			bench_fail("weft_spawn: %s", strerror(-ret));
	}
	for (i = 0; i < 2; i++) {
		ret = weft_join(t[i], NULL, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_join: %s", strerror(-ret));
	}
	return NULL;
}

int
yield_weft(const struct bench_cfg *cfg)
{
	struct yield_arg a = { .m = bench_size(cfg, 1000000, 5000000) };
	struct weft_config wc = { .workers = 1 };
	struct weft_worker_stats ws;
	int ret;

	ret = weft_run(yield_weft_main, &a, &wc, NULL);
	if (ret < 0)
		bench_fail("weft_run: %s", strerror(-ret));
	/* Every counted yield must have been a switch to the other task. */
	ret = weft_worker_stats(0, &ws);
	if (ret < 0)
		bench_fail("weft_worker_stats: %s", strerror(-ret));
	if (ws.tasks_run < (uint64_t)(2 * (a.m + WARMUP)))
		bench_fail("%llu switches for %ld yields: some did not switch",
			   (unsigned long long)ws.tasks_run,
			   2 * (a.m + WARMUP));
	bench_emit("ns_per_switch", KIND_TIME,
		   (double)(a.t1 - a.t0) / (2 * a.m), "ns", 2 * a.m, 1);
	return 0;
}

/* ---- threads and processes: a futex token ---- */

/* Lives in a MAP_SHARED page so that forked processes can use it too. */
struct pingpong {
	int turn;		/* 0 or 1: whose move it is (the futex word) */
	bool shared;		/* processes: non-private futex ops */
	long iters;		/* measured hand-offs per side */
	int cpu[2];		/* CPU of each side */
	atomic_int ready;	/* start gate */
	int64_t t0;
	int64_t end[2];
	int err;
};

static void
pingpong_side(struct pingpong *pp, int me)
{
	long total = WARMUP + pp->iters;
	long i;
	int ret;

	ret = bench_pin(pp->cpu[me]);
	if (ret < 0) {
		pp->err = ret;
		return;
	}
	atomic_fetch_add(&pp->ready, 1);
	while (atomic_load(&pp->ready) < 2)
		sched_yield();
	for (i = 0; i < total; i++) {
		if (i == WARMUP && me == 0)
			pp->t0 = bench_now();
		/* Acquire pairs with the other side's release store below. */
		while (__atomic_load_n(&pp->turn, __ATOMIC_ACQUIRE) != me)
			bench_futex_wait(&pp->turn, !me, pp->shared);
		__atomic_store_n(&pp->turn, !me, __ATOMIC_RELEASE);
		bench_futex_wake(&pp->turn, 1, pp->shared);
	}
	pp->end[me] = bench_now();
}

static void *
pingpong_thread(void *p)
{
	pingpong_side(p, 1);
	return NULL;
}

static struct pingpong *
pingpong_new(long iters, int cpu0, int cpu1, bool shared)
{
	struct pingpong *pp;

	pp = mmap(NULL, sizeof(*pp), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pp == MAP_FAILED)
		bench_fail("mmap: %s", strerror(errno));
	memset(pp, 0, sizeof(*pp));
	pp->iters = iters;
	pp->cpu[0] = cpu0;
	pp->cpu[1] = cpu1;
	pp->shared = shared;
	return pp;
}

/* The measured ns per switch: 2 * iters switches between t0 and the end. */
static double
pingpong_result(struct pingpong *pp)
{
	int64_t end = pp->end[0] > pp->end[1] ? pp->end[0] : pp->end[1];
	double ns;

	if (pp->err)
		bench_fail("sched_setaffinity: %s", strerror(-pp->err));
	ns = (double)(end - pp->t0) / (2 * pp->iters);
	munmap(pp, sizeof(*pp));
	return ns;
}

/* Side 0 runs on the calling thread, side 1 on a new one. */
static double
pingpong_threads(long iters, int cpu0, int cpu1)
{
	struct pingpong *pp = pingpong_new(iters, cpu0, cpu1, false);
	pthread_t t;
	int ret;

	ret = pthread_create(&t, NULL, pingpong_thread, pp);
	if (ret)
		bench_fail("pthread_create: %s", strerror(ret));
	pingpong_side(pp, 0);
	pthread_join(t, NULL);
	return pingpong_result(pp);
}

int
yield_threads(const struct bench_cfg *cfg)
{
	long iters = bench_size(cfg, 25000, 100000);
	int cpu0 = bench_cpu(0);
	int cpu1 = bench_cpu(1);
	double ns;

	ns = pingpong_threads(iters, cpu0, cpu0);
	bench_emit("ns_per_switch", KIND_TIME, ns, "ns", 2 * iters, 1);
	if (cpu1 >= 0) {
		/* ~25 us per wake-up across vCPUs: fewer hand-offs. */
		iters /= 5;
		ns = pingpong_threads(iters, cpu0, cpu1);
		bench_emit("ns_per_switch_xcpu", KIND_TIME, ns, "ns", 2 * iters,
			   2);
	}
	return 0;
}

int
yield_processes(const struct bench_cfg *cfg)
{
	long iters = bench_size(cfg, 25000, 100000);
	int cpu0 = bench_cpu(0);
	struct pingpong *pp = pingpong_new(iters, cpu0, cpu0, true);
	pid_t pid[2];
	int status;
	int i;

	for (i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			bench_fail("fork: %s", strerror(errno));
		if (pid[i] == 0) {
			pingpong_side(pp, i);
			_exit(0);
		}
	}
	for (i = 0; i < 2; i++) {
		if (waitpid(pid[i], &status, 0) < 0)
			bench_fail("waitpid: %s", strerror(errno));
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			bench_fail("ping-pong process %d failed", i);
	}
	bench_emit("ns_per_switch", KIND_TIME, pingpong_result(pp), "ns",
		   2 * iters, 1);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * chan: an unbuffered channel ping-pong between two tasks.
 *
 * ns_per_round_trip: task A sends i on one channel, task B receives it and
 * sends it back on a second channel, A receives it (and checks it): one
 * round trip.  The first 1000 round trips are a warm-up and are not timed;
 * the clock runs in A over the N that follow.
 *
 *   weft       unbuffered weft_chan of int, one worker (the main task is
 *              parked in weft_join()).  ns_per_round_trip_2w: the same on
 *              two workers, so hand-offs may cross workers.
 *              ns_per_2_switches: in the same child, two tasks calling
 *              weft_yield() on one worker, the time of one round (two
 *              bare context switches), the floor a round trip is held to.
 *              Both tasks run the same function, so each switch returns
 *              to the very call site the other task left from, which the
 *              CPU's return predictor gets right.
 *              ns_per_2_switches_distinct: the same, with the two tasks in
 *              two different functions, as A and B of the round trip are:
 *              each switch then returns into code the return predictor did
 *              not expect (see BENCHMARKS.md).
 *   threads    two threads pinned to one CPU, a one-slot queue in each
 *              direction made of a pthread mutex and condition variable.
 *              ns_per_round_trip_xcpu: the threads on two CPUs.
 *   go         (if Go is installed) the same ping-pong on unbuffered Go
 *              channels with GOMAXPROCS=1 (and _2w: GOMAXPROCS=2).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#include "bench.h"
#include "goprog.h"
#include "scenarios.h"
#include "util.h"

#define WARMUP 1000

/* ---- weft ---- */

struct chan_arg {
	struct weft_chan *ping;
	struct weft_chan *pong;
	long n;
	int64_t t0;
	int64_t t1;
	/* the bare-switch part */
	atomic_int started;
	atomic_int finished;
	long turns[2];		/* per side: keeps the two switchers distinct */
};

static void *
chan_a(void *p)
{
	struct chan_arg *a = p;
	long total = WARMUP + a->n;
	long i;
	int v, ret;

	for (i = 0; i < total; i++) {
		if (i == WARMUP)
			a->t0 = bench_now();
		v = (int)i;
		ret = weft_chan_send(a->ping, &v, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_chan_send: %s", strerror(-ret));
		ret = weft_chan_recv(a->pong, &v, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_chan_recv: %s", strerror(-ret));
		if (v != (int)i)
			bench_fail("round trip %ld came back as %d", i, v);
	}
	a->t1 = bench_now();
	return NULL;
}

static void *
chan_b(void *p)
{
	struct chan_arg *a = p;
	long total = WARMUP + a->n;
	long i;
	int v, ret;

	for (i = 0; i < total; i++) {
		ret = weft_chan_recv(a->ping, &v, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_chan_recv: %s", strerror(-ret));
		ret = weft_chan_send(a->pong, &v, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_chan_send: %s", strerror(-ret));
	}
	return NULL;
}

/*
 * The bare-switch loop.  side -1: `switcher`, run by both tasks.  Side 0
 * or 1: inlined into two functions that differ only in the counter they
 * bump, so that the compiler cannot fold them into one (and give both
 * tasks one call site).
 */
static inline __attribute__((always_inline)) void *
switch_side(struct chan_arg *a, int side)
{
	int err = 0;
	long i;

	for (i = 0; i < WARMUP; i++)
		err |= weft_yield();
	if (atomic_fetch_add(&a->started, 1) == 0)
		a->t0 = bench_now();
	for (i = 0; i < a->n; i++) {
		err |= weft_yield();
		if (side >= 0)
			((volatile long *)a->turns)[side]++;
	}
	if (atomic_fetch_add(&a->finished, 1) == 1)
		a->t1 = bench_now();
	if (err)
		bench_fail("weft_yield failed (or'ed results %d)", err);
	return NULL;
}

static void *
switcher(void *p)
{
	return switch_side(p, -1);
}

static void *
switcher_a(void *p)
{
	return switch_side(p, 0);
}

static void *
switcher_b(void *p)
{
	return switch_side(p, 1);
}

static void
spawn_pair(void *(*f0)(void *), void *(*f1)(void *), void *arg)
{
	struct weft_task *t[2];
	int ret;
	int i;

	ret = weft_spawn(&t[0], f0, arg, NULL);
	if (ret == 0)
		ret = weft_spawn(&t[1], f1, arg, NULL);
	if (ret < 0)
		bench_fail("weft_spawn: %s", strerror(-ret));
	for (i = 0; i < 2; i++) {
		ret = weft_join(t[i], NULL, WEFT_DEADLINE_NONE);
		if (ret < 0)
			bench_fail("weft_join: %s", strerror(-ret));
	}
}

static void *
chan_weft_main(void *p)
{
	struct chan_arg *a = p;
	int ret;

	ret = weft_chan_make(&a->ping, sizeof(int), 0);
	if (ret == 0)
		ret = weft_chan_make(&a->pong, sizeof(int), 0);
	if (ret < 0)
		bench_fail("weft_chan_make: %s", strerror(-ret));
	spawn_pair(chan_a, chan_b, a);
	weft_chan_release(a->ping);
	weft_chan_release(a->pong);
	return NULL;
}

static void *
switch_weft_main(void *p)
{
	spawn_pair(switcher, switcher, p);
	return NULL;
}

static void *
switch_distinct_weft_main(void *p)
{
	spawn_pair(switcher_a, switcher_b, p);
	return NULL;
}

static double
chan_weft_run(weft_fn fn, long n, int workers)
{
	struct chan_arg a = { .n = n };
	struct weft_config wc = { .workers = workers };
	int ret;

	ret = weft_run(fn, &a, &wc, NULL);
	if (ret < 0)
		bench_fail("weft_run: %s", strerror(-ret));
	return (double)(a.t1 - a.t0) / (double)n;
}

int
chan_weft(const struct bench_cfg *cfg)
{
	long n = bench_size(cfg, 500000, 2000000);
	double ns;

	ns = chan_weft_run(chan_weft_main, n, 1);
	bench_emit("ns_per_round_trip", KIND_TIME, ns, "ns", n, 1);
	ns = chan_weft_run(switch_weft_main, n, 1);
	bench_emit("ns_per_2_switches", KIND_TIME, ns, "ns", n, 1);
	ns = chan_weft_run(switch_distinct_weft_main, n, 1);
	bench_emit("ns_per_2_switches_distinct", KIND_TIME, ns, "ns", n, 1);
	/* Cross-worker hand-offs wait for wake-ups: fewer of them. */
	n /= 4;
	ns = chan_weft_run(chan_weft_main, n, 2);
	bench_emit("ns_per_round_trip_2w", KIND_TIME, ns, "ns", n, 2);
	return 0;
}

/* ---- threads: a mutex + condvar one-slot queue each way ---- */

struct slot {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool full;
	int val;
};

struct tpp {
	struct slot q[2];	/* 0: A to B, 1: B to A */
	long n;
	int cpu[2];
	atomic_int ready;
	int64_t t0;
	int64_t t1;
	int err;
};

static void
slot_put(struct slot *s, int v)
{
	pthread_mutex_lock(&s->mu);
	while (s->full)
		pthread_cond_wait(&s->cv, &s->mu);
	s->val = v;
	s->full = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static int
slot_get(struct slot *s)
{
	int v;

	pthread_mutex_lock(&s->mu);
	while (!s->full)
		pthread_cond_wait(&s->cv, &s->mu);
	v = s->val;
	s->full = false;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return v;
}

static void
tpp_gate(struct tpp *pp, int me)
{
	int ret = bench_pin(pp->cpu[me]);

	if (ret < 0)
		pp->err = ret;
	atomic_fetch_add(&pp->ready, 1);
	while (atomic_load(&pp->ready) < 2)
		sched_yield();
}

static void *
tpp_b(void *p)
{
	struct tpp *pp = p;
	long total = WARMUP + pp->n;
	long i;

	tpp_gate(pp, 1);
	for (i = 0; i < total; i++)
		slot_put(&pp->q[1], slot_get(&pp->q[0]));
	return NULL;
}

static double
tpp_run(long n, int cpu0, int cpu1)
{
	struct tpp pp;
	long total = WARMUP + n;
	pthread_t t;
	long i;
	int ret;

	memset(&pp, 0, sizeof(pp));
	for (i = 0; i < 2; i++) {
		pthread_mutex_init(&pp.q[i].mu, NULL);
		pthread_cond_init(&pp.q[i].cv, NULL);
	}
	pp.n = n;
	pp.cpu[0] = cpu0;
	pp.cpu[1] = cpu1;
	ret = pthread_create(&t, NULL, tpp_b, &pp);
	if (ret)
		bench_fail("pthread_create: %s", strerror(ret));
	tpp_gate(&pp, 0);
	for (i = 0; i < total; i++) {
		if (i == WARMUP)
			pp.t0 = bench_now();
		slot_put(&pp.q[0], (int)i);
		if (slot_get(&pp.q[1]) != (int)i)
			bench_fail("round trip %ld came back wrong", i);
	}
	pp.t1 = bench_now();
	pthread_join(t, NULL);
	if (pp.err)
		bench_fail("sched_setaffinity: %s", strerror(-pp.err));
	for (i = 0; i < 2; i++) {
		pthread_mutex_destroy(&pp.q[i].mu);
		pthread_cond_destroy(&pp.q[i].cv);
	}
	return (double)(pp.t1 - pp.t0) / (double)n;
}

int
chan_threads(const struct bench_cfg *cfg)
{
	long n = bench_size(cfg, 25000, 100000);
	int cpu0 = bench_cpu(0);
	int cpu1 = bench_cpu(1);

	bench_emit("ns_per_round_trip", KIND_TIME, tpp_run(n, cpu0, cpu0),
		   "ns", n, 1);
	if (cpu1 >= 0) {
		n /= 5;
		bench_emit("ns_per_round_trip_xcpu", KIND_TIME,
			   tpp_run(n, cpu0, cpu1), "ns", n, 2);
	}
	return 0;
}

/* ---- go ---- */

static const char go_pingpong[] =
	"// generated by weft-bench (the chan scenario)\n"
	"package main\n"
	"\n"
	"import (\n"
	"\t\"fmt\"\n"
	"\t\"os\"\n"
	"\t\"strconv\"\n"
	"\t\"time\"\n"
	")\n"
	"\n"
	"func main() {\n"
	"\tn, _ := strconv.Atoi(os.Args[1])\n"
	"\tconst warmup = 1000\n"
	"\tping := make(chan int)\n"
	"\tpong := make(chan int)\n"
	"\tgo func() {\n"
	"\t\tfor i := 0; i < warmup+n; i++ {\n"
	"\t\t\tpong <- <-ping\n"
	"\t\t}\n"
	"\t}()\n"
	"\tvar t0 time.Time\n"
	"\tfor i := 0; i < warmup+n; i++ {\n"
	"\t\tif i == warmup {\n"
	"\t\t\tt0 = time.Now()\n"
	"\t\t}\n"
	"\t\tping <- i\n"
	"\t\tif <-pong != i {\n"
	"\t\t\tfmt.Fprintln(os.Stderr, \"wrong value back\")\n"
	"\t\t\tos.Exit(1)\n"
	"\t\t}\n"
	"\t}\n"
	"\tfmt.Printf(\"%.3f\\n\", float64(time.Since(t0).Nanoseconds())/float64(n))\n"
	"}\n";

int
chan_go(const struct bench_cfg *cfg)
{
	long n = bench_size(cfg, 500000, 2000000);
	char bin[PATH_MAX], arg[32];
	double ns;

	bench_go_build("chan-go", go_pingpong, bin, sizeof(bin));
	snprintf(arg, sizeof(arg), "%ld", n);
	ns = bench_go_run(bin, arg, NULL, 1, 60);
	bench_emit("ns_per_round_trip", KIND_TIME, ns, "ns", n, 1);
	n /= 4;
	snprintf(arg, sizeof(arg), "%ld", n);
	ns = bench_go_run(bin, arg, NULL, 2, 60);
	bench_emit("ns_per_round_trip_2w", KIND_TIME, ns, "ns", n, 2);
	bench_go_done();
	return 0;
}

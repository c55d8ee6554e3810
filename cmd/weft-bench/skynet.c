/* SPDX-License-Identifier: MIT */
/*
 * skynet: the skynet benchmark (a tree of 10-way fan-out down to N
 * leaves; each leaf sends its number up, each inner node sums its ten
 * children's values through a channel of capacity 10 and sends the sum to
 * its parent).  The root checks the sum against N(N-1)/2.
 *
 * ms_total is the wall time from spawning the root to receiving its sum;
 * us_per_node is ms_total over the nodes of the tree (N + N/10 + ... + 1),
 * so that runs at different N compare.
 *
 *   weft       N = 1,000,000 (1,111,111 tasks of 16 KiB stacks, detached)
 *              on --workers workers, weft_chan of long, capacity 10.
 *   threads    N = 10,000 (11,111 detached threads of 64 KiB stacks): a
 *              million threads is out of reach; each node's channel is a
 *              mutex, a condition variable and a sum.
 *   go         (if Go is installed) the classic goroutine skynet at
 *              N = 1,000,000, GOMAXPROCS = --workers.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#include "bench.h"
#include "goprog.h"
#include "scenarios.h"
#include "util.h"

static long
tree_nodes(long n)
{
	long total = 0;

	for (; n >= 1; n /= 10)
		total += n;
	return total;
}

static void
check_sum(long n, long sum)
{
	long want = n * (n - 1) / 2;

	if (sum != want)
		bench_fail("skynet(%ld) summed to %ld, not %ld", n, sum, want);
}

static void
emit(long n, int64_t ns, int workers)
{
	bench_emit("ms_total", KIND_TIME, ns / 1e6, "ms", n, workers);
	bench_emit("us_per_node", KIND_TIME, ns / 1e3 / tree_nodes(n), "us", n,
		   workers);
	bench_emit("n", KIND_INFO, (double)n, "leaves", n, workers);
}

/* N must be a power of ten for the tree to come out even. */
static long
power_of_ten(long n)
{
	long p = 1;

	while (p * 10 <= n)
		p *= 10;
	return p;
}

/* ---- weft ---- */

struct wnode {
	long num;
	long size;
	struct weft_chan *out;	/* one reference, ours to release */
};

static void *
wnode(void *p)
{
	struct wnode me = *(struct wnode *)p;
	long sum = 0;
	int ret;

	if (me.size > 1) {
		struct wnode kids[10];
		struct weft_chan *ch;
		long step = me.size / 10;
		long v;
		int i;

		ret = weft_chan_make(&ch, sizeof(long), 10);
		if (ret < 0)
			bench_fail("weft_chan_make: %s", strerror(-ret));
		for (i = 0; i < 10; i++) {
			kids[i].num = me.num + i * step;
			kids[i].size = step;
			kids[i].out = weft_chan_retain(ch);
			ret = weft_spawn(NULL, wnode, &kids[i], NULL);
			if (ret < 0)
				bench_fail("weft_spawn: %s", strerror(-ret));
		}
		/* kids[] lives until every child has read its entry and sent. */
		for (i = 0; i < 10; i++) {
			ret = weft_chan_recv(ch, &v, WEFT_DEADLINE_NONE);
			if (ret < 0)
				bench_fail("weft_chan_recv: %s", strerror(-ret));
			sum += v;
		}
		weft_chan_release(ch);
	} else {
		sum = me.num;
	}
	ret = weft_chan_send(me.out, &sum, WEFT_DEADLINE_NONE);
	if (ret < 0)
		bench_fail("weft_chan_send: %s", strerror(-ret));
	weft_chan_release(me.out);
	return NULL;
}

struct wrun {
	long n;
	long sum;
	int64_t ns;
};

static void *
skynet_weft_main(void *p)
{
	struct wrun *r = p;
	struct wnode root = { .num = 0, .size = r->n };
	struct weft_chan *ch;
	int64_t t0;
	int ret;

	ret = weft_chan_make(&ch, sizeof(long), 1);
	if (ret < 0)
		bench_fail("weft_chan_make: %s", strerror(-ret));
	t0 = bench_now();
	root.out = weft_chan_retain(ch);
	ret = weft_spawn(NULL, wnode, &root, NULL);
	if (ret < 0)
		bench_fail("weft_spawn: %s", strerror(-ret));
	ret = weft_chan_recv(ch, &r->sum, WEFT_DEADLINE_NONE);
	if (ret < 0)
		bench_fail("weft_chan_recv: %s", strerror(-ret));
	r->ns = bench_now() - t0;
	weft_chan_release(ch);
	return NULL;
}

int
skynet_weft(const struct bench_cfg *cfg)
{
	struct wrun r = { .n = power_of_ten(bench_size(cfg, 1000000,
							 1000000)) };
	/*
	 * 16 KiB as the run's default, not as a spawn option: the runtime
	 * pools and slabs default-size stacks only (sched/stack.c); any
	 * other size costs an mmap and a munmap per task.
	 */
	struct weft_config wc = { .workers = cfg->workers,
				  .stack_size = 16384 };
	int ret;

	ret = weft_run(skynet_weft_main, &r, &wc, NULL);
	if (ret < 0)
		bench_fail("weft_run: %s", strerror(-ret));
	check_sum(r.n, r.sum);
	emit(r.n, r.ns, cfg->workers);
	return 0;
}

/* ---- threads ---- */

struct tchan {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long sum;
	int count;
};

struct tnode {
	long num;
	long size;
	struct tchan *out;
};

static pthread_attr_t tattr;

static void
tchan_send(struct tchan *c, long v)
{
	pthread_mutex_lock(&c->mu);
	c->sum += v;
	c->count++;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static long
tchan_wait(struct tchan *c, int count)
{
	long sum;

	pthread_mutex_lock(&c->mu);
	while (c->count < count)
		pthread_cond_wait(&c->cv, &c->mu);
	sum = c->sum;
	pthread_mutex_unlock(&c->mu);
	return sum;
}

static void *
tnode(void *p)
{
	struct tnode me = *(struct tnode *)p;
	long sum = me.num;

	if (me.size > 1) {
		struct tnode kids[10];
		struct tchan ch = { .sum = 0 };
		long step = me.size / 10;
		int tries;
		int ret;
		int i;

		pthread_mutex_init(&ch.mu, NULL);
		pthread_cond_init(&ch.cv, NULL);
		for (i = 0; i < 10; i++) {
			pthread_t t;

			kids[i].num = me.num + i * step;
			kids[i].size = step;
			kids[i].out = &ch;
			for (tries = 0;; tries++) {
				ret = pthread_create(&t, &tattr, tnode,
						     &kids[i]);
				if (ret != EAGAIN || tries > 10000)
					break;
				sched_yield();
			}
			if (ret)
				bench_fail("pthread_create: %s", strerror(ret));
		}
		sum = tchan_wait(&ch, 10);
		pthread_mutex_destroy(&ch.mu);
		pthread_cond_destroy(&ch.cv);
	}
	tchan_send(me.out, sum);
	return NULL;
}

int
skynet_threads(const struct bench_cfg *cfg)
{
	long n = power_of_ten(bench_size(cfg, 10000, 10000));
	struct tchan ch = { .sum = 0 };
	struct tnode root = { .num = 0, .size = n, .out = &ch };
	pthread_t t;
	int64_t t0;
	long sum;
	int ret;

	pthread_mutex_init(&ch.mu, NULL);
	pthread_cond_init(&ch.cv, NULL);
	pthread_attr_init(&tattr);
	pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&tattr, 65536);
	t0 = bench_now();
	ret = pthread_create(&t, &tattr, tnode, &root);
	if (ret)
		bench_fail("pthread_create: %s", strerror(ret));
	sum = tchan_wait(&ch, 1);
	emit(n, bench_now() - t0, 1);
	check_sum(n, sum);
	return 0;
}

/* ---- go ---- */

static const char go_skynet[] =
	"// generated by weft-bench (the skynet scenario)\n"
	"package main\n"
	"\n"
	"import (\n"
	"\t\"fmt\"\n"
	"\t\"os\"\n"
	"\t\"strconv\"\n"
	"\t\"time\"\n"
	")\n"
	"\n"
	"func skynet(c chan int, num, size int) {\n"
	"\tif size == 1 {\n"
	"\t\tc <- num\n"
	"\t\treturn\n"
	"\t}\n"
	"\trc := make(chan int, 10)\n"
	"\tstep := size / 10\n"
	"\tfor i := 0; i < 10; i++ {\n"
	"\t\tgo skynet(rc, num+i*step, step)\n"
	"\t}\n"
	"\tsum := 0\n"
	"\tfor i := 0; i < 10; i++ {\n"
	"\t\tsum += <-rc\n"
	"\t}\n"
	"\tc <- sum\n"
	"}\n"
	"\n"
	"func main() {\n"
	"\tn, _ := strconv.Atoi(os.Args[1])\n"
	"\tc := make(chan int, 1)\n"
	"\tt0 := time.Now()\n"
	"\tgo skynet(c, 0, n)\n"
	"\tsum := <-c\n"
	"\tns := time.Since(t0).Nanoseconds()\n"
	"\tif sum != n*(n-1)/2 {\n"
	"\t\tfmt.Fprintf(os.Stderr, \"wrong sum %d\\n\", sum)\n"
	"\t\tos.Exit(1)\n"
	"\t}\n"
	"\tfmt.Printf(\"%d\\n\", ns)\n"
	"}\n";

int
skynet_go(const struct bench_cfg *cfg)
{
	long n = power_of_ten(bench_size(cfg, 1000000, 1000000));
	char bin[PATH_MAX], arg[32];
	double ns;

	bench_go_build("skynet-go", go_skynet, bin, sizeof(bin));
	snprintf(arg, sizeof(arg), "%ld", n);
	ns = bench_go_run(bin, arg, NULL, cfg->workers, 60);
	emit(n, (int64_t)ns, cfg->workers);
	bench_go_done();
	return 0;
}

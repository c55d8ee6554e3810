/* SPDX-License-Identifier: MIT */
/*
 * Stress: trees of tasks that spawn, join (with and without deadlines),
 * cancel, detach, sleep and yield at random, checking every result.
 *
 *   stress_churn [WORKERS [ITERATIONS [SEED]]]
 *
 * WORKERS 0 means the default.  Each iteration runs FANOUT trees of depth
 * DEPTH.  Prints one line and exits 0 when every check held and the runtime
 * was empty afterwards; prints the first failure and exits 1 otherwise.
 * A watchdog aborts with a list of the joins in flight if no check passes
 * for 10 s.  CK-style validation program, not a Check test: `make test`
 * runs it for a few seeds through tests/e2e/stress_churn.sh; run it by
 * hand for longer, e.g. build/tsan/tests/stress_churn 2 30 after
 * `make tsan`.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>

#define FANOUT	 32
#define CHILDREN 3
#define DEPTH	 3

static atomic_long failures;
/*
 * Set when churn_main returns: weft_run then cancels every task left
 * (detached subtrees), so from then on a child may end with -ECANCELED,
 * or never start (-ECHILD), without its parent having cancelled it.
 */
static atomic_int run_ending;
static atomic_long checks;
static char first_failure[512];

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		atomic_fetch_add(&checks, 1);                                  \
		if (!(cond) && atomic_fetch_add(&failures, 1) == 0)            \
			snprintf(first_failure, sizeof(first_failure),         \
				 __VA_ARGS__);                                 \
	} while (0)

enum kind {
	K_RET,	 /* return at once */
	K_NAP,	 /* sleep 0..200 us */
	K_YIELD, /* yield a few times */
	K_LONG,	 /* sleep an hour: always cancelled */
	K_NODE,	 /* spawn children of its own */
	K_KINDS
};

enum action { A_JOIN, A_JOIN_DEADLINE, A_CANCEL_JOIN, A_DETACH, A_ACTIONS };

/*
 * A task's recipe, passed by value in its argument (a child that is
 * cancelled before it starts never sees it, so nothing may need freeing).
 */
struct node {
	uint64_t seed; /* 56 bits */
	int depth;     /* 0 .. DEPTH */
	enum kind kind;
};

static void *
node_arg(const struct node *n)
{
	return (void *)(uintptr_t)(n->seed << 8 | (uint64_t)n->depth << 4 |
				   (uint64_t)n->kind);
}

static struct node
node_of(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	struct node n = {
		.seed = v >> 8,
		.depth = (int)(v >> 4 & 0xf),
		.kind = (enum kind)(v & 0xf),
	};

	return n;
}

/*
 * Every child() in progress is on this list, so that the watchdog can say
 * what was going on when progress stopped.  The mutex is held only for list
 * edits, never across a weft call.
 */
struct inflight {
	struct inflight *prev;
	struct inflight *next;
	struct weft_task *parent;
	struct weft_task *t;
	int kind;
	int act;
	int depth;
	const char *volatile phase;
};

static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static struct inflight inflight_head = {
	.prev = &inflight_head,
	.next = &inflight_head,
};

static void
inflight_add(struct inflight *f)
{
	pthread_mutex_lock(&inflight_lock);
	f->next = &inflight_head;
	f->prev = inflight_head.prev;
	f->prev->next = f;
	inflight_head.prev = f;
	pthread_mutex_unlock(&inflight_lock);
}

static void
inflight_del(struct inflight *f)
{
	pthread_mutex_lock(&inflight_lock);
	f->prev->next = f->next;
	f->next->prev = f->prev;
	pthread_mutex_unlock(&inflight_lock);
}

/* Aborts with a dump of the in-flight children if checks stop for 10 s. */
static void *
watchdog(void *arg)
{
	struct inflight *f;
	long last = -1;
	long now;
	int idle = 0;

	for (;;) {
		sleep(1);
		now = atomic_load(&checks);
		idle = now == last ? idle + 1 : 0;
		last = now;
		if (idle < 10)
			continue;
		printf("stress_churn: no progress for 10 s; in flight:\n");
		pthread_mutex_lock(&inflight_lock);
		for (f = inflight_head.next; f != &inflight_head; f = f->next)
			printf("  depth %d kind %d action %d: %s; child "
			       "state %d%s, parent state %d%s\n",
			       f->depth, f->kind, f->act, f->phase,
			       (int)weft_task_state(f->t),
			       weft_task_is_cancelled(f->t) ? " cancelled" : "",
			       (int)weft_task_state(f->parent),
			       weft_task_is_cancelled(f->parent) ? " cancelled"
								 : "");
		pthread_mutex_unlock(&inflight_lock);
		fflush(stdout);
		abort();
	}
	return arg;
}

static uint64_t
rnd(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* What a child of `kind` returns when it runs to the end uncancelled. */
static intptr_t
value_of(const struct node *n)
{
	return (intptr_t)((n->seed & 0xffff) << 4 | (uint64_t)n->kind);
}

static void *node_task(void *arg);

static void *
leaf_task(void *arg)
{
	struct node n = node_of(arg);
	uint64_t s = n.seed;
	int r = 0;
	int i;

	switch (n.kind) {
	case K_NAP:
		r = weft_sleep((int64_t)(rnd(&s) % 200) * WEFT_USEC);
		break;
	case K_YIELD:
		for (i = 0; i < 5 && r == 0; i++)
			r = weft_yield();
		break;
	case K_LONG:
		r = weft_sleep(3600 * WEFT_SEC);
		CHECK(r == -ECANCELED, "long sleep returned %d", r);
		break;
	default:
		break;
	}
	if (r == -ECANCELED)
		return (void *)(intptr_t)-ECANCELED;
	CHECK(r == 0, "leaf kind %d: %d", (int)n.kind, r);
	return (void *)value_of(&n);
}

/* Spawn one child and deal with it by `act`; checks what comes back. */
static void
child(const struct node *parent, uint64_t *s)
{
	struct node c;
	enum action act;
	struct weft_task *t;
	struct inflight fl;
	void *res = NULL;
	bool cancelled = false;
	int r;

	c.seed = rnd(s) >> 8;
	c.depth = parent->depth + 1;
	c.kind =
		(enum kind)(rnd(s) % (c.depth < DEPTH ? K_KINDS : K_KINDS - 1));
	act = (enum action)(rnd(s) % A_ACTIONS);
	if (c.kind == K_LONG && act != A_DETACH)
		act = A_CANCEL_JOIN;
	r = weft_spawn(&t, c.kind == K_NODE ? node_task : leaf_task,
		       node_arg(&c), NULL);
	CHECK(r == 0, "weft_spawn: %d", r);
	if (r != 0)
		return;
	memset(&fl, 0, sizeof(fl));
	fl.parent = weft_self();
	fl.t = t;
	fl.kind = (int)c.kind;
	fl.act = (int)act;
	fl.depth = c.depth;
	fl.phase = "spawned";
	inflight_add(&fl);
	switch (act) {
	case A_DETACH:
		inflight_del(&fl);
		if (c.kind == K_LONG)
			weft_cancel(t);
		r = weft_detach(t);
		CHECK(r == 0, "weft_detach: %d", r);
		return;
	case A_JOIN_DEADLINE:
		fl.phase = "join with deadline";
		r = weft_join(t, &res,
			      weft_now() + (int64_t)(rnd(s) % 100) * WEFT_USEC);
		CHECK(r == 0 || r == -ETIMEDOUT || r == -ECANCELED ||
		      (r == -ECHILD && atomic_load(&run_ending)),
		      "join(deadline): %d", r);
		if (r != -ETIMEDOUT)
			break;
		/* fall through */
	case A_JOIN:
		fl.phase = "join";
		r = weft_join(t, &res, WEFT_DEADLINE_NONE);
		CHECK(r == 0 || r == -ECANCELED ||
		      (r == -ECHILD && atomic_load(&run_ending)),
		      "join: %d", r);
		break;
	case A_CANCEL_JOIN:
		cancelled = true;
		r = weft_cancel(t);
		CHECK(r == 0, "weft_cancel: %d", r);
		fl.phase = "join after cancel";
		r = weft_join(t, &res, WEFT_DEADLINE_NONE);
		CHECK(r == 0 || r == -ECHILD || r == -ECANCELED,
		      "join after cancel: %d", r);
		if (r == -ECHILD)
			res = (void *)(intptr_t)-ECHILD;
		break;
	default:
		break;
	}
	inflight_del(&fl);
	if (r == -ECANCELED) {
		/* This task was cancelled: its joins fail; let go of t. */
		CHECK(weft_task_is_cancelled(weft_self()),
		      "join returned -ECANCELED in a task not cancelled");
		weft_cancel(t);
		CHECK(weft_detach(t) == 0, "weft_detach failed");
		return;
	}
	if (cancelled && (intptr_t)res == -ECHILD)
		return; /* never started */
	/*
	 * Cancelled by weft_run when main returned (the flag is stored
	 * before that cancellation, which happened before the child ended).
	 */
	if (atomic_load(&run_ending) &&
	    (r == -ECHILD || (c.kind != K_RET && (intptr_t)res == -ECANCELED)))
		return;
	if (cancelled && c.kind != K_RET && (intptr_t)res == -ECANCELED)
		return; /* interrupted */
	CHECK(c.kind != K_LONG, "long child returned %" PRIdPTR, (intptr_t)res);
	if (c.kind != K_LONG)
		CHECK((intptr_t)res == value_of(&c),
		      "child kind %d action %d returned %" PRIdPTR
		      ", want %" PRIdPTR,
		      (int)c.kind, (int)act, (intptr_t)res, value_of(&c));
}

static void *
node_task(void *arg)
{
	struct node n = node_of(arg);
	uint64_t s = n.seed;
	int i;

	for (i = 0; i < CHILDREN; i++)
		child(&n, &s);
	if (weft_task_is_cancelled(weft_self()))
		return (void *)(intptr_t)-ECANCELED;
	return (void *)value_of(&n);
}

struct run {
	int iterations;
	uint64_t seed;
};

static void *
churn_main(void *arg)
{
	struct run *rn = arg;
	struct node root;
	uint64_t s = rn->seed;
	int it;
	int i;

	memset(&root, 0, sizeof(root));
	for (it = 0; it < rn->iterations; it++)
		for (i = 0; i < FANOUT; i++)
			child(&root, &s);
	atomic_store(&run_ending, 1);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct weft_config cfg;
	struct weft_stats st;
	struct run rn;
	pthread_t wd;
	int r;

	memset(&cfg, 0, sizeof(cfg));
	cfg.workers = argc > 1 ? atoi(argv[1]) : 0;
	rn.iterations = argc > 2 ? atoi(argv[2]) : 300;
	rn.seed = argc > 3 ? strtoull(argv[3], NULL, 0) : 0x5eed;
	if (pthread_create(&wd, NULL, watchdog, NULL) == 0)
		pthread_detach(wd);
	r = weft_run(churn_main, &rn, &cfg, NULL);
	CHECK(r == 0, "weft_run: %d", r);
	CHECK(weft_stats(&st) == 0, "weft_stats failed");
	CHECK(st.tasks_live == 0 && st.stacks_in_use == 0 &&
		      st.stack_bytes_mapped == 0,
	      "runtime not empty: %" PRIu64 " live, %" PRIu64
	      " stacks, %" PRIu64 " bytes",
	      st.tasks_live, st.stacks_in_use, st.stack_bytes_mapped);
	if (atomic_load(&failures)) {
		printf("stress_churn: %ld of %ld checks failed; first: %s\n",
		       atomic_load(&failures), atomic_load(&checks),
		       first_failure);
		return 1;
	}
	printf("stress_churn: workers %d, %d iterations, seed %#" PRIx64
	       ": %ld checks passed, %" PRIu64 " tasks\n",
	       st.workers, rn.iterations, rn.seed, atomic_load(&checks),
	       st.tasks_spawned);
	return 0;
}

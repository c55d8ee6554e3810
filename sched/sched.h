/* SPDX-License-Identifier: MIT */
/*
 * This file is private to weft.  It declares the scheduler's types (workers,
 * run queues, timers, the idle list) and the functions runtime/ and io/ may
 * call.
 *
 * Vocabulary (Go's, with weft names): a task is a G, a worker is an M that
 * permanently owns a P (its run queue, timers, stack pool and I/O ring).
 *
 * Lock order: io/base.h (enum weft__rank), the one place it is written and
 * the ranks every lock call names.  What the scheduler adds to it:
 *
 * - A waker that holds a task's or an object's lock may call weft__wake(),
 *   which may take sched.lock (global queue overflow); never the reverse.
 * - timers->lock of two workers are never held together (a thief trylocks
 *   a victim's heap only when it holds no heap lock).
 * - No lock may be held across a context switch (weft__park() releases
 *   the waiter's lock just before switching; weft__lpark() hands its one
 *   lock to the next context, which releases it first thing).
 */
#ifndef WEFT_SCHED_H
#define WEFT_SCHED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ck_pr.h>
#include <ck_ring.h>
#include <ck_spinlock.h>

#include "include/weft.h"
#include "io/io.h"
#include "sched/park.h"

/*
 * An owner-only function checks that it runs on its owner (the worker `w`,
 * or no worker at all for w == NULL) in the debug build (WEFT_LOCKRANK,
 * io/base.h); elsewhere it costs nothing.
 */
#ifdef WEFT_LOCKRANK
#define WEFT_ASSERT_OWNER(w) WEFT_ASSERT((w) == weft__worker_self())
#else
#define WEFT_ASSERT_OWNER(w) ((void)0)
#endif

#define RUNQ_SIZE 256		/* local ring slots (power of two) */
#define STACK_CACHE_MAX 64	/* per-worker free stacks */
#define COOP_BUDGET 128		/* I/O calls between forced yields */
#define TASK_CACHE_MAX 4096	/* per-worker free descriptors */
#define SPIN_ROUNDS 4		/* steal rounds before parking */
#define IO_POLL_NS 100000	/* poll busy I/O at least this often */

/* What the context resumed after a switch must finish for the previous one. */
enum after_switch {
	AS_NONE = 0,
	AS_YIELD,		/* put prev at the tail of the local queue */
	AS_YIELD_GLOBAL,	/* put prev at the tail of the global queue */
	AS_PARK,		/* mark prev SAVED, maybe ready it */
	AS_LPARK,		/* release as_lock: a lock-guarded park */
	AS_EXIT,		/* release prev's stack and runtime reference */
};

struct weft__timers {
	ck_spinlock_t lock;
	/* Protected by lock. */
	struct weft__timer **heap;	/* binary min-heap on when */
	/*
	 * Entries: stored under lock with atomic stores, and read without it
	 * by the owner's weft__timer_reserve() (only the owner adds, so a
	 * stale read can only be too high).  cap: changed only by the owner,
	 * under lock.
	 */
	uint32_t n;
	uint32_t cap;
	/*
	 * Earliest `when` or INT64_MAX.  Stored under lock (release), read
	 * without it by any worker computing how long it may sleep; a stale
	 * value only makes a sleeper wake early or poll.
	 */
	int64_t next_when;
};

struct weft__worker {
	/* Immutable while the run lasts. */
	int id;
	pthread_t thread;
	bool solo;			/* the only worker: no thieves exist */
	/*
	 * Kernel thread id, stored by the worker in its setup, before the
	 * start hand-off (start.lock) that precedes the monitor's start.
	 */
	pid_t tid;

	/* Owner-only: only this worker's thread touches these. */
	void *sched_sp;			/* the scheduler context (thread stack) */
	struct weft__fiber sched_fib;
	/*
	 * Running task; NULL in the scheduler.  The owner stores it (relaxed
	 * atomic store, a plain mov); the monitor (sched/monitor.c) reads it
	 * racily to find a task that keeps the worker busy.
	 */
	struct weft_task *cur;
	enum after_switch as_kind;	/* pending finish for as_task */
	struct weft_task *as_task;
	ck_spinlock_t *as_lock;		/* AS_LPARK: the object's lock */
	bool spinning;			/* counted in sched.nspinning */
	uint64_t rand;			/* xorshift state for victim choice */
	uint64_t next_id;		/* task ids: [next_id, id_limit) */
	uint64_t id_limit;
	struct weft__stack *stack_cache;
	int nstack_cache;
	int stack_credit;		/* stack claims held spare (stack.c) */
	/*
	 * This worker's share of weft_stats' stacks_in_use and
	 * stacks_cached (sched/stack.c, count_in_use): stacks its tasks
	 * took minus gave back, stacks its cache gained minus lost (either
	 * may be negative).  Written by the owner only, with plain stores
	 * (ck_pr_store_64: no locked instruction on a task's path); read
	 * racily by weft_stats() under sched.lock; folded into the global
	 * counters by weft__stack_flush() when the worker exits.
	 */
	int64_t stacks_in_use;
	int64_t stacks_cached;
	struct weft_task *task_cache;
	int ntask_cache;
	void *altstack;

	/*
	 * Switches left before the switch path must go through the
	 * scheduler context (timers, global queue, I/O): counts down from
	 * 61.  schedtick counts scheduler-context rounds.  Owner-only.
	 */
	uint32_t credit;
	uint32_t schedtick;
	/*
	 * Cooperative budget (weft__coop_spend): I/O calls on this worker
	 * left before one that finished without waiting must pass through
	 * the scheduler context.  Owner-only.
	 */
	uint32_t coop_budget;
	/*
	 * When I/O in flight must next be polled even though local work
	 * remains (a task that yields in a loop must not starve it).
	 * Owner-only.
	 */
	int64_t io_poll_at;

	/*
	 * Counters: the owner writes (relaxed store), anyone reads (relaxed
	 * load) through weft_worker_stats().  st.tasks_run doubles as the
	 * scheduling tick thieves watch to tell a worker stuck in one task.
	 */
	struct weft_worker_stats st;
	uint64_t spawned;		/* tasks spawned from this worker */
	uint64_t exited;		/* tasks that finished on this worker */

	char pad0_[WEFT_CACHELINE];

	/*
	 * Local run queue: ck_ring SPMC.  The owner enqueues; the owner and
	 * thieves dequeue (owner with dequeue, thieves with trydequeue).
	 */
	struct ck_ring runq;
	struct ck_ring_buffer runq_buf[RUNQ_SIZE];

	/*
	 * Run-next slot.  Only the owner sets it non-NULL (CAS, or a
	 * relaxed store when solo: no thief then, but the monitor and the
	 * idle check read it, weft__runq_empty()); thieves may CAS it to
	 * NULL once the owner has not switched tasks for a whole steal
	 * sequence.
	 */
	struct weft_task *runnext;

	char pad1_[WEFT_CACHELINE];

	/* Timers: the owner adds; anyone removes or expires, under lock. */
	struct weft__timers timers;

	/* Protected by sched.lock. */
	bool idle;			/* on the idle list */
	bool wake_spinning;		/* woken by wakep: start spinning */
	struct weft__worker *idle_next;

	/*
	 * I/O backend instance.  Owner-only, except that any thread may call
	 * io.ops->wake() on it (eventfd write, or a MSG_RING sent from the
	 * waker's own ring).
	 */
	struct weft__io io;
} __attribute__((aligned(WEFT_CACHELINE)));

struct weft__sched {
	/* Immutable while a run lasts. */
	int nworkers;
	struct weft__worker *workers;
	const struct weft__io_ops *io_ops;
	pthread_barrier_t start_barrier;

	/*
	 * Atomics.  nspinning counts workers looking for work without being
	 * on the idle list; npidle counts workers on it (also written under
	 * lock).  See the spinning protocol in sched/worker.c.
	 */
	uint32_t nspinning;
	uint32_t npidle;
	uint32_t running;		/* 1 while a run lasts */
	uint32_t stopping;		/* set once, under lock: all tasks done */
	uint64_t held;			/* atomic: see weft__run_hold() */
	uint64_t next_id_block;		/* task id allocator (fetch-add) */

	char pad0_[WEFT_CACHELINE];

	/* Protected by lock. */
	pthread_mutex_t lock;
	struct weft_task *gq_head;	/* global run queue (FIFO) */
	struct weft_task *gq_tail;
	uint32_t gq_len;		/* also read without lock (atomic) */
	struct weft__worker *idle_head;	/* idle list (LIFO) */
	uint64_t foreign_spawned;	/* spawns from non-worker threads */
};

extern struct weft__sched weft__sched;

/* Stacks (sched/stack.c): the core's half of their API. */
/* Move every stack of w's cache to the global pool.  Executed only by w. */
void weft__stack_flush(struct weft__worker *w);

/* Give back the warm pool's excess.  A worker about to sleep. */
int weft__stack_trim_idle(int batches);

/* Unmap every pooled stack and every slab.  Caller: weft_run teardown. */
void weft__stack_teardown(void);

/*
 * Set up the stack module for a run: default size, the mprotect guard
 * budget of kernels without guard regions (-1: no guards at all), guard
 * bytes (0: 64 KiB).  Probes the kernel for guard regions.
 */
int weft__stack_setup(size_t default_size, long guarded_stacks, size_t guard,
		      int workers);

/* Does every stack of this run get a guard region?  After setup. */
bool weft__stack_guard_regions(void);

/* Tests only (sched/stack.c): set before weft_run. */
extern bool weft__stack_no_regions;
extern void (*weft__stack_overflow_hook)(const struct weft_task *t);

/* Install / remove the SIGSEGV handler that names overflowing tasks. */
int weft__stack_signals_install(void);
void weft__stack_signals_remove(void);

/* Per-thread alternate signal stack for that handler.  Worker threads. */
void *weft__stack_altstack_make(void);
void weft__stack_altstack_free(void *alt);

size_t weft__stack_default_size(void);

/* Stack counters for weft_stats().  Any thread. */
void weft__stack_counters(uint64_t *in_use, uint64_t *cached,
			  uint64_t *guarded, uint64_t *mapped);

/* Spawns refused (-ENOMEM: no stack or descriptor) this run.  Any thread. */
uint64_t weft__spawns_refused(void);

/* Task internals of the core (sched/task.c). */
void weft__task_entry(void *arg, void *pass);
void weft__task_finish_cancelled(struct weft__worker *w, struct weft_task *t);
void weft__task_cache_free(struct weft__worker *w);
void weft__task_pool_teardown(void);
int weft__task_start(struct weft__worker *w, struct weft_task *t);
void weft__task_release_stack(struct weft__worker *w, struct weft_task *t);
/* The main task of weft_run, with a handle.  Before the workers start. */
struct weft_task *weft__task_make_main(weft_fn fn, void *arg);
void weft__task_forget_main(void);


/* Run queues (sched/runq.c, fast paths below). */
void weft__runq_put_slow(struct weft__worker *w, struct weft_task *t);
struct weft_task *weft__runq_steal(struct weft__worker *thief,
				   struct weft__worker *victim,
				   bool take_runnext);
bool weft__runq_empty(struct weft__worker *w);
void weft__globrunq_put_locked(struct weft_task *t);
struct weft_task *weft__globrunq_get_locked(struct weft__worker *w, int max);

/* Worker (sched/worker.c). */
void weft__workers_init(int n);
int weft__sched_run(const struct weft__monitor_cfg *mc);
void weft__wakep(void);
void weft__wakep_slow(struct weft__worker *self);
void weft__wakep_locked(void);
uint64_t weft__tasks_live(void);
void weft__after_switch(struct weft__worker *w);
void weft__switch_out(struct weft__worker *w, struct weft_task *t,
		      enum after_switch kind);

/*
 * The monitor (sched/monitor.c): weft__sched_run() starts it once its
 * workers are set up and stops it before joining them.
 */
void weft__monitor_start(const struct weft__monitor_cfg *cfg);
void weft__monitor_stop(void);

/* Timers (sched/timer.c). */
void weft__timers_init(struct weft__timers *tm);
void weft__timers_free(struct weft__timers *tm);
int weft__timer_add(struct weft__worker *w, struct weft__timer *tmr);
void weft__timer_del(struct weft__timer *tmr);
int weft__timers_run(struct weft__worker *w, struct weft__timers *tm,
		     int64_t now, bool trylock);
int64_t weft__timers_next(struct weft__timers *tm);

/* Relaxed counter bump by the owner: readers use ck_pr_load_64. */
#define WEFT_STAT_INC(w, field)						\
	ck_pr_store_64(&(w)->st.field, (w)->st.field + 1)
#define WEFT_STAT_ADD(w, field, n)					\
	ck_pr_store_64(&(w)->st.field, (w)->st.field + (n))

#if defined(WEFT_TSAN)
/*
 * Under the race detector, randomise whether run-next is used so that tests
 * cannot pass by accident of order (Go ties randomizeScheduler to -race).
 */
static inline bool
weft__sched_coin(struct weft__worker *w)
{
	w->rand ^= w->rand << 13;
	w->rand ^= w->rand >> 7;
	w->rand ^= w->rand << 17;
	return w->rand & 1;
}
#endif

/*
 * Make `t` runnable on w: into run-next if `next` (the previous occupant
 * moves to the ring), else at the ring's tail.  Returns true if a task went
 * onto the ring (work another worker may steal at once), false if `t` took
 * an empty run-next.
 * Executed only by the owning worker.
 */
static inline bool
weft__runq_put(struct weft__worker *w, struct weft_task *t, bool next)
{
	WEFT_ASSERT_OWNER(w);
#if defined(WEFT_TSAN)
	if (next && weft__sched_coin(w))
		next = false;
#endif
	if (next) {
		struct weft_task *old;

		if (w->solo) {
			/* Relaxed: plain movs, read by the monitor. */
			old = ck_pr_load_ptr(&w->runnext);
			ck_pr_store_ptr(&w->runnext, t);
		} else {
			/* Thieves may CAS run-next to NULL concurrently. */
			old = ck_pr_fas_ptr(&w->runnext, t);
		}
		if (!old)
			return false;
		t = old;
	}
	if (WEFT_UNLIKELY(!ck_ring_enqueue_spmc(&w->runq, w->runq_buf, t)))
		weft__runq_put_slow(w, t);
	return true;
}

/*
 * weft__wakep() for a caller that knows its worker (`self`, NULL on a plain
 * thread): saves the TLS lookup on the wake path.  A lone worker that
 * readies work runs it itself.
 */
static inline void
weft__wakep_from(struct weft__worker *self)
{
	if (self && weft__sched.nworkers == 1)
		return;
	weft__wakep_slow(self);
}


/*
 * weft__ready() for a caller that knows its worker `w` (NULL on a plain
 * thread): inline, for the wake paths that run per hand-off.  Any thread.
 *
 * A wake that fills an empty run-next does not wake an idle worker (Tokio's
 * rule for its LIFO slot): the waker is most often about to park (a channel
 * rendezvous, a mutex hand-off in starvation mode), and this worker then
 * runs the woken task next, on a warm cache.  Waking a sleeper for it costs
 * the waker a system call and sends the sleeper stealing a task that is
 * gone by the time it looks; measured, that churn made a 2-worker channel
 * ping-pong 5x slower and a 1,000-task contended mutex 3x slower
 * (BENCHMARKS.md).  A waker that keeps running instead leaves the task
 * waiting; the monitor (sched/monitor.c) wakes a sleeper when a worker has
 * stayed in one task for a tick with work queued, and that sleeper steals
 * the run-next of a worker that has not switched.  A wake that pushes a task
 * onto the ring (no run-next wanted, or the previous run-next displaced)
 * wakes a sleeper as before: that is work to share.
 */
static inline void weft__ready_on(struct weft__worker *w,
				  struct weft_task *t, bool next);

/*
 * Onto the global queue's tail, then wakep.  Any thread.  The plain
 * thread's ready, and a worker's wake at the tail while the global queue
 * holds work (weft__ready_on): the tasks there overflowed a full ring and
 * are older than this one.  Put on the ring instead, a fresh wake would run
 * before them, and under a steady load of completions (1,000 busy
 * connections on one worker) the ring never ran dry, the global queue was
 * read once in 61 rounds, and a connection whose task overflowed waited
 * up to a second.  Behind the global queue, the order is FIFO over both:
 * the ring drains, then refills from the global head.  (A wake that beats
 * its waiter's switch is queued by the waiter's worker in after_switch(),
 * on the ring as before: I/O completions are reaped on the scheduler
 * context, after the switch, so they never take that path, and sending
 * those cross-worker hand-offs to the global queue cost a contended mutex
 * benchmark 10%.)
 */
void weft__ready_global(struct weft_task *t);

static inline void
weft__ready_on(struct weft__worker *w, struct weft_task *t, bool next)
{
	ck_pr_store_32(&t->state, WEFT_RUNNING);
	if (WEFT_LIKELY(w != NULL)) {
		/*
		 * A wake at the tail (an I/O completion, a join) queues
		 * behind the global queue when that holds work: see
		 * weft__ready_global().
		 */
		if (!next &&
		    WEFT_UNLIKELY(ck_pr_load_32(&weft__sched.gq_len) != 0)) {
			weft__ready_global(t);
			return;
		}
		if (weft__runq_put(w, t, next))
			weft__wakep_from(w);
		return;
	}
	weft__ready_global(t);
}


/*
 * Next task of w's own queues: run-next first, then the ring.
 * Executed only by the owning worker.
 */
static inline struct weft_task *
weft__runq_get(struct weft__worker *w)
{
	struct weft_task *t;

	WEFT_ASSERT_OWNER(w);
	if (w->solo) {
		if ((t = ck_pr_load_ptr(&w->runnext))) {
			ck_pr_store_ptr(&w->runnext, NULL);
			return t;
		}
		/* No other consumer exists: the single-consumer path is safe. */
		if (ck_ring_dequeue_spsc(&w->runq, w->runq_buf, &t))
			return t;
		return NULL;
	}
	t = ck_pr_load_ptr(&w->runnext);
	if (t && ck_pr_cas_ptr(&w->runnext, t, NULL))
		return t;
	if (ck_ring_dequeue_spmc(&w->runq, w->runq_buf, &t))
		return t;
	return NULL;
}

#endif /* WEFT_SCHED_H */

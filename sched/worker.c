/* SPDX-License-Identifier: MIT */
/*
 * The scheduler: worker threads, finding work, parking and waking workers,
 * and weft_run().
 *
 * What it must do.  Run many tasks on a few threads (one per CPU by
 * default), keep every thread busy while there is runnable work anywhere,
 * let no worker sleep while work waits that it could take, and never burn a
 * CPU or make a system call when there is nothing to do or the work is
 * local.  A wake-up of a sleeping thread costs ~25 us across vCPUs here
 * (DESIGN.md), so the design avoids them: a worker that runs out of work
 * first spins briefly stealing, and at most one idle worker is woken per
 * burst of new work.
 *
 * Worker loop (find_runnable), in order:
 *  1. expired timers of its own heap (they ready tasks onto its queue);
 *  2. every 61st round, one task from the global queue first (fairness: a
 *     pair of tasks readying each other must not starve the global queue);
 *  3. run-next, then the local ring;
 *  4. a batch from the global queue;
 *  5. if allowed to spin: SPIN_ROUNDS rounds over the other workers in
 *     random order, stealing half of a victim's ring; in the last round also
 *     a victim's run-next (only if the victim has not switched tasks during
 *     the whole sequence, i.e. it is stuck in one task) and its expired
 *     timers (trylock);
 *  6. park: join the idle list and sleep in the I/O backend (io_uring wait)
 *     with a timeout equal to the earliest timer of any worker.
 *
 * Spinning protocol (Go's, proc.go "Worker thread parking/unparking"):
 * nspinning counts workers looking for work off the idle list; npidle the
 * workers on it.  A worker may start spinning only while 2*nspinning <
 * nworkers - npidle.  Whoever makes work runnable calls weft__wakep(): if a
 * worker is idle and none spins, it CASes nspinning 0->1 on the sleeper's
 * behalf and wakes it.  A spinner that finds work stops spinning and, if it
 * was the last one, calls wakep() so the next burst of work has a spinner.
 * A spinner that gives up first puts itself on the idle list, then
 * decrements nspinning, then (after a full barrier) looks at every queue
 * once more: work submitted after that look sees nspinning == 0 and
 * npidle > 0 and wakes someone; work submitted before it is found by the
 * look.  The submitter's side of that Dekker pair is the full barrier at the
 * top of wakep().  No lost wake-ups, no thundering herd.  "Work" here is
 * what a thief may take at once: a task on a ring.  A wake that only fills
 * an empty run-next calls no wakep (weft__ready_on); should its waker keep
 * the CPU, the monitor wakes a sleeper for it after a tick.  A yield that
 * switches to another local task counts as making work runnable (the
 * yielder, back on the ring): it wakes a sleeper too, or two tasks that
 * only yield could keep a second worker asleep for good.
 *
 * Direct switching.  A task that yields, parks or exits does not go back to
 * the scheduler context when its worker has local work: it switches straight
 * to the next task (one switch, not two), and the resumed context finishes
 * the previous task's transition (weft__after_switch: enqueue the yielder,
 * mark the parked one SAVED, free the exited one's stack).  Finishing on the
 * far side is what makes it safe for another worker to resume the task as
 * soon as it is visible.  Every 61st switch (w->credit) goes through the
 * scheduler anyway so that timers, the global queue and I/O are never
 * starved.
 *
 * Three rejected approaches that would work badly:
 *  1. A thread blocked on a condition variable per idle worker.  Workers
 *     must sleep in io_uring_enter to reap completions; two sleeping
 *     mechanisms means one of them cannot wake the other without a system
 *     call of its own.  weft parks only on the ring.
 *  2. Waking every idle worker when work arrives: each wake costs a
 *     cross-CPU IPI and most of them find nothing.
 *  3. One global run queue: every switch would take a shared lock.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/park.h"
#include "sched/sched.h"

struct weft__sched weft__sched = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/*
 * The worker of this thread.  Initial-exec TLS, read through a function
 * the compiler cannot inline or hoist: a task may resume on another thread
 * after any switch, and a TLS address cached across a switch would name the
 * old thread's worker.
 */
static __thread struct weft__worker *tls_worker
	__attribute__((tls_model("initial-exec")));

__attribute__((noinline)) struct weft__worker *
weft__worker_self(void)
{
	struct weft__worker *w = tls_worker;

	/* An empty asm keeps the compiler from treating this as pure. */
	__asm__ volatile("" : : : "memory");
	return w;
}

/* Run / start-up state, protected by start_lock. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ready;		/* workers that finished setup */
	int go;			/* 1: run; -1: a worker failed, exit */
	int error;		/* first setup error */
} start = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};


static inline uint32_t
fastrand(struct weft__worker *w)
{
	w->rand ^= w->rand << 13;
	w->rand ^= w->rand >> 7;
	w->rand ^= w->rand << 17;
	return (uint32_t)(w->rand >> 16);
}

/*
 * Tasks spawned and not finished.  Reads every `exited` counter before
 * every `spawned` counter: a task is counted as exited only after its
 * spawn was counted, so the sum never undercounts, and it is zero only
 * when no task is alive (each live task's spawner was alive after the
 * exited reads, and counted).  Caller holds sched.lock (foreign spawns).
 */
uint64_t
weft__tasks_live(void)
{
	struct weft__sched *s = &weft__sched;
	uint64_t exited = 0, spawned = s->foreign_spawned;
	int i;

	for (i = 0; i < s->nworkers; i++)
		exited += ck_pr_load_64(&s->workers[i].exited);
	/* Pairs with the release of the counters' stores: see above. */
	ck_pr_fence_load();
	for (i = 0; i < s->nworkers; i++)
		spawned += ck_pr_load_64(&s->workers[i].spawned);
	return spawned - exited;
}

/* Caller holds sched.lock. */
static void
idle_put_locked(struct weft__worker *w)
{
	WEFT_ASSERT_HELD(&weft__sched.lock);
	w->idle = true;
	w->wake_spinning = false;
	w->idle_next = weft__sched.idle_head;
	weft__sched.idle_head = w;
	ck_pr_inc_32(&weft__sched.npidle);
}

/* Caller holds sched.lock. */
static void
idle_remove_locked(struct weft__worker *w)
{
	struct weft__worker **pp = &weft__sched.idle_head;

	WEFT_ASSERT_HELD(&weft__sched.lock);

	while (*pp != w)
		pp = &(*pp)->idle_next;
	*pp = w->idle_next;
	w->idle = false;
	ck_pr_dec_32(&weft__sched.npidle);
}

/* Caller holds sched.lock. */
static struct weft__worker *
idle_get_locked(void)
{
	struct weft__worker *w = weft__sched.idle_head;

	WEFT_ASSERT_HELD(&weft__sched.lock);

	if (w)
		idle_remove_locked(w);
	return w;
}

static void
wake_worker(struct weft__worker *v)
{
	struct weft__worker *self = weft__worker_self();

	weft__sched.io_ops->wake(self ? &self->io : NULL, &v->io);
	if (self)
		WEFT_STAT_INC(self, wakeups);
}

/*
 * New work is runnable: wake one idle worker if none is spinning.
 * Can be executed by any thread; a thread that is not a worker goes
 * through weft__wakep_locked() instead (see there).
 */
void
weft__wakep(void)
{
	weft__wakep_from(weft__worker_self());
}

/* weft__wakep_from() past its inline checks: self is a worker of a pool. */
void
weft__wakep_slow(struct weft__worker *self)
{
	struct weft__sched *s = &weft__sched;
	struct weft__worker *v;

	if (!self) {
		weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
		weft__wakep_locked();
		weft__mutex_unlock(&s->lock);
		return;
	}
	/* StoreLoad: the work we published before the counters we read. */
	ck_pr_fence_memory();
	if (ck_pr_load_32(&s->npidle) == 0 || ck_pr_load_32(&s->nspinning))
		return;
	if (!ck_pr_cas_32(&s->nspinning, 0, 1))
		return;
	weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
	v = idle_get_locked();
	if (v)
		v->wake_spinning = true;
	weft__mutex_unlock(&s->lock);
	if (!v) {
		ck_pr_dec_32(&s->nspinning);
		return;
	}
	wake_worker(v);
}

/*
 * wakep() for threads that are not workers, holding sched.lock for the
 * whole wake: workers free their rings and eventfds only after `stopping`
 * is set under this lock, and weft_run clears `running` under it, so a
 * plain thread can never wake a worker of a run that is over (or count
 * itself in nspinning across runs).  Caller holds sched.lock.
 */
void
weft__wakep_locked(void)
{
	struct weft__sched *s = &weft__sched;
	struct weft__worker *v;

	WEFT_ASSERT_HELD(&weft__sched.lock);

	if (!ck_pr_load_32(&s->running) || s->stopping)
		return;
	if (ck_pr_load_32(&s->npidle) == 0 || ck_pr_load_32(&s->nspinning))
		return;
	if (!ck_pr_cas_32(&s->nspinning, 0, 1))
		return;
	v = idle_get_locked();
	if (!v) {
		ck_pr_dec_32(&s->nspinning);
		return;
	}
	v->wake_spinning = true;
	s->io_ops->wake(NULL, &v->io);
}

/* Executed only by w: it found work and stops spinning. */
static void
reset_spinning(struct weft__worker *w)
{
	WEFT_ASSERT_OWNER(w);
	if (!w->spinning)
		return;
	w->spinning = false;
	/* The last spinner to find work hands spinning to another worker. */
	if (ck_pr_faa_32(&weft__sched.nspinning, (uint32_t)-1) == 1)
		weft__wakep();
}

/*
 * Turn a dequeued task into one that can be switched to: give a fresh one
 * its stack, finish a cancelled one that never ran.  Returns false if t was
 * finished instead.  Executed only by w.
 */
static bool
startable(struct weft__worker *w, struct weft_task *t)
{
	WEFT_ASSERT_OWNER(w);
	if (WEFT_LIKELY(t->sp != NULL))
		return true;
	/*
	 * PENDING -> RUNNING races with weft_cancel()'s PENDING -> CANCELLED:
	 * exactly one wins.
	 */
	if (!ck_pr_cas_32(&t->state, WEFT_PENDING, WEFT_RUNNING) ||
	    WEFT_UNLIKELY(weft__task_start(w, t) < 0)) {
		weft__task_finish_cancelled(w, t);
		return false;
	}
	return true;
}

/* Next task of w's own queues that can run now.  Executed only by w. */
static inline struct weft_task *
local_next(struct weft__worker *w)
{
	struct weft_task *t;

	WEFT_ASSERT_OWNER(w);
	while ((t = weft__runq_get(w)))
		if (startable(w, t))
			return t;
	return NULL;
}

/*
 * Finish the transition of the context we just switched away from.
 * Executed only by w, first thing after every switch.
 */
static inline __attribute__((always_inline)) void
after_switch(struct weft__worker *w)
{
	struct weft_task *t = w->as_task;
	uint64_t old;

	WEFT_ASSERT_OWNER(w);
	if (w->as_kind == AS_NONE)
		return;
	/* Overflow check of an unguarded stack, at its exact saved sp. */
	weft__stack_check(t, t->stack, t->sp);
	switch (w->as_kind) {
	case AS_NONE:
		return;
	case AS_YIELD:
		/*
		 * Behind the global queue when it holds work (Go's Gosched):
		 * tasks that overflowed the ring wait there, and a yielder
		 * put back on the ring would run before them again and again
		 * (1,000 yielders on one worker: a task waited ~26 rounds).
		 * The queue is refilled from the global head when it runs
		 * dry, so the order is FIFO over both.
		 */
		if (WEFT_UNLIKELY(ck_pr_load_32(&weft__sched.gq_len) != 0)) {
			weft__mutex_lock(&weft__sched.lock, WEFT_RANK_SCHED);
			weft__globrunq_put_locked(t);
			weft__mutex_unlock(&weft__sched.lock);
			break;
		}
		weft__runq_put(w, t, false);
		/*
		 * A yield that switched to another local task (cur is set;
		 * the scheduler context has none) leaves work queued here.
		 * If a worker sleeps meanwhile, wake it to take some: nothing
		 * else would, since a yield readies nobody.  (Go's Gosched
		 * puts the goroutine on the global queue, where any P finds
		 * it.)  Plain loads first, so that a yield with no idle worker
		 * adds no fence; a miss only delays the balance to the next
		 * yield.
		 */
		if (ck_pr_load_ptr(&w->cur) &&
		    WEFT_UNLIKELY(ck_pr_load_32(&weft__sched.npidle) != 0) &&
		    ck_pr_load_32(&weft__sched.nspinning) == 0)
			weft__wakep_from(w);
		break;
	case AS_YIELD_GLOBAL:
		weft__mutex_lock(&weft__sched.lock, WEFT_RANK_SCHED);
		weft__globrunq_put_locked(t);
		weft__mutex_unlock(&weft__sched.lock);
		break;
	case AS_PARK:
		/*
		 * Full barrier.  Pairs with the add of COMMITTED in commit():
		 * the later of the two makes the task runnable.  Its context
		 * is saved: the switch stored its sp before we got here.
		 */
		old = ck_pr_faa_64(&t->park, PARK_SAVED);
		if (old & PARK_COMMITTED) {
			weft__runq_put(w, t, false);
			weft__wakep_from(w);
		} else if (WEFT_UNLIKELY(ck_pr_load_32(&t->flags) &
					 TASK_CANCELLED) &&
			   !(old & (PARK_CLAIMED | PARK_IO))) {
			/*
			 * The flag read that weft__park_prepare() leaves to
			 * us: after the add above (a full barrier), so a
			 * weft_cancel() that found the park not yet armed
			 * is seen here.  Wake the park as the canceller
			 * would have (a lost race with another waker just
			 * fails the claim).
			 */
			weft__wake(t, PARK_SEQ(old), -ECANCELED);
		}
		break;
	case AS_LPARK:
		/*
		 * t's context is saved: only now may its waker (who needs
		 * this lock) find it.
		 */
		weft__spin_unlock(w->as_lock);
		break;
	case AS_EXIT:
		weft__task_release_stack(w, t);
		ck_pr_store_64(&w->exited, w->exited + 1);
		weft__task_unref(w, t);
		break;
	}
	w->as_kind = AS_NONE;
	w->as_task = NULL;
}

void
weft__after_switch(struct weft__worker *w)
{
	after_switch(w);
}

/*
 * Leave the running task t (kind says why) for the next local task, or for
 * the scheduler context.  Returns when t runs again, possibly on another
 * worker (never for AS_EXIT).  Must be called from a coroutine.
 */
static inline __attribute__((always_inline)) void
switch_out(struct weft__worker *w, struct weft_task *t,
	   enum after_switch kind)
{
	struct weft_task *next = NULL;
	if (WEFT_LIKELY(--w->credit != 0)) {
		next = local_next(w);
		/*
		 * A yield with nothing else local returns at once, unless the
		 * global queue holds work (overflowed spawns, foreign spawns):
		 * then the scheduler context must run, or a task polling with
		 * yield would see one global task per 61 yields.
		 */
		if (!next && kind == AS_YIELD) {
			if (ck_pr_load_32(&weft__sched.gq_len)) {
				/*
				 * Behind the global queue's tasks, as Go's
				 * Gosched: back on the local ring it would be
				 * found first.
				 */
				kind = AS_YIELD_GLOBAL;
			} else if (!w->io.ops->busy(&w->io) ||
				   weft_now() < w->io_poll_at) {
				return;
			}
			/* else: I/O is due; the scheduler polls it. */
		}
	}
	w->as_kind = kind;
	w->as_task = t;
	if (next) {
		ck_pr_store_ptr(&w->cur, next);
		WEFT_STAT_INC(w, tasks_run);
		w = weft__switch(&t->sp, next->sp, &next->fib,
				 kind == AS_EXIT, w);
	} else {
		ck_pr_store_ptr(&w->cur, NULL);
		w->credit = 61;
		w = weft__switch(&t->sp, w->sched_sp, &w->sched_fib,
				 kind == AS_EXIT, w);
	}
	/* Resumed, possibly on another thread: w is that thread's worker. */
	after_switch(w);
}

void
weft__switch_out(struct weft__worker *w, struct weft_task *t,
		 enum after_switch kind)
{
	switch_out(w, t, kind);
}

/*
 * Park the calling task in the lock-guarded park it armed (sched/park.h), on
 * its worker w: the object's `lock` is released once the task is off-CPU, and
 * the task runs again when a holder of that lock calls weft__lpark_wake().
 * Coroutine context only.
 */
void
weft__lpark(struct weft__worker *w, ck_spinlock_t *lock)
{
	struct weft_task *t = w->cur;

	WEFT_ASSERT_HELD(lock);
	ck_pr_store_64((uint64_t *)&t->wait_since,
		       (uint64_t)weft__wait_clock_now());
	ck_pr_store_32(&t->state, WEFT_SUSPENDED);
	w->as_lock = lock;
	switch_out(w, t, AS_LPARK);
	/* weft__ready() stored WEFT_RUNNING. */
	ck_pr_store_8(&t->wait_kind, WAIT_NONE);
}

int
weft_yield(void)
{
	struct weft__worker *w = weft__worker_self();
	struct weft_task *t = w ? w->cur : NULL;

	if (WEFT_UNLIKELY(!t))
		return -EPERM;
	switch_out(w, t, AS_YIELD);
	return (ck_pr_load_32(&t->flags) & TASK_CANCELLED) ? -ECANCELED : 0;
}

void
weft__coop_spend(void)
{
	struct weft__worker *w = weft__worker_self();
	struct weft_task *t = w ? w->cur : NULL;

	if (WEFT_LIKELY(!t || --w->coop_budget != 0))
		return;
	w->coop_budget = COOP_BUDGET;
	WEFT_STAT_INC(w, coop_yields);
	/* Credit 1: this switch goes through the scheduler context. */
	w->credit = 1;
	switch_out(w, t, AS_YIELD);
}

/* Steal from the other workers.  Executed only by w, while spinning. */
static struct weft_task *
steal_work(struct weft__worker *w)
{
	struct weft__sched *s = &weft__sched;
	uint64_t ticks[s->nworkers];
	struct weft_task *t;
	int n = s->nworkers;

	WEFT_ASSERT_OWNER(w);
	for (int round = 0; round < SPIN_ROUNDS; round++) {
		bool last = round == SPIN_ROUNDS - 1;
		int start_at = (int)(fastrand(w) % (uint32_t)n);

		for (int i = 0; i < n; i++) {
			struct weft__worker *v = &s->workers[(start_at + i) % n];
			unsigned int before;

			if (v == w)
				continue;
			if (ck_pr_load_32(&s->stopping))
				return NULL;
			if (round == 0)
				ticks[v->id] =
					ck_pr_load_64(&v->st.tasks_run);
			if (last && weft__timers_run(w, &v->timers, weft_now(),
						     true) > 0) {
				if ((t = local_next(w)))
					return t;
			}
			t = weft__runq_steal(w, v, last &&
					     ck_pr_load_64(&v->st.tasks_run) ==
					     ticks[v->id]);
			if (t) {
				before = ck_ring_size(&w->runq);
				WEFT_STAT_INC(w, steals);
				WEFT_STAT_ADD(w, stolen, before + 1);
				return t;
			}
		}
	}
	return NULL;
}

/* Earliest timer of any worker, as a relative timeout (-1: none). */
static int64_t
sleep_timeout(struct weft__worker *w, int64_t now)
{
	struct weft__sched *s = &weft__sched;
	int64_t next = INT64_MAX, t;
	bool stuck = false;

	for (int i = 0; i < s->nworkers; i++) {
		t = weft__timers_next(&s->workers[i].timers);
		if (t < next)
			next = t;
		if (&s->workers[i] != w && !weft__runq_empty(&s->workers[i]))
			stuck = true;
	}
	/*
	 * Work is queued behind a worker that did not let us steal it (its
	 * run-next, held by a worker stuck in one task): look again soon.
	 */
	if (stuck && next > now + WEFT_MSEC)
		next = now + WEFT_MSEC;
	if (next == INT64_MAX)
		return -1;
	return next > now ? next - now : 0;
}

/* Any queue anywhere non-empty?  Executed by a worker about to sleep. */
static bool
work_anywhere(void)
{
	struct weft__sched *s = &weft__sched;

	if (ck_pr_load_32(&s->gq_len))
		return true;
	for (int i = 0; i < s->nworkers; i++)
		if (!weft__runq_empty(&s->workers[i]))
			return true;
	return false;
}

/* Executed only by w: every task is done, stop all workers. */
static void
stop_all_locked(void)
{
	struct weft__worker *v;

	ck_pr_store_32(&weft__sched.stopping, 1);
	while ((v = idle_get_locked()))
		weft__sched.io_ops->wake(NULL, &v->io);
}

/*
 * Find a task to run, sleeping when there is none.  Returns NULL when the
 * run is over.  Executed only by w, on its scheduler context.
 */
static struct weft_task *
find_runnable(struct weft__worker *w)
{
	struct weft__sched *s = &weft__sched;
	struct weft_task *t;
	int64_t now, timeout;

	WEFT_ASSERT_OWNER(w);
top:
	if (ck_pr_load_32(&s->stopping))
		return NULL;
	now = weft_now();
	weft__timers_run(w, &w->timers, now, false);

	/*
	 * Fairness for I/O: a worker that always has local work still
	 * submits and reaps at least every IO_POLL_NS (Go's sysmon polls the
	 * network after 10 ms; a poll that finds nothing costs ~1 us here).
	 */
	if (now >= w->io_poll_at && w->io.ops->busy(&w->io)) {
		w->io.ops->wait(&w->io, 0);
		w->io_poll_at = now + IO_POLL_NS;
	}
	if (++w->schedtick % 61 == 0) {
		/* Fairness: the global queue. */
		if (ck_pr_load_32(&s->gq_len)) {
			weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
			t = weft__globrunq_get_locked(w, 1);
			weft__mutex_unlock(&s->lock);
			if (t)
				goto found;
		}
	}
	if ((t = weft__runq_get(w)))
		goto found;
	if (ck_pr_load_32(&s->gq_len)) {
		weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
		t = weft__globrunq_get_locked(w, 0);
		weft__mutex_unlock(&s->lock);
		if (t)
			goto found;
	}
	if (s->nworkers > 1) {
		/*
		 * Submit what the tasks queued and collect completions
		 * before looking elsewhere (Go's netpoll before stealing).
		 * A lone worker skips this: its sleep below does both.
		 */
		if (w->io.ops->busy(&w->io)) {
			w->io.ops->wait(&w->io, 0);
			w->io_poll_at = now + IO_POLL_NS;
			if ((t = weft__runq_get(w)))
				goto found;
		}
		if (!w->spinning &&
		    2 * ck_pr_load_32(&s->nspinning) <
		    (uint32_t)s->nworkers - ck_pr_load_32(&s->npidle)) {
			w->spinning = true;
			ck_pr_inc_32(&s->nspinning);
		}
		if (w->spinning && (t = steal_work(w)))
			goto found;
	}

	/* Nothing: park. */
	weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
	if (s->stopping) {
		weft__mutex_unlock(&s->lock);
		return NULL;
	}
	if ((t = weft__globrunq_get_locked(w, 0))) {
		weft__mutex_unlock(&s->lock);
		goto found;
	}
	if (weft__tasks_live() == 0) {
		if (WEFT_LIKELY(ck_pr_load_64(&s->held) == 0)) {
			stop_all_locked();
			weft__mutex_unlock(&s->lock);
			return NULL;
		}
		/* Held open: try to start what holds it, or wait for it. */
		weft__mutex_unlock(&s->lock);
		if (weft__future_retry_deferred())
			goto top;
		weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
		if (s->stopping) {
			weft__mutex_unlock(&s->lock);
			return NULL;
		}
	}
	idle_put_locked(w);
	weft__mutex_unlock(&s->lock);

	if (w->spinning) {
		w->spinning = false;
		/* Full barrier, then the last look (see the essay above). */
		ck_pr_dec_32(&s->nspinning);
		ck_pr_fence_memory();
		if (work_anywhere()) {
			weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
			if (w->idle) {
				idle_remove_locked(w);
				w->spinning = true;
				ck_pr_inc_32(&s->nspinning);
			} else {
				/* wakep() took us off the list meanwhile. */
				w->spinning = w->wake_spinning;
				w->wake_spinning = false;
			}
			weft__mutex_unlock(&s->lock);
			goto top;
		}
	}

	/*
	 * Idle time is when memory goes back to the OS.  On the idle list
	 * already, so work arriving meanwhile wakes the wait below at once.
	 */
	weft__stack_trim_idle(4);
	timeout = sleep_timeout(w, weft_now());
	WEFT_STAT_INC(w, parks);
	w->io.ops->wait(&w->io, timeout);

	weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
	if (w->idle) {
		idle_remove_locked(w);
	} else {
		w->spinning = w->wake_spinning;
		w->wake_spinning = false;
	}
	weft__mutex_unlock(&s->lock);
	goto top;

found:
	reset_spinning(w);
	if (!startable(w, t))
		goto top;
	return t;
}

static void
worker_loop(struct weft__worker *w)
{
	struct weft_task *t;

	while ((t = find_runnable(w))) {
		w->credit = 61;
		ck_pr_store_ptr(&w->cur, t);
		WEFT_STAT_INC(w, tasks_run);
		weft__switch(&w->sched_sp, t->sp, &t->fib, false, w);
		after_switch(w);
	}
}

/* Per-thread setup of worker w, on its own thread.  Returns 0 or -errno. */
static int
worker_setup(struct weft__worker *w)
{
	int ret;

	tls_worker = w;
	w->tid = gettid();
	w->io.ops = weft__sched.io_ops;
	w->io.st = &w->st;
	ret = w->io.ops->create(&w->io);
	if (ret < 0) {
		w->io.ops = NULL;
		return ret;
	}
	w->altstack = weft__stack_altstack_make();
#if defined(WEFT_ASAN)
	{
		pthread_attr_t attr;
		void *addr;
		size_t size;

		pthread_getattr_np(pthread_self(), &attr);
		pthread_attr_getstack(&attr, &addr, &size);
		pthread_attr_destroy(&attr);
		w->sched_fib.stack_lo = addr;
		w->sched_fib.stack_size = size;
	}
#endif
#if defined(WEFT_TSAN)
	w->sched_fib.tsan = __tsan_get_current_fiber();
#endif
	return 0;
}

static void
worker_cleanup(struct weft__worker *w)
{
	weft__stack_flush(w);
	weft__task_cache_free(w);
	weft__timers_free(&w->timers);
	if (w->io.ops)
		w->io.ops->free(&w->io);
	weft__stack_altstack_free(w->altstack);
	w->altstack = NULL;
	tls_worker = NULL;
}

/* Set up, wait for every worker, run.  Returns the setup error or 0. */
static int
worker_start(struct weft__worker *w)
{
	int ret = worker_setup(w);

	weft__mutex_lock(&start.lock, WEFT_RANK_START);
	if (ret < 0 && !start.error)
		start.error = ret;
	start.ready++;
	pthread_cond_broadcast(&start.cond);
	while (start.go == 0)
		pthread_cond_wait(&start.cond, &start.lock);
	ret = start.go > 0 ? 0 : -1;
	weft__mutex_unlock(&start.lock);
	if (ret == 0)
		worker_loop(w);
	return ret;
}

static void *
worker_main(void *arg)
{
	struct weft__worker *w = arg;

	worker_start(w);
	worker_cleanup(w);
	return NULL;
}

/*
 * Make workers[0..n) ready for a run: zeroed, ids, empty queues and timer
 * heaps.  Caller: weft_run (runtime/run.c), before any worker exists.
 */
void
weft__workers_init(int n)
{
	struct weft__sched *s = &weft__sched;

	for (int i = 0; i < n; i++) {
		struct weft__worker *w = &s->workers[i];

		memset(w, 0, sizeof(*w));
		w->id = i;
		w->solo = n == 1;
		w->coop_budget = COOP_BUDGET;
		w->rand = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) ^
			  (uint64_t)weft_now();
		ck_ring_init(&w->runq, RUNQ_SIZE);
		weft__timers_init(&w->timers);
	}
}

/*
 * Run the scheduler: start workers 1..n-1 on threads of their own, make the
 * calling thread worker 0, start the monitor once every worker is set up
 * (their tids recorded) and before any task runs, run until every task is
 * done, then stop the monitor and join the workers.  Returns 0 or the
 * first setup error (no task ran then).  Caller: weft_run, with the workers
 * initialised, the main task queued and `running` set.
 */
int
weft__sched_run(const struct weft__monitor_cfg *mc)
{
	struct weft__sched *s = &weft__sched;
	int n = s->nworkers, ret = 0, created = 0;

	start.ready = 0;
	start.go = 0;
	start.error = 0;
	for (int i = 1; i < n; i++) {
		ret = -pthread_create(&s->workers[i].thread, NULL, worker_main,
				      &s->workers[i]);
		if (ret < 0)
			break;
		created++;
	}
	/* Worker 0 is this thread. */
	ret = ret < 0 ? ret : worker_setup(&s->workers[0]);
	weft__mutex_lock(&start.lock, WEFT_RANK_START);
	while (start.ready < created)
		pthread_cond_wait(&start.cond, &start.lock);
	if (ret == 0)
		ret = start.error;
	/*
	 * Every worker has recorded its tid.  The monitor (and the dump
	 * signal's handler) must be in place before any task runs: a task
	 * may expect the signal to be handled.
	 */
	if (ret == 0)
		weft__monitor_start(mc);
	start.go = ret == 0 ? 1 : -1;
	pthread_cond_broadcast(&start.cond);
	weft__mutex_unlock(&start.lock);
	if (ret == 0)
		worker_loop(&s->workers[0]);
	weft__monitor_stop();
	for (int i = 1; i <= created; i++)
		pthread_join(s->workers[i].thread, NULL);
	worker_cleanup(&s->workers[0]);
	return ret;
}

struct weft_task *
weft__worker_task(struct weft__worker *w)
{
	return w->cur;
}

struct weft__io *
weft__worker_io(struct weft__worker *w)
{
	return &w->io;
}

bool
weft__sched_running(void)
{
	return ck_pr_load_32(&weft__sched.running) != 0;
}

int
weft__sched_nworkers(void)
{
	return weft__sched.nworkers;
}

/*
 * On the channels' hand-off path: the LTO build inlines it into them
 * (always_inline is honoured across files at link time; the sanitizer
 * builds, without LTO, call it).
 */
__attribute__((always_inline)) inline void
weft__lpark_wake(struct weft__worker *w, struct weft_task *t)
{
	weft__ready_on(w, t, true);
}

/* SPDX-License-Identifier: MIT */
/*
 * This file is private to weft.  It declares the task descriptor, stacks,
 * the park/wake primitive and the switch helpers that runtime/, sched/ and
 * io/ share.  cmd/ and tests/ never include it.
 */
#ifndef WEFT_PARK_H
#define WEFT_PARK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include <ck_pr.h>
#include <ck_spinlock.h>

#include "include/weft.h"
#include "io/base.h"
#include "sched/ctx.h"

#if defined(WEFT_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(WEFT_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

/*
 * ThreadSanitizer runs threads of its own (its background thread, and
 * more after a fork), named like the program's, with every asynchronous
 * signal blocked (the sanitizers' internal_start_thread).  The deadlock
 * detector (runtime/diag.c) must not take them for a user's threads.
 */
#if defined(WEFT_TSAN)
#define WEFT_SAN_BG_THREAD 1
#else
#define WEFT_SAN_BG_THREAD 0
#endif



struct weft__io;
struct weft__worker;

/*
 * Stacks (sched/stack.c)
 *
 * A stack is `size` usable bytes from `lo` up, with `gap` bytes of its
 * mapping reserved below it for a guard.  `guard` says how many of those
 * are armed: a guard region (MADV_GUARD_INSTALL) or a PROT_NONE page run
 * (kernels without guard regions, while the mapping budget lasts), where a
 * write faults and the SIGSEGV handler names the task.  An unarmed stack
 * (guard 0: past that budget, or weft_config.guarded_stacks = -1) keeps its
 * lowest WEFT_CANARY_BYTES untouched (zero), and the switch-out path checks
 * that they are still zero.  Every stack's saved stack pointer is checked
 * against its limit on switch-out.  Zero costs nothing: an untouched page
 * reads as the shared zero page and never becomes resident.
 *
 * What the canary catches, and what it does not: a frame that runs into
 * the lowest 64 bytes and writes them (a deep recursion whose frames are
 * written, an array filled from its end), and a task parked with its stack
 * pointer below its stack; it is checked when the task switches out, so
 * the damage is done by then, and a frame that skips the canary writes a
 * neighbour's stack unseen.  Guards catch every frame up to `guard` bytes
 * below the stack at the faulting instruction, and every frame of code
 * built with -fstack-clash-protection (it touches each page in turn).
 */
#define WEFT_CANARY_BYTES 64
#define WEFT_STACK_RESERVE 256	/* below lo + this, the saved sp is an overflow */

struct weft__stack {
	/* Immutable while the stack exists, but guard (set once, by its
	 * holder, before any task runs on it). */
	char *lo;		/* lowest usable byte */
	size_t size;		/* usable bytes: the top is lo + size */
	uint32_t gap;		/* bytes reserved below lo for a guard */
	uint32_t guard;		/* bytes of it armed; 0: canary only */
	bool slab;		/* carved from a slab (never unmapped alone) */
	/* Pool link: whoever holds the stack (its task, or its pool). */
	struct weft__stack *next;
};

/*
 * Claim a default-size stack for a task being spawned on `w` (NULL: a
 * thread that is not a worker): 0, or -ENOMEM when the promise could not
 * be backed.  A claimed stack is taken with weft__stack_get() when the task
 * first runs, which then cannot fail; weft__stack_put() gives the claim
 * back with the stack, weft__stack_unclaim() without one (a task cancelled
 * before it ran).  See "Claims" in sched/stack.c.  Executed only by `w`.
 */
int weft__stack_claim(struct weft__worker *w);
/* Is a request of `size` bytes (0: default) a default-size stack? */
bool weft__stack_is_default(size_t size);
void weft__stack_unclaim(struct weft__worker *w);

/*
 * Take a stack of `size` bytes (0: the default; that needs a claim held).
 * Returns NULL with *err set to a negative errno (odd sizes only).
 * weft__stack_take() claims too (generators, the main task, odd sizes).
 * Executed only by the owning worker (NULL: not a worker).
 */
struct weft__stack *weft__stack_get(struct weft__worker *w, size_t size,
				    int *err);
struct weft__stack *weft__stack_take(struct weft__worker *w, size_t size,
				     int *err);

/*
 * Give a stack back (the task on it has exited, or never ran).  Executed
 * only by `w` (NULL: a thread that is not a worker).
 */
void weft__stack_put(struct weft__worker *w, struct weft__stack *st);



/*
 * Switch-out overflow check of an unguarded stack (see above): aborts with
 * the task's name if the canary area is dirty or `sp` lies inside it.
 * Must not park.
 */
void weft__stack_overflowed(struct weft_task *t, void *sp);

static inline void
weft__stack_check(struct weft_task *t, struct weft__stack *st, void *sp)
{
	const uint64_t *c = (const uint64_t *)(void *)st->lo;

	if (WEFT_UNLIKELY((char *)sp < st->lo + WEFT_STACK_RESERVE))
		weft__stack_overflowed(t, sp);
	if (WEFT_LIKELY(st->guard))
		return;
	if (WEFT_UNLIKELY((c[0] | c[1] | c[2] | c[3] | c[4] | c[5] | c[6] |
			   c[7]) != 0))
		weft__stack_overflowed(t, sp);
}

/*
 * Sanitizer fiber state of a context (a task or a worker's scheduler
 * context).  Empty in normal builds.
 */
struct weft__fiber {
#if defined(WEFT_ASAN)
	const void *stack_lo;
	size_t stack_size;
#endif
#if defined(WEFT_TSAN)
	void *tsan;
#endif
#if !defined(WEFT_ASAN) && !defined(WEFT_TSAN)
	char empty_[0];
#endif
};

/*
 * The park word (struct weft_task.park), one 64-bit atomic:
 *
 *	bits 63..32  seq: number of the current park, bumped by each prepare
 *	bit  0       ARMED: the task is between prepare and wake-up
 *	bit  1       CLAIMED: a waker won the right to wake this park
 *	bit  2       SAVED: the task's context is saved (it is off-CPU)
 *	bit  3       COMMITTED: the winning waker stored park_result
 *	bit  4       IO: an I/O park (weft__park_prepare_io): the kernel owns
 *	             the caller's buffers, so only the completion may wake
 *	             it; cancellation goes through the ring's owner instead
 *	bit  5       LOCKED: a lock-guarded park (weft__lpark_arm, below):
 *	             nobody claims it through this word; its wakers and its
 *	             canceller all take the lock of the object it waits on
 *
 * A parked task becomes runnable when both SAVED and COMMITTED are set; the
 * party that sets the second one (the worker that switched away from the
 * task, or the waker) puts it on a run queue.  Exactly one waker can CLAIM a
 * given seq, so timeouts, cancellation and ordinary wake-ups race safely.
 */
#define PARK_ARMED	0x1u
#define PARK_CLAIMED	0x2u
#define PARK_SAVED	0x4u
#define PARK_COMMITTED	0x8u
#define PARK_IO		0x10u
#define PARK_LOCKED	0x20u
#define PARK_SEQ(word)	((uint32_t)((word) >> 32))

/* Task flag bits (struct weft_task.flags, atomic). */
#define TASK_CANCELLED	0x1u	/* weft_cancel() was called */
#define TASK_HANDLE_BIT	1
#define TASK_HANDLE	(1u << TASK_HANDLE_BIT) /* a handle is out, not given up */
#define TASK_JOINING	0x4u	/* a joiner is registered */
#define TASK_MAIN	0x8u	/* weft_run's main task (set at make) */
/*
 * A runtime-internal task (a future's callback runner): a spawn after the
 * main task returned does not start it cancelled, and the straggler
 * cancellation sets its flag but never stops it before it ran, so queued
 * callbacks still run.  Set at spawn.
 */
#define TASK_SYSTEM	0x10u
#define TASK_SLOW	0x20u	/* reported as a slow task (runtime/diag.c) */
/*
 * weft_fail() was called (runtime/future.c): set by the task itself, after
 * it stored the error in its future (weft__future_fail_err()); weft_join()
 * returns that error.
 */
#define TASK_FAILED	0x40u

/*
 * Timers (sched/timer.c).  A task owns one timer, used by its current wait.
 * The heap it sits in is its worker's at the time it was armed.
 */
struct weft__timers;
struct weft__timer {
	int64_t when;			/* Written by the owner task before add. */
	uint32_t seq;			/* fire NULL: the park to wake; idem */
	int32_t idx;			/* heap index or -1: under heap->lock */
	/*
	 * What expiry does.  NULL: wake the task's park `seq` with
	 * -ETIMEDOUT (weft__park()'s deadline).  Else a timer armed with
	 * weft__timer_mod(), for a wait the core does not time itself (an
	 * I/O deadline): fire(timer) is called with the heap lock held,
	 * which keeps the task alive and in its wait.  Written by the owner
	 * task before add; under heap->lock after.
	 */
	void (*fire)(struct weft__timer *t);
	/*
	 * A fire timer is kept in the heap between waits (Go's modtimer): a
	 * new deadline no earlier than `when` only updates live_when, and
	 * the heap re-positions the timer when `when` comes.  live: a wait
	 * is on live_when.  Both under heap->lock.
	 */
	bool live;
	int64_t live_when;
	struct weft__timers *heap;	/* heap holding it: under heap->lock */
};

/*
 * The task descriptor.  The states (enum weft_task_state in weft.h):
 *
 *  WEFT_PENDING	In a run queue (local ring, run-next slot or global
 *			queue), never run, no stack.  Whoever dequeues it
 *			may run it or, if it is cancelled, finish it as
 *			WEFT_CANCELLED without running it.
 *  WEFT_RUNNING	Running on the worker in w->cur, or runnable again
 *			(yielded or woken) in some run queue; owns a stack.
 *  WEFT_SUSPENDED	Parked: off-CPU, its context saved on its own stack;
 *			only the waker that claims its park (see the park
 *			word) may make it runnable again.
 *  WEFT_DONE		fn returned; result is set; the stack went back to a
 *			pool; the descriptor lives until refs drops to zero.
 *  WEFT_CANCELLED	Cancelled before it ran; as DONE without a result.
 */
struct weft_task {
	/*
	 * Switch state.  Touched only by the worker running the task, or by
	 * the worker switching to it (which got it from a run queue, whose
	 * hand-off orders these accesses).
	 */
	void *sp;			/* saved stack pointer while off-CPU */
	struct weft__stack *stack;	/* NULL until first run */
	weft_fn fn;
	void *arg;
	void *result;			/* written before state DONE (release) */
	size_t stack_size;		/* requested size, 0: default */
	struct weft__fiber fib;

	/* Global run queue and free-list link: under sched.lock / owner. */
	struct weft_task *next;

	/* Immutable after spawn. */
	uint64_t id;
	char name[24];
	/*
	 * Where the task was made, for the diagnostics' "created by": the
	 * spawning task's id (0: a plain thread, or weft_run for the main
	 * task) and the return address of the weft_spawn() call.
	 */
	uint64_t parent_id;
	void *spawn_pc;

	/* Atomics (ck_pr): any thread. */
	uint32_t refs;		/* 1 for the runtime until exit, 1 per handle */
	uint32_t state;		/* enum weft_task_state; owner stores */
	uint32_t flags;		/* TASK_* */
	int park_result;	/* written by the claiming waker, then COMMITTED */
	uint64_t park;		/* the park word, see above */

	/* Joining: protected by lock. */
	ck_spinlock_t lock;
	uint32_t joiner_seq;
	struct weft_task *joiner;
	/*
	 * The task's future (runtime/future.c), made on first request.  Set
	 * once, under lock (a full-barrier exchange, see weft_task_future());
	 * read under lock by the exit paths after they store the final
	 * state, and lock-free by weft__task_start() after its state CAS.
	 * The descriptor holds one reference until it is freed.
	 */
	struct weft_future *fut;

	struct weft__timer timer;

	/*
	 * The I/O backend instance that holds this task's operation in
	 * flight (completion model, see io/io.h), or NULL.  Stored by the
	 * task itself (release) before it arms an I/O park and cleared
	 * after; read by weft_cancel() and the I/O deadline on any thread to
	 * route the cancellation (runtime/iocall.c).  A stale value only
	 * costs the old owner a look-up that finds nothing.
	 */
	struct weft__io *io_at;
	/* Key of that operation (slot+generation); stored before io_at. */
	uint64_t io_key;

	/*
	 * What the task waits on, for weft_dump() and the deadlock detector
	 * (runtime/diag.c).  Written by the task itself with
	 * weft__wait_note() before it parks; wait_since is stamped (from
	 * weft__wait_clock) and wait_kind reset to WAIT_NONE by
	 * weft__park()/weft__park_io()
	 * (relaxed atomic stores: plain movs).  Read racily by the dump
	 * (a snapshot, only for SUSPENDED tasks) and by the detector (which
	 * runs only when every worker is idle, so nothing changes under it).
	 */
	uint8_t wait_kind;		/* enum weft__wait_kind */
	const void *wait_obj;		/* the object; for WAIT_JOIN a task */
	int64_t wait_since;		/* weft_now()-scale time of the park */
	/*
	 * The park's deadline (WEFT_DEADLINE_NONE: none), stored by
	 * weft__park() and by an I/O wait (weft__wait_deadline()); a
	 * lock-guarded park has none whatever this says (PARK_LOCKED in the
	 * park word).  Same protocol as wait_since.
	 */
	int64_t wait_deadline;

	/*
	 * A lock-guarded park (weft__lpark_arm()).  lpark_obj and
	 * lpark_cancel are stored by the task itself before the release
	 * store that arms the park word, and read by a canceller after an
	 * acquire load that saw it armed.  lpark_rec (the waiter record of
	 * the object, e.g. a channel's sudog) is cleared by the arm and set
	 * under the object's lock; the canceller reads it under that lock.
	 */
	void *lpark_obj;
	void (*lpark_cancel)(void *obj, struct weft_task *t, uint32_t seq);
	void *lpark_rec;

	/*
	 * Deadline scopes (runtime/scope.c): the earliest deadline of the
	 * scopes the task is in (WEFT_DEADLINE_NONE: none), which every
	 * blocking call with a deadline takes if it is earlier than its own
	 * (weft__scope_clamp), and the innermost scope the task entered.
	 * Owner-only: written and read by the task itself; a spawn copies
	 * scope_deadline from the spawning task to the new one before it is
	 * published.
	 */
	int64_t scope_deadline;
	struct weft_scope *scope;
};

/*
 * The earlier of `deadline` and t's scopes' (WEFT_DEADLINE_NONE, -1, is
 * the latest of all as an unsigned number).
 */
static inline int64_t
weft__scope_clamp(const struct weft_task *t, int64_t deadline)
{
	uint64_t a = (uint64_t)deadline, b = (uint64_t)t->scope_deadline;

	return (int64_t)(a < b ? a : b);
}

/* weft__scope_clamp() for the calling task (a plain thread has none). */
static inline int64_t
weft__scoped(int64_t deadline)
{
	struct weft_task *weft__task_self(void);
	struct weft_task *t = weft__task_self();

	return t ? weft__scope_clamp(t, deadline) : deadline;
}

/*
 * An internal wait that must run to its end (the shielded waits below,
 * the pool's waits for a job that works on the caller's memory) is not
 * bounded by the caller's scopes: suspend them around it.  t may be NULL
 * (a plain thread).  Executed only by the task t.
 */
static inline int64_t
weft__scope_suspend(struct weft_task *t)
{
	int64_t d = t ? t->scope_deadline : WEFT_DEADLINE_NONE;

	if (t)
		t->scope_deadline = WEFT_DEADLINE_NONE;
	return d;
}

static inline void
weft__scope_resume(struct weft_task *t, int64_t d)
{
	if (t)
		t->scope_deadline = d;
}

/* What a parked task waits on (struct weft_task.wait_kind). */
enum weft__wait_kind {
	WAIT_NONE = 0,
	WAIT_SLEEP,		/* weft_sleep: a timer */
	WAIT_JOIN,		/* weft_join: wait_obj is the task */
	WAIT_FUTURE,		/* weft_future_wait: wait_obj is the future */
	WAIT_FUTURES,		/* weft_wait_all/any: wait_obj is the array */
	WAIT_CHAN_SEND,
	WAIT_CHAN_RECV,
	WAIT_SELECT,
	WAIT_MUTEX,
	WAIT_RWLOCK,
	WAIT_COND,
	WAIT_WAITGROUP,
	WAIT_SEM,
	WAIT_ONCE,
	WAIT_GROUP,		/* weft_group_wait/free */
	WAIT_IO,		/* an I/O operation: wait_obj its weft__ioop */
	WAIT_POOL,		/* a blocking-pool job */
	WAIT_OTHER,		/* anything else */
};

/*
 * Record what the calling task `t` is about to wait on.  Two plain stores:
 * cheap enough for every park.  The park itself stamps wait_since.
 * Executed only by the task t.
 */
static inline void
weft__wait_note(struct weft_task *t, enum weft__wait_kind kind,
		const void *obj)
{
	/* Relaxed atomic stores (plain movs): the monitor reads racily. */
	ck_pr_store_8(&t->wait_kind, (uint8_t)kind);
	ck_pr_store_ptr(&t->wait_obj, (void *)obj);
}

/* Record the deadline of a wait that weft__park() does not time. */
static inline void
weft__wait_deadline(struct weft_task *t, int64_t deadline)
{
	ck_pr_store_64((uint64_t *)&t->wait_deadline, (uint64_t)deadline);
}

/*
 * The same for a waiter that may be a plain thread (wt->task NULL: nothing
 * to note, a thread is not in the dump).  After weft__waiter_prepare().
 * Executed only by the waiter.
 */
#define weft__waiter_note(wt, kind, obj)				\
	do {								\
		if ((wt)->task)						\
			weft__wait_note((wt)->task, (kind), (obj));	\
	} while (0)

/*
 * The clock of wait_since: weft_now() as the monitor thread (sched/monitor.c)
 * last saw it, so stamping a park costs one load of a read-mostly word and
 * no clock read.  Resolution: the monitor's tick (20 ms while tasks run,
 * 100 ms idle); 0 when the monitor does not run.  Stored (relaxed) by the
 * monitor only; any thread loads it.
 */
extern int64_t weft__wait_clock;

static inline int64_t
weft__wait_clock_now(void)
{
	return (int64_t)ck_pr_load_64((uint64_t *)&weft__wait_clock);
}

/*
 * Park/wake (sched/park.c): the one blocking primitive every other waits
 * through.  Protocol for a waiter:
 *
 *	lock(obj);
 *	seq = weft__park_prepare(self);
 *	record (self, seq) where wakers of obj will find it;
 *	ret = weft__park(unlock_obj, obj, deadline);   // unlocks after switch
 *	lock(obj); remove the record if still there; unlock(obj);
 *
 * and for a waker, holding obj's lock (which keeps the record, hence the
 * task, alive):  weft__wake(task, seq, result).
 */
uint32_t weft__park_prepare(struct weft_task *self);
int weft__park(void (*unlock)(void *), void *arg, int64_t deadline);
bool weft__wake(struct weft_task *t, uint32_t seq, int result);
/*
 * The I/O variant: the park can be ended only by weft__wake() with its
 * seq (the completion), never by a timeout or weft__wake_current().
 * weft__park_io() parks until then and returns the waker's result.
 */
uint32_t weft__park_prepare_io(struct weft_task *self);
int weft__park_io(void);
bool weft__wake_current(struct weft_task *t, int result);
/*
 * As weft__wake(), but the woken task goes to the tail of the local queue
 * instead of run-next: for wakers that are about to exit, so that a task
 * joining a batch of short children runs once after the batch, not once
 * per child.
 */
bool weft__wake_tail(struct weft_task *t, uint32_t seq, int result);

/*
 * The cooperative budget, Tokio's idea: a task whose calls never wait
 * (a stream that is always ready, under the readiness backend) would
 * otherwise keep its worker until it parks, its timers and the other tasks
 * waiting.  The I/O layer calls this after each call that did not park; every
 * COOP_BUDGET calls on a worker it yields through the scheduler context
 * (timers, I/O poll, global queue, then the local queue in order), whatever
 * else is runnable.  Coroutine context only.
 */
void weft__coop_spend(void);

/*
 * Lock-guarded parks: the waiting side of an object whose every waker
 * holds the object's lock (an untimed channel send or receive).  Such a
 * park needs no atomic read-modify-write of its own, where weft__park()
 * spends two (the waker's claim and the SAVED add after the switch):
 *
 *  - The lock is released only after the switch (weft__lpark(), as Go's
 *    park_m runs its unlockf on g0), so a waker that finds the record
 *    under the lock finds a saved context, and being the lock's holder
 *    it is the only possible waker: weft__lpark_wake() just readies it.
 *  - Cancellation, the one waker that does not start at the object,
 *    takes the lock too (weft__lpark_visit(), from weft_cancel()).  It
 *    finds the object through the task: lpark_obj and lpark_cancel are
 *    published by the arm.  The arm comes before the object's lock is
 *    taken, so the lock's atomic exchange orders it before the task's
 *    read of TASK_CANCELLED under the lock: either that read sees the
 *    flag, or the canceller (flag, then park word, both ordered by its
 *    own read-modify-write) sees the park armed and takes the lock.
 *  - The object may be freed as soon as the task leaves the park, while
 *    a canceller that saw it armed is about to take its lock: a canceller
 *    counts itself in weft__lpark_visitors for its whole visit, and the
 *    object's free path calls weft__lpark_quiesce() first.
 *
 * Use (task `self`, deadline WEFT_DEADLINE_NONE only):
 *
 *	seq = weft__lpark_arm(self, obj, cancel_fn);
 *	lock(obj);
 *	if the operation completes: unlock(obj); weft__lpark_disarm(self);
 *	if TASK_CANCELLED: unlock(obj); weft__lpark_disarm(self); -ECANCELED
 *	record the waiter, self->lpark_rec = record;
 *	weft__lpark(w, &obj->lock);	// unlocked after the switch
 *	weft__lpark_disarm(self);	// the waker removed the record
 *
 * A waker holding the lock removes the record, stores its outcome in the
 * record and calls weft__lpark_wake(its worker, task), and touches neither
 * after.
 * cancel_fn(obj, t, seq), called with no lock held, locks obj and, if t's
 * park word still shows `seq` armed and t->lpark_rec is still recorded,
 * removes it, stores -ECANCELED in it and calls weft__lpark_wake().
 */
/* Lock-guarded parks: the arm and disarm, inline for the channel paths. */
/* Executed by the task itself, before it takes the object's lock. */
static inline uint32_t
weft__lpark_arm(struct weft_task *self, void *obj,
		void (*cancel)(void *, struct weft_task *, uint32_t))
{
	uint32_t seq = PARK_SEQ(ck_pr_load_64(&self->park)) + 1;

	/*
	 * Atomic: a canceller that saw the previous arm may read these.
	 * lpark_rec is NULL already: set only while a record is queued, and
	 * cleared by whoever unlinks it.  Stores are left out where they
	 * would not change anything: the lock's exchange that follows waits
	 * for every pending store.
	 */
	if (ck_pr_load_ptr(&self->lpark_obj) != obj)
		ck_pr_store_ptr(&self->lpark_obj, obj);
	if (ck_pr_load_ptr((void **)&self->lpark_cancel) != (void *)cancel)
		ck_pr_store_ptr((void **)&self->lpark_cancel, (void *)cancel);
	WEFT_ASSERT(ck_pr_load_ptr(&self->lpark_rec) == NULL);
	/* Release: the fields before the armed word a canceller acquires. */
	ck_pr_fence_store();
	ck_pr_store_64(&self->park,
		       ((uint64_t)seq << 32) | PARK_ARMED | PARK_LOCKED);
	return seq;
}

/*
 * The park is over (or never happened): keep the seq, drop ARMED.  No
 * canceller or waker writes a lock-guarded park word, so a store does.
 * (The seq is read back from the word: cheaper than keeping the arm's
 * return value live across the lock.)  Executed by the task itself.
 */
static inline void
weft__lpark_disarm(struct weft_task *self)
{
	ck_pr_store_64(&self->park,
		       ck_pr_load_64(&self->park) & ~(uint64_t)UINT32_MAX);
}


void weft__lpark(struct weft__worker *w, ck_spinlock_t *lock);

/*
 * Make t, parked in a lock-guarded park whose record the caller (holding
 * the object's lock) just removed, runnable (sched/park.h).  Its context is
 * saved: the lock was released only after its switch.  w: the caller's
 * worker (NULL on a plain thread).  Any thread.
 */
void weft__lpark_wake(struct weft__worker *w, struct weft_task *t);
/* True if t was in a lock-guarded park (the visit is then done). */
bool weft__lpark_visit(struct weft_task *t);
void weft__lpark_quiesce(void);

/*
 * A waiter that may be a coroutine or a plain thread (channels and sync
 * primitives work on both).  Same protocol as weft__park(): under the
 * object's lock, weft__waiter_prepare() and record the waiter; then
 * weft__waiter_wait(unlock, arg, deadline) releases the lock and waits;
 * then relock and remove the record if it is still there.  A waker holding
 * the lock calls weft__waiter_wake(), which returns false if the waiter
 * already left (timed out or was cancelled): wake someone else then.
 * A coroutine waits through weft__park(); a thread on a futex word
 * (0 waiting, 1 woken, 2 gave up, 3 claimed by a waker that has not
 * committed yet), and cannot be cancelled.
 */
struct weft__waiter {
	struct weft_task *task;		/* NULL: a plain thread */
	uint32_t seq;			/* task's park */
	uint64_t word;			/* task: the park word the claim left,
					 * written only by the winning claimer
					 * (under the lock guarding its
					 * record), read by its commit */
	uint32_t futex;			/* thread: see above (atomic) */
	int result;			/* thread: the waker's result */
};

void weft__waiter_prepare(struct weft__waiter *wt);
/* The same for a caller that knows weft__task_self() already. */
void weft__waiter_prepare_as(struct weft__waiter *wt, struct weft_task *self);
int weft__waiter_wait(struct weft__waiter *wt, void (*unlock)(void *),
		      void *arg, int64_t deadline);
bool weft__waiter_wake(struct weft__waiter *wt, int result);
/*
 * weft__waiter_wake() in two steps, for wakers that must hand data over
 * only if they win the waiter (select: several channels race for one
 * waiter): claim, then (if it returned true) write the data, then commit.
 * Caller holds the lock that guards the waiter's record throughout.
 */
bool weft__waiter_claim(struct weft__waiter *wt);
void weft__waiter_commit(struct weft__waiter *wt, int result);

/* Make a woken task runnable (`next`: into run-next).  Any thread. */
void weft__ready(struct weft_task *t, bool next);

/* The task running on this thread, or NULL.  Any thread. */
struct weft_task *weft__task_self(void);

/*
 * This thread's worker, or NULL on a plain thread.  Never inlined and never
 * cached across a call that can park: a task may resume on another worker
 * (sched/worker.c).  Any thread.
 */
struct weft__worker *weft__worker_self(void);

/* The task running on worker w (the caller's own), or NULL.  Owner only. */
struct weft_task *weft__worker_task(struct weft__worker *w);

/* Worker w's I/O backend instance.  Any thread (the pointer is fixed). */
struct weft__io *weft__worker_io(struct weft__worker *w);

/*
 * How weft_cancel() reaches a task in an I/O park, which refuses a direct
 * claim (only its completion may end it): the I/O call layer routes the
 * cancellation to the backend instance that holds the operation.  Set by
 * weft_run (runtime/run.c) before the first task; read by any canceller.
 */
extern void (*weft__io_canceller)(struct weft_task *t);

/*
 * Work outside any task that must still be done before the run may end:
 * the runtime layer's done callbacks whose runner task could not be
 * spawned (-ENOMEM).  weft__run_hold(+1) for each, -1 when it is taken
 * up; while the count is non-zero an idle worker that finds no task alive
 * calls weft__future_retry_deferred() instead of ending the run, and parks
 * if that made no progress.  Any thread.
 */
void weft__run_hold(int delta);

/*
 * Timers for waits the core does not time itself (sched/timer.c), on the
 * task's own t->timer.  weft__timer_reserve() makes room on w's heap so
 * that the next weft__timer_mod() there cannot fail (-ENOMEM otherwise);
 * weft__timer_mod() arms the timer for `deadline` with `fire` (see struct
 * weft__timer), reusing it if it is still in w's heap; weft__timer_stop()
 * makes its expiry a no-op and leaves it in the heap for the next mod.
 * reserve and mod: executed only by the owner task, on w, with no switch
 * between them; stop: by the owner task on any worker.
 */
int weft__timer_reserve(struct weft__worker *w);
void weft__timer_mod(struct weft__worker *w, struct weft__timer *tmr,
		     int64_t deadline, void (*fire)(struct weft__timer *));
void weft__timer_stop(struct weft__timer *tmr);

/* The task that owns timer `tmr`. */
static inline struct weft_task *
weft__timer_task(struct weft__timer *tmr)
{
	return (struct weft_task *)(void *)((char *)tmr -
		offsetof(struct weft_task, timer));
}

/* True while weft_run() runs (set before the first task).  Any thread. */
bool weft__sched_running(void);

/* Workers of the run, 0 outside one.  Any thread. */
int weft__sched_nworkers(void);

/*
 * Drop a reference to t taken with weft__task_tryref() or held by a handle;
 * the last one frees the descriptor.  w: the caller's worker or NULL.  Any
 * thread.
 */
void weft__task_unref(struct weft__worker *w, struct weft_task *t);

/*
 * Switch from the running context to `to_sp` (a task or a scheduler
 * context) of worker `w`, with the sanitizer fiber annotations.  `exiting`
 * means the current context will never run again.  Returns the worker the
 * calling context has been resumed on.  Extremely fragile: see ctx.h.
 */
static inline struct weft__worker *
weft__switch(void **from_sp, void *to_sp, struct weft__fiber *to,
	     bool exiting, struct weft__worker *w)
{
	void *ret;

#if defined(WEFT_ASAN)
	void *fake = NULL;

	__sanitizer_start_switch_fiber(exiting ? NULL : &fake, to->stack_lo,
				       to->stack_size);
#endif
#if defined(WEFT_TSAN)
	weft__tsan_take_signals();
	__tsan_switch_to_fiber(to->tsan, 0);
#endif
	(void)to;
	(void)exiting;
#ifdef WEFT_LOCKRANK
	/* No lock across a switch, but a lock-guarded park's (io/base.h). */
	weft__rank_check_switch();
#endif
	ret = weft__ctx_switch(from_sp, to_sp, w);
#if defined(WEFT_ASAN)
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	return ret;
}

bool weft__task_tryref(struct weft_task *t);
size_t weft__tasks_foreach(void (*fn)(struct weft_task *t, void *arg),
			   void *arg);
/*
 * Take a reference on t unless it has none left (a descriptor being
 * freed).  Any thread.
 */
/*
 * Spawn a detached runtime-internal task (TASK_SYSTEM, see above).
 * Returns 0, -ENOMEM or -ESRCH (no runtime running).  Any thread.
 */
int weft__spawn_system(weft_fn fn, void *arg, const char *name);

/*
 * What the diagnostics (runtime/diag.c) see of the core, and how they hook
 * onto the monitor thread (sched/monitor.c).
 *
 * The monitor runs the hooks of a weft__monitor_cfg, which the composition
 * root (runtime/run.c) hands to weft__sched_run(): dump() and tick() once
 * per tick, on the monitor thread (tick: the deadlock detector); slow() when
 * a task has kept its worker for slow_ns without switching (once per task,
 * already marked TASK_SLOW).  None may park; NULL hooks are skipped.
 * `wanted`: run the monitor even with one worker (it always runs with two
 * or more: it rescues a stuck run-next).
 */
/*
 * Where a slow task was when it was reported (the monitor samples it):
 * n frames of return addresses, pc[0] the interrupted instruction itself;
 * or, if the thread was inside a system call (not interrupted then, so as
 * not to make the call fail with EINTR), its number in `syscall` (else -1)
 * and pc[0] the user address it entered the kernel from.  n 0: unknown.
 */
#define WEFT_SAMPLE_MAX 32
struct weft__sample {
	int n;
	long syscall;
	uintptr_t pc[WEFT_SAMPLE_MAX];
};

struct weft__monitor_cfg {
	bool wanted;
	int64_t slow_ns;		/* 0: no slow-task watch */
	void (*slow)(uint64_t id, const char *name, int worker, int64_t ns,
		     const struct weft__sample *where);
	/* A reported task gave its worker back after running `ns` in all. */
	void (*slow_end)(uint64_t id, const char *name, int worker,
			 int64_t ns);
	void (*tick)(void);
	void (*dump)(void);
};

/* Wake the monitor for an early tick.  Any thread; async-signal-safe. */
void weft__monitor_kick(void);

/* Progress counters, summed over the workers. */
struct weft__progress {
	uint64_t tasks_run;
	uint64_t wakeups;
	uint64_t parks;
	uint64_t timers_fired;
	uint64_t io_ops;
	uint64_t io_done;
	uint64_t spawned;
	uint64_t exited;
};

/*
 * Observers, while a run lasts (racy snapshots unless every worker sleeps):
 * the summed counters; whether the scheduler is quiescent (every worker on
 * the idle list with empty queues, no timer armed anywhere, no I/O in flight
 * by `p`); whether `tid` is a worker's or the monitor's; the live tasks
 * (takes sched.lock); the worker running t, or -1; one line per worker for
 * weft_dump().  Any thread; never park.
 */
void weft__sched_progress(struct weft__progress *p);
bool weft__sched_quiescent(const struct weft__progress *p);
bool weft__sched_owns_tid(pid_t tid);
uint64_t weft__sched_tasks_live(void);
int weft__task_worker(const struct weft_task *t);
void weft__sched_print_workers(FILE *out);

/*
 * Guards the workers array against the end of a run for readers that are
 * not workers (weft_stats, weft_dump): it is set up before `running` and
 * freed after it is cleared, both under this lock (runtime/run.c).
 */
extern pthread_mutex_t weft__stats_lock;

/*
 * Upcalls: what the core calls of the layer above, declared here so that the
 * core includes nothing of runtime/ (Go's runtime does the same across its
 * files).  A task's future (t->fut, runtime/future.c) follows the task's
 * life: weft__future_running() when it first runs, weft__future_complete()
 * when it ends (the future's owner: the task, any thread, never blocks;
 * returns 0 or -EALREADY), weft__task_drop_future() when its descriptor
 * goes; weft__future_adopt_orphans() when a run starts;
 * weft__future_retry_deferred() when the run is held open by callbacks
 * whose runner could not be spawned (see weft__run_hold; true if it
 * started one).
 */
void weft__future_running(struct weft_future *f);
int weft__future_complete(struct weft_future *f, void *value, int err,
			  bool cancelled);
void weft__task_drop_future(struct weft_task *t);
/*
 * The error weft_fail() stored in a task's future (< 0), or 0.  Written
 * by the task before it exits; read by a joiner after it saw the task
 * DONE (the exit's release of t->lock orders the two).
 */
int weft__future_fail_err(const struct weft_future *f);
void weft__future_adopt_orphans(void);
bool weft__future_retry_deferred(void);

/*
 * A shielded wait (asyncio.shield, Trio's shielded cancel scope) for code
 * that must await something to the end even when its task is cancelled
 * (join_for's cancel-and-wait, weft_group_free): begin clears the caller's
 * TASK_CANCELLED flag and returns whether it was set; a wait that still
 * returns -ECANCELED means a new cancel arrived: weft__shield_hit() clears
 * it again (returns true if it was set); end restores the flag if any was
 * seen.  While shielded, weft_task_is_cancelled() on the caller reads
 * false.  Executed only by the task t.
 */
static inline bool
weft__shield_hit(struct weft_task *t)
{
	/* CAS loop: other bits (TASK_HANDLE) change concurrently. */
	uint32_t old = ck_pr_load_32(&t->flags);

	while (old & TASK_CANCELLED)
		if (ck_pr_cas_32_value(&t->flags, old, old & ~TASK_CANCELLED,
				       &old))
			return true;
	return false;
}

static inline bool
weft__shield_begin(struct weft_task *t)
{
	return weft__shield_hit(t);
}

static inline void
weft__shield_end(struct weft_task *t, bool cancelled)
{
	if (cancelled)
		ck_pr_or_32(&t->flags, TASK_CANCELLED);
}

#endif /* WEFT_PARK_H */

/* SPDX-License-Identifier: MIT */
/*
 * Park and wake: the one way a task blocks.  Sleep and join use it now;
 * channels, locks, futures and I/O are built on the same calls.  The park
 * word protocol is described in sched/park.h.
 *
 * Why a two-sided hand-off (SAVED and COMMITTED) and not "wake = enqueue":
 * a waker on another worker may claim a task in the window between the task
 * deciding to park and its registers being saved by the switch.  Enqueueing
 * it then would let a third worker resume a context that is still running.
 * Go closes the window by running the unlock on g0 after the switch; weft
 * does the same (the `unlock` callback runs on the next context) and also
 * lets timeouts and cancellation, which take no lock, race through the
 * CLAIMED bit.  Unlike Go, the waiter's lock is released before the switch
 * (see weft__park()): the SAVED bit already keeps a claimed task off the
 * run queues until its context is saved.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sched/park.h"
#include "sched/sched.h"

/*
 * Start a new park for `self`: returns its seq, to be stored with the
 * waiter record.  Executed by the task itself.
 */
uint32_t
weft__park_prepare(struct weft_task *self)
{
	/* Atomic: a canceller may CAS the word concurrently. */
	uint32_t seq = PARK_SEQ(ck_pr_load_64(&self->park)) + 1;

	/*
	 * Published to ordinary wakers by the lock that guards the waiter
	 * record.  A plain store, atomic because a canceller may read or
	 * CAS the word concurrently.  weft_cancel() sets the flag, then
	 * reads the park word; its Dekker partner here is the add of SAVED
	 * in weft__after_switch(), a full barrier between this arming and
	 * the authoritative flag read that follows it there: either that
	 * read sees the flag, or the cancel sees the park armed.  (The
	 * flag read in weft__park() before the switch is only a shortcut.)
	 */
	ck_pr_store_64(&self->park, ((uint64_t)seq << 32) | PARK_ARMED);
	return seq;
}

uint32_t
weft__park_prepare_io(struct weft_task *self)
{
	uint32_t seq = PARK_SEQ(ck_pr_load_64(&self->park)) + 1;

	/* Full barrier: pairs with weft_cancel() as above. */
	ck_pr_fas_64(&self->park,
		     ((uint64_t)seq << 32) | PARK_ARMED | PARK_IO);
	return seq;
}

/*
 * Try to claim park `seq` of t (any seq if !match; never an I/O park then).
 * Returns the park word as the claim left it (CLAIMED set, never 0), or 0
 * if the park is over, not the one asked for, or someone else won it.
 * Any thread.
 */
static uint64_t
claim(struct weft_task *t, uint32_t seq, bool match)
{
	uint64_t old = ck_pr_load_64(&t->park);

	for (;;) {
		/* A lock-guarded park is woken only under its object's lock. */
		if ((old & (PARK_ARMED | PARK_CLAIMED | PARK_LOCKED)) !=
		    PARK_ARMED)
			return 0;
		if (match ? PARK_SEQ(old) != seq : (old & PARK_IO) != 0)
			return 0;
		if (ck_pr_cas_64_value(&t->park, old, old | PARK_CLAIMED, &old))
			return old | PARK_CLAIMED;
	}
}

/*
 * The claimer stores the result and makes t runnable if it is off-CPU.
 * `word` is what claim() returned.
 */
static void
commit(struct weft_task *t, int result, bool next, uint64_t word)
{
	uint64_t old;

	ck_pr_store_int(&t->park_result, result);
	if (word & PARK_SAVED) {
		/*
		 * Saved before we claimed it: nobody else writes the word
		 * now (other claimers see CLAIMED; the task is off-CPU and
		 * not runnable until we say so), so a release store does
		 * what the add would.  The common case of a waiter that
		 * parked a while ago: one atomic read-modify-write per wake
		 * (the claim), not two.
		 */
		ck_pr_fence_store();
		ck_pr_store_64(&t->park, word | PARK_COMMITTED);
		weft__ready(t, next);
		return;
	}
	/*
	 * Full barrier: orders park_result before COMMITTED for whoever sees
	 * both bits.  Pairs with the add of SAVED in weft__after_switch().
	 * COMMITTED is set once per park (by the claimer), so add == or.
	 */
	old = ck_pr_faa_64(&t->park, PARK_COMMITTED);
	if (old & PARK_SAVED)
		weft__ready(t, next);
}

/*
 * Wake park `seq` of t with `result` (0 or a negative errno).  Returns false
 * if that park is over or someone else won it.  The caller must keep t
 * alive for the call (hold the lock guarding its waiter record).
 * Can be executed by any thread.
 */
bool
weft__wake(struct weft_task *t, uint32_t seq, int result)
{
	uint64_t word = claim(t, seq, true);

	if (!word)
		return false;
	commit(t, result, true, word);
	return true;
}

bool
weft__wake_tail(struct weft_task *t, uint32_t seq, int result)
{
	uint64_t word = claim(t, seq, true);

	if (!word)
		return false;
	commit(t, result, false, word);
	return true;
}

/* Wake whatever park t is in (cancellation).  Any thread holding a ref. */
bool
weft__wake_current(struct weft_task *t, int result)
{
	uint64_t word = claim(t, 0, false);

	if (!word)
		return false;
	commit(t, result, true, word);
	return true;
}

/*
 * Make t runnable: on the calling worker's run-next slot (or ring tail),
 * or on the global queue from a thread that is not a worker.  Any thread.
 */
void
weft__ready(struct weft_task *t, bool next)
{
	weft__ready_on(weft__worker_self(), t, next);
}

/* See sched/sched.h: a plain thread's ready, or a tail wake behind work. */
void
weft__ready_global(struct weft_task *t)
{
	weft__mutex_lock(&weft__sched.lock, WEFT_RANK_SCHED);
	weft__globrunq_put_locked(t);
	weft__wakep_locked();
	weft__mutex_unlock(&weft__sched.lock);
}

/*
 * Park the calling task (prepared with weft__park_prepare) until a waker
 * claims it, `deadline` passes (-ETIMEDOUT) or it is cancelled
 * (-ECANCELED).  `unlock(arg)`, if given, releases the waiter's lock
 * (the one guarding its waiter record) just before the task leaves the CPU.
 * Returns the waker's result.  Must be called from a coroutine; a
 * cancellation point.
 */
int
weft__park(void (*unlock)(void *), void *arg, int64_t deadline)
{
	struct weft__worker *w = weft__worker_self();
	struct weft_task *t = w->cur;
	uint32_t seq = PARK_SEQ(ck_pr_load_64(&t->park));
	bool timed = false;
	int ret;

	deadline = weft__scope_clamp(t, deadline);
	/*
	 * Prepared (ARMED).  It may be CLAIMED already: a canceller or a
	 * waker that found the waiter record can win between prepare and
	 * here; the switch below then just completes the hand-off.
	 */
	WEFT_ASSERT(ck_pr_load_64(&t->park) & PARK_ARMED);
	/*
	 * Cancellation first: once cancelled, every blocking call returns
	 * -ECANCELED, even one whose deadline has already passed.  This read
	 * is not ordered after the arming; a cancel that slips past both it
	 * and the canceller's look at the park word is caught after the
	 * switch (weft__after_switch()).
	 */
	if (ck_pr_load_32(&t->flags) & TASK_CANCELLED)
		weft__wake(t, seq, -ECANCELED);
	if (deadline != WEFT_DEADLINE_NONE &&
	    !(ck_pr_load_64(&t->park) & PARK_CLAIMED)) {
		if (deadline <= weft_now()) {
			weft__wake(t, seq, -ETIMEDOUT);
		} else {
			/* A fire timer may linger in a heap: take it out. */
			if (t->timer.heap)
				weft__timer_del(&t->timer);
			t->timer.fire = NULL;
			t->timer.when = deadline;
			t->timer.seq = seq;
			ret = weft__timer_add(w, &t->timer);
			if (ret < 0)
				weft__wake(t, seq, ret);
			else
				timed = true;
		}
	}

	/*
	 * Release the waiter's lock before leaving the CPU: a waker that
	 * claims and commits now cannot resume us early, because the task is
	 * made runnable only once SAVED is set too, after the switch.  (Go
	 * must run its unlock on g0 after the switch; the two-sided hand-off
	 * makes that unnecessary here, and the next task picked before the
	 * switch may need the very lock we hold.)
	 */
	ck_pr_store_64((uint64_t *)&t->wait_since,
		       (uint64_t)weft__wait_clock_now());
	weft__wait_deadline(t, deadline);
	ck_pr_store_32(&t->state, WEFT_SUSPENDED);
	if (unlock)
		unlock(arg);
	/* Won before leaving the CPU: no switch needed. */
	if (!(ck_pr_load_64(&t->park) & PARK_COMMITTED))
		weft__switch_out(w, t, AS_PARK);
	ck_pr_store_32(&t->state, WEFT_RUNNING);
	ck_pr_store_8(&t->wait_kind, WAIT_NONE);
	if (timed)
		weft__timer_del(&t->timer);
	/* The run-queue hand-off (or the faa above) ordered this load. */
	return ck_pr_load_int(&t->park_result);
}

/*
 * Park the calling task in the I/O park it prepared with
 * weft__park_prepare_io() until the completion wakes it.  No timer, no
 * cancellation: the caller arranged both with the kernel.  Returns the
 * waker's result.  Coroutine context only.
 */
int
weft__park_io(void)
{
	struct weft__worker *w = weft__worker_self();
	struct weft_task *t = w->cur;

	ck_pr_store_64((uint64_t *)&t->wait_since,
		       (uint64_t)weft__wait_clock_now());
	ck_pr_store_32(&t->state, WEFT_SUSPENDED);
	if (!(ck_pr_load_64(&t->park) & PARK_COMMITTED))
		weft__switch_out(w, t, AS_PARK);
	ck_pr_store_32(&t->state, WEFT_RUNNING);
	ck_pr_store_8(&t->wait_kind, WAIT_NONE);
	return ck_pr_load_int(&t->park_result);
}

/*
 * Lock-guarded parks: see sched/park.h.
 *
 * Cancellers visiting a lock-guarded park, counted from before they read
 * the park word until they leave the object's lock (atomic; any thread).
 */
static uint32_t lpark_visitors;

bool
weft__lpark_visit(struct weft_task *t)
{
	void (*cancel)(void *, struct weft_task *, uint32_t);
	uint64_t word;
	void *obj;

	/*
	 * Counted before the park word is read (the increment is a full
	 * barrier, as the caller's flag update before it): an object's free
	 * that follows the task's disarm either sees us counted or we see
	 * the disarm.
	 */
	ck_pr_inc_32(&lpark_visitors);
	ck_pr_fence_atomic_load();
	word = ck_pr_load_64(&t->park);
	if ((word & (PARK_ARMED | PARK_LOCKED)) !=
	    (PARK_ARMED | PARK_LOCKED)) {
		ck_pr_dec_32(&lpark_visitors);
		return false;
	}
	ck_pr_fence_load();
	obj = ck_pr_load_ptr(&t->lpark_obj);
	cancel = (void (*)(void *, struct weft_task *, uint32_t))
		 ck_pr_load_ptr((void **)&t->lpark_cancel);
	/*
	 * If t armed a later park meanwhile, obj and cancel may be that
	 * park's: still an object it waits on (so quiesced before it is
	 * freed), and cancel, finding another seq, does nothing; that later
	 * park reads the flag itself under its lock.
	 */
	cancel(obj, t, PARK_SEQ(word));
	ck_pr_fence_release();
	ck_pr_dec_32(&lpark_visitors);
	return true;
}

/*
 * Wait until no canceller is inside a lock-guarded object: called by an
 * object's free path after the last reference went (an atomic
 * read-modify-write, which orders this load after it).  A canceller that
 * starts later sees the waiting task's disarm and never reaches the
 * object.  Visits are short (a lock and a check), so this spins.
 */
void
weft__lpark_quiesce(void)
{
	ck_pr_fence_atomic_load();
	while (WEFT_UNLIKELY(ck_pr_load_32(&lpark_visitors) != 0)) {
		for (int i = 0; i < 64; i++)
			ck_pr_stall();
		sched_yield();
	}
	ck_pr_fence_acquire();
}

/* Waiters that may be plain threads: see sched/park.h. */
void
weft__waiter_prepare(struct weft__waiter *wt)
{
	weft__waiter_prepare_as(wt, weft__task_self());
}

void
weft__waiter_prepare_as(struct weft__waiter *wt, struct weft_task *self)
{
	wt->task = self;
	if (wt->task) {
		wt->seq = weft__park_prepare(wt->task);
	} else {
		wt->seq = 0;
		ck_pr_store_32(&wt->futex, 0);
		wt->result = 0;
	}
}

static long
futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

int
weft__waiter_wait(struct weft__waiter *wt, void (*unlock)(void *), void *arg,
		  int64_t deadline)
{
	struct timespec ts;
	uint32_t v;
	int64_t now;

	if (wt->task)
		return weft__park(unlock, arg, deadline);
	if (unlock)
		unlock(arg);
	for (;;) {
		v = ck_pr_load_32(&wt->futex);
		if (v == 1)
			break;
		/* Claimed (3): the commit follows; wait for it untimed. */
		if (v == 0 && deadline != WEFT_DEADLINE_NONE) {
			now = weft_now();
			if (now >= deadline) {
				if (ck_pr_cas_32(&wt->futex, 0, 2))
					return -ETIMEDOUT;
				continue;
			}
			ts.tv_sec = (deadline - now) / WEFT_SEC;
			ts.tv_nsec = (deadline - now) % WEFT_SEC;
			futex(&wt->futex, FUTEX_WAIT_PRIVATE, v, &ts);
		} else {
			futex(&wt->futex, FUTEX_WAIT_PRIVATE, v, NULL);
		}
	}
	/* Pairs with the release in weft__waiter_commit(). */
	ck_pr_fence_load();
	return ck_pr_load_int(&wt->result);
}

bool
weft__waiter_claim(struct weft__waiter *wt)
{
	if (wt->task) {
		/*
		 * Only the winner stores the word: wakers holding different
		 * objects' locks may race for one waiter (weft_wait_any()
		 * links it into several futures), and a loser's store would
		 * clobber the winner's word before its commit reads it.
		 */
		uint64_t word = claim(wt->task, wt->seq, true);

		if (!word)
			return false;
		wt->word = word;
		return true;
	}
	return ck_pr_cas_32(&wt->futex, 0, 3);
}

void
weft__waiter_commit(struct weft__waiter *wt, int result)
{
	if (wt->task) {
		commit(wt->task, result, true, wt->word);
		return;
	}
	ck_pr_store_int(&wt->result, result);
	ck_pr_fence_store();
	ck_pr_store_32(&wt->futex, 1);
	/*
	 * The waiter relocks the object's lock (held by our caller) before
	 * its record goes, so wt is still there for the wake.
	 */
	futex(&wt->futex, FUTEX_WAKE_PRIVATE, 1, NULL);
}

bool
weft__waiter_wake(struct weft__waiter *wt, int result)
{
	if (!weft__waiter_claim(wt))
		return false;
	weft__waiter_commit(wt, result);
	return true;
}

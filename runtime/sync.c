/* SPDX-License-Identifier: MIT */
/*
 * Sync primitives: mutex, rwlock, condition variable, wait group, counting
 * semaphore and once, for coroutines and plain threads alike.
 *
 * Every object is a fixed-size blob (weft.h) whose all-zero state is the
 * valid initial one.  Inside, each has a small ck_spinlock that guards its
 * state and an intrusive FIFO list of waiter records.  A record lives on the
 * waiter's stack for the duration of its wait; it wraps a struct
 * weft__waiter, so the waiter may be a coroutine (it parks) or a plain
 * thread (it sleeps on a futex).  The protocol is the one of runtime.h:
 *
 *	lock; weft__waiter_prepare(); append the record;
 *	weft__waiter_wait(spin_unlock, lock, deadline);
 *	lock; unlink the record if it is still linked; unlock.
 *
 * A waker holding the lock unlinks the first record and calls
 * weft__waiter_wake(); false means that waiter is leaving with -ETIMEDOUT
 * or -ECANCELED (exactly one of wake and timeout wins a park), so the waker
 * tries the next one.  Where ownership is handed over (the mutex in
 * starvation mode, the rwlock, the semaphore), a successful wake *is* the
 * transfer: the woken waiter returns owning the resource.
 *
 * The waiter always relocks the object's lock before it returns, even when
 * the waker already unlinked its record: a waker of a plain thread still
 * touches the record's futex word after the wake, under that lock.
 *
 * No spinlock is held across a park or a yield (HACKING rule: never park
 * while holding a spinlock); the wait's unlock callback releases it.
 */
#include <errno.h>
#include <string.h>

#include "runtime/runtime.h"
#include "sched/park.h"

/*
 * Waiter records and their lists
 */

struct wrec {
	struct weft__waiter wt;
	/* The rest: under the owning object's spinlock. */
	struct wrec *next;
	struct wrec *prev;
	int64_t since;		/* mutex: weft_now() when first queued */
	bool linked;		/* in the object's list */
	bool writer;		/* rwlock: waits for the write lock */
};

/* FIFO of records: under the owning object's spinlock. */
struct wlist {
	struct wrec *head;
	struct wrec *tail;
};

static void
list_push_tail(struct wlist *l, struct wrec *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	r->linked = true;
}

static void
list_push_head(struct wlist *l, struct wrec *r)
{
	r->prev = NULL;
	r->next = l->head;
	if (l->head)
		l->head->prev = r;
	else
		l->tail = r;
	l->head = r;
	r->linked = true;
}

static void
list_remove(struct wlist *l, struct wrec *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->next = NULL;
	r->prev = NULL;
	r->linked = false;
}

static struct wrec *
list_pop(struct wlist *l)
{
	struct wrec *r = l->head;

	if (r)
		list_remove(l, r);
	return r;
}

/* The unlock callback of weft__waiter_wait(). */
static void
spin_unlock(void *lk)
{
	weft__spin_unlock(lk);
}

/*
 * Wait on record `r`, already prepared and linked into an object's list.
 * Releases `lk` while waiting and returns with it held again; the caller
 * unlinks `r` if it is still linked.  Returns the waker's result, or
 * -ETIMEDOUT / -ECANCELED.
 * Caller holds lk.
 */
static int
wait_locked(ck_spinlock_t *lk, struct wrec *r, int64_t deadline)
{
	int ret;

	WEFT_ASSERT_HELD(lk);

	ret = weft__waiter_wait(&r->wt, spin_unlock, lk, deadline);
	weft__spin_lock(lk, WEFT_RANK_SYNC);
	return ret;
}

/*
 * Unlink records from the head of `l` until one accepts `result`; returns
 * it (unlinked) or NULL if every waiter had left.
 * Caller holds the lock guarding l.
 */
static struct wrec *
wake_one_locked(struct wlist *l, int result)
{
	struct wrec *r;

	while ((r = list_pop(l)) != NULL) {
		if (weft__waiter_wake(&r->wt, result))
			return r;
	}
	return NULL;
}

/* Wake every waiter of `l` with 0.  Caller holds the lock guarding l. */
static void
wake_all_locked(struct wlist *l)
{
	struct wrec *r;

	while ((r = list_pop(l)) != NULL)
		(void)weft__waiter_wake(&r->wt, 0);
}

/*
 * Mutex
 *
 * Go's sync.Mutex, in two modes.  Normal mode: unlock clears LOCKED and
 * wakes the first waiter, which then competes with newly arriving lockers
 * (barging keeps the lock hot on the CPU that has it); a woken waiter that
 * loses goes back to the head of the queue.  A waiter that has waited more
 * than 1 ms when it loses switches the mutex to starvation mode: unlock then
 * hands the lock straight to the first waiter (LOCKED stays set), and
 * newcomers queue at the tail.  Starvation mode ends when the queue empties
 * or the waiter handed the lock had waited less than 1 ms.
 *
 * At most one waiter is woken at a time (MX_WOKEN, Go's mutexWoken): an
 * unlock that finds a woken waiter still on its way releases the lock
 * without waking another, so a task that locks and unlocks in a loop wakes
 * one waiter per hand-over, not one per unlock.  While the lock is free,
 * newcomers take it with a CAS even if others wait (barging).
 *
 * Uncontended lock and unlock are one CAS each on `state`.  The lock is a
 * cancellation point only when it has to wait: the fast path does not look
 * at the caller's cancel flag (as a cancelled Go goroutine still takes a
 * free sync.Mutex), so cleanup code of a cancelled task can still lock.
 */
#define MX_LOCKED	0x1u
#define MX_WAITERS	0x2u	/* the list may be non-empty */
#define MX_STARVING	0x4u	/* hand-off mode; implies MX_LOCKED */
#define MX_WOKEN	0x8u	/* a waiter was woken to retry and has not */

/* Wake results of a mutex waiter. */
#define MX_RETRY	0	/* normal mode: try to take it again */
#define MX_HANDOFF	1	/* starvation mode: you own it */

#define MX_STARVE_NS	WEFT_MSEC
#define MX_SPIN		4	/* rounds of 30 pauses before queueing */

struct mutex_impl {
	/*
	 * MX_* bits, atomic.  LOCKED is set by whoever takes the lock (CAS)
	 * and cleared by the unlocker; WAITERS and STARVING are changed only
	 * under lk (by CAS, since the fast paths CAS the word concurrently).
	 * WOKEN is set by the unlocker that chooses to wake (in the CAS that
	 * releases LOCKED) and cleared by the woken waiter in its next CAS,
	 * or by that unlocker under lk if nobody was left to wake.
	 */
	uint32_t state;
	ck_spinlock_t lk;
	struct wlist waiters;	/* under lk */
	/*
	 * The stack pointer of whoever took LOCKED last (weft__ctx_sp()):
	 * the diagnostics find the owning task by the stack it lies in.
	 * Stored (relaxed) by the new owner right after it took the lock,
	 * never cleared: meaningful only while LOCKED, and a waiter that
	 * was handed the lock stores it when it runs.  Read racily by
	 * weft__mutex_owner_sp().
	 */
	void *owner_sp;
};

_Static_assert(sizeof(struct mutex_impl) <= sizeof(struct weft_mutex),
	       "struct mutex_impl does not fit struct weft_mutex");
_Static_assert(_Alignof(struct mutex_impl) <= _Alignof(struct weft_mutex),
	       "struct mutex_impl is more aligned than struct weft_mutex");

/*
 * After `r` left the list (timed out or cancelled), drop WAITERS and
 * STARVING if nobody waits any more.  Caller holds m->lk.
 */
static void
mutex_waiters_update_locked(struct mutex_impl *m)
{
	uint32_t s;

	WEFT_ASSERT_HELD(&m->lk);

	if (m->waiters.head)
		return;
	s = ck_pr_load_32(&m->state);
	while (!ck_pr_cas_32_value(&m->state, s,
				   s & ~(MX_WAITERS | MX_STARVING), &s))
		;
}

/*
 * Take the lock, waiting until `deadline`.  `cancellable` false: a
 * cancelled caller keeps trying (yielding between tries) instead of
 * returning -ECANCELED; used by weft_cond_wait() to relock.
 * Any thread.
 */
static int
mutex_lock_slow(struct mutex_impl *m, int64_t deadline, bool cancellable)
{
	struct wrec r;
	bool requeue = false;
	bool woken = false;	/* we hold MX_WOKEN: clear it in our CAS */
	uint32_t s;
	uint32_t want;
	int ret;

	/* The public lock is bounded by the caller's scopes (weft.h). */
	if (cancellable)
		deadline = weft__scoped(deadline);
	r.since = 0;
	r.writer = false;
	r.linked = false;
	weft__spin_lock(&m->lk, WEFT_RANK_SYNC);
	for (;;) {
		s = ck_pr_load_32(&m->state);
		if (!(s & (MX_LOCKED | MX_STARVING))) {
			if (ck_pr_cas_32(&m->state, s,
					 (s | MX_LOCKED) &
					 ~(woken ? MX_WOKEN : 0)))
				break;
			continue;
		}
		/*
		 * Announce a waiter while LOCKED is still set: the CAS fails
		 * if the owner unlocked meanwhile (retry), and once it
		 * succeeds the owner's fast-path unlock CAS (LOCKED -> 0)
		 * fails, so it takes lk and finds our record.
		 */
		want = s | MX_WAITERS;
		if (woken)
			want &= ~MX_WOKEN;
		if (requeue && weft_now() - r.since > MX_STARVE_NS)
			want |= MX_STARVING;
		if (!ck_pr_cas_32(&m->state, s, want))
			continue;
		woken = false;
		if (!requeue)
			r.since = weft_now();
		weft__waiter_prepare(&r.wt);
		weft__waiter_note(&r.wt, WAIT_MUTEX, m);
		/* Woken waiters that lost keep their place (Go's LIFO). */
		if (requeue)
			list_push_head(&m->waiters, &r);
		else
			list_push_tail(&m->waiters, &r);
		ret = wait_locked(&m->lk, &r, deadline);
		if (ret == MX_HANDOFF) {
			WEFT_ASSERT(!r.linked);
			break;
		}
		if (ret == MX_RETRY) {
			WEFT_ASSERT(!r.linked);
			requeue = true;
			woken = true;
			continue;
		}
		/* Timed out or cancelled; no waker chose us. */
		if (r.linked) {
			list_remove(&m->waiters, &r);
			mutex_waiters_update_locked(m);
		}
		if (ret == -ECANCELED && !cancellable) {
			weft__spin_unlock(&m->lk);
			/*
			 * A cancelled task's parks end at once: yield so the
			 * owner (maybe on this worker) can run, then retry.
			 */
			(void)weft_yield();
			weft__spin_lock(&m->lk, WEFT_RANK_SYNC);
			requeue = true;
			continue;
		}
		weft__spin_unlock(&m->lk);
		return ret;
	}
	weft__spin_unlock(&m->lk);
	return 0;
}

/* The caller took LOCKED: say who holds it.  Any thread. */
static inline __attribute__((always_inline)) void
mutex_owned(struct mutex_impl *m)
{
	ck_pr_store_ptr(&m->owner_sp, weft__ctx_sp());
}

static int
mutex_lock(struct mutex_impl *m, int64_t deadline, bool cancellable)
{
	uint32_t s;
	int ret;

	/* Pairs with the release in weft_mutex_unlock() (CAS, seq_cst). */
	if (WEFT_LIKELY(ck_pr_cas_32_value(&m->state, 0, MX_LOCKED, &s))) {
		mutex_owned(m);
		return 0;
	}
	/*
	 * Free but with waiters, in normal mode: barge in.  Held: spin a
	 * little first when other workers run (the holder is likely on one
	 * of them, inside a short critical section), as Go's sync.Mutex
	 * does; parking costs a switch now and a wake-up later.
	 */
	for (int spin = weft__sched_nworkers() > 1 ? MX_SPIN : 0;; spin--) {
		while (!(s & (MX_LOCKED | MX_STARVING)))
			if (ck_pr_cas_32_value(&m->state, s, s | MX_LOCKED,
					       &s)) {
				mutex_owned(m);
				return 0;
			}
		if (spin <= 0 || (s & MX_STARVING))
			break;
		for (int i = 0; i < 30; i++)
			ck_pr_stall();
		s = ck_pr_load_32(&m->state);
	}
	ret = mutex_lock_slow(m, deadline, cancellable);
	if (ret == 0)
		mutex_owned(m);
	return ret;
}

/*
 * For the diagnostics: the owner's stack pointer of the mutex at `obj` if
 * it is locked, else NULL.  Racy (a snapshot).  Any thread.
 */
void *
weft__mutex_owner_sp(const void *obj)
{
	struct mutex_impl *m = (struct mutex_impl *)obj;

	if (!(ck_pr_load_32(&m->state) & MX_LOCKED))
		return NULL;
	return ck_pr_load_ptr(&m->owner_sp);
}

int
weft_mutex_lock(struct weft_mutex *mx, int64_t deadline)
{
	if (WEFT_UNLIKELY(!mx))
		return -EINVAL;
	return mutex_lock((struct mutex_impl *)(void *)mx, deadline, true);
}

int
weft_mutex_trylock(struct weft_mutex *mx)
{
	struct mutex_impl *m = (struct mutex_impl *)(void *)mx;
	uint32_t s;

	if (WEFT_UNLIKELY(!mx))
		return -EINVAL;
	s = ck_pr_load_32(&m->state);
	for (;;) {
		if (s & (MX_LOCKED | MX_STARVING))
			return -EAGAIN;
		if (ck_pr_cas_32_value(&m->state, s, s | MX_LOCKED, &s)) {
			mutex_owned(m);
			return 0;
		}
	}
}

int
weft_mutex_unlock(struct weft_mutex *mx)
{
	struct mutex_impl *m = (struct mutex_impl *)(void *)mx;
	struct wrec *r;
	uint32_t s;

	if (WEFT_UNLIKELY(!mx))
		return -EINVAL;
	/* Release: pairs with the CAS of the next locker. */
	if (WEFT_LIKELY(ck_pr_cas_32_value(&m->state, MX_LOCKED, 0, &s)))
		return 0;
	/* Normal mode with nobody to wake (or one woken already): no lk. */
	for (;;) {
		if (!(s & MX_LOCKED))
			return -EPERM;
		if ((s & MX_STARVING) ||
		    ((s & MX_WAITERS) && !(s & MX_WOKEN)))
			break;
		if (ck_pr_cas_32_value(&m->state, s, s & ~MX_LOCKED, &s))
			return 0;
	}
	weft__spin_lock(&m->lk, WEFT_RANK_SYNC);
	s = ck_pr_load_32(&m->state);
	if (!(s & MX_LOCKED)) {
		weft__spin_unlock(&m->lk);
		return -EPERM;
	}
	if (s & MX_STARVING) {
		/* Hand off: LOCKED stays set for the new owner. */
		r = wake_one_locked(&m->waiters, MX_HANDOFF);
		if (r && m->waiters.head &&
		    weft_now() - r->since <= MX_STARVE_NS) {
			/* The new owner barely waited: back to normal. */
			s = ck_pr_load_32(&m->state);
			while (!ck_pr_cas_32_value(&m->state, s,
						   s & ~MX_STARVING, &s))
				;
		}
		mutex_waiters_update_locked(m);
		if (!r) {
			/*
			 * Every waiter had left: unlock.  Nobody else can
			 * change the word now (LOCKED blocks the lockers'
			 * CAS, lk the slow paths).
			 */
			s = ck_pr_load_32(&m->state);
			while (!ck_pr_cas_32_value(&m->state, s,
						   s & ~(MX_LOCKED |
							 MX_STARVING), &s))
				;
		}
		weft__spin_unlock(&m->lk);
		return 0;
	}
	/*
	 * Normal mode: release, then let the first waiter compete, unless a
	 * woken one is on its way already (then lockers will find it).
	 */
	s = ck_pr_load_32(&m->state);
	for (;;) {
		uint32_t to = s & ~MX_LOCKED;

		if ((s & MX_WAITERS) && !(s & MX_WOKEN))
			to |= MX_WOKEN;
		if (ck_pr_cas_32_value(&m->state, s, to, &s)) {
			s = to;
			break;
		}
	}
	if (s & MX_WOKEN && !wake_one_locked(&m->waiters, MX_RETRY)) {
		/* Every waiter had left: nobody will clear WOKEN but us. */
		s = ck_pr_load_32(&m->state);
		while (!ck_pr_cas_32_value(&m->state, s, s & ~MX_WOKEN, &s))
			;
	}
	mutex_waiters_update_locked(m);
	weft__spin_unlock(&m->lk);
	return 0;
}

/*
 * Reader-writer lock
 *
 * Everything under lk.  Writer preference: while a writer waits
 * (wwait > 0), new readers queue; so, as with Go's RWMutex, a reader that
 * read-locks again while a writer waits deadlocks (until its deadline).  Waiters are granted in FIFO order by
 * grant_locked(): the lock is handed to them (readers counted, writer set)
 * before they are woken.
 */
struct rwlock_impl {
	ck_spinlock_t lk;
	uint32_t readers;	/* readers holding it: under lk */
	uint32_t wwait;		/* writers in the list: under lk */
	bool writer;		/* a writer holds it: under lk */
	struct wlist waiters;	/* under lk */
};

_Static_assert(sizeof(struct rwlock_impl) <= sizeof(struct weft_rwlock),
	       "struct rwlock_impl does not fit struct weft_rwlock");
_Static_assert(_Alignof(struct rwlock_impl) <= _Alignof(struct weft_rwlock),
	       "struct rwlock_impl is more aligned than struct weft_rwlock");

/*
 * Hand the lock to as many waiters at the head of the queue as can have
 * it: one writer, or a run of readers up to the next writer.
 * Caller holds l->lk.
 */
static void
rw_grant_locked(struct rwlock_impl *l)
{
	struct wrec *r;

	WEFT_ASSERT_HELD(&l->lk);

	while ((r = l->waiters.head) != NULL && !l->writer) {
		if (r->writer) {
			if (l->readers)
				return;
			list_remove(&l->waiters, r);
			l->wwait--;
			l->writer = true;
			if (!weft__waiter_wake(&r->wt, 0))
				l->writer = false;
		} else {
			list_remove(&l->waiters, r);
			l->readers++;
			if (!weft__waiter_wake(&r->wt, 0))
				l->readers--;
		}
	}
}

static int
rw_wait_locked(struct rwlock_impl *l, bool writer, int64_t deadline)
{
	struct wrec r;
	int ret;

	WEFT_ASSERT_HELD(&l->lk);

	r.writer = writer;
	weft__waiter_prepare(&r.wt);
	weft__waiter_note(&r.wt, WAIT_RWLOCK, l);
	list_push_tail(&l->waiters, &r);
	if (writer)
		l->wwait++;
	ret = wait_locked(&l->lk, &r, deadline);
	if (r.linked) {
		/* Timed out or cancelled: readers behind us may go now. */
		WEFT_ASSERT(ret != 0);
		list_remove(&l->waiters, &r);
		if (writer)
			l->wwait--;
		rw_grant_locked(l);
	}
	weft__spin_unlock(&l->lk);
	return ret;
}

int
weft_rwlock_rdlock(struct weft_rwlock *rw, int64_t deadline)
{
	struct rwlock_impl *l = (struct rwlock_impl *)(void *)rw;

	if (WEFT_UNLIKELY(!rw))
		return -EINVAL;
	deadline = weft__scoped(deadline);
	weft__spin_lock(&l->lk, WEFT_RANK_SYNC);
	if (!l->writer && l->wwait == 0 && !l->waiters.head) {
		l->readers++;
		weft__spin_unlock(&l->lk);
		return 0;
	}
	return rw_wait_locked(l, false, deadline);
}

int
weft_rwlock_wrlock(struct weft_rwlock *rw, int64_t deadline)
{
	struct rwlock_impl *l = (struct rwlock_impl *)(void *)rw;

	if (WEFT_UNLIKELY(!rw))
		return -EINVAL;
	deadline = weft__scoped(deadline);
	weft__spin_lock(&l->lk, WEFT_RANK_SYNC);
	if (!l->writer && l->readers == 0 && !l->waiters.head) {
		l->writer = true;
		weft__spin_unlock(&l->lk);
		return 0;
	}
	return rw_wait_locked(l, true, deadline);
}

int
weft_rwlock_tryrdlock(struct weft_rwlock *rw)
{
	struct rwlock_impl *l = (struct rwlock_impl *)(void *)rw;
	int ret = -EAGAIN;

	if (WEFT_UNLIKELY(!rw))
		return -EINVAL;
	weft__spin_lock(&l->lk, WEFT_RANK_SYNC);
	if (!l->writer && l->wwait == 0 && !l->waiters.head) {
		l->readers++;
		ret = 0;
	}
	weft__spin_unlock(&l->lk);
	return ret;
}

int
weft_rwlock_trywrlock(struct weft_rwlock *rw)
{
	struct rwlock_impl *l = (struct rwlock_impl *)(void *)rw;
	int ret = -EAGAIN;

	if (WEFT_UNLIKELY(!rw))
		return -EINVAL;
	weft__spin_lock(&l->lk, WEFT_RANK_SYNC);
	if (!l->writer && l->readers == 0 && !l->waiters.head) {
		l->writer = true;
		ret = 0;
	}
	weft__spin_unlock(&l->lk);
	return ret;
}

/* Release a read or the write lock: 0, or -EPERM if it was not held. */
int
weft_rwlock_unlock(struct weft_rwlock *rw)
{
	struct rwlock_impl *l = (struct rwlock_impl *)(void *)rw;

	if (WEFT_UNLIKELY(!rw))
		return -EINVAL;
	weft__spin_lock(&l->lk, WEFT_RANK_SYNC);
	if (l->writer) {
		l->writer = false;
	} else if (l->readers) {
		l->readers--;
	} else {
		weft__spin_unlock(&l->lk);
		return -EPERM;
	}
	rw_grant_locked(l);
	weft__spin_unlock(&l->lk);
	return 0;
}

/*
 * Condition variable
 */
struct cond_impl {
	ck_spinlock_t lk;
	struct wlist waiters;	/* under lk */
};

_Static_assert(sizeof(struct cond_impl) <= sizeof(struct weft_cond),
	       "struct cond_impl does not fit struct weft_cond");
_Static_assert(_Alignof(struct cond_impl) <= _Alignof(struct weft_cond),
	       "struct cond_impl is more aligned than struct weft_cond");

/*
 * The record is queued on the condition before the mutex is released, so a
 * signal sent after the caller's unlock always finds it.  The mutex is
 * relocked whatever the result; a cancelled task relocks too (it keeps
 * trying, yielding in between, see mutex_lock_slow()), so -ECANCELED
 * returns with the mutex held like every other result.  Returns -EPERM,
 * without waiting, if `m` is not locked.
 */
int
weft_cond_wait(struct weft_cond *cv, struct weft_mutex *mx, int64_t deadline)
{
	struct cond_impl *c = (struct cond_impl *)(void *)cv;
	struct wrec r;
	int ret;
	int err;

	if (WEFT_UNLIKELY(!cv || !mx))
		return -EINVAL;
	deadline = weft__scoped(deadline);
	r.writer = false;
	if (!(ck_pr_load_32(&((struct mutex_impl *)(void *)mx)->state) &
	      MX_LOCKED))
		return -EPERM;
	weft__spin_lock(&c->lk, WEFT_RANK_SYNC);
	weft__waiter_prepare(&r.wt);
	weft__waiter_note(&r.wt, WAIT_COND, c);
	list_push_tail(&c->waiters, &r);
	weft__spin_unlock(&c->lk);
	/* Does not park: a signal in between just ends our park early. */
	err = weft_mutex_unlock(mx);
	if (err < 0) {
		/*
		 * The caller did not hold the mutex.  Leave the list, then end
		 * the prepared wait at once (deadline 0) rather than abandon
		 * it: a waker or canceller that claimed it must finish first.
		 */
		weft__spin_lock(&c->lk, WEFT_RANK_SYNC);
		if (r.linked)
			list_remove(&c->waiters, &r);
		weft__spin_unlock(&c->lk);
		(void)weft__waiter_wait(&r.wt, NULL, NULL, 0);
		return err;
	}
	ret = weft__waiter_wait(&r.wt, NULL, NULL, deadline);
	weft__spin_lock(&c->lk, WEFT_RANK_SYNC);
	if (r.linked)
		list_remove(&c->waiters, &r);
	weft__spin_unlock(&c->lk);
	(void)mutex_lock((struct mutex_impl *)(void *)mx, WEFT_DEADLINE_NONE,
			 false);
	return ret;
}

int
weft_cond_signal(struct weft_cond *cv)
{
	struct cond_impl *c = (struct cond_impl *)(void *)cv;

	if (WEFT_UNLIKELY(!cv))
		return -EINVAL;
	weft__spin_lock(&c->lk, WEFT_RANK_SYNC);
	(void)wake_one_locked(&c->waiters, 0);
	weft__spin_unlock(&c->lk);
	return 0;
}

int
weft_cond_broadcast(struct weft_cond *cv)
{
	struct cond_impl *c = (struct cond_impl *)(void *)cv;

	if (WEFT_UNLIKELY(!cv))
		return -EINVAL;
	weft__spin_lock(&c->lk, WEFT_RANK_SYNC);
	wake_all_locked(&c->waiters);
	weft__spin_unlock(&c->lk);
	return 0;
}

/*
 * Wait group
 */
struct waitgroup_impl {
	ck_spinlock_t lk;
	int64_t count;		/* under lk */
	/* Under lk; non-empty only while count > 0. */
	struct wlist waiters;
};

_Static_assert(sizeof(struct waitgroup_impl) <= sizeof(struct weft_waitgroup),
	       "struct waitgroup_impl does not fit struct weft_waitgroup");
_Static_assert(_Alignof(struct waitgroup_impl) <=
	       _Alignof(struct weft_waitgroup),
	       "struct waitgroup_impl is more aligned than weft_waitgroup");

int
weft_waitgroup_add(struct weft_waitgroup *g, int64_t delta)
{
	struct waitgroup_impl *wg = (struct waitgroup_impl *)(void *)g;
	int64_t n;

	if (WEFT_UNLIKELY(!g))
		return -EINVAL;
	weft__spin_lock(&wg->lk, WEFT_RANK_SYNC);
	if (__builtin_add_overflow(wg->count, delta, &n)) {
		weft__spin_unlock(&wg->lk);
		return delta < 0 ? -EINVAL : -EOVERFLOW;
	}
	if (n < 0) {
		weft__spin_unlock(&wg->lk);
		return -EINVAL;
	}
	wg->count = n;
	if (n == 0)
		wake_all_locked(&wg->waiters);
	weft__spin_unlock(&wg->lk);
	return 0;
}

int
weft_waitgroup_done(struct weft_waitgroup *g)
{
	return weft_waitgroup_add(g, -1);
}

int
weft_waitgroup_wait(struct weft_waitgroup *g, int64_t deadline)
{
	struct waitgroup_impl *wg = (struct waitgroup_impl *)(void *)g;
	struct wrec r;
	int ret;

	if (WEFT_UNLIKELY(!g))
		return -EINVAL;
	deadline = weft__scoped(deadline);
	weft__spin_lock(&wg->lk, WEFT_RANK_SYNC);
	if (wg->count == 0) {
		weft__spin_unlock(&wg->lk);
		return 0;
	}
	r.writer = false;
	weft__waiter_prepare(&r.wt);
	weft__waiter_note(&r.wt, WAIT_WAITGROUP, wg);
	list_push_tail(&wg->waiters, &r);
	ret = wait_locked(&wg->lk, &r, deadline);
	if (r.linked)
		list_remove(&wg->waiters, &r);
	weft__spin_unlock(&wg->lk);
	return ret;
}

/*
 * Counting semaphore.  The public count_ field (WEFT_SEM_INIT's initial
 * count) is the live count.  A release with waiters hands its unit to the
 * first of them instead of incrementing the count, so waiters are served
 * FIFO and a newcomer cannot overtake them.
 */
struct sem_impl {
	/* Free units: under lk.  count > 0 implies no waiters. */
	uint64_t count;
	ck_spinlock_t lk;
	struct wlist waiters;	/* under lk */
};

_Static_assert(sizeof(struct sem_impl) <= sizeof(struct weft_sem),
	       "struct sem_impl does not fit struct weft_sem");
_Static_assert(_Alignof(struct sem_impl) <= _Alignof(struct weft_sem),
	       "struct sem_impl is more aligned than struct weft_sem");
_Static_assert(offsetof(struct sem_impl, count) ==
	       offsetof(struct weft_sem, count_),
	       "sem count must overlay weft_sem.count_");

/* Not while any other thread uses `s`.  Returns 0.  Any thread. */
int
weft_sem_init(struct weft_sem *s, uint64_t n)
{
	if (WEFT_UNLIKELY(!s))
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->count_ = n;
	return 0;
}

int
weft_sem_acquire(struct weft_sem *sm, int64_t deadline)
{
	struct sem_impl *s = (struct sem_impl *)(void *)sm;
	struct wrec r;
	int ret;

	if (WEFT_UNLIKELY(!sm))
		return -EINVAL;
	deadline = weft__scoped(deadline);
	weft__spin_lock(&s->lk, WEFT_RANK_SYNC);
	if (s->count > 0) {
		s->count--;
		weft__spin_unlock(&s->lk);
		return 0;
	}
	r.writer = false;
	weft__waiter_prepare(&r.wt);
	weft__waiter_note(&r.wt, WAIT_SEM, s);
	list_push_tail(&s->waiters, &r);
	ret = wait_locked(&s->lk, &r, deadline);
	if (r.linked)
		list_remove(&s->waiters, &r);
	weft__spin_unlock(&s->lk);
	return ret;
}

int
weft_sem_tryacquire(struct weft_sem *sm)
{
	struct sem_impl *s = (struct sem_impl *)(void *)sm;
	int ret = -EAGAIN;

	if (WEFT_UNLIKELY(!sm))
		return -EINVAL;
	weft__spin_lock(&s->lk, WEFT_RANK_SYNC);
	if (s->count > 0) {
		s->count--;
		ret = 0;
	}
	weft__spin_unlock(&s->lk);
	return ret;
}

/* 0, or -EOVERFLOW if the count is at UINT64_MAX. */
int
weft_sem_release(struct weft_sem *sm)
{
	struct sem_impl *s = (struct sem_impl *)(void *)sm;
	int ret = 0;

	if (WEFT_UNLIKELY(!sm))
		return -EINVAL;
	weft__spin_lock(&s->lk, WEFT_RANK_SYNC);
	if (!wake_one_locked(&s->waiters, 0)) {
		if (s->count == UINT64_MAX)
			ret = -EOVERFLOW;
		else
			s->count++;
	}
	weft__spin_unlock(&s->lk);
	return ret;
}

/*
 * Once
 */
#define ONCE_NEW	0
#define ONCE_RUNNING	1
#define ONCE_DONE	2

struct once_impl {
	/* ONCE_*: written under lk; read without it (acquire) for DONE. */
	uint32_t state;
	ck_spinlock_t lk;
	struct wlist waiters;	/* under lk; only while RUNNING */
};

_Static_assert(sizeof(struct once_impl) <= sizeof(struct weft_once),
	       "struct once_impl does not fit struct weft_once");
_Static_assert(_Alignof(struct once_impl) <= _Alignof(struct weft_once),
	       "struct once_impl is more aligned than struct weft_once");

int
weft_once(struct weft_once *on, void (*fn)(void *), void *arg,
	  int64_t deadline)
{
	struct once_impl *o = (struct once_impl *)(void *)on;
	struct wrec r;
	int ret;

	if (WEFT_UNLIKELY(!o || !fn))
		return -EINVAL;
	deadline = weft__scoped(deadline);
	/* Pairs with the store of ONCE_DONE below: fn's effects are seen. */
	if (ck_pr_load_32(&o->state) == ONCE_DONE) {
		ck_pr_fence_load();
		return 0;
	}
	weft__spin_lock(&o->lk, WEFT_RANK_SYNC);
	switch (o->state) {
	case ONCE_DONE:
		weft__spin_unlock(&o->lk);
		return 0;
	case ONCE_NEW:
		ck_pr_store_32(&o->state, ONCE_RUNNING);
		weft__spin_unlock(&o->lk);
		fn(arg);
		weft__spin_lock(&o->lk, WEFT_RANK_SYNC);
		/* Orders fn's effects first: pairs with the load above. */
		ck_pr_fence_store();
		ck_pr_store_32(&o->state, ONCE_DONE);
		wake_all_locked(&o->waiters);
		weft__spin_unlock(&o->lk);
		return 0;
	default:
		break;
	}
	r.writer = false;
	weft__waiter_prepare(&r.wt);
	weft__waiter_note(&r.wt, WAIT_ONCE, o);
	list_push_tail(&o->waiters, &r);
	ret = wait_locked(&o->lk, &r, deadline);
	if (r.linked)
		list_remove(&o->waiters, &r);
	weft__spin_unlock(&o->lk);
	return ret;
}

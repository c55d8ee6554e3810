/* SPDX-License-Identifier: MIT */
/*
 * Timers: one binary min-heap per worker, keyed on the absolute deadline.
 *
 * Every task owns one embedded timer (struct weft__timer) which its current
 * park arms.  Only the owner worker adds to its heap (the task arming it runs
 * there), so a new earliest deadline never needs to wake a sleeping worker:
 * the owner recomputes its timeout before it sleeps.  Removal and expiry can
 * come from any worker (the task resumed elsewhere; an idle thief runs a busy
 * worker's expired timers), hence the lock.  Insert and delete are
 * O(log n); a million pending timers are 8 MB of heap.
 *
 * Expiry wakes the task while the heap lock is held: the lock is what keeps
 * the task alive, because a task leaving a park removes its timer under the
 * same lock before it can go on and exit (see weft__park()).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "sched/sched.h"

void
weft__timers_init(struct weft__timers *tm)
{
	ck_spinlock_init(&tm->lock);
	tm->heap = NULL;
	tm->n = tm->cap = 0;
	ck_pr_store_64((uint64_t *)&tm->next_when, INT64_MAX);
}

void
weft__timers_free(struct weft__timers *tm)
{
	free(tm->heap);
	tm->heap = NULL;
	tm->n = tm->cap = 0;
}

static inline void
set_at(struct weft__timers *tm, uint32_t i, struct weft__timer *t)
{
	tm->heap[i] = t;
	t->idx = (int32_t)i;
}

static void
sift_up(struct weft__timers *tm, uint32_t i)
{
	struct weft__timer *t = tm->heap[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (tm->heap[p]->when <= t->when)
			break;
		set_at(tm, i, tm->heap[p]);
		i = p;
	}
	set_at(tm, i, t);
}

static void
sift_down(struct weft__timers *tm, uint32_t i)
{
	struct weft__timer *t = tm->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= tm->n)
			break;
		if (c + 1 < tm->n && tm->heap[c + 1]->when < tm->heap[c]->when)
			c++;
		if (t->when <= tm->heap[c]->when)
			break;
		set_at(tm, i, tm->heap[c]);
		i = c;
	}
	set_at(tm, i, t);
}

/* Caller holds tm->lock. */
static void
publish_next_locked(struct weft__timers *tm)
{
	int64_t next = tm->n ? tm->heap[0]->when : INT64_MAX;

	WEFT_ASSERT_HELD(&tm->lock);

	/* Pairs with the load in weft__timers_next(); a stale read only
	 * makes a sleeper poll early. */
	ck_pr_store_64((uint64_t *)&tm->next_when, (uint64_t)next);
}

/* Caller holds tm->lock. */
static void
remove_at_locked(struct weft__timers *tm, uint32_t i)
{
	struct weft__timer *t = tm->heap[i];
	struct weft__timer *moved;

	WEFT_ASSERT_HELD(&tm->lock);

	t->idx = -1;
	/* Atomic: weft__timer_reserve() reads n without the lock. */
	ck_pr_store_32(&tm->n, tm->n - 1);
	if (i != tm->n) {
		moved = tm->heap[tm->n];
		set_at(tm, i, moved);
		sift_down(tm, i);
		if ((uint32_t)moved->idx == i)
			sift_up(tm, i);
	}
}

/*
 * Arm `tmr` (when and seq already set) on w's heap.
 * Returns 0 or -ENOMEM.  Executed only by the owning worker.
 */
int
weft__timer_add(struct weft__worker *w, struct weft__timer *tmr)
{
	struct weft__timers *tm = &w->timers;

	WEFT_ASSERT_OWNER(w);
	weft__spin_lock(&tm->lock, WEFT_RANK_TIMERS);
	if (tm->n == tm->cap) {
		uint32_t cap = tm->cap ? tm->cap * 2 : 64;
		struct weft__timer **h = realloc(tm->heap, cap * sizeof(*h));

		if (!h) {
			weft__spin_unlock(&tm->lock);
			return -ENOMEM;
		}
		tm->heap = h;
		tm->cap = cap;
	}
	tmr->heap = tm;
	tm->heap[tm->n] = tmr;
	tmr->idx = (int32_t)tm->n;
	ck_pr_store_32(&tm->n, tm->n + 1);
	sift_up(tm, tm->n - 1);
	if (tmr->idx == 0)
		publish_next_locked(tm);
	weft__spin_unlock(&tm->lock);
	return 0;
}

/*
 * Disarm `tmr` if it is still pending.  The task that owns it calls this
 * when it leaves a park.  Can be executed by any worker.
 */
void
weft__timer_del(struct weft__timer *tmr)
{
	struct weft__timers *tm = tmr->heap;

	if (!tm)
		return;
	weft__spin_lock(&tm->lock, WEFT_RANK_TIMERS);
	if (tmr->idx >= 0) {
		bool first = tmr->idx == 0;

		remove_at_locked(tm, (uint32_t)tmr->idx);
		if (first)
			publish_next_locked(tm);
	}
	weft__spin_unlock(&tm->lock);
	tmr->heap = NULL;
}

/* See sched/park.h.  Lock-free: only the owner grows n or cap. */
int
weft__timer_reserve(struct weft__worker *w)
{
	struct weft__timers *tm = &w->timers;
	struct weft__timer **h;
	uint32_t cap;
	int ret = 0;

	/* Others only remove (n shrinks under them): a racy read is safe. */
	if (WEFT_LIKELY(ck_pr_load_32(&tm->n) < tm->cap))
		return 0;
	weft__spin_lock(&tm->lock, WEFT_RANK_TIMERS);
	if (tm->n == tm->cap) {
		cap = tm->cap ? tm->cap * 2 : 64;
		h = realloc(tm->heap, cap * sizeof(*h));
		if (h) {
			tm->heap = h;
			tm->cap = cap;
		} else {
			ret = -ENOMEM;
		}
	}
	weft__spin_unlock(&tm->lock);
	return ret;
}

/*
 * See sched/park.h.  A timer still in w's heap from the task's previous
 * wait, due no later than `deadline`, is only updated: an idle timeout per
 * receive then costs a lock and two stores, not a heap removal and
 * insertion.
 */
void
weft__timer_mod(struct weft__worker *w, struct weft__timer *tmr,
		int64_t deadline, void (*fire)(struct weft__timer *))
{
	struct weft__timers *tm = tmr->heap;
	int ret;

	if (tm == &w->timers && tmr->fire == fire) {
		weft__spin_lock(&tm->lock, WEFT_RANK_TIMERS);
		if (tmr->idx >= 0 && deadline >= tmr->when) {
			tmr->live_when = deadline;
			tmr->live = true;
			weft__spin_unlock(&tm->lock);
			return;
		}
		weft__spin_unlock(&tm->lock);
	}
	weft__timer_del(tmr);
	tmr->when = deadline;
	tmr->seq = 0;		/* unused: fire() finds its wait */
	tmr->fire = fire;
	tmr->live = true;
	tmr->live_when = deadline;
	/* weft__timer_reserve() made room, and only w adds to its heap. */
	ret = weft__timer_add(w, tmr);
	WEFT_ASSERT(ret == 0);
	(void)ret;
}

/* See sched/park.h.  Any worker. */
void
weft__timer_stop(struct weft__timer *tmr)
{
	struct weft__timers *tm = tmr->heap;

	if (!tm)
		return;
	weft__spin_lock(&tm->lock, WEFT_RANK_TIMERS);
	tmr->live = false;
	weft__spin_unlock(&tm->lock);
}

/*
 * Expire every timer of `tm` due at `now`: wake its task with -ETIMEDOUT
 * onto worker w's queues, or call its fire().  With `trylock`, gives up if
 * the heap is busy (thieves).  Returns the number of timers fired.
 * Executed only by worker w (tm may be another worker's heap).
 */
int
weft__timers_run(struct weft__worker *w, struct weft__timers *tm, int64_t now,
		 bool trylock)
{
	int fired = 0;

	if ((int64_t)ck_pr_load_64((uint64_t *)&tm->next_when) > now)
		return 0;
	if (trylock) {
		if (!weft__spin_trylock(&tm->lock, WEFT_RANK_TIMERS))
			return 0;
	} else {
		weft__spin_lock(&tm->lock, WEFT_RANK_TIMERS);
	}
	while (tm->n && tm->heap[0]->when <= now) {
		struct weft__timer *t = tm->heap[0];
		if (t->fire) {
			/* Lazily kept: no wait is on it any more. */
			if (!t->live) {
				remove_at_locked(tm, 0);
				continue;
			}
			/* Pushed back since it was positioned: move it. */
			if (t->live_when > now) {
				t->when = t->live_when;
				sift_down(tm, 0);
				continue;
			}
			remove_at_locked(tm, 0);
			t->live = false;
			/* The heap lock keeps its task alive (and waiting). */
			t->fire(t);
		} else {
			remove_at_locked(tm, 0);
			weft__wake(weft__timer_task(t), t->seq, -ETIMEDOUT);
		}
		fired++;
	}
	publish_next_locked(tm);
	weft__spin_unlock(&tm->lock);
	if (fired)
		WEFT_STAT_ADD(w, timers_fired, (uint64_t)fired);
	return fired;
}

/* Earliest pending deadline of `tm`, INT64_MAX if none.  Any thread. */
int64_t
weft__timers_next(struct weft__timers *tm)
{
	return (int64_t)ck_pr_load_64((uint64_t *)&tm->next_when);
}

/* SPDX-License-Identifier: MIT */
/*
 * Run queues: per worker a run-next slot and a bounded ck_ring (SPMC: the
 * owner enqueues, the owner and thieves dequeue), plus one global FIFO under
 * sched.lock for overflow and for spawns from threads that are not workers.
 *
 * Go's runq design: a task readied or spawned by the running task goes to
 * run-next, so a producer/consumer pair keeps running back to back on one
 * worker with hot caches; the previous run-next occupant moves to the ring.
 * When the ring is full, half of it moves to the global queue in one batch
 * (runq_put_slow), so the owner never blocks and thieves always find work
 * somewhere.
 *
 * When the run has a single worker (w->solo) nobody can steal, and the owner
 * uses ck's single-consumer dequeue and plain run-next accesses: same
 * layout, no atomic read-modify-write on the hot path.
 *
 * The owner's fast paths (weft__runq_put, weft__runq_get) are inline in
 * sched/sched.h; this file holds the global queue, the slow paths and
 * stealing.
 */
#include "sched/sched.h"

/* How long a thief leaves a busy victim's run-next alone (Go: 3 us). */
#define STEAL_RUNNEXT_WAIT_NS (3 * WEFT_USEC)

/* Caller holds sched.lock. */
void
weft__globrunq_put_locked(struct weft_task *t)
{
	WEFT_ASSERT_HELD(&weft__sched.lock);
	t->next = NULL;
	if (weft__sched.gq_tail)
		weft__sched.gq_tail->next = t;
	else
		weft__sched.gq_head = t;
	weft__sched.gq_tail = t;
	ck_pr_store_32(&weft__sched.gq_len, weft__sched.gq_len + 1);
}

/*
 * Take up to `max` tasks (0: a fair share) from the global queue: return
 * the first, put the rest on w's ring.  Caller holds sched.lock.
 * Executed only by the owning worker.
 */
/* Caller holds sched.lock. */
static struct weft_task *
globrunq_pop_locked(void)
{
	struct weft_task *t = weft__sched.gq_head;

	WEFT_ASSERT_HELD(&weft__sched.lock);

	weft__sched.gq_head = t->next;
	if (!t->next)
		weft__sched.gq_tail = NULL;
	ck_pr_store_32(&weft__sched.gq_len, weft__sched.gq_len - 1);
	return t;
}

struct weft_task *
weft__globrunq_get_locked(struct weft__worker *w, int max)
{
	uint32_t len = weft__sched.gq_len, n;
	struct weft_task *first;

	WEFT_ASSERT_HELD(&weft__sched.lock);

	if (len == 0)
		return NULL;
	n = len / (uint32_t)weft__sched.nworkers + 1;
	if (n > len)
		n = len;
	if (max > 0 && n > (uint32_t)max)
		n = (uint32_t)max;
	if (n > RUNQ_SIZE / 2)
		n = RUNQ_SIZE / 2;
	first = globrunq_pop_locked();
	WEFT_STAT_ADD(w, global_gets, n);
	while (--n > 0) {
		/* Room is certain unless thieves refilled... they cannot:
		 * only the owner enqueues.  A full ring stops the batch. */
		struct weft_task *t = weft__sched.gq_head;

		if (!ck_ring_enqueue_spmc(&w->runq, w->runq_buf, t))
			break;
		globrunq_pop_locked();
	}
	return first;
}

/*
 * The ring is full: move half of it and `t` to the global queue in one
 * batch.  Executed only by the owning worker.
 */
void
weft__runq_put_slow(struct weft__worker *w, struct weft_task *t)
{
	struct weft_task *batch[RUNQ_SIZE / 2 + 1];
	int n = 0;

	WEFT_ASSERT_OWNER(w);
	while (n < RUNQ_SIZE / 2 &&
	       ck_ring_dequeue_spmc(&w->runq, w->runq_buf, &batch[n]))
		n++;
	batch[n++] = t;
	weft__mutex_lock(&weft__sched.lock, WEFT_RANK_SCHED);
	for (int i = 0; i < n; i++)
		weft__globrunq_put_locked(batch[i]);
	weft__mutex_unlock(&weft__sched.lock);
}

/* True if w has nothing queued locally.  Any worker (racy snapshot). */
bool
weft__runq_empty(struct weft__worker *w)
{
	return ck_ring_size(&w->runq) == 0 && !ck_pr_load_ptr(&w->runnext);
}

/*
 * Steal half of victim's ring into thief's (empty) ring and return one task
 * to run.  With `take_runnext`, take the victim's run-next slot when its
 * ring is empty.  Executed only by the thief; the victim runs concurrently.
 */
struct weft_task *
weft__runq_steal(struct weft__worker *thief, struct weft__worker *victim,
		 bool take_runnext)
{
	struct weft_task *t = NULL, *got;
	unsigned int n = ck_ring_size(&victim->runq);

	if (n > 0) {
		n = n - n / 2;		/* half, rounded up */
		while (n-- > 0) {
			if (!ck_ring_trydequeue_spmc(&victim->runq,
						     victim->runq_buf, &got))
				break;
			if (t && !ck_ring_enqueue_spmc(&thief->runq,
						       thief->runq_buf, t)) {
				/* Cannot happen: thief's ring was empty. */
				weft__runq_put(thief, t, false);
			}
			t = got;
		}
		if (t)
			return t;
	}
	if (take_runnext && ck_pr_load_ptr(&victim->runnext)) {
		/*
		 * The victim is most likely about to run its run-next itself:
		 * a task that just readied it (a channel hand-off, a mutex in
		 * starvation mode) usually parks a few hundred ns later.
		 * Give it ~3 us first, as Go's runqgrab does: taking the task
		 * away moves the pair across workers and every later hand-off
		 * then costs a sleep and a wake-up of a worker.
		 */
		int64_t until = weft_now() + STEAL_RUNNEXT_WAIT_NS;

		do {
			for (int i = 0; i < 64; i++)
				ck_pr_stall();
			if (!ck_pr_load_ptr(&victim->runnext))
				return NULL;
		} while (weft_now() < until);
		got = ck_pr_load_ptr(&victim->runnext);
		if (got && ck_pr_cas_ptr(&victim->runnext, got, NULL))
			return got;
	}
	return NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * Channels and select, after Go's runtime/chan.go and select.go.
 *
 * A channel is a lock, a ring buffer of `cap` values and two FIFO queues of
 * waiters (senders blocked on a full or unbuffered channel, receivers
 * blocked on an empty one).  A value goes straight from a sender to a
 * waiting receiver's destination (and back) without touching the buffer.
 *
 * Waiters are `struct sudog` records on the waiting side's stack.  A plain
 * send or receive has one record and its own waiter; a select has one
 * record per case, all sharing the select's single waiter: whichever
 * channel's waker claims that waiter first (weft__waiter_claim) fires its
 * case, and the others, finding the claim taken, skip the record.  The
 * claim comes before the data is copied and the commit after, so a select
 * whose claim was lost never sees a half-done case.
 *
 * Locks: channel locks (WEFT_RANK_CHAN, io/base.h), several at once in
 * increasing address order by a select.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "sched/park.h"

struct sudog {
	/* Immutable while queued. */
	struct weft__waiter *wt;	/* own, or the select's shared one */
	/*
	 * Or, for an untimed send or receive by a task, that task, in a
	 * lock-guarded park (sched/park.h): wt and idx are then unset, and
	 * whoever holds the lock (a waker, or the canceller) is its only
	 * possible waker, so it needs no claim.
	 */
	struct weft_task *lt;
	struct waitq *lq;		/* lt's queue (for its canceller) */
	void *val;			/* send: source; recv: destination */
	int idx;			/* select case index (0 otherwise) */
	/* Under the channel's lock. */
	struct sudog *next, *prev;
	bool queued;
	int result;			/* written by the winning waker */
};

struct waitq {
	struct sudog *head, *tail;	/* under the channel's lock */
};

struct weft_chan {
	ck_spinlock_t lock;
	uint32_t refs;			/* atomic */
	/* Immutable after make. */
	size_t elem;
	size_t cap;
	char *buf;			/* cap * elem bytes */
	/* Under lock. */
	size_t head;			/* index of the oldest buffered value */
	size_t len;			/* buffered values (also read atomically) */
	bool closed;
	struct waitq sendq;
	struct waitq recvq;
};

static inline __attribute__((always_inline)) void
q_push(struct waitq *q, struct sudog *sg)
{
	sg->next = NULL;
	sg->prev = q->tail;
	if (q->tail)
		q->tail->next = sg;
	else
		q->head = sg;
	q->tail = sg;
	sg->queued = true;
}

static inline __attribute__((always_inline)) void
q_unlink(struct waitq *q, struct sudog *sg)
{
	if (sg->prev)
		sg->prev->next = sg->next;
	else
		q->head = sg->next;
	if (sg->next)
		sg->next->prev = sg->prev;
	else
		q->tail = sg->prev;
	sg->queued = false;
}

/*
 * First waiter of q whose claim we win (it is unlinked); waiters that are
 * leaving (timed out, cancelled, or a select another channel fired) are
 * unlinked and skipped.  Caller holds the channel's lock.
 */
static inline __attribute__((always_inline)) struct sudog *
q_claim(struct waitq *q)
{
	struct sudog *sg;

	while ((sg = q->head)) {
		q_unlink(q, sg);
		if (sg->lt || weft__waiter_claim(sg->wt))
			return sg;
	}
	return NULL;
}

/*
 * Hand the claimed (and unlinked) waiter its outcome and make it run.
 * The record lives on the waiter's stack: not touched after the wake.
 * Caller holds the channel's lock.
 */
static inline __attribute__((always_inline)) void
finish(struct sudog *sg, int result, struct weft__worker *w)
{
	struct weft_task *t = sg->lt;

	sg->result = result;
	if (t) {
		/* Under the lock: a canceller finding NULL keeps off sg. */
		ck_pr_store_ptr(&t->lpark_rec, NULL);
		weft__lpark_wake(w, t);
		return;
	}
	weft__waiter_commit(sg->wt, sg->idx);
}

static inline __attribute__((always_inline)) void *
slot(struct weft_chan *ch, size_t i)
{
	return ch->buf + ((ch->head + i) % ch->cap) * ch->elem;
}

static inline __attribute__((always_inline)) void
copy(struct weft_chan *ch, void *dst, const void *src)
{
	if (!dst || !src)
		return;
	/* The common word sizes inline: no call into libc per value. */
	switch (ch->elem) {
	case 4:
		memcpy(dst, src, 4);
		break;
	case 8:
		memcpy(dst, src, 8);
		break;
	default:
		memcpy(dst, src, ch->elem);
	}
}

int
weft_chan_make(struct weft_chan **out, size_t elem_size, size_t capacity)
{
	struct weft_chan *ch;

	if (!out || elem_size == 0 || elem_size > 65536 ||
	    capacity > ((size_t)1 << 40) / elem_size)
		return -EINVAL;
	if (WEFT_UNLIKELY(weft__fail_alloc()))
		return -ENOMEM;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	if (capacity) {
		ch->buf = malloc(capacity * elem_size);
		if (!ch->buf) {
			free(ch);
			return -ENOMEM;
		}
	}
	ck_spinlock_init(&ch->lock);
	ch->refs = 1;
	ch->elem = elem_size;
	ch->cap = capacity;
	*out = ch;
	return 0;
}

struct weft_chan *
weft_chan_retain(struct weft_chan *ch)
{
	if (WEFT_UNLIKELY(!ch))
		return NULL;
	ck_pr_inc_32(&ch->refs);
	return ch;
}

void
weft_chan_release(struct weft_chan *ch)
{
	if (!ch)
		return;
	/* Full barrier: every use by this holder happens before the free. */
	if (ck_pr_faa_32(&ch->refs, (uint32_t)-1) != 1)
		return;
	/* A canceller may be on its way to the lock of a task's park. */
	weft__lpark_quiesce();
	free(ch->buf);
	free(ch);
}

size_t
weft_chan_len(const struct weft_chan *ch)
{
	if (WEFT_UNLIKELY(!ch))
		return 0;
	return ck_pr_load_64((const uint64_t *)(const void *)&ch->len);
}

size_t
weft_chan_cap(const struct weft_chan *ch)
{
	if (WEFT_UNLIKELY(!ch))
		return 0;
	return ch->cap;
}

/*
 * Try to send without waiting.  Returns 0 (done), -EPIPE (closed) or
 * -EAGAIN.  Caller holds the lock.
 */
static inline __attribute__((always_inline)) int
send_locked(struct weft_chan *ch, const void *val, struct weft__worker *w)
{
	struct sudog *sg;

	WEFT_ASSERT_HELD(&ch->lock);

	if (ch->closed)
		return -EPIPE;
	if ((sg = q_claim(&ch->recvq))) {
		copy(ch, sg->val, val);
		finish(sg, 0, w);
		return 0;
	}
	if (ch->len < ch->cap) {
		copy(ch, slot(ch, ch->len), val);
		ck_pr_store_64((uint64_t *)(void *)&ch->len, ch->len + 1);
		return 0;
	}
	return -EAGAIN;
}

/* Try to receive without waiting; as send_locked(). */
static inline __attribute__((always_inline)) int
recv_locked(struct weft_chan *ch, void *out, struct weft__worker *w)
{
	struct sudog *sg;

	WEFT_ASSERT_HELD(&ch->lock);

	if (ch->len > 0) {
		copy(ch, out, slot(ch, 0));
		ch->head = (ch->head + 1) % ch->cap;
		ck_pr_store_64((uint64_t *)(void *)&ch->len, ch->len - 1);
		/* Room now: the first waiting sender moves in. */
		if ((sg = q_claim(&ch->sendq))) {
			copy(ch, slot(ch, ch->len), sg->val);
			ck_pr_store_64((uint64_t *)(void *)&ch->len,
				       ch->len + 1);
			finish(sg, 0, w);
		}
		return 0;
	}
	if ((sg = q_claim(&ch->sendq))) {
		copy(ch, out, sg->val);
		finish(sg, 0, w);
		return 0;
	}
	return ch->closed ? -EPIPE : -EAGAIN;
}

static void
chan_unlock(void *arg)
{
	struct weft_chan *ch = arg;

	weft__spin_unlock(&ch->lock);
}

/* Block in one queue of one channel.  Called with the lock held. */
static int
wait_locked(struct weft_chan *ch, struct waitq *q, void *val,
	    int64_t deadline, struct weft_task *self)
{
	struct weft__waiter wt;
	struct sudog sg = { .wt = &wt, .lt = NULL, .val = val, .idx = 0 };
	int ret;

	WEFT_ASSERT_HELD(&ch->lock);

	weft__waiter_prepare_as(&wt, self);
	weft__waiter_note(&wt, q == &ch->sendq ? WAIT_CHAN_SEND :
			  WAIT_CHAN_RECV, ch);
	q_push(q, &sg);
	ret = weft__waiter_wait(&wt, chan_unlock, ch, deadline);
	/*
	 * A coroutine woken by the channel (ret >= 0: the waker's claim won,
	 * so it unlinked our record under the lock before claiming and does
	 * not touch it after the commit) need not relock, as in Go.  A
	 * timeout or cancellation left the record queued, and a thread's
	 * waker still holds the lock while it issues the futex wake on our
	 * record: both relock.
	 */
	if (ret >= 0 && wt.task)
		return sg.result;
	weft__spin_lock(&ch->lock, WEFT_RANK_CHAN);
	if (sg.queued)
		q_unlink(q, &sg);
	weft__spin_unlock(&ch->lock);
	return ret < 0 ? ret : sg.result;
}

/*
 * weft_cancel() of a task in a lock-guarded park on ch (sched/park.h), at
 * its park `seq`.  Called with no lock held, within a visit.
 */
static void
chan_lcancel(void *obj, struct weft_task *t, uint32_t seq)
{
	struct weft_chan *ch = obj;
	struct sudog *sg;
	uint64_t word;

	weft__spin_lock(&ch->lock, WEFT_RANK_CHAN);
	word = ck_pr_load_64(&t->park);
	/*
	 * The record, read between two loads of the park word (seqlock
	 * style): a record stored by a later park (under another object's
	 * lock, after that park's arm) comes with a changed word.  Still
	 * set under our lock, it is parked here: its wakers clear it under
	 * this lock before they wake it.
	 */
	sg = ck_pr_load_ptr(&t->lpark_rec);
	ck_pr_fence_load();
	if (sg && PARK_SEQ(word) == seq && (word & PARK_ARMED) &&
	    ck_pr_load_64(&t->park) == word) {
		WEFT_ASSERT(sg->queued && sg->lt == t);
		q_unlink(sg->lq, sg);
		finish(sg, -ECANCELED, weft__worker_self());
	}
	weft__spin_unlock(&ch->lock);
}

/*
 * The waiting half of chan_op_lparked(): called with the lock held and the
 * park armed, when the operation must wait.  Out of line, so that the
 * hand-off half keeps a small frame.
 */
static __attribute__((noinline)) int
chan_lpark_wait(struct weft_chan *ch, void *val, struct weft__worker *w,
		struct weft_task *self, bool send)
{
	struct sudog sg;

	if (ck_pr_load_32(&self->flags) & TASK_CANCELLED) {
		weft__spin_unlock(&ch->lock);
		weft__lpark_disarm(self);
		return -ECANCELED;
	}
	/* wt and idx: unused with lt set. */
	sg.lt = self;
	sg.lq = send ? &ch->sendq : &ch->recvq;
	sg.val = val;
	weft__wait_note(self, send ? WAIT_CHAN_SEND : WAIT_CHAN_RECV, ch);
	q_push(sg.lq, &sg);
	ck_pr_store_ptr(&self->lpark_rec, &sg);
	weft__lpark(w, &ch->lock);
	/* The waker unlinked sg and stored the result. */
	weft__lpark_disarm(self);
	return sg.result;
}

/*
 * An untimed send or receive by task `self`, in a lock-guarded park if it
 * must wait: no claim and no atomic update of its own park word, only the
 * channel's lock.
 */
static inline __attribute__((always_inline)) int
chan_op_lparked(struct weft_chan *ch, void *val, struct weft__worker *w,
		struct weft_task *self, bool send)
{
	int ret;

	if (WEFT_UNLIKELY(ck_pr_load_32(&self->flags) & TASK_CANCELLED))
		return -ECANCELED;
	weft__lpark_arm(self, ch, chan_lcancel);
	/* The arm before the lock's exchange, the flag read after it. */
	ck_pr_fence_store_atomic();
	weft__spin_lock(&ch->lock, WEFT_RANK_CHAN);
	ck_pr_fence_atomic_load();
	ret = send ? send_locked(ch, val, w) : recv_locked(ch, val, w);
	if (ret == -EAGAIN)
		return chan_lpark_wait(ch, val, w, self, send);
	weft__spin_unlock(&ch->lock);
	weft__lpark_disarm(self);
	return ret;
}

/* chan_op_lparked() made twice, each with fewer live values. */
static __attribute__((noinline)) int
chan_send_lparked(struct weft_chan *ch, void *val, struct weft__worker *w,
		  struct weft_task *self)
{
	return chan_op_lparked(ch, val, w, self, true);
}

static __attribute__((noinline)) int
chan_recv_lparked(struct weft_chan *ch, void *out, struct weft__worker *w,
		  struct weft_task *self)
{
	return chan_op_lparked(ch, out, w, self, false);
}

/* -ECANCELED if `t` (the caller, NULL on a plain thread) is cancelled. */
static int
cancelled(struct weft_task *t)
{
	return t && (ck_pr_load_32(&t->flags) & TASK_CANCELLED) ?
	       -ECANCELED : 0;
}

/*
 * A send or receive with a deadline, or by a plain thread: the waiter
 * protocol of sched/park.h.
 */
static __attribute__((noinline)) int
chan_op_waiter(struct weft_chan *ch, void *val, int64_t deadline,
	       struct weft__worker *w, struct weft_task *self, bool send)
{
	struct waitq *q = send ? &ch->sendq : &ch->recvq;
	int ret;

	if ((ret = cancelled(self)))
		return ret;
	weft__spin_lock(&ch->lock, WEFT_RANK_CHAN);
	ret = send ? send_locked(ch, val, w) : recv_locked(ch, val, w);
	if (ret != -EAGAIN) {
		weft__spin_unlock(&ch->lock);
		return ret;
	}
	if (deadline != WEFT_DEADLINE_NONE && deadline <= weft_now()) {
		weft__spin_unlock(&ch->lock);
		return -ETIMEDOUT;
	}
	return wait_locked(ch, q, val, deadline, self);
}

/* The entry points only pick the path: no frame of their own. */
static inline __attribute__((always_inline)) int
chan_op(struct weft_chan *ch, void *val, int64_t deadline, bool send)
{
	struct weft__worker *w;
	struct weft_task *self;

	if (!ch)
		return -EINVAL;
	w = weft__worker_self();
	self = w ? weft__worker_task(w) : NULL;
	if (self)
		deadline = weft__scope_clamp(self, deadline);
	if (self && deadline == WEFT_DEADLINE_NONE)
		return send ? chan_send_lparked(ch, val, w, self) :
			      chan_recv_lparked(ch, val, w, self);
	return chan_op_waiter(ch, val, deadline, w, self, send);
}

int
weft_chan_send(struct weft_chan *ch, const void *val, int64_t deadline)
{
	return chan_op(ch, (void *)val, deadline, true);
}

int
weft_chan_recv(struct weft_chan *ch, void *out, int64_t deadline)
{
	return chan_op(ch, out, deadline, false);
}

int
weft_chan_trysend(struct weft_chan *ch, const void *val)
{
	struct weft__worker *w = weft__worker_self();
	int ret;

	if (!ch)
		return -EINVAL;
	weft__spin_lock(&ch->lock, WEFT_RANK_CHAN);
	ret = send_locked(ch, val, w);
	weft__spin_unlock(&ch->lock);
	return ret;
}

int
weft_chan_tryrecv(struct weft_chan *ch, void *out)
{
	struct weft__worker *w = weft__worker_self();
	int ret;

	if (!ch)
		return -EINVAL;
	weft__spin_lock(&ch->lock, WEFT_RANK_CHAN);
	ret = recv_locked(ch, out, w);
	weft__spin_unlock(&ch->lock);
	return ret;
}

int
weft_chan_close(struct weft_chan *ch)
{
	struct weft__worker *w = weft__worker_self();
	struct sudog *sg;

	if (!ch)
		return -EINVAL;
	weft__spin_lock(&ch->lock, WEFT_RANK_CHAN);
	if (ch->closed) {
		weft__spin_unlock(&ch->lock);
		return -EPIPE;
	}
	/* Atomic: weft__chan_info() reads it without the lock. */
	ck_pr_store_8((uint8_t *)&ch->closed, 1);
	/* Receivers only wait on an empty buffer: they get the close. */
	while ((sg = q_claim(&ch->recvq)))
		finish(sg, -EPIPE, w);
	while ((sg = q_claim(&ch->sendq)))
		finish(sg, -EPIPE, w);
	weft__spin_unlock(&ch->lock);
	return 0;
}

/*
 * Select.  Channels are locked in address order (each once, though several
 * cases may name the same channel) and polled in a random order, so the
 * first ready case in that order is a uniform choice among the ready ones.
 */
#define SELECT_STACK_CASES 16

struct selstate {
	struct weft_select_case *cases;
	int n;
	struct weft_chan **locks;	/* distinct channels, address order */
	int nlocks;
};

static void
sel_lock(struct selstate *st)
{
	for (int i = 0; i < st->nlocks; i++)
		weft__spin_lock(&st->locks[i]->lock, WEFT_RANK_CHAN);
}

static void
sel_unlock(void *arg)
{
	struct selstate *st = arg;

	for (int i = st->nlocks - 1; i >= 0; i--)
		weft__spin_unlock(&st->locks[i]->lock);
}

static int
cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a;
	uintptr_t y = (uintptr_t)*(void *const *)b;

	return x < y ? -1 : x > y;
}

static uint32_t
sel_rand(void)
{
	static __thread uint64_t s;

	if (!s)
		s = (uint64_t)weft_now() ^ (uintptr_t)&s;
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return (uint32_t)(s >> 16);
}

int
weft_select(struct weft_select_case *cases, int n, int64_t deadline)
{
	struct weft_chan *lock_stack[SELECT_STACK_CASES];
	struct sudog sg_stack[SELECT_STACK_CASES];
	int order_stack[SELECT_STACK_CASES];
	struct weft_chan **locks = lock_stack;
	struct sudog *sg = sg_stack;
	int *order = order_stack;
	struct selstate st;
	struct weft__waiter wt;
	struct weft__worker *w;
	int i, j, ret, fired = -1;

	deadline = weft__scoped(deadline);

	if (!cases || n < 0 || n > 65536)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (cases[i].ch && cases[i].op != WEFT_SELECT_SEND &&
		    cases[i].op != WEFT_SELECT_RECV)
			return -EINVAL;
	w = weft__worker_self();
	if ((ret = cancelled(w ? weft__worker_task(w) : NULL)))
		return ret;
	if (n > SELECT_STACK_CASES) {
		locks = malloc(sizeof(*locks) * (size_t)n);
		sg = malloc(sizeof(*sg) * (size_t)n);
		order = malloc(sizeof(*order) * (size_t)n);
		if (!locks || !sg || !order) {
			ret = -ENOMEM;
			goto out;
		}
	}
	/* The distinct channels, sorted: the lock order. */
	st.nlocks = 0;
	for (i = 0; i < n; i++)
		if (cases[i].ch)
			locks[st.nlocks++] = cases[i].ch;
	qsort(locks, (size_t)st.nlocks, sizeof(*locks), cmp_ptr);
	for (i = 0, j = 0; i < st.nlocks; i++)
		if (j == 0 || locks[j - 1] != locks[i])
			locks[j++] = locks[i];
	st.nlocks = j;
	st.locks = locks;
	st.cases = cases;
	st.n = n;
	/* A random poll order (Fisher-Yates). */
	for (i = 0; i < n; i++) {
		j = (int)(sel_rand() % (uint32_t)(i + 1));
		order[i] = order[j];
		order[j] = i;
	}

	sel_lock(&st);
	for (i = 0; i < n; i++) {
		struct weft_select_case *c = &cases[order[i]];

		if (!c->ch)
			continue;
		ret = c->op == WEFT_SELECT_SEND ? send_locked(c->ch, c->val, w) :
						  recv_locked(c->ch, c->val, w);
		if (ret != -EAGAIN) {
			c->result = ret;
			fired = order[i];
			break;
		}
	}
	if (fired >= 0 || st.nlocks == 0 ||
	    (deadline != WEFT_DEADLINE_NONE && deadline <= weft_now())) {
		sel_unlock(&st);
		if (fired >= 0)
			ret = fired;
		else if (deadline != WEFT_DEADLINE_NONE &&
			 deadline <= weft_now())
			ret = -EAGAIN;
		else if (deadline == WEFT_DEADLINE_NONE)
			ret = -EINVAL;	/* no case: nothing could ever fire */
		else
			ret = weft_sleep_until(deadline) ?: -ETIMEDOUT;
		goto out;
	}

	/* Wait on every case at once. */
	weft__waiter_prepare(&wt);
	weft__waiter_note(&wt, WAIT_SELECT, cases);
	for (i = 0; i < n; i++) {
		struct weft_select_case *c = &cases[i];

		sg[i].queued = false;
		if (!c->ch)
			continue;
		sg[i].wt = &wt;
		sg[i].lt = NULL;
		sg[i].val = c->val;
		sg[i].idx = i;
		q_push(c->op == WEFT_SELECT_SEND ? &c->ch->sendq :
						   &c->ch->recvq, &sg[i]);
	}
	ret = weft__waiter_wait(&wt, sel_unlock, &st, deadline);
	sel_lock(&st);
	for (i = 0; i < n; i++) {
		struct weft_select_case *c = &cases[i];

		if (sg[i].queued)
			q_unlink(c->op == WEFT_SELECT_SEND ? &c->ch->sendq :
							     &c->ch->recvq,
				 &sg[i]);
	}
	sel_unlock(&st);
	if (ret >= 0)
		cases[ret].result = sg[ret].result;
out:
	if (locks != lock_stack) {
		free(locks);
		free(sg);
		free(order);
	}
	return ret;
}

void
weft__chan_info(const void *obj, size_t *cap, size_t *len, bool *closed)
{
	const struct weft_chan *ch = obj;

	*cap = ch->cap;
	*len = ck_pr_load_64((uint64_t *)&ch->len);
	*closed = ck_pr_load_8((uint8_t *)&ch->closed);
}

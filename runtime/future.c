/* SPDX-License-Identifier: MIT */
/*
 * Futures: one-shot result slots that any thread completes and tasks or
 * plain threads wait for; task futures; done callbacks; gather (wait_all),
 * wait_any and join with a deadline.
 *
 * A future is a small heap object with a spinlock.  Its waiters are
 * records on the waiters' stacks (struct fwait) linked into the future's
 * list under that lock; each record points at a struct weft__waiter, so a
 * waiter may be a coroutine (it parks) or a plain thread (futex).  The
 * completer, holding the lock, unlinks every record and wakes it with the
 * record's index; a waiter always relocks the future before it returns
 * (even when its record is gone), which keeps the record alive for a waker
 * still inside weft__waiter_wake() (see sched/park.h).  weft_wait_any() links
 * one record into each future, all pointing at one shared weft__waiter:
 * the park word (or futex word) lets exactly one completer win it.
 *
 * Done callbacks never run in the completer's frame (asyncio's rule).
 * They queue on the future in registration order; the first one that
 * becomes runnable starts a "runner" task, which pops and calls them one
 * at a time until the queue is empty.  At most one runner exists per
 * future (cb_runner), so the order holds even for callbacks registered
 * after completion while earlier ones are still queued.  If no runtime is
 * running when a runner should start (a foreign thread completed the
 * future after weft_run() returned, or before the next one), the future
 * goes on a global orphan list and the next weft_run() starts its runner.
 * If the runtime runs but the runner cannot be spawned (-ENOMEM), the
 * future goes on the deferred list instead, which holds the run open
 * (weft__run_hold): the next runner to finish takes the deferred futures'
 * callbacks over, and an idle worker retries the spawn, so a callback is
 * late under memory pressure but never lost.
 *
 * Task futures are made lazily, the first time weft_task_future() asks for
 * one (most tasks are never looked at as futures, and a malloc per spawn
 * would cost the spawn path).  The task descriptor holds one reference to
 * its future (t->fut) until the descriptor is freed; the future's `owner`
 * names the task until then (cleared under the future's lock by
 * weft__task_drop_future()).
 *
 * Locks: a future's lock (WEFT_RANK_FUTURE, io/base.h); its completer
 * wakes waiters under it.  It never nests with a task's lock: the exit
 * path reads t->fut under task->lock and completes it after unlocking.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "runtime/future.h"
#include "runtime/runtime.h"
#include "sched/park.h"

/* A waiter's record in a future's list.  Lives on the waiter's stack. */
struct fwait {
	struct weft__waiter *wt;	/* immutable while linked */
	int index;			/* passed as the wake result */
	/* Under the future's lock. */
	struct fwait *next;
	struct fwait *prev;
	bool linked;
};

/* A queued done callback.  Under the future's lock until popped. */
struct fcb {
	weft_future_cb cb;
	void *arg;
	struct fcb *next;
};

struct weft_future {
	ck_spinlock_t lock;

	/* Immutable after make. */
	const struct weft__future_ops *ops;	/* NULL: a plain future */

	/* Atomics (ck_pr): any thread. */
	uint32_t refs;
	/*
	 * enum weft_future_state.  Stored under lock; the move to DONE or
	 * CANCELLED is a release store after value/err, read with an
	 * acquire (load + fence_load) by lock-free readers.
	 */
	uint32_t state;

	/* Written once under lock before state becomes DONE/CANCELLED. */
	void *value;
	int err;

	/*
	 * A task future's weft_fail() error: written once by the task
	 * itself (its owner) while it runs, read by weft__future_complete()
	 * on its exit path and by a joiner that saw it DONE.
	 */
	int fail_err;

	/*
	 * The owner (a task, or a pool job): under lock.  For a task future
	 * it is cleared when the descriptor is freed; read racily by
	 * weft__future_owner_task() while the world is idle.
	 */
	void *owner;

	/* Under lock. */
	struct fwait *w_head;		/* waiter records (FIFO) */
	struct fwait *w_tail;
	struct fcb *cb_head;		/* done callbacks not yet run */
	struct fcb *cb_tail;
	bool cb_runner;			/* a runner task exists or is due */
	/*
	 * The internal completion hook (weft__future_hook): under lock;
	 * taken (cleared) by whoever calls it, once.
	 */
	void (*hook)(struct weft_future *f, void *arg);
	void *hook_arg;

	/* Orphan list link: under orphans.lock. */
	struct weft_future *orphan_next;
};

static bool
state_final(uint32_t st)
{
	return st == WEFT_FUTURE_DONE || st == WEFT_FUTURE_CANCELLED;
}

/*
 * Futures whose callback runner could not start: no runtime was running
 * (head), or it could not be spawned (deferred; each counted in
 * weft__run_hold).
 */
static struct {
	pthread_mutex_t lock;
	struct weft_future *head;	/* under lock; each holds a ref */
	/*
	 * Under lock; each holds a ref.  Also read without it, by
	 * deferred_take()'s emptiness check: every store is ck_pr_store.
	 */
	struct weft_future *deferred;
} orphans = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static int task_future_cancel(struct weft_future *f, void *owner);

static const struct weft__future_ops task_future_ops = {
	.cancel = task_future_cancel,
};

static void
spin_unlock(void *lk)
{
	weft__spin_unlock(lk);
}

static struct weft_future *
future_alloc(const struct weft__future_ops *ops, void *owner)
{
	struct weft_future *f;

	if (WEFT_UNLIKELY(weft__fail_alloc()))
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	ck_spinlock_init(&f->lock);
	f->ops = ops;
	f->owner = owner;
	f->refs = 1;
	f->state = WEFT_FUTURE_PENDING;
	return f;
}

int
weft_future_make(struct weft_future **out)
{
	struct weft_future *f;

	if (!out)
		return -EINVAL;
	if (!weft__sched_running())
		return -ESRCH;
	f = future_alloc(NULL, NULL);
	if (!f)
		return -ENOMEM;
	*out = f;
	return 0;
}

int
weft__future_make_owned(struct weft_future **out,
			const struct weft__future_ops *ops, void *owner)
{
	struct weft_future *f = future_alloc(ops, owner);

	if (!f)
		return -ENOMEM;
	*out = f;
	return 0;
}

struct weft_future *
weft_future_retain(struct weft_future *f)
{
	if (WEFT_UNLIKELY(!f))
		return NULL;
	ck_pr_inc_32(&f->refs);
	return f;
}

void
weft_future_release(struct weft_future *f)
{
	struct fcb *c, *next;

	if (!f)
		return;
	/* Full barrier: the last dropper sees every other holder's writes. */
	if (ck_pr_faa_32(&f->refs, (uint32_t)-1) != 1)
		return;
	/*
	 * No waiter can be linked (a waiter holds a reference) and no runner
	 * exists (it holds one too); callbacks of a future that never
	 * completed are dropped with it.
	 */
	WEFT_ASSERT(f->w_head == NULL);
	for (c = f->cb_head; c; c = next) {
		next = c->next;
		free(c);
	}
	free(f);
}

enum weft_future_state
weft_future_state(const struct weft_future *f)
{
	/* No future: one that never completes with a value. */
	if (WEFT_UNLIKELY(!f))
		return WEFT_FUTURE_CANCELLED;
	return (enum weft_future_state)ck_pr_load_32(&f->state);
}

/* The outcome of a complete future.  Caller saw a final state (acquire). */
static int
outcome(const struct weft_future *f, void **value)
{
	uint32_t st = ck_pr_load_32(&f->state);

	if (st == WEFT_FUTURE_CANCELLED)
		return -ECANCELED;
	if (f->err)
		return f->err;
	if (value)
		*value = f->value;
	return 0;
}

int
weft_future_result(const struct weft_future *f, void **value)
{
	if (!f)
		return -EINVAL;
	if (!state_final(ck_pr_load_32(&f->state)))
		return -EAGAIN;
	/* Pairs with the release store of the state in complete_locked(). */
	ck_pr_fence_load();
	return outcome(f, value);
}

/* Take one deferred future (its reference and its hold), or NULL. */
static struct weft_future *
deferred_take(void)
{
	struct weft_future *f;

	if (!ck_pr_load_ptr(&orphans.deferred))
		return NULL;
	weft__mutex_lock(&orphans.lock, WEFT_RANK_ORPHANS);
	f = orphans.deferred;
	if (f)
		ck_pr_store_ptr(&orphans.deferred, f->orphan_next);
	weft__mutex_unlock(&orphans.lock);
	if (f)
		f->orphan_next = NULL;
	return f;
}

/* Call f's queued callbacks in order, then drop the runner's reference. */
static void
run_callbacks(struct weft_future *f)
{
	struct fcb *c;

	for (;;) {
		weft__spin_lock(&f->lock, WEFT_RANK_FUTURE);
		c = f->cb_head;
		if (!c) {
			f->cb_runner = false;
			weft__spin_unlock(&f->lock);
			break;
		}
		f->cb_head = c->next;
		if (!f->cb_head)
			f->cb_tail = NULL;
		weft__spin_unlock(&f->lock);
		c->cb(f, c->arg);
		free(c);
	}
	weft_future_release(f);
}

/*
 * Callback runner: a task of its own that calls f's queued callbacks in
 * order.  Holds the reference taken when it was scheduled.  Then it takes
 * over the futures whose own runner could not be spawned.
 */
static void *
cb_runner(void *arg)
{
	struct weft_future *f = arg;

	run_callbacks(f);
	while ((f = deferred_take())) {
		weft__run_hold(-1);
		run_callbacks(f);
	}
	return NULL;
}

/*
 * Start the runner of f, which the caller marked (cb_runner) under f's
 * lock, handing it the reference the caller took.  Without a runtime, park
 * f on the orphan list for the next run; out of memory, on the deferred
 * list.  Any thread; takes no future lock.
 */
static void
runner_start(struct weft_future *f)
{
	int r = weft__spawn_system(cb_runner, f, "future-cb");

	if (r == 0)
		return;
	weft__mutex_lock(&orphans.lock, WEFT_RANK_ORPHANS);
	if (r == -ESRCH) {
		f->orphan_next = orphans.head;
		orphans.head = f;
	} else {
		/* Before the list: the hold must cover it while listed. */
		weft__run_hold(1);
		f->orphan_next = orphans.deferred;
		ck_pr_store_ptr(&orphans.deferred, f);
	}
	weft__mutex_unlock(&orphans.lock);
}

/*
 * weft__hold_retry: an idle worker found no task alive but deferred
 * futures.  Spawn a runner for one (it takes over the rest).  Returns
 * true if one started.  Executed by a worker in its scheduler context.
 */
bool
weft__future_retry_deferred(void)
{
	struct weft_future *f = deferred_take();

	if (!f)
		return false;
	if (weft__spawn_system(cb_runner, f, "future-cb") == 0) {
		weft__run_hold(-1);
		return true;
	}
	weft__mutex_lock(&orphans.lock, WEFT_RANK_ORPHANS);
	f->orphan_next = orphans.deferred;
	ck_pr_store_ptr(&orphans.deferred, f);
	weft__mutex_unlock(&orphans.lock);
	return false;
}

/*
 * Start the runners of futures completed while no runtime ran.  Called by
 * weft_run() once `running` is set, before the workers start.
 */
void
weft__future_adopt_orphans(void)
{
	struct weft_future *f, *next;

	weft__mutex_lock(&orphans.lock, WEFT_RANK_ORPHANS);
	f = orphans.head;
	orphans.head = NULL;
	weft__mutex_unlock(&orphans.lock);
	for (; f; f = next) {
		next = f->orphan_next;
		f->orphan_next = NULL;
		runner_start(f);
	}
}

/*
 * Complete f (lock held): store the outcome, wake every waiter.  Returns
 * true if a callback runner must be started (a reference was taken for
 * it).  Caller holds f->lock and has checked that f is not complete.
 */
static bool
complete_locked(struct weft_future *f, void *value, int err, bool cancelled)
{
	struct fwait *r;

	WEFT_ASSERT_HELD(&f->lock);

	f->value = value;
	f->err = err;
	/* Release: value and err before the final state (weft_future_result). */
	ck_pr_fence_store();
	ck_pr_store_32(&f->state, cancelled ? WEFT_FUTURE_CANCELLED :
			WEFT_FUTURE_DONE);
	while ((r = f->w_head) != NULL) {
		f->w_head = r->next;
		if (f->w_head)
			f->w_head->prev = NULL;
		else
			f->w_tail = NULL;
		r->next = r->prev = NULL;
		r->linked = false;
		/* False: that waiter left (timeout, cancel) or another won. */
		(void)weft__waiter_wake(r->wt, r->index);
	}
	if (f->cb_head && !f->cb_runner) {
		f->cb_runner = true;
		ck_pr_inc_32(&f->refs);
		return true;
	}
	return false;
}

/* Complete f unless it is complete already.  Any thread; never blocks. */
static int
complete(struct weft_future *f, void *value, int err, bool cancelled)
{
	void (*hook)(struct weft_future *, void *);
	void *hook_arg;
	bool start;

	weft__spin_lock(&f->lock, WEFT_RANK_FUTURE);
	if (state_final(ck_pr_load_32(&f->state))) {
		weft__spin_unlock(&f->lock);
		return -EALREADY;
	}
	start = complete_locked(f, value, err, cancelled);
	hook = f->hook;
	hook_arg = f->hook_arg;
	f->hook = NULL;
	if (hook)
		ck_pr_inc_32(&f->refs);	/* for the hook's duration */
	weft__spin_unlock(&f->lock);
	if (start)
		runner_start(f);
	if (hook) {
		hook(f, hook_arg);
		weft_future_release(f);
	}
	return 0;
}

void
weft__future_hook(struct weft_future *f,
		  void (*fn)(struct weft_future *f, void *arg), void *arg)
{
	weft__spin_lock(&f->lock, WEFT_RANK_FUTURE);
	WEFT_ASSERT(f->hook == NULL);
	if (!state_final(ck_pr_load_32(&f->state))) {
		f->hook = fn;
		f->hook_arg = arg;
		weft__spin_unlock(&f->lock);
		return;
	}
	weft__spin_unlock(&f->lock);
	/* Complete already: the caller holds a reference. */
	ck_pr_fence_load();
	fn(f, arg);
}

int
weft__future_complete(struct weft_future *f, void *value, int err,
		      bool cancelled)
{
	/* A task that called weft_fail() ends failed, without a value. */
	if (WEFT_UNLIKELY(f->fail_err) && !cancelled && err == 0) {
		err = f->fail_err;
		value = NULL;
	}
	return complete(f, value, err, cancelled);
}

int
weft__future_fail_err(const struct weft_future *f)
{
	return f ? f->fail_err : 0;
}

int
weft_fail(int err)
{
	struct weft_task *self;
	struct weft_future *f;
	int r;

	if (err >= 0)
		return -EINVAL;
	r = weft__pool_job_fail(err);
	if (r != -EPERM)
		return r;		/* a pool job's outcome */
	self = weft__task_self();
	if (!self)
		return -EPERM;
	if (ck_pr_load_32(&self->flags) & TASK_FAILED)
		return -EALREADY;
	f = weft_task_future(self);
	if (!f)
		return -ENOMEM;
	f->fail_err = err;
	/* After the error: a joiner that sees the flag reads it. */
	ck_pr_or_32(&self->flags, TASK_FAILED);
	return 0;
}

void
weft__future_running(struct weft_future *f)
{
	/* Only PENDING moves; a complete future stays as it is. */
	ck_pr_cas_32(&f->state, WEFT_FUTURE_PENDING, WEFT_FUTURE_RUNNING);
}

int
weft_future_set(struct weft_future *f, void *value)
{
	if (!f)
		return -EINVAL;
	if (f->ops)
		return -EPERM;
	return complete(f, value, 0, false);
}

int
weft_future_fail(struct weft_future *f, int err)
{
	if (!f || err >= 0)
		return -EINVAL;
	if (f->ops)
		return -EPERM;
	return complete(f, NULL, err, false);
}

int
weft_future_cancel(struct weft_future *f)
{
	struct weft_task *t = NULL;
	void *owner;
	int ret;

	if (!f)
		return -EINVAL;
	if (!f->ops)
		return complete(f, NULL, 0, true);
	weft__spin_lock(&f->lock, WEFT_RANK_FUTURE);
	if (state_final(ck_pr_load_32(&f->state))) {
		weft__spin_unlock(&f->lock);
		return -EALREADY;
	}
	owner = f->owner;
	/*
	 * A task future's owner is freed only after weft__task_drop_future()
	 * cleared it under this lock: a reference taken here keeps the
	 * descriptor from being recycled under weft_cancel().
	 */
	if (f->ops == &task_future_ops) {
		t = owner;
		if (!t || !weft__task_tryref(t)) {
			weft__spin_unlock(&f->lock);
			return -EALREADY;
		}
	}
	weft__spin_unlock(&f->lock);
	ret = f->ops->cancel(f, owner);
	if (t)
		weft__task_unref(weft__worker_self(), t);
	return ret;
}

int
weft_future_on_done(struct weft_future *f, weft_future_cb cb, void *arg)
{
	struct fcb *c;
	bool start = false;

	if (!f || !cb)
		return -EINVAL;
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cb = cb;
	c->arg = arg;
	c->next = NULL;
	weft__spin_lock(&f->lock, WEFT_RANK_FUTURE);
	if (f->cb_tail)
		f->cb_tail->next = c;
	else
		f->cb_head = c;
	f->cb_tail = c;
	if (state_final(ck_pr_load_32(&f->state)) && !f->cb_runner) {
		f->cb_runner = true;
		ck_pr_inc_32(&f->refs);
		start = true;
	}
	weft__spin_unlock(&f->lock);
	if (start)
		runner_start(f);
	return 0;
}

/*
 * Waiting
 */

static void
link_locked(struct weft_future *f, struct fwait *r)
{
	WEFT_ASSERT_HELD(&f->lock);
	r->next = NULL;
	r->prev = f->w_tail;
	if (f->w_tail)
		f->w_tail->next = r;
	else
		f->w_head = r;
	f->w_tail = r;
	r->linked = true;
}

static void
unlink_locked(struct weft_future *f, struct fwait *r)
{
	WEFT_ASSERT_HELD(&f->lock);
	if (!r->linked)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		f->w_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		f->w_tail = r->prev;
	r->next = r->prev = NULL;
	r->linked = false;
}

/*
 * Wait until f is complete or the wait ends: 0 (complete), -ETIMEDOUT,
 * -ECANCELED (the caller).  `kind`/`obj` are noted for diagnostics.
 * Any thread.
 */
static int
wait_one(struct weft_future *f, int64_t deadline, enum weft__wait_kind kind,
	 const void *obj)
{
	struct weft_task *self = weft__task_self();
	struct weft__waiter wt;
	struct fwait r = { .wt = &wt, .index = 0 };
	int ret;

	if (state_final(ck_pr_load_32(&f->state)))
		return 0;
	weft__spin_lock(&f->lock, WEFT_RANK_FUTURE);
	if (state_final(ck_pr_load_32(&f->state))) {
		weft__spin_unlock(&f->lock);
		return 0;
	}
	if (self)
		weft__wait_note(self, kind, obj);
	weft__waiter_prepare_as(&wt, self);
	link_locked(f, &r);
	ret = weft__waiter_wait(&wt, spin_unlock, &f->lock, deadline);
	weft__spin_lock(&f->lock, WEFT_RANK_FUTURE);
	unlink_locked(f, &r);
	weft__spin_unlock(&f->lock);
	if (self)
		weft__wait_note(self, WAIT_NONE, NULL);
	return ret < 0 ? ret : 0;
}

int
weft_future_wait(struct weft_future *f, void **value, int64_t deadline)
{
	int ret;

	if (!f)
		return -EINVAL;
	ret = wait_one(f, deadline, WAIT_FUTURE, f);
	if (ret < 0)
		return ret;
	/* Pairs with the release store of the state in complete_locked(). */
	ck_pr_fence_load();
	return outcome(f, value);
}

int
weft_wait_all(struct weft_future *const *fs, int n, int64_t deadline)
{
	int ret;

	if (!fs || n < 0)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		if (!fs[i])
			return -EINVAL;
	/* One park per future still pending: at most n, usually fewer. */
	for (int i = 0; i < n; i++) {
		ret = wait_one(fs[i], deadline, WAIT_FUTURES, fs);
		if (ret < 0)
			return ret;
	}
	ck_pr_fence_load();
	return 0;
}

#define ANY_STACK_RECS 8

int
weft_wait_any(struct weft_future *const *fs, int n, int64_t deadline)
{
	struct weft_task *self = weft__task_self();
	struct fwait stack_recs[ANY_STACK_RECS];
	struct fwait *recs = stack_recs;
	struct weft__waiter wt;
	int ret, linked = 0;

	if (!fs || n < 1)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		if (!fs[i])
			return -EINVAL;
	/* Complete already: the lowest index, without parking. */
	for (int i = 0; i < n; i++) {
		if (state_final(ck_pr_load_32(&fs[i]->state))) {
			ck_pr_fence_load();
			return i;
		}
	}
	if (n > ANY_STACK_RECS) {
		recs = malloc(sizeof(*recs) * (size_t)n);
		if (!recs)
			return -ENOMEM;
	}
	if (self)
		weft__wait_note(self, WAIT_FUTURES, fs);
	/*
	 * Prepare once, then link a record into each future.  A future
	 * found complete while linking wakes the shared waiter itself (it
	 * competes with real completers like any other waker); the wait
	 * below then returns at once with the winner's index.
	 */
	weft__waiter_prepare_as(&wt, self);
	for (int i = 0; i < n; i++) {
		struct weft_future *f = fs[i];

		recs[i].wt = &wt;
		recs[i].index = i;
		recs[i].linked = false;
		weft__spin_lock(&f->lock, WEFT_RANK_FUTURE);
		if (state_final(ck_pr_load_32(&f->state))) {
			(void)weft__waiter_wake(&wt, i);
			weft__spin_unlock(&f->lock);
			break;
		}
		link_locked(f, &recs[i]);
		weft__spin_unlock(&f->lock);
		linked = i + 1;
	}
	ret = weft__waiter_wait(&wt, NULL, NULL, deadline);
	/*
	 * Relock every future we linked into, even where the record is
	 * gone: its completer may still be inside weft__waiter_wake().
	 */
	for (int i = 0; i < linked; i++) {
		weft__spin_lock(&fs[i]->lock, WEFT_RANK_FUTURE);
		unlink_locked(fs[i], &recs[i]);
		weft__spin_unlock(&fs[i]->lock);
	}
	if (recs != stack_recs)
		free(recs);
	if (self)
		weft__wait_note(self, WAIT_NONE, NULL);
	if (ret >= 0)
		ck_pr_fence_load();
	return ret;
}

/*
 * Task futures
 */

static int
task_future_cancel(struct weft_future *f, void *owner)
{
	(void)f;
	return weft_cancel(owner);
}

struct weft_future *
weft__task_future_alloc(void)
{
	return future_alloc(&task_future_ops, NULL);
}

struct weft_future *
weft_task_future(struct weft_task *t)
{
	struct weft_future *f;

	if (!t)
		return NULL;
	f = ck_pr_load_ptr(&t->fut);
	if (f)
		return f;
	f = weft__task_future_alloc();
	if (!f)
		return NULL;
	return weft__task_future_attach(t, f);
}

struct weft_future *
weft__task_future_attach(struct weft_task *t, struct weft_future *f)
{
	struct weft_future *old;
	uint32_t st;

	f->owner = t;
	weft__spin_lock(&t->lock, WEFT_RANK_TASK);
	old = t->fut;
	if (!old) {
		/*
		 * Full barrier (fas): pairs with the state CAS in
		 * startable(), which then loads t->fut; either it sees the
		 * future, or we see the task RUNNING below.
		 */
		ck_pr_fas_ptr(&t->fut, f);
	}
	st = ck_pr_load_32(&t->state);
	weft__spin_unlock(&t->lock);
	if (old) {
		free(f);
		return old;
	}
	/*
	 * The exit paths read t->fut under t->lock after storing the final
	 * state: a task that finished before the install is completed here.
	 */
	if (st == WEFT_DONE)
		complete(f, t->result, 0, false);
	else if (st == WEFT_CANCELLED)
		complete(f, NULL, 0, true);
	else if (st != WEFT_PENDING)
		weft__future_running(f);
	return f;
}

struct weft_task *
weft__future_owner_task(const struct weft_future *f)
{
	if (!f || f->ops != &task_future_ops)
		return NULL;
	return ck_pr_load_ptr(&((struct weft_future *)f)->owner);
}

/*
 * The descriptor of t is being freed: forget it as the owner and drop its
 * reference.  Any thread.
 */
void
weft__task_drop_future(struct weft_task *t)
{
	struct weft_future *f = t->fut;

	if (!f)
		return;
	t->fut = NULL;
	weft__spin_lock(&f->lock, WEFT_RANK_FUTURE);
	ck_pr_store_ptr(&f->owner, NULL);
	weft__spin_unlock(&f->lock);
	weft_future_release(f);
}

int
weft_join_for(struct weft_task *t, void **result, int64_t deadline,
	      unsigned int flags)
{
	struct weft_task *self = weft__task_self();
	int64_t scope;
	bool cancelled;
	int ret;

	if (!self)
		return -EPERM;
	if (!t || (flags & ~(unsigned int)WEFT_JOIN_CANCEL))
		return -EINVAL;
	weft__wait_note(self, WAIT_JOIN, t);
	ret = weft_join(t, result, deadline);
	/*
	 * A caller cancelled before or during the first wait gets -ECANCELED
	 * from weft_join() with t still running: with the flag, t must not
	 * escape this call either (its caller is about to free what t uses).
	 */
	if ((ret != -ETIMEDOUT && ret != -ECANCELED) ||
	    !(flags & WEFT_JOIN_CANCEL))
		return ret;
	if (ret == -ECANCELED) {
		weft_cancel(t);
		cancelled = weft__shield_begin(self);
		scope = weft__scope_suspend(self);
		while (weft_join(t, NULL, WEFT_DEADLINE_NONE) == -ECANCELED)
			cancelled |= weft__shield_hit(self);
		weft__scope_resume(self, scope);
		weft__shield_end(self, cancelled);
		return -ECANCELED;
	}
	weft_cancel(t);
	/*
	 * Await it without a deadline, even if the caller is cancelled
	 * meanwhile: the handle must not escape this call.
	 */
	cancelled = weft__shield_begin(self);
	scope = weft__scope_suspend(self);
	for (;;) {
		weft__wait_note(self, WAIT_JOIN, t);
		ret = weft_join(t, NULL, WEFT_DEADLINE_NONE);
		if (ret != -ECANCELED)
			break;
		cancelled |= weft__shield_hit(self);
	}
	weft__scope_resume(self, scope);
	weft__shield_end(self, cancelled);
	return -ETIMEDOUT;
}

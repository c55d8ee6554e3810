/* SPDX-License-Identifier: MIT */
/*
 * Structured groups (libdill's bundles, Trio's nurseries, Go's errgroup):
 * tasks spawned into a group are waited for and cancelled together, and
 * none outlives weft_group_free().
 *
 * Each member is a task with a handle, which the group holds while the
 * member is linked into its list (so weft_group_cancel() can reach it).  A
 * member's end is observed through its task future's completion hook
 * (weft__future_hook): that fires both when the member returns and when it
 * was cancelled before it ran (a task that never runs has no code of its
 * own to report with).  The hook unlinks the member, records the first
 * failure, wakes the group's waiters when the last member ends, then gives
 * up the handle.
 *
 * Locks: group->lock (WEFT_RANK_GROUP, io/base.h).  Members are
 * cancelled and waiters woken under it; the hooks run after the future's
 * lock is released, so the two never nest.
 */
#include <errno.h>
#include <stdint.h>

#include "runtime/future.h"
#include "sched/park.h"

struct member {
	/* Immutable after weft_group_spawn(). */
	struct weft_group *g;
	weft_group_fn fn;		/* an int member, or NULL */
	weft_fn vfn;			/* a valued member (spawn_future) */
	void *arg;
	/* Under g->lock. */
	struct weft_task *task;		/* the handle; NULL until spawned
					 * (stored by the spawner and by the
					 * member itself, whichever is first) */
	struct member *next;
	struct member *prev;
	bool cancelled;			/* cancelled by the group */
};

/* A waiter of weft_group_wait/free: on its stack, under g->lock. */
struct gwait {
	struct weft__waiter wt;
	struct gwait *next;
	struct gwait *prev;
	bool linked;
};

struct weft_group {
	ck_spinlock_t lock;
	unsigned int flags;		/* immutable */
	/* Members not yet ended: written under lock, read atomically. */
	uint32_t live;
	/* Under lock. */
	int first_err;			/* first failure, 0 if none */
	bool cancelled;			/* cancel all, now and later */
	struct member *members;
	struct gwait *w_head;
	struct gwait *w_tail;
};

static void
spin_unlock(void *lk)
{
	weft__spin_unlock(lk);
}

int
weft_group_make(struct weft_group **out, unsigned int flags)
{
	struct weft_group *g;

	if (!out || (flags & ~(unsigned int)WEFT_GROUP_CANCEL_ON_ERROR))
		return -EINVAL;
	if (WEFT_UNLIKELY(weft__fail_alloc()))
		return -ENOMEM;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	ck_spinlock_init(&g->lock);
	g->flags = flags;
	*out = g;
	return 0;
}

/* Cancel every member not cancelled yet.  Caller holds g->lock. */
static void
cancel_all_locked(struct weft_group *g)
{
	WEFT_ASSERT_HELD(&g->lock);
	g->cancelled = true;
	for (struct member *m = g->members; m; m = m->next) {
		if (m->cancelled)
			continue;
		m->cancelled = true;
		/* NULL: not spawned yet; weft_group_spawn() cancels it. */
		if (m->task)
			weft_cancel(m->task);
	}
}

static void
unlink_member_locked(struct weft_group *g, struct member *m)
{
	WEFT_ASSERT_HELD(&g->lock);
	if (m->prev)
		m->prev->next = m->next;
	else
		g->members = m->next;
	if (m->next)
		m->next->prev = m->prev;
	m->next = m->prev = NULL;
}

/* A member ended: drop it from the live count.  Caller holds g->lock. */
static void
member_gone_locked(struct weft_group *g)
{
	struct gwait *r;

	WEFT_ASSERT_HELD(&g->lock);

	ck_pr_store_32(&g->live, g->live - 1);
	if (g->live != 0)
		return;
	while ((r = g->w_head) != NULL) {
		g->w_head = r->next;
		if (g->w_head)
			g->w_head->prev = NULL;
		else
			g->w_tail = NULL;
		r->next = r->prev = NULL;
		r->linked = false;
		(void)weft__waiter_wake(&r->wt, 0);
	}
}

/*
 * The completion hook of a member's task future: runs once, in the task's
 * exit path (or where it was finished as cancelled, or in
 * weft_group_spawn() if it ended before the hook was set).  Must not park.
 */
static void
member_done(struct weft_future *f, void *arg)
{
	struct member *m = arg;
	struct weft_group *g = m->g;
	struct weft_task *t;
	void *v = NULL;
	int ret;

	ret = weft_future_result(f, &v);
	/* An int member's value is its result; a valued member's is not. */
	if (ret == 0 && !m->vfn)
		ret = (int)(intptr_t)v;
	weft__spin_lock(&g->lock, WEFT_RANK_GROUP);
	unlink_member_locked(g, m);
	if (ret < 0 && !m->cancelled && g->first_err == 0) {
		g->first_err = ret;
		if (g->flags & WEFT_GROUP_CANCEL_ON_ERROR)
			cancel_all_locked(g);
	}
	t = m->task;
	member_gone_locked(g);
	/* Last touch of g: a waiter may free it once it has the lock. */
	weft__spin_unlock(&g->lock);
	weft_detach(t);
	free(m);
}

static void *
member_main(void *arg)
{
	struct member *m = arg;
	struct weft_group *g = m->g;

	/*
	 * The spawner stores m->task once weft_spawn() returns, which may be
	 * after we run: store it too (the same value, under the lock), so
	 * that weft_group_free() from inside this member sees -EDEADLK
	 * instead of waiting for itself.  g outlives every live member.
	 */
	weft__spin_lock(&g->lock, WEFT_RANK_GROUP);
	m->task = weft_self();
	weft__spin_unlock(&g->lock);
	if (m->vfn)
		return m->vfn(m->arg);
	return (void *)(intptr_t)m->fn(m->arg);
}

/*
 * Spawn a member running fn (an int member) or vfn (a valued one); with
 * `out`, hand back a reference to its task future.  Any thread.
 */
static int
spawn_member(struct weft_group *g, weft_group_fn fn, weft_fn vfn, void *arg,
	     const struct weft_spawn_opts *opts, struct weft_future **out)
{
	struct weft_future *f;
	struct weft_task *t;
	struct member *m;
	bool cancel;
	int ret;

	if (WEFT_UNLIKELY(weft__fail_alloc()))
		return -ENOMEM;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	/* Allocated first: nothing may fail once the member exists. */
	f = weft__task_future_alloc();
	if (!f) {
		free(m);
		return -ENOMEM;
	}
	m->g = g;
	m->fn = fn;
	m->vfn = vfn;
	m->arg = arg;
	weft__spin_lock(&g->lock, WEFT_RANK_GROUP);
	if (g->cancelled) {
		weft__spin_unlock(&g->lock);
		weft_future_release(f);
		free(m);
		return -ECANCELED;
	}
	m->next = g->members;
	if (m->next)
		m->next->prev = m;
	g->members = m;
	ck_pr_store_32(&g->live, g->live + 1);
	weft__spin_unlock(&g->lock);

	ret = weft_spawn(&t, member_main, m, opts);
	if (ret < 0) {
		weft__spin_lock(&g->lock, WEFT_RANK_GROUP);
		unlink_member_locked(g, m);
		member_gone_locked(g);
		weft__spin_unlock(&g->lock);
		weft_future_release(f);
		free(m);
		return ret;
	}
	weft__spin_lock(&g->lock, WEFT_RANK_GROUP);
	m->task = t;
	cancel = m->cancelled;
	weft__spin_unlock(&g->lock);
	if (cancel)
		weft_cancel(t);
	/* We hold the handle: t (and its future) stay alive until the hook. */
	f = weft__task_future_attach(t, f);
	/* Before the hook, which may run (and let t go) at once. */
	if (out)
		*out = weft_future_retain(f);
	weft__future_hook(f, member_done, m);
	return 0;
}

int
weft_group_spawn(struct weft_group *g, weft_group_fn fn, void *arg,
		 const struct weft_spawn_opts *opts)
{
	if (!g || !fn)
		return -EINVAL;
	return spawn_member(g, fn, NULL, arg, opts, NULL);
}

int
weft_group_spawn_future(struct weft_group *g, struct weft_future **out,
			weft_fn fn, void *arg,
			const struct weft_spawn_opts *opts)
{
	if (!g || !out || !fn)
		return -EINVAL;
	return spawn_member(g, NULL, fn, arg, opts, out);
}

/*
 * Wait until no member is live: the first failure or 0, -ETIMEDOUT,
 * -ECANCELED (the caller).  Any thread.
 */
static int
group_wait(struct weft_group *g, int64_t deadline)
{
	struct weft_task *self = weft__task_self();
	struct gwait r;
	int ret;

	weft__spin_lock(&g->lock, WEFT_RANK_GROUP);
	while (g->live != 0) {
		if (self)
			weft__wait_note(self, WAIT_GROUP, g);
		weft__waiter_prepare_as(&r.wt, self);
		r.next = NULL;
		r.prev = g->w_tail;
		if (g->w_tail)
			g->w_tail->next = &r;
		else
			g->w_head = &r;
		g->w_tail = &r;
		r.linked = true;
		ret = weft__waiter_wait(&r.wt, spin_unlock, &g->lock,
					deadline);
		weft__spin_lock(&g->lock, WEFT_RANK_GROUP);
		if (r.linked) {
			if (r.prev)
				r.prev->next = r.next;
			else
				g->w_head = r.next;
			if (r.next)
				r.next->prev = r.prev;
			else
				g->w_tail = r.prev;
			r.linked = false;
		}
		if (self)
			weft__wait_note(self, WAIT_NONE, NULL);
		if (ret < 0 && g->live != 0) {
			weft__spin_unlock(&g->lock);
			return ret;
		}
	}
	ret = g->first_err;
	weft__spin_unlock(&g->lock);
	return ret;
}

int
weft_group_wait(struct weft_group *g, int64_t deadline)
{
	if (!g)
		return -EINVAL;
	return group_wait(g, deadline);
}

int
weft_group_cancel(struct weft_group *g)
{
	if (!g)
		return -EINVAL;
	weft__spin_lock(&g->lock, WEFT_RANK_GROUP);
	cancel_all_locked(g);
	weft__spin_unlock(&g->lock);
	return 0;
}

int
weft_group_live(const struct weft_group *g)
{
	if (!g)
		return -EINVAL;
	return (int)ck_pr_load_32(&((struct weft_group *)g)->live);
}

int
weft_group_free(struct weft_group *g)
{
	struct weft_task *self = weft__task_self();
	bool cancelled = false;
	int64_t scope;
	int ret;

	if (!g)
		return -EINVAL;
	weft__spin_lock(&g->lock, WEFT_RANK_GROUP);
	for (struct member *m = g->members; self && m; m = m->next) {
		if (m->task == self) {
			weft__spin_unlock(&g->lock);
			return -EDEADLK;
		}
	}
	cancel_all_locked(g);
	weft__spin_unlock(&g->lock);
	/*
	 * Wait for the cancelled members without a deadline, even if the
	 * caller is cancelled meanwhile: nothing may outlive the group.
	 */
	if (self)
		cancelled = weft__shield_begin(self);
	scope = weft__scope_suspend(self);
	while ((ret = group_wait(g, WEFT_DEADLINE_NONE)) == -ECANCELED &&
	       self && ck_pr_load_32(&g->live) != 0)
		cancelled |= weft__shield_hit(self);
	weft__scope_resume(self, scope);
	if (self)
		weft__shield_end(self, cancelled);
	free(g);
	return ret;
}

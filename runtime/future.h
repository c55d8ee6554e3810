/* SPDX-License-Identifier: MIT */
/*
 * Futures, the runtime's side (runtime/future.c).  Private to weft.
 *
 * A plain future (weft_future_make) is completed by whoever calls
 * weft_future_set/fail/cancel.  An "owned" future is completed only by its
 * owner, the runtime code that made it: a task (its task future) or a
 * blocking-pool job.  The owner moves it PENDING -> RUNNING -> DONE or
 * CANCELLED through the calls below; the public set/fail return -EPERM on
 * it, and the public cancel asks the owner through ops->cancel.
 */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include "sched/park.h"

struct weft__future_ops {
	/*
	 * weft_future_cancel() on an owned future that is not complete.
	 * Return 0 if the owner has completed it as cancelled or will
	 * complete it soon (a task: weft_cancel() was called), or -EBUSY if
	 * the work cannot be stopped (a running pool job).  Called without
	 * any future lock held, from any thread.
	 */
	int (*cancel)(struct weft_future *f, void *owner);
};

/*
 * Make an owned future in state PENDING, with one reference (the
 * caller's).  Returns 0 or -ENOMEM.  Any thread.
 */
int weft__future_make_owned(struct weft_future **out,
			    const struct weft__future_ops *ops, void *owner);

/*
 * weft__future_running(f): PENDING -> RUNNING (no-op in any other state).
 * weft__future_complete(f, value, err, cancelled): complete an owned future
 * with `value` if err == 0, as failed with `err` (< 0) otherwise, or as
 * WEFT_FUTURE_CANCELLED with `cancelled`; wakes the waiters and schedules
 * the done callbacks (never runs them here).  Both are declared in
 * sched/park.h, since the core calls them for a task's future.
 */

/*
 * The task that will complete `f` (a task future's task), or NULL.  For
 * the deadlock detector's wait-for graph; read while the world is idle.
 */
struct weft_task *weft__future_owner_task(const struct weft_future *f);

/*
 * Run `fn(f, arg)` once when `f` completes, inside the completing call
 * (after the waiters are woken, with no lock held), or at once in the
 * caller if `f` is complete already.  One hook per future.  For runtime
 * code that must account for a completion synchronously (groups); fn must
 * not block.  The caller holds a reference to f.  Any thread.
 */
void weft__future_hook(struct weft_future *f,
		       void (*fn)(struct weft_future *f, void *arg),
		       void *arg);

/*
 * weft_task_future() in two steps for callers that must not fail after
 * spawning: allocate a task future (NULL: -ENOMEM) before, attach it
 * after.  attach returns t's future: `f`, or the one t already had (then
 * `f` is freed).  Any thread holding t's handle.
 */
struct weft_future *weft__task_future_alloc(void);
struct weft_future *weft__task_future_attach(struct weft_task *t,
					     struct weft_future *f);

#endif /* WEFT_FUTURE_H */

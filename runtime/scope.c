/* SPDX-License-Identifier: MIT */
/*
 * Deadline scopes (weft.h, "Deadline scopes").  A scope is a struct on the
 * entering task's stack, linked to the one entered before it; the task
 * keeps the earliest deadline of the chain in t->scope_deadline, which
 * weft__scope_clamp() (sched/park.h) applies where every blocking call
 * arms its deadline: weft__park() for the parks, do_op() for I/O.  So a
 * scope costs nothing to a call outside one but a load and a compare, and
 * entering or leaving one is two stores.  Everything here is owner-only
 * (the task and its own scopes), but weft_scope_expired().
 */
#include <errno.h>
#include <stddef.h>

#include "sched/park.h"

int
weft_scope_enter(struct weft_scope *s, int64_t deadline)
{
	struct weft_task *t = weft__task_self();

	if (!s)
		return -EINVAL;
	if (!t)
		return -EPERM;
	s->deadline = deadline;
	s->outer_ = t->scope_deadline;
	s->parent_ = t->scope;
	s->task_ = t;
	t->scope = s;
	t->scope_deadline = weft__scope_clamp(t, deadline);
	return 0;
}

int
weft_scope_exit(struct weft_scope *s)
{
	struct weft_task *t = weft__task_self();

	if (!t)
		return -EPERM;
	if (!s || t->scope != s || s->task_ != t)
		return -EINVAL;
	t->scope = s->parent_;
	t->scope_deadline = s->outer_;
	return 0;
}

int64_t
weft_scope_deadline(void)
{
	struct weft_task *t = weft__task_self();

	return t ? t->scope_deadline : WEFT_DEADLINE_NONE;
}

bool
weft_scope_expired(const struct weft_scope *s)
{
	return s && s->deadline != WEFT_DEADLINE_NONE &&
	       weft_now() >= s->deadline;
}

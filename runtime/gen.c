/* SPDX-License-Identifier: MIT */
/*
 * Generators: Python's generator protocol on a private stack.
 *
 * A generator is not a task.  Its body runs on its own stack, but in the
 * name of whichever task resumes it: weft_gen_next()/weft_gen_send() switch
 * the calling context (a task's stack, or an outer generator's stack) to the
 * body's saved context, and weft_gen_yield() switches straight back.  The
 * workers never see a generator; w->cur stays the resuming task throughout.
 *
 * If the body blocks (weft_sleep, I/O, a channel), the *task* parks with
 * its stack pointer inside the generator's stack and may be resumed on
 * another worker thread; the body then yields there.  Hence every piece of
 * state lives in struct weft_gen, never in a thread-local, and the worker is
 * looked up afresh after every switch.
 *
 * The task's stack and fiber identity while a body runs.  The switch path
 * (sched/worker.c) treats t->stack and t->fib as the description of the
 * stack t's code is running on: after_switch() checks the canary of
 * t->stack against the sp saved on t's park, the SIGSEGV handler names an
 * overflow by t->stack's bounds, and whoever resumes t tells ASan
 * (t->fib.stack_lo/size) and TSan (t->fib.tsan) which fiber it enters.
 * So resuming a generator swaps the generator's stack and fiber into the
 * task for as long as the body runs (the task's own are kept in the
 * generator as caller_stack/caller_fib) and switching back restores them.
 * This nests: a body resuming another generator saves the outer
 * generator's stack and fiber the same way, a strict stack discipline.
 *
 * States (g->state, atomic):
 *
 *	CREATED    made; never resumed; holds a stack with no frame yet
 *	           (the first frame is built on the first resume).
 *	RUNNING    a resumer won the CAS from CREATED or SUSPENDED and the
 *	           body runs (or is about to run) on behalf of that resumer.
 *	SUSPENDED  the body's context is saved in g->sp (in weft_gen_yield).
 *	CLOSED     the body returned (or was closed before it started); the
 *	           stack has gone back to the pool if a worker was at hand.
 *
 * Only the resumer that moved the state to RUNNING touches the switch
 * fields below; it publishes them with the release store of SUSPENDED or
 * CLOSED, which it makes only after the body has switched back (never from
 * the body itself: its context is not saved until that switch completes,
 * as after_switch() marks a parked task SAVED only on the next context).
 * The next resumer's CAS and acquire fence (gen_acquire) takes them.
 *
 * Errors beyond those weft.h lists:
 *  - weft_gen_close() returns -EPROTO when the body, told to finish,
 *    yields again (Python's RuntimeError "generator ignored
 *    GeneratorExit"); the value is dropped and the body stays SUSPENDED
 *    at that yield, so a later close asks it again.  Closing a SUSPENDED
 *    generator outside coroutine context is -EPERM (its cleanup must run
 *    in a task).
 *  - weft_gen_yield() and weft_gen_yield_from() return -EPERM unless
 *    called by the body of g itself, on g's stack.  yield_from passes on
 *    sub's -EBUSY or -EPIPE (a sub already closed: its result is gone).
 *  - weft_gen_free() of a generator that still holds its stack (CREATED)
 *    is -EPERM outside coroutine context: stacks go back to a worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched/park.h"

/* Why the body last switched back to its resumer. */
enum {
	GEN_BACK_YIELD = 1,
	GEN_BACK_RETURN = 2,
};

struct weft_gen {
	/* Immutable after weft_gen_make(). */
	weft_gen_fn fn;
	void *arg;
	/*
	 * The body's fiber (sanitizers): set by make; its TSan fiber is
	 * destroyed (fib.tsan = NULL) by whoever makes the state CLOSED.
	 */
	struct weft__fiber fib;

	/*
	 * The body's stack: taken at make by the making worker, given back
	 * by whichever worker's task sees the body return (or at free).
	 * Written only by the owner of RUNNING, or by make/close/free on a
	 * CREATED or CLOSED generator.
	 */
	struct weft__stack *stack;

	/* Atomic (ck_pr): enum weft_gen_state.  See the top of the file. */
	uint32_t state;

	/*
	 * Switch state.  Written and read only by the current owner of
	 * RUNNING (the resumer, and the body running on its behalf on the
	 * same logical thread of control); handed on through `state`.
	 */
	void *sp;		/* the body's context while SUSPENDED */
	void *caller_sp;	/* the resumer's context while RUNNING */
	/* The task's t->stack and t->fib from before the resume. */
	struct weft__stack *caller_stack;
	struct weft__fiber caller_fib;
	void *xfer;		/* value sent in, or yielded/returned out */
	int back;		/* GEN_BACK_*, set by the body */
	bool closing;		/* this resume is weft_gen_close()'s */
};

/*
 * Switch from the current context (saving it in *from_sp) to `to_sp`,
 * telling the sanitizers it enters fiber `to`.  weft__switch() hands its
 * `w` on as the pass value; generators do not use it (the resumed side
 * calls weft__worker_self() when it needs its worker).
 */
static inline void
gen_switch(void **from_sp, void *to_sp, struct weft__fiber *to, bool exiting)
{
	(void)weft__switch(from_sp, to_sp, to, exiting, NULL);
}

/* The body's first frame.  `pass` is unused (see gen_switch). */
static void
gen_entry(void *arg, void *pass)
{
	struct weft_gen *g = arg;
	void *ret;

	(void)pass;
#if defined(WEFT_ASAN)
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
	ret = g->fn(g, g->arg);
	g->xfer = ret;
	g->back = GEN_BACK_RETURN;
	/* Never resumed again: ASan drops this fiber's fake stack. */
	gen_switch(&g->sp, g->caller_sp, &g->caller_fib, true);
	weft__panic("closed generator %p resumed", (void *)g);
}

/* Give the stack and the TSan fiber back.  Needs a worker for the stack. */
static void
gen_release(struct weft_gen *g, struct weft__worker *w)
{
#if defined(WEFT_TSAN)
	if (g->fib.tsan) {
		__tsan_destroy_fiber(g->fib.tsan);
		g->fib.tsan = NULL;
	}
#endif
	if (g->stack && w) {
		weft__stack_put(w, g->stack);
		g->stack = NULL;
	}
}

int
weft_gen_make(struct weft_gen **out, weft_gen_fn fn, void *arg,
	      const struct weft_gen_opts *opts)
{
	struct weft__worker *w = weft__worker_self();
	size_t size = opts ? opts->stack_size : 0;
	struct weft_gen *g;
	int err = 0;

	if (!w || !weft__worker_task(w))
		return -EPERM;
	if (!out || !fn)
		return -EINVAL;
	if (opts) {
		for (size_t i = 0; i < 4; i++)
			if (opts->reserved_[i])
				return -EINVAL;
		if (size && (size < 16 * 1024 || size > ((size_t)1 << 30)))
			return -EINVAL;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->stack = weft__stack_take(w, size, &err);
	if (!g->stack) {
		free(g);
		return err ? err : -ENOMEM;
	}
	g->fn = fn;
	g->arg = arg;
#if defined(WEFT_ASAN)
	g->fib.stack_lo = g->stack->lo;
	g->fib.stack_size = g->stack->size;
#endif
#if defined(WEFT_TSAN)
	g->fib.tsan = __tsan_create_fiber(0);
#endif
	ck_pr_store_32(&g->state, WEFT_GEN_CREATED);
	*out = g;
	return 0;
}

/*
 * Move g from state `from` to RUNNING.  On success the caller owns the
 * switch fields; the fence pairs with the release fence before the last
 * owner's store of SUSPENDED or CLOSED (ck_pr_cas_32 need not be a full
 * barrier on every architecture).
 */
static bool
gen_acquire(struct weft_gen *g, uint32_t from)
{
	if (!ck_pr_cas_32(&g->state, from, WEFT_GEN_RUNNING))
		return false;
	ck_pr_fence_acquire();
	return true;
}

/*
 * Run the body of g (whose state we moved to RUNNING; `from` is the state
 * we moved it from) until it switches back.  Returns 1 (yielded) or 0
 * (returned) with *out set.  Must be called from a coroutine.
 */
static int
gen_resume(struct weft_gen *g, uint32_t from, struct weft_task *t,
	   void *in, bool closing, void **out)
{
	void *v;
	int back;

	if (from == WEFT_GEN_CREATED)
		g->sp = weft__ctx_make(g->stack->lo + g->stack->size,
				       gen_entry, g);
	g->xfer = in;
	g->closing = closing;
	g->back = 0;
	/* The body runs in t's name on g's stack: see the top of the file. */
	g->caller_stack = t->stack;
	g->caller_fib = t->fib;
	t->stack = g->stack;
	t->fib = g->fib;
	gen_switch(&g->caller_sp, g->sp, &g->fib, false);
	/*
	 * Back, possibly on another worker if the body parked.  The body's
	 * context is saved now (or gone, if it returned): only from here on
	 * may another resumer see SUSPENDED.  First the overflow check of an
	 * unguarded stack at its saved sp, as after_switch() does for a task
	 * (while t->stack still names g's stack, for the report).
	 */
	weft__stack_check(t, g->stack, g->sp);
	t->stack = g->caller_stack;
	t->fib = g->caller_fib;
	back = g->back;
	v = g->xfer;
	/*
	 * Release: orders every switch field above (and the body's saved
	 * context) before the new state.  Pairs with the acquire fence after
	 * the next resumer's CAS (gen_acquire).
	 */
	ck_pr_fence_release();
	if (back == GEN_BACK_YIELD) {
		ck_pr_store_32(&g->state, WEFT_GEN_SUSPENDED);
		if (out)
			*out = v;
		return 1;
	}
	WEFT_ASSERT(back == GEN_BACK_RETURN);
	gen_release(g, weft__worker_self());
	ck_pr_fence_release();
	ck_pr_store_32(&g->state, WEFT_GEN_CLOSED);
	if (out)
		*out = v;
	return 0;
}

int
weft_gen_send(struct weft_gen *g, void *in, void **out)
{
	struct weft_task *t = weft__task_self();
	uint32_t s;

	if (!t)
		return -EPERM;
	if (!g)
		return -EINVAL;
	for (;;) {
		s = ck_pr_load_32(&g->state);
		switch (s) {
		case WEFT_GEN_CLOSED:
			return -EPIPE;
		case WEFT_GEN_RUNNING:
			return -EBUSY;
		case WEFT_GEN_CREATED:
			/* Python's "can't send non-None to a just-started". */
			if (in)
				return -EINVAL;
			break;
		case WEFT_GEN_SUSPENDED:
			break;
		default:
			return -EINVAL;
		}
		if (gen_acquire(g, s))
			return gen_resume(g, s, t, in, false, out);
	}
}

int
weft_gen_next(struct weft_gen *g, void **out)
{
	return weft_gen_send(g, NULL, out);
}

/*
 * Whether the caller runs in the body of g, on g's own stack (not in a
 * generator that g's body resumed, nor in g's resumer).  `here` is a frame
 * address of the caller.
 */
static bool
in_body(const struct weft_gen *g, const char *here)
{
	return ck_pr_load_32(&g->state) == WEFT_GEN_RUNNING && g->stack &&
	       here >= g->stack->lo && here < g->stack->lo + g->stack->size;
}

int
weft_gen_yield(struct weft_gen *g, void *value, void **sent)
{
	if (!g)
		return -EINVAL;
	if (!in_body(g, __builtin_frame_address(0)))
		return -EPERM;
	g->xfer = value;
	g->back = GEN_BACK_YIELD;
	gen_switch(&g->sp, g->caller_sp, &g->caller_fib, false);
	/* Resumed by weft_gen_send() or weft_gen_close(), on any worker. */
	if (g->closing) {
		if (sent)
			*sent = NULL;
		return -ECANCELED;
	}
	if (sent)
		*sent = g->xfer;
	return 0;
}

int
weft_gen_yield_from(struct weft_gen *g, struct weft_gen *sub, void **result)
{
	void *in = NULL;
	void *v;
	int ret;

	if (!g || !sub || g == sub)
		return -EINVAL;
	/* Before sub is resumed: its first value must be able to go out. */
	if (!in_body(g, __builtin_frame_address(0)))
		return -EPERM;
	for (;;) {
		/* The first resume sends NULL, as Python's next(). */
		ret = weft_gen_send(sub, in, &v);
		if (ret == 0) {
			if (result)
				*result = v;
			return 0;
		}
		if (ret < 0)
			return ret;
		ret = weft_gen_yield(g, v, &in);
		if (ret == -ECANCELED) {
			/* Python closes the delegate first (PEP 380). */
			(void)weft_gen_close(sub);
			return -ECANCELED;
		}
		if (ret < 0)
			return ret;
	}
}

int
weft_gen_close(struct weft_gen *g)
{
	struct weft_task *t = weft__task_self();
	uint32_t s;
	int ret;

	if (!g)
		return -EINVAL;
	for (;;) {
		s = ck_pr_load_32(&g->state);
		switch (s) {
		case WEFT_GEN_CLOSED:
			return 0;
		case WEFT_GEN_RUNNING:
			return -EBUSY;
		case WEFT_GEN_CREATED:
			if (!gen_acquire(g, s))
				continue;
			/* Never ran: nothing to unwind. */
			gen_release(g, weft__worker_self());
			ck_pr_fence_release();
			ck_pr_store_32(&g->state, WEFT_GEN_CLOSED);
			return 0;
		case WEFT_GEN_SUSPENDED:
			/* Running the body's cleanup needs a coroutine. */
			if (!t)
				return -EPERM;
			if (!gen_acquire(g, s))
				continue;
			ret = gen_resume(g, s, t, NULL, true, NULL);
			/*
			 * Yielded again instead of returning: Python's
			 * RuntimeError("generator ignored GeneratorExit").
			 * The body stays SUSPENDED at that yield (the value
			 * is dropped); a later close asks it again.
			 */
			return ret == 1 ? -EPROTO : 0;
		default:
			return -EINVAL;
		}
	}
}

enum weft_gen_state
weft_gen_state(const struct weft_gen *g)
{
	/* No generator: one that yields nothing more. */
	if (WEFT_UNLIKELY(!g))
		return WEFT_GEN_CLOSED;
	return (enum weft_gen_state)ck_pr_load_32(&g->state);
}

int
weft_gen_free(struct weft_gen *g)
{
	struct weft__worker *w;
	uint32_t s;

	if (WEFT_UNLIKELY(!g))
		return -EINVAL;
	s = ck_pr_load_32(&g->state);
	if (s != WEFT_GEN_CREATED && s != WEFT_GEN_CLOSED)
		return -EBUSY;
	w = weft__worker_self();
	/* A stack goes back to a worker's pool: none outside the runtime. */
	if (g->stack && !w)
		return -EPERM;
	gen_release(g, w);
	free(g);
	return 0;
}

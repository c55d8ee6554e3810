/* SPDX-License-Identifier: MIT */
/*
 * Tasks: spawn, join, detach, cancel, yield, sleep, and the life of a task
 * from its first switch-in (weft__task_start) to its exit.
 *
 * Reference counting: a task holds one reference for the runtime from spawn
 * until its exit has been finished on the next context (AS_EXIT), and one
 * for the handle while the user holds it (dropped by a successful join or by
 * detach).  The descriptor goes back to a per-worker cache when both are
 * gone.  The stack is separate: a spawn claims one (sched/stack.c,
 * "Claims": a spawn that returned 0 is a task that will run, and one whose
 * stack cannot be backed fails with -ENOMEM there, not later where nobody
 * hears it), the task takes it when it first runs and gives it back the
 * moment it exits, so a million tasks spawned and not yet run, or
 * finished and not yet joined, cost a descriptor each, not a stack.  A
 * stack of another size than the default is mapped at spawn.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sched/park.h"
#include "sched/sched.h"

#define ID_BLOCK 1024

int64_t
weft_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

struct weft_task *
weft__task_self(void)
{
	struct weft__worker *w = weft__worker_self();

	return w ? w->cur : NULL;
}

struct weft_task *
weft_self(void)
{
	return weft__task_self();
}

/*
 * Descriptor pool.  Descriptors are carved from chunks of TASK_CHUNK and
 * recycled, never handed back to malloc before the run ends (Go keeps dead
 * Gs the same way): a burst of a million short tasks would otherwise make
 * malloc trim its heap after every burst and fault it back in on the next.
 * Each worker keeps up to TASK_CACHE_MAX free descriptors (owner-only);
 * the excess, and threads that are not workers, go through the global list.
 */
#define TASK_CHUNK 256

#if defined(WEFT_ASAN)
/*
 * The ASan build poisons what a stale handle could read of a free
 * descriptor -- fn, arg, result, id, name: everything the runtime itself
 * never reads of a descriptor it does not hold (the park word, refs,
 * state and flags are read racily by design, see task_init) -- and keeps
 * QUARANTINE freed descriptors out of reuse, FIFO, as ASan does with
 * freed memory, so that a use after release finds the descriptor free
 * (and is refused or reported) instead of finding the next task on it.
 */
#define QUARANTINE 1024

static void
task_poison(struct weft_task *t, bool on)
{
	char *a = (char *)&t->fn, *b = (char *)&t->fib;
	char *c = (char *)&t->id, *d = (char *)&t->refs;

	if (on) {
		ASAN_POISON_MEMORY_REGION(a, (size_t)(b - a));
		ASAN_POISON_MEMORY_REGION(c, (size_t)(d - c));
	} else {
		ASAN_UNPOISON_MEMORY_REGION(a, (size_t)(b - a));
		ASAN_UNPOISON_MEMORY_REGION(c, (size_t)(d - c));
	}
}
#else
static inline void
task_poison(struct weft_task *t, bool on)
{
	(void)t;
	(void)on;
}
#endif

struct task_chunk {
	struct task_chunk *next;
	struct weft_task tasks[TASK_CHUNK];
};

static struct {
	pthread_mutex_t lock;
	/* Protected by lock. */
	struct weft_task *free;
	uint64_t nfree;
	struct task_chunk *chunks;
#if defined(WEFT_ASAN)
	struct weft_task *quar[QUARANTINE];	/* freed, not yet reusable */
	int nquar, qhead;
#endif
} tpool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/*
 * Refill w's cache (w == NULL: return one descriptor) from the global list,
 * or from a new chunk.  Takes tpool.lock.
 */
static __attribute__((noinline)) struct weft_task *
tpool_get(struct weft__worker *w)
{
	struct task_chunk *c = NULL;
	struct weft_task *t;
	int n;

	weft__mutex_lock(&tpool.lock, WEFT_RANK_TPOOL);
	if (!tpool.free) {
		c = malloc(sizeof(*c));
		if (!c) {
			weft__mutex_unlock(&tpool.lock);
			return NULL;
		}
		c->next = tpool.chunks;
		tpool.chunks = c;
		for (n = 0; n < TASK_CHUNK; n++) {
			c->tasks[n].park = 0;
			c->tasks[n].refs = 0;
			c->tasks[n].fut = NULL;
			c->tasks[n].next = tpool.free;
			tpool.free = &c->tasks[n];
			task_poison(&c->tasks[n], true);
		}
		tpool.nfree += TASK_CHUNK;
	}
	t = tpool.free;
	tpool.free = t->next;
	tpool.nfree--;
	/* A worker takes a batch with it. */
	for (n = 0; w && n < TASK_CHUNK - 1 && tpool.free; n++) {
		struct weft_task *x = tpool.free;

		tpool.free = x->next;
		tpool.nfree--;
		x->next = w->task_cache;
		w->task_cache = x;
		w->ntask_cache++;
	}
	weft__mutex_unlock(&tpool.lock);
	return t;
}

/* Executed only by worker w (or w == NULL on a foreign thread). */
static inline __attribute__((always_inline)) struct weft_task *
task_alloc(struct weft__worker *w)
{
	struct weft_task *t = w ? w->task_cache : NULL;

	WEFT_ASSERT_OWNER(w);
	if (WEFT_UNLIKELY(weft__fail_alloc()))
		return NULL;
	if (WEFT_LIKELY(t != NULL)) {
		w->task_cache = t->next;
		w->ntask_cache--;
	} else {
		t = tpool_get(w);
	}
	if (t)
		task_poison(t, false);
	return t;
}

static void
task_free(struct weft__worker *w, struct weft_task *t)
{
	int n;

	weft__task_drop_future(t);
	task_poison(t, true);
#if defined(WEFT_ASAN)
	weft__mutex_lock(&tpool.lock, WEFT_RANK_TPOOL);
	if (tpool.nquar < QUARANTINE) {
		tpool.quar[tpool.nquar++] = t;
		weft__mutex_unlock(&tpool.lock);
		return;
	}
	/* Out goes the oldest; the ring's head moves on. */
	{
		struct weft_task *old = tpool.quar[tpool.qhead];

		tpool.quar[tpool.qhead] = t;
		tpool.qhead = (tpool.qhead + 1) % QUARANTINE;
		t = old;
	}
	weft__mutex_unlock(&tpool.lock);
#endif

	if (w && w->ntask_cache < TASK_CACHE_MAX) {
		t->next = w->task_cache;
		w->task_cache = t;
		w->ntask_cache++;
		return;
	}
	weft__mutex_lock(&tpool.lock, WEFT_RANK_TPOOL);
	t->next = tpool.free;
	tpool.free = t;
	tpool.nfree++;
	/* Cache full: hand half of it over too. */
	for (n = 0; w && n < TASK_CACHE_MAX / 2; n++) {
		struct weft_task *x = w->task_cache;

		w->task_cache = x->next;
		w->ntask_cache--;
		x->next = tpool.free;
		tpool.free = x;
		tpool.nfree++;
	}
	weft__mutex_unlock(&tpool.lock);
}

/* Executed only by w at the end of its life: back to the global list. */
void
weft__task_cache_free(struct weft__worker *w)
{
	struct weft_task *t;

	weft__mutex_lock(&tpool.lock, WEFT_RANK_TPOOL);
	while ((t = w->task_cache)) {
		w->task_cache = t->next;
		t->next = tpool.free;
		tpool.free = t;
		tpool.nfree++;
	}
	w->ntask_cache = 0;
	weft__mutex_unlock(&tpool.lock);
}

/* Free every chunk.  weft_run teardown, once every task is gone. */
void
weft__task_pool_teardown(void)
{
	struct task_chunk *c, *next;

	weft__mutex_lock(&tpool.lock, WEFT_RANK_TPOOL);
	for (c = tpool.chunks; c; c = next) {
		next = c->next;
		/* Handles never given up: their futures go with the run. */
		for (int i = 0; i < TASK_CHUNK; i++)
			if (c->tasks[i].refs != 0)
				weft__task_drop_future(&c->tasks[i]);
		free(c);
	}
	tpool.chunks = NULL;
	tpool.free = NULL;
	tpool.nfree = 0;
#if defined(WEFT_ASAN)
	tpool.nquar = tpool.qhead = 0;
#endif
	weft__mutex_unlock(&tpool.lock);
}

/* Spawns refused for want of memory since the run started (atomic). */
static uint64_t spawns_refused;

uint64_t
weft__spawns_refused(void)
{
	return ck_pr_load_64(&spawns_refused);
}

static uint64_t
task_id(struct weft__worker *w)
{
	if (!w)
		return ck_pr_faa_64(&weft__sched.next_id_block, 1) + 1;
	if (w->next_id == w->id_limit) {
		w->next_id = ck_pr_faa_64(&weft__sched.next_id_block,
					  ID_BLOCK) + 1;
		w->id_limit = w->next_id + ID_BLOCK;
	}
	return w->next_id++;
}

static void
task_init(struct weft_task *t, weft_fn fn, void *arg, size_t stack_size,
	  const char *name, bool handle, uint64_t id)
{
	t->sp = NULL;
	t->stack = NULL;
	t->fn = fn;
	t->arg = arg;
	t->result = NULL;
	t->stack_size = stack_size;
	memset(&t->fib, 0, sizeof(t->fib));
	t->next = NULL;
	t->id = id;
	if (name) {
		strncpy(t->name, name, sizeof(t->name) - 1);
		t->name[sizeof(t->name) - 1] = '\0';
	} else {
		t->name[0] = '\0';
	}
	/*
	 * Atomic stores: a worker that parked the descriptor's previous task
	 * may still read these (after_switch's late cancel check) after that
	 * task was woken elsewhere, exited and its descriptor recycled; the
	 * stale read is harmless (its wake carries an old seq and fails).
	 */
	ck_pr_store_32(&t->state, WEFT_PENDING);
	ck_pr_store_32(&t->flags, handle ? TASK_HANDLE : 0);
	t->park_result = 0;
	/*
	 * Keep the park sequence of the descriptor's previous task: a stale
	 * waiter record (a bug elsewhere) can then never match a new park.
	 */
	ck_pr_store_64(&t->park,
		       (uint64_t)PARK_SEQ(ck_pr_load_64(&t->park)) << 32);
	ck_spinlock_init(&t->lock);
	t->joiner = NULL;
	t->joiner_seq = 0;
	t->timer.idx = -1;
	t->timer.heap = NULL;
	t->timer.fire = NULL;
	t->timer.live = false;
	t->io_at = NULL;
	t->scope_deadline = WEFT_DEADLINE_NONE;
	t->scope = NULL;
	t->io_key = 0;
	t->fut = NULL;
	t->wait_kind = WAIT_NONE;
	t->wait_obj = NULL;
	t->wait_deadline = WEFT_DEADLINE_NONE;
	/* NULL outside a lock-guarded park's queued record (sched/park.h). */
	ck_pr_store_ptr(&t->lpark_rec, NULL);
	ck_pr_store_ptr(&t->lpark_obj, NULL);
	ck_pr_store_ptr((void **)&t->lpark_cancel, NULL);
	/*
	 * Last: refs != 0 publishes the descriptor to weft__tasks_foreach().
	 * Release; pairs with the CAS of weft__task_tryref().
	 */
	ck_pr_fence_store();
	ck_pr_store_32(&t->refs, handle ? 2 : 1);
}

/* Drop one reference.  Can be executed by any thread (w NULL off-worker). */
void
weft__task_unref(struct weft__worker *w, struct weft_task *t)
{
	/* The last dropper frees: ck_pr_faa is a full barrier on both sides. */
	if (ck_pr_faa_32(&t->refs, (uint32_t)-1) == 1)
		task_free(w, t);
}

/* The run's main task (calloc'ed, not in a chunk): under tpool.lock. */
static struct weft_task *main_task;

/*
 * Set (atomic, full barrier) when the main task's function has returned:
 * spawns from then on start cancelled.  Reset by weft__task_make_main().
 */
static uint32_t main_returned;

struct weft_task *
weft__task_make_main(weft_fn fn, void *arg)
{
	struct weft_task *t = calloc(1, sizeof(*t));
	struct weft__stack *st;
	int err;

	if (!t)
		return NULL;
	st = weft__stack_take(NULL, 0, &err);
	if (!st) {
		free(t);
		return NULL;
	}
	task_init(t, fn, arg, 0, "main", true, task_id(NULL));
	t->stack = st;
	t->parent_id = 0;
	t->spawn_pc = NULL;
	t->flags |= TASK_MAIN;
	ck_pr_store_32(&main_returned, 0);
	ck_pr_store_64(&spawns_refused, 0);
	weft__mutex_lock(&tpool.lock, WEFT_RANK_TPOOL);
	main_task = t;
	weft__mutex_unlock(&tpool.lock);
	return t;
}

/* weft_run's teardown, before it frees the main task. */
void
weft__task_forget_main(void)
{
	weft__mutex_lock(&tpool.lock, WEFT_RANK_TPOOL);
	if (main_task)
		weft__task_drop_future(main_task);
	main_task = NULL;
	weft__mutex_unlock(&tpool.lock);
}

/*
 * Where a debugger finds every descriptor (gdb/weft.py): the chunk list
 * (each chunk holds `chunk_tasks` descriptors; those with refs != 0 are
 * live) and the main task, which lives outside the chunks.  Read only by a
 * debugger, with the process stopped; `version` changes with this layout.
 */
struct weft__debug_info {
	uint32_t version;
	uint32_t chunk_tasks;
	struct task_chunk **chunks;
	struct weft_task **main_task;
};

__attribute__((used)) const struct weft__debug_info weft__debug_info = {
	.version = 1,
	.chunk_tasks = TASK_CHUNK,
	.chunks = &tpool.chunks,
	.main_task = &main_task,
};

/*
 * Take a reference on t unless it has none left (a free descriptor).
 * Any thread.
 */
bool
weft__task_tryref(struct weft_task *t)
{
	uint32_t refs = ck_pr_load_32(&t->refs);

	while (refs != 0)
		if (ck_pr_cas_32_value(&t->refs, refs, refs + 1, &refs))
			return true;
	return false;
}

/*
 * Call fn(t, arg) for every task that is alive (spawned, descriptor not yet
 * freed) when the walk reaches it, holding a reference on it for the call.
 * Descriptors are recycled, so a task spawned during the walk may or may
 * not be visited, and a visited task may have finished by the time fn
 * looks at it: fn reads its fields as snapshots.  fn must not spawn, free
 * descriptors' last references in bulk, or call this again (tpool.lock is
 * held).  Any thread; returns the number of tasks visited.
 */
size_t
weft__tasks_foreach(void (*fn)(struct weft_task *t, void *arg), void *arg)
{
	struct weft__worker *w = weft__worker_self();
	struct task_chunk *c;
	struct weft_task *drop[64];
	size_t n = 0;
	int ndrop = 0;

	weft__mutex_lock(&tpool.lock, WEFT_RANK_TPOOL);
	if (main_task && weft__task_tryref(main_task)) {
		fn(main_task, arg);
		n++;
		/* The main task is not in the pool: its refs never reach 0. */
		ck_pr_dec_32(&main_task->refs);
	}
	for (c = tpool.chunks; c; c = c->next) {
		for (int i = 0; i < TASK_CHUNK; i++) {
			struct weft_task *t = &c->tasks[i];

			if (!weft__task_tryref(t))
				continue;
			fn(t, arg);
			n++;
			/* Not the last reference: drop it here. */
			if (ck_pr_faa_32(&t->refs, (uint32_t)-1) == 1) {
				/*
				 * It was: the task went away during fn.
				 * task_free() takes tpool.lock, so free it
				 * after the walk (re-taking our reference
				 * as a placeholder is not possible: it hit
				 * zero), in batches.
				 */
				drop[ndrop++] = t;
				if (ndrop == 64) {
					weft__mutex_unlock(&tpool.lock);
					while (ndrop > 0)
						task_free(w, drop[--ndrop]);
					weft__mutex_lock(&tpool.lock,
							 WEFT_RANK_TPOOL);
				}
			}
		}
	}
	weft__mutex_unlock(&tpool.lock);
	while (ndrop > 0)
		task_free(w, drop[--ndrop]);
	return n;
}

/*
 * A task spawned after the main task returned starts cancelled (a system
 * task only gets the flag: it still runs).  Called after task_init() made
 * t visible to weft__tasks_foreach() and before t is queued.  The full
 * barrier pairs with the one in cancel_stragglers() between its store of
 * main_returned and its walk: either the walk sees t, or we see the flag.
 */
static void
spawn_check_main(struct weft_task *t)
{
	ck_pr_fence_memory();
	if (WEFT_LIKELY(!ck_pr_load_32(&main_returned)))
		return;
	ck_pr_or_32(&t->flags, TASK_CANCELLED);
	if (!(ck_pr_load_32(&t->flags) & TASK_SYSTEM))
		ck_pr_store_32(&t->state, WEFT_CANCELLED);
}

/*
 * A spawn's stack: a claim for the default size (*st NULL: taken at first
 * run), the stack itself for any other.  0 or -ENOMEM.
 */
static inline int
spawn_stack(struct weft__worker *w, size_t size, struct weft__stack **st)
{
	int err;

	*st = NULL;
	if (WEFT_LIKELY(weft__stack_is_default(size)))
		return weft__stack_claim(w);
	*st = weft__stack_get(w, size, &err);
	return *st ? 0 : err;
}

static void
spawn_stack_undo(struct weft__worker *w, struct weft__stack *st)
{
	if (st)
		weft__stack_put(w, st);
	else
		weft__stack_unclaim(w);
}

/*
 * `pc`: the return address of the public call, for "created by".  Inlined
 * into each caller so that its __builtin_return_address(0) is the user's
 * call site.
 */
static inline __attribute__((always_inline)) int
spawn(struct weft_task **out, weft_fn fn, void *arg,
      const struct weft_spawn_opts *opts, uint32_t extra_flags, void *pc)
{
	struct weft__worker *w = weft__worker_self();
	size_t size = opts ? opts->stack_size : 0;
	const char *name = opts ? opts->name : NULL;
	struct weft__stack *st;
	struct weft_task *t;
	int err = -ENOMEM;

	if (!fn)
		return -EINVAL;
	if (opts) {
		for (size_t i = 0; i < 4; i++)
			if (opts->reserved_[i])
				return -EINVAL;
		if (size && (size < 16 * 1024 || size > ((size_t)1 << 30)))
			return -EINVAL;
	}
	if (WEFT_UNLIKELY(!w)) {
		/*
		 * A thread that is not a worker: the global queue.  Check,
		 * allocate and enqueue under sched.lock: weft_run's teardown
		 * clears `running` under the same lock before it frees the
		 * descriptor pool, so nothing allocated here can outlive it.
		 */
		weft__mutex_lock(&weft__sched.lock, WEFT_RANK_SCHED);
		if (!ck_pr_load_32(&weft__sched.running) ||
		    weft__sched.stopping) {
			weft__mutex_unlock(&weft__sched.lock);
			return -ESRCH;
		}
		err = spawn_stack(NULL, size, &st);
		t = err == 0 ? task_alloc(NULL) : NULL;
		if (!t) {
			if (err == 0)
				spawn_stack_undo(NULL, st);
			weft__mutex_unlock(&weft__sched.lock);
			ck_pr_inc_64(&spawns_refused);
			return err ? err : -ENOMEM;
		}
		task_init(t, fn, arg, size, name, out != NULL, task_id(NULL));
		t->stack = st;
		t->parent_id = 0;
		t->spawn_pc = pc;
		if (extra_flags)
			ck_pr_or_32(&t->flags, extra_flags);
		spawn_check_main(t);
		weft__sched.foreign_spawned++;
		weft__globrunq_put_locked(t);
		weft__wakep_locked();
		weft__mutex_unlock(&weft__sched.lock);
		if (out)
			*out = t;
		return 0;
	}
	err = spawn_stack(w, size, &st);
	if (WEFT_UNLIKELY(err < 0))
		goto refused;
	t = task_alloc(w);
	if (WEFT_UNLIKELY(!t)) {
		spawn_stack_undo(w, st);
		err = -ENOMEM;
		goto refused;
	}
	task_init(t, fn, arg, size, name, out != NULL, task_id(w));
	/* Inside a scope, the new task inherits its deadline. */
	if (w->cur)
		t->scope_deadline = w->cur->scope_deadline;
	t->stack = st;
	t->parent_id = w->cur ? w->cur->id : 0;
	t->spawn_pc = pc;
	if (extra_flags)
		ck_pr_or_32(&t->flags, extra_flags);
	spawn_check_main(t);
	/* Counted before it is visible: see weft__tasks_live(). */
	ck_pr_store_64(&w->spawned, w->spawned + 1);
	WEFT_STAT_INC(w, spawns);
	weft__runq_put(w, t, true);
	weft__wakep_from(w);
	if (out)
		*out = t;
	return 0;

refused:
	ck_pr_inc_64(&spawns_refused);
	return err;
}

/* Never inlined: its return address is the spawn's call site. */
__attribute__((noinline)) int
weft_spawn(struct weft_task **out, weft_fn fn, void *arg,
	   const struct weft_spawn_opts *opts)
{
	return spawn(out, fn, arg, opts, 0, __builtin_return_address(0));
}

__attribute__((noinline)) int
weft__spawn_system(weft_fn fn, void *arg, const char *name)
{
	struct weft_spawn_opts opts = { .name = name };

	return spawn(NULL, fn, arg, &opts, TASK_SYSTEM,
		     __builtin_return_address(0));
}

/*
 * Give `t` (already moved PENDING -> RUNNING) the stack it claimed at
 * spawn (or got then, for another size) and its first frame.  Returns 0,
 * or -ENOMEM if the claim could not be kept -- which the claims'
 * arithmetic rules out -- and the caller then finishes t as cancelled.
 * Executed only by worker w.
 */
int
weft__task_start(struct weft__worker *w, struct weft_task *t)
{
	struct weft__stack *st = t->stack;
	struct weft_future *f;
	int err = -ENOMEM;

	WEFT_ASSERT_OWNER(w);
	/*
	 * Full barrier (the state CAS before us) then this load: pairs with
	 * the exchange in weft_task_future(), which reads the state after
	 * installing the future.  Either side may mark it; both is harmless.
	 */
	if (WEFT_LIKELY(!st)) {
		st = weft__stack_get(w, 0, &err);
		if (WEFT_UNLIKELY(!st)) {
			weft__log("weft: no stack for task %llu: %s\n",
				  (unsigned long long)t->id, strerror(-err));
			return err;
		}
		t->stack = st;
	}
	f = ck_pr_load_ptr(&t->fut);
	if (f)
		weft__future_running(f);
	t->sp = weft__ctx_make(st->lo + st->size, weft__task_entry, t);
#if defined(WEFT_ASAN)
	t->fib.stack_lo = st->lo;
	t->fib.stack_size = st->size;
#endif
#if defined(WEFT_TSAN)
	t->fib.tsan = __tsan_create_fiber(0);
#endif
	return 0;
}

/* The exited task's stack goes back to a pool.  Executed only by w. */
void
weft__task_release_stack(struct weft__worker *w, struct weft_task *t)
{
	WEFT_ASSERT_OWNER(w);
#if defined(WEFT_TSAN)
	__tsan_destroy_fiber(t->fib.tsan);
	t->fib.tsan = NULL;
#endif
	weft__stack_put(w, t->stack);
	t->stack = NULL;
}

/* Wake whoever joins t, which is finishing.  Caller holds t->lock. */
static void
wake_joiner_locked(struct weft_task *t)
{
	struct weft_task *j = t->joiner;

	WEFT_ASSERT_HELD(&t->lock);

	if (j) {
		t->joiner = NULL;
		weft__wake_tail(j, t->joiner_seq, 0);
	}
}

/*
 * A cancelled task that never ran: finish it, its stack unused.
 * Executed only by worker w, which dequeued t.
 */
void
weft__task_finish_cancelled(struct weft__worker *w, struct weft_task *t)
{
	struct weft_future *f;

	WEFT_ASSERT_OWNER(w);
	/* Its stack (or the claim on one), taken at spawn, was never used. */
	spawn_stack_undo(w, t->stack);
	t->stack = NULL;
	weft__spin_lock(&t->lock, WEFT_RANK_TASK);
	ck_pr_store_32(&t->state, WEFT_CANCELLED);
	wake_joiner_locked(t);
	f = t->fut;
	weft__spin_unlock(&t->lock);
	/* The descriptor's reference keeps f alive until the unref below. */
	if (f)
		weft__future_complete(f, NULL, 0, true);
	ck_pr_store_64(&w->exited, w->exited + 1);
	weft__task_unref(w, t);
}

void (*weft__io_canceller)(struct weft_task *t);

void
weft__run_hold(int delta)
{
	/* Every -1 is made by a live task, whose exit ends the run. */
	ck_pr_add_64(&weft__sched.held, (uint64_t)(int64_t)delta);
}

/* Stop t's current blocking call, and every later one. */
static void
cancel_running(struct weft_task *t)
{
	/* A lock-guarded park is cancelled under its object's lock. */
	if (weft__lpark_visit(t))
		return;
	/* An I/O park refuses this claim: its backend must cancel. */
	if (!weft__wake_current(t, -ECANCELED) && weft__io_canceller)
		weft__io_canceller(t);
}

struct stragglers {
	struct weft_task *self;
	struct weft_task **v;		/* referenced tasks to cancel */
	size_t n;
	size_t cap;
	bool more;			/* the array could not grow */
};

/* weft__tasks_foreach() callback: collect t, with a reference. */
static void
straggler_collect(struct weft_task *t, void *arg)
{
	struct stragglers *s = arg;
	uint32_t st = ck_pr_load_32(&t->state);

	if (t == s->self || st == WEFT_DONE || st == WEFT_CANCELLED ||
	    (ck_pr_load_32(&t->flags) & TASK_CANCELLED))
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct weft_task **v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			s->more = true;
			return;
		}
		s->v = v;
		s->cap = cap;
	}
	/* The walk holds a reference: refs >= 1, a plain increment is safe. */
	ck_pr_inc_32(&t->refs);
	s->v[s->n++] = t;
}

/*
 * The main task `self` returned: cancel every other live task (weft_run
 * then waits for them, as it waits for every task) and make later spawns
 * start cancelled.  weft_cancel() is called after the walk, outside
 * tpool.lock, whose rank is above sched.lock (a wake may need that).
 * Executed only by the main task.
 */
static void
cancel_stragglers(struct weft_task *self)
{
	struct stragglers s = { .self = self };
	struct weft__worker *w;

	/* Full barrier: pairs with the one in spawn_check_main(). */
	ck_pr_fas_32(&main_returned, 1);
	do {
		s.more = false;
		s.n = 0;
		weft__tasks_foreach(straggler_collect, &s);
		w = weft__worker_self();
		for (size_t i = 0; i < s.n; i++) {
			struct weft_task *t = s.v[i];

			if (ck_pr_load_32(&t->flags) & TASK_SYSTEM) {
				/* Its queued callbacks must still run. */
				ck_pr_or_32(&t->flags, TASK_CANCELLED);
				cancel_running(t);
			} else {
				weft_cancel(t);
			}
			weft__task_unref(w, t);
		}
	} while (s.more);
	free(s.v);
}

/*
 * First code on a task's stack; `pass` is the worker that switched to it.
 * Must be called from a coroutine.
 */
void
weft__task_entry(void *arg, void *pass)
{
	struct weft_task *t = arg;
	struct weft_future *f;
	void *result;

#if defined(WEFT_ASAN)
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
	weft__after_switch(pass);
	result = t->fn(t->arg);
	if (WEFT_UNLIKELY(ck_pr_load_32(&t->flags) & TASK_MAIN))
		cancel_stragglers(t);
	/* A lingering I/O timer must leave its heap with the task. */
	if (t->timer.heap)
		weft__timer_del(&t->timer);

	t->result = result;
	weft__spin_lock(&t->lock, WEFT_RANK_TASK);
	/* The lock's release orders result before the state for joiners. */
	ck_pr_store_32(&t->state, WEFT_DONE);
	wake_joiner_locked(t);
	f = t->fut;
	weft__spin_unlock(&t->lock);
	/* The descriptor's reference keeps f alive until our exit. */
	if (f)
		weft__future_complete(f, result, 0, false);
	weft__switch_out(weft__worker_self(), t, AS_EXIT);
	weft__panic("exited task %llu resumed", (unsigned long long)t->id);
}

static void
unlock_spin(void *lock)
{
	weft__spin_unlock(lock);
}

/*
 * Is t's handle still held?  A released handle whose descriptor is free
 * (refs 0) or still alive without a handle (detached, joined, or spawned
 * without one) is caught; one whose descriptor went to a new task with a
 * handle is not -- except in the ASan build, whose quarantine keeps a
 * freed descriptor free for the next QUARANTINE frees.
 */
static inline bool
handle_held(const struct weft_task *t)
{
	return ck_pr_load_32(&t->refs) != 0 &&
	       (ck_pr_load_32(&t->flags) & TASK_HANDLE);
}

int
weft_join(struct weft_task *t, void **result, int64_t deadline)
{
	struct weft_task *self = weft__task_self();
	uint32_t state;
	int ret = 0;

	if (!self)
		return -EPERM;
	if (!t || WEFT_UNLIKELY(!handle_held(t)))
		return -EINVAL;
	if (t == self)
		return -EDEADLK;
	/*
	 * Finished already: no joiner can be registered but ours, so the lock
	 * is not needed.  Pairs with the state store under t->lock at exit,
	 * whose unlock (release) happened before we can read DONE.
	 */
	state = ck_pr_load_32(&t->state);
	if (state == WEFT_DONE || state == WEFT_CANCELLED) {
		ck_pr_fence_load();
		goto collect;
	}
	weft__spin_lock(&t->lock, WEFT_RANK_TASK);
	state = ck_pr_load_32(&t->state);
	if (state != WEFT_DONE && state != WEFT_CANCELLED) {
		if (t->joiner) {
			weft__spin_unlock(&t->lock);
			return -EBUSY;
		}
		t->joiner_seq = weft__park_prepare(self);
		t->joiner = self;
		weft__wait_note(self, WAIT_JOIN, t);
		ret = weft__park(unlock_spin, &t->lock, deadline);
		weft__spin_lock(&t->lock, WEFT_RANK_TASK);
		if (t->joiner == self)
			t->joiner = NULL;
		state = ck_pr_load_32(&t->state);
		if (state != WEFT_DONE && state != WEFT_CANCELLED) {
			weft__spin_unlock(&t->lock);
			return ret < 0 ? ret : -EAGAIN;
		}
	}
	weft__spin_unlock(&t->lock);
collect:
	ret = 0;
	if (state == WEFT_CANCELLED)
		ret = -ECHILD;
	else if (WEFT_UNLIKELY(ck_pr_load_32(&t->flags) & TASK_FAILED))
		ret = weft__future_fail_err(t->fut);	/* set by weft_fail() */
	else if (result)
		*result = t->result;
	/* Exactly one caller gives the handle up (a racing misuse: -EINVAL). */
	if (WEFT_UNLIKELY(!ck_pr_btr_32(&t->flags, TASK_HANDLE_BIT)))
		return -EINVAL;
	weft__task_unref(weft__worker_self(), t);
	return ret;
}

int
weft_detach(struct weft_task *t)
{
	if (!t || WEFT_UNLIKELY(!handle_held(t)) ||
	    WEFT_UNLIKELY(!ck_pr_btr_32(&t->flags, TASK_HANDLE_BIT)))
		return -EINVAL;
	weft__task_unref(weft__worker_self(), t);
	return 0;
}

int
weft_cancel(struct weft_task *t)
{
	if (!t)
		return -EINVAL;
	/*
	 * Full barrier, pairs with the exchange in weft__park_prepare()
	 * between arming and reading the flag: either the park sees the
	 * flag, or this wake sees the park armed.
	 */
	ck_pr_or_32(&t->flags, TASK_CANCELLED);
	/* Not started: it never will be (see startable() in worker.c). */
	if (ck_pr_cas_32(&t->state, WEFT_PENDING, WEFT_CANCELLED))
		return 0;
	cancel_running(t);
	return 0;
}

bool
weft_task_is_cancelled(const struct weft_task *t)
{
	if (WEFT_UNLIKELY(!t))
		return false;
	return ck_pr_load_32(&t->flags) & TASK_CANCELLED;
}

uint64_t
weft_task_id(const struct weft_task *t)
{
	if (WEFT_UNLIKELY(!t))
		return 0;
	return t->id;
}

const char *
weft_task_name(const struct weft_task *t)
{
	if (WEFT_UNLIKELY(!t))
		return "";
	return t->name;
}

enum weft_task_state
weft_task_state(const struct weft_task *t)
{
	/* No task: one that never runs, so that wait loops end. */
	if (WEFT_UNLIKELY(!t))
		return WEFT_CANCELLED;
	return (enum weft_task_state)ck_pr_load_32(&t->state);
}

int
weft_sleep_until(int64_t deadline)
{
	struct weft_task *t = weft__task_self();
	int ret;

	int64_t eff;

	if (!t)
		return -EPERM;
	/* A scope's deadline cuts the sleep short: that is -ETIMEDOUT. */
	eff = weft__scope_clamp(t, deadline);
	if (eff != WEFT_DEADLINE_NONE && eff <= weft_now())
		return eff != deadline ? -ETIMEDOUT : weft_yield();
	weft__park_prepare(t);
	weft__wait_note(t, WAIT_SLEEP, NULL);
	ret = weft__park(NULL, NULL, eff);
	if (ret == -ETIMEDOUT && eff == deadline)
		ret = 0;
	return ret;
}

/*
 * A duration, unlike a deadline, is the caller's number added to ours: a
 * huge ns (INT64_MAX as "forever") would overflow now + ns into the past and
 * return at once.  Saturate instead; a deadline of INT64_MAX is never
 * reached, so such a sleep ends only by cancellation.
 */
int
weft_sleep(int64_t ns)
{
	int64_t deadline;

	if (ns <= 0)
		return weft_yield();
	if (__builtin_add_overflow(weft_now(), ns, &deadline))
		deadline = INT64_MAX;
	return weft_sleep_until(deadline);
}

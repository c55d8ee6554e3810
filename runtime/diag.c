/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics: the deadlock detector, the slow-task report, weft_dump() and
 * the dump-on-signal switch.  They run as hooks of the core's monitor
 * thread (sched/monitor.c), which weft_run() configures through
 * weft__diag_setup(), and see the scheduler only through the observers of
 * sched/park.h.
 *
 * Slow tasks (asyncio's slow-callback warning).  The monitor marks a task
 * that kept its worker for WEFT_SLOW_MS without a switch (TASK_SLOW, once
 * per task) and calls slow_report(), which prints it and counts it.
 *
 * Deadlocks (Go's "all goroutines are asleep").  Evaluated only when the
 * world looks stable: the scheduler quiescent (weft__sched_quiescent():
 * every worker on the idle list with empty queues, no timer armed on any
 * worker, since sleeps and deadlines are timers, and no I/O in flight,
 * io_ops == io_done summed over the workers), no blocking-pool job queued
 * or running (weft__pool_busy()), and no thread in the process but weft's
 * own (a user's thread may hold a channel and send later).  The same
 * progress counters on two consecutive ticks rule out a worker caught
 * between two of those reads; the task walk is then checked again against
 * them.  Every live task must be SUSPENDED.  The report lists each task
 * and the cycles of the wait-for graph (a join points at the joined task,
 * a future at the task that will complete it).
 *
 * Costs: the /proc scan and the walk over every task happen only when all
 * workers sleep with tasks alive, i.e. at most every idle monitor tick
 * (100 ms) in a program that waits for a foreign thread.
 *
 * What a snapshot holds of each task (snap_one): its wait and what the
 * object says of itself (a channel's fill, an I/O call's fd, a mutex's
 * owner, found by the stack its stack pointer lies in), its deadline, who
 * created it, and for a parked task its backtrace: the saved context's
 * frame pointer chain (sched/ctx.h), copied with process_vm_readv() so a
 * task that wakes, exits and loses its stack meanwhile costs an EFAULT,
 * not a crash (Go's traceback reads a stopped world; weft_dump() does not
 * stop it).  Identical backtraces are interned (Go's goroutine profile
 * groups them the same way) and printed once, with the tasks on them.
 * Costs of a dump: two process_vm_readv() calls per parked task (its
 * stack descriptor, then 4 KiB windows of its stack) under tpool.lock,
 * about a second per million parked tasks; the symbol tables of the
 * objects in the backtraces are mapped for the dump and dropped after.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io/io.h"
#include "runtime/future.h"
#include "runtime/runtime.h"
#include "sched/park.h"

#define DUMP_MAX_TASKS 10000	/* lines of tasks a dump or report prints */
#define BT_MAX 32		/* frames of a backtrace */
#define BT_WINDOW 4096		/* bytes of a stack copied at a time */
#define BT_COPY_MAX (64 * 1024)	/* bytes of a stack a walk may copy */
#define STACKS_MAX 4096		/* distinct stacks a snapshot keeps */
#define STACKS_INDEX (2 * STACKS_MAX)	/* slots of their hash index */
#define GROUP_IDS 8		/* task ids listed per stack group */

enum dl_mode {
	DL_ABORT = 0,		/* default: report, then abort() */
	DL_REPORT,		/* WEFT_DEADLOCK_REPORT: report once, go on */
	DL_OFF,			/* WEFT_DEADLOCK_OFF */
};



static struct {
	/*
	 * Written by weft__diag_setup() before the monitor starts (its
	 * pthread_create orders them); immutable while it runs.
	 */
	enum dl_mode mode;
	int64_t slow_ns;		/* 0: slow-task report off */
	int dump_sig;			/* 0: no dump signal */
	struct sigaction old_act;	/* dump_sig's action before ours */

	/* Monitor thread only. */
	int stable_ticks;		/* ticks the idle state has held */
	struct weft__progress last;	/* progress at the previous tick */
	bool reported;			/* this deadlock was reported */
	struct weft__progress reported_at;

	/* Atomics (ck_pr): any thread. */
	uint32_t dump_req;		/* the dump signal arrived */
	uint64_t slow_tasks;		/* weft_stats().slow_tasks */
	uint64_t deadlocks;		/* weft_stats().deadlocks */
} mon;



static const char *const wait_names[] = {
	[WAIT_NONE] = "nothing known",
	[WAIT_SLEEP] = "sleep",
	[WAIT_JOIN] = "join",
	[WAIT_FUTURE] = "future",
	[WAIT_FUTURES] = "futures",
	[WAIT_CHAN_SEND] = "chan send",
	[WAIT_CHAN_RECV] = "chan recv",
	[WAIT_SELECT] = "select",
	[WAIT_MUTEX] = "mutex",
	[WAIT_RWLOCK] = "rwlock",
	[WAIT_COND] = "cond",
	[WAIT_WAITGROUP] = "waitgroup",
	[WAIT_SEM] = "sem",
	[WAIT_ONCE] = "once",
	[WAIT_GROUP] = "group",
	[WAIT_IO] = "I/O",
	[WAIT_POOL] = "pool job",
	[WAIT_OTHER] = "other",
};

static const char *const state_names[] = {
	[WEFT_PENDING] = "pending",
	[WEFT_RUNNING] = "running",
	[WEFT_SUSPENDED] = "suspended",
	[WEFT_DONE] = "done",
	[WEFT_CANCELLED] = "cancelled",
};

static const char *
wait_name(unsigned int kind)
{
	if (kind < sizeof(wait_names) / sizeof(wait_names[0]) &&
	    wait_names[kind])
		return wait_names[kind];
	return "?";
}

static const char *
state_name(unsigned int state)
{
	if (state < sizeof(state_names) / sizeof(state_names[0]))
		return state_names[state];
	return "?";
}

/*
 * The task a waiting task waits for, if the object has a known owner:
 * the joined task, or the task of a task future.  (A mutex's owner is
 * found by its stack pointer, in snap_take.)
 */
static const struct weft_task *
wait_target(unsigned int kind, const void *obj)
{
	if (kind == WAIT_JOIN)
		return obj;
	if (kind == WAIT_FUTURE)
		return weft__future_owner_task(obj);
	return NULL;
}

/*
 * Reading another task's stack.  A parked task's saved frames are stable
 * while it stays parked, but weft_dump() runs while tasks run: the task may
 * be woken, exit, and its stack go back to a pool or be unmapped under the
 * reader.  Every read of another task's stack (and of its stack
 * descriptor) goes through process_vm_readv() on our own process, which
 * fails with EFAULT where a plain load would crash; the park word read
 * before and after says whether the copy is of one park.
 */
static bool
safe_read(void *dst, const void *src, size_t n)
{
	struct iovec l = { .iov_base = dst, .iov_len = n };
	struct iovec r = { .iov_base = (void *)src, .iov_len = n };

	return process_vm_readv(getpid(), &l, 1, &r, 1, 0) == (ssize_t)n;
}

/*
 * Snapshots of tasks
 */

struct tinfo {
	const struct weft_task *t;
	const struct weft_task *to;	/* wait_target(), or NULL */
	const void *obj;
	const void *owner_sp;		/* WAIT_MUTEX: the owner's sp */
	uintptr_t stk_lo, stk_hi;	/* its stack, or 0, 0 */
	uintptr_t spawn_pc;
	uint64_t id;
	uint64_t parent;
	int64_t since;
	int64_t deadline;		/* WEFT_DEADLINE_NONE: none */
	uint32_t state;
	uint8_t kind;
	int worker;			/* running on it, or -1 */
	int next;			/* index of `to` in the snapshot, or -1 */
	int stack;			/* index in snap.stk, or -1 */
	bool held;			/* WAIT_MUTEX: `next` is the owner */
	char name[24];
	char detail[48];		/* what the object says of itself */
};

/* A distinct backtrace, and how many tasks of the snapshot stand on it. */
struct stk {
	uint64_t hash;
	int n;
	uintptr_t pc[BT_MAX];
	size_t count;
	int first;			/* index of its first task (by id) */
};

struct snap {
	struct tinfo *v;
	size_t n;
	size_t cap;
	size_t total;			/* tasks walked, even if not stored */
	bool nomem;
	struct stk *stk;
	size_t nstk;
	size_t capstk;
	uint64_t *copy;			/* BT_COPY_MAX bytes: a stack's copy */
	int *index;			/* STACKS_INDEX slots, -1: free */
};

static const char *const io_names[] = {
	[IO_READ] = "read",	[IO_WRITE] = "write",	[IO_RECV] = "recv",
	[IO_SEND] = "send",	[IO_RECVMSG] = "recvmsg",
	[IO_SENDMSG] = "sendmsg", [IO_ACCEPT] = "accept",
	[IO_CONNECT] = "connect", [IO_CLOSE] = "close",
	[IO_OPENAT] = "openat",	[IO_FSYNC] = "fsync",	[IO_SPLICE] = "splice",
	[IO_POLL] = "poll",
};

/*
 * Walk the frame-pointer chain of t's saved context into pcs (return
 * addresses, innermost first).  `sp` and `st` are t's saved stack pointer
 * and stack as read; every word comes from a copy made with safe_read().
 * Returns the number of frames, 0 if the context could not be read.
 */
static int
walk_stack(struct snap *sn, uintptr_t sp, uintptr_t top, uintptr_t *pcs)
{
	uint64_t *c = sn->copy;
	size_t have = 0;		/* bytes of the stack from sp copied */
	uintptr_t fp, pc;
	int n = 0;

	if (!c || sp & 7 || sp >= top ||
	    top - sp < WEFT_CTX_FRAME_WORDS * sizeof(uint64_t))
		return 0;
	for (;;) {
		size_t want = have + BT_WINDOW;

		if (want > BT_COPY_MAX)
			want = BT_COPY_MAX;
		if (want > top - sp)
			want = top - sp;
		if (want <= have || !safe_read((char *)c + have,
					       (void *)(sp + have),
					       want - have))
			break;
		have = want;
		if (n == 0) {
			weft__ctx_saved_frame(c, &fp, &pc);
			pcs[n++] = pc;
		}
		/* Frame records: [fp] the caller's fp, [fp + 8] its pc. */
		while (n < BT_MAX && fp > sp && !(fp & 7) &&
		       fp + 16 <= sp + have) {
			uint64_t next = c[(fp - sp) / 8];

			pc = c[(fp - sp) / 8 + 1];
			if (!pc)
				return n;
			pcs[n++] = pc;
			if (next <= fp)
				return n;
			fp = next;
		}
		/* Done, or the chain left the copy: copy more if it may. */
		if (n == BT_MAX || fp <= sp || fp & 7 || fp + 16 > top)
			break;
	}
	return n;
}

static uint64_t
hash_pcs(const uintptr_t *pc, int n)
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < n; i++)
		h = (h ^ pc[i]) * 1099511628211ull;
	return h ^ (uint64_t)n;
}

/*
 * The index of this backtrace in sn->stk, added if new; -1 if full.  An
 * open-addressing table of STACKS_INDEX slots (twice STACKS_MAX) finds it.
 */
static int
stack_intern(struct snap *sn, const uintptr_t *pc, int n)
{
	uint64_t h = hash_pcs(pc, n);
	size_t slot = h & (STACKS_INDEX - 1);
	struct stk *k;

	if (!sn->index)
		return -1;
	for (; sn->index[slot] >= 0; slot = (slot + 1) & (STACKS_INDEX - 1)) {
		k = &sn->stk[sn->index[slot]];
		if (k->hash == h && k->n == n &&
		    memcmp(k->pc, pc, (size_t)n * sizeof(*pc)) == 0)
			return sn->index[slot];
	}
	if (sn->nstk == STACKS_MAX)
		return -1;
	if (sn->nstk == sn->capstk) {
		size_t cap = sn->capstk ? sn->capstk * 2 : 16;
		struct stk *v = realloc(sn->stk, cap * sizeof(*v));

		if (!v)
			return -1;
		sn->stk = v;
		sn->capstk = cap;
	}
	k = &sn->stk[sn->nstk];
	k->hash = h;
	k->n = n;
	memcpy(k->pc, pc, (size_t)n * sizeof(*pc));
	k->count = 0;
	k->first = -1;
	sn->index[slot] = (int)sn->nstk;
	return (int)sn->nstk++;
}

/*
 * The parked task's backtrace, interned; -1 if there is none to take (the
 * task runs, or moved on while it was being read).  Holds a reference.
 */
static int
snap_stack(struct snap *sn, struct weft_task *t, struct tinfo *ti)
{
	struct weft__stack st;
	const struct weft__stack *stp;
	uintptr_t pcs[BT_MAX];
	uint64_t park;
	uintptr_t sp;
	int n;

	park = ck_pr_load_64(&t->park);
	ck_pr_fence_load();
	/* Every task's stack: a mutex's owner is found by it, running too. */
	stp = ck_pr_load_ptr(&t->stack);
	if (!stp || !safe_read(&st, stp, sizeof(st)))
		return -1;
	ti->stk_lo = (uintptr_t)st.lo;
	ti->stk_hi = (uintptr_t)st.lo + st.size;
	if (ti->state != WEFT_SUSPENDED || ti->worker >= 0)
		return -1;
	/*
	 * Saved for certain, but for a lock-guarded park, whose context is
	 * saved once its worker has left it (worker < 0 above).
	 */
	if (!(park & PARK_ARMED) || !(park & (PARK_SAVED | PARK_LOCKED)))
		return -1;
	sp = (uintptr_t)ck_pr_load_ptr(&t->sp);
	if (sp < ti->stk_lo)
		return -1;
	n = walk_stack(sn, sp, ti->stk_hi, pcs);
	/* Pairs with the park's own stores: the same park throughout. */
	ck_pr_fence_load();
	if (n == 0 || ck_pr_load_64(&t->park) != park ||
	    ck_pr_load_32(&t->state) != WEFT_SUSPENDED)
		return -1;
	return stack_intern(sn, pcs, n);
}

/* What the object of a wait says of itself, into ti->detail. */
static void
snap_detail(struct tinfo *ti)
{
	ti->detail[0] = '\0';
	switch (ti->kind) {
	case WAIT_CHAN_SEND:
	case WAIT_CHAN_RECV: {
		size_t cap, len;
		bool closed;

		weft__chan_info(ti->obj, &cap, &len, &closed);
		snprintf(ti->detail, sizeof(ti->detail),
			 "cap %zu, %zu queued%s", cap, len,
			 closed ? ", closed" : "");
		break;
	}
	case WAIT_IO: {
		struct weft__ioop op;

		/* On the task's own stack: read it as the stack is. */
		if (ti->obj && safe_read(&op, ti->obj, sizeof(op)) &&
		    (unsigned int)op.kind <
		    sizeof(io_names) / sizeof(io_names[0]))
			snprintf(ti->detail, sizeof(ti->detail), "%s fd %d",
				 io_names[op.kind], op.fd);
		break;
	}
	case WAIT_MUTEX:
		ti->owner_sp = weft__mutex_owner_sp(ti->obj);
		break;
	default:
		break;
	}
}

/* weft__tasks_foreach() callback: copy one task.  Holds a reference. */
static void
snap_one(struct weft_task *t, void *arg)
{
	struct snap *sn = arg;
	struct tinfo *ti;

	sn->total++;
	if (sn->n == sn->cap) {
		size_t cap = sn->cap ? sn->cap * 2 : 64;
		struct tinfo *v = realloc(sn->v, cap * sizeof(*v));

		if (!v) {
			sn->nomem = true;
			return;
		}
		sn->v = v;
		sn->cap = cap;
	}
	ti = &sn->v[sn->n++];
	memset(ti, 0, sizeof(*ti));
	ti->t = t;
	ti->id = t->id;
	ti->parent = t->parent_id;
	ti->spawn_pc = (uintptr_t)t->spawn_pc;
	memcpy(ti->name, t->name, sizeof(ti->name));
	ti->name[sizeof(ti->name) - 1] = '\0';
	ti->state = ck_pr_load_32(&t->state);
	/* Racy for a running task (a snapshot); stable for a parked one. */
	ti->kind = ck_pr_load_8(&t->wait_kind);
	ti->obj = ck_pr_load_ptr(&t->wait_obj);
	ti->since = (int64_t)ck_pr_load_64((uint64_t *)&t->wait_since);
	ti->deadline = (ck_pr_load_64(&t->park) & PARK_LOCKED) ?
		       WEFT_DEADLINE_NONE :
		       (int64_t)ck_pr_load_64((uint64_t *)&t->wait_deadline);
	ti->to = ti->state == WEFT_SUSPENDED ?
		 wait_target(ti->kind, ti->obj) : NULL;
	ti->next = -1;
	ti->worker = weft__task_worker(t);
	if (ti->state == WEFT_SUSPENDED && ti->obj)
		snap_detail(ti);
	ti->stack = snap_stack(sn, t, ti);
}

static int
cmp_ptr(const void *a, const void *b)
{
	const struct tinfo *x = a, *y = b;

	return (x->t > y->t) - (x->t < y->t);
}

static int
cmp_id(const void *a, const void *b)
{
	const struct tinfo *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/*
 * Walk every live task into `sn`, sorted by id, with `next` linking each
 * waiter to the task it waits for.  Returns false if out of memory.
 * Any thread while a run lasts.
 */
static int
cmp_lo(const void *a, const void *b)
{
	const struct tinfo *x = a, *y = b;

	return (x->stk_lo > y->stk_lo) - (x->stk_lo < y->stk_lo);
}

/*
 * Point each mutex waiter at the task whose stack holds the owner's
 * stack pointer (a plain thread's lies in none).
 */
static void
resolve_owners(struct snap *sn, struct tinfo *byp)
{
	size_t m = 0;

	for (size_t i = 0; i < sn->n; i++)
		if (sn->v[i].stk_lo)
			byp[m++] = sn->v[i];
	for (size_t i = 0, k = 0; i < sn->n; i++)
		if (sn->v[i].stk_lo)
			byp[k++].next = (int)i;
	qsort(byp, m, sizeof(*byp), cmp_lo);
	for (size_t i = 0; i < sn->n; i++) {
		struct tinfo *ti = &sn->v[i];
		uintptr_t sp = (uintptr_t)ti->owner_sp;
		size_t lo = 0, hi = m;

		if (ti->kind != WAIT_MUTEX || ti->state != WEFT_SUSPENDED ||
		    !sp)
			continue;
		while (lo < hi) {	/* the last stack starting <= sp */
			size_t mid = (lo + hi) / 2;

			if (byp[mid].stk_lo <= sp)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo > 0 && sp < byp[lo - 1].stk_hi) {
			ti->next = byp[lo - 1].next;
			ti->held = true;
		}
	}
}

/*
 * Walk every live task into `sn`, sorted by id, with `next` linking each
 * waiter to the task it waits for and `stack` to its backtrace.  Returns
 * false if out of memory.  Any thread while a run lasts.
 */
static bool
snap_take(struct snap *sn)
{
	memset(sn, 0, sizeof(*sn));
	/* Backtraces are left out without it. */
	sn->copy = malloc(BT_COPY_MAX);
	sn->index = malloc(STACKS_INDEX * sizeof(*sn->index));
	if (sn->index)
		memset(sn->index, 0xff, STACKS_INDEX * sizeof(*sn->index));
	weft__tasks_foreach(snap_one, sn);
	free(sn->copy);
	sn->copy = NULL;
	free(sn->index);
	sn->index = NULL;
	if (sn->nomem)
		return false;
	qsort(sn->v, sn->n, sizeof(*sn->v), cmp_id);
	for (size_t i = 0; i < sn->n; i++) {
		struct tinfo *ti = &sn->v[i];

		if (ti->stack < 0)
			continue;
		if (sn->stk[ti->stack].count++ == 0)
			sn->stk[ti->stack].first = (int)i;
	}
	/* Resolve edges by address: sort a copy by address, bsearch. */
	if (sn->n) {
		struct tinfo *byp = malloc(sn->n * sizeof(*byp));

		if (!byp)
			return false;
		memcpy(byp, sn->v, sn->n * sizeof(*byp));
		for (size_t i = 0; i < sn->n; i++)
			byp[i].next = (int)i;	/* index in sn->v */
		qsort(byp, sn->n, sizeof(*byp), cmp_ptr);
		for (size_t i = 0; i < sn->n; i++) {
			struct tinfo key = { .t = sn->v[i].to }, *hit;

			if (!key.t)
				continue;
			hit = bsearch(&key, byp, sn->n, sizeof(*byp), cmp_ptr);
			if (hit)
				sn->v[i].next = hit->next;
		}
		resolve_owners(sn, byp);
		free(byp);
	}
	return true;
}

static void
snap_free(struct snap *sn)
{
	free(sn->v);
	sn->v = NULL;
	free(sn->stk);
	sn->stk = NULL;
}

/* "alpha (#3)", or "#3" for a task without a name. */
static void
print_ref(FILE *out, const struct tinfo *ti)
{
	if (ti->name[0])
		fprintf(out, "%s (#%" PRIu64 ")", ti->name, ti->id);
	else
		fprintf(out, "#%" PRIu64, ti->id);
}

/* Name a return address: the call instruction is the byte before it. */
static void
print_pc(FILE *out, struct weft__syms *sy, uintptr_t pc)
{
	char buf[320];

	weft__syms_name(sy, pc - 1, buf, sizeof(buf));
	fputs(buf, out);
}

static void
print_task(FILE *out, const struct snap *sn, const struct tinfo *ti,
	   int64_t now, struct weft__syms *sy)
{
	fprintf(out, "  task #%" PRIu64 " \"%s\" %s", ti->id, ti->name,
		state_name(ti->state));
	if (ti->worker >= 0)
		fprintf(out, " on worker %d", ti->worker);
	if (ti->state == WEFT_SUSPENDED) {
		fprintf(out, ": waiting on %s", wait_name(ti->kind));
		if (ti->kind == WAIT_IO && ti->detail[0])
			fprintf(out, " %s", ti->detail);
		else if (ti->obj)
			fprintf(out, " %p", ti->obj);
		if (ti->kind != WAIT_IO && ti->detail[0])
			fprintf(out, " (%s)", ti->detail);
		if (ti->next >= 0) {
			fputs(ti->held ? " (held by " : " (", out);
			print_ref(out, &sn->v[ti->next]);
			fputc(')', out);
		} else if (ti->kind == WAIT_MUTEX && ti->owner_sp) {
			fputs(" (held by a thread)", out);
		}
		/* No clock without the monitor (weft__wait_clock). */
		if (ti->since)
			fprintf(out, " for %" PRId64 " ms",
				now > ti->since ?
				(now - ti->since) / WEFT_MSEC : 0);
		if (ti->deadline == INT64_MAX ||
		    (ti->deadline == WEFT_DEADLINE_NONE &&
		     ti->kind == WAIT_SLEEP))
			fputs(", forever", out);
		else if (ti->deadline != WEFT_DEADLINE_NONE &&
			 ti->deadline > now)
			fprintf(out, ", deadline in %" PRId64 " ms",
				(ti->deadline - now + WEFT_MSEC - 1) /
				WEFT_MSEC);
		else if (ti->deadline != WEFT_DEADLINE_NONE)
			fputs(", deadline passed", out);
	}
	if (ti->spawn_pc) {
		fprintf(out, "; created by #%" PRIu64 " at ", ti->parent);
		print_pc(out, sy, ti->spawn_pc);
	}
	if (ti->stack >= 0)
		fprintf(out, " [stack %d]", ti->stack + 1);
	fputc('\n', out);
}

static void
print_tasks(FILE *out, const struct snap *sn, int64_t now,
	    struct weft__syms *sy)
{
	for (size_t i = 0; i < sn->n && i < DUMP_MAX_TASKS; i++)
		print_task(out, sn, &sn->v[i], now, sy);
	if (sn->total > DUMP_MAX_TASKS)
		fprintf(out, "  ... and %zu more\n",
			sn->total - DUMP_MAX_TASKS);
}

/*
 * The parked tasks' backtraces, one per distinct stack with the number of
 * tasks on it and their first ids (Go's goroutine profile groups them the
 * same way), most crowded first.
 */
static int
cmp_count(const void *a, const void *b)
{
	const struct stk *x = *(const struct stk *const *)a;
	const struct stk *y = *(const struct stk *const *)b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return (x->first > y->first) - (x->first < y->first);
}

static void
print_stacks(FILE *out, const struct snap *sn, struct weft__syms *sy)
{
	const struct stk **order;

	if (!sn->nstk)
		return;
	order = malloc(sn->nstk * sizeof(*order));
	if (!order)
		return;
	for (size_t i = 0; i < sn->nstk; i++)
		order[i] = &sn->stk[i];
	qsort(order, sn->nstk, sizeof(*order), cmp_count);
	fprintf(out, "stacks (%zu distinct, frame pointers):\n", sn->nstk);
	for (size_t i = 0; i < sn->nstk; i++) {
		const struct stk *k = order[i];
		int idx = (int)(k - sn->stk);
		size_t shown = 0;

		fprintf(out, "  stack %d: %zu task%s:", idx + 1, k->count,
			k->count == 1 ? "" : "s");
		for (size_t j = (size_t)k->first; j < sn->n &&
		     shown < GROUP_IDS; j++)
			if (sn->v[j].stack == idx) {
				fprintf(out, " #%" PRIu64, sn->v[j].id);
				shown++;
			}
		if (k->count > shown)
			fputs(" ...", out);
		fputc('\n', out);
		for (int f = 0; f < k->n; f++) {
			fputs("    ", out);
			print_pc(out, sy, k->pc[f]);
			fputc('\n', out);
		}
	}
	free(order);
}

/* The whole listing: tasks, stacks, cycles.  Returns the cycles. */
static int print_cycles(FILE *out, const struct snap *sn);

static int
print_snap(FILE *out, const struct snap *sn, int64_t now)
{
	struct weft__syms *sy = weft__syms_open();
	int cycles;

	print_tasks(out, sn, now, sy);
	print_stacks(out, sn, sy);
	cycles = print_cycles(out, sn);
	weft__syms_close(sy);
	return cycles;
}

/*
 * Print each cycle of the wait-for graph as "cycle: a (#1) -> b (#2) ->
 * a (#1)".  Every node has at most one out-edge, so a walk from each
 * unvisited node either ends or closes exactly one new cycle.  Returns
 * the number of cycles.
 */
static int
print_cycles(FILE *out, const struct snap *sn)
{
	int *mark;
	int cycles = 0;

	if (!sn->n)
		return 0;
	mark = malloc(sn->n * sizeof(*mark));
	if (!mark)
		return 0;
	for (size_t i = 0; i < sn->n; i++)
		mark[i] = -1;
	for (size_t i = 0; i < sn->n; i++) {
		int j = (int)i;

		while (j >= 0 && mark[j] < 0) {
			mark[j] = (int)i;
			j = sn->v[j].next;
		}
		if (j < 0 || mark[j] != (int)i)
			continue;
		/* j is on a cycle found from i. */
		cycles++;
		fputs("cycle: ", out);
		for (int k = j;;) {
			print_ref(out, &sn->v[k]);
			fputs(" -> ", out);
			k = sn->v[k].next;
			if (k == j)
				break;
		}
		print_ref(out, &sn->v[j]);
		fputc('\n', out);
	}
	free(mark);
	return cycles;
}

/*
 * weft_dump()
 */


/*
 * The body of weft_dump() while a run lasts.  Caller holds weft__stats_lock
 * (the workers array cannot go away).
 */
static void
dump_locked(FILE *out, const struct weft_stats *st)
{
	struct snap sn;
	int64_t now = weft_now();

	WEFT_ASSERT_HELD(&weft__stats_lock);

	fprintf(out, "weft: dump: %d workers (%s), %" PRIu64
		" tasks live, %" PRIu64 " spawned\n", weft__sched_nworkers(),
		weft_io_backend(), st->tasks_live, st->tasks_spawned);
	weft__sched_print_workers(out);
	fprintf(out, "  stacks: %" PRIu64 " in use, %" PRIu64 " cached, %"
		PRIu64 " guarded, %" PRIu64 " KiB mapped\n", st->stacks_in_use,
		st->stacks_cached, st->stacks_guarded,
		st->stack_bytes_mapped / 1024);
	fprintf(out, "  slow tasks %" PRIu64 ", deadlocks %" PRIu64 "\n",
		st->slow_tasks, st->deadlocks);
	if (!snap_take(&sn)) {
		fputs("  (out of memory listing tasks)\n", out);
	} else {
		fputs("tasks:\n", out);
		print_snap(out, &sn, now);
	}
	snap_free(&sn);
}

int
weft_dump(FILE *out)
{
	struct weft_stats st;
	int ret = 0;

	if (!out)
		return -EINVAL;
	/* weft_stats() takes weft__stats_lock itself: before we do. */
	weft_stats(&st);
	weft__mutex_lock(&weft__stats_lock, WEFT_RANK_STATS);
	if (weft__sched_running())
		dump_locked(out, &st);
	else
		fputs("weft: dump: no runtime is running\n", out);
	weft__mutex_unlock(&weft__stats_lock);
	if (fflush(out) != 0 || ferror(out))
		ret = -EIO;
	return ret;
}

/*
 * The deadlock detector.  Monitor thread only.
 */

static bool
progress_eq(const struct weft__progress *a, const struct weft__progress *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/*
 * Every worker asleep with nothing to do and nothing that could wake it
 * but another task: the cheap, lock-free part of the rule.
 */
static bool
world_idle(const struct weft__progress *p)
{
	/* Takes each pool's lock: only when everything else is idle. */
	return weft__sched_quiescent(p) && weft__pool_busy() == 0;
}

/*
 * A thread that blocks nearly every signal: how the sanitizers start their
 * own threads (see WEFT_SAN_BG_THREAD in runtime.h).  Only asked in
 * sanitizer builds, where a user's thread that blocks every signal is
 * taken for one too.
 */
static bool
sanitizer_thread(pid_t tid)
{
	char path[64], buf[2048];
	unsigned long long mask;
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strstr(buf, "SigBlk:");
	if (!p)
		return false;
	mask = strtoull(p + 7, NULL, 16);
	return __builtin_popcountll(mask) >= 56;
}

/*
 * True if every thread of the process is weft's: a worker, the monitor,
 * a blocking-pool thread ("weft-pool*") or an io_uring worker of the
 * kernel ("iou-*").  Any other thread may hold a reference to a channel or
 * a lock and act on it later.
 */
static bool
only_weft_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	bool ok = d != NULL;

	while (ok && (de = readdir(d))) {
		char path[64], comm[32];
		pid_t tid;
		ssize_t n;
		int fd;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		tid = (pid_t)atoi(de->d_name);
		if (weft__sched_owns_tid(tid))
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;	/* exited meanwhile */
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n <= 0)
			continue;
		comm[n] = '\0';
		if (strncmp(comm, "weft-pool", 9) != 0 &&
		    strncmp(comm, "iou-", 4) != 0 &&
		    !(WEFT_SAN_BG_THREAD && sanitizer_thread(tid)))
			ok = false;
	}
	if (d)
		closedir(d);
	return ok;
}

/*
 * Is every task of the snapshot parked on something only a task can
 * release?  A sleeper, an I/O or pool waiter, or a task not parked at all
 * means the state was not what world_idle() saw.
 */
static bool
all_stuck(const struct snap *sn)
{
	if (sn->n == 0 || sn->total != sn->n)
		return false;
	for (size_t i = 0; i < sn->n; i++) {
		const struct tinfo *ti = &sn->v[i];

		/* A sleep without end is Go's select {}: only a task ends it. */
		if (ti->kind == WAIT_SLEEP &&
		    ti->deadline != WEFT_DEADLINE_NONE &&
		    ti->deadline != INT64_MAX)
			return false;
		if (ti->state != WEFT_SUSPENDED || ti->kind == WAIT_IO ||
		    ti->kind == WAIT_POOL)
			return false;
	}
	return true;
}

static void
report_deadlock(const struct snap *sn)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	int64_t now = weft_now();

	if (!out) {
		weft__log_msg("weft: all tasks are asleep - deadlock!\n");
	} else {
		fputs("weft: all tasks are asleep - deadlock!\n", out);
		print_snap(out, sn, now);
		if (mon.mode == DL_REPORT)
			fputs("weft: WEFT_DEADLOCK=report: waiting on\n", out);
		fclose(out);
		weft__log_msg(buf);
		free(buf);
	}
	ck_pr_inc_64(&mon.deadlocks);
	if (mon.mode == DL_ABORT)
		abort();
}

static void
deadlock_check(void)
{
	struct weft__progress now, after;
	struct snap sn;
	uint64_t live;
	bool stuck;

	weft__sched_progress(&now);
	if (mon.reported && !progress_eq(&now, &mon.reported_at))
		mon.reported = false;	/* it moved: a new deadlock counts */
	if (!world_idle(&now)) {
		mon.stable_ticks = 0;
		goto out;
	}
	/* Same idle state as the previous tick, nothing moved in between. */
	if (mon.stable_ticks == 0 || !progress_eq(&now, &mon.last)) {
		mon.stable_ticks = 1;
		goto out;
	}
	mon.stable_ticks++;
	if (mon.reported)
		goto out;
	live = weft__sched_tasks_live();
	if (live == 0 || !only_weft_threads())
		goto out;
	if (!snap_take(&sn)) {
		snap_free(&sn);
		goto out;
	}
	stuck = all_stuck(&sn) && sn.n == live;
	weft__sched_progress(&after);
	if (stuck && world_idle(&after) && progress_eq(&now, &after)) {
		mon.reported = true;
		mon.reported_at = now;
		report_deadlock(&sn);
	}
	snap_free(&sn);
out:
	mon.last = now;
}

/*
 * Slow tasks.  Monitor thread only.
 */

/*
 * The monitor's hooks.  Monitor thread only.
 */

/*
 * A task kept worker `worker` for `ns` (marked TASK_SLOW already); `where`
 * is where the monitor found it.  One message: the report line, then the
 * frames.
 */
static void
slow_report(uint64_t id, const char *name, int worker, int64_t ns,
	    const struct weft__sample *where)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	struct weft__syms *sy;
	char sym[320];

	ck_pr_inc_64(&mon.slow_tasks);
	if (!out) {
		weft__log("weft: slow task #%" PRIu64 " \"%s\" has kept "
			  "worker %d busy for %" PRId64 " ms (threshold %"
			  PRId64 " ms)\n", id, name, worker, ns / WEFT_MSEC,
			  mon.slow_ns / WEFT_MSEC);
		return;
	}
	fprintf(out, "weft: slow task #%" PRIu64 " \"%s\" has kept "
		"worker %d busy for %" PRId64 " ms (threshold %" PRId64
		" ms)", id, name, worker, ns / WEFT_MSEC,
		mon.slow_ns / WEFT_MSEC);
	if (where->n == 0) {
		fputs(", now at an unknown place\n", out);
	} else {
		sy = weft__syms_open();
		if (where->syscall >= 0)
			fprintf(out, ", now in system call %ld, from:\n",
				where->syscall);
		else
			fputs(", now at:\n", out);
		for (int i = 0; i < where->n; i++) {
			/* pc[0] is an instruction, the rest return addresses */
			weft__syms_name(sy, where->pc[i] - (i > 0), sym,
					sizeof(sym));
			fprintf(out, "    %s\n", sym);
		}
		weft__syms_close(sy);
	}
	fclose(out);
	weft__log_msg(buf);
	free(buf);
}

/* The reported task gave its worker back: how long it ran in all. */
static void
slow_end(uint64_t id, const char *name, int worker, int64_t ns)
{
	weft__log("weft: slow task #%" PRIu64 " \"%s\" gave worker %d back "
		  "after running %" PRId64 " ms without a switch (+- %d ms)\n",
		  id, name, worker, ns / WEFT_MSEC, 20);
}

static void
dump_tick(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	if (!ck_pr_fas_32(&mon.dump_req, 0))
		return;
	out = open_memstream(&buf, &len);
	if (!out) {
		weft_dump(stderr);
		return;
	}
	weft_dump(out);
	fclose(out);
	weft__log_msg(buf);
	free(buf);
}

static void
deadlock_tick(void)
{
	if (mon.mode != DL_OFF)
		deadlock_check();
}

/* Any thread; async-signal-safe. */
static void
dump_handler(int sig)
{
	int saved = errno;

	(void)sig;
	ck_pr_store_32(&mon.dump_req, 1);
	weft__monitor_kick();
	errno = saved;
}

/*
 * Configure the monitor's diagnostics for a run (from its configuration) and
 * install the dump signal's handler.  Caller: weft_run, before the
 * scheduler starts (so before any task runs: a task may expect the signal
 * to be handled).
 */
void
weft__diag_setup(const struct weft__config *c, struct weft__monitor_cfg *mc)
{
	ck_pr_store_64(&mon.slow_tasks, 0);
	ck_pr_store_64(&mon.deadlocks, 0);
	mon.mode = c->deadlock == WEFT_DEADLOCK_REPORT ? DL_REPORT :
		   c->deadlock == WEFT_DEADLOCK_OFF    ? DL_OFF :
							 DL_ABORT;
	mon.slow_ns = c->slow_ns;
	mon.dump_sig = c->dump_signal;
	mon.dump_req = 0;
	mon.stable_ticks = 0;
	mon.reported = false;
	*mc = (struct weft__monitor_cfg){
		.wanted = mon.mode != DL_OFF || mon.slow_ns || mon.dump_sig,
		.slow_ns = mon.slow_ns,
		.slow = slow_report,
		.slow_end = slow_end,
		.tick = deadlock_tick,
		.dump = dump_tick,
	};
	if (mon.dump_sig) {
		struct sigaction sa = { .sa_handler = dump_handler,
					.sa_flags = SA_RESTART };

		sigemptyset(&sa.sa_mask);
		if (sigaction(mon.dump_sig, &sa, &mon.old_act) < 0) {
			weft__log("weft: dump signal %d: sigaction: %s; no "
				  "dump on it\n", mon.dump_sig,
				  strerror(errno));
			mon.dump_sig = 0;
		}
	}
}

/* Restore the dump signal's action.  Caller: weft_run, after the run. */
void
weft__diag_teardown(void)
{
	if (mon.dump_sig)
		sigaction(mon.dump_sig, &mon.old_act, NULL);
	mon.dump_sig = 0;
}

/* The counters weft_stats() reports.  Any thread. */
void
weft__diag_counters(uint64_t *slow_tasks, uint64_t *deadlocks)
{
	*slow_tasks = ck_pr_load_64(&mon.slow_tasks);
	*deadlocks = ck_pr_load_64(&mon.deadlocks);
}

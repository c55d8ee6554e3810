/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics: the monitor thread ("weft-mon"), the deadlock detector, the
 * slow-task report, weft_dump() and the dump-on-signal switch.
 *
 * The monitor is a plain thread that weft_run() starts after its workers
 * (whenever there are two or more, or a check below is on) and stops
 * before it joins them.  It wakes every MON_TICK_BUSY_MS while tasks make
 * progress or run and every MON_TICK_IDLE_MS otherwise, reads the workers'
 * counters racily (relaxed atomic loads of fields their owners store with
 * relaxed atomic stores) and never takes a lock a worker takes on its hot
 * path; the rescue of a stuck run-next (at slow_check()) takes sched.lock,
 * which a worker takes only to sleep or to wake another.  Two checks run
 * per tick besides that rescue:
 *
 * Slow tasks (asyncio's slow-callback warning).  st.tasks_run of a worker
 * is bumped at every switch to a task; if it has not changed for
 * WEFT_SLOW_MS while the worker's `cur` is a task, that task has kept the
 * worker for that long.  It is reported once per task (TASK_SLOW).
 *
 * Deadlocks (Go's "all goroutines are asleep").  Evaluated only when the
 * world looks stable: every worker on the idle list with empty queues, no
 * timer armed on any worker (sleeps and deadlines are timers), no I/O in
 * flight (io_ops == io_done summed over the workers), no blocking-pool job
 * queued or running (weft__pool_busy()), and no thread in the process but
 * weft's own (a user's thread may hold a channel and send later).  The same progress
 * counters on two consecutive ticks rule out a worker caught between two
 * of those reads; the task walk is then checked again against them.  Every
 * live task must be SUSPENDED.  The report lists each task and the cycles
 * of the wait-for graph (a join points at the joined task, a future at the
 * task that will complete it).
 *
 * Costs: one thread waking 50 times a second while busy; the /proc scan
 * and the walk over every task happen only when all workers sleep with
 * tasks alive, i.e. at most every MON_TICK_IDLE_MS in a program that waits
 * for a foreign thread.
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
#include <unistd.h>

#include "runtime/future.h"
#include "runtime/runtime.h"
#include "sched/park.h"
#include "sched/sched.h"

#define MON_TICK_BUSY_MS 20
#define MON_TICK_IDLE_MS 100
#define SLOW_MS_DEFAULT 100
#define DUMP_MAX_TASKS 10000	/* lines of tasks a dump or report prints */

enum dl_mode {
	DL_ABORT = 0,		/* default: report, then abort() */
	DL_REPORT,		/* WEFT_DEADLOCK=report: report once, go on */
	DL_OFF,			/* WEFT_DEADLOCK=off */
};

/* The progress counters, summed over the workers. */
struct progress {
	uint64_t tasks_run;
	uint64_t wakeups;
	uint64_t parks;
	uint64_t timers_fired;
	uint64_t io_ops;
	uint64_t io_done;
	uint64_t spawned;
	uint64_t exited;
};

/* The monitor's view of one worker.  Monitor thread only. */
struct mon_worker {
	uint64_t tick;		/* st.tasks_run when last seen changing */
	int64_t since;		/* when that was */
	uint64_t checked;	/* tick already looked at for a slow task */
};

static struct {
	/*
	 * Written by weft__diag_start() before the monitor thread is created
	 * and read by it (pthread_create orders them); immutable while it
	 * runs, torn down by weft__diag_stop() after it was joined.
	 */
	bool started;
	pthread_t thread;
	int efd;			/* eventfd: stop and dump requests */
	enum dl_mode mode;
	int64_t slow_ns;		/* 0: slow-task report off */
	int dump_sig;			/* 0: no dump signal */
	struct sigaction old_act;	/* dump_sig's action before ours */
	struct mon_worker *mw;		/* nworkers entries: monitor only */

	/* Monitor thread only. */
	pid_t tid;
	int stable_ticks;		/* ticks the idle state has held */
	struct progress last;		/* progress at the previous tick */
	bool reported;			/* this deadlock was reported */
	struct progress reported_at;

	/* Atomics (ck_pr): any thread. */
	uint32_t stop;			/* weft__diag_stop() wants it gone */
	uint32_t dump_req;		/* the dump signal arrived */
	uint64_t slow_tasks;		/* weft_stats().slow_tasks */
	uint64_t deadlocks;		/* weft_stats().deadlocks */
} mon = {
	.efd = -1,
};

/*
 * The eventfd the signal handler writes: -1 when there is none.  Stored
 * before the handler is installed and after it is removed (release),
 * loaded by the handler.
 */
static int sig_efd = -1;

int64_t weft__wait_clock;

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
 * the joined task, or the task of a task future.
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
 * Snapshots of tasks
 */

struct tinfo {
	const struct weft_task *t;
	const struct weft_task *to;	/* wait_target(), or NULL */
	const void *obj;
	uint64_t id;
	int64_t since;
	uint32_t state;
	uint8_t kind;
	int worker;			/* running on it, or -1 */
	int next;			/* index of `to` in the snapshot, or -1 */
	char name[24];
};

struct snap {
	struct tinfo *v;
	size_t n;
	size_t cap;
	size_t total;			/* tasks walked, even if not stored */
	bool nomem;
};

/* weft__tasks_foreach() callback: copy one task.  Holds a reference. */
static void
snap_one(struct weft_task *t, void *arg)
{
	struct weft__sched *s = &weft__sched;
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
	ti->t = t;
	ti->id = t->id;
	memcpy(ti->name, t->name, sizeof(ti->name));
	ti->name[sizeof(ti->name) - 1] = '\0';
	ti->state = ck_pr_load_32(&t->state);
	/* Racy for a running task (a snapshot); stable for a parked one. */
	ti->kind = ck_pr_load_8(&t->wait_kind);
	ti->obj = ck_pr_load_ptr(&t->wait_obj);
	ti->since = (int64_t)ck_pr_load_64((uint64_t *)&t->wait_since);
	ti->to = ti->state == WEFT_SUSPENDED ?
		 wait_target(ti->kind, ti->obj) : NULL;
	ti->next = -1;
	ti->worker = -1;
	for (int i = 0; i < s->nworkers; i++)
		if (ck_pr_load_ptr(&s->workers[i].cur) == t)
			ti->worker = i;
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
static bool
snap_take(struct snap *sn)
{
	memset(sn, 0, sizeof(*sn));
	weft__tasks_foreach(snap_one, sn);
	if (sn->nomem)
		return false;
	qsort(sn->v, sn->n, sizeof(*sn->v), cmp_id);
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
		free(byp);
	}
	return true;
}

static void
snap_free(struct snap *sn)
{
	free(sn->v);
	sn->v = NULL;
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

static void
print_task(FILE *out, const struct snap *sn, const struct tinfo *ti,
	   int64_t now)
{
	fprintf(out, "  task #%" PRIu64 " \"%s\" %s", ti->id, ti->name,
		state_name(ti->state));
	if (ti->worker >= 0)
		fprintf(out, " on worker %d", ti->worker);
	if (ti->state == WEFT_SUSPENDED) {
		fprintf(out, ": waiting on %s", wait_name(ti->kind));
		if (ti->obj)
			fprintf(out, " %p", ti->obj);
		if (ti->next >= 0) {
			fputs(" (", out);
			print_ref(out, &sn->v[ti->next]);
			fputc(')', out);
		}
		/* No clock without the monitor (weft__wait_clock). */
		if (ti->since)
			fprintf(out, " for %" PRId64 " ms",
				now > ti->since ?
				(now - ti->since) / WEFT_MSEC : 0);
	}
	fputc('\n', out);
}

static void
print_tasks(FILE *out, const struct snap *sn, int64_t now)
{
	for (size_t i = 0; i < sn->n && i < DUMP_MAX_TASKS; i++)
		print_task(out, sn, &sn->v[i], now);
	if (sn->total > DUMP_MAX_TASKS)
		fprintf(out, "  ... and %zu more\n",
			sn->total - DUMP_MAX_TASKS);
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

/* Caller holds weft__stats_lock (the workers array cannot go away). */
static void
print_workers(FILE *out)
{
	struct weft__sched *s = &weft__sched;

	for (int i = 0; i < s->nworkers; i++) {
		const struct weft__worker *w = &s->workers[i];
		const struct weft_worker_stats *st = &w->st;

		fprintf(out, "  worker %d: tasks_run %" PRIu64 ", steals %"
			PRIu64 " (%" PRIu64 " tasks), parks %" PRIu64
			", wakeups %" PRIu64 ", timers %" PRIu64
			", io submitted %" PRIu64 ", io completed %" PRIu64
			", io enters %" PRIu64 "%s\n", i,
			ck_pr_load_64(&st->tasks_run),
			ck_pr_load_64(&st->steals), ck_pr_load_64(&st->stolen),
			ck_pr_load_64(&st->parks), ck_pr_load_64(&st->wakeups),
			ck_pr_load_64(&st->timers_fired),
			ck_pr_load_64(&st->io_ops), ck_pr_load_64(&st->io_done),
			ck_pr_load_64(&st->io_enters),
			ck_pr_load_ptr(&w->cur) ? "" : ", idle");
	}
}

/*
 * The body of weft_dump() while a run lasts.  Caller holds weft__stats_lock
 * (the workers array cannot go away).
 */
static void
dump_locked(FILE *out, const struct weft_stats *st)
{
	struct snap sn;
	int64_t now = weft_now();

	fprintf(out, "weft: dump: %d workers (%s), %" PRIu64
		" tasks live, %" PRIu64 " spawned\n", weft__sched.nworkers,
		weft__sched.io_ops->name, st->tasks_live, st->tasks_spawned);
	print_workers(out);
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
		print_tasks(out, &sn, now);
		print_cycles(out, &sn);
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
	pthread_mutex_lock(&weft__stats_lock);
	if (weft__sched.workers && ck_pr_load_32(&weft__sched.running))
		dump_locked(out, &st);
	else
		fputs("weft: dump: no runtime is running\n", out);
	pthread_mutex_unlock(&weft__stats_lock);
	if (fflush(out) != 0 || ferror(out))
		ret = -EIO;
	return ret;
}

/*
 * The deadlock detector.  Monitor thread only.
 */

static void
progress_read(struct progress *p)
{
	struct weft__sched *s = &weft__sched;

	memset(p, 0, sizeof(*p));
	for (int i = 0; i < s->nworkers; i++) {
		struct weft__worker *w = &s->workers[i];

		p->tasks_run += ck_pr_load_64(&w->st.tasks_run);
		p->wakeups += ck_pr_load_64(&w->st.wakeups);
		p->parks += ck_pr_load_64(&w->st.parks);
		p->timers_fired += ck_pr_load_64(&w->st.timers_fired);
		p->io_ops += ck_pr_load_64(&w->st.io_ops);
		p->io_done += ck_pr_load_64(&w->st.io_done);
		p->spawned += ck_pr_load_64(&w->spawned);
		p->exited += ck_pr_load_64(&w->exited);
	}
}

static bool
progress_eq(const struct progress *a, const struct progress *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/*
 * Every worker asleep with nothing to do and nothing that could wake it
 * but another task: the cheap, lock-free part of the rule.
 */
static bool
world_idle(const struct progress *p)
{
	struct weft__sched *s = &weft__sched;

	if (ck_pr_load_32(&s->stopping) ||
	    ck_pr_load_32(&s->npidle) != (uint32_t)s->nworkers ||
	    ck_pr_load_32(&s->nspinning) || ck_pr_load_32(&s->gq_len))
		return false;
	if (p->io_ops != p->io_done)
		return false;
	for (int i = 0; i < s->nworkers; i++) {
		struct weft__worker *w = &s->workers[i];

		/*
		 * A lone worker writes its run-next slot with plain stores
		 * (no thieves): look only at its ring then.  It is on the
		 * idle list, so its run-next was empty when it went there,
		 * and only it can fill the slot.
		 */
		if (ck_pr_load_ptr(&w->cur) ||
		    (w->solo ? ck_ring_size(&w->runq) != 0 :
		     !weft__runq_empty(w)) ||
		    weft__timers_next(&w->timers) != INT64_MAX)
			return false;
	}
	/* Takes each pool's lock: only when everything else is idle. */
	return weft__pool_busy() == 0;
}

static bool
is_worker_tid(pid_t tid)
{
	struct weft__sched *s = &weft__sched;

	for (int i = 0; i < s->nworkers; i++)
		if (s->workers[i].tid == tid)
			return true;
	return false;
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
		if (tid == mon.tid || is_worker_tid(tid))
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

		if (ti->state != WEFT_SUSPENDED || ti->kind == WAIT_SLEEP ||
		    ti->kind == WAIT_IO || ti->kind == WAIT_POOL)
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
		fputs("weft: all tasks are asleep - deadlock!\n", stderr);
	} else {
		fputs("weft: all tasks are asleep - deadlock!\n", out);
		print_tasks(out, sn, now);
		print_cycles(out, sn);
		if (mon.mode == DL_REPORT)
			fputs("weft: WEFT_DEADLOCK=report: waiting on\n", out);
		fclose(out);
		fwrite(buf, 1, len, stderr);
		fflush(stderr);
		free(buf);
	}
	ck_pr_inc_64(&mon.deadlocks);
	if (mon.mode == DL_ABORT)
		abort();
}

static void
deadlock_check(void)
{
	struct weft__sched *s = &weft__sched;
	struct progress now, after;
	struct snap sn;
	uint64_t live;
	bool stuck;

	progress_read(&now);
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
	pthread_mutex_lock(&s->lock);
	live = weft__tasks_live();
	pthread_mutex_unlock(&s->lock);
	if (live == 0 || !only_weft_threads())
		goto out;
	if (!snap_take(&sn)) {
		snap_free(&sn);
		goto out;
	}
	stuck = all_stuck(&sn) && sn.n == live;
	progress_read(&after);
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
 * Returns true if any worker switched tasks since the last tick or is
 * inside a task.  Also the rescue of weft__ready_w()'s run-next rule: a
 * worker that has stayed in one task for a whole tick with work queued
 * (a run-next that its waker did not leave for) gets an idle worker woken
 * to steal it, as Go's sysmon retakes a P stuck in one goroutine.
 */
static bool
slow_check(int64_t now)
{
	struct weft__sched *s = &weft__sched;
	bool busy = false;
	bool rescue = false;

	for (int i = 0; i < s->nworkers; i++) {
		struct weft__worker *w = &s->workers[i];
		struct mon_worker *m = &mon.mw[i];
		uint64_t tick = ck_pr_load_64(&w->st.tasks_run);
		struct weft_task *cur = ck_pr_load_ptr(&w->cur);
		uint32_t flags;
		uint64_t id;
		char name[24];
		bool first = false;

		busy |= tick != m->tick || cur;
		if (tick != m->tick || !cur) {
			m->tick = tick;
			m->since = now;
			continue;
		}
		/* In one task for a whole tick. */
		if (!weft__runq_empty(w))
			rescue = true;
		if (!mon.slow_ns || now - m->since < mon.slow_ns ||
		    m->checked == tick)
			continue;
		m->checked = tick;
		/*
		 * A reference pins the descriptor (the main task's never
		 * drops to zero while the run lasts) while we read it; the
		 * tick, unchanged when we mark it, says it was still this
		 * run of this task.
		 */
		if (!weft__task_tryref(cur))
			continue;
		id = cur->id;
		memcpy(name, cur->name, sizeof(name));
		name[sizeof(name) - 1] = '\0';
		flags = ck_pr_load_32(&cur->flags);
		while (ck_pr_load_64(&w->st.tasks_run) == tick &&
		       !(flags & TASK_SLOW))
			if (ck_pr_cas_32_value(&cur->flags, flags,
					       flags | TASK_SLOW, &flags)) {
				first = true;
				break;
			}
		weft__task_unref(NULL, cur);
		if (!first)
			continue;
		ck_pr_inc_64(&mon.slow_tasks);
		fprintf(stderr, "weft: slow task #%" PRIu64 " \"%s\" has kept "
			"worker %d busy for %" PRId64 " ms (WEFT_SLOW_MS=%"
			PRId64 ")\n", id, name, i,
			(now - m->since) / WEFT_MSEC, mon.slow_ns / WEFT_MSEC);
	}
	if (rescue)
		weft__wakep_slow(NULL);
	return busy;
}

/*
 * The monitor thread
 */

static void *
mon_main(void *unused)
{
	int tick_ms = MON_TICK_BUSY_MS;

	(void)unused;
	mon.tid = gettid();
	for (;;) {
		struct pollfd pfd = { .fd = mon.efd, .events = POLLIN };
		uint64_t v;
		int64_t now;
		bool busy;

		if (poll(&pfd, 1, tick_ms) > 0)
			(void)!read(mon.efd, &v, sizeof(v));
		if (ck_pr_load_32(&mon.stop))
			break;
		if (ck_pr_fas_32(&mon.dump_req, 0))
			weft_dump(stderr);
		now = weft_now();
		/* Read by every park: one store a tick dirties its line. */
		ck_pr_store_64((uint64_t *)&weft__wait_clock, (uint64_t)now);
		busy = slow_check(now);
		if (mon.mode != DL_OFF)
			deadlock_check();
		tick_ms = busy ? MON_TICK_BUSY_MS : MON_TICK_IDLE_MS;
	}
	return NULL;
}

/* Any thread; async-signal-safe. */
static void
dump_handler(int sig)
{
	int saved = errno;
	int fd = ck_pr_load_int(&sig_efd);
	uint64_t one = 1;

	(void)sig;
	ck_pr_store_32(&mon.dump_req, 1);
	if (fd >= 0)
		(void)!write(fd, &one, sizeof(one));
	errno = saved;
}

/* "SIGUSR1", "USR1" or a number; 0 if it names no catchable signal. */
static int
parse_signal(const char *name)
{
	char *end;
	long n;

	if (!name || !*name)
		return 0;
	n = strtol(name, &end, 10);
	if (!*end)
		return n > 0 && n < NSIG && n != SIGKILL && n != SIGSTOP ?
		       (int)n : 0;
	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (int i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);

		if (abbrev && strcmp(abbrev, name) == 0)
			return i == SIGKILL || i == SIGSTOP ? 0 : i;
	}
	return 0;
}

static void
read_env(void)
{
	const char *e;

	mon.mode = DL_ABORT;
	e = getenv("WEFT_DEADLOCK");
	if (e && strcmp(e, "report") == 0)
		mon.mode = DL_REPORT;
	else if (e && (strcmp(e, "off") == 0 || strcmp(e, "0") == 0))
		mon.mode = DL_OFF;
	mon.slow_ns = (int64_t)SLOW_MS_DEFAULT * WEFT_MSEC;
	e = getenv("WEFT_SLOW_MS");
	if (e && *e) {
		char *end;
		long long ms = strtoll(e, &end, 10);

		if (!*end && ms >= 0)
			mon.slow_ns = (int64_t)ms * WEFT_MSEC;
	}
	mon.dump_sig = parse_signal(getenv("WEFT_DUMP_SIGNAL"));
	if (getenv("WEFT_DUMP_SIGNAL") && !mon.dump_sig)
		fprintf(stderr, "weft: WEFT_DUMP_SIGNAL=%s: not a signal\n",
			getenv("WEFT_DUMP_SIGNAL"));
}

/*
 * Start the monitor for a run whose workers are all set up (their tids
 * recorded) and have not started running tasks.  Failing to start it only
 * loses the diagnostics.  Caller: weft_run, holding start.lock.
 */
void
weft__diag_start(void)
{
	sigset_t all, old;
	int ret;

	ck_pr_store_64(&mon.slow_tasks, 0);
	ck_pr_store_64(&mon.deadlocks, 0);
	read_env();
	/* With one worker there is nobody to rescue a run-next for. */
	if (mon.mode == DL_OFF && !mon.slow_ns && !mon.dump_sig &&
	    weft__sched.nworkers < 2)
		return;
	mon.mw = calloc((size_t)weft__sched.nworkers, sizeof(*mon.mw));
	mon.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!mon.mw || mon.efd < 0)
		goto out_free;
	ck_pr_store_64((uint64_t *)&weft__wait_clock, (uint64_t)weft_now());
	mon.stop = 0;
	mon.dump_req = 0;
	mon.stable_ticks = 0;
	mon.reported = false;
	/* Signals go to the program's threads, not to ours. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&mon.thread, NULL, mon_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		goto out_free;
	pthread_setname_np(mon.thread, "weft-mon");
	mon.started = true;
	if (mon.dump_sig) {
		struct sigaction sa = { .sa_handler = dump_handler,
					.sa_flags = SA_RESTART };

		sigemptyset(&sa.sa_mask);
		/* Before the handler can run: pairs with its load. */
		ck_pr_store_int(&sig_efd, mon.efd);
		if (sigaction(mon.dump_sig, &sa, &mon.old_act) < 0)
			mon.dump_sig = 0;
	}
	return;

out_free:
	if (mon.efd >= 0)
		close(mon.efd);
	mon.efd = -1;
	free(mon.mw);
	mon.mw = NULL;
}

/*
 * Stop and join the monitor.  Caller: weft_run, after worker 0's loop
 * ended and before the workers are joined and freed.
 */
void
weft__diag_stop(void)
{
	uint64_t one = 1;

	if (!mon.started)
		return;
	if (mon.dump_sig) {
		sigaction(mon.dump_sig, &mon.old_act, NULL);
		ck_pr_store_int(&sig_efd, -1);
	}
	ck_pr_store_32(&mon.stop, 1);
	(void)!write(mon.efd, &one, sizeof(one));
	pthread_join(mon.thread, NULL);
	mon.started = false;
	ck_pr_store_64((uint64_t *)&weft__wait_clock, 0);
	close(mon.efd);
	mon.efd = -1;
	free(mon.mw);
	mon.mw = NULL;
}

/* The counters weft_stats() reports.  Any thread. */
void
weft__diag_counters(uint64_t *slow_tasks, uint64_t *deadlocks)
{
	*slow_tasks = ck_pr_load_64(&mon.slow_tasks);
	*deadlocks = ck_pr_load_64(&mon.deadlocks);
}

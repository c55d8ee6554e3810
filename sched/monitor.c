/* SPDX-License-Identifier: MIT */
/*
 * The monitor thread ("weft-mon", Go's sysmon): the core's own watchdog,
 * and the clock and the eyes that the diagnostics (runtime/diag.c) hook
 * onto.
 *
 * It is a plain thread that weft__sched_run() starts once every worker is
 * set up (whenever there are two workers or more, or a diagnostic wants it)
 * and stops before it joins them.  It wakes every MON_TICK_BUSY_MS while
 * tasks make progress or run and every MON_TICK_IDLE_MS otherwise, reads
 * the workers' counters racily (relaxed atomic loads of fields their owners
 * store with relaxed atomic stores) and never takes a lock a worker takes
 * on its hot path.  Each tick it:
 *
 *  - runs the diagnostics' dump hook (a dump requested by signal);
 *  - stores the wait clock (weft__wait_clock) that every park stamps;
 *  - watches each worker's switch tick (st.tasks_run, bumped at every switch
 *    to a task): a worker that stayed in one task for a whole tick with work
 *    queued gets an idle worker woken (weft__wakep_slow(NULL), under
 *    sched.lock) to steal it, the rescue of weft__ready_on()'s run-next rule,
 *    as Go's sysmon retakes a P stuck in one goroutine; one that stayed in
 *    one task for slow_ns has it marked TASK_SLOW (once per task) and
 *    reported through the slow hook;
 *  - runs the diagnostics' tick hook (the deadlock detector), which looks at
 *    the world through the observers below.
 *
 * Costs: one thread waking 50 times a second while busy.
 */
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sched/park.h"
#include "sched/sched.h"

#define MON_TICK_BUSY_MS 20
#define MON_TICK_IDLE_MS 100

/* The monitor's view of one worker.  Monitor thread only. */
struct mon_worker {
	uint64_t tick;		/* st.tasks_run when last seen changing */
	int64_t since;		/* when that was */
	uint64_t checked;	/* tick already looked at for a slow task */
	/* A task reported slow that has not given the worker back yet. */
	bool slow_live;
	uint64_t slow_tick;	/* the tick it was reported at */
	uint64_t slow_id;
	char slow_name[24];
};

/*
 * Sampling a slow task where it runs: the monitor signals its worker
 * (SAMPLE_SIG, the signal Go preempts with, ignored by default and rarely
 * used by programs) and the handler, on the worker, walks the frame
 * pointers from the interrupted registers.  Installed for a run only if the
 * program left the signal at its default or ignored; a worker inside a
 * system call is not signalled (its call could fail with EINTR): the
 * kernel's /proc/self/task/TID/syscall says which call and from where.
 *
 * `armed` is set (full barrier) by the monitor after tid, lo and hi, and
 * taken back by exactly one of the handler (CAS, then it writes `s` and
 * sets `done`, release) and the monitor giving up on a late signal (CAS).
 */
#define SAMPLE_SIG SIGURG
#define SAMPLE_WAIT_MS 50

static struct {
	pid_t tid;
	uintptr_t lo, hi;		/* the task's stack */
	uint32_t armed;
	uint32_t done;
	struct weft__sample s;
	bool installed;			/* monitor only */
	struct sigaction old;		/* monitor only */
} smp;

static struct {
	/*
	 * Written by weft__monitor_start() before the monitor thread is
	 * created and read by it (pthread_create orders them); immutable
	 * while it runs, torn down by weft__monitor_stop() after it was
	 * joined.
	 */
	bool started;
	pthread_t thread;
	struct weft__monitor_cfg cfg;
	struct mon_worker *mw;		/* nworkers entries: monitor only */

	/* Monitor thread only. */
	pid_t tid;

	/*
	 * eventfd: stop and kick requests.  Stored (release) before the
	 * thread starts and set to -1 before it is closed; loaded by
	 * weft__monitor_kick(), which a signal handler calls.
	 */
	int efd;
	/* Atomics (ck_pr): any thread. */
	uint32_t stop;			/* weft__monitor_stop() wants it gone */
	pid_t tid_pub;			/* tid, for weft__sched_owns_tid() */
} mon = {
	.efd = -1,
};

int64_t weft__wait_clock;

/*
 * Observers for the diagnostics (declared in sched/park.h).  Any thread
 * while a run lasts; racy snapshots unless the world is idle.
 */

void
weft__sched_progress(struct weft__progress *p)
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

bool
weft__sched_quiescent(const struct weft__progress *p)
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
	return true;
}

bool
weft__sched_owns_tid(pid_t tid)
{
	struct weft__sched *s = &weft__sched;

	if (tid == ck_pr_load_int(&mon.tid_pub))
		return true;
	for (int i = 0; i < s->nworkers; i++)
		if (s->workers[i].tid == tid)
			return true;
	return false;
}

uint64_t
weft__sched_tasks_live(void)
{
	uint64_t live;

	weft__mutex_lock(&weft__sched.lock, WEFT_RANK_SCHED);
	live = weft__tasks_live();
	weft__mutex_unlock(&weft__sched.lock);
	return live;
}

int
weft__task_worker(const struct weft_task *t)
{
	struct weft__sched *s = &weft__sched;
	int worker = -1;

	for (int i = 0; i < s->nworkers; i++)
		if (ck_pr_load_ptr(&s->workers[i].cur) == t)
			worker = i;
	return worker;
}

void
weft__sched_print_workers(FILE *out)
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
 * Any thread; async-signal-safe.  Not instrumented by ASan: a frame chain
 * is read word by word, and a corrupt one may point into a redzone (the
 * walk stays inside the stack, which is mapped).
 */
__attribute__((no_sanitize_address)) static void
sample_handler(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	uintptr_t pc, fp, sp;
	struct weft__sample *s = &smp.s;

	(void)sig;
	(void)si;
	if (gettid() != ck_pr_load_int(&smp.tid) ||
	    !ck_pr_cas_32(&smp.armed, 1, 0)) {
		errno = saved;
		return;
	}
	weft__ctx_interrupted(uc, &pc, &fp, &sp);
	s->syscall = -1;
	s->n = 0;
	s->pc[s->n++] = pc;
	/* Our own stack, read only between sp and its top: mapped. */
	if (sp >= smp.lo && sp < smp.hi)
		while (s->n < WEFT_SAMPLE_MAX && fp >= sp && !(fp & 7) &&
		       fp + 16 <= smp.hi) {
			const uintptr_t *rec = (const uintptr_t *)fp;

			if (!rec[1])
				break;
			s->pc[s->n++] = rec[1];
			if (rec[0] <= fp)
				break;
			fp = rec[0];
		}
	/* Release: the sample before `done`; pairs with sample_task(). */
	ck_pr_fence_store();
	ck_pr_store_32(&smp.done, 1);
	errno = saved;
}

/* Install the sampler for a run.  Monitor start only. */
static void
sample_install(void)
{
	struct sigaction sa = { .sa_sigaction = sample_handler,
				.sa_flags = SA_SIGINFO | SA_RESTART |
					    SA_ONSTACK };

	smp.installed = false;
	if (sigaction(SAMPLE_SIG, NULL, &smp.old) < 0 ||
	    (smp.old.sa_flags & SA_SIGINFO) ||
	    (smp.old.sa_handler != SIG_DFL && smp.old.sa_handler != SIG_IGN))
		return;
	sigemptyset(&sa.sa_mask);
	smp.installed = sigaction(SAMPLE_SIG, &sa, NULL) == 0;
}

static void
sample_remove(void)
{
	if (smp.installed)
		sigaction(SAMPLE_SIG, &smp.old, NULL);
	smp.installed = false;
}

/*
 * Where worker w's thread is: in a system call (read from /proc, no
 * signal), else sampled by the handler.  `st` is the running task's stack.
 * Fills *out (n 0: unknown).  Monitor thread only.
 */
static void
sample_task(const struct weft__worker *w, const struct weft__stack *st,
	    struct weft__sample *out)
{
	char path[64], buf[256];
	unsigned long long v[9];
	ssize_t n;
	int fd;

	out->n = 0;
	out->syscall = -1;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", w->tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* "NR a1 .. a6 sp pc" inside a call, "running" or "-1 sp pc" not. */
	if (strncmp(buf, "running", 7) != 0 && buf[0] != '-') {
		if (sscanf(buf, "%llu %llx %llx %llx %llx %llx %llx %llx %llx",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7], &v[8]) == 9) {
			out->syscall = (long)v[0];
			out->pc[0] = (uintptr_t)v[8];
			out->n = 1;
		}
		return;
	}
	if (!smp.installed || !st)
		return;
	ck_pr_store_int(&smp.tid, w->tid);
	smp.lo = (uintptr_t)st->lo;
	smp.hi = (uintptr_t)st->lo + st->size;
	ck_pr_store_32(&smp.done, 0);
	/* Full barrier: the fields above before the handler's CAS. */
	ck_pr_fas_32(&smp.armed, 1);
	if (syscall(SYS_tgkill, getpid(), w->tid, SAMPLE_SIG) < 0) {
		ck_pr_store_32(&smp.armed, 0);
		return;
	}
	for (int i = 0; i < SAMPLE_WAIT_MS; i++) {
		struct timespec ms = { 0, WEFT_MSEC };

		if (ck_pr_load_32(&smp.done)) {
			/* Acquire: pairs with the handler's release. */
			ck_pr_fence_load();
			*out = smp.s;
			return;
		}
		nanosleep(&ms, NULL);
	}
	/* Too late: whichever CAS wins, a late handler writes nothing. */
	if (!ck_pr_cas_32(&smp.armed, 1, 0)) {
		while (!ck_pr_load_32(&smp.done))
			ck_pr_stall();
		ck_pr_fence_load();
		*out = smp.s;
	}
}

/*
 * Returns true if any worker switched tasks since the last tick or is
 * inside a task.  Rescues a stuck run-next and marks slow tasks (see the
 * top of the file).  Monitor thread only.
 */
static bool
workers_check(int64_t now)
{
	struct weft__sched *s = &weft__sched;
	int64_t slow_ns = mon.cfg.slow_ns;
	bool busy = false;
	bool rescue = false;

	for (int i = 0; i < s->nworkers; i++) {
		struct weft__worker *w = &s->workers[i];
		struct mon_worker *m = &mon.mw[i];
		uint64_t tick = ck_pr_load_64(&w->st.tasks_run);
		struct weft_task *cur = ck_pr_load_ptr(&w->cur);
		struct weft__sample where;
		uint32_t flags;
		uint64_t id;
		char name[24];
		bool first = false;

		busy |= tick != m->tick || cur;
		if (m->slow_live && tick != m->slow_tick) {
			/* The slow task gave the worker back (to a tick). */
			m->slow_live = false;
			if (mon.cfg.slow_end)
				mon.cfg.slow_end(m->slow_id, m->slow_name, i,
						 now - m->since);
		}
		if (tick != m->tick || !cur) {
			m->tick = tick;
			m->since = now;
			continue;
		}
		/*
		 * In one task for a whole tick.  A lone worker has nobody to
		 * be rescued by, and writes its run-next with plain stores
		 * (see weft__sched_quiescent): leave its queues alone.
		 */
		if (!w->solo && !weft__runq_empty(w))
			rescue = true;
		if (!slow_ns || now - m->since < slow_ns ||
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
		if (first) {
			sample_task(w, ck_pr_load_ptr(&cur->stack), &where);
			/* Still the same run of the same task? */
			if (ck_pr_load_64(&w->st.tasks_run) != tick)
				where.n = 0;
		}
		weft__task_unref(NULL, cur);
		if (!first)
			continue;
		m->slow_live = true;
		m->slow_tick = tick;
		m->slow_id = id;
		memcpy(m->slow_name, name, sizeof(name));
		if (mon.cfg.slow)
			mon.cfg.slow(id, name, i, now - m->since, &where);
	}
	if (rescue)
		weft__wakep_slow(NULL);
	return busy;
}

static void *
mon_main(void *unused)
{
	int tick_ms = MON_TICK_BUSY_MS;

	(void)unused;
	mon.tid = gettid();
	ck_pr_store_int(&mon.tid_pub, mon.tid);
	for (;;) {
		struct pollfd pfd = { .fd = mon.efd, .events = POLLIN };
		uint64_t v;
		int64_t now;
		bool busy;

		if (poll(&pfd, 1, tick_ms) > 0)
			(void)!read(mon.efd, &v, sizeof(v));
		if (ck_pr_load_32(&mon.stop)) {
			/* The run is over: every slow task has ended too. */
			now = weft_now();
			for (int i = 0; i < weft__sched.nworkers; i++)
				if (mon.mw[i].slow_live && mon.cfg.slow_end)
					mon.cfg.slow_end(mon.mw[i].slow_id,
							 mon.mw[i].slow_name,
							 i, now -
							 mon.mw[i].since);
			break;
		}
		if (mon.cfg.dump)
			mon.cfg.dump();
		now = weft_now();
		/* Read by every park: one store a tick dirties its line. */
		ck_pr_store_64((uint64_t *)&weft__wait_clock, (uint64_t)now);
		busy = workers_check(now);
		if (mon.cfg.tick)
			mon.cfg.tick();
		tick_ms = busy ? MON_TICK_BUSY_MS : MON_TICK_IDLE_MS;
	}
	return NULL;
}

/* Any thread; async-signal-safe. */
void
weft__monitor_kick(void)
{
	int fd = ck_pr_load_int(&mon.efd);
	uint64_t one = 1;

	if (fd >= 0)
		(void)!write(fd, &one, sizeof(one));
}

/*
 * Start the monitor for a run whose workers are all set up (their tids
 * recorded) and have not started running tasks.  Failing to start it only
 * loses the rescue and the diagnostics.  Caller: weft__sched_run(),
 * holding start.lock.
 */
void
weft__monitor_start(const struct weft__monitor_cfg *cfg)
{
	sigset_t all, old;
	int efd, ret;

	mon.cfg = *cfg;
	/* With one worker there is nobody to rescue a run-next for. */
	if (!cfg->wanted && weft__sched.nworkers < 2)
		return;
	mon.mw = calloc((size_t)weft__sched.nworkers, sizeof(*mon.mw));
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!mon.mw || efd < 0)
		goto out_free;
	ck_pr_store_64((uint64_t *)&weft__wait_clock, (uint64_t)weft_now());
	mon.stop = 0;
	ck_pr_store_int(&mon.tid_pub, 0);
	/* Before a kick can load it: pairs with weft__monitor_kick(). */
	ck_pr_store_int(&mon.efd, efd);
	/* Signals go to the program's threads, not to ours. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&mon.thread, NULL, mon_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		goto out_free;
	pthread_setname_np(mon.thread, "weft-mon");
	mon.started = true;
	if (cfg->slow_ns)
		sample_install();
	return;

out_free:
	ck_pr_store_int(&mon.efd, -1);
	if (efd >= 0)
		close(efd);
	free(mon.mw);
	mon.mw = NULL;
}

/*
 * Stop and join the monitor.  Caller: weft__sched_run(), after worker 0's
 * loop ended and before the workers are joined and freed.
 */
void
weft__monitor_stop(void)
{
	uint64_t one = 1;
	int efd = mon.efd;

	if (!mon.started)
		return;
	ck_pr_store_32(&mon.stop, 1);
	(void)!write(efd, &one, sizeof(one));
	pthread_join(mon.thread, NULL);
	sample_remove();
	mon.started = false;
	ck_pr_store_64((uint64_t *)&weft__wait_clock, 0);
	ck_pr_store_int(&mon.efd, -1);
	ck_pr_store_int(&mon.tid_pub, 0);
	close(efd);
	free(mon.mw);
	mon.mw = NULL;
}

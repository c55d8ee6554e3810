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
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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
};

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
		weft__task_unref(NULL, cur);
		if (first && mon.cfg.slow)
			mon.cfg.slow(id, name, i, now - m->since);
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
		if (ck_pr_load_32(&mon.stop))
			break;
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
	mon.started = false;
	ck_pr_store_64((uint64_t *)&weft__wait_clock, 0);
	ck_pr_store_int(&mon.efd, -1);
	ck_pr_store_int(&mon.tid_pub, 0);
	close(efd);
	free(mon.mw);
	mon.mw = NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * The composition root: weft_run() puts a run together (configuration,
 * stacks, signals, the scheduler, the monitor and its diagnostics, futures'
 * orphans) and takes it apart again, and the stats calls read what it
 * built.  The one file of runtime/ that sees the core's private header.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/future.h"
#include "runtime/runtime.h"
#include "sched/park.h"
#include "sched/sched.h"

/*
 * Serialises weft_run() callers.  Outside the lock order (io/base.h): it
 * is only ever trylocked, so it cannot take part in a deadlock, and its
 * holder is worker 0's thread for the whole run, under every task that
 * runs there.
 */
static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;

/* Stats of the last run, readable after it ended.  Under weft__stats_lock. */
pthread_mutex_t weft__stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_worker_stats *last_wstats;
static struct weft_stats last_stats;
/*
 * The backend of the last run that ran (weft__sched_run() returned 0): a
 * run whose rings could not be made names a backend that never worked.
 * Stored under weft__stats_lock; weft_io_backend() loads it without the
 * lock (atomic pointer load and store: it points at a constant string, so
 * a reader needs nothing else ordered).
 */
static const char *last_backend;

/* `ran`: the scheduler ran (weft__sched_run() returned 0). */
static void
snapshot_stats(bool ran)
{
	struct weft__sched *s = &weft__sched;
	struct weft_worker_stats *ws;

	ws = calloc((size_t)s->nworkers, sizeof(*ws));
	weft__mutex_lock(&weft__stats_lock, WEFT_RANK_STATS);
	free(last_wstats);
	last_wstats = ws;
	if (ws)
		for (int i = 0; i < s->nworkers; i++)
			ws[i] = s->workers[i].st;
	memset(&last_stats, 0, sizeof(last_stats));
	last_stats.workers = ws ? s->nworkers : 0;
	last_stats.tasks_spawned = s->foreign_spawned;
	for (int i = 0; i < s->nworkers; i++)
		last_stats.tasks_spawned += s->workers[i].spawned;
	if (ran)
		ck_pr_store_ptr(&last_backend, (void *)s->io_ops->name);
	weft__mutex_unlock(&weft__stats_lock);
}


int
weft_run(weft_fn fn, void *arg, const struct weft_config *cfg, void **result)
{
	struct weft__sched *s = &weft__sched;
	const struct weft__io_ops *ops;
	struct weft_task *main_task;
	struct weft__monitor_cfg mc;
	struct weft__config conf;
	struct sigaction old_pipe;
	sigset_t old_mask;
	bool pipe_ignored = false;
	int n, ret;

	if (weft__worker_self())
		return -EBUSY;
	if (!fn)
		return -EINVAL;
	ret = weft__config_resolve(cfg, &conf);
	if (ret < 0)
		return ret;
	n = conf.workers;
	ops = weft__io_select(conf.io_backend);
	if (!ops)
		return -EINVAL;
	if (pthread_mutex_trylock(&run_lock))
		return -EBUSY;
	/* Everything the run prints, from here until it returns. */
	weft__log_set(conf.log, conf.log_arg);
	/* Before any worker (or this thread) allocates for the run. */
	__atomic_store_n(&weft__fault_alloc_every, conf.fault_alloc,
			 __ATOMIC_RELAXED);
	ret = weft__pool_default_limit(conf.pool_threads);
	if (ret < 0)
		goto out_unlock;
	ret = weft__stack_setup(conf.stack_size, conf.guarded_stacks,
				conf.stack_guard, conf.workers);
	if (ret < 0)
		goto out_unlock;

	weft__mutex_lock(&weft__stats_lock, WEFT_RANK_STATS);
	s->workers = aligned_alloc(WEFT_CACHELINE,
				   sizeof(*s->workers) * (size_t)n);
	s->nworkers = s->workers ? n : 0;
	weft__mutex_unlock(&weft__stats_lock);
	if (!s->workers) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	s->io_ops = ops;
	s->nspinning = s->npidle = 0;
	s->stopping = 0;
	ck_pr_store_64(&s->held, 0);
	s->gq_head = s->gq_tail = NULL;
	s->gq_len = 0;
	s->idle_head = NULL;
	s->foreign_spawned = 0;
	weft__workers_init(n);

	ck_pr_store_64(&weft__conns_shed, 0);
	main_task = weft__task_make_main(fn, arg);
	if (!main_task) {
		ret = -ENOMEM;
		goto out_free_workers;
	}
	s->foreign_spawned = 1;
	/* No worker runs yet; the lock keeps the _locked contract. */
	weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
	weft__globrunq_put_locked(main_task);
	weft__mutex_unlock(&s->lock);

	ret = weft__stack_signals_install();
	if (ret < 0)
		goto out_free_main;
	/*
	 * A write to a closed pipe or socket returns -EPIPE instead of
	 * killing the process (as in Go), unless the program handles
	 * SIGPIPE itself.  io_uring's workers would raise it too.
	 */
	{
		struct sigaction ign = { .sa_handler = SIG_IGN };

		pipe_ignored = sigaction(SIGPIPE, NULL, &old_pipe) == 0 &&
			       old_pipe.sa_handler == SIG_DFL &&
			       sigaction(SIGPIPE, &ign, NULL) == 0;
	}
	weft__io_canceller = weft__iocall_cancel;
	/*
	 * Notified signals are unblocked for the workers to inherit; a dump
	 * signal that weft_signal_notify() took is dropped for this run.
	 */
	weft__signal_run_begin(&conf.dump_signal, &old_mask);
	/* The monitor's diagnostics, and the dump signal's handler. */
	weft__diag_setup(&conf, &mc);
	ck_pr_store_32(&s->running, 1);
	/* Done callbacks of futures completed while no runtime ran. */
	weft__future_adopt_orphans();
	ret = weft__sched_run(&mc);
	weft__diag_teardown();
	weft__signal_run_end(&old_mask);

	if (ret == 0 && result)
		*result = main_task->result;
	snapshot_stats(ret == 0);
	/*
	 * Under sched.lock: a foreign weft_spawn() checks `running` and
	 * allocates under it, so none is half-way when the pools go.
	 */
	weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
	ck_pr_store_32(&s->running, 0);
	weft__mutex_unlock(&s->lock);
	if (pipe_ignored)
		sigaction(SIGPIPE, &old_pipe, NULL);
	weft__stack_signals_remove();
	weft__stack_teardown();
	weft__task_pool_teardown();
out_free_main:
	/* Never ran if setup failed: still queued, so free it directly. */
	weft__task_forget_main();
	free(main_task);
out_free_workers:
	weft__mutex_lock(&weft__stats_lock, WEFT_RANK_STATS);
	free(s->workers);
	s->workers = NULL;
	s->nworkers = 0;
	weft__mutex_unlock(&weft__stats_lock);
out_unlock:
	weft__log_set(NULL, NULL);
	pthread_mutex_unlock(&run_lock);
	return ret;
}

int
weft_workers(void)
{
	if (!ck_pr_load_32(&weft__sched.running))
		return -ESRCH;
	return weft__sched.nworkers;
}

int
weft_worker_id(void)
{
	struct weft__worker *w = weft__worker_self();

	return w ? w->id : -EPERM;
}

const char *
weft_io_backend(void)
{
	if (ck_pr_load_32(&weft__sched.running))
		return weft__sched.io_ops->name;
	return ck_pr_load_ptr(&last_backend);
}

int
weft_stats(struct weft_stats *out)
{
	struct weft__sched *s = &weft__sched;
	int64_t w_in_use = 0, w_cached = 0;

	if (!out)
		return -EINVAL;
	weft__mutex_lock(&weft__stats_lock, WEFT_RANK_STATS);
	if (s->workers && ck_pr_load_32(&s->running)) {
		memset(out, 0, sizeof(*out));
		out->workers = s->nworkers;
		out->running = 1;
		weft__mutex_lock(&s->lock, WEFT_RANK_SCHED);
		out->tasks_live = weft__tasks_live();
		out->tasks_spawned = s->foreign_spawned;
		for (int i = 0; i < s->nworkers; i++) {
			struct weft__worker *w = &s->workers[i];

			out->tasks_spawned += ck_pr_load_64(&w->spawned);
			/* The workers' shares: see struct weft__worker. */
			w_in_use += (int64_t)ck_pr_load_64(
				(uint64_t *)&w->stacks_in_use);
			w_cached += (int64_t)ck_pr_load_64(
				(uint64_t *)&w->stacks_cached);
		}
		weft__mutex_unlock(&s->lock);
	} else {
		*out = last_stats;
	}
	weft__mutex_unlock(&weft__stats_lock);
	weft__stack_counters(&out->stacks_in_use, &out->stacks_cached,
			     &out->stacks_guarded, &out->stack_bytes_mapped);
	/* Read apart, the sums can be off by a stack in flight: clamp. */
	w_in_use += (int64_t)out->stacks_in_use;
	w_cached += (int64_t)out->stacks_cached;
	out->stacks_in_use = w_in_use > 0 ? (uint64_t)w_in_use : 0;
	out->stacks_cached = w_cached > 0 ? (uint64_t)w_cached : 0;
	weft__diag_counters(&out->slow_tasks, &out->deadlocks);
	out->spawns_refused = weft__spawns_refused();
	out->conns_shed = ck_pr_load_64(&weft__conns_shed);
	return 0;
}

int
weft_worker_stats(int worker, struct weft_worker_stats *out)
{
	struct weft__sched *s = &weft__sched;
	int ret = 0;

	if (!out)
		return -EINVAL;
	weft__mutex_lock(&weft__stats_lock, WEFT_RANK_STATS);
	if (s->workers && ck_pr_load_32(&s->running)) {
		if (worker < 0 || worker >= s->nworkers) {
			ret = -EINVAL;
		} else {
			const struct weft_worker_stats *src =
				&s->workers[worker].st;
			const uint64_t *a = (const uint64_t *)(const void *)src;
			uint64_t *b = (uint64_t *)(void *)out;

			for (size_t i = 0; i < sizeof(*out) / 8; i++)
				b[i] = ck_pr_load_64(&a[i]);
		}
	} else if (last_wstats && worker >= 0 &&
		   worker < last_stats.workers) {
		*out = last_wstats[worker];
	} else {
		ret = -EINVAL;
	}
	weft__mutex_unlock(&weft__stats_lock);
	return ret;
}

const char *
weft_version(void)
{
	return "0.1.0";
}

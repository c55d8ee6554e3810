/* SPDX-License-Identifier: MIT */
/*
 * This file is private to weft.  What the files of runtime/ share among
 * themselves: the blocking pool's internal entry points and the I/O call
 * layer's cancellation route.  It includes the core's seam (sched/park.h)
 * and nothing of sched/'s private header.
 */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "sched/park.h"

/*
 * A run's configuration with every fallback applied (runtime/config.c, the
 * one file that reads weft's environment variables).  Written by
 * weft__config_resolve() in weft_run before anything starts; read-only
 * after.
 */
struct weft__config {
	int workers;		/* 1..1024 */
	size_t stack_size;	/* 0: the stack layer's default */
	long guarded_stacks;	/* as weft_config.guarded_stacks */
	size_t stack_guard;	/* as weft_config.stack_guard (0: default) */
	const char *io_backend;	/* "uring"/"epoll", or NULL: automatic */
	int64_t slow_ns;	/* slow-task threshold; 0: no report */
	int deadlock;		/* WEFT_DEADLOCK_ABORT, _REPORT or _OFF */
	int dump_signal;	/* 0: none */
	int pool_threads;	/* the default pool's limit, 1..1024 */
	unsigned int fault_alloc; /* WEFT_FAULT_ALLOC: fail every Nth; 0 off */
	weft__log_fn log;	/* weft_config.log: NULL, stderr */
	void *log_arg;
};

/*
 * Resolve `cfg` (NULL: all defaults) into `*out`.  Returns 0, or -EINVAL
 * for a field out of range, a non-zero reserved_ word or a malformed
 * WEFT_WORKERS, WEFT_SLOW_MS, WEFT_DEADLOCK or WEFT_DUMP_SIGNAL, each named
 * in cfg's log (cfg->log, else stderr); names each other malformed
 * variable there too and uses its default.  Any thread.
 */
int weft__config_resolve(const struct weft_config *cfg,
			 struct weft__config *out);

/* The default pool's limit from WEFT_POOL_THREADS, else 4.  Any thread. */
int weft__config_pool_threads(void);

/*
 * Set the default blocking pool's thread limit (making the pool if no one
 * used it yet).  Threads above a lowered limit finish their job and exit
 * when idle.  Returns 0 or the negative errno of the pool's creation.  Any
 * thread; weft_run calls it with weft__config.pool_threads.
 */
int weft__pool_default_limit(int threads);

/*
 * Blocking pool (runtime/pool.c): run fn(arg) on a thread of the runtime's
 * default pool while the calling task parks.  Before the job starts, the
 * deadline and cancellation apply (-ETIMEDOUT/-ECANCELED, fn never runs).
 * Once it runs: if `abandon` is NULL the task waits for it whatever happens
 * (the call then returns 0: fn ran); else the task returns the error at
 * once and the pool calls abandon(arg) after fn, which must free what arg
 * owns.  With `abandon`, every error return means abandon(arg) has been or
 * will be called.  Internal jobs do not count against the pool's queue
 * limit.  Coroutine context (-EPERM otherwise).  Returns 0 when fn ran to
 * completion for the caller.
 */
int weft__pool_run(void (*fn)(void *), void *arg, void (*abandon)(void *),
		   int64_t deadline);

/*
 * weft_fail() on a pool thread: record `err` (< 0) as the outcome of the
 * public job the calling thread runs.  Returns 0, -EALREADY if the job
 * failed already, or -EPERM when the caller runs no public job.  Any
 * thread.
 */
int weft__pool_job_fail(int err);

/*
 * For the deadlock detector: jobs queued or running right now, and pool
 * threads alive, summed over every pool (the default pool and the user's
 * weft_pool_make() pools).  Pool threads are named "weft-pool-N".  Takes
 * each pool's lock in turn (registry.lock < pool->lock); never parks.  Any
 * thread.
 */
int weft__pool_busy(void);
int weft__pool_threads(void);


/*
 * Route a cancellation to the backend instance that holds t's in-flight
 * operation (runtime/iocall.c): weft__io_canceller, set by weft_run.  Any
 * thread.
 */
void weft__iocall_cancel(struct weft_task *t);

/*
 * Diagnostics (runtime/diag.c): the monitor's hooks for a run, and the
 * counters weft_stats() reports.  weft_run only.
 */
void weft__diag_setup(const struct weft__config *c,
		      struct weft__monitor_cfg *mc);
void weft__diag_teardown(void);
void weft__diag_counters(uint64_t *slow_tasks, uint64_t *deadlocks);

/*
 * Signals (runtime/signal.c), weft_run's part.  run_begin records the
 * run's dump signal (sets *dump_signal to 0, with a line on stderr, if
 * weft_signal_notify() took it) and unblocks every notified signal in the
 * calling thread, so the workers it starts inherit that mask; *saved
 * receives the mask run_end restores.  weft_run only, before
 * weft__diag_setup() and after weft__diag_teardown().
 */
void weft__signal_run_begin(int *dump_signal, sigset_t *saved);
void weft__signal_run_end(const sigset_t *saved);

/*
 * What the diagnostics print of the objects tasks wait on (racy snapshots,
 * read while the waiter is parked on them, which keeps them alive): a
 * locked mutex's owner stack pointer, NULL if it is free (runtime/sync.c);
 * a channel's capacity, buffered values and closed flag (runtime/chan.c).
 * Any thread; never park.
 */
void *weft__mutex_owner_sp(const void *m);
void weft__chan_info(const void *ch, size_t *cap, size_t *len, bool *closed);

/*
 * Symbol names for backtraces (runtime/symbol.c): open a table of the
 * loaded objects, name code addresses ("function+0xoff (object+0xoff)"),
 * close it.  Any thread; a table is used by one thread at a time.
 */
struct weft__syms;
struct weft__syms *weft__syms_open(void);
void weft__syms_name(struct weft__syms *s, uintptr_t pc, char *buf,
		     size_t len);
void weft__syms_close(struct weft__syms *s);

/* Connections weft_serve closed unserved this run (runtime/net.c; atomic). */
extern uint64_t weft__conns_shed;

#endif /* WEFT_RUNTIME_H */

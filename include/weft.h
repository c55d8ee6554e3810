/* SPDX-License-Identifier: MIT */
/*
 * weft: an M:N work-stealing green-thread runtime for C on Linux.
 *
 * Many coroutines ("tasks") run on a few worker threads, one per CPU by
 * default.  Each worker runs a scheduler with a local run queue; idle
 * workers steal half of a busy worker's queue.  A task blocks only by
 * parking itself (on a timer, a join, later on I/O, channels and locks);
 * its worker goes on running other tasks meanwhile.
 *
 * Conventions used by every function below:
 *  - A return value >= 0 means success; failure is a negative errno
 *    (-EINVAL, -ENOMEM, ...).  There is no global error state.
 *  - A NULL object pointer (a task, channel, lock, cond, wait group,
 *    semaphore, once, generator, future, group or pool, or the `out`
 *    pointer of a constructor) makes every call that returns an int or
 *    ssize_t return -EINVAL without touching anything.  Calls that return
 *    something else say what they return for NULL; releasing NULL is a
 *    no-op, as free(NULL) is.
 *  - Every call that can block takes a deadline as its last argument:
 *    absolute CLOCK_MONOTONIC nanoseconds (see weft_now()), or
 *    WEFT_DEADLINE_NONE.  A deadline that passes yields -ETIMEDOUT.
 *  - Every blocking call is a cancellation point: once weft_cancel() has
 *    been called on a task, its current and every later blocking call
 *    returns -ECANCELED.
 *  - "Coroutine context only" means the call must be made by a task
 *    running under weft_run(); elsewhere it returns -EPERM.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

#define WEFT_EXPORT __attribute__((visibility("default")))

/* The library's version as "MAJOR.MINOR.PATCH".  Any thread. */
WEFT_EXPORT const char *weft_version(void);

/*
 * Runtime lifecycle
 *
 * weft_run() turns the calling thread into worker 0, starts the other
 * workers, runs the main function as the first task and returns when that
 * task and every task it (transitively) spawned have finished.  All
 * workers, stacks and rings are torn down before it returns, so it may be
 * called again.
 */

typedef void *(*weft_fn)(void *arg);

/*
 * Runtime configuration.  Zero every field (`struct weft_config cfg = { 0 };`)
 * and set the ones you need: a zero field means its default.
 */
struct weft_config {
	/*
	 * Worker threads, 1..1024.  0: the WEFT_WORKERS environment variable
	 * if set (a malformed value makes weft_run() fail with -EINVAL),
	 * else the number of CPUs in the process's affinity mask.
	 */
	int workers;
	/*
	 * Default stack size of a task in bytes, 16 KiB .. 1 GiB (rounded up
	 * to pages).  0: 64 KiB.
	 */
	size_t stack_size;
	/*
	 * Guards on kernels without guard regions (before Linux 6.13): how
	 * many stacks may carry a PROT_NONE guard (each costs two of the
	 * vm.max_map_count memory mappings); past that, stacks are checked
	 * only by a canary on each switch (see README, "Stack overflow").
	 * 0: a quarter of vm.max_map_count.  On Linux 6.13 and later every
	 * stack has a guard region and this only matters as -1: no guard on
	 * any stack, canaries only.
	 */
	long guarded_stacks;
	/*
	 * I/O backend: NULL means the WEFT_IO environment variable if set
	 * ("uring" or "epoll"), else io_uring with epoll as the fallback when
	 * the kernel refuses io_uring.
	 */
	const char *io_backend;
	/*
	 * Slow-task threshold in milliseconds: a task that keeps its worker
	 * busy this long is reported once, to the log (see Diagnostics).  0:
	 * the WEFT_SLOW_MS environment variable if set (0 there turns the
	 * report off), else 100.  -1: off.
	 */
	long slow_ms;
	/*
	 * Deadlock detector, one of enum weft_deadlock_mode.  0
	 * (WEFT_DEADLOCK_DEFAULT): the WEFT_DEADLOCK environment variable
	 * ("abort", "report", "off") if set, else WEFT_DEADLOCK_ABORT.
	 */
	int deadlock;
	/*
	 * Signal that prints weft_dump() to stderr while the run lasts (a
	 * catchable signal number such as SIGUSR1).  0: the WEFT_DUMP_SIGNAL
	 * environment variable if set, else none.  -1: none.
	 */
	int dump_signal;
	/*
	 * Threads of the runtime's default blocking pool (weft_blocking(),
	 * getaddrinfo, file I/O under epoll), 1..1024.  0: the
	 * WEFT_POOL_THREADS environment variable if set, else 4.  The pool
	 * outlives the run and keeps the last run's limit.
	 */
	long pool_threads;
	/*
	 * Bytes of guard below every stack (rounded up to pages), up to
	 * 1 GiB.  0: 64 KiB.  A write into the guard is reported as a stack
	 * overflow naming the task; a frame larger than stack plus guard
	 * can jump it unless its code was built with
	 * -fstack-clash-protection (weft.pc's Cflags), which touches every
	 * page of a frame in turn.  Guards cost address space and page
	 * tables (128 bytes per stack at 64 KiB), not memory.  Where the
	 * kernel lacks guard regions (before Linux 6.13) only
	 * guarded_stacks stacks get one.
	 */
	size_t stack_guard;
	/*
	 * Where the runtime's messages go: NULL means stderr.  Otherwise
	 * log(log_arg, msg) receives each one whole -- a deadlock report, a
	 * slow-task report, the dump on dump_signal, a configuration error,
	 * a panic before abort() -- as a NUL-terminated string of one or
	 * more lines, each ending in '\n' and starting with "weft: " (the
	 * first) or two spaces.  Called on weft's threads (the monitor, a
	 * worker, weft_run's caller), possibly two at once; it must not
	 * block for long, park, or call into weft.  Set for the run only:
	 * weft_run() uses it from its first check of `cfg` until it
	 * returns.  The one exception is the stack-overflow report, which
	 * is written to stderr from a signal handler.
	 */
	void (*log)(void *log_arg, const char *msg);
	void *log_arg;
	/* Reserved: must be zero. */
	long reserved_[2];
};

/* Values of weft_config.deadlock. */
enum weft_deadlock_mode {
	WEFT_DEADLOCK_DEFAULT = 0, /* WEFT_DEADLOCK, else abort */
	WEFT_DEADLOCK_ABORT = 1,   /* print the report, then abort() */
	WEFT_DEADLOCK_REPORT = 2,  /* print it once per deadlock, go on */
	WEFT_DEADLOCK_OFF = 3,	   /* no detector */
};

/*
 * Run `fn(arg)` as the first task on a fresh set of workers; block the
 * calling thread until every task has finished.  `*result` (if non-NULL)
 * receives the return value of `fn`.  `cfg` may be NULL for defaults.
 *
 * When `fn` returns, every task still alive is cancelled (weft_cancel: a
 * task not started never runs, the others see -ECANCELED from their
 * blocking calls) and awaited, so nothing outlives the run; a task spawned
 * after that point is accepted but starts cancelled (WEFT_CANCELLED).  A
 * task that must finish its work keeps main waiting for it (join, group,
 * wait group).  Done callbacks still run (see weft_future_on_done).
 *
 * Configuration comes from `cfg`; a zero field falls back to its
 * environment variable, then to the default.  A value out of range in
 * `cfg`, or a malformed WEFT_WORKERS, WEFT_SLOW_MS, WEFT_DEADLOCK or
 * WEFT_DUMP_SIGNAL, makes weft_run() fail with -EINVAL before anything
 * starts, and a message naming the field or variable and its value goes
 * to the log (cfg->log, else stderr); a malformed WEFT_POOL_THREADS is
 * named there and the default used.
 *
 * Returns 0, or -EINVAL (bad configuration), -EBUSY (a runtime is already
 * running in this process), -ENOMEM, or the negative errno of a failed
 * thread or ring creation.
 * Any thread that is not itself a weft worker.
 */
WEFT_EXPORT int weft_run(weft_fn fn, void *arg, const struct weft_config *cfg,
			 void **result);

/* Number of worker threads of the running runtime, or -ESRCH.  Any thread. */
WEFT_EXPORT int weft_workers(void);

/*
 * Index (0 .. weft_workers()-1) of the worker the calling task runs on right
 * now, or -EPERM outside coroutine context.  The task may move to another
 * worker at any blocking call or yield.
 */
WEFT_EXPORT int weft_worker_id(void);

/*
 * Name of the I/O backend in use ("uring", "epoll"); between runs, the one
 * the last run that ran used.  A weft_run() that failed does not count,
 * even when it got as far as trying its backend (io_uring forced with
 * WEFT_IO=uring and refused by the kernel): after it, the call still
 * names the last successful run's backend, or NULL if no run has
 * succeeded in this process.  Any thread.
 */
WEFT_EXPORT const char *weft_io_backend(void);

/*
 * Time and deadlines
 *
 * Time is CLOCK_MONOTONIC in nanoseconds.  Deadlines are absolute times on
 * that clock; build them as `weft_now() + 50 * WEFT_MSEC`, or with
 * weft_after() / weft_after_ms() below ("in 50 ms": weft_after_ms(50)).
 */

#define WEFT_DEADLINE_NONE ((int64_t)-1)
#define WEFT_NSEC ((int64_t)1)
#define WEFT_USEC ((int64_t)1000)
#define WEFT_MSEC ((int64_t)1000000)
#define WEFT_SEC ((int64_t)1000000000)

/* Monotonic time in nanoseconds.  Any thread. */
WEFT_EXPORT int64_t weft_now(void);

/*
 * "In `ns` nanoseconds" / "in `ms` milliseconds" as a deadline for any
 * call: weft_read(fd, buf, n, weft_after_ms(5)).  Saturates: a span too
 * long for the clock gives INT64_MAX (never reached), one far in the past
 * gives 0 (a past deadline); neither ever returns WEFT_DEADLINE_NONE.
 * `ns` <= 0 is a deadline already passed (the non-blocking form where a
 * call has one).  Any thread.
 */
WEFT_EXPORT int64_t weft_after(int64_t ns);
WEFT_EXPORT int64_t weft_after_ms(int64_t ms);

/*
 * Park the calling task for `ns` nanoseconds (at least; never less).  The
 * deadline weft_now() + ns saturates at INT64_MAX, which is never reached:
 * weft_sleep(INT64_MAX) sleeps until the task is cancelled.  `ns` <= 0
 * (negative included) is a deadline in the past: the call only yields
 * and returns 0 (or, as weft_yield(), -ECANCELED once cancelled).
 * Returns 0, -ECANCELED, or -EPERM outside coroutine context.
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT int weft_sleep(int64_t ns);

/*
 * Park the calling task until `deadline` (weft_now() >= deadline when it
 * returns 0).  A deadline in the past (any negative one but
 * WEFT_DEADLINE_NONE included) returns 0 after a yield; INT64_MAX and
 * WEFT_DEADLINE_NONE are never reached: the task sleeps until cancelled.
 * Returns 0, -ECANCELED or -EPERM.
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT int weft_sleep_until(int64_t deadline);

/*
 * Deadline scopes (Go's context.WithTimeout, asyncio's timeout(), Trio's
 * move_on_after): a deadline for everything the calling task does until it
 * leaves the scope.
 *
 *	struct weft_scope sc;
 *
 *	weft_scope_enter(&sc, weft_after_ms(500));
 *	r = fetch_all(urls);            // every call inside takes <= 500 ms
 *	weft_scope_exit(&sc);
 *	if (r == -ETIMEDOUT && weft_scope_expired(&sc)) ...
 *
 * Inside a scope every blocking call that takes a deadline (I/O, sleeps,
 * joins, channel sends and receives, select, futures, groups, pool jobs,
 * the locks, semaphores, wait groups and conditions) uses the earlier of
 * its own deadline and the scope's; when the scope's passes, the call
 * returns -ETIMEDOUT as if its own had (a sleep cut short by it returns
 * -ETIMEDOUT, not 0).  weft_close() is never bounded, nor are the waits
 * the runtime must finish whatever happens (weft_group_free's, the
 * cancel-and-wait of weft_join_for).  Scopes nest (the
 * earliest deadline wins) and must be left in the reverse order; a task
 * spawned inside a scope starts inside its deadline (and no further: its
 * own scopes are its own), so do groups' members.  Cancelling is
 * weft_cancel() of the task or weft_group_cancel(): a scope only bounds
 * time.  The struct belongs to the task that entered it: enter and exit on
 * the same task, keep it alive (a local) until the exit.
 */
struct weft_scope {
	int64_t deadline;		/* as entered */
	/* Private: */
	int64_t outer_;			/* the deadline in force before */
	struct weft_scope *parent_;	/* the scope entered before */
	struct weft_task *task_;
};

/*
 * Enter a scope with `deadline` (WEFT_DEADLINE_NONE: no bound of its own).
 * Returns 0, -EINVAL if s is NULL, -EPERM outside coroutine context.
 */
WEFT_EXPORT int weft_scope_enter(struct weft_scope *s, int64_t deadline);

/*
 * Leave the innermost scope, s.  Returns 0; -EINVAL if s is not the
 * calling task's innermost scope (nothing is changed then); -EPERM outside
 * coroutine context.
 */
WEFT_EXPORT int weft_scope_exit(struct weft_scope *s);

/*
 * The deadline every blocking call of the calling task is bounded by now
 * (the earliest of its scopes', inherited ones included), or
 * WEFT_DEADLINE_NONE (also outside coroutine context).
 */
WEFT_EXPORT int64_t weft_scope_deadline(void);

/*
 * Has the scope's own deadline passed?  Tells a -ETIMEDOUT that came from
 * the scope from one of a call's own.  Any thread.
 */
WEFT_EXPORT bool weft_scope_expired(const struct weft_scope *s);

/*
 * Tasks
 *
 * A task is a coroutine with its own small stack.  weft_spawn() hands back a
 * handle that must be given up exactly once, by weft_join() succeeding or by
 * weft_detach(); a task whose handle is never requested (out == NULL) is
 * detached from the start.  Handles belong to the run: none is valid after
 * weft_run() returns.
 */

struct weft_task;

/* Spawn options; zero every field for the defaults. */
struct weft_spawn_opts {
	/*
	 * Stack size in bytes, 16 KiB .. 1 GiB; 0: the runtime's default
	 * (weft_config).
	 */
	size_t stack_size;
	/* Name shown in diagnostics; copied (up to 23 bytes).  NULL: none. */
	const char *name;
	/* Reserved: must be zero. */
	long reserved_[4];
};

/* What a task is doing, as weft_task_state() reports it. */
enum weft_task_state {
	WEFT_PENDING = 0,	/* spawned, has not run yet */
	WEFT_RUNNING = 1,	/* on a worker right now, or runnable again */
	WEFT_SUSPENDED = 2,	/* parked: sleeping, joining, waiting */
	WEFT_DONE = 3,		/* returned; its result is available */
	WEFT_CANCELLED = 4,	/* cancelled before it ever ran */
};

/*
 * Create a task running `fn(arg)` and make it runnable.  `*out` (if `out`
 * is non-NULL) receives its handle.  `opts` may be NULL.
 *
 * The stack is taken here, so a task that spawned (0) will run (unless
 * cancelled first), and one that cannot have a stack or a descriptor is
 * refused with -ENOMEM and counted in weft_stats().spawns_refused.
 *
 * Returns 0, -EINVAL (fn NULL, stack size outside 16 KiB .. 1 GiB, or a
 * non-zero reserved_ field), -ENOMEM, or -ESRCH when no runtime is running
 * (or it is shutting down).
 * Any thread: from a plain thread the task goes to the global queue and an
 * idle worker is woken.
 */
WEFT_EXPORT int weft_spawn(struct weft_task **out, weft_fn fn, void *arg,
			   const struct weft_spawn_opts *opts);

/*
 * Wait until task `t` has finished.  On success (0) `*result` (if non-NULL)
 * receives its return value and the handle is released: `t` must not be
 * used again.  On -ETIMEDOUT or -ECANCELED the handle stays valid and the
 * task keeps running.  A task cancelled before it ever ran has no result:
 * joining it returns -ECHILD and releases the handle.
 *
 * Returns 0, -ETIMEDOUT, -ECANCELED (the caller was cancelled), -ECHILD (t
 * was cancelled before it started; handle released), -EDEADLK (t is the
 * caller), -EBUSY (another task is joining t), -EINVAL (t is NULL, or a
 * handle already given up: see below), -EPERM, or the error the task
 * gave weft_fail() (it finished; the handle is released).  `*result` is
 * written only when 0 is returned.
 *
 * A released handle (joined, detached, or never handed out) is refused
 * with -EINVAL by weft_join and weft_detach while its descriptor is free
 * or still running without a handle; descriptors are reused, so once a
 * new task with a handle took it, a stale handle is that task's.  The
 * ASan build (make asan) keeps freed descriptors out of reuse for the
 * next 1,024 frees and poisons them, so it refuses or reports every such
 * use.
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT int weft_join(struct weft_task *t, void **result,
			  int64_t deadline);

/*
 * Give up the handle: the task runs on and frees itself when it returns.
 * Returns 0, or -EINVAL for NULL or a handle already given up (see
 * weft_join): of two racing detaches exactly one returns 0.  Any thread.
 */
WEFT_EXPORT int weft_detach(struct weft_task *t);

/*
 * Ask `t` to stop: its current blocking call (if it is parked in one) and
 * every later one return -ECANCELED.  A task that has not started yet never
 * runs; its state becomes WEFT_CANCELLED at once.  On a finished task it
 * only sets the flag weft_task_is_cancelled() reports.  The caller still
 * owns the handle.
 * Returns 0.  Any thread.
 */
WEFT_EXPORT int weft_cancel(struct weft_task *t);

/*
 * Let the other runnable tasks of this worker run; the caller goes to the
 * back of the local queue.  Returns 0, -ECANCELED if the caller has been
 * cancelled (it still yields), or -EPERM.
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT int weft_yield(void);

/* The calling task, or NULL outside coroutine context.  Any thread. */
WEFT_EXPORT struct weft_task *weft_self(void);

/*
 * The task's id: unique in the process, > 0; 0 for NULL (no task has it).
 * Any thread holding a handle.
 */
WEFT_EXPORT uint64_t weft_task_id(const struct weft_task *t);

/* The task's name ("" if it has none, and for NULL).  Any thread. */
WEFT_EXPORT const char *weft_task_name(const struct weft_task *t);

/*
 * The task's current state.  For NULL, WEFT_CANCELLED: no task, so
 * nothing that will ever run or leave a result, and a loop waiting for
 * WEFT_DONE or WEFT_CANCELLED ends.  Any thread holding a handle.
 */
WEFT_EXPORT enum weft_task_state weft_task_state(const struct weft_task *t);

/*
 * True once weft_cancel() has been called on the task; false for NULL
 * (weft_cancel(NULL) cancels nothing).  Any thread.
 */
WEFT_EXPORT bool weft_task_is_cancelled(const struct weft_task *t);

/*
 * Channels and select
 *
 * Go's channels: typed by size (values of `elem_size` bytes are copied in
 * and out), unbuffered (capacity 0: a send waits for a receiver) or
 * buffered.  Every side may run on any worker at the same moment, or on a
 * plain thread that is not a worker (the call then blocks that thread).
 * Channels are reference counted: weft_chan_make() returns one reference.
 */

struct weft_chan;

/*
 * Make a channel of `elem_size`-byte values (1 .. 65536) with room for
 * `capacity` buffered values (0: unbuffered).  Returns 0, -EINVAL or
 * -ENOMEM.  Any thread.
 */
WEFT_EXPORT int weft_chan_make(struct weft_chan **out, size_t elem_size,
			       size_t capacity);
/*
 * Take / drop a reference; the last release frees the channel.  Retain
 * returns `ch` (NULL for NULL); releasing NULL does nothing.  Any thread.
 */
WEFT_EXPORT struct weft_chan *weft_chan_retain(struct weft_chan *ch);
WEFT_EXPORT void weft_chan_release(struct weft_chan *ch);

/*
 * Send the value at `val`: returns 0 once a receiver took it or it is
 * buffered; -EPIPE if the channel is (or gets) closed, -ETIMEDOUT,
 * -ECANCELED.  A cancellation point.  Any thread.
 */
WEFT_EXPORT int weft_chan_send(struct weft_chan *ch, const void *val,
			       int64_t deadline);
/*
 * Receive into `out` (may be NULL to drop the value): 0, or -EPIPE once the
 * channel is closed and drained, -ETIMEDOUT, -ECANCELED.  A cancellation
 * point.  Any thread.
 */
WEFT_EXPORT int weft_chan_recv(struct weft_chan *ch, void *out,
			       int64_t deadline);
/* Without waiting: 0, -EAGAIN (would block) or -EPIPE.  Any thread. */
WEFT_EXPORT int weft_chan_trysend(struct weft_chan *ch, const void *val);
WEFT_EXPORT int weft_chan_tryrecv(struct weft_chan *ch, void *out);
/*
 * Close: waiting and later senders get -EPIPE; receivers drain the buffer,
 * then get -EPIPE.  Returns 0, or -EPIPE if it was closed already.
 * Any thread.
 */
WEFT_EXPORT int weft_chan_close(struct weft_chan *ch);
/* Buffered values right now, and the capacity (0 for NULL).  Any thread. */
WEFT_EXPORT size_t weft_chan_len(const struct weft_chan *ch);
WEFT_EXPORT size_t weft_chan_cap(const struct weft_chan *ch);

/* One case of weft_select(). */
struct weft_select_case {
	struct weft_chan *ch;	/* NULL: the case never fires */
	int op;			/* WEFT_SELECT_SEND or WEFT_SELECT_RECV */
	void *val;		/* send: the value; recv: where it goes (or NULL) */
	int result;		/* out: 0, or -EPIPE (closed) for the fired case */
};

#define WEFT_SELECT_SEND 1
#define WEFT_SELECT_RECV 2

/*
 * Wait until one of the `n` cases can proceed, carry it out and return its
 * index; its `result` says 0 or -EPIPE (a closed channel fires a receive
 * with -EPIPE, a send likewise).  When several are ready, one is chosen
 * uniformly at random (Go's fairness).  `deadline` 0 (or any past time) is
 * the non-blocking form: -EAGAIN if none is ready.  Returns the index,
 * -ETIMEDOUT, -ECANCELED, -EINVAL.  A cancellation point.  Any thread.
 */
WEFT_EXPORT int weft_select(struct weft_select_case *cases, int n,
			    int64_t deadline);

/*
 * Sync primitives
 *
 * Locks and counters that park the calling coroutine, not its worker.
 * They are fixed-size objects to embed, with static initialisers; the
 * blocking calls take a deadline and are cancellation points, and also work
 * on plain threads (which then block).  None needs freeing.
 */

struct weft_mutex {
	_Alignas(16) unsigned char opaque_[48];
};
#define WEFT_MUTEX_INIT { { 0 } }

/*
 * Lock: 0, -ETIMEDOUT, -ECANCELED.  Fair under contention in Go's way: a
 * waiter that has waited more than 1 ms gets the lock handed to it
 * (starvation mode).  Not recursive: relocking from the owner deadlocks
 * until the deadline.  A cancelled task still takes a free mutex (one CAS,
 * so that cleanup code can lock); it gets -ECANCELED only when it would
 * wait.
 */
WEFT_EXPORT int weft_mutex_lock(struct weft_mutex *m, int64_t deadline);
/* 0 or -EAGAIN. */
WEFT_EXPORT int weft_mutex_trylock(struct weft_mutex *m);
/* 0, or -EPERM if the mutex was not locked. */
WEFT_EXPORT int weft_mutex_unlock(struct weft_mutex *m);

struct weft_rwlock {
	_Alignas(16) unsigned char opaque_[64];
};
#define WEFT_RWLOCK_INIT { { 0 } }
/*
 * Shared and exclusive locking; a waiting writer stops new readers (so a
 * reader that read-locks again while a writer waits deadlocks until its
 * deadline, as with Go's RWMutex).  0, -ETIMEDOUT, -ECANCELED, -EAGAIN
 * (try forms); unlock: 0 or -EPERM if nothing is held.
 */
WEFT_EXPORT int weft_rwlock_rdlock(struct weft_rwlock *l, int64_t deadline);
WEFT_EXPORT int weft_rwlock_wrlock(struct weft_rwlock *l, int64_t deadline);
WEFT_EXPORT int weft_rwlock_tryrdlock(struct weft_rwlock *l);
WEFT_EXPORT int weft_rwlock_trywrlock(struct weft_rwlock *l);
WEFT_EXPORT int weft_rwlock_unlock(struct weft_rwlock *l);

struct weft_cond {
	_Alignas(16) unsigned char opaque_[32];
};
#define WEFT_COND_INIT { { 0 } }
/*
 * Unlock `m`, wait for a signal, relock `m` (also on -ETIMEDOUT and
 * -ECANCELED, as pthread_cond_timedwait).  Returns 0, -ETIMEDOUT,
 * -ECANCELED, or -EPERM at once if `m` is not locked.  Spurious wake-ups
 * may happen: wait in a loop.
 */
WEFT_EXPORT int weft_cond_wait(struct weft_cond *c, struct weft_mutex *m,
			       int64_t deadline);
WEFT_EXPORT int weft_cond_signal(struct weft_cond *c);
WEFT_EXPORT int weft_cond_broadcast(struct weft_cond *c);

struct weft_waitgroup {
	_Alignas(16) unsigned char opaque_[32];
};
#define WEFT_WAITGROUP_INIT { { 0 } }
/*
 * Add `delta` (may be negative); -EINVAL if the count would go below 0,
 * -EOVERFLOW above INT64_MAX.
 */
WEFT_EXPORT int weft_waitgroup_add(struct weft_waitgroup *wg, int64_t delta);
WEFT_EXPORT int weft_waitgroup_done(struct weft_waitgroup *wg);
/* Wait until the count is 0: 0, -ETIMEDOUT, -ECANCELED. */
WEFT_EXPORT int weft_waitgroup_wait(struct weft_waitgroup *wg,
				    int64_t deadline);

struct weft_sem {
	_Alignas(16) uint64_t count_;	/* private: the live count */
	unsigned char opaque_[24];
};
/*
 * A counting semaphore starting at `n`: WEFT_SEM_INIT(n) or weft_sem_init()
 * (returns 0).  acquire: 0, -ETIMEDOUT, -ECANCELED; tryacquire: 0 or
 * -EAGAIN; release: 0 or -EOVERFLOW.
 */
#define WEFT_SEM_INIT(n) { (n), { 0 } }
WEFT_EXPORT int weft_sem_init(struct weft_sem *s, uint64_t n);
WEFT_EXPORT int weft_sem_acquire(struct weft_sem *s, int64_t deadline);
WEFT_EXPORT int weft_sem_tryacquire(struct weft_sem *s);
WEFT_EXPORT int weft_sem_release(struct weft_sem *s);

struct weft_once {
	_Alignas(16) unsigned char opaque_[32];
};
#define WEFT_ONCE_INIT { { 0 } }
/*
 * Run fn(arg) exactly once over all callers; the others wait until it has
 * returned.  Returns 0, -ETIMEDOUT, -ECANCELED (fn may still be running),
 * -EINVAL if fn is NULL.
 */
WEFT_EXPORT int weft_once(struct weft_once *o, void (*fn)(void *), void *arg,
			  int64_t deadline);

/*
 * Generators
 *
 * Python's generator protocol in C.  A generator's body runs on its own
 * small stack, driven synchronously by whoever calls weft_gen_next() or
 * weft_gen_send() (the workers do not schedule it); if the body blocks, the
 * caller blocks.  One caller at a time, from any coroutine or worker.
 */

struct weft_gen;

enum weft_gen_state {
	WEFT_GEN_CREATED = 0,	/* made, never resumed */
	WEFT_GEN_RUNNING = 1,	/* its body runs (inside next/send) */
	WEFT_GEN_SUSPENDED = 2,	/* paused in weft_gen_yield() */
	WEFT_GEN_CLOSED = 3,	/* the body returned */
};

/* The body: runs with `arg`; its return value is the generator's result. */
typedef void *(*weft_gen_fn)(struct weft_gen *g, void *arg);

/* Generator options; zero every field for the defaults. */
struct weft_gen_opts {
	size_t stack_size;	/* 0: the runtime's default */
	long reserved_[4];	/* must be zero */
};

/* Make a generator (not started).  0, -EINVAL, -ENOMEM.  Coroutine context. */
WEFT_EXPORT int weft_gen_make(struct weft_gen **out, weft_gen_fn fn,
			      void *arg, const struct weft_gen_opts *opts);
/*
 * Resume the body until it yields (returns 1, *out = the yielded value) or
 * returns (returns 0, *out = its return value, and the generator is
 * CLOSED).  weft_gen_send() makes the pending weft_gen_yield() return
 * `in` (the first resume must send NULL: -EINVAL otherwise, as Python's
 * TypeError).  -EBUSY while another caller resumes it; -EPIPE once closed.
 */
WEFT_EXPORT int weft_gen_next(struct weft_gen *g, void **out);
WEFT_EXPORT int weft_gen_send(struct weft_gen *g, void *in, void **out);
/*
 * Inside the body of `g`: hand `value` to the caller and pause.  Returns 0
 * with *sent (if non-NULL) = the value the caller sends next (NULL from
 * weft_gen_next), or -ECANCELED when weft_gen_close() asks the body to
 * finish (Python's GeneratorExit): the body should clean up and return.
 * -EPERM unless called from g's own body.
 */
WEFT_EXPORT int weft_gen_yield(struct weft_gen *g, void *value, void **sent);
/*
 * Inside the body: delegate to `sub` until it returns (Python's `yield
 * from`): its values go out to our caller, the caller's sends go into it.
 * Returns 0 with *result = sub's return value, or -ECANCELED if we were
 * closed meanwhile (sub is closed too).
 */
WEFT_EXPORT int weft_gen_yield_from(struct weft_gen *g, struct weft_gen *sub,
				    void **result);
/*
 * Close: a suspended body's weft_gen_yield() reports the close and the body
 * runs to its end; a generator never started just becomes CLOSED.
 * Returns 0; -EBUSY while it runs; -EPROTO if the body yielded again
 * instead of finishing (Python's RuntimeError: it stays SUSPENDED, close
 * again); -EPERM for a suspended generator outside coroutine context (its
 * cleanup must run in a task); -EINVAL for NULL.
 */
WEFT_EXPORT int weft_gen_close(struct weft_gen *g);
/* The generator's state; WEFT_GEN_CLOSED for NULL (it yields nothing). */
WEFT_EXPORT enum weft_gen_state weft_gen_state(const struct weft_gen *g);
/*
 * Free a generator that is CLOSED or CREATED: 0; -EBUSY if it is running or
 * suspended (close it first); -EPERM outside coroutine context for one
 * that still holds its stack (CREATED); -EINVAL for NULL.  A generator
 * left suspended when the run ends keeps its stack: close generators
 * before returning.
 */
WEFT_EXPORT int weft_gen_free(struct weft_gen *g);

/*
 * I/O
 *
 * Each call parks only the calling task until the kernel has finished the
 * operation, and returns what the system call would (a count, an fd, 0) or
 * a negative errno.  Coroutine context only (elsewhere -EPERM; weft_close()
 * excepted); each is a cancellation point and takes a deadline
 * (-ETIMEDOUT once it passes).
 *
 * With io_uring the operation is submitted to the ring of the worker the
 * task runs on (in batches: one io_uring_enter per scheduler round), a
 * deadline becomes a linked timeout and cancellation an async cancel.  With
 * the epoll backend the call is tried non-blocking and the task waits for
 * readiness; fds used there are switched to O_NONBLOCK where the call has no
 * per-call non-blocking flag (accept, connect, and read/write on files that
 * reject RWF_NOWAIT).
 *
 * SIGPIPE: while a run lasts, weft ignores SIGPIPE if its disposition was
 * the default, so a write to a closed pipe or socket returns -EPIPE (as in
 * Go); a program with its own SIGPIPE handler keeps it.
 *
 * Buffer safety: a call that times out or is cancelled does not return
 * before the kernel has let go of its buffers.  If the operation completed
 * anyway (the cancellation lost the race), its real result is returned and
 * the next blocking call reports the cancellation, so no data is lost.
 */

WEFT_EXPORT ssize_t weft_read(int fd, void *buf, size_t len, int64_t deadline);
WEFT_EXPORT ssize_t weft_write(int fd, const void *buf, size_t len,
			       int64_t deadline);
WEFT_EXPORT ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt,
			       int64_t deadline);
WEFT_EXPORT ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt,
				int64_t deadline);
WEFT_EXPORT ssize_t weft_pread(int fd, void *buf, size_t len, off_t off,
			       int64_t deadline);
WEFT_EXPORT ssize_t weft_pwrite(int fd, const void *buf, size_t len, off_t off,
				int64_t deadline);
/* `flags` as recv(2)/send(2); weft_send() always adds MSG_NOSIGNAL. */
WEFT_EXPORT ssize_t weft_recv(int fd, void *buf, size_t len, int flags,
			      int64_t deadline);
WEFT_EXPORT ssize_t weft_send(int fd, const void *buf, size_t len, int flags,
			      int64_t deadline);
WEFT_EXPORT ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags,
				 int64_t deadline);
/* Adds MSG_NOSIGNAL. */
WEFT_EXPORT ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags,
				 int64_t deadline);
/*
 * accept4(2): returns the connection's fd.  `flags`: SOCK_NONBLOCK,
 * SOCK_CLOEXEC.  `addr`/`addrlen` may be NULL.
 */
WEFT_EXPORT int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
			    int flags, int64_t deadline);
/* connect(2) to completion: 0 or the connection's error. */
WEFT_EXPORT int weft_connect(int fd, const struct sockaddr *addr,
			     socklen_t addrlen, int64_t deadline);
/*
 * close(2).  The fd is gone whatever the result: a deadline or a
 * cancellation only stops the wait for a lingering close.  The one I/O
 * call that also works outside coroutine context (a plain thread, or no
 * runtime at all): there it is close(2) itself, returning 0 or its
 * negative errno, never -EPERM.
 */
WEFT_EXPORT int weft_close(int fd, int64_t deadline);
WEFT_EXPORT int weft_openat(int dirfd, const char *path, int flags,
			    mode_t mode, int64_t deadline);
/* fsync(2), or fdatasync(2) with WEFT_FSYNC_DATASYNC. */
#define WEFT_FSYNC_DATASYNC 1u
WEFT_EXPORT int weft_fsync(int fd, unsigned flags, int64_t deadline);
/*
 * splice(2).  `off_in`/`off_out`: an offset, or -1 for "the fd's own
 * position" (must be -1 for a pipe).  `flags`: SPLICE_F_*.
 */
WEFT_EXPORT ssize_t weft_splice(int fd_in, int64_t off_in, int fd_out,
				int64_t off_out, size_t len, unsigned flags,
				int64_t deadline);
/*
 * Wait until `fd` is ready for `events` (POLLIN, POLLOUT, ...): returns the
 * ready events (POLLERR, POLLHUP, POLLRDHUP may be among them), > 0.
 */
WEFT_EXPORT int weft_poll(int fd, short events, int64_t deadline);

/*
 * Read exactly `len` bytes, looping over short reads.  Returns `len`, or
 * fewer at end of file, or a negative errno.  `*done` (if non-NULL) always
 * receives the bytes transferred, so nothing is lost on an error.
 */
WEFT_EXPORT ssize_t weft_read_full(int fd, void *buf, size_t len,
				   size_t *done, int64_t deadline);
/* Write all `len` bytes, looping over short writes.  As weft_read_full(). */
WEFT_EXPORT ssize_t weft_write_full(int fd, const void *buf, size_t len,
				    size_t *done, int64_t deadline);

/*
 * Buffered I/O
 *
 * Go's bufio on an fd: a reader that hands out lines (or any
 * delimiter-ended record) and exact byte counts, and a writer that
 * gathers small writes until a flush.  They sit on weft_read() and
 * weft_write(), so they park only the calling task, and each call takes
 * a deadline and is a cancellation point like the calls above.  Memory is
 * bounded: each object is one allocation of the size given at make time
 * and never grows.  Neither owns the fd (free does not close it) and
 * neither is locked: one task at a time uses a reader or a writer.
 *
 * Common to every call below that takes a deadline: -EPERM outside
 * coroutine context; -ECANCELED once the caller is cancelled, even when
 * the buffer could serve the call (nothing is consumed or taken then);
 * -ETIMEDOUT when the call has to wait for the fd and the deadline passes
 * (a call the buffer can serve does not wait, so a past deadline is the
 * non-blocking form); the fd's own errors as weft_read()/weft_write()
 * return them.  On every error the reader keeps what it had buffered and
 * the writer what it had not yet written, so a later call goes on where
 * this one stopped.
 */

struct weft_reader;
struct weft_writer;

/*
 * Make a reader on `fd` with a buffer of `size` bytes (1 .. 64 MiB; 0:
 * 4096).  The buffer size is also the longest record
 * weft_reader_read_until() can return.  Returns 0, -EINVAL or -ENOMEM.
 * Any thread.
 */
WEFT_EXPORT int weft_reader_make(struct weft_reader **out, int fd,
				 size_t size);
/* Free the reader (buffered bytes are dropped; the fd stays open). */
WEFT_EXPORT void weft_reader_free(struct weft_reader *r);
/* Bytes buffered and not yet returned (0 for NULL).  Any thread. */
WEFT_EXPORT size_t weft_reader_buffered(const struct weft_reader *r);

/*
 * Read up to and including the next byte `delim` (0 .. 255).  `*line`
 * points at the record inside the reader's buffer, valid until the next
 * call on `r`.  Returns its length (> 0, the delimiter included).
 * End of file: a last record without the delimiter is returned as it is
 * (its last byte is not `delim`); after it, and at end of file with
 * nothing buffered, the call returns 0.  The end is sticky: once a read
 * returned 0 the fd is not read again.
 * -EMSGSIZE: the buffer is full (weft_reader_make's `size` bytes) and
 * holds no delimiter; nothing is consumed, so weft_reader_read() can take
 * the bytes in pieces (or the caller gives up on the stream).
 * Also -EINVAL and the common errors above, nothing consumed.
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT ssize_t weft_reader_read_until(struct weft_reader *r, int delim,
					   const char **line,
					   int64_t deadline);
/*
 * weft_reader_read_until(r, '\n', ...) copied into `buf` (`size` >= 2
 * bytes) and NUL-terminated.  The line, '\n' included, may take at most
 * size - 1 bytes and at most the reader's buffer size; a longer one is
 * -EMSGSIZE and stays in the reader (nothing lost).  Returns the length
 * without the NUL, 0 at end of file, or the errors above.
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT ssize_t weft_reader_read_line(struct weft_reader *r, char *buf,
					  size_t size, int64_t deadline);
/*
 * Read up to `len` bytes: what is buffered, else one read of the fd (a
 * `len` at least the buffer's size reads straight into `buf`).  Returns
 * the count (> 0), 0 at end of file (or for len 0), or the errors above.
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT ssize_t weft_reader_read(struct weft_reader *r, void *buf,
				     size_t len, int64_t deadline);
/*
 * Read exactly `len` bytes, as weft_read_full(): returns `len`, or fewer
 * only at end of file, or a negative errno; `*done` (if non-NULL) always
 * receives the bytes stored in `buf` (they are consumed from the reader,
 * so on an error they are in `buf`, not lost).
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT ssize_t weft_reader_read_full(struct weft_reader *r, void *buf,
					  size_t len, size_t *done,
					  int64_t deadline);

/*
 * Make a writer on `fd` with a buffer of `size` bytes (1 .. 64 MiB; 0:
 * 4096).  Returns 0, -EINVAL or -ENOMEM.  Any thread.
 */
WEFT_EXPORT int weft_writer_make(struct weft_writer **out, int fd,
				 size_t size);
/*
 * Free the writer.  Bytes not yet flushed are dropped: flush first.  The
 * fd stays open.
 */
WEFT_EXPORT void weft_writer_free(struct weft_writer *w);
/* Bytes waiting for a flush (0 for NULL).  Any thread. */
WEFT_EXPORT size_t weft_writer_buffered(const struct weft_writer *w);
/*
 * Take `len` bytes: into the buffer if they fit, else after flushing it
 * (if that fails, none of `buf` is taken and `*done` is 0), and a write
 * too large for the buffer goes straight to the fd.  Returns `len`, or a
 * negative errno with `*done` (if non-NULL) the bytes of `buf` that were
 * taken (buffered or written): the caller resubmits the rest.
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT ssize_t weft_writer_write(struct weft_writer *w, const void *buf,
				      size_t len, size_t *done,
				      int64_t deadline);
/*
 * Write out everything buffered.  Returns 0 (the buffer is empty), or a
 * negative errno: what was written left the buffer, the rest stays for
 * the next flush.  Coroutine context only; a cancellation point.
 */
WEFT_EXPORT int weft_writer_flush(struct weft_writer *w, int64_t deadline);

/*
 * Signals
 *
 * Go's signal.Notify and Tokio's signal: a task waits for a signal the
 * way it waits for I/O.  weft_signal_notify() installs weft's handler for
 * the signals of a set (remembering their previous actions); each
 * delivery, to any thread of the process, is counted, and
 * weft_signal_wait() returns one counted delivery to one waiter.  The
 * handler runs on whatever thread the kernel picks among those that do
 * not block the signal, on the worker's alternate signal stack if it is a
 * worker, and only counts and writes an eventfd.
 *
 * The mask: a blocked signal never reaches the handler.  notify unblocks
 * the set in the calling thread; weft_run() unblocks every notified
 * signal in its own thread for the run, so its workers and the pool
 * threads they start inherit that (weft's monitor thread blocks every
 * signal).  So notify before weft_run() (or before blocking the signal
 * anywhere): a signal the program blocked before the run and notified
 * only inside it is unblocked on the calling worker alone, which is
 * enough for kill(), not for a pthread_kill() aimed at another worker.
 * Threads the program starts itself keep the mask they are given.
 *
 * As with any signal, deliveries of one standard signal that arrive
 * while it is already pending in the kernel are merged into one.
 */

/*
 * Start counting the signals in `set` for weft_signal_wait().  Signals
 * already notified stay as they are; the registration outlives the run
 * (deliveries between runs are kept for the next).  Returns 0; -EINVAL
 * for NULL, an empty set or one holding SIGKILL, SIGSTOP or a fault
 * signal weft itself handles (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP,
 * SIGABRT); -EBUSY if the set holds the running run's dump signal
 * (weft_config.dump_signal; a run whose dump signal is notified already
 * has no dump signal, and says so on stderr); or the errno of sigaction()
 * or eventfd() (the first notify makes one eventfd that lives as long as
 * the process).  Any thread.
 */
WEFT_EXPORT int weft_signal_notify(const sigset_t *set);
/*
 * Stop: restore the actions the signals had before weft_signal_notify()
 * and drop their deliveries not yet taken.  Signals of `set` not notified
 * are ignored.  The mask is left as it is.  Returns 0, or -EINVAL for
 * NULL or an empty set.  Any thread.
 */
WEFT_EXPORT int weft_signal_stop(const sigset_t *set);
/*
 * Wait for one delivery of a signal in `set` (NULL: any notified signal)
 * and return its number (> 0).  Each delivery is returned by exactly one
 * call; a delivery that came before the call (since the notify) is
 * returned at once; several pending: the lowest signal number first.
 * Returns the signal, -ETIMEDOUT, -ECANCELED (a cancelled caller takes no
 * delivery: it is left for another waiter), -EINVAL (an empty set, or no
 * signal was ever notified), -EPERM outside coroutine context.
 * Coroutine context only; a cancellation point.
 */
WEFT_EXPORT int weft_signal_wait(const sigset_t *set, int64_t deadline);

/*
 * Sockets
 *
 * Sockets made here are SOCK_NONBLOCK | SOCK_CLOEXEC (weft's calls handle
 * EAGAIN themselves).  Name resolution (getaddrinfo) runs on weft's blocking
 * pool, never on a worker.  Coroutine context only, except that
 * weft_tcp_listen() and weft_unix_listen() also work on a plain thread
 * (resolving there, blocking).
 */

/* Listener options; zero every field for the defaults. */
struct weft_listen_opts {
	int backlog;		/* listen(2) backlog; 0: SOMAXCONN */
	int reuseport;		/* non-zero: SO_REUSEPORT */
	int v6only;		/* non-zero: IPV6_V6ONLY on an IPv6 socket */
	int reserved_[5];	/* must be zero */
};

/*
 * Listen on TCP `host`:`port`.  `host` NULL, "" or "*": every address (IPv6
 * dual-stack where the kernel has IPv6, else IPv4); a literal address or a
 * name (its first address that binds).  `port` 0: a free port (find it with
 * getsockname).  SO_REUSEADDR is always set.  Returns the listening fd.
 */
WEFT_EXPORT int weft_tcp_listen(const char *host, int port,
				const struct weft_listen_opts *opts);
/*
 * Connect to TCP `host`:`port`, trying each resolved address in turn until
 * one connects or the deadline passes.  TCP_NODELAY is set.  Returns the
 * connected fd, or the error of the last address tried.  Resolution
 * failures map to errnos: -ENOENT (unknown name), -EAGAIN (temporary
 * failure), -EINVAL, -ENOMEM, else -EHOSTUNREACH.
 */
WEFT_EXPORT int weft_tcp_dial(const char *host, int port, int64_t deadline);
/*
 * The local port of a TCP socket (Go's Listener.Addr()): what a listener
 * made with port 0 was given.  Returns the port (1..65535), -ENOTSOCK,
 * -EAFNOSUPPORT (not an IPv4 or IPv6 socket), or getsockname()'s error.
 * Any thread.
 */
WEFT_EXPORT int weft_tcp_port(int fd);
/*
 * Unix stream sockets.  A `path` starting with '@' names the abstract
 * namespace.  weft_unix_listen() removes a stale socket file first (only if
 * it is a socket nobody listens on: it finds out by connecting, so a live
 * listener at that path sees one connection that closes at once, and the
 * call returns -EADDRINUSE).
 */
WEFT_EXPORT int weft_unix_listen(const char *path,
				 const struct weft_listen_opts *opts);
WEFT_EXPORT int weft_unix_dial(const char *path, int64_t deadline);

/* One accepted connection, handed to a weft_serve() handler. */
typedef void (*weft_conn_fn)(int fd, void *arg);

struct weft_future;

/* weft_serve() options; zero every field for the defaults. */
struct weft_serve_opts {
	size_t stack_size;	/* connection tasks' stack; 0: default */
	const char *name;	/* connection tasks' name; NULL: "conn" */
	/*
	 * Graceful shutdown (Go's Server.Shutdown): once this future
	 * completes (set, failed or cancelled, by anyone), weft_serve()
	 * stops accepting and waits for the connections it started to
	 * end; see weft_serve().  NULL: serve until cancelled.  Not
	 * retained: it must outlive the call.
	 */
	struct weft_future *stop;
	long reserved_[3];	/* must be zero */
};

/*
 * Accept loop: accept connections on `lfd` and run `fn(fd, arg)` in a new
 * detached task for each (the handler owns the fd and must close it; it is
 * non-blocking, close-on-exec, and TCP_NODELAY for TCP).  -EBADF for a
 * negative `lfd`.
 * Survives what a server must: on EMFILE/ENFILE/ENOBUFS/ENOMEM it backs off
 * (5 ms doubling to 1 s, as Go's net/http) while the existing connections
 * go on, then resumes; ECONNABORTED, EPROTO, EPERM and a peer that reset
 * before the accept are skipped.  A connection whose task cannot be spawned
 * (-ENOMEM) is closed at once and counted (weft_stats().conns_shed), and
 * the loop pauses 5 ms.  Returns when the calling task is cancelled
 * (-ECANCELED), on another accept error (that error), or when spawning
 * fails for good.  Coroutine context only.
 *
 * With `opts->stop` the connections are tracked (a weft_group) and the
 * call ends with them: when `stop` completes it stops accepting (a
 * connection accepted at that moment is still served; `lfd` stays open,
 * it is the caller's), waits until every connection handler has
 * returned, and returns 0.  If the calling task is cancelled, before or
 * during that wait, the handlers still running are cancelled (their
 * blocking calls return -ECANCELED) and awaited, and the call returns
 * -ECANCELED; so a drain bounded by a deadline is "complete `stop`, then
 * cancel the serving task at the deadline" (weft_join_for() with
 * WEFT_JOIN_CANCEL does the second half).  On an accept error it cannot
 * survive it cancels and awaits the handlers too, then returns the
 * error.  In this mode weft_serve() never returns while a handler it
 * started still runs.  Handlers that want to end early on a drain (an
 * idle keep-alive connection, say) can look at `stop` themselves.
 */
WEFT_EXPORT int weft_serve(int lfd, weft_conn_fn fn, void *arg,
			   const struct weft_serve_opts *opts);

/*
 * Futures
 *
 * A future is a one-shot result slot, asyncio's Future and
 * concurrent.futures' Future in one: any thread (a task, a plain thread, a
 * callback from another library) completes it once, with a value
 * (weft_future_set), an error (weft_future_fail) or a cancellation; tasks
 * and plain threads wait for it.  Futures are reference counted:
 * weft_future_make() returns one reference.  Every task is also a future
 * (weft_task_future), and so is every job of a blocking pool.
 */

struct weft_future;

/* Where a future is in its life, as weft_future_state() reports it. */
enum weft_future_state {
	WEFT_FUTURE_PENDING = 0,	/* not complete; its work has not begun */
	WEFT_FUTURE_RUNNING = 1,	/* its task or pool job is running */
	WEFT_FUTURE_DONE = 2,		/* completed with a value or an error */
	WEFT_FUTURE_CANCELLED = 3,	/* completed by a cancellation */
};

/* A done callback: runs once, on a worker, after `f` completed. */
typedef void (*weft_future_cb)(struct weft_future *f, void *arg);

/*
 * Make a pending future.  Returns 0, -EINVAL or -ENOMEM.  Any thread
 * (while a runtime runs: -ESRCH otherwise).
 */
WEFT_EXPORT int weft_future_make(struct weft_future **out);
/*
 * Take / drop a reference; the last release frees it.  Retain returns `f`
 * (NULL for NULL); releasing NULL does nothing.  Any thread.
 */
WEFT_EXPORT struct weft_future *weft_future_retain(struct weft_future *f);
WEFT_EXPORT void weft_future_release(struct weft_future *f);

/*
 * Complete `f` with `value` (set) or with the negative errno `err` (fail;
 * -EINVAL if err >= 0).  The first completion wins: returns 0, or
 * -EALREADY if `f` was complete already (its outcome is unchanged), -EPERM
 * on a task's or a pool job's future (only the task or job completes
 * those; it fails its own with weft_fail()).  Wakes every waiter and
 * schedules the done callbacks.  Never blocks and never runs a callback
 * inside the call.  Any thread.
 */
WEFT_EXPORT int weft_future_set(struct weft_future *f, void *value);
WEFT_EXPORT int weft_future_fail(struct weft_future *f, int err);

/*
 * Cancel `f`.  A plain future completes as WEFT_FUTURE_CANCELLED at once; a
 * task's future calls weft_cancel() on the task (it completes when the task
 * ends); a pool job that has not started is removed and completes as
 * cancelled, but a running job cannot be stopped: it runs to its end, and
 * the call returns -EBUSY.  Returns 0, -EALREADY (complete already) or
 * -EBUSY.  Any thread.
 */
WEFT_EXPORT int weft_future_cancel(struct weft_future *f);

/*
 * The future's state right now; WEFT_FUTURE_CANCELLED for NULL (no future
 * ever completes with a value).  Any thread holding a reference.
 */
WEFT_EXPORT enum weft_future_state
weft_future_state(const struct weft_future *f);

/*
 * The outcome of a complete future, without waiting: 0 with `*value` (if
 * non-NULL) set, the error it failed with, -ECANCELED if it was cancelled
 * (a task future: if the task was cancelled before it ran), or -EAGAIN
 * while it is not complete.  Any thread.
 */
WEFT_EXPORT int weft_future_result(const struct weft_future *f, void **value);

/*
 * Wait until `f` is complete, then return weft_future_result().  Also
 * -ETIMEDOUT, and -ECANCELED when the caller is cancelled (tell the two
 * -ECANCELED apart with weft_future_state()).  A cancellation point.  Any
 * thread: a plain thread blocks (it cannot be cancelled).
 */
WEFT_EXPORT int weft_future_wait(struct weft_future *f, void **value,
				 int64_t deadline);

/*
 * Call `cb(f, arg)` once `f` is complete: callbacks run in the order they
 * were registered, on a worker, in a task of their own (never inside the
 * call that completes `f`, nor inside this one, even when `f` is complete
 * already).  A callback may block.  Holds a reference to `f` until the
 * callback has returned.  Returns 0, -EINVAL, or -ENOMEM (then `cb` will
 * never be called).  Any thread.
 *
 * Without a runtime: if `f` completes while no runtime is running (a
 * foreign thread completes it after weft_run() returned), or a callback is
 * registered on a complete future then, its callbacks wait, with their
 * reference to `f`, and run on a worker of the next weft_run(), first
 * thing.  Callbacks of a future that is released without ever completing
 * never run.
 */
WEFT_EXPORT int weft_future_on_done(struct weft_future *f, weft_future_cb cb,
				    void *arg);

/*
 * gather: wait until all `n` futures are complete (look at each with
 * weft_future_result()).  Returns 0, -ETIMEDOUT, -ECANCELED, -EINVAL.
 * A cancellation point.  Any thread.
 */
WEFT_EXPORT int weft_wait_all(struct weft_future *const *fs, int n,
			      int64_t deadline);
/*
 * asyncio.wait(FIRST_COMPLETED): wait until one of the `n` futures is
 * complete and return its index (the lowest index if several were complete
 * already, else the first to complete).  Returns the index, -ETIMEDOUT,
 * -ECANCELED, -EINVAL (n < 1), -ENOMEM (more than 8 futures need a
 * record array).  A cancellation point.  Any thread.
 */
WEFT_EXPORT int weft_wait_any(struct weft_future *const *fs, int n,
			      int64_t deadline);

/*
 * The future of task `t`: RUNNING once it has started, DONE with its return
 * value when it returns, CANCELLED if it was cancelled before it ran.  A
 * borrowed reference, valid while the handle is; retain it to keep it
 * longer (it stays valid after the handle is given up).  NULL for NULL.
 * Any thread holding the handle.
 */
WEFT_EXPORT struct weft_future *weft_task_future(struct weft_task *t);

/* weft_join_for() flags. */
#define WEFT_JOIN_CANCEL	0x1	/* on timeout, cancel t and wait for it */

/*
 * weft_join() with asyncio.wait_for's option: with WEFT_JOIN_CANCEL, when
 * the deadline passes the task is cancelled and awaited (without a
 * deadline: its blocking calls return -ECANCELED at once; the caller waits
 * for it even if it is cancelled itself meanwhile, and stays cancelled),
 * its handle is released, and -ETIMEDOUT is returned.  A caller that is
 * cancelled (before the call or during the wait) also cancels and awaits
 * t under the flag: the handle is released and -ECANCELED is returned.
 * Same codes as weft_join(), plus -EINVAL for unknown flags.  Coroutine context only; a
 * cancellation point.
 */
WEFT_EXPORT int weft_join_for(struct weft_task *t, void **result,
			      int64_t deadline, unsigned int flags);

/*
 * Structured groups
 *
 * libdill's bundles, Trio's nurseries, Go's errgroup: tasks spawned into a
 * group are waited for, or cancelled, together, and none outlives
 * weft_group_free().  A group member returns an int: >= 0 is success, a
 * negative errno a failure.
 */

struct weft_group;

typedef int (*weft_group_fn)(void *arg);

/* weft_group_make() flags. */
#define WEFT_GROUP_CANCEL_ON_ERROR 0x1	/* first failure cancels the rest */

/* Returns 0, -EINVAL (unknown flags) or -ENOMEM.  Any thread. */
WEFT_EXPORT int weft_group_make(struct weft_group **out, unsigned int flags);
/*
 * Spawn `fn(arg)` into the group (opts as weft_spawn; may be NULL).
 * Returns 0, -ECANCELED if the group was cancelled (nothing is spawned),
 * or weft_spawn()'s errors.  Any thread.
 */
WEFT_EXPORT int weft_group_spawn(struct weft_group *g, weft_group_fn fn,
				 void *arg,
				 const struct weft_spawn_opts *opts);
/*
 * Spawn a member that returns a value, as a task does: `fn(arg)`'s return
 * value is the member's result, and it fails only through weft_fail()
 * (which counts for the group as a failure of that member, as a negative
 * return of a weft_group_spawn() member does).  `*out` receives one
 * reference (the caller's to release) to the member's future, which
 * completes with the value, fails with the weft_fail() error, or is
 * cancelled if the member was cancelled before it ran.  Returns 0 (then
 * `*out` is set), -EINVAL, -ECANCELED (the group was cancelled; nothing
 * is spawned), or weft_spawn()'s errors.  Any thread.
 */
WEFT_EXPORT int weft_group_spawn_future(struct weft_group *g,
					struct weft_future **out, weft_fn fn,
					void *arg,
					const struct weft_spawn_opts *opts);
/*
 * Wait until every member has finished.  Returns 0 if all succeeded, else
 * the first failure's error (by time of failure; members that were
 * cancelled by the group do not count), -ETIMEDOUT, -ECANCELED (the
 * caller).  A cancellation point.  Any thread.
 */
WEFT_EXPORT int weft_group_wait(struct weft_group *g, int64_t deadline);
/* Cancel every member, now and later spawns.  Returns 0.  Any thread. */
WEFT_EXPORT int weft_group_cancel(struct weft_group *g);
/* Members spawned and not yet finished.  Any thread. */
WEFT_EXPORT int weft_group_live(const struct weft_group *g);
/*
 * Cancel what is left, wait for it (no deadline: cancelled members stop at
 * their next blocking call; a cancelled caller waits too, and stays
 * cancelled), free the group.  Returns weft_group_wait()'s result (the
 * first failure or 0).  A member must not free its own group (-EDEADLK,
 * nothing is freed).  Any thread.
 */
WEFT_EXPORT int weft_group_free(struct weft_group *g);

/*
 * Blocking pools (run_in_executor, ThreadPoolExecutor)
 *
 * A pool runs plain blocking C calls on threads of its own while the
 * calling task parks.  Threads start on demand up to the limit (named
 * "weft-pool-N") and exit after being idle; the queue is bounded.  A job
 * that has not started can be cancelled (it is removed, fn never runs, its
 * future completes as cancelled); a running job cannot be stopped: it runs
 * to its end, and its result is dropped if nobody waits for it any more.
 */

struct weft_pool;

/* weft_pool_make() options; zero every field for the defaults. */
struct weft_pool_opts {
	size_t queue_max;	/* jobs waiting for a thread; 0: 1024 */
	int64_t idle_ns;	/* an idle thread exits after this; 0: 10 s */
	long reserved_[4];	/* must be zero */
};

/*
 * Make a pool of at most `max_threads` (1 .. 1024) threads; none runs
 * until a job is queued.  `opts` may be NULL.  Returns 0, -EINVAL
 * (max_threads out of range, idle_ns < 0, reserved_ not zero) or -ENOMEM.
 * Any thread, with or without a runtime.
 */
WEFT_EXPORT int weft_pool_make(struct weft_pool **out, int max_threads,
			       const struct weft_pool_opts *opts);
/*
 * Queue `fn(arg)`; `*out` receives its future (one reference, the caller's
 * to release), which completes with fn's return value, or fails with the
 * error fn gave weft_fail().  weft_future_cancel
 * on it returns 0 if the job had not started (removed; the future
 * completes as cancelled and fn never runs) or -EBUSY if it runs (it runs
 * to its end and the future completes with its value).  Returns 0,
 * -EAGAIN when the queue is full (nothing is queued), -EPIPE when it races
 * weft_pool_free(), -EINVAL, -ENOMEM.  Never blocks.  Any thread.
 */
WEFT_EXPORT int weft_pool_submit(struct weft_pool *p, struct weft_future **out,
				 weft_fn fn, void *arg);
/*
 * Apply `fn` to each of args[0..n-1]; results[i] receives fn(args[i]), in
 * order (NULL for a job that called weft_fail(); once all have run, the
 * call returns the error of the first such job by index).  Jobs are
 * queued as room allows (a full queue makes map wait, not fail).
 * Returns 0 once all have run, -ETIMEDOUT or -ECANCELED (jobs not
 * started are removed; running ones finish and are awaited first, so
 * `args` and `results` are no longer touched when it returns; results of
 * jobs that did not run are left as they were), -EPIPE (weft_pool_free()
 * removed jobs of this map), -EINVAL, -ENOMEM.  n == 0 returns 0.  A
 * cancellation point.  Any thread (a plain thread can only time out).
 */
WEFT_EXPORT int weft_pool_map(struct weft_pool *p, weft_fn fn, void **args,
			      void **results, size_t n, int64_t deadline);
/*
 * Stop taking jobs, cancel the ones not started (their futures complete as
 * cancelled at once), wait for the running ones, the threads and any
 * weft_pool_map() still inside, free the pool.  Returns 0, -EINVAL for
 * NULL, or -EDEADLK from a job running on `p` itself (nothing is done).
 * Not a cancellation point: it always waits.  `p` must not be used
 * once the call has begun, except by maps and submits already inside.
 * Any thread (a task parks).
 */
WEFT_EXPORT int weft_pool_free(struct weft_pool *p);

/*
 * Run `fn(arg)` on the runtime's own blocking pool (weft_config.pool_threads
 * threads, default 4) while the calling task parks; `*result` (if
 * non-NULL) receives its return value.  Returns 0, the error fn gave
 * weft_fail() (then `*result` is untouched), -ETIMEDOUT or
 * -ECANCELED (a job that has not started is removed and never runs; a
 * running one is abandoned: the call returns at once, the job runs to its
 * end and its result is dropped), -EAGAIN (queue of 1024 full), -EINVAL,
 * -ENOMEM, -ESRCH (no runtime).  A cancellation point.  Any thread while
 * a runtime runs (a plain thread blocks, and can only time out).
 */
WEFT_EXPORT int weft_blocking(weft_fn fn, void *arg, void **result,
			      int64_t deadline);
/*
 * As weft_blocking(), but returns at once with the job's future in *out
 * (one reference, the caller's; cancelling it behaves as for
 * weft_pool_submit).  Returns 0, -EAGAIN, -EINVAL, -ENOMEM, -ESRCH.
 * Never blocks.  Any thread while a runtime runs.
 */
WEFT_EXPORT int weft_blocking_submit(struct weft_future **out, weft_fn fn,
				     void *arg);

/*
 * Pre-fork supervisor
 *
 * Processes x coroutines, nginx's master/worker model as one call: a
 * master process opens the listening sockets, forks `procs` children
 * before any runtime thread or ring exists, and each child runs its own
 * weft_run() with `workers` threads.  The master restarts children that
 * die, reloads on SIGHUP without refusing a connection, and drains and
 * stops on SIGQUIT (graceful), SIGTERM or SIGINT (fast); a second stop
 * signal of the same or a gentler kind forces it (SIGKILL).  SIGUSR1
 * makes the master print one status line per child on stderr.
 *
 * Binary upgrade (SIGUSR2, nginx's USR2 and HAProxy's -x): the master
 * runs its own argv again (argv[0] as found in PATH, so a binary replaced
 * on disk is the one started), handing it every listening socket, slot
 * by slot (WEFT_PREFORK_FDS, WEFT_PREFORK_UPGRADE_FD and
 * WEFT_PREFORK_GENERATION in its environment; weft_prefork() in the new
 * process takes them instead of opening its own).  Once the new
 * master's first generation is ready the
 * old master drains everything and exits 0; a new master that exits
 * before that leaves the old one serving, and says why.  The new
 * master's on_listen is called as well, and its generations go on from
 * the old master's.  A SIGHUP or SIGUSR2 that comes while a generation
 * is starting is carried out once it is ready (several SIGHUPs then make
 * one reload).
 *
 * Listener modes.  WEFT_PREFORK_SHARED (the default): one socket per
 * listener, inherited by every child, which all accept from it; a child
 * that dies, hangs or is being replaced delays nobody, since any live
 * child takes the next connection; works for Unix sockets and systemd's
 * sockets alike.  WEFT_PREFORK_REUSEPORT: one SO_REUSEPORT socket per TCP
 * listener and process slot, owned by the master and handed to whichever
 * child fills the slot (the old and the new child of a reload share it),
 * so no reload or respawn ever closes a listening socket and drops its
 * queue; the kernel spreads connections over the slots evenly, but
 * those hashed to a slot whose child is restarting wait (in its queue,
 * not lost) until the new child accepts.  Unix listeners stay shared.
 *
 * Protocol between master and child (a SOCK_SEQPACKET socketpair per
 * child): the child says it is ready (weft_prefork_ready()); the master
 * says drain.  A reload calls the reload hook, starts a new generation
 * of `procs` children, waits until each is ready, then drains the old
 * one.  Draining, in the child: the `drain` future completes (pass it
 * as weft_serve_opts.stop so the accept loops stop and wait for their
 * connections); at the drain deadline the child's main task is
 * cancelled (weft_serve then cancels the connections left), and
 * whatever remains is killed one second later by the master.  A child
 * also drains, with no grace, when its master dies (it sees the
 * socketpair close) and exits within a second.
 *
 * Respawn: a child that dies without being told to is replaced in its
 * slot after 100 ms, doubling on each death to at most 10 s; the delay
 * starts again at 100 ms once a child has lived a minute.  A generation
 * whose slot dies five times before ever saying ready is a crash loop:
 * at start-up the master stops with an error (weft_prefork() returns
 * -ECHILD); on a reload the old generation keeps serving.  Every dead
 * child's exit status or signal is logged on stderr, prefixed with
 * `name`.
 *
 * systemd: with LISTEN_PID set to the master's pid, the LISTEN_FDS
 * sockets from fd 3 on are the listeners (the `listen` specs are then
 * ignored, and the mode is SHARED); with NOTIFY_SOCKET set, the master
 * sends READY=1, RELOADING=1 (with MONOTONIC_USEC), STOPPING=1 and
 * STATUS= datagrams.  Children see neither variable.
 */

/* Values of weft_prefork_opts.mode. */
enum weft_prefork_mode {
	WEFT_PREFORK_SHARED = 0,	/* one socket, every child accepts */
	WEFT_PREFORK_REUSEPORT = 1,	/* one SO_REUSEPORT socket per slot */
};

/* One listener for the master to open. */
struct weft_prefork_listen {
	/* TCP, as weft_tcp_listen(host, port, &opts); unused with unix_path. */
	const char *host;
	int port;
	/* Non-NULL: a Unix socket, as weft_unix_listen(); always shared. */
	const char *unix_path;
	/* reuseport is set by the master itself in REUSEPORT mode. */
	struct weft_listen_opts opts;
};

/* What a child is given.  Read-only, valid for the child's whole life. */
struct weft_prefork_child {
	int slot;		/* 0 .. procs-1 */
	int nfds;		/* the listeners, in the order of `listen` */
	const int *fds;
	uint64_t generation;	/* 1, then one more for each reload */
	/*
	 * Completes (with NULL) when the master says drain, or dies.  A
	 * borrowed reference, valid while the child's run lasts.
	 */
	struct weft_future *drain;
	void *arg;		/* weft_prefork_opts.arg */
	long reserved_[4];
};

/*
 * A child's body: runs as the main task of the child's weft_run(); what
 * it returns is the child's exit status (0..255).
 */
typedef int (*weft_prefork_fn)(const struct weft_prefork_child *c);

/* weft_prefork() options; zero every field for the defaults. */
struct weft_prefork_opts {
	/*
	 * Child processes (slots), 1..1024, and worker threads per child
	 * (`cfg.workers`, 1..1024).  Both 0: one child per CPU of the
	 * affinity mask, one worker each; one of them 0: as many as fit
	 * the CPUs with the other (at least 1).
	 */
	int procs;
	int mode;		/* enum weft_prefork_mode */
	const struct weft_prefork_listen *listen;
	int nlisten;		/* 0..64 */
	/* Each child's weft_run() configuration (workers as above). */
	struct weft_config cfg;
	weft_prefork_fn child_main;	/* required */
	/*
	 * Called in the master on SIGHUP before the new generation starts
	 * (re-read the configuration here: children inherit the master's
	 * memory).  A negative return refuses the reload: the old
	 * generation keeps serving and the error is logged.  NULL: always
	 * reload.
	 */
	int (*reload)(void *arg);
	/*
	 * Called in the master once the listeners are open, before any
	 * child exists (print the "listening on" line here).  A negative
	 * return stops weft_prefork() with that error.  NULL: nothing.
	 */
	int (*on_listen)(const int *fds, int nfds, void *arg);
	void *arg;
	/* Graceful drain (reload, SIGQUIT), ns; 0: 10 s. */
	int64_t drain_ns;
	/* Fast stop (SIGTERM, SIGINT), ns; 0: 1 s. */
	int64_t stop_ns;
	/* Log prefix; NULL: "weft". */
	const char *name;
	unsigned long flags;	/* WEFT_PREFORK_* flags below; 0: none */
	long reserved_[3];	/* must be zero */
};

/*
 * weft_prefork_opts.flags.  WEFT_PREFORK_FORWARD_USR1: SIGUSR1 to the
 * master is also sent to every live child (after the status lines), and
 * children do not ignore it: a child that wants it (to reopen its log
 * files, nginx's USR1) takes it with weft_signal_notify() first thing;
 * until then it is ignored, never fatal.
 */
#define WEFT_PREFORK_FORWARD_USR1 1ul

/*
 * Become the master: open the listeners, fork the children, supervise
 * them until a stop signal (see above), and return once every child has
 * exited.  Call it from a single-threaded process before any weft_run()
 * (the children are forked from this thread; no runtime may exist).
 * While it runs it blocks SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD,
 * SIGUSR1 and SIGUSR2 and takes them through a signalfd; the mask and
 * SIGCHLD's disposition are restored before it returns, and the
 * listeners it opened are closed.  Children ignore SIGHUP, SIGINT,
 * SIGQUIT, SIGUSR1 and SIGUSR2 (a terminal's ^C reaches them through
 * the master; weft_config.dump_signal still works); SIGTERM to a child
 * kills it, and it is respawned.
 *
 * Returns 0 after a stop by signal, -ECHILD after a crash loop at
 * start-up (logged with its cause), -EINVAL (bad options, `cfg` out of
 * range as weft_run() would refuse it, or LISTEN_FDS malformed), -EBUSY (a runtime runs in this process), a
 * listener's error (its address is logged), on_listen's error, or the
 * negative errno of a failed signalfd.  Plain thread only (-EPERM in a
 * task).
 */
WEFT_EXPORT int weft_prefork(const struct weft_prefork_opts *opts);

/* A child's state, as weft_prefork_status() reports it. */
enum weft_prefork_state {
	WEFT_PREFORK_STARTING = 0,	/* forked, not ready yet */
	WEFT_PREFORK_READY = 1,		/* said ready: serving */
	WEFT_PREFORK_DRAINING = 2,	/* told to drain (reload, stop) */
};

/* One child of a master, as weft_prefork_status() reports it. */
struct weft_prefork_proc {
	pid_t pid;
	int slot;
	uint64_t generation;
	int state;		/* enum weft_prefork_state */
	int restarts;		/* respawns in its slot so far */
	int64_t uptime_ns;	/* since it was forked */
	int64_t started;	/* fork time, CLOCK_MONOTONIC ns */
	long reserved_[4];
};

/*
 * In the master: copy up to `max` of its children (starting, serving
 * and draining ones alike) into `out`, as of the master's last wake-up
 * (inside the reload hook: as of the call).
 * Returns how many children there are (possibly more than `max`), or
 * -ESRCH when no weft_prefork() runs in this process, -EINVAL (`max` <
 * 0, or `out` NULL with `max` > 0).  Any thread of the master's process,
 * the reload and on_listen callbacks included.  (SIGUSR1 to the master
 * prints the same as one line per child.)
 */
WEFT_EXPORT int weft_prefork_status(struct weft_prefork_proc *out, int max);

/*
 * In a child: tell the master this child is ready to serve (call it
 * once set up, before weft_serve(): the listeners queue connections
 * meanwhile).  A reload waits for this from every new child before the
 * old ones drain.  Returns 0, -EALREADY (said already), -EINVAL (`c` is
 * not this process's), or the send's error.  Coroutine context only.
 */
WEFT_EXPORT int weft_prefork_ready(const struct weft_prefork_child *c);

/*
 * Diagnostics
 *
 * Deadlock detection.  When every task is parked on something only another
 * task can release (a join, a future, a channel, a lock, a cond, a wait
 * group, or a sleep without end: weft_sleep_until(WEFT_DEADLINE_NONE) or
 * weft_sleep(INT64_MAX), Go's `select {}`) and nothing else can wake any
 * of them (no timer or deadline is armed, no I/O is in flight, no pool job
 * is queued or running, and the process has no threads but weft's own, so
 * no foreign thread can act), weft logs "weft: all tasks are asleep -
 * deadlock!" (to weft_config.log, else stderr), then the tasks and their
 * stacks as weft_dump() prints them, and each cycle of the wait-for graph
 * ("cycle: a (#2) -> b (#3) -> a (#2)": a join points at the joined task,
 * a future at the task that completes it, a mutex at the task holding it,
 * so a lock-order inversion shows as a cycle), and aborts.  With the
 * weft_config.deadlock = WEFT_DEADLOCK_REPORT (or the environment variable
 * WEFT_DEADLOCK=report) it prints the report once per deadlock and goes on
 * waiting instead; WEFT_DEADLOCK_OFF (WEFT_DEADLOCK=off) turns the
 * detector off.  The checks run on a monitor thread, "weft-mon", that
 * weft_run() starts and stops.
 *
 * Slow tasks.  A task that keeps its worker busy for longer than a
 * threshold (default 100 ms; weft_config.slow_ms or WEFT_SLOW_MS) is
 * reported once, with its id and name and where it is: the monitor
 * samples its worker with SIGURG (installed for the run only if the
 * program left SIGURG at its default or ignored) and walks its frames; a
 * worker inside a system call is not signalled, and the report names the
 * call instead.  When the task gives its worker back, a second line says
 * how long it ran without a switch (to a monitor tick, 20 ms).
 *
 * Backtraces are walked by frame pointers from the context a parked task's
 * switch saved (and from the interrupted registers, for a slow task).
 * weft is built with -fno-omit-frame-pointer; build your code with it too,
 * or frames of functions compiled without it are missing from the
 * backtraces (gdb's weft-bt, below, does not need it).  Frames are named
 * "function+0xoff (object+0xoff)" from the objects' ELF symbol tables;
 * `addr2line -f -i -e OBJECT 0xoff` gives the file and line.
 *
 * gdb.  `source PREFIX/share/weft/gdb/weft.py` (installed by make
 * install) adds `info weft-tasks` (every live task: id, name, state, what
 * it waits on, where it stopped) and `weft-bt ID` / `weft-bt all` (the
 * full backtrace of a parked task, unwound by gdb from the task's saved
 * registers) to a live process stopped under gdb.
 */

/*
 * Print every live task: id, name, state, worker; for a parked one what it
 * waits on in detail (a channel's capacity and queued values, a mutex's
 * owner, an I/O call's operation and fd), for how long and the time left
 * to its deadline ("forever" for a sleep without end); "created by": the
 * task that spawned it and the weft_spawn() call site; and "[stack K]",
 * its backtrace in the "stacks" section that follows, where identical
 * stacks are printed once with the number of tasks on them ("stack 1:
 * 1000 tasks: #2 #3 ...").  Then the cycles of the wait-for graph, the
 * per-worker counters and the stack memory in use.  A snapshot: tasks
 * that run meanwhile may show without a stack; reading another task's
 * stack never faults (it goes through process_vm_readv(2)).  Returns 0,
 * -EINVAL, or -EIO if writing failed.  Any thread.  With
 * weft_config.dump_signal = SIGUSR1 (or WEFT_DUMP_SIGNAL=SIGUSR1, or
 * another signal's name, in the environment), the runtime logs the dump
 * (weft_config.log, else stderr) on that signal, from a thread of its
 * own, not inside the handler.
 */
WEFT_EXPORT int weft_dump(FILE *out);

/*
 * Introspection
 *
 * Counters for tests, benchmarks and monitoring.  While a runtime runs they
 * are live (read without locks, so a snapshot may be a few events stale);
 * after weft_run() returns they describe the run that just ended.
 */

struct weft_worker_stats {
	uint64_t tasks_run;	/* tasks switched to by this worker */
	uint64_t spawns;	/* tasks spawned by tasks on this worker */
	uint64_t steals;	/* successful steals by this worker */
	uint64_t stolen;	/* tasks taken by those steals */
	uint64_t parks;		/* times the worker slept in the kernel */
	uint64_t wakeups;	/* wake messages this worker sent */
	uint64_t timers_fired;	/* timers this worker expired */
	uint64_t global_gets;	/* tasks taken from the global queue */
	uint64_t io_ops;	/* I/O operations started on this worker */
	uint64_t io_enters;	/* io_uring_enter / epoll_wait calls */
	uint64_t io_done;	/* I/O operations completed on this worker */
	uint64_t coop_yields;	/* yields forced by the cooperative budget:
				   every 128 I/O calls that did not wait */
	uint64_t reserved_[4];
};

struct weft_stats {
	int workers;		/* worker threads of the run */
	int running;		/* 1 while a runtime runs */
	uint64_t tasks_live;	/* spawned and not yet finished */
	uint64_t tasks_spawned;	/* since the run started, main task included */
	uint64_t stacks_in_use;	/* stacks owned by live tasks */
	uint64_t stacks_cached;	/* free stacks kept in pools */
	uint64_t stacks_guarded; /* mapped stacks with an armed guard */
	uint64_t stack_bytes_mapped; /* address space reserved for stacks */
	uint64_t slow_tasks;	/* tasks reported for hogging a worker */
	uint64_t deadlocks;	/* deadlocks reported (WEFT_DEADLOCK=report) */
	uint64_t spawns_refused; /* weft_spawn calls failed for want of memory */
	uint64_t conns_shed;	/* accepted connections weft_serve closed
				   unserved (no task could be spawned) */
	uint64_t reserved_[4];
};

/* Fill `*s`.  Returns 0 or -EINVAL.  Any thread. */
WEFT_EXPORT int weft_stats(struct weft_stats *s);

/*
 * Fill `*s` with the counters of worker `worker`.  Returns 0, or -EINVAL
 * for an index outside 0 .. workers-1 of the current (or last) run.
 * Any thread.
 */
WEFT_EXPORT int weft_worker_stats(int worker, struct weft_worker_stats *s);

/*
 * Errors
 *
 * Every call returns a negative errno on failure; these name them, and
 * give tasks, group members and pool jobs one way to end with an error
 * instead of a value.
 */

/*
 * A description of the error code `err` (negative as weft returns it, or
 * positive as errno): "Connection timed out" for -ETIMEDOUT; "Success"
 * for 0; "Unknown error" for a code the C library does not know.  Never
 * NULL; a constant string, safe from any thread (unlike strerror()).
 */
WEFT_EXPORT const char *weft_strerror(int err);

/*
 * End the calling task or pool job with the error `err` (< 0) instead of
 * a value.  The code goes on to its return as usual; its return value is
 * then dropped and:
 *  - a task (weft_spawn): weft_join() returns `err` (and releases the
 *    handle), its future (weft_task_future) fails with `err`;
 *  - a group member (weft_group_spawn, weft_group_spawn_future): counts
 *    as a member that returned `err` (its own return value is ignored),
 *    and a weft_group_spawn_future() member's future fails with it;
 *  - a pool job (weft_pool_submit, weft_blocking_submit, weft_blocking,
 *    weft_pool_map): its future fails with `err`, weft_blocking() returns
 *    it, weft_pool_map() returns the first failed job's (by index).
 * (weft_run()'s main task only fails its own future: weft_run() still
 * returns 0 and hands back the return value.)
 * The first call wins.  Returns 0, -EINVAL (err >= 0), -EALREADY (called
 * before by this task or job), -ENOMEM (the task's future could not be
 * made; nothing changed), -EPERM (neither a task nor a pool thread running
 * a job).  Never blocks.  Coroutine context, or a pool job's thread.
 */
WEFT_EXPORT int weft_fail(int err);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */

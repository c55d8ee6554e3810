/* SPDX-License-Identifier: MIT */
/*
 * Blocking pools: plain threads that run the calls a worker must not make
 * (getaddrinfo, openat/fsync under the epoll backend, and the user's own
 * blocking C calls through weft_blocking() and weft_pool_*) while the
 * calling task parks.
 *
 * One mechanism serves the runtime's default pool (weft_config.pool_threads
 * or WEFT_POOL_THREADS threads, default 4, made on first use and never
 * freed) and the pools a
 * user makes with weft_pool_make().  Threads start on demand, when a job is
 * queued and fewer threads are idle than jobs wait, up to the pool's limit,
 * and exit after idle_ns without work, so an idle process keeps none.  Jobs
 * run in FIFO order.  A job that has not started can be removed (deadline,
 * cancellation, weft_future_cancel, weft_pool_free); a running one cannot
 * be stopped, only waited for or abandoned.
 *
 * A job is completed one of three ways:
 *  - a waiter (weft__pool_run, weft_blocking): the caller parks (a task) or
 *    sleeps on a futex (a plain thread) on a pool_waiter, and the thread
 *    wakes it.  If the caller leaves while the job runs and the job is on
 *    the heap, the job is ABANDONED and the thread frees it;
 *  - a batch (weft_pool_map): a counter of the map's jobs queued or
 *    running; the thread wakes the map's caller when it reaches zero;
 *  - a future (weft_pool_submit, weft_blocking_submit): the thread
 *    completes the owned future (runtime/future.h).
 *
 * Every live pool is on a registry, so the deadlock detector can ask how
 * many jobs are queued or running and how many pool threads live
 * (weft__pool_busy, weft__pool_threads).
 *
 * Locks: registry.lock (WEFT_RANK_POOL_REGISTRY) and each pool's lock
 * (WEFT_RANK_POOL), ranked in io/base.h.  A pool thread wakes waiters
 * under pool->lock; a future is completed with no pool lock held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/future.h"
#include "runtime/runtime.h"
#include "sched/park.h"

#define POOL_THREADS_MAX 1024
#define POOL_QUEUE_DEFAULT 1024
#define POOL_IDLE_DEFAULT (10 * WEFT_SEC)

/*
 * A job's life.  QUEUED: on its pool's queue; whoever removes it under the
 * pool lock (the thread that takes it, a leaving caller, a cancel, the
 * pool's free) decides its next state.  RUNNING: a thread runs fn; only
 * that thread moves it on.  DONE and CANCELLED are final; ABANDONED is a
 * running heap job whose caller has left: the thread frees it.
 */
enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE,
	JOB_CANCELLED,
	JOB_ABANDONED,
};

/*
 * A caller waiting on a pool: a task (parks) or a plain thread (futex),
 * through weft__waiter.  `armed` is set by the caller when it prepares and
 * cleared by whoever wakes it or by the caller once it is back; both under
 * the pool lock, so a waker never wakes a wait that is over.
 */
struct pool_waiter {
	struct weft__waiter wt;
	bool uncancellable;	/* a task in an I/O park: only a wake ends it */
	bool armed;		/* under pool->lock */
};

struct batch;

struct job {
	/* Queue links: under pool->lock. */
	struct job *prev, *next;

	/* Immutable once queued. */
	weft_fn fn;			/* a public job: value = fn(arg) */
	void (*ifn)(void *);		/* an internal job (weft__pool_run) */
	void (*abandon)(void *);	/* internal: frees arg if abandoned */
	void *arg;
	struct weft_future *fut;	/* the pool's reference, or NULL */
	struct batch *batch;		/* weft_pool_map's, or NULL */
	void **slot;			/* map: where the value goes */
	bool internal;			/* not counted against queue_max */
	bool heap;			/* malloc'ed: may be abandoned */

	/* Under pool->lock. */
	enum job_state state;
	struct pool_waiter *pw;		/* the waiting caller, or NULL */
	void *result;			/* fn's value once DONE */

	/*
	 * weft_fail() inside fn: written only by the thread running fn
	 * (before the pool lock or the future completion that publishes
	 * DONE), read after it.
	 */
	int err;
};

/* One weft_pool_map() call. */
struct batch {
	struct pool_waiter pw;		/* the map's caller */
	/* Under pool->lock. */
	size_t left;			/* its jobs queued or running */
	bool cancelled;			/* weft_pool_free removed some */
	bool room_listed;		/* on pool->room */
	struct batch *room_next;
};

struct weft_pool {
	pthread_mutex_t lock;
	/* Idle threads wait here for a job or for the pool's free. */
	pthread_cond_t work;

	/*
	 * Thread limit.  Immutable after make, except the default pool's,
	 * which weft__pool_default_limit() sets under lock.
	 */
	int max;			/* under lock */
	/* Immutable after make. */
	size_t queue_max;		/* queued public jobs */
	int64_t idle_ns;
	bool builtin;			/* the default pool: never freed */

	/* Under lock. */
	struct job *head, *tail;	/* FIFO */
	size_t queued;			/* all jobs on the queue */
	size_t limited;			/* of those, the public ones */
	int running;			/* jobs a thread runs right now */
	int threads;			/* started and not exited */
	int idle;			/* threads waiting on `work` */
	int callers;			/* weft_pool_map calls inside */
	bool closing;			/* weft_pool_free began */
	struct batch *room;		/* maps waiting for queue room */
	struct pool_waiter *freer;	/* weft_pool_free's caller */

	/* Under registry.lock. */
	struct weft_pool *reg_next;
};

static struct {
	pthread_mutex_t lock;
	struct weft_pool *head;		/* every live pool: under lock */
} registry = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static struct weft_pool default_pool;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static int default_err;			/* written once, under default_once */

static uint32_t thread_seq;		/* names threads; atomic */

/* The pool whose thread this is (weft_pool_free from a job: -EDEADLK). */
static __thread struct weft_pool *self_pool;

static void
pool_unlock(void *arg)
{
	struct weft_pool *p = arg;

	weft__mutex_unlock(&p->lock);
}

/*
 * Arm `pw` for the calling context `self` (a task, or NULL for a plain
 * thread).  An uncancellable task waits in an I/O park, which neither a
 * deadline nor weft_cancel() ends.  Caller holds p->lock.
 */
static void
pw_prepare_locked(struct pool_waiter *pw, struct weft_task *self,
		  bool uncancellable)
{
	if (self && uncancellable) {
		pw->wt.task = self;
		pw->wt.seq = weft__park_prepare_io(self);
	} else {
		weft__waiter_prepare_as(&pw->wt, self);
	}
	pw->uncancellable = uncancellable;
	pw->armed = true;
}

/* Wake `pw` if it still waits.  Caller holds the pool lock. */
static void
pw_wake_locked(struct pool_waiter *pw)
{
	if (pw && pw->armed) {
		pw->armed = false;
		weft__waiter_wake(&pw->wt, 0);
	}
}

/*
 * Release p->lock, wait on `pw` until woken, `deadline` or cancellation,
 * and take p->lock again.  Returns 0 (woken), -ETIMEDOUT or -ECANCELED.
 * Caller holds p->lock and armed pw under it.
 */
static int
pw_wait_locked(struct weft_pool *p, struct pool_waiter *pw, int64_t deadline)
{
	int r;

	WEFT_ASSERT_HELD(&p->lock);

	if (pw->wt.task && pw->uncancellable) {
		/*
		 * A wake between the unlock and the park commits the park
		 * early; weft__park_io() then returns without switching.
		 */
		weft__mutex_unlock(&p->lock);
		r = weft__park_io();
	} else {
		r = weft__waiter_wait(&pw->wt, pool_unlock, p, deadline);
	}
	weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	pw->armed = false;
	return r;
}

static int
pool_init(struct weft_pool *p, int max, size_t queue_max, int64_t idle_ns)
{
	pthread_condattr_t ca;
	int r;

	p->max = max;
	p->queue_max = queue_max;
	p->idle_ns = idle_ns;
	r = pthread_mutex_init(&p->lock, NULL);
	if (r)
		return -r;
	r = pthread_condattr_init(&ca);
	if (r)
		goto out_destroy_lock;
	/* Idle timeouts on the monotonic clock, as every weft deadline. */
	r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!r)
		r = pthread_cond_init(&p->work, &ca);
	pthread_condattr_destroy(&ca);
	if (r)
		goto out_destroy_lock;
	weft__mutex_lock(&registry.lock, WEFT_RANK_POOL_REGISTRY);
	p->reg_next = registry.head;
	registry.head = p;
	weft__mutex_unlock(&registry.lock);
	return 0;

out_destroy_lock:
	pthread_mutex_destroy(&p->lock);
	return -r;
}

static void
pool_unregister(struct weft_pool *p)
{
	struct weft_pool **pp;

	weft__mutex_lock(&registry.lock, WEFT_RANK_POOL_REGISTRY);
	for (pp = &registry.head; *pp != p; pp = &(*pp)->reg_next)
		;
	*pp = p->reg_next;
	weft__mutex_unlock(&registry.lock);
}

static void
default_init(void)
{
	default_pool.builtin = true;
	default_err = pool_init(&default_pool, weft__config_pool_threads(),
				POOL_QUEUE_DEFAULT, POOL_IDLE_DEFAULT);
}

/* The runtime's default pool, made on first use.  Any thread. */
static int
default_get(struct weft_pool **out)
{
	pthread_once(&default_once, default_init);
	*out = &default_pool;
	return default_err;
}

int
weft__pool_default_limit(int threads)
{
	struct weft_pool *p;
	int r = default_get(&p);

	if (r < 0)
		return r;
	if (threads < 1 || threads > POOL_THREADS_MAX)
		return -EINVAL;
	weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	p->max = threads;
	/* Idle threads above the new limit wake up and exit. */
	if (p->threads > threads)
		pthread_cond_broadcast(&p->work);
	weft__mutex_unlock(&p->lock);
	return 0;
}

/* Append j to p's queue.  Caller holds p->lock. */
static void
enqueue_locked(struct weft_pool *p, struct job *j)
{
	WEFT_ASSERT_HELD(&p->lock);
	j->state = JOB_QUEUED;
	j->next = NULL;
	j->prev = p->tail;
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	if (!j->internal)
		p->limited++;
	pthread_cond_signal(&p->work);
}

/* Take the queued job j off p's queue.  Caller holds p->lock. */
static void
dequeue_locked(struct weft_pool *p, struct job *j)
{
	WEFT_ASSERT_HELD(&p->lock);
	WEFT_ASSERT(j->state == JOB_QUEUED);
	if (j->prev)
		j->prev->next = j->next;
	else
		p->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		p->tail = j->prev;
	j->prev = j->next = NULL;
	p->queued--;
	if (!j->internal)
		p->limited--;
}

/* The pool's free waits for this: no thread and no map caller left. */
static void
free_check_locked(struct weft_pool *p)
{
	WEFT_ASSERT_HELD(&p->lock);
	if (p->closing && p->threads == 0 && p->callers == 0)
		pw_wake_locked(p->freer);
}

/* The public job this pool thread runs right now (weft_fail()), or NULL. */
static __thread struct job *cur_job;

int
weft__pool_job_fail(int err)
{
	struct job *j = cur_job;

	if (!j)
		return -EPERM;
	if (j->err)
		return -EALREADY;
	j->err = err;
	return 0;
}

/* The body of a job: run it and complete it.  A pool thread, unlocked. */
static void
job_run(struct weft_pool *p, struct job *j)
{
	void *value = NULL;

	if (j->fut)
		weft__future_running(j->fut);
	if (j->ifn) {
		j->ifn(j->arg);
	} else {
		cur_job = j;
		value = j->fn(j->arg);
		cur_job = NULL;
		if (j->err)
			value = NULL;	/* a failed job has no value */
	}
	if (j->slot)
		*j->slot = value;	/* read by the map after `left` hits 0 */
	if (j->fut) {
		/*
		 * Nobody else completes it: it left the queue as RUNNING,
		 * and job_future_cancel() looks only at the queue.
		 */
		weft__future_complete(j->fut, value, j->err, false);
		weft_future_release(j->fut);
		weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
		p->running--;
		weft__mutex_unlock(&p->lock);
		free(j);
		return;
	}
	weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	p->running--;
	if (j->state == JOB_ABANDONED) {
		weft__mutex_unlock(&p->lock);
		if (j->abandon)
			j->abandon(j->arg);
		free(j);
		return;
	}
	j->state = JOB_DONE;
	j->result = value;
	if (j->batch) {
		if (--j->batch->left == 0)
			pw_wake_locked(&j->batch->pw);
	} else {
		/* Last touch: the waiter may free j once we unlock. */
		pw_wake_locked(j->pw);
	}
	weft__mutex_unlock(&p->lock);
}

static void *
pool_main(void *arg)
{
	struct weft_pool *p = arg;
	struct timespec ts;
	struct batch *b;
	struct job *j;
	char name[16];
	int r;

	snprintf(name, sizeof(name), "weft-pool-%u",
		 ck_pr_faa_32(&thread_seq, 1) % 100000);
	pthread_setname_np(pthread_self(), name);
	self_pool = p;

	weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	for (;;) {
		/*
		 * Above a lowered limit (weft__pool_default_limit): leave
		 * the queue to the others (at least `max` of them).
		 */
		if (p->threads > p->max && !p->closing)
			goto out_exit;
		while (!p->head && !p->closing) {
			if (p->threads > p->max)
				goto out_exit;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += p->idle_ns / WEFT_SEC;
			ts.tv_nsec += p->idle_ns % WEFT_SEC;
			if (ts.tv_nsec >= WEFT_SEC) {
				ts.tv_sec++;
				ts.tv_nsec -= WEFT_SEC;
			}
			p->idle++;
			r = pthread_cond_timedwait(&p->work, &p->lock, &ts);
			p->idle--;
			if (r == ETIMEDOUT && !p->head)
				goto out_exit;
		}
		j = p->head;
		if (!j)
			break;		/* closing, and nothing left to run */
		dequeue_locked(p, j);
		j->state = JOB_RUNNING;
		p->running++;
		/* Room on the queue: maps waiting for it may queue more. */
		for (b = p->room; b; b = b->room_next)
			pw_wake_locked(&b->pw);
		weft__mutex_unlock(&p->lock);

		job_run(p, j);

		weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	}
out_exit:
	p->threads--;
	free_check_locked(p);
	/* Last touch of p: its free may go on once we unlock. */
	weft__mutex_unlock(&p->lock);
	return NULL;
}

/*
 * Start a thread if the queue holds more jobs than idle threads can take
 * and the pool is below its limit.  Returns 0, or -errno if no thread runs
 * at all and none could be started.  Caller holds p->lock.
 */
static int
grow_locked(struct weft_pool *p)
{
	pthread_attr_t attr;
	pthread_t th;
	int r;

	WEFT_ASSERT_HELD(&p->lock);
	if ((size_t)p->idle >= p->queued || p->threads >= p->max)
		return 0;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&th, &attr, pool_main, p);
	pthread_attr_destroy(&attr);
	if (r)
		return p->threads ? 0 : -r;
	p->threads++;
	return 0;
}

/*
 * Queue j on p and make sure a thread will run it.  Returns 0, -EPIPE
 * (the pool is being freed), -EAGAIN (queue full) or -errno from
 * pthread_create.  Caller holds p->lock.
 */
static int
submit_locked(struct weft_pool *p, struct job *j)
{
	int r;

	WEFT_ASSERT_HELD(&p->lock);

	if (p->closing)
		return -EPIPE;
	if (!j->internal && p->limited >= p->queue_max)
		return -EAGAIN;
	enqueue_locked(p, j);
	r = grow_locked(p);
	if (r < 0)
		dequeue_locked(p, j);
	return r;
}

/*
 * Queue j and wait for it as `self` (a task, or NULL on a plain thread).
 * Before j starts, the deadline and cancellation remove it.  Once it runs,
 * a heap job is abandoned to the pool (the caller returns the error and
 * the thread frees j, calling j->abandon first: *abandoned tells); a job
 * on the caller's stack is waited for, uncancellably.  Returns 0 when j
 * ran to its end for the caller (its value in j->result), else an error,
 * and then j->abandon (if any) has been or will be called.  Any thread.
 */
static int
job_wait(struct weft_pool *p, struct job *j, struct weft_task *self,
	 int64_t deadline, bool *abandoned)
{
	struct pool_waiter pw;
	int r;

	*abandoned = false;
	weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	r = submit_locked(p, j);
	if (r < 0)
		goto out_unlock;
	j->pw = &pw;
	for (;;) {
		pw_prepare_locked(&pw, self, false);
		if (self)
			weft__wait_note(self, WAIT_POOL, j);
		r = pw_wait_locked(p, &pw, deadline);
		if (j->state != JOB_QUEUED && j->state != JOB_RUNNING)
			break;
		if (r == 0)
			continue;	/* not the completion: wait on */
		if (j->state == JOB_QUEUED) {
			dequeue_locked(p, j);
			j->state = JOB_CANCELLED;
			goto out_unlock;
		}
		if (j->heap) {
			/* Running: leave it to the pool, which frees it. */
			j->state = JOB_ABANDONED;
			j->pw = NULL;
			*abandoned = true;
			weft__mutex_unlock(&p->lock);
			return r;
		}
		/* fn works on the caller's memory: wait for it. */
		while (j->state == JOB_RUNNING) {
			pw_prepare_locked(&pw, self, true);
			pw_wait_locked(p, &pw, WEFT_DEADLINE_NONE);
		}
		break;
	}
	/* DONE, or CANCELLED by the pool's free. */
	r = j->state == JOB_DONE ? 0 : -ECANCELED;

out_unlock:
	j->pw = NULL;
	weft__mutex_unlock(&p->lock);
	if (r < 0 && j->abandon)
		j->abandon(j->arg);
	return r;
}

int
weft__pool_run(void (*fn)(void *), void *arg, void (*abandon)(void *),
	       int64_t deadline)
{
	struct weft_task *t = weft__task_self();
	struct job stack_job, *j = &stack_job;
	struct weft_pool *p;
	bool abandoned;
	int ret;

	if (!t) {
		ret = -EPERM;
		goto out_abandon;
	}
	ret = default_get(&p);
	if (ret < 0)
		goto out_abandon;
	if (abandon) {
		j = malloc(sizeof(*j));
		if (!j) {
			ret = -ENOMEM;
			goto out_abandon;
		}
	}
	memset(j, 0, sizeof(*j));
	j->ifn = fn;
	j->arg = arg;
	j->abandon = abandon;
	j->internal = true;
	j->heap = abandon != NULL;
	ret = job_wait(p, j, t, deadline, &abandoned);
	/* An abandoned job is the pool's; any other we free. */
	if (abandon && !abandoned)
		free(j);
	return ret;

out_abandon:
	if (abandon)
		abandon(arg);
	return ret;
}

int
weft_blocking(weft_fn fn, void *arg, void **result, int64_t deadline)
{
	struct weft_pool *p;
	struct job *j;
	bool abandoned;
	int ret;

	if (!fn)
		return -EINVAL;
	if (!weft__sched_running())
		return -ESRCH;
	ret = default_get(&p);
	if (ret < 0)
		return ret;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	j->heap = true;
	ret = job_wait(p, j, weft__task_self(), deadline, &abandoned);
	if (abandoned)
		return ret;	/* the pool frees j after fn */
	if (ret == 0 && j->err)
		ret = j->err;	/* fn called weft_fail() */
	else if (ret == 0 && result)
		*result = j->result;
	free(j);
	return ret;
}

int
weft_pool_make(struct weft_pool **out, int max_threads,
	       const struct weft_pool_opts *opts)
{
	size_t queue_max = POOL_QUEUE_DEFAULT;
	int64_t idle_ns = POOL_IDLE_DEFAULT;
	struct weft_pool *p;
	int r;

	if (!out || max_threads < 1 || max_threads > POOL_THREADS_MAX)
		return -EINVAL;
	if (opts) {
		for (size_t i = 0; i < sizeof(opts->reserved_) /
				       sizeof(opts->reserved_[0]); i++)
			if (opts->reserved_[i])
				return -EINVAL;
		if (opts->idle_ns < 0)
			return -EINVAL;
		if (opts->queue_max)
			queue_max = opts->queue_max;
		if (opts->idle_ns)
			idle_ns = opts->idle_ns;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = pool_init(p, max_threads, queue_max, idle_ns);
	if (r < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

static void
room_del_locked(struct weft_pool *p, struct batch *b)
{
	struct batch **pp;

	WEFT_ASSERT_HELD(&p->lock);

	if (!b->room_listed)
		return;
	for (pp = &p->room; *pp != b; pp = &(*pp)->room_next)
		;
	*pp = b->room_next;
	b->room_listed = false;
}

int
weft_pool_map(struct weft_pool *p, weft_fn fn, void **args, void **results,
	      size_t n, int64_t deadline)
{
	struct weft_task *self = weft__task_self();
	struct batch b;
	struct job *jobs;
	size_t next = 0;	/* the next job to queue */
	int ret = 0;
	int r;

	if (!p || !fn || (n && (!args || !results)))
		return -EINVAL;
	if (n == 0)
		return 0;
	/* One allocation for the whole map; calloc checks n * size. */
	jobs = calloc(n, sizeof(*jobs));
	if (!jobs)
		return -ENOMEM;
	memset(&b, 0, sizeof(b));

	weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	if (p->closing) {
		weft__mutex_unlock(&p->lock);
		free(jobs);
		return -EPIPE;
	}
	p->callers++;
	for (;;) {
		/* A full queue makes map wait for room, not fail. */
		while (next < n && p->limited < p->queue_max) {
			struct job *j = &jobs[next];

			j->fn = fn;
			j->arg = args[next];
			j->slot = &results[next];
			j->batch = &b;
			ret = submit_locked(p, j);
			if (ret < 0)
				goto out_stop;
			b.left++;
			next++;
		}
		if (next == n && b.left == 0)
			break;
		if (b.cancelled || p->closing) {
			ret = -EPIPE;
			goto out_stop;
		}
		pw_prepare_locked(&b.pw, self, false);
		if (next < n) {
			b.room_next = p->room;
			p->room = &b;
			b.room_listed = true;
		}
		if (self)
			weft__wait_note(self, WAIT_POOL, &b);
		r = pw_wait_locked(p, &b.pw, deadline);
		room_del_locked(p, &b);
		if (r < 0) {
			ret = r;
			goto out_stop;
		}
	}
	/* All ran: the lowest-index job that called weft_fail(), if any. */
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = jobs[i].err;
	goto out_leave;

out_stop:
	/*
	 * Remove what has not started and wait, uncancellably, for what
	 * runs: once we return, no thread touches args or results.
	 */
	for (size_t i = 0; i < next; i++) {
		if (jobs[i].state == JOB_QUEUED) {
			dequeue_locked(p, &jobs[i]);
			jobs[i].state = JOB_CANCELLED;
			b.left--;
		}
	}
	while (b.left > 0) {
		pw_prepare_locked(&b.pw, self, true);
		pw_wait_locked(p, &b.pw, WEFT_DEADLINE_NONE);
	}
out_leave:
	p->callers--;
	free_check_locked(p);
	weft__mutex_unlock(&p->lock);
	free(jobs);
	return ret;
}

int
weft_pool_free(struct weft_pool *p)
{
	struct weft_task *self = weft__task_self();
	struct job *cancelled = NULL;
	struct pool_waiter pw;
	struct batch *b;
	struct job *j;

	if (!p || p->builtin)
		return -EINVAL;
	/* It would wait for its own thread to exit. */
	if (self_pool == p)
		return -EDEADLK;
	weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	WEFT_ASSERT(!p->closing);
	p->closing = true;
	while ((j = p->head)) {
		dequeue_locked(p, j);
		j->state = JOB_CANCELLED;
		if (j->batch) {
			j->batch->left--;
			j->batch->cancelled = true;
			pw_wake_locked(&j->batch->pw);
		} else if (j->pw) {
			pw_wake_locked(j->pw);
		} else if (j->fut) {
			j->next = cancelled;
			cancelled = j;
		}
	}
	for (b = p->room; b; b = b->room_next)
		pw_wake_locked(&b->pw);
	pthread_cond_broadcast(&p->work);
	weft__mutex_unlock(&p->lock);

	/* Their waiters learn now, not after the running jobs. */
	while ((j = cancelled)) {
		cancelled = j->next;
		weft__future_complete(j->fut, NULL, 0, true);
		weft_future_release(j->fut);
		free(j);
	}

	/* Running jobs finish; then the threads see `closing` and exit. */
	weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	while (p->threads > 0 || p->callers > 0) {
		pw_prepare_locked(&pw, self, true);
		p->freer = &pw;
		if (self)
			weft__wait_note(self, WAIT_POOL, p);
		pw_wait_locked(p, &pw, WEFT_DEADLINE_NONE);
		p->freer = NULL;
	}
	weft__mutex_unlock(&p->lock);

	pool_unregister(p);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return 0;
}

/*
 * weft_future_cancel() on a job's future.  `owner` is the pool the job was
 * queued on, which may have been freed since: it is only compared with the
 * registry's live pools, and the job is looked for by its future, which
 * the canceller holds a reference to.  O(jobs queued on that pool).
 * Returns 0 (removed before it started: completed as cancelled), -EBUSY
 * (running) or -EALREADY (complete).  Any thread.
 */
static int
job_future_cancel(struct weft_future *f, void *owner)
{
	struct weft_pool *p;
	struct job *j = NULL;
	enum weft_future_state st;

	weft__mutex_lock(&registry.lock, WEFT_RANK_POOL_REGISTRY);
	for (p = registry.head; p && p != owner; p = p->reg_next)
		;
	if (p) {
		/* Held with registry.lock: p cannot be unregistered. */
		weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
		for (j = p->head; j && j->fut != f; j = j->next)
			;
		if (j) {
			dequeue_locked(p, j);
			j->state = JOB_CANCELLED;
		}
		weft__mutex_unlock(&p->lock);
	}
	weft__mutex_unlock(&registry.lock);
	if (j) {
		weft__future_complete(f, NULL, 0, true);
		weft_future_release(j->fut);
		free(j);
		return 0;
	}
	st = weft_future_state(f);
	return st == WEFT_FUTURE_DONE || st == WEFT_FUTURE_CANCELLED ?
	       -EALREADY : -EBUSY;
}

static const struct weft__future_ops job_future_ops = {
	.cancel = job_future_cancel,
};

/* weft_pool_submit() and weft_blocking_submit().  Any thread. */
static int
future_submit(struct weft_pool *p, struct weft_future **out, weft_fn fn,
	      void *arg)
{
	struct weft_future *f;
	struct job *j;
	int r;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	j->heap = true;
	r = weft__future_make_owned(&f, &job_future_ops, p);
	if (r < 0)
		goto out_free_job;
	j->fut = weft_future_retain(f);	/* the pool's, until completion */
	weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
	r = submit_locked(p, j);
	weft__mutex_unlock(&p->lock);
	if (r < 0) {
		weft_future_release(f);
		weft_future_release(f);
		goto out_free_job;
	}
	*out = f;
	return 0;

out_free_job:
	free(j);
	return r;
}

int
weft_pool_submit(struct weft_pool *p, struct weft_future **out, weft_fn fn,
		 void *arg)
{
	if (!p || !out || !fn)
		return -EINVAL;
	return future_submit(p, out, fn, arg);
}

int
weft_blocking_submit(struct weft_future **out, weft_fn fn, void *arg)
{
	struct weft_pool *p;
	int r;

	if (!out || !fn)
		return -EINVAL;
	if (!weft__sched_running())
		return -ESRCH;
	r = default_get(&p);
	if (r < 0)
		return r;
	return future_submit(p, out, fn, arg);
}

/* Jobs queued or running in one pool.  Caller holds p->lock. */
static size_t
busy_of(const struct weft_pool *p)
{
	return p->queued + (size_t)p->running;
}

/* Threads alive in one pool.  Caller holds p->lock. */
static size_t
threads_of(const struct weft_pool *p)
{
	return (size_t)p->threads;
}

/* Sum `of` over every live pool, each read under its lock. */
static int
registry_sum(size_t (*of)(const struct weft_pool *))
{
	struct weft_pool *p;
	size_t n = 0;

	weft__mutex_lock(&registry.lock, WEFT_RANK_POOL_REGISTRY);
	for (p = registry.head; p; p = p->reg_next) {
		weft__mutex_lock(&p->lock, WEFT_RANK_POOL);
		n += of(p);
		weft__mutex_unlock(&p->lock);
	}
	weft__mutex_unlock(&registry.lock);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

int
weft__pool_busy(void)
{
	return registry_sum(busy_of);
}

int
weft__pool_threads(void)
{
	return registry_sum(threads_of);
}

/* SPDX-License-Identifier: MIT */
/*
 * The blocking pool: a few plain threads that run the calls io_uring cannot
 * (getaddrinfo, and openat/fsync under the epoll backend) while the calling
 * task parks.  Threads start on demand, up to POOL_MAX (WEFT_POOL_THREADS
 * overrides), and exit after POOL_IDLE_SEC without work, so an idle process
 * keeps none.  Jobs run in FIFO order.
 *
 * A job lives on the caller's stack unless it is abandonable (see
 * weft__pool_run() in io.h), in which case the caller allocated it and the
 * pool frees it through `abandon` once the caller has left.
 *
 * Lock order: pool.lock < sched.lock (a pool thread wakes tasks under
 * pool.lock, and a wake from a non-worker takes sched.lock).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "io/io.h"
#include "runtime/runtime.h"
#include "sched/sched.h"

#define POOL_MAX 4
#define POOL_IDLE_SEC 10

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE,
	JOB_ABANDONED,		/* running, and its caller has left */
};

struct job {
	void (*fn)(void *);
	void *arg;
	void (*abandon)(void *);
	/* Protected by pool.lock. */
	enum job_state state;
	struct weft_task *task;		/* waiter, NULL once it left */
	uint32_t seq;
	struct job *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Protected by lock. */
	struct job *head, *tail;
	int threads;		/* started and not exited */
	int idle;		/* waiting on cond */
	int max;		/* 0: not read from the environment yet */
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void *
pool_main(void *unused)
{
	struct timespec ts;
	struct job *j;

	(void)unused;
	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while (!pool.head) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += POOL_IDLE_SEC;
			pool.idle++;
			int r = pthread_cond_timedwait(&pool.cond, &pool.lock,
						       &ts);
			pool.idle--;
			if (r == ETIMEDOUT && !pool.head) {
				pool.threads--;
				pthread_mutex_unlock(&pool.lock);
				return NULL;
			}
		}
		j = pool.head;
		pool.head = j->next;
		if (!pool.head)
			pool.tail = NULL;
		j->state = JOB_RUNNING;
		pthread_mutex_unlock(&pool.lock);

		j->fn(j->arg);

		pthread_mutex_lock(&pool.lock);
		if (j->state == JOB_ABANDONED) {
			pthread_mutex_unlock(&pool.lock);
			j->abandon(j->arg);
			free(j);
			pthread_mutex_lock(&pool.lock);
			continue;
		}
		j->state = JOB_DONE;
		/* Last touch: the waiter may return (and the job go) at once. */
		if (j->task)
			weft__wake(j->task, j->seq, 0);
	}
}

/* Caller holds pool.lock.  Returns 0 or -errno. */
static int
pool_grow_locked(void)
{
	pthread_attr_t attr;
	pthread_t th;
	int r;

	if (!pool.max) {
		const char *e = getenv("WEFT_POOL_THREADS");
		long n = e ? strtol(e, NULL, 10) : 0;

		pool.max = n >= 1 && n <= 256 ? (int)n : POOL_MAX;
	}
	if (pool.idle > 0 || pool.threads >= pool.max)
		return 0;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* getaddrinfo and NSS modules want more than a coroutine stack. */
	pthread_attr_setstacksize(&attr, 256 * 1024);
	r = pthread_create(&th, &attr, pool_main, NULL);
	pthread_attr_destroy(&attr);
	if (r)
		return pool.threads ? 0 : -r;
	pool.threads++;
	return 0;
}

static void
pool_unlock(void *unused)
{
	(void)unused;
	pthread_mutex_unlock(&pool.lock);
}

/* Remove a queued job.  Caller holds pool.lock. */
static void
dequeue_locked(struct job *j)
{
	struct job **pp = &pool.head, *prev = NULL;

	while (*pp != j) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = j->next;
	if (pool.tail == j)
		pool.tail = prev;
}

int
weft__pool_run(void (*fn)(void *), void *arg, void (*abandon)(void *),
	       int64_t deadline)
{
	struct weft_task *t = weft__task_self();
	struct job stack_job, *j = &stack_job;
	int ret;

	if (!t)
		return -EPERM;
	if (abandon) {
		j = malloc(sizeof(*j));
		if (!j)
			return -ENOMEM;
	}
	j->fn = fn;
	j->arg = arg;
	j->abandon = abandon;
	j->state = JOB_QUEUED;
	j->task = t;
	j->next = NULL;
	pthread_mutex_lock(&pool.lock);
	ret = pool_grow_locked();
	if (ret < 0) {
		pthread_mutex_unlock(&pool.lock);
		if (abandon)
			free(j);
		return ret;
	}
	if (pool.tail)
		pool.tail->next = j;
	else
		pool.head = j;
	pool.tail = j;
	pthread_cond_signal(&pool.cond);
	j->seq = weft__park_prepare(t);
	ret = weft__park(pool_unlock, NULL, deadline);
	if (ret == 0) {
		/* Done: the pool thread has let go of j. */
		if (abandon)
			free(j);
		return 0;
	}

	/* Timed out or cancelled. */
	pthread_mutex_lock(&pool.lock);
	switch (j->state) {
	case JOB_QUEUED:
		dequeue_locked(j);
		pthread_mutex_unlock(&pool.lock);
		if (abandon)
			free(j);
		return ret;
	case JOB_RUNNING:
		if (abandon) {
			j->state = JOB_ABANDONED;
			j->task = NULL;
			pthread_mutex_unlock(&pool.lock);
			return ret;
		}
		/* fn works on the caller's memory: wait for it, uncancellable. */
		j->seq = weft__park_prepare_io(t);
		pthread_mutex_unlock(&pool.lock);
		weft__park_io();
		return 0;
	default:
		/* Finished while we timed out; its wake lost the claim. */
		pthread_mutex_unlock(&pool.lock);
		if (abandon)
			free(j);
		return 0;
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * This file is private to weft.  It declares the I/O backend interface the
 * scheduler parks its workers on.  Each worker owns one backend instance
 * (one io_uring, or one epoll instance); the backend is chosen once per run
 * (io_uring, or epoll where the kernel refuses io_uring or WEFT_IO=epoll),
 * Redis-ae style: the scheduler calls only the ops below.
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_spinlock.h>
#include <liburing.h>

/*
 * user_data tags of completions that are not I/O requests.  A request's
 * user_data is (generation << 32) | (slot + IO_SLOT_BASE), never below it.
 */
#define IO_TAG_WAKE	((uint64_t)1)	/* MSG_RING wake-up from a worker */
#define IO_TAG_EVENTFD	((uint64_t)2)	/* read of the eventfd completed */
#define IO_TAG_IGNORE	((uint64_t)3)	/* linked timeouts, cancels, NOPs */
#define IO_SLOT_BASE	16u

struct weft_task;
struct weft__worker;

/*
 * One operation in flight, on the stack of the task that waits for it: the
 * task does not return before the completion has been stored here, so the
 * record (and the caller's buffers) outlive the kernel's use of them.
 */
struct weft__ioreq {
	struct weft_task *task;		/* immutable while in flight */
	uint32_t seq;			/* the task's I/O park */
	int32_t res;			/* CQE res / ready events: the waker */
	bool cancel_sent;		/* uring: ASYNC_CANCEL queued; owner */
	int64_t deadline;		/* uring: immutable while in flight */
	struct __kernel_timespec ts;	/* linked timeout, read at submit */
};

/*
 * Slot table: maps the slot in a request's user_data (uring) or epoll
 * event (epoll) to the request.  A slot's generation is bumped every time
 * it is freed, so a stale completion, event or cancellation never matches
 * a later request.  uring: owner-only.  epoll: under epoll.lock.
 */
struct weft__ioslot {
	struct weft__ioreq *req;	/* NULL: free */
	uint32_t gen;
	uint32_t next_free;		/* free list link (index), UINT32_MAX */
};

struct weft__ioslots {
	struct weft__ioslot *v;
	uint32_t n;			/* allocated slots */
	uint32_t free_head;		/* UINT32_MAX: none */
	uint32_t used;			/* requests in flight */
};

struct weft__io {
	const struct weft__io_ops *ops;
	/*
	 * eventfd written by threads that are not workers (and by every
	 * waker under epoll).  Immutable after create; any thread writes.
	 */
	int efd;
	/*
	 * Set (release) by a waker that has sent a wake-up the owner has not
	 * consumed yet; cleared (acquire-exchange) by the owner before it
	 * sleeps.  Collapses a burst of wake-ups into one message.
	 */
	uint32_t wake_pending;
	/* Owner-only below. */
	union {
		struct {
			struct io_uring ring;
			uint64_t efd_buf;
			bool efd_armed;
			bool msg_ring;		/* IORING_OP_MSG_RING works */
			unsigned setup_flags;
			struct weft__ioslots slots;
			/* SQEs queued and not submitted yet. */
			uint32_t unsubmitted;
		} uring;
		struct {
			int epfd;
			/*
			 * Waiter records.  Any thread (the waiting task
			 * may have moved) under lock; lock is a leaf.
			 */
			ck_spinlock_t lock;
			struct weft__ioslots slots;
			/* slots.used, readable without lock (atomic). */
			uint32_t waiting;
		} epoll;
	};
	/*
	 * uring: keys of in-flight operations to cancel (their task was
	 * cancelled, or their deadline passed), pushed by any thread under
	 * cancel_lock (a leaf) and drained by the owner, which submits an
	 * ASYNC_CANCEL for each key still live.  When the array is full,
	 * cancel_overflow makes the owner scan every slot instead, so no
	 * request is lost.  cancel_n is also read without the lock (atomic)
	 * to skip the lock when empty.
	 */
	ck_spinlock_t cancel_lock;
	uint32_t cancel_n;
	bool cancel_overflow;
	uint64_t cancel_keys[64];
};

struct weft__io_ops {
	const char *name;
	/* Set up `io` on the thread that will own it. Returns 0 or -errno. */
	int (*create)(struct weft__io *io);
	/* Release everything create() made.  Owner thread. */
	void (*free)(struct weft__io *io);
	/*
	 * Sleep until a wake-up, a completion or `timeout_ns` (relative;
	 * < 0: none; 0: do not sleep).  Returns the number of events handled
	 * or -errno.  Owner thread.
	 */
	int (*wait)(struct weft__io *io, int64_t timeout_ns);
	/*
	 * Wake the owner of `to` if it sleeps in wait().  `from` is the
	 * calling worker's own instance, or NULL on a thread that is not a
	 * worker.  Any thread.
	 */
	void (*wake)(struct weft__io *from, struct weft__io *to);
	/*
	 * Operations in flight or queued that only this worker's wait() can
	 * complete: the scheduler polls (wait with timeout 0) while non-zero.
	 * Owner thread.
	 */
	bool (*busy)(struct weft__io *io);
};

extern const struct weft__io_ops weft__io_uring_ops;
extern const struct weft__io_ops weft__io_epoll_ops;

/*
 * Pick the backend for a run: `name` ("uring" or "epoll"), else the WEFT_IO
 * environment variable, else io_uring if the kernel accepts a ring, else
 * epoll.  Returns NULL for an unknown name.
 */
const struct weft__io_ops *weft__io_select(const char *name);

/* Slot tables (io/io.c).  Caller provides the exclusion. */
int weft__ioslot_get(struct weft__ioslots *s, struct weft__ioreq *req,
		     uint64_t *key);
struct weft__ioreq *weft__ioslot_find(struct weft__ioslots *s, uint64_t key);
void weft__ioslot_put(struct weft__ioslots *s, uint64_t key);
void weft__ioslots_free(struct weft__ioslots *s);

/* Ring operations (io/uring.c): executed only by the ring's owner. */
struct io_uring_sqe *weft__uring_sqe(struct weft__io *io, unsigned need);
int weft__uring_submit_wait(struct weft__worker *w, struct weft_task *t,
			    struct io_uring_sqe *sqe, int64_t deadline);

/*
 * epoll readiness wait (io/epoll.c): park the calling task until `fd` is
 * ready for `events` (EPOLLIN/EPOLLOUT/...).  Returns the ready events,
 * -ETIMEDOUT, -ECANCELED, or 0 if `fd` cannot be polled (a regular file:
 * the caller then does the call blocking).  Coroutine context.
 */
int weft__epoll_wait_fd(struct weft__worker *w, int fd, uint32_t events,
			int64_t deadline);

/*
 * Route a cancellation to the ring that holds t's operation (any thread):
 * weft_cancel() when the park refused the direct claim, and the expiry of
 * t's I/O deadline (timer heap lock held).
 */
void weft__io_cancel_route(struct weft_task *t);

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
 * For the deadlock detector: jobs queued or running right now, and pool
 * threads alive, summed over every pool (the default pool and the user's
 * weft_pool_make() pools).  Pool threads are named "weft-pool-N".  Takes
 * each pool's lock in turn (registry.lock < pool->lock); never parks.  Any
 * thread.
 */
int weft__pool_busy(void);
int weft__pool_threads(void);

/* Common eventfd helpers (io/io.c). */
int weft__io_eventfd(void);
void weft__io_eventfd_signal(int efd);

#endif /* WEFT_IO_H */

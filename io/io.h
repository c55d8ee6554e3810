/* SPDX-License-Identifier: MIT */
/*
 * This file is private to weft.  It declares the I/O backend interface: the
 * scheduler parks its workers on it, and the call layer (runtime/iocall.c)
 * submits operations through it.  Each worker owns one backend instance
 * (one io_uring, or one epoll instance); the backend is chosen once per run
 * (io_uring, or epoll where the kernel refuses io_uring or WEFT_IO=epoll),
 * Redis-ae style: nothing above io/ calls anything but the ops below.  io/
 * is the bottom layer: it includes no header of sched/ or runtime/, and
 * reaches its callers only through the callbacks of a request.
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <ck_spinlock.h>
#include <liburing.h>

#include "include/weft.h"
#include "io/base.h"

/*
 * user_data tags of completions that are not I/O requests.  A request's
 * user_data is (generation << 32) | (slot + IO_SLOT_BASE), never below it.
 */
#define IO_TAG_WAKE	((uint64_t)1)	/* MSG_RING wake-up from a worker */
#define IO_TAG_EVENTFD	((uint64_t)2)	/* read of the eventfd completed */
#define IO_TAG_IGNORE	((uint64_t)3)	/* linked timeouts, cancels, NOPs */
#define IO_SLOT_BASE	16u

struct weft__io;
struct weft_worker_stats;

/*
 * What an operation does: one blocking system call, described by the call
 * layer (runtime/iocall.c) and carried out by the backend of the run.  The
 * backend may update the progress fields (marked) as it goes.
 */
enum weft__io_kind {
	IO_READ,	/* readv/preadv: iov, off (-1: file position) */
	IO_WRITE,	/* writev/pwritev: iov, off */
	IO_RECV,	/* buf, len, flags */
	IO_SEND,
	IO_RECVMSG,	/* msg, flags */
	IO_SENDMSG,
	IO_ACCEPT,	/* addr, addrlen, flags */
	IO_CONNECT,	/* caddr, alen */
	IO_CLOSE,
	IO_OPENAT,	/* fd is dirfd; path, flags, mode */
	IO_FSYNC,	/* flags: WEFT_FSYNC_DATASYNC */
	IO_SPLICE,	/* fd -> fd_out, off, off_out, len, flags */
	IO_POLL,	/* flags: poll events */
};

struct weft__ioop {
	enum weft__io_kind kind;
	int fd;
	int flags;
	const struct iovec *iov;
	int iovcnt;
	int64_t off;
	void *buf;			/* progress (epoll: MSG_WAITALL) */
	size_t len;			/* progress (epoll: MSG_WAITALL) */
	struct msghdr *msg;
	struct sockaddr *addr;
	socklen_t *addrlen;
	const struct sockaddr *caddr;
	socklen_t alen;			/* progress (epoll: 0 once connecting) */
	const char *path;
	mode_t mode;
	int fd_out;
	int64_t off_out;
	/* A single buffer as an iovec (IO_READ/IO_WRITE of read/write). */
	struct iovec one;
};

/* Readiness an operation waits for when it would block (POLLIN...). */
static inline uint32_t
weft__ioop_events(const struct weft__ioop *op)
{
	switch (op->kind) {
	case IO_WRITE:
	case IO_SEND:
	case IO_SENDMSG:
	case IO_CONNECT:
		return POLLOUT;		/* == EPOLLOUT */
	case IO_POLL:
		return (uint32_t)op->flags;
	default:
		return POLLIN;		/* == EPOLLIN */
	}
}

/* The caller asked for a non-blocking attempt: -EAGAIN is its answer. */
static inline bool
weft__ioop_dontwait(const struct weft__ioop *op)
{
	switch (op->kind) {
	case IO_RECV:
	case IO_SEND:
	case IO_RECVMSG:
	case IO_SENDMSG:
		return (op->flags & MSG_DONTWAIT) != 0;
	case IO_SPLICE:
		return (op->flags & SPLICE_F_NONBLOCK) != 0;
	default:
		return false;
	}
}

/* Results of submit() and resume() that are not the operation's. */
#define WEFT__IO_PENDING	((ssize_t)1 << 62)	/* done() will come */
#define WEFT__IO_OFFLOAD	(((ssize_t)1 << 62) + 1) /* run blocking() */

/*
 * One operation in flight, on the stack of the task that waits for it: the
 * task does not return before the backend is done with the record, so the
 * record (and the caller's buffers) outlive the kernel's use of them.
 */
struct weft__ioreq {
	/* Set by the caller before submit(); immutable while in flight. */
	struct weft__ioop *op;
	int64_t deadline;		/* WEFT_DEADLINE_NONE: none */
	bool link_timeout;		/* completion model: the kernel times it */
	/*
	 * Callbacks into the caller.  arm (readiness model only) is called
	 * right before a registration that may lead to done(), under the
	 * backend's lock; done is called once per PENDING step (completion
	 * model: on the instance's owner; readiness: by whichever worker's
	 * wait() saw the event, under the instance's lock).  cancelled
	 * (completion model) is asked only by the scan after a full cancel
	 * queue: should this request be cancelled now?  None may block.
	 */
	void (*arm)(struct weft__ioreq *req);
	void (*done)(struct weft__ioreq *req);
	bool (*cancelled)(const struct weft__ioreq *req, int64_t now);
	void *owner;			/* the caller's: the waiting task */
	uint32_t seq;			/* the caller's: its park */

	/* The backend's while in flight. */
	int32_t res;			/* CQE res / ready events */
	uint64_t key;			/* slot + generation, see below */
	struct weft__io *io;		/* the instance it was submitted on */
	int stage;			/* the backend's step */
	int regfd;			/* epoll: the fd registered (or a dup) */
	size_t got;			/* epoll: MSG_WAITALL progress */
	bool nowait;			/* epoll: RWF_NOWAIT still worth trying */
	bool cancel_sent;		/* uring: ASYNC_CANCEL queued; owner */
	struct __kernel_timespec ts;	/* uring: linked timeout, read at submit */
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
	 * The owner worker's counters (io_ops, io_done, io_enters), set by the
	 * core before create(): the owner bumps them with relaxed stores,
	 * anyone reads them.  Immutable after create.
	 */
	struct weft_worker_stats *st;
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
			/*
			 * What this set holds for each fd number below
			 * nregs (REG_* in io/epoll.c): nothing, a
			 * registration left disarmed (re-armed with one
			 * EPOLL_CTL_MOD), or one a waiter has armed.  A
			 * hint: the kernel drops a registration when its
			 * file closes, so a MOD that finds none falls back
			 * to an ADD.  Under lock, like the records.
			 */
			uint8_t *regs;
			int nregs;
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

/*
 * A backend, Redis-ae style: the scheduler and the call layer use nothing
 * else of it.  Two models exist, told apart by `completes`:
 *
 *  completion (io_uring)  submit() hands the operation to the kernel, which
 *      owns the caller's buffers until it completes: only done() ends the
 *      wait.  A deadline or a cancellation asks for the operation's end with
 *      cancel() (any thread), and the completion then reports it.
 *  readiness (epoll)  submit() tries the call without blocking and, when it
 *      would block, registers for readiness (arm(), then done() when ready).
 *      The waiter may stop waiting at any time (deadline, cancellation);
 *      resume() then retires the registration and either tries again or
 *      reports how the wait ended.
 *
 * A third backend picks one of the two models and fills this table; the
 * call layer (runtime/iocall.c) does not change.
 */
struct weft__io_ops {
	const char *name;
	bool completes;			/* the completion model, see above */
	/* Set up `io` on the thread that will own it. Returns 0 or -errno. */
	int (*create)(struct weft__io *io);
	/* Release everything create() made.  Owner thread. */
	void (*free)(struct weft__io *io);
	/*
	 * Start req->op on `io`, the calling worker's own instance.  Returns
	 * the operation's result (>= 0 or -errno), WEFT__IO_PENDING (done()
	 * will be called; then resume()), or WEFT__IO_OFFLOAD (the caller runs
	 * blocking(req) on a thread that may block).  Owner thread.
	 */
	ssize_t (*submit)(struct weft__io *io, struct weft__ioreq *req);
	/*
	 * After a PENDING step's wait ended: `wait_res` is 0 when done() was
	 * called, or how the wait ended otherwise (readiness model: -ETIMEDOUT,
	 * -ECANCELED).  Returns as submit() does; a new step goes on `io`, the
	 * calling worker's own instance now (the task may have moved).
	 */
	ssize_t (*resume)(struct weft__io *io, struct weft__ioreq *req,
			  int wait_res);
	/*
	 * Completion model: have the operation of `key` on `io` end soon (its
	 * completion says -ECANCELED).  `from`: the caller's own instance, or
	 * NULL on a thread that is not a worker.  Any thread; never blocks.
	 * NULL in the readiness model.
	 */
	void (*cancel)(struct weft__io *from, struct weft__io *io, uint64_t key);
	/* Carry out req->op blocking (after WEFT__IO_OFFLOAD).  Any thread. */
	void (*blocking)(struct weft__ioreq *req);
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
 * Pick the backend for a run: `name` ("uring" or "epoll"; the caller
 * resolved WEFT_IO into it), else io_uring if the kernel accepts a ring,
 * else epoll.  Returns NULL for an unknown name.
 */
const struct weft__io_ops *weft__io_select(const char *name);

/* Slot tables (io/io.c).  Caller provides the exclusion. */
int weft__ioslot_get(struct weft__ioslots *s, struct weft__ioreq *req,
		     uint64_t *key);
struct weft__ioreq *weft__ioslot_find(struct weft__ioslots *s, uint64_t key);
void weft__ioslot_put(struct weft__ioslots *s, uint64_t key);
void weft__ioslots_free(struct weft__ioslots *s);

/* Common eventfd helpers (io/io.c). */
int weft__io_eventfd(void);
void weft__io_eventfd_signal(int efd);

#if defined(WEFT_TSAN)
/*
 * A backend's sleep under TSan, in naps (weft__tsan_take_signals() in
 * io/base.h): the end of a sleep of `timeout_ns` (-1: forever), the length
 * of the next nap, and whether the sleep is over once a nap found nothing.
 * Owner of the backend instance.
 */
static inline int64_t
weft__tsan_sleep_end(int64_t timeout_ns)
{
	return timeout_ns < 0 ? INT64_MAX : weft_now() + timeout_ns;
}

static inline int64_t
weft__tsan_next_nap(int64_t end)
{
	int64_t left = end == INT64_MAX ? WEFT_TSAN_NAP_NS : end - weft_now();

	return left > WEFT_TSAN_NAP_NS ? WEFT_TSAN_NAP_NS : left < 0 ? 0 : left;
}

static inline bool
weft__tsan_sleep_over(int64_t end)
{
	return end != INT64_MAX && weft_now() >= end;
}
#endif

#endif /* WEFT_IO_H */

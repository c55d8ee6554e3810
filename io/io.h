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

#include <liburing.h>

/* user_data tags of completions that are not I/O requests. */
#define IO_TAG_WAKE	((uint64_t)1)	/* MSG_RING wake-up from a worker */
#define IO_TAG_EVENTFD	((uint64_t)2)	/* read of the eventfd completed */

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
		} uring;
		struct {
			int epfd;
		} epoll;
	};
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
};

extern const struct weft__io_ops weft__io_uring_ops;
extern const struct weft__io_ops weft__io_epoll_ops;

/*
 * Pick the backend for a run: `name` ("uring" or "epoll"), else the WEFT_IO
 * environment variable, else io_uring if the kernel accepts a ring, else
 * epoll.  Returns NULL for an unknown name.
 */
const struct weft__io_ops *weft__io_select(const char *name);

/* Common eventfd helpers (io/io.c). */
int weft__io_eventfd(void);
void weft__io_eventfd_signal(int efd);

#endif /* WEFT_IO_H */

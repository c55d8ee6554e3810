/* SPDX-License-Identifier: MIT */
/*
 * epoll backend: for kernels or sandboxes that refuse io_uring (seccomp
 * profiles, kernel.io_uring_disabled) or WEFT_IO=epoll.  A worker parks in
 * epoll_pwait2() (nanosecond timeout, 5.11+); every waker writes the
 * worker's eventfd, which the epoll set watches.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

#include "io/io.h"
#include "sched/park.h"
#include "sched/sched.h"

static int
epoll_create_io(struct weft__io *io)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = IO_TAG_EVENTFD };
	int ret;

	io->efd = weft__io_eventfd();
	if (io->efd < 0)
		return io->efd;
	io->epoll.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (io->epoll.epfd < 0) {
		ret = -errno;
		close(io->efd);
		return ret;
	}
	if (epoll_ctl(io->epoll.epfd, EPOLL_CTL_ADD, io->efd, &ev) < 0) {
		ret = -errno;
		close(io->epoll.epfd);
		close(io->efd);
		return ret;
	}
	ck_spinlock_init(&io->epoll.lock);
	io->epoll.slots = (struct weft__ioslots){ .free_head = UINT32_MAX };
	io->epoll.waiting = 0;
	return 0;
}

static void
epoll_free_io(struct weft__io *io)
{
	WEFT_ASSERT(io->epoll.slots.used == 0);
	weft__ioslots_free(&io->epoll.slots);
	close(io->epoll.epfd);
	close(io->efd);
}

/* A registered fd is ready: wake its waiter if it still waits. */
static void
dispatch(struct weft__io *io, uint64_t key, uint32_t revents)
{
	struct weft__ioreq *req;

	weft__spin_lock(&io->epoll.lock);
	req = weft__ioslot_find(&io->epoll.slots, key);
	/*
	 * Under the lock the waiter cannot have gone: it frees its slot
	 * under the same lock before it returns.  The events travel as the
	 * park result (> 0); a park already ended by a timeout or a
	 * cancellation refuses the claim.
	 */
	if (req)
		weft__wake_tail(req->task, req->seq,
				(int)(revents & 0x7fffffffu));
	ck_spinlock_unlock(&io->epoll.lock);
}

static void
unlock_io(void *arg)
{
	struct weft__io *io = arg;

	ck_spinlock_unlock(&io->epoll.lock);
}

/* Remove a waiter record.  Any thread. */
static void
forget(struct weft__io *io, uint64_t key, struct weft__ioreq *req)
{
	weft__spin_lock(&io->epoll.lock);
	if (weft__ioslot_find(&io->epoll.slots, key) == req)
		weft__ioslot_put(&io->epoll.slots, key);
	ck_pr_store_32(&io->epoll.waiting, io->epoll.slots.used);
	ck_spinlock_unlock(&io->epoll.lock);
}

/*
 * Park the calling task until `fd` is ready for `events`, the deadline
 * passes or it is cancelled.  The registration is one-shot on the current
 * worker's epoll set and removed again before returning, whatever woke us:
 * nothing stays behind to fire into a later wait (the slot's generation
 * guards the window between the two).  An fd that already has a
 * registration in this set (another task waits on it for the other
 * direction) is waited for through a dup(): epoll keys on (fd, file).
 * Coroutine context, on worker w.
 */
int
weft__epoll_wait_fd(struct weft__worker *w, int fd, uint32_t events,
		    int64_t deadline)
{
	struct weft__io *io = &w->io;
	struct weft_task *t = w->cur;
	struct epoll_event ev;
	struct weft__ioreq req;
	int epfd = io->epoll.epfd, regfd = fd, ret, err = 0;
	uint64_t key;

	req.task = t;
	weft__spin_lock(&io->epoll.lock);
	ret = weft__ioslot_get(&io->epoll.slots, &req, &key);
	if (ret < 0) {
		ck_spinlock_unlock(&io->epoll.lock);
		return ret;
	}
	ck_pr_store_32(&io->epoll.waiting, io->epoll.slots.used);
	ev.events = events | EPOLLONESHOT;
	ev.data.u64 = key;
	/* Under the lock: no event can be dispatched before the prepare. */
	req.seq = weft__park_prepare(t);
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		err = errno;
		if (err == EEXIST) {
			regfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			if (regfd < 0)
				err = errno;
			else if (epoll_ctl(epfd, EPOLL_CTL_ADD, regfd, &ev) < 0)
				err = errno;
			else
				err = 0;
		}
	}
	if (err) {
		ck_spinlock_unlock(&io->epoll.lock);
		forget(io, key, &req);
		if (regfd >= 0 && regfd != fd)
			close(regfd);
		/* EPERM: a regular file or the like, always "ready". */
		return err == EPERM ? 0 : -err;
	}
	WEFT_STAT_INC(w, io_ops);
	weft__wait_note(t, WAIT_IO, NULL);
	ret = weft__park(unlock_io, io, deadline);
	/* Counted where the task resumed: w may be stale. */
	WEFT_STAT_INC(weft__worker_self(), io_done);
	(void)epoll_ctl(epfd, EPOLL_CTL_DEL, regfd, NULL);
	if (regfd != fd)
		close(regfd);
	forget(io, key, &req);
	return ret;
}

static int
epoll_wait_io(struct weft__io *io, int64_t timeout_ns)
{
	struct epoll_event evs[64];
	struct timespec ts, *tsp = NULL;
	uint64_t v;
	int n, i;

	/* Pairs with the release exchange in epoll_wake_io(). */
	if (ck_pr_fas_32(&io->wake_pending, 0) != 0)
		timeout_ns = 0;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	n = epoll_pwait2(io->epoll.epfd, evs, 64, tsp, NULL);
	WEFT_STAT_INC(weft__io_worker(io), io_enters);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++) {
		if (evs[i].data.u64 == IO_TAG_EVENTFD) {
			/* Non-blocking: resets the counter. */
			while (read(io->efd, &v, sizeof(v)) < 0 &&
			       errno == EINTR)
				;
		} else {
			dispatch(io, evs[i].data.u64, evs[i].events);
		}
	}
	return n;
}

static bool
epoll_busy_io(struct weft__io *io)
{
	return ck_pr_load_32(&io->epoll.waiting) != 0;
}

static void
epoll_wake_io(struct weft__io *from, struct weft__io *to)
{
	(void)from;
	if (ck_pr_load_32(&to->wake_pending) ||
	    ck_pr_fas_32(&to->wake_pending, 1) != 0)
		return;
	weft__io_eventfd_signal(to->efd);
}

const struct weft__io_ops weft__io_epoll_ops = {
	.name = "epoll",
	.create = epoll_create_io,
	.free = epoll_free_io,
	.wait = epoll_wait_io,
	.wake = epoll_wake_io,
	.busy = epoll_busy_io,
};

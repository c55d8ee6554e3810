/* SPDX-License-Identifier: MIT */
/*
 * epoll backend: for kernels or sandboxes that refuse io_uring (seccomp
 * profiles, kernel.io_uring_disabled) or WEFT_IO=epoll.  A worker parks in
 * epoll_pwait2() (nanosecond timeout, 5.11+); every waker writes the
 * worker's eventfd, which the epoll set watches.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

#include "io/io.h"

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
	return 0;
}

static void
epoll_free_io(struct weft__io *io)
{
	close(io->epoll.epfd);
	close(io->efd);
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
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++) {
		if (evs[i].data.u64 == IO_TAG_EVENTFD) {
			/* Non-blocking: resets the counter. */
			while (read(io->efd, &v, sizeof(v)) < 0 &&
			       errno == EINTR)
				;
		}
	}
	return n;
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
};

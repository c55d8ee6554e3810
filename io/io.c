/* SPDX-License-Identifier: MIT */
/* Backend selection and the eventfd helpers both backends use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/io.h"

/*
 * Can this process set up a ring at all?  (seccomp, io_uring_disabled)
 * Asked once per process: 0 unknown, 1 yes, 2 no.  Racing first callers
 * both probe and store the same answer.
 */
static int uring_ok;

static bool
uring_usable(void)
{
	struct io_uring ring;
	int ok = __atomic_load_n(&uring_ok, __ATOMIC_RELAXED);

	if (ok == 0) {
		ok = io_uring_queue_init(2, &ring, 0) < 0 ? 2 : 1;
		if (ok == 1)
			io_uring_queue_exit(&ring);
		__atomic_store_n(&uring_ok, ok, __ATOMIC_RELAXED);
	}
	return ok == 1;
}

const struct weft__io_ops *
weft__io_select(const char *name)
{
	if (!name || !*name)
		name = getenv("WEFT_IO");
	if (name && *name) {
		if (!strcmp(name, "uring") || !strcmp(name, "io_uring"))
			return &weft__io_uring_ops;
		if (!strcmp(name, "epoll"))
			return &weft__io_epoll_ops;
		return NULL;
	}
	return uring_usable() ? &weft__io_uring_ops : &weft__io_epoll_ops;
}

int
weft__io_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		return -errno;
	return fd;
}

/* Any thread; async-signal-safe. */
void
weft__io_eventfd_signal(int efd)
{
	uint64_t one = 1;
	ssize_t r;

	do {
		r = write(efd, &one, sizeof(one));
	} while (r < 0 && errno == EINTR);
	/* EAGAIN means the counter is saturated: a wake-up is pending anyway. */
}

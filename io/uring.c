/* SPDX-License-Identifier: MIT */
/*
 * io_uring backend: one ring per worker, created on the worker's own thread.
 *
 * A worker parks in io_uring_submit_and_wait_timeout() on its ring.  Another
 * worker wakes it with IORING_OP_MSG_RING sent from the waker's own ring (no
 * shared state, one system call); a thread that is not a worker writes the
 * ring's eventfd, which the ring always has a read outstanding on.
 *
 * Setup flags are probed from the most to the least capable set the running
 * kernel accepts: SINGLE_ISSUER|DEFER_TASKRUN (6.1+), COOP_TASKRUN (5.19+),
 * none.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

#include "io/io.h"

#define RING_ENTRIES 256

static const unsigned setup_tries[] = {
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	IORING_SETUP_COOP_TASKRUN,
	0,
};

static int
efd_arm(struct weft__io *io)
{
	struct io_uring_sqe *sqe;

	if (io->uring.efd_armed)
		return 0;
	sqe = io_uring_get_sqe(&io->uring.ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, io->efd, &io->uring.efd_buf,
			   sizeof(io->uring.efd_buf), 0);
	io_uring_sqe_set_data64(sqe, IO_TAG_EVENTFD);
	io->uring.efd_armed = true;
	return 0;
}

static int
uring_create(struct weft__io *io)
{
	struct io_uring_probe *probe;
	int ret = -EINVAL;
	size_t i;

	io->efd = weft__io_eventfd();
	if (io->efd < 0)
		return io->efd;
	for (i = 0; i < sizeof(setup_tries) / sizeof(setup_tries[0]); i++) {
		ret = io_uring_queue_init(RING_ENTRIES, &io->uring.ring,
					  setup_tries[i]);
		if (ret == 0) {
			io->uring.setup_flags = setup_tries[i];
			break;
		}
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0) {
		close(io->efd);
		return ret;
	}
	/* Saves the fd lookup on every io_uring_enter (5.18+); optional. */
	(void)io_uring_register_ring_fd(&io->uring.ring);
	probe = io_uring_get_probe_ring(&io->uring.ring);
	io->uring.msg_ring = probe &&
		io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
	if (probe)
		io_uring_free_probe(probe);
	io->uring.efd_armed = false;
	ret = efd_arm(io);
	if (ret == 0)
		ret = io_uring_submit(&io->uring.ring);
	if (ret < 0) {
		io_uring_queue_exit(&io->uring.ring);
		close(io->efd);
		return ret;
	}
	return 0;
}

static void
uring_free(struct weft__io *io)
{
	io_uring_queue_exit(&io->uring.ring);
	close(io->efd);
}

static int
reap(struct weft__io *io)
{
	struct io_uring_cqe *cqe;
	unsigned head;
	int n = 0;

	io_uring_for_each_cqe(&io->uring.ring, head, cqe) {
		uint64_t tag = io_uring_cqe_get_data64(cqe);

		if (tag == IO_TAG_EVENTFD)
			io->uring.efd_armed = false;
		/* IO_TAG_WAKE carries nothing: waking was the point. */
		n++;
	}
	io_uring_cq_advance(&io->uring.ring, n);
	return n;
}

static int
uring_wait(struct weft__io *io, int64_t timeout_ns)
{
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;
	int ret;

	ret = efd_arm(io);
	if (ret < 0)
		return ret;
	/*
	 * Consume the pending flag before sleeping: a waker that sets it after
	 * this exchange also sends a message, which ends the wait below.
	 * Pairs with the release store in uring_wake().
	 */
	if (ck_pr_fas_32(&io->wake_pending, 0) != 0)
		timeout_ns = 0;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	if (timeout_ns == 0) {
		/*
		 * Under DEFER_TASKRUN completions are posted only when the
		 * owner enters the kernel asking for events.
		 */
		ret = io_uring_submit_and_get_events(&io->uring.ring);
	} else {
		ret = io_uring_submit_and_wait_timeout(&io->uring.ring, &cqe, 1,
						       tsp, NULL);
		if (ret == -ETIME || ret == -EINTR)
			ret = 0;
	}
	if (ret < 0)
		return ret;
	return reap(io);
}

/*
 * Any thread.  `from` is the caller's own ring (a worker) or NULL.
 */
static void
uring_wake(struct weft__io *from, struct weft__io *to)
{
	struct io_uring_sqe *sqe;

	/*
	 * One message per sleep is enough: the flag is cleared by the owner
	 * just before it sleeps (the exchange in uring_wait()).
	 */
	if (ck_pr_load_32(&to->wake_pending) ||
	    ck_pr_fas_32(&to->wake_pending, 1) != 0)
		return;
	if (from && from->ops == to->ops && from->uring.msg_ring) {
		sqe = io_uring_get_sqe(&from->uring.ring);
		if (sqe) {
			io_uring_prep_msg_ring(sqe, to->uring.ring.ring_fd, 0,
					       IO_TAG_WAKE, 0);
			/* No completion on the sender's ring on success. */
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			io_uring_sqe_set_data64(sqe, IO_TAG_WAKE);
			if (io_uring_submit(&from->uring.ring) >= 0)
				return;
		}
	}
	weft__io_eventfd_signal(to->efd);
}

const struct weft__io_ops weft__io_uring_ops = {
	.name = "uring",
	.create = uring_create,
	.free = uring_free,
	.wait = uring_wait,
	.wake = uring_wake,
};

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
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

#include <poll.h>
#include <sys/socket.h>

#include "include/weft.h"
#include "io/io.h"

/*
 * SQ size bounds one batch; the CQ is sized for many operations in flight
 * at once (every idle connection has a receive outstanding), so that the
 * kernel's overflow list is the exception.
 */
#define RING_ENTRIES 1024
#define RING_CQ_ENTRIES 16384
/*
 * SQEs queued by tasks before one of them flushes the SQ without waiting
 * for the end of the round.  8, 32 and "never" measured alike on
 * weft-httpd (100 and 1000 connections); 32 bounds the delay of the first
 * request of a long round.
 */
#define SUBMIT_BATCH 32

static const unsigned setup_tries[] = {
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	IORING_SETUP_COOP_TASKRUN,
	0,
};

/* Counters of the owner worker: relaxed stores, readers load. */
#define IO_STAT_INC(io, field)						\
	ck_pr_store_64(&(io)->st->field, (io)->st->field + 1)

static void
uring_prep(struct io_uring_sqe *sqe, const struct weft__ioop *op)
{
	switch (op->kind) {
	case IO_READ:
		if (op->iovcnt == 1)
			io_uring_prep_read(sqe, op->fd, op->iov[0].iov_base,
					   (unsigned)op->iov[0].iov_len,
					   (uint64_t)op->off);
		else
			io_uring_prep_readv(sqe, op->fd, op->iov,
					    (unsigned)op->iovcnt,
					    (uint64_t)op->off);
		break;
	case IO_WRITE:
		if (op->iovcnt == 1)
			io_uring_prep_write(sqe, op->fd, op->iov[0].iov_base,
					    (unsigned)op->iov[0].iov_len,
					    (uint64_t)op->off);
		else
			io_uring_prep_writev(sqe, op->fd, op->iov,
					     (unsigned)op->iovcnt,
					     (uint64_t)op->off);
		break;
	case IO_RECV:
		io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->flags);
		break;
	case IO_SEND:
		io_uring_prep_send(sqe, op->fd, op->buf, op->len,
				   op->flags | MSG_NOSIGNAL);
		break;
	case IO_RECVMSG:
		io_uring_prep_recvmsg(sqe, op->fd, op->msg, (unsigned)op->flags);
		break;
	case IO_SENDMSG:
		io_uring_prep_sendmsg(sqe, op->fd, op->msg,
				      (unsigned)op->flags | MSG_NOSIGNAL);
		break;
	case IO_ACCEPT:
		io_uring_prep_accept(sqe, op->fd, op->addr, op->addrlen,
				     op->flags);
		break;
	case IO_CONNECT:
		io_uring_prep_connect(sqe, op->fd, op->caddr, op->alen);
		break;
	case IO_CLOSE:
		io_uring_prep_close(sqe, op->fd);
		break;
	case IO_OPENAT:
		io_uring_prep_openat(sqe, op->fd, op->path, op->flags,
				     op->mode);
		break;
	case IO_FSYNC:
		io_uring_prep_fsync(sqe, op->fd,
				    (op->flags & WEFT_FSYNC_DATASYNC) ?
				    IORING_FSYNC_DATASYNC : 0);
		break;
	case IO_SPLICE:
		io_uring_prep_splice(sqe, op->fd, op->off, op->fd_out,
				     op->off_out, (unsigned)op->len,
				     (unsigned)op->flags);
		break;
	case IO_POLL:
		io_uring_prep_poll_add(sqe, op->fd, (unsigned)op->flags);
		break;
	}
}

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
		struct io_uring_params p = {
			.flags = setup_tries[i] | IORING_SETUP_CQSIZE,
			.cq_entries = RING_CQ_ENTRIES,
		};

		ret = io_uring_queue_init_params(RING_ENTRIES, &io->uring.ring,
						 &p);
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
	io->uring.unsubmitted = 0;
	io->uring.slots = (struct weft__ioslots){ .free_head = UINT32_MAX };
	ck_spinlock_init(&io->cancel_lock);
	io->cancel_n = 0;
	io->cancel_overflow = false;
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
	/* Every task has finished, so no request is in flight. */
	WEFT_ASSERT(io->uring.slots.used == 0);
	io_uring_queue_exit(&io->uring.ring);
	weft__ioslots_free(&io->uring.slots);
	close(io->efd);
}

/*
 * Hand each completion to its request and wake the waiting task (at the
 * tail of this worker's queue: completions run in arrival order).
 */
static int
reap(struct weft__io *io)
{
	struct io_uring_cqe *cqe;
	struct weft__ioreq *req;
	unsigned head;
	int n = 0;

	io_uring_for_each_cqe(&io->uring.ring, head, cqe) {
		uint64_t tag = io_uring_cqe_get_data64(cqe);

		n++;
		if (tag < IO_SLOT_BASE) {
			if (tag == IO_TAG_EVENTFD)
				io->uring.efd_armed = false;
			/* WAKE carries nothing; IGNORE is bookkeeping. */
			continue;
		}
		req = weft__ioslot_find(&io->uring.slots, tag);
		/* One CQE per request: a miss is a kernel or weft bug. */
		WEFT_ASSERT(req != NULL);
		weft__ioslot_put(&io->uring.slots, tag);
		req->res = cqe->res;
		IO_STAT_INC(io, io_done);
		/* Last touch of req: the task may run and return at once. */
		req->done(req);
	}
	io_uring_cq_advance(&io->uring.ring, n);
	return n;
}

/*
 * An SQE of the owner's ring, with `need` - 1 more free behind it (a linked
 * pair must not be split by a flush).  Flushes a full queue.  Never NULL:
 * the kernel empties the SQ on submit.  Owner only.
 */
static struct io_uring_sqe *
ring_sqe(struct weft__io *io, unsigned need)
{
	struct io_uring_sqe *sqe;

	if (WEFT_UNLIKELY(io_uring_sq_space_left(&io->uring.ring) < need)) {
		io_uring_submit(&io->uring.ring);
		io->uring.unsubmitted = 0;
	}
	sqe = io_uring_get_sqe(&io->uring.ring);
	WEFT_ASSERT(sqe != NULL);
	io->uring.unsubmitted++;
	return sqe;
}

/* Queue an ASYNC_CANCEL for live request `key` unless one is queued. */
static void
cancel_key(struct weft__io *io, uint64_t key)
{
	struct weft__ioreq *req = weft__ioslot_find(&io->uring.slots, key);
	struct io_uring_sqe *sqe;

	if (!req || req->cancel_sent)
		return;
	sqe = ring_sqe(io, 1);
	io_uring_prep_cancel64(sqe, key, 0);
	io_uring_sqe_set_data64(sqe, IO_TAG_IGNORE);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	req->cancel_sent = true;
}

/*
 * Submit the cancellations other threads asked for (weft_cancel(), expired
 * I/O deadlines).  The operation's own completion then wakes its task.
 * After an overflow every slot is checked against its task's cancel flag
 * and its deadline.  Owner only.
 */
static void
cancel_drain(struct weft__io *io)
{
	struct weft__ioslots *s = &io->uring.slots;
	uint64_t keys[64];
	uint32_t n, i;
	bool all;
	int64_t now;

	if (!ck_pr_load_32(&io->cancel_n) && !ck_pr_load_8((uint8_t *)
						&io->cancel_overflow))
		return;
	weft__spin_lock(&io->cancel_lock, WEFT_RANK_IO_CANCEL);
	n = io->cancel_n;
	memcpy(keys, io->cancel_keys, n * sizeof(keys[0]));
	all = io->cancel_overflow;
	ck_pr_store_32(&io->cancel_n, 0);
	io->cancel_overflow = false;
	weft__spin_unlock(&io->cancel_lock);
	for (i = 0; i < n; i++)
		cancel_key(io, keys[i]);
	if (!all)
		return;
	now = weft_now();
	for (i = 0; i < s->n; i++) {
		struct weft__ioreq *req = s->v[i].req;

		if (req && req->cancelled(req, now))
			cancel_key(io, ((uint64_t)s->v[i].gen << 32) |
					   (i + IO_SLOT_BASE));
	}
}


/*
 * Queue one step of `req` on the owner's ring: the operation itself
 * (STAGE_OP), or a readiness poll for a non-blocking fd the kernel did not
 * poll for us (STAGE_POLL), with a linked timeout behind it if the caller
 * asked for one (its timer heap could not take the deadline).  Owner only.
 */
enum { STAGE_OP, STAGE_POLL };

static ssize_t
queue_step(struct weft__io *io, struct weft__ioreq *req)
{
	const struct weft__ioop *op = req->op;
	struct io_uring_sqe *sqe;
	int ret;

	sqe = ring_sqe(io, req->link_timeout ? 2 : 1);
	if (req->stage == STAGE_OP)
		uring_prep(sqe, op);
	else
		io_uring_prep_poll_add(sqe, op->fd, weft__ioop_events(op));
	ret = weft__ioslot_get(&io->uring.slots, req, &req->key);
	if (WEFT_UNLIKELY(ret < 0)) {
		/* The SQE is queued already: make it a harmless no-op. */
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, IO_TAG_IGNORE);
		return ret;
	}
	io_uring_sqe_set_data64(sqe, req->key);
	req->io = io;
	req->cancel_sent = false;
	IO_STAT_INC(io, io_ops);
	if (req->link_timeout) {
		struct io_uring_sqe *tsqe;

		req->ts.tv_sec = req->deadline / WEFT_SEC;
		req->ts.tv_nsec = req->deadline % WEFT_SEC;
		sqe->flags |= IOSQE_IO_LINK;
		/* ring_sqe(io, 2) left room: no flush between. */
		tsqe = io_uring_get_sqe(&io->uring.ring);
		WEFT_ASSERT(tsqe != NULL);
		io->uring.unsubmitted++;
		io_uring_prep_link_timeout(tsqe, &req->ts, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(tsqe, IO_TAG_IGNORE);
	}
	/*
	 * A long round must not hold its first requests back until its end:
	 * the peer would idle meanwhile.  Flush every SUBMIT_BATCH entries.
	 * The completion is reaped only by this worker's wait(), after the
	 * caller parked.
	 */
	if (io->uring.unsubmitted >= SUBMIT_BATCH) {
		io_uring_submit(&io->uring.ring);
		io->uring.unsubmitted = 0;
	}
	return WEFT__IO_PENDING;
}

static ssize_t
uring_submit(struct weft__io *io, struct weft__ioreq *req)
{
	req->stage = STAGE_OP;
	return queue_step(io, req);
}

/*
 * The step's completion is in req->res.  An operation the kernel answers
 * with -EAGAIN (a file opened O_NONBLOCK that does not support nowait
 * reads, a non-blocking socket) waits for readiness with a poll request and
 * is issued again.  Owner of `io` (the caller's worker now).
 */
static ssize_t
uring_resume(struct weft__io *io, struct weft__ioreq *req, int wait_res)
{
	const struct weft__ioop *op = req->op;
	int ret = req->res;

	(void)wait_res;
	/*
	 * An operation interrupted in the io-wq (splice, blocking file I/O)
	 * may report the kernel-internal -ERESTARTSYS family (512..516).
	 */
	if (ret <= -512 && ret >= -516)
		ret = -EINTR;
	if (req->stage == STAGE_OP) {
		if (ret != -EAGAIN && ret != -EINPROGRESS && ret != -EALREADY)
			return ret;
		if (op->kind == IO_POLL || op->kind == IO_CLOSE ||
		    weft__ioop_dontwait(op))
			return ret;
		req->stage = STAGE_POLL;
		return queue_step(io, req);
	}
	if (ret < 0)
		return ret;
	if (op->kind == IO_CONNECT) {
		int err;
		socklen_t elen = sizeof(err);

		if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			return -errno;
		return err ? -err : 0;
	}
	req->stage = STAGE_OP;
	return queue_step(io, req);
}

/*
 * Ask the owner of `io` to cancel the operation of `key`: push the key on
 * its cancel queue (the scan of every slot once it is full) and wake it,
 * unless the caller is the owner, which drains the queue before its next
 * poll or sleep.  A stale key names a request that is over, and its
 * generation no longer matches.  Any thread.
 */
static void
uring_cancel(struct weft__io *from, struct weft__io *io, uint64_t key)
{
	weft__spin_lock(&io->cancel_lock, WEFT_RANK_IO_CANCEL);
	if (io->cancel_n <
	    sizeof(io->cancel_keys) / sizeof(io->cancel_keys[0])) {
		io->cancel_keys[io->cancel_n] = key;
		ck_pr_store_32(&io->cancel_n, io->cancel_n + 1);
	} else {
		ck_pr_store_8((uint8_t *)&io->cancel_overflow, 1);
	}
	weft__spin_unlock(&io->cancel_lock);
	if (from != io)
		io->ops->wake(from, io);
}

static bool
uring_busy(struct weft__io *io)
{
	return io->uring.unsubmitted || io->uring.slots.used;
}

/*
 * Submit and sleep until a completion, `tsp` (NULL: forever) or a signal.
 * Under TSan, in naps (see weft__tsan_take_signals() in io/base.h), within
 * this one call: to the scheduler and its statistics it is one sleep.
 */
static int
sleep_for_cqe(struct io_uring *ring, struct io_uring_cqe **cqe,
	      struct __kernel_timespec *tsp, int64_t timeout_ns)
{
#if defined(WEFT_TSAN)
	int64_t end = weft__tsan_sleep_end(timeout_ns);
	struct __kernel_timespec nap;
	int ret;

	(void)tsp;
	do {
		int64_t ns = weft__tsan_next_nap(end);

		nap.tv_sec = ns / 1000000000;
		nap.tv_nsec = ns % 1000000000;
		ret = io_uring_submit_and_wait_timeout(ring, cqe, 1, &nap,
						       NULL);
		weft__tsan_take_signals();
	} while (ret == -ETIME && !weft__tsan_sleep_over(end));
	return ret;
#else
	(void)timeout_ns;
	return io_uring_submit_and_wait_timeout(ring, cqe, 1, tsp, NULL);
#endif
}

static int
uring_wait(struct weft__io *io, int64_t timeout_ns)
{
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;
	int ret;

	cancel_drain(io);
	ret = efd_arm(io);
	if (ret < 0)
		return ret;
	io->uring.unsubmitted = 0;
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
	IO_STAT_INC(io, io_enters);
	if (timeout_ns == 0) {
		/*
		 * Under DEFER_TASKRUN completions are posted only when the
		 * owner enters the kernel asking for events.
		 */
		ret = io_uring_submit_and_get_events(&io->uring.ring);
	} else {
		ret = sleep_for_cqe(&io->uring.ring, &cqe, tsp, timeout_ns);
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
			from->uring.unsubmitted = 0;
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
	.completes = true,
	.submit = uring_submit,
	.resume = uring_resume,
	.cancel = uring_cancel,
	.wait = uring_wait,
	.wake = uring_wake,
	.busy = uring_busy,
};

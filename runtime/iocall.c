/* SPDX-License-Identifier: MIT */
/*
 * The blocking calls of weft.h's I/O section: the call layer.  Each call is
 * described once (struct weft__ioop) and carried out by the backend of the
 * run through its ops (io/io.h), in one of two models:
 *
 *  completion (io_uring)  submit() queues the operation on the ring of the
 *      worker the task runs on; the task parks in an I/O park that only the
 *      completion ends (wait_done()).  A deadline is a timer of the task's
 *      own (weft__timer_mod()) whose expiry, like weft_cancel(), asks the
 *      backend to cancel (weft__iocall_cancel()); the completion then says
 *      -ECANCELED, which is reported as -ECANCELED or -ETIMEDOUT.
 *  readiness (epoll)  submit() tries the call without blocking; when it
 *      would block, the task parks in an ordinary park (the backend arms it
 *      through req.arm when it registers), which readiness, the deadline or
 *      weft_cancel() ends; resume() then tries again or reports the end.
 *
 * Either way the backend may ask for another step (uring: a readiness poll
 * for a non-blocking fd, then the operation again), on the worker the task
 * runs on by then.  Deadlines and cancellation are checked on entry, so
 * that a cancelled task or a passed deadline never starts an operation.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io/io.h"
#include "runtime/runtime.h"
#include "sched/park.h"

/*
 * The request's done(): make the task that waits for it runnable, at the
 * tail of the local queue (completions run in arrival order).  Last touch
 * of req: the task may run and return at once.
 */
static void
req_done(struct weft__ioreq *req)
{
	weft__wake_tail(req->owner, req->seq, 0);
}

/* Readiness model: the park that a registration may end. */
static void
req_arm(struct weft__ioreq *req)
{
	req->seq = weft__park_prepare(req->owner);
}

/* Completion model, after a full cancel queue: is req to be cancelled? */
static bool
req_cancelled(const struct weft__ioreq *req, int64_t now)
{
	const struct weft_task *t = req->owner;

	return (ck_pr_load_32(&t->flags) & TASK_CANCELLED) ||
	       (req->deadline != WEFT_DEADLINE_NONE && req->deadline <= now);
}

/*
 * Ask the backend instance holding t's in-flight operation to cancel it:
 * weft_cancel() when the I/O park refused its claim (weft__io_canceller),
 * and the expiry of an I/O deadline (heap lock held).  io_at is read
 * before io_key (the task stores them in the other order), so the key is
 * at least as new as the instance; a stale pair names a request that is
 * over, and its generation no longer matches.  Any thread.
 */
void
weft__iocall_cancel(struct weft_task *t)
{
	struct weft__io *io = ck_pr_load_ptr(&t->io_at);
	struct weft__worker *self;
	uint64_t key;

	if (!io)
		return;
	ck_pr_fence_load();
	key = ck_pr_load_64(&t->io_key);
	self = weft__worker_self();
	io->ops->cancel(self ? weft__worker_io(self) : NULL, io, key);
}

/* An I/O deadline passed.  Heap lock held: the task is alive and parked. */
static void
deadline_fire(struct weft__timer *tmr)
{
	weft__iocall_cancel(weft__timer_task(tmr));
}

/*
 * Completion model: wait for req's done().  The deadline is a timer of our
 * own heap, not a linked timeout: an hrtimer armed and disarmed in the
 * kernel for every receive costs more than the receive (perf:
 * io_queue_linked_timeout, io_disarm_next).  Its expiry cancels like
 * weft_cancel().  Task t, running on w, which owns io; returns on any
 * worker.
 */
static void
wait_done(struct weft__worker *w, struct weft_task *t, struct weft__io *io,
	  struct weft__ioreq *req)
{
	bool timed = req->deadline != WEFT_DEADLINE_NONE && !req->link_timeout;

	/*
	 * Publish where a canceller must send its request, then arm the park
	 * (a full barrier) and look at the flag: either weft_cancel() sees
	 * io_at, or we see its flag and cancel our own request here.
	 */
	ck_pr_store_64(&t->io_key, req->key);
	ck_pr_fence_store();
	ck_pr_store_ptr(&t->io_at, io);
	if (timed)
		weft__timer_mod(w, &t->timer, req->deadline, deadline_fire);
	req->seq = weft__park_prepare_io(t);
	weft__wait_note(t, WAIT_IO, req->op);
	weft__wait_deadline(t, req->deadline);
	if (ck_pr_load_32(&t->flags) & TASK_CANCELLED)
		io->ops->cancel(io, io, req->key);
	weft__park_io();
	/* Possibly on another worker now. */
	if (timed)
		weft__timer_stop(&t->timer);
	ck_pr_store_ptr(&t->io_at, NULL);
}

/* WEFT__IO_OFFLOAD: the backend's blocking() on the blocking pool. */
static void
offload_job(void *arg)
{
	struct weft__ioreq *req = arg;

	req->io->ops->blocking(req);
}

static ssize_t
do_op(struct weft__ioop *op, int64_t deadline)
{
	struct weft__worker *w = weft__worker_self();
	struct weft_task *t = w ? weft__worker_task(w) : NULL;
	struct weft__ioreq req;
	struct weft__io *io;
	ssize_t r;
	int wr;

	if (WEFT_UNLIKELY(!t))
		return -EPERM;
	deadline = weft__scope_clamp(t, deadline);
	if (WEFT_UNLIKELY(ck_pr_load_32(&t->flags) & TASK_CANCELLED)) {
		/* close(2) must still release the fd. */
		if (op->kind == IO_CLOSE)
			close(op->fd);
		return -ECANCELED;
	}
	if (deadline != WEFT_DEADLINE_NONE && op->kind != IO_CLOSE &&
	    deadline <= weft_now())
		return -ETIMEDOUT;
	if (op->kind == IO_CLOSE)
		deadline = WEFT_DEADLINE_NONE;
	io = weft__worker_io(w);
	req.op = op;
	req.deadline = deadline;
	req.owner = t;
	req.arm = req_arm;
	req.done = req_done;
	req.cancelled = req_cancelled;
	/*
	 * A deadline the timer heap cannot take (it cannot grow) goes to the
	 * kernel as a linked timeout.  Reserved here, before anything is
	 * queued, so that arming it later cannot fail.
	 */
	req.link_timeout = io->ops->completes &&
			   deadline != WEFT_DEADLINE_NONE &&
			   weft__timer_reserve(w) < 0;
	r = io->ops->submit(io, &req);
	/* Done without waiting: spend the cooperative budget. */
	if (WEFT_LIKELY(r != WEFT__IO_PENDING && r != WEFT__IO_OFFLOAD))
		weft__coop_spend();
	while (r == WEFT__IO_PENDING) {
		if (io->ops->completes) {
			wait_done(w, t, io, &req);
			wr = 0;
		} else {
			weft__wait_note(t, WAIT_IO, op);
			wr = weft__park(NULL, NULL, deadline);
		}
		w = weft__worker_self();
		io = weft__worker_io(w);
		/* A next step may wait on another worker's heap. */
		if (io->ops->completes && deadline != WEFT_DEADLINE_NONE)
			req.link_timeout = weft__timer_reserve(w) < 0;
		r = io->ops->resume(io, &req, wr);
	}
	if (r == WEFT__IO_OFFLOAD) {
		req.io = io;
		r = weft__pool_run(offload_job, &req, NULL, deadline);
		return r < 0 ? r : req.res;
	}
	if (io->ops->completes && (r == -ECANCELED || r == -EINTR)) {
		/* Ours (weft_cancel), the deadline's, or a linked timeout's. */
		if (ck_pr_load_32(&t->flags) & TASK_CANCELLED)
			r = -ECANCELED;
		else if (deadline != WEFT_DEADLINE_NONE &&
			 weft_now() >= deadline)
			r = -ETIMEDOUT;
	}
	return r;
}

ssize_t
weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_READ, .fd = fd, .iov = iov,
			 .iovcnt = iovcnt, .off = -1 };

	if (iovcnt <= 0 || !iov)
		return -EINVAL;
	return do_op(&op, deadline);
}

ssize_t
weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_WRITE, .fd = fd, .iov = iov,
			 .iovcnt = iovcnt, .off = -1 };

	if (iovcnt <= 0 || !iov)
		return -EINVAL;
	return do_op(&op, deadline);
}

static ssize_t
rw1(enum weft__io_kind kind, int fd, const void *buf, size_t len, int64_t off,
    int64_t deadline)
{
	struct weft__ioop op = { .kind = kind, .fd = fd, .off = off, .iovcnt = 1 };

	op.one.iov_base = (void *)buf;
	op.one.iov_len = len;
	op.iov = &op.one;
	/* io_uring's read/write lengths are 32-bit. */
	if (len > 0x7ffff000)
		op.one.iov_len = 0x7ffff000;
	return do_op(&op, deadline);
}

ssize_t
weft_read(int fd, void *buf, size_t len, int64_t deadline)
{
	return rw1(IO_READ, fd, buf, len, -1, deadline);
}

ssize_t
weft_write(int fd, const void *buf, size_t len, int64_t deadline)
{
	return rw1(IO_WRITE, fd, buf, len, -1, deadline);
}

/*
 * io_uring silently ignores the offset of a stream (a pipe, a socket);
 * pread(2) refuses it.  One lseek tells them apart.
 */
static int
check_seekable(int fd)
{
	if (!weft__task_self())
		return -EPERM;
	if (lseek(fd, 0, SEEK_CUR) < 0)
		return errno == ESPIPE ? -ESPIPE : -errno;
	return 0;
}

ssize_t
weft_pread(int fd, void *buf, size_t len, off_t off, int64_t deadline)
{
	int ret;

	if (off < 0)
		return -EINVAL;
	ret = check_seekable(fd);
	if (ret < 0)
		return ret;
	return rw1(IO_READ, fd, buf, len, off, deadline);
}

ssize_t
weft_pwrite(int fd, const void *buf, size_t len, off_t off, int64_t deadline)
{
	int ret;

	if (off < 0)
		return -EINVAL;
	ret = check_seekable(fd);
	if (ret < 0)
		return ret;
	return rw1(IO_WRITE, fd, buf, len, off, deadline);
}

ssize_t
weft_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_RECV, .fd = fd, .buf = buf, .len = len,
			 .flags = flags };

	return do_op(&op, deadline);
}

ssize_t
weft_send(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_SEND, .fd = fd, .buf = (void *)buf,
			 .len = len, .flags = flags };

	return do_op(&op, deadline);
}

ssize_t
weft_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_RECVMSG, .fd = fd, .msg = msg,
			 .flags = flags };

	if (!msg)
		return -EINVAL;
	return do_op(&op, deadline);
}

ssize_t
weft_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_SENDMSG, .fd = fd,
			 .msg = (struct msghdr *)msg, .flags = flags };

	if (!msg)
		return -EINVAL;
	return do_op(&op, deadline);
}

int
weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
	    int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_ACCEPT, .fd = fd, .addr = addr,
			 .addrlen = addrlen, .flags = flags };

	if ((addr == NULL) != (addrlen == NULL) ||
	    (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)))
		return -EINVAL;
	return (int)do_op(&op, deadline);
}

int
weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
	     int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_CONNECT, .fd = fd, .caddr = addr,
			 .alen = addrlen };

	if (!addr || addrlen == 0)
		return -EINVAL;
	return (int)do_op(&op, deadline);
}

/*
 * The one I/O call that works outside coroutine context: the header
 * promises the fd is gone whatever the result, and a caller on a plain
 * thread (a cleanup path, an atexit handler) has no task to park, so it
 * gets close(2) itself.
 */
int
weft_close(int fd, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_CLOSE, .fd = fd };

	if (WEFT_UNLIKELY(!weft__task_self()))
		return close(fd) < 0 ? -errno : 0;
	return (int)do_op(&op, deadline);
}

int
weft_openat(int dirfd, const char *path, int flags, mode_t mode,
	    int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_OPENAT, .fd = dirfd, .path = path,
			 .flags = flags, .mode = mode };

	if (!path)
		return -EINVAL;
	return (int)do_op(&op, deadline);
}

int
weft_fsync(int fd, unsigned flags, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_FSYNC, .fd = fd, .flags = (int)flags };

	if (flags & ~WEFT_FSYNC_DATASYNC)
		return -EINVAL;
	return (int)do_op(&op, deadline);
}

ssize_t
weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
	    size_t len, unsigned flags, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_SPLICE, .fd = fd_in, .off = off_in,
			 .fd_out = fd_out, .off_out = off_out, .len = len,
			 .flags = (int)flags };

	if (off_in < -1 || off_out < -1)
		return -EINVAL;
	if (len > 0x7ffff000)
		op.len = 0x7ffff000;
	return do_op(&op, deadline);
}

int
weft_poll(int fd, short events, int64_t deadline)
{
	struct weft__ioop op = { .kind = IO_POLL, .fd = fd,
			 .flags = (int)(unsigned short)events };

	if (fd < 0)
		return -EBADF;
	return (int)do_op(&op, deadline);
}

static ssize_t
full(bool rd, int fd, void *buf, size_t len, size_t *done, int64_t deadline)
{
	size_t got = 0;
	ssize_t r = 0;

	while (got < len) {
		r = rd ? weft_read(fd, (char *)buf + got, len - got, deadline) :
			 weft_write(fd, (char *)buf + got, len - got, deadline);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (done)
		*done = got;
	if (r < 0)
		return r;
	if (!rd && r == 0 && got < len)
		return -EIO;	/* write(2) made no progress */
	return (ssize_t)got;
}

ssize_t
weft_read_full(int fd, void *buf, size_t len, size_t *done, int64_t deadline)
{
	return full(true, fd, buf, len, done, deadline);
}

ssize_t
weft_write_full(int fd, const void *buf, size_t len, size_t *done,
		int64_t deadline)
{
	return full(false, fd, (void *)buf, len, done, deadline);
}

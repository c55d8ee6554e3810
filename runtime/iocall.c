/* SPDX-License-Identifier: MIT */
/*
 * The blocking calls of weft.h's I/O section.  Each call is described once
 * (struct op) and carried out by the backend of the run:
 *
 *  io_uring  One SQE on the ring of the worker the task runs on (plus a
 *            linked timeout for a deadline), then an I/O park until the
 *            completion; see weft__uring_submit_wait().  An operation that
 *            the kernel answers with -EAGAIN (a file opened O_NONBLOCK that
 *            does not support nowait reads) waits for readiness with a poll
 *            request and is issued again.
 *  epoll     The system call is tried without blocking (RWF_NOWAIT,
 *            MSG_DONTWAIT, or an fd set O_NONBLOCK); on EAGAIN the task
 *            waits for readiness (weft__epoll_wait_fd) and tries again.
 *            What cannot be polled (regular files) is done blocking, and
 *            openat/fsync go to the blocking pool.
 *
 * Deadlines and cancellation are checked on entry, so that a cancelled task
 * or a passed deadline never starts an operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io/io.h"
#include "sched/park.h"
#include "sched/sched.h"

enum op_kind {
	OP_READ,	/* readv/preadv: iov, off (-1: file position) */
	OP_WRITE,	/* writev/pwritev: iov, off */
	OP_RECV,	/* buf, len, flags */
	OP_SEND,
	OP_RECVMSG,	/* msg, flags */
	OP_SENDMSG,
	OP_ACCEPT,	/* addr, addrlen, flags */
	OP_CONNECT,	/* caddr, alen */
	OP_CLOSE,
	OP_OPENAT,	/* fd is dirfd; path, flags, mode */
	OP_FSYNC,	/* flags */
	OP_SPLICE,	/* fd -> fd_out, off, off_out, len, flags */
	OP_POLL,	/* flags: poll events */
};

struct op {
	enum op_kind kind;
	int fd;
	int flags;
	const struct iovec *iov;
	int iovcnt;
	int64_t off;
	void *buf;
	size_t len;
	struct msghdr *msg;
	struct sockaddr *addr;
	socklen_t *addrlen;
	const struct sockaddr *caddr;
	socklen_t alen;
	const char *path;
	mode_t mode;
	int fd_out;
	int64_t off_out;
	/* A single buffer as an iovec (OP_READ/OP_WRITE of read/write). */
	struct iovec one;
};

static bool
is_uring(const struct weft__worker *w)
{
	return w->io.ops == &weft__io_uring_ops;
}

/* Readiness an operation waits for when it would block. */
static uint32_t
op_events(const struct op *op)
{
	switch (op->kind) {
	case OP_WRITE:
	case OP_SEND:
	case OP_SENDMSG:
	case OP_CONNECT:
		return POLLOUT;
	case OP_POLL:
		return (uint32_t)op->flags;
	default:
		return POLLIN;
	}
}

static void
uring_prep(struct io_uring_sqe *sqe, const struct op *op)
{
	switch (op->kind) {
	case OP_READ:
		if (op->iovcnt == 1)
			io_uring_prep_read(sqe, op->fd, op->iov[0].iov_base,
					   (unsigned)op->iov[0].iov_len,
					   (uint64_t)op->off);
		else
			io_uring_prep_readv(sqe, op->fd, op->iov,
					    (unsigned)op->iovcnt,
					    (uint64_t)op->off);
		break;
	case OP_WRITE:
		if (op->iovcnt == 1)
			io_uring_prep_write(sqe, op->fd, op->iov[0].iov_base,
					    (unsigned)op->iov[0].iov_len,
					    (uint64_t)op->off);
		else
			io_uring_prep_writev(sqe, op->fd, op->iov,
					     (unsigned)op->iovcnt,
					     (uint64_t)op->off);
		break;
	case OP_RECV:
		io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->flags);
		break;
	case OP_SEND:
		io_uring_prep_send(sqe, op->fd, op->buf, op->len,
				   op->flags | MSG_NOSIGNAL);
		break;
	case OP_RECVMSG:
		io_uring_prep_recvmsg(sqe, op->fd, op->msg, (unsigned)op->flags);
		break;
	case OP_SENDMSG:
		io_uring_prep_sendmsg(sqe, op->fd, op->msg,
				      (unsigned)op->flags | MSG_NOSIGNAL);
		break;
	case OP_ACCEPT:
		io_uring_prep_accept(sqe, op->fd, op->addr, op->addrlen,
				     op->flags);
		break;
	case OP_CONNECT:
		io_uring_prep_connect(sqe, op->fd, op->caddr, op->alen);
		break;
	case OP_CLOSE:
		io_uring_prep_close(sqe, op->fd);
		break;
	case OP_OPENAT:
		io_uring_prep_openat(sqe, op->fd, op->path, op->flags,
				     op->mode);
		break;
	case OP_FSYNC:
		io_uring_prep_fsync(sqe, op->fd,
				    (op->flags & WEFT_FSYNC_DATASYNC) ?
				    IORING_FSYNC_DATASYNC : 0);
		break;
	case OP_SPLICE:
		io_uring_prep_splice(sqe, op->fd, op->off, op->fd_out,
				     op->off_out, (unsigned)op->len,
				     (unsigned)op->flags);
		break;
	case OP_POLL:
		io_uring_prep_poll_add(sqe, op->fd, (unsigned)op->flags);
		break;
	}
}

/* Make fd non-blocking for the epoll backend (calls without a flag). */
static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static ssize_t
sys_ret(ssize_t r)
{
	return r < 0 ? -errno : r;
}

/* epoll backend: the call without blocking.  -EAGAIN: wait and retry. */
static ssize_t
try_nb(struct op *op, bool nowait)
{
	int rwf = nowait ? RWF_NOWAIT : 0;
	ssize_t r;
	int err;
	socklen_t elen;

	switch (op->kind) {
	case OP_READ:
		r = sys_ret(preadv2(op->fd, op->iov, op->iovcnt, op->off, rwf));
		break;
	case OP_WRITE:
		r = sys_ret(pwritev2(op->fd, op->iov, op->iovcnt, op->off,
				     rwf));
		break;
	case OP_RECV:
		r = sys_ret(recv(op->fd, op->buf, op->len,
				 op->flags | MSG_DONTWAIT));
		break;
	case OP_SEND:
		r = sys_ret(send(op->fd, op->buf, op->len,
				 op->flags | MSG_DONTWAIT | MSG_NOSIGNAL));
		break;
	case OP_RECVMSG:
		r = sys_ret(recvmsg(op->fd, op->msg, op->flags | MSG_DONTWAIT));
		break;
	case OP_SENDMSG:
		r = sys_ret(sendmsg(op->fd, op->msg,
				    op->flags | MSG_DONTWAIT | MSG_NOSIGNAL));
		break;
	case OP_ACCEPT:
		r = set_nonblock(op->fd);
		if (r == 0)
			r = sys_ret(accept4(op->fd, op->addr, op->addrlen,
					    op->flags));
		break;
	case OP_CONNECT:
		/* Second round: the connection attempt has finished. */
		if (op->alen == 0) {
			elen = sizeof(err);
			if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err,
				       &elen) < 0)
				return -errno;
			return err ? -err : 0;
		}
		r = set_nonblock(op->fd);
		if (r == 0)
			r = sys_ret(connect(op->fd, op->caddr, op->alen));
		if (r == -EINPROGRESS) {
			op->alen = 0;
			r = -EAGAIN;
		}
		break;
	case OP_CLOSE:
		r = sys_ret(close(op->fd));
		/* The fd is gone even then (see close(2)). */
		if (r == -EINTR)
			r = 0;
		break;
	case OP_SPLICE:
		r = sys_ret(splice(op->fd, op->off < 0 ? NULL : &op->off,
				   op->fd_out,
				   op->off_out < 0 ? NULL : &op->off_out,
				   op->len, (unsigned)op->flags |
				   SPLICE_F_NONBLOCK));
		if (r == -EAGAIN) {
			/* Wait on whichever side is not ready. */
			struct pollfd p = { .fd = op->fd, .events = POLLIN };

			op->iovcnt = poll(&p, 1, 0) == 1 ? 1 : 0;
		}
		break;
	case OP_POLL: {
		struct pollfd p = { .fd = op->fd, .events = (short)op->flags };

		r = sys_ret(poll(&p, 1, 0));
		if (r == 1)
			r = p.revents & POLLNVAL ? -EBADF : p.revents;
		else if (r == 0)
			r = -EAGAIN;
		break;
	}
	default:
		r = -EINVAL;
		break;
	}
	return r;
}

/* Pool jobs of the epoll backend. */
struct sysjob {
	struct op *op;
	int ret;
};

static void
sysjob_run(void *arg)
{
	struct sysjob *j = arg;
	struct op *op = j->op;
	int r;

	if (op->kind == OP_OPENAT)
		r = openat(op->fd, op->path, op->flags, op->mode);
	else if (op->flags & WEFT_FSYNC_DATASYNC)
		r = fdatasync(op->fd);
	else
		r = fsync(op->fd);
	j->ret = r < 0 ? -errno : r;
}

/* The caller asked for a non-blocking attempt: -EAGAIN is its answer. */
static bool
op_dontwait(const struct op *op)
{
	switch (op->kind) {
	case OP_RECV:
	case OP_SEND:
	case OP_RECVMSG:
	case OP_SENDMSG:
		return (op->flags & MSG_DONTWAIT) != 0;
	case OP_SPLICE:
		return (op->flags & SPLICE_F_NONBLOCK) != 0;
	default:
		return false;
	}
}

static ssize_t
epoll_op(struct weft__worker *w, struct op *op, int64_t deadline)
{
	size_t got = 0;		/* MSG_WAITALL progress (OP_RECV) */
	bool nowait = true;
	ssize_t r;
	int ev;

	if (op->kind == OP_OPENAT || op->kind == OP_FSYNC) {
		struct sysjob j = { .op = op, .ret = 0 };

		r = weft__pool_run(sysjob_run, &j, NULL, deadline);
		return r < 0 ? r : j.ret;
	}
	for (;;) {
		r = try_nb(op, nowait);
		/*
		 * MSG_WAITALL with MSG_DONTWAIT returns what is there: go on
		 * waiting for the rest, as the blocking call would.
		 */
		if (op->kind == OP_RECV && (op->flags & MSG_WAITALL) &&
		    !op_dontwait(op) && (r > 0 || (r == -EAGAIN && got))) {
			if (r > 0) {
				got += (size_t)r;
				op->buf = (char *)op->buf + r;
				op->len -= (size_t)r;
			}
			if (op->len == 0)
				return (ssize_t)got;
			r = -EAGAIN;
		} else if (got) {
			/* EOF or an error after part of it: report the part. */
			return (ssize_t)got;
		}
		if (r == -EOPNOTSUPP && nowait &&
		    (op->kind == OP_READ || op->kind == OP_WRITE)) {
			/* No RWF_NOWAIT here: wait for readiness first. */
			nowait = false;
			r = -EAGAIN;
		} else if (r != -EAGAIN || op->kind == OP_CLOSE ||
			   op_dontwait(op)) {
			return r;
		}
		if (op->kind == OP_SPLICE)
			ev = weft__epoll_wait_fd(w, op->iovcnt ? op->fd_out :
						 op->fd, op->iovcnt ? EPOLLOUT :
						 EPOLLIN, deadline);
		else
			ev = weft__epoll_wait_fd(w, op->fd, op_events(op),
						 deadline);
		if (ev < 0)
			return got ? (ssize_t)got : ev;
		if (ev == 0) {
			/* Cannot be polled (a regular file): block. */
			if (op->kind == OP_READ || op->kind == OP_WRITE)
				return try_nb(op, false);
			if (op->kind == OP_POLL)
				return op->flags & (POLLIN | POLLOUT);
		}
		if (op->kind == OP_POLL)
			return ev;
		w = weft__worker_self();
	}
}

static ssize_t
uring_op(struct weft__worker *w, struct op *op, int64_t deadline)
{
	struct io_uring_sqe *sqe;
	ssize_t r;

	for (;;) {
		sqe = weft__uring_sqe(&w->io, 2);
		uring_prep(sqe, op);
		r = weft__uring_submit_wait(w, w->cur, sqe, deadline);
		if (r != -EAGAIN && r != -EINPROGRESS && r != -EALREADY)
			return r;
		if (op->kind == OP_POLL || op->kind == OP_CLOSE ||
		    op_dontwait(op))
			return r;
		/* A non-blocking fd the kernel did not poll for us. */
		w = weft__worker_self();
		sqe = weft__uring_sqe(&w->io, 2);
		io_uring_prep_poll_add(sqe, op->fd, op_events(op));
		r = weft__uring_submit_wait(w, w->cur, sqe, deadline);
		if (r < 0)
			return r;
		w = weft__worker_self();
		if (op->kind == OP_CONNECT) {
			int err;
			socklen_t elen = sizeof(err);

			if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err,
				       &elen) < 0)
				return -errno;
			return err ? -err : 0;
		}
	}
}

static ssize_t
do_op(struct op *op, int64_t deadline)
{
	struct weft__worker *w = weft__worker_self();
	struct weft_task *t = w ? w->cur : NULL;

	if (WEFT_UNLIKELY(!t))
		return -EPERM;
	if (WEFT_UNLIKELY(ck_pr_load_32(&t->flags) & TASK_CANCELLED)) {
		/* close(2) must still release the fd. */
		if (op->kind == OP_CLOSE)
			close(op->fd);
		return -ECANCELED;
	}
	if (deadline != WEFT_DEADLINE_NONE && op->kind != OP_CLOSE &&
	    deadline <= weft_now())
		return -ETIMEDOUT;
	if (op->kind == OP_CLOSE)
		deadline = WEFT_DEADLINE_NONE;
	if (is_uring(w))
		return uring_op(w, op, deadline);
	return epoll_op(w, op, deadline);
}

/*
 * Ask the owner of the ring holding t's in-flight operation to cancel it:
 * weft_cancel() when the I/O park refused its claim, and the expiry of an
 * I/O deadline (heap lock held).
 * io_w is read before io_key (the task stores them in the other order), so
 * the key is at least as new as the worker; a stale pair names a request
 * that is over, and its generation no longer matches.  Any thread.
 */
void
weft__io_cancel_route(struct weft_task *t)
{
	struct weft__worker *w = ck_pr_load_ptr(&t->io_w);
	struct weft__worker *self;
	struct weft__io *io;
	uint64_t key;

	if (!w)
		return;
	ck_pr_fence_load();
	key = ck_pr_load_64(&t->io_key);
	io = &w->io;
	weft__spin_lock(&io->cancel_lock);
	if (io->cancel_n <
	    sizeof(io->cancel_keys) / sizeof(io->cancel_keys[0])) {
		io->cancel_keys[io->cancel_n] = key;
		ck_pr_store_32(&io->cancel_n, io->cancel_n + 1);
	} else {
		ck_pr_store_8((uint8_t *)&io->cancel_overflow, 1);
	}
	ck_spinlock_unlock(&io->cancel_lock);
	self = weft__worker_self();
	/* The owner itself drains the queue before its next poll or sleep. */
	if (self != w)
		weft__sched.io_ops->wake(self ? &self->io : NULL, io);
}

ssize_t
weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
	struct op op = { .kind = OP_READ, .fd = fd, .iov = iov,
			 .iovcnt = iovcnt, .off = -1 };

	if (iovcnt <= 0 || !iov)
		return -EINVAL;
	return do_op(&op, deadline);
}

ssize_t
weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
	struct op op = { .kind = OP_WRITE, .fd = fd, .iov = iov,
			 .iovcnt = iovcnt, .off = -1 };

	if (iovcnt <= 0 || !iov)
		return -EINVAL;
	return do_op(&op, deadline);
}

static ssize_t
rw1(enum op_kind kind, int fd, const void *buf, size_t len, int64_t off,
    int64_t deadline)
{
	struct op op = { .kind = kind, .fd = fd, .off = off, .iovcnt = 1 };

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
	return rw1(OP_READ, fd, buf, len, -1, deadline);
}

ssize_t
weft_write(int fd, const void *buf, size_t len, int64_t deadline)
{
	return rw1(OP_WRITE, fd, buf, len, -1, deadline);
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
	return rw1(OP_READ, fd, buf, len, off, deadline);
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
	return rw1(OP_WRITE, fd, buf, len, off, deadline);
}

ssize_t
weft_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
	struct op op = { .kind = OP_RECV, .fd = fd, .buf = buf, .len = len,
			 .flags = flags };

	return do_op(&op, deadline);
}

ssize_t
weft_send(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
	struct op op = { .kind = OP_SEND, .fd = fd, .buf = (void *)buf,
			 .len = len, .flags = flags };

	return do_op(&op, deadline);
}

ssize_t
weft_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline)
{
	struct op op = { .kind = OP_RECVMSG, .fd = fd, .msg = msg,
			 .flags = flags };

	if (!msg)
		return -EINVAL;
	return do_op(&op, deadline);
}

ssize_t
weft_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline)
{
	struct op op = { .kind = OP_SENDMSG, .fd = fd,
			 .msg = (struct msghdr *)msg, .flags = flags };

	if (!msg)
		return -EINVAL;
	return do_op(&op, deadline);
}

int
weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
	    int64_t deadline)
{
	struct op op = { .kind = OP_ACCEPT, .fd = fd, .addr = addr,
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
	struct op op = { .kind = OP_CONNECT, .fd = fd, .caddr = addr,
			 .alen = addrlen };

	if (!addr || addrlen == 0)
		return -EINVAL;
	return (int)do_op(&op, deadline);
}

int
weft_close(int fd, int64_t deadline)
{
	struct op op = { .kind = OP_CLOSE, .fd = fd };

	return (int)do_op(&op, deadline);
}

int
weft_openat(int dirfd, const char *path, int flags, mode_t mode,
	    int64_t deadline)
{
	struct op op = { .kind = OP_OPENAT, .fd = dirfd, .path = path,
			 .flags = flags, .mode = mode };

	if (!path)
		return -EINVAL;
	return (int)do_op(&op, deadline);
}

int
weft_fsync(int fd, unsigned flags, int64_t deadline)
{
	struct op op = { .kind = OP_FSYNC, .fd = fd, .flags = (int)flags };

	if (flags & ~WEFT_FSYNC_DATASYNC)
		return -EINVAL;
	return (int)do_op(&op, deadline);
}

ssize_t
weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
	    size_t len, unsigned flags, int64_t deadline)
{
	struct op op = { .kind = OP_SPLICE, .fd = fd_in, .off = off_in,
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
	struct op op = { .kind = OP_POLL, .fd = fd,
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

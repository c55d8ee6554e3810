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
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "include/weft.h"
#include "io/io.h"

/* Counters of the owner worker: relaxed stores, readers load. */
#define IO_STAT_INC(io, field)						\
	ck_pr_store_64(&(io)->st->field, (io)->st->field + 1)

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

/* The call without blocking.  -EAGAIN: wait for readiness and retry. */
static ssize_t
try_nb(struct weft__ioop *op, bool nowait)
{
	int rwf = nowait ? RWF_NOWAIT : 0;
	ssize_t r;
	int err;
	socklen_t elen;

	switch (op->kind) {
	case IO_READ:
		r = sys_ret(preadv2(op->fd, op->iov, op->iovcnt, op->off, rwf));
		break;
	case IO_WRITE:
		r = sys_ret(pwritev2(op->fd, op->iov, op->iovcnt, op->off,
				     rwf));
		break;
	case IO_RECV:
		r = sys_ret(recv(op->fd, op->buf, op->len,
				 op->flags | MSG_DONTWAIT));
		break;
	case IO_SEND:
		r = sys_ret(send(op->fd, op->buf, op->len,
				 op->flags | MSG_DONTWAIT | MSG_NOSIGNAL));
		break;
	case IO_RECVMSG:
		r = sys_ret(recvmsg(op->fd, op->msg, op->flags | MSG_DONTWAIT));
		break;
	case IO_SENDMSG:
		r = sys_ret(sendmsg(op->fd, op->msg,
				    op->flags | MSG_DONTWAIT | MSG_NOSIGNAL));
		break;
	case IO_ACCEPT:
		r = set_nonblock(op->fd);
		if (r == 0)
			r = sys_ret(accept4(op->fd, op->addr, op->addrlen,
					    op->flags));
		break;
	case IO_CONNECT:
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
	case IO_CLOSE:
		r = sys_ret(close(op->fd));
		/* The fd is gone even then (see close(2)). */
		if (r == -EINTR)
			r = 0;
		break;
	case IO_SPLICE:
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
	case IO_POLL: {
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
	io->epoll.regs = NULL;
	io->epoll.nregs = 0;
	return 0;
}

static void
epoll_free_io(struct weft__io *io)
{
	WEFT_ASSERT(io->epoll.slots.used == 0);
	weft__ioslots_free(&io->epoll.slots);
	free(io->epoll.regs);
	close(io->epoll.epfd);
	close(io->efd);
}

/* req->stage: how the wait is registered (epoll's use of the field). */
#define REQ_DUP		1u	/* through a dup of the fd, to close */
#define REQ_KEPT	2u	/* on the fd itself, tracked in regs[] */

/* regs[] (io.h): what the set holds for an fd number. */
#define REG_NONE	0
#define REG_IDLE	1	/* registered, no waiter: re-arm with a MOD */
#define REG_ARMED	2	/* armed by a waiter now */

#define REGS_MAX	(1 << 20)	/* fd numbers tracked; above: untracked */

/* A registered fd is ready: tell its waiter if it still waits. */
static void
dispatch(struct weft__io *io, uint64_t key, uint32_t revents)
{
	struct weft__ioreq *req;

	weft__spin_lock(&io->epoll.lock, WEFT_RANK_EPOLL);
	req = weft__ioslot_find(&io->epoll.slots, key);
	/*
	 * Under the lock the waiter cannot have gone: it frees its slot
	 * under the same lock before it returns.  A wait already ended by a
	 * timeout or a cancellation refuses what done() does.
	 */
	if (req) {
		req->res = (int32_t)(revents & 0x7fffffffu);
		req->done(req);
	}
	weft__spin_unlock(&io->epoll.lock);
}

/*
 * Remove a waiter record; with idle_fd >= 0, mark that fd's kept registration
 * idle in the same critical section.  Any thread.
 */
static void
forget(struct weft__io *io, uint64_t key, struct weft__ioreq *req,
       int idle_fd)
{
	weft__spin_lock(&io->epoll.lock, WEFT_RANK_EPOLL);
	if (idle_fd >= 0)
		io->epoll.regs[idle_fd] = REG_IDLE;
	if (weft__ioslot_find(&io->epoll.slots, key) == req)
		weft__ioslot_put(&io->epoll.slots, key);
	ck_pr_store_32(&io->epoll.waiting, io->epoll.slots.used);
	weft__spin_unlock(&io->epoll.lock);
}


/*
 * regs[] entry of `fd`, grown to hold it; NULL if it cannot be tracked
 * (a huge fd number, or no memory: then the wait registers and removes
 * its registration as a one-off).  Owner of `io`, under epoll.lock.
 */
static uint8_t *
reg_of(struct weft__io *io, int fd)
{
	if (fd >= io->epoll.nregs) {
		int n = io->epoll.nregs ? io->epoll.nregs : 64;
		uint8_t *r;

		if (fd >= REGS_MAX)
			return NULL;
		while (n <= fd)
			n *= 2;
		r = realloc(io->epoll.regs, (size_t)n);
		if (!r)
			return NULL;
		memset(r + io->epoll.nregs, REG_NONE,
		       (size_t)(n - io->epoll.nregs));
		io->epoll.regs = r;
		io->epoll.nregs = n;
	}
	return &io->epoll.regs[fd];
}

/*
 * Register req for `fd` becoming ready for `events`: one-shot, on the
 * calling worker's epoll set.  The registration outlives its wait, and the
 * fd's next wait on this set re-arms it with one EPOLL_CTL_MOD (new events,
 * new key) instead of an ADD now and a DEL after: a keep-alive
 * connection's every request used to wait with two epoll_ctl calls.  A
 * wait its event ended leaves the registration disarmed (one-shot); one a
 * deadline or a cancellation ended leaves it armed with a stale key, and
 * should it fire, dispatch() finds no waiter: the slot's generation no
 * longer matches.  The kernel drops the registration when its file
 * closes; until then it costs the set one entry.  An fd that already has
 * an armed registration in this set (another task waits on it for the
 * other direction) is registered through a dup(), removed after its wait:
 * epoll keys on (fd, file).  Returns WEFT__IO_PENDING, -errno, or 0 if `fd`
 * cannot be polled (a regular file: the caller then does the call
 * blocking).  Owner of `io`.
 */
static ssize_t
await_fd(struct weft__io *io, struct weft__ioreq *req, int fd,
	 uint32_t events)
{
	struct epoll_event ev;
	int epfd = io->epoll.epfd, regfd = fd, ret, err = 0;
	unsigned int how = 0;
	uint8_t *reg;
	uint64_t key;

	weft__spin_lock(&io->epoll.lock, WEFT_RANK_EPOLL);
	ret = weft__ioslot_get(&io->epoll.slots, req, &key);
	if (ret < 0) {
		weft__spin_unlock(&io->epoll.lock);
		return ret;
	}
	ck_pr_store_32(&io->epoll.waiting, io->epoll.slots.used);
	ev.events = events | EPOLLONESHOT;
	ev.data.u64 = key;
	/* Under the lock: no event can be dispatched before the arm. */
	req->arm(req);
	reg = reg_of(io, fd);
	if (reg && *reg == REG_IDLE) {
		how = REQ_KEPT;
		if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
			/* ENOENT: the file it was made for has closed. */
			if (errno != ENOENT)
				err = errno;
			else if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
				err = errno;
		}
	} else if (reg && *reg == REG_ARMED) {
		err = EEXIST;
	} else if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		err = errno;
	} else {
		how = reg ? REQ_KEPT : 0;
	}
	if (err == EEXIST) {
		how = REQ_DUP;
		regfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (regfd < 0)
			err = errno;
		else if (epoll_ctl(epfd, EPOLL_CTL_ADD, regfd, &ev) < 0)
			err = errno;
		else
			err = 0;
	}
	if (err) {
		if (reg && how == REQ_KEPT)
			*reg = REG_NONE;
		weft__spin_unlock(&io->epoll.lock);
		forget(io, key, req, -1);
		if (regfd >= 0 && regfd != fd)
			close(regfd);
		/* EPERM: a regular file or the like, always "ready". */
		return err == EPERM ? 0 : -err;
	}
	if (how == REQ_KEPT)
		*reg = REG_ARMED;
	req->io = io;
	req->key = key;
	req->regfd = regfd;
	req->stage = (int)how;
	IO_STAT_INC(io, io_ops);
	weft__spin_unlock(&io->epoll.lock);
	return WEFT__IO_PENDING;
}

/*
 * The wait for req's registration is over, however it ended: leave a
 * tracked registration in the set it was made on (maybe another worker's)
 * for the fd's next wait, remove any other; count it on `io`, where the
 * waiter runs now.  Owner of `io`.
 */
static void
retire(struct weft__io *io, struct weft__ioreq *req)
{
	struct weft__io *rio = req->io;
	unsigned int how = (unsigned int)req->stage;

	IO_STAT_INC(io, io_done);
	if (!(how & REQ_KEPT)) {
		(void)epoll_ctl(rio->epoll.epfd, EPOLL_CTL_DEL, req->regfd,
				NULL);
		if (how & REQ_DUP)
			close(req->regfd);
	}
	forget(rio, req->key, req, how & REQ_KEPT ? req->regfd : -1);
	req->io = NULL;
}

/*
 * Try req's call without blocking until it completes, fails, or must wait
 * for readiness (then WEFT__IO_PENDING: done() follows readiness, and
 * resume() tries again).  Owner of `io`.
 */
static ssize_t
attempt(struct weft__io *io, struct weft__ioreq *req)
{
	struct weft__ioop *op = req->op;
	ssize_t r;

	for (;;) {
		r = try_nb(op, req->nowait);
		/*
		 * MSG_WAITALL with MSG_DONTWAIT returns what is there: go on
		 * waiting for the rest, as the blocking call would.
		 */
		if (op->kind == IO_RECV && (op->flags & MSG_WAITALL) &&
		    !weft__ioop_dontwait(op) &&
		    (r > 0 || (r == -EAGAIN && req->got))) {
			if (r > 0) {
				req->got += (size_t)r;
				op->buf = (char *)op->buf + r;
				op->len -= (size_t)r;
			}
			if (op->len == 0)
				return (ssize_t)req->got;
			r = -EAGAIN;
		} else if (req->got) {
			/* EOF or an error after part of it: report the part. */
			return (ssize_t)req->got;
		}
		if (r == -EOPNOTSUPP && req->nowait &&
		    (op->kind == IO_READ || op->kind == IO_WRITE)) {
			/* No RWF_NOWAIT here: wait for readiness first. */
			req->nowait = false;
			r = -EAGAIN;
		} else if (r != -EAGAIN || op->kind == IO_CLOSE ||
			   weft__ioop_dontwait(op)) {
			return r;
		}
		if (op->kind == IO_SPLICE)
			r = await_fd(io, req, op->iovcnt ? op->fd_out : op->fd,
				     op->iovcnt ? EPOLLOUT : EPOLLIN);
		else
			r = await_fd(io, req, op->fd, weft__ioop_events(op));
		if (r != 0)
			return r;
		/* Cannot be polled (a regular file): block. */
		if (op->kind == IO_READ || op->kind == IO_WRITE)
			return try_nb(op, false);
		if (op->kind == IO_POLL)
			return op->flags & (POLLIN | POLLOUT);
	}
}

static ssize_t
epoll_submit(struct weft__io *io, struct weft__ioreq *req)
{
	/* What epoll cannot wait for runs on the blocking pool. */
	if (req->op->kind == IO_OPENAT || req->op->kind == IO_FSYNC)
		return WEFT__IO_OFFLOAD;
	req->got = 0;
	req->nowait = true;
	req->io = NULL;
	return attempt(io, req);
}

static ssize_t
epoll_resume(struct weft__io *io, struct weft__ioreq *req, int wait_res)
{
	retire(io, req);
	if (wait_res < 0)
		return req->got ? (ssize_t)req->got : wait_res;
	if (req->op->kind == IO_POLL)
		return req->res;
	return attempt(io, req);
}

/* IO_OPENAT and IO_FSYNC, on a thread that may block.  Any thread. */
static void
epoll_blocking(struct weft__ioreq *req)
{
	const struct weft__ioop *op = req->op;
	int r;

	if (op->kind == IO_OPENAT)
		r = openat(op->fd, op->path, op->flags, op->mode);
	else if (op->flags & WEFT_FSYNC_DATASYNC)
		r = fdatasync(op->fd);
	else
		r = fsync(op->fd);
	req->res = r < 0 ? -errno : r;
}

/*
 * epoll_pwait2() until an event, `tsp` (NULL: forever) or a signal.  Under
 * TSan, in naps (see weft__tsan_take_signals() in io/base.h), within this
 * one call: to the scheduler and its statistics it is one sleep.
 */
static int
sleep_for_events(int epfd, struct epoll_event *evs, int max,
		 const struct timespec *tsp, int64_t timeout_ns)
{
#if defined(WEFT_TSAN)
	int64_t end = weft__tsan_sleep_end(timeout_ns);
	struct timespec nap;
	int n;

	(void)tsp;
	do {
		int64_t ns = weft__tsan_next_nap(end);

		nap.tv_sec = ns / 1000000000;
		nap.tv_nsec = ns % 1000000000;
		n = epoll_pwait2(epfd, evs, max, &nap, NULL);
		weft__tsan_take_signals();
	} while (n == 0 && !weft__tsan_sleep_over(end));
	return n;
#else
	(void)timeout_ns;
	return epoll_pwait2(epfd, evs, max, tsp, NULL);
#endif
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
	n = sleep_for_events(io->epoll.epfd, evs, 64, tsp, timeout_ns);
	IO_STAT_INC(io, io_enters);
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
	.completes = false,
	.submit = epoll_submit,
	.resume = epoll_resume,
	.cancel = NULL,
	.blocking = epoll_blocking,
	.wait = epoll_wait_io,
	.wake = epoll_wake_io,
	.busy = epoll_busy_io,
};

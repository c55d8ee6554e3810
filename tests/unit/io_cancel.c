/* SPDX-License-Identifier: MIT */
/*
 * Deadlines and cancellation of I/O, I/O next to a task that hogs its
 * worker with yields, and tasks that move between workers while their I/O
 * is in flight.  The property checked throughout is the buffer-safety rule
 * of weft.h: a call that times out or is cancelled returns no earlier than
 * its deadline, consumes and produces nothing it does not report, and
 * leaves the fd usable; a cancellation that loses the race to a completion
 * returns the real result.  Every test runs under io_uring and under epoll
 * (see io_harness.h).  The counts shrink under the sanitizers.
 */
#include <sys/ioctl.h>

#include "io_harness.h"

#if defined(WEFT_TSAN)
#define RACE_ITERS    100
#define MANY_TIMEOUTS 50
#define MIG_ITERS     200
#define PP_PAIRS      10
#define PP_ROUNDS     50
#elif defined(WEFT_ASAN)
#define RACE_ITERS    300
#define MANY_TIMEOUTS 200
#define MIG_ITERS     300
#define PP_PAIRS      50
#define PP_ROUNDS     200
#else
#define RACE_ITERS    1000
#define MANY_TIMEOUTS 200
#define MIG_ITERS     300
#define PP_PAIRS      50
#define PP_ROUNDS     500
#endif

/* Something the op under test could wrongly consume or produce. */
static const char after_msg[8] = "ABCDEFGH";

/* Is the fd quiet, i.e. nothing readable for 10 ms? */
static bool
quiet(int fd)
{
	int r = weft_poll(fd, POLLIN, weft_now() + 10 * WEFT_MSEC);

	T_EXPECT(r == -ETIMEDOUT, "fd %d is not quiet: poll returned %d", fd,
		 r);
	return r == -ETIMEDOUT;
}

/* Fill `p` (a fresh pipe) to its new capacity of 4096 bytes. */
static bool
fill_pipe(int p[2])
{
	static const char page[4096];
	int r = fcntl(p[1], F_SETPIPE_SZ, 4096);

	T_EXPECT(r >= 4096, "F_SETPIPE_SZ: %d", r);
	if (r < 4096)
		return false;
	r = (int)weft_write(p[1], page, sizeof(page), io_dl());
	T_EXPECT_INT(r, ==, 4096);
	return r == 4096;
}

/*
 * A rig: one blocking operation of each kind, the fds it waits on, and a
 * check that it left them as it found them.
 */
enum op_kind {
	OP_READ,
	OP_READV,
	OP_RECV,
	OP_RECVMSG,
	OP_POLL,
	OP_READ_FULL,
	OP_SPLICE,
	OP_ACCEPT,
	OP_WRITE,
	OP_DIAL,
	OP_COUNT,
};

static const char *const op_names[OP_COUNT] = {
	"read",	     "readv",  "recv",	 "recvmsg", "poll",
	"read_full", "splice", "accept", "write",   "dial",
};

struct rig {
	enum op_kind kind;
	int src[2]; /* the fds read from ([0]) and written to ([1]) */
	int dst[2]; /* splice: the socketpair spliced into ([0]) */
	int lfd;    /* accept, dial: the listener */
	int port;
	int held[8]; /* dial: connections filling the backlog */
	int nheld;
	int64_t deadline;
	size_t done; /* read_full */
	int64_t returned_at;
	char buf[64];
};

static bool
rig_setup(struct rig *rg, enum op_kind kind)
{
	struct weft_listen_opts o;
	int r = 0;

	memset(rg, 0, sizeof(*rg));
	rg->kind = kind;
	rg->src[0] = rg->src[1] = rg->dst[0] = rg->dst[1] = rg->lfd = -1;
	switch (kind) {
	case OP_RECV:
	case OP_RECVMSG:
		return io_socketpair(rg->src);
	case OP_SPLICE:
		return io_pipe(rg->src) && io_socketpair(rg->dst);
	case OP_WRITE:
		return io_pipe(rg->src) && fill_pipe(rg->src);
	case OP_ACCEPT:
	case OP_DIAL:
		memset(&o, 0, sizeof(o));
		o.backlog = 1;
		rg->lfd = weft_tcp_listen("127.0.0.1", 0,
					  kind == OP_DIAL ? &o : NULL);
		T_EXPECT(rg->lfd >= 0, "weft_tcp_listen returned %d", rg->lfd);
		if (rg->lfd < 0)
			return false;
		rg->port = io_local_port(rg->lfd);
		if (kind == OP_ACCEPT)
			return true;
		/* Fill the accept queue: the kernel then drops SYNs. */
		for (rg->nheld = 0; rg->nheld < 8; rg->nheld++) {
			r = weft_tcp_dial("127.0.0.1", rg->port,
					  weft_now() + 100 * WEFT_MSEC);
			if (r < 0)
				break;
			rg->held[rg->nheld] = r;
		}
		T_EXPECT(r == -ETIMEDOUT, "filling the backlog: dial %d", r);
		return r == -ETIMEDOUT;
	default:
		return io_pipe(rg->src);
	}
}

/* Run the rig's operation with its deadline; returns its result. */
static intptr_t
rig_op(struct rig *rg)
{
	struct iovec iov[2] = {{rg->buf, 3}, {rg->buf + 3, 61}};
	struct msghdr m;
	int64_t dl = rg->deadline;
	intptr_t r = -EINVAL;

	switch (rg->kind) {
	case OP_READ:
		r = weft_read(rg->src[0], rg->buf, sizeof(rg->buf), dl);
		break;
	case OP_READV:
		r = weft_readv(rg->src[0], iov, 2, dl);
		break;
	case OP_RECV:
		r = weft_recv(rg->src[0], rg->buf, sizeof(rg->buf), 0, dl);
		break;
	case OP_RECVMSG:
		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = 2;
		r = weft_recvmsg(rg->src[0], &m, 0, dl);
		break;
	case OP_POLL:
		r = weft_poll(rg->src[0], POLLIN, dl);
		break;
	case OP_READ_FULL:
		rg->done = 999;
		r = weft_read_full(rg->src[0], rg->buf, 8, &rg->done, dl);
		break;
	case OP_SPLICE:
		r = weft_splice(rg->src[0], -1, rg->dst[0], -1, 64, 0, dl);
		break;
	case OP_ACCEPT:
		r = weft_accept(rg->lfd, NULL, NULL, SOCK_CLOEXEC, dl);
		if (r >= 0)
			close((int)r);
		break;
	case OP_WRITE:
		r = weft_write(rg->src[1], rg->buf, sizeof(rg->buf), dl);
		break;
	case OP_DIAL:
		r = weft_tcp_dial("127.0.0.1", rg->port, dl);
		if (r >= 0)
			close((int)r);
		break;
	case OP_COUNT:
		break;
	}
	rg->returned_at = weft_now();
	return r;
}

static void *
rig_task(void *arg)
{
	return t_ptr(rig_op(arg));
}

/*
 * After a timed-out or cancelled op: nothing was consumed or produced,
 * and the fds work.
 */
static void
rig_check_after(struct rig *rg)
{
	const char *what = op_names[rg->kind];
	char buf[4096];
	int c;
	int s;
	int i;

	switch (rg->kind) {
	case OP_ACCEPT:
		c = weft_tcp_dial("127.0.0.1", rg->port, io_dl());
		T_EXPECT(c >= 0, "%s: dial afterwards returned %d", what, c);
		s = weft_accept(rg->lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
		T_EXPECT(s >= 0, "%s: accept afterwards returned %d", what, s);
		if (c >= 0 && s >= 0) {
			T_EXPECT_INT(weft_send(c, "!", 1, 0, io_dl()), ==, 1);
			T_EXPECT_INT(weft_recv(s, buf, 1, 0, io_dl()), ==, 1);
		}
		if (c >= 0)
			close(c);
		if (s >= 0)
			close(s);
		return;
	case OP_DIAL:
		for (i = 0; i < rg->nheld; i++) {
			s = weft_accept(rg->lfd, NULL, NULL, SOCK_CLOEXEC,
					io_dl());
			T_EXPECT(s >= 0, "%s: accept returned %d", what, s);
			if (s >= 0)
				close(s);
		}
		c = weft_tcp_dial("127.0.0.1", rg->port, io_dl());
		T_EXPECT(c >= 0, "%s: dial afterwards returned %d", what, c);
		if (c >= 0)
			close(c);
		return;
	case OP_WRITE:
		/* Exactly the 4096 bytes written before: not one more. */
		T_EXPECT_INT(weft_read_full(rg->src[0], buf, sizeof(buf), NULL,
					    io_dl()),
			     ==, sizeof(buf));
		quiet(rg->src[0]);
		T_EXPECT_INT(weft_write(rg->src[1], after_msg, 8, io_dl()), ==,
			     8);
		break;
	default:
		T_EXPECT_INT(weft_write(rg->src[1], after_msg, 8, io_dl()), ==,
			     8);
		break;
	}
	memset(buf, 0, sizeof(buf));
	T_EXPECT(weft_read_full(rg->src[0], buf, 8, NULL, io_dl()) == 8 &&
			 memcmp(buf, after_msg, 8) == 0,
		 "%s: the next read did not get the next data (\"%.8s\")", what,
		 buf);
	quiet(rg->src[0]);
	if (rg->kind == OP_SPLICE)
		quiet(rg->dst[1]);
}

static void
rig_teardown(struct rig *rg)
{
	int i;

	io_close2(rg->src);
	io_close2(rg->dst);
	if (rg->lfd >= 0)
		close(rg->lfd);
	for (i = 0; i < rg->nheld; i++)
		close(rg->held[i]);
	rg->lfd = -1;
	rg->nheld = 0;
}

/*
 * deadline
 */

static void *
deadline_main(void *arg)
{
	struct rig rg;
	int64_t late;
	intptr_t r;
	int k;

	for (k = 0; k < OP_COUNT; k++) {
		if (!rig_setup(&rg, (enum op_kind)k)) {
			rig_teardown(&rg);
			continue;
		}
		rg.deadline = weft_now() + 30 * WEFT_MSEC;
		r = rig_op(&rg);
		late = rg.returned_at - rg.deadline;
		T_EXPECT(r == -ETIMEDOUT, "%s: returned %ld, not -ETIMEDOUT",
			 op_names[k], (long)r);
		T_EXPECT(late >= 0, "%s: returned %" PRId64 " ns early",
			 op_names[k], -late);
		T_EXPECT(late < io_late_ns(),
			 "%s: returned %" PRId64 " ns late", op_names[k], late);
		if (k == OP_READ_FULL)
			T_EXPECT_INT(rg.done, ==, 0);
		rig_check_after(&rg);
		rig_teardown(&rg);
	}
	return NULL;
}

START_TEST(deadline_fires_while_an_op_waits_and_loses_nothing)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(deadline_main, NULL, IO_WORKERS(_i));
}
END_TEST

static void *
past_deadline_main(void *arg)
{
	static const int64_t past[] = {0, 1, -2};
	struct rig rg;
	int64_t t0;
	int64_t dl;
	intptr_t r;
	int i;

	if (!rig_setup(&rg, OP_READ))
		return NULL;
	for (i = 0; i < 3; i++) {
		t0 = weft_now();
		dl = past[i] == -2 ? t0 - WEFT_SEC : past[i];
		rg.deadline = dl;
		r = rig_op(&rg);
		T_EXPECT(r == -ETIMEDOUT, "deadline %" PRId64 ": %ld", dl,
			 (long)r);
		T_EXPECT(rg.returned_at - t0 < io_late_ns(),
			 "a past deadline took %" PRId64 " ns",
			 rg.returned_at - t0);
	}
	rig_check_after(&rg);
	rig_teardown(&rg);
	return NULL;
}

START_TEST(past_deadline_returns_etimedout_at_once)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(past_deadline_main, NULL, 1);
}
END_TEST

/* Writes `after_msg` to fd `*arg` after sleeping 60 ms. */
static void *
late_writer(void *arg)
{
	T_EXPECT_INT(weft_sleep(60 * WEFT_MSEC), ==, 0);
	T_EXPECT_INT(weft_write(*(int *)arg, after_msg, 8, io_dl()), ==, 8);
	return NULL;
}

static void *
stale_main(void *arg)
{
	struct weft_task *t;
	char buf[16];
	int p[2];
	int i;

	if (!io_pipe(p))
		return NULL;
	for (i = 0; i < 5 && !t_failed(); i++) {
		/* Data there already: the 20 ms deadline is not needed... */
		T_EXPECT_INT(weft_write(p[1], "x", 1, io_dl()), ==, 1);
		T_EXPECT_INT(weft_read(p[0], buf, sizeof(buf),
				       weft_now() + 20 * WEFT_MSEC),
			     ==, 1);
		/* ...and must not hit the next call, which waits past it. */
		t = io_spawn(late_writer, &p[1]);
		T_EXPECT_INT(
			weft_read(p[0], buf, sizeof(buf), WEFT_DEADLINE_NONE),
			==, 8);
		io_join(t);
		/* The same when the data arrives while the read waits. */
		t = io_spawn(late_writer, &p[1]);
		T_EXPECT_INT(weft_read(p[0], buf, sizeof(buf),
				       weft_now() + 10 * WEFT_SEC),
			     ==, 8);
		io_join(t);
		t = io_spawn(late_writer, &p[1]);
		T_EXPECT_INT(
			weft_read(p[0], buf, sizeof(buf), WEFT_DEADLINE_NONE),
			==, 8);
		io_join(t);
	}
	io_close2(p);
	return NULL;
}

START_TEST(unused_deadline_does_not_hit_the_next_call)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(stale_main, NULL, 2);
}
END_TEST

/*
 * I/O timers linger in the heap between operations (io_uring backend) and
 * are only updated when the next deadline is later.  A later deadline must
 * not fire at the old position; an earlier one must not wait for it; a
 * task that exits with a lingering timer leaves nothing behind.
 */
static void *
moved_deadline_main(void *arg)
{
	int64_t dl, now;
	char buf[8];
	int p[2];

	(void)arg;
	if (!io_pipe(p))
		return NULL;
	/* Leaves a timer due in 20 ms. */
	T_EXPECT_INT(weft_write(p[1], "x", 1, io_dl()), ==, 1);
	T_EXPECT_INT(weft_read(p[0], buf, 1, weft_now() + 20 * WEFT_MSEC), ==,
		     1);
	/* Pushed back to 80 ms: the old position passes first. */
	dl = weft_now() + 80 * WEFT_MSEC;
	T_EXPECT_INT(weft_read(p[0], buf, 1, dl), ==, -ETIMEDOUT);
	now = weft_now();
	T_EXPECT(now >= dl, "pushed-back deadline fired %lld ns early",
		 (long long)(dl - now));
	T_EXPECT(now < dl + io_late_ns(), "pushed-back deadline %lld ns late",
		 (long long)(now - dl));
	/* A timer left due in 5 s, then a 30 ms deadline: fires first. */
	T_EXPECT_INT(weft_write(p[1], "y", 1, io_dl()), ==, 1);
	T_EXPECT_INT(weft_read(p[0], buf, 1, weft_now() + 5 * WEFT_SEC), ==,
		     1);
	dl = weft_now() + 30 * WEFT_MSEC;
	T_EXPECT_INT(weft_read(p[0], buf, 1, dl), ==, -ETIMEDOUT);
	now = weft_now();
	T_EXPECT(now >= dl, "earlier deadline fired %lld ns early",
		 (long long)(dl - now));
	T_EXPECT(now < dl + 4 * WEFT_SEC,
		 "earlier deadline waited for the lingering timer (%lld ns)",
		 (long long)(now - dl));
	/* Exit with a timer due in 10 s still in a heap. */
	T_EXPECT_INT(weft_write(p[1], "z", 1, io_dl()), ==, 1);
	T_EXPECT_INT(weft_read(p[0], buf, 1, weft_now() + 10 * WEFT_SEC), ==,
		     1);
	io_close2(p);
	return NULL;
}

static void *
moved_deadline_outer(void *arg)
{
	struct weft_task *t[8];
	int64_t t0 = weft_now();

	(void)arg;
	for (int i = 0; i < 8; i++)
		t[i] = io_spawn(moved_deadline_main, NULL);
	for (int i = 0; i < 8; i++)
		io_join(t[i]);
	/* The run must not wait for the 10 s timers the tasks left. */
	T_EXPECT(weft_now() - t0 < 5 * WEFT_SEC,
		 "the run waited for the lingering timers");
	return NULL;
}

START_TEST(moved_deadlines_fire_at_the_new_time)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(moved_deadline_outer, NULL, IO_WORKERS(_i));
}
END_TEST

/* Many reads with random deadlines at once: none returns early. */
struct timeout_one {
	uint64_t seed;
	int early;
	int wrong;
	int late;
};

static void *
timeout_one(void *arg)
{
	struct timeout_one *to = arg;
	int64_t dl;
	int64_t now;
	char buf[8];
	ssize_t r;
	int p[2];
	int i;

	if (!io_pipe(p))
		return NULL;
	for (i = 0; i < 3; i++) {
		dl = weft_now() + 1 * WEFT_MSEC +
		     (int64_t)(t_rand(&to->seed) % (30 * WEFT_MSEC));
		r = weft_read(p[0], buf, sizeof(buf), dl);
		now = weft_now();
		if (r != -ETIMEDOUT)
			to->wrong++;
		if (now < dl)
			to->early++;
		if (now > dl + io_late_ns())
			to->late++;
	}
	io_close2(p);
	return NULL;
}

static void *
many_timeouts_main(void *arg)
{
	struct timeout_one *to = arg;
	struct weft_task *t[MANY_TIMEOUTS];
	int i;

	for (i = 0; i < MANY_TIMEOUTS; i++) {
		to[i].seed = 0x7130u + (uint64_t)i;
		t[i] = io_spawn(timeout_one, &to[i]);
	}
	for (i = 0; i < MANY_TIMEOUTS; i++)
		io_join(t[i]);
	return NULL;
}

START_TEST(many_concurrent_deadlines_none_early)
{
	struct timeout_one *to = calloc(MANY_TIMEOUTS, sizeof(*to));
	int early = 0;
	int wrong = 0;
	int late = 0;
	int i;

	IO_SKIP_UNLESS_BACKEND();
	ck_assert_ptr_nonnull(to);
	IO_RUN(many_timeouts_main, to, 2);
	for (i = 0; i < MANY_TIMEOUTS; i++) {
		early += to[i].early;
		wrong += to[i].wrong;
		late += to[i].late;
	}
	ck_assert_msg(wrong == 0, "%d reads did not time out", wrong);
	ck_assert_msg(early == 0, "%d reads timed out early", early);
	ck_assert_msg(late == 0, "%d reads timed out > 2 s late", late);
	free(to);
}
END_TEST

static void *
full_deadline_main(void *arg)
{
	uint8_t *buf = malloc(10000);
	size_t done = 999;
	int p[2] = {-1, -1};
	ssize_t r;

	T_EXPECT(buf != NULL, "malloc failed");
	if (!buf || !io_pipe(p))
		goto out;
	/* read_full: part of the data, then the deadline. */
	io_fill(buf, 10, 31, 0);
	T_EXPECT_INT(weft_write(p[1], buf, 10, io_dl()), ==, 10);
	memset(buf, 0, 100);
	r = weft_read_full(p[0], buf, 100, &done, weft_now() + 30 * WEFT_MSEC);
	T_EXPECT_INT(r, ==, -ETIMEDOUT);
	T_EXPECT_INT(done, ==, 10);
	T_EXPECT_INT(io_mismatch(buf, 10, 31, 0), ==, -1);

	/* write_full: what fits, then the deadline; done says how much. */
	T_EXPECT(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 4096, "F_SETPIPE_SZ");
	io_fill(buf, 10000, 32, 0);
	done = 999;
	r = weft_write_full(p[1], buf, 10000, &done,
			    weft_now() + 30 * WEFT_MSEC);
	T_EXPECT_INT(r, ==, -ETIMEDOUT);
	T_EXPECT(done > 0 && done < 10000, "write_full done = %zu", done);
	memset(buf, 0, 10000);
	if (done > 0 && done < 10000) {
		T_EXPECT_INT(weft_read_full(p[0], buf, done, NULL, io_dl()), ==,
			     done);
		T_EXPECT_INT(io_mismatch(buf, done, 32, 0), ==, -1);
		quiet(p[0]);
	}
out:
	io_close2(p);
	free(buf);
	return NULL;
}

START_TEST(read_full_and_write_full_report_done_at_the_deadline)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(full_deadline_main, NULL, 2);
}
END_TEST

/*
 * cancel
 */

static void *
cancel_main(void *arg)
{
	struct weft_task *t;
	struct rig rg;
	intptr_t r;
	int k;

	for (k = 0; k < OP_COUNT; k++) {
		if (!rig_setup(&rg, (enum op_kind)k)) {
			rig_teardown(&rg);
			continue;
		}
		rg.deadline = WEFT_DEADLINE_NONE;
		t = io_spawn(rig_task, &rg);
		if (!t) {
			rig_teardown(&rg);
			continue;
		}
		IO_WAIT_PARKED(t);
		T_EXPECT_INT(weft_cancel(t), ==, 0);
		r = io_join(t);
		T_EXPECT(r == -ECANCELED, "%s: returned %ld, not -ECANCELED",
			 op_names[k], (long)r);
		if (k == OP_READ_FULL)
			T_EXPECT_INT(rg.done, ==, 0);
		rig_check_after(&rg);
		rig_teardown(&rg);
	}
	return NULL;
}

START_TEST(cancel_of_a_blocked_op_returns_ecanceled_loses_nothing)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(cancel_main, NULL, IO_WORKERS(_i));
}
END_TEST

/* weft_cancel() from a plain pthread: a read and an accept. */
struct pcancel {
	struct weft_task *t[2];
	atomic_int go;
	atomic_int done;
	int r[2];
};

static void *
pcancel_thread(void *arg)
{
	struct pcancel *pc = arg;

	if (!T_WAIT_THREAD(atomic_load(&pc->go), "the go signal"))
		return NULL;
	pc->r[0] = weft_cancel(pc->t[0]);
	pc->r[1] = weft_cancel(pc->t[1]);
	atomic_store(&pc->done, 1);
	return NULL;
}

static void *
pcancel_main(void *arg)
{
	struct pcancel *pc = arg;
	struct rig rg[2];
	pthread_t th;
	int i;

	if (!rig_setup(&rg[0], OP_READ) || !rig_setup(&rg[1], OP_ACCEPT))
		goto out;
	for (i = 0; i < 2; i++) {
		rg[i].deadline = WEFT_DEADLINE_NONE;
		pc->t[i] = io_spawn(rig_task, &rg[i]);
	}
	if (!pc->t[0] || !pc->t[1])
		goto out;
	IO_WAIT_PARKED(pc->t[0]);
	IO_WAIT_PARKED(pc->t[1]);
	T_EXPECT_INT(pthread_create(&th, NULL, pcancel_thread, pc), ==, 0);
	atomic_store(&pc->go, 1);
	for (i = 0; i < 2; i++)
		T_EXPECT_INT(io_join(pc->t[i]), ==, -ECANCELED);
	T_WAIT(atomic_load(&pc->done), "the cancelling thread");
	pthread_join(th, NULL);
	T_EXPECT_INT(pc->r[0], ==, 0);
	T_EXPECT_INT(pc->r[1], ==, 0);
	for (i = 0; i < 2; i++)
		rig_check_after(&rg[i]);
out:
	rig_teardown(&rg[0]);
	rig_teardown(&rg[1]);
	return NULL;
}

START_TEST(cancel_from_a_plain_thread)
{
	struct pcancel pc;

	IO_SKIP_UNLESS_BACKEND();
	memset(&pc, 0, sizeof(pc));
	IO_RUN(pcancel_main, &pc, IO_WORKERS(_i));
}
END_TEST

/* read_full cancelled after part of the data: done reports it. */
struct part {
	int fd;
	size_t done;
	uint8_t buf[100];
};

static void *
part_reader(void *arg)
{
	struct part *pt = arg;

	pt->done = 999;
	return t_ptr(weft_read_full(pt->fd, pt->buf, sizeof(pt->buf), &pt->done,
				    WEFT_DEADLINE_NONE));
}

static int
unread_bytes(int fd)
{
	int n = -1;

	ioctl(fd, FIONREAD, &n);
	return n;
}

static void *
part_main(void *arg)
{
	struct weft_task *t;
	struct part pt;
	uint8_t msg[10];
	int p[2];

	if (!io_pipe(p))
		return NULL;
	memset(&pt, 0, sizeof(pt));
	pt.fd = p[0];
	t = io_spawn(part_reader, &pt);
	if (t) {
		IO_WAIT_PARKED(t);
		io_fill(msg, sizeof(msg), 33, 0);
		T_EXPECT_INT(weft_write(p[1], msg, sizeof(msg), io_dl()), ==,
			     sizeof(msg));
		/* Consumed, and waiting for the rest. */
		T_WAIT(unread_bytes(p[0]) == 0 &&
			       weft_task_state(t) == WEFT_SUSPENDED,
		       "the reader to take the bytes");
		T_EXPECT_INT(weft_cancel(t), ==, 0);
		T_EXPECT_INT(io_join(t), ==, -ECANCELED);
		T_EXPECT_INT(pt.done, ==, sizeof(msg));
		T_EXPECT_INT(io_mismatch(pt.buf, sizeof(msg), 33, 0), ==, -1);
	}
	io_close2(p);
	return NULL;
}

START_TEST(cancel_of_read_full_reports_done)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(part_main, NULL, 2);
}
END_TEST

/*
 * Cancellation racing a completion.  The reader reads twice; the data (16
 * bytes) may be taken by the first read or left in the fd, but never lost:
 * what the reads got plus what is left equals what was written.
 */
struct race {
	int r_fd;
	int w_fd;
	bool sock;
	atomic_int started;
	ssize_t r1;
	ssize_t r2;
	uint8_t buf1[64];
	uint8_t buf2[64];
};

static ssize_t
race_read(struct race *rc, uint8_t *buf)
{
	if (rc->sock)
		return weft_recv(rc->r_fd, buf, 64, 0, WEFT_DEADLINE_NONE);
	return weft_read(rc->r_fd, buf, 64, WEFT_DEADLINE_NONE);
}

static void *
race_reader(void *arg)
{
	struct race *rc = arg;

	atomic_store(&rc->started, 1);
	rc->r1 = race_read(rc, rc->buf1);
	rc->r2 = race_read(rc, rc->buf2);
	return NULL;
}

static void *
race_writer(void *arg)
{
	struct race *rc = arg;
	uint8_t msg[16];

	io_fill(msg, sizeof(msg), 41, 0);
	T_EXPECT_INT(weft_write(rc->w_fd, msg, sizeof(msg), io_dl()), ==,
		     sizeof(msg));
	return NULL;
}

/*
 * A writer that waits, spinning on its own worker, for the go signal: the
 * write and the cancel then really run at the same time.
 */
struct racer_gate {
	struct race *rc;
	atomic_int ready;
	atomic_int go;
	unsigned delay;
};

static void *
gated_writer(void *arg)
{
	struct racer_gate *g = arg;
	int64_t end = weft_now() + t_stall_ns();
	unsigned i;

	atomic_store(&g->ready, 1);
	while (!atomic_load(&g->go) && weft_now() < end)
		t_cpu_relax();
	for (i = 0; i < g->delay; i++)
		t_cpu_relax();
	return race_writer(g->rc);
}

struct race_stats {
	int got_data;
	int cancelled;
};

static void
race_once(int i, uint64_t *seed, struct race_stats *st)
{
	struct racer_gate g;
	struct weft_task *r;
	struct weft_task *w = NULL;
	struct race rc;
	uint8_t rest[64];
	size_t got = 0;
	int64_t t0;
	int fds[2];
	int mode = (i / 2) % 3;
	unsigned delay;
	ssize_t n;

	memset(&rc, 0, sizeof(rc));
	rc.sock = i % 2;
	if (!(rc.sock ? io_socketpair(fds) : io_pipe(fds)))
		return;
	rc.r_fd = fds[0];
	rc.w_fd = fds[1];
	r = io_spawn(race_reader, &rc);
	if (!r) {
		io_close2(fds);
		return;
	}
	switch (mode) {
	case 0: /* parked; cancel, then the data */
		IO_WAIT_PARKED(r);
		weft_cancel(r);
		race_writer(&rc);
		break;
	default: /* parked (1) or maybe not yet (2); data and cancel race */
		if (mode == 1)
			IO_WAIT_PARKED(r);
		/* A task cancelled before it ever ran would not read at all. */
		while (!atomic_load(&rc.started))
			weft_yield();
		memset(&g, 0, sizeof(g));
		g.rc = &rc;
		g.delay = (unsigned)(t_rand(seed) % 2000);
		delay = (unsigned)(t_rand(seed) % 2000);
		w = io_spawn(gated_writer, &g);
		if (!w)
			break;
		/* Spin (another worker takes the writer), then yield. */
		t0 = weft_now();
		while (!atomic_load(&g.ready)) {
			if (weft_now() - t0 > 10 * WEFT_MSEC)
				weft_yield();
			else
				t_cpu_relax();
		}
		atomic_store(&g.go, 1);
		while (delay--)
			t_cpu_relax();
		weft_cancel(r);
		break;
	}
	io_join(r);
	if (w)
		io_join(w);
	T_EXPECT(rc.r1 == 16 || rc.r1 == -ECANCELED,
		 "iteration %d: first read returned %zd", i, rc.r1);
	T_EXPECT(rc.r2 == -ECANCELED,
		 "iteration %d: read after the cancel returned %zd", i, rc.r2);
	if (rc.r1 == 16) {
		st->got_data++;
		got = 16;
		T_EXPECT_INT(io_mismatch(rc.buf1, 16, 41, 0), ==, -1);
	} else {
		st->cancelled++;
	}
	/* What is left, up to EOF. */
	close(fds[1]);
	fds[1] = -1;
	n = weft_read_full(fds[0], rest, sizeof(rest), NULL, io_dl());
	T_EXPECT(n >= 0 && got + (size_t)n == 16,
		 "iteration %d (mode %d, %s): reads got %zu, %zd left: "
		 "bytes lost or duplicated",
		 i, mode, rc.sock ? "socket" : "pipe", got, n);
	if (n > 0)
		T_EXPECT_INT(io_mismatch(rest, (size_t)n, 41, got), ==, -1);
	io_close2(fds);
}

static void *
race_main(void *arg)
{
	struct race_stats *st = arg;
	uint64_t seed = 0x4ace;
	int i;

	for (i = 0; i < RACE_ITERS && !t_failed(); i++)
		race_once(i, &seed, st);
	return NULL;
}

START_TEST(cancel_racing_a_completion_loses_no_data)
{
	struct race_stats st;

	IO_SKIP_UNLESS_BACKEND();
	memset(&st, 0, sizeof(st));
	IO_RUN(race_main, &st, 2);
	ck_assert_int_eq(st.got_data + st.cancelled, RACE_ITERS);
	fprintf(stderr,
		"cancel race (%s): %d reads got the data, %d were "
		"cancelled\n",
		IO_BACKEND(_i), st.got_data, st.cancelled);
}
END_TEST

/* A task cancelled before its I/O: every call fails, touching nothing. */
struct gated {
	int p[2];
	int lfd;
	int port;
	atomic_int started;
	atomic_int go;
	int r_read;
	int r_write;
	int r_poll;
	int r_accept;
	int r_dial;
	int r_open;
	int r_sleep;
	int r_close;
};

static void *
gated_io(void *arg)
{
	struct gated *g = arg;
	char buf[8];

	atomic_store(&g->started, 1);
	while (!atomic_load(&g->go))
		weft_yield();
	g->r_read = (int)weft_read(g->p[0], buf, sizeof(buf), io_dl());
	g->r_write = (int)weft_write(g->p[1], "x", 1, io_dl());
	g->r_poll = weft_poll(g->p[0], POLLIN, io_dl());
	g->r_accept = weft_accept(g->lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
	if (g->r_accept >= 0)
		close(g->r_accept);
	g->r_dial = weft_tcp_dial("127.0.0.1", g->port, io_dl());
	if (g->r_dial >= 0)
		close(g->r_dial);
	g->r_open =
		weft_openat(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0, io_dl());
	if (g->r_open >= 0)
		close(g->r_open);
	g->r_sleep = weft_sleep(0);
	/* Whatever it returns, the fd is closed. */
	g->r_close = weft_close(g->p[1], io_dl());
	return NULL;
}

static void *
gated_main(void *arg)
{
	struct gated *g = arg;
	struct weft_task *t;
	char buf[8];
	int c;
	int s;

	if (!io_pipe(g->p))
		return NULL;
	g->lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	T_EXPECT(g->lfd >= 0, "weft_tcp_listen returned %d", g->lfd);
	g->port = io_local_port(g->lfd);
	/* Everything would succeed at once: data, room, a connection. */
	T_EXPECT_INT(weft_write(g->p[1], "data", 4, io_dl()), ==, 4);
	c = weft_tcp_dial("127.0.0.1", g->port, io_dl());
	T_EXPECT(c >= 0, "dial returned %d", c);
	t = io_spawn(gated_io, g);
	if (t) {
		T_WAIT(atomic_load(&g->started), "the task to start");
		T_EXPECT_INT(weft_cancel(t), ==, 0);
		atomic_store(&g->go, 1);
		io_join(t);
	}
	/* The data is all there, the 'x' is not, and the write end is gone. */
	memset(buf, 0, sizeof(buf));
	T_EXPECT_INT(weft_read(g->p[0], buf, sizeof(buf), io_dl()), ==, 4);
	T_EXPECT(memcmp(buf, "data", 4) == 0, "read \"%.4s\"", buf);
	T_EXPECT_INT(weft_read(g->p[0], buf, sizeof(buf), io_dl()), ==, 0);
	/* The connection is still queued. */
	s = weft_accept(g->lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
	T_EXPECT(s >= 0, "accept returned %d", s);
	if (s >= 0)
		close(s);
	if (c >= 0)
		close(c);
	close(g->p[0]);
	close(g->lfd);
	return NULL;
}

START_TEST(cancelled_task_io_fails_without_side_effects)
{
	struct gated g;

	IO_SKIP_UNLESS_BACKEND();
	memset(&g, 0, sizeof(g));
	IO_RUN(gated_main, &g, 2);
	ck_assert_int_eq(g.r_read, -ECANCELED);
	ck_assert_int_eq(g.r_write, -ECANCELED);
	ck_assert_int_eq(g.r_poll, -ECANCELED);
	ck_assert_int_eq(g.r_accept, -ECANCELED);
	ck_assert_int_eq(g.r_dial, -ECANCELED);
	ck_assert_int_eq(g.r_open, -ECANCELED);
	ck_assert_int_eq(g.r_sleep, -ECANCELED);
	ck_assert_msg(g.r_close == 0 || g.r_close == -ECANCELED,
		      "weft_close in a cancelled task returned %d", g.r_close);
}
END_TEST

/*
 * migration
 */

/*
 * The reader parks in weft_read on its worker A while a spinner that
 * yields every 20 us keeps A busy.  To keep the spinner on A, a blocker
 * first occupies the other worker B (it yields while it finds itself on
 * A, and spins without yielding once on B), so that nobody can steal it.
 * The spinner writes the data once the reader is parked (with write(2),
 * so that it does not park itself); when it sees the reader runnable
 * again, it lets the blocker go and holds A for 5 ms: B, free now, should
 * take the reader meanwhile.  A round counts if the spinner held the
 * reader's worker; over the rounds the reader must at some point resume
 * on another worker than the one it submitted on, and always with its
 * data.
 */
struct mig {
	int p[2];
	int round;
	struct weft_task *reader;
	atomic_int reader_w; /* the reader's worker, as it last saw it */
	atomic_int stop;
	atomic_int armed;
	atomic_int release; /* the blocker may go */
	atomic_int blk_w;   /* the blocker's worker, when it settled */
	atomic_int hold_w;  /* the spinner's worker when it held */
	_Atomic int64_t written_at;
	int moved;
	int exercised;
	int rounds_done;
	int64_t worst_ns; /* longest write-to-resume latency */
	int64_t total_ns;
};

static void *
mig_blocker(void *arg)
{
	struct mig *m = arg;
	int64_t end = weft_now() + t_stall_ns();
	int w;

	while (!atomic_load(&m->release) && weft_now() < end) {
		w = weft_worker_id();
		if (w == atomic_load(&m->reader_w)) {
			atomic_store(&m->blk_w, -1);
			weft_yield();
		} else {
			atomic_store(&m->blk_w, w);
			t_cpu_relax();
		}
	}
	return NULL;
}

static void *
mig_spinner(void *arg)
{
	struct mig *m = arg;
	int64_t end = weft_now() + t_stall_ns();
	bool written = false;
	bool held = false;
	uint8_t msg[8];

	io_fill(msg, sizeof(msg), 50 + (uint64_t)m->round, 0);
	while (!atomic_load(&m->stop) && weft_now() < end) {
		if (!written && atomic_load(&m->armed) &&
		    weft_task_state(m->reader) == WEFT_SUSPENDED) {
			atomic_store(&m->written_at, weft_now());
			T_EXPECT_INT(write(m->p[1], msg, sizeof(msg)), ==,
				     sizeof(msg));
			written = true;
		}
		if (written && !held &&
		    weft_task_state(m->reader) == WEFT_RUNNING) {
			/* Free the other worker, and hold this one. */
			atomic_store(&m->hold_w, weft_worker_id());
			atomic_store(&m->release, 1);
			t_burn(5 * WEFT_MSEC);
			held = true;
		} else {
			t_burn(20 * WEFT_USEC);
		}
		weft_yield();
	}
	return NULL;
}

/* One round; false if the blocker never settled on the other worker. */
static bool
mig_round(struct mig *m)
{
	struct weft_task *blk;
	struct weft_task *sp = NULL;
	int64_t t0 = weft_now();
	int64_t lat;
	uint8_t buf[8];
	bool settled = false;
	ssize_t n;
	int w0;
	int w1;

	atomic_store(&m->stop, 0);
	atomic_store(&m->armed, 0);
	atomic_store(&m->release, 0);
	atomic_store(&m->blk_w, -1);
	atomic_store(&m->hold_w, -2);
	atomic_store(&m->reader_w, weft_worker_id());
	blk = io_spawn(mig_blocker, m);
	if (!blk)
		return false;
	while (weft_now() - t0 < WEFT_SEC) {
		w0 = weft_worker_id();
		atomic_store(&m->reader_w, w0);
		if (atomic_load(&m->blk_w) >= 0 &&
		    atomic_load(&m->blk_w) != w0) {
			settled = true;
			break;
		}
		weft_yield();
	}
	if (settled)
		sp = io_spawn(mig_spinner, m);
	if (sp) {
		w0 = weft_worker_id();
		atomic_store(&m->armed, 1);
		n = weft_read(m->p[0], buf, sizeof(buf), io_dl());
		lat = weft_now() - atomic_load(&m->written_at);
		w1 = weft_worker_id();
		T_EXPECT_INT(n, ==, sizeof(buf));
		T_EXPECT_INT(io_mismatch(buf, sizeof(buf),
					 50 + (uint64_t)m->round, 0),
			     ==, -1);
		if (atomic_load(&m->hold_w) == w0) {
			m->exercised++;
			if (w0 != w1)
				m->moved++;
			if (lat > m->worst_ns)
				m->worst_ns = lat;
			m->total_ns += lat;
		}
		atomic_store(&m->stop, 1);
		io_join(sp);
	}
	atomic_store(&m->release, 1);
	io_join(blk);
	return settled;
}

static void *
mig_main(void *arg)
{
	struct mig *m = arg;
	int64_t start = weft_now();

	if (!io_pipe(m->p))
		return NULL;
	m->reader = weft_self();
	for (m->round = 0; m->round < MIG_ITERS && !t_failed(); m->round++) {
		mig_round(m);
		m->rounds_done++;
		/* Enough evidence, or enough time: stop early. */
		if (m->moved >= 10 ||
		    (m->moved >= 1 && weft_now() - start > 5 * WEFT_SEC) ||
		    weft_now() - start > t_stall_ns())
			break;
	}
	io_close2(m->p);
	return NULL;
}

START_TEST(read_in_flight_resumes_on_another_worker)
{
	struct mig m;

	IO_SKIP_UNLESS_BACKEND();
	memset(&m, 0, sizeof(m));
	IO_RUN(mig_main, &m, 2);
	fprintf(stderr,
		"migration (%s): the reader moved in %d of %d "
		"rounds (%d run); data to resume: mean %.2f ms, worst "
		"%.2f ms\n",
		IO_BACKEND(_i), m.moved, m.exercised, m.rounds_done,
		m.exercised ? m.total_ns / 1e6 / m.exercised : 0.0,
		m.worst_ns / 1e6);
	ck_assert_msg(m.exercised > 0,
		      "in %d rounds the spinner never shared the reader's "
		      "worker: the case was not exercised",
		      m.rounds_done);
	ck_assert_msg(m.moved >= 1,
		      "in %d rounds the reader never resumed on another "
		      "worker",
		      m.exercised);
}
END_TEST

/* Pairs of tasks ping-ponging numbered messages over socketpairs. */
struct pp {
	int sv[2];
	int idx;
	int bad;
	int moves;
};

struct pp_msg {
	uint32_t pair;
	uint32_t round;
	uint8_t fill[24];
};

static bool
pp_check(struct pp *pp, const struct pp_msg *m, uint32_t round)
{
	uint8_t want[24];

	io_fill(want, sizeof(want), pp->idx, round);
	return m->pair == (uint32_t)pp->idx && m->round == round &&
	       memcmp(m->fill, want, sizeof(want)) == 0;
}

static void
pp_make(struct pp *pp, struct pp_msg *m, uint32_t round)
{
	m->pair = (uint32_t)pp->idx;
	m->round = round;
	io_fill(m->fill, sizeof(m->fill), pp->idx, round);
}

static void *
pp_ping(void *arg)
{
	struct pp *pp = arg;
	struct pp_msg m;
	int w = weft_worker_id();
	uint32_t r;

	for (r = 0; r < PP_ROUNDS; r += 2) {
		pp_make(pp, &m, r);
		if (weft_write_full(pp->sv[0], &m, sizeof(m), NULL, io_dl()) !=
			    sizeof(m) ||
		    weft_read_full(pp->sv[0], &m, sizeof(m), NULL, io_dl()) !=
			    sizeof(m) ||
		    !pp_check(pp, &m, r + 1)) {
			pp->bad++;
			break;
		}
		if (weft_worker_id() != w) {
			pp->moves++;
			w = weft_worker_id();
		}
	}
	return NULL;
}

static void *
pp_pong(void *arg)
{
	struct pp *pp = arg;
	struct pp_msg m;
	uint32_t r;

	for (r = 0; r < PP_ROUNDS; r += 2) {
		if (weft_read_full(pp->sv[1], &m, sizeof(m), NULL, io_dl()) !=
			    sizeof(m) ||
		    !pp_check(pp, &m, r)) {
			pp->bad++;
			break;
		}
		pp_make(pp, &m, r + 1);
		if (weft_write_full(pp->sv[1], &m, sizeof(m), NULL, io_dl()) !=
		    sizeof(m)) {
			pp->bad++;
			break;
		}
	}
	return NULL;
}

static void *
pp_main(void *arg)
{
	struct pp *pp = arg;
	struct weft_task *t[2 * PP_PAIRS];
	int i;

	for (i = 0; i < PP_PAIRS; i++) {
		pp[i].idx = i;
		pp[i].sv[0] = pp[i].sv[1] = -1;
		t[2 * i] = t[2 * i + 1] = NULL;
		if (!io_socketpair(pp[i].sv))
			continue;
		t[2 * i] = io_spawn(pp_pong, &pp[i]);
		t[2 * i + 1] = io_spawn(pp_ping, &pp[i]);
	}
	for (i = 0; i < 2 * PP_PAIRS; i++)
		if (t[i])
			io_join(t[i]);
	for (i = 0; i < PP_PAIRS; i++)
		io_close2(pp[i].sv);
	return NULL;
}

START_TEST(ping_pong_pairs_keep_every_message)
{
	struct pp *pp = calloc(PP_PAIRS, sizeof(*pp));
	int workers = IO_WORKERS(_i);
	int bad = 0;
	int moves = 0;
	int i;

	IO_SKIP_UNLESS_BACKEND();
	ck_assert_ptr_nonnull(pp);
	IO_RUN(pp_main, pp, workers);
	for (i = 0; i < PP_PAIRS; i++) {
		bad += pp[i].bad;
		moves += pp[i].moves;
	}
	ck_assert_msg(bad == 0, "%d pairs saw a wrong or missing message", bad);
	if (workers == 1)
		ck_assert_int_eq(moves, 0);
	free(pp);
}
END_TEST

/*
 * fairness: one worker, shared with a task that computes and yields every
 * millisecond (scaled, as the bound is, for the sanitizers).  Yielding is
 * all a cooperative task owes: a deadline must still fire, and data must
 * still be noticed, within the generous bound used for deadlines
 * everywhere here (2 s).
 */
struct starve {
	int p[2];
	struct weft_task *reader;
	atomic_int stop;
	atomic_int armed;
	_Atomic int64_t written_at;
	int64_t deadline_late;
	int64_t data_late;
	ssize_t r_deadline;
	ssize_t r_data;
};

static void *
starve_spinner(void *arg)
{
	struct starve *sv = arg;
	int64_t end = weft_now() + 3 * t_stall_ns();
	/* A millisecond, scaled as the bound is (see io_late_ns()). */
	int64_t burn = io_late_ns() / 2000;

	while (!atomic_load(&sv->stop) && weft_now() < end) {
		t_burn(burn);
		weft_yield();
	}
	return NULL;
}

/* A plain thread: writes one byte once the reader is parked. */
static void *
starve_writer(void *arg)
{
	struct starve *sv = arg;

	if (!T_WAIT_THREAD(atomic_load(&sv->armed) &&
				   weft_task_state(sv->reader) ==
					   WEFT_SUSPENDED,
			   "the reader to park"))
		return NULL;
	atomic_store(&sv->written_at, weft_now());
	T_EXPECT_INT(write(sv->p[1], "s", 1), ==, 1);
	return NULL;
}

static void *
starve_main(void *arg)
{
	struct starve *sv = arg;
	struct weft_task *sp;
	pthread_t th;
	int64_t dl;
	char c;
	int r;

	if (!io_pipe(sv->p))
		return NULL;
	sv->reader = weft_self();
	sp = io_spawn(starve_spinner, sv);
	weft_yield();
	dl = weft_now() + 50 * WEFT_MSEC;
	sv->r_deadline = weft_read(sv->p[0], &c, 1, dl);
	sv->deadline_late = weft_now() - dl;
	r = pthread_create(&th, NULL, starve_writer, sv);
	T_EXPECT_INT(r, ==, 0);
	if (r == 0) {
		atomic_store(&sv->armed, 1);
		sv->r_data = weft_read(sv->p[0], &c, 1, io_dl());
		sv->data_late = weft_now() - atomic_load(&sv->written_at);
		pthread_join(th, NULL);
	}
	atomic_store(&sv->stop, 1);
	io_join(sp);
	io_close2(sv->p);
	return NULL;
}

START_TEST(io_is_not_starved_by_a_yielding_task)
{
	struct starve sv;

	IO_SKIP_UNLESS_BACKEND();
	memset(&sv, 0, sizeof(sv));
	IO_RUN(starve_main, &sv, 1);
	ck_assert_int_eq(sv.r_deadline, -ETIMEDOUT);
	ck_assert_msg(sv.deadline_late < io_late_ns(),
		      "the deadline fired %.0f ms late while a task yielded "
		      "every ms",
		      sv.deadline_late / 1e6);
	ck_assert_int_eq(sv.r_data, 1);
	ck_assert_msg(sv.data_late < io_late_ns(),
		      "data was noticed %.0f ms after it arrived while a "
		      "task yielded every ms",
		      sv.data_late / 1e6);
}
END_TEST

static Suite *
io_cancel_suite(void)
{
	Suite *s = suite_create("io/cancel");
	TCase *tc;

	tc = t_tcase(s, "deadline", T_TIMEOUT);
	IO_ADD_W(tc, deadline_fires_while_an_op_waits_and_loses_nothing);
	IO_ADD(tc, past_deadline_returns_etimedout_at_once);
	IO_ADD(tc, unused_deadline_does_not_hit_the_next_call);
	IO_ADD(tc, many_concurrent_deadlines_none_early);
	IO_ADD_W(tc, moved_deadlines_fire_at_the_new_time);
	IO_ADD(tc, read_full_and_write_full_report_done_at_the_deadline);

	tc = t_tcase(s, "cancel", T_TIMEOUT);
	IO_ADD_W(tc, cancel_of_a_blocked_op_returns_ecanceled_loses_nothing);
	IO_ADD_W(tc, cancel_from_a_plain_thread);
	IO_ADD(tc, cancel_of_read_full_reports_done);
	IO_ADD(tc, cancel_racing_a_completion_loses_no_data);
	IO_ADD(tc, cancelled_task_io_fails_without_side_effects);

	tc = t_tcase(s, "fairness", T_TIMEOUT);
	IO_ADD(tc, io_is_not_starved_by_a_yielding_task);

	tc = t_tcase(s, "migration", T_TIMEOUT);
	IO_ADD(tc, read_in_flight_resumes_on_another_worker);
	IO_ADD_W(tc, ping_pong_pairs_keep_every_message);

	return s;
}

int
main(void)
{
	return t_main(io_cancel_suite());
}

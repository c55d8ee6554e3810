/* SPDX-License-Identifier: MIT */
/*
 * weft_serve()'s graceful stop (weft_serve_opts.stop): stop accepting,
 * wait for the connections, cancel them when the serving task is
 * cancelled, never return while a handler still runs.  Every test runs
 * under io_uring and under epoll (io_harness.h), on loopback.
 */
#include "io_harness.h"

#define CONNS 8
#define PROBES 50

struct srv {
	int lfd;
	int port;
	struct weft_future *stop;
	atomic_int started;	/* handlers entered */
	atomic_int ended;	/* handlers about to return */
	atomic_int cancelled;	/* handlers whose recv saw -ECANCELED */
	atomic_int echoed;	/* handlers that got their byte */
};

static int
srv_listen(struct srv *sv)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	sv->lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	if (sv->lfd < 0)
		return sv->lfd;
	if (getsockname(sv->lfd, (struct sockaddr *)&sin, &len) < 0)
		return -errno;
	sv->port = ntohs(sin.sin_port);
	return 0;
}

/*
 * A handler: read one byte, echo it, wait for the client's EOF.  A recv
 * cancelled by the drain's end is counted.
 */
static void
hold_conn(int fd, void *arg)
{
	struct srv *sv = arg;
	ssize_t n;
	char c;

	atomic_fetch_add(&sv->started, 1);
	n = weft_recv(fd, &c, 1, 0, io_dl());
	/* Counted before the echo: the client sees the count with it. */
	if (n == 1)
		atomic_fetch_add(&sv->echoed, 1);
	if (n == 1 && weft_send(fd, &c, 1, 0, io_dl()) == 1)
		n = weft_recv(fd, &c, 1, 0, WEFT_DEADLINE_NONE);
	if (n == -ECANCELED)
		atomic_fetch_add(&sv->cancelled, 1);
	weft_close(fd, WEFT_DEADLINE_NONE);
	atomic_fetch_add(&sv->ended, 1);
}

static void *
serve_task(void *arg)
{
	struct srv *sv = arg;
	struct weft_serve_opts o;
	int ret;

	memset(&o, 0, sizeof(o));
	o.stop = sv->stop;
	ret = weft_serve(sv->lfd, hold_conn, sv, &o);
	/* Whatever ended the call, no handler may still run. */
	T_EXPECT_INT(atomic_load(&sv->ended), ==, atomic_load(&sv->started));
	return t_ptr(ret);
}

/* Dial and have the byte echoed: the handler runs. */
static int
dial_echo(struct srv *sv)
{
	char c = 'x';
	int fd;

	fd = weft_tcp_dial("127.0.0.1", sv->port, io_dl());
	T_EXPECT(fd >= 0, "dial: %d", fd);
	if (fd < 0)
		return fd;
	T_EXPECT_INT(weft_send(fd, &c, 1, 0, io_dl()), ==, 1);
	T_EXPECT_INT(weft_recv(fd, &c, 1, 0, io_dl()), ==, 1);
	return fd;
}

static void *
drain_main(void *arg)
{
	struct srv *sv = arg;
	struct weft_task *t;
	int fds[CONNS], probes[PROBES];
	void *res = NULL;
	int late, i, np;
	char c = 'y';

	T_EXPECT_INT(srv_listen(sv), ==, 0);
	T_EXPECT_INT(weft_future_make(&sv->stop), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, serve_task, sv, NULL), ==, 0);
	for (i = 0; i < CONNS; i++)
		fds[i] = dial_echo(sv);
	T_EXPECT_INT(atomic_load(&sv->echoed), ==, CONNS);

	T_EXPECT_INT(weft_future_set(sv->stop, NULL), ==, 0);
	/*
	 * The stop reaches the accept loop asynchronously: a connection
	 * that came meanwhile is still served (never dropped).  Probe
	 * until one waits in the backlog unanswered (bounded), then check
	 * that a second one does too.
	 */
	for (np = 0; np < PROBES; np++) {
		probes[np] = weft_tcp_dial("127.0.0.1", sv->port, io_dl());
		T_EXPECT(probes[np] >= 0, "probe dial: %d", probes[np]);
		T_EXPECT_INT(weft_send(probes[np], &c, 1, 0, io_dl()), ==, 1);
		if (weft_recv(probes[np], &c, 1, 0,
			      weft_now() + 100 * WEFT_MSEC) == -ETIMEDOUT)
			break;
	}
	T_EXPECT(np < PROBES, "still accepting after %d probes", np);
	late = weft_tcp_dial("127.0.0.1", sv->port, io_dl());
	T_EXPECT(late >= 0, "late dial: %d", late);
	T_EXPECT_INT(weft_send(late, &c, 1, 0, io_dl()), ==, 1);
	T_EXPECT_INT(weft_recv(late, &c, 1, 0, weft_now() + 100 * WEFT_MSEC),
		     ==, -ETIMEDOUT);
	T_EXPECT_INT(atomic_load(&sv->started), ==, CONNS + np);
	/* The open connections go on; the server waits for them. */
	T_EXPECT(weft_task_state(t) != WEFT_DONE,
		 "weft_serve returned with connections open");
	for (i = 0; i < np; i++)	/* the probes that were served */
		T_EXPECT_INT(weft_close(probes[i], io_dl()), ==, 0);
	for (i = 0; i < CONNS; i++) {
		T_EXPECT_INT(weft_close(fds[i], io_dl()), ==, 0);
		if (i < CONNS - 1)
			T_EXPECT(weft_task_state(t) != WEFT_DONE,
				 "returned with %d connections open",
				 CONNS - 1 - i);
	}
	T_EXPECT_INT(weft_join(t, &res, io_dl()), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 0);
	T_EXPECT_INT(atomic_load(&sv->cancelled), ==, 0);
	weft_close(late, io_dl());
	if (np < PROBES)
		weft_close(probes[np], io_dl());
	weft_close(sv->lfd, io_dl());
	weft_future_release(sv->stop);
	return NULL;
}

START_TEST(stop_waits_for_connections_and_accepts_no_more)
{
	struct srv sv;

	IO_SKIP_UNLESS_BACKEND();
	memset(&sv, 0, sizeof(sv));
	IO_RUN(drain_main, &sv, IO_WORKERS(_i));
	ck_assert_int_ge(atomic_load(&sv.started), CONNS);
	ck_assert_int_eq(atomic_load(&sv.ended), atomic_load(&sv.started));
}
END_TEST

static void *
cancel_main(void *arg)
{
	struct srv *sv = arg;
	struct weft_task *t;
	int fds[CONNS];
	void *res = NULL;
	int i;

	T_EXPECT_INT(srv_listen(sv), ==, 0);
	T_EXPECT_INT(weft_future_make(&sv->stop), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, serve_task, sv, NULL), ==, 0);
	for (i = 0; i < CONNS; i++)
		fds[i] = dial_echo(sv);
	T_EXPECT_INT(weft_future_cancel(sv->stop), ==, 0);
	/* The drain's deadline: the handlers still running are cancelled. */
	T_EXPECT_INT(weft_join_for(t, &res, weft_now() + 50 * WEFT_MSEC,
				   WEFT_JOIN_CANCEL),
		     ==, -ETIMEDOUT);
	T_EXPECT_INT(atomic_load(&sv->cancelled), ==, CONNS);
	T_EXPECT_INT(atomic_load(&sv->ended), ==, CONNS);
	for (i = 0; i < CONNS; i++) {
		char c;

		/* The server closed its side: EOF (or a reset). */
		T_EXPECT(weft_recv(fds[i], &c, 1, 0, io_dl()) <= 0,
			 "connection %d still open after the cancel", i);
		weft_close(fds[i], io_dl());
	}
	weft_close(sv->lfd, io_dl());
	weft_future_release(sv->stop);
	return NULL;
}

START_TEST(cancel_during_drain_cancels_the_handlers)
{
	struct srv sv;

	IO_SKIP_UNLESS_BACKEND();
	memset(&sv, 0, sizeof(sv));
	IO_RUN(cancel_main, &sv, IO_WORKERS(_i));
}
END_TEST

static void *
cancel_serving_main(void *arg)
{
	struct srv *sv = arg;
	struct weft_task *t;
	void *res = NULL;
	int fd;

	T_EXPECT_INT(srv_listen(sv), ==, 0);
	T_EXPECT_INT(weft_future_make(&sv->stop), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, serve_task, sv, NULL), ==, 0);
	fd = dial_echo(sv);
	/* Cancelled without a stop: -ECANCELED, its handler cancelled. */
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, &res, io_dl()), ==, 0);
	T_EXPECT_INT(t_int(res), ==, -ECANCELED);
	T_EXPECT_INT(atomic_load(&sv->cancelled), ==, 1);
	weft_close(fd, io_dl());
	weft_close(sv->lfd, io_dl());
	weft_future_release(sv->stop);
	return NULL;
}

START_TEST(cancel_without_stop_cancels_the_handlers)
{
	struct srv sv;

	IO_SKIP_UNLESS_BACKEND();
	memset(&sv, 0, sizeof(sv));
	IO_RUN(cancel_serving_main, &sv, IO_WORKERS(_i));
}
END_TEST

static void *
stopped_main(void *arg)
{
	struct srv *sv = arg;
	struct weft_serve_opts o;

	T_EXPECT_INT(srv_listen(sv), ==, 0);
	T_EXPECT_INT(weft_future_make(&sv->stop), ==, 0);
	memset(&o, 0, sizeof(o));
	o.stop = sv->stop;
	o.reserved_[0] = 1;
	T_EXPECT_INT(weft_serve(sv->lfd, hold_conn, sv, &o), ==, -EINVAL);
	o.reserved_[0] = 0;
	/* Complete already: returns at once, nothing served. */
	T_EXPECT_INT(weft_future_fail(sv->stop, -EIO), ==, 0);
	T_EXPECT_INT(weft_serve(sv->lfd, hold_conn, sv, &o), ==, 0);
	T_EXPECT_INT(atomic_load(&sv->started), ==, 0);
	weft_close(sv->lfd, io_dl());
	weft_future_release(sv->stop);
	return NULL;
}

START_TEST(stop_complete_already_returns_at_once)
{
	struct srv sv;

	IO_SKIP_UNLESS_BACKEND();
	memset(&sv, 0, sizeof(sv));
	IO_RUN(stopped_main, &sv, 1);
}
END_TEST

static Suite *
runtime_serve_suite(void)
{
	Suite *s = suite_create("runtime/serve");
	TCase *tc = tcase_create("stop");

	tcase_set_timeout(tc, T_TIMEOUT);
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	IO_ADD_W(tc, stop_waits_for_connections_and_accepts_no_more);
	IO_ADD_W(tc, cancel_during_drain_cancels_the_handlers);
	IO_ADD_W(tc, cancel_without_stop_cancels_the_handlers);
	IO_ADD(tc, stop_complete_already_returns_at_once);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_main(runtime_serve_suite());
}

/* SPDX-License-Identifier: MIT */
/*
 * The small programs a new user writes first (issue 18), written here with
 * weft.h alone and no helper of their own, each checked end to end:
 *
 *  crawler   1,000 coroutines in a group fetch 1,000 pages from a local
 *            server (loopback, port 0) over line-oriented TCP, at most 100
 *            connections at once (a semaphore), the whole crawl under one
 *            deadline scope; the pages link as a binary tree, so the links
 *            found must number 999.  A page whose server never answers,
 *            fetched inside a short scope, ends with -ETIMEDOUT.
 *  pipeline  a generator yields 1..N, a task feeds them into a channel, a
 *            consumer selects between that channel and a quit channel and
 *            has each value squared by a pool job (a future); the sum must
 *            be N(N+1)(2N+1)/6, and a job that fails (weft_fail) reaches
 *            the consumer as its error.
 *  chat      50 clients in a room on weft_serve(): every line one sends
 *            reaches the 49 others; SIGUSR2 (received by a task through
 *            weft_signal_wait) completes the serve's stop future while all
 *            are connected, and weft_serve returns 0 only once the last
 *            client has left.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* ---- crawler ------------------------------------------------------------ */

#define PAGES 1000
#define HANG_PAGE PAGES		/* the page the server never answers */

/* Server: "GET n\n" -> "page n\n", a "link k\n" per child, then ".\n". */
static void
page_server(int fd, void *arg)
{
	struct weft_reader *r = NULL;
	struct weft_writer *w = NULL;
	char line[64], out[64];
	long n;

	(void)arg;
	if (weft_reader_make(&r, fd, 256) < 0 ||
	    weft_writer_make(&w, fd, 256) < 0)
		goto out;
	if (weft_reader_read_line(r, line, sizeof(line), weft_after_ms(10000))
	    <= 0 || sscanf(line, "GET %ld", &n) != 1)
		goto out;
	if (n == HANG_PAGE) {
		/* Until the client gives up and closes (or we are cancelled). */
		(void)weft_reader_read_line(r, line, sizeof(line),
					    WEFT_DEADLINE_NONE);
		goto out;
	}
	snprintf(out, sizeof(out), "page %ld\n", n);
	weft_writer_write(w, out, strlen(out), NULL, weft_after_ms(10000));
	for (long k = 2 * n + 1; k <= 2 * n + 2 && k < PAGES; k++) {
		snprintf(out, sizeof(out), "link %ld\n", k);
		weft_writer_write(w, out, strlen(out), NULL,
				  weft_after_ms(10000));
	}
	weft_writer_write(w, ".\n", 2, NULL, weft_after_ms(10000));
	weft_writer_flush(w, weft_after_ms(10000));
out:
	weft_reader_free(r);
	weft_writer_free(w);
	weft_close(fd, WEFT_DEADLINE_NONE);
}

struct crawl {
	int port;
	struct weft_sem conns;
	atomic_long pages, links;
};

/* Fetch page n: the number of links, or a negative errno. */
static int
fetch(struct crawl *c, long n)
{
	struct weft_reader *r = NULL;
	char line[64];
	int fd, links = 0, err;
	ssize_t len;
	long got;

	fd = weft_tcp_dial("127.0.0.1", c->port, WEFT_DEADLINE_NONE);
	if (fd < 0)
		return fd;
	len = snprintf(line, sizeof(line), "GET %ld\n", n);
	err = (int)weft_write(fd, line, (size_t)len, WEFT_DEADLINE_NONE);
	if (err >= 0)
		err = weft_reader_make(&r, fd, 256);
	if (err >= 0) {
		len = weft_reader_read_line(r, line, sizeof(line),
					    WEFT_DEADLINE_NONE);
		if (len < 0)
			err = (int)len;
		else if (sscanf(line, "page %ld", &got) != 1 || got != n)
			err = -EPROTO;
	}
	while (err >= 0) {
		len = weft_reader_read_line(r, line, sizeof(line),
					    WEFT_DEADLINE_NONE);
		if (len <= 0) {
			err = len < 0 ? (int)len : -EPROTO;
			break;
		}
		if (!strcmp(line, ".\n"))
			break;
		if (strncmp(line, "link ", 5) != 0)
			err = -EPROTO;
		else
			links++;
	}
	weft_reader_free(r);
	weft_close(fd, WEFT_DEADLINE_NONE);
	return err < 0 ? err : links;
}

struct page_job {
	struct crawl *c;
	long n;
};

static int
crawl_one(void *arg)
{
	struct page_job *j = arg;
	int links, err;

	/* The crawl's scope bounds this too: the member inherited it. */
	err = weft_sem_acquire(&j->c->conns, WEFT_DEADLINE_NONE);
	if (err < 0)
		return err;
	links = fetch(j->c, j->n);
	weft_sem_release(&j->c->conns);
	if (links < 0)
		return links;
	atomic_fetch_add(&j->c->pages, 1);
	atomic_fetch_add(&j->c->links, links);
	return 0;
}

static void *
serve_task(void *arg)
{
	return t_ptr(weft_serve(*(int *)arg, page_server, NULL, NULL));
}

static void *
crawler_main(void *arg)
{
	static struct page_job jobs[PAGES];
	struct crawl c = { .pages = 0, .links = 0 };
	struct weft_scope whole, brief;
	struct weft_group *g;
	struct weft_task *srv;
	int lfd, err;

	(void)arg;
	lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	T_EXPECT(lfd >= 0, "listen: %d", lfd);
	if (lfd < 0)
		return NULL;
	c.port = weft_tcp_port(lfd);
	T_EXPECT(c.port > 0, "port %d", c.port);
	T_EXPECT_INT(weft_sem_init(&c.conns, 100), ==, 0);
	T_EXPECT_INT(weft_spawn(&srv, serve_task, &lfd, NULL), ==, 0);

	T_EXPECT_INT(weft_group_make(&g, WEFT_GROUP_CANCEL_ON_ERROR), ==, 0);
	weft_scope_enter(&whole, weft_now() + t_stall_ns());
	for (long n = 0; n < PAGES; n++) {
		jobs[n] = (struct page_job){ &c, n };
		err = weft_group_spawn(g, crawl_one, &jobs[n], NULL);
		T_EXPECT_INT(err, ==, 0);
	}
	err = weft_group_wait(g, WEFT_DEADLINE_NONE);
	weft_scope_exit(&whole);
	T_EXPECT_INT(err, ==, 0);
	T_EXPECT_INT(atomic_load(&c.pages), ==, PAGES);
	T_EXPECT_INT(atomic_load(&c.links), ==, PAGES - 1);
	weft_group_free(g);

	/* A server that never answers: the scope ends the fetch. */
	weft_scope_enter(&brief, weft_after_ms(50));
	err = fetch(&c, HANG_PAGE);
	weft_scope_exit(&brief);
	T_EXPECT_INT(err, ==, -ETIMEDOUT);
	T_EXPECT(weft_scope_expired(&brief), "timed out before the scope");

	weft_cancel(srv);
	weft_join(srv, NULL, WEFT_DEADLINE_NONE);
	weft_close(lfd, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(crawler_of_1000_coroutines_under_one_deadline)
{
	struct weft_config cfg = t_config(2);

	T_RUN(crawler_main, NULL, &cfg, NULL);
}
END_TEST

/* ---- pipeline ----------------------------------------------------------- */

#define ITEMS 2000L

static void *
numbers(struct weft_gen *g, void *arg)
{
	long n = t_int(arg);

	for (long i = 1; i <= n; i++)
		if (weft_gen_yield(g, t_ptr(i), NULL) < 0)
			break;
	return NULL;
}

struct feed {
	struct weft_chan *out;
	long n;
};

/* Drain the generator into the channel, then close it. */
static void *
feeder(void *arg)
{
	struct feed *f = arg;
	struct weft_gen *g;
	void *v;
	int err;

	err = weft_gen_make(&g, numbers, t_ptr(f->n), NULL);
	if (err < 0)
		return t_ptr(err);
	while ((err = weft_gen_next(g, &v)) == 1) {
		long x = t_int(v);

		err = weft_chan_send(f->out, &x, weft_after_ms(10000));
		if (err < 0)
			break;
	}
	weft_gen_free(g);
	weft_chan_close(f->out);
	return t_ptr(err < 0 ? err : 0);
}

static void *
square(void *arg)
{
	long x = t_int(arg);

	if (x < 0)
		weft_fail(-EDOM);
	return t_ptr(x * x);
}

static void *
pipeline_main(void *arg)
{
	struct weft_chan *data, *quit;
	struct feed f = { .n = ITEMS };
	struct weft_pool *pool;
	struct weft_future *fut;
	struct weft_task *t;
	long x, sum = 0, seen = 0;
	void *v, *r;
	int err, i;

	(void)arg;
	T_EXPECT_INT(weft_chan_make(&data, sizeof(long), 16), ==, 0);
	T_EXPECT_INT(weft_chan_make(&quit, sizeof(long), 0), ==, 0);
	T_EXPECT_INT(weft_pool_make(&pool, 2, NULL), ==, 0);
	f.out = data;
	T_EXPECT_INT(weft_spawn(&t, feeder, &f, NULL), ==, 0);
	for (;;) {
		struct weft_select_case cases[2] = {
			{ data, WEFT_SELECT_RECV, &x, 0 },
			{ quit, WEFT_SELECT_RECV, NULL, 0 },
		};

		i = weft_select(cases, 2, weft_after_ms(10000));
		T_EXPECT(i >= 0, "select: %d", i);
		if (i != 0 || cases[0].result == -EPIPE)
			break;
		err = weft_pool_submit(pool, &fut, square, t_ptr(x));
		T_EXPECT_INT(err, ==, 0);
		if (err < 0)
			break;
		err = weft_future_wait(fut, &v, weft_after_ms(10000));
		T_EXPECT_INT(err, ==, 0);
		weft_future_release(fut);
		sum += t_int(v);
		seen++;
	}
	T_EXPECT_INT(weft_join(t, &r, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(r), ==, 0);
	T_EXPECT_INT(seen, ==, ITEMS);
	T_EXPECT_INT(sum, ==, ITEMS * (ITEMS + 1) * (2 * ITEMS + 1) / 6);

	/* A job that fails reaches the waiter as its error. */
	T_EXPECT_INT(weft_pool_submit(pool, &fut, square, t_ptr(-1)), ==, 0);
	T_EXPECT_INT(weft_future_wait(fut, &v, weft_after_ms(10000)), ==,
		     -EDOM);
	weft_future_release(fut);

	weft_pool_free(pool);
	weft_chan_release(quit);
	weft_chan_release(data);
	return NULL;
}

START_TEST(generator_channel_select_pool_pipeline)
{
	struct weft_config cfg = t_config(2);

	T_RUN(pipeline_main, NULL, &cfg, NULL);
}
END_TEST

/* ---- chat server -------------------------------------------------------- */

#define CLIENTS 50

struct room {
	struct weft_mutex lock;
	int fds[CLIENTS];
	int n;
	struct weft_waitgroup joined;	/* one per client in the room */
};

static struct room room = { WEFT_MUTEX_INIT, { 0 }, 0, WEFT_WAITGROUP_INIT };

/* Send `line` to every member but `from`.  Under the room's lock. */
static void
broadcast(int from, const char *line, size_t len)
{
	weft_mutex_lock(&room.lock, WEFT_DEADLINE_NONE);
	for (int i = 0; i < room.n; i++)
		if (room.fds[i] != from)
			(void)weft_write_full(room.fds[i], line, len, NULL,
					      weft_after_ms(10000));
	weft_mutex_unlock(&room.lock);
}

static void
chat_conn(int fd, void *arg)
{
	struct weft_reader *r = NULL;
	char line[128];
	ssize_t n;

	(void)arg;
	if (weft_reader_make(&r, fd, 512) < 0)
		goto out;
	weft_mutex_lock(&room.lock, WEFT_DEADLINE_NONE);
	room.fds[room.n++] = fd;
	weft_mutex_unlock(&room.lock);
	weft_waitgroup_done(&room.joined);
	while ((n = weft_reader_read_line(r, line, sizeof(line),
					  WEFT_DEADLINE_NONE)) > 0)
		broadcast(fd, line, (size_t)n);
	weft_mutex_lock(&room.lock, WEFT_DEADLINE_NONE);
	for (int i = 0; i < room.n; i++)
		if (room.fds[i] == fd)
			room.fds[i] = room.fds[--room.n];
	weft_mutex_unlock(&room.lock);
out:
	weft_reader_free(r);
	weft_close(fd, WEFT_DEADLINE_NONE);
}

struct chat {
	int lfd, port;
	struct weft_future *stop;
	sigset_t term;
	atomic_int heard;		/* lines clients received */
	struct weft_waitgroup listened;	/* clients that heard everyone */
	struct weft_waitgroup leave;	/* 1 until the stop was asked */
};

static void *
chat_server(void *arg)
{
	struct chat *c = arg;
	struct weft_serve_opts so = { .stop = c->stop };

	return t_ptr(weft_serve(c->lfd, chat_conn, NULL, &so));
}

/* SIGUSR2 asks for a graceful stop, as SIGTERM would. */
static void *
signal_watcher(void *arg)
{
	struct chat *c = arg;
	int sig = weft_signal_wait(&c->term, weft_now() + t_stall_ns());

	T_EXPECT_INT(sig, ==, SIGUSR2);
	return t_ptr(weft_future_set(c->stop, NULL));
}

static void *
chat_client(void *arg)
{
	struct chat *c = arg;
	struct weft_reader *r = NULL;
	char line[128];
	int fd, got = 0;
	ssize_t n;

	fd = weft_tcp_dial("127.0.0.1", c->port, weft_after_ms(10000));
	T_EXPECT(fd >= 0, "dial: %d", fd);
	if (fd < 0)
		return NULL;
	T_EXPECT_INT(weft_reader_make(&r, fd, 512), ==, 0);
	/* Everyone in, then everyone speaks once. */
	T_EXPECT_INT(weft_waitgroup_wait(&room.joined, weft_after_ms(10000)),
		     ==, 0);
	T_EXPECT_INT(weft_write_full(fd, "hello\n", 6, NULL,
				     weft_after_ms(10000)), ==, 6);
	while (got < CLIENTS - 1 &&
	       (n = weft_reader_read_line(r, line, sizeof(line),
					  weft_after_ms(10000))) > 0) {
		T_EXPECT(!strcmp(line, "hello\n"), "heard %s", line);
		got++;
	}
	atomic_fetch_add(&c->heard, got);
	weft_waitgroup_done(&c->listened);
	/* Stay connected until the server was told to stop, then leave. */
	T_EXPECT_INT(weft_waitgroup_wait(&c->leave, weft_now() + t_stall_ns()),
		     ==, 0);
	weft_reader_free(r);
	weft_close(fd, WEFT_DEADLINE_NONE);
	return NULL;
}

static void *
chat_main(void *arg)
{
	struct weft_task *srv, *sigt, *cl[CLIENTS];
	struct chat c = { .heard = 0, .listened = WEFT_WAITGROUP_INIT,
			  .leave = WEFT_WAITGROUP_INIT };
	void *r;

	(void)arg;
	weft_waitgroup_add(&room.joined, CLIENTS);
	weft_waitgroup_add(&c.listened, CLIENTS);
	weft_waitgroup_add(&c.leave, 1);
	c.lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	T_EXPECT(c.lfd >= 0, "listen: %d", c.lfd);
	if (c.lfd < 0)
		return NULL;
	c.port = weft_tcp_port(c.lfd);
	T_EXPECT_INT(weft_future_make(&c.stop), ==, 0);
	sigemptyset(&c.term);
	sigaddset(&c.term, SIGUSR2);
	T_EXPECT_INT(weft_signal_notify(&c.term), ==, 0);
	T_EXPECT_INT(weft_spawn(&sigt, signal_watcher, &c, NULL), ==, 0);
	T_EXPECT_INT(weft_spawn(&srv, chat_server, &c, NULL), ==, 0);
	for (int i = 0; i < CLIENTS; i++)
		T_EXPECT_INT(weft_spawn(&cl[i], chat_client, &c, NULL), ==, 0);
	T_EXPECT_INT(weft_waitgroup_wait(&c.listened, weft_now() + t_stall_ns()),
		     ==, 0);
	T_EXPECT_INT(atomic_load(&c.heard), ==, CLIENTS * (CLIENTS - 1));
	/* Graceful stop with every client still connected. */
	T_EXPECT_INT(kill(getpid(), SIGUSR2), ==, 0);
	T_EXPECT_INT(weft_join(sigt, &r, weft_now() + t_stall_ns()), ==, 0);
	T_EXPECT_INT(t_int(r), ==, 0);
	/* The server waits for its connections: still serving them. */
	T_EXPECT_INT(weft_task_state(srv), !=, WEFT_DONE);
	weft_waitgroup_done(&c.leave);
	for (int i = 0; i < CLIENTS; i++)
		weft_join(cl[i], NULL, WEFT_DEADLINE_NONE);
	T_EXPECT_INT(weft_join(srv, &r, weft_now() + t_stall_ns()), ==, 0);
	T_EXPECT_INT(t_int(r), ==, 0);
	T_EXPECT_INT(room.n, ==, 0);
	weft_signal_stop(&c.term);
	weft_future_release(c.stop);
	weft_close(c.lfd, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(chat_server_of_50_clients_stops_gracefully_on_a_signal)
{
	struct weft_config cfg = t_config(2);

	T_RUN(chat_main, NULL, &cfg, NULL);
}
END_TEST

static Suite *
programs_suite(void)
{
	Suite *s = suite_create("user_programs");
	TCase *tc;

	tc = t_tcase(s, "programs", T_TIMEOUT);
	tcase_add_test(tc, crawler_of_1000_coroutines_under_one_deadline);
	tcase_add_test(tc, generator_channel_select_pool_pipeline);
	tcase_add_test(tc, chat_server_of_50_clients_stops_gracefully_on_a_signal);
	return s;
}

int
main(void)
{
	return t_main(programs_suite());
}

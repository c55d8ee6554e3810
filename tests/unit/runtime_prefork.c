/* SPDX-License-Identifier: MIT */
/*
 * The pre-fork supervisor's API: option checks, the ready/drain protocol
 * and a graceful stop, reload (a refused one keeps the generation; an
 * accepted one drains the old generation only after every new child is
 * ready), the crash loop at start-up (backoff, -ECHILD) and on reload (the
 * old generation keeps serving), the drain deadline (the child's main is
 * cancelled; a child that ignores it is killed), the children's exit
 * when their master is SIGKILLed, and systemd's NOTIFY_SOCKET messages.
 *
 * weft_prefork() blocks the test's thread, so the children drive each
 * test: they signal their master (getppid()) and write one record a line
 * into a pipe the test reads afterwards; counters shared by every
 * process live in a MAP_SHARED page.  The master's log (stderr) goes to
 * a file the test greps.  Loopback only; every process is waited for.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* What every process of a test shares. */
struct shared {
	atomic_int starts[4];		/* child_main entered, per generation */
	atomic_int reloads;		/* reload hook calls (master) */
	atomic_int last_pid;		/* the last gen-2 child (crash test) */
	atomic_long cancel_ms;		/* drain to cancellation (deadline) */
};

static struct shared *sh;
static int rec_w = -1;			/* the records pipe's write end */
static int rec_r = -1;
static char logpath[64];
static int saved_stderr = -1;

static void
fixture_up(void)
{
	int p[2];
	int fd;

	t_setup();
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(sh, MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	rec_r = p[0];
	rec_w = p[1];
	snprintf(logpath, sizeof(logpath), "/tmp/weft-prefork-log.%d",
		 (int)getpid());
	fd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

static void
fixture_down(void)
{
	if (saved_stderr >= 0) {
		fflush(stderr);
		dup2(saved_stderr, 2);
		close(saved_stderr);
		saved_stderr = -1;
	}
	unlink(logpath);
	close(rec_r);
	close(rec_w);
	munmap(sh, sizeof(*sh));
	t_teardown();
}

/* The master's log so far (static buffer). */
static const char *
master_log(void)
{
	static char buf[16384];
	ssize_t n;
	int fd = open(logpath, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

/* The log must say `what`; print the whole log otherwise. */
#define ASSERT_LOG_HAS(what)                                                   \
	do {                                                                   \
		const char *l_ = master_log();                                 \
		ck_assert_msg(strstr(l_, (what)) != NULL,                      \
			      "the master's log lacks \"%s\":\n%s", (what),    \
			      l_);                                             \
	} while (0)

/* Write one record line (atomic: shorter than PIPE_BUF). */
static void
record(const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	buf[n++] = '\n';
	(void)!write(rec_w, buf, (size_t)n);
}

/* Every record written so far (the writers have all exited). */
static const char *
records(void)
{
	static char buf[8192];
	size_t len = 0;
	ssize_t n;

	fcntl(rec_r, F_SETFL, O_NONBLOCK);
	while (len < sizeof(buf) - 1 &&
	       (n = read(rec_r, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return buf;
}

static int
count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static struct weft_prefork_opts
base_opts(weft_prefork_fn fn, int procs)
{
	struct weft_prefork_opts o;

	memset(&o, 0, sizeof(o));
	o.procs = procs;
	o.cfg.workers = 1;
	o.child_main = fn;
	o.name = "t-prefork";
	return o;
}

/* Ready, then wait for the drain; "drained G S" once it came. */
static int
wait_drain(const struct weft_prefork_child *c)
{
	int ret = weft_future_wait(c->drain, NULL,
				   weft_now() + t_stall_ns());

	if (ret == 0)
		record("drained %" PRIu64 " %d", c->generation, c->slot);
	return ret == 0 ? 0 : 9;
}

static int
noop_main(const struct weft_prefork_child *c)
{
	(void)c;
	return 0;
}

START_TEST(bad_options_are_refused)
{
	struct weft_prefork_opts o = base_opts(noop_main, 1);
	struct weft_prefork_listen l = { .host = "127.0.0.1", .port = 0 };

	ck_assert_int_eq(weft_prefork(NULL), -EINVAL);
	o.child_main = NULL;
	ck_assert_int_eq(weft_prefork(&o), -EINVAL);
	o = base_opts(noop_main, -1);
	ck_assert_int_eq(weft_prefork(&o), -EINVAL);
	o = base_opts(noop_main, 1);
	o.mode = 7;
	ck_assert_int_eq(weft_prefork(&o), -EINVAL);
	o = base_opts(noop_main, 1);
	o.reserved_[2] = 1;
	ck_assert_int_eq(weft_prefork(&o), -EINVAL);
	o = base_opts(noop_main, 1);
	o.flags = WEFT_PREFORK_FORWARD_USR1 << 1;	/* an unknown flag */
	ck_assert_int_eq(weft_prefork(&o), -EINVAL);
	o = base_opts(noop_main, 1);
	o.nlisten = 1;		/* and no specs */
	ck_assert_int_eq(weft_prefork(&o), -EINVAL);
	o.listen = &l;
	l.port = 70000;
	ck_assert_int_eq(weft_prefork(&o), -EINVAL);
	o.drain_ns = -1;
	l.port = 0;
	ck_assert_int_eq(weft_prefork(&o), -EINVAL);
	o = base_opts(noop_main, 1);
	o.cfg.reserved_[0] = 1;	/* weft_run would refuse it in each child */
	ck_assert_int_eq(weft_prefork(&o), -EINVAL);
	/*
	 * Nothing was forked: no record, and no log line but the one that
	 * names the refused field of the children's configuration.
	 */
	{
		const char *log = master_log(), *nl = strchr(log, '\n');

		ck_assert_msg(!*log || (strstr(log, "reserved_") && nl &&
					!nl[1]),
			      "master log: %s", log);
	}
}
END_TEST

/* A listener the program cannot have: its error, and the address logged. */
START_TEST(listen_error_is_returned_and_logged)
{
	struct weft_prefork_opts o = base_opts(noop_main, 1);
	struct weft_prefork_listen l = { .unix_path = "/nonexistent/dir/s" };

	o.listen = &l;
	o.nlisten = 1;
	ck_assert_int_eq(weft_prefork(&o), -ENOENT);
	ASSERT_LOG_HAS("cannot listen on /nonexistent/dir/s");
}
END_TEST

static int got_nfds = -1;
static int got_port = -1;

static int
on_listen(const int *fds, int nfds, void *arg)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	(void)arg;
	got_nfds = nfds;
	if (nfds == 1 && getsockname(fds[0], (struct sockaddr *)&sin,
				     &len) == 0)
		got_port = ntohs(sin.sin_port);
	return 0;
}

static int
quit_main(const struct weft_prefork_child *c)
{
	record("start %" PRIu64 " %d nfds %d", c->generation, c->slot,
	       c->nfds);
	if (weft_prefork_ready(c) != 0 || weft_prefork_ready(c) != -EALREADY)
		return 8;
	if (c->slot == 0) {
		kill(getppid(), SIGUSR1);	/* a status line per child */
		kill(getppid(), SIGQUIT);
	}
	return wait_drain(c);
}

START_TEST(graceful_stop_drains_every_child)
{
	struct weft_prefork_opts o = base_opts(quit_main, 2);
	struct weft_prefork_listen l = { .host = "127.0.0.1", .port = 0 };
	const char *r;

	o.listen = &l;
	o.nlisten = 1;
	o.on_listen = on_listen;
	ck_assert_int_eq(weft_prefork(&o), 0);
	ck_assert_int_eq(got_nfds, 1);
	ck_assert_int_gt(got_port, 0);
	r = records();
	ck_assert_msg(count_of(r, "start 1 ") == 2 &&
		      count_of(r, "nfds 1") == 2, "records:\n%s", r);
	ck_assert_msg(count_of(r, "drained 1 ") == 2, "records:\n%s", r);
	ASSERT_LOG_HAS("graceful stop");
	/* Slot 0 may signal before slot 1 is ready: no generation then. */
	ASSERT_LOG_HAS("2 child(ren), 1 worker(s) each");
	ASSERT_LOG_HAS("status: slot 1 pid ");
	ASSERT_LOG_HAS("exited with status 0 after draining");
	ck_assert_msg(!strstr(master_log(), "restarting"), "%s",
		      master_log());
}
END_TEST

/*
 * Reload hook: the first call refuses (and raises another SIGHUP), the
 * second accepts.
 */
static int status_seen = -100;	/* the master's status check, or why not */

static int
reload_hook(void *arg)
{
	struct weft_prefork_proc ps[4];
	int n;

	(void)arg;
	if (atomic_fetch_add(&sh->reloads, 1) == 0) {
		raise(SIGHUP);	/* blocked: the master reads it next */
		return -EIO;
	}
	/* Both children of generation 1, serving. */
	n = weft_prefork_status(ps, 4);
	status_seen = n;
	if (n == 2 && ps[0].slot != ps[1].slot)
		for (int i = 0; i < 2; i++)
			if (ps[i].pid > 0 && ps[i].generation == 1 &&
			    ps[i].state == WEFT_PREFORK_READY &&
			    ps[i].uptime_ns > 0 && ps[i].restarts == 0)
				status_seen += 10;
	return 0;
}

static int
reload_main(const struct weft_prefork_child *c)
{
	int ret;

	atomic_fetch_add(&sh->starts[c->generation & 3], 1);
	/* Before the master can know: every "ready 2" precedes "drained 1". */
	record("ready %" PRIu64 " %d", c->generation, c->slot);
	if (weft_prefork_ready(c) != 0)
		return 8;
	if (c->generation == 1 && c->slot == 0)
		kill(getppid(), SIGHUP);
	ret = wait_drain(c);
	/* The reload drained generation 1: now stop everything. */
	if (c->generation == 1 && c->slot == 0)
		kill(getppid(), SIGQUIT);
	return ret;
}

START_TEST(reload_refused_then_accepted)
{
	struct weft_prefork_opts o = base_opts(reload_main, 2);
	const char *r, *first_drain;

	o.reload = reload_hook;
	ck_assert_int_eq(weft_prefork_status(NULL, 0), -ESRCH);
	ck_assert_int_eq(weft_prefork(&o), 0);
	ck_assert_int_eq(weft_prefork_status(NULL, 0), -ESRCH);
	ck_assert_int_eq(weft_prefork_status(NULL, 1), -EINVAL);
	ck_assert_msg(status_seen == 22, "weft_prefork_status in the hook: %d",
		      status_seen);
	r = records();
	ck_assert_int_eq(atomic_load(&sh->reloads), 2);
	ck_assert_msg(atomic_load(&sh->starts[1]) == 2 &&
		      atomic_load(&sh->starts[2]) == 2 &&
		      atomic_load(&sh->starts[3]) == 0,
		      "starts per generation %d %d %d; records:\n%s",
		      atomic_load(&sh->starts[1]), atomic_load(&sh->starts[2]),
		      atomic_load(&sh->starts[3]), r);
	first_drain = strstr(r, "drained 1 ");
	ck_assert_msg(first_drain && count_of(first_drain, "ready 2 ") == 0 &&
		      count_of(r, "ready 2 ") == 2,
		      "generation 1 drained before generation 2 was ready:\n%s",
		      r);
	ck_assert_msg(count_of(r, "drained 1 ") == 2 &&
		      count_of(r, "drained 2 ") == 2, "records:\n%s", r);
	ASSERT_LOG_HAS("reload refused by the program: Input/output error; "
		       "generation 1 keeps serving");
	ASSERT_LOG_HAS("generation 2 ready in");
}
END_TEST

static int
crash_main(const struct weft_prefork_child *c)
{
	record("start %" PRIu64 " %d", c->generation, c->slot);
	return 3;
}

START_TEST(crash_loop_at_start_stops_the_master)
{
	struct weft_prefork_opts o = base_opts(crash_main, 1);
	int64_t t0 = weft_now(), ms;
	const char *r;

	ck_assert_int_eq(weft_prefork(&o), -ECHILD);
	ms = (weft_now() - t0) / WEFT_MSEC;
	r = records();
	ck_assert_msg(count_of(r, "start 1 0") == 5, "records:\n%s", r);
	/* 100 + 200 + 400 + 800 ms of backoff between the five. */
	ck_assert_msg(ms >= 1500 && ms < 10000, "took %" PRId64 " ms", ms);
	ASSERT_LOG_HAS("exited with status 3 before it was ready; "
		       "restarting in 100 ms");
	ASSERT_LOG_HAS("restarting in 800 ms");
	ASSERT_LOG_HAS("generation 1 never became ready: the child of slot 0 "
		       "died 5 times at start-up (last exited with status 3)");
}
END_TEST

static int
reload_ok(void *arg)
{
	(void)arg;
	atomic_fetch_add(&sh->reloads, 1);
	return 0;
}

static int
crash_reload_main(const struct weft_prefork_child *c)
{
	int64_t end;

	if (c->generation == 2) {
		atomic_fetch_add(&sh->starts[2], 1);
		atomic_store(&sh->last_pid, (int)getpid());
		return 4;
	}
	if (weft_prefork_ready(c) != 0)
		return 8;
	kill(getppid(), SIGHUP);
	/* Wait until the master has reaped the fifth child of generation 2. */
	end = weft_now() + t_stall_ns();
	while (weft_now() < end &&
	       (atomic_load(&sh->starts[2]) < 5 ||
		kill(atomic_load(&sh->last_pid), 0) == 0))
		weft_sleep(5 * WEFT_MSEC);
	/* Still generation 1's, still serving: then stop. */
	record("serving %" PRIu64, c->generation);
	kill(getppid(), SIGQUIT);
	return wait_drain(c);
}

START_TEST(crash_loop_on_reload_keeps_the_old_generation)
{
	struct weft_prefork_opts o = base_opts(crash_reload_main, 1);
	const char *r;

	o.reload = reload_ok;
	ck_assert_int_eq(weft_prefork(&o), 0);
	r = records();
	ck_assert_int_eq(atomic_load(&sh->starts[2]), 5);
	ck_assert_msg(count_of(r, "serving 1") == 1 &&
		      count_of(r, "drained 1 0") == 1, "records:\n%s", r);
	ASSERT_LOG_HAS("reload failed: generation 2 never became ready (the "
		       "child of slot 0 died 5 times at start-up, last exited "
		       "with status 4); generation 1 keeps serving");
}
END_TEST

static int
deadline_main(const struct weft_prefork_child *c)
{
	int64_t t;
	int ret;

	if (weft_prefork_ready(c) != 0)
		return 8;
	if (c->slot == 0)
		kill(getppid(), SIGQUIT);
	/* Ignore the drain: the deadline cancels us. */
	ret = weft_future_wait(c->drain, NULL, weft_now() + t_stall_ns());
	t = weft_now();
	if (ret != 0)
		return 9;
	ret = weft_sleep(INT64_MAX);
	atomic_store(&sh->cancel_ms, (weft_now() - t) / WEFT_MSEC);
	record("slept %d", ret);
	if (c->slot == 1) {
		/* ...and this one ignores the cancellation too. */
		record("stuck");
		for (;;)
			pause();
	}
	return 0;
}

START_TEST(drain_deadline_cancels_then_kills)
{
	struct weft_prefork_opts o = base_opts(deadline_main, 2);
	int64_t t0 = weft_now(), ms;
	const char *r;

	o.drain_ns = 200 * WEFT_MSEC;
	ck_assert_int_eq(weft_prefork(&o), 0);
	ms = (weft_now() - t0) / WEFT_MSEC;
	r = records();
	ck_assert_msg(count_of(r, "slept -125") == 2, "records:\n%s", r);
	ck_assert_msg(atomic_load(&sh->cancel_ms) >= 150 &&
		      atomic_load(&sh->cancel_ms) < 5000,
		      "cancelled %ld ms after the drain",
		      atomic_load(&sh->cancel_ms));
	/* The stuck one: killed a second after the deadline. */
	ck_assert_msg(ms >= 1100 && ms < 10000, "took %" PRId64 " ms", ms);
	ASSERT_LOG_HAS("did not drain in time: killed");
	ASSERT_LOG_HAS("was killed by signal 9");
}
END_TEST

static int
orphan_main(const struct weft_prefork_child *c)
{
	if (weft_prefork_ready(c) != 0)
		return 8;
	record("pid %d", (int)getpid());
	if (weft_future_wait(c->drain, NULL, weft_now() + t_stall_ns()) != 0)
		return 9;
	/* The master died: the main task is cancelled at once. */
	return weft_sleep(INT64_MAX) == -ECANCELED ? 0 : 10;
}

START_TEST(children_exit_when_the_master_dies)
{
	int pids[2], npid = 0, st;
	int64_t t0, ms;
	const char *r;
	pid_t master;
	char buf[64];
	size_t len = 0;

	/* The orphans come to us, so that we can reap them. */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	master = fork();
	ck_assert_int_ge(master, 0);
	if (master == 0) {
		struct weft_prefork_opts o = base_opts(orphan_main, 2);

		_exit(weft_prefork(&o) == 0 ? 0 : 1);
	}
	/* Both children running: two "pid N" lines. */
	while (npid < 2) {
		struct pollfd pfd = { .fd = rec_r, .events = POLLIN };
		ssize_t n;
		char *nl;

		ck_assert_msg(poll(&pfd, 1, 20000) == 1, "no child started");
		n = read(rec_r, buf + len, sizeof(buf) - 1 - len);
		ck_assert_int_gt(n, 0);
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = strchr(buf, '\n')) != NULL) {
			pids[npid++] = atoi(buf + 4);
			memmove(buf, nl + 1, len - (size_t)(nl + 1 - buf) + 1);
			len -= (size_t)(nl + 1 - buf);
		}
	}
	t0 = weft_now();
	ck_assert_int_eq(kill(master, SIGKILL), 0);
	ck_assert_int_eq(waitpid(master, &st, 0), master);
	for (int i = 0; i < 2; i++) {
		/* Bounded: a child that does not exit fails the test. */
		while (waitpid(pids[i], &st, WNOHANG) == 0) {
			ck_assert_msg(weft_now() - t0 < 5 * WEFT_SEC,
				      "child %d still alive", pids[i]);
			poll(NULL, 0, 5);
		}
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "child %d: wait status %#x", pids[i], st);
	}
	ms = (weft_now() - t0) / WEFT_MSEC;
#if defined(WEFT_TSAN) || defined(WEFT_ASAN)
	ck_assert_msg(ms < 2000, "the children took %" PRId64 " ms", ms);
#else
	ck_assert_msg(ms < 1000, "the children took %" PRId64 " ms", ms);
#endif
	r = records();
	(void)r;
	prctl(PR_SET_CHILD_SUBREAPER, 0);
}
END_TEST

static int
notify_main(const struct weft_prefork_child *c)
{
	if (weft_prefork_ready(c) != 0)
		return 8;
	/* Children do not see the variable. */
	if (getenv("NOTIFY_SOCKET"))
		return 11;
	if (c->generation == 1)
		kill(getppid(), SIGHUP);
	else
		kill(getppid(), SIGQUIT);
	return wait_drain(c) == 0 ? 0 : 9;
}

START_TEST(notify_socket_messages_in_order)
{
	struct weft_prefork_opts o = base_opts(notify_main, 1);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char name[64], msgs[2048], buf[512];
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(name, sizeof(name), "@weft-notify-%d", (int)getpid());
	memcpy(sun.sun_path + 1, name + 1, strlen(name) - 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun,
			      (socklen_t)(offsetof(struct sockaddr_un,
						   sun_path) + strlen(name))),
			 0);
	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(weft_prefork(&o), 0);
	unsetenv("NOTIFY_SOCKET");
	msgs[0] = '\0';
	while ((n = recv(fd, buf, sizeof(buf) - 1, 0)) > 0 &&
	       len + (size_t)n + 2 < sizeof(msgs)) {
		buf[n] = '\0';
		len += (size_t)snprintf(msgs + len, sizeof(msgs) - len,
					"%s|", buf);
	}
	close(fd);
	/* READY, RELOADING with the time, READY, STOPPING: in that order. */
	{
		const char *a = strstr(msgs, "READY=1");
		const char *b = a ? strstr(a, "RELOADING=1\nMONOTONIC_USEC=")
				  : NULL;
		const char *c = b ? strstr(b, "READY=1") : NULL;
		const char *d = c ? strstr(c, "STOPPING=1") : NULL;

		ck_assert_msg(d != NULL, "notifications: %s", msgs);
		ck_assert_msg(strstr(msgs, "STATUS=generation 2") != NULL,
			      "notifications: %s", msgs);
	}
}
END_TEST

static Suite *
runtime_prefork_suite(void)
{
	Suite *s = suite_create("runtime/prefork");
	TCase *tc = tcase_create("prefork");

	tcase_add_checked_fixture(tc, fixture_up, fixture_down);
	tcase_set_timeout(tc, T_TIMEOUT);
	tcase_add_test(tc, bad_options_are_refused);
	tcase_add_test(tc, listen_error_is_returned_and_logged);
	tcase_add_test(tc, graceful_stop_drains_every_child);
	tcase_add_test(tc, reload_refused_then_accepted);
	tcase_add_test(tc, crash_loop_at_start_stops_the_master);
	tcase_add_test(tc, crash_loop_on_reload_keeps_the_old_generation);
	tcase_add_test(tc, drain_deadline_cancels_then_kills);
	tcase_add_test(tc, children_exit_when_the_master_dies);
	tcase_add_test(tc, notify_socket_messages_in_order);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_main(runtime_prefork_suite());
}

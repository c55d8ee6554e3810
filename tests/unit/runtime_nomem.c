/* SPDX-License-Identifier: MIT */
/*
 * Out of memory loses nothing: with the address space limited
 * (RLIMIT_AS), a spawn either runs its task or fails with -ENOMEM, and
 * weft_serve closes (and counts) a connection it cannot give a task, so
 * every client is answered or sees a close, and no fd is left behind.
 *
 * Each case runs in a forked child that lowers its RLIMIT_AS once the
 * runtime is up: whatever the kernel then refuses is refused inside the
 * run.  The sanitizer builds reserve terabytes of shadow memory, so an
 * address-space limit cannot apply to them; they skip (77) with that
 * reason, and the fault-injection suite (tests/faults) covers them with
 * injected allocation failures instead.
 */
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "harness.h"

#define HEADROOM (24L << 20)	/* address space left to the run */

static long
vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the DIR's own fd */
}

static int
limit_as(void)
{
	long vm = vm_size();
	struct rlimit rl;

	if (vm < 0)
		return -1;
	rl.rlim_cur = rl.rlim_max = (rlim_t)(vm + HEADROOM);
	return setrlimit(RLIMIT_AS, &rl);
}

/*
 * spawn: spawn until refused; every accepted task must run.
 */

struct spawns {
	struct weft_chan *hold;
	atomic_long ran;
	long accepted, refused, other;
	int first_err;
	size_t stack_size;
	struct weft_stats st;
};

static void *
holder(void *arg)
{
	struct spawns *s = arg;

	atomic_fetch_add(&s->ran, 1);
	return t_ptr(weft_chan_recv(s->hold, NULL, WEFT_DEADLINE_NONE));
}

static void *
spawns_main(void *arg)
{
	struct spawns *s = arg;
	struct weft_spawn_opts o = { .stack_size = s->stack_size };

	T_EXPECT_INT(weft_chan_make(&s->hold, 1, 0), ==, 0);
	T_EXPECT_INT(limit_as(), ==, 0);
	/* Far more than HEADROOM holds; stop at 64 refusals. */
	for (long i = 0; i < 100000 && s->refused < 64; i++) {
		int r = weft_spawn(NULL, holder, s, &o);

		if (r == 0)
			s->accepted++;
		else if (r == -ENOMEM)
			s->refused++;
		else if (s->other++ == 0)
			s->first_err = r;
	}
	T_WAIT_COUNT(atomic_load(&s->ran), s->accepted,
		     "every accepted task to run");
	T_EXPECT_INT(weft_stats(&s->st), ==, 0);
	weft_chan_close(s->hold);
	return NULL;
}

static void __attribute__((noreturn))
spawns_child(size_t stack_size)
{
	struct spawns s;
	int r;

	memset(&s, 0, sizeof(s));
	s.stack_size = stack_size;
	alarm((unsigned)(t_stall_ns() / WEFT_SEC));
	r = weft_run(spawns_main, &s, NULL, NULL);
	if (r != 0 || t_failed()) {
		fprintf(stderr, "weft_run %d; %s\n", r, t_fail_msg);
		_exit(1);
	}
	if (s.other) {
		fprintf(stderr, "%ld spawns failed with %d, not -ENOMEM\n",
			s.other, s.first_err);
		_exit(1);
	}
	if (s.refused == 0) {
		fprintf(stderr, "no spawn was refused: the limit did not "
				"bite (%ld accepted)\n", s.accepted);
		_exit(1);
	}
	if (atomic_load(&s.ran) != s.accepted) {
		fprintf(stderr, "%ld spawns accepted, %ld ran\n", s.accepted,
			atomic_load(&s.ran));
		_exit(1);
	}
	if (s.st.spawns_refused != (uint64_t)s.refused) {
		fprintf(stderr, "stats say %llu refused, we saw %ld\n",
			(unsigned long long)s.st.spawns_refused, s.refused);
		_exit(1);
	}
	fprintf(stderr, "%ld accepted and ran, %ld refused\n", s.accepted, s.refused);
	_exit(0);
}

static void
run_child(void (*child)(size_t), size_t arg)
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0)
		child(arg);
	while (waitpid(pid, &status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child %s %d (its stderr above)",
		      WIFSIGNALED(status) ? "died of signal" : "exited with",
		      WIFSIGNALED(status) ? WTERMSIG(status)
					  : WEXITSTATUS(status));
}

START_TEST(spawn_default_stacks_refuses_or_runs)
{
	run_child(spawns_child, 0);
}
END_TEST

START_TEST(spawn_odd_stacks_refuses_or_runs)
{
	run_child(spawns_child, 256 * 1024);
}
END_TEST

/*
 * serve: N clients against weft_serve under the limit; handlers hold their
 * connection until every one was accepted or shed.
 */

#define CLIENTS 600

struct serve {
	int lfd;
	int port;
	struct weft_chan *release;
	atomic_long handled;		/* handlers that started */
	atomic_long done;		/* handlers that finished */
	atomic_int opened;		/* client: every connect returned */
	long ok, closed, hung, conn_err;
	int fds_before, fds_after;
	struct weft_stats st;
};

static void
handler(int fd, void *arg)
{
	struct serve *s = arg;

	atomic_fetch_add(&s->handled, 1);
	weft_chan_recv(s->release, NULL, WEFT_DEADLINE_NONE);
	weft_send(fd, "ok", 2, 0, weft_now() + 10 * WEFT_SEC);
	weft_close(fd, WEFT_DEADLINE_NONE);
	atomic_fetch_add(&s->done, 1);
}

static void *
serve_task(void *arg)
{
	struct serve *s = arg;

	return t_ptr(weft_serve(s->lfd, handler, s, NULL));
}

/* A plain thread: connect CLIENTS times, then read each answer. */
static void *
client(void *arg)
{
	struct serve *s = arg;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	static int fds[CLIENTS];
	int i;

	sin.sin_port = htons((uint16_t)s->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < CLIENTS; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sin,
					  sizeof(sin)) < 0)
			s->conn_err++;
	}
	atomic_store(&s->opened, 1);
	for (i = 0; i < CLIENTS; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		char buf[8];
		ssize_t n;

		if (fds[i] < 0)
			continue;
		if (poll(&p, 1, (int)(t_stall_ns() / WEFT_MSEC)) != 1) {
			s->hung++;
		} else {
			n = read(fds[i], buf, sizeof(buf));
			if (n == 2 && memcmp(buf, "ok", 2) == 0)
				s->ok++;
			else if (n == 0 || (n < 0 && errno == ECONNRESET))
				s->closed++;
			else
				s->hung++;
		}
		close(fds[i]);
	}
	return NULL;
}

static void *
serve_main(void *arg)
{
	struct serve *s = arg;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct weft_task *srv;
	pthread_t th;

	s->lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	T_EXPECT(s->lfd >= 0, "weft_tcp_listen: %d", s->lfd);
	if (s->lfd < 0)
		return NULL;
	getsockname(s->lfd, (struct sockaddr *)&sin, &len);
	s->port = ntohs(sin.sin_port);
	T_EXPECT_INT(weft_chan_make(&s->release, 1, 0), ==, 0);
	T_EXPECT_INT(weft_spawn(&srv, serve_task, s, NULL), ==, 0);
	s->fds_before = count_fds();
	/* The client's thread stack is mapped before the limit. */
	T_EXPECT_INT(pthread_create(&th, NULL, client, s), ==, 0);
	T_EXPECT_INT(limit_as(), ==, 0);
	T_WAIT(atomic_load(&s->opened), "the client's connects");
	T_WAIT_COUNT(atomic_load(&s->handled) +
			     (long)({ struct weft_stats x; weft_stats(&x);
				      x.conns_shed; }),
		     CLIENTS - s->conn_err, "every connection accepted or shed");
	weft_chan_close(s->release);
	T_WAIT_COUNT(atomic_load(&s->done), atomic_load(&s->handled),
		     "every handler to finish");
	T_EXPECT_INT(weft_stats(&s->st), ==, 0);
	weft_cancel(srv);
	weft_join(srv, NULL, WEFT_DEADLINE_NONE);
	pthread_join(th, NULL);
	s->fds_after = count_fds();
	close(s->lfd);
	return NULL;
}

static void __attribute__((noreturn))
serve_child(size_t unused)
{
	struct serve s;
	int r;

	(void)unused;
	memset(&s, 0, sizeof(s));
	alarm((unsigned)(3 * t_stall_ns() / WEFT_SEC));
	r = weft_run(serve_main, &s, NULL, NULL);
	if (r != 0 || t_failed()) {
		fprintf(stderr, "weft_run %d; %s\n", r, t_fail_msg);
		_exit(1);
	}
	fprintf(stderr, "%d clients: %ld answered, %ld closed, %ld hung, %ld did not "
	       "connect; %ld handled, %llu shed; fds %d before, %d after\n",
	       CLIENTS, s.ok, s.closed, s.hung, s.conn_err,
	       atomic_load(&s.handled), (unsigned long long)s.st.conns_shed,
	       s.fds_before, s.fds_after);
	if (s.hung || s.conn_err || s.ok + s.closed != CLIENTS ||
	    s.ok != atomic_load(&s.handled) ||
	    s.closed != (long)s.st.conns_shed || s.fds_after > s.fds_before)
		_exit(1);
	if (s.st.conns_shed == 0) {
		fprintf(stderr, "nothing was shed: the limit did not bite\n");
		_exit(1);
	}
	_exit(0);
}

START_TEST(serve_under_rlimit_as_answers_or_closes_every_client)
{
	run_child(serve_child, 0);
}
END_TEST

static Suite *
runtime_nomem_suite(void)
{
	Suite *s = suite_create("runtime/nomem");
	TCase *tc;

	tc = t_tcase(s, "rlimit_as", T_TIMEOUT);
	tcase_add_test(tc, spawn_default_stacks_refuses_or_runs);
	tcase_add_test(tc, spawn_odd_stacks_refuses_or_runs);
	tcase_add_test(tc, serve_under_rlimit_as_answers_or_closes_every_client);
	return s;
}

int
main(void)
{
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
	printf("runtime_nomem: skipped under sanitizers (they reserve "
	       "terabytes of shadow memory, so RLIMIT_AS cannot apply); "
	       "tests/faults injects allocation failures there\n");
	return 77;
#endif
	return t_main(runtime_nomem_suite());
}

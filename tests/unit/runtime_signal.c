/* SPDX-License-Identifier: MIT */
/*
 * Signals in tasks (weft_signal_notify/wait/stop): a signal sent to the
 * process or to any one worker is returned exactly once, to a waiter of
 * its set; deadlines, cancellation (nothing taken, nothing lost), the
 * mask weft_run() hands its workers, and the dump signal's claim.
 */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "harness.h"

static sigset_t
set_of(int a, int b)
{
	sigset_t s;

	sigemptyset(&s);
	if (a)
		sigaddset(&s, a);
	if (b)
		sigaddset(&s, b);
	return s;
}

/* A short wait that must find nothing: the delivery was taken once. */
static void
expect_none(const sigset_t *set)
{
	T_EXPECT_INT(weft_signal_wait(set, weft_now() + 30 * WEFT_MSEC), ==,
		     -ETIMEDOUT);
}

static int64_t
dl(void)
{
	return weft_now() + t_stall_ns();
}

static void *
kill_main(void *arg)
{
	sigset_t usr1 = set_of(SIGUSR1, 0);

	T_EXPECT_INT(weft_signal_notify(&usr1), ==, 0);
	T_EXPECT_INT(kill(getpid(), SIGUSR1), ==, 0);
	T_EXPECT_INT(weft_signal_wait(&usr1, dl()), ==, SIGUSR1);
	expect_none(&usr1);
	expect_none(NULL);
	T_EXPECT_INT(weft_signal_stop(&usr1), ==, 0);
	return NULL;
}

START_TEST(signal_sent_to_the_process_is_received_once)
{
	struct weft_config cfg = t_config(2);

	T_RUN(kill_main, NULL, &cfg, NULL);
}
END_TEST

struct parked {
	sigset_t set;
	atomic_int got;
};

static void *
waiter(void *arg)
{
	struct parked *p = arg;
	int r = weft_signal_wait(&p->set, dl());

	atomic_store(&p->got, r);
	return t_ptr(r);
}

static void *
two_waiters_main(void *arg)
{
	sigset_t both = set_of(SIGUSR1, SIGUSR2);
	struct parked p1 = { set_of(SIGUSR1, 0), 0 };
	struct parked p2 = { set_of(SIGUSR2, 0), 0 };
	struct weft_task *t1, *t2;
	void *r;

	T_EXPECT_INT(weft_signal_notify(&both), ==, 0);
	T_EXPECT_INT(weft_spawn(&t1, waiter, &p1, NULL), ==, 0);
	T_EXPECT_INT(weft_spawn(&t2, waiter, &p2, NULL), ==, 0);
	T_WAIT(weft_task_state(t1) == WEFT_SUSPENDED &&
		       weft_task_state(t2) == WEFT_SUSPENDED,
	       "both waiters to park");
	/* Only the waiter of SIGUSR2 may return. */
	T_EXPECT_INT(kill(getpid(), SIGUSR2), ==, 0);
	T_EXPECT_INT(weft_join(t2, &r, dl()), ==, 0);
	T_EXPECT_INT(t_int(r), ==, SIGUSR2);
	/* t1 may look again (the poller's broadcast), but takes nothing. */
	T_WAIT(weft_task_state(t1) == WEFT_SUSPENDED, "t1 to park again");
	T_EXPECT_INT(atomic_load(&p1.got), ==, 0);
	T_EXPECT_INT(kill(getpid(), SIGUSR1), ==, 0);
	T_EXPECT_INT(weft_join(t1, &r, dl()), ==, 0);
	T_EXPECT_INT(t_int(r), ==, SIGUSR1);
	expect_none(&both);
	T_EXPECT_INT(weft_signal_stop(&both), ==, 0);
	return NULL;
}

START_TEST(signal_goes_to_a_waiter_of_its_set_only)
{
	struct weft_config cfg = t_config(2);

	T_RUN(two_waiters_main, NULL, &cfg, NULL);
}
END_TEST

/* Which thread runs each worker, found by tasks that land on them. */
struct workers {
	pthread_t th[2];
	atomic_int seen[2];
};

static void *
note_worker(void *arg)
{
	struct workers *w = arg;
	int id = weft_worker_id();

	if (id >= 0 && id < 2 && !atomic_load(&w->seen[id])) {
		w->th[id] = pthread_self();
		atomic_store(&w->seen[id], 1);
	}
	/* Keep this worker busy a moment so the next task goes elsewhere. */
	t_burn(WEFT_MSEC);
	return NULL;
}

static void *
pthread_kill_main(void *arg)
{
	sigset_t usr2 = set_of(SIGUSR2, 0);
	struct workers w;
	int64_t end = dl();

	memset(&w, 0, sizeof(w));
	T_EXPECT_INT(weft_signal_notify(&usr2), ==, 0);
	while (!(atomic_load(&w.seen[0]) && atomic_load(&w.seen[1])) &&
	       weft_now() < end) {
		for (int i = 0; i < 8; i++)
			T_EXPECT_INT(weft_spawn(NULL, note_worker, &w, NULL),
				     ==, 0);
		weft_sleep(WEFT_MSEC);
	}
	T_EXPECT(atomic_load(&w.seen[0]) && atomic_load(&w.seen[1]),
		 "no task ran on one of the workers");
	for (int i = 0; i < 2 && !t_failed(); i++) {
		struct parked p = { usr2, 0 };
		struct weft_task *t;
		void *r;

		/* Parked first, so the delivery must wake it. */
		T_EXPECT_INT(weft_spawn(&t, waiter, &p, NULL), ==, 0);
		T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the waiter");
		T_EXPECT_INT(pthread_kill(w.th[i], SIGUSR2), ==, 0);
		T_EXPECT_INT(weft_join(t, &r, dl()), ==, 0);
		T_EXPECT_INT(t_int(r), ==, SIGUSR2);
		expect_none(&usr2);
	}
	T_EXPECT_INT(weft_signal_stop(&usr2), ==, 0);
	return NULL;
}

START_TEST(signal_sent_to_either_worker_thread_is_received_once)
{
	struct weft_config cfg = t_config(2);

	T_RUN(pthread_kill_main, NULL, &cfg, NULL);
}
END_TEST

/* Sends the signal, cancels itself, then waits: -ECANCELED. */
static void *
cancelled_waiter(void *arg)
{
	struct parked *p = arg;

	T_EXPECT_INT(kill(getpid(), SIGUSR1), ==, 0);
	weft_cancel(weft_self());
	return t_ptr(weft_signal_wait(&p->set, dl()));
}

static void *
cancel_main(void *arg)
{
	sigset_t usr1 = set_of(SIGUSR1, 0);
	struct parked p = { usr1, 0 };
	struct weft_task *t;
	int64_t t0;
	void *r;

	T_EXPECT_INT(weft_signal_notify(&usr1), ==, 0);
	/* The deadline. */
	t0 = weft_now();
	T_EXPECT_INT(weft_signal_wait(&usr1, t0 + 20 * WEFT_MSEC), ==,
		     -ETIMEDOUT);
	T_EXPECT_INT(weft_now() - t0, >=, 20 * WEFT_MSEC);
	/* Cancelled while parked: -ECANCELED. */
	T_EXPECT_INT(weft_spawn(&t, waiter, &p, NULL), ==, 0);
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the waiter");
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, &r, dl()), ==, 0);
	T_EXPECT_INT(t_int(r), ==, -ECANCELED);
	/* The next delivery is not lost to the cancelled waiter. */
	T_EXPECT_INT(kill(getpid(), SIGUSR1), ==, 0);
	T_EXPECT_INT(weft_signal_wait(&usr1, dl()), ==, SIGUSR1);
	/*
	 * A cancelled caller takes nothing, even with one pending: the
	 * delivery is still there for the next waiter (which also makes
	 * sure it was handled before stop restores the default action).
	 */
	T_EXPECT_INT(weft_spawn(&t, cancelled_waiter, &p, NULL), ==, 0);
	T_EXPECT_INT(weft_join(t, &r, dl()), ==, 0);
	T_EXPECT_INT(t_int(r), ==, -ECANCELED);
	T_EXPECT_INT(weft_signal_wait(&usr1, dl()), ==, SIGUSR1);
	T_EXPECT_INT(weft_signal_stop(&usr1), ==, 0);
	return NULL;
}

START_TEST(signal_wait_deadline_and_cancellation)
{
	struct weft_config cfg = t_config(2);

	T_RUN(cancel_main, NULL, &cfg, NULL);
}
END_TEST

static void *
blocked_main(void *arg)
{
	sigset_t usr1 = set_of(SIGUSR1, 0);

	/* Sent while every thread blocked it: delivered once the run began. */
	T_EXPECT_INT(weft_signal_wait(&usr1, dl()), ==, SIGUSR1);
	T_EXPECT_INT(kill(getpid(), SIGUSR1), ==, 0);
	T_EXPECT_INT(weft_signal_wait(&usr1, dl()), ==, SIGUSR1);
	expect_none(&usr1);
	return NULL;
}

START_TEST(signal_blocked_before_the_run_reaches_its_workers)
{
	struct weft_config cfg = t_config(2);
	sigset_t usr1 = set_of(SIGUSR1, 0), now;
	struct sigaction sa;

	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &usr1, NULL), 0);
	ck_assert_int_eq(weft_signal_notify(&usr1), 0);
	/* notify unblocked it here; block it again, as a program might. */
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &usr1, NULL), 0);
	ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
	T_RUN(blocked_main, NULL, &cfg, NULL);
	/* The caller's mask is back as it was. */
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &now), 0);
	ck_assert_int_eq(sigismember(&now, SIGUSR1), 1);
	ck_assert_int_eq(weft_signal_stop(&usr1), 0);
	ck_assert_int_eq(sigaction(SIGUSR1, NULL, &sa), 0);
	ck_assert(sa.sa_handler == SIG_DFL);
	ck_assert_int_eq(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL), 0);
}
END_TEST

static void *
again_main(void *arg)
{
	sigset_t usr1 = set_of(SIGUSR1, 0);
	struct parked p = { usr1, 0 };
	struct weft_task *t;
	void *r;

	/* The delivery sent between the runs is here. */
	T_EXPECT_INT(weft_signal_wait(&usr1, dl()), ==, SIGUSR1);
	/* And the eventfd, made in an earlier run, still wakes a waiter. */
	T_EXPECT_INT(weft_spawn(&t, waiter, &p, NULL), ==, 0);
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the waiter");
	T_EXPECT_INT(kill(getpid(), SIGUSR1), ==, 0);
	T_EXPECT_INT(weft_join(t, &r, dl()), ==, 0);
	T_EXPECT_INT(t_int(r), ==, SIGUSR1);
	expect_none(&usr1);
	return NULL;
}

static void *
first_run_main(void *arg)
{
	sigset_t usr1 = set_of(SIGUSR1, 0);

	T_EXPECT_INT(weft_signal_notify(&usr1), ==, 0);
	T_EXPECT_INT(kill(getpid(), SIGUSR1), ==, 0);
	T_EXPECT_INT(weft_signal_wait(&usr1, dl()), ==, SIGUSR1);
	return NULL;
}

START_TEST(signal_registration_outlives_the_run)
{
	struct weft_config cfg = t_config(2);
	sigset_t usr1 = set_of(SIGUSR1, 0);

	cfg.io_backend = (_i & 1) ? "epoll" : "uring";
	T_RUN(first_run_main, NULL, &cfg, NULL);
	ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
	T_RUN(again_main, NULL, &cfg, NULL);
	ck_assert_int_eq(weft_signal_stop(&usr1), 0);
}
END_TEST

static void *
dump_main(void *arg)
{
	sigset_t winch = set_of(SIGWINCH, 0);

	T_EXPECT_INT(weft_signal_notify(&winch), ==, -EBUSY);
	return NULL;
}

START_TEST(signal_notify_refuses_the_runs_dump_signal)
{
	struct weft_config cfg = t_config(1);

	cfg.dump_signal = SIGWINCH;
	T_RUN(dump_main, NULL, &cfg, NULL);
}
END_TEST

static void *
dump_taken_main(void *arg)
{
	sigset_t winch = set_of(SIGWINCH, 0);

	/* Our handler stayed: the run did not install the dump's over it. */
	T_EXPECT_INT(kill(getpid(), SIGWINCH), ==, 0);
	T_EXPECT_INT(weft_signal_wait(&winch, dl()), ==, SIGWINCH);
	return NULL;
}

START_TEST(signal_notified_before_the_run_wins_over_its_dump_signal)
{
	struct weft_config cfg = t_config(2);
	sigset_t winch = set_of(SIGWINCH, 0);

	ck_assert_int_eq(weft_signal_notify(&winch), 0);
	cfg.dump_signal = SIGWINCH;
	T_RUN(dump_taken_main, NULL, &cfg, NULL);
	ck_assert_int_eq(weft_signal_stop(&winch), 0);
}
END_TEST

START_TEST(signal_bad_arguments)
{
	sigset_t empty = set_of(0, 0), kill9 = set_of(SIGKILL, 0);
	sigset_t segv = set_of(SIGUSR1, SIGSEGV), usr1 = set_of(SIGUSR1, 0);

	ck_assert_int_eq(weft_signal_notify(NULL), -EINVAL);
	ck_assert_int_eq(weft_signal_notify(&empty), -EINVAL);
	ck_assert_int_eq(weft_signal_notify(&kill9), -EINVAL);
	ck_assert_int_eq(weft_signal_notify(&segv), -EINVAL);
	ck_assert_int_eq(weft_signal_stop(NULL), -EINVAL);
	ck_assert_int_eq(weft_signal_wait(&usr1, 0), -EPERM);
}
END_TEST

static Suite *
signal_suite(void)
{
	Suite *s = suite_create("runtime_signal");
	TCase *tc;

	tc = t_tcase(s, "deliver", T_TIMEOUT);
	tcase_add_test(tc, signal_sent_to_the_process_is_received_once);
	tcase_add_test(tc, signal_goes_to_a_waiter_of_its_set_only);
	tcase_add_test(tc,
		       signal_sent_to_either_worker_thread_is_received_once);
	tcase_add_test(tc, signal_wait_deadline_and_cancellation);
	tcase_add_test(tc, signal_blocked_before_the_run_reaches_its_workers);
	tcase_add_loop_test(tc, signal_registration_outlives_the_run, 0, 2);

	tc = t_tcase(s, "errors", T_TIMEOUT);
	tcase_add_test(tc, signal_notify_refuses_the_runs_dump_signal);
	tcase_add_test(tc,
		       signal_notified_before_the_run_wins_over_its_dump_signal);
	tcase_add_test(tc, signal_bad_arguments);
	return s;
}

int
main(void)
{
	return t_main(signal_suite());
}

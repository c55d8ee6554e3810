/* SPDX-License-Identifier: MIT */
/*
 * The lock-order checker (io/base.h, io/lockrank.c).  This file builds the
 * lock wrappers with WEFT_LOCKRANK whatever the library was built with, so
 * the checker itself is tested by every `make test`; `make asan` builds
 * the whole library with it and runs every suite under it.
 *
 * A violation aborts the process, so each bad sequence runs in a forked
 * child whose stderr the test reads: the child must die of SIGABRT and its
 * message must name both locks.
 */
#define WEFT_LOCKRANK 1

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "io/base.h"

/* Run body() in a child; its stderr into out.  Returns the wait status. */
static int
in_child(void (*body)(void), char *out, size_t cap)
{
	int p[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	fflush(stderr);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		/* An abort must not leave a core file per test. */
		signal(SIGABRT, SIG_DFL);
		body();
		_exit(0);
	}
	close(p[1]);
	while (len + 1 < cap &&
	       (n = read(p[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* body() must abort with every string of `want` in its message. */
static void
expect_abort(void (*body)(void), const char *const *want)
{
	char out[2048];
	int st = in_child(body, out, sizeof(out));

	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
		      "no abort (status %d): %s", st, out);
	for (; *want; want++)
		ck_assert_msg(strstr(out, *want), "\"%s\" missing from: %s",
			      *want, out);
}

static ck_spinlock_t a_chan = CK_SPINLOCK_INITIALIZER;
static ck_spinlock_t b_chan = CK_SPINLOCK_INITIALIZER;
static ck_spinlock_t timers0 = CK_SPINLOCK_INITIALIZER;
static ck_spinlock_t timers1 = CK_SPINLOCK_INITIALIZER;
static ck_spinlock_t group = CK_SPINLOCK_INITIALIZER;
static pthread_mutex_t sched = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t stats = PTHREAD_MUTEX_INITIALIZER;

/* The two channel locks in increasing address order. */
static ck_spinlock_t *
chan_lo(void)
{
	return &a_chan < &b_chan ? &a_chan : &b_chan;
}

static ck_spinlock_t *
chan_hi(void)
{
	return &a_chan < &b_chan ? &b_chan : &a_chan;
}

START_TEST(locks_in_rank_order_pass)
{
	weft__mutex_lock(&stats, WEFT_RANK_STATS);
	weft__spin_lock(&group, WEFT_RANK_GROUP);
	weft__spin_lock(chan_lo(), WEFT_RANK_CHAN);
	weft__spin_lock(chan_hi(), WEFT_RANK_CHAN);
	weft__spin_lock(&timers0, WEFT_RANK_TIMERS);
	weft__mutex_lock(&sched, WEFT_RANK_SCHED);
	ck_assert_int_eq(weft__rank_held(), 6);
	WEFT_ASSERT_HELD(&group);
	/* Released in any order. */
	weft__spin_unlock(&group);
	weft__spin_unlock(chan_hi());
	weft__mutex_unlock(&stats);
	weft__mutex_unlock(&sched);
	weft__spin_unlock(&timers0);
	weft__spin_unlock(chan_lo());
	ck_assert_int_eq(weft__rank_held(), 0);
	/* And taken again, after one another. */
	weft__mutex_lock(&sched, WEFT_RANK_SCHED);
	weft__mutex_unlock(&sched);
	weft__spin_lock(&group, WEFT_RANK_GROUP);
	weft__spin_unlock(&group);
	ck_assert_int_eq(weft__rank_held(), 0);
}
END_TEST

static void
chan_under_sched(void)
{
	weft__mutex_lock(&sched, WEFT_RANK_SCHED);
	weft__spin_lock(&a_chan, WEFT_RANK_CHAN);
}

START_TEST(lower_rank_under_higher_aborts_with_both_names)
{
	static const char *const want[] = {
		"weft: lock order: ", "takes the channel lock",
		"while holding the sched lock", "io_lockrank.c:", NULL
	};

	expect_abort(chan_under_sched, want);
}
END_TEST

static void
two_timer_heaps(void)
{
	weft__spin_lock(&timers0, WEFT_RANK_TIMERS);
	weft__spin_lock(&timers1, WEFT_RANK_TIMERS);
}

START_TEST(two_locks_of_one_rank_abort)
{
	static const char *const want[] = {
		"takes the timers lock", "while holding the timers lock", NULL
	};

	expect_abort(two_timer_heaps, want);
}
END_TEST

static void
chans_downwards(void)
{
	weft__spin_lock(chan_hi(), WEFT_RANK_CHAN);
	weft__spin_lock(chan_lo(), WEFT_RANK_CHAN);
}

START_TEST(channels_out_of_address_order_abort)
{
	static const char *const want[] = {
		"takes the channel lock", "while holding the channel lock", NULL
	};

	expect_abort(chans_downwards, want);
}
END_TEST

START_TEST(trylock_may_go_against_the_order)
{
	weft__spin_lock(&timers0, WEFT_RANK_TIMERS);
	ck_assert(weft__spin_trylock(&timers1, WEFT_RANK_TIMERS));
	weft__mutex_lock(&sched, WEFT_RANK_SCHED);
	ck_assert_int_eq(weft__mutex_trylock(&stats, WEFT_RANK_STATS), 0);
	ck_assert_int_eq(weft__rank_held(), 4);
	weft__mutex_unlock(&stats);
	weft__mutex_unlock(&sched);
	weft__spin_unlock(&timers1);
	weft__spin_unlock(&timers0);
	ck_assert_int_eq(weft__rank_held(), 0);
	/* A failed trylock records nothing. */
	weft__spin_lock(&group, WEFT_RANK_GROUP);
	ck_assert(!weft__spin_trylock(&group, WEFT_RANK_GROUP));
	ck_assert_int_eq(weft__rank_held(), 1);
	weft__spin_unlock(&group);
}
END_TEST

static void
assert_unheld(void)
{
	WEFT_ASSERT_HELD(&group);
}

START_TEST(assert_held_aborts_when_not_held)
{
	static const char *const want[] = {
		"needs &group held", "io_lockrank.c:", NULL
	};

	expect_abort(assert_unheld, want);
}
END_TEST

static void
unlock_unheld(void)
{
	weft__spin_unlock(&group);
}

START_TEST(releasing_an_unheld_lock_aborts)
{
	static const char *const want[] = { "which this thread does not hold",
					    NULL };

	expect_abort(unlock_unheld, want);
}
END_TEST

static void
relock(void)
{
	weft__mutex_lock(&stats, WEFT_RANK_STATS);
	weft__mutex_lock(&stats, WEFT_RANK_STATS);
}

START_TEST(taking_a_held_lock_again_aborts)
{
	static const char *const want[] = { "takes the stats lock",
					    "it already holds", NULL };

	expect_abort(relock, want);
}
END_TEST

/* Held locks are per thread: another thread's do not count. */
static void *
other_thread(void *arg)
{
	(void)arg;
	weft__spin_lock(&group, WEFT_RANK_GROUP);
	weft__spin_unlock(&group);
	return (void *)(intptr_t)weft__rank_held();
}

START_TEST(held_locks_are_per_thread)
{
	pthread_t th;
	void *res;

	weft__mutex_lock(&sched, WEFT_RANK_SCHED);
	ck_assert_int_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
	ck_assert_int_eq(pthread_join(th, &res), 0);
	ck_assert_int_eq((int)(intptr_t)res, 0);
	ck_assert_int_eq(weft__rank_held(), 1);
	weft__mutex_unlock(&sched);
}
END_TEST

/* Every rank has a name, and the order is the documented one. */
START_TEST(every_rank_is_named)
{
	for (int r = 0; r < WEFT_RANK_COUNT; r++)
		ck_assert_str_ne(weft__rank_name((enum weft__rank)r), "?");
	ck_assert_str_eq(weft__rank_name(WEFT_RANK_CHAN), "channel");
	ck_assert_int_lt(WEFT_RANK_GROUP, WEFT_RANK_FUTURE);
	ck_assert_int_lt(WEFT_RANK_FUTURE, WEFT_RANK_SCHED);
	ck_assert_int_lt(WEFT_RANK_TIMERS, WEFT_RANK_IO_CANCEL);
}
END_TEST

static Suite *
lockrank_suite(void)
{
	Suite *s = suite_create("io/lockrank");
	TCase *tc = t_tcase(s, "order", T_TIMEOUT);

	tcase_add_test(tc, locks_in_rank_order_pass);
	tcase_add_test(tc, lower_rank_under_higher_aborts_with_both_names);
	tcase_add_test(tc, two_locks_of_one_rank_abort);
	tcase_add_test(tc, channels_out_of_address_order_abort);
	tcase_add_test(tc, trylock_may_go_against_the_order);
	tcase_add_test(tc, assert_held_aborts_when_not_held);
	tcase_add_test(tc, releasing_an_unheld_lock_aborts);
	tcase_add_test(tc, taking_a_held_lock_again_aborts);
	tcase_add_test(tc, held_locks_are_per_thread);
	tcase_add_test(tc, every_rank_is_named);
	return s;
}

int
main(void)
{
	return t_main(lockrank_suite());
}

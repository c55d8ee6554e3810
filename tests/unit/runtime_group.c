/* SPDX-License-Identifier: MIT */
/*
 * Structured groups: wait for all, deadlines, cancellation (of running and
 * not yet started members), weft_group_free() cancelling and awaiting what
 * is left, WEFT_GROUP_CANCEL_ON_ERROR, use from a plain thread.
 */
#include <pthread.h>

#include "harness.h"

#define MEMBERS 16

struct gs {
	struct weft_group *g;
	atomic_int started;
	atomic_int finished;
	atomic_int cancelled;		/* members whose sleep was cancelled */
	atomic_int ran_after_cancel;
	int r_free_inside;
};

static int
yield_ok(void *arg)
{
	struct gs *s = arg;

	atomic_fetch_add(&s->started, 1);
	for (int i = 0; i < 5; i++)
		weft_yield();
	atomic_fetch_add(&s->finished, 1);
	return 0;
}

/* Sleeps until cancelled; returns the sleep's result. */
static int
sleep_forever(void *arg)
{
	struct gs *s = arg;
	int r;

	atomic_fetch_add(&s->started, 1);
	r = weft_sleep(3600 * WEFT_SEC);
	if (r == -ECANCELED)
		atomic_fetch_add(&s->cancelled, 1);
	atomic_fetch_add(&s->finished, 1);
	return r;
}

static int
fail_eio(void *arg)
{
	struct gs *s = arg;

	/* Let the sleepers park first (they were spawned before us). */
	T_WAIT(atomic_load(&s->started) == MEMBERS + 1, "the sleepers");
	return -EIO;
}

static int
free_own_group(void *arg)
{
	struct gs *s = arg;

	s->r_free_inside = weft_group_free(s->g);
	atomic_fetch_add(&s->started, 1);
	return 0;
}

static void *
all_main(void *arg)
{
	struct gs *s = arg;
	struct weft_group *g;

	T_EXPECT_INT(weft_group_make(&g, 0x10), ==, -EINVAL);
	T_EXPECT_INT(weft_group_make(&g, 0), ==, 0);
	T_EXPECT_INT(weft_group_wait(g, WEFT_DEADLINE_NONE), ==, 0);
	for (int i = 0; i < MEMBERS; i++)
		T_EXPECT_INT(weft_group_spawn(g, yield_ok, s, NULL), ==, 0);
	T_EXPECT_INT(weft_group_wait(g, weft_now() + t_stall_ns()), ==, 0);
	T_EXPECT_INT(atomic_load(&s->finished), ==, MEMBERS);
	T_EXPECT_INT(weft_group_live(g), ==, 0);
	T_EXPECT_INT(weft_group_free(g), ==, 0);
	return NULL;
}

START_TEST(group_waits_for_every_member)
{
	struct gs s;

	memset(&s, 0, sizeof(s));
	T_RUN(all_main, &s, NULL, NULL);
}
END_TEST

static void *
cancel_main(void *arg)
{
	struct gs *s = arg;
	struct weft_group *g;

	T_EXPECT_INT(weft_group_make(&g, 0), ==, 0);
	for (int i = 0; i < MEMBERS; i++)
		T_EXPECT_INT(weft_group_spawn(g, sleep_forever, s, NULL), ==,
			     0);
	T_EXPECT_INT(weft_group_live(g), ==, MEMBERS);
	T_WAIT(atomic_load(&s->started) == MEMBERS, "the members to start");
	T_EXPECT_INT(weft_group_wait(g, weft_now() + 2 * WEFT_MSEC), ==,
		     -ETIMEDOUT);
	T_EXPECT_INT(weft_group_live(g), ==, MEMBERS);
	T_EXPECT_INT(weft_group_cancel(g), ==, 0);
	/* Members cancelled by the group do not count as failures. */
	T_EXPECT_INT(weft_group_wait(g, weft_now() + t_stall_ns()), ==, 0);
	T_EXPECT_INT(atomic_load(&s->cancelled), ==, MEMBERS);
	T_EXPECT_INT(weft_group_spawn(g, sleep_forever, s, NULL), ==,
		     -ECANCELED);
	T_EXPECT_INT(weft_group_free(g), ==, 0);
	return NULL;
}

START_TEST(group_wait_times_out_and_cancel_stops_members)
{
	struct gs s;

	memset(&s, 0, sizeof(s));
	T_RUN(cancel_main, &s, NULL, NULL);
}
END_TEST

static void *
free_main(void *arg)
{
	struct gs *s = arg;
	struct weft_group *g;

	T_EXPECT_INT(weft_group_make(&g, 0), ==, 0);
	s->g = g;
	T_EXPECT_INT(weft_group_spawn(g, free_own_group, s, NULL), ==, 0);
	for (int i = 0; i < MEMBERS; i++)
		T_EXPECT_INT(weft_group_spawn(g, sleep_forever, s, NULL), ==,
			     0);
	T_WAIT(atomic_load(&s->started) == MEMBERS + 1,
	       "the members to start");
	/* Cancels them, waits for every one, frees. */
	T_EXPECT_INT(weft_group_free(g), ==, 0);
	T_EXPECT_INT(atomic_load(&s->finished), ==, MEMBERS);
	T_EXPECT_INT(atomic_load(&s->cancelled), ==, MEMBERS);
	T_EXPECT_INT(s->r_free_inside, ==, -EDEADLK);
	return NULL;
}

START_TEST(group_free_cancels_members_and_waits_for_them)
{
	struct gs s;

	memset(&s, 0, sizeof(s));
	T_RUN(free_main, &s, NULL, NULL);
}
END_TEST

static int
must_not_run(void *arg)
{
	struct gs *s = arg;

	atomic_fetch_add(&s->ran_after_cancel, 1);
	return 0;
}

static void *
unstarted_main(void *arg)
{
	struct gs *s = arg;
	struct weft_group *g;

	T_EXPECT_INT(weft_group_make(&g, 0), ==, 0);
	/* One worker, no yield: none of them has run. */
	for (int i = 0; i < MEMBERS; i++)
		T_EXPECT_INT(weft_group_spawn(g, must_not_run, s, NULL), ==, 0);
	T_EXPECT_INT(weft_group_cancel(g), ==, 0);
	T_EXPECT_INT(weft_group_wait(g, weft_now() + t_stall_ns()), ==, 0);
	T_EXPECT_INT(weft_group_live(g), ==, 0);
	T_EXPECT_INT(atomic_load(&s->ran_after_cancel), ==, 0);
	T_EXPECT_INT(weft_group_free(g), ==, 0);
	return NULL;
}

START_TEST(group_cancel_finishes_members_that_never_ran)
{
	struct weft_config cfg = t_config(1);
	struct gs s;

	memset(&s, 0, sizeof(s));
	T_RUN(unstarted_main, &s, &cfg, NULL);
}
END_TEST

static void *
error_main(void *arg)
{
	struct gs *s = arg;
	struct weft_group *g;

	T_EXPECT_INT(weft_group_make(&g, WEFT_GROUP_CANCEL_ON_ERROR), ==, 0);
	for (int i = 0; i < MEMBERS; i++)
		T_EXPECT_INT(weft_group_spawn(g, sleep_forever, s, NULL), ==,
			     0);
	T_EXPECT_INT(weft_group_spawn(g, fail_eio, s, NULL), ==, 0);
	atomic_fetch_add(&s->started, 1);
	/* The failure cancels the sleepers; wait reports it. */
	T_EXPECT_INT(weft_group_wait(g, weft_now() + t_stall_ns()), ==, -EIO);
	T_EXPECT_INT(atomic_load(&s->cancelled), ==, MEMBERS);
	T_EXPECT_INT(weft_group_spawn(g, sleep_forever, s, NULL), ==,
		     -ECANCELED);
	T_EXPECT_INT(weft_group_free(g), ==, -EIO);

	/* Without the flag the failure is reported, nothing is cancelled. */
	atomic_store(&s->started, 0);
	atomic_store(&s->cancelled, 0);
	T_EXPECT_INT(weft_group_make(&g, 0), ==, 0);
	for (int i = 0; i < MEMBERS; i++)
		T_EXPECT_INT(weft_group_spawn(g, sleep_forever, s, NULL), ==,
			     0);
	T_EXPECT_INT(weft_group_spawn(g, fail_eio, s, NULL), ==, 0);
	atomic_fetch_add(&s->started, 1);
	T_WAIT(weft_group_live(g) == MEMBERS, "the failing member to end");
	T_EXPECT_INT(weft_group_wait(g, weft_now() + WEFT_MSEC), ==,
		     -ETIMEDOUT);
	T_EXPECT_INT(atomic_load(&s->cancelled), ==, 0);
	T_EXPECT_INT(weft_group_free(g), ==, -EIO);
	T_EXPECT_INT(atomic_load(&s->cancelled), ==, MEMBERS);
	return NULL;
}

START_TEST(group_first_failure_cancels_the_rest)
{
	struct gs s;

	memset(&s, 0, sizeof(s));
	T_RUN(error_main, &s, NULL, NULL);
}
END_TEST

static void *
thread_body(void *arg)
{
	struct gs *s = arg;
	struct weft_group *g;

	if (weft_group_make(&g, 0) != 0) {
		t_failf(__FILE__, __LINE__, "group_make");
		return NULL;
	}
	for (int i = 0; i < MEMBERS; i++)
		if (weft_group_spawn(g, yield_ok, s, NULL) != 0)
			t_failf(__FILE__, __LINE__, "group_spawn");
	if (weft_group_wait(g, weft_now() + t_stall_ns()) != 0)
		t_failf(__FILE__, __LINE__, "group_wait from a thread");
	if (atomic_load(&s->finished) != MEMBERS)
		t_failf(__FILE__, __LINE__, "members not finished");
	for (int i = 0; i < MEMBERS; i++)
		if (weft_group_spawn(g, sleep_forever, s, NULL) != 0)
			t_failf(__FILE__, __LINE__, "group_spawn");
	if (weft_group_free(g) != 0)
		t_failf(__FILE__, __LINE__, "group_free from a thread");
	/* Every member that started has finished (the rest never ran). */
	if (atomic_load(&s->finished) != atomic_load(&s->started) ||
	    atomic_load(&s->cancelled) != atomic_load(&s->started) - MEMBERS)
		t_failf(__FILE__, __LINE__, "free did not await members");
	return NULL;
}

static void *
thread_main(void *arg)
{
	pthread_t th;

	T_EXPECT_INT(pthread_create(&th, NULL, thread_body, arg), ==, 0);
	/* Park on nothing a plain join would block the worker on. */
	while (pthread_tryjoin_np(th, NULL) != 0)
		T_EXPECT_INT(weft_sleep(WEFT_MSEC), ==, 0);
	return NULL;
}

START_TEST(group_used_from_a_plain_thread)
{
	struct gs s;

	memset(&s, 0, sizeof(s));
	T_RUN(thread_main, &s, NULL, NULL);
}
END_TEST

static Suite *
group_suite(void)
{
	Suite *s = suite_create("runtime/group");
	TCase *tc;

	tc = t_tcase(s, "group", T_TIMEOUT);
	tcase_add_test(tc, group_waits_for_every_member);
	tcase_add_test(tc, group_wait_times_out_and_cancel_stops_members);
	tcase_add_test(tc, group_free_cancels_members_and_waits_for_them);
	tcase_add_test(tc, group_cancel_finishes_members_that_never_ran);
	tcase_add_test(tc, group_first_failure_cancels_the_rest);
	tcase_add_test(tc, group_used_from_a_plain_thread);

	return s;
}

int
main(void)
{
	return t_main(group_suite());
}

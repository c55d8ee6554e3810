/* SPDX-License-Identifier: MIT */
/*
 * Errors through every path: weft_strerror(), relative deadlines
 * (weft_after, weft_after_ms), and weft_fail() ending a task, a group
 * member and a pool job with an error that reaches weft_join(), the
 * future, weft_group_wait(), weft_blocking() and weft_pool_map().
 */
#include <limits.h>

#include "harness.h"

START_TEST(strerror_names_weft_codes)
{
	ck_assert_str_eq(weft_strerror(-ETIMEDOUT), strerror(ETIMEDOUT));
	ck_assert_str_eq(weft_strerror(ECANCELED), strerror(ECANCELED));
	ck_assert_str_eq(weft_strerror(-EMSGSIZE), strerror(EMSGSIZE));
	ck_assert_str_eq(weft_strerror(0), "Success");
	ck_assert_str_eq(weft_strerror(-99999), "Unknown error");
	ck_assert_str_eq(weft_strerror(INT_MIN), "Unknown error");
}
END_TEST

static void *
after_main(void *arg)
{
	int64_t t0 = weft_now(), d;

	d = weft_after(0);
	T_EXPECT(d >= t0 && d <= weft_now(), "weft_after(0) = %" PRId64, d);
	T_EXPECT_INT(weft_after(INT64_MAX), ==, INT64_MAX);
	T_EXPECT_INT(weft_after(INT64_MIN), ==, 0);
	T_EXPECT_INT(weft_after_ms(INT64_MAX), ==, INT64_MAX);
	T_EXPECT_INT(weft_after_ms(INT64_MIN), ==, 0);
	T_EXPECT(weft_after(-WEFT_SEC) != WEFT_DEADLINE_NONE, "became NONE");
	d = weft_after_ms(10);
	T_EXPECT(d >= t0 + 10 * WEFT_MSEC, "weft_after_ms(10) too early");
	/* Usable as any call's deadline. */
	T_EXPECT_INT(weft_sleep_until(weft_after_ms(10)), ==, 0);
	T_EXPECT_INT(weft_now() - t0, >=, 10 * WEFT_MSEC);
	T_EXPECT_INT(weft_join(weft_self(), NULL, weft_after_ms(1)), ==,
		     -EDEADLK);
	return NULL;
}

START_TEST(after_builds_saturating_deadlines)
{
	struct weft_config cfg = t_config(1);

	T_RUN(after_main, NULL, &cfg, NULL);
}
END_TEST

static void *
failing_task(void *arg)
{
	T_EXPECT_INT(weft_fail(-EIO), ==, 0);
	T_EXPECT_INT(weft_fail(-ENOENT), ==, -EALREADY);
	T_EXPECT_INT(weft_fail(0), ==, -EINVAL);
	return t_ptr(7);	/* dropped */
}

static void *
plain_task(void *arg)
{
	return t_ptr(5);
}

static void *
task_fail_main(void *arg)
{
	struct weft_task *t;
	struct weft_future *f;
	void *v = t_ptr(-1);

	/* Joined: the error, and *result untouched. */
	T_EXPECT_INT(weft_spawn(&t, failing_task, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_join(t, &v, WEFT_DEADLINE_NONE), ==, -EIO);
	T_EXPECT(v == t_ptr(-1), "result written for a failed task");
	/* Its future fails with it, whether made before or after. */
	T_EXPECT_INT(weft_spawn(&t, failing_task, NULL, NULL), ==, 0);
	f = weft_future_retain(weft_task_future(t));
	T_EXPECT_INT(weft_future_wait(f, &v, WEFT_DEADLINE_NONE), ==, -EIO);
	T_EXPECT_INT(weft_future_state(f), ==, WEFT_FUTURE_DONE);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, -EIO);
	weft_future_release(f);
	/* A task that did not call it is as before. */
	T_EXPECT_INT(weft_spawn(&t, plain_task, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_join(t, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 5);
	/* Detached: nothing to report to, nothing breaks. */
	T_EXPECT_INT(weft_spawn(NULL, failing_task, NULL, NULL), ==, 0);
	return NULL;
}

START_TEST(fail_ends_a_task_with_an_error)
{
	struct weft_config cfg = t_config(2);

	ck_assert_int_eq(weft_fail(-EIO), -EPERM);
	T_RUN(task_fail_main, NULL, &cfg, NULL);
}
END_TEST

static int
member_ok(void *arg)
{
	return 0;
}

static int
member_fails(void *arg)
{
	T_EXPECT_INT(weft_fail(-ENOENT), ==, 0);
	return 0;	/* ignored */
}

static void *
group_fail_main(void *arg)
{
	struct weft_group *g;

	T_EXPECT_INT(weft_group_make(&g, 0), ==, 0);
	T_EXPECT_INT(weft_group_spawn(g, member_ok, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_group_spawn(g, member_fails, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_group_wait(g, WEFT_DEADLINE_NONE), ==, -ENOENT);
	T_EXPECT_INT(weft_group_free(g), ==, -ENOENT);
	return NULL;
}

static void *
valued_member(void *arg)
{
	if (t_int(arg) < 0)
		T_EXPECT_INT(weft_fail((int)t_int(arg)), ==, 0);
	return arg;
}

static void *
returns_minus_one(void *arg)
{
	return t_ptr(-1);
}

static void *
group_value_main(void *arg)
{
	struct weft_group *g;
	struct weft_future *f1, *f2, *f3;
	void *v = NULL;

	T_EXPECT_INT(weft_group_make(&g, 0), ==, 0);
	T_EXPECT_INT(weft_group_spawn_future(g, &f1, valued_member, t_ptr(9),
					     NULL),
		     ==, 0);
	/* A value that looks like an errno is only a value here. */
	T_EXPECT_INT(weft_group_spawn_future(g, &f2, returns_minus_one, NULL,
					     NULL),
		     ==, 0);
	T_EXPECT_INT(weft_group_wait(g, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_future_wait(f1, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 9);
	T_EXPECT_INT(weft_future_wait(f2, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(v), ==, -1);
	/* weft_fail: the member's future and the group fail with it. */
	T_EXPECT_INT(weft_group_spawn_future(g, &f3, valued_member,
					     t_ptr(-EIO), NULL),
		     ==, 0);
	T_EXPECT_INT(weft_group_wait(g, WEFT_DEADLINE_NONE), ==, -EIO);
	T_EXPECT_INT(weft_future_wait(f3, &v, WEFT_DEADLINE_NONE), ==, -EIO);
	T_EXPECT_INT(weft_group_free(g), ==, -EIO);
	/* The futures outlive the group. */
	T_EXPECT_INT(weft_future_result(f1, &v), ==, 0);
	weft_future_release(f1);
	weft_future_release(f2);
	weft_future_release(f3);
	T_EXPECT_INT(weft_group_spawn_future(NULL, &f1, valued_member, NULL,
					     NULL),
		     ==, -EINVAL);
	return NULL;
}

START_TEST(group_member_returns_a_value_through_its_future)
{
	struct weft_config cfg = t_config(2);

	T_RUN(group_value_main, NULL, &cfg, NULL);
}
END_TEST

START_TEST(fail_in_a_group_member_fails_the_group)
{
	struct weft_config cfg = t_config(2);

	T_RUN(group_fail_main, NULL, &cfg, NULL);
}
END_TEST

/* A job: fails with -(intptr_t)arg if arg is non-zero, else returns 11. */
static void *
job(void *arg)
{
	intptr_t e = t_int(arg);

	if (e) {
		T_EXPECT_INT(weft_fail((int)-e), ==, 0);
		T_EXPECT_INT(weft_fail((int)-e), ==, -EALREADY);
	}
	return t_ptr(11);
}

static void *
pool_fail_main(void *arg)
{
	struct weft_pool *p;
	struct weft_future *f;
	void *args[4] = { t_ptr(0), t_ptr(E2BIG), t_ptr(0), t_ptr(EIO) };
	void *res[4] = { NULL, t_ptr(-1), NULL, t_ptr(-1) };
	void *v = t_ptr(-1);

	T_EXPECT_INT(weft_pool_make(&p, 2, NULL), ==, 0);
	/* A submitted job's future fails. */
	T_EXPECT_INT(weft_pool_submit(p, &f, job, t_ptr(EIO)), ==, 0);
	T_EXPECT_INT(weft_future_wait(f, &v, WEFT_DEADLINE_NONE), ==, -EIO);
	T_EXPECT_INT(weft_future_state(f), ==, WEFT_FUTURE_DONE);
	/* Still only the job may complete its future. */
	T_EXPECT_INT(weft_future_fail(f, -EIO), ==, -EPERM);
	weft_future_release(f);
	T_EXPECT_INT(weft_blocking_submit(&f, job, t_ptr(0)), ==, 0);
	T_EXPECT_INT(weft_future_wait(f, &v, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(v), ==, 11);
	weft_future_release(f);
	/* weft_blocking returns it, *result untouched. */
	v = t_ptr(-1);
	T_EXPECT_INT(weft_blocking(job, t_ptr(ENOSPC), &v, WEFT_DEADLINE_NONE),
		     ==, -ENOSPC);
	T_EXPECT(v == t_ptr(-1), "result written for a failed job");
	T_EXPECT_INT(weft_blocking(job, t_ptr(0), &v, WEFT_DEADLINE_NONE), ==,
		     0);
	T_EXPECT_INT(t_int(v), ==, 11);
	/* map: every job runs, the first failure by index is returned. */
	T_EXPECT_INT(weft_pool_map(p, job, args, res, 4, WEFT_DEADLINE_NONE),
		     ==, -E2BIG);
	T_EXPECT_INT(t_int(res[0]), ==, 11);
	T_EXPECT(res[1] == NULL, "a failed job's slot holds a value");
	T_EXPECT_INT(t_int(res[2]), ==, 11);
	T_EXPECT(res[3] == NULL, "a failed job's slot holds a value");
	T_EXPECT_INT(weft_pool_free(p), ==, 0);
	return NULL;
}

START_TEST(fail_in_a_pool_job_reaches_every_way_of_waiting)
{
	struct weft_config cfg = t_config(2);

	T_RUN(pool_fail_main, NULL, &cfg, NULL);
}
END_TEST

static Suite *
errors_suite(void)
{
	Suite *s = suite_create("runtime_errors");
	TCase *tc;

	tc = t_tcase(s, "names", T_TIMEOUT);
	tcase_add_test(tc, strerror_names_weft_codes);
	tcase_add_test(tc, after_builds_saturating_deadlines);

	tc = t_tcase(s, "fail", T_TIMEOUT);
	tcase_add_test(tc, fail_ends_a_task_with_an_error);
	tcase_add_test(tc, fail_in_a_group_member_fails_the_group);
	tcase_add_test(tc, group_member_returns_a_value_through_its_future);
	tcase_add_test(tc, fail_in_a_pool_job_reaches_every_way_of_waiting);
	return s;
}

int
main(void)
{
	return t_main(errors_suite());
}

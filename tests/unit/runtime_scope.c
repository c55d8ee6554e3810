/* SPDX-License-Identifier: MIT */
/*
 * Deadline scopes: every blocking call with a deadline inside a scope takes
 * the earlier of its own and the scope's (sleeps, joins, channels, futures,
 * groups, the blocking pool, I/O under both backends), scopes nest and are
 * left in order, spawned tasks and group members inherit the deadline, and
 * a call's own earlier deadline still wins.  Each scope's deadline is short
 * (SCOPE_MS) and the calls inside would otherwise never return, so a broken
 * scope hangs the test (Check's timeout) instead of passing.
 */
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "harness.h"

#define SCOPE_MS 20

/* A wait that never ends by itself ends at the scope's deadline. */
#define EXPECT_SCOPE_TIMEOUT(call, sc)                                         \
	do {                                                                   \
		int r_ = (int)(call);                                          \
		T_EXPECT(r_ == -ETIMEDOUT, "%s returned %d, not -ETIMEDOUT",   \
			 #call, r_);                                           \
		T_EXPECT(weft_scope_expired(sc), "%s returned %d before the "  \
			 "scope's deadline", #call, r_);                       \
	} while (0)

static void *
forever_task(void *arg)
{
	(void)arg;
	return t_ptr(weft_sleep_until(WEFT_DEADLINE_NONE));
}

static int
forever_member(void *arg)
{
	(void)arg;
	return weft_sleep_until(WEFT_DEADLINE_NONE);
}

static void *
blocking_sleep(void *arg)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	(void)arg;
	nanosleep(&ts, NULL);
	return NULL;
}

static void *
every_wait_main(void *arg)
{
	struct weft_scope sc;
	struct weft_chan *ch;
	struct weft_future *f;
	struct weft_group *g;
	struct weft_task *t;
	long v;

	(void)arg;
	T_EXPECT_INT(weft_chan_make(&ch, sizeof(long), 0), ==, 0);
	T_EXPECT_INT(weft_future_make(&f), ==, 0);
	T_EXPECT_INT(weft_group_make(&g, 0), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, forever_task, NULL, NULL), ==, 0);

	weft_scope_enter(&sc, weft_after_ms(SCOPE_MS));
	EXPECT_SCOPE_TIMEOUT(weft_sleep_until(WEFT_DEADLINE_NONE), &sc);
	weft_scope_exit(&sc);

	weft_scope_enter(&sc, weft_after_ms(SCOPE_MS));
	EXPECT_SCOPE_TIMEOUT(weft_sleep(3600 * WEFT_SEC), &sc);
	weft_scope_exit(&sc);

	weft_scope_enter(&sc, weft_after_ms(SCOPE_MS));
	EXPECT_SCOPE_TIMEOUT(weft_join(t, NULL, WEFT_DEADLINE_NONE), &sc);
	weft_scope_exit(&sc);

	weft_scope_enter(&sc, weft_after_ms(SCOPE_MS));
	EXPECT_SCOPE_TIMEOUT(weft_chan_recv(ch, &v, WEFT_DEADLINE_NONE), &sc);
	weft_scope_exit(&sc);

	weft_scope_enter(&sc, weft_after_ms(SCOPE_MS));
	v = 1;
	EXPECT_SCOPE_TIMEOUT(weft_chan_send(ch, &v, WEFT_DEADLINE_NONE), &sc);
	weft_scope_exit(&sc);

	weft_scope_enter(&sc, weft_after_ms(SCOPE_MS));
	EXPECT_SCOPE_TIMEOUT(weft_future_wait(f, NULL, WEFT_DEADLINE_NONE),
			     &sc);
	weft_scope_exit(&sc);

	/* A member spawned outside the scope: only the wait is bounded. */
	T_EXPECT_INT(weft_group_spawn(g, forever_member, NULL, NULL), ==, 0);
	weft_scope_enter(&sc, weft_after_ms(SCOPE_MS));
	EXPECT_SCOPE_TIMEOUT(weft_group_wait(g, WEFT_DEADLINE_NONE), &sc);
	weft_scope_exit(&sc);

	/* The blocking pool: the task stops waiting, the job runs on. */
	weft_scope_enter(&sc, weft_after_ms(1));
	EXPECT_SCOPE_TIMEOUT(weft_blocking(blocking_sleep, NULL, NULL,
					   WEFT_DEADLINE_NONE), &sc);
	weft_scope_exit(&sc);

	T_EXPECT_INT(weft_scope_deadline(), ==, WEFT_DEADLINE_NONE);
	/* Outside any scope nothing is bounded: these still wait. */
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_group_cancel(g), ==, 0);
	T_EXPECT(weft_group_wait(g, WEFT_DEADLINE_NONE) != -ETIMEDOUT,
		 "group wait timed out outside a scope");
	weft_group_free(g);
	weft_future_release(f);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(scope_bounds_every_kind_of_wait)
{
	struct weft_config cfg = t_config(2);

	T_RUN(every_wait_main, NULL, &cfg, NULL);
}
END_TEST

static void *
own_deadline_main(void *arg)
{
	struct weft_scope sc;
	struct weft_chan *ch;
	int64_t t0;
	long v;

	(void)arg;
	T_EXPECT_INT(weft_chan_make(&ch, sizeof(long), 0), ==, 0);
	T_EXPECT_INT(weft_scope_enter(&sc, weft_after(3600 * WEFT_SEC)), ==,
		     0);
	/* The call's own deadline is earlier: it wins, as before. */
	t0 = weft_now();
	T_EXPECT_INT(weft_sleep_until(t0 + 2 * WEFT_MSEC), ==, 0);
	T_EXPECT(weft_now() >= t0 + 2 * WEFT_MSEC, "slept too short");
	T_EXPECT_INT(weft_chan_recv(ch, &v, weft_after_ms(2)), ==,
		     -ETIMEDOUT);
	T_EXPECT(!weft_scope_expired(&sc), "the hour-long scope expired");
	T_EXPECT_INT(weft_scope_deadline(), ==, sc.deadline);
	/* A scope with no deadline of its own bounds nothing. */
	{
		struct weft_scope none;

		T_EXPECT_INT(weft_scope_enter(&none, WEFT_DEADLINE_NONE), ==,
			     0);
		T_EXPECT_INT(weft_scope_deadline(), ==, sc.deadline);
		T_EXPECT(!weft_scope_expired(&none), "NONE expired");
		T_EXPECT_INT(weft_scope_exit(&none), ==, 0);
	}
	T_EXPECT_INT(weft_scope_exit(&sc), ==, 0);
	weft_chan_release(ch);
	return NULL;
}

START_TEST(earlier_own_deadline_still_wins)
{
	struct weft_config cfg = t_config(1);

	T_RUN(own_deadline_main, NULL, &cfg, NULL);
}
END_TEST

static void *
nesting_main(void *arg)
{
	struct weft_scope outer, inner, late;
	int64_t od;

	(void)arg;
	od = weft_after(3600 * WEFT_SEC);
	T_EXPECT_INT(weft_scope_enter(&outer, od), ==, 0);
	T_EXPECT_INT(weft_scope_enter(&inner, weft_after_ms(SCOPE_MS)), ==,
		     0);
	T_EXPECT_INT(weft_scope_deadline(), ==, inner.deadline);
	/* An inner scope cannot extend an outer one. */
	T_EXPECT_INT(weft_scope_enter(&late, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(weft_scope_deadline(), ==, inner.deadline);
	EXPECT_SCOPE_TIMEOUT(weft_sleep_until(WEFT_DEADLINE_NONE), &inner);
	/* Out of order: refused, nothing changes. */
	T_EXPECT_INT(weft_scope_exit(&outer), ==, -EINVAL);
	T_EXPECT_INT(weft_scope_exit(&inner), ==, -EINVAL);
	T_EXPECT_INT(weft_scope_deadline(), ==, inner.deadline);
	T_EXPECT_INT(weft_scope_exit(&late), ==, 0);
	T_EXPECT_INT(weft_scope_exit(&inner), ==, 0);
	T_EXPECT_INT(weft_scope_deadline(), ==, od);
	/* Past the inner deadline, the outer one still lets calls wait. */
	T_EXPECT_INT(weft_sleep(WEFT_MSEC), ==, 0);
	T_EXPECT_INT(weft_scope_exit(&outer), ==, 0);
	T_EXPECT_INT(weft_scope_exit(&outer), ==, -EINVAL);
	T_EXPECT_INT(weft_scope_deadline(), ==, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(scopes_nest_and_are_left_in_order)
{
	struct weft_config cfg = t_config(1);

	T_RUN(nesting_main, NULL, &cfg, NULL);
}
END_TEST

static int64_t child_deadline;

static void *
child_task(void *arg)
{
	(void)arg;
	child_deadline = weft_scope_deadline();
	return t_ptr(weft_sleep_until(WEFT_DEADLINE_NONE));
}

static int
child_member(void *arg)
{
	(void)arg;
	return weft_sleep_until(WEFT_DEADLINE_NONE);
}

static void *
inherit_main(void *arg)
{
	struct weft_scope sc;
	struct weft_group *g;
	struct weft_task *t;
	void *r = NULL;

	(void)arg;
	T_EXPECT_INT(weft_scope_enter(&sc, weft_after_ms(SCOPE_MS)), ==, 0);
	T_EXPECT_INT(weft_spawn(&t, child_task, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_group_make(&g, 0), ==, 0);
	T_EXPECT_INT(weft_group_spawn(g, child_member, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_scope_exit(&sc), ==, 0);
	/* Outside the scope now; the children keep its deadline. */
	T_EXPECT_INT(weft_join(t, &r, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(r), ==, -ETIMEDOUT);
	T_EXPECT_INT(child_deadline, ==, sc.deadline);
	T_EXPECT_INT(weft_group_wait(g, WEFT_DEADLINE_NONE), ==, -ETIMEDOUT);
	weft_group_free(g);
	/* Spawned outside: no deadline. */
	T_EXPECT_INT(weft_spawn(&t, child_task, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_yield(), ==, 0);
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, &r, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(r), ==, -ECANCELED);
	T_EXPECT_INT(child_deadline, ==, WEFT_DEADLINE_NONE);
	return NULL;
}

START_TEST(spawned_tasks_and_members_inherit_the_deadline)
{
	struct weft_config cfg = t_config(2);

	T_RUN(inherit_main, NULL, &cfg, NULL);
}
END_TEST

static void *
io_main(void *arg)
{
	struct weft_scope sc;
	char buf[8];
	int p[2];

	(void)arg;
	T_EXPECT_INT(pipe2(p, O_CLOEXEC | O_NONBLOCK), ==, 0);
	weft_scope_enter(&sc, weft_after_ms(SCOPE_MS));
	EXPECT_SCOPE_TIMEOUT(weft_read(p[0], buf, sizeof(buf),
				       WEFT_DEADLINE_NONE), &sc);
	EXPECT_SCOPE_TIMEOUT(weft_poll(p[0], POLLIN, WEFT_DEADLINE_NONE),
			     &sc);
	weft_scope_exit(&sc);
	/* Data there: the call completes inside an expired-looking window. */
	T_EXPECT_INT(write(p[1], "x", 1), ==, 1);
	weft_scope_enter(&sc, weft_after_ms(SCOPE_MS));
	T_EXPECT_INT(weft_read(p[0], buf, sizeof(buf), WEFT_DEADLINE_NONE),
		     ==, 1);
	weft_scope_exit(&sc);
	/* weft_close is never bounded: it closes even in a passed scope. */
	weft_scope_enter(&sc, 0);
	T_EXPECT_INT(weft_close(p[0], WEFT_DEADLINE_NONE), ==, 0);
	weft_scope_exit(&sc);
	close(p[1]);
	return NULL;
}

START_TEST(scope_bounds_io_under_both_backends)
{
	static const char *const backends[] = { "uring", "epoll" };
	struct weft_config cfg = t_config(1);

	cfg.io_backend = backends[_i];
	if (_i == 0) {
		/* Where io_uring is refused the run falls back or fails. */
		int r = weft_run(io_main, NULL, &cfg, NULL);

		ck_assert_msg(r == 0 || r == -ENOSYS || r == -EPERM,
			      "weft_run: %d", r);
		T_ASSERT_NO_TASK_FAILURES();
		return;
	}
	T_RUN(io_main, NULL, &cfg, NULL);
}
END_TEST

static void *
misuse_main(void *arg)
{
	struct weft_scope sc;

	(void)arg;
	T_EXPECT_INT(weft_scope_enter(NULL, 0), ==, -EINVAL);
	T_EXPECT_INT(weft_scope_exit(NULL), ==, -EINVAL);
	T_EXPECT_INT(weft_scope_exit(&sc), ==, -EINVAL);
	T_EXPECT(!weft_scope_expired(NULL), "NULL expired");
	return NULL;
}

START_TEST(misuse_is_refused)
{
	struct weft_scope sc;
	struct weft_config cfg = t_config(1);

	/* Outside coroutine context. */
	ck_assert_int_eq(weft_scope_enter(&sc, 0), -EPERM);
	ck_assert_int_eq(weft_scope_exit(&sc), -EPERM);
	ck_assert_int_eq(weft_scope_deadline(), WEFT_DEADLINE_NONE);
	T_RUN(misuse_main, NULL, &cfg, NULL);
}
END_TEST

static Suite *
scope_suite(void)
{
	Suite *s = suite_create("runtime_scope");
	TCase *tc;

	tc = t_tcase(s, "scope", T_TIMEOUT);
	tcase_add_test(tc, scope_bounds_every_kind_of_wait);
	tcase_add_test(tc, earlier_own_deadline_still_wins);
	tcase_add_test(tc, scopes_nest_and_are_left_in_order);
	tcase_add_test(tc, spawned_tasks_and_members_inherit_the_deadline);
	tcase_add_loop_test(tc, scope_bounds_io_under_both_backends, 0, 2);
	tcase_add_test(tc, misuse_is_refused);
	return s;
}

int
main(void)
{
	return t_main(scope_suite());
}

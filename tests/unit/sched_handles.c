/* SPDX-License-Identifier: MIT */
/*
 * Misused task handles are refused, not obeyed: a second join, a join of a
 * detached task, a double detach, a join or detach of a task spawned
 * without a handle all return -EINVAL and leave every other task alone,
 * and the run still ends.  In the ASan build, a released handle stays
 * detectable after many more spawns (the descriptor quarantine), and a
 * read of a released descriptor or of an exited task's stack is reported.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void *
ret_arg(void *arg)
{
	return arg;
}

/*
 * Parks until `*gate` is set (or the run cancels it once main returned);
 * an innocent bystander.
 */
static void *
bystander(void *arg)
{
	atomic_int *gate = arg;

	while (!atomic_load(gate))
		if (weft_sleep(WEFT_MSEC) < 0)
			break;
	return t_ptr(7);
}

static void *
double_join_main(void *arg)
{
	struct weft_task *t;
	void *res = NULL;

	T_EXPECT_INT(weft_spawn(&t, ret_arg, t_ptr(1), NULL), ==, 0);
	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 1);
	res = t_ptr(99);
	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, -EINVAL);
	T_EXPECT_INT(t_int(res), ==, 99);
	T_EXPECT_INT(weft_detach(t), ==, -EINVAL);
	return NULL;
}

START_TEST(second_join_is_refused)
{
	T_RUN(double_join_main, NULL, NULL, NULL);
}
END_TEST

static void *
double_detach_main(void *arg)
{
	/*
	 * Not on this stack: the detached bystander may read it after we
	 * returned (and the ASan build poisons a finished task's stack).
	 */
	static atomic_int gate;
	struct weft_task *t, *b;
	void *res = NULL;

	atomic_store(&gate, 0);
	T_EXPECT_INT(weft_spawn(&t, bystander, &gate, NULL), ==, 0);
	T_EXPECT_INT(weft_detach(t), ==, 0);
	/* t still runs: its descriptor is alive, its handle given up. */
	T_EXPECT_INT(weft_detach(t), ==, -EINVAL);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, -EINVAL);
	/* A new task must not inherit the damage. */
	T_EXPECT_INT(weft_spawn(&b, bystander, &gate, NULL), ==, 0);
	atomic_store(&gate, 1);
	T_EXPECT_INT(weft_join(b, &res, WEFT_DEADLINE_NONE), ==, 0);
	T_EXPECT_INT(t_int(res), ==, 7);
	return NULL;
}

START_TEST(double_detach_is_refused_and_the_run_ends)
{
	T_RUN(double_detach_main, NULL, NULL, NULL);
}
END_TEST

/* Spawned without a handle: it tries to give up the handle it lacks. */
static void *
self_detacher(void *arg)
{
	atomic_int *res = arg;

	atomic_store(res, weft_detach(weft_self()));
	return NULL;
}

static void *
no_handle_main(void *arg)
{
	atomic_int res = 1;

	T_EXPECT_INT(weft_spawn(NULL, self_detacher, &res, NULL), ==, 0);
	T_WAIT(atomic_load(&res) != 1, "the task to try");
	T_EXPECT_INT(atomic_load(&res), ==, -EINVAL);
	return NULL;
}

START_TEST(handle_not_held_is_refused)
{
	T_RUN(no_handle_main, NULL, NULL, NULL);
}
END_TEST

/* Many tasks racing to detach one handle: exactly one wins. */
struct racers {
	struct weft_task *victim;
	atomic_int go;
	atomic_int ok, refused;
};

static void *
racer(void *arg)
{
	struct racers *r = arg;
	int ret;

	T_WAIT(atomic_load(&r->go), "the start");
	ret = weft_detach(r->victim);
	if (ret == 0)
		atomic_fetch_add(&r->ok, 1);
	else if (ret == -EINVAL)
		atomic_fetch_add(&r->refused, 1);
	return NULL;
}

static void *
race_main(void *arg)
{
	struct racers *r = arg;
	struct weft_task *t[16];
	static atomic_int gate;	/* the detached victim outlives us */

	atomic_store(&gate, 0);
	T_EXPECT_INT(weft_spawn(&r->victim, bystander, &gate, NULL), ==, 0);
	for (int i = 0; i < 16; i++)
		T_EXPECT_INT(weft_spawn(&t[i], racer, r, NULL), ==, 0);
	atomic_store(&r->go, 1);
	for (int i = 0; i < 16; i++)
		T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE), ==, 0);
	atomic_store(&gate, 1);
	return NULL;
}

START_TEST(racing_detaches_release_once)
{
	struct racers r;

	memset(&r, 0, sizeof(r));
	T_RUN(race_main, &r, NULL, NULL);
	ck_assert_int_eq(atomic_load(&r.ok), 1);
	ck_assert_int_eq(atomic_load(&r.refused), 15);
}
END_TEST

#if defined(WEFT_ASAN)
/* ASan build: a stale handle survives reuse pressure, reads are caught. */
static void *
quarantine_main(void *arg)
{
	struct weft_task *t, *u;

	T_EXPECT_INT(weft_spawn(&t, ret_arg, NULL, NULL), ==, 0);
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, 0);
	for (int i = 0; i < 500; i++) {
		T_EXPECT_INT(weft_spawn(&u, ret_arg, NULL, NULL), ==, 0);
		T_EXPECT_INT(weft_join(u, NULL, WEFT_DEADLINE_NONE), ==, 0);
		T_EXPECT(u != t, "descriptor reused after %d spawns", i);
	}
	T_EXPECT_INT(weft_join(t, NULL, WEFT_DEADLINE_NONE), ==, -EINVAL);
	return NULL;
}

START_TEST(asan_stale_join_refused_after_500_spawns)
{
	T_RUN(quarantine_main, NULL, NULL, NULL);
}
END_TEST

static char *volatile stale_local;

static void *
leak_local(void *arg)
{
	char local[64];

	memset(local, 1, sizeof(local));
	stale_local = local;
	return t_ptr(local[3]);
}

static void *
stale_reads_main(void *arg)
{
	int what = t_int(arg);
	struct weft_task *t;

	weft_spawn(&t, leak_local, NULL, NULL);
	weft_join(t, NULL, WEFT_DEADLINE_NONE);
	if (what == 0)
		return t_ptr(weft_task_id(t));		/* released descriptor */
	return t_ptr(stale_local[3]);			/* exited task's stack */
}

static void
stale_child(void *what)
{
	weft_run(stale_reads_main, what, NULL, NULL);
}

static void
check_reported(int what)
{
	static char out[16384];
	int status;

	t_child_stderr(stale_child, t_ptr(what), out, sizeof(out), &status);
	ck_assert_msg(!(WIFEXITED(status) && WEXITSTATUS(status) == 0),
		      "the stale read went unreported: %.400s", out);
	ck_assert_msg(strstr(out, "use-after-poison") != NULL,
		      "no ASan report: %.600s", out);
}

START_TEST(asan_reports_read_of_released_descriptor)
{
	check_reported(0);
}
END_TEST

START_TEST(asan_reports_read_of_exited_stack)
{
	check_reported(1);
}
END_TEST
#endif

static Suite *
sched_handles_suite(void)
{
	Suite *s = suite_create("sched/handles");
	TCase *tc;

	tc = t_tcase(s, "misuse", T_TIMEOUT);
	tcase_add_test(tc, second_join_is_refused);
	tcase_add_test(tc, double_detach_is_refused_and_the_run_ends);
	tcase_add_test(tc, handle_not_held_is_refused);
	tcase_add_test(tc, racing_detaches_release_once);
#if defined(WEFT_ASAN)
	tc = t_tcase(s, "asan", T_TIMEOUT);
	tcase_add_test(tc, asan_stale_join_refused_after_500_spawns);
	tcase_add_test(tc, asan_reports_read_of_released_descriptor);
	tcase_add_test(tc, asan_reports_read_of_exited_stack);
#endif
	return s;
}

int
main(void)
{
	return t_main(sched_handles_suite());
}

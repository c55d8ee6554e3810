/* SPDX-License-Identifier: MIT */
/*
 * Timers: weft_sleep() and weft_sleep_until() never return early, past
 * deadlines return at once, cancellation interrupts a sleep, and a sleeping
 * task does not hold its worker.  "Never early" is a correctness property;
 * how late a sleep may be is a benchmark's business, not a test's.
 */
#include <time.h>

#include "harness.h"

#if defined(WEFT_TSAN)
#define MANY_TIMERS 2000
#else
#define MANY_TIMERS 10000
#endif

/*
 * One napping task: `rounds` sleeps of random length 0..max_ns, by
 * weft_sleep() or weft_sleep_until(); counts bad returns and early wakes.
 */
struct nap {
	uint64_t seed;
	int rounds;
	int64_t max_ns;
	bool until;
	int bad_ret;	     /* sleeps that did not return 0 */
	int first_bad;	     /* ... the first such return */
	int early;	     /* sleeps that returned before the deadline */
	int64_t worst_early; /* ns, the largest miss */
	atomic_int *done;
};

static void *
nap_task(void *arg)
{
	struct nap *n = arg;
	int64_t deadline;
	int64_t d;
	int64_t now;
	int i;
	int r;

	for (i = 0; i < n->rounds; i++) {
		d = (int64_t)(t_rand(&n->seed) % (uint64_t)(n->max_ns + 1));
		deadline = weft_now() + d;
		r = n->until ? weft_sleep_until(deadline) : weft_sleep(d);
		now = weft_now();
		if (r != 0) {
			if (n->bad_ret++ == 0)
				n->first_bad = r;
			continue;
		}
		if (now < deadline) {
			n->early++;
			if (deadline - now > n->worst_early)
				n->worst_early = deadline - now;
		}
	}
	if (n->done)
		atomic_fetch_add(n->done, 1);
	return NULL;
}

struct naps {
	int count;
	bool detached;
	struct nap *n;
};

static void *
naps_main(void *arg)
{
	struct naps *ns = arg;
	struct weft_task **t;
	int i;
	int r;

	t = calloc((size_t)ns->count, sizeof(*t));
	T_EXPECT(t != NULL, "calloc failed");
	if (!t)
		return NULL;
	for (i = 0; i < ns->count; i++) {
		r = weft_spawn(ns->detached ? NULL : &t[i], nap_task, &ns->n[i],
			       NULL);
		T_EXPECT_INT(r, ==, 0);
		if (r != 0)
			break;
	}
	if (!ns->detached)
		while (i-- > 0)
			T_EXPECT_INT(weft_join(t[i], NULL, WEFT_DEADLINE_NONE),
				     ==, 0);
	else
		/* Returning would cancel them: wait for the last one. */
		T_WAIT(atomic_load(ns->n[0].done) == ns->count,
		       "the detached nappers");
	free(t);
	return NULL;
}

/* Run `count` nappers and check that no sleep failed or woke early. */
static void
check_naps(int count, int rounds, int64_t max_ns, bool until, bool detached)
{
	struct naps ns = {count, detached, NULL};
	atomic_int done = 0;
	int early = 0;
	int bad = 0;
	int first_bad = 0;
	int64_t worst = 0;
	int i;

	ns.n = calloc((size_t)count, sizeof(*ns.n));
	ck_assert_ptr_nonnull(ns.n);
	for (i = 0; i < count; i++) {
		ns.n[i].seed = 0x5eed0000u + (uint64_t)i;
		ns.n[i].rounds = rounds;
		ns.n[i].max_ns = max_ns;
		ns.n[i].until = until;
		ns.n[i].done = &done;
	}
	T_RUN(naps_main, &ns, NULL, NULL);
	for (i = 0; i < count; i++) {
		if (ns.n[i].bad_ret && !bad)
			first_bad = ns.n[i].first_bad;
		bad += ns.n[i].bad_ret;
		early += ns.n[i].early;
		if (ns.n[i].worst_early > worst)
			worst = ns.n[i].worst_early;
	}
	ck_assert_msg(atomic_load(&done) == count, "%d of %d nappers finished",
		      atomic_load(&done), count);
	ck_assert_msg(bad == 0, "%d sleeps failed, the first with %d", bad,
		      first_bad);
	ck_assert_msg(early == 0,
		      "%d of %d sleeps returned early, by up to %" PRId64 " ns",
		      early, count * rounds, worst);
	free(ns.n);
}

/*
 * sleep
 */

START_TEST(sleep_never_returns_early)
{
	check_naps(1000, 3, 5 * WEFT_MSEC, false, false);
}
END_TEST

START_TEST(sleep_until_never_returns_early)
{
	check_naps(1000, 3, 5 * WEFT_MSEC, true, false);
}
END_TEST

START_TEST(many_timers_all_fire)
{
	struct weft_worker_stats ws;
	struct weft_stats s;
	uint64_t fired = 0;
	int i;

	/* Detached: weft_run() itself has to wait for every timer. */
	check_naps(MANY_TIMERS, 1, 20 * WEFT_MSEC, false, true);
	ck_assert_int_eq(weft_stats(&s), 0);
	for (i = 0; i < s.workers; i++) {
		ck_assert_int_eq(weft_worker_stats(i, &ws), 0);
		fired += ws.timers_fired;
	}
	ck_assert_msg(fired > 0, "no worker counted a fired timer");
}
END_TEST

struct instant {
	int r_zero;
	int r_past;
	int r_origin;
	int r_now;
	int64_t before;
	int64_t after;
	int64_t now_deadline;
};

static void *
instant_main(void *arg)
{
	struct instant *in = arg;

	in->r_zero = weft_sleep(0);
	in->r_past = weft_sleep_until(weft_now() - WEFT_SEC);
	in->r_origin = weft_sleep_until(0);
	in->now_deadline = weft_now();
	in->r_now = weft_sleep_until(in->now_deadline);
	in->after = weft_now();
	return NULL;
}

START_TEST(sleep_until_past_deadline_returns_zero)
{
	struct instant in;

	memset(&in, 0x55, sizeof(in));
	T_RUN(instant_main, &in, NULL, NULL);
	ck_assert_int_eq(in.r_zero, 0);
	ck_assert_int_eq(in.r_past, 0);
	ck_assert_int_eq(in.r_origin, 0);
	ck_assert_int_eq(in.r_now, 0);
	ck_assert(in.after >= in.now_deadline);
}
END_TEST

/* With no other task, the sleeping runtime must wake itself up. */
static void *
lone_sleep_main(void *arg)
{
	int64_t dl;
	int64_t now;
	int i;

	for (i = 0; i < 10; i++) {
		dl = weft_now() + (i + 1) * WEFT_MSEC;
		T_EXPECT_INT(weft_sleep_until(dl), ==, 0);
		now = weft_now();
		T_EXPECT(now >= dl, "woke %" PRId64 " ns early", dl - now);
	}
	return NULL;
}

START_TEST(lone_sleeper_wakes_idle_runtime)
{
	struct weft_config one = t_config(1);

	T_RUN(lone_sleep_main, NULL, &one, NULL);
	T_RUN(lone_sleep_main, NULL, NULL, NULL);
}
END_TEST

/*
 * One worker: A sleeps for an hour, B (runnable meanwhile) cancels it.  If
 * a sleep held the worker thread, B could never run.
 */
struct hold {
	atomic_int a_started;
	struct weft_task *a;
	void *a_result;
	int r_cancel;
};

static void *
hold_a(void *arg)
{
	struct hold *h = arg;

	atomic_store(&h->a_started, 1);
	return t_ptr(weft_sleep(3600 * WEFT_SEC));
}

static void *
hold_b(void *arg)
{
	struct hold *h = arg;

	while (!atomic_load(&h->a_started))
		weft_yield();
	h->r_cancel = weft_cancel(h->a);
	return NULL;
}

static void *
hold_main(void *arg)
{
	struct hold *h = arg;
	struct weft_task *b;
	int r;

	r = weft_spawn(&h->a, hold_a, h, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	r = weft_spawn(&b, hold_b, h, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0) {
		weft_cancel(h->a);
	} else {
		T_EXPECT_INT(weft_join(b, NULL, WEFT_DEADLINE_NONE), ==, 0);
	}
	T_EXPECT_INT(weft_join(h->a, &h->a_result, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(sleeping_task_does_not_hold_its_worker)
{
	struct weft_config cfg = t_config(1);
	struct hold h;

	memset(&h, 0, sizeof(h));
	h.r_cancel = 1;
	T_RUN(hold_main, &h, &cfg, NULL);
	ck_assert_int_eq(h.r_cancel, 0);
	ck_assert_int_eq(t_int(h.a_result), -ECANCELED);
}
END_TEST

/*
 * weft_sleep(INT64_MAX) means "until cancelled": now + ns saturates instead
 * of overflowing into the past (where the sleep returned at once, and UBSan
 * saw the signed overflow).  One worker, so the main task's yields and the
 * sleeper strictly alternate: after a thousand rounds on the worker the
 * sleeper must still be parked, with no wall clock involved.
 */
struct forever {
	atomic_int started;
	int state_after;	/* the sleeper's state after the rounds */
	void *result;
};

static void *
sleep_forever(void *arg)
{
	struct forever *fv = arg;

	atomic_store(&fv->started, 1);
	return t_ptr(weft_sleep(INT64_MAX));
}

static void *
forever_main(void *arg)
{
	struct forever *fv = arg;
	struct weft_task *t;
	int r;
	int i;

	r = weft_spawn(&t, sleep_forever, fv, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	while (!atomic_load(&fv->started))
		weft_yield();
	for (i = 0; i < 1000; i++)
		T_EXPECT_INT(weft_yield(), ==, 0);
	fv->state_after = weft_task_state(t);
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, &fv->result, WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(sleep_int64_max_lasts_until_cancelled)
{
	struct weft_config cfg = t_config(1);
	struct forever fv;

	memset(&fv, 0, sizeof(fv));
	fv.state_after = -1;
	T_RUN(forever_main, &fv, &cfg, NULL);
	ck_assert_msg(fv.state_after == WEFT_SUSPENDED,
		      "weft_sleep(INT64_MAX) not parked after 1000 rounds: "
		      "state %d", fv.state_after);
	ck_assert_int_eq(t_int(fv.result), -ECANCELED);
}
END_TEST

/* Negative durations are past deadlines: a yield, 0. */
static void *
negative_main(void *arg)
{
	int *r = arg;

	r[0] = weft_sleep(-1);
	r[1] = weft_sleep(INT64_MIN);
	r[2] = weft_sleep_until(INT64_MIN);
	return NULL;
}

START_TEST(sleep_negative_returns_zero)
{
	int r[3] = { 1, 1, 1 };

	T_RUN(negative_main, r, NULL, NULL);
	ck_assert_int_eq(r[0], 0);
	ck_assert_int_eq(r[1], 0);
	ck_assert_int_eq(r[2], 0);
}
END_TEST

/*
 * cancel
 */

struct until_cancel {
	atomic_int started;
};

static void *
sleep_until_far(void *arg)
{
	struct until_cancel *uc = arg;

	atomic_fetch_add(&uc->started, 1);
	return t_ptr(weft_sleep_until(weft_now() + 3600 * WEFT_SEC));
}

static void *
until_cancel_main(void *arg)
{
	struct until_cancel *uc = arg;
	struct weft_task *t;
	void *res = NULL;
	int r;

	r = weft_spawn(&t, sleep_until_far, uc, NULL);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(weft_task_state(t) == WEFT_SUSPENDED, "the task to park");
	T_EXPECT_INT(weft_cancel(t), ==, 0);
	T_EXPECT_INT(weft_join(t, &res, WEFT_DEADLINE_NONE), ==, 0);
	return res;
}

START_TEST(cancel_interrupts_sleep_until)
{
	struct until_cancel uc;
	void *res = NULL;

	memset(&uc, 0, sizeof(uc));
	T_RUN(until_cancel_main, &uc, NULL, &res);
	ck_assert_msg(t_int(res) == -ECANCELED,
		      "cancelled weft_sleep_until() returned %ld",
		      (long)t_int(res));
}
END_TEST

/*
 * Cancelling a thousand parked timers (removing them from the middle of
 * the timer structures) must not disturb a thousand short sleeps running
 * at the same time.
 */
#define CANCEL_MIX 1000

struct cancel_mix {
	struct until_cancel uc;
	struct nap short_naps[CANCEL_MIX];
	long not_cancelled; /* long sleeps that returned anything else */
	long first_ret;
};

static void *
cancel_mix_main(void *arg)
{
	struct cancel_mix *cm = arg;
	struct weft_task **lng;
	struct weft_task **sht;
	int nl = 0;
	int ns = 0;
	void *res;
	int i;

	lng = calloc(CANCEL_MIX, sizeof(*lng));
	sht = calloc(CANCEL_MIX, sizeof(*sht));
	T_EXPECT(lng && sht, "calloc failed");
	if (!lng || !sht)
		goto out;
	for (nl = 0; nl < CANCEL_MIX; nl++)
		if (weft_spawn(&lng[nl], sleep_until_far, &cm->uc, NULL) != 0)
			break;
	T_EXPECT_INT(nl, ==, CANCEL_MIX);
	T_WAIT(atomic_load(&cm->uc.started) == nl, "the long sleepers");
	for (ns = 0; ns < CANCEL_MIX; ns++)
		if (weft_spawn(&sht[ns], nap_task, &cm->short_naps[ns], NULL) !=
		    0)
			break;
	T_EXPECT_INT(ns, ==, CANCEL_MIX);
	/* Cancel in a scattered order while the short naps run. */
	for (i = 0; i < nl; i++)
		T_EXPECT_INT(weft_cancel(lng[(i * 7919) % nl]), ==, 0);
	for (i = 0; i < nl; i++) {
		res = NULL;
		T_EXPECT_INT(weft_join(lng[i], &res, WEFT_DEADLINE_NONE), ==,
			     0);
		if (t_int(res) != -ECANCELED && cm->not_cancelled++ == 0)
			cm->first_ret = (long)t_int(res);
	}
	for (i = 0; i < ns; i++)
		T_EXPECT_INT(weft_join(sht[i], NULL, WEFT_DEADLINE_NONE), ==,
			     0);
out:
	free(lng);
	free(sht);
	return NULL;
}

START_TEST(cancelled_timers_do_not_disturb_others)
{
	struct cancel_mix *cm = calloc(1, sizeof(*cm));
	int early = 0;
	int bad = 0;
	int i;

	ck_assert_ptr_nonnull(cm);
	for (i = 0; i < CANCEL_MIX; i++) {
		cm->short_naps[i].seed = 0xc0ffee00u + (uint64_t)i;
		cm->short_naps[i].rounds = 3;
		cm->short_naps[i].max_ns = 3 * WEFT_MSEC;
		cm->short_naps[i].until = i % 2;
	}
	T_RUN(cancel_mix_main, cm, NULL, NULL);
	ck_assert_msg(cm->not_cancelled == 0,
		      "%ld cancelled sleeps did not return -ECANCELED "
		      "(first: %ld)",
		      cm->not_cancelled, cm->first_ret);
	for (i = 0; i < CANCEL_MIX; i++) {
		bad += cm->short_naps[i].bad_ret;
		early += cm->short_naps[i].early;
	}
	ck_assert_msg(bad == 0, "%d short sleeps failed", bad);
	ck_assert_msg(early == 0, "%d short sleeps returned early", early);
	free(cm);
}
END_TEST

/*
 * clock
 */

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

START_TEST(now_is_clock_monotonic_in_ns)
{
	int64_t before;
	int64_t now;
	int64_t after;
	int64_t prev = 0;
	int i;

	for (i = 0; i < 10000; i++) {
		before = mono_ns();
		now = weft_now();
		after = mono_ns();
		ck_assert_msg(before <= now && now <= after,
			      "weft_now() %" PRId64 " outside CLOCK_MONOTONIC "
			      "[%" PRId64 ", %" PRId64 "]",
			      now, before, after);
		ck_assert_msg(now >= prev, "weft_now() went backwards");
		prev = now;
	}
}
END_TEST

static Suite *
sched_timer_suite(void)
{
	Suite *s = suite_create("sched/timer");
	TCase *tc;

	tc = t_tcase(s, "sleep", T_TIMEOUT);
	tcase_add_test(tc, sleep_never_returns_early);
	tcase_add_test(tc, sleep_until_never_returns_early);
	tcase_add_test(tc, many_timers_all_fire);
	tcase_add_test(tc, sleep_until_past_deadline_returns_zero);
	tcase_add_test(tc, lone_sleeper_wakes_idle_runtime);
	tcase_add_test(tc, sleeping_task_does_not_hold_its_worker);
	tcase_add_test(tc, sleep_int64_max_lasts_until_cancelled);
	tcase_add_test(tc, sleep_negative_returns_zero);

	tc = t_tcase(s, "cancel", T_TIMEOUT);
	tcase_add_test(tc, cancel_interrupts_sleep_until);
	tcase_add_test(tc, cancelled_timers_do_not_disturb_others);

	tc = t_tcase(s, "clock", T_TIMEOUT);
	tcase_add_test(tc, now_is_clock_monotonic_in_ns);

	return s;
}

int
main(void)
{
	return t_main(sched_timer_suite());
}

/* SPDX-License-Identifier: MIT */
/*
 * NULL object pointers: every public call that takes an object (a task, a
 * lock, a channel, a future, a group, a generator, a pool, an out
 * pointer) answers a NULL with a defined value instead of crashing:
 * -EINVAL from the calls that return an int or ssize_t, the value weft.h
 * documents from the others (0, "", NULL, a final state, a no-op).
 *
 * One table, one loop test over it: each row runs in its own forked child
 * (CK_FORK), inside a task (many calls check their calling context
 * first), so a crash fails that row alone (Check reports the iteration,
 * the row's index in the table; a wrong value names the call).
 */
#include <fcntl.h>
#include <limits.h>

#include "harness.h"

static void *
nop(void *arg)
{
	return arg;
}

static void *
nop_gen(struct weft_gen *g, void *arg)
{
	return arg;
}

static int
nop_member(void *arg)
{
	return 0;
}

static void
nop_once(void *arg)
{
}

static void
nop_cb(struct weft_future *f, void *arg)
{
}

/* 0 for "", 1 for another string, -1 for NULL. */
static long
str_is_empty(const char *s)
{
	return s ? (*s ? 1 : 0) : -1;
}

/* A deadline for calls that must not wait: -ETIMEDOUT shows they did. */
static int64_t
dl(void)
{
	return weft_now() + t_stall_ns();
}

/* Second-argument cases need a real first object. */
static struct weft_cond a_cond = WEFT_COND_INIT;
static struct weft_future *one_null[1];

/*
 * The table: the call, and what it must return.  Wrap a void call as
 * `(call, 0L)`.  Please keep the rows in weft.h's order.
 */
#define NULL_CASES(X)                                                          \
	/* Tasks */                                                            \
	X(weft_spawn(NULL, NULL, NULL, NULL), -EINVAL)                         \
	X(weft_join(NULL, NULL, dl()), -EINVAL)                                \
	X(weft_detach(NULL), -EINVAL)                                          \
	X(weft_cancel(NULL), -EINVAL)                                          \
	X(weft_task_id(NULL), 0)                                               \
	X(str_is_empty(weft_task_name(NULL)), 0)                               \
	X(weft_task_state(NULL), WEFT_CANCELLED)                               \
	X(weft_task_is_cancelled(NULL), false)                                 \
	/* Channels and select */                                              \
	X(weft_chan_make(NULL, 8, 0), -EINVAL)                                 \
	X(weft_chan_retain(NULL), 0)                                           \
	X((weft_chan_release(NULL), 0L), 0)                                    \
	X(weft_chan_send(NULL, "x", dl()), -EINVAL)                            \
	X(weft_chan_recv(NULL, NULL, dl()), -EINVAL)                           \
	X(weft_chan_trysend(NULL, "x"), -EINVAL)                               \
	X(weft_chan_tryrecv(NULL, NULL), -EINVAL)                              \
	X(weft_chan_close(NULL), -EINVAL)                                      \
	X(weft_chan_len(NULL), 0)                                              \
	X(weft_chan_cap(NULL), 0)                                              \
	X(weft_select(NULL, 1, dl()), -EINVAL)                                 \
	/* Sync primitives */                                                  \
	X(weft_mutex_lock(NULL, dl()), -EINVAL)                                \
	X(weft_mutex_trylock(NULL), -EINVAL)                                   \
	X(weft_mutex_unlock(NULL), -EINVAL)                                    \
	X(weft_rwlock_rdlock(NULL, dl()), -EINVAL)                             \
	X(weft_rwlock_wrlock(NULL, dl()), -EINVAL)                             \
	X(weft_rwlock_tryrdlock(NULL), -EINVAL)                                \
	X(weft_rwlock_trywrlock(NULL), -EINVAL)                                \
	X(weft_rwlock_unlock(NULL), -EINVAL)                                   \
	X(weft_cond_wait(NULL, NULL, dl()), -EINVAL)                           \
	X(weft_cond_wait(&a_cond, NULL, dl()), -EINVAL)                        \
	X(weft_cond_signal(NULL), -EINVAL)                                     \
	X(weft_cond_broadcast(NULL), -EINVAL)                                  \
	X(weft_waitgroup_add(NULL, 1), -EINVAL)                                \
	X(weft_waitgroup_done(NULL), -EINVAL)                                  \
	X(weft_waitgroup_wait(NULL, dl()), -EINVAL)                            \
	X(weft_sem_init(NULL, 1), -EINVAL)                                     \
	X(weft_sem_acquire(NULL, dl()), -EINVAL)                               \
	X(weft_sem_tryacquire(NULL), -EINVAL)                                  \
	X(weft_sem_release(NULL), -EINVAL)                                     \
	X(weft_once(NULL, nop_once, NULL, dl()), -EINVAL)                      \
	/* Generators */                                                       \
	X(weft_gen_make(NULL, nop_gen, NULL, NULL), -EINVAL)                   \
	X(weft_gen_next(NULL, NULL), -EINVAL)                                  \
	X(weft_gen_send(NULL, NULL, NULL), -EINVAL)                            \
	X(weft_gen_yield(NULL, NULL, NULL), -EINVAL)                           \
	X(weft_gen_yield_from(NULL, NULL, NULL), -EINVAL)                      \
	X(weft_gen_close(NULL), -EINVAL)                                       \
	X(weft_gen_state(NULL), WEFT_GEN_CLOSED)                               \
	X(weft_gen_free(NULL), -EINVAL)                                        \
	/* I/O and sockets: the object pointers, not the buffers */            \
	X(weft_readv(0, NULL, 1, dl()), -EINVAL)                               \
	X(weft_writev(1, NULL, 1, dl()), -EINVAL)                              \
	X(weft_recvmsg(0, NULL, 0, dl()), -EINVAL)                             \
	X(weft_sendmsg(1, NULL, 0, dl()), -EINVAL)                             \
	X(weft_connect(0, NULL, 0, dl()), -EINVAL)                             \
	X(weft_openat(AT_FDCWD, NULL, 0, 0, dl()), -EINVAL)                    \
	X(weft_tcp_dial(NULL, 80, dl()), -EINVAL)                              \
	X(weft_unix_listen(NULL, NULL), -EINVAL)                               \
	X(weft_unix_dial(NULL, dl()), -EINVAL)                                 \
	X(weft_serve(0, NULL, NULL, NULL), -EINVAL)                            \
	/* Futures */                                                          \
	X(weft_future_make(NULL), -EINVAL)                                     \
	X(weft_future_retain(NULL), 0)                                         \
	X((weft_future_release(NULL), 0L), 0)                                  \
	X(weft_future_set(NULL, NULL), -EINVAL)                                \
	X(weft_future_fail(NULL, -EIO), -EINVAL)                               \
	X(weft_future_cancel(NULL), -EINVAL)                                   \
	X(weft_future_state(NULL), WEFT_FUTURE_CANCELLED)                      \
	X(weft_future_result(NULL, NULL), -EINVAL)                             \
	X(weft_future_wait(NULL, NULL, dl()), -EINVAL)                         \
	X(weft_future_on_done(NULL, nop_cb, NULL), -EINVAL)                    \
	X(weft_wait_all(NULL, 1, dl()), -EINVAL)                               \
	X(weft_wait_all(one_null, 1, dl()), -EINVAL)                           \
	X(weft_wait_any(NULL, 1, dl()), -EINVAL)                               \
	X(weft_wait_any(one_null, 1, dl()), -EINVAL)                           \
	X(weft_task_future(NULL), 0)                                           \
	X(weft_join_for(NULL, NULL, dl(), 0), -EINVAL)                         \
	/* Groups */                                                           \
	X(weft_group_make(NULL, 0), -EINVAL)                                   \
	X(weft_group_spawn(NULL, nop_member, NULL, NULL), -EINVAL)             \
	X(weft_group_wait(NULL, dl()), -EINVAL)                                \
	X(weft_group_cancel(NULL), -EINVAL)                                    \
	X(weft_group_live(NULL), -EINVAL)                                      \
	X(weft_group_free(NULL), -EINVAL)                                      \
	/* Blocking pools */                                                   \
	X(weft_pool_make(NULL, 1, NULL), -EINVAL)                              \
	X(weft_pool_submit(NULL, NULL, nop, NULL), -EINVAL)                    \
	X(weft_pool_map(NULL, nop, NULL, NULL, 1, dl()), -EINVAL)              \
	X(weft_pool_free(NULL), -EINVAL)                                       \
	X(weft_blocking(NULL, NULL, NULL, dl()), -EINVAL)                      \
	X(weft_blocking_submit(NULL, nop, NULL), -EINVAL)                      \
	/* Diagnostics and introspection */                                    \
	X(weft_dump(NULL), -EINVAL)                                            \
	X(weft_stats(NULL), -EINVAL)                                           \
	X(weft_worker_stats(0, NULL), -EINVAL)

struct null_case {
	const char *call;
	long want;
};

static const struct null_case null_cases[] = {
#define X(expr, want) { #expr, (long)(want) },
	NULL_CASES(X)
#undef X
};

#define N_NULL_CASES ((int)(sizeof(null_cases) / sizeof(null_cases[0])))

/* Row `i` of the table, called. */
static long
null_call(int i)
{
	int k = 0;

#define X(expr, want)                                                          \
	if (i == k++)                                                          \
		return (long)(expr);
	NULL_CASES(X)
#undef X
	return LONG_MIN;
}

struct null_run {
	int i;
	long got;
};

static void *
null_main(void *arg)
{
	struct null_run *nr = arg;

	nr->got = null_call(nr->i);
	return NULL;
}

START_TEST(null_object_returns_the_documented_value)
{
	struct weft_config cfg = t_config(2);
	struct null_run nr = { .i = _i, .got = LONG_MIN };

	T_RUN(null_main, &nr, &cfg, NULL);
	ck_assert_msg(nr.got == null_cases[_i].want,
		      "%s returned %ld, expected %ld", null_cases[_i].call,
		      nr.got, null_cases[_i].want);
}
END_TEST

static Suite *
runtime_null_suite(void)
{
	Suite *s = suite_create("runtime/null");
	TCase *tc;

	tc = t_tcase(s, "null", T_TIMEOUT);
	tcase_add_loop_test(tc, null_object_returns_the_documented_value, 0,
			    N_NULL_CASES);
	return s;
}

int
main(void)
{
	return t_main(runtime_null_suite());
}

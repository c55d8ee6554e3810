/* SPDX-License-Identifier: MIT */
/*
 * The fault-injection suite's churn: every kind of weft object at once,
 * with every outcome accounted for, so that a resource limit, a blocked
 * io_uring or an injected allocation failure (WEFT_FAULT_ALLOC) can only
 * make calls fail with an error, never lose work.
 *
 *   churn_faults [--seconds S] [--workers N] [--drivers D] [--rounds R]
 *                [--flood N] [--seed X]
 *
 * Runs R runs (weft_run) of S/R seconds each on N workers (0: the
 * runtime's default).  In each, D driver tasks loop over random
 * operations until the time is up:
 *   spawn    tasks that count themselves; each is joined
 *   chan     a producer (the driver) and 1..3 consumer tasks over a
 *            channel of capacity 0, 1, 4 or 16
 *   select   sends into one of two channels by weft_select, a consumer
 *            that selects over both
 *   mutex    tasks incrementing a counter under a weft_mutex
 *   future   a future set by a task, with a done callback; task futures
 *            gathered by weft_wait_all
 *   group    members of a weft_group, waited for together
 *   cancel   tasks cancelled while they sleep (or before they start), by
 *            weft_cancel and by weft_join_for(WEFT_JOIN_CANCEL)
 *   io       socket pairs: a writer task, the driver reads to EOF
 *   flood    (only with --flood N) up to N tasks parked at once on one
 *            channel, then released: presses memory limits
 * and checks, after each run:
 *   - every spawn returned 0 and then ran, or returned a negative errno
 *     (-ENOMEM, -EMFILE, -ENFILE, -EAGAIN: "refused"); a task that was
 *     accepted, never cancelled and never ran is lost;
 *   - every value whose send returned 0 was received exactly once (count
 *     and a sum of hashes of the values, which are unique);
 *   - every future set was seen by its waiter, every done callback
 *     registered ran within the run;
 *   - every group member accepted ran; every cancelled task either ran
 *     and saw -ECANCELED or never started (join: -ECHILD);
 *   - every byte written on a socket pair was read, in order;
 *   - the runtime is empty (no live task, no stack in use), the process
 *     holds as many fds after each later run as after the first, and its
 *     RSS after the last run has not grown past the first run's by more
 *     than a slack (see check_rss()).
 * Prints one summary line ("churn_faults: OK backend=... ") and exits 0,
 * or prints what was lost and exits 1.  A watchdog exits 3 with the
 * counters if no operation completes for 15 s.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

/* How long a wait may take before the work behind it counts as lost. */
#define LOST_AFTER   (5 * WEFT_SEC)
#define IO_PAIRS_MAX 4

struct opts {
	double seconds;
	int workers;
	int drivers;
	int rounds;
	long flood;
	uint64_t seed;
};

static struct opts opt = {
	.seconds = 10,
	.rounds = 2,
	.seed = 0x5eed,
};

/* Counters, over all runs (every check holds for the totals too). */
struct counters {
	atomic_long ops;
	/* Spawns of counted tasks: accepted, ran, refused, lost. */
	atomic_long spawn_ok;
	atomic_long spawn_ran;
	atomic_long spawn_lost;
	/* Refusals (any object) by cause. */
	atomic_long refused_nomem;
	atomic_long refused_nofile;
	atomic_long refused_again;
	/* Channels (and select) values: count and sum of hashes. */
	atomic_long chans;
	atomic_long sent;
	atomic_long recvd;
	atomic_ulong sent_sum;
	atomic_ulong recvd_sum;
	atomic_long send_timeouts;
	/* Futures and done callbacks. */
	atomic_long fut_set;
	atomic_long fut_seen;
	atomic_long cb_registered;
	atomic_long cb_ran;
	/* Groups. */
	atomic_long members_ok;
	atomic_long members_ran;
	/* Cancellation. */
	atomic_long cancel_spawned;
	atomic_long cancel_observed;
	atomic_long cancel_prestart;
	/* Socket pairs. */
	atomic_long io_pairs;
	atomic_long io_written;
	atomic_long io_read;
	/* Flood. */
	atomic_long flood_peak;
};

static struct counters c;
static atomic_long failures;
/* churn_main started in this run; runs weft_run refused (-ENOMEM). */
static atomic_bool main_ran;
static int run_refusals;
static char first_failure[512];
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long progress;
static int64_t run_deadline;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_lock);
	if (atomic_fetch_add(&failures, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(first_failure, sizeof(first_failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&fail_lock);
}

/*
 * A refusal: an error that says "not now, no resources".  Counts it and
 * returns true; any other error is a failure (returns false).
 */
static bool
refused(int err, const char *what)
{
	switch (err) {
	case -ENOMEM:
		atomic_fetch_add(&c.refused_nomem, 1);
		return true;
	case -EMFILE:
	case -ENFILE:
		atomic_fetch_add(&c.refused_nofile, 1);
		return true;
	case -EAGAIN:
		atomic_fetch_add(&c.refused_again, 1);
		return true;
	default:
		fail("%s: unexpected error %d (%s)", what, err, strerror(-err));
		return false;
	}
}

static uint64_t
rnd(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t
hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Unique values for channels: a global sequence. */
static atomic_ulong value_seq;

static uint64_t
next_value(void)
{
	return atomic_fetch_add(&value_seq, 1) + 1;
}

/*
 * Counted tasks.  spawn_counted() returns 0 with *t set, or the refusal;
 * join_counted() joins a task that nobody cancelled and returns true with
 * *res set when it ran: anything but 0 from the join is a failure, and
 * -ECHILD (it never ran) a lost task.
 */
static int
spawn_counted(struct weft_task **t, weft_fn fn, void *arg)
{
	int r = weft_spawn(t, fn, arg, NULL);

	if (r == 0)
		atomic_fetch_add(&c.spawn_ok, 1);
	else
		refused(r, "weft_spawn");
	return r;
}

static void
ran(void)
{
	atomic_fetch_add(&c.spawn_ran, 1);
}

static bool
join_counted(struct weft_task *t, void **res, const char *what)
{
	int r = weft_join(t, res, WEFT_DEADLINE_NONE);

	atomic_fetch_add(&progress, 1);
	if (r == -ECHILD) {
		atomic_fetch_add(&c.spawn_lost, 1);
		fail("%s: a task accepted by weft_spawn never ran "
		     "(join: -ECHILD, and nobody cancelled it)",
		     what);
	} else if (r != 0) {
		fail("%s: weft_join: %d", what, r);
	}
	return r == 0;
}

/* --- spawn ------------------------------------------------------------ */

static void *
counted_task(void *arg)
{
	ran();
	if ((uintptr_t)arg & 1)
		weft_yield();
	return arg;
}

static void
op_spawn(uint64_t *s)
{
	struct weft_task *t[8];
	void *arg[8];
	int n = 1 + (int)(rnd(s) % 8);
	int k = 0;

	for (int i = 0; i < n; i++) {
		arg[k] = (void *)(uintptr_t)(rnd(s) & 0xffff);
		if (spawn_counted(&t[k], counted_task, arg[k]) == 0)
			k++;
	}
	for (int i = 0; i < k; i++) {
		void *res;

		if (join_counted(t[i], &res, "spawn") && res != arg[i])
			fail("spawn: task returned %p, want %p", res, arg[i]);
	}
}

/* --- chan ------------------------------------------------------------- */

struct chan_op {
	struct weft_chan *ch;
	struct weft_chan *ch2; /* select: the second channel */
};

static void
received(uint64_t v)
{
	atomic_fetch_add(&c.recvd, 1);
	atomic_fetch_add(&c.recvd_sum, hash64(v));
}

static void
sent_one(uint64_t v)
{
	atomic_fetch_add(&c.sent, 1);
	atomic_fetch_add(&c.sent_sum, hash64(v));
}

static void *
consumer_task(void *arg)
{
	struct chan_op *co = arg;
	uint64_t v;
	int r;

	ran();
	while ((r = weft_chan_recv(co->ch, &v, WEFT_DEADLINE_NONE)) == 0)
		received(v);
	if (r != -EPIPE)
		fail("chan: recv: %d", r);
	return NULL;
}

static void
op_chan(uint64_t *s)
{
	static const size_t caps[] = {0, 1, 4, 16};
	struct weft_task *t[3];
	struct chan_op co;
	int nc = 1 + (int)(rnd(s) % 3);
	int m = 1 + (int)(rnd(s) % 200);
	int k = 0;
	int r;

	r = weft_chan_make(&co.ch, sizeof(uint64_t), caps[rnd(s) % 4]);
	if (r < 0) {
		refused(r, "weft_chan_make");
		return;
	}
	atomic_fetch_add(&c.chans, 1);
	for (int i = 0; i < nc; i++)
		if (spawn_counted(&t[k], consumer_task, &co) == 0)
			k++;
	for (int i = 0; k && i < m; i++) {
		uint64_t v = next_value();

		r = weft_chan_send(co.ch, &v, weft_now() + LOST_AFTER);
		if (r == -ETIMEDOUT) {
			/* Not delivered, so not counted; the join says why. */
			atomic_fetch_add(&c.send_timeouts, 1);
			break;
		}
		if (r != 0) {
			fail("chan: send: %d", r);
			break;
		}
		sent_one(v);
	}
	weft_chan_close(co.ch);
	for (int i = 0; i < k; i++)
		join_counted(t[i], NULL, "chan consumer");
	weft_chan_release(co.ch);
}

/* --- select ----------------------------------------------------------- */

static void *
select_consumer_task(void *arg)
{
	struct chan_op *co = arg;
	struct weft_select_case cs[2];
	uint64_t v[2];
	int open = 2;

	ran();
	memset(cs, 0, sizeof(cs));
	cs[0].ch = co->ch;
	cs[1].ch = co->ch2;
	for (int i = 0; i < 2; i++) {
		cs[i].op = WEFT_SELECT_RECV;
		cs[i].val = &v[i];
	}
	while (open) {
		int i = weft_select(cs, 2, WEFT_DEADLINE_NONE);

		if (i < 0) {
			fail("select: recv: %d", i);
			return NULL;
		}
		if (cs[i].result == -EPIPE) {
			cs[i].ch = NULL;
			open--;
		} else if (cs[i].result == 0) {
			received(v[i]);
		} else {
			fail("select: case result %d", cs[i].result);
			return NULL;
		}
	}
	return NULL;
}

static void
op_select(uint64_t *s)
{
	struct weft_select_case cs[2];
	struct weft_task *t;
	struct chan_op co;
	int m = 1 + (int)(rnd(s) % 100);
	uint64_t v;
	int r;

	r = weft_chan_make(&co.ch, sizeof(uint64_t), 0);
	if (r < 0) {
		refused(r, "weft_chan_make");
		return;
	}
	r = weft_chan_make(&co.ch2, sizeof(uint64_t), 2);
	if (r < 0) {
		refused(r, "weft_chan_make");
		weft_chan_release(co.ch);
		return;
	}
	atomic_fetch_add(&c.chans, 2);
	if (spawn_counted(&t, select_consumer_task, &co) == 0) {
		memset(cs, 0, sizeof(cs));
		cs[0].ch = co.ch;
		cs[1].ch = co.ch2;
		cs[0].op = cs[1].op = WEFT_SELECT_SEND;
		cs[0].val = cs[1].val = &v;
		for (int i = 0; i < m; i++) {
			v = next_value();
			r = weft_select(cs, 2, weft_now() + LOST_AFTER);
			if (r == -ETIMEDOUT) {
				atomic_fetch_add(&c.send_timeouts, 1);
				break;
			}
			if (r < 0 || cs[r].result != 0) {
				fail("select: send: %d",
				     r < 0 ? r : cs[r].result);
				break;
			}
			sent_one(v);
		}
	} else {
		t = NULL;
	}
	weft_chan_close(co.ch);
	weft_chan_close(co.ch2);
	if (t)
		join_counted(t, NULL, "select consumer");
	weft_chan_release(co.ch);
	weft_chan_release(co.ch2);
}

/* --- mutex ------------------------------------------------------------ */

#define MUTEX_ROUNDS 50

struct mutex_op {
	struct weft_mutex m;
	long counter; /* under m */
	long ran;     /* under m: tasks that took it at least once */
};

static void *
mutex_task(void *arg)
{
	struct mutex_op *mo = arg;

	ran();
	for (int i = 0; i < MUTEX_ROUNDS; i++) {
		int r = weft_mutex_lock(&mo->m, WEFT_DEADLINE_NONE);

		if (r != 0) {
			fail("mutex: lock: %d", r);
			return NULL;
		}
		if (i == 0)
			mo->ran++;
		mo->counter++;
		if (i % 8 == 0)
			weft_yield();
		weft_mutex_unlock(&mo->m);
	}
	return NULL;
}

static void
op_mutex(uint64_t *s)
{
	struct mutex_op mo = {.m = WEFT_MUTEX_INIT};
	struct weft_task *t[6];
	int n = 2 + (int)(rnd(s) % 5);
	int k = 0;

	for (int i = 0; i < n; i++)
		if (spawn_counted(&t[k], mutex_task, &mo) == 0)
			k++;
	for (int i = 0; i < k; i++)
		join_counted(t[i], NULL, "mutex");
	if (mo.counter != mo.ran * MUTEX_ROUNDS)
		fail("mutex: counter %ld, want %ld (%ld tasks)", mo.counter,
		     mo.ran * MUTEX_ROUNDS, mo.ran);
}

/* --- future ----------------------------------------------------------- */

struct future_op {
	struct weft_future *f;
	uint64_t v;
};

static void *
setter_task(void *arg)
{
	struct future_op *fo = arg;
	int r;

	ran();
	weft_yield();
	r = weft_future_set(fo->f, (void *)(uintptr_t)fo->v);
	if (r != 0)
		fail("future: set: %d", r);
	else
		atomic_fetch_add(&c.fut_set, 1);
	return NULL;
}

static void
done_cb(struct weft_future *f, void *arg)
{
	atomic_fetch_add(&c.cb_ran, 1);
}

static void
op_future(uint64_t *s)
{
	struct weft_future *fs[4];
	struct weft_task *t[4];
	struct future_op fo;
	void *val = NULL;
	int k = 0, nf = 0;
	int r;

	r = weft_future_make(&fo.f);
	if (r < 0) {
		refused(r, "weft_future_make");
		goto gather;
	}
	fo.v = rnd(s) | 1;
	r = weft_future_on_done(fo.f, done_cb, NULL);
	if (r == 0)
		atomic_fetch_add(&c.cb_registered, 1);
	else
		refused(r, "weft_future_on_done");
	if (spawn_counted(&t[0], setter_task, &fo) == 0) {
		r = weft_future_wait(fo.f, &val, weft_now() + LOST_AFTER);
		if (r == 0 && (uintptr_t)val == fo.v)
			atomic_fetch_add(&c.fut_seen, 1);
		else if (r != -ETIMEDOUT)
			fail("future: wait: %d, value %p want %#" PRIx64, r,
			     val, fo.v);
		join_counted(t[0], NULL, "future setter");
	}
	/*
	 * Unset (the setter was refused, or lost): complete it anyway, so
	 * that its callback is due; -EALREADY when it was set.
	 */
	weft_future_cancel(fo.f);
	weft_future_release(fo.f);

gather:
	/* Task futures, gathered. */
	for (int i = 0; i < 4; i++)
		if (spawn_counted(&t[k], counted_task, (void *)(uintptr_t)i) ==
		    0)
			k++;
	for (int i = 0; i < k; i++) {
		struct weft_future *f = weft_task_future(t[i]);

		if (f)
			fs[nf++] = f;
		else
			atomic_fetch_add(&c.refused_nomem, 1);
	}
	if (nf) {
		r = weft_wait_all(fs, nf, WEFT_DEADLINE_NONE);
		if (r != 0)
			fail("future: wait_all: %d", r);
	}
	for (int i = 0; i < k; i++)
		join_counted(t[i], NULL, "gathered task");
}

/* --- group ------------------------------------------------------------ */

static int
member_fn(void *arg)
{
	atomic_fetch_add(&c.members_ran, 1);
	if ((uintptr_t)arg & 1)
		weft_yield();
	return 0;
}

static void
op_group(uint64_t *s)
{
	struct weft_group *g;
	int n = 1 + (int)(rnd(s) % 8);
	int r;

	r = weft_group_make(&g, 0);
	if (r < 0) {
		refused(r, "weft_group_make");
		return;
	}
	for (int i = 0; i < n; i++) {
		r = weft_group_spawn(g, member_fn, (void *)(uintptr_t)i, NULL);
		if (r == 0)
			atomic_fetch_add(&c.members_ok, 1);
		else
			refused(r, "weft_group_spawn");
	}
	r = weft_group_wait(g, WEFT_DEADLINE_NONE);
	if (r != 0)
		fail("group: wait: %d", r);
	r = weft_group_free(g);
	if (r != 0)
		fail("group: free: %d", r);
}

/* --- cancel ----------------------------------------------------------- */

#define CANCEL_MARK ((void *)(intptr_t)-ECANCELED)

static void *
sleeper_task(void *arg)
{
	atomic_bool *started = arg;
	int r;

	atomic_store(started, true);
	atomic_fetch_add(&c.cancel_observed, 1);
	r = weft_sleep(3600 * WEFT_SEC);
	if (r != -ECANCELED)
		fail("cancel: sleep returned %d", r);
	return CANCEL_MARK;
}

/*
 * Cancel t and wait for it.  Once the join (or join_for, which awaits the
 * cancelled task) has returned, t has ended, so `started` is final: a task
 * that started must have seen -ECANCELED, one that did not must join with
 * -ECHILD.
 */
static void
cancel_one(struct weft_task *t, atomic_bool *started, bool join_for)
{
	void *res = NULL;
	int r;

	if (join_for) {
		r = weft_join_for(t, &res, weft_now() + 100 * WEFT_USEC,
				  WEFT_JOIN_CANCEL);
		if (r != -ETIMEDOUT && r != -ECHILD)
			fail("cancel: join_for: %d", r);
		else if (r == -ECHILD && atomic_load(started))
			fail("cancel: join_for: -ECHILD for a task that ran");
	} else {
		weft_cancel(t);
		r = weft_join(t, &res, WEFT_DEADLINE_NONE);
		if (r == -ECHILD && atomic_load(started))
			fail("cancel: join: -ECHILD for a task that ran");
		else if (r != -ECHILD && (r != 0 || res != CANCEL_MARK))
			fail("cancel: join: %d, result %p", r, res);
	}
	if (!atomic_load(started))
		atomic_fetch_add(&c.cancel_prestart, 1);
}

static void
op_cancel(uint64_t *s)
{
	struct weft_task *t[6];
	atomic_bool started[6];
	int n = 1 + (int)(rnd(s) % 6);
	int k = 0;

	for (int i = 0; i < n; i++) {
		int r;

		atomic_init(&started[k], false);
		r = weft_spawn(&t[k], sleeper_task, &started[k], NULL);
		if (r == 0) {
			atomic_fetch_add(&c.cancel_spawned, 1);
			k++;
		} else {
			refused(r, "weft_spawn");
		}
	}
	if (rnd(s) & 1)
		weft_yield(); /* some start, some do not */
	for (int i = 0; i < k; i++)
		cancel_one(t[i], &started[i], rnd(s) % 3 == 0);
}

/* --- io --------------------------------------------------------------- */

struct io_pair {
	int fd[2];
	size_t len;
	size_t done; /* written by the writer */
	uint8_t seed;
};

static uint8_t
pattern(uint8_t seed, size_t i)
{
	return (uint8_t)(seed + i * 31 + (i >> 8));
}

static void *
writer_task(void *arg)
{
	struct io_pair *p = arg;
	uint8_t buf[1024];
	size_t off = 0;

	ran();
	while (off < p->len) {
		size_t n =
			p->len - off < sizeof(buf) ? p->len - off : sizeof(buf);
		size_t done = 0;
		ssize_t r;

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(p->seed, off + i);
		r = weft_write_full(p->fd[1], buf, n, &done,
				    weft_now() + LOST_AFTER);
		off += done;
		if (r < 0) {
			if (r != -ENOMEM && r != -EAGAIN)
				fail("io: write: %zd", r);
			break;
		}
	}
	p->done = off;
	atomic_fetch_add(&c.io_written, (long)off);
	close(p->fd[1]);
	p->fd[1] = -1;
	return NULL;
}

static void
op_io(uint64_t *s)
{
	struct io_pair p[IO_PAIRS_MAX];
	struct weft_task *t[IO_PAIRS_MAX];
	bool spawned[IO_PAIRS_MAX];
	int n = 1 + (int)(rnd(s) % IO_PAIRS_MAX);
	int k = 0;

	/* Open them all first: the fds are held together. */
	for (int i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
			       p[k].fd) < 0) {
			refused(-errno, "socketpair");
			continue;
		}
		p[k].len = (size_t)(rnd(s) % (64 * 1024)) + 1;
		p[k].seed = (uint8_t)rnd(s);
		p[k].done = 0;
		k++;
	}
	atomic_fetch_add(&c.io_pairs, k);
	for (int i = 0; i < k; i++)
		spawned[i] = spawn_counted(&t[i], writer_task, &p[i]) == 0;
	for (int i = 0; i < k; i++) {
		uint8_t buf[1024];
		size_t got = 0;
		bool bad = false;

		if (!spawned[i])
			goto close_pair;
		for (;;) {
			ssize_t r = weft_read(p[i].fd[0], buf, sizeof(buf),
					      weft_now() + LOST_AFTER);

			if (r == 0)
				break;
			if (r < 0) {
				if (r != -ETIMEDOUT)
					fail("io: read: %zd", r);
				break;
			}
			for (ssize_t j = 0; !bad && j < r; j++)
				if (buf[j] != pattern(p[i].seed, got + j)) {
					fail("io: byte %zu differs", got + j);
					bad = true;
				}
			got += (size_t)r;
		}
		atomic_fetch_add(&c.io_read, (long)got);
		if (join_counted(t[i], NULL, "io writer") && got != p[i].done)
			fail("io: read %zu bytes of the %zu written", got,
			     p[i].done);
	close_pair:
		close(p[i].fd[0]);
		if (p[i].fd[1] >= 0) /* the writer did not run */
			close(p[i].fd[1]);
	}
}

/* --- flood ------------------------------------------------------------ */

static void *
parked_task(void *arg)
{
	struct weft_chan *gate = arg;
	int r;

	ran();
	r = weft_chan_recv(gate, NULL, WEFT_DEADLINE_NONE);
	if (r != -EPIPE)
		fail("flood: recv: %d", r);
	return NULL;
}

static void
op_flood(uint64_t *s)
{
	struct weft_task **t;
	struct weft_chan *gate;
	long n = opt.flood;
	long k = 0;
	int r;

	t = malloc(sizeof(*t) * (size_t)n);
	if (!t) {
		atomic_fetch_add(&c.refused_nomem, 1);
		return;
	}
	r = weft_chan_make(&gate, 1, 0);
	if (r < 0) {
		refused(r, "weft_chan_make");
		free(t);
		return;
	}
	while (k < n && spawn_counted(&t[k], parked_task, gate) == 0) {
		k++;
		if (k % 64 == 0)
			weft_yield(); /* let them start (and take stacks) */
	}
	weft_yield();
	if (k > atomic_load(&c.flood_peak))
		atomic_store(&c.flood_peak, k);
	weft_chan_close(gate);
	for (long i = 0; i < k; i++)
		join_counted(t[i], NULL, "flood");
	weft_chan_release(gate);
	free(t);
}

/* --- drivers ---------------------------------------------------------- */

enum op {
	OP_SPAWN,
	OP_CHAN,
	OP_SELECT,
	OP_MUTEX,
	OP_FUTURE,
	OP_GROUP,
	OP_CANCEL,
	OP_IO,
	OP_FLOOD,
	OP_COUNT
};

static void
drive(uint64_t seed)
{
	uint64_t s = seed;

	while (weft_now() < run_deadline) {
		enum op o = (enum op)(rnd(&s) % OP_COUNT);

		switch (o) {
		case OP_SPAWN:
			op_spawn(&s);
			break;
		case OP_CHAN:
			op_chan(&s);
			break;
		case OP_SELECT:
			op_select(&s);
			break;
		case OP_MUTEX:
			op_mutex(&s);
			break;
		case OP_FUTURE:
			op_future(&s);
			break;
		case OP_GROUP:
			op_group(&s);
			break;
		case OP_CANCEL:
			op_cancel(&s);
			break;
		case OP_IO:
			op_io(&s);
			break;
		case OP_FLOOD:
			if (opt.flood > 0)
				op_flood(&s);
			break;
		default:
			break;
		}
		atomic_fetch_add(&c.ops, 1);
		atomic_fetch_add(&progress, 1);
	}
}

static void *
driver_task(void *arg)
{
	ran();
	drive((uint64_t)(uintptr_t)arg);
	return NULL;
}

static const char *backend_seen;

static void *
churn_main(void *arg)
{
	uint64_t seed = *(uint64_t *)arg;
	struct weft_task **t;
	int k = 0;

	atomic_store(&main_ran, true);
	backend_seen = weft_io_backend();
	t = calloc((size_t)opt.drivers, sizeof(*t));
	for (int i = 1; t && i < opt.drivers; i++)
		if (spawn_counted(&t[k], driver_task,
				  (void *)(uintptr_t)(seed + (uint64_t)i)) == 0)
			k++;
	drive(seed);
	for (int i = 0; i < k; i++)
		join_counted(t[i], NULL, "driver");
	free(t);
	return NULL;
}

/* --- checks and main -------------------------------------------------- */

static long
fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static long
rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/*
 * RSS after the last run against the first: each run does the same kind
 * of work, and what the runtime keeps between runs (malloc arenas of the
 * worker threads, the blocking pool's threads) reaches its high-water mark
 * in the first.  The slack, 8 MiB plus a quarter, covers malloc
 * fragmentation and arena growth that depend on timing; a leak of one
 * descriptor, stack page or channel per operation is far more (a run does
 * tens of thousands of operations, each spawning several tasks).
 * Sanitizers keep their own memory (quarantine, shadow, fiber state):
 * not checked there.
 */
static void
check_rss(long first, long last)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	(void)first;
	(void)last;
#else
	if (first > 0 && last > first + first / 4 + 8 * 1024)
		fail("RSS grew from %ld KiB after the first run to %ld KiB "
		     "after the last",
		     first, last);
#endif
}

static void
check_run(int round)
{
	struct weft_stats st;
	long sent = atomic_load(&c.sent), recvd = atomic_load(&c.recvd);

	if (weft_stats(&st) != 0)
		fail("weft_stats failed");
	else if (st.tasks_live || st.stacks_in_use)
		fail("run %d: runtime not empty: %" PRIu64
		     " live tasks, %" PRIu64 " stacks in use",
		     round, st.tasks_live, st.stacks_in_use);
	if (atomic_load(&c.spawn_ran) != atomic_load(&c.spawn_ok))
		fail("run %d: spawns: %ld accepted, %ld ran (%ld lost)", round,
		     atomic_load(&c.spawn_ok), atomic_load(&c.spawn_ran),
		     atomic_load(&c.spawn_ok) - atomic_load(&c.spawn_ran));
	if (sent != recvd ||
	    atomic_load(&c.sent_sum) != atomic_load(&c.recvd_sum))
		fail("run %d: channels: %ld values sent, %ld received%s", round,
		     sent, recvd,
		     sent == recvd ? " (but not the same ones)" : "");
	if (atomic_load(&c.fut_seen) > atomic_load(&c.fut_set))
		fail("run %d: futures: %ld seen, only %ld set", round,
		     atomic_load(&c.fut_seen), atomic_load(&c.fut_set));
	if (atomic_load(&c.cb_ran) != atomic_load(&c.cb_registered))
		fail("run %d: done callbacks: %ld registered, %ld ran", round,
		     atomic_load(&c.cb_registered), atomic_load(&c.cb_ran));
	if (atomic_load(&c.members_ran) != atomic_load(&c.members_ok))
		fail("run %d: group members: %ld accepted, %ld ran", round,
		     atomic_load(&c.members_ok), atomic_load(&c.members_ran));
	if (atomic_load(&c.cancel_observed) + atomic_load(&c.cancel_prestart) !=
	    atomic_load(&c.cancel_spawned))
		fail("run %d: cancel: %ld spawned, %ld ran, %ld cancelled "
		     "before they started",
		     round, atomic_load(&c.cancel_spawned),
		     atomic_load(&c.cancel_observed),
		     atomic_load(&c.cancel_prestart));
	if (atomic_load(&c.send_timeouts) && !atomic_load(&c.spawn_lost))
		fail("run %d: %ld sends waited %lld s for receivers that ran",
		     round, atomic_load(&c.send_timeouts),
		     (long long)(LOST_AFTER / WEFT_SEC));
	if (atomic_load(&c.io_read) != atomic_load(&c.io_written))
		fail("run %d: io: %ld bytes written, %ld read", round,
		     atomic_load(&c.io_written), atomic_load(&c.io_read));
}

static void
print_counters(FILE *f, const char *status)
{
	fprintf(f,
		"churn_faults: %s backend=%s workers=%d rounds=%d ops=%ld "
		"spawn_ok=%ld spawn_ran=%ld spawn_lost=%ld "
		"refused_nomem=%ld refused_nofile=%ld refused_again=%ld "
		"chans=%ld sent=%ld recvd=%ld send_timeouts=%ld "
		"futures=%ld/%ld callbacks=%ld/%ld members=%ld/%ld "
		"cancelled=%ld(ran %ld, before start %ld) "
		"io_pairs=%ld io_bytes=%ld/%ld flood_peak=%ld\n",
		status, backend_seen ? backend_seen : "none", opt.workers,
		opt.rounds, atomic_load(&c.ops), atomic_load(&c.spawn_ok),
		atomic_load(&c.spawn_ran), atomic_load(&c.spawn_lost),
		atomic_load(&c.refused_nomem), atomic_load(&c.refused_nofile),
		atomic_load(&c.refused_again), atomic_load(&c.chans),
		atomic_load(&c.sent), atomic_load(&c.recvd),
		atomic_load(&c.send_timeouts), atomic_load(&c.fut_seen),
		atomic_load(&c.fut_set), atomic_load(&c.cb_ran),
		atomic_load(&c.cb_registered), atomic_load(&c.members_ran),
		atomic_load(&c.members_ok), atomic_load(&c.cancel_spawned),
		atomic_load(&c.cancel_observed),
		atomic_load(&c.cancel_prestart), atomic_load(&c.io_pairs),
		atomic_load(&c.io_read), atomic_load(&c.io_written),
		atomic_load(&c.flood_peak));
	fflush(f);
}

/*
 * Exits 3 with the counters if no operation or join completes for 15 s
 * (each wait that could stall on lost work gives up after LOST_AFTER).
 */
static void *
watchdog(void *arg)
{
	long last = -1;
	int idle = 0;

	for (;;) {
		long now;

		sleep(1);
		now = atomic_load(&progress);
		idle = now == last ? idle + 1 : 0;
		last = now;
		if (idle >= 15) {
			print_counters(stdout, "HUNG (no operation finished "
					       "for 15 s)");
			printf("churn_faults: first failure: %s\n",
			       atomic_load(&failures) ? first_failure : "none");
			_exit(3);
		}
	}
	return arg;
}

static void
usage(void)
{
	fprintf(stderr, "usage: churn_faults [--seconds S] [--workers N] "
			"[--drivers D] [--rounds R] [--flood N] [--seed X]\n");
	exit(2);
}

static void
parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *end;

		if (i + 1 >= argc)
			usage();
		if (!strcmp(a, "--seconds"))
			opt.seconds = strtod(argv[++i], &end);
		else if (!strcmp(a, "--workers"))
			opt.workers = (int)strtol(argv[++i], &end, 10);
		else if (!strcmp(a, "--drivers"))
			opt.drivers = (int)strtol(argv[++i], &end, 10);
		else if (!strcmp(a, "--rounds"))
			opt.rounds = (int)strtol(argv[++i], &end, 10);
		else if (!strcmp(a, "--flood"))
			opt.flood = strtol(argv[++i], &end, 10);
		else if (!strcmp(a, "--seed"))
			opt.seed = strtoull(argv[++i], &end, 0);
		else
			usage();
		if (*end)
			usage();
	}
	if (opt.seconds <= 0 || opt.workers < 0 || opt.drivers < 0 ||
	    opt.rounds < 1 || opt.flood < 0)
		usage();
}

int
main(int argc, char **argv)
{
	struct weft_config cfg;
	long fds_first = -1, rss_first = -1, rss_last = -1;
	pthread_t wd;

	parse(argc, argv);
	memset(&cfg, 0, sizeof(cfg));
	cfg.workers = opt.workers;
	if (pthread_create(&wd, NULL, watchdog, NULL) == 0)
		pthread_detach(wd);
	for (int round = 1; round <= opt.rounds; round++) {
		uint64_t seed = opt.seed + (uint64_t)round * 0x1000;
		struct weft_stats st;
		long fds;
		int r;

		if (!opt.drivers) {
			/* Four drivers per worker, once the count is known. */
			int w = opt.workers;

			if (!w) {
				long n = sysconf(_SC_NPROCESSORS_ONLN);

				w = n > 0 ? (int)n : 1;
			}
			opt.drivers = 4 * w;
		}
		run_deadline =
			weft_now() + (int64_t)(opt.seconds / opt.rounds * 1e9);
		atomic_store(&main_ran, false);
		r = weft_run(churn_main, &seed, &cfg, NULL);
		/*
		 * Under WEFT_FAULT_ALLOC the run's own allocations (the main
		 * task, its stack) can be the Nth: weft_run must then refuse
		 * with -ENOMEM before anything ran, and a retry must work.
		 */
		if (r == -ENOMEM && getenv("WEFT_FAULT_ALLOC") &&
		    !atomic_load(&main_ran) && ++run_refusals <= 8) {
			round--;
			continue;
		}
		if (r != 0) {
			printf("churn_faults: FAIL weft_run: %d (%s)\n", r,
			       strerror(-r));
			return 1;
		}
		if (weft_stats(&st) == 0)
			opt.workers = st.workers;
		check_run(round);
		fds = fd_count();
		if (round == 1) {
			fds_first = fds;
			rss_first = rss_kib();
		} else if (fds != fds_first) {
			fail("fds: %ld after run %d, %ld after the first", fds,
			     round, fds_first);
		}
		rss_last = rss_kib();
		if (atomic_load(&failures))
			break;
	}
	check_rss(rss_first, rss_last);
	if (atomic_load(&failures)) {
		print_counters(stdout, "FAIL");
		printf("churn_faults: %ld checks failed; first: %s\n",
		       atomic_load(&failures), first_failure);
		return 1;
	}
	print_counters(stdout, "OK");
	printf("churn_faults: fds=%ld rss_kib=%ld/%ld run_refusals=%d\n",
	       fds_first, rss_first, rss_last, run_refusals);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The lock-order checker of io/base.h.  Each thread keeps the locks it
 * holds in a small array (thread-local: no thread reads another's).  A lock
 * is released by the thread that took it; a lock-guarded park's lock is
 * released by the next context on the same worker thread, so that holds
 * too.  Compiled in every build so that its own test runs under `make
 * test`; the library calls it only when built with WEFT_LOCKRANK.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/base.h"

#define HELD_MAX 64

struct held {
	const void *lock;
	const char *site;
	enum weft__rank rank;
};

/*
 * Locks taken beyond HELD_MAX (a select over more channels) are counted in
 * `untracked` and not checked; their releases find nothing and uncount.
 */
static __thread struct {
	int n;
	int untracked;
	struct held h[HELD_MAX];
} held;

static const char *const names[WEFT_RANK_COUNT] = {
	[WEFT_RANK_NONE] = "unranked",
	[WEFT_RANK_SIGNAL] = "signal registry",
	[WEFT_RANK_STATS] = "stats",
	[WEFT_RANK_START] = "worker start",
	[WEFT_RANK_POOL_REGISTRY] = "pool registry",
	[WEFT_RANK_POOL] = "blocking pool",
	[WEFT_RANK_GROUP] = "group",
	[WEFT_RANK_FUTURE] = "future",
	[WEFT_RANK_CHAN] = "channel",
	[WEFT_RANK_SYNC] = "sync",
	[WEFT_RANK_TASK] = "task",
	[WEFT_RANK_EPOLL] = "epoll",
	[WEFT_RANK_TIMERS] = "timers",
	[WEFT_RANK_IO_CANCEL] = "io cancel",
	[WEFT_RANK_SCHED] = "sched",
	[WEFT_RANK_TPOOL] = "task pool",
	[WEFT_RANK_STACKS] = "stack pool",
	[WEFT_RANK_ORPHANS] = "future orphans",
};

const char *
weft__rank_name(enum weft__rank rank)
{
	if ((unsigned)rank >= WEFT_RANK_COUNT)
		return "?";
	return names[rank];
}

/* May `want` be taken while `h` is held? */
static bool
in_order(const struct held *h, const void *lock, enum weft__rank want)
{
	if (h->rank < want)
		return true;
	/* Channels of one select: in increasing address order. */
	return h->rank == want && want == WEFT_RANK_CHAN &&
	       (uintptr_t)h->lock < (uintptr_t)lock;
}

static void
push(const void *lock, enum weft__rank rank, const char *site)
{
	if (held.n == HELD_MAX) {
		held.untracked++;
		return;
	}
	held.h[held.n++] = (struct held){ lock, site, rank };
}

void
weft__rank_acquire(const void *lock, enum weft__rank rank, const char *site)
{
	if ((unsigned)rank - 1 >= WEFT_RANK_COUNT - 1)
		weft__panic("lock order: %s takes a lock of no rank (%d)",
			    site, (int)rank);
	for (int i = 0; i < held.n; i++) {
		const struct held *h = &held.h[i];

		if (h->lock == lock)
			weft__panic("lock order: %s takes the %s lock %p it "
				    "already holds (taken at %s)", site,
				    names[rank], lock, h->site);
		if (!in_order(h, lock, rank))
			weft__panic("lock order: %s takes the %s lock (rank "
				    "%d) while holding the %s lock (rank %d, "
				    "taken at %s)", site, names[rank],
				    (int)rank, names[h->rank], (int)h->rank,
				    h->site);
	}
	push(lock, rank, site);
}

void
weft__rank_acquired(const void *lock, enum weft__rank rank, const char *site)
{
	if ((unsigned)rank - 1 >= WEFT_RANK_COUNT - 1)
		weft__panic("lock order: %s takes a lock of no rank (%d)",
			    site, (int)rank);
	push(lock, rank, site);
}

void
weft__rank_release(const void *lock, const char *site)
{
	for (int i = held.n - 1; i >= 0; i--) {
		if (held.h[i].lock != lock)
			continue;
		/* Not always the last one taken: keep the order of the rest. */
		for (int j = i; j + 1 < held.n; j++)
			held.h[j] = held.h[j + 1];
		held.n--;
		return;
	}
	if (held.untracked > 0) {
		held.untracked--;
		return;
	}
	weft__panic("lock order: %s releases lock %p, which this thread does "
		    "not hold", site, lock);
}

void
weft__rank_assert_held(const void *lock, const char *what, const char *site)
{
	for (int i = 0; i < held.n; i++)
		if (held.h[i].lock == lock)
			return;
	if (held.untracked > 0)
		return;
	weft__panic("lock order: %s needs %s held, and this thread does not "
		    "hold it", site, what);
}

int
weft__rank_held(void)
{
	return held.n + held.untracked;
}

void
weft__rank_check_switch(void)
{
	char buf[384];
	int len = 0;

	if (held.n + held.untracked <= 1)
		return;
	for (int i = 0; i < held.n && len < (int)sizeof(buf) - 64; i++)
		len += snprintf(buf + len, sizeof(buf) - (size_t)len,
				"%s%s (taken at %s)", i ? ", " : "",
				names[held.h[i].rank], held.h[i].site);
	weft__panic("lock order: a context switch with %d locks held: %s",
		    held.n + held.untracked, buf);
}

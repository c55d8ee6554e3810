/* SPDX-License-Identifier: MIT */
/*
 * Coroutine stacks: mapping, pooling, overflow detection.
 *
 * Costs that shape this file (measured on the 2-vCPU guests, DESIGN.md and
 * BENCHMARKS.md): mmap + touch + munmap of a 64 KiB stack with a guard is
 * ~10 us, 400x the spawn budget, so stacks are pooled and reused; a fresh
 * page costs ~1.3 us on first touch, so pooled stacks keep their pages.
 * Memory is committed lazily: a parked task that used 3 KiB of its 64 KiB
 * stack holds one resident page.
 *
 * Guards.  Every default-size stack is carved from a 64-stack slab, one
 * mapping laid out as [guard][stack][guard][stack]...  Where the kernel has
 * guard regions (MADV_GUARD_INSTALL, Linux 6.13), each slot's guard is
 * armed with one madvise when the slot is first used: a fault there kills
 * with SIGSEGV, and it costs no memory mapping, so every stack is guarded
 * however many there are (the slab stays one line of /proc/self/maps).  A
 * guard costs address space and page-table entries, not memory: 64 KiB of
 * guard is 16 entries, 128 bytes of page table per stack, and ~1 us once
 * per slot (BENCHMARKS.md).  Odd sizes get their own mapping with a guard
 * region the same way.
 *
 * Older kernels (probed at setup): a guard must be its own PROT_NONE
 * mapping, and vm.max_map_count (65,530) caps the mappings, so only a
 * budget of stacks (a quarter of the limit by default) is made with one;
 * past the budget, stacks come from slabs whose guards are not armed, and
 * only the zero canary of sched/park.h watches them.
 *
 * Pools: each worker keeps up to STACK_CACHE_MAX free default-size stacks
 * (owner-only, no lock).  Overflow goes to the global pool (lock), which
 * keeps POOL_WARM_MAX stacks with their pages once the workers have had
 * time to trim it.  Trimming is done by a worker about to sleep with
 * nothing to run (Go's scavenger idea: give memory back when it costs no
 * latency), so a burst of exits followed by a burst of spawns reuses warm
 * stacks instead of refaulting them; only past POOL_HARD_MAX does a put trim
 * inline.  A trim takes TRIM_BATCH stacks, sorts them by address, coalesces
 * neighbours (across armed guards: MADV_DONTNEED keeps guard regions) and
 * hands their pages back with one MADV_DONTNEED per run (a burst of a
 * million exits costs a few thousand system calls, not a million TLB
 * shootdowns).  Default-size stacks stay mapped until the run ends.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "sched/park.h"
#include "sched/sched.h"

/* The kernel's value (include/uapi/asm-generic/mman-common.h, 6.13). */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define SLAB_STACKS 64
#define POOL_WARM_MAX 4096	/* warm stacks kept once workers go idle */
#define POOL_HARD_MAX 65536	/* past this, trimming happens inline */
#define TRIM_BATCH 256
#define GUARD_BATCH 16
#define ALTSTACK_SIZE (64 * 1024)
#define STACK_MIN (16 * 1024)
#define STACK_MAX ((size_t)1 << 30)
#define GUARD_DEFAULT (64 * 1024)
/*
 * Stacks of other sizes (weft_spawn_opts.stack_size): a few size classes,
 * each a free list, so that a program spawning many tasks of one odd size
 * does not pay an mmap and a munmap per task (~10 us, measured 20 s for
 * skynet's 1.1M tasks).  A class holds at most ODD_CLASS_MAX stacks and all
 * of them together at most ODD_BYTES_MAX of address space; the rest are
 * unmapped as before.
 */
#define ODD_CLASSES 8
#define ODD_CLASS_MAX 4096
#define ODD_BYTES_MAX ((size_t)256 << 20)

struct slab {
	char *base;			/* mapping: SLAB_STACKS * (gap + size) */
	size_t len;
	struct slab *next;		/* all slabs: under pool.lock */
	struct weft__stack stacks[SLAB_STACKS];
};

/* Tests only: pretend the kernel has no guard regions (before weft_run). */
bool weft__stack_no_regions;

static struct {
	/* Immutable during a run. */
	uint64_t slack;			/* see "Claims" */
	size_t page;
	size_t default_size;
	size_t guard;			/* guard bytes below a stack */
	bool regions;			/* MADV_GUARD_INSTALL works */
	long guard_budget;		/* mprotect guards at once (!regions) */

	/* Protected by lock. */
	pthread_mutex_t lock;
	struct weft__stack *warm;	/* free, pages resident */
	uint64_t nwarm;			/* written under lock, read without */
	struct weft__stack *cold;	/* free, pages returned (slab only) */
	uint64_t ncold;
	struct slab *slabs;
	struct {
		size_t size;		/* 0: class unused */
		struct weft__stack *free;
		uint32_t n;
	} odd[ODD_CLASSES];		/* free stacks of other sizes */
	size_t odd_bytes;		/* their total size */

	/* Atomics: any thread.  See "Claims" for the first three. */
	uint64_t claims;		/* default-size stacks promised */
	uint64_t capacity;		/* default-size stacks mapped (grows
					   under lock) */
	uint64_t trimming;		/* trims holding stacks off the lists */
	uint64_t nguarded;		/* mapped stacks with an armed guard */
	uint64_t in_use;		/* stacks held by tasks */
	uint64_t cached;		/* free stacks in any pool */
	uint64_t bytes_mapped;

	/* Signal handler state: set before workers start. */
	struct sigaction old_segv;
	struct sigaction old_bus;
	bool installed;
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

size_t
weft__stack_default_size(void)
{
	return pool.default_size;
}

static size_t page_round(size_t n);

bool
weft__stack_is_default(size_t size)
{
	return size == 0 || page_round(size) == pool.default_size;
}

bool
weft__stack_guard_regions(void)
{
	return pool.regions;
}

static long
max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	long v = 65530;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 65530;
		fclose(f);
	}
	return v;
}

/*
 * Does this kernel arm guard regions?  One two-page mapping, a guard on
 * its first page: older kernels answer EINVAL.
 */
static bool
probe_regions(void)
{
	char *p;
	bool ok;

	if (weft__stack_no_regions)
		return false;
	p = mmap(NULL, 2 * pool.page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return false;
	ok = madvise(p, pool.page, MADV_GUARD_INSTALL) == 0;
	munmap(p, 2 * pool.page);
	return ok;
}

static size_t
page_round(size_t n)
{
	return (n + pool.page - 1) & ~(pool.page - 1);
}

int
weft__stack_setup(size_t default_size, long guarded_stacks, size_t guard,
		  int workers)
{
	pool.page = (size_t)sysconf(_SC_PAGESIZE);
	pool.slack = (uint64_t)workers * STACK_CACHE_MAX;
	if (default_size == 0)
		default_size = 64 * 1024;
	if (guard == 0)
		guard = GUARD_DEFAULT;
	if (default_size < STACK_MIN || default_size > STACK_MAX ||
	    guard > STACK_MAX)
		return -EINVAL;
	pool.default_size = page_round(default_size);
	pool.guard = page_round(guard);
	if (guarded_stacks < 0) {
		/* No guards at all: canaries only, stacks side by side. */
		pool.guard = 0;
		pool.guard_budget = 0;
		pool.regions = false;
		return 0;
	}
	pool.regions = probe_regions();
	if (guarded_stacks == 0)
		pool.guard_budget = max_map_count() / 4;
	else
		pool.guard_budget = guarded_stacks;
	return 0;
}

/* Take one from the mprotect guard budget; false when it is spent. */
static bool
guard_take(void)
{
	uint64_t n = ck_pr_load_64(&pool.nguarded);

	do {
		if (n >= (uint64_t)pool.guard_budget)
			return false;
	} while (!ck_pr_cas_64_value(&pool.nguarded, n, n + 1, &n));
	return true;
}

/*
 * Arm the guard region below a slot's stack.  Returns 0 or -errno (the
 * kernel could not allocate its page table: -ENOMEM).  Any thread, no lock.
 */
static int
arm_region(struct weft__stack *st)
{
	if (madvise(st->lo - st->gap, st->gap, MADV_GUARD_INSTALL) < 0)
		return -errno;
	st->guard = st->gap;
	ck_pr_inc_64(&pool.nguarded);
	return 0;
}

/*
 * A stack with its own mapping: a guard region where the kernel has them,
 * else an mprotect guard while the budget allows, else none.
 */
static struct weft__stack *
map_single(size_t size, int *err)
{
	struct weft__stack *st;
	bool guarded = pool.guard && (pool.regions || guard_take());
	size_t gap = guarded ? pool.guard : 0;
	char *p;

	st = malloc(sizeof(*st));
	if (!st) {
		*err = -ENOMEM;
		goto out_guard;
	}
	p = mmap(NULL, size + gap, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		*err = -errno;
		goto out_free;
	}
	st->lo = p + gap;
	st->size = size;
	st->gap = (uint32_t)gap;
	st->guard = 0;
	st->slab = false;
	st->next = NULL;
	if (guarded && pool.regions) {
		*err = arm_region(st);
		if (*err < 0) {
			munmap(p, size + gap);
			goto out_free;
		}
	} else if (guarded) {
		if (mprotect(p, gap, PROT_NONE) < 0) {
			*err = -errno;
			munmap(p, size + gap);
			goto out_free;
		}
		st->guard = (uint32_t)gap;
	}
	ck_pr_add_64(&pool.bytes_mapped, size + gap);
	return st;

out_free:
	free(st);
out_guard:
	if (guarded && !pool.regions)
		ck_pr_dec_64(&pool.nguarded);
	return NULL;
}

/*
 * munmap, in the ASan build after clearing the poison of pooled stacks:
 * the shadow outlives the mapping, and the next mapping at that address
 * (an io_uring ring, say) would read as poisoned.
 */
static void
stack_unmap(void *p, size_t len)
{
#if defined(WEFT_ASAN)
	ASAN_UNPOISON_MEMORY_REGION(p, len);
#endif
	munmap(p, len);
}

static void
unmap_single(struct weft__stack *st)
{
	stack_unmap(st->lo - st->gap, st->size + st->gap);
	ck_pr_sub_64(&pool.bytes_mapped, st->size + st->gap);
	if (st->guard)
		ck_pr_dec_64(&pool.nguarded);
	free(st);
}

/*
 * Kernels without guard regions: map up to GUARD_BATCH default-size stacks
 * with one mmap, each above an mprotect'ed guard, onto the cold list.
 * Returns how many, 0 when the budget is spent, or -errno.  Caller holds
 * pool.lock.
 */
static int
map_guarded_batch_locked(void)
{
	size_t span = pool.default_size + pool.guard;
	struct weft__stack *st;
	int n = 0, i;
	char *p;

	WEFT_ASSERT_HELD(&pool.lock);
	while (n < GUARD_BATCH && guard_take())
		n++;
	if (n == 0)
		return 0;
	p = mmap(NULL, span * (size_t)n, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		ck_pr_sub_64(&pool.nguarded, (uint64_t)n);
		return -errno;
	}
	/* Highest first: the cold list then hands them out low to high. */
	for (i = n - 1; i >= 0; i--) {
		char *base = p + (size_t)i * span;

		st = malloc(sizeof(*st));
		if (!st || mprotect(base, pool.guard, PROT_NONE) < 0) {
			/* Give back this one and every one below it. */
			int err = st ? -errno : -ENOMEM;

			free(st);
			munmap(p, span * (size_t)(i + 1));
			ck_pr_sub_64(&pool.nguarded, (uint64_t)(i + 1));
			return n - 1 - i > 0 ? n - 1 - i : err;
		}
		st->lo = base + pool.guard;
		st->size = pool.default_size;
		st->gap = st->guard = (uint32_t)pool.guard;
		st->slab = false;
		ck_pr_add_64(&pool.bytes_mapped, span);
		st->next = pool.cold;
		pool.cold = st;
		pool.ncold++;
		ck_pr_inc_64(&pool.cached);
		ck_pr_inc_64(&pool.capacity);
	}
	return n;
}

/*
 * Map a slab of SLAB_STACKS default-size slots onto the cold list (their
 * guards are armed when first handed out).  Slots keep room for a guard
 * only where guards can be armed in place.  Returns SLAB_STACKS or -errno.
 * Caller holds pool.lock.
 */
static int
map_slab_locked(void)
{
	size_t gap = pool.regions ? pool.guard : 0;
	size_t slot = gap + pool.default_size;
	struct slab *sl;

	WEFT_ASSERT_HELD(&pool.lock);
	sl = calloc(1, sizeof(*sl));
	if (!sl)
		return -ENOMEM;
	sl->len = SLAB_STACKS * slot;
	sl->base = mmap(NULL, sl->len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sl->base == MAP_FAILED) {
		free(sl);
		return -errno;
	}
	/* A huge page would commit 2 MiB for one 4 KiB frame. */
	(void)madvise(sl->base, sl->len, MADV_NOHUGEPAGE);
	ck_pr_add_64(&pool.bytes_mapped, sl->len);
	sl->next = pool.slabs;
	pool.slabs = sl;
	/* Highest first: the cold list then hands them out low to high. */
	for (int i = SLAB_STACKS - 1; i >= 0; i--) {
		struct weft__stack *st = &sl->stacks[i];

		st->lo = sl->base + (size_t)i * slot + gap;
		st->size = pool.default_size;
		st->gap = (uint32_t)gap;
		st->guard = 0;
		st->slab = true;
		st->next = pool.cold;
		pool.cold = st;
	}
	pool.ncold += SLAB_STACKS;
	ck_pr_add_64(&pool.cached, SLAB_STACKS);
	ck_pr_add_64(&pool.capacity, SLAB_STACKS);
	return SLAB_STACKS;
}

/* More default-size stacks: guarded ones while the old budget lasts. */
static int
grow_locked(void)
{
	int n;

	WEFT_ASSERT_HELD(&pool.lock);
	if (!pool.regions && pool.guard &&
	    ck_pr_load_64(&pool.nguarded) < (uint64_t)pool.guard_budget &&
	    (n = map_guarded_batch_locked()) != 0)
		return n;
	return map_slab_locked();
}

/*
 * Claims.  A default-size stack is promised at spawn and taken when the
 * task first runs (a million spawned tasks waiting to run hold no stack,
 * and those that run one after another share a few warm ones), but the
 * promise is kept: a claim is refused with -ENOMEM at spawn unless
 *
 *	claims + slack <= capacity
 *
 * where claims counts every promise not yet given back (each live task's,
 * a generator's, and the spare credit workers hold), capacity counts the
 * default-size stacks mapped, and slack the free stacks a worker may not
 * reach (STACK_CACHE_MAX in each other worker's cache).  So whoever takes
 * a claimed stack finds one in its cache, the global pool or the cold
 * list, and never needs to map memory then -- except while an idle trim
 * holds up to TRIM_BATCH stacks off every list for its madvise, which the
 * taker waits out.  Workers take and give back claims in batches of
 * CLAIM_BATCH, so a spawn costs an owner-only decrement.
 */
#define CLAIM_BATCH 64

static int
claim_slow(uint64_t n)
{
	uint64_t c = ck_pr_faa_64(&pool.claims, n) + n;
	int err = 0;

	if (c + pool.slack <= ck_pr_load_64(&pool.capacity))
		return 0;
	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	while (c + pool.slack > ck_pr_load_64(&pool.capacity)) {
		err = grow_locked();
		if (err < 0)
			break;
		err = 0;
	}
	weft__mutex_unlock(&pool.lock);
	if (err < 0)
		ck_pr_sub_64(&pool.claims, n);
	return err;
}

/* The claim path past the worker's credit: a batch, maybe a grow. */
static __attribute__((noinline)) int
claim_refill(struct weft__worker *w)
{
	int err = claim_slow(w ? CLAIM_BATCH : 1);

	if (err == 0 && w)
		w->stack_credit = CLAIM_BATCH - 1;
	return err;
}

int
weft__stack_claim(struct weft__worker *w)
{
	WEFT_ASSERT_OWNER(w);
	if (WEFT_UNLIKELY(weft__fail_alloc()))
		return -ENOMEM;
	if (WEFT_LIKELY(w && w->stack_credit > 0)) {
		w->stack_credit--;
		return 0;
	}
	return claim_refill(w);
}

static __attribute__((noinline)) void
unclaim_spill(struct weft__worker *w)
{
	if (w) {
		w->stack_credit -= CLAIM_BATCH;
		ck_pr_sub_64(&pool.claims, CLAIM_BATCH);
		return;
	}
	ck_pr_dec_64(&pool.claims);
}

void
weft__stack_unclaim(struct weft__worker *w)
{
	WEFT_ASSERT_OWNER(w);
	if (WEFT_LIKELY(w && ++w->stack_credit <= 2 * CLAIM_BATCH))
		return;
	unclaim_spill(w);
}

/*
 * The counters of in_use and cached stacks: a worker keeps its share in
 * its own fields (see struct weft__worker), so that the path of every
 * task's stack has no locked instruction; any other thread, and the
 * global pool, use the atomics.  Executed only by `w`.
 */
static inline void
count_in_use(struct weft__worker *w, int64_t d)
{
	if (WEFT_LIKELY(w))
		ck_pr_store_64((uint64_t *)&w->stacks_in_use,
			       (uint64_t)(w->stacks_in_use + d));
	else
		ck_pr_add_64(&pool.in_use, (uint64_t)d);
}

static inline void
count_cached(struct weft__worker *w, int64_t d)
{
	if (WEFT_LIKELY(w))
		ck_pr_store_64((uint64_t *)&w->stacks_cached,
			       (uint64_t)(w->stacks_cached + d));
	else
		ck_pr_add_64(&pool.cached, (uint64_t)d);
}

/* Take a free default-size stack from the pools.  NULL if none. */
static struct weft__stack *
pool_take(struct weft__worker *w)
{
	struct weft__stack *st = w ? w->stack_cache : NULL;

	if (WEFT_LIKELY(st)) {
		w->stack_cache = st->next;
		w->nstack_cache--;
		count_cached(w, -1);
		return st;
	}
	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	if ((st = pool.warm)) {
		pool.warm = st->next;
		ck_pr_store_64(&pool.nwarm, pool.nwarm - 1);
		ck_pr_dec_64(&pool.cached);
	} else if ((st = pool.cold)) {
		pool.cold = st->next;
		pool.ncold--;
		ck_pr_dec_64(&pool.cached);
	}
	weft__mutex_unlock(&pool.lock);
	return st;
}

/* A default-size stack for a claim holder: the pools, else grow. */
static __attribute__((noinline)) struct weft__stack *
get_default_slow(struct weft__worker *w, int *err)
{
	struct weft__stack *st;

	/* The caller holds a claim: see above. */
	while (WEFT_UNLIKELY(!(st = pool_take(w)))) {
		if (ck_pr_load_64(&pool.trimming)) {
			sched_yield();
			continue;
		}
		/* Not reached while the claims add up; be safe. */
		weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
		*err = grow_locked();
		weft__mutex_unlock(&pool.lock);
		if (*err < 0)
			return NULL;
	}
	/*
	 * Arm its guard the first time it is handed out, outside the lock.
	 * If the kernel cannot (no memory for the page table), the stack
	 * goes out unarmed, watched by its canary: the task was promised a
	 * stack.
	 */
	if (WEFT_UNLIKELY(!st->guard && st->gap))
		(void)arm_region(st);
	return st;
}

/* A stack of another size: its class's free list, else a mapping. */
static __attribute__((noinline)) struct weft__stack *
get_odd(size_t size, int *err)
{
	struct weft__stack *st = NULL;

	if (WEFT_UNLIKELY(weft__fail_alloc())) {
		*err = -ENOMEM;
		return NULL;
	}
	size = page_round(size);
	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	for (int i = 0; i < ODD_CLASSES; i++) {
		if (pool.odd[i].size != size || !pool.odd[i].free)
			continue;
		st = pool.odd[i].free;
		pool.odd[i].free = st->next;
		pool.odd[i].n--;
		pool.odd_bytes -= size;
		ck_pr_dec_64(&pool.cached);
		break;
	}
	weft__mutex_unlock(&pool.lock);
	if (!st)
		st = map_single(size, err);
	return st;
}

struct weft__stack *
weft__stack_get(struct weft__worker *w, size_t size, int *err)
{
	struct weft__stack *st;

	WEFT_ASSERT_OWNER(w);
	if (WEFT_LIKELY(weft__stack_is_default(size))) {
		/*
		 * The common case: the worker's cache, whose stacks were
		 * handed out (armed) before.
		 */
		st = w ? w->stack_cache : NULL;
		if (WEFT_LIKELY(st && (st->guard || !st->gap))) {
			w->stack_cache = st->next;
			w->nstack_cache--;
			count_cached(w, -1);
		} else if (!(st = get_default_slow(w, err))) {
			return NULL;
		}
	} else if (!(st = get_odd(size, err))) {
		return NULL;
	}
	st->next = NULL;
#if defined(WEFT_ASAN)
	/* Poisoned while pooled (weft__stack_put). */
	ASAN_UNPOISON_MEMORY_REGION(st->lo, st->size);
#endif
	count_in_use(w, 1);
	return st;
}

struct weft__stack *
weft__stack_take(struct weft__worker *w, size_t size, int *err)
{
	struct weft__stack *st;
	bool dflt = weft__stack_is_default(size);

	if (dflt && (*err = weft__stack_claim(w)) < 0)
		return NULL;
	st = weft__stack_get(w, size, err);
	if (!st && dflt)
		weft__stack_unclaim(w);
	return st;
}

static int
by_address(const void *a, const void *b)
{
	const struct weft__stack *x = *(const struct weft__stack *const *)a;
	const struct weft__stack *y = *(const struct weft__stack *const *)b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/*
 * Hand the pages of up to TRIM_BATCH warm stacks back to the OS and move
 * them to the cold list.  Neighbours in memory (slab stacks, guarded
 * batches minus their guard pages) are coalesced into one madvise.  The
 * zero canary stays valid: DONTNEED pages read as zero.  Takes pool.lock
 * around the list moves only, not around the system calls.
 * Returns the number of stacks trimmed.  Any worker.
 */
static int
trim_batch(void)
{
	struct weft__stack *batch[TRIM_BATCH];
	int n = 0, i, j;

	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	/* Under the lock: a taker that finds the lists empty sees it. */
	ck_pr_inc_64(&pool.trimming);
	while (n < TRIM_BATCH && pool.nwarm > POOL_WARM_MAX) {
		batch[n] = pool.warm;
		pool.warm = pool.warm->next;
		ck_pr_store_64(&pool.nwarm, pool.nwarm - 1);
		n++;
	}
	weft__mutex_unlock(&pool.lock);
	if (n == 0) {
		ck_pr_dec_64(&pool.trimming);
		return 0;
	}
	qsort(batch, (size_t)n, sizeof(batch[0]), by_address);
	for (i = 0; i < n; i = j) {
		char *lo = batch[i]->lo, *hi = lo + batch[i]->size;

		/* Armed guard regions in between survive MADV_DONTNEED. */
		for (j = i + 1; j < n && (batch[j]->lo == hi ||
		     (pool.regions && batch[j]->slab &&
		      batch[j]->lo - batch[j]->gap == hi)); j++)
			hi = batch[j]->lo + batch[j]->size;
		(void)madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
	}
	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	for (i = 0; i < n; i++) {
		batch[i]->next = pool.cold;
		pool.cold = batch[i];
		pool.ncold++;
	}
	ck_pr_dec_64(&pool.trimming);
	weft__mutex_unlock(&pool.lock);
	return n;
}

/*
 * A worker with nothing to run gives back up to `batches` batches of the
 * warm pool's excess.  Returns the number of stacks trimmed.
 * Executed by a worker about to sleep.
 */
int
weft__stack_trim_idle(int batches)
{
	int n = 0, got;

	if (ck_pr_load_64(&pool.nwarm) <= POOL_WARM_MAX)
		return 0;
	while (batches-- > 0 && (got = trim_batch()) > 0)
		n += got;
	return n;
}

/* Return to the global pool.  Caller holds pool.lock. */
static void
pool_put_locked(struct weft__stack *st)
{
	WEFT_ASSERT_HELD(&pool.lock);
	st->next = pool.warm;
	pool.warm = st;
	ck_pr_store_64(&pool.nwarm, pool.nwarm + 1);
}

/*
 * Keep a stack of a non-default size in its class (taking a free class if
 * none matches).  Returns false if the class or the byte budget is full.
 * Any thread.
 */
static bool
odd_put(struct weft__stack *st)
{
	int i, empty = -1;
	bool kept = false;

	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	if (pool.odd_bytes + st->size > ODD_BYTES_MAX)
		goto out;
	for (i = 0; i < ODD_CLASSES; i++) {
		if (pool.odd[i].size == st->size)
			break;
		if (empty < 0 && !pool.odd[i].free)
			empty = i;
	}
	if (i == ODD_CLASSES) {
		if (empty < 0)
			goto out;
		i = empty;
		pool.odd[i].size = st->size;
	}
	if (pool.odd[i].n >= ODD_CLASS_MAX)
		goto out;
	st->next = pool.odd[i].free;
	pool.odd[i].free = st;
	pool.odd[i].n++;
	pool.odd_bytes += st->size;
	ck_pr_inc_64(&pool.cached);
	kept = true;
out:
	weft__mutex_unlock(&pool.lock);
	return kept;
}

/* Cache full: move half of it, plus st, to the global pool. */
static __attribute__((noinline)) void
put_spill(struct weft__worker *w, struct weft__stack *st)
{
	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	pool_put_locked(st);
	while (w && w->nstack_cache > STACK_CACHE_MAX / 2) {
		st = w->stack_cache;
		w->stack_cache = st->next;
		w->nstack_cache--;
		pool_put_locked(st);
	}
	weft__mutex_unlock(&pool.lock);
	/* Safety valve for a run that never idles. */
	if (WEFT_UNLIKELY(ck_pr_load_64(&pool.nwarm) > POOL_HARD_MAX))
		trim_batch();
}

static __attribute__((noinline)) void
put_odd(struct weft__stack *st)
{
	if (!odd_put(st))
		unmap_single(st);
}

void
weft__stack_put(struct weft__worker *w, struct weft__stack *st)
{
#if defined(WEFT_ASAN)
	/*
	 * Frames that never returned (the exit path) left poison behind;
	 * poison the whole stack while it is pooled, so that a use after
	 * its task exited (a stale pointer to a local) is reported.
	 */
	ASAN_UNPOISON_MEMORY_REGION(st->lo, st->size);
	ASAN_POISON_MEMORY_REGION(st->lo, st->size);
#endif
	count_in_use(w, -1);
	if (WEFT_UNLIKELY(st->size != pool.default_size)) {
		put_odd(st);
		return;
	}
	weft__stack_unclaim(w);
	count_cached(w, 1);
	if (WEFT_LIKELY(w && w->nstack_cache < STACK_CACHE_MAX)) {
		st->next = w->stack_cache;
		w->stack_cache = st;
		w->nstack_cache++;
		return;
	}
	put_spill(w, st);
}

void
weft__stack_flush(struct weft__worker *w)
{
	struct weft__stack *st;

	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	while ((st = w->stack_cache)) {
		w->stack_cache = st->next;
		w->nstack_cache--;
		pool_put_locked(st);
	}
	weft__mutex_unlock(&pool.lock);
	ck_pr_sub_64(&pool.claims, (uint64_t)w->stack_credit);
	w->stack_credit = 0;
	/* The worker's share of the counters goes back to the atomics. */
	ck_pr_add_64(&pool.in_use, (uint64_t)w->stacks_in_use);
	ck_pr_add_64(&pool.cached, (uint64_t)w->stacks_cached);
	ck_pr_store_64((uint64_t *)&w->stacks_in_use, 0);
	ck_pr_store_64((uint64_t *)&w->stacks_cached, 0);
}

static void
free_list(struct weft__stack *st)
{
	struct weft__stack *next;

	for (; st; st = next) {
		next = st->next;
		ck_pr_dec_64(&pool.cached);
		if (!st->slab)
			unmap_single(st);
	}
}

void
weft__stack_teardown(void)
{
	struct slab *sl, *next;

	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	free_list(pool.warm);
	free_list(pool.cold);
	pool.warm = pool.cold = NULL;
	pool.nwarm = pool.ncold = 0;
	for (int i = 0; i < ODD_CLASSES; i++) {
		free_list(pool.odd[i].free);
		pool.odd[i].free = NULL;
		pool.odd[i].n = 0;
		pool.odd[i].size = 0;
	}
	pool.odd_bytes = 0;
	for (sl = pool.slabs; sl; sl = next) {
		next = sl->next;
		for (int i = 0; i < SLAB_STACKS; i++)
			if (sl->stacks[i].guard)
				ck_pr_dec_64(&pool.nguarded);
		stack_unmap(sl->base, sl->len);
		ck_pr_sub_64(&pool.bytes_mapped, sl->len);
		free(sl);
	}
	pool.slabs = NULL;
	ck_pr_store_64(&pool.capacity, 0);
	ck_pr_store_64(&pool.claims, 0);
	weft__mutex_unlock(&pool.lock);
}

void
weft__stack_counters(uint64_t *in_use, uint64_t *cached, uint64_t *guarded,
		     uint64_t *mapped)
{
	*in_use = ck_pr_load_64(&pool.in_use);
	*cached = ck_pr_load_64(&pool.cached);
	*guarded = ck_pr_load_64(&pool.nguarded);
	*mapped = ck_pr_load_64(&pool.bytes_mapped);
}

/*
 * Overflow reporting.  Both paths write with write(2) only: the SIGSEGV one
 * runs on the alternate signal stack, and neither may trust the heap.
 */
static size_t
fmt_u64(char *buf, uint64_t v)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

static void
report_overflow(const struct weft_task *t, const char *how)
{
	char msg[256];
	size_t n = 0, l;

#define PUT(s) do { l = strlen(s); if (n + l < sizeof(msg)) {		\
		memcpy(msg + n, s, l); n += l; } } while (0)
	PUT("weft: stack overflow in task ");
	n += fmt_u64(msg + n, t->id);
	PUT(" (");
	PUT(t->name[0] ? t->name : "unnamed");
	PUT("): ");
	PUT(how);
	PUT(", stack of ");
	n += fmt_u64(msg + n, t->stack ? t->stack->size : 0);
	PUT(" bytes\n");
#undef PUT
	if (write(STDERR_FILENO, msg, n) < 0)
		return;
}

/* Tests only: called after the report, before abort(). */
void (*weft__stack_overflow_hook)(const struct weft_task *t);

static void
overflow_abort(const struct weft_task *t)
{
	if (weft__stack_overflow_hook)
		weft__stack_overflow_hook(t);
	signal(SIGABRT, SIG_DFL);
	abort();
}

void
weft__stack_overflowed(struct weft_task *t, void *sp)
{
	report_overflow(t, (char *)sp < t->stack->lo + WEFT_STACK_RESERVE ?
			"stack pointer below the stack's limit" :
			"canary below the stack overwritten");
	overflow_abort(t);
}

/* The interrupted stack pointer, or NULL where we do not know how. */
static char *
fault_sp(void *uc)
{
	ucontext_t *u = uc;

#if defined(__x86_64__)
	return (char *)u->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	return (char *)u->uc_mcontext.sp;
#else
	(void)u;
	return NULL;
#endif
}

/*
 * Did the task on `st` overflow?  A fault in its guard (or, unguarded, at
 * most 64 KiB below it), or any fault while the stack pointer is below it:
 * a frame larger than the guard jumped it and hit something else (another
 * stack's guard, unmapped memory).
 */
static bool
overflowed(const struct weft__stack *st, const char *addr, const char *sp)
{
	size_t below = st->gap > 65536 ? st->gap : 65536;

	return (addr < st->lo && addr + below >= st->lo) ||
	       (sp && sp < st->lo && sp + STACK_MAX >= st->lo);
}

static void
segv_handler(int sig, siginfo_t *si, void *uc)
{
	struct weft__worker *w = weft__worker_self();
	struct weft_task *t = w ? w->cur : NULL;
	struct weft__stack *st;
	char *addr = si->si_addr, *sp = fault_sp(uc);
	struct sigaction *old = sig == SIGBUS ? &pool.old_bus : &pool.old_segv;

	/*
	 * Between a switch-out and its finish (as_kind set), the worker may
	 * still run on the task it leaves -- the switch pushes registers on
	 * its stack -- while cur names the next one.
	 */
	if (w && w->as_kind != AS_NONE && w->as_task && w->as_task->stack &&
	    overflowed(w->as_task->stack, addr, sp))
		t = w->as_task;
	st = t ? t->stack : NULL;
	if (st && overflowed(st, addr, sp)) {
		report_overflow(t, st->guard && addr < st->lo &&
				addr >= st->lo - st->guard ?
				"hit the guard" :
				sp && sp < st->lo ?
				"stack pointer below the stack" :
				"fault below the stack");
		overflow_abort(t);
	}
	/*
	 * Not ours: restore what was there.  A real fault happens again on
	 * return and reaches that handler; a signal sent with kill() or
	 * raise() (si_code <= 0) would not, so send it again.
	 */
	sigaction(sig, old, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

int
weft__stack_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = segv_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &pool.old_segv) < 0)
		return -errno;
	if (sigaction(SIGBUS, &sa, &pool.old_bus) < 0) {
		sigaction(SIGSEGV, &pool.old_segv, NULL);
		return -errno;
	}
	pool.installed = true;
	return 0;
}

void
weft__stack_signals_remove(void)
{
	if (!pool.installed)
		return;
	sigaction(SIGSEGV, &pool.old_segv, NULL);
	sigaction(SIGBUS, &pool.old_bus, NULL);
	pool.installed = false;
}

void *
weft__stack_altstack_make(void)
{
	stack_t ss;

	ss.ss_sp = malloc(ALTSTACK_SIZE);
	if (!ss.ss_sp)
		return NULL;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) < 0) {
		free(ss.ss_sp);
		return NULL;
	}
	return ss.ss_sp;
}

void
weft__stack_altstack_free(void *alt)
{
	stack_t ss = { .ss_flags = SS_DISABLE };

	if (!alt)
		return;
	sigaltstack(&ss, NULL);
	free(alt);
}

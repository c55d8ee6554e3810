/* SPDX-License-Identifier: MIT */
/*
 * Coroutine stacks: mapping, pooling, overflow detection.
 *
 * Costs that shape this file (measured on the 2-vCPU guests, DESIGN.md):
 * mmap + touch + munmap of a 64 KiB stack with a guard is ~10 us, 400x the
 * spawn budget, so stacks are pooled and reused; a fresh page costs ~1.5 us
 * on first touch, so pooled stacks keep their pages; vm.max_map_count is
 * 65,530 and a guarded stack costs two mappings, so only a budget of stacks
 * (a quarter of the limit by default) gets a guard page.  Past the budget,
 * default-size stacks are carved from 64-stack slabs (one mapping each, and
 * adjacent slabs merge), protected by the zero canary described in
 * sched/park.h.  Memory is committed lazily: a parked task that used 3 KiB of
 * its 64 KiB stack holds one resident page.
 *
 * Pools: each worker keeps up to STACK_CACHE_MAX free default-size stacks
 * (owner-only, no lock).  Overflow goes to the global pool (lock), which
 * keeps POOL_WARM_MAX stacks with their pages once the workers have had
 * time to trim it.  Trimming is done by a worker about to sleep with
 * nothing to run (Go's scavenger idea: give memory back when it costs no
 * latency), so a burst of exits followed by a burst of spawns reuses warm
 * stacks instead of refaulting them; only past POOL_HARD_MAX does a put trim
 * inline.  A trim takes TRIM_BATCH stacks, sorts them by address, coalesces
 * neighbours and hands their pages back with one MADV_DONTNEED per run (a
 * burst of a million exits costs a few thousand system calls, not a million
 * TLB shootdowns).  Default-size stacks stay mapped until the run
 * ends; guarded ones are made in batches of GUARD_BATCH (one mmap, then one
 * mprotect per guard page) because a mapping per stack costs ~10 us.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sched/park.h"
#include "sched/sched.h"

#define SLAB_STACKS 64
#define POOL_WARM_MAX 4096	/* warm stacks kept once workers go idle */
#define POOL_HARD_MAX 65536	/* past this, trimming happens inline */
#define TRIM_BATCH 256
#define GUARD_BATCH 16
#define ALTSTACK_SIZE (64 * 1024)
#define STACK_MIN (16 * 1024)
#define STACK_MAX ((size_t)1 << 30)
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
	char *base;			/* mapping: SLAB_STACKS * stack size */
	size_t len;
	struct slab *next;		/* all slabs: under pool.lock */
	struct weft__stack stacks[SLAB_STACKS];
};

static struct {
	/* Immutable during a run. */
	size_t page;
	size_t default_size;
	long guard_budget;		/* max guarded stacks at once */

	/* Protected by lock. */
	pthread_mutex_t lock;
	struct weft__stack *warm;	/* free, pages resident */
	uint64_t nwarm;			/* written under lock, read without */
	struct weft__stack *cold;	/* free, pages returned (slab only) */
	uint64_t ncold;
	struct slab *slabs;
	struct slab *cur_slab;		/* slab being carved */
	int slab_used;
	struct {
		size_t size;		/* 0: class unused */
		struct weft__stack *free;
		uint32_t n;
	} odd[ODD_CLASSES];		/* free stacks of other sizes */
	size_t odd_bytes;		/* their total size */

	/* Atomics: any thread. */
	uint64_t nguarded;		/* guarded stacks mapped now */
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

int
weft__stack_setup(size_t default_size, long guarded_stacks)
{
	pool.page = (size_t)sysconf(_SC_PAGESIZE);
	if (default_size == 0)
		default_size = 64 * 1024;
	if (default_size < STACK_MIN || default_size > STACK_MAX)
		return -EINVAL;
	pool.default_size = (default_size + pool.page - 1) & ~(pool.page - 1);
	if (guarded_stacks < 0)
		pool.guard_budget = 0;
	else if (guarded_stacks == 0)
		pool.guard_budget = max_map_count() / 4;
	else
		pool.guard_budget = guarded_stacks;
	return 0;
}

/* Take one from the guard budget; false when it is spent.  Any thread. */
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

/* A stack with its own mapping: guarded when the budget allows. */
static struct weft__stack *
map_single(size_t size, int *err)
{
	struct weft__stack *st;
	bool guarded = guard_take();
	size_t guard = guarded ? pool.page : 0;
	char *p;

	st = malloc(sizeof(*st));
	if (!st) {
		*err = -ENOMEM;
		goto out_guard;
	}
	p = mmap(NULL, size + guard, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		*err = -errno;
		goto out_free;
	}
	if (guarded && mprotect(p, guard, PROT_NONE) < 0) {
		*err = -errno;
		munmap(p, size + guard);
		goto out_free;
	}
	st->lo = p + guard;
	st->size = size;
	st->kind = guarded ? STACK_GUARDED : STACK_PLAIN;
	st->next = NULL;
	ck_pr_add_64(&pool.bytes_mapped, size + guard);
	return st;

out_free:
	free(st);
out_guard:
	if (guarded)
		ck_pr_dec_64(&pool.nguarded);
	return NULL;
}

static void
unmap_single(struct weft__stack *st)
{
	size_t guard = st->kind == STACK_GUARDED ? pool.page : 0;

	munmap(st->lo - guard, st->size + guard);
	ck_pr_sub_64(&pool.bytes_mapped, st->size + guard);
	if (st->kind == STACK_GUARDED)
		ck_pr_dec_64(&pool.nguarded);
	free(st);
}

/*
 * Map up to GUARD_BATCH default-size guarded stacks with one mmap: returns
 * the first, the rest go to w's cache.  NULL when the budget is spent or
 * the kernel refuses (*err).  Executed only by worker w.
 */
static struct weft__stack *
map_guarded_batch(struct weft__worker *w, int *err)
{
	size_t span = pool.default_size + pool.page;
	struct weft__stack *first = NULL, *st;
	int n = 0, i;
	char *p;

	WEFT_ASSERT_OWNER(w);
	while (n < GUARD_BATCH && guard_take())
		n++;
	if (n == 0)
		return NULL;
	p = mmap(NULL, span * (size_t)n, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		*err = -errno;
		ck_pr_sub_64(&pool.nguarded, (uint64_t)n);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		char *base = p + (size_t)i * span;

		st = malloc(sizeof(*st));
		if (!st || mprotect(base, pool.page, PROT_NONE) < 0) {
			/* Give back this one and every one after it. */
			*err = st ? -errno : -ENOMEM;
			free(st);
			munmap(base, span * (size_t)(n - i));
			ck_pr_sub_64(&pool.nguarded, (uint64_t)(n - i));
			break;
		}
		st->lo = base + pool.page;
		st->size = pool.default_size;
		st->kind = STACK_GUARDED;
			ck_pr_add_64(&pool.bytes_mapped, span);
		if (!first) {
			first = st;
			continue;
		}
		st->next = w->stack_cache;
		w->stack_cache = st;
		w->nstack_cache++;
		ck_pr_inc_64(&pool.cached);
	}
	return first;
}

/* Carve the next default-size stack from a slab.  Caller holds pool.lock. */
static struct weft__stack *
slab_carve_locked(int *err)
{
	struct slab *sl = pool.cur_slab;
	struct weft__stack *st;

	WEFT_ASSERT_HELD(&pool.lock);

	if (!sl || pool.slab_used == SLAB_STACKS) {
		sl = calloc(1, sizeof(*sl));
		if (!sl) {
			*err = -ENOMEM;
			return NULL;
		}
		sl->len = SLAB_STACKS * pool.default_size;
		sl->base = mmap(NULL, sl->len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				-1, 0);
		if (sl->base == MAP_FAILED) {
			*err = -errno;
			free(sl);
			return NULL;
		}
		/* A huge page would commit 2 MiB for one 4 KiB frame. */
		(void)madvise(sl->base, sl->len, MADV_NOHUGEPAGE);
		ck_pr_add_64(&pool.bytes_mapped, sl->len);
		sl->next = pool.slabs;
		pool.slabs = sl;
		pool.cur_slab = sl;
		pool.slab_used = 0;
	}
	st = &sl->stacks[pool.slab_used];
	st->lo = sl->base + (size_t)pool.slab_used * pool.default_size;
	st->size = pool.default_size;
	st->kind = STACK_SLAB;
	st->next = NULL;
	pool.slab_used++;
	return st;
}

struct weft__stack *
weft__stack_get(struct weft__worker *w, size_t size, int *err)
{
	struct weft__stack *st;

	if (WEFT_UNLIKELY(weft__fail_alloc())) {
		*err = -ENOMEM;
		return NULL;
	}
	if (size == 0 || size == pool.default_size) {
		st = w->stack_cache;
		if (WEFT_LIKELY(st)) {
			w->stack_cache = st->next;
			w->nstack_cache--;
			ck_pr_dec_64(&pool.cached);
			goto out;
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
		if (st)
			goto out;
		/* New: guarded while the budget lasts, then from slabs. */
		if (ck_pr_load_64(&pool.nguarded) < (uint64_t)pool.guard_budget) {
			st = map_guarded_batch(w, err);
			if (st)
				goto out;
		}
		weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
		st = slab_carve_locked(err);
		weft__mutex_unlock(&pool.lock);
		if (!st)
			return NULL;
		goto out;
	}
	size = (size + pool.page - 1) & ~(pool.page - 1);
	st = NULL;
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
	if (!st)
		return NULL;
out:
	st->next = NULL;
	ck_pr_inc_64(&pool.in_use);
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
	while (n < TRIM_BATCH && pool.nwarm > POOL_WARM_MAX) {
		batch[n] = pool.warm;
		pool.warm = pool.warm->next;
		ck_pr_store_64(&pool.nwarm, pool.nwarm - 1);
		n++;
	}
	weft__mutex_unlock(&pool.lock);
	if (n == 0)
		return 0;
	qsort(batch, (size_t)n, sizeof(batch[0]), by_address);
	for (i = 0; i < n; i = j) {
		char *lo = batch[i]->lo, *hi = lo + batch[i]->size;

		for (j = i + 1; j < n && batch[j]->lo == hi; j++)
			hi += batch[j]->size;
		(void)madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
	}
	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	for (i = 0; i < n; i++) {
		batch[i]->next = pool.cold;
		pool.cold = batch[i];
		pool.ncold++;
	}
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

void
weft__stack_put(struct weft__worker *w, struct weft__stack *st)
{
#if defined(WEFT_ASAN)
	/* Frames that never returned (the exit path) left poison behind. */
	ASAN_UNPOISON_MEMORY_REGION(st->lo, st->size);
#endif
	ck_pr_dec_64(&pool.in_use);
	if (st->size != pool.default_size) {
		if (!odd_put(st))
			unmap_single(st);
		return;
	}
	ck_pr_inc_64(&pool.cached);
	if (w->nstack_cache < STACK_CACHE_MAX) {
		st->next = w->stack_cache;
		w->stack_cache = st;
		w->nstack_cache++;
		return;
	}
	/* Cache full: move half of it, plus this one, to the global pool. */
	weft__mutex_lock(&pool.lock, WEFT_RANK_STACKS);
	pool_put_locked(st);
	while (w->nstack_cache > STACK_CACHE_MAX / 2) {
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
}

static void
free_list(struct weft__stack *st)
{
	struct weft__stack *next;

	for (; st; st = next) {
		next = st->next;
		ck_pr_dec_64(&pool.cached);
		if (st->kind != STACK_SLAB)
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
		munmap(sl->base, sl->len);
		ck_pr_sub_64(&pool.bytes_mapped, sl->len);
		free(sl);
	}
	pool.slabs = pool.cur_slab = NULL;
	pool.slab_used = 0;
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

void
weft__stack_overflowed(struct weft_task *t, void *sp)
{
	report_overflow(t, (char *)sp < t->stack->lo + WEFT_STACK_RESERVE ?
			"stack pointer below the stack's limit" :
			"canary below the stack overwritten");
	abort();
}

static void
segv_handler(int sig, siginfo_t *si, void *uc)
{
	struct weft_task *t = weft__task_self();
	struct weft__stack *st = t ? t->stack : NULL;
	char *addr = si->si_addr;
	struct sigaction *old = sig == SIGBUS ? &pool.old_bus : &pool.old_segv;

	/*
	 * A fault at most 64 KiB below a task's stack is an overflow (a large
	 * frame can skip the guard page itself).
	 */
	if (st && addr < st->lo && addr + 65536 >= st->lo) {
		report_overflow(t, st->kind == STACK_GUARDED ?
				"hit the guard page" :
				"fault below the stack");
		signal(SIGABRT, SIG_DFL);
		abort();
	}
	/*
	 * Not ours: restore what was there.  A real fault happens again on
	 * return and reaches that handler; a signal sent with kill() or
	 * raise() (si_code <= 0) would not, so send it again.
	 */
	sigaction(sig, old, NULL);
	if (si->si_code <= 0)
		raise(sig);
	(void)uc;
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

/* SPDX-License-Identifier: MIT */
/*
 * This file is private to weft.  The few definitions every layer shares:
 * branch hints, the internal assertion, the panic, the lock order and the
 * lock wrappers that check it, and the allocation fault-injection hook.
 * It lives in io/, the bottom layer, because io/ may include nothing above
 * it and everything above may include io/ (HACKING.md, "Layers").
 */
#ifndef WEFT_BASE_H
#define WEFT_BASE_H

#include <pthread.h>
#include <stdbool.h>

#include <ck_spinlock.h>

/*
 * ThreadSanitizer runs a signal's handler at once only when the thread is
 * in a call it knows may block (epoll_wait, read, ...).  Otherwise it keeps
 * the signal, in the state of the fiber that was running, until that fiber
 * next makes an intercepted call.  So a signal that lands while a task
 * runs would wait, handler unrun, until that task ran and called into libc
 * again (never, if it exits or parks for good), and one that lands while
 * the scheduler is about to sleep in io_uring_enter() or epoll_pwait2()
 * (neither of which gcc 12's TSan knows blocks) until that worker next
 * woke.  Under TSan, then: an intercepted call that changes nothing (a
 * query of the signal mask) runs the kept handlers before each fiber
 * switch (weft__switch), and a backend sleeps in naps of at most
 * WEFT_TSAN_NAP_NS with one after each (inside its wait call, so that the
 * scheduler, its statistics and the deadlock detector see one sleep).
 * Other builds: the kernel runs the handler itself; all of this is empty.
 */
#if defined(WEFT_TSAN)
#include <signal.h>

#define WEFT_TSAN_NAP_NS (5 * 1000 * 1000)

static inline void
weft__tsan_take_signals(void)
{
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
}
#else
static inline void
weft__tsan_take_signals(void)
{
}
#endif

#define WEFT_LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEFT_CACHELINE 64

/*
 * Internal invariant checks.  They stay compiled in (the cheap ones guard
 * ownership rules whose violation would otherwise corrupt memory quietly);
 * -DWEFT_NDEBUG removes them.
 */
#if defined(WEFT_NDEBUG)
#define WEFT_ASSERT(cond) ((void)0)
#else
#define WEFT_ASSERT(cond)						\
	(WEFT_LIKELY(cond) ? (void)0 :					\
	 weft__panic("assertion failed: %s (%s:%d)", #cond, __FILE__,	\
		     __LINE__))
#endif

/*
 * The lock order, written once.  Every lock weft takes has a rank; a thread
 * takes locks in increasing rank ("a < b": a first).  Two locks of one rank
 * never nest, except channel locks, which a select takes in increasing
 * address order.  A trylock may go against the order (it cannot wait, so
 * it cannot deadlock): a thief trylocks a victim's timer heap.
 *
 *	SIGNAL		runtime/signal.c's registration lock (notify, stop,
 *			the run's start and end); nothing is taken under it
 *	STATS		weft__stats_lock (weft_stats, weft_dump: then sched,
 *			tpool)
 *	START		the workers' start hand-off (sched/worker.c)
 *	POOL_REGISTRY	runtime/pool.c registry.lock, then one pool's lock
 *	POOL		a blocking pool's lock (its thread wakes waiters under
 *			it; a future is completed with no pool lock held, and
 *			weft_future_cancel() cancels a job with no future lock)
 *	GROUP		a group's lock (cancels members, wakes waiters)
 *	FUTURE		a future's lock (its completer wakes waiters; a
 *			group's hooks run after it is released)
 *	CHAN		channel locks, by address (select)
 *	SYNC		mutex, rwlock, cond, wait group, semaphore, once
 *	TASK		a task's lock (join, exit, cancel)
 *	EPOLL		an epoll backend's lock (readiness wakes under it)
 *	TIMERS		a worker's timer heap (an I/O deadline queues a
 *			cancel under it); two workers' heaps never nest
 *	IO_CANCEL	an io_uring backend's cancel queue
 *	SCHED		sched.lock: the global queue, the idle list, foreign
 *			spawns; any waker may reach it (weft__wake() of a
 *			foreign or overflowing wake), so everything above may
 *			be held when it is taken, and nothing below but
 *	TPOOL		the task descriptor pool (sched/task.c)
 *	STACKS		the stack pool (sched/stack.c)
 *	ORPHANS		futures completed while no runtime runs
 *
 * No lock is held across a context switch, except the one a lock-guarded
 * park (weft__lpark) hands to the next context, which releases it at once.
 *
 * Build with -DWEFT_LOCKRANK (`make asan` does) and every lock and unlock
 * below goes through a per-thread list of held locks: taking a lock whose
 * rank is not above every held one aborts with both locks' ranks and the
 * places they were taken; WEFT_ASSERT_HELD(lock) in a `_locked` function
 * aborts unless the calling thread holds it.  Without it the wrappers are
 * the bare lock calls.
 */
enum weft__rank {
	WEFT_RANK_NONE = 0,
	WEFT_RANK_SIGNAL,
	WEFT_RANK_STATS,
	WEFT_RANK_START,
	WEFT_RANK_POOL_REGISTRY,
	WEFT_RANK_POOL,
	WEFT_RANK_GROUP,
	WEFT_RANK_FUTURE,
	WEFT_RANK_CHAN,
	WEFT_RANK_SYNC,
	WEFT_RANK_TASK,
	WEFT_RANK_EPOLL,
	WEFT_RANK_TIMERS,
	WEFT_RANK_IO_CANCEL,
	WEFT_RANK_SCHED,
	WEFT_RANK_TPOOL,
	WEFT_RANK_STACKS,
	WEFT_RANK_ORPHANS,
	WEFT_RANK_COUNT
};

/*
 * The checker (io/lockrank.c; compiled in every build, called only by code
 * built with WEFT_LOCKRANK).  `site` is "file:line".  Any thread.
 */
void weft__rank_acquire(const void *lock, enum weft__rank rank,
			const char *site);
void weft__rank_acquired(const void *lock, enum weft__rank rank,
			 const char *site);
void weft__rank_release(const void *lock, const char *site);
void weft__rank_assert_held(const void *lock, const char *what,
			    const char *site);
/* Abort unless at most one lock (a lock-guarded park's) is held. */
void weft__rank_check_switch(void);
/* Locks the calling thread holds right now. */
int weft__rank_held(void);
const char *weft__rank_name(enum weft__rank rank);

#define WEFT__STR_(x) #x
#define WEFT__STR(x) WEFT__STR_(x)
#define WEFT__SITE __FILE__ ":" WEFT__STR(__LINE__)

#ifdef WEFT_LOCKRANK
#define WEFT__RANK_ACQUIRE(l, r, site) weft__rank_acquire((l), (r), (site))
#define WEFT__RANK_ACQUIRED(l, r, site) weft__rank_acquired((l), (r), (site))
#define WEFT__RANK_RELEASE(l, site) weft__rank_release((l), (site))
#define WEFT_ASSERT_HELD(l) weft__rank_assert_held((l), #l, WEFT__SITE)
#else
#define WEFT__RANK_ACQUIRE(l, r, site) ((void)(r), (void)(site))
#define WEFT__RANK_ACQUIRED(l, r, site) ((void)(r), (void)(site))
#define WEFT__RANK_RELEASE(l, site) ((void)(site))
#define WEFT_ASSERT_HELD(l) ((void)0)
#endif

/*
 * weft's spinlocks (ck_spinlock_t) guard short critical sections, but a
 * worker thread can be preempted by the kernel (or its vCPU by the
 * hypervisor) while it holds one, and a waiter that only spins then burns
 * its whole time slice.  weft__spin_lock() spins a little, then
 * sched_yield()s between rounds so that a preempted holder on the same CPU
 * can finish.  Release with weft__spin_unlock().  Any thread.
 */
void weft__spin_lock_slow(ck_spinlock_t *l);

static inline void
weft__spin_lock_at(ck_spinlock_t *l, enum weft__rank rank, const char *site)
{
	WEFT__RANK_ACQUIRE(l, rank, site);
	/* Acquire: ck_spinlock_trylock's exchange and its fence_lock. */
	if (WEFT_LIKELY(ck_spinlock_trylock(l)))
		return;
	weft__spin_lock_slow(l);
}

static inline bool
weft__spin_trylock_at(ck_spinlock_t *l, enum weft__rank rank,
		      const char *site)
{
	if (!ck_spinlock_trylock(l))
		return false;
	WEFT__RANK_ACQUIRED(l, rank, site);
	return true;
}

static inline void
weft__spin_unlock_at(ck_spinlock_t *l, const char *site)
{
	WEFT__RANK_RELEASE(l, site);
	ck_spinlock_unlock(l);
}

static inline void
weft__mutex_lock_at(pthread_mutex_t *m, enum weft__rank rank,
		    const char *site)
{
	WEFT__RANK_ACQUIRE(m, rank, site);
	pthread_mutex_lock(m);
}

static inline int
weft__mutex_trylock_at(pthread_mutex_t *m, enum weft__rank rank,
		       const char *site)
{
	int r = pthread_mutex_trylock(m);

	if (r == 0)
		WEFT__RANK_ACQUIRED(m, rank, site);
	return r;
}

static inline void
weft__mutex_unlock_at(pthread_mutex_t *m, const char *site)
{
	WEFT__RANK_RELEASE(m, site);
	pthread_mutex_unlock(m);
}

#define weft__spin_lock(l, rank) weft__spin_lock_at((l), (rank), WEFT__SITE)
#define weft__spin_trylock(l, rank)					\
	weft__spin_trylock_at((l), (rank), WEFT__SITE)
#define weft__spin_unlock(l) weft__spin_unlock_at((l), WEFT__SITE)
#define weft__mutex_lock(m, rank)					\
	weft__mutex_lock_at((m), (rank), WEFT__SITE)
#define weft__mutex_trylock(m, rank)					\
	weft__mutex_trylock_at((m), (rank), WEFT__SITE)
#define weft__mutex_unlock(m) weft__mutex_unlock_at((m), WEFT__SITE)

/*
 * Allocation fault injection, for tests/faults/ (HACKING.md, "Fault
 * injection").  With WEFT_FAULT_ALLOC=N in the environment when weft_run()
 * starts, every Nth call of weft__fail_alloc() in the process returns true
 * and the allocation it guards fails as if memory had run out: the caller
 * gets -ENOMEM.  The guarded allocations are task descriptors
 * (sched/task.c), stacks (sched/stack.c, also a generator's), channels,
 * futures (also a task's and a pool job's), groups and their members.
 *
 * weft__fault_alloc_every is stored by weft_run() (runtime/run.c, from
 * runtime/config.c) before any worker starts, and keeps the last run's
 * value; 0, the default, is off.  Both it and the count are relaxed
 * atomics: the hook needs no order, only that every Nth call over all
 * threads fails.  Off, the cost is one load and one branch predicted not
 * taken.  Any thread.
 */
extern unsigned int weft__fault_alloc_every;
__attribute__((cold)) bool weft__fault_alloc_hit(void);

static inline bool
weft__fail_alloc(void)
{
	if (WEFT_LIKELY(!__atomic_load_n(&weft__fault_alloc_every,
					 __ATOMIC_RELAXED)))
		return false;
	return weft__fault_alloc_hit();
}

/*
 * Everything the runtime prints goes through here (but for the stack
 * overflow report, written from a signal handler): to the run's log hook
 * (weft_config.log) if it has one, else to stderr.  weft__log_set() is
 * called by weft_run (runtime/run.c) once it owns the run, and with NULL
 * when the run is over; weft__log_to() is for messages about a
 * configuration before that (runtime/config.c).  A message is one or more
 * lines, each ending in a newline, passed whole.  Any thread; never park.
 */
typedef void (*weft__log_fn)(void *arg, const char *msg);
void weft__log_set(weft__log_fn fn, void *arg);
void weft__log_msg(const char *msg);
__attribute__((format(printf, 1, 2)))
void weft__log(const char *fmt, ...);
__attribute__((format(printf, 3, 4)))
void weft__log_to(weft__log_fn fn, void *arg, const char *fmt, ...);
/* True while a hook is set (a caller may then build a message whole). */
bool weft__log_hooked(void);

/* Print "weft: <message>" (to the log) and abort().  Any thread. */
__attribute__((noreturn, format(printf, 1, 2), cold))
void weft__panic(const char *fmt, ...);

#endif /* WEFT_BASE_H */

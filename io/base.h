/* SPDX-License-Identifier: MIT */
/*
 * This file is private to weft.  The few definitions every layer shares:
 * branch hints, the internal assertion, the panic and the spinlock helper.
 * It lives in io/, the bottom layer, because io/ may include nothing above
 * it and everything above may include io/ (HACKING.md, "Layers").
 */
#ifndef WEFT_BASE_H
#define WEFT_BASE_H

#include <ck_spinlock.h>

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
 * weft's spinlocks (ck_spinlock_t) guard short critical sections, but a
 * worker thread can be preempted by the kernel (or its vCPU by the
 * hypervisor) while it holds one, and a waiter that only spins then burns
 * its whole time slice.  weft__spin_lock() spins a little, then
 * sched_yield()s between rounds so that a preempted holder on the same CPU
 * can finish.  Release with ck_spinlock_unlock().  Any thread.
 */
void weft__spin_lock_slow(ck_spinlock_t *l);

static inline void
weft__spin_lock(ck_spinlock_t *l)
{
	/* Acquire: ck_spinlock_trylock's exchange and its fence_lock. */
	if (WEFT_LIKELY(ck_spinlock_trylock(l)))
		return;
	weft__spin_lock_slow(l);
}

/* Print "weft: <message>" to stderr and abort().  Any thread. */
__attribute__((noreturn, format(printf, 1, 2), cold))
void weft__panic(const char *fmt, ...);

#endif /* WEFT_BASE_H */

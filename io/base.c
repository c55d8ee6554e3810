/* SPDX-License-Identifier: MIT */
/*
 * The definitions of io/base.h that are not inline: the panic, the
 * contended path of the spinlock helper and the fault-injection counter.
 * Any thread.
 */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <ck_pr.h>
#include <ck_spinlock.h>

#include "io/base.h"

void
weft__panic(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "weft: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		abort();
	abort();
}

/*
 * The contended path of weft__spin_lock(): test-and-test-and-set with a
 * pause per probe; after SPIN_PROBES failed probes (several microseconds,
 * far longer than any critical section weft holds a spinlock for, so the
 * holder is most likely off its CPU) give the CPU away once, then spin
 * again.
 */
#define SPIN_PROBES 256

void
weft__spin_lock_slow(ck_spinlock_t *l)
{
	for (;;) {
		for (int i = 0; i < SPIN_PROBES; i++) {
			if (!ck_spinlock_locked(l) && ck_spinlock_trylock(l))
				return;
			ck_pr_stall();
		}
		sched_yield();
	}
}

/* WEFT_FAULT_ALLOC's N (0: off) and the calls counted so far. */
unsigned int weft__fault_alloc_every;
static unsigned long fault_alloc_calls;

bool
weft__fault_alloc_hit(void)
{
	unsigned int every = __atomic_load_n(&weft__fault_alloc_every,
					     __ATOMIC_RELAXED);
	unsigned long n = __atomic_add_fetch(&fault_alloc_calls, 1,
					     __ATOMIC_RELAXED);

	return every && n % every == 0;
}

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
#include <string.h>
#include <unistd.h>

#include <ck_pr.h>
#include <ck_spinlock.h>

#include "io/base.h"

/*
 * The log hook.  Set between runs only (weft_run holds its run lock), so
 * a reader that loads fn then arg sees one pair: fn is stored last and
 * cleared first (release stores; the loads are acquire).  A message from
 * a thread that outlives the run may still reach the hook just cleared's
 * predecessor: hooks must stay callable after weft_run returns.
 */
static struct {
	weft__log_fn fn;
	void *arg;
} log_hook;

void
weft__log_set(weft__log_fn fn, void *arg)
{
	__atomic_store_n(&log_hook.fn, NULL, __ATOMIC_RELEASE);
	__atomic_store_n(&log_hook.arg, arg, __ATOMIC_RELEASE);
	__atomic_store_n(&log_hook.fn, fn, __ATOMIC_RELEASE);
}

bool
weft__log_hooked(void)
{
	return __atomic_load_n(&log_hook.fn, __ATOMIC_ACQUIRE) != NULL;
}

/* One message to fn, else to stderr, in one write. */
static void
log_out(weft__log_fn fn, void *arg, const char *msg, size_t len)
{
	if (fn) {
		fn(arg, msg);
		return;
	}
	while (len) {
		ssize_t n = write(STDERR_FILENO, msg, len);

		if (n <= 0)
			return;
		msg += n;
		len -= (size_t)n;
	}
}

void
weft__log_msg(const char *msg)
{
	weft__log_fn fn = __atomic_load_n(&log_hook.fn, __ATOMIC_ACQUIRE);
	void *arg = __atomic_load_n(&log_hook.arg, __ATOMIC_ACQUIRE);

	log_out(fn, arg, msg, strlen(msg));
}

static void
log_va(weft__log_fn fn, void *arg, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	if (n < 0)
		return;
	if (n >= (int)sizeof(buf)) {
		/* Cut: still one line, still ending in a newline. */
		n = (int)sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	log_out(fn, arg, buf, (size_t)n);
}

void
weft__log(const char *fmt, ...)
{
	weft__log_fn fn = __atomic_load_n(&log_hook.fn, __ATOMIC_ACQUIRE);
	void *arg = __atomic_load_n(&log_hook.arg, __ATOMIC_ACQUIRE);
	va_list ap;

	va_start(ap, fmt);
	log_va(fn, arg, fmt, ap);
	va_end(ap);
}

void
weft__log_to(weft__log_fn fn, void *arg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(fn, arg, fmt, ap);
	va_end(ap);
}

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
	buf[n] = '\0';
	weft__log_msg(buf);
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

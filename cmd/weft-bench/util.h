/* SPDX-License-Identifier: MIT */
/*
 * The measurement helpers of a weft-bench child (util.c): workload sizes,
 * clocks, RSS, CPUs, futexes, thread and process rounds, and the records
 * sent to the harness.  Includes bench.h only.
 */
#ifndef WEFT_BENCH_UTIL_H
#define WEFT_BENCH_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench.h"

/* A workload size: `quick` or `full` by mode, divided by BENCH_SHRINK. */
long bench_size(const struct bench_cfg *cfg, long quick, long full);

/*
 * Create n threads running body(NULL) and join them; fork n children
 * running child() and reap them (*failed: those that did not exit 0).
 * Both return the wall time in ns.
 */
int64_t bench_thread_round(pthread_t *t, long n, void *(*body)(void *));
int64_t bench_fork_round(pid_t *pids, long n, int (*child)(void),
			 long *failed);

/*
 * Measurement helpers (util.c).  All may be called from a weft task as well
 * as from a plain thread; none of them blocks for long.
 */

/*
 * malloc() and write every byte, so the pages are resident before a
 * baseline is taken or a clock is started; fails the child if out of memory.
 */
void *bench_alloc_touched(size_t size);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now(void);

/* Resident set size of this process in bytes (/proc/self/statm), or -errno. */
long bench_rss(void);

/* KernelStack from /proc/meminfo in bytes (system-wide), or -errno. */
long bench_kernel_stack(void);

/*
 * Machine-wide CPU time from /proc/stat's "cpu" line, in ticks: all of it,
 * and the part the hypervisor gave to other guests (steal).  On a shared
 * VM a few percent of steal already moves the numbers.  0 or -errno.
 */
int bench_cpu_ticks(uint64_t *total, uint64_t *steal);

/* The index of the n-th CPU (0-based) of our affinity mask, or -1. */
int bench_cpu(int n);

/* Pin the calling thread to one CPU (none if cpu < 0).  0 or -errno. */
int bench_pin(int cpu);

/* futex(2) on an int: wait while *addr == val; wake up to n waiters. */
int bench_futex_wait(int *addr, int val, bool shared);
int bench_futex_wake(int *addr, int n, bool shared);

/*
 * Report one number to the harness.  `n` is the size of the workload that
 * produced it, `workers` the threads that ran it.
 */
void bench_emit(const char *metric, enum metric_kind kind, double value,
		const char *unit, long n, int workers);

/*
 * Report a failure and end the child (exit status 1).  printf-like.  Safe
 * to call from a weft task: the process exits without unwinding anything.
 */
void bench_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/*
 * End the child without results because the implementation cannot run on
 * this machine (a program is not installed...): the harness prints the
 * reason and goes on; it is not a failure.  printf-like.
 */
void bench_skip(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* A remark the harness prints (and writes to the JSON) with the results. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Create a scratch directory (mkdtemp() under $TMPDIR or /tmp, prefix
 * "weft-bench-NAME.") into buf and tell the harness, which removes it after
 * the child has ended, whether or not the child got to do so itself.
 * 0 or -errno.
 */
int bench_scratch(const char *name, char *buf, size_t len);

/* rm -rf: remove path and everything under it (no symlinks followed). */
void bench_rmtree(const char *path);

/* The file descriptor bench_emit() writes to; set in the child. */
extern int bench_result_fd;

#endif /* WEFT_BENCH_UTIL_H */

/* SPDX-License-Identifier: MIT */
/*
 * weft-bench: the same workloads run with OS threads, processes and weft
 * tasks, side by side.  This header is private to cmd/weft-bench/.
 *
 * Every (scenario, implementation, run) executes in a forked child (see
 * main.c).  The child calls one bench_fn, which measures and reports its
 * numbers with bench_emit(); the records travel back to the harness over a
 * pipe.  The harness takes the median over the runs and prints and writes
 * the results (report.c).
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The implementations, in the order they are run and printed.  The http
 * scenario adds its comparison servers (http.c): a single-threaded epoll
 * server, the same with one thread per worker, nginx and Go.
 */
enum bench_impl {
	IMPL_THREADS,
	IMPL_PROCESSES,
	IMPL_EPOLL,
	IMPL_EPOLL_MT,
	IMPL_NGINX,
	IMPL_GO,
	IMPL_WEFT,
	IMPL_MAX,
};

/* How to read a metric: what "better" means, and how to compare. */
enum metric_kind {
	KIND_TIME,	/* lower is better: "weft 14.2x faster" */
	KIND_MEMORY,	/* lower is better: "uses 0.3x the memory" */
	KIND_HIGHER,	/* higher is better: "weft 1.02x higher" */
	KIND_INFO,	/* a count shown for context; no ratio */
};

/*
 * Under ASan or TSan the numbers mean nothing and everything runs many
 * times slower (a TSan fiber costs ~0.6 ms to create and destroy, and TSan
 * cannot follow more than ~8k live threads); yet `make asan` and `make
 * tsan` run the e2e test on the sanitized weft-bench.  So a sanitized build
 * divides every workload by BENCH_SHRINK: the harness and the weft calls
 * still get exercised, within the time limits.
 */
#if defined(__SANITIZE_THREAD__)
#define BENCH_SHRINK 200
#elif defined(__SANITIZE_ADDRESS__)
#define BENCH_SHRINK 20
#else
#define BENCH_SHRINK 1
#endif

/* What every scenario function gets: the parsed command line. */
struct bench_cfg {
	bool quick;
	int workers;		/* --workers: workers of multi-worker runs */
	int ncpus;		/* CPUs in the harness's affinity mask */
};

/* A workload size: `quick` or `full` by mode, divided by BENCH_SHRINK. */
long bench_size(const struct bench_cfg *cfg, long quick, long full);

/* One measured number, as a child sends it and the harness stores it. */
struct bench_rec {
	int type;		/* REC_METRIC or REC_ERROR */
	int kind;		/* enum metric_kind */
	char metric[32];
	char unit[16];
	double value;
	long n;			/* tasks, threads or iterations measured */
	int workers;		/* worker threads used (1 for threads' runs) */
	char msg[160];		/* the text of other types */
};

#define REC_METRIC	1
#define REC_ERROR	2
#define REC_SKIP	3	/* the implementation cannot run here */
#define REC_NOTE	4	/* a remark printed with the results */
#define REC_SCRATCH	5	/* a directory to remove after the child */

/* A scenario body for one implementation; returns 0 or a negative errno. */
typedef int (*bench_fn)(const struct bench_cfg *cfg);

/*
 * Scenario bodies, one file each.  A NULL entry in the scenario table means
 * the implementation is not meaningful for that workload.
 */
int64_t bench_thread_round(pthread_t *t, long n, void *(*body)(void *));
int64_t bench_fork_round(pid_t *pids, long n, int (*child)(void),
			 long *failed);
int spawn_threads(const struct bench_cfg *cfg);
int spawn_processes(const struct bench_cfg *cfg);
int spawn_weft(const struct bench_cfg *cfg);
int yield_threads(const struct bench_cfg *cfg);
int yield_processes(const struct bench_cfg *cfg);
int yield_weft(const struct bench_cfg *cfg);
int park_threads(const struct bench_cfg *cfg);
int park_weft(const struct bench_cfg *cfg);
int sleep_threads(const struct bench_cfg *cfg);
int sleep_processes(const struct bench_cfg *cfg);
int sleep_weft(const struct bench_cfg *cfg);
int fanout_threads(const struct bench_cfg *cfg);
int fanout_weft(const struct bench_cfg *cfg);
int http_threads(const struct bench_cfg *cfg);
int http_epoll(const struct bench_cfg *cfg);
int http_epoll_mt(const struct bench_cfg *cfg);
int http_nginx(const struct bench_cfg *cfg);
int http_go(const struct bench_cfg *cfg);
int http_weft(const struct bench_cfg *cfg);
int chan_threads(const struct bench_cfg *cfg);
int chan_go(const struct bench_cfg *cfg);
int chan_weft(const struct bench_cfg *cfg);
int skynet_threads(const struct bench_cfg *cfg);
int skynet_go(const struct bench_cfg *cfg);
int skynet_weft(const struct bench_cfg *cfg);
int mutex_threads(const struct bench_cfg *cfg);
int mutex_weft(const struct bench_cfg *cfg);

/*
 * Small embedded Go programs (goprog.c), for the chan and skynet go
 * implementations.  bench_go_build() writes `src` to main.go in a scratch
 * directory and builds it offline (as the http scenario builds its Go
 * server) into `bin`; it skips the child if Go is not installed and fails
 * it if the build fails.  bench_go_run() runs `bin arg1 [arg2]` with
 * GOMAXPROCS=gomaxprocs and returns the number it printed (which must be
 * positive; the child fails otherwise).  bench_go_done() removes the
 * scratch directory.
 */
void bench_go_build(const char *name, const char *src, char *bin,
		    size_t binlen);
double bench_go_run(const char *bin, const char *arg1, const char *arg2,
		    int gomaxprocs, int limit_s);
void bench_go_done(void);
/*
 * The offline build both use: write `src` to DIR/main.go and build DIR/NAME
 * (path into `bin`).  0, -ENOENT (no Go installed) or -EIO (the build
 * failed: bench_go_log(DIR) gives the end of its log).
 */
int bench_go_compile(const char *dir, const char *name, const char *src,
		     char *bin, size_t binlen);
const char *bench_go_log(const char *dir);

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

/*
 * Results as the harness keeps them (main.c collects, report.c prints).
 * One row per (scenario, impl, metric): the median over the runs.
 */
struct bench_row {
	const char *scenario;
	enum bench_impl impl;
	enum bench_impl baseline;	/* what the ratios compare with */
	struct bench_rec rec;	/* rec.value holds the median */
	double min;
	double max;
	int runs;		/* successful runs the median is taken over */
};

struct bench_report {
	struct bench_row *rows;
	size_t nrows;
	int workers;
	bool quick;
	int runs;		/* --runs */
	const char *const *errors;	/* one line per failed child */
	size_t nerrors;
	const char *const *notes;	/* skips and remarks of the children */
	size_t nnotes;
};

const char *bench_impl_name(enum bench_impl impl);

void report_table(const struct bench_report *r);
int report_json(const struct bench_report *r, const char *path);
int report_csv(const struct bench_report *r, const char *path);
int report_svg(const struct bench_report *r, const char *path);

#endif /* WEFT_BENCH_H */

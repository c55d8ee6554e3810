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
 *
 * This header holds only the types everybody shares and includes no other
 * header of weft-bench.  The rest is declared by the module that defines
 * it: scenarios.h (the scenario bodies, for main.c's table), util.h (the
 * measurement helpers), report.h (results and output), proc.h (process,
 * file and port helpers), goprog.h (embedded Go programs), servers.h (the
 * http scenario's comparison servers).
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdbool.h>

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
	IMPL_WEFT_PROCS,	/* http: weft-httpd --procs N --workers 1 */
	IMPL_WEFT_PROCS_RP,	/* the same with --reuseport */
	IMPL_HAPROXY,		/* proxy: HAProxy, mode tcp */
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

#endif /* WEFT_BENCH_H */

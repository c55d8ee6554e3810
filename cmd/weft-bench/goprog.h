/* SPDX-License-Identifier: MIT */
/*
 * Building and running small embedded Go programs (goprog.c).  Includes no
 * other header of weft-bench.
 */
#ifndef WEFT_BENCH_GOPROG_H
#define WEFT_BENCH_GOPROG_H

#include <stddef.h>

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

#endif /* WEFT_BENCH_GOPROG_H */

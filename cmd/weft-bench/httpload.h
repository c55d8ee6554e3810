/* SPDX-License-Identifier: MIT */
/*
 * The client side of the http scenario (http.c), shared with the proxy
 * scenario (proxy.c), which drives the same HTTP load through a proxy:
 * the child's setup, the answer check, wrk, the idle connections and the
 * records.  Includes bench.h and proc.h only.
 */
#ifndef WEFT_BENCH_HTTPLOAD_H
#define WEFT_BENCH_HTTPLOAD_H

#include <stddef.h>

#include "bench.h"
#include "proc.h"

/* One wrk run against a server, and what the server spent on it. */
struct http_load {
	int conns;
	long requests;
	double secs;
	double p99_ms;
	long errors;		/* socket errors and non-2xx/3xx answers */
	char errwhat[96];
	double cpu_us;		/* server CPU per request */
	long rss_kib;		/* peak server RSS */
	double steal;		/* the CPU time stolen meanwhile */
};

/*
 * The start of an http-driving child: become the subreaper of its
 * servers' orphans, find wrk (skips the child if missing) into `wrk`,
 * raise RLIMIT_NOFILE to its hard limit, make the scratch directory
 * bench_scratch_dir (prefix `name`) with wrk's Lua hook in it.  Returns
 * how many idle connections to open: `idle`, or fewer (with a note) when
 * RLIMIT_NOFILE is below idle * fds_per_idle + 200 (the busiest process
 * holds fds_per_idle descriptors per connection: a proxy holds two).
 */
long http_client_setup(const struct bench_cfg *cfg, const char *name,
		       long idle, int fds_per_idle, char *wrk, size_t len);

/*
 * Pipelining and a split head through s->port, each answered in full by
 * a "Hello, world" 200: or the child fails.
 */
void http_check(struct bench_server *s);

/*
 * `wrk -t1 -cCONNS -dSECS --latency` against s->port; s's process tree's
 * CPU time and peak RSS over the run.  Fails the child if wrk does or s
 * dies.
 */
void http_run_wrk(const char *wrk, struct bench_server *s, int conns,
		  int secs, struct http_load *l);

/*
 * n keep-alive connections to s->port opened one after the other, each
 * answered once and kept open: s's RSS growth per connection in KiB, and
 * (unless NULL) its growth in open fds per connection.
 */
double http_idle(struct bench_server *s, int n, double *fds_per_conn);

/* The req_per_s_cC, p99_ms_cC, cpu_us_per_req_cC, rss_kib_cC records. */
void http_emit_load(const struct http_load *l, int workers);

#endif /* WEFT_BENCH_HTTPLOAD_H */

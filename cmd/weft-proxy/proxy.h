/* SPDX-License-Identifier: MIT */
/*
 * weft-proxy's run-time state: what one worker process knows about its
 * listeners, pools and servers while it serves.  Built by px_state_make()
 * from a px_config in the worker process (after fork), freed with it.
 *
 * Threads.  A worker process runs `workers` weft worker threads; a
 * session's tasks may run on any of them, so everything here that
 * changes while serving is either an atomic counter (any thread, relaxed:
 * they are statistics) or under its pool's `lock`, a pthread mutex held
 * for a few hundred nanoseconds and never across a park.  Fields say
 * which.
 */
#ifndef WEFT_PROXY_PROXY_H
#define WEFT_PROXY_PROXY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <weft.h>

#include "config.h"

/* Why a session ended: the access log's `end=` and a metrics label. */
enum px_end {
	PX_END_CLIENT_CLOSE = 0,	/* the client's FIN came first */
	PX_END_SERVER_CLOSE,		/* the server's FIN came first */
	PX_END_IDLE_TIMEOUT,		/* no byte either way for idle_timeout */
	PX_END_SESSION_TIMEOUT,		/* session_timeout passed */
	PX_END_CLIENT_RESET,		/* the client reset (or write failed) */
	PX_END_SERVER_RESET,		/* the server reset (or write failed) */
	PX_END_REFUSED,			/* listener full, queue full */
	PX_END_QUEUE_TIMEOUT,		/* waited queue_timeout for a slot */
	PX_END_NO_SERVER,		/* no server up (health) */
	PX_END_CONNECT_FAILED,		/* every server tried failed */
	PX_END_BAD_PROXY,		/* malformed or late PROXY header */
	PX_END_DRAIN,			/* cut at the drain deadline */
	PX_END_ERROR,			/* anything else (ENOMEM, ...) */
	PX_END_N
};
extern const char *const px_end_names[PX_END_N];

/* Connect errors by cause (per server). */
enum px_cerr {
	PX_CERR_REFUSED = 0,
	PX_CERR_TIMEOUT,
	PX_CERR_UNREACHABLE,
	PX_CERR_OTHER,
	PX_CERR_N
};
extern const char *const px_cerr_names[PX_CERR_N];

/* Histogram bucket upper bounds, in seconds (and +Inf). */
#define PX_HIST_N 13
extern const double px_hist_bounds[PX_HIST_N];

struct px_hist {
	_Atomic uint64_t b[PX_HIST_N + 1];	/* last: +Inf */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
};
void px_hist_add(struct px_hist *h, int64_t ns);

struct px_pool_rt;

struct px_srv {
	const struct px_server *c;
	struct px_pool_rt *pool;
	int idx;
	/* Resolved once when the worker process starts; family 0: none. */
	struct sockaddr_storage sa;
	socklen_t salen;
	/* Under pool->lock. */
	int active;		/* sessions connecting to or connected to it */
	int cw;			/* smooth weighted round-robin current weight */
	int fails;		/* consecutive connect failures (passive) */
	int64_t ejected_until;	/* passive ejection; 0: not ejected */
	int64_t up_since;	/* back in service at (slow start); 0: long */
	bool check_up;		/* active checks' verdict (true without) */
	/* Health task only (one per server with checks). */
	int rise_n;
	int fall_n;
	/* Atomics, any thread, relaxed. */
	_Atomic uint64_t total;		/* sessions connected */
	_Atomic uint64_t bytes_in;	/* client -> server */
	_Atomic uint64_t bytes_out;	/* server -> client */
	_Atomic uint64_t cerr[PX_CERR_N];
	_Atomic uint64_t checks_failed;
};

struct px_pool_rt {
	const struct px_pool *c;
	struct px_srv *srv;	/* c->nservers */
	pthread_mutex_t lock;
	/*
	 * Sessions waiting for a server below its max_conns (under lock),
	 * and the semaphore they wait on: a release posts once per waiter
	 * it counts off.  A waiter that times out uncounts itself; a post
	 * it leaves behind only makes the next waiter look again.
	 */
	int waiters;
	struct weft_sem freed;
	uint64_t rr;		/* leastconn tie-break rotation, under lock */
};

struct px_lis_rt {
	const struct px_listener *c;
	struct px_pool_rt *pool;
	int fd;			/* the listening socket (the master's) */
	struct weft_sem slots;	/* max_conns of them; unused when 0 */
	_Atomic int queued;	/* sessions waiting (slot or server) */
	_Atomic int active;
	_Atomic uint64_t total;
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t bytes_out;
	_Atomic uint64_t ended[PX_END_N];
	struct px_hist connect_time;
	struct px_hist duration;
};

struct px_state {
	const struct px_config *cfg;
	struct px_pool_rt *pools;	/* cfg->npools */
	struct px_lis_rt *lis;		/* cfg->nlisteners */
	int admin_fd;			/* -1: no admin listener */
	pid_t pid;
	int64_t started;		/* weft_now() at start */
	struct weft_future *drain;	/* the supervisor's; may be NULL */
	/* Pipes for splice: in use now, and refused for want of one. */
	_Atomic int pipes_used;
	_Atomic uint64_t pipes_refused;
	_Atomic uint64_t pp_errors;	/* malformed PROXY headers */
};

/*
 * Build the state for `cfg` with the listeners' fds (in config order; the
 * admin listener's last when cfg->has_admin).  Resolves the servers' names
 * (blocking: call it before serving).  0 or -ENOMEM.
 */
int px_state_make(struct px_state *st, const struct px_config *cfg,
		  const int *fds, int nfds);
void px_state_free(struct px_state *st);

/*
 * Serve every listener (and the admin one) until `st->drain` completes
 * and the sessions have ended, or the caller is cancelled.  Starts the
 * health checks.  Coroutine context.  0 or a negative errno.
 */
int px_serve(struct px_state *st);

/*
 * Choose a server of `p` as a session does, for a client whose address
 * hashes to `hash` (px_addr_hash), and count it active: 0 with *out,
 * -EBUSY (every usable server is at its max_conns), -ENOENT (none is in
 * service).  px_release() undoes the count.  Any thread.
 */
int px_pick(struct px_pool_rt *p, uint64_t hash, struct px_srv **out);
void px_release(struct px_srv *s);
uint64_t px_addr_hash(const struct sockaddr_storage *ss);

/* One session, as weft_serve()'s handler; `arg` is a struct px_lis_rt. */
void px_session(int fd, void *arg);

/* Health: start one checker task per server of pools with checks. */
int px_health_start(struct px_state *st, struct weft_group *g);
/* A connect to `s` failed / succeeded (passive health). */
void px_health_connect_failed(struct px_srv *s, int err);
void px_health_connect_ok(struct px_srv *s);
/* Is `s` in service at `now` (health, ejection)?  Under pool->lock. */
bool px_srv_usable_locked(struct px_srv *s, int64_t now);
/* Its weight now (slow start ramps it).  Under pool->lock. */
int px_srv_weight_locked(const struct px_srv *s, int64_t now);

/* Admin listener: GET /metrics (Prometheus text), GET /status (JSON). */
void px_admin_conn(int fd, void *arg);

/* Access log (alog.c): a buffer a writer thread empties. */
int px_log_open(const char *where);	/* "" off, "stderr", or a path */
void px_log_reopen(void);		/* SIGUSR1: open the path again */
void px_log_close(void);		/* flush and stop the writer */
/* Append one line (a '\n' is added); never blocks; dropped when full. */
void px_log_line(const char *line, size_t len);
uint64_t px_log_dropped(void);

/* Processes' own messages on stderr: "weft-proxy[PID]: ...". */
void px_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

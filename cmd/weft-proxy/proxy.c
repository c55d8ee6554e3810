/* SPDX-License-Identifier: MIT */
/*
 * weft-proxy's sessions: admission, server choice, connect with retries,
 * and the two directions of a proxied connection.
 *
 * A session is two tasks.  The connection's handler (weft_serve() spawns
 * it) admits the client, connects, then carries client -> server itself;
 * it spawns one task that carries server -> client.  Each direction is
 * plain sequential code: wait until its source is readable, read, write
 * everything to the other side (waiting while that side is full, which is
 * the backpressure: a direction holds at most one buffer), repeat.  No
 * buffer is held while a direction waits for input, so an idle session
 * costs its two parked tasks and this struct, not 2 x buffer_size.
 *
 * Ending.  A FIN on one side becomes shutdown(SHUT_WR) on the other and
 * ends that direction only (half-close); the session ends when both have.
 * A reset, a failed write, a timeout or a drain cut ends both at once: the
 * direction that sees it stops the other (the handler cancels the
 * server -> client task; that task cancels the handler, which then only
 * waits for it, with down_stop(), which waits even when the handler is
 * cancelled), and a reset is passed on as a reset (SO_LINGER 0, then
 * close).
 *
 * Large transfers.  A burst (bytes read without the source running dry)
 * longer than splice_threshold is bulk data: with splice auto the rest of
 * that burst moves with splice(2) through a pipe taken from a bounded
 * per-process count (PX_PIPES_MAX), socket -> pipe -> socket inside the
 * kernel, never through user memory; when the source runs dry the pipe
 * goes back and the direction waits as before.  Small request/response
 * traffic never reaches the threshold, so it never pays for the pipe.
 * Out of pipes, a direction goes on with read and write.  README.md has
 * the figures.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pp.h"
#include "proxy.h"

/* Pipes a worker process may hold for splice at once (2 fds each). */
#define PX_PIPES_MAX 256
/* Retries are capped by the config at 16: servers tried at most. */
#define PX_TRIES_MAX 17
/*
 * io_uring: a direction waits in a receive of this many bytes into its
 * stack frame (one operation: no poll, then read), inside the stack page
 * the parked task holds anyway.  A read that fills it is followed by
 * reads of buffer_size from the heap until the source runs dry.  Keep
 * it small: the frame must leave a parked task on one stack page.
 * Measured by weft-bench idle_kib_per_conn-style runs (2,000 idle proxied connections,
 * RSS per connection): 8.37 KiB at 128, 256 and 384, 12.2 KiB at 512.
 */
#define PX_SMALL 256
/* Bytes one splice call moves at most (the pipe's default capacity). */
#define PX_SPLICE_CHUNK (64 << 10)

const char *const px_end_names[PX_END_N] = {
	[PX_END_CLIENT_CLOSE] = "client_close",
	[PX_END_SERVER_CLOSE] = "server_close",
	[PX_END_IDLE_TIMEOUT] = "idle_timeout",
	[PX_END_SESSION_TIMEOUT] = "session_timeout",
	[PX_END_CLIENT_RESET] = "client_reset",
	[PX_END_SERVER_RESET] = "server_reset",
	[PX_END_REFUSED] = "refused",
	[PX_END_QUEUE_TIMEOUT] = "queue_timeout",
	[PX_END_NO_SERVER] = "no_server",
	[PX_END_CONNECT_FAILED] = "connect_failed",
	[PX_END_BAD_PROXY] = "bad_proxy_header",
	[PX_END_DRAIN] = "drain",
	[PX_END_ERROR] = "error",
};

const char *const px_cerr_names[PX_CERR_N] = {
	[PX_CERR_REFUSED] = "refused",
	[PX_CERR_TIMEOUT] = "timeout",
	[PX_CERR_UNREACHABLE] = "unreachable",
	[PX_CERR_OTHER] = "other",
};

const double px_hist_bounds[PX_HIST_N] = {
	0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600,
};

void
px_hist_add(struct px_hist *h, int64_t ns)
{
	double s = (double)ns / 1e9;
	int i = 0;

	while (i < PX_HIST_N && s > px_hist_bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->b[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)(ns > 0 ? ns : 0),
				  memory_order_relaxed);
}

void
px_msg(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "weft-proxy[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(2, buf, (size_t)n);
}

static struct px_state *g_st;	/* the worker process's one state */
/*
 * The backend completes operations (io_uring): wait in a receive.  Else
 * (epoll) wait for readiness, then read: a receive there would try the
 * read first, fail with EAGAIN, and read again once ready.  Set before
 * serving; read-only after.
 */
static bool g_recv_op;

/* How a direction ended. */
enum dir_end {
	DIR_EOF = 0,		/* source sent FIN */
	DIR_SRC_RESET,		/* source reset, or reading it failed */
	DIR_DST_RESET,		/* writing to the destination failed */
	DIR_IDLE,
	DIR_SESSION,
	DIR_CANCELLED,
	DIR_NOMEM,
};

struct px_sess {
	struct px_lis_rt *l;
	struct px_srv *srv;
	int cfd;
	int ufd;
	struct weft_task *handler;	/* the client -> server task */
	struct weft_task *down;		/* the server -> client task */
	int64_t start;
	int64_t connect_ns;
	int64_t session_end;		/* 0: no session timeout */
	int64_t idle;			/* 0: no idle timeout */
	_Atomic int64_t last_io;	/* either direction, weft_now() */
	_Atomic int why;		/* enum px_end; -1 until first set */
	/* Written by one direction each, read after both have ended. */
	uint64_t up_bytes;
	uint64_t down_bytes;
	enum dir_end up_end;
	enum dir_end down_end;
	/* Client bytes read with the PROXY header, sent first. */
	char *pre;
	size_t prelen;
	struct sockaddr_storage peer;	/* the client (or PROXY's) */
	struct sockaddr_storage local;	/* what it connected to */
	bool has_peer;
};

static void
set_why(struct px_sess *s, enum px_end why)
{
	int none = -1;

	atomic_compare_exchange_strong(&s->why, &none, (int)why);
}

/* ---- buffers: a small per-thread cache over malloc ---- */

#define BUF_CACHE 32
/* Per worker thread; the key's destructor frees them when it exits. */
static __thread void *buf_cache[BUF_CACHE];
static __thread int buf_cached;
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;

static void
buf_flush(void *unused)
{
	(void)unused;
	while (buf_cached > 0)
		free(buf_cache[--buf_cached]);
}

static void
buf_key_make(void)
{
	pthread_key_create(&buf_key, buf_flush);
}

static void *
buf_get(size_t size)
{
	if (buf_cached > 0)
		return buf_cache[--buf_cached];
	return malloc(size);
}

static void
buf_put(void *b)
{
	if (!b)
		return;
	if (buf_cached < BUF_CACHE) {
		if (!buf_cached) {
			/* A non-NULL value makes the destructor run. */
			pthread_once(&buf_once, buf_key_make);
			pthread_setspecific(buf_key, buf_cache);
		}
		buf_cache[buf_cached++] = b;
	} else {
		free(b);
	}
}

/* ---- pipes for splice ---- */

/*
 * Pipes are taken only while bytes move: a direction gives its pipe back
 * (empty) whenever its source has nothing more to read, so an idle
 * session holds none.  Given-back pipes wait in a small free list for
 * the next taker (no pipe2/close per burst).  At most PX_PIPES_MAX exist
 * in the process (pipes_used counts them, free ones included).
 */
#define PIPE_FREE_MAX 64
static pthread_mutex_t pipe_lock = PTHREAD_MUTEX_INITIALIZER;
static int pipe_free[PIPE_FREE_MAX][2];	/* under pipe_lock */
static int pipe_nfree;			/* under pipe_lock */

static int
pipe_get(struct px_state *st, int p[2])
{
	int n;

	pthread_mutex_lock(&pipe_lock);
	if (pipe_nfree > 0) {
		pipe_nfree--;
		p[0] = pipe_free[pipe_nfree][0];
		p[1] = pipe_free[pipe_nfree][1];
		pthread_mutex_unlock(&pipe_lock);
		return 0;
	}
	pthread_mutex_unlock(&pipe_lock);
	n = atomic_fetch_add(&st->pipes_used, 1);
	if (n >= PX_PIPES_MAX || pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
		atomic_fetch_sub(&st->pipes_used, 1);
		atomic_fetch_add_explicit(&st->pipes_refused, 1,
					  memory_order_relaxed);
		return -1;
	}
	return 0;
}

/* Give a pipe back; `empty` false: it may hold bytes, close it. */
static void
pipe_put(struct px_state *st, int p[2], bool empty)
{
	if (empty) {
		pthread_mutex_lock(&pipe_lock);
		if (pipe_nfree < PIPE_FREE_MAX) {
			pipe_free[pipe_nfree][0] = p[0];
			pipe_free[pipe_nfree][1] = p[1];
			pipe_nfree++;
			pthread_mutex_unlock(&pipe_lock);
			return;
		}
		pthread_mutex_unlock(&pipe_lock);
	}
	close(p[0]);
	close(p[1]);
	atomic_fetch_sub(&st->pipes_used, 1);
}

/* ---- one direction ---- */

/* The deadline of the next wait: the idle clock, the session's end. */
static int64_t
wait_deadline(struct px_sess *s)
{
	int64_t d = WEFT_DEADLINE_NONE;

	if (s->idle)
		d = atomic_load_explicit(&s->last_io, memory_order_relaxed) +
		    s->idle;
	if (s->session_end && (d == WEFT_DEADLINE_NONE || s->session_end < d))
		d = s->session_end;
	return d;
}

/*
 * A wait timed out: has a clock really run out, or did the other
 * direction move bytes meanwhile?  Returns DIR_IDLE, DIR_SESSION, or -1
 * (wait again).
 */
static int
timed_out(struct px_sess *s)
{
	int64_t now = weft_now();

	if (s->session_end && now >= s->session_end)
		return DIR_SESSION;
	if (s->idle && now >= atomic_load_explicit(&s->last_io,
						   memory_order_relaxed) +
				      s->idle)
		return DIR_IDLE;
	return -1;
}

static void
touch(struct px_sess *s)
{
	atomic_store_explicit(&s->last_io, weft_now(), memory_order_relaxed);
}

/* Wait until `fd` is ready for `ev`.  0, or the direction's end. */
static int
wait_fd(struct px_sess *s, int fd, short ev, bool src)
{
	for (;;) {
		int r = weft_poll(fd, ev, wait_deadline(s));

		if (r > 0)
			return 0;
		if (r == -ETIMEDOUT) {
			int t = timed_out(s);

			if (t >= 0)
				return t;
			continue;
		}
		if (r == -ECANCELED)
			return DIR_CANCELLED;
		return src ? DIR_SRC_RESET : DIR_DST_RESET;
	}
}

/* Write all of buf to dst.  0, or the direction's end. */
static int
send_all(struct px_sess *s, int dst, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(dst, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int r = wait_fd(s, dst, POLLOUT, false);

			if (r)
				return r;
			continue;
		}
		return DIR_DST_RESET;
	}
	return 0;
}

/*
 * pump_splice()'s returns besides pump()'s: negative, so that they never
 * collide with an enum dir_end (DIR_SRC_RESET is 1, DIR_DST_RESET 2).
 */
#define SPLICE_NO_PIPE	(-1)	/* out of pipes: go on with read and write */
#define SPLICE_DRY	(-2)	/* the source ran dry (only when not `stay`) */

/*
 * splice() from src to dst through a pipe (held only while bytes move).
 * Returns like pump(), or SPLICE_NO_PIPE, or SPLICE_DRY (splice always,
 * `stay`, waits itself).
 */
static int
pump_splice(struct px_sess *s, int src, int dst, uint64_t *bytes, bool stay)
{
	int pfd[2];
	bool have = false;

	for (;;) {
		ssize_t n;
		size_t left;

		if (!have) {
			if (pipe_get(g_st, pfd) < 0)
				return SPLICE_NO_PIPE;
			have = true;
		}
		n = splice(src, NULL, pfd[1], NULL, PX_SPLICE_CHUNK,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == 0) {
			pipe_put(g_st, pfd, true);
			return DIR_EOF;
		}
		if (n < 0) {
			int r;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				pipe_put(g_st, pfd, true);
				return DIR_SRC_RESET;
			}
			/* Nothing to read: give the (empty) pipe back. */
			pipe_put(g_st, pfd, true);
			have = false;
			if (!stay)
				return SPLICE_DRY;
			r = wait_fd(s, src, POLLIN, true);
			if (r)
				return r;
			continue;
		}
		left = (size_t)n;
		while (left) {
			ssize_t w = splice(pfd[0], NULL, dst, NULL, left,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

			if (w > 0) {
				left -= (size_t)w;
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno == EAGAIN) {
				int r = wait_fd(s, dst, POLLOUT, false);

				if (r) {
					pipe_put(g_st, pfd, false);
					return r;
				}
				continue;
			}
			pipe_put(g_st, pfd, false);
			return DIR_DST_RESET;
		}
		*bytes += (uint64_t)n;
		touch(s);
	}
}

/*
 * Carry bytes from src to dst until src's FIN (DIR_EOF) or an end that
 * stops the session.  `*bytes` counts what reached dst.
 */
static int
pump(struct px_sess *s, int src, int dst, uint64_t *bytes)
{
	const struct px_config *cfg = g_st->cfg;
	size_t size = cfg->buffer_size;
	bool may_splice = cfg->splice != PX_SPLICE_OFF;
	bool always = cfg->splice == PX_SPLICE_ON;
	uint64_t threshold = cfg->splice_threshold;
	uint64_t burst = 0;	/* bytes since the source last ran dry */
	char small[PX_SMALL];
	char *buf = NULL;
	int r;

	for (;;) {
		ssize_t n;

		if (may_splice && (always || burst >= threshold)) {
			buf_put(buf);
			buf = NULL;
			r = pump_splice(s, src, dst, bytes, always);
			if (r != SPLICE_NO_PIPE && r != SPLICE_DRY)
				return r;
			/* Dry, or out of pipes (then try at the next burst). */
			burst = 0;
			if (r == SPLICE_NO_PIPE && always)
				may_splice = false;
		}
		if (!buf && g_recv_op) {
			/* Wait in a receive into the frame: no heap held. */
			n = weft_recv(src, small, sizeof(small), 0,
				      wait_deadline(s));
			if (n > 0) {
				r = send_all(s, dst, small, (size_t)n);
				if (r)
					return r;
				*bytes += (uint64_t)n;
				touch(s);
				if ((size_t)n < sizeof(small)) {
					burst = 0;
					continue;
				}
				burst += (uint64_t)n;	/* more, likely */
			} else if (n == 0) {
				return DIR_EOF;
			} else if (n == -ETIMEDOUT) {
				r = timed_out(s);
				if (r >= 0)
					return r;
				continue;
			} else if (n == -ECANCELED) {
				return DIR_CANCELLED;
			} else if (n == -EAGAIN || n == -EINTR) {
				continue;
			} else {
				return DIR_SRC_RESET;
			}
			buf = buf_get(size);
			if (!buf)
				return DIR_NOMEM;
		} else if (!buf) {
			/* Wait with no buffer held: idle costs nothing. */
			r = wait_fd(s, src, POLLIN, true);
			if (r)
				return r;
			buf = buf_get(size);
			if (!buf)
				return DIR_NOMEM;
		}
		n = recv(src, buf, size, MSG_DONTWAIT);
		if (n > 0) {
			r = send_all(s, dst, buf, (size_t)n);
			if (r) {
				buf_put(buf);
				return r;
			}
			*bytes += (uint64_t)n;
			burst += (uint64_t)n;
			touch(s);
			if ((size_t)n < size) {
				/* Drained, most likely: wait again. */
				buf_put(buf);
				buf = NULL;
				burst = 0;
			}
			continue;
		}
		if (n == 0) {
			buf_put(buf);
			return DIR_EOF;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			buf_put(buf);
			buf = NULL;
			burst = 0;
			continue;
		}
		buf_put(buf);
		return DIR_SRC_RESET;
	}
}

/* Close with a reset (RST) rather than a FIN. */
static void
close_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* An end that stops the whole session, as the session's reason. */
static enum px_end
end_reason(enum dir_end e, bool from_client)
{
	switch (e) {
	case DIR_EOF:
		return from_client ? PX_END_CLIENT_CLOSE : PX_END_SERVER_CLOSE;
	case DIR_SRC_RESET:
		return from_client ? PX_END_CLIENT_RESET : PX_END_SERVER_RESET;
	case DIR_DST_RESET:
		return from_client ? PX_END_SERVER_RESET : PX_END_CLIENT_RESET;
	case DIR_IDLE:
		return PX_END_IDLE_TIMEOUT;
	case DIR_SESSION:
		return PX_END_SESSION_TIMEOUT;
	case DIR_CANCELLED:
		return PX_END_DRAIN;
	default:
		return PX_END_ERROR;
	}
}

/* The server -> client task. */
static void *
down_main(void *arg)
{
	struct px_sess *s = arg;
	int e = pump(s, s->ufd, s->cfd, &s->down_bytes);

	s->down_end = (enum dir_end)e;
	if (e == DIR_EOF) {
		set_why(s, PX_END_SERVER_CLOSE);
		shutdown(s->cfd, SHUT_WR);
		return NULL;
	}
	if (e == DIR_CANCELLED)
		return NULL;	/* the handler stopped us; it knows why */
	set_why(s, end_reason((enum dir_end)e, false));
	if (e == DIR_SRC_RESET || e == DIR_DST_RESET) {
		close_reset(s->cfd);
		close_reset(s->ufd);
	}
	weft_cancel(s->handler);
	return NULL;
}

/* ---- admission ---- */

/* Take a listener slot: 0, or PX_END_REFUSED / PX_END_QUEUE_TIMEOUT. */
static int
admit(struct px_lis_rt *l, int64_t start)
{
	const struct px_listener *c = l->c;
	int q;
	int r;

	if (!c->max_conns || weft_sem_tryacquire(&l->slots) == 0)
		return 0;
	q = atomic_load(&l->queued);
	do {
		if (q >= c->queue)
			return PX_END_REFUSED;
	} while (!atomic_compare_exchange_weak(&l->queued, &q, q + 1));
	r = weft_sem_acquire(&l->slots, start + c->queue_timeout);
	atomic_fetch_sub(&l->queued, 1);
	if (r == 0)
		return 0;
	return r == -ETIMEDOUT ? PX_END_QUEUE_TIMEOUT : PX_END_DRAIN;
}

static void
unadmit(struct px_lis_rt *l)
{
	if (l->c->max_conns)
		weft_sem_release(&l->slots);
}

/* ---- server choice ---- */

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

uint64_t
px_addr_hash(const struct sockaddr_storage *ss)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL;
	const unsigned char *p = NULL;
	size_t n = 0;

	if (ss->ss_family == AF_INET) {
		p = (const unsigned char *)&((const struct sockaddr_in *)ss)
			    ->sin_addr;
		n = 4;
	} else if (ss->ss_family == AF_INET6) {
		p = (const unsigned char *)&((const struct sockaddr_in6 *)ss)
			    ->sin6_addr;
		n = 16;
	}
	for (size_t i = 0; i < n; i++)
		h = mix64(h ^ p[i]);
	return h;
}

static __thread uint64_t rng_state;

static uint64_t
rng(void)
{
	if (!rng_state)
		rng_state = mix64((uint64_t)(uintptr_t)&rng_state ^
				  (uint64_t)weft_now());
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static bool
tried(const int *t, int nt, int idx)
{
	for (int i = 0; i < nt; i++)
		if (t[i] == idx)
			return true;
	return false;
}

enum pick { PICK_OK, PICK_FULL, PICK_NONE };

/*
 * Choose a server of `p` for a client with address hash `h`, not one of
 * `t`; count it active.  Under p->lock.
 */
static enum pick
pick_locked(struct px_pool_rt *p, uint64_t h, const int *t, int nt,
	    struct px_srv **out)
{
	int64_t now = weft_now();
	int n = p->c->nservers;
	bool primary_up = false;
	bool full = false;
	struct px_srv *best = NULL;
	int total = 0;
	double best_score = 0;

	for (int i = 0; i < n; i++)
		if (!p->srv[i].c->backup && px_srv_usable_locked(&p->srv[i],
								 now))
			primary_up = true;
	{
		/* Ties in leastconn go round; the others keep config order. */
		uint64_t rot = p->c->balance == PX_BAL_LEASTCONN ? p->rr++ : 0;
		struct px_srv *c1 = NULL;
		struct px_srv *c2 = NULL;
		int cand = 0;

		for (int k = 0; k < n; k++) {
			int i = (int)((rot + (uint64_t)k) % (uint64_t)n);
			struct px_srv *s = &p->srv[i];
			int w;

			if (s->c->backup == primary_up || tried(t, nt, i) ||
			    !px_srv_usable_locked(s, now))
				continue;
			if (s->c->max_conns && s->active >= s->c->max_conns) {
				full = true;
				continue;
			}
			w = px_srv_weight_locked(s, now);
			switch (p->c->balance) {
			case PX_BAL_LEASTCONN: {
				double sc = (double)(s->active + 1) / w;

				if (!best || sc < best_score) {
					best = s;
					best_score = sc;
				}
				break;
			}
			case PX_BAL_RANDOM2:
				cand++;
				if (rng() % (uint64_t)cand == 0) {
					c2 = c1;
					c1 = s;
				} else if (!c2 ||
					   rng() % (uint64_t)cand == 0) {
					c2 = s;
				}
				break;
			case PX_BAL_HASH: {
				/* weighted rendezvous hashing */
				uint64_t x = mix64(h ^ mix64((uint64_t)i + 1));
				double u = ((double)(x >> 11) + 0.5) /
					   9007199254740992.0;
				double sc = -(double)w / __builtin_log(u);

				if (!best || sc > best_score) {
					best = s;
					best_score = sc;
				}
				break;
			}
			default:	/* smooth weighted round-robin */
				s->cw += w;
				total += w;
				if (!best || s->cw > best->cw)
					best = s;
				break;
			}
		}
		if (p->c->balance == PX_BAL_RANDOM2 && c1) {
			best = c1;
			if (c2 && (double)c2->active /
					      px_srv_weight_locked(c2, now) <
				      (double)c1->active /
					      px_srv_weight_locked(c1, now))
				best = c2;
		}
		if (p->c->balance == PX_BAL_ROUNDROBIN && best)
			best->cw -= total;
	}
	if (!best)
		return full ? PICK_FULL : PICK_NONE;
	best->active++;
	*out = best;
	return PICK_OK;
}

int
px_pick(struct px_pool_rt *p, uint64_t hash, struct px_srv **out)
{
	enum pick r;

	pthread_mutex_lock(&p->lock);
	r = pick_locked(p, hash, NULL, 0, out);
	pthread_mutex_unlock(&p->lock);
	return r == PICK_OK ? 0 : r == PICK_FULL ? -EBUSY : -ENOENT;
}

void
px_release(struct px_srv *s)
{
	struct px_pool_rt *p = s->pool;
	bool post = false;

	pthread_mutex_lock(&p->lock);
	s->active--;
	if (p->waiters > 0) {
		p->waiters--;
		post = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (post)
		weft_sem_release(&p->freed);
}

/*
 * Choose a server, waiting (bounded by the listener's queue) while every
 * usable one is at its max_conns.  0 with *out, or the session's end.
 */
static int
choose(struct px_sess *s, const int *t, int nt, struct px_srv **out)
{
	struct px_pool_rt *p = s->l->pool;
	uint64_t h = s->has_peer ? px_addr_hash(&s->peer) : 0;
	int64_t deadline = 0;

	for (;;) {
		enum pick r;
		int q;
		int w;

		pthread_mutex_lock(&p->lock);
		r = pick_locked(p, h, t, nt, out);
		if (r == PICK_FULL)
			p->waiters++;
		pthread_mutex_unlock(&p->lock);
		if (r == PICK_OK)
			return 0;
		if (r == PICK_NONE)
			return nt ? PX_END_CONNECT_FAILED : PX_END_NO_SERVER;
		/* Every usable server is full: queue, if there is room. */
		q = atomic_fetch_add(&s->l->queued, 1);
		if (!deadline)
			deadline = weft_now() + s->l->c->queue_timeout;
		w = q < s->l->c->queue ? weft_sem_acquire(&p->freed, deadline)
				       : -EAGAIN;
		atomic_fetch_sub(&s->l->queued, 1);
		if (w == 0)
			continue;
		pthread_mutex_lock(&p->lock);
		if (p->waiters > 0)
			p->waiters--;
		pthread_mutex_unlock(&p->lock);
		if (w == -EAGAIN)
			return PX_END_REFUSED;
		return w == -ETIMEDOUT ? PX_END_QUEUE_TIMEOUT : PX_END_DRAIN;
	}
}

static enum px_cerr
cerr_of(int err)
{
	switch (err) {
	case -ECONNREFUSED:
		return PX_CERR_REFUSED;
	case -ETIMEDOUT:
		return PX_CERR_TIMEOUT;
	case -EHOSTUNREACH:
	case -ENETUNREACH:
		return PX_CERR_UNREACHABLE;
	default:
		return PX_CERR_OTHER;
	}
}

/* Connect to `srv`: the connected fd or a negative errno. */
static int
dial(struct px_srv *srv, int64_t deadline)
{
	int fd;
	int r;
	int one = 1;

	if (!srv->sa.ss_family)
		return -EHOSTUNREACH;	/* its name did not resolve */
	fd = socket(srv->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
					       SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (srv->sa.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r = weft_connect(fd, (struct sockaddr *)&srv->sa, srv->salen,
			 deadline);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* Connect with retries over the pool's servers.  0 or the end. */
static int
connect_upstream(struct px_sess *s)
{
	const struct px_pool *pc = s->l->pool->c;
	int t[PX_TRIES_MAX];
	int nt = 0;
	int last = 0;

	while (nt <= pc->retries && nt < PX_TRIES_MAX) {
		struct px_srv *srv;
		int64_t t0;
		int fd;
		int r = choose(s, t, nt, &srv);

		if (r)
			return (r == PX_END_CONNECT_FAILED && !last) ?
				       PX_END_NO_SERVER :
				       r;
		t0 = weft_now();
		fd = dial(srv, t0 + pc->connect_timeout);
		if (fd >= 0) {
			s->srv = srv;
			s->ufd = fd;
			s->connect_ns = weft_now() - t0;
			px_hist_add(&s->l->connect_time, s->connect_ns);
			px_health_connect_ok(srv);
			atomic_fetch_add_explicit(&srv->total, 1,
						  memory_order_relaxed);
			return 0;
		}
		if (fd == -ECANCELED) {
			px_release(srv);
			return PX_END_DRAIN;
		}
		if (fd == -ECONNRESET) {
			/*
			 * The server accepted and reset before the connect
			 * was seen complete (what it wrote is lost): a
			 * server reset, passed on as one, not a connect
			 * failure to retry or hold against its health.
			 */
			s->srv = srv;
			return PX_END_SERVER_RESET;
		}
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS ||
		    fd == -ENOMEM) {
			/* Our own limit, not the server's fault: no retry. */
			px_release(srv);
			return PX_END_ERROR;
		}
		atomic_fetch_add_explicit(&srv->cerr[cerr_of(fd)], 1,
					  memory_order_relaxed);
		px_health_connect_failed(srv, fd);
		px_release(srv);
		last = fd;
		t[nt++] = srv->idx;
	}
	return PX_END_CONNECT_FAILED;
}

/* ---- PROXY protocol ---- */

/* Read and parse a PROXY header from the client.  0 or the end. */
static int
read_proxy_header(struct px_sess *s)
{
	/* On the heap: a deep stack stays committed for the task's life. */
	char *buf = malloc(PX_PP_MAX);
	size_t have = 0;
	int64_t deadline = s->start + s->l->c->proxy_timeout;
	struct px_pp_info info;
	int ret = PX_END_BAD_PROXY;

	if (!buf)
		return PX_END_ERROR;
	for (;;) {
		ssize_t n;
		int r;

		n = weft_recv(s->cfd, buf + have, PX_PP_MAX - have, 0,
			      deadline);
		if (n <= 0) {
			if (n == -ECANCELED)
				ret = PX_END_DRAIN;
			else if (n != 0 && n != -ETIMEDOUT)
				ret = PX_END_CLIENT_RESET;
			goto bad;
		}
		have += (size_t)n;
		r = px_pp_parse(buf, have, &info);
		if (r == 0) {
			if (have == PX_PP_MAX)
				goto bad;
			continue;
		}
		if (r < 0)
			goto bad;
		if (info.has_addr) {
			s->peer = info.src;
			s->local = info.dst;
			s->has_peer = true;
		}
		if ((size_t)r < have) {
			s->prelen = have - (size_t)r;
			memmove(buf, buf + r, s->prelen);
			s->pre = buf;	/* freed with the session */
		} else {
			free(buf);
		}
		return 0;
	}
bad:
	free(buf);
	if (ret == PX_END_BAD_PROXY)
		atomic_fetch_add_explicit(&g_st->pp_errors, 1,
					  memory_order_relaxed);
	return ret;
}

/* ---- the access log line ---- */

static int
fmt_sa(const struct sockaddr_storage *ss, char *b, size_t n)
{
	char h[64];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
		return snprintf(b, n, "%s:%u", h, ntohs(a->sin_port));
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
		return snprintf(b, n, "[%s]:%u", h, ntohs(a->sin6_port));
	}
	if (ss->ss_family == AF_UNIX)
		return snprintf(b, n, "unix");
	return snprintf(b, n, "-");
}

static void
log_session(struct px_sess *s, int why, int64_t end)
{
	char line[640];
	char peer[80];
	char ts[40];
	struct timespec rt;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &rt);
	gmtime_r(&rt.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	fmt_sa(&s->peer, peer, sizeof(peer));
	n = snprintf(line, sizeof(line),
		     "%s.%03ldZ client=%s listener=%s server=%s%s%s "
		     "bytes_in=%" PRIu64 " bytes_out=%" PRIu64
		     " connect_ms=%.3f duration_ms=%.3f end=%s",
		     ts, rt.tv_nsec / 1000000, s->has_peer ? peer : "-",
		     s->l->c->name, s->srv ? s->l->pool->c->name : "-",
		     s->srv ? "/" : "", s->srv ? s->srv->c->name : "",
		     s->up_bytes, s->down_bytes,
		     s->srv ? (double)s->connect_ns / 1e6 : 0.0,
		     (double)(end - s->start) / 1e6, px_end_names[why]);
	if (n > 0)
		px_log_line(line, (size_t)n < sizeof(line) ? (size_t)n
							    : sizeof(line) - 1);
}

/* ---- the session ---- */

static void
session_end(struct px_sess *s, int why)
{
	struct px_lis_rt *l = s->l;
	int64_t end = weft_now();

	atomic_fetch_add_explicit(&l->ended[why], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&l->bytes_in, s->up_bytes,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&l->bytes_out, s->down_bytes,
				  memory_order_relaxed);
	if (s->srv) {
		atomic_fetch_add_explicit(&s->srv->bytes_in, s->up_bytes,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&s->srv->bytes_out, s->down_bytes,
					  memory_order_relaxed);
	}
	px_hist_add(&l->duration, end - s->start);
	log_session(s, why, end);
}

/*
 * Stop the server -> client task and wait until it has returned, even when
 * the caller has been cancelled (a drain's cut, or down_main's cancel on a
 * reset): only then may the session and its fds go.  weft_join_for()'s
 * WEFT_JOIN_CANCEL awaits the task only on its own timeout; to a caller
 * already cancelled it returns -ECANCELED at once, the task still running.
 * Cancelled, down_main returns at its next blocking call; until then this
 * yields (a finished task is joined even by a cancelled caller).
 * Must be called from the session's handler.
 */
static void
down_stop(struct px_sess *s)
{
	int r = weft_join_for(s->down, NULL, 0, WEFT_JOIN_CANCEL);

	while (r == -ECANCELED) {
		weft_cancel(s->down);
		weft_yield();
		r = weft_join(s->down, NULL, WEFT_DEADLINE_NONE);
	}
	s->down = NULL;
}

void
px_session(int fd, void *arg)
{
	struct px_lis_rt *l = arg;
	const struct px_listener *c = l->c;
	struct px_sess *s;
	socklen_t len;
	int why;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s) {
		close_reset(fd);
		weft_close(fd, 0);
		atomic_fetch_add_explicit(&l->ended[PX_END_ERROR], 1,
					  memory_order_relaxed);
		return;
	}
	s->l = l;
	s->cfd = fd;
	s->ufd = -1;
	s->handler = weft_self();
	s->start = weft_now();
	s->idle = c->idle_timeout;
	s->session_end = c->session_timeout ? s->start + c->session_timeout
					    : 0;
	atomic_init(&s->last_io, s->start);
	atomic_init(&s->why, -1);
	atomic_fetch_add_explicit(&l->total, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&l->active, 1, memory_order_relaxed);
	len = sizeof(s->peer);
	if (getpeername(fd, (struct sockaddr *)&s->peer, &len) == 0)
		s->has_peer = true;
	len = sizeof(s->local);
	getsockname(fd, (struct sockaddr *)&s->local, &len);

	why = admit(l, s->start);
	if (why)
		goto out_refused;
	if (c->accept_proxy) {
		why = read_proxy_header(s);
		if (why)
			goto out_admitted;
	}
	why = connect_upstream(s);
	if (why == PX_END_SERVER_RESET) {
		close_reset(fd);
		px_release(s->srv);
		goto out_admitted;
	}
	if (why)
		goto out_admitted;
	if (l->pool->c->send_proxy) {
		char hdr[PX_PP_MAX];
		int n = px_pp_build(l->pool->c->send_proxy,
				    (struct sockaddr *)&s->peer,
				    (struct sockaddr *)&s->local, hdr,
				    sizeof(hdr));

		if (n < 0 || send_all(s, s->ufd, hdr, (size_t)n)) {
			why = PX_END_SERVER_RESET;
			goto out_connected;
		}
	}
	if (s->prelen) {
		r = send_all(s, s->ufd, s->pre, s->prelen);
		if (r) {
			why = end_reason((enum dir_end)r, true);
			goto out_connected;
		}
		s->up_bytes += s->prelen;
	}
	touch(s);
	{
		struct weft_spawn_opts so = { .stack_size = 32 << 10,
					      .name = "px-down" };

		r = weft_spawn(&s->down, down_main, s, &so);
	}
	if (r < 0) {
		why = PX_END_ERROR;
		goto out_connected;
	}

	r = pump(s, s->cfd, s->ufd, &s->up_bytes);
	s->up_end = (enum dir_end)r;
	if (r == DIR_EOF) {
		set_why(s, PX_END_CLIENT_CLOSE);
		shutdown(s->ufd, SHUT_WR);
		/* Half-closed: the server may still answer. */
		if (weft_join(s->down, NULL, WEFT_DEADLINE_NONE) == 0)
			s->down = NULL;
	} else if (r != DIR_CANCELLED || atomic_load(&s->why) < 0) {
		set_why(s, end_reason((enum dir_end)r, true));
		if (r == DIR_SRC_RESET || r == DIR_DST_RESET) {
			close_reset(s->cfd);
			close_reset(s->ufd);
		}
	}
	if (s->down)
		down_stop(s);
	why = atomic_load(&s->why);
	if (why < 0)
		why = PX_END_DRAIN;
out_connected:
	weft_close(s->ufd, 0);
	px_release(s->srv);
out_admitted:
	unadmit(l);
out_refused:
	weft_close(fd, 0);	/* a refusal is a plain close */
	atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
	session_end(s, why);
	free(s->pre);
	free(s);
}

/* ---- state ---- */

static int
resolve(struct px_srv *s)
{
	const struct px_addr *a = &s->c->addr;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res;
	char port[8];
	int r;

	if (a->path[0]) {
		struct sockaddr_un *un = (struct sockaddr_un *)&s->sa;
		size_t n = strlen(a->path);

		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, a->path, n);
		if (a->path[0] == '@')
			un->sun_path[0] = '\0';
		s->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				       n + (a->path[0] == '@' ? 0 : 1));
		return 0;
	}
	snprintf(port, sizeof(port), "%d", a->port);
	r = getaddrinfo(a->host, port, &hints, &res);
	if (r) {
		px_msg("server %s/%s: cannot resolve %s: %s; it stays down",
		       s->pool->c->name, s->c->name, a->host, gai_strerror(r));
		return -ENOENT;
	}
	memcpy(&s->sa, res->ai_addr, res->ai_addrlen);
	s->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int
px_state_make(struct px_state *st, const struct px_config *cfg,
	      const int *fds, int nfds)
{
	memset(st, 0, sizeof(*st));
	st->cfg = cfg;
	st->pid = getpid();
	st->admin_fd = cfg->has_admin ? fds[nfds - 1] : -1;
	st->pools = calloc((size_t)cfg->npools, sizeof(*st->pools));
	st->lis = calloc((size_t)cfg->nlisteners, sizeof(*st->lis));
	if (!st->pools || !st->lis)
		return -ENOMEM;
	for (int i = 0; i < cfg->npools; i++) {
		struct px_pool_rt *p = &st->pools[i];

		p->c = &cfg->pools[i];
		pthread_mutex_init(&p->lock, NULL);
		weft_sem_init(&p->freed, 0);
		p->srv = calloc((size_t)p->c->nservers, sizeof(*p->srv));
		if (!p->srv)
			return -ENOMEM;
		for (int j = 0; j < p->c->nservers; j++) {
			struct px_srv *s = &p->srv[j];

			s->c = &p->c->servers[j];
			s->pool = p;
			s->idx = j;
			s->check_up = true;
			resolve(s);
		}
	}
	for (int i = 0; i < cfg->nlisteners; i++) {
		struct px_lis_rt *l = &st->lis[i];

		l->c = &cfg->listeners[i];
		l->pool = &st->pools[l->c->pool];
		l->fd = fds[i];
		if (l->c->max_conns)
			weft_sem_init(&l->slots, (uint64_t)l->c->max_conns);
	}
	g_st = st;
	return 0;
}

void
px_state_free(struct px_state *st)
{
	if (st->pools)
		for (int i = 0; i < st->cfg->npools; i++)
			free(st->pools[i].srv);
	free(st->pools);
	free(st->lis);
	g_st = NULL;
}

/* ---- serving ---- */

struct serve_arg {
	struct px_state *st;
	int fd;
	weft_conn_fn fn;
	void *arg;
	const char *name;
};

static int
serve_one(void *arg)
{
	struct serve_arg *a = arg;
	struct weft_serve_opts so = {
		.stack_size = 32 << 10,
		.name = a->name,
		.stop = a->st->drain,
	};
	int r = weft_serve(a->fd, a->fn, a->arg, &so);

	if (r < 0 && r != -ECANCELED)
		px_msg("accept loop on %s stopped: %s", a->name, strerror(-r));
	return r == -ECANCELED ? 0 : r;
}

int
px_serve(struct px_state *st)
{
	const struct px_config *cfg = st->cfg;
	struct serve_arg *args;
	struct weft_group *serving = NULL;
	struct weft_group *bg = NULL;
	int n = cfg->nlisteners + (st->admin_fd >= 0);
	int r;

	st->started = weft_now();
	g_recv_op = weft_io_backend() && !strcmp(weft_io_backend(), "uring");
	args = calloc((size_t)n, sizeof(*args));
	if (!args)
		return -ENOMEM;
	r = weft_group_make(&serving, 0);
	if (r == 0)
		r = weft_group_make(&bg, 0);
	if (r == 0)
		r = px_health_start(st, bg);
	for (int i = 0; r == 0 && i < n; i++) {
		args[i].st = st;
		if (i < cfg->nlisteners) {
			args[i].fd = st->lis[i].fd;
			args[i].fn = px_session;
			args[i].arg = &st->lis[i];
			args[i].name = "px-conn";
		} else {
			args[i].fd = st->admin_fd;
			args[i].fn = px_admin_conn;
			args[i].arg = st;
			args[i].name = "px-admin";
		}
		r = weft_group_spawn(serving, serve_one, &args[i], NULL);
	}
	if (r == 0)
		r = weft_group_wait(serving, WEFT_DEADLINE_NONE);
	if (serving)
		weft_group_free(serving);
	if (bg)
		weft_group_free(bg);
	free(args);
	return r;
}

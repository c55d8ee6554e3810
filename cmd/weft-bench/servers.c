/* SPDX-License-Identifier: MIT */
/*
 * The http scenario's comparison servers, `weft-bench --serve threads` and
 * `weft-bench --serve epoll [--workers N]` (described in http.c): the same
 * "Hello, world" answer to every complete request head, from a thread per
 * connection or from N edge-triggered epoll loops.  And the proxy
 * scenario's thread-per-direction TCP proxy, `weft-bench --serve-proxy
 * threads --upstream HOST:PORT` (described in proxy.c).
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "servers.h"

#define HTTP_BUF	2048	/* input buffer per connection */
#define RESP_BATCH	32	/* responses per send() at most */

/* The answer of the threads and epoll servers (Go's is the same). */
static const char http_resp[] =
	"HTTP/1.1 200 OK\r\n"
	"Content-Type: text/plain\r\n"
	"Content-Length: 12\r\n"
	"\r\n"
	"Hello, world";
#define RESP_LEN (sizeof(http_resp) - 1)

/* RESP_BATCH copies of http_resp, shared read-only by every connection. */
static char resp_batch[RESP_BATCH * RESP_LEN];

/* ---- the comparison servers (weft-bench --serve) ---- */

/*
 * Count the complete request heads in buf[0..*len), drop them and move
 * what follows to the front.  *scanned is how much of the buffer earlier
 * calls searched already; a terminator may straddle its end.  A request's
 * body is not supported (nobody sends one here).
 */
static long
take_requests(char *buf, size_t *len, size_t *scanned)
{
	size_t from = *scanned > 3 ? *scanned - 3 : 0;
	size_t start = 0;
	long n = 0;
	char *p;

	while ((p = memmem(buf + from, *len - from, "\r\n\r\n", 4))) {
		n++;
		start = from = (size_t)(p - buf) + 4;
	}
	if (start) {
		memmove(buf, buf + start, *len - start);
		*len -= start;
	}
	*scanned = *len;
	return n;
}

static void
set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Blocking: send n responses, RESP_BATCH per call.  0 or -1. */
static int
send_responses(int fd, long n)
{
	while (n > 0) {
		long k = n < RESP_BATCH ? n : RESP_BATCH;
		const char *p = resp_batch;
		size_t left = (size_t)k * RESP_LEN;

		while (left) {
			ssize_t w = send(fd, p, left, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -1;
			p += w;
			left -= (size_t)w;
		}
		n -= k;
	}
	return 0;
}

static void *
conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[HTTP_BUF];
	size_t scanned = 0;
	size_t len = 0;

	for (;;) {
		ssize_t r = recv(fd, buf + len, sizeof(buf) - len, 0);
		long n;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		n = take_requests(buf, &len, &scanned);
		if (n && send_responses(fd, n) < 0)
			break;
		if (len == sizeof(buf))
			break;	/* a head larger than the buffer */
	}
	close(fd);
	return NULL;
}

/* Out of fds, memory or threads: say so once a second, back off a bit. */
static void
accept_trouble(const char *what, int err)
{
	static time_t last;
	time_t now = time(NULL);

	if (now != last)
		fprintf(stderr, "weft-bench server: %s: %s\n", what,
			strerror(err));
	last = now;
	usleep(1000);
}

static int
serve_threads(int lfd)
{
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				accept_trouble("accept", errno);
			continue;
		}
		set_nodelay(fd);
		ret = pthread_create(&t, &attr, conn_thread,
				     (void *)(intptr_t)fd);
		if (ret) {
			close(fd);
			accept_trouble("pthread_create", ret);
		}
	}
	return 1;
}

/* One connection of the epoll server.  Owned by its loop's thread. */
struct econn {
	int fd;
	size_t len;		/* bytes in buf */
	size_t scanned;		/* of which searched for "\r\n\r\n" */
	size_t owed;		/* responses not (completely) sent yet */
	size_t off;		/* bytes of the first owed one sent */
	char buf[HTTP_BUF];
};

/* Send what c owes: 1 when done, 0 when the socket is full, -1 on error. */
static int
econn_flush(struct econn *c)
{
	while (c->owed) {
		size_t k = c->owed < RESP_BATCH ? c->owed : RESP_BATCH;
		ssize_t w = send(c->fd, resp_batch + c->off,
				 k * RESP_LEN - c->off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->off += (size_t)w;
		c->owed -= c->off / RESP_LEN;
		c->off %= RESP_LEN;
	}
	return 1;
}

/*
 * An edge on c (EPOLLIN | EPOLLOUT | EPOLLET, registered once): send what
 * is owed, then read until the socket is drained.  A recv() shorter than
 * the room it was given drained it: data arriving later makes a new edge,
 * so no extra recv() to see EAGAIN.  While responses are owed and the
 * socket is full nothing is read (back-pressure) until the EPOLLOUT edge.
 */
static void
econn_event(struct econn *c)
{
	for (;;) {
		size_t room = HTTP_BUF - c->len;
		ssize_t r;
		int ret;

		if (c->owed) {
			ret = econn_flush(c);
			if (ret < 0)
				goto out_close;
			if (ret == 0)
				return;
		}
		if (!room)
			goto out_close;	/* a head larger than buf */
		r = recv(c->fd, c->buf + c->len, room, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0)
			goto out_close;
		c->len += (size_t)r;
		c->owed += (size_t)take_requests(c->buf, &c->len, &c->scanned);
		if ((size_t)r < room) {
			if (c->owed && econn_flush(c) < 0)
				goto out_close;
			return;
		}
	}

out_close:
	close(c->fd);		/* also leaves the epoll set */
	free(c);
}

static void
epoll_accept(int ep, int lfd)
{
	for (;;) {
		struct epoll_event ev = {
			.events = EPOLLIN | EPOLLOUT | EPOLLET,
		};
		struct econn *c;
		int fd;

		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				accept_trouble("accept", errno);
			return;
		}
		set_nodelay(fd);
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			accept_trouble("malloc", ENOMEM);
			continue;
		}
		c->fd = fd;
		c->len = 0;
		c->scanned = 0;
		c->owed = 0;
		c->off = 0;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			accept_trouble("epoll_ctl", errno);
			close(fd);
			free(c);
		}
	}
}

/*
 * One event loop on its own listener (level-triggered: every wake-up
 * accepts until EAGAIN anyway); never returns.
 */
static void *
epoll_loop(void *arg)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	struct epoll_event evs[256];
	int lfd = (int)(intptr_t)arg;
	int ep;
	int n;
	int i;

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		fprintf(stderr, "weft-bench server: epoll: %s\n",
			strerror(errno));
		exit(1);
	}
	for (;;) {
		n = epoll_wait(ep, evs, sizeof(evs) / sizeof(evs[0]), -1);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "weft-bench server: epoll_wait: %s\n",
				strerror(errno));
			exit(1);
		}
		/* An fd is reported once per call: a freed conn is not seen. */
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr)
				econn_event(evs[i].data.ptr);
			else
				epoll_accept(ep, lfd);
		}
	}
	return NULL;
}

int
http_serve(const char *kind, const char *host, int port, int workers)
{
	bool threads = !strcmp(kind, "threads");
	int lfd[64];
	pthread_t t;
	int i;

	if (!threads && strcmp(kind, "epoll")) {
		fprintf(stderr, "weft-bench: --serve takes threads or epoll, "
			"not '%s'\n", kind);
		return 2;
	}
	if (threads || workers < 1)
		workers = 1;
	if (workers > (int)(sizeof(lfd) / sizeof(lfd[0])))
		workers = sizeof(lfd) / sizeof(lfd[0]);
	for (i = 0; i < RESP_BATCH; i++)
		memcpy(resp_batch + i * RESP_LEN, http_resp, RESP_LEN);
	signal(SIGPIPE, SIG_IGN);

	for (i = 0; i < workers; i++) {
		lfd[i] = bench_listen(host, port, workers > 1,
				      threads ? 0 : SOCK_NONBLOCK);
		if (lfd[i] < 0) {
			fprintf(stderr, "weft-bench: listen on %s:%d: %s\n",
				host, port, strerror(-lfd[i]));
			return 1;
		}
		if (port == 0)
			port = bench_local_port(lfd[i]);
	}
	printf("weft-bench-%s: listening on %s:%d\n", kind, host, port);
	fflush(stdout);

	if (threads)
		return serve_threads(lfd[0]);
	for (i = 1; i < workers; i++) {
		if (pthread_create(&t, NULL, epoll_loop,
				   (void *)(intptr_t)lfd[i])) {
			fprintf(stderr, "weft-bench: pthread_create failed\n");
			return 1;
		}
	}
	epoll_loop((void *)(intptr_t)lfd[0]);
	return 1;
}

/* ---- the proxy scenario's thread proxy (weft-bench --serve-proxy) ---- */

#define PROXY_BUF	16384	/* per direction, on the thread's stack */

/*
 * One proxied connection: two blocking sockets and one thread per
 * direction.  The last of the two threads to finish closes both sockets
 * and frees it.
 */
struct pconn {
	int client;
	int upstream;
	atomic_int refs;	/* threads still using it: 2, then 1, then 0 */
};

struct pdir {
	struct pconn *c;
	int from;
	int to;
};

static struct sockaddr_in proxy_upstream;

static void
pconn_put(struct pconn *c)
{
	/* The last thread out sees 1; the other's writes are done. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	close(c->client);
	close(c->upstream);
	free(c);
}

/*
 * Copy from -> to until EOF, then carry the half-close on (shutdown
 * SHUT_WR) and leave the other direction running.  On an error, shut
 * both sockets down both ways so that the other thread's read() or
 * write() ends too.
 */
static void
pdir_copy(int from, int to)
{
	char buf[PROXY_BUF];

	for (;;) {
		ssize_t r = read(from, buf, sizeof(buf));
		char *p = buf;

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			shutdown(to, SHUT_WR);
			return;
		}
		if (r < 0)
			goto out_reset;
		while (r > 0) {
			ssize_t w = send(to, p, (size_t)r, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				goto out_reset;
			p += w;
			r -= w;
		}
	}

out_reset:
	shutdown(from, SHUT_RDWR);
	shutdown(to, SHUT_RDWR);
}

static void *
pdir_thread(void *arg)
{
	struct pconn *c = arg;

	pdir_copy(c->upstream, c->client);
	pconn_put(c);
	return NULL;
}

/*
 * A new client connection's first thread: connect to the upstream (so
 * the accept loop never waits for it), start the upstream -> client
 * thread, then copy client -> upstream itself.
 */
static void *
pconn_thread(void *arg)
{
	struct pconn *c = arg;
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	c->upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->upstream < 0) {
		accept_trouble("socket", errno);
		goto out_close;
	}
	while (connect(c->upstream, (struct sockaddr *)&proxy_upstream,
		       sizeof(proxy_upstream)) < 0) {
		if (errno != EINTR) {
			accept_trouble("connect upstream", errno);
			close(c->upstream);
			goto out_close;
		}
	}
	set_nodelay(c->upstream);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, pdir_thread, c);
	pthread_attr_destroy(&attr);
	if (ret) {
		accept_trouble("pthread_create", ret);
		close(c->upstream);
		goto out_close;
	}
	pdir_copy(c->client, c->upstream);
	pconn_put(c);
	return NULL;

out_close:
	close(c->client);
	free(c);
	return NULL;
}

int
proxy_serve(const char *kind, const char *host, int port,
	    const char *upstream)
{
	char uhost[64];
	const char *colon = upstream ? strrchr(upstream, ':') : NULL;
	pthread_attr_t attr;
	pthread_t t;
	int lfd;

	if (strcmp(kind, "threads")) {
		fprintf(stderr, "weft-bench: --serve-proxy takes threads, "
			"not '%s'\n", kind);
		return 2;
	}
	if (!colon || colon == upstream ||
	    (size_t)(colon - upstream) >= sizeof(uhost) ||
	    atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535) {
		fprintf(stderr, "weft-bench: --serve-proxy needs --upstream "
			"HOST:PORT\n");
		return 2;
	}
	snprintf(uhost, sizeof(uhost), "%.*s", (int)(colon - upstream),
		 upstream);
	proxy_upstream.sin_family = AF_INET;
	proxy_upstream.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, uhost, &proxy_upstream.sin_addr) != 1) {
		fprintf(stderr, "weft-bench: --upstream: '%s' is not an IPv4 "
			"address\n", uhost);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = bench_listen(host, port, false, 0);
	if (lfd < 0) {
		fprintf(stderr, "weft-bench: listen on %s:%d: %s\n", host,
			port, strerror(-lfd));
		return 1;
	}
	printf("weft-bench-proxy-threads: listening on %s:%d\n", host,
	       bench_local_port(lfd));
	fflush(stdout);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct pconn *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		int ret;

		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				accept_trouble("accept", errno);
			continue;
		}
		set_nodelay(fd);
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			accept_trouble("malloc", ENOMEM);
			continue;
		}
		c->client = fd;
		c->upstream = -1;
		atomic_init(&c->refs, 2);
		ret = pthread_create(&t, &attr, pconn_thread, c);
		if (ret) {
			close(fd);
			free(c);
			accept_trouble("pthread_create", ret);
		}
	}
	return 1;
}

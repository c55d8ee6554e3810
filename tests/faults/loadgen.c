/* SPDX-License-Identifier: MIT */
/*
 * A bounded loopback load client for the fault-injection suite: opens
 * connections to weft-echo or weft-httpd, a few hundred at a time, and
 * accounts for every one.
 *
 *   loadgen echo|http HOST:PORT CONNS PARALLEL TIMEOUT_MS
 *
 * CONNS connections in all, at most PARALLEL open at once.  echo: each
 * sends 1..8192 bytes of a pattern of its own, reads them back, and closes.
 * http: each sends three requests in one write, the last with
 * "Connection: close", and reads to EOF: it must get three "200" answers
 * with the body "Hello, world".  Each connection ends as one of
 *   answered  everything came back, correct;
 *   closed    the server closed or reset it before the end (allowed: a
 *             server short of fds or memory may shed a connection), or
 *             refused it at connect (ECONNREFUSED, ECONNRESET);
 *   wrong     bytes that are not the answer (a failure);
 *   hung      no progress for TIMEOUT_MS (a failure).
 * Prints "loadgen: CONNS conns: A answered, C closed, W wrong, H hung"
 * and exits 0 when nothing was wrong or hung and at least one connection
 * was answered, else 1; 2 for bad arguments.  Plain C (poll, non-blocking
 * sockets), no weft: it measures the server from outside.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ECHO_MAX  8192
#define HTTP_REQS 3
#define RBUF	  4096

static const char http_req[] =
	"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
	"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
	"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
static const char http_body[] = "Hello, world";

enum state { IDLE, CONNECTING, RUNNING };

struct conn {
	enum state st;
	int fd;
	unsigned id;
	size_t len; /* echo: payload length; http: request length */
	size_t sent;
	size_t got;   /* bytes read */
	int64_t last; /* time of the last progress, ms */
	char *rbuf;   /* http: the whole answer */
	size_t rcap;
};

static bool http;
static struct sockaddr_in addr;
static long answered, closed_, wrong, hung;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint8_t
pattern(unsigned id, size_t i)
{
	return (uint8_t)(id * 7 + i * 13 + (i >> 9));
}

static void
finish(struct conn *c, long *what)
{
	(*what)++;
	close(c->fd);
	c->fd = -1;
	c->st = IDLE;
}

/* An http answer read to EOF: exactly HTTP_REQS "200" answers? */
static bool
http_ok(const char *b, size_t n)
{
	size_t off = 0;

	for (int i = 0; i < HTTP_REQS; i++) {
		const char *h = b + off, *end, *cl;
		size_t left = n - off, hlen, blen;

		if (left < 12 || memcmp(h, "HTTP/1.1 200", 12) != 0)
			return false;
		end = memmem(h, left, "\r\n\r\n", 4);
		if (!end)
			return false;
		hlen = (size_t)(end - h) + 4;
		cl = memmem(h, hlen, "Content-Length: ", 16);
		if (!cl)
			return false;
		blen = strtoul(cl + 16, NULL, 10);
		if (blen != sizeof(http_body) - 1 || hlen + blen > left ||
		    memcmp(h + hlen, http_body, blen) != 0)
			return false;
		off += hlen + blen;
	}
	return off == n;
}

static void
start(struct conn *c, unsigned id)
{
	int one = 1;

	c->id = id;
	c->sent = c->got = 0;
	if (http)
		c->len = sizeof(http_req) - 1;
	else
		c->len = 1 + (id * 2654435761u) % ECHO_MAX;
	c->last = now_ms();
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
		exit(1);
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->st = CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
		c->st = RUNNING;
	else if (errno != EINPROGRESS)
		finish(c, &closed_);
}

static void
step(struct conn *c)
{
	uint8_t buf[RBUF];
	ssize_t n;

	if (c->st == CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			finish(c, &closed_);
			return;
		}
		c->st = RUNNING;
		c->last = now_ms();
	}
	while (c->sent < c->len) {
		if (http) {
			n = send(c->fd, http_req + c->sent, c->len - c->sent,
				 MSG_NOSIGNAL);
		} else {
			size_t k = c->len - c->sent;

			if (k > sizeof(buf))
				k = sizeof(buf);
			for (size_t i = 0; i < k; i++)
				buf[i] = pattern(c->id, c->sent + i);
			n = send(c->fd, buf, k, MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno == EAGAIN)
				break;
			finish(c, &closed_); /* EPIPE, ECONNRESET */
			return;
		}
		c->sent += (size_t)n;
		c->last = now_ms();
	}
	for (;;) {
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			finish(c, &closed_);
			return;
		}
		if (n == 0) {
			if (http && http_ok(c->rbuf, c->got))
				finish(c, &answered);
			else if (http && c->got > 0 &&
				 memcmp(c->rbuf, "HTTP/1.1 ",
					c->got < 9 ? c->got : 9) != 0)
				finish(c, &wrong);
			else
				finish(c, &closed_);
			return;
		}
		c->last = now_ms();
		if (http) {
			if (c->got + (size_t)n > c->rcap) {
				fprintf(stderr, "loadgen: answer too long\n");
				finish(c, &wrong);
				return;
			}
			memcpy(c->rbuf + c->got, buf, (size_t)n);
			c->got += (size_t)n;
			continue;
		}
		for (ssize_t i = 0; i < n; i++)
			if (c->got + (size_t)i >= c->len ||
			    buf[i] != pattern(c->id, c->got + (size_t)i)) {
				finish(c, &wrong);
				return;
			}
		c->got += (size_t)n;
		if (c->got == c->len) {
			finish(c, &answered);
			return;
		}
	}
}

int
main(int argc, char **argv)
{
	struct rlimit rl;
	struct conn *cs;
	struct pollfd *pf;
	char host[64];
	const char *colon;
	long conns, parallel, timeout_ms, started = 0, live = 0;

	if (argc != 6 || (strcmp(argv[1], "echo") && strcmp(argv[1], "http")))
		goto usage;
	http = !strcmp(argv[1], "http");
	colon = strrchr(argv[2], ':');
	if (!colon || (size_t)(colon - argv[2]) >= sizeof(host))
		goto usage;
	memcpy(host, argv[2], (size_t)(colon - argv[2]));
	host[colon - argv[2]] = 0;
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		goto usage;
	conns = atol(argv[3]);
	parallel = atol(argv[4]);
	timeout_ms = atol(argv[5]);
	if (conns < 1 || parallel < 1 || timeout_ms < 1)
		goto usage;
	if (parallel > conns)
		parallel = conns;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	cs = calloc((size_t)parallel, sizeof(*cs));
	pf = calloc((size_t)parallel, sizeof(*pf));
	if (!cs || !pf)
		return 1;
	for (long i = 0; i < parallel; i++) {
		cs[i].fd = -1;
		cs[i].rcap = 4096;
		cs[i].rbuf = http ? malloc(cs[i].rcap) : NULL;
	}
	while (started < conns || live) {
		int64_t t;

		live = 0;
		for (long i = 0; i < parallel; i++) {
			struct conn *c = &cs[i];

			if (c->st == IDLE && started < conns)
				start(c, (unsigned)started++);
			pf[i].fd = c->fd;
			pf[i].events = c->st == CONNECTING || c->sent < c->len
					       ? POLLIN | POLLOUT
					       : POLLIN;
			pf[i].revents = 0;
			live += c->st != IDLE;
		}
		if (!live)
			continue;
		if (poll(pf, (nfds_t)parallel, 100) < 0 && errno != EINTR) {
			perror("loadgen: poll");
			return 1;
		}
		t = now_ms();
		for (long i = 0; i < parallel; i++) {
			struct conn *c = &cs[i];

			if (c->st == IDLE)
				continue;
			if (pf[i].revents)
				step(c);
			if (c->st != IDLE && t - c->last > timeout_ms) {
				fprintf(stderr,
					"loadgen: connection %u hung: "
					"%zu of %zu sent, %zu bytes back\n",
					c->id, c->sent, c->len, c->got);
				finish(c, &hung);
			}
		}
	}
	printf("loadgen: %ld conns: %ld answered, %ld closed, %ld wrong, "
	       "%ld hung\n",
	       conns, answered, closed_, wrong, hung);
	for (long i = 0; i < parallel; i++)
		free(cs[i].rbuf);
	free(cs);
	free(pf);
	return wrong || hung || !answered;

usage:
	fprintf(stderr, "usage: loadgen echo|http HOST:PORT CONNS PARALLEL "
			"TIMEOUT_MS\n");
	return 2;
}

/* SPDX-License-Identifier: MIT */
/*
 * weft-httpd: an HTTP/1.1 keep-alive server that answers every request with
 * "Hello, world", one task per connection.  It is the server weft is
 * benchmarked with against nginx and Go, so it does what those do for such
 * a request and nothing more.
 *
 *   weft-httpd [--host H] [--port P] [--workers N] [--stack BYTES]
 *              [--idle-ms MS] [--header-timeout-ms MS]
 *              [--procs P [--reuseport] [--drain-ms MS]]
 *
 * Once it listens it prints exactly one line to stdout,
 * "weft-httpd: listening on HOST:PORT", with the real port when --port 0
 * asked for a free one.  It serves until it is killed.  Exit status 2 for a
 * bad command line, 1 when it cannot listen or the runtime fails.
 *
 * With --procs P it runs under weft_prefork(): a master process listens,
 * prints the line once and supervises P worker processes of --workers
 * threads each (SIGHUP reloads with no connection refused, SIGQUIT drains
 * and stops, SIGTERM/SIGINT stop fast; see weft.h).  While a worker
 * process drains, each of its connections answers its next request with
 * "Connection: close" and ends, so keep-alive clients move to the new
 * generation without a failed request.
 *
 * Per connection, everything lives on the task's stack: one REQ_BUF buffer
 * and a few counters.  Stacks are committed lazily, so an idle keep-alive
 * connection costs the stack pages its deepest call ever touched; keeping
 * the buffer at 2 KiB and the call chain shallow keeps that at one page.
 *
 * What it understands:
 *  - Requests end at the first "\r\n\r\n".  Several complete requests in
 *    one read (pipelining) are answered with one write; a partial request
 *    waits for the rest; whatever follows a request stays for the next.
 *  - "Connection: close", and HTTP/1.0 without "Connection: keep-alive",
 *    close the connection after the response (header names and values are
 *    case-insensitive).
 *  - A Content-Length body is read and thrown away before the response;
 *    HEAD gets the headers only.
 *  - Errors close the connection after the response: 400 for a malformed
 *    request, 431 when the header block does not fit REQ_BUF, 501 for a
 *    Transfer-Encoding (no chunked bodies here), 408 when a request head
 *    takes longer than --header-timeout-ms.  Closing is lingering:
 *    shut down the sending side, then read and drop until the client
 *    closes (at most LINGER_NS), so the response is not lost to a reset.
 *
 * Two clocks per connection.  --idle-ms bounds each wait for the client
 * (a read or a write), so it restarts with every byte: alone, it lets a
 * client that drips one byte a little faster than that hold a connection
 * and its task for ever (slowloris).  --header-timeout-ms bounds a whole
 * request head, as nginx's client_header_timeout does: its clock starts at
 * the first byte of the head (on a new connection and between keep-alive
 * requests alike; waiting for that first byte is --idle-ms's business) and
 * stops at the head's "\r\n\r\n"; a body is not part of it.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

#define REQ_BUF 2048		/* request bytes buffered per connection */
#define MIN_REQ 16		/* "A / HTTP/1.1\r\n\r\n" */
#define RUN_MAX (REQ_BUF / MIN_REQ) /* most requests one buffer holds */
#define LINGER_NS (2 * WEFT_SEC)

/* The answers, by kind.  Those without `close` keep the connection. */
enum answer {
	ANS_OK,			/* 1.1, keep-alive */
	ANS_OK_KA,		/* 1.0 with Connection: keep-alive */
	ANS_OK_CLOSE,
	ANS_HEAD,
	ANS_HEAD_KA,
	ANS_HEAD_CLOSE,
	ANS_400,
	ANS_431,
	ANS_501,
	ANS_408,
	ANS_NONE,
};

#define OK_HDRS	"HTTP/1.1 200 OK\r\n" \
		"Content-Type: text/plain\r\n" \
		"Content-Length: 12\r\n"
#define BODY	"Hello, world"
#define ERR(status) "HTTP/1.1 " status "\r\n" \
		"Content-Length: 0\r\n" \
		"Connection: close\r\n\r\n"

#define KEEP	"Connection: keep-alive\r\n\r\n"
#define CLOSE	"Connection: close\r\n\r\n"
#define TEXT_OK		OK_HDRS "\r\n" BODY
#define TEXT_OK_KA	OK_HDRS KEEP BODY

/*
 * The two common answers repeated RUN_MAX times, so that n pipelined
 * requests get one write of n * len bytes from here.
 */
static char rep_ok[RUN_MAX * (sizeof(TEXT_OK) - 1)];
static char rep_ok_ka[RUN_MAX * (sizeof(TEXT_OK_KA) - 1)];

/*
 * The text of each answer.  resps_init() points the two common ones at
 * their repeated copies before the runtime starts; read-only afterwards,
 * so every connection task reads it without a lock.
 */
static struct resp {
	const char *s;		/* `max` copies of the response back to back */
	size_t len;		/* of one copy */
	int max;
	bool close;		/* the connection ends after it */
} resps[ANS_NONE] = {
#define RESP(str, closes) { str, sizeof(str) - 1, 1, closes }
	[ANS_OK] = RESP(TEXT_OK, false),
	[ANS_OK_KA] = RESP(TEXT_OK_KA, false),
	[ANS_OK_CLOSE] = RESP(OK_HDRS CLOSE BODY, true),
	[ANS_HEAD] = RESP(OK_HDRS "\r\n", false),
	[ANS_HEAD_KA] = RESP(OK_HDRS KEEP, false),
	[ANS_HEAD_CLOSE] = RESP(OK_HDRS CLOSE, true),
	[ANS_400] = RESP(ERR("400 Bad Request"), true),
	[ANS_431] = RESP(ERR("431 Request Header Fields Too Large"), true),
	[ANS_501] = RESP(ERR("501 Not Implemented"), true),
	[ANS_408] = RESP(ERR("408 Request Timeout"), true),
#undef RESP
};

static void
resps_init(void)
{
	int i;

	for (i = 0; i < RUN_MAX; i++) {
		memcpy(rep_ok + i * resps[ANS_OK].len, TEXT_OK,
		       resps[ANS_OK].len);
		memcpy(rep_ok_ka + i * resps[ANS_OK_KA].len, TEXT_OK_KA,
		       resps[ANS_OK_KA].len);
	}
	resps[ANS_OK].s = rep_ok;
	resps[ANS_OK].max = RUN_MAX;
	resps[ANS_OK_KA].s = rep_ok_ka;
	resps[ANS_OK_KA].max = RUN_MAX;
}

/*
 * A connection's state, on its task's stack beside the buffer.  Only that
 * task touches it.
 */
struct conn {
	int fd;
	int64_t idle;		/* ns a read or write may wait */
	uint64_t heads;		/* request heads parsed so far */
	size_t len;		/* bytes in the buffer */
	size_t scan;		/* no "\r\n\r\n" starts before this offset */
	uint64_t body;		/* body bytes still to read and drop */
	enum answer owed;	/* answer once `body` reaches 0 */
	enum answer run;	/* kind of the answers not yet written */
	int nrun;		/* how many */
};

/*
 * Under --procs: the worker process's drain future (weft_prefork_child's),
 * set by child_main before the accept loop starts, read-only afterwards.
 * NULL otherwise.
 */
static struct weft_future *drain_f;

/* While draining, every answer ends its connection. */
static enum answer
drain_kind(enum answer kind)
{
	if (!drain_f || weft_future_state(drain_f) == WEFT_FUTURE_PENDING)
		return kind;
	if (kind == ANS_OK || kind == ANS_OK_KA)
		return ANS_OK_CLOSE;
	if (kind == ANS_HEAD || kind == ANS_HEAD_KA)
		return ANS_HEAD_CLOSE;
	return kind;
}

/* Send all of iov[0..cnt), looping over short writes: 0 or -errno. */
static int
send_all(int fd, struct iovec *iov, int cnt, int64_t idle)
{
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
	ssize_t n;

	while (msg.msg_iovlen) {
		if (!msg.msg_iov->iov_len) {
			msg.msg_iov++;
			msg.msg_iovlen--;
			continue;
		}
		/* One buffer (the usual case): send is cheaper than sendmsg. */
		if (msg.msg_iovlen == 1)
			n = weft_send(fd, msg.msg_iov->iov_base,
				      msg.msg_iov->iov_len, 0, weft_now() + idle);
		else
			n = weft_sendmsg(fd, &msg, 0, weft_now() + idle);
		if (n < 0)
			return (int)n;
		while (n > 0) {
			if ((size_t)n < msg.msg_iov->iov_len) {
				msg.msg_iov->iov_base =
					(char *)msg.msg_iov->iov_base + n;
				msg.msg_iov->iov_len -= (size_t)n;
				break;
			}
			n -= (ssize_t)msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
	}
	return 0;
}

/* Write the pending run of answers and then `last` (ANS_NONE: nothing). */
static int
conn_flush(struct conn *c, enum answer last)
{
	struct iovec iov[2];
	int cnt = 0;

	if (c->nrun) {
		iov[cnt].iov_base = (void *)resps[c->run].s;
		iov[cnt].iov_len = resps[c->run].len * (size_t)c->nrun;
		cnt++;
		c->nrun = 0;
	}
	if (last != ANS_NONE) {
		iov[cnt].iov_base = (void *)resps[last].s;
		iov[cnt].iov_len = resps[last].len;
		cnt++;
	}
	return cnt ? send_all(c->fd, iov, cnt, c->idle) : 0;
}

/*
 * Answer one request.  Returns 1 while the connection goes on, 0 when this
 * answer was its last one (everything is written), < 0 on a write error.
 */
static int
conn_answer(struct conn *c, enum answer kind)
{
	int ret;

	kind = drain_kind(kind);
	if (resps[kind].close) {
		ret = conn_flush(c, kind);
		return ret < 0 ? ret : 0;
	}
	if (c->nrun && (c->run != kind || c->nrun == resps[kind].max)) {
		ret = conn_flush(c, ANS_NONE);
		if (ret < 0)
			return ret;
	}
	c->run = kind;
	c->nrun++;
	return 1;
}

/* RFC 9110 tchar: the characters of methods and header names. */
static bool
is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9'))
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch);
}

/* Does the comma-separated list v[0..n) hold `tok` (any case)? */
static bool
list_has(const char *v, size_t n, const char *tok)
{
	size_t tlen = strlen(tok);
	size_t i = 0;
	size_t j;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		j = i;
		while (j < n && v[j] != ',')
			j++;
		/* v[i..j) is one element, maybe with trailing blanks. */
		if (j - i >= tlen && !strncasecmp(v + i, tok, tlen)) {
			size_t k = i + tlen;

			while (k < j && (v[k] == ' ' || v[k] == '\t'))
				k++;
			if (k == j)
				return true;
		}
		i = j;
	}
	return false;
}

/*
 * Parse one request head p[0..n), which ends with its "\r\n\r\n" and holds
 * no other.  Returns the kind of answer it gets; *body receives its
 * Content-Length.
 */
static enum answer
parse_request(const char *p, size_t n, uint64_t *body)
{
	const char *end = p + n - 2;	/* the last CRLF, ending the block */
	const char *q = p;
	const char *eol;
	const char *v;
	bool keep_alive = false;
	bool want_close = false;
	bool have_len = false;
	bool te = false;
	uint64_t len = 0;
	bool head;
	bool v10;

	/* method SP request-target SP "HTTP/1." DIGIT CRLF */
	while (q < end && is_tchar((unsigned char)*q))
		q++;
	if (q == p || *q != ' ')
		return ANS_400;
	head = q - p == 4 && !memcmp(p, "HEAD", 4);
	v = ++q;
	while (q < end && (unsigned char)*q > ' ' && *q != 0x7f)
		q++;
	if (q == v || *q != ' ')
		return ANS_400;
	q++;
	if (end - q < 10 || memcmp(q, "HTTP/1.", 7) || q[7] < '0' ||
	    q[7] > '9' || q[8] != '\r' || q[9] != '\n')
		return ANS_400;
	v10 = q[7] == '0';
	q += 10;

	/* field-name ":" OWS field-value OWS CRLF, until the block's end */
	while (q < end) {
		const char *name = q;
		size_t nlen;
		size_t vlen;

		while (is_tchar((unsigned char)*q))
			q++;
		nlen = (size_t)(q - name);
		if (!nlen || *q != ':')
			return ANS_400;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		v = q;
		/* No CR, LF or other control character inside a value. */
		while ((unsigned char)*q >= ' ' || *q == '\t') {
			if (*q == 0x7f)
				return ANS_400;
			q++;
		}
		if (q[0] != '\r' || q[1] != '\n')
			return ANS_400;
		eol = q;
		while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t'))
			eol--;
		vlen = (size_t)(eol - v);
		q += 2;

		if (nlen == 10 && !strncasecmp(name, "connection", 10)) {
			want_close |= list_has(v, vlen, "close");
			keep_alive |= list_has(v, vlen, "keep-alive");
		} else if (nlen == 14 &&
			   !strncasecmp(name, "content-length", 14)) {
			uint64_t x = 0;
			size_t i;

			if (!vlen || vlen > 15)
				return ANS_400;
			for (i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return ANS_400;
				x = x * 10 + (uint64_t)(v[i] - '0');
			}
			if (have_len && x != len)
				return ANS_400;
			have_len = true;
			len = x;
		} else if (nlen == 17 &&
			   !strncasecmp(name, "transfer-encoding", 17)) {
			te = true;
		}
	}
	if (te)
		return have_len ? ANS_400 : ANS_501;
	*body = len;
	if (want_close || (v10 && !keep_alive))
		return head ? ANS_HEAD_CLOSE : ANS_OK_CLOSE;
	if (v10)
		return head ? ANS_HEAD_KA : ANS_OK_KA;
	return head ? ANS_HEAD : ANS_OK;
}

/*
 * Offset just past the first "\r\n\r\n" in buf[pos..c->len), or 0 if there
 * is none yet (c->scan then records how far it is known not to start).
 */
static size_t
find_head_end(struct conn *c, const char *buf, size_t pos)
{
	size_t from = c->scan > pos ? c->scan : pos;
	const char *hit;

	hit = memmem(buf + from, c->len - from, "\r\n\r\n", 4);
	if (hit)
		return (size_t)(hit - buf) + 4;
	c->scan = c->len >= 3 && c->len - 3 > pos ? c->len - 3 : pos;
	return 0;
}

/*
 * Handle everything the buffer holds: drop body bytes, answer every
 * complete request (one write for the lot), keep a partial one.  Returns
 * 1 to read on, 0 when the last answer has been written, < 0 on a write
 * error.
 */
static int
conn_process(struct conn *c, char *buf)
{
	enum answer kind;
	size_t pos = 0;
	size_t end;
	int ret;

	for (;;) {
		if (c->body) {
			size_t take = c->len - pos;

			if (take > c->body)
				take = (size_t)c->body;
			pos += take;
			c->body -= take;
			if (c->body)
				break;
			c->scan = pos;
			ret = conn_answer(c, c->owed);
			if (ret <= 0)
				return ret;
			continue;
		}
		/* Empty lines before a request are allowed (RFC 9112 2.2). */
		while (c->len - pos >= 2 && buf[pos] == '\r' &&
		       buf[pos + 1] == '\n')
			pos += 2;
		end = find_head_end(c, buf, pos);
		if (!end)
			break;
		kind = parse_request(buf + pos, end - pos, &c->body);
		c->heads++;
		pos = end;
		c->scan = pos;
		if (c->body) {
			c->owed = kind;
			continue;
		}
		ret = conn_answer(c, kind);
		if (ret <= 0)
			return ret;
	}

	/* Keep the unparsed tail at the front for the next read. */
	if (pos) {
		memmove(buf, buf + pos, c->len - pos);
		c->len -= pos;
		c->scan = c->scan > pos ? c->scan - pos : 0;
	}
	if (c->len == REQ_BUF) {
		ret = conn_flush(c, ANS_431);
		return ret < 0 ? ret : 0;
	}
	ret = conn_flush(c, ANS_NONE);
	return ret < 0 ? ret : 1;
}

/*
 * After the last answer: stop sending, then drop what the client still
 * sends until it closes (bounded), so that closing with unread data does
 * not reset the connection before the client has read the answer.
 */
static void
conn_linger(int fd, char *buf, size_t size)
{
	int64_t deadline = weft_now() + LINGER_NS;

	if (shutdown(fd, SHUT_WR) < 0)
		return;
	while (weft_recv(fd, buf, size, 0, deadline) > 0)
		;
}

struct httpd_opts {
	const char *host;
	int port;
	int64_t idle;
	int64_t header;		/* ns a request head may take */
	struct weft_serve_opts serve;
	int procs;		/* --procs; 0: no supervisor */
	int reuseport;		/* --reuseport */
	int64_t drain;		/* --drain-ms, ns; 0: weft_prefork's */
};


/*
 * After conn_process(): the deadline of the request head the buffer now
 * holds part of, or 0 if it holds none (empty, or a body being dropped).
 * A head already under way keeps its deadline; one that began in the
 * bytes just read (the previous head completed in them, or none was under
 * way) starts its clock now.
 */
static int64_t
head_deadline(const struct conn *c, uint64_t heads_before, int64_t dl,
	      int64_t header)
{
	if (!c->len || c->body)
		return 0;
	if (dl && c->heads == heads_before)
		return dl;
	return weft_now() + header;
}

/* One connection, in its own task; owns `fd`. */
static void
http_conn(int fd, void *arg)
{
	const struct httpd_opts *o = arg;
	struct conn c = {
		.fd = fd,
		.idle = o->idle,
		.owed = ANS_NONE,
		.run = ANS_NONE,
	};
	char buf[REQ_BUF];
	int64_t head_dl = 0;	/* the current head's deadline; 0: none */
	int64_t dl;
	uint64_t heads;
	ssize_t n;
	int ret;

	for (;;) {
		dl = weft_now() + c.idle;
		if (head_dl && head_dl < dl)
			dl = head_dl;
		n = weft_recv(fd, buf + c.len, sizeof(buf) - c.len, 0, dl);
		if (n == -ETIMEDOUT && head_dl && weft_now() >= head_dl) {
			/* nginx's client_header_timeout answer. */
			if (conn_flush(&c, ANS_408) == 0)
				conn_linger(fd, buf, sizeof(buf));
			break;
		}
		if (n <= 0)
			break;
		c.len += (size_t)n;
		heads = c.heads;
		ret = conn_process(&c, buf);
		if (ret < 0)
			break;
		if (ret == 0) {
			conn_linger(fd, buf, sizeof(buf));
			break;
		}
		head_dl = head_deadline(&c, heads, head_dl, o->header);
	}
	weft_close(fd, WEFT_DEADLINE_NONE);
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: weft-httpd [--host H] [--port P] [--workers N]"
		" [--stack BYTES]\n"
		"                  [--idle-ms MS] [--header-timeout-ms MS]\n"
		"                  [--procs P [--reuseport] [--drain-ms MS]]\n\n"
		"Answers every HTTP request with \"Hello, world\","
		" one weft task per connection.\n"
		"  --host H       address to listen on (default 127.0.0.1;"
		" \"*\": all)\n"
		"  --port P       TCP port (default 8080; 0: a free one)\n"
		"  --workers N    worker threads (default: WEFT_WORKERS,"
		" else one per CPU)\n"
		"  --stack BYTES  connection task stack, 16k..1g"
		" (default: the runtime's)\n"
		"  --idle-ms MS   close a connection that sends nothing for"
		" this long, between\n"
		"                 requests or inside one (default 60000)\n"
		"  --header-timeout-ms MS\n"
		"                 answer 408 and close when a request head"
		" is not complete\n"
		"                 this long after its first byte, however"
		" steadily it trickles\n"
		"                 in (a new connection's or a keep-alive"
		" one's; default 60000,\n"
		"                 as nginx's client_header_timeout)\n"
		"  --procs P      P worker processes under a supervisor"
		" (HUP reloads, QUIT\n"
		"                 drains, TERM stops; default: none, one"
		" process)\n"
		"  --reuseport    with --procs: one SO_REUSEPORT socket per"
		" process slot\n"
		"                 (default: one socket shared by all)\n"
		"  --drain-ms MS  with --procs: how long a draining process"
		" lets its\n"
		"                 connections finish (default 10000)\n");
}

static long
parse_long(const char *s, const char *what, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max) {
		fprintf(stderr, "weft-httpd: %s must be %ld..%ld, not '%s'\n",
			what, min, max, s);
		exit(2);
	}
	return v;
}

/* BYTES with an optional k or m suffix (KiB, MiB). */
static size_t
parse_size(const char *s, const char *what, size_t min, size_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!errno && end != s && (*end == 'k' || *end == 'K') &&
	    v <= max >> 10) {
		v <<= 10;
		end++;
	} else if (!errno && end != s && (*end == 'm' || *end == 'M') &&
		   v <= max >> 20) {
		v <<= 20;
		end++;
	}
	if (errno || *end || end == s || *s == '-' || v < min || v > max) {
		fprintf(stderr, "weft-httpd: %s must be %zuk..%zum, not '%s'\n",
			what, min >> 10, max >> 20, s);
		exit(2);
	}
	return (size_t)v;
}

/* Every connection is an fd: raise the soft RLIMIT_NOFILE to the hard. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		fprintf(stderr, "weft-httpd: cannot raise RLIMIT_NOFILE: %s\n",
			strerror(errno));
}

/* Print the one "listening on" line, with the address the kernel chose. */
static int
announce(int lfd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST];
	char port[NI_MAXSERV];

	if (getsockname(lfd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV))
		return -EINVAL;
	if (ss.ss_family == AF_INET6)
		printf("weft-httpd: listening on [%s]:%s\n", host, port);
	else
		printf("weft-httpd: listening on %s:%s\n", host, port);
	return fflush(stdout) == 0 ? 0 : -EIO;
}

/* The first task: listen, announce, run the accept loop. */
static void *
httpd_main(void *arg)
{
	const struct httpd_opts *o = arg;
	int lfd;
	int ret;

	lfd = weft_tcp_listen(o->host, o->port, NULL);
	if (lfd < 0) {
		fprintf(stderr, "weft-httpd: cannot listen on %s:%d: %s\n",
			o->host, o->port, strerror(-lfd));
		return (void *)(intptr_t)1;
	}
	ret = announce(lfd);
	if (ret < 0) {
		fprintf(stderr, "weft-httpd: cannot announce the address: %s\n",
			strerror(-ret));
		weft_close(lfd, WEFT_DEADLINE_NONE);
		return (void *)(intptr_t)1;
	}
	ret = weft_serve(lfd, http_conn, (void *)o, &o->serve);
	/*
	 * Only an accept error a server cannot survive gets here.  Do not
	 * wait (up to `idle`) for the open connections: leave now.
	 */
	fprintf(stderr, "weft-httpd: accept loop stopped: %s\n",
		strerror(-ret));
	_exit(1);
}

/* Under --procs, in the master: the one "listening on" line. */
static int
prefork_listening(const int *fds, int nfds, void *arg)
{
	int ret;

	(void)nfds;
	(void)arg;
	ret = announce(fds[0]);
	if (ret < 0)
		fprintf(stderr, "weft-httpd: cannot announce the address: %s\n",
			strerror(-ret));
	return ret;
}

/* Under --procs: one worker process's main task. */
static int
prefork_child(const struct weft_prefork_child *c)
{
	struct httpd_opts *o = c->arg;
	struct weft_serve_opts so = o->serve;
	int ret;

	drain_f = c->drain;
	so.stop = c->drain;
	ret = weft_prefork_ready(c);
	if (ret < 0) {
		fprintf(stderr, "weft-httpd: worker %d cannot report ready: "
			"%s\n", (int)getpid(), strerror(-ret));
		return 1;
	}
	ret = weft_serve(c->fds[0], http_conn, o, &so);
	if (ret == 0 || ret == -ECANCELED)
		return 0;	/* drained */
	fprintf(stderr, "weft-httpd: accept loop stopped: %s\n",
		strerror(-ret));
	return 1;
}

static int
run_prefork(struct httpd_opts *o, const struct weft_config *cfg)
{
	struct weft_prefork_listen l = { .host = o->host, .port = o->port };
	struct weft_prefork_opts po = {
		.procs = o->procs,
		.mode = o->reuseport ? WEFT_PREFORK_REUSEPORT
				     : WEFT_PREFORK_SHARED,
		.listen = &l,
		.nlisten = 1,
		.cfg = *cfg,
		.child_main = prefork_child,
		.on_listen = prefork_listening,
		.arg = o,
		.drain_ns = o->drain,
		.name = "weft-httpd",
	};
	int ret = weft_prefork(&po);

	if (ret == -ECHILD)
		return 1;	/* the supervisor said why */
	if (ret < 0) {
		fprintf(stderr, "weft-httpd: supervisor failed: %s\n",
			strerror(-ret));
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "workers", required_argument, NULL, 'w' },
		{ "stack", required_argument, NULL, 's' },
		{ "idle-ms", required_argument, NULL, 'i' },
		{ "header-timeout-ms", required_argument, NULL, 'T' },
		{ "procs", required_argument, NULL, 'P' },
		{ "reuseport", no_argument, NULL, 'R' },
		{ "drain-ms", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct httpd_opts o = {
		.host = "127.0.0.1",
		.port = 8080,
		.idle = 60 * WEFT_SEC,
		.header = 60 * WEFT_SEC,
	};
	struct weft_config cfg = { 0 };
	void *result = NULL;
	int opt;
	int ret;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			o.host = optarg;
			break;
		case 'p':
			o.port = (int)parse_long(optarg, "--port", 0, 65535);
			break;
		case 'w':
			cfg.workers = (int)parse_long(optarg, "--workers", 0,
						      1024);
			break;
		case 's':
			o.serve.stack_size = parse_size(optarg, "--stack",
							(size_t)16 << 10,
							(size_t)1 << 30);
			break;
		case 'i':
			o.idle = parse_long(optarg, "--idle-ms", 1,
					    86400000) * WEFT_MSEC;
			break;
		case 'T':
			o.header = parse_long(optarg, "--header-timeout-ms", 1,
					      86400000) * WEFT_MSEC;
			break;
		case 'P':
			o.procs = (int)parse_long(optarg, "--procs", 1, 1024);
			break;
		case 'R':
			o.reuseport = 1;
			break;
		case 'D':
			o.drain = parse_long(optarg, "--drain-ms", 1,
					     86400000) * WEFT_MSEC;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "weft-httpd: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}

	/* Writes to a reset peer must fail with EPIPE, not kill the server. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	resps_init();
	if ((o.reuseport || o.drain) && !o.procs) {
		fprintf(stderr, "weft-httpd: --reuseport and --drain-ms need"
			" --procs\n");
		return 2;
	}
	if (o.procs)
		return run_prefork(&o, &cfg);

	ret = weft_run(httpd_main, &o, &cfg, &result);
	if (ret < 0) {
		fprintf(stderr, "weft-httpd: cannot start the runtime: %s\n",
			strerror(-ret));
		return 1;
	}
	return (int)(intptr_t)result;
}

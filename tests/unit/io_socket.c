/* SPDX-License-Identifier: MIT */
/*
 * Sockets: TCP on the loopback (IPv4, IPv6, wildcard, names, refused and
 * unresolvable peers, address reuse, resets, connect deadlines), unix
 * sockets (paths and the abstract namespace), weft_serve() (echo clients,
 * cancellation, fd exhaustion) and bulk traffic over socketpairs.  Every
 * test runs under io_uring and under epoll (see io_harness.h).  Loopback
 * only.
 */
#include <limits.h>

#include "io_harness.h"

#if defined(WEFT_TSAN)
#define SERVE_CLIENTS 8
#define SERVE_ROUNDS  20
#define BULK_PAIRS    20
#define BULK_MSGS     50
#elif defined(WEFT_ASAN)
#define SERVE_CLIENTS 16
#define SERVE_ROUNDS  50
#define BULK_PAIRS    100
#define BULK_MSGS     100
#else
#define SERVE_CLIENTS 32
#define SERVE_ROUNDS  50
#define BULK_PAIRS    100
#define BULK_MSGS     100
#endif

/* Send all of `buf` with weft_send(); returns len or the error. */
static ssize_t
send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = weft_send(fd, p + done, len - done, 0, io_dl());
		if (n < 0)
			return n;
		done += (size_t)n;
	}
	return (ssize_t)len;
}

/* Echo what arrives on `fd` until EOF or an error; returns bytes echoed. */
static long
echo_fd(int fd)
{
	char *buf = malloc(4096);
	long total = 0;
	int one = 1;
	ssize_t n;

	/*
	 * Accepted sockets keep Nagle; echoing in 4 KiB pieces would then
	 * wait for the peer's delayed ACKs (40 ms each).
	 */
	if (io_family(fd) != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	T_EXPECT(buf != NULL, "malloc failed");
	while (buf) {
		n = weft_recv(fd, buf, 4096, 0, io_dl());
		if (n <= 0) {
			T_EXPECT(n == 0, "echo: recv returned %zd", n);
			break;
		}
		if (send_all(fd, buf, (size_t)n) != n) {
			t_failf(__FILE__, __LINE__, "echo: send failed");
			break;
		}
		total += n;
	}
	free(buf);
	return total;
}

/* Accept one connection on `lfd`, echo it, close it. */
struct acceptor {
	int lfd;
	int flags;
	int fd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	long echoed;
};

static void *
accept_echo(void *arg)
{
	struct acceptor *ac = arg;

	ac->addrlen = sizeof(ac->addr);
	ac->fd = weft_accept(ac->lfd, (struct sockaddr *)&ac->addr,
			     &ac->addrlen, ac->flags, io_dl());
	if (ac->fd < 0)
		return t_ptr(ac->fd);
	ac->echoed = echo_fd(ac->fd);
	T_EXPECT_INT(weft_close(ac->fd, io_dl()), ==, 0);
	return t_ptr(0);
}

/* `rounds` echo round trips of growing size on a connected `fd`. */
static void
echo_rounds(int fd, int rounds, uint64_t seed)
{
	uint8_t *buf = malloc(20000);
	uint64_t off = 0;
	size_t len;
	ssize_t n;
	int i;

	T_EXPECT(buf != NULL, "malloc failed");
	for (i = 0; buf && i < rounds && !t_failed(); i++) {
		len = 1 + ((size_t)i * 997) % 16384;
		io_fill(buf, len, seed, off);
		n = send_all(fd, buf, len);
		T_EXPECT_INT(n, ==, len);
		memset(buf, 0, len);
		n = weft_read_full(fd, buf, len, NULL, io_dl());
		T_EXPECT_INT(n, ==, len);
		T_EXPECT_INT(io_mismatch(buf, len, seed, off), ==, -1);
		off += len;
	}
	free(buf);
}

/* Dial `host`:`port`, echo through an acceptor on `lfd`; checks both ends. */
static void
dial_and_echo(int lfd, const char *host, int port, int family)
{
	struct acceptor ac;
	struct weft_task *t;
	char buf[4];
	int fd;

	memset(&ac, 0, sizeof(ac));
	ac.lfd = lfd;
	ac.flags = SOCK_CLOEXEC;
	t = io_spawn(accept_echo, &ac);
	if (!t)
		return;
	fd = weft_tcp_dial(host, port, io_dl());
	T_EXPECT(fd >= 0, "weft_tcp_dial(%s, %d) returned %d", host, port, fd);
	if (fd < 0) {
		weft_cancel(t);
		io_join(t);
		return;
	}
	T_EXPECT(io_has_cloexec(fd), "dialed fd lacks FD_CLOEXEC");
	T_EXPECT_INT(io_sockopt(fd, IPPROTO_TCP, TCP_NODELAY), !=, 0);
	if (family)
		T_EXPECT_INT(io_family(fd), ==, family);
	echo_rounds(fd, 10, (uint64_t)port);
	T_EXPECT_INT(shutdown(fd, SHUT_WR), ==, 0);
	T_EXPECT_INT(weft_recv(fd, buf, sizeof(buf), 0, io_dl()), ==, 0);
	T_EXPECT_INT(io_join(t), ==, 0);
	T_EXPECT(ac.fd >= 0, "accept returned %d", ac.fd);
	if (ac.fd >= 0) {
		/* An IPv4 peer of a dual-stack listener is v4-mapped. */
		T_EXPECT(ac.addr.ss_family == io_family(fd) ||
				 (ac.addr.ss_family == AF_INET6 &&
				  io_family(fd) == AF_INET),
			 "accepted a family %d peer from a family %d socket",
			 ac.addr.ss_family, io_family(fd));
		if (ac.addr.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ac.addr;

			T_EXPECT_INT(ac.addrlen, ==, sizeof(*a));
			T_EXPECT_INT(ntohs(a->sin_port), ==, io_local_port(fd));
			T_EXPECT_INT(ntohl(a->sin_addr.s_addr), ==,
				     INADDR_LOOPBACK);
		} else if (ac.addr.ss_family == AF_INET6) {
			struct sockaddr_in6 *a =
				(struct sockaddr_in6 *)&ac.addr;

			T_EXPECT_INT(ac.addrlen, ==, sizeof(*a));
			T_EXPECT_INT(ntohs(a->sin6_port), ==,
				     io_local_port(fd));
		}
	}
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
}

/*
 * tcp
 */

static void *
tcp_v4_main(void *arg)
{
	int lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	int port;

	T_EXPECT(lfd >= 0, "weft_tcp_listen returned %d", lfd);
	if (lfd < 0)
		return NULL;
	port = io_local_port(lfd);
	T_EXPECT(port > 0, "listener port %d", port);
	T_EXPECT_INT(weft_tcp_port(lfd), ==, port);
	T_EXPECT_INT(io_family(lfd), ==, AF_INET);
	T_EXPECT(io_has_fl(lfd, O_NONBLOCK), "listener is blocking");
	T_EXPECT(io_has_cloexec(lfd), "listener lacks FD_CLOEXEC");
	T_EXPECT_INT(io_sockopt(lfd, SOL_SOCKET, SO_REUSEADDR), !=, 0);
	T_EXPECT_INT(io_sockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN), !=, 0);
	dial_and_echo(lfd, "127.0.0.1", port, AF_INET);
	/* The listener goes on accepting. */
	dial_and_echo(lfd, "127.0.0.1", port, AF_INET);
	T_EXPECT_INT(weft_close(lfd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(tcp_listen_on_any_port_then_dial_and_echo)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(tcp_v4_main, NULL, IO_WORKERS(_i));
}
END_TEST

static void *
tcp_v6_main(void *arg)
{
	int lfd = weft_tcp_listen("::1", 0, NULL);

	T_EXPECT(lfd >= 0, "weft_tcp_listen(::1) returned %d", lfd);
	if (lfd < 0)
		return NULL;
	T_EXPECT_INT(io_family(lfd), ==, AF_INET6);
	T_EXPECT_INT(weft_tcp_port(lfd), ==, io_local_port(lfd));
	dial_and_echo(lfd, "::1", io_local_port(lfd), AF_INET6);
	T_EXPECT_INT(weft_close(lfd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(tcp_port_of_what_is_not_a_tcp_socket)
{
	int p[2], u;

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(weft_tcp_port(p[0]), -ENOTSOCK);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(weft_tcp_port(-1), -EBADF);
	u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(u, 0);
	ck_assert_int_eq(weft_tcp_port(u), -EAFNOSUPPORT);
	close(u);
}
END_TEST

START_TEST(tcp_ipv6_loopback)
{
	IO_SKIP_UNLESS_BACKEND();
	if (!io_have_ipv6()) {
		fprintf(stderr, "SKIP tcp_ipv6_loopback: no IPv6 loopback\n");
		return;
	}
	IO_RUN(tcp_v6_main, NULL, 2);
}
END_TEST

static void *
tcp_wildcard_main(void *arg)
{
	static const char *const hosts[] = {NULL, "", "*"};
	bool v6 = *(bool *)arg;
	int lfd;
	int port;
	int i;

	for (i = 0; i < 3; i++) {
		lfd = weft_tcp_listen(hosts[i], 0, NULL);
		T_EXPECT(lfd >= 0, "weft_tcp_listen(%s) returned %d",
			 hosts[i] ? hosts[i] : "NULL", lfd);
		if (lfd < 0)
			continue;
		port = io_local_port(lfd);
		dial_and_echo(lfd, "127.0.0.1", port, AF_INET);
		if (v6)
			dial_and_echo(lfd, "::1", port, AF_INET6);
		T_EXPECT_INT(weft_close(lfd, io_dl()), ==, 0);
	}
	return NULL;
}

START_TEST(tcp_listen_without_host_accepts_ipv4_and_ipv6)
{
	bool v6 = io_have_ipv6();

	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(tcp_wildcard_main, &v6, 2);
}
END_TEST

static void *
tcp_name_main(void *arg)
{
	int lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	int lfd2;

	T_EXPECT(lfd >= 0, "weft_tcp_listen returned %d", lfd);
	if (lfd < 0)
		return NULL;
	/* "localhost" may resolve to ::1 first: dial must try the next. */
	dial_and_echo(lfd, "localhost", io_local_port(lfd), 0);
	T_EXPECT_INT(weft_close(lfd, io_dl()), ==, 0);
	/* A name works for listening too. */
	lfd2 = weft_tcp_listen("localhost", 0, NULL);
	T_EXPECT(lfd2 >= 0, "weft_tcp_listen(localhost) returned %d", lfd2);
	if (lfd2 >= 0) {
		dial_and_echo(lfd2, "localhost", io_local_port(lfd2), 0);
		T_EXPECT_INT(weft_close(lfd2, io_dl()), ==, 0);
	}
	return NULL;
}

START_TEST(tcp_dial_and_listen_by_name)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(tcp_name_main, NULL, 2);
}
END_TEST

/* A bound, never listening IPv4 socket: its port refuses connections. */
static int
reserve_port(int *port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	T_EXPECT(fd >= 0, "socket: %s", strerror(errno));
	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	T_EXPECT(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s",
		 strerror(errno));
	*port = io_local_port(fd);
	return fd;
}

static void *
refused_main(void *arg)
{
	struct sockaddr_in a;
	int port = 0;
	int rfd = reserve_port(&port);
	int fd;

	if (rfd < 0)
		return NULL;
	T_EXPECT_INT(weft_tcp_dial("127.0.0.1", port, io_dl()), ==,
		     -ECONNREFUSED);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	T_EXPECT(fd >= 0, "socket: %s", strerror(errno));
	if (fd >= 0) {
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_port = htons((uint16_t)port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		T_EXPECT_INT(weft_connect(fd, (struct sockaddr *)&a, sizeof(a),
					  io_dl()),
			     ==, -ECONNREFUSED);
		T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	}
	close(rfd);
	return NULL;
}

START_TEST(tcp_dial_to_a_closed_port_returns_econnrefused)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(refused_main, NULL, 2);
}
END_TEST

static void *
unknown_host_main(void *arg)
{
	int r;

	/*
	 * -EAGAIN or -ETIMEDOUT: the resolver could not be reached (no DNS
	 * where the test runs).
	 */
	r = weft_tcp_dial("no-such-host.invalid", 80,
			  weft_now() + 10 * WEFT_SEC);
	T_EXPECT(r == -ENOENT || r == -EHOSTUNREACH || r == -EAGAIN ||
			 r == -ETIMEDOUT,
		 "dial(no-such-host.invalid) returned %d (%s)", r,
		 strerror(r < 0 ? -r : r));
	r = weft_tcp_listen("no-such-host.invalid", 0, NULL);
	T_EXPECT(r == -ENOENT || r == -EHOSTUNREACH || r == -EAGAIN,
		 "listen(no-such-host.invalid) returned %d (%s)", r,
		 strerror(r < 0 ? -r : r));
	if (r >= 0)
		close(r);
	return NULL;
}

START_TEST(tcp_dial_to_an_unknown_host_returns_an_error)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(unknown_host_main, NULL, 2);
}
END_TEST

static void *
in_use_main(void *arg)
{
	struct weft_listen_opts ro;
	int lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	int a;
	int b;
	int c;
	int port;

	T_EXPECT(lfd >= 0, "weft_tcp_listen returned %d", lfd);
	if (lfd < 0)
		return NULL;
	port = io_local_port(lfd);
	T_EXPECT_INT(weft_tcp_listen("127.0.0.1", port, NULL), ==, -EADDRINUSE);
	/* The first listener is unharmed. */
	dial_and_echo(lfd, "127.0.0.1", port, AF_INET);
	T_EXPECT_INT(weft_close(lfd, io_dl()), ==, 0);

	/* SO_REUSEPORT on both: two listeners share a port. */
	memset(&ro, 0, sizeof(ro));
	ro.reuseport = 1;
	a = weft_tcp_listen("127.0.0.1", 0, &ro);
	T_EXPECT(a >= 0, "weft_tcp_listen(reuseport) returned %d", a);
	if (a < 0)
		return NULL;
	T_EXPECT_INT(io_sockopt(a, SOL_SOCKET, SO_REUSEPORT), !=, 0);
	port = io_local_port(a);
	b = weft_tcp_listen("127.0.0.1", port, &ro);
	T_EXPECT(b >= 0, "second reuseport listener returned %d", b);
	c = weft_tcp_listen("127.0.0.1", port, NULL);
	T_EXPECT_INT(c, ==, -EADDRINUSE);
	if (b >= 0)
		close(b);
	if (c >= 0)
		close(c);
	close(a);
	return NULL;
}

START_TEST(tcp_listen_on_a_port_in_use_returns_eaddrinuse)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(in_use_main, NULL, 2);
}
END_TEST

static void *
v6only_main(void *arg)
{
	struct weft_listen_opts o;
	int lfd;
	int port;

	memset(&o, 0, sizeof(o));
	o.v6only = 1;
	lfd = weft_tcp_listen(NULL, 0, &o);
	T_EXPECT(lfd >= 0, "weft_tcp_listen(v6only) returned %d", lfd);
	if (lfd < 0)
		return NULL;
	port = io_local_port(lfd);
	T_EXPECT_INT(io_family(lfd), ==, AF_INET6);
	T_EXPECT_INT(io_sockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY), !=, 0);
	dial_and_echo(lfd, "::1", port, AF_INET6);
	T_EXPECT_INT(weft_tcp_dial("127.0.0.1", port, io_dl()), ==,
		     -ECONNREFUSED);
	T_EXPECT_INT(weft_close(lfd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(tcp_listen_v6only_refuses_ipv4)
{
	IO_SKIP_UNLESS_BACKEND();
	if (!io_have_ipv6()) {
		fprintf(stderr, "SKIP tcp_listen_v6only: no IPv6 loopback\n");
		return;
	}
	IO_RUN(v6only_main, NULL, 2);
}
END_TEST

/* The client: parks in recv, sees the reset, then sends until it fails. */
struct reset {
	int port;
	int fd;
	ssize_t rret;
	ssize_t sret;
	int sends;
};

static void *
reset_client(void *arg)
{
	struct reset *rs = arg;
	char buf[16];
	int i;

	rs->rret = weft_recv(rs->fd, buf, sizeof(buf), 0, io_dl());
	for (i = 0; i < 1000; i++) {
		rs->sret = weft_send(rs->fd, "data", 4, 0, io_dl());
		rs->sends++;
		if (rs->sret < 0)
			break;
	}
	return NULL;
}

static void *
reset_main(void *arg)
{
	struct reset *rs = arg;
	struct linger lg = {1, 0};
	struct weft_task *t;
	int lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	int sfd;

	T_EXPECT(lfd >= 0, "weft_tcp_listen returned %d", lfd);
	if (lfd < 0)
		return NULL;
	rs->fd = weft_tcp_dial("127.0.0.1", io_local_port(lfd), io_dl());
	T_EXPECT(rs->fd >= 0, "dial returned %d", rs->fd);
	sfd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
	T_EXPECT(sfd >= 0, "accept returned %d", sfd);
	if (rs->fd >= 0 && sfd >= 0) {
		t = io_spawn(reset_client, rs);
		if (t) {
			IO_WAIT_PARKED(t);
			T_EXPECT_INT(setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg,
						sizeof(lg)),
				     ==, 0);
			T_EXPECT_INT(weft_close(sfd, io_dl()), ==, 0);
			sfd = -1;
			io_join(t);
		}
	}
	if (sfd >= 0)
		close(sfd);
	if (rs->fd >= 0)
		close(rs->fd);
	close(lfd);
	return NULL;
}

/* SIGPIPE stays at its default: weft_send must not raise it. */
START_TEST(tcp_peer_reset_gives_econnreset_then_epipe)
{
	struct reset rs;

	IO_SKIP_UNLESS_BACKEND();
	signal(SIGPIPE, SIG_DFL);
	memset(&rs, 0, sizeof(rs));
	IO_RUN(reset_main, &rs, IO_WORKERS(_i));
	ck_assert_msg(rs.rret == -ECONNRESET || rs.rret == 0,
		      "recv after a reset returned %zd", rs.rret);
	ck_assert_msg(rs.sret == -EPIPE || rs.sret == -ECONNRESET,
		      "send after a reset returned %zd (after %d sends)",
		      rs.sret, rs.sends);
}
END_TEST

/*
 * A listener with backlog 1 that nobody accepts from: once its accept
 * queue is full the kernel drops further SYNs, so a connect waits until
 * its deadline, deterministically, on the loopback.
 */
static void *
connect_deadline_main(void *arg)
{
	struct weft_listen_opts o;
	struct sockaddr_in a;
	int64_t dl;
	int64_t now;
	int conns[8];
	int n = 0;
	int lfd;
	int port;
	int fd;
	int r = 0;
	int i;

	memset(&o, 0, sizeof(o));
	o.backlog = 1;
	lfd = weft_tcp_listen("127.0.0.1", 0, &o);
	T_EXPECT(lfd >= 0, "weft_tcp_listen returned %d", lfd);
	if (lfd < 0)
		return NULL;
	port = io_local_port(lfd);
	/* Fill the queue: dials succeed until one waits for its deadline. */
	for (n = 0; n < 8; n++) {
		dl = weft_now() + 100 * WEFT_MSEC;
		r = weft_tcp_dial("127.0.0.1", port, dl);
		if (r < 0)
			break;
		conns[n] = r;
	}
	T_EXPECT_INT(r, ==, -ETIMEDOUT);
	T_EXPECT(n >= 1 && n < 8, "%d connections fit in a backlog of 1", n);
	now = weft_now();
	T_EXPECT(now >= dl, "dial returned %" PRId64 " ns early", dl - now);
	T_EXPECT(now < dl + io_late_ns(), "dial returned %" PRId64 " ns late",
		 now - dl);

	/* weft_connect itself. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	T_EXPECT(fd >= 0, "socket: %s", strerror(errno));
	if (fd >= 0 && r == -ETIMEDOUT) {
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_port = htons((uint16_t)port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		dl = weft_now() + 50 * WEFT_MSEC;
		T_EXPECT_INT(
			weft_connect(fd, (struct sockaddr *)&a, sizeof(a), dl),
			==, -ETIMEDOUT);
		now = weft_now();
		T_EXPECT(now >= dl, "connect returned %" PRId64 " ns early",
			 dl - now);
		T_EXPECT(now < dl + io_late_ns(),
			 "connect returned %" PRId64 " ns late", now - dl);
	}
	if (fd >= 0)
		close(fd);

	/* Accepting makes room: the next dial gets through. */
	for (i = 0; i < n; i++) {
		fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
		T_EXPECT(fd >= 0, "accept returned %d", fd);
		if (fd >= 0)
			close(fd);
		close(conns[i]);
	}
	if (r == -ETIMEDOUT) {
		fd = weft_tcp_dial("127.0.0.1", port, io_dl());
		T_EXPECT(fd >= 0, "dial after accept returned %d", fd);
		if (fd >= 0)
			close(fd);
	} else if (r >= 0) {
		close(r);
	}
	close(lfd);
	return NULL;
}

START_TEST(tcp_connect_to_a_full_backlog_times_out)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(connect_deadline_main, NULL, 2);
}
END_TEST

static void *
accept_flags_main(void *arg)
{
	int lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	int c[3] = {-1, -1, -1};
	int port;
	int fd;
	int i;

	T_EXPECT(lfd >= 0, "weft_tcp_listen returned %d", lfd);
	if (lfd < 0)
		return NULL;
	port = io_local_port(lfd);
	for (i = 0; i < 3; i++)
		c[i] = weft_tcp_dial("127.0.0.1", port, io_dl());
	/* Bad flags fail without taking a connection from the queue. */
	T_EXPECT_INT(weft_accept(lfd, NULL, NULL, 0x1, io_dl()), ==, -EINVAL);
	fd = weft_accept(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC,
			 io_dl());
	T_EXPECT(fd >= 0, "accept returned %d", fd);
	if (fd >= 0) {
		T_EXPECT(io_has_fl(fd, O_NONBLOCK), "SOCK_NONBLOCK ignored");
		T_EXPECT(io_has_cloexec(fd), "SOCK_CLOEXEC ignored");
		close(fd);
	}
	fd = weft_accept(lfd, NULL, NULL, 0, io_dl());
	T_EXPECT(fd >= 0, "accept returned %d", fd);
	if (fd >= 0) {
		T_EXPECT(!io_has_cloexec(fd), "FD_CLOEXEC without asking");
		close(fd);
	}
	fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
	T_EXPECT(fd >= 0, "third accept returned %d", fd);
	if (fd >= 0)
		close(fd);
	for (i = 0; i < 3; i++)
		if (c[i] >= 0)
			close(c[i]);
	close(lfd);
	return NULL;
}

START_TEST(tcp_accept_honours_its_flags)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(accept_flags_main, NULL, 2);
}
END_TEST

static void *
raw_connect_main(void *arg)
{
	struct sockaddr_in a;
	int lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	int fd;
	int sfd;
	int r;
	char c = 0;

	T_EXPECT(lfd >= 0, "weft_tcp_listen returned %d", lfd);
	if (lfd < 0)
		return NULL;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)io_local_port(lfd));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* A blocking socket the caller made itself. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	T_EXPECT(fd >= 0, "socket: %s", strerror(errno));
	if (fd < 0)
		goto out;
	T_EXPECT_INT(
		weft_connect(fd, (struct sockaddr *)&a, sizeof(a), io_dl()), ==,
		0);
	/*
	 * Again: -EISCONN, or 0 when the completion of a non-blocking
	 * connect had not been reported by connect(2) yet (Linux does that
	 * once; the epoll backend waits with SO_ERROR).
	 */
	r = weft_connect(fd, (struct sockaddr *)&a, sizeof(a), io_dl());
	T_EXPECT(r == -EISCONN || r == 0, "second connect returned %d", r);
	T_EXPECT_INT(
		weft_connect(fd, (struct sockaddr *)&a, sizeof(a), io_dl()), ==,
		-EISCONN);
	sfd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
	T_EXPECT(sfd >= 0, "accept returned %d", sfd);
	if (sfd >= 0) {
		T_EXPECT_INT(weft_send(fd, "!", 1, 0, io_dl()), ==, 1);
		T_EXPECT_INT(weft_recv(sfd, &c, 1, 0, io_dl()), ==, 1);
		T_EXPECT_INT(c, ==, '!');
		close(sfd);
	}
	close(fd);
out:
	close(lfd);
	return NULL;
}

START_TEST(tcp_connect_on_a_caller_made_socket)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(raw_connect_main, NULL, 2);
}
END_TEST

static void *
listen_einval_main(void *arg)
{
	struct weft_listen_opts o;
	size_t i;
	int r;

	for (i = 0; i < sizeof(o.reserved_) / sizeof(o.reserved_[0]); i++) {
		memset(&o, 0, sizeof(o));
		o.reserved_[i] = 1;
		r = weft_tcp_listen("127.0.0.1", 0, &o);
		T_EXPECT(r == -EINVAL, "tcp_listen, reserved_[%zu] = 1: %d", i,
			 r);
		if (r >= 0)
			close(r);
		r = weft_unix_listen("@weft-test-reserved", &o);
		T_EXPECT(r == -EINVAL, "unix_listen, reserved_[%zu] = 1: %d", i,
			 r);
		if (r >= 0)
			close(r);
	}
	r = weft_tcp_listen("127.0.0.1", 65536, NULL);
	T_EXPECT(r == -EINVAL, "tcp_listen(port 65536) returned %d", r);
	if (r >= 0)
		close(r);
	r = weft_tcp_listen("127.0.0.1", -1, NULL);
	T_EXPECT(r == -EINVAL, "tcp_listen(port -1) returned %d", r);
	if (r >= 0)
		close(r);
	r = weft_tcp_dial("127.0.0.1", 65536, io_dl());
	T_EXPECT(r < 0, "tcp_dial(port 65536) returned %d", r);
	if (r >= 0)
		close(r);
	return NULL;
}

START_TEST(listen_with_bad_options_returns_einval)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(listen_einval_main, NULL, 1);
}
END_TEST

static void *
sock_flags_main(void *arg)
{
	const char *dir = arg;
	char path[300];
	int lfd;
	int fd;
	int s;

	lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	T_EXPECT(lfd >= 0, "weft_tcp_listen returned %d", lfd);
	if (lfd >= 0) {
		T_EXPECT(io_has_fl(lfd, O_NONBLOCK), "TCP listener blocking");
		T_EXPECT(io_has_cloexec(lfd), "TCP listener lacks CLOEXEC");
		fd = weft_tcp_dial("127.0.0.1", io_local_port(lfd), io_dl());
		T_EXPECT(fd >= 0, "weft_tcp_dial returned %d", fd);
		if (fd >= 0) {
			T_EXPECT(io_has_fl(fd, O_NONBLOCK),
				 "weft_tcp_dial's socket is blocking");
			T_EXPECT(io_has_cloexec(fd),
				 "weft_tcp_dial's socket lacks CLOEXEC");
			close(fd);
		}
		s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
		if (s >= 0)
			close(s);
		close(lfd);
	}
	snprintf(path, sizeof(path), "%s/flags", dir);
	lfd = weft_unix_listen(path, NULL);
	T_EXPECT(lfd >= 0, "weft_unix_listen returned %d", lfd);
	if (lfd >= 0) {
		T_EXPECT(io_has_fl(lfd, O_NONBLOCK), "unix listener blocking");
		T_EXPECT(io_has_cloexec(lfd), "unix listener lacks CLOEXEC");
		fd = weft_unix_dial(path, io_dl());
		T_EXPECT(fd >= 0, "weft_unix_dial returned %d", fd);
		if (fd >= 0) {
			T_EXPECT(io_has_fl(fd, O_NONBLOCK),
				 "weft_unix_dial's socket is blocking");
			T_EXPECT(io_has_cloexec(fd),
				 "weft_unix_dial's socket lacks CLOEXEC");
			close(fd);
		}
		s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
		if (s >= 0)
			close(s);
		close(lfd);
	}
	return NULL;
}

/* weft.h: "Sockets made here are SOCK_NONBLOCK | SOCK_CLOEXEC". */
START_TEST(sockets_made_by_weft_are_nonblocking_and_cloexec)
{
	char dir[256];

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(dir, sizeof(dir));
	IO_RUN(sock_flags_main, dir, 1);
	io_rmdir(dir);
}
END_TEST

/* weft_tcp_listen and weft_unix_listen work on a plain thread. */
START_TEST(listen_works_outside_coroutine_context)
{
	char dir[256];
	char path[300];
	int fd;

	fd = weft_tcp_listen("127.0.0.1", 0, NULL);
	ck_assert_msg(fd >= 0, "weft_tcp_listen returned %d", fd);
	ck_assert_int_gt(io_local_port(fd), 0);
	ck_assert_int_ne(io_sockopt(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
	close(fd);
	fd = weft_tcp_listen("localhost", 0, NULL);
	ck_assert_msg(fd >= 0, "weft_tcp_listen(localhost) returned %d", fd);
	close(fd);
	io_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	fd = weft_unix_listen(path, NULL);
	ck_assert_msg(fd >= 0, "weft_unix_listen returned %d", fd);
	ck_assert_int_ne(io_sockopt(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
	close(fd);
	io_rmdir(dir);
}
END_TEST

/*
 * unix
 */

static void *
unix_accept_echo(void *arg)
{
	struct acceptor *ac = arg;

	ac->fd = weft_accept(ac->lfd, NULL, NULL, SOCK_CLOEXEC, io_dl());
	if (ac->fd < 0)
		return t_ptr(ac->fd);
	ac->echoed = echo_fd(ac->fd);
	T_EXPECT_INT(weft_close(ac->fd, io_dl()), ==, 0);
	return t_ptr(0);
}

/* Dial unix `path`, echo through an acceptor on `lfd`. */
static void
unix_dial_and_echo(int lfd, const char *path)
{
	struct acceptor ac;
	struct weft_task *t;
	char buf[4];
	int fd;

	memset(&ac, 0, sizeof(ac));
	ac.lfd = lfd;
	t = io_spawn(unix_accept_echo, &ac);
	if (!t)
		return;
	fd = weft_unix_dial(path, io_dl());
	T_EXPECT(fd >= 0, "weft_unix_dial(%s) returned %d", path, fd);
	if (fd < 0) {
		weft_cancel(t);
		io_join(t);
		return;
	}
	T_EXPECT(io_has_cloexec(fd), "dialed fd lacks FD_CLOEXEC");
	T_EXPECT_INT(io_family(fd), ==, AF_UNIX);
	echo_rounds(fd, 10, 99);
	T_EXPECT_INT(shutdown(fd, SHUT_WR), ==, 0);
	T_EXPECT_INT(weft_recv(fd, buf, sizeof(buf), 0, io_dl()), ==, 0);
	T_EXPECT_INT(io_join(t), ==, 0);
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
}

static void *
unix_path_main(void *arg)
{
	const char *path = arg;
	struct stat st;
	int lfd = weft_unix_listen(path, NULL);

	T_EXPECT(lfd >= 0, "weft_unix_listen(%s) returned %d", path, lfd);
	if (lfd < 0)
		return NULL;
	T_EXPECT(stat(path, &st) == 0 && S_ISSOCK(st.st_mode),
		 "%s is not a socket", path);
	T_EXPECT(io_has_fl(lfd, O_NONBLOCK), "listener is blocking");
	T_EXPECT(io_has_cloexec(lfd), "listener lacks FD_CLOEXEC");
	unix_dial_and_echo(lfd, path);
	unix_dial_and_echo(lfd, path);
	T_EXPECT_INT(weft_close(lfd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(unix_listen_and_dial_on_a_path)
{
	char dir[256];
	char path[300];

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	IO_RUN(unix_path_main, path, IO_WORKERS(_i));
	io_rmdir(dir);
}
END_TEST

static void *
unix_abstract_main(void *arg)
{
	const char *name = arg;
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	int lfd = weft_unix_listen(name, NULL);

	T_EXPECT(lfd >= 0, "weft_unix_listen(%s) returned %d", name, lfd);
	if (lfd < 0)
		return NULL;
	memset(&sun, 0, sizeof(sun));
	T_EXPECT_INT(getsockname(lfd, (struct sockaddr *)&sun, &len), ==, 0);
	T_EXPECT(sun.sun_path[0] == '\0' &&
			 len == offsetof(struct sockaddr_un, sun_path) +
					 strlen(name) &&
			 memcmp(sun.sun_path + 1, name + 1, strlen(name) - 1) ==
				 0,
		 "bound to another address (length %u)", (unsigned)len);
	T_EXPECT(access(name, F_OK) != 0, "a file named %s was created", name);
	unix_dial_and_echo(lfd, name);
	T_EXPECT_INT(weft_unix_listen(name, NULL), ==, -EADDRINUSE);
	T_EXPECT_INT(weft_close(lfd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(unix_listen_and_dial_in_the_abstract_namespace)
{
	char name[64];

	IO_SKIP_UNLESS_BACKEND();
	snprintf(name, sizeof(name), "@weft-test-%d-%d", (int)getpid(), _i);
	IO_RUN(unix_abstract_main, name, 2);
}
END_TEST

static void *
unix_stale_main(void *arg)
{
	const char *dir = arg;
	struct sockaddr_un sun;
	char path[300];
	char buf[8];
	int lfd;
	int lfd2;
	int fd;

	/* A socket file nobody listens on is replaced. */
	snprintf(path, sizeof(path), "%s/stale", dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	T_EXPECT(strlen(path) < sizeof(sun.sun_path), "%s: too long", path);
	memcpy(sun.sun_path, path, strnlen(path, sizeof(sun.sun_path) - 1));
	T_EXPECT(fd >= 0 && bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0,
		 "bind(%s): %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	T_EXPECT_INT(weft_unix_dial(path, io_dl()), ==, -ECONNREFUSED);
	lfd = weft_unix_listen(path, NULL);
	T_EXPECT(lfd >= 0, "listen over a stale socket returned %d", lfd);
	if (lfd >= 0) {
		unix_dial_and_echo(lfd, path);
		/* ...but not one somebody listens on. */
		lfd2 = weft_unix_listen(path, NULL);
		T_EXPECT_INT(lfd2, ==, -EADDRINUSE);
		if (lfd2 >= 0)
			close(lfd2);
		/*
		 * Finding out took a probe connection: it may sit in the
		 * live listener's queue, already closed.  Discard it.
		 */
		if (weft_poll(lfd, POLLIN, weft_now() + 100 * WEFT_MSEC) > 0) {
			lfd2 = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC,
					   io_dl());
			T_EXPECT(lfd2 >= 0, "accept of the probe: %d", lfd2);
			if (lfd2 >= 0) {
				T_EXPECT_INT(weft_recv(lfd2, buf, sizeof(buf),
						       0, io_dl()),
					     ==, 0);
				close(lfd2);
			}
		}
		unix_dial_and_echo(lfd, path);
		close(lfd);
	}

	/* A regular file is never removed. */
	snprintf(path, sizeof(path), "%s/regular", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	T_EXPECT(fd >= 0 && write(fd, "keep", 4) == 4, "creating %s", path);
	if (fd >= 0)
		close(fd);
	lfd = weft_unix_listen(path, NULL);
	T_EXPECT(lfd < 0, "listen over a regular file returned %d", lfd);
	if (lfd >= 0)
		close(lfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	T_EXPECT(fd >= 0 && read(fd, buf, sizeof(buf)) == 4 &&
			 memcmp(buf, "keep", 4) == 0,
		 "%s was removed or changed", path);
	if (fd >= 0)
		close(fd);
	return NULL;
}

START_TEST(unix_listen_replaces_only_a_stale_socket)
{
	char dir[256];

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(dir, sizeof(dir));
	IO_RUN(unix_stale_main, dir, 2);
	io_rmdir(dir);
}
END_TEST

static void *
unix_errors_main(void *arg)
{
	const char *dir = arg;
	char path[400];
	char name[64];
	int r;

	snprintf(path, sizeof(path), "%s/nothing", dir);
	T_EXPECT_INT(weft_unix_dial(path, io_dl()), ==, -ENOENT);
	snprintf(name, sizeof(name), "@weft-test-none-%d", (int)getpid());
	T_EXPECT_INT(weft_unix_dial(name, io_dl()), ==, -ECONNREFUSED);
	/* Longer than sun_path. */
	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	r = weft_unix_listen(path, NULL);
	T_EXPECT(r == -ENAMETOOLONG || r == -EINVAL,
		 "listen(long path) returned %d", r);
	if (r >= 0)
		close(r);
	r = weft_unix_dial(path, io_dl());
	T_EXPECT(r == -ENAMETOOLONG || r == -EINVAL,
		 "dial(long path) returned %d", r);
	if (r >= 0)
		close(r);
	return NULL;
}

START_TEST(unix_dial_to_nothing_and_long_paths_fail)
{
	char dir[256];

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(dir, sizeof(dir));
	IO_RUN(unix_errors_main, dir, 1);
	io_rmdir(dir);
}
END_TEST

/*
 * serve
 */

struct srv {
	int lfd;
	int port;
	const char *want_name;
	struct weft_task *server;
	atomic_int accepted;
	atomic_int finished;
	atomic_int bad_name;
	atomic_long echoed;
};

static void
echo_conn(int fd, void *arg)
{
	struct srv *sv = arg;
	const char *name = weft_task_name(weft_self());

	atomic_fetch_add(&sv->accepted, 1);
	if (!name || strcmp(name, sv->want_name) != 0)
		atomic_fetch_add(&sv->bad_name, 1);
	atomic_fetch_add(&sv->echoed, echo_fd(fd));
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	atomic_fetch_add(&sv->finished, 1);
}

static void *
serve_task(void *arg)
{
	struct srv *sv = arg;

	return t_ptr(weft_serve(sv->lfd, echo_conn, sv, NULL));
}

struct client {
	struct srv *sv;
	int idx;
};

static void *
echo_client(void *arg)
{
	struct client *cl = arg;
	char c;
	int fd;

	fd = weft_tcp_dial("127.0.0.1", cl->sv->port, io_dl());
	T_EXPECT(fd >= 0, "client %d: dial returned %d", cl->idx, fd);
	if (fd < 0)
		return NULL;
	echo_rounds(fd, SERVE_ROUNDS, (uint64_t)cl->idx);
	shutdown(fd, SHUT_WR);
	T_EXPECT_INT(weft_recv(fd, &c, 1, 0, io_dl()), ==, 0);
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	return NULL;
}

static void *
serve_main(void *arg)
{
	struct srv *sv = arg;
	struct client cl[SERVE_CLIENTS];
	struct weft_task *t[SERVE_CLIENTS];
	int i;

	sv->lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	T_EXPECT(sv->lfd >= 0, "weft_tcp_listen returned %d", sv->lfd);
	if (sv->lfd < 0)
		return NULL;
	sv->port = io_local_port(sv->lfd);
	sv->server = io_spawn(serve_task, sv);
	for (i = 0; i < SERVE_CLIENTS; i++) {
		cl[i].sv = sv;
		cl[i].idx = i;
		t[i] = io_spawn(echo_client, &cl[i]);
	}
	for (i = 0; i < SERVE_CLIENTS; i++)
		io_join(t[i]);
	T_WAIT(atomic_load(&sv->finished) == SERVE_CLIENTS,
	       "every handler to finish");
	if (sv->server) {
		/* Still serving: the server is parked in accept. */
		T_EXPECT(weft_task_state(sv->server) != WEFT_DONE,
			 "weft_serve returned early");
		T_EXPECT_INT(weft_cancel(sv->server), ==, 0);
		T_EXPECT_INT(io_join(sv->server), ==, -ECANCELED);
	}
	T_EXPECT_INT(weft_close(sv->lfd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(serve_echoes_many_clients_until_cancelled)
{
	struct srv sv;
	long want = 0;
	int i;

	IO_SKIP_UNLESS_BACKEND();
	memset(&sv, 0, sizeof(sv));
	sv.want_name = "conn";
	IO_RUN(serve_main, &sv, IO_WORKERS(_i));
	for (i = 0; i < SERVE_ROUNDS; i++)
		want += 1 + ((long)i * 997) % 16384;
	ck_assert_int_eq(atomic_load(&sv.accepted), SERVE_CLIENTS);
	ck_assert_msg(atomic_load(&sv.bad_name) == 0,
		      "handler tasks not named \"conn\"");
	ck_assert_msg(atomic_load(&sv.echoed) == want * SERVE_CLIENTS,
		      "echoed %ld bytes, want %ld", atomic_load(&sv.echoed),
		      want * SERVE_CLIENTS);
}
END_TEST

static void *
named_serve_task(void *arg)
{
	struct srv *sv = arg;
	struct weft_serve_opts o;

	memset(&o, 0, sizeof(o));
	o.name = sv->want_name;
	o.stack_size = 128 * T_KIB;
	return t_ptr(weft_serve(sv->lfd, echo_conn, sv, &o));
}

static void *
named_main(void *arg)
{
	struct srv *sv = arg;
	struct client cl = {sv, 1};
	struct weft_task *t;

	sv->lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	T_EXPECT(sv->lfd >= 0, "weft_tcp_listen returned %d", sv->lfd);
	if (sv->lfd < 0)
		return NULL;
	sv->port = io_local_port(sv->lfd);
	sv->server = io_spawn(named_serve_task, sv);
	t = io_spawn(echo_client, &cl);
	io_join(t);
	T_WAIT(atomic_load(&sv->finished) == 1, "the handler to finish");
	if (sv->server) {
		weft_cancel(sv->server);
		T_EXPECT_INT(io_join(sv->server), ==, -ECANCELED);
	}
	close(sv->lfd);
	return NULL;
}

START_TEST(serve_names_connection_tasks)
{
	struct srv sv;

	IO_SKIP_UNLESS_BACKEND();
	memset(&sv, 0, sizeof(sv));
	sv.want_name = "echo-conn";
	IO_RUN(named_main, &sv, 2);
	ck_assert_int_eq(atomic_load(&sv.accepted), 1);
	ck_assert_int_eq(atomic_load(&sv.bad_name), 0);
}
END_TEST

static void
unused_conn(int fd, void *arg)
{
	t_failf(__FILE__, __LINE__, "a handler ran");
	close(fd);
}

static void *
serve_bad_main(void *arg)
{
	struct weft_serve_opts o;
	int lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	int p[2];
	int s;
	size_t i;

	T_EXPECT(lfd >= 0, "weft_tcp_listen returned %d", lfd);
	if (lfd < 0)
		return NULL;
	for (i = 0; i < sizeof(o.reserved_) / sizeof(o.reserved_[0]); i++) {
		memset(&o, 0, sizeof(o));
		o.reserved_[i] = 1;
		T_EXPECT_INT(weft_serve(lfd, unused_conn, NULL, &o), ==,
			     -EINVAL);
	}
	T_EXPECT_INT(weft_serve(lfd, NULL, NULL, NULL), ==, -EINVAL);
	close(lfd);
	/* Accept errors that are not the server's to survive end it. */
	if (io_pipe(p)) {
		T_EXPECT_INT(weft_serve(p[0], unused_conn, NULL, NULL), ==,
			     -ENOTSOCK);
		io_close2(p);
	}
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		T_EXPECT_INT(weft_serve(s, unused_conn, NULL, NULL), ==,
			     -EINVAL);
		close(s);
	}
	s = weft_serve(-1, unused_conn, NULL, NULL);
	T_EXPECT(s == -EBADF || s == -EINVAL, "weft_serve(-1) returned %d", s);
	return NULL;
}

START_TEST(serve_with_bad_arguments_returns_at_once)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(serve_bad_main, NULL, 1);
}
END_TEST

/*
 * fd exhaustion.  A child process limited to EXH_NOFILE fds serves echo
 * connections that it holds open; the parent opens EXH_CONNS connections
 * to it (more than the child can hold), each with one byte queued.
 */
#define EXH_NOFILE 64
#define EXH_CONNS  100

struct exh {
	int ctl; /* child: read end; 'q' (or EOF) ends it */
	int lfd;
	struct weft_task *server;
	atomic_int accepted;
	atomic_int finished;
	atomic_long echoed;
};

static void
exh_conn(int fd, void *arg)
{
	struct exh *ex = arg;

	atomic_fetch_add(&ex->accepted, 1);
	atomic_fetch_add(&ex->echoed, echo_fd(fd));
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	atomic_fetch_add(&ex->finished, 1);
}

static void *
exh_serve(void *arg)
{
	struct exh *ex = arg;

	return t_ptr(weft_serve(ex->lfd, exh_conn, ex, NULL));
}

static void *
exh_child_main(void *arg)
{
	struct exh *ex = arg;
	char c = 0;
	ssize_t n;

	ex->server = io_spawn(exh_serve, ex);
	if (!ex->server)
		return NULL;
	n = weft_read(ex->ctl, &c, 1, WEFT_DEADLINE_NONE);
	T_EXPECT(n == 1 && c == 'q', "control pipe: %zd", n);
	T_EXPECT(weft_task_state(ex->server) != WEFT_DONE,
		 "weft_serve returned early");
	weft_cancel(ex->server);
	T_EXPECT_INT(io_join(ex->server), ==, -ECANCELED);
	/* The parent closed every connection before saying 'q'. */
	T_WAIT(atomic_load(&ex->finished) == atomic_load(&ex->accepted),
	       "the handlers to finish");
	T_EXPECT_INT(atomic_load(&ex->accepted), ==, EXH_CONNS);
	return NULL;
}

static void __attribute__((noreturn))
exh_child(int ctl, int port_fd, int backend_i)
{
	struct weft_config cfg = t_config(2);
	struct rlimit rl = {EXH_NOFILE, EXH_NOFILE};
	struct exh ex;
	int port;
	int r;

	memset(&ex, 0, sizeof(ex));
	ex.ctl = ctl;
	alarm((unsigned)(3 * t_stall_ns() / WEFT_SEC));
	/* Listen first (on this plain thread): the parent needs the port. */
	ex.lfd = weft_tcp_listen("127.0.0.1", 0, NULL);
	port = ex.lfd >= 0 ? io_local_port(ex.lfd) : -1;
	if (write(port_fd, &port, sizeof(port)) != sizeof(port) || port < 0)
		_exit(2);
	close(port_fd);
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fprintf(stderr, "setrlimit: %s\n", strerror(errno));
		_exit(3);
	}
	cfg.io_backend = IO_BACKEND(backend_i);
	r = weft_run(exh_child_main, &ex, &cfg, NULL);
	if (r != 0 || t_failed()) {
		fprintf(stderr, "child: weft_run %d; %d failures; first: %s\n",
			r, atomic_load(&t_fail_count), t_fail_msg);
		_exit(1);
	}
	close(ex.lfd);
	_exit(0);
}

/*
 * Wait up to `ns` for the echo of `want` on blocking socket `fd`: 1 when
 * it came, 0 on a timeout, -1 when something else came (see *got).
 */
static int
await_echo(int fd, uint8_t want, int64_t ns, int *got)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	uint8_t c;
	ssize_t n;

	*got = -1;
	if (poll(&pfd, 1, (int)(ns / WEFT_MSEC)) != 1)
		return 0;
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	if (n != 1)
		return -1;
	*got = c;
	return c == want ? 1 : -1;
}

/* Record why the parent gave up, then go to the clean-up. */
#define EXH_FAIL(...)                                                          \
	do {                                                                   \
		snprintf(why, sizeof(why), __VA_ARGS__);                       \
		goto out_reap;                                                 \
	} while (0)

START_TEST(serve_survives_fd_exhaustion)
{
	int64_t quick = io_late_ns() / 2; /* 1 s, scaled */
	int64_t slow = t_stall_ns() / 2;
	struct sockaddr_in a;
	struct pollfd pfd;
	bool timed_out;
	bool open_[EXH_CONNS];
	int conns[EXH_CONNS];
	char why[256] = "";
	int served = 0;
	int first = 0;
	int cycles = 0;
	int ctl[2];
	int portp[2];
	int port = -1;
	int status;
	int got;
	int e;
	int i;
	int j;
	pid_t pid;

	IO_SKIP_UNLESS_BACKEND();
	for (i = 0; i < EXH_CONNS; i++) {
		conns[i] = -1;
		open_[i] = false;
	}
	ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(portp, O_CLOEXEC), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(ctl[1]);
		close(portp[0]);
		exh_child(ctl[0], portp[1], _i);
	}
	close(ctl[0]);
	close(portp[1]);
	pfd.fd = portp[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, (int)(slow / WEFT_MSEC)) != 1 ||
	    read(portp[0], &port, sizeof(port)) != sizeof(port) || port <= 0)
		EXH_FAIL("the child did not report its port");

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < EXH_CONNS; i++) {
		uint8_t b = (uint8_t)i;

		conns[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (conns[i] < 0)
			EXH_FAIL("socket: %s", strerror(errno));
		open_[i] = true;
		if (connect(conns[i], (struct sockaddr *)&a, sizeof(a)) != 0)
			EXH_FAIL("connect #%d: %s", i, strerror(errno));
		if (send(conns[i], &b, 1, MSG_NOSIGNAL) != 1)
			EXH_FAIL("send #%d: %s", i, strerror(errno));
	}

	/*
	 * Phase 1: the accept queue is FIFO, so the connections are served
	 * in order until the child runs out of fds.
	 */
	while (served < EXH_CONNS) {
		e = await_echo(conns[served], (uint8_t)served, quick, &got);
		if (e < 0)
			EXH_FAIL("connection %d echoed %d", served, got);
		if (e == 0)
			break;
		served++;
	}
	if (served < 5)
		EXH_FAIL("only %d connections served", served);
	if (served == EXH_CONNS)
		EXH_FAIL("all %d connections served under a limit of %d fds",
			 served, EXH_NOFILE);
	first = served;

	/* Phase 2: the existing connections go on while the rest wait. */
	for (j = 0; j < 3; j++)
		for (i = 0; i < served; i++) {
			uint8_t b = (uint8_t)(i + 7 * (j + 1));

			if (send(conns[i], &b, 1, MSG_NOSIGNAL) != 1)
				EXH_FAIL("send on served #%d: %s", i,
					 strerror(errno));
			if (await_echo(conns[i], b, slow, &got) != 1)
				EXH_FAIL("served connection %d: echo %d, "
					 "want %d",
					 i, got, b);
		}

	/*
	 * Phase 3: closing served connections frees fds; the waiting ones
	 * are accepted (after the server's back-off) and served.
	 */
	while (served < EXH_CONNS) {
		int freed = 0;
		int n = 0;

		if (cycles++ >= 10)
			EXH_FAIL("no end after 10 cycles (%d served)", served);
		for (i = 0; i < served; i++)
			if (open_[i]) {
				close(conns[i]);
				open_[i] = false;
				freed++;
			}
		while (served < EXH_CONNS && n < freed) {
			e = await_echo(conns[served], (uint8_t)served, slow,
				       &got);
			if (e < 0)
				EXH_FAIL("connection %d echoed %d", served,
					 got);
			if (e == 0)
				break;
			served++;
			n++;
		}
		if (n == 0)
			EXH_FAIL("freed %d fds, but no waiting connection "
				 "was served (%d served)",
				 freed, served);
	}
	for (i = 0; i < EXH_CONNS; i++)
		if (open_[i]) {
			close(conns[i]);
			open_[i] = false;
		}
	fprintf(stderr,
		"fd exhaustion (%s): %d of %d served at first, the "
		"rest in %d cycle(s)\n",
		IO_BACKEND(_i), first, EXH_CONNS, cycles);
	if (write(ctl[1], "q", 1) != 1)
		EXH_FAIL("write to the control pipe: %s", strerror(errno));
out_reap:
	for (i = 0; i < EXH_CONNS; i++)
		if (open_[i])
			close(conns[i]);
	close(ctl[1]);
	/* A failure above: the child sees EOF on its control pipe. */
	status = io_wait_child(pid, why[0] ? quick : 2 * slow, &timed_out);
	if (portp[0] >= 0)
		close(portp[0]);
	ck_assert_msg(why[0] == '\0', "%s", why);
	ck_assert_msg(!timed_out, "the serving child hung; killed");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the serving child %s %d",
		      WIFSIGNALED(status) ? "died of signal" : "exited with",
		      WIFSIGNALED(status) ? WTERMSIG(status)
					  : WEXITSTATUS(status));
}
END_TEST

/*
 * bulk
 */

#define BULK_MAX 4096

struct bulk_pair {
	int sv[2];
	uint64_t seed;
	uint64_t sent_sum;
	uint64_t recv_sum;
	long sent_bytes;
	long recv_bytes;
	int recv_msgs;
};

static void *
bulk_sender(void *arg)
{
	struct bulk_pair *bp = arg;
	uint8_t *buf = malloc(BULK_MAX + 4);
	uint64_t seed = bp->seed;
	uint32_t len;
	uint32_t k;
	int m;

	T_EXPECT(buf != NULL, "malloc failed");
	bp->sent_sum = IO_FNV_INIT;
	for (m = 0; buf && m < BULK_MSGS; m++) {
		len = 1 + (uint32_t)(t_rand(&seed) % BULK_MAX);
		memcpy(buf, &len, 4);
		for (k = 0; k < len; k++)
			buf[4 + k] = (uint8_t)t_rand(&seed);
		bp->sent_sum = io_fnv(bp->sent_sum, buf + 4, len);
		bp->sent_bytes += len;
		if (weft_write_full(bp->sv[0], buf, len + 4, NULL, io_dl()) !=
		    (ssize_t)len + 4) {
			t_failf(__FILE__, __LINE__, "bulk write failed");
			break;
		}
	}
	free(buf);
	return NULL;
}

static void *
bulk_receiver(void *arg)
{
	struct bulk_pair *bp = arg;
	uint8_t *buf = malloc(BULK_MAX);
	uint32_t len;
	ssize_t n;

	T_EXPECT(buf != NULL, "malloc failed");
	bp->recv_sum = IO_FNV_INIT;
	while (buf && bp->recv_msgs < BULK_MSGS) {
		n = weft_read_full(bp->sv[1], &len, 4, NULL, io_dl());
		if (n != 4 || len < 1 || len > BULK_MAX) {
			t_failf(__FILE__, __LINE__,
				"bulk header: read %zd, length %u", n, len);
			break;
		}
		n = weft_read_full(bp->sv[1], buf, len, NULL, io_dl());
		if (n != (ssize_t)len) {
			t_failf(__FILE__, __LINE__, "bulk body: %zd of %u", n,
				len);
			break;
		}
		bp->recv_sum = io_fnv(bp->recv_sum, buf, len);
		bp->recv_bytes += len;
		bp->recv_msgs++;
	}
	free(buf);
	return NULL;
}

static void *
bulk_main(void *arg)
{
	struct bulk_pair *bp = arg;
	struct weft_task **t = calloc(2 * BULK_PAIRS, sizeof(*t));
	int i;

	T_EXPECT(t != NULL, "calloc failed");
	if (!t)
		return NULL;
	for (i = 0; i < BULK_PAIRS; i++) {
		bp[i].sv[0] = bp[i].sv[1] = -1;
		if (!io_socketpair(bp[i].sv))
			break;
		bp[i].seed = 0xb01c0000u + (uint64_t)i;
		t[2 * i] = io_spawn(bulk_receiver, &bp[i]);
		t[2 * i + 1] = io_spawn(bulk_sender, &bp[i]);
	}
	for (i = 0; i < 2 * BULK_PAIRS; i++)
		if (t[i])
			io_join(t[i]);
	for (i = 0; i < BULK_PAIRS; i++)
		io_close2(bp[i].sv);
	free(t);
	return NULL;
}

START_TEST(bulk_messages_over_socketpairs_arrive_intact)
{
	struct bulk_pair *bp = calloc(BULK_PAIRS, sizeof(*bp));
	long msgs = 0;
	int i;

	IO_SKIP_UNLESS_BACKEND();
	ck_assert_ptr_nonnull(bp);
	IO_RUN(bulk_main, bp, 2);
	for (i = 0; i < BULK_PAIRS; i++) {
		ck_assert_msg(bp[i].recv_msgs == BULK_MSGS,
			      "pair %d: %d of %d messages", i, bp[i].recv_msgs,
			      BULK_MSGS);
		ck_assert_msg(bp[i].recv_bytes == bp[i].sent_bytes,
			      "pair %d: %ld of %ld bytes", i, bp[i].recv_bytes,
			      bp[i].sent_bytes);
		ck_assert_msg(bp[i].recv_sum == bp[i].sent_sum,
			      "pair %d: checksum differs", i);
		msgs += bp[i].recv_msgs;
	}
	ck_assert_int_eq(msgs, (long)BULK_PAIRS * BULK_MSGS);
	free(bp);
}
END_TEST

static Suite *
io_socket_suite(void)
{
	Suite *s = suite_create("io/socket");
	TCase *tc;

	tc = t_tcase(s, "tcp", T_TIMEOUT);
	IO_ADD_W(tc, tcp_listen_on_any_port_then_dial_and_echo);
	IO_ADD(tc, tcp_ipv6_loopback);
	tcase_add_test(tc, tcp_port_of_what_is_not_a_tcp_socket);
	IO_ADD(tc, tcp_listen_without_host_accepts_ipv4_and_ipv6);
	IO_ADD(tc, tcp_dial_and_listen_by_name);
	IO_ADD(tc, tcp_dial_to_a_closed_port_returns_econnrefused);
	IO_ADD(tc, tcp_dial_to_an_unknown_host_returns_an_error);
	IO_ADD(tc, tcp_listen_on_a_port_in_use_returns_eaddrinuse);
	IO_ADD(tc, tcp_listen_v6only_refuses_ipv4);
	IO_ADD_W(tc, tcp_peer_reset_gives_econnreset_then_epipe);
	IO_ADD(tc, tcp_connect_to_a_full_backlog_times_out);
	IO_ADD(tc, tcp_accept_honours_its_flags);
	IO_ADD(tc, tcp_connect_on_a_caller_made_socket);
	IO_ADD(tc, listen_with_bad_options_returns_einval);
	tcase_add_test(tc, listen_works_outside_coroutine_context);
	IO_ADD(tc, sockets_made_by_weft_are_nonblocking_and_cloexec);

	tc = t_tcase(s, "unix", T_TIMEOUT);
	IO_ADD_W(tc, unix_listen_and_dial_on_a_path);
	IO_ADD(tc, unix_listen_and_dial_in_the_abstract_namespace);
	IO_ADD(tc, unix_listen_replaces_only_a_stale_socket);
	IO_ADD(tc, unix_dial_to_nothing_and_long_paths_fail);

	tc = t_tcase(s, "serve", T_TIMEOUT);
	IO_ADD_W(tc, serve_echoes_many_clients_until_cancelled);
	IO_ADD(tc, serve_names_connection_tasks);
	IO_ADD(tc, serve_with_bad_arguments_returns_at_once);
	IO_ADD(tc, serve_survives_fd_exhaustion);

	tc = t_tcase(s, "bulk", T_TIMEOUT);
	IO_ADD(tc, bulk_messages_over_socketpairs_arrive_intact);

	return s;
}

int
main(void)
{
	return t_main(io_socket_suite());
}

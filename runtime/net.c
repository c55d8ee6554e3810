/* SPDX-License-Identifier: MIT */
/*
 * Sockets: TCP and Unix listeners and dialers, name resolution off the
 * workers, and weft_serve(), the accept loop every server needs.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "sched/park.h"

#define SOCK_FLAGS (SOCK_NONBLOCK | SOCK_CLOEXEC)

static int
gai_errno(int r)
{
	switch (r) {
	case 0:
		return 0;
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
		return -ENOENT;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_FAMILY:
	case EAI_SERVICE:
	case EAI_SOCKTYPE:
	case EAI_BADFLAGS:
		return -EINVAL;
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	default:
		return -EHOSTUNREACH;
	}
}

/* A resolution on the pool; heap-owned, so a caller may time out. */
struct resolve {
	char *host;
	char port[8];
	struct addrinfo hints;
	struct addrinfo *res;
	int ret;
};

static void
resolve_run(void *arg)
{
	struct resolve *r = arg;

	r->ret = gai_errno(getaddrinfo(r->host, r->port, &r->hints, &r->res));
}

static void
resolve_free(void *arg)
{
	struct resolve *r = arg;

	if (r->res)
		freeaddrinfo(r->res);
	free(r->host);
	free(r);
}

/*
 * Resolve host:port to stream addresses.  Literal addresses are parsed in
 * place (no I/O); names go to the blocking pool from a coroutine, or are
 * resolved right here on a plain thread.
 */
static int
resolve(const char *host, int port, bool passive, int64_t deadline,
	struct addrinfo **out)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV |
			    (passive ? AI_PASSIVE : 0),
	};
	struct resolve *r;
	char ps[8];
	int ret;

	if (port < 0 || port > 65535)
		return -EINVAL;
	snprintf(ps, sizeof(ps), "%d", port);
	ret = getaddrinfo(host, ps, &hints, out);
	if (ret != EAI_NONAME)
		return gai_errno(ret);
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG |
			 (passive ? AI_PASSIVE : 0);
	if (!weft__task_self())
		return gai_errno(getaddrinfo(host, ps, &hints, out));
	r = calloc(1, sizeof(*r));
	if (!r || !(r->host = strdup(host))) {
		free(r);
		return -ENOMEM;
	}
	memcpy(r->port, ps, sizeof(ps));
	r->hints = hints;
	ret = weft__pool_run(resolve_run, r, resolve_free, deadline);
	if (ret < 0)
		return ret;	/* r belongs to the pool now, or is freed */
	ret = r->ret;
	*out = r->res;
	r->res = NULL;
	resolve_free(r);
	if (ret == 0 && !*out)
		ret = -ENOENT;
	return ret;
}

static int
check_listen_opts(const struct weft_listen_opts *o)
{
	if (!o)
		return 0;
	for (size_t i = 0; i < sizeof(o->reserved_) / sizeof(o->reserved_[0]);
	     i++)
		if (o->reserved_[i])
			return -EINVAL;
	return o->backlog < 0 ? -EINVAL : 0;
}

static int
listen_on(const struct sockaddr *sa, socklen_t len,
	  const struct weft_listen_opts *o, bool any6)
{
	int fd, one = 1, off = 0, ret;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_FLAGS, 0);
	if (fd < 0)
		return -errno;
	if (sa->sa_family != AF_UNIX)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				 sizeof(one));
	if (o && o->reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	/* "::" also takes IPv4 unless the caller asked for v6 only. */
	if (sa->sa_family == AF_INET6 && (any6 || (o && o->v6only)))
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
				 (o && o->v6only) ? &one : &off, sizeof(int));
	if (bind(fd, sa, len) < 0 ||
	    listen(fd, (o && o->backlog) ? o->backlog : SOMAXCONN) < 0)
		goto fail;
	return fd;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

int
weft_tcp_listen(const char *host, int port,
		const struct weft_listen_opts *opts)
{
	struct addrinfo *res, *ai;
	int ret;

	ret = check_listen_opts(opts);
	if (ret < 0)
		return ret;
	if (port < 0 || port > 65535)
		return -EINVAL;
	if (!host || !*host || !strcmp(host, "*")) {
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6,
					   .sin6_port = htons((uint16_t)port),
					   .sin6_addr = IN6ADDR_ANY_INIT };
		struct sockaddr_in s4 = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)port) };

		ret = listen_on((struct sockaddr *)&s6, sizeof(s6), opts, true);
		if (ret == -EAFNOSUPPORT || ret == -EADDRNOTAVAIL)
			ret = listen_on((struct sockaddr *)&s4, sizeof(s4),
					opts, false);
		return ret;
	}
	ret = resolve(host, port, true, WEFT_DEADLINE_NONE, &res);
	if (ret < 0)
		return ret;
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		ret = listen_on(ai->ai_addr, ai->ai_addrlen, opts, false);
		if (ret >= 0)
			break;
	}
	freeaddrinfo(res);
	return ret;
}

int
weft_tcp_dial(const char *host, int port, int64_t deadline)
{
	struct addrinfo *res, *ai;
	int fd, ret, one = 1;

	if (!host || !*host)
		return -EINVAL;
	if (!weft__task_self())
		return -EPERM;
	ret = resolve(host, port, false, deadline, &res);
	if (ret < 0)
		return ret;
	ret = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_FLAGS, 0);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		ret = weft_connect(fd, ai->ai_addr, ai->ai_addrlen, deadline);
		if (ret == 0) {
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
					 sizeof(one));
			ret = fd;
			break;
		}
		close(fd);
		if (ret == -ECANCELED || ret == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return ret;
}

/* Fill a Unix address; '@' is the abstract namespace.  Returns its length. */
static int
unix_addr(const char *path, struct sockaddr_un *sun)
{
	size_t n;

	if (!path || !*path)
		return -EINVAL;
	n = strlen(path);
	if (n >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	if (path[0] == '@')
		sun->sun_path[0] = '\0';
	else
		n++;	/* count the terminating NUL, as the kernel reports */
	return (int)(offsetof(struct sockaddr_un, sun_path) + n);
}

int
weft_unix_listen(const char *path, const struct weft_listen_opts *opts)
{
	struct sockaddr_un sun;
	struct stat st;
	int len, ret, fd;

	ret = check_listen_opts(opts);
	if (ret < 0)
		return ret;
	len = unix_addr(path, &sun);
	if (len < 0)
		return len;
	ret = listen_on((struct sockaddr *)&sun, (socklen_t)len, opts, false);
	if (ret != -EADDRINUSE || path[0] == '@')
		return ret;
	/* A stale socket file (nobody accepts on it) may be replaced. */
	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, (socklen_t)len) == 0 ||
	    errno != ECONNREFUSED) {
		close(fd);
		return -EADDRINUSE;
	}
	close(fd);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return listen_on((struct sockaddr *)&sun, (socklen_t)len, opts, false);
}

int
weft_unix_dial(const char *path, int64_t deadline)
{
	struct sockaddr_un sun;
	int len, fd, ret;

	len = unix_addr(path, &sun);
	if (len < 0)
		return len;
	if (!weft__task_self())
		return -EPERM;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_FLAGS, 0);
	if (fd < 0)
		return -errno;
	ret = weft_connect(fd, (struct sockaddr *)&sun, (socklen_t)len,
			   deadline);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

uint64_t weft__conns_shed;

/*
 * One accept loop's settings.  Written by weft_serve() before the loop
 * starts, read-only afterwards (the acceptor task and the connection
 * tasks only read it).
 */
struct serve {
	int lfd;
	weft_conn_fn fn;
	void *arg;
	struct weft_spawn_opts so;
	struct weft_group *g;	/* stop mode: the connections; else NULL */
};

/* One connection handed to its task. */
struct conn {
	weft_conn_fn fn;
	void *arg;
	int fd;
};

static void *
conn_main(void *p)
{
	struct conn c = *(struct conn *)p;

	free(p);
	c.fn(c.fd, c.arg);
	return NULL;
}

/* The same, as a member of a stop-mode weft_serve()'s group. */
static int
conn_member(void *p)
{
	conn_main(p);
	return 0;
}

/* Errors after which an accept loop waits and retries. */
static bool
accept_backoff(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS ||
	       err == -ENOMEM;
}

/* Errors that concern one connection only: skip it. */
static bool
accept_skip(int err)
{
	return err == -ECONNABORTED || err == -EPROTO || err == -EPERM ||
	       err == -ECONNRESET || err == -EINTR || err == -EAGAIN ||
	       err == -ENETDOWN || err == -ENOPROTOOPT || err == -EHOSTDOWN ||
	       err == -ENONET || err == -EHOSTUNREACH || err == -EOPNOTSUPP ||
	       err == -ENETUNREACH;
}

/*
 * The accept loop proper: returns -ECANCELED when the calling task is
 * cancelled, or the error it cannot survive.  Connections go to detached
 * tasks, or into sv->g.
 */
static int
accept_loop(const struct serve *sv)
{
	int64_t backoff = 0;
	struct conn *c;
	int fd, ret, one = 1;

	for (;;) {
		fd = weft_accept(sv->lfd, NULL, NULL, SOCK_FLAGS,
				 WEFT_DEADLINE_NONE);
		if (fd < 0) {
			if (fd == -ECANCELED)
				return fd;
			if (accept_skip(fd))
				continue;
			if (!accept_backoff(fd))
				return fd;
			/*
			 * Out of fds or memory: the connections we have go
			 * on; wait for some to close (Go's net/http policy).
			 */
			backoff = backoff ? backoff * 2 : 5 * WEFT_MSEC;
			if (backoff > WEFT_SEC)
				backoff = WEFT_SEC;
			ret = weft_sleep(backoff);
			if (ret < 0)
				return ret;
			continue;
		}
		backoff = 0;
		/* As Go: no Nagle delay on TCP (fails harmlessly on Unix). */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one));
		c = malloc(sizeof(*c));
		if (c) {
			c->fn = sv->fn;
			c->arg = sv->arg;
			c->fd = fd;
			if (sv->g)
				ret = weft_group_spawn(sv->g, conn_member, c,
						       &sv->so);
			else
				ret = weft_spawn(NULL, conn_main, c, &sv->so);
		} else {
			ret = -ENOMEM;
		}
		if (ret < 0) {
			/*
			 * Shed this connection (its client sees the close at
			 * once, not a hang), keep serving the others.
			 */
			free(c);
			close(fd);
			ck_pr_inc_64(&weft__conns_shed);
			if (ret == -EINVAL || ret == -ESRCH ||
			    ret == -ECANCELED)
				return ret;
			if (weft_sleep(5 * WEFT_MSEC) < 0)
				return -ECANCELED;
		}
	}
}

/* Stop mode: the accept loop runs in a task of its own. */
static void *
acceptor_main(void *p)
{
	return (void *)(intptr_t)accept_loop(p);
}

/*
 * Join `t` to the end, even when the caller is cancelled meanwhile (the
 * handle must not escape): weft_join()'s result.
 */
static int
reap(struct weft_task *t, void **res)
{
	struct weft_task *self = weft__task_self();
	bool cancelled = weft__shield_begin(self);
	int ret;

	for (;;) {
		weft__wait_note(self, WAIT_JOIN, t);
		ret = weft_join(t, res, WEFT_DEADLINE_NONE);
		if (ret != -ECANCELED)
			break;
		cancelled |= weft__shield_hit(self);
	}
	weft__shield_end(self, cancelled);
	return ret;
}

/*
 * Stop mode (opts->stop): accept in a task of our own while we wait for
 * the stop future or for that task to end.  On stop: cancel the acceptor
 * (a connection it accepted as the cancel came is still served), wait
 * for the group of connections to end; a cancellation of ours cancels
 * what is left.  The group never outlives the call: every exit path
 * frees it, which cancels and awaits any member still running.
 */
static int
serve_stoppable(struct serve *sv, struct weft_future *stop)
{
	struct weft_future *fs[2];
	struct weft_task *acc;
	void *res = NULL;
	int ret, idx;

	ret = weft_group_make(&sv->g, 0);
	if (ret < 0)
		return ret;
	ret = weft_spawn(&acc, acceptor_main, sv,
			 &(struct weft_spawn_opts){ .name = "accept" });
	if (ret < 0) {
		weft_group_free(sv->g);
		return ret;
	}
	fs[0] = stop;
	fs[1] = weft_task_future(acc);
	idx = weft_wait_any(fs, 2, WEFT_DEADLINE_NONE);
	if (idx != 1)
		weft_cancel(acc);
	ret = reap(acc, &res);
	if (idx == 1)
		ret = ret == 0 ? (int)(intptr_t)res : ret;
	else if (idx == 0)
		ret = weft_group_wait(sv->g, WEFT_DEADLINE_NONE);
	else
		ret = idx;	/* we were cancelled */
	weft_group_free(sv->g);
	return ret;
}

int
weft_serve(int lfd, weft_conn_fn fn, void *arg,
	   const struct weft_serve_opts *opts)
{
	struct serve sv = {
		.lfd = lfd,
		.fn = fn,
		.arg = arg,
		.so = { .name = "conn" },
	};

	if (lfd < 0)
		return -EBADF;
	if (!fn)
		return -EINVAL;
	if (opts) {
		for (size_t i = 0; i < sizeof(opts->reserved_) /
					       sizeof(opts->reserved_[0]);
		     i++)
			if (opts->reserved_[i])
				return -EINVAL;
		sv.so.stack_size = opts->stack_size;
		if (opts->name)
			sv.so.name = opts->name;
	}
	if (!weft__task_self())
		return -EPERM;
	if (opts && opts->stop)
		return serve_stoppable(&sv, opts->stop);
	return accept_loop(&sv);
}

int
weft_tcp_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}

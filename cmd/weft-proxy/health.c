/* SPDX-License-Identifier: MIT */
/*
 * Server health, two ways, as HAProxy and Envoy do it.
 *
 * Active: one task per server of a pool with `check interval=`: every
 * interval it connects (within the check timeout), sends check_send if
 * any, and reads until check_expect's bytes are in (the reply must start
 * with them).  `fall` failures in a row take the server down, `rise`
 * successes bring it back.  Servers start up.
 *
 * Passive: `eject failures=N` counts a server's consecutive connect
 * failures across sessions; at N it is ejected for `for=` and gets no new
 * session; then it returns, and with `slowstart=` its weight ramps from
 * 1 to its full value over that period (so does a server that a check
 * brings back up).  Any successful connect resets the count.
 *
 * State changes are logged on stderr, one line each.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

bool
px_srv_usable_locked(struct px_srv *s, int64_t now)
{
	if (!s->check_up || !s->sa.ss_family)
		return false;
	if (s->ejected_until) {
		if (now < s->ejected_until)
			return false;
		s->ejected_until = 0;
		s->fails = 0;
		s->up_since = now;
		px_msg("server %s/%s returns after ejection",
		       s->pool->c->name, s->c->name);
	}
	return true;
}

int
px_srv_weight_locked(const struct px_srv *s, int64_t now)
{
	int64_t ss = s->pool->c->slowstart;
	int64_t age;
	int w;

	if (!ss || !s->up_since)
		return s->c->weight;
	age = now - s->up_since;
	if (age >= ss)
		return s->c->weight;
	w = (int)((int64_t)s->c->weight * age / ss);
	return w < 1 ? 1 : w;
}

void
px_health_connect_failed(struct px_srv *s, int err)
{
	const struct px_pool *pc = s->pool->c;
	bool ejected = false;

	(void)err;
	if (!pc->eject_failures)
		return;
	pthread_mutex_lock(&s->pool->lock);
	if (!s->ejected_until && ++s->fails >= pc->eject_failures) {
		s->ejected_until = weft_now() + pc->eject_for;
		ejected = true;
	}
	pthread_mutex_unlock(&s->pool->lock);
	if (ejected)
		px_msg("server %s/%s ejected for %lld ms after %d connect "
		       "failures in a row (last: %s)", pc->name, s->c->name,
		       (long long)(pc->eject_for / WEFT_MSEC),
		       pc->eject_failures, strerror(-err));
}

void
px_health_connect_ok(struct px_srv *s)
{
	if (!s->pool->c->eject_failures)
		return;
	pthread_mutex_lock(&s->pool->lock);
	s->fails = 0;
	pthread_mutex_unlock(&s->pool->lock);
}

/* One check: 0 (healthy) or a negative errno / -EPROTO (bad reply). */
static int
check_once(struct px_srv *s)
{
	const struct px_pool *pc = s->pool->c;
	int64_t deadline = weft_now() + pc->check_timeout;
	char buf[PX_CHECK_MAX];
	int fd;
	int r = 0;

	if (!s->sa.ss_family)
		return -EHOSTUNREACH;
	fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
					     SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = weft_connect(fd, (struct sockaddr *)&s->sa, s->salen, deadline);
	if (r == 0 && pc->check_send_len)
		r = (int)weft_write_full(fd, pc->check_send,
					 pc->check_send_len, NULL, deadline);
	if (r >= 0 && pc->check_expect_len) {
		ssize_t n = weft_read_full(fd, buf, pc->check_expect_len,
					   NULL, deadline);

		if (n < 0)
			r = (int)n;
		else if ((size_t)n < pc->check_expect_len ||
			 memcmp(buf, pc->check_expect, pc->check_expect_len))
			r = -EPROTO;
	}
	weft_close(fd, 0);
	return r < 0 ? r : 0;
}

static int
checker(void *arg)
{
	struct px_srv *s = arg;
	const struct px_pool *pc = s->pool->c;
	int64_t next = weft_now();

	for (;;) {
		int r;
		bool change = false;
		bool up;

		next += pc->check_interval;
		if (weft_sleep_until(next) == -ECANCELED)
			return 0;
		r = check_once(s);
		if (r == -ECANCELED)
			return 0;
		pthread_mutex_lock(&s->pool->lock);
		up = s->check_up;
		if (r == 0) {
			s->fall_n = 0;
			if (!up && ++s->rise_n >= pc->rise) {
				s->check_up = true;
				s->up_since = weft_now();
				s->rise_n = 0;
				change = true;
			}
		} else {
			s->rise_n = 0;
			if (up && ++s->fall_n >= pc->fall) {
				s->check_up = false;
				s->fall_n = 0;
				change = true;
			}
		}
		pthread_mutex_unlock(&s->pool->lock);
		if (r)
			atomic_fetch_add_explicit(&s->checks_failed, 1,
						  memory_order_relaxed);
		if (change)
			px_msg("server %s/%s is %s (check: %s)", pc->name,
			       s->c->name, up ? "DOWN" : "UP",
			       r ? (r == -EPROTO ? "unexpected reply"
						 : strerror(-r))
				 : "ok");
		if (weft_now() > next + pc->check_interval)
			next = weft_now();	/* fell behind: no burst */
	}
}

int
px_health_start(struct px_state *st, struct weft_group *g)
{
	struct weft_spawn_opts so = { .stack_size = 32 << 10,
				      .name = "px-check" };

	for (int i = 0; i < st->cfg->npools; i++) {
		struct px_pool_rt *p = &st->pools[i];

		if (!p->c->check_interval)
			continue;
		for (int j = 0; j < p->c->nservers; j++) {
			int r = weft_group_spawn(g, checker, &p->srv[j], &so);

			if (r < 0)
				return r;
		}
	}
	return 0;
}

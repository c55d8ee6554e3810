/* SPDX-License-Identifier: MIT */
/*
 * weft-proxy's server choice (cmd/weft-proxy/proxy.c, px_pick): the
 * sequence smooth weighted round-robin gives, least-connections by
 * weight, two random choices, the consistency of the address hash (a
 * server leaving moves only its own clients), backups only when nothing
 * else is in service, servers at max_conns skipped (and -EBUSY when all
 * are), passive ejection and its return, slow start.  Pools come from
 * configuration text through the real parser; no runtime runs (px_pick
 * takes a pthread mutex and reads the clock, nothing else).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "cmd/weft-proxy/config.h"
#include "cmd/weft-proxy/proxy.h"
#include "harness.h"

static struct px_config cfg;
static struct px_state st;

/* Load `pool` (a pool block named p) behind one listener. */
static struct px_pool_rt *
load(const char *pool)
{
	char text[2048];
	int fds[2] = { -1, -1 };
	int n = snprintf(text, sizeof(text),
			 "%s\nlisten l { bind 127.0.0.1:0; pool p; }\n", pool);

	ck_assert_int_eq(px_config_parse("t.conf", text, (size_t)n, &cfg,
					 stderr), 0);
	ck_assert_int_eq(px_state_make(&st, &cfg, fds, 1), 0);
	return &st.pools[0];
}

static void
unload(void)
{
	px_state_free(&st);
	px_config_free(&cfg);
}

/* Pick, then release at once (no session stays): the server's name. */
static const char *
pick1(struct px_pool_rt *p, uint64_t h)
{
	struct px_srv *s;

	ck_assert_int_eq(px_pick(p, h, &s), 0);
	px_release(s);
	return s->c->name;
}

START_TEST(roundrobin_is_smooth_and_weighted)
{
	struct px_pool_rt *p = load("pool p { server a 127.0.0.1:1 weight=5;"
				    " server b 127.0.0.1:2;"
				    " server c 127.0.0.1:3; }");
	char seq[15];

	/* nginx's smooth WRR: 5:1:1 interleaves, a a b a c a a. */
	for (int i = 0; i < 14; i++)
		seq[i] = pick1(p, 0)[0];
	seq[14] = '\0';
	ck_assert_str_eq(seq, "aabacaaaabacaa");
	unload();
}
END_TEST

START_TEST(leastconn_takes_the_least_loaded_per_weight)
{
	struct px_pool_rt *p = load("pool p { balance leastconn;"
				    " server a 127.0.0.1:1 weight=2;"
				    " server b 127.0.0.1:2; }");
	struct px_srv *held[6];
	int on_a = 0;

	/* Six sessions kept open: a (weight 2) gets four, b two. */
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(px_pick(p, 0, &held[i]), 0);
		on_a += held[i]->c->name[0] == 'a';
	}
	ck_assert_int_eq(on_a, 4);
	/* b loses its two: the next two go to b. */
	for (int i = 0; i < 6; i++)
		if (held[i]->c->name[0] == 'b') {
			px_release(held[i]);
			held[i] = NULL;
		}
	ck_assert_str_eq(pick1(p, 0), "b");
	for (int i = 0; i < 6; i++)
		if (held[i])
			px_release(held[i]);
	unload();
}
END_TEST

START_TEST(random2_prefers_the_less_loaded)
{
	struct px_pool_rt *p = load("pool p { balance random2;"
				    " server a 127.0.0.1:1;"
				    " server b 127.0.0.1:2; }");
	struct px_srv *held[10];
	int on_a = 0;

	/* With two servers, both are always the two choices: never more
	 * than one session apart. */
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(px_pick(p, 0, &held[i]), 0);
		on_a += held[i]->c->name[0] == 'a';
		ck_assert_int_le(abs(2 * on_a - (i + 1)), 1);
	}
	for (int i = 0; i < 10; i++)
		px_release(held[i]);
	unload();
}
END_TEST

START_TEST(hash_is_consistent)
{
	struct px_pool_rt *p = load("pool p { balance hash;"
				    " server a 127.0.0.1:1;"
				    " server b 127.0.0.1:2;"
				    " server c 127.0.0.1:3;"
				    " server d 127.0.0.1:4; }");
	enum { N = 2000 };
	static char before[N];
	int count[4] = { 0 };
	int moved = 0;

	for (int i = 0; i < N; i++) {
		struct sockaddr_storage ss = { 0 };
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)i);
		before[i] = pick1(p, px_addr_hash(&ss))[0];
		ck_assert_int_eq(before[i], pick1(p, px_addr_hash(&ss))[0]);
		count[before[i] - 'a']++;
	}
	/* Spread: each of four gets a fair share (25% +- 5%). */
	for (int k = 0; k < 4; k++)
		ck_assert_int_gt(count[k], N / 5);
	/* c leaves (a check took it down): only c's clients move. */
	st.pools[0].srv[2].check_up = false;
	for (int i = 0; i < N; i++) {
		struct sockaddr_storage ss = { 0 };
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		char now;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)i);
		now = pick1(p, px_addr_hash(&ss))[0];
		ck_assert_int_ne(now, 'c');
		if (before[i] != 'c')
			ck_assert_int_eq(now, before[i]);
		else
			moved++;
	}
	ck_assert_int_eq(moved, count[2]);
	unload();
}
END_TEST

START_TEST(backup_only_when_nothing_else_serves)
{
	struct px_pool_rt *p = load("pool p { server a 127.0.0.1:1;"
				    " server z 127.0.0.1:2 backup; }");

	for (int i = 0; i < 5; i++)
		ck_assert_str_eq(pick1(p, 0), "a");
	p->srv[0].check_up = false;
	ck_assert_str_eq(pick1(p, 0), "z");
	p->srv[1].check_up = false;
	{
		struct px_srv *s;

		ck_assert_int_eq(px_pick(p, 0, &s), -ENOENT);
	}
	unload();
}
END_TEST

START_TEST(max_conns_skips_then_busy)
{
	struct px_pool_rt *p = load("pool p { server a 127.0.0.1:1"
				    " max_conns=1; server b 127.0.0.1:2"
				    " max_conns=2; }");
	struct px_srv *h[3];
	struct px_srv *x;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(px_pick(p, 0, &h[i]), 0);
	ck_assert_int_eq(p->srv[0].active, 1);
	ck_assert_int_eq(p->srv[1].active, 2);
	ck_assert_int_eq(px_pick(p, 0, &x), -EBUSY);
	px_release(h[0]);
	ck_assert_int_eq(px_pick(p, 0, &x), 0);
	ck_assert_str_eq(x->c->name, h[0]->c->name);
	px_release(x);
	for (int i = 1; i < 3; i++)
		px_release(h[i]);
	unload();
}
END_TEST

START_TEST(ejection_and_slow_start)
{
	struct px_pool_rt *p = load("pool p { server a 127.0.0.1:1 weight=100;"
				    " server b 127.0.0.1:2;"
				    " eject failures=2 for=1h slowstart=1h; }");
	struct px_srv *a = &p->srv[0];
	int64_t now;

	px_health_connect_failed(a, -ECONNREFUSED);
	ck_assert_int_eq(a->ejected_until, 0);	/* one is not enough */
	px_health_connect_ok(a);
	px_health_connect_failed(a, -ECONNREFUSED);
	ck_assert_int_eq(a->ejected_until, 0);	/* the ok reset the count */
	px_health_connect_failed(a, -ECONNREFUSED);
	ck_assert_int_gt(a->ejected_until, 0);
	for (int i = 0; i < 10; i++)
		ck_assert_str_eq(pick1(p, 0), "b");
	/* The period over (moved into the past): a returns, at weight 1. */
	now = weft_now();
	a->ejected_until = now - 1;
	ck_assert_str_eq(pick1(p, 0), "a");
	ck_assert_int_eq(a->ejected_until, 0);
	ck_assert_int_eq(px_srv_weight_locked(a, weft_now()), 1);
	/* Halfway through the ramp: half its weight; past it: all. */
	a->up_since = weft_now() - 1800 * WEFT_SEC;
	ck_assert_int_ge(px_srv_weight_locked(a, weft_now()), 49);
	ck_assert_int_le(px_srv_weight_locked(a, weft_now()), 51);
	a->up_since = weft_now() - 3601 * WEFT_SEC;
	ck_assert_int_eq(px_srv_weight_locked(a, weft_now()), 100);
	unload();
}
END_TEST

static Suite *
proxy_balance_suite(void)
{
	Suite *s = suite_create("proxy/balance");
	TCase *tc = t_tcase(s, "pick", T_TIMEOUT);

	tcase_add_test(tc, roundrobin_is_smooth_and_weighted);
	tcase_add_test(tc, leastconn_takes_the_least_loaded_per_weight);
	tcase_add_test(tc, random2_prefers_the_less_loaded);
	tcase_add_test(tc, hash_is_consistent);
	tcase_add_test(tc, backup_only_when_nothing_else_serves);
	tcase_add_test(tc, max_conns_skips_then_busy);
	tcase_add_test(tc, ejection_and_slow_start);
	return s;
}

int
main(void)
{
	return t_main(proxy_balance_suite());
}

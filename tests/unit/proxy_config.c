/* SPDX-License-Identifier: MIT */
/*
 * weft-proxy's configuration parser (cmd/weft-proxy/config.c): the example
 * file, the defaults, every error message with its line, several errors in
 * one file, the --listen/--upstream configuration, addresses, durations
 * and sizes at their edges.
 */
#include <limits.h>

#include "harness.h"
#include "cmd/weft-proxy/config.h"

#define SEC ((int64_t)1000 * 1000 * 1000)
#define MS ((int64_t)1000 * 1000)

/* The example next to the parser, found from this file's path. */
static const char *
example_path(void)
{
	static char path[PATH_MAX];
	const char *slash = strrchr(__FILE__, '/');
	int dir = slash ? (int)(slash - __FILE__) : 0;

	snprintf(path, sizeof(path), "%.*s%s../../cmd/weft-proxy/weft-proxy.conf",
		 dir, __FILE__, slash ? "/" : "");
	return path;
}

/*
 * Parse `text` as file "t.conf"; *msgs gets everything written to the
 * error stream (caller frees).  Returns px_config_parse()'s result.
 */
static int
parse(const char *text, struct px_config *cfg, char **msgs)
{
	size_t len;
	FILE *err = open_memstream(msgs, &len);
	int ret;

	ck_assert_ptr_nonnull(err);
	ret = px_config_parse("t.conf", text, strlen(text), cfg, err);
	ck_assert_int_eq(fclose(err), 0);
	return ret;
}

/* The text must fail with exactly `want` (all lines) and `count` errors. */
#define ASSERT_ERRORS(text, count, want)                                       \
	do {                                                                   \
		struct px_config c_;                                           \
		char *m_ = NULL;                                               \
		int r_ = parse((text), &c_, &m_);                              \
		ck_assert_msg(r_ == (count), "%d errors, not %d:\n%s", r_,     \
			      (count), m_);                                    \
		ck_assert_str_eq(m_, (want));                                  \
		ck_assert_ptr_null(c_.listeners);                              \
		ck_assert_ptr_null(c_.pools);                                  \
		free(m_);                                                      \
	} while (0)

/* A valid frame for one directive under test. */
#define POOL_OK "pool p {\n server s 127.0.0.1:1;\n}\n"
#define LISTEN_OK "listen l {\n bind 127.0.0.1:2;\n pool p;\n}\n"

/* One bad line (line 2) inside a pool block of an otherwise valid file. */
#define IN_POOL(line) "pool p {\n" line "\n server s 127.0.0.1:1;\n}\n" LISTEN_OK
#define IN_LISTEN(line) POOL_OK "listen l {\n bind 127.0.0.1:2;\n pool p;\n" line "\n}\n"
#define IN_GLOBAL(line) "global {\n" line "\n}\n" POOL_OK LISTEN_OK

static void
assert_one_error(const char *text, const char *want)
{
	struct px_config c;
	char *m = NULL;
	int r = parse(text, &c, &m);

	ck_assert_msg(r == 1, "%d errors, not 1, for:\n%s\ngot:\n%s", r, text,
		      m);
	ck_assert_str_eq(m, want);
	free(m);
}

static void
must_parse(const char *text, struct px_config *cfg)
{
	char *m = NULL;
	int r = parse(text, cfg, &m);

	ck_assert_msg(r == 0, "%d errors:\n%s", r, m);
	ck_assert_str_eq(m, "");
	free(m);
}

START_TEST(example_file_parses_with_its_values)
{
	struct px_config c;
	struct px_pool *p;
	struct px_listener *l;
	char *m = NULL;
	size_t len;
	FILE *err = open_memstream(&m, &len);

	ck_assert_int_eq(px_config_load(example_path(), &c, err), 0);
	fclose(err);
	ck_assert_str_eq(m, "");
	free(m);
	ck_assert_str_eq(c.file, example_path());
	ck_assert_int_eq(c.procs, 1);
	ck_assert_int_eq(c.workers, 2);
	ck_assert_str_eq(c.access_log, "stderr");
	ck_assert(c.has_admin);
	ck_assert_str_eq(c.admin.host, "127.0.0.1");
	ck_assert_int_eq(c.admin.port, 9100);
	ck_assert_int_eq(c.drain_timeout, 30 * SEC);
	ck_assert_uint_eq(c.buffer_size, 16384);
	ck_assert_int_eq(c.splice, PX_SPLICE_AUTO);
	ck_assert_uint_eq(c.splice_threshold, 65536);

	ck_assert_int_eq(c.npools, 2);
	p = &c.pools[0];
	ck_assert_str_eq(p->name, "app");
	ck_assert_int_eq(p->line, 20);
	ck_assert_int_eq(p->balance, PX_BAL_LEASTCONN);
	ck_assert_int_eq(p->nservers, 4);
	ck_assert_str_eq(p->servers[0].name, "app1");
	ck_assert_str_eq(p->servers[0].addr.host, "127.0.0.1");
	ck_assert_int_eq(p->servers[0].addr.port, 8081);
	ck_assert_int_eq(p->servers[0].weight, 3);
	ck_assert_int_eq(p->servers[0].max_conns, 100);
	ck_assert(!p->servers[0].backup);
	ck_assert_int_eq(p->servers[0].line, 22);
	ck_assert_int_eq(c.listeners[0].line, 41);
	ck_assert_int_eq(p->servers[1].weight, 1);
	ck_assert_str_eq(p->servers[2].addr.host, "::1");
	ck_assert_int_eq(p->servers[2].addr.port, 8083);
	ck_assert_str_eq(p->servers[3].addr.path,
			 "/run/weft-proxy/spare.sock");
	ck_assert(p->servers[3].backup);
	ck_assert_int_eq(p->send_proxy, PX_PP_V2);
	ck_assert_int_eq(p->connect_timeout, 2 * SEC);
	ck_assert_int_eq(p->retries, 2);
	ck_assert_int_eq(p->check_interval, 2 * SEC);
	ck_assert_int_eq(p->check_timeout, 1 * SEC);
	ck_assert_int_eq(p->rise, 2);
	ck_assert_int_eq(p->fall, 3);
	ck_assert_uint_eq(p->check_send_len, 6);
	ck_assert_mem_eq(p->check_send, "PING\r\n", 6);
	ck_assert_uint_eq(p->check_expect_len, 5);
	ck_assert_mem_eq(p->check_expect, "+PONG", 5);
	ck_assert_int_eq(p->eject_failures, 3);
	ck_assert_int_eq(p->eject_for, 30 * SEC);
	ck_assert_int_eq(p->slowstart, 10 * SEC);
	p = &c.pools[1];
	ck_assert_str_eq(p->name, "cache");
	ck_assert_int_eq(p->balance, PX_BAL_HASH);
	ck_assert_int_eq(p->check_interval, 5 * SEC);
	ck_assert_int_eq(p->check_timeout, 5 * SEC);
	ck_assert_uint_eq(p->check_send_len, 0);

	ck_assert_int_eq(c.nlisteners, 2);
	l = &c.listeners[0];
	ck_assert_str_eq(l->name, "front");
	ck_assert_str_eq(l->bind.host, "127.0.0.1");
	ck_assert_int_eq(l->bind.port, 8443);
	ck_assert_int_eq(l->pool, 0);
	ck_assert(!l->accept_proxy);
	ck_assert_int_eq(l->max_conns, 10000);
	ck_assert_int_eq(l->queue, 1000);
	ck_assert_int_eq(l->queue_timeout, 5 * SEC);
	ck_assert_int_eq(l->idle_timeout, 300 * SEC);
	ck_assert_int_eq(l->session_timeout, 0);
	ck_assert_int_eq(l->proxy_timeout, 5 * SEC);
	l = &c.listeners[1];
	ck_assert_str_eq(l->name, "listen2");
	ck_assert_str_eq(l->bind.host, "::1");
	ck_assert_int_eq(l->pool, 1);
	ck_assert_int_eq(l->idle_timeout, 30 * SEC);
	px_config_free(&c);
	ck_assert_ptr_null(c.pools);
	ck_assert_int_eq(c.npools, 0);
	px_config_free(&c);	/* a zeroed one is fine */
}
END_TEST

START_TEST(briefs_example_parses)
{
	static const char text[] =
		"# comment to end of line\n"
		"global {\n"
		"    procs 1;                 # 0 = one per CPU\n"
		"    workers 1;\n"
		"    access_log /var/log/weft-proxy/access.log;   # or: stderr | off\n"
		"    admin 127.0.0.1:9100;\n"
		"    drain_timeout 30s;\n"
		"    buffer_size 16k;\n"
		"    splice auto;\n"
		"    splice_threshold 64k;\n"
		"}\n"
		"pool web {\n"
		"    balance roundrobin;\n"
		"    server a 127.0.0.1:8080 weight=3 max_conns=100;\n"
		"    server b [::1]:8081;\n"
		"    server c unix:/run/app.sock backup;\n"
		"    send_proxy v2;\n"
		"    connect_timeout 2s;\n"
		"    retries 2;\n"
		"    check interval=2s timeout=1s rise=2 fall=3 send=\"PING\\r\\n\" expect=\"+PONG\";\n"
		"    eject failures=3 for=30s slowstart=10s;\n"
		"}\n"
		"listen front {\n"
		"    bind 0.0.0.0:8443;\n"
		"    pool web;\n"
		"    accept_proxy on;\n"
		"    max_conns 10000;\n"
		"    queue 1000 timeout=5s;\n"
		"    idle_timeout 5m;\n"
		"    session_timeout off;\n"
		"    proxy_timeout 5s;\n"
		"}\n";
	struct px_config c;

	must_parse(text, &c);
	ck_assert_str_eq(c.access_log, "/var/log/weft-proxy/access.log");
	ck_assert_int_eq(c.pools[0].nservers, 3);
	ck_assert_str_eq(c.pools[0].servers[2].addr.path, "/run/app.sock");
	ck_assert(c.listeners[0].accept_proxy);
	ck_assert_str_eq(c.listeners[0].bind.host, "0.0.0.0");
	ck_assert_int_eq(c.listeners[0].line, 23);
	px_config_free(&c);
}
END_TEST

START_TEST(defaults_are_config_h_s)
{
	struct px_config c;
	struct px_pool *p;
	struct px_listener *l;

	must_parse("pool p { server s h.example:80; }\n"
		   "listen { bind *:0; pool p; }\n", &c);
	ck_assert_str_eq(c.file, "t.conf");
	ck_assert_int_eq(c.procs, 1);
	ck_assert_int_eq(c.workers, 1);
	ck_assert(!c.has_admin);
	ck_assert_str_eq(c.access_log, "");
	ck_assert_int_eq(c.drain_timeout, 30 * SEC);
	ck_assert_uint_eq(c.buffer_size, 16 * 1024);
	ck_assert_int_eq(c.splice, PX_SPLICE_AUTO);
	ck_assert_uint_eq(c.splice_threshold, 64 * 1024);
	p = &c.pools[0];
	ck_assert_int_eq(p->balance, PX_BAL_ROUNDROBIN);
	ck_assert_int_eq(p->send_proxy, PX_PP_NONE);
	ck_assert_int_eq(p->connect_timeout, 5 * SEC);
	ck_assert_int_eq(p->retries, 2);
	ck_assert_int_eq(p->check_interval, 0);
	ck_assert_int_eq(p->rise, 2);
	ck_assert_int_eq(p->fall, 3);
	ck_assert_int_eq(p->eject_failures, 0);
	ck_assert_int_eq(p->eject_for, 30 * SEC);
	ck_assert_int_eq(p->slowstart, 0);
	ck_assert_int_eq(p->servers[0].weight, 1);
	ck_assert_int_eq(p->servers[0].max_conns, 0);
	ck_assert(!p->servers[0].backup);
	ck_assert_str_eq(p->servers[0].addr.host, "h.example");
	l = &c.listeners[0];
	ck_assert_str_eq(l->name, "listen1");
	ck_assert_str_eq(l->bind.host, "");
	ck_assert_int_eq(l->bind.port, 0);
	ck_assert(!l->accept_proxy);
	ck_assert_int_eq(l->max_conns, 0);
	ck_assert_int_eq(l->queue, 0);
	ck_assert_int_eq(l->queue_timeout, 5 * SEC);
	ck_assert_int_eq(l->idle_timeout, 5 * 60 * SEC);
	ck_assert_int_eq(l->session_timeout, 0);
	ck_assert_int_eq(l->proxy_timeout, 5 * SEC);
	px_config_free(&c);
}
END_TEST

START_TEST(check_timeout_defaults_to_interval_at_most_5s)
{
	struct px_config c;

	must_parse(IN_POOL(" check interval=300ms;"), &c);
	ck_assert_int_eq(c.pools[0].check_interval, 300 * MS);
	ck_assert_int_eq(c.pools[0].check_timeout, 300 * MS);
	px_config_free(&c);
	must_parse(IN_POOL(" check interval=1m;"), &c);
	ck_assert_int_eq(c.pools[0].check_timeout, 5 * SEC);
	px_config_free(&c);
}
END_TEST

START_TEST(quoted_words_and_escapes)
{
	struct px_config c;

	must_parse(IN_POOL(" check interval=1s send=\"a\\\\b\\\"c\\t\\x00\\xfF\" "
			   "\"expect=\"\"x y\";"), &c);
	ck_assert_uint_eq(c.pools[0].check_send_len, 8);
	ck_assert_mem_eq(c.pools[0].check_send, "a\\b\"c\t\0\xff", 8);
	ck_assert_uint_eq(c.pools[0].check_expect_len, 3);
	ck_assert_str_eq(c.pools[0].check_expect, "x y");
	px_config_free(&c);
	/* Any value may be quoted; a comment only outside quotes. */
	must_parse("pool \"p\" { server s \"127.0.0.1:1\" \"weight=2\"; }\n"
		   "listen { bind \"unix:/x#y\"; pool p; } # end\n", &c);
	ck_assert_str_eq(c.pools[0].name, "p");
	ck_assert_int_eq(c.pools[0].servers[0].weight, 2);
	ck_assert_str_eq(c.listeners[0].bind.path, "/x#y");
	px_config_free(&c);
}
END_TEST

START_TEST(syntax_errors_name_their_line)
{
	assert_one_error(IN_POOL(" retries 1"),
			 "t.conf:3: missing \";\" before \"server\"\n");
	assert_one_error(POOL_OK "listen l {\n bind 127.0.0.1:2;\n pool p\n}\n",
			 "t.conf:7: missing \";\" before \"}\"\n");
	assert_one_error(POOL_OK "listen l {\n bind 127.0.0.1:2;\n pool p;\n",
			 "t.conf:6: missing \"}\" at the end of the file "
			 "(listen \"l\", line 4)\n");
	assert_one_error("pool p {\n server s 127.0.0.1:1;\n" LISTEN_OK,
			 "t.conf:3: missing \"}\" before \"listen\" "
			 "(pool \"p\", line 1)\n");
	assert_one_error(POOL_OK LISTEN_OK "}\n", "t.conf:8: unexpected \"}\"\n");
	assert_one_error(IN_POOL(" check interval=1s send=\"PING;"),
			 "t.conf:2: unterminated string\n");
	assert_one_error(IN_POOL(" check interval=1s send=\"\\q\";"),
			 "t.conf:2: bad escape \"\\q\": use \\\\ \\\" \\r \\n "
			 "\\t or \\xHH\n");
	assert_one_error(IN_POOL(" check interval=1s send=\"\\x4\";"),
			 "t.conf:2: bad escape \"\\x\": two hex digits must "
			 "follow\n");
	assert_one_error(IN_POOL(" server t 127.0.0.1:3 {\n }"),
			 "t.conf:2: unexpected \"{\" after \"server\": blocks "
			 "do not nest\n");
	assert_one_error("frontend x {\n bind 1.2.3.4:5;\n}\n" POOL_OK LISTEN_OK,
			 "t.conf:1: unknown block \"frontend\"\n");
	assert_one_error(POOL_OK LISTEN_OK "retries 3;\n",
			 "t.conf:8: \"retries\" belongs in a pool block\n");
}
END_TEST

START_TEST(nul_bytes_are_refused)
{
	static const char text[] = POOL_OK "#\0\n" LISTEN_OK;
	struct px_config c;
	char *m = NULL;
	size_t len;
	FILE *err = open_memstream(&m, &len);

	ck_assert_int_eq(px_config_parse("t.conf", text, sizeof(text) - 1, &c,
					 err), 1);
	fclose(err);
	ck_assert_str_eq(m, "t.conf:4: NUL byte in the text\n");
	free(m);
}
END_TEST

START_TEST(directive_errors)
{
	assert_one_error(IN_POOL(" frobnicate 1;"),
			 "t.conf:2: unknown directive \"frobnicate\"\n");
	assert_one_error(IN_POOL(" bind 1.2.3.4:5;"),
			 "t.conf:2: \"bind\" belongs in a listen block\n");
	assert_one_error(IN_LISTEN(" server x 1.2.3.4:5;"),
			 "t.conf:7: \"server\" belongs in a pool block\n");
	assert_one_error(IN_POOL(" retries 1;\n retries 2;"),
			 "t.conf:3: duplicate \"retries\" (line 2)\n");
	assert_one_error(IN_POOL(" retries 1 2;"),
			 "t.conf:2: \"retries\" takes 1 argument\n");
	assert_one_error(IN_POOL(" server x;"),
			 "t.conf:2: \"server\" takes 2 to 5 arguments\n");
	assert_one_error(IN_POOL(" retries 17;"),
			 "t.conf:2: bad retries \"17\": must be 0..16\n");
	assert_one_error(IN_POOL(" retries -1;"),
			 "t.conf:2: bad retries \"-1\": must be 0..16\n");
	assert_one_error(IN_POOL(" server x 1.2.3.4:5 weight=0;"),
			 "t.conf:2: bad weight \"0\": must be 1..256\n");
	assert_one_error(IN_POOL(" server x 1.2.3.4:5 weight=257;"),
			 "t.conf:2: bad weight \"257\": must be 1..256\n");
	assert_one_error(IN_POOL(" server x 1.2.3.4:5 color=red;"),
			 "t.conf:2: unknown server option \"color\"\n");
	assert_one_error(IN_POOL(" server x 1.2.3.4:5 backup=yes;"),
			 "t.conf:2: server option \"backup\" takes no value\n");
	assert_one_error(IN_POOL(" server x 1.2.3.4:5 weight=2 weight=3;"),
			 "t.conf:2: duplicate server option \"weight\"\n");
	assert_one_error(IN_POOL(" server s 1.2.3.4:5;"),
			 "t.conf:3: duplicate server \"s\" in pool \"p\" "
			 "(line 2)\n");
	assert_one_error(IN_POOL(" server x 1.2.3.4:0;"),
			 "t.conf:2: bad address \"1.2.3.4:0\": port must be "
			 "1..65535\n");
	assert_one_error(IN_POOL(" server x *:80;"),
			 "t.conf:2: bad address \"*:80\": a server needs a "
			 "host, not *\n");
	assert_one_error(IN_POOL(" server x ::1:80;"),
			 "t.conf:2: bad address \"::1:80\": an IPv6 address "
			 "needs brackets: [V6]:PORT\n");
	assert_one_error(IN_POOL(" server x 300.1.1.1:80;"),
			 "t.conf:2: bad address \"300.1.1.1:80\": bad IPv4 "
			 "address\n");
	assert_one_error(IN_POOL(" server x+y 1.2.3.4:5;"),
			 "t.conf:2: bad name \"x+y\": 1..63 of A-Z a-z 0-9 _ "
			 ". -\n");
	assert_one_error(IN_POOL(" server "
				 "a234567890123456789012345678901234567890"
				 "123456789012345678901234 1.2.3.4:5;"),
			 "t.conf:2: bad name \"a23456789012345678901234567890"
			 "1234567890123456789012345678901234\": 1..63 of A-Z "
			 "a-z 0-9 _ . -\n");
	assert_one_error(IN_POOL(" balance fastest;"),
			 "t.conf:2: bad balance \"fastest\": must be "
			 "roundrobin, leastconn, random2 or hash\n");
	assert_one_error(IN_POOL(" send_proxy v3;"),
			 "t.conf:2: bad send_proxy \"v3\": must be off, v1 or "
			 "v2\n");
	assert_one_error(IN_POOL(" check timeout=1s;"),
			 "t.conf:2: check needs interval=\n");
	assert_one_error(IN_POOL(" check expect=\"+OK\";"),
			 "t.conf:2: check expect= needs interval=\n");
	assert_one_error(IN_POOL(" check interval=1s timeout=2s;"),
			 "t.conf:2: check timeout= must not exceed interval=\n");
	assert_one_error(IN_POOL(" check interval=1s rise=0;"),
			 "t.conf:2: bad check rise \"0\": must be 1..100\n");
	assert_one_error(IN_POOL(" check interval=1s fall=101;"),
			 "t.conf:2: bad check fall \"101\": must be 1..100\n");
	assert_one_error(IN_POOL(" check interval=1s port=80;"),
			 "t.conf:2: unknown check option \"port\"\n");
	assert_one_error(IN_POOL(" eject for=1s;"),
			 "t.conf:2: eject needs failures=\n");
	assert_one_error(IN_POOL(" eject failures=1 jail=1s;"),
			 "t.conf:2: unknown eject option \"jail\"\n");
	assert_one_error(IN_LISTEN(" queue 10 size=3;"),
			 "t.conf:7: unknown queue option \"size\"\n");
	assert_one_error(IN_LISTEN(" accept_proxy yes;"),
			 "t.conf:7: bad accept_proxy \"yes\": must be on or "
			 "off\n");
	assert_one_error(IN_LISTEN(" bind 127.0.0.1:3;"),
			 "t.conf:7: duplicate \"bind\" (line 5)\n");
	assert_one_error(IN_GLOBAL(" splice maybe;"),
			 "t.conf:2: bad splice \"maybe\": must be auto, on or "
			 "off\n");
	assert_one_error(IN_GLOBAL(" workers 0;"),
			 "t.conf:2: bad workers \"0\": must be 1..1024\n");
	assert_one_error(IN_GLOBAL(" admin localhost;"),
			 "t.conf:2: bad address \"localhost\": missing :PORT\n");
	assert_one_error(IN_GLOBAL(" access_log \"\";"),
			 "t.conf:2: bad access_log \"\": a path, stderr or "
			 "off\n");
	assert_one_error("global {\n}\nglobal {\n}\n" POOL_OK LISTEN_OK,
			 "t.conf:3: duplicate global block (line 1)\n");
	/* Unprintable bytes are shown escaped: one message, one line. */
	assert_one_error(IN_POOL(" \"re\\ntries\" 1;"),
			 "t.conf:2: unknown directive \"re\\x0atries\"\n");
}
END_TEST

START_TEST(structure_errors)
{
	assert_one_error(POOL_OK, "t.conf:3: at least one listen block is "
			 "required\n");
	assert_one_error("", "t.conf:1: at least one listen block is "
			 "required\n");
	assert_one_error(POOL_OK "listen l {\n bind 127.0.0.1:2;\n}\n",
			 "t.conf:4: listen \"l\" has no pool\n");
	assert_one_error(POOL_OK "listen l {\n pool p;\n}\n",
			 "t.conf:4: listen \"l\" has no bind\n");
	assert_one_error(POOL_OK "listen l {\n bind 127.0.0.1:2;\n pool q;\n}\n",
			 "t.conf:6: unknown pool \"q\"\n");
	assert_one_error("pool p {\n}\n" LISTEN_OK,
			 "t.conf:1: pool \"p\" has no servers\n");
	assert_one_error("pool p {\n server a 1.2.3.4:5 backup;\n"
			 " server b 1.2.3.4:6 backup;\n}\n" LISTEN_OK,
			 "t.conf:1: pool \"p\": every server is a backup\n");
	assert_one_error(POOL_OK POOL_OK LISTEN_OK,
			 "t.conf:4: duplicate pool \"p\" (line 1)\n");
	assert_one_error(POOL_OK LISTEN_OK
			 "listen l {\n bind 127.0.0.1:9;\n pool p;\n}\n",
			 "t.conf:8: duplicate listen \"l\" (line 4)\n");
	assert_one_error(POOL_OK LISTEN_OK
			 "listen m {\n bind 127.0.0.1:2;\n pool p;\n}\n",
			 "t.conf:9: duplicate bind 127.0.0.1:2 (listen \"l\", "
			 "line 5)\n");
	assert_one_error(POOL_OK "listen {\n bind unix:@x;\n pool p;\n}\n"
			 "listen {\n bind unix:@x;\n pool p;\n}\n",
			 "t.conf:9: duplicate bind unix:@x (listen "
			 "\"listen1\", line 5)\n");
}
END_TEST

START_TEST(port_zero_binds_may_repeat)
{
	struct px_config c;

	must_parse(POOL_OK "listen { bind 127.0.0.1:0; pool p; }\n"
		   "listen { bind 127.0.0.1:0; pool p; }\n", &c);
	ck_assert_int_eq(c.nlisteners, 2);
	ck_assert_str_eq(c.listeners[1].name, "listen2");
	px_config_free(&c);
}
END_TEST

START_TEST(every_error_is_reported_with_its_line)
{
	static const char text[] =
		"global {\n"				/* 1 */
		" workers 0;\n"				/* 2 */
		" buffer_size 2m;\n"			/* 3 */
		"}\n"					/* 4 */
		"pool web {\n"				/* 5 */
		" server a 127.0.0.1:1 wieght=2;\n"	/* 6 */
		" retries 2\n"				/* 7 */
		" connect_timeout 5;\n"			/* 8 */
		"}\n"					/* 9 */
		"pool empty {\n"			/* 10 */
		"}\n"					/* 11 */
		"listen front {\n"			/* 12 */
		" bind 127.0.0.1:80;\n"			/* 13 */
		" pool webb;\n"				/* 14 */
		" idle_timeout 10x;\n"			/* 15 */
		"}\n";					/* 16 */

	ASSERT_ERRORS(text, 8,
		      "t.conf:2: bad workers \"0\": must be 1..1024\n"
		      "t.conf:3: bad buffer_size \"2m\": must be 1k..1m\n"
		      "t.conf:6: unknown server option \"wieght\"\n"
		      "t.conf:8: missing \";\" before \"connect_timeout\"\n"
		      "t.conf:8: bad connect_timeout \"5\": needs a unit "
		      "(ms, s, m or h)\n"
		      "t.conf:10: pool \"empty\" has no servers\n"
		      "t.conf:15: bad idle_timeout \"10x\": the unit must be "
		      "ms, s, m or h\n"
		      "t.conf:14: unknown pool \"webb\"\n");
}
END_TEST

START_TEST(durations_need_units_and_stay_in_range)
{
	struct px_config c;

	must_parse(IN_POOL(" connect_timeout 1ms;"), &c);
	ck_assert_int_eq(c.pools[0].connect_timeout, MS);
	px_config_free(&c);
	must_parse(IN_POOL(" connect_timeout 24h;"), &c);
	ck_assert_int_eq(c.pools[0].connect_timeout, 24 * 3600 * SEC);
	px_config_free(&c);
	must_parse(IN_POOL(" connect_timeout 1440m;"), &c);
	ck_assert_int_eq(c.pools[0].connect_timeout, 24 * 3600 * SEC);
	px_config_free(&c);
	must_parse(IN_LISTEN(" idle_timeout 0s;\n session_timeout 90s;"), &c);
	ck_assert_int_eq(c.listeners[0].idle_timeout, 0);
	ck_assert_int_eq(c.listeners[0].session_timeout, 90 * SEC);
	px_config_free(&c);
	must_parse(IN_LISTEN(" idle_timeout off;"), &c);
	ck_assert_int_eq(c.listeners[0].idle_timeout, 0);
	px_config_free(&c);

	assert_one_error(IN_POOL(" connect_timeout 30;"),
			 "t.conf:2: bad connect_timeout \"30\": needs a unit "
			 "(ms, s, m or h)\n");
	assert_one_error(IN_POOL(" connect_timeout 0s;"),
			 "t.conf:2: bad connect_timeout \"0s\": must be "
			 "1ms..24h\n");
	assert_one_error(IN_POOL(" connect_timeout off;"),
			 "t.conf:2: bad connect_timeout \"off\": must be "
			 "1ms..24h\n");
	assert_one_error(IN_POOL(" connect_timeout 86400001ms;"),
			 "t.conf:2: bad connect_timeout \"86400001ms\": must "
			 "be 1ms..24h\n");
	assert_one_error(IN_POOL(" connect_timeout 1.5s;"),
			 "t.conf:2: bad connect_timeout \"1.5s\": the unit "
			 "must be ms, s, m or h\n");
	assert_one_error(IN_POOL(" connect_timeout s;"),
			 "t.conf:2: bad connect_timeout \"s\": must be "
			 "1ms..24h\n");
	/* 2^64 + 1 s: refused, not wrapped to 1 s. */
	assert_one_error(IN_POOL(" connect_timeout 18446744073709551617s;"),
			 "t.conf:2: bad connect_timeout "
			 "\"18446744073709551617s\": must be 1ms..24h\n");
	/* 2^64 ns / 1e6 ms would wrap int64 when multiplied. */
	assert_one_error(IN_LISTEN(" session_timeout 9223372036855ms;"),
			 "t.conf:7: bad session_timeout \"9223372036855ms\": "
			 "must be off or 1ms..24h\n");
}
END_TEST

START_TEST(sizes_take_k_and_m_and_stay_in_range)
{
	struct px_config c;

	must_parse(IN_GLOBAL(" buffer_size 1k;\n splice_threshold 0;"), &c);
	ck_assert_uint_eq(c.buffer_size, 1024);
	ck_assert_uint_eq(c.splice_threshold, 0);
	px_config_free(&c);
	must_parse(IN_GLOBAL(" buffer_size 1m;\n splice_threshold 1024m;"), &c);
	ck_assert_uint_eq(c.buffer_size, 1024 * 1024);
	ck_assert_uint_eq(c.splice_threshold, (size_t)1 << 30);
	px_config_free(&c);
	must_parse(IN_GLOBAL(" buffer_size 4096;"), &c);
	ck_assert_uint_eq(c.buffer_size, 4096);
	px_config_free(&c);

	assert_one_error(IN_GLOBAL(" buffer_size 1023;"),
			 "t.conf:2: bad buffer_size \"1023\": must be 1k..1m\n");
	assert_one_error(IN_GLOBAL(" buffer_size 1025k;"),
			 "t.conf:2: bad buffer_size \"1025k\": must be "
			 "1k..1m\n");
	assert_one_error(IN_GLOBAL(" buffer_size 16kb;"),
			 "t.conf:2: bad buffer_size \"16kb\": must be 1k..1m\n");
	/* 2^64 / 1024 + 1 KiB wraps to 1 KiB in 64 bits: refused. */
	assert_one_error(IN_GLOBAL(" buffer_size 18014398509481985k;"),
			 "t.conf:2: bad buffer_size \"18014398509481985k\": "
			 "must be 1k..1m\n");
	assert_one_error(IN_GLOBAL(" splice_threshold 1025m;"),
			 "t.conf:2: bad splice_threshold \"1025m\": must be "
			 "0..1024m\n");
	/* Integers too: 2^32 + 1 is not 1. */
	assert_one_error(IN_GLOBAL(" workers 4294967297;"),
			 "t.conf:2: bad workers \"4294967297\": must be "
			 "1..1024\n");
}
END_TEST

static int
args(const char *listen, const char *up, struct px_config *cfg, char **msgs)
{
	size_t len;
	FILE *err = open_memstream(msgs, &len);
	int ret;

	ck_assert_ptr_nonnull(err);
	ret = px_config_args(listen, up, cfg, err);
	fclose(err);
	return ret;
}

START_TEST(args_build_one_listener_and_pool)
{
	struct px_config c;
	struct px_pool *p;
	char *m = NULL;

	ck_assert_int_eq(args("127.0.0.1:0", "127.0.0.1:8080,[::1]:81,"
			      "unix:/run/a.sock,h.example:9", &c, &m), 0);
	ck_assert_str_eq(m, "");
	free(m);
	ck_assert_str_eq(c.file, "");
	ck_assert_int_eq(c.nlisteners, 1);
	ck_assert_str_eq(c.listeners[0].name, "main");
	ck_assert_int_eq(c.listeners[0].bind.port, 0);
	ck_assert_int_eq(c.listeners[0].pool, 0);
	ck_assert_int_eq(c.listeners[0].idle_timeout, 5 * 60 * SEC);
	ck_assert_int_eq(c.npools, 1);
	p = &c.pools[0];
	ck_assert_str_eq(p->name, "main");
	ck_assert_int_eq(p->balance, PX_BAL_ROUNDROBIN);
	ck_assert_int_eq(p->connect_timeout, 5 * SEC);
	ck_assert_int_eq(p->nservers, 4);
	ck_assert_str_eq(p->servers[0].name, "s1");
	ck_assert_int_eq(p->servers[0].addr.port, 8080);
	ck_assert_str_eq(p->servers[1].name, "s2");
	ck_assert_str_eq(p->servers[1].addr.host, "::1");
	ck_assert_str_eq(p->servers[2].addr.path, "/run/a.sock");
	ck_assert_str_eq(p->servers[3].name, "s4");
	ck_assert_int_eq(p->servers[3].weight, 1);
	ck_assert_int_eq(c.workers, 1);
	ck_assert_uint_eq(c.buffer_size, 16 * 1024);
	px_config_free(&c);
}
END_TEST

START_TEST(args_report_each_bad_part)
{
	struct px_config c;
	char *m = NULL;

	ck_assert_int_eq(args("nowhere", "127.0.0.1:1", &c, &m), 1);
	ck_assert_str_eq(m, "--listen: bad address \"nowhere\": missing "
			 ":PORT\n");
	ck_assert_ptr_null(c.pools);
	free(m);
	ck_assert_int_eq(args("*:80", "127.0.0.1:0,,*:5,[::1:2,a:1", &c, &m),
			 4);
	ck_assert_str_eq(m,
			 "--upstream: bad address \"127.0.0.1:0\": port must "
			 "be 1..65535\n"
			 "--upstream: empty entry 2\n"
			 "--upstream: bad address \"*:5\": an upstream needs a "
			 "host, not *\n"
			 "--upstream: bad address \"[::1:2\": want [V6]:PORT\n");
	ck_assert_ptr_null(c.listeners);
	free(m);
	ck_assert_int_eq(args("*:65536", NULL, &c, &m), 2);
	ck_assert_str_eq(m, "--listen: bad address \"*:65536\": port must "
			 "be 0..65535\n--upstream: missing\n");
	free(m);
}
END_TEST

static void
assert_round_trip(const char *in, bool zero_ok, const char *host, int port,
		  const char *path, const char *out)
{
	struct px_addr a;
	char buf[512];

	ck_assert_msg(px_addr_parse(in, &a, zero_ok) == 0, "%s refused", in);
	ck_assert_str_eq(a.host, host);
	ck_assert_int_eq(a.port, port);
	ck_assert_str_eq(a.path, path);
	px_addr_format(&a, buf, sizeof(buf));
	ck_assert_str_eq(buf, out);
}

START_TEST(addresses_round_trip)
{
	char path[PX_PATH_MAX + 8], in[PX_PATH_MAX + 16];
	struct px_addr a;
	char small[6];

	assert_round_trip("127.0.0.1:80", false, "127.0.0.1", 80, "",
			  "127.0.0.1:80");
	assert_round_trip("0.0.0.0:65535", false, "0.0.0.0", 65535, "",
			  "0.0.0.0:65535");
	assert_round_trip("[::1]:8081", false, "::1", 8081, "", "[::1]:8081");
	assert_round_trip("[fe80::1:2]:1", false, "fe80::1:2", 1, "",
			  "[fe80::1:2]:1");
	assert_round_trip("[::]:0", true, "::", 0, "", "[::]:0");
	assert_round_trip("*:80", false, "", 80, "", "*:80");
	assert_round_trip(":80", false, "", 80, "", "*:80");
	assert_round_trip("db-1.example_x:5432", false, "db-1.example_x",
			  5432, "", "db-1.example_x:5432");
	assert_round_trip("unix:/run/app.sock", false, "", 0, "/run/app.sock",
			  "unix:/run/app.sock");
	assert_round_trip("unix:@weft", false, "", 0, "@weft", "unix:@weft");

	/* sun_path: 107 bytes and its NUL fit, 108 do not. */
	memset(path, 'p', PX_PATH_MAX - 1);
	path[PX_PATH_MAX - 1] = '\0';
	snprintf(in, sizeof(in), "unix:%s", path);
	ck_assert_int_eq(px_addr_parse(in, &a, false), 0);
	ck_assert_str_eq(a.path, path);
	strcat(in, "p");
	ck_assert_int_eq(px_addr_parse(in, &a, false), -EINVAL);

	ck_assert_int_eq(px_addr_parse("1.2.3.4:0", &a, false), -EINVAL);
	ck_assert_int_eq(px_addr_parse("1.2.3.4:0", &a, true), 0);
	ck_assert_int_eq(px_addr_parse("1.2.3.4:65536", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("1.2.3.4:+80", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("1.2.3.4:", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("1.2.3.4", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("1.2.3:80", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("::1:80", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("[::1]80", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("[::g]:80", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("[]:80", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("-bad:80", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("a b:80", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("unix:", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse("unix:@", &a, true), -EINVAL);
	ck_assert_int_eq(px_addr_parse(NULL, &a, true), -EINVAL);

	/* A short buffer is cut, still terminated. */
	ck_assert_int_eq(px_addr_parse("127.0.0.1:80", &a, false), 0);
	px_addr_format(&a, small, sizeof(small));
	ck_assert_str_eq(small, "127.0");
}
END_TEST

START_TEST(load_reports_unreadable_files)
{
	struct px_config c;
	char *m = NULL;
	size_t len;
	FILE *err = open_memstream(&m, &len);

	ck_assert_int_eq(px_config_load("/nonexistent/weft-proxy.conf", &c,
					err), -ENOENT);
	ck_assert_int_eq(px_config_load("/", &c, err), -EISDIR);
	fclose(err);
	ck_assert_str_eq(m, "/nonexistent/weft-proxy.conf: No such file or "
			 "directory\n/: Is a directory\n");
	ck_assert_ptr_null(c.listeners);
	free(m);
}
END_TEST

START_TEST(load_counts_errors_with_the_file_name)
{
	char path[] = "/tmp/weft-proxy-conf-XXXXXX";
	static const char text[] = "pool p {\n server s 1.2.3.4:5 weight=9999;\n"
				   "}\n";
	struct px_config c;
	char *m = NULL;
	size_t len;
	FILE *err;
	char want[256];
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1),
			 (ssize_t)sizeof(text) - 1);
	close(fd);
	err = open_memstream(&m, &len);
	ck_assert_int_eq(px_config_load(path, &c, err), 2);
	fclose(err);
	unlink(path);
	snprintf(want, sizeof(want),
		 "%s:2: bad weight \"9999\": must be 1..256\n"
		 "%s:3: at least one listen block is required\n", path, path);
	ck_assert_str_eq(m, want);
	free(m);
}
END_TEST

static Suite *
proxy_config_suite(void)
{
	Suite *s = suite_create("proxy/config");
	TCase *tc;

	tc = t_tcase(s, "file", T_TIMEOUT);
	tcase_add_test(tc, example_file_parses_with_its_values);
	tcase_add_test(tc, briefs_example_parses);
	tcase_add_test(tc, defaults_are_config_h_s);
	tcase_add_test(tc, check_timeout_defaults_to_interval_at_most_5s);
	tcase_add_test(tc, quoted_words_and_escapes);
	tcase_add_test(tc, port_zero_binds_may_repeat);
	tcase_add_test(tc, load_reports_unreadable_files);
	tcase_add_test(tc, load_counts_errors_with_the_file_name);
	tc = t_tcase(s, "errors", T_TIMEOUT);
	tcase_add_test(tc, syntax_errors_name_their_line);
	tcase_add_test(tc, nul_bytes_are_refused);
	tcase_add_test(tc, directive_errors);
	tcase_add_test(tc, structure_errors);
	tcase_add_test(tc, every_error_is_reported_with_its_line);
	tc = t_tcase(s, "values", T_TIMEOUT);
	tcase_add_test(tc, durations_need_units_and_stay_in_range);
	tcase_add_test(tc, sizes_take_k_and_m_and_stay_in_range);
	tc = t_tcase(s, "args", T_TIMEOUT);
	tcase_add_test(tc, args_build_one_listener_and_pool);
	tcase_add_test(tc, args_report_each_bad_part);
	tcase_add_test(tc, addresses_round_trip);
	return s;
}

int
main(void)
{
	return t_main(proxy_config_suite());
}

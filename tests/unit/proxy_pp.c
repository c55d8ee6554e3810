/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol module (cmd/weft-proxy/pp.c): every header we build
 * parses back to the same addresses, every proper prefix of a valid
 * header asks for more, the bytes after a header are left alone, and a
 * table of malformed headers gets the exact error.  Includes the example
 * headers of HAProxy's doc/proxy-protocol.txt.  No runtime involved; the
 * fixture only checks that none was left running.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "cmd/weft-proxy/pp.h"
#include "harness.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"	/* 12 bytes */

static struct sockaddr_storage
sa4(const char *a, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	ck_assert_int_eq(inet_pton(AF_INET, a, &sin->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage
sa6(const char *a, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	ck_assert_int_eq(inet_pton(AF_INET6, a, &sin6->sin6_addr), 1);
	return ss;
}

static struct sockaddr_storage
sa_unix(const char *path)
{
	struct sockaddr_storage ss;

	struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

	memset(&ss, 0, sizeof(ss));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", path);
	return ss;
}

/* "a.b.c.d:port" or "[v6]:port" of a parsed address, for messages. */
static const char *
fmt(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		port = ntohs(s->sin_port);
		snprintf(out, cap, "%s:%u", a, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		port = ntohs(s->sin6_port);
		snprintf(out, cap, "[%s]:%u", a, port);
	} else {
		snprintf(out, cap, "family %d", ss->ss_family);
	}
	return out;
}

static void
assert_addr(const struct sockaddr_storage *got, const char *want)
{
	char buf[80];

	ck_assert_str_eq(fmt(got, buf, sizeof(buf)), want);
}

/* Every proper prefix of `h` needs more; all of it is a header. */
static void
assert_prefixes(const void *h, size_t len)
{
	struct px_pp_info info;
	size_t i;

	for (i = 0; i < len; i++)
		ck_assert_msg(px_pp_parse(h, i, &info) == 0,
			      "prefix of %zu of %zu bytes: %d", i, len,
			      px_pp_parse(h, i, &info));
	ck_assert_int_eq(px_pp_parse(h, len, &info), (int)len);
}

/* Parse `h` followed by payload: only the header is consumed. */
static void
assert_payload_kept(const void *h, size_t len)
{
	static const char payload[] = "GET / HTTP/1.1\r\n\r\n";
	unsigned char buf[PX_PP_MAX + sizeof(payload)];
	struct px_pp_info info;

	ck_assert_uint_le(len, PX_PP_MAX);
	memcpy(buf, h, len);
	memcpy(buf + len, payload, sizeof(payload));
	ck_assert_int_eq(px_pp_parse(buf, len + sizeof(payload), &info),
			 (int)len);
}

struct trip {
	const char *name;
	int src_v6;		/* 0: src/dst v4, 1: v6, 2: unix */
	const char *src;
	uint16_t sport;
	const char *dst;
	uint16_t dport;
	int has_addr;		/* what parsing the built header says */
	const char *want_src;	/* as fmt() prints it */
	const char *want_dst;
	const char *want_v1;	/* the v1 line built */
};

static const struct trip trips[] = {
	{ "v4", 0, "192.168.0.1", 56324, "192.168.0.11", 443, 1,
	  "192.168.0.1:56324", "192.168.0.11:443",
	  "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" },
	{ "v4 extremes", 0, "255.255.255.255", 65535, "0.0.0.0", 0, 1,
	  "255.255.255.255:65535", "0.0.0.0:0",
	  "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n" },
	{ "v6", 1, "2001:db8::1", 40000, "2001:db8::2", 8443, 1,
	  "[2001:db8::1]:40000", "[2001:db8::2]:8443",
	  "PROXY TCP6 2001:db8::1 2001:db8::2 40000 8443\r\n" },
	{ "v6 longest", 1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 1,
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	  "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n" },
	/* Dual-stack listeners: IPv4-mapped on both sides go out as v4. */
	{ "v4-mapped v6", 1, "::ffff:10.0.0.1", 1234, "::ffff:10.0.0.2", 80,
	  1, "10.0.0.1:1234", "10.0.0.2:80",
	  "PROXY TCP4 10.0.0.1 10.0.0.2 1234 80\r\n" },
	/* One side mapped, the other a real v6: stays v6. */
	{ "half-mapped v6", 1, "::ffff:10.0.0.1", 1234, "2001:db8::2", 80,
	  1, "[::ffff:10.0.0.1]:1234", "[2001:db8::2]:80",
	  "PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 1234 80\r\n" },
	{ "unix", 2, NULL, 0, NULL, 0, 0, NULL, NULL, "PROXY UNKNOWN\r\n" },
};

static void
trip_addrs(const struct trip *t, struct sockaddr_storage *s,
	   struct sockaddr_storage *d)
{
	if (t->src_v6 == 0) {
		*s = sa4(t->src, t->sport);
		*d = sa4(t->dst, t->dport);
	} else if (t->src_v6 == 1) {
		*s = sa6(t->src, t->sport);
		*d = sa6(t->dst, t->dport);
	} else {
		*s = sa_unix("/run/a.sock");
		*d = sa_unix("/run/b.sock");
	}
}

START_TEST(build_then_parse_round_trips)
{
	const struct trip *t = &trips[_i];
	struct sockaddr_storage s, d;
	unsigned char buf[PX_PP_MAX];
	struct px_pp_info info;
	int version, n;

	trip_addrs(t, &s, &d);
	for (version = 1; version <= 2; version++) {
		n = px_pp_build(version, (struct sockaddr *)&s,
				(struct sockaddr *)&d, buf, sizeof(buf));
		ck_assert_msg(n > 0, "%s v%d: build %d", t->name, version, n);
		if (version == 1)
			ck_assert_msg(n == (int)strlen(t->want_v1) &&
				      memcmp(buf, t->want_v1, (size_t)n) == 0,
				      "%s: built \"%.*s\"", t->name, n,
				      (char *)buf);
		memset(&info, 0xa5, sizeof(info));
		ck_assert_int_eq(px_pp_parse(buf, (size_t)n, &info), n);
		ck_assert_int_eq(info.version, version);
		ck_assert_int_eq(info.has_addr, t->has_addr);
		if (t->has_addr) {
			assert_addr(&info.src, t->want_src);
			assert_addr(&info.dst, t->want_dst);
		}
		assert_prefixes(buf, (size_t)n);
		assert_payload_kept(buf, (size_t)n);
	}
}
END_TEST

START_TEST(build_mixed_families_is_unknown_or_local)
{
	struct sockaddr_storage s = sa4("10.0.0.1", 1);
	struct sockaddr_storage d = sa6("2001:db8::1", 2);
	struct sockaddr_storage m = sa6("::ffff:10.0.0.2", 3);
	unsigned char buf[PX_PP_MAX];
	struct px_pp_info info;
	int n;

	n = px_pp_build(1, (struct sockaddr *)&s, (struct sockaddr *)&d, buf,
			sizeof(buf));
	ck_assert_int_eq(n, 15);
	ck_assert(memcmp(buf, "PROXY UNKNOWN\r\n", 15) == 0);
	n = px_pp_build(2, (struct sockaddr *)&s, (struct sockaddr *)&d, buf,
			sizeof(buf));
	ck_assert_int_eq(n, 16);
	ck_assert(memcmp(buf, SIG "\x20\x00\x00\x00", 16) == 0);
	ck_assert_int_eq(px_pp_parse(buf, 16, &info), 16);
	ck_assert_int_eq(info.has_addr, 0);
	/* v4 with a v4-mapped v6: both are IPv4, so TCP4. */
	n = px_pp_build(1, (struct sockaddr *)&s, (struct sockaddr *)&m, buf,
			sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert(memcmp(buf, "PROXY TCP4 10.0.0.1 10.0.0.2 1 3\r\n",
			 (size_t)n) == 0);
	/* NULL addresses. */
	ck_assert_int_eq(px_pp_build(1, NULL, NULL, buf, sizeof(buf)), 15);
	ck_assert_int_eq(px_pp_build(2, NULL, NULL, buf, sizeof(buf)), 16);
	ck_assert_int_eq(px_pp_build(1, NULL, (struct sockaddr *)&d, buf,
				     sizeof(buf)), 15);
	ck_assert_int_eq(px_pp_build(2, (struct sockaddr *)&m, NULL, buf,
				     sizeof(buf)), 16);
}
END_TEST

START_TEST(build_checks_version_and_room)
{
	struct sockaddr_storage s = sa6("2001:db8::1", 1);
	struct sockaddr_storage d = sa6("2001:db8::2", 2);
	const struct sockaddr *sp = (struct sockaddr *)&s;
	const struct sockaddr *dp = (struct sockaddr *)&d;
	unsigned char buf[PX_PP_MAX];
	int n1, n2;

	ck_assert_int_eq(px_pp_build(0, sp, dp, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(px_pp_build(3, sp, dp, buf, sizeof(buf)), -EINVAL);
	n1 = px_pp_build(1, sp, dp, buf, sizeof(buf));
	n2 = px_pp_build(2, sp, dp, buf, sizeof(buf));
	ck_assert_int_eq(n2, 16 + 36);
	ck_assert_int_eq(px_pp_build(1, sp, dp, buf, (size_t)n1), n1);
	ck_assert_int_eq(px_pp_build(1, sp, dp, buf, (size_t)n1 - 1), -ENOSPC);
	ck_assert_int_eq(px_pp_build(2, sp, dp, buf, (size_t)n2), n2);
	ck_assert_int_eq(px_pp_build(2, sp, dp, buf, (size_t)n2 - 1), -ENOSPC);
	ck_assert_int_eq(px_pp_build(1, NULL, NULL, buf, 0), -ENOSPC);
}
END_TEST

/* A header given as bytes (v2 ones contain NULs). */
struct hdr {
	const char *name;
	const char *bytes;
	size_t len;
	int want;		/* px_pp_parse()'s result on all of it */
	int has_addr;		/* for valid ones */
	const char *want_src;
	const char *want_dst;
};

#define H(s) s, sizeof(s) - 1

#define BAD(name, s, err) { name, s, sizeof(s) - 1, err, 0, NULL, NULL }

#define V6F "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

/* The examples of doc/proxy-protocol.txt and a capture of HAProxy's v2. */
static const struct hdr valid[] = {
	{ "spec v1 tcp4",
	  H("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
	  47, 1, "192.168.0.1:56324", "192.168.0.11:443" },
	{ "spec v1 worst tcp4",
	  H("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"), 56,
	  1, "255.255.255.255:65535", "255.255.255.255:65535" },
	{ "spec v1 worst tcp6",
	  H("PROXY TCP6 " V6F " " V6F " 65535 65535\r\n"), 104, 1,
	  "[" V6F "]:65535", "[" V6F "]:65535" },
	{ "spec v1 unknown", H("PROXY UNKNOWN\r\n"), 15, 0, NULL, NULL },
	{ "spec v1 worst unknown",
	  H("PROXY UNKNOWN " V6F " " V6F " 65535 65535\r\n"), 107, 0, NULL,
	  NULL },
	{ "v1 tcp6 mapped literal",
	  H("PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n"), 35, 1,
	  "[::ffff:1.2.3.4]:1", "[::1]:2" },
	{ "v1 port zero", H("PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n"), 32, 1,
	  "1.2.3.4:0", "5.6.7.8:0" },
	{ "haproxy v2 tcp4",
	  H(SIG "\x21\x11\x00\x0c\xac\x13\x00\x01\xac\x13\x00\x03"
	      "\xa6\x52\x00\x50"), 28, 1, "172.19.0.1:42578", "172.19.0.3:80" },
	{ "v2 tcp6",
	  H(SIG "\x21\x21\x00\x24"
	      "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
	      "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"
	      "\x01\xbb\x00\x50"), 52, 1, "[2001:db8::1]:443",
	  "[2001:db8::2]:80" },
	{ "v2 local", H(SIG "\x20\x00\x00\x00"), 16, 0, NULL, NULL },
	{ "v2 local with tcp4 block",
	  H(SIG "\x20\x11\x00\x0c" "\x01\x02\x03\x04\x05\x06\x07\x08"
	      "\x00\x01\x00\x02"), 28, 0, NULL, NULL },
	{ "v2 proxy unspec", H(SIG "\x21\x00\x00\x00"), 16, 0, NULL, NULL },
	{ "v2 proxy unspec with a tlv", H(SIG "\x21\x00\x00\x05"
					  "\x04\x00\x02" "ab"), 21, 0, NULL,
	  NULL },
	{ "v2 tcp4 with tlvs",
	  H(SIG "\x21\x11\x00\x18" "\x0a\x00\x00\x01\x0a\x00\x00\x02"
	      "\x30\x39\x00\x50" "\x01\x00\x02" "h2" "\x04\x00\x00"
	      "\x02\x00\x01" "x"), 40, 1, "10.0.0.1:12345", "10.0.0.2:80" },
};

#define N_VALID (sizeof(valid) / sizeof(valid[0]))

START_TEST(valid_header_parses)
{
	const struct hdr *h = &valid[_i];
	struct px_pp_info info;

	memset(&info, 0xa5, sizeof(info));
	ck_assert_msg(px_pp_parse(h->bytes, h->len, &info) == h->want,
		      "%s: %d, expected %d", h->name,
		      px_pp_parse(h->bytes, h->len, &info), h->want);
	ck_assert_int_eq(info.version, h->bytes[0] == 'P' ? 1 : 2);
	ck_assert_int_eq(info.has_addr, h->has_addr);
	if (h->has_addr) {
		assert_addr(&info.src, h->want_src);
		assert_addr(&info.dst, h->want_dst);
	}
	assert_prefixes(h->bytes, h->len);
	assert_payload_kept(h->bytes, h->len);
}
END_TEST

/* A v2 header of `total` bytes: PROXY UNSPEC and one NOOP TLV. */
static size_t
v2_big(unsigned char *b, size_t total)
{
	memcpy(b, SIG "\x21\x00", 14);
	b[14] = (unsigned char)((total - 16) >> 8);
	b[15] = (unsigned char)(total - 16);
	b[16] = 0x04;
	b[17] = (unsigned char)((total - 19) >> 8);
	b[18] = (unsigned char)(total - 19);
	memset(b + 19, 0, total - 19);
	return total;
}

START_TEST(v2_unix_has_no_addr)
{
	unsigned char b[16 + 216 + 4];
	struct px_pp_info info;

	memset(b, 0, sizeof(b));
	memcpy(b, SIG "\x21\x31\x00\xd8", 16);
	memcpy(b + 16, "/run/client.sock", 16);
	memcpy(b + 16 + 108, "/run/proxy.sock", 15);
	memset(&info, 0xa5, sizeof(info));
	ck_assert_int_eq(px_pp_parse(b, 16 + 216, &info), 16 + 216);
	ck_assert_int_eq(info.version, 2);
	ck_assert_int_eq(info.has_addr, 0);
	assert_prefixes(b, 16 + 216);
	/* With an empty TLV of type 0x04 (NOOP) after the paths. */
	b[15] = 0xdb;
	b[16 + 216] = 0x04;
	ck_assert_int_eq(px_pp_parse(b, 16 + 219, &info), 16 + 219);
}
END_TEST

START_TEST(v2_size_limit)
{
	static unsigned char b[PX_PP_V2_MAX + 64];
	struct px_pp_info info;

	v2_big(b, PX_PP_V2_MAX);
	ck_assert_int_eq(px_pp_parse(b, PX_PP_V2_MAX, &info), PX_PP_V2_MAX);
	ck_assert_int_eq(px_pp_parse(b, 16, &info), 0);
	v2_big(b, PX_PP_V2_MAX + 1);
	/* Refused as soon as the length field is in. */
	ck_assert_int_eq(px_pp_parse(b, 15, &info), 0);
	ck_assert_int_eq(px_pp_parse(b, 16, &info), -E2BIG);
	ck_assert_int_eq(px_pp_parse(b, PX_PP_V2_MAX + 1, &info), -E2BIG);
	memcpy(b, SIG "\x21\x00\xff\xff", 16);
	ck_assert_int_eq(px_pp_parse(b, 16, &info), -E2BIG);
}
END_TEST

static const struct hdr bad[] = {
	BAD("not proxy", "GET / HTTP/1.1\r\n", -EINVAL),
	BAD("first byte", "X", -EINVAL),
	BAD("lower case", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL),
	BAD("bad v1 signature", "PROXZ", -EINVAL),
	BAD("no space after PROXY", "PROXYTCP4", -EINVAL),
	BAD("bad protocol", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
	    -EINVAL),
	BAD("udp", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL),
	BAD("double space after PROXY", "PROXY  TCP4", -EINVAL),
	BAD("double space after TCP4", "PROXY TCP4  1.2.3.4", -EINVAL),
	BAD("double space between addresses",
	    "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", -EINVAL),
	BAD("double space between ports",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", -EINVAL),
	BAD("trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
	    -EINVAL),
	BAD("tab", "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", -EINVAL),
	BAD("missing CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", -EINVAL),
	BAD("unknown missing CR", "PROXY UNKNOWN\n", -EINVAL),
	BAD("unknown LF inside", "PROXY UNKNOWN a\nb\r\n", -EINVAL),
	BAD("CR not followed by LF", "PROXY UNKNOWN\rx", -EINVAL),
	BAD("unknown glued", "PROXY UNKNOWNX\r\n", -EINVAL),
	BAD("missing dport", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
	    -EINVAL),
	BAD("port 65536", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
	    -EINVAL),
	BAD("port 99999", "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
	    -EINVAL),
	BAD("port six digits", "PROXY TCP4 1.2.3.4 5.6.7.8 1 000001\r\n",
	    -EINVAL),
	BAD("port leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
	    -EINVAL),
	BAD("port plus", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", -EINVAL),
	BAD("port minus", "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
	    -EINVAL),
	BAD("port hex", "PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n", -EINVAL),
	BAD("v6 address in TCP4", "PROXY TCP4 ::1 ::1 1 2\r\n", -EINVAL),
	BAD("v4 address in TCP6", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
	    -EINVAL),
	BAD("v4 octet 256", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
	    -EINVAL),
	BAD("v4 three octets", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
	    -EINVAL),
	BAD("v4 leading zero", "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
	    -EINVAL),
	BAD("v4 too long", "PROXY TCP4 1111.2222.3333.4444", -EINVAL),
	BAD("NUL in v4 address", "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n",
	    -EINVAL),
	BAD("NUL in v6 address", "PROXY TCP6 ::1\0\0 ::1 1 2\r\n", -EINVAL),
	BAD("NUL in port", "PROXY TCP4 1.2.3.4 5.6.7.8 1\0 2\r\n", -EINVAL),
	BAD("v6 zone", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", -EINVAL),
	BAD("v6 bracketed", "PROXY TCP6 [::1] [::1] 1 2\r\n", -EINVAL),
	BAD("v6 bad", "PROXY TCP6 1:::2 ::1 1 2\r\n", -EINVAL),
	BAD("v1 too long",
	    "PROXY UNKNOWN " V6F " " V6F " 65535 655350\r\n", -EINVAL),
	BAD("v1 107 bytes, no CRLF",
	    "PROXY UNKNOWN " V6F " " V6F " 65535 6553500", -EINVAL),
	BAD("v1 CR at 107, LF beyond",
	    "PROXY UNKNOWN " V6F " " V6F " 65535 655350\r", -EINVAL),
	BAD("v2 bad signature", "\r\n\r\n\0\r\nQUIX\n\x21\x00\x00\x00",
	    -EINVAL),
	BAD("v2 signature, v1 inside", "\r\nPROXY", -EINVAL),
	BAD("v2 version 1", SIG "\x11\x00\x00\x00", -EINVAL),
	BAD("v2 version 3", SIG "\x31\x00\x00\x00", -EINVAL),
	BAD("v2 version 0", SIG "\x01", -EINVAL),
	BAD("v2 command 2", SIG "\x22\x00\x00\x00", -EINVAL),
	BAD("v2 command 15", SIG "\x2f", -EINVAL),
	BAD("v2 family udp4", SIG "\x21\x12\x00\x0c", -EINVAL),
	BAD("v2 family udp6", SIG "\x21\x22\x00\x24", -EINVAL),
	BAD("v2 family 4", SIG "\x21\x41\x00\x00", -EINVAL),
	BAD("v2 family inet, transport unspec", SIG "\x21\x10\x00\x0c",
	    -EINVAL),
	BAD("v2 family unspec, transport stream", SIG "\x21\x01\x00\x00",
	    -EINVAL),
	BAD("v2 local, bad family", SIG "\x20\x55\x00\x00", -EINVAL),
	BAD("v2 tcp4 length 11", SIG "\x21\x11\x00\x0b", -EINVAL),
	BAD("v2 tcp4 length 0", SIG "\x21\x11\x00\x00", -EINVAL),
	BAD("v2 tcp6 length 12", SIG "\x21\x21\x00\x0c", -EINVAL),
	BAD("v2 unix length 215", SIG "\x21\x31\x00\xd7", -EINVAL),
	BAD("v2 local tcp4 length 4", SIG "\x20\x11\x00\x04", -EINVAL),
	BAD("v2 truncated tlv header", SIG "\x21\x00\x00\x02" "\x04\x00",
	    -EINVAL),
	BAD("v2 tlv value past the length",
	    SIG "\x21\x00\x00\x05" "\x04\x00\x03" "ab", -EINVAL),
	BAD("v2 second tlv truncated",
	    SIG "\x21\x11\x00\x11" "\x0a\x00\x00\x01\x0a\x00\x00\x02"
		  "\x30\x39\x00\x50" "\x04\x00\x00" "\x04\x00", -EINVAL),
	BAD("v2 too big", SIG "\x21\x00\x08\x01", -E2BIG),
	BAD("v2 largest length", SIG "\x21\x11\xff\xff", -E2BIG),
};

#define N_BAD (sizeof(bad) / sizeof(bad[0]))

START_TEST(malformed_header_is_refused)
{
	const struct hdr *h = &bad[_i];
	struct px_pp_info info;
	int r = px_pp_parse(h->bytes, h->len, &info);

	ck_assert_msg(r == h->want, "%s: %d, expected %d", h->name, r,
		      h->want);
}
END_TEST

/*
 * Refused as early as possible: the shortest prefix that gets the error
 * is no longer than the first byte that makes it wrong.  Checked here as
 * "once refused, every longer prefix is refused the same way".
 */
START_TEST(refusal_is_stable_as_bytes_arrive)
{
	const struct hdr *h = &bad[_i];
	struct px_pp_info info;
	int first = 0;
	size_t i;

	for (i = 1; i <= h->len; i++) {
		int r = px_pp_parse(h->bytes, i, &info);

		if (first == 0) {
			ck_assert_msg(r == 0 || r == h->want,
				      "%s: prefix %zu gives %d", h->name, i,
				      r);
			first = r;
		} else {
			ck_assert_msg(r == first, "%s: prefix %zu gives %d "
				      "after %d", h->name, i, r, first);
		}
	}
}
END_TEST

START_TEST(first_byte_decides)
{
	struct px_pp_info info;
	int c;

	for (c = 0; c < 256; c++) {
		unsigned char b = (unsigned char)c;
		int want = c == 'P' || c == '\r' ? 0 : -EINVAL;

		ck_assert_msg(px_pp_parse(&b, 1, &info) == want,
			      "first byte 0x%02x", c);
	}
	ck_assert_int_eq(px_pp_parse("", 0, &info), 0);
	/* A partial signature of either version needs more. */
	ck_assert_int_eq(px_pp_parse("PRO", 3, &info), 0);
	ck_assert_int_eq(px_pp_parse(SIG, 7, &info), 0);
}
END_TEST

START_TEST(v1_cut_at_the_limit_needs_more_below_it)
{
	static const char line[] =
		"PROXY UNKNOWN " V6F " " V6F " 65535 65535\r\n";
	struct px_pp_info info;

	ck_assert_int_eq(sizeof(line) - 1, PX_PP_V1_MAX);
	ck_assert_int_eq(px_pp_parse(line, PX_PP_V1_MAX - 1, &info), 0);
	ck_assert_int_eq(px_pp_parse(line, PX_PP_V1_MAX, &info),
			 PX_PP_V1_MAX);
}
END_TEST

static Suite *
proxy_pp_suite(void)
{
	Suite *s = suite_create("proxy/pp");
	TCase *tc;

	tc = t_tcase(s, "build", T_TIMEOUT);
	tcase_add_loop_test(tc, build_then_parse_round_trips, 0,
			    (int)(sizeof(trips) / sizeof(trips[0])));
	tcase_add_test(tc, build_mixed_families_is_unknown_or_local);
	tcase_add_test(tc, build_checks_version_and_room);
	tc = t_tcase(s, "parse", T_TIMEOUT);
	tcase_add_loop_test(tc, valid_header_parses, 0, (int)N_VALID);
	tcase_add_test(tc, v2_unix_has_no_addr);
	tcase_add_test(tc, v2_size_limit);
	tcase_add_test(tc, first_byte_decides);
	tcase_add_test(tc, v1_cut_at_the_limit_needs_more_below_it);
	tc = t_tcase(s, "malformed", T_TIMEOUT);
	tcase_add_loop_test(tc, malformed_header_is_refused, 0, (int)N_BAD);
	tcase_add_loop_test(tc, refusal_is_stable_as_bytes_arrive, 0,
			    (int)N_BAD);
	return s;
}

int
main(void)
{
	return t_main(proxy_pp_suite());
}

/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol, versions 1 and 2 (HAProxy's doc/proxy-protocol.txt):
 * an incremental, strict parser and a builder.  Pure libc, no allocation.
 *
 * Strictness, beyond what the spec requires of a receiver:
 *   - v1: exactly one space between fields; ports are 1 to 5 decimal
 *     digits, 0..65535, no sign and no leading zero ("0" itself is fine,
 *     "080" is not: a sender formatting with %u never writes one);
 *     addresses are what inet_pton() accepts for the family (so TCP4
 *     octets have no leading zeros either, and TCP6 takes v6 literals
 *     only, "::ffff:a.b.c.d" included).  "PROXY UNKNOWN" is followed by
 *     CRLF or by a space and anything without CR or LF up to CRLF.  A LF
 *     without its CR, or a CR followed by anything but LF, is invalid.
 *   - v2: the version nibble is 2, the command LOCAL or PROXY, and the
 *     family byte one of UNSPEC (0x00), TCP over IPv4 (0x11), TCP over
 *     IPv6 (0x21) or UNIX stream (0x31), for LOCAL too (the spec lets a
 *     receiver ignore LOCAL's family; we do not: our own senders and
 *     HAProxy's write UNSPEC there).  UDP is refused: this is a TCP proxy.
 *     The length covers the family's address block, and what follows it
 *     must be a well-formed run of TLVs (each a 3-byte header and a value
 *     inside the length).  TLV contents are not interpreted.
 *
 * Early refusal: a byte that no valid header can have at its position
 * gives -EINVAL as soon as it arrives (the first byte already decides
 * between 'P' for v1 and CR for v2), so a client that does not speak the
 * protocol is refused without waiting for a timeout.  The one exception is
 * the text of a v1 address, which is judged by inet_pton() when the space
 * after it arrives; its characters and its length are checked on the way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pp.h"

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

#define V2_HDR		16	/* signature, ver_cmd, fam, len */
#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1
#define V2_FAM_UNSPEC	0x00
#define V2_FAM_TCP4	0x11
#define V2_FAM_TCP6	0x21
#define V2_FAM_UNIX	0x31
#define V2_ADDR_TCP4	12	/* 2 x 4 address bytes, 2 x 2 port bytes */
#define V2_ADDR_TCP6	36	/* 2 x 16, 2 x 2 */
#define V2_ADDR_UNIX	216	/* 2 x 108 */
#define V2_TLV_HDR	3	/* type, length (big-endian 16 bits) */

/*
 * A cursor over the v1 line.  `end` is the last byte we may look at: the
 * input's end, or the 107th byte if more than that was given.  `full`
 * says the input reaches the 107-byte limit, so running into `end` means
 * the line is too long rather than incomplete.
 */
struct v1_cur {
	const char *p;
	const char *end;
	bool full;
};

/* Running out of input: incomplete (0) unless the line limit is reached. */
static int
v1_more(const struct v1_cur *c)
{
	return c->full ? -EINVAL : 0;
}

/*
 * Match the literal `s` at the cursor.  Returns 1 and advances on a
 * match, 0 (need more) or -EINVAL.
 */
static int
v1_lit(struct v1_cur *c, const char *s)
{
	for (; *s; s++, c->p++) {
		if (c->p == c->end)
			return v1_more(c);
		if (*c->p != *s)
			return -EINVAL;
	}
	return 1;
}

/*
 * Read an address of `af` ending in a space into `out` (an in_addr or
 * in6_addr).  Returns 1 and advances past the space, 0 or -EINVAL.
 */
static int
v1_addr(struct v1_cur *c, int af, void *out)
{
	size_t max = af == AF_INET ? INET_ADDRSTRLEN - 1 : INET6_ADDRSTRLEN - 1;
	const char *set = af == AF_INET ? "0123456789." :
		"0123456789abcdefABCDEF:.";
	char text[INET6_ADDRSTRLEN];
	size_t n = 0;

	for (;;) {
		if (c->p == c->end)
			return v1_more(c);
		if (*c->p == ' ')
			break;
		/* strchr() finds the terminator too: refuse NUL first. */
		if (n == max || *c->p == '\0' || !strchr(set, *c->p))
			return -EINVAL;
		text[n++] = *c->p++;
	}
	if (n == 0)
		return -EINVAL;
	text[n] = '\0';
	if (inet_pton(af, text, out) != 1)
		return -EINVAL;
	c->p++;
	return 1;
}

/*
 * Read a port ending in `stop` (not consumed) into `*port`.  Returns 1,
 * 0 or -EINVAL; a sixth digit, a value over 65535 or a leading zero is
 * refused when it arrives.
 */
static int
v1_port(struct v1_cur *c, char stop, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = 0;

	for (;;) {
		if (c->p == c->end)
			return v1_more(c);
		if (*c->p == stop && n > 0)
			break;
		if (*c->p < '0' || *c->p > '9')
			return -EINVAL;
		if (n == 1 && v == 0)
			return -EINVAL;		/* leading zero */
		v = v * 10 + (unsigned long)(*c->p - '0');
		if (++n > 5 || v > 65535)
			return -EINVAL;
		c->p++;
	}
	*port = (uint16_t)v;
	return 1;
}

static void
set_in(struct sockaddr_storage *ss, const struct in_addr *a, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	sin->sin_family = AF_INET;
	sin->sin_addr = *a;
	sin->sin_port = htons(port);
}

static void
set_in6(struct sockaddr_storage *ss, const struct in6_addr *a, uint16_t port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = *a;
	sin6->sin6_port = htons(port);
}

/* "PROXY UNKNOWN" seen: the rest of the line, then CRLF. */
static int
v1_unknown(struct v1_cur *c, const char *start)
{
	if (c->p == c->end)
		return v1_more(c);
	if (*c->p != '\r' && *c->p != ' ')
		return -EINVAL;
	for (; c->p < c->end && *c->p != '\r'; c->p++)
		if (*c->p == '\n')
			return -EINVAL;
	if (c->p == c->end)
		return v1_more(c);
	c->p++;
	if (c->p == c->end)
		return v1_more(c);
	if (*c->p != '\n')
		return -EINVAL;
	c->p++;
	return (int)(c->p - start);
}

#define V1_STEP(expr)                                                          \
	do {                                                                   \
		int r_ = (expr);                                               \
		if (r_ <= 0)                                                   \
			return r_;                                             \
	} while (0)

static int
parse_v1(const char *buf, size_t len, struct px_pp_info *info)
{
	struct v1_cur c = {
		.p = buf,
		.end = buf + (len < PX_PP_V1_MAX ? len : PX_PP_V1_MAX),
		.full = len >= PX_PP_V1_MAX,
	};
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} src, dst;
	uint16_t sport, dport;
	int af;
	int r;

	V1_STEP(v1_lit(&c, "PROXY "));
	/* "TCP4 ", "TCP6 " or "UNKNOWN": they differ at the first byte. */
	if (c.p == c.end)
		return v1_more(&c);
	if (*c.p == 'U') {
		V1_STEP(v1_lit(&c, "UNKNOWN"));
		r = v1_unknown(&c, buf);
		if (r > 0) {
			memset(info, 0, sizeof(*info));
			info->version = 1;
		}
		return r;
	}
	V1_STEP(v1_lit(&c, "TCP"));
	if (c.p == c.end)
		return v1_more(&c);
	if (*c.p == '4')
		af = AF_INET;
	else if (*c.p == '6')
		af = AF_INET6;
	else
		return -EINVAL;
	c.p++;
	V1_STEP(v1_lit(&c, " "));
	V1_STEP(v1_addr(&c, af, &src));
	V1_STEP(v1_addr(&c, af, &dst));
	V1_STEP(v1_port(&c, ' ', &sport));
	c.p++;
	V1_STEP(v1_port(&c, '\r', &dport));
	V1_STEP(v1_lit(&c, "\r\n"));

	memset(info, 0, sizeof(*info));
	info->version = 1;
	info->has_addr = 1;
	if (af == AF_INET) {
		set_in(&info->src, &src.v4, sport);
		set_in(&info->dst, &dst.v4, dport);
	} else {
		set_in6(&info->src, &src.v6, sport);
		set_in6(&info->dst, &dst.v6, dport);
	}
	return (int)(c.p - buf);
}

static uint16_t
get_be16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int
parse_v2(const unsigned char *b, size_t len, struct px_pp_info *info)
{
	size_t i, n, total, addrlen, off;
	unsigned cmd;

	n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
	for (i = 0; i < n; i++)
		if (b[i] != v2_sig[i])
			return -EINVAL;
	if (len <= 12)
		return 0;
	if (b[12] >> 4 != 2)
		return -EINVAL;
	cmd = b[12] & 0xf;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return -EINVAL;
	if (len <= 13)
		return 0;
	switch (b[13]) {
	case V2_FAM_UNSPEC:
		addrlen = 0;
		break;
	case V2_FAM_TCP4:
		addrlen = V2_ADDR_TCP4;
		break;
	case V2_FAM_TCP6:
		addrlen = V2_ADDR_TCP6;
		break;
	case V2_FAM_UNIX:
		addrlen = V2_ADDR_UNIX;
		break;
	default:
		return -EINVAL;
	}
	if (len < V2_HDR)
		return 0;
	total = V2_HDR + (size_t)get_be16(b + 14);
	if (total < V2_HDR + addrlen)
		return -EINVAL;
	if (total > PX_PP_V2_MAX)
		return -E2BIG;
	if (len < total)
		return 0;

	/* The TLVs after the addresses: each header and value in bounds. */
	for (off = V2_HDR + addrlen; off < total;) {
		if (total - off < V2_TLV_HDR)
			return -EINVAL;
		n = V2_TLV_HDR + (size_t)get_be16(b + off + 1);
		if (total - off < n)
			return -EINVAL;
		off += n;
	}

	memset(info, 0, sizeof(*info));
	info->version = 2;
	if (cmd == V2_CMD_PROXY && b[13] == V2_FAM_TCP4) {
		struct in_addr s, d;

		memcpy(&s, b + 16, 4);
		memcpy(&d, b + 20, 4);
		set_in(&info->src, &s, get_be16(b + 24));
		set_in(&info->dst, &d, get_be16(b + 26));
		info->has_addr = 1;
	} else if (cmd == V2_CMD_PROXY && b[13] == V2_FAM_TCP6) {
		struct in6_addr s, d;

		memcpy(&s, b + 16, 16);
		memcpy(&d, b + 32, 16);
		set_in6(&info->src, &s, get_be16(b + 48));
		set_in6(&info->dst, &d, get_be16(b + 50));
		info->has_addr = 1;
	}
	return (int)total;
}

int
px_pp_parse(const void *buf, size_t len, struct px_pp_info *info)
{
	const unsigned char *b = buf;

	if (len == 0)
		return 0;
	if (b[0] == 'P')
		return parse_v1(buf, len, info);
	if (b[0] == v2_sig[0])
		return parse_v2(b, len, info);
	return -EINVAL;
}

/*
 * The family a sockaddr is sent as, AF_UNSPEC for one we cannot send;
 * an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack listener
 * reports for an IPv4 peer) counts as AF_INET, and `*a4` gets its IPv4
 * address.  `*a6` is set for every AF_INET6 address, mapped or not (see
 * px_pp_build()).  `*port` is in network order.
 */
static int
send_family(const struct sockaddr *sa, struct in_addr *a4,
	    const struct in6_addr **a6, uint16_t *port)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	if (!sa)
		return AF_UNSPEC;
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)sa;
		*a4 = sin->sin_addr;
		*port = sin->sin_port;
		return AF_INET;
	}
	if (sa->sa_family != AF_INET6)
		return AF_UNSPEC;
	sin6 = (const struct sockaddr_in6 *)sa;
	*port = sin6->sin6_port;
	*a6 = &sin6->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		memcpy(a4, &sin6->sin6_addr.s6_addr[12], 4);
		return AF_INET;
	}
	return AF_INET6;
}

static void
put_be16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

int
px_pp_build(int version, const struct sockaddr *src,
	    const struct sockaddr *dst, void *buf, size_t cap)
{
	struct in_addr s4 = { 0 }, d4 = { 0 };
	const struct in6_addr *s6 = NULL, *d6 = NULL;
	uint16_t sport = 0, dport = 0;
	unsigned char h[V2_HDR + V2_ADDR_TCP6];
	char line[PX_PP_V1_MAX + 1];
	int sf, df, af;
	size_t n;

	if (version != 1 && version != 2)
		return -EINVAL;
	sf = send_family(src, &s4, &s6, &sport);
	df = send_family(dst, &d4, &d6, &dport);
	/*
	 * Both IPv4-mapped: TCP4 / AF_INET.  One mapped, one real IPv6:
	 * both go out as IPv6, the mapped one as ::ffff:a.b.c.d.  IPv4
	 * with a real IPv6, or anything else: UNKNOWN / LOCAL.
	 */
	if (sf == df)
		af = sf;
	else if (src && dst && src->sa_family == AF_INET6 &&
		 dst->sa_family == AF_INET6)
		af = AF_INET6;
	else
		af = AF_UNSPEC;

	if (version == 1) {
		char st[INET6_ADDRSTRLEN], dt[INET6_ADDRSTRLEN];
		int r;

		if (af == AF_INET) {
			inet_ntop(AF_INET, &s4, st, sizeof(st));
			inet_ntop(AF_INET, &d4, dt, sizeof(dt));
		} else if (af == AF_INET6) {
			inet_ntop(AF_INET6, s6, st, sizeof(st));
			inet_ntop(AF_INET6, d6, dt, sizeof(dt));
		}
		if (af == AF_UNSPEC)
			r = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
		else
			r = snprintf(line, sizeof(line),
				     "PROXY TCP%c %s %s %u %u\r\n",
				     af == AF_INET ? '4' : '6', st, dt,
				     ntohs(sport), ntohs(dport));
		/* The longest (two full v6 literals) is 104 bytes. */
		if (r < 0 || (size_t)r > PX_PP_V1_MAX)
			return -EINVAL;
		n = (size_t)r;
		if (n > cap)
			return -ENOSPC;
		memcpy(buf, line, n);
		return (int)n;
	}

	memcpy(h, v2_sig, sizeof(v2_sig));
	if (af == AF_INET) {
		h[12] = 0x20 | V2_CMD_PROXY;
		h[13] = V2_FAM_TCP4;
		memcpy(h + 16, &s4, 4);
		memcpy(h + 20, &d4, 4);
		memcpy(h + 24, &sport, 2);
		memcpy(h + 26, &dport, 2);
		n = V2_HDR + V2_ADDR_TCP4;
	} else if (af == AF_INET6) {
		h[12] = 0x20 | V2_CMD_PROXY;
		h[13] = V2_FAM_TCP6;
		memcpy(h + 16, s6, 16);
		memcpy(h + 32, d6, 16);
		memcpy(h + 48, &sport, 2);
		memcpy(h + 50, &dport, 2);
		n = V2_HDR + V2_ADDR_TCP6;
	} else {
		h[12] = 0x20 | V2_CMD_LOCAL;
		h[13] = V2_FAM_UNSPEC;
		n = V2_HDR;
	}
	put_be16(h + 14, (uint16_t)(n - V2_HDR));
	if (n > cap)
		return -ENOSPC;
	memcpy(buf, h, n);
	return (int)n;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the PROXY protocol parser (cmd/weft-proxy/pp.c),
 * built and run by `make fuzz`.  Besides "no crash, no sanitizer report"
 * it checks the parser's contract on every input:
 *   - the result is a length, 0, -EINVAL or -E2BIG;
 *   - a length is within the input and PX_PP_MAX, the header alone
 *     parses to the same length and one byte less of it needs more;
 *   - "need more" is only said below the size limit;
 *   - one byte less of a refused input needs more or gets the same
 *     error, and one byte less of an incomplete one is incomplete;
 *   - a header with addresses, rebuilt as v1 and as v2, parses back to
 *     the same addresses (an IPv4-mapped pair comes back as IPv4, as
 *     px_pp_build() documents), and to the very same bytes when the
 *     input was in the form we write ourselves (canonical()).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/weft-proxy/pp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

/* An address as (family, 16 address bytes, port), mapped v6 as v4. */
struct norm {
	int af;
	unsigned char a[16];
	uint16_t port;
};

static struct norm
norm(const struct sockaddr_storage *ss)
{
	struct norm n;

	memset(&n, 0, sizeof(n));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;

		n.af = AF_INET;
		memcpy(n.a, &s->sin_addr, 4);
		n.port = s->sin_port;
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;

		n.port = s->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
			n.af = AF_INET;
			memcpy(n.a, &s->sin6_addr.s6_addr[12], 4);
		} else {
			n.af = AF_INET6;
			memcpy(n.a, &s->sin6_addr, 16);
		}
	} else {
		n.af = -1;
	}
	return n;
}

static int
same(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
	struct norm a = norm(x), b = norm(y);

	return a.af == b.af && a.port == b.port &&
	       memcmp(a.a, b.a, sizeof(a.a)) == 0;
}

/*
 * The header we would build for `info` is byte for byte the one parsed
 * when that one is canonical: v1 TCP4 (inet_pton() takes only the dotted
 * quad inet_ntop() writes), v2 without TLVs or IPv4-mapped addresses.
 */
static int
canonical(const uint8_t *data, int len, const struct px_pp_info *info)
{
	const struct sockaddr_in6 *s6 = (const void *)&info->src;
	const struct sockaddr_in6 *d6 = (const void *)&info->dst;

	if (info->version == 1)
		return len > 10 && memcmp(data, "PROXY TCP4", 10) == 0;
	if (info->src.ss_family == AF_INET6 &&
	    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ||
	     IN6_IS_ADDR_V4MAPPED(&d6->sin6_addr)))
		return 0;
	return len == (info->src.ss_family == AF_INET ? 16 + 12 : 16 + 36);
}

static void
rebuild(const struct px_pp_info *info, int version, const uint8_t *data,
	int len)
{
	unsigned char buf[PX_PP_MAX];
	struct px_pp_info again;
	int n, r;

	n = px_pp_build(version, (const struct sockaddr *)&info->src,
			(const struct sockaddr *)&info->dst, buf, sizeof(buf));
	CHECK(n > 0 && n <= PX_PP_MAX);
	r = px_pp_parse(buf, (size_t)n, &again);
	CHECK(r == n);
	CHECK(again.version == version);
	CHECK(again.has_addr == 1);
	CHECK(same(&info->src, &again.src));
	CHECK(same(&info->dst, &again.dst));
	if (version == info->version && canonical(data, len, info))
		CHECK(n == len && memcmp(buf, data, (size_t)n) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct px_pp_info info, again;
	int r;

	r = px_pp_parse(data, size, &info);
	CHECK(r >= 0 || r == -EINVAL || r == -E2BIG);
	if (r == 0)
		CHECK(size < PX_PP_MAX);
	/* A byte more never turns "need more" or a refusal into another. */
	if (r <= 0 && size > 0) {
		int p = px_pp_parse(data, size - 1, &again);

		CHECK(p == 0 || p == r);
		return 0;
	}
	if (r <= 0)
		return 0;

	CHECK((size_t)r <= size);
	CHECK(r <= PX_PP_MAX);
	CHECK(info.version == (data[0] == 'P' ? 1 : 2));
	CHECK(info.has_addr == 0 || info.has_addr == 1);
	CHECK(px_pp_parse(data, (size_t)r, &again) == r);
	CHECK(px_pp_parse(data, (size_t)r - 1, &again) == 0);
	if (info.has_addr) {
		rebuild(&info, 1, data, r);
		rebuild(&info, 2, data, r);
	}
	return 0;
}

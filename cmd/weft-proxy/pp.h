/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol, versions 1 and 2 (HAProxy's
 * doc/proxy-protocol.txt): parse a header a client (a load balancer in
 * front of us) sends first, and build the one we send to an upstream.
 *
 * The parser is incremental and strict: feed it the bytes received so far;
 * it says "need more", "done, the header is N bytes", or "malformed".  It
 * never reads past what it was given and never looks past the header's
 * own length, so whatever follows (the client's first bytes) stays for
 * the proxy to forward.  Pure functions, no allocation, any thread.
 */
#ifndef WEFT_PROXY_PP_H
#define WEFT_PROXY_PP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* v1 is at most 107 bytes; v2 is 16 + up to 65535, which we cap. */
#define PX_PP_V1_MAX 107
#define PX_PP_V2_MAX (16 + 2048)	/* larger v2 headers are refused */
#define PX_PP_MAX PX_PP_V2_MAX

/* What a header says. */
struct px_pp_info {
	int version;		/* 1 or 2 */
	/*
	 * 1: the addresses below are the real client's (PROXY TCP4/TCP6,
	 * v2 PROXY command with AF_INET/AF_INET6).  0: LOCAL (v2) or
	 * UNKNOWN (v1): keep the connection's own addresses.
	 */
	int has_addr;
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
};

/*
 * Parse the start of a connection.  Returns the header's length (> 0)
 * with `*info` filled, 0 when `len` bytes are a valid prefix and more are
 * needed, -EINVAL when the bytes cannot be a PROXY header (a wrong
 * signature, a bad field, a v1 line longer than 107 bytes without CRLF),
 * -E2BIG for a v2 header longer than PX_PP_V2_MAX.
 */
int px_pp_parse(const void *buf, size_t len, struct px_pp_info *info);

/*
 * Build a header for `version` (1 or 2) carrying `src` -> `dst` (the
 * client's address and the address it connected to).  Families other
 * than AF_INET/AF_INET6, or differing families, give v1 "PROXY UNKNOWN"
 * and a v2 LOCAL header.  Returns the length written (<= PX_PP_MAX), or
 * -ENOSPC when `cap` is too small, -EINVAL for a bad version.
 */
int px_pp_build(int version, const struct sockaddr *src,
		const struct sockaddr *dst, void *buf, size_t cap);

#endif

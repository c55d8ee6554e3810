/* SPDX-License-Identifier: MIT */
/*
 * Small helpers of the public API that belong to no object: the names of
 * error codes (weft_strerror) and relative deadlines (weft_after).  Pure
 * functions: any thread, no state.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "sched/park.h"

const char *
weft_strerror(int err)
{
	const char *s;

	if (err == 0)
		return "Success";
	if (err == INT32_MIN)
		return "Unknown error";
	if (err < 0)
		err = -err;
	/* glibc's table, thread-safe and never a shared buffer. */
	s = strerrordesc_np(err);
	return s ? s : "Unknown error";
}

int64_t
weft_after(int64_t ns)
{
	int64_t now = weft_now();

	if (ns > 0 && now > INT64_MAX - ns)
		return INT64_MAX;	/* never reached, as weft_sleep's */
	if (ns < 0 && now + ns < 0)
		return 0;	/* long past; never WEFT_DEADLINE_NONE */
	return now + ns;
}

int64_t
weft_after_ms(int64_t ms)
{
	if (ms > INT64_MAX / WEFT_MSEC)
		return INT64_MAX;
	if (ms < -(INT64_MAX / WEFT_MSEC))
		return 0;
	return weft_after(ms * WEFT_MSEC);
}

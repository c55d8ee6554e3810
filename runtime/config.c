/* SPDX-License-Identifier: MIT */
/*
 * Configuration: the one place that reads weft's environment variables.
 *
 * weft_run() hands its struct weft_config here and gets back a resolved
 * struct weft__config: for each setting, the field if it is non-zero, else
 * the environment variable if it is set, else the default.  A field out of
 * range is the caller's error (-EINVAL, nothing started), named in the
 * log.  A malformed WEFT_WORKERS, WEFT_SLOW_MS, WEFT_DEADLOCK or
 * WEFT_DUMP_SIGNAL fails the run the same way: a program that asked for a
 * worker count or a diagnostic and silently got another would be measured
 * or debugged wrong.  A malformed WEFT_POOL_THREADS or WEFT_FAULT_ALLOC is
 * named and its default used.
 *
 * The default blocking pool can be used before any run (weft_blocking()
 * from a plain thread), so it asks weft__config_pool_threads() for its
 * size when it is made.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

#define WORKERS_MAX 1024
#define SLOW_MS_DEFAULT 100
#define POOL_THREADS_DEFAULT 4
#define POOL_THREADS_MAX 1024
/* weft_config.slow_ms above this would overflow in nanoseconds. */
#define SLOW_MS_MAX (INT64_MAX / WEFT_MSEC)
#define STACK_GUARD_MAX ((size_t)1 << 30)

/*
 * The layout weft_config had when it held only the first four fields:
 * the fields added since came out of reserved_, so the size and the old
 * offsets must not move (the ABI).
 */
struct config_v0 {
	int workers;
	size_t stack_size;
	long guarded_stacks;
	const char *io_backend;
	long reserved_[8];
};
_Static_assert(sizeof(struct weft_config) == sizeof(struct config_v0),
	       "struct weft_config changed size");
_Static_assert(offsetof(struct weft_config, io_backend) ==
		       offsetof(struct config_v0, io_backend) &&
	       offsetof(struct weft_config, slow_ms) ==
		       offsetof(struct config_v0, reserved_),
	       "struct weft_config moved a field");
/* The log hook took two of the four longs left (LP64: a pointer each). */
_Static_assert(sizeof(void (*)(void *, const char *)) == sizeof(long) &&
	       offsetof(struct weft_config, log) ==
		       offsetof(struct config_v0, reserved_[4]) &&
	       offsetof(struct weft_config, reserved_) ==
		       offsetof(struct config_v0, reserved_[6]),
	       "struct weft_config's log hook is not where reserved_ was");

/*
 * The configuration this thread is resolving says where its messages go
 * (before weft_run owns the run and sets the log); outside a resolve
 * (the default pool sizing itself), the log.
 */
static __thread const struct weft_config *log_cfg;

static void
env_malformed(const char *name, const char *value, const char *what)
{
	if (log_cfg)
		weft__log_to(log_cfg->log, log_cfg->log_arg,
			     "weft: %s=%s: %s; using the default\n", name,
			     value, what);
	else
		weft__log("weft: %s=%s: %s; using the default\n", name,
			  value, what);
}

/* The run is refused (-EINVAL) for this value: say which and why. */
static int
refused(const char *name, const char *value, const char *what)
{
	weft__log_to(log_cfg->log, log_cfg->log_arg,
		     "weft: %s=%s: %s; weft_run() refused (-EINVAL)\n", name,
		     value, what);
	return -EINVAL;
}

static int
refused_field(const char *name, long long v, const char *what)
{
	char num[32];

	snprintf(num, sizeof(num), "%lld", v);
	return refused(name, num, what);
}

/* A decimal integer in [lo, hi] from the whole of `s`, else -1. */
static long long
parse_range(const char *s, long long lo, long long hi)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end || errno || v < lo || v > hi)
		return -1;
	return v;
}

/* "SIGUSR1", "USR1" or a number; 0 if it names no catchable signal. */
static int
parse_signal(const char *name)
{
	long long n = parse_range(name, 1, NSIG - 1);

	if (n > 0)
		return n == SIGKILL || n == SIGSTOP ? 0 : (int)n;
	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (int i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);

		if (abbrev && strcmp(abbrev, name) == 0)
			return i == SIGKILL || i == SIGSTOP ? 0 : i;
	}
	return 0;
}

static const char *
env(const char *name)
{
	const char *e = getenv(name);

	return e && *e ? e : NULL;
}

static int
resolve_workers(int field)
{
	const char *e;
	cpu_set_t set;
	long long n;

	if (field)
		return field;
	if ((e = env("WEFT_WORKERS")) != NULL) {
		n = parse_range(e, 1, WORKERS_MAX);
		return n < 0 ? refused("WEFT_WORKERS", e,
				       "not a number in 1..1024") : (int)n;
	}
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set))
		return CPU_COUNT(&set);
	return 1;
}

/* Nanoseconds (0: off) into *ns, or -EINVAL. */
static int
resolve_slow_ns(long field, int64_t *ns)
{
	const char *e;
	long long ms = SLOW_MS_DEFAULT;

	if (field) {
		*ns = field < 0 ? 0 : (int64_t)field * WEFT_MSEC;
		return 0;
	}
	if ((e = env("WEFT_SLOW_MS")) != NULL) {
		long long v = parse_range(e, 0, SLOW_MS_MAX);

		if (v < 0)
			return refused("WEFT_SLOW_MS", e,
				       "not a number of milliseconds");
		ms = v;
	}
	*ns = (int64_t)ms * WEFT_MSEC;
	return 0;
}

static int
resolve_deadlock(int field)
{
	const char *e;

	if (field)
		return field;
	if ((e = env("WEFT_DEADLOCK")) == NULL || strcmp(e, "abort") == 0)
		return WEFT_DEADLOCK_ABORT;
	if (strcmp(e, "report") == 0)
		return WEFT_DEADLOCK_REPORT;
	if (strcmp(e, "off") == 0 || strcmp(e, "0") == 0)
		return WEFT_DEADLOCK_OFF;
	return refused("WEFT_DEADLOCK", e, "not abort, report or off");
}

static int
resolve_dump_signal(int field)
{
	const char *e;
	int sig;

	if (field)
		return field < 0 ? 0 : field;
	if ((e = env("WEFT_DUMP_SIGNAL")) == NULL)
		return 0;
	sig = parse_signal(e);
	if (!sig)
		return refused("WEFT_DUMP_SIGNAL", e,
			       "not a catchable signal");
	return sig;
}

/*
 * WEFT_FAULT_ALLOC=N, a test hook (io/base.h, weft__fail_alloc()): every
 * Nth guarded allocation fails.  No weft_config field: programs do not ask
 * for failures, test harnesses set it from outside.  0 or unset: off.
 */
static unsigned int
resolve_fault_alloc(void)
{
	const char *e = env("WEFT_FAULT_ALLOC");
	long long n;

	if (!e)
		return 0;
	n = parse_range(e, 0, UINT32_MAX);
	if (n < 0) {
		env_malformed("WEFT_FAULT_ALLOC", e,
			      "not a number of allocations");
		return 0;
	}
	return (unsigned int)n;
}

int
weft__config_pool_threads(void)
{
	const char *e = env("WEFT_POOL_THREADS");
	long long n;

	if (!e)
		return POOL_THREADS_DEFAULT;
	n = parse_range(e, 1, POOL_THREADS_MAX);
	if (n < 0) {
		env_malformed("WEFT_POOL_THREADS", e,
			      "not a number in 1..1024");
		return POOL_THREADS_DEFAULT;
	}
	return (int)n;
}

/* Every field of `cfg` in range, or -EINVAL with the first one named. */
static int
check_fields(const struct weft_config *cfg)
{
	for (size_t i = 0; i < sizeof(cfg->reserved_) / sizeof(long); i++)
		if (cfg->reserved_[i])
			return refused_field("weft_config.reserved_",
					     cfg->reserved_[i], "must be zero");
	if (cfg->workers < 0 || cfg->workers > WORKERS_MAX)
		return refused_field("weft_config.workers", cfg->workers,
				     "not in 0..1024");
	if (cfg->guarded_stacks < -1)
		return refused_field("weft_config.guarded_stacks",
				     cfg->guarded_stacks, "below -1");
	if (cfg->stack_guard > STACK_GUARD_MAX)
		return refused_field("weft_config.stack_guard",
				     (long long)cfg->stack_guard,
				     "above 1 GiB");
	if (cfg->slow_ms < -1 || cfg->slow_ms > SLOW_MS_MAX)
		return refused_field("weft_config.slow_ms", cfg->slow_ms,
				     "not -1, 0 or a number of milliseconds");
	if (cfg->deadlock < 0 || cfg->deadlock > WEFT_DEADLOCK_OFF)
		return refused_field("weft_config.deadlock", cfg->deadlock,
				     "not an enum weft_deadlock_mode");
	if (cfg->dump_signal < -1 || cfg->dump_signal >= NSIG ||
	    cfg->dump_signal == SIGKILL || cfg->dump_signal == SIGSTOP)
		return refused_field("weft_config.dump_signal",
				     cfg->dump_signal,
				     "not -1, 0 or a catchable signal");
	if (cfg->pool_threads < 0 || cfg->pool_threads > POOL_THREADS_MAX)
		return refused_field("weft_config.pool_threads",
				     cfg->pool_threads, "not in 0..1024");
	if (!cfg->log && cfg->log_arg)
		return refused("weft_config.log_arg", "set",
			       "without weft_config.log");
	return 0;
}

static int resolve(const struct weft_config *cfg, struct weft__config *out);

int
weft__config_resolve(const struct weft_config *cfg, struct weft__config *out)
{
	static const struct weft_config zero;
	int ret;

	if (!cfg)
		cfg = &zero;
	log_cfg = cfg;
	ret = resolve(cfg, out);
	log_cfg = NULL;
	return ret;
}

static int
resolve(const struct weft_config *cfg, struct weft__config *out)
{
	int64_t slow_ns;
	int n, deadlock, dump_signal, ret;

	ret = check_fields(cfg);
	if (ret < 0)
		return ret;
	n = resolve_workers(cfg->workers);
	if (n < 0)
		return n;
	ret = resolve_slow_ns(cfg->slow_ms, &slow_ns);
	if (ret < 0)
		return ret;
	deadlock = resolve_deadlock(cfg->deadlock);
	if (deadlock < 0)
		return deadlock;
	dump_signal = resolve_dump_signal(cfg->dump_signal);
	if (dump_signal < 0)
		return dump_signal;
	*out = (struct weft__config){
		.workers = n,
		.stack_size = cfg->stack_size,
		.guarded_stacks = cfg->guarded_stacks,
		.stack_guard = cfg->stack_guard,
		.io_backend = cfg->io_backend && *cfg->io_backend ?
				      cfg->io_backend : env("WEFT_IO"),
		.slow_ns = slow_ns,
		.deadlock = deadlock,
		.dump_signal = dump_signal,
		.pool_threads = cfg->pool_threads ?
					(int)cfg->pool_threads :
					weft__config_pool_threads(),
		.fault_alloc = resolve_fault_alloc(),
		.log = cfg->log,
		.log_arg = cfg->log_arg,
	};
	return 0;
}

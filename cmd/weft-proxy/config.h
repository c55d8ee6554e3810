/* SPDX-License-Identifier: MIT */
/*
 * weft-proxy's configuration: the data model and the parser's interface.
 *
 * A configuration is plain data, built once by px_config_load() (a file)
 * or px_config_args() (the --listen/--upstream command line) and then only
 * read: the supervisor's master builds it, every worker process inherits
 * it through fork(), and a reload builds a whole new one (a bad file
 * leaves the old one in place).  Names index each other by position:
 * a listener names its pool by index into px_config.pools.
 *
 * Durations are nanoseconds (int64_t, as weft's deadlines); 0 means "off"
 * where the field says so.  Every struct remembers the line it came from,
 * so later checks can still say FILE:LINE.
 */
#ifndef WEFT_PROXY_CONFIG_H
#define WEFT_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PX_NAME_MAX 64		/* names: [A-Za-z0-9_.-], 1..63 bytes */
#define PX_HOST_MAX 256
#define PX_PATH_MAX 108		/* sun_path */
#define PX_CHECK_MAX 256	/* check send= / expect= bytes */

/* An address: TCP host:port (host may be a name, v4, or [v6]) or Unix. */
struct px_addr {
	char host[PX_HOST_MAX];	/* TCP: without brackets; "" with a path */
	int port;		/* TCP: 0..65535 (0 only for a bind) */
	char path[PX_PATH_MAX];	/* non-empty: a Unix socket ('@': abstract) */
};

enum px_balance {
	PX_BAL_ROUNDROBIN = 0,	/* weighted round-robin (smooth, nginx's) */
	PX_BAL_LEASTCONN = 1,	/* fewest active connections / weight */
	PX_BAL_RANDOM2 = 2,	/* two random choices, the less loaded */
	PX_BAL_HASH = 3,	/* consistent hash of the client address */
};

enum px_proxy_proto {
	PX_PP_NONE = 0,
	PX_PP_V1 = 1,
	PX_PP_V2 = 2,
};

struct px_server {
	char name[PX_NAME_MAX];	/* unique within its pool */
	struct px_addr addr;
	int weight;		/* 1..256; default 1 */
	bool backup;		/* used only when no other server is up */
	int max_conns;		/* 0: no limit */
	int line;
};

struct px_pool {
	char name[PX_NAME_MAX];	/* unique */
	int balance;		/* enum px_balance; default ROUNDROBIN */
	int send_proxy;		/* enum px_proxy_proto; default NONE */
	struct px_server *servers;	/* nservers >= 1 */
	int nservers;
	int64_t connect_timeout;	/* default 5 s */
	int retries;		/* further servers tried; default 2 */
	/* Active health checks: off when check_interval is 0. */
	int64_t check_interval;
	int64_t check_timeout;	/* default: check_interval, at most 5 s */
	int rise;		/* successes to go up; default 2 */
	int fall;		/* failures to go down; default 3 */
	char check_send[PX_CHECK_MAX];	/* sent after connecting */
	size_t check_send_len;		/* 0: connect only */
	char check_expect[PX_CHECK_MAX];/* the reply must start with it */
	size_t check_expect_len;	/* 0: nothing read */
	/* Passive ejection: off when eject_failures is 0. */
	int eject_failures;	/* consecutive connect failures */
	int64_t eject_for;	/* default 30 s */
	int64_t slowstart;	/* weight ramps up over this; 0: at once */
	int line;
};

struct px_listener {
	char name[PX_NAME_MAX];	/* unique; default "listen<N>" */
	struct px_addr bind;
	int pool;		/* index into px_config.pools */
	bool accept_proxy;	/* a PROXY v1 or v2 header is required */
	int max_conns;		/* 0: no limit */
	int queue;		/* waiting past max_conns; 0: refuse at once */
	int64_t queue_timeout;	/* default 5 s */
	int64_t idle_timeout;	/* no byte either way; default 5 min; 0 off */
	int64_t session_timeout;/* whole session; default 0 (off) */
	int64_t proxy_timeout;	/* to read a PROXY header; default 5 s */
	int line;
};

/* Values of px_config.splice. */
enum px_splice {
	PX_SPLICE_AUTO = 0,	/* splice once a transfer passes the threshold */
	PX_SPLICE_OFF = 1,
	PX_SPLICE_ON = 2,	/* always */
};

struct px_config {
	char file[4096];	/* "" for a command-line configuration */
	struct px_listener *listeners;	/* nlisteners >= 1 */
	int nlisteners;
	struct px_pool *pools;	/* npools >= 1 */
	int npools;
	/* global { } */
	int procs;		/* worker processes; 0: one per CPU */
	int workers;		/* threads per process; default 1 */
	struct px_addr admin;	/* metrics listener; has_admin */
	bool has_admin;
	char access_log[4096];	/* a path, "stderr", or "" (off) */
	int64_t drain_timeout;	/* SIGQUIT / reload grace; default 30 s */
	size_t buffer_size;	/* per direction; default 16 KiB, 1K..1M */
	int splice;		/* enum px_splice */
	size_t splice_threshold;/* bytes per direction; default 64 KiB */
};

/*
 * Parse `path` into `*cfg` (zeroed first).  Every error is printed to
 * `err` as "FILE:LINE: message" (one line each; parsing goes on after an
 * error where it can, so one run lists them all).  Returns 0, or the
 * number of errors (> 0) with `*cfg` freed, or a negative errno when the
 * file cannot be read (also printed).
 */
int px_config_load(const char *path, struct px_config *cfg, FILE *err);

/*
 * The parser itself, on `len` bytes of text named `name` in messages (no
 * NUL needed; NUL bytes inside are an error).  px_config_load() reads the
 * file and calls it; the fuzz target calls it directly.  Returns as
 * px_config_load().
 */
int px_config_parse(const char *name, const char *text, size_t len,
		    struct px_config *cfg, FILE *err);

/*
 * The file-less configuration: one listener on `listen` (HOST:PORT,
 * [V6]:PORT or unix:PATH) forwarding to one round-robin pool of the
 * comma-separated `upstreams`.  Errors as px_config_load(), with
 * "--listen" or "--upstream" in place of FILE:LINE.
 */
int px_config_args(const char *listen, const char *upstreams,
		   struct px_config *cfg, FILE *err);

/* Free what a successful load allocated; `cfg` may be zeroed. */
void px_config_free(struct px_config *cfg);

/* Parse "HOST:PORT", "[V6]:PORT" or "unix:PATH"; 0 or -EINVAL. */
int px_addr_parse(const char *s, struct px_addr *a, bool port_zero_ok);
/* Format an address for logs: "h:p", "[v6]:p" or "unix:PATH". */
void px_addr_format(const struct px_addr *a, char *buf, size_t len);

#endif

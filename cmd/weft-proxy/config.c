/* SPDX-License-Identifier: MIT */
/*
 * weft-proxy's configuration parser: addresses, the --listen/--upstream
 * configuration and the configuration file (README.md, "Configuration").
 *
 * Pure libc, no weft call and no allocator but malloc/realloc/free, so the
 * fuzz target (tests/fuzz/fuzz_config.c) links this file alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/weft-proxy/config.h"

#define NSEC	((int64_t)1000 * 1000 * 1000)
#define MSEC	((int64_t)1000 * 1000)

/* Defaults (config.h's field comments). */
#define DEF_CONNECT_TIMEOUT	(5 * NSEC)
#define DEF_RETRIES		2
#define DEF_RISE		2
#define DEF_FALL		3
#define DEF_CHECK_TIMEOUT_MAX	(5 * NSEC)
#define DEF_EJECT_FOR		(30 * NSEC)
#define DEF_QUEUE_TIMEOUT	(5 * NSEC)
#define DEF_IDLE_TIMEOUT	(5 * 60 * NSEC)
#define DEF_PROXY_TIMEOUT	(5 * NSEC)
#define DEF_DRAIN_TIMEOUT	(30 * NSEC)
#define DEF_BUFFER_SIZE		((size_t)16 << 10)
#define DEF_SPLICE_THRESHOLD	((size_t)64 << 10)
#define DEF_WORKERS		1
#define DEF_WEIGHT		1

/* ---- Addresses ---- */

static bool
is_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* A host name: 1..253 of [A-Za-z0-9_.-], not starting with '-' or '.'. */
static bool
is_hostname(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		      c == '_'))
			return false;
	}
	return true;
}

static int
parse_port(const char *s, bool zero_ok)
{
	long v = 0;

	if (!is_digits(s) || strlen(s) > 5)
		return -1;
	v = strtol(s, NULL, 10);
	if (v > 65535 || (v == 0 && !zero_ok))
		return -1;
	return (int)v;
}

/*
 * px_addr_parse() with the reason for a failure in *why (a phrase for the
 * configuration's messages).
 */
static int
addr_parse(const char *s, struct px_addr *a, bool zero_ok, const char **why)
{
	char host[PX_HOST_MAX];
	const char *colon;
	size_t hlen;
	int port;

	memset(a, 0, sizeof(*a));
	if (!strncmp(s, "unix:", 5)) {
		s += 5;
		if (!*s || (s[0] == '@' && !s[1])) {
			*why = "empty Unix socket path";
			return -EINVAL;
		}
		if (strlen(s) >= PX_PATH_MAX) {
			*why = "Unix socket path longer than 107 bytes";
			return -EINVAL;
		}
		strcpy(a->path, s);
		return 0;
	}
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		struct in6_addr in6;

		if (!end || end[1] != ':') {
			*why = "want [V6]:PORT";
			return -EINVAL;
		}
		hlen = (size_t)(end - s - 1);
		if (hlen == 0 || hlen >= INET6_ADDRSTRLEN) {
			*why = "bad IPv6 address";
			return -EINVAL;
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &in6) != 1) {
			*why = "bad IPv6 address";
			return -EINVAL;
		}
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			*why = "missing :PORT";
			return -EINVAL;
		}
		hlen = (size_t)(colon - s);
		if (hlen >= PX_HOST_MAX) {
			*why = "host name too long";
			return -EINVAL;
		}
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (memchr(host, ':', hlen)) {
			*why = "an IPv6 address needs brackets: [V6]:PORT";
			return -EINVAL;
		}
		if (!strcmp(host, "*")) {
			host[0] = '\0';
		} else if (hlen > 0) {
			struct in_addr in4;
			const char *c = host;

			while (*c == '.' || (*c >= '0' && *c <= '9'))
				c++;
			if (!*c) {
				if (inet_pton(AF_INET, host, &in4) != 1) {
					*why = "bad IPv4 address";
					return -EINVAL;
				}
			} else if (!is_hostname(host)) {
				*why = "bad host name";
				return -EINVAL;
			}
		}
	}
	port = parse_port(colon + 1, zero_ok);
	if (port < 0) {
		*why = zero_ok ? "port must be 0..65535" : "port must be 1..65535";
		return -EINVAL;
	}
	strcpy(a->host, host);
	a->port = port;
	return 0;
}

int
px_addr_parse(const char *s, struct px_addr *a, bool port_zero_ok)
{
	const char *why;

	if (!s || !a)
		return -EINVAL;
	return addr_parse(s, a, port_zero_ok, &why);
}

void
px_addr_format(const struct px_addr *a, char *buf, size_t len)
{
	if (!len)
		return;
	if (a->path[0])
		snprintf(buf, len, "unix:%s", a->path);
	else if (!a->host[0])
		snprintf(buf, len, "*:%d", a->port);
	else if (strchr(a->host, ':'))
		snprintf(buf, len, "[%s]:%d", a->host, a->port);
	else
		snprintf(buf, len, "%s:%d", a->host, a->port);
}

/* ---- Defaults and freeing ---- */

static void
global_defaults(struct px_config *cfg)
{
	cfg->procs = 1;
	cfg->workers = DEF_WORKERS;
	cfg->drain_timeout = DEF_DRAIN_TIMEOUT;
	cfg->buffer_size = DEF_BUFFER_SIZE;
	cfg->splice = PX_SPLICE_AUTO;
	cfg->splice_threshold = DEF_SPLICE_THRESHOLD;
}

static void
pool_defaults(struct px_pool *p)
{
	memset(p, 0, sizeof(*p));
	p->balance = PX_BAL_ROUNDROBIN;
	p->send_proxy = PX_PP_NONE;
	p->connect_timeout = DEF_CONNECT_TIMEOUT;
	p->retries = DEF_RETRIES;
	p->rise = DEF_RISE;
	p->fall = DEF_FALL;
	p->eject_for = DEF_EJECT_FOR;
}

static void
listener_defaults(struct px_listener *l)
{
	memset(l, 0, sizeof(*l));
	l->pool = -1;
	l->queue_timeout = DEF_QUEUE_TIMEOUT;
	l->idle_timeout = DEF_IDLE_TIMEOUT;
	l->proxy_timeout = DEF_PROXY_TIMEOUT;
}

static void
server_defaults(struct px_server *s)
{
	memset(s, 0, sizeof(*s));
	s->weight = DEF_WEIGHT;
}

void
px_config_free(struct px_config *cfg)
{
	int i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->npools; i++)
		free(cfg->pools[i].servers);
	free(cfg->pools);
	free(cfg->listeners);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- The command-line configuration ---- */

int
px_config_args(const char *listen, const char *upstreams,
	       struct px_config *cfg, FILE *err)
{
	struct px_listener *l;
	struct px_pool *p;
	const char *why, *s, *end;
	int errors = 0, n;

	memset(cfg, 0, sizeof(*cfg));
	global_defaults(cfg);
	cfg->listeners = calloc(1, sizeof(*cfg->listeners));
	cfg->pools = calloc(1, sizeof(*cfg->pools));
	if (!cfg->listeners || !cfg->pools) {
		px_config_free(cfg);
		fprintf(err, "weft-proxy: %s\n", strerror(ENOMEM));
		return -ENOMEM;
	}
	cfg->nlisteners = 1;
	cfg->npools = 1;
	l = &cfg->listeners[0];
	listener_defaults(l);
	strcpy(l->name, "main");
	l->pool = 0;
	p = &cfg->pools[0];
	pool_defaults(p);
	strcpy(p->name, "main");

	if (!listen || !*listen) {
		fprintf(err, "--listen: missing\n");
		errors++;
	} else if (addr_parse(listen, &l->bind, true, &why)) {
		fprintf(err, "--listen: bad address \"%s\": %s\n", listen, why);
		errors++;
	}

	if (!upstreams || !*upstreams) {
		fprintf(err, "--upstream: missing\n");
		errors++;
		goto out;
	}
	for (s = upstreams, n = 0;; s = end + 1) {
		char one[PX_HOST_MAX + 16];
		struct px_server *sv, *grown;
		size_t len;

		end = strchr(s, ',');
		if (!end)
			end = s + strlen(s);
		len = (size_t)(end - s);
		n++;
		if (len == 0) {
			fprintf(err, "--upstream: empty entry %d\n", n);
			errors++;
		} else if (len >= sizeof(one)) {
			fprintf(err, "--upstream: entry %d too long\n", n);
			errors++;
		} else {
			memcpy(one, s, len);
			one[len] = '\0';
			grown = realloc(p->servers,
					(size_t)(p->nservers + 1) * sizeof(*sv));
			if (!grown) {
				px_config_free(cfg);
				fprintf(err, "weft-proxy: %s\n",
					strerror(ENOMEM));
				return -ENOMEM;
			}
			p->servers = grown;
			sv = &p->servers[p->nservers];
			server_defaults(sv);
			if (addr_parse(one, &sv->addr, false, &why) == 0 &&
			    !sv->addr.path[0] && !sv->addr.host[0]) {
				why = "an upstream needs a host, not *";
				sv->addr.port = -1;
			}
			if (sv->addr.port <= 0 && !sv->addr.path[0]) {
				fprintf(err,
					"--upstream: bad address \"%s\": %s\n",
					one, why);
				errors++;
			} else {
				snprintf(sv->name, sizeof(sv->name), "s%d",
					 p->nservers + 1);
				p->nservers++;
			}
		}
		if (!*end)
			break;
	}
out:
	if (errors)
		px_config_free(cfg);
	return errors;
}

/* ---- The configuration file ---- */

int
px_config_parse(const char *name, const char *text, size_t len,
		struct px_config *cfg, FILE *err)
{
	memset(cfg, 0, sizeof(*cfg));
	fprintf(err, "%s:1: configuration files are not supported yet\n",
		name);
	return 1;
}

int
px_config_load(const char *path, struct px_config *cfg, FILE *err)
{
	char *text = NULL, *grown;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd, ret;

	memset(cfg, 0, sizeof(*cfg));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		fprintf(err, "%s: %s\n", path, strerror(-ret));
		return ret;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= ((size_t)16 << 20)) {
				ret = -EFBIG;
				goto out_fail;
			}
			cap = cap ? cap * 2 : 8192;
			grown = realloc(text, cap);
			if (!grown) {
				ret = -ENOMEM;
				goto out_fail;
			}
			text = grown;
		}
		n = read(fd, text + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	ret = px_config_parse(path, text ? text : "", len, cfg, err);
	free(text);
	return ret;

out_fail:
	fprintf(err, "%s: %s\n", path, strerror(-ret));
	free(text);
	close(fd);
	return ret;
}

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

#include "config.h"

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
		*why = zero_ok ? "port must be 0..65535" :
				 "port must be 1..65535";
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
			len = (size_t)(p->nservers + 1) * sizeof(*sv);
			grown = realloc(p->servers, len);
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

/* ---- The configuration file: words and statements ---- */

/*
 * The lexer turns the text into words and the three punctuation marks.
 * A word is a run of unquoted characters and "quoted" parts with no space
 * between them (send="PING\r\n" is one word), so a value may be quoted
 * after its key.  '#' outside quotes starts a comment.  A string ends on
 * its line: a newline before the closing quote is "unterminated string",
 * reported on the line the string began, and the statement ends there.
 */
enum tok {
	T_WORD,
	T_SEMI,		/* ; */
	T_OPEN,		/* { */
	T_CLOSE,	/* } */
	T_EOF,
	T_SPLIT,	/* a directive began a line: a ';' is missing */
	T_CUT,		/* an unterminated string ended the statement */
};

#define WORD_MAX	8192	/* bytes in one word */
#define WORDS_MAX	64	/* words in one statement */
#define SHOW_MAX	72	/* bytes of a word quoted in a message */
#define DUR_MAX		(24 * 3600 * NSEC)
#define COUNT_MAX	1000000	/* max_conns, queue */

struct word {
	char *s;	/* NUL-terminated; may hold NULs (\x00) */
	size_t len;
	int line;
	bool bad;	/* a lexical error was reported in it */
	bool cut;	/* it ended in an unterminated string */
};

enum ctx {
	CTX_TOP,
	CTX_GLOBAL,
	CTX_POOL,
	CTX_LISTEN,
};

static const char *const ctx_names[] = {
	[CTX_TOP] = "top",
	[CTX_GLOBAL] = "global",
	[CTX_POOL] = "pool",
	[CTX_LISTEN] = "listen",
};

/* What the parser keeps about a listener until the end of the file. */
struct lnote {
	char pool[PX_NAME_MAX];	/* the pool directive's name; "" none */
	int pool_line;		/* 0: no pool directive; -1: a bad one */
	int bind_line;		/* 0: no bind; -1: a bad one */
};

struct parser;

struct directive {
	const char *name;
	enum ctx ctx;
	int min, max;		/* arguments after the name */
	bool repeat;		/* may appear more than once in a block */
	void (*fn)(struct parser *ps);
};

struct parser {
	const char *name;
	const char *p, *end;
	int line;
	int nul_line;		/* the last line a NUL was reported on */
	int eof_line;		/* the line of the end of the file */
	int errors;
	bool nomem;
	FILE *err;
	struct px_config *cfg;
	struct lnote *notes;	/* one per listener */

	/* The statement being read. */
	struct word w[WORDS_MAX];
	int nw;
	bool bad;		/* some word in it had an error */
	struct word back;	/* a word read ahead (T_SPLIT) */
	bool has_back;

	/* The open block. */
	enum ctx ctx;
	int block_line;
	int cur;		/* index of the pool or listener */
	int seen[32];		/* line of each directive seen; 0 none */
	int global_line;	/* the first global block's line */

	char shown[3][SHOW_MAX + 8];
	unsigned nshown;
};

static void perr(struct parser *ps, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
perr(struct parser *ps, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(ps->err, "%s:%d: ", ps->name, line);
	va_start(ap, fmt);
	vfprintf(ps->err, fmt, ap);
	va_end(ap);
	fputc('\n', ps->err);
	ps->errors++;
}

/* Bytes made printable for a message: \" \\ and \xHH, cut with "...". */
static const char *
show_bytes(struct parser *ps, const char *s, size_t len)
{
	char *out = ps->shown[ps->nshown++ % 3];
	size_t o = 0, i;

	for (i = 0; i < len && o < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			snprintf(out + o, 5, "\\x%02x", c);
			o += 4;
		} else {
			out[o++] = (char)c;
		}
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static const char *
show(struct parser *ps, const struct word *w)
{
	return show_bytes(ps, w->s, w->len);
}

static void
nul_byte(struct parser *ps)
{
	if (ps->nul_line != ps->line) {
		ps->nul_line = ps->line;
		perr(ps, ps->line, "NUL byte in the text");
	}
}

struct buf {
	char *s;
	size_t len, cap;
	bool over;
};

static void
buf_put(struct parser *ps, struct buf *b, char c)
{
	if (b->len >= WORD_MAX) {
		b->over = true;
		return;
	}
	if (b->len + 1 >= b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		char *s = realloc(b->s, cap);

		if (!s) {
			ps->nomem = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
	b->s[b->len++] = c;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The quoted part of a word, from just past its opening quote. */
static void
lex_string(struct parser *ps, struct buf *b, struct word *w)
{
	int h, l;
	char c;

	for (;;) {
		if (ps->p == ps->end || *ps->p == '\n') {
			perr(ps, ps->line, "unterminated string");
			w->bad = w->cut = true;
			return;
		}
		c = *ps->p++;
		if (c == '"')
			return;
		if (c == '\0') {
			nul_byte(ps);
			w->bad = true;
			continue;
		}
		if (c != '\\') {
			buf_put(ps, b, c);
			continue;
		}
		if (ps->p == ps->end || *ps->p == '\n') {
			perr(ps, ps->line, "unterminated string");
			w->bad = w->cut = true;
			return;
		}
		c = *ps->p++;
		switch (c) {
		case '\\':
		case '"':
			buf_put(ps, b, c);
			break;
		case 'n':
			buf_put(ps, b, '\n');
			break;
		case 'r':
			buf_put(ps, b, '\r');
			break;
		case 't':
			buf_put(ps, b, '\t');
			break;
		case 'x':
			h = ps->end - ps->p >= 1 ? hexval(ps->p[0]) : -1;
			l = ps->end - ps->p >= 2 ? hexval(ps->p[1]) : -1;
			if (h < 0 || l < 0) {
				perr(ps, ps->line,
				     "bad escape \"\\x\": two hex digits must follow");
				w->bad = true;
				break;
			}
			ps->p += 2;
			buf_put(ps, b, (char)(h << 4 | l));
			break;
		default:
			perr(ps, ps->line,
			     "bad escape \"\\%s\": use \\\\ \\\" \\r \\n \\t or \\xHH",
			     show_bytes(ps, &c, 1));
			w->bad = true;
			break;
		}
	}
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static enum tok
lex(struct parser *ps, struct word *w)
{
	struct buf b = { 0 };
	char c;

	memset(w, 0, sizeof(*w));
	for (;;) {
		if (ps->p == ps->end) {
			/* The file's last line, not the one past its '\n'. */
			w->line = ps->line;
			if (ps->line > 1 && ps->end[-1] == '\n')
				w->line--;
			return T_EOF;
		}
		c = *ps->p;
		if (c == '\n') {
			ps->line++;
			ps->p++;
		} else if (is_space(c)) {
			ps->p++;
		} else if (c == '\0') {
			nul_byte(ps);
			ps->p++;
		} else if (c == '#') {
			while (ps->p < ps->end && *ps->p != '\n') {
				if (*ps->p == '\0')
					nul_byte(ps);
				ps->p++;
			}
		} else {
			break;
		}
	}
	w->line = ps->line;
	switch (c) {
	case ';':
		ps->p++;
		return T_SEMI;
	case '{':
		ps->p++;
		return T_OPEN;
	case '}':
		ps->p++;
		return T_CLOSE;
	}
	while (ps->p < ps->end && !w->cut) {
		c = *ps->p;
		if (c == '"') {
			ps->p++;
			lex_string(ps, &b, w);
			continue;
		}
		if (is_space(c) || c == '\n' || c == '\0' || c == ';' ||
		    c == '{' || c == '}' || c == '#')
			break;
		buf_put(ps, &b, c);
		ps->p++;
	}
	if (b.over) {
		perr(ps, w->line, "word longer than %d bytes", WORD_MAX);
		w->bad = true;
	}
	if (!b.s) {
		b.s = malloc(1);
		if (!b.s)
			ps->nomem = true;
	}
	if (b.s)
		b.s[b.len] = '\0';
	w->s = b.s;
	w->len = b.len;
	return T_WORD;
}

static const struct directive *find_directive(const struct word *w);

static bool
is_block_word(const struct word *w)
{
	return strlen(w->s) == w->len &&
	       (!strcmp(w->s, "global") || !strcmp(w->s, "pool") ||
		!strcmp(w->s, "listen"));
}

static void
stmt_clear(struct parser *ps)
{
	int i;

	for (i = 0; i < ps->nw; i++)
		free(ps->w[i].s);
	ps->nw = 0;
	ps->bad = false;
}

/*
 * Read one statement into ps->w: the words up to its terminator, which is
 * returned with the line it was found on in *line.
 */
static enum tok
read_stmt(struct parser *ps, int *line)
{
	struct word w;
	enum tok t;

	stmt_clear(ps);
	*line = ps->line;
	for (;;) {
		if (ps->has_back) {
			w = ps->back;
			ps->has_back = false;
			t = T_WORD;
		} else {
			t = lex(ps, &w);
		}
		if (ps->nomem) {
			free(w.s);
			return T_EOF;
		}
		*line = w.line;
		if (t != T_WORD)
			return t;
		/*
		 * A known directive first on a line while a statement is
		 * open: the statement before it lacks its ';'.
		 */
		if (ps->nw > 0 && w.line > ps->w[ps->nw - 1].line &&
		    !w.bad && (find_directive(&w) || is_block_word(&w))) {
			ps->back = w;
			ps->has_back = true;
			return T_SPLIT;
		}
		if (w.bad)
			ps->bad = true;
		if (ps->nw == WORDS_MAX) {
			if (!ps->bad)
				perr(ps, w.line, "more than %d words",
				     WORDS_MAX);
			ps->bad = true;
			free(w.s);
		} else {
			ps->w[ps->nw++] = w;
		}
		if (w.cut)
			return T_CUT;
	}
}

/* ---- Values ---- */

/* Decimal digits, at most `limit`: 0, -1 (not digits), -2 (too big). */
static int
digits(const char *s, size_t n, uint64_t limit, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9)
			return -1;
		if (x > limit / 10 || d > limit - x * 10) {
			/* Still say "not digits" for "99999x". */
			for (; i < n; i++)
				if ((unsigned)((unsigned char)s[i] - '0') > 9)
					return -1;
			return -2;
		}
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

static int
get_int(struct parser *ps, const char *what, const struct word *w,
	int min, int max, int *out)
{
	uint64_t v;

	if (digits(w->s, w->len, (uint64_t)max, &v) || v < (uint64_t)min) {
		perr(ps, w->line, "bad %s \"%s\": must be %d..%d", what,
		     show(ps, w), min, max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

/* A duration: digits and ms, s, m or h; "off" (and 0) as 0 if off_ok. */
static int
get_duration(struct parser *ps, const char *what, const struct word *w,
	     bool off_ok, int64_t *out)
{
	const char *range = off_ok ? "off or 1ms..24h" : "1ms..24h";
	const char *u;
	int64_t mult;
	uint64_t v;
	size_t n = 0, ulen;

	if (off_ok && w->len == 3 && !memcmp(w->s, "off", 3)) {
		*out = 0;
		return 0;
	}
	while (n < w->len && w->s[n] >= '0' && w->s[n] <= '9')
		n++;
	u = w->s + n;
	ulen = w->len - n;
	if (n == 0)
		goto bad;
	if (ulen == 0) {
		perr(ps, w->line,
		     "bad %s \"%s\": needs a unit (ms, s, m or h)", what,
		     show(ps, w));
		return -1;
	}
	if (ulen == 2 && !memcmp(u, "ms", 2))
		mult = MSEC;
	else if (ulen == 1 && *u == 's')
		mult = NSEC;
	else if (ulen == 1 && *u == 'm')
		mult = 60 * NSEC;
	else if (ulen == 1 && *u == 'h')
		mult = 3600 * NSEC;
	else {
		perr(ps, w->line,
		     "bad %s \"%s\": the unit must be ms, s, m or h", what,
		     show(ps, w));
		return -1;
	}
	if (digits(w->s, n, (uint64_t)(DUR_MAX / mult), &v))
		goto bad;
	if (v == 0 && !off_ok)
		goto bad;
	*out = (int64_t)v * mult;
	return 0;
bad:
	perr(ps, w->line, "bad %s \"%s\": must be %s", what, show(ps, w),
	     range);
	return -1;
}

/* A size: digits with an optional k or m (KiB, MiB). */
static int
get_size(struct parser *ps, const char *what, const struct word *w,
	 size_t min, size_t max, const char *range, size_t *out)
{
	size_t n = w->len, mult = 1;
	uint64_t v;

	if (n > 0 && (w->s[n - 1] == 'k' || w->s[n - 1] == 'K')) {
		mult = 1024;
		n--;
	} else if (n > 0 && (w->s[n - 1] == 'm' || w->s[n - 1] == 'M')) {
		mult = 1024 * 1024;
		n--;
	}
	if (digits(w->s, n, max / mult, &v) || v * mult < min) {
		perr(ps, w->line, "bad %s \"%s\": must be %s", what,
		     show(ps, w), range);
		return -1;
	}
	*out = (size_t)v * mult;
	return 0;
}

/* One of `names` (NULL-terminated); its index, or -1 (reported). */
static int
get_keyword(struct parser *ps, const char *what, const struct word *w,
	    const char *const *names, const char *list)
{
	int i;

	for (i = 0; names[i]; i++)
		if (!strcmp(w->s, names[i]) && strlen(w->s) == w->len)
			return i;
	perr(ps, w->line, "bad %s \"%s\": must be %s", what, show(ps, w),
	     list);
	return -1;
}

static bool
valid_name(const struct word *w)
{
	size_t i;

	if (w->len < 1 || w->len >= PX_NAME_MAX)
		return false;
	for (i = 0; i < w->len; i++) {
		char c = w->s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

static int
get_name(struct parser *ps, const struct word *w, char *out)
{
	if (!valid_name(w)) {
		perr(ps, w->line,
		     "bad name \"%s\": 1..63 of A-Z a-z 0-9 _ . -",
		     show(ps, w));
		return -1;
	}
	memcpy(out, w->s, w->len + 1);
	return 0;
}

/* An address; a server's (bind false) needs a host and a port. */
static int
get_addr(struct parser *ps, const struct word *w, bool bind,
	 struct px_addr *a)
{
	const char *why = "contains a NUL byte";

	if (strlen(w->s) == w->len &&
	    addr_parse(w->s, a, bind, &why) == 0) {
		if (bind || a->path[0] || a->host[0])
			return 0;
		why = "a server needs a host, not *";
	}
	memset(a, 0, sizeof(*a));
	perr(ps, w->line, "bad address \"%s\": %s", show(ps, w), why);
	return -1;
}

/*
 * Split an option word at its first '=' into *key (NUL-terminated in
 * place) and *val; false when it has no '='.
 */
static bool
split_option(struct word *w, struct word *key, struct word *val)
{
	char *eq = memchr(w->s, '=', w->len);

	*key = *w;
	memset(val, 0, sizeof(*val));
	val->line = w->line;
	if (!eq) {
		key->len = strlen(w->s) == w->len ? w->len : (size_t)-1;
		return false;
	}
	key->len = (size_t)(eq - w->s);
	val->s = eq + 1;
	val->len = w->len - key->len - 1;
	return true;
}

/* The index of `key` in `keys`, or -1 with the error reported. */
static int
option_index(struct parser *ps, const char *what, const struct word *w,
	     const struct word *key, const char *const *keys)
{
	int i;

	for (i = 0; keys[i]; i++)
		if (key->len == strlen(keys[i]) &&
		    !memcmp(key->s, keys[i], key->len))
			return i;
	perr(ps, w->line, "unknown %s option \"%s\"", what,
	     show_bytes(ps, key->s, key->len == (size_t)-1 ? w->len :
			key->len));
	return -1;
}

/*
 * Walk `words` options of the form KEY=VALUE (or a bare flag, value
 * NULL); calls opt() with each known key's index.  Unknown, duplicate and
 * value-less keys are reported here.
 */
static void
options(struct parser *ps, const char *what, struct word *words, int n,
	const char *const *keys, const bool *flags,
	void (*opt)(struct parser *ps, int key, struct word *val))
{
	unsigned seen = 0;
	int i, k;

	for (i = 0; i < n; i++) {
		struct word key, val;
		bool has = split_option(&words[i], &key, &val);

		k = option_index(ps, what, &words[i], &key, keys);
		if (k < 0)
			continue;
		if (seen & (1u << k)) {
			perr(ps, words[i].line, "duplicate %s option \"%s\"",
			     what, keys[k]);
			continue;
		}
		seen |= 1u << k;
		if (flags[k] && has) {
			perr(ps, words[i].line,
			     "%s option \"%s\" takes no value", what, keys[k]);
			continue;
		}
		if (!flags[k] && !has) {
			perr(ps, words[i].line,
			     "%s option \"%s\" needs a value (%s=...)", what,
			     keys[k], keys[k]);
			continue;
		}
		opt(ps, k, flags[k] ? NULL : &val);
	}
}

static bool
has_option(const struct word *words, int n, const char *key)
{
	size_t kl = strlen(key);
	int i;

	for (i = 0; i < n; i++)
		if (words[i].len > kl && !memcmp(words[i].s, key, kl) &&
		    words[i].s[kl] == '=')
			return true;
	return false;
}

/* ---- Directives ---- */

static struct px_pool *
cur_pool(struct parser *ps)
{
	return &ps->cfg->pools[ps->cur];
}

static struct px_listener *
cur_listener(struct parser *ps)
{
	return &ps->cfg->listeners[ps->cur];
}

static void
d_procs(struct parser *ps)
{
	get_int(ps, "procs", &ps->w[1], 0, 1024, &ps->cfg->procs);
}

static void
d_workers(struct parser *ps)
{
	get_int(ps, "workers", &ps->w[1], 1, 1024, &ps->cfg->workers);
}

static void
d_access_log(struct parser *ps)
{
	struct word *w = &ps->w[1];

	if (!strcmp(w->s, "off") && w->len == 3) {
		ps->cfg->access_log[0] = '\0';
		return;
	}
	if (w->len == 0 || strlen(w->s) != w->len ||
	    w->len >= sizeof(ps->cfg->access_log)) {
		perr(ps, w->line,
		     "bad access_log \"%s\": a path, stderr or off",
		     show(ps, w));
		return;
	}
	memcpy(ps->cfg->access_log, w->s, w->len + 1);
}

static void
d_admin(struct parser *ps)
{
	if (get_addr(ps, &ps->w[1], true, &ps->cfg->admin) == 0)
		ps->cfg->has_admin = true;
}

static void
d_drain_timeout(struct parser *ps)
{
	get_duration(ps, "drain_timeout", &ps->w[1], false,
		     &ps->cfg->drain_timeout);
}

static void
d_buffer_size(struct parser *ps)
{
	get_size(ps, "buffer_size", &ps->w[1], 1024, 1024 * 1024, "1k..1m",
		 &ps->cfg->buffer_size);
}

static void
d_splice(struct parser *ps)
{
	static const char *const names[] = { "auto", "off", "on", NULL };
	int v = get_keyword(ps, "splice", &ps->w[1], names, "auto, on or off");

	if (v >= 0)
		ps->cfg->splice = v;	/* the order of enum px_splice */
}

static void
d_splice_threshold(struct parser *ps)
{
	get_size(ps, "splice_threshold", &ps->w[1], 0, (size_t)1 << 30,
		 "0..1024m", &ps->cfg->splice_threshold);
}

static void
d_balance(struct parser *ps)
{
	static const char *const names[] = {
		"roundrobin", "leastconn", "random2", "hash", NULL
	};
	int v = get_keyword(ps, "balance", &ps->w[1], names,
			    "roundrobin, leastconn, random2 or hash");

	if (v >= 0)
		cur_pool(ps)->balance = v;	/* enum px_balance's order */
}

static const char *const server_keys[] = {
	"weight", "max_conns", "backup", NULL
};
static const bool server_flags[] = { false, false, true };

static void
server_opt(struct parser *ps, int key, struct word *val)
{
	struct px_pool *p = cur_pool(ps);
	struct px_server *s = &p->servers[p->nservers - 1];

	switch (key) {
	case 0:
		get_int(ps, "weight", val, 1, 256, &s->weight);
		break;
	case 1:
		get_int(ps, "max_conns", val, 0, COUNT_MAX, &s->max_conns);
		break;
	case 2:
		s->backup = true;
		break;
	}
}

static void
d_server(struct parser *ps)
{
	struct px_pool *p = cur_pool(ps);
	struct px_server *s, *grown;
	int i;

	grown = realloc(p->servers, (size_t)(p->nservers + 1) * sizeof(*s));
	if (!grown) {
		ps->nomem = true;
		return;
	}
	p->servers = grown;
	s = &p->servers[p->nservers++];
	server_defaults(s);
	s->line = ps->w[0].line;
	if (get_name(ps, &ps->w[1], s->name) == 0) {
		for (i = 0; i < p->nservers - 1; i++) {
			if (strcmp(p->servers[i].name, s->name))
				continue;
			perr(ps, ps->w[1].line,
			     "duplicate server \"%s\" in pool \"%s\" (line %d)",
			     s->name, p->name, p->servers[i].line);
			break;
		}
	}
	get_addr(ps, &ps->w[2], false, &s->addr);
	options(ps, "server", &ps->w[3], ps->nw - 3, server_keys,
		server_flags, server_opt);
}

static void
d_send_proxy(struct parser *ps)
{
	static const char *const names[] = { "off", "v1", "v2", NULL };
	int v = get_keyword(ps, "send_proxy", &ps->w[1], names,
			    "off, v1 or v2");

	if (v >= 0)
		cur_pool(ps)->send_proxy = v;	/* enum px_proxy_proto */
}

static void
d_connect_timeout(struct parser *ps)
{
	get_duration(ps, "connect_timeout", &ps->w[1], false,
		     &cur_pool(ps)->connect_timeout);
}

static void
d_retries(struct parser *ps)
{
	get_int(ps, "retries", &ps->w[1], 0, 16, &cur_pool(ps)->retries);
}

static const char *const check_keys[] = {
	"interval", "timeout", "rise", "fall", "send", "expect", NULL
};
static const bool check_flags[] = { false, false, false, false, false, false };

static void
check_bytes(struct parser *ps, const char *what, struct word *val,
	    char *out, size_t *len)
{
	if (val->len >= PX_CHECK_MAX) {
		perr(ps, val->line, "check %s= longer than %d bytes", what,
		     PX_CHECK_MAX - 1);
		return;
	}
	memcpy(out, val->s, val->len);
	out[val->len] = '\0';
	*len = val->len;
}

static void
check_opt(struct parser *ps, int key, struct word *val)
{
	struct px_pool *p = cur_pool(ps);

	switch (key) {
	case 0:
		get_duration(ps, "check interval", val, false,
			     &p->check_interval);
		break;
	case 1:
		get_duration(ps, "check timeout", val, false,
			     &p->check_timeout);
		break;
	case 2:
		get_int(ps, "check rise", val, 1, 100, &p->rise);
		break;
	case 3:
		get_int(ps, "check fall", val, 1, 100, &p->fall);
		break;
	case 4:
		check_bytes(ps, "send", val, p->check_send,
			    &p->check_send_len);
		break;
	case 5:
		check_bytes(ps, "expect", val, p->check_expect,
			    &p->check_expect_len);
		break;
	}
}

static void
d_check(struct parser *ps)
{
	struct px_pool *p = cur_pool(ps);
	int errors = ps->errors;

	p->check_timeout = 0;
	options(ps, "check", &ps->w[1], ps->nw - 1, check_keys, check_flags,
		check_opt);
	if (!has_option(&ps->w[1], ps->nw - 1, "interval")) {
		perr(ps, ps->w[0].line, "%s",
		     has_option(&ps->w[1], ps->nw - 1, "expect") ?
		     "check expect= needs interval=" :
		     "check needs interval=");
		p->check_interval = 0;
		return;
	}
	if (ps->errors != errors)
		return;
	if (!p->check_timeout)
		p->check_timeout = p->check_interval < DEF_CHECK_TIMEOUT_MAX ?
				   p->check_interval : DEF_CHECK_TIMEOUT_MAX;
	else if (p->check_timeout > p->check_interval)
		perr(ps, ps->w[0].line,
		     "check timeout= must not exceed interval=");
}

static const char *const eject_keys[] = {
	"failures", "for", "slowstart", NULL
};
static const bool eject_flags[] = { false, false, false };

static void
eject_opt(struct parser *ps, int key, struct word *val)
{
	struct px_pool *p = cur_pool(ps);

	switch (key) {
	case 0:
		get_int(ps, "eject failures", val, 1, 1000,
			&p->eject_failures);
		break;
	case 1:
		get_duration(ps, "eject for", val, false, &p->eject_for);
		break;
	case 2:
		get_duration(ps, "eject slowstart", val, true, &p->slowstart);
		break;
	}
}

static void
d_eject(struct parser *ps)
{
	options(ps, "eject", &ps->w[1], ps->nw - 1, eject_keys, eject_flags,
		eject_opt);
	if (!has_option(&ps->w[1], ps->nw - 1, "failures"))
		perr(ps, ps->w[0].line, "eject needs failures=");
}

static void
d_bind(struct parser *ps)
{
	int ret = get_addr(ps, &ps->w[1], true, &cur_listener(ps)->bind);

	/* Negative: given but bad, so no "has no bind" as well. */
	ps->notes[ps->cur].bind_line = ret ? -1 : ps->w[1].line;
}

static void
d_pool(struct parser *ps)
{
	struct lnote *n = &ps->notes[ps->cur];

	n->pool_line = get_name(ps, &ps->w[1], n->pool) ? -1 : ps->w[1].line;
}

static void
d_accept_proxy(struct parser *ps)
{
	static const char *const names[] = { "off", "on", NULL };
	int v = get_keyword(ps, "accept_proxy", &ps->w[1], names, "on or off");

	if (v >= 0)
		cur_listener(ps)->accept_proxy = v;
}

static void
d_max_conns(struct parser *ps)
{
	get_int(ps, "max_conns", &ps->w[1], 0, COUNT_MAX,
		&cur_listener(ps)->max_conns);
}

static const char *const queue_keys[] = { "timeout", NULL };
static const bool queue_flags[] = { false };

static void
queue_opt(struct parser *ps, int key, struct word *val)
{
	(void)key;	/* "timeout", the only one */
	get_duration(ps, "queue timeout", val, false,
		     &cur_listener(ps)->queue_timeout);
}

static void
d_queue(struct parser *ps)
{
	get_int(ps, "queue", &ps->w[1], 0, COUNT_MAX,
		&cur_listener(ps)->queue);
	options(ps, "queue", &ps->w[2], ps->nw - 2, queue_keys, queue_flags,
		queue_opt);
}

static void
d_idle_timeout(struct parser *ps)
{
	get_duration(ps, "idle_timeout", &ps->w[1], true,
		     &cur_listener(ps)->idle_timeout);
}

static void
d_session_timeout(struct parser *ps)
{
	get_duration(ps, "session_timeout", &ps->w[1], true,
		     &cur_listener(ps)->session_timeout);
}

static void
d_proxy_timeout(struct parser *ps)
{
	get_duration(ps, "proxy_timeout", &ps->w[1], false,
		     &cur_listener(ps)->proxy_timeout);
}

/* At most 32 (struct parser.seen). */
static const struct directive directives[] = {
	{ "procs", CTX_GLOBAL, 1, 1, false, d_procs },
	{ "workers", CTX_GLOBAL, 1, 1, false, d_workers },
	{ "access_log", CTX_GLOBAL, 1, 1, false, d_access_log },
	{ "admin", CTX_GLOBAL, 1, 1, false, d_admin },
	{ "drain_timeout", CTX_GLOBAL, 1, 1, false, d_drain_timeout },
	{ "buffer_size", CTX_GLOBAL, 1, 1, false, d_buffer_size },
	{ "splice", CTX_GLOBAL, 1, 1, false, d_splice },
	{ "splice_threshold", CTX_GLOBAL, 1, 1, false, d_splice_threshold },
	{ "balance", CTX_POOL, 1, 1, false, d_balance },
	{ "server", CTX_POOL, 2, 5, true, d_server },
	{ "send_proxy", CTX_POOL, 1, 1, false, d_send_proxy },
	{ "connect_timeout", CTX_POOL, 1, 1, false, d_connect_timeout },
	{ "retries", CTX_POOL, 1, 1, false, d_retries },
	{ "check", CTX_POOL, 1, 6, false, d_check },
	{ "eject", CTX_POOL, 1, 3, false, d_eject },
	{ "bind", CTX_LISTEN, 1, 1, false, d_bind },
	{ "pool", CTX_LISTEN, 1, 1, false, d_pool },
	{ "accept_proxy", CTX_LISTEN, 1, 1, false, d_accept_proxy },
	{ "max_conns", CTX_LISTEN, 1, 1, false, d_max_conns },
	{ "queue", CTX_LISTEN, 1, 2, false, d_queue },
	{ "idle_timeout", CTX_LISTEN, 1, 1, false, d_idle_timeout },
	{ "session_timeout", CTX_LISTEN, 1, 1, false, d_session_timeout },
	{ "proxy_timeout", CTX_LISTEN, 1, 1, false, d_proxy_timeout },
	{ NULL, CTX_TOP, 0, 0, false, NULL },
};

_Static_assert(sizeof(directives) / sizeof(directives[0]) <= 33,
	       "struct parser.seen holds 32 directives");

static const struct directive *
find_directive(const struct word *w)
{
	const struct directive *d;

	for (d = directives; d->name; d++)
		if (!strcmp(d->name, w->s) && strlen(w->s) == w->len)
			return d;
	return NULL;
}

static void
directive(struct parser *ps)
{
	const struct directive *d = find_directive(&ps->w[0]);
	int nargs = ps->nw - 1, i;

	if (!d) {
		perr(ps, ps->w[0].line, "unknown directive \"%s\"",
		     show(ps, &ps->w[0]));
		return;
	}
	if (d->ctx != ps->ctx) {
		perr(ps, ps->w[0].line, "\"%s\" belongs in a %s block",
		     d->name, ctx_names[d->ctx]);
		return;
	}
	i = (int)(d - directives);
	if (!d->repeat && ps->seen[i]) {
		perr(ps, ps->w[0].line, "duplicate \"%s\" (line %d)", d->name,
		     ps->seen[i]);
		return;
	}
	ps->seen[i] = ps->w[0].line;
	if (nargs < d->min || nargs > d->max) {
		if (d->min == d->max)
			perr(ps, ps->w[0].line, "\"%s\" takes %d argument%s",
			     d->name, d->min, d->min == 1 ? "" : "s");
		else
			perr(ps, ps->w[0].line,
			     "\"%s\" takes %d to %d arguments", d->name,
			     d->min, d->max);
		return;
	}
	d->fn(ps);
}

/* ---- Blocks ---- */

static void
block_desc(struct parser *ps, char *buf, size_t len)
{
	if (ps->ctx == CTX_POOL)
		snprintf(buf, len, "pool \"%s\"", cur_pool(ps)->name);
	else if (ps->ctx == CTX_LISTEN)
		snprintf(buf, len, "listen \"%s\"", cur_listener(ps)->name);
	else
		snprintf(buf, len, "global");
}

static void
open_pool(struct parser *ps)
{
	struct px_config *cfg = ps->cfg;
	struct px_pool *grown, *p;
	int i;

	grown = realloc(cfg->pools, (size_t)(cfg->npools + 1) * sizeof(*p));
	if (!grown) {
		ps->nomem = true;
		return;
	}
	cfg->pools = grown;
	p = &cfg->pools[cfg->npools];
	pool_defaults(p);
	p->line = ps->w[0].line;
	ps->cur = cfg->npools++;
	ps->ctx = CTX_POOL;
	if (ps->nw != 2) {
		perr(ps, ps->w[0].line, "\"pool\" block takes one name");
		return;
	}
	if (get_name(ps, &ps->w[1], p->name))
		return;
	for (i = 0; i < ps->cur; i++) {
		if (!strcmp(cfg->pools[i].name, p->name)) {
			perr(ps, ps->w[1].line,
			     "duplicate pool \"%s\" (line %d)", p->name,
			     cfg->pools[i].line);
			break;
		}
	}
}

static void
open_listen(struct parser *ps)
{
	struct px_config *cfg = ps->cfg;
	struct px_listener *grown, *l;
	struct lnote *notes;
	int i, n = cfg->nlisteners;

	grown = realloc(cfg->listeners, (size_t)(n + 1) * sizeof(*l));
	if (grown)
		cfg->listeners = grown;
	notes = realloc(ps->notes, (size_t)(n + 1) * sizeof(*notes));
	if (notes)
		ps->notes = notes;
	if (!grown || !notes) {
		ps->nomem = true;
		return;
	}
	l = &cfg->listeners[n];
	listener_defaults(l);
	memset(&notes[n], 0, sizeof(notes[n]));
	l->line = ps->w[0].line;
	ps->cur = cfg->nlisteners++;
	ps->ctx = CTX_LISTEN;
	snprintf(l->name, sizeof(l->name), "listen%d", n + 1);
	if (ps->nw > 2) {
		perr(ps, ps->w[0].line,
		     "\"listen\" block takes at most one name");
		return;
	}
	if (ps->nw == 2 && get_name(ps, &ps->w[1], l->name))
		return;
	for (i = 0; i < n; i++) {
		if (!strcmp(cfg->listeners[i].name, l->name)) {
			perr(ps, ps->w[0].line,
			     "duplicate listen \"%s\" (line %d)", l->name,
			     cfg->listeners[i].line);
			break;
		}
	}
}

/* Skip a block that is not parsed, up to its '}'. */
static void
skip_block(struct parser *ps, int open_line)
{
	struct word w;
	int depth = 1;
	enum tok t;

	while (depth > 0) {
		t = lex(ps, &w);
		free(w.s);
		if (ps->nomem)
			return;
		if (t == T_OPEN)
			depth++;
		else if (t == T_CLOSE)
			depth--;
		else if (t == T_EOF) {
			perr(ps, w.line,
			     "missing \"}\" at the end of the file (block at line %d)",
			     open_line);
			return;
		}
	}
}

static void
open_block(struct parser *ps)
{
	struct word *w = &ps->w[0];

	memset(ps->seen, 0, sizeof(ps->seen));
	ps->block_line = w->line;
	if (!strcmp(w->s, "global") && w->len == 6) {
		ps->ctx = CTX_GLOBAL;
		if (ps->global_line)
			perr(ps, w->line, "duplicate global block (line %d)",
			     ps->global_line);
		else
			ps->global_line = w->line;
		if (ps->nw != 1)
			perr(ps, w->line, "\"global\" block takes no name");
	} else if (!strcmp(w->s, "pool") && w->len == 4) {
		open_pool(ps);
	} else if (!strcmp(w->s, "listen") && w->len == 6) {
		open_listen(ps);
	} else {
		perr(ps, w->line, "unknown block \"%s\"", show(ps, w));
		skip_block(ps, w->line);
	}
}

static void
close_block(struct parser *ps)
{
	struct px_pool *p;
	int i;

	if (ps->ctx == CTX_POOL) {
		p = cur_pool(ps);
		if (p->nservers == 0) {
			perr(ps, p->line, "pool \"%s\" has no servers",
			     p->name);
		} else {
			for (i = 0; i < p->nservers; i++)
				if (!p->servers[i].backup)
					break;
			if (i == p->nservers)
				perr(ps, p->line,
				     "pool \"%s\": every server is a backup",
				     p->name);
		}
	} else if (ps->ctx == CTX_LISTEN) {
		struct px_listener *l = cur_listener(ps);

		if (!ps->notes[ps->cur].bind_line)
			perr(ps, l->line, "listen \"%s\" has no bind",
			     l->name);
		if (!ps->notes[ps->cur].pool_line)
			perr(ps, l->line, "listen \"%s\" has no pool",
			     l->name);
	}
	ps->ctx = CTX_TOP;
}

/* After the last block: what needs the whole file. */
static void
finish(struct parser *ps)
{
	struct px_config *cfg = ps->cfg;
	int i, j;

	if (cfg->nlisteners == 0)
		perr(ps, ps->eof_line, "at least one listen block is required");
	for (i = 0; i < cfg->nlisteners; i++) {
		struct lnote *n = &ps->notes[i];
		struct px_listener *l = &cfg->listeners[i];

		if (n->pool_line > 0) {
			for (j = 0; j < cfg->npools; j++)
				if (!strcmp(cfg->pools[j].name, n->pool))
					break;
			if (j < cfg->npools)
				l->pool = j;
			else
				perr(ps, n->pool_line, "unknown pool \"%s\"",
				     n->pool);
		}
		if (n->bind_line <= 0 || (!l->bind.path[0] && !l->bind.port))
			continue;
		for (j = 0; j < i; j++) {
			char a[PX_HOST_MAX + PX_PATH_MAX + 16];

			if (ps->notes[j].bind_line <= 0 ||
			    l->bind.port != cfg->listeners[j].bind.port ||
			    strcmp(l->bind.host, cfg->listeners[j].bind.host) ||
			    strcmp(l->bind.path, cfg->listeners[j].bind.path))
				continue;
			px_addr_format(&l->bind, a, sizeof(a));
			perr(ps, n->bind_line,
			     "duplicate bind %s (listen \"%s\", line %d)", a,
			     cfg->listeners[j].name, ps->notes[j].bind_line);
			break;
		}
	}
}

int
px_config_parse(const char *name, const char *text, size_t len,
		struct px_config *cfg, FILE *err)
{
	struct parser *ps;
	enum tok t;
	char desc[PX_NAME_MAX + 16];
	int line, ret;

	memset(cfg, 0, sizeof(*cfg));
	ps = calloc(1, sizeof(*ps));
	if (!ps) {
		fprintf(err, "%s: %s\n", name, strerror(ENOMEM));
		return -ENOMEM;
	}
	ps->name = name;
	ps->p = text;
	ps->end = text + len;
	ps->line = 1;
	ps->err = err;
	ps->cfg = cfg;
	snprintf(cfg->file, sizeof(cfg->file), "%s", name);
	global_defaults(cfg);

	for (;;) {
		t = read_stmt(ps, &line);
		if (ps->nomem)
			break;
		if (t == T_OPEN) {
			if (ps->nw == 0) {
				perr(ps, line, "\"{\" without a block name");
				skip_block(ps, line);
				continue;
			}
			if (ps->bad) {
				skip_block(ps, line);
				continue;
			}
			if (ps->ctx != CTX_TOP && is_block_word(&ps->w[0])) {
				block_desc(ps, desc, sizeof(desc));
				perr(ps, line,
				     "missing \"}\" before \"%s\" (%s, line %d)",
				     ps->w[0].s, desc, ps->block_line);
				close_block(ps);
			}
			if (ps->ctx != CTX_TOP) {
				perr(ps, line,
				     "unexpected \"{\" after \"%s\": blocks do not nest",
				     show(ps, &ps->w[0]));
				skip_block(ps, line);
				continue;
			}
			open_block(ps);
			continue;
		}
		if (ps->nw > 0) {
			if (t == T_SPLIT)
				perr(ps, line, "missing \";\" before \"%s\"",
				     show(ps, &ps->back));
			else if (t == T_CLOSE)
				perr(ps, line, "missing \";\" before \"}\"");
			else if (t == T_EOF)
				perr(ps, line,
				     "missing \";\" at the end of the file");
			if (!ps->bad)
				directive(ps);
			if (ps->nomem)
				break;
		}
		if (t == T_CLOSE) {
			if (ps->ctx == CTX_TOP)
				perr(ps, line, "unexpected \"}\"");
			else
				close_block(ps);
		} else if (t == T_EOF) {
			ps->eof_line = line;
			if (ps->ctx != CTX_TOP) {
				block_desc(ps, desc, sizeof(desc));
				perr(ps, line,
				     "missing \"}\" at the end of the file (%s, line %d)",
				     desc, ps->block_line);
				close_block(ps);
			}
			break;
		}
	}
	stmt_clear(ps);
	if (ps->has_back)
		free(ps->back.s);
	if (!ps->nomem)
		finish(ps);
	if (ps->nomem) {
		fprintf(err, "%s: %s\n", name, strerror(ENOMEM));
		ret = -ENOMEM;
	} else {
		ret = ps->errors;
	}
	free(ps->notes);
	free(ps);
	if (ret)
		px_config_free(cfg);
	return ret;
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

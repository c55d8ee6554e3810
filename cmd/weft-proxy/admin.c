/* SPDX-License-Identifier: MIT */
/*
 * The admin listener: `GET /metrics` answers Prometheus's text format
 * (version 0.0.4), `GET /status` a JSON document with the same figures.
 * One request per connection (HTTP/1.0 style: the answer ends with a
 * close), the request head bounded to 4 KiB and 5 s.  Figures are this
 * worker process's (with `procs` > 1 each scrape answers for the process
 * that accepted it: the `pid` field / label says which).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy.h"

#define HEAD_MAX 4096

static uint64_t
ld(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void
hist(FILE *f, const char *name, const char *lis, struct px_hist *h)
{
	uint64_t cum = 0;

	for (int i = 0; i <= PX_HIST_N; i++) {
		cum += ld(&h->b[i]);
		if (i < PX_HIST_N)
			fprintf(f, "%s_bucket{listener=\"%s\",le=\"%g\"} %"
				PRIu64 "\n", name, lis, px_hist_bounds[i], cum);
		else
			fprintf(f, "%s_bucket{listener=\"%s\",le=\"+Inf\"} %"
				PRIu64 "\n", name, lis, cum);
	}
	fprintf(f, "%s_sum{listener=\"%s\"} %.9f\n", name, lis,
		(double)ld(&h->sum_ns) / 1e9);
	fprintf(f, "%s_count{listener=\"%s\"} %" PRIu64 "\n", name, lis,
		ld(&h->count));
}

/* Server state under its pool's lock: 1 up, 0 down; and its active. */
static int
srv_snap(struct px_srv *s, int *active)
{
	int up;

	pthread_mutex_lock(&s->pool->lock);
	up = px_srv_usable_locked(s, weft_now());
	*active = s->active;
	pthread_mutex_unlock(&s->pool->lock);
	return up;
}

static void
metrics(FILE *f, struct px_state *st)
{
	const struct px_config *cfg = st->cfg;

	fprintf(f, "# HELP weft_proxy_info The worker process.\n"
		   "# TYPE weft_proxy_info gauge\n"
		   "weft_proxy_info{pid=\"%d\",version=\"%s\"} 1\n",
		(int)st->pid, weft_version());
	fprintf(f, "# HELP weft_proxy_uptime_seconds Since the worker "
		   "process started.\n# TYPE weft_proxy_uptime_seconds gauge\n"
		   "weft_proxy_uptime_seconds %.3f\n",
		(double)(weft_now() - st->started) / 1e9);
	fprintf(f, "# HELP weft_proxy_connections_active Sessions open now."
		   "\n# TYPE weft_proxy_connections_active gauge\n");
	for (int i = 0; i < cfg->nlisteners; i++)
		fprintf(f, "weft_proxy_connections_active{listener=\"%s\"} %d"
			"\n", st->lis[i].c->name,
			atomic_load(&st->lis[i].active));
	fprintf(f, "# HELP weft_proxy_connections_total Sessions accepted.\n"
		   "# TYPE weft_proxy_connections_total counter\n");
	for (int i = 0; i < cfg->nlisteners; i++)
		fprintf(f, "weft_proxy_connections_total{listener=\"%s\"} %"
			PRIu64 "\n", st->lis[i].c->name,
			ld(&st->lis[i].total));
	fprintf(f, "# HELP weft_proxy_queue_length Sessions waiting for a "
		   "slot or a server.\n# TYPE weft_proxy_queue_length gauge\n");
	for (int i = 0; i < cfg->nlisteners; i++)
		fprintf(f, "weft_proxy_queue_length{listener=\"%s\"} %d\n",
			st->lis[i].c->name, atomic_load(&st->lis[i].queued));
	fprintf(f, "# HELP weft_proxy_sessions_ended_total Sessions ended, "
		   "by reason.\n# TYPE weft_proxy_sessions_ended_total "
		   "counter\n");
	for (int i = 0; i < cfg->nlisteners; i++)
		for (int e = 0; e < PX_END_N; e++)
			fprintf(f, "weft_proxy_sessions_ended_total{listener="
				"\"%s\",reason=\"%s\"} %" PRIu64 "\n",
				st->lis[i].c->name, px_end_names[e],
				ld(&st->lis[i].ended[e]));
	fprintf(f, "# HELP weft_proxy_bytes_total Bytes carried, by "
		   "direction.\n# TYPE weft_proxy_bytes_total counter\n");
	for (int i = 0; i < cfg->nlisteners; i++)
		fprintf(f, "weft_proxy_bytes_total{listener=\"%s\",direction="
			"\"in\"} %" PRIu64 "\nweft_proxy_bytes_total{listener="
			"\"%s\",direction=\"out\"} %" PRIu64 "\n",
			st->lis[i].c->name, ld(&st->lis[i].bytes_in),
			st->lis[i].c->name, ld(&st->lis[i].bytes_out));
	fprintf(f, "# HELP weft_proxy_connect_seconds Time to connect to a "
		   "server.\n# TYPE weft_proxy_connect_seconds histogram\n");
	for (int i = 0; i < cfg->nlisteners; i++)
		hist(f, "weft_proxy_connect_seconds", st->lis[i].c->name,
		     &st->lis[i].connect_time);
	fprintf(f, "# HELP weft_proxy_session_seconds Session duration.\n"
		   "# TYPE weft_proxy_session_seconds histogram\n");
	for (int i = 0; i < cfg->nlisteners; i++)
		hist(f, "weft_proxy_session_seconds", st->lis[i].c->name,
		     &st->lis[i].duration);

	fprintf(f, "# HELP weft_proxy_server_up 1 when the server gets new "
		   "sessions (health checks, ejection).\n"
		   "# TYPE weft_proxy_server_up gauge\n");
	for (int i = 0; i < cfg->npools; i++)
		for (int j = 0; j < st->pools[i].c->nservers; j++) {
			struct px_srv *s = &st->pools[i].srv[j];
			int active;

			fprintf(f, "weft_proxy_server_up{pool=\"%s\",server="
				"\"%s\"} %d\n", st->pools[i].c->name,
				s->c->name, srv_snap(s, &active));
		}
	fprintf(f, "# HELP weft_proxy_server_connections_active Sessions "
		   "on the server now.\n"
		   "# TYPE weft_proxy_server_connections_active gauge\n");
	for (int i = 0; i < cfg->npools; i++)
		for (int j = 0; j < st->pools[i].c->nservers; j++) {
			struct px_srv *s = &st->pools[i].srv[j];
			int active;

			srv_snap(s, &active);
			fprintf(f, "weft_proxy_server_connections_active{pool="
				"\"%s\",server=\"%s\"} %d\n",
				st->pools[i].c->name, s->c->name, active);
		}
	fprintf(f, "# HELP weft_proxy_server_connections_total Sessions "
		   "connected to the server.\n"
		   "# TYPE weft_proxy_server_connections_total counter\n");
	for (int i = 0; i < cfg->npools; i++)
		for (int j = 0; j < st->pools[i].c->nservers; j++) {
			struct px_srv *s = &st->pools[i].srv[j];

			fprintf(f, "weft_proxy_server_connections_total{pool="
				"\"%s\",server=\"%s\"} %" PRIu64 "\n",
				st->pools[i].c->name, s->c->name,
				ld(&s->total));
		}
	fprintf(f, "# HELP weft_proxy_server_bytes_total Bytes to and from "
		   "the server.\n"
		   "# TYPE weft_proxy_server_bytes_total counter\n");
	for (int i = 0; i < cfg->npools; i++)
		for (int j = 0; j < st->pools[i].c->nservers; j++) {
			struct px_srv *s = &st->pools[i].srv[j];
			const char *pn = st->pools[i].c->name;

			fprintf(f, "weft_proxy_server_bytes_total{pool=\"%s\","
				"server=\"%s\",direction=\"in\"} %" PRIu64 "\n"
				"weft_proxy_server_bytes_total{pool=\"%s\","
				"server=\"%s\",direction=\"out\"} %" PRIu64
				"\n", pn, s->c->name, ld(&s->bytes_in), pn,
				s->c->name, ld(&s->bytes_out));
		}
	fprintf(f, "# HELP weft_proxy_server_connect_errors_total Failed "
		   "connects, by cause.\n"
		   "# TYPE weft_proxy_server_connect_errors_total counter\n");
	for (int i = 0; i < cfg->npools; i++)
		for (int j = 0; j < st->pools[i].c->nservers; j++)
			for (int e = 0; e < PX_CERR_N; e++) {
				struct px_srv *s = &st->pools[i].srv[j];

				fprintf(f, "weft_proxy_server_connect_errors_"
					"total{pool=\"%s\",server=\"%s\","
					"cause=\"%s\"} %" PRIu64 "\n",
					st->pools[i].c->name, s->c->name,
					px_cerr_names[e], ld(&s->cerr[e]));
			}
	fprintf(f, "# HELP weft_proxy_server_checks_failed_total Failed "
		   "active checks.\n"
		   "# TYPE weft_proxy_server_checks_failed_total counter\n");
	for (int i = 0; i < cfg->npools; i++)
		for (int j = 0; j < st->pools[i].c->nservers; j++) {
			struct px_srv *s = &st->pools[i].srv[j];

			fprintf(f, "weft_proxy_server_checks_failed_total{pool="
				"\"%s\",server=\"%s\"} %" PRIu64 "\n",
				st->pools[i].c->name, s->c->name,
				ld(&s->checks_failed));
		}
	fprintf(f, "# HELP weft_proxy_proxy_header_errors_total Malformed "
		   "or late PROXY headers.\n"
		   "# TYPE weft_proxy_proxy_header_errors_total counter\n"
		   "weft_proxy_proxy_header_errors_total %" PRIu64 "\n",
		ld(&st->pp_errors));
	fprintf(f, "# HELP weft_proxy_pipes Pipes held for splice.\n"
		   "# TYPE weft_proxy_pipes gauge\nweft_proxy_pipes %d\n",
		atomic_load(&st->pipes_used));
	fprintf(f, "# HELP weft_proxy_log_dropped_total Access log lines "
		   "dropped (the disk was slower than the traffic).\n"
		   "# TYPE weft_proxy_log_dropped_total counter\n"
		   "weft_proxy_log_dropped_total %" PRIu64 "\n",
		px_log_dropped());
}

static void
status(FILE *f, struct px_state *st)
{
	const struct px_config *cfg = st->cfg;

	fprintf(f, "{\"pid\":%d,\"version\":\"%s\",\"uptime_s\":%.3f,"
		   "\"listeners\":[", (int)st->pid, weft_version(),
		(double)(weft_now() - st->started) / 1e9);
	for (int i = 0; i < cfg->nlisteners; i++) {
		struct px_lis_rt *l = &st->lis[i];

		fprintf(f, "%s{\"name\":\"%s\",\"pool\":\"%s\",\"active\":%d,"
			   "\"total\":%" PRIu64 ",\"queued\":%d,\"bytes_in\":%"
			   PRIu64 ",\"bytes_out\":%" PRIu64 ",\"ended\":{",
			i ? "," : "", l->c->name, l->pool->c->name,
			atomic_load(&l->active), ld(&l->total),
			atomic_load(&l->queued), ld(&l->bytes_in),
			ld(&l->bytes_out));
		for (int e = 0; e < PX_END_N; e++)
			fprintf(f, "%s\"%s\":%" PRIu64, e ? "," : "",
				px_end_names[e], ld(&l->ended[e]));
		fprintf(f, "}}");
	}
	fprintf(f, "],\"pools\":[");
	for (int i = 0; i < cfg->npools; i++) {
		struct px_pool_rt *p = &st->pools[i];

		fprintf(f, "%s{\"name\":\"%s\",\"servers\":[", i ? "," : "",
			p->c->name);
		for (int j = 0; j < p->c->nservers; j++) {
			struct px_srv *s = &p->srv[j];
			int active;
			int up = srv_snap(s, &active);
			char addr[PX_HOST_MAX + PX_PATH_MAX + 16];

			px_addr_format(&s->c->addr, addr, sizeof(addr));
			fprintf(f, "%s{\"name\":\"%s\",\"address\":\"%s\","
				   "\"up\":%s,\"backup\":%s,\"weight\":%d,"
				   "\"active\":%d,\"total\":%" PRIu64
				   ",\"connect_errors\":{",
				j ? "," : "", s->c->name, addr,
				up ? "true" : "false",
				s->c->backup ? "true" : "false", s->c->weight,
				active, ld(&s->total));
			for (int e = 0; e < PX_CERR_N; e++)
				fprintf(f, "%s\"%s\":%" PRIu64, e ? "," : "",
					px_cerr_names[e], ld(&s->cerr[e]));
			fprintf(f, "}}");
		}
		fprintf(f, "]}");
	}
	fprintf(f, "],\"proxy_header_errors\":%" PRIu64 ",\"pipes\":%d,"
		   "\"log_dropped\":%" PRIu64 "}\n", ld(&st->pp_errors),
		atomic_load(&st->pipes_used), px_log_dropped());
}

static void
answer(int fd, const char *status_line, const char *type, const char *body,
       size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.0 %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status_line, type, len);
	int64_t deadline = weft_now() + 5 * WEFT_SEC;

	if (weft_write_full(fd, head, (size_t)n, NULL, deadline) == n && len)
		weft_write_full(fd, body, len, NULL, deadline);
}

void
px_admin_conn(int fd, void *arg)
{
	struct px_state *st = arg;
	int64_t deadline = weft_now() + 5 * WEFT_SEC;
	char *head = malloc(HEAD_MAX + 1);
	size_t have = 0;
	char *body = NULL;
	size_t blen = 0;
	FILE *f;

	if (!head)
		goto out;
	while (have < HEAD_MAX) {
		ssize_t n = weft_recv(fd, head + have, HEAD_MAX - have, 0,
				      deadline);

		if (n <= 0)
			goto out;
		have += (size_t)n;
		head[have] = '\0';
		if (strstr(head, "\r\n\r\n") || strstr(head, "\n\n"))
			break;
	}
	if (strncmp(head, "GET ", 4)) {
		answer(fd, "405 Method Not Allowed", "text/plain",
		       "GET only\n", 9);
		goto out;
	}
	f = open_memstream(&body, &blen);
	if (!f) {
		answer(fd, "500 Internal Server Error", "text/plain", "", 0);
		goto out;
	}
	if (!strncmp(head + 4, "/metrics ", 9) ||
	    !strncmp(head + 4, "/metrics\r", 9)) {
		metrics(f, st);
		fclose(f);
		answer(fd, "200 OK", "text/plain; version=0.0.4", body, blen);
	} else if (!strncmp(head + 4, "/status ", 8) ||
		   !strncmp(head + 4, "/status\r", 8)) {
		status(f, st);
		fclose(f);
		answer(fd, "200 OK", "application/json", body, blen);
	} else {
		fclose(f);
		answer(fd, "404 Not Found", "text/plain",
		       "try /metrics or /status\n", 24);
	}
out:
	free(body);
	free(head);
	weft_close(fd, 0);
}

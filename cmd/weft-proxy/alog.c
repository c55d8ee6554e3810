/* SPDX-License-Identifier: MIT */
/*
 * The access log: one line per session, never blocking a worker.
 *
 * Sessions append their line to an in-memory buffer under `lock` (a
 * pthread mutex held for one memcpy); a dedicated writer thread swaps the
 * buffer for an empty one and writes it out, when it is half full or
 * every 200 ms.  While the disk is slower than the traffic the buffer
 * fills up and further lines are dropped and counted (the metrics show
 * weft_proxy_log_dropped_total), so a stuck disk costs log lines, never
 * latency.  SIGUSR1 (logrotate's postrotate) makes the writer reopen the
 * path after its next write, so a rotated file is let go within 200 ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

#define LOG_BUF (256 << 10)

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* the writer waits on it, under lock */
	char *buf;		/* under lock: the lines not yet taken */
	size_t len;		/* under lock */
	char *spare;		/* writer only: the buffer being written */
	bool stop;		/* under lock */
	bool reopen;		/* under lock */
	atomic_bool on;		/* the writer runs; any thread reads it */
	int fd;			/* writer only (and open/close) */
	char path[4096];
	pthread_t thread;
	_Atomic uint64_t dropped;
} lg = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .cond = PTHREAD_COND_INITIALIZER,
	 .fd = -1 };

static int
open_path(void)
{
	int fd;

	if (!strcmp(lg.path, "stderr"))
		return dup(2);
	fd = open(lg.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

static void
write_out(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(lg.fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;	/* a full disk: those lines are lost */
		p += w;
		n -= (size_t)w;
	}
}

static void *
writer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lg.lock);
	for (;;) {
		char *b;
		size_t n;
		bool reopen;
		bool stop;

		if (!lg.len && !lg.stop && !lg.reopen) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&lg.cond, &lg.lock, &ts);
		}
		b = lg.buf;
		n = lg.len;
		lg.buf = lg.spare;
		lg.len = 0;
		lg.spare = b;
		reopen = lg.reopen;
		lg.reopen = false;
		stop = lg.stop;
		pthread_mutex_unlock(&lg.lock);
		if (n)
			write_out(b, n);
		if (reopen) {
			int fd = open_path();

			if (fd >= 0) {
				close(lg.fd);
				lg.fd = fd;
			} else {
				px_msg("cannot reopen the access log %s: %s",
				       lg.path, strerror(-fd));
			}
		}
		pthread_mutex_lock(&lg.lock);
		if (stop && !lg.len)
			break;
	}
	pthread_mutex_unlock(&lg.lock);
	return NULL;
}

int
px_log_open(const char *where)
{
	int r;

	if (!where || !where[0])
		return 0;
	snprintf(lg.path, sizeof(lg.path), "%s", where);
	lg.fd = open_path();
	if (lg.fd < 0) {
		r = lg.fd;
		lg.fd = -1;
		px_msg("cannot open the access log %s: %s", where,
		       strerror(-r));
		return r;
	}
	lg.buf = malloc(LOG_BUF);
	lg.spare = malloc(LOG_BUF);
	if (!lg.buf || !lg.spare)
		return -ENOMEM;
	r = pthread_create(&lg.thread, NULL, writer, NULL);
	if (r)
		return -r;
	lg.on = true;
	return 0;
}

void
px_log_reopen(void)
{
	if (!lg.on)
		return;
	pthread_mutex_lock(&lg.lock);
	lg.reopen = true;
	pthread_cond_signal(&lg.cond);
	pthread_mutex_unlock(&lg.lock);
}

void
px_log_close(void)
{
	if (!lg.on)
		return;
	pthread_mutex_lock(&lg.lock);
	lg.stop = true;
	pthread_cond_signal(&lg.cond);
	pthread_mutex_unlock(&lg.lock);
	pthread_join(lg.thread, NULL);
	lg.on = false;
	close(lg.fd);
	lg.fd = -1;
	free(lg.buf);
	free(lg.spare);
	lg.buf = lg.spare = NULL;
}

void
px_log_line(const char *line, size_t len)
{
	bool kick;

	if (!lg.on)
		return;
	pthread_mutex_lock(&lg.lock);
	if (lg.stop || lg.len + len + 1 > LOG_BUF) {
		pthread_mutex_unlock(&lg.lock);
		atomic_fetch_add_explicit(&lg.dropped, 1,
					  memory_order_relaxed);
		return;
	}
	memcpy(lg.buf + lg.len, line, len);
	lg.buf[lg.len + len] = '\n';
	lg.len += len + 1;
	kick = lg.len > LOG_BUF / 2;
	if (kick)
		pthread_cond_signal(&lg.cond);
	pthread_mutex_unlock(&lg.lock);
}

uint64_t
px_log_dropped(void)
{
	return atomic_load_explicit(&lg.dropped, memory_order_relaxed);
}

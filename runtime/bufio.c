/* SPDX-License-Identifier: MIT */
/*
 * Buffered I/O on an fd (weft.h, "Buffered I/O"): a reader with a line
 * (delimiter) reader, exact reads and plain reads, and a writer with an
 * explicit flush.  Both sit on weft_read()/weft_write(), so they park only
 * the calling task and inherit the deadline and cancellation rules of the
 * I/O calls; this file adds no park of its own.
 *
 * Memory is bounded by construction: each object is one allocation of its
 * header and a buffer of the size asked for at make time, never grown.  A
 * line longer than what the buffer (or the caller's copy buffer) can hold
 * is refused with -EMSGSIZE and left where it is, so the caller can drain
 * it with weft_reader_read() and nothing is lost.
 *
 * Neither object is shared: one task uses a reader or writer at a time
 * (like an unlocked FILE).  Nothing here takes a lock.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "io/base.h"
#include "sched/park.h"

#define BUF_DEFAULT 4096
#define BUF_MAX	    ((size_t)64 << 20)

/* Used by one task at a time (the caller's contract): no field is shared. */
struct weft_reader {
	int fd;
	bool eof;		/* a read returned 0; sticky */
	size_t cap;		/* bytes of buf */
	size_t head;		/* buf[head..tail) is buffered, unread */
	size_t tail;
	char buf[];
};

/* Used by one task at a time (the caller's contract): no field is shared. */
struct weft_writer {
	int fd;
	size_t cap;		/* bytes of buf */
	size_t len;		/* buf[0..len) waits for a flush */
	char buf[];
};

/*
 * The checks every call makes on entry, in the order the I/O calls make
 * them: coroutine context (-EPERM), then cancellation (-ECANCELED), so that
 * a cancelled task gets -ECANCELED from every call even when the buffer
 * could have served it.  A passed deadline is not checked here: a call the
 * buffer can serve needs no wait, as weft_select() with deadline 0.
 */
static int
entry_check(void)
{
	struct weft_task *self = weft__task_self();

	if (!self)
		return -EPERM;
	if (weft_task_is_cancelled(self))
		return -ECANCELED;
	return 0;
}

static int
size_check(size_t *size)
{
	if (*size == 0)
		*size = BUF_DEFAULT;
	return *size > BUF_MAX ? -EINVAL : 0;
}

int
weft_reader_make(struct weft_reader **out, int fd, size_t size)
{
	struct weft_reader *r;

	if (!out || fd < 0 || size_check(&size) < 0)
		return -EINVAL;
	if (weft__fail_alloc())
		return -ENOMEM;
	r = malloc(sizeof(*r) + size);
	if (!r)
		return -ENOMEM;
	r->fd = fd;
	r->eof = false;
	r->cap = size;
	r->head = r->tail = 0;
	*out = r;
	return 0;
}

void
weft_reader_free(struct weft_reader *r)
{
	free(r);
}

size_t
weft_reader_buffered(const struct weft_reader *r)
{
	return r ? r->tail - r->head : 0;
}

/* Move the unread bytes to the front of the buffer. */
static void
compact(struct weft_reader *r)
{
	if (r->head == 0)
		return;
	memmove(r->buf, r->buf + r->head, r->tail - r->head);
	r->tail -= r->head;
	r->head = 0;
}

/*
 * One read into the free end of the buffer (compacting first if the end
 * is full).  Returns the bytes added, 0 at end of file (r->eof set), or a
 * negative errno (nothing changed).  Coroutine context.
 */
static ssize_t
fill(struct weft_reader *r, int64_t deadline)
{
	ssize_t n;

	if (r->tail == r->cap)
		compact(r);
	n = weft_read(r->fd, r->buf + r->tail, r->cap - r->tail, deadline);
	if (n > 0)
		r->tail += (size_t)n;
	else if (n == 0)
		r->eof = true;
	return n;
}

/*
 * Find a line ending in `delim` of at most `limit` bytes (delimiter
 * included; limit <= r->cap), reading more as needed.  Returns its length
 * with the line at r->buf + r->head (not consumed yet), the length of a
 * partial last line at end of file, 0 at end of file with nothing
 * buffered, -EMSGSIZE when `limit` bytes hold no delimiter, or the read's
 * error.  Nothing is consumed here.  Coroutine context.
 */
static ssize_t
find_line(struct weft_reader *r, int delim, size_t limit, int64_t deadline)
{
	size_t from = 0;	/* bytes after head already searched */

	for (;;) {
		size_t have = r->tail - r->head;
		size_t upto = have < limit ? have : limit;
		const char *p = NULL;
		ssize_t n;

		if (upto > from)
			p = memchr(r->buf + r->head + from, delim, upto - from);
		if (p)
			return p - (r->buf + r->head) + 1;
		from = upto;
		if (have >= limit)
			return -EMSGSIZE;
		if (r->eof)
			return (ssize_t)have;
		n = fill(r, deadline);
		if (n < 0)
			return n;
	}
}

ssize_t
weft_reader_read_until(struct weft_reader *r, int delim, const char **line,
		       int64_t deadline)
{
	ssize_t n;
	int ret;

	if (!r || !line || delim < 0 || delim > 255)
		return -EINVAL;
	ret = entry_check();
	if (ret < 0)
		return ret;
	n = find_line(r, delim, r->cap, deadline);
	if (n < 0)
		return n;
	*line = r->buf + r->head;
	r->head += (size_t)n;
	return n;
}

ssize_t
weft_reader_read_line(struct weft_reader *r, char *buf, size_t size,
		      int64_t deadline)
{
	size_t limit;
	ssize_t n;
	int ret;

	if (!r || !buf || size < 2)
		return -EINVAL;
	ret = entry_check();
	if (ret < 0)
		return ret;
	limit = size - 1 < r->cap ? size - 1 : r->cap;
	n = find_line(r, '\n', limit, deadline);
	if (n < 0)
		return n;
	memcpy(buf, r->buf + r->head, (size_t)n);
	buf[n] = '\0';
	r->head += (size_t)n;
	return n;
}

ssize_t
weft_reader_read(struct weft_reader *r, void *buf, size_t len,
		 int64_t deadline)
{
	size_t have;
	ssize_t n;
	int ret;

	if (!r || (!buf && len))
		return -EINVAL;
	ret = entry_check();
	if (ret < 0)
		return ret;
	if (len == 0)
		return 0;
	if (r->head == r->tail) {
		if (r->eof)
			return 0;
		r->head = r->tail = 0;
		/* A read as large as the buffer skips it: no copy. */
		if (len >= r->cap) {
			n = weft_read(r->fd, buf, len, deadline);
			if (n == 0)
				r->eof = true;
			return n;
		}
		n = fill(r, deadline);
		if (n <= 0)
			return n;
	}
	have = r->tail - r->head;
	if (len > have)
		len = have;
	memcpy(buf, r->buf + r->head, len);
	r->head += len;
	return (ssize_t)len;
}

ssize_t
weft_reader_read_full(struct weft_reader *r, void *buf, size_t len,
		      size_t *done, int64_t deadline)
{
	size_t got = 0;
	ssize_t n = 0;

	if (done)
		*done = 0;
	if (!r || (!buf && len))
		return -EINVAL;
	if (len > SSIZE_MAX)
		return -EINVAL;
	do {
		n = weft_reader_read(r, (char *)buf + got, len - got,
				     deadline);
		if (n > 0)
			got += (size_t)n;
		if (done)
			*done = got;
	} while (n > 0 && got < len);
	if (n < 0)
		return n;
	return (ssize_t)got;
}

int
weft_writer_make(struct weft_writer **out, int fd, size_t size)
{
	struct weft_writer *w;

	if (!out || fd < 0 || size_check(&size) < 0)
		return -EINVAL;
	if (weft__fail_alloc())
		return -ENOMEM;
	w = malloc(sizeof(*w) + size);
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->cap = size;
	w->len = 0;
	*out = w;
	return 0;
}

void
weft_writer_free(struct weft_writer *w)
{
	free(w);
}

size_t
weft_writer_buffered(const struct weft_writer *w)
{
	return w ? w->len : 0;
}

/*
 * Write out the buffer.  What was written leaves it, what was not stays
 * at its front for the next flush.  Coroutine context.
 */
static int
flush(struct weft_writer *w, int64_t deadline)
{
	size_t done = 0;
	ssize_t n;

	if (w->len == 0)
		return 0;
	n = weft_write_full(w->fd, w->buf, w->len, &done, deadline);
	if (done) {
		memmove(w->buf, w->buf + done, w->len - done);
		w->len -= done;
	}
	return n < 0 ? (int)n : 0;
}

int
weft_writer_flush(struct weft_writer *w, int64_t deadline)
{
	int ret;

	if (!w)
		return -EINVAL;
	ret = entry_check();
	if (ret < 0)
		return ret;
	return flush(w, deadline);
}

ssize_t
weft_writer_write(struct weft_writer *w, const void *buf, size_t len,
		  size_t *done, int64_t deadline)
{
	size_t direct = 0;
	ssize_t n;
	int ret;

	if (done)
		*done = 0;
	if (!w || (!buf && len) || len > SSIZE_MAX)
		return -EINVAL;
	ret = entry_check();
	if (ret < 0)
		return ret;
	if (len > w->cap - w->len) {
		/* Make room: none of buf is taken if this fails. */
		ret = flush(w, deadline);
		if (ret < 0)
			return ret;
		if (len >= w->cap) {
			/* Too big to buffer: straight to the fd. */
			n = weft_write_full(w->fd, buf, len, &direct,
					    deadline);
			if (done)
				*done = direct;
			return n < 0 ? n : (ssize_t)len;
		}
	}
	memcpy(w->buf + w->len, buf, len);
	w->len += len;
	if (done)
		*done = len;
	return (ssize_t)len;
}

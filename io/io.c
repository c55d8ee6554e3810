/* SPDX-License-Identifier: MIT */
/* Backend selection and the eventfd helpers both backends use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/io.h"

/*
 * Can this process set up a ring at all?  (seccomp, io_uring_disabled)
 * Asked once per process: 0 unknown, 1 yes, 2 no.  Racing first callers
 * both probe and store the same answer.
 */
static int uring_ok;

static bool
uring_usable(void)
{
	struct io_uring ring;
	int ok = __atomic_load_n(&uring_ok, __ATOMIC_RELAXED);

	if (ok == 0) {
		ok = io_uring_queue_init(2, &ring, 0) < 0 ? 2 : 1;
		if (ok == 1)
			io_uring_queue_exit(&ring);
		__atomic_store_n(&uring_ok, ok, __ATOMIC_RELAXED);
	}
	return ok == 1;
}

const struct weft__io_ops *
weft__io_select(const char *name)
{
	if (name && *name) {
		if (!strcmp(name, "uring") || !strcmp(name, "io_uring"))
			return &weft__io_uring_ops;
		if (!strcmp(name, "epoll"))
			return &weft__io_epoll_ops;
		return NULL;
	}
	return uring_usable() ? &weft__io_uring_ops : &weft__io_epoll_ops;
}

int
weft__io_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		return -errno;
	return fd;
}

/* Any thread; async-signal-safe. */
void
weft__io_eventfd_signal(int efd)
{
	uint64_t one = 1;
	ssize_t r;

	do {
		r = write(efd, &one, sizeof(one));
	} while (r < 0 && errno == EINTR);
	/* EAGAIN means the counter is saturated: a wake-up is pending anyway. */
}

/*
 * Slot tables.  A key is (generation << 32) | (index + IO_SLOT_BASE), so it
 * never collides with the IO_TAG_* values, and a key whose generation is
 * out of date (its slot was freed and reused) matches nothing.
 */
int
weft__ioslot_get(struct weft__ioslots *s, struct weft__ioreq *req,
		 uint64_t *key)
{
	struct weft__ioslot *v;
	uint32_t i, n;

	if (s->free_head == UINT32_MAX || s->n == 0) {
		n = s->n ? s->n * 2 : 64;
		if (n > (UINT32_MAX - IO_SLOT_BASE) / 2)
			return -ENOMEM;
		v = realloc(s->v, sizeof(*v) * n);
		if (!v)
			return -ENOMEM;
		for (i = s->n; i < n; i++) {
			v[i].req = NULL;
			v[i].gen = 1;
			v[i].next_free = i + 1 < n ? i + 1 : UINT32_MAX;
		}
		s->v = v;
		s->free_head = s->n;
		s->n = n;
	}
	i = s->free_head;
	s->free_head = s->v[i].next_free;
	s->v[i].req = req;
	s->used++;
	*key = ((uint64_t)s->v[i].gen << 32) | (i + IO_SLOT_BASE);
	return 0;
}

struct weft__ioreq *
weft__ioslot_find(struct weft__ioslots *s, uint64_t key)
{
	uint32_t i = (uint32_t)key - IO_SLOT_BASE;

	if ((uint32_t)key < IO_SLOT_BASE || i >= s->n ||
	    s->v[i].gen != (uint32_t)(key >> 32))
		return NULL;
	return s->v[i].req;
}

/* Free the slot of `key`, which must be live. */
void
weft__ioslot_put(struct weft__ioslots *s, uint64_t key)
{
	uint32_t i = (uint32_t)key - IO_SLOT_BASE;

	s->v[i].req = NULL;
	/* Never 0 after a wrap: keeps keys distinct from the tags. */
	if (++s->v[i].gen == 0)
		s->v[i].gen = 1;
	s->v[i].next_free = s->free_head;
	s->free_head = i;
	s->used--;
}

void
weft__ioslots_free(struct weft__ioslots *s)
{
	free(s->v);
	s->v = NULL;
	s->n = 0;
	s->free_head = UINT32_MAX;
	s->used = 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * I/O on pipes, regular files and unix socketpairs: reads and writes in
 * every form, short reads and writes, end of file, EPIPE, fd passing,
 * splice, weft_poll(), and the error returns of the calls.  Every test runs
 * under io_uring and under epoll (see io_harness.h).
 */
#include <limits.h>

#include "io_harness.h"

/* The slow reader's pipe test moves this much. */
#define BIG_PIPE ((size_t)1024 * 1024)

/* Readers parked at once, each on its own pipe (two fds each). */
#if defined(WEFT_TSAN)
#define MANY_READERS 1000
#else
#define MANY_READERS 4000
#endif

/* Make the pipe `fd` hold `size` bytes (F_SETPIPE_SZ). */
static bool
set_pipe_size(int fd, int size)
{
	int r = fcntl(fd, F_SETPIPE_SZ, size);

	T_EXPECT(r >= size, "F_SETPIPE_SZ(%d): %d (%s)", size, r,
		 strerror(errno));
	return r >= size;
}

/* Fill a pipe whose capacity is 4096 bytes; returns false on failure. */
static bool
fill_small_pipe(int p[2])
{
	static const char page[4096];
	ssize_t n;

	if (!set_pipe_size(p[1], 4096))
		return false;
	n = weft_write(p[1], page, sizeof(page), io_dl());
	T_EXPECT_INT(n, ==, (ssize_t)sizeof(page));
	return n == (ssize_t)sizeof(page);
}

/*
 * pipe
 */

static void *
write_read_main(void *arg)
{
	char buf[64];
	int p[2];
	ssize_t n;

	if (!io_pipe(p))
		return NULL;
	n = weft_write(p[1], "hello, weft", 11, io_dl());
	T_EXPECT_INT(n, ==, 11);
	memset(buf, 0, sizeof(buf));
	n = weft_read(p[0], buf, 11, io_dl());
	T_EXPECT_INT(n, ==, 11);
	T_EXPECT(memcmp(buf, "hello, weft", 11) == 0, "read back \"%.11s\"",
		 buf);
	io_close2(p);
	return NULL;
}

START_TEST(pipe_write_then_read_returns_the_bytes)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(write_read_main, NULL, IO_WORKERS(_i));
}
END_TEST

static void *
short_read_main(void *arg)
{
	char buf[4096];
	int p[2];
	ssize_t n;

	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_write(p[1], "0123456789", 10, io_dl()), ==, 10);
	n = weft_read(p[0], buf, sizeof(buf), io_dl());
	T_EXPECT_INT(n, ==, 10);
	T_EXPECT(n != 10 || memcmp(buf, "0123456789", 10) == 0,
		 "short read returned other bytes");
	/* A read smaller than what is there leaves the rest. */
	T_EXPECT_INT(weft_write(p[1], "abcde", 5, io_dl()), ==, 5);
	T_EXPECT_INT(weft_read(p[0], buf, 3, io_dl()), ==, 3);
	T_EXPECT(memcmp(buf, "abc", 3) == 0, "first part wrong");
	T_EXPECT_INT(weft_read(p[0], buf, sizeof(buf), io_dl()), ==, 2);
	T_EXPECT(memcmp(buf, "de", 2) == 0, "rest wrong");
	io_close2(p);
	return NULL;
}

START_TEST(pipe_short_read_returns_what_is_there)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(short_read_main, NULL, 2);
}
END_TEST

/* A reader parked on an empty pipe, woken by a write; 50 rounds. */
struct parked {
	int fd;
	char buf[64];
};

static void *
parked_reader(void *arg)
{
	struct parked *pk = arg;

	return t_ptr(weft_read(pk->fd, pk->buf, sizeof(pk->buf), io_dl()));
}

static void *
parked_read_main(void *arg)
{
	struct parked pk;
	struct weft_task *t;
	char msg[16];
	intptr_t n;
	int p[2];
	int i;

	if (!io_pipe(p))
		return NULL;
	pk.fd = p[0];
	for (i = 0; i < 50 && !t_failed(); i++) {
		memset(pk.buf, 0, sizeof(pk.buf));
		t = io_spawn(parked_reader, &pk);
		if (!t)
			break;
		IO_WAIT_PARKED(t);
		snprintf(msg, sizeof(msg), "ping %d", i);
		T_EXPECT_INT(weft_write(p[1], msg, strlen(msg), io_dl()), ==,
			     strlen(msg));
		n = io_join(t);
		T_EXPECT_INT(n, ==, strlen(msg));
		T_EXPECT(strcmp(pk.buf, msg) == 0, "round %d read \"%s\"", i,
			 pk.buf);
	}
	io_close2(p);
	return NULL;
}

/* With one worker this also proves the read does not hold the worker. */
START_TEST(pipe_read_parks_until_data_arrives)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(parked_read_main, NULL, IO_WORKERS(_i));
}
END_TEST

static void *
readv_writev_main(void *arg)
{
	static const size_t wsz[] = {1, 0, 7, 100, 3, 1000, 64, 2, 500, 11};
	static const size_t rsz[] = {5, 300, 0, 1, 900, 250, 232};
	struct iovec wv[10];
	struct iovec rv[7];
	uint8_t *wb = malloc(2000);
	uint8_t *rb = malloc(2000);
	size_t total = 0;
	size_t off = 0;
	ssize_t n;
	int p[2];
	int i;

	T_EXPECT(wb && rb, "malloc failed");
	if (!wb || !rb || !io_pipe(p))
		goto out;
	for (i = 0; i < 10; i++) {
		wv[i].iov_base = wb + total;
		wv[i].iov_len = wsz[i];
		total += wsz[i];
	}
	io_fill(wb, total, 7, 0);
	for (i = 0; i < 7; i++) {
		rv[i].iov_base = rb + off;
		rv[i].iov_len = rsz[i];
		off += rsz[i];
	}
	T_EXPECT_INT(total, ==, 1688);
	T_EXPECT_INT(off, ==, 1688);
	n = weft_writev(p[1], wv, 10, io_dl());
	T_EXPECT_INT(n, ==, total);
	memset(rb, 0, 2000);
	n = weft_readv(p[0], rv, 7, io_dl());
	T_EXPECT_INT(n, ==, total);
	T_EXPECT_INT(io_mismatch(rb, total, 7, 0), ==, -1);
	io_close2(p);
out:
	free(wb);
	free(rb);
	return NULL;
}

START_TEST(pipe_readv_writev_scatter_and_gather)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(readv_writev_main, NULL, 2);
}
END_TEST

static void *
eof_main(void *arg)
{
	struct parked pk;
	struct weft_task *t;
	char buf[16];
	int p[2];

	/* Data, then end of file, and end of file again. */
	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_write(p[1], "xy", 2, io_dl()), ==, 2);
	T_EXPECT_INT(weft_close(p[1], io_dl()), ==, 0);
	T_EXPECT_INT(weft_read(p[0], buf, sizeof(buf), io_dl()), ==, 2);
	T_EXPECT_INT(weft_read(p[0], buf, sizeof(buf), io_dl()), ==, 0);
	T_EXPECT_INT(weft_read(p[0], buf, sizeof(buf), io_dl()), ==, 0);
	T_EXPECT_INT(weft_close(p[0], io_dl()), ==, 0);

	/* A reader parked on the pipe when the writer closes it. */
	if (!io_pipe(p))
		return NULL;
	pk.fd = p[0];
	t = io_spawn(parked_reader, &pk);
	if (t) {
		IO_WAIT_PARKED(t);
		T_EXPECT_INT(weft_close(p[1], io_dl()), ==, 0);
		T_EXPECT_INT(io_join(t), ==, 0);
	} else {
		close(p[1]);
	}
	close(p[0]);
	return NULL;
}

START_TEST(pipe_read_after_writer_closes_returns_eof)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(eof_main, NULL, 2);
}
END_TEST

/* Writes 100 bytes to a (full) pipe; returns weft_write's result. */
static void *
blocked_writer(void *arg)
{
	static const char data[100];

	return t_ptr(weft_write(*(int *)arg, data, sizeof(data), io_dl()));
}

static void *
epipe_main(void *arg)
{
	struct iovec iov = {(void *)"abc", 3};
	struct weft_task *t;
	size_t done = 77;
	int p[2];

	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_close(p[0], io_dl()), ==, 0);
	T_EXPECT_INT(weft_write(p[1], "x", 1, io_dl()), ==, -EPIPE);
	T_EXPECT_INT(weft_writev(p[1], &iov, 1, io_dl()), ==, -EPIPE);
	T_EXPECT_INT(weft_write_full(p[1], "abc", 3, &done, io_dl()), ==,
		     -EPIPE);
	T_EXPECT_INT(done, ==, 0);
	close(p[1]);

	/* A writer parked on a full pipe when the reader goes away. */
	if (!io_pipe(p))
		return NULL;
	if (fill_small_pipe(p)) {
		t = io_spawn(blocked_writer, &p[1]);
		if (t) {
			IO_WAIT_PARKED(t);
			T_EXPECT_INT(weft_close(p[0], io_dl()), ==, 0);
			p[0] = -1;
			T_EXPECT_INT(io_join(t), ==, -EPIPE);
		}
	}
	io_close2(p);
	return NULL;
}

/*
 * weft.h promises MSG_NOSIGNAL for sends only; for a pipe, SIGPIPE is the
 * process's business, so the test ignores it.
 */
START_TEST(pipe_write_to_closed_reader_returns_epipe)
{
	IO_SKIP_UNLESS_BACKEND();
	signal(SIGPIPE, SIG_IGN);
	IO_RUN(epipe_main, NULL, 2);
	signal(SIGPIPE, SIG_DFL);
}
END_TEST

/* 1 MiB through a 16 KiB pipe to a reader that yields between reads. */
struct bigpipe {
	int p[2];
	uint8_t *wbuf;
	ssize_t wret;
	size_t wdone;
	size_t got;
	long bad_at;
	ssize_t rerr;
	int reads;
};

static void *
big_writer(void *arg)
{
	struct bigpipe *bp = arg;

	bp->wret = weft_write_full(bp->p[1], bp->wbuf, BIG_PIPE, &bp->wdone,
				   io_dl());
	T_EXPECT_INT(weft_close(bp->p[1], io_dl()), ==, 0);
	bp->p[1] = -1;
	return NULL;
}

static void *
slow_reader(void *arg)
{
	struct bigpipe *bp = arg;
	uint8_t *buf = malloc(3000);
	ssize_t n;
	long m;

	T_EXPECT(buf != NULL, "malloc failed");
	while (buf) {
		n = weft_read(bp->p[0], buf, 3000, io_dl());
		if (n <= 0) {
			bp->rerr = n;
			break;
		}
		bp->reads++;
		m = io_mismatch(buf, (size_t)n, 11, bp->got);
		if (m >= 0 && bp->bad_at < 0)
			bp->bad_at = (long)bp->got + m;
		bp->got += (size_t)n;
		weft_yield();
		weft_yield();
	}
	free(buf);
	return NULL;
}

static void *
big_pipe_main(void *arg)
{
	struct bigpipe *bp = arg;
	struct weft_task *r;
	struct weft_task *w;

	if (!io_pipe(bp->p))
		return NULL;
	set_pipe_size(bp->p[1], 16384);
	r = io_spawn(slow_reader, bp);
	w = io_spawn(big_writer, bp);
	io_join(w);
	io_join(r);
	io_close2(bp->p);
	return NULL;
}

START_TEST(pipe_write_full_of_1mib_reaches_slow_reader_in_order)
{
	struct bigpipe bp;

	IO_SKIP_UNLESS_BACKEND();
	memset(&bp, 0, sizeof(bp));
	bp.bad_at = -1;
	bp.wbuf = malloc(BIG_PIPE);
	ck_assert_ptr_nonnull(bp.wbuf);
	io_fill(bp.wbuf, BIG_PIPE, 11, 0);
	IO_RUN(big_pipe_main, &bp, IO_WORKERS(_i));
	ck_assert_msg(bp.wret == (ssize_t)BIG_PIPE,
		      "weft_write_full returned %zd", bp.wret);
	ck_assert_uint_eq(bp.wdone, BIG_PIPE);
	ck_assert_msg(bp.got == BIG_PIPE, "reader got %zu of %zu bytes", bp.got,
		      BIG_PIPE);
	ck_assert_msg(bp.bad_at < 0, "reader saw a wrong byte at %ld",
		      bp.bad_at);
	ck_assert_msg(bp.rerr == 0, "reader ended with %zd, not EOF", bp.rerr);
	/* 16 KiB pipe, 3000-byte reads: a single read cannot cover it. */
	ck_assert_msg(bp.reads > 300, "only %d reads", bp.reads);
	free(bp.wbuf);
}
END_TEST

/* Writes 50 bytes of stream 3 to fd `*arg` in 5 pieces, 1 ms apart. */
static void *
trickle_writer(void *arg)
{
	int fd = *(int *)arg;
	uint8_t buf[50];
	int i;

	io_fill(buf, sizeof(buf), 3, 0);
	for (i = 0; i < 5; i++) {
		T_EXPECT_INT(weft_write(fd, buf + 10 * i, 10, io_dl()), ==, 10);
		weft_sleep(WEFT_MSEC);
	}
	return NULL;
}

static void *
read_full_main(void *arg)
{
	struct weft_task *t;
	uint8_t buf[200];
	size_t done = 12345;
	int p[2];

	/* Exactly `len`, over several short reads. */
	if (!io_pipe(p))
		return NULL;
	t = io_spawn(trickle_writer, &p[1]);
	T_EXPECT_INT(weft_read_full(p[0], buf, 50, &done, io_dl()), ==, 50);
	T_EXPECT_INT(done, ==, 50);
	T_EXPECT_INT(io_mismatch(buf, 50, 3, 0), ==, -1);
	io_join(t);

	/* Fewer at end of file, with *done set. */
	io_fill(buf, 100, 4, 0);
	T_EXPECT_INT(weft_write(p[1], buf, 100, io_dl()), ==, 100);
	T_EXPECT_INT(weft_close(p[1], io_dl()), ==, 0);
	memset(buf, 0, sizeof(buf));
	done = 12345;
	T_EXPECT_INT(weft_read_full(p[0], buf, 200, &done, io_dl()), ==, 100);
	T_EXPECT_INT(done, ==, 100);
	T_EXPECT_INT(io_mismatch(buf, 100, 4, 0), ==, -1);
	done = 12345;
	T_EXPECT_INT(weft_read_full(p[0], buf, 10, &done, io_dl()), ==, 0);
	T_EXPECT_INT(done, ==, 0);
	/* done may be NULL. */
	T_EXPECT_INT(weft_read_full(p[0], buf, 10, NULL, io_dl()), ==, 0);
	close(p[0]);
	return NULL;
}

START_TEST(pipe_read_full_loops_and_returns_fewer_at_eof)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(read_full_main, NULL, 2);
}
END_TEST

struct wf_epipe {
	int p[2];
	uint8_t *buf;
	ssize_t ret;
	size_t done;
};

static void *
wf_epipe_writer(void *arg)
{
	struct wf_epipe *we = arg;

	we->ret = weft_write_full(we->p[1], we->buf, 65536, &we->done, io_dl());
	return NULL;
}

static void *
wf_epipe_main(void *arg)
{
	struct wf_epipe *we = arg;
	struct weft_task *t;
	uint8_t got[1000];

	if (!io_pipe(we->p))
		return NULL;
	set_pipe_size(we->p[1], 4096);
	t = io_spawn(wf_epipe_writer, we);
	T_EXPECT_INT(weft_read_full(we->p[0], got, sizeof(got), NULL, io_dl()),
		     ==, sizeof(got));
	T_EXPECT_INT(io_mismatch(got, sizeof(got), 5, 0), ==, -1);
	T_EXPECT_INT(weft_close(we->p[0], io_dl()), ==, 0);
	we->p[0] = -1;
	io_join(t);
	io_close2(we->p);
	return NULL;
}

START_TEST(pipe_write_full_reports_done_on_epipe)
{
	struct wf_epipe we;

	IO_SKIP_UNLESS_BACKEND();
	memset(&we, 0, sizeof(we));
	we.buf = malloc(65536);
	ck_assert_ptr_nonnull(we.buf);
	io_fill(we.buf, 65536, 5, 0);
	signal(SIGPIPE, SIG_IGN);
	IO_RUN(wf_epipe_main, &we, 2);
	signal(SIGPIPE, SIG_DFL);
	ck_assert_int_eq(we.ret, -EPIPE);
	ck_assert_msg(we.done >= 1000 && we.done < 65536,
		      "write_full reported %zu bytes done", we.done);
	free(we.buf);
}
END_TEST

/* Thousands of reads in flight at once, woken in a scattered order. */
struct many_rd {
	int p[2];
	int idx;
	atomic_int *parked;
	char buf[8];
	ssize_t n;
};

static void *
many_reader(void *arg)
{
	struct many_rd *mr = arg;

	atomic_fetch_add(mr->parked, 1);
	mr->n = weft_read(mr->p[0], mr->buf, sizeof(mr->buf), io_dl());
	return NULL;
}

static void *
many_readers_main(void *arg)
{
	struct many_rd *mr = arg;
	struct weft_task **t = calloc(MANY_READERS, sizeof(*t));
	atomic_int parked = 0;
	char msg[8];
	int made;
	int i;
	int k;

	T_EXPECT(t != NULL, "calloc failed");
	if (!t)
		return NULL;
	for (made = 0; made < MANY_READERS; made++) {
		mr[made].idx = made;
		mr[made].parked = &parked;
		if (!io_pipe(mr[made].p))
			break;
		t[made] = io_spawn(many_reader, &mr[made]);
		if (!t[made]) {
			io_close2(mr[made].p);
			break;
		}
	}
	T_WAIT(atomic_load(&parked) == made, "every reader to start");
	for (i = 0; i < made; i++) {
		k = (int)(((long)i * 7919) % made);
		snprintf(msg, sizeof(msg), "%07d", k);
		T_EXPECT_INT(weft_write(mr[k].p[1], msg, 8, io_dl()), ==, 8);
	}
	for (i = 0; i < made; i++) {
		io_join(t[i]);
		snprintf(msg, sizeof(msg), "%07d", i);
		T_EXPECT(mr[i].n == 8 && memcmp(mr[i].buf, msg, 8) == 0,
			 "reader %d: %zd bytes, \"%.8s\"", i, mr[i].n,
			 mr[i].buf);
		io_close2(mr[i].p);
	}
	T_EXPECT_INT(made, ==, MANY_READERS);
	free(t);
	return NULL;
}

START_TEST(pipe_thousands_of_parked_readers_all_complete)
{
	struct many_rd *mr = calloc(MANY_READERS, sizeof(*mr));

	IO_SKIP_UNLESS_BACKEND();
	ck_assert_ptr_nonnull(mr);
	IO_RUN(many_readers_main, mr, IO_WORKERS(_i));
	free(mr);
}
END_TEST

/*
 * file
 */

struct dir_arg {
	char dir[256];
};

static void *
openat_main(void *arg)
{
	struct dir_arg *da = arg;
	char path[320];
	struct stat st;
	int dfd;
	int fd;
	int fd2;

	dfd = weft_openat(AT_FDCWD, da->dir, O_RDONLY | O_DIRECTORY, 0,
			  io_dl());
	T_EXPECT(dfd >= 0, "openat(dir) returned %d", dfd);
	if (dfd < 0)
		return NULL;
	fd = weft_openat(dfd, "a", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
			 0640, io_dl());
	T_EXPECT(fd >= 0, "openat(O_CREAT) returned %d", fd);
	if (fd >= 0) {
		T_EXPECT(io_has_cloexec(fd), "O_CLOEXEC not applied");
		T_EXPECT(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
				 (st.st_mode & 0777) == 0640,
			 "created file has mode %o", (unsigned)st.st_mode);
		T_EXPECT_INT(weft_write(fd, "data", 4, io_dl()), ==, 4);
		T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
		T_EXPECT(!io_fd_open(fd), "fd %d still open after close", fd);
	}
	T_EXPECT_INT(weft_openat(dfd, "a", O_CREAT | O_EXCL | O_WRONLY, 0640,
				 io_dl()),
		     ==, -EEXIST);
	T_EXPECT_INT(weft_openat(dfd, "missing", O_RDONLY, 0, io_dl()), ==,
		     -ENOENT);
	T_EXPECT_INT(weft_openat(dfd, "a/b", O_RDONLY, 0, io_dl()), ==,
		     -ENOTDIR);
	T_EXPECT_INT(weft_openat(dfd, "a", O_RDONLY | O_DIRECTORY, 0, io_dl()),
		     ==, -ENOTDIR);
	/* An absolute path with AT_FDCWD, and the data written above. */
	snprintf(path, sizeof(path), "%s/a", da->dir);
	fd2 = weft_openat(AT_FDCWD, path, O_RDONLY, 0, io_dl());
	T_EXPECT(fd2 >= 0, "openat(%s) returned %d", path, fd2);
	if (fd2 >= 0) {
		char buf[8] = {0};

		T_EXPECT_INT(weft_read(fd2, buf, sizeof(buf), io_dl()), ==, 4);
		T_EXPECT(memcmp(buf, "data", 4) == 0, "read \"%.4s\"", buf);
		T_EXPECT(!io_has_cloexec(fd2), "FD_CLOEXEC without O_CLOEXEC");
		T_EXPECT_INT(weft_close(fd2, io_dl()), ==, 0);
	}
	T_EXPECT_INT(weft_close(dfd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(file_openat_creates_with_mode_and_honours_excl)
{
	struct dir_arg da;

	IO_SKIP_UNLESS_BACKEND();
	umask(022);
	io_tmpdir(da.dir, sizeof(da.dir));
	IO_RUN(openat_main, &da, 2);
	io_rmdir(da.dir);
}
END_TEST

/* Open `name` in `dir` read-write, created and truncated. */
static int
open_in(const char *dir, const char *name)
{
	char path[320];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = weft_openat(AT_FDCWD, path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC,
			 0600, io_dl());
	T_EXPECT(fd >= 0, "openat(%s) returned %d", path, fd);
	return fd;
}

static void *
file_pos_main(void *arg)
{
	struct dir_arg *da = arg;
	char buf[64];
	int fd = open_in(da->dir, "pos");

	if (fd < 0)
		return NULL;
	T_EXPECT_INT(weft_write(fd, "hello ", 6, io_dl()), ==, 6);
	T_EXPECT_INT(lseek(fd, 0, SEEK_CUR), ==, 6);
	T_EXPECT_INT(weft_write(fd, "world", 5, io_dl()), ==, 5);
	T_EXPECT_INT(lseek(fd, 0, SEEK_CUR), ==, 11);
	T_EXPECT_INT(lseek(fd, 0, SEEK_SET), ==, 0);
	memset(buf, 0, sizeof(buf));
	T_EXPECT_INT(weft_read(fd, buf, 6, io_dl()), ==, 6);
	T_EXPECT_INT(lseek(fd, 0, SEEK_CUR), ==, 6);
	T_EXPECT_INT(weft_read(fd, buf + 6, sizeof(buf) - 6, io_dl()), ==, 5);
	T_EXPECT(strcmp(buf, "hello world") == 0, "read \"%s\"", buf);
	T_EXPECT_INT(weft_read(fd, buf, sizeof(buf), io_dl()), ==, 0);
	T_EXPECT_INT(lseek(fd, 0, SEEK_CUR), ==, 11);
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(file_read_write_use_and_advance_the_position)
{
	struct dir_arg da;

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(da.dir, sizeof(da.dir));
	IO_RUN(file_pos_main, &da, 2);
	io_rmdir(da.dir);
}
END_TEST

static void *
file_pread_main(void *arg)
{
	struct dir_arg *da = arg;
	struct stat st;
	char buf[16];
	int fd = open_in(da->dir, "pp");

	if (fd < 0)
		return NULL;
	T_EXPECT_INT(weft_pwrite(fd, "abc", 3, 100, io_dl()), ==, 3);
	T_EXPECT_INT(lseek(fd, 0, SEEK_CUR), ==, 0);
	T_EXPECT(fstat(fd, &st) == 0 && st.st_size == 103, "size %jd",
		 (intmax_t)st.st_size);
	memset(buf, 0x55, sizeof(buf));
	T_EXPECT_INT(weft_pread(fd, buf, 10, 98, io_dl()), ==, 5);
	T_EXPECT(memcmp(buf, "\0\0abc", 5) == 0, "pread got other bytes");
	T_EXPECT_INT(weft_pread(fd, buf, 10, 200, io_dl()), ==, 0);
	T_EXPECT_INT(weft_pwrite(fd, "Z", 1, 0, io_dl()), ==, 1);
	T_EXPECT_INT(weft_pread(fd, buf, 1, 0, io_dl()), ==, 1);
	T_EXPECT_INT(buf[0], ==, 'Z');
	T_EXPECT_INT(lseek(fd, 0, SEEK_CUR), ==, 0);
	/* A large offset (beyond 4 GiB: off_t is 64-bit). */
	T_EXPECT_INT(weft_pwrite(fd, "far", 3, (off_t)5 << 30, io_dl()), ==, 3);
	T_EXPECT_INT(weft_pread(fd, buf, 8, (off_t)5 << 30, io_dl()), ==, 3);
	T_EXPECT(memcmp(buf, "far", 3) == 0, "far pread got other bytes");
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(file_pread_pwrite_use_offsets_not_the_position)
{
	struct dir_arg da;

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(da.dir, sizeof(da.dir));
	IO_RUN(file_pread_main, &da, 2);
	io_rmdir(da.dir);
}
END_TEST

static void *
file_vec_sync_main(void *arg)
{
	struct dir_arg *da = arg;
	char a[3];
	char b[20];
	struct iovec wv[3] = {
		{(void *)"one,", 4}, {(void *)"two,", 4}, {(void *)"three", 5}};
	struct iovec rv[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
	int fd = open_in(da->dir, "vec");

	if (fd < 0)
		return NULL;
	T_EXPECT_INT(weft_writev(fd, wv, 3, io_dl()), ==, 13);
	T_EXPECT_INT(weft_fsync(fd, 0, io_dl()), ==, 0);
	T_EXPECT_INT(weft_fsync(fd, WEFT_FSYNC_DATASYNC, io_dl()), ==, 0);
	T_EXPECT_INT(lseek(fd, 0, SEEK_SET), ==, 0);
	memset(b, 0, sizeof(b));
	T_EXPECT_INT(weft_readv(fd, rv, 2, io_dl()), ==, 13);
	T_EXPECT(memcmp(a, "one", 3) == 0 && strcmp(b, ",two,three") == 0,
		 "readv got \"%.3s\" \"%s\"", a, b);
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(file_readv_writev_and_fsync)
{
	struct dir_arg da;

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(da.dir, sizeof(da.dir));
	IO_RUN(file_vec_sync_main, &da, 2);
	io_rmdir(da.dir);
}
END_TEST

static void *
fsync_flags_main(void *arg)
{
	struct dir_arg *da = arg;
	int fd = open_in(da->dir, "ff");

	if (fd < 0)
		return NULL;
	T_EXPECT_INT(weft_fsync(fd, 2, io_dl()), ==, -EINVAL);
	T_EXPECT_INT(weft_fsync(fd, ~0u, io_dl()), ==, -EINVAL);
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	return NULL;
}

/* Unknown flag bits are refused, under both backends alike. */
START_TEST(file_fsync_unknown_flags_return_einval)
{
	struct dir_arg da;

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(da.dir, sizeof(da.dir));
	IO_RUN(fsync_flags_main, &da, 1);
	io_rmdir(da.dir);
}
END_TEST

/* Four tasks pwrite 256 KiB each in 16 KiB pieces, then pread another's. */
#define REGION ((size_t)256 * 1024)
#define PIECE  ((size_t)16 * 1024)

struct regions {
	int fd;
	int idx;
};

static void *
region_writer(void *arg)
{
	struct regions *rg = arg;
	uint8_t *buf = malloc(PIECE);
	off_t base = (off_t)(REGION * (size_t)rg->idx);
	size_t off;
	ssize_t n;

	T_EXPECT(buf != NULL, "malloc failed");
	for (off = 0; buf && off < REGION; off += PIECE) {
		io_fill(buf, PIECE, 100 + (uint64_t)rg->idx, off);
		n = weft_pwrite(rg->fd, buf, PIECE, base + (off_t)off, io_dl());
		T_EXPECT_INT(n, ==, PIECE);
		if (n != (ssize_t)PIECE)
			break;
	}
	free(buf);
	return NULL;
}

static void *
region_reader(void *arg)
{
	struct regions *rg = arg;
	uint8_t *buf = malloc(PIECE);
	int who = (rg->idx + 1) % 4;
	off_t base = (off_t)(REGION * (size_t)who);
	size_t off;
	ssize_t n;

	T_EXPECT(buf != NULL, "malloc failed");
	for (off = 0; buf && off < REGION; off += PIECE) {
		n = weft_pread(rg->fd, buf, PIECE, base + (off_t)off, io_dl());
		T_EXPECT_INT(n, ==, PIECE);
		if (n != (ssize_t)PIECE)
			break;
		T_EXPECT_INT(io_mismatch(buf, PIECE, 100 + (uint64_t)who, off),
			     ==, -1);
	}
	free(buf);
	return NULL;
}

static void *
regions_main(void *arg)
{
	struct dir_arg *da = arg;
	struct regions rg[4];
	struct weft_task *t[4];
	int fd = open_in(da->dir, "big");
	int i;

	if (fd < 0)
		return NULL;
	for (i = 0; i < 4; i++) {
		rg[i].fd = fd;
		rg[i].idx = i;
		t[i] = io_spawn(region_writer, &rg[i]);
	}
	for (i = 0; i < 4; i++)
		io_join(t[i]);
	T_EXPECT_INT(weft_fsync(fd, WEFT_FSYNC_DATASYNC, io_dl()), ==, 0);
	for (i = 0; i < 4; i++)
		t[i] = io_spawn(region_reader, &rg[i]);
	for (i = 0; i < 4; i++)
		io_join(t[i]);
	T_EXPECT_INT(lseek(fd, 0, SEEK_END), ==, 4 * REGION);
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	return NULL;
}

START_TEST(file_concurrent_pwrite_pread_of_1mib)
{
	struct dir_arg da;

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(da.dir, sizeof(da.dir));
	IO_RUN(regions_main, &da, 2);
	io_rmdir(da.dir);
}
END_TEST

/*
 * socketpair
 */

struct sp_recv {
	int fd;
	int flags;
	char buf[64];
};

static void *
sp_receiver(void *arg)
{
	struct sp_recv *sr = arg;

	return t_ptr(weft_recv(sr->fd, sr->buf, sizeof(sr->buf), sr->flags,
			       io_dl()));
}

static void *
send_recv_main(void *arg)
{
	struct sp_recv sr;
	struct weft_task *t;
	char buf[16];
	int sv[2];

	if (!io_socketpair(sv))
		return NULL;
	T_EXPECT_INT(weft_send(sv[0], "hello", 5, 0, io_dl()), ==, 5);
	memset(buf, 0, sizeof(buf));
	T_EXPECT_INT(weft_recv(sv[1], buf, sizeof(buf), MSG_PEEK, io_dl()), ==,
		     5);
	T_EXPECT(strcmp(buf, "hello") == 0, "peeked \"%s\"", buf);
	memset(buf, 0, sizeof(buf));
	T_EXPECT_INT(weft_recv(sv[1], buf, 3, 0, io_dl()), ==, 3);
	T_EXPECT_INT(weft_recv(sv[1], buf + 3, sizeof(buf) - 3, 0, io_dl()), ==,
		     2);
	T_EXPECT(strcmp(buf, "hello") == 0, "received \"%s\"", buf);

	/* A parked receiver, both directions. */
	memset(&sr, 0, sizeof(sr));
	sr.fd = sv[0];
	t = io_spawn(sp_receiver, &sr);
	if (t) {
		IO_WAIT_PARKED(t);
		T_EXPECT_INT(weft_send(sv[1], "back", 4, 0, io_dl()), ==, 4);
		T_EXPECT_INT(io_join(t), ==, 4);
		T_EXPECT(strcmp(sr.buf, "back") == 0, "received \"%s\"",
			 sr.buf);
	}

	/* MSG_WAITALL is passed through. */
	memset(&sr, 0, sizeof(sr));
	sr.fd = sv[0];
	sr.flags = MSG_WAITALL;
	t = io_spawn(sp_receiver, &sr);
	if (t) {
		int i;

		for (i = 0; i < 64; i += 16) {
			T_EXPECT_INT(weft_send(sv[1], "0123456789abcdef", 16, 0,
					       io_dl()),
				     ==, 16);
			weft_yield();
		}
		T_EXPECT_INT(io_join(t), ==, 64);
	}
	io_close2(sv);
	return NULL;
}

START_TEST(socketpair_send_recv_peek_and_waitall)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(send_recv_main, NULL, IO_WORKERS(_i));
}
END_TEST

static void *
dontwait_main(void *arg)
{
	char buf[8];
	int64_t dl;
	int sv[2];

	if (!io_socketpair(sv))
		return NULL;
	dl = weft_now() + 2 * WEFT_SEC;
	T_EXPECT_INT(weft_recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT, dl), ==,
		     -EAGAIN);
	T_EXPECT(weft_now() < dl, "MSG_DONTWAIT recv waited for its deadline");
	io_close2(sv);
	return NULL;
}

/* recv(2) flags mean what they say: MSG_DONTWAIT does not wait. */
START_TEST(socketpair_recv_dontwait_returns_eagain)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(dontwait_main, NULL, 1);
}
END_TEST

/* Receives one byte and an fd over `sv`; writes through the fd. */
struct fdpass {
	int sv[2];
	int p[2];
	ssize_t rret;
	int rflags;
	int got_fd;
	bool cloexec;
};

static void *
fd_receiver(void *arg)
{
	struct fdpass *fp = arg;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m;
	struct cmsghdr *c;
	struct iovec iov;
	char byte = 0;

	memset(&m, 0, sizeof(m));
	memset(&u, 0, sizeof(u));
	iov.iov_base = &byte;
	iov.iov_len = 1;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = sizeof(u.buf);
	fp->got_fd = -1;
	fp->rret = weft_recvmsg(fp->sv[1], &m, MSG_CMSG_CLOEXEC, io_dl());
	fp->rflags = m.msg_flags;
	T_EXPECT_INT(byte, ==, 'F');
	c = CMSG_FIRSTHDR(&m);
	T_EXPECT(c != NULL && c->cmsg_level == SOL_SOCKET &&
			 c->cmsg_type == SCM_RIGHTS &&
			 c->cmsg_len == CMSG_LEN(sizeof(int)),
		 "no SCM_RIGHTS control message");
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fp->got_fd, CMSG_DATA(c), sizeof(int));
	if (fp->got_fd < 0)
		return NULL;
	fp->cloexec = io_has_cloexec(fp->got_fd);
	T_EXPECT_INT(weft_write(fp->got_fd, "via fd", 6, io_dl()), ==, 6);
	T_EXPECT_INT(weft_close(fp->got_fd, io_dl()), ==, 0);
	return NULL;
}

static void *
fdpass_main(void *arg)
{
	struct fdpass *fp = arg;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct weft_task *t;
	struct msghdr m;
	struct cmsghdr *c;
	struct iovec iov;
	char buf[16];

	if (!io_socketpair(fp->sv))
		return NULL;
	if (!io_pipe(fp->p)) {
		io_close2(fp->sv);
		return NULL;
	}
	t = io_spawn(fd_receiver, fp);
	if (t)
		IO_WAIT_PARKED(t);
	memset(&m, 0, sizeof(m));
	memset(&u, 0, sizeof(u));
	iov.iov_base = (void *)"F";
	iov.iov_len = 1;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = sizeof(u.buf);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fp->p[1], sizeof(int));
	T_EXPECT_INT(weft_sendmsg(fp->sv[0], &m, 0, io_dl()), ==, 1);
	/* Our copy of the write end goes; the passed one stays open. */
	close(fp->p[1]);
	fp->p[1] = -1;
	io_join(t);
	memset(buf, 0, sizeof(buf));
	T_EXPECT_INT(weft_read(fp->p[0], buf, sizeof(buf), io_dl()), ==, 6);
	T_EXPECT(strcmp(buf, "via fd") == 0, "read \"%s\"", buf);
	/* The receiver closed the last write end. */
	T_EXPECT_INT(weft_read(fp->p[0], buf, sizeof(buf), io_dl()), ==, 0);
	io_close2(fp->p);
	io_close2(fp->sv);
	return NULL;
}

START_TEST(socketpair_sendmsg_recvmsg_pass_an_fd)
{
	struct fdpass fp;

	IO_SKIP_UNLESS_BACKEND();
	memset(&fp, 0, sizeof(fp));
	IO_RUN(fdpass_main, &fp, 2);
	ck_assert_int_eq(fp.rret, 1);
	ck_assert_msg(!(fp.rflags & MSG_CTRUNC), "MSG_CTRUNC set");
	ck_assert_msg(fp.got_fd >= 0, "no fd received");
	ck_assert_msg(fp.cloexec, "MSG_CMSG_CLOEXEC not honoured");
}
END_TEST

static void *
send_epipe_main(void *arg)
{
	struct msghdr m;
	struct iovec iov = {(void *)"x", 1};
	int sv[2];

	if (!io_socketpair(sv))
		return NULL;
	close(sv[1]);
	sv[1] = -1;
	memset(&m, 0, sizeof(m));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	T_EXPECT_INT(weft_send(sv[0], "x", 1, 0, io_dl()), ==, -EPIPE);
	T_EXPECT_INT(weft_sendmsg(sv[0], &m, 0, io_dl()), ==, -EPIPE);
	io_close2(sv);
	return NULL;
}

/* SIGPIPE keeps its default action: MSG_NOSIGNAL must spare the process. */
START_TEST(socketpair_send_to_closed_peer_returns_epipe_without_signal)
{
	IO_SKIP_UNLESS_BACKEND();
	signal(SIGPIPE, SIG_DFL);
	IO_RUN(send_epipe_main, NULL, 2);
}
END_TEST

static void *
shutdown_main(void *arg)
{
	struct sp_recv sr;
	struct weft_task *t;
	char buf[8];
	int sv[2];

	if (!io_socketpair(sv))
		return NULL;
	T_EXPECT_INT(weft_send(sv[1], "z", 1, 0, io_dl()), ==, 1);
	T_EXPECT_INT(shutdown(sv[1], SHUT_WR), ==, 0);
	T_EXPECT_INT(weft_recv(sv[0], buf, sizeof(buf), 0, io_dl()), ==, 1);
	T_EXPECT_INT(weft_recv(sv[0], buf, sizeof(buf), 0, io_dl()), ==, 0);
	/* The other direction still works; a parked receiver sees EOF. */
	memset(&sr, 0, sizeof(sr));
	sr.fd = sv[1];
	t = io_spawn(sp_receiver, &sr);
	if (t) {
		IO_WAIT_PARKED(t);
		T_EXPECT_INT(weft_send(sv[0], "ok", 2, 0, io_dl()), ==, 2);
		T_EXPECT_INT(io_join(t), ==, 2);
	}
	t = io_spawn(sp_receiver, &sr);
	if (t) {
		IO_WAIT_PARKED(t);
		T_EXPECT_INT(shutdown(sv[0], SHUT_WR), ==, 0);
		T_EXPECT_INT(io_join(t), ==, 0);
	}
	io_close2(sv);
	return NULL;
}

START_TEST(socketpair_recv_after_peer_shutdown_returns_zero)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(shutdown_main, NULL, 2);
}
END_TEST

/*
 * One socket, two waiters on one worker: a reader parked in recv and a
 * writer parked in send (its buffer full), then two readers at once.
 */
struct duo {
	int fd;
	uint8_t *buf;
	size_t len;
	ssize_t ret;
};

static void *
duo_recv(void *arg)
{
	struct duo *d = arg;

	d->ret = weft_recv(d->fd, d->buf, d->len, 0, io_dl());
	return NULL;
}

static void *
duo_send(void *arg)
{
	struct duo *d = arg;

	d->ret = weft_send(d->fd, d->buf, d->len, 0, io_dl());
	return NULL;
}

static void *
duo_main(void *arg)
{
	uint8_t *big = malloc(1 << 20);
	uint8_t *wbuf = calloc(1, 1000);
	uint8_t small[16];
	struct duo r = {0};
	struct duo w = {0};
	struct duo r2 = {0};
	struct weft_task *tr;
	struct weft_task *tw;
	struct weft_task *tr2;
	size_t queued = 0;
	ssize_t n;
	int sv[2] = {-1, -1};

	T_EXPECT(big && wbuf, "malloc failed");
	if (!big || !wbuf || !io_socketpair(sv))
		goto out;
	memset(big, 0, 1 << 20);
	/* Fill sv[0]'s direction to sv[1] without blocking. */
	while ((n = send(sv[0], big, 65536, MSG_DONTWAIT)) > 0)
		queued += (size_t)n;
	T_EXPECT(queued > 0, "could not fill the socket");
	r.fd = sv[0];
	r.buf = small;
	r.len = sizeof(small);
	w.fd = sv[0];
	w.buf = wbuf;
	w.len = 1000;
	tr = io_spawn(duo_recv, &r);
	tw = io_spawn(duo_send, &w);
	if (tr)
		IO_WAIT_PARKED(tr);
	if (tw)
		IO_WAIT_PARKED(tw);
	/* Wake the reader only: the writer stays parked. */
	T_EXPECT_INT(weft_send(sv[1], "to-reader", 9, 0, io_dl()), ==, 9);
	io_join(tr);
	T_EXPECT_INT(r.ret, ==, 9);
	T_EXPECT_INT(weft_task_state(tw), ==, WEFT_SUSPENDED);
	/*
	 * Drain exactly the filler: the writer gets room and finishes.  Never
	 * read past it, or the writer's bytes (sent as soon as there is room)
	 * go with the filler and the read_full below waits for them in vain.
	 */
	while (queued > 0) {
		n = weft_recv(sv[1], big, queued < (1 << 20) ? queued : 1 << 20,
			      0, io_dl());
		if (n <= 0)
			break;
		queued -= (size_t)n;
	}
	io_join(tw);
	T_EXPECT(w.ret > 0, "the parked send returned %zd", w.ret);
	if (w.ret > 0)
		T_EXPECT_INT(weft_read_full(sv[1], big, (size_t)w.ret, NULL,
					    io_dl()),
			     ==, w.ret);

	/* Two readers of one socket: each of two messages wakes one. */
	r.ret = r2.ret = 0;
	r2 = r;
	r.fd = r2.fd = sv[1];
	r2.buf = big;
	tr = io_spawn(duo_recv, &r);
	tr2 = io_spawn(duo_recv, &r2);
	if (tr)
		IO_WAIT_PARKED(tr);
	if (tr2)
		IO_WAIT_PARKED(tr2);
	T_EXPECT_INT(weft_send(sv[0], "one", 3, 0, io_dl()), ==, 3);
	T_WAIT(weft_task_state(tr) == WEFT_DONE ||
		       weft_task_state(tr2) == WEFT_DONE,
	       "one reader to finish");
	T_EXPECT_INT(weft_send(sv[0], "two", 3, 0, io_dl()), ==, 3);
	io_join(tr);
	io_join(tr2);
	T_EXPECT(r.ret > 0 && r2.ret > 0, "readers got %zd and %zd", r.ret,
		 r2.ret);
out:
	io_close2(sv);
	free(big);
	free(wbuf);
	return NULL;
}

START_TEST(socketpair_reader_and_writer_wait_on_one_fd)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(duo_main, NULL, IO_WORKERS(_i));
}
END_TEST

/*
 * splice
 */

static void *
splice_file_main(void *arg)
{
	struct dir_arg *da = arg;
	uint8_t *buf = malloc(10000);
	int fd = open_in(da->dir, "sp");
	int p[2] = {-1, -1};

	T_EXPECT(buf != NULL, "malloc failed");
	if (!buf || fd < 0 || !io_pipe(p))
		goto out;
	io_fill(buf, 10000, 21, 0);
	T_EXPECT_INT(weft_pwrite(fd, buf, 10000, 0, io_dl()), ==, 10000);
	/* With an offset: the file position stays where it was. */
	T_EXPECT_INT(weft_splice(fd, 100, p[1], -1, 5000, 0, io_dl()), ==,
		     5000);
	T_EXPECT_INT(lseek(fd, 0, SEEK_CUR), ==, 0);
	memset(buf, 0, 10000);
	T_EXPECT_INT(weft_read_full(p[0], buf, 5000, NULL, io_dl()), ==, 5000);
	T_EXPECT_INT(io_mismatch(buf, 5000, 21, 100), ==, -1);
	/* With -1: from the position, which advances; short at EOF. */
	T_EXPECT_INT(lseek(fd, 7000, SEEK_SET), ==, 7000);
	T_EXPECT_INT(weft_splice(fd, -1, p[1], -1, 5000, 0, io_dl()), ==, 3000);
	T_EXPECT_INT(lseek(fd, 0, SEEK_CUR), ==, 10000);
	T_EXPECT_INT(weft_read_full(p[0], buf, 3000, NULL, io_dl()), ==, 3000);
	T_EXPECT_INT(io_mismatch(buf, 3000, 21, 7000), ==, -1);
	T_EXPECT_INT(weft_splice(fd, -1, p[1], -1, 5000, 0, io_dl()), ==, 0);
out:
	if (fd >= 0)
		close(fd);
	io_close2(p);
	free(buf);
	return NULL;
}

START_TEST(splice_file_to_pipe)
{
	struct dir_arg da;

	IO_SKIP_UNLESS_BACKEND();
	io_tmpdir(da.dir, sizeof(da.dir));
	IO_RUN(splice_file_main, &da, 2);
	io_rmdir(da.dir);
}
END_TEST

struct splicer {
	int in;
	int out;
	size_t len;
};

/* Splices `len` bytes from a pipe, looping over short splices. */
static void *
pipe_splicer(void *arg)
{
	struct splicer *s = arg;
	size_t done = 0;
	ssize_t n;

	while (done < s->len) {
		n = weft_splice(s->in, -1, s->out, -1, s->len - done, 0,
				io_dl());
		if (n <= 0)
			return t_ptr(n);
		done += (size_t)n;
	}
	return t_ptr((intptr_t)done);
}

static void *
splice_sock_main(void *arg)
{
	struct splicer s;
	struct weft_task *t;
	uint8_t buf[3000];
	int p[2] = {-1, -1};
	int sv[2] = {-1, -1};

	if (!io_pipe(p) || !io_socketpair(sv))
		goto out;
	/* The splicer parks on the empty pipe first. */
	s.in = p[0];
	s.out = sv[0];
	s.len = sizeof(buf);
	t = io_spawn(pipe_splicer, &s);
	if (!t)
		goto out;
	IO_WAIT_PARKED(t);
	io_fill(buf, sizeof(buf), 22, 0);
	T_EXPECT_INT(weft_write(p[1], buf, sizeof(buf), io_dl()), ==,
		     sizeof(buf));
	T_EXPECT_INT(io_join(t), ==, sizeof(buf));
	memset(buf, 0, sizeof(buf));
	T_EXPECT_INT(weft_read_full(sv[1], buf, sizeof(buf), NULL, io_dl()), ==,
		     sizeof(buf));
	T_EXPECT_INT(io_mismatch(buf, sizeof(buf), 22, 0), ==, -1);
	/* A pipe has no offset. */
	T_EXPECT_INT(weft_write(p[1], "q", 1, io_dl()), ==, 1);
	T_EXPECT_INT(weft_splice(p[0], 0, sv[0], -1, 1, 0, io_dl()), ==,
		     -ESPIPE);
out:
	io_close2(p);
	io_close2(sv);
	return NULL;
}

START_TEST(splice_pipe_to_socket)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(splice_sock_main, NULL, IO_WORKERS(_i));
}
END_TEST

/*
 * poll
 */

struct poller {
	int fd;
	short events;
	int64_t deadline;
};

static void *
poll_task(void *arg)
{
	struct poller *pl = arg;

	return t_ptr(weft_poll(pl->fd, pl->events, pl->deadline));
}

static void *
pollin_main(void *arg)
{
	struct poller pl;
	struct weft_task *t;
	intptr_t r;
	char c;
	int p[2];

	if (!io_pipe(p))
		return NULL;
	pl.fd = p[0];
	pl.events = POLLIN;
	pl.deadline = io_dl();
	t = io_spawn(poll_task, &pl);
	if (t) {
		IO_WAIT_PARKED(t);
		T_EXPECT_INT(weft_write(p[1], "!", 1, io_dl()), ==, 1);
		r = io_join(t);
		T_EXPECT(r > 0 && (r & POLLIN) && !(r & POLLOUT),
			 "weft_poll(POLLIN) returned %#lx", (long)r);
	}
	/* Readiness with data already there; poll consumed nothing. */
	r = weft_poll(p[0], POLLIN, io_dl());
	T_EXPECT(r > 0 && (r & POLLIN), "weft_poll returned %#lx", (long)r);
	T_EXPECT_INT(weft_read(p[0], &c, 1, io_dl()), ==, 1);
	T_EXPECT_INT(c, ==, '!');
	io_close2(p);
	return NULL;
}

START_TEST(poll_pipe_reports_pollin_when_written)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(pollin_main, NULL, IO_WORKERS(_i));
}
END_TEST

static void *
pollout_main(void *arg)
{
	struct poller pl;
	struct weft_task *t;
	char buf[4096];
	int64_t dl;
	intptr_t r;
	int p[2];

	if (!io_pipe(p))
		return NULL;
	r = weft_poll(p[1], POLLOUT, io_dl());
	T_EXPECT(r > 0 && (r & POLLOUT), "weft_poll(POLLOUT) returned %#lx",
		 (long)r);
	if (!fill_small_pipe(p))
		goto out;
	dl = weft_now() + 20 * WEFT_MSEC;
	T_EXPECT_INT(weft_poll(p[1], POLLOUT, dl), ==, -ETIMEDOUT);
	T_EXPECT(weft_now() >= dl, "poll timed out before its deadline");
	pl.fd = p[1];
	pl.events = POLLOUT;
	pl.deadline = io_dl();
	t = io_spawn(poll_task, &pl);
	if (t) {
		IO_WAIT_PARKED(t);
		T_EXPECT_INT(
			weft_read_full(p[0], buf, sizeof(buf), NULL, io_dl()),
			==, sizeof(buf));
		r = io_join(t);
		T_EXPECT(r > 0 && (r & POLLOUT), "weft_poll returned %#lx",
			 (long)r);
	}
out:
	io_close2(p);
	return NULL;
}

START_TEST(poll_pipe_reports_pollout_when_writable)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(pollout_main, NULL, IO_WORKERS(_i));
}
END_TEST

static void *
pollhup_main(void *arg)
{
	struct poller pl;
	struct weft_task *t;
	intptr_t r;
	int p[2];

	if (!io_pipe(p))
		return NULL;
	pl.fd = p[0];
	pl.events = POLLIN;
	pl.deadline = io_dl();
	t = io_spawn(poll_task, &pl);
	if (t) {
		IO_WAIT_PARKED(t);
		T_EXPECT_INT(weft_close(p[1], io_dl()), ==, 0);
		p[1] = -1;
		r = io_join(t);
		T_EXPECT(r > 0 && (r & POLLHUP), "weft_poll returned %#lx",
			 (long)r);
	}
	io_close2(p);

	/* The write end sees POLLERR once the reader has gone. */
	if (!io_pipe(p))
		return NULL;
	close(p[0]);
	p[0] = -1;
	r = weft_poll(p[1], POLLOUT, io_dl());
	T_EXPECT(r > 0 && (r & POLLERR), "weft_poll returned %#lx", (long)r);
	io_close2(p);
	return NULL;
}

START_TEST(poll_pipe_reports_pollhup_after_close)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(pollhup_main, NULL, 2);
}
END_TEST

static void *
poll_deadline_main(void *arg)
{
	int64_t dl;
	int64_t now;
	int p[2];
	int i;

	if (!io_pipe(p))
		return NULL;
	for (i = 0; i < 5; i++) {
		dl = weft_now() + (i + 1) * 10 * WEFT_MSEC;
		T_EXPECT_INT(weft_poll(p[0], POLLIN, dl), ==, -ETIMEDOUT);
		now = weft_now();
		T_EXPECT(now >= dl, "poll returned %" PRId64 " ns early",
			 dl - now);
		T_EXPECT(now < dl + io_late_ns(),
			 "poll returned %" PRId64 " ns late", now - dl);
	}
	io_close2(p);
	return NULL;
}

START_TEST(poll_deadline_returns_etimedout)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(poll_deadline_main, NULL, 1);
}
END_TEST

/*
 * errors
 */

/* An fd number that is not open. */
static int
unused_fd(void)
{
	int fd;

	for (fd = 1000; io_fd_open(fd); fd++)
		;
	return fd;
}

static void
expect_ebadf(int fd)
{
	struct sockaddr_in sin;
	struct msghdr m;
	struct iovec iov;
	size_t done = 99;
	char buf[8];
	int p[2];
	int r;

	memset(&m, 0, sizeof(m));
	iov.iov_base = buf;
	iov.iov_len = sizeof(buf);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(9);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	T_EXPECT_INT(weft_read(fd, buf, 1, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_write(fd, buf, 1, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_readv(fd, &iov, 1, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_writev(fd, &iov, 1, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_pread(fd, buf, 1, 0, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_pwrite(fd, buf, 1, 0, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_recv(fd, buf, 1, 0, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_send(fd, buf, 1, 0, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_recvmsg(fd, &m, 0, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_sendmsg(fd, &m, 0, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_accept(fd, NULL, NULL, 0, io_dl()), ==, -EBADF);
	T_EXPECT_INT(
		weft_connect(fd, (struct sockaddr *)&sin, sizeof(sin), io_dl()),
		==, -EBADF);
	T_EXPECT_INT(weft_fsync(fd, 0, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_openat(fd, "x", O_RDONLY, 0, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_read_full(fd, buf, 4, &done, io_dl()), ==, -EBADF);
	T_EXPECT_INT(done, ==, 0);
	done = 99;
	T_EXPECT_INT(weft_write_full(fd, buf, 4, &done, io_dl()), ==, -EBADF);
	T_EXPECT_INT(done, ==, 0);
	if (io_pipe(p)) {
		T_EXPECT_INT(weft_splice(fd, -1, p[1], -1, 1, 0, io_dl()), ==,
			     -EBADF);
		T_EXPECT_INT(weft_splice(p[0], -1, fd, -1, 1, 0, io_dl()), ==,
			     -EBADF);
		io_close2(p);
	}
	/* poll(2) says POLLNVAL for a bad fd; -EBADF is fine too. */
	r = weft_poll(fd, POLLIN, io_dl());
	T_EXPECT(r == -EBADF || (r > 0 && (r & POLLNVAL)),
		 "weft_poll(bad fd %d) returned %d", fd, r);
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, -EBADF);
}

static void *
ebadf_main(void *arg)
{
	expect_ebadf(unused_fd());
	expect_ebadf(-1);
	expect_ebadf(INT_MAX);
	return NULL;
}

START_TEST(io_on_a_bad_fd_returns_ebadf)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(ebadf_main, NULL, 1);
}
END_TEST

static struct iovec many_iov[IOV_MAX + 1];

static void *
wrong_kind_main(void *arg)
{
	struct sockaddr_in sin;
	struct iovec iov;
	char buf[8];
	int p[2];
	int dfd;

	if (!io_pipe(p))
		return NULL;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(9);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	iov.iov_base = buf;
	iov.iov_len = sizeof(buf);
	T_EXPECT_INT(weft_recv(p[0], buf, 1, 0, io_dl()), ==, -ENOTSOCK);
	T_EXPECT_INT(weft_send(p[1], buf, 1, 0, io_dl()), ==, -ENOTSOCK);
	T_EXPECT_INT(weft_accept(p[0], NULL, NULL, 0, io_dl()), ==, -ENOTSOCK);
	T_EXPECT_INT(weft_connect(p[1], (struct sockaddr *)&sin, sizeof(sin),
				  io_dl()),
		     ==, -ENOTSOCK);
	T_EXPECT_INT(weft_fsync(p[1], 0, io_dl()), ==, -EINVAL);
	/* The wrong end of the pipe. */
	T_EXPECT_INT(weft_read(p[1], buf, 1, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_write(p[0], "x", 1, io_dl()), ==, -EBADF);
	T_EXPECT_INT(weft_readv(p[0], &iov, -1, io_dl()), ==, -EINVAL);
	T_EXPECT_INT(weft_writev(p[1], many_iov, IOV_MAX + 1, io_dl()), ==,
		     -EINVAL);
	dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	T_EXPECT(dfd >= 0, "open(/) failed");
	if (dfd >= 0) {
		T_EXPECT_INT(weft_read(dfd, buf, sizeof(buf), io_dl()), ==,
			     -EISDIR);
		close(dfd);
	}
	io_close2(p);
	return NULL;
}

START_TEST(io_on_the_wrong_kind_of_fd_returns_the_syscall_error)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(wrong_kind_main, NULL, 1);
}
END_TEST

static void *
pread_pipe_main(void *arg)
{
	char buf[8];
	int p[2];

	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_write(p[1], "abc", 3, io_dl()), ==, 3);
	T_EXPECT_INT(weft_pread(p[0], buf, 1, 0, io_dl()), ==, -ESPIPE);
	T_EXPECT_INT(weft_pwrite(p[1], "d", 1, 0, io_dl()), ==, -ESPIPE);
	/* Nothing was consumed or added. */
	T_EXPECT_INT(weft_read(p[0], buf, sizeof(buf), io_dl()), ==, 3);
	io_close2(p);
	return NULL;
}

/* pread(2)/pwrite(2) on a pipe fail with ESPIPE; io_uring ignores offsets. */
START_TEST(pread_pwrite_on_a_pipe_return_espipe)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(pread_pipe_main, NULL, 1);
}
END_TEST

static void
noop_conn(int fd, void *arg)
{
	close(fd);
}

/* Every I/O call on a thread that is not running a task: -EPERM. */
static void
expect_eperm(int p[2], int *eperm_fails)
{
	struct sockaddr_in sin;
	struct msghdr m;
	struct iovec iov;
	size_t done = 99;
	char buf[8];
	int bad = 0;

	memset(&m, 0, sizeof(m));
	iov.iov_base = buf;
	iov.iov_len = sizeof(buf);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(9);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
#define EPERM_CASE(call)                                                       \
	do {                                                                   \
		long r_ = (long)(call);                                        \
		if (r_ != -EPERM) {                                            \
			t_failf(__FILE__, __LINE__, "%s returned %ld", #call,  \
				r_);                                           \
			bad++;                                                 \
		}                                                              \
	} while (0)
	EPERM_CASE(weft_read(p[0], buf, 1, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_write(p[1], buf, 1, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_readv(p[0], &iov, 1, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_writev(p[1], &iov, 1, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_pread(p[0], buf, 1, 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_pwrite(p[1], buf, 1, 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_recv(p[0], buf, 1, 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_send(p[1], buf, 1, 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_recvmsg(p[0], &m, 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_sendmsg(p[1], &m, 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_accept(p[0], NULL, NULL, 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_connect(p[1], (struct sockaddr *)&sin, sizeof(sin),
				WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_openat(AT_FDCWD, "/", O_RDONLY, 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_fsync(p[1], 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_splice(p[0], -1, p[1], -1, 1, 0, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_poll(p[0], POLLIN, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_read_full(p[0], buf, 1, &done, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_write_full(p[1], buf, 1, &done, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_tcp_dial("127.0.0.1", 9, WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_unix_dial("@weft-no-such-socket", WEFT_DEADLINE_NONE));
	EPERM_CASE(weft_serve(p[0], noop_conn, NULL, NULL));
#undef EPERM_CASE
	if (done != 99 && done != 0) {
		t_failf(__FILE__, __LINE__, "done = %zu after -EPERM", done);
		bad++;
	}
	*eperm_fails += bad;
}

/* The pipe still holds exactly the one byte put there: nothing moved. */
static void
expect_pipe_untouched(int p[2])
{
	char buf[8];
	int fl = fcntl(p[0], F_GETFL);
	ssize_t n;

	fcntl(p[0], F_SETFL, fl | O_NONBLOCK);
	n = read(p[0], buf, sizeof(buf));
	T_EXPECT(n == 1 && buf[0] == 'k', "pipe held %zd bytes, not 'k'", n);
	fcntl(p[0], F_SETFL, fl);
}

struct foreign {
	int p[2];
	int fails;
	const char *backend;
	atomic_int done;
};

static void *
foreign_thread(void *arg)
{
	struct foreign *f = arg;

	expect_eperm(f->p, &f->fails);
	f->backend = weft_io_backend();
	atomic_store(&f->done, 1);
	return NULL;
}

static void *
foreign_main(void *arg)
{
	struct foreign *f = arg;
	pthread_t th;
	int r;

	r = pthread_create(&th, NULL, foreign_thread, f);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0)
		return NULL;
	T_WAIT(atomic_load(&f->done), "the plain thread");
	pthread_join(th, NULL);
	return NULL;
}

START_TEST(io_outside_coroutine_context_returns_eperm)
{
	struct foreign f;
	int fails = 0;
	int p[2];

	IO_SKIP_UNLESS_BACKEND();
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(write(p[1], "k", 1), 1);
	/* No runtime at all. */
	expect_eperm(p, &fails);
	T_ASSERT_NO_TASK_FAILURES();
	expect_pipe_untouched(p);
	T_ASSERT_NO_TASK_FAILURES();
	ck_assert_int_eq(write(p[1], "k", 1), 1);
	/* A plain thread while a runtime runs. */
	memset(&f, 0, sizeof(f));
	f.p[0] = p[0];
	f.p[1] = p[1];
	IO_RUN(foreign_main, &f, 2);
	ck_assert_msg(f.backend && !strcmp(f.backend, IO_BACKEND(_i)),
		      "weft_io_backend() on a plain thread: %s",
		      f.backend ? f.backend : "(null)");
	expect_pipe_untouched(p);
	T_ASSERT_NO_TASK_FAILURES();
	close(p[0]);
	close(p[1]);
}
END_TEST

/*
 * weft_close() outside coroutine context is close(2): the header promises
 * the fd is gone whatever the result, so -EPERM with the fd left open
 * would leak it.  The plain thread's case runs while a runtime runs; its
 * pipe is made inside the run so that IO_RUN's fd count balances.
 */
struct plain_close {
	int p[2];
	int r_close;
	atomic_int done;
};

static void *
plain_close_thread(void *arg)
{
	struct plain_close *pc = arg;

	pc->r_close = weft_close(pc->p[1], WEFT_DEADLINE_NONE);
	atomic_store(&pc->done, 1);
	return NULL;
}

static void *
plain_close_main(void *arg)
{
	struct plain_close *pc = arg;
	pthread_t th;
	char c;
	int r;

	if (!io_pipe(pc->p))
		return NULL;
	r = pthread_create(&th, NULL, plain_close_thread, pc);
	T_EXPECT_INT(r, ==, 0);
	if (r != 0) {
		close(pc->p[0]);
		close(pc->p[1]);
		return NULL;
	}
	/* EOF only once the plain thread's close dropped the last writer. */
	T_EXPECT_INT(weft_read(pc->p[0], &c, 1, io_dl()), ==, 0);
	T_WAIT(atomic_load(&pc->done), "the plain thread");
	pthread_join(th, NULL);
	T_EXPECT_INT(weft_close(pc->p[0], WEFT_DEADLINE_NONE), ==, 0);
	return NULL;
}

START_TEST(close_outside_coroutine_context_closes_the_fd)
{
	struct plain_close pc;
	char c;
	int p[2];

	IO_SKIP_UNLESS_BACKEND();
	/* No runtime at all. */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(weft_close(p[1], WEFT_DEADLINE_NONE), 0);
	errno = 0;
	ck_assert_int_eq(fcntl(p[1], F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_eq(read(p[0], &c, 1), 0);
	ck_assert_int_eq(weft_close(p[0], WEFT_DEADLINE_NONE), 0);
	ck_assert_int_eq(weft_close(-1, WEFT_DEADLINE_NONE), -EBADF);
	/* A plain thread while a runtime runs. */
	memset(&pc, 0, sizeof(pc));
	pc.r_close = 1;
	IO_RUN(plain_close_main, &pc, 2);
	ck_assert_int_eq(pc.r_close, 0);
}
END_TEST

START_TEST(run_with_unknown_backend_returns_einval)
{
	struct weft_config cfg = t_config(1);
	const char *b;

	cfg.io_backend = "no-such-backend";
	ck_assert_int_eq(weft_run(write_read_main, NULL, &cfg, NULL), -EINVAL);
	/* NULL, or (by design) the backend of the last run. */
	b = weft_io_backend();
	ck_assert_msg(!b || !strcmp(b, "uring") || !strcmp(b, "epoll"),
		      "weft_io_backend() after a failed run: %s", b);
}
END_TEST

/*
 * The cooperative budget: one worker, a task whose pipe writes and reads
 * never wait (it reads back what it wrote), beside a task that sleeps 1 ns
 * in a loop.  The sleeper can run only if the stream yields through the
 * scheduler context (its timer is due at once, but only that context runs
 * timers): with a budget of COOP_BUDGET (128) calls, once per 128 calls.
 * Counted, not timed: the sleeper must have woken at least a quarter of
 * (calls / 128) times while the stream ran, and under epoll (where these
 * calls finish without waiting; under io_uring each waits for its
 * completion) the worker must report the forced yields.
 */
#define STREAM_ROUNDS 20000

static atomic_int stream_done;
static atomic_long sleeper_wakeups;

static void *
sleeper_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stream_done)) {
		T_EXPECT_INT(weft_sleep(1), ==, 0);
		if (!atomic_load(&stream_done))
			atomic_fetch_add(&sleeper_wakeups, 1);
	}
	return NULL;
}

static void *
budget_main(void *arg)
{
	struct weft_worker_stats ws0, ws1;
	struct weft_task *t;
	char b = 'x';
	long calls = 2L * STREAM_ROUNDS, want = calls / 128 / 4;
	int p[2];

	(void)arg;
	atomic_store(&stream_done, 0);
	atomic_store(&sleeper_wakeups, 0);
	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_spawn(&t, sleeper_main, NULL, NULL), ==, 0);
	/* Let the sleeper start and park in its sleep. */
	T_EXPECT_INT(weft_yield(), ==, 0);
	T_EXPECT_INT(weft_worker_stats(0, &ws0), ==, 0);
	for (int i = 0; i < STREAM_ROUNDS; i++) {
		if (weft_write(p[1], &b, 1, io_dl()) != 1 ||
		    weft_read(p[0], &b, 1, io_dl()) != 1) {
			T_EXPECT(false, "stream call failed at round %d", i);
			break;
		}
	}
	T_EXPECT_INT(weft_worker_stats(0, &ws1), ==, 0);
	atomic_store(&stream_done, 1);
	T_EXPECT_INT(weft_join(t, NULL, io_dl()), ==, 0);
	T_EXPECT(atomic_load(&sleeper_wakeups) >= want,
		 "the sleeper woke %ld times during %ld calls that never "
		 "waited (want >= %ld): the stream kept the worker",
		 atomic_load(&sleeper_wakeups), calls, want);
	/* Under io_uring every call here waits for its completion. */
	T_EXPECT(strcmp(weft_io_backend(), "epoll") != 0 ||
		 ws1.coop_yields - ws0.coop_yields >= (uint64_t)(calls / 128),
		 "%llu budget yields in %ld calls",
		 (unsigned long long)(ws1.coop_yields - ws0.coop_yields),
		 calls);
	io_close2(p);
	return NULL;
}

START_TEST(stream_that_never_waits_yields_to_timers_and_tasks)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(budget_main, NULL, 1);
}
END_TEST

/*
 * The epoll backend keeps a registration whose event ended its wait and
 * re-arms it for the fd's next wait.  Such a wait must still work when the
 * fd number has meanwhile been closed and reused, for a new file and while
 * the old file lives on through a dup (its disarmed registration may then
 * stay in the set), after a wait ended by its deadline (the registration
 * was removed), and with a reader and a writer on one fd.  Under io_uring
 * the same calls must simply work.
 */
static void *
recv_one(void *arg)
{
	char b = 0;
	ssize_t n = weft_recv(t_int(arg), &b, 1, 0, io_dl());

	return t_ptr(n == 1 ? b : (int)n);
}

/* Park a receiver on fd, then send `c` from `peer`: it must get it. */
static void
wake_once(int fd, int peer, char c)
{
	struct weft_task *t;
	void *r;

	T_EXPECT_INT(weft_spawn(&t, recv_one, t_ptr(fd), NULL), ==, 0);
	IO_WAIT_PARKED(t);
	T_EXPECT_INT(weft_send(peer, &c, 1, MSG_NOSIGNAL, io_dl()), ==, 1);
	T_EXPECT_INT(weft_join(t, &r, io_dl()), ==, 0);
	T_EXPECT_INT(t_int(r), ==, c);
}

static char rearm_buf[1 << 16];

static void *
send_some(void *arg)
{
	return t_ptr((int)weft_send(t_int(arg), rearm_buf, 4096, MSG_NOSIGNAL,
				    io_dl()));
}

static void *
rearm_main(void *arg)
{
	int a[2], b[2], c[2], keep, num;
	char x = 0;

	(void)arg;
	if (!io_socketpair(a) || !io_socketpair(b) || !io_socketpair(c))
		return NULL;
	num = a[0];
	wake_once(num, a[1], 'a');
	wake_once(num, a[1], 'b');	/* re-armed */
	/* The old file lives on; the number now names b[0]'s file. */
	keep = dup(num);
	T_EXPECT(keep >= 0, "dup: %s", strerror(errno));
	T_EXPECT_INT(dup2(b[0], num), ==, num);
	wake_once(num, b[1], 'c');
	/* The old file's disarmed registration must not fire into it. */
	T_EXPECT_INT(weft_send(a[1], &x, 1, MSG_NOSIGNAL, io_dl()), ==, 1);
	wake_once(num, b[1], 'd');
	T_EXPECT_INT(weft_recv(keep, &x, 1, 0, io_dl()), ==, 1);
	/* Closed for good, the number reused for yet another file. */
	T_EXPECT_INT(close(keep), ==, 0);
	T_EXPECT_INT(dup2(c[0], num), ==, num);
	wake_once(num, c[1], 'e');
	/* A wait its deadline ends, then one its event ends. */
	T_EXPECT_INT(weft_recv(num, &x, 1, 0, weft_now() + WEFT_MSEC), ==,
		     -ETIMEDOUT);
	wake_once(num, c[1], 'f');
	/* A reader and a writer waiting on one fd at once. */
	{
		struct weft_task *rd, *wr;
		void *r;

		while (send(num, rearm_buf, sizeof(rearm_buf), MSG_DONTWAIT) >
		       0)
			;
		T_EXPECT_INT(weft_spawn(&rd, recv_one, t_ptr(num), NULL), ==,
			     0);
		IO_WAIT_PARKED(rd);
		T_EXPECT_INT(weft_spawn(&wr, send_some, t_ptr(num), NULL), ==,
			     0);
		IO_WAIT_PARKED(wr);
		/* Room for the writer: it alone may return. */
		while (recv(c[1], rearm_buf, sizeof(rearm_buf), MSG_DONTWAIT) >
		       0)
			;
		T_EXPECT_INT(weft_join(wr, &r, io_dl()), ==, 0);
		T_EXPECT_INT(t_int(r), ==, 4096);
		T_EXPECT_INT(weft_task_state(rd), ==, WEFT_SUSPENDED);
		T_EXPECT_INT(weft_send(c[1], "g", 1, MSG_NOSIGNAL, io_dl()),
			     ==, 1);
		T_EXPECT_INT(weft_join(rd, &r, io_dl()), ==, 0);
		T_EXPECT_INT(t_int(r), ==, 'g');
	}
	io_close2(a);
	io_close2(b);
	io_close2(c);
	return NULL;
}

START_TEST(socketpair_waits_rearm_across_fd_reuse_and_deadlines)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(rearm_main, NULL, 1);
}
END_TEST

/*
 * Fairness of I/O wake-ups, counted in task runs, not timed: one worker,
 * FAIR_PAIRS pairs of tasks playing ping-pong over socketpairs, so ~300
 * tasks are runnable at once (more than a worker's ring holds) and every
 * run ends in a receive that waits and is woken at the tail.  Each run
 * takes a ticket from a counter; a task's gap is the tickets handed out
 * between two of its runs.  Served in FIFO order a task waits for its
 * peer's turn and its own, each behind every other runnable task: a gap
 * of about 2 x FAIR_PAIRS.  The bound is 8x that.  Before wake-ups queued
 * behind the global queue, fresh completions kept the ring full while the
 * tasks that had overflowed it waited in the global queue: gaps of tens
 * of thousands of tickets (1,000 wrk connections on weft-httpd: a p99 of
 * a second under epoll).
 */
#define FAIR_PAIRS 300
#define FAIR_TICKETS 120000L

struct fair;
static struct fair *t_fair_ctx;

struct fair {
	long ticket;			/* one worker: plain accesses */
	long last[2 * FAIR_PAIRS];
	long worst[2 * FAIR_PAIRS];
	int fd[2 * FAIR_PAIRS];
};

static void *
fair_player(void *arg)
{
	struct fair *f = t_fair_ctx;
	int i = t_int(arg), fd = f->fd[i];
	char b = 'p';

	/* The first of each pair serves. */
	if ((i & 1) == 0 && weft_send(fd, &b, 1, MSG_NOSIGNAL, io_dl()) != 1)
		T_EXPECT(false, "player %d: first send", i);
	for (;;) {
		ssize_t n = weft_recv(fd, &b, 1, 0, io_dl());

		if (n != 1) {
			/* The peer has left: 0 (EOF) or ECONNRESET. */
			T_EXPECT(n == 0 || n == -ECONNRESET,
				 "player %d: recv %zd", i, n);
			break;
		}
		if (f->last[i] >= 0 && f->ticket - f->last[i] > f->worst[i])
			f->worst[i] = f->ticket - f->last[i];
		f->last[i] = f->ticket++;
		if (f->ticket >= FAIR_TICKETS)
			break;
		if (weft_send(fd, &b, 1, MSG_NOSIGNAL, io_dl()) != 1)
			break;	/* the peer left meanwhile */
	}
	T_EXPECT_INT(weft_close(fd, io_dl()), ==, 0);
	return NULL;
}

static void *
fair_main(void *arg)
{
	static struct fair f;
	struct weft_task *t[2 * FAIR_PAIRS];
	long worst = 0;
	int who = 0;

	(void)arg;
	memset(&f, 0, sizeof(f));
	t_fair_ctx = &f;
	for (int i = 0; i < 2 * FAIR_PAIRS; i += 2) {
		int sv[2];

		if (!io_socketpair(sv))
			return NULL;
		f.fd[i] = sv[0];
		f.fd[i + 1] = sv[1];
	}
	for (int i = 0; i < 2 * FAIR_PAIRS; i++) {
		f.last[i] = -1;
		T_EXPECT_INT(weft_spawn(&t[i], fair_player, t_ptr(i), NULL),
			     ==, 0);
	}
	for (int i = 0; i < 2 * FAIR_PAIRS; i++)
		T_EXPECT_INT(weft_join(t[i], NULL, io_dl()), ==, 0);
	for (int i = 0; i < 2 * FAIR_PAIRS; i++)
		if (f.worst[i] > worst) {
			worst = f.worst[i];
			who = i;
		}
	T_EXPECT(f.ticket >= FAIR_TICKETS, "%ld tickets", f.ticket);
	T_EXPECT(worst <= 8L * 2 * FAIR_PAIRS,
		 "task %d waited %ld runs of others between two of its own "
		 "(bound %ld; %d tasks)", who, worst, 8L * 2 * FAIR_PAIRS,
		 2 * FAIR_PAIRS);
	if (getenv("WEFT_TEST_VERBOSE"))
		fprintf(stderr, "  [%s] worst gap %ld runs (task %d)\n",
			weft_io_backend(), worst, who);
	return NULL;
}

START_TEST(io_wakeups_are_served_in_fifo_order_past_the_ring)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(fair_main, NULL, 1);
}
END_TEST

static Suite *
io_basic_suite(void)
{
	Suite *s = suite_create("io/basic");
	TCase *tc;

	tc = t_tcase(s, "pipe", T_TIMEOUT);
	IO_ADD_W(tc, pipe_write_then_read_returns_the_bytes);
	IO_ADD(tc, pipe_short_read_returns_what_is_there);
	IO_ADD_W(tc, pipe_read_parks_until_data_arrives);
	IO_ADD(tc, pipe_readv_writev_scatter_and_gather);
	IO_ADD(tc, pipe_read_after_writer_closes_returns_eof);
	IO_ADD(tc, pipe_write_to_closed_reader_returns_epipe);
	IO_ADD_W(tc, pipe_write_full_of_1mib_reaches_slow_reader_in_order);
	IO_ADD(tc, pipe_read_full_loops_and_returns_fewer_at_eof);
	IO_ADD(tc, pipe_write_full_reports_done_on_epipe);
	IO_ADD_W(tc, pipe_thousands_of_parked_readers_all_complete);
	IO_ADD(tc, stream_that_never_waits_yields_to_timers_and_tasks);
	IO_ADD(tc, io_wakeups_are_served_in_fifo_order_past_the_ring);

	tc = t_tcase(s, "file", T_TIMEOUT);
	IO_ADD(tc, file_openat_creates_with_mode_and_honours_excl);
	IO_ADD(tc, file_read_write_use_and_advance_the_position);
	IO_ADD(tc, file_pread_pwrite_use_offsets_not_the_position);
	IO_ADD(tc, file_readv_writev_and_fsync);
	IO_ADD(tc, file_fsync_unknown_flags_return_einval);
	IO_ADD(tc, file_concurrent_pwrite_pread_of_1mib);

	tc = t_tcase(s, "socketpair", T_TIMEOUT);
	IO_ADD_W(tc, socketpair_send_recv_peek_and_waitall);
	IO_ADD(tc, socketpair_recv_dontwait_returns_eagain);
	IO_ADD(tc, socketpair_sendmsg_recvmsg_pass_an_fd);
	IO_ADD(tc, socketpair_send_to_closed_peer_returns_epipe_without_signal);
	IO_ADD(tc, socketpair_recv_after_peer_shutdown_returns_zero);
	IO_ADD_W(tc, socketpair_reader_and_writer_wait_on_one_fd);
	IO_ADD(tc, socketpair_waits_rearm_across_fd_reuse_and_deadlines);

	tc = t_tcase(s, "splice", T_TIMEOUT);
	IO_ADD(tc, splice_file_to_pipe);
	IO_ADD_W(tc, splice_pipe_to_socket);

	tc = t_tcase(s, "poll", T_TIMEOUT);
	IO_ADD_W(tc, poll_pipe_reports_pollin_when_written);
	IO_ADD_W(tc, poll_pipe_reports_pollout_when_writable);
	IO_ADD(tc, poll_pipe_reports_pollhup_after_close);
	IO_ADD(tc, poll_deadline_returns_etimedout);

	tc = t_tcase(s, "errors", T_TIMEOUT);
	IO_ADD(tc, io_on_a_bad_fd_returns_ebadf);
	IO_ADD(tc, io_on_the_wrong_kind_of_fd_returns_the_syscall_error);
	IO_ADD(tc, pread_pwrite_on_a_pipe_return_espipe);
	IO_ADD(tc, io_outside_coroutine_context_returns_eperm);
	IO_ADD(tc, close_outside_coroutine_context_closes_the_fd);
	tcase_add_test(tc, run_with_unknown_backend_returns_einval);

	return s;
}

int
main(void)
{
	return t_main(io_basic_suite());
}

/* SPDX-License-Identifier: MIT */
/*
 * Buffered I/O (weft_reader_*, weft_writer_*): lines and their limit, the
 * partial last line, exact reads, deadlines and cancellation with nothing
 * lost, and a writer that holds bytes until its flush.  Each case runs
 * under both backends (io_harness.h).
 */
#include "io_harness.h"

/* Write `s` to fd in full; records a failure. */
static void
put(int fd, const char *s)
{
	size_t len = strlen(s);

	T_EXPECT_INT(weft_write(fd, s, len, io_dl()), ==, (ssize_t)len);
}

/* Expect the next record of r to be `want` (its length, then its bytes). */
#define EXPECT_UNTIL(r, want)                                                  \
	do {                                                                   \
		const char *l_ = NULL;                                         \
		ssize_t n_ = weft_reader_read_until((r), '\n', &l_, io_dl());  \
		T_EXPECT_INT(n_, ==, (ssize_t)strlen(want));                   \
		if (n_ == (ssize_t)strlen(want))                               \
			T_EXPECT(memcmp(l_, (want), (size_t)n_) == 0,          \
				 "record \"%.*s\", wanted \"%s\"", (int)n_,    \
				 l_, (want));                                  \
	} while (0)

static void *
lines_main(void *arg)
{
	struct weft_reader *r;
	const char *l;
	int p[2];

	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_reader_make(&r, p[0], 0), ==, 0);
	put(p[1], "one\ntwo\npar");
	close(p[1]);
	EXPECT_UNTIL(r, "one\n");
	EXPECT_UNTIL(r, "two\n");
	/* The last line has no newline: returned as it is, then EOF. */
	EXPECT_UNTIL(r, "par");
	T_EXPECT_INT(weft_reader_read_until(r, '\n', &l, io_dl()), ==, 0);
	T_EXPECT_INT(weft_reader_read_until(r, '\n', &l, io_dl()), ==, 0);
	T_EXPECT_INT(weft_reader_read_until(r, 256, &l, io_dl()), ==, -EINVAL);
	weft_reader_free(r);
	close(p[0]);
	return NULL;
}

START_TEST(reader_returns_lines_then_the_partial_last_one_then_eof)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(lines_main, NULL, 1);
}
END_TEST

/* Writes "line-N\n" for N in 0..99, one byte per write, yielding. */
static void *
trickle(void *arg)
{
	int fd = (int)t_int(arg);
	char line[32];

	for (int i = 0; i < 100; i++) {
		int len = snprintf(line, sizeof(line), "line-%d\n", i);

		for (int k = 0; k < len; k++) {
			T_EXPECT_INT(weft_write(fd, &line[k], 1, io_dl()), ==,
				     1);
			weft_yield();
		}
	}
	close(fd);
	return NULL;
}

static void *
trickle_main(void *arg)
{
	struct weft_reader *r;
	struct weft_task *t;
	char want[32], got[32];
	int p[2];

	if (!io_pipe(p))
		return NULL;
	/* A buffer of 8 bytes: each line fits, the stream does not. */
	T_EXPECT_INT(weft_reader_make(&r, p[0], 8), ==, 0);
	t = io_spawn(trickle, t_ptr(p[1]));
	for (int i = 0; i < 100; i++) {
		ssize_t n = weft_reader_read_line(r, got, sizeof(got), io_dl());

		snprintf(want, sizeof(want), "line-%d\n", i);
		T_EXPECT_INT(n, ==, (ssize_t)strlen(want));
		T_EXPECT(n > 0 && strcmp(got, want) == 0, "line %d: \"%s\"", i,
			 n > 0 ? got : "");
	}
	T_EXPECT_INT(weft_reader_read_line(r, got, sizeof(got), io_dl()), ==,
		     0);
	io_join(t);
	weft_reader_free(r);
	close(p[0]);
	return NULL;
}

START_TEST(reader_parks_for_a_line_written_a_byte_at_a_time)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(trickle_main, NULL, IO_WORKERS(_i));
}
END_TEST

static void *
too_long_main(void *arg)
{
	struct weft_reader *r;
	const char *l;
	char buf[16];
	int p[2];

	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_reader_make(&r, p[0], 8), ==, 0);
	put(p[1], "0123456789\nhello\nok\n");
	/* 8 bytes without a newline: refused, and all 8 still there. */
	T_EXPECT_INT(weft_reader_read_until(r, '\n', &l, io_dl()), ==,
		     -EMSGSIZE);
	T_EXPECT_INT(weft_reader_buffered(r), ==, 8);
	T_EXPECT_INT(weft_reader_read_until(r, '\n', &l, io_dl()), ==,
		     -EMSGSIZE);
	/* Drained in pieces: the bytes come out in order. */
	T_EXPECT_INT(weft_reader_read(r, buf, sizeof(buf), io_dl()), ==, 8);
	T_EXPECT(memcmp(buf, "01234567", 8) == 0, "drained \"%.8s\"", buf);
	EXPECT_UNTIL(r, "89\n");
	/* The caller's limit: "hello\n" does not fit 4 bytes + NUL. */
	T_EXPECT_INT(weft_reader_read_line(r, buf, 5, io_dl()), ==,
		     -EMSGSIZE);
	T_EXPECT_INT(weft_reader_read_line(r, buf, 7, io_dl()), ==, 6);
	T_EXPECT(strcmp(buf, "hello\n") == 0, "line \"%s\"", buf);
	T_EXPECT_INT(weft_reader_read_line(r, buf, 1, io_dl()), ==, -EINVAL);
	EXPECT_UNTIL(r, "ok\n");
	weft_reader_free(r);
	io_close2(p);
	return NULL;
}

START_TEST(reader_refuses_a_line_over_its_limit_and_keeps_the_bytes)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(too_long_main, NULL, 1);
}
END_TEST

static void *
timeout_main(void *arg)
{
	struct weft_reader *r;
	const char *l = NULL;
	int64_t t0;
	ssize_t n;
	int p[2];

	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_reader_make(&r, p[0], 64), ==, 0);
	put(p[1], "abc");
	t0 = weft_now();
	n = weft_reader_read_until(r, '\n', &l, t0 + 20 * WEFT_MSEC);
	T_EXPECT_INT(n, ==, -ETIMEDOUT);
	T_EXPECT_INT(weft_now() - t0, >=, 20 * WEFT_MSEC);
	/* The partial line stayed in the reader. */
	T_EXPECT_INT(weft_reader_buffered(r), ==, 3);
	put(p[1], "def\n");
	EXPECT_UNTIL(r, "abcdef\n");
	/* Buffered data is served even past the deadline. */
	put(p[1], "x\ny");
	EXPECT_UNTIL(r, "x\n");
	T_EXPECT_INT(weft_reader_read_until(r, '\n', &l, 0), ==, -ETIMEDOUT);
	weft_reader_free(r);
	io_close2(p);
	return NULL;
}

START_TEST(reader_deadline_returns_etimedout_and_loses_nothing)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(timeout_main, NULL, 1);
}
END_TEST

struct cancel_arg {
	struct weft_reader *r;
	atomic_int entered;
};

static void *
cancel_reader(void *arg)
{
	struct cancel_arg *ca = arg;
	const char *l;

	atomic_store(&ca->entered, 1);
	return t_ptr(weft_reader_read_until(ca->r, '\n', &l,
					    WEFT_DEADLINE_NONE));
}

static void *
cancel_main(void *arg)
{
	struct cancel_arg ca = { 0 };
	struct weft_task *t;
	const char *l;
	char c;
	int p[2];

	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_reader_make(&ca.r, p[0], 64), ==, 0);
	put(p[1], "par");
	t = io_spawn(cancel_reader, &ca);
	IO_WAIT_PARKED(t);
	T_EXPECT_INT(atomic_load(&ca.entered), ==, 1);
	weft_cancel(t);
	T_EXPECT_INT(io_join(t), ==, -ECANCELED);
	T_EXPECT_INT(weft_reader_buffered(ca.r), ==, 3);
	/* A cancelled task gets -ECANCELED even from a buffer hit. */
	put(p[1], "\n");
	weft_cancel(weft_self());
	T_EXPECT_INT(weft_reader_read_until(ca.r, '\n', &l, 0), ==,
		     -ECANCELED);
	T_EXPECT_INT(weft_reader_read(ca.r, &c, 1, 0), ==, -ECANCELED);
	weft_reader_free(ca.r);
	io_close2(p);
	return NULL;
}

START_TEST(reader_is_a_cancellation_point)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(cancel_main, NULL, IO_WORKERS(_i));
}
END_TEST

static void *
full_main(void *arg)
{
	struct weft_reader *r;
	char buf[32];
	size_t done = 99;
	int p[2];

	if (!io_pipe(p))
		return NULL;
	T_EXPECT_INT(weft_reader_make(&r, p[0], 4), ==, 0);
	put(p[1], "HEADbody-of-ten");
	T_EXPECT_INT(weft_reader_read_full(r, buf, 4, &done, io_dl()), ==, 4);
	T_EXPECT(memcmp(buf, "HEAD", 4) == 0, "head \"%.4s\"", buf);
	T_EXPECT_INT(done, ==, 4);
	T_EXPECT_INT(weft_reader_read_full(r, buf, 11, &done, io_dl()), ==, 11);
	T_EXPECT(memcmp(buf, "body-of-ten", 11) == 0, "body \"%.11s\"", buf);
	/* A deadline in the middle: the bytes so far are in buf, counted. */
	put(p[1], "abc");
	T_EXPECT_INT(weft_reader_read_full(r, buf, 8, &done,
					   weft_now() + 10 * WEFT_MSEC),
		     ==, -ETIMEDOUT);
	T_EXPECT_INT(done, ==, 3);
	/* End of file in the middle: the short count. */
	put(p[1], "de");
	close(p[1]);
	T_EXPECT_INT(weft_reader_read_full(r, buf, 8, &done, io_dl()), ==, 2);
	T_EXPECT_INT(done, ==, 2);
	T_EXPECT(memcmp(buf, "de", 2) == 0, "tail \"%.2s\"", buf);
	T_EXPECT_INT(weft_reader_read_full(r, buf, 8, &done, io_dl()), ==, 0);
	weft_reader_free(r);
	close(p[0]);
	return NULL;
}

START_TEST(reader_read_full_reads_exact_counts_and_reports_short_ones)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(full_main, NULL, 1);
}
END_TEST

/* Bytes readable on fd right now (it is non-blocking): -EAGAIN if none. */
static ssize_t
peek_now(int fd, char *buf, size_t len)
{
	ssize_t n = read(fd, buf, len);

	return n < 0 ? -errno : n;
}

static void *
writer_main(void *arg)
{
	struct weft_writer *w;
	char buf[64], big[100];
	size_t done = 99;
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		T_EXPECT(0, "pipe2: %s", strerror(errno));
		return NULL;
	}
	T_EXPECT_INT(weft_writer_make(&w, p[1], 16), ==, 0);
	T_EXPECT_INT(weft_writer_write(w, "abc", 3, &done, io_dl()), ==, 3);
	T_EXPECT_INT(done, ==, 3);
	T_EXPECT_INT(weft_writer_write(w, "defgh", 5, NULL, io_dl()), ==, 5);
	/* Nothing reached the pipe before the flush. */
	T_EXPECT_INT(peek_now(p[0], buf, sizeof(buf)), ==, -EAGAIN);
	T_EXPECT_INT(weft_writer_buffered(w), ==, 8);
	T_EXPECT_INT(weft_writer_flush(w, io_dl()), ==, 0);
	T_EXPECT_INT(weft_writer_buffered(w), ==, 0);
	T_EXPECT_INT(peek_now(p[0], buf, sizeof(buf)), ==, 8);
	T_EXPECT(memcmp(buf, "abcdefgh", 8) == 0, "flushed \"%.8s\"", buf);
	/* A write bigger than the buffer flushes it, then goes straight. */
	memset(big, 'z', sizeof(big));
	T_EXPECT_INT(weft_writer_write(w, "12", 2, NULL, io_dl()), ==, 2);
	T_EXPECT_INT(weft_writer_write(w, big, sizeof(big), &done, io_dl()),
		     ==, (ssize_t)sizeof(big));
	T_EXPECT_INT(done, ==, sizeof(big));
	T_EXPECT_INT(weft_writer_buffered(w), ==, 0);
	T_EXPECT_INT(peek_now(p[0], buf, 2), ==, 2);
	T_EXPECT(memcmp(buf, "12", 2) == 0, "order: \"%.2s\" first", buf);
	while (peek_now(p[0], buf, sizeof(buf)) > 0)
		;
	/* A failed flush keeps the bytes: the reader end is gone. */
	T_EXPECT_INT(weft_writer_write(w, "keep", 4, NULL, io_dl()), ==, 4);
	close(p[0]);
	T_EXPECT_INT(weft_writer_flush(w, io_dl()), ==, -EPIPE);
	T_EXPECT_INT(weft_writer_buffered(w), ==, 4);
	/* Cancelled: refused, nothing taken. */
	weft_cancel(weft_self());
	T_EXPECT_INT(weft_writer_write(w, "x", 1, &done, io_dl()), ==,
		     -ECANCELED);
	T_EXPECT_INT(done, ==, 0);
	T_EXPECT_INT(weft_writer_flush(w, io_dl()), ==, -ECANCELED);
	weft_writer_free(w);
	close(p[1]);
	return NULL;
}

START_TEST(writer_holds_bytes_until_flush_and_keeps_them_on_error)
{
	IO_SKIP_UNLESS_BACKEND();
	IO_RUN(writer_main, NULL, 1);
}
END_TEST

START_TEST(bufio_bad_arguments_and_context)
{
	struct weft_reader *r = NULL;
	struct weft_writer *w = NULL;
	const char *l;
	char c;
	int p[2];

	ck_assert_int_eq(weft_reader_make(NULL, 0, 0), -EINVAL);
	ck_assert_int_eq(weft_reader_make(&r, -1, 0), -EINVAL);
	ck_assert_int_eq(weft_reader_make(&r, 0, (size_t)65 << 20), -EINVAL);
	ck_assert_int_eq(weft_writer_make(&w, -1, 0), -EINVAL);
	ck_assert_int_eq(weft_reader_read_until(NULL, '\n', &l, 0), -EINVAL);
	ck_assert_int_eq(weft_writer_flush(NULL, 0), -EINVAL);
	ck_assert_int_eq(weft_reader_buffered(NULL), 0);
	ck_assert_int_eq(weft_writer_buffered(NULL), 0);
	weft_reader_free(NULL);
	weft_writer_free(NULL);
	/* Outside coroutine context: -EPERM, as weft_read(). */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(weft_reader_make(&r, p[0], 0), 0);
	ck_assert_int_eq(weft_writer_make(&w, p[1], 0), 0);
	ck_assert_int_eq(weft_reader_read_until(r, '\n', &l, 0), -EPERM);
	ck_assert_int_eq(weft_reader_read(r, &c, 1, 0), -EPERM);
	ck_assert_int_eq(weft_writer_write(w, "x", 1, NULL, 0), -EPERM);
	ck_assert_int_eq(weft_writer_flush(w, 0), -EPERM);
	weft_reader_free(r);
	weft_writer_free(w);
	close(p[0]);
	close(p[1]);
}
END_TEST

static Suite *
bufio_suite(void)
{
	Suite *s = suite_create("runtime_bufio");
	TCase *tc;

	tc = t_tcase(s, "reader", T_TIMEOUT);
	IO_ADD(tc, reader_returns_lines_then_the_partial_last_one_then_eof);
	IO_ADD_W(tc, reader_parks_for_a_line_written_a_byte_at_a_time);
	IO_ADD(tc, reader_refuses_a_line_over_its_limit_and_keeps_the_bytes);
	IO_ADD(tc, reader_deadline_returns_etimedout_and_loses_nothing);
	IO_ADD_W(tc, reader_is_a_cancellation_point);
	IO_ADD(tc, reader_read_full_reads_exact_counts_and_reports_short_ones);

	tc = t_tcase(s, "writer", T_TIMEOUT);
	IO_ADD(tc, writer_holds_bytes_until_flush_and_keeps_them_on_error);

	tc = t_tcase(s, "errors", T_TIMEOUT);
	tcase_add_test(tc, bufio_bad_arguments_and_context);
	return s;
}

int
main(void)
{
	return t_main(bufio_suite());
}

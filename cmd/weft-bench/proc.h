/* SPDX-License-Identifier: MIT */
/*
 * Process, file and port helpers of a weft-bench child (proc.c): find and
 * run programs, start and stop a server process and measure its process
 * tree, small files, loopback sockets.  The http scenario drives its
 * servers and wrk with them; goprog.c builds and runs Go programs with
 * them.  Includes no other header of weft-bench.
 */
#ifndef WEFT_BENCH_PROC_H
#define WEFT_BENCH_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * bench_find_prog(): the first executable of the absolute paths in
 * `first`, `name` in $PATH (unless NULL), the paths in `then`; NULL if
 * none.  bench_run_cmd(): run argv with `env` added, stdout and stderr into
 * `log`, to its end (killed after limit_s): its exit status or -1.
 * bench_log_tail(): the end of a log on one line, for messages.
 */
const char *bench_find_prog(const char *const *first, const char *name,
			    const char *const *then, char *out, size_t len);
int bench_run_cmd(char *const argv[], char *const env[], const char *log,
		  int limit_s);
ssize_t bench_read_file(const char *path, char *buf, size_t size);
int bench_write_file(const char *path, const char *text);
const char *bench_log_tail(const char *path);

/* nanosleep() for ms milliseconds, through EINTR. */
void bench_sleep_ms(long ms);

/*
 * fork() and exec argv[0] with stdout and stderr into `log` and the extra
 * environment `env` (NULL-terminated "NAME=value"s, or NULL); fails the
 * child if it cannot.  The process dies with the child (PR_SET_PDEATHSIG)
 * and stays in its process group.
 */
pid_t bench_spawn(char *const argv[], char *const env[], const char *log);

#define BENCH_MAX_TREE 64
#define BENCH_MAX_RUNNING 4	/* servers up at once (proxy: 2) */

/* A server process the child started, and its process tree. */
struct bench_server {
	const char *impl;
	pid_t pid;			/* 0 once reaped */
	int port;
	int workers;			/* for the JSON "workers" field */
	pid_t tree[BENCH_MAX_TREE];	/* it and its descendants */
	int ntree;
	char log[PATH_MAX];		/* its stdout and stderr */
};

/*
 * Start a server and wait (10 s at most) until it listens (up to
 * BENCH_MAX_RUNNING at once: the proxy scenario runs a backend and a
 * proxy): until its log
 * has a "listening on HOST:PORT" line if port is 0, else until port
 * accepts a connection.  bench_server_stop(): SIGTERM, then SIGKILL after
 * 3 s; reap it and what is left of its tree.  Both fail the child if the
 * server does not behave.
 */
void bench_server_start(struct bench_server *s, char *const argv[],
			char *const env[], int port);
void bench_server_stop(struct bench_server *s);

/*
 * The server's process tree (pid and every descendant) read again into
 * s->tree; the utime+stime of the tree in seconds, its RSS in KiB.
 */
void bench_tree_refresh(struct bench_server *s);
double bench_tree_cpu_s(const struct bench_server *s);
long bench_tree_rss_kib(const struct bench_server *s);
/* The tree's open file descriptors (entries of /proc/PID/fd). */
long bench_tree_fds(const struct bench_server *s);

/* This executable's path, or with `dir`, its directory (fails the child). */
void bench_self_path(char *out, size_t len, bool dir);

/*
 * Everything the child must undo before it exits, whatever happens: its
 * scratch directory ("" when none), the servers bench_server_start() left
 * running, and bench_wrk_pid (0 when none).  bench_cleanup() undoes them;
 * bench_proc_fail() and bench_proc_skip() do so, then bench_fail() or
 * bench_skip() with their message.
 */
extern char bench_scratch_dir[256];
extern pid_t bench_wrk_pid;
void bench_cleanup(void);
void bench_proc_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
void bench_proc_skip(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/*
 * Loopback TCP: a listening socket on host:port (or -errno), the port a
 * socket is bound to, a connection to 127.0.0.1:port (or -errno), a port
 * nobody listens on right now (fails the child if none).
 */
int bench_listen(const char *host, int port, bool reuseport, int flags);
int bench_local_port(int fd);
int bench_connect_port(int port);
int bench_free_port(void);

#endif /* WEFT_BENCH_PROC_H */

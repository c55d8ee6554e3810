/* SPDX-License-Identifier: MIT */
/*
 * weft-bench: run the same workloads with OS threads, processes and weft
 * tasks and report the medians side by side.
 *
 * The harness itself never measures anything.  For every (scenario,
 * implementation, run) it forks a child in a process group of its own; the
 * child runs one scenario body and sends its numbers back as fixed-size
 * records over a pipe.  This keeps RSS measurements isolated (each child
 * starts from the harness's small image), and a crash or a hang in one
 * child only costs that row: the harness kills the child's group after the
 * scenario's time limit, reaps it, reports the error and exits non-zero at
 * the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft.h>

#include "bench.h"
#include "report.h"
#include "scenarios.h"
#include "servers.h"
#include "util.h"

/*
 * The scenario table.  Names are part of the command line and of the JSON
 * output: do not rename them.  The time limits are per child (one run of
 * one implementation); --quick has to finish everything in two minutes,
 * plus about a minute for http and 30-40 s for proxy.
 */
struct scenario {
	const char *name;
	const char *what;
	bench_fn fn[IMPL_MAX];
	int limit_quick;	/* seconds per child with --quick */
	int limit_full;		/* seconds per child otherwise */
	/* What the ratios compare with; IMPL_THREADS (0) unless set. */
	enum bench_impl baseline;
	/* Runs without --runs; 0: the default (3 with --quick, else 5). */
	int runs_quick;
	int runs_full;
	/* Run 1 of every implementation, then run 2...: see run_scenario(). */
	bool interleave;
};

static const struct scenario scenarios[] = {
	{
		.name = "spawn",
		.what = "create, run and join N empty tasks",
		.fn = {
			[IMPL_THREADS] = spawn_threads,
			[IMPL_PROCESSES] = spawn_processes,
			[IMPL_WEFT] = spawn_weft,
		},
		.limit_quick = 15,
		.limit_full = 90,
	},
	{
		.name = "yield",
		.what = "two tasks handing control back and forth",
		.fn = {
			[IMPL_THREADS] = yield_threads,
			[IMPL_PROCESSES] = yield_processes,
			[IMPL_WEFT] = yield_weft,
		},
		.limit_quick = 15,
		.limit_full = 90,
	},
	{
		.name = "park",
		.what = "N tasks alive and blocked at once",
		.fn = {
			[IMPL_THREADS] = park_threads,
			[IMPL_WEFT] = park_weft,
		},
		/*
		 * A million first touches of fresh stack pages: ~70 s on a
		 * VM whose page faults cost 20 us (these machines, 2026-12),
		 * under 10 s on bare metal.
		 */
		.limit_quick = 240,
		.limit_full = 300,
	},
	{
		.name = "sleep",
		.what = "N tasks each sleeping 10 ms",
		.fn = {
			[IMPL_THREADS] = sleep_threads,
			[IMPL_PROCESSES] = sleep_processes,
			[IMPL_WEFT] = sleep_weft,
		},
		.limit_quick = 15,
		.limit_full = 90,
	},
	{
		.name = "fanout",
		.what = "a CPU-bound job split into 256 chunks",
		.fn = {
			[IMPL_THREADS] = fanout_threads,
			[IMPL_WEFT] = fanout_weft,
		},
		.limit_quick = 15,
		.limit_full = 90,
	},
	{
		/*
		 * Each child runs wrk twice (2 s each with --quick, 8 s
		 * without) and opens 5,000 idle connections, so the runs
		 * are fewer by default.
		 */
		.name = "http",
		.what = "HTTP/1.1 keep-alive servers under wrk (needs wrk)",
		.fn = {
			[IMPL_THREADS] = http_threads,
			[IMPL_EPOLL] = http_epoll,
			[IMPL_EPOLL_MT] = http_epoll_mt,
			[IMPL_NGINX] = http_nginx,
			[IMPL_GO] = http_go,
			[IMPL_WEFT] = http_weft,
			[IMPL_WEFT_PROCS] = http_weft_procs,
			[IMPL_WEFT_PROCS_RP] = http_weft_procs_rp,
		},
		.limit_quick = 60,
		.limit_full = 150,
		.baseline = IMPL_EPOLL,
		.runs_quick = 1,
		.runs_full = 3,
		.interleave = true,
	},
	{
		/*
		 * wrk -> proxy -> weft-httpd: like http, two wrk runs and
		 * 2,000 idle connections per child, plus the backend.
		 */
		.name = "proxy",
		.what = "TCP proxies in front of weft-httpd under wrk "
			"(needs wrk)",
		.fn = {
			[IMPL_THREADS] = proxy_threads,
			[IMPL_NGINX] = proxy_nginx,
			[IMPL_GO] = proxy_go,
			[IMPL_WEFT] = proxy_weft,
			[IMPL_HAPROXY] = proxy_haproxy,
		},
		.limit_quick = 60,
		.limit_full = 150,
		.runs_quick = 1,
		.runs_full = 3,
		.interleave = true,
	},
	{
		.name = "chan",
		.what = "unbuffered channel ping-pong round trip",
		.fn = {
			[IMPL_THREADS] = chan_threads,
			[IMPL_GO] = chan_go,
			[IMPL_WEFT] = chan_weft,
		},
		.limit_quick = 15,
		.limit_full = 90,
	},
	{
		.name = "skynet",
		.what = "skynet: a 10-way tree of 1M leaves summing up",
		.fn = {
			[IMPL_THREADS] = skynet_threads,
			[IMPL_GO] = skynet_go,
			[IMPL_WEFT] = skynet_weft,
		},
		.limit_quick = 30,
		.limit_full = 90,
	},
	{
		.name = "mutex",
		.what = "contended counter under one mutex",
		.fn = {
			[IMPL_THREADS] = mutex_threads,
			[IMPL_WEFT] = mutex_weft,
		},
		.limit_quick = 15,
		.limit_full = 90,
	},
};

#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))
#define MAX_RECS 64

/* All numbers of one (scenario, impl, metric) across the runs. */
struct series {
	const struct scenario *sc;
	enum bench_impl impl;
	struct bench_rec rec;	/* the first run's record */
	double *vals;
	int nvals;
};

static struct series *series;
static size_t nseries;
static size_t series_cap;
static int failures;

static void
die_nomem(void)
{
	fprintf(stderr, "weft-bench: out of memory\n");
	exit(1);
}

static void
series_add(const struct scenario *sc, enum bench_impl impl,
	   const struct bench_rec *rec, int maxruns)
{
	struct series *s;
	size_t i;

	for (i = 0; i < nseries; i++) {
		s = &series[i];
		if (s->sc == sc && s->impl == impl &&
		    !strcmp(s->rec.metric, rec->metric))
			goto found;
	}
	if (nseries == series_cap) {
		series_cap = series_cap ? 2 * series_cap : 64;
		series = realloc(series, series_cap * sizeof(*series));
		if (!series)
			die_nomem();
	}
	s = &series[nseries++];
	memset(s, 0, sizeof(*s));
	s->sc = sc;
	s->impl = impl;
	s->rec = *rec;
	s->vals = calloc((size_t)maxruns, sizeof(double));
	if (!s->vals)
		die_nomem();
found:
	if (s->nvals < maxruns)
		s->vals[s->nvals++] = rec->value;
}

/* Remove what a failed run left behind, so medians use whole runs only. */
static void
series_drop_last(const struct scenario *sc, enum bench_impl impl, int run)
{
	size_t i;

	for (i = 0; i < nseries; i++) {
		if (series[i].sc == sc && series[i].impl == impl &&
		    series[i].nvals > run)
			series[i].nvals = run;
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	if (n % 2)
		return v[n / 2];
	return (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* SIGINT, SIGTERM or SIGHUP received by the harness; 0 if none. */
static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	interrupted = sig;
}

static void
catch_signals(void (*handler)(int))
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;	/* no SA_RESTART: poll() returns */
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

static void
child_main(const struct scenario *sc, enum bench_impl impl,
	   const struct bench_cfg *cfg, int wfd, pid_t harness)
{
	int ret;

	catch_signals(SIG_DFL);

	/* Die with the harness, and never outlive a killed harness. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != harness)
		_exit(4);
	setpgid(0, 0);
	bench_result_fd = wfd;
	ret = sc->fn[impl](cfg);
	if (ret < 0)
		bench_fail("%s", strerror(-ret));
	_exit(0);
}

/*
 * Run one child and collect its records.  Returns 0; 1 if the child
 * skipped the implementation (bench_skip(); the reason is in `err`); or -1
 * with a message in `err` (the child failed, crashed or ran out of time).
 * The child and its process group are killed if still there and always
 * reaped.
 */
static int
run_child(const struct scenario *sc, enum bench_impl impl,
	  const struct bench_cfg *cfg, int limit_s, struct bench_rec *recs,
	  int *nrecs, char *err, size_t errlen)
{
	char buf[MAX_RECS * sizeof(struct bench_rec)];
	int64_t deadline = bench_now() + (int64_t)limit_s * 1000000000;
	bool timed_out = false;
	bool skipped = false;
	bool killed = false;
	size_t have = 0;
	siginfo_t si;
	pid_t harness;
	int fds[2];
	int status;
	pid_t pid;
	int i;

	err[0] = '\0';
	*nrecs = 0;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	harness = getpid();
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(sc, impl, cfg, fds[1], harness);
	}
	/* Both sides set the group so a kill right after fork() finds it. */
	setpgid(pid, pid);
	close(fds[1]);

	for (;;) {
		int64_t left = deadline - bench_now();
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		ssize_t n;
		int ret;

		if (interrupted && !killed) {
			/*
			 * Kill it now, but read what it sent to the end: its
			 * scratch directory is to be removed.
			 */
			kill(-pid, SIGKILL);
			killed = true;
			deadline = bench_now() + 1000000000;
			continue;
		}
		if (left <= 0) {
			timed_out = !killed;
			break;
		}
		ret = poll(&pfd, 1, (int)(left / 1000000 + 1));
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret == 0)
			continue;
		if (have == sizeof(buf)) {
			snprintf(err, errlen, "child sent too many records");
			break;
		}
		n = read(fds[0], buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fds[0]);

	/*
	 * Until it is reaped, the child (alive or a zombie) pins its pid,
	 * which is also its process group's id: killing the group cannot hit
	 * anybody else's process.  So wait without reaping, kill what is left
	 * of the group (grandchildren of a failed "processes" run; nothing
	 * after a clean one), then reap.
	 */
	if (timed_out || err[0])
		kill(-pid, SIGKILL);
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 &&
	       errno == EINTR)
		;
	kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;

	for (i = 0; i < (int)(have / sizeof(struct bench_rec)); i++) {
		memcpy(&recs[i], buf + i * sizeof(struct bench_rec),
		       sizeof(struct bench_rec));
		/* Gone already unless the child failed or was killed. */
		if (recs[i].type == REC_SCRATCH && recs[i].msg[0] == '/')
			bench_rmtree(recs[i].msg);
		if (recs[i].type == REC_ERROR && !err[0])
			snprintf(err, errlen, "%s", recs[i].msg);
		if (recs[i].type == REC_SKIP)
			skipped = true;
	}
	*nrecs = i;
	if (interrupted) {
		/* Die of the same signal, as a shell expects. */
		catch_signals(SIG_DFL);
		raise(interrupted);
	}
	if (skipped && !err[0] && !timed_out && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0) {
		for (i = 0; i < *nrecs; i++) {
			if (recs[i].type == REC_SKIP)
				snprintf(err, errlen, "%s", recs[i].msg);
		}
		return 1;
	}

	if (timed_out) {
		snprintf(err, errlen, "no result within %d s; killed", limit_s);
		return -1;
	}
	if (err[0])
		return -1;
	if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "child killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "child exited with status %d",
			 WEXITSTATUS(status));
		return -1;
	}
	if (have % sizeof(struct bench_rec) || *nrecs == 0) {
		snprintf(err, errlen, "child sent no complete result");
		return -1;
	}
	return 0;
}

static char **errors;
static size_t nerrors;
static char **notes;
static size_t nnotes;

static void
add_line(char ***list, size_t *n, const char *line)
{
	*list = realloc(*list, (*n + 1) * sizeof(**list));
	if (!*list)
		die_nomem();
	(*list)[*n] = strdup(line);
	if (!(*list)[(*n)++])
		die_nomem();
}

static void
add_error(const char *scenario, const char *impl, int run, int runs,
	  const char *msg)
{
	char line[320];

	snprintf(line, sizeof(line), "%s/%s run %d/%d: %s", scenario, impl,
		 run, runs, msg);
	add_line(&errors, &nerrors, line);
	failures++;
}

/* A skip is said once per implementation; a remark once per run. */
static void
add_note(const char *scenario, const char *impl, int run, int runs,
	 const char *msg)
{
	char line[320];

	if (run)
		snprintf(line, sizeof(line), "%s/%s run %d/%d: %s", scenario,
			 impl, run, runs, msg);
	else
		snprintf(line, sizeof(line), "%s/%s: %s", scenario, impl, msg);
	add_line(&notes, &nnotes, line);
}

/*
 * Run `run` (0-based) of `impl` in a child and keep what it reports.
 * Returns true when the implementation is finished for this invocation:
 * it skipped itself, or it failed (a broken implementation stays broken).
 * Progress goes to stderr: "." or the reason.
 */
static bool
run_once(const struct scenario *sc, enum bench_impl impl,
	 const struct bench_cfg *cfg, int run, int runs, int limit)
{
	struct bench_rec recs[MAX_RECS];
	char err[256];
	int nrecs;
	int ret;
	int i;

	ret = run_child(sc, impl, cfg, limit, recs, &nrecs, err, sizeof(err));
	for (i = 0; i < nrecs; i++) {
		if (recs[i].type == REC_NOTE)
			add_note(sc->name, bench_impl_name(impl), run + 1, runs,
				 recs[i].msg);
	}
	if (ret > 0) {
		fprintf(stderr, " skipped: %s", err);
		add_note(sc->name, bench_impl_name(impl), 0, runs, err);
		return true;
	}
	if (ret < 0) {
		fprintf(stderr, " FAILED: %s", err);
		series_drop_last(sc, impl, run);
		add_error(sc->name, bench_impl_name(impl), run + 1, runs, err);
		return true;
	}
	for (i = 0; i < nrecs; i++) {
		if (recs[i].type == REC_METRIC)
			series_add(sc, impl, &recs[i], runs);
	}
	fprintf(stderr, ".");
	return false;
}

/*
 * All runs of every implementation: one implementation's runs after the
 * other's, or, for an interleaved scenario, run 1 of each, then run 2 of
 * each, and so on, so that a slow spell of a shared machine hits every
 * implementation alike rather than one of them.
 */
static void
run_scenario(const struct scenario *sc, const struct bench_cfg *cfg, int runs,
	     int limit)
{
	bool done[IMPL_MAX] = { false };
	int impl;
	int run;

	if (sc->interleave) {
		for (run = 0; run < runs; run++) {
			for (impl = 0; impl < IMPL_MAX; impl++) {
				int64_t t0 = bench_now();

				if (!sc->fn[impl] || done[impl])
					continue;
				fprintf(stderr, "  %-7s %-10s", sc->name,
					bench_impl_name(impl));
				done[impl] = run_once(sc, impl, cfg, run, runs,
						      limit);
				fprintf(stderr, " %.1f s (run %d/%d)\n",
					(bench_now() - t0) / 1e9, run + 1,
					runs);
			}
		}
		return;
	}
	for (impl = 0; impl < IMPL_MAX; impl++) {
		int64_t t0 = bench_now();

		if (!sc->fn[impl])
			continue;
		fprintf(stderr, "  %-7s %-10s", sc->name,
			bench_impl_name(impl));
		for (run = 0; run < runs && !done[impl]; run++)
			done[impl] = run_once(sc, impl, cfg, run, runs, limit);
		fprintf(stderr, " %.1f s\n", (bench_now() - t0) / 1e9);
	}
}

/*
 * Rows in the order they are printed: by scenario, then metric (in order of
 * first appearance), then implementation, so that the threads, processes
 * and weft numbers of one metric sit together.
 */
static void
build_rows(struct bench_report *r)
{
	size_t s, i, j;

	r->rows = calloc(nseries ? nseries : 1, sizeof(*r->rows));
	if (!r->rows)
		die_nomem();
	for (s = 0; s < NSCENARIOS; s++) {
		for (i = 0; i < nseries; i++) {
			bool seen = false;
			int impl;

			if (series[i].sc != &scenarios[s])
				continue;
			for (j = 0; j < i; j++) {
				if (series[j].sc == series[i].sc &&
				    !strcmp(series[j].rec.metric,
					    series[i].rec.metric))
					seen = true;
			}
			if (seen)
				continue;
			for (impl = 0; impl < IMPL_MAX; impl++) {
				for (j = i; j < nseries; j++) {
					struct series *x = &series[j];
					struct bench_row *row;

					if (x->sc != series[i].sc ||
					    (int)x->impl != impl ||
					    x->nvals == 0 ||
					    strcmp(x->rec.metric,
						   series[i].rec.metric))
						continue;
					row = &r->rows[r->nrows++];
					row->scenario = x->sc->name;
					row->impl = x->impl;
					row->baseline = x->sc->baseline;
					row->rec = x->rec;
					row->runs = x->nvals;
					row->rec.value = median(x->vals,
								x->nvals);
					row->min = x->vals[0];
					row->max = x->vals[x->nvals - 1];
				}
			}
		}
	}
}

/* Other load makes every number worse: print it with the results. */
static double
loadavg(void)
{
	double load = -1;
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (fscanf(f, "%lf", &load) != 1)
			load = -1;
		fclose(f);
	}
	return load;
}

static void
free_results(struct bench_report *r)
{
	size_t i;

	for (i = 0; i < nseries; i++)
		free(series[i].vals);
	free(series);
	for (i = 0; i < nerrors; i++)
		free(errors[i]);
	free(errors);
	for (i = 0; i < nnotes; i++)
		free(notes[i]);
	free(notes);
	free(r->rows);
}

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: weft-bench [--quick] [--only NAME,...] [--workers N]\n"
		"                  [--json FILE] [--csv FILE] [--svg FILE]"
		" [--runs K]\n"
		"                  [--timeout SEC]\n"
		"       weft-bench --serve threads|epoll [--host ADDR]"
		" [--port P] [--workers N]\n"
		"       weft-bench --serve-proxy threads --upstream HOST:PORT"
		" [--host ADDR] [--port P]\n\n"
		"Runs each workload with OS threads, processes and weft tasks"
		" and prints the\nmedian of K runs (default 5, --quick 3;"
		" http and proxy: 3 and 1).  Scenarios:\n");
	for (i = 0; i < NSCENARIOS; i++)
		fprintf(f, "  %-8s %s\n", scenarios[i].name,
			scenarios[i].what);
	fprintf(f, "\n--serve runs one of the http scenario's comparison"
		" servers in the foreground\n(default 127.0.0.1, port 0 = any"
		" free port; epoll with N workers: N threads,\n"
		"each with its own epoll and SO_REUSEPORT listener).\n"
		"--serve-proxy runs the proxy scenario's thread-per-direction"
		" TCP proxy\n(to the IPv4 HOST:PORT of --upstream) the same"
		" way.\n");
}

/* Mark the scenarios named in a comma-separated list; -1 on a bad name. */
static int
parse_only(const char *list, bool *selected)
{
	char *copy = strdup(list);
	char *save = NULL;
	char *name;
	size_t i;

	if (!copy)
		die_nomem();
	for (name = strtok_r(copy, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < NSCENARIOS; i++) {
			if (!strcmp(name, scenarios[i].name))
				break;
		}
		if (i == NSCENARIOS) {
			fprintf(stderr, "weft-bench: unknown scenario '%s'\n",
				name);
			free(copy);
			return -1;
		}
		selected[i] = true;
	}
	free(copy);
	return 0;
}

static int
parse_int(const char *s, const char *what, int min, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max) {
		fprintf(stderr, "weft-bench: %s must be %d..%d, not '%s'\n",
			what, min, max, s);
		exit(2);
	}
	return (int)v;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "only", required_argument, NULL, 'o' },
		{ "workers", required_argument, NULL, 'w' },
		{ "json", required_argument, NULL, 'j' },
		{ "csv", required_argument, NULL, 'c' },
		{ "svg", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "serve", required_argument, NULL, 'S' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'P' },
		{ "serve-proxy", required_argument, NULL, 'X' },
		{ "upstream", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *json = NULL, *csv = NULL, *svg = NULL;
	const char *serve = NULL, *host = "127.0.0.1";
	const char *serve_proxy = NULL, *upstream = NULL;
	int port = 0;
	bool selected[NSCENARIOS] = { false };
	bool any_selected = false;
	bool any_default;
	struct bench_report report;
	struct bench_cfg cfg;
	uint64_t total0, steal0, total1, steal1;
	bool have_ticks;
	int64_t t0;
	int timeout = 0;
	int runs = 0;
	cpu_set_t set;
	size_t i;
	int opt;

	/*
	 * The workloads' main tasks spawn a million tasks without parking:
	 * the runtime's slow-task report would be noise in the table.  A
	 * user's own WEFT_SLOW_MS still wins.
	 */
	setenv("WEFT_SLOW_MS", "0", 0);
	memset(&cfg, 0, sizeof(cfg));
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		cfg.ncpus = CPU_COUNT(&set);
	if (cfg.ncpus < 1)
		cfg.ncpus = 1;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			cfg.quick = true;
			break;
		case 'o':
			if (parse_only(optarg, selected) < 0)
				return 2;
			any_selected = true;
			break;
		case 'w':
			cfg.workers = parse_int(optarg, "--workers", 1, 1024);
			break;
		case 'j':
			json = optarg;
			break;
		case 'c':
			csv = optarg;
			break;
		case 's':
			svg = optarg;
			break;
		case 'r':
			runs = parse_int(optarg, "--runs", 1, 101);
			break;
		case 't':
			timeout = parse_int(optarg, "--timeout", 1, 86400);
			break;
		case 'S':
			serve = optarg;
			break;
		case 'H':
			host = optarg;
			break;
		case 'P':
			port = parse_int(optarg, "--port", 0, 65535);
			break;
		case 'X':
			serve_proxy = optarg;
			break;
		case 'U':
			upstream = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (serve)
		return http_serve(serve, host, port, cfg.workers ?
				  cfg.workers : 1);
	if (serve_proxy)
		return proxy_serve(serve_proxy, host, port, upstream);
	if (!cfg.workers)
		cfg.workers = cfg.ncpus;

	/* "5 runs each", "5 runs each (http: 3)", or "3 runs of http". */
	printf("weft-bench %s: %s mode, ", weft_version(),
	       cfg.quick ? "quick" : "full");
	any_default = runs > 0;
	for (i = 0; !runs && i < NSCENARIOS; i++) {
		if ((!any_selected || selected[i]) &&
		    !(cfg.quick ? scenarios[i].runs_quick :
				  scenarios[i].runs_full))
			any_default = true;
	}
	if (any_default)
		printf("%d run%s each", runs ? runs : cfg.quick ? 3 : 5,
		       runs == 1 ? "" : "s");
	for (i = 0; !runs && i < NSCENARIOS; i++) {
		int n = cfg.quick ? scenarios[i].runs_quick :
				    scenarios[i].runs_full;

		if (!n || (any_selected && !selected[i]))
			continue;
		if (any_default)
			printf(" (%s: %d)", scenarios[i].name, n);
		else
			printf("%d run%s of %s", n, n == 1 ? "" : "s",
			       scenarios[i].name);
	}
	printf(" (median), %d worker%s, %d CPU%s, load average %.2f\n",
	       cfg.workers, cfg.workers > 1 ? "s" : "", cfg.ncpus,
	       cfg.ncpus > 1 ? "s" : "", loadavg());
	if (BENCH_SHRINK > 1)
		printf("sanitizer build: every workload is %dx smaller and the "
		       "numbers mean nothing\n", BENCH_SHRINK);
	fflush(stdout);

	/* Ended by a signal, the harness still kills and cleans its child. */
	catch_signals(on_signal);
	t0 = bench_now();
	have_ticks = bench_cpu_ticks(&total0, &steal0) == 0;
	for (i = 0; i < NSCENARIOS; i++) {
		const struct scenario *sc = &scenarios[i];
		int limit = cfg.quick ? sc->limit_quick : sc->limit_full;
		int n = runs;

		if (any_selected && !selected[i])
			continue;
		if (!n)
			n = cfg.quick ? sc->runs_quick : sc->runs_full;
		if (!n)
			n = cfg.quick ? 3 : 5;
		run_scenario(sc, &cfg, n, timeout ? timeout : limit);
	}
	fprintf(stderr, "  total %.1f s, load average now %.2f",
		(bench_now() - t0) / 1e9, loadavg());
	if (have_ticks && bench_cpu_ticks(&total1, &steal1) == 0 &&
	    total1 > total0)
		fprintf(stderr, ", %.1f%% of the CPU time stolen by the "
			"hypervisor", 100.0 * (double)(steal1 - steal0) /
			(double)(total1 - total0));
	fprintf(stderr, "\n");

	memset(&report, 0, sizeof(report));
	report.workers = cfg.workers;
	report.quick = cfg.quick;
	report.runs = runs ? runs : cfg.quick ? 3 : 5;
	report.errors = (const char *const *)errors;
	report.nerrors = nerrors;
	report.notes = (const char *const *)notes;
	report.nnotes = nnotes;
	build_rows(&report);

	report_table(&report);
	if (json && report_json(&report, json) < 0)
		failures++;
	if (csv && report_csv(&report, csv) < 0)
		failures++;
	if (svg && report_svg(&report, svg) < 0)
		failures++;
	free_results(&report);
	return failures ? 1 : 0;
}

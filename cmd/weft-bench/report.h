/* SPDX-License-Identifier: MIT */
/*
 * The harness's results and their output (report.c): the table, JSON, CSV
 * and SVG, and the implementations' names.  Includes bench.h only.
 */
#ifndef WEFT_BENCH_REPORT_H
#define WEFT_BENCH_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "bench.h"

/*
 * Results as the harness keeps them (main.c collects, report.c prints).
 * One row per (scenario, impl, metric): the median over the runs.
 */
struct bench_row {
	const char *scenario;
	enum bench_impl impl;
	enum bench_impl baseline;	/* what the ratios compare with */
	struct bench_rec rec;	/* rec.value holds the median */
	double min;
	double max;
	int runs;		/* successful runs the median is taken over */
};

struct bench_report {
	struct bench_row *rows;
	size_t nrows;
	int workers;
	bool quick;
	int runs;		/* --runs */
	const char *const *errors;	/* one line per failed child */
	size_t nerrors;
	const char *const *notes;	/* skips and remarks of the children */
	size_t nnotes;
};

const char *bench_impl_name(enum bench_impl impl);

void report_table(const struct bench_report *r);
int report_json(const struct bench_report *r, const char *path);
int report_csv(const struct bench_report *r, const char *path);
int report_svg(const struct bench_report *r, const char *path);

#endif /* WEFT_BENCH_REPORT_H */

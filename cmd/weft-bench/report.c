/* SPDX-License-Identifier: MIT */
/*
 * Output of weft-bench: the table on stdout, and the JSON, CSV and SVG
 * files.  The JSON keys scenario/impl/metric/value/unit are an interface
 * other tools read; extra keys may be added, never renamed.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "report.h"

#define BAR_WIDTH 20

/* The implementations' names: in the table, the JSON and the CSV. */
static const char *const impl_names[IMPL_MAX] = {
	[IMPL_THREADS] = "threads",
	[IMPL_PROCESSES] = "processes",
	[IMPL_EPOLL] = "epoll",
	[IMPL_EPOLL_MT] = "epoll-mt",
	[IMPL_NGINX] = "nginx",
	[IMPL_GO] = "go",
	[IMPL_WEFT] = "weft",
	[IMPL_WEFT_PROCS] = "weft-procs",
	[IMPL_WEFT_PROCS_RP] = "weft-procs-rp",
	[IMPL_HAPROXY] = "haproxy",
};

const char *
bench_impl_name(enum bench_impl impl)
{
	return impl_names[impl];
}

/* ---- comparisons ---- */

static bool
same_group(const struct bench_row *a, const struct bench_row *b)
{
	return !strcmp(a->scenario, b->scenario) &&
	       !strcmp(a->rec.metric, b->rec.metric);
}

static const struct bench_row *
find_impl(const struct bench_report *r, enum bench_impl impl,
	  const char *scenario, const char *metric)
{
	size_t i;

	for (i = 0; i < r->nrows; i++) {
		const struct bench_row *t = &r->rows[i];

		if (t->impl == impl && !strcmp(t->scenario, scenario) &&
		    !strcmp(t->rec.metric, metric))
			return t;
	}
	return NULL;
}

/*
 * The baseline row to compare `row` with (threads, or epoll for http): the
 * same scenario and metric, or, for a variant the baseline does not have
 * (wall_ms_1w, ns_per_task_detached, rss_bytes_per_task_nw), the baseline
 * row of the base metric.
 */
static const struct bench_row *
baseline_row(const struct bench_report *r, const struct bench_row *row)
{
	static const char *const variants[] = { "_1w", "_nw", "_detached" };
	const struct bench_row *t;
	char base[sizeof(row->rec.metric)];
	size_t v;

	t = find_impl(r, row->baseline, row->scenario, row->rec.metric);
	for (v = 0; !t && v < sizeof(variants) / sizeof(variants[0]); v++) {
		size_t bl = strlen(row->rec.metric);
		size_t sl = strlen(variants[v]);

		if (bl <= sl || strcmp(row->rec.metric + bl - sl, variants[v]))
			continue;
		snprintf(base, sizeof(base), "%.*s", (int)(bl - sl),
			 row->rec.metric);
		t = find_impl(r, row->baseline, row->scenario, base);
	}
	return t;
}

static const char *
fmt_ratio(double x, char *buf, size_t len)
{
	if (x >= 100)
		snprintf(buf, len, "%.0f", x);
	else if (x >= 10)
		snprintf(buf, len, "%.1f", x);
	else
		snprintf(buf, len, "%.2f", x);
	return buf;
}

/*
 * "weft 14.2x faster", "weft uses 0.03x the memory", or "".  A baseline
 * other than threads is named: "weft 1.05x higher than epoll".
 */
static void
compare(const struct bench_report *r, const struct bench_row *row,
	char *buf, size_t len)
{
	const struct bench_row *t;
	const char *name = bench_impl_name(row->impl);
	double a = row->rec.value;
	char than[32] = "";
	size_t used;
	double b;
	char x[32];

	buf[0] = '\0';
	if (row->impl == row->baseline || row->rec.kind == KIND_INFO)
		return;
	t = baseline_row(r, row);
	if (!t)
		return;
	b = t->rec.value;
	if (!(a > 0) || !(b > 0) || !isfinite(a) || !isfinite(b))
		return;
	if (row->baseline != IMPL_THREADS)
		snprintf(than, sizeof(than), " %s %s",
			 row->rec.kind == KIND_MEMORY ? "of" : "than",
			 bench_impl_name(row->baseline));
	/* Closer than the printed precision: say so rather than "1.00x". */
	if (fabs(a / b - 1) < 0.005) {
		if (row->baseline != IMPL_THREADS)
			snprintf(buf, len, "%s on par with %s", name,
				 bench_impl_name(row->baseline));
		else
			snprintf(buf, len, "%s on par", name);
		return;
	}
	switch (row->rec.kind) {
	case KIND_TIME:
		if (b >= a)
			snprintf(buf, len, "%s %sx faster", name,
				 fmt_ratio(b / a, x, sizeof(x)));
		else
			snprintf(buf, len, "%s %sx slower", name,
				 fmt_ratio(a / b, x, sizeof(x)));
		break;
	case KIND_MEMORY:
		snprintf(buf, len, "%s uses %sx the memory", name,
			 fmt_ratio(a / b, x, sizeof(x)));
		break;
	case KIND_HIGHER:
		if (a >= b)
			snprintf(buf, len, "%s %sx higher", name,
				 fmt_ratio(a / b, x, sizeof(x)));
		else
			snprintf(buf, len, "%s %sx lower", name,
				 fmt_ratio(b / a, x, sizeof(x)));
		break;
	default:
		return;
	}
	used = strlen(buf);
	snprintf(buf + used, len - used, "%s", than);
}

/*
 * The scale of a (scenario, metric) group: its smallest and largest
 * positive value, and whether to draw it on a log scale (when the values
 * span more than a factor of 10; linear from 0 otherwise).
 */
struct scale {
	double min;
	double max;
	bool log;
};

static struct scale
group_scale(const struct bench_report *r, const struct bench_row *row)
{
	struct scale s = { 0, 0, false };
	size_t i;

	for (i = 0; i < r->nrows; i++) {
		double v = r->rows[i].rec.value;

		if (!same_group(&r->rows[i], row) || !(v > 0) || !isfinite(v))
			continue;
		if (s.min == 0 || v < s.min)
			s.min = v;
		if (v > s.max)
			s.max = v;
	}
	s.log = s.min > 0 && s.max / s.min > 10;
	return s;
}

/* Fraction (0..1] of the full bar for v; 0 when there is nothing to draw. */
static double
bar_frac(const struct scale *s, double v, double min_frac)
{
	if (!(v > 0) || !isfinite(v) || !(s->max > 0))
		return 0;
	if (!s->log)
		return v / s->max;
	return min_frac + (1 - min_frac) * log(v / s->min) /
	       log(s->max / s->min);
}

/* ---- table ---- */

/* 1234567.8 -> "1,234,568"; small values keep their decimals. */
static const char *
fmt_value(double v, char *buf, size_t len)
{
	char digits[64];
	size_t n, i, o = 0;
	int neg = v < 0;

	if (!isfinite(v)) {
		snprintf(buf, len, "%g", v);
		return buf;
	}
	if (v == floor(v) && fabs(v) < 1000) {
		snprintf(buf, len, "%.0f", v);
		return buf;
	}
	if (fabs(v) < 10) {
		snprintf(buf, len, "%.2f", v);
		return buf;
	}
	if (fabs(v) < 1000) {
		snprintf(buf, len, "%.1f", v);
		return buf;
	}
	snprintf(digits, sizeof(digits), "%.0f", fabs(v));
	n = strlen(digits);
	if (neg && o + 1 < len)
		buf[o++] = '-';
	for (i = 0; i < n && o + 2 < len; i++) {
		buf[o++] = digits[i];
		if ((n - i - 1) % 3 == 0 && i + 1 < n)
			buf[o++] = ',';
	}
	buf[o] = '\0';
	return buf;
}

/* 1000000 -> "1M", 200000 -> "200k". */
static const char *
fmt_count(long n, char *buf, size_t len)
{
	if (n >= 1000000 && n % 1000000 == 0)
		snprintf(buf, len, "%ldM", n / 1000000);
	else if (n >= 1000 && n % 1000 == 0)
		snprintf(buf, len, "%ldk", n / 1000);
	else
		snprintf(buf, len, "%ld", n);
	return buf;
}

/*
 * The footer's exceptions, per scenario: ", http: 1" where the runs differ
 * from --runs (what = 0), ", http: epoll" where the baseline is not threads
 * (what = 1).  Rows of one scenario are contiguous.
 */
static void
print_exceptions(FILE *f, const struct bench_report *r, int what)
{
	size_t i, j;

	for (i = 0; i < r->nrows; i = j) {
		const struct bench_row *first = &r->rows[i];
		int runs = 0;

		for (j = i; j < r->nrows &&
		     !strcmp(r->rows[j].scenario, first->scenario); j++) {
			if (r->rows[j].runs > runs)
				runs = r->rows[j].runs;
		}
		if (what == 0 && runs != r->runs)
			fprintf(f, ", %s: %d", first->scenario, runs);
		if (what == 1 && first->baseline != IMPL_THREADS)
			fprintf(f, ", %s: %s", first->scenario,
				bench_impl_name(first->baseline));
	}
}

void
report_table(const struct bench_report *r)
{
	const char *prev = NULL;
	size_t i;

	printf("\n%-8s %-9s %-26s %6s %12s %-5s  %-*s  %s\n", "scenario",
	       "impl", "metric", "n", "median", "unit", BAR_WIDTH, "bar",
	       "vs baseline");
	for (i = 0; i < r->nrows; i++) {
		const struct bench_row *row = &r->rows[i];
		struct scale s = group_scale(r, row);
		char bar[BAR_WIDTH + 1];
		char note[96], cmp[64], val[32], cnt[24];
		int len;

		if (prev && strcmp(prev, row->scenario))
			printf("\n");
		prev = row->scenario;
		len = (int)lround(BAR_WIDTH *
				  bar_frac(&s, row->rec.value,
					   1.0 / BAR_WIDTH));
		if (len < 1 && row->rec.value > 0)
			len = 1;
		memset(bar, s.log ? '=' : '#', (size_t)len);
		bar[len] = '\0';

		compare(r, row, cmp, sizeof(cmp));
		if (!strcmp(row->rec.unit, "bytes") && row->rec.value >= 1024)
			snprintf(note, sizeof(note), "%.2f KiB%s%s",
				 row->rec.value / 1024, cmp[0] ? "; " : "",
				 cmp);
		else
			snprintf(note, sizeof(note), "%s", cmp);

		printf("%-8s %-9s %-26s %6s %12s %-5s  %-*s  %s\n",
		       row->scenario, bench_impl_name(row->impl),
		       row->rec.metric, fmt_count(row->rec.n, cnt, sizeof(cnt)),
		       fmt_value(row->rec.value, val, sizeof(val)),
		       row->rec.unit, BAR_WIDTH, bar, note);
	}
	printf("\nmedian of %d run%s", r->runs, r->runs > 1 ? "s" : "");
	print_exceptions(stdout, r, 0);
	printf("; baseline: threads");
	print_exceptions(stdout, r, 1);
	printf("\nbars compare the rows of one metric: ### linear from 0,"
	       " === log scale\n");
	if (r->nnotes) {
		printf("\nnotes:\n");
		for (i = 0; i < r->nnotes; i++)
			printf("  %s\n", r->notes[i]);
	}
	if (r->nerrors) {
		printf("\n%zu error%s:\n", r->nerrors,
		       r->nerrors > 1 ? "s" : "");
		for (i = 0; i < r->nerrors; i++)
			printf("  %s\n", r->errors[i]);
	}
	fflush(stdout);
}

/* ---- files ---- */

static FILE *
open_out(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		fprintf(stderr, "weft-bench: %s: %s\n", path, strerror(errno));
	return f;
}

static int
close_out(FILE *f, const char *path)
{
	int err = ferror(f);

	if (fclose(f) || err) {
		fprintf(stderr, "weft-bench: writing %s failed\n", path);
		return -1;
	}
	return 0;
}

static const char *
better(int kind)
{
	switch (kind) {
	case KIND_TIME:
	case KIND_MEMORY:
		return "lower";
	case KIND_HIGHER:
		return "higher";
	default:
		return "none";
	}
}

/* Our strings are identifiers, but never write a broken JSON string. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void
json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.10g", v);
	else
		fputs("null", f);
}

/*
 * {"results":[{"scenario","impl","metric","value","unit","n","workers",
 * "runs","min","max","better","baseline"},...],"notes":["...",...]}
 */
int
report_json(const struct bench_report *r, const char *path)
{
	FILE *f = open_out(path);
	size_t i;

	if (!f)
		return -1;
	fputs("{\"results\":[", f);
	for (i = 0; i < r->nrows; i++) {
		const struct bench_row *row = &r->rows[i];

		fputs(i ? ",\n" : "\n", f);
		fputs("{\"scenario\":", f);
		json_str(f, row->scenario);
		fputs(",\"impl\":", f);
		json_str(f, bench_impl_name(row->impl));
		fputs(",\"metric\":", f);
		json_str(f, row->rec.metric);
		fputs(",\"value\":", f);
		json_num(f, row->rec.value);
		fputs(",\"unit\":", f);
		json_str(f, row->rec.unit);
		fprintf(f, ",\"n\":%ld,\"workers\":%d,\"runs\":%d,",
			row->rec.n, row->rec.workers, row->runs);
		fputs("\"min\":", f);
		json_num(f, row->min);
		fputs(",\"max\":", f);
		json_num(f, row->max);
		fprintf(f, ",\"better\":\"%s\",\"baseline\":",
			better(row->rec.kind));
		json_str(f, bench_impl_name(row->baseline));
		fputc('}', f);
	}
	fputs("\n],\"notes\":[", f);
	for (i = 0; i < r->nnotes; i++) {
		fputs(i ? ",\n" : "\n", f);
		json_str(f, r->notes[i]);
	}
	fputs("\n]}\n", f);
	return close_out(f, path);
}

int
report_csv(const struct bench_report *r, const char *path)
{
	FILE *f = open_out(path);
	size_t i;

	if (!f)
		return -1;
	fputs("scenario,impl,metric,value,unit,n,workers,runs,min,max,"
	      "better\n", f);
	for (i = 0; i < r->nrows; i++) {
		const struct bench_row *row = &r->rows[i];

		fprintf(f, "%s,%s,%s,%.10g,%s,%ld,%d,%d,%.10g,%.10g,%s\n",
			row->scenario, bench_impl_name(row->impl),
			row->rec.metric, row->rec.value, row->rec.unit,
			row->rec.n, row->rec.workers, row->runs, row->min,
			row->max, better(row->rec.kind));
	}
	return close_out(f, path);
}

/* ---- SVG: one block per (scenario, metric), one bar per impl ---- */

#define SVG_W		900
#define SVG_LABEL	90	/* impl names left of the bars */
#define SVG_BAR_MAX	480
#define SVG_ROW		20
#define SVG_TITLE	24
#define SVG_GAP		14

static const char *const impl_colors[IMPL_MAX] = {
	[IMPL_THREADS] = "#4e79a7",
	[IMPL_PROCESSES] = "#f28e2b",
	[IMPL_EPOLL] = "#e15759",
	[IMPL_EPOLL_MT] = "#ff9d9a",
	[IMPL_NGINX] = "#76b7b2",
	[IMPL_GO] = "#b07aa1",
	[IMPL_WEFT] = "#59a14f",
	[IMPL_WEFT_PROCS] = "#8cd17d",
	[IMPL_WEFT_PROCS_RP] = "#b6992d",
	[IMPL_HAPROXY] = "#9c755f",
};

static void
svg_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else
			fputc(*s, f);
	}
}

int
report_svg(const struct bench_report *r, const char *path)
{
	FILE *f;
	size_t i, j;
	int height = 60;
	int y;

	for (i = 0; i < r->nrows; i++) {
		if (i == 0 || !same_group(&r->rows[i - 1], &r->rows[i]))
			height += SVG_TITLE + SVG_GAP;
		height += SVG_ROW;
	}
	f = open_out(path);
	if (!f)
		return -1;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		"height=\"%d\" viewBox=\"0 0 %d %d\" "
		"font-family=\"sans-serif\" font-size=\"12\">\n",
		SVG_W, height, SVG_W, height);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
	fprintf(f, "<text x=\"10\" y=\"22\" font-size=\"16\" "
		"font-weight=\"bold\">weft-bench: threads vs processes vs weft"
		"</text>\n");
	fprintf(f, "<text x=\"10\" y=\"40\" fill=\"#555\">median of %d "
		"run%s", r->runs, r->runs > 1 ? "s" : "");
	print_exceptions(f, r, 0);
	fprintf(f, "; %d worker%s%s; each block has its own scale "
		"(log where marked)</text>\n", r->workers,
		r->workers > 1 ? "s" : "", r->quick ? ", --quick" : "");
	y = 60;
	for (i = 0; i < r->nrows; i = j) {
		const struct bench_row *first = &r->rows[i];
		struct scale s = group_scale(r, first);

		fprintf(f, "<text x=\"10\" y=\"%d\" font-weight=\"bold\">",
			y + 16);
		svg_text(f, first->scenario);
		fputs(" / ", f);
		svg_text(f, first->rec.metric);
		fprintf(f, "</text><text x=\"%d\" y=\"%d\" fill=\"#555\">(",
			SVG_LABEL + 230, y + 16);
		svg_text(f, first->rec.unit);
		fprintf(f, ", %s is better%s)</text>\n",
			first->rec.kind == KIND_HIGHER ? "higher" :
			first->rec.kind == KIND_INFO ? "neither" : "lower",
			s.log ? ", log scale" : "");
		y += SVG_TITLE;
		for (j = i; j < r->nrows && same_group(first, &r->rows[j]);
		     j++) {
			const struct bench_row *row = &r->rows[j];
			int w = (int)lround(SVG_BAR_MAX *
					    bar_frac(&s, row->rec.value,
						     0.03));
			char val[32], cmp[64];

			compare(r, row, cmp, sizeof(cmp));
			fmt_value(row->rec.value, val, sizeof(val));
			fprintf(f, "<text x=\"%d\" y=\"%d\" "
				"text-anchor=\"end\">%s</text>",
				SVG_LABEL, y + 14, bench_impl_name(row->impl));
			fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" "
				"height=\"%d\" fill=\"%s\"/>", SVG_LABEL + 8,
				y + 2, w > 1 ? w : 1, SVG_ROW - 5,
				impl_colors[row->impl]);
			fprintf(f, "<text x=\"%d\" y=\"%d\">%s ", SVG_LABEL +
				14 + (w > 1 ? w : 1), y + 14, val);
			svg_text(f, row->rec.unit);
			if (cmp[0]) {
				fputs(" \xe2\x80\x94 ", f);
				svg_text(f, cmp);
			}
			fputs("</text>\n", f);
			y += SVG_ROW;
		}
		y += SVG_GAP;
	}
	fputs("</svg>\n", f);
	return close_out(f, path);
}

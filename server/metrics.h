/* metrics.h — Prometheus text exposition (format 0.0.4) for keeld's
 * /metrics, and the fixed-bucket histogram the node and the services fill.
 * Pure: no I/O, no clock, no libuv; the caller measures and observes.
 *
 * A page is built into a struct metrics_buf with a hard size limit: once a
 * write would pass it the buffer stops growing and remembers the error
 * (metrics_buf_error()), so a page never grows without bound and a caller
 * checks once at the end.
 *
 *   struct metrics_buf b;
 *   metrics_buf_init(&b, 1 << 20);
 *   metrics_family(&b, "keel_raft_term", "Current raft term.", "gauge");
 *   metrics_sample(&b, "keel_raft_term", NULL, 7);
 *   metrics_family(&b, "keel_apply_duration_seconds", "...", "histogram");
 *   metrics_histogram_write(&b, "keel_apply_duration_seconds", NULL, &h);
 *   if (metrics_buf_error(&b) == 0) send(b.p, b.len);
 *   metrics_buf_free(&b);
 *
 * Labels are given preformatted without braces ("method=\"/x.Y/Z\"",
 * several joined by commas); metrics_label() builds one pair with the value
 * escaped as the format requires (backslash, double quote, newline).
 *
 * THREADS. None of its own. A histogram is filled by one thread at a time
 * (keeld: the loop thread).
 */
#ifndef KEEL_METRICS_H
#define KEEL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_BOUNDS 16

struct metrics_histogram {
  double bounds[METRICS_MAX_BOUNDS]; /* ascending upper bounds (le) */
  size_t n_bounds;
  uint64_t counts[METRICS_MAX_BOUNDS + 1]; /* per bucket; last is +Inf */
  uint64_t count;
  double sum;
};

/* Latency buckets in seconds (100 µs .. 10 s), for disk and request
 * durations. */
extern const double metrics_latency_bounds[];
extern const size_t metrics_latency_n;

/* Sets the bounds (at most METRICS_MAX_BOUNDS, ascending; extra ones are
 * ignored) and zeroes the counts. */
void metrics_histogram_init(struct metrics_histogram *h, const double *bounds,
                            size_t n);
/* Counts one observation v (in the first bucket whose bound >= v). */
void metrics_histogram_observe(struct metrics_histogram *h, double v);

struct metrics_buf {
  char *p; /* NUL-terminated text, malloc'd; NULL until the first write */
  size_t len, cap, limit;
  int err; /* 0, -ENOMEM, or KEEL_ELIMIT once limit would be passed */
};

/* limit: the largest page in bytes. */
void metrics_buf_init(struct metrics_buf *b, size_t limit);
void metrics_buf_free(struct metrics_buf *b);
/* 0, or the first error met (the text is then incomplete). */
int metrics_buf_error(const struct metrics_buf *b);

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void metrics_family(struct metrics_buf *b, const char *name, const char *help,
                    const char *type);
/* "name{labels} value"; labels may be NULL or "". Integers print exactly
 * (a double holds every value below 2^53); NaN and infinities as the
 * format spells them. */
void metrics_sample(struct metrics_buf *b, const char *name, const char *labels,
                    double value);
/* The _bucket (cumulative, le="..." then le="+Inf"), _sum and _count lines
 * of h, each with labels (may be NULL) before le. */
void metrics_histogram_write(struct metrics_buf *b, const char *name,
                             const char *labels,
                             const struct metrics_histogram *h);

/* Writes key="escaped value" into out (cap bytes, NUL-terminated). Returns
 * the length, or -1 (out set to "") if it does not fit. */
int metrics_label(char *out, size_t cap, const char *key, const char *value);

#endif

/* metrics.c — Prometheus text format writer and histogram; see metrics.h.
 * The buffer doubles up to its limit; numbers go through one formatter so
 * integers never show an exponent (Prometheus parses both, people read
 * one). */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

const double metrics_latency_bounds[] = {0.0001, 0.0005, 0.001, 0.0025, 0.005,
                                         0.01,   0.025,  0.05,  0.1,    0.25,
                                         0.5,    1,      2.5,   10};
const size_t metrics_latency_n =
    sizeof(metrics_latency_bounds) / sizeof(metrics_latency_bounds[0]);

void metrics_histogram_init(struct metrics_histogram *h, const double *bounds,
                            size_t n) {
  memset(h, 0, sizeof(*h));
  if (n > METRICS_MAX_BOUNDS)
    n = METRICS_MAX_BOUNDS;
  memcpy(h->bounds, bounds, n * sizeof(*bounds));
  h->n_bounds = n;
}

void metrics_histogram_observe(struct metrics_histogram *h, double v) {
  size_t i = 0;
  while (i < h->n_bounds && v > h->bounds[i])
    i++;
  h->counts[i]++;
  h->count++;
  h->sum += v;
}

void metrics_buf_init(struct metrics_buf *b, size_t limit) {
  memset(b, 0, sizeof(*b));
  b->limit = limit;
}

void metrics_buf_free(struct metrics_buf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

int metrics_buf_error(const struct metrics_buf *b) {
  return b->err;
}

static void put(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct metrics_buf *b, const char *fmt, ...) {
  if (b->err)
    return;
  for (;;) {
    size_t room = b->cap - b->len;
    va_list ap;
    va_start(ap, fmt);
    int k = b->p ? vsnprintf(b->p + b->len, room, fmt, ap)
                 : vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
      b->err = -EINVAL;
      return;
    }
    if (b->p && (size_t)k < room) {
      b->len += (size_t)k;
      return;
    }
    size_t need = b->len + (size_t)k + 1;
    if (need > b->limit) {
      b->err = KEEL_ELIMIT;
      if (b->p)
        b->p[b->len] = 0;
      return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
      cap *= 2;
    if (cap > b->limit)
      cap = b->limit;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->err = -ENOMEM;
      return;
    }
    if (!b->p)
      p[0] = 0;
    b->p = p;
    b->cap = cap;
  }
}

/* Integers exactly, else the shortest %g that reads back the same. */
static void fmt_num(char *out, size_t cap, double v) {
  if (isnan(v))
    snprintf(out, cap, "NaN");
  else if (isinf(v))
    snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
  else if (v > -9007199254740992.0 && v < 9007199254740992.0 &&
           (double)(int64_t)v == v)
    snprintf(out, cap, "%lld", (long long)v);
  else {
    for (int prec = 6; prec <= 17; prec++) {
      snprintf(out, cap, "%.*g", prec, v);
      if (strtod(out, NULL) == v)
        return;
    }
  }
}

void metrics_family(struct metrics_buf *b, const char *name, const char *help,
                    const char *type) {
  put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct metrics_buf *b, const char *name, const char *labels,
                    double value) {
  char num[40];
  fmt_num(num, sizeof(num), value);
  if (labels && labels[0])
    put(b, "%s{%s} %s\n", name, labels, num);
  else
    put(b, "%s %s\n", name, num);
}

void metrics_histogram_write(struct metrics_buf *b, const char *name,
                             const char *labels,
                             const struct metrics_histogram *h) {
  const char *sep = labels && labels[0] ? "," : "";
  const char *lb = labels ? labels : "";
  uint64_t cum = 0;
  char num[40];
  for (size_t i = 0; i < h->n_bounds; i++) {
    cum += h->counts[i];
    fmt_num(num, sizeof(num), h->bounds[i]);
    put(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, lb, sep, num,
        (unsigned long long)cum);
  }
  put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lb, sep,
      (unsigned long long)h->count);
  char full[64];
  snprintf(full, sizeof(full), "%s_sum", name);
  metrics_sample(b, full, labels, h->sum);
  snprintf(full, sizeof(full), "%s_count", name);
  metrics_sample(b, full, labels, (double)h->count);
}

int metrics_label(char *out, size_t cap, const char *key, const char *value) {
  size_t o = 0;
  int k = snprintf(out, cap, "%s=\"", key);
  if (k < 0 || (size_t)k >= cap)
    goto toolong;
  o = (size_t)k;
  for (const char *p = value; *p; p++) {
    const char *esc = *p == '\\'   ? "\\\\"
                      : *p == '"'  ? "\\\""
                      : *p == '\n' ? "\\n"
                                   : NULL;
    size_t n = esc ? 2 : 1;
    if (o + n + 2 > cap)
      goto toolong;
    if (esc)
      memcpy(out + o, esc, 2);
    else
      out[o] = *p;
    o += n;
  }
  out[o++] = '"';
  out[o] = 0;
  return (int)o;
toolong:
  if (cap)
    out[0] = 0;
  return -1;
}

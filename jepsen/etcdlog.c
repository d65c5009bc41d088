/* etcdlog.c — Jepsen log lines of a register to EDN history lines
 * (etcdlog.h). A strict little tokenizer: fields are separated by runs of
 * blanks, and each field must be exactly what the format allows. */
#include "etcdlog.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

#define LINE_MAX_BYTES 4096
#define MAX_PROCESS 1000000

struct conv {
  const char *name;
  size_t line;
  char *err;
  size_t errlen;
  char **pending; /* process -> EDN text of its invoke's value, or NULL */
  size_t npending;
};

static int cfail(struct conv *c, const char *what) {
  snprintf(c->err, c->errlen, "%s:%zu: %s", c->name, c->line, what);
  return KEEL_EPARSE;
}

/* Splits s into at most max blank-separated fields; returns the count. */
static size_t split(char *s, char **fields, size_t max) {
  size_t n = 0;
  char *p = s;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == '\r')
      p++;
    if (!*p)
      break;
    if (n == max)
      return max + 1;
    fields[n++] = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\r')
      p++;
    if (*p)
      *p++ = '\0';
  }
  return n;
}

static bool all_digits(const char *s) {
  if (!*s || strlen(s) > 18)
    return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return false;
  }
  return true;
}

static int convert_line(struct conv *c, char *line, size_t index, FILE *out) {
  char *fld[9];
  size_t n = split(line, fld, 8);
  if (n == 0)
    return 0;
  /* "[a b]" is split in two: rejoin it. */
  char cas[64];
  if (n == 8 && fld[6][0] == '[') {
    snprintf(cas, sizeof(cas), "%s %s", fld[6], fld[7]);
    fld[6] = cas;
    n = 7;
  }
  if (n != 7 || strcmp(fld[0], "INFO") != 0 ||
      strcmp(fld[1], "jepsen.util") != 0 || strcmp(fld[2], "-") != 0)
    return cfail(c, "expected 'INFO jepsen.util - PROCESS :TYPE :F VALUE'");
  if (!all_digits(fld[3]) || atol(fld[3]) > MAX_PROCESS)
    return cfail(c, "the process must be an integer up to 1000000");
  size_t proc = (size_t)atol(fld[3]);
  const char *type = fld[4], *f = fld[5], *v = fld[6];
  if (strcmp(type, ":invoke") && strcmp(type, ":ok") && strcmp(type, ":fail") &&
      strcmp(type, ":info"))
    return cfail(c, "the type must be :invoke, :ok, :fail or :info");
  if (strcmp(f, ":read") && strcmp(f, ":write") && strcmp(f, ":cas"))
    return cfail(c, "the op must be :read, :write or :cas");
  bool timed_out = strcmp(v, ":timed-out") == 0;
  char value[64];
  if (strcmp(v, "nil") == 0 || timed_out) {
    snprintf(value, sizeof(value), "nil");
  } else if (all_digits(v)) {
    snprintf(value, sizeof(value), "%s", v);
  } else {
    char a[24], b[24], tail;
    if (sscanf(v, "[%23[0-9] %23[0-9]%c", a, b, &tail) != 3 || tail != ']' ||
        v[strlen(v) - 1] != ']')
      return cfail(c, "the value must be nil, an integer, [from to] or "
                      ":timed-out");
    snprintf(value, sizeof(value), "[%s %s]", a, b);
  }
  if (proc >= c->npending) {
    size_t nn = proc + 1 > c->npending * 2 ? proc + 1 : c->npending * 2;
    char **p = realloc(c->pending, nn * sizeof(*p));
    if (!p)
      return -ENOMEM;
    memset(p + c->npending, 0, (nn - c->npending) * sizeof(*p));
    c->pending = p;
    c->npending = nn;
  }
  const char *out_type = type + 1;
  const char *extra = "";
  if (strcmp(type, ":invoke") == 0) {
    if (timed_out)
      return cfail(c, "an invoke cannot be :timed-out");
    free(c->pending[proc]);
    c->pending[proc] = strdup(value);
    if (!c->pending[proc])
      return -ENOMEM;
  } else {
    if (!c->pending[proc])
      return cfail(c, "a completion with no invoke of its process before it");
    if (timed_out) {
      /* The op's own value, as Jepsen records it; the reason apart. */
      snprintf(value, sizeof(value), "%s", c->pending[proc]);
      extra = ", :error :timed-out";
    }
    free(c->pending[proc]);
    c->pending[proc] = NULL;
  }
  fprintf(out,
          "{:index %zu, :time %zu, :type :%s, :process %zu, :f %s, "
          ":value %s%s}\n",
          index, index, out_type, proc, f, value, extra);
  return 0;
}

int jepsen_convert_etcd_log(FILE *in, const char *name, FILE *out, char *err,
                            size_t errlen) {
  struct conv c = {.name = name, .err = err, .errlen = errlen};
  char line[LINE_MAX_BYTES + 2];
  size_t index = 0;
  int rc = 0;
  while (fgets(line, sizeof(line), in)) {
    c.line++;
    size_t len = strlen(line);
    if (len > 0 && line[len - 1] == '\n')
      line[--len] = '\0';
    else if (!feof(in)) {
      rc = cfail(&c, "line longer than 4096 bytes");
      break;
    }
    char copy[LINE_MAX_BYTES + 2];
    memcpy(copy, line, len + 1);
    rc = convert_line(&c, copy, index, out);
    if (rc != 0)
      break;
    if (len > 0)
      index++;
  }
  if (rc == 0 && ferror(in)) {
    snprintf(err, errlen, "%s: read error", name);
    rc = -EIO;
  }
  for (size_t i = 0; i < c.npending; i++)
    free(c.pending[i]);
  free(c.pending);
  return rc;
}

/* props.c — property lists, scalar typing, the merge order and list
 * replacement, stored keys and values, diffs, and the small helpers the other
 * files of profiles/ share.
 *
 * Invariants: a list returned by the library is sorted by profiles_name_cmp
 * with unique names; no value holds a NUL byte; a non-string value's text is
 * the canonical form profiles_scalar_resolve() produces, so comparing texts
 * compares values.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "profiles.h"
#include "profiles_int.h"

/* ---- buffers and errors ----------------------------------------------- */

static int pbuf_reserve(struct pbuf *b, size_t extra) {
  if (b->oom)
    return -1;
  if (b->len + extra + 1 <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) {
    if (cap > SIZE_MAX / 2) {
      b->oom = 1;
      return -1;
    }
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void pbuf_put(struct pbuf *b, const char *s, size_t n) {
  if (pbuf_reserve(b, n))
    return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = 0;
}

void pbuf_puts(struct pbuf *b, const char *s) {
  pbuf_put(b, s, strlen(s));
}

void pbuf_putc(struct pbuf *b, char c) {
  pbuf_put(b, &c, 1);
}

void pbuf_printf(struct pbuf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = 1;
    return;
  }
  if ((size_t)n < sizeof tmp) {
    pbuf_put(b, tmp, (size_t)n);
    return;
  }
  if (pbuf_reserve(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

int pbuf_finish(struct pbuf *b, char **out, size_t *out_len) {
  if (!b->oom && pbuf_reserve(b, 0) == 0) {
    b->data[b->len] = 0;
    *out = b->data;
    if (out_len)
      *out_len = b->len;
    memset(b, 0, sizeof *b);
    return 0;
  }
  pbuf_free(b);
  return -ENOMEM;
}

void pbuf_free(struct pbuf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

void perr_set(struct profiles_error *err, const char *file, int line,
              int column, const char *fmt, ...) {
  if (!err)
    return;
  err->line = line;
  err->column = column;
  int off = 0;
  if (file)
    off = snprintf(err->msg, sizeof err->msg, "%s:%d:%d: ", file, line, column);
  if (off < 0 || (size_t)off >= sizeof err->msg)
    off = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg + off, sizeof err->msg - (size_t)off, fmt, ap);
  va_end(ap);
}

size_t putf8_prefix(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n)
      return i;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return n;
}

int putf8_valid(const char *s, size_t n) {
  return putf8_prefix(s, n) == n;
}

/* ---- lists ------------------------------------------------------------ */

const char *profiles_type_name(enum profiles_type t) {
  switch (t) {
  case PROFILES_STRING:
    return "string";
  case PROFILES_INTEGER:
    return "integer";
  case PROFILES_FLOAT:
    return "float";
  case PROFILES_BOOLEAN:
    return "boolean";
  case PROFILES_NULL:
    return "null";
  }
  return "unknown";
}

void profiles_list_init(struct profiles_list *l) {
  memset(l, 0, sizeof *l);
}

void profiles_list_free(struct profiles_list *l) {
  for (size_t i = 0; i < l->count; i++) {
    free(l->items[i].name);
    free(l->items[i].value);
  }
  free(l->items);
  memset(l, 0, sizeof *l);
}

int profiles_list_add(struct profiles_list *l, const char *name,
                      const char *value, size_t value_len,
                      enum profiles_type type) {
  if (!name || (!value && value_len))
    return -EINVAL;
  if (value_len && memchr(value, 0, value_len))
    return -EINVAL;
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct profiles_prop *p = realloc(l->items, cap * sizeof *p);
    if (!p)
      return -ENOMEM;
    l->items = p;
    l->cap = cap;
  }
  struct profiles_prop *p = &l->items[l->count];
  p->name = strdup(name);
  p->value = malloc(value_len + 1);
  if (!p->name || !p->value) {
    free(p->name);
    free(p->value);
    return -ENOMEM;
  }
  if (value_len)
    memcpy(p->value, value, value_len);
  p->value[value_len] = 0;
  p->value_len = value_len;
  p->type = type;
  l->count++;
  return 0;
}

/* The order is lexicographic over symbols, and each symbol has one place in
 * a single total order, which is what makes the comparison transitive (a
 * sort needs that; comparing "[digits]" numerically only when both sides
 * happen to have one is not transitive: the fuzzer found "x[00][0]" <
 * "x[01l]" < "x[0]" < "x[00][0]"). A symbol is either one byte or an index
 * "[digits]" as a whole. Indexes sit just below the byte '[' (so "a.b" <
 * "a[0]" < "a[x]"), ordered by number, then by their raw text ("[1]" <
 * "[01]", distinct but adjacent). The end of a name is below everything. */
struct name_sym {
  int rank;           /* -1 end, 2*byte for a byte, 2*'[' - 1 for an index */
  const char *digits; /* index: digits without leading zeros (one kept) */
  size_t ndigits;
  const char *raw; /* index: all its digits */
  size_t nraw;
};

/* Reads the symbol at s; returns how many bytes it spans. */
static size_t name_sym_next(const char *s, struct name_sym *y) {
  if (*s == '\0') {
    y->rank = -1;
    return 0;
  }
  if (*s == '[' && isdigit((unsigned char)s[1])) {
    size_t n = strspn(s + 1, "0123456789");
    if (s[1 + n] == ']') {
      y->rank = 2 * '[' - 1;
      y->raw = s + 1;
      y->nraw = n;
      y->digits = s + 1;
      y->ndigits = n;
      while (y->ndigits > 1 && *y->digits == '0')
        y->digits++, y->ndigits--;
      return n + 2;
    }
  }
  y->rank = 2 * (unsigned char)*s;
  return 1;
}

int profiles_name_cmp(const char *a, const char *b) {
  for (;;) {
    struct name_sym x, y;
    size_t la = name_sym_next(a, &x);
    size_t lb = name_sym_next(b, &y);
    if (x.rank != y.rank)
      return x.rank < y.rank ? -1 : 1;
    if (x.rank == -1)
      return 0;
    if (x.rank == 2 * '[' - 1) {
      if (x.ndigits != y.ndigits)
        return x.ndigits < y.ndigits ? -1 : 1;
      int c = memcmp(x.digits, y.digits, x.ndigits);
      if (c)
        return c < 0 ? -1 : 1;
      if (x.nraw != y.nraw)
        return x.nraw < y.nraw ? -1 : 1;
      c = memcmp(x.raw, y.raw, x.nraw);
      if (c)
        return c < 0 ? -1 : 1;
    }
    a += la;
    b += lb;
  }
}

struct sort_ent {
  struct profiles_prop p;
  size_t idx;
};

static int sort_ent_cmp(const void *x, const void *y) {
  const struct sort_ent *a = x, *b = y;
  int c = profiles_name_cmp(a->p.name, b->p.name);
  if (c)
    return c;
  return a->idx < b->idx ? -1 : a->idx > b->idx;
}

void profiles_list_sort(struct profiles_list *l) {
  if (l->count < 2)
    return;
  struct sort_ent *e = malloc(l->count * sizeof *e);
  if (!e) {
    /* Fall back to an in-place insertion sort: slow but never fails. */
    for (size_t i = 1; i < l->count; i++) {
      struct profiles_prop t = l->items[i];
      size_t j = i;
      while (j > 0 && profiles_name_cmp(l->items[j - 1].name, t.name) > 0) {
        l->items[j] = l->items[j - 1];
        j--;
      }
      l->items[j] = t;
    }
  } else {
    for (size_t i = 0; i < l->count; i++) {
      e[i].p = l->items[i];
      e[i].idx = i;
    }
    qsort(e, l->count, sizeof *e, sort_ent_cmp);
    for (size_t i = 0; i < l->count; i++)
      l->items[i] = e[i].p;
    free(e);
  }
  /* Dedupe: within a run of equal names the last one (highest idx, or the
   * last inserted in the fallback, which is stable) wins. */
  size_t w = 0;
  for (size_t i = 0; i < l->count; i++) {
    if (i + 1 < l->count &&
        strcmp(l->items[i].name, l->items[i + 1].name) == 0) {
      free(l->items[i].name);
      free(l->items[i].value);
      continue;
    }
    l->items[w++] = l->items[i];
  }
  l->count = w;
}

const struct profiles_prop *profiles_list_find(const struct profiles_list *l,
                                               const char *name) {
  size_t lo = 0, hi = l->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = profiles_name_cmp(l->items[mid].name, name);
    if (c == 0)
      return &l->items[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int profiles_list_copy(struct profiles_list *dst,
                       const struct profiles_list *src) {
  profiles_list_init(dst);
  for (size_t i = 0; i < src->count; i++) {
    const struct profiles_prop *p = &src->items[i];
    if (profiles_list_add(dst, p->name, p->value, p->value_len, p->type)) {
      profiles_list_free(dst);
      return -ENOMEM;
    }
  }
  return 0;
}

int profiles_list_equal(const struct profiles_list *a,
                        const struct profiles_list *b) {
  if (a->count != b->count)
    return 0;
  for (size_t i = 0; i < a->count; i++) {
    const struct profiles_prop *x = &a->items[i], *y = &b->items[i];
    if (strcmp(x->name, y->name) || x->type != y->type ||
        x->value_len != y->value_len ||
        memcmp(x->value, y->value, x->value_len))
      return 0;
  }
  return 1;
}

/* ---- scalars ---------------------------------------------------------- */

static int is_one_of(const char *s, size_t n, const char *const *words) {
  for (; *words; words++)
    if (strlen(*words) == n && memcmp(s, *words, n) == 0)
      return 1;
  return 0;
}

static const char *const null_words[] = {"~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", "yes", "Yes",
                                         "YES",  "on",   "On",   "ON",  NULL};
static const char *const false_words[] = {
    "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};

/* Integer forms of YAML 1.1 (no sexagesimal). Returns 1 and the value when
 * s is one and fits int64. */
static int parse_int(const char *s, size_t n, int64_t *out) {
  size_t i = 0;
  int neg = 0;
  if (i < n && (s[i] == '-' || s[i] == '+'))
    neg = s[i++] == '-';
  if (i >= n)
    return 0;
  unsigned base = 10;
  if (s[i] == '0' && i + 1 < n) {
    if (s[i + 1] == 'x') {
      base = 16;
      i += 2;
    } else if (s[i + 1] == 'b') {
      base = 2;
      i += 2;
    } else {
      base = 8;
      i += 1;
    }
    if (i >= n)
      return 0;
  } else if (s[i] == '_') {
    return 0;
  }
  uint64_t v = 0;
  int digits = 0;
  const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; i < n; i++) {
    char c = s[i];
    if (c == '_')
      continue;
    unsigned d;
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F')
      d = (unsigned)(c - 'A' + 10);
    else
      return 0;
    if (d >= base)
      return 0;
    if (v > (lim - d) / base)
      return 0; /* out of int64 range: stays a string */
    v = v * base + d;
    digits++;
  }
  if (!digits)
    return 0;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 1;
}

static int is_float_syntax(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && (s[i] == '-' || s[i] == '+'))
    i++;
  int mant = 0, dot = 0, exp = 0;
  if (i < n && s[i] == '.') {
    dot = 1;
    i++;
    size_t st = i;
    while (i < n && isdigit((unsigned char)s[i]))
      i++;
    if (i == st)
      return 0;
    mant = 1;
  } else {
    if (i >= n || !isdigit((unsigned char)s[i]))
      return 0;
    while (i < n && (isdigit((unsigned char)s[i]) || s[i] == '_'))
      i++;
    mant = 1;
    if (i < n && s[i] == '.') {
      dot = 1;
      i++;
      while (i < n && (isdigit((unsigned char)s[i]) || s[i] == '_'))
        i++;
    }
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+'))
      i++;
    size_t st = i;
    while (i < n && isdigit((unsigned char)s[i]))
      i++;
    if (i == st)
      return 0;
    exp = 1;
  }
  return mant && (dot || exp) && i == n;
}

/* The shortest text that reads back as d, written without an exponent when
 * the exponent is modest (1000.0 rather than 1e+03), always with a '.' or an
 * exponent so that it reads back as a float. */
static char *float_canonical(double d) {
  char buf[400];
  if (isnan(d))
    return strdup(".nan");
  if (isinf(d))
    return strdup(d > 0 ? ".inf" : "-.inf");
  int prec = 1;
  for (; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  if (d != 0) {
    int e = (int)floor(log10(fabs(d)));
    if (e >= -5 && e < 17) {
      char alt[400];
      int dec = prec - 1 - e;
      snprintf(alt, sizeof alt, "%.*f", dec < 0 ? 0 : dec, d);
      if (strtod(alt, NULL) == d)
        memcpy(buf, alt, strlen(alt) + 1);
    }
  }
  if (!strpbrk(buf, ".e"))
    strcat(buf, ".0");
  return strdup(buf);
}

int profiles_scalar_resolve(const char *text, size_t len,
                            enum profiles_type *type, char **canonical) {
  char *c = NULL;
  int64_t iv;
  if (len == 0 || is_one_of(text, len, null_words)) {
    *type = PROFILES_NULL;
    c = strdup("");
  } else if (is_one_of(text, len, true_words)) {
    *type = PROFILES_BOOLEAN;
    c = strdup("true");
  } else if (is_one_of(text, len, false_words)) {
    *type = PROFILES_BOOLEAN;
    c = strdup("false");
  } else if (parse_int(text, len, &iv)) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, iv);
    *type = PROFILES_INTEGER;
    c = strdup(buf);
  } else {
    static const char *const inf_words[] = {".inf",  ".Inf",  ".INF", "+.inf",
                                            "+.Inf", "+.INF", NULL};
    static const char *const ninf_words[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nan_words[] = {".nan", ".NaN", ".NAN", NULL};
    if (is_one_of(text, len, inf_words)) {
      *type = PROFILES_FLOAT;
      c = strdup(".inf");
    } else if (is_one_of(text, len, ninf_words)) {
      *type = PROFILES_FLOAT;
      c = strdup("-.inf");
    } else if (is_one_of(text, len, nan_words)) {
      *type = PROFILES_FLOAT;
      c = strdup(".nan");
    } else if (len < 128 && is_float_syntax(text, len)) {
      char buf[128];
      size_t k = 0;
      for (size_t i = 0; i < len; i++)
        if (text[i] != '_')
          buf[k++] = text[i];
      buf[k] = 0;
      *type = PROFILES_FLOAT;
      c = float_canonical(strtod(buf, NULL));
    } else {
      *type = PROFILES_STRING;
      c = malloc(len + 1);
      if (c) {
        memcpy(c, text, len);
        c[len] = 0;
      }
    }
  }
  if (!c)
    return -ENOMEM;
  *canonical = c;
  return 0;
}

void profiles_limits_default(struct profiles_limits *lim) {
  lim->max_doc_bytes = 4u << 20;
  lim->max_depth = 64;
  lim->max_props = 10000;
  lim->max_name_len = 1024;
  lim->max_value_len = 64u << 10;
  lim->max_ref_depth = 32;
  lim->max_expansions = 10000;
}

/* ---- merge ------------------------------------------------------------ */

/* A string -> int map with open addressing; keys are borrowed. */
struct smap {
  const char **keys;
  size_t *klen;
  int *vals;
  size_t cap;
};

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static int smap_init(struct smap *m, size_t n) {
  size_t cap = 16;
  while (cap < n * 2)
    cap *= 2;
  m->keys = calloc(cap, sizeof *m->keys);
  m->klen = calloc(cap, sizeof *m->klen);
  m->vals = calloc(cap, sizeof *m->vals);
  m->cap = cap;
  if (!m->keys || !m->klen || !m->vals) {
    free(m->keys);
    free(m->klen);
    free(m->vals);
    return -ENOMEM;
  }
  return 0;
}

static void smap_free(struct smap *m) {
  free(m->keys);
  free(m->klen);
  free(m->vals);
}

/* Returns the slot for key: either holding it or empty. The map is sized so
 * that it never fills. */
static size_t smap_slot(const struct smap *m, const char *k, size_t n) {
  size_t i = hash_bytes(k, n) & (m->cap - 1);
  while (m->keys[i] && (m->klen[i] != n || memcmp(m->keys[i], k, n) != 0))
    i = (i + 1) & (m->cap - 1);
  return i;
}

/* The part of a name that a source owns as a whole: before the first '['
 * (a list root), or the whole name. */
static size_t owned_root_len(const char *name) {
  const char *b = strchr(name, '[');
  return b ? (size_t)(b - name) : strlen(name);
}

int profiles_merge(const struct profiles_list *const *srcs, size_t n,
                   const struct profiles_limits *lim,
                   struct profiles_list *out) {
  size_t total = 0;
  for (size_t s = 0; s < n; s++)
    total += srcs[s]->count;
  struct smap owner;
  if (smap_init(&owner, total + 1))
    return -ENOMEM;
  int rc = 0;
  for (size_t s = 0; s < n && !rc; s++) {
    const struct profiles_list *l = srcs[s];
    for (size_t i = 0; i < l->count; i++) {
      const struct profiles_prop *p = &l->items[i];
      size_t rl = owned_root_len(p->name);
      size_t slot = smap_slot(&owner, p->name, rl);
      if (owner.keys[slot]) {
        if (owner.vals[slot] != (int)s)
          continue; /* a more specific source owns this root */
      } else {
        owner.keys[slot] = p->name;
        owner.klen[slot] = rl;
        owner.vals[slot] = (int)s;
      }
      if (lim && out->count >= lim->max_props) {
        rc = KEEL_ELIMIT;
        break;
      }
      if (profiles_list_add(out, p->name, p->value, p->value_len, p->type)) {
        rc = -ENOMEM;
        break;
      }
    }
  }
  smap_free(&owner);
  if (rc) {
    profiles_list_free(out);
    return rc;
  }
  profiles_list_sort(out);
  return 0;
}

int pname_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= ' ' || c == 0x7f || c == '/' || c == ',')
      return 0;
  }
  return 1;
}

void profiles_source_ids_free(struct profiles_source_id *s, size_t n) {
  if (!s)
    return;
  for (size_t i = 0; i < n; i++) {
    free(s[i].app);
    free(s[i].profile);
    free(s[i].name);
  }
  free(s);
}

static int add_source(struct profiles_source_id *s, size_t *n, const char *app,
                      const char *profile) {
  for (size_t i = 0; i < *n; i++)
    if (!strcmp(s[i].app, app) && !strcmp(s[i].profile, profile))
      return 0;
  struct profiles_source_id *d = &s[*n];
  d->app = strdup(app);
  d->profile = strdup(profile);
  size_t nl = strlen(app) + strlen(profile) + 8;
  d->name = malloc(nl);
  if (!d->app || !d->profile || !d->name) {
    free(d->app);
    free(d->profile);
    free(d->name);
    return -ENOMEM;
  }
  if (!strcmp(profile, PROFILES_DEFAULT_PROFILE))
    snprintf(d->name, nl, "keel:%s", app);
  else
    snprintf(d->name, nl, "keel:%s-%s", app, profile);
  (*n)++;
  return 0;
}

#define MAX_PROFILES 64

int profiles_merge_order(const char *app, const char *profiles,
                         struct profiles_source_id **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!app || !pname_valid(app))
    return -EINVAL;
  char *names[MAX_PROFILES];
  size_t np = 0;
  int rc = 0;
  const char *p = profiles ? profiles : "";
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    const char *a = p, *z = p + len;
    while (a < z && (*a == ' ' || *a == '\t'))
      a++;
    while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
      z--;
    if (z > a) {
      if (np == MAX_PROFILES) {
        rc = KEEL_ELIMIT;
        goto done;
      }
      names[np] = strndup(a, (size_t)(z - a));
      if (!names[np]) {
        rc = -ENOMEM;
        goto done;
      }
      np++;
      if (!pname_valid(names[np - 1])) {
        rc = -EINVAL;
        goto done;
      }
    }
    p += len;
    if (*p == ',')
      p++;
  }
  struct profiles_source_id *s = calloc(2 * np + 2, sizeof *s);
  if (!s) {
    rc = -ENOMEM;
    goto done;
  }
  size_t k = 0;
  for (size_t i = np; i-- > 0 && !rc;) {
    rc = add_source(s, &k, app, names[i]);
    if (!rc)
      rc = add_source(s, &k, PROFILES_SHARED_APP, names[i]);
  }
  if (!rc)
    rc = add_source(s, &k, app, PROFILES_DEFAULT_PROFILE);
  if (!rc)
    rc = add_source(s, &k, PROFILES_SHARED_APP, PROFILES_DEFAULT_PROFILE);
  if (rc) {
    profiles_source_ids_free(s, k);
  } else {
    *out = s;
    *n = k;
  }
done:
  for (size_t i = 0; i < np; i++)
    free(names[i]);
  return rc;
}

/* ---- docs ------------------------------------------------------------- */

void profiles_docs_init(struct profiles_docs *d) {
  memset(d, 0, sizeof *d);
}

void profiles_docs_free(struct profiles_docs *d) {
  for (size_t i = 0; i < d->count; i++) {
    free(d->docs[i].profile);
    profiles_list_free(&d->docs[i].props);
  }
  free(d->docs);
  memset(d, 0, sizeof *d);
}

const struct profiles_doc *profiles_docs_find(const struct profiles_docs *d,
                                              const char *profile) {
  for (size_t i = 0; i < d->count; i++)
    if (!strcmp(d->docs[i].profile, profile))
      return &d->docs[i];
  return NULL;
}

int pdocs_add(struct profiles_docs *d, const char *profile,
              struct profiles_list *props, const struct profiles_limits *lim) {
  profiles_list_sort(props);
  for (size_t i = 0; i < d->count; i++) {
    if (strcmp(d->docs[i].profile, profile))
      continue;
    const struct profiles_list *srcs[2] = {props, &d->docs[i].props};
    struct profiles_list merged;
    profiles_list_init(&merged);
    int rc = profiles_merge(srcs, 2, lim, &merged);
    profiles_list_free(props);
    if (rc)
      return rc;
    profiles_list_free(&d->docs[i].props);
    d->docs[i].props = merged;
    return 0;
  }
  if (lim && props->count > lim->max_props) {
    profiles_list_free(props);
    return KEEL_ELIMIT;
  }
  if (d->count >= PDOCS_MAX) {
    profiles_list_free(props);
    return -E2BIG;
  }
  struct profiles_doc *nd = realloc(d->docs, (d->count + 1) * sizeof *nd);
  char *name = strdup(profile);
  if (!nd || !name) {
    if (nd)
      d->docs = nd;
    free(name);
    profiles_list_free(props);
    return -ENOMEM;
  }
  d->docs = nd;
  nd[d->count].profile = name;
  nd[d->count].props = *props;
  profiles_list_init(props);
  d->count++;
  return 0;
}

/* Deep-copies dst first so that a failure half-way leaves dst as it was. */
int pdocs_absorb(struct profiles_docs *dst, struct profiles_docs *src,
                 const struct profiles_limits *lim) {
  struct profiles_docs tmp;
  profiles_docs_init(&tmp);
  int rc = 0;
  for (size_t i = 0; i < dst->count && !rc; i++) {
    struct profiles_list c;
    rc = profiles_list_copy(&c, &dst->docs[i].props);
    if (!rc)
      rc = pdocs_add(&tmp, dst->docs[i].profile, &c, lim);
  }
  for (size_t i = 0; i < src->count && !rc; i++)
    rc = pdocs_add(&tmp, src->docs[i].profile, &src->docs[i].props, lim);
  profiles_docs_free(src);
  if (rc) {
    profiles_docs_free(&tmp);
    return rc;
  }
  profiles_docs_free(dst);
  *dst = tmp;
  return 0;
}

static int is_marker(const char *name, const char *marker) {
  size_t n = strlen(marker);
  return strncmp(name, marker, n) == 0 && (name[n] == 0 || name[n] == '[');
}

int ptake_on_profile(struct profiles_list *l, char ***names, size_t *n,
                     char *why, size_t why_len) {
  static const char *const markers[] = {"spring.config.activate.on-profile",
                                        "spring.profiles"};
  *names = NULL;
  *n = 0;
  char **v = NULL;
  size_t nv = 0;
  int rc = 0;
  size_t w = 0;
  for (size_t i = 0; i < l->count; i++) {
    struct profiles_prop *p = &l->items[i];
    int m = is_marker(p->name, markers[0]) || is_marker(p->name, markers[1]);
    if (!m) {
      l->items[w++] = *p;
      continue;
    }
    /* Split "a, b" into names; refuse profile expressions. */
    const char *s = p->value;
    while (!rc && *s) {
      const char *e = strchr(s, ',');
      size_t len = e ? (size_t)(e - s) : strlen(s);
      const char *a = s, *z = s + len;
      while (a < z && isspace((unsigned char)*a))
        a++;
      while (z > a && isspace((unsigned char)z[-1]))
        z--;
      if (z > a) {
        if (strpbrk(p->value, "!&|()")) {
          snprintf(why, why_len,
                   "%s: profile expression '%s' is not supported; name "
                   "plain profiles",
                   p->name, p->value);
          rc = -EINVAL;
          break;
        }
        char **nv2 = realloc(v, (nv + 1) * sizeof *v);
        if (!nv2) {
          rc = -ENOMEM;
          break;
        }
        v = nv2;
        v[nv] = strndup(a, (size_t)(z - a));
        if (!v[nv]) {
          rc = -ENOMEM;
          break;
        }
        nv++;
        if (!pname_valid(v[nv - 1])) {
          snprintf(why, why_len, "%s: '%s' is not a valid profile name",
                   p->name, v[nv - 1]);
          rc = -EINVAL;
          break;
        }
      }
      s += len;
      if (*s == ',')
        s++;
    }
    free(p->name);
    free(p->value);
  }
  l->count = w;
  if (rc) {
    for (size_t i = 0; i < nv; i++)
      free(v[i]);
    free(v);
    return rc;
  }
  *names = v;
  *n = nv;
  return 0;
}

/* ---- keys and values -------------------------------------------------- */

static int prop_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 1024)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < ' ' || c == 0x7f)
      return 0;
  }
  return 1;
}

int profiles_key_encode(const char *app, const char *profile, const char *prop,
                        char **out) {
  *out = NULL;
  if (!app || !profile || !pname_valid(app) || !pname_valid(profile) ||
      (prop && !prop_valid(prop)))
    return -EINVAL;
  struct pbuf b = {0};
  pbuf_puts(&b, PROFILES_KEY_ROOT);
  pbuf_puts(&b, app);
  pbuf_putc(&b, '/');
  pbuf_puts(&b, profile);
  pbuf_putc(&b, '/');
  if (prop)
    pbuf_puts(&b, prop);
  return pbuf_finish(&b, out, NULL);
}

int profiles_key_decode(const char *key, size_t len, char **app, char **profile,
                        char **prop) {
  *app = *profile = *prop = NULL;
  size_t rl = strlen(PROFILES_KEY_ROOT);
  if (len < rl || memcmp(key, PROFILES_KEY_ROOT, rl) || memchr(key, 0, len))
    return -EINVAL;
  const char *p = key + rl, *end = key + len;
  const char *s1 = memchr(p, '/', (size_t)(end - p));
  if (!s1)
    return -EINVAL;
  const char *s2 = memchr(s1 + 1, '/', (size_t)(end - s1 - 1));
  if (!s2)
    return -EINVAL;
  *app = strndup(p, (size_t)(s1 - p));
  *profile = strndup(s1 + 1, (size_t)(s2 - s1 - 1));
  *prop = strndup(s2 + 1, (size_t)(end - s2 - 1));
  int rc = 0;
  if (!*app || !*profile || !*prop)
    rc = -ENOMEM;
  else if (!pname_valid(*app) || !pname_valid(*profile) || !prop_valid(*prop))
    rc = -EINVAL;
  if (rc) {
    free(*app);
    free(*profile);
    free(*prop);
    *app = *profile = *prop = NULL;
  }
  return rc;
}

static const char type_tags[] = {[PROFILES_STRING] = 's',
                                 [PROFILES_INTEGER] = 'i',
                                 [PROFILES_FLOAT] = 'f',
                                 [PROFILES_BOOLEAN] = 'b',
                                 [PROFILES_NULL] = 'n'};

int profiles_value_encode(const struct profiles_prop *p, char **out,
                          size_t *out_len) {
  struct pbuf b = {0};
  pbuf_putc(&b, type_tags[p->type]);
  pbuf_putc(&b, ':');
  pbuf_put(&b, p->value, p->value_len);
  return pbuf_finish(&b, out, out_len);
}

int profiles_value_decode(const char *buf, size_t len, enum profiles_type *type,
                          char **text, size_t *text_len) {
  *text = NULL;
  if (len < 2 || buf[1] != ':' || memchr(buf, 0, len))
    return KEEL_EPARSE;
  int t = -1;
  for (int i = 0; i < (int)sizeof type_tags; i++)
    if (type_tags[i] == buf[0])
      t = i;
  if (t < 0)
    return KEEL_EPARSE;
  const char *v = buf + 2;
  size_t n = len - 2;
  if (t != PROFILES_STRING) {
    enum profiles_type rt;
    char *canon;
    if (profiles_scalar_resolve(v, n, &rt, &canon))
      return -ENOMEM;
    int ok = (int)rt == t && strlen(canon) == n && memcmp(canon, v, n) == 0;
    free(canon);
    if (!ok)
      return KEEL_EPARSE;
  }
  char *c = malloc(n + 1);
  if (!c)
    return -ENOMEM;
  memcpy(c, v, n);
  c[n] = 0;
  *type = (enum profiles_type)t;
  *text = c;
  if (text_len)
    *text_len = n;
  return 0;
}

/* ---- diff ------------------------------------------------------------- */

int profiles_diff(const struct profiles_list *from,
                  const struct profiles_list *to, struct profiles_change **out,
                  size_t *n) {
  *out = NULL;
  *n = 0;
  size_t cap = from->count + to->count;
  if (cap == 0)
    return 0;
  struct profiles_change *c = malloc(cap * sizeof *c);
  if (!c)
    return -ENOMEM;
  size_t i = 0, j = 0, k = 0;
  while (i < from->count || j < to->count) {
    int cmp;
    if (i == from->count)
      cmp = 1;
    else if (j == to->count)
      cmp = -1;
    else
      cmp = profiles_name_cmp(from->items[i].name, to->items[j].name);
    if (cmp < 0) {
      c[k++] =
          (struct profiles_change){PROFILES_REMOVED, &from->items[i++], NULL};
    } else if (cmp > 0) {
      c[k++] = (struct profiles_change){PROFILES_ADDED, NULL, &to->items[j++]};
    } else {
      const struct profiles_prop *a = &from->items[i++], *b = &to->items[j++];
      if (a->type != b->type || a->value_len != b->value_len ||
          memcmp(a->value, b->value, a->value_len))
        c[k++] = (struct profiles_change){PROFILES_CHANGED, a, b};
    }
  }
  if (k == 0) {
    free(c);
    return 0;
  }
  *out = c;
  *n = k;
  return 0;
}

int profiles_list_add_stored(struct profiles_list *l, const char *app,
                             const char *profile, const char *key,
                             size_t key_len, const char *val, size_t val_len,
                             struct profiles_error *err) {
  char *a, *p, *prop;
  int rc = profiles_key_decode(key, key_len, &a, &p, &prop);
  if (rc == -ENOMEM)
    return rc;
  if (rc) {
    perr_set(err, NULL, 0, 0, "'%.*s' is not a profile key",
             (int)(key_len > 300 ? 300 : key_len), key);
    return rc;
  }
  if ((app && strcmp(app, a)) || (profile && strcmp(profile, p))) {
    perr_set(err, NULL, 0, 0, "key '%.*s' is not in /config/%s/%s/",
             (int)(key_len > 300 ? 300 : key_len), key, app ? app : a,
             profile ? profile : p);
    rc = -EINVAL;
    goto out;
  }
  enum profiles_type t;
  char *text;
  size_t tl;
  rc = profiles_value_decode(val, val_len, &t, &text, &tl);
  if (rc == KEEL_EPARSE)
    perr_set(err, NULL, 0, 0,
             "key '%.*s': stored value is not a typed profile value (want "
             "s:, i:, f:, b: or n: and canonical text)",
             (int)(key_len > 300 ? 300 : key_len), key);
  if (rc)
    goto out;
  rc = profiles_list_add(l, prop, text, tl, t);
  free(text);
out:
  free(a);
  free(p);
  free(prop);
  return rc;
}

int profiles_change_encode(const char *app, const char *profile,
                           const struct profiles_change *c, char **key,
                           char **val, size_t *val_len) {
  *key = NULL;
  *val = NULL;
  *val_len = 0;
  const struct profiles_prop *p = c->to ? c->to : c->from;
  int rc = profiles_key_encode(app, profile, p->name, key);
  if (rc)
    return rc;
  if (c->op == PROFILES_REMOVED)
    return 0;
  rc = profiles_value_encode(c->to, val, val_len);
  if (rc) {
    free(*key);
    *key = NULL;
  }
  return rc;
}

int pparse_begin(size_t len, const char *filename, const char *base_profile,
                 const struct profiles_limits **lim, struct profiles_limits *dl,
                 const char **file, struct profiles_error *err) {
  if (!*lim) {
    profiles_limits_default(dl);
    *lim = dl;
  }
  *file = filename ? filename : "<input>";
  if (!base_profile || !pname_valid(base_profile)) {
    perr_set(err, NULL, 0, 0, "invalid profile name '%s'",
             base_profile ? base_profile : "(null)");
    return -EINVAL;
  }
  if (len > (*lim)->max_doc_bytes) {
    perr_set(err, *file, 1, 1, "document is %zu bytes (limit %zu)", len,
             (*lim)->max_doc_bytes);
    return KEEL_ELIMIT;
  }
  return 0;
}

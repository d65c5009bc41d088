/* edn.c — the bounded EDN reader of edn.h.
 *
 * Recursive descent, at most JEPSEN_EDN_MAX_DEPTH deep. Items of a collection
 * are parsed onto the scratch stack; when the collection closes they move, as
 * one contiguous block, into the node array, and the collection itself is
 * pushed onto the scratch stack for its parent. Every value consumes at least
 * one input byte, which is why arrays of len + 1 nodes never overflow (the
 * asserts below hold that invariant).
 */
#include "edn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

struct parser {
  struct jepsen_edn_arena *a;
  const char *p, *start, *end;
  struct jepsen_edn_error *err;
};

int jepsen_edn_arena_init(struct jepsen_edn_arena *a, size_t max_len) {
  memset(a, 0, sizeof(*a));
  a->cap_nodes = max_len + 2;
  a->cap_text = 2 * max_len + 2;
  a->nodes = malloc(a->cap_nodes * sizeof(*a->nodes));
  a->scratch = malloc(a->cap_nodes * sizeof(*a->scratch));
  a->text = malloc(a->cap_text);
  if (!a->nodes || !a->scratch || !a->text) {
    jepsen_edn_arena_free(a);
    return -ENOMEM;
  }
  return 0;
}

void jepsen_edn_arena_free(struct jepsen_edn_arena *a) {
  free(a->nodes);
  free(a->scratch);
  free(a->text);
  memset(a, 0, sizeof(*a));
}

__attribute__((format(printf, 3, 4))) static int
fail(struct parser *ps, int code, const char *fmt, ...) {
  va_list ap;
  ps->err->column = (size_t)(ps->p - ps->start) + 1;
  va_start(ap, fmt);
  vsnprintf(ps->err->msg, sizeof(ps->err->msg), fmt, ap);
  va_end(ap);
  return code;
}

static bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',';
}

static bool is_delim(char c) {
  return is_ws(c) || c == '[' || c == ']' || c == '(' || c == ')' || c == '{' ||
         c == '}' || c == '"' || c == ';';
}

/* Characters EDN allows in symbols and keywords (after the first). */
static bool is_sym_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || strchr("*+!-_?<>=/.'#:&%$|", c) != NULL;
}

static void skip_ws(struct parser *ps) {
  while (ps->p < ps->end) {
    if (is_ws(*ps->p)) {
      ps->p++;
    } else if (*ps->p == ';') {
      while (ps->p < ps->end && *ps->p != '\n')
        ps->p++;
    } else {
      break;
    }
  }
}

static void push(struct parser *ps, struct jepsen_edn v) {
  if (ps->a->used_scratch >= ps->a->cap_nodes) {
    /* Unreachable: every value consumed an input byte. */
    abort();
  }
  ps->a->scratch[ps->a->used_scratch++] = v;
}

static char *text_alloc(struct parser *ps, size_t n) {
  if (ps->a->used_text + n > ps->a->cap_text)
    abort(); /* unreachable: see cap_text in arena_init */
  char *t = ps->a->text + ps->a->used_text;
  ps->a->used_text += n;
  return t;
}

static int parse_value(struct parser *ps, int depth);

static int parse_number(struct parser *ps) {
  const char *q = ps->p;
  bool neg = false;
  if (*q == '-' || *q == '+') {
    neg = *q == '-';
    q++;
  }
  uint64_t mag = 0;
  const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  const char *digits = q;
  while (q < ps->end && *q >= '0' && *q <= '9') {
    uint64_t d = (uint64_t)(*q - '0');
    if (mag > (limit - d) / 10) {
      return fail(ps, KEEL_ELIMIT, "integer out of the 64-bit range");
    }
    mag = mag * 10 + d;
    q++;
  }
  if (q == digits)
    return fail(ps, KEEL_EPARSE, "expected digits after sign");
  if (q < ps->end && *q == 'N')
    q++;
  if (q < ps->end && (*q == '.' || *q == 'e' || *q == 'E' || *q == 'M')) {
    return fail(ps, KEEL_EPARSE, "floating-point numbers are not supported");
  }
  if (q < ps->end && *q == '/')
    return fail(ps, KEEL_EPARSE, "ratios are not supported");
  if (q < ps->end && !is_delim(*q)) {
    ps->p = q;
    return fail(ps, KEEL_EPARSE, "unexpected character '%c' in number", *q);
  }
  struct jepsen_edn v = {.type = JEPSEN_EDN_INT};
  v.u.i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
  if (neg && mag == (uint64_t)INT64_MAX + 1)
    v.u.i = INT64_MIN;
  ps->p = q;
  push(ps, v);
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int parse_string(struct parser *ps) {
  const char *open = ps->p;
  ps->p++; /* opening quote */
  /* Decoded text is never longer than the raw text. */
  const char *q = ps->p;
  while (q < ps->end && *q != '"') {
    if (*q == '\\')
      q++;
    q++;
  }
  if (q >= ps->end) {
    ps->p = open;
    return fail(ps, KEEL_EPARSE, "unterminated string");
  }
  char *out = text_alloc(ps, (size_t)(q - ps->p) + 1);
  size_t n = 0;
  while (*ps->p != '"') {
    char c = *ps->p++;
    if (c != '\\') {
      out[n++] = c;
      continue;
    }
    char e = *ps->p++;
    switch (e) {
    case '"':
    case '\\':
    case '/':
      out[n++] = e;
      break;
    case 'n':
      out[n++] = '\n';
      break;
    case 't':
      out[n++] = '\t';
      break;
    case 'r':
      out[n++] = '\r';
      break;
    case 'b':
      out[n++] = '\b';
      break;
    case 'f':
      out[n++] = '\f';
      break;
    case 'u': {
      unsigned cp = 0;
      for (int i = 0; i < 4; i++) {
        int h = ps->p < ps->end ? hexval(*ps->p) : -1;
        if (h < 0)
          return fail(ps, KEEL_EPARSE, "bad \\u escape: expected 4 hex digits");
        cp = cp * 16 + (unsigned)h;
        ps->p++;
      }
      /* 6 raw bytes (\uXXXX) always cover the at most 3 bytes written. */
      if (cp < 0x80) {
        out[n++] = (char)cp;
      } else if (cp < 0x800) {
        out[n++] = (char)(0xc0 | (cp >> 6));
        out[n++] = (char)(0x80 | (cp & 0x3f));
      } else {
        out[n++] = (char)(0xe0 | (cp >> 12));
        out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[n++] = (char)(0x80 | (cp & 0x3f));
      }
      break;
    }
    default:
      ps->p -= 2;
      return fail(ps, KEEL_EPARSE, "unknown string escape '\\%c'", e);
    }
  }
  ps->p++; /* closing quote */
  out[n] = '\0';
  struct jepsen_edn v = {.type = JEPSEN_EDN_STRING, .count = (uint32_t)n};
  v.u.s = out;
  push(ps, v);
  return 0;
}

/* Symbols, keywords, nil, true, false. */
static int parse_word(struct parser *ps) {
  bool keyword = *ps->p == ':';
  const char *q = ps->p + (keyword ? 1 : 0);
  const char *first = q;
  while (q < ps->end && is_sym_char(*q))
    q++;
  if (q == first)
    return fail(ps, KEEL_EPARSE, "empty keyword");
  if (q < ps->end && !is_delim(*q)) {
    ps->p = q;
    return fail(ps, KEEL_EPARSE, "unexpected character '%c'", *q);
  }
  size_t n = (size_t)(q - first);
  struct jepsen_edn v = {.type =
                             keyword ? JEPSEN_EDN_KEYWORD : JEPSEN_EDN_SYMBOL};
  if (!keyword && n == 3 && memcmp(first, "nil", 3) == 0) {
    v.type = JEPSEN_EDN_NIL;
  } else if (!keyword && n == 4 && memcmp(first, "true", 4) == 0) {
    v.type = JEPSEN_EDN_BOOL;
    v.u.b = true;
  } else if (!keyword && n == 5 && memcmp(first, "false", 5) == 0) {
    v.type = JEPSEN_EDN_BOOL;
    v.u.b = false;
  } else {
    char *t = text_alloc(ps, n + 1);
    memcpy(t, first, n);
    t[n] = '\0';
    v.u.s = t;
    v.count = (uint32_t)n;
  }
  ps->p = q;
  push(ps, v);
  return 0;
}

static int parse_coll(struct parser *ps, enum jepsen_edn_type type, char close,
                      int depth) {
  const char *open = ps->p;
  if (depth >= JEPSEN_EDN_MAX_DEPTH) {
    return fail(ps, KEEL_ELIMIT, "nesting deeper than %d",
                JEPSEN_EDN_MAX_DEPTH);
  }
  ps->p += type == JEPSEN_EDN_SET ? 2 : 1;
  size_t base = ps->a->used_scratch;
  for (;;) {
    skip_ws(ps);
    if (ps->p >= ps->end) {
      ps->p = open;
      return fail(ps, KEEL_EPARSE, "'%c' is never closed", *open);
    }
    if (*ps->p == close) {
      ps->p++;
      break;
    }
    if (*ps->p == ')' || *ps->p == ']' || *ps->p == '}') {
      return fail(ps, KEEL_EPARSE, "'%c' does not close '%c'", *ps->p, *open);
    }
    int rc = parse_value(ps, depth + 1);
    if (rc != 0)
      return rc;
  }
  size_t count = ps->a->used_scratch - base;
  if (type == JEPSEN_EDN_MAP && count % 2 != 0) {
    ps->p--;
    return fail(ps, KEEL_EPARSE, "map has a key without a value");
  }
  if (ps->a->used_nodes + count > ps->a->cap_nodes)
    abort(); /* unreachable: each node consumed input */
  struct jepsen_edn *items = ps->a->nodes + ps->a->used_nodes;
  memcpy(items, ps->a->scratch + base, count * sizeof(*items));
  ps->a->used_nodes += count;
  ps->a->used_scratch = base;
  struct jepsen_edn v = {.type = type, .count = (uint32_t)count};
  v.u.items = items;
  push(ps, v);
  return 0;
}

static int parse_value(struct parser *ps, int depth) {
  skip_ws(ps);
  if (ps->p >= ps->end)
    return fail(ps, KEEL_EPARSE, "expected a value, found end of input");
  char c = *ps->p;
  if (c >= '0' && c <= '9')
    return parse_number(ps);
  if ((c == '-' || c == '+') && ps->p + 1 < ps->end && ps->p[1] >= '0' &&
      ps->p[1] <= '9')
    return parse_number(ps);
  switch (c) {
  case '"':
    return parse_string(ps);
  case '[':
    return parse_coll(ps, JEPSEN_EDN_VECTOR, ']', depth);
  case '(':
    return parse_coll(ps, JEPSEN_EDN_LIST, ')', depth);
  case '{':
    return parse_coll(ps, JEPSEN_EDN_MAP, '}', depth);
  case '#':
    if (ps->p + 1 < ps->end && ps->p[1] == '{')
      return parse_coll(ps, JEPSEN_EDN_SET, '}', depth);
    return fail(ps, KEEL_EPARSE,
                "tagged literals and '#' dispatch are not supported");
  case ']':
  case ')':
  case '}':
    return fail(ps, KEEL_EPARSE, "unexpected '%c'", c);
  case '\\':
    return fail(ps, KEEL_EPARSE, "character literals are not supported");
  default:
    if (c == ':' || is_sym_char(c))
      return parse_word(ps);
    if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f) {
      return fail(ps, KEEL_EPARSE, "unexpected byte 0x%02x",
                  (unsigned)(unsigned char)c);
    }
    return fail(ps, KEEL_EPARSE, "unexpected character '%c'", c);
  }
}

int jepsen_edn_parse(struct jepsen_edn_arena *a, const char *text, size_t len,
                     const struct jepsen_edn **out,
                     struct jepsen_edn_error *err) {
  struct parser ps = {a, text, text, text + len, err};
  err->column = 0;
  err->msg[0] = '\0';
  if (len + 2 > a->cap_nodes)
    return fail(&ps, KEEL_ELIMIT, "input longer than the reader's limit");
  a->used_nodes = a->used_scratch = a->used_text = 0;
  int rc = parse_value(&ps, 0);
  if (rc != 0)
    return rc;
  skip_ws(&ps);
  if (ps.p != ps.end)
    return fail(&ps, KEEL_EPARSE, "unexpected text after the value");
  /* The top-level value moves from scratch to the node array. */
  struct jepsen_edn *top = a->nodes + a->used_nodes++;
  *top = a->scratch[0];
  a->used_scratch = 0;
  *out = top;
  return 0;
}

const struct jepsen_edn *jepsen_edn_get(const struct jepsen_edn *map,
                                        const char *name) {
  if (map->type != JEPSEN_EDN_MAP)
    return NULL;
  for (uint32_t i = 0; i + 1 < map->count; i += 2) {
    if (jepsen_edn_is_keyword(&map->u.items[i], name))
      return &map->u.items[i + 1];
  }
  return NULL;
}

bool jepsen_edn_is_keyword(const struct jepsen_edn *v, const char *name) {
  return v->type == JEPSEN_EDN_KEYWORD && strcmp(v->u.s, name) == 0;
}

struct out {
  char *buf;
  size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (o->len + 1 < o->cap)
      o->buf[o->len] = s[i];
    o->len++;
  }
}

static void puts_(struct out *o, const char *s) {
  put(o, s, strlen(s));
}

static void print_value(struct out *o, const struct jepsen_edn *v) {
  char tmp[32];
  switch (v->type) {
  case JEPSEN_EDN_NIL:
    puts_(o, "nil");
    break;
  case JEPSEN_EDN_BOOL:
    puts_(o, v->u.b ? "true" : "false");
    break;
  case JEPSEN_EDN_INT:
    snprintf(tmp, sizeof(tmp), "%lld", (long long)v->u.i);
    puts_(o, tmp);
    break;
  case JEPSEN_EDN_STRING:
    put(o, "\"", 1);
    for (uint32_t i = 0; i < v->count; i++) {
      unsigned char c = (unsigned char)v->u.s[i];
      if (c == '"' || c == '\\') {
        put(o, "\\", 1);
        put(o, (const char *)&c, 1);
      } else if (c == '\n') {
        puts_(o, "\\n");
      } else if (c == '\t') {
        puts_(o, "\\t");
      } else if (c < 0x20) {
        snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        puts_(o, tmp);
      } else {
        put(o, (const char *)&c, 1);
      }
    }
    put(o, "\"", 1);
    break;
  case JEPSEN_EDN_KEYWORD:
    put(o, ":", 1);
    put(o, v->u.s, v->count);
    break;
  case JEPSEN_EDN_SYMBOL:
    put(o, v->u.s, v->count);
    break;
  case JEPSEN_EDN_VECTOR:
  case JEPSEN_EDN_LIST:
  case JEPSEN_EDN_SET:
  case JEPSEN_EDN_MAP: {
    const char *open = v->type == JEPSEN_EDN_VECTOR ? "["
                       : v->type == JEPSEN_EDN_LIST ? "("
                       : v->type == JEPSEN_EDN_SET  ? "#{"
                                                    : "{";
    const char *close = v->type == JEPSEN_EDN_VECTOR ? "]"
                        : v->type == JEPSEN_EDN_LIST ? ")"
                                                     : "}";
    puts_(o, open);
    for (uint32_t i = 0; i < v->count; i++) {
      if (i > 0) {
        if (v->type == JEPSEN_EDN_MAP && i % 2 == 0)
          puts_(o, ", ");
        else
          puts_(o, " ");
      }
      print_value(o, &v->u.items[i]);
    }
    puts_(o, close);
    break;
  }
  }
}

size_t jepsen_edn_print(const struct jepsen_edn *v, char *buf, size_t cap) {
  struct out o = {buf, cap, 0};
  print_value(&o, v);
  if (cap > 0)
    buf[o.len < cap ? o.len : cap - 1] = '\0';
  return o.len;
}

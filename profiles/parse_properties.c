/* parse_properties.c — Java .properties files to string properties.
 *
 * Follows java.util.Properties.load: natural lines end at \n, \r or \r\n; a
 * line ending in an odd number of backslashes continues on the next one
 * (whose leading blanks are dropped); comment lines start with '#' or '!'
 * after optional blanks and never continue; the key ends at the first
 * unescaped '=', ':' or blank; one separator and the blanks around it are
 * skipped. Escapes: \t \n \r \f, \uXXXX (surrogate pairs combined into one
 * UTF-8 character), and \<c> = <c>. Unlike Java (ISO-8859-1) the input is
 * UTF-8, as Spring Boot reads it.
 *
 * The logical line is assembled with each byte's line and column, so an
 * error inside a continued line still points at the right place.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "profiles.h"
#include "profiles_int.h"

struct lline {
  char *b;
  int *line, *col;
  size_t n, cap;
};

static int ll_push(struct lline *l, char c, int line, int col) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 128;
    char *b = realloc(l->b, cap);
    if (b)
      l->b = b;
    int *ln = realloc(l->line, cap * sizeof *ln);
    if (ln)
      l->line = ln;
    int *cl = realloc(l->col, cap * sizeof *cl);
    if (cl)
      l->col = cl;
    if (!b || !ln || !cl)
      return -ENOMEM;
    l->cap = cap;
  }
  l->b[l->n] = c;
  l->line[l->n] = line;
  l->col[l->n] = col;
  l->n++;
  return 0;
}

static int is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\f';
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

static void put_utf8(struct pbuf *o, uint32_t cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  pbuf_put(o, u, n);
}

struct pctx {
  const char *file;
  struct profiles_error *err;
  const struct lline *l;
};

static int pfail(struct pctx *c, size_t at, int rc, const char *why) {
  size_t i = at < c->l->n ? at : c->l->n - 1;
  perr_set(c->err, c->file, c->l->line[i], c->l->col[i], "%s", why);
  return rc;
}

/* Reads \uXXXX at i (pointing at the backslash). */
static int read_u(struct pctx *c, size_t i, size_t end, uint32_t *cu) {
  if (i + 6 > end)
    return pfail(c, i, KEEL_EPARSE, "malformed \\uxxxx escape");
  uint32_t v = 0;
  for (size_t k = 2; k < 6; k++) {
    int h = hexval(c->l->b[i + k]);
    if (h < 0)
      return pfail(c, i, KEEL_EPARSE, "malformed \\uxxxx escape");
    v = (v << 4) | (uint32_t)h;
  }
  *cu = v;
  return 0;
}

/* Unescapes l->b[from, to) into o. */
static int unescape(struct pctx *c, size_t from, size_t to, struct pbuf *o) {
  const char *b = c->l->b;
  for (size_t i = from; i < to;) {
    if (b[i] != '\\') {
      pbuf_putc(o, b[i++]);
      continue;
    }
    if (i + 1 >= to) {
      i++; /* a lone trailing backslash is dropped, as Java does */
      continue;
    }
    char e = b[i + 1];
    if (e == 'u') {
      uint32_t cu;
      int rc = read_u(c, i, to, &cu);
      if (rc)
        return rc;
      size_t at = i;
      i += 6;
      if (cu >= 0xD800 && cu <= 0xDBFF) {
        uint32_t lo;
        if (i + 1 < to && b[i] == '\\' && b[i + 1] == 'u' &&
            read_u(c, i, to, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
          cu = 0x10000 + ((cu - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        } else {
          return pfail(c, at, KEEL_EPARSE, "unpaired UTF-16 surrogate");
        }
      } else if (cu >= 0xDC00 && cu <= 0xDFFF) {
        return pfail(c, at, KEEL_EPARSE, "unpaired UTF-16 surrogate");
      }
      if (cu == 0)
        return pfail(c, at, KEEL_EPARSE, "\\u0000: NUL is not allowed");
      put_utf8(o, cu);
      continue;
    }
    switch (e) {
    case 't':
      pbuf_putc(o, '\t');
      break;
    case 'n':
      pbuf_putc(o, '\n');
      break;
    case 'r':
      pbuf_putc(o, '\r');
      break;
    case 'f':
      pbuf_putc(o, '\f');
      break;
    default:
      pbuf_putc(o, e);
    }
    i += 2;
  }
  return o->oom ? -ENOMEM : 0;
}

struct pstate {
  struct profiles_docs tmp;
  struct profiles_list cur;
  int doc_line;
  const char *base;
  const struct profiles_limits *lim;
  const char *file;
  struct profiles_error *err;
};

static int end_doc(struct pstate *s) {
  char **names = NULL;
  size_t nn = 0;
  char why[300] = "";
  int rc = ptake_on_profile(&s->cur, &names, &nn, why, sizeof why);
  if (rc == -EINVAL)
    perr_set(s->err, s->file, s->doc_line, 1, "%s", why);
  for (size_t i = 0; !rc && i < (nn ? nn : 1); i++) {
    struct profiles_list c;
    if (i + 1 < nn) {
      rc = profiles_list_copy(&c, &s->cur);
      if (rc)
        break;
    } else {
      c = s->cur;
      profiles_list_init(&s->cur);
    }
    rc = pdocs_add(&s->tmp, nn ? names[i] : s->base, &c, s->lim);
    if (rc == KEEL_ELIMIT)
      perr_set(s->err, s->file, s->doc_line, 1,
               "too many properties (limit %zu)", s->lim->max_props);
    if (rc == -E2BIG) {
      perr_set(s->err, s->file, s->doc_line, 1,
               "too many profiles in one import (limit %d)", PDOCS_MAX);
      rc = KEEL_ELIMIT;
    }
  }
  for (size_t i = 0; i < nn; i++)
    free(names[i]);
  free(names);
  profiles_list_free(&s->cur);
  return rc;
}

static int take_line(struct pstate *s, const struct lline *l) {
  struct pctx c = {s->file, s->err, l};
  const char *b = l->b;
  size_t n = l->n, k = 0;
  int sep = 0;
  size_t vstart = n;
  int esc = 0;
  for (; k < n; k++) {
    char ch = b[k];
    if (esc) {
      esc = 0;
      continue;
    }
    if (ch == '\\') {
      esc = 1;
      continue;
    }
    if (ch == '=' || ch == ':') {
      vstart = k + 1;
      sep = 1;
      break;
    }
    if (is_blank(ch)) {
      vstart = k + 1;
      break;
    }
  }
  size_t v = vstart;
  while (v < n) {
    if (!is_blank(b[v])) {
      if (!sep && (b[v] == '=' || b[v] == ':'))
        sep = 1;
      else
        break;
    }
    v++;
  }
  struct pbuf key = {0}, val = {0};
  int rc = unescape(&c, 0, k, &key);
  if (!rc)
    rc = unescape(&c, v, n, &val);
  if (!rc && key.len == 0)
    rc = pfail(&c, 0, KEEL_EPARSE, "empty property name");
  if (!rc && key.len > s->lim->max_name_len) {
    char why[100];
    snprintf(why, sizeof why, "property name too long (limit %zu)",
             s->lim->max_name_len);
    rc = pfail(&c, 0, KEEL_ELIMIT, why);
  }
  if (!rc && val.len > s->lim->max_value_len) {
    char why[100];
    snprintf(why, sizeof why, "value too long (limit %zu)",
             s->lim->max_value_len);
    rc = pfail(&c, v, KEEL_ELIMIT, why);
  }
  if (!rc && s->cur.count >= s->lim->max_props) {
    char why[100];
    snprintf(why, sizeof why, "too many properties (limit %zu)",
             s->lim->max_props);
    rc = pfail(&c, 0, KEEL_ELIMIT, why);
  }
  if (!rc && (key.oom || val.oom))
    rc = -ENOMEM;
  if (!rc && ((key.len && memchr(key.data, 0, key.len)) ||
              (val.len && memchr(val.data, 0, val.len))))
    rc = pfail(&c, 0, KEEL_EPARSE, "NUL character in a name or value");
  for (size_t q = 0; !rc && q < key.len; q++)
    if ((unsigned char)key.data[q] < ' ' || key.data[q] == 0x7f)
      rc = pfail(&c, 0, KEEL_EPARSE,
                 "property name contains a control character");
  if (!rc && !putf8_valid(key.data ? key.data : "", key.len))
    rc = pfail(&c, 0, KEEL_EPARSE, "property name is not valid UTF-8");
  if (!rc && profiles_list_add(&s->cur, key.data, val.data ? val.data : "",
                               val.len, PROFILES_STRING))
    rc = -ENOMEM;
  pbuf_free(&key);
  pbuf_free(&val);
  return rc;
}

int profiles_parse_properties(const char *buf, size_t len, const char *filename,
                              const char *base_profile,
                              const struct profiles_limits *lim,
                              struct profiles_docs *out,
                              struct profiles_error *err) {
  struct profiles_limits dl;
  const char *file;
  int begin = pparse_begin(len, filename, base_profile, &lim, &dl, &file, err);
  if (begin)
    return begin;
  /* Refuse invalid UTF-8, naming the first bad byte's position. */
  size_t good = putf8_prefix(buf, len);
  if (good != len) {
    int line = 1, col = 1;
    for (size_t q = 0; q < good; q++) {
      if (buf[q] == '\n') {
        line++;
        col = 1;
      } else if (((unsigned char)buf[q] & 0xC0) != 0x80) {
        col++;
      }
    }
    perr_set(err, file, line, col, "not valid UTF-8");
    return KEEL_EPARSE;
  }
  /* A UTF-8 byte order mark is not part of the first key. */
  if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
    buf += 3;
    len -= 3;
  }
  struct pstate s = {.doc_line = 1,
                     .base = base_profile,
                     .lim = lim,
                     .file = file,
                     .err = err};
  profiles_docs_init(&s.tmp);
  /* The base profile always gets a document, even an empty one. */
  {
    struct profiles_list none;
    profiles_list_init(&none);
    int arc = pdocs_add(&s.tmp, base_profile, &none, lim);
    if (arc)
      return arc;
  }
  profiles_list_init(&s.cur);
  struct lline l = {0};
  int rc = 0;
  size_t i = 0;
  int line = 1;
  while (i < len && !rc) {
    /* Start of a natural line that may begin a logical line. */
    size_t ls = i;
    int col = 1;
    while (i < len && is_blank(buf[i]))
      i++, col++;
    if (i >= len)
      break;
    if (buf[i] == '\n' || buf[i] == '\r') {
      i += (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') ? 2 : 1;
      line++;
      continue;
    }
    if (buf[i] == '#' || buf[i] == '!') {
      size_t e = i;
      while (e < len && buf[e] != '\n' && buf[e] != '\r')
        e++;
      size_t t = e;
      while (t > i && is_blank(buf[t - 1]))
        t--;
      if (i == ls && t - i == 4 && memcmp(buf + i + 1, "---", 3) == 0) {
        rc = end_doc(&s);
        s.doc_line = line + 1;
      }
      i = e;
      continue;
    }
    /* Assemble the logical line. */
    l.n = 0;
    for (;;) {
      size_t e = i;
      while (e < len && buf[e] != '\n' && buf[e] != '\r')
        e++;
      size_t bs = 0;
      while (bs < e - i && buf[e - 1 - bs] == '\\')
        bs++;
      int cont = bs % 2 == 1;
      size_t stop = cont ? e - 1 : e;
      for (size_t q = i; q < stop && !rc; q++) {
        rc = ll_push(&l, buf[q], line, col);
        if (((unsigned char)buf[q] & 0xC0) != 0x80)
          col++;
      }
      if (!rc && l.n > 6 * (lim->max_name_len + lim->max_value_len) + 16) {
        perr_set(err, file, line, 1, "line too long (limit %zu)",
                 6 * (lim->max_name_len + lim->max_value_len) + 16);
        rc = KEEL_ELIMIT;
      }
      i = e;
      if (i < len)
        i += (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') ? 2 : 1;
      if (rc || !cont || i >= len) {
        if (i <= len && e < len)
          line++;
        break;
      }
      line++;
      col = 1;
      while (i < len && is_blank(buf[i]))
        i++, col++;
    }
    if (!rc && l.n)
      rc = take_line(&s, &l);
  }
  if (!rc)
    rc = end_doc(&s);
  free(l.b);
  free(l.line);
  free(l.col);
  profiles_list_free(&s.cur);
  if (rc) {
    profiles_docs_free(&s.tmp);
    return rc;
  }
  rc = pdocs_absorb(out, &s.tmp, lim);
  if (rc == KEEL_ELIMIT)
    perr_set(err, file, 1, 1, "too many properties (limit %zu)",
             lim->max_props);
  if (rc == -E2BIG) {
    perr_set(err, file, 1, 1, "too many profiles in one import (limit %d)",
             PDOCS_MAX);
    rc = KEEL_ELIMIT;
  }
  return rc;
}

int profiles_parse_file(const char *path, const char *base_profile,
                        const struct profiles_limits *lim,
                        struct profiles_docs *out, struct profiles_error *err) {
  struct profiles_limits dl;
  if (!lim) {
    profiles_limits_default(&dl);
    lim = &dl;
  }
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    int e = errno;
    perr_set(err, NULL, 0, 0, "%s: %s", path, strerror(e));
    return -e;
  }
  size_t cap = lim->max_doc_bytes + 1;
  char *buf = malloc(cap ? cap : 1);
  if (!buf) {
    fclose(fp);
    return -ENOMEM;
  }
  size_t n = fread(buf, 1, cap, fp);
  int rerr = ferror(fp);
  fclose(fp);
  if (rerr) {
    free(buf);
    perr_set(err, NULL, 0, 0, "%s: read error", path);
    return -EIO;
  }
  size_t pl = strlen(path);
  int props = pl >= 11 && strcmp(path + pl - 11, ".properties") == 0;
  int rc =
      props
          ? profiles_parse_properties(buf, n, path, base_profile, lim, out, err)
          : profiles_parse_yaml(buf, n, path, base_profile, lim, out, err);
  free(buf);
  return rc;
}

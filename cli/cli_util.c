/* cli_util.c — pure helpers of the keel CLI (see cli_util.h): argument
 * parsing, byte-string display, base64, SHA-256, config endpoints, txn
 * lines, JSON/YAML rendering of an output tree. */
#define _GNU_SOURCE
#include "cli_util.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *const cli_flag_names[F_COUNT] = {
    "endpoints",    "dial-timeout", "command-timeout",
    "write-out",    "hex",          "debug",
    "help",         "prefix",       "from-key",
    "rev",          "limit",        "keys-only",
    "count-only",   "sort-by",      "order",
    "lease",        "prev-kv",      "ignore-value",
    "ignore-lease", "interactive",  "once",
    "keys",         "learner",      "peer-urls",
    "cluster",      "physical",     "to-rev",
    "max",          "dry-run",      "context",
    "ctx",          "type",         "nodes",
    "dir"};

/* Flags that take a value. */
static int takes_value(int f) {
  switch (f) {
  case F_ENDPOINTS:
  case F_DIAL_TIMEOUT:
  case F_COMMAND_TIMEOUT:
  case F_WRITE_OUT:
  case F_REV:
  case F_LIMIT:
  case F_SORT_BY:
  case F_ORDER:
  case F_LEASE:
  case F_PEER_URLS:
  case F_TO_REV:
  case F_MAX:
  case F_CONTEXT:
  case F_CTX:
  case F_TYPE:
  case F_NODES:
  case F_DIR:
    return 1;
  default:
    return 0;
  }
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen)
    vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int cli_parse_args(int argc, char **argv, struct cli_args *out, char *err,
                   size_t errlen) {
  memset(out, 0, sizeof(*out));
  int flags_done = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (flags_done || a[0] != '-' || a[1] == 0) {
      if (out->npos >= CLI_MAX_POS) {
        seterr(err, errlen, "too many arguments (at most %d)", CLI_MAX_POS);
        return -1;
      }
      out->pos[out->npos++] = a;
      continue;
    }
    if (strcmp(a, "--") == 0) {
      flags_done = 1;
      continue;
    }
    int f = -1;
    const char *val = NULL;
    if (a[1] == '-') {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      size_t nl = eq ? (size_t)(eq - name) : strlen(name);
      for (int k = 0; k < F_COUNT; k++)
        if (strlen(cli_flag_names[k]) == nl &&
            strncmp(cli_flag_names[k], name, nl) == 0)
          f = k;
      if (f < 0) {
        seterr(err, errlen, "unknown flag --%.*s", (int)nl, name);
        return -1;
      }
      if (eq) {
        if (!takes_value(f)) {
          /* --prefix=true / false, like cobra's boolean flags. */
          if (strcmp(eq + 1, "true") == 0)
            val = "1";
          else if (strcmp(eq + 1, "false") == 0) {
            out->flag[f] = NULL;
            continue;
          } else {
            seterr(err, errlen, "flag --%s takes no value (got \"%s\")",
                   cli_flag_names[f], eq + 1);
            return -1;
          }
        } else
          val = eq + 1;
      }
    } else {
      switch (a[1]) {
      case 'w':
        f = F_WRITE_OUT;
        break;
      case 'h':
        f = F_HELP;
        break;
      case 'i':
        f = F_INTERACTIVE;
        break;
      default:
        seterr(err, errlen, "unknown flag -%c", a[1]);
        return -1;
      }
      if (a[2]) {
        if (!takes_value(f)) {
          seterr(err, errlen, "unknown flag %s", a);
          return -1;
        }
        val = a + 2;
      }
    }
    if (takes_value(f) && val == NULL) {
      if (i + 1 >= argc) {
        seterr(err, errlen, "flag --%s needs a value", cli_flag_names[f]);
        return -1;
      }
      val = argv[++i];
    }
    out->flag[f] = val ? val : "1";
    if (out->nocc >= CLI_MAX_OCC) {
      seterr(err, errlen, "too many flags (at most %d)", CLI_MAX_OCC);
      return -1;
    }
    out->occ[out->nocc].flag = f;
    out->occ[out->nocc].value = out->flag[f];
    out->nocc++;
  }
  return 0;
}

int cli_parse_i64(const char *s, int64_t *out) {
  if (s == NULL || *s == 0)
    return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end)
    return -1;
  *out = v;
  return 0;
}

int cli_parse_id(const char *s, uint64_t *out) {
  if (s == NULL || *s == 0 || *s == '-')
    return -1;
  char *end;
  errno = 0;
  const char *p = s;
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
    p += 2;
  unsigned long long v = strtoull(p, &end, 16);
  if (errno || *end || end == p)
    return -1;
  *out = v;
  return 0;
}

int cli_parse_duration_ms(const char *s, uint64_t *out) {
  if (s == NULL || !isdigit((unsigned char)s[0]))
    return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno)
    return -1;
  double mul;
  if (*end == 0 || strcmp(end, "s") == 0)
    mul = 1000;
  else if (strcmp(end, "ms") == 0)
    mul = 1;
  else if (strcmp(end, "m") == 0)
    mul = 60000;
  else
    return -1;
  double ms = v * mul;
  if (ms < 0 || ms > 86400000.0)
    return -1;
  *out = (uint64_t)ms;
  return 0;
}

/* ---------------------------------------------------------------- */

/* Length of the UTF-8 sequence at b (n bytes left), 0 when invalid. */
static size_t utf8_len(const uint8_t *b, size_t n) {
  uint8_t c = b[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80)
    return 1;
  if ((c & 0xe0) == 0xc0) {
    len = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    cp = c & 0x07;
  } else
    return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((b[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (b[i] & 0x3f);
  }
  /* Overlong forms, surrogates, beyond U+10FFFF. */
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
      (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

static int ok_char(const uint8_t *b, size_t n, size_t *len) {
  *len = utf8_len(b, n);
  if (*len == 0)
    return 0;
  if (*len == 1 && (b[0] < 0x20 || b[0] == 0x7f) && b[0] != '\t' &&
      b[0] != '\n')
    return 0;
  return 1;
}

int cli_is_printable(const uint8_t *b, size_t n) {
  size_t i = 0, l;
  while (i < n) {
    if (!ok_char(b + i, n - i, &l))
      return 0;
    i += l;
  }
  return 1;
}

char *cli_display(const uint8_t *b, size_t n, int hex) {
  if (!hex && cli_is_printable(b, n)) {
    char *s = malloc(n + 1);
    if (s) {
      if (n)
        memcpy(s, b, n);
      s[n] = 0;
    }
    return s;
  }
  char *s = malloc(n * 4 + 1);
  if (s == NULL)
    return NULL;
  size_t o = 0, i = 0, l;
  while (i < n) {
    if (!hex && b[i] == '\\') {
      s[o++] = '\\';
      s[o++] = '\\';
      i++;
    } else if (!hex && ok_char(b + i, n - i, &l)) {
      memcpy(s + o, b + i, l);
      o += l;
      i += l;
    } else {
      o += (size_t)sprintf(s + o, "\\x%02x", b[i]);
      i++;
    }
  }
  s[o] = 0;
  return s;
}

char *cli_base64(const uint8_t *b, size_t n) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *s = malloc((n + 2) / 3 * 4 + 1);
  if (s == NULL)
    return NULL;
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
    s[o++] = tab[v >> 18];
    s[o++] = tab[(v >> 12) & 63];
    s[o++] = tab[(v >> 6) & 63];
    s[o++] = tab[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)b[i] << 16;
    s[o++] = tab[v >> 18];
    s[o++] = tab[(v >> 12) & 63];
    s[o++] = '=';
    s[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8;
    s[o++] = tab[v >> 18];
    s[o++] = tab[(v >> 12) & 63];
    s[o++] = tab[(v >> 6) & 63];
    s[o++] = '=';
  }
  s[o] = 0;
  return s;
}

/* ---------------------------------------------------------------- */
/* SHA-256                                                           */

void cli_sha256_init(struct cli_sha256 *s) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
    abort();
  s->ctx = c;
}

void cli_sha256_update(struct cli_sha256 *s, const uint8_t *d, size_t n) {
  if (EVP_DigestUpdate(s->ctx, d, n) != 1)
    abort();
}

void cli_sha256_final(struct cli_sha256 *s, uint8_t out[32]) {
  unsigned n = 0;
  if (EVP_DigestFinal_ex(s->ctx, out, &n) != 1 || n != 32)
    abort();
  EVP_MD_CTX_free(s->ctx);
  s->ctx = NULL;
}

/* ---------------------------------------------------------------- */
/* Config                                                            */

static int add_item(const char *b, size_t n, char out[][256], int max, int *k,
                    char *err, size_t errlen) {
  while (n && isspace((unsigned char)*b))
    b++, n--;
  while (n && isspace((unsigned char)b[n - 1]))
    n--;
  if (n >= 2 && (b[0] == '"' || b[0] == '\'') && b[n - 1] == b[0])
    b++, n -= 2;
  if (n == 0) {
    seterr(err, errlen, "empty endpoint in the list");
    return -1;
  }
  if (n > 255) {
    seterr(err, errlen, "endpoint longer than 255 bytes");
    return -1;
  }
  if (*k >= max) {
    seterr(err, errlen, "more than %d endpoints", max);
    return -1;
  }
  memcpy(out[*k], b, n);
  out[*k][n] = 0;
  (*k)++;
  return 0;
}

int cli_split_endpoints(const char *s, char out[][256], int max, char *err,
                        size_t errlen) {
  int k = 0;
  for (;;) {
    const char *c = strchr(s, ',');
    size_t n = c ? (size_t)(c - s) : strlen(s);
    if (add_item(s, n, out, max, &k, err, errlen) != 0)
      return -1;
    if (c == NULL)
      return k;
    s = c + 1;
  }
}

int cli_config_endpoints(const char *text, char out[][256], int max, char *err,
                         size_t errlen) {
  const char *p = text;
  int in_list = 0, k = 0;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    char line[1024];
    if (n >= sizeof(line)) {
      seterr(err, errlen, "line longer than %zu bytes", sizeof(line) - 1);
      return -1;
    }
    memcpy(line, p, n);
    line[n] = 0;
    p = eol ? eol + 1 : p + n;
    /* Strip a comment (not inside quotes: endpoints have no '#'). */
    char *h = strchr(line, '#');
    if (h)
      *h = 0;
    char *s = line;
    int indented = isspace((unsigned char)*s);
    while (isspace((unsigned char)*s))
      s++;
    size_t l = strlen(s);
    while (l && isspace((unsigned char)s[l - 1]))
      s[--l] = 0;
    if (l == 0)
      continue;
    if (in_list) {
      if (s[0] == '-' && (s[1] == ' ' || s[1] == 0)) {
        if (add_item(s + 1, l - 1, out, max, &k, err, errlen) != 0)
          return -1;
        continue;
      }
      if (indented) {
        seterr(err, errlen,
               "endpoints: expected a \"- host:port\" item, got "
               "\"%s\"",
               s);
        return -1;
      }
      return k; /* next top-level key */
    }
    if (!indented && strncmp(s, "endpoints:", 10) == 0) {
      char *v = s + 10;
      while (isspace((unsigned char)*v))
        v++;
      if (*v == 0) {
        in_list = 1;
        continue;
      }
      size_t vl = strlen(v);
      if (v[0] == '[') {
        if (v[vl - 1] != ']') {
          seterr(err, errlen, "endpoints: unterminated [ list");
          return -1;
        }
        v[vl - 1] = 0;
        v++;
        while (isspace((unsigned char)*v))
          v++;
        if (*v == 0)
          return 0;
      }
      return cli_split_endpoints(v, out, max, err, errlen);
    }
  }
  return k;
}

/* ---------------------------------------------------------------- */
/* txn lines                                                         */

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int cli_tokenize(const char *line, char *buf, size_t buflen, const char *tok[],
                 size_t tok_len[], int max, char *err, size_t errlen) {
  size_t o = 0;
  int k = 0;
  const char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
      p++;
    if (*p == 0)
      return k;
    if (k >= max) {
      seterr(err, errlen, "more than %d words on a line", max);
      return -1;
    }
    size_t start = o;
    while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
      char q = *p;
      if (q == '"' || q == '\'') {
        p++;
        while (*p && *p != q) {
          int c = (unsigned char)*p++;
          if (q == '"' && c == '\\') {
            int e = (unsigned char)*p++;
            switch (e) {
            case 'n':
              c = '\n';
              break;
            case 't':
              c = '\t';
              break;
            case 'x': {
              int a = p[0] ? hexval(p[0]) : -1;
              int b = a >= 0 && p[1] ? hexval(p[1]) : -1;
              if (b < 0) {
                seterr(err, errlen, "bad \\x escape (two hex digits needed)");
                return -1;
              }
              c = a * 16 + b;
              p += 2;
              break;
            }
            case 0:
              seterr(err, errlen, "unterminated quote");
              return -1;
            default:
              c = e;
            }
          }
          if (o + 1 >= buflen) {
            seterr(err, errlen, "line too long");
            return -1;
          }
          buf[o++] = (char)c;
        }
        if (*p != q) {
          seterr(err, errlen, "unterminated quote");
          return -1;
        }
        p++;
      } else {
        if (o + 1 >= buflen) {
          seterr(err, errlen, "line too long");
          return -1;
        }
        buf[o++] = *p++;
      }
    }
    tok[k] = buf + start;
    tok_len[k] = o - start;
    buf[o++] = 0;
    k++;
  }
}

/* Reads a "quoted" string at *pp into a malloc'd buffer. */
static int quoted(const char **pp, char **out, size_t *outlen, char *err,
                  size_t errlen) {
  const char *p = *pp;
  while (*p == ' ')
    p++;
  if (*p != '"') {
    seterr(err, errlen, "expected a \"quoted\" string at \"%s\"", p);
    return -1;
  }
  const char *s = p + 1;
  /* Find the closing quote honouring backslash escapes. */
  p = s;
  while (*p && *p != '"') {
    if (*p == '\\' && p[1])
      p++;
    p++;
  }
  if (*p != '"') {
    seterr(err, errlen, "unterminated quote");
    return -1;
  }
  size_t n = (size_t)(p - (s - 1)) + 1;
  char *tmp = malloc(n + 1);
  char *buf = malloc(n + 1);
  if (!tmp || !buf) {
    free(tmp);
    free(buf);
    seterr(err, errlen, "out of memory");
    return -1;
  }
  memcpy(tmp, s - 1, n);
  tmp[n] = 0;
  const char *tok[1];
  size_t tl[1];
  int k = cli_tokenize(tmp, buf, n + 1, tok, tl, 1, err, errlen);
  if (k != 1) {
    free(tmp);
    free(buf);
    if (k == 0)
      seterr(err, errlen, "empty string");
    return -1;
  }
  memmove(buf, tok[0], tl[0]);
  buf[tl[0]] = 0;
  *out = buf;
  *outlen = tl[0];
  free(tmp);
  *pp = p + 1;
  return 0;
}

int cli_parse_compare(const char *line, struct cli_cmp *out, char *err,
                      size_t errlen) {
  memset(out, 0, sizeof(*out));
  const char *p = line;
  while (*p == ' ' || *p == '\t')
    p++;
  size_t n = 0;
  while (isalpha((unsigned char)p[n]))
    n++;
  static const char *const targets[] = {"mod", "create", "version", "value",
                                        "lease"};
  int ok = 0;
  for (int i = 0; i < 5; i++)
    if (strlen(targets[i]) == n && strncmp(targets[i], p, n) == 0)
      ok = 1;
  /* etcdctl also accepts the long names. */
  if (!ok && n == 3 + 5 && strncmp(p, "mod_revision", n) == 0)
    ok = 1;
  if (!ok || p[n] != '(') {
    seterr(err, errlen,
           "compare must look like mod(\"key\") > \"5\" (targets: mod, "
           "create, version, value, lease): \"%s\"",
           line);
    return -1;
  }
  memcpy(out->target, p, n);
  out->target[n] = 0;
  p += n + 1;
  if (quoted(&p, &out->key, &out->key_len, err, errlen) != 0)
    return -1;
  while (*p == ' ')
    p++;
  if (*p != ')') {
    seterr(err, errlen, "expected ')' after the key in \"%s\"", line);
    goto fail;
  }
  p++;
  while (*p == ' ')
    p++;
  if (strncmp(p, "!=", 2) == 0) {
    strcpy(out->op, "!=");
    p += 2;
  } else if (*p == '=' || *p == '>' || *p == '<') {
    out->op[0] = *p++;
    out->op[1] = 0;
  } else {
    seterr(err, errlen, "expected one of = != > < in \"%s\"", line);
    goto fail;
  }
  if (quoted(&p, &out->arg, &out->arg_len, err, errlen) != 0)
    goto fail;
  while (*p == ' ' || *p == '\t' || *p == '\r')
    p++;
  if (*p) {
    seterr(err, errlen, "unexpected text after the compare: \"%s\"", p);
    goto fail;
  }
  return 0;
fail:
  free(out->key);
  free(out->arg);
  out->key = out->arg = NULL;
  return -1;
}

/* ---------------------------------------------------------------- */
/* Output tree                                                       */

static struct cli_node *add(struct cli_node *parent, const char *name,
                            enum cli_node_type t) {
  struct cli_node *n = calloc(1, sizeof(*n));
  if (n == NULL) {
    fprintf(stderr, "keel: out of memory\n");
    exit(1);
  }
  n->type = t;
  n->name = name ? strdup(name) : NULL;
  if (parent) {
    if (parent->last)
      parent->last->next = n;
    else
      parent->child = n;
    parent->last = n;
  }
  return n;
}

struct cli_node *cli_obj(struct cli_node *parent, const char *name) {
  return add(parent, name, N_OBJ);
}
struct cli_node *cli_arr(struct cli_node *parent, const char *name) {
  return add(parent, name, N_ARR);
}
void cli_int(struct cli_node *parent, const char *name, int64_t v) {
  add(parent, name, N_INT)->i = v;
}
void cli_uint(struct cli_node *parent, const char *name, uint64_t v) {
  add(parent, name, N_UINT)->u = v;
}
void cli_bool(struct cli_node *parent, const char *name, int v) {
  add(parent, name, N_BOOL)->i = v != 0;
}
void cli_str(struct cli_node *parent, const char *name, const char *s) {
  struct cli_node *n = add(parent, name, N_STR);
  n->s = strdup(s ? s : "");
  n->n = strlen(n->s);
}
void cli_bytes(struct cli_node *parent, const char *name, const uint8_t *b,
               size_t len) {
  struct cli_node *n = add(parent, name, N_BYTES);
  n->s = malloc(len + 1);
  if (len)
    memcpy(n->s, b, len);
  n->s[len] = 0;
  n->n = len;
}

void cli_node_free(struct cli_node *n) {
  while (n) {
    struct cli_node *next = n->next;
    cli_node_free(n->child);
    free(n->name);
    free(n->s);
    free(n);
    n = next;
  }
}

static void json_string(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", f);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

static void json_node(FILE *f, const struct cli_node *n) {
  switch (n->type) {
  case N_OBJ:
  case N_ARR:
    fputc(n->type == N_OBJ ? '{' : '[', f);
    for (const struct cli_node *c = n->child; c; c = c->next) {
      if (n->type == N_OBJ) {
        json_string(f, c->name, strlen(c->name));
        fputc(':', f);
      }
      json_node(f, c);
      if (c->next)
        fputc(',', f);
    }
    fputc(n->type == N_OBJ ? '}' : ']', f);
    break;
  case N_INT:
    fprintf(f, "%lld", (long long)n->i);
    break;
  case N_UINT:
    fprintf(f, "%llu", (unsigned long long)n->u);
    break;
  case N_BOOL:
    fputs(n->i ? "true" : "false", f);
    break;
  case N_STR:
    json_string(f, n->s, n->n);
    break;
  case N_BYTES: {
    char *b = cli_base64((const uint8_t *)n->s, n->n);
    json_string(f, b, strlen(b));
    free(b);
    break;
  }
  }
}

void cli_render_json(FILE *f, const struct cli_node *n) {
  json_node(f, n);
  fputc('\n', f);
}

/* A YAML scalar: plain when safe, else double-quoted with escapes. */
static void yaml_scalar(FILE *f, const char *s, size_t n) {
  int plain = n > 0 && cli_is_printable((const uint8_t *)s, n);
  for (size_t i = 0; plain && i < n; i++)
    if (strchr(":#{}[],&*!|>'\"%@`\n\t", s[i]))
      plain = 0;
  if (plain && (s[0] == '-' || s[0] == '?' || s[0] == ' ' || s[n - 1] == ' ' ||
                isdigit((unsigned char)s[0]) || strcmp(s, "true") == 0 ||
                strcmp(s, "false") == 0 || strcmp(s, "null") == 0 ||
                strcmp(s, "~") == 0))
    plain = 0;
  if (plain) {
    fwrite(s, 1, n, f);
    return;
  }
  json_string(f, s, n); /* a JSON string is a valid YAML double-quoted one */
}

static void indent(FILE *f, int d) {
  for (int i = 0; i < d; i++)
    fputs("  ", f);
}

static void yaml_value(FILE *f, const struct cli_node *n, int depth);

static void yaml_members(FILE *f, const struct cli_node *n, int depth,
                         int first_inline) {
  for (const struct cli_node *c = n->child; c; c = c->next) {
    if (!(first_inline && c == n->child))
      indent(f, depth);
    if (n->type == N_OBJ) {
      fputs(c->name, f);
      fputc(':', f);
    } else
      fputc('-', f);
    if ((c->type == N_OBJ || c->type == N_ARR) && c->child == NULL) {
      fputs(c->type == N_OBJ ? " {}\n" : " []\n", f);
    } else if (c->type == N_OBJ && n->type == N_ARR) {
      fputc(' ', f);
      yaml_members(f, c, depth + 1, 1);
    } else if (c->type == N_OBJ || c->type == N_ARR) {
      fputc('\n', f);
      yaml_members(f, c, depth + 1, 0);
    } else {
      fputc(' ', f);
      yaml_value(f, c, depth);
      fputc('\n', f);
    }
  }
}

static void yaml_value(FILE *f, const struct cli_node *n, int depth) {
  (void)depth;
  switch (n->type) {
  case N_INT:
    fprintf(f, "%lld", (long long)n->i);
    break;
  case N_UINT:
    fprintf(f, "%llu", (unsigned long long)n->u);
    break;
  case N_BOOL:
    fputs(n->i ? "true" : "false", f);
    break;
  case N_STR:
    yaml_scalar(f, n->s, n->n);
    break;
  case N_BYTES:
    if (cli_is_printable((const uint8_t *)n->s, n->n))
      yaml_scalar(f, n->s, n->n);
    else {
      char *b = cli_base64((const uint8_t *)n->s, n->n);
      fprintf(f, "!!binary %s", b);
      free(b);
    }
    break;
  default:
    break;
  }
}

void cli_render_yaml(FILE *f, const struct cli_node *n) {
  if (n->type == N_OBJ || n->type == N_ARR) {
    if (n->child == NULL)
      fputs(n->type == N_OBJ ? "{}\n" : "[]\n", f);
    else
      yaml_members(f, n, 0, 0);
  } else {
    yaml_value(f, n, 0);
    fputc('\n', f);
  }
}

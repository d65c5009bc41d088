/* cmd_flag.c — `keel flag ...`: feature flags in flagd's format, stored one
 * key per flag under /flags/SET/ (docs/flags.md), managed from the command
 * line: list, get, set, enable, disable, delete, import and export of whole
 * flagd files, eval, and watch.
 *
 * Every write is checked here with flags/ before it is sent (the server
 * checks again) and is guarded by a txn compare on what it was based on,
 * so a concurrent change makes the command fail with nothing written
 * instead of being silently undone:
 *
 *   set KEY           compare $evaluators' mod_revision (the rules KEY's
 *                     $refs were checked against)
 *   set $evaluators,  compare "no key of the set changed since the read"
 *   delete $evaluators  (every flag was checked against the new rules)
 *   enable / disable  compare KEY's mod_revision
 *   import            compare every key read (mod_revision: catches changes
 *                     and deletes) and the whole prefix (mod < read
 *                     revision + 1: catches new keys); then puts and deletes
 *                     in the same txn
 *
 * Definitions are stored as compact JSON in the order written, numbers in
 * their shortest form that reads back to the same value (json_write), so an
 * export of an import reads back equal and a second import of the same
 * file changes nothing. eval and watch build the set with flags/ exactly as
 * the libkeel cache does and evaluate locally. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_cmd.h"
#include "flags.h"
#include "keel_flags.h"
#include "keel_log.h"

#define EVALUATORS "$evaluators"
#define MAX_SET_NAME 128
#define SCHEMA_URL "https://flagd.dev/schema/v0/flags.json"

static enum cli_fmt fmt;

/* ---------------------------------------------------------------- */
/* A growing text buffer (bounded by what is written into it: at most a
 * flags file, FLAGS_MAX_FILE_BYTES, plus indentation)                 */

struct sb {
  char *p;
  size_t n, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
      cli_cmd_fatal(CLI_EXIT_FAIL, "out of memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void sb_str(struct sb *b, const char *s) {
  sb_add(b, s, strlen(s));
}

static void sb_printf(struct sb *b, const char *f, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(tmp, sizeof(tmp), f, ap);
  va_end(ap);
  if (n > 0)
    sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ---------------------------------------------------------------- */
/* JSON output: object members in their order, numbers as written    */

/* A real in the shortest %g form that reads back to the same double, with
 * ".0" added when it would otherwise read back as an integer (jansson, like
 * flagd-core, tells 1 and 1.0 apart only by the text). */
static void write_real(struct sb *b, double d) {
  char t[40];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(t, sizeof(t), "%.*g", prec, d);
    if (strtod(t, NULL) == d)
      break;
  }
  sb_str(b, t);
  if (strpbrk(t, ".eE") == NULL)
    sb_str(b, ".0");
}

static void indent(struct sb *b, int ind, int level) {
  if (ind <= 0)
    return;
  sb_str(b, "\n");
  for (int i = 0; i < ind * level; i++)
    sb_add(b, " ", 1);
}

static void json_write(struct sb *b, const json_t *v, int ind, int level);

/* Pretty output keeps a small container on one line ("variants": {"on":
 * true, "off": false}) when it fits in 72 columns. */
static int fits_inline(const json_t *v, int ind, int level, struct sb *out) {
  json_write(out, v, -1, 0);
  return out->n + (size_t)(ind * level) <= 72;
}

/* Serializes v: ind 0 = compact, -1 = one line with spaces after ',' and
 * ':', > 0 = pretty with ind spaces per level. */
static void json_write(struct sb *b, const json_t *v, int ind, int level) {
  const char *comma = ind ? ", " : ",";
  if (ind > 0 && (json_is_object(v) || json_is_array(v))) {
    struct sb one = {0};
    if (fits_inline(v, ind, level, &one)) {
      sb_add(b, one.p, one.n);
      free(one.p);
      return;
    }
    free(one.p);
    comma = ",";
  }
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    if (json_object_size(v) == 0) {
      sb_str(b, "{}");
      return;
    }
    sb_str(b, "{");
    const char *k;
    json_t *x;
    int first = 1;
    json_object_foreach((json_t *)v, k, x) {
      if (!first)
        sb_str(b, comma);
      first = 0;
      indent(b, ind, level + 1);
      json_t *ks = json_string(k);
      char *e = json_dumps(ks, JSON_ENCODE_ANY);
      json_decref(ks);
      if (e == NULL)
        cli_cmd_fatal(CLI_EXIT_FAIL, "out of memory");
      sb_str(b, e);
      free(e);
      sb_str(b, ind ? ": " : ":");
      json_write(b, x, ind, level + 1);
    }
    indent(b, ind, level);
    sb_str(b, "}");
    return;
  }
  case JSON_ARRAY: {
    if (json_array_size(v) == 0) {
      sb_str(b, "[]");
      return;
    }
    sb_str(b, "[");
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i)
        sb_str(b, comma);
      indent(b, ind, level + 1);
      json_write(b, json_array_get(v, i), ind, level + 1);
    }
    indent(b, ind, level);
    sb_str(b, "]");
    return;
  }
  case JSON_REAL:
    write_real(b, json_real_value(v));
    return;
  case JSON_INTEGER:
    sb_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return;
  default: {
    char *e = json_dumps(v, JSON_ENCODE_ANY);
    if (e == NULL)
      cli_cmd_fatal(CLI_EXIT_FAIL, "out of memory");
    sb_str(b, e);
    free(e);
  }
  }
}

static char *json_text(const json_t *v, int ind) {
  struct sb b = {0};
  json_write(&b, v, ind, 0);
  return b.p;
}

static json_t *json_parse(const char *s, size_t n, char *err, size_t errlen) {
  json_error_t je;
  json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (v == NULL)
    snprintf(err, errlen, "not JSON: %s (line %d, column %d)", je.text, je.line,
             je.column);
  return v;
}

/* ---------------------------------------------------------------- */
/* Names and keys                                                     */

static void check_set_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_SET_NAME || strpbrk(s, "/ \t\n\r") != NULL)
    cli_cmd_usage_error("bad flag set name \"%s\": 1..%d bytes, no '/' and "
                        "no blanks",
                        s, MAX_SET_NAME);
}

/* allow_ev: KEY may be $evaluators. */
static void check_flag_key(const char *s, int allow_ev) {
  size_t n = strlen(s);
  if (n == 0 || n > FLAGS_MAX_KEY_BYTES || strchr(s, '/') != NULL)
    cli_cmd_usage_error("bad flag key \"%s\": 1..%d bytes, no '/'", s,
                        FLAGS_MAX_KEY_BYTES);
  if (!allow_ev && strcmp(s, EVALUATORS) == 0)
    cli_cmd_usage_error("%s is the set's shared rules, not a flag", EVALUATORS);
}

static char *set_prefix(const char *set) {
  char *p;
  if (asprintf(&p, "/flags/%s/", set) < 0)
    cli_cmd_fatal(CLI_EXIT_FAIL, "out of memory");
  return p;
}

static char *flag_path(const char *set, const char *key) {
  char *p;
  if (asprintf(&p, "/flags/%s/%s", set, key) < 0)
    cli_cmd_fatal(CLI_EXIT_FAIL, "out of memory");
  return p;
}

/* ---------------------------------------------------------------- */
/* Requests                                                           */

static int start_range(keel_client *c, keel_cb cb, void *ud, void *arg) {
  return keel_range(c, arg, NULL, cb, ud);
}
static int start_txn(keel_client *c, keel_cb cb, void *ud, void *arg) {
  return keel_txn(c, arg, NULL, cb, ud);
}
static int start_delete(keel_client *c, keel_cb cb, void *ud, void *arg) {
  return keel_delete(c, arg, NULL, cb, ud);
}

/* Every key of the set (or with key set: that one key), linearizable. */
static const struct keel_range_resp *read_prefix(const char *prefix,
                                                 const char *what) {
  size_t pl = strlen(prefix);
  uint8_t end[MAX_SET_NAME + 16];
  struct keel_range_req q;
  memset(&q, 0, sizeof(q));
  q.key = (const uint8_t *)prefix;
  q.key_len = pl;
  q.range_end = end;
  q.range_end_len = keel_prefix_end(q.key, pl, end);
  const void *r;
  cli_cmd_request(what, 0, 1, start_range, &q, &r, NULL, 0);
  return r;
}

static const struct keel_range_resp *read_key(const char *path,
                                              const char *what) {
  struct keel_range_req q;
  memset(&q, 0, sizeof(q));
  q.key = (const uint8_t *)path;
  q.key_len = strlen(path);
  const void *r;
  cli_cmd_request(what, 0, 1, start_range, &q, &r, NULL, 0);
  return r;
}

/* Runs a txn; exits with the server's message when it is refused (server
 * side validation of a flag, too many operations ...). Returns the
 * response (succeeded says whether the guard held). */
static const struct keel_txn_resp *run_txn(const struct keel_txn_req *t,
                                           const char *what) {
  const void *r;
  char msg[1024];
  int e =
      cli_cmd_request(what, 0, 0, start_txn, (void *)t, &r, msg, sizeof(msg));
  if (e == -EINVAL && msg[0])
    cli_cmd_fatal(CLI_EXIT_FAIL, "%s: refused by the server: %s", what, msg);
  if (e == KEEL_ETOOMANYOPS)
    cli_cmd_fatal(CLI_EXIT_FAIL,
                  "%s: the change needs %zu compares and %zu operations in "
                  "one txn; the server allows fewer (etcd and keeld: "
                  "--max-txn-ops, default 128): %s",
                  what, t->n_compares, t->n_success, msg);
  if (e)
    cli_cmd_fail_last(what, 0); /* never sent twice: a write */
  return r;
}

/* Reads a document from arg, or stdin when arg is NULL or "-", at most max
 * bytes; malloc'd and NUL-terminated. */
static char *read_input(const char *file, size_t max, size_t *len,
                        const char *what) {
  FILE *f = stdin;
  if (file && strcmp(file, "-") != 0) {
    f = fopen(file, "r");
    if (f == NULL)
      cli_cmd_fatal(errno == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_FAIL,
                    "%s: cannot open %s: %s", what, file, strerror(errno));
  }
  size_t cap = 4096, n = 0;
  char *b = malloc(cap + 1);
  for (;;) {
    if (n == cap) {
      if (cap > max)
        break;
      cap *= 2;
      b = realloc(b, cap + 1);
      if (b == NULL)
        cli_cmd_fatal(CLI_EXIT_FAIL, "out of memory");
    }
    size_t k = fread(b + n, 1, cap - n, f);
    n += k;
    if (k == 0)
      break;
  }
  int rerr = ferror(f);
  if (f != stdin)
    fclose(f);
  if (rerr)
    cli_cmd_fatal(CLI_EXIT_FAIL, "%s: read error on %s", what,
                  file ? file : "stdin");
  if (n > max)
    cli_cmd_fatal(CLI_EXIT_FAIL, "%s: %s is larger than %zu bytes (the limit)",
                  what, file && strcmp(file, "-") ? file : "stdin", max);
  b[n] = 0;
  *len = n;
  return b;
}

/* ---------------------------------------------------------------- */
/* A set as read: keys after the prefix, values, revisions             */

struct entry {
  char *key; /* after the prefix */
  const uint8_t *val;
  size_t len;
  int64_t mod, version;
};

struct setview {
  const struct keel_range_resp *r;
  char *prefix;
  struct entry *e;
  size_t n;
  int64_t rev;
  const struct entry *ev; /* $evaluators or NULL */
};

static void read_set(struct setview *v, const char *set, const char *what) {
  memset(v, 0, sizeof(*v));
  v->prefix = set_prefix(set);
  v->r = read_prefix(v->prefix, what);
  v->rev = v->r->header.revision;
  size_t pl = strlen(v->prefix);
  v->e = calloc(v->r->n_kvs + 1, sizeof(*v->e));
  for (size_t i = 0; i < v->r->n_kvs; i++) {
    const struct keel_kv *kv = &v->r->kvs[i];
    struct entry *e = &v->e[v->n++];
    e->key = strndup((const char *)kv->key + pl, kv->key_len - pl);
    e->val = kv->value;
    e->len = kv->value_len;
    e->mod = kv->mod_revision;
    e->version = kv->version;
    if (strcmp(e->key, EVALUATORS) == 0)
      v->ev = e;
  }
}

static void free_set(struct setview *v) {
  for (size_t i = 0; i < v->n; i++)
    free(v->e[i].key);
  free(v->e);
  free(v->prefix);
  keel_resp_free(v->r);
}

static const struct entry *find_entry(const struct setview *v,
                                      const char *key) {
  for (size_t i = 0; i < v->n; i++)
    if (strcmp(v->e[i].key, key) == 0)
      return &v->e[i];
  return NULL;
}

/* Compiles the set as the libkeel cache does: evaluators first, then each
 * flag; a definition the compiler refuses is skipped with a note. */
static struct flags_set *build_set(const struct setview *v, int quiet) {
  char err[300];
  struct flags_builder *b = flags_builder_new();
  if (b == NULL)
    cli_cmd_fatal(CLI_EXIT_FAIL, "out of memory");
  if (v->ev &&
      flags_builder_set_evaluators(b, (const char *)v->ev->val, v->ev->len, err,
                                   sizeof(err)) &&
      !quiet)
    fprintf(stderr, "keel: note: %s%s is invalid and ignored: %s\n", v->prefix,
            EVALUATORS, err);
  for (size_t i = 0; i < v->n; i++) {
    const struct entry *e = &v->e[i];
    if (e == v->ev || strchr(e->key, '/'))
      continue;
    if (flags_builder_add(b, e->key, (const char *)e->val, e->len, err,
                          sizeof(err)) &&
        !quiet)
      fprintf(stderr, "keel: note: %s%s is invalid and skipped: %s\n",
              v->prefix, e->key, err);
  }
  struct flags_set *s = NULL;
  if (flags_builder_build(b, &s, err, sizeof(err)) != 0)
    cli_cmd_fatal(CLI_EXIT_FAIL, "compiling the set failed: %s", err);
  flags_builder_free(b);
  return s;
}

/* ---------------------------------------------------------------- */
/* list                                                               */

/* Rows only for table output: a table is freed by printing it. */
static void trow(struct cli_cmd_table *t, const char *const *cells) {
  if (fmt == CLI_FMT_TABLE)
    cli_cmd_table_row(t, cells);
}

static void print_json_line(json_t *o) {
  char *t = json_text(o, 0);
  puts(t);
  free(t);
  json_decref(o);
}

static void print_json_pretty(json_t *o) {
  char *t = json_text(o, 2);
  puts(t);
  free(t);
  json_decref(o);
}

static int list_sets(void) {
  const char *prefix = "/flags/";
  struct keel_range_req q;
  uint8_t end[16];
  memset(&q, 0, sizeof(q));
  q.key = (const uint8_t *)prefix;
  q.key_len = strlen(prefix);
  q.range_end = end;
  q.range_end_len = keel_prefix_end(q.key, q.key_len, end);
  q.keys_only = 1;
  const void *rv;
  cli_cmd_request("flag list", 0, 1, start_range, &q, &rv, NULL, 0);
  const struct keel_range_resp *r = rv;
  json_t *arr = json_array();
  struct cli_cmd_table *t =
      cli_cmd_table_new(2, (const char *const[]){"SET", "FLAGS"});
  size_t i = 0;
  while (i < r->n_kvs) {
    const char *k = (const char *)r->kvs[i].key + q.key_len;
    size_t kl = r->kvs[i].key_len - q.key_len;
    const char *sl = memchr(k, '/', kl);
    size_t nl = sl ? (size_t)(sl - k) : kl;
    size_t count = 0, j = i;
    for (; j < r->n_kvs; j++) {
      const char *k2 = (const char *)r->kvs[j].key + q.key_len;
      size_t kl2 = r->kvs[j].key_len - q.key_len;
      if (kl2 <= nl || memcmp(k2, k, nl) != 0 || k2[nl] != '/')
        break;
      if (!(kl2 - nl - 1 == strlen(EVALUATORS) &&
            memcmp(k2 + nl + 1, EVALUATORS, strlen(EVALUATORS)) == 0))
        count++;
    }
    if (j == i)
      j = i + 1; /* a key /flags/x with no set part: skip it */
    else {
      char *name = cli_cmd_display((const uint8_t *)k, nl);
      char c[24];
      snprintf(c, sizeof(c), "%zu", count);
      trow(t, (const char *const[]){name, c});
      json_t *o = json_object();
      json_object_set_new(o, "set", json_stringn(k, nl));
      json_object_set_new(o, "flags", json_integer((json_int_t)count));
      json_array_append_new(arr, o);
      if (fmt == CLI_FMT_SIMPLE)
        puts(name);
      free(name);
    }
    i = j;
  }
  int n = (int)json_array_size(arr);
  if (fmt == CLI_FMT_JSON || fmt == CLI_FMT_YAML) {
    json_t *o = json_object();
    json_object_set_new(o, "revision", json_integer(r->header.revision));
    json_object_set(o, "sets", arr);
    if (fmt == CLI_FMT_JSON)
      print_json_line(o);
    else
      print_json_pretty(o);
  }
  if (fmt == CLI_FMT_TABLE && n)
    cli_cmd_table_print(t);
  else
    free(t); /* never printed, and rows are only added for tables */
  json_decref(arr);
  keel_resp_free(r);
  if (n == 0) {
    fprintf(stderr, "keel: flag list: no flag set (nothing under /flags/)\n");
    return CLI_EXIT_NOTFOUND;
  }
  return 0;
}

static int cmd_list(const char *set) {
  struct setview v;
  read_set(&v, set, "flag list");
  json_t *arr = json_array();
  struct cli_cmd_table *t =
      cli_cmd_table_new(5, (const char *const[]){"KEY", "STATE", "DEFAULT",
                                                 "VARIANTS", "MOD_REV"});
  int rows = 0;
  for (size_t i = 0; i < v.n; i++) {
    const struct entry *e = &v.e[i];
    char err[200];
    char mod[24];
    snprintf(mod, sizeof(mod), "%" PRId64, e->mod);
    char *key = cli_cmd_display((const uint8_t *)e->key, strlen(e->key));
    json_t *d = json_parse((const char *)e->val, e->len, err, sizeof(err));
    json_t *o = json_object();
    json_object_set_new(o, "key", json_string(e->key));
    json_object_set_new(o, "mod_revision", json_integer(e->mod));
    if (e == v.ev) {
      size_t ne = json_is_object(d) ? json_object_size(d) : 0;
      char c[48];
      snprintf(c, sizeof(c), "%zu shared rule%s", ne, ne == 1 ? "" : "s");
      trow(t, (const char *const[]){key, "-", "-", c, mod});
      json_object_set_new(o, "evaluators", json_integer((json_int_t)ne));
    } else {
      const char *state = "?", *def = "-";
      struct sb vars = {0};
      json_t *dv =
          json_is_object(d) ? json_object_get(d, "defaultVariant") : NULL;
      if (json_is_object(d)) {
        json_t *st = json_object_get(d, "state");
        if (json_is_string(st))
          state = json_string_value(st);
        if (json_is_string(dv) && json_string_length(dv))
          def = json_string_value(dv);
        const char *vk;
        json_t *vx;
        json_object_foreach(json_object_get(d, "variants"), vk, vx) {
          if (vars.n)
            sb_str(&vars, ",");
          sb_str(&vars, vk);
        }
        json_object_set_new(o, "state", json_string(state));
        json_object_set_new(o, "defaultVariant",
                            json_is_string(dv) ? json_copy(dv) : json_null());
        json_t *va = json_array();
        json_object_foreach(json_object_get(d, "variants"), vk, vx)
            json_array_append_new(va, json_string(vk));
        json_object_set_new(o, "variants", va);
      } else
        json_object_set_new(o, "error", json_string("not a JSON object"));
      char *dd = cli_cmd_display((const uint8_t *)def, strlen(def));
      char *vv = cli_cmd_display((const uint8_t *)(vars.p ? vars.p : "-"),
                                 vars.p ? vars.n : 1);
      trow(t, (const char *const[]){key, state, dd, vv, mod});
      if (fmt == CLI_FMT_SIMPLE)
        printf("%s %s\n", key, state);
      free(dd);
      free(vv);
      free(vars.p);
    }
    rows++;
    json_array_append_new(arr, o);
    json_decref(d);
    free(key);
  }
  if (fmt == CLI_FMT_JSON || fmt == CLI_FMT_YAML) {
    json_t *o = json_object();
    json_object_set_new(o, "set", json_string(set));
    json_object_set_new(o, "revision", json_integer(v.rev));
    json_object_set(o, "flags", arr);
    if (fmt == CLI_FMT_JSON)
      print_json_line(o);
    else
      print_json_pretty(o);
  }
  if (fmt == CLI_FMT_TABLE && rows)
    cli_cmd_table_print(t);
  else
    free(t);
  json_decref(arr);
  free_set(&v);
  if (rows == 0) {
    fprintf(stderr, "keel: flag list: set \"%s\" has no flags\n", set);
    return CLI_EXIT_NOTFOUND;
  }
  return 0;
}

/* ---------------------------------------------------------------- */
/* get                                                                */

static int cmd_get(const char *set, const char *key) {
  char *path = flag_path(set, key);
  const struct keel_range_resp *r = read_key(path, "flag get");
  if (r->n_kvs == 0) {
    fprintf(stderr,
            "keel: flag get: no flag %s in set %s (revision %" PRId64 ")\n",
            key, set, r->header.revision);
    keel_resp_free(r);
    free(path);
    return CLI_EXIT_NOTFOUND;
  }
  const struct keel_kv *kv = &r->kvs[0];
  char err[200];
  json_t *d =
      json_parse((const char *)kv->value, kv->value_len, err, sizeof(err));
  if (fmt == CLI_FMT_SIMPLE || d == NULL) {
    /* The stored bytes as they are. */
    char *s = cli_cmd_display(kv->value, kv->value_len);
    puts(s);
    free(s);
    if (d == NULL)
      fprintf(stderr, "keel: note: %s: %s\n", path, err);
  } else if (fmt == CLI_FMT_JSON) {
    json_t *o = json_object();
    json_object_set_new(o, "key", json_string(key));
    json_object_set_new(o, "set", json_string(set));
    json_object_set_new(o, "mod_revision", json_integer(kv->mod_revision));
    json_object_set_new(o, "version", json_integer(kv->version));
    json_object_set(o, "definition", d);
    print_json_line(o);
  } else {
    char *t = json_text(d, 2);
    puts(t);
    free(t);
  }
  json_decref(d);
  keel_resp_free(r);
  free(path);
  return 0;
}

/* ---------------------------------------------------------------- */
/* set / enable / disable / delete                                    */

/* Checks every flag of the set against a new $evaluators document (NULL:
 * none); prints each broken flag and exits 1 when any is. */
static void check_flags_against(const struct setview *v, const char *ev,
                                size_t evlen, const char *what) {
  int bad = 0;
  char err[300];
  for (size_t i = 0; i < v->n; i++) {
    const struct entry *e = &v->e[i];
    if (e == v->ev || strchr(e->key, '/'))
      continue;
    if (flags_validate_flag(e->key, (const char *)e->val, e->len, ev, evlen,
                            err, sizeof(err)) != 0) {
      fprintf(stderr, "keel: %s: %s%s: %s\n", what, v->prefix, e->key, err);
      bad++;
    }
  }
  if (bad)
    cli_cmd_fatal(CLI_EXIT_FAIL,
                  "%s: %d flag%s of the set would break; nothing written. "
                  "Change %s first.",
                  what, bad, bad == 1 ? "" : "s",
                  bad == 1 ? "that flag" : "those flags");
}

/* A txn guarded by "no key under the prefix changed after rev" and
 * "$evaluators / KEY still has mod_revision mod". */
static void guard_prefix(struct keel_compare *c, const char *prefix,
                         uint8_t *end, int64_t rev) {
  memset(c, 0, sizeof(*c));
  c->key = (const uint8_t *)prefix;
  c->key_len = strlen(prefix);
  c->range_end = end;
  c->range_end_len = keel_prefix_end(c->key, c->key_len, end);
  c->target = KEEL_CMP_MOD;
  c->result = KEEL_CMP_LESS;
  c->number = rev + 1;
}

static void guard_mod(struct keel_compare *c, const char *path, int64_t mod) {
  memset(c, 0, sizeof(*c));
  c->key = (const uint8_t *)path;
  c->key_len = strlen(path);
  c->target = KEEL_CMP_MOD;
  c->result = KEEL_CMP_EQUAL;
  c->number = mod;
}

static int cmd_set(const char *set, const char *key, const char *arg) {
  size_t len;
  char *text;
  if (arg) {
    text = strdup(arg);
    len = strlen(arg);
    if (len > FLAGS_MAX_DEF_BYTES)
      cli_cmd_fatal(CLI_EXIT_FAIL,
                    "flag set: the definition is %zu bytes; the limit is %u",
                    len, FLAGS_MAX_DEF_BYTES);
  } else
    text = read_input(NULL, FLAGS_MAX_DEF_BYTES, &len, "flag set");
  char err[300];
  json_t *d = json_parse(text, len, err, sizeof(err));
  if (d == NULL)
    cli_cmd_fatal(CLI_EXIT_FAIL, "flag set: %s/%s: %s", set, key, err);
  char *compact = json_text(d, 0);
  json_decref(d);
  size_t clen = strlen(compact);
  char *path = flag_path(set, key);
  int is_ev = strcmp(key, EVALUATORS) == 0;
  struct keel_compare cmp;
  uint8_t end[MAX_SET_NAME + 16];
  struct setview v;
  memset(&v, 0, sizeof(v));
  char *evp = NULL; /* the compare's key: lives to the end */
  if (is_ev) {
    if (flags_validate_evaluators(compact, clen, err, sizeof(err)) != 0)
      cli_cmd_fatal(CLI_EXIT_FAIL, "flag set: %s: %s", path, err);
    read_set(&v, set, "flag set");
    check_flags_against(&v, compact, clen, "flag set");
    guard_prefix(&cmp, v.prefix, end, v.rev);
  } else {
    evp = flag_path(set, EVALUATORS);
    const struct keel_range_resp *er = read_key(evp, "flag set");
    const struct keel_kv *ev = er->n_kvs ? &er->kvs[0] : NULL;
    if (flags_validate_flag(key, compact, clen,
                            ev ? (const char *)ev->value : NULL,
                            ev ? ev->value_len : 0, err, sizeof(err)) != 0)
      cli_cmd_fatal(CLI_EXIT_FAIL, "flag set: %s: %s", path, err);
    guard_mod(&cmp, evp, ev ? ev->mod_revision : 0);
    keel_resp_free(er);
  }
  struct keel_op op;
  memset(&op, 0, sizeof(op));
  op.type = KEEL_OP_PUT;
  op.u.put.key = (const uint8_t *)path;
  op.u.put.key_len = strlen(path);
  op.u.put.value = (const uint8_t *)compact;
  op.u.put.value_len = clen;
  struct keel_txn_req t = {
      .compares = &cmp, .n_compares = 1, .success = &op, .n_success = 1};
  const struct keel_txn_resp *r = run_txn(&t, "flag set");
  int ok = r->succeeded;
  int64_t rev = r->header.revision;
  keel_resp_free(r);
  if (is_ev)
    free_set(&v);
  free(evp);
  free(compact);
  free(text);
  if (!ok)
    cli_cmd_fatal(CLI_EXIT_FAIL,
                  "flag set: %s changed while %s was being checked; nothing "
                  "was written. Run the command again.",
                  is_ev ? "the set" : "the set's $evaluators", path);
  if (fmt == CLI_FMT_JSON) {
    json_t *o = json_object();
    json_object_set_new(o, "key", json_string(path));
    json_object_set_new(o, "revision", json_integer(rev));
    print_json_line(o);
  } else
    printf("OK %s (revision %" PRId64 ")\n", path, rev);
  free(path);
  return 0;
}

static int cmd_state(const char *set, const char *key, const char *state) {
  const char *what =
      strcmp(state, "ENABLED") == 0 ? "flag enable" : "flag disable";
  char *path = flag_path(set, key);
  const struct keel_range_resp *r = read_key(path, what);
  if (r->n_kvs == 0) {
    fprintf(stderr, "keel: %s: no flag %s in set %s\n", what, key, set);
    keel_resp_free(r);
    free(path);
    return CLI_EXIT_NOTFOUND;
  }
  char err[200];
  json_t *d = json_parse((const char *)r->kvs[0].value, r->kvs[0].value_len,
                         err, sizeof(err));
  if (!json_is_object(d))
    cli_cmd_fatal(CLI_EXIT_FAIL,
                  "%s: %s does not hold a JSON object (%s); fix it with "
                  "'keel flag set'",
                  what, path, d ? "another JSON value" : err);
  json_t *cur = json_object_get(d, "state");
  if (json_is_string(cur) && strcmp(json_string_value(cur), state) == 0) {
    printf("%s is already %s (revision %" PRId64 ")\n", path, state,
           r->kvs[0].mod_revision);
    json_decref(d);
    keel_resp_free(r);
    free(path);
    return 0;
  }
  json_object_set_new(d, "state", json_string(state));
  char *text = json_text(d, 0);
  json_decref(d);
  struct keel_compare cmp;
  guard_mod(&cmp, path, r->kvs[0].mod_revision);
  struct keel_op op;
  memset(&op, 0, sizeof(op));
  op.type = KEEL_OP_PUT;
  op.u.put.key = (const uint8_t *)path;
  op.u.put.key_len = strlen(path);
  op.u.put.value = (const uint8_t *)text;
  op.u.put.value_len = strlen(text);
  struct keel_txn_req t = {
      .compares = &cmp, .n_compares = 1, .success = &op, .n_success = 1};
  const struct keel_txn_resp *tr = run_txn(&t, what);
  if (!tr->succeeded)
    cli_cmd_fatal(CLI_EXIT_FAIL,
                  "%s: %s changed since it was read (revision %" PRId64
                  "); nothing was written. Run the command again.",
                  what, path, r->kvs[0].mod_revision);
  printf("OK %s %s (revision %" PRId64 ")\n", path, state, tr->header.revision);
  keel_resp_free(tr);
  keel_resp_free(r);
  free(text);
  free(path);
  return 0;
}

static int cmd_delete(const char *set, const char *key) {
  char *path = flag_path(set, key);
  if (strcmp(key, EVALUATORS) == 0) {
    /* Only when no flag still refers to a rule. */
    struct setview v;
    read_set(&v, set, "flag delete");
    if (v.ev == NULL) {
      fprintf(stderr, "keel: flag delete: set %s has no %s\n", set, EVALUATORS);
      free_set(&v);
      free(path);
      return CLI_EXIT_NOTFOUND;
    }
    check_flags_against(&v, NULL, 0, "flag delete");
    struct keel_compare cmp;
    uint8_t end[MAX_SET_NAME + 16];
    guard_prefix(&cmp, v.prefix, end, v.rev);
    struct keel_op op;
    memset(&op, 0, sizeof(op));
    op.type = KEEL_OP_DELETE;
    op.u.del.key = (const uint8_t *)path;
    op.u.del.key_len = strlen(path);
    struct keel_txn_req t = {
        .compares = &cmp, .n_compares = 1, .success = &op, .n_success = 1};
    const struct keel_txn_resp *r = run_txn(&t, "flag delete");
    if (!r->succeeded)
      cli_cmd_fatal(CLI_EXIT_FAIL, "flag delete: the set changed meanwhile; "
                                   "nothing was deleted. Run it again.");
    printf("OK deleted %s (revision %" PRId64 ")\n", path, r->header.revision);
    keel_resp_free(r);
    free_set(&v);
    free(path);
    return 0;
  }
  struct keel_delete_req q;
  memset(&q, 0, sizeof(q));
  q.key = (const uint8_t *)path;
  q.key_len = strlen(path);
  const void *rv;
  cli_cmd_request("flag delete", 0, 1, start_delete, &q, &rv, NULL, 0);
  const struct keel_delete_resp *r = rv;
  int rc = 0;
  if (r->deleted == 0) {
    fprintf(stderr, "keel: flag delete: no flag %s in set %s\n", key, set);
    rc = CLI_EXIT_NOTFOUND;
  } else
    printf("OK deleted %s (revision %" PRId64 ")\n", path, r->header.revision);
  keel_resp_free(r);
  free(path);
  return rc;
}

/* ---------------------------------------------------------------- */
/* import / export                                                    */

enum change { C_SAME, C_ADD, C_CHANGE, C_DELETE };

struct item {
  const char *key; /* flag key or $evaluators */
  char *text;      /* new compact definition (NULL for delete) */
  enum change ch;
  const struct entry *old;
};

/* The top-level properties of two definitions that differ, "a, b". */
static void changed_props(const json_t *a, const json_t *b, struct sb *out) {
  const char *k;
  json_t *x;
  if (!json_is_object(a) || !json_is_object(b)) {
    sb_str(out, "whole value");
    return;
  }
  json_object_foreach((json_t *)b, k, x) {
    json_t *y = json_object_get(a, k);
    if (y == NULL || !json_equal(x, y)) {
      if (out->n)
        sb_str(out, ", ");
      sb_str(out, k);
    }
  }
  json_object_foreach((json_t *)a, k, x) {
    if (json_object_get(b, k) == NULL) {
      if (out->n)
        sb_str(out, ", ");
      sb_str(out, k);
      sb_str(out, " (removed)");
    }
  }
  if (out->n == 0)
    sb_str(out, "formatting only");
}

static int cmd_import(const char *set, const char *file) {
  int dry = cli_cmd_args()->flag[F_DRY_RUN] != NULL;
  size_t len;
  char *text = read_input(file, FLAGS_MAX_FILE_BYTES, &len, "flag import");
  char err[400];
  if (flags_validate_file(text, len, err, sizeof(err)) != 0)
    cli_cmd_fatal(CLI_EXIT_FAIL, "flag import: %s: %s", file, err);
  json_t *doc = json_parse(text, len, err, sizeof(err));
  if (doc == NULL) /* validated above; only memory can fail */
    cli_cmd_fatal(CLI_EXIT_FAIL, "flag import: %s: %s", file, err);
  json_t *flags = json_object_get(doc, "flags");
  json_t *evs = json_object_get(doc, EVALUATORS);
  if (json_object_get(doc, "metadata"))
    fprintf(stderr,
            "keel: note: flag import: the file's top-level metadata is not "
            "stored (keel keeps metadata per flag)\n");
  const char *k;
  json_t *x;
  json_object_foreach(flags, k, x) {
    if (strlen(k) == 0 || strlen(k) > FLAGS_MAX_KEY_BYTES || strchr(k, '/') ||
        strcmp(k, EVALUATORS) == 0)
      cli_cmd_fatal(CLI_EXIT_FAIL,
                    "flag import: %s: flags.%s: a flag key is 1..%d bytes "
                    "without '/' and not %s",
                    file, k, FLAGS_MAX_KEY_BYTES, EVALUATORS);
  }
  struct setview v;
  read_set(&v, set, "flag import");
  size_t cap = json_object_size(flags) + v.n + 2;
  struct item *it = calloc(cap, sizeof(*it));
  size_t ni = 0;
  /* Wanted: $evaluators (when the file has a non-empty one), each flag. */
  json_t *want_ev = json_is_object(evs) && json_object_size(evs) ? evs : NULL;
  size_t nwant = json_object_size(flags) + (want_ev ? 1 : 0);
  for (size_t w = 0; w < nwant; w++) {
    const char *key;
    json_t *val;
    if (want_ev && w == 0) {
      key = EVALUATORS;
      val = want_ev;
    } else {
      /* jansson iterates objects in insertion order; find the w-th. */
      size_t idx = w - (want_ev ? 1 : 0), c = 0;
      key = NULL;
      val = NULL;
      json_object_foreach(flags, k, x) {
        if (c++ == idx) {
          key = k;
          val = x;
          break;
        }
      }
    }
    struct item *i = &it[ni++];
    i->key = key;
    i->text = json_text(val, 0);
    i->old = find_entry(&v, key);
    if (i->old == NULL)
      i->ch = C_ADD;
    else {
      json_t *o =
          json_parse((const char *)i->old->val, i->old->len, err, sizeof(err));
      i->ch = (o && json_equal(o, val)) ? C_SAME : C_CHANGE;
      json_decref(o);
    }
  }
  for (size_t j = 0; j < v.n; j++) {
    const struct entry *e = &v.e[j];
    int wanted = strcmp(e->key, EVALUATORS) == 0
                     ? want_ev != NULL
                     : json_object_get(flags, e->key) != NULL;
    if (!wanted) {
      struct item *i = &it[ni++];
      i->key = e->key;
      i->old = e;
      i->ch = C_DELETE;
    }
  }
  size_t nadd = 0, nchg = 0, ndel = 0;
  for (size_t j = 0; j < ni; j++) {
    nadd += it[j].ch == C_ADD;
    nchg += it[j].ch == C_CHANGE;
    ndel += it[j].ch == C_DELETE;
  }
  /* The diff (always shown on a dry run; otherwise unless -w json). */
  if (dry || fmt != CLI_FMT_JSON)
    for (size_t j = 0; j < ni; j++) {
      struct item *i = &it[j];
      if (i->ch == C_SAME)
        continue;
      char *dk = cli_cmd_display((const uint8_t *)i->key, strlen(i->key));
      if (i->ch == C_CHANGE) {
        struct sb props = {0};
        json_t *o = json_parse((const char *)i->old->val, i->old->len, err,
                               sizeof(err));
        json_t *n = json_parse(i->text, strlen(i->text), err, sizeof(err));
        changed_props(o, n, &props);
        printf("~ %s (%s)\n", dk, props.p);
        free(props.p);
        json_decref(o);
        json_decref(n);
      } else
        printf("%c %s\n", i->ch == C_ADD ? '+' : '-', dk);
      free(dk);
    }
  int rc = 0;
  int64_t rev = v.rev;
  const char *verdict;
  if (nadd + nchg + ndel == 0)
    verdict = "up to date";
  else if (dry)
    verdict = "dry run, nothing written";
  else {
    /* One txn: guarded by every key read and by the whole prefix. */
    struct keel_compare *cmp = calloc(v.n + 1, sizeof(*cmp));
    struct keel_op *ops = calloc(ni, sizeof(*ops));
    char **paths = calloc(ni, sizeof(char *));
    uint8_t end[MAX_SET_NAME + 16];
    char **cpaths = calloc(v.n + 1, sizeof(char *));
    guard_prefix(&cmp[0], v.prefix, end, v.rev);
    for (size_t j = 0; j < v.n; j++) {
      cpaths[j] = flag_path(set, v.e[j].key);
      guard_mod(&cmp[j + 1], cpaths[j], v.e[j].mod);
    }
    size_t nops = 0;
    for (size_t j = 0; j < ni; j++) {
      struct item *i = &it[j];
      if (i->ch == C_SAME)
        continue;
      paths[j] = flag_path(set, i->key);
      struct keel_op *op = &ops[nops++];
      if (i->ch == C_DELETE) {
        op->type = KEEL_OP_DELETE;
        op->u.del.key = (const uint8_t *)paths[j];
        op->u.del.key_len = strlen(paths[j]);
      } else {
        op->type = KEEL_OP_PUT;
        op->u.put.key = (const uint8_t *)paths[j];
        op->u.put.key_len = strlen(paths[j]);
        op->u.put.value = (const uint8_t *)i->text;
        op->u.put.value_len = strlen(i->text);
      }
    }
    struct keel_txn_req t = {.compares = cmp,
                             .n_compares = v.n + 1,
                             .success = ops,
                             .n_success = nops};
    /* Test hook (tests/e2e/cli/test_cli_flags.sh): wait for one line on
     * stdin between the read and the guarded write, so a test can change
     * the set in between deterministically. Unused otherwise. */
    if (getenv("KEEL_TEST_FLAG_IMPORT_PAUSE")) {
      fprintf(stderr, "flag import: paused (test hook)\n");
      char tmp[8];
      if (fgets(tmp, sizeof(tmp), stdin) == NULL)
        tmp[0] = 0;
    }
    const struct keel_txn_resp *r = run_txn(&t, "flag import");
    if (!r->succeeded) {
      fprintf(stderr,
              "keel: flag import: set %s changed after it was read (revision "
              "%" PRId64 "); nothing was written. Run the import again.\n",
              set, v.rev);
      rc = CLI_EXIT_FAIL;
      verdict = "conflict, nothing written";
    } else {
      rev = r->header.revision;
      verdict = "imported";
    }
    keel_resp_free(r);
    for (size_t j = 0; j < ni; j++)
      free(paths[j]);
    for (size_t j = 0; j < v.n; j++)
      free(cpaths[j]);
    free(paths);
    free(cpaths);
    free(ops);
    free(cmp);
  }
  if (fmt == CLI_FMT_JSON || fmt == CLI_FMT_YAML) {
    json_t *o = json_object();
    json_object_set_new(o, "set", json_string(set));
    json_object_set_new(o, "result", json_string(verdict));
    json_object_set_new(o, "added", json_integer((json_int_t)nadd));
    json_object_set_new(o, "changed", json_integer((json_int_t)nchg));
    json_object_set_new(o, "deleted", json_integer((json_int_t)ndel));
    json_object_set_new(o, "revision", json_integer(rev));
    print_json_line(o);
  } else
    printf("%s: %s: %zu added, %zu changed, %zu deleted (revision %" PRId64
           ")\n",
           set, verdict, nadd, nchg, ndel, rev);
  for (size_t j = 0; j < ni; j++)
    free(it[j].text);
  free(it);
  free_set(&v);
  json_decref(doc);
  free(text);
  return rc;
}

static int cmd_export(const char *set, const char *file) {
  struct setview v;
  read_set(&v, set, "flag export");
  if (v.n == 0) {
    fprintf(stderr, "keel: flag export: set \"%s\" has no flags\n", set);
    free_set(&v);
    return CLI_EXIT_NOTFOUND;
  }
  json_t *doc = json_object();
  json_object_set_new(doc, "$schema", json_string(SCHEMA_URL));
  json_t *flags = json_object();
  json_object_set_new(doc, "flags", flags);
  char err[200];
  for (size_t i = 0; i < v.n; i++) {
    const struct entry *e = &v.e[i];
    json_t *d = json_parse((const char *)e->val, e->len, err, sizeof(err));
    if (d == NULL)
      cli_cmd_fatal(CLI_EXIT_FAIL,
                    "flag export: %s%s: %s; fix or delete it first", v.prefix,
                    e->key, err);
    if (strchr(e->key, '/')) {
      json_decref(d);
      continue;
    }
    if (e == v.ev)
      json_object_set_new(doc, EVALUATORS, d);
    else
      json_object_set_new(flags, e->key, d);
  }
  char *t = json_text(doc, 2);
  json_decref(doc);
  int rc = 0;
  if (file && strcmp(file, "-") != 0) {
    /* Written whole or not at all: a temporary file renamed into place. */
    char *tmp;
    if (asprintf(&tmp, "%s.part", file) < 0)
      cli_cmd_fatal(CLI_EXIT_FAIL, "out of memory");
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
      cli_cmd_fatal(CLI_EXIT_FAIL, "flag export: cannot create %s: %s", tmp,
                    strerror(errno));
    int bad = fputs(t, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0 ||
              fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, file) != 0) {
      unlink(tmp);
      cli_cmd_fatal(CLI_EXIT_FAIL, "flag export: writing %s failed: %s", file,
                    strerror(errno));
    }
    fprintf(stderr,
            "keel: exported %zu key%s of set %s at revision %" PRId64
            " to %s\n",
            v.n, v.n == 1 ? "" : "s", set, v.rev, file);
    free(tmp);
  } else
    puts(t);
  free(t);
  free_set(&v);
  return rc;
}

/* ---------------------------------------------------------------- */
/* eval / watch                                                       */

static enum flags_type eval_type(void) {
  const char *t = cli_cmd_args()->flag[F_TYPE];
  if (t == NULL)
    return FLAGS_TYPE_ANY;
  static const struct {
    const char *name;
    enum flags_type t;
  } types[] = {{"boolean", FLAGS_TYPE_BOOLEAN}, {"bool", FLAGS_TYPE_BOOLEAN},
               {"string", FLAGS_TYPE_STRING},   {"number", FLAGS_TYPE_NUMBER},
               {"object", FLAGS_TYPE_OBJECT},   {"any", FLAGS_TYPE_ANY}};
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    if (strcmp(t, types[i].name) == 0)
      return types[i].t;
  cli_cmd_usage_error("--type: expected boolean, string, number, object or "
                      "any, got \"%s\"",
                      t);
}

/* The evaluation context: --context JSON (an object), then each --ctx
 * k=v (a string) or k:=JSON (any JSON value) set on top, in order. */
static json_t *eval_context(void) {
  const struct cli_args *a = cli_cmd_args();
  char err[200];
  json_t *ctx = NULL;
  const char *c = a->flag[F_CONTEXT];
  if (c) {
    ctx = json_parse(c, strlen(c), err, sizeof(err));
    if (!json_is_object(ctx)) {
      if (ctx)
        snprintf(err, sizeof(err), "got another JSON value");
      json_decref(ctx);
      cli_cmd_usage_error("--context: expected a JSON object, %s", err);
    }
  } else
    ctx = json_object();
  for (int i = 0; i < a->nocc; i++) {
    if (a->occ[i].flag != F_CTX)
      continue;
    const char *s = a->occ[i].value;
    const char *eq = strchr(s, '=');
    if (eq == NULL || eq == s || (eq == s + 1 && s[0] == ':')) {
      json_decref(ctx);
      cli_cmd_usage_error("--ctx: expected key=value or key:=JSON, got \"%s\"",
                          s);
    }
    json_t *v;
    size_t kl = (size_t)(eq - s);
    if (eq[-1] == ':') {
      kl--;
      v = json_parse(eq + 1, strlen(eq + 1), err, sizeof(err));
    } else {
      v = json_string(eq + 1);
      snprintf(err, sizeof(err), "not valid UTF-8");
    }
    if (v == NULL) {
      json_decref(ctx);
      cli_cmd_usage_error("--ctx %s: the value %s", s, err);
    }
    char *key = strndup(s, kl);
    json_object_set_new(ctx, key, v);
    free(key);
  }
  return ctx;
}

static char *value_text(const json_t *v) {
  if (v == NULL)
    return strdup("-");
  return json_text(v, 0);
}

/* One evaluation as a row / line / JSON object. */
static json_t *result_json(const char *key, const struct flags_result *r) {
  json_t *o = json_object();
  json_object_set_new(o, "key", json_string(key));
  if (r->value) {
    json_object_set_new(o, "value", json_deep_copy(r->value));
    json_object_set_new(o, "variant", json_string(r->variant));
  }
  json_object_set_new(o, "reason", json_string(flags_reason_name(r->reason)));
  if (r->reason == FLAGS_REASON_ERROR) {
    json_object_set_new(o, "errorCode",
                        json_string(flags_error_code_name(r->error_code)));
    json_object_set_new(o, "errorDetails", json_string(r->error_message));
  }
  if (r->metadata && json_object_size(r->metadata))
    json_object_set_new(o, "metadata", json_deep_copy(r->metadata));
  return o;
}

static int cmd_eval(const char *set, const char *key) {
  enum flags_type type = eval_type();
  json_t *ctx = eval_context();
  struct setview v;
  read_set(&v, set, "flag eval");
  struct flags_set *fs = build_set(&v, 0);
  struct flags_result r;
  flags_evaluate(fs, key, type, ctx, (int64_t)time(NULL), &r);
  if (fmt == CLI_FMT_JSON || fmt == CLI_FMT_YAML) {
    json_t *o = result_json(key, &r);
    json_object_set_new(o, "revision", json_integer(v.rev));
    if (fmt == CLI_FMT_JSON)
      print_json_line(o);
    else
      print_json_pretty(o);
  } else if (fmt == CLI_FMT_SIMPLE) {
    char *val = value_text(r.value);
    printf("%s\n%s\n%s\n", val, r.variant ? r.variant : "-",
           flags_reason_name(r.reason));
    free(val);
  } else {
    char *val = value_text(r.value);
    const char *ec = r.reason == FLAGS_REASON_ERROR
                         ? flags_error_code_name(r.error_code)
                         : "-";
    struct cli_cmd_table *t = cli_cmd_table_new(
        5, (const char *const[]){"KEY", "VALUE", "VARIANT", "REASON", "ERROR"});
    char *dk = cli_cmd_display((const uint8_t *)key, strlen(key));
    trow(t, (const char *const[]){dk, val, r.variant ? r.variant : "-",
                                  flags_reason_name(r.reason), ec});
    cli_cmd_table_print(t);
    free(dk);
    free(val);
  }
  int rc = 0;
  if (r.reason == FLAGS_REASON_ERROR) {
    fprintf(stderr, "keel: flag eval: %s/%s: %s%s%s\n", set, key,
            flags_error_code_name(r.error_code), r.error_message[0] ? ": " : "",
            r.error_message);
    rc = r.error_code == FLAGS_ERROR_FLAG_NOT_FOUND ? CLI_EXIT_NOTFOUND
                                                    : CLI_EXIT_FAIL;
  }
  flags_set_unref(fs);
  free_set(&v);
  json_decref(ctx);
  return rc;
}

/* watch: a libkeel flag cache on the command's client; each change batch
 * prints one line per changed key with its new evaluation. */
static struct {
  keel_flag_cache *cache;
  json_t *ctx;
  enum flags_type type;
  const char *set;
  int first_done, closed, stop, last_err;
  uv_signal_t sig[2];
  uv_timer_t tick;
} W;

static void watch_line(int64_t rev, const char *key, const char *event) {
  struct keel_flag_eval ev;
  keel_flag_cache_evaluate(W.cache, key, W.type, W.ctx, (int64_t)time(NULL),
                           &ev);
  const struct flags_result *r = &ev.r;
  int gone = r->reason == FLAGS_REASON_ERROR &&
             r->error_code == FLAGS_ERROR_FLAG_NOT_FOUND;
  if (gone && strcmp(event, "initial") != 0)
    event = "deleted";
  if (fmt == CLI_FMT_JSON || fmt == CLI_FMT_YAML) {
    json_t *o = result_json(key, r);
    json_object_set_new(o, "revision", json_integer(rev));
    json_object_set_new(o, "event", json_string(event));
    print_json_line(o);
  } else {
    char *dk = cli_cmd_display((const uint8_t *)key, strlen(key));
    if (strcmp(event, "deleted") == 0)
      printf("%" PRId64 " %s deleted\n", rev, dk);
    else {
      char *val = value_text(r->value);
      printf("%" PRId64 " %s %s value=%s variant=%s reason=%s", rev, dk, event,
             val, r->variant ? r->variant : "-", flags_reason_name(r->reason));
      if (r->reason == FLAGS_REASON_ERROR)
        printf(" error=%s", flags_error_code_name(r->error_code));
      putchar('\n');
      free(val);
    }
    free(dk);
  }
  keel_flag_eval_release(&ev);
}

static void on_flags_change(keel_flag_cache *c, const char *const *keys,
                            size_t n, void *ud) {
  (void)ud;
  int64_t rev = keel_flag_cache_revision(c);
  const char *event = W.first_done ? "changed" : "initial";
  if (!W.first_done && fmt != CLI_FMT_JSON && fmt != CLI_FMT_YAML)
    printf("# set %s at revision %" PRId64 ": %zu key%s; watching for "
           "changes (Ctrl-C to stop)\n",
           W.set, rev, n, n == 1 ? "" : "s");
  for (size_t i = 0; i < n; i++) {
    if (strcmp(keys[i], EVALUATORS) == 0) {
      if (fmt == CLI_FMT_JSON || fmt == CLI_FMT_YAML) {
        json_t *o = json_object();
        json_object_set_new(o, "key", json_string(EVALUATORS));
        json_object_set_new(o, "revision", json_integer(rev));
        json_object_set_new(o, "event", json_string(event));
        print_json_line(o);
      } else
        printf("%" PRId64 " %s %s\n", rev, EVALUATORS, event);
      continue;
    }
    watch_line(rev, keys[i], event);
  }
  W.first_done = 1;
  fflush(stdout);
}

static void on_cache_closed(void *ud) {
  (void)ud;
  W.closed = 1;
}

/* Once a second: a read the cache keeps retrying (no endpoint, no
 * leader ...) is reported once, and again when the error changes, so a
 * watch that cannot start does not stay silent. */
static void on_watch_tick(uv_timer_t *t) {
  (void)t;
  struct keel_flag_cache_stats st;
  keel_flag_cache_stats(W.cache, &st);
  int failing = keel_flag_cache_revision(W.cache) == 0 && st.last_error;
  if (failing && st.last_error != W.last_err)
    fprintf(stderr,
            "keel: flag watch: cannot read set %s yet (%s); retrying. "
            "Check the endpoints (%s).\n",
            W.set,
            st.last_error_message[0] ? st.last_error_message
                                     : keel_strerror(st.last_error),
            cli_cmd_endpoints());
  W.last_err = failing ? st.last_error : 0;
}

static void on_watch_signal(uv_signal_t *h, int sig) {
  (void)h;
  (void)sig;
  W.stop = 1;
}

static int cmd_watch(const char *set) {
  W.type = eval_type();
  W.ctx = eval_context();
  W.set = set;
  keel_sync *s = cli_cmd_client();
  uv_loop_t *loop = keel_sync_loop(s);
  /* The cache logs (logfmt) each retried read and each skipped
   * definition; the watch reports them its own way (on_watch_tick), so
   * its log lines show only with --debug. */
  if (!cli_cmd_args()->flag[F_DEBUG])
    keel_log_set_level(KEEL_LOG_ERROR);
  int sigs[2] = {SIGINT, SIGTERM};
  for (int i = 0; i < 2; i++) {
    uv_signal_init(loop, &W.sig[i]);
    uv_signal_start(&W.sig[i], on_watch_signal, sigs[i]);
  }
  int rc = keel_flag_cache_open(keel_sync_client(s), set, NULL, on_flags_change,
                                NULL, &W.cache);
  if (rc != 0)
    cli_cmd_fatal(CLI_EXIT_FAIL, "flag watch: %s", keel_strerror(rc));
  uv_timer_init(loop, &W.tick);
  uv_timer_start(&W.tick, on_watch_tick, 1000, 1000);
  while (!W.stop)
    uv_run(loop, UV_RUN_ONCE);
  keel_flag_cache_close(W.cache, on_cache_closed, NULL);
  for (int i = 0; i < 2; i++)
    uv_close((uv_handle_t *)&W.sig[i], NULL);
  uv_close((uv_handle_t *)&W.tick, NULL);
  while (!W.closed)
    uv_run(loop, UV_RUN_ONCE);
  uv_run(loop, UV_RUN_NOWAIT);
  json_decref(W.ctx);
  fflush(stdout);
  return 0;
}

/* ---------------------------------------------------------------- */

int cli_cmd_flag(const char **p, int n) {
  const char *sub = p[-1];
  fmt = cli_cmd_format();
  if (n >= 1)
    check_set_name(p[0]);
  if (strcmp(sub, "list") == 0)
    return n == 0 ? list_sets() : cmd_list(p[0]);
  if (strcmp(sub, "export") == 0)
    return cmd_export(p[0], n > 1 ? p[1] : NULL);
  if (strcmp(sub, "watch") == 0)
    return cmd_watch(p[0]);
  if (strcmp(sub, "import") == 0)
    return cmd_import(p[0], p[1]);
  int allow_ev = strcmp(sub, "set") == 0 || strcmp(sub, "delete") == 0 ||
                 strcmp(sub, "get") == 0;
  check_flag_key(p[1], allow_ev);
  if (strcmp(sub, "get") == 0)
    return cmd_get(p[0], p[1]);
  if (strcmp(sub, "set") == 0)
    return cmd_set(p[0], p[1], n > 2 ? p[2] : NULL);
  if (strcmp(sub, "enable") == 0)
    return cmd_state(p[0], p[1], "ENABLED");
  if (strcmp(sub, "disable") == 0)
    return cmd_state(p[0], p[1], "DISABLED");
  if (strcmp(sub, "delete") == 0)
    return cmd_delete(p[0], p[1]);
  if (strcmp(sub, "eval") == 0)
    return cmd_eval(p[0], p[1]);
  cli_cmd_usage_error("unknown subcommand \"flag %s\"", sub);
}

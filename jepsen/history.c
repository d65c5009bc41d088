/* history.c — reads Jepsen EDN histories into jepsen_op arrays (history.h).
 *
 * One pass, line by line, bounded: a line is read into a fixed buffer of
 * max_line bytes (longer lines are refused, never truncated), parsed by the
 * EDN reader into a per-line arena, and turned into at most one op. Invokes
 * wait in a per-process table until their completion arrives; what is left
 * at the end becomes :info (it may have happened).
 */
#include "history.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "edn.h"
#include "keel_error.h"

void jepsen_limits_default(struct jepsen_limits *l) {
  l->max_line = 1 << 20;
  l->max_ops = 16u << 20;
  l->max_value_bytes = (size_t)1 << 30;
}

int jepsen_model_parse(const char *name, enum jepsen_model *out) {
  if (strcmp(name, "register") == 0)
    *out = JEPSEN_MODEL_REGISTER;
  else if (strcmp(name, "set") == 0)
    *out = JEPSEN_MODEL_SET;
  else if (strcmp(name, "kv") == 0)
    *out = JEPSEN_MODEL_KV;
  else
    return -EINVAL;
  return 0;
}

const char *jepsen_f_name(enum jepsen_f f) {
  static const char *names[] = {"read", "write", "cas",   "add",
                                "get",  "put",   "append"};
  return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "?";
}

/* An invoke waiting for its completion. */
struct pending {
  int64_t process;
  uint32_t line;
  uint32_t key;
  uint32_t a, b;
  uint8_t f;
  bool used;
};

enum key_form { FORM_UNDECIDED, FORM_PLAIN, FORM_TUPLE, FORM_FIELD };

struct loader {
  struct jepsen_history *h;
  const struct jepsen_limits *lim;
  const char *name;
  char *err;
  size_t errlen;
  uint32_t line;
  struct jepsen_edn_arena arena;
  struct pending *pend; /* open addressing on process */
  size_t npend_slots, npend;
  enum key_form form;
  uint32_t form_line;
  char *pbuf; /* printing scratch */
  size_t pbuf_cap;
};

__attribute__((format(printf, 4, 5))) static int
lfail(struct loader *ld, int code, size_t column, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (column > 0)
    snprintf(ld->err, ld->errlen, "%s:%" PRIu32 ":%zu: %s", ld->name, ld->line,
             column, msg);
  else
    snprintf(ld->err, ld->errlen, "%s:%" PRIu32 ": %s", ld->name, ld->line,
             msg);
  return code;
}

/* ---- process table ---------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

static struct pending *pend_find(struct loader *ld, int64_t process,
                                 bool create) {
  if (create && (ld->npend + 1) * 2 > ld->npend_slots) {
    size_t n = ld->npend_slots ? ld->npend_slots * 2 : 64;
    struct pending *t = calloc(n, sizeof(*t));
    if (!t)
      return NULL;
    for (size_t i = 0; i < ld->npend_slots; i++) {
      if (!ld->pend[i].used)
        continue;
      size_t j = mix64((uint64_t)ld->pend[i].process) & (n - 1);
      while (t[j].used)
        j = (j + 1) & (n - 1);
      t[j] = ld->pend[i];
    }
    free(ld->pend);
    ld->pend = t;
    ld->npend_slots = n;
  }
  if (ld->npend_slots == 0)
    return NULL;
  size_t j = mix64((uint64_t)process) & (ld->npend_slots - 1);
  while (ld->pend[j].used) {
    if (ld->pend[j].process == process)
      return &ld->pend[j];
    j = (j + 1) & (ld->npend_slots - 1);
  }
  if (!create)
    return NULL;
  ld->pend[j].process = process;
  ld->pend[j].used = true;
  ld->npend++;
  return &ld->pend[j];
}

/* Removes p keeping the probe chains intact (backward-shift deletion). */
static void pend_remove(struct loader *ld, struct pending *p) {
  size_t mask = ld->npend_slots - 1;
  size_t i = (size_t)(p - ld->pend);
  ld->pend[i].used = false;
  ld->npend--;
  for (size_t j = (i + 1) & mask; ld->pend[j].used; j = (j + 1) & mask) {
    size_t home = mix64((uint64_t)ld->pend[j].process) & mask;
    /* Move j back to i when i lies cyclically within [home, j). */
    bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
    if (movable) {
      ld->pend[i] = ld->pend[j];
      ld->pend[j].used = false;
      i = j;
    }
  }
}

/* ---- values ----------------------------------------------------------- */

static bool is_scalar(const struct jepsen_edn *v) {
  switch (v->type) {
  case JEPSEN_EDN_NIL:
  case JEPSEN_EDN_BOOL:
  case JEPSEN_EDN_INT:
  case JEPSEN_EDN_STRING:
  case JEPSEN_EDN_KEYWORD:
  case JEPSEN_EDN_SYMBOL:
    return true;
  default:
    return false;
  }
}

static int intern_edn(struct loader *ld, struct jepsen_strtab *t,
                      const struct jepsen_edn *v, uint32_t *id) {
  size_t need = jepsen_edn_print(v, ld->pbuf, ld->pbuf_cap);
  if (need + 1 > ld->pbuf_cap) {
    char *b = realloc(ld->pbuf, need + 1);
    if (!b)
      return -ENOMEM;
    ld->pbuf = b;
    ld->pbuf_cap = need + 1;
    jepsen_edn_print(v, ld->pbuf, ld->pbuf_cap);
  }
  int rc = jepsen_strtab_intern(t, ld->pbuf, need, id);
  if (rc == KEEL_ELIMIT)
    return lfail(ld, rc, 0, "more than %zu bytes of distinct values",
                 ld->lim->max_value_bytes);
  return rc;
}

/* A register value or set element: a scalar, interned as its EDN text. */
static int scalar_value(struct loader *ld, const struct jepsen_edn *v,
                        const char *what, uint32_t *id) {
  if (!is_scalar(v))
    return lfail(ld, KEEL_EPARSE, 0,
                 "%s must be nil, a number, string, keyword or boolean", what);
  return intern_edn(ld, &ld->h->values, v, id);
}

static int kv_string(struct loader *ld, const struct jepsen_edn *v, bool nil_ok,
                     const char *what, uint32_t *id) {
  if (v->type == JEPSEN_EDN_NIL && nil_ok) {
    *id = JEPSEN_VALUE_NIL;
    return 0;
  }
  if (v->type != JEPSEN_EDN_STRING)
    return lfail(ld, KEEL_EPARSE, 0, "%s must be a string", what);
  int rc = jepsen_strtab_intern(&ld->h->values, v->u.s, v->count, id);
  if (rc == KEEL_ELIMIT)
    return lfail(ld, rc, 0, "more than %zu bytes of distinct values",
                 ld->lim->max_value_bytes);
  return rc;
}

static const struct jepsen_edn NIL_VALUE = {.type = JEPSEN_EDN_NIL};

/* Splits an op's :value into key and inner value, by the history's form:
 * a :key field, the [key value] tuple, or neither. The first op decides the
 * form; every later op must use the same one. */
static int split_key(struct loader *ld, const struct jepsen_edn *map,
                     const struct jepsen_edn *value, bool tuple_shape,
                     uint32_t *key, const struct jepsen_edn **inner) {
  const struct jepsen_edn *kfield = jepsen_edn_get(map, "key");
  enum key_form form = kfield        ? FORM_FIELD
                       : tuple_shape ? FORM_TUPLE
                                     : FORM_PLAIN;
  if (ld->h->model == JEPSEN_MODEL_KV && form != FORM_FIELD)
    return lfail(ld, KEEL_EPARSE, 0, "--model kv needs a :key on every op");
  if (ld->form == FORM_UNDECIDED) {
    ld->form = form;
    ld->form_line = ld->line;
  } else if (ld->form != form) {
    static const char *names[] = {"", "plain values", "[key value] tuples",
                                  ":key fields"};
    return lfail(ld, KEEL_EPARSE, 0,
                 "this op uses %s but line %" PRIu32 " used %s; a history "
                 "must use one form",
                 names[form], ld->form_line, names[ld->form]);
  }
  const struct jepsen_edn *k = &NIL_VALUE;
  *inner = value;
  if (form == FORM_FIELD) {
    k = kfield;
  } else if (form == FORM_TUPLE) {
    k = &value->u.items[0];
    *inner = &value->u.items[1];
  }
  if (!is_scalar(k))
    return lfail(ld, KEEL_EPARSE, 0, "a key must be a scalar");
  return intern_edn(ld, &ld->h->keys, k, key);
}

static bool is_pair(const struct jepsen_edn *v) {
  return v->type == JEPSEN_EDN_VECTOR && v->count == 2;
}

static int parse_f(struct loader *ld, const struct jepsen_edn *f,
                   enum jepsen_f *out) {
  static const struct {
    enum jepsen_model model;
    const char *name;
    enum jepsen_f f;
  } table[] = {
      {JEPSEN_MODEL_REGISTER, "read", JEPSEN_F_READ},
      {JEPSEN_MODEL_REGISTER, "write", JEPSEN_F_WRITE},
      {JEPSEN_MODEL_REGISTER, "cas", JEPSEN_F_CAS},
      {JEPSEN_MODEL_SET, "add", JEPSEN_F_ADD},
      {JEPSEN_MODEL_SET, "read", JEPSEN_F_READ},
      {JEPSEN_MODEL_KV, "get", JEPSEN_F_GET},
      {JEPSEN_MODEL_KV, "put", JEPSEN_F_PUT},
      {JEPSEN_MODEL_KV, "append", JEPSEN_F_APPEND},
  };
  static const char *allowed[] = {":read, :write or :cas", ":add or :read",
                                  ":get, :put or :append"};
  if (!f || f->type != JEPSEN_EDN_KEYWORD)
    return lfail(ld, KEEL_EPARSE, 0, "missing or non-keyword :f");
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    if (table[i].model == ld->h->model && strcmp(table[i].name, f->u.s) == 0) {
      *out = table[i].f;
      return 0;
    }
  }
  return lfail(ld, KEEL_EPARSE, 0, ":f :%s is not an op of this model (%s)",
               f->u.s, allowed[ld->h->model]);
}

/* Decodes an invoke's :value into key and arguments. */
static int decode_invoke(struct loader *ld, const struct jepsen_edn *map,
                         enum jepsen_f f, struct pending *p) {
  const struct jepsen_edn *value = jepsen_edn_get(map, "value");
  if (!value)
    value = &NIL_VALUE;
  bool tuple = false;
  if (f == JEPSEN_F_CAS)
    tuple = is_pair(value) && is_pair(&value->u.items[1]);
  else
    tuple = is_pair(value);
  const struct jepsen_edn *v = value;
  int rc = split_key(ld, map, value, tuple, &p->key, &v);
  if (rc != 0)
    return rc;
  p->a = p->b = JEPSEN_VALUE_NIL;
  switch (f) {
  case JEPSEN_F_READ:
  case JEPSEN_F_GET:
    return 0; /* the argument of a read means nothing */
  case JEPSEN_F_WRITE:
    return scalar_value(ld, v, "a :write value", &p->a);
  case JEPSEN_F_ADD:
    return scalar_value(ld, v, "an :add element", &p->a);
  case JEPSEN_F_CAS:
    if (!is_pair(v))
      return lfail(ld, KEEL_EPARSE, 0, "a :cas value must be [from to]");
    rc = scalar_value(ld, &v->u.items[0], "a :cas value", &p->a);
    if (rc == 0)
      rc = scalar_value(ld, &v->u.items[1], "a :cas value", &p->b);
    return rc;
  case JEPSEN_F_PUT:
  case JEPSEN_F_APPEND:
    return kv_string(ld, v, false, "a :put or :append value", &p->a);
  }
  return 0;
}

static int push_op(struct loader *ld, const struct jepsen_op *op) {
  struct jepsen_history *h = ld->h;
  if (h->n_ops == h->cap_ops) {
    if (h->n_ops >= ld->lim->max_ops)
      return lfail(ld, KEEL_ELIMIT, 0, "more than %zu operations",
                   ld->lim->max_ops);
    size_t cap = h->cap_ops ? h->cap_ops * 2 : 1024;
    struct jepsen_op *ops = realloc(h->ops, cap * sizeof(*ops));
    if (!ops)
      return -ENOMEM;
    h->ops = ops;
    h->cap_ops = cap;
  }
  h->ops[h->n_ops++] = *op;
  return 0;
}

static int push_elem(struct loader *ld, uint32_t id) {
  struct jepsen_history *h = ld->h;
  if (h->n_elems == h->cap_elems) {
    if (h->n_elems >= UINT32_MAX / 2)
      return lfail(ld, KEEL_ELIMIT, 0, "too many set elements in reads");
    size_t cap = h->cap_elems ? h->cap_elems * 2 : 1024;
    uint32_t *e = realloc(h->elems, cap * sizeof(*e));
    if (!e)
      return -ENOMEM;
    h->elems = e;
    h->cap_elems = cap;
  }
  h->elems[h->n_elems++] = id;
  return 0;
}

/* Decodes an :ok read's result into op. */
static int decode_read_result(struct loader *ld, const struct jepsen_edn *map,
                              struct jepsen_op *op) {
  const struct jepsen_edn *value = jepsen_edn_get(map, "value");
  if (!value)
    value = &NIL_VALUE;
  const struct jepsen_edn *v = value;
  if (ld->form == FORM_TUPLE) {
    if (!is_pair(value))
      return lfail(ld, KEEL_EPARSE, 0,
                   "an :ok read must return a [key value] tuple like its "
                   "invoke");
    uint32_t key;
    int rc = intern_edn(ld, &ld->h->keys, &value->u.items[0], &key);
    if (rc != 0)
      return rc;
    if (key != op->key)
      return lfail(ld, KEEL_EPARSE, 0,
                   "the :ok read names key %s, its invoke (line %" PRIu32
                   ") key %s",
                   jepsen_strtab_get(&ld->h->keys, key, NULL), op->invoke_line,
                   jepsen_strtab_get(&ld->h->keys, op->key, NULL));
    v = &value->u.items[1];
  } else if (ld->form == FORM_FIELD) {
    const struct jepsen_edn *k = jepsen_edn_get(map, "key");
    uint32_t key;
    int rc = k ? intern_edn(ld, &ld->h->keys, k, &key) : 0;
    if (rc != 0)
      return rc;
    if (!k || key != op->key)
      return lfail(ld, KEEL_EPARSE, 0,
                   "the completion's :key differs from its invoke's (line "
                   "%" PRIu32 ")",
                   op->invoke_line);
  }
  op->out_known = true;
  switch ((enum jepsen_f)op->f) {
  case JEPSEN_F_GET:
    return kv_string(ld, v, true, "a :get result", &op->out);
  case JEPSEN_F_READ:
    if (ld->h->model == JEPSEN_MODEL_REGISTER)
      return scalar_value(ld, v, "a :read result", &op->out);
    if (v->type != JEPSEN_EDN_VECTOR && v->type != JEPSEN_EDN_SET &&
        v->type != JEPSEN_EDN_LIST)
      return lfail(ld, KEEL_EPARSE, 0,
                   "a set :read must return a vector, list or #{set}");
    op->elems_off = (uint32_t)ld->h->n_elems;
    op->elems_n = v->count;
    for (uint32_t i = 0; i < v->count; i++) {
      uint32_t id;
      int rc = scalar_value(ld, &v->u.items[i], "a set element", &id);
      if (rc == 0)
        rc = push_elem(ld, id);
      if (rc != 0)
        return rc;
    }
    return 0;
  default:
    return 0;
  }
}

static void op_from_pending(const struct pending *p, struct jepsen_op *op) {
  memset(op, 0, sizeof(*op));
  op->call = p->line;
  op->ret = JEPSEN_RET_INFINITY;
  op->process = p->process;
  op->key = p->key;
  op->a = p->a;
  op->b = p->b;
  op->f = p->f;
  op->invoke_line = p->line;
  op->info = true;
}

static int handle_line(struct loader *ld, const char *text, size_t len) {
  const struct jepsen_edn *map;
  struct jepsen_edn_error eerr;
  int rc = jepsen_edn_parse(&ld->arena, text, len, &map, &eerr);
  if (rc != 0)
    return lfail(ld, rc, eerr.column, "%s", eerr.msg);
  if (map->type != JEPSEN_EDN_MAP)
    return lfail(ld, KEEL_EPARSE, 1, "an op must be an EDN map {...}");
  ld->h->n_events++;
  const struct jepsen_edn *process = jepsen_edn_get(map, "process");
  if (!process)
    return lfail(ld, KEEL_EPARSE, 0, "missing :process");
  if (process->type == JEPSEN_EDN_KEYWORD) {
    ld->h->n_skipped++; /* :nemesis and friends: not client ops */
    return 0;
  }
  if (process->type != JEPSEN_EDN_INT)
    return lfail(ld, KEEL_EPARSE, 0,
                 ":process must be an integer (or a keyword such as "
                 ":nemesis)");
  const struct jepsen_edn *type = jepsen_edn_get(map, "type");
  if (!type || type->type != JEPSEN_EDN_KEYWORD)
    return lfail(ld, KEEL_EPARSE, 0, "missing or non-keyword :type");
  enum jepsen_f f = JEPSEN_F_READ;
  rc = parse_f(ld, jepsen_edn_get(map, "f"), &f);
  if (rc != 0)
    return rc;
  int64_t proc = process->u.i;

  if (jepsen_edn_is_keyword(type, "invoke")) {
    struct pending *p = pend_find(ld, proc, false);
    if (p)
      return lfail(ld, KEEL_EPARSE, 0,
                   "process %" PRId64 " invokes again while its op from line "
                   "%" PRIu32 " has not completed",
                   proc, p->line);
    struct pending np = {.process = proc, .line = ld->line, .f = (uint8_t)f};
    rc = decode_invoke(ld, map, f, &np);
    if (rc != 0)
      return rc;
    p = pend_find(ld, proc, true);
    if (!p)
      return -ENOMEM;
    *p = np;
    p->used = true;
    return 0;
  }
  bool ok = jepsen_edn_is_keyword(type, "ok");
  bool failed = jepsen_edn_is_keyword(type, "fail");
  bool info = jepsen_edn_is_keyword(type, "info");
  if (!ok && !failed && !info)
    return lfail(ld, KEEL_EPARSE, 0,
                 ":type :%s is not :invoke, :ok, :fail or :info", type->u.s);
  struct pending *p = pend_find(ld, proc, false);
  if (!p)
    return lfail(ld, KEEL_EPARSE, 0,
                 "completion for process %" PRId64 " which has no pending "
                 "invoke",
                 proc);
  if (p->f != f)
    return lfail(ld, KEEL_EPARSE, 0,
                 "completion :f :%s does not match its invoke's :f :%s (line "
                 "%" PRIu32 ")",
                 jepsen_f_name(f), jepsen_f_name(p->f), p->line);
  struct jepsen_op op;
  op_from_pending(p, &op);
  pend_remove(ld, p);
  op.complete_line = ld->line;
  if (failed) {
    ld->h->n_failed++; /* it did not happen */
    return 0;
  }
  if (info) {
    ld->h->n_info++;
    return push_op(ld, &op);
  }
  op.info = false;
  op.ret = ld->line;
  if (f == JEPSEN_F_READ || f == JEPSEN_F_GET) {
    rc = decode_read_result(ld, map, &op);
    if (rc != 0)
      return rc;
  }
  return push_op(ld, &op);
}

/* Reads one line into buf (at most cap - 1 bytes). Returns its length, -1 at
 * end of input, -2 when the line is too long, -3 on a read error. */
static long read_line(FILE *in, char *buf, size_t cap, bool *saw_nul) {
  size_t n = 0;
  int c;
  *saw_nul = false;
  while ((c = getc_unlocked(in)) != EOF) {
    if (c == '\n')
      return (long)n;
    if (n + 1 >= cap) {
      while ((c = getc_unlocked(in)) != EOF && c != '\n') {
      }
      return -2;
    }
    if (c == '\0')
      *saw_nul = true;
    buf[n++] = (char)c;
  }
  if (ferror(in))
    return -3;
  return n > 0 ? (long)n : -1;
}

static bool blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != ',')
      return false;
  }
  return true;
}

int jepsen_history_read(FILE *in, const char *name, enum jepsen_model model,
                        const struct jepsen_limits *limits,
                        struct jepsen_history *h, char *err, size_t errlen) {
  memset(h, 0, sizeof(*h));
  h->model = model;
  jepsen_strtab_init(&h->values, limits->max_value_bytes);
  jepsen_strtab_init(&h->keys, limits->max_value_bytes);
  struct loader ld = {
      .h = h, .lim = limits, .name = name, .err = err, .errlen = errlen};
  uint32_t id;
  char *buf = malloc(limits->max_line + 1);
  int rc = buf ? jepsen_edn_arena_init(&ld.arena, limits->max_line) : -ENOMEM;
  /* id 0 is nil (register, set) or "" (kv): JEPSEN_VALUE_NIL. */
  if (rc == 0)
    rc = jepsen_strtab_intern(&h->values, model == JEPSEN_MODEL_KV ? "" : "nil",
                              model == JEPSEN_MODEL_KV ? 0 : 3, &id);
  if (rc != 0)
    snprintf(err, errlen, "%s: %s", name, keel_strerror(rc));
  while (rc == 0) {
    bool nul;
    long n = read_line(in, buf, limits->max_line + 1, &nul);
    if (n == -1)
      break;
    if (ld.line == UINT32_MAX) {
      rc = lfail(&ld, KEEL_ELIMIT, 0, "too many lines");
      break;
    }
    ld.line++;
    if (n == -2) {
      rc = lfail(&ld, KEEL_ELIMIT, 0, "line longer than %zu bytes",
                 limits->max_line);
    } else if (n == -3) {
      rc = lfail(&ld, -EIO, 0, "read error");
    } else if (nul) {
      rc = lfail(&ld, KEEL_EPARSE, 0, "NUL byte in the line");
    } else if (!blank(buf, (size_t)n)) {
      rc = handle_line(&ld, buf, (size_t)n);
    }
  }
  /* Invokes that never completed may have happened: :info. */
  for (size_t i = 0; rc == 0 && i < ld.npend_slots; i++) {
    if (!ld.pend[i].used)
      continue;
    struct jepsen_op op;
    op_from_pending(&ld.pend[i], &op);
    h->n_never_completed++;
    rc = push_op(&ld, &op);
  }
  free(buf);
  free(ld.pend);
  free(ld.pbuf);
  jepsen_edn_arena_free(&ld.arena);
  if (rc != 0)
    jepsen_history_free(h);
  return rc;
}

int jepsen_history_parse(const char *text, size_t len, enum jepsen_model model,
                         struct jepsen_history *h, char *err, size_t errlen) {
  FILE *f = fmemopen((void *)text, len, "r");
  if (!f) {
    snprintf(err, errlen, "fmemopen: %s", strerror(errno));
    return -errno;
  }
  struct jepsen_limits lim;
  jepsen_limits_default(&lim);
  lim.max_line = 4096;
  int rc = jepsen_history_read(f, "history", model, &lim, h, err, errlen);
  fclose(f);
  return rc;
}

void jepsen_history_free(struct jepsen_history *h) {
  free(h->ops);
  free(h->elems);
  jepsen_strtab_free(&h->values);
  jepsen_strtab_free(&h->keys);
  memset(h, 0, sizeof(*h));
}

const char *jepsen_op_describe(const struct jepsen_history *h,
                               const struct jepsen_op *op, char *buf,
                               size_t cap) {
  char val[256];
  const struct jepsen_strtab *vt = &h->values;
  bool kv = h->model == JEPSEN_MODEL_KV;
  const char *q = kv ? "\"" : "";
  switch ((enum jepsen_f)op->f) {
  case JEPSEN_F_READ:
  case JEPSEN_F_GET:
    if (!op->out_known) {
      snprintf(val, sizeof(val), "?");
    } else if (h->model == JEPSEN_MODEL_SET) {
      size_t n = (size_t)snprintf(val, sizeof(val), "[");
      for (uint32_t i = 0; i < op->elems_n && n < sizeof(val) - 8; i++) {
        n += (size_t)snprintf(
            val + n, sizeof(val) - n, "%s%s", i ? " " : "",
            jepsen_strtab_get(vt, h->elems[op->elems_off + i], NULL));
      }
      snprintf(val + n, sizeof(val) - n, n < sizeof(val) - 8 ? "]" : " ...]");
    } else {
      snprintf(val, sizeof(val), "%s%s%s", q,
               jepsen_strtab_get(vt, op->out, NULL), q);
    }
    break;
  case JEPSEN_F_CAS:
    snprintf(val, sizeof(val), "[%s %s]", jepsen_strtab_get(vt, op->a, NULL),
             jepsen_strtab_get(vt, op->b, NULL));
    break;
  default:
    snprintf(val, sizeof(val), "%s%s%s", q, jepsen_strtab_get(vt, op->a, NULL),
             q);
    break;
  }
  const char *key = jepsen_strtab_get(&h->keys, op->key, NULL);
  char keybuf[128] = "";
  if (h->keys.count > 1 || strcmp(key, "nil") != 0)
    snprintf(keybuf, sizeof(keybuf), ", :key %s", key);
  char lines[64];
  if (op->complete_line)
    snprintf(lines, sizeof(lines), "lines %" PRIu32 "-%" PRIu32,
             op->invoke_line, op->complete_line);
  else
    snprintf(lines, sizeof(lines), "line %" PRIu32 ", never completed",
             op->invoke_line);
  snprintf(buf, cap,
           "{:process %" PRId64 ", :type :%s, :f :%s%s, :value %s}  %s",
           op->process, op->info ? "info" : "ok", jepsen_f_name(op->f), keybuf,
           val, lines);
  return buf;
}

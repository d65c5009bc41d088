/* flags_logic.c — the JsonLogic compiler and evaluator behind flag targeting.
 *
 * The reference is flagd-core 4.0 (JavaScript), which compiles each rule with
 * json-logic-engine 5.0.7 into a JavaScript function. "Same result" therefore
 * means the semantics of that *compiled* code, which differ in places from
 * the JsonLogic text spec and from json-logic-js. The rules that matter:
 *
 *  - truthiness (if, and, or, !, filter ...): null, false, 0, NaN, "", [] and
 *    {} are false; everything else is true.
 *  - comparisons: two strings (or null) compare as strings; otherwise both
 *    sides must coerce to numbers or the evaluation fails (GENERAL); arrays
 *    and objects always fail. null against a falsy value is equal.
 *  - arithmetic: operands coerce to numbers; an array or object operand, a
 *    NaN result or a division by zero fails the evaluation.
 *  - var returns its default (or null) when the value is missing *or null*.
 *  - cat joins with JavaScript's String(): null becomes "null".
 *  - an arithmetic operand written as one expression ({"+": {"var": "l"}})
 *    reduces the array it yields, checking only the running result.
 *  - the compiled code's shared `prev` variable (see struct ev) decides
 *    what a comparison checks its right operand against.
 *  - a sub-expression with no data dependency is evaluated once at compile
 *    time (flagd-core "inlines" it), with the interpreter's semantics (cat
 *    skips null there); if that evaluation fails, the rule fails to compile,
 *    which flagd-core reports as PARSE_ERROR.
 *
 * Invariants: a compiled tree is never written after flags_logic_compile()
 * returns; evaluation allocates only from a per-call arena (bounded by
 * FLAGS_EVAL_ARENA_LIMIT) and recursion depth is bounded by the tree depth
 * (FLAGS_LOGIC_MAX_DEPTH), never by the data.
 */
#define _GNU_SOURCE /* memmem */
#include "flags_logic.h"

#include "flags_js.h"
#include "keel_error.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- operators ---------------------------------------------------------- */

enum op {
  OP_LIT,
  OP_FAIL, /* an operand the interpreter cannot prepare: fails when run */
  OP_ARRAY,
  OP_VAR,
  OP_MISSING,
  OP_MISSING_SOME,
  OP_IF,
  OP_EQ,
  OP_SEQ,
  OP_NE,
  OP_SNE,
  OP_NOT,
  OP_NOTNOT,
  OP_OR,
  OP_AND,
  OP_LT,
  OP_LE,
  OP_GT,
  OP_GE,
  OP_ADD,
  OP_SUB,
  OP_MUL,
  OP_DIV,
  OP_MOD,
  OP_MIN,
  OP_MAX,
  OP_CAT,
  OP_SUBSTR,
  OP_IN,
  OP_MERGE,
  OP_MAP,
  OP_FILTER,
  OP_REDUCE,
  OP_ALL,
  OP_SOME,
  OP_NONE,
  OP_FRACTIONAL,
  OP_STARTS_WITH,
  OP_ENDS_WITH,
  OP_SEM_VER,
};

static const struct {
  const char *name;
  enum op op;
} op_names[] = {
    {"var", OP_VAR},
    {"missing", OP_MISSING},
    {"missing_some", OP_MISSING_SOME},
    {"if", OP_IF},
    {"==", OP_EQ},
    {"===", OP_SEQ},
    {"!=", OP_NE},
    {"!==", OP_SNE},
    {"!", OP_NOT},
    {"!!", OP_NOTNOT},
    {"or", OP_OR},
    {"and", OP_AND},
    {"<", OP_LT},
    {"<=", OP_LE},
    {">", OP_GT},
    {">=", OP_GE},
    {"+", OP_ADD},
    {"-", OP_SUB},
    {"*", OP_MUL},
    {"/", OP_DIV},
    {"%", OP_MOD},
    {"min", OP_MIN},
    {"max", OP_MAX},
    {"cat", OP_CAT},
    {"substr", OP_SUBSTR},
    {"in", OP_IN},
    {"merge", OP_MERGE},
    {"map", OP_MAP},
    {"filter", OP_FILTER},
    {"reduce", OP_REDUCE},
    {"all", OP_ALL},
    {"some", OP_SOME},
    {"none", OP_NONE},
    {"fractional", OP_FRACTIONAL},
    {"starts_with", OP_STARTS_WITH},
    {"ends_with", OP_ENDS_WITH},
    {"sem_ver", OP_SEM_VER},
};

struct node {
  enum op op;
  bool list; /* the operands were written as a JSON array */
  bool det;  /* no data dependency (json-logic-engine's "deterministic") */
  size_t nargs;
  struct node **args;
  json_t *lit; /* OP_LIT (owned reference) */
  /* OP_VAR with a key known at compile time */
  bool var_static, var_whole;
  bool missing_plain; /* OP_MISSING of 1-2 literal keys without '.' */
  bool var_escaped;   /* the var path has a '\\' */
  char reduce_idiom;  /* '+' or '*': see eval_reduce_idiom() */
  bool src_array;     /* OP_ARRAY / OP_LIT written as a JSON array or {} */
  const char *name;   /* operator name, for messages */
  char *fail_msg;     /* OP_FAIL */
  size_t nsegs;
  char **segs;
  size_t *seglens;
};

struct flags_logic {
  struct node *root;
};

/* ---- values ---------------------------------------------------------------
 */

enum vk {
  V_UNDEF, /* JavaScript undefined: a missing property */
  V_NULL,
  V_BOOL,
  V_NUM,
  V_STR,
  V_ARR,
  V_OBJ,
  V_ROOT,  /* the evaluation context plus $flagd */
  V_FLAGD, /* {flagKey, timestamp} */
  V_PAIR,  /* reduce's {accumulator, current} */
};

struct val {
  enum vk k;
  bool b;
  double n;
  const char *s;
  size_t len;
  const json_t *j;         /* V_ARR/V_OBJ backed by JSON, V_ROOT's context */
  const struct val *items; /* V_ARR built here (j == NULL), V_PAIR */
  size_t nitems;
};

struct chunk {
  struct chunk *next;
  size_t size, used;
  max_align_t data[];
};

struct ev {
  const struct flags_logic_env *env;
  char *stack; /* first arena space, on the evaluating thread's stack */
  size_t stack_used, stack_size;
  struct chunk *chunks;
  size_t total;
  /* Interpreter semantics instead of the compiled code's: for constant
   * sub-expressions evaluated at compile time, and below an `if` of fewer
   * than three operands, which json-logic-engine does not compile but hands
   * to its interpreter. They differ for var, cat, ! and some iterators. */
  bool interp;
  const char *err;
  /* The compiled JavaScript keeps one variable `prev` per function (the
   * rule, and each iterator body) that var, and, or, all, missing_some and
   * the comparisons assign; compareCheck() reads it. So in
   * {"<": [A, {"var": "x"}]} the check sees x's value, not A's. */
  struct val prev;
  size_t steps; /* operations evaluated, bounded by FLAGS_EVAL_MAX_STEPS */
};

static void *arena_alloc(struct ev *e, size_t n) {
  n = (n + 15) & ~(size_t)15;
  /* most evaluations fit in the caller's stack buffer: no malloc at all */
  if (e->stack && e->stack_size - e->stack_used >= n) {
    void *p = e->stack + e->stack_used;
    e->stack_used += n;
    return p;
  }
  struct chunk *c = e->chunks;
  if (!c || c->size - c->used < n) {
    size_t size = n > 4096 ? n : 4096;
    if (e->total + size > FLAGS_EVAL_ARENA_LIMIT) {
      e->err = "evaluation exceeds its memory limit";
      return NULL;
    }
    c = malloc(sizeof *c + size);
    if (!c) {
      e->err = "out of memory";
      return NULL;
    }
    c->size = size;
    c->used = 0;
    c->next = e->chunks;
    e->chunks = c;
    e->total += size;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

static void arena_free(struct ev *e) {
  while (e->chunks) {
    struct chunk *n = e->chunks->next;
    free(e->chunks);
    e->chunks = n;
  }
}

static struct val vnull(void) {
  return (struct val){.k = V_NULL};
}
static struct val vbool(bool b) {
  return (struct val){.k = V_BOOL, .b = b};
}
static struct val vnum(double n) {
  return (struct val){.k = V_NUM, .n = n};
}
static struct val vstr(const char *s, size_t len) {
  return (struct val){.k = V_STR, .s = s, .len = len};
}

static struct val jval(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT:
    return (struct val){.k = V_OBJ, .j = j};
  case JSON_ARRAY:
    return (struct val){.k = V_ARR, .j = j};
  case JSON_STRING:
    return vstr(json_string_value(j), json_string_length(j));
  case JSON_INTEGER:
    return vnum((double)json_integer_value(j));
  case JSON_REAL:
    return vnum(json_real_value(j));
  case JSON_TRUE:
    return vbool(true);
  case JSON_FALSE:
    return vbool(false);
  default:
    return vnull();
  }
}

static size_t arr_len(const struct val *v) {
  return v->j ? json_array_size(v->j) : v->nitems;
}
static struct val arr_at(const struct val *v, size_t i) {
  return v->j ? jval(json_array_get(v->j, i)) : v->items[i];
}

static bool is_object_like(const struct val *v) {
  return v->k == V_ARR || v->k == V_OBJ || v->k == V_ROOT || v->k == V_FLAGD ||
         v->k == V_PAIR;
}

/* json-logic-engine's engine.truthy() */
static bool truthy(const struct val *v) {
  switch (v->k) {
  case V_UNDEF:
  case V_NULL:
    return false;
  case V_BOOL:
    return v->b;
  case V_NUM:
    return v->n != 0 && !isnan(v->n);
  case V_STR:
    return v->len > 0;
  case V_ARR:
    return arr_len(v) > 0;
  case V_OBJ:
    return json_object_size(v->j) > 0;
  default:
    return true;
  }
}

/* plain JavaScript truthiness (`x || []`, `!data`) */
static bool js_truthy(const struct val *v) {
  if (is_object_like(v))
    return true;
  return truthy(v);
}

static bool is_ascii(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] >= 0x80)
      return false;
  return true;
}

/* JavaScript property access obj?.[key] for the value kinds we have. */
static struct val get_prop(const struct ev *e, const struct val *o,
                           const char *key, size_t klen) {
  switch (o->k) {
  case V_OBJ: {
    json_t *m = json_object_getn(o->j, key, klen);
    return m ? jval(m) : (struct val){.k = V_UNDEF};
  }
  case V_ROOT: {
    if (klen == 6 && memcmp(key, "$flagd", 6) == 0)
      return (struct val){.k = V_FLAGD};
    json_t *m = o->j ? json_object_getn(o->j, key, klen) : NULL;
    return m ? jval(m) : (struct val){.k = V_UNDEF};
  }
  case V_FLAGD:
    if (klen == 7 && memcmp(key, "flagKey", 7) == 0)
      return vstr(e->env->flag_key, e->env->flag_key_len);
    if (klen == 9 && memcmp(key, "timestamp", 9) == 0)
      return vnum((double)e->env->timestamp);
    return (struct val){.k = V_UNDEF};
  case V_PAIR:
    if (klen == 11 && memcmp(key, "accumulator", 11) == 0)
      return o->items[0];
    if (klen == 7 && memcmp(key, "current", 7) == 0)
      return o->items[1];
    return (struct val){.k = V_UNDEF};
  case V_ARR:
  case V_STR: {
    size_t n = o->k == V_ARR ? arr_len(o) : o->len;
    if (klen == 6 && memcmp(key, "length", 6) == 0 &&
        (o->k == V_ARR || is_ascii(o->s, o->len)))
      return vnum((double)n);
    /* canonical array index: "0" or [1-9][0-9]* */
    if (klen == 0 || klen > 9 || (klen > 1 && key[0] == '0'))
      return (struct val){.k = V_UNDEF};
    size_t idx = 0;
    for (size_t i = 0; i < klen; i++) {
      if (key[i] < '0' || key[i] > '9')
        return (struct val){.k = V_UNDEF};
      idx = idx * 10 + (size_t)(key[i] - '0');
    }
    if (idx >= n)
      return (struct val){.k = V_UNDEF};
    if (o->k == V_ARR)
      return arr_at(o, idx);
    if (!is_ascii(o->s, o->len))
      return (struct val){.k = V_UNDEF};
    return vstr(o->s + idx, 1);
  }
  default:
    return (struct val){.k = V_UNDEF};
  }
}

/* ---- String() -------------------------------------------------------------
 */

struct sbuf {
  char *p;
  size_t len, cap;
};

static int sb_put(struct ev *e, struct sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < b->len + n + 1)
      cap *= 2;
    if (cap > FLAGS_EVAL_ARENA_LIMIT) {
      e->err = "string exceeds the evaluation memory limit";
      return -1;
    }
    char *np = arena_alloc(e, cap);
    if (!np)
      return -1;
    if (b->len)
      memcpy(np, b->p, b->len);
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
  return 0;
}

static int sb_val(struct ev *e, struct sbuf *b, const struct val *v, int depth);

/* Array.prototype.join(","): null and undefined elements become "". */
static int sb_join(struct ev *e, struct sbuf *b, const struct val *v,
                   int depth) {
  if (depth > FLAGS_LOGIC_MAX_DEPTH * 2) {
    e->err = "value nested too deeply";
    return -1;
  }
  size_t n = arr_len(v);
  for (size_t i = 0; i < n; i++) {
    if (i && sb_put(e, b, ",", 1))
      return -1;
    struct val it = arr_at(v, i);
    if (it.k == V_NULL || it.k == V_UNDEF)
      continue;
    if (sb_val(e, b, &it, depth + 1))
      return -1;
  }
  return 0;
}

static int sb_val(struct ev *e, struct sbuf *b, const struct val *v,
                  int depth) {
  char num[40];
  switch (v->k) {
  case V_UNDEF:
    return sb_put(e, b, "undefined", 9);
  case V_NULL:
    return sb_put(e, b, "null", 4);
  case V_BOOL:
    return v->b ? sb_put(e, b, "true", 4) : sb_put(e, b, "false", 5);
  case V_NUM:
    return sb_put(e, b, num, flags_js_numstr(v->n, num));
  case V_STR:
    return sb_put(e, b, v->s, v->len);
  case V_ARR:
    return sb_join(e, b, v, depth);
  default:
    return sb_put(e, b, "[object Object]", 15);
  }
}

/* String(v) as a V_STR (strings are returned as they are). */
static int to_string(struct ev *e, const struct val *v, struct val *out) {
  if (v->k == V_STR) {
    *out = *v;
    return 0;
  }
  struct sbuf b = {0};
  if (sb_val(e, &b, v, 0))
    return -1;
  *out = vstr(b.p ? b.p : "", b.len);
  return 0;
}

/* ToNumber(v) for primitives; objects give NaN (callers reject them first). */
static double to_number(struct ev *e, const struct val *v) {
  switch (v->k) {
  case V_NULL:
    return 0;
  case V_BOOL:
    return v->b;
  case V_NUM:
    return v->n;
  case V_STR:
    return flags_js_tonumber(v->s, v->len);
  case V_ARR: {
    /* ToPrimitive(array) is its join */
    struct val s;
    if (to_string(e, v, &s))
      return NAN;
    return flags_js_tonumber(s.s, s.len);
  }
  default:
    return NAN;
  }
}

/* json-logic-engine's +precoerceNumber(v): throws for NaN and for objects. */
static int coerce_num(struct ev *e, const struct val *v, double *out) {
  if ((v->k == V_NUM && isnan(v->n)) || (is_object_like(v))) {
    e->err = "operand is not a number";
    return -1;
  }
  *out = to_number(e, v);
  return 0;
}

/* ---- evaluation ------------------------------------------------------------
 */

static int eval(struct ev *e, const struct node *n, const struct val *ctx,
                struct val *out);

static int eval_args(struct ev *e, const struct node *n, const struct val *ctx,
                     struct val **out, size_t *count) {
  /* list: each operand; otherwise coerceArray(value) */
  if (n->list) {
    struct val *a = n->nargs ? arena_alloc(e, n->nargs * sizeof *a) : NULL;
    if (n->nargs && !a)
      return -1;
    for (size_t i = 0; i < n->nargs; i++)
      if (eval(e, n->args[i], ctx, &a[i]))
        return -1;
    *out = a;
    *count = n->nargs;
    return 0;
  }
  struct val v;
  if (eval(e, n->args[0], ctx, &v))
    return -1;
  if (v.k == V_ARR) {
    size_t len = arr_len(&v);
    struct val *a = len ? arena_alloc(e, len * sizeof *a) : NULL;
    if (len && !a)
      return -1;
    for (size_t i = 0; i < len; i++)
      a[i] = arr_at(&v, i);
    *out = a;
    *count = len;
    return 0;
  }
  struct val *a = arena_alloc(e, sizeof *a);
  if (!a)
    return -1;
  a[0] = v;
  *out = a;
  *count = 1;
  return 0;
}

static struct val make_arr(struct val *items, size_t n) {
  return (struct val){.k = V_ARR, .items = items, .nitems = n};
}

/* Splits a var path the way json-logic-engine does: '.' separates, '\'
 * escapes '.', '/' and itself. Writes into segs (arena). */
static int split_path(struct ev *e, const char *s, size_t len,
                      struct val **segs, size_t *nseg) {
  size_t cap = 1;
  for (size_t i = 0; i < len; i++)
    if (s[i] == '.')
      cap++;
  struct val *out = arena_alloc(e, cap * sizeof *out);
  char *buf = arena_alloc(e, len + 1);
  if (!out || !buf)
    return -1;
  size_t n = 0, cur = 0, start = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '\\' && i + 1 < len &&
        (s[i + 1] == '.' || s[i + 1] == '/' || s[i + 1] == '\\')) {
      buf[cur++] = s[++i];
    } else if (c == '.') {
      out[n++] = vstr(buf + start, cur - start);
      start = cur;
    } else {
      buf[cur++] = c;
    }
  }
  /* "." is [""], not ["", ""]: no more parts than characters */
  if (n != len)
    out[n++] = vstr(buf + start, cur - start);
  *segs = out;
  *nseg = n;
  return 0;
}

/* The interpreter's var for a static path (see struct ev.interp). */
static int eval_var_interp(struct ev *e, const struct node *n,
                           const struct val *ctx, struct val *out) {
  struct val cur = *ctx;
  if (n->var_whole) {
    *out = cur.k == V_UNDEF ? vnull() : cur;
    return 0;
  }
  if (n->nargs <= 1 && n->nsegs == 1 && !n->var_escaped) {
    /* one property: !data || data[k] === undefined ? null : data[k] */
    cur = js_truthy(&cur) ? get_prop(e, &cur, n->segs[0], n->seglens[0])
                          : vnull();
    *out = cur.k == V_UNDEF ? vnull() : cur;
    return 0;
  }
  if (n->nargs <= 1 && n->nsegs <= 3 && !n->var_escaped) {
    /* data && data[a] && data[a][b]: stops at the first falsy value */
    for (size_t i = 0; i < n->nsegs && js_truthy(&cur); i++)
      cur = get_prop(e, &cur, n->segs[i], n->seglens[i]);
    *out = cur.k == V_UNDEF ? vnull() : cur;
    return 0;
  }
  /* var.method(): null on the way gives the default, a final null stays */
  for (size_t i = 0; i < n->nsegs; i++) {
    if (cur.k == V_NULL || cur.k == V_UNDEF)
      goto notfound;
    cur = get_prop(e, &cur, n->segs[i], n->seglens[i]);
    if (cur.k == V_UNDEF)
      goto notfound;
  }
  *out = cur;
  return 0;
notfound:
  if (n->nargs > 1)
    return eval(e, n->args[1], ctx, out);
  *out = vnull();
  return 0;
}

static int eval_var(struct ev *e, const struct node *n, const struct val *ctx,
                    struct val *out) {
  if (n->var_static && e->interp)
    return eval_var_interp(e, n, ctx, out);
  if (n->var_static) {
    struct val cur = *ctx;
    bool found = true;
    if (!n->var_whole) {
      for (size_t i = 0; i < n->nsegs; i++) {
        if (cur.k == V_NULL || cur.k == V_UNDEF) {
          found = false;
          break;
        }
        cur = get_prop(e, &cur, n->segs[i], n->seglens[i]);
      }
      if (cur.k == V_NULL || cur.k == V_UNDEF)
        found = false;
    } else if (cur.k == V_NULL || cur.k == V_UNDEF) {
      found = false;
    }
    if (found) {
      *out = cur;
    } else if (n->nargs > 1) {
      /* `?? default`: a null value falls back to the default too */
      if (eval(e, n->args[1], ctx, out))
        return -1;
    } else {
      *out = vnull();
    }
    if (!n->var_whole)
      e->prev = *out;
    return 0;
  }
  /* dynamic key: the interpreter's var */
  struct val key, def = {.k = V_UNDEF};
  if (n->list) {
    key = (struct val){.k = V_UNDEF};
    if (n->nargs > 0 && eval(e, n->args[0], ctx, &key))
      return -1;
    if (n->nargs > 1 && eval(e, n->args[1], ctx, &def))
      return -1;
  } else if (eval(e, n->args[0], ctx, &key)) {
    return -1;
  }
  struct val notfound = def.k == V_UNDEF ? vnull() : def;
  if (key.k == V_UNDEF || key.k == V_NULL || (key.k == V_STR && key.len == 0)) {
    *out = *ctx;
    return 0;
  }
  struct val ks, *segs;
  size_t nseg;
  if (to_string(e, &key, &ks) || split_path(e, ks.s, ks.len, &segs, &nseg))
    return -1;
  struct val cur = *ctx;
  for (size_t i = 0; i < nseg; i++) {
    if (cur.k == V_NULL || cur.k == V_UNDEF) {
      *out = notfound;
      return 0;
    }
    cur = get_prop(e, &cur, segs[i].s, segs[i].len);
    if (cur.k == V_UNDEF) {
      *out = notfound;
      return 0;
    }
  }
  *out = cur;
  return 0;
}

/* missing: the keys whose path does not resolve (null counts as present). */
static int missing_of(struct ev *e, const struct val *keys, size_t nkeys,
                      const struct val *ctx, struct val *out) {
  struct val *res = nkeys ? arena_alloc(e, nkeys * sizeof *res) : NULL;
  if (nkeys && !res)
    return -1;
  size_t m = 0;
  for (size_t i = 0; i < nkeys; i++) {
    struct val ks, *segs;
    size_t nseg;
    if (to_string(e, &keys[i], &ks) ||
        split_path(e, ks.s, ks.len, &segs, &nseg))
      return -1;
    struct val d = *ctx;
    bool found = true;
    for (size_t j = 0; j < nseg; j++) {
      if (!js_truthy(&d)) {
        found = false;
        break;
      }
      d = get_prop(e, &d, segs[j].s, segs[j].len);
      if (d.k == V_UNDEF) {
        found = false;
        break;
      }
    }
    if (!found)
      res[m++] = keys[i];
  }
  *out = make_arr(res, m);
  return 0;
}

static bool str_eq(const struct val *a, const struct val *b) {
  return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static int str_cmp(const struct val *a, const struct val *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->s, b->s, n);
  if (c)
    return c;
  return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

/* JavaScript === (objects by identity) */
static bool strict_eq(const struct val *a, const struct val *b) {
  if (a->k != b->k)
    return (a->k == V_UNDEF && b->k == V_UNDEF);
  switch (a->k) {
  case V_NULL:
  case V_UNDEF:
    return true;
  case V_BOOL:
    return a->b == b->b;
  case V_NUM:
    return a->n == b->n;
  case V_STR:
    return str_eq(a, b);
  case V_ARR:
    /* arrays built during evaluation are all distinct objects */
    return a->j ? a->j == b->j : (a->items && a->items == b->items);
  case V_OBJ:
    return a->j == b->j;
  default:
    return a->items == b->items;
  }
}

/* SameValueZero (Array.prototype.includes) */
static bool same_value_zero(const struct val *a, const struct val *b) {
  if (a->k == V_NUM && b->k == V_NUM && isnan(a->n) && isnan(b->n))
    return true;
  return strict_eq(a, b);
}

static bool rel(enum op op, int c) {
  switch (op) {
  case OP_LT:
    return c < 0;
  case OP_LE:
    return c <= 0;
  case OP_GT:
    return c > 0;
  default:
    return c >= 0;
  }
}

static bool num_rel(enum op op, double a, double b) {
  switch (op) {
  case OP_LT:
    return a < b;
  case OP_LE:
    return a <= b;
  case OP_GT:
    return a > b;
  default:
    return a >= b;
  }
}

static bool str_or_null(const struct val *v) {
  return v->k == V_STR || v->k == V_NULL;
}

/* JavaScript `a op b` once compareCheck() has passed or both are
 * string/null. */
static bool js_compare(struct ev *e, enum op op, const struct val *a,
                       const struct val *b) {
  if (op == OP_SEQ)
    return strict_eq(a, b);
  if (op == OP_SNE)
    return !strict_eq(a, b);
  if (is_object_like(a) || is_object_like(b)) {
    /* loose == between two objects is identity; otherwise an object
     * becomes its primitive (String()) first */
    if ((op == OP_EQ || op == OP_NE) && is_object_like(a) && is_object_like(b))
      return strict_eq(a, b) == (op == OP_EQ);
    if ((op == OP_EQ || op == OP_NE) && (a->k == V_NULL || b->k == V_NULL))
      return op == OP_NE;
    struct val pa = *a, pb = *b;
    if ((is_object_like(a) && to_string(e, a, &pa)) ||
        (is_object_like(b) && to_string(e, b, &pb)))
      return false;
    return js_compare(e, op, &pa, &pb);
  }
  if (op == OP_EQ || op == OP_NE) {
    bool eq;
    if (a->k == V_NULL || b->k == V_NULL)
      eq = a->k == b->k;
    else if (a->k == V_STR && b->k == V_STR)
      eq = str_eq(a, b);
    else
      eq = to_number(e, a) == to_number(e, b);
    return op == OP_EQ ? eq : !eq;
  }
  if (a->k == V_STR && b->k == V_STR)
    return rel(op, str_cmp(a, b));
  return num_rel(op, to_number(e, a), to_number(e, b));
}

/* compareCheck(item, prev, strict): validates and adjusts the right side. */
static int compare_check(struct ev *e, bool strict, struct val *item,
                         const struct val *prev) {
  if (strict || (str_or_null(item) && str_or_null(prev)))
    return 0;
  double x;
  if (coerce_num(e, item, &x))
    return -1;
  if (isnan(x) && prev->k != V_NULL) {
    e->err = "comparison of a value that is not a number";
    return -1;
  }
  if (coerce_num(e, prev, &x))
    return -1;
  if (isnan(x)) {
    e->err = "comparison of a value that is not a number";
    return -1;
  }
  if (prev->k == V_NULL && !js_truthy(item))
    *item = vnull();
  else if (item->k == V_NULL && !js_truthy(prev))
    *item = vnum(0);
  return 0;
}

static int eval_compare(struct ev *e, const struct node *n,
                        const struct val *ctx, struct val *out) {
  if (!n->list || n->nargs < 2) {
    e->err = "a comparison needs at least two operands";
    return -1;
  }
  bool strict = n->op == OP_SEQ || n->op == OP_SNE;
  struct val left, cur;
  if (eval(e, n->args[0], ctx, &left))
    return -1;
  if (!e->interp)
    e->prev = left;
  for (size_t i = 1; i < n->nargs; i++) {
    if (eval(e, n->args[i], ctx, &cur))
      return -1;
    /* compiled: compareCheck(B, prev) with prev as B's code left it; the
     * interpreter checks the operands themselves and adjusts nothing */
    if (e->interp) {
      /* comparisonFunc(a, b): strings/null compare as they are, anything
       * else, once checked, as +a op +b */
      struct val adjusted = cur;
      if (compare_check(e, strict, &adjusted, &left))
        return -1;
      bool res;
      if (strict || (str_or_null(&left) && str_or_null(&cur))) {
        res = js_compare(e, n->op, &left, &cur);
      } else {
        struct val na = vnum(to_number(e, &left)),
                   nb = vnum(to_number(e, &cur));
        res = js_compare(e, n->op, &na, &nb);
      }
      if (!res) {
        *out = vbool(false);
        return 0;
      }
      left = cur;
      continue;
    } else {
      struct val check = e->prev;
      if (compare_check(e, strict, &cur, &check))
        return -1;
      if (n->nargs > 2)
        e->prev = cur;
    }
    if (!js_compare(e, n->op, &left, &cur)) {
      *out = vbool(false);
      return 0;
    }
    left = cur;
  }
  *out = vbool(true);
  return 0;
}

static int nan_error(struct ev *e) {
  e->err = "arithmetic on a value that is not a number";
  return -1;
}

/* The operand written as one expression ({"+": {"var": "list"}}) or, in the
 * interpreter, a one-element list of +/- (it unwraps those). Compiled code
 * reduces an array value with checks only on the running result; the
 * interpreter coerces. */
static int eval_arith_single(struct ev *e, const struct node *n,
                             const struct val *v, struct val *out) {
  double r = 0, x;
  bool arr = v->k == V_ARR;
  size_t len = arr ? arr_len(v) : 0;
  if (e->interp && (n->op == OP_ADD || n->op == OP_SUB)) {
    if (!js_truthy(v)) {
      *out = vnum(0);
      return 0;
    }
    if (!arr) {
      if (coerce_num(e, v, &x) || isnan(x))
        return nan_error(e);
      *out = vnum(n->op == OP_SUB ? -x : x);
      return 0;
    }
    if (n->op == OP_SUB && len == 0)
      return nan_error(e);
    for (size_t i = 0; i < len; i++) {
      struct val it = arr_at(v, i);
      if (coerce_num(e, &it, &x))
        return -1;
      if (n->op == OP_ADD || i == 0)
        r = (n->op == OP_ADD ? r + x : x);
      else
        r -= x;
    }
    if (n->op == OP_SUB && len == 1) {
      *out = vnum(-r); /* -data[0]: no NaN check */
      return 0;
    }
    if (isnan(r))
      return nan_error(e);
    *out = vnum(r);
    return 0;
  }
  if (n->op == OP_ADD || n->op == OP_SUB || n->op == OP_DIV)
    e->prev = *v; /* compiled: (prev = X) */
  if (n->op == OP_ADD) {
    if (!arr) {
      x = is_object_like(v) ? NAN : to_number(e, v);
      if (isnan(x))
        return nan_error(e);
      *out = vnum(x);
      return 0;
    }
    for (size_t i = 0; i < len; i++) {
      struct val it = arr_at(v, i);
      if (coerce_num(e, &it, &x))
        return -1;
      r += x;
    }
    *out = vnum(r); /* NaN allowed */
    return 0;
  }
  if (n->op == OP_SUB && !arr) {
    x = is_object_like(v) ? NAN : to_number(e, v);
    if (isnan(x))
      return nan_error(e);
    *out = vnum(-x);
    return 0;
  }
  size_t min = n->op == OP_MOD ? 2 : n->op == OP_MUL ? 0 : 1;
  if (!arr || len < min) {
    e->err = "arithmetic operand is not an array of numbers";
    return -1;
  }
  if (len == 1 && (n->op == OP_SUB || n->op == OP_DIV)) {
    struct val it = arr_at(v, 0);
    if (n->op == OP_DIV && !js_truthy(&it))
      return nan_error(e);
    if (coerce_num(e, &it, &x))
      return -1;
    *out = vnum(n->op == OP_SUB ? -x : 1 / x);
    return 0;
  }
  size_t i = 0;
  if (n->op == OP_MUL) {
    r = 1;
  } else {
    struct val it = arr_at(v, 0);
    if (coerce_num(e, &it, &r))
      return -1;
    i = 1;
  }
  size_t first = i;
  for (; i < len; i++) {
    struct val it = arr_at(v, i);
    /* precoerceNumber(accumulator) throws for a NaN it computed; the first
     * element was checked as an element */
    if (i > first && isnan(r))
      return nan_error(e);
    if (n->op == OP_DIV && !js_truthy(&it))
      return nan_error(e);
    if (coerce_num(e, &it, &x))
      return -1;
    r = n->op == OP_MUL   ? r * x
        : n->op == OP_SUB ? r - x
        : n->op == OP_DIV ? r / x
                          : fmod(r, x);
  }
  *out = vnum(r); /* a NaN result is returned as it is */
  return 0;
}

static int eval_arith(struct ev *e, const struct node *n, const struct val *ctx,
                      struct val *out) {
  bool unwrap = e->interp && (n->op == OP_ADD || n->op == OP_SUB) && n->list &&
                n->nargs == 1 && n->args[0]->op != OP_ARRAY;
  if (!n->list || unwrap) {
    struct val v;
    if (eval(e, n->args[0], ctx, &v))
      return -1;
    if (!e->interp || n->op == OP_ADD || n->op == OP_SUB)
      return eval_arith_single(e, n, &v, out);
  }
  struct val *a;
  size_t na;
  if (eval_args(e, n, ctx, &a, &na))
    return -1;
  double r, x;
  switch (n->op) {
  case OP_ADD:
    r = 0;
    for (size_t i = 0; i < na; i++) {
      if (coerce_num(e, &a[i], &x))
        return -1;
      r += x;
    }
    break;
  case OP_MUL:
    r = 1;
    for (size_t i = 0; i < na; i++) {
      if (coerce_num(e, &a[i], &x))
        return -1;
      r *= x;
    }
    break;
  case OP_SUB:
    if (na == 0) {
      e->err = "- needs an operand";
      return -1;
    }
    if (coerce_num(e, &a[0], &r))
      return -1;
    if (na == 1)
      r = -r;
    for (size_t i = 1; i < na; i++) {
      if (coerce_num(e, &a[i], &x))
        return -1;
      r -= x;
    }
    break;
  case OP_DIV:
  case OP_MOD: {
    size_t first = 0;
    if (na == 0 || (n->op == OP_MOD && na < 2)) {
      e->err = "too few operands";
      return -1;
    }
    if (na == 1) {
      r = 1; /* {"/": [x]} is 1 / x */
    } else {
      if (coerce_num(e, &a[0], &r))
        return -1;
      first = 1;
    }
    for (size_t i = first; i < na; i++) {
      if (coerce_num(e, &a[i], &x))
        return -1;
      if (n->op == OP_DIV) {
        if (x == 0 || isnan(x)) {
          e->err = "division by zero";
          return -1;
        }
        r /= x;
      } else {
        r = fmod(r, x);
      }
    }
    break;
  }
  default:
    assert(0);
    return -1;
  }
  if (isnan(r) || (e->interp && n->op == OP_DIV && isinf(r))) {
    e->err = "arithmetic result is not a number";
    return -1;
  }
  *out = vnum(r);
  return 0;
}

/* UTF-16 length of a UTF-8 string, and the byte offset of a UTF-16 index
 * (rounded to a character boundary). */
static size_t u16_len(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c & 0xC0) != 0x80)
      n += c >= 0xF0 ? 2 : 1;
  }
  return n;
}

static size_t u16_off(const char *s, size_t len, size_t idx) {
  size_t n = 0, i = 0;
  while (i < len && n < idx) {
    unsigned char c = (unsigned char)s[i];
    n += c >= 0xF0 ? 2 : 1;
    i++;
    while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
      i++;
  }
  return i;
}

static double to_integer(struct ev *e, const struct val *v) {
  if (v->k == V_UNDEF)
    return 0;
  double d = is_object_like(v) && v->k != V_ARR ? NAN : to_number(e, v);
  if (isnan(d))
    return 0;
  return trunc(d);
}

static int eval_substr(struct ev *e, const struct node *n,
                       const struct val *ctx, struct val *out) {
  struct val *a;
  size_t na;
  if (eval_args(e, n, ctx, &a, &na))
    return -1;
  struct val undef = {.k = V_UNDEF};
  const struct val *s = na > 0 ? &a[0] : &undef;
  const struct val *from = na > 1 ? &a[1] : &undef;
  const struct val *end = na > 2 ? &a[2] : &undef;
  if (s->k != V_STR) {
    e->err = "substr of a value that is not a string";
    return -1;
  }
  double size = (double)u16_len(s->s, s->len);
  double st = to_integer(e, from);
  if (st < 0)
    st = fmax(size + st, 0);
  else
    st = fmin(st, size);
  double endn = end->k == V_UNDEF ? 0 : to_number(e, end);
  double ln;
  if (end->k != V_UNDEF && !isnan(endn) && endn < 0 && end->k != V_STR) {
    /* flagd-core: result = s.substr(from); result.substr(0, len + end) */
    double rest = size - st;
    ln = fmin(fmax(rest + trunc(endn), 0), rest);
  } else {
    ln = end->k == V_UNDEF ? size : to_integer(e, end);
    ln = fmin(fmax(ln, 0), size);
  }
  double en = fmin(st + ln, size);
  size_t b0 = u16_off(s->s, s->len, (size_t)st);
  size_t b1 = u16_off(s->s, s->len, (size_t)en);
  *out = vstr(s->s + b0, b1 > b0 ? b1 - b0 : 0);
  return 0;
}

static int eval_cat(struct ev *e, const struct node *n, const struct val *ctx,
                    struct val *out) {
  struct sbuf b = {0};
  /* {"cat": expr} (or one non-array operand that is an expression) runs the
   * interpreter's cat on the value: a string stays, an array joins skipping
   * null, anything else is v.toString() (which fails for null). */
  const struct node *single = NULL;
  if (!n->list)
    single = n->args[0];
  else if (e->interp && n->nargs == 1 && n->args[0]->op != OP_ARRAY)
    single = n->args[0]; /* the interpreter unwraps a one-element list */
  if (single) {
    struct val v;
    if (eval(e, single, ctx, &v))
      return -1;
    if (v.k == V_STR) {
      *out = v;
      return 0;
    }
    if (v.k == V_NULL || v.k == V_UNDEF) {
      e->err = "cat of null";
      return -1;
    }
    if (v.k != V_ARR)
      return to_string(e, &v, out);
    size_t len = arr_len(&v);
    for (size_t i = 0; i < len; i++) {
      struct val it = arr_at(&v, i);
      if (it.k == V_NULL || it.k == V_UNDEF)
        continue;
      if (sb_val(e, &b, &it, 0))
        return -1;
    }
    *out = vstr(b.p ? b.p : "", b.len);
    return 0;
  }
  for (size_t i = 0; i < n->nargs; i++) {
    struct val v;
    if (eval(e, n->args[i], ctx, &v))
      return -1;
    /* compiled: '' + a + b (null -> "null"); interpreted: null skipped */
    if (e->interp && (v.k == V_NULL || v.k == V_UNDEF))
      continue;
    if (sb_val(e, &b, &v, 0))
      return -1;
  }
  *out = vstr(b.p ? b.p : "", b.len);
  return 0;
}

static int eval_in(struct ev *e, const struct node *n, const struct val *ctx,
                   struct val *out) {
  struct val item = {.k = V_UNDEF}, hay = {.k = V_UNDEF};
  if (n->list) {
    if (n->nargs > 0 && eval(e, n->args[0], ctx, &item))
      return -1;
    if (n->nargs > 1 && eval(e, n->args[1], ctx, &hay))
      return -1;
  } else {
    struct val *a;
    size_t na;
    if (eval_args(e, n, ctx, &a, &na))
      return -1;
    if (na > 0)
      item = a[0];
    if (na > 1)
      hay = a[1];
  }
  if (!js_truthy(&hay)) {
    *out = vbool(false);
    return 0;
  }
  if (hay.k == V_STR) {
    struct val needle;
    if (to_string(e, &item, &needle))
      return -1;
    bool found = needle.len == 0;
    for (size_t i = 0; !found && i + needle.len <= hay.len; i++)
      found = memcmp(hay.s + i, needle.s, needle.len) == 0;
    *out = vbool(found);
    return 0;
  }
  if (hay.k != V_ARR) {
    e->err = "in: the second operand is neither an array nor a string";
    return -1;
  }
  size_t len = arr_len(&hay);
  for (size_t i = 0; i < len; i++) {
    struct val it = arr_at(&hay, i);
    if (same_value_zero(&it, &item)) {
      *out = vbool(true);
      return 0;
    }
  }
  *out = vbool(false);
  return 0;
}

static int eval_merge(struct ev *e, const struct node *n, const struct val *ctx,
                      struct val *out) {
  struct val *a;
  size_t na;
  if (eval_args(e, n, ctx, &a, &na))
    return -1;
  size_t total = 0;
  for (size_t i = 0; i < na; i++)
    total += a[i].k == V_ARR ? arr_len(&a[i]) : 1;
  struct val *r = total ? arena_alloc(e, total * sizeof *r) : NULL;
  if (total && !r)
    return -1;
  size_t m = 0;
  for (size_t i = 0; i < na; i++) {
    if (a[i].k == V_ARR) {
      size_t len = arr_len(&a[i]);
      for (size_t j = 0; j < len; j++)
        r[m++] = arr_at(&a[i], j);
    } else {
      r[m++] = a[i];
    }
  }
  *out = make_arr(r, m);
  return 0;
}

static int eval_minmax(struct ev *e, const struct node *n,
                       const struct val *ctx, struct val *out) {
  struct val *a;
  size_t na;
  if (eval_args(e, n, ctx, &a, &na))
    return -1;
  if (na == 0) {
    e->err = "min/max need at least one number";
    return -1;
  }
  double r = 0;
  for (size_t i = 0; i < na; i++) {
    if (a[i].k != V_NUM) {
      e->err = "min/max operand is not a number";
      return -1;
    }
    if (i == 0 || (n->op == OP_MAX ? a[i].n > r : a[i].n < r))
      r = a[i].n;
  }
  *out = vnum(r);
  return 0;
}

/* The selector of map/filter/all/some/none/reduce: `(x || [])`, which must
 * then be an array. */
static int selector(struct ev *e, const struct node *n, const struct val *ctx,
                    struct val *sel, bool *empty_array, struct val *raw) {
  if (eval(e, n->args[0], ctx, sel))
    return -1;
  *raw = *sel;
  /* all: compiled code tests the value for an empty array, the
   * interpreter tests `value || []` */
  *empty_array = sel->k == V_ARR && arr_len(sel) == 0;
  if (!js_truthy(sel)) {
    *sel = make_arr(NULL, 0);
    if (e->interp)
      *empty_array = true;
    return 0;
  }
  if (sel->k != V_ARR) {
    /* the interpreter's some/all/none loop to selector.length: a string's
     * characters, nothing for other values */
    if (e->interp &&
        (n->op == OP_SOME || n->op == OP_ALL || n->op == OP_NONE)) {
      size_t len = sel->k == V_STR ? sel->len : 0, m = 0;
      struct val *chars = len ? arena_alloc(e, len * sizeof *chars) : NULL;
      if (len && !chars)
        return -1;
      for (size_t i = 0; i < len;) {
        size_t start = i++;
        while (i < len && ((unsigned char)sel->s[i] & 0xC0) == 0x80)
          i++; /* one character (a UTF-16 pair counts as one here) */
        chars[m++] = vstr(sel->s + start, i - start);
      }
      *sel = make_arr(chars, m);
      return 0;
    }
    e->err = "iterating over a value that is not an array";
    return -1;
  }
  return 0;
}

static int eval_iter(struct ev *e, const struct node *n, const struct val *ctx,
                     struct val *out) {
  struct val sel, raw;
  bool was_empty;
  if (selector(e, n, ctx, &sel, &was_empty, &raw))
    return -1;
  size_t len = arr_len(&sel);
  const struct node *mapper = n->args[1];
  struct val outer_prev = e->prev;
  if (n->op == OP_ALL && !e->interp) {
    e->prev = raw; /* Array.isArray(prev = selector) */
    outer_prev = raw;
  }
  if (n->op == OP_ALL && was_empty) {
    *out = vbool(false);
    return 0;
  }
  struct val *r = NULL;
  if ((n->op == OP_MAP || n->op == OP_FILTER) && len) {
    r = arena_alloc(e, len * sizeof *r);
    if (!r)
      return -1;
  }
  size_t m = 0;
  for (size_t i = 0; i < len; i++) {
    struct val it = arr_at(&sel, i), res;
    e->prev = (struct val){.k = V_UNDEF}; /* the body is its own function */
    int rc = eval(e, mapper, &it, &res);
    e->prev = outer_prev;
    if (rc)
      return -1;
    switch (n->op) {
    case OP_MAP:
      r[m++] = res;
      break;
    case OP_FILTER:
      if (truthy(&res))
        r[m++] = it;
      break;
    case OP_ALL:
      if (!truthy(&res)) {
        *out = vbool(false);
        return 0;
      }
      break;
    default: /* some, none */
      if (truthy(&res)) {
        *out = vbool(n->op == OP_SOME);
        return 0;
      }
    }
  }
  switch (n->op) {
  case OP_MAP:
  case OP_FILTER:
    *out = make_arr(r, m);
    break;
  case OP_ALL:
    *out = vbool(true);
    break;
  default:
    *out = vbool(n->op == OP_NONE);
  }
  return 0;
}

/* json-logic-engine's assertAllowedDepth(x, 0): no nested arrays/objects */
static int flat(struct ev *e, const struct val *v) {
  if (v->k == V_ARR) {
    size_t len = arr_len(v);
    for (size_t i = 0; i < len; i++) {
      struct val it = arr_at(v, i);
      if (is_object_like(&it))
        goto deep;
    }
  } else if (v->k == V_OBJ) {
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)v->j, k, m) {
      if (json_is_object(m) || json_is_array(m))
        goto deep;
    }
  } else if (v->k == V_PAIR) {
    if (is_object_like(&v->items[0]) || is_object_like(&v->items[1]))
      goto deep;
  }
  return 0;
deep:
  e->err = "reduce accumulator nested too deeply";
  return -1;
}

/* The interpreter rewrites reduce with a body of + (or *) over
 * accumulator and current into {"+": [{"+": array}, initial || 0]}, which
 * coerces instead of iterating (json-logic-engine's checkIdioms). */
static int eval_reduce_idiom(struct ev *e, const struct node *n,
                             const struct val *ctx, struct val *out) {
  bool mul = n->reduce_idiom == '*';
  struct val v;
  if (eval(e, n->args[0], ctx, &v))
    return -1;
  double r = mul ? 1 : 0, x;
  if (!mul && !js_truthy(&v)) {
    r = 0;
  } else if (v.k == V_ARR) {
    size_t len = arr_len(&v);
    for (size_t i = 0; i < len; i++) {
      struct val it = arr_at(&v, i);
      if (coerce_num(e, &it, &x))
        return -1;
      r = mul ? r * x : r + x;
    }
  } else {
    if (coerce_num(e, &v, &x))
      return -1;
    r = x;
  }
  if (isnan(r)) {
    e->err = "arithmetic result is not a number";
    return -1;
  }
  struct val init = vnum(mul ? 1 : 0);
  if (n->nargs > 2) {
    const json_t *lit = n->args[2]->op == OP_LIT ? n->args[2]->lit : NULL;
    bool falsy_literal =
        lit && (json_is_null(lit) || json_is_false(lit) ||
                (json_is_number(lit) && json_number_value(lit) == 0) ||
                (json_is_string(lit) && json_string_length(lit) == 0));
    if (mul || !falsy_literal)
      if (eval(e, n->args[2], ctx, &init))
        return -1;
  }
  if (coerce_num(e, &init, &x))
    return -1;
  r = mul ? r * x : r + x;
  if (isnan(r)) {
    e->err = "arithmetic result is not a number";
    return -1;
  }
  *out = vnum(r);
  return 0;
}

static int eval_reduce(struct ev *e, const struct node *n,
                       const struct val *ctx, struct val *out) {
  if (e->interp && n->reduce_idiom)
    return eval_reduce_idiom(e, n, ctx, out);
  struct val sel, acc, raw;
  bool was_empty;
  if (selector(e, n, ctx, &sel, &was_empty, &raw))
    return -1;
  size_t len = arr_len(&sel), i = 0;
  if (n->nargs > 2) {
    if (eval(e, n->args[2], ctx, &acc) || flat(e, &acc))
      return -1;
  } else {
    if (len == 0) {
      e->err = "reduce of an empty array with no initial value";
      return -1;
    }
    acc = arr_at(&sel, 0);
    i = 1;
  }
  for (; i < len; i++) {
    struct val *pair = arena_alloc(e, 2 * sizeof *pair);
    if (!pair)
      return -1;
    pair[0] = acc;
    pair[1] = arr_at(&sel, i);
    struct val pv = {.k = V_PAIR, .items = pair, .nitems = 2};
    struct val outer_prev = e->prev;
    e->prev = (struct val){.k = V_UNDEF}; /* the body is its own function */
    int rc = eval(e, n->args[1], &pv, &acc);
    e->prev = outer_prev;
    if (rc || flat(e, &acc))
      return -1;
  }
  *out = acc;
  return 0;
}

static int eval_fractional(struct ev *e, const struct node *n,
                           const struct val *ctx, struct val *out) {
  struct val *a;
  size_t na;
  if (eval_args(e, n, ctx, &a, &na))
    return -1;
  *out = vnull();
  if (na < 1)
    return 0;
  struct val fl = get_prop(e, ctx, "$flagd", 6);
  if (!js_truthy(&fl) || fl.k == V_UNDEF)
    return 0;
  struct val by;
  size_t first = 0;
  if (a[0].k == V_STR) {
    by = a[0];
    first = 1;
  } else {
    struct val tk = get_prop(e, ctx, "targetingKey", 12);
    if (tk.k == V_UNDEF || !js_truthy(&tk))
      return 0;
    struct val fk = get_prop(e, &fl, "flagKey", 7);
    struct sbuf b = {0};
    if (sb_val(e, &b, &fk, 0) || sb_val(e, &b, &tk, 0))
      return -1;
    by = vstr(b.p, b.len);
  }
  double total = 0;
  for (size_t i = first; i < na; i++) {
    const struct val *en = &a[i];
    size_t len = en->k == V_ARR ? arr_len(en) : 0;
    if (en->k != V_ARR || len == 0 || len > 2)
      return 0; /* flagd-core logs and returns null */
    struct val v = arr_at(en, 0);
    if (v.k != V_STR && v.k != V_NUM && v.k != V_BOOL && v.k != V_NULL)
      return 0;
    double w = 1;
    if (len == 2) {
      struct val wv = arr_at(en, 1);
      if (wv.k != V_NUM || !isfinite(wv.n) || wv.n != trunc(wv.n))
        return 0;
      w = fmax(0, wv.n);
    }
    total += w;
  }
  if (total > 2147483647.0)
    return 0;
  uint64_t h = flags_murmur3_32(by.s, by.len, 0);
  uint64_t bucket = (h * (uint64_t)total) >> 32;
  uint64_t sum = 0;
  for (size_t i = first; i < na; i++) {
    const struct val *en = &a[i];
    double w = 1;
    if (arr_len(en) == 2)
      w = fmax(0, arr_at(en, 1).n);
    sum += (uint64_t)w;
    if (sum > bucket) {
      *out = arr_at(en, 0);
      return 0;
    }
  }
  return 0;
}

static int eval_strop(struct ev *e, const struct node *n, const struct val *ctx,
                      struct val *out) {
  struct val *a;
  size_t na;
  if (eval_args(e, n, ctx, &a, &na))
    return -1;
  *out = vnull();
  if (n->op == OP_SEM_VER) {
    if (na != 3)
      return 0;
    struct val s1, s2, so;
    if (to_string(e, &a[0], &s1) || to_string(e, &a[2], &s2) ||
        to_string(e, &a[1], &so))
      return -1;
    struct flags_semver v1, v2;
    if (flags_semver_parse(s1.s, s1.len, &v1) ||
        flags_semver_parse(s2.s, s2.len, &v2))
      return 0;
    int c = flags_semver_compare(&v1, &v2);
    const char *o = so.s;
    bool r;
    if (so.len == 1 && o[0] == '=')
      r = c == 0;
    else if (so.len == 2 && !memcmp(o, "!=", 2))
      r = c != 0;
    else if (so.len == 1 && o[0] == '<')
      r = c < 0;
    else if (so.len == 2 && !memcmp(o, "<=", 2))
      r = c <= 0;
    else if (so.len == 2 && !memcmp(o, ">=", 2))
      r = c >= 0;
    else if (so.len == 1 && o[0] == '>')
      r = c > 0;
    else if (so.len == 1 && o[0] == '^')
      r = v1.major == v2.major;
    else if (so.len == 1 && o[0] == '~')
      r = v1.major == v2.major && v1.minor == v2.minor;
    else
      return 0;
    *out = vbool(r);
    return 0;
  }
  if (na != 2 || a[0].k != V_STR || a[1].k != V_STR)
    return 0;
  const struct val *s = &a[0], *p = &a[1];
  if (p->len > s->len) {
    *out = vbool(false);
    return 0;
  }
  size_t off = n->op == OP_STARTS_WITH ? 0 : s->len - p->len;
  *out = vbool(memcmp(s->s + off, p->s, p->len) == 0);
  return 0;
}

static int eval(struct ev *e, const struct node *n, const struct val *ctx,
                struct val *out) {
  /* iterators multiply work by the size of the data: bound the total */
  if (++e->steps > FLAGS_EVAL_MAX_STEPS) {
    e->err = "evaluation exceeds its step limit";
    return -1;
  }
  switch (n->op) {
  case OP_LIT:
    *out = jval(n->lit);
    return 0;
  case OP_FAIL:
    e->err = n->fail_msg;
    return -1;
  case OP_ARRAY: {
    struct val *a = n->nargs ? arena_alloc(e, n->nargs * sizeof *a) : NULL;
    if (n->nargs && !a)
      return -1;
    for (size_t i = 0; i < n->nargs; i++)
      if (eval(e, n->args[i], ctx, &a[i]))
        return -1;
    *out = make_arr(a, n->nargs);
    return 0;
  }
  case OP_VAR:
    return eval_var(e, n, ctx, out);
  case OP_MISSING: {
    if (n->missing_plain && !e->interp) {
      /* compiled for one or two literal keys without '.': a plain property
       * test, no path splitting */
      struct val *res = arena_alloc(e, 2 * sizeof *res);
      if (!res)
        return -1;
      size_t m = 0;
      for (size_t i = 0; i < n->nargs; i++) {
        struct val k = jval(n->args[i]->lit);
        struct val v = get_prop(e, ctx, k.s, k.len);
        if (v.k == V_UNDEF)
          res[m++] = k;
      }
      *out = make_arr(res, m);
      return 0;
    }
    struct val *a;
    size_t na;
    if (eval_args(e, n, ctx, &a, &na))
      return -1;
    return missing_of(e, a, na, ctx, out);
  }
  case OP_MISSING_SOME: {
    struct val *a;
    size_t na;
    if (eval_args(e, n, ctx, &a, &na))
      return -1;
    if (na < 2 || a[1].k != V_ARR) {
      e->err = "missing_some needs [count, [keys...]]";
      return -1;
    }
    size_t nopt = arr_len(&a[1]);
    struct val *keys = nopt ? arena_alloc(e, nopt * sizeof *keys) : NULL;
    if (nopt && !keys)
      return -1;
    for (size_t i = 0; i < nopt; i++)
      keys[i] = arr_at(&a[1], i);
    struct val miss;
    if (missing_of(e, keys, nopt, ctx, &miss))
      return -1;
    if (!e->interp)
      e->prev = miss;
    double need = to_number(e, &a[0]);
    if ((double)(nopt - miss.nitems) < need)
      *out = miss;
    else
      *out = make_arr(NULL, 0);
    return 0;
  }
  case OP_IF: {
    if (!n->list) {
      e->err = "if needs an array of operands";
      return -1;
    }
    if (n->nargs == 0) {
      *out = vnull();
      return 0;
    }
    if (n->nargs < 3 && !e->interp) {
      e->interp = true;
      int rc = eval(e, n, ctx, out);
      e->interp = false;
      return rc;
    }
    if (n->nargs == 1)
      return eval(e, n->args[0], ctx, out);
    size_t i = 0;
    for (; i + 1 < n->nargs; i += 2) {
      struct val c;
      if (eval(e, n->args[i], ctx, &c))
        return -1;
      if (truthy(&c))
        return eval(e, n->args[i + 1], ctx, out);
    }
    if (i < n->nargs)
      return eval(e, n->args[i], ctx, out);
    *out = vnull();
    return 0;
  }
  case OP_AND:
  case OP_OR: {
    if (!n->list) {
      e->err = "and/or need an array of operands";
      return -1;
    }
    *out = vnull();
    for (size_t i = 0; i < n->nargs; i++) {
      if (eval(e, n->args[i], ctx, out))
        return -1;
      if (!e->interp)
        e->prev = *out;
      if (truthy(out) == (n->op == OP_OR))
        return 0;
    }
    return 0;
  }
  case OP_EQ:
  case OP_SEQ:
  case OP_NE:
  case OP_SNE:
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
    return eval_compare(e, n, ctx, out);
  case OP_NOT:
  case OP_NOTNOT: {
    struct val v = {.k = V_UNDEF};
    if (n->nargs > 0 && eval(e, n->args[0], ctx, &v))
      return -1;
    /* the interpreter applies ! to the first element of an array value
     * given as the only operand */
    if (e->interp && v.k == V_ARR && n->args[0]->op != OP_ARRAY &&
        (!n->list || n->nargs == 1))
      v = arr_len(&v) ? arr_at(&v, 0) : (struct val){.k = V_UNDEF};
    *out = vbool(truthy(&v) == (n->op == OP_NOTNOT));
    return 0;
  }
  case OP_ADD:
  case OP_SUB:
  case OP_MUL:
  case OP_DIV:
  case OP_MOD:
    return eval_arith(e, n, ctx, out);
  case OP_MIN:
  case OP_MAX:
    return eval_minmax(e, n, ctx, out);
  case OP_CAT:
    return eval_cat(e, n, ctx, out);
  case OP_SUBSTR:
    return eval_substr(e, n, ctx, out);
  case OP_IN:
    return eval_in(e, n, ctx, out);
  case OP_MERGE:
    return eval_merge(e, n, ctx, out);
  case OP_MAP:
  case OP_FILTER:
  case OP_ALL:
  case OP_SOME:
  case OP_NONE:
    return eval_iter(e, n, ctx, out);
  case OP_REDUCE:
    return eval_reduce(e, n, ctx, out);
  case OP_FRACTIONAL:
    return eval_fractional(e, n, ctx, out);
  case OP_STARTS_WITH:
  case OP_ENDS_WITH:
  case OP_SEM_VER:
    return eval_strop(e, n, ctx, out);
  }
  assert(0);
  return -1;
}

int flags_logic_eval(const struct flags_logic *l,
                     const struct flags_logic_env *env, char *buf, size_t bufsz,
                     size_t *len, int *is_null, const char **msg) {
  assert(bufsz > 0);
  _Alignas(max_align_t) char stack[4096];
  struct ev e = {.env = env, .stack = stack, .stack_size = sizeof stack};
  struct val root = {.k = V_ROOT, .j = env->ctx}, res;
  int rc = eval(&e, l->root, &root, &res);
  if (rc == 0) {
    *is_null = res.k == V_NULL || res.k == V_UNDEF;
    if (!*is_null) {
      struct val s;
      rc = to_string(&e, &res, &s);
      if (rc == 0) {
        if (s.len >= bufsz) {
          *len = bufsz;
          buf[0] = 0;
        } else {
          memcpy(buf, s.s, s.len);
          buf[s.len] = 0;
          *len = s.len;
        }
      }
    }
  }
  if (rc)
    *msg = e.err ? e.err : "evaluation failed";
  arena_free(&e);
  return rc ? -1 : 0;
}

/* ---- compilation ------------------------------------------------------------
 */

struct cc {
  const json_t *evaluators;
  size_t nodes;
  int ref_depth;
  char *err;
  size_t errlen;
};

static int cerr(struct cc *c, const char *path, const char *fmt, ...) {
  va_list ap;
  int n = snprintf(c->err, c->errlen, "%s: ", path);
  va_start(ap, fmt);
  if (n >= 0 && (size_t)n < c->errlen)
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return KEEL_EINVALIDFLAG;
}

static void node_free(struct node *n) {
  if (!n)
    return;
  for (size_t i = 0; i < n->nargs; i++)
    node_free(n->args[i]);
  free(n->args);
  if (n->lit)
    json_decref(n->lit);
  for (size_t i = 0; i < n->nsegs; i++)
    free(n->segs[i]);
  free(n->segs);
  free(n->seglens);
  free(n->fail_msg);
  free(n);
}

void flags_logic_free(struct flags_logic *l) {
  if (!l)
    return;
  node_free(l->root);
  free(l);
}

static json_t *to_json(const struct val *v, int depth) {
  if (depth > FLAGS_LOGIC_MAX_DEPTH * 2)
    return NULL;
  switch (v->k) {
  case V_UNDEF:
  case V_NULL:
    return json_null();
  case V_BOOL:
    return json_boolean(v->b);
  case V_NUM:
    return json_real(v->n);
  case V_STR:
    return json_stringn_nocheck(v->s, v->len);
  case V_ARR: {
    if (v->j)
      return json_incref((json_t *)v->j);
    json_t *a = json_array();
    for (size_t i = 0; a && i < v->nitems; i++) {
      json_t *x = to_json(&v->items[i], depth + 1);
      if (!x || json_array_append_new(a, x)) {
        json_decref(a);
        return NULL;
      }
    }
    return a;
  }
  case V_OBJ:
    return json_incref((json_t *)v->j);
  case V_PAIR: {
    json_t *o = json_object();
    json_t *x = to_json(&v->items[0], depth + 1),
           *y = to_json(&v->items[1], depth + 1);
    if (!o || !x || !y || json_object_set_new(o, "accumulator", x) ||
        json_object_set_new(o, "current", y)) {
      json_decref(o);
      return NULL;
    }
    return o;
  }
  default:
    return json_object();
  }
}

/* json-logic-engine's isDeterministic(): no dependency on the data. Inside
 * an iterator's body var reads the element, which is known when the whole
 * iteration is constant. */
static bool deterministic(const struct node *n, bool in_iter) {
  switch (n->op) {
  case OP_LIT:
  case OP_FAIL: /* a constant failure */
    return true;
  case OP_VAR:
    return in_iter;
  case OP_MISSING:
    return n->list && n->nargs == 0;
  case OP_MISSING_SOME:
  case OP_FRACTIONAL:
  case OP_STARTS_WITH:
  case OP_ENDS_WITH:
  case OP_SEM_VER:
    return false;
  case OP_MAP:
  case OP_FILTER:
  case OP_ALL:
  case OP_SOME:
  case OP_NONE:
  case OP_REDUCE:
    return n->nargs >= 2 && deterministic(n->args[0], in_iter) &&
           deterministic(n->args[1], true);
  default:
    for (size_t i = 0; i < n->nargs; i++)
      if (!deterministic(n->args[i], in_iter))
        return false;
    return true;
  }
}

static int compile_node(struct cc *c, const json_t *j, const char *path,
                        int depth, struct node **out);

static struct node *new_node(enum op op) {
  struct node *n = calloc(1, sizeof *n);
  if (n)
    n->op = op;
  return n;
}

static bool is_arith(enum op op) {
  return op == OP_ADD || op == OP_SUB || op == OP_MUL || op == OP_DIV ||
         op == OP_MOD;
}

/* The checks json-logic-engine's compiler makes while building (they make
 * flagd-core report PARSE_ERROR), on the operand JSON as written. */
static int build_checks(struct cc *c, enum op op, const json_t *arg,
                        const char *path, const char *name) {
  bool list = json_is_array(arg);
  size_t na = list ? json_array_size(arg) : 1;
  switch (op) {
  case OP_MAP:
  case OP_FILTER:
  case OP_ALL:
  case OP_SOME:
  case OP_NONE:
    if (!list || na != 2)
      return cerr(c, path, "%s needs [array, expression]", name);
    break;
  case OP_REDUCE:
    if (!list || na < 2 || na > 3)
      return cerr(c, path, "reduce needs [array, expression, initial]");
    break;
  case OP_IF:
  case OP_AND:
  case OP_OR:
    if (!list)
      return cerr(c, path, "%s needs an array of operands", name);
    break;
  case OP_EQ:
  case OP_SEQ:
  case OP_NE:
  case OP_SNE:
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
    if (!list || na < 2)
      return cerr(c, path, "%s needs at least two operands", name);
    break;
  case OP_MISSING_SOME:
    if (!list || na != 2)
      return cerr(c, path, "missing_some needs [count, [keys...]]");
    break;
  default:
    break;
  }
  return 0;
}

static int compile_var_key(struct node *n, const json_t *key) {
  n->var_static = true;
  if (!key || json_is_null(key) ||
      (json_is_string(key) && json_string_length(key) == 0)) {
    n->var_whole = true;
    return 0;
  }
  char numbuf[40];
  const char *s;
  size_t len;
  if (json_is_string(key)) {
    s = json_string_value(key);
    len = json_string_length(key);
  } else {
    len = flags_js_numstr(json_number_value(key), numbuf);
    s = numbuf;
  }
  if (memmem(s, len, "../", 3))
    return 1; /* json-logic-engine's scope climbing: not supported */
  size_t cap = 1;
  for (size_t i = 0; i < len; i++)
    cap += s[i] == '.';
  n->segs = calloc(cap, sizeof *n->segs);
  n->seglens = calloc(cap, sizeof *n->seglens);
  char *tmp = malloc(len + 1);
  if (!n->segs || !n->seglens || !tmp) {
    free(tmp);
    return -1;
  }
  size_t cur = 0, start = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch == '\\')
      n->var_escaped = true;
    if (ch == '\\' && i + 1 < len &&
        (s[i + 1] == '.' || s[i + 1] == '/' || s[i + 1] == '\\')) {
      tmp[cur++] = s[++i];
    } else if (ch == '.') {
      n->seglens[n->nsegs] = cur - start;
      n->segs[n->nsegs] = strndup(tmp + start, cur - start);
      if (!n->segs[n->nsegs++]) {
        free(tmp);
        return -1;
      }
      start = cur;
    } else {
      tmp[cur++] = ch;
    }
  }
  if (n->nsegs != len) {
    n->seglens[n->nsegs] = cur - start;
    n->segs[n->nsegs] = strndup(tmp + start, cur - start);
    if (!n->segs[n->nsegs++]) {
      free(tmp);
      return -1;
    }
  }
  free(tmp);
  return 0;
}

static int compile_op(struct cc *c, const char *name, enum op op,
                      const json_t *arg, const char *path, int depth,
                      struct node **out) {
  int rc = build_checks(c, op, arg, path, name);
  if (rc)
    return rc;
  struct node *n = new_node(op);
  if (!n)
    return -ENOMEM;
  n->list = json_is_array(arg);
  n->nargs = n->list ? json_array_size(arg) : 1;
  if (n->nargs) {
    n->args = calloc(n->nargs, sizeof *n->args);
    if (!n->args) {
      free(n);
      return -ENOMEM;
    }
  }
  n->name = name;
  char sub[512];
  for (size_t i = 0; i < n->nargs; i++) {
    const json_t *a = n->list ? json_array_get(arg, i) : arg;
    if (n->list)
      snprintf(sub, sizeof sub, "%s.%s[%zu]", path, name, i);
    else
      snprintf(sub, sizeof sub, "%s.%s", path, name);
    rc = compile_node(c, a, sub, depth + 1, &n->args[i]);
    if (rc) {
      n->nargs = i;
      node_free(n);
      return rc;
    }
  }
  /* A single non-array operand written without brackets behaves as a
   * one-element list for the non-lazy operators (json-logic-engine wraps
   * it), and identically for the unary ones. */
  if (!n->list && !json_is_object(arg))
    n->list = true;
  if (op == OP_MISSING && json_is_array(arg) && n->nargs >= 1 &&
      n->nargs <= 2) {
    n->missing_plain = true;
    for (size_t i = 0; i < n->nargs; i++) {
      const json_t *k = json_array_get(arg, i);
      if (!json_is_string(k) ||
          memchr(json_string_value(k), '.', json_string_length(k)))
        n->missing_plain = false;
    }
  }
  if (op == OP_REDUCE) {
    const json_t *body = json_array_get(arg, 1);
    const char *ops[] = {"+", "*"};
    for (int k = 0; k < 2; k++) {
      const json_t *b = json_object_get(body, ops[k]);
      if (json_object_size(body) != 1 || json_array_size(b) != 2)
        continue;
      const char *v0 =
          json_string_value(json_object_get(json_array_get(b, 0), "var"));
      const char *v1 =
          json_string_value(json_object_get(json_array_get(b, 1), "var"));
      if (v0 && v1 && *v0 && *v1 &&
          (!strcmp(v0, "accumulator") || !strcmp(v1, "accumulator")) &&
          (!strcmp(v0, "current") || !strcmp(v1, "current")))
        n->reduce_idiom = *ops[k];
    }
  }
  if (op == OP_VAR) {
    const json_t *key = arg;
    if (json_is_array(arg)) {
      key = json_array_size(arg) ? json_array_get(arg, 0) : NULL;
      if (json_array_size(arg) > 2) {
        node_free(n);
        return cerr(c, path, "var takes [path, default]");
      }
    }
    if (key &&
        (json_is_object(key) || json_is_array(key) || json_is_boolean(key))) {
      n->var_static = false;
    } else if ((rc = compile_var_key(n, key)) != 0) {
      node_free(n);
      if (rc > 0)
        return cerr(c, path, "'../' (the enclosing scope) is not supported");
      return -ENOMEM;
    }
  }
  *out = n;
  return 0;
}

static int compile_node(struct cc *c, const json_t *j, const char *path,
                        int depth, struct node **out) {
  if (depth > FLAGS_LOGIC_MAX_DEPTH)
    return cerr(c, path, "nested deeper than %d levels", FLAGS_LOGIC_MAX_DEPTH);
  if (++c->nodes > FLAGS_LOGIC_MAX_NODES)
    return cerr(c, path, "more than %d operations", FLAGS_LOGIC_MAX_NODES);
  struct node *n = NULL;
  int rc = 0;
  if (json_is_array(j)) {
    n = new_node(OP_ARRAY);
    if (!n)
      return -ENOMEM;
    n->list = true;
    n->src_array = true;
    n->nargs = json_array_size(j);
    n->args = n->nargs ? calloc(n->nargs, sizeof *n->args) : NULL;
    if (n->nargs && !n->args) {
      free(n);
      return -ENOMEM;
    }
    char sub[512];
    for (size_t i = 0; i < n->nargs; i++) {
      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
      rc = compile_node(c, json_array_get(j, i), sub, depth + 1, &n->args[i]);
      if (rc) {
        n->nargs = i;
        node_free(n);
        return rc;
      }
    }
  } else if (json_is_object(j) && json_object_size(j) > 0) {
    if (json_object_size(j) > 1)
      return cerr(c, path, "an operation must have exactly one key");
    const char *name = json_object_iter_key(json_object_iter((json_t *)j));
    const json_t *arg = json_object_iter_value(json_object_iter((json_t *)j));
    if (strcmp(name, "$ref") == 0) {
      if (!json_is_string(arg))
        return cerr(c, path, "$ref must be a string");
      const json_t *def =
          c->evaluators ? json_object_get(c->evaluators, json_string_value(arg))
                        : NULL;
      if (!def)
        return cerr(c, path, "$ref '%s': no such evaluator in $evaluators",
                    json_string_value(arg));
      if (c->ref_depth >= FLAGS_LOGIC_MAX_REF_DEPTH)
        return cerr(c, path, "$ref '%s': references nested deeper than %d",
                    json_string_value(arg), FLAGS_LOGIC_MAX_REF_DEPTH);
      c->ref_depth++;
      rc = compile_node(c, def, path, depth + 1, out);
      c->ref_depth--;
      return rc;
    }
    size_t k;
    for (k = 0; k < sizeof op_names / sizeof op_names[0]; k++)
      if (strcmp(op_names[k].name, name) == 0)
        break;
    if (k == sizeof op_names / sizeof op_names[0])
      return cerr(c, path, "unknown operator '%s'", name);
    rc = compile_op(c, name, op_names[k].op, arg, path, depth, &n);
    if (rc)
      return rc;
  } else {
    n = new_node(OP_LIT);
    if (!n)
      return -ENOMEM;
    n->lit = json_incref((json_t *)j);
    n->src_array = json_is_object(j); /* {} */
    n->det = true;
    *out = n;
    return 0;
  }
  *out = n;
  return 0;
}

/* ---- compile-time evaluation ----------------------------------------------
 *
 * flagd-core builds a rule into JavaScript; on the way it evaluates every
 * maximal constant sub-expression with its interpreter, and a failure there
 * fails the build (PARSE_ERROR). Below an `if` of fewer than three operands
 * the interpreter takes over at run time: it prepares ("optimizes") each
 * operand when first evaluated, evaluating constant parts eagerly except
 * under lazy operators, so a constant part that cannot be evaluated fails
 * the operand that contains it, taken branch or not. fold_compiled() and
 * fold_interp() reproduce both.
 */

static int eval_const(struct node *n, struct node **lit, const char **msg) {
  static const struct flags_logic_env none = {.flag_key = ""};
  struct ev e = {.env = &none, .interp = true};
  json_t *empty = json_object();
  struct val ctx = {.k = V_OBJ, .j = empty}, v;
  int rc = empty ? eval(&e, n, &ctx, &v) : -1;
  json_t *j = rc == 0 ? to_json(&v, 0) : NULL;
  *msg = e.err ? e.err : "out of memory";
  arena_free(&e);
  json_decref(empty);
  if (!j)
    return -1;
  struct node *l = new_node(OP_LIT);
  if (!l) {
    json_decref(j);
    *msg = "out of memory";
    return -1;
  }
  l->lit = j;
  l->det = true;
  *lit = l;
  return 0;
}

static int make_fail(struct node **slot, const char *msg) {
  struct node *f = new_node(OP_FAIL);
  char *m = strdup(msg);
  if (!f || !m) {
    free(f);
    free(m);
    return -ENOMEM;
  }
  f->fail_msg = m;
  node_free(*slot);
  *slot = f;
  return 0;
}

static bool is_cmp(enum op op) {
  return op == OP_EQ || op == OP_SEQ || op == OP_NE || op == OP_SNE ||
         op == OP_LT || op == OP_LE || op == OP_GT || op == OP_GE;
}

/* Operators whose operands the interpreter prepares only when it runs them
 * (json-logic-engine's lazy methods without an idiom rewrite). */
static bool interp_lazy(const struct node *n) {
  switch (n->op) {
  case OP_IF:
    return n->nargs != 3;
  case OP_AND:
  case OP_OR:
  case OP_MAP:
  case OP_FILTER:
  case OP_ALL:
  case OP_SOME:
  case OP_NONE:
  case OP_REDUCE:
    return true;
  default:
    return is_cmp(n->op) && (n->nargs < 2 || n->nargs > 3);
  }
}

/* Prepares n for the interpreter. Returns 1 when preparing it fails (msg
 * says why), 0 when it is ready, or -ENOMEM. */
static int fold_interp(struct node **slot, const char **msg) {
  struct node *n = *slot;
  if (n->op == OP_LIT || n->op == OP_FAIL)
    return 0;
  bool lazy = interp_lazy(n);
  for (size_t i = 0; i < n->nargs; i++) {
    int rc = fold_interp(&n->args[i], msg);
    if (rc < 0)
      return rc;
    if (rc > 0) {
      if (!lazy)
        return 1;
      if (make_fail(&n->args[i], *msg))
        return -ENOMEM;
    }
  }
  if (n->op != OP_ARRAY && deterministic(n, false)) {
    struct node *lit;
    if (eval_const(n, &lit, msg))
      return 1;
    node_free(n);
    *slot = lit;
  }
  return 0;
}

/* The compiler's checks on literal operands of arithmetic (they throw while
 * building: PARSE_ERROR). */
static int arith_checks(struct cc *c, const struct node *n, const char *path) {
  if ((n->op == OP_SUB || n->op == OP_DIV) && n->list && n->nargs == 0)
    return cerr(c, path, "%s needs at least one operand", n->name);
  if (n->op == OP_MOD && n->list && n->nargs < 2)
    return cerr(c, path, "%% needs at least two operands");
  if (!n->list)
    return 0;
  for (size_t i = 0; i < n->nargs; i++) {
    const struct node *a = n->args[i];
    if (a->src_array)
      return cerr(c, path, "%s: operand %zu is an array or object", n->name, i);
    if (a->op != OP_LIT)
      continue;
    const json_t *x = a->lit;
    double d = json_is_string(x)   ? flags_js_tonumber(json_string_value(x),
                                                       json_string_length(x))
               : json_is_number(x) ? json_number_value(x)
                                   : 1;
    if (json_is_string(x) && isnan(d))
      return cerr(c, path, "%s: operand %zu is not a number", n->name, i);
    bool divisor = n->op == OP_DIV && (i > 0 || n->nargs == 1);
    if (divisor && (json_is_string(x) || json_is_number(x)) && d == 0)
      return cerr(c, path, "division by zero");
  }
  return 0;
}

static int fold_compiled(struct cc *c, struct node **slot, const char *path) {
  struct node *n = *slot;
  if (n->op == OP_LIT || n->op == OP_FAIL)
    return 0;
  const char *msg = NULL;
  if (n->op != OP_ARRAY && deterministic(n, false)) {
    /* constant: evaluated now by the interpreter */
    int rc = fold_interp(slot, &msg);
    if (rc < 0)
      return rc;
    if (rc > 0 || (*slot)->op != OP_LIT) {
      struct node *lit;
      if (rc > 0 || eval_const(*slot, &lit, &msg))
        return cerr(c, path, "cannot be evaluated: %s", msg);
      node_free(*slot);
      *slot = lit;
    }
    return 0;
  }
  char sub[512];
  for (size_t i = 0; i < n->nargs; i++) {
    if (n->op == OP_ARRAY)
      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    else if (n->list)
      snprintf(sub, sizeof sub, "%s.%s[%zu]", path, n->name, i);
    else
      snprintf(sub, sizeof sub, "%s.%s", path, n->name);
    int rc;
    if (n->op == OP_IF && n->nargs < 3) {
      /* not compiled: each operand is prepared by the interpreter */
      rc = fold_interp(&n->args[i], &msg);
      if (rc > 0)
        rc = make_fail(&n->args[i], msg);
    } else {
      rc = fold_compiled(c, &n->args[i], sub);
    }
    if (rc)
      return rc;
  }
  if (is_arith(n->op))
    return arith_checks(c, n, path);
  return 0;
}

int flags_logic_compile(const json_t *expr, const json_t *evaluators,
                        const char *path, struct flags_logic **out, char *err,
                        size_t errlen) {
  struct cc c = {.evaluators = evaluators, .err = err, .errlen = errlen};
  struct flags_logic *l = calloc(1, sizeof *l);
  if (!l)
    return -ENOMEM;
  int rc = compile_node(&c, expr, path, 0, &l->root);
  if (rc == 0)
    rc = fold_compiled(&c, &l->root, path);
  if (rc) {
    if (rc != KEEL_EINVALIDFLAG && rc != -ENOMEM)
      rc = KEEL_EINVALIDFLAG;
    node_free(l->root);
    if (rc == -ENOMEM)
      snprintf(err, errlen, "%s: out of memory", path);
    free(l);
    return rc;
  }
  *out = l;
  return 0;
}

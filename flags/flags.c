/* flags.c — flag definitions: validation, compiled flag sets, evaluation.
 *
 * A definition is checked and compiled in one pass (compile_flag): the
 * structure (state, variants, defaultVariant, metadata) must follow flagd's
 * schema, and the targeting rule is compiled by flags_logic.c. Validation on
 * write treats a targeting rule that does not compile as an error; a set
 * built for evaluation keeps such a flag and answers PARSE_ERROR for it, as
 * flagd-core does (this only happens when an $evaluators change broke a
 * stored flag's $ref).
 *
 * Evaluation order (flagd-core's FlagdCore.resolve + FeatureFlag.evaluate):
 *   not found -> ERROR/FLAG_NOT_FOUND; DISABLED -> DISABLED;
 *   targeting did not compile -> ERROR/PARSE_ERROR;
 *   no targeting -> default variant, STATIC;
 *   targeting fails -> ERROR/GENERAL; returns null -> default, DEFAULT;
 *   else String(result) names the variant, TARGETING_MATCH;
 *   no variant and no default -> DEFAULT without a value;
 *   unknown variant -> ERROR/GENERAL; wrong type -> ERROR/TYPE_MISMATCH.
 */
#include "flags.h"

#include "flags_logic.h"
#include "keel_error.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct flag {
  char *key;
  size_t key_len;
  bool disabled;
  json_t *def;                 /* the definition (owns variants, metadata) */
  json_t *variants;            /* borrowed from def */
  const char *default_variant; /* NULL: none; borrowed from def */
  json_t *metadata;            /* owned, may be NULL */
  struct flags_logic *targeting;
  char *parse_error; /* targeting did not compile */
};

struct flags_set {
  atomic_int refs;
  size_t n;
  struct flag **flags;  /* in the order given */
  struct flag **sorted; /* by key, for lookup */
};

struct flags_builder {
  json_t *evaluators;
  size_t n, cap;
  struct flag **flags;
  bool built;
};

static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static int parse_json(const char *json, size_t len, size_t limit,
                      const char *what, json_t **out, char *err,
                      size_t errlen) {
  if (!json)
    return seterr(err, errlen, -EINVAL, "%s: no document", what);
  if (len > limit)
    return seterr(err, errlen, KEEL_ELIMIT, "%s: %zu bytes, the limit is %zu",
                  what, len, (size_t)limit);
  json_error_t je;
  json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!j)
    return seterr(err, errlen, KEEL_EPARSE, "%s: not valid JSON: %s (line %d)",
                  what, je.text, je.line);
  *out = j;
  return 0;
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_TRUE:
  case JSON_FALSE:
    return "boolean";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "number";
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  default:
    return "null";
  }
}

static int check_key(const char *key, const char *prefix, char *err,
                     size_t errlen) {
  size_t n = key ? strlen(key) : 0;
  if (n == 0 || n > FLAGS_MAX_KEY_BYTES)
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%skey: a flag key must be 1 to %d bytes", prefix,
                  FLAGS_MAX_KEY_BYTES);
  if (strchr(key, '/'))
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%skey '%s': a flag key must not contain '/'", prefix, key);
  if (strcmp(key, "$evaluators") == 0)
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%skey: '$evaluators' is reserved for the shared rules",
                  prefix);
  return 0;
}

static void flag_free(struct flag *f) {
  if (!f)
    return;
  free(f->key);
  json_decref(f->def);
  json_decref(f->metadata);
  flags_logic_free(f->targeting);
  free(f->parse_error);
  free(f);
}

/* Checks and compiles definition def of flag key. prefix is prepended to
 * every path in messages ("" or "flags.KEY."). With strict, a targeting rule
 * that does not compile is an error; otherwise the flag keeps it as its
 * parse error. set_meta (file-level metadata) is merged under the flag's. */
static int compile_flag(const char *key, json_t *def, const json_t *evaluators,
                        const json_t *set_meta, const char *prefix, bool strict,
                        struct flag **out, char *err, size_t errlen) {
  int rc = check_key(key, prefix, err, errlen);
  if (rc)
    return rc;
  if (!json_is_object(def))
    return seterr(
        err, errlen, KEEL_EINVALIDFLAG,
        "%sdefinition: a flag definition must be a JSON object, not %s", prefix,
        json_kind(def));
  const char *k;
  json_t *v;
  json_object_foreach(def, k, v) {
    if (strcmp(k, "state") && strcmp(k, "variants") &&
        strcmp(k, "defaultVariant") && strcmp(k, "targeting") &&
        strcmp(k, "metadata"))
      return seterr(err, errlen, KEEL_EINVALIDFLAG,
                    "%s%s: unknown property (a flag has state, variants, "
                    "defaultVariant, targeting, metadata)",
                    prefix, k);
  }
  json_t *state = json_object_get(def, "state");
  if (!state)
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%sstate: required (ENABLED or DISABLED)", prefix);
  if (!json_is_string(state) || (strcmp(json_string_value(state), "ENABLED") &&
                                 strcmp(json_string_value(state), "DISABLED")))
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%sstate: must be \"ENABLED\" or \"DISABLED\"", prefix);

  json_t *variants = json_object_get(def, "variants");
  if (!variants)
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%svariants: required (one or more variants)", prefix);
  if (!json_is_object(variants))
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%svariants: must be an object of name -> value", prefix);
  size_t nv = json_object_size(variants);
  if (nv == 0)
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%svariants: at least one variant is required", prefix);
  if (nv > FLAGS_MAX_VARIANTS)
    return seterr(err, errlen, KEEL_ELIMIT,
                  "%svariants: %zu variants, the limit is %d", prefix, nv,
                  FLAGS_MAX_VARIANTS);
  const char *type = NULL;
  json_object_foreach(variants, k, v) {
    size_t kl = strlen(k);
    if (kl == 0 || kl > FLAGS_MAX_KEY_BYTES)
      return seterr(err, errlen, KEEL_EINVALIDFLAG,
                    "%svariants: a variant name must be 1 to %d bytes", prefix,
                    FLAGS_MAX_KEY_BYTES);
    const char *t = json_kind(v);
    if (!strcmp(t, "null") || !strcmp(t, "array"))
      return seterr(err, errlen, KEEL_EINVALIDFLAG,
                    "%svariants.%s: a variant must be a boolean, string, "
                    "number or object, not %s",
                    prefix, k, t);
    if (!type)
      type = t;
    else if (strcmp(type, t))
      return seterr(err, errlen, KEEL_EINVALIDFLAG,
                    "%svariants.%s: all variants must be %s", prefix, k, type);
  }

  json_t *dv = json_object_get(def, "defaultVariant");
  const char *default_variant = NULL;
  if (dv && !json_is_null(dv)) {
    if (!json_is_string(dv))
      return seterr(err, errlen, KEEL_EINVALIDFLAG,
                    "%sdefaultVariant: must be a variant name or null", prefix);
    /* flagd-core treats "" like null (flag['defaultVariant'] || undefined) */
    if (json_string_length(dv) > 0) {
      default_variant = json_string_value(dv);
      if (!json_object_get(variants, default_variant))
        return seterr(err, errlen, KEEL_EINVALIDFLAG,
                      "%sdefaultVariant: '%s' is not one of the variants",
                      prefix, default_variant);
    }
  }

  json_t *meta = json_object_get(def, "metadata");
  if (meta) {
    if (!json_is_object(meta))
      return seterr(err, errlen, KEEL_EINVALIDFLAG,
                    "%smetadata: must be an object", prefix);
    json_object_foreach(meta, k, v) {
      if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
        return seterr(err, errlen, KEEL_EINVALIDFLAG,
                      "%smetadata.%s: must be a string, number or boolean",
                      prefix, k);
    }
  }

  struct flag *f = calloc(1, sizeof *f);
  if (!f || !(f->key = strdup(key))) {
    free(f);
    return -ENOMEM;
  }
  f->key_len = strlen(key);
  f->def = json_incref(def);
  f->variants = variants;
  f->default_variant = default_variant;
  f->disabled = strcmp(json_string_value(state), "DISABLED") == 0;
  if (set_meta || meta) {
    f->metadata = json_object();
    if (!f->metadata ||
        (set_meta && json_object_update(f->metadata, (json_t *)set_meta)) ||
        (meta && json_object_update(f->metadata, meta))) {
      flag_free(f);
      return -ENOMEM;
    }
  }

  json_t *targeting = json_object_get(def, "targeting");
  if (targeting) {
    if (!json_is_object(targeting)) {
      flag_free(f);
      return seterr(err, errlen, KEEL_EINVALIDFLAG,
                    "%stargeting: must be a JsonLogic object, not %s", prefix,
                    json_kind(targeting));
    }
    if (json_object_size(targeting) > 0) {
      char path[FLAGS_MAX_KEY_BYTES + 32];
      snprintf(path, sizeof path, "%stargeting", prefix);
      char msg[512];
      rc = flags_logic_compile(targeting, evaluators, path, &f->targeting, msg,
                               sizeof msg);
      if (rc == -ENOMEM) {
        flag_free(f);
        return rc;
      }
      if (rc) {
        if (strict) {
          flag_free(f);
          return seterr(err, errlen, rc, "%s", msg);
        }
        f->parse_error = strdup(msg);
        if (!f->parse_error) {
          flag_free(f);
          return -ENOMEM;
        }
      }
    }
  }
  *out = f;
  return 0;
}

static int check_evaluators(const json_t *ev, const char *prefix, char *err,
                            size_t errlen) {
  if (!json_is_object(ev))
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%s$evaluators: must be an object of name -> JsonLogic",
                  prefix);
  if (json_object_size(ev) > FLAGS_MAX_EVALUATORS)
    return seterr(err, errlen, KEEL_ELIMIT,
                  "%s$evaluators: more than %d evaluators", prefix,
                  FLAGS_MAX_EVALUATORS);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)ev, k, v) {
    if (!*k)
      return seterr(err, errlen, KEEL_EINVALIDFLAG,
                    "%s$evaluators: an evaluator name must not be empty",
                    prefix);
    char path[FLAGS_MAX_KEY_BYTES * 2];
    snprintf(path, sizeof path, "%s$evaluators.%s", prefix, k);
    struct flags_logic *l;
    char msg[512];
    int rc = flags_logic_compile(v, ev, path, &l, msg, sizeof msg);
    if (rc)
      return seterr(err, errlen, rc, "%s", msg);
    flags_logic_free(l);
  }
  return 0;
}

int flags_validate_flag(const char *key, const char *json, size_t len,
                        const char *evaluators_json, size_t evaluators_len,
                        char *err, size_t errlen) {
  json_t *def = NULL, *ev = NULL;
  int rc = parse_json(json, len, FLAGS_MAX_DEF_BYTES, "definition", &def, err,
                      errlen);
  if (rc)
    return rc;
  if (evaluators_json) {
    rc = parse_json(evaluators_json, evaluators_len, FLAGS_MAX_DEF_BYTES,
                    "$evaluators", &ev, err, errlen);
    if (rc == 0 && !json_is_object(ev))
      rc = seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "$evaluators: must be an object of name -> JsonLogic");
  }
  struct flag *f = NULL;
  if (rc == 0)
    rc = compile_flag(key, def, ev, NULL, "", true, &f, err, errlen);
  flag_free(f);
  json_decref(def);
  json_decref(ev);
  return rc;
}

int flags_validate_evaluators(const char *json, size_t len, char *err,
                              size_t errlen) {
  json_t *ev;
  int rc = parse_json(json, len, FLAGS_MAX_DEF_BYTES, "$evaluators", &ev, err,
                      errlen);
  if (rc)
    return rc;
  rc = check_evaluators(ev, "", err, errlen);
  json_decref(ev);
  return rc;
}

/* ---- writes under /flags/ ---- */

int flags_validate_write(const char *key, size_t keylen, const char *value,
                         size_t len, const char *evaluators_json,
                         size_t evaluators_len, char *err, size_t errlen) {
  static const char prefix[] = "/flags/";
  const size_t pl = sizeof prefix - 1;
  if (!key || keylen < pl || memcmp(key, prefix, pl) != 0)
    return 0;
  const char *set = key + pl, *end = key + keylen;
  const char *slash = memchr(set, '/', (size_t)(end - set));
  char msg[400];
  int rc;
  if (keylen > pl + 2 * FLAGS_MAX_KEY_BYTES + 1)
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%.*s...: key too long for a flag", 64, key);
  if (!slash || slash == set || slash + 1 == end)
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%.*s: flags live at /flags/<set>/<flag-key>", (int)keylen,
                  key);
  char name[2 * FLAGS_MAX_KEY_BYTES + 2];
  size_t nl = (size_t)(end - slash - 1);
  memcpy(name, slash + 1, nl);
  name[nl] = 0;
  if (memchr(name, 0, nl))
    return seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%.*s: a flag key must not contain NUL", (int)keylen, key);
  if (strcmp(name, "$evaluators") == 0)
    rc = flags_validate_evaluators(value, len, msg, sizeof msg);
  else
    rc = flags_validate_flag(name, value, len, evaluators_json, evaluators_len,
                             msg, sizeof msg);
  if (rc)
    seterr(err, errlen, rc, "%.*s: %s", (int)keylen, key, msg);
  return rc;
}

/* ---- sets ---- */

static int cmp_flag(const void *a, const void *b) {
  const struct flag *x = *(struct flag *const *)a,
                    *y = *(struct flag *const *)b;
  return strcmp(x->key, y->key);
}

static int make_set(struct flag **flags, size_t n, struct flags_set **out,
                    char *err, size_t errlen) {
  struct flags_set *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->flags = flags;
  s->n = n;
  s->sorted = malloc((n ? n : 1) * sizeof *s->sorted);
  if (!s->sorted) {
    free(s);
    return -ENOMEM;
  }
  if (n)
    memcpy(s->sorted, flags, n * sizeof *flags);
  qsort(s->sorted, n, sizeof *s->sorted, cmp_flag);
  for (size_t i = 1; i < n; i++)
    if (strcmp(s->sorted[i - 1]->key, s->sorted[i]->key) == 0) {
      int rc = seterr(err, errlen, KEEL_EINVALIDFLAG,
                      "flag '%s' is defined twice", s->sorted[i]->key);
      free(s->sorted);
      free(s);
      return rc;
    }
  atomic_init(&s->refs, 1);
  *out = s;
  return 0;
}

static int load_file(const char *json, size_t len, bool strict,
                     struct flags_set **out, char *err, size_t errlen) {
  json_t *root;
  int rc = parse_json(json, len, FLAGS_MAX_FILE_BYTES, "flags file", &root, err,
                      errlen);
  if (rc)
    return rc;
  struct flag **flags = NULL;
  size_t n = 0;
  if (!json_is_object(root)) {
    rc = seterr(err, errlen, KEEL_EINVALIDFLAG,
                "flags file: must be a JSON object with \"flags\"");
    goto out;
  }
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (strcmp(k, "flags") && strcmp(k, "$evaluators") &&
        strcmp(k, "metadata") && strcmp(k, "$schema")) {
      rc = seterr(err, errlen, KEEL_EINVALIDFLAG,
                  "%s: unknown property (a flags file has flags, "
                  "$evaluators, metadata, $schema)",
                  k);
      goto out;
    }
  }
  json_t *fl = json_object_get(root, "flags");
  json_t *ev = json_object_get(root, "$evaluators");
  json_t *meta = json_object_get(root, "metadata");
  if (!fl || !json_is_object(fl)) {
    rc = seterr(err, errlen, KEEL_EINVALIDFLAG,
                "flags: required, an object of flag key -> definition");
    goto out;
  }
  if (json_object_size(fl) > FLAGS_MAX_FLAGS) {
    rc = seterr(err, errlen, KEEL_ELIMIT, "flags: more than %d flags",
                FLAGS_MAX_FLAGS);
    goto out;
  }
  /* Loading for evaluation, a broken evaluator only breaks the flags that
   * use it (they answer PARSE_ERROR), as in flagd-core. */
  if (ev && !json_is_object(ev)) {
    rc = seterr(err, errlen, KEEL_EINVALIDFLAG,
                "$evaluators: must be an object of name -> JsonLogic");
    goto out;
  }
  if (ev && strict && (rc = check_evaluators(ev, "", err, errlen)))
    goto out;
  if (meta) {
    if (!json_is_object(meta)) {
      rc =
          seterr(err, errlen, KEEL_EINVALIDFLAG, "metadata: must be an object");
      goto out;
    }
    json_object_foreach(meta, k, v) {
      if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v)) {
        rc = seterr(err, errlen, KEEL_EINVALIDFLAG,
                    "metadata.%s: must be a string, number or boolean", k);
        goto out;
      }
    }
  }
  flags = calloc(json_object_size(fl) + 1, sizeof *flags);
  if (!flags) {
    rc = -ENOMEM;
    goto out;
  }
  json_object_foreach(fl, k, v) {
    char prefix[FLAGS_MAX_KEY_BYTES + 16];
    snprintf(prefix, sizeof prefix, "flags.%.*s.", FLAGS_MAX_KEY_BYTES, k);
    rc = compile_flag(k, v, ev, meta, prefix, strict, &flags[n], err, errlen);
    if (rc)
      goto out;
    n++;
  }
  if (out) {
    rc = make_set(flags, n, out, err, errlen);
    if (rc == 0)
      flags = NULL;
  }
out:
  if (flags) {
    for (size_t i = 0; i < n; i++)
      flag_free(flags[i]);
    free(flags);
  }
  json_decref(root);
  return rc;
}

int flags_validate_file(const char *json, size_t len, char *err,
                        size_t errlen) {
  return load_file(json, len, true, NULL, err, errlen);
}

int flags_set_from_file(const char *json, size_t len, struct flags_set **out,
                        char *err, size_t errlen) {
  if (!out)
    return -EINVAL;
  return load_file(json, len, false, out, err, errlen);
}

struct flags_builder *flags_builder_new(void) {
  return calloc(1, sizeof(struct flags_builder));
}

int flags_builder_set_evaluators(struct flags_builder *b, const char *json,
                                 size_t len, char *err, size_t errlen) {
  if (!b || b->built || b->n > 0)
    return seterr(err, errlen, -EINVAL,
                  "$evaluators: give them before any flag");
  json_t *ev;
  int rc = parse_json(json, len, FLAGS_MAX_DEF_BYTES, "$evaluators", &ev, err,
                      errlen);
  if (rc)
    return rc;
  rc = check_evaluators(ev, "", err, errlen);
  if (rc) {
    json_decref(ev);
    return rc;
  }
  json_decref(b->evaluators);
  b->evaluators = ev;
  return 0;
}

int flags_builder_add(struct flags_builder *b, const char *key,
                      const char *json, size_t len, char *err, size_t errlen) {
  if (!b || b->built)
    return -EINVAL;
  if (b->n >= FLAGS_MAX_FLAGS)
    return seterr(err, errlen, KEEL_ELIMIT, "more than %d flags in a set",
                  FLAGS_MAX_FLAGS);
  json_t *def;
  int rc = parse_json(json, len, FLAGS_MAX_DEF_BYTES, "definition", &def, err,
                      errlen);
  if (rc)
    return rc;
  struct flag *f;
  rc = compile_flag(key, def, b->evaluators, NULL, "", false, &f, err, errlen);
  json_decref(def);
  if (rc)
    return rc;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    struct flag **nf = realloc(b->flags, cap * sizeof *nf);
    if (!nf) {
      flag_free(f);
      return -ENOMEM;
    }
    b->flags = nf;
    b->cap = cap;
  }
  b->flags[b->n++] = f;
  return 0;
}

int flags_builder_build(struct flags_builder *b, struct flags_set **out,
                        char *err, size_t errlen) {
  if (!b || b->built || !out)
    return -EINVAL;
  struct flag **flags = b->flags;
  if (!flags && !(flags = calloc(1, sizeof *flags)))
    return -ENOMEM;
  int rc = make_set(flags, b->n, out, err, errlen);
  if (rc) {
    if (!b->flags)
      free(flags);
    return rc;
  }
  b->built = true;
  b->flags = NULL;
  b->n = b->cap = 0;
  return 0;
}

void flags_builder_free(struct flags_builder *b) {
  if (!b)
    return;
  for (size_t i = 0; i < b->n; i++)
    flag_free(b->flags[i]);
  free(b->flags);
  json_decref(b->evaluators);
  free(b);
}

struct flags_set *flags_set_ref(struct flags_set *s) {
  if (s)
    atomic_fetch_add(&s->refs, 1);
  return s;
}

void flags_set_unref(struct flags_set *s) {
  if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
    return;
  for (size_t i = 0; i < s->n; i++)
    flag_free(s->flags[i]);
  free(s->flags);
  free(s->sorted);
  free(s);
}

size_t flags_set_count(const struct flags_set *s) {
  return s ? s->n : 0;
}

const char *flags_set_key(const struct flags_set *s, size_t i) {
  return s && i < s->n ? s->flags[i]->key : NULL;
}

/* ---- evaluation ------------------------------------------------------------
 */

static const struct flag *find(const struct flags_set *s, const char *key) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(s->sorted[mid]->key, key);
    if (c == 0)
      return s->sorted[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

static void fail(struct flags_result *r, enum flags_error_code code,
                 const char *fmt, ...) {
  r->value = NULL;
  r->variant = NULL;
  r->reason = FLAGS_REASON_ERROR;
  r->error_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->error_message, sizeof r->error_message, fmt, ap);
  va_end(ap);
}

static bool type_matches(enum flags_type t, const json_t *v) {
  switch (t) {
  case FLAGS_TYPE_BOOLEAN:
    return json_is_boolean(v);
  case FLAGS_TYPE_STRING:
    return json_is_string(v);
  case FLAGS_TYPE_NUMBER:
    return json_is_number(v);
  case FLAGS_TYPE_OBJECT:
    return json_is_object(v) || json_is_array(v);
  default:
    return true;
  }
}

int flags_evaluate(const struct flags_set *s, const char *key,
                   enum flags_type type, const json_t *ctx, int64_t timestamp,
                   struct flags_result *res) {
  if (!s || !key || !res)
    return -EINVAL;
  memset(res, 0, sizeof *res);
  const struct flag *f = find(s, key);
  if (!f) {
    fail(res, FLAGS_ERROR_FLAG_NOT_FOUND, "flag '%s' not found", key);
    return 0;
  }
  res->metadata = f->metadata;
  if (f->disabled) {
    res->reason = FLAGS_REASON_DISABLED;
    return 0;
  }
  if (f->parse_error) {
    fail(res, FLAGS_ERROR_PARSE_ERROR, "%s", f->parse_error);
    return 0;
  }
  const char *variant = f->default_variant;
  char buf[FLAGS_MAX_KEY_BYTES + 2];
  if (!f->targeting) {
    res->reason = FLAGS_REASON_STATIC;
  } else {
    struct flags_logic_env env = {
        .ctx = json_is_object(ctx) ? ctx : NULL,
        .flag_key = f->key,
        .flag_key_len = f->key_len,
        .timestamp = timestamp,
    };
    size_t len = 0;
    int is_null = 0;
    const char *msg = NULL;
    if (flags_logic_eval(f->targeting, &env, buf, sizeof buf, &len, &is_null,
                         &msg)) {
      fail(res, FLAGS_ERROR_GENERAL,
           "error evaluating targeting rule for flag '%s': %s", key, msg);
      return 0;
    }
    if (is_null) {
      res->reason = FLAGS_REASON_DEFAULT;
    } else {
      res->reason = FLAGS_REASON_TARGETING_MATCH;
      variant = len < sizeof buf ? buf : NULL;
      if (!variant) {
        fail(res, FLAGS_ERROR_GENERAL,
             "targeting of flag '%s' returned a variant name longer than %d "
             "bytes",
             key, FLAGS_MAX_KEY_BYTES);
        return 0;
      }
    }
  }
  if (!variant) {
    res->reason = FLAGS_REASON_DEFAULT; /* no default variant: caller's */
    return 0;
  }
  void *it = json_object_iter_at(f->variants, variant);
  if (!it) {
    fail(res, FLAGS_ERROR_GENERAL,
         "variant '%s' not found in flag with key '%s'", variant, key);
    return 0;
  }
  const json_t *value = json_object_iter_value(it);
  if (!type_matches(type, value)) {
    fail(res, FLAGS_ERROR_TYPE_MISMATCH,
         "evaluated type of the flag %s does not match", key);
    return 0;
  }
  res->value = value;
  res->variant = json_object_iter_key(it);
  return 0;
}

const char *flags_reason_name(enum flags_reason r) {
  static const char *const names[] = {"STATIC", "TARGETING_MATCH", "DEFAULT",
                                      "DISABLED", "ERROR"};
  return (unsigned)r < 5 ? names[r] : "UNKNOWN";
}

const char *flags_error_code_name(enum flags_error_code c) {
  static const char *const names[] = {"",
                                      "FLAG_NOT_FOUND",
                                      "PARSE_ERROR",
                                      "TYPE_MISMATCH",
                                      "TARGETING_KEY_MISSING",
                                      "GENERAL"};
  return (unsigned)c < 6 ? names[c] : "UNKNOWN";
}

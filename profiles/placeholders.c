/* placeholders.c — ${name} / ${name:default} resolution and Spring's
 * relaxed binding of environment variables onto properties.
 *
 * Resolution is a recursive descent over the text. State per value:
 *   chain      the names being resolved, outermost first: a name already on
 *              it is a cycle (reported as "a -> b -> a");
 *   rec        recursion depth (names, defaults and found values all
 *              recurse), bounded by 4 x max_ref_depth;
 *   expansions placeholders expanded so far, bounded by max_expansions, so a
 *              fan-out like a=${b}${b}, b=${c}${c} ... stops early even when
 *              the text stays short.
 * Every output is bounded by max_value_len. Both functions work on a copy
 * and swap it in only on success.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "profiles.h"
#include "profiles_int.h"

static const char *env_get(const char *const *envp, size_t n,
                           const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; envp && (n == (size_t)-1 ? envp[i] != NULL : i < n); i++) {
    const char *e = envp[i];
    if (e && strncmp(e, name, nl) == 0 && e[nl] == '=')
      return e + nl + 1;
  }
  return NULL;
}

struct rctx {
  const struct profiles_list *l; /* lookups go to the original values */
  const char *const *envp;
  size_t nenv;
  unsigned flags;
  const struct profiles_limits *lim;
  struct profiles_error *err;
  const char *top; /* the property being resolved */
  char **chain;
  size_t nchain;
  size_t rec;
  size_t expansions;
};

static int too_long(struct rctx *c, const struct pbuf *o) {
  if (o->oom)
    return -ENOMEM;
  if (o->len > c->lim->max_value_len) {
    perr_set(c->err, NULL, 0, 0,
             "property '%s': value longer than %zu bytes after resolving "
             "placeholders",
             c->top, c->lim->max_value_len);
    return KEEL_ELIMIT;
  }
  return 0;
}

/* End of the placeholder whose "${" is at s[i]: index of its '}', or n. */
static size_t match_close(const char *s, size_t n, size_t i) {
  size_t j = i + 2;
  int depth = 1;
  while (j < n) {
    if (s[j] == '\\' && j + 2 < n && s[j + 1] == '$' && s[j + 2] == '{') {
      j += 3;
      continue;
    }
    if (s[j] == '{')
      depth++;
    else if (s[j] == '}' && --depth == 0)
      return j;
    j++;
  }
  return n;
}

static int resolve_text(struct rctx *c, const char *s, size_t n,
                        struct pbuf *out);

static int cycle_error(struct rctx *c, const char *key) {
  struct pbuf b = {0};
  for (size_t i = 0; i < c->nchain; i++) {
    pbuf_puts(&b, c->chain[i]);
    pbuf_puts(&b, " -> ");
  }
  pbuf_puts(&b, key);
  perr_set(c->err, NULL, 0, 0, "property '%s': placeholder cycle: %s", c->top,
           b.data ? b.data : key);
  pbuf_free(&b);
  return -ELOOP;
}

/* Resolves the value found for `key` (text v) with key pushed on the chain. */
static int resolve_found(struct rctx *c, const char *key, const char *v,
                         size_t vn, struct pbuf *out) {
  for (size_t i = 0; i < c->nchain; i++)
    if (strcmp(c->chain[i], key) == 0)
      return cycle_error(c, key);
  if (c->nchain >= c->lim->max_ref_depth) {
    perr_set(c->err, NULL, 0, 0,
             "property '%s': placeholders nest deeper than %zu", c->top,
             c->lim->max_ref_depth);
    return KEEL_ELIMIT;
  }
  char *k = strdup(key);
  if (!k)
    return -ENOMEM;
  c->chain[c->nchain++] = k;
  int rc = resolve_text(c, v, vn, out);
  free(c->chain[--c->nchain]);
  return rc;
}

static int resolve_placeholder(struct rctx *c, const char *inner, size_t n,
                               struct pbuf *out) {
  if (++c->expansions > c->lim->max_expansions) {
    perr_set(c->err, NULL, 0, 0,
             "property '%s': more than %zu placeholder expansions", c->top,
             c->lim->max_expansions);
    return KEEL_ELIMIT;
  }
  /* The default starts after the first ':' outside nested braces. */
  size_t colon = n;
  int depth = 0;
  for (size_t i = 0; i < n; i++) {
    if (inner[i] == '{')
      depth++;
    else if (inner[i] == '}')
      depth--;
    else if (inner[i] == ':' && depth == 0) {
      colon = i;
      break;
    }
  }
  struct pbuf kb = {0};
  int rc = resolve_text(c, inner, colon, &kb);
  if (rc) {
    pbuf_free(&kb);
    return rc;
  }
  const char *key = kb.data ? kb.data : "";
  const struct profiles_prop *p = profiles_list_find(c->l, key);
  if (p) {
    if (p->type == PROFILES_NULL)
      ;
    else if (p->type == PROFILES_STRING)
      rc = resolve_found(c, key, p->value, p->value_len, out);
    else
      pbuf_put(out, p->value, p->value_len);
  } else {
    const char *v = env_get(c->envp, c->nenv, key);
    if (!v) {
      char *en = profiles_env_name(key);
      if (en)
        v = env_get(c->envp, c->nenv, en);
      free(en);
    }
    if (v) {
      rc = resolve_found(c, key, v, strlen(v), out);
    } else if (colon < n) {
      rc = resolve_text(c, inner + colon + 1, n - colon - 1, out);
    } else if (c->flags & PROFILES_IGNORE_UNRESOLVABLE) {
      pbuf_puts(out, "${");
      pbuf_put(out, inner, n);
      pbuf_puts(out, "}");
    } else {
      perr_set(c->err, NULL, 0, 0,
               "property '%s': could not resolve placeholder '${%s}'", c->top,
               key);
      rc = KEEL_ENOTFOUND;
    }
  }
  pbuf_free(&kb);
  return rc ? rc : too_long(c, out);
}

static int resolve_text(struct rctx *c, const char *s, size_t n,
                        struct pbuf *out) {
  if (++c->rec > 4 * c->lim->max_ref_depth) {
    perr_set(c->err, NULL, 0, 0,
             "property '%s': placeholders nest deeper than %zu", c->top,
             c->lim->max_ref_depth);
    return KEEL_ELIMIT;
  }
  int rc = 0;
  size_t i = 0;
  while (i < n && !rc) {
    if (s[i] == '\\' && i + 2 < n && s[i + 1] == '$' && s[i + 2] == '{') {
      pbuf_puts(out, "${");
      i += 3;
      continue;
    }
    if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
      size_t j = match_close(s, n, i);
      if (j == n) {
        /* No closing brace: not a placeholder (Spring leaves it). */
        pbuf_put(out, s + i, n - i);
        break;
      }
      rc = resolve_placeholder(c, s + i + 2, j - i - 2, out);
      i = j + 1;
      continue;
    }
    size_t k = i + 1;
    while (k < n && s[k] != '$' && s[k] != '\\')
      k++;
    pbuf_put(out, s + i, k - i);
    i = k;
    if (!rc)
      rc = too_long(c, out);
  }
  c->rec--;
  return rc ? rc : too_long(c, out);
}

int profiles_resolve(struct profiles_list *l, const char *const *envp, size_t n,
                     unsigned flags, const struct profiles_limits *lim,
                     struct profiles_error *err) {
  struct profiles_limits dl;
  if (!lim) {
    profiles_limits_default(&dl);
    lim = &dl;
  }
  char **chain = calloc(lim->max_ref_depth + 1, sizeof *chain);
  char **vals = calloc(l->count + 1, sizeof *vals);
  size_t *lens = calloc(l->count + 1, sizeof *lens);
  int rc = (!chain || !vals || !lens) ? -ENOMEM : 0;
  for (size_t i = 0; i < l->count && !rc; i++) {
    const struct profiles_prop *p = &l->items[i];
    if (p->type != PROFILES_STRING || !strstr(p->value, "${"))
      continue;
    struct rctx c = {.l = l,
                     .envp = envp,
                     .nenv = n,
                     .flags = flags,
                     .lim = lim,
                     .err = err,
                     .top = p->name,
                     .chain = chain};
    chain[0] = strdup(p->name);
    if (!chain[0]) {
      rc = -ENOMEM;
      break;
    }
    c.nchain = 1;
    struct pbuf o = {0};
    pbuf_puts(&o, "");
    rc = resolve_text(&c, p->value, p->value_len, &o);
    free(chain[0]);
    chain[0] = NULL;
    if (!rc)
      rc = pbuf_finish(&o, &vals[i], &lens[i]);
    else
      pbuf_free(&o);
  }
  if (!rc) {
    /* All resolved against the original values: now swap them in. */
    for (size_t i = 0; i < l->count; i++) {
      if (!vals[i])
        continue;
      free(l->items[i].value);
      l->items[i].value = vals[i];
      l->items[i].value_len = lens[i];
      vals[i] = NULL;
    }
  }
  for (size_t i = 0; vals && i < l->count; i++)
    free(vals[i]);
  free(vals);
  free(lens);
  free(chain);
  return rc;
}

int profiles_apply_env(struct profiles_list *l, const char *const *envp,
                       size_t n, const struct profiles_limits *lim,
                       struct profiles_error *err) {
  struct profiles_limits dl;
  if (!lim) {
    profiles_limits_default(&dl);
    lim = &dl;
  }
  char **vals = calloc(l->count + 1, sizeof *vals);
  enum profiles_type *types = calloc(l->count + 1, sizeof *types);
  int rc = (!vals || !types) ? -ENOMEM : 0;
  for (size_t i = 0; i < l->count && !rc; i++) {
    const struct profiles_prop *p = &l->items[i];
    char *en = profiles_env_name(p->name);
    if (!en)
      continue;
    const char *v = env_get(envp, n, en);
    free(en);
    if (!v)
      continue;
    size_t vl = strlen(v);
    if (vl > lim->max_value_len) {
      perr_set(err, NULL, 0, 0,
               "environment override of '%s' is longer than %zu bytes", p->name,
               lim->max_value_len);
      rc = KEEL_ELIMIT;
      break;
    }
    types[i] = PROFILES_STRING;
    if (p->type != PROFILES_STRING) {
      enum profiles_type t;
      char *canon;
      if (profiles_scalar_resolve(v, vl, &t, &canon)) {
        rc = -ENOMEM;
        break;
      }
      if (t == p->type) {
        vals[i] = canon;
        types[i] = t;
        continue;
      }
      free(canon);
    }
    vals[i] = strdup(v);
    if (!vals[i])
      rc = -ENOMEM;
  }
  if (!rc) {
    for (size_t i = 0; i < l->count; i++) {
      if (!vals[i])
        continue;
      free(l->items[i].value);
      l->items[i].value = vals[i];
      l->items[i].value_len = strlen(vals[i]);
      l->items[i].type = types[i];
      vals[i] = NULL;
    }
  }
  for (size_t i = 0; vals && i < l->count; i++)
    free(vals[i]);
  free(vals);
  free(types);
  return rc;
}

/* parse_yaml.c — YAML documents to Spring-flattened, typed properties.
 *
 * Two passes over the buffer, both with libyaml:
 *  1. the event parser checks syntax, nesting depth and the number of nodes
 *     before anything is built, so a hostile document ("[[[[..." or a
 *     million tiny scalars) is refused in bounded memory with the position
 *     of the node that broke the limit;
 *  2. the loader builds each document's node graph (anchors and aliases
 *     resolved) and flatten() walks it. Aliases can make the walk longer and
 *     deeper than the text, so the walk has its own depth check and a budget
 *     of visited nodes; it also stops at max_props properties.
 * Results go to a private profiles_docs that is absorbed into the caller's
 * only when the whole buffer parsed, so a failure adds nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "keel_error.h"
#include "profiles.h"
#include "profiles_int.h"

struct fl {
  yaml_document_t *doc;
  const struct profiles_limits *lim;
  const char *file;
  struct profiles_error *err;
  struct profiles_list *out;
  char *path; /* current name, max_name_len + 1 bytes */
  size_t plen;
  size_t visits;
  size_t budget;
};

static int fl_fail(struct fl *f, yaml_mark_t m, int rc, const char *fmt,
                   const char *arg) {
  char why[400];
  snprintf(why, sizeof why, fmt, arg ? arg : "");
  perr_set(f->err, f->file, (int)m.line + 1, (int)m.column + 1, "%s", why);
  return rc;
}

static int fl_limit(struct fl *f, yaml_mark_t m, const char *what,
                    size_t limit) {
  perr_set(f->err, f->file, (int)m.line + 1, (int)m.column + 1,
           "%s (limit %zu)", what, limit);
  return KEEL_ELIMIT;
}

/* Appends a key or index to the path; returns the old length to restore. */
static int path_push(struct fl *f, yaml_mark_t m, const char *seg, size_t n,
                     int index) {
  char tmp[32];
  const char *sep = "";
  if (index) {
    snprintf(tmp, sizeof tmp, "[%.*s]", (int)n, seg);
    seg = tmp;
    n = strlen(tmp);
  } else if (f->plen > 0 && !(n > 0 && seg[0] == '[')) {
    sep = ".";
  }
  for (size_t i = 0; !index && i < n; i++)
    if ((unsigned char)seg[i] < ' ' || seg[i] == 0x7f)
      return fl_fail(f, m, KEEL_EPARSE,
                     "a map key contains a control character%s", NULL);
  size_t need = f->plen + strlen(sep) + n;
  if (need > f->lim->max_name_len)
    return fl_limit(f, m, "property name too long", f->lim->max_name_len);
  memcpy(f->path + f->plen, sep, strlen(sep));
  memcpy(f->path + f->plen + strlen(sep), seg, n);
  f->plen = need;
  f->path[f->plen] = 0;
  return 0;
}

static int emit(struct fl *f, yaml_mark_t m, const char *v, size_t n,
                enum profiles_type t) {
  if (f->plen == 0)
    return fl_fail(f, m, KEEL_EPARSE, "empty property name%s", NULL);
  if (f->out->count >= f->lim->max_props)
    return fl_limit(f, m, "too many properties", f->lim->max_props);
  if (n > f->lim->max_value_len)
    return fl_limit(f, m, "value too long", f->lim->max_value_len);
  if (memchr(v, 0, n))
    return fl_fail(f, m, KEEL_EPARSE, "value of '%s' contains a NUL character",
                   f->path);
  if (profiles_list_add(f->out, f->path, v, n, t))
    return -ENOMEM;
  return 0;
}

static int is_merge_key(yaml_node_t *k) {
  return k->type == YAML_SCALAR_NODE &&
         k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
         k->data.scalar.length == 2 &&
         memcmp(k->data.scalar.value, "<<", 2) == 0;
}

struct kv {
  yaml_node_t *key;
  yaml_node_t *val;
};

struct kvs {
  struct kv *v;
  size_t n, cap;
};

static int kv_push(struct kvs *s, yaml_node_t *k, yaml_node_t *v) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    struct kv *p = realloc(s->v, cap * sizeof *p);
    if (!p)
      return -ENOMEM;
    s->v = p;
    s->cap = cap;
  }
  s->v[s->n++] = (struct kv){k, v};
  return 0;
}

static int key_cmp(const void *a, const void *b) {
  yaml_node_t *x = *(yaml_node_t *const *)a, *y = *(yaml_node_t *const *)b;
  size_t n = x->data.scalar.length < y->data.scalar.length
                 ? x->data.scalar.length
                 : y->data.scalar.length;
  int c = memcmp(x->data.scalar.value, y->data.scalar.value, n);
  if (c)
    return c;
  return x->data.scalar.length < y->data.scalar.length   ? -1
         : x->data.scalar.length > y->data.scalar.length ? 1
                                                         : 0;
}

struct kv_pos {
  yaml_node_t *key;
  size_t pos;
};

static int kv_pos_cmp(const void *a, const void *b) {
  const struct kv_pos *x = a, *y = b;
  int c = key_cmp(&x->key, &y->key);
  if (c)
    return c;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Drops later pairs whose key an earlier pair in s->v[base..] already has,
 * keeping the order: O(n log n), so that merge-heavy documents stay cheap. */
static int dedupe_first(struct kvs *s, size_t base) {
  size_t n = s->n - base;
  if (n < 2)
    return 0;
  struct kv_pos *p = malloc(n * sizeof *p);
  char *drop = calloc(n, 1);
  if (!p || !drop) {
    free(p);
    free(drop);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    p[i] = (struct kv_pos){s->v[base + i].key, i};
  qsort(p, n, sizeof *p, kv_pos_cmp);
  for (size_t i = 1; i < n; i++)
    if (key_cmp(&p[i - 1].key, &p[i].key) == 0)
      drop[p[i].pos] = 1;
  size_t w = base;
  for (size_t i = 0; i < n; i++)
    if (!drop[i])
      s->v[w++] = s->v[base + i];
  s->n = w;
  free(p);
  free(drop);
  return 0;
}

/* The effective pairs of a mapping: its own keys, then keys from its `<<`
 * merge sources that it does not set itself (earlier sources win, as the
 * YAML merge-key spec says). */
static int collect_pairs(struct fl *f, yaml_node_t *map, struct kvs *out,
                         size_t depth) {
  if (depth > f->lim->max_depth)
    return fl_limit(f, map->start_mark, "nesting too deep", f->lim->max_depth);
  yaml_node_pair_t *b = map->data.mapping.pairs.start;
  yaml_node_pair_t *e = map->data.mapping.pairs.top;
  size_t own = 0, base = out->n;
  for (yaml_node_pair_t *p = b; p < e; p++) {
    yaml_node_t *k = yaml_document_get_node(f->doc, p->key);
    yaml_node_t *v = yaml_document_get_node(f->doc, p->value);
    if (++f->visits > f->budget)
      return fl_limit(f, map->start_mark,
                      "too many YAML nodes after alias expansion", f->budget);
    if (k->type != YAML_SCALAR_NODE)
      return fl_fail(f, k->start_mark, KEEL_EPARSE,
                     "a map key must be a scalar%s", NULL);
    if (is_merge_key(k))
      continue;
    if (memchr(k->data.scalar.value, 0, k->data.scalar.length))
      return fl_fail(f, k->start_mark, KEEL_EPARSE,
                     "a map key contains a NUL character%s", NULL);
    if (kv_push(out, k, v))
      return -ENOMEM;
    own++;
  }
  /* Duplicate keys are errors, as in Spring Boot's YAML loader. */
  if (own > 1) {
    yaml_node_t **keys = malloc(own * sizeof *keys);
    if (!keys)
      return -ENOMEM;
    for (size_t i = 0; i < own; i++)
      keys[i] = out->v[out->n - own + i].key;
    qsort(keys, own, sizeof *keys, key_cmp);
    for (size_t i = 1; i < own; i++) {
      if (key_cmp(&keys[i - 1], &keys[i]) == 0) {
        yaml_node_t *later =
            keys[i]->start_mark.index > keys[i - 1]->start_mark.index
                ? keys[i]
                : keys[i - 1];
        char k[200];
        snprintf(k, sizeof k, "%.*s", (int)later->data.scalar.length,
                 (const char *)later->data.scalar.value);
        free(keys);
        return fl_fail(f, later->start_mark, KEEL_EPARSE, "duplicate key '%s'",
                       k);
      }
    }
    free(keys);
  }
  for (yaml_node_pair_t *p = b; p < e; p++) {
    yaml_node_t *k = yaml_document_get_node(f->doc, p->key);
    if (!is_merge_key(k))
      continue;
    yaml_node_t *v = yaml_document_get_node(f->doc, p->value);
    yaml_node_t *srcs[1] = {v};
    yaml_node_item_t *ib = NULL, *ie = NULL;
    size_t ns = 1;
    if (v->type == YAML_SEQUENCE_NODE) {
      ib = v->data.sequence.items.start;
      ie = v->data.sequence.items.top;
      ns = (size_t)(ie - ib);
    }
    for (size_t s = 0; s < ns; s++) {
      yaml_node_t *m = ib ? yaml_document_get_node(f->doc, ib[s]) : srcs[0];
      if (m->type != YAML_MAPPING_NODE)
        return fl_fail(f, m->start_mark, KEEL_EPARSE,
                       "a '<<' merge key needs a map or a list of maps%s",
                       NULL);
      struct kvs sub = {0};
      int rc = collect_pairs(f, m, &sub, depth + 1);
      for (size_t i = 0; !rc && i < sub.n; i++)
        rc = kv_push(out, sub.v[i].key, sub.v[i].val);
      free(sub.v);
      if (rc)
        return rc;
    }
  }
  return dedupe_first(out, base);
}

static int flatten(struct fl *f, yaml_node_t *n, size_t depth) {
  if (++f->visits > f->budget)
    return fl_limit(f, n->start_mark,
                    "too many YAML nodes after alias expansion", f->budget);
  if (depth > f->lim->max_depth)
    return fl_limit(f, n->start_mark, "nesting too deep", f->lim->max_depth);
  switch (n->type) {
  case YAML_SCALAR_NODE: {
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
      return emit(f, n->start_mark, v, len, PROFILES_STRING);
    enum profiles_type t;
    char *c;
    if (profiles_scalar_resolve(v, len, &t, &c))
      return -ENOMEM;
    int rc = emit(f, n->start_mark, c, strlen(c), t);
    free(c);
    return rc;
  }
  case YAML_SEQUENCE_NODE: {
    yaml_node_item_t *b = n->data.sequence.items.start;
    yaml_node_item_t *e = n->data.sequence.items.top;
    if (b == e)
      return emit(f, n->start_mark, "", 0, PROFILES_STRING);
    for (yaml_node_item_t *i = b; i < e; i++) {
      char idx[24];
      int il = snprintf(idx, sizeof idx, "%zu", (size_t)(i - b));
      size_t saved = f->plen;
      int rc = path_push(f, n->start_mark, idx, (size_t)il, 1);
      if (!rc)
        rc = flatten(f, yaml_document_get_node(f->doc, *i), depth + 1);
      f->plen = saved;
      f->path[saved] = 0;
      if (rc)
        return rc;
    }
    return 0;
  }
  case YAML_MAPPING_NODE: {
    struct kvs pairs = {0};
    int rc = collect_pairs(f, n, &pairs, depth);
    for (size_t i = 0; !rc && i < pairs.n; i++) {
      yaml_node_t *k = pairs.v[i].key;
      size_t saved = f->plen;
      rc = path_push(f, k->start_mark, (const char *)k->data.scalar.value,
                     k->data.scalar.length, 0);
      if (!rc)
        rc = flatten(f, pairs.v[i].val, depth + 1);
      f->plen = saved;
      f->path[saved] = 0;
    }
    free(pairs.v);
    return rc;
  }
  default:
    return fl_fail(f, n->start_mark, KEEL_EPARSE, "empty YAML node%s", NULL);
  }
}

static int yaml_problem(const yaml_parser_t *p, const char *file,
                        struct profiles_error *err) {
  if (p->error == YAML_MEMORY_ERROR)
    return -ENOMEM;
  const char *what = p->problem ? p->problem : "invalid YAML";
  if (p->context)
    perr_set(err, file, (int)p->problem_mark.line + 1,
             (int)p->problem_mark.column + 1, "%s %s (started at line %d)",
             what, p->context, (int)p->context_mark.line + 1);
  else
    perr_set(err, file, (int)p->problem_mark.line + 1,
             (int)p->problem_mark.column + 1, "%s", what);
  return KEEL_EPARSE;
}

/* Pass 1: syntax, depth and node count, without building anything. */
static int prescan(const char *buf, size_t len, const char *file,
                   const struct profiles_limits *lim,
                   struct profiles_error *err) {
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p))
    return -ENOMEM;
  yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
  size_t depth = 0, nodes = 0, max_nodes = lim->max_props * 16 + 64;
  int rc = 0;
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      rc = yaml_problem(&p, file, err);
      break;
    }
    yaml_event_type_t t = ev.type;
    yaml_mark_t m = ev.start_mark;
    yaml_event_delete(&ev);
    if (t == YAML_STREAM_END_EVENT)
      break;
    if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
      if (++depth > lim->max_depth) {
        perr_set(err, file, (int)m.line + 1, (int)m.column + 1,
                 "nesting too deep (limit %zu)", lim->max_depth);
        rc = KEEL_ELIMIT;
        break;
      }
    } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
      depth--;
    }
    if (t == YAML_SCALAR_EVENT || t == YAML_ALIAS_EVENT ||
        t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
      if (++nodes > max_nodes) {
        perr_set(err, file, (int)m.line + 1, (int)m.column + 1,
                 "too many YAML nodes (limit %zu, 16 x max properties)",
                 max_nodes);
        rc = KEEL_ELIMIT;
        break;
      }
    }
  }
  yaml_parser_delete(&p);
  return rc;
}

int profiles_parse_yaml(const char *buf, size_t len, const char *filename,
                        const char *base_profile,
                        const struct profiles_limits *lim,
                        struct profiles_docs *out, struct profiles_error *err) {
  struct profiles_limits dl;
  const char *file;
  int begin = pparse_begin(len, filename, base_profile, &lim, &dl, &file, err);
  if (begin)
    return begin;
  int rc = prescan(buf, len, file, lim, err);
  if (rc)
    return rc;

  yaml_parser_t p;
  if (!yaml_parser_initialize(&p))
    return -ENOMEM;
  yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
  struct profiles_docs tmp;
  profiles_docs_init(&tmp);
  /* The base profile always gets a document, even an empty one: importing
   * a file into a profile replaces that profile. */
  {
    struct profiles_list none;
    profiles_list_init(&none);
    rc = pdocs_add(&tmp, base_profile, &none, lim);
    if (rc) {
      yaml_parser_delete(&p);
      return rc;
    }
  }
  char *path = malloc(lim->max_name_len + 1);
  if (!path) {
    yaml_parser_delete(&p);
    return -ENOMEM;
  }
  for (;;) {
    yaml_document_t doc;
    if (!yaml_parser_load(&p, &doc)) {
      rc = yaml_problem(&p, file, err);
      break;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
      yaml_document_delete(&doc);
      break;
    }
    struct profiles_list props;
    profiles_list_init(&props);
    struct fl f = {.doc = &doc,
                   .lim = lim,
                   .file = file,
                   .err = err,
                   .out = &props,
                   .path = path,
                   .plen = 0,
                   .visits = 0,
                   .budget = lim->max_props * 16 + 64};
    path[0] = 0;
    if (root->type == YAML_MAPPING_NODE) {
      rc = flatten(&f, root, 1);
    } else if (!(root->type == YAML_SCALAR_NODE &&
                 root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                 root->data.scalar.length == 0)) {
      rc = fl_fail(&f, root->start_mark, KEEL_EPARSE,
                   "a document must be a map of properties%s", NULL);
    }
    yaml_mark_t dm = root->start_mark;
    yaml_document_delete(&doc);
    char **names = NULL;
    size_t nn = 0;
    if (!rc) {
      char why[300] = "";
      rc = ptake_on_profile(&props, &names, &nn, why, sizeof why);
      if (rc == -EINVAL)
        perr_set(err, file, (int)dm.line + 1, (int)dm.column + 1, "%s", why);
    }
    for (size_t i = 0; !rc && i < (nn ? nn : 1); i++) {
      struct profiles_list c;
      if (i + 1 < nn) {
        rc = profiles_list_copy(&c, &props);
        if (rc)
          break;
      } else {
        c = props;
        profiles_list_init(&props);
      }
      rc = pdocs_add(&tmp, nn ? names[i] : base_profile, &c, lim);
      if (rc == KEEL_ELIMIT)
        perr_set(err, file, (int)dm.line + 1, (int)dm.column + 1,
                 "too many properties (limit %zu)", lim->max_props);
      if (rc == -E2BIG) {
        perr_set(err, file, (int)dm.line + 1, (int)dm.column + 1,
                 "too many profiles in one import (limit %d)", PDOCS_MAX);
        rc = KEEL_ELIMIT;
      }
    }
    for (size_t i = 0; i < nn; i++)
      free(names[i]);
    free(names);
    profiles_list_free(&props);
    if (rc)
      break;
  }
  free(path);
  yaml_parser_delete(&p);
  if (rc) {
    profiles_docs_free(&tmp);
    return rc;
  }
  rc = pdocs_absorb(out, &tmp, lim);
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

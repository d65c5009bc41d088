/* render.c — property lists back to documents: YAML, nested JSON,
 * .properties, shell `export` lines, and Spring Cloud Config's Environment
 * JSON.
 *
 * YAML and JSON need a tree. build_tree() inserts the (sorted) names one by
 * one; sorted order puts "a" before "a.b" before "a[0]", so a property can
 * only collide with an earlier one whose path it runs through. Such a
 * property (and one whose name does not split cleanly) becomes a top-level
 * key holding its whole name; Spring's flattening turns that key back into
 * the same name, which is what makes import -> export -> import stable.
 *
 * JSON is written by hand rather than through jansson's dumper so that
 * floats keep their canonical text (jansson prints 0.1 as
 * 0.10000000000000001); see docs/decisions/0401.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "keel_error.h"
#include "profiles.h"
#include "profiles_int.h"

/* ---- tree ------------------------------------------------------------- */

struct tnode {
  char *key; /* "name", "[n]" (index), "[x]" (bracketed key) or, for a
                top-level literal, the whole property name */
  int is_index;
  unsigned long idx;
  const struct profiles_prop *leaf;
  struct tnode **kids;
  size_t nkids, cap;
};

static void tree_free(struct tnode *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->nkids; i++)
    tree_free(t->kids[i]);
  free(t->kids);
  free(t->key);
  free(t);
}

static struct tnode *tree_add(struct tnode *parent, const char *key,
                              size_t klen) {
  if (parent->nkids == parent->cap) {
    size_t cap = parent->cap ? parent->cap * 2 : 4;
    struct tnode **k = realloc(parent->kids, cap * sizeof *k);
    if (!k)
      return NULL;
    parent->kids = k;
    parent->cap = cap;
  }
  struct tnode *n = calloc(1, sizeof *n);
  if (!n)
    return NULL;
  n->key = strndup(key, klen);
  if (!n->key) {
    free(n);
    return NULL;
  }
  parent->kids[parent->nkids++] = n;
  return n;
}

static struct tnode *tree_find(struct tnode *parent, const char *key,
                               size_t klen) {
  /* Sorted input: the match, if any, is nearly always the last child. */
  for (size_t i = parent->nkids; i-- > 0;) {
    struct tnode *k = parent->kids[i];
    if (strlen(k->key) == klen && memcmp(k->key, key, klen) == 0)
      return k;
  }
  return NULL;
}

struct seg {
  const char *s;
  size_t n;
  int is_index;
  unsigned long idx;
};

/* Splits a name into segments; -1 when it is malformed for the tree. */
static int split_name(const char *name, struct seg *segs, size_t max,
                      size_t *nseg) {
  size_t k = 0;
  const char *p = name;
  int need_name = 1;
  while (*p) {
    if (k == max)
      return -1;
    if (*p == '[') {
      if (k == 0)
        return -1;
      const char *e = strchr(p, ']');
      if (!e || e == p + 1 || memchr(p + 1, '[', (size_t)(e - p - 1)))
        return -1;
      size_t dl = strspn(p + 1, "0123456789");
      struct seg sg = {p, (size_t)(e - p + 1), 0, 0};
      if (p + 1 + dl == e && dl < 10 && (dl == 1 || p[1] != '0')) {
        sg.is_index = 1;
        sg.idx = strtoul(p + 1, NULL, 10);
      }
      segs[k++] = sg;
      p = e + 1;
      if (*p && *p != '.' && *p != '[')
        return -1;
      need_name = 0;
      continue;
    }
    if (*p == '.') {
      if (k == 0)
        return -1;
      p++;
      need_name = 1;
      if (*p == 0 || *p == '.' || *p == '[')
        return -1;
      continue;
    }
    if (!need_name)
      return -1;
    size_t n = strcspn(p, ".[]");
    if (p[n] == ']')
      return -1;
    segs[k++] = (struct seg){p, n, 0, 0};
    p += n;
    need_name = 0;
  }
  *nseg = k;
  return k ? 0 : -1;
}

#define MAX_SEGS 256

static int tree_insert(struct tnode *root, const struct profiles_prop *p) {
  struct seg segs[MAX_SEGS];
  size_t ns = 0;
  if (split_name(p->name, segs, MAX_SEGS, &ns) == 0) {
    struct tnode *cur = root;
    size_t i;
    for (i = 0; i < ns; i++) {
      struct tnode *k = tree_find(cur, segs[i].s, segs[i].n);
      int last = i + 1 == ns;
      if (!k) {
        struct tnode *node = cur;
        for (size_t j = i; j < ns; j++) {
          node = tree_add(node, segs[j].s, segs[j].n);
          if (!node)
            return -ENOMEM;
          node->is_index = segs[j].is_index;
          node->idx = segs[j].idx;
        }
        node->leaf = p;
        return 0;
      }
      if (k->leaf || last)
        break; /* runs through a leaf, or lands on a branch */
      cur = k;
    }
  }
  /* Literal top-level key holding the whole name. */
  struct tnode *n = tree_add(root, p->name, strlen(p->name));
  if (!n)
    return -ENOMEM;
  n->leaf = p;
  return 0;
}

static int build_tree(const struct profiles_list *l, struct tnode **out) {
  struct tnode *root = calloc(1, sizeof *root);
  if (!root)
    return -ENOMEM;
  for (size_t i = 0; i < l->count; i++) {
    if (tree_insert(root, &l->items[i])) {
      tree_free(root);
      return -ENOMEM;
    }
  }
  *out = root;
  return 0;
}

static int is_seq(const struct tnode *t) {
  if (t->nkids == 0)
    return 0;
  for (size_t i = 0; i < t->nkids; i++)
    if (!t->kids[i]->is_index || t->kids[i]->idx != i)
      return 0;
  return 1;
}

static int check_utf8(const struct profiles_list *l,
                      struct profiles_error *err) {
  for (size_t i = 0; i < l->count; i++) {
    const struct profiles_prop *p = &l->items[i];
    if (!putf8_valid(p->name, strlen(p->name)) ||
        !putf8_valid(p->value, p->value_len)) {
      perr_set(err, NULL, 0, 0, "property '%s' is not valid UTF-8", p->name);
      return -EILSEQ;
    }
  }
  return 0;
}

/* ---- YAML ------------------------------------------------------------- */

static int yaml_write(void *data, unsigned char *buf, size_t size) {
  pbuf_put(data, (const char *)buf, size);
  return !((struct pbuf *)data)->oom;
}

static int emit_scalar(yaml_emitter_t *e, const char *v, size_t n,
                       yaml_scalar_style_t style) {
  yaml_event_t ev;
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)v, (int)n,
                                    style == YAML_ANY_SCALAR_STYLE ||
                                        style == YAML_PLAIN_SCALAR_STYLE,
                                    1, style))
    return -ENOMEM;
  return yaml_emitter_emit(e, &ev) ? 0 : -ENOMEM;
}

static int emit_key(yaml_emitter_t *e, const char *k) {
  /* "<<" must not read back as a merge key. */
  return emit_scalar(e, k, strlen(k),
                     strcmp(k, "<<") == 0 ? YAML_SINGLE_QUOTED_SCALAR_STYLE
                                          : YAML_ANY_SCALAR_STYLE);
}

static int emit_leaf(yaml_emitter_t *e, const struct profiles_prop *p) {
  switch (p->type) {
  case PROFILES_STRING: {
    enum profiles_type t;
    char *c;
    if (profiles_scalar_resolve(p->value, p->value_len, &t, &c))
      return -ENOMEM;
    free(c);
    /* A string that reads like another type must be quoted. */
    yaml_scalar_style_t st = t == PROFILES_STRING
                                 ? YAML_ANY_SCALAR_STYLE
                                 : YAML_SINGLE_QUOTED_SCALAR_STYLE;
    /* Multi-line text reads best as a literal block; the emitter falls back
     * to quoting when the text cannot be one (e.g. trailing blanks). */
    if (memchr(p->value, '\n', p->value_len))
      st = YAML_LITERAL_SCALAR_STYLE;
    return emit_scalar(e, p->value, p->value_len, st);
  }
  case PROFILES_NULL:
    return emit_scalar(e, "null", 4, YAML_PLAIN_SCALAR_STYLE);
  default:
    return emit_scalar(e, p->value, p->value_len, YAML_PLAIN_SCALAR_STYLE);
  }
}

static int emit_node(yaml_emitter_t *e, const struct tnode *t) {
  yaml_event_t ev;
  if (t->leaf)
    return emit_leaf(e, t->leaf);
  int seq = is_seq(t);
  if (seq ? !yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                  YAML_BLOCK_SEQUENCE_STYLE)
          : !yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                 YAML_BLOCK_MAPPING_STYLE))
    return -ENOMEM;
  if (!yaml_emitter_emit(e, &ev))
    return -ENOMEM;
  for (size_t i = 0; i < t->nkids; i++) {
    int rc = seq ? 0 : emit_key(e, t->kids[i]->key);
    if (!rc)
      rc = emit_node(e, t->kids[i]);
    if (rc)
      return rc;
  }
  if (seq ? !yaml_sequence_end_event_initialize(&ev)
          : !yaml_mapping_end_event_initialize(&ev))
    return -ENOMEM;
  return yaml_emitter_emit(e, &ev) ? 0 : -ENOMEM;
}

int profiles_render_yaml(const struct profiles_list *l, char **out,
                         size_t *out_len, struct profiles_error *err) {
  *out = NULL;
  int rc = check_utf8(l, err);
  if (rc)
    return rc;
  struct tnode *root;
  if ((rc = build_tree(l, &root)))
    return rc;
  struct pbuf b = {0};
  yaml_emitter_t e;
  if (!yaml_emitter_initialize(&e)) {
    tree_free(root);
    return -ENOMEM;
  }
  yaml_emitter_set_output(&e, yaml_write, &b);
  yaml_emitter_set_unicode(&e, 1);
  yaml_emitter_set_width(&e, -1);
  yaml_emitter_set_indent(&e, 2);
  yaml_event_t ev;
  rc = -ENOMEM;
  if (yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
      yaml_emitter_emit(&e, &ev) &&
      yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
      yaml_emitter_emit(&e, &ev)) {
    if (root->nkids == 0) {
      /* An empty profile is an empty map: "{}". */
      rc =
          (yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                               YAML_FLOW_MAPPING_STYLE) &&
           yaml_emitter_emit(&e, &ev) &&
           yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(&e, &ev))
              ? 0
              : -ENOMEM;
    } else {
      rc = emit_node(&e, root);
    }
    if (!rc)
      rc = (yaml_document_end_event_initialize(&ev, 1) &&
            yaml_emitter_emit(&e, &ev) &&
            yaml_stream_end_event_initialize(&ev) &&
            yaml_emitter_emit(&e, &ev) && yaml_emitter_flush(&e))
               ? 0
               : -ENOMEM;
  }
  if (rc && e.error != YAML_NO_ERROR && e.error != YAML_MEMORY_ERROR &&
      e.error != YAML_WRITER_ERROR) {
    perr_set(err, NULL, 0, 0, "YAML emitter: %s",
             e.problem ? e.problem : "error");
    rc = -EILSEQ;
  }
  yaml_emitter_delete(&e);
  tree_free(root);
  if (rc) {
    pbuf_free(&b);
    return rc;
  }
  return pbuf_finish(&b, out, out_len);
}

/* ---- JSON ------------------------------------------------------------- */

static void json_str(struct pbuf *b, const char *s, size_t n) {
  pbuf_putc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"':
      pbuf_puts(b, "\\\"");
      break;
    case '\\':
      pbuf_puts(b, "\\\\");
      break;
    case '\n':
      pbuf_puts(b, "\\n");
      break;
    case '\r':
      pbuf_puts(b, "\\r");
      break;
    case '\t':
      pbuf_puts(b, "\\t");
      break;
    case '\b':
      pbuf_puts(b, "\\b");
      break;
    case '\f':
      pbuf_puts(b, "\\f");
      break;
    default:
      if (c < 0x20 || c == 0x7f)
        pbuf_printf(b, "\\u%04x", c);
      else
        pbuf_putc(b, (char)c);
    }
  }
  pbuf_putc(b, '"');
}

/* A property value as a JSON value of its type. */
static void json_value(struct pbuf *b, const struct profiles_prop *p) {
  switch (p->type) {
  case PROFILES_INTEGER:
  case PROFILES_BOOLEAN:
    pbuf_put(b, p->value, p->value_len);
    break;
  case PROFILES_FLOAT:
    if (!strcmp(p->value, ".inf") || !strcmp(p->value, "-.inf") ||
        !strcmp(p->value, ".nan"))
      json_str(b, p->value, p->value_len); /* .inf -.inf .nan */
    else
      pbuf_put(b, p->value, p->value_len);
    break;
  case PROFILES_NULL:
    pbuf_puts(b, "null");
    break;
  default:
    json_str(b, p->value, p->value_len);
  }
}

static void json_nl(struct pbuf *b, int indent, int depth) {
  if (!indent)
    return;
  pbuf_putc(b, '\n');
  for (int i = 0; i < indent * depth; i++)
    pbuf_putc(b, ' ');
}

static void json_node(struct pbuf *b, const struct tnode *t, int indent,
                      int depth) {
  if (t->leaf) {
    json_value(b, t->leaf);
    return;
  }
  int seq = is_seq(t);
  pbuf_putc(b, seq ? '[' : '{');
  for (size_t i = 0; i < t->nkids; i++) {
    if (i)
      pbuf_putc(b, ',');
    json_nl(b, indent, depth + 1);
    if (!seq) {
      json_str(b, t->kids[i]->key, strlen(t->kids[i]->key));
      pbuf_puts(b, indent ? ": " : ":");
    }
    json_node(b, t->kids[i], indent, depth + 1);
  }
  if (t->nkids)
    json_nl(b, indent, depth);
  pbuf_putc(b, seq ? ']' : '}');
}

int profiles_render_json(const struct profiles_list *l, int indent, char **out,
                         size_t *out_len, struct profiles_error *err) {
  *out = NULL;
  int rc = check_utf8(l, err);
  if (rc)
    return rc;
  struct tnode *root;
  if ((rc = build_tree(l, &root)))
    return rc;
  struct pbuf b = {0};
  json_node(&b, root, indent < 0 ? 0 : indent, 0);
  if (indent)
    pbuf_putc(&b, '\n');
  tree_free(root);
  return pbuf_finish(&b, out, out_len);
}

/* ---- .properties ------------------------------------------------------ */

/* As java.util.Properties.saveConvert: blanks escaped in keys (only a
 * leading one in values), the separators and comment characters escaped,
 * control and non-ASCII characters as \uXXXX (UTF-16 surrogate pairs above
 * U+FFFF). */
static void props_escape(struct pbuf *b, const char *s, size_t n, int is_key) {
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) {
      uint32_t cp;
      size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
      cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
      for (size_t k = 1; k < len; k++)
        cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        pbuf_printf(b, "\\u%04X\\u%04X", 0xD800 + (cp >> 10),
                    0xDC00 + (cp & 0x3FF));
      } else {
        pbuf_printf(b, "\\u%04X", cp);
      }
      i += len;
      continue;
    }
    switch (c) {
    case ' ':
      pbuf_puts(b, (is_key || i == 0) ? "\\ " : " ");
      break;
    case '\t':
      pbuf_puts(b, "\\t");
      break;
    case '\n':
      pbuf_puts(b, "\\n");
      break;
    case '\r':
      pbuf_puts(b, "\\r");
      break;
    case '\f':
      pbuf_puts(b, "\\f");
      break;
    case '=':
    case ':':
    case '#':
    case '!':
    case '\\':
      pbuf_putc(b, '\\');
      pbuf_putc(b, (char)c);
      break;
    default:
      if (c < 0x20 || c == 0x7f)
        pbuf_printf(b, "\\u%04X", c);
      else
        pbuf_putc(b, (char)c);
    }
    i++;
  }
}

int profiles_render_properties(const struct profiles_list *l, char **out,
                               size_t *out_len, struct profiles_error *err) {
  *out = NULL;
  int rc = check_utf8(l, err);
  if (rc)
    return rc;
  struct pbuf b = {0};
  for (size_t i = 0; i < l->count; i++) {
    const struct profiles_prop *p = &l->items[i];
    props_escape(&b, p->name, strlen(p->name), 1);
    pbuf_putc(&b, '=');
    props_escape(&b, p->value, p->value_len, 0);
    pbuf_putc(&b, '\n');
  }
  if (!b.data)
    pbuf_puts(&b, "");
  return pbuf_finish(&b, out, out_len);
}

/* ---- environment variables -------------------------------------------- */

char *profiles_env_name(const char *prop) {
  size_t n = strlen(prop);
  char *o = malloc(n + 1);
  if (!o)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)prop[i];
    char w;
    if (c == '.' || c == '[' || c == ']' || c == '_')
      w = '_';
    else if (c == '-')
      continue;
    else if (c < 0x80 && isalnum(c))
      w = (char)toupper(c);
    else {
      free(o);
      return NULL;
    }
    if (w == '_' && k > 0 && o[k - 1] == '_')
      continue;
    o[k++] = w;
  }
  while (k > 0 && o[k - 1] == '_')
    k--;
  o[k] = 0;
  if (k == 0 || isdigit((unsigned char)o[0])) {
    free(o);
    return NULL;
  }
  return o;
}

void profiles_env_entries_free(struct profiles_env_entry *e, size_t n) {
  if (!e)
    return;
  for (size_t i = 0; i < n; i++) {
    free(e[i].name);
    free(e[i].value);
  }
  free(e);
}

static int env_ent_cmp(const void *a, const void *b) {
  const struct profiles_env_entry *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

int profiles_env_entries(const struct profiles_list *l, unsigned flags,
                         struct profiles_env_entry **out, size_t *n,
                         struct profiles_error *err) {
  *out = NULL;
  *n = 0;
  struct profiles_env_entry *e = calloc(l->count + 1, sizeof *e);
  if (!e)
    return -ENOMEM;
  size_t k = 0;
  int rc = 0;
  for (size_t i = 0; i < l->count && !rc; i++) {
    const struct profiles_prop *p = &l->items[i];
    char *name = profiles_env_name(p->name);
    if (!name) {
      if (flags & PROFILES_ENV_SKIP_INVALID)
        continue;
      perr_set(err, NULL, 0, 0,
               "property '%s' has no valid environment variable name", p->name);
      rc = -EINVAL;
      break;
    }
    e[k].name = name;
    e[k].value = strdup(p->type == PROFILES_NULL ? "" : p->value);
    e[k].prop = p->name;
    k++;
    if (!e[k - 1].value)
      rc = -ENOMEM;
  }
  if (!rc && k > 1) {
    /* Two properties with one variable would make the result depend on
     * order: refuse, naming both. */
    struct profiles_env_entry **s = malloc(k * sizeof *s);
    if (!s) {
      rc = -ENOMEM;
    } else {
      for (size_t i = 0; i < k; i++)
        s[i] = &e[i];
      qsort(s, k, sizeof *s, env_ent_cmp);
      for (size_t i = 1; i < k; i++) {
        if (strcmp(s[i - 1]->name, s[i]->name) == 0) {
          perr_set(err, NULL, 0, 0,
                   "properties '%s' and '%s' both map to the environment "
                   "variable %s",
                   s[i - 1]->prop, s[i]->prop, s[i]->name);
          rc = -EINVAL;
          break;
        }
      }
      free(s);
    }
  }
  if (rc) {
    profiles_env_entries_free(e, k);
    return rc;
  }
  *out = e;
  *n = k;
  return 0;
}

int profiles_render_env(const struct profiles_list *l, unsigned flags,
                        char **out, size_t *out_len,
                        struct profiles_error *err) {
  *out = NULL;
  struct profiles_env_entry *e;
  size_t n;
  int rc = profiles_env_entries(l, flags, &e, &n, err);
  if (rc)
    return rc;
  struct pbuf b = {0};
  pbuf_puts(&b, "");
  for (size_t i = 0; i < n; i++) {
    pbuf_puts(&b, "export ");
    pbuf_puts(&b, e[i].name);
    pbuf_puts(&b, "='");
    for (const char *v = e[i].value; *v; v++) {
      if (*v == '\'')
        pbuf_puts(&b, "'\\''");
      else
        pbuf_putc(&b, *v);
    }
    pbuf_puts(&b, "'\n");
  }
  profiles_env_entries_free(e, n);
  return pbuf_finish(&b, out, out_len);
}

/* ---- Spring Cloud Config Environment ---------------------------------- */

int profiles_render_environment(const char *app, const char *profiles,
                                const char *label, int64_t revision,
                                const struct profiles_named_source *srcs,
                                size_t n, int v2, char **out, size_t *out_len,
                                struct profiles_error *err) {
  *out = NULL;
  for (size_t s = 0; s < n; s++) {
    int rc = check_utf8(srcs[s].props, err);
    if (rc)
      return rc;
  }
  if (!putf8_valid(app, strlen(app)) ||
      (profiles && !putf8_valid(profiles, strlen(profiles))) ||
      (label && !putf8_valid(label, strlen(label)))) {
    perr_set(err, NULL, 0, 0, "app, profiles or label is not valid UTF-8");
    return -EILSEQ;
  }
  struct pbuf b = {0};
  pbuf_puts(&b, "{\"name\":");
  json_str(&b, app, strlen(app));
  pbuf_puts(&b, ",\"profiles\":[");
  const char *p = profiles ? profiles : "";
  int first = 1;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    const char *a = p, *z = p + len;
    while (a < z && (*a == ' ' || *a == '\t'))
      a++;
    while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
      z--;
    if (z > a) {
      if (!first)
        pbuf_putc(&b, ',');
      json_str(&b, a, (size_t)(z - a));
      first = 0;
    }
    p += len;
    if (*p == ',')
      p++;
  }
  if (first)
    json_str(&b, PROFILES_DEFAULT_PROFILE, strlen(PROFILES_DEFAULT_PROFILE));
  pbuf_puts(&b, "],\"label\":");
  if (label)
    json_str(&b, label, strlen(label));
  else
    pbuf_puts(&b, "null");
  pbuf_puts(&b, ",\"version\":");
  if (revision >= 0)
    pbuf_printf(&b, "\"%lld\"", (long long)revision);
  else
    pbuf_puts(&b, "null");
  pbuf_puts(&b, ",\"state\":null,\"propertySources\":[");
  for (size_t s = 0; s < n; s++) {
    if (s)
      pbuf_putc(&b, ',');
    pbuf_puts(&b, "{\"name\":");
    json_str(&b, srcs[s].name, strlen(srcs[s].name));
    pbuf_puts(&b, ",\"source\":{");
    const struct profiles_list *l = srcs[s].props;
    for (size_t i = 0; i < l->count; i++) {
      const struct profiles_prop *q = &l->items[i];
      if (i)
        pbuf_putc(&b, ',');
      json_str(&b, q->name, strlen(q->name));
      pbuf_putc(&b, ':');
      if (!v2) {
        json_value(&b, q);
        continue;
      }
      pbuf_puts(&b, "{\"value\":");
      json_value(&b, q);
      if (srcs[s].key_prefix) {
        pbuf_puts(&b, ",\"origin\":");
        struct pbuf o = {0};
        pbuf_puts(&o, srcs[s].key_prefix);
        pbuf_puts(&o, q->name);
        if (o.oom) {
          pbuf_free(&b);
          return -ENOMEM;
        }
        json_str(&b, o.data, o.len);
        pbuf_free(&o);
      }
      pbuf_putc(&b, '}');
    }
    pbuf_puts(&b, "}}");
  }
  pbuf_puts(&b, "]}");
  return pbuf_finish(&b, out, out_len);
}

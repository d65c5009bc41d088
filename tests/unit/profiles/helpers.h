/* helpers.h — small helpers shared by the profiles unit tests. */
#ifndef TEST_PROFILES_HELPERS_H
#define TEST_PROFILES_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "keel_error.h"
#include "profiles.h"

/* Parses YAML text into docs for base profile "default"; asserts success. */
static inline void parse_yaml_ok(const char *text, struct profiles_docs *d) {
  struct profiles_error err = {0};
  int rc = profiles_parse_yaml(text, strlen(text), "t.yml", "default", NULL, d,
                               &err);
  if (rc)
    fail_msg("parse failed (%d): %s", rc, err.msg);
}

/* The default profile's list after parsing YAML text (caller frees docs). */
static inline const struct profiles_list *yaml_props(const char *text,
                                                     struct profiles_docs *d) {
  profiles_docs_init(d);
  parse_yaml_ok(text, d);
  const struct profiles_doc *doc = profiles_docs_find(d, "default");
  assert_non_null(doc);
  return &doc->props;
}

/* Asserts a property's value and type. */
static inline void assert_prop(const struct profiles_list *l, const char *name,
                               const char *value, enum profiles_type type) {
  const struct profiles_prop *p = profiles_list_find(l, name);
  if (!p)
    fail_msg("property '%s' missing", name);
  if (strcmp(p->value, value) != 0)
    fail_msg("property '%s' = '%s', want '%s'", name, p->value, value);
  if (p->type != type)
    fail_msg("property '%s' type %s, want %s", name,
             profiles_type_name(p->type), profiles_type_name(type));
}

/* Builds a sorted list from name, value, type triples ending with NULL. */
static inline void make_list(struct profiles_list *l, ...) {
  va_list ap;
  va_start(ap, l);
  profiles_list_init(l);
  for (;;) {
    const char *n = va_arg(ap, const char *);
    if (!n)
      break;
    const char *v = va_arg(ap, const char *);
    int t = va_arg(ap, int);
    assert_int_equal(
        profiles_list_add(l, n, v, strlen(v), (enum profiles_type)t), 0);
  }
  va_end(ap);
  profiles_list_sort(l);
}

#endif

/* fuzz_profiles.c — libFuzzer target: YAML and .properties import
 * (profiles/profiles.h), the parsers `keel profile import` runs on a file a
 * user hands it.
 *
 * Byte 0 picks the parser (bit 0: YAML or .properties) and the limits (bit
 * 1: the defaults, or small ones so that depth, property count, name and
 * value length limits are within reach); the rest is the file. Beyond "no
 * crash", it checks what profiles.h promises:
 *
 *   - an error leaves the output exactly as it was (nothing half-added) and
 *     comes with a message; a positioned one names "fuzz.yml:L:C:";
 *   - on success every profile's list is sorted with unique names, names
 *     and values within the limits, the base profile has a document, and
 *     every value is NUL-free;
 *   - export then import changes nothing: for every document,
 *     parse_yaml(render_yaml(L)) == L (names, values and types), which is
 *     what `keel profile export` / `import` rely on; render_json and
 *     render_properties succeed on the same list, or all three refuse it as
 *     not UTF-8.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "profiles.h"

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_profiles: %s\n", what);                            \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static void check_list(const struct profiles_list *l,
                       const struct profiles_limits *lim) {
  CHECK(l->count <= lim->max_props, "more properties than max_props");
  for (size_t i = 0; i < l->count; i++) {
    const struct profiles_prop *p = &l->items[i];
    CHECK(p->name && strlen(p->name) <= lim->max_name_len,
          "a name past max_name_len");
    CHECK(p->value_len <= lim->max_value_len, "a value past max_value_len");
    CHECK(memchr(p->value, '\0', p->value_len) == NULL, "a NUL in a value");
    if (i > 0)
      CHECK(profiles_name_cmp(l->items[i - 1].name, p->name) < 0,
            "list not sorted or names not unique");
  }
}

static void dump(const char *title, const struct profiles_list *l) {
  fprintf(stderr, "%s\n", title);
  for (size_t i = 0; i < l->count; i++)
    fprintf(stderr, "  %s = (%s) '%.*s'\n", l->items[i].name,
            profiles_type_name(l->items[i].type), (int)l->items[i].value_len,
            l->items[i].value);
}

/* export -> import of one list gives the same list. */
static void check_roundtrip(const struct profiles_list *l) {
  struct profiles_error err;
  char *yaml = NULL, *json = NULL, *props = NULL;
  size_t ylen = 0, jlen = 0, plen = 0;
  int ry = profiles_render_yaml(l, &yaml, &ylen, &err);
  int rj = profiles_render_json(l, 2, &json, &jlen, &err);
  int rp = profiles_render_properties(l, &props, &plen, &err);
  CHECK(ry == 0 || ry == -EILSEQ, "render_yaml failed");
  CHECK(rj == ry && rp == ry, "the renderers disagree on a list");
  if (ry == 0) {
    struct profiles_limits big;
    profiles_limits_default(&big);
    big.max_props = l->count + 1;
    struct profiles_docs back;
    profiles_docs_init(&back);
    int rc = profiles_parse_yaml(yaml, ylen, "export.yml", "default", &big,
                                 &back, &err);
    if (rc != 0)
      fprintf(stderr, "fuzz_profiles: re-import failed: %s\n--- yaml:\n%s\n",
              err.msg, yaml);
    CHECK(rc == 0, "an exported document does not import");
    const struct profiles_doc *d = profiles_docs_find(&back, "default");
    CHECK(d, "the re-import has no base document");
    if (!profiles_list_equal(&d->props, l)) {
      fprintf(stderr, "fuzz_profiles: round trip differs\n--- yaml:\n%s\n",
              yaml);
      dump("--- imported", l);
      dump("--- re-imported", &d->props);
      abort();
    }
    profiles_docs_free(&back);
  }
  free(yaml);
  free(json);
  free(props);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int properties = data[0] & 1;
  struct profiles_limits lim;
  profiles_limits_default(&lim);
  if (data[0] & 2) {
    lim.max_depth = 4;
    lim.max_props = 8;
    lim.max_name_len = 24;
    lim.max_value_len = 32;
  }
  size--;
  char *buf = malloc(size ? size : 1);
  CHECK(buf, "out of memory");
  memcpy(buf, data + 1, size);

  /* A first, valid call fills the output, so that a failing second call
   * shows whether it leaves the output as it was. */
  struct profiles_docs docs;
  profiles_docs_init(&docs);
  struct profiles_error err;
  CHECK(profiles_parse_yaml("pre: 1\n", 7, "pre.yml", "default", &lim, &docs,
                            &err) == 0,
        "the fixed first document fails");
  size_t count_before = docs.count;
  size_t props_before = docs.docs[0].props.count;

  memset(&err, 0, sizeof err);
  int rc = properties ? profiles_parse_properties(buf, size, "fuzz.properties",
                                                  "default", &lim, &docs, &err)
                      : profiles_parse_yaml(buf, size, "fuzz.yml", "default",
                                            &lim, &docs, &err);
  if (rc != 0) {
    CHECK(rc == KEEL_EPARSE || rc == KEEL_ELIMIT || rc == -EINVAL,
          "an error profiles.h does not list");
    CHECK(err.msg[0] != '\0', "an error without a message");
    CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL,
          "message not terminated");
    if (err.line > 0) {
      const char *fname = properties ? "fuzz.properties:" : "fuzz.yml:";
      CHECK(strncmp(err.msg, fname, strlen(fname)) == 0,
            "a positioned message that does not start with file:");
    }
    CHECK(docs.count == count_before &&
              docs.docs[0].props.count == props_before,
          "a failed import changed the output");
  } else {
    CHECK(profiles_docs_find(&docs, "default") != NULL,
          "the base profile got no document");
    for (size_t i = 0; i < docs.count; i++) {
      check_list(&docs.docs[i].props, &lim);
      check_roundtrip(&docs.docs[i].props);
    }
  }
  profiles_docs_free(&docs);
  free(buf);
  return 0;
}

/* test_profiles_parse.c — YAML and .properties import: Spring flattening,
 * kept types, multi-document profiles, exact error positions, limits. */
#include <errno.h>

#include "helpers.h"

static void test_flatten_maps_and_lists(void **state) {
  (void)state;
  struct profiles_docs d;
  const struct profiles_list *l = yaml_props("spring:\n"
                                             "  datasource:\n"
                                             "    url: jdbc:x\n"
                                             "servers:\n"
                                             "  - a.example\n"
                                             "  - b.example\n"
                                             "matrix:\n"
                                             "  - [1, 2]\n"
                                             "  - [3]\n"
                                             "items:\n"
                                             "  - name: one\n"
                                             "    data: {k: v}\n"
                                             "  - name: two\n"
                                             "    data: x\n"
                                             "empty_list: []\n"
                                             "empty_map: {}\n"
                                             "\"[weird.key]\": 1\n"
                                             "m:\n"
                                             "  \"[a.b]\": 2\n",
                                             &d);
  assert_prop(l, "spring.datasource.url", "jdbc:x", PROFILES_STRING);
  assert_prop(l, "servers[0]", "a.example", PROFILES_STRING);
  assert_prop(l, "servers[1]", "b.example", PROFILES_STRING);
  assert_prop(l, "matrix[0][0]", "1", PROFILES_INTEGER);
  assert_prop(l, "matrix[0][1]", "2", PROFILES_INTEGER);
  assert_prop(l, "matrix[1][0]", "3", PROFILES_INTEGER);
  assert_prop(l, "items[0].name", "one", PROFILES_STRING);
  assert_prop(l, "items[0].data.k", "v", PROFILES_STRING);
  assert_prop(l, "items[1].data", "x", PROFILES_STRING);
  assert_prop(l, "empty_list", "", PROFILES_STRING);
  assert_null(profiles_list_find(l, "empty_map"));
  assert_prop(l, "[weird.key]", "1", PROFILES_INTEGER);
  assert_prop(l, "m[a.b]", "2", PROFILES_INTEGER);
  assert_int_equal(l->count, 13);
  /* Sorted in natural order. */
  for (size_t i = 1; i < l->count; i++)
    assert_true(profiles_name_cmp(l->items[i - 1].name, l->items[i].name) < 0);
  profiles_docs_free(&d);
}

static void test_types_kept(void **state) {
  (void)state;
  struct profiles_docs d;
  const struct profiles_list *l = yaml_props("i: 42\n"
                                             "neg: -7\n"
                                             "hex: 0x1F\n"
                                             "oct: 010\n"
                                             "under: 1_000\n"
                                             "big: 99999999999999999999\n"
                                             "f: 1.5\n"
                                             "f2: 1e3\n"
                                             "f3: .5\n"
                                             "inf: -.inf\n"
                                             "b1: true\n"
                                             "b2: yes\n"
                                             "b3: OFF\n"
                                             "n1: ~\n"
                                             "n2:\n"
                                             "q1: \"42\"\n"
                                             "q2: 'true'\n"
                                             "s: hello world\n"
                                             "time: 12:30\n"
                                             "ver: 1.2.3\n"
                                             "lit: |\n"
                                             "  line1\n"
                                             "  line2\n",
                                             &d);
  assert_prop(l, "i", "42", PROFILES_INTEGER);
  assert_prop(l, "neg", "-7", PROFILES_INTEGER);
  assert_prop(l, "hex", "31", PROFILES_INTEGER);
  assert_prop(l, "oct", "8", PROFILES_INTEGER);
  assert_prop(l, "under", "1000", PROFILES_INTEGER);
  assert_prop(l, "big", "99999999999999999999", PROFILES_STRING);
  assert_prop(l, "f", "1.5", PROFILES_FLOAT);
  assert_prop(l, "f2", "1000.0", PROFILES_FLOAT);
  assert_prop(l, "f3", "0.5", PROFILES_FLOAT);
  assert_prop(l, "inf", "-.inf", PROFILES_FLOAT);
  assert_prop(l, "b1", "true", PROFILES_BOOLEAN);
  assert_prop(l, "b2", "true", PROFILES_BOOLEAN);
  assert_prop(l, "b3", "false", PROFILES_BOOLEAN);
  assert_prop(l, "n1", "", PROFILES_NULL);
  assert_prop(l, "n2", "", PROFILES_NULL);
  assert_prop(l, "q1", "42", PROFILES_STRING);
  assert_prop(l, "q2", "true", PROFILES_STRING);
  assert_prop(l, "s", "hello world", PROFILES_STRING);
  assert_prop(l, "time", "12:30", PROFILES_STRING);
  assert_prop(l, "ver", "1.2.3", PROFILES_STRING);
  assert_prop(l, "lit", "line1\nline2\n", PROFILES_STRING);
  profiles_docs_free(&d);
}

static void test_aliases_and_merge_keys(void **state) {
  (void)state;
  struct profiles_docs d;
  const struct profiles_list *l = yaml_props("base: &b\n"
                                             "  host: h\n"
                                             "  port: 1\n"
                                             "svc:\n"
                                             "  <<: *b\n"
                                             "  port: 2\n"
                                             "copy: *b\n"
                                             "o: &o {port: 3, x: o}\n"
                                             "multi:\n"
                                             "  <<: [*o, *b]\n"
                                             "  x: own\n",
                                             &d);
  /* Earlier merge sources win over later ones, own keys over both. */
  assert_prop(l, "multi.port", "3", PROFILES_INTEGER);
  assert_prop(l, "multi.host", "h", PROFILES_STRING);
  assert_prop(l, "multi.x", "own", PROFILES_STRING);
  assert_prop(l, "svc.host", "h", PROFILES_STRING);
  assert_prop(l, "svc.port", "2", PROFILES_INTEGER);
  assert_prop(l, "copy.port", "1", PROFILES_INTEGER);
  assert_null(profiles_list_find(l, "svc.<<"));
  profiles_docs_free(&d);
}

static void test_multi_document_profiles(void **state) {
  (void)state;
  struct profiles_docs d;
  profiles_docs_init(&d);
  parse_yaml_ok("a: 1\n"
                "list: [x, y, z]\n"
                "---\n"
                "spring:\n"
                "  config:\n"
                "    activate:\n"
                "      on-profile: prod\n"
                "a: 2\n"
                "---\n"
                "spring.profiles: dev, test\n"
                "a: 3\n"
                "---\n"
                "b: 4\n"
                "list: [only]\n",
                &d);
  assert_int_equal(d.count, 4);
  const struct profiles_doc *def = profiles_docs_find(&d, "default");
  assert_non_null(def);
  assert_prop(&def->props, "a", "1", PROFILES_INTEGER);
  assert_prop(&def->props, "b", "4", PROFILES_INTEGER);
  /* The later document replaces the list whole. */
  assert_prop(&def->props, "list[0]", "only", PROFILES_STRING);
  assert_null(profiles_list_find(&def->props, "list[1]"));
  const struct profiles_doc *prod = profiles_docs_find(&d, "prod");
  assert_non_null(prod);
  assert_prop(&prod->props, "a", "2", PROFILES_INTEGER);
  assert_int_equal(prod->props.count, 1); /* the marker is not stored */
  assert_prop(&profiles_docs_find(&d, "dev")->props, "a", "3",
              PROFILES_INTEGER);
  assert_prop(&profiles_docs_find(&d, "test")->props, "a", "3",
              PROFILES_INTEGER);
  /* A second file for the same profile merges over the first. */
  parse_yaml_ok("a: 10\nc: 5\n", &d);
  def = profiles_docs_find(&d, "default");
  assert_prop(&def->props, "a", "10", PROFILES_INTEGER);
  assert_prop(&def->props, "b", "4", PROFILES_INTEGER);
  assert_prop(&def->props, "c", "5", PROFILES_INTEGER);
  profiles_docs_free(&d);
}

static void test_base_profile_always_present(void **state) {
  (void)state;
  struct profiles_docs d;
  profiles_docs_init(&d);
  parse_yaml_ok("spring.config.activate.on-profile: prod\na: 1\n", &d);
  assert_int_equal(d.count, 2);
  assert_int_equal(profiles_docs_find(&d, "default")->props.count, 0);
  assert_int_equal(profiles_docs_find(&d, "prod")->props.count, 1);
  profiles_docs_free(&d);
  profiles_docs_init(&d);
  parse_yaml_ok("", &d);
  assert_int_equal(d.count, 1);
  assert_int_equal(profiles_docs_find(&d, "default")->props.count, 0);
  profiles_docs_free(&d);
}

static void test_profile_expression_refused(void **state) {
  (void)state;
  struct profiles_docs d;
  profiles_docs_init(&d);
  struct profiles_error err = {0};
  const char *t = "a: 1\n---\nspring.config.activate.on-profile: \"!prod\"\n"
                  "b: 2\n";
  assert_int_equal(
      profiles_parse_yaml(t, strlen(t), "p.yml", "default", NULL, &d, &err),
      -EINVAL);
  assert_string_equal(err.msg,
                      "p.yml:3:1: spring.config.activate.on-profile: profile "
                      "expression '!prod' is not supported; name plain "
                      "profiles");
  assert_int_equal(d.count, 0);
  profiles_docs_free(&d);
}

static void expect_yaml_error(const char *text, int code, const char *msg) {
  struct profiles_docs d;
  profiles_docs_init(&d);
  struct profiles_limits lim;
  profiles_limits_default(&lim);
  lim.max_depth = 4;
  lim.max_props = 5;
  lim.max_name_len = 20;
  lim.max_value_len = 10;
  lim.max_doc_bytes = 200;
  struct profiles_error err = {0};
  int rc = profiles_parse_yaml(text, strlen(text), "app.yml", "default", &lim,
                               &d, &err);
  if (rc != code || strcmp(err.msg, msg) != 0)
    fail_msg("rc %d msg '%s', want %d '%s'", rc, err.msg, code, msg);
  assert_int_equal(d.count, 0);
  profiles_docs_free(&d);
}

static void test_yaml_errors_positioned(void **state) {
  (void)state;
  expect_yaml_error("a: 1\nb: [1, 2\nc: 3\n", KEEL_EPARSE,
                    "app.yml:3:2: did not find expected ',' or ']' while "
                    "parsing a flow sequence (started at line 2)");
  expect_yaml_error("a:\n  b: 1\n c: 2\n", KEEL_EPARSE,
                    "app.yml:3:2: did not find expected key while parsing "
                    "a block mapping (started at line 1)");
  expect_yaml_error("a: 1\nb: 2\na: 3\n", KEEL_EPARSE,
                    "app.yml:3:1: duplicate key 'a'");
  expect_yaml_error("- 1\n- 2\n", KEEL_EPARSE,
                    "app.yml:1:1: a document must be a map of properties");
  expect_yaml_error("a:\n  \"x\\ny\": 1\n", KEEL_EPARSE,
                    "app.yml:2:3: a map key contains a control character");
  expect_yaml_error("\"\": 1\n", KEEL_EPARSE,
                    "app.yml:1:5: empty property name");
  expect_yaml_error("a:\n  ? [x]\n  : 1\n", KEEL_EPARSE,
                    "app.yml:2:5: a map key must be a scalar");
}

static void test_yaml_limits(void **state) {
  (void)state;
  expect_yaml_error("a: {b: {c: {d: {e: 1}}}}\n", KEEL_ELIMIT,
                    "app.yml:1:16: nesting too deep (limit 4)");
  expect_yaml_error("a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\n", KEEL_ELIMIT,
                    "app.yml:6:4: too many properties (limit 5)");
  expect_yaml_error("abcdefghij:\n  klmnopqrstu: 1\n", KEEL_ELIMIT,
                    "app.yml:2:3: property name too long (limit 20)");
  expect_yaml_error("a: 12345678901\n", KEEL_ELIMIT,
                    "app.yml:1:4: value too long (limit 10)");
  char big[300];
  memset(big, '#', sizeof big - 1);
  big[sizeof big - 1] = 0;
  expect_yaml_error(big, KEEL_ELIMIT,
                    "app.yml:1:1: document is 299 bytes (limit 200)");
  /* An alias bomb is stopped by the property limit, not by memory. */
  expect_yaml_error("a: &a [1, 1]\nb: &b [*a, *a]\nc: [*b, *b]\n", KEEL_ELIMIT,
                    "app.yml:1:11: too many properties (limit 5)");
}

static void test_too_many_profiles(void **state) {
  (void)state;
  char *buf = malloc(64 * 300);
  assert_non_null(buf);
  size_t n = 0;
  for (int i = 0; i < 300; i++)
    n += (size_t)sprintf(buf + n, "---\nspring.profiles: p%d\na: 1\n", i);
  struct profiles_docs d;
  profiles_docs_init(&d);
  struct profiles_error err = {0};
  assert_int_equal(
      profiles_parse_yaml(buf, n, "many.yml", "default", NULL, &d, &err),
      KEEL_ELIMIT);
  assert_string_equal(err.msg, "many.yml:767:1: too many profiles in one "
                               "import (limit 256)");
  assert_int_equal(d.count, 0);
  free(buf);
}

static void test_properties_format(void **state) {
  (void)state;
  const char *t = "\xEF\xBB\xBF# comment\n"
                  "! also a comment \\\n"
                  "a=1\n"
                  "b : two words  \n"
                  "c\tthree\n"
                  "   d = x\\\n"
                  "       y\\\n"
                  "   z\n"
                  "e\\ key\\=x = v\\tw\\nq\n"
                  "u = caf\\u00e9 \\uD83D\\uDE00\n"
                  "servers[0]=s0\r\n"
                  "servers[1]=s1\r"
                  "empty\n"
                  "a=last wins\n"
                  "utf8 = ünï\n"
                  "#---\n"
                  "spring.config.activate.on-profile=prod\n"
                  "a=prod\n";
  struct profiles_docs d;
  profiles_docs_init(&d);
  struct profiles_error err = {0};
  int rc = profiles_parse_properties(t, strlen(t), "a.properties", "default",
                                     NULL, &d, &err);
  if (rc)
    fail_msg("%s", err.msg);
  const struct profiles_list *l = &profiles_docs_find(&d, "default")->props;
  assert_prop(l, "a", "last wins", PROFILES_STRING);
  assert_prop(l, "b", "two words  ", PROFILES_STRING);
  assert_prop(l, "c", "three", PROFILES_STRING);
  assert_prop(l, "d", "xyz", PROFILES_STRING);
  assert_prop(l, "e key=x", "v\tw\nq", PROFILES_STRING);
  assert_prop(l, "u", "caf\xc3\xa9 \xf0\x9f\x98\x80", PROFILES_STRING);
  assert_prop(l, "servers[0]", "s0", PROFILES_STRING);
  assert_prop(l, "servers[1]", "s1", PROFILES_STRING);
  assert_prop(l, "empty", "", PROFILES_STRING);
  assert_prop(l, "utf8", "\xc3\xbcn\xc3\xaf", PROFILES_STRING);
  assert_int_equal(l->count, 10);
  assert_prop(&profiles_docs_find(&d, "prod")->props, "a", "prod",
              PROFILES_STRING);
  profiles_docs_free(&d);
}

static void expect_props_error(const char *text, int code, const char *msg) {
  struct profiles_docs d;
  profiles_docs_init(&d);
  struct profiles_error err = {0};
  int rc = profiles_parse_properties(text, strlen(text), "b.properties",
                                     "default", NULL, &d, &err);
  if (rc != code || strcmp(err.msg, msg) != 0)
    fail_msg("rc %d msg '%s', want %d '%s'", rc, err.msg, code, msg);
  assert_int_equal(d.count, 0);
  profiles_docs_free(&d);
}

static void test_properties_errors_positioned(void **state) {
  (void)state;
  expect_props_error("a=1\nb=x\\u12G4\n", KEEL_EPARSE,
                     "b.properties:2:4: malformed \\uxxxx escape");
  expect_props_error("a=1\nb=one\\\n   two \\uD800x\n", KEEL_EPARSE,
                     "b.properties:3:8: unpaired UTF-16 surrogate");
  expect_props_error("a=1\n  =v\n", KEEL_EPARSE,
                     "b.properties:2:3: empty property name");
  expect_props_error("a=1\nb=\xff\n", KEEL_EPARSE,
                     "b.properties:2:3: not valid UTF-8");
  expect_props_error("a\\tb=1\n", KEEL_EPARSE,
                     "b.properties:1:1: property name contains a control "
                     "character");
  expect_props_error("x=\\u0000\n", KEEL_EPARSE,
                     "b.properties:1:3: \\u0000: NUL is not allowed");
}

static void test_properties_limits(void **state) {
  (void)state;
  struct profiles_limits lim;
  profiles_limits_default(&lim);
  lim.max_props = 2;
  lim.max_name_len = 5;
  lim.max_value_len = 4;
  lim.max_doc_bytes = 64;
  static const struct {
    const char *in, *msg;
  } cases[] = {
      {"a=1\nb=2\nc=3\n", "l.properties:3:1: too many properties (limit 2)"},
      {"a=1\nabcdef=2\n", "l.properties:2:1: property name too long (limit 5)"},
      {"a=1\nb = 12345\n", "l.properties:2:5: value too long (limit 4)"},
      {"a=\\\n 1\\\n  2345\n", "l.properties:2:2: value too long (limit 4)"},
      {"#23456789012345678901234567890123456789012345678901234567890123456",
       "l.properties:1:1: document is 66 bytes (limit 64)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct profiles_docs d;
    profiles_docs_init(&d);
    struct profiles_error err = {0};
    int rc =
        profiles_parse_properties(cases[i].in, strlen(cases[i].in),
                                  "l.properties", "default", &lim, &d, &err);
    if (rc != KEEL_ELIMIT || strcmp(err.msg, cases[i].msg))
      fail_msg("case %zu: rc %d '%s', want '%s'", i, rc, err.msg, cases[i].msg);
    assert_int_equal(d.count, 0);
    profiles_docs_free(&d);
  }
}

static void test_parse_file(void **state) {
  (void)state;
  char path[] = "/tmp/keel-profiles-XXXXXX.properties";
  int fd = mkstemps(path, 11);
  assert_true(fd >= 0);
  const char *t = "x.y=1\n";
  assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
  close(fd);
  struct profiles_docs d;
  profiles_docs_init(&d);
  struct profiles_error err = {0};
  assert_int_equal(profiles_parse_file(path, "dev", NULL, &d, &err), 0);
  /* .properties: a string, not the integer YAML would give. */
  assert_prop(&profiles_docs_find(&d, "dev")->props, "x.y", "1",
              PROFILES_STRING);
  unlink(path);
  assert_int_equal(profiles_parse_file(path, "dev", NULL, &d, &err), -ENOENT);
  profiles_docs_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flatten_maps_and_lists),
      cmocka_unit_test(test_types_kept),
      cmocka_unit_test(test_aliases_and_merge_keys),
      cmocka_unit_test(test_multi_document_profiles),
      cmocka_unit_test(test_base_profile_always_present),
      cmocka_unit_test(test_profile_expression_refused),
      cmocka_unit_test(test_yaml_errors_positioned),
      cmocka_unit_test(test_yaml_limits),
      cmocka_unit_test(test_too_many_profiles),
      cmocka_unit_test(test_properties_format),
      cmocka_unit_test(test_properties_errors_positioned),
      cmocka_unit_test(test_properties_limits),
      cmocka_unit_test(test_parse_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_profiles_render.c — unflattening and the output formats: YAML round
 * trip, nested JSON with types, .properties, env names and shell quoting
 * (executed by /bin/sh), and the Spring Cloud Config Environment JSON. */
#include <errno.h>
#include <jansson.h>
#include <sys/wait.h>

#include "helpers.h"

/* parse(render_yaml(l)) must equal l. Returns the rendered text. */
static char *assert_yaml_round_trip(const struct profiles_list *l) {
  char *y = NULL;
  size_t yl = 0;
  struct profiles_error err = {0};
  int rc = profiles_render_yaml(l, &y, &yl, &err);
  if (rc)
    fail_msg("render: %d %s", rc, err.msg);
  assert_int_equal(strlen(y), yl);
  struct profiles_docs d;
  profiles_docs_init(&d);
  rc = profiles_parse_yaml(y, yl, "export.yml", "default", NULL, &d, &err);
  if (rc)
    fail_msg("re-import failed: %s\n---\n%s", err.msg, y);
  const struct profiles_doc *doc = profiles_docs_find(&d, "default");
  const struct profiles_list empty = {0};
  const struct profiles_list *back = doc ? &doc->props : &empty;
  if (!profiles_list_equal(l, back)) {
    for (size_t i = 0; i < l->count; i++) {
      const struct profiles_prop *p =
          profiles_list_find(back, l->items[i].name);
      if (!p || strcmp(p->value, l->items[i].value) ||
          p->type != l->items[i].type)
        print_error("lost or changed: %s = '%s'\n", l->items[i].name,
                    l->items[i].value);
    }
    fail_msg("round trip changed the properties:\n%s", y);
  }
  profiles_docs_free(&d);
  return y;
}

static void test_yaml_round_trip_of_import(void **state) {
  (void)state;
  const char *src = "server:\n"
                    "  port: 8080\n"
                    "  ratio: 0.75\n"
                    "spring:\n"
                    "  datasource:\n"
                    "    url: ${DB_URL:jdbc:mysql://localhost:3306/db}\n"
                    "    enabled: yes\n"
                    "servers: [a, b, c]\n"
                    "matrix: [[1, 2], [3, [4, 5]]]\n"
                    "items:\n"
                    "  - name: one\n"
                    "    tags: [x]\n"
                    "  - name: two\n"
                    "    data: {k: null}\n"
                    "quoted: '007'\n"
                    "looks_bool: 'yes'\n"
                    "empty: ''\n"
                    "nothing: ~\n"
                    "multi: |\n"
                    "  line one\n"
                    "    indented\n"
                    "  trailing  \n"
                    "spaces: '  padded  '\n"
                    "colon: 'a: b # not a comment'\n"
                    "unicode: \"caf\\u00e9 \\U0001F600\"\n"
                    "ctrl: \"bell\\a tab\\t\"\n"
                    "\"key with: colon\": v\n"
                    "\"[a.b]\": bracketed\n"
                    "'<<': not a merge\n";
  struct profiles_docs d;
  const struct profiles_list *l = yaml_props(src, &d);
  assert_prop(l, "<<", "not a merge", PROFILES_STRING);
  char *y1 = assert_yaml_round_trip(l);
  /* And exporting the re-import gives the same text. */
  struct profiles_docs d2;
  const struct profiles_list *l2 = yaml_props(y1, &d2);
  char *y2 = assert_yaml_round_trip(l2);
  assert_string_equal(y1, y2);
  free(y1);
  free(y2);
  profiles_docs_free(&d);
  profiles_docs_free(&d2);
}

static void test_yaml_round_trip_of_odd_lists(void **state) {
  (void)state;
  struct profiles_list l;
  make_list(&l,
            /* a leaf and a branch at the same name */
            "a", "1", PROFILES_INTEGER, "a.b", "2", PROFILES_INTEGER, "a[0]",
            "x", PROFILES_STRING,
            /* a list with a gap and one not starting at 0 */
            "gap[0]", "g0", PROFILES_STRING, "gap[2]", "g2", PROFILES_STRING,
            "late[1]", "l1", PROFILES_STRING,
            /* map and list under one name */
            "mix.k", "v", PROFILES_STRING, "mix[0]", "m0", PROFILES_STRING,
            /* malformed names */
            "bad.", "1", PROFILES_STRING, "x[", "2", PROFILES_STRING, "y]z",
            "3", PROFILES_STRING, "dots..two", "4", PROFILES_STRING,
            "lead0[01]", "5", PROFILES_STRING,
            /* typed values */
            "f", "1.5", PROFILES_FLOAT, "inf", ".inf", PROFILES_FLOAT, "n", "",
            PROFILES_NULL, "t", "true", PROFILES_BOOLEAN, "s_num", "12",
            PROFILES_STRING, "s_null", "null", PROFILES_STRING, "s_empty", "",
            PROFILES_STRING, "big[10]", "ten", PROFILES_STRING, "big[9]",
            "nine", PROFILES_STRING, NULL);
  char *y = assert_yaml_round_trip(&l);
  free(y);
  profiles_list_free(&l);
}

static void test_empty_profile_renders(void **state) {
  (void)state;
  struct profiles_list l;
  profiles_list_init(&l);
  char *out;
  struct profiles_error err = {0};
  char *y = assert_yaml_round_trip(&l);
  assert_string_equal(y, "{}\n");
  free(y);
  assert_int_equal(profiles_render_json(&l, 0, &out, NULL, &err), 0);
  assert_string_equal(out, "{}");
  free(out);
  assert_int_equal(profiles_render_properties(&l, &out, NULL, &err), 0);
  assert_string_equal(out, "");
  free(out);
  assert_int_equal(profiles_render_env(&l, 0, &out, NULL, &err), 0);
  assert_string_equal(out, "");
  free(out);
}

static void test_yaml_refuses_non_utf8(void **state) {
  (void)state;
  struct profiles_list l;
  make_list(&l, "a", "\xff", PROFILES_STRING, NULL);
  char *y;
  struct profiles_error err = {0};
  assert_int_equal(profiles_render_yaml(&l, &y, NULL, &err), -EILSEQ);
  assert_string_equal(err.msg, "property 'a' is not valid UTF-8");
  assert_int_equal(profiles_render_json(&l, 0, &y, NULL, &err), -EILSEQ);
  profiles_list_free(&l);
}

static void test_json_nested_with_types(void **state) {
  (void)state;
  struct profiles_docs d;
  const struct profiles_list *l =
      yaml_props("server: {port: 8080, ratio: 0.1, on: true}\n"
                 "list: [a, 2, ~]\n"
                 "s: \"8080\"\n"
                 "nan: .nan\n"
                 "esc: \"q\\\" b\\\\ nl\\n\"\n",
                 &d);
  char *j;
  struct profiles_error err = {0};
  assert_int_equal(profiles_render_json(l, 0, &j, NULL, &err), 0);
  assert_string_equal(j, "{\"esc\":\"q\\\" b\\\\ nl\\n\","
                         "\"list\":[\"a\",2,null],\"nan\":\".nan\","
                         "\"s\":\"8080\","
                         "\"server\":{\"on\":true,\"port\":8080,"
                         "\"ratio\":0.1}}");
  json_error_t je;
  json_t *root = json_loads(j, 0, &je);
  assert_non_null(root);
  assert_true(json_is_integer(
      json_object_get(json_object_get(root, "server"), "port")));
  assert_true(json_is_string(json_object_get(root, "s")));
  json_decref(root);
  free(j);
  /* Indented output is valid JSON too. */
  assert_int_equal(profiles_render_json(l, 2, &j, NULL, &err), 0);
  root = json_loads(j, 0, &je);
  assert_non_null(root);
  json_decref(root);
  free(j);
  profiles_docs_free(&d);
}

static void test_properties_render_round_trip(void **state) {
  (void)state;
  struct profiles_list l;
  make_list(&l, "a.b", "x = y: z", PROFILES_STRING, "key with space",
            " lead and trail ", PROFILES_STRING, "hash#bang!", "#!\\",
            PROFILES_STRING, "uni", "caf\xc3\xa9 \xf0\x9f\x98\x80",
            PROFILES_STRING, "nl", "1\n2\r3\t4\f", PROFILES_STRING, "n", "12",
            PROFILES_INTEGER, NULL);
  char *t;
  size_t tl;
  struct profiles_error err = {0};
  assert_int_equal(profiles_render_properties(&l, &t, &tl, &err), 0);
  assert_non_null(strstr(t, "a.b=x \\= y\\: z\n"));
  assert_non_null(strstr(t, "key\\ with\\ space=\\ lead and trail \n"));
  assert_non_null(strstr(t, "uni=caf\\u00E9 \\uD83D\\uDE00\n"));
  struct profiles_docs d;
  profiles_docs_init(&d);
  assert_int_equal(profiles_parse_properties(t, tl, "x.properties", "default",
                                             NULL, &d, &err),
                   0);
  const struct profiles_list *back = &profiles_docs_find(&d, "default")->props;
  assert_int_equal(back->count, l.count);
  for (size_t i = 0; i < l.count; i++)
    assert_prop(back, l.items[i].name, l.items[i].value, PROFILES_STRING);
  free(t);
  profiles_docs_free(&d);
  profiles_list_free(&l);
}

static void test_env_names(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"spring.datasource.url", "SPRING_DATASOURCE_URL"},
      {"my.service[0].other", "MY_SERVICE_0_OTHER"},
      {"a[0][1]", "A_0_1"},
      {"my-service.max-size", "MYSERVICE_MAXSIZE"},
      {"server.port", "SERVER_PORT"},
      {"list[10]", "LIST_10"},
      {"snake_case.x", "SNAKE_CASE_X"},
      {"m[a.b]", "M_A_B"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *n = profiles_env_name(cases[i][0]);
    assert_non_null(n);
    assert_string_equal(n, cases[i][1]);
    free(n);
  }
  assert_null(profiles_env_name("a/b"));
  assert_null(profiles_env_name("caf\xc3\xa9"));
  assert_null(profiles_env_name("0.x"));
  assert_null(profiles_env_name("-"));
}

static void test_env_collisions_and_invalid(void **state) {
  (void)state;
  struct profiles_list l;
  make_list(&l, "my-service.x", "1", PROFILES_STRING, "myservice.x", "2",
            PROFILES_STRING, NULL);
  char *out;
  struct profiles_error err = {0};
  assert_int_equal(profiles_render_env(&l, 0, &out, NULL, &err), -EINVAL);
  assert_string_equal(err.msg, "properties 'my-service.x' and 'myservice.x' "
                               "both map to the environment variable "
                               "MYSERVICE_X");
  profiles_list_free(&l);
  make_list(&l, "a/b", "1", PROFILES_STRING, "ok", "2", PROFILES_STRING, NULL);
  assert_int_equal(profiles_render_env(&l, 0, &out, NULL, &err), -EINVAL);
  assert_int_equal(
      profiles_render_env(&l, PROFILES_ENV_SKIP_INVALID, &out, NULL, &err), 0);
  assert_string_equal(out, "export OK='2'\n");
  free(out);
  profiles_list_free(&l);
}

static void write_file(const char *path, const char *data, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
}

static char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static char buf[1 << 16];
  *n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  return buf;
}

/* The env output, eval'ed by /bin/sh, sets each variable to exactly its
 * value and runs nothing. */
static void test_env_quoting_through_sh(void **state) {
  (void)state;
  static const char *const values[] = {
      "plain",
      "it's \"quoted\"",
      "'",
      "''''",
      "$HOME ${PATH} $(touch /tmp/keel-pwned) `touch /tmp/keel-pwned`",
      "back\\slash\\",
      "line1\nline2\n\n",
      "\n",
      "",
      "tab\there; echo no; exit 3",
      "\xff\xfe non-utf8 \x80",
      "*?[a] ~ & | < > !",
      "-n",
  };
  size_t nv = sizeof values / sizeof values[0];
  struct profiles_list l;
  profiles_list_init(&l);
  for (size_t i = 0; i < nv; i++) {
    char name[32];
    snprintf(name, sizeof name, "v.p%02zu", i);
    assert_int_equal(profiles_list_add(&l, name, values[i], strlen(values[i]),
                                       PROFILES_STRING),
                     0);
  }
  profiles_list_sort(&l);
  char *out;
  size_t ol;
  struct profiles_error err = {0};
  assert_int_equal(profiles_render_env(&l, 0, &out, &ol, &err), 0);

  char dir[] = "/tmp/keel-env-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char envf[128], script[128], res[128], cmd[512];
  snprintf(envf, sizeof envf, "%s/env", dir);
  snprintf(script, sizeof script, "%s/s.sh", dir);
  snprintf(res, sizeof res, "%s/out", dir);
  write_file(envf, out, ol);
  free(out);
  /* printf each variable NUL-terminated, then the names the shell exports
   * (proving `export`). */
  char s[4096];
  int k = snprintf(s, sizeof s, "unset V_P00\neval \"$(cat '%s')\"\n", envf);
  k += snprintf(s + k, sizeof s - (size_t)k, "printf '%%s\\0'");
  for (size_t i = 0; i < nv; i++)
    k += snprintf(s + k, sizeof s - (size_t)k, " \"$V_P%02zu\"", i);
  k += snprintf(s + k, sizeof s - (size_t)k,
                "\n/usr/bin/env | grep -c '^V_P' | tr -d '\\n'\n");
  write_file(script, s, (size_t)k);
  unlink("/tmp/keel-pwned");
  snprintf(cmd, sizeof cmd, "/bin/sh '%s' > '%s'", script, res);
  int st = system(cmd);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  size_t n;
  const char *got = read_file(res, &n);
  size_t off = 0;
  for (size_t i = 0; i < nv; i++) {
    size_t len = strlen(values[i]);
    assert_true(off + len < n);
    if (memcmp(got + off, values[i], len) != 0 || got[off + len] != 0)
      fail_msg("value %zu came back different", i);
    off += len + 1;
  }
  char count[16];
  snprintf(count, sizeof count, "%zu", nv);
  assert_int_equal(n - off, strlen(count));
  assert_memory_equal(got + off, count, strlen(count));
  assert_int_equal(access("/tmp/keel-pwned", F_OK), -1);
  unlink(envf);
  unlink(script);
  unlink(res);
  rmdir(dir);
  profiles_list_free(&l);
}

static void test_environment_json(void **state) {
  (void)state;
  struct profiles_list prod, app, shared;
  make_list(&prod, "server.port", "9090", PROFILES_INTEGER, "list[0]", "p",
            PROFILES_STRING, NULL);
  make_list(&app, "server.port", "8080", PROFILES_INTEGER, "name", "billing",
            PROFILES_STRING, NULL);
  make_list(&shared, "ratio", "0.5", PROFILES_FLOAT, "on", "true",
            PROFILES_BOOLEAN, "n", "", PROFILES_NULL, NULL);
  struct profiles_named_source srcs[] = {
      {"keel:billing-prod", "/config/billing/prod/", &prod},
      {"keel:billing", "/config/billing/default/", &app},
      {"keel:application", NULL, &shared},
  };
  char *out;
  struct profiles_error err = {0};
  assert_int_equal(profiles_render_environment("billing", "prod", NULL, 1234,
                                               srcs, 3, 0, &out, NULL, &err),
                   0);
  assert_string_equal(
      out, "{\"name\":\"billing\",\"profiles\":[\"prod\"],\"label\":null,"
           "\"version\":\"1234\",\"state\":null,\"propertySources\":["
           "{\"name\":\"keel:billing-prod\",\"source\":{\"list[0]\":\"p\","
           "\"server.port\":9090}},"
           "{\"name\":\"keel:billing\",\"source\":{\"name\":\"billing\","
           "\"server.port\":8080}},"
           "{\"name\":\"keel:application\",\"source\":{\"n\":null,"
           "\"on\":true,\"ratio\":0.5}}]}");
  free(out);

  assert_int_equal(profiles_render_environment("billing", " dev, db ", "rev-7",
                                               7, srcs, 2, 1, &out, NULL, &err),
                   0);
  json_error_t je;
  json_t *root = json_loads(out, 0, &je);
  assert_non_null(root);
  json_t *profiles = json_object_get(root, "profiles");
  assert_int_equal(json_array_size(profiles), 2);
  assert_string_equal(json_string_value(json_array_get(profiles, 1)), "db");
  assert_string_equal(json_string_value(json_object_get(root, "label")),
                      "rev-7");
  assert_string_equal(json_string_value(json_object_get(root, "version")), "7");
  json_t *ps = json_object_get(root, "propertySources");
  json_t *port = json_object_get(
      json_object_get(json_array_get(ps, 0), "source"), "server.port");
  assert_int_equal(json_integer_value(json_object_get(port, "value")), 9090);
  assert_string_equal(json_string_value(json_object_get(port, "origin")),
                      "/config/billing/prod/server.port");
  json_decref(root);
  free(out);
  profiles_list_free(&prod);
  profiles_list_free(&app);
  profiles_list_free(&shared);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_yaml_round_trip_of_import),
      cmocka_unit_test(test_yaml_round_trip_of_odd_lists),
      cmocka_unit_test(test_empty_profile_renders),
      cmocka_unit_test(test_yaml_refuses_non_utf8),
      cmocka_unit_test(test_json_nested_with_types),
      cmocka_unit_test(test_properties_render_round_trip),
      cmocka_unit_test(test_env_names),
      cmocka_unit_test(test_env_collisions_and_invalid),
      cmocka_unit_test(test_env_quoting_through_sh),
      cmocka_unit_test(test_environment_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

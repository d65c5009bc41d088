/* test_profiles_resolve.c — merge order, list replacement, ${...}
 * placeholders and relaxed binding of environment variables. */
#include <errno.h>

#include "helpers.h"

static void test_merge_order(void **state) {
  (void)state;
  struct profiles_source_id *s;
  size_t n;
  assert_int_equal(profiles_merge_order("billing", "p1, p2", &s, &n), 0);
  static const char *const want[][3] = {
      {"billing", "p2", "keel:billing-p2"},
      {"application", "p2", "keel:application-p2"},
      {"billing", "p1", "keel:billing-p1"},
      {"application", "p1", "keel:application-p1"},
      {"billing", "default", "keel:billing"},
      {"application", "default", "keel:application"},
  };
  assert_int_equal(n, 6);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(s[i].app, want[i][0]);
    assert_string_equal(s[i].profile, want[i][1]);
    assert_string_equal(s[i].name, want[i][2]);
  }
  profiles_source_ids_free(s, n);

  /* The shared app itself, an empty list, and a listed "default". */
  assert_int_equal(profiles_merge_order("application", "", &s, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(s[0].name, "keel:application");
  profiles_source_ids_free(s, n);
  assert_int_equal(profiles_merge_order("app", "default,prod", &s, &n), 0);
  assert_int_equal(n, 4);
  assert_string_equal(s[0].name, "keel:app-prod");
  assert_string_equal(s[2].name, "keel:app");
  profiles_source_ids_free(s, n);

  assert_int_equal(profiles_merge_order("a/b", "x", &s, &n), -EINVAL);
  assert_int_equal(profiles_merge_order("app", "x,../y", &s, &n), -EINVAL);
  assert_int_equal(profiles_merge_order("", "x", &s, &n), -EINVAL);
}

static void test_merge_most_specific_wins(void **state) {
  (void)state;
  struct profiles_list app_p2, shared_p2, app_p1, app_def, shared_def;
  make_list(&app_p2, "a", "app-p2", PROFILES_STRING, NULL);
  make_list(&shared_p2, "a", "shared-p2", PROFILES_STRING, "b", "shared-p2",
            PROFILES_STRING, NULL);
  make_list(&app_p1, "c", "app-p1", PROFILES_STRING, "b", "app-p1",
            PROFILES_STRING, NULL);
  make_list(&app_def, "d", "1", PROFILES_INTEGER, "c", "app", PROFILES_STRING,
            NULL);
  make_list(&shared_def, "d", "2", PROFILES_INTEGER, "e", "shared",
            PROFILES_STRING, NULL);
  const struct profiles_list *srcs[] = {&app_p2, &shared_p2, &app_p1, &app_def,
                                        &shared_def};
  struct profiles_list out;
  profiles_list_init(&out);
  assert_int_equal(profiles_merge(srcs, 5, NULL, &out), 0);
  assert_int_equal(out.count, 5);
  assert_prop(&out, "a", "app-p2", PROFILES_STRING);
  assert_prop(&out, "b", "shared-p2", PROFILES_STRING);
  assert_prop(&out, "c", "app-p1", PROFILES_STRING);
  assert_prop(&out, "d", "1", PROFILES_INTEGER);
  assert_prop(&out, "e", "shared", PROFILES_STRING);
  profiles_list_free(&out);
  profiles_list_free(&app_p2);
  profiles_list_free(&shared_p2);
  profiles_list_free(&app_p1);
  profiles_list_free(&app_def);
  profiles_list_free(&shared_def);
}

static void test_merge_replaces_lists_whole(void **state) {
  (void)state;
  struct profiles_list hi, lo;
  make_list(&hi, "servers[0]", "h0", PROFILES_STRING, "nested.list[0].x", "h",
            PROFILES_STRING, "scalar", "s", PROFILES_STRING, "m.k", "hi",
            PROFILES_STRING, NULL);
  make_list(&lo, "servers[0]", "l0", PROFILES_STRING, "servers[1]", "l1",
            PROFILES_STRING, "servers[2].host", "l2", PROFILES_STRING,
            "nested.list[0].y", "ly", PROFILES_STRING, "nested.list[1].x", "lx",
            PROFILES_STRING, "nested.other", "kept", PROFILES_STRING,
            "scalar[0]", "gone", PROFILES_STRING, "m.j", "lo", PROFILES_STRING,
            "only_lo[0]", "kept", PROFILES_STRING, "only_lo[1]", "kept",
            PROFILES_STRING, NULL);
  const struct profiles_list *srcs[] = {&hi, &lo};
  struct profiles_list out;
  profiles_list_init(&out);
  assert_int_equal(profiles_merge(srcs, 2, NULL, &out), 0);
  assert_prop(&out, "servers[0]", "h0", PROFILES_STRING);
  assert_null(profiles_list_find(&out, "servers[1]"));
  assert_null(profiles_list_find(&out, "servers[2].host"));
  assert_prop(&out, "nested.list[0].x", "h", PROFILES_STRING);
  assert_null(profiles_list_find(&out, "nested.list[0].y"));
  assert_null(profiles_list_find(&out, "nested.list[1].x"));
  assert_prop(&out, "nested.other", "kept", PROFILES_STRING);
  assert_null(profiles_list_find(&out, "scalar[0]"));
  /* Maps merge key by key. */
  assert_prop(&out, "m.k", "hi", PROFILES_STRING);
  assert_prop(&out, "m.j", "lo", PROFILES_STRING);
  assert_prop(&out, "only_lo[1]", "kept", PROFILES_STRING);
  assert_int_equal(out.count, 8);
  profiles_list_free(&out);

  /* The limit on the merged size. */
  struct profiles_limits lim;
  profiles_limits_default(&lim);
  lim.max_props = 3;
  profiles_list_init(&out);
  assert_int_equal(profiles_merge(srcs, 2, &lim, &out), KEEL_ELIMIT);
  assert_int_equal(out.count, 0);
  profiles_list_free(&hi);
  profiles_list_free(&lo);
}

/* Resolves l and checks one property, or the error. */
static void expect_resolve(struct profiles_list *l, const char *const *env,
                           unsigned flags, int rc, const char *name,
                           const char *want) {
  struct profiles_error err = {0};
  int got = profiles_resolve(l, env, (size_t)-1, flags, NULL, &err);
  if (got != rc)
    fail_msg("rc %d (%s), want %d", got, err.msg, rc);
  if (rc == 0)
    assert_prop(l, name, want, PROFILES_STRING);
  else
    assert_string_equal(err.msg, want);
}

static void test_placeholders(void **state) {
  (void)state;
  static const char *const env[] = {"DB_URL=jdbc:env", "HOST=envhost",
                                    "SPRING_APPLICATION_NAME=fromenv", NULL};
  struct profiles_list l;
  make_list(&l, "spring.application.name", "billing", PROFILES_STRING, "db.url",
            "${DB_URL:jdbc:mysql://localhost:3306/default_db}", PROFILES_STRING,
            "db.other", "${NOPE:jdbc:mysql://localhost/x}", PROFILES_STRING,
            "greeting", "hello ${spring.application.name}!", PROFILES_STRING,
            "nested_default", "${a.missing:${b.missing:${HOST}}}",
            PROFILES_STRING, "chain", "${greeting} again", PROFILES_STRING,
            "escaped", "\\${not.a.placeholder} and ${port}", PROFILES_STRING,
            "port", "8080", PROFILES_INTEGER, "dyn", "${${which}.url}",
            PROFILES_STRING, "which", "db", PROFILES_STRING, "empty_default",
            "[${missing:}]", PROFILES_STRING, "unterminated", "${oops",
            PROFILES_STRING, "braces", "${missing:{a}b}", PROFILES_STRING,
            "relaxed", "${host}", PROFILES_STRING, NULL);
  expect_resolve(&l, env, 0, 0, "db.url", "jdbc:env");
  assert_prop(&l, "db.other", "jdbc:mysql://localhost/x", PROFILES_STRING);
  assert_prop(&l, "greeting", "hello billing!", PROFILES_STRING);
  assert_prop(&l, "nested_default", "envhost", PROFILES_STRING);
  assert_prop(&l, "chain", "hello billing! again", PROFILES_STRING);
  assert_prop(&l, "escaped", "${not.a.placeholder} and 8080", PROFILES_STRING);
  assert_prop(&l, "dyn", "jdbc:env", PROFILES_STRING);
  assert_prop(&l, "empty_default", "[]", PROFILES_STRING);
  assert_prop(&l, "unterminated", "${oops", PROFILES_STRING);
  assert_prop(&l, "braces", "{a}b", PROFILES_STRING);
  assert_prop(&l, "relaxed", "envhost", PROFILES_STRING);
  assert_prop(&l, "port", "8080", PROFILES_INTEGER);
  profiles_list_free(&l);
}

static void test_placeholder_errors(void **state) {
  (void)state;
  struct profiles_list l;
  make_list(&l, "a", "x${b}", PROFILES_STRING, "b", "${c}", PROFILES_STRING,
            "c", "${a}", PROFILES_STRING, NULL);
  expect_resolve(&l, NULL, 0, -ELOOP, NULL,
                 "property 'a': placeholder cycle: a -> b -> c -> a");
  /* Nothing changed on error. */
  assert_prop(&l, "a", "x${b}", PROFILES_STRING);
  profiles_list_free(&l);

  make_list(&l, "self", "${self}", PROFILES_STRING, NULL);
  expect_resolve(&l, NULL, 0, -ELOOP, NULL,
                 "property 'self': placeholder cycle: self -> self");
  profiles_list_free(&l);

  make_list(&l, "a", "left ${missing.key} right", PROFILES_STRING, "b",
            "${other:${alsomissing}}", PROFILES_STRING, NULL);
  expect_resolve(&l, NULL, 0, KEEL_ENOTFOUND, NULL,
                 "property 'a': could not resolve placeholder "
                 "'${missing.key}'");
  expect_resolve(&l, NULL, PROFILES_IGNORE_UNRESOLVABLE, 0, "a",
                 "left ${missing.key} right");
  assert_prop(&l, "b", "${alsomissing}", PROFILES_STRING);
  profiles_list_free(&l);

  /* Fan-out: 2^30 expansions of an empty value are cut off early. */
  profiles_list_init(&l);
  for (int i = 0; i < 30; i++) {
    char n[16], v[64];
    snprintf(n, sizeof n, "p%02d", i);
    snprintf(v, sizeof v, "${p%02d}${p%02d}", i + 1, i + 1);
    assert_int_equal(profiles_list_add(&l, n, v, strlen(v), PROFILES_STRING),
                     0);
  }
  assert_int_equal(profiles_list_add(&l, "p30", "", 0, PROFILES_STRING), 0);
  profiles_list_sort(&l);
  struct profiles_error err = {0};
  int rc = profiles_resolve(&l, NULL, 0, 0, NULL, &err);
  assert_int_equal(rc, KEEL_ELIMIT);
  profiles_list_free(&l);

  /* Growth past max_value_len. */
  make_list(&l, "a", "${b}${b}${b}${b}", PROFILES_STRING, "b",
            "0123456789012345678901234567890123456789", PROFILES_STRING, NULL);
  struct profiles_limits lim;
  profiles_limits_default(&lim);
  lim.max_value_len = 100;
  assert_int_equal(profiles_resolve(&l, NULL, 0, 0, &lim, &err), KEEL_ELIMIT);
  assert_string_equal(err.msg, "property 'a': value longer than 100 bytes "
                               "after resolving placeholders");
  profiles_list_free(&l);
}

static void test_relaxed_binding(void **state) {
  (void)state;
  static const char *const env[] = {"SPRING_DATASOURCE_URL=jdbc:override",
                                    "MY_SERVICE_0_OTHER=o",
                                    "SERVER_PORT=9090",
                                    "FEATURE_ON=maybe",
                                    "UNRELATED=x",
                                    NULL};
  struct profiles_list l;
  make_list(&l, "spring.datasource.url", "jdbc:file", PROFILES_STRING,
            "my.service[0].other", "file", PROFILES_STRING,
            "my.service[1].other", "file", PROFILES_STRING, "server.port",
            "8080", PROFILES_INTEGER, "feature.on", "true", PROFILES_BOOLEAN,
            NULL);
  struct profiles_error err = {0};
  assert_int_equal(profiles_apply_env(&l, env, (size_t)-1, NULL, &err), 0);
  assert_prop(&l, "spring.datasource.url", "jdbc:override", PROFILES_STRING);
  assert_prop(&l, "my.service[0].other", "o", PROFILES_STRING);
  assert_prop(&l, "my.service[1].other", "file", PROFILES_STRING);
  assert_prop(&l, "server.port", "9090", PROFILES_INTEGER);
  assert_prop(&l, "feature.on", "maybe", PROFILES_STRING);
  assert_int_equal(l.count, 5);
  profiles_list_free(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_merge_order),
      cmocka_unit_test(test_merge_most_specific_wins),
      cmocka_unit_test(test_merge_replaces_lists_whole),
      cmocka_unit_test(test_placeholders),
      cmocka_unit_test(test_placeholder_errors),
      cmocka_unit_test(test_relaxed_binding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_profiles_store.c — the stored form: keys, the tagged value encoding,
 * diffs (the puts and deletes of an import), name order, scalar typing. */
#include <errno.h>

#include "helpers.h"

static void test_keys(void **state) {
  (void)state;
  char *k;
  assert_int_equal(profiles_key_encode("billing", "prod", "spring.ds.url", &k),
                   0);
  assert_string_equal(k, "/config/billing/prod/spring.ds.url");
  char *app, *prof, *prop;
  assert_int_equal(profiles_key_decode(k, strlen(k), &app, &prof, &prop), 0);
  assert_string_equal(app, "billing");
  assert_string_equal(prof, "prod");
  assert_string_equal(prop, "spring.ds.url");
  free(app);
  free(prof);
  free(prop);
  free(k);
  /* A property may hold '/' and brackets; app/profile may not hold '/'. */
  assert_int_equal(profiles_key_encode("a", "p", "x/y[0]", &k), 0);
  assert_int_equal(profiles_key_decode(k, strlen(k), &app, &prof, &prop), 0);
  assert_string_equal(prop, "x/y[0]");
  free(app);
  free(prof);
  free(prop);
  free(k);
  assert_int_equal(profiles_key_encode("a", "p", NULL, &k), 0);
  assert_string_equal(k, "/config/a/p/");
  free(k);

  assert_int_equal(profiles_key_encode("a/b", "p", "x", &k), -EINVAL);
  assert_int_equal(profiles_key_encode("a", "p,q", "x", &k), -EINVAL);
  assert_int_equal(profiles_key_encode("a", "..", "x", &k), -EINVAL);
  assert_int_equal(profiles_key_encode("a", "p", "", &k), -EINVAL);
  assert_int_equal(profiles_key_encode("a", "p", "x\ny", &k), -EINVAL);
  assert_int_equal(profiles_key_encode("", "p", "x", &k), -EINVAL);
  static const char *const bad[] = {"/config/a/p", "/config/a//x",
                                    "/other/a/p/x", "/config/a/p/",
                                    "/config//p/x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(
        profiles_key_decode(bad[i], strlen(bad[i]), &app, &prof, &prop),
        -EINVAL);
}

static void test_values(void **state) {
  (void)state;
  struct profiles_prop props[] = {
      {"s", "hello: world", 12, PROFILES_STRING},
      {"i", "-42", 3, PROFILES_INTEGER},
      {"f", "1.5", 3, PROFILES_FLOAT},
      {"b", "true", 4, PROFILES_BOOLEAN},
      {"n", "", 0, PROFILES_NULL},
      {"e", "", 0, PROFILES_STRING},
  };
  static const char *const want[] = {"s:hello: world", "i:-42", "f:1.5",
                                     "b:true",         "n:",    "s:"};
  for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
    char *v;
    size_t vl;
    assert_int_equal(profiles_value_encode(&props[i], &v, &vl), 0);
    assert_int_equal(vl, strlen(want[i]));
    assert_memory_equal(v, want[i], vl);
    enum profiles_type t;
    char *text;
    size_t tl;
    assert_int_equal(profiles_value_decode(v, vl, &t, &text, &tl), 0);
    assert_int_equal(t, props[i].type);
    assert_string_equal(text, props[i].value);
    assert_int_equal(tl, props[i].value_len);
    free(text);
    free(v);
  }
  static const char *const bad[] = {"",      "s",    "x:1",    "hello",
                                    "i:abc", "i:08", "i:0x1F", "b:yes",
                                    "n:~",   "f:1",  "f:1e3"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    enum profiles_type t;
    char *text;
    if (profiles_value_decode(bad[i], strlen(bad[i]), &t, &text, NULL) !=
        KEEL_EPARSE)
      fail_msg("'%s' decoded", bad[i]);
  }
  enum profiles_type t;
  char *text;
  assert_int_equal(profiles_value_decode("s:a\0b", 5, &t, &text, NULL),
                   KEEL_EPARSE);
}

static void test_diff(void **state) {
  (void)state;
  struct profiles_list from, to;
  make_list(&from, "a", "1", PROFILES_INTEGER, "b", "x", PROFILES_STRING, "c",
            "same", PROFILES_STRING, "l[2]", "z", PROFILES_STRING, "l[10]",
            "ten", PROFILES_STRING, NULL);
  make_list(&to, "a", "1", PROFILES_STRING, "c", "same", PROFILES_STRING, "d",
            "new", PROFILES_STRING, "l[2]", "y", PROFILES_STRING, NULL);
  struct profiles_change *c;
  size_t n;
  assert_int_equal(profiles_diff(&from, &to, &c, &n), 0);
  assert_int_equal(n, 5);
  assert_int_equal(c[0].op, PROFILES_CHANGED); /* a: type changed */
  assert_string_equal(c[0].to->name, "a");
  assert_int_equal(c[1].op, PROFILES_REMOVED);
  assert_string_equal(c[1].from->name, "b");
  assert_null(c[1].to);
  assert_int_equal(c[2].op, PROFILES_ADDED);
  assert_string_equal(c[2].to->name, "d");
  assert_null(c[2].from);
  assert_int_equal(c[3].op, PROFILES_CHANGED);
  assert_string_equal(c[3].from->value, "z");
  assert_int_equal(c[4].op, PROFILES_REMOVED);
  assert_string_equal(c[4].from->name, "l[10]");
  free(c);
  assert_int_equal(profiles_diff(&to, &to, &c, &n), 0);
  assert_int_equal(n, 0);
  assert_null(c);
  profiles_list_free(&from);
  profiles_list_free(&to);
}

/* The import flow as the CLI runs it: stored KVs -> list, diff against
 * the import, encode the writes, apply them to a map of KVs, read back:
 * the stored profile now equals the import. */
struct kv {
  char *key, *val;
  size_t vlen;
};

static void test_import_replaces_profile(void **state) {
  (void)state;
  struct profiles_docs d1, d2;
  const struct profiles_list *first = yaml_props("a: 1\nlist: [x, y, z]\n"
                                                 "gone: true\n",
                                                 &d1);
  const struct profiles_list *next =
      yaml_props("a: 2\nlist: [x]\nnew: n\n", &d2);
  struct kv store[16];
  size_t ns = 0;
  /* Initial import into an empty profile: everything is added. */
  struct profiles_list empty = {0};
  const struct profiles_list *targets[] = {first, next};
  for (int round = 0; round < 2; round++) {
    struct profiles_list stored;
    profiles_list_init(&stored);
    struct profiles_error err = {0};
    for (size_t i = 0; i < ns; i++)
      assert_int_equal(
          profiles_list_add_stored(&stored, "billing", "prod", store[i].key,
                                   strlen(store[i].key), store[i].val,
                                   store[i].vlen, &err),
          0);
    profiles_list_sort(&stored);
    struct profiles_change *c;
    size_t n;
    assert_int_equal(
        profiles_diff(round ? &stored : &empty, targets[round], &c, &n), 0);
    for (size_t j = 0; j < n; j++) {
      char *key, *val;
      size_t vlen;
      assert_int_equal(
          profiles_change_encode("billing", "prod", &c[j], &key, &val, &vlen),
          0);
      size_t at = ns;
      for (size_t i = 0; i < ns; i++)
        if (!strcmp(store[i].key, key))
          at = i;
      if (!val) { /* delete */
        assert_true(at < ns);
        free(store[at].key);
        free(store[at].val);
        store[at] = store[--ns];
        free(key);
        continue;
      }
      if (at == ns) {
        assert_true(ns < 16);
        store[ns++] = (struct kv){key, val, vlen};
      } else {
        free(store[at].val);
        free(key);
        store[at].val = val;
        store[at].vlen = vlen;
      }
    }
    free(c);
    profiles_list_free(&stored);
  }
  struct profiles_list back;
  profiles_list_init(&back);
  struct profiles_error err = {0};
  for (size_t i = 0; i < ns; i++)
    assert_int_equal(profiles_list_add_stored(
                         &back, NULL, NULL, store[i].key, strlen(store[i].key),
                         store[i].val, store[i].vlen, &err),
                     0);
  profiles_list_sort(&back);
  assert_true(profiles_list_equal(&back, next));
  /* A key of another profile, and a raw value, are refused by name. */
  assert_int_equal(profiles_list_add_stored(&back, "billing", "dev",
                                            store[0].key, strlen(store[0].key),
                                            store[0].val, store[0].vlen, &err),
                   -EINVAL);
  assert_int_equal(profiles_list_add_stored(&back, NULL, NULL, "/config/a/p/x",
                                            13, "raw", 3, &err),
                   KEEL_EPARSE);
  assert_string_equal(err.msg, "key '/config/a/p/x': stored value is not a "
                               "typed profile value (want s:, i:, f:, b: or "
                               "n: and canonical text)");
  for (size_t i = 0; i < ns; i++) {
    free(store[i].key);
    free(store[i].val);
  }
  profiles_list_free(&back);
  profiles_docs_free(&d1);
  profiles_docs_free(&d2);
}

static void test_name_order(void **state) {
  (void)state;
  static const char *const sorted[] = {"a",     "a.b",     "a[0]", "a[2]",
                                       "a[10]", "a[10].x", "b"};
  for (size_t i = 0; i + 1 < sizeof sorted / sizeof sorted[0]; i++) {
    assert_true(profiles_name_cmp(sorted[i], sorted[i + 1]) < 0);
    assert_true(profiles_name_cmp(sorted[i + 1], sorted[i]) > 0);
  }
  assert_int_equal(profiles_name_cmp("x[3]", "x[3]"), 0);
  assert_true(profiles_name_cmp("x[01]", "x[1]") != 0);

  /* Regression (fuzz_profiles): an index compared numerically only when
   * both sides had one made a cycle, so the same properties sorted in two
   * orders and export -> import changed the list. Every pair of these must
   * agree with one total order. */
  static const char *const mixed[] = {"spi[00][0]", "spi[01l]0[]", "spi[0]",
                                      "spi[0",      "spi[1]",      "spi[x]",
                                      "spi.a",      "spi[!]",      "spi"};
  size_t n = sizeof mixed / sizeof mixed[0];
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      for (size_t k = 0; k < n; k++) {
        int ij = profiles_name_cmp(mixed[i], mixed[j]);
        int jk = profiles_name_cmp(mixed[j], mixed[k]);
        int ik = profiles_name_cmp(mixed[i], mixed[k]);
        assert_true((ij > 0) - (ij < 0) ==
                    -((profiles_name_cmp(mixed[j], mixed[i]) > 0) -
                      (profiles_name_cmp(mixed[j], mixed[i]) < 0)));
        if (ij < 0 && jk < 0)
          assert_true(ik < 0);
      }
}

static void test_scalar_resolve(void **state) {
  (void)state;
  static const struct {
    const char *in;
    enum profiles_type t;
    const char *out;
  } cases[] = {
      {"", PROFILES_NULL, ""},
      {"NULL", PROFILES_NULL, ""},
      {"On", PROFILES_BOOLEAN, "true"},
      {"n", PROFILES_STRING, "n"},
      {"0", PROFILES_INTEGER, "0"},
      {"-0x10", PROFILES_INTEGER, "-16"},
      {"0b101", PROFILES_INTEGER, "5"},
      {"9223372036854775807", PROFILES_INTEGER, "9223372036854775807"},
      {"-9223372036854775808", PROFILES_INTEGER, "-9223372036854775808"},
      {"9223372036854775808", PROFILES_STRING, "9223372036854775808"},
      {"09", PROFILES_STRING, "09"},
      {"1.", PROFILES_FLOAT, "1.0"},
      {"-1.25e-3", PROFILES_FLOAT, "-0.00125"},
      {"1e300", PROFILES_FLOAT, "1e+300"},
      {"0.1", PROFILES_FLOAT, "0.1"},
      {".NaN", PROFILES_FLOAT, ".nan"},
      {"1_000.5", PROFILES_FLOAT, "1000.5"},
      {"1.2.3", PROFILES_STRING, "1.2.3"},
      {"e3", PROFILES_STRING, "e3"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    enum profiles_type t;
    char *c;
    assert_int_equal(
        profiles_scalar_resolve(cases[i].in, strlen(cases[i].in), &t, &c), 0);
    if (t != cases[i].t || strcmp(c, cases[i].out))
      fail_msg("'%s' -> %s '%s', want %s '%s'", cases[i].in,
               profiles_type_name(t), c, profiles_type_name(cases[i].t),
               cases[i].out);
    /* Canonical text resolves to itself. */
    if (t != PROFILES_STRING) {
      enum profiles_type t2;
      char *c2;
      assert_int_equal(profiles_scalar_resolve(c, strlen(c), &t2, &c2), 0);
      assert_int_equal(t2, t);
      assert_string_equal(c2, c);
      free(c2);
    }
    free(c);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keys),
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_diff),
      cmocka_unit_test(test_import_replaces_profile),
      cmocka_unit_test(test_name_order),
      cmocka_unit_test(test_scalar_resolve),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

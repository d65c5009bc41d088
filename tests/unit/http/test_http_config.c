/* test_http_config.c — the /config endpoints over a real store and a real
 * client listener on 127.0.0.1: Environment JSON (v1, v2, URL-encoded
 * profiles), the flat documents, labels (revision, tag, unknown, future,
 * compacted), 404s, merge order and list replacement through the endpoint,
 * one-revision consistency with a write between two range reads, limits. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "http_test_scaffold.h"

/* Seeds billing/application in default and prod, in one txn. */
static int64_t seed(struct hts *h) {
  const char *k[] = {
      "/config/application/default/ratio",
      "/config/application/default/greeting",
      "/config/application/default/servers[0]",
      "/config/application/default/servers[1]",
      "/config/application/default/servers[2]",
      "/config/application/default/db.url",
      "/config/billing/default/server.port",
      "/config/billing/default/name",
      "/config/billing/default/enabled",
      "/config/billing/prod/server.port",
      "/config/billing/prod/servers[0]",
      "/config/application/prod/db.host",
      "/config/billing/db/db.pool",
      "/config/billing/dev/server.port",
  };
  const char *v[] = {
      "f:0.5",       "s:hello ${name} from ${db.url:nowhere}",
      "s:a",         "s:b",
      "s:c",         "s:jdbc://${db.host:localhost}/x",
      "i:8080",      "s:billing",
      "b:true",      "i:9090",
      "s:prod-only", "s:db.prod",
      "i:20",        "i:7070",
  };
  return hts_put_many(h, k, v, sizeof(k) / sizeof(k[0]));
}

static int setup(void **state) {
  struct hts *h = hts_start(NULL);
  seed(h);
  *state = h;
  return 0;
}

static int teardown(void **state) {
  hts_stop(*state);
  return 0;
}

static json_t *get_json(struct hts *h, const char *path, const char *hdrs,
                        int want_status, struct hts_resp *keep) {
  struct hts_resp r;
  assert_int_equal(hts_request(h->port, "GET", path, hdrs, NULL, 0, &r), 0);
  if (r.status != want_status)
    fprintf(stderr, "%s -> %d %s\n", path, r.status, r.body);
  assert_int_equal(r.status, want_status);
  json_error_t e;
  json_t *j = json_loads(r.body, 0, &e);
  if (j == NULL)
    fprintf(stderr, "not JSON: %s\n", r.body);
  assert_non_null(j);
  if (keep)
    *keep = r;
  else
    hts_resp_free(&r);
  return j;
}

static const char *src_name(json_t *env, size_t i) {
  json_t *s = json_array_get(json_object_get(env, "propertySources"), i);
  return json_string_value(json_object_get(s, "name"));
}

static json_t *src_get(json_t *env, size_t i, const char *prop) {
  json_t *s = json_array_get(json_object_get(env, "propertySources"), i);
  return json_object_get(json_object_get(s, "source"), prop);
}

static void test_environment_v1(void **state) {
  struct hts *h = *state;
  int64_t rev = hts_rev(h);
  struct hts_resp r;
  json_t *env = get_json(h, "/config/billing/prod", NULL, 200, &r);
  char *ct = hts_header(&r, "Content-Type");
  assert_string_equal(ct, "application/json");
  free(ct);
  char *xr = hts_header(&r, "X-Keel-Revision");
  char want[32];
  snprintf(want, sizeof(want), "%lld", (long long)rev);
  assert_string_equal(xr, want);
  free(xr);
  hts_resp_free(&r);
  assert_string_equal(json_string_value(json_object_get(env, "name")),
                      "billing");
  assert_string_equal(json_string_value(json_object_get(env, "version")), want);
  assert_true(json_is_null(json_object_get(env, "label")));
  json_t *profs = json_object_get(env, "profiles");
  assert_int_equal(json_array_size(profs), 1);
  assert_string_equal(json_string_value(json_array_get(profs, 0)), "prod");
  /* most specific first; every source non-empty */
  assert_int_equal(json_array_size(json_object_get(env, "propertySources")), 4);
  assert_string_equal(src_name(env, 0), "keel:billing-prod");
  assert_string_equal(src_name(env, 1), "keel:application-prod");
  assert_string_equal(src_name(env, 2), "keel:billing");
  assert_string_equal(src_name(env, 3), "keel:application");
  /* unmerged, typed values */
  assert_int_equal(json_integer_value(src_get(env, 0, "server.port")), 9090);
  assert_int_equal(json_integer_value(src_get(env, 2, "server.port")), 8080);
  assert_true(json_is_true(src_get(env, 2, "enabled")));
  assert_true(json_real_value(src_get(env, 3, "ratio")) == 0.5);
  /* the Environment is not resolved: Spring clients resolve themselves */
  assert_string_equal(json_string_value(src_get(env, 3, "greeting")),
                      "hello ${name} from ${db.url:nowhere}");
  json_decref(env);
}

static void test_environment_encoded_profiles(void **state) {
  struct hts *h = *state;
  json_t *env = get_json(h, "/config/billing/dev%2Cdb", NULL, 200, NULL);
  json_t *profs = json_object_get(env, "profiles");
  assert_int_equal(json_array_size(profs), 2);
  assert_string_equal(json_string_value(json_array_get(profs, 0)), "dev");
  assert_string_equal(json_string_value(json_array_get(profs, 1)), "db");
  /* the last profile wins: db first, then dev, then the defaults */
  assert_string_equal(src_name(env, 0), "keel:billing-db");
  assert_string_equal(src_name(env, 1), "keel:billing-dev");
  assert_string_equal(src_name(env, 2), "keel:billing");
  assert_string_equal(src_name(env, 3), "keel:application");
  assert_int_equal(json_array_size(json_object_get(env, "propertySources")), 4);
  json_decref(env);
  /* the same, not encoded */
  env = get_json(h, "/config/billing/dev,db", NULL, 200, NULL);
  assert_string_equal(src_name(env, 0), "keel:billing-db");
  json_decref(env);
}

static void test_environment_v2(void **state) {
  struct hts *h = *state;
  struct hts_resp r;
  json_t *env =
      get_json(h, "/config/billing/prod",
               "Accept: application/vnd.spring-cloud.config-server.v2+json\r\n",
               200, &r);
  char *ct = hts_header(&r, "Content-Type");
  assert_string_equal(ct, "application/vnd.spring-cloud.config-server.v2+json");
  free(ct);
  hts_resp_free(&r);
  json_t *v = src_get(env, 0, "server.port");
  assert_true(json_is_object(v));
  assert_int_equal(json_integer_value(json_object_get(v, "value")), 9090);
  assert_string_equal(json_string_value(json_object_get(v, "origin")),
                      "/config/billing/prod/server.port");
  json_decref(env);
}

static void test_labels(void **state) {
  struct hts *h = *state;
  int64_t old = hts_rev(h);
  hts_put(h, "/config/billing/prod/server.port", "i:9191");
  char tagv[32], path[128];
  snprintf(tagv, sizeof(tagv), "%lld", (long long)old);
  hts_put(h, "/config-tags/billing/v1.0", tagv);

  /* current */
  json_t *env = get_json(h, "/config/billing/prod", NULL, 200, NULL);
  assert_int_equal(json_integer_value(src_get(env, 0, "server.port")), 9191);
  json_decref(env);
  /* rev-N */
  snprintf(path, sizeof(path), "/config/billing/prod/rev-%lld", (long long)old);
  env = get_json(h, path, NULL, 200, NULL);
  assert_int_equal(json_integer_value(src_get(env, 0, "server.port")), 9090);
  assert_string_equal(json_string_value(json_object_get(env, "version")), tagv);
  snprintf(path, sizeof(path), "rev-%lld", (long long)old);
  assert_string_equal(json_string_value(json_object_get(env, "label")), path);
  json_decref(env);
  /* a tag */
  env = get_json(h, "/config/billing/prod/v1.0", NULL, 200, NULL);
  assert_int_equal(json_integer_value(src_get(env, 0, "server.port")), 9090);
  assert_string_equal(json_string_value(json_object_get(env, "version")), tagv);
  json_decref(env);
  /* a tag in the flat form */
  struct hts_resp r;
  assert_int_equal(hts_request(h->port, "GET",
                               "/config/v1.0/billing-prod.properties", NULL,
                               NULL, 0, &r),
                   0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "server.port=9090\n"));
  hts_resp_free(&r);
  /* unknown tag, future revision */
  env = get_json(h, "/config/billing/prod/nope", NULL, 404, NULL);
  assert_non_null(strstr(json_string_value(json_object_get(env, "message")),
                         "label 'nope' not found"));
  assert_int_equal(json_integer_value(json_object_get(env, "status")), 404);
  json_decref(env);
  json_decref(get_json(h, "/config/billing/prod/rev-0", NULL, 404, NULL));
  env = get_json(h, "/config/billing/prod/rev-99999", NULL, 404, NULL);
  assert_non_null(
      strstr(json_string_value(json_object_get(env, "message")), "future"));
  json_decref(env);
  /* compacted: 410 naming the compacted revision */
  int64_t now = hts_rev(h);
  hts_compact(h, now);
  snprintf(path, sizeof(path), "/config/billing/prod/rev-%lld", (long long)old);
  env = get_json(h, path, NULL, 410, NULL);
  char want[96];
  snprintf(want, sizeof(want), "compacted revision %lld", (long long)now);
  assert_non_null(
      strstr(json_string_value(json_object_get(env, "message")), want));
  json_decref(env);
  /* the tag pointing there too */
  json_decref(get_json(h, "/config/billing/prod/v1.0", NULL, 410, NULL));
}

static void test_not_found(void **state) {
  struct hts *h = *state;
  /* the shared app has properties: an unknown app still gets them */
  json_t *env = get_json(h, "/config/nobody/default", NULL, 200, NULL);
  assert_int_equal(json_array_size(json_object_get(env, "propertySources")), 1);
  assert_string_equal(src_name(env, 0), "keel:application");
  json_decref(env);
  /* no sources at all */
  struct hts *e = hts_start(NULL);
  hts_put(e, "/config/billing/default/x", "s:y");
  env = get_json(e, "/config/nobody/default", NULL, 404, NULL);
  assert_non_null(strstr(json_string_value(json_object_get(env, "message")),
                         "no configuration for application 'nobody'"));
  json_decref(env);
  json_decref(get_json(e, "/config/nobody-default.yml", NULL, 404, NULL));
  json_decref(get_json(e, "/config/billing", NULL, 404, NULL));
  json_decref(get_json(e, "/config/a/b/c/d", NULL, 404, NULL));
  json_decref(get_json(e, "/config/billing/", NULL, 404, NULL));
  hts_stop(e);
}

static void test_flat_documents(void **state) {
  struct hts *h = *state;
  struct hts_resp r;
  /* .properties: merged, lists replaced whole, placeholders resolved */
  assert_int_equal(hts_request(h->port, "GET",
                               "/config/billing-prod.properties", NULL, NULL, 0,
                               &r),
                   0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "server.port=9090\n"));
  assert_non_null(strstr(r.body, "servers[0]=prod-only\n"));
  assert_null(strstr(r.body, "servers[1]"));
  assert_non_null(strstr(r.body, "db.host=db.prod\n"));
  assert_non_null(strstr(r.body, "db.url=jdbc\\://db.prod/x\n"));
  assert_non_null(
      strstr(r.body, "greeting=hello billing from jdbc\\://db.prod/x\n"));
  hts_resp_free(&r);
  /* resolvePlaceholders=false keeps them */
  assert_int_equal(
      hts_request(h->port, "GET",
                  "/config/billing-prod.properties?resolvePlaceholders=false",
                  NULL, NULL, 0, &r),
      0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "db.url=jdbc\\://${db.host\\:localhost}/x"));
  hts_resp_free(&r);
  /* .yml and .yaml */
  const char *yml[] = {"/config/billing-prod.yml", "/config/billing-prod.yaml"};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(hts_request(h->port, "GET", yml[i], NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "server:\n  port: 9090\n"));
    assert_non_null(strstr(r.body, "servers:\n- prod-only\n"));
    hts_resp_free(&r);
  }
  /* .json keeps types */
  json_t *j = get_json(h, "/config/billing-prod.json", NULL, 200, NULL);
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(j, "server"), "port")),
      9090);
  assert_true(json_is_true(json_object_get(j, "enabled")));
  assert_int_equal(json_array_size(json_object_get(j, "servers")), 1);
  json_decref(j);
  /* default profile: the base list survives */
  j = get_json(h, "/config/billing-default.json", NULL, 200, NULL);
  assert_int_equal(json_array_size(json_object_get(j, "servers")), 3);
  assert_string_equal(json_string_value(json_object_get(j, "greeting")),
                      "hello billing from jdbc://localhost/x");
  json_decref(j);
  /* an app name with a dash: split at the last '-' */
  hts_put(h, "/config/my-app/eu/k", "s:v");
  j = get_json(h, "/config/my-app-eu.json", NULL, 200, NULL);
  assert_string_equal(json_string_value(json_object_get(j, "k")), "v");
  json_decref(j);
}

/* A write lands between the handler's first and second range read: the
 * response must still be the state before it, in every source. */
static int64_t race_rev;
static void write_mid_request(struct hts *h, int call) {
  if (call != 1)
    return;
  const char *k[] = {"/config/billing/prod/server.port",
                     "/config/billing/default/server.port",
                     "/config/application/default/ratio"};
  const char *v[] = {"i:1", "i:2", "f:0.25"};
  race_rev = hts_put_many(h, k, v, 3);
}

static void test_one_revision(void **state) {
  struct hts *h = *state;
  int64_t before = hts_rev(h);
  h->range_calls = 0;
  h->on_range = write_mid_request;
  json_t *env = get_json(h, "/config/billing/prod", NULL, 200, NULL);
  h->on_range = NULL;
  assert_true(race_rev > before);
  char want[32];
  snprintf(want, sizeof(want), "%lld", (long long)before);
  assert_string_equal(json_string_value(json_object_get(env, "version")), want);
  assert_int_equal(json_integer_value(src_get(env, 0, "server.port")), 9090);
  assert_int_equal(json_integer_value(src_get(env, 2, "server.port")), 8080);
  assert_true(json_real_value(src_get(env, 3, "ratio")) == 0.5);
  json_decref(env);
  /* the next request sees the whole write */
  env = get_json(h, "/config/billing/prod", NULL, 200, NULL);
  assert_int_equal(json_integer_value(src_get(env, 0, "server.port")), 1);
  assert_int_equal(json_integer_value(src_get(env, 2, "server.port")), 2);
  assert_true(json_real_value(src_get(env, 3, "ratio")) == 0.25);
  json_decref(env);
  /* the flat form too */
  h->range_calls = 0;
  h->on_range = write_mid_request; /* writes 1, 2, 0.25 again: same values */
  hts_put(h, "/config/billing/prod/server.port", "i:5");
  json_t *j = get_json(h, "/config/billing-prod.json", NULL, 200, NULL);
  h->on_range = NULL;
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(j, "server"), "port")),
      5);
  json_decref(j);
}

static void test_limits_and_errors(void **state) {
  struct hts *h = *state;
  char path[2048];
  /* 17 profiles */
  strcpy(path, "/config/billing/p0");
  for (int i = 1; i < 17; i++)
    sprintf(path + strlen(path), ",p%d", i);
  json_t *j = get_json(h, path, NULL, 400, NULL);
  assert_string_equal(json_string_value(json_object_get(j, "message")),
                      "too many profiles: 17 (limit 16)");
  json_decref(j);
  /* 16 is fine */
  strcpy(path, "/config/billing/p0");
  for (int i = 1; i < 16; i++)
    sprintf(path + strlen(path), ",p%d", i);
  json_decref(get_json(h, path, NULL, 200, NULL));
  /* a long path */
  strcpy(path, "/config/billing/");
  memset(path + strlen(path), 'x', 1100);
  path[16 + 1100] = 0;
  j = get_json(h, path, NULL, 400, NULL);
  assert_non_null(strstr(json_string_value(json_object_get(j, "message")),
                         "path is 1116 bytes (limit 1024)"));
  json_decref(j);
  /* bad escapes, bad names */
  json_decref(get_json(h, "/config/billing/pr%2", NULL, 400, NULL));
  json_decref(get_json(h, "/config/billing/pr%00d", NULL, 400, NULL));
  j = get_json(h, "/config/billing/a%20b", NULL, 400, NULL);
  assert_non_null(strstr(json_string_value(json_object_get(j, "message")),
                         "bad application or profile name"));
  json_decref(j);
  /* a path that is not UTF-8 still gets a JSON error */
  j = get_json(h, "/config/bill%FFing/prod", NULL, 400, NULL);
  assert_non_null(
      strstr(json_string_value(json_object_get(j, "message")), "not UTF-8"));
  json_decref(j);
  j = get_json(h, "/config/bill\xff/prod", NULL, 400, NULL);
  json_decref(j);
  /* methods */
  struct hts_resp r;
  assert_int_equal(
      hts_request(h->port, "POST", "/config/billing/prod", NULL, "x", 1, &r),
      0);
  assert_int_equal(r.status, 405);
  hts_resp_free(&r);
  assert_int_equal(
      hts_request(h->port, "HEAD", "/config/billing/prod", NULL, NULL, 0, &r),
      0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 0);
  hts_resp_free(&r);
  /* a placeholder cycle in the flat form: 500 naming the chain; the
   * Environment (not resolved) is still served */
  hts_put(h, "/config/cyc/default/a", "s:${b}");
  hts_put(h, "/config/cyc/default/b", "s:${a}");
  j = get_json(h, "/config/cyc-default.json", NULL, 500, NULL);
  assert_non_null(
      strstr(json_string_value(json_object_get(j, "message")), "a -> b -> a"));
  json_decref(j);
  json_decref(get_json(h, "/config/cyc/default", NULL, 200, NULL));
  /* a tag that does not hold a revision */
  hts_put(h, "/config-tags/billing/broken", "soon");
  j = get_json(h, "/config/billing/prod/broken", NULL, 500, NULL);
  assert_non_null(strstr(json_string_value(json_object_get(j, "message")),
                         "does not hold a revision"));
  json_decref(j);
  /* a stored value that is not keel's encoding: 500 naming the key */
  hts_put(h, "/config/billing/bad/x", "garbage");
  j = get_json(h, "/config/billing/bad", NULL, 500, NULL);
  assert_non_null(strstr(json_string_value(json_object_get(j, "message")),
                         "/config/billing/bad/x"));
  json_decref(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_environment_v1, setup, teardown),
      cmocka_unit_test_setup_teardown(test_environment_encoded_profiles, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_environment_v2, setup, teardown),
      cmocka_unit_test_setup_teardown(test_labels, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flat_documents, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_revision, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits_and_errors, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_http_ofrep.c — OFREP over a real store and client listener: single
 * evaluations (every reason, FLAG_NOT_FOUND 404, PARSE_ERROR 400,
 * INVALID_CONTEXT 400), the set header and default, bulk with ETag and
 * If-None-Match, the compiled-set cache and its bound, one revision per
 * request, request limits. */
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

#define F_BOOL                                                                 \
  "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"           \
  "\"defaultVariant\":\"on\",\"metadata\":{\"team\":\"web\"}}"
#define F_COLOR                                                                \
  "{\"state\":\"ENABLED\",\"variants\":{\"red\":\"#f00\",\"blue\":\"#00f\"},"  \
  "\"defaultVariant\":\"red\",\"targeting\":{\"if\":[{\"==\":[{\"var\":"       \
  "\"tier\"},\"gold\"]},\"blue\",null]}}"
#define F_ROLLOUT                                                              \
  "{\"state\":\"ENABLED\",\"variants\":{\"a\":\"A\",\"b\":\"B\"},"             \
  "\"defaultVariant\":\"a\",\"targeting\":{\"fractional\":[[\"a\",50],"        \
  "[\"b\",50]]}}"
#define F_OFF                                                                  \
  "{\"state\":\"DISABLED\",\"variants\":{\"x\":1,\"y\":2},"                    \
  "\"defaultVariant\":\"x\"}"
#define F_BROKEN                                                               \
  "{\"state\":\"ENABLED\",\"variants\":{\"x\":1,\"y\":2},"                     \
  "\"defaultVariant\":\"x\",\"targeting\":{\"if\":[{\"$ref\":\"gone\"},"       \
  "\"y\",null]}}"

static int setup_set(void **state, const char *def) {
  struct hts *h = hts_start(def);
  const char *k[] = {"/flags/web/bool-flag", "/flags/web/color",
                     "/flags/web/rollout",   "/flags/web/off-flag",
                     "/flags/web/broken",    "/flags/mobile/bool-flag"};
  const char *v[] = {F_BOOL,
                     F_COLOR,
                     F_ROLLOUT,
                     F_OFF,
                     F_BROKEN,
                     "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,"
                     "\"off\":false},\"defaultVariant\":\"off\"}"};
  hts_put_many(h, k, v, 6);
  *state = h;
  return 0;
}
static int setup(void **state) {
  return setup_set(state, "web");
}
static int setup_nodefault(void **state) {
  return setup_set(state, NULL);
}
static int teardown(void **state) {
  hts_stop(*state);
  return 0;
}

/* POSTs body to path; returns the parsed JSON body (NULL for an empty one)
 * and keeps the response in *keep when asked. */
static json_t *post(struct hts *h, const char *path, const char *hdrs,
                    const char *body, int want, struct hts_resp *keep) {
  struct hts_resp r;
  assert_int_equal(hts_request(h->port, "POST", path, hdrs, body,
                               body ? strlen(body) : 0, &r),
                   0);
  if (r.status != want)
    fprintf(stderr, "%s -> %d %s\n", path, r.status, r.body);
  assert_int_equal(r.status, want);
  json_t *j = r.body_len ? json_loads(r.body, 0, NULL) : NULL;
  if (r.body_len)
    assert_non_null(j);
  if (keep)
    *keep = r;
  else
    hts_resp_free(&r);
  return j;
}

static const char *str(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

#define P1(k) "/ofrep/v1/evaluate/flags/" k

static void test_single(void **state) {
  struct hts *h = *state;
  struct hts_resp r;
  json_t *j = post(h, P1("bool-flag"), NULL, "{\"context\":{}}", 200, &r);
  char *ct = hts_header(&r, "Content-Type");
  assert_string_equal(ct, "application/json");
  free(ct);
  hts_resp_free(&r);
  assert_string_equal(str(j, "key"), "bool-flag");
  assert_string_equal(str(j, "reason"), "STATIC");
  assert_string_equal(str(j, "variant"), "on");
  assert_true(json_is_true(json_object_get(j, "value")));
  assert_string_equal(str(json_object_get(j, "metadata"), "team"), "web");
  json_decref(j);

  /* targeting */
  j = post(h, P1("color"), NULL, "{\"context\":{\"tier\":\"gold\"}}", 200,
           NULL);
  assert_string_equal(str(j, "reason"), "TARGETING_MATCH");
  assert_string_equal(str(j, "variant"), "blue");
  assert_string_equal(str(j, "value"), "#00f");
  assert_true(json_is_object(json_object_get(j, "metadata")));
  json_decref(j);
  /* targeting returns null: the default variant, DEFAULT; an empty body is
   * an empty context */
  j = post(h, P1("color"), NULL, NULL, 200, NULL);
  assert_string_equal(str(j, "reason"), "DEFAULT");
  assert_string_equal(str(j, "value"), "#f00");
  json_decref(j);

  /* fractional: sticky per targetingKey, both variants reachable */
  int seen_a = 0, seen_b = 0;
  for (int i = 0; i < 40; i++) {
    char body[96];
    snprintf(body, sizeof(body), "{\"context\":{\"targetingKey\":\"user-%d\"}}",
             i);
    json_t *x = post(h, P1("rollout"), NULL, body, 200, NULL);
    json_t *y = post(h, P1("rollout"), NULL, body, 200, NULL);
    assert_string_equal(str(x, "reason"), "TARGETING_MATCH");
    assert_string_equal(str(x, "variant"), str(y, "variant"));
    assert_string_equal(str(x, "value"),
                        strcmp(str(x, "variant"), "a") == 0 ? "A" : "B");
    seen_a += strcmp(str(x, "variant"), "a") == 0;
    seen_b += strcmp(str(x, "variant"), "b") == 0;
    json_decref(x);
    json_decref(y);
  }
  assert_true(seen_a > 0 && seen_b > 0);

  /* disabled: no value, the code default applies */
  j = post(h, P1("off-flag"), NULL, "{}", 200, NULL);
  assert_string_equal(str(j, "reason"), "DISABLED");
  assert_null(json_object_get(j, "value"));
  assert_null(json_object_get(j, "variant"));
  json_decref(j);

  /* errors */
  j = post(h, P1("nope"), NULL, "{}", 404, NULL);
  assert_string_equal(str(j, "key"), "nope");
  assert_string_equal(str(j, "errorCode"), "FLAG_NOT_FOUND");
  assert_non_null(strstr(str(j, "errorDetails"), "'nope'"));
  json_decref(j);
  j = post(h, P1("broken"), NULL, "{}", 400, NULL);
  assert_string_equal(str(j, "key"), "broken");
  assert_string_equal(str(j, "errorCode"), "PARSE_ERROR");
  json_decref(j);
  /* a percent-encoded key */
  j = post(h, P1("bool%2Dflag"), NULL, "{}", 200, NULL);
  assert_string_equal(str(j, "key"), "bool-flag");
  json_decref(j);
}

static void test_sets(void **state) {
  struct hts *h = *state;
  json_t *j =
      post(h, P1("bool-flag"), "X-Keel-Flag-Set: mobile\r\n", "{}", 200, NULL);
  assert_string_equal(str(j, "variant"), "off");
  json_decref(j);
  j = post(h, P1("bool-flag"), "X-Keel-Flag-Set: empty\r\n", "{}", 404, NULL);
  assert_string_equal(str(j, "errorCode"), "FLAG_NOT_FOUND");
  json_decref(j);
  j = post(h, P1("bool-flag"), "X-Keel-Flag-Set: a/b\r\n", "{}", 400, NULL);
  assert_non_null(strstr(str(j, "errorDetails"), "X-Keel-Flag-Set"));
  json_decref(j);
}

static void test_no_default_set(void **state) {
  struct hts *h = *state;
  json_t *j = post(h, P1("bool-flag"), NULL, "{}", 400, NULL);
  assert_string_equal(str(j, "key"), "bool-flag");
  assert_string_equal(str(j, "errorCode"), "GENERAL");
  assert_non_null(strstr(str(j, "errorDetails"), "X-Keel-Flag-Set"));
  json_decref(j);
  j = post(h, "/ofrep/v1/evaluate/flags", NULL, "{}", 400, NULL);
  assert_null(json_object_get(j, "key"));
  assert_string_equal(str(j, "errorCode"), "GENERAL");
  json_decref(j);
  j = post(h, P1("bool-flag"), "X-Keel-Flag-Set: web\r\n", "{}", 200, NULL);
  json_decref(j);
}

static void test_bad_requests(void **state) {
  struct hts *h = *state;
  json_t *j = post(h, P1("bool-flag"), NULL, "{\"context\":", 400, NULL);
  assert_string_equal(str(j, "key"), "bool-flag");
  assert_string_equal(str(j, "errorCode"), "INVALID_CONTEXT");
  assert_non_null(strstr(str(j, "errorDetails"), "line 1"));
  json_decref(j);
  j = post(h, P1("bool-flag"), NULL, "{\"context\":[1]}", 400, NULL);
  assert_string_equal(str(j, "errorCode"), "INVALID_CONTEXT");
  json_decref(j);
  j = post(h, "/ofrep/v1/evaluate/flags", NULL, "[]", 400, NULL);
  assert_null(json_object_get(j, "key"));
  assert_string_equal(str(j, "errorCode"), "INVALID_CONTEXT");
  json_decref(j);
  /* the body limit: 64 KiB */
  size_t n = 64 * 1024 + 1;
  char *big = malloc(n + 1);
  memset(big, ' ', n);
  memcpy(big, "{\"context\":{}}", 14);
  big[n] = 0;
  j = post(h, P1("bool-flag"), NULL, big, 413, NULL);
  assert_non_null(strstr(str(j, "errorDetails"), "65537 bytes (limit 65536)"));
  json_decref(j);
  big[n - 1] = 0; /* exactly the limit is fine */
  json_decref(post(h, P1("bool-flag"), NULL, big, 200, NULL));
  free(big);
  /* bad key, method, path */
  json_decref(post(h, P1(""), NULL, "{}", 400, NULL));
  json_decref(post(h, P1("a%2Fb"), NULL, "{}", 400, NULL));
  json_decref(post(h, P1("a%FFb"), NULL, "{}", 400, NULL));
  struct hts_resp r;
  assert_int_equal(
      hts_request(h->port, "GET", P1("bool-flag"), NULL, NULL, 0, &r), 0);
  assert_int_equal(r.status, 405);
  hts_resp_free(&r);
  assert_int_equal(hts_request(h->port, "POST", "/ofrep/v1/evaluate/flagsX",
                               NULL, "{}", 2, &r),
                   0);
  assert_int_equal(r.status, 404);
  hts_resp_free(&r);
}

static void test_bulk_etag(void **state) {
  struct hts *h = *state;
  const char *path = "/ofrep/v1/evaluate/flags";
  const char *ctx = "{\"context\":{\"targetingKey\":\"u1\",\"tier\":\"gold\"}}";
  struct hts_resp r;
  json_t *j = post(h, path, NULL, ctx, 200, &r);
  char *etag = hts_header(&r, "ETag");
  hts_resp_free(&r);
  assert_non_null(etag);
  assert_true(etag[0] == '"');
  json_t *flags = json_object_get(j, "flags");
  assert_int_equal(json_array_size(flags), 5);
  int found = 0;
  for (size_t i = 0; i < json_array_size(flags); i++) {
    json_t *f = json_array_get(flags, i);
    if (strcmp(str(f, "key"), "color") == 0) {
      assert_string_equal(str(f, "variant"), "blue");
      found++;
    } else if (strcmp(str(f, "key"), "broken") == 0) {
      assert_string_equal(str(f, "errorCode"), "PARSE_ERROR");
      found++;
    } else if (strcmp(str(f, "key"), "off-flag") == 0) {
      assert_string_equal(str(f, "reason"), "DISABLED");
      found++;
    }
  }
  assert_int_equal(found, 3);
  json_decref(j);

  /* If-None-Match with the same ETag and context: 304 */
  char hdr[160];
  snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", etag);
  assert_int_equal(
      hts_request(h->port, "POST", path, hdr, ctx, strlen(ctx), &r), 0);
  assert_int_equal(r.status, 304);
  assert_int_equal(r.body_len, 0);
  char *e2 = hts_header(&r, "ETag");
  assert_string_equal(e2, etag);
  free(e2);
  hts_resp_free(&r);
  /* a list holding it, and a weak form */
  snprintf(hdr, sizeof(hdr), "If-None-Match: \"x\", W/%s\r\n", etag);
  json_decref(post(h, path, hdr, ctx, 304, NULL));
  /* the same context with keys in another order: same ETag */
  json_decref(post(h, path, hdr,
                   "{\"context\":{\"tier\":\"gold\",\"targetingKey\":\"u1\"}}",
                   304, NULL));
  /* another context: 200 */
  json_decref(post(h, path, hdr, "{\"context\":{\"tier\":\"x\"}}", 200, NULL));
  /* a change to the set: 200 and a new ETag */
  hts_put(h, "/flags/web/new-flag", F_BOOL);
  j = post(h, path, hdr, ctx, 200, &r);
  char *e3 = hts_header(&r, "ETag");
  hts_resp_free(&r);
  assert_string_not_equal(e3, etag);
  assert_int_equal(json_array_size(json_object_get(j, "flags")), 6);
  json_decref(j);
  /* deleting it changes it again: back to the first content, and so to the
   * first ETag (same keys at the same mod revisions = same answers) */
  hts_del(h, "/flags/web/new-flag");
  snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", e3);
  j = post(h, path, hdr, ctx, 200, &r);
  char *e4 = hts_header(&r, "ETag");
  hts_resp_free(&r);
  assert_string_not_equal(e4, e3);
  assert_string_equal(e4, etag);
  assert_int_equal(json_array_size(json_object_get(j, "flags")), 5);
  json_decref(j);
  /* a write elsewhere does not change the set's ETag */
  hts_put(h, "/flags/mobile/other", F_BOOL);
  snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", e4);
  json_decref(post(h, path, hdr, ctx, 304, NULL));
  /* an empty set */
  j = post(h, path, "X-Keel-Flag-Set: none\r\n", "{}", 200, NULL);
  assert_int_equal(json_array_size(json_object_get(j, "flags")), 0);
  json_decref(j);
  free(etag);
  free(e3);
  free(e4);
}

static void test_cache(void **state) {
  struct hts *h = *state;
  struct http_ofrep_stats s0, s1;
  http_ofrep_stats(h->ofrep, &s0);
  for (int i = 0; i < 20; i++)
    json_decref(post(h, P1("bool-flag"), NULL, "{}", 200, NULL));
  http_ofrep_stats(h->ofrep, &s1);
  assert_int_equal(s1.builds - s0.builds, 1);
  assert_int_equal(s1.cache_hits - s0.cache_hits, 19);
  /* a change: one rebuild, and the new definition is served */
  hts_put(h, "/flags/web/bool-flag",
          "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"
          "\"defaultVariant\":\"off\"}");
  for (int i = 0; i < 5; i++) {
    json_t *j = post(h, P1("bool-flag"), NULL, "{}", 200, NULL);
    assert_string_equal(str(j, "variant"), "off");
    json_decref(j);
  }
  http_ofrep_stats(h->ofrep, &s0);
  assert_int_equal(s0.builds - s1.builds, 1);
  /* the bound (4 sets here): cycling through 6 sets keeps working */
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 6; i++) {
      char key[64], hdr[64];
      snprintf(key, sizeof(key), "/flags/s%d/f", i);
      if (round == 0)
        hts_put(h, key, F_BOOL);
      snprintf(hdr, sizeof(hdr), "X-Keel-Flag-Set: s%d\r\n", i);
      json_t *j = post(h, P1("f"), hdr, "{}", 200, NULL);
      assert_string_equal(str(j, "variant"), "on");
      json_decref(j);
    }
  http_ofrep_stats(h->ofrep, &s1);
  assert_int_equal(s1.builds - s0.builds, 12); /* LRU of 4: every one missed */
}

/* A write between the identity read and the full read of the set: the
 * response is the set before the write. */
static void write_mid(struct hts *h, int call) {
  if (call == 1)
    hts_put(h, "/flags/web/bool-flag",
            "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"
            "\"defaultVariant\":\"off\"}");
}

static void test_one_revision(void **state) {
  struct hts *h = *state;
  h->range_calls = 0;
  h->on_range = write_mid;
  json_t *j = post(h, P1("bool-flag"), NULL, "{}", 200, NULL);
  h->on_range = NULL;
  assert_int_equal(h->range_calls, 2);
  assert_string_equal(str(j, "variant"), "on");
  json_decref(j);
  j = post(h, P1("bool-flag"), NULL, "{}", 200, NULL);
  assert_string_equal(str(j, "variant"), "off");
  json_decref(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_single, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_default_set, setup_nodefault,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bulk_etag, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_revision, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

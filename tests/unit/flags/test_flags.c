/* test_flags.c — flag definitions (validation errors name the JSON path and
 * the rule), flag sets (from a flagd file, from keel's stored layout), and
 * evaluation: every reason and error code, type checks, thread safety. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "flags.h"
#include "keel_error.h"

static char err[512];

static int validate(const char *def) {
  err[0] = 0;
  return flags_validate_flag("f", def, strlen(def), NULL, 0, err, sizeof err);
}

#define BAD(def, code, msg)                                                    \
  do {                                                                         \
    assert_int_equal(validate(def), code);                                     \
    assert_string_equal(err, msg);                                             \
  } while (0)

static void test_validation_errors(void **state) {
  (void)state;
  assert_int_equal(validate("{\"state\": \"ENABLED\", \"variants\": {\"on\": "
                            "true, \"off\": false}, \"defaultVariant\": "
                            "\"on\"}"),
                   0);
  BAD("[]", KEEL_EINVALIDFLAG,
      "definition: a flag definition must be a JSON object, not array");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"on\": true, \"off\": \"no\"}}",
      KEEL_EINVALIDFLAG, "variants.off: all variants must be boolean");
  BAD("{\"variants\": {\"on\": true}}", KEEL_EINVALIDFLAG,
      "state: required (ENABLED or DISABLED)");
  BAD("{\"state\": \"ON\", \"variants\": {\"on\": true}}", KEEL_EINVALIDFLAG,
      "state: must be \"ENABLED\" or \"DISABLED\"");
  BAD("{\"state\": \"ENABLED\"}", KEEL_EINVALIDFLAG,
      "variants: required (one or more variants)");
  BAD("{\"state\": \"ENABLED\", \"variants\": {}}", KEEL_EINVALIDFLAG,
      "variants: at least one variant is required");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"a\": null}}",
      KEEL_EINVALIDFLAG,
      "variants.a: a variant must be a boolean, string, number or object, "
      "not null");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"defaultVariant\": "
      "\"b\"}",
      KEEL_EINVALIDFLAG, "defaultVariant: 'b' is not one of the variants");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"defaultVariant\": "
      "3}",
      KEEL_EINVALIDFLAG, "defaultVariant: must be a variant name or null");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"targeting\": "
      "\"a\"}",
      KEEL_EINVALIDFLAG, "targeting: must be a JsonLogic object, not string");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"targeting\": "
      "{\"if\": [{\"in\": [1, {\"bogus\": 1}]}, \"a\", null]}}",
      KEEL_EINVALIDFLAG, "targeting.if[0].in[1]: unknown operator 'bogus'");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"targeting\": "
      "{\"if\": [{\"$ref\": \"beta\"}, \"a\", null]}}",
      KEEL_EINVALIDFLAG,
      "targeting.if[0]: $ref 'beta': no such evaluator in $evaluators");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"targeting\": "
      "{\"/\": [{\"var\": \"x\"}, 0]}}",
      KEEL_EINVALIDFLAG, "targeting: division by zero");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"metadata\": "
      "{\"owner\": [1]}}",
      KEEL_EINVALIDFLAG, "metadata.owner: must be a string, number or boolean");
  BAD("{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"extra\": 1}",
      KEEL_EINVALIDFLAG,
      "extra: unknown property (a flag has state, variants, defaultVariant, "
      "targeting, metadata)");
  assert_int_equal(validate("{\"state\": "), KEEL_EPARSE);
  assert_non_null(strstr(err, "definition: not valid JSON"));
  assert_int_equal(validate("{\"state\": \"ENABLED\", \"state\": \"DISABLED\", "
                            "\"variants\": {\"a\": 1}}"),
                   KEEL_EPARSE); /* duplicate keys are refused */
  /* keys */
  const char *ok = "{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}}";
  assert_int_equal(
      flags_validate_flag("a/b", ok, strlen(ok), NULL, 0, err, sizeof err),
      KEEL_EINVALIDFLAG);
  assert_string_equal(err, "key 'a/b': a flag key must not contain '/'");
  assert_int_equal(flags_validate_flag("$evaluators", ok, strlen(ok), NULL, 0,
                                       err, sizeof err),
                   KEEL_EINVALIDFLAG);
  /* $ref resolves against the set's evaluators */
  const char *reff = "{\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, "
                     "\"targeting\": {\"if\": [{\"$ref\": \"beta\"}, \"a\", "
                     "null]}}";
  const char *evs = "{\"beta\": {\"in\": [\"beta\", {\"var\": \"tags\"}]}}";
  assert_int_equal(flags_validate_flag("f", reff, strlen(reff), evs,
                                       strlen(evs), err, sizeof err),
                   0);
  /* size limit */
  size_t big = FLAGS_MAX_DEF_BYTES + 10;
  char *huge = malloc(big);
  memset(huge, ' ', big);
  assert_int_equal(
      flags_validate_flag("f", huge, big, NULL, 0, err, sizeof err),
      KEEL_ELIMIT);
  free(huge);
}

static void test_validate_evaluators_and_file(void **state) {
  (void)state;
  const char *e1 = "{\"isBeta\": {\"in\": [\"beta\", {\"var\": \"tags\"}]}}";
  assert_int_equal(flags_validate_evaluators(e1, strlen(e1), err, sizeof err),
                   0);
  const char *e2 = "{\"isBeta\": {\"nope\": []}}";
  assert_int_equal(flags_validate_evaluators(e2, strlen(e2), err, sizeof err),
                   KEEL_EINVALIDFLAG);
  assert_string_equal(err, "$evaluators.isBeta: unknown operator 'nope'");
  const char *f = "{\"flags\": {\"a\": {\"state\": \"ENABLED\", \"variants\": "
                  "{\"x\": 1, \"y\": \"2\"}}}}";
  assert_int_equal(flags_validate_file(f, strlen(f), err, sizeof err),
                   KEEL_EINVALIDFLAG);
  assert_string_equal(err, "flags.a.variants.y: all variants must be number");
  const char *f2 = "{\"flagz\": {}}";
  assert_int_equal(flags_validate_file(f2, strlen(f2), err, sizeof err),
                   KEEL_EINVALIDFLAG);
  const char *f3 = "{\"$schema\": \"https://flagd.dev/schema/v0/flags.json\", "
                   "\"flags\": {}}";
  assert_int_equal(flags_validate_file(f3, strlen(f3), err, sizeof err), 0);
}

static void test_validate_write(void **state) {
  (void)state;
  const char *bad = "{\"state\": \"ENABLED\", \"variants\": {\"off\": "
                    "false, \"on\": 1}}";
  const char *k = "/flags/web/new-ui";
  assert_int_equal(flags_validate_write(k, strlen(k), bad, strlen(bad), NULL, 0,
                                        err, sizeof err),
                   KEEL_EINVALIDFLAG);
  assert_string_equal(err,
                      "/flags/web/new-ui: variants.on: all variants must be "
                      "boolean");
  const char *good = "{\"state\": \"ENABLED\", \"variants\": {\"on\": "
                     "true}, \"targeting\": {\"$ref\": \"beta\"}}";
  const char *evs = "{\"beta\": {\"==\": [{\"var\": \"plan\"}, \"beta\"]}}";
  assert_int_equal(flags_validate_write(k, strlen(k), good, strlen(good), evs,
                                        strlen(evs), err, sizeof err),
                   0);
  assert_int_equal(flags_validate_write(k, strlen(k), good, strlen(good), NULL,
                                        0, err, sizeof err),
                   KEEL_EINVALIDFLAG);
  const char *ek = "/flags/web/$evaluators";
  assert_int_equal(flags_validate_write(ek, strlen(ek), evs, strlen(evs), NULL,
                                        0, err, sizeof err),
                   0);
  assert_int_equal(
      flags_validate_write(ek, strlen(ek), "[]", 2, NULL, 0, err, sizeof err),
      KEEL_EINVALIDFLAG);
  assert_string_equal(err, "/flags/web/$evaluators: $evaluators: must be an "
                           "object of name -> JsonLogic");
  const char *deep = "/flags/web/a/b";
  assert_int_equal(flags_validate_write(deep, strlen(deep), good, strlen(good),
                                        evs, strlen(evs), err, sizeof err),
                   KEEL_EINVALIDFLAG);
  const char *setonly = "/flags/web";
  assert_int_equal(flags_validate_write(setonly, strlen(setonly), "1", 1, NULL,
                                        0, err, sizeof err),
                   KEEL_EINVALIDFLAG);
  assert_string_equal(err, "/flags/web: flags live at /flags/<set>/<flag-key>");
  const char *other = "/config/app";
  assert_int_equal(flags_validate_write(other, strlen(other), "x", 1, NULL, 0,
                                        err, sizeof err),
                   0);
}

static const char *FILE_JSON =
    "{\"$evaluators\": {\"isPro\": {\"==\": [{\"var\": \"plan\"}, \"pro\"]}},"
    " \"metadata\": {\"team\": \"web\"},"
    " \"flags\": {"
    "  \"static\": {\"state\": \"ENABLED\", \"variants\": {\"on\": true, "
    "\"off\": false}, \"defaultVariant\": \"on\"},"
    "  \"targeted\": {\"state\": \"ENABLED\", \"variants\": {\"on\": true, "
    "\"off\": false}, \"defaultVariant\": \"off\", \"targeting\": {\"if\": "
    "[{\"$ref\": \"isPro\"}, \"on\", null]}, \"metadata\": {\"team\": "
    "\"growth\"}},"
    "  \"bool-mapped\": {\"state\": \"ENABLED\", \"variants\": {\"true\": "
    "\"yes\", \"false\": \"no\"}, \"defaultVariant\": \"false\", "
    "\"targeting\": {\">\": [{\"var\": \"age\"}, 17]}},"
    "  \"disabled\": {\"state\": \"DISABLED\", \"variants\": {\"on\": true}, "
    "\"defaultVariant\": \"on\"},"
    "  \"no-default\": {\"state\": \"ENABLED\", \"variants\": {\"a\": 1, "
    "\"b\": "
    "2}, \"defaultVariant\": null},"
    "  \"no-default-t\": {\"state\": \"ENABLED\", \"variants\": {\"a\": 1, "
    "\"b\": 2}, \"targeting\": {\"if\": [{\"var\": \"x\"}, \"b\"]}},"
    "  \"bad-variant\": {\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, "
    "\"defaultVariant\": \"a\", \"targeting\": {\"var\": \"v\"}},"
    "  \"failing\": {\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, "
    "\"defaultVariant\": \"a\", \"targeting\": {\"<\": [{\"var\": \"v\"}, "
    "1]}},"
    "  \"rollout\": {\"state\": \"ENABLED\", \"variants\": {\"red\": "
    "{\"c\": 1}, \"blue\": {\"c\": 2}}, \"defaultVariant\": \"red\", "
    "\"targeting\": {\"fractional\": [[\"red\", 50], [\"blue\", 50]]}}"
    " }}";

static struct flags_set *load(void) {
  struct flags_set *s = NULL;
  assert_int_equal(
      flags_set_from_file(FILE_JSON, strlen(FILE_JSON), &s, err, sizeof err),
      0);
  return s;
}

static struct flags_result eval(struct flags_set *s, const char *key,
                                enum flags_type t, const char *ctx) {
  json_t *c = ctx ? json_loads(ctx, 0, NULL) : NULL;
  struct flags_result r;
  assert_int_equal(flags_evaluate(s, key, t, c, 1700000000, &r), 0);
  json_decref(c);
  return r;
}

static void test_reasons(void **state) {
  (void)state;
  struct flags_set *s = load();
  assert_int_equal(flags_set_count(s), 9);
  assert_string_equal(flags_set_key(s, 0), "static");

  struct flags_result r = eval(s, "static", FLAGS_TYPE_BOOLEAN, NULL);
  assert_int_equal(r.reason, FLAGS_REASON_STATIC);
  assert_true(json_is_true(r.value));
  assert_string_equal(r.variant, "on");
  assert_string_equal(json_string_value(json_object_get(r.metadata, "team")),
                      "web");

  r = eval(s, "targeted", FLAGS_TYPE_BOOLEAN, "{\"plan\": \"pro\"}");
  assert_int_equal(r.reason, FLAGS_REASON_TARGETING_MATCH);
  assert_string_equal(r.variant, "on");
  /* flag metadata wins over the file's */
  assert_string_equal(json_string_value(json_object_get(r.metadata, "team")),
                      "growth");
  r = eval(s, "targeted", FLAGS_TYPE_BOOLEAN, "{\"plan\": \"free\"}");
  assert_int_equal(r.reason, FLAGS_REASON_DEFAULT);
  assert_string_equal(r.variant, "off");

  r = eval(s, "bool-mapped", FLAGS_TYPE_STRING, "{\"age\": 30}");
  assert_int_equal(r.reason, FLAGS_REASON_TARGETING_MATCH);
  assert_string_equal(r.variant, "true");
  assert_string_equal(json_string_value(r.value), "yes");
  r = eval(s, "bool-mapped", FLAGS_TYPE_STRING, "{\"age\": 3}");
  assert_string_equal(r.variant, "false");

  r = eval(s, "disabled", FLAGS_TYPE_BOOLEAN, NULL);
  assert_int_equal(r.reason, FLAGS_REASON_DISABLED);
  assert_null(r.value);
  assert_null(r.variant);

  r = eval(s, "no-default", FLAGS_TYPE_NUMBER, NULL);
  assert_int_equal(r.reason, FLAGS_REASON_DEFAULT);
  assert_null(r.value);
  r = eval(s, "no-default-t", FLAGS_TYPE_NUMBER, "{\"x\": true}");
  assert_int_equal(r.reason, FLAGS_REASON_TARGETING_MATCH);
  assert_int_equal(json_integer_value(r.value), 2);
  r = eval(s, "no-default-t", FLAGS_TYPE_NUMBER, "{}");
  assert_int_equal(r.reason, FLAGS_REASON_DEFAULT);
  assert_null(r.value);

  r = eval(s, "missing", FLAGS_TYPE_BOOLEAN, NULL);
  assert_int_equal(r.reason, FLAGS_REASON_ERROR);
  assert_int_equal(r.error_code, FLAGS_ERROR_FLAG_NOT_FOUND);
  assert_string_equal(r.error_message, "flag 'missing' not found");

  r = eval(s, "static", FLAGS_TYPE_STRING, NULL);
  assert_int_equal(r.reason, FLAGS_REASON_ERROR);
  assert_int_equal(r.error_code, FLAGS_ERROR_TYPE_MISMATCH);
  assert_null(r.value);
  r = eval(s, "static", FLAGS_TYPE_ANY, NULL);
  assert_int_equal(r.error_code, FLAGS_ERROR_NONE);

  r = eval(s, "bad-variant", FLAGS_TYPE_NUMBER, "{\"v\": \"zzz\"}");
  assert_int_equal(r.error_code, FLAGS_ERROR_GENERAL);
  assert_string_equal(r.error_message,
                      "variant 'zzz' not found in flag with key 'bad-variant'");
  r = eval(s, "failing", FLAGS_TYPE_NUMBER, "{\"v\": \"abc\"}");
  assert_int_equal(r.reason, FLAGS_REASON_ERROR);
  assert_int_equal(r.error_code, FLAGS_ERROR_GENERAL);
  r = eval(s, "failing", FLAGS_TYPE_NUMBER, "{\"v\": 0}");
  assert_int_equal(r.error_code, FLAGS_ERROR_GENERAL); /* no variant "true" */
  assert_string_equal(r.error_message,
                      "variant 'true' not found in flag with key 'failing'");

  /* fractional: no targetingKey -> default; with one, sticky */
  r = eval(s, "rollout", FLAGS_TYPE_OBJECT, "{}");
  assert_int_equal(r.reason, FLAGS_REASON_DEFAULT);
  assert_string_equal(r.variant, "red");
  r = eval(s, "rollout", FLAGS_TYPE_OBJECT, "{\"targetingKey\": \"u-1\"}");
  assert_int_equal(r.reason, FLAGS_REASON_TARGETING_MATCH);
  const char *first = r.variant;
  for (int i = 0; i < 10; i++) {
    r = eval(s, "rollout", FLAGS_TYPE_OBJECT, "{\"targetingKey\": \"u-1\"}");
    assert_ptr_equal(r.variant, first);
  }
  assert_string_equal(flags_reason_name(FLAGS_REASON_TARGETING_MATCH),
                      "TARGETING_MATCH");
  assert_string_equal(flags_error_code_name(FLAGS_ERROR_PARSE_ERROR),
                      "PARSE_ERROR");
  flags_set_unref(s);
}

static void test_file_refused(void **state) {
  (void)state;
  struct flags_set *s = NULL;
  const char *f = "{\"flags\": {\"a\": {\"state\": \"ENABLED\", \"variants\": "
                  "{\"x\": 1}, \"defaultVariant\": \"y\"}}}";
  assert_int_equal(flags_set_from_file(f, strlen(f), &s, err, sizeof err),
                   KEEL_EINVALIDFLAG);
  assert_null(s);
  assert_string_equal(err,
                      "flags.a.defaultVariant: 'y' is not one of the variants");
}

static void test_builder_and_parse_error(void **state) {
  (void)state;
  struct flags_builder *b = flags_builder_new();
  const char *evs = "{\"isBeta\": {\"in\": [\"beta\", {\"var\": \"tags\"}]}}";
  assert_int_equal(
      flags_builder_set_evaluators(b, evs, strlen(evs), err, sizeof err), 0);
  const char *f1 = "{\"state\": \"ENABLED\", \"variants\": {\"on\": true, "
                   "\"off\": false}, \"defaultVariant\": \"off\", "
                   "\"targeting\": {\"if\": [{\"$ref\": \"isBeta\"}, \"on\"]}}";
  assert_int_equal(
      flags_builder_add(b, "beta-ui", f1, strlen(f1), err, sizeof err), 0);
  /* a $ref to an evaluator that is gone: kept, answers PARSE_ERROR */
  const char *f2 = "{\"state\": \"ENABLED\", \"variants\": {\"on\": true}, "
                   "\"defaultVariant\": \"on\", \"targeting\": {\"$ref\": "
                   "\"gone\"}}";
  assert_int_equal(
      flags_builder_add(b, "broken", f2, strlen(f2), err, sizeof err), 0);
  const char *f3 = "{\"state\": \"MAYBE\"}";
  assert_int_equal(flags_builder_add(b, "bad", f3, strlen(f3), err, sizeof err),
                   KEEL_EINVALIDFLAG);
  assert_int_equal(
      flags_builder_add(b, "beta-ui", f1, strlen(f1), err, sizeof err), 0);
  struct flags_set *s;
  assert_int_equal(flags_builder_build(b, &s, err, sizeof err),
                   KEEL_EINVALIDFLAG); /* beta-ui twice */
  assert_string_equal(err, "flag 'beta-ui' is defined twice");
  flags_builder_free(b);

  b = flags_builder_new();
  assert_int_equal(
      flags_builder_set_evaluators(b, evs, strlen(evs), err, sizeof err), 0);
  assert_int_equal(
      flags_builder_add(b, "beta-ui", f1, strlen(f1), err, sizeof err), 0);
  assert_int_equal(
      flags_builder_add(b, "broken", f2, strlen(f2), err, sizeof err), 0);
  assert_int_equal(flags_builder_build(b, &s, err, sizeof err), 0);
  flags_builder_free(b);
  struct flags_result r =
      eval(s, "beta-ui", FLAGS_TYPE_BOOLEAN, "{\"tags\": [\"beta\"]}");
  assert_int_equal(r.reason, FLAGS_REASON_TARGETING_MATCH);
  assert_true(json_is_true(r.value));
  r = eval(s, "broken", FLAGS_TYPE_BOOLEAN, NULL);
  assert_int_equal(r.reason, FLAGS_REASON_ERROR);
  assert_int_equal(r.error_code, FLAGS_ERROR_PARSE_ERROR);
  assert_non_null(strstr(r.error_message, "'gone'"));
  /* references keep the set alive */
  struct flags_set *s2 = flags_set_ref(s);
  flags_set_unref(s);
  r = eval(s2, "beta-ui", FLAGS_TYPE_BOOLEAN, "{}");
  assert_int_equal(r.reason, FLAGS_REASON_DEFAULT);
  flags_set_unref(s2);
}

struct worker {
  struct flags_set *s;
  int mismatches;
};

static void *work(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 20000; i++) {
    char ctx[64];
    snprintf(ctx, sizeof ctx, "{\"targetingKey\": \"user-%d\"}", i % 100);
    json_t *c = json_loads(ctx, 0, NULL);
    struct flags_result r1, r2;
    flags_evaluate(w->s, "rollout", FLAGS_TYPE_OBJECT, c, 1, &r1);
    flags_evaluate(w->s, "rollout", FLAGS_TYPE_OBJECT, c, 1, &r2);
    if (r1.variant != r2.variant || r1.reason != FLAGS_REASON_TARGETING_MATCH)
      w->mismatches++;
    json_decref(c);
  }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  struct flags_set *s = load();
  pthread_t t[4];
  struct worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (struct worker){.s = s};
    assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(w[i].mismatches, 0);
  }
  flags_set_unref(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_validation_errors),
      cmocka_unit_test(test_validate_evaluators_and_file),
      cmocka_unit_test(test_validate_write),
      cmocka_unit_test(test_reasons),
      cmocka_unit_test(test_file_refused),
      cmocka_unit_test(test_builder_and_parse_error),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

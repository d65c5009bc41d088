/* test_flags_logic.c — the JsonLogic evaluator, operator by operator, with
 * the semantics of flagd-core 4.0 (json-logic-engine's compiled code). The
 * surprising expectations (cat of null, var's null default, PARSE_ERROR for
 * constant failures) were checked against flagd-core by hand; the
 * cross-check (tests/flags-crosscheck) compares many generated cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flags_js.h"
#include "flags_logic.h"
#include "keel_error.h"

/* Evaluates rule against ctx (JSON text) for flag "my-flag" at timestamp
 * 1700000000. Returns String(result), "<null>", "<error>" (GENERAL) or
 * "<parse>" (the rule does not compile). */
static const char *ev(const char *rule, const char *ctx) {
  static char buf[512];
  json_error_t je;
  json_t *r = json_loads(rule, 0, &je);
  assert_non_null(r);
  json_t *c = ctx ? json_loads(ctx, 0, &je) : NULL;
  assert_true(!ctx || c);
  struct flags_logic *l;
  char err[256];
  int rc = flags_logic_compile(r, NULL, "targeting", &l, err, sizeof err);
  json_decref(r);
  if (rc) {
    assert_int_equal(rc, KEEL_EINVALIDFLAG);
    json_decref(c);
    return "<parse>";
  }
  struct flags_logic_env env = {.ctx = c,
                                .flag_key = "my-flag",
                                .flag_key_len = 7,
                                .timestamp = 1700000000};
  size_t len;
  int is_null;
  const char *msg;
  rc = flags_logic_eval(l, &env, buf, sizeof buf, &len, &is_null, &msg);
  flags_logic_free(l);
  json_decref(c);
  if (rc)
    return "<error>";
  return is_null ? "<null>" : buf;
}

#define EV(rule, ctx, want) assert_string_equal(ev(rule, ctx), want)

static void test_var(void **state) {
  (void)state;
  EV("{\"var\": \"a\"}", "{\"a\": 1}", "1");
  EV("{\"var\": \"a.b.c\"}", "{\"a\": {\"b\": {\"c\": \"deep\"}}}", "deep");
  EV("{\"var\": \"a.b\"}", "{\"a\": 5}", "<null>");
  EV("{\"var\": [\"x\", \"dflt\"]}", "{}", "dflt");
  /* the compiled var (`?? default`) treats null like missing */
  EV("{\"var\": [\"x\", \"dflt\"]}", "{\"x\": null}", "dflt");
  EV("{\"var\": \"list.1\"}", "{\"list\": [10, 20]}", "20");
  EV("{\"var\": \"list.length\"}", "{\"list\": [10, 20, 30]}", "3");
  EV("{\"var\": \"a\\\\.b\"}", "{\"a.b\": \"escaped\"}", "escaped");
  EV("{\"var\": \"targetingKey\"}", "{\"targetingKey\": \"u1\"}", "u1");
  EV("{\"var\": \"$flagd.flagKey\"}", "{}", "my-flag");
  EV("{\"var\": \"$flagd.timestamp\"}", "{}", "1700000000");
  /* the context cannot override $flagd */
  EV("{\"var\": \"$flagd.flagKey\"}", "{\"$flagd\": {\"flagKey\": \"x\"}}",
     "my-flag");
  EV("{\"var\": \"\"}", "{\"a\": 1}", "[object Object]");
  EV("{\"var\": [{\"cat\": [\"a\", \"b\"]}]}", "{\"ab\": \"dyn\"}", "dyn");
}

static void test_missing(void **state) {
  (void)state;
  EV("{\"missing\": [\"a\", \"b\"]}", "{\"a\": 1}", "b");
  EV("{\"missing\": [\"a\"]}", "{\"a\": null}", ""); /* null is present */
  EV("{\"missing\": [\"a.b\", \"c\", \"d\"]}", "{\"a\": {\"b\": 0}}", "c,d");
  EV("{\"missing_some\": [1, [\"a\", \"b\"]]}", "{\"a\": 1}", "");
  EV("{\"missing_some\": [2, [\"a\", \"b\", \"c\"]]}", "{\"a\": 1}", "b,c");
}

static void test_if_and_truthiness(void **state) {
  (void)state;
  EV("{\"if\": [true, \"yes\", \"no\"]}", NULL, "yes");
  EV("{\"if\": [{\"var\": \"x\"}, \"yes\", \"no\"]}", "{\"x\": []}", "no");
  EV("{\"if\": [{\"var\": \"x\"}, \"yes\", \"no\"]}", "{\"x\": {}}", "no");
  EV("{\"if\": [{\"var\": \"x\"}, \"yes\", \"no\"]}", "{\"x\": \"0\"}", "yes");
  EV("{\"if\": [{\"var\": \"x\"}, \"a\", {\"var\": \"y\"}, \"b\", \"c\"]}",
     "{\"y\": 1}", "b");
  EV("{\"if\": [{\"var\": \"x\"}, \"a\"]}", "{}", "<null>");
  EV("{\"if\": []}", NULL, "<null>");
  EV("{\"or\": [0, \"\", {\"var\": \"x\"}]}", "{\"x\": \"v\"}", "v");
  EV("{\"or\": [{\"var\": \"x\"}, 0]}", "{}", "0");
  EV("{\"and\": [1, {\"var\": \"x\"}, 2]}", "{\"x\": \"\"}", "");
  EV("{\"and\": [1, {\"var\": \"x\"}]}", "{\"x\": \"last\"}", "last");
  EV("{\"!\": [{\"var\": \"x\"}]}", "{\"x\": []}", "true");
  EV("{\"!!\": [{\"var\": \"x\"}]}", "{\"x\": \"a\"}", "true");
  EV("{\"!\": {\"var\": \"x\"}}", "{\"x\": 0}", "true");
}

static void test_comparisons(void **state) {
  (void)state;
  EV("{\"==\": [1, {\"var\": \"s\"}]}", "{\"s\": \"1\"}", "true");
  EV("{\"===\": [1, {\"var\": \"s\"}]}", "{\"s\": \"1\"}", "false");
  EV("{\"!=\": [{\"var\": \"n\"}, 0]}", "{\"n\": null}", "false");
  EV("{\"!==\": [{\"var\": \"n\"}, 0]}", "{\"n\": null}", "true");
  EV("{\"==\": [{\"var\": \"n\"}, null]}", "{}", "true");
  EV("{\"<\": [{\"var\": \"a\"}, \"b\"]}", "{\"a\": \"a\"}", "true");
  EV("{\"<\": [{\"var\": \"a\"}, 10]}", "{\"a\": \"9\"}", "true");
  EV("{\">\": [{\"var\": \"a\"}, 10]}", "{\"a\": 11}", "true");
  EV("{\">=\": [{\"var\": \"a\"}, 10]}", "{\"a\": 10}", "true");
  EV("{\"<=\": [{\"var\": \"a\"}, 10]}", "{\"a\": 10.5}", "false");
  /* between */
  EV("{\"<\": [1, {\"var\": \"a\"}, 10]}", "{\"a\": 5}", "true");
  EV("{\"<\": [1, {\"var\": \"a\"}, 10]}", "{\"a\": 10}", "false");
  EV("{\"<=\": [1, {\"var\": \"a\"}, 10]}", "{\"a\": 10}", "true");
  /* a non-numeric string against a number cannot be compared: an error */
  EV("{\">\": [{\"var\": \"a\"}, 1]}", "{\"a\": \"abc\"}", "<error>");
  EV("{\"==\": [{\"var\": \"a\"}, 1]}", "{\"a\": [1]}", "<error>");
}

static void test_arithmetic(void **state) {
  (void)state;
  EV("{\"+\": [1, {\"var\": \"a\"}, \"2\"]}", "{\"a\": 3}", "6");
  EV("{\"+\": [0.1, {\"var\": \"a\"}]}", "{\"a\": 0.2}", "0.30000000000000004");
  EV("{\"-\": [{\"var\": \"a\"}, 3]}", "{\"a\": 10}", "7");
  EV("{\"-\": [{\"var\": \"a\"}]}", "{\"a\": 4}", "-4");
  EV("{\"*\": [{\"var\": \"a\"}, 2.5]}", "{\"a\": 4}", "10");
  EV("{\"/\": [{\"var\": \"a\"}, 4]}", "{\"a\": 10}", "2.5");
  EV("{\"%\": [{\"var\": \"a\"}, 4]}", "{\"a\": 10}", "2");
  EV("{\"%\": [{\"var\": \"a\"}, 4]}", "{\"a\": -10}", "-2");
  EV("{\"/\": [1, {\"var\": \"z\"}]}", "{\"z\": 0}", "<error>");
  EV("{\"+\": [1, {\"var\": \"s\"}]}", "{\"s\": \"x\"}", "<error>");
  EV("{\"+\": [1, {\"var\": \"o\"}]}", "{\"o\": {}}", "<error>");
  EV("{\"*\": [{\"var\": \"a\"}, 1e300, 1e300]}", "{\"a\": 1}", "Infinity");
  EV("{\"min\": [3, {\"var\": \"a\"}, 2]}", "{\"a\": 1}", "1");
  EV("{\"max\": [3, {\"var\": \"a\"}, 2]}", "{\"a\": 1}", "3");
  EV("{\"max\": [3, {\"var\": \"a\"}]}", "{\"a\": \"9\"}", "<error>");
  /* what flagd-core's compiler refuses: PARSE_ERROR */
  EV("{\"/\": [{\"var\": \"a\"}, 0]}", NULL, "<parse>");
  EV("{\"+\": [{\"var\": \"a\"}, \"abc\"]}", NULL, "<parse>");
  EV("{\"+\": [{\"var\": \"a\"}, [1]]}", NULL, "<parse>");
  EV("{\"-\": []}", NULL, "<parse>");
  EV("{\"max\": [\"a\"]}", NULL, "<parse>"); /* constant, cannot evaluate */
}

static void test_strings(void **state) {
  (void)state;
  EV("{\"cat\": [\"a\", {\"var\": \"n\"}, 1.5, true]}", "{\"n\": 2}",
     "a21.5true");
  /* the compiled cat concatenates null as "null" */
  EV("{\"cat\": [\"a\", {\"var\": \"x\"}]}", "{}", "anull");
  /* a constant cat is evaluated by the interpreter, which skips null */
  EV("{\"cat\": [\"a\", null, \"b\"]}", NULL, "ab");
  EV("{\"cat\": [{\"var\": \"l\"}, \"!\"]}", "{\"l\": [1, null, 2]}", "1,,2!");
  EV("{\"substr\": [{\"var\": \"s\"}, 2]}", "{\"s\": \"abcdef\"}", "cdef");
  EV("{\"substr\": [{\"var\": \"s\"}, -2]}", "{\"s\": \"abcdef\"}", "ef");
  EV("{\"substr\": [{\"var\": \"s\"}, 1, 2]}", "{\"s\": \"abcdef\"}", "bc");
  EV("{\"substr\": [{\"var\": \"s\"}, 1, -2]}", "{\"s\": \"abcdef\"}", "bcd");
  EV("{\"substr\": [{\"var\": \"s\"}, 1]}", "{\"s\": 12345}", "<error>");
  EV("{\"in\": [\"b\", {\"var\": \"s\"}]}", "{\"s\": \"abc\"}", "true");
  EV("{\"in\": [{\"var\": \"c\"}, [\"DE\", \"FR\"]]}", "{\"c\": \"FR\"}",
     "true");
  EV("{\"in\": [1, {\"var\": \"l\"}]}", "{\"l\": [\"1\"]}", "false");
  EV("{\"in\": [1, {\"var\": \"l\"}]}", "{}", "false");
  EV("{\"starts_with\": [{\"var\": \"e\"}, \"ab\"]}", "{\"e\": \"abc\"}",
     "true");
  EV("{\"ends_with\": [{\"var\": \"e\"}, \"@x.org\"]}", "{\"e\": \"a@x.org\"}",
     "true");
  EV("{\"ends_with\": [{\"var\": \"e\"}, \"@x.org\"]}", "{\"e\": 5}", "<null>");
}

static void test_arrays(void **state) {
  (void)state;
  EV("{\"merge\": [1, [2, 3], {\"var\": \"l\"}]}", "{\"l\": [4, [5]]}",
     "1,2,3,4,5");
  EV("{\"map\": [{\"var\": \"l\"}, {\"*\": [{\"var\": \"\"}, 2]}]}",
     "{\"l\": [1, 2, 3]}", "2,4,6");
  EV("{\"filter\": [{\"var\": \"l\"}, {\">\": [{\"var\": \"\"}, 1]}]}",
     "{\"l\": [1, 2, 3]}", "2,3");
  EV("{\"reduce\": [{\"var\": \"l\"}, {\"+\": [{\"var\": \"current\"}, "
     "{\"var\": \"accumulator\"}]}, 10]}",
     "{\"l\": [1, 2, 3]}", "16");
  EV("{\"all\": [{\"var\": \"l\"}, {\">\": [{\"var\": \"\"}, 0]}]}",
     "{\"l\": [1, 2]}", "true");
  EV("{\"all\": [{\"var\": \"l\"}, {\">\": [{\"var\": \"\"}, 0]}]}",
     "{\"l\": []}", "false");
  EV("{\"some\": [{\"var\": \"l\"}, {\"==\": [{\"var\": \"\"}, \"b\"]}]}",
     "{\"l\": [\"a\", \"b\"]}", "true");
  EV("{\"none\": [{\"var\": \"l\"}, {\"==\": [{\"var\": \"\"}, \"b\"]}]}",
     "{\"l\": [\"a\", \"b\"]}", "false");
  EV("{\"map\": [{\"var\": \"l\"}, {\"var\": \"\"}]}", "{\"l\": 5}", "<error>");
  EV("{\"map\": [{\"var\": \"l\"}, {\"var\": \"\"}]}", "{}", "");
}

static void test_sem_ver(void **state) {
  (void)state;
  EV("{\"sem_ver\": [{\"var\": \"v\"}, \">=\", \"1.2.0\"]}",
     "{\"v\": \"1.10.0\"}", "true");
  EV("{\"sem_ver\": [{\"var\": \"v\"}, \"<\", \"2.0.0\"]}",
     "{\"v\": \"2.0.0-rc.1\"}", "true");
  EV("{\"sem_ver\": [{\"var\": \"v\"}, \"=\", \"1.2.3\"]}",
     "{\"v\": \"v1.2.3+build\"}", "true");
  EV("{\"sem_ver\": [{\"var\": \"v\"}, \"^\", \"1.0.0\"]}",
     "{\"v\": \"1.9.9\"}", "true");
  EV("{\"sem_ver\": [{\"var\": \"v\"}, \"~\", \"1.2.0\"]}",
     "{\"v\": \"1.3.0\"}", "false");
  EV("{\"sem_ver\": [{\"var\": \"v\"}, \">\", \"1.1\"]}", "{\"v\": \"1.2\"}",
     "true"); /* partial versions are coerced */
  EV("{\"sem_ver\": [{\"var\": \"v\"}, \"!=\", \"1.0.0\"]}",
     "{\"v\": \"not-a-version\"}", "<null>");
  EV("{\"sem_ver\": [{\"var\": \"v\"}, \"==\", \"1.0.0\"]}",
     "{\"v\": \"1.0.0\"}", "<null>"); /* unknown operator */
  EV("{\"sem_ver\": [{\"var\": \"v\"}, \">\", \"2.0.0-rc.2\"]}",
     "{\"v\": \"2.0.0-rc.10\"}", "true");
}

static void test_fractional(void **state) {
  (void)state;
  /* murmur3_x86_32 reference vectors */
  assert_int_equal(flags_murmur3_32("", 0, 0), 0);
  assert_int_equal(flags_murmur3_32("hello", 5, 0), 0x248bfa47u);
  const char *fox = "The quick brown fox jumps over the lazy dog";
  assert_int_equal(flags_murmur3_32(fox, strlen(fox), 0), 0x2e4ff723u);
  /* bucket = (hash * total) >> 32, first running sum above it wins */
  char rule[256];
  uint32_t h = flags_murmur3_32("my-flaguser-1", 13, 0);
  uint64_t bucket = ((uint64_t)h * 100) >> 32;
  snprintf(rule, sizeof rule,
           "{\"fractional\": [[\"a\", %llu], [\"b\", %llu]]}",
           (unsigned long long)bucket, (unsigned long long)(100 - bucket));
  EV(rule, "{\"targetingKey\": \"user-1\"}", "b");
  snprintf(rule, sizeof rule,
           "{\"fractional\": [[\"a\", %llu], [\"b\", %llu]]}",
           (unsigned long long)bucket + 1, (unsigned long long)(99 - bucket));
  EV(rule, "{\"targetingKey\": \"user-1\"}", "a");
  /* an explicit bucketing value, weights default to 1 */
  h = flags_murmur3_32("k", 1, 0);
  EV("{\"fractional\": [{\"var\": \"email\"}, [\"a\"], [\"b\"]]}",
     "{\"email\": \"k\"}", ((uint64_t)h * 2) >> 32 ? "b" : "a");
  /* no targetingKey: null (the default variant) */
  EV("{\"fractional\": [[\"a\", 1], [\"b\", 1]]}", "{}", "<null>");
  /* a non-integer weight, or no weight at all: null */
  EV("{\"fractional\": [[\"a\", 1.5], [\"b\", 1]]}",
     "{\"targetingKey\": \"u\"}", "<null>");
  EV("{\"fractional\": [[\"a\", 0], [\"b\", -3]]}", "{\"targetingKey\": \"u\"}",
     "<null>");
  /* negative weights count as 0 */
  EV("{\"fractional\": [[\"a\", -5], [\"b\", 1]]}", "{\"targetingKey\": \"u\"}",
     "b");
  /* sticky and spread: 10000 keys over 4 equal buckets */
  int counts[4] = {0};
  for (int i = 0; i < 10000; i++) {
    char ctx[64];
    snprintf(ctx, sizeof ctx, "{\"targetingKey\": \"user-%d\"}", i);
    const char *v = ev("{\"fractional\": [[\"a\", 25], [\"b\", 25], "
                       "[\"c\", 25], [\"d\", 25]]}",
                       ctx);
    assert_int_equal(strlen(v), 1);
    counts[v[0] - 'a']++;
    assert_string_equal(v, ev("{\"fractional\": [[\"a\", 25], [\"b\", 25], "
                              "[\"c\", 25], [\"d\", 25]]}",
                              ctx));
  }
  for (int i = 0; i < 4; i++)
    assert_in_range(counts[i], 2300, 2700);
}

static void test_compile_errors(void **state) {
  (void)state;
  char err[256];
  struct flags_logic *l;
  json_t *r = json_loads("{\"if\": [{\"nope\": [1]}, \"a\", \"b\"]}", 0, NULL);
  assert_int_equal(
      flags_logic_compile(r, NULL, "targeting", &l, err, sizeof err),
      KEEL_EINVALIDFLAG);
  assert_string_equal(err, "targeting.if[0]: unknown operator 'nope'");
  json_decref(r);
  r = json_loads("{\"==\": [1, 2], \"!=\": [1, 2]}", 0, NULL);
  assert_int_equal(flags_logic_compile(r, NULL, "t", &l, err, sizeof err),
                   KEEL_EINVALIDFLAG);
  assert_string_equal(err, "t: an operation must have exactly one key");
  json_decref(r);
  r = json_loads("{\"map\": [{\"var\": \"l\"}, {\"var\": \"../x\"}]}", 0, NULL);
  assert_int_equal(flags_logic_compile(r, NULL, "t", &l, err, sizeof err),
                   KEEL_EINVALIDFLAG);
  assert_string_equal(err,
                      "t.map[1]: '../' (the enclosing scope) is not supported");
  json_decref(r);
  r = json_loads("{\"and\": [{\"$ref\": \"x\"}]}", 0, NULL);
  assert_int_equal(flags_logic_compile(r, NULL, "t", &l, err, sizeof err),
                   KEEL_EINVALIDFLAG);
  assert_string_equal(err,
                      "t.and[0]: $ref 'x': no such evaluator in $evaluators");
  json_t *evs = json_loads("{\"x\": {\"var\": \"a\"}}", 0, NULL);
  assert_int_equal(flags_logic_compile(r, evs, "t", &l, err, sizeof err), 0);
  flags_logic_free(l);
  json_decref(r);
  /* a $ref cycle is bounded */
  json_decref(evs);
  evs = json_loads("{\"x\": {\"$ref\": \"x\"}}", 0, NULL);
  r = json_loads("{\"$ref\": \"x\"}", 0, NULL);
  assert_int_equal(flags_logic_compile(r, evs, "t", &l, err, sizeof err),
                   KEEL_EINVALIDFLAG);
  json_decref(r);
  json_decref(evs);
  /* nesting depth limit */
  char deep[2000] = "";
  for (int i = 0; i < 100; i++)
    strcat(deep, "{\"!\": [");
  strcat(deep, "true");
  for (int i = 0; i < 100; i++)
    strcat(deep, "]}");
  assert_string_equal(ev(deep, NULL), "<parse>");
}

static void test_limits(void **state) {
  (void)state;
  /* 100 arrays of 4000: iterating them all is 1.2M operations, past the
   * step limit; no memory is needed, so the step limit is what stops it */
  size_t cap = 100 * 4000 * 2 + 1000;
  char *ctx = malloc(cap);
  char *p = ctx + sprintf(ctx, "{\"l\": [");
  for (int i = 0; i < 100; i++) {
    *p++ = i ? ',' : ' ';
    *p++ = '[';
    for (int j = 0; j < 4000; j++) {
      if (j)
        *p++ = ',';
      *p++ = '1';
    }
    *p++ = ']';
  }
  strcpy(p, "]}");
  const char *rule = "{\"some\": [{\"var\": \"l\"}, {\"some\": [{\"var\": "
                     "\"\"}, {\"==\": [{\"var\": \"\"}, -1]}]}]}";
  EV(rule, ctx, "<error>");
  /* the same over a tenth of the data is within the limit */
  strcpy(ctx + 7 + 10 * 8002, "]}");
  EV(rule, ctx, "false");
  free(ctx);
  /* a string built up past the memory limit fails, it does not grow */
  char *big = malloc(20000);
  strcpy(big, "{\"l\": [0");
  for (int i = 1; i < 5000; i++)
    strcat(big, ",1");
  strcat(big, "]}");
  EV("{\"reduce\": [{\"var\": \"l\"}, {\"cat\": [{\"var\": "
     "\"accumulator\"}, \"0123456789012345678901234567890123456789\"]}, "
     "\"\"]}",
     big, "<error>");
  free(big);
}

static void test_js_helpers(void **state) {
  (void)state;
  char b[40];
  flags_js_numstr(1e21, b);
  assert_string_equal(b, "1e+21");
  flags_js_numstr(123456789012345680000.0, b);
  assert_string_equal(b, "123456789012345680000");
  flags_js_numstr(0.000001, b);
  assert_string_equal(b, "0.000001");
  flags_js_numstr(1e-7, b);
  assert_string_equal(b, "1e-7");
  flags_js_numstr(-2.5, b);
  assert_string_equal(b, "-2.5");
  assert_true(flags_js_tonumber(" 0x1A ", 6) == 26);
  assert_true(flags_js_tonumber("", 0) == 0);
  assert_true(flags_js_tonumber("1e3", 3) == 1000);
  assert_true(flags_js_tonumber("-Infinity", 9) < 0);
  assert_true(flags_js_tonumber("12px", 4) != flags_js_tonumber("12px", 4));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_var),
      cmocka_unit_test(test_missing),
      cmocka_unit_test(test_if_and_truthiness),
      cmocka_unit_test(test_comparisons),
      cmocka_unit_test(test_arithmetic),
      cmocka_unit_test(test_strings),
      cmocka_unit_test(test_arrays),
      cmocka_unit_test(test_sem_ver),
      cmocka_unit_test(test_fractional),
      cmocka_unit_test(test_compile_errors),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_js_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

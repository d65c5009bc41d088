/* test_edn.c — the bounded EDN reader: what it accepts, what it refuses
 * (with the column), and its limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "edn.h"
#include "keel_error.h"

static struct jepsen_edn_arena arena;

static int setup(void **state) {
  (void)state;
  return jepsen_edn_arena_init(&arena, 4096);
}

static int teardown(void **state) {
  (void)state;
  jepsen_edn_arena_free(&arena);
  return 0;
}

static const struct jepsen_edn *parse_ok(const char *text) {
  const struct jepsen_edn *v = NULL;
  struct jepsen_edn_error err;
  int rc = jepsen_edn_parse(&arena, text, strlen(text), &v, &err);
  if (rc != 0)
    fail_msg("'%s' failed at column %zu: %s", text, err.column, err.msg);
  return v;
}

static void expect_error(const char *text, int code, size_t column,
                         const char *msg_part) {
  const struct jepsen_edn *v = NULL;
  struct jepsen_edn_error err;
  int rc = jepsen_edn_parse(&arena, text, strlen(text), &v, &err);
  if (rc != code)
    fail_msg("'%s': expected %s, got %s (%s)", text, keel_err_name(code),
             keel_err_name(rc), err.msg);
  if (column != 0 && err.column != column)
    fail_msg("'%s': expected column %zu, got %zu (%s)", text, column,
             err.column, err.msg);
  if (strstr(err.msg, msg_part) == NULL)
    fail_msg("'%s': message '%s' lacks '%s'", text, err.msg, msg_part);
}

static void test_history_line(void **state) {
  (void)state;
  const struct jepsen_edn *m =
      parse_ok("{:index 0, :time 1234567890123, :type :invoke, :process 3, "
               ":f :cas, :value [1 -2]}");
  assert_int_equal(m->type, JEPSEN_EDN_MAP);
  assert_int_equal(m->count, 12);
  const struct jepsen_edn *t = jepsen_edn_get(m, "time");
  assert_non_null(t);
  assert_int_equal(t->type, JEPSEN_EDN_INT);
  assert_true(t->u.i == 1234567890123LL);
  assert_true(jepsen_edn_is_keyword(jepsen_edn_get(m, "type"), "invoke"));
  const struct jepsen_edn *v = jepsen_edn_get(m, "value");
  assert_int_equal(v->type, JEPSEN_EDN_VECTOR);
  assert_int_equal(v->count, 2);
  assert_int_equal(v->u.items[1].u.i, -2);
  assert_null(jepsen_edn_get(m, "missing"));
}

static void test_scalars(void **state) {
  (void)state;
  assert_int_equal(parse_ok("nil")->type, JEPSEN_EDN_NIL);
  assert_true(parse_ok(" true ")->u.b);
  assert_false(parse_ok("false")->u.b);
  assert_true(parse_ok("9223372036854775807")->u.i == INT64_MAX);
  assert_true(parse_ok("-9223372036854775808")->u.i == INT64_MIN);
  assert_int_equal(parse_ok("42N")->u.i, 42);
  assert_int_equal(parse_ok("+7")->u.i, 7);
  const struct jepsen_edn *k = parse_ok(":timed-out");
  assert_int_equal(k->type, JEPSEN_EDN_KEYWORD);
  assert_string_equal(k->u.s, "timed-out");
  const struct jepsen_edn *sym = parse_ok("jepsen.util/foo");
  assert_int_equal(sym->type, JEPSEN_EDN_SYMBOL);
  assert_string_equal(sym->u.s, "jepsen.util/foo");
}

static void test_strings(void **state) {
  (void)state;
  const struct jepsen_edn *s = parse_ok("\"a\\\"b\\\\c\\nd\\te\\u00e9\"");
  assert_int_equal(s->type, JEPSEN_EDN_STRING);
  assert_string_equal(s->u.s, "a\"b\\c\nd\te\xc3\xa9");
  assert_int_equal(s->count, strlen("a\"b\\c\nd\te\xc3\xa9"));
  assert_int_equal(parse_ok("\"\"")->count, 0);
  /* ',' inside a string is not whitespace */
  assert_string_equal(parse_ok("\"x, y\"")->u.s, "x, y");
}

static void test_collections(void **state) {
  (void)state;
  const struct jepsen_edn *v =
      parse_ok("[1 (2 3) #{4} {:a [5 {:b nil}]} []] ; trailing comment");
  assert_int_equal(v->type, JEPSEN_EDN_VECTOR);
  assert_int_equal(v->count, 5);
  assert_int_equal(v->u.items[1].type, JEPSEN_EDN_LIST);
  assert_int_equal(v->u.items[1].u.items[1].u.i, 3);
  assert_int_equal(v->u.items[2].type, JEPSEN_EDN_SET);
  const struct jepsen_edn *inner = jepsen_edn_get(&v->u.items[3], "a");
  assert_int_equal(inner->u.items[0].u.i, 5);
  assert_int_equal(jepsen_edn_get(&inner->u.items[1], "b")->type,
                   JEPSEN_EDN_NIL);
  assert_int_equal(v->u.items[4].count, 0);
}

static void test_print_round_trip(void **state) {
  (void)state;
  const char *text = "{:a [1 -2 \"x\\\"y\\n\"], :b #{nil true}, :c (:k sym)}";
  char buf[256];
  size_t n = jepsen_edn_print(parse_ok(text), buf, sizeof(buf));
  assert_int_equal(n, strlen(text));
  assert_string_equal(buf, text);
  /* A short buffer gets a cut, NUL-terminated text and the full length. */
  char small[8];
  n = jepsen_edn_print(parse_ok(text), small, sizeof(small));
  assert_int_equal(n, strlen(text));
  assert_int_equal(strlen(small), 7);
}

static void test_malformed(void **state) {
  (void)state;
  expect_error("", KEEL_EPARSE, 1, "end of input");
  expect_error("{:a 1", KEEL_EPARSE, 1, "never closed");
  expect_error("[1 2}", KEEL_EPARSE, 5, "does not close");
  expect_error("{:a 1 :b}", KEEL_EPARSE, 0, "key without a value");
  expect_error("\"abc", KEEL_EPARSE, 1, "unterminated string");
  expect_error("\"a\\qb\"", KEEL_EPARSE, 3, "unknown string escape");
  expect_error("\"\\u12\"", KEEL_EPARSE, 0, "\\u escape");
  expect_error("1.5", KEEL_EPARSE, 0, "floating-point");
  expect_error("1/2", KEEL_EPARSE, 0, "ratios");
  expect_error("12abc", KEEL_EPARSE, 3, "in number");
  expect_error("#inst \"2020\"", KEEL_EPARSE, 1, "tagged literals");
  expect_error("\\a", KEEL_EPARSE, 1, "character literals");
  expect_error("{:a 1} x", KEEL_EPARSE, 8, "after the value");
  expect_error(":", KEEL_EPARSE, 1, "empty keyword");
  expect_error("[1 \x01]", KEEL_EPARSE, 4, "unexpected byte");
  expect_error(")", KEEL_EPARSE, 1, "unexpected ')'");
}

static void test_limits(void **state) {
  (void)state;
  expect_error("9223372036854775808", KEEL_ELIMIT, 0, "64-bit range");
  expect_error("-9223372036854775809", KEEL_ELIMIT, 0, "64-bit range");
  char deep[128];
  size_t n = 0;
  for (int i = 0; i < JEPSEN_EDN_MAX_DEPTH; i++)
    deep[n++] = '[';
  for (int i = 0; i < JEPSEN_EDN_MAX_DEPTH; i++)
    deep[n++] = ']';
  deep[n] = '\0';
  parse_ok(deep); /* exactly the limit */
  char deeper[160];
  snprintf(deeper, sizeof(deeper), "[%s]", deep);
  expect_error(deeper, KEEL_ELIMIT, 0, "nesting deeper");
  /* Input longer than the arena was sized for is refused, not overrun. */
  struct jepsen_edn_arena small;
  assert_int_equal(jepsen_edn_arena_init(&small, 8), 0);
  const struct jepsen_edn *v;
  struct jepsen_edn_error err;
  assert_int_equal(jepsen_edn_parse(&small, "[1 2 3 4 5]", 11, &v, &err),
                   KEEL_ELIMIT);
  /* The worst case for an arena: one-byte values. */
  assert_int_equal(jepsen_edn_parse(&small, "[a b c]", 7, &v, &err), 0);
  assert_int_equal(v->count, 3);
  jepsen_edn_arena_free(&small);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_history_line),
      cmocka_unit_test(test_scalars),
      cmocka_unit_test(test_strings),
      cmocka_unit_test(test_collections),
      cmocka_unit_test(test_print_round_trip),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_limits),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

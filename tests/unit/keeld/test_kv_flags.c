/* test_kv_flags.c — validation on write under /flags/ (server/kv_flags.h):
 * the check the KV service runs on Put and on every put of every Txn
 * branch, over a real store in a temp dir (written directly with
 * store_apply, no node).
 *
 * Covered: keys outside /flags/, a valid flag, the rule messages (key, JSON
 * path, rule), text that is not JSON, an empty value, bad key shapes,
 * ignore_value, $ref resolution against the stored $evaluators, against a
 * put or a delete of $evaluators in the same txn branch (and not in the
 * other branch), an invalid $evaluators, an $evaluators write that would
 * break a stored flag (and the same write with the flag rewritten, or
 * deleted, in the txn; and a stored flag that was broken already), every
 * branch of a txn and nested txns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "keel_error.h"
#include "kv_flags.h"
#include "store.h"

static struct {
  char dir[64];
  struct store *st;
  uint64_t index;
  struct kv_flags_reader rd;
  char err[512];
} T;

static void apply1(const struct store_request *rq) {
  struct store_apply_entry e = {.index = ++T.index, .term = 1, .req = rq};
  struct store_apply_batch b = {.entries = &e, .n = 1};
  struct store_apply_result res;
  assert_int_equal(store_apply(T.st, &b, &res), 0);
  assert_int_equal(res.responses[0].error, 0);
  store_apply_result_free(&res);
}

static void sput(const char *key, const char *value) {
  struct store_request rq = {.type = STORE_REQ_PUT};
  rq.u.put.key = (const uint8_t *)key;
  rq.u.put.key_len = strlen(key);
  rq.u.put.value = (const uint8_t *)value;
  rq.u.put.value_len = strlen(value);
  apply1(&rq);
}

static int setup(void **state) {
  (void)state;
  memset(&T, 0, sizeof(T));
  snprintf(T.dir, sizeof(T.dir), "/tmp/keel-kvflags-XXXXXX");
  assert_non_null(mkdtemp(T.dir));
  struct store_options o = {0};
  assert_int_equal(store_open(T.dir, &o, &T.st), 0);
  kv_flags_reader_store(T.st, &T.rd);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  store_close(T.st);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

/* ---- request builders (all pointers into static storage) ---------------- */

#define MAX_OPS 16

struct ops {
  Etcdserverpb__RequestOp op[MAX_OPS];
  Etcdserverpb__RequestOp *p[MAX_OPS];
  Etcdserverpb__PutRequest put[MAX_OPS];
  Etcdserverpb__DeleteRangeRequest del[MAX_OPS];
  size_t n;
};

static Etcdserverpb__PutRequest mkput(const char *k, const char *v) {
  Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
  p.key.data = (uint8_t *)k;
  p.key.len = strlen(k);
  p.value.data = (uint8_t *)v;
  p.value.len = v ? strlen(v) : 0;
  return p;
}

static void add_put(struct ops *o, const char *k, const char *v) {
  size_t i = o->n++;
  assert_true(i < MAX_OPS);
  Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
  o->op[i] = op;
  o->put[i] = mkput(k, v);
  o->op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  o->op[i].request_put = &o->put[i];
  o->p[i] = &o->op[i];
}

static void add_del(struct ops *o, const char *k, const char *end) {
  size_t i = o->n++;
  assert_true(i < MAX_OPS);
  Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
  Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  o->op[i] = op;
  o->del[i] = d;
  o->del[i].key.data = (uint8_t *)k;
  o->del[i].key.len = strlen(k);
  if (end) {
    o->del[i].range_end.data = (uint8_t *)end;
    o->del[i].range_end.len = strlen(end);
  }
  o->op[i].request_case =
      ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
  o->op[i].request_delete_range = &o->del[i];
  o->p[i] = &o->op[i];
}

static void add_txn(struct ops *o, Etcdserverpb__TxnRequest *t) {
  size_t i = o->n++;
  assert_true(i < MAX_OPS);
  Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
  o->op[i] = op;
  o->op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
  o->op[i].request_txn = t;
  o->p[i] = &o->op[i];
}

static Etcdserverpb__TxnRequest mktxn(struct ops *succ, struct ops *fail) {
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  if (succ) {
    t.success = succ->p;
    t.n_success = succ->n;
  }
  if (fail) {
    t.failure = fail->p;
    t.n_failure = fail->n;
  }
  return t;
}

static int check_put(const char *k, const char *v) {
  Etcdserverpb__PutRequest p = mkput(k, v);
  return kv_flags_check_put(&T.rd, &p, T.err, sizeof(T.err));
}

static int check_txn(struct ops *succ, struct ops *fail) {
  Etcdserverpb__TxnRequest t = mktxn(succ, fail);
  return kv_flags_check_txn(&T.rd, &t, T.err, sizeof(T.err));
}

#define BOOL_FLAG                                                              \
  "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"           \
  "\"defaultVariant\":\"off\"}"
#define MIXED_FLAG                                                             \
  "{\"state\":\"ENABLED\",\"variants\":{\"off\":false,\"on\":\"yes\"},"        \
  "\"defaultVariant\":\"off\"}"
#define REF_FLAG                                                               \
  "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"           \
  "\"defaultVariant\":\"off\",\"targeting\":{\"if\":[{\"$ref\":\"beta\"},"     \
  "\"on\",\"off\"]}}"
#define EVALS_BETA "{\"beta\":{\"in\":[{\"var\":\"email\"},[\"a@x\"]]}}"
#define EVALS_OTHER "{\"other\":{\"==\":[1,1]}}"

/* ---- tests ------------------------------------------------------------- */

static void test_outside_flags(void **state) {
  (void)state;
  assert_int_equal(check_put("/config/app/default/x", "not json"), 0);
  assert_int_equal(check_put("/flagsX/web/x", "not json"), 0);
  assert_int_equal(check_put("flags/web/x", "not json"), 0);
  assert_false(kv_flags_key_is_flag((const uint8_t *)"/flag", 5));
  assert_true(kv_flags_key_is_flag((const uint8_t *)"/flags/", 7));
}

static void test_valid_and_rule_messages(void **state) {
  (void)state;
  assert_int_equal(check_put("/flags/web/new-ui", BOOL_FLAG), 0);
  assert_int_equal(check_put("/flags/web/new-ui", MIXED_FLAG),
                   KEEL_EINVALIDFLAG);
  assert_string_equal(
      T.err, "/flags/web/new-ui: variants.on: all variants must be boolean");
  assert_int_equal(check_put("/flags/web/s",
                             "{\"state\":\"ON\",\"variants\":{\"a\":1},"
                             "\"defaultVariant\":\"a\"}"),
                   KEEL_EINVALIDFLAG);
  assert_non_null(strstr(T.err, "/flags/web/s: state"));
  assert_int_equal(check_put("/flags/web/d",
                             "{\"state\":\"ENABLED\",\"variants\":{\"a\":1},"
                             "\"defaultVariant\":\"b\"}"),
                   KEEL_EINVALIDFLAG);
  assert_non_null(strstr(T.err, "/flags/web/d: defaultVariant"));
}

static void test_not_json_and_empty(void **state) {
  (void)state;
  assert_int_equal(check_put("/flags/web/x", "{\"state\": "), KEEL_EPARSE);
  assert_true(strncmp(T.err, "/flags/web/x: ", 14) == 0);
  assert_int_equal(check_put("/flags/web/x", NULL), KEEL_EPARSE);
  assert_true(strncmp(T.err, "/flags/web/x: ", 14) == 0);
  assert_int_equal(check_put("/flags/web/x", "[1,2]"), KEEL_EINVALIDFLAG);
}

static void test_key_shapes(void **state) {
  (void)state;
  assert_int_equal(check_put("/flags/", BOOL_FLAG), KEEL_EINVALIDFLAG);
  assert_int_equal(check_put("/flags/web", BOOL_FLAG), KEEL_EINVALIDFLAG);
  assert_non_null(strstr(T.err, "/flags/<set>/<flag-key>"));
  assert_int_equal(check_put("/flags/web/", BOOL_FLAG), KEEL_EINVALIDFLAG);
  assert_int_equal(check_put("/flags//x", BOOL_FLAG), KEEL_EINVALIDFLAG);
}

static void test_ignore_value(void **state) {
  (void)state;
  Etcdserverpb__PutRequest p = mkput("/flags/web/x", NULL);
  p.ignore_value = 1;
  assert_int_equal(kv_flags_check_put(&T.rd, &p, T.err, sizeof(T.err)), 0);
}

static void test_ref_against_stored(void **state) {
  (void)state;
  assert_int_equal(check_put("/flags/web/r", REF_FLAG), KEEL_EINVALIDFLAG);
  assert_non_null(strstr(T.err, "beta"));
  sput("/flags/web/$evaluators", EVALS_BETA);
  assert_int_equal(check_put("/flags/web/r", REF_FLAG), 0);
  /* another set's evaluators do not count */
  assert_int_equal(check_put("/flags/api/r", REF_FLAG), KEEL_EINVALIDFLAG);
}

static void test_ref_in_same_txn(void **state) {
  (void)state;
  struct ops s = {0}, f = {0};
  add_put(&s, "/flags/web/r", REF_FLAG);
  add_put(&s, "/flags/web/$evaluators", EVALS_BETA);
  assert_int_equal(check_txn(&s, NULL), 0);
  /* the evaluators put on the OTHER branch is not seen */
  struct ops s2 = {0};
  add_put(&s2, "/flags/web/r", REF_FLAG);
  add_put(&f, "/flags/web/$evaluators", EVALS_BETA);
  assert_int_equal(check_txn(&s2, &f), KEEL_EINVALIDFLAG);
  assert_true(strncmp(T.err, "/flags/web/r: ", 14) == 0);
  /* a nested txn sees its enclosing branch's put */
  struct ops outer = {0}, inner = {0};
  add_put(&inner, "/flags/web/r", REF_FLAG);
  Etcdserverpb__TxnRequest nested = mktxn(&inner, NULL);
  add_put(&outer, "/flags/web/$evaluators", EVALS_BETA);
  add_txn(&outer, &nested);
  assert_int_equal(check_txn(&outer, NULL), 0);
}

static void test_ref_deleted_in_txn(void **state) {
  (void)state;
  sput("/flags/web/$evaluators", EVALS_BETA);
  struct ops s = {0};
  add_del(&s, "/flags/web/$evaluators", NULL);
  add_put(&s, "/flags/web/r", REF_FLAG);
  assert_int_equal(check_txn(&s, NULL), KEEL_EINVALIDFLAG);
  /* a range delete covering it (the whole set) */
  struct ops s2 = {0};
  add_del(&s2, "/flags/web/", "/flags/web0");
  add_put(&s2, "/flags/web/r", REF_FLAG);
  assert_int_equal(check_txn(&s2, NULL), KEEL_EINVALIDFLAG);
  /* "\0" range end: every key from /flags/a on */
  struct ops s3 = {0};
  add_del(&s3, "/flags/a", NULL);
  s3.del[0].range_end.data = (uint8_t *)"";
  s3.del[0].range_end.len = 1;
  add_put(&s3, "/flags/web/r", REF_FLAG);
  assert_int_equal(check_txn(&s3, NULL), KEEL_EINVALIDFLAG);
  /* a delete of some other range leaves the stored evaluators */
  struct ops s4 = {0};
  add_del(&s4, "/flags/web/a", "/flags/web/b");
  add_put(&s4, "/flags/web/r", REF_FLAG);
  assert_int_equal(check_txn(&s4, NULL), 0);
}

static void test_invalid_evaluators(void **state) {
  (void)state;
  assert_int_equal(check_put("/flags/web/$evaluators", "[1]"),
                   KEEL_EINVALIDFLAG);
  assert_true(strncmp(T.err, "/flags/web/$evaluators: ", 24) == 0);
  assert_int_equal(check_put("/flags/web/$evaluators", "{\"x\":{\"nope\":[]}}"),
                   KEEL_EINVALIDFLAG);
  assert_int_equal(check_put("/flags/web/$evaluators", EVALS_BETA), 0);
}

static void test_evaluators_breaking_stored_flag(void **state) {
  (void)state;
  sput("/flags/web/$evaluators", EVALS_BETA);
  sput("/flags/web/r", REF_FLAG);
  sput("/flags/web/plain", BOOL_FLAG);
  assert_int_equal(check_put("/flags/web/$evaluators", EVALS_OTHER),
                   KEEL_EINVALIDFLAG);
  assert_non_null(strstr(T.err, "/flags/web/$evaluators: breaks the stored "
                                "flag /flags/web/r: "));
  /* keeping beta is fine */
  assert_int_equal(
      check_put("/flags/web/$evaluators",
                "{\"beta\":{\"==\":[1,1]},\"other\":{\"==\":[1,2]}}"),
      0);
  /* the same change with r rewritten (no $ref) in the txn is fine */
  struct ops s = {0};
  add_put(&s, "/flags/web/$evaluators", EVALS_OTHER);
  add_put(&s, "/flags/web/r", BOOL_FLAG);
  assert_int_equal(check_txn(&s, NULL), 0);
  /* ... or with r deleted */
  struct ops s2 = {0};
  add_put(&s2, "/flags/web/$evaluators", EVALS_OTHER);
  add_del(&s2, "/flags/web/r", NULL);
  assert_int_equal(check_txn(&s2, NULL), 0);
  /* ... but not with r rewritten still using beta */
  struct ops s3 = {0};
  add_put(&s3, "/flags/web/$evaluators", EVALS_OTHER);
  add_put(&s3, "/flags/web/r", REF_FLAG);
  assert_int_equal(check_txn(&s3, NULL), KEEL_EINVALIDFLAG);
  assert_true(strncmp(T.err, "/flags/web/r: ", 14) == 0);
}

static void test_stored_flag_broken_already(void **state) {
  (void)state;
  /* stored before validation existed: its $ref never resolved */
  sput("/flags/web/old", REF_FLAG);
  assert_int_equal(check_put("/flags/web/$evaluators", EVALS_OTHER), 0);
}

static void test_every_branch_and_nesting(void **state) {
  (void)state;
  struct ops s = {0}, f = {0};
  add_put(&s, "/flags/web/a", BOOL_FLAG);
  add_put(&s, "/other/key", "anything");
  add_put(&f, "/flags/web/b", MIXED_FLAG);
  assert_int_equal(check_txn(&s, &f), KEEL_EINVALIDFLAG);
  assert_true(strncmp(T.err, "/flags/web/b: ", 14) == 0);
  assert_int_equal(check_txn(&s, NULL), 0);

  struct ops inner_f = {0}, outer = {0};
  add_put(&inner_f, "/flags/web/c", "nope");
  Etcdserverpb__TxnRequest nested = mktxn(NULL, &inner_f);
  add_put(&outer, "/flags/web/a", BOOL_FLAG);
  add_txn(&outer, &nested);
  assert_int_equal(check_txn(&outer, NULL), KEEL_EPARSE);
  assert_true(strncmp(T.err, "/flags/web/c: ", 14) == 0);
  assert_int_equal(check_txn(NULL, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_outside_flags, setup, teardown),
      cmocka_unit_test_setup_teardown(test_valid_and_rule_messages, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_not_json_and_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_shapes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ignore_value, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ref_against_stored, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ref_in_same_txn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ref_deleted_in_txn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_evaluators, setup, teardown),
      cmocka_unit_test_setup_teardown(test_evaluators_breaking_stored_flag,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_stored_flag_broken_already, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_every_branch_and_nesting, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

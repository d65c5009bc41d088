/* test_store_kv.c — targeted checks of the MVCC store's etcd semantics that
 * the random model test does not reach: nested txns and the duplicate-key
 * rules, request limits, leases and their keys, the NOSPACE alarm, history
 * chunking on revision boundaries, HashKV, and the auto-compaction policy. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "store.h"
#include "test_util.h"

struct fx {
  char dir[256];
  struct store *st;
  uint64_t index;
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  tu_tmpdir(f->dir, sizeof(f->dir), "kv");
  struct store_options o = {.quota_bytes = 16 << 20, .apply_nosync = true};
  assert_int_equal(store_open(f->dir, &o, &f->st), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  store_close(f->st);
  tu_rmrf(f->dir);
  free(f);
  return 0;
}

/* Applies one request; the result is kept in *res (caller frees). */
static struct store_response *apply1(struct fx *f,
                                     const struct store_request *rq,
                                     struct store_apply_result *res) {
  struct store_apply_entry e = {.index = ++f->index, .term = 1, .req = rq};
  struct store_apply_batch b = {.entries = &e, .n = 1};
  assert_int_equal(store_apply(f->st, &b, res), 0);
  return &res->responses[0];
}

static int put(struct fx *f, const char *k, const char *v, int64_t lease) {
  struct store_request rq = {.type = STORE_REQ_PUT};
  rq.u.put.key = (const uint8_t *)k;
  rq.u.put.key_len = strlen(k);
  rq.u.put.value = (const uint8_t *)v;
  rq.u.put.value_len = strlen(v);
  rq.u.put.lease = lease;
  struct store_apply_result res;
  int err = apply1(f, &rq, &res)->error;
  store_apply_result_free(&res);
  return err;
}

static int64_t count(struct fx *f, const char *k, const char *end) {
  struct store_range_req q = {.key = (const uint8_t *)k,
                              .key_len = strlen(k),
                              .range_end = (const uint8_t *)end,
                              .range_end_len = end ? strlen(end) : 0,
                              .count_only = true};
  if (end && end[0] == 0)
    q.range_end_len = 1;
  struct store_range_result r;
  assert_int_equal(store_range(f->st, &q, &r), 0);
  int64_t c = r.resp.count;
  store_range_result_free(&r);
  return c;
}

#define OPPUT(k, v)                                                            \
  {                                                                            \
    .type = STORE_OP_PUT, .u.put = {                                           \
      .key = (const uint8_t *)(k),                                             \
      .key_len = sizeof(k) - 1,                                                \
      .value = (const uint8_t *)(v),                                           \
      .value_len = sizeof(v) - 1                                               \
    }                                                                          \
  }
#define OPDEL(k, e)                                                            \
  {                                                                            \
    .type = STORE_OP_DELETE_RANGE, .u.delete_range = {                         \
      .key = (const uint8_t *)(k),                                             \
      .key_len = sizeof(k) - 1,                                                \
      .range_end = (const uint8_t *)(e),                                       \
      .range_end_len = sizeof(e) - 1                                           \
    }                                                                          \
  }

static void test_revisions_start_at_etcds(void **state) {
  struct fx *f = *state;
  int64_t cur, comp;
  store_revisions(f->st, &cur, &comp);
  assert_int_equal(cur, 1);
  assert_int_equal(put(f, "foo", "bar", 0), 0);
  store_revisions(f->st, &cur, &comp);
  assert_int_equal(cur, 2);
  /* deleting nothing does not make a revision */
  struct store_request rq = {.type = STORE_REQ_DELETE_RANGE};
  rq.u.delete_range.key = (const uint8_t *)"nope";
  rq.u.delete_range.key_len = 4;
  struct store_apply_result res;
  struct store_response *r = apply1(f, &rq, &res);
  assert_int_equal(r->error, 0);
  assert_int_equal(r->u.delete_range.deleted, 0);
  assert_int_equal(r->revision, 2);
  store_apply_result_free(&res);
  /* bad input is refused with a named error, not applied */
  rq.type = STORE_REQ_PUT;
  memset(&rq.u.put, 0, sizeof(rq.u.put));
  assert_int_equal(apply1(f, &rq, &res)->error, -EINVAL); /* empty key */
  store_apply_result_free(&res);
  static uint8_t big[STORE_KEY_MAX + 1];
  memset(big, 'k', sizeof(big));
  rq.u.put.key = big;
  rq.u.put.key_len = sizeof(big);
  assert_int_equal(apply1(f, &rq, &res)->error, KEEL_ETOOLARGE);
  store_apply_result_free(&res);
  rq.u.put.key_len = 3;
  rq.u.put.ignore_value = true;
  rq.u.put.value = big;
  rq.u.put.value_len = 1;
  assert_int_equal(apply1(f, &rq, &res)->error, -EINVAL);
  store_apply_result_free(&res);
  rq.u.put.value_len = 0; /* ignore_value on a missing key */
  assert_int_equal(apply1(f, &rq, &res)->error, KEEL_ENOTFOUND);
  store_apply_result_free(&res);
  store_revisions(f->st, &cur, &comp);
  assert_int_equal(cur, 2);
  /* an over-long key in a txn's range or compare is the request's error,
   * never a failure of the batch (which would stop the node applying) */
  struct store_request_op rop = {.type = STORE_OP_RANGE};
  rop.u.range.key = big;
  rop.u.range.key_len = sizeof(big);
  struct store_request tx = {.type = STORE_REQ_TXN};
  tx.u.txn.success = &rop;
  tx.u.txn.n_success = 1;
  assert_int_equal(apply1(f, &tx, &res)->error, KEEL_ETOOLARGE);
  store_apply_result_free(&res);
  struct store_compare cmp = {
      .target = STORE_CMP_VERSION, .key = big, .key_len = sizeof(big)};
  tx.u.txn.compare = &cmp;
  tx.u.txn.n_compare = 1;
  tx.u.txn.n_success = 0;
  assert_int_equal(apply1(f, &tx, &res)->error, KEEL_ETOOLARGE);
  store_apply_result_free(&res);
  struct store_range_req q = {.key = big, .key_len = sizeof(big)};
  struct store_range_result rr;
  assert_int_equal(store_range(f->st, &q, &rr), KEEL_ETOOLARGE);
  /* delete over a long range end is fine: only the start is a key */
  rq.type = STORE_REQ_DELETE_RANGE;
  memset(&rq.u, 0, sizeof(rq.u));
  rq.u.delete_range.key = (const uint8_t *)"a";
  rq.u.delete_range.key_len = 1;
  rq.u.delete_range.range_end = big;
  rq.u.delete_range.range_end_len = sizeof(big);
  assert_int_equal(apply1(f, &rq, &res)->error, 0);
  store_apply_result_free(&res);
}

/* A store whose file is gone is an error, not a new empty store. */
static void test_missing_file_refused(void **state) {
  struct fx *f = *state;
  assert_int_equal(put(f, "x", "1", 0), 0);
  store_close(f->st);
  f->st = NULL;
  char path[512];
  snprintf(path, sizeof(path), "%s/keel-000001.mdb", f->dir);
  assert_int_equal(unlink(path), 0);
  struct store_options o = {.quota_bytes = 16 << 20};
  assert_int_equal(store_open(f->dir, &o, &f->st), KEEL_ECORRUPT);
  assert_null(f->st);
}

static void test_txn_duplicate_keys(void **state) {
  struct fx *f = *state;
  struct store_request_op two_puts[] = {OPPUT("a", "1"), OPPUT("a", "2")};
  struct store_txn_req t = {.success = two_puts, .n_success = 2};
  assert_int_equal(store_txn_validate(&t, 0), KEEL_EDUPKEY);
  struct store_request_op put_in_del[] = {OPDEL("a", "c"), OPPUT("b", "1")};
  t.success = put_in_del;
  assert_int_equal(store_txn_validate(&t, 0), KEEL_EDUPKEY);
  /* two deletes may overlap */
  struct store_request_op dels[] = {OPDEL("a", "c"), OPDEL("b", "d")};
  t.success = dels;
  assert_int_equal(store_txn_validate(&t, 0), 0);
  /* nested: then and else may put the same key; outer put may not */
  struct store_request_op inner_then[] = {OPPUT("x", "1")};
  struct store_request_op inner_else[] = {OPPUT("x", "2")};
  struct store_txn_req inner = {.success = inner_then,
                                .n_success = 1,
                                .failure = inner_else,
                                .n_failure = 1};
  struct store_request_op outer[] = {{.type = STORE_OP_TXN, .u.txn = &inner}};
  t.success = outer;
  t.n_success = 1;
  assert_int_equal(store_txn_validate(&t, 0), 0);
  struct store_request_op outer2[] = {{.type = STORE_OP_TXN, .u.txn = &inner},
                                      OPPUT("x", "3")};
  t.success = outer2;
  t.n_success = 2;
  assert_int_equal(store_txn_validate(&t, 0), KEEL_EDUPKEY);
  /* op limits per list, as etcd's --max-txn-ops */
  struct store_request_op many[3] = {OPPUT("p", "1"), OPPUT("q", "1"),
                                     OPPUT("r", "1")};
  t.success = many;
  t.n_success = 3;
  assert_int_equal(store_txn_validate(&t, 2), KEEL_ETOOMANYOPS);
  /* apply refuses the same way and writes nothing */
  struct store_request rq = {.type = STORE_REQ_TXN};
  rq.u.txn.success = two_puts;
  rq.u.txn.n_success = 2;
  struct store_apply_result res;
  assert_int_equal(apply1(f, &rq, &res)->error, KEEL_EDUPKEY);
  store_apply_result_free(&res);
  assert_int_equal(count(f, "a", NULL), 0);
}

/* Apply decides from the entry alone: a txn over etcd's proposal-time
 * limit (128) but under the fixed apply ceiling commits, whatever limit the
 * node was configured with. (It once used the node's own --max-txn-ops, so
 * nodes configured differently could apply one entry differently.) */
static void test_apply_txn_limit_is_fixed(void **state) {
  struct fx *f = *state;
  enum { N = 200 };
  static struct store_request_op ops[N];
  static char keys[N][8];
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], sizeof keys[i], "k%03d", i);
    ops[i].type = STORE_OP_PUT;
    ops[i].u.put.key = (const uint8_t *)keys[i];
    ops[i].u.put.key_len = strlen(keys[i]);
    ops[i].u.put.value = (const uint8_t *)"v";
    ops[i].u.put.value_len = 1;
  }
  struct store_txn_req t = {.success = ops, .n_success = N};
  assert_int_equal(store_txn_validate(&t, STORE_DEFAULT_MAX_TXN_OPS),
                   KEEL_ETOOMANYOPS);
  struct store_request rq = {.type = STORE_REQ_TXN};
  rq.u.txn = t;
  struct store_apply_result res;
  assert_int_equal(apply1(f, &rq, &res)->error, 0);
  store_apply_result_free(&res);
  assert_int_equal(count(f, "k", "l"), N);
}

static void test_nested_txn_one_revision(void **state) {
  struct fx *f = *state;
  assert_int_equal(put(f, "k1", "v", 0), 0); /* rev 2 */
  struct store_compare c = {.result = STORE_CMP_EQUAL,
                            .target = STORE_CMP_VERSION,
                            .key = (const uint8_t *)"k1",
                            .key_len = 2,
                            .number = 1};
  struct store_request_op inner_then[] = {OPPUT("n1", "x")};
  struct store_request_op inner_else[] = {OPPUT("n2", "y")};
  struct store_compare ic = c;
  ic.number = 2; /* false on the pre-txn state */
  struct store_txn_req inner = {.compare = &ic,
                                .n_compare = 1,
                                .success = inner_then,
                                .n_success = 1,
                                .failure = inner_else,
                                .n_failure = 1};
  struct store_request_op ops[] = {
      OPPUT("k1", "w"),
      {.type = STORE_OP_TXN, .u.txn = &inner},
      {.type = STORE_OP_RANGE,
       .u.range = {.key = (const uint8_t *)"k",
                   .key_len = 1,
                   .range_end = (const uint8_t *)"o",
                   .range_end_len = 1}}};
  struct store_request rq = {.type = STORE_REQ_TXN};
  rq.u.txn.compare = &c;
  rq.u.txn.n_compare = 1;
  rq.u.txn.success = ops;
  rq.u.txn.n_success = 3;
  struct store_apply_result res;
  struct store_response *r = apply1(f, &rq, &res);
  assert_int_equal(r->error, 0);
  assert_true(r->u.txn.succeeded);
  assert_int_equal(r->revision, 3); /* one revision for the whole txn */
  assert_int_equal(res.n_events, 2);
  assert_int_equal(res.events[0].kv.mod_revision, 3);
  assert_int_equal(res.events[1].kv.mod_revision, 3);
  assert_memory_equal(res.events[1].kv.key, "n2", 2); /* else branch */
  const struct store_response_op *ro = &r->u.txn.responses[1];
  assert_int_equal(ro->type, STORE_OP_TXN);
  assert_false(ro->u.txn->succeeded);
  /* the range sees the txn's own writes */
  const struct store_range_resp *rr = &r->u.txn.responses[2].u.range;
  assert_int_equal(rr->count, 2);
  assert_memory_equal(rr->kvs[0].value, "w", 1);
  assert_int_equal(rr->kvs[0].version, 2);
  store_apply_result_free(&res);
}

static void test_compare_over_range(void **state) {
  struct fx *f = *state;
  put(f, "r/a", "1", 0);
  put(f, "r/b", "1", 0);
  struct store_compare c = {.result = STORE_CMP_EQUAL,
                            .target = STORE_CMP_VALUE,
                            .key = (const uint8_t *)"r/",
                            .key_len = 2,
                            .range_end = (const uint8_t *)"r0",
                            .range_end_len = 2,
                            .value = (const uint8_t *)"1",
                            .value_len = 1};
  struct store_request rq = {.type = STORE_REQ_TXN};
  rq.u.txn.compare = &c;
  rq.u.txn.n_compare = 1;
  struct store_apply_result res;
  assert_true(apply1(f, &rq, &res)->u.txn.succeeded);
  store_apply_result_free(&res);
  put(f, "r/c", "2", 0);
  assert_false(apply1(f, &rq, &res)->u.txn.succeeded);
  store_apply_result_free(&res);
  /* missing key: VALUE fails, VERSION compares as 0 */
  c.key = (const uint8_t *)"none";
  c.key_len = 4;
  c.range_end_len = 0;
  assert_false(apply1(f, &rq, &res)->u.txn.succeeded);
  store_apply_result_free(&res);
  c.target = STORE_CMP_VERSION;
  c.number = 0;
  assert_true(apply1(f, &rq, &res)->u.txn.succeeded);
  store_apply_result_free(&res);
}

static void test_leases(void **state) {
  struct fx *f = *state;
  struct store_request rq = {.type = STORE_REQ_LEASE_GRANT};
  rq.u.lease_grant.id = 42;
  rq.u.lease_grant.ttl = 10;
  struct store_apply_result res;
  struct store_response *r = apply1(f, &rq, &res);
  assert_int_equal(r->error, 0);
  assert_int_equal(r->u.lease_grant.ttl, 10);
  assert_int_equal(r->revision, 1); /* a grant is not a KV revision */
  store_apply_result_free(&res);
  assert_int_equal(apply1(f, &rq, &res)->error, KEEL_ELEASEEXISTS);
  store_apply_result_free(&res);
  assert_int_equal(put(f, "l/1", "a", 42), 0);
  assert_int_equal(put(f, "l/2", "b", 42), 0);
  assert_int_equal(put(f, "l/3", "c", 43), KEEL_ELEASENOTFOUND);
  assert_int_equal(put(f, "l/2", "b2", 0), 0); /* detached */
  struct store_lease_info li;
  struct store_lease_keys lk;
  assert_int_equal(store_lease_get(f->st, 42, &li, &lk), 0);
  assert_int_equal(li.granted_ttl, 10);
  assert_int_equal(lk.n, 1);
  assert_memory_equal(lk.keys[0].key, "l/1", 3);
  store_lease_keys_free(&lk);
  rq.type = STORE_REQ_LEASE_CHECKPOINT;
  rq.u.lease_checkpoint.id = 42;
  rq.u.lease_checkpoint.remaining_ttl = 4;
  assert_int_equal(apply1(f, &rq, &res)->error, 0);
  store_apply_result_free(&res);
  assert_int_equal(store_lease_get(f->st, 42, &li, NULL), 0);
  assert_int_equal(li.remaining_ttl, 4);
  struct store_lease_info *all;
  size_t n;
  assert_int_equal(store_lease_list(f->st, &all, &n), 0);
  assert_int_equal(n, 1);
  free(all);
  rq.type = STORE_REQ_LEASE_EXPIRE;
  rq.u.lease_revoke.id = 42;
  r = apply1(f, &rq, &res);
  assert_int_equal(r->error, 0);
  assert_int_equal(res.n_events, 1);
  assert_int_equal(res.events[0].type, STORE_EVENT_DELETE);
  assert_true(res.events[0].has_prev);
  assert_int_equal(res.events[0].prev_kv.lease, 42);
  store_apply_result_free(&res);
  assert_int_equal(count(f, "l/", "l0"), 1);
  assert_int_equal(store_lease_get(f->st, 42, &li, NULL), KEEL_ELEASENOTFOUND);
  assert_int_equal(apply1(f, &rq, &res)->error, KEEL_ELEASENOTFOUND);
  store_apply_result_free(&res);
}

static void test_nospace_alarm(void **state) {
  struct fx *f = *state;
  put(f, "q", "1", 0);
  struct store_request al = {.type = STORE_REQ_ALARM};
  al.u.alarm.action = STORE_ALARM_ACTIVATE;
  al.u.alarm.member_id = 1;
  al.u.alarm.alarm = STORE_ALARM_NOSPACE;
  struct store_apply_result res;
  assert_int_equal(apply1(f, &al, &res)->u.alarm.n_alarms, 1);
  store_apply_result_free(&res);
  assert_int_equal(store_nospace_alarm(f->st), 1);
  assert_int_equal(put(f, "q", "2", 0), KEEL_ENOSPACE);
  struct store_request rq = {.type = STORE_REQ_LEASE_GRANT};
  rq.u.lease_grant.id = 1;
  rq.u.lease_grant.ttl = 5;
  assert_int_equal(apply1(f, &rq, &res)->error, KEEL_ENOSPACE);
  store_apply_result_free(&res);
  struct store_request_op tp[] = {OPPUT("q", "3")};
  rq.type = STORE_REQ_TXN;
  memset(&rq.u.txn, 0, sizeof(rq.u.txn));
  rq.u.txn.failure = tp; /* a put in any branch makes the txn a write */
  rq.u.txn.n_failure = 1;
  assert_int_equal(apply1(f, &rq, &res)->error, KEEL_ENOSPACE);
  store_apply_result_free(&res);
  /* deletes still work */
  rq.type = STORE_REQ_DELETE_RANGE;
  memset(&rq.u, 0, sizeof(rq.u));
  rq.u.delete_range.key = (const uint8_t *)"q";
  rq.u.delete_range.key_len = 1;
  assert_int_equal(apply1(f, &rq, &res)->u.delete_range.deleted, 1);
  store_apply_result_free(&res);
  al.u.alarm.action = STORE_ALARM_GET;
  assert_int_equal(apply1(f, &al, &res)->u.alarm.n_alarms, 1);
  store_apply_result_free(&res);
  al.u.alarm.action = STORE_ALARM_DEACTIVATE;
  apply1(f, &al, &res);
  store_apply_result_free(&res);
  assert_int_equal(store_nospace_alarm(f->st), 0);
  assert_int_equal(put(f, "q", "4", 0), 0);
}

static void test_history_chunks_keep_revisions_whole(void **state) {
  struct fx *f = *state;
  struct store_request_op ops[] = {OPPUT("h/1", "a"), OPPUT("h/2", "a"),
                                   OPPUT("h/3", "a"), OPPUT("h/4", "a")};
  struct store_request rq = {.type = STORE_REQ_TXN};
  rq.u.txn.success = ops;
  rq.u.txn.n_success = 4;
  struct store_apply_result res;
  apply1(f, &rq, &res); /* rev 2, four events */
  store_apply_result_free(&res);
  put(f, "h/1", "b", 0);   /* rev 3 */
  put(f, "other", "b", 0); /* rev 4 */
  struct store_history h;
  assert_int_equal(store_history_read(f->st, (const uint8_t *)"h/", 2,
                                      (const uint8_t *)"h0", 2, 2, 0, 2,
                                      1 << 20, true, &h),
                   0);
  assert_int_equal(h.n_events, 4); /* not split inside revision 2 */
  assert_int_equal(h.next_rev, 3);
  store_history_free(&h);
  assert_int_equal(store_history_read(f->st, (const uint8_t *)"h/", 2,
                                      (const uint8_t *)"h0", 2, 3, 0, 2,
                                      1 << 20, true, &h),
                   0);
  assert_int_equal(h.n_events, 1);
  assert_true(h.events[0].has_prev);
  assert_int_equal(h.events[0].prev_kv.mod_revision, 2);
  assert_int_equal(h.next_rev, 5); /* exhausted: current + 1 */
  store_history_free(&h);
  /* compaction: history at or below it is gone, the error names it */
  rq.type = STORE_REQ_COMPACTION;
  rq.u.compaction.revision = 3;
  assert_int_equal(apply1(f, &rq, &res)->error, 0);
  store_apply_result_free(&res);
  assert_int_equal(store_history_read(f->st, (const uint8_t *)"h/", 2, NULL, 0,
                                      3, 0, 2, 1 << 20, false, &h),
                   KEEL_ECOMPACTED);
  int64_t cur, comp;
  store_revisions(f->st, &cur, &comp);
  assert_int_equal(comp, 3);
  struct store_range_req q = {
      .key = (const uint8_t *)"h/1", .key_len = 3, .revision = 2};
  struct store_range_result rr;
  assert_int_equal(store_range(f->st, &q, &rr), KEEL_ECOMPACTED);
  q.revision = 3;
  assert_int_equal(store_range(f->st, &q, &rr), 0);
  assert_int_equal(rr.resp.n_kvs, 1);
  assert_int_equal(rr.resp.kvs[0].version, 2);
  store_range_result_free(&rr);
}

static void test_hash_kv(void **state) {
  struct fx *f = *state;
  put(f, "a", "1", 0);
  uint32_t h2, h3, h2b;
  int64_t comp, cur;
  assert_int_equal(store_hash_kv(f->st, 2, &h2, &comp, &cur), 0);
  put(f, "b", "1", 0);
  assert_int_equal(store_hash_kv(f->st, 3, &h3, &comp, &cur), 0);
  assert_int_equal(store_hash_kv(f->st, 2, &h2b, &comp, &cur), 0);
  assert_int_equal(h2, h2b); /* later writes do not change a past hash */
  assert_int_not_equal(h2, h3);
  assert_int_equal(store_hash_kv(f->st, 9, &h2, &comp, &cur), KEEL_EFUTUREREV);
}

static void test_autocompact_policy(void **state) {
  (void)state;
  struct store_autocompact ac;
  assert_int_equal(store_autocompact_init(&ac, STORE_AUTOCOMPACT_REVISION, 100),
                   0);
  assert_int_equal(store_autocompact_tick(&ac, 0, 500, 0), 0); /* start */
  assert_int_equal(store_autocompact_tick(&ac, 1000, 500, 0), 0);
  assert_int_equal(store_autocompact_tick(&ac, 300000, 500, 0), 400);
  assert_int_equal(store_autocompact_tick(&ac, 600000, 450, 400), 0);
  /* periodic: keep one hour; samples every 6 minutes */
  int64_t hour = 3600 * 1000;
  assert_int_equal(
      store_autocompact_init(&ac, STORE_AUTOCOMPACT_PERIODIC, hour), 0);
  int64_t got = 0;
  for (int i = 0; i <= 20; i++) {
    int64_t t = (int64_t)i * hour / 10;
    int64_t r = store_autocompact_tick(&ac, t, 100 + i * 10, 0);
    if (i < 10)
      assert_int_equal(r, 0);
    if (r)
      got = r;
  }
  /* at t = 2h the revision seen 1h ago (i = 10) */
  assert_int_equal(got, 200);
  assert_int_equal(store_autocompact_init(&ac, STORE_AUTOCOMPACT_PERIODIC, 0),
                   -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_revisions_start_at_etcds, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_txn_duplicate_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_apply_txn_limit_is_fixed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_nested_txn_one_revision, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_compare_over_range, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nospace_alarm, setup, teardown),
      cmocka_unit_test_setup_teardown(test_history_chunks_keep_revisions_whole,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_hash_kv, setup, teardown),
      cmocka_unit_test(test_autocompact_policy),
      cmocka_unit_test_setup_teardown(test_missing_file_refused, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_apply.c — the etcd <-> store translation end to end through the
 * single-node pipeline (pipeline.h): client encoding, validation, the log
 * round trip, apply, response encoding and the client's decoding. Checks
 * the fields etcdctl prints and every error's gRPC code and exact text. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "keel_grpc_wire.h"
#include "pipeline.h"
#include "tb.h"

static int setup(void **state) {
  struct pl *p = calloc(1, sizeof(*p));
  pl_open(p, 0);
  *state = p;
  return 0;
}
static int teardown(void **state) {
  struct pl *p = *state;
  pl_close(p);
  free(p);
  tb_free_all();
  return 0;
}

static void bytes_eq(ProtobufCBinaryData b, const char *s) {
  assert_int_equal(b.len, strlen(s));
  if (b.len)
    assert_memory_equal(b.data, s, b.len);
}

/* The client sees etcd's code and text for this keel code. */
static void status_is(struct pl *p, int grpc, const char *msg) {
  assert_int_equal(p->status.grpc, grpc);
  assert_string_equal(p->status.message, msg);
}

static int put(struct pl *p, const char *k, const char *v) {
  return pl_put(p, mk_put(k, v), NULL);
}

static void hdr_full(Etcdserverpb__ResponseHeader *h, int64_t rev) {
  assert_non_null(h);
  assert_int_equal(h->cluster_id, 0x1111);
  assert_int_equal(h->member_id, 0x2222);
  assert_int_equal(h->raft_term, 3);
  assert_int_equal(h->revision, rev);
}
static void hdr_rev_only(Etcdserverpb__ResponseHeader *h, int64_t rev) {
  assert_non_null(h);
  assert_int_equal(h->cluster_id, 0);
  assert_int_equal(h->member_id, 0);
  assert_int_equal(h->raft_term, 0);
  assert_int_equal(h->revision, rev);
}

static int64_t cur_rev(struct pl *p) {
  int64_t cur, comp;
  assert_int_equal(store_revisions(p->st, &cur, &comp), 0);
  return cur;
}

/* --- put / get ------------------------------------------------------- */

static void test_put_get(void **state) {
  struct pl *p = *state;
  int64_t r0 = cur_rev(p);
  Etcdserverpb__PutResponse *pr;
  assert_int_equal(pl_put(p, mk_put("foo", "bar"), &pr), 0);
  hdr_full(pr->header, r0 + 1);
  assert_null(pr->prev_kv);
  etcdserverpb__put_response__free_unpacked(pr, NULL);

  Etcdserverpb__RangeResponse *rr;
  assert_int_equal(pl_range(p, mk_range("foo", NULL), &rr), 0);
  hdr_full(rr->header, r0 + 1);
  assert_int_equal(rr->n_kvs, 1);
  assert_int_equal(rr->count, 1);
  assert_false(rr->more);
  bytes_eq(rr->kvs[0]->key, "foo");
  bytes_eq(rr->kvs[0]->value, "bar");
  assert_int_equal(rr->kvs[0]->create_revision, r0 + 1);
  assert_int_equal(rr->kvs[0]->mod_revision, r0 + 1);
  assert_int_equal(rr->kvs[0]->version, 1);
  assert_int_equal(rr->kvs[0]->lease, 0);
  etcdserverpb__range_response__free_unpacked(rr, NULL);

  /* prev_kv */
  Etcdserverpb__PutRequest *rq = mk_put("foo", "baz");
  rq->prev_kv = true;
  assert_int_equal(pl_put(p, rq, &pr), 0);
  hdr_full(pr->header, r0 + 2);
  assert_non_null(pr->prev_kv);
  bytes_eq(pr->prev_kv->value, "bar");
  assert_int_equal(pr->prev_kv->version, 1);
  etcdserverpb__put_response__free_unpacked(pr, NULL);
  assert_int_equal(pl_range(p, mk_range("foo", NULL), &rr), 0);
  assert_int_equal(rr->kvs[0]->version, 2);
  assert_int_equal(rr->kvs[0]->create_revision, r0 + 1);
  assert_int_equal(rr->kvs[0]->mod_revision, r0 + 2);
  etcdserverpb__range_response__free_unpacked(rr, NULL);

  /* empty value is allowed */
  assert_int_equal(put(p, "empty", ""), 0);
  /* missing key: no kvs, count 0 */
  assert_int_equal(pl_range(p, mk_range("nope", NULL), &rr), 0);
  assert_int_equal(rr->n_kvs, 0);
  assert_int_equal(rr->count, 0);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
}

static void test_put_ignore_and_lease(void **state) {
  struct pl *p = *state;
  Etcdserverpb__PutRequest *rq = mk_put("k", NULL);
  rq->ignore_value = true;
  assert_int_equal(pl_put(p, rq, NULL), KEEL_EKEYNOTFOUND);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: key not found");
  rq = mk_put("k", NULL);
  rq->ignore_lease = true;
  assert_int_equal(pl_put(p, rq, NULL), KEEL_EKEYNOTFOUND);

  /* lease not granted */
  rq = mk_put("k", "v");
  rq->lease = 0x55;
  assert_int_equal(pl_put(p, rq, NULL), KEEL_ELEASENOTFOUND);
  status_is(p, KEEL_GRPC_NOT_FOUND, "etcdserver: requested lease not found");

  Etcdserverpb__LeaseGrantResponse *gr;
  assert_int_equal(pl_lease_grant(p, 60, 0x55, &gr), 0);
  assert_int_equal(gr->id, 0x55);
  assert_int_equal(gr->ttl, 60);
  etcdserverpb__lease_grant_response__free_unpacked(gr, NULL);
  assert_int_equal(pl_put(p, rq, NULL), 0);

  /* ignore_value keeps the value, ignore_lease keeps the lease */
  rq = mk_put("k", NULL);
  rq->ignore_value = true;
  rq->ignore_lease = true;
  assert_int_equal(pl_put(p, rq, NULL), 0);
  Etcdserverpb__RangeResponse *rr;
  assert_int_equal(pl_range(p, mk_range("k", NULL), &rr), 0);
  bytes_eq(rr->kvs[0]->value, "v");
  assert_int_equal(rr->kvs[0]->lease, 0x55);
  assert_int_equal(rr->kvs[0]->version, 2);
  etcdserverpb__range_response__free_unpacked(rr, NULL);

  /* lease 0 without ignore_lease detaches */
  assert_int_equal(put(p, "k", "w"), 0);
  assert_int_equal(pl_range(p, mk_range("k", NULL), &rr), 0);
  assert_int_equal(rr->kvs[0]->lease, 0);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
}

/* --- range ----------------------------------------------------------- */

static void fill_abcd(struct pl *p) {
  assert_int_equal(put(p, "a", "1"), 0);
  assert_int_equal(put(p, "ab", "22"), 0);
  assert_int_equal(put(p, "b", "333"), 0);
  assert_int_equal(put(p, "c", "4"), 0);
  assert_int_equal(put(p, "d", "55555"), 0);
  assert_int_equal(put(p, "c", "44"), 0); /* c: version 2 */
}

static void keys_are(Etcdserverpb__RangeResponse *rr, const char *const *k,
                     size_t n) {
  assert_int_equal(rr->n_kvs, n);
  for (size_t i = 0; i < n; i++)
    bytes_eq(rr->kvs[i]->key, k[i]);
}
#define KEYS(rr, ...)                                                          \
  keys_are(rr, (const char *const[]){__VA_ARGS__},                             \
           sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

static Etcdserverpb__RangeResponse *get(struct pl *p,
                                        Etcdserverpb__RangeRequest *rq) {
  Etcdserverpb__RangeResponse *rr = NULL;
  assert_int_equal(pl_range(p, rq, &rr), 0);
  return rr;
}

static void test_range_shapes(void **state) {
  struct pl *p = *state;
  fill_abcd(p);
  int64_t now = cur_rev(p);
  Etcdserverpb__RangeResponse *rr = get(p, mk_range("a", "b")); /* prefix a */
  KEYS(rr, "a", "ab");
  hdr_full(rr->header, now);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rr = get(p, mk_range("b", "d"));
  KEYS(rr, "b", "c");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  Etcdserverpb__RangeRequest *rq = mk_range("c", NULL);
  rq->range_end = B0(); /* from-key */
  rr = get(p, rq);
  KEYS(rr, "c", "d");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq = mk_range(NULL, NULL);
  rq->key = B0();
  rq->range_end = B0(); /* everything */
  rr = get(p, rq);
  KEYS(rr, "a", "ab", "b", "c", "d");
  assert_int_equal(rr->count, 5);
  etcdserverpb__range_response__free_unpacked(rr, NULL);

  /* limit: more and count */
  rq->limit = 2;
  rr = get(p, rq);
  KEYS(rr, "a", "ab");
  assert_true(rr->more);
  assert_int_equal(rr->count, 5);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->limit = 5;
  rr = get(p, rq);
  assert_false(rr->more);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->limit = 0;

  /* keys_only / count_only */
  rq->keys_only = true;
  rr = get(p, rq);
  assert_int_equal(rr->n_kvs, 5);
  for (size_t i = 0; i < rr->n_kvs; i++)
    assert_int_equal(rr->kvs[i]->value.len, 0);
  assert_true(rr->kvs[3]->mod_revision > 0);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->keys_only = false;
  rq->count_only = true;
  rr = get(p, rq);
  assert_int_equal(rr->n_kvs, 0);
  assert_int_equal(rr->count, 5);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->count_only = false;

  /* sorting */
  rq->sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
  rr = get(p, rq);
  KEYS(rr, "d", "c", "b", "ab", "a");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
  rq->sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
  rr = get(p, rq); /* values 1 22 333 44 55555 */
  KEYS(rr, "a", "ab", "b", "c", "d");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION;
  rq->sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
  rq->limit = 1;
  rr = get(p, rq); /* c has version 2 */
  KEYS(rr, "c");
  assert_true(rr->more);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->limit = 0;
  rq->sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD;
  rr = get(p, rq); /* mod: c last, then d, b, ab, a */
  KEYS(rr, "c", "d", "b", "ab", "a");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
  rq->sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
  rr = get(p, rq);
  KEYS(rr, "a", "ab", "b", "c", "d");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE;
  rq->sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY;

  /* min/max revision filters: count stays the range's */
  rr = get(p, mk_range("c", NULL));
  int64_t c_mod = rr->kvs[0]->mod_revision,
          c_create = rr->kvs[0]->create_revision;
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->min_mod_revision = c_mod;
  rr = get(p, rq);
  KEYS(rr, "c");
  assert_int_equal(rr->count, 5);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->min_mod_revision = 0;
  rq->max_mod_revision = c_create;
  rr = get(p, rq);
  KEYS(rr, "a", "ab", "b");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rq->max_mod_revision = 0;
  rq->min_create_revision = c_create;
  rq->max_create_revision = c_create;
  rr = get(p, rq);
  KEYS(rr, "c");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
}

static void test_range_revisions(void **state) {
  struct pl *p = *state;
  fill_abcd(p);
  Etcdserverpb__RangeResponse *rr = get(p, mk_range("c", NULL));
  int64_t c_create = rr->kvs[0]->create_revision;
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  int64_t now = cur_rev(p);
  /* a past revision: the old value, header = now */
  Etcdserverpb__RangeRequest *rq = mk_range("c", NULL);
  rq->revision = c_create;
  rr = get(p, rq);
  bytes_eq(rr->kvs[0]->value, "4");
  assert_int_equal(rr->kvs[0]->version, 1);
  hdr_full(rr->header, now);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  /* future */
  rq->revision = now + 1;
  assert_int_equal(pl_range(p, rq, NULL), KEEL_EFUTUREREV);
  status_is(p, KEEL_GRPC_OUT_OF_RANGE,
            "etcdserver: mvcc: required revision is a future revision");
  /* compacted */
  Etcdserverpb__CompactionResponse *cr;
  assert_int_equal(pl_compact(p, now, &cr), 0);
  hdr_full(cr->header, now);
  etcdserverpb__compaction_response__free_unpacked(cr, NULL);
  rq->revision = c_create;
  assert_int_equal(pl_range(p, rq, NULL), KEEL_ECOMPACTED);
  status_is(p, KEEL_GRPC_OUT_OF_RANGE,
            "etcdserver: mvcc: required revision has been compacted");
  rq->revision = now;
  rr = get(p, rq);
  bytes_eq(rr->kvs[0]->value, "44");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  /* compaction again at or below: compacted; past the end: future */
  assert_int_equal(pl_compact(p, now, NULL), KEEL_ECOMPACTED);
  assert_int_equal(pl_compact(p, now + 5, NULL), KEEL_EFUTUREREV);
  assert_int_equal(pl_compact(p, 0, NULL), KEEL_ECOMPACTED);
}

/* --- delete ---------------------------------------------------------- */

static void test_delete(void **state) {
  struct pl *p = *state;
  fill_abcd(p);
  int64_t now = cur_rev(p);
  Etcdserverpb__DeleteRangeResponse *dr;
  assert_int_equal(pl_delete(p, mk_del("a", "b", true), &dr), 0);
  hdr_full(dr->header, now + 1);
  assert_int_equal(dr->deleted, 2);
  assert_int_equal(dr->n_prev_kvs, 2);
  bytes_eq(dr->prev_kvs[0]->key, "a");
  bytes_eq(dr->prev_kvs[1]->value, "22");
  etcdserverpb__delete_range_response__free_unpacked(dr, NULL);
  /* no prev_kv asked: none sent */
  assert_int_equal(pl_delete(p, mk_del("b", NULL, false), &dr), 0);
  assert_int_equal(dr->deleted, 1);
  assert_int_equal(dr->n_prev_kvs, 0);
  etcdserverpb__delete_range_response__free_unpacked(dr, NULL);
  /* nothing deleted: no new revision */
  assert_int_equal(pl_delete(p, mk_del("zz", NULL, true), &dr), 0);
  assert_int_equal(dr->deleted, 0);
  hdr_full(dr->header, now + 2);
  etcdserverpb__delete_range_response__free_unpacked(dr, NULL);
  Etcdserverpb__RangeResponse *rr = get(p, mk_range("a", "z"));
  KEYS(rr, "c", "d");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
}

/* --- txn ------------------------------------------------------------- */

enum { VER = 0, CRE = 1, MOD = 2, LEA = 4 };
enum { EQ = 0, GT = 1, LT = 2, NE = 3 };

static bool txn_ok(struct pl *p, Etcdserverpb__TxnRequest *t) {
  Etcdserverpb__TxnResponse *r;
  assert_int_equal(pl_txn(p, t, &r), 0);
  bool s = r->succeeded;
  etcdserverpb__txn_response__free_unpacked(r, NULL);
  return s;
}

static void test_txn_compares(void **state) {
  struct pl *p = *state;
  assert_int_equal(put(p, "x", "10"), 0);
  assert_int_equal(put(p, "x", "11"), 0); /* version 2 */
  assert_int_equal(put(p, "y", "20"), 0);
  Etcdserverpb__RangeResponse *rr = get(p, mk_range("x", NULL));
  int64_t xc = rr->kvs[0]->create_revision, xm = rr->kvs[0]->mod_revision;
  etcdserverpb__range_response__free_unpacked(rr, NULL);

  struct {
    Etcdserverpb__Compare *c;
    bool want;
  } cases[] = {
      {cmp_val("x", EQ, "11"), true},
      {cmp_val("x", EQ, "10"), false},
      {cmp_val("x", NE, "10"), true},
      {cmp_val("x", GT, "10"), true},
      {cmp_val("x", LT, "10"), false},
      {cmp_num("x", VER, EQ, 2), true},
      {cmp_num("x", VER, GT, 1), true},
      {cmp_num("x", VER, LT, 2), false},
      {cmp_num("x", VER, NE, 2), false},
      {cmp_num("x", CRE, EQ, xc), true},
      {cmp_num("x", CRE, LT, xc), false},
      {cmp_num("x", MOD, EQ, xm), true},
      {cmp_num("x", MOD, GT, xm - 1), true},
      {cmp_num("x", LEA, EQ, 0), true},
      {cmp_num("x", LEA, GT, 0), false},
      /* a missing key: version, create, mod, lease 0; a value compare
       * fails */
      {cmp_num("nokey", VER, EQ, 0), true},
      {cmp_num("nokey", CRE, EQ, 0), true},
      {cmp_num("nokey", MOD, LT, 1), true},
      {cmp_val("nokey", EQ, ""), false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    Etcdserverpb__TxnRequest *t =
        mk_txn(CMPS(cases[i].c), OPS(op_get("x", NULL)), NONE_O);
    if (txn_ok(p, t) != cases[i].want)
      fail_msg("compare case %zu", i);
  }
  /* compares over a range: all keys must hold */
  Etcdserverpb__Compare *c = cmp_num("x", VER, GT, 0);
  c->range_end = B("z");
  assert_true(txn_ok(p, mk_txn(CMPS(c), NONE_O, NONE_O)));
  c = cmp_num("x", VER, EQ, 2);
  c->range_end = B("z"); /* y has version 1 */
  assert_false(txn_ok(p, mk_txn(CMPS(c), NONE_O, NONE_O)));
  /* a target union that does not match the target compares against 0 */
  c = cmp_num("x", VER, EQ, 2);
  c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
  assert_false(txn_ok(p, mk_txn(CMPS(c), NONE_O, NONE_O)));
}

static void test_txn_responses(void **state) {
  struct pl *p = *state;
  assert_int_equal(put(p, "k1", "v1"), 0);
  assert_int_equal(put(p, "k2", "v2"), 0);
  int64_t now = cur_rev(p);
  /* success: put + get + del + nested txn (failure branch put) */
  Etcdserverpb__TxnRequest *inner =
      mk_txn(CMPS(cmp_val("k1", EQ, "nope")), OPS(op_put("n1", "a")),
             OPS(op_put("n2", "b"), op_get("k2", NULL)));
  Etcdserverpb__TxnRequest *t =
      mk_txn(CMPS(cmp_val("k1", EQ, "v1")),
             OPS(op_put("k1", "v1-new"), op_get("k2", NULL),
                 op_del("k2", NULL, true), op_txn(inner)),
             OPS(op_put("never", "x")));
  Etcdserverpb__TxnResponse *r;
  assert_int_equal(pl_txn(p, t, &r), 0);
  assert_true(r->succeeded);
  hdr_full(r->header, now + 1);
  assert_int_equal(r->n_responses, 4);
  assert_int_equal(r->responses[0]->response_case,
                   ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT);
  hdr_rev_only(r->responses[0]->response_put->header, now + 1);
  Etcdserverpb__RangeResponse *rg = r->responses[1]->response_range;
  assert_int_equal(r->responses[1]->response_case,
                   ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE);
  assert_int_equal(rg->n_kvs, 1);
  bytes_eq(rg->kvs[0]->value, "v2");
  assert_int_equal(rg->header->cluster_id, 0);
  Etcdserverpb__DeleteRangeResponse *dr =
      r->responses[2]->response_delete_range;
  assert_int_equal(dr->deleted, 1);
  assert_int_equal(dr->n_prev_kvs, 1);
  hdr_rev_only(dr->header, now + 1);
  Etcdserverpb__TxnResponse *in = r->responses[3]->response_txn;
  assert_false(in->succeeded);
  hdr_rev_only(in->header, now + 1);
  assert_int_equal(in->n_responses, 2);
  assert_int_equal(in->responses[1]->response_range->n_kvs, 0); /* deleted */
  etcdserverpb__txn_response__free_unpacked(r, NULL);
  Etcdserverpb__RangeResponse *rr = get(p, mk_range("n2", NULL));
  assert_int_equal(rr->n_kvs, 1);
  assert_int_equal(rr->kvs[0]->mod_revision, now + 1); /* one revision */
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  rr = get(p, mk_range("never", NULL));
  assert_int_equal(rr->n_kvs, 0);
  etcdserverpb__range_response__free_unpacked(rr, NULL);

  /* read-only txn: no new revision */
  assert_true(txn_ok(p, mk_txn(NONE_C, OPS(op_get("k1", NULL)), NONE_O)));
  assert_int_equal(cur_rev(p), now + 1);
  /* an empty txn succeeds */
  assert_true(txn_ok(p, mk_txn(NONE_C, NONE_O, NONE_O)));
  /* ignore_value on a missing key inside a txn: key not found, no write */
  Etcdserverpb__RequestOp *o = op_put("missing", NULL);
  o->request_put->ignore_value = true;
  assert_int_equal(pl_txn(p, mk_txn(NONE_C, OPS(o), NONE_O), NULL),
                   KEEL_EKEYNOTFOUND);
  assert_int_equal(cur_rev(p), now + 1);
}

static void test_txn_validation(void **state) {
  struct pl *p = *state;
  /* duplicate puts */
  assert_int_equal(
      pl_txn(p, mk_txn(NONE_C, OPS(op_put("a", "1"), op_put("a", "2")), NONE_O),
             NULL),
      KEEL_EDUPKEY);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT,
            "etcdserver: duplicate key given in txn request");
  /* put inside a deleted range (either order) */
  assert_int_equal(
      pl_txn(p,
             mk_txn(NONE_C, OPS(op_put("k4", "v"), op_del("k", "l", false)),
                    NONE_O),
             NULL),
      KEEL_EDUPKEY);
  assert_int_equal(
      pl_txn(p,
             mk_txn(NONE_C, OPS(op_del("k4", NULL, false), op_put("k4", "v")),
                    NONE_O),
             NULL),
      KEEL_EDUPKEY);
  /* the failure branch is checked too */
  assert_int_equal(
      pl_txn(p, mk_txn(NONE_C, NONE_O, OPS(op_put("a", "1"), op_put("a", "2"))),
             NULL),
      KEEL_EDUPKEY);
  /* nested: a child's put against the parent's put */
  Etcdserverpb__TxnRequest *in = mk_txn(NONE_C, OPS(op_put("a", "1")), NONE_O);
  assert_int_equal(
      pl_txn(p, mk_txn(NONE_C, OPS(op_txn(in), op_put("a", "2")), NONE_O),
             NULL),
      KEEL_EDUPKEY);
  /* then and else of one nested txn may put the same key */
  in = mk_txn(NONE_C, OPS(op_put("a", "1")), OPS(op_put("a", "2")));
  assert_int_equal(pl_txn(p, mk_txn(NONE_C, OPS(op_txn(in)), NONE_O), NULL), 0);
  /* a child's delete against a later child's put */
  Etcdserverpb__TxnRequest *d1 =
      mk_txn(NONE_C, OPS(op_del("q", NULL, false)), NONE_O);
  Etcdserverpb__TxnRequest *p2 = mk_txn(NONE_C, OPS(op_put("q", "1")), NONE_O);
  assert_int_equal(
      pl_txn(p, mk_txn(NONE_C, OPS(op_txn(d1), op_txn(p2)), NONE_O), NULL),
      KEEL_EDUPKEY);
  /* success and failure are separate paths */
  assert_int_equal(
      pl_txn(p, mk_txn(NONE_C, OPS(op_put("a", "1")), OPS(op_put("a", "2"))),
             NULL),
      0);
  /* etcd's interval rules: a from-key delete ("\0" end) intersects no
   * put, so etcd's API layer accepts this txn */
  Etcdserverpb__RequestOp *fk = op_del("m", NULL, false);
  fk->request_delete_range->range_end = B0();
  Etcdserverpb__TxnRequest *t =
      mk_txn(NONE_C, OPS(fk, op_put("n", "1")), NONE_O);
  assert_int_equal(etcd_check_txn(t, 0), 0);
  /* (the store's apply-time check still refuses it with KEEL_EDUPKEY:
   * reported to the store, not asserted here) */

  /* too many ops: 129 puts, 129 compares */
  Etcdserverpb__RequestOp *many[129];
  char names[129][8];
  for (int i = 0; i < 129; i++) {
    snprintf(names[i], sizeof(names[i]), "m%d", i);
    many[i] = op_put(names[i], "v");
  }
  assert_int_equal(pl_txn(p, mk_txn(NONE_C, many, 129, NONE_O), NULL),
                   KEEL_ETOOMANYOPS);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT,
            "etcdserver: too many operations in txn request");
  assert_int_equal(pl_txn(p, mk_txn(NONE_C, many, 128, NONE_O), NULL), 0);
  Etcdserverpb__Compare *cm[129];
  for (int i = 0; i < 129; i++)
    cm[i] = cmp_num("m1", VER, GT, 0);
  assert_int_equal(pl_txn(p, mk_txn(cm, 129, NONE_O, NONE_O), NULL),
                   KEEL_ETOOMANYOPS);
  /* a nested txn's budget is what its parent left (etcd) */
  in = mk_txn(NONE_C, many, 100, NONE_O);
  Etcdserverpb__RequestOp *outer[29];
  for (int i = 0; i < 28; i++)
    outer[i] = op_get("x", NULL);
  outer[28] = op_txn(in);
  assert_int_equal(pl_txn(p, mk_txn(NONE_C, outer, 29, NONE_O), NULL),
                   KEEL_ETOOMANYOPS);
  in->n_success = 99;
  assert_int_equal(pl_txn(p, mk_txn(NONE_C, outer, 29, NONE_O), NULL), 0);
  /* --max-txn-ops is the node's */
  p->max_txn_ops = 2;
  assert_int_equal(pl_txn(p, mk_txn(NONE_C, many, 3, NONE_O), NULL),
                   KEEL_ETOOMANYOPS);
  p->max_txn_ops = 0;

  /* empty compare key, empty op key, an op with nothing set */
  assert_int_equal(
      pl_txn(p, mk_txn(CMPS(cmp_num("", VER, EQ, 0)), NONE_O, NONE_O), NULL),
      KEEL_EEMPTYKEY);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: key is not provided");
  assert_int_equal(
      pl_txn(p, mk_txn(NONE_C, OPS(op_put("", "1")), NONE_O), NULL),
      KEEL_EEMPTYKEY);
  assert_int_equal(
      pl_txn(p, mk_txn(NONE_C, OPS(op_get("", NULL)), NONE_O), NULL),
      KEEL_EEMPTYKEY);
  assert_int_equal(pl_txn(p, mk_txn(NONE_C, OPS(op_empty()), NONE_O), NULL),
                   KEEL_EKEYNOTFOUND);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: key not found");
  Etcdserverpb__RequestOp *vp = op_put("k", "v");
  vp->request_put->ignore_value = true;
  assert_int_equal(pl_txn(p, mk_txn(NONE_C, NONE_O, OPS(vp)), NULL),
                   KEEL_EVALUEPROVIDED);

  /* nesting: 8 levels pass, 9 are refused on the wire before unpacking */
  Etcdserverpb__TxnRequest *deep =
      mk_txn(NONE_C, OPS(op_put("z", "1")), NONE_O);
  for (int lvl = 2; lvl <= 8; lvl++)
    deep = mk_txn(NONE_C, OPS(op_txn(deep)), NONE_O);
  assert_int_equal(pl_txn(p, deep, NULL), 0);
  deep = mk_txn(NONE_C, OPS(op_txn(deep)), NONE_O);
  assert_int_equal(pl_txn(p, deep, NULL), KEEL_ETOOMANYOPS);
  assert_int_equal(etcd_check_txn(deep, 0), KEEL_ETOOMANYOPS);
}

/* --- checkIntervals against a plain model ----------------------------- */

/* etcd's checkIntervals written the obvious way (linear scans), to check
 * the sorted-interval implementation on random nested txns. */
struct mset {
  ProtobufCBinaryData k[512];
  int n;
};
struct mdels {
  ProtobufCBinaryData b[512], e[512];
  int n;
};
static int gocmp(ProtobufCBinaryData a, ProtobufCBinaryData b) {
  size_t m = a.len < b.len ? a.len : b.len;
  int c = m ? memcmp(a.data, b.data, m) : 0;
  if (c != 0)
    return c;
  return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}
static bool mset_has(const struct mset *s, ProtobufCBinaryData k) {
  for (int i = 0; i < s->n; i++)
    if (gocmp(s->k[i], k) == 0)
      return true;
  return false;
}
static bool mdels_hit(const struct mdels *d, ProtobufCBinaryData k) {
  for (int i = 0; i < d->n; i++) {
    if (d->e[i].len == 0) { /* point */
      if (gocmp(d->b[i], k) == 0)
        return true;
    } else if (gocmp(d->b[i], k) <= 0 && gocmp(k, d->e[i]) < 0) {
      return true;
    }
  }
  return false;
}
static int model_iv(Etcdserverpb__RequestOp **reqs, size_t n, struct mset *puts,
                    struct mdels *dels) {
  for (size_t i = 0; i < n; i++)
    if (reqs[i]->request_case ==
        ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE) {
      dels->b[dels->n] = reqs[i]->request_delete_range->key;
      dels->e[dels->n++] = reqs[i]->request_delete_range->range_end;
    }
  for (size_t i = 0; i < n; i++) {
    if (reqs[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
      continue;
    Etcdserverpb__TxnRequest *t = reqs[i]->request_txn;
    struct mset pt = {0}, pe = {0};
    struct mdels dt = {0}, de = {0};
    if (model_iv(t->success, t->n_success, &pt, &dt) ||
        model_iv(t->failure, t->n_failure, &pe, &de))
      return KEEL_EDUPKEY;
    for (int j = 0; j < pt.n; j++) {
      if (mset_has(puts, pt.k[j]) || mdels_hit(dels, pt.k[j]))
        return KEEL_EDUPKEY;
      puts->k[puts->n++] = pt.k[j];
    }
    for (int j = 0; j < pe.n; j++) {
      if (mset_has(puts, pe.k[j]) && !mset_has(&pt, pe.k[j]))
        return KEEL_EDUPKEY;
      if (mdels_hit(dels, pe.k[j]))
        return KEEL_EDUPKEY;
      if (!mset_has(puts, pe.k[j]))
        puts->k[puts->n++] = pe.k[j];
    }
    for (int j = 0; j < dt.n; j++) {
      dels->b[dels->n] = dt.b[j];
      dels->e[dels->n++] = dt.e[j];
    }
    for (int j = 0; j < de.n; j++) {
      dels->b[dels->n] = de.b[j];
      dels->e[dels->n++] = de.e[j];
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (reqs[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
      continue;
    ProtobufCBinaryData k = reqs[i]->request_put->key;
    if (mset_has(puts, k) || mdels_hit(dels, k))
      return KEEL_EDUPKEY;
    puts->k[puts->n++] = k;
  }
  return 0;
}

static uint64_t iv_rng = 12345;
static uint32_t iv_rand(uint32_t n) {
  iv_rng = iv_rng * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(iv_rng >> 33) % n;
}
static const char *const iv_keys[] = {"a", "ab", "b", "c", "ca", "d"};
static Etcdserverpb__RequestOp *iv_op(int depth) {
  uint32_t kind = iv_rand(depth < 3 ? 4 : 3);
  const char *k = iv_keys[iv_rand(6)];
  if (kind == 0 || kind == 1)
    return op_put(k, "v");
  if (kind == 2) {
    static const char *const ends[] = {NULL, "b", "c", "ca", "e", "a"};
    Etcdserverpb__RequestOp *o = op_del(k, ends[iv_rand(6)], false);
    if (iv_rand(6) == 0)
      o->request_delete_range->range_end = B0(); /* literal "\0" */
    return o;
  }
  Etcdserverpb__RequestOp *s[3], *f[3];
  size_t ns = iv_rand(4), nf = iv_rand(3);
  for (size_t i = 0; i < ns; i++)
    s[i] = iv_op(depth + 1);
  for (size_t i = 0; i < nf; i++)
    f[i] = iv_op(depth + 1);
  return op_txn(mk_txn(NULL, 0, s, ns, f, nf));
}

static void test_intervals_model(void **state) {
  (void)state;
  int dup = 0, ok = 0;
  for (int round = 0; round < 20000; round++) {
    Etcdserverpb__RequestOp *s[4], *f[4];
    size_t ns = iv_rand(5), nf = iv_rand(3);
    for (size_t i = 0; i < ns; i++)
      s[i] = iv_op(1);
    for (size_t i = 0; i < nf; i++)
      f[i] = iv_op(1);
    Etcdserverpb__TxnRequest *t = mk_txn(NULL, 0, s, ns, f, nf);
    struct mset p1 = {0}, p2 = {0};
    struct mdels d1 = {0}, d2 = {0};
    int want = model_iv(t->success, t->n_success, &p1, &d1);
    if (want == 0)
      want = model_iv(t->failure, t->n_failure, &p2, &d2);
    int got = etcd_check_txn(t, 0);
    if (got != want)
      fail_msg("round %d: got %d want %d", round, got, want);
    if (want)
      dup++;
    else
      ok++;
    tb_free_all();
  }
  /* both outcomes were exercised */
  assert_true(dup > 1000 && ok > 1000);
}

/* --- validation of the other requests --------------------------------- */

static void test_validation_messages(void **state) {
  struct pl *p = *state;
  assert_int_equal(pl_put(p, mk_put("", "v"), NULL), KEEL_EEMPTYKEY);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: key is not provided");
  assert_int_equal(pl_range(p, mk_range("", NULL), NULL), KEEL_EEMPTYKEY);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: key is not provided");
  assert_int_equal(pl_delete(p, mk_del("", NULL, false), NULL), KEEL_EEMPTYKEY);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: key is not provided");
  Etcdserverpb__PutRequest *rq = mk_put("k", "v");
  rq->ignore_value = true;
  assert_int_equal(pl_put(p, rq, NULL), KEEL_EVALUEPROVIDED);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: value is provided");
  rq = mk_put("k", NULL);
  rq->ignore_lease = true;
  rq->lease = 5;
  assert_int_equal(pl_put(p, rq, NULL), KEEL_ELEASEPROVIDED);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: lease is provided");
  /* the order is etcd's: empty key first */
  rq = mk_put("", "v");
  rq->ignore_value = true;
  assert_int_equal(pl_put(p, rq, NULL), KEEL_EEMPTYKEY);
  /* keel's key limit, then the request size limit (etcd's message) */
  char big[STORE_KEY_MAX + 2];
  memset(big, 'k', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  assert_int_equal(put(p, big, "v"), KEEL_ETOOLARGE);
  status_is(p, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: request is too large");
  big[STORE_KEY_MAX] = 0;
  assert_int_equal(put(p, big, "v"), 0);
  char *val = malloc(1536 * 1024 + 1);
  memset(val, 'v', 1536 * 1024);
  val[1536 * 1024] = 0;
  assert_int_equal(put(p, "bigval", val), KEEL_ETOOLARGE); /* over 1.5 MiB */
  val[1536 * 1024 - 100] = 0;
  assert_int_equal(put(p, "bigval", val), 0); /* the entry fits */
  free(val);
  /* unknown sort target while sorting */
  Etcdserverpb__RangeRequest *r = mk_range("a", NULL);
  r->sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
  r->sort_target = (Etcdserverpb__RangeRequest__SortTarget)9;
  assert_int_equal(pl_range(p, r, NULL), -EINVAL);
  assert_int_equal(p->status.grpc, KEEL_GRPC_INVALID_ARGUMENT);
}

static void test_error_table(void **state) {
  (void)state;
  static const struct {
    int code, grpc;
    const char *msg;
  } want[] = {
      {KEEL_ECOMPACTED, KEEL_GRPC_OUT_OF_RANGE,
       "etcdserver: mvcc: required revision has been compacted"},
      {KEEL_EFUTUREREV, KEEL_GRPC_OUT_OF_RANGE,
       "etcdserver: mvcc: required revision is a future revision"},
      {KEEL_ENOSPACE, KEEL_GRPC_RESOURCE_EXHAUSTED,
       "etcdserver: mvcc: database space exceeded"},
      {KEEL_ELEASENOTFOUND, KEEL_GRPC_NOT_FOUND,
       "etcdserver: requested lease not found"},
      {KEEL_ELEASEEXISTS, KEEL_GRPC_FAILED_PRECONDITION,
       "etcdserver: lease already exists"},
      {KEEL_ELEASETTLTOOLARGE, KEEL_GRPC_OUT_OF_RANGE,
       "etcdserver: too large lease TTL"},
      {KEEL_EDUPKEY, KEEL_GRPC_INVALID_ARGUMENT,
       "etcdserver: duplicate key given in txn request"},
      {KEEL_ETOOMANYOPS, KEEL_GRPC_INVALID_ARGUMENT,
       "etcdserver: too many operations in txn request"},
      {KEEL_ENOLEADER, KEEL_GRPC_UNAVAILABLE, "etcdserver: no leader"},
      {KEEL_ELEARNER, KEEL_GRPC_UNAVAILABLE,
       "etcdserver: rpc not supported for learner"},
      {KEEL_ENOTLEADER, KEEL_GRPC_FAILED_PRECONDITION,
       "etcdserver: not leader"},
      {KEEL_ETIMEOUT, KEEL_GRPC_UNAVAILABLE, "etcdserver: request timed out"},
      {KEEL_ESTOPPED, KEEL_GRPC_UNAVAILABLE, "etcdserver: server stopped"},
      {KEEL_ETOOLARGE, KEEL_GRPC_INVALID_ARGUMENT,
       "etcdserver: request is too large"},
      {KEEL_EBUSY, KEEL_GRPC_RESOURCE_EXHAUSTED,
       "etcdserver: too many requests"},
      {KEEL_ECORRUPT, KEEL_GRPC_DATA_LOSS, "etcdserver: corrupt cluster"},
      {KEEL_EPERM, KEEL_GRPC_PERMISSION_DENIED,
       "etcdserver: permission denied"},
      {KEEL_EEMPTYKEY, KEEL_GRPC_INVALID_ARGUMENT,
       "etcdserver: key is not provided"},
      {KEEL_EKEYNOTFOUND, KEEL_GRPC_INVALID_ARGUMENT,
       "etcdserver: key not found"},
      {KEEL_EVALUEPROVIDED, KEEL_GRPC_INVALID_ARGUMENT,
       "etcdserver: value is provided"},
      {KEEL_ELEASEPROVIDED, KEEL_GRPC_INVALID_ARGUMENT,
       "etcdserver: lease is provided"},
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    struct etcd_status s = etcd_error(want[i].code);
    assert_int_equal(s.code, want[i].code);
    assert_int_equal(s.grpc, want[i].grpc);
    assert_string_equal(s.message, want[i].msg);
  }
  assert_int_equal(etcd_error(0).grpc, KEEL_GRPC_OK);
  /* a code etcd has no counterpart for: UNKNOWN with keel's text */
  struct etcd_status s = etcd_error(-EIO);
  assert_int_equal(s.grpc, KEEL_GRPC_UNKNOWN);
  assert_string_equal(s.message, keel_strerror(-EIO));
  /* every keel code maps to something non-empty */
#define CHECK_CODE(name, value, msg)                                           \
  assert_true(strlen(etcd_error(value).message) > 0);
  KEEL_ERROR_MAP(CHECK_CODE)
#undef CHECK_CODE
}

/* --- compaction, leases, alarms --------------------------------------- */

static void test_leases(void **state) {
  struct pl *p = *state;
  Etcdserverpb__LeaseGrantResponse *gr;
  /* id chosen by the node, TTL raised to the minimum (2 here) */
  assert_int_equal(pl_lease_grant(p, 1, 0, &gr), 0);
  int64_t id = gr->id;
  assert_true(id > 0);
  assert_int_equal(gr->ttl, 2);
  hdr_full(gr->header, cur_rev(p));
  etcdserverpb__lease_grant_response__free_unpacked(gr, NULL);
  assert_int_equal(pl_lease_grant(p, 10, id, NULL), KEEL_ELEASEEXISTS);
  status_is(p, KEEL_GRPC_FAILED_PRECONDITION,
            "etcdserver: lease already exists");
  assert_int_equal(pl_lease_grant(p, ETCD_MAX_LEASE_TTL + 1, 77, NULL),
                   KEEL_ELEASETTLTOOLARGE);
  status_is(p, KEEL_GRPC_OUT_OF_RANGE, "etcdserver: too large lease TTL");
  assert_int_equal(pl_lease_grant(p, ETCD_MAX_LEASE_TTL, 77, NULL), 0);

  Etcdserverpb__PutRequest *rq = mk_put("l1", "v");
  rq->lease = id;
  assert_int_equal(pl_put(p, rq, NULL), 0);
  rq = mk_put("l2", "v");
  rq->lease = id;
  assert_int_equal(pl_put(p, rq, NULL), 0);
  assert_int_equal(put(p, "free", "v"), 0);

  /* TimeToLive and Leases from the store */
  struct store_lease_info info;
  struct store_lease_keys keys;
  assert_int_equal(store_lease_get(p->st, id, &info, &keys), 0);
  struct etcd_reply rep;
  assert_int_equal(
      etcd_encode_lease_ttl(id, &info, 1, &keys, cur_rev(p), &p->ids, &rep), 0);
  Etcdserverpb__LeaseTimeToLiveResponse *tr =
      etcdserverpb__lease_time_to_live_response__unpack(NULL, rep.len, rep.buf);
  assert_non_null(tr);
  assert_int_equal(tr->id, id);
  assert_int_equal(tr->ttl, 1);
  assert_int_equal(tr->grantedttl, 2);
  assert_int_equal(tr->n_keys, 2);
  bytes_eq(tr->keys[0], "l1");
  hdr_full(tr->header, cur_rev(p));
  etcdserverpb__lease_time_to_live_response__free_unpacked(tr, NULL);
  etcd_reply_free(&rep);
  store_lease_keys_free(&keys);
  assert_int_equal(
      etcd_encode_lease_ttl(999, NULL, 0, NULL, cur_rev(p), &p->ids, &rep), 0);
  tr =
      etcdserverpb__lease_time_to_live_response__unpack(NULL, rep.len, rep.buf);
  assert_int_equal(tr->ttl, -1);
  etcdserverpb__lease_time_to_live_response__free_unpacked(tr, NULL);
  etcd_reply_free(&rep);
  assert_int_equal(
      etcd_encode_lease_keepalive(id, 2, cur_rev(p), &p->ids, &rep), 0);
  Etcdserverpb__LeaseKeepAliveResponse *kr =
      etcdserverpb__lease_keep_alive_response__unpack(NULL, rep.len, rep.buf);
  assert_int_equal(kr->id, id);
  assert_int_equal(kr->ttl, 2);
  hdr_full(kr->header, cur_rev(p));
  etcdserverpb__lease_keep_alive_response__free_unpacked(kr, NULL);
  etcd_reply_free(&rep);
  struct store_lease_info *all;
  size_t n;
  assert_int_equal(store_lease_list(p->st, &all, &n), 0);
  assert_int_equal(etcd_encode_leases(all, n, cur_rev(p), &p->ids, &rep), 0);
  Etcdserverpb__LeaseLeasesResponse *lr =
      etcdserverpb__lease_leases_response__unpack(NULL, rep.len, rep.buf);
  assert_int_equal(lr->n_leases, 2);
  assert_int_equal(lr->leases[0]->id, 77 < id ? 77 : id);
  etcdserverpb__lease_leases_response__free_unpacked(lr, NULL);
  etcd_reply_free(&rep);
  free(all);

  /* revoke deletes the attached keys in one revision */
  int64_t before = cur_rev(p);
  Etcdserverpb__LeaseRevokeResponse *vr;
  assert_int_equal(pl_lease_revoke(p, id, &vr), 0);
  hdr_full(vr->header, before + 1);
  etcdserverpb__lease_revoke_response__free_unpacked(vr, NULL);
  Etcdserverpb__RangeResponse *rr = get(p, mk_range("a", "z"));
  KEYS(rr, "free");
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  assert_int_equal(pl_lease_revoke(p, id, NULL), KEEL_ELEASENOTFOUND);
  status_is(p, KEEL_GRPC_NOT_FOUND, "etcdserver: requested lease not found");
}

static void test_nospace(void **state) {
  struct pl *p = *state;
  assert_int_equal(put(p, "a", "1"), 0);
  Etcdserverpb__AlarmResponse *ar;
  assert_int_equal(pl_alarm(p, 1, 1, &ar), 0); /* ACTIVATE NOSPACE */
  assert_null(ar->header);                     /* etcd sends none */
  assert_int_equal(ar->n_alarms, 1);
  assert_int_equal(ar->alarms[0]->memberid, 0x2222);
  assert_int_equal(ar->alarms[0]->alarm, ETCDSERVERPB__ALARM_TYPE__NOSPACE);
  etcdserverpb__alarm_response__free_unpacked(ar, NULL);
  assert_int_equal(put(p, "b", "2"), KEEL_ENOSPACE);
  status_is(p, KEEL_GRPC_RESOURCE_EXHAUSTED,
            "etcdserver: mvcc: database space exceeded");
  assert_int_equal(
      pl_txn(p, mk_txn(NONE_C, OPS(op_put("c", "3")), NONE_O), NULL),
      KEEL_ENOSPACE);
  assert_int_equal(pl_lease_grant(p, 10, 5, NULL), KEEL_ENOSPACE);
  /* reads and deletes still work */
  assert_int_equal(pl_delete(p, mk_del("a", NULL, false), NULL), 0);
  assert_int_equal(pl_alarm(p, 0, 0, &ar), 0); /* GET */
  assert_int_equal(ar->n_alarms, 1);
  etcdserverpb__alarm_response__free_unpacked(ar, NULL);
  assert_int_equal(pl_alarm(p, 2, 1, NULL), 0); /* DEACTIVATE */
  assert_int_equal(put(p, "b", "2"), 0);
}

/* --- events ----------------------------------------------------------- */

static void test_events(void **state) {
  struct pl *p = *state;
  assert_int_equal(put(p, "e", "1"), 0);
  /* apply a put and a delete directly to see the batch's events */
  Etcdserverpb__PutRequest *pu = mk_put("e", "2");
  Keelstore__Request k1 = KEELSTORE__REQUEST__INIT;
  k1.op_case = KEELSTORE__REQUEST__OP_PUT;
  k1.put = pu;
  Keelstore__Request k2 = KEELSTORE__REQUEST__INIT;
  k2.op_case = KEELSTORE__REQUEST__OP_DELETE_RANGE;
  k2.delete_range = mk_del("e", NULL, false);
  uint8_t *b1, *b2;
  size_t l1, l2;
  assert_int_equal(apply_request_encode(&k1, 0, &b1, &l1), 0);
  assert_int_equal(apply_request_encode(&k2, 0, &b2, &l2), 0);
  struct store_entry es[2] = {{++p->index, 1, STORE_ENTRY_NORMAL, b1, l1},
                              {++p->index, 1, STORE_ENTRY_NORMAL, b2, l2}};
  struct apply_result r;
  assert_int_equal(apply_entries(p->st, es, 2, NULL, &r), 0);
  assert_int_equal(r.store.n_events, 2);
  for (size_t i = 0; i < 2; i++) {
    Mvccpb__Event ev;
    Mvccpb__KeyValue kv, prev;
    etcd_event_fill(&ev, &kv, &prev, &r.store.events[i], true);
    size_t n = mvccpb__event__get_packed_size(&ev);
    uint8_t *buf = malloc(n);
    mvccpb__event__pack(&ev, buf);
    Mvccpb__Event *d = mvccpb__event__unpack(NULL, n, buf);
    assert_non_null(d);
    bytes_eq(d->kv->key, "e");
    if (i == 0) {
      assert_int_equal(d->type, MVCCPB__EVENT__EVENT_TYPE__PUT);
      bytes_eq(d->kv->value, "2");
      assert_int_equal(d->kv->version, 2);
      assert_non_null(d->prev_kv);
      bytes_eq(d->prev_kv->value, "1");
    } else {
      assert_int_equal(d->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
      assert_int_equal(d->kv->value.len, 0);
      assert_int_equal(d->kv->mod_revision, r.store.revision);
    }
    mvccpb__event__free_unpacked(d, NULL);
    free(buf);
    /* without prev_kv asked, none sent */
    etcd_event_fill(&ev, &kv, &prev, &r.store.events[i], false);
    assert_null(ev.prev_kv);
  }
  /* the same events as one WatchResponse */
  struct etcd_watch_info wi = {.watch_id = 7, .revision = r.store.revision};
  struct etcd_reply rep;
  assert_int_equal(etcd_encode_watch(&wi, r.store.events, r.store.n_events,
                                     false, &p->ids, &rep),
                   0);
  Etcdserverpb__WatchResponse *wr =
      etcdserverpb__watch_response__unpack(NULL, rep.len, rep.buf);
  assert_non_null(wr);
  assert_int_equal(wr->watch_id, 7);
  assert_int_equal(wr->n_events, 2);
  assert_null(wr->events[0]->prev_kv);
  assert_int_equal(wr->events[1]->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
  hdr_full(wr->header, r.store.revision);
  assert_false(wr->created);
  etcdserverpb__watch_response__free_unpacked(wr, NULL);
  etcd_reply_free(&rep);
  wi = (struct etcd_watch_info){.watch_id = 7,
                                .revision = r.store.revision,
                                .canceled = true,
                                .compact_revision = 3,
                                .cancel_reason = "etcdserver: mvcc: required "
                                                 "revision has been compacted"};
  assert_int_equal(etcd_encode_watch(&wi, NULL, 0, false, &p->ids, &rep), 0);
  wr = etcdserverpb__watch_response__unpack(NULL, rep.len, rep.buf);
  assert_true(wr->canceled);
  assert_int_equal(wr->compact_revision, 3);
  assert_string_equal(wr->cancel_reason,
                      "etcdserver: mvcc: required revision has been compacted");
  etcdserverpb__watch_response__free_unpacked(wr, NULL);
  etcd_reply_free(&rep);
  apply_result_free(&r);
  free(b1);
  free(b2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_ignore_and_lease, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_range_shapes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_range_revisions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_txn_compares, setup, teardown),
      cmocka_unit_test_setup_teardown(test_txn_responses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_txn_validation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_validation_messages, setup,
                                      teardown),
      cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_intervals_model),
      cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nospace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

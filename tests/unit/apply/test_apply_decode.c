/* test_apply_decode.c — log entries that are not well-formed requests: each
 * applies as a no-op with a clear error, the same on every node; and a
 * robustness batch of thousands of random and mutated entries fed to two
 * stores, which must end byte-for-byte equal (same HashKV, revisions,
 * responses) with the decoder never crashing. */
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

static uint8_t *enc(Keelstore__Request *kr, size_t *len) {
  uint8_t *b;
  assert_int_equal(apply_request_encode(kr, 0, &b, len), 0);
  return b;
}

static int64_t cur_rev(struct pl *p) {
  int64_t cur, comp;
  assert_int_equal(store_revisions(p->st, &cur, &comp), 0);
  return cur;
}

/* An entry that fails to decode: error in its response, index moves,
 * nothing else changes. */
static void noop_with(struct pl *p, const uint8_t *b, size_t n, int want) {
  int64_t rev = cur_rev(p);
  int type = -1;
  assert_int_equal(pl_apply_raw(p, b, n, &type), want);
  assert_int_equal(type, STORE_REQ_NOOP);
  assert_int_equal(cur_rev(p), rev);
  uint64_t idx, term;
  assert_int_equal(store_applied(p->st, &idx, &term), 0);
  assert_int_equal(idx, p->index);
}

/* Writes tag+length headers backwards: a txn nested `levels` deep. */
static uint8_t *deep_txn(int levels, size_t *len) {
  size_t cap = (size_t)levels * 24 + 64;
  uint8_t *buf = malloc(cap);
  size_t pos = cap, inner = 0;
  for (int i = 0; i < levels; i++) {
    for (int field = 4; field >= 2; field -= 2) { /* op.request_txn, then */
      uint8_t v[10];                              /* txn.success */
      size_t n = 0;
      uint64_t x = inner;
      do {
        v[n++] = (uint8_t)((x & 0x7f) | (x > 0x7f ? 0x80 : 0));
        x >>= 7;
      } while (x);
      pos -= n;
      memcpy(buf + pos, v, n);
      buf[--pos] = (uint8_t)(field << 3 | 2);
      inner += n + 1;
    }
  }
  *len = cap - pos;
  memmove(buf, buf + pos, *len);
  return buf;
}

static void test_bad_entries(void **state) {
  struct pl *p = *state;
  assert_int_equal(pl_put(p, mk_put("k", "v"), NULL), 0);

  /* no op set: refused at encode, a no-op at decode */
  Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
  uint8_t *b;
  size_t n;
  assert_int_equal(apply_request_encode(&kr, 0, &b, &n), -EINVAL);
  kr.id = 7;
  n = keelstore__request__get_packed_size(&kr);
  b = malloc(n + 1);
  keelstore__request__pack(&kr, b);
  noop_with(p, b, n, KEEL_EBADMSG);
  free(b);

  /* garbage */
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
  noop_with(p, junk, sizeof(junk), KEEL_EBADMSG);
  static const uint8_t trunc[] = {0x52, 0x10, 0x0a}; /* put: len past end */
  noop_with(p, trunc, sizeof(trunc), KEEL_EBADMSG);
  static const uint8_t group[] = {0x0b, 0x0c}; /* a group: not proto3 */
  noop_with(p, group, sizeof(group), KEEL_EBADMSG);
  /* fuzz finding F1 (proto/keel_pb.h): field 0 in an over-long tag inside
   * the put; protobuf-c would accept it and re-encode it undecodably */
  static const uint8_t f1[] = {0x52, 0x06, 0x0a, 0x01, 'k', 0x80, 0x00, 0x01};
  noop_with(p, f1, sizeof(f1), KEEL_EBADMSG);
  /* a 6-byte tag inside a txn */
  static const uint8_t longtag[] = {0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00};
  assert_int_equal(etcd_wire_check_txn(longtag, sizeof(longtag)), KEEL_EBADMSG);

  /* over APPLY_ENTRY_MAX: refused before reading a byte */
  struct apply_request ar;
  assert_int_equal(apply_request_decode(junk, (size_t)APPLY_ENTRY_MAX + 1, &ar),
                   0);
  assert_int_equal(ar.error, KEEL_ETOOLARGE);
  apply_request_free(&ar);
  /* the node's --max-request-bytes at encode */
  kr.op_case = KEELSTORE__REQUEST__OP_PUT;
  kr.put = mk_put("k", "0123456789");
  assert_int_equal(apply_request_encode(&kr, 10, &b, &n), KEEL_ETOOLARGE);

  /* auth changes are not implemented yet: a no-op saying so */
  Keelstore__AuthChange au = KEELSTORE__AUTH_CHANGE__INIT;
  kr.op_case = KEELSTORE__REQUEST__OP_AUTH;
  kr.auth = &au;
  b = enc(&kr, &n);
  noop_with(p, b, n, -ENOTSUP);
  free(b);

  /* bad enums */
  Etcdserverpb__AlarmRequest al = ETCDSERVERPB__ALARM_REQUEST__INIT;
  al.action = (Etcdserverpb__AlarmRequest__AlarmAction)7;
  kr.op_case = KEELSTORE__REQUEST__OP_ALARM;
  kr.alarm = &al;
  b = enc(&kr, &n);
  noop_with(p, b, n, KEEL_EBADMSG);
  free(b);
  Etcdserverpb__Compare *c = cmp_val("k", 9, "v");
  kr.op_case = KEELSTORE__REQUEST__OP_TXN;
  kr.txn = mk_txn(CMPS(c), NONE_O, NONE_O);
  b = enc(&kr, &n);
  noop_with(p, b, n, KEEL_EBADMSG);
  free(b);
  /* an op with nothing set inside a txn (never validated) */
  kr.txn = mk_txn(NONE_C, OPS(op_empty()), NONE_O);
  b = enc(&kr, &n);
  noop_with(p, b, n, KEEL_EBADMSG);
  free(b);

  /* nesting far past the limit: refused on the wire, no deep recursion */
  size_t dn;
  uint8_t *deep = deep_txn(200000, &dn);
  assert_int_equal(etcd_wire_check_txn(deep, dn), KEEL_ETOOMANYOPS);
  uint8_t *ent = malloc(dn + 8);
  size_t en = 0;
  ent[en++] = 12 << 3 | 2; /* Request.txn */
  uint64_t x = dn;
  do {
    ent[en++] = (uint8_t)((x & 0x7f) | (x > 0x7f ? 0x80 : 0));
    x >>= 7;
  } while (x);
  memcpy(ent + en, deep, dn);
  noop_with(p, ent, en + dn, KEEL_ETOOMANYOPS);
  free(ent);
  free(deep);
  /* exactly at the limit it decodes */
  deep = deep_txn(ETCD_TXN_MAX_DEPTH - 1, &dn);
  assert_int_equal(etcd_wire_check_txn(deep, dn), 0);
  free(deep);
  deep = deep_txn(ETCD_TXN_MAX_DEPTH, &dn);
  assert_int_equal(etcd_wire_check_txn(deep, dn), KEEL_ETOOMANYOPS);
  free(deep);

  /* an in-memory message nested too deep: translation stops at the limit */
  Etcdserverpb__TxnRequest *t = mk_txn(NONE_C, OPS(op_put("z", "1")), NONE_O);
  for (int lvl = 0; lvl < 20; lvl++)
    t = mk_txn(NONE_C, OPS(op_txn(t)), NONE_O);
  struct store_txn_req st;
  void *mem;
  assert_int_equal(etcd_txn_to_store(t, &st, &mem), KEEL_ETOOMANYOPS);
  assert_null(mem);

  /* too many elements: refused before protobuf-c allocates them */
  size_t cn = (size_t)(ETCD_TXN_MAX_ELEMS + 1) * 2;
  uint8_t *many = malloc(cn);
  for (size_t i = 0; i < cn; i += 2) {
    many[i] = 1 << 3 | 2; /* compare, empty */
    many[i + 1] = 0;
  }
  assert_int_equal(etcd_wire_check_txn(many, cn), KEEL_ETOOMANYOPS);
  assert_int_equal(etcd_wire_check_txn(many, cn - 2), 0);
  free(many);

  /* the store's own request errors still come through */
  Etcdserverpb__LeaseGrantRequest lg = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  lg.id = 5;
  lg.ttl = ETCD_MAX_LEASE_TTL + 1; /* a proposer that skipped validation */
  kr.op_case = KEELSTORE__REQUEST__OP_LEASE_GRANT;
  kr.lease_grant = &lg;
  b = enc(&kr, &n);
  assert_int_equal(pl_apply_raw(p, b, n, NULL), KEEL_ELEASETTLTOOLARGE);
  free(b);

  /* an entry applied twice (replay below the applied index) */
  kr.op_case = KEELSTORE__REQUEST__OP_PUT;
  kr.put = mk_put("k", "again");
  b = enc(&kr, &n);
  assert_int_equal(pl_apply_raw(p, b, n, NULL), 0);
  struct store_entry e = {p->index, 1, STORE_ENTRY_NORMAL, b, n};
  struct apply_result r;
  assert_int_equal(apply_entries(p->st, &e, 1, NULL, &r), 0);
  assert_int_equal(r.store.responses[0].error, KEEL_EEXIST);
  apply_result_free(&r);
  /* a conf change entry is a no-op for the key-value state */
  int64_t rev = cur_rev(p);
  e = (struct store_entry){++p->index, 1, STORE_ENTRY_CONF_CHANGE, junk,
                           sizeof(junk)};
  assert_int_equal(apply_entries(p->st, &e, 1, NULL, &r), 0);
  assert_int_equal(r.store.responses[0].error, 0);
  apply_result_free(&r);
  assert_int_equal(cur_rev(p), rev);
  free(b);
  assert_int_equal(store_verify(p->st), 0);
}

static void test_lease_expire_checkpoint(void **state) {
  struct pl *p = *state;
  assert_int_equal(pl_lease_grant(p, 30, 42, NULL), 0);
  Etcdserverpb__PutRequest *rq = mk_put("lk", "v");
  rq->lease = 42;
  assert_int_equal(pl_put(p, rq, NULL), 0);
  Keelstore__LeaseCheckpoint cp = KEELSTORE__LEASE_CHECKPOINT__INIT;
  cp.lease_id = 42;
  cp.remaining_ttl = 17;
  Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
  kr.op_case = KEELSTORE__REQUEST__OP_LEASE_CHECKPOINT;
  kr.lease_checkpoint = &cp;
  size_t n;
  uint8_t *b = enc(&kr, &n);
  assert_int_equal(pl_apply_raw(p, b, n, NULL), 0);
  free(b);
  struct store_lease_info info;
  assert_int_equal(store_lease_get(p->st, 42, &info, NULL), 0);
  assert_int_equal(info.remaining_ttl, 17);
  assert_int_equal(info.granted_ttl, 30);
  Keelstore__LeaseExpire ex = KEELSTORE__LEASE_EXPIRE__INIT;
  ex.lease_id = 42;
  kr.op_case = KEELSTORE__REQUEST__OP_LEASE_EXPIRE;
  kr.lease_expire = &ex;
  b = enc(&kr, &n);
  int type;
  assert_int_equal(pl_apply_raw(p, b, n, &type), 0);
  assert_int_equal(type, STORE_REQ_LEASE_EXPIRE);
  assert_int_equal(pl_apply_raw(p, b, n, NULL), KEEL_ELEASENOTFOUND);
  free(b);
  assert_int_equal(store_lease_get(p->st, 42, &info, NULL),
                   KEEL_ELEASENOTFOUND);
  Etcdserverpb__RangeResponse *rr;
  assert_int_equal(pl_range(p, mk_range("lk", NULL), &rr), 0);
  assert_int_equal(rr->n_kvs, 0);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
}

/* --- robustness batch ------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void) { /* splitmix64: the batch is reproducible */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static char keys[8][4] = {"a", "b", "c", "d", "ab", "ba", "k", "z"};
static const char *rkey(void) {
  return keys[rnd() % 8];
}

static Etcdserverpb__RequestOp *rand_op(int depth);

static Etcdserverpb__TxnRequest *rand_txn(int depth) {
  Etcdserverpb__Compare *c[3];
  Etcdserverpb__RequestOp *s[3], *f[3];
  size_t nc = rnd() % 3, ns = rnd() % 4, nf = rnd() % 3;
  for (size_t i = 0; i < nc; i++)
    c[i] = rnd() % 2 ? cmp_val(rkey(), (int)(rnd() % 4), "v")
                     : cmp_num(rkey(), (int)(rnd() % 3), (int)(rnd() % 4),
                               (int64_t)(rnd() % 20));
  ns = ns > 3 ? 3 : ns;
  for (size_t i = 0; i < ns; i++)
    s[i] = rand_op(depth);
  for (size_t i = 0; i < nf; i++)
    f[i] = rand_op(depth);
  return mk_txn(c, nc, s, ns, f, nf);
}

static Etcdserverpb__RequestOp *rand_op(int depth) {
  switch (rnd() % (depth < 3 ? 4 : 3)) {
  case 0:
    return op_put(rkey(), rnd() % 2 ? "v" : "w");
  case 1:
    return op_get(rkey(), rnd() % 2 ? "z" : NULL);
  case 2:
    return op_del(rkey(), rnd() % 3 ? NULL : "c", rnd() % 2);
  default:
    return op_txn(rand_txn(depth + 1));
  }
}

static uint8_t *rand_entry(size_t *len, int64_t rev_hint) {
  Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
  kr.id = rnd();
  Etcdserverpb__CompactionRequest cr = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  Etcdserverpb__LeaseGrantRequest lg = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  Etcdserverpb__LeaseRevokeRequest lr =
      ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
  switch (rnd() % 8) {
  case 0:
  case 1: {
    kr.op_case = KEELSTORE__REQUEST__OP_PUT;
    kr.put = mk_put(rkey(), rnd() % 2 ? "v" : "w");
    kr.put->lease = rnd() % 4 == 0 ? (int64_t)(rnd() % 3 + 1) : 0;
    kr.put->prev_kv = rnd() % 2;
    break;
  }
  case 2:
    kr.op_case = KEELSTORE__REQUEST__OP_DELETE_RANGE;
    kr.delete_range = mk_del(rkey(), rnd() % 2 ? "c" : NULL, rnd() % 2);
    break;
  case 3:
  case 4:
    kr.op_case = KEELSTORE__REQUEST__OP_TXN;
    kr.txn = rand_txn(1);
    break;
  case 5:
    kr.op_case = KEELSTORE__REQUEST__OP_COMPACTION;
    cr.revision = rev_hint - (int64_t)(rnd() % 10);
    kr.compaction = &cr;
    break;
  case 6:
    kr.op_case = KEELSTORE__REQUEST__OP_LEASE_GRANT;
    lg.id = (int64_t)(rnd() % 3 + 1);
    lg.ttl = 10;
    kr.lease_grant = &lg;
    break;
  default:
    kr.op_case = KEELSTORE__REQUEST__OP_LEASE_REVOKE;
    lr.id = (int64_t)(rnd() % 3 + 1);
    kr.lease_revoke = &lr;
  }
  uint8_t *b;
  assert_int_equal(apply_request_encode(&kr, 0, &b, len), 0);
  return b;
}

/* Damages an encoding in one of several ways; may grow it (realloc). */
static uint8_t *mutate(uint8_t *b, size_t *len) {
  int kind = (int)(rnd() % 6);
  size_t n = *len;
  if (kind == 0 && n > 0) { /* flip bits */
    for (int i = 0; i < 1 + (int)(rnd() % 3); i++)
      b[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
  } else if (kind == 1 && n > 0) { /* truncate */
    *len = rnd() % n;
  } else if (kind == 2) { /* insert a random byte */
    b = realloc(b, n + 1);
    size_t at = n ? rnd() % (n + 1) : 0;
    memmove(b + at + 1, b + at, n - at);
    b[at] = (uint8_t)rnd();
    *len = n + 1;
  } else if (kind == 3 && n > 0) { /* overwrite a byte */
    b[rnd() % n] = (uint8_t)rnd();
  } else if (kind == 4) { /* pure noise */
    size_t m = rnd() % 64;
    b = realloc(b, m + 1);
    for (size_t i = 0; i < m; i++)
      b[i] = (uint8_t)rnd();
    *len = m;
  } /* kind 5: left intact */
  return b;
}

static void test_robustness_two_nodes(void **state) {
  (void)state;
  struct pl a, b;
  pl_open(&a, 0);
  pl_open(&b, 0);
  rng_state = 0x6b65656c; /* fixed: reproducible */
  enum { ENTRIES = 16000, BATCH = 16 };
  size_t decoded_ok = 0, rejected = 0;
  struct store_entry ents[BATCH];
  uint8_t *bufs[BATCH];
  for (int done = 0; done < ENTRIES; done += BATCH) {
    for (int i = 0; i < BATCH; i++) {
      size_t len;
      bufs[i] = rand_entry(&len, cur_rev(&a));
      if (rnd() % 2)
        bufs[i] = mutate(bufs[i], &len);
      ents[i] =
          (struct store_entry){++a.index, 1, STORE_ENTRY_NORMAL, bufs[i], len};
      /* decoding twice gives the same answer */
      struct apply_request r1, r2;
      assert_int_equal(apply_request_decode(bufs[i], len, &r1), 0);
      assert_int_equal(apply_request_decode(bufs[i], len, &r2), 0);
      assert_int_equal(r1.error, r2.error);
      assert_int_equal(r1.req.type, r2.req.type);
      assert_true(r1.error == 0 || r1.req.type == STORE_REQ_NOOP);
      if (r1.error == 0)
        decoded_ok++;
      else
        rejected++;
      apply_request_free(&r1);
      apply_request_free(&r2);
    }
    b.index = a.index;
    struct apply_result ra, rb;
    assert_int_equal(apply_entries(a.st, ents, BATCH, NULL, &ra), 0);
    assert_int_equal(apply_entries(b.st, ents, BATCH, NULL, &rb), 0);
    assert_int_equal(ra.store.revision, rb.store.revision);
    assert_int_equal(ra.store.n_events, rb.store.n_events);
    for (int i = 0; i < BATCH; i++) {
      assert_int_equal(ra.store.responses[i].error,
                       rb.store.responses[i].error);
      assert_int_equal(ra.store.responses[i].revision,
                       rb.store.responses[i].revision);
      struct etcd_reply x, y;
      apply_encode_response(&ra, (size_t)i, &a.ids, &x);
      apply_encode_response(&rb, (size_t)i, &a.ids, &y);
      assert_int_equal(x.status.grpc, y.status.grpc);
      assert_int_equal(x.len, y.len);
      if (x.len)
        assert_memory_equal(x.buf, y.buf, x.len);
      etcd_reply_free(&x);
      etcd_reply_free(&y);
    }
    apply_result_free(&ra);
    apply_result_free(&rb);
    for (int i = 0; i < BATCH; i++)
      free(bufs[i]);
    tb_free_all();
  }
  uint32_t ha, hb;
  int64_t ca, cb, ra_, rb_;
  assert_int_equal(store_hash_kv(a.st, 0, &ha, &ca, &ra_), 0);
  assert_int_equal(store_hash_kv(b.st, 0, &hb, &cb, &rb_), 0);
  assert_int_equal(ha, hb);
  assert_int_equal(ca, cb);
  assert_int_equal(ra_, rb_);
  assert_true(ra_ > 100); /* the batch did write */
  assert_true(decoded_ok > ENTRIES / 3 && rejected > ENTRIES / 10);
  assert_int_equal(store_verify(a.st), 0);
  assert_int_equal(store_verify(b.st), 0);
  print_message("robustness: %zu entries decoded, %zu rejected, rev %lld\n",
                decoded_ok, rejected, (long long)ra_);
  pl_close(&a);
  pl_close(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_bad_entries, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_expire_checkpoint, setup,
                                      teardown),
      cmocka_unit_test(test_robustness_two_nodes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

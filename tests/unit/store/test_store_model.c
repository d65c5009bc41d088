/* test_store_model.c — model-based test of the MVCC store.
 *
 * Long seeded random sequences of put, delete, txn, lease grant/revoke/
 * expire, compaction and range reads at past revisions are applied both to
 * the store (in random batch sizes) and to a deliberately simple in-memory
 * model (a list of every event ever written; every read scans it). Every
 * response, revision, range result and history chunk must match. A second
 * store applies the same log one entry per batch: at the end both must
 * produce the same snapshot digest and HashKV (apply is deterministic and
 * independent of batching).
 *
 * Reproduce one sequence: KEEL_MODEL_SEED=<seed> KEEL_MODEL_SEQS=1.
 * KEEL_MODEL_SEQS sets how many sequences run (default 4000).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "store.h"
#include "test_util.h"

/* --- PRNG ----------------------------------------------------------------- */

static uint64_t rng_s;
static uint64_t rnd(void) {
  uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static int rn(int n) {
  return (int)(rnd() % (uint64_t)n);
}

/* --- the model -------------------------------------------------------------
 */

#define NKEYS 10
static const char *const keys[NKEYS] = {"a",   "a/1", "a/2", "a/3", "b",
                                        "b/x", "c",   "cc",  "d",   "zz"};

struct mev {
  int64_t rev, sub;
  int type; /* 0 put, 1 delete */
  int key;
  char val[24];
  size_t vlen;
  int64_t create, version, lease;
};

#define MAX_EV 20000
struct model {
  struct mev ev[MAX_EV];
  size_t n;
  int64_t rev, compact;
  bool lease[8]; /* ids 1..7 */
  bool nospace;
};
static struct model M;

/* state of key k at rev: NULL if not alive */
static const struct mev *m_at(int k, int64_t rev) {
  for (size_t i = M.n; i-- > 0;) {
    const struct mev *e = &M.ev[i];
    if (e->key == k && e->rev <= rev)
      return e->type == 0 ? e : NULL;
  }
  return NULL;
}

static int bcmp_(const void *a, size_t an, const void *b, size_t bn) {
  size_t n = an < bn ? an : bn;
  int c = n ? memcmp(a, b, n) : 0;
  return c ? c : (an < bn ? -1 : an > bn);
}

/* key range in the model: [lo, hi) with hi NULL = unbounded, single */
struct mrange {
  const char *key;
  const char *end; /* NULL single; "\0" from-key encoded as end_len 1 */
  size_t end_len;
};

static bool m_in(const struct mrange *r, int k) {
  const char *s = keys[k];
  if (r->end == NULL)
    return strcmp(s, r->key) == 0;
  if (strcmp(s, r->key) < 0)
    return false;
  if (r->end_len == 1 && r->end[0] == 0)
    return true;
  return bcmp_(s, strlen(s), r->end, r->end_len) < 0;
}

static void m_push(int type, int k, const char *val, size_t vlen,
                   int64_t create, int64_t version, int64_t lease, int64_t rev,
                   int64_t sub) {
  assert_true(M.n < MAX_EV);
  struct mev *e = &M.ev[M.n++];
  memset(e, 0, sizeof(*e));
  e->rev = rev;
  e->sub = sub;
  e->type = type;
  e->key = k;
  if (vlen)
    memcpy(e->val, val, vlen);
  e->vlen = vlen;
  e->create = create;
  e->version = version;
  e->lease = lease;
}

static int key_index(const uint8_t *k, size_t n) {
  for (int i = 0; i < NKEYS; i++)
    if (strlen(keys[i]) == n && memcmp(keys[i], k, n) == 0)
      return i;
  return -1;
}

/* --- request generation -----------------------------------------------------
 */

/* All request memory lives in this pool, reset per entry batch. */
static char pool[1 << 16];
static size_t pool_n;
static void *palloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  assert_true(pool_n + n <= sizeof(pool));
  void *p = pool + pool_n;
  pool_n += n;
  memset(p, 0, n);
  return p;
}

static void gen_range_keys(const uint8_t **key, size_t *klen,
                           const uint8_t **end, size_t *elen) {
  int kind = rn(4);
  int k = rn(NKEYS);
  *key = (const uint8_t *)keys[k];
  *klen = strlen(keys[k]);
  *end = NULL;
  *elen = 0;
  if (kind == 1) { /* prefix */
    static const char *const pre[] = {"a", "a/", "b", "c", "z"};
    const char *p = pre[rn(5)];
    size_t n = strlen(p);
    char *e = palloc(n + 1);
    memcpy(e, p, n);
    e[n - 1]++;
    *key = (const uint8_t *)p;
    *klen = n;
    *end = (const uint8_t *)e;
    *elen = n;
  } else if (kind == 2) { /* from key */
    *end = (const uint8_t *)"\0";
    *elen = 1;
    if (rn(3) == 0) {
      *key = (const uint8_t *)"\0";
      *klen = 1;
    }
  } else if (kind == 3) { /* [k, k2) */
    int k2 = rn(NKEYS);
    *end = (const uint8_t *)keys[k2];
    *elen = strlen(keys[k2]);
  }
}

static void gen_put(struct store_put_req *p) {
  int k = rn(NKEYS);
  p->key = (const uint8_t *)keys[k];
  p->key_len = strlen(keys[k]);
  char *v = palloc(16);
  int n = snprintf(v, 16, "v%d", rn(1000));
  p->value = (const uint8_t *)v;
  p->value_len = (size_t)n;
  if (rn(4) == 0)
    p->lease = 1 + rn(7);
  p->prev_kv = rn(2);
  if (rn(10) == 0) {
    p->ignore_value = true;
    p->value_len = 0;
  }
  if (rn(10) == 0) {
    p->ignore_lease = true;
    p->lease = 0;
  }
}

static void gen_rangereq(struct store_range_req *r, bool past) {
  gen_range_keys(&r->key, &r->key_len, &r->range_end, &r->range_end_len);
  if (rn(3) == 0)
    r->limit = 1 + rn(4);
  if (past && rn(2) == 0 && M.rev > 1)
    r->revision = 1 + rn((int)M.rev);
  if (rn(3) == 0) {
    r->sort_order = (enum store_sort_order)rn(3);
    r->sort_target = (enum store_sort_target)rn(5);
  }
  r->keys_only = rn(5) == 0;
  r->count_only = rn(8) == 0;
  if (rn(6) == 0)
    r->min_mod_revision = rn((int)M.rev + 1);
  if (rn(6) == 0)
    r->max_mod_revision = rn((int)M.rev + 1);
  if (rn(6) == 0)
    r->min_create_revision = rn((int)M.rev + 1);
  if (rn(6) == 0)
    r->max_create_revision = rn((int)M.rev + 1);
}

static void gen_op(struct store_request_op *op) {
  int t = rn(3);
  if (t == 0) {
    op->type = STORE_OP_PUT;
    gen_put(&op->u.put);
  } else if (t == 1) {
    op->type = STORE_OP_DELETE_RANGE;
    gen_range_keys(&op->u.delete_range.key, &op->u.delete_range.key_len,
                   &op->u.delete_range.range_end,
                   &op->u.delete_range.range_end_len);
    op->u.delete_range.prev_kv = rn(2);
  } else {
    op->type = STORE_OP_RANGE;
    gen_rangereq(&op->u.range, true);
  }
}

static void gen_request(struct store_request *rq) {
  memset(rq, 0, sizeof(*rq));
  int t = rn(100);
  if (t < 35) {
    rq->type = STORE_REQ_PUT;
    gen_put(&rq->u.put);
  } else if (t < 50) {
    rq->type = STORE_REQ_DELETE_RANGE;
    gen_range_keys(&rq->u.delete_range.key, &rq->u.delete_range.key_len,
                   &rq->u.delete_range.range_end,
                   &rq->u.delete_range.range_end_len);
    rq->u.delete_range.prev_kv = rn(2);
  } else if (t < 75) {
    rq->type = STORE_REQ_TXN;
    struct store_txn_req *x = &rq->u.txn;
    x->n_compare = (size_t)rn(3);
    struct store_compare *c = palloc(sizeof(*c) * 3);
    for (size_t i = 0; i < x->n_compare; i++) {
      c[i].result = (enum store_compare_result)rn(4);
      c[i].target = (enum store_compare_target)rn(5);
      if (rn(4) == 0)
        gen_range_keys(&c[i].key, &c[i].key_len, &c[i].range_end,
                       &c[i].range_end_len);
      else {
        int k = rn(NKEYS);
        c[i].key = (const uint8_t *)keys[k];
        c[i].key_len = strlen(keys[k]);
      }
      c[i].number = rn((int)M.rev + 2);
      if (c[i].target == STORE_CMP_VERSION)
        c[i].number = rn(4);
      if (c[i].target == STORE_CMP_LEASE)
        c[i].number = rn(8);
      char *v = palloc(16);
      int n = snprintf(v, 16, "v%d", rn(1000));
      c[i].value = (const uint8_t *)v;
      c[i].value_len = (size_t)n;
    }
    x->compare = c;
    struct store_request_op *s = palloc(sizeof(*s) * 4);
    struct store_request_op *f = palloc(sizeof(*f) * 4);
    x->n_success = (size_t)rn(4);
    x->n_failure = (size_t)rn(3);
    for (size_t i = 0; i < x->n_success; i++)
      gen_op(&s[i]);
    for (size_t i = 0; i < x->n_failure; i++)
      gen_op(&f[i]);
    x->success = s;
    x->failure = f;
  } else if (t < 82) {
    rq->type = STORE_REQ_LEASE_GRANT;
    rq->u.lease_grant.id = 1 + rn(7);
    rq->u.lease_grant.ttl = 1 + rn(100);
  } else if (t < 88) {
    rq->type = rn(2) ? STORE_REQ_LEASE_REVOKE : STORE_REQ_LEASE_EXPIRE;
    rq->u.lease_revoke.id = 1 + rn(7);
  } else if (t < 93) {
    rq->type = STORE_REQ_COMPACTION;
    rq->u.compaction.revision =
        M.compact + rn((int)(M.rev - M.compact) + 2) - (rn(8) == 0 ? 1 : 0);
  } else if (t < 95) {
    rq->type = STORE_REQ_ALARM;
    rq->u.alarm.action = (enum store_alarm_action)rn(3);
    rq->u.alarm.member_id = 7;
    rq->u.alarm.alarm = STORE_ALARM_NOSPACE;
  } else {
    rq->type = STORE_REQ_NOOP;
  }
}

/* --- model application
 * ------------------------------------------------------------ */

/* expected results, compared field by field */
static const char *fail_ctx = "";
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "model mismatch (%s): %s at %s:%d\n", fail_ctx, #cond,   \
              __FILE__, __LINE__);                                             \
      return -1;                                                               \
    }                                                                          \
  } while (0)

static int check_kv(const struct store_kv *got, const struct mev *e,
                    bool keys_only) {
  CHECK(bcmp_(got->key, got->key_len, keys[e->key], strlen(keys[e->key])) == 0);
  CHECK(got->create_revision == e->create);
  CHECK(got->mod_revision == e->rev);
  CHECK(got->version == e->version);
  CHECK(got->lease == e->lease);
  if (!keys_only)
    CHECK(bcmp_(got->value, got->value_len, e->val, e->vlen) == 0);
  else
    CHECK(got->value_len == 0);
  return 0;
}

static struct mrange mk_range(const uint8_t *key, size_t klen,
                              const uint8_t *end, size_t elen) {
  struct mrange r = {0};
  static char kb[4][32];
  static int ki;
  char *b = kb[ki++ & 3];
  memcpy(b, key, klen);
  b[klen] = 0;
  r.key = b;
  if (elen == 1 && end[0] == 0) {
    r.end = "\0";
    r.end_len = 1;
    if (klen == 1 && key[0] == 0)
      r.key = "";
  } else if (elen > 0) {
    r.end = (const char *)end;
    r.end_len = elen;
  }
  return r;
}

static int64_t tgt(const struct mev *e, enum store_sort_target t) {
  switch (t) {
  case STORE_SORT_VERSION:
    return e->version;
  case STORE_SORT_CREATE:
    return e->create;
  case STORE_SORT_MOD:
    return e->rev;
  default:
    return 0;
  }
}

static int mcmp(const struct mev *a, const struct mev *b,
                enum store_sort_target t, bool desc) {
  int r;
  if (t == STORE_SORT_KEY)
    r = strcmp(keys[a->key], keys[b->key]);
  else if (t == STORE_SORT_VALUE)
    r = bcmp_(a->val, a->vlen, b->val, b->vlen);
  else
    r = tgt(a, t) < tgt(b, t) ? -1 : tgt(a, t) > tgt(b, t);
  if (desc)
    r = -r;
  if (r == 0)
    r = strcmp(keys[a->key], keys[b->key]);
  return r;
}

/* Model range at current revision `cur` of the model. */
static int m_range(const struct store_range_req *q, int64_t cur, int err,
                   const struct store_range_resp *got) {
  int64_t rev = q->revision <= 0 ? cur : q->revision;
  if (rev > cur) {
    CHECK(err == KEEL_EFUTUREREV);
    return 0;
  }
  if (rev < M.compact) {
    CHECK(err == KEEL_ECOMPACTED);
    return 0;
  }
  CHECK(err == 0);
  struct mrange r =
      mk_range(q->key, q->key_len, q->range_end, q->range_end_len);
  /* keys sorted by name */
  int order[NKEYS];
  for (int i = 0; i < NKEYS; i++)
    order[i] = i;
  for (int i = 1; i < NKEYS; i++)
    for (int j = i; j > 0 && strcmp(keys[order[j - 1]], keys[order[j]]) > 0;
         j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  const struct mev *list[NKEYS];
  int n = 0, count = 0;
  for (int i = 0; i < NKEYS; i++) {
    if (!m_in(&r, order[i]))
      continue;
    const struct mev *e = m_at(order[i], rev);
    if (e == NULL)
      continue;
    count++;
    if (q->min_mod_revision && e->rev < q->min_mod_revision)
      continue;
    if (q->max_mod_revision && e->rev > q->max_mod_revision)
      continue;
    if (q->min_create_revision && e->create < q->min_create_revision)
      continue;
    if (q->max_create_revision && e->create > q->max_create_revision)
      continue;
    list[n++] = e;
  }
  CHECK(got->count == count);
  if (q->count_only) {
    CHECK(got->n_kvs == 0);
    return 0;
  }
  enum store_sort_order ord = q->sort_order;
  if (q->sort_target != STORE_SORT_KEY && ord == STORE_SORT_NONE)
    ord = STORE_SORT_ASCEND;
  if (ord != STORE_SORT_NONE) {
    bool desc = ord == STORE_SORT_DESCEND;
    for (int i = 1; i < n; i++)
      for (int j = i;
           j > 0 && mcmp(list[j - 1], list[j], q->sort_target, desc) > 0; j--) {
        const struct mev *t = list[j];
        list[j] = list[j - 1];
        list[j - 1] = t;
      }
  }
  bool more = false;
  if (q->limit > 0 && n > q->limit) {
    n = (int)q->limit;
    more = true;
  }
  CHECK(got->more == more);
  CHECK(got->n_kvs == (size_t)n);
  for (int i = 0; i < n; i++)
    if (check_kv(&got->kvs[i], list[i], q->keys_only) != 0)
      return -1;
  return 0;
}

/* The model's write state for one request. */
static int64_t w_rev, w_sub;
static bool w_wrote;

static void m_begin(void) {
  w_rev = M.rev;
  w_sub = 0;
  w_wrote = false;
}
static int64_t m_wrev(void) {
  w_wrote = true;
  return M.rev + 1;
}

static void m_put(const struct store_put_req *p, const struct mev **prev) {
  int k = key_index(p->key, p->key_len);
  const struct mev *old = m_at(k, INT64_MAX);
  *prev = old;
  int64_t rev = m_wrev();
  const char *val = (const char *)p->value;
  size_t vlen = p->value_len;
  int64_t lease = p->lease;
  if (old && p->ignore_value) {
    val = old->val;
    vlen = old->vlen;
  }
  if (old && p->ignore_lease)
    lease = old->lease;
  char vcopy[24];
  memcpy(vcopy, val, vlen);
  m_push(0, k, vcopy, vlen, old ? old->create : rev, old ? old->version + 1 : 1,
         lease, rev, w_sub++);
}

/* deleting: returns number deleted; fills prevs */
static int m_delete(const struct mrange *r, const struct mev **prevs) {
  int n = 0;
  int order[NKEYS];
  for (int i = 0; i < NKEYS; i++)
    order[i] = i;
  for (int i = 1; i < NKEYS; i++)
    for (int j = i; j > 0 && strcmp(keys[order[j - 1]], keys[order[j]]) > 0;
         j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  for (int i = 0; i < NKEYS; i++) {
    int k = order[i];
    if (!m_in(r, k))
      continue;
    const struct mev *e = m_at(k, INT64_MAX);
    if (e == NULL)
      continue;
    prevs[n++] = e;
  }
  /* copy prevs' identity before pushing (array may not move: static) */
  for (int i = 0; i < n; i++)
    m_push(1, prevs[i]->key, NULL, 0, 0, 0, 0, m_wrev(), w_sub++);
  return n;
}

static int check_prev(bool want, const struct mev *e, bool has,
                      const struct store_kv *kv) {
  if (!want || e == NULL) {
    CHECK(!has);
    return 0;
  }
  CHECK(has);
  return check_kv(kv, e, false);
}

static bool m_put_ok(const struct store_put_req *p, int *err) {
  int k = key_index(p->key, p->key_len);
  if ((p->ignore_value || p->ignore_lease) && m_at(k, INT64_MAX) == NULL) {
    *err = KEEL_ENOTFOUND;
    return false;
  }
  if (p->lease && !M.lease[p->lease]) {
    *err = KEEL_ELEASENOTFOUND;
    return false;
  }
  return true;
}

static bool m_compare(const struct store_compare *c) {
  struct mrange r =
      mk_range(c->key, c->key_len, c->range_end, c->range_end_len);
  bool any = false;
  for (int k = 0; k < NKEYS; k++) {
    if (!m_in(&r, k))
      continue;
    const struct mev *e = m_at(k, INT64_MAX);
    if (e == NULL)
      continue;
    any = true;
    int res;
    if (c->target == STORE_CMP_VALUE)
      res = bcmp_(e->val, e->vlen, c->value, c->value_len);
    else {
      int64_t x = c->target == STORE_CMP_VERSION  ? e->version
                  : c->target == STORE_CMP_CREATE ? e->create
                  : c->target == STORE_CMP_MOD    ? e->rev
                                                  : e->lease;
      res = x < c->number ? -1 : x > c->number;
    }
    bool ok = c->result == STORE_CMP_EQUAL       ? res == 0
              : c->result == STORE_CMP_NOT_EQUAL ? res != 0
              : c->result == STORE_CMP_GREATER   ? res > 0
                                                 : res < 0;
    if (!ok)
      return false;
  }
  if (!any) {
    if (c->target == STORE_CMP_VALUE)
      return false;
    int64_t x = 0;
    int res = x < c->number ? -1 : x > c->number;
    return c->result == STORE_CMP_EQUAL       ? res == 0
           : c->result == STORE_CMP_NOT_EQUAL ? res != 0
           : c->result == STORE_CMP_GREATER   ? res > 0
                                              : res < 0;
  }
  return true;
}

/* etcd's duplicate rules for one level */
static bool m_dup(const struct store_request_op *ops, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (ops[i].type != STORE_OP_PUT)
      continue;
    int k = key_index(ops[i].u.put.key, ops[i].u.put.key_len);
    for (size_t j = 0; j < n; j++) {
      if (j == i)
        continue;
      if (ops[j].type == STORE_OP_PUT && j < i &&
          key_index(ops[j].u.put.key, ops[j].u.put.key_len) == k)
        return true;
      if (ops[j].type == STORE_OP_DELETE_RANGE) {
        struct mrange r =
            mk_range(ops[j].u.delete_range.key, ops[j].u.delete_range.key_len,
                     ops[j].u.delete_range.range_end,
                     ops[j].u.delete_range.range_end_len);
        if (m_in(&r, k))
          return true;
      }
    }
  }
  return false;
}

static bool has_put(const struct store_request_op *ops, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ops[i].type == STORE_OP_PUT)
      return true;
  return false;
}

/* Applies rq to the model and checks the store's response. */
static int m_apply(const struct store_request *rq,
                   const struct store_response *got) {
  m_begin();
  switch (rq->type) {
  case STORE_REQ_NOOP:
    CHECK(got->error == 0);
    break;
  case STORE_REQ_PUT: {
    int err = 0;
    if (M.nospace) {
      CHECK(got->error == KEEL_ENOSPACE);
      break;
    }
    if (!m_put_ok(&rq->u.put, &err)) {
      CHECK(got->error == err);
      break;
    }
    CHECK(got->error == 0);
    const struct mev *prev;
    m_put(&rq->u.put, &prev);
    if (check_prev(rq->u.put.prev_kv, prev, got->u.put.has_prev,
                   &got->u.put.prev_kv))
      return -1;
    CHECK(got->u.put.revision == M.rev + 1);
    break;
  }
  case STORE_REQ_DELETE_RANGE: {
    CHECK(got->error == 0);
    struct mrange r = mk_range(
        rq->u.delete_range.key, rq->u.delete_range.key_len,
        rq->u.delete_range.range_end, rq->u.delete_range.range_end_len);
    const struct mev *prevs[NKEYS];
    int n = m_delete(&r, prevs);
    CHECK(got->u.delete_range.deleted == n);
    if (rq->u.delete_range.prev_kv) {
      CHECK(got->u.delete_range.n_prev_kvs == (size_t)n);
      for (int i = 0; i < n; i++)
        if (check_kv(&got->u.delete_range.prev_kvs[i], prevs[i], false))
          return -1;
    }
    break;
  }
  case STORE_REQ_TXN: {
    const struct store_txn_req *x = &rq->u.txn;
    if (m_dup(x->success, x->n_success) || m_dup(x->failure, x->n_failure)) {
      CHECK(got->error == KEEL_EDUPKEY);
      break;
    }
    if (M.nospace && (has_put(x->success, x->n_success) ||
                      has_put(x->failure, x->n_failure))) {
      CHECK(got->error == KEEL_ENOSPACE);
      break;
    }
    bool ok = true;
    for (size_t i = 0; i < x->n_compare; i++)
      ok = ok && m_compare(&x->compare[i]);
    const struct store_request_op *ops = ok ? x->success : x->failure;
    size_t n = ok ? x->n_success : x->n_failure;
    int err = 0;
    for (size_t i = 0; i < n && err == 0; i++) {
      if (ops[i].type == STORE_OP_PUT)
        m_put_ok(&ops[i].u.put, &err);
      else if (ops[i].type == STORE_OP_RANGE && ops[i].u.range.revision > 0) {
        if (ops[i].u.range.revision > M.rev)
          err = KEEL_EFUTUREREV;
        else if (ops[i].u.range.revision < M.compact)
          err = KEEL_ECOMPACTED;
      }
    }
    if (err) {
      CHECK(got->error == err);
      break;
    }
    CHECK(got->error == 0);
    CHECK(got->u.txn.succeeded == ok);
    CHECK(got->u.txn.n_responses == n);
    for (size_t i = 0; i < n; i++) {
      const struct store_response_op *ro = &got->u.txn.responses[i];
      CHECK(ro->type == ops[i].type);
      if (ops[i].type == STORE_OP_PUT) {
        const struct mev *prev;
        m_put(&ops[i].u.put, &prev);
        if (check_prev(ops[i].u.put.prev_kv, prev, ro->u.put.has_prev,
                       &ro->u.put.prev_kv))
          return -1;
      } else if (ops[i].type == STORE_OP_DELETE_RANGE) {
        const struct store_delete_req *d = &ops[i].u.delete_range;
        struct mrange r =
            mk_range(d->key, d->key_len, d->range_end, d->range_end_len);
        const struct mev *prevs[NKEYS];
        int dn = m_delete(&r, prevs);
        CHECK(ro->u.delete_range.deleted == dn);
        if (d->prev_kv)
          for (int j = 0; j < dn; j++)
            if (check_kv(&ro->u.delete_range.prev_kvs[j], prevs[j], false))
              return -1;
      } else {
        /* a range inside the txn sees the txn's writes so far */
        int64_t cur = w_wrote ? M.rev + 1 : M.rev;
        fail_ctx = "range in txn";
        if (m_range(&ops[i].u.range, cur, 0, &ro->u.range))
          return -1;
      }
    }
    break;
  }
  case STORE_REQ_LEASE_GRANT: {
    int64_t id = rq->u.lease_grant.id;
    if (M.nospace)
      CHECK(got->error == KEEL_ENOSPACE);
    else if (M.lease[id])
      CHECK(got->error == KEEL_ELEASEEXISTS);
    else {
      CHECK(got->error == 0);
      CHECK(got->u.lease_grant.id == id);
      M.lease[id] = true;
    }
    break;
  }
  case STORE_REQ_LEASE_REVOKE:
  case STORE_REQ_LEASE_EXPIRE: {
    int64_t id = rq->u.lease_revoke.id;
    if (!M.lease[id]) {
      CHECK(got->error == KEEL_ELEASENOTFOUND);
      break;
    }
    CHECK(got->error == 0);
    M.lease[id] = false;
    int order[NKEYS];
    for (int i = 0; i < NKEYS; i++)
      order[i] = i;
    for (int i = 1; i < NKEYS; i++)
      for (int j = i; j > 0 && strcmp(keys[order[j - 1]], keys[order[j]]) > 0;
           j--) {
        int t = order[j];
        order[j] = order[j - 1];
        order[j - 1] = t;
      }
    for (int i = 0; i < NKEYS; i++) {
      const struct mev *e = m_at(order[i], INT64_MAX);
      if (e && e->lease == id)
        m_push(1, order[i], NULL, 0, 0, 0, 0, m_wrev(), w_sub++);
    }
    break;
  }
  case STORE_REQ_COMPACTION: {
    int64_t r = rq->u.compaction.revision;
    if (r <= M.compact)
      CHECK(got->error == KEEL_ECOMPACTED);
    else if (r > M.rev)
      CHECK(got->error == KEEL_EFUTUREREV);
    else {
      CHECK(got->error == 0);
      M.compact = r;
    }
    break;
  }
  case STORE_REQ_ALARM:
    CHECK(got->error == 0);
    if (rq->u.alarm.action == STORE_ALARM_ACTIVATE)
      M.nospace = true;
    else if (rq->u.alarm.action == STORE_ALARM_DEACTIVATE)
      M.nospace = false;
    break;
  default:
    break;
  }
  if (w_wrote)
    M.rev++;
  CHECK(got->revision == M.rev);
  return 0;
}

/* history read check: events (from, to] as the model has them */
static int check_history(struct store *st) {
  if (M.rev <= M.compact + 1)
    return 0;
  int64_t from = M.compact + 1 + rn((int)(M.rev - M.compact));
  const uint8_t *key, *end;
  size_t klen, elen;
  pool_n = 0;
  gen_range_keys(&key, &klen, &end, &elen);
  struct mrange r = mk_range(key, klen, end, elen);
  size_t max = 1 + (size_t)rn(5);
  int64_t at = from;
  size_t mi = 0;
  while (mi < M.n && M.ev[mi].rev < from)
    mi++;
  for (int guard = 0; guard < 100000; guard++) {
    struct store_history h;
    int rc = store_history_read(st, key, klen, end, elen, at, 0, max, 1 << 20,
                                true, &h);
    CHECK(rc == 0);
    for (size_t i = 0; i < h.n_events; i++) {
      while (mi < M.n && !m_in(&r, M.ev[mi].key))
        mi++;
      CHECK(mi < M.n);
      const struct mev *e = &M.ev[mi++];
      const struct store_event *ev = &h.events[i];
      CHECK((int)ev->type == e->type);
      CHECK(ev->kv.mod_revision == e->rev);
      if (e->type == 0) {
        if (check_kv(&ev->kv, e, false))
          return -1;
      }
      /* prev: the key's previous event, if a live put and not compacted */
      const struct mev *pe = NULL;
      for (size_t j = mi - 1; j-- > 0;)
        if (M.ev[j].key == e->key) {
          pe = &M.ev[j];
          break;
        }
      bool expect = pe && pe->type == 0 &&
                    (pe->rev > M.compact || m_at(e->key, M.compact) == pe);
      CHECK(ev->has_prev == (int)expect);
      if (expect && check_kv(&ev->prev_kv, pe, false))
        return -1;
    }
    bool done = h.next_rev > M.rev;
    at = h.next_rev;
    store_history_free(&h);
    if (done)
      break;
  }
  while (mi < M.n && !m_in(&r, M.ev[mi].key))
    mi++;
  CHECK(mi == M.n);
  return 0;
}

static void opts_fast(struct store_options *o) {
  memset(o, 0, sizeof(*o));
  o->apply_nosync = true;
  o->quota_bytes = 64ull << 20;
}

static int run_sequence(uint64_t seed, int len, bool twin) {
  rng_s = seed;
  memset(&M, 0, sizeof(M));
  M.rev = 1;
  char dir[256], dir2[256];
  tu_tmpdir(dir, sizeof(dir), "model");
  tu_tmpdir(dir2, sizeof(dir2), "model2");
  struct store_options o;
  opts_fast(&o);
  struct store *st = NULL, *st2 = NULL;
  assert_int_equal(store_open(dir, &o, &st), 0);
  if (twin)
    assert_int_equal(store_open(dir2, &o, &st2), 0);
  uint64_t index = 0;
  int rc = 0;
  struct store_request reqs[8];
  struct store_apply_entry ents[8];
  for (int done = 0; done < len && rc == 0;) {
    pool_n = 0;
    int nb = 1 + rn(8);
    for (int i = 0; i < nb; i++) {
      gen_request(&reqs[i]);
      ents[i].index = ++index;
      ents[i].term = 1;
      ents[i].req = &reqs[i];
    }
    struct store_apply_batch b = {.entries = ents, .n = (size_t)nb};
    struct store_apply_result res;
    assert_int_equal(store_apply(st, &b, &res), 0);
    assert_int_equal(res.n_responses, (size_t)nb);
    for (int i = 0; i < nb && rc == 0; i++) {
      fail_ctx = "apply";
      rc = m_apply(&reqs[i], &res.responses[i]);
      if (rc)
        fprintf(stderr, "request type %d (entry %d of batch)\n", reqs[i].type,
                i);
    }
    if (rc == 0 && res.revision != M.rev)
      rc = -1;
    /* events: the batch's events are the model's tail */
    if (rc == 0) {
      size_t first = M.n - res.n_events;
      for (size_t i = 0; i < res.n_events && rc == 0; i++) {
        const struct mev *e = &M.ev[first + i];
        const struct store_event *ev = &res.events[i];
        if ((int)ev->type != e->type || ev->kv.mod_revision != e->rev ||
            key_index(ev->kv.key, ev->kv.key_len) != e->key) {
          fprintf(stderr, "event %zu differs\n", i);
          rc = -1;
        }
      }
    }
    store_apply_result_free(&res);
    if (twin && rc == 0) {
      for (int i = 0; i < nb; i++) {
        struct store_apply_batch b1 = {.entries = &ents[i], .n = 1};
        assert_int_equal(store_apply(st2, &b1, &res), 0);
        store_apply_result_free(&res);
      }
    }
    /* reads at past revisions */
    for (int q = 0; q < 3 && rc == 0; q++) {
      pool_n = 0;
      struct store_range_req rr = {0};
      gen_rangereq(&rr, true);
      if (rn(10) == 0)
        rr.revision = M.rev + 1; /* future */
      struct store_range_result out;
      int err = store_range(st, &rr, &out);
      fail_ctx = "range";
      rc = m_range(&rr, M.rev, err, &out.resp);
      if (err == 0)
        store_range_result_free(&out);
    }
    if (rc == 0 && rn(4) == 0) {
      fail_ctx = "history";
      rc = check_history(st);
    }
    /* the physical half of compaction, in small random steps, only on the
     * first store: the twin keeps its garbage, and the two must still
     * stream the same bytes and hash the same */
    if (rc == 0 && rn(3) == 0) {
      int r = store_compact_step(st, 1 + (size_t)rn(20));
      assert_true(r == 0 || r == 1);
    }
    done += nb;
  }
  if (rc == 0 && store_verify(st) != 0) {
    fprintf(stderr, "store invariants broken\n");
    rc = -1;
  }
  if (rc == 0 && twin) {
    uint32_t h1, h2;
    int64_t c1, c2, r1, r2;
    assert_int_equal(store_hash_kv(st, 0, &h1, &c1, &r1), 0);
    assert_int_equal(store_hash_kv(st2, 0, &h2, &c2, &r2), 0);
    if (h1 != h2 || c1 != c2 || r1 != r2)
      rc = -1;
    uint8_t d1[32], d2[32], buf[4096];
    uint64_t s1, s2;
    struct store *sts[2] = {st, st2};
    uint8_t *ds[2] = {d1, d2};
    uint64_t *ss[2] = {&s1, &s2};
    for (int i = 0; i < 2; i++) {
      struct store_snapshot *sn;
      assert_int_equal(store_snapshot_open(sts[i], &sn), 0);
      size_t n;
      do {
        assert_int_equal(store_snapshot_read(sn, buf, sizeof(buf), &n), 0);
      } while (n > 0);
      store_snapshot_digest(sn, ds[i], ss[i]);
      store_snapshot_close(sn);
    }
    if (memcmp(d1, d2, 32) != 0 || s1 != s2) {
      fprintf(stderr, "twin stores differ (batching changed the state)\n");
      rc = -1;
    }
  }
  store_close(st);
  store_close(st2);
  tu_rmrf(dir);
  tu_rmrf(dir2);
  return rc;
}

static void test_model(void **state) {
  (void)state;
  const char *s = getenv("KEEL_MODEL_SEED");
  const char *n = getenv("KEEL_MODEL_SEQS");
  uint64_t base = s ? strtoull(s, NULL, 0) : 0x5eed0001ull;
  int seqs = n ? atoi(n) : 4000;
  for (int i = 0; i < seqs; i++) {
    uint64_t seed = base + (uint64_t)i;
    int len = 40 + (int)(seed % 160);
    if (run_sequence(seed, len, i % 10 == 0) != 0) {
      fprintf(stderr,
              "model test failed: reproduce with KEEL_MODEL_SEED=%" PRIu64
              " KEEL_MODEL_SEQS=1\n",
              seed);
      fail();
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_model)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

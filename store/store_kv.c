/* store_kv.c — the MVCC key-value state machine: range reads at any
 * revision, put, delete, txn, leases, alarms, compaction, apply, history for
 * watch catch-up, HashKV.
 *
 * Records (all integers big-endian):
 *   kv_rev   key main(8) sub(8)
 *            value type(1) create(8) version(8) lease(8) key_len(4) key value
 *            (a tombstone has type 1, zeros, and no value)
 *   kv_key   key -> dup items main(8) sub(8) create(8) version(8) lease(8),
 *            REV_TOMBSTONE in sub's top bit (a tombstone has zeros)
 *   leases   id(8) -> granted_ttl(8) remaining_ttl(8)
 *   lease_keys id(8) ++ key -> empty
 *
 * Invariants (after every committed apply; store_verify() checks them):
 *  - A key is alive at revision R iff its last kv_key item with main <= R
 *    is not a tombstone; that item carries its state. The last item overall
 *    is the current state (what etcd's in-memory index holds).
 *  - kv_rev has a record for every kv_key item and vice versa, with the
 *    same key, type and state.
 *  - Logically, items at or below the compact revision C are at most one
 *    per key and never a tombstone; physically, garbage may remain until
 *    store_compact_step() removes it, and every read skips it.
 *  - lease_keys(id, key) exists iff the key is alive with lease id != 0,
 *    and the lease exists in leases.
 *  - A revision is used by exactly one request that changed something; its
 *    changes are numbered sub 0, 1, ... in the order they happened.
 *
 * Apply follows etcd's applier: each request is checked against the state
 * before it (leases exist, ignore_value keys exist, txn paths chosen from
 * compares on the pre-txn state, ranges in bounds, the NOSPACE alarm) before
 * anything is written, so a request either fails whole or applies whole;
 * only LMDB itself can fail midway, and then the whole batch is aborted.
 */
#define _GNU_SOURCE /* qsort_r */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "keel_error.h"
#include "keel_log.h"
#include "store_internal.h"

#define ITEM_LEN 40
#define REC_HDR 29

struct kmeta {
  int64_t create, mod, sub, version, lease;
};

/* A read or write position: a txn on a file, and the revisions it sees. */
struct view {
  struct store_db *db;
  MDB_txn *txn;
  int64_t rev;     /* revision reads at "current" see */
  int64_t compact; /* compact revision */
};

/* --- small growable vector ---------------------------------------------- */

struct vec {
  void *p;
  size_t n, cap, elem;
};

static void *vec_push(struct vec *v) {
  if (v->n == v->cap) {
    size_t ncap = v->cap ? v->cap * 2 : 16;
    void *np = realloc(v->p, ncap * v->elem);
    if (np == NULL)
      return NULL;
    v->p = np;
    v->cap = ncap;
  }
  return (uint8_t *)v->p + v->elem * v->n++;
}

/* --- encoding helpers ----------------------------------------------------- */

/* A kv_key item: main(8) sub(8, REV_TOMBSTONE bit) create(8) version(8)
 * lease(8). */
static void item_encode(uint8_t *p, const struct kmeta *m, bool tomb) {
  be64_put(p, (uint64_t)m->mod);
  be64_put(p + 8, (uint64_t)m->sub | (tomb ? REV_TOMBSTONE : 0));
  be64_put(p + 16, (uint64_t)m->create);
  be64_put(p + 24, (uint64_t)m->version);
  be64_put(p + 32, (uint64_t)m->lease);
}

static bool item_decode(const uint8_t *p, struct kmeta *m) {
  uint64_t sub = be64_get(p + 8);
  m->mod = (int64_t)be64_get(p);
  m->sub = (int64_t)(sub & ~REV_TOMBSTONE);
  m->create = (int64_t)be64_get(p + 16);
  m->version = (int64_t)be64_get(p + 24);
  m->lease = (int64_t)be64_get(p + 32);
  return (sub & REV_TOMBSTONE) != 0;
}

static void revkey(uint8_t *b, int64_t main, int64_t sub) {
  be64_put(b, (uint64_t)main);
  be64_put(b + 8, (uint64_t)sub);
}

/* The key's latest state: its last kv_key item. KEEL_ENOTFOUND if the key
 * never existed or its last item is a deletion. */
static int idx_get(struct view *v, const uint8_t *key, size_t n,
                   struct kmeta *m) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(v->txn, v->db->dbi[DB_KV_KEY], &cur);
  if (rc != 0)
    return store_mdb_err(rc);
  MDB_val k = {n, (void *)key}, d;
  rc = mdb_cursor_get(cur, &k, &d, MDB_SET);
  if (rc == 0)
    rc = mdb_cursor_get(cur, &k, &d, MDB_LAST_DUP);
  mdb_cursor_close(cur);
  if (rc == MDB_NOTFOUND)
    return KEEL_ENOTFOUND;
  if (rc != 0)
    return store_mdb_err(rc);
  if (d.mv_size != ITEM_LEN)
    return KEEL_ECORRUPT;
  if (item_decode(d.mv_data, m))
    return KEEL_ENOTFOUND;
  return 0;
}

/* Decodes a kv_rev record into kv (pointing into LMDB memory). */
static int rec_decode(const MDB_val *k, const MDB_val *d, struct store_kv *kv,
                      int *type) {
  if (k->mv_size != 16 || d->mv_size < REC_HDR)
    return KEEL_ECORRUPT;
  const uint8_t *p = d->mv_data;
  uint32_t klen = be32_get(p + 25);
  if (klen > d->mv_size - REC_HDR)
    return KEEL_ECORRUPT;
  *type = p[0];
  memset(kv, 0, sizeof(*kv));
  kv->mod_revision = (int64_t)be64_get(k->mv_data);
  kv->key = p + REC_HDR;
  kv->key_len = klen;
  if (*type == STORE_EVENT_PUT) {
    kv->create_revision = (int64_t)be64_get(p + 1);
    kv->version = (int64_t)be64_get(p + 9);
    kv->lease = (int64_t)be64_get(p + 17);
    kv->value = p + REC_HDR + klen;
    kv->value_len = d->mv_size - REC_HDR - klen;
  }
  return 0;
}

static int rec_get(struct view *v, int64_t main, int64_t sub,
                   struct store_kv *kv, int *type) {
  uint8_t kb[16];
  revkey(kb, main, sub);
  MDB_val k = {16, kb}, d;
  int rc = mdb_get(v->txn, v->db->dbi[DB_KV_REV], &k, &d);
  if (rc == MDB_NOTFOUND)
    return KEEL_ECORRUPT; /* the index names a record that must exist */
  if (rc != 0)
    return store_mdb_err(rc);
  return rec_decode(&k, &d, kv, type);
}

/* Copies kv's bytes into the arena (keys_only drops the value). */
static int kv_own(struct arena *a, struct store_kv *kv, bool keys_only) {
  const uint8_t *key = arena_dup(a, kv->key, kv->key_len);
  if (key == NULL)
    return -ENOMEM;
  kv->key = key;
  if (keys_only || kv->value_len == 0) {
    kv->value = NULL;
    kv->value_len = 0;
    return 0;
  }
  const uint8_t *val = arena_dup(a, kv->value, kv->value_len);
  if (val == NULL)
    return -ENOMEM;
  kv->value = val;
  return 0;
}

/* --- iterating the keys alive at a revision --------------------------------
 */

/* Calls fn for every key alive at rev in range r, in key order; fn returns
 * 0 to go on, 1 to stop, < 0 for an error. meta is filled; kv (value bytes
 * in LMDB memory) is filled only if want_kv or rev is past. */
typedef int (*key_fn)(void *arg, const uint8_t *key, size_t key_len,
                      const struct kmeta *m);

static int scan_keys(struct view *v, const struct keyrange *r, int64_t rev,
                     key_fn fn, void *arg) {
  MDB_cursor *cur;
  bool current = rev >= v->rev;
  int rc = mdb_cursor_open(v->txn, v->db->dbi[DB_KV_KEY], &cur);
  if (rc != 0)
    return store_mdb_err(rc);
  MDB_val k = {r->key_len, (void *)r->key}, d;
  int r0;
  if (r->key_len == 0)
    r0 = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
  else
    r0 = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
  rc = 0;
  while (r0 == 0) {
    if (!keyrange_below_end(r, k.mv_data, k.mv_size))
      break;
    struct kmeta m;
    MDB_val key = k, item;
    int g;
    if (current) {
      g = mdb_cursor_get(cur, &key, &item, MDB_LAST_DUP);
    } else {
      /* latest item <= rev: first item >= (rev+1, 0), then one back */
      uint8_t want[16];
      revkey(want, rev + 1, 0);
      item.mv_size = 16;
      item.mv_data = want;
      g = mdb_cursor_get(cur, &key, &item, MDB_GET_BOTH_RANGE);
      if (g == 0)
        g = mdb_cursor_get(cur, &key, &item, MDB_PREV_DUP);
      else if (g == MDB_NOTFOUND) {
        key = k;
        g = mdb_cursor_get(cur, &key, &item, MDB_SET);
        if (g == 0)
          g = mdb_cursor_get(cur, &key, &item, MDB_LAST_DUP);
      }
    }
    bool alive = false;
    if (g == 0) {
      if (item.mv_size != ITEM_LEN) {
        rc = KEEL_ECORRUPT;
        break;
      }
      bool tomb = item_decode(item.mv_data, &m);
      alive = !tomb && m.mod <= rev;
    } else if (g != MDB_NOTFOUND) {
      rc = store_mdb_err(g);
      break;
    }
    /* the cursor is on this key (some item, or positioned by MDB_SET) */
    k = key;
    if (alive) {
      rc = fn(arg, k.mv_data, k.mv_size, &m);
      if (rc != 0)
        break;
    }
    if (r->single)
      break;
    r0 = mdb_cursor_get(cur, &k, &d, MDB_NEXT_NODUP);
  }
  mdb_cursor_close(cur);
  if (rc == 1)
    rc = 0;
  if (rc == 0 && r0 != 0 && r0 != MDB_NOTFOUND)
    rc = store_mdb_err(r0);
  return rc;
}

/* --- range --------------------------------------------------------------- */

struct range_acc {
  struct view *v;
  const struct store_range_req *req;
  struct arena *a;
  struct vec kvs; /* struct store_kv */
  int64_t count;
  int64_t want; /* materialize at most this many; -1: all */
};

static int range_fn(void *arg, const uint8_t *key, size_t key_len,
                    const struct kmeta *m) {
  struct range_acc *ra = arg;
  ra->count++;
  if (ra->req->count_only)
    return 0;
  if (ra->want >= 0 && (int64_t)ra->kvs.n >= ra->want)
    return 0; /* keep counting */
  struct store_kv *kv = vec_push(&ra->kvs);
  if (kv == NULL)
    return -ENOMEM;
  memset(kv, 0, sizeof(*kv));
  kv->key = key;
  kv->key_len = key_len;
  kv->create_revision = m->create;
  kv->mod_revision = m->mod;
  kv->version = m->version;
  kv->lease = m->lease;
  if (!ra->req->keys_only || ra->req->sort_target == STORE_SORT_VALUE) {
    struct store_kv rec;
    int type;
    int rc = rec_get(ra->v, m->mod, m->sub, &rec, &type);
    if (rc != 0)
      return rc;
    kv->value = rec.value;
    kv->value_len = rec.value_len;
  }
  return 0;
}

static int kv_cmp_target(const struct store_kv *a, const struct store_kv *b,
                         enum store_sort_target t) {
  int64_t x = 0, y = 0;
  switch (t) {
  case STORE_SORT_KEY:
    return bytes_cmp(a->key, a->key_len, b->key, b->key_len);
  case STORE_SORT_VALUE:
    return bytes_cmp(a->value, a->value_len, b->value, b->value_len);
  case STORE_SORT_VERSION:
    x = a->version, y = b->version;
    break;
  case STORE_SORT_CREATE:
    x = a->create_revision, y = b->create_revision;
    break;
  case STORE_SORT_MOD:
    x = a->mod_revision, y = b->mod_revision;
    break;
  }
  return x < y ? -1 : x > y ? 1 : 0;
}

/* Ties are broken by key ascending so the order is total (etcd's is
 * unspecified for ties). qsort with a total order is deterministic. */
static int sort_cmp_ctx(const void *pa, const void *pb, void *ctx) {
  const struct store_kv *a = pa, *b = pb;
  const int *c = ctx;
  int r = kv_cmp_target(a, b, (enum store_sort_target)c[0]);
  if (c[1])
    r = -r;
  if (r == 0)
    r = bytes_cmp(a->key, a->key_len, b->key, b->key_len);
  return r;
}

static int check_rev(const struct view *v, int64_t rev) {
  if (rev > v->rev)
    return KEEL_EFUTUREREV;
  if (rev < v->compact)
    return KEEL_ECOMPACTED;
  return 0;
}

static int range_exec(struct view *v, const struct store_range_req *req,
                      struct arena *a, struct store_range_resp *out) {
  memset(out, 0, sizeof(*out));
  out->revision = v->rev;
  if (req->key_len == 0)
    return -EINVAL;
  if (req->key_len > STORE_KEY_MAX)
    return KEEL_ETOOLARGE;
  if (req->limit < 0 || (unsigned)req->sort_order > STORE_SORT_DESCEND ||
      (unsigned)req->sort_target > STORE_SORT_VALUE)
    return -EINVAL;
  int64_t rev = req->revision <= 0 ? v->rev : req->revision;
  int rc = check_rev(v, rev);
  if (rc != 0)
    return rc;
  struct keyrange r;
  keyrange_make(&r, req->key, req->key_len, req->range_end, req->range_end_len);
  enum store_sort_order order = req->sort_order;
  if (req->sort_target != STORE_SORT_KEY && order == STORE_SORT_NONE)
    order = STORE_SORT_ASCEND;
  bool filters = req->min_mod_revision || req->max_mod_revision ||
                 req->min_create_revision || req->max_create_revision;
  bool sorted =
      !(order == STORE_SORT_NONE ||
        (order == STORE_SORT_ASCEND && req->sort_target == STORE_SORT_KEY));
  struct range_acc ra = {.v = v, .req = req, .a = a};
  ra.kvs.elem = sizeof(struct store_kv);
  ra.want = (filters || sorted || req->limit == 0) ? -1 : req->limit + 1;
  rc = scan_keys(v, &r, rev, range_fn, &ra);
  if (rc != 0) {
    free(ra.kvs.p);
    return rc;
  }
  out->count = ra.count;
  struct store_kv *kvs = ra.kvs.p;
  size_t n = ra.kvs.n;
  if (filters) {
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
      const struct store_kv *kv = &kvs[i];
      if (req->min_mod_revision && kv->mod_revision < req->min_mod_revision)
        continue;
      if (req->max_mod_revision && kv->mod_revision > req->max_mod_revision)
        continue;
      if (req->min_create_revision &&
          kv->create_revision < req->min_create_revision)
        continue;
      if (req->max_create_revision &&
          kv->create_revision > req->max_create_revision)
        continue;
      kvs[j++] = *kv;
    }
    n = j;
  }
  if (sorted && n > 1) {
    int ctx[2] = {(int)req->sort_target, order == STORE_SORT_DESCEND};
    qsort_r(kvs, n, sizeof(*kvs), sort_cmp_ctx, ctx);
  }
  if (req->limit > 0 && n > (size_t)req->limit) {
    n = (size_t)req->limit;
    out->more = true;
  }
  if (n > 0) {
    out->kvs = arena_alloc(a, n * sizeof(*kvs));
    if (out->kvs == NULL) {
      free(kvs);
      return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
      out->kvs[i] = kvs[i];
      if ((rc = kv_own(a, &out->kvs[i], req->keys_only)) != 0) {
        free(kvs);
        return rc;
      }
    }
  }
  out->n_kvs = n;
  free(kvs);
  return 0;
}

/* --- txn validation (etcd's checkIntervals)
 * ----------------------------------- */

struct ivset {
  struct vec puts; /* struct keyrange (single) */
  struct vec dels; /* struct keyrange */
};

static bool range_has(const struct keyrange *r, const uint8_t *k, size_t n) {
  if (bytes_cmp(k, n, r->key, r->key_len) < 0)
    return false;
  return keyrange_below_end(r, k, n);
}

static bool dels_hit(const struct vec *dels, const struct keyrange *p) {
  const struct keyrange *d = dels->p;
  for (size_t i = 0; i < dels->n; i++)
    if (range_has(&d[i], p->key, p->key_len))
      return true;
  return false;
}

static bool puts_has(const struct vec *puts, const struct keyrange *p) {
  const struct keyrange *q = puts->p;
  for (size_t i = 0; i < puts->n; i++)
    if (bytes_cmp(q[i].key, q[i].key_len, p->key, p->key_len) == 0)
      return true;
  return false;
}

static void ivset_free(struct ivset *s) {
  free(s->puts.p);
  free(s->dels.p);
}

static int check_ops(const struct store_request_op *ops, size_t n,
                     uint32_t max_ops, int depth, struct ivset *out);

static int check_txn(const struct store_txn_req *t, uint32_t max_ops, int depth,
                     struct ivset *then, struct ivset *els) {
  if (depth > STORE_MAX_TXN_DEPTH)
    return -EINVAL;
  if (t->n_compare > max_ops || t->n_success > max_ops ||
      t->n_failure > max_ops)
    return KEEL_ETOOMANYOPS;
  for (size_t i = 0; i < t->n_compare; i++) {
    const struct store_compare *c = &t->compare[i];
    if ((unsigned)c->result > STORE_CMP_NOT_EQUAL ||
        (unsigned)c->target > STORE_CMP_LEASE)
      return -EINVAL;
    if (c->key_len > STORE_KEY_MAX)
      return KEEL_ETOOLARGE;
  }
  int rc = check_ops(t->success, t->n_success, max_ops, depth, then);
  if (rc == 0)
    rc = check_ops(t->failure, t->n_failure, max_ops, depth, els);
  return rc;
}

static int check_ops(const struct store_request_op *ops, size_t n,
                     uint32_t max_ops, int depth, struct ivset *out) {
  struct vec *dels = &out->dels, *puts = &out->puts;
  dels->elem = puts->elem = sizeof(struct keyrange);
  for (size_t i = 0; i < n; i++) {
    const struct store_request_op *op = &ops[i];
    if (op->type == STORE_OP_DELETE_RANGE) {
      const struct store_delete_req *d = &op->u.delete_range;
      if (d->key_len == 0)
        return -EINVAL;
      if (d->key_len > STORE_KEY_MAX)
        return KEEL_ETOOLARGE;
      struct keyrange *r = vec_push(dels);
      if (r == NULL)
        return -ENOMEM;
      keyrange_make(r, d->key, d->key_len, d->range_end, d->range_end_len);
    } else if (op->type == STORE_OP_RANGE) {
      if (op->u.range.key_len == 0)
        return -EINVAL;
      if (op->u.range.key_len > STORE_KEY_MAX)
        return KEEL_ETOOLARGE;
    } else if (op->type == STORE_OP_PUT) {
      const struct store_put_req *p = &op->u.put;
      if (p->key_len == 0)
        return -EINVAL;
      if (p->key_len > STORE_KEY_MAX || p->value_len > STORE_VALUE_MAX)
        return KEEL_ETOOLARGE;
    } else if (op->type != STORE_OP_TXN || op->u.txn == NULL) {
      return -EINVAL;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (ops[i].type != STORE_OP_TXN)
      continue;
    struct ivset then = {0}, els = {0};
    int rc = check_txn(ops[i].u.txn, max_ops, depth + 1, &then, &els);
    const struct keyrange *tp = then.puts.p, *ep = els.puts.p;
    for (size_t j = 0; rc == 0 && j < then.puts.n; j++) {
      if (puts_has(puts, &tp[j]) || dels_hit(dels, &tp[j]))
        rc = KEEL_EDUPKEY;
      else if (vec_push(puts) == NULL)
        rc = -ENOMEM;
      else
        ((struct keyrange *)puts->p)[puts->n - 1] = tp[j];
    }
    for (size_t j = 0; rc == 0 && j < els.puts.n; j++) {
      if ((puts_has(puts, &ep[j]) && !puts_has(&then.puts, &ep[j])) ||
          dels_hit(dels, &ep[j]))
        rc = KEEL_EDUPKEY;
      else if (vec_push(puts) == NULL)
        rc = -ENOMEM;
      else
        ((struct keyrange *)puts->p)[puts->n - 1] = ep[j];
    }
    for (int b = 0; rc == 0 && b < 2; b++) {
      struct vec *src = b ? &els.dels : &then.dels;
      for (size_t j = 0; rc == 0 && j < src->n; j++) {
        struct keyrange *r = vec_push(dels);
        if (r == NULL)
          rc = -ENOMEM;
        else
          *r = ((struct keyrange *)src->p)[j];
      }
    }
    ivset_free(&then);
    ivset_free(&els);
    if (rc != 0)
      return rc;
  }
  for (size_t i = 0; i < n; i++) {
    if (ops[i].type != STORE_OP_PUT)
      continue;
    struct keyrange p;
    keyrange_make(&p, ops[i].u.put.key, ops[i].u.put.key_len, NULL, 0);
    if (puts_has(puts, &p) || dels_hit(dels, &p))
      return KEEL_EDUPKEY;
    struct keyrange *slot = vec_push(puts);
    if (slot == NULL)
      return -ENOMEM;
    *slot = p;
  }
  return 0;
}

int store_txn_validate(const struct store_txn_req *txn, uint32_t max_ops) {
  if (max_ops == 0)
    max_ops = STORE_DEFAULT_MAX_TXN_OPS;
  struct ivset then = {0}, els = {0};
  int rc = check_txn(txn, max_ops, 1, &then, &els);
  ivset_free(&then);
  ivset_free(&els);
  return rc;
}

/* --- compares ----------------------------------------------------------------
 */

struct cmp_acc {
  const struct store_compare *c;
  struct view *v;
  bool ok;
  bool any;
};

static bool compare_kv(const struct store_compare *c,
                       const struct store_kv *kv) {
  int r;
  int64_t x;
  switch (c->target) {
  case STORE_CMP_VALUE:
    r = bytes_cmp(kv->value, kv->value_len, c->value, c->value_len);
    break;
  case STORE_CMP_VERSION:
    x = kv->version;
    goto num;
  case STORE_CMP_CREATE:
    x = kv->create_revision;
    goto num;
  case STORE_CMP_MOD:
    x = kv->mod_revision;
    goto num;
  case STORE_CMP_LEASE:
  default:
    x = kv->lease;
  num:
    r = x < c->number ? -1 : x > c->number ? 1 : 0;
    break;
  }
  switch (c->result) {
  case STORE_CMP_EQUAL:
    return r == 0;
  case STORE_CMP_NOT_EQUAL:
    return r != 0;
  case STORE_CMP_GREATER:
    return r > 0;
  case STORE_CMP_LESS:
  default:
    return r < 0;
  }
}

static int cmp_fn(void *arg, const uint8_t *key, size_t key_len,
                  const struct kmeta *m) {
  struct cmp_acc *ca = arg;
  ca->any = true;
  struct store_kv kv = {.key = key,
                        .key_len = key_len,
                        .create_revision = m->create,
                        .mod_revision = m->mod,
                        .version = m->version,
                        .lease = m->lease};
  if (ca->c->target == STORE_CMP_VALUE) {
    struct store_kv rec;
    int type;
    int rc = rec_get(ca->v, m->mod, m->sub, &rec, &type);
    if (rc != 0)
      return rc;
    kv.value = rec.value;
    kv.value_len = rec.value_len;
  }
  if (!compare_kv(ca->c, &kv)) {
    ca->ok = false;
    return 1;
  }
  return 0;
}

static int eval_compare(struct view *v, const struct store_compare *c,
                        bool *ok) {
  if (c->key_len == 0) {
    *ok = false;
    return 0;
  }
  struct keyrange r;
  keyrange_make(&r, c->key, c->key_len, c->range_end, c->range_end_len);
  struct cmp_acc ca = {.c = c, .v = v, .ok = true};
  int rc = scan_keys(v, &r, v->rev, cmp_fn, &ca);
  if (rc != 0)
    return rc;
  if (!ca.any) {
    if (c->target == STORE_CMP_VALUE) {
      *ok = false;
      return 0;
    }
    struct store_kv zero = {0};
    *ok = compare_kv(c, &zero);
    return 0;
  }
  *ok = ca.ok;
  return 0;
}

/* --- the write side
 * ------------------------------------------------------------ */

struct wctx {
  struct store *st;
  struct view v; /* v.rev: the revision reads see (grows within a txn) */
  struct arena *a;
  int64_t base_rev; /* revision before the current request */
  int64_t sub;      /* next sub in the current request */
  bool nospace;
  struct vec events; /* struct store_event */
  bool alarms_changed;
  bool compacted;
};

static int lease_exists(struct view *v, int64_t id) {
  uint8_t b[8];
  be64_put(b, (uint64_t)id);
  MDB_val k = {8, b}, d;
  int rc = mdb_get(v->txn, v->db->dbi[DB_LEASES], &k, &d);
  if (rc == MDB_NOTFOUND)
    return 0;
  if (rc != 0)
    return store_mdb_err(rc);
  return 1;
}

static int lease_key_op(struct view *v, int64_t id, const uint8_t *key,
                        size_t n, bool add) {
  uint8_t b[8 + STORE_KEY_MAX];
  assert(n <= STORE_KEY_MAX);
  be64_put(b, (uint64_t)id);
  memcpy(b + 8, key, n);
  MDB_val k = {8 + n, b}, d = {0, NULL};
  int rc = add ? mdb_put(v->txn, v->db->dbi[DB_LEASE_KEYS], &k, &d, 0)
               : mdb_del(v->txn, v->db->dbi[DB_LEASE_KEYS], &k, NULL);
  if (rc == MDB_NOTFOUND)
    rc = 0;
  return store_mdb_err(rc);
}

/* The revision this request writes at (one per request). */
static int64_t wrev(struct wctx *w) {
  return w->base_rev + 1;
}

static struct store_event *push_event(struct wctx *w) {
  struct store_event *ev = vec_push(&w->events);
  if (ev != NULL)
    memset(ev, 0, sizeof(*ev));
  return ev;
}

/* Fills *prev (arena-owned) from the index entry m of key. */
static int load_prev(struct wctx *w, const uint8_t *key, size_t n,
                     const struct kmeta *m, struct store_kv *prev) {
  struct store_kv rec;
  int type;
  int rc = rec_get(&w->v, m->mod, m->sub, &rec, &type);
  if (rc != 0)
    return rc;
  *prev = rec;
  prev->key = key;
  prev->key_len = n;
  return kv_own(w->a, prev, false);
}

static int do_put(struct wctx *w, const struct store_put_req *p,
                  struct store_put_resp *resp) {
  struct view *v = &w->v;
  struct kmeta old;
  int rc = idx_get(v, p->key, p->key_len, &old);
  bool exists = rc == 0;
  if (rc != 0 && rc != KEEL_ENOTFOUND)
    return rc;
  int64_t rev = wrev(w), sub = w->sub++;
  const uint8_t *val = p->value;
  size_t vlen = p->value_len;
  int64_t lease = p->lease;
  struct store_kv prev = {0};
  if (exists) {
    if ((rc = load_prev(w, p->key, p->key_len, &old, &prev)) != 0)
      return rc;
    if (p->ignore_value) {
      val = prev.value;
      vlen = prev.value_len;
    }
    if (p->ignore_lease)
      lease = old.lease;
  }
  struct kmeta nm = {.create = exists ? old.create : rev,
                     .mod = rev,
                     .sub = sub,
                     .version = exists ? old.version + 1 : 1,
                     .lease = lease};
  uint8_t kb[16];
  revkey(kb, rev, sub);
  MDB_val k = {16, kb}, d = {REC_HDR + p->key_len + vlen, NULL};
  if ((rc = mdb_put(v->txn, v->db->dbi[DB_KV_REV], &k, &d,
                    MDB_APPEND | MDB_RESERVE)) != 0)
    return store_mdb_err(rc);
  uint8_t *r = d.mv_data;
  r[0] = STORE_EVENT_PUT;
  be64_put(r + 1, (uint64_t)nm.create);
  be64_put(r + 9, (uint64_t)nm.version);
  be64_put(r + 17, (uint64_t)nm.lease);
  be32_put(r + 25, (uint32_t)p->key_len);
  memcpy(r + REC_HDR, p->key, p->key_len);
  if (vlen)
    memcpy(r + REC_HDR + p->key_len, val, vlen);
  uint8_t ib[ITEM_LEN];
  item_encode(ib, &nm, false);
  MDB_val kk = {p->key_len, (void *)p->key}, item = {ITEM_LEN, ib};
  if ((rc = mdb_put(v->txn, v->db->dbi[DB_KV_KEY], &kk, &item, 0)) != 0)
    return store_mdb_err(rc);
  int64_t old_lease = exists ? old.lease : 0;
  if (old_lease != lease) {
    if (old_lease &&
        (rc = lease_key_op(v, old_lease, p->key, p->key_len, false)) != 0)
      return rc;
    if (lease && (rc = lease_key_op(v, lease, p->key, p->key_len, true)) != 0)
      return rc;
  }
  struct store_event *ev = push_event(w);
  if (ev == NULL)
    return -ENOMEM;
  ev->type = STORE_EVENT_PUT;
  ev->kv = (struct store_kv){.key = p->key,
                             .key_len = p->key_len,
                             .value = val,
                             .value_len = vlen,
                             .create_revision = nm.create,
                             .mod_revision = rev,
                             .version = nm.version,
                             .lease = lease};
  if ((rc = kv_own(w->a, &ev->kv, false)) != 0)
    return rc;
  if (exists) {
    ev->prev_kv = prev;
    ev->has_prev = 1;
  }
  v->rev = rev;
  if (resp != NULL) {
    resp->revision = rev;
    resp->has_prev = exists && p->prev_kv;
    if (resp->has_prev)
      resp->prev_kv = prev;
  }
  return 0;
}

/* Deletes one live key (m is its index entry). */
static int delete_key(struct wctx *w, const uint8_t *key, size_t n,
                      const struct kmeta *m, struct store_kv *prev_out) {
  struct view *v = &w->v;
  int64_t rev = wrev(w), sub = w->sub++;
  struct store_kv prev;
  int rc = load_prev(w, key, n, m, &prev);
  if (rc != 0)
    return rc;
  const uint8_t *okey = prev.key;
  uint8_t kb[16];
  revkey(kb, rev, sub);
  MDB_val k = {16, kb}, d = {REC_HDR + n, NULL};
  if ((rc = mdb_put(v->txn, v->db->dbi[DB_KV_REV], &k, &d,
                    MDB_APPEND | MDB_RESERVE)) != 0)
    return store_mdb_err(rc);
  uint8_t *r = d.mv_data;
  memset(r, 0, REC_HDR);
  r[0] = STORE_EVENT_DELETE;
  be32_put(r + 25, (uint32_t)n);
  memcpy(r + REC_HDR, okey, n);
  uint8_t ib[ITEM_LEN];
  struct kmeta tm = {.mod = rev, .sub = sub};
  item_encode(ib, &tm, true);
  MDB_val kk = {n, (void *)okey}, item = {ITEM_LEN, ib};
  if ((rc = mdb_put(v->txn, v->db->dbi[DB_KV_KEY], &kk, &item, 0)) != 0)
    return store_mdb_err(rc);
  if (m->lease && (rc = lease_key_op(v, m->lease, okey, n, false)) != 0)
    return rc;
  struct store_event *ev = push_event(w);
  if (ev == NULL)
    return -ENOMEM;
  ev->type = STORE_EVENT_DELETE;
  ev->kv.key = okey;
  ev->kv.key_len = n;
  ev->kv.mod_revision = rev;
  ev->prev_kv = prev;
  ev->has_prev = 1;
  v->rev = rev;
  if (prev_out)
    *prev_out = prev;
  return 0;
}

struct collect_acc {
  struct arena *a;
  struct vec keys; /* struct store_kv: key + meta packed */
  struct vec metas;
};

static int collect_fn(void *arg, const uint8_t *key, size_t key_len,
                      const struct kmeta *m) {
  struct collect_acc *ca = arg;
  struct store_kv *kv = vec_push(&ca->keys);
  struct kmeta *mm = vec_push(&ca->metas);
  if (kv == NULL || mm == NULL)
    return -ENOMEM;
  memset(kv, 0, sizeof(*kv));
  kv->key = arena_dup(ca->a, key, key_len);
  if (kv->key == NULL)
    return -ENOMEM;
  kv->key_len = key_len;
  *mm = *m;
  return 0;
}

static int do_delete(struct wctx *w, const struct store_delete_req *dr,
                     struct store_delete_resp *resp) {
  struct keyrange r;
  keyrange_make(&r, dr->key, dr->key_len, dr->range_end, dr->range_end_len);
  struct collect_acc ca = {.a = w->a};
  ca.keys.elem = sizeof(struct store_kv);
  ca.metas.elem = sizeof(struct kmeta);
  int rc = scan_keys(&w->v, &r, w->v.rev, collect_fn, &ca);
  struct store_kv *keys = ca.keys.p;
  struct kmeta *metas = ca.metas.p;
  size_t n = ca.keys.n;
  if (rc == 0 && resp != NULL) {
    resp->deleted = (int64_t)n;
    if (dr->prev_kv && n > 0) {
      resp->prev_kvs = arena_alloc(w->a, n * sizeof(struct store_kv));
      if (resp->prev_kvs == NULL)
        rc = -ENOMEM;
      else
        resp->n_prev_kvs = n;
    }
  }
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = delete_key(w, keys[i].key, keys[i].key_len, &metas[i],
                    resp && resp->prev_kvs ? &resp->prev_kvs[i] : NULL);
  free(ca.keys.p);
  free(ca.metas.p);
  if (resp != NULL)
    resp->revision = w->v.rev;
  return rc;
}

/* Checks a put against the state before the request (etcd checkPut). */
static int check_put(struct wctx *w, const struct store_put_req *p) {
  if (p->key_len == 0)
    return -EINVAL;
  if (p->key_len > STORE_KEY_MAX || p->value_len > STORE_VALUE_MAX)
    return KEEL_ETOOLARGE;
  if (p->ignore_value && p->value_len > 0)
    return -EINVAL;
  if (p->ignore_lease && p->lease != 0)
    return -EINVAL;
  if (p->ignore_value || p->ignore_lease) {
    struct kmeta m;
    int rc = idx_get(&w->v, p->key, p->key_len, &m);
    if (rc != 0)
      return rc; /* KEEL_ENOTFOUND: etcd's "key not found" */
  }
  if (p->lease != 0) {
    int rc = lease_exists(&w->v, p->lease);
    if (rc < 0)
      return rc;
    if (rc == 0)
      return KEEL_ELEASENOTFOUND;
  }
  return 0;
}

/* --- txn -------------------------------------------------------------------
 */

static bool is_req_err(int rc);

/* The chosen branch of every txn level, decided on the pre-txn state in
 * depth-first order (etcd's compareToPath). */
struct txn_path {
  struct vec choice; /* bool */
};

static int txn_choose(struct wctx *w, const struct store_txn_req *t,
                      struct txn_path *path) {
  bool ok = true;
  for (size_t i = 0; ok && i < t->n_compare; i++) {
    int rc = eval_compare(&w->v, &t->compare[i], &ok);
    if (rc != 0)
      return rc;
  }
  bool *c = vec_push(&path->choice);
  if (c == NULL)
    return -ENOMEM;
  *c = ok;
  const struct store_request_op *ops = ok ? t->success : t->failure;
  size_t n = ok ? t->n_success : t->n_failure;
  for (size_t i = 0; i < n; i++)
    if (ops[i].type == STORE_OP_TXN) {
      int rc = txn_choose(w, ops[i].u.txn, path);
      if (rc != 0)
        return rc;
    }
  return 0;
}

/* Checks the ops of the chosen path before any is run. */
static int txn_check(struct wctx *w, const struct store_txn_req *t,
                     const bool *choice, size_t *pos) {
  bool ok = choice[(*pos)++];
  const struct store_request_op *ops = ok ? t->success : t->failure;
  size_t n = ok ? t->n_success : t->n_failure;
  for (size_t i = 0; i < n; i++) {
    int rc = 0;
    if (ops[i].type == STORE_OP_PUT)
      rc = check_put(w, &ops[i].u.put);
    else if (ops[i].type == STORE_OP_RANGE) {
      int64_t rev = ops[i].u.range.revision;
      if (rev > 0)
        rc = check_rev(&w->v, rev);
    } else if (ops[i].type == STORE_OP_TXN)
      rc = txn_check(w, ops[i].u.txn, choice, pos);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static bool txn_has_put(const struct store_txn_req *t) {
  for (int b = 0; b < 2; b++) {
    const struct store_request_op *ops = b ? t->failure : t->success;
    size_t n = b ? t->n_failure : t->n_success;
    for (size_t i = 0; i < n; i++)
      if (ops[i].type == STORE_OP_PUT ||
          (ops[i].type == STORE_OP_TXN && txn_has_put(ops[i].u.txn)))
        return true;
  }
  return false;
}

static int txn_run(struct wctx *w, const struct store_txn_req *t,
                   const bool *choice, size_t *pos,
                   struct store_txn_resp *resp) {
  bool ok = choice[(*pos)++];
  const struct store_request_op *ops = ok ? t->success : t->failure;
  size_t n = ok ? t->n_success : t->n_failure;
  resp->succeeded = ok;
  resp->n_responses = n;
  resp->responses =
      n ? arena_alloc(w->a, n * sizeof(struct store_response_op)) : NULL;
  if (n && resp->responses == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    struct store_response_op *ro = &resp->responses[i];
    memset(ro, 0, sizeof(*ro));
    ro->type = ops[i].type;
    int rc;
    switch (ops[i].type) {
    case STORE_OP_RANGE:
      rc = range_exec(&w->v, &ops[i].u.range, w->a, &ro->u.range);
      break;
    case STORE_OP_PUT:
      rc = do_put(w, &ops[i].u.put, &ro->u.put);
      break;
    case STORE_OP_DELETE_RANGE:
      rc = do_delete(w, &ops[i].u.delete_range, &ro->u.delete_range);
      break;
    case STORE_OP_TXN:
    default:
      ro->u.txn = arena_alloc(w->a, sizeof(struct store_txn_resp));
      if (ro->u.txn == NULL)
        return -ENOMEM;
      memset(ro->u.txn, 0, sizeof(*ro->u.txn));
      rc = txn_run(w, ops[i].u.txn, choice, pos, ro->u.txn);
      break;
    }
    /* Checked before: only LMDB or memory can fail here. */
    if (rc != 0)
      return rc == KEEL_ECOMPACTED || rc == KEEL_EFUTUREREV ? -EIO : rc;
  }
  resp->revision = w->v.rev;
  return 0;
}

static void fix_txn_revs(struct store_txn_resp *r, int64_t rev) {
  r->revision = rev;
  for (size_t i = 0; i < r->n_responses; i++) {
    struct store_response_op *o = &r->responses[i];
    if (o->type == STORE_OP_PUT)
      o->u.put.revision = rev;
    else if (o->type == STORE_OP_DELETE_RANGE)
      o->u.delete_range.revision = rev;
    else if (o->type == STORE_OP_TXN)
      fix_txn_revs(o->u.txn, rev);
  }
}

/* Returns a request error (> -5100 keel or -errno from validation) in
 * *req_err, or an LMDB/memory error as the return value. */
static int do_txn(struct wctx *w, const struct store_txn_req *t,
                  struct store_txn_resp *resp, int *req_err) {
  int rc = store_txn_validate(t, STORE_APPLY_MAX_TXN_OPS);
  if (rc != 0) {
    *req_err = rc;
    return 0;
  }
  if (w->nospace && txn_has_put(t)) {
    *req_err = KEEL_ENOSPACE;
    return 0;
  }
  struct txn_path path = {0};
  path.choice.elem = sizeof(bool);
  size_t pos = 0;
  rc = txn_choose(w, t, &path);
  if (rc == 0) {
    rc = txn_check(w, t, path.choice.p, &pos);
    if (is_req_err(rc)) {
      *req_err = rc;
      rc = 0;
      goto out;
    }
  }
  if (rc == 0) {
    pos = 0;
    rc = txn_run(w, t, path.choice.p, &pos, resp);
    if (rc == 0)
      fix_txn_revs(resp, w->v.rev);
  }
out:
  free(path.choice.p);
  return rc;
}

/* --- leases -----------------------------------------------------------------
 */

static int lease_put(struct view *v, int64_t id, int64_t ttl, int64_t rem) {
  uint8_t kb[8], vb[16];
  be64_put(kb, (uint64_t)id);
  be64_put(vb, (uint64_t)ttl);
  be64_put(vb + 8, (uint64_t)rem);
  MDB_val k = {8, kb}, d = {16, vb};
  return store_mdb_err(mdb_put(v->txn, v->db->dbi[DB_LEASES], &k, &d, 0));
}

static int do_revoke(struct wctx *w, int64_t id) {
  struct view *v = &w->v;
  int rc = lease_exists(v, id);
  if (rc <= 0)
    return rc < 0 ? rc : KEEL_ELEASENOTFOUND;
  /* Collect the attached keys first (deleting changes lease_keys). */
  struct vec keys = {.elem = sizeof(struct store_kv)};
  MDB_cursor *cur;
  if ((rc = mdb_cursor_open(v->txn, v->db->dbi[DB_LEASE_KEYS], &cur)) != 0)
    return store_mdb_err(rc);
  uint8_t kb[8];
  be64_put(kb, (uint64_t)id);
  MDB_val k = {8, kb}, d;
  int r = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
  while (r == 0 && k.mv_size > 8 && memcmp(k.mv_data, kb, 8) == 0) {
    struct store_kv *kv = vec_push(&keys);
    if (kv == NULL) {
      r = ENOMEM;
      break;
    }
    kv->key_len = k.mv_size - 8;
    kv->key = arena_dup(w->a, (uint8_t *)k.mv_data + 8, kv->key_len);
    if (kv->key == NULL) {
      r = ENOMEM;
      break;
    }
    r = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  rc = r == MDB_NOTFOUND || r == 0 ? 0 : store_mdb_err(r);
  struct store_kv *ks = keys.p;
  for (size_t i = 0; rc == 0 && i < keys.n; i++) {
    struct kmeta m;
    rc = idx_get(v, ks[i].key, ks[i].key_len, &m);
    if (rc == KEEL_ENOTFOUND || (rc == 0 && m.lease != id))
      rc = KEEL_ECORRUPT;
    if (rc == 0)
      rc = delete_key(w, ks[i].key, ks[i].key_len, &m, NULL);
  }
  free(keys.p);
  if (rc != 0)
    return rc;
  MDB_val lk = {8, kb};
  return store_mdb_err(mdb_del(v->txn, v->db->dbi[DB_LEASES], &lk, NULL));
}

/* --- alarms -----------------------------------------------------------------
 */

static int alarms_list(struct wctx *w, struct store_response *resp) {
  struct view *v = &w->v;
  MDB_cursor *cur;
  int rc = mdb_cursor_open(v->txn, v->db->dbi[DB_META], &cur);
  if (rc != 0)
    return store_mdb_err(rc);
  struct store_alarm_member *list =
      arena_alloc(w->a, STORE_MAX_ALARMS * sizeof(*list));
  size_t n = 0;
  MDB_val k = {6, "alarm/"}, d;
  int r = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
  while (list && r == 0 && k.mv_size == 18 &&
         memcmp(k.mv_data, "alarm/", 6) == 0 && n < STORE_MAX_ALARMS) {
    list[n].member_id = be64_get((uint8_t *)k.mv_data + 6);
    list[n].alarm = (enum store_alarm_type)be32_get((uint8_t *)k.mv_data + 14);
    n++;
    r = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (list == NULL)
    return -ENOMEM;
  resp->u.alarm.alarms = list;
  resp->u.alarm.n_alarms = n;
  return r == 0 || r == MDB_NOTFOUND ? 0 : store_mdb_err(r);
}

static int do_alarm(struct wctx *w, const struct store_request *rq,
                    struct store_response *resp, int *req_err) {
  struct view *v = &w->v;
  enum store_alarm_action act = rq->u.alarm.action;
  if (act == STORE_ALARM_GET)
    return alarms_list(w, resp);
  if ((act != STORE_ALARM_ACTIVATE && act != STORE_ALARM_DEACTIVATE) ||
      rq->u.alarm.alarm == STORE_ALARM_NONE ||
      (unsigned)rq->u.alarm.alarm > STORE_ALARM_CORRUPT) {
    *req_err = -EINVAL;
    return 0;
  }
  uint8_t kb[18];
  memcpy(kb, "alarm/", 6);
  be64_put(kb + 6, rq->u.alarm.member_id);
  be32_put(kb + 14, (uint32_t)rq->u.alarm.alarm);
  MDB_val k = {18, kb}, d = {0, NULL};
  int rc;
  if (act == STORE_ALARM_ACTIVATE)
    rc = mdb_put(v->txn, v->db->dbi[DB_META], &k, &d, MDB_NOOVERWRITE);
  else
    rc = mdb_del(v->txn, v->db->dbi[DB_META], &k, NULL);
  bool changed = rc == 0;
  if (rc == MDB_KEYEXIST || rc == MDB_NOTFOUND)
    rc = 0;
  if (rc != 0)
    return store_mdb_err(rc);
  w->alarms_changed = true;
  if (changed) {
    resp->u.alarm.alarms = arena_alloc(w->a, sizeof(struct store_alarm_member));
    if (resp->u.alarm.alarms == NULL)
      return -ENOMEM;
    resp->u.alarm.alarms[0].member_id = rq->u.alarm.member_id;
    resp->u.alarm.alarms[0].alarm = rq->u.alarm.alarm;
    resp->u.alarm.n_alarms = 1;
  }
  /* recompute nospace */
  struct store_cache c;
  if ((rc = store_load_cache(v->db, v->txn, &c)) != 0)
    return rc;
  w->nospace = c.nospace;
  return 0;
}

/* --- compaction ------------------------------------------------------------
 */

/* Compaction has two halves. Applying a compaction request is logical and
 * O(1): it sets compact_rev, after which reads below it fail and every
 * record at or below it that is not the latest state of its key there (or
 * is a tombstone) is garbage. store_compact_step() then deletes garbage in
 * bounded write txns (etcd too compacts in batches after the fact), so one
 * huge compaction never needs one huge txn. Garbage is invisible: reads at
 * revisions >= compact_rev never reach it, and HashKV and snapshot streams
 * skip it, so they do not depend on how far the physical half has gone. */

/* Is the kv_key item (main, sub|tombstone) of key garbage under compact? */
static int item_dead(struct view *v, MDB_cursor *kc, const uint8_t *key,
                     size_t klen, int64_t main, uint64_t sub_flags,
                     bool *dead) {
  *dead = false;
  if (main > v->compact)
    return 0;
  if (sub_flags & REV_TOMBSTONE) {
    *dead = true;
    return 0;
  }
  uint8_t want[16];
  revkey(want, v->compact + 1, 0);
  MDB_val k = {klen, (void *)key}, item = {16, want};
  int g = mdb_cursor_get(kc, &k, &item, MDB_GET_BOTH_RANGE);
  if (g == 0)
    g = mdb_cursor_get(kc, &k, &item, MDB_PREV_DUP);
  else if (g == MDB_NOTFOUND) {
    k.mv_size = klen;
    k.mv_data = (void *)key;
    g = mdb_cursor_get(kc, &k, &item, MDB_SET);
    if (g == 0)
      g = mdb_cursor_get(kc, &k, &item, MDB_LAST_DUP);
  }
  if (g != 0)
    return g == MDB_NOTFOUND ? KEEL_ECORRUPT : store_mdb_err(g);
  *dead = !((int64_t)be64_get(item.mv_data) == main &&
            be64_get((uint8_t *)item.mv_data + 8) == sub_flags);
  return 0;
}

/* Is the kv_rev record (k, d) garbage? */
static int rec_dead(struct view *v, MDB_cursor *kc, const MDB_val *k,
                    const MDB_val *d, bool *dead) {
  *dead = false;
  int64_t main = (int64_t)be64_get(k->mv_data);
  if (main > v->compact)
    return 0;
  struct store_kv kv;
  int type;
  int rc = rec_decode(k, d, &kv, &type);
  if (rc != 0)
    return rc;
  uint64_t sub = be64_get((uint8_t *)k->mv_data + 8);
  if (type == STORE_EVENT_DELETE)
    sub |= REV_TOMBSTONE;
  return item_dead(v, kc, kv.key, kv.key_len, main, sub, dead);
}

int store_kv_item_dead(struct store_db *db, MDB_txn *txn, int64_t compact,
                       MDB_cursor *kc, const MDB_val *k, const MDB_val *item,
                       bool *dead) {
  struct view v = {.db = db, .txn = txn, .compact = compact};
  if (item->mv_size != ITEM_LEN)
    return KEEL_ECORRUPT;
  return item_dead(&v, kc, k->mv_data, k->mv_size,
                   (int64_t)be64_get(item->mv_data),
                   be64_get((uint8_t *)item->mv_data + 8), dead);
}

int store_kv_rec_dead(struct store_db *db, MDB_txn *txn, int64_t compact,
                      MDB_cursor *kc, const MDB_val *k, const MDB_val *d,
                      bool *dead) {
  struct view v = {.db = db, .txn = txn, .compact = compact};
  return rec_dead(&v, kc, k, d, dead);
}

static int compact_step_once(struct store *st, size_t max_records);

int store_compact_step(struct store *st, size_t max_records) {
  int rc = compact_step_once(st, max_records);
  if (rc == KEEL_ENOSPACE && store_grow_map(st) == 0)
    rc = compact_step_once(st, max_records);
  return rc;
}

static int compact_step_once(struct store *st, size_t max_records) {
  if (max_records == 0)
    max_records = 10000;
  struct store_db *db = st->db;
  struct view v = {.db = db};
  int rc = store_mdb_err(mdb_txn_begin(db->env, NULL, 0, &v.txn));
  if (rc != 0)
    return rc;
  uint64_t x, pos_main = 0, pos_sub = 0;
  if ((rc = meta_get_u64(db, v.txn, "compact_rev", &x)) == 0)
    v.compact = (int64_t)x;
  else if (rc != KEEL_ENOTFOUND)
    goto fail;
  MDB_val pk = {8, "phys_pos"}, pd;
  int g = mdb_get(v.txn, db->dbi[DB_META], &pk, &pd);
  if (g == 0 && pd.mv_size == 16) {
    pos_main = be64_get(pd.mv_data);
    pos_sub = be64_get((uint8_t *)pd.mv_data + 8);
  } else if (g == MDB_NOTFOUND) {
    pos_main = (uint64_t)v.compact + 1; /* never compacted */
  }
  if ((int64_t)pos_main > v.compact) {
    mdb_txn_abort(v.txn);
    return 0; /* nothing left */
  }
  MDB_cursor *rcur, *kc;
  if ((g = mdb_cursor_open(v.txn, db->dbi[DB_KV_REV], &rcur)) != 0) {
    rc = store_mdb_err(g);
    goto fail;
  }
  if ((g = mdb_cursor_open(v.txn, db->dbi[DB_KV_KEY], &kc)) != 0) {
    mdb_cursor_close(rcur);
    rc = store_mdb_err(g);
    goto fail;
  }
  uint8_t pos[16];
  be64_put(pos, pos_main);
  be64_put(pos + 8, pos_sub);
  MDB_val k = {16, pos}, d;
  size_t seen = 0;
  rc = 0;
  bool more = false;
  g = mdb_cursor_get(rcur, &k, &d, MDB_SET_RANGE);
  while (g == 0) {
    if (k.mv_size != 16) {
      rc = KEEL_ECORRUPT;
      break;
    }
    if ((int64_t)be64_get(k.mv_data) > v.compact)
      break;
    memcpy(pos, k.mv_data, 16);
    if (seen == max_records) {
      more = true; /* pos: the first record not examined */
      break;
    }
    seen++;
    bool dead;
    if ((rc = rec_dead(&v, kc, &k, &d, &dead)) != 0)
      break;
    if (dead) {
      struct store_kv kv;
      int type;
      if ((rc = rec_decode(&k, &d, &kv, &type)) != 0)
        break;
      uint8_t it[16], keycopy[STORE_KEY_MAX];
      if (kv.key_len > STORE_KEY_MAX) {
        rc = KEEL_ECORRUPT;
        break;
      }
      memcpy(it, pos, 16);
      if (type == STORE_EVENT_DELETE)
        be64_put(it + 8, be64_get(pos + 8) | REV_TOMBSTONE);
      memcpy(keycopy, kv.key, kv.key_len);
      /* the item starts with (main, sub|tombstone): find it, delete it */
      MDB_val kk = {kv.key_len, keycopy}, iv = {16, it}, rk = {16, pos};
      g = mdb_cursor_get(kc, &kk, &iv, MDB_GET_BOTH_RANGE);
      if (g == 0 && (iv.mv_size != ITEM_LEN || memcmp(iv.mv_data, it, 16)))
        g = MDB_CORRUPTED;
      if (g == 0)
        g = mdb_cursor_del(kc, 0);
      if (g == 0)
        g = mdb_del(v.txn, db->dbi[DB_KV_REV], &rk, NULL);
      if (g != 0) {
        rc = g == MDB_NOTFOUND ? KEEL_ECORRUPT : store_mdb_err(g);
        break;
      }
    }
    /* continue after pos (reposition: deletes move the cursor) */
    be64_put(pos + 8, be64_get(pos + 8) + 1);
    k.mv_size = 16;
    k.mv_data = pos;
    g = mdb_cursor_get(rcur, &k, &d, MDB_SET_RANGE);
  }
  mdb_cursor_close(rcur);
  mdb_cursor_close(kc);
  if (rc == 0 && g != 0 && g != MDB_NOTFOUND)
    rc = store_mdb_err(g);
  if (rc != 0)
    goto fail;
  if (!more) {
    be64_put(pos, (uint64_t)v.compact + 1);
    be64_put(pos + 8, 0);
  }
  MDB_val nd = {16, pos};
  if ((g = mdb_put(v.txn, db->dbi[DB_META], &pk, &nd, 0)) != 0) {
    rc = store_mdb_err(g);
    goto fail;
  }
  /* redone after a crash if lost: sync like an apply commit */
  unsigned relax = st->opts.apply_nosync ? MDB_NOSYNC : MDB_NOMETASYNC;
  mdb_env_set_flags(db->env, relax, 1);
  g = mdb_txn_commit(v.txn);
  mdb_env_set_flags(db->env, relax, 0);
  if (g != 0)
    return store_mdb_err(g);
  return more ? 1 : 0;
fail:
  mdb_txn_abort(v.txn);
  return rc;
}

/* The logical half, at apply: O(1). */
static int do_compact(struct wctx *w, int64_t rev) {
  struct view *v = &w->v;
  w->v.compact = rev;
  w->compacted = true;
  /* the physical half restarts from the beginning: survivors of earlier
   * compactions may be garbage now */
  uint8_t zero[16] = {0};
  MDB_val pk = {8, "phys_pos"}, pd = {16, zero};
  int rc = mdb_put(v->txn, v->db->dbi[DB_META], &pk, &pd, 0);
  if (rc != 0)
    return store_mdb_err(rc);
  return meta_put_u64(v->db, v->txn, "compact_rev", (uint64_t)rev);
}

/* --- apply -------------------------------------------------------------------
 */

/* Errors of LMDB or memory: they abort the batch. Any other error is the
 * request's own. */
static bool is_fault(int rc) {
  return rc == -ENOMEM || rc == -EIO || rc == KEEL_ECORRUPT ||
         rc == KEEL_ENOSPACE || rc == KEEL_EBUSY || rc == -ENOSPC;
}
static bool is_req_err(int rc) {
  return rc != 0 && !is_fault(rc);
}

/* Applies one request; a request error goes into resp->error and leaves the
 * state as it was (everything is checked before writing). */
static int apply_one(struct wctx *w, const struct store_request *rq,
                     struct store_response *resp) {
  int rc = 0, req_err = 0;
  size_t ev_mark = w->events.n;
  w->base_rev = w->v.rev;
  w->sub = 0;
  switch (rq->type) {
  case STORE_REQ_NOOP:
    break;
  case STORE_REQ_PUT:
    req_err = w->nospace ? KEEL_ENOSPACE : check_put(w, &rq->u.put);
    if (req_err == 0)
      rc = do_put(w, &rq->u.put, &resp->u.put);
    break;
  case STORE_REQ_DELETE_RANGE:
    if (rq->u.delete_range.key_len == 0)
      req_err = -EINVAL;
    else if (rq->u.delete_range.key_len > STORE_KEY_MAX)
      req_err = KEEL_ETOOLARGE;
    else
      rc = do_delete(w, &rq->u.delete_range, &resp->u.delete_range);
    break;
  case STORE_REQ_TXN:
    rc = do_txn(w, &rq->u.txn, &resp->u.txn, &req_err);
    break;
  case STORE_REQ_COMPACTION: {
    int64_t r = rq->u.compaction.revision;
    if (r <= w->v.compact)
      req_err = KEEL_ECOMPACTED;
    else if (r > w->v.rev)
      req_err = KEEL_EFUTUREREV;
    else
      rc = do_compact(w, r);
    break;
  }
  case STORE_REQ_LEASE_GRANT: {
    int64_t id = rq->u.lease_grant.id, ttl = rq->u.lease_grant.ttl;
    if (w->nospace)
      req_err = KEEL_ENOSPACE;
    else if (id <= 0 || ttl <= 0)
      req_err = -EINVAL;
    else if (ttl > 9000000000ll)
      req_err = KEEL_ETOOLARGE;
    else if ((rc = lease_exists(&w->v, id)) == 1) {
      rc = 0;
      req_err = KEEL_ELEASEEXISTS;
    } else if (rc == 0) {
      rc = lease_put(&w->v, id, ttl, 0);
      resp->u.lease_grant.id = id;
      resp->u.lease_grant.ttl = ttl;
    }
    break;
  }
  case STORE_REQ_LEASE_REVOKE:
  case STORE_REQ_LEASE_EXPIRE:
    rc = do_revoke(w, rq->u.lease_revoke.id);
    if (rc == KEEL_ELEASENOTFOUND) {
      req_err = rc;
      rc = 0;
    }
    break;
  case STORE_REQ_LEASE_CHECKPOINT: {
    int64_t id = rq->u.lease_checkpoint.id;
    uint8_t kb[8];
    be64_put(kb, (uint64_t)id);
    MDB_val k = {8, kb}, d;
    int g = mdb_get(w->v.txn, w->v.db->dbi[DB_LEASES], &k, &d);
    if (g == MDB_NOTFOUND)
      req_err = KEEL_ELEASENOTFOUND;
    else if (g != 0)
      rc = store_mdb_err(g);
    else if (d.mv_size != 16)
      rc = KEEL_ECORRUPT;
    else
      rc = lease_put(&w->v, id, (int64_t)be64_get(d.mv_data),
                     rq->u.lease_checkpoint.remaining_ttl);
    break;
  }
  case STORE_REQ_ALARM:
    rc = do_alarm(w, rq, resp, &req_err);
    break;
  default:
    req_err = -EINVAL;
  }
  if (rc != 0 && is_req_err(rc) && w->events.n == ev_mark &&
      w->v.rev == w->base_rev) {
    /* a request error found before anything was written */
    req_err = rc;
    rc = 0;
  }
  if (rc != 0)
    return rc;
  if (req_err != 0) {
    assert(w->events.n == ev_mark && w->v.rev == w->base_rev);
    int64_t rev = w->v.rev;
    memset(resp, 0, sizeof(*resp));
    resp->error = req_err;
    resp->revision = rev;
    return 0;
  }
  resp->revision = w->v.rev;
  return 0;
}

static int apply_once(struct store *st, const struct store_apply_batch *batch,
                      struct store_apply_result *out);

int store_apply(struct store *st, const struct store_apply_batch *batch,
                struct store_apply_result *out) {
  int rc = apply_once(st, batch, out);
  if (rc == KEEL_ENOSPACE && store_grow_map(st) == 0)
    rc = apply_once(st, batch, out);
  return rc;
}

static int apply_once(struct store *st, const struct store_apply_batch *batch,
                      struct store_apply_result *out) {
  memset(out, 0, sizeof(*out));
  struct store_cache c = st->cache;
  size_t i0 = 0;
  while (i0 < batch->n && batch->entries[i0].index <= c.applied_index)
    i0++;
  for (size_t i = i0; i < batch->n; i++) {
    uint64_t want =
        i == i0 ? c.applied_index + 1 : batch->entries[i - 1].index + 1;
    if (batch->entries[i].index != want)
      return -EINVAL;
  }
  struct arena a = {0};
  struct wctx w = {.st = st, .a = &a, .nospace = c.nospace};
  w.events.elem = sizeof(struct store_event);
  w.v.db = st->db;
  w.v.rev = c.revision;
  w.v.compact = c.compact_rev;
  out->responses =
      batch->n ? arena_alloc(&a, batch->n * sizeof(struct store_response))
               : NULL;
  if (batch->n && out->responses == NULL)
    return -ENOMEM;
  memset(out->responses, 0, batch->n * sizeof(struct store_response));
  int rc = store_mdb_err(mdb_txn_begin(st->db->env, NULL, 0, &w.v.txn));
  if (rc != 0) {
    arena_free_chain(a.head);
    memset(out, 0, sizeof(*out));
    return rc;
  }
  uint64_t applied = c.applied_index, term = c.applied_term;
  bool appended = batch->n_append > 0 || batch->hard_state != NULL;
  uint64_t log_last = 0;
  if (appended &&
      (rc = store_log_append_txn(st, w.v.txn, batch->append, batch->n_append,
                                 batch->hard_state, &log_last)) != 0)
    goto fail;
  for (size_t i = 0; i < batch->n; i++) {
    struct store_response *resp = &out->responses[i];
    if (i < i0) {
      resp->error = KEEL_EEXIST; /* applied before */
      resp->revision = w.v.rev;
      continue;
    }
    const struct store_request *rq = batch->entries[i].req;
    if (rq != NULL && (rc = apply_one(&w, rq, resp)) != 0)
      goto fail;
    if (rq == NULL)
      resp->revision = w.v.rev;
    applied = batch->entries[i].index;
    term = batch->entries[i].term;
  }
  struct store_db *db = st->db;
  if (batch->conf != NULL) {
    uint8_t b[CONF_ENC_MAX];
    size_t n = conf_encode(batch->conf, b);
    MDB_val k = {4, "conf"}, d = {n, b};
    if ((rc = store_mdb_err(mdb_put(w.v.txn, db->dbi[DB_META], &k, &d, 0))))
      goto fail;
  }
  for (size_t i = 0; i < batch->n_meta; i++) {
    char kb[300];
    int kn = snprintf(kb, sizeof(kb), "x/%s", batch->meta[i].name);
    if (kn < 0 || (size_t)kn >= sizeof(kb) || batch->meta[i].len > 65536) {
      rc = -EINVAL;
      goto fail;
    }
    MDB_val k = {(size_t)kn, kb},
            d = {batch->meta[i].len, (void *)batch->meta[i].value};
    if ((rc = store_mdb_err(mdb_put(w.v.txn, db->dbi[DB_META], &k, &d, 0))))
      goto fail;
  }
  if ((rc = meta_put_u64(db, w.v.txn, "applied_index", applied)) != 0 ||
      (rc = meta_put_u64(db, w.v.txn, "applied_term", term)) != 0 ||
      (rc = meta_put_u64(db, w.v.txn, "revision", (uint64_t)w.v.rev)) != 0)
    goto fail;
  /* An apply commit is redone from the log if lost, so it needs integrity
   * but not durability: MDB_NOMETASYNC skips the second fsync (of the meta
   * page; the next synced commit flushes it) and keeps the file consistent
   * after a machine crash. apply_nosync drops the data fsync too. */
  unsigned relax = st->opts.apply_nosync ? MDB_NOSYNC : MDB_NOMETASYNC;
  if (appended)
    relax = 0; /* the log append must be durable: full sync */
  if (relax)
    mdb_env_set_flags(db->env, relax, 1);
  rc = mdb_txn_commit(w.v.txn);
  if (relax)
    mdb_env_set_flags(db->env, relax, 0);
  w.v.txn = NULL;
  if (rc != 0) {
    rc = store_mdb_err(rc);
    goto fail;
  }
  if (appended)
    store_log_appended(st, log_last, batch->hard_state);
  pthread_mutex_lock(&st->mu);
  st->cache.applied_index = applied;
  st->cache.applied_term = term;
  st->cache.revision = w.v.rev;
  st->cache.compact_rev = w.v.compact;
  st->cache.nospace = w.nospace;
  pthread_mutex_unlock(&st->mu);
  out->n_responses = batch->n;
  out->revision = w.v.rev;
  if (w.events.n) {
    out->events = arena_dup(&a, w.events.p, w.events.n * w.events.elem);
    if (out->events == NULL) {
      /* applied, but the events cannot be returned: report no memory and
       * keep the result usable (the hub resyncs from history) */
      out->n_events = 0;
    } else {
      out->n_events = w.events.n;
    }
  }
  free(w.events.p);
  out->mem = a.head;
  return 0;
fail:
  if (w.v.txn)
    mdb_txn_abort(w.v.txn);
  free(w.events.p);
  arena_free_chain(a.head);
  memset(out, 0, sizeof(*out));
  return rc;
}

void store_apply_result_free(struct store_apply_result *r) {
  if (r == NULL)
    return;
  arena_free_chain(r->mem);
  memset(r, 0, sizeof(*r));
}

/* --- reads
 * ---------------------------------------------------------------------- */

/* A read view: the revisions are read from the txn itself so they match the
 * data it sees. */
static int view_begin(struct store *st, struct view *v) {
  int rc = store_read_begin(st, &v->db, &v->txn);
  if (rc != 0)
    return rc;
  uint64_t x;
  v->rev = 1;
  v->compact = 0;
  if ((rc = meta_get_u64(v->db, v->txn, "revision", &x)) == 0)
    v->rev = (int64_t)x;
  else if (rc != KEEL_ENOTFOUND)
    goto fail;
  if ((rc = meta_get_u64(v->db, v->txn, "compact_rev", &x)) == 0)
    v->compact = (int64_t)x;
  else if (rc != KEEL_ENOTFOUND)
    goto fail;
  return 0;
fail:
  store_read_end(st, v->db, v->txn);
  return rc;
}

int store_range(struct store *st, const struct store_range_req *req,
                struct store_range_result *out) {
  memset(out, 0, sizeof(*out));
  struct view v;
  int rc = view_begin(st, &v);
  if (rc != 0)
    return rc;
  struct arena a = {0};
  rc = range_exec(&v, req, &a, &out->resp);
  store_read_end(st, v.db, v.txn);
  if (rc != 0) {
    arena_free_chain(a.head);
    memset(out, 0, sizeof(*out));
    return rc;
  }
  out->mem = a.head;
  return 0;
}

void store_range_result_free(struct store_range_result *r) {
  if (r == NULL)
    return;
  arena_free_chain(r->mem);
  memset(r, 0, sizeof(*r));
}

/* The key's state just before (main, sub): prev of a history event. */
static int history_prev(struct view *v, MDB_cursor *kc,
                        const struct store_kv *kv, int64_t main, uint64_t sub,
                        struct arena *a, struct store_kv *prev, int *has) {
  *has = 0;
  uint8_t it[16];
  revkey(it, main, 0);
  be64_put(it + 8, sub);
  MDB_val key = {kv->key_len, (void *)kv->key}, item = {16, it};
  int g = mdb_cursor_get(kc, &key, &item, MDB_GET_BOTH_RANGE);
  if (g == MDB_NOTFOUND)
    return 0;
  if (g == 0)
    g = mdb_cursor_get(kc, &key, &item, MDB_PREV_DUP);
  if (g == MDB_NOTFOUND)
    return 0;
  if (g != 0)
    return store_mdb_err(g);
  uint64_t psub = be64_get((uint8_t *)item.mv_data + 8);
  if (psub & REV_TOMBSTONE)
    return 0;
  int type;
  int rc =
      rec_get(v, (int64_t)be64_get(item.mv_data), (int64_t)psub, prev, &type);
  if (rc != 0)
    return rc;
  *has = 1;
  return kv_own(a, prev, false);
}

int store_history_read(struct store *st, const uint8_t *key, size_t key_len,
                       const uint8_t *range_end, size_t range_end_len,
                       int64_t from_rev, int64_t to_rev, size_t max_events,
                       size_t max_bytes, bool with_prev,
                       struct store_history *out) {
  memset(out, 0, sizeof(*out));
  if (key_len == 0 || from_rev <= 0 || max_events == 0)
    return -EINVAL;
  struct view v;
  int rc = view_begin(st, &v);
  if (rc != 0)
    return rc;
  int64_t end = to_rev <= 0 ? v.rev + 1 : to_rev;
  if (from_rev <= v.compact) {
    store_read_end(st, v.db, v.txn);
    return KEEL_ECOMPACTED;
  }
  if (from_rev > v.rev + 1) {
    store_read_end(st, v.db, v.txn);
    return KEEL_EFUTUREREV;
  }
  struct keyrange r;
  keyrange_make(&r, key, key_len, range_end, range_end_len);
  struct arena a = {0};
  struct vec evs = {.elem = sizeof(struct store_event)};
  MDB_cursor *cur = NULL, *kc = NULL;
  if ((rc = mdb_cursor_open(v.txn, v.db->dbi[DB_KV_REV], &cur)) != 0 ||
      (rc = mdb_cursor_open(v.txn, v.db->dbi[DB_KV_KEY], &kc)) != 0) {
    rc = store_mdb_err(rc);
    goto done;
  }
  /* Scanned records are bounded too, so a rarely matching watcher does not
   * hold the caller for the whole history. */
  size_t scan_max = max_events * 16 + 4096, scanned = 0, bytes = 0;
  uint8_t kb[16];
  revkey(kb, from_rev, 0);
  MDB_val k = {16, kb}, d;
  int64_t next = end, last_main = 0;
  int g = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
  while (g == 0) {
    if (k.mv_size != 16) {
      rc = KEEL_ECORRUPT;
      goto done;
    }
    int64_t main = (int64_t)be64_get(k.mv_data);
    if (main >= end)
      break;
    if (main != last_main &&
        (evs.n >= max_events || bytes >= max_bytes || scanned >= scan_max)) {
      next = main;
      break;
    }
    last_main = main;
    scanned++;
    struct store_kv kv;
    int type;
    if ((rc = rec_decode(&k, &d, &kv, &type)) != 0)
      goto done;
    if (bytes_cmp(kv.key, kv.key_len, r.key, r.key_len) >= 0 &&
        keyrange_below_end(&r, kv.key, kv.key_len)) {
      struct store_event *ev = vec_push(&evs);
      if (ev == NULL) {
        rc = -ENOMEM;
        goto done;
      }
      memset(ev, 0, sizeof(*ev));
      ev->type =
          type == STORE_EVENT_DELETE ? STORE_EVENT_DELETE : STORE_EVENT_PUT;
      ev->kv = kv;
      if (with_prev &&
          (rc = history_prev(
               &v, kc, &kv, main,
               be64_get((uint8_t *)k.mv_data + 8) |
                   (type == STORE_EVENT_DELETE ? REV_TOMBSTONE : 0),
               &a, &ev->prev_kv, &ev->has_prev)) != 0)
        goto done;
      if ((rc = kv_own(&a, &ev->kv, false)) != 0)
        goto done;
      bytes += kv.key_len + kv.value_len;
      if (ev->has_prev)
        bytes += ev->prev_kv.key_len + ev->prev_kv.value_len;
    }
    g = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  if (g != 0 && g != MDB_NOTFOUND) {
    rc = store_mdb_err(g);
    goto done;
  }
  if (evs.n) {
    out->events = arena_dup(&a, evs.p, evs.n * evs.elem);
    if (out->events == NULL) {
      rc = -ENOMEM;
      goto done;
    }
  }
  out->n_events = evs.n;
  out->next_rev = next;
  out->mem = a.head;
  a.head = NULL;
  rc = 0;
done:
  if (cur)
    mdb_cursor_close(cur);
  if (kc)
    mdb_cursor_close(kc);
  store_read_end(st, v.db, v.txn);
  free(evs.p);
  arena_free_chain(a.head);
  if (rc != 0)
    memset(out, 0, sizeof(*out));
  return rc;
}

void store_history_free(struct store_history *h) {
  if (h == NULL)
    return;
  arena_free_chain(h->mem);
  memset(h, 0, sizeof(*h));
}

int store_hash_kv(struct store *st, int64_t revision, uint32_t *hash,
                  int64_t *compact_revision, int64_t *current_revision) {
  struct view v;
  int rc = view_begin(st, &v);
  if (rc != 0)
    return rc;
  int64_t rev = revision <= 0 ? v.rev : revision;
  if ((rc = check_rev(&v, rev)) != 0) {
    store_read_end(st, v.db, v.txn);
    return rc;
  }
  uint8_t b[8];
  be64_put(b, (uint64_t)v.compact);
  uint32_t h = store_crc32c(0, b, 8);
  MDB_cursor *cur;
  if ((rc = mdb_cursor_open(v.txn, v.db->dbi[DB_KV_REV], &cur)) != 0) {
    store_read_end(st, v.db, v.txn);
    return store_mdb_err(rc);
  }
  MDB_cursor *kc;
  if ((rc = mdb_cursor_open(v.txn, v.db->dbi[DB_KV_KEY], &kc)) != 0) {
    mdb_cursor_close(cur);
    store_read_end(st, v.db, v.txn);
    return store_mdb_err(rc);
  }
  MDB_val k, d;
  int g = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
  while (g == 0 && k.mv_size == 16 && (int64_t)be64_get(k.mv_data) <= rev) {
    bool dead;
    if ((rc = rec_dead(&v, kc, &k, &d, &dead)) != 0)
      break;
    if (!dead) {
      h = store_crc32c(h, k.mv_data, 16);
      h = store_crc32c(h, d.mv_data, d.mv_size);
    }
    g = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  mdb_cursor_close(kc);
  mdb_cursor_close(cur);
  store_read_end(st, v.db, v.txn);
  if (rc != 0)
    return rc;
  if (g != 0 && g != MDB_NOTFOUND)
    return store_mdb_err(g);
  *hash = h;
  if (compact_revision)
    *compact_revision = v.compact;
  if (current_revision)
    *current_revision = v.rev;
  return 0;
}

/* --- lease reads
 * ------------------------------------------------------------------ */

int store_lease_get(struct store *st, int64_t id, struct store_lease_info *info,
                    struct store_lease_keys *keys) {
  if (keys)
    memset(keys, 0, sizeof(*keys));
  struct store_db *db;
  MDB_txn *txn;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  uint8_t kb[8];
  be64_put(kb, (uint64_t)id);
  MDB_val k = {8, kb}, d;
  rc = mdb_get(txn, db->dbi[DB_LEASES], &k, &d);
  if (rc == MDB_NOTFOUND) {
    rc = KEEL_ELEASENOTFOUND;
    goto done;
  }
  if (rc != 0 || d.mv_size != 16) {
    rc = rc ? store_mdb_err(rc) : KEEL_ECORRUPT;
    goto done;
  }
  info->id = id;
  info->granted_ttl = (int64_t)be64_get(d.mv_data);
  info->remaining_ttl = (int64_t)be64_get((uint8_t *)d.mv_data + 8);
  if (keys != NULL) {
    struct arena a = {0};
    struct vec v = {.elem = sizeof(struct store_kv)};
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, db->dbi[DB_LEASE_KEYS], &cur)) != 0) {
      rc = store_mdb_err(rc);
      goto done;
    }
    int g = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    while (g == 0 && k.mv_size > 8 && memcmp(k.mv_data, kb, 8) == 0) {
      struct store_kv *kv = vec_push(&v);
      if (kv == NULL) {
        g = ENOMEM;
        break;
      }
      memset(kv, 0, sizeof(*kv));
      kv->key_len = k.mv_size - 8;
      kv->key = arena_dup(&a, (uint8_t *)k.mv_data + 8, kv->key_len);
      if (kv->key == NULL) {
        g = ENOMEM;
        break;
      }
      g = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (g == 0 || g == MDB_NOTFOUND) {
      keys->keys = v.n ? arena_dup(&a, v.p, v.n * v.elem) : NULL;
      keys->n = v.n;
      keys->mem = a.head;
      rc = v.n && keys->keys == NULL ? -ENOMEM : 0;
    } else {
      rc = store_mdb_err(g);
      arena_free_chain(a.head);
    }
    free(v.p);
    if (rc != 0) {
      arena_free_chain(keys->mem);
      memset(keys, 0, sizeof(*keys));
    }
  }
done:
  store_read_end(st, db, txn);
  return rc;
}

void store_lease_keys_free(struct store_lease_keys *k) {
  if (k == NULL)
    return;
  arena_free_chain(k->mem);
  memset(k, 0, sizeof(*k));
}

int store_lease_list(struct store *st, struct store_lease_info **out,
                     size_t *n) {
  *out = NULL;
  *n = 0;
  struct store_db *db;
  MDB_txn *txn;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  struct vec v = {.elem = sizeof(struct store_lease_info)};
  MDB_cursor *cur;
  if ((rc = mdb_cursor_open(txn, db->dbi[DB_LEASES], &cur)) != 0) {
    store_read_end(st, db, txn);
    return store_mdb_err(rc);
  }
  MDB_val k, d;
  int g = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
  while (g == 0) {
    if (k.mv_size != 8 || d.mv_size != 16) {
      g = MDB_CORRUPTED;
      break;
    }
    struct store_lease_info *li = vec_push(&v);
    if (li == NULL) {
      g = ENOMEM;
      break;
    }
    li->id = (int64_t)be64_get(k.mv_data);
    li->granted_ttl = (int64_t)be64_get(d.mv_data);
    li->remaining_ttl = (int64_t)be64_get((uint8_t *)d.mv_data + 8);
    g = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  store_read_end(st, db, txn);
  if (g != 0 && g != MDB_NOTFOUND) {
    free(v.p);
    return store_mdb_err(g);
  }
  *out = v.p;
  *n = v.n;
  return 0;
}

/* --- verify
 * ------------------------------------------------------------------- */

#define VERIFY(cond, what)                                                     \
  do {                                                                         \
    if (!(cond)) {                                                             \
      keel_logkv(KEEL_LOG_ERROR, "store", "store verify failed",               \
                 "invariant=\"%s\"", what);                                    \
      rc = KEEL_ECORRUPT;                                                      \
      goto done;                                                               \
    }                                                                          \
  } while (0)

int store_verify_db(struct store_db *db, MDB_txn *txn) {
  struct view v = {.db = db, .txn = txn, .rev = 1};
  uint64_t x;
  int rc = meta_get_u64(db, txn, "revision", &x);
  if (rc == 0)
    v.rev = (int64_t)x;
  else if (rc != KEEL_ENOTFOUND)
    return rc;
  rc = meta_get_u64(db, txn, "compact_rev", &x);
  if (rc == 0)
    v.compact = (int64_t)x;
  else if (rc != KEEL_ENOTFOUND)
    return rc;
  MDB_cursor *kc = NULL, *rcur = NULL, *lc = NULL;
  MDB_val k, d, item;
  int g;
  uint64_t items = 0, records = 0;
  if (mdb_cursor_open(v.txn, v.db->dbi[DB_KV_KEY], &kc) != 0 ||
      mdb_cursor_open(v.txn, v.db->dbi[DB_KV_REV], &rcur) != 0 ||
      mdb_cursor_open(v.txn, v.db->dbi[DB_LEASE_KEYS], &lc) != 0) {
    rc = -EIO;
    goto done;
  }
  /* 1. every item has its record; a key's items rise; a live last item
   * has its lease attachment */
  int64_t prev_main = 0;
  for (g = mdb_cursor_get(kc, &k, &item, MDB_FIRST); g == 0;
       g = mdb_cursor_get(kc, &k, &item, MDB_NEXT)) {
    VERIFY(item.mv_size == ITEM_LEN, "kv_key item size");
    items++;
    struct kmeta m;
    bool tomb = item_decode(item.mv_data, &m);
    struct store_kv kv;
    int type;
    VERIFY(rec_get(&v, m.mod, m.sub, &kv, &type) == 0,
           "kv_key item has a record");
    VERIFY((type == STORE_EVENT_DELETE) == tomb &&
               bytes_cmp(kv.key, kv.key_len, k.mv_data, k.mv_size) == 0,
           "record matches kv_key item");
    if (!tomb)
      VERIFY(kv.create_revision == m.create && kv.version == m.version &&
                 kv.lease == m.lease && m.create <= m.mod && m.version >= 1,
             "record matches the item's state");
    VERIFY(m.mod <= v.rev, "revision <= current");
    MDB_val k2 = k, it2;
    bool last = mdb_cursor_get(kc, &k2, &it2, MDB_NEXT_DUP) == MDB_NOTFOUND;
    if (!last) {
      mdb_cursor_get(kc, &k2, &it2, MDB_PREV_DUP);
      VERIFY((int64_t)be64_get(it2.mv_data) == m.mod, "cursor back");
    }
    VERIFY(m.mod > prev_main, "a key's revisions rise");
    prev_main = last ? 0 : m.mod;
    if (last && !tomb && m.lease != 0) {
      VERIFY(lease_exists(&v, m.lease) == 1, "attached lease exists");
      uint8_t lk[8 + STORE_KEY_MAX];
      VERIFY(k.mv_size <= STORE_KEY_MAX, "key size");
      be64_put(lk, (uint64_t)m.lease);
      memcpy(lk + 8, k.mv_data, k.mv_size);
      MDB_val lkv = {8 + k.mv_size, lk}, ld;
      VERIFY(mdb_get(v.txn, v.db->dbi[DB_LEASE_KEYS], &lkv, &ld) == 0,
             "lease_keys holds the attachment");
    }
  }
  VERIFY(g == MDB_NOTFOUND, "kv_key readable");
  /* 2. as many records as items */
  for (g = mdb_cursor_get(rcur, &k, &d, MDB_FIRST); g == 0;
       g = mdb_cursor_get(rcur, &k, &d, MDB_NEXT)) {
    VERIFY(k.mv_size == 16 && (int64_t)be64_get(k.mv_data) <= v.rev,
           "record revision <= current");
    records++;
  }
  VERIFY(records == items, "kv_rev and kv_key agree");
  /* 3. every attachment is the key's lease */
  for (g = mdb_cursor_get(lc, &k, &d, MDB_FIRST); g == 0;
       g = mdb_cursor_get(lc, &k, &d, MDB_NEXT)) {
    VERIFY(k.mv_size > 8, "lease_keys entry");
    struct kmeta m;
    VERIFY(idx_get(&v, (uint8_t *)k.mv_data + 8, k.mv_size - 8, &m) == 0 &&
               m.lease == (int64_t)be64_get(k.mv_data),
           "attachment matches the key's lease");
  }
  rc = 0;
done:
  if (kc)
    mdb_cursor_close(kc);
  if (rcur)
    mdb_cursor_close(rcur);
  if (lc)
    mdb_cursor_close(lc);
  return rc;
}

int store_verify(struct store *st) {
  struct store_db *db;
  MDB_txn *txn;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  rc = store_verify_db(db, txn);
  store_read_end(st, db, txn);
  return rc;
}

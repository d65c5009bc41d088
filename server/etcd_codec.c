/* etcd_codec.c — etcd's error table, v3rpc request validation, protobuf <->
 * store struct translation and response encoding (see etcd_codec.h).
 *
 * Invariants:
 * - Validation follows etcd's key.go in rule order, so the first error a
 *   client sees is etcd's; keel's own limits come after etcd's rules.
 * - Response builders never copy keys or values: the protobuf structs point
 *   into the store's result, allocated from one arena per reply and packed
 *   before the reply returns, so nothing outlives the call but the buffer.
 */
#include "etcd_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "keel_grpc_wire.h"

/* ------------------------------------------------------------------ */
/* Error table                                                         */
/* ------------------------------------------------------------------ */

/* etcd's rpctypes/error.go; keel's own texts are marked. */
static const struct etcd_status error_table[] = {
    {KEEL_EEMPTYKEY, KEEL_GRPC_INVALID_ARGUMENT,
     "etcdserver: key is not provided"},
    {KEEL_EKEYNOTFOUND, KEEL_GRPC_INVALID_ARGUMENT,
     "etcdserver: key not found"},
    {KEEL_EVALUEPROVIDED, KEEL_GRPC_INVALID_ARGUMENT,
     "etcdserver: value is provided"},
    {KEEL_ELEASEPROVIDED, KEEL_GRPC_INVALID_ARGUMENT,
     "etcdserver: lease is provided"},
    {KEEL_ETOOMANYOPS, KEEL_GRPC_INVALID_ARGUMENT,
     "etcdserver: too many operations in txn request"},
    {KEEL_EDUPKEY, KEEL_GRPC_INVALID_ARGUMENT,
     "etcdserver: duplicate key given in txn request"},
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
    {KEEL_ETOOLARGE, KEEL_GRPC_INVALID_ARGUMENT,
     "etcdserver: request is too large"},
    {KEEL_EBUSY, KEEL_GRPC_RESOURCE_EXHAUSTED, "etcdserver: too many requests"},
    {KEEL_ENOLEADER, KEEL_GRPC_UNAVAILABLE, "etcdserver: no leader"},
    {KEEL_ENOTLEADER, KEEL_GRPC_FAILED_PRECONDITION, "etcdserver: not leader"},
    /* a leader change lost the proposal: etcd's "leader changed" */
    {KEEL_ESTEPPEDDOWN, KEEL_GRPC_UNAVAILABLE, "etcdserver: leader changed"},
    {KEEL_EDROPPED, KEEL_GRPC_UNAVAILABLE, "etcdserver: leader changed"},
    {KEEL_ESTOPPED, KEEL_GRPC_UNAVAILABLE, "etcdserver: server stopped"},
    {KEEL_ETIMEOUT, KEEL_GRPC_UNAVAILABLE, "etcdserver: request timed out"},
    {KEEL_EUNKNOWN, KEEL_GRPC_UNAVAILABLE,
     "etcdserver: request timed out, possibly due to previous leader "
     "failure"},
    {KEEL_EUNAVAILABLE, KEEL_GRPC_UNAVAILABLE, "etcdserver: unhealthy cluster"},
    {KEEL_ECORRUPT, KEEL_GRPC_DATA_LOSS, "etcdserver: corrupt cluster"},
    {KEEL_EPERM, KEEL_GRPC_PERMISSION_DENIED, "etcdserver: permission denied"},
    {KEEL_EAUTH, KEEL_GRPC_INVALID_ARGUMENT,
     "etcdserver: authentication failed, invalid user ID or password"},
    {KEEL_ECANCELED, KEEL_GRPC_CANCELLED, "context canceled"},
    /* a learner serves only Status and serializable Range */
    {KEEL_ELEARNER, KEEL_GRPC_UNAVAILABLE,
     "etcdserver: rpc not supported for learner"},
    /* keel's own texts: etcd has no such condition */
    {KEEL_EBADMSG, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: malformed request"},
    {-EINVAL, KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: invalid argument"},
    {-ENOTSUP, KEEL_GRPC_UNIMPLEMENTED, "etcdserver: not supported"},
};

struct etcd_status etcd_error(int code) {
  if (code == 0)
    return (struct etcd_status){0, KEEL_GRPC_OK, ""};
  for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
    if (error_table[i].code == code)
      return error_table[i];
  return (struct etcd_status){code, KEEL_GRPC_UNKNOWN, keel_strerror(code)};
}

/* ------------------------------------------------------------------ */
/* Byte strings and sets for checkIntervals                            */
/* ------------------------------------------------------------------ */

/* Go string comparison: bytewise, then shorter first. ext adds one virtual
 * 0 byte at the end (adt's point interval ends at key + "\x00"). */
static int bcmp_ext(const uint8_t *a, size_t an, bool aext, const uint8_t *b,
                    size_t bn, bool bext) {
  size_t al = an + aext, bl = bn + bext;
  size_t m = al < bl ? al : bl;
  for (size_t i = 0; i < m; i++) {
    uint8_t x = i < an ? a[i] : 0, y = i < bn ? b[i] : 0;
    if (x != y)
      return x < y ? -1 : 1;
  }
  return al < bl ? -1 : al > bl ? 1 : 0;
}

struct bkey {
  const uint8_t *p;
  size_t n;
};

/* A hash set of keys (the puts of a path). */
struct kset {
  struct bkey *slot;
  size_t cap, n; /* cap a power of two; load kept under 1/2 */
};

static uint64_t khash(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static bool kset_has(const struct kset *s, const uint8_t *p, size_t n) {
  if (s->cap == 0)
    return false;
  for (size_t i = khash(p, n) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
    if (s->slot[i].p == NULL)
      return false;
    if (s->slot[i].n == n && memcmp(s->slot[i].p, p, n) == 0)
      return true;
  }
}

static int kset_add(struct kset *s, const uint8_t *p, size_t n) {
  static const uint8_t empty[1];
  if (p == NULL)
    p = empty; /* NULL marks a free slot */
  if (kset_has(s, p, n))
    return 0;
  if ((s->n + 1) * 2 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    struct bkey *ns = calloc(cap, sizeof(*ns));
    if (ns == NULL)
      return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
      if (s->slot[i].p == NULL)
        continue;
      size_t j = khash(s->slot[i].p, s->slot[i].n) & (cap - 1);
      while (ns[j].p != NULL)
        j = (j + 1) & (cap - 1);
      ns[j] = s->slot[i];
    }
    free(s->slot);
    s->slot = ns;
    s->cap = cap;
  }
  size_t i = khash(p, n) & (s->cap - 1);
  while (s->slot[i].p != NULL)
    i = (i + 1) & (s->cap - 1);
  s->slot[i] = (struct bkey){p, n};
  s->n++;
  return 0;
}

/* An interval [b, e) as adt's string-affine interval: point intervals have
 * e = b + "\x00" (ext). */
struct iv {
  const uint8_t *b, *e;
  size_t bn, en;
  bool ext;
};

/* A set of intervals answering "does any contain point k", sorted lazily by
 * begin with a running maximum of ends. */
struct ivset {
  struct iv *v;
  size_t n, cap;
  size_t *pmax; /* pmax[i]: index of the largest end among v[0..i] */
  bool sorted;
};

static int ivset_add(struct ivset *s, struct iv iv) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    struct iv *nv = realloc(s->v, cap * sizeof(*nv));
    if (nv == NULL)
      return -ENOMEM;
    s->v = nv;
    s->cap = cap;
  }
  s->v[s->n++] = iv;
  s->sorted = false;
  return 0;
}

static int iv_cmp_begin(const void *x, const void *y) {
  const struct iv *a = x, *b = y;
  return bcmp_ext(a->b, a->bn, false, b->b, b->bn, false);
}

static int ivset_prepare(struct ivset *s) {
  if (s->sorted)
    return 0;
  if (s->n > 0)
    qsort(s->v, s->n, sizeof(*s->v), iv_cmp_begin);
  free(s->pmax);
  s->pmax = s->n ? malloc(s->n * sizeof(size_t)) : NULL;
  if (s->n && s->pmax == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < s->n; i++) {
    size_t best = i ? s->pmax[i - 1] : i;
    const struct iv *a = &s->v[i], *m = &s->v[best];
    if (bcmp_ext(a->e, a->en, a->ext, m->e, m->en, m->ext) > 0)
      best = i;
    s->pmax[i] = best;
  }
  s->sorted = true;
  return 0;
}

/* 1 if some interval holds k (b <= k < e), 0 if none, or -ENOMEM. */
static int ivset_hits(struct ivset *s, const uint8_t *k, size_t kn) {
  int rc = ivset_prepare(s);
  if (rc != 0)
    return rc;
  size_t lo = 0, hi = s->n; /* count of begins <= k */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (bcmp_ext(s->v[mid].b, s->v[mid].bn, false, k, kn, false) <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0)
    return 0;
  const struct iv *m = &s->v[s->pmax[lo - 1]];
  return bcmp_ext(k, kn, false, m->e, m->en, m->ext) < 0;
}

static void ivset_free(struct ivset *s) {
  free(s->v);
  free(s->pmax);
  memset(s, 0, sizeof(*s));
}

static void kset_free(struct kset *s) {
  free(s->slot);
  memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */
/* ------------------------------------------------------------------ */

int etcd_check_range(const Etcdserverpb__RangeRequest *r) {
  if (r->key.len == 0)
    return KEEL_EEMPTYKEY;
  if (r->key.len > STORE_KEY_MAX || r->range_end.len > STORE_KEY_MAX)
    return KEEL_ETOOLARGE;
  /* etcd sorts on any target other than KEY even with order NONE, and
   * crashes on a target it does not know: refuse it */
  if ((unsigned)r->sort_target > STORE_SORT_VALUE)
    return -EINVAL;
  return 0;
}

int etcd_check_put(const Etcdserverpb__PutRequest *r) {
  if (r->key.len == 0)
    return KEEL_EEMPTYKEY;
  if (r->ignore_value && r->value.len != 0)
    return KEEL_EVALUEPROVIDED;
  if (r->ignore_lease && r->lease != 0)
    return KEEL_ELEASEPROVIDED;
  if (r->key.len > STORE_KEY_MAX || r->value.len > STORE_VALUE_MAX)
    return KEEL_ETOOLARGE;
  return 0;
}

int etcd_check_delete_range(const Etcdserverpb__DeleteRangeRequest *r) {
  if (r->key.len == 0)
    return KEEL_EEMPTYKEY;
  if (r->key.len > STORE_KEY_MAX || r->range_end.len > STORE_KEY_MAX)
    return KEEL_ETOOLARGE;
  return 0;
}

static int check_txn_req(const Etcdserverpb__TxnRequest *r, long max_ops,
                         int depth);

/* etcd's checkRequestOp. */
static int check_op(const Etcdserverpb__RequestOp *u, long max_ops, int depth) {
  switch (u->request_case) {
  case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
    return etcd_check_range(u->request_range);
  case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
    return etcd_check_put(u->request_put);
  case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
    return etcd_check_delete_range(u->request_delete_range);
  case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
    return check_txn_req(u->request_txn, max_ops, depth + 1);
  default:
    return KEEL_EKEYNOTFOUND; /* etcd: "empty op / nil entry" */
  }
}

/* etcd's checkTxnRequest (plus keel's depth and enum rules). */
static int check_txn_req(const Etcdserverpb__TxnRequest *r, long max_ops,
                         int depth) {
  size_t opc = r->n_compare;
  if (opc < r->n_success)
    opc = r->n_success;
  if (opc < r->n_failure)
    opc = r->n_failure;
  if ((long)opc > max_ops)
    return KEEL_ETOOMANYOPS;
  if (depth > ETCD_TXN_MAX_DEPTH)
    return KEEL_ETOOMANYOPS;
  for (size_t i = 0; i < r->n_compare; i++)
    if (r->compare[i]->key.len == 0)
      return KEEL_EEMPTYKEY;
  for (size_t i = 0; i < r->n_compare; i++) {
    const Etcdserverpb__Compare *c = r->compare[i];
    if ((unsigned)c->result > 3 || (unsigned)c->target > 4)
      return -EINVAL;
    if (c->key.len > STORE_KEY_MAX || c->range_end.len > STORE_KEY_MAX)
      return KEEL_ETOOLARGE;
  }
  for (size_t i = 0; i < r->n_success; i++) {
    int rc = check_op(r->success[i], max_ops - (long)opc, depth);
    if (rc != 0)
      return rc;
  }
  for (size_t i = 0; i < r->n_failure; i++) {
    int rc = check_op(r->failure[i], max_ops - (long)opc, depth);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static struct iv del_iv(const Etcdserverpb__DeleteRangeRequest *d) {
  if (d->range_end.len != 0)
    return (struct iv){d->key.data, d->range_end.data, d->key.len,
                       d->range_end.len, false};
  return (struct iv){d->key.data, d->key.data, d->key.len, d->key.len, true};
}

/* etcd's checkIntervals: fills puts and dels for the caller's level. */
static int check_intervals(Etcdserverpb__RequestOp *const *reqs, size_t n,
                           struct kset *puts, struct ivset *dels) {
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    if (reqs[i]->request_case ==
        ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE)
      if ((rc = ivset_add(dels, del_iv(reqs[i]->request_delete_range))) != 0)
        return rc;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (reqs[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
      continue;
    const Etcdserverpb__TxnRequest *t = reqs[i]->request_txn;
    struct kset pt = {0}, pe = {0};
    struct ivset dt = {0}, de = {0};
    rc = check_intervals(t->success, t->n_success, &pt, &dt);
    if (rc == 0)
      rc = check_intervals(t->failure, t->n_failure, &pe, &de);
    for (size_t j = 0; rc == 0 && j < pt.cap; j++) {
      const struct bkey *k = &pt.slot[j];
      if (k->p == NULL)
        continue;
      if (kset_has(puts, k->p, k->n))
        rc = KEEL_EDUPKEY;
      else if ((rc = ivset_hits(dels, k->p, k->n)) == 1)
        rc = KEEL_EDUPKEY;
      else if (rc == 0)
        rc = kset_add(puts, k->p, k->n);
    }
    for (size_t j = 0; rc == 0 && j < pe.cap; j++) {
      const struct bkey *k = &pe.slot[j];
      if (k->p == NULL)
        continue;
      /* then and else exclude each other: the same key is fine there */
      if (kset_has(puts, k->p, k->n) && !kset_has(&pt, k->p, k->n))
        rc = KEEL_EDUPKEY;
      else if ((rc = ivset_hits(dels, k->p, k->n)) == 1)
        rc = KEEL_EDUPKEY;
      else if (rc == 0)
        rc = kset_add(puts, k->p, k->n);
    }
    for (size_t j = 0; rc == 0 && j < dt.n; j++)
      rc = ivset_add(dels, dt.v[j]);
    for (size_t j = 0; rc == 0 && j < de.n; j++)
      rc = ivset_add(dels, de.v[j]);
    kset_free(&pt);
    kset_free(&pe);
    ivset_free(&dt);
    ivset_free(&de);
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (reqs[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
      continue;
    const ProtobufCBinaryData *k = &reqs[i]->request_put->key;
    if (kset_has(puts, k->data, k->len))
      rc = KEEL_EDUPKEY;
    else if ((rc = ivset_hits(dels, k->data, k->len)) == 1)
      rc = KEEL_EDUPKEY;
    else if (rc == 0)
      rc = kset_add(puts, k->data, k->len);
  }
  return rc;
}

static int check_branch(Etcdserverpb__RequestOp *const *reqs, size_t n) {
  struct kset puts = {0};
  struct ivset dels = {0};
  int rc = check_intervals(reqs, n, &puts, &dels);
  kset_free(&puts);
  ivset_free(&dels);
  return rc;
}

int etcd_check_txn(const Etcdserverpb__TxnRequest *r, uint32_t max_txn_ops) {
  long max = max_txn_ops ? (long)max_txn_ops : STORE_DEFAULT_MAX_TXN_OPS;
  int rc = check_txn_req(r, max, 1);
  if (rc == 0)
    rc = check_branch(r->success, r->n_success);
  if (rc == 0)
    rc = check_branch(r->failure, r->n_failure);
  return rc;
}

int etcd_prepare_lease_grant(Etcdserverpb__LeaseGrantRequest *r,
                             int64_t min_ttl, int64_t new_id) {
  if (r->id == 0) {
    if (new_id <= 0)
      return -EINVAL;
    r->id = new_id;
  }
  if (r->ttl > ETCD_MAX_LEASE_TTL)
    return KEEL_ELEASETTLTOOLARGE;
  if (r->ttl < min_ttl)
    r->ttl = min_ttl;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Wire walk                                                           */
/* ------------------------------------------------------------------ */

static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v,
                       int max_bytes) {
  uint64_t x = 0;
  for (int shift = 0; shift < 7 * max_bytes; shift += 7) {
    if (*p >= end)
      return KEEL_EBADMSG;
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return KEEL_EBADMSG;
}

/* Calls fn for every length-delimited field numbered `want` (others are
 * skipped after checking their framing). */
typedef int (*wire_fn)(const uint8_t *p, size_t n, uint32_t field, int depth,
                       size_t *elems);

static int wire_walk(const uint8_t *p, size_t n, int depth, size_t *elems,
                     wire_fn fn) {
  const uint8_t *end = p + n;
  while (p < end) {
    uint64_t tag, v;
    int rc = wire_varint(&p, end, &tag, 5); /* keel_pb.h's tag rule */
    if (rc != 0)
      return rc;
    uint32_t field = (uint32_t)(tag >> 3);
    if (field == 0 || tag >> 3 > 0x1fffffff)
      return KEEL_EBADMSG;
    switch (tag & 7) {
    case 0:
      rc = wire_varint(&p, end, &v, 10);
      break;
    case 1:
      if (end - p < 8)
        return KEEL_EBADMSG;
      p += 8;
      break;
    case 5:
      if (end - p < 4)
        return KEEL_EBADMSG;
      p += 4;
      break;
    case 2:
      rc = wire_varint(&p, end, &v, 10);
      if (rc == 0 && v > (uint64_t)(end - p))
        return KEEL_EBADMSG;
      if (rc == 0)
        rc = fn(p, (size_t)v, field, depth, elems);
      p += rc == 0 ? v : 0;
      break;
    default:
      return KEEL_EBADMSG; /* groups: protobuf-c refuses them too */
    }
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int walk_txn_fields(const uint8_t *p, size_t n, uint32_t field,
                           int depth, size_t *elems);

/* A RequestOp: field 4 is a nested TxnRequest. */
static int walk_op_fields(const uint8_t *p, size_t n, uint32_t field, int depth,
                          size_t *elems) {
  if (field != 4)
    return 0;
  if (depth + 1 > ETCD_TXN_MAX_DEPTH)
    return KEEL_ETOOMANYOPS;
  return wire_walk(p, n, depth + 1, elems, walk_txn_fields);
}

/* A TxnRequest: compare = 1, success = 2, failure = 3. */
static int walk_txn_fields(const uint8_t *p, size_t n, uint32_t field,
                           int depth, size_t *elems) {
  if (field < 1 || field > 3)
    return 0;
  if (++*elems > ETCD_TXN_MAX_ELEMS)
    return KEEL_ETOOMANYOPS;
  if (field == 1)
    return 0;
  return wire_walk(p, n, depth, elems, walk_op_fields);
}

int etcd_wire_check_txn(const uint8_t *buf, size_t len) {
  size_t elems = 0;
  return wire_walk(buf, len, 1, &elems, walk_txn_fields);
}

static int walk_embedded(const uint8_t *p, size_t n, uint32_t field, int depth,
                         size_t *want) {
  (void)depth;
  if (field != *want)
    return 0;
  return etcd_wire_check_txn(p, n);
}

int etcd_wire_check_embedded_txn(const uint8_t *buf, size_t len,
                                 uint32_t field) {
  size_t want = field;
  return wire_walk(buf, len, 0, &want, walk_embedded);
}

/* ------------------------------------------------------------------ */
/* Protobuf -> store structs                                           */
/* ------------------------------------------------------------------ */

int etcd_range_to_store(const Etcdserverpb__RangeRequest *m,
                        struct store_range_req *o) {
  memset(o, 0, sizeof(*o));
  o->key = m->key.data;
  o->key_len = m->key.len;
  o->range_end = m->range_end.data;
  o->range_end_len = m->range_end.len;
  o->limit = m->limit;
  o->revision = m->revision;
  switch (m->sort_order) {
  case ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND:
    o->sort_order = STORE_SORT_ASCEND;
    break;
  case ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND:
    o->sort_order = STORE_SORT_DESCEND;
    break;
  default:
    o->sort_order = STORE_SORT_NONE;
  }
  if ((unsigned)m->sort_target > STORE_SORT_VALUE)
    return -EINVAL;
  o->sort_target = (enum store_sort_target)m->sort_target;
  o->keys_only = m->keys_only;
  o->count_only = m->count_only;
  o->min_mod_revision = m->min_mod_revision;
  o->max_mod_revision = m->max_mod_revision;
  o->min_create_revision = m->min_create_revision;
  o->max_create_revision = m->max_create_revision;
  return 0;
}

static void put_to_store(const Etcdserverpb__PutRequest *m,
                         struct store_put_req *o) {
  memset(o, 0, sizeof(*o));
  o->key = m->key.data;
  o->key_len = m->key.len;
  o->value = m->value.data;
  o->value_len = m->value.len;
  o->lease = m->lease;
  o->prev_kv = m->prev_kv;
  o->ignore_value = m->ignore_value;
  o->ignore_lease = m->ignore_lease;
}

static void delete_to_store(const Etcdserverpb__DeleteRangeRequest *m,
                            struct store_delete_req *o) {
  memset(o, 0, sizeof(*o));
  o->key = m->key.data;
  o->key_len = m->key.len;
  o->range_end = m->range_end.data;
  o->range_end_len = m->range_end.len;
  o->prev_kv = m->prev_kv;
}

/* Counts the store structs a txn needs (for one allocation). */
static void txn_count(const Etcdserverpb__TxnRequest *t, size_t *ncmp,
                      size_t *nops, size_t *ntxn, int depth) {
  if (depth > ETCD_TXN_MAX_DEPTH)
    return; /* txn_fill refuses this level before using the pool */
  *ncmp += t->n_compare;
  *nops += t->n_success + t->n_failure;
  *ntxn += 1;
  for (size_t i = 0; i < t->n_success; i++)
    if (t->success[i]->request_case ==
        ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
      txn_count(t->success[i]->request_txn, ncmp, nops, ntxn, depth + 1);
  for (size_t i = 0; i < t->n_failure; i++)
    if (t->failure[i]->request_case ==
        ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
      txn_count(t->failure[i]->request_txn, ncmp, nops, ntxn, depth + 1);
}

struct txn_pool {
  struct store_compare *cmp;
  struct store_request_op *ops;
  struct store_txn_req *txns;
};

static int txn_fill(const Etcdserverpb__TxnRequest *t, struct store_txn_req *o,
                    struct txn_pool *pool, int depth);

static int ops_fill(Etcdserverpb__RequestOp *const *in, size_t n,
                    struct store_request_op *out, struct txn_pool *pool,
                    int depth) {
  for (size_t i = 0; i < n; i++) {
    struct store_request_op *o = &out[i];
    memset(o, 0, sizeof(*o));
    int rc = 0;
    switch (in[i]->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
      o->type = STORE_OP_RANGE;
      rc = etcd_range_to_store(in[i]->request_range, &o->u.range);
      break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
      o->type = STORE_OP_PUT;
      put_to_store(in[i]->request_put, &o->u.put);
      break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
      o->type = STORE_OP_DELETE_RANGE;
      delete_to_store(in[i]->request_delete_range, &o->u.delete_range);
      break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
      o->type = STORE_OP_TXN;
      struct store_txn_req *sub = pool->txns++;
      o->u.txn = sub;
      rc = txn_fill(in[i]->request_txn, sub, pool, depth + 1);
      break;
    }
    default:
      rc = KEEL_EBADMSG;
    }
    if (rc != 0)
      return rc == -EINVAL ? KEEL_EBADMSG : rc;
  }
  return 0;
}

/* The number a compare holds for its target (etcd's GetVersion() etc.: 0
 * when the union holds another member). */
static int compare_fill(const Etcdserverpb__Compare *c,
                        struct store_compare *o) {
  memset(o, 0, sizeof(*o));
  if ((unsigned)c->result > 3 || (unsigned)c->target > 4)
    return KEEL_EBADMSG;
  o->result = (enum store_compare_result)c->result;
  o->target = (enum store_compare_target)c->target;
  o->key = c->key.data;
  o->key_len = c->key.len;
  o->range_end = c->range_end.data;
  o->range_end_len = c->range_end.len;
  int want = 0;
  switch (c->target) {
  case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
    want = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
    break;
  case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
    want = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    break;
  case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
    want = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    break;
  case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE:
    want = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    break;
  case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
    want = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
    break;
  default:
    break;
  }
  if ((int)c->target_union_case != want)
    return 0; /* compares against 0 / the empty value, as etcd */
  if (want == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE) {
    o->value = c->value.data;
    o->value_len = c->value.len;
  } else {
    o->number = c->version; /* every int64 member shares the storage */
  }
  return 0;
}

static int txn_fill(const Etcdserverpb__TxnRequest *t, struct store_txn_req *o,
                    struct txn_pool *pool, int depth) {
  if (depth > ETCD_TXN_MAX_DEPTH)
    return KEEL_ETOOMANYOPS;
  memset(o, 0, sizeof(*o));
  struct store_compare *cmp = pool->cmp;
  pool->cmp += t->n_compare;
  for (size_t i = 0; i < t->n_compare; i++) {
    int rc = compare_fill(t->compare[i], &cmp[i]);
    if (rc != 0)
      return rc;
  }
  o->compare = cmp;
  o->n_compare = t->n_compare;
  struct store_request_op *s = pool->ops;
  pool->ops += t->n_success;
  struct store_request_op *f = pool->ops;
  pool->ops += t->n_failure;
  int rc = ops_fill(t->success, t->n_success, s, pool, depth);
  if (rc == 0)
    rc = ops_fill(t->failure, t->n_failure, f, pool, depth);
  o->success = s;
  o->n_success = t->n_success;
  o->failure = f;
  o->n_failure = t->n_failure;
  return rc;
}

int etcd_txn_to_store(const Etcdserverpb__TxnRequest *msg,
                      struct store_txn_req *out, void **mem) {
  *mem = NULL;
  memset(out, 0, sizeof(*out));
  size_t ncmp = 0, nops = 0, ntxn = 0;
  txn_count(msg, &ncmp, &nops, &ntxn, 1);
  size_t sz = ncmp * sizeof(struct store_compare) +
              nops * sizeof(struct store_request_op) +
              ntxn * sizeof(struct store_txn_req);
  uint8_t *m = malloc(sz ? sz : 1);
  if (m == NULL)
    return -ENOMEM;
  struct txn_pool pool = {
      .ops = (struct store_request_op *)m,
      .txns =
          (struct store_txn_req *)(m + nops * sizeof(struct store_request_op)),
  };
  pool.cmp =
      (struct store_compare *)(m + nops * sizeof(struct store_request_op) +
                               ntxn * sizeof(struct store_txn_req));
  int rc = txn_fill(msg, out, &pool, 1);
  if (rc != 0) {
    free(m);
    memset(out, 0, sizeof(*out));
    return rc;
  }
  *mem = m;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

/* A bump arena for the protobuf structs of one reply. */
struct arena_chunk {
  struct arena_chunk *next;
  size_t used, cap;
  max_align_t data[];
};
struct arena {
  struct arena_chunk *head;
};

static void *arena_alloc(struct arena *a, size_t n) {
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  struct arena_chunk *c = a->head;
  if (c == NULL || c->cap - c->used < n) {
    size_t cap = n > 16384 ? n : 16384;
    c = malloc(sizeof(*c) + cap);
    if (c == NULL)
      return NULL;
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
  }
  void *p = (uint8_t *)c->data + c->used;
  c->used += n;
  memset(p, 0, n);
  return p;
}

static void arena_free(struct arena *a) {
  while (a->head) {
    struct arena_chunk *n = a->head->next;
    free(a->head);
    a->head = n;
  }
}

void etcd_reply_free(struct etcd_reply *r) {
  free(r->buf);
  r->buf = NULL;
  r->len = 0;
}

void etcd_reply_error(struct etcd_reply *out, int code) {
  out->status = etcd_error(code);
  out->buf = NULL;
  out->len = 0;
}

static int reply_pack(struct etcd_reply *out, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(n ? n : 1);
  if (b == NULL) {
    etcd_reply_error(out, -ENOMEM);
    return -ENOMEM;
  }
  size_t w = protobuf_c_message_pack(m, b);
  (void)w;
  out->status = etcd_error(0);
  out->buf = b;
  out->len = n;
  return 0;
}

void etcd_kv_fill(Mvccpb__KeyValue *out, const struct store_kv *kv) {
  mvccpb__key_value__init(out);
  out->key.data = (uint8_t *)kv->key;
  out->key.len = kv->key_len;
  out->value.data = (uint8_t *)kv->value;
  out->value.len = kv->value_len;
  out->create_revision = kv->create_revision;
  out->mod_revision = kv->mod_revision;
  out->version = kv->version;
  out->lease = kv->lease;
}

void etcd_event_fill(Mvccpb__Event *out, Mvccpb__KeyValue *kv,
                     Mvccpb__KeyValue *prev, const struct store_event *ev,
                     bool with_prev) {
  mvccpb__event__init(out);
  out->type = ev->type == STORE_EVENT_DELETE ? MVCCPB__EVENT__EVENT_TYPE__DELETE
                                             : MVCCPB__EVENT__EVENT_TYPE__PUT;
  etcd_kv_fill(kv, &ev->kv);
  out->kv = kv;
  if (with_prev && ev->has_prev && prev != NULL) {
    etcd_kv_fill(prev, &ev->prev_kv);
    out->prev_kv = prev;
  }
}

static Etcdserverpb__ResponseHeader *
header_new(struct arena *a, const struct etcd_header_ids *ids, int64_t rev) {
  Etcdserverpb__ResponseHeader *h = arena_alloc(a, sizeof(*h));
  if (h == NULL)
    return NULL;
  etcdserverpb__response_header__init(h);
  if (ids != NULL) {
    h->cluster_id = ids->cluster_id;
    h->member_id = ids->member_id;
    h->raft_term = ids->raft_term;
  }
  h->revision = rev;
  return h;
}

static Mvccpb__KeyValue **kvs_new(struct arena *a, const struct store_kv *kvs,
                                  size_t n) {
  Mvccpb__KeyValue **v = arena_alloc(a, (n ? n : 1) * sizeof(*v));
  Mvccpb__KeyValue *s = arena_alloc(a, (n ? n : 1) * sizeof(*s));
  if (v == NULL || s == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    etcd_kv_fill(&s[i], &kvs[i]);
    v[i] = &s[i];
  }
  return v;
}

static Etcdserverpb__RangeResponse *
range_new(struct arena *a, const struct store_range_resp *r,
          const struct etcd_header_ids *ids) {
  Etcdserverpb__RangeResponse *m = arena_alloc(a, sizeof(*m));
  if (m == NULL)
    return NULL;
  etcdserverpb__range_response__init(m);
  m->header = header_new(a, ids, r->revision);
  m->kvs = kvs_new(a, r->kvs, r->n_kvs);
  if (m->header == NULL || m->kvs == NULL)
    return NULL;
  m->n_kvs = r->n_kvs;
  m->more = r->more;
  m->count = r->count;
  return m;
}

static Etcdserverpb__PutResponse *put_new(struct arena *a,
                                          const struct store_put_resp *r,
                                          const struct etcd_header_ids *ids,
                                          int64_t rev) {
  Etcdserverpb__PutResponse *m = arena_alloc(a, sizeof(*m));
  if (m == NULL)
    return NULL;
  etcdserverpb__put_response__init(m);
  if ((m->header = header_new(a, ids, rev)) == NULL)
    return NULL;
  if (r->has_prev) {
    m->prev_kv = arena_alloc(a, sizeof(*m->prev_kv));
    if (m->prev_kv == NULL)
      return NULL;
    etcd_kv_fill(m->prev_kv, &r->prev_kv);
  }
  return m;
}

static Etcdserverpb__DeleteRangeResponse *
delete_new(struct arena *a, const struct store_delete_resp *r,
           const struct etcd_header_ids *ids, int64_t rev) {
  Etcdserverpb__DeleteRangeResponse *m = arena_alloc(a, sizeof(*m));
  if (m == NULL)
    return NULL;
  etcdserverpb__delete_range_response__init(m);
  if ((m->header = header_new(a, ids, rev)) == NULL)
    return NULL;
  m->deleted = r->deleted;
  if (r->n_prev_kvs > 0) {
    if ((m->prev_kvs = kvs_new(a, r->prev_kvs, r->n_prev_kvs)) == NULL)
      return NULL;
    m->n_prev_kvs = r->n_prev_kvs;
  }
  return m;
}

static Etcdserverpb__TxnResponse *txn_new(struct arena *a,
                                          const struct store_txn_resp *r,
                                          const struct etcd_header_ids *ids,
                                          int64_t rev, int depth) {
  if (depth > ETCD_TXN_MAX_DEPTH + 1)
    return NULL;
  Etcdserverpb__TxnResponse *m = arena_alloc(a, sizeof(*m));
  if (m == NULL)
    return NULL;
  etcdserverpb__txn_response__init(m);
  if ((m->header = header_new(a, ids, rev)) == NULL)
    return NULL;
  m->succeeded = r->succeeded;
  size_t n = r->n_responses;
  m->responses = arena_alloc(a, (n ? n : 1) * sizeof(*m->responses));
  if (m->responses == NULL)
    return NULL;
  m->n_responses = n;
  for (size_t i = 0; i < n; i++) {
    const struct store_response_op *ro = &r->responses[i];
    Etcdserverpb__ResponseOp *op = arena_alloc(a, sizeof(*op));
    if (op == NULL)
      return NULL;
    etcdserverpb__response_op__init(op);
    /* nested responses carry the revision alone in their header (etcd);
     * the store sets each op's revision as etcd does */
    switch (ro->type) {
    case STORE_OP_RANGE:
      op->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
      op->response_range = range_new(a, &ro->u.range, NULL);
      if (op->response_range == NULL)
        return NULL;
      break;
    case STORE_OP_PUT:
      op->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
      op->response_put = put_new(a, &ro->u.put, NULL, ro->u.put.revision);
      if (op->response_put == NULL)
        return NULL;
      break;
    case STORE_OP_DELETE_RANGE:
      op->response_case =
          ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
      op->response_delete_range =
          delete_new(a, &ro->u.delete_range, NULL, ro->u.delete_range.revision);
      if (op->response_delete_range == NULL)
        return NULL;
      break;
    case STORE_OP_TXN:
      op->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
      op->response_txn =
          txn_new(a, ro->u.txn, NULL, ro->u.txn->revision, depth + 1);
      if (op->response_txn == NULL)
        return NULL;
      break;
    default:
      return NULL;
    }
    m->responses[i] = op;
  }
  return m;
}

int etcd_encode_range(const struct store_range_resp *resp,
                      const struct etcd_header_ids *ids,
                      struct etcd_reply *out) {
  struct arena a = {0};
  Etcdserverpb__RangeResponse *m = range_new(&a, resp, ids);
  int rc = m ? reply_pack(out, &m->base) : -ENOMEM;
  if (m == NULL)
    etcd_reply_error(out, rc);
  arena_free(&a);
  return rc;
}

int etcd_encode_write(enum store_req_type type,
                      const struct store_response *resp,
                      const struct etcd_header_ids *ids,
                      struct etcd_reply *out) {
  if (resp->error != 0) {
    etcd_reply_error(out, resp->error);
    return 0;
  }
  struct arena a = {0};
  ProtobufCMessage *m = NULL;
  int rc = 0;
  int64_t rev = resp->revision;
  switch (type) {
  case STORE_REQ_PUT: {
    Etcdserverpb__PutResponse *p = put_new(&a, &resp->u.put, ids, rev);
    m = p ? &p->base : NULL;
    break;
  }
  case STORE_REQ_DELETE_RANGE: {
    Etcdserverpb__DeleteRangeResponse *p =
        delete_new(&a, &resp->u.delete_range, ids, rev);
    m = p ? &p->base : NULL;
    break;
  }
  case STORE_REQ_TXN: {
    Etcdserverpb__TxnResponse *p = txn_new(&a, &resp->u.txn, ids, rev, 1);
    m = p ? &p->base : NULL;
    break;
  }
  case STORE_REQ_COMPACTION: {
    Etcdserverpb__CompactionResponse *p = arena_alloc(&a, sizeof(*p));
    if (p != NULL) {
      etcdserverpb__compaction_response__init(p);
      p->header = header_new(&a, ids, rev);
      m = p->header ? &p->base : NULL;
    }
    break;
  }
  case STORE_REQ_LEASE_GRANT: {
    Etcdserverpb__LeaseGrantResponse *p = arena_alloc(&a, sizeof(*p));
    if (p != NULL) {
      etcdserverpb__lease_grant_response__init(p);
      p->id = resp->u.lease_grant.id;
      p->ttl = resp->u.lease_grant.ttl;
      p->header = header_new(&a, ids, rev);
      m = p->header ? &p->base : NULL;
    }
    break;
  }
  case STORE_REQ_LEASE_REVOKE: {
    Etcdserverpb__LeaseRevokeResponse *p = arena_alloc(&a, sizeof(*p));
    if (p != NULL) {
      etcdserverpb__lease_revoke_response__init(p);
      p->header = header_new(&a, ids, rev);
      m = p->header ? &p->base : NULL;
    }
    break;
  }
  case STORE_REQ_ALARM: {
    Etcdserverpb__AlarmResponse *p = arena_alloc(&a, sizeof(*p));
    size_t n = resp->u.alarm.n_alarms;
    if (p != NULL) {
      etcdserverpb__alarm_response__init(p); /* no header, as etcd */
      p->alarms = arena_alloc(&a, (n ? n : 1) * sizeof(*p->alarms));
      m = p->alarms ? &p->base : NULL;
      for (size_t i = 0; m != NULL && i < n; i++) {
        Etcdserverpb__AlarmMember *am = arena_alloc(&a, sizeof(*am));
        if (am == NULL) {
          m = NULL;
          break;
        }
        etcdserverpb__alarm_member__init(am);
        am->memberid = resp->u.alarm.alarms[i].member_id;
        am->alarm = (Etcdserverpb__AlarmType)resp->u.alarm.alarms[i].alarm;
        p->alarms[i] = am;
      }
      if (m != NULL)
        p->n_alarms = n;
    }
    break;
  }
  case STORE_REQ_NOOP:
  case STORE_REQ_LEASE_EXPIRE:
  case STORE_REQ_LEASE_CHECKPOINT:
    out->status = etcd_error(0);
    out->buf = NULL;
    out->len = 0;
    return 0;
  default:
    etcd_reply_error(out, -EINVAL);
    return -EINVAL;
  }
  if (m == NULL) {
    rc = -ENOMEM;
    etcd_reply_error(out, rc);
  } else {
    rc = reply_pack(out, m);
  }
  arena_free(&a);
  return rc;
}

int etcd_encode_lease_ttl(int64_t id, const struct store_lease_info *info,
                          int64_t remaining_ttl,
                          const struct store_lease_keys *keys, int64_t rev,
                          const struct etcd_header_ids *ids,
                          struct etcd_reply *out) {
  struct arena a = {0};
  Etcdserverpb__LeaseTimeToLiveResponse m =
      ETCDSERVERPB__LEASE_TIME_TO_LIVE_RESPONSE__INIT;
  m.header = header_new(&a, ids, rev);
  int rc = m.header ? 0 : -ENOMEM;
  m.id = id;
  if (info == NULL) {
    m.ttl = -1; /* etcd: a missing lease is TTL -1, not an error */
  } else {
    m.ttl = remaining_ttl;
    m.grantedttl = info->granted_ttl;
    if (keys != NULL && keys->n > 0 && rc == 0) {
      m.keys = arena_alloc(&a, keys->n * sizeof(*m.keys));
      if (m.keys == NULL)
        rc = -ENOMEM;
      for (size_t i = 0; rc == 0 && i < keys->n; i++) {
        m.keys[i].data = (uint8_t *)keys->keys[i].key;
        m.keys[i].len = keys->keys[i].key_len;
      }
      if (rc == 0)
        m.n_keys = keys->n;
    }
  }
  if (rc == 0)
    rc = reply_pack(out, &m.base);
  else
    etcd_reply_error(out, rc);
  arena_free(&a);
  return rc;
}

int etcd_encode_watch(const struct etcd_watch_info *info,
                      const struct store_event *events, size_t n,
                      bool with_prev, const struct etcd_header_ids *ids,
                      struct etcd_reply *out) {
  struct arena a = {0};
  Etcdserverpb__WatchResponse m = ETCDSERVERPB__WATCH_RESPONSE__INIT;
  m.header = header_new(&a, ids, info->revision);
  m.watch_id = info->watch_id;
  m.created = info->created;
  m.canceled = info->canceled;
  m.fragment = info->fragment;
  m.compact_revision = info->compact_revision;
  if (info->cancel_reason != NULL)
    m.cancel_reason = (char *)info->cancel_reason;
  m.events = arena_alloc(&a, (n ? n : 1) * sizeof(*m.events));
  Mvccpb__Event *ev = arena_alloc(&a, (n ? n : 1) * sizeof(*ev));
  Mvccpb__KeyValue *kv = arena_alloc(&a, (n ? n : 1) * 2 * sizeof(*kv));
  int rc = (m.header && m.events && ev && kv) ? 0 : -ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    etcd_event_fill(&ev[i], &kv[2 * i], &kv[2 * i + 1], &events[i], with_prev);
    m.events[i] = &ev[i];
  }
  if (rc == 0) {
    m.n_events = n;
    rc = reply_pack(out, &m.base);
  } else {
    etcd_reply_error(out, rc);
  }
  arena_free(&a);
  return rc;
}

int etcd_encode_lease_keepalive(int64_t id, int64_t ttl, int64_t rev,
                                const struct etcd_header_ids *ids,
                                struct etcd_reply *out) {
  struct arena a = {0};
  Etcdserverpb__LeaseKeepAliveResponse m =
      ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
  m.header = header_new(&a, ids, rev);
  m.id = id;
  m.ttl = ttl;
  int rc = m.header ? reply_pack(out, &m.base) : -ENOMEM;
  if (m.header == NULL)
    etcd_reply_error(out, rc);
  arena_free(&a);
  return rc;
}

int etcd_encode_leases(const struct store_lease_info *leases, size_t n,
                       int64_t rev, const struct etcd_header_ids *ids,
                       struct etcd_reply *out) {
  struct arena a = {0};
  Etcdserverpb__LeaseLeasesResponse m =
      ETCDSERVERPB__LEASE_LEASES_RESPONSE__INIT;
  m.header = header_new(&a, ids, rev);
  m.leases = arena_alloc(&a, (n ? n : 1) * sizeof(*m.leases));
  Etcdserverpb__LeaseStatus *st = arena_alloc(&a, (n ? n : 1) * sizeof(*st));
  int rc = (m.header && m.leases && st) ? 0 : -ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    etcdserverpb__lease_status__init(&st[i]);
    st[i].id = leases[i].id;
    m.leases[i] = &st[i];
  }
  if (rc == 0) {
    m.n_leases = n;
    rc = reply_pack(out, &m.base);
  } else {
    etcd_reply_error(out, rc);
  }
  arena_free(&a);
  return rc;
}

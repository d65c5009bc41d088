/* kv_flags.c — validation on write of /flags/ keys for the KV service; see
 * kv_flags.h for the rules.
 *
 * A Txn is walked branch by branch with a chain of scopes (the branch's
 * ops, then the ops of the branch of every enclosing txn): that chain is
 * what "the txn's own write of a key" means for a put on that branch.
 * Nothing here allocates more than one stored value or one range result at
 * a time, and the range of a set is capped at FLAGS_MAX_FLAGS + 2 keys.
 */
#define _GNU_SOURCE /* memmem */
#include "kv_flags.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags.h"
#include "keel_error.h"

#define FLAGS_ROOT "/flags/"
#define FLAGS_ROOT_LEN (sizeof(FLAGS_ROOT) - 1)
#define EVALUATORS "$evaluators"
#define EVALUATORS_LEN (sizeof(EVALUATORS) - 1)
#define MSG_MAX 512

/* One level of the path from the txn's root branch to the branch whose put
 * is being checked (innermost first). */
struct scope {
  Etcdserverpb__RequestOp **ops;
  size_t n;
  const struct scope *up;
};

static int store_rng(void *ctx, const struct store_range_req *req,
                     struct store_range_result *out) {
  return store_range(ctx, req, out);
}

void kv_flags_reader_store(struct store *st, struct kv_flags_reader *out) {
  out->ctx = st;
  out->range = store_rng;
}

bool kv_flags_key_is_flag(const uint8_t *key, size_t len) {
  return len >= FLAGS_ROOT_LEN && memcmp(key, FLAGS_ROOT, FLAGS_ROOT_LEN) == 0;
}

static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* etcd's range rule for a delete: no range_end = the key alone; "\0" = every
 * key >= key; else [key, range_end). */
static bool delete_covers(const Etcdserverpb__DeleteRangeRequest *d,
                          const uint8_t *k, size_t kl) {
  const ProtobufCBinaryData *a = &d->key, *e = &d->range_end;
  size_t m = a->len < kl ? a->len : kl;
  int c = memcmp(a->data, k, m);
  bool ge_start = c < 0 || (c == 0 && a->len <= kl); /* key >= start */
  if (e->len == 0)
    return a->len == kl && memcmp(a->data, k, kl) == 0;
  if (!ge_start)
    return false;
  if (e->len == 1 && e->data[0] == 0)
    return true;
  m = e->len < kl ? e->len : kl;
  c = memcmp(k, e->data, m);
  return c < 0 || (c == 0 && kl < e->len); /* key < end */
}

enum path_state { PATH_NONE = 0, PATH_PUT, PATH_DELETED };

/* What the ops on the scope chain do to key k (the first one found: etcd
 * allows at most one per path). *val gets a put's value. */
static enum path_state path_lookup(const struct scope *s, const uint8_t *k,
                                   size_t kl, const ProtobufCBinaryData **val) {
  for (; s; s = s->up)
    for (size_t i = 0; i < s->n; i++) {
      const Etcdserverpb__RequestOp *op = s->ops[i];
      if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) {
        const Etcdserverpb__PutRequest *p = op->request_put;
        if (p->key.len == kl && memcmp(p->key.data, k, kl) == 0 &&
            !p->ignore_value) {
          *val = &p->value;
          return PATH_PUT;
        }
      } else if (op->request_case ==
                     ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE &&
                 delete_covers(op->request_delete_range, k, kl)) {
        return PATH_DELETED;
      }
    }
  return PATH_NONE;
}

/* The stored value of key k: a malloc'd copy in *val (NULL when absent). */
static int stored_get(const struct kv_flags_reader *rd, const char *k,
                      size_t kl, char **val, size_t *len) {
  *val = NULL;
  *len = 0;
  struct store_range_req q = {.key = (const uint8_t *)k, .key_len = kl};
  struct store_range_result r;
  int rc = rd->range(rd->ctx, &q, &r);
  if (rc < 0)
    return rc;
  if (r.resp.n_kvs > 0) {
    const struct store_kv *kv = &r.resp.kvs[0];
    *val = malloc(kv->value_len + 1);
    if (*val == NULL) {
      store_range_result_free(&r);
      return -ENOMEM;
    }
    memcpy(*val, kv->value, kv->value_len);
    (*val)[kv->value_len] = 0;
    *len = kv->value_len;
  }
  store_range_result_free(&r);
  return 0;
}

/* The $evaluators a put on this path sees (kv_flags.h): *ev is either
 * borrowed from the txn (*owned NULL) or a stored copy (*owned = *ev). */
static int path_evaluators(const struct kv_flags_reader *rd,
                           const struct scope *s, const char *evkey,
                           size_t evkl, const char **ev, size_t *evlen,
                           char **owned) {
  *ev = NULL;
  *evlen = 0;
  *owned = NULL;
  const ProtobufCBinaryData *v = NULL;
  switch (path_lookup(s, (const uint8_t *)evkey, evkl, &v)) {
  case PATH_PUT:
    *ev = (const char *)v->data;
    *evlen = v->len;
    return 0;
  case PATH_DELETED:
    return 0;
  case PATH_NONE:
    break;
  }
  int rc = stored_get(rd, evkey, evkl, owned, evlen);
  *ev = *owned;
  return rc;
}

/* A put of /flags/SET/$evaluators (already valid by itself): every stored
 * flag of SET that uses a $ref, is not rewritten or deleted on this path,
 * and is valid with the stored $evaluators must stay valid with the new
 * document. */
static int check_stored_flags(const struct kv_flags_reader *rd,
                              const struct scope *s, const char *evkey,
                              size_t evkl, const ProtobufCBinaryData *newev,
                              char *err, size_t errlen) {
  size_t pl = evkl - EVALUATORS_LEN; /* "/flags/SET/" */
  char end[2 * FLAGS_MAX_KEY_BYTES + FLAGS_ROOT_LEN + 4];
  if (pl >= sizeof(end))
    return 0; /* flags_validate_write refused such a key already */
  memcpy(end, evkey, pl);
  end[pl - 1]++; /* '/' -> '0': every key with the prefix */
  struct store_range_req q = {.key = (const uint8_t *)evkey,
                              .key_len = pl,
                              .range_end = (const uint8_t *)end,
                              .range_end_len = pl,
                              .limit = FLAGS_MAX_FLAGS + 2};
  struct store_range_result r;
  int rc = rd->range(rd->ctx, &q, &r);
  if (rc < 0)
    return rc;
  char *oldev = NULL;
  size_t oldlen = 0;
  bool old_read = false;
  char msg[MSG_MAX];
  for (size_t i = 0; i < r.resp.n_kvs && rc == 0; i++) {
    const struct store_kv *kv = &r.resp.kvs[i];
    size_t nl = kv->key_len - pl;
    const char *name = (const char *)kv->key + pl;
    if (nl == 0 || nl > FLAGS_MAX_KEY_BYTES || memchr(name, '/', nl) ||
        memchr(name, 0, nl) ||
        (nl == EVALUATORS_LEN && memcmp(name, EVALUATORS, nl) == 0))
      continue;
    if (!memmem(kv->value, kv->value_len, "$ref", 4))
      continue; /* evaluators cannot matter to it */
    const ProtobufCBinaryData *dummy;
    if (path_lookup(s, kv->key, kv->key_len, &dummy) != PATH_NONE)
      continue; /* rewritten (checked on its own) or deleted here */
    char fkey[FLAGS_MAX_KEY_BYTES + 1];
    memcpy(fkey, name, nl);
    fkey[nl] = 0;
    if (flags_validate_flag(fkey, (const char *)kv->value, kv->value_len,
                            newev->data ? (const char *)newev->data : "",
                            newev->len, msg, sizeof(msg)) == 0)
      continue;
    if (!old_read) {
      rc = stored_get(rd, evkey, evkl, &oldev, &oldlen);
      old_read = true;
      if (rc < 0)
        break;
    }
    char ignored[8];
    if (flags_validate_flag(fkey, (const char *)kv->value, kv->value_len, oldev,
                            oldlen, ignored, sizeof(ignored)) != 0)
      continue; /* already broken before this write: not this write's doing */
    rc = seterr(err, errlen, KEEL_EINVALIDFLAG,
                "%.*s: breaks the stored flag %.*s: %s", (int)evkl, evkey,
                (int)kv->key_len, (const char *)kv->key, msg);
  }
  free(oldev);
  store_range_result_free(&r);
  return rc;
}

static int check_put(const struct kv_flags_reader *rd, const struct scope *s,
                     const Etcdserverpb__PutRequest *p, char *err,
                     size_t errlen) {
  const char *key = (const char *)p->key.data;
  size_t kl = p->key.len;
  if (!kv_flags_key_is_flag(p->key.data, kl) || p->ignore_value)
    return 0;
  const char *set = key + FLAGS_ROOT_LEN, *kend = key + kl;
  const char *slash = memchr(set, '/', (size_t)(kend - set));
  char evkey[FLAGS_ROOT_LEN + 2 * FLAGS_MAX_KEY_BYTES + EVALUATORS_LEN + 4];
  size_t evkl = 0;
  bool is_ev = false;
  if (slash && slash > set &&
      (size_t)(slash + 1 - key) + EVALUATORS_LEN < sizeof(evkey)) {
    evkl = (size_t)(slash + 1 - key);
    memcpy(evkey, key, evkl);
    memcpy(evkey + evkl, EVALUATORS, EVALUATORS_LEN);
    evkl += EVALUATORS_LEN;
    evkey[evkl] = 0;
    is_ev = kl == evkl && memcmp(key, evkey, kl) == 0;
  }
  const char *ev = NULL;
  size_t evlen = 0;
  char *owned = NULL;
  int rc = 0;
  if (evkl > 0 && !is_ev)
    rc = path_evaluators(rd, s, evkey, evkl, &ev, &evlen, &owned);
  if (rc == 0)
    rc = flags_validate_write(key, kl,
                              p->value.data ? (const char *)p->value.data : "",
                              p->value.len, ev, evlen, err, errlen);
  free(owned);
  if (rc == 0 && is_ev)
    rc = check_stored_flags(rd, s, evkey, evkl, &p->value, err, errlen);
  return rc;
}

static int check_txn(const struct kv_flags_reader *rd, const struct scope *up,
                     const Etcdserverpb__TxnRequest *t, unsigned depth,
                     char *err, size_t errlen);

static int check_branch(const struct kv_flags_reader *rd,
                        const struct scope *up, Etcdserverpb__RequestOp **ops,
                        size_t n, unsigned depth, char *err, size_t errlen) {
  struct scope s = {.ops = ops, .n = n, .up = up};
  for (size_t i = 0; i < n; i++) {
    const Etcdserverpb__RequestOp *op = ops[i];
    int rc = 0;
    if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
      rc = check_put(rd, &s, op->request_put, err, errlen);
    else if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
      rc = check_txn(rd, &s, op->request_txn, depth + 1, err, errlen);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int check_txn(const struct kv_flags_reader *rd, const struct scope *up,
                     const Etcdserverpb__TxnRequest *t, unsigned depth,
                     char *err, size_t errlen) {
  /* etcd_check_txn() bounds the depth; this guard keeps the recursion
   * bounded even for a caller that skipped it. */
  if (depth > 64)
    return seterr(err, errlen, KEEL_ETOOMANYOPS, "txn nested too deeply");
  int rc = check_branch(rd, up, t->success, t->n_success, depth, err, errlen);
  if (rc == 0)
    rc = check_branch(rd, up, t->failure, t->n_failure, depth, err, errlen);
  return rc;
}

int kv_flags_check_put(const struct kv_flags_reader *rd,
                       const Etcdserverpb__PutRequest *put, char *err,
                       size_t errlen) {
  if (err && errlen)
    err[0] = 0;
  return check_put(rd, NULL, put, err, errlen);
}

int kv_flags_check_txn(const struct kv_flags_reader *rd,
                       const Etcdserverpb__TxnRequest *txn, char *err,
                       size_t errlen) {
  if (err && errlen)
    err[0] = 0;
  return check_txn(rd, NULL, txn, 0, err, errlen);
}

/* kv_flags.h — validation on write of feature flags: the check the etcd KV
 * service (svc_kv.c) runs on every Put and on every put of every Txn branch
 * before proposing, so that nothing invalid is ever stored under /flags/,
 * whichever client writes (etcdctl, libkeel, the keel CLI).
 *
 * Rules (the validator itself is flags.h, flags_validate_write()):
 *   /flags/<set>/<flag>        a valid flagd definition; its {"$ref": name}
 *                              must resolve in the set's $evaluators
 *   /flags/<set>/$evaluators   a valid evaluators object; and it must not
 *                              break a stored flag of the set that is valid
 *                              with the set's current $evaluators
 *   any other key under /flags/ (no set, no flag key) is refused.
 * Keys outside /flags/ are not looked at. A put with ignore_value keeps the
 * stored value, which was checked when it was written: it is not checked.
 *
 * "The set's $evaluators" for a put in a Txn: a put of that key on the
 * branch's path (the branch and the branches of the txns enclosing it) if
 * there is one; else none if a delete on that path covers it; else the
 * stored value. etcd refuses a txn that touches one key twice on one path,
 * so that is at most one op. The stored values are read from this node's
 * store as applied now (serializable): the check is not atomic with the
 * write (decision 0961) — a concurrent change of $evaluators can leave a
 * $ref dangling, which evaluates to PARSE_ERROR (as in flagd), never to a
 * crash or a wrong variant.
 *
 * Errors: 0 (valid, or nothing under /flags/); KEEL_EINVALIDFLAG,
 * KEEL_EPARSE (not JSON) or KEEL_ELIMIT (over a flags.h limit) with a
 * one-line message in err naming the key, the JSON path and the rule, e.g.
 * "/flags/web/new-ui: variants.on: all variants must be boolean" (the KV
 * service answers it as gRPC InvalidArgument); a store error when the
 * stored state could not be read; -ENOMEM.
 *
 * THREADS. Pure apart from the reader's range calls; call it on the thread
 * that may read the store (keeld: the loop thread).
 */
#ifndef KEEL_KV_FLAGS_H
#define KEEL_KV_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc.pb-c.h"
#include "store.h"

/* How the check reads stored flags: store_range() semantics (the result
 * is released with store_range_result_free()). kv_flags_reader_store()
 * fills one over a local store. */
struct kv_flags_reader {
  void *ctx;
  int (*range)(void *ctx, const struct store_range_req *req,
               struct store_range_result *out);
};

void kv_flags_reader_store(struct store *st, struct kv_flags_reader *out);

/* True when the key lies under /flags/ (the check has work to do). */
bool kv_flags_key_is_flag(const uint8_t *key, size_t len);

/* Checks a Put (see above). err gets the message (errlen bytes; 512 is
 * enough for any message; it is cut to fit). */
int kv_flags_check_put(const struct kv_flags_reader *rd,
                       const Etcdserverpb__PutRequest *put, char *err,
                       size_t errlen);

/* Checks every put of both branches of a Txn, nested txns included (a
 * txn etcd_check_txn() accepted: bounded depth and size). */
int kv_flags_check_txn(const struct kv_flags_reader *rd,
                       const Etcdserverpb__TxnRequest *txn, char *err,
                       size_t errlen);

#endif

/* etcd_codec.h — the translation between etcd's v3 protobuf messages and the
 * store's plain C structs, on the client side of the log: request validation
 * exactly as etcd's v3rpc layer does it before proposing, etcd's error table
 * (keel code -> gRPC status code and etcd's message), and the encoding of the
 * store's results as etcd responses (KV, Lease, mvccpb.Event for Watch).
 * The log side (keelstore.Request in, store_request out) is apply.h.
 *
 * THREADS. Every function is pure (no globals, no clock, no randomness):
 * any thread may call any of them at the same time.
 *
 * ERRORS. Functions return 0 or a negative keel code / -errno (keel_error.h).
 * etcd_error() turns any code into what the client must see; it is THE error
 * table of server/: every gRPC handler answers through it.
 *
 * OWNERSHIP. Validation reads its arguments only. Encoders return a reply
 * whose buffer the caller owns (etcd_reply_free()). Builders that fill
 * protobuf-c structs in place (etcd_kv_fill, etcd_event_fill) point into the
 * store's memory: keep the store result alive until the message is packed.
 */
#ifndef KEEL_ETCD_CODEC_H
#define KEEL_ETCD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.pb-c.h"
#include "rpc.pb-c.h"
#include "store.h"

/* ------------------------------------------------------------------ */
/* The error table                                                     */
/* ------------------------------------------------------------------ */

/* What a client sees for a keel code: a gRPC status code (enum
 * keel_grpc_code) and the status message. */
struct etcd_status {
  int code;            /* the keel code looked up (0 for success) */
  int grpc;            /* KEEL_GRPC_* */
  const char *message; /* static; etcd's exact text where etcd has one */
};

/* Looks code up in the one table. Codes etcd knows get etcd's gRPC code and
 * byte-exact message (clients match errors by message text, see
 * docs/etcd-compat.md §0). 0 gives OK with message "". A code with no etcd
 * counterpart gives UNKNOWN with keel_strerror(code), as etcd answers an
 * error it does not map (codes.Unknown, err.Error()). Never fails. */
struct etcd_status etcd_error(int code);

/* ------------------------------------------------------------------ */
/* Validation before proposing (etcd v3rpc key.go, lease.go)           */
/* ------------------------------------------------------------------ */

/* Nesting depth of a txn inside a txn that keel accepts (the store's). */
#define ETCD_TXN_MAX_DEPTH STORE_MAX_TXN_DEPTH
/* Hard cap on compares + ops at all levels of one txn, whatever
 * --max-txn-ops says: checked on the wire before unpacking, so a hostile
 * message cannot make protobuf-c allocate millions of structs. */
#define ETCD_TXN_MAX_ELEMS 65536
/* etcd's lease.MaxLeaseTTL (seconds). */
#define ETCD_MAX_LEASE_TTL 9000000000ll

/* Each returns 0 or the keel code of the first rule broken, in etcd's
 * order; etcd_error() gives the client's status. Rules are etcd's, then
 * keel's own limits after them (marked keel):
 *   range:  key empty -> KEEL_EEMPTYKEY; key or range_end over
 *           STORE_KEY_MAX -> KEEL_ETOOLARGE (keel); sort_target unknown
 *           -> -EINVAL (keel: etcd would crash).
 *   put:    key empty -> KEEL_EEMPTYKEY; ignore_value with a value ->
 *           KEEL_EVALUEPROVIDED; ignore_lease with a lease ->
 *           KEEL_ELEASEPROVIDED; key over STORE_KEY_MAX or value over
 *           STORE_VALUE_MAX -> KEEL_ETOOLARGE (keel).
 *   delete: key empty -> KEEL_EEMPTYKEY; sizes -> KEEL_ETOOLARGE (keel).
 *   txn:    etcd's checkTxnRequest: max(len compare, success, failure)
 *           over max_txn_ops (0: STORE_DEFAULT_MAX_TXN_OPS) ->
 *           KEEL_ETOOMANYOPS, a nested txn's budget being max_txn_ops minus
 *           its parent's count; a compare with an empty key ->
 *           KEEL_EEMPTYKEY; each op checked as above; an op with nothing
 *           set -> KEEL_EKEYNOTFOUND (etcd's answer); then checkIntervals on
 *           success and on failure: a key put twice or put inside a deleted
 *           range on one path -> KEEL_EDUPKEY (etcd's interval semantics
 *           exactly: a delete with range_end "\0" intersects nothing).
 *           keel: depth over ETCD_TXN_MAX_DEPTH -> KEEL_ETOOMANYOPS; an
 *           unknown compare result/target -> -EINVAL. */
int etcd_check_range(const Etcdserverpb__RangeRequest *r);
int etcd_check_put(const Etcdserverpb__PutRequest *r);
int etcd_check_delete_range(const Etcdserverpb__DeleteRangeRequest *r);
int etcd_check_txn(const Etcdserverpb__TxnRequest *r, uint32_t max_txn_ops);

/* CompactionRequest and LeaseRevokeRequest have no checks before proposing
 * in etcd: their errors come from apply (apply.h). */

/* etcd's LeaseGrant before proposing: an ID of 0 becomes new_id (the
 * caller's generator: positive, unique), a TTL over ETCD_MAX_LEASE_TTL is
 * refused (KEEL_ELEASETTLTOOLARGE), a TTL below min_ttl (etcd's minimum,
 * from the election timeout) is raised to it. The request is changed in
 * place and goes into the log so; every node then applies the same TTL.
 * Errors: KEEL_ELEASETTLTOOLARGE, -EINVAL (new_id <= 0 when needed). */
int etcd_prepare_lease_grant(Etcdserverpb__LeaseGrantRequest *r,
                             int64_t min_ttl, int64_t new_id);

/* Checks the nesting of an encoded TxnRequest before it is unpacked
 * (protobuf-c recurses per level and allocates per element): depth over
 * ETCD_TXN_MAX_DEPTH or more than ETCD_TXN_MAX_ELEMS compares and ops ->
 * KEEL_ETOOMANYOPS; a malformed wire -> KEEL_EBADMSG. Runs in O(len)
 * with recursion bounded by the depth limit. apply.c uses the same walk
 * on log entries. */
int etcd_wire_check_txn(const uint8_t *buf, size_t len);
/* The same for every TxnRequest held in field number `field` of an encoded
 * message (keelstore.Request's txn is field 12), after checking the outer
 * message's framing. */
int etcd_wire_check_embedded_txn(const uint8_t *buf, size_t len,
                                 uint32_t field);

/* Translates a validated protobuf txn into the store's structs for a
 * read-only or apply use. Arrays are allocated in *mem (free() it); the
 * structs point into msg, which must outlive them. Recursion is bounded
 * by ETCD_TXN_MAX_DEPTH whatever msg holds. Errors: -ENOMEM, KEEL_EBADMSG
 * (an op with nothing set, a bad enum), KEEL_ETOOMANYOPS (depth). */
int etcd_txn_to_store(const Etcdserverpb__TxnRequest *msg,
                      struct store_txn_req *out, void **mem);
/* The same for a range (no allocation). Unknown sort order reads as NONE
 * (etcd sorts only on ASCEND or DESCEND). Errors: -EINVAL (sort target). */
int etcd_range_to_store(const Etcdserverpb__RangeRequest *msg,
                        struct store_range_req *out);

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

/* What the answering member puts in every header (etcd's hdr.fill). */
struct etcd_header_ids {
  uint64_t cluster_id;
  uint64_t member_id;
  uint64_t raft_term;
};

/* An encoded reply: status.grpc OK and buf/len the packed response
 * message (len may be 0: an empty message), or an error status with no
 * buffer. buf is malloc'd; etcd_reply_free() releases it. */
struct etcd_reply {
  struct etcd_status status;
  uint8_t *buf;
  size_t len;
};
void etcd_reply_free(struct etcd_reply *r);
/* An error reply for code (buf NULL). */
void etcd_reply_error(struct etcd_reply *out, int code);

/* Fills a KeyValue from a store_kv (no copy: points into kv). */
void etcd_kv_fill(Mvccpb__KeyValue *out, const struct store_kv *kv);
/* Fills a watch Event from a store event; kv and prev are the caller's
 * storage for the event's key-values (prev used only when with_prev and
 * the event has one). */
void etcd_event_fill(Mvccpb__Event *out, Mvccpb__KeyValue *kv,
                     Mvccpb__KeyValue *prev, const struct store_event *ev,
                     bool with_prev);

/* A WatchResponse: the fields etcd sets beside the events (header revision
 * per docs/etcd-compat.md §0.2: the current revision for created/progress/
 * history responses, the last event's revision for live batches — the
 * caller's choice). cancel_reason may be NULL. */
struct etcd_watch_info {
  int64_t watch_id;
  int64_t revision; /* header revision */
  bool created;
  bool canceled;
  bool fragment;
  int64_t compact_revision;
  const char *cancel_reason;
};
/* Encodes info plus events[0..n) (each with its prev_kv when with_prev and
 * the store found one). Errors: -ENOMEM. */
int etcd_encode_watch(const struct etcd_watch_info *info,
                      const struct store_event *events, size_t n,
                      bool with_prev, const struct etcd_header_ids *ids,
                      struct etcd_reply *out);

/* RangeResponse from a store_range() result: header revision is the
 * store's current revision at the read (resp->revision), kvs, more, count.
 * Errors: -ENOMEM (out is then an error reply as well). */
int etcd_encode_range(const struct store_range_resp *resp,
                      const struct etcd_header_ids *ids,
                      struct etcd_reply *out);

/* The response to an applied write, chosen by the request type:
 * PutResponse, DeleteRangeResponse, TxnResponse (nested responses carry a
 * header with the revision only, as etcd), CompactionResponse,
 * LeaseGrantResponse, LeaseRevokeResponse, AlarmResponse (no header, as
 * etcd); LEASE_EXPIRE, LEASE_CHECKPOINT and NOOP have no client and give
 * an empty OK reply. resp->error != 0 gives that error's reply. Errors:
 * -ENOMEM, -EINVAL (type unknown). */
int etcd_encode_write(enum store_req_type type,
                      const struct store_response *resp,
                      const struct etcd_header_ids *ids,
                      struct etcd_reply *out);

/* LeaseTimeToLive: info NULL means the lease does not exist, which etcd
 * answers with TTL -1 and no error. remaining_ttl is the lessor's (the
 * timers are not in the store). keys may be NULL. Header revision rev. */
int etcd_encode_lease_ttl(int64_t id, const struct store_lease_info *info,
                          int64_t remaining_ttl,
                          const struct store_lease_keys *keys, int64_t rev,
                          const struct etcd_header_ids *ids,
                          struct etcd_reply *out);
/* One LeaseKeepAlive stream response: ttl is the renewed TTL, or 0 for a
 * lease that does not exist (etcd answers so, not with an error). */
int etcd_encode_lease_keepalive(int64_t id, int64_t ttl, int64_t rev,
                                const struct etcd_header_ids *ids,
                                struct etcd_reply *out);
/* LeaseLeases from store_lease_list(). */
int etcd_encode_leases(const struct store_lease_info *leases, size_t n,
                       int64_t rev, const struct etcd_header_ids *ids,
                       struct etcd_reply *out);

#endif

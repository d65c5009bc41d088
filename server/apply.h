/* apply.h — the log side of the etcd translation: a write is wrapped in a
 * keelstore.Request (proto/store.proto, decision 0003) and encoded for the
 * raft log; on every node a committed entry is decoded back into the
 * store's request structs and applied with store_apply().
 *
 * DETERMINISM. Decoding depends on the entry bytes alone (no clock, no
 * randomness, no node id, no node configuration: every bound here is a
 * compile-time constant), so every node turns the same entry into the same
 * store request, or into the same decode error. An entry that does not
 * decode is applied as a no-op (the applied index moves, nothing else) and
 * its response carries the decode error, identically everywhere
 * (docs/decisions/0750).
 *
 * THE FLOW of a write (what a KV/Lease handler does with these pieces):
 *   proposer (loop thread): keel_pb_unpack() the client's message (after
 *     etcd_wire_check_txn() for a TxnRequest); etcd_check_put/_delete_range/
 *     _txn() or etcd_prepare_lease_grant(); on error answer
 *     etcd_error(code). Else wrap the message in a Keelstore__Request (id:
 *     the waiter's, proposer: this member), apply_request_encode() with
 *     --max-request-bytes, propose (or forward to the leader).
 *   every node (disk thread): apply_entries() on the committed batch; the
 *     proposer finds its waiter by reqs[i].id / proposer and answers with
 *     apply_encode_response() (cluster id, member id, current term); the
 *     batch's events go to the watch hub (etcd_event_fill/etcd_encode_watch
 *     on the way out).
 *   reads: etcd_check_range(), etcd_range_to_store(), store_range(),
 *     etcd_encode_range().
 *
 * THREADS. Encoding/decoding are pure; apply_entries() is a store writer
 * (the disk thread only, store.h).
 *
 * ERRORS. 0 or a negative keel code / -errno (keel_error.h).
 */
#ifndef KEEL_APPLY_H
#define KEEL_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "etcd_codec.h"
#include "store.h"
#include "store.pb-c.h"

/* The largest log entry any node accepts or decodes (a fixed constant: a
 * per-node setting here would let nodes disagree about an entry). The
 * server's --max-request-bytes must not exceed it. */
#define APPLY_ENTRY_MAX (64u * 1024 * 1024)

/* Packs rq for the log. max_bytes is the node's --max-request-bytes (etcd
 * refuses a proposal whose encoded request is larger); 0 means
 * APPLY_ENTRY_MAX. *out is malloc'd (free()). Errors: KEEL_ETOOLARGE
 * (larger than max_bytes or APPLY_ENTRY_MAX), -EINVAL (no op set),
 * -ENOMEM. */
int apply_request_encode(const Keelstore__Request *rq, size_t max_bytes,
                         uint8_t **out, size_t *len);

/* One decoded log entry. req points into msg and mem: valid until
 * apply_request_free(). */
struct apply_request {
  uint64_t id;       /* keelstore.Request.id (0 if undecodable) */
  uint64_t proposer; /* keelstore.Request.proposer */
  int error;         /* 0, or why the entry is a no-op: KEEL_EBADMSG (malformed,
                        unknown op, bad enum), KEEL_ETOOLARGE (over
                        APPLY_ENTRY_MAX), KEEL_ETOOMANYOPS (txn nesting or size
                        past the wire limits), -ENOTSUP (auth changes: not yet) */
  struct store_request req; /* type NOOP when error != 0 */
  Keelstore__Request *msg;  /* owned */
  void *mem;                /* owned: txn arrays */
};

/* Decodes the data of a NORMAL entry (len 0: a no-op entry, error 0).
 * Never fails for bad input: out->error says what was wrong and out->req
 * is a NOOP. Returns 0, or -ENOMEM (out is then an error no-op too; the
 * caller must not apply on -ENOMEM since another node may have had the
 * memory: stop and retry). */
int apply_request_decode(const uint8_t *data, size_t len,
                         struct apply_request *out);
void apply_request_free(struct apply_request *r);

/* A batch of committed entries applied in one store_apply() call. */
struct apply_result {
  struct store_apply_result store; /* responses[i] answers entries[i] */
  struct apply_request *reqs;      /* n decoded requests */
  size_t n;
};

/* Decodes entries (NORMAL entries' data; every other type is a no-op for
 * the key-value state machine) and applies them with store_apply(), with
 * extra's append / hard_state / conf / meta if extra is not NULL (its
 * entries and n are ignored). Responses are then fixed up so that a
 * client sees etcd's error: an entry's decode error becomes its response
 * error; the store's KEEL_ENOTFOUND for a put/txn (ignore_value or
 * ignore_lease on a missing key) becomes KEEL_EKEYNOTFOUND; its
 * KEEL_ETOOLARGE for a lease grant becomes KEEL_ELEASETTLTOOLARGE.
 * Errors: store_apply()'s (nothing applied, out zeroed), -ENOMEM. */
int apply_entries(struct store *st, const struct store_entry *entries, size_t n,
                  const struct store_apply_batch *extra,
                  struct apply_result *out);
void apply_result_free(struct apply_result *r);

/* The etcd response for entry i of an applied batch (etcd_encode_write()
 * for the request's type). */
int apply_encode_response(const struct apply_result *r, size_t i,
                          const struct etcd_header_ids *ids,
                          struct etcd_reply *out);

#endif

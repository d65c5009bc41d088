/* keel.h — libkeel, the C client library for keel (and for any etcd v3
 * server): the manual.
 *
 * libkeel speaks the etcd v3 gRPC API (KV, Watch, Lease, Cluster,
 * Maintenance) over HTTP/2 to a list of endpoints. Two layers:
 *
 *   - the asynchronous core (keel_client_*, keel_range, keel_watch_create..)
 *     runs on a libuv loop the caller owns and drives;
 *   - thin blocking wrappers (keel_sync_*) run the same code on a private
 *     loop, for simple programs and command-line tools.
 *
 * CONVENTIONS
 *
 *   Errors: functions return 0 or a negative code (libuv style): keel's own
 *   codes (KEEL_E*, common/keel_error.h) or -errno. keel_strerror(code)
 *   names any of them. If a function that takes a callback returns an
 *   error, the callback is never called; if it returns 0, the callback is
 *   called exactly once (for watches and keep-alives: until they end).
 *
 *   Results: every request callback gets a `const struct keel_result *`
 *   (the error, the gRPC status, the server's message text, the endpoint)
 *   and, only when res->err == 0, a response struct. Both are valid during
 *   the callback only. To keep a response, call keel_resp_keep(resp) in the
 *   callback and later keel_resp_free(resp).
 *
 *   Byte strings (keys, values) are (pointer, length) pairs, not
 *   NUL-terminated, and may hold any bytes. Request structs and everything
 *   they point to are read during the call that takes them and copied
 *   (encoded); the caller may free them as soon as the call returns.
 *
 * THREADS
 *
 *   The asynchronous API is loop-thread only: every keel_* function taking a
 *   keel_client, keel_watcher or keel_keepalive must be called on the thread
 *   that runs the client's loop, and every callback runs there. Nothing
 *   blocks. Different clients on different loops are independent.
 *   A keel_sync handle may be used from any one thread at a time (it owns its
 *   loop); two threads need two handles.
 *
 * ENDPOINTS, FAILOVER, RETRIES (see docs/decisions/0720-client-retry-safety.md)
 *
 *   The client keeps a list of endpoints ("host:port" or "http://host:port")
 *   and a "current" one. A request goes to the current endpoint if its
 *   circuit breaker lets it; otherwise to the next one that does.
 *   keel_endpoints_refresh() replaces the list by the cluster's member list.
 *
 *   Circuit breaker, per endpoint: CLOSED (requests flow) -> OPEN after
 *   breaker_failures consecutive endpoint failures (connection failed or
 *   lost, "no leader", server stopped) -> HALF_OPEN after breaker_cooldown_ms
 *   (one probe request may go) -> CLOSED when the probe succeeds, OPEN again
 *   when it fails. Application errors (compacted, lease not found ...) count
 *   as successes: the endpoint answered.
 *
 *   A failed attempt is retried, after a delay drawn uniformly from
 *   [0, min(backoff_max_ms, backoff_base_ms * 2^(attempt-1))] ("full
 *   jitter"), on the next healthy endpoint, while attempts < max_attempts
 *   and the deadline allows — but only when repeating is safe:
 *     - the request certainly was not applied (connection never established,
 *       stream refused, "no leader", all breakers open): any request;
 *     - the request may have been applied (connection lost after it was
 *       sent, "request timed out", "leader changed"): only requests that are
 *       safe to repeat: reads (range, status, member list, lease
 *       time-to-live/list, hash-kv, alarm list), defragment, alarm disarm,
 *       member update, lease keep-alives, and any put/delete/txn whose
 *       struct keel_opts has
 *       idempotent = 1 (the caller asserts that, e.g., a txn's compare
 *       makes a repeat harmless).
 *   Otherwise the callback gets KEEL_EUNKNOWN ("outcome unknown: the request
 *   may or may not have been applied") and res->message keeps the transport
 *   or server text. It is never silently repeated.
 *
 * DEADLINES
 *
 *   Each request has a deadline (keel_opts.timeout_ms, else the client's
 *   request_timeout_ms) covering every attempt and backoff. When it passes
 *   during an attempt the callback gets KEEL_ETIMEOUT (for a write that
 *   also means the outcome is unknown); when the next backoff would cross
 *   it, the last attempt's error, its message ending "(after N attempts)".
 *   A request that is safe to repeat gives each attempt at most
 *   attempt_timeout_ms, then tries the next endpoint: a stuck member (one
 *   forwarding to a leader that is gone) does not use up the deadline.
 *
 *   Every call carries the metadata hasleader=true: a member without a
 *   leader answers "no leader" at once (and the request fails over)
 *   instead of waiting out the deadline.
 *
 * ERROR MAPPING (server text is always in res->message)
 *
 *   compacted -> KEEL_ECOMPACTED (res->compact_revision when the server
 *   says it: watches), future revision -> KEEL_EFUTUREREV, NOSPACE ->
 *   KEEL_ENOSPACE, lease not found -> KEEL_ELEASENOTFOUND, lease exists ->
 *   KEEL_ELEASEEXISTS, duplicate key -> KEEL_EDUPKEY, too many ops ->
 *   KEEL_ETOOMANYOPS, request too large -> KEEL_ETOOLARGE, no leader ->
 *   KEEL_ENOLEADER, not leader -> KEEL_ENOTLEADER, member errors ->
 *   KEEL_EMEMBER, permission -> KEEL_EPERM, auth -> KEEL_EAUTH, deadline ->
 *   KEEL_ETIMEOUT, connection errors -> KEEL_EUNAVAILABLE, message over the
 *   receive limit -> KEEL_ELIMIT, client closed -> KEEL_ECANCELED, anything
 *   else by gRPC status (INVALID_ARGUMENT -> -EINVAL, NOT_FOUND ->
 *   KEEL_ENOTFOUND, otherwise -EIO).
 *
 * EXAMPLE (the whole program: client/examples/keel_example.c)
 *
 *   const char *eps[] = {"127.0.0.1:2379", "127.0.0.2:2379"};
 *   struct keel_config cfg;
 *   keel_config_default(&cfg);
 *   cfg.endpoints = eps;
 *   cfg.n_endpoints = 2;
 *   keel_sync *s;
 *   if (keel_sync_new(&cfg, &s) != 0) ...
 *   int rc = keel_sync_put_str(s, "app/flag", "on", NULL);
 *   if (rc == KEEL_EUNKNOWN) ... re-read: it may or may not have happened
 *   else if (rc) fprintf(stderr, "%s: %s\n", keel_strerror(rc),
 *                        keel_sync_message(s));
 *   keel_sync_free(s);
 *
 * BOUNDS
 *
 *   max_pending outstanding requests per client (KEEL_EBUSY past it),
 *   max_watchers, max_keepalives, 64 endpoints, responses up to
 *   max_recv_msg_bytes. Snapshot data is handed to the caller chunk by chunk
 *   and never buffered whole.
 */
#ifndef KEEL_H
#define KEEL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "keel_error.h"

#define KEEL_MAX_ENDPOINTS 64

typedef struct keel_client keel_client;
typedef struct keel_watcher keel_watcher;
typedef struct keel_keepalive keel_keepalive;
typedef struct keel_sync keel_sync;

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

struct keel_config {
  const char *const *endpoints; /* "host:port" / "http://host:port" */
  size_t n_endpoints;           /* 1..KEEL_MAX_ENDPOINTS */
  uint64_t request_timeout_ms;  /* default deadline per request: 5000 */
  uint64_t attempt_timeout_ms;  /* per attempt of a request that is safe
                                 * to repeat: 2000 (0 = whole deadline) */
  uint64_t dial_timeout_ms;     /* TCP+HTTP/2 connect timeout: 2000 */
  uint32_t max_attempts;        /* attempts per request, incl. first: 5 */
  uint64_t backoff_base_ms;     /* 25 */
  uint64_t backoff_max_ms;      /* 1000 */
  uint32_t breaker_failures;    /* consecutive failures to open: 3 */
  uint64_t breaker_cooldown_ms; /* open -> half-open after: 1000 */
  uint32_t max_pending;         /* outstanding requests: 10000 */
  uint32_t max_watchers;        /* 10000 */
  uint32_t max_keepalives;      /* 10000 */
  size_t max_recv_msg_bytes;    /* 64 MiB */
  uint64_t stream_probe_ms;     /* watch/keep-alive stream liveness: 5000,
                                 * 0 = off (see keel_watch_create) */
};

/* Fills cfg with the defaults above (no endpoints). */
void keel_config_default(struct keel_config *cfg);

/* Creates a client on loop. cfg is copied (endpoint strings too). No
 * connection is made until the first request.
 * Errors: -EINVAL (no endpoints, too many, an endpoint that is not
 * host:port with a numeric address or "localhost", a zero limit), -ENOMEM. */
int keel_client_new(uv_loop_t *loop, const struct keel_config *cfg,
                    keel_client **out);

/* Closes the client: every pending request's callback gets KEEL_ECANCELED,
 * every watcher's callback gets a final batch with err KEEL_ECANCELED,
 * every keep-alive's callback gets KEEL_ECANCELED; connections close. cb
 * (may be NULL) runs once every libuv handle is released; the client is
 * freed then. Do not use c after this call. Callbacks called from here may
 * not start new requests (they fail with KEEL_ECANCELED). */
void keel_client_close(keel_client *c, void (*cb)(void *ud), void *ud);

/* The endpoint list now ("host:port"), for messages. Valid until the list
 * changes (keel_endpoints_refresh). */
size_t keel_endpoint_count(const keel_client *c);
const char *keel_endpoint_name(const keel_client *c, size_t i);

/* Breaker state of endpoint i: 0 closed, 1 open, 2 half-open. */
int keel_endpoint_breaker_state(const keel_client *c, size_t i);

/* ------------------------------------------------------------------ */
/* Results and common types                                            */
/* ------------------------------------------------------------------ */

struct keel_result {
  int err;                  /* 0 or a negative code */
  int grpc_status;          /* last gRPC status, -1 if none was received */
  const char *message;      /* server/transport text, never NULL */
  int64_t compact_revision; /* with KEEL_ECOMPACTED, when known (else 0) */
  const char *endpoint;     /* "host:port" of the last attempt, or "" */
  uint32_t attempts;        /* attempts made */
};

/* Per-request options; pass NULL for the defaults. */
struct keel_opts {
  uint64_t timeout_ms; /* deadline for all attempts; 0 = client default */
  int idempotent;      /* put/delete/txn: caller asserts a repeat is
                        * harmless, so it may be retried after a lost
                        * connection. Ignored by requests that are always
                        * safe. */
};

/* resp points to the response struct named by the request function. */
typedef void (*keel_cb)(const struct keel_result *res, const void *resp,
                        void *ud);

/* Keeps a response beyond its callback (returns resp, now owned by the
 * caller). */
void *keel_resp_keep(const void *resp);
/* Frees a response kept with keel_resp_keep or returned by keel_sync_*.
 * NULL is fine. */
void keel_resp_free(const void *resp);

struct keel_header {
  uint64_t cluster_id, member_id;
  int64_t revision;
  uint64_t raft_term;
};

struct keel_kv {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
  int64_t create_revision, mod_revision, version, lease;
};

/* Writes into end (at least key_len bytes) the range_end that selects every
 * key with prefix key; returns its length (0 when key is empty or all 0xff:
 * then use the single byte "\0" meaning "to the end"). */
size_t keel_prefix_end(const uint8_t *key, size_t key_len, uint8_t *end);

/* ------------------------------------------------------------------ */
/* KV                                                                  */
/* ------------------------------------------------------------------ */

enum keel_sort_order { KEEL_SORT_NONE, KEEL_SORT_ASCEND, KEEL_SORT_DESCEND };
enum keel_sort_target {
  KEEL_SORT_KEY,
  KEEL_SORT_VERSION,
  KEEL_SORT_CREATE,
  KEEL_SORT_MOD,
  KEEL_SORT_VALUE
};

/* Keys [key, range_end); range_end_len 0 = the single key; range_end "\0"
 * = every key >= key. */
struct keel_range_req {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *range_end;
  size_t range_end_len;
  int64_t limit;    /* 0 = no limit */
  int64_t revision; /* <= 0 = latest */
  enum keel_sort_order sort_order;
  enum keel_sort_target sort_target;
  int serializable, keys_only, count_only;
  int64_t min_mod_revision, max_mod_revision;
  int64_t min_create_revision, max_create_revision;
};
struct keel_range_resp {
  struct keel_header header;
  const struct keel_kv *kvs;
  size_t n_kvs;
  int more;
  int64_t count;
};

struct keel_put_req {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
  int64_t lease;
  int prev_kv, ignore_value, ignore_lease;
};
struct keel_put_resp {
  struct keel_header header;
  const struct keel_kv *prev_kv; /* NULL unless asked for and it existed */
};

struct keel_delete_req {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *range_end;
  size_t range_end_len;
  int prev_kv;
};
struct keel_delete_resp {
  struct keel_header header;
  int64_t deleted;
  const struct keel_kv *prev_kvs;
  size_t n_prev_kvs;
};

enum keel_cmp_result {
  KEEL_CMP_EQUAL,
  KEEL_CMP_GREATER,
  KEEL_CMP_LESS,
  KEEL_CMP_NOT_EQUAL
};
enum keel_cmp_target {
  KEEL_CMP_VERSION,
  KEEL_CMP_CREATE,
  KEEL_CMP_MOD,
  KEEL_CMP_VALUE,
  KEEL_CMP_LEASE
};
struct keel_compare {
  enum keel_cmp_result result;
  enum keel_cmp_target target;
  const uint8_t *key;
  size_t key_len;
  const uint8_t *range_end;
  size_t range_end_len;
  int64_t number;       /* version, create/mod revision or lease, per target */
  const uint8_t *value; /* target KEEL_CMP_VALUE */
  size_t value_len;
};

enum keel_op_type { KEEL_OP_RANGE, KEEL_OP_PUT, KEEL_OP_DELETE, KEEL_OP_TXN };
struct keel_txn_req;
struct keel_op {
  enum keel_op_type type;
  union {
    struct keel_range_req range;
    struct keel_put_req put;
    struct keel_delete_req del;
    const struct keel_txn_req *txn; /* nested txn */
  } u;
};
struct keel_txn_req {
  const struct keel_compare *compares;
  size_t n_compares;
  const struct keel_op *success;
  size_t n_success;
  const struct keel_op *failure;
  size_t n_failure;
};
struct keel_txn_resp;
struct keel_op_resp {
  enum keel_op_type type;
  union {
    const struct keel_range_resp *range;
    const struct keel_put_resp *put;
    const struct keel_delete_resp *del;
    const struct keel_txn_resp *txn;
  } u;
};
struct keel_txn_resp {
  struct keel_header header;
  int succeeded;
  const struct keel_op_resp *responses;
  size_t n_responses;
};

/* Each of these queues one request; cb gets the response struct named.
 * Returns 0; -EINVAL (NULL/empty key, nesting deeper than 16, request over
 * the 2 MiB send limit), KEEL_EBUSY (max_pending reached), KEEL_ECANCELED
 * (client closing), -ENOMEM. Request-level errors arrive in cb (see ERROR
 * MAPPING). keel_range: struct keel_range_resp. keel_put: keel_put_resp,
 * not retried after a lost connection unless opts->idempotent.
 * keel_delete: keel_delete_resp, same rule. keel_txn: keel_txn_resp, same
 * rule. keel_compact: struct keel_header (not retried: a repeat fails with
 * KEEL_ECOMPACTED), physical = wait until the space is reclaimed. */
int keel_range(keel_client *c, const struct keel_range_req *req,
               const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_put(keel_client *c, const struct keel_put_req *req,
             const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_delete(keel_client *c, const struct keel_delete_req *req,
                const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_txn(keel_client *c, const struct keel_txn_req *req,
             const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_compact(keel_client *c, int64_t revision, int physical,
                 const struct keel_opts *opts, keel_cb cb, void *ud);

/* ------------------------------------------------------------------ */
/* Lease                                                               */
/* ------------------------------------------------------------------ */

struct keel_lease_grant_resp {
  struct keel_header header;
  int64_t id, ttl;
};
struct keel_lease_ttl_resp {
  struct keel_header header;
  int64_t id, ttl, granted_ttl; /* ttl -1: expired / not found */
  const struct keel_bytes {
    const uint8_t *data;
    size_t len;
  } * keys;
  size_t n_keys;
};
struct keel_lease_list_resp {
  struct keel_header header;
  const int64_t *ids;
  size_t n_ids;
};

/* Grant: ttl seconds, id 0 = server chooses; resp keel_lease_grant_resp;
 * not retried after a lost connection (a repeat may grant a second lease).
 * Revoke: resp struct keel_header; KEEL_ELEASENOTFOUND for an unknown id;
 * not retried after a lost connection. Time-to-live: keys = also list
 * attached keys; resp keel_lease_ttl_resp. Leases: keel_lease_list_resp. */
int keel_lease_grant(keel_client *c, int64_t ttl, int64_t id,
                     const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_lease_revoke(keel_client *c, int64_t id, const struct keel_opts *opts,
                      keel_cb cb, void *ud);
int keel_lease_ttl(keel_client *c, int64_t id, int keys,
                   const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_lease_leases(keel_client *c, const struct keel_opts *opts, keel_cb cb,
                      void *ud);

/* Keep-alive: keeps lease id alive until stopped, renewing every TTL/3 (the
 * TTL from the last answer; the first renewal is sent at once). All
 * keep-alives of a client share one LeaseKeepAlive stream, which is
 * reopened (with backoff, on another endpoint if needed) when it breaks;
 * renewals are safe to repeat. cb (may be NULL) gets each renewal: err 0
 * and the new ttl; or, once and last, err KEEL_ELEASENOTFOUND (the lease
 * expired or was revoked) or KEEL_ECANCELED (client closed); after that
 * final call the keep-alive is freed by the library. ttl is in seconds.
 * Returns 0; -EINVAL (id <= 0), KEEL_ELIMIT (max_keepalives), -ENOMEM. */
typedef void (*keel_keepalive_cb)(keel_keepalive *ka, int err, int64_t ttl,
                                  void *ud);
int keel_lease_keepalive(keel_client *c, int64_t id, keel_keepalive_cb cb,
                         void *ud, keel_keepalive **out);
/* Stops and frees a keep-alive; cb is not called again. The lease then
 * expires on its own unless revoked. */
void keel_lease_keepalive_stop(keel_keepalive *ka);

/* ------------------------------------------------------------------ */
/* Watch                                                               */
/* ------------------------------------------------------------------ */

struct keel_watch_req {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *range_end; /* as in keel_range_req */
  size_t range_end_len;
  int64_t start_revision; /* first revision to see; 0 = from now */
  int prev_kv, no_put, no_delete, progress_notify;
};

enum keel_event_type { KEEL_EVENT_PUT, KEEL_EVENT_DELETE };
struct keel_event {
  enum keel_event_type type;
  struct keel_kv kv;             /* DELETE: key and mod_revision only */
  const struct keel_kv *prev_kv; /* NULL unless prev_kv and it existed */
};

/* One delivery to a watcher. err 0: events (possibly none: a progress
 * notification, then header.revision says the watcher has seen everything
 * up to it) in revision order. err != 0 ends the watcher: KEEL_ECOMPACTED
 * (compact_revision: the oldest revision still available; watch again from
 * there after re-reading), KEEL_ECANCELED (client closed or the server
 * canceled the watch: message says why), KEEL_EBADMSG (the server sent
 * events out of revision order); the watcher is freed after that callback
 * returns. */
struct keel_watch_batch {
  int err;
  const char *message;
  int64_t compact_revision;
  struct keel_header header;
  const struct keel_event *events;
  size_t n_events;
};
typedef void (*keel_watch_cb)(keel_watcher *w,
                              const struct keel_watch_batch *batch, void *ud);

/* Starts a watcher. Every watcher of a client shares one Watch stream on
 * the current endpoint. When the stream breaks, it is reopened (with
 * backoff, on another endpoint if needed) and every watcher resumes from
 * the revision after the last one it was given: no gap, no duplicate.
 * A stream that hangs without breaking (a frozen server) is found by a
 * probe: every stream_probe_ms, if nothing arrived since the last tick, a
 * progress request is sent (its answer is not delivered); no answer by the
 * next tick and the stream is treated as broken. The keep-alive stream is
 * treated as broken when a renewal stays unanswered for stream_probe_ms.
 * The batch and everything it points to are valid during the callback
 * only (keel_resp_keep does not apply).
 * Events of one revision are delivered together.
 * Returns 0; -EINVAL (empty key), KEEL_ELIMIT (max_watchers), KEEL_ECANCELED
 * (client closing), -ENOMEM. */
int keel_watch_create(keel_client *c, const struct keel_watch_req *req,
                      keel_watch_cb cb, void *ud, keel_watcher **out);
/* Cancels a watcher (the server is told); cb is not called again; w is
 * freed. Allowed inside its own callback. */
void keel_watch_cancel(keel_watcher *w);
/* Asks the server for a progress notification on the stream: every watcher
 * of the client then gets an empty batch whose header.revision is the
 * server's current revision. (etcd 3.4 answers this even for a watcher
 * still catching up, so it does not move resume points; per-watcher
 * progress_notify answers, sent only to caught-up watchers, do.) Returns
 * 0, or KEEL_EUNAVAILABLE when the stream is not up (reconnecting). */
int keel_watch_progress(keel_client *c);
/* The next revision w expects (the last delivered + 1; 0 before the first
 * answer of a watch "from now"). */
int64_t keel_watch_next_revision(const keel_watcher *w);

/* ------------------------------------------------------------------ */
/* Cluster                                                             */
/* ------------------------------------------------------------------ */

struct keel_member {
  uint64_t id;
  const char *name; /* "" until the member started */
  const char *const *peer_urls;
  size_t n_peer_urls;
  const char *const *client_urls;
  size_t n_client_urls;
  int is_learner;
};
struct keel_members_resp {
  struct keel_header header;
  const struct keel_member *added; /* member add only, else NULL */
  const struct keel_member *members;
  size_t n_members;
};

/* resp keel_members_resp for all five (added set by member_add only).
 * List and update (setting the same URLs twice is harmless) are retried;
 * add, remove, promote are not retried after a lost connection
 * (KEEL_EUNKNOWN). Server errors about membership (member not found,
 * learner not in sync, peer URL exists, ...) map to KEEL_EMEMBER; the
 * message says which. -EINVAL: no peer URLs. */
int keel_member_list(keel_client *c, int linearizable,
                     const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_member_add(keel_client *c, const char *const *peer_urls, size_t n,
                    int is_learner, const struct keel_opts *opts, keel_cb cb,
                    void *ud);
int keel_member_remove(keel_client *c, uint64_t id,
                       const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_member_update(keel_client *c, uint64_t id,
                       const char *const *peer_urls, size_t n,
                       const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_member_promote(keel_client *c, uint64_t id,
                        const struct keel_opts *opts, keel_cb cb, void *ud);

/* Asks for the member list and replaces the endpoint list with the
 * members' client URLs ("http://" only; at most KEEL_MAX_ENDPOINTS; breaker
 * state and connections kept for endpoints that stay). When the answer has
 * no usable URL the old list stays. cb gets keel_members_resp. Requests in
 * flight on a dropped endpoint end as after a lost connection. */
int keel_endpoints_refresh(keel_client *c, keel_cb cb, void *ud);

/* ------------------------------------------------------------------ */
/* Maintenance                                                         */
/* ------------------------------------------------------------------ */

struct keel_status_resp {
  struct keel_header header;
  const char *version;
  int64_t db_size, db_size_in_use;
  uint64_t leader, raft_index, raft_term, raft_applied_index;
  const char *const *errors;
  size_t n_errors;
  int is_learner;
};
enum keel_alarm_type {
  KEEL_ALARM_NONE,
  KEEL_ALARM_NOSPACE,
  KEEL_ALARM_CORRUPT
};
struct keel_alarm_resp {
  struct keel_header header;
  const struct keel_alarm {
    uint64_t member_id;
    enum keel_alarm_type type;
  } * alarms;
  size_t n_alarms;
};
struct keel_hashkv_resp {
  struct keel_header header;
  uint32_t hash;
  int64_t compact_revision;
};

/* Functions with an `endpoint` argument ask that endpoint (index into the
 * endpoint list: a member-local question, retried on it only), or, with
 * endpoint -1, the current one with failover. The others go to the current
 * endpoint with failover.
 * status: keel_status_resp. alarm_list: keel_alarm_resp.
 * alarm_disarm(member 0 = all, type): keel_alarm_resp (safe to repeat).
 * defragment: keel_header (safe to repeat). hashkv(revision 0 = latest):
 * keel_hashkv_resp. move_leader(target member id; must be sent to the
 * leader, else KEEL_ENOTLEADER): keel_header, not retried.
 * Errors as for the KV functions, plus -EINVAL for an endpoint index out of
 * range. */
int keel_status(keel_client *c, int endpoint, const struct keel_opts *opts,
                keel_cb cb, void *ud);
int keel_alarm_list(keel_client *c, const struct keel_opts *opts, keel_cb cb,
                    void *ud);
int keel_alarm_disarm(keel_client *c, uint64_t member_id,
                      enum keel_alarm_type type, const struct keel_opts *opts,
                      keel_cb cb, void *ud);
int keel_defragment(keel_client *c, int endpoint, const struct keel_opts *opts,
                    keel_cb cb, void *ud);
int keel_hashkv(keel_client *c, int endpoint, int64_t revision,
                const struct keel_opts *opts, keel_cb cb, void *ud);
int keel_move_leader(keel_client *c, int endpoint, uint64_t target_id,
                     const struct keel_opts *opts, keel_cb cb, void *ud);

/* Streams a snapshot of the endpoint's database. on_data gets each chunk
 * (bytes valid during the call) and the bytes still to come; returning
 * non-zero stops the transfer (done then gets KEEL_ECANCELED). done is
 * called once, last: res->err 0 when every byte arrived, resp NULL. Never
 * retried (a restart would hand the caller bytes twice): on failure start
 * again. No deadline unless opts->timeout_ms. */
typedef int (*keel_snapshot_data_cb)(const uint8_t *data, size_t len,
                                     uint64_t remaining, void *ud);
int keel_snapshot(keel_client *c, int endpoint, const struct keel_opts *opts,
                  keel_snapshot_data_cb on_data, keel_cb done, void *ud);

/* ------------------------------------------------------------------ */
/* Blocking wrappers                                                   */
/* ------------------------------------------------------------------ */

/* A client on a private loop. Each keel_sync_X runs the asynchronous X to
 * completion and returns its res.err; on success *out (where there is one)
 * is an owned response: free it with keel_resp_free. On failure *out is
 * NULL and keel_sync_message(s) says what the server or transport said
 * (valid until the next call on s). */
int keel_sync_new(const struct keel_config *cfg, keel_sync **out);
void keel_sync_free(keel_sync *s);
/* The client and its private loop: the asynchronous API (watches,
 * keep-alives) may be used on them from the same thread, between sync
 * calls; uv_run(keel_sync_loop(s), ...) drives it. */
keel_client *keel_sync_client(keel_sync *s);
uv_loop_t *keel_sync_loop(keel_sync *s);
const char *keel_sync_message(const keel_sync *s);
int64_t keel_sync_compact_revision(const keel_sync *s);

int keel_sync_range(keel_sync *s, const struct keel_range_req *req,
                    const struct keel_opts *opts, struct keel_range_resp **out);
int keel_sync_put(keel_sync *s, const struct keel_put_req *req,
                  const struct keel_opts *opts, struct keel_put_resp **out);
int keel_sync_delete(keel_sync *s, const struct keel_delete_req *req,
                     const struct keel_opts *opts,
                     struct keel_delete_resp **out);
int keel_sync_txn(keel_sync *s, const struct keel_txn_req *req,
                  const struct keel_opts *opts, struct keel_txn_resp **out);
int keel_sync_compact(keel_sync *s, int64_t revision, int physical);
int keel_sync_lease_grant(keel_sync *s, int64_t ttl, int64_t id,
                          struct keel_lease_grant_resp **out);
int keel_sync_lease_revoke(keel_sync *s, int64_t id);
int keel_sync_lease_ttl(keel_sync *s, int64_t id, int keys,
                        struct keel_lease_ttl_resp **out);
int keel_sync_lease_leases(keel_sync *s, struct keel_lease_list_resp **out);
int keel_sync_member_list(keel_sync *s, struct keel_members_resp **out);
int keel_sync_status(keel_sync *s, int endpoint, struct keel_status_resp **out);
int keel_sync_endpoints_refresh(keel_sync *s);

/* Convenience: get one key's value (KEEL_ENOTFOUND when absent) as a
 * malloc'd, NUL-terminated copy (free()); put one value. */
int keel_sync_get(keel_sync *s, const char *key, char **value, size_t *len,
                  int64_t *mod_revision);
int keel_sync_put_str(keel_sync *s, const char *key, const char *value,
                      int64_t *revision);

#endif

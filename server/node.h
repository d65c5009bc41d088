/* node.h — the keel node: the raft core, the store, the disk thread and the
 * peer transport driven from one libuv loop. This header is the manual for
 * what keeld's services (the client port handlers) call.
 *
 * Everything here runs on the loop thread. The node owns the raft core, the
 * disk thread and the peer transport; it borrows the store (opened and
 * closed by the caller, outliving the node).
 *
 * Writes: node_propose() takes an encoded keelstore.Request (proto/
 * store.proto) *without* its id/proposer fields; the node gives it a request
 * id and this member's id (by prefixing the two fields: in protobuf the last
 * occurrence of a field wins, so a caller's own values are overridden), puts
 * it in the log and calls the callback once the entry was applied on this
 * node (with the store's response), or once its fate is known otherwise:
 *
 *   0                   applied; applied->resp is the store's response for
 *                       it (its error field may be set: a request error,
 *                       or the entry did not decode and was a no-op)
 *   KEEL_EDROPPED       certainly not applied (refused, or its log position
 *                       was taken by another entry)
 *   KEEL_EUNKNOWN       the leader changed (or the node stopped) before it
 *                       committed: it may still be applied
 *   KEEL_ETIMEOUT       no outcome within the request timeout (unknown too)
 *
 * Reads: node_read() calls back when a read may run: at once for a
 * serializable read, after a ReadIndex round and once the applied index
 * reached the read index for a linearizable one. The callback then reads the
 * store directly (store_range()...).
 *
 * Apply: committed entries go to the `apply` hook (struct node_apply_ops)
 * on the disk thread, which decodes them and applies them with ONE
 * store_apply() together with the Ready's log append and hard state. The
 * hook is the seam to server/apply (apply_entries()); node_standin.h holds
 * a test stand-in that knows only puts.
 */
#ifndef KEEL_NODE_H
#define KEEL_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "disk_thread.h"
#include "metrics.h"
#include "store.h"

struct keel_config;
struct node;
struct peer_stats;

/* What the apply hook produced for one batch of n committed entries. The
 * node allocates ids/proposers (n each, zeroed); the hook fills them and
 * points `responses` at its n store responses (a response's error carries
 * a request error, a decode error included), and keeps whatever it needs
 * in `result` until release(). */
struct node_apply_out {
  uint64_t *ids;       /* keelstore.Request.id, 0 when unknown */
  uint64_t *proposers; /* keelstore.Request.proposer */
  const struct store_response *responses;
  void *result; /* the hook's own, e.g. server/apply's struct apply_result */
};

/* The seam to the request codec (server/apply.h's apply_entries() has this
 * shape). apply() runs on the disk thread: it decodes the NORMAL entries of
 * ents[0..n) into store requests (every other entry, and one that does not
 * decode, is a no-op — the same on every node) and applies them with ONE
 * store_apply() that also carries extra's append / hard_state / conf /
 * meta (extra->entries and ->n ignored). Returns 0, or an error of the
 * store (nothing applied) or -ENOMEM: the node then stops (never applies a
 * batch differently from the other nodes). release() runs on the loop
 * thread once the waiters were answered. node_standin.h holds a put-only
 * TEST stand-in. */
struct node_apply_ops {
  void *ud;
  int (*apply)(void *ud, struct store *st, const struct store_entry *ents,
               size_t n, const struct store_apply_batch *extra,
               struct node_apply_out *out);
  void (*release)(void *ud, struct node_apply_out *out);
};

/* A proposal's result as the apply produced it: resp is responses[index]
 * of `result` (so a service can encode the etcd response from the hook's
 * own result). Valid during the callback only. */
struct node_applied {
  const struct store_response *resp;
  const void *result;
  size_t index;
};

/* This member was removed from the cluster (its removal applied here); the
 * program should stop (node_stop) and exit. */
typedef void (*node_removed_fn)(void *ud);

/* An observer of what the state machine applied (keeld feeds the watch
 * hub with it). Called on the loop thread once per disk job that applied
 * committed entries or installed a snapshot, in apply order, after the
 * LMDB commit (so the revisions are readable) and before the waiters of
 * those entries are answered. out is NULL when no entry was applied; else
 * it is the apply hook's output (out->result is the hook's own, e.g.
 * server/apply's struct apply_result), valid during the call only.
 * snapshot is true when the job installed a snapshot first (the store's
 * revisions then jumped; entries in `out` were applied after it). */
typedef void (*node_applied_fn)(void *ud, const struct node_apply_out *out,
                                bool snapshot);

struct node_options {
  const struct keel_config *cfg; /* read during node_new() only */
  struct store *store;           /* borrowed; outlives the node */
  struct node_apply_ops apply;   /* apply required */
  uint64_t seed;                 /* PRNG seed (elections, backoff) */
  size_t max_waiters;            /* proposals waiting; 0: 8192 */
  size_t max_reads;              /* reads waiting; 0: 8192 */
  uint64_t request_timeout_ms;   /* 0: 5000 */
  node_removed_fn on_removed;    /* may be NULL */
  void *removed_ud;
  node_applied_fn on_applied; /* may be NULL */
  void *applied_ud;
};

/* status: see the table above; `applied` is set when status is 0 and the
 * entry was a write (NULL for a membership change). */
typedef void (*node_propose_fn)(void *ud, int status,
                                const struct node_applied *applied);
/* status 0: read now. Else KEEL_ETIMEOUT, KEEL_ENOLEADER, KEEL_EBUSY,
 * KEEL_ESTOPPED. */
typedef void (*node_read_fn)(void *ud, int status);
typedef void (*node_stopped_fn)(void *ud);

/* Creates and starts the node: raft from the store's durable state (or the
 * --initial-cluster configuration for a new store), the disk thread, the
 * peer transport (listening on --listen-peer-urls, dialing every member) and
 * the tick timer. Errors (with a one-line reason in err): KEEL_ECONFIG (the
 * store belongs to another cluster), a raft_new() error, a transport or
 * disk-thread error, -ENOMEM. */
int node_new(uv_loop_t *loop, const struct node_options *opt, struct node **out,
             char *err, size_t errlen);

/* Proposes a write (see above). Returns 0 (cb will be called exactly once,
 * never from inside this call) or, with cb not called: KEEL_ESTOPPED,
 * KEEL_EBUSY (too many waiters, or the core's uncommitted limit),
 * KEEL_ENOLEADER, KEEL_ETOOLARGE, -EINVAL. */
int node_propose(struct node *n, const uint8_t *req, size_t len,
                 node_propose_fn cb, void *ud);

/* Proposes a membership change (leader only; decision 0102: one at a time,
 * after the leader's no-op committed). type is enum raft_conf_change_type;
 * name and peer_url (may be NULL) go into the member list (store meta
 * "members") and, for an added member, into the peer transport. cb gets 0
 * once applied here, KEEL_EMEMBER if the core ignored it when applying, or
 * the outcomes of node_propose(). Returns 0 or, with cb not called:
 * KEEL_ENOTLEADER, KEEL_EBUSY (a change pending, or too many waiters),
 * KEEL_EMEMBER (makes no sense for this configuration), KEEL_ESTOPPED,
 * -EINVAL. Followers do not forward it yet. */
int node_propose_conf_change(struct node *n, int type, uint64_t node_id,
                             const char *name, const char *peer_url,
                             node_propose_fn cb, void *ud);

/* The member list as of the applied index: at most cap entries copied,
 * the count returned. */
struct node_member {
  uint64_t id;
  const char *name;     /* valid until the next loop turn */
  const char *peer_url; /* "" when unknown */
  bool learner;
};
size_t node_members(const struct node *n, struct node_member *out, size_t cap);

/* Asks for a read point (see above). Returns 0 (cb called exactly once,
 * never from inside this call) or KEEL_ESTOPPED / KEEL_EBUSY. */
int node_read(struct node *n, bool linearizable, node_read_fn cb, void *ud);

struct node_status {
  uint64_t id;
  uint64_t cluster_id;
  uint64_t leader; /* 0 when unknown */
  int role;        /* enum raft_role */
  uint64_t term;
  uint64_t commit;
  uint64_t applied;
  uint64_t last_index;
  uint64_t leader_changes;
  uint64_t proposals_applied;
  uint64_t proposals_failed;
  uint64_t readies; /* disk jobs completed */
};
void node_status(const struct node *n, struct node_status *out);

/* Histograms for /metrics, filled on the loop thread from timings taken
 * on the disk thread. fsync: seconds of each disk job write that had to be
 * durable (raft log append and/or hard state, with the apply of that turn
 * when there was one: one LMDB txn, one fsync). apply: seconds of each
 * apply hook call (decode + store_apply of a committed batch). */
struct node_metrics {
  struct metrics_histogram fsync;
  struct metrics_histogram apply;
};
void node_metrics(const struct node *n, struct node_metrics *out);

/* The peer transport's figures for member id (peer.h). Errors:
 * KEEL_ENOTFOUND (not a peer of this node). */
int node_peer_stats(const struct node *n, uint64_t id, struct peer_stats *out);

/* Starts handing leadership to voter `to` (raft_transfer_leader); the
 * caller watches node_status().leader for the outcome. Returns 0 (also
 * when `to` is this node: nothing to do), KEEL_ENOTLEADER (this node does
 * not lead), KEEL_EMEMBER (to is not a voter: unknown or a learner),
 * KEEL_ESTOPPED, or raft_transfer_leader()'s errors. */
int node_transfer_leader(struct node *n, uint64_t to);

/* Runs a store writer job (defragment, physical compaction) on the node's
 * disk thread, in order with its Ready jobs, so every LMDB write txn stays
 * on one thread (store.h). disk_thread_submit()'s contract; also
 * KEEL_ESTOPPED once the node is closing. The job must not change what the
 * raft log or the state machine hold. */
int node_disk_submit(struct node *n, disk_work_fn work, disk_done_fn done,
                     void *arg);

/* Graceful stop: refuses new requests; a leader hands leadership to another
 * voter (waiting at most transfer_ms for it); then every waiter is
 * completed (KEEL_EUNKNOWN / KEEL_ESTOPPED), the disk queue drained, the
 * transport closed and the core freed; then cb runs and the node is gone.
 * Call once. */
void node_stop(struct node *n, uint64_t transfer_ms, node_stopped_fn cb,
               void *ud);

#endif

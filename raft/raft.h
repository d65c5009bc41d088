/* raft.h — keel's Raft consensus core: the manual.
 *
 * The core is a pure, deterministic state machine modelled on etcd's RawNode
 * and cowsql/raft. It does no I/O, reads no clock, holds no global state and
 * takes no locks. Time arrives as raft_tick() calls, messages as raft_step()
 * calls, randomness from a PRNG seeded through the configuration. Everything
 * the caller must do comes out of raft_ready() as plain C structs:
 *
 *   loop:
 *     raft_step(r, &msg) / raft_tick(r) / raft_propose(r, ...) ...
 *     if (raft_has_ready(r)) {
 *       struct raft_ready rd;
 *       raft_ready(r, &rd);
 *       1. persist rd.snapshot (if any), rd.entries, rd.hard_state (one sync)
 *       2. only then send rd.messages
 *       3. apply rd.committed (calling raft_apply_conf_change for each
 *          RAFT_ENTRY_CONF_CHANGE entry), serve rd.read_states once the
 *          applied index reaches their index
 *       raft_advance(r, &rd);
 *     }
 *
 * Only one Ready is outstanding at a time: raft_has_ready() answers false
 * between raft_ready() and raft_advance(). The caller may keep calling
 * raft_step()/raft_tick() while its disk write is in flight; what those
 * produce appears in the next Ready. Messages produced between two Readies
 * accumulate in the core, so drain a Ready every loop turn (the number of
 * messages per step is bounded by the cluster size; the committed entries
 * of one Ready by 4 * max_msg_bytes; pending reads by
 * RAFT_MAX_PENDING_READS; the uncommitted log by max_uncommitted).
 *
 * Errors: functions return 0 or a negative keel code (common/keel_error.h).
 *
 * Ownership: the core copies every byte it is given (entry data, contexts).
 * Everything a Ready points to is owned by the core and stays valid until
 * raft_advance() for that Ready (or raft_free()).
 *
 * Membership changes take effect when applied (etcd style, decision 0102):
 * the caller decodes a committed RAFT_ENTRY_CONF_CHANGE entry and calls
 * raft_apply_conf_change(). Snapshot data never passes through the core: a
 * snapshot message carries only its meta; the transport streams the data in
 * chunks (decision 0101).
 */
#ifndef KEEL_RAFT_H
#define KEEL_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most voters + learners a configuration may hold. */
#define RAFT_MAX_NODES 16
/* The most bytes of a ReadIndex context. */
#define RAFT_MAX_CONTEXT 64
/* The most ReadIndex requests waiting at a leader at once. */
#define RAFT_MAX_PENDING_READS 1024

enum raft_role {
  RAFT_FOLLOWER = 0,
  RAFT_PRE_CANDIDATE = 1,
  RAFT_CANDIDATE = 2,
  RAFT_LEADER = 3,
};

/* Same numbers as keelraft.EntryType in proto/raft.proto. */
enum raft_entry_type {
  RAFT_ENTRY_NORMAL = 0,
  RAFT_ENTRY_CONF_CHANGE = 1,
  RAFT_ENTRY_NOOP = 2,
};

struct raft_entry {
  uint64_t term;
  uint64_t index;
  int type; /* enum raft_entry_type */
  void *data;
  size_t len;
};

/* Same numbers as keelraft.MessageType in proto/raft.proto. */
enum raft_msg_type {
  RAFT_MSG_NONE = 0,
  RAFT_MSG_APPEND = 1,
  RAFT_MSG_APPEND_RESPONSE = 2,
  RAFT_MSG_VOTE = 3,
  RAFT_MSG_VOTE_RESPONSE = 4,
  RAFT_MSG_PRE_VOTE = 5,
  RAFT_MSG_PRE_VOTE_RESPONSE = 6,
  RAFT_MSG_HEARTBEAT = 7,
  RAFT_MSG_HEARTBEAT_RESPONSE = 8,
  RAFT_MSG_SNAPSHOT = 9,
  RAFT_MSG_SNAPSHOT_RESPONSE = 10,
  RAFT_MSG_TIMEOUT_NOW = 11,
  RAFT_MSG_READ_INDEX = 12,
  RAFT_MSG_READ_INDEX_RESPONSE = 13,
  RAFT_MSG_TRANSFER_LEADER = 14, /* index = the node to transfer to */
  RAFT_MSG_PROPOSE = 15,
};
#define RAFT_MSG_TYPE_MAX 15

/* What the core knows of a snapshot: keelstore.SnapshotMeta without the
 * fields that belong to the application (members, size, sha256). */
struct raft_snapshot_meta {
  uint64_t index; /* last index the snapshot covers; 0 = no snapshot */
  uint64_t term;  /* term of that entry */
  uint64_t voters[RAFT_MAX_NODES];
  size_t n_voters;
  uint64_t learners[RAFT_MAX_NODES];
  size_t n_learners;
};

/* keelraft.SnapshotChunk. The core always sends offset 0, no data, last =
 * true: the transport fills in the stream (decision 0101). */
struct raft_snapshot_chunk {
  struct raft_snapshot_meta meta;
  uint64_t offset;
  const void *data;
  size_t len;
  bool last;
};

/* keelraft.Message, field for field. Which fields matter depends on type
 * (see proto/raft.proto). Messages the core emits own their entries and
 * context (owned by the core until raft_advance); messages given to
 * raft_step are only read during the call. */
struct raft_message {
  int type; /* enum raft_msg_type */
  uint64_t from;
  uint64_t to;
  uint64_t term;
  uint64_t log_term;
  uint64_t index;
  struct raft_entry *entries;
  size_t n_entries;
  uint64_t commit;
  bool reject;
  uint64_t reject_hint;
  uint64_t conflict_term;
  void *context;
  size_t context_len;
  struct raft_snapshot_chunk snapshot; /* meaningful for RAFT_MSG_SNAPSHOT */
  bool transfer;
};

struct raft_hard_state {
  uint64_t term;
  uint64_t vote;
  uint64_t commit;
};

struct raft_soft_state {
  uint64_t leader; /* 0 when unknown */
  int role;        /* enum raft_role */
};

/* A ReadIndex result: once the applied index reaches `index`, a read for
 * `context` is linearizable. */
struct raft_read_state {
  uint64_t index;
  void *context;
  size_t context_len;
};

struct raft_ready {
  bool soft_state_changed;
  struct raft_soft_state soft_state;

  bool hard_state_changed; /* persist hard_state when set */
  struct raft_hard_state hard_state;

  bool has_snapshot; /* install snapshot (meta; data came via transport) */
  struct raft_snapshot_meta snapshot;

  struct raft_entry *entries; /* append to the log, replacing any suffix */
  size_t n_entries;

  struct raft_entry *committed; /* apply in order */
  size_t n_committed;

  struct raft_message *messages; /* send after the persist above */
  size_t n_messages;

  struct raft_read_state *read_states;
  size_t n_read_states;
};

/* The read-only view of the durable log, implemented by store/ on LMDB and
 * by raft_memstore (below) in memory. Indexes below first_index are
 * compacted; the latest snapshot covers at least them (its index is >=
 * first_index - 1) and term(first_index - 1) is still known. An empty log
 * has first_index 1 and last_index 0. */
struct raft_storage {
  void *ctx;
  /* The persisted hard state (all zero for a new node). */
  int (*hard_state)(void *ctx, struct raft_hard_state *hs);
  uint64_t (*first_index)(void *ctx);
  uint64_t (*last_index)(void *ctx);
  /* Term of entry i for first_index - 1 <= i <= last_index; otherwise
   * KEEL_ECOMPACTED (below) or KEEL_ENOTFOUND (above). */
  int (*term)(void *ctx, uint64_t i, uint64_t *term);
  /* Entries [lo, hi): at least one (if lo < hi) and then as many as fit in
   * max_bytes of data. *out is a malloc'd array whose entries' data are
   * malloc'd too; the core frees both with free(). KEEL_ECOMPACTED when lo
   * < first_index. */
  int (*entries)(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                 struct raft_entry **out, size_t *n);
  /* The latest snapshot's meta (index 0 when there is none). */
  int (*snapshot)(void *ctx, struct raft_snapshot_meta *meta);
};

struct raft_config {
  uint64_t id; /* this node, non-zero */
  /* The configuration as of `applied` (for a new cluster: the initial
   * members). A node not listed is not a member yet and never campaigns. */
  uint64_t voters[RAFT_MAX_NODES];
  size_t n_voters;
  uint64_t learners[RAFT_MAX_NODES];
  size_t n_learners;
  uint64_t applied;         /* index the state machine has applied (restart) */
  int election_tick;        /* ticks without a leader before campaigning */
  int heartbeat_tick;       /* leader ticks between heartbeats */
  bool pre_vote;            /* run a pre-vote round before a real election */
  bool check_quorum;        /* leader steps down without a quorum of contact */
  int max_inflight;         /* AppendEntries in flight per follower */
  uint64_t max_msg_bytes;   /* entry bytes per AppendEntries (>= 1 entry) */
  uint64_t max_uncommitted; /* entries a leader holds uncommitted */
  uint64_t seed;            /* PRNG seed for election timeouts */
  struct raft_storage storage;
};

enum raft_conf_change_type {
  RAFT_CONF_ADD_NODE = 0, /* add as voter (or promote a learner) */
  RAFT_CONF_REMOVE_NODE = 1,
  RAFT_CONF_ADD_LEARNER = 2,
  RAFT_CONF_PROMOTE = 3,
  RAFT_CONF_UPDATE_NODE = 4, /* no change to the configuration */
};

struct raft_conf_change {
  int type; /* enum raft_conf_change_type */
  uint64_t node_id;
};

struct raft;

/* Creates a node from cfg (copied) and the state its storage holds.
 * Returns 0 and sets *out, or -EINVAL (bad config: zero id, ticks <= 0,
 * heartbeat_tick >= election_tick, too many nodes, a zero or repeated node
 * id, max_inflight < 1, zero max_msg_bytes or max_uncommitted, a storage
 * function missing), KEEL_ECORRUPT (the stored commit index is past the
 * stored log), -ENOMEM, or a storage error. */
int raft_new(const struct raft_config *cfg, struct raft **out);
/* Frees the node and everything it owns, an outstanding Ready included. */
void raft_free(struct raft *r);

/* Moves logical time one tick: election timeouts, heartbeats,
 * check-quorum, transfer timeouts. */
void raft_tick(struct raft *r);

/* Feeds one message from a peer. Returns 0, or KEEL_EBADMSG for a message
 * that cannot be valid (unknown type, zero or own `from`, addressed to
 * another node, entries not contiguous or newer than the message's term, an
 * entry with NULL data and a length, indexes that would wrap past
 * UINT64_MAX, a snapshot with index 0 or a configuration no cluster can
 * have: no voter, more than RAFT_MAX_NODES members, a zero or repeated id);
 * such a message changes nothing. Stale messages are ignored with 0. */
int raft_step(struct raft *r, const struct raft_message *m);

/* Proposes data (copied) as a normal entry. At the leader it is appended
 * and *index (if not NULL) is set; at a follower it is forwarded to the
 * leader and *index is 0 (outcome learnt only by applying). Errors:
 * -EINVAL (data NULL with len > 0), KEEL_ENOLEADER (no leader known),
 * KEEL_ETOOLARGE (len > max_msg_bytes), KEEL_EBUSY (max_uncommitted reached),
 * KEEL_EDROPPED (a leadership transfer is in progress). */
int raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index);

/* Proposes a membership change; leader only. data (copied) is the entry
 * payload the application will decode when applying. Accepted only when the
 * leader's no-op of its term is committed and no earlier change is still
 * unapplied (one change at a time). Errors: KEEL_ENOTLEADER, KEEL_EBUSY
 * (previous change pending / no-op not yet committed), KEEL_EMEMBER (the
 * change makes no sense: adding a member twice, removing a stranger,
 * promoting a non-learner, or leaving no voter), KEEL_ELIMIT (adding would
 * exceed RAFT_MAX_NODES), -EINVAL (data NULL with len > 0), and the errors
 * of raft_propose at a leader: KEEL_ETOOLARGE, KEEL_EBUSY (max_uncommitted
 * reached), KEEL_EDROPPED (a leadership transfer is in progress). */
int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc,
                             const void *data, size_t len, uint64_t *index);

/* Applies a committed membership change; call it while applying its entry,
 * in log order. Returns 0 or KEEL_EMEMBER (ignored change; the entry still
 * counts as applied). A leader that removes itself steps down. */
int raft_apply_conf_change(struct raft *r, const struct raft_conf_change *cc);

/* Requests a linearizable read point. ctx (copied, at most RAFT_MAX_CONTEXT
 * bytes) comes back in a raft_read_state once a quorum confirmed this
 * leader's leadership after the call. Requests made together share one
 * heartbeat round. At a follower the request goes to the leader. Errors:
 * KEEL_ENOLEADER, KEEL_EBUSY (too many pending), -EINVAL (ctx too long). */
int raft_read_index(struct raft *r, const void *ctx, size_t len);

/* Hands leadership to voter `to` (TimeoutNow once it is caught up). At a
 * follower the request goes to the leader. Errors: KEEL_ENOLEADER,
 * KEEL_EMEMBER (to is not a voter or is this node). */
int raft_transfer_leader(struct raft *r, uint64_t to);

/* The transport could not deliver to member `id` (its connection is down or
 * its send queue is full, so messages were dropped). A leader stops
 * pipelining appends to it and probes from its match index again instead
 * of waiting for a heartbeat round to reveal the gap (etcd's
 * ReportUnreachable). Ignored at a follower or for an unknown member. */
void raft_report_unreachable(struct raft *r, uint64_t id);

/* The snapshot the core asked to send to `id` (a RAFT_MSG_SNAPSHOT) was
 * delivered (ok) or failed. A leader leaves the SNAPSHOT state at once:
 * after a failure it will send a new snapshot at the next heartbeat round
 * rather than after two election timeouts; after a delivery it waits for
 * the follower's answer (etcd's ReportSnapshot). Ignored unless the member
 * is waiting for a snapshot. */
void raft_report_snapshot(struct raft *r, uint64_t id, bool ok);

bool raft_has_ready(struct raft *r);
/* Fills *rd; raft_has_ready() must have answered true. */
void raft_ready(struct raft *r, struct raft_ready *rd);
/* Tells the core that everything in rd was done (persisted, sent, applied)
 * and releases what rd pointed to (rd is cleared). To drop a Ready instead
 * (a crash in a test), just raft_free() the node: it frees the outstanding
 * Ready too. */
void raft_advance(struct raft *r, struct raft_ready *rd);

/* Introspection, for the application, tests and the simulator. */
uint64_t raft_id(const struct raft *r);
int raft_role(const struct raft *r);
uint64_t raft_term(const struct raft *r);
uint64_t raft_leader(const struct raft *r);
uint64_t raft_committed(const struct raft *r);
uint64_t raft_applied(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
/* Term of entry i in this node's log (durable or not); 0 when unknown. */
uint64_t raft_log_term(const struct raft *r, uint64_t i);
/* The configuration: counts returned, ids copied (RAFT_MAX_NODES each). */
void raft_conf(const struct raft *r, uint64_t *voters, size_t *n_voters,
               uint64_t *learners, size_t *n_learners);
bool raft_is_voter(const struct raft *r, uint64_t id);
/* The leader's view of each member's replication (for failure reports):
 * writes at most len bytes (NUL-terminated), returns the length wanted. */
size_t raft_describe_progress(const struct raft *r, char *buf, size_t len);
const char *raft_role_name(int role);
const char *raft_msg_type_name(int type);

/* raft_memstore: an in-memory raft_storage for tests and the simulator.
 * The caller writes to it what a Ready asks to persist. */
struct raft_memstore;

int raft_memstore_new(struct raft_memstore **out);
void raft_memstore_free(struct raft_memstore *s);
/* The storage interface reading this store. */
struct raft_storage raft_memstore_storage(struct raft_memstore *s);
void raft_memstore_set_hard_state(struct raft_memstore *s,
                                  const struct raft_hard_state *hs);
/* Appends (copies) entries, first replacing any entries at or after
 * entries[0].index. The entries must join the log: entries[0].index <=
 * last_index + 1 and > the snapshot index. Returns 0, -EINVAL or -ENOMEM. */
int raft_memstore_append(struct raft_memstore *s, const struct raft_entry *e,
                         size_t n);
/* Replaces the whole log with a snapshot (an installed snapshot). */
int raft_memstore_apply_snapshot(struct raft_memstore *s,
                                 const struct raft_snapshot_meta *meta);
/* Records a snapshot at index (<= last_index) with the configuration in
 * conf (its index and term are ignored) and discards the entries up to
 * index - keep (log compaction), keeping `keep` entries for followers that
 * are only a little behind. Returns 0 or -EINVAL. */
int raft_memstore_compact(struct raft_memstore *s, uint64_t index,
                          const struct raft_snapshot_meta *conf, uint64_t keep);
/* Deep copy (for a simulated crash: the durable image). */
int raft_memstore_clone(const struct raft_memstore *s,
                        struct raft_memstore **out);

#endif

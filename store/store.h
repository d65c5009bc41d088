/* store.h — the disk and the state machine of a keel node: raft log storage
 * and an MVCC key-value store with etcd v3 semantics, in one LMDB
 * environment. This header is the manual.
 *
 * THREADS. One thread (the server's disk thread) makes every call that
 * writes: store_log_*() writers, store_apply(), store_defragment(),
 * store_restore_*(). Any thread may read (store_range(), store_history_read(),
 * store_log_entries() ...) at the same time; reads are LMDB snapshots and
 * never block the writer or each other. store_open()/store_close() are made
 * when no other call is running.
 *
 * ERRORS. Functions return 0 or a negative code (common/keel_error.h): keel
 * codes, or -errno. LMDB codes never leave this module: MDB_MAP_FULL becomes
 * KEEL_ENOSPACE, MDB_CORRUPTED/MDB_PAGE_NOTFOUND/MDB_INVALID become
 * KEEL_ECORRUPT, anything else -EIO. Errors of a request being applied (a key
 * not found for ignore_value, a lease that does not exist ...) are not errors
 * of store_apply(): they go into that request's response, because applying a
 * log is deterministic and every node must reach the same answer.
 *
 * OWNERSHIP. Request structs are owned by the caller and only read during the
 * call. Every result that carries pointers (kvs, events, entries) owns its
 * memory in an arena released with the matching *_free() function; the
 * pointers stay valid until then, whatever happens to the store meanwhile.
 *
 * ON DISK. <dir>/CURRENT names the live LMDB file (<dir>/keel-NNNNNN.mdb).
 * Defragmentation and snapshot restore build a new file beside it and switch
 * by renaming CURRENT, so a crash leaves the old file or the new one. Inside
 * it, named DBs (all integers big-endian, so LMDB order is numeric order):
 *   raft_log    index -> term, type, data
 *   raft_state  hard state, log base (last dropped index/term), snapshot meta
 *   kv_key      key -> every revision of the key with its state (dupsort,
 *               40-byte items: main, sub, create, version, lease; the last
 *               is the current state)
 *   kv_rev      (main, sub) -> the event written at that revision
 *   leases      id -> granted TTL, checkpointed remaining TTL
 *   lease_keys  id ++ key -> (empty): the keys attached to a lease
 *   meta        applied index/term, revision, compact revision, alarms,
 *               conf state, and the server's own named values
 * The state machine is everything but raft_log and raft_state; a snapshot
 * stream carries exactly that.
 */
#ifndef KEEL_STORE_H
#define KEEL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_event.h"

/* LMDB's key limit is 511 bytes; lease_keys prefixes a key with 8 bytes. */
#define STORE_KEY_MAX 500
/* etcd's default max request size (1.5 MiB) bounds a value. */
#define STORE_VALUE_MAX (1536 * 1024)
/* Default --quota-backend-bytes, as etcd. */
#define STORE_DEFAULT_QUOTA (2ull * 1024 * 1024 * 1024)
/* Largest quota accepted (etcd warns above 8 GiB). */
#define STORE_MAX_QUOTA (64ull * 1024 * 1024 * 1024)
/* etcd's --max-txn-ops default: the limit checked before proposing. */
#define STORE_DEFAULT_MAX_TXN_OPS 128
/* The ceiling apply checks. Applying a committed entry must decide the same
 * on every node, so it cannot use a node's own --max-txn-ops (nodes may be
 * configured differently); the configurable limit is enforced before
 * proposing, and this fixed one is the last line against entries no
 * proposer should have let through. No configured limit may exceed it. */
#define STORE_APPLY_MAX_TXN_OPS 65536
/* Nesting depth of txn inside txn. */
#define STORE_MAX_TXN_DEPTH 8
/* Members in a conf state, per list. */
#define STORE_MAX_MEMBERS 32

struct store;

struct store_options {
  /* The quota (etcd --quota-backend-bytes); 0 means STORE_DEFAULT_QUOTA.
   * The LMDB map is 2 * quota + 64 MiB so that deletes, compaction and the
   * alarm itself still find room once the quota is passed. Should the map
   * fill anyway, a write that hits it grows it by half (up to 4x) when no
   * read is open at that moment, else fails with KEEL_ENOSPACE. */
  uint64_t quota_bytes;
  /* Apply commits are redone from the log if lost, so by default they sync
   * once (data pages, MDB_NOMETASYNC: the meta page reaches the disk with
   * the next synced commit; the file stays consistent after a machine crash,
   * which may only undo the latest applies). Log appends always sync fully.
   * When true, apply commits do not fsync at all (MDB_NOSYNC): a process
   * crash loses nothing, but a machine crash may corrupt the file (LMDB
   * does not order the meta write then). Default false. */
  bool apply_nosync;
};

/* Opens (creating if needed) the store in directory dir (created if
 * missing). Stale files from an interrupted defragment or restore are
 * removed. Errors: -errno from the file system, KEEL_ECORRUPT when CURRENT
 * or the LMDB file is unreadable, KEEL_EVERSION for a store written by an
 * incompatible version, -EINVAL for bad options. */
int store_open(const char *dir, const struct store_options *opts,
               struct store **out);
/* Closes the store; every read must have ended and every result stays
 * valid (results own their memory). NULL is allowed. */
void store_close(struct store *st);

/* ------------------------------------------------------------------ */
/* Raft log storage                                                    */
/* ------------------------------------------------------------------ */

/* Same numbers as keelraft.EntryType (proto/raft.proto) and the raft
 * core's; the store keeps whatever type it is given. */
enum store_entry_type {
  STORE_ENTRY_NORMAL = 0,
  STORE_ENTRY_CONF_CHANGE = 1,
  STORE_ENTRY_NOOP = 2,
};

struct store_entry {
  uint64_t index;
  uint64_t term;
  uint32_t type; /* enum store_entry_type; stored as given */
  const uint8_t *data;
  size_t len;
};

struct store_hard_state {
  uint64_t term;
  uint64_t vote;
  uint64_t commit;
};

struct store_conf_state {
  uint64_t voters[STORE_MAX_MEMBERS];
  uint32_t n_voters;
  uint64_t learners[STORE_MAX_MEMBERS];
  uint32_t n_learners;
  uint64_t voters_outgoing[STORE_MAX_MEMBERS]; /* joint consensus */
  uint32_t n_voters_outgoing;
  uint64_t learners_next[STORE_MAX_MEMBERS];
  uint32_t n_learners_next;
  bool auto_leave;
};

/* What a snapshot covers; also the log's base: entries up to index are gone
 * and term(index) is still answerable. */
struct store_snapshot_meta {
  uint64_t index;
  uint64_t term;
  struct store_conf_state conf;
};

/* A copy of entries; free with store_entries_free(). */
struct store_entries {
  struct store_entry *ents;
  size_t n;
  void *mem;
};

/* Appends entries (consecutive indexes, n may be 0) and, if hs is not NULL,
 * saves the hard state, in one write transaction: one fsync, all or nothing.
 * Existing entries with the same index and term are kept; from the first
 * index whose term differs, the old suffix is dropped (a conflicting suffix)
 * and the new entries written. Entries at or below the log base are skipped.
 * Errors: -EINVAL if entries are not consecutive, leave a gap after the last
 * index, or would replace an entry at or below the saved commit index;
 * KEEL_ENOSPACE if the map is full; -EIO. */
int store_log_append(struct store *st, const struct store_entry *ents, size_t n,
                     const struct store_hard_state *hs);
/* Saves the hard state alone (one write txn, one fsync). */
int store_log_save_hard_state(struct store *st,
                              const struct store_hard_state *hs);
/* Loads the hard state and the applied conf state (zeros if never saved). */
int store_log_load_state(struct store *st, struct store_hard_state *hs,
                         struct store_conf_state *cs);
/* First index still in the log (base + 1) and last index (the base index
 * when the log is empty). Never fail on an open store. */
uint64_t store_log_first_index(struct store *st);
uint64_t store_log_last_index(struct store *st);
/* term of entry i: the base's term for i == base index. Errors:
 * KEEL_ECOMPACTED below the base, KEEL_ENOTFOUND past the last index. */
int store_log_term(struct store *st, uint64_t i, uint64_t *term);
/* Copies entries [lo, hi), stopping before the total data size passes
 * max_bytes (0: no limit) but always returning at least one entry. Errors:
 * KEEL_ECOMPACTED if lo <= base, KEEL_ENOTFOUND if hi > last + 1, -EINVAL if
 * lo >= hi, -ENOMEM. */
int store_log_entries(struct store *st, uint64_t lo, uint64_t hi,
                      uint64_t max_bytes, struct store_entries *out);
void store_entries_free(struct store_entries *e);
/* Records meta as the latest snapshot taken of this node's state (for the
 * raft core's Snapshot()); does not touch the log. */
int store_log_set_snapshot(struct store *st,
                           const struct store_snapshot_meta *meta);
/* The latest snapshot meta (zero if none). */
int store_log_get_snapshot(struct store *st, struct store_snapshot_meta *out);
/* Drops entries with index <= upto; upto becomes the base. upto must be at
 * most the applied index and the last index. Errors: KEEL_ECOMPACTED if upto
 * is below the base already (nothing to do is not an error when equal),
 * -EINVAL if upto is past the applied or last index. */
int store_log_compact(struct store *st, uint64_t upto);

/* ------------------------------------------------------------------ */
/* Key-value requests (mirror etcdserverpb)                            */
/* ------------------------------------------------------------------ */

enum store_sort_order {
  STORE_SORT_NONE = 0,
  STORE_SORT_ASCEND = 1,
  STORE_SORT_DESCEND = 2,
};
enum store_sort_target {
  STORE_SORT_KEY = 0,
  STORE_SORT_VERSION = 1,
  STORE_SORT_CREATE = 2,
  STORE_SORT_MOD = 3,
  STORE_SORT_VALUE = 4,
};

/* Key ranges follow etcd: range_end empty means the single key; range_end
 * "\0" (one zero byte) means every key >= key; key "\0" with range_end "\0"
 * means every key. */
struct store_range_req {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *range_end;
  size_t range_end_len;
  int64_t limit;    /* 0: no limit */
  int64_t revision; /* <= 0: current */
  enum store_sort_order sort_order;
  enum store_sort_target sort_target;
  bool keys_only;
  bool count_only;
  int64_t min_mod_revision; /* 0: no filter */
  int64_t max_mod_revision;
  int64_t min_create_revision;
  int64_t max_create_revision;
};

struct store_range_resp {
  int64_t revision; /* header: the store's current revision */
  struct store_kv *kvs;
  size_t n_kvs;
  bool more;     /* more keys matched than limit returned */
  int64_t count; /* keys in the range at that revision (before filters) */
};

struct store_put_req {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
  int64_t lease;
  bool prev_kv;
  bool ignore_value;
  bool ignore_lease;
};
struct store_put_resp {
  int64_t revision;
  bool has_prev;
  struct store_kv prev_kv;
};

struct store_delete_req {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *range_end;
  size_t range_end_len;
  bool prev_kv;
};
struct store_delete_resp {
  int64_t revision;
  int64_t deleted;
  struct store_kv *prev_kvs; /* only when prev_kv was asked */
  size_t n_prev_kvs;
};

enum store_compare_result {
  STORE_CMP_EQUAL = 0,
  STORE_CMP_GREATER = 1,
  STORE_CMP_LESS = 2,
  STORE_CMP_NOT_EQUAL = 3,
};
enum store_compare_target {
  STORE_CMP_VERSION = 0,
  STORE_CMP_CREATE = 1,
  STORE_CMP_MOD = 2,
  STORE_CMP_VALUE = 3,
  STORE_CMP_LEASE = 4,
};
/* As etcd: a compare over a range holds when it holds for every key in the
 * range; a single key that does not exist compares as version, create, mod
 * and lease 0 (and fails a VALUE compare). */
struct store_compare {
  enum store_compare_result result;
  enum store_compare_target target;
  const uint8_t *key;
  size_t key_len;
  const uint8_t *range_end;
  size_t range_end_len;
  int64_t number;       /* VERSION, CREATE, MOD, LEASE */
  const uint8_t *value; /* VALUE */
  size_t value_len;
};

enum store_op_type {
  STORE_OP_RANGE = 0,
  STORE_OP_PUT = 1,
  STORE_OP_DELETE_RANGE = 2,
  STORE_OP_TXN = 3,
};

struct store_txn_req;
struct store_txn_resp;

struct store_request_op {
  enum store_op_type type;
  union {
    struct store_range_req range;
    struct store_put_req put;
    struct store_delete_req delete_range;
    const struct store_txn_req *txn;
  } u;
};

struct store_txn_req {
  const struct store_compare *compare;
  size_t n_compare;
  const struct store_request_op *success;
  size_t n_success;
  const struct store_request_op *failure;
  size_t n_failure;
};

struct store_response_op {
  enum store_op_type type;
  union {
    struct store_range_resp range;
    struct store_put_resp put;
    struct store_delete_resp delete_range;
    struct store_txn_resp *txn;
  } u;
};

struct store_txn_resp {
  int64_t revision;
  bool succeeded;
  struct store_response_op *responses;
  size_t n_responses;
};

/* Checks a txn as etcd's API layer does before proposing it: op counts
 * (each compare, success and failure list of each level at most max_ops, as
 * etcd's --max-txn-ops; 0 means the default), nesting depth
 * (STORE_MAX_TXN_DEPTH), key sizes, and that no key is written twice (etcd's
 * rules: a put twice, or a put inside a delete range, on one branch path;
 * the success and failure branches of a nested txn may put the same key).
 * Apply runs the same check. Errors: KEEL_ETOOMANYOPS, KEEL_EDUPKEY,
 * KEEL_ETOOLARGE, -EINVAL (empty key, depth, bad enum). */
int store_txn_validate(const struct store_txn_req *txn, uint32_t max_ops);

/* ------------------------------------------------------------------ */
/* Apply: committed log entries -> state machine                       */
/* ------------------------------------------------------------------ */

enum store_req_type {
  STORE_REQ_NOOP = 0, /* empty or conf-change entry: only the index moves */
  STORE_REQ_PUT,
  STORE_REQ_DELETE_RANGE,
  STORE_REQ_TXN,
  STORE_REQ_COMPACTION,
  STORE_REQ_LEASE_GRANT,
  STORE_REQ_LEASE_REVOKE,
  STORE_REQ_LEASE_EXPIRE, /* decided by the leader; same effect as revoke */
  STORE_REQ_LEASE_CHECKPOINT,
  STORE_REQ_ALARM,
};

enum store_alarm_type {
  STORE_ALARM_NONE = 0,
  STORE_ALARM_NOSPACE = 1,
  STORE_ALARM_CORRUPT = 2,
};
enum store_alarm_action {
  STORE_ALARM_GET = 0,
  STORE_ALARM_ACTIVATE = 1,
  STORE_ALARM_DEACTIVATE = 2,
};
struct store_alarm_member {
  uint64_t member_id;
  enum store_alarm_type alarm;
};
#define STORE_MAX_ALARMS 64

struct store_request {
  enum store_req_type type;
  union {
    struct store_put_req put;
    struct store_delete_req delete_range;
    struct store_txn_req txn;
    struct {
      int64_t revision;
    } compaction;
    struct {
      int64_t id; /* chosen by the proposer; 0 is refused */
      int64_t ttl;
    } lease_grant;
    struct {
      int64_t id;
    } lease_revoke; /* also LEASE_EXPIRE */
    struct {
      int64_t id;
      int64_t remaining_ttl;
    } lease_checkpoint;
    struct {
      enum store_alarm_action action;
      uint64_t member_id;
      enum store_alarm_type alarm;
    } alarm;
  } u;
};

struct store_response {
  int error;        /* 0 or the keel code the request failed with */
  int64_t revision; /* header revision after this request */
  union {
    struct store_put_resp put;
    struct store_delete_resp delete_range;
    struct store_txn_resp txn;
    struct {
      int64_t id;
      int64_t ttl;
    } lease_grant;
    struct {
      struct store_alarm_member *alarms;
      size_t n_alarms;
    } alarm;
  } u;
};

/* One committed entry. req NULL (or type NOOP) only advances the index. */
struct store_apply_entry {
  uint64_t index;
  uint64_t term;
  const struct store_request *req;
};

/* An optional named value written with the batch (see store_meta_get). */
struct store_meta_write {
  const char *name;
  const uint8_t *value;
  size_t len;
};

struct store_apply_batch {
  const struct store_apply_entry *entries;
  size_t n;
  /* Optional: entries to append to the raft log and a hard state to save
   * in the same txn (store_log_append's rules), so a disk thread turn that
   * both persists and applies pays one commit. With these the commit syncs
   * fully (the append must be durable); without, an apply commit syncs
   * once (see store_options.apply_nosync). */
  const struct store_entry *append;
  size_t n_append;
  const struct store_hard_state *hard_state;
  /* If not NULL, saved as the applied conf state in the same txn. */
  const struct store_conf_state *conf;
  const struct store_meta_write *meta;
  size_t n_meta;
};

/* What applying a batch produced; free with store_apply_result_free(). */
struct store_apply_result {
  struct store_response *responses; /* one per entry, in order */
  size_t n_responses;
  struct store_event *events; /* ordered by (mod_revision, position) */
  size_t n_events;
  int64_t revision; /* store revision after the batch */
  void *mem;
};

/* Applies a batch of committed entries in one write txn together with the
 * applied index (the last entry's): a crash leaves all or none of it, so
 * recovery never applies an entry twice nor skips one. Entries at or below
 * the applied index are skipped (already applied); the first new entry must
 * be applied index + 1 (else -EINVAL). Deterministic: the same entries give
 * the same state and responses on every node. A request that fails (key
 * missing for ignore_value, lease not found, NOSPACE alarm active for a
 * write, compacted revision ...) gets its error in its response and changes
 * nothing. Entries already applied get KEEL_EEXIST in their response.
 * Errors of the call itself: -EINVAL, KEEL_ENOSPACE (the LMDB map is
 * full: nothing applied; the node must stop applying), -EIO, -ENOMEM. On
 * error out is zeroed and nothing was applied. */
int store_apply(struct store *st, const struct store_apply_batch *batch,
                struct store_apply_result *out);
void store_apply_result_free(struct store_apply_result *r);

/* The applied index and term (0 if nothing applied). */
int store_applied(struct store *st, uint64_t *index, uint64_t *term);
/* The current and compact revisions. */
int store_revisions(struct store *st, int64_t *current, int64_t *compacted);

/* Reads a value the server saved with a batch (store_meta_write). Copies
 * at most cap bytes into buf and sets *len to the full length. Errors:
 * KEEL_ENOTFOUND. */
int store_meta_get(struct store *st, const char *name, uint8_t *buf, size_t cap,
                   size_t *len);

/* ------------------------------------------------------------------ */
/* Reads                                                               */
/* ------------------------------------------------------------------ */

/* A range read outside the log (serializable / after ReadIndex). Errors:
 * KEEL_ECOMPACTED (revision below the compact revision, which
 * store_revisions() names), KEEL_EFUTUREREV, KEEL_ETOOLARGE (key longer
 * than STORE_KEY_MAX), -EINVAL (empty key, bad sort enum, negative limit),
 * -ENOMEM. Inside a txn the same rules give the request's error. */
struct store_range_result {
  struct store_range_resp resp;
  void *mem;
};
int store_range(struct store *st, const struct store_range_req *req,
                struct store_range_result *out);
void store_range_result_free(struct store_range_result *r);

/* History for watch catch-up: the events with from_rev <= mod_revision <
 * to_rev (to_rev 0: up to the current revision) on keys in [key, range_end)
 * (etcd range rules). A chunk ends on a revision boundary after max_events
 * events or max_bytes of keys and values, prev_kv included (a single
 * revision is never split,
 * so one revision may pass the bounds; a txn is bounded by
 * STORE_APPLY_MAX_TXN_OPS).
 * with_prev fills prev_kv from the key's previous revision (has_prev 0 if
 * that was compacted away or the key did not exist). *next_rev is where to
 * continue; when *next_rev >= the end the history is exhausted. Errors:
 * KEEL_ECOMPACTED if from_rev <= the compact revision (the events there are
 * gone; etcd answers the same way), KEEL_EFUTUREREV, -EINVAL. */
struct store_history {
  struct store_event *events;
  size_t n_events;
  int64_t next_rev;
  void *mem;
};
int store_history_read(struct store *st, const uint8_t *key, size_t key_len,
                       const uint8_t *range_end, size_t range_end_len,
                       int64_t from_rev, int64_t to_rev, size_t max_events,
                       size_t max_bytes, bool with_prev,
                       struct store_history *out);
void store_history_free(struct store_history *h);

/* HashKV. The hash is CRC-32C (Castagnoli, as etcd) over, in this order:
 * the compact revision C (8 bytes big-endian), then every history record
 * with main revision <= revision that survives compaction at C (main > C,
 * or the latest state of its key at C and not a deletion), in (main, sub)
 * order, each as main(8) sub(8) type(1) create(8) version(8) lease(8)
 * key_len(4) key value, integers big-endian (type 0 put, 1 delete; a delete
 * has zeros and no value). Since compaction and every write go through the
 * log, two nodes at the same applied index give the same hash, however far
 * their physical compaction (store_compact_step) has gone. revision <= 0
 * means current. Errors: KEEL_ECOMPACTED, KEEL_EFUTUREREV. */
int store_hash_kv(struct store *st, int64_t revision, uint32_t *hash,
                  int64_t *compact_revision, int64_t *current_revision);

/* Compaction is applied logically (STORE_REQ_COMPACTION: O(1), reads below
 * fail at once); the history it makes garbage is deleted afterwards by this
 * call, at most max_records records examined per call (0: 10,000), each call
 * one write txn, so a huge compaction never needs one huge txn. The writer
 * thread calls it when idle until it returns 0. Returns 1 if more remains,
 * 0 when done, or an error (-EIO, KEEL_ENOSPACE, KEEL_ECORRUPT). Garbage is
 * invisible to every read, HashKV and snapshot streams meanwhile; it only
 * takes space (and quota) until removed. */
int store_compact_step(struct store *st, size_t max_records);

/* Checks the key-value invariants (store_kv.c's header) over the whole
 * store in one read txn: every live key's index entry, last revision item,
 * history record and lease attachment agree; history items and records pair
 * up; no record is past the current revision. O(size of the store): for
 * tests and an operator's consistency check. Returns 0, or KEEL_ECORRUPT
 * after logging the invariant that failed. */
int store_verify(struct store *st);

/* ------------------------------------------------------------------ */
/* Leases (persistent side; the timers are store_lessor.h)             */
/* ------------------------------------------------------------------ */

struct store_lease_info {
  int64_t id;
  int64_t granted_ttl;
  int64_t remaining_ttl; /* last checkpoint, 0 if none */
};
/* Lease info and, if keys is not NULL, the attached keys (copied). Errors:
 * KEEL_ELEASENOTFOUND. */
struct store_lease_keys {
  struct store_kv *keys; /* key and key_len only */
  size_t n;
  void *mem;
};
int store_lease_get(struct store *st, int64_t id, struct store_lease_info *info,
                    struct store_lease_keys *keys);
void store_lease_keys_free(struct store_lease_keys *k);
/* Lists every lease in id order; *out is malloc'd (free()). */
int store_lease_list(struct store *st, struct store_lease_info **out,
                     size_t *n);

/* ------------------------------------------------------------------ */
/* Quota and alarms                                                    */
/* ------------------------------------------------------------------ */

struct store_size {
  uint64_t size;        /* pages in the file that are in use or free */
  uint64_t size_in_use; /* size minus the pages on LMDB's free list */
  uint64_t quota;
};
int store_size(struct store *st, struct store_size *out);
/* What the leader asks before proposing a write of about cost bytes (etcd's
 * quota check): 1 if size + cost passes the quota (propose an alarm
 * ACTIVATE NOSPACE and refuse the write with KEEL_ENOSPACE), 0 if not. */
int store_quota_exceeded(struct store *st, uint64_t cost);
/* 1 if a NOSPACE alarm is active (applied), else 0. */
int store_nospace_alarm(struct store *st);
/* The active alarms as applied (member id order), at most cap copied into
 * out, *n set to the number copied. A read (any thread). */
int store_alarm_list(struct store *st, struct store_alarm_member *out,
                     size_t cap, size_t *n);

/* ------------------------------------------------------------------ */
/* Defragment                                                          */
/* ------------------------------------------------------------------ */

/* Rewrites the LMDB file without free pages (mdb_env_copyfd2 with
 * MDB_CP_COMPACT) and switches to it. Protocol: on the writer thread, so no
 * write runs meanwhile (writes queue, as in etcd); readers keep reading the
 * old file; the copy is fsynced, CURRENT is renamed to name it (the commit
 * point), then new reads go to the new file and the old one is closed and
 * deleted when its last reader ends. A crash before the rename leaves the
 * old file (the partial copy is removed at open), after it the new one.
 * Errors: -errno, -ENOSPC when the disk is full (the old file stays). */
int store_defragment(struct store *st);

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */
/* ------------------------------------------------------------------ */

/* Stream format (version 1): "KEELSNAP" u32 version u64 applied_index u64
 * applied_term, then records u8 db u32 klen u32 vlen key value (each DB of
 * the state machine in LMDB order, compaction garbage left out, so the
 * bytes depend only on the applied log), then an end record (db 0xFF) carrying
 * u64 record count, then 32 bytes: SHA-256 of every byte before them.
 * Integers big-endian. */
struct store_snapshot;
/* Starts a consistent stream of the state machine as of now (a read txn:
 * the writer goes on meanwhile). Errors: -ENOMEM, -EIO. */
int store_snapshot_open(struct store *st, struct store_snapshot **out);
/* The applied index/term the stream describes. */
void store_snapshot_position(struct store_snapshot *s, uint64_t *index,
                             uint64_t *term);
/* Copies up to cap (>= 64) bytes of the stream; *n is 0 at the end. */
int store_snapshot_read(struct store_snapshot *s, uint8_t *buf, size_t cap,
                        size_t *n);
/* After the end: the stream's SHA-256 and size. */
void store_snapshot_digest(struct store_snapshot *s, uint8_t sha256[32],
                           uint64_t *size);
void store_snapshot_close(struct store_snapshot *s);

/* Restore: feeds a stream into a new file, checks it, then replaces the
 * state machine atomically. The hard state is kept (commit raised to the
 * snapshot index); the log is emptied and its base set to the snapshot's
 * (index, term) with conf as the conf state. */
struct store_restore;
int store_restore_begin(struct store *st, struct store_restore **out);
/* Errors: KEEL_ECORRUPT (bad format, record out of order, bytes after the
 * end), KEEL_ETOOLARGE (a record larger than limits), -EIO. After an error
 * only store_restore_abort() may be called. */
int store_restore_write(struct store_restore *r, const uint8_t *data,
                        size_t len);
/* Checks the SHA-256 and the end record, and switches. Errors:
 * KEEL_ECORRUPT (truncated stream, digest mismatch: the old store stays),
 * -errno. The restore object is freed in every case. */
int store_restore_finish(struct store_restore *r,
                         const struct store_conf_state *conf);
void store_restore_abort(struct store_restore *r);

/* ------------------------------------------------------------------ */
/* Auto-compaction policy (pure; the server proposes the compaction)   */
/* ------------------------------------------------------------------ */

enum store_autocompact_mode {
  STORE_AUTOCOMPACT_OFF = 0,
  STORE_AUTOCOMPACT_PERIODIC = 1, /* keep `retention` ms of history */
  STORE_AUTOCOMPACT_REVISION = 2, /* keep `retention` revisions */
};
#define STORE_AUTOCOMPACT_SAMPLES 11
struct store_autocompact {
  enum store_autocompact_mode mode;
  int64_t retention;
  int64_t interval_ms; /* how often it may fire */
  int64_t last_ms;     /* last time it fired or sampled */
  int64_t sample_ms[STORE_AUTOCOMPACT_SAMPLES];
  int64_t sample_rev[STORE_AUTOCOMPACT_SAMPLES];
  int n_samples;
  bool started;
};
/* PERIODIC (etcd 3.4): samples the revision every retention/10 and compacts
 * to the revision seen `retention` ago. REVISION: every 5 minutes compacts
 * to current - retention. Errors: -EINVAL (retention <= 0 unless OFF). */
int store_autocompact_init(struct store_autocompact *ac,
                           enum store_autocompact_mode mode, int64_t retention);
/* Called now and then with a monotonic clock: returns the revision to
 * compact to (> compacted), or 0 for nothing to do now. */
int64_t store_autocompact_tick(struct store_autocompact *ac, int64_t now_ms,
                               int64_t current_rev, int64_t compacted_rev);

#endif

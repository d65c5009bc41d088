/* raft_storage_lmdb.h — the raft core's read-only log view (struct
 * raft_storage, raft/raft.h) over the LMDB raft log of store/ (store_log_*).
 *
 * Thin: each callback is one store_log_* read (an LMDB read txn), so the
 * core may call it on the loop thread while the disk thread writes. The
 * writes themselves (append, hard state, compaction) go through the disk
 * thread with store_apply()/store_log_append(), never through this view.
 */
#ifndef KEEL_RAFT_STORAGE_LMDB_H
#define KEEL_RAFT_STORAGE_LMDB_H

#include "raft.h"
#include "store.h"

/* The raft_storage reading `st` (which must outlive the raft node). The
 * conf state in a snapshot meta is truncated to RAFT_MAX_NODES members per
 * list (store/ allows STORE_MAX_MEMBERS; keeld never configures more than
 * KEEL_CONFIG_MAX_MEMBERS == RAFT_MAX_NODES). */
struct raft_storage raft_storage_lmdb(struct store *st);

/* Conversions between the two modules' plain structs (no I/O). */
void raft_storage_conf_to_meta(const struct store_conf_state *cs,
                               struct raft_snapshot_meta *meta);
void raft_storage_conf_from_lists(const uint64_t *voters, size_t n_voters,
                                  const uint64_t *learners, size_t n_learners,
                                  struct store_conf_state *cs);

#endif

/* raft_storage_lmdb.c — struct raft_storage over store_log_* (see
 * raft_storage_lmdb.h). Every function is a read; none keeps state. */
#include "raft_storage_lmdb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

static int s_hard_state(void *ctx, struct raft_hard_state *hs) {
  struct store_hard_state shs;
  struct store_conf_state cs;
  int rc = store_log_load_state(ctx, &shs, &cs);
  if (rc)
    return rc;
  hs->term = shs.term;
  hs->vote = shs.vote;
  hs->commit = shs.commit;
  return 0;
}

static uint64_t s_first_index(void *ctx) {
  return store_log_first_index(ctx);
}

static uint64_t s_last_index(void *ctx) {
  return store_log_last_index(ctx);
}

static int s_term(void *ctx, uint64_t i, uint64_t *term) {
  return store_log_term(ctx, i, term);
}

static int s_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                     struct raft_entry **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (lo >= hi)
    return 0;
  struct store_entries se;
  /* store/ reads 0 as "no limit"; the core's 0 cannot happen (raft_new
   * refuses max_msg_bytes 0) but one byte keeps the "at least one" rule. */
  int rc = store_log_entries(ctx, lo, hi, max_bytes ? max_bytes : 1, &se);
  if (rc)
    return rc;
  struct raft_entry *e = calloc(se.n ? se.n : 1, sizeof(*e));
  if (!e) {
    store_entries_free(&se);
    return -ENOMEM;
  }
  for (size_t i = 0; i < se.n; i++) {
    e[i].term = se.ents[i].term;
    e[i].index = se.ents[i].index;
    e[i].type = (int)se.ents[i].type;
    e[i].len = se.ents[i].len;
    e[i].data = malloc(se.ents[i].len ? se.ents[i].len : 1);
    if (!e[i].data) {
      for (size_t j = 0; j < i; j++)
        free(e[j].data);
      free(e);
      store_entries_free(&se);
      return -ENOMEM;
    }
    if (se.ents[i].len)
      memcpy(e[i].data, se.ents[i].data, se.ents[i].len);
  }
  *out = e;
  *n = se.n;
  store_entries_free(&se);
  return 0;
}

void raft_storage_conf_to_meta(const struct store_conf_state *cs,
                               struct raft_snapshot_meta *meta) {
  meta->n_voters = 0;
  meta->n_learners = 0;
  for (uint32_t i = 0; i < cs->n_voters && meta->n_voters < RAFT_MAX_NODES; i++)
    meta->voters[meta->n_voters++] = cs->voters[i];
  for (uint32_t i = 0; i < cs->n_learners && meta->n_learners < RAFT_MAX_NODES;
       i++)
    meta->learners[meta->n_learners++] = cs->learners[i];
}

void raft_storage_conf_from_lists(const uint64_t *voters, size_t n_voters,
                                  const uint64_t *learners, size_t n_learners,
                                  struct store_conf_state *cs) {
  memset(cs, 0, sizeof(*cs));
  for (size_t i = 0; i < n_voters && i < STORE_MAX_MEMBERS; i++)
    cs->voters[cs->n_voters++] = voters[i];
  for (size_t i = 0; i < n_learners && i < STORE_MAX_MEMBERS; i++)
    cs->learners[cs->n_learners++] = learners[i];
}

static int s_snapshot(void *ctx, struct raft_snapshot_meta *meta) {
  struct store_snapshot_meta sm;
  int rc = store_log_get_snapshot(ctx, &sm);
  if (rc)
    return rc;
  memset(meta, 0, sizeof(*meta));
  meta->index = sm.index;
  meta->term = sm.term;
  raft_storage_conf_to_meta(&sm.conf, meta);
  return 0;
}

struct raft_storage raft_storage_lmdb(struct store *st) {
  struct raft_storage s = {
      .ctx = st,
      .hard_state = s_hard_state,
      .first_index = s_first_index,
      .last_index = s_last_index,
      .term = s_term,
      .entries = s_entries,
      .snapshot = s_snapshot,
  };
  return s;
}

/* raft_codec.c — struct raft_message <-> keelraft.Message (see
 * raft_codec.h). The encoder borrows, the decoder borrows: neither copies
 * entry bytes, so a large AppendEntries is packed or stepped without a
 * second copy of its payload. */
#include "raft_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

int raft_codec_encode(const struct raft_message *m,
                      struct raft_codec_out *out) {
  memset(out, 0, sizeof(*out));
  keelraft__message__init(&out->msg);
  Keelraft__Message *pm = &out->msg;
  pm->type = (Keelraft__MessageType)m->type;
  pm->from = m->from;
  pm->to = m->to;
  pm->term = m->term;
  pm->log_term = m->log_term;
  pm->index = m->index;
  pm->commit = m->commit;
  pm->reject = m->reject;
  pm->reject_hint = m->reject_hint;
  pm->conflict_term = m->conflict_term;
  pm->transfer = m->transfer;
  if (m->context_len) {
    pm->context.data = m->context;
    pm->context.len = m->context_len;
  }
  if (m->n_entries) {
    out->ents = calloc(m->n_entries, sizeof(*out->ents));
    out->eptrs = calloc(m->n_entries, sizeof(*out->eptrs));
    if (!out->ents || !out->eptrs) {
      raft_codec_out_free(out);
      return -ENOMEM;
    }
    for (size_t i = 0; i < m->n_entries; i++) {
      Keelraft__Entry *e = &out->ents[i];
      keelraft__entry__init(e);
      e->term = m->entries[i].term;
      e->index = m->entries[i].index;
      e->type = (Keelraft__EntryType)m->entries[i].type;
      e->data.data = m->entries[i].data;
      e->data.len = m->entries[i].len;
      out->eptrs[i] = e;
    }
    pm->entries = out->eptrs;
    pm->n_entries = m->n_entries;
  }
  if (m->type == RAFT_MSG_SNAPSHOT) {
    keelraft__snapshot_chunk__init(&out->chunk);
    keelstore__snapshot_meta__init(&out->meta);
    const struct raft_snapshot_meta *sm = &m->snapshot.meta;
    out->meta.index = sm->index;
    out->meta.term = sm->term;
    out->meta.voters = (uint64_t *)sm->voters;
    out->meta.n_voters = sm->n_voters;
    out->meta.learners = (uint64_t *)sm->learners;
    out->meta.n_learners = sm->n_learners;
    out->chunk.meta = &out->meta;
    out->chunk.offset = m->snapshot.offset;
    out->chunk.data.data = (uint8_t *)m->snapshot.data;
    out->chunk.data.len = m->snapshot.len;
    out->chunk.last = m->snapshot.last;
    pm->snapshot = &out->chunk;
  }
  return 0;
}

void raft_codec_out_free(struct raft_codec_out *out) {
  free(out->ents);
  free(out->eptrs);
  out->ents = NULL;
  out->eptrs = NULL;
}

static int bad(const char **why, const char *reason) {
  if (why)
    *why = reason;
  return KEEL_EBADMSG;
}

int raft_codec_decode(const Keelraft__Message *pm, struct raft_codec_in *out,
                      const char **why) {
  memset(out, 0, sizeof(*out));
  if (why)
    *why = NULL;
  if ((int)pm->type <= RAFT_MSG_NONE || (int)pm->type > RAFT_MSG_TYPE_MAX)
    return bad(why, "unknown message type");
  if (pm->from == 0)
    return bad(why, "sender id 0");
  if (pm->n_entries > RAFT_CODEC_MAX_ENTRIES)
    return bad(why, "too many entries in one message");
  if (pm->context.len > RAFT_MAX_CONTEXT)
    return bad(why, "context longer than RAFT_MAX_CONTEXT");
  if (pm->context.len && !pm->context.data)
    return bad(why, "context without data");
  for (size_t i = 0; i < pm->n_entries; i++) {
    const Keelraft__Entry *e = pm->entries[i];
    if (!e)
      return bad(why, "missing entry");
    if ((int)e->type < RAFT_ENTRY_NORMAL || (int)e->type > RAFT_ENTRY_NOOP)
      return bad(why, "unknown entry type");
    if (e->data.len && !e->data.data)
      return bad(why, "entry without data");
  }
  if (pm->type == KEELRAFT__MESSAGE_TYPE__MSG_SNAPSHOT) {
    if (!pm->snapshot || !pm->snapshot->meta)
      return bad(why, "snapshot message without meta");
    const Keelstore__SnapshotMeta *sm = pm->snapshot->meta;
    if (sm->n_voters > RAFT_MAX_NODES || sm->n_learners > RAFT_MAX_NODES)
      return bad(why, "snapshot meta lists too many members");
    if (sm->index == 0)
      return bad(why, "snapshot at index 0");
  }

  struct raft_message *m = &out->msg;
  m->type = (int)pm->type;
  m->from = pm->from;
  m->to = pm->to;
  m->term = pm->term;
  m->log_term = pm->log_term;
  m->index = pm->index;
  m->commit = pm->commit;
  m->reject = pm->reject;
  m->reject_hint = pm->reject_hint;
  m->conflict_term = pm->conflict_term;
  m->transfer = pm->transfer;
  m->context = pm->context.len ? pm->context.data : NULL;
  m->context_len = pm->context.len;
  if (pm->n_entries) {
    out->ents = calloc(pm->n_entries, sizeof(*out->ents));
    if (!out->ents)
      return -ENOMEM;
    for (size_t i = 0; i < pm->n_entries; i++) {
      const Keelraft__Entry *e = pm->entries[i];
      out->ents[i].term = e->term;
      out->ents[i].index = e->index;
      out->ents[i].type = (int)e->type;
      out->ents[i].data = e->data.len ? e->data.data : NULL;
      out->ents[i].len = e->data.len;
    }
    m->entries = out->ents;
    m->n_entries = pm->n_entries;
  }
  if (pm->snapshot && pm->snapshot->meta) {
    const Keelstore__SnapshotMeta *sm = pm->snapshot->meta;
    if (sm->n_voters <= RAFT_MAX_NODES && sm->n_learners <= RAFT_MAX_NODES) {
      m->snapshot.meta.index = sm->index;
      m->snapshot.meta.term = sm->term;
      m->snapshot.meta.n_voters = sm->n_voters;
      if (sm->n_voters)
        memcpy(m->snapshot.meta.voters, sm->voters,
               sm->n_voters * sizeof(uint64_t));
      m->snapshot.meta.n_learners = sm->n_learners;
      if (sm->n_learners)
        memcpy(m->snapshot.meta.learners, sm->learners,
               sm->n_learners * sizeof(uint64_t));
    }
    m->snapshot.offset = pm->snapshot->offset;
    m->snapshot.data = pm->snapshot->data.data;
    m->snapshot.len = pm->snapshot->data.len;
    m->snapshot.last = pm->snapshot->last;
  }
  return 0;
}

void raft_codec_in_free(struct raft_codec_in *in) {
  free(in->ents);
  in->ents = NULL;
}

/* harness.h — a tiny synchronous cluster for the raft unit tests.
 *
 * Nodes 1..n each have a raft core and a raft_memstore. drain() persists a
 * node's Ready and queues its messages; deliver() feeds queued messages to
 * their targets (in FIFO order) until the network is quiet, skipping those
 * a test cut. Tests inspect the queue directly to assert exact message
 * sequences.
 */
#ifndef RAFT_TEST_HARNESS_H
#define RAFT_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft.h"

#define H_MAX 6
#define H_QMAX 4096

struct h_net {
  int n;
  struct raft *r[H_MAX + 1];
  struct raft_memstore *ms[H_MAX + 1];
  struct raft_message q[H_QMAX];
  size_t qn;
  bool cut[H_MAX + 1][H_MAX + 1]; /* cut[a][b]: a's messages to b dropped */
  /* what nodes applied / read, for assertions */
  uint64_t applied[H_MAX + 1];
  uint64_t read_index[H_MAX + 1];
  size_t n_reads[H_MAX + 1];
  int apply_conf; /* call raft_apply_conf_change for conf entries */
  int drop_type;  /* h_deliver drops messages of this type ... */
  size_t dropped; /* ... and counts them here */
};

struct h_opts {
  bool pre_vote, check_quorum;
  int max_inflight;
  uint64_t max_msg_bytes;
  int n_learners; /* the last n_learners nodes start as learners */
};

static inline void h_copy_msg(struct raft_message *d,
                              const struct raft_message *m) {
  *d = *m;
  if (m->n_entries) {
    d->entries = malloc(m->n_entries * sizeof(*d->entries));
    for (size_t i = 0; i < m->n_entries; i++) {
      d->entries[i] = m->entries[i];
      d->entries[i].data = NULL;
      if (m->entries[i].len) {
        d->entries[i].data = malloc(m->entries[i].len);
        memcpy(d->entries[i].data, m->entries[i].data, m->entries[i].len);
      }
    }
  }
  if (m->context_len) {
    d->context = malloc(m->context_len);
    memcpy(d->context, m->context, m->context_len);
  }
}

static inline void h_free_msg(struct raft_message *m) {
  for (size_t i = 0; i < m->n_entries; i++)
    free(m->entries[i].data);
  free(m->entries);
  free(m->context);
  memset(m, 0, sizeof(*m));
}

static inline struct raft *h_boot(struct h_net *net, int id,
                                  const struct h_opts *o) {
  struct raft_config cfg = {0};
  cfg.id = (uint64_t)id;
  int nl = o ? o->n_learners : 0;
  for (int i = 1; i <= net->n; i++) {
    if (i > net->n - nl)
      cfg.learners[cfg.n_learners++] = (uint64_t)i;
    else
      cfg.voters[cfg.n_voters++] = (uint64_t)i;
  }
  struct raft_snapshot_meta snap;
  raft_memstore_storage(net->ms[id]).snapshot(net->ms[id], &snap);
  cfg.applied = snap.index;
  cfg.election_tick = 10;
  cfg.heartbeat_tick = 1;
  cfg.pre_vote = o && o->pre_vote;
  cfg.check_quorum = o && o->check_quorum;
  cfg.max_inflight = o && o->max_inflight ? o->max_inflight : 256;
  cfg.max_msg_bytes = o && o->max_msg_bytes ? o->max_msg_bytes : 1 << 20;
  cfg.max_uncommitted = 10000;
  cfg.seed = (uint64_t)id;
  cfg.storage = raft_memstore_storage(net->ms[id]);
  struct raft *r = NULL;
  if (raft_new(&cfg, &r) != 0)
    abort();
  return r;
}

static inline struct h_net *h_new(int n, const struct h_opts *o) {
  struct h_net *net = calloc(1, sizeof(*net));
  net->n = n;
  net->apply_conf = 1;
  for (int i = 1; i <= n; i++) {
    raft_memstore_new(&net->ms[i]);
    net->r[i] = h_boot(net, i, o);
  }
  return net;
}

static inline void h_free(struct h_net *net) {
  for (size_t i = 0; i < net->qn; i++)
    h_free_msg(&net->q[i]);
  for (int i = 1; i <= net->n; i++) {
    raft_free(net->r[i]);
    raft_memstore_free(net->ms[i]);
  }
  free(net);
}

/* Persists and queues everything node id has ready. */
static inline void h_drain(struct h_net *net, int id) {
  struct raft *r = net->r[id];
  while (raft_has_ready(r)) {
    struct raft_ready rd;
    raft_ready(r, &rd);
    if (rd.has_snapshot)
      raft_memstore_apply_snapshot(net->ms[id], &rd.snapshot);
    if (rd.n_entries)
      raft_memstore_append(net->ms[id], rd.entries, rd.n_entries);
    if (rd.hard_state_changed)
      raft_memstore_set_hard_state(net->ms[id], &rd.hard_state);
    for (size_t i = 0; i < rd.n_messages; i++)
      if (net->qn < H_QMAX)
        h_copy_msg(&net->q[net->qn++], &rd.messages[i]);
    for (size_t i = 0; i < rd.n_committed; i++) {
      const struct raft_entry *e = &rd.committed[i];
      if (e->type == RAFT_ENTRY_CONF_CHANGE && net->apply_conf &&
          e->len == sizeof(struct raft_conf_change)) {
        struct raft_conf_change cc;
        memcpy(&cc, e->data, sizeof(cc));
        raft_apply_conf_change(r, &cc);
      }
      net->applied[id] = e->index;
    }
    if (rd.has_snapshot && rd.snapshot.index > net->applied[id])
      net->applied[id] = rd.snapshot.index;
    for (size_t i = 0; i < rd.n_read_states; i++) {
      net->read_index[id] = rd.read_states[i].index;
      net->n_reads[id]++;
    }
    raft_advance(r, &rd);
  }
}

static inline void h_drain_all(struct h_net *net) {
  for (int i = 1; i <= net->n; i++)
    h_drain(net, i);
}

/* Removes and returns queue entry i (caller frees with h_free_msg). */
static inline struct raft_message h_take(struct h_net *net, size_t i) {
  struct raft_message m = net->q[i];
  memmove(&net->q[i], &net->q[i + 1], (net->qn - i - 1) * sizeof(m));
  net->qn--;
  return m;
}

/* Delivers queued messages until none are left. */
static inline void h_deliver(struct h_net *net) {
  h_drain_all(net);
  int guard = 0;
  while (net->qn > 0 && guard++ < 100000) {
    struct raft_message m = h_take(net, 0);
    if (net->drop_type && m.type == net->drop_type) {
      net->dropped++;
    } else if (m.to >= 1 && m.to <= (uint64_t)net->n &&
               !net->cut[m.from][m.to]) {
      raft_step(net->r[m.to], &m);
      h_drain(net, (int)m.to);
    }
    h_free_msg(&m);
  }
}

static inline void h_clear(struct h_net *net) {
  for (size_t i = 0; i < net->qn; i++)
    h_free_msg(&net->q[i]);
  net->qn = 0;
}

static inline void h_isolate(struct h_net *net, int id, bool on) {
  for (int i = 1; i <= net->n; i++) {
    net->cut[id][i] = on && i != id;
    net->cut[i][id] = on && i != id;
  }
}

/* Makes node id leader: a TimeoutNow starts an election at once. */
static inline void h_elect(struct h_net *net, int id) {
  struct raft_message m = {0};
  m.type = RAFT_MSG_TIMEOUT_NOW;
  m.from = id == 1 ? 2 : 1;
  m.to = (uint64_t)id;
  m.term = raft_term(net->r[id]);
  raft_step(net->r[id], &m);
  h_deliver(net);
}

static inline int h_propose(struct h_net *net, int id, const char *s) {
  int rc = raft_propose(net->r[id], s, strlen(s), NULL);
  h_deliver(net);
  return rc;
}

/* Count queued messages of a type. */
static inline size_t h_count(const struct h_net *net, int type) {
  size_t c = 0;
  for (size_t i = 0; i < net->qn; i++)
    c += net->q[i].type == type;
  return c;
}

#endif

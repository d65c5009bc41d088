/* raft.c — the Raft consensus core (see raft.h for the contract).
 *
 * ROLES
 *
 *                 election timeout            election timeout
 *                 (pre_vote on)               (pre_vote off, or
 *   +----------+ -------------> +-----------+  pre-vote quorum, or
 *   | FOLLOWER |                | PRE_CAND. |  TimeoutNow)
 *   +----------+ <------------- +-----------+ -----------+
 *     ^  ^  ^    quorum rejects,                         v
 *     |  |  |    leader of >= term heard          +-----------+
 *     |  |  +-----------------------------------  | CANDIDATE | <-+ timeout:
 *     |  |    quorum rejects, leader of this      +-----------+ --+ new term
 *     |  |    term heard, higher term seen              | vote quorum
 *     |  |                                              v
 *     |  |  higher term seen; check-quorum lost; +-----------+
 *     |  +--------------------------------------- |  LEADER   |
 *     +------ removed itself (applied) ---------- +-----------+
 *
 * A pre-candidate asks for votes for term+1 without changing its term or
 * vote; nobody changes state for a pre-vote, so a partitioned node that
 * rejoins cannot disrupt a working leader by bumping terms.
 *
 * INVARIANTS
 *  1. term never decreases; vote is cleared only when term increases.
 *  2. At most one vote per term, and only for a candidate whose log is at
 *     least as up to date (last term, then last index) as ours.
 *  3. committed never decreases and never exceeds the last index; applied
 *     <= committed.
 *  4. A leader never removes or overwrites entries of its log; it appends
 *     a no-op when it takes office.
 *  5. A leader advances committed only to an entry of its own term that a
 *     quorum of voters holds durably (Figure 8); its own copy counts only
 *     once raft_advance() reported it persisted.
 *  6. Entries at or below committed are never truncated (asserted).
 *  7. A message in a Ready is sent only after that Ready's hard state and
 *     entries were persisted (the caller's side of the contract).
 *  8. Membership: one change at a time, proposed only after the leader's
 *     no-op of its term committed and the previous change was applied;
 *     a node with committed but unapplied changes does not campaign.
 *  9. A ReadIndex answer is given only after a quorum acknowledged a
 *     heartbeat round started after the request arrived, and only once the
 *     leader committed an entry of its term (so its commit index is at
 *     least every index committed before).
 *
 * LOG
 *   storage (durable, read through raft_storage) followed by the unstable
 *   part held here: u_ents[0..u_n) with indexes u_off.., or a snapshot
 *   received but not yet persisted (u_has_snap). Unstable entries shadow
 *   storage entries at the same index (a conflicting suffix not yet
 *   overwritten on disk).
 *
 * PROGRESS (leader, per follower): PROBE (one append per heartbeat until
 * the match is found), REPLICATE (pipelined, bounded by an inflight window
 * of max_inflight messages), SNAPSHOT (waiting for an installed snapshot;
 * retried after 2 election timeouts without news).
 *
 * Out of memory aborts: the core cannot keep its invariants without the
 * memory it asked for, and the process is useless without its core.
 */
#include "raft.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

enum { PR_PROBE, PR_REPLICATE, PR_SNAPSHOT };
enum { CAMPAIGN_PRE, CAMPAIGN_ELECTION, CAMPAIGN_TRANSFER };

struct progress {
  uint64_t id;
  bool learner;
  uint64_t match, next;
  int state;
  bool probe_sent;
  uint64_t pending_snapshot;
  int snap_elapsed;
  bool recent_active;
  uint64_t read_ack;  /* highest ReadIndex round this node acknowledged */
  int vote;           /* 0 none, 1 granted, -1 rejected */
  uint64_t *inflight; /* ring of last indexes of appends in flight */
  int in_start, in_count;
};

struct read_req {
  uint64_t from;
  uint64_t index;
  uint64_t round; /* 0: no round started yet */
  size_t len;
  unsigned char ctx[RAFT_MAX_CONTEXT];
};

struct raft {
  struct raft_config cfg;
  struct raft_storage st;
  uint64_t id, term, vote, lead;
  int role;

  uint64_t committed, applied;
  struct raft_entry *u_ents;
  size_t u_n, u_cap;
  uint64_t u_off;
  bool u_has_snap;
  struct raft_snapshot_meta u_snap;

  struct progress prs[RAFT_MAX_NODES];
  size_t n_prs;

  int election_elapsed, heartbeat_elapsed, randomized_timeout;
  uint64_t lead_transferee;
  uint64_t pending_conf_index;

  struct read_req *reads;
  size_t n_reads;
  uint64_t read_round;

  struct raft_message *msgs;
  size_t n_msgs, cap_msgs;
  struct raft_read_state *rss;
  size_t n_rss, cap_rss;

  struct raft_hard_state prev_hs;
  struct raft_soft_state prev_ss;
  bool ready_out;
  struct raft_ready out; /* the outstanding Ready (what it owns) */
  uint64_t rng;
};

/* ---- small helpers ---------------------------------------------------- */

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p)
    abort();
  return p;
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p)
    abort();
  return p;
}

static void *memdup(const void *p, size_t n) {
  if (!n)
    return NULL;
  void *q = xmalloc(n);
  memcpy(q, p, n);
  return q;
}

static uint64_t rng_next(struct raft *r) {
  /* splitmix64: tiny, good enough for timeouts, fully determined by seed */
  uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void entries_free(struct raft_entry *e, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(e[i].data);
  free(e);
}

static void entry_copy(struct raft_entry *dst, const struct raft_entry *src) {
  *dst = *src;
  dst->data = memdup(src->data, src->len);
}

static struct progress *pr_get(struct raft *r, uint64_t id) {
  for (size_t i = 0; i < r->n_prs; i++)
    if (r->prs[i].id == id)
      return &r->prs[i];
  return NULL;
}

static const struct progress *pr_cget(const struct raft *r, uint64_t id) {
  for (size_t i = 0; i < r->n_prs; i++)
    if (r->prs[i].id == id)
      return &r->prs[i];
  return NULL;
}

static size_t n_voters(const struct raft *r) {
  size_t n = 0;
  for (size_t i = 0; i < r->n_prs; i++)
    n += !r->prs[i].learner;
  return n;
}

static size_t quorum(const struct raft *r) {
  return n_voters(r) / 2 + 1;
}

/* ---- the log ---------------------------------------------------------- */

static uint64_t log_first(const struct raft *r) {
  if (r->u_has_snap)
    return r->u_snap.index + 1;
  return r->st.first_index(r->st.ctx);
}

static uint64_t log_last(const struct raft *r) {
  if (r->u_n)
    return r->u_off + r->u_n - 1;
  if (r->u_has_snap)
    return r->u_snap.index;
  return r->u_off - 1;
}

/* 0 and *t, or KEEL_ECOMPACTED / KEEL_ENOTFOUND. */
static int log_term(const struct raft *r, uint64_t i, uint64_t *t) {
  if (i > log_last(r))
    return KEEL_ENOTFOUND;
  if (i >= r->u_off && i < r->u_off + r->u_n) {
    *t = r->u_ents[i - r->u_off].term;
    return 0;
  }
  if (r->u_has_snap) {
    if (i == r->u_snap.index) {
      *t = r->u_snap.term;
      return 0;
    }
    return KEEL_ECOMPACTED;
  }
  return r->st.term(r->st.ctx, i, t);
}

static uint64_t log_term_or0(const struct raft *r, uint64_t i) {
  uint64_t t = 0;
  if (log_term(r, i, &t) != 0)
    return 0;
  return t;
}

static uint64_t last_term(const struct raft *r) {
  uint64_t t = 0;
  int rc = log_term(r, log_last(r), &t);
  assert(rc == 0);
  (void)rc;
  return t;
}

static bool match_term(const struct raft *r, uint64_t i, uint64_t t) {
  uint64_t x;
  return log_term(r, i, &x) == 0 && x == t;
}

/* The index up to which this node's log is durable. */
static uint64_t durable_last(const struct raft *r) {
  if (r->u_has_snap)
    return 0;
  return r->u_off - 1;
}

/* Deep copies of entries [lo, hi), at least one then up to max_bytes. */
static int log_slice(const struct raft *r, uint64_t lo, uint64_t hi,
                     uint64_t max_bytes, struct raft_entry **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (lo >= hi)
    return 0;
  if (lo < log_first(r))
    return KEEL_ECOMPACTED;
  assert(hi <= log_last(r) + 1);
  struct raft_entry *res = NULL;
  size_t cnt = 0;
  uint64_t bytes = 0;
  if (lo < r->u_off) {
    uint64_t shi = hi < r->u_off ? hi : r->u_off;
    int rc = r->st.entries(r->st.ctx, lo, shi, max_bytes, &res, &cnt);
    if (rc != 0)
      return rc;
    for (size_t i = 0; i < cnt; i++)
      bytes += res[i].len;
    if (cnt < shi - lo || shi == hi) {
      *out = res;
      *n = cnt;
      return 0;
    }
    lo = shi;
  }
  size_t cap = cnt + (hi - lo);
  res = xrealloc(res, cap * sizeof(*res));
  for (uint64_t i = lo; i < hi; i++) {
    const struct raft_entry *e = &r->u_ents[i - r->u_off];
    if (cnt > 0 && bytes + e->len > max_bytes)
      break;
    entry_copy(&res[cnt++], e);
    bytes += e->len;
  }
  *out = res;
  *n = cnt;
  return 0;
}

/* Appends owned entries (takes ownership of their data), truncating the
 * unstable suffix they replace. */
static void log_append_owned(struct raft *r, struct raft_entry *e, size_t n) {
  if (!n)
    return;
  uint64_t after = e[0].index;
  assert(after > r->committed);
  if (after == r->u_off + r->u_n) {
    /* plain append */
  } else if (after <= r->u_off) {
    for (size_t i = 0; i < r->u_n; i++)
      free(r->u_ents[i].data);
    r->u_n = 0;
    r->u_off = after;
  } else {
    size_t keep = after - r->u_off;
    for (size_t i = keep; i < r->u_n; i++)
      free(r->u_ents[i].data);
    r->u_n = keep;
  }
  if (r->u_n + n > r->u_cap) {
    r->u_cap = (r->u_n + n) * 2;
    r->u_ents = xrealloc(r->u_ents, r->u_cap * sizeof(*r->u_ents));
  }
  memcpy(&r->u_ents[r->u_n], e, n * sizeof(*e));
  r->u_n += n;
}

static void log_stable_to(struct raft *r, uint64_t i, uint64_t t) {
  if (i < r->u_off || i >= r->u_off + r->u_n)
    return;
  if (r->u_ents[i - r->u_off].term != t)
    return; /* replaced while the write was in flight */
  size_t k = i - r->u_off + 1;
  for (size_t j = 0; j < k; j++)
    free(r->u_ents[j].data);
  memmove(r->u_ents, r->u_ents + k, (r->u_n - k) * sizeof(*r->u_ents));
  r->u_n -= k;
  r->u_off = i + 1;
}

static void commit_to(struct raft *r, uint64_t c) {
  if (c > r->committed) {
    assert(c <= log_last(r));
    r->committed = c;
  }
}

/* The largest index <= index whose term is <= term (fast backtracking). */
static uint64_t find_conflict_by_term(const struct raft *r, uint64_t index,
                                      uint64_t term, uint64_t *found_term) {
  for (;;) {
    uint64_t t;
    if (log_term(r, index, &t) != 0) {
      *found_term = 0;
      return index;
    }
    if (t <= term) {
      *found_term = t;
      return index;
    }
    index--;
  }
}

/* ---- outbox ----------------------------------------------------------- */

static struct raft_message *msg_new(struct raft *r, int type, uint64_t to) {
  if (r->n_msgs == r->cap_msgs) {
    r->cap_msgs = r->cap_msgs ? r->cap_msgs * 2 : 16;
    r->msgs = xrealloc(r->msgs, r->cap_msgs * sizeof(*r->msgs));
  }
  struct raft_message *m = &r->msgs[r->n_msgs++];
  memset(m, 0, sizeof(*m));
  m->type = type;
  m->from = r->id;
  m->to = to;
  m->term = r->term;
  return m;
}

static void msgs_free(struct raft_message *m, size_t n) {
  for (size_t i = 0; i < n; i++) {
    entries_free(m[i].entries, m[i].n_entries);
    free(m[i].context);
  }
  free(m);
}

static void read_state_add(struct raft *r, uint64_t index, const void *ctx,
                           size_t len) {
  if (r->n_rss == r->cap_rss) {
    r->cap_rss = r->cap_rss ? r->cap_rss * 2 : 8;
    r->rss = xrealloc(r->rss, r->cap_rss * sizeof(*r->rss));
  }
  struct raft_read_state *s = &r->rss[r->n_rss++];
  s->index = index;
  s->context = memdup(ctx, len);
  s->context_len = len;
}

/* ---- progress --------------------------------------------------------- */

static void pr_reset_inflight(struct raft *r, struct progress *p) {
  (void)r;
  p->in_start = 0;
  p->in_count = 0;
}

static bool pr_inflight_full(const struct raft *r, const struct progress *p) {
  return p->in_count >= r->cfg.max_inflight;
}

static void pr_inflight_add(struct raft *r, struct progress *p, uint64_t i) {
  assert(!pr_inflight_full(r, p));
  int slot = (p->in_start + p->in_count) % r->cfg.max_inflight;
  p->inflight[slot] = i;
  p->in_count++;
}

static void pr_inflight_free_le(struct raft *r, struct progress *p,
                                uint64_t i) {
  while (p->in_count > 0 && p->inflight[p->in_start] <= i) {
    p->in_start = (p->in_start + 1) % r->cfg.max_inflight;
    p->in_count--;
  }
}

static void pr_become_probe(struct raft *r, struct progress *p) {
  if (p->state == PR_SNAPSHOT) {
    uint64_t ps = p->pending_snapshot;
    p->next = (p->match + 1 > ps + 1) ? p->match + 1 : ps + 1;
  } else {
    p->next = p->match + 1;
  }
  p->state = PR_PROBE;
  p->probe_sent = false;
  p->pending_snapshot = 0;
  pr_reset_inflight(r, p);
}

static void pr_become_replicate(struct raft *r, struct progress *p) {
  p->state = PR_REPLICATE;
  p->next = p->match + 1;
  p->probe_sent = false;
  pr_reset_inflight(r, p);
}

static bool pr_paused(const struct raft *r, const struct progress *p) {
  switch (p->state) {
  case PR_PROBE:
    return p->probe_sent;
  case PR_REPLICATE:
    return pr_inflight_full(r, p);
  default:
    return true;
  }
}

static void pr_init(struct raft *r, struct progress *p, uint64_t id,
                    bool learner) {
  uint64_t *inf = p->inflight;
  memset(p, 0, sizeof(*p));
  p->inflight = inf ? inf : xmalloc(r->cfg.max_inflight * sizeof(uint64_t));
  p->id = id;
  p->learner = learner;
  p->next = log_last(r) + 1;
  p->state = PR_PROBE;
  p->recent_active = true;
  if (id == r->id)
    p->match = durable_last(r);
}

static void conf_add(struct raft *r, uint64_t id, bool learner) {
  assert(r->n_prs < RAFT_MAX_NODES);
  struct progress *p = &r->prs[r->n_prs++];
  p->inflight = NULL;
  pr_init(r, p, id, learner);
}

static void conf_remove(struct raft *r, uint64_t id) {
  for (size_t i = 0; i < r->n_prs; i++) {
    if (r->prs[i].id == id) {
      free(r->prs[i].inflight);
      r->prs[i] = r->prs[r->n_prs - 1];
      r->n_prs--;
      return;
    }
  }
}

static void conf_clear(struct raft *r) {
  for (size_t i = 0; i < r->n_prs; i++)
    free(r->prs[i].inflight);
  r->n_prs = 0;
}

/* ---- sending ---------------------------------------------------------- */

static bool send_append(struct raft *r, uint64_t to, bool send_if_empty) {
  struct progress *p = pr_get(r, to);
  if (!p || to == r->id || pr_paused(r, p))
    return false;
  uint64_t prev = p->next - 1, prev_term = 0;
  int rc_t = log_term(r, prev, &prev_term);
  struct raft_entry *ents = NULL;
  size_t n = 0;
  int rc_e = rc_t == 0 ? log_slice(r, p->next, log_last(r) + 1,
                                   r->cfg.max_msg_bytes, &ents, &n)
                       : -1;
  if (rc_t != 0 || rc_e != 0) {
    /* The follower needs entries we compacted: send the snapshot. */
    struct raft_snapshot_meta meta;
    if (r->st.snapshot(r->st.ctx, &meta) != 0 || meta.index == 0)
      return false;
    struct raft_message *m = msg_new(r, RAFT_MSG_SNAPSHOT, to);
    m->snapshot.meta = meta;
    m->snapshot.offset = 0;
    m->snapshot.last = true;
    p->state = PR_SNAPSHOT;
    p->pending_snapshot = meta.index;
    p->snap_elapsed = 0;
    pr_reset_inflight(r, p);
    return true;
  }
  if (n == 0 && !send_if_empty) {
    free(ents);
    return false;
  }
  struct raft_message *m = msg_new(r, RAFT_MSG_APPEND, to);
  m->index = prev;
  m->log_term = prev_term;
  m->entries = ents;
  m->n_entries = n;
  m->commit = r->committed;
  if (n > 0) {
    if (p->state == PR_REPLICATE) {
      uint64_t last = ents[n - 1].index;
      p->next = last + 1;
      pr_inflight_add(r, p, last);
    } else {
      p->probe_sent = true;
    }
  }
  return true;
}

static void bcast_append(struct raft *r) {
  for (size_t i = 0; i < r->n_prs; i++)
    if (r->prs[i].id != r->id)
      send_append(r, r->prs[i].id, true);
}

static void send_heartbeat(struct raft *r, uint64_t to, uint64_t round) {
  struct progress *p = pr_get(r, to);
  struct raft_message *m = msg_new(r, RAFT_MSG_HEARTBEAT, to);
  m->commit = p->match < r->committed ? p->match : r->committed;
  if (round) {
    m->context = xmalloc(8);
    memcpy(m->context, &round, 8);
    m->context_len = 8;
  }
}

static void bcast_heartbeat(struct raft *r, uint64_t round) {
  for (size_t i = 0; i < r->n_prs; i++)
    if (r->prs[i].id != r->id)
      send_heartbeat(r, r->prs[i].id, round);
}

/* ---- ReadIndex -------------------------------------------------------- */

static bool committed_in_term(const struct raft *r) {
  return log_term_or0(r, r->committed) == r->term;
}

static void reads_drop(struct raft *r) {
  r->n_reads = 0;
}

static void read_answer(struct raft *r, const struct read_req *q) {
  if (q->from == r->id) {
    read_state_add(r, q->index, q->ctx, q->len);
  } else {
    struct raft_message *m = msg_new(r, RAFT_MSG_READ_INDEX_RESPONSE, q->from);
    m->index = q->index;
    m->context = memdup(q->ctx, q->len);
    m->context_len = q->len;
  }
}

/* Starts a heartbeat round that confirms every pending request: those not
 * yet in a round take the commit index now (>= the index at their
 * arrival) and this round's number. */
static void reads_new_round(struct raft *r) {
  r->read_round++;
  for (size_t i = 0; i < r->n_reads; i++) {
    if (r->reads[i].round == 0) {
      r->reads[i].round = r->read_round;
      r->reads[i].index = r->committed;
    }
  }
  struct progress *self = pr_get(r, r->id);
  if (self)
    self->read_ack = r->read_round;
  bcast_heartbeat(r, r->read_round);
}

/* Answers every request whose round a quorum of voters acknowledged; they
 * form a prefix of the queue because rounds only grow along it. */
static void reads_process(struct raft *r) {
  for (int pass = 0; pass < 2; pass++) {
    size_t done = 0;
    while (done < r->n_reads) {
      const struct read_req *q = &r->reads[done];
      if (q->round == 0)
        break;
      size_t acks = 0;
      for (size_t i = 0; i < r->n_prs; i++)
        if (!r->prs[i].learner && r->prs[i].read_ack >= q->round)
          acks++;
      if (acks < quorum(r))
        break;
      read_answer(r, q);
      done++;
    }
    if (done) {
      memmove(r->reads, r->reads + done,
              (r->n_reads - done) * sizeof(*r->reads));
      r->n_reads -= done;
    }
    /* Requests that arrived while a round was out start the next round as
     * soon as nothing older is outstanding: this is the batching. */
    if (r->n_reads == 0 || r->reads[0].round != 0 || !committed_in_term(r))
      return;
    reads_new_round(r);
  }
}

static int reads_add(struct raft *r, uint64_t from, const void *ctx,
                     size_t len) {
  if (r->n_reads >= RAFT_MAX_PENDING_READS)
    return KEEL_EBUSY;
  struct read_req *q = &r->reads[r->n_reads++];
  q->from = from;
  q->round = 0;
  q->index = 0;
  q->len = len;
  if (len)
    memcpy(q->ctx, ctx, len);
  if (committed_in_term(r))
    reads_process(r);
  return 0;
}

/* ---- role changes ----------------------------------------------------- */

static void reset_timeout(struct raft *r) {
  r->randomized_timeout = r->cfg.election_tick +
                          (int)(rng_next(r) % (uint64_t)r->cfg.election_tick);
}

static void reset(struct raft *r, uint64_t term) {
  if (term != r->term) {
    r->term = term;
    r->vote = 0;
  }
  r->lead = 0;
  r->election_elapsed = 0;
  r->heartbeat_elapsed = 0;
  reset_timeout(r);
  r->lead_transferee = 0;
  r->pending_conf_index = 0;
  reads_drop(r);
  for (size_t i = 0; i < r->n_prs; i++)
    pr_init(r, &r->prs[i], r->prs[i].id, r->prs[i].learner);
}

static void become_follower(struct raft *r, uint64_t term, uint64_t lead) {
  reset(r, term);
  r->lead = lead;
  r->role = RAFT_FOLLOWER;
}

static void become_candidate(struct raft *r) {
  assert(r->role != RAFT_LEADER);
  reset(r, r->term + 1);
  r->vote = r->id;
  r->role = RAFT_CANDIDATE;
}

static void become_pre_candidate(struct raft *r) {
  assert(r->role != RAFT_LEADER);
  for (size_t i = 0; i < r->n_prs; i++)
    r->prs[i].vote = 0;
  r->lead = 0;
  r->role = RAFT_PRE_CANDIDATE;
}

static void append_local(struct raft *r, int type, const void *data,
                         size_t len) {
  struct raft_entry e;
  e.term = r->term;
  e.index = log_last(r) + 1;
  e.type = type;
  e.data = memdup(data, len);
  e.len = len;
  log_append_owned(r, &e, 1);
}

static void become_leader(struct raft *r) {
  assert(r->role != RAFT_FOLLOWER);
  reset(r, r->term);
  r->lead = r->id;
  r->role = RAFT_LEADER;
  struct progress *self = pr_get(r, r->id);
  if (self)
    pr_become_replicate(r, self);
  /* Conf changes wait until everything before our term is applied. */
  r->pending_conf_index = log_last(r);
  append_local(r, RAFT_ENTRY_NOOP, NULL, 0);
  bcast_append(r);
}

static bool promotable(const struct raft *r) {
  const struct progress *p = pr_cget(r, r->id);
  return p && !p->learner && !r->u_has_snap;
}

/* True when a committed membership change waits to be applied. The tail
 * between applied and committed can be long (a restart replays it), so it
 * is read a page of max_msg_bytes at a time, never whole. */
static bool pending_conf_unapplied(const struct raft *r) {
  uint64_t lo = r->applied + 1;
  if (lo < log_first(r))
    lo = log_first(r);
  while (lo <= r->committed) {
    struct raft_entry *ents;
    size_t n;
    if (log_slice(r, lo, r->committed + 1, r->cfg.max_msg_bytes, &ents, &n) !=
            0 ||
        n == 0)
      return true; /* cannot tell: be careful */
    bool found = false;
    for (size_t i = 0; i < n; i++)
      if (ents[i].type == RAFT_ENTRY_CONF_CHANGE)
        found = true;
    lo = ents[n - 1].index + 1;
    entries_free(ents, n);
    if (found)
      return true;
  }
  return false;
}

/* Records a vote; returns the numbers granted and rejected so far. */
static void poll(struct raft *r, uint64_t id, bool granted, size_t *gr,
                 size_t *rj) {
  struct progress *p = pr_get(r, id);
  if (p && !p->learner && p->vote == 0)
    p->vote = granted ? 1 : -1;
  *gr = *rj = 0;
  for (size_t i = 0; i < r->n_prs; i++) {
    if (r->prs[i].learner)
      continue;
    *gr += r->prs[i].vote == 1;
    *rj += r->prs[i].vote == -1;
  }
}

static void campaign(struct raft *r, int kind) {
  uint64_t term;
  int type;
  if (kind == CAMPAIGN_PRE) {
    become_pre_candidate(r);
    type = RAFT_MSG_PRE_VOTE;
    term = r->term + 1;
  } else {
    become_candidate(r);
    type = RAFT_MSG_VOTE;
    term = r->term;
  }
  size_t gr, rj;
  poll(r, r->id, true, &gr, &rj);
  if (gr >= quorum(r)) {
    if (kind == CAMPAIGN_PRE)
      campaign(r, CAMPAIGN_ELECTION);
    else
      become_leader(r);
    return;
  }
  uint64_t li = log_last(r), lt = last_term(r);
  for (size_t i = 0; i < r->n_prs; i++) {
    const struct progress *p = &r->prs[i];
    if (p->learner || p->id == r->id)
      continue;
    struct raft_message *m = msg_new(r, type, p->id);
    m->term = term;
    m->index = li;
    m->log_term = lt;
    m->transfer = kind == CAMPAIGN_TRANSFER;
  }
}

static void hup(struct raft *r, bool transfer) {
  if (r->role == RAFT_LEADER || !promotable(r))
    return;
  if (pending_conf_unapplied(r))
    return;
  if (transfer)
    campaign(r, CAMPAIGN_TRANSFER);
  else if (r->cfg.pre_vote)
    campaign(r, CAMPAIGN_PRE);
  else
    campaign(r, CAMPAIGN_ELECTION);
}

static bool maybe_commit(struct raft *r) {
  uint64_t m[RAFT_MAX_NODES];
  size_t n = 0;
  for (size_t i = 0; i < r->n_prs; i++)
    if (!r->prs[i].learner)
      m[n++] = r->prs[i].match;
  if (n == 0)
    return false;
  /* sort descending (n is tiny) */
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && m[j] > m[j - 1]; j--) {
      uint64_t t = m[j];
      m[j] = m[j - 1];
      m[j - 1] = t;
    }
  uint64_t mci = m[n / 2];
  if (mci > r->committed && log_term_or0(r, mci) == r->term) {
    commit_to(r, mci);
    return true;
  }
  return false;
}

static void leader_commit_changed(struct raft *r) {
  bcast_append(r);
  reads_process(r);
}

/* ---- follower handlers ------------------------------------------------ */

static void handle_append(struct raft *r, const struct raft_message *m) {
  if (m->index < r->committed) {
    struct raft_message *resp = msg_new(r, RAFT_MSG_APPEND_RESPONSE, m->from);
    resp->index = r->committed;
    return;
  }
  if (match_term(r, m->index, m->log_term)) {
    uint64_t lastnew = m->index + m->n_entries;
    size_t ci = m->n_entries;
    for (size_t i = 0; i < m->n_entries; i++) {
      if (!match_term(r, m->entries[i].index, m->entries[i].term)) {
        ci = i;
        break;
      }
    }
    if (ci < m->n_entries) {
      assert(m->entries[ci].index > r->committed);
      size_t n = m->n_entries - ci;
      struct raft_entry *copy = xmalloc(n * sizeof(*copy));
      for (size_t i = 0; i < n; i++)
        entry_copy(&copy[i], &m->entries[ci + i]);
      log_append_owned(r, copy, n);
      free(copy);
    }
    commit_to(r, m->commit < lastnew ? m->commit : lastnew);
    struct raft_message *resp = msg_new(r, RAFT_MSG_APPEND_RESPONSE, m->from);
    resp->index = lastnew;
    return;
  }
  uint64_t hint = m->index < log_last(r) ? m->index : log_last(r);
  uint64_t ht;
  hint = find_conflict_by_term(r, hint, m->log_term, &ht);
  struct raft_message *resp = msg_new(r, RAFT_MSG_APPEND_RESPONSE, m->from);
  resp->index = m->index;
  resp->reject = true;
  resp->reject_hint = hint;
  resp->conflict_term = ht;
}

static void handle_heartbeat(struct raft *r, const struct raft_message *m) {
  if (m->commit <= log_last(r))
    commit_to(r, m->commit);
  struct raft_message *resp = msg_new(r, RAFT_MSG_HEARTBEAT_RESPONSE, m->from);
  resp->context = memdup(m->context, m->context_len);
  resp->context_len = m->context_len;
}

static void conf_from_meta(struct raft *r, const struct raft_snapshot_meta *s) {
  conf_clear(r);
  for (size_t i = 0; i < s->n_voters && r->n_prs < RAFT_MAX_NODES; i++)
    conf_add(r, s->voters[i], false);
  for (size_t i = 0; i < s->n_learners && r->n_prs < RAFT_MAX_NODES; i++)
    conf_add(r, s->learners[i], true);
}

static void handle_snapshot(struct raft *r, const struct raft_message *m) {
  const struct raft_snapshot_meta *s = &m->snapshot.meta;
  struct raft_message *resp;
  if (s->index <= r->committed) {
    resp = msg_new(r, RAFT_MSG_APPEND_RESPONSE, m->from);
    resp->index = r->committed;
    return;
  }
  if (match_term(r, s->index, s->term)) {
    /* We already have the snapshot's entries: just commit them. */
    commit_to(r, s->index);
    resp = msg_new(r, RAFT_MSG_APPEND_RESPONSE, m->from);
    resp->index = r->committed;
    return;
  }
  for (size_t i = 0; i < r->u_n; i++)
    free(r->u_ents[i].data);
  r->u_n = 0;
  r->u_off = s->index + 1;
  r->u_has_snap = true;
  r->u_snap = *s;
  r->committed = s->index;
  conf_from_meta(r, s);
  resp = msg_new(r, RAFT_MSG_APPEND_RESPONSE, m->from);
  resp->index = log_last(r);
}

/* ---- leader handlers -------------------------------------------------- */

static void send_timeout_now(struct raft *r, uint64_t to) {
  msg_new(r, RAFT_MSG_TIMEOUT_NOW, to);
}

static void handle_append_response(struct raft *r,
                                   const struct raft_message *m) {
  struct progress *p = pr_get(r, m->from);
  if (!p)
    return;
  p->recent_active = true;
  if (m->reject) {
    uint64_t next_probe = m->reject_hint;
    if (m->conflict_term > 0) {
      uint64_t ft;
      next_probe =
          find_conflict_by_term(r, m->reject_hint, m->conflict_term, &ft);
    }
    bool decr = false;
    if (p->state == PR_REPLICATE) {
      if (m->index > p->match) {
        p->next = p->match + 1;
        decr = true;
      }
    } else if (p->next - 1 == m->index) {
      uint64_t n = m->index < next_probe + 1 ? m->index : next_probe + 1;
      if (n < p->match + 1)
        n = p->match + 1;
      p->next = n;
      p->probe_sent = false;
      decr = true;
    }
    if (decr) {
      if (p->state == PR_REPLICATE)
        pr_become_probe(r, p);
      send_append(r, m->from, false);
    }
    return;
  }
  bool was_paused = pr_paused(r, p);
  bool updated = false;
  if (p->match < m->index) {
    p->match = m->index;
    p->probe_sent = false;
    updated = true;
  }
  if (p->next < m->index + 1)
    p->next = m->index + 1;
  if (!updated)
    return;
  switch (p->state) {
  case PR_PROBE:
    pr_become_replicate(r, p);
    break;
  case PR_SNAPSHOT:
    if (p->match + 1 >= log_first(r)) {
      pr_become_probe(r, p);
      pr_become_replicate(r, p);
    }
    break;
  case PR_REPLICATE:
    pr_inflight_free_le(r, p, m->index);
    break;
  }
  if (maybe_commit(r)) {
    leader_commit_changed(r);
  } else if (was_paused) {
    /* it may have missed the commit index while paused */
    send_append(r, m->from, true);
  }
  while (send_append(r, m->from, false)) {
  }
  if (m->from == r->lead_transferee && p->match == log_last(r))
    send_timeout_now(r, m->from);
}

static void do_transfer(struct raft *r, uint64_t to) {
  struct progress *p = pr_get(r, to);
  if (r->lead_transferee == to)
    return;
  r->lead_transferee = to;
  r->election_elapsed = 0;
  if (p->match == log_last(r))
    send_timeout_now(r, to);
  else
    send_append(r, to, true);
}

static int leader_propose(struct raft *r, int type, const void *data,
                          size_t len, uint64_t *index) {
  if (r->lead_transferee)
    return KEEL_EDROPPED;
  if (len > r->cfg.max_msg_bytes)
    return KEEL_ETOOLARGE;
  if (log_last(r) - r->committed >= r->cfg.max_uncommitted)
    return KEEL_EBUSY;
  append_local(r, type, data, len);
  if (index)
    *index = log_last(r);
  bcast_append(r);
  return 0;
}

static void step_leader(struct raft *r, const struct raft_message *m) {
  struct progress *p;
  switch (m->type) {
  case RAFT_MSG_APPEND_RESPONSE:
    handle_append_response(r, m);
    break;
  case RAFT_MSG_HEARTBEAT_RESPONSE:
    p = pr_get(r, m->from);
    if (!p)
      return;
    p->recent_active = true;
    p->probe_sent = false;
    if (p->state == PR_REPLICATE && pr_inflight_full(r, p) && p->in_count > 0) {
      p->in_start = (p->in_start + 1) % r->cfg.max_inflight;
      p->in_count--;
    }
    /* Not empty: an append lost in REPLICATE state leaves next past the
     * follower's log; the empty probe's rejection brings it back. */
    if (p->match < log_last(r) || p->state == PR_PROBE)
      send_append(r, m->from, true);
    if (m->context_len == 8) {
      uint64_t round;
      memcpy(&round, m->context, 8);
      if (round <= r->read_round && round > p->read_ack)
        p->read_ack = round;
      reads_process(r);
    }
    break;
  case RAFT_MSG_PROPOSE:
    for (size_t i = 0; i < m->n_entries; i++)
      if (m->entries[i].type == RAFT_ENTRY_NORMAL)
        leader_propose(r, RAFT_ENTRY_NORMAL, m->entries[i].data,
                       m->entries[i].len, NULL);
    break;
  case RAFT_MSG_READ_INDEX:
    if (m->context_len <= RAFT_MAX_CONTEXT && pr_get(r, m->from))
      reads_add(r, m->from, m->context, m->context_len);
    break;
  case RAFT_MSG_TRANSFER_LEADER:
    p = pr_get(r, m->index);
    if (p && !p->learner && m->index != r->id)
      do_transfer(r, m->index);
    break;
  default:
    break;
  }
}

static void step_candidate(struct raft *r, const struct raft_message *m) {
  int want = r->role == RAFT_PRE_CANDIDATE ? RAFT_MSG_PRE_VOTE_RESPONSE
                                           : RAFT_MSG_VOTE_RESPONSE;
  switch (m->type) {
  case RAFT_MSG_APPEND:
    become_follower(r, m->term, m->from);
    handle_append(r, m);
    break;
  case RAFT_MSG_HEARTBEAT:
    become_follower(r, m->term, m->from);
    handle_heartbeat(r, m);
    break;
  case RAFT_MSG_SNAPSHOT:
    become_follower(r, m->term, m->from);
    handle_snapshot(r, m);
    break;
  case RAFT_MSG_VOTE_RESPONSE:
  case RAFT_MSG_PRE_VOTE_RESPONSE: {
    if (m->type != want)
      return;
    size_t gr, rj;
    poll(r, m->from, !m->reject, &gr, &rj);
    if (gr >= quorum(r)) {
      if (r->role == RAFT_PRE_CANDIDATE)
        campaign(r, CAMPAIGN_ELECTION);
      else
        become_leader(r);
    } else if (rj >= quorum(r)) {
      become_follower(r, r->term, 0);
    }
    break;
  }
  default:
    break;
  }
}

static void step_follower(struct raft *r, const struct raft_message *m) {
  switch (m->type) {
  case RAFT_MSG_APPEND:
    r->election_elapsed = 0;
    r->lead = m->from;
    handle_append(r, m);
    break;
  case RAFT_MSG_HEARTBEAT:
    r->election_elapsed = 0;
    r->lead = m->from;
    handle_heartbeat(r, m);
    break;
  case RAFT_MSG_SNAPSHOT:
    r->election_elapsed = 0;
    r->lead = m->from;
    handle_snapshot(r, m);
    break;
  case RAFT_MSG_TIMEOUT_NOW:
    hup(r, true);
    break;
  case RAFT_MSG_READ_INDEX_RESPONSE:
    if (m->context_len <= RAFT_MAX_CONTEXT)
      read_state_add(r, m->index, m->context, m->context_len);
    break;
  default:
    break;
  }
}

/* ---- step ------------------------------------------------------------- */

/* A snapshot's configuration must be one a cluster can have: at least one
 * voter, no zero id, no id listed twice (conf_from_meta trusts it). */
static bool snap_conf_valid(const struct raft_snapshot_meta *s) {
  if (s->n_voters == 0 || s->n_voters > RAFT_MAX_NODES ||
      s->n_learners > RAFT_MAX_NODES ||
      s->n_voters + s->n_learners > RAFT_MAX_NODES)
    return false;
  uint64_t ids[RAFT_MAX_NODES];
  size_t n = 0;
  for (size_t i = 0; i < s->n_voters; i++)
    ids[n++] = s->voters[i];
  for (size_t i = 0; i < s->n_learners; i++)
    ids[n++] = s->learners[i];
  for (size_t i = 0; i < n; i++) {
    if (ids[i] == 0)
      return false;
    for (size_t j = i + 1; j < n; j++)
      if (ids[i] == ids[j])
        return false;
  }
  return true;
}

static bool msg_valid(const struct raft_message *m) {
  if (m->type <= RAFT_MSG_NONE || m->type > RAFT_MSG_TYPE_MAX)
    return false;
  if (m->from == 0)
    return false;
  if (m->n_entries && !m->entries)
    return false;
  if (m->context_len && !m->context)
    return false;
  for (size_t i = 0; i < m->n_entries; i++)
    if (m->entries[i].len && !m->entries[i].data)
      return false; /* the copy would read through NULL */
  /* The snapshot's index + 1 starts the log after it: it must not wrap. */
  if (m->type == RAFT_MSG_SNAPSHOT &&
      (m->snapshot.meta.index == 0 || m->snapshot.meta.index == UINT64_MAX ||
       !snap_conf_valid(&m->snapshot.meta)))
    return false;
  if (m->type == RAFT_MSG_APPEND) {
    if (m->n_entries > UINT64_MAX - m->index)
      return false; /* the last index would wrap */
    for (size_t i = 0; i < m->n_entries; i++)
      if (m->entries[i].index != m->index + 1 + i ||
          m->entries[i].term > m->term ||
          (i > 0 && m->entries[i].term < m->entries[i - 1].term))
        return false;
    if (m->n_entries && m->entries[0].term < m->log_term)
      return false;
  }
  return true;
}

int raft_step(struct raft *r, const struct raft_message *m) {
  if (!msg_valid(m) || (m->to != 0 && m->to != r->id) || m->from == r->id)
    return KEEL_EBADMSG;
  bool local = m->type == RAFT_MSG_PROPOSE || m->type == RAFT_MSG_READ_INDEX ||
               m->type == RAFT_MSG_TRANSFER_LEADER;
  if (local) {
    /* carries no term: routed to whoever leads */
  } else if (m->term > r->term) {
    if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE) {
      bool in_lease = r->cfg.check_quorum && r->lead != 0 &&
                      r->election_elapsed < r->cfg.election_tick;
      if (!m->transfer && in_lease)
        return 0; /* a leader is alive: ignore the disruptor */
    }
    if (m->type == RAFT_MSG_PRE_VOTE) {
      /* never change term for a pre-vote */
    } else if (m->type == RAFT_MSG_PRE_VOTE_RESPONSE && !m->reject) {
      /* our pre-vote's future term: handled by the pre-candidate */
    } else if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
               m->type == RAFT_MSG_SNAPSHOT) {
      become_follower(r, m->term, m->from);
    } else {
      /* Figure 2: only a current leader's AppendEntries or a granted vote
       * resets the election timer — not a higher term as such. Otherwise a
       * candidate whose log is too old to win, with a faster clock than
       * ours, keeps everyone's timer at zero and nobody is ever elected
       * (found by keel-sim, seed 7298, pre-vote off, 30% clock skew). */
      int elapsed = r->role == RAFT_LEADER ? 0 : r->election_elapsed;
      become_follower(r, m->term, 0);
      r->election_elapsed = elapsed;
    }
  } else if (m->term < r->term) {
    if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
        (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
      /* Tell a stale leader about our term so it steps down (without
       * this, a node that bumped its term stays cut off). */
      msg_new(r, RAFT_MSG_APPEND_RESPONSE, m->from);
    } else if (m->type == RAFT_MSG_PRE_VOTE) {
      struct raft_message *resp =
          msg_new(r, RAFT_MSG_PRE_VOTE_RESPONSE, m->from);
      resp->reject = true;
    }
    return 0;
  }

  if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE) {
    bool can_vote = r->vote == m->from || (r->vote == 0 && r->lead == 0) ||
                    (m->type == RAFT_MSG_PRE_VOTE && m->term > r->term);
    uint64_t lt = last_term(r);
    bool up_to_date =
        m->log_term > lt || (m->log_term == lt && m->index >= log_last(r));
    int resp_type = m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESPONSE
                                             : RAFT_MSG_PRE_VOTE_RESPONSE;
    if (can_vote && up_to_date) {
      struct raft_message *resp = msg_new(r, resp_type, m->from);
      resp->term = m->term;
      if (m->type == RAFT_MSG_VOTE) {
        r->election_elapsed = 0;
        r->vote = m->from;
      }
    } else {
      struct raft_message *resp = msg_new(r, resp_type, m->from);
      resp->reject = true;
    }
    return 0;
  }

  switch (r->role) {
  case RAFT_LEADER:
    step_leader(r, m);
    break;
  case RAFT_CANDIDATE:
  case RAFT_PRE_CANDIDATE:
    step_candidate(r, m);
    break;
  default:
    step_follower(r, m);
    break;
  }
  return 0;
}

/* ---- tick ------------------------------------------------------------- */

static bool quorum_active(struct raft *r) {
  size_t act = 0;
  for (size_t i = 0; i < r->n_prs; i++) {
    struct progress *p = &r->prs[i];
    if (p->id == r->id) {
      act += !p->learner;
      continue;
    }
    if (p->recent_active && !p->learner)
      act++;
    p->recent_active = false;
  }
  return act >= quorum(r);
}

void raft_tick(struct raft *r) {
  if (r->role != RAFT_LEADER) {
    if (r->election_elapsed < (1 << 30))
      r->election_elapsed++;
    if (promotable(r) && r->election_elapsed >= r->randomized_timeout) {
      r->election_elapsed = 0;
      hup(r, false);
    }
    return;
  }
  r->heartbeat_elapsed++;
  r->election_elapsed++;
  for (size_t i = 0; i < r->n_prs; i++) {
    struct progress *p = &r->prs[i];
    if (p->state == PR_SNAPSHOT &&
        ++p->snap_elapsed >= 2 * r->cfg.election_tick)
      pr_become_probe(r, p); /* the snapshot got lost: try again */
  }
  if (r->election_elapsed >= r->cfg.election_tick) {
    r->election_elapsed = 0;
    if (r->cfg.check_quorum && !quorum_active(r)) {
      become_follower(r, r->term, 0);
      return;
    }
    r->lead_transferee = 0; /* a transfer that took this long failed */
  }
  if (r->heartbeat_elapsed >= r->cfg.heartbeat_tick) {
    r->heartbeat_elapsed = 0;
    if (r->n_reads > 0 && committed_in_term(r)) {
      /* Retry: a new round confirms every older pending request too. */
      reads_new_round(r);
      reads_process(r);
    } else {
      bcast_heartbeat(r, 0);
    }
  }
}

/* ---- public API ------------------------------------------------------- */

static void ready_release(struct raft_ready *o);

int raft_new(const struct raft_config *cfg, struct raft **out) {
  if (cfg->id == 0 || cfg->election_tick <= 0 || cfg->heartbeat_tick <= 0 ||
      cfg->heartbeat_tick >= cfg->election_tick || cfg->max_inflight < 1 ||
      cfg->max_msg_bytes == 0 || cfg->max_uncommitted == 0 ||
      cfg->n_voters + cfg->n_learners > RAFT_MAX_NODES || !cfg->storage.term ||
      !cfg->storage.entries || !cfg->storage.first_index ||
      !cfg->storage.last_index || !cfg->storage.snapshot ||
      !cfg->storage.hard_state)
    return -EINVAL;
  uint64_t ids[2 * RAFT_MAX_NODES];
  size_t n_ids = 0;
  for (size_t i = 0; i < cfg->n_voters; i++)
    ids[n_ids++] = cfg->voters[i];
  for (size_t i = 0; i < cfg->n_learners; i++)
    ids[n_ids++] = cfg->learners[i];
  for (size_t i = 0; i < n_ids; i++) {
    if (ids[i] == 0)
      return -EINVAL;
    for (size_t j = i + 1; j < n_ids; j++)
      if (ids[i] == ids[j])
        return -EINVAL; /* a node listed twice */
  }
  struct raft *r = calloc(1, sizeof(*r));
  if (!r)
    return -ENOMEM;
  r->cfg = *cfg;
  r->st = cfg->storage;
  r->id = cfg->id;
  r->rng = cfg->seed ^ (cfg->id * 0x9e3779b97f4a7c15ULL);
  struct raft_hard_state hs;
  int rc = r->st.hard_state(r->st.ctx, &hs);
  if (rc != 0) {
    free(r);
    return rc;
  }
  r->u_off = r->st.last_index(r->st.ctx) + 1;
  r->term = hs.term;
  r->vote = hs.vote;
  r->committed = hs.commit;
  r->applied = cfg->applied;
  uint64_t floor = r->st.first_index(r->st.ctx) - 1;
  if (r->applied < floor)
    r->applied = floor; /* compacted entries were applied */
  if (r->committed < r->applied)
    r->committed = r->applied;
  if (r->committed > log_last(r)) {
    free(r);
    return KEEL_ECORRUPT;
  }
  r->prev_hs = hs;
  r->reads = xmalloc(RAFT_MAX_PENDING_READS * sizeof(*r->reads));
  for (size_t i = 0; i < cfg->n_voters; i++)
    conf_add(r, cfg->voters[i], false);
  for (size_t i = 0; i < cfg->n_learners; i++)
    conf_add(r, cfg->learners[i], true);
  become_follower(r, r->term, 0);
  r->prev_ss.role = RAFT_FOLLOWER;
  r->prev_ss.leader = 0;
  *out = r;
  return 0;
}

void raft_free(struct raft *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->u_n; i++)
    free(r->u_ents[i].data);
  free(r->u_ents);
  conf_clear(r);
  free(r->reads);
  msgs_free(r->msgs, r->n_msgs);
  for (size_t i = 0; i < r->n_rss; i++)
    free(r->rss[i].context);
  free(r->rss);
  if (r->ready_out)
    ready_release(&r->out);
  free(r);
}

int raft_propose(struct raft *r, const void *data, size_t len,
                 uint64_t *index) {
  if (index)
    *index = 0;
  if (len && !data)
    return -EINVAL;
  if (len > r->cfg.max_msg_bytes)
    return KEEL_ETOOLARGE;
  if (r->role == RAFT_LEADER)
    return leader_propose(r, RAFT_ENTRY_NORMAL, data, len, index);
  if (r->lead == 0)
    return KEEL_ENOLEADER;
  struct raft_message *m = msg_new(r, RAFT_MSG_PROPOSE, r->lead);
  m->term = 0;
  m->entries = xmalloc(sizeof(*m->entries));
  m->n_entries = 1;
  m->entries[0].type = RAFT_ENTRY_NORMAL;
  m->entries[0].term = 0;
  m->entries[0].index = 0;
  m->entries[0].data = memdup(data, len);
  m->entries[0].len = len;
  return 0;
}

int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc,
                             const void *data, size_t len, uint64_t *index) {
  if (index)
    *index = 0;
  if (len && !data)
    return -EINVAL;
  if (r->role != RAFT_LEADER)
    return KEEL_ENOTLEADER;
  if (!committed_in_term(r) || r->pending_conf_index > r->applied)
    return KEEL_EBUSY;
  const struct progress *p = pr_get(r, cc->node_id);
  switch (cc->type) {
  case RAFT_CONF_ADD_NODE:
    if ((p && !p->learner) || cc->node_id == 0)
      return KEEL_EMEMBER;
    if (!p && r->n_prs >= RAFT_MAX_NODES)
      return KEEL_ELIMIT;
    break;
  case RAFT_CONF_ADD_LEARNER:
    if (p || cc->node_id == 0)
      return KEEL_EMEMBER;
    if (r->n_prs >= RAFT_MAX_NODES)
      return KEEL_ELIMIT;
    break;
  case RAFT_CONF_PROMOTE:
    if (!p || !p->learner)
      return KEEL_EMEMBER;
    break;
  case RAFT_CONF_REMOVE_NODE:
    if (!p || (!p->learner && n_voters(r) <= 1))
      return KEEL_EMEMBER;
    break;
  case RAFT_CONF_UPDATE_NODE:
    if (!p)
      return KEEL_EMEMBER;
    break;
  default:
    return KEEL_EMEMBER;
  }
  int rc = leader_propose(r, RAFT_ENTRY_CONF_CHANGE, data, len, index);
  if (rc == 0)
    r->pending_conf_index = log_last(r);
  return rc;
}

int raft_apply_conf_change(struct raft *r, const struct raft_conf_change *cc) {
  struct progress *p = pr_get(r, cc->node_id);
  switch (cc->type) {
  case RAFT_CONF_ADD_NODE:
  case RAFT_CONF_PROMOTE:
    if (cc->type == RAFT_CONF_PROMOTE && (!p || !p->learner))
      return KEEL_EMEMBER;
    if (p && !p->learner)
      return KEEL_EMEMBER;
    if (p) {
      p->learner = false;
    } else {
      if (r->n_prs >= RAFT_MAX_NODES || cc->node_id == 0)
        return KEEL_EMEMBER;
      conf_add(r, cc->node_id, false);
      if (r->role == RAFT_LEADER)
        send_append(r, cc->node_id, true);
    }
    break;
  case RAFT_CONF_ADD_LEARNER:
    if (p || r->n_prs >= RAFT_MAX_NODES || cc->node_id == 0)
      return KEEL_EMEMBER;
    conf_add(r, cc->node_id, true);
    if (r->role == RAFT_LEADER)
      send_append(r, cc->node_id, true);
    break;
  case RAFT_CONF_REMOVE_NODE:
    if (!p || (!p->learner && n_voters(r) <= 1))
      return KEEL_EMEMBER;
    conf_remove(r, cc->node_id);
    if (r->lead_transferee == cc->node_id)
      r->lead_transferee = 0;
    if (cc->node_id == r->id && r->role == RAFT_LEADER) {
      become_follower(r, r->term, 0);
      return 0;
    }
    break;
  case RAFT_CONF_UPDATE_NODE:
    return 0;
  default:
    return KEEL_EMEMBER;
  }
  if (r->role == RAFT_LEADER) {
    if (maybe_commit(r))
      leader_commit_changed(r);
    else
      reads_process(r);
  }
  return 0;
}

int raft_read_index(struct raft *r, const void *ctx, size_t len) {
  if (len > RAFT_MAX_CONTEXT || (len && !ctx))
    return -EINVAL;
  if (r->role == RAFT_LEADER)
    return reads_add(r, r->id, ctx, len);
  if (r->lead == 0)
    return KEEL_ENOLEADER;
  struct raft_message *m = msg_new(r, RAFT_MSG_READ_INDEX, r->lead);
  m->term = 0;
  m->context = memdup(ctx, len);
  m->context_len = len;
  return 0;
}

int raft_transfer_leader(struct raft *r, uint64_t to) {
  if (r->role == RAFT_LEADER) {
    struct progress *p = pr_get(r, to);
    if (!p || p->learner || to == r->id)
      return KEEL_EMEMBER;
    do_transfer(r, to);
    return 0;
  }
  if (r->lead == 0)
    return KEEL_ENOLEADER;
  struct raft_message *m = msg_new(r, RAFT_MSG_TRANSFER_LEADER, r->lead);
  m->term = 0;
  m->index = to;
  return 0;
}

void raft_report_unreachable(struct raft *r, uint64_t id) {
  struct progress *p = r->role == RAFT_LEADER ? pr_get(r, id) : NULL;
  if (p && id != r->id && p->state == PR_REPLICATE)
    pr_become_probe(r, p);
}

void raft_report_snapshot(struct raft *r, uint64_t id, bool ok) {
  struct progress *p = r->role == RAFT_LEADER ? pr_get(r, id) : NULL;
  if (!p || id == r->id || p->state != PR_SNAPSHOT)
    return;
  if (!ok)
    p->pending_snapshot = 0;
  pr_become_probe(r, p);
  /* Paused until the next heartbeat answer: after a delivery the follower's
   * own answer normally comes first; after a failure the peer is likely
   * still unreachable, and the heartbeat round retries it soon enough. */
  p->probe_sent = true;
}

static uint64_t apply_from(const struct raft *r) {
  uint64_t a = r->applied;
  if (r->u_has_snap && r->u_snap.index > a)
    a = r->u_snap.index;
  return a + 1;
}

bool raft_has_ready(struct raft *r) {
  if (r->ready_out)
    return false;
  if (r->role != r->prev_ss.role || r->lead != r->prev_ss.leader)
    return true;
  if (r->term != r->prev_hs.term || r->vote != r->prev_hs.vote ||
      r->committed != r->prev_hs.commit)
    return true;
  return r->u_n > 0 || r->u_has_snap || r->n_msgs > 0 || r->n_rss > 0 ||
         r->committed >= apply_from(r);
}

void raft_ready(struct raft *r, struct raft_ready *rd) {
  assert(!r->ready_out);
  memset(rd, 0, sizeof(*rd));
  rd->soft_state.role = r->role;
  rd->soft_state.leader = r->lead;
  rd->soft_state_changed =
      r->role != r->prev_ss.role || r->lead != r->prev_ss.leader;
  rd->hard_state.term = r->term;
  rd->hard_state.vote = r->vote;
  rd->hard_state.commit = r->committed;
  rd->hard_state_changed = r->term != r->prev_hs.term ||
                           r->vote != r->prev_hs.vote ||
                           r->committed != r->prev_hs.commit;
  if (r->u_has_snap) {
    rd->has_snapshot = true;
    rd->snapshot = r->u_snap;
  }
  if (r->u_n) {
    rd->entries = xmalloc(r->u_n * sizeof(*rd->entries));
    for (size_t i = 0; i < r->u_n; i++)
      entry_copy(&rd->entries[i], &r->u_ents[i]);
    rd->n_entries = r->u_n;
  }
  uint64_t lo = apply_from(r);
  if (r->committed >= lo) {
    int rc = log_slice(r, lo, r->committed + 1, 4 * r->cfg.max_msg_bytes,
                       &rd->committed, &rd->n_committed);
    assert(rc == 0);
    (void)rc;
  }
  rd->messages = r->msgs;
  rd->n_messages = r->n_msgs;
  r->msgs = NULL;
  r->n_msgs = r->cap_msgs = 0;
  rd->read_states = r->rss;
  rd->n_read_states = r->n_rss;
  r->rss = NULL;
  r->n_rss = r->cap_rss = 0;
  r->ready_out = true;
  r->out = *rd;
}

static void ready_release(struct raft_ready *o) {
  entries_free(o->entries, o->n_entries);
  entries_free(o->committed, o->n_committed);
  msgs_free(o->messages, o->n_messages);
  for (size_t i = 0; i < o->n_read_states; i++)
    free(o->read_states[i].context);
  free(o->read_states);
  memset(o, 0, sizeof(*o));
}

void raft_advance(struct raft *r, struct raft_ready *caller_rd) {
  assert(r->ready_out);
  /* Work from our own copy: what the caller's struct says is not trusted
   * for ownership, and it is cleared so it cannot be used twice. */
  struct raft_ready *rd = &r->out;
  memset(caller_rd, 0, sizeof(*caller_rd));
  r->ready_out = false;
  r->prev_ss = rd->soft_state;
  if (rd->hard_state_changed)
    r->prev_hs = rd->hard_state;
  if (rd->has_snapshot) {
    if (r->u_has_snap && r->u_snap.index == rd->snapshot.index)
      r->u_has_snap = false;
    if (rd->snapshot.index > r->applied)
      r->applied = rd->snapshot.index;
  }
  if (rd->n_entries)
    log_stable_to(r, rd->entries[rd->n_entries - 1].index,
                  rd->entries[rd->n_entries - 1].term);
  if (rd->n_committed) {
    uint64_t a = rd->committed[rd->n_committed - 1].index;
    if (a > r->applied)
      r->applied = a;
  }
  ready_release(rd);
  if (r->role == RAFT_LEADER) {
    struct progress *self = pr_get(r, r->id);
    if (self && durable_last(r) > self->match) {
      self->match = durable_last(r);
      self->next = self->match + 1;
      if (maybe_commit(r))
        leader_commit_changed(r);
    }
  }
}

uint64_t raft_id(const struct raft *r) {
  return r->id;
}
int raft_role(const struct raft *r) {
  return r->role;
}
uint64_t raft_term(const struct raft *r) {
  return r->term;
}
uint64_t raft_leader(const struct raft *r) {
  return r->lead;
}
uint64_t raft_committed(const struct raft *r) {
  return r->committed;
}
uint64_t raft_applied(const struct raft *r) {
  return r->applied;
}
uint64_t raft_last_index(const struct raft *r) {
  return log_last(r);
}
uint64_t raft_log_term(const struct raft *r, uint64_t i) {
  return log_term_or0(r, i);
}

void raft_conf(const struct raft *r, uint64_t *voters, size_t *nv,
               uint64_t *learners, size_t *nl) {
  *nv = *nl = 0;
  for (size_t i = 0; i < r->n_prs; i++) {
    if (r->prs[i].learner)
      learners[(*nl)++] = r->prs[i].id;
    else
      voters[(*nv)++] = r->prs[i].id;
  }
}

size_t raft_describe_progress(const struct raft *r, char *buf, size_t len) {
  static const char *st[] = {"probe", "replicate", "snapshot"};
  size_t off = 0;
  if (len)
    buf[0] = 0;
  for (size_t i = 0; i < r->n_prs && off < len; i++) {
    const struct progress *p = &r->prs[i];
    int n = snprintf(
        buf + off, len - off, "%s%llu:%s%s match=%llu next=%llu inflight=%d%s",
        i ? "; " : "", (unsigned long long)p->id, p->learner ? "learner," : "",
        st[p->state], (unsigned long long)p->match, (unsigned long long)p->next,
        p->in_count, p->probe_sent ? " paused" : "");
    if (n < 0)
      break;
    off += (size_t)n;
  }
  return off;
}

bool raft_is_voter(const struct raft *r, uint64_t id) {
  const struct progress *p = pr_cget(r, id);
  return p && !p->learner;
}

const char *raft_role_name(int role) {
  static const char *names[] = {"follower", "pre-candidate", "candidate",
                                "leader"};
  if (role < 0 || role > RAFT_LEADER)
    return "?";
  return names[role];
}

const char *raft_msg_type_name(int type) {
  static const char *names[] = {
      "none",           "append",          "append_resp",   "vote",
      "vote_resp",      "pre_vote",        "pre_vote_resp", "heartbeat",
      "heartbeat_resp", "snapshot",        "snapshot_resp", "timeout_now",
      "read_index",     "read_index_resp", "transfer",      "propose"};
  if (type < 0 || type > RAFT_MSG_TYPE_MAX)
    return "?";
  return names[type];
}

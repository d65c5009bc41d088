/* node.c — the keel node: raft core + store + disk thread + peer transport
 * on one libuv loop (see node.h for the API).
 *
 * THE READY PIPELINE (loop thread unless said otherwise)
 *
 *   peer frame ──> raft_step ─┐
 *   tick timer ──> raft_tick ─┤   (any number, any time, even while a
 *   node_propose ─> raft_propose ┤    Ready is on the disk)
 *   node_read ──> (batched at the check phase) raft_read_index
 *                             v
 *   uv_check (after every poll): if no Ready is out and raft_has_ready:
 *     raft_ready(rd) -> one disk job:
 *       - a leader whose term is already durable sends rd's MSG_APPENDs
 *         now (DESIGN.md: the leader's append overlaps its sends; safe
 *         because raft.c counts the leader's own match only at
 *         raft_advance, invariant 5 there);
 *       - conf-change entries in rd.committed are decoded here and the
 *         resulting configuration computed, so it is saved in the same txn;
 *     [disk thread] the apply hook (node_apply_ops) decodes them: ONE
 *       store txn: append rd.entries + hard state + apply rd.committed +
 *       conf state (store_apply with .append), one fsync;
 *     completion: send the remaining messages, raft_apply_conf_change in
 *       log order, complete the waiters of applied entries, raft_advance,
 *       hand read states to their reads, run reads whose index is applied.
 *
 * So proposals arriving in one loop turn go into one Ready and one fsync.
 *
 * INVARIANTS
 *  1. At most one Ready is out (ready_out); it is advanced only after its
 *     disk job completed successfully. A failed disk job is fatal (the
 *     process exits: the store's txn left the disk as it was, and a restart
 *     recovers from it).
 *  2. A message of a Ready leaves before the Ready's write is durable only if
 *     it is a MSG_APPEND of a leader whose hard state term is durable.
 *  3. `applied` only grows and equals the store's applied index after every
 *     completion; a read runs only when applied >= its read index.
 *  4. Every waiter and read is in exactly one list and completed once.
 *     Both lists are FIFO in deadline order (all share one timeout).
 *  5. Waiters: id unique per process run (a random 32-bit run nonce in the
 *     high half), so an entry proposed by an earlier run never completes a
 *     waiter of this one.
 *
 * FORWARDING. A follower's raft_propose() makes the core send MSG_PROPOSE
 * to the leader (raft.h); the ForwardRequest frame is not used. The waiter at
 * the follower is completed when the entry applies there (its id and
 * proposer come back in the entry).
 *
 * STOPPING: RUNNING -> TRANSFERRING (leader only, bounded) -> CLOSING (disk
 * thread drained, then the transport closed) -> freed.
 */
#include "node.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "config.h"
#include "disk_thread.h"
#include "keel_error.h"
#include "keel_log.h"
#include "peer.h"
#include "raft.h"
#include "raft_codec.h"
#include "raft_storage_lmdb.h"
#include "store.pb-c.h"

#define COMP "node"

enum node_state { N_RUNNING, N_TRANSFERRING, N_CLOSING };

struct waiter {
  struct waiter *prev, *next; /* FIFO */
  struct waiter *hnext;       /* hash chain */
  uint64_t id;
  uint64_t index;  /* 0 when proposed at a follower (index unknown) */
  uint64_t leader; /* the leader the core knew when it was proposed */
  uint64_t deadline;
  node_propose_fn cb;
  void *ud;
};

struct read_waiter {
  struct read_waiter *prev, *next;
  uint64_t ctx;   /* 0: not yet asked */
  uint64_t index; /* valid when has_index */
  bool has_index;
  uint64_t deadline;
  node_read_fn cb;
  void *ud;
};

struct conf_item {
  size_t pos;  /* in rd.committed */
  uint64_t id; /* keelstore.ConfChange.id: the proposer's waiter */
  int rc;      /* raft_apply_conf_change's answer */
  struct raft_conf_change cc;
  bool ok;
  /* for the transport */
  char name[KEEL_CONFIG_NAME_MAX];
  char url[KEEL_CONFIG_URL_MAX];
};

struct ready_job {
  struct node *n;
  struct raft_ready rd;
  struct snap_in *install; /* rd.has_snapshot: the staged stream */
  bool *sent;              /* rd.n_messages: sent before the write */
  struct store_entry *append;
  struct store_hard_state hs;
  bool has_hs;
  struct store_conf_state conf;
  bool has_conf;
  struct store_meta_write meta[2];
  size_t n_meta;
  uint8_t *members_buf; /* encoded member list (meta "members") */
  uint8_t cluster_id_be[8];
  bool saves_cluster_id;
  struct conf_item *confs;
  size_t n_confs;
  /* filled on the disk thread */
  struct store_entry *committed;
  struct node_apply_out out;
  bool applied;                /* out is the hook's, to release */
  uint64_t write_ns, apply_ns; /* timed on the disk thread (/metrics) */
};

struct node {
  uv_loop_t *loop;
  struct store *st;
  struct raft *r;
  struct disk_thread *dt;
  struct peer_transport *pt;
  struct node_apply_ops ops;
  uv_timer_t tick;
  uv_check_t check;
  uv_idle_t idle;
  uv_timer_t stop_timer;
  int handles_open;
  enum node_state state;
  node_stopped_fn stopped_cb;
  void *stopped_ud;

  uint64_t id, cluster_id;
  uint32_t heartbeat_ms;
  uint64_t timeout_ms;
  uint64_t max_req_bytes;
  bool ready_out;
  uint64_t durable_term;
  uint64_t applied;
  bool conf_saved; /* store holds a conf state */
  bool cluster_id_saved;
  struct raft_soft_state ss;

  struct waiter *w_head, *w_tail;
  struct waiter **buckets;
  size_t n_buckets, n_waiters, max_waiters;
  uint64_t run_nonce, next_seq;

  struct read_waiter *r_head, *r_tail;
  size_t n_reads, max_reads;
  bool reads_unasked;
  uint64_t next_read_ctx;

  struct node_status stats;

  /* Snapshots and compaction (decision 0101, 0772). */
  uint64_t snapshot_count, keep_entries, chunk_bytes, max_snapshot_bytes;
  uint64_t applied_term;
  uint64_t snap_index; /* latest store_log_set_snapshot index */
  bool compacting;
  struct ready_job *pending_job;          /* refused by a full disk queue */
  uint64_t want_snapshot[RAFT_MAX_NODES]; /* peers the core asked for */
  size_t n_want_snapshot;
  struct snap_out *outs[RAFT_MAX_NODES];
  size_t n_outs;
  struct snap_in *in;     /* the stream being received, or NULL */
  struct snap_in *staged; /* received whole, waiting for the core */
  struct snap_in *snaps;  /* all of them, aborted ones included */

  /* Members as of the applied index (store meta "members"). */
  struct member {
    uint64_t id;
    char name[KEEL_CONFIG_NAME_MAX];
    char url[KEEL_CONFIG_URL_MAX];
    bool learner;
  } members[RAFT_MAX_NODES];
  size_t n_members;
  node_removed_fn on_removed;
  void *removed_ud;
  node_applied_fn on_applied;
  void *applied_ud;
  bool removed;
  struct node_metrics metrics; /* histograms for /metrics */
};

/* A snapshot stream to one follower (loop thread only). */
struct snap_out {
  struct node *n;
  uint64_t to;
  struct store_snapshot *snap;
  struct raft_snapshot_meta meta;
  uint64_t offset;
  uint8_t *buf;
};

/* A snapshot stream being received. `rs` and `err` belong to the disk
 * thread (its jobs run in order); the rest to the loop thread. */
struct snap_in {
  struct snap_in *prev, *next; /* node.snaps: every one not yet freed */
  struct node *n;
  uint64_t from;
  struct raft_snapshot_meta meta;
  uint64_t next_offset;
  int jobs; /* submitted, not completed */
  bool aborted, complete;
  bool installing; /* handed to a Ready job (which frees it) */
  struct store_restore *rs;
  int err;
};

static void pump(struct node *n);
static void kick(struct node *n);
static void on_removed_timer(uv_timer_t *t);
static void check_transferred(struct node *n);
static void snap_in_free(struct node *n, struct snap_in *si);
static void snapshot_chunk(struct node *n, const struct raft_message *m);
static void snapshot_flush(struct node *n);
static void maybe_compact(struct node *n);

/* ------------------------------------------------------------------ */
/* Waiters                                                             */
/* ------------------------------------------------------------------ */

static struct waiter **bucket(struct node *n, uint64_t id) {
  return &n->buckets[(id * 0x9E3779B97F4A7C15ull) >> 40 & (n->n_buckets - 1)];
}

static void waiter_unlink(struct node *n, struct waiter *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    n->w_head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    n->w_tail = w->prev;
  struct waiter **p = bucket(n, w->id);
  while (*p != w)
    p = &(*p)->hnext;
  *p = w->hnext;
  n->n_waiters--;
}

static void waiter_done(struct node *n, struct waiter *w, int status,
                        const struct node_applied *resp) {
  waiter_unlink(n, w);
  if (status == 0)
    n->stats.proposals_applied++;
  else
    n->stats.proposals_failed++;
  w->cb(w->ud, status, resp);
  free(w);
}

static struct waiter *waiter_find(struct node *n, uint64_t id) {
  for (struct waiter *w = *bucket(n, id); w; w = w->hnext)
    if (w->id == id)
      return w;
  return NULL;
}

static void read_unlink(struct node *n, struct read_waiter *rw) {
  if (rw->prev)
    rw->prev->next = rw->next;
  else
    n->r_head = rw->next;
  if (rw->next)
    rw->next->prev = rw->prev;
  else
    n->r_tail = rw->prev;
  n->n_reads--;
}

static void read_done(struct node *n, struct read_waiter *rw, int status) {
  read_unlink(n, rw);
  rw->cb(rw->ud, status);
  free(rw);
}

/* Reads whose index is applied run now. */
static void run_reads(struct node *n) {
  struct read_waiter *rw = n->r_head;
  while (rw) {
    struct read_waiter *next = rw->next;
    if (rw->has_index && rw->index <= n->applied)
      read_done(n, rw, 0);
    rw = next;
  }
}

static void expire(struct node *n) {
  uint64_t now = uv_now(n->loop);
  while (n->w_head && n->w_head->deadline <= now)
    waiter_done(n, n->w_head, KEEL_ETIMEOUT, NULL);
  while (n->r_head && n->r_head->deadline <= now)
    read_done(n, n->r_head, KEEL_ETIMEOUT);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static void send_msg(struct node *n, const struct raft_message *m) {
  if (m->type == RAFT_MSG_SNAPSHOT) {
    /* The stream starts once no disk job is running (snapshot_flush), so
     * the store's applied state and the core's configuration agree. */
    for (size_t i = 0; i < n->n_want_snapshot; i++)
      if (n->want_snapshot[i] == m->to)
        return;
    if (n->n_want_snapshot < RAFT_MAX_NODES)
      n->want_snapshot[n->n_want_snapshot++] = m->to;
    return;
  }
  struct raft_codec_out enc;
  if (raft_codec_encode(m, &enc) != 0)
    return;
  Keelraft__PeerFrame f = KEELRAFT__PEER_FRAME__INIT;
  f.body_case = KEELRAFT__PEER_FRAME__BODY_MESSAGE;
  f.message = &enc.msg;
  int rc = peer_transport_send(n->pt, m->to, &f);
  if (rc && KEEL_LOG_ENABLED(KEEL_LOG_DEBUG))
    keel_logkv(KEEL_LOG_DEBUG, COMP, "send failed",
               "peer=%016llx type=%s err=%s", (unsigned long long)m->to,
               raft_msg_type_name(m->type), keel_strerror(rc));
  raft_codec_out_free(&enc);
}

static void on_frame(void *ctx, uint64_t from, const Keelraft__PeerFrame *f) {
  struct node *n = ctx;
  if (n->state == N_CLOSING || !n->r)
    return;
  if (f->body_case != KEELRAFT__PEER_FRAME__BODY_MESSAGE || !f->message) {
    keel_logkv(KEEL_LOG_DEBUG, COMP, "ignored frame", "peer=%016llx body=%d",
               (unsigned long long)from, (int)f->body_case);
    return;
  }
  struct raft_codec_in in;
  const char *why = NULL;
  int rc = raft_codec_decode(f->message, &in, &why);
  if (rc) {
    keel_logkv(KEEL_LOG_WARN, COMP, "refused raft message",
               "peer=%016llx reason=\"%s\"", (unsigned long long)from,
               why ? why : keel_strerror(rc));
    return;
  }
  if (in.msg.from != from) {
    keel_logkv(KEEL_LOG_WARN, COMP, "refused raft message",
               "peer=%016llx reason=\"sender is not the connection's member\" "
               "from=%016llx",
               (unsigned long long)from, (unsigned long long)in.msg.from);
  } else if (in.msg.type == RAFT_MSG_SNAPSHOT) {
    snapshot_chunk(n, &in.msg);
  } else {
    rc = raft_step(n->r, &in.msg);
    kick(n);
    if (rc)
      keel_logkv(KEEL_LOG_WARN, COMP, "raft refused message",
                 "peer=%016llx type=%s err=%s", (unsigned long long)from,
                 raft_msg_type_name(in.msg.type), keel_strerror(rc));
  }
  raft_codec_in_free(&in);
}

/* ------------------------------------------------------------------ */
/* Conf changes                                                        */
/* ------------------------------------------------------------------ */

static bool has_id(const uint64_t *v, size_t n, uint64_t id) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == id)
      return true;
  return false;
}

static void del_id(uint64_t *v, size_t *n, uint64_t id) {
  for (size_t i = 0; i < *n; i++)
    if (v[i] == id) {
      v[i] = v[--*n];
      return;
    }
}

/* What the configuration becomes after cc (the core's rules, decision
 * 0102); false if the core will ignore it. */
static bool conf_apply(uint64_t *vo, size_t *nv, uint64_t *le, size_t *nl,
                       const struct raft_conf_change *cc) {
  uint64_t id = cc->node_id;
  switch (cc->type) {
  case RAFT_CONF_ADD_NODE:
  case RAFT_CONF_PROMOTE:
    if (has_id(vo, *nv, id) || *nv >= RAFT_MAX_NODES)
      return false;
    if (cc->type == RAFT_CONF_PROMOTE && !has_id(le, *nl, id))
      return false;
    del_id(le, nl, id);
    vo[(*nv)++] = id;
    return true;
  case RAFT_CONF_ADD_LEARNER:
    if (has_id(vo, *nv, id) || has_id(le, *nl, id) || *nl >= RAFT_MAX_NODES)
      return false;
    le[(*nl)++] = id;
    return true;
  case RAFT_CONF_REMOVE_NODE:
    if (!has_id(vo, *nv, id) && !has_id(le, *nl, id))
      return false;
    if (has_id(vo, *nv, id) && *nv == 1)
      return false;
    del_id(vo, nv, id);
    del_id(le, nl, id);
    return true;
  default:
    return false;
  }
}

/* The member list follows the applied conf changes (names and peer URLs
 * from the ConfChange; --initial-cluster for the bootstrap members). */
static void members_apply(struct node *n, const struct conf_item *ci) {
  size_t i = 0;
  while (i < n->n_members && n->members[i].id != ci->cc.node_id)
    i++;
  if (ci->cc.type == RAFT_CONF_REMOVE_NODE) {
    if (i < n->n_members)
      n->members[i] = n->members[--n->n_members];
    return;
  }
  if (i == n->n_members) {
    if (n->n_members >= RAFT_MAX_NODES)
      return;
    memset(&n->members[i], 0, sizeof(n->members[i]));
    n->members[i].id = ci->cc.node_id;
    n->n_members++;
  }
  struct member *m = &n->members[i];
  if (ci->name[0])
    snprintf(m->name, sizeof(m->name), "%s", ci->name);
  if (ci->url[0])
    snprintf(m->url, sizeof(m->url), "%s", ci->url);
  if (ci->cc.type == RAFT_CONF_ADD_LEARNER)
    m->learner = true;
  else if (ci->cc.type == RAFT_CONF_ADD_NODE ||
           ci->cc.type == RAFT_CONF_PROMOTE)
    m->learner = false;
}

/* The member list as a keelstore.SnapshotMeta holding only `members` (the
 * wire form of a repeated keelstore.Member); malloc'd. */
static uint8_t *members_encode(const struct node *n, size_t *len) {
  Keelstore__Member ms[RAFT_MAX_NODES], *mp[RAFT_MAX_NODES];
  char *urls[RAFT_MAX_NODES];
  for (size_t i = 0; i < n->n_members; i++) {
    keelstore__member__init(&ms[i]);
    ms[i].id = n->members[i].id;
    ms[i].name = (char *)n->members[i].name;
    urls[i] = (char *)n->members[i].url;
    if (urls[i][0]) {
      ms[i].peer_urls = &urls[i];
      ms[i].n_peer_urls = 1;
    }
    ms[i].is_learner = n->members[i].learner;
    mp[i] = &ms[i];
  }
  Keelstore__SnapshotMeta sm = KEELSTORE__SNAPSHOT_META__INIT;
  sm.members = mp;
  sm.n_members = n->n_members;
  *len = keelstore__snapshot_meta__get_packed_size(&sm);
  uint8_t *buf = malloc(*len ? *len : 1);
  if (!buf)
    abort();
  keelstore__snapshot_meta__pack(&sm, buf);
  return buf;
}

/* Loads the stored member list; false when there is none. */
static bool members_load(struct node *n) {
  size_t len = 0;
  uint8_t small[1];
  if (store_meta_get(n->st, "members", small, 0, &len) != 0)
    return false;
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf || store_meta_get(n->st, "members", buf, len, &len) != 0) {
    free(buf);
    return false;
  }
  Keelstore__SnapshotMeta *sm =
      keelstore__snapshot_meta__unpack(NULL, len, buf);
  free(buf);
  if (!sm)
    return false;
  n->n_members = 0;
  for (size_t i = 0; i < sm->n_members && i < RAFT_MAX_NODES; i++) {
    struct member *m = &n->members[n->n_members++];
    memset(m, 0, sizeof(*m));
    m->id = sm->members[i]->id;
    snprintf(m->name, sizeof(m->name), "%s", sm->members[i]->name);
    if (sm->members[i]->n_peer_urls)
      snprintf(m->url, sizeof(m->url), "%s", sm->members[i]->peer_urls[0]);
    m->learner = sm->members[i]->is_learner;
  }
  keelstore__snapshot_meta__free_unpacked(sm, NULL);
  return true;
}

/* Dials the members --initial-cluster did not name (added later). */
static void members_dial(struct node *n) {
  for (size_t i = 0; i < n->n_members; i++) {
    struct keel_url u;
    char e[KEEL_CONFIG_ERR_MAX];
    if (n->members[i].id == n->id || !n->members[i].url[0] ||
        keel_config_parse_url(n->members[i].url, &u, e, sizeof(e)) != 0)
      continue;
    peer_transport_add_peer(n->pt, n->members[i].id,
                            n->members[i].name[0] ? n->members[i].name
                                                  : "member",
                            u.host, u.port); /* KEEL_EEXIST: known */
  }
}

/* Decodes the conf changes among rd.committed and computes the resulting
 * configuration into job->conf. */
static void prepare_confs(struct node *n, struct ready_job *j) {
  size_t count = 0;
  for (size_t i = 0; i < j->rd.n_committed; i++)
    if (j->rd.committed[i].type == RAFT_ENTRY_CONF_CHANGE)
      count++;
  /* The first conf state and the cluster id ride on the first batch that
   * applies something (store_apply with no entries trips a memset(NULL, 0)
   * in store_kv.c under UBSan; reported to the store). */
  if (!count &&
      ((n->conf_saved && n->cluster_id_saved) || j->rd.n_committed == 0))
    return;
  uint64_t vo[RAFT_MAX_NODES], le[RAFT_MAX_NODES];
  size_t nv, nl;
  raft_conf(n->r, vo, &nv, le, &nl);
  if (count) {
    j->confs = calloc(count, sizeof(*j->confs));
    if (!j->confs)
      abort();
  }
  for (size_t i = 0; i < j->rd.n_committed; i++) {
    const struct raft_entry *e = &j->rd.committed[i];
    if (e->type != RAFT_ENTRY_CONF_CHANGE)
      continue;
    struct conf_item *ci = &j->confs[j->n_confs++];
    ci->pos = i;
    Keelstore__ConfChange *cc =
        keelstore__conf_change__unpack(NULL, e->len, e->data);
    if (!cc || (int)cc->type < 0 || cc->type > 4 || cc->node_id == 0) {
      keel_logkv(KEEL_LOG_ERROR, COMP, "undecodable conf change entry: ignored",
                 "index=%llu", (unsigned long long)e->index);
      if (cc)
        keelstore__conf_change__free_unpacked(cc, NULL);
      continue;
    }
    ci->cc.type = (int)cc->type;
    ci->cc.node_id = cc->node_id;
    ci->id = cc->id;
    snprintf(ci->name, sizeof(ci->name), "%s", cc->name ? cc->name : "");
    if (cc->n_peer_urls)
      snprintf(ci->url, sizeof(ci->url), "%s", cc->peer_urls[0]);
    keelstore__conf_change__free_unpacked(cc, NULL);
    ci->ok = conf_apply(vo, &nv, le, &nl, &ci->cc);
  }
  raft_storage_conf_from_lists(vo, nv, le, nl, &j->conf);
  j->has_conf = true;
  for (size_t i = 0; i < j->n_confs; i++)
    if (j->confs[i].ok)
      members_apply(n, &j->confs[i]);
  size_t mlen = 0;
  j->members_buf = members_encode(n, &mlen);
  j->meta[j->n_meta].name = "members";
  j->meta[j->n_meta].value = j->members_buf;
  j->meta[j->n_meta].len = mlen;
  j->n_meta++;
  if (!n->cluster_id && n->pt)
    n->cluster_id = peer_transport_cluster_id(n->pt);
  if (!n->cluster_id_saved && n->cluster_id) {
    for (int b = 0; b < 8; b++)
      j->cluster_id_be[b] = (uint8_t)(n->cluster_id >> (56 - 8 * b));
    j->meta[j->n_meta].name = "cluster-id";
    j->meta[j->n_meta].value = j->cluster_id_be;
    j->meta[j->n_meta].len = 8;
    j->n_meta++;
    j->saves_cluster_id = true;
  }
}

/* After the txn: the core learns each change in log order; the transport
 * learns about added and removed peers. */
static void finish_confs(struct node *n, struct ready_job *j) {
  for (size_t i = 0; i < j->n_confs; i++) {
    struct conf_item *ci = &j->confs[i];
    if (!ci->ok) {
      ci->rc = KEEL_EMEMBER;
      continue;
    }
    int rc = raft_apply_conf_change(n->r, &ci->cc);
    ci->rc = rc;
    keel_logkv(KEEL_LOG_INFO, COMP, "applied membership change",
               "type=%d member=%016llx rc=%s", ci->cc.type,
               (unsigned long long)ci->cc.node_id, keel_strerror(rc));
    if (ci->cc.node_id == n->id) {
      if (ci->cc.type == RAFT_CONF_REMOVE_NODE && rc == 0)
        n->removed = true;
      continue;
    }
    if (ci->cc.type == RAFT_CONF_REMOVE_NODE) {
      peer_transport_remove_peer(n->pt, ci->cc.node_id);
    } else if (ci->cc.type == RAFT_CONF_ADD_NODE ||
               ci->cc.type == RAFT_CONF_ADD_LEARNER) {
      struct keel_url u;
      char e[KEEL_CONFIG_ERR_MAX];
      if (ci->url[0] && keel_config_parse_url(ci->url, &u, e, sizeof(e)) == 0)
        peer_transport_add_peer(n->pt, ci->cc.node_id,
                                ci->name[0] ? ci->name : "member", u.host,
                                u.port);
    }
  }
  if (j->has_conf)
    n->conf_saved = true;
  if (j->saves_cluster_id)
    n->cluster_id_saved = true;
  /* The proposers' waiters (ids are unique per run, decision 0771). */
  for (size_t i = 0; i < j->n_confs; i++) {
    struct waiter *w = j->confs[i].id ? waiter_find(n, j->confs[i].id) : NULL;
    if (w)
      waiter_done(n, w, j->confs[i].rc, NULL);
  }
}

/* ------------------------------------------------------------------ */
/* The disk job                                                        */
/* ------------------------------------------------------------------ */

static int job_work(void *arg) {
  struct ready_job *j = arg;
  struct node *n = j->n;
  size_t nc = j->rd.n_committed;
  if (j->install) {
    /* The stream is on disk and checked by now; switch to it, then record
     * it as the log's snapshot (the core reads it back at restart). */
    struct snap_in *si = j->install;
    if (si->err || !si->rs)
      return si->err ? si->err : KEEL_ECORRUPT;
    struct store_snapshot_meta sm = {0};
    sm.index = j->rd.snapshot.index;
    sm.term = j->rd.snapshot.term;
    raft_storage_conf_from_lists(j->rd.snapshot.voters, j->rd.snapshot.n_voters,
                                 j->rd.snapshot.learners,
                                 j->rd.snapshot.n_learners, &sm.conf);
    int rc = store_restore_finish(si->rs, &sm.conf);
    si->rs = NULL;
    if (rc)
      return rc;
    if ((rc = store_log_set_snapshot(n->st, &sm)) != 0)
      return rc;
  }
  uint64_t t0 = uv_hrtime();
  if (nc) {
    struct store_apply_batch extra = {
        .append = j->append,
        .n_append = j->rd.n_entries,
        .hard_state = j->has_hs ? &j->hs : NULL,
        .conf = j->has_conf ? &j->conf : NULL,
        .meta = j->n_meta ? j->meta : NULL,
        .n_meta = j->n_meta,
    };
    int rc = n->ops.apply(n->ops.ud, n->st, j->committed, nc, &extra, &j->out);
    if (rc == 0)
      j->applied = true;
    /* One txn, one sync: with an append it is also the durable write. */
    j->apply_ns = uv_hrtime() - t0;
    if (j->rd.n_entries || j->has_hs)
      j->write_ns = j->apply_ns;
    return rc;
  }
  int rc = store_log_append(n->st, j->append, j->rd.n_entries,
                            j->has_hs ? &j->hs : NULL);
  j->write_ns = uv_hrtime() - t0;
  return rc;
}

static void job_free(struct node *n, struct ready_job *j) {
  if (j->applied && n->ops.release)
    n->ops.release(n->ops.ud, &j->out);
  if (j->install)
    snap_in_free(n, j->install);
  free(j->members_buf);
  free(j->sent);
  free(j->append);
  free(j->confs);
  free(j->committed);
  free(j->out.ids);
  free(j->out.proposers);
  free(j);
}

static void on_soft_state(struct node *n, const struct raft_soft_state *ss) {
  if (ss->leader != n->ss.leader) {
    n->stats.leader_changes++;
    keel_logkv(KEEL_LOG_INFO, COMP, "leader changed",
               "leader=%016llx role=%s term=%llu",
               (unsigned long long)ss->leader, raft_role_name(ss->role),
               (unsigned long long)raft_term(n->r));
    /* Proposals handed to another leader and not yet committed may or may
     * not make it now. (The Ready's soft state lags the core: a proposal
     * made to the new leader already is not affected.) */
    uint64_t commit = raft_committed(n->r);
    struct waiter *w = n->w_head;
    while (w) {
      struct waiter *next = w->next;
      if (w->leader != ss->leader && (w->index == 0 || w->index > commit))
        waiter_done(n, w, KEEL_EUNKNOWN, NULL);
      w = next;
    }
    /* Reads asked of the old leader will not be answered. */
    struct read_waiter *rw = n->r_head;
    while (rw) {
      struct read_waiter *next = rw->next;
      if (!rw->has_index && rw->ctx)
        read_done(n, rw, KEEL_ENOLEADER);
      rw = next;
    }
  }
  n->ss = *ss;
}

static void job_done(void *arg, int status) {
  struct ready_job *j = arg;
  struct node *n = j->n;
  if (status) {
    keel_logkv(KEEL_LOG_ERROR, COMP,
               "disk write failed: stopping (restart recovers from the disk)",
               "err=%s", keel_strerror(status));
    exit(1);
  }
  struct raft_ready *rd = &j->rd;
  if (j->write_ns)
    metrics_histogram_observe(&n->metrics.fsync, (double)j->write_ns / 1e9);
  if (j->apply_ns)
    metrics_histogram_observe(&n->metrics.apply, (double)j->apply_ns / 1e9);
  if (rd->hard_state_changed)
    n->durable_term = rd->hard_state.term;
  if (j->install) {
    keel_logkv(KEEL_LOG_INFO, COMP, "installed snapshot",
               "index=%llu term=%llu from=%016llx",
               (unsigned long long)rd->snapshot.index,
               (unsigned long long)rd->snapshot.term,
               (unsigned long long)j->install->from);
    /* Entries the snapshot covers are applied, but their responses are
     * not known here. */
    struct waiter *w = n->w_head;
    while (w) {
      struct waiter *next = w->next;
      if (w->index && w->index <= rd->snapshot.index)
        waiter_done(n, w, KEEL_EUNKNOWN, NULL);
      w = next;
    }
    if (rd->snapshot.index > n->applied) {
      n->applied = rd->snapshot.index;
      n->applied_term = rd->snapshot.term;
    }
    n->snap_index = rd->snapshot.index;
    n->conf_saved = true;
    if (members_load(n)) /* the member list came with the state machine */
      members_dial(n);
  }
  for (size_t i = 0; i < rd->n_messages; i++)
    if (!j->sent[i])
      send_msg(n, &rd->messages[i]);
  finish_confs(n, j);

  /* The observer sees the batch before its waiters are answered, so a
   * client that wrote and then reads a watch finds the events there. */
  if (n->on_applied && (j->applied || j->install))
    n->on_applied(n->applied_ud, j->applied ? &j->out : NULL,
                  j->install != NULL);

  /* Complete the waiters of the entries applied here. */
  uint64_t last = n->applied;
  for (size_t i = 0; i < rd->n_committed; i++) {
    last = rd->committed[i].index;
    n->applied_term = rd->committed[i].term;
    if (!j->applied || j->out.proposers[i] != n->id || !j->out.ids[i])
      continue;
    struct waiter *w = waiter_find(n, j->out.ids[i]);
    if (!w)
      continue;
    if (j->out.responses) {
      struct node_applied a = {&j->out.responses[i], j->out.result, i};
      waiter_done(n, w, 0, &a);
    } else {
      waiter_done(n, w, KEEL_EUNKNOWN, NULL);
    }
  }
  if (last > n->applied)
    n->applied = last;
  /* A waiter whose position is applied and was not completed above lost its
   * position to another entry. */
  if (rd->n_committed) {
    struct waiter *w = n->w_head;
    while (w) {
      struct waiter *next = w->next;
      if (w->index && w->index <= n->applied)
        waiter_done(n, w, KEEL_EDROPPED, NULL);
      w = next;
    }
  }
  /* Read states: matched by context. */
  for (size_t i = 0; i < rd->n_read_states; i++) {
    const struct raft_read_state *rs = &rd->read_states[i];
    if (rs->context_len != 8)
      continue;
    uint64_t ctx;
    memcpy(&ctx, rs->context, 8);
    for (struct read_waiter *rw = n->r_head; rw; rw = rw->next)
      if (rw->ctx == ctx && !rw->has_index) {
        rw->has_index = true;
        rw->index = rs->index;
      }
  }
  bool soft = rd->soft_state_changed;
  struct raft_soft_state ss = rd->soft_state;
  raft_advance(n->r, rd);
  n->ready_out = false;
  n->stats.readies++;
  job_free(n, j);
  if (soft)
    on_soft_state(n, &ss);
  run_reads(n);
  check_transferred(n);
  if (n->state != N_CLOSING) {
    snapshot_flush(n);
    maybe_compact(n);
    pump(n);
  }
  if (n->removed && n->state == N_RUNNING &&
      !uv_is_active((uv_handle_t *)&n->stop_timer)) {
    keel_logkv(KEEL_LOG_WARN, COMP, "this member was removed from the cluster",
               NULL);
    /* From a fresh callback, not from inside this completion. */
    uv_timer_start(&n->stop_timer, on_removed_timer, 0, 0);
  }
}

/* Takes the next Ready, if any, and hands it to the disk thread. */
static void pump(struct node *n) {
  if (n->state == N_CLOSING)
    return;
  /* Linearizable reads of this turn: one ReadIndex request for all (the
   * core takes it while a Ready is out). */
  if (n->reads_unasked) {
    n->reads_unasked = false;
    uint64_t ctx = ++n->next_read_ctx;
    int rc = raft_read_index(n->r, &ctx, sizeof(ctx));
    struct read_waiter *rw = n->r_head;
    while (rw) {
      struct read_waiter *next = rw->next;
      if (rw->ctx == 0 && !rw->has_index) {
        if (rc)
          read_done(n, rw, rc);
        else
          rw->ctx = ctx;
      }
      rw = next;
    }
  }
  if (n->pending_job) {
    if (disk_thread_submit(n->dt, job_work, job_done, n->pending_job) != 0)
      return; /* still full: the next completion retries */
    n->pending_job = NULL;
  }
  if (n->ready_out)
    return;
  if (!raft_has_ready(n->r))
    return;
  struct ready_job *j = calloc(1, sizeof(*j));
  if (!j)
    abort();
  j->n = n;
  raft_ready(n->r, &j->rd);
  n->ready_out = true;
  struct raft_ready *rd = &j->rd;
  j->sent = calloc(rd->n_messages ? rd->n_messages : 1, sizeof(bool));
  j->append = calloc(rd->n_entries ? rd->n_entries : 1, sizeof(*j->append));
  if (!j->sent || !j->append)
    abort();
  if (rd->n_committed) {
    size_t nc = rd->n_committed;
    j->committed = calloc(nc, sizeof(*j->committed));
    j->out.ids = calloc(nc, sizeof(uint64_t));
    j->out.proposers = calloc(nc, sizeof(uint64_t));
    if (!j->committed || !j->out.ids || !j->out.proposers)
      abort();
    for (size_t i = 0; i < nc; i++) {
      j->committed[i].index = rd->committed[i].index;
      j->committed[i].term = rd->committed[i].term;
      j->committed[i].type = (uint32_t)rd->committed[i].type;
      j->committed[i].data = rd->committed[i].data;
      j->committed[i].len = rd->committed[i].len;
    }
  }
  for (size_t i = 0; i < rd->n_entries; i++) {
    j->append[i].index = rd->entries[i].index;
    j->append[i].term = rd->entries[i].term;
    j->append[i].type = (uint32_t)rd->entries[i].type;
    j->append[i].data = rd->entries[i].data;
    j->append[i].len = rd->entries[i].len;
  }
  if (rd->hard_state_changed) {
    j->has_hs = true;
    j->hs.term = rd->hard_state.term;
    j->hs.vote = rd->hard_state.vote;
    j->hs.commit = rd->hard_state.commit;
  }
  if (rd->has_snapshot) {
    /* Only a staged stream is ever stepped into the core (snapshot_chunk),
     * so the snapshot it installs is the staged one. */
    if (!n->staged || n->staged->meta.index != rd->snapshot.index) {
      keel_logkv(KEEL_LOG_ERROR, COMP, "snapshot to install is not staged",
                 "index=%llu", (unsigned long long)rd->snapshot.index);
      abort();
    }
    j->install = n->staged;
    j->install->installing = true;
    n->staged = NULL;
  }
  prepare_confs(n, j);
  /* Invariant 2: a leader's appends may overlap its own write. */
  bool term_durable =
      !rd->hard_state_changed || rd->hard_state.term == n->durable_term;
  if (raft_role(n->r) == RAFT_LEADER && term_durable)
    for (size_t i = 0; i < rd->n_messages; i++)
      if (rd->messages[i].type == RAFT_MSG_APPEND) {
        send_msg(n, &rd->messages[i]);
        j->sent[i] = true;
      }
  int rc = disk_thread_submit(n->dt, job_work, job_done, j);
  if (rc == KEEL_EBUSY) {
    n->pending_job = j; /* decision 0652: retried after a completion */
  } else if (rc) {
    keel_logkv(KEEL_LOG_ERROR, COMP, "disk submit failed", "err=%s",
               keel_strerror(rc));
    abort();
  }
}

/* ------------------------------------------------------------------ */
/* Snapshots out (leader): stream the store to a follower               */
/* ------------------------------------------------------------------ */

static int snap_pull(void *ud, struct peer_transport *t, uint64_t to) {
  struct snap_out *o = ud;
  struct node *n = o->n;
  if (raft_role(n->r) != RAFT_LEADER)
    return KEEL_ECANCELED;
  size_t len = 0;
  int rc = store_snapshot_read(o->snap, o->buf, n->chunk_bytes, &len);
  if (rc)
    return rc;
  struct raft_message m = {0};
  m.type = RAFT_MSG_SNAPSHOT;
  m.from = n->id;
  m.to = to;
  m.term = raft_term(n->r);
  m.snapshot.meta = o->meta;
  m.snapshot.offset = o->offset;
  m.snapshot.data = o->buf;
  m.snapshot.len = len;
  m.snapshot.last = len == 0;
  struct raft_codec_out enc;
  if (raft_codec_encode(&m, &enc) != 0)
    return -ENOMEM;
  uint8_t sha[32];
  if (len == 0) {
    store_snapshot_digest(o->snap, sha, &enc.meta.size);
    enc.meta.sha256.data = sha;
    enc.meta.sha256.len = 32;
  }
  enc.meta.cluster_id = n->cluster_id;
  Keelraft__PeerFrame f = KEELRAFT__PEER_FRAME__INIT;
  f.body_case = KEELRAFT__PEER_FRAME__BODY_MESSAGE;
  f.message = &enc.msg;
  rc = peer_transport_send(t, to, &f);
  raft_codec_out_free(&enc);
  if (rc)
    return rc;
  o->offset += len;
  return len ? 1 : 0;
}

/* The transport dropped frames for `peer` (queue full or no connection):
 * the leader stops pipelining to it and probes (raft_report_unreachable). */
static void on_peer_unreachable(void *ctx, uint64_t peer) {
  struct node *n = ctx;
  if (n->state == N_CLOSING)
    return;
  raft_report_unreachable(n->r, peer);
  kick(n);
}

static void snap_out_done(void *ud, int status) {
  struct snap_out *o = ud;
  struct node *n = o->n;
  for (size_t i = 0; i < n->n_outs; i++)
    if (n->outs[i] == o) {
      n->outs[i] = n->outs[--n->n_outs];
      break;
    }
  /* The core waits in its SNAPSHOT state for this outcome (raft.h): a
   * failed stream is retried at the next heartbeat round. */
  if (n->state != N_CLOSING) {
    raft_report_snapshot(n->r, o->to, status == 0);
    kick(n);
  }
  keel_logkv(status ? KEEL_LOG_WARN : KEEL_LOG_INFO, COMP,
             status ? "snapshot stream failed" : "snapshot sent",
             "peer=%016llx index=%llu bytes=%llu err=%s",
             (unsigned long long)o->to, (unsigned long long)o->meta.index,
             (unsigned long long)o->offset, keel_strerror(status));
  store_snapshot_close(o->snap);
  free(o->buf);
  free(o);
}

/* Starts the streams the core asked for. Called between disk jobs, so the
 * store's applied state is the one the core's configuration describes. */
static void snapshot_flush(struct node *n) {
  while (n->n_want_snapshot) {
    uint64_t to = n->want_snapshot[--n->n_want_snapshot];
    bool running = false;
    for (size_t i = 0; i < n->n_outs; i++)
      running |= n->outs[i]->to == to;
    if (running || n->n_outs >= RAFT_MAX_NODES ||
        raft_role(n->r) != RAFT_LEADER)
      continue;
    struct snap_out *o = calloc(1, sizeof(*o));
    if (!o || !(o->buf = malloc(n->chunk_bytes)) ||
        store_snapshot_open(n->st, &o->snap) != 0) {
      if (o)
        free(o->buf);
      free(o);
      continue;
    }
    o->n = n;
    o->to = to;
    store_snapshot_position(o->snap, &o->meta.index, &o->meta.term);
    raft_conf(n->r, o->meta.voters, &o->meta.n_voters, o->meta.learners,
              &o->meta.n_learners);
    int rc = peer_transport_stream(n->pt, to, snap_pull, snap_out_done, o);
    if (rc) {
      /* No connection to it now: the core asks again at the next
       * heartbeat round. */
      raft_report_snapshot(n->r, to, false);
      kick(n);
      store_snapshot_close(o->snap);
      free(o->buf);
      free(o);
      continue;
    }
    n->outs[n->n_outs++] = o;
    keel_logkv(KEEL_LOG_INFO, COMP, "sending snapshot",
               "peer=%016llx index=%llu term=%llu", (unsigned long long)to,
               (unsigned long long)o->meta.index,
               (unsigned long long)o->meta.term);
  }
}

/* ------------------------------------------------------------------ */
/* Snapshots in (follower): stage the stream, then step it into raft    */
/* ------------------------------------------------------------------ */

static void snap_in_link(struct node *n, struct snap_in *si) {
  si->next = n->snaps;
  if (n->snaps)
    n->snaps->prev = si;
  n->snaps = si;
}

static void snap_in_free(struct node *n, struct snap_in *si) {
  if (si->prev)
    si->prev->next = si->next;
  else
    n->snaps = si->next;
  if (si->next)
    si->next->prev = si->prev;
  free(si);
}

enum { CHUNK_BEGIN, CHUNK_WRITE, CHUNK_ABORT };

struct chunk_job {
  struct snap_in *si;
  int kind;
  bool last;
  uint64_t term;
  uint8_t *data;
  size_t len;
};

static int chunk_work(void *arg) {
  struct chunk_job *c = arg;
  struct snap_in *si = c->si;
  switch (c->kind) {
  case CHUNK_BEGIN:
    si->err = store_restore_begin(si->n->st, &si->rs);
    if (si->err)
      si->rs = NULL;
    break;
  case CHUNK_WRITE:
    if (!si->err && si->rs && c->len) {
      si->err = store_restore_write(si->rs, c->data, c->len);
      if (si->err) {
        store_restore_abort(si->rs);
        si->rs = NULL;
      }
    }
    break;
  case CHUNK_ABORT:
    if (si->rs)
      store_restore_abort(si->rs);
    si->rs = NULL;
    break;
  }
  return 0;
}

static void snap_in_abort(struct node *n, struct snap_in *si);

static void chunk_done(void *arg, int status) {
  (void)status;
  struct chunk_job *c = arg;
  struct snap_in *si = c->si;
  struct node *n = si->n;
  si->jobs--;
  if (c->kind == CHUNK_ABORT) {
    snap_in_free(n, si);
  } else if (c->last && !si->aborted) {
    if (si->err) {
      keel_logkv(KEEL_LOG_WARN, COMP, "refused snapshot stream",
                 "peer=%016llx index=%llu err=%s", (unsigned long long)si->from,
                 (unsigned long long)si->meta.index, keel_strerror(si->err));
      snap_in_abort(n, si);
    } else if (n->state != N_CLOSING) {
      /* Whole and checked record by record: let the core decide. */
      if (n->staged)
        snap_in_abort(n, n->staged);
      n->staged = si;
      struct raft_message m = {0};
      m.type = RAFT_MSG_SNAPSHOT;
      m.from = si->from;
      m.to = n->id;
      m.term = c->term;
      m.snapshot.meta = si->meta;
      m.snapshot.last = true;
      int rc = raft_step(n->r, &m);
      keel_logkv(KEEL_LOG_INFO, COMP, "snapshot received",
                 "peer=%016llx index=%llu bytes=%llu step=%s",
                 (unsigned long long)si->from,
                 (unsigned long long)si->meta.index,
                 (unsigned long long)si->next_offset, keel_strerror(rc));
      kick(n);
    }
  }
  free(c->data);
  free(c);
  if (n->state != N_CLOSING)
    pump(n);
}

static int chunk_submit(struct node *n, struct snap_in *si, int kind,
                        const struct raft_message *m) {
  struct chunk_job *c = calloc(1, sizeof(*c));
  if (!c)
    return -ENOMEM;
  c->si = si;
  c->kind = kind;
  if (m) {
    c->last = m->snapshot.last;
    c->term = m->term;
    if (m->snapshot.len) {
      c->data = malloc(m->snapshot.len);
      if (!c->data) {
        free(c);
        return -ENOMEM;
      }
      memcpy(c->data, m->snapshot.data, m->snapshot.len);
      c->len = m->snapshot.len;
    }
  }
  int rc = disk_thread_submit(n->dt, chunk_work, chunk_done, c);
  if (rc) {
    free(c->data);
    free(c);
    return rc;
  }
  si->jobs++;
  return 0;
}

/* Drops a stream: the abort job runs after the stream's pending writes and
 * frees it. Should the queue be full even for that (1024 jobs in flight),
 * the stream is leaked with a warning: its staging file is removed by the
 * next store_open(). */
static void snap_in_abort(struct node *n, struct snap_in *si) {
  si->aborted = true;
  if (n->in == si)
    n->in = NULL;
  if (n->staged == si)
    n->staged = NULL;
  if (chunk_submit(n, si, CHUNK_ABORT, NULL) != 0)
    keel_logkv(KEEL_LOG_WARN, COMP, "could not queue a snapshot abort", NULL);
}

static void snapshot_chunk(struct node *n, const struct raft_message *m) {
  const struct raft_snapshot_chunk *ch = &m->snapshot;
  if (ch->offset == 0) {
    if (n->in)
      snap_in_abort(n, n->in);
    struct snap_in *si = calloc(1, sizeof(*si));
    if (!si)
      return;
    si->n = n;
    si->from = m->from;
    si->meta = ch->meta;
    if (chunk_submit(n, si, CHUNK_BEGIN, NULL) != 0) {
      free(si);
      return;
    }
    snap_in_link(n, si);
    n->in = si;
  }
  struct snap_in *si = n->in;
  if (!si)
    return; /* the rest of a stream we dropped */
  const char *why = NULL;
  if (si->from != m->from)
    why = "chunk from another member";
  else if (ch->offset != si->next_offset)
    why = "chunk out of order";
  else if (ch->meta.index != si->meta.index)
    why = "chunk of another snapshot";
  else if (si->next_offset + ch->len > n->max_snapshot_bytes)
    why = "snapshot larger than the quota allows";
  if (!why) {
    int rc = chunk_submit(n, si, CHUNK_WRITE, m);
    if (rc == 0) {
      si->next_offset += ch->len;
      if (ch->last)
        n->in = NULL; /* complete: chunk_done of the last one stages it */
      return;
    }
    why = "disk queue full";
  }
  keel_logkv(KEEL_LOG_WARN, COMP, "dropped snapshot stream",
             "peer=%016llx reason=\"%s\" offset=%llu",
             (unsigned long long)m->from, why, (unsigned long long)ch->offset);
  snap_in_abort(n, si);
}

/* ------------------------------------------------------------------ */
/* Log compaction                                                      */
/* ------------------------------------------------------------------ */

struct compact_job {
  struct node *n;
  struct store_snapshot_meta meta;
  uint64_t upto;
  int rc;
};

static int compact_work(void *arg) {
  struct compact_job *c = arg;
  struct store *st = c->n->st;
  int rc = store_log_set_snapshot(st, &c->meta);
  if (rc == 0 && c->upto > store_log_first_index(st) - 1)
    rc = store_log_compact(st, c->upto);
  return rc;
}

static void compact_done(void *arg, int status) {
  struct compact_job *c = arg;
  struct node *n = c->n;
  n->compacting = false;
  if (status == 0)
    n->snap_index = c->meta.index;
  keel_logkv(status ? KEEL_LOG_WARN : KEEL_LOG_INFO, COMP,
             status ? "log compaction failed" : "log compacted",
             "snapshot_index=%llu upto=%llu err=%s",
             (unsigned long long)c->meta.index, (unsigned long long)c->upto,
             keel_strerror(status));
  free(c);
  if (n->state != N_CLOSING)
    pump(n);
}

/* Every --snapshot-count applied entries: record the applied state as the
 * log's snapshot and drop the entries before it but the last keep_entries
 * (for followers a little behind; those further behind get the snapshot). */
static void maybe_compact(struct node *n) {
  if (n->compacting || n->applied < n->snap_index + n->snapshot_count)
    return;
  struct compact_job *c = calloc(1, sizeof(*c));
  if (!c)
    return;
  c->n = n;
  c->meta.index = n->applied;
  c->meta.term = n->applied_term;
  uint64_t vo[RAFT_MAX_NODES], le[RAFT_MAX_NODES];
  size_t nv, nl;
  raft_conf(n->r, vo, &nv, le, &nl);
  raft_storage_conf_from_lists(vo, nv, le, nl, &c->meta.conf);
  c->upto = n->applied > n->keep_entries ? n->applied - n->keep_entries : 0;
  if (disk_thread_submit(n->dt, compact_work, compact_done, c) != 0) {
    free(c);
    return;
  }
  n->compacting = true;
}

static void on_check(uv_check_t *h) {
  pump(h->data);
}

/* The idle handle runs once after something may have made work (a
 * proposal, a read, a tick, a frame): it keeps the next poll from blocking
 * before pump() ran, wherever in the loop turn the work came from. */
static void on_idle(uv_idle_t *h) {
  struct node *n = h->data;
  uv_idle_stop(h);
  run_reads(n);
  pump(n);
}

static void kick(struct node *n) {
  if (n->state != N_CLOSING)
    uv_idle_start(&n->idle, on_idle);
}

static void on_tick(uv_timer_t *t) {
  struct node *n = t->data;
  raft_tick(n->r);
  expire(n);
  kick(n);
}

/* ------------------------------------------------------------------ */
/* API                                                                 */
/* ------------------------------------------------------------------ */

static void waiter_add(struct node *n, struct waiter *w, uint64_t index,
                       node_propose_fn cb, void *ud) {
  kick(n);
  w->index = index;
  w->leader = raft_leader(n->r);
  w->deadline = uv_now(n->loop) + n->timeout_ms;
  w->cb = cb;
  w->ud = ud;
  w->prev = n->w_tail;
  if (n->w_tail)
    n->w_tail->next = w;
  else
    n->w_head = w;
  n->w_tail = w;
  struct waiter **b = bucket(n, w->id);
  w->hnext = *b;
  *b = w;
  n->n_waiters++;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t i = 0;
  while (v >= 0x80) {
    p[i++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[i++] = (uint8_t)v;
  return i;
}

int node_propose(struct node *n, const uint8_t *req, size_t len,
                 node_propose_fn cb, void *ud) {
  if (!cb || (len && !req))
    return -EINVAL;
  if (n->state != N_RUNNING)
    return KEEL_ESTOPPED;
  if (len > n->max_req_bytes)
    return KEEL_ETOOLARGE;
  if (n->n_waiters >= n->max_waiters)
    return KEEL_EBUSY;
  struct waiter *w = calloc(1, sizeof(*w));
  uint8_t *buf = malloc(len + 22);
  if (!w || !buf) {
    free(w);
    free(buf);
    return -ENOMEM;
  }
  w->id = n->run_nonce << 32 | (++n->next_seq & 0xffffffffu);
  size_t off = 0;
  buf[off++] = 0x08; /* keelstore.Request.id, varint */
  off += put_varint(buf + off, w->id);
  buf[off++] = 0x10; /* keelstore.Request.proposer, varint */
  off += put_varint(buf + off, n->id);
  if (len)
    memcpy(buf + off, req, len);
  uint64_t index = 0;
  int rc = raft_propose(n->r, buf, off + len, &index);
  free(buf);
  if (rc) {
    free(w);
    return rc == KEEL_ENOTLEADER ? KEEL_ENOLEADER : rc;
  }
  waiter_add(n, w, index, cb, ud);
  return 0;
}

int node_propose_conf_change(struct node *n, int type, uint64_t node_id,
                             const char *name, const char *peer_url,
                             node_propose_fn cb, void *ud) {
  if (!cb || node_id == 0 || type < RAFT_CONF_ADD_NODE ||
      type > RAFT_CONF_UPDATE_NODE)
    return -EINVAL;
  if (n->state != N_RUNNING)
    return KEEL_ESTOPPED;
  if (raft_role(n->r) != RAFT_LEADER)
    return KEEL_ENOTLEADER;
  if (n->n_waiters >= n->max_waiters)
    return KEEL_EBUSY;
  struct waiter *w = calloc(1, sizeof(*w));
  if (!w)
    return -ENOMEM;
  w->id = n->run_nonce << 32 | (++n->next_seq & 0xffffffffu);
  Keelstore__ConfChange cc = KEELSTORE__CONF_CHANGE__INIT;
  cc.id = w->id;
  cc.type = (Keelstore__ConfChangeType)type;
  cc.node_id = node_id;
  cc.name = (char *)(name ? name : "");
  char *url = (char *)peer_url;
  if (url && url[0]) {
    cc.peer_urls = &url;
    cc.n_peer_urls = 1;
  }
  uint8_t buf[2 * KEEL_CONFIG_URL_MAX + 64];
  if (keelstore__conf_change__get_packed_size(&cc) > sizeof(buf)) {
    free(w);
    return -EINVAL;
  }
  size_t len = keelstore__conf_change__pack(&cc, buf);
  struct raft_conf_change rcc = {type, node_id};
  uint64_t index = 0;
  int rc = raft_propose_conf_change(n->r, &rcc, buf, len, &index);
  if (rc) {
    free(w);
    return rc;
  }
  waiter_add(n, w, index, cb, ud);
  return 0;
}

size_t node_members(const struct node *n, struct node_member *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < n->n_members && k < cap; i++, k++) {
    out[k].id = n->members[i].id;
    out[k].name = n->members[i].name;
    out[k].peer_url = n->members[i].url;
    out[k].learner = n->members[i].learner;
  }
  return k;
}

/* A serializable read rides on the read list with index 0 (already
 * reached), so its callback runs from the idle handle, never from inside
 * node_read(). */
int node_read(struct node *n, bool linearizable, node_read_fn cb, void *ud) {
  if (!cb)
    return -EINVAL;
  if (n->state != N_RUNNING)
    return KEEL_ESTOPPED;
  if (n->n_reads >= n->max_reads)
    return KEEL_EBUSY;
  struct read_waiter *rw = calloc(1, sizeof(*rw));
  if (!rw)
    return -ENOMEM;
  rw->cb = cb;
  rw->ud = ud;
  rw->deadline = uv_now(n->loop) + n->timeout_ms;
  if (!linearizable) {
    rw->has_index = true;
    rw->index = 0;
  } else {
    n->reads_unasked = true;
  }
  rw->prev = n->r_tail;
  if (n->r_tail)
    n->r_tail->next = rw;
  else
    n->r_head = rw;
  n->r_tail = rw;
  n->n_reads++;
  kick(n);
  return 0;
}

void node_status(const struct node *n, struct node_status *out) {
  *out = n->stats;
  out->id = n->id;
  out->cluster_id = n->cluster_id;
  out->leader = raft_leader(n->r);
  out->role = raft_role(n->r);
  out->term = raft_term(n->r);
  out->commit = raft_committed(n->r);
  out->applied = n->applied;
  out->last_index = raft_last_index(n->r);
}

/* ------------------------------------------------------------------ */
/* Start                                                               */
/* ------------------------------------------------------------------ */

static int cmp_member(const void *a, const void *b) {
  uint64_t x = (*(const struct keel_member *const *)a)->id;
  uint64_t y = (*(const struct keel_member *const *)b)->id;
  return x < y ? -1 : x > y;
}

/* A new cluster's log starts, as etcd's, with one committed ADD_NODE
 * conf-change entry per --initial-cluster member (term 1, in member id
 * order, so every node writes the same bytes): a member added later that
 * replays the log from index 1 learns the bootstrap configuration from it
 * (decision 0774). Written here, before the core starts, in one txn with
 * the hard state {term 1, commit n}. */
static int bootstrap_log(struct node *n, const struct keel_config *cfg,
                         struct store_hard_state *hs) {
  const struct keel_member *sorted[KEEL_CONFIG_MAX_MEMBERS];
  size_t nm = cfg->n_members;
  for (size_t i = 0; i < nm; i++)
    sorted[i] = &cfg->members[i];
  qsort(sorted, nm, sizeof(sorted[0]), cmp_member);
  struct store_entry ents[KEEL_CONFIG_MAX_MEMBERS];
  uint8_t *bufs[KEEL_CONFIG_MAX_MEMBERS] = {0};
  int rc = 0;
  for (size_t i = 0; i < nm && rc == 0; i++) {
    Keelstore__ConfChange cc = KEELSTORE__CONF_CHANGE__INIT;
    cc.type = KEELSTORE__CONF_CHANGE_TYPE__CONF_ADD_NODE;
    cc.node_id = sorted[i]->id;
    cc.name = (char *)sorted[i]->name;
    char *url = (char *)sorted[i]->peer_url.text;
    cc.peer_urls = &url;
    cc.n_peer_urls = 1;
    size_t len = keelstore__conf_change__get_packed_size(&cc);
    bufs[i] = malloc(len ? len : 1);
    if (!bufs[i]) {
      rc = -ENOMEM;
      break;
    }
    keelstore__conf_change__pack(&cc, bufs[i]);
    ents[i] =
        (struct store_entry){i + 1, 1, STORE_ENTRY_CONF_CHANGE, bufs[i], len};
  }
  struct store_hard_state bhs = {1, 0, nm};
  if (rc == 0)
    rc = store_log_append(n->st, ents, nm, &bhs);
  for (size_t i = 0; i < nm; i++)
    free(bufs[i]);
  if (rc == 0) {
    *hs = bhs;
    keel_logkv(KEEL_LOG_INFO, COMP, "bootstrapped a new cluster", "members=%zu",
               nm);
  }
  return rc;
}

int node_new(uv_loop_t *loop, const struct node_options *opt, struct node **out,
             char *err, size_t errlen) {
  const struct keel_config *cfg = opt->cfg;
  *out = NULL;
  if (!opt->apply.apply || !opt->store) {
    snprintf(err, errlen, "node: missing store or apply hook");
    return -EINVAL;
  }
  struct node *n = calloc(1, sizeof(*n));
  if (!n)
    return -ENOMEM;
  n->loop = loop;
  n->st = opt->store;
  n->ops = opt->apply;
  n->id = cfg->member_id;
  n->cluster_id = cfg->cluster_id;
  n->heartbeat_ms = cfg->heartbeat_interval_ms;
  n->timeout_ms = opt->request_timeout_ms ? opt->request_timeout_ms : 5000;
  n->max_req_bytes = cfg->max_request_bytes + 64; /* + the id fields */
  n->max_waiters = opt->max_waiters ? opt->max_waiters : 8192;
  n->on_removed = opt->on_removed;
  n->removed_ud = opt->removed_ud;
  n->on_applied = opt->on_applied;
  n->applied_ud = opt->applied_ud;
  n->max_reads = opt->max_reads ? opt->max_reads : 8192;
  metrics_histogram_init(&n->metrics.fsync, metrics_latency_bounds,
                         metrics_latency_n);
  metrics_histogram_init(&n->metrics.apply, metrics_latency_bounds,
                         metrics_latency_n);
  n->n_buckets = 1;
  while (n->n_buckets < n->max_waiters)
    n->n_buckets <<= 1;
  n->buckets = calloc(n->n_buckets, sizeof(*n->buckets));
  if (!n->buckets) {
    free(n);
    return -ENOMEM;
  }
  uint32_t nonce = 0;
  if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
    nonce = (uint32_t)(uv_hrtime() ^ (opt->seed * 0x9E3779B97F4A7C15ull));
  n->run_nonce = nonce ? nonce : 1;

  int rc;
  /* The store belongs to this cluster, or to none yet. */
  uint8_t idbuf[8];
  size_t idlen = 0;
  rc = store_meta_get(n->st, "cluster-id", idbuf, sizeof(idbuf), &idlen);
  if (rc == 0) {
    uint64_t stored = 0;
    for (size_t i = 0; i < 8 && i < idlen; i++)
      stored = stored << 8 | idbuf[i];
    if (cfg->initial_cluster_state == KEEL_CLUSTER_EXISTING && idlen == 8) {
      /* A member that joined: its --initial-cluster need not produce the
       * id of the cluster it joined; the store knows it. */
      n->cluster_id = stored;
    } else if (idlen != 8 || stored != n->cluster_id) {
      snprintf(err, errlen,
               "--data-dir %s holds cluster %016llx, but the configuration "
               "(--initial-cluster, --initial-cluster-token) makes cluster "
               "%016llx",
               cfg->data_dir, (unsigned long long)stored,
               (unsigned long long)n->cluster_id);
      free(n->buckets);
      free(n);
      return KEEL_ECONFIG;
    }
    n->cluster_id_saved = true;
  } else if (rc == KEEL_ENOTFOUND) {
    if (cfg->initial_cluster_state == KEEL_CLUSTER_EXISTING)
      n->cluster_id = 0; /* joining: learnt from the first peer (peer.h) */
  } else {
    snprintf(err, errlen, "reading the store's cluster id: %s",
             keel_strerror(rc));
    free(n->buckets);
    free(n);
    return rc;
  }

  struct store_hard_state hs;
  struct store_conf_state cs;
  uint64_t applied = 0, applied_term = 0;
  if ((rc = store_log_load_state(n->st, &hs, &cs)) != 0 ||
      (rc = store_applied(n->st, &applied, &applied_term)) != 0) {
    snprintf(err, errlen, "reading the raft state: %s", keel_strerror(rc));
    free(n->buckets);
    free(n);
    return rc;
  }
  if (cfg->initial_cluster_state == KEEL_CLUSTER_NEW && hs.term == 0 &&
      hs.commit == 0 && cs.n_voters == 0 && applied == 0 &&
      store_log_last_index(n->st) == 0) {
    rc = bootstrap_log(n, cfg, &hs);
    if (rc) {
      snprintf(err, errlen, "writing the bootstrap entries: %s",
               keel_strerror(rc));
      free(n->buckets);
      free(n);
      return rc;
    }
  }
  struct raft_config rcfg = {0};
  rcfg.id = n->id;
  if (cs.n_voters) {
    struct raft_snapshot_meta m;
    raft_storage_conf_to_meta(&cs, &m);
    memcpy(rcfg.voters, m.voters, sizeof(m.voters));
    rcfg.n_voters = m.n_voters;
    memcpy(rcfg.learners, m.learners, sizeof(m.learners));
    rcfg.n_learners = m.n_learners;
    n->conf_saved = true;
  } else if (cfg->initial_cluster_state == KEEL_CLUSTER_NEW) {
    for (size_t i = 0; i < cfg->n_members && i < RAFT_MAX_NODES; i++)
      rcfg.voters[rcfg.n_voters++] = cfg->members[i].id;
  } /* else: joining an existing cluster; not a member until added */
  if (!members_load(n) && cfg->initial_cluster_state == KEEL_CLUSTER_NEW) {
    for (size_t i = 0; i < cfg->n_members && i < RAFT_MAX_NODES; i++) {
      struct member *m = &n->members[n->n_members++];
      m->id = cfg->members[i].id;
      snprintf(m->name, sizeof(m->name), "%s", cfg->members[i].name);
      snprintf(m->url, sizeof(m->url), "%s", cfg->members[i].peer_url.text);
    }
  }
  rcfg.applied = applied;
  n->applied = applied;
  rcfg.heartbeat_tick = 1;
  rcfg.election_tick =
      (int)(cfg->election_timeout_ms / cfg->heartbeat_interval_ms);
  rcfg.pre_vote = true;
  rcfg.check_quorum = true;
  rcfg.max_inflight = 256;
  rcfg.max_msg_bytes =
      n->max_req_bytes > (1u << 20) ? n->max_req_bytes : (1u << 20);
  rcfg.max_uncommitted = 65536;
  rcfg.seed = opt->seed ? opt->seed : (uint64_t)nonce * 2654435761u + n->id;
  rcfg.storage = raft_storage_lmdb(n->st);
  rc = raft_new(&rcfg, &n->r);
  if (rc) {
    snprintf(err, errlen, "starting raft: %s", keel_strerror(rc));
    free(n->buckets);
    free(n);
    return rc;
  }
  n->durable_term = hs.term;
  n->applied_term = applied_term;
  struct store_snapshot_meta snapm;
  if (store_log_get_snapshot(n->st, &snapm) == 0)
    n->snap_index = snapm.index;
  n->snapshot_count = cfg->snapshot_count;
  n->keep_entries =
      cfg->snapshot_count / 2 < 5000 ? cfg->snapshot_count / 2 : 5000;
  n->chunk_bytes = cfg->snapshot_chunk_bytes;
  n->max_snapshot_bytes =
      2 * (cfg->quota_backend_bytes ? cfg->quota_backend_bytes
                                    : STORE_DEFAULT_QUOTA) +
      (64u << 20);
  n->ss.leader = 0;
  n->ss.role = RAFT_FOLLOWER;

  rc = disk_thread_init(&n->dt, loop, (size_t)cfg->disk_queue_jobs);
  if (rc) {
    snprintf(err, errlen, "starting the disk thread: %s", keel_strerror(rc));
    raft_free(n->r);
    free(n->buckets);
    free(n);
    return rc;
  }
  struct peer_transport_options po;
  peer_transport_options_from_config(cfg, &po);
  po.cluster_id = n->cluster_id; /* the stored one, or 0 to learn it */
  po.on_frame = on_frame;
  po.on_unreachable = on_peer_unreachable;
  po.ctx = n;
  po.seed = rcfg.seed ^ 0x5bd1e995;
  /* From here on, a failure leaves handles on the loop: keeld exits. */
  rc = peer_transport_init(&n->pt, loop, &po);
  if (rc) {
    snprintf(err, errlen, "starting the peer transport: %s", keel_strerror(rc));
    return rc;
  }
  rc = peer_transport_start_from_config(n->pt, cfg, err, errlen);
  if (rc)
    return rc;
  members_dial(n);
  uv_timer_init(loop, &n->tick);
  n->tick.data = n;
  uv_check_init(loop, &n->check);
  n->check.data = n;
  uv_idle_init(loop, &n->idle);
  n->idle.data = n;
  uv_timer_init(loop, &n->stop_timer);
  n->stop_timer.data = n;
  uv_timer_start(&n->tick, on_tick, n->heartbeat_ms, n->heartbeat_ms);
  uv_check_start(&n->check, on_check);
  uv_unref((uv_handle_t *)&n->check);
  kick(n);
  keel_logkv(KEEL_LOG_INFO, COMP, "node started",
             "member=%016llx cluster=%016llx voters=%zu applied=%llu "
             "term=%llu commit=%llu last=%llu",
             (unsigned long long)n->id, (unsigned long long)n->cluster_id,
             rcfg.n_voters, (unsigned long long)applied,
             (unsigned long long)hs.term, (unsigned long long)hs.commit,
             (unsigned long long)raft_last_index(n->r));
  *out = n;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Stop                                                                */
/* ------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h) {
  struct node *n = h->data;
  if (--n->handles_open > 0)
    return;
  raft_free(n->r);
  free(n->buckets);
  node_stopped_fn cb = n->stopped_cb;
  void *ud = n->stopped_ud;
  free(n);
  if (cb)
    cb(ud);
}

static void on_pt_closed(void *ctx) {
  struct node *n = ctx;
  n->pt = NULL;
  n->handles_open = 4;
  uv_close((uv_handle_t *)&n->tick, on_handle_closed);
  uv_close((uv_handle_t *)&n->check, on_handle_closed);
  uv_close((uv_handle_t *)&n->idle, on_handle_closed);
  uv_close((uv_handle_t *)&n->stop_timer, on_handle_closed);
}

static void on_disk_closed(void *ctx) {
  struct node *n = ctx;
  n->dt = NULL;
  peer_transport_close(n->pt, on_pt_closed, n);
}

static void begin_close(struct node *n) {
  if (n->state == N_CLOSING)
    return;
  n->state = N_CLOSING;
  uv_timer_stop(&n->tick);
  uv_timer_stop(&n->stop_timer);
  uv_check_stop(&n->check);
  uv_idle_stop(&n->idle);
  while (n->w_head)
    waiter_done(n, n->w_head, KEEL_EUNKNOWN, NULL);
  while (n->r_head)
    read_done(n, n->r_head, KEEL_ESTOPPED);
  keel_logkv(
      KEEL_LOG_INFO, COMP, "node stopping",
      "term=%llu commit=%llu applied=%llu", (unsigned long long)raft_term(n->r),
      (unsigned long long)raft_committed(n->r), (unsigned long long)n->applied);
  disk_thread_close(n->dt, on_disk_closed, n);
}

static void on_removed_timer(uv_timer_t *t) {
  struct node *n = t->data;
  if (n->on_removed)
    n->on_removed(n->removed_ud);
}

static void on_transfer_timeout(uv_timer_t *t) {
  struct node *n = t->data;
  keel_logkv(KEEL_LOG_WARN, COMP, "leadership transfer did not finish in time",
             NULL);
  begin_close(n);
}

static void check_transferred(struct node *n) {
  if (n->state == N_TRANSFERRING && raft_role(n->r) != RAFT_LEADER) {
    keel_logkv(KEEL_LOG_INFO, COMP, "leadership handed over", "leader=%016llx",
               (unsigned long long)raft_leader(n->r));
    begin_close(n);
  }
}

void node_stop(struct node *n, uint64_t transfer_ms, node_stopped_fn cb,
               void *ud) {
  n->stopped_cb = cb;
  n->stopped_ud = ud;
  if (n->state != N_RUNNING)
    return;
  if (raft_role(n->r) == RAFT_LEADER && transfer_ms) {
    uint64_t vo[RAFT_MAX_NODES], le[RAFT_MAX_NODES];
    size_t nv, nl;
    raft_conf(n->r, vo, &nv, le, &nl);
    uint64_t to = 0;
    for (size_t i = 0; i < nv && !to; i++) {
      struct peer_stats ps;
      if (vo[i] != n->id && peer_transport_peer_stats(n->pt, vo[i], &ps) == 0 &&
          ps.connected)
        to = vo[i];
    }
    if (to && raft_transfer_leader(n->r, to) == 0) {
      keel_logkv(KEEL_LOG_INFO, COMP, "handing leadership over", "to=%016llx",
                 (unsigned long long)to);
      n->state = N_TRANSFERRING;
      uv_timer_start(&n->stop_timer, on_transfer_timeout, transfer_ms, 0);
      kick(n);
      return;
    }
  }
  begin_close(n);
}

/* ------------------------------------------------------------------ */
/* Maintenance hooks (svc_maint.h)                                     */
/* ------------------------------------------------------------------ */

void node_metrics(const struct node *n, struct node_metrics *out) {
  *out = n->metrics;
}

int node_peer_stats(const struct node *n, uint64_t id, struct peer_stats *out) {
  if (!n->pt)
    return KEEL_ENOTFOUND;
  return peer_transport_peer_stats(n->pt, id, out);
}

int node_transfer_leader(struct node *n, uint64_t to) {
  if (n->state != N_RUNNING)
    return KEEL_ESTOPPED;
  if (raft_role(n->r) != RAFT_LEADER)
    return KEEL_ENOTLEADER;
  if (to == n->id)
    return 0;
  uint64_t vo[RAFT_MAX_NODES], le[RAFT_MAX_NODES];
  size_t nv, nl;
  raft_conf(n->r, vo, &nv, le, &nl);
  bool voter = false;
  for (size_t i = 0; i < nv; i++)
    voter = voter || vo[i] == to;
  if (!voter)
    return KEEL_EMEMBER;
  int rc = raft_transfer_leader(n->r, to);
  if (rc == 0) {
    keel_logkv(KEEL_LOG_INFO, COMP, "transferring leadership", "to=%016llx",
               (unsigned long long)to);
    kick(n);
  }
  return rc;
}

int node_disk_submit(struct node *n, disk_work_fn work, disk_done_fn done,
                     void *arg) {
  if (n->state == N_CLOSING || !n->dt)
    return KEEL_ESTOPPED;
  return disk_thread_submit(n->dt, work, done, arg);
}

/* svc_maint.c — Maintenance (Alarm, Defragment, Hash, HashKV, Snapshot,
 * MoveLeader), /metrics, automatic and physical compaction; see
 * svc_maint.h.
 *
 * Every call the gRPC layer hands us is finished exactly once:
 *   unary calls at once, from the node's propose callback (Alarm), from a
 *   disk job's completion (Defragment; node_stop drains the disk queue, so
 *   it always comes), or from the MoveLeader poll timer (which the detach
 *   fires at once);
 *   a Snapshot stream from its pump (the end, or an error) or from
 *   on_close (client gone) — whichever comes first; a stream is on the
 *   service's list from open to finish.
 *
 * THE SNAPSHOT PUMP. A stream holds one store snapshot (an LMDB read txn)
 * and one chunk read ahead (so the last chunk is known and carries
 * remaining_bytes 0). pump() sends while the stream's send buffer takes a
 * chunk, at most SNAP_CHUNKS_PER_TURN per call; then it either waits for
 * on_writable (buffer full) or asks the idle handle for another turn
 * (budget used), so the loop never spends more than a few chunk reads on
 * snapshots per turn.
 *
 * COMPACTION. The timer (every TICK_MS) (1) on the leader, asks the
 * auto-compaction policy (store_autocompact_tick) and proposes a Compact to
 * the revision it names; (2) on every node, when the compact revision moved
 * past what was cleaned, runs store_compact_step jobs on the disk thread
 * one after another until the store says done. A Defragment finishes that
 * cleaning first in its own job, so "compact, defrag" frees the space at
 * once.
 */
#include "svc_maint.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "config.h"
#include "etcd_codec.h"
#include "keel_error.h"
#include "keel_log.h"
#include "keel_pb.h"
#include "metrics.h"
#include "node.h"
#include "peer.h"
#include "raft.h"
#include "store.h"
#include "svc_watch.h"

#define COMP "maint"
#define TICK_MS 100
#define SNAP_CHUNKS_PER_TURN 4
#define KEYS_CACHE_MS 1000

struct snap_stream {
  struct snap_stream *prev, *next;
  struct svc_maint *m;
  keel_grpc_call *call;
  struct store_snapshot *snap;
  uint8_t *cur, *ahead;
  size_t cur_len, ahead_len;
  uint64_t sent, estimate;
  bool want_turn;  /* budget used with room left: continue next turn */
  EVP_MD_CTX *sha; /* over every byte sent: the etcd-style trailer */
};

/* Room after a chunk for the padding and the trailer (see snap_pump). */
#define SNAP_TAIL 600

struct move_wait {
  struct move_wait *next;
  keel_grpc_call *call;
  uint64_t target, from;
  uint64_t deadline_ms;
};

struct method_stat {
  char name[96];
  uint64_t by_code[17];
  struct metrics_histogram dur;
};

struct svc_maint {
  uv_loop_t *loop;
  struct node *node;
  struct store *st;
  const struct keel_config *cfg;
  struct svc_watch *watch;
  bool detached;

  uv_timer_t tick; /* compaction + move-leader polls */
  uv_idle_t idle;  /* snapshot pump turns */
  int handles_open;
  bool freed;

  struct store_autocompact ac;
  bool ac_on;
  int64_t cleaned_rev; /* compact revision the last finished step run saw */
  bool stepping;       /* a compact_step job is out */
  int64_t stepping_rev;

  struct snap_stream *snaps;
  size_t n_snaps;
  struct move_wait *moves;

  struct method_stat methods[SVC_MAINT_MAX_METHODS + 1]; /* last: unknown */
  size_t n_methods;

  int64_t keys_cached;
  uint64_t keys_at_ms;
  bool keys_valid;

  struct svc_maint_stats stats;
};

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static void finish_code(keel_grpc_call *call, int code) {
  struct etcd_status s = etcd_error(code);
  keel_grpc_call_finish(call, s.grpc, s.message);
}

static ProtobufCMessage *decode(keel_grpc_call *call,
                                const ProtobufCMessageDescriptor *d,
                                const uint8_t *msg, size_t len) {
  char err[160], text[200];
  ProtobufCMessage *m = keel_pb_unpack(d, msg, len, err, sizeof(err));
  if (!m) {
    snprintf(text, sizeof(text), "grpc: error unmarshalling request: %s", err);
    keel_grpc_call_finish(call, KEEL_GRPC_INTERNAL, text);
  }
  return m;
}

static bool is_learner(struct svc_maint *m) {
  struct node_status s;
  node_status(m->node, &s);
  struct node_member mem[RAFT_MAX_NODES];
  size_t n = node_members(m->node, mem, RAFT_MAX_NODES);
  for (size_t i = 0; i < n && i < RAFT_MAX_NODES; i++)
    if (mem[i].id == s.id)
      return mem[i].learner;
  return false;
}

/* Decodes the (empty or small) request and checks that the call may be
 * served here. Returns the message (caller frees) or NULL with the call
 * finished. */
static ProtobufCMessage *begin(struct svc_maint *m, keel_grpc_call *call,
                               const ProtobufCMessageDescriptor *d,
                               const uint8_t *msg, size_t len) {
  if (m->detached) {
    finish_code(call, KEEL_ESTOPPED);
    return NULL;
  }
  ProtobufCMessage *req = decode(call, d, msg, len);
  if (req && is_learner(m)) {
    protobuf_c_message_free_unpacked(req, NULL);
    finish_code(call, KEEL_ELEARNER);
    return NULL;
  }
  return req;
}

static void fill_header(struct svc_maint *m, Etcdserverpb__ResponseHeader *h,
                        int64_t rev) {
  struct node_status s;
  node_status(m->node, &s);
  h->cluster_id = s.cluster_id;
  h->member_id = s.id;
  h->raft_term = s.term;
  if (rev < 0) {
    int64_t compacted = 0;
    rev = 0;
    (void)store_revisions(m->st, &rev, &compacted);
  }
  h->revision = rev;
}

/* Packs msg and answers the unary call with it. */
static void reply_msg(keel_grpc_call *call, const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    finish_code(call, -ENOMEM);
    return;
  }
  protobuf_c_message_pack(msg, buf);
  keel_grpc_call_reply(call, buf, n);
  free(buf);
}

static uint64_t now_ms(struct svc_maint *m) {
  return uv_now(m->loop);
}

/* ------------------------------------------------------------------ */
/* Alarm: through the log                                              */
/* ------------------------------------------------------------------ */

struct alarm_ctx {
  struct svc_maint *m;
  keel_grpc_call *call;
};

static void alarm_done(void *ud, int status,
                       const struct node_applied *applied) {
  struct alarm_ctx *c = ud;
  if (status != 0 || !applied || !applied->result) {
    finish_code(c->call, status ? status : KEEL_EUNKNOWN);
  } else {
    struct etcd_header_ids ids;
    struct node_status s;
    node_status(c->m->node, &s);
    ids.cluster_id = s.cluster_id;
    ids.member_id = s.id;
    ids.raft_term = s.term;
    struct etcd_reply r = {0};
    int rc = apply_encode_response(applied->result, applied->index, &ids, &r);
    if (rc != 0 && r.status.grpc == KEEL_GRPC_OK)
      etcd_reply_error(&r, rc);
    if (r.status.grpc == KEEL_GRPC_OK)
      keel_grpc_call_reply(c->call, r.buf, r.len);
    else
      keel_grpc_call_finish(c->call, r.status.grpc, r.status.message);
    etcd_reply_free(&r);
  }
  free(c);
}

static void on_alarm(keel_grpc_call *call, const uint8_t *msg, size_t len,
                     void *ud) {
  struct svc_maint *m = ud;
  Etcdserverpb__AlarmRequest *a = (Etcdserverpb__AlarmRequest *)begin(
      m, call, &etcdserverpb__alarm_request__descriptor, msg, len);
  if (!a)
    return;
  /* Bad enums are refused here rather than as a no-op entry. */
  if ((unsigned)a->action >
          ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE ||
      (unsigned)a->alarm > ETCDSERVERPB__ALARM_TYPE__CORRUPT) {
    protobuf_c_message_free_unpacked(&a->base, NULL);
    finish_code(call, -EINVAL);
    return;
  }
  Keelstore__Request rq = KEELSTORE__REQUEST__INIT;
  rq.op_case = KEELSTORE__REQUEST__OP_ALARM;
  rq.alarm = a;
  uint8_t *buf = NULL;
  size_t blen = 0;
  int rc =
      apply_request_encode(&rq, (size_t)m->cfg->max_request_bytes, &buf, &blen);
  protobuf_c_message_free_unpacked(&a->base, NULL);
  struct alarm_ctx *c = rc == 0 ? malloc(sizeof(*c)) : NULL;
  if (rc == 0 && !c)
    rc = -ENOMEM;
  if (rc == 0) {
    c->m = m;
    c->call = call;
    rc = node_propose(m->node, buf, blen, alarm_done, c);
    if (rc != 0)
      free(c);
  }
  free(buf);
  if (rc != 0)
    finish_code(call, rc);
}

/* ------------------------------------------------------------------ */
/* Defragment, physical compaction: disk jobs                          */
/* ------------------------------------------------------------------ */

struct defrag_job {
  struct svc_maint *m;
  keel_grpc_call *call;
  int64_t before, after;
};

static int defrag_work(void *arg) {
  struct defrag_job *j = arg;
  struct store *st = j->m->st;
  struct store_size sz;
  if (store_size(st, &sz) == 0)
    j->before = (int64_t)sz.size;
  int rc;
  /* Garbage left by compactions first: it is what makes the file large. */
  while ((rc = store_compact_step(st, 0)) == 1)
    ;
  if (rc == 0)
    rc = store_defragment(st);
  if (rc == 0 && store_size(st, &sz) == 0)
    j->after = (int64_t)sz.size;
  return rc;
}

static void defrag_done(void *arg, int status) {
  struct defrag_job *j = arg;
  struct svc_maint *m = j->m;
  keel_logkv(status ? KEEL_LOG_WARN : KEEL_LOG_INFO, COMP,
             status ? "defragment failed" : "defragmented",
             "size_before=%" PRId64 " size_after=%" PRId64 " err=%s", j->before,
             j->after, keel_strerror(status));
  if (status) {
    /* etcd answers a failed defragment with the error's text. */
    keel_grpc_call_finish(j->call, KEEL_GRPC_UNKNOWN, keel_strerror(status));
  } else {
    m->stats.defrags++;
    m->keys_valid = false;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    fill_header(m, &h, -1);
    Etcdserverpb__DefragmentResponse out =
        ETCDSERVERPB__DEFRAGMENT_RESPONSE__INIT;
    out.header = &h;
    reply_msg(j->call, &out.base);
  }
  free(j);
}

static void on_defragment(keel_grpc_call *call, const uint8_t *msg, size_t len,
                          void *ud) {
  struct svc_maint *m = ud;
  ProtobufCMessage *req =
      begin(m, call, &etcdserverpb__defragment_request__descriptor, msg, len);
  if (!req)
    return;
  protobuf_c_message_free_unpacked(req, NULL);
  struct defrag_job *j = calloc(1, sizeof(*j));
  if (!j) {
    finish_code(call, -ENOMEM);
    return;
  }
  j->m = m;
  j->call = call;
  int rc = node_disk_submit(m->node, defrag_work, defrag_done, j);
  if (rc) {
    free(j);
    finish_code(call, rc);
  }
}

struct step_job {
  struct svc_maint *m;
  int more;
};

static int step_work(void *arg) {
  struct step_job *j = arg;
  int rc = store_compact_step(j->m->st, 0);
  if (rc < 0)
    return rc;
  j->more = rc;
  return 0;
}

static void submit_step(struct svc_maint *m);

static void step_done(void *arg, int status) {
  struct step_job *j = arg;
  struct svc_maint *m = j->m;
  int more = j->more;
  free(j);
  m->stepping = false;
  m->stats.compact_steps++;
  m->keys_valid = false;
  if (status) {
    keel_logkv(KEEL_LOG_WARN, COMP, "physical compaction step failed", "err=%s",
               keel_strerror(status));
    return; /* the next tick tries again */
  }
  if (!more)
    m->cleaned_rev = m->stepping_rev;
  else if (!m->detached)
    submit_step(m);
}

static void submit_step(struct svc_maint *m) {
  struct step_job *j = calloc(1, sizeof(*j));
  if (!j)
    return;
  j->m = m;
  if (node_disk_submit(m->node, step_work, step_done, j) != 0) {
    free(j); /* queue full: the next tick */
    return;
  }
  m->stepping = true;
}

/* ------------------------------------------------------------------ */
/* the compaction tick; MoveLeader polls                               */
/* ------------------------------------------------------------------ */

static void autocompact_proposed(void *ud, int status,
                                 const struct node_applied *applied) {
  (void)ud;
  int err = status                     ? status
            : applied && applied->resp ? applied->resp->error
                                       : 0;
  if (err && err != KEEL_ECOMPACTED)
    keel_logkv(KEEL_LOG_WARN, COMP, "automatic compaction failed", "err=%s",
               keel_strerror(err));
}

static void autocompact(struct svc_maint *m, const struct node_status *s) {
  int64_t cur = 0, compacted = 0;
  if (store_revisions(m->st, &cur, &compacted) != 0)
    return;
  int64_t to =
      store_autocompact_tick(&m->ac, (int64_t)now_ms(m), cur, compacted);
  /* Only the leader proposes (etcd pauses the compactor elsewhere); the
   * policy still samples on followers so a new leader has a history. */
  if (to <= 0 || s->role != RAFT_LEADER)
    return;
  Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  c.revision = to;
  Keelstore__Request rq = KEELSTORE__REQUEST__INIT;
  rq.op_case = KEELSTORE__REQUEST__OP_COMPACTION;
  rq.compaction = &c;
  uint8_t *buf;
  size_t len;
  if (apply_request_encode(&rq, 0, &buf, &len) != 0)
    return;
  if (node_propose(m->node, buf, len, autocompact_proposed, NULL) == 0) {
    m->stats.auto_compactions++;
    keel_logkv(KEEL_LOG_INFO, COMP, "automatic compaction proposed",
               "revision=%" PRId64 " current=%" PRId64, to, cur);
  }
  free(buf);
}

static void answer_move(struct svc_maint *m, struct move_wait *w, int code) {
  if (code == 0) {
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    fill_header(m, &h, -1);
    Etcdserverpb__MoveLeaderResponse out =
        ETCDSERVERPB__MOVE_LEADER_RESPONSE__INIT;
    out.header = &h;
    reply_msg(w->call, &out.base);
  } else if (code == KEEL_ETIMEOUT) {
    keel_grpc_call_finish(
        w->call, KEEL_GRPC_UNAVAILABLE,
        "etcdserver: request timed out, leader transfer took too long");
  } else {
    finish_code(w->call, code);
  }
  free(w);
}

static void poll_moves(struct svc_maint *m) {
  struct move_wait **pp = &m->moves;
  uint64_t now = now_ms(m);
  while (*pp) {
    struct move_wait *w = *pp;
    int code = 1;
    if (m->detached) {
      code = KEEL_ESTOPPED;
    } else {
      struct node_status s;
      node_status(m->node, &s);
      if (s.leader == w->target)
        code = 0;
      else if (now >= w->deadline_ms)
        code = KEEL_ETIMEOUT;
    }
    if (code == 1) {
      pp = &w->next;
      continue;
    }
    *pp = w->next;
    if (code == 0)
      keel_logkv(KEEL_LOG_INFO, COMP, "leadership moved",
                 "from=%016" PRIx64 " to=%016" PRIx64, w->from, w->target);
    answer_move(m, w, code);
  }
}

static void on_tick(uv_timer_t *t) {
  struct svc_maint *m = t->data;
  if (m->detached)
    return;
  poll_moves(m);
  struct node_status s;
  node_status(m->node, &s);
  if (m->ac_on)
    autocompact(m, &s);
  int64_t cur = 0, compacted = 0;
  if (!m->stepping && store_revisions(m->st, &cur, &compacted) == 0 &&
      compacted > m->cleaned_rev) {
    m->stepping_rev = compacted;
    submit_step(m);
  }
}

static void on_move_leader(keel_grpc_call *call, const uint8_t *msg, size_t len,
                           void *ud) {
  struct svc_maint *m = ud;
  Etcdserverpb__MoveLeaderRequest *r = (Etcdserverpb__MoveLeaderRequest *)begin(
      m, call, &etcdserverpb__move_leader_request__descriptor, msg, len);
  if (!r)
    return;
  uint64_t target = r->targetid;
  protobuf_c_message_free_unpacked(&r->base, NULL);
  struct node_status s;
  node_status(m->node, &s);
  if (s.role != RAFT_LEADER || s.leader != s.id) {
    finish_code(call, KEEL_ENOTLEADER);
    return;
  }
  int rc = node_transfer_leader(m->node, target);
  if (rc == KEEL_EMEMBER) {
    keel_grpc_call_finish(call, KEEL_GRPC_FAILED_PRECONDITION,
                          "etcdserver: bad leader transferee");
    return;
  }
  if (rc) {
    finish_code(call, rc);
    return;
  }
  struct move_wait *w = calloc(1, sizeof(*w));
  if (!w) {
    finish_code(call, -ENOMEM);
    return;
  }
  w->call = call;
  w->target = target;
  w->from = s.id;
  /* etcd waits as long as the client's context; keel also caps it. */
  uint64_t cap = 10ull * m->cfg->election_timeout_ms;
  uint64_t left = keel_grpc_call_deadline_left(call);
  w->deadline_ms = now_ms(m) + (left < cap ? left : cap);
  w->next = m->moves;
  m->moves = w;
  poll_moves(m); /* to self: answered at once */
}

/* ------------------------------------------------------------------ */
/* Hash, HashKV                                                        */
/* ------------------------------------------------------------------ */

static void on_hash_kv(keel_grpc_call *call, const uint8_t *msg, size_t len,
                       void *ud) {
  struct svc_maint *m = ud;
  Etcdserverpb__HashKVRequest *r = (Etcdserverpb__HashKVRequest *)begin(
      m, call, &etcdserverpb__hash_kvrequest__descriptor, msg, len);
  if (!r)
    return;
  int64_t rev = r->revision;
  protobuf_c_message_free_unpacked(&r->base, NULL);
  uint32_t hash = 0;
  int64_t compact = 0, cur = 0;
  int rc = store_hash_kv(m->st, rev, &hash, &compact, &cur);
  if (rc) {
    finish_code(call, rc);
    return;
  }
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  fill_header(m, &h, cur);
  Etcdserverpb__HashKVResponse out = ETCDSERVERPB__HASH_KVRESPONSE__INIT;
  out.header = &h;
  out.hash = hash;
  out.compact_revision = compact;
  reply_msg(call, &out.base);
}

static void on_hash(keel_grpc_call *call, const uint8_t *msg, size_t len,
                    void *ud) {
  struct svc_maint *m = ud;
  ProtobufCMessage *r =
      begin(m, call, &etcdserverpb__hash_request__descriptor, msg, len);
  if (!r)
    return;
  protobuf_c_message_free_unpacked(r, NULL);
  uint32_t hash = 0;
  int64_t compact = 0, cur = 0;
  int rc = store_hash_kv(m->st, 0, &hash, &compact, &cur);
  if (rc) {
    finish_code(call, rc);
    return;
  }
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  fill_header(m, &h, cur);
  Etcdserverpb__HashResponse out = ETCDSERVERPB__HASH_RESPONSE__INIT;
  out.header = &h;
  out.hash = hash;
  reply_msg(call, &out.base);
}

/* ------------------------------------------------------------------ */
/* Snapshot stream                                                     */
/* ------------------------------------------------------------------ */

static void snap_end(struct snap_stream *ss, int code, bool finish) {
  struct svc_maint *m = ss->m;
  if (ss->prev)
    ss->prev->next = ss->next;
  else
    m->snaps = ss->next;
  if (ss->next)
    ss->next->prev = ss->prev;
  m->n_snaps--;
  if (finish) {
    if (code == 0) {
      m->stats.snapshots++;
      keel_grpc_call_finish(ss->call, KEEL_GRPC_OK, NULL);
    } else {
      finish_code(ss->call, code);
    }
  }
  store_snapshot_close(ss->snap);
  EVP_MD_CTX_free(ss->sha);
  free(ss->cur);
  free(ss->ahead);
  free(ss);
}

/* Reads the next chunk into ss->ahead. */
static int snap_read_ahead(struct snap_stream *ss) {
  return store_snapshot_read(ss->snap, ss->ahead, SVC_MAINT_SNAP_CHUNK,
                             &ss->ahead_len);
}

static void on_idle(uv_idle_t *h);

/* Sends what the budget and the buffer allow; true if the stream ended. */
static bool snap_pump(struct snap_stream *ss) {
  ss->want_turn = false;
  for (int k = 0; k < SNAP_CHUNKS_PER_TURN; k++) {
    if (keel_grpc_call_writable(ss->call) <
        SVC_MAINT_SNAP_CHUNK + SNAP_TAIL + 64)
      return false; /* on_writable continues */
    /* cur is the chunk to send, ahead the one after it (empty: cur last) */
    uint8_t *tmp = ss->cur;
    ss->cur = ss->ahead;
    ss->cur_len = ss->ahead_len;
    ss->ahead = tmp;
    int rc = snap_read_ahead(ss);
    if (rc) {
      snap_end(ss, rc, true);
      return true;
    }
    bool last = ss->ahead_len == 0;
    if (last) {
      /* etcd's file is bbolt pages + sha256(pages): size % 512 == 32, which
       * is how etcdctl (and keel) tell that the trailer is there. The store
       * stream ends in its own SHA-256 at any length, so keel pads it
       * (0x80 then zeros, always at least one byte, so the padding can be
       * stripped without knowing the stream) to a multiple of 512 and
       * appends the SHA-256 of everything sent (decision 0921). */
      uint64_t total = ss->sent + ss->cur_len;
      size_t pad = 512 - (size_t)(total % 512);
      ss->cur[ss->cur_len] = 0x80;
      memset(ss->cur + ss->cur_len + 1, 0, pad - 1);
      ss->cur_len += pad;
    }
    EVP_DigestUpdate(ss->sha, ss->cur, ss->cur_len);
    if (last) {
      unsigned int dl = 0;
      EVP_DigestFinal_ex(ss->sha, ss->cur + ss->cur_len, &dl);
      ss->cur_len += 32;
    }
    ss->sent += ss->cur_len;
    uint64_t remaining = 0;
    if (!last) /* an estimate (the size is known at the end only), > 0 */
      remaining =
          ss->estimate > ss->sent ? ss->estimate - ss->sent : ss->ahead_len;
    Etcdserverpb__SnapshotResponse r = ETCDSERVERPB__SNAPSHOT_RESPONSE__INIT;
    r.remaining_bytes = remaining;
    r.blob.data = ss->cur;
    r.blob.len = ss->cur_len;
    size_t n = protobuf_c_message_get_packed_size(&r.base);
    uint8_t *buf = malloc(n);
    if (!buf) {
      snap_end(ss, -ENOMEM, true);
      return true;
    }
    protobuf_c_message_pack(&r.base, buf);
    rc = keel_grpc_call_send(ss->call, buf, n);
    free(buf);
    if (rc) {
      snap_end(ss, rc == KEEL_ECANCELED ? KEEL_ESTOPPED : rc, true);
      return true;
    }
    if (last) {
      uint8_t sha[32];
      uint64_t size = 0;
      store_snapshot_digest(ss->snap, sha, &size);
      keel_logkv(KEEL_LOG_INFO, COMP, "snapshot sent", "bytes=%" PRIu64, size);
      snap_end(ss, 0, true);
      return true;
    }
  }
  ss->want_turn = true;
  uv_idle_start(&ss->m->idle, on_idle);
  return false;
}

static void on_idle(uv_idle_t *h) {
  struct svc_maint *m = h->data;
  bool again = false;
  struct snap_stream *ss = m->snaps;
  while (ss) {
    struct snap_stream *next = ss->next;
    if (ss->want_turn && !snap_pump(ss) && ss->want_turn)
      again = true;
    ss = next;
  }
  if (!again)
    uv_idle_stop(h);
}

static void snap_on_writable(keel_grpc_call *call, void *ud) {
  (void)ud;
  struct snap_stream *ss = keel_grpc_call_user(call);
  if (ss)
    snap_pump(ss);
}

static void snap_on_close(keel_grpc_call *call, int reason, void *ud) {
  (void)ud;
  struct snap_stream *ss = keel_grpc_call_user(call);
  keel_grpc_call_set_user(call, NULL);
  keel_logkv(KEEL_LOG_INFO, COMP, "snapshot stream ended by the client",
             "reason=%s", keel_strerror(reason));
  keel_grpc_call_finish(call, KEEL_GRPC_CANCELLED, NULL);
  if (ss) {
    ss->m->stats.snapshots_canceled++;
    snap_end(ss, 0, false);
  }
}

static void on_snapshot(keel_grpc_call *call, const uint8_t *msg, size_t len,
                        void *ud) {
  struct svc_maint *m = ud;
  ProtobufCMessage *r =
      begin(m, call, &etcdserverpb__snapshot_request__descriptor, msg, len);
  if (!r)
    return;
  protobuf_c_message_free_unpacked(r, NULL);
  if (m->n_snaps >= SVC_MAINT_MAX_SNAPSHOTS) {
    finish_code(call, KEEL_EBUSY);
    return;
  }
  struct snap_stream *ss = calloc(1, sizeof(*ss));
  int rc = ss ? 0 : -ENOMEM;
  if (rc == 0) {
    ss->m = m;
    ss->call = call;
    ss->cur = malloc(SVC_MAINT_SNAP_CHUNK + SNAP_TAIL);
    ss->ahead = malloc(SVC_MAINT_SNAP_CHUNK + SNAP_TAIL);
    ss->sha = EVP_MD_CTX_new();
    rc = ss->cur && ss->ahead && ss->sha &&
                 EVP_DigestInit_ex(ss->sha, EVP_sha256(), NULL) == 1
             ? 0
             : -ENOMEM;
  }
  if (rc == 0)
    rc = store_snapshot_open(m->st, &ss->snap);
  if (rc == 0)
    rc = snap_read_ahead(ss);
  if (rc) {
    if (ss) {
      store_snapshot_close(ss->snap);
      EVP_MD_CTX_free(ss->sha);
      free(ss->cur);
      free(ss->ahead);
      free(ss);
    }
    finish_code(call, rc);
    return;
  }
  struct store_size sz = {0};
  (void)store_size(m->st, &sz);
  ss->estimate = sz.size_in_use;
  ss->next = m->snaps;
  if (m->snaps)
    m->snaps->prev = ss;
  m->snaps = ss;
  m->n_snaps++;
  keel_grpc_call_set_user(call, ss);
  uint64_t idx, term;
  store_snapshot_position(ss->snap, &idx, &term);
  keel_logkv(KEEL_LOG_INFO, COMP, "sending a snapshot",
             "applied_index=%" PRIu64 " estimate=%" PRIu64, idx, ss->estimate);
  snap_pump(ss);
}

/* ------------------------------------------------------------------ */
/* gRPC call metrics                                                   */
/* ------------------------------------------------------------------ */

static struct method_stat *method_slot(struct svc_maint *m, const char *name,
                                       int code) {
  if (name && code != KEEL_GRPC_UNIMPLEMENTED) {
    for (size_t i = 0; i < m->n_methods; i++)
      if (strcmp(m->methods[i].name, name) == 0)
        return &m->methods[i];
    if (m->n_methods < SVC_MAINT_MAX_METHODS &&
        strlen(name) < sizeof(m->methods[0].name)) {
      struct method_stat *s = &m->methods[m->n_methods++];
      snprintf(s->name, sizeof(s->name), "%s", name);
      metrics_histogram_init(&s->dur, metrics_latency_bounds,
                             metrics_latency_n);
      return s;
    }
  }
  return &m->methods[SVC_MAINT_MAX_METHODS]; /* "unknown" */
}

static void on_grpc_call(const char *method, int code, uint64_t duration_us,
                         void *ud) {
  struct svc_maint *m = ud;
  struct method_stat *s = method_slot(m, method, code);
  s->by_code[code >= 0 && code <= 16 ? code : KEEL_GRPC_UNKNOWN]++;
  metrics_histogram_observe(&s->dur, (double)duration_us / 1e6);
}

/* ------------------------------------------------------------------ */
/* /metrics                                                            */
/* ------------------------------------------------------------------ */

static const char *const code_names[17] = {"OK",
                                           "Canceled",
                                           "Unknown",
                                           "InvalidArgument",
                                           "DeadlineExceeded",
                                           "NotFound",
                                           "AlreadyExists",
                                           "PermissionDenied",
                                           "ResourceExhausted",
                                           "FailedPrecondition",
                                           "Aborted",
                                           "OutOfRange",
                                           "Unimplemented",
                                           "Internal",
                                           "Unavailable",
                                           "DataLoss",
                                           "Unauthenticated"};

static int64_t keys_total(struct svc_maint *m) {
  uint64_t now = now_ms(m);
  if (m->keys_valid && now - m->keys_at_ms < KEYS_CACHE_MS)
    return m->keys_cached;
  struct store_range_req q = {0};
  static const uint8_t zero = 0;
  q.key = &zero;
  q.key_len = 1;
  q.range_end = &zero;
  q.range_end_len = 1;
  q.count_only = true;
  struct store_range_result res;
  if (store_range(m->st, &q, &res) != 0)
    return m->keys_cached;
  m->keys_cached = res.resp.count;
  store_range_result_free(&res);
  m->keys_at_ms = now;
  m->keys_valid = true;
  return m->keys_cached;
}

/* Fills b with the page (exposed for the format's unit test through the
 * metrics.h writer; the figures themselves are checked end to end). */
static void build_page(struct svc_maint *m, struct metrics_buf *b) {
  struct node_status s;
  node_status(m->node, &s);
  metrics_family(b, "keel_raft_term", "Current raft term.", "gauge");
  metrics_sample(b, "keel_raft_term", NULL, (double)s.term);
  metrics_family(b, "keel_raft_commit_index",
                 "Highest log index known committed.", "gauge");
  metrics_sample(b, "keel_raft_commit_index", NULL, (double)s.commit);
  metrics_family(b, "keel_raft_applied_index",
                 "Highest log index applied to the store.", "gauge");
  metrics_sample(b, "keel_raft_applied_index", NULL, (double)s.applied);
  metrics_family(b, "keel_raft_leader_changes_total",
                 "Leader changes seen by this node.", "counter");
  metrics_sample(b, "keel_raft_leader_changes_total", NULL,
                 (double)s.leader_changes);
  metrics_family(b, "keel_raft_is_leader",
                 "1 if this node is the leader, else 0.", "gauge");
  metrics_sample(b, "keel_raft_is_leader", NULL, s.role == RAFT_LEADER ? 1 : 0);
  metrics_family(b, "keel_proposals_committed_total",
                 "Proposals of this node applied.", "counter");
  metrics_sample(b, "keel_proposals_committed_total", NULL,
                 (double)s.proposals_applied);
  metrics_family(b, "keel_proposals_failed_total",
                 "Proposals of this node that failed (dropped, timed out, "
                 "outcome unknown).",
                 "counter");
  metrics_sample(b, "keel_proposals_failed_total", NULL,
                 (double)s.proposals_failed);

  struct node_metrics nm;
  node_metrics(m->node, &nm);
  metrics_family(
      b, "keel_disk_fsync_duration_seconds",
      "Durable disk writes (raft log append + hard state, one fsync).",
      "histogram");
  metrics_histogram_write(b, "keel_disk_fsync_duration_seconds", NULL,
                          &nm.fsync);
  metrics_family(b, "keel_apply_duration_seconds",
                 "Applying a batch of committed entries to the store.",
                 "histogram");
  metrics_histogram_write(b, "keel_apply_duration_seconds", NULL, &nm.apply);

  struct node_member mem[RAFT_MAX_NODES];
  size_t nmem = node_members(m->node, mem, RAFT_MAX_NODES);
  if (nmem > RAFT_MAX_NODES)
    nmem = RAFT_MAX_NODES;
  char lab[256];
  metrics_family(
      b, "keel_peer_send_failures_total",
      "Frames to a peer refused (queue full) or dropped by a failed dial.",
      "counter");
  for (size_t i = 0; i < nmem; i++) {
    struct peer_stats ps;
    char id[20];
    if (mem[i].id == s.id || node_peer_stats(m->node, mem[i].id, &ps) != 0)
      continue;
    snprintf(id, sizeof(id), "%016" PRIx64, mem[i].id);
    metrics_label(lab, sizeof(lab), "peer", id);
    metrics_sample(b, "keel_peer_send_failures_total", lab,
                   (double)(ps.send_refused + ps.frames_dropped));
  }
  metrics_family(b, "keel_peer_queue_bytes",
                 "Bytes queued for a peer (queued and being written).",
                 "gauge");
  for (size_t i = 0; i < nmem; i++) {
    struct peer_stats ps;
    char id[20];
    if (mem[i].id == s.id || node_peer_stats(m->node, mem[i].id, &ps) != 0)
      continue;
    snprintf(id, sizeof(id), "%016" PRIx64, mem[i].id);
    metrics_label(lab, sizeof(lab), "peer", id);
    metrics_sample(b, "keel_peer_queue_bytes", lab, (double)ps.queue_bytes);
  }

  metrics_family(b, "keel_grpc_requests_total",
                 "gRPC calls ended, by method and status code.", "counter");
  for (size_t i = 0; i <= SVC_MAINT_MAX_METHODS; i++) {
    const struct method_stat *ms = &m->methods[i];
    if (i >= m->n_methods && i != SVC_MAINT_MAX_METHODS)
      continue;
    char ml[160];
    metrics_label(ml, sizeof(ml), "method", ms->name);
    for (int c = 0; c <= 16; c++) {
      if (!ms->by_code[c])
        continue;
      char cl[64];
      metrics_label(cl, sizeof(cl), "code", code_names[c]);
      snprintf(lab, sizeof(lab), "%s,%s", ml, cl);
      metrics_sample(b, "keel_grpc_requests_total", lab,
                     (double)ms->by_code[c]);
    }
  }
  metrics_family(b, "keel_grpc_request_duration_seconds",
                 "gRPC call duration, request head to end.", "histogram");
  for (size_t i = 0; i <= SVC_MAINT_MAX_METHODS; i++) {
    const struct method_stat *ms = &m->methods[i];
    if ((i >= m->n_methods && i != SVC_MAINT_MAX_METHODS) || !ms->dur.count)
      continue;
    metrics_label(lab, sizeof(lab), "method", ms->name);
    metrics_histogram_write(b, "keel_grpc_request_duration_seconds", lab,
                            &ms->dur);
  }

  struct svc_watch_stats ws = {0};
  if (m->watch)
    svc_watch_stats(m->watch, &ws);
  metrics_family(b, "keel_watchers", "Watchers registered on this node.",
                 "gauge");
  metrics_sample(b, "keel_watchers", NULL, (double)ws.watchers);
  metrics_family(b, "keel_watch_events_sent_total",
                 "Watch events sent to clients.", "counter");
  metrics_sample(b, "keel_watch_events_sent_total", NULL, (double)ws.events);

  struct store_size sz = {0};
  (void)store_size(m->st, &sz);
  metrics_family(b, "keel_db_size_bytes",
                 "Size of the database file (pages in use or free).", "gauge");
  metrics_sample(b, "keel_db_size_bytes", NULL, (double)sz.size);
  metrics_family(b, "keel_keys_total", "Live keys at the current revision.",
                 "gauge");
  metrics_sample(b, "keel_keys_total", NULL, (double)keys_total(m));
}

static void on_metrics(keel_http_request *r, void *ud) {
  struct svc_maint *m = ud;
  if (m->detached) {
    keel_http_respond(r, 503, "text/plain", "stopping\n", 9, NULL);
    return;
  }
  struct metrics_buf b;
  metrics_buf_init(&b, SVC_MAINT_METRICS_MAX);
  build_page(m, &b);
  int rc = metrics_buf_error(&b);
  if (rc) {
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "metrics page: %s\n", keel_strerror(rc));
    keel_http_respond(r, 500, "text/plain", msg, (size_t)n, NULL);
  } else {
    keel_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p,
                      b.len, NULL);
  }
  metrics_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* life                                                                */
/* ------------------------------------------------------------------ */

int svc_maint_new(uv_loop_t *loop, struct node *node, struct store *st,
                  const struct keel_config *cfg, struct svc_watch *watch,
                  struct svc_maint **out) {
  struct svc_maint *m = calloc(1, sizeof(*m));
  if (!m)
    return -ENOMEM;
  m->loop = loop;
  m->node = node;
  m->st = st;
  m->cfg = cfg;
  m->watch = watch;
  snprintf(m->methods[SVC_MAINT_MAX_METHODS].name, sizeof(m->methods[0].name),
           "unknown");
  metrics_histogram_init(&m->methods[SVC_MAINT_MAX_METHODS].dur,
                         metrics_latency_bounds, metrics_latency_n);
  if (cfg->auto_compaction_retention > 0) {
    enum store_autocompact_mode mode =
        cfg->auto_compaction_mode == KEEL_COMPACTION_REVISION
            ? STORE_AUTOCOMPACT_REVISION
            : STORE_AUTOCOMPACT_PERIODIC;
    int rc = store_autocompact_init(&m->ac, mode,
                                    (int64_t)cfg->auto_compaction_retention);
    if (rc) {
      free(m);
      return rc;
    }
    m->ac_on = true;
    keel_logkv(KEEL_LOG_INFO, COMP, "automatic compaction on",
               "mode=%s retention=%" PRIu64,
               mode == STORE_AUTOCOMPACT_REVISION ? "revision" : "periodic",
               cfg->auto_compaction_retention);
  }
  int64_t cur = 0;
  (void)store_revisions(st, &cur, &m->cleaned_rev);
  m->cleaned_rev = 0; /* garbage of an earlier run may remain: clean once */
  uv_timer_init(loop, &m->tick);
  m->tick.data = m;
  uv_idle_init(loop, &m->idle);
  m->idle.data = m;
  m->handles_open = 2;
  uv_timer_start(&m->tick, on_tick, TICK_MS, TICK_MS);
  uv_unref((uv_handle_t *)&m->tick);
  *out = m;
  return 0;
}

int svc_maint_register(struct svc_maint *m, keel_client_listener *l) {
  static const struct {
    const char *name;
    enum keel_grpc_kind kind;
    void (*fn)(keel_grpc_call *, const uint8_t *, size_t, void *);
  } tab[] = {
      {"/etcdserverpb.Maintenance/Alarm", KEEL_GRPC_UNARY, on_alarm},
      {"/etcdserverpb.Maintenance/Defragment", KEEL_GRPC_UNARY, on_defragment},
      {"/etcdserverpb.Maintenance/Hash", KEEL_GRPC_UNARY, on_hash},
      {"/etcdserverpb.Maintenance/HashKV", KEEL_GRPC_UNARY, on_hash_kv},
      {"/etcdserverpb.Maintenance/Snapshot", KEEL_GRPC_SERVER_STREAM,
       on_snapshot},
      {"/etcdserverpb.Maintenance/MoveLeader", KEEL_GRPC_UNARY, on_move_leader},
  };
  keel_grpc_server *srv = keel_client_listener_grpc(l);
  for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
    struct keel_grpc_method g = {0};
    g.name = tab[i].name;
    g.kind = tab[i].kind;
    g.ud = m;
    g.on_message = tab[i].fn;
    if (tab[i].kind == KEEL_GRPC_SERVER_STREAM) {
      g.on_writable = snap_on_writable;
      g.on_close = snap_on_close;
    }
    int rc = keel_grpc_server_register(srv, &g);
    if (rc != 0)
      return rc;
  }
  keel_grpc_server_set_observer(srv, on_grpc_call, m);
  return keel_client_listener_route(l, "GET", "/metrics", on_metrics, m);
}

void svc_maint_detach(struct svc_maint *m) {
  if (m->detached)
    return;
  m->detached = true;
  poll_moves(m); /* every waiting MoveLeader: "server stopped" */
  while (m->snaps) {
    keel_grpc_call_set_user(m->snaps->call, NULL);
    snap_end(m->snaps, KEEL_ESTOPPED, true);
  }
  uv_timer_stop(&m->tick);
  uv_idle_stop(&m->idle);
}

static void on_handle_closed(uv_handle_t *h) {
  struct svc_maint *m = h->data;
  if (--m->handles_open == 0)
    free(m);
}

void svc_maint_free(struct svc_maint *m) {
  if (!m)
    return;
  svc_maint_detach(m);
  uv_close((uv_handle_t *)&m->tick, on_handle_closed);
  uv_close((uv_handle_t *)&m->idle, on_handle_closed);
}

void svc_maint_stats(const struct svc_maint *m, struct svc_maint_stats *out) {
  *out = m->stats;
  out->open_snapshots = m->n_snaps;
  out->move_waits = 0;
  for (const struct move_wait *w = m->moves; w; w = w->next)
    out->move_waits++;
}

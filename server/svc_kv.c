/* svc_kv.c — etcd v3 KV (Range, Put, DeleteRange, Txn, Compact),
 * Maintenance.Status and Cluster.MemberList handlers; see svc_kv.h.
 *
 * Every call the grpc layer hands us is finished exactly once: at once for
 * a bad request, else from the node's callback (node_propose /
 * node_read call back exactly once, never from inside the call, and
 * node_stop completes every waiter), which is why no on_close hook is
 * needed — a finish after the stream ended is dropped by grpc_server.
 */
#include "svc_kv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "config.h"
#include "etcd_codec.h"
#include "keel_error.h"
#include "keel_pb.h"
#include "kv_flags.h"
#include "node.h"
#include "raft.h"
#include "store.h"

/* Rough per-request overhead etcd's quota adds to a put's key + value. */
#define QUOTA_OVERHEAD 256

struct svc_kv {
  struct node *node; /* valid until detached; callbacks still run after */
  bool detached;     /* no new calls: the node is stopping or gone */
  struct store *st;
  const struct keel_config *cfg;
  struct kv_flags_reader flags_rd; /* validation on write under /flags/ */
};

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static void finish_code(keel_grpc_call *call, int code) {
  struct etcd_status s = etcd_error(code);
  keel_grpc_call_finish(call, s.grpc, s.message);
}

/* Sends r (OK with its message, or its error status) and frees it. */
static void finish_reply(keel_grpc_call *call, struct etcd_reply *r) {
  if (r->status.grpc == KEEL_GRPC_OK)
    keel_grpc_call_reply(call, r->buf, r->len);
  else
    keel_grpc_call_finish(call, r->status.grpc, r->status.message);
  etcd_reply_free(r);
}

static void header_ids(const struct svc_kv *kv, struct etcd_header_ids *ids) {
  struct node_status s;
  node_status(kv->node, &s);
  ids->cluster_id = s.cluster_id;
  ids->member_id = s.id;
  ids->raft_term = s.term;
}

/* Decodes a client message through keel_pb (fuzz findings F1/F2); on a
 * bad message the call is finished as gRPC does for an undecodable request
 * (INTERNAL "grpc: error unmarshalling request: ...") and NULL returned. */
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

/* True (and the call finished) when the service cannot serve any more. */
static bool detached(struct svc_kv *kv, keel_grpc_call *call) {
  if (!kv->detached)
    return false;
  finish_code(call, KEEL_ESTOPPED);
  return true;
}

static bool self_learner(const struct svc_kv *kv, uint64_t id);

/* etcd: a learner serves only Status and serializable Range; everything
 * else gets "rpc not supported for learner" (Unavailable, so clientv3
 * retries a read-only call elsewhere). True (call finished) if refused. */
static bool learner_refuses(struct svc_kv *kv, keel_grpc_call *call) {
  struct node_status s;
  node_status(kv->node, &s);
  if (!self_learner(kv, s.id))
    return false;
  finish_code(call, KEEL_ELEARNER);
  return true;
}

/* ------------------------------------------------------------------ */
/* writes                                                              */
/* ------------------------------------------------------------------ */

struct write_ctx {
  struct svc_kv *kv;
  keel_grpc_call *call;
};

static void write_done(void *ud, int status,
                       const struct node_applied *applied) {
  struct write_ctx *w = ud;
  if (status != 0 || !applied || !applied->result) {
    finish_code(w->call, status ? status : KEEL_EUNKNOWN);
  } else {
    struct etcd_header_ids ids;
    header_ids(w->kv, &ids);
    struct etcd_reply r = {0};
    int rc = apply_encode_response(applied->result, applied->index, &ids, &r);
    if (rc != 0 && r.status.grpc == KEEL_GRPC_OK)
      etcd_reply_error(&r, rc);
    finish_reply(w->call, &r);
  }
  free(w);
}

/* Wraps rq (its op set by the caller), proposes it and answers the call
 * when the outcome is known. */
static void propose(struct svc_kv *kv, keel_grpc_call *call,
                    Keelstore__Request *rq) {
  if (learner_refuses(kv, call))
    return;
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc =
      apply_request_encode(rq, (size_t)kv->cfg->max_request_bytes, &buf, &len);
  if (rc != 0) {
    finish_code(call, rc);
    return;
  }
  struct write_ctx *w = malloc(sizeof(*w));
  if (!w) {
    free(buf);
    finish_code(call, -ENOMEM);
    return;
  }
  w->kv = kv;
  w->call = call;
  rc = node_propose(kv->node, buf, len, write_done, w);
  free(buf);
  if (rc != 0) {
    free(w);
    finish_code(call, rc);
  }
}

static void alarm_proposed(void *ud, int status,
                           const struct node_applied *applied) {
  (void)ud;
  (void)status;
  (void)applied;
}

/* etcd's quota check before proposing a write of about `cost` bytes: past
 * the quota the NOSPACE alarm is proposed (fire and forget, as etcd's
 * quotaKVServer does) and the write refused. Returns true (call finished)
 * when refused. */
static bool over_quota(struct svc_kv *kv, keel_grpc_call *call, uint64_t cost) {
  if (store_quota_exceeded(kv->st, cost) != 1)
    return false;
  struct node_status s;
  node_status(kv->node, &s);
  Etcdserverpb__AlarmRequest ar = ETCDSERVERPB__ALARM_REQUEST__INIT;
  ar.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
  ar.memberid = s.id;
  ar.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
  Keelstore__Request rq = KEELSTORE__REQUEST__INIT;
  rq.op_case = KEELSTORE__REQUEST__OP_ALARM;
  rq.alarm = &ar;
  uint8_t *buf;
  size_t len;
  if (apply_request_encode(&rq, 0, &buf, &len) == 0) {
    (void)node_propose(kv->node, buf, len, alarm_proposed, NULL);
    free(buf);
  }
  finish_code(call, KEEL_ENOSPACE);
  return true;
}

/* A write under /flags/ that kv_flags refused: InvalidArgument with the
 * message naming the key, the JSON path and the rule (kv_flags.h). Other
 * codes (the stored state could not be read) go the usual way. */
static void finish_flags(keel_grpc_call *call, int rc, const char *msg) {
  if ((rc == KEEL_EINVALIDFLAG || rc == KEEL_EPARSE || rc == KEEL_ELIMIT ||
       rc == KEEL_ETOOMANYOPS) &&
      msg[0])
    keel_grpc_call_finish(call, KEEL_GRPC_INVALID_ARGUMENT, msg);
  else
    finish_code(call, rc);
}

static uint64_t txn_ops_cost(Etcdserverpb__RequestOp **ops, size_t n,
                             unsigned depth);

static uint64_t txn_cost(const Etcdserverpb__TxnRequest *t, unsigned depth) {
  if (depth > ETCD_TXN_MAX_DEPTH)
    return 0;
  return txn_ops_cost(t->success, t->n_success, depth) +
         txn_ops_cost(t->failure, t->n_failure, depth);
}

static uint64_t txn_ops_cost(Etcdserverpb__RequestOp **ops, size_t n,
                             unsigned depth) {
  uint64_t c = 0;
  for (size_t i = 0; i < n; i++) {
    const Etcdserverpb__RequestOp *op = ops[i];
    if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
      c += op->request_put->key.len + op->request_put->value.len +
           QUOTA_OVERHEAD;
    else if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
      c += txn_cost(op->request_txn, depth + 1);
  }
  return c;
}

static void on_put(keel_grpc_call *call, const uint8_t *msg, size_t len,
                   void *ud) {
  struct svc_kv *kv = ud;
  if (detached(kv, call))
    return;
  Etcdserverpb__PutRequest *m = (Etcdserverpb__PutRequest *)decode(
      call, &etcdserverpb__put_request__descriptor, msg, len);
  if (!m)
    return;
  char fmsg[512];
  int rc = etcd_check_put(m);
  if (rc != 0)
    finish_code(call, rc);
  else if ((rc = kv_flags_check_put(&kv->flags_rd, m, fmsg, sizeof(fmsg))) != 0)
    finish_flags(call, rc, fmsg);
  else if (!over_quota(kv, call, m->key.len + m->value.len + QUOTA_OVERHEAD)) {
    Keelstore__Request rq = KEELSTORE__REQUEST__INIT;
    rq.op_case = KEELSTORE__REQUEST__OP_PUT;
    rq.put = m;
    propose(kv, call, &rq);
  }
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void on_delete_range(keel_grpc_call *call, const uint8_t *msg,
                            size_t len, void *ud) {
  struct svc_kv *kv = ud;
  if (detached(kv, call))
    return;
  Etcdserverpb__DeleteRangeRequest *m =
      (Etcdserverpb__DeleteRangeRequest *)decode(
          call, &etcdserverpb__delete_range_request__descriptor, msg, len);
  if (!m)
    return;
  int rc = etcd_check_delete_range(m);
  if (rc != 0) {
    finish_code(call, rc);
  } else {
    Keelstore__Request rq = KEELSTORE__REQUEST__INIT;
    rq.op_case = KEELSTORE__REQUEST__OP_DELETE_RANGE;
    rq.delete_range = m;
    propose(kv, call, &rq);
  }
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void on_txn(keel_grpc_call *call, const uint8_t *msg, size_t len,
                   void *ud) {
  struct svc_kv *kv = ud;
  if (detached(kv, call))
    return;
  int rc = etcd_wire_check_txn(msg, len);
  if (rc != 0) {
    finish_code(call, rc);
    return;
  }
  Etcdserverpb__TxnRequest *m = (Etcdserverpb__TxnRequest *)decode(
      call, &etcdserverpb__txn_request__descriptor, msg, len);
  if (!m)
    return;
  char fmsg[512];
  rc = etcd_check_txn(m, 0);
  if (rc != 0) {
    finish_code(call, rc);
  } else if ((rc = kv_flags_check_txn(&kv->flags_rd, m, fmsg, sizeof(fmsg))) !=
             0) {
    finish_flags(call, rc, fmsg);
  } else {
    uint64_t cost = txn_cost(m, 0);
    if (cost == 0 || !over_quota(kv, call, cost)) {
      Keelstore__Request rq = KEELSTORE__REQUEST__INIT;
      rq.op_case = KEELSTORE__REQUEST__OP_TXN;
      rq.txn = m;
      propose(kv, call, &rq);
    }
  }
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* Compact: etcd has no check before proposing (errors come from apply).
 * `physical` is answered like a plain compaction: once committed and
 * applied here (the store removes old revisions in steps afterwards). */
static void on_compact(keel_grpc_call *call, const uint8_t *msg, size_t len,
                       void *ud) {
  struct svc_kv *kv = ud;
  if (detached(kv, call))
    return;
  Etcdserverpb__CompactionRequest *m =
      (Etcdserverpb__CompactionRequest *)decode(
          call, &etcdserverpb__compaction_request__descriptor, msg, len);
  if (!m)
    return;
  Keelstore__Request rq = KEELSTORE__REQUEST__INIT;
  rq.op_case = KEELSTORE__REQUEST__OP_COMPACTION;
  rq.compaction = m;
  propose(kv, call, &rq);
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* ------------------------------------------------------------------ */
/* Range                                                               */
/* ------------------------------------------------------------------ */

struct range_ctx {
  struct svc_kv *kv;
  keel_grpc_call *call;
  Etcdserverpb__RangeRequest *m;
};

static void range_read(void *ud, int status) {
  struct range_ctx *c = ud;
  if (status != 0) {
    finish_code(c->call, status);
  } else {
    struct store_range_req q;
    struct store_range_result res;
    int rc = etcd_range_to_store(c->m, &q);
    if (rc == 0)
      rc = store_range(c->kv->st, &q, &res);
    if (rc != 0) {
      finish_code(c->call, rc);
    } else {
      struct etcd_header_ids ids;
      /* node_stop() completes every read before the node is freed, so
       * the node is still there even if the service was detached since. */
      header_ids(c->kv, &ids);
      struct etcd_reply r = {0};
      rc = etcd_encode_range(&res.resp, &ids, &r);
      if (rc != 0 && r.status.grpc == KEEL_GRPC_OK)
        etcd_reply_error(&r, rc);
      finish_reply(c->call, &r);
      store_range_result_free(&res);
    }
  }
  protobuf_c_message_free_unpacked(&c->m->base, NULL);
  free(c);
}

static void on_range(keel_grpc_call *call, const uint8_t *msg, size_t len,
                     void *ud) {
  struct svc_kv *kv = ud;
  if (detached(kv, call))
    return;
  Etcdserverpb__RangeRequest *m = (Etcdserverpb__RangeRequest *)decode(
      call, &etcdserverpb__range_request__descriptor, msg, len);
  if (!m)
    return;
  int rc = etcd_check_range(m);
  if (rc == 0 && !m->serializable && learner_refuses(kv, call)) {
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return;
  }
  struct range_ctx *c = rc == 0 ? malloc(sizeof(*c)) : NULL;
  if (rc == 0 && !c)
    rc = -ENOMEM;
  if (rc != 0) {
    finish_code(call, rc);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return;
  }
  c->kv = kv;
  c->call = call;
  c->m = m;
  rc = node_read(kv->node, !m->serializable, range_read, c);
  if (rc != 0)
    range_read(c, rc); /* not called back: answer the error now */
}

/* ------------------------------------------------------------------ */
/* Maintenance.Status, Cluster.MemberList                               */
/* ------------------------------------------------------------------ */

static bool self_learner(const struct svc_kv *kv, uint64_t id) {
  struct node_member m[RAFT_MAX_NODES];
  size_t n = node_members(kv->node, m, RAFT_MAX_NODES);
  for (size_t i = 0; i < n && i < RAFT_MAX_NODES; i++)
    if (m[i].id == id)
      return m[i].learner;
  return false;
}

static void on_status(keel_grpc_call *call, const uint8_t *msg, size_t len,
                      void *ud) {
  struct svc_kv *kv = ud;
  if (detached(kv, call))
    return;
  ProtobufCMessage *req =
      decode(call, &etcdserverpb__status_request__descriptor, msg, len);
  if (!req)
    return;
  protobuf_c_message_free_unpacked(req, NULL);

  struct node_status s;
  node_status(kv->node, &s);
  struct store_size sz = {0};
  int64_t cur = 0, compacted = 0;
  int rc = store_size(kv->st, &sz);
  if (rc == 0)
    rc = store_revisions(kv->st, &cur, &compacted);
  if (rc != 0) {
    finish_code(call, rc);
    return;
  }
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  h.cluster_id = s.cluster_id;
  h.member_id = s.id;
  h.raft_term = s.term;
  h.revision = cur;
  Etcdserverpb__StatusResponse out = ETCDSERVERPB__STATUS_RESPONSE__INIT;
  out.header = &h;
  out.version = (char *)SVC_KV_STATUS_VERSION;
  out.dbsize = (int64_t)sz.size;
  out.dbsizeinuse = (int64_t)sz.size_in_use;
  out.leader = s.leader;
  out.raftindex = s.commit;
  out.raftterm = s.term;
  out.raftappliedindex = s.applied;
  out.islearner = self_learner(kv, s.id);
  /* etcd: "no leader", then every active alarm in its text form. */
  char *errs[1 + STORE_MAX_ALARMS];
  char alarm_text[STORE_MAX_ALARMS][64];
  struct store_alarm_member alarms[STORE_MAX_ALARMS];
  size_t n_alarms = 0;
  out.errors = errs;
  if (s.leader == 0)
    errs[out.n_errors++] = (char *)etcd_error(KEEL_ENOLEADER).message;
  if (store_alarm_list(kv->st, alarms, STORE_MAX_ALARMS, &n_alarms) == 0)
    for (size_t i = 0; i < n_alarms; i++) {
      snprintf(alarm_text[i], sizeof(alarm_text[i]),
               "memberID:%" PRIu64 " alarm:%s ", alarms[i].member_id,
               alarms[i].alarm == STORE_ALARM_NOSPACE   ? "NOSPACE"
               : alarms[i].alarm == STORE_ALARM_CORRUPT ? "CORRUPT"
                                                        : "NONE");
      errs[out.n_errors++] = alarm_text[i];
    }
  size_t n = protobuf_c_message_get_packed_size(&out.base);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    finish_code(call, -ENOMEM);
    return;
  }
  protobuf_c_message_pack(&out.base, buf);
  keel_grpc_call_reply(call, buf, n);
  free(buf);
}

static int member_cmp(const void *a, const void *b) {
  const struct node_member *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Served locally as etcd 3.4 does (also without quorum). Client URLs are
 * known for this member only (its --advertise-client-urls, else
 * --listen-client-urls): members do not publish theirs yet. */
static void on_member_list(keel_grpc_call *call, const uint8_t *msg, size_t len,
                           void *ud) {
  struct svc_kv *kv = ud;
  if (detached(kv, call))
    return;
  ProtobufCMessage *req =
      decode(call, &etcdserverpb__member_list_request__descriptor, msg, len);
  if (!req)
    return;
  protobuf_c_message_free_unpacked(req, NULL);
  if (learner_refuses(kv, call))
    return;

  struct node_status s;
  node_status(kv->node, &s);
  struct node_member m[RAFT_MAX_NODES];
  size_t n = node_members(kv->node, m, RAFT_MAX_NODES);
  if (n > RAFT_MAX_NODES)
    n = RAFT_MAX_NODES;
  qsort(m, n, sizeof(m[0]), member_cmp);

  const struct keel_url_list *cu = kv->cfg->advertise_client_urls.n
                                       ? &kv->cfg->advertise_client_urls
                                       : &kv->cfg->listen_client_urls;
  char *self_urls[KEEL_CONFIG_MAX_URLS];
  for (size_t i = 0; i < cu->n; i++)
    self_urls[i] = (char *)cu->v[i].text;

  Etcdserverpb__Member mem[RAFT_MAX_NODES];
  Etcdserverpb__Member *memp[RAFT_MAX_NODES];
  char *peer[RAFT_MAX_NODES];
  for (size_t i = 0; i < n; i++) {
    etcdserverpb__member__init(&mem[i]);
    mem[i].id = m[i].id;
    mem[i].name = (char *)(m[i].name ? m[i].name : "");
    peer[i] = (char *)(m[i].peer_url ? m[i].peer_url : "");
    if (peer[i][0]) {
      mem[i].peerurls = &peer[i];
      mem[i].n_peerurls = 1;
    }
    if (m[i].id == s.id) {
      mem[i].clienturls = self_urls;
      mem[i].n_clienturls = cu->n;
    }
    mem[i].islearner = m[i].learner;
    memp[i] = &mem[i];
  }
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  h.cluster_id = s.cluster_id;
  h.member_id = s.id;
  h.raft_term = s.term; /* no revision in Member* responses (§0.2) */
  Etcdserverpb__MemberListResponse out =
      ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
  out.header = &h;
  out.members = memp;
  out.n_members = n;
  size_t sz = protobuf_c_message_get_packed_size(&out.base);
  uint8_t *buf = malloc(sz ? sz : 1);
  if (!buf) {
    finish_code(call, -ENOMEM);
    return;
  }
  protobuf_c_message_pack(&out.base, buf);
  keel_grpc_call_reply(call, buf, sz);
  free(buf);
}

/* ------------------------------------------------------------------ */
/* life                                                                */
/* ------------------------------------------------------------------ */

int svc_kv_new(struct node *node, struct store *st,
               const struct keel_config *cfg, struct svc_kv **out) {
  struct svc_kv *kv = calloc(1, sizeof(*kv));
  if (!kv)
    return -ENOMEM;
  kv->node = node;
  kv->st = st;
  kv->cfg = cfg;
  kv_flags_reader_store(st, &kv->flags_rd);
  *out = kv;
  return 0;
}

int svc_kv_register(struct svc_kv *kv, keel_grpc_server *srv) {
  static const struct {
    const char *name;
    void (*fn)(keel_grpc_call *, const uint8_t *, size_t, void *);
  } tab[] = {
      {"/etcdserverpb.KV/Range", on_range},
      {"/etcdserverpb.KV/Put", on_put},
      {"/etcdserverpb.KV/DeleteRange", on_delete_range},
      {"/etcdserverpb.KV/Txn", on_txn},
      {"/etcdserverpb.KV/Compact", on_compact},
      {"/etcdserverpb.Maintenance/Status", on_status},
      {"/etcdserverpb.Cluster/MemberList", on_member_list},
  };
  for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
    struct keel_grpc_method m = {0};
    m.name = tab[i].name;
    m.kind = KEEL_GRPC_UNARY;
    m.ud = kv;
    m.on_message = tab[i].fn;
    int rc = keel_grpc_server_register(srv, &m);
    if (rc != 0)
      return rc;
  }
  return 0;
}

void svc_kv_detach(struct svc_kv *kv) {
  kv->detached = true;
}

void svc_kv_free(struct svc_kv *kv) {
  free(kv);
}

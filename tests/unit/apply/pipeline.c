/* pipeline.c — the test pipeline of pipeline.h. Aborts (assert) on
 * anything that is the harness's own failure, so a test sees only the
 * client's view: a status and a decoded response. */
#define _GNU_SOURCE
#include "pipeline.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

#define PL_MAX_REQUEST (1536 * 1024)

void pl_open(struct pl *p, uint64_t quota) {
  memset(p, 0, sizeof(*p));
  const char *tmp = getenv("TMPDIR");
  snprintf(p->dir, sizeof(p->dir), "%s/keel-apply-XXXXXX", tmp ? tmp : "/tmp");
  char *d = mkdtemp(p->dir);
  assert(d != NULL);
  struct store_options o = {.quota_bytes = quota ? quota : 64u << 20,
                            .apply_nosync = true};
  int rc = store_open(p->dir, &o, &p->st);
  assert(rc == 0);
  (void)rc;
  p->ids = (struct etcd_header_ids){
      .cluster_id = 0x1111, .member_id = 0x2222, .raft_term = 3};
}

void pl_close(struct pl *p) {
  store_close(p->st);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
  int rc = system(cmd);
  (void)rc;
}

static int finish(struct pl *p, struct etcd_reply *r) {
  p->status = r->status;
  return r->status.code;
}

/* Log round: wrap, encode, decode, apply, encode the response. */
static int propose(struct pl *p, Keelstore__Request *kr,
                   struct etcd_reply *reply) {
  kr->id = ++p->next_req_id;
  kr->proposer = p->ids.member_id;
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = apply_request_encode(kr, PL_MAX_REQUEST, &buf, &len);
  if (rc != 0) {
    etcd_reply_error(reply, rc);
    return rc;
  }
  struct store_entry e = {++p->index, 1, STORE_ENTRY_NORMAL, buf, len};
  struct apply_result r;
  rc = apply_entries(p->st, &e, 1, NULL, &r);
  assert(rc == 0);
  assert(r.n == 1 && r.reqs[0].id == kr->id && r.reqs[0].error == 0);
  rc = apply_encode_response(&r, 0, &p->ids, reply);
  assert(rc == 0);
  apply_result_free(&r);
  free(buf);
  return 0;
}

/* Client side: pack a message. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*len ? *len : 1);
  assert(b != NULL);
  protobuf_c_message_pack(m, b);
  return b;
}

int pl_put(struct pl *p, const Etcdserverpb__PutRequest *rq,
           Etcdserverpb__PutResponse **out) {
  size_t len;
  uint8_t *wire = pack(&rq->base, &len);
  Etcdserverpb__PutRequest *m =
      etcdserverpb__put_request__unpack(NULL, len, wire);
  assert(m != NULL);
  struct etcd_reply reply = {0};
  int rc = etcd_check_put(m);
  if (rc != 0) {
    etcd_reply_error(&reply, rc);
  } else {
    Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
    kr.op_case = KEELSTORE__REQUEST__OP_PUT;
    kr.put = m;
    propose(p, &kr, &reply);
  }
  if (reply.status.code == 0 && out != NULL) {
    *out = etcdserverpb__put_response__unpack(NULL, reply.len, reply.buf);
    assert(*out != NULL);
  }
  etcdserverpb__put_request__free_unpacked(m, NULL);
  free(wire);
  rc = finish(p, &reply);
  etcd_reply_free(&reply);
  return rc;
}

int pl_delete(struct pl *p, const Etcdserverpb__DeleteRangeRequest *rq,
              Etcdserverpb__DeleteRangeResponse **out) {
  size_t len;
  uint8_t *wire = pack(&rq->base, &len);
  Etcdserverpb__DeleteRangeRequest *m =
      etcdserverpb__delete_range_request__unpack(NULL, len, wire);
  assert(m != NULL);
  struct etcd_reply reply = {0};
  int rc = etcd_check_delete_range(m);
  if (rc != 0) {
    etcd_reply_error(&reply, rc);
  } else {
    Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
    kr.op_case = KEELSTORE__REQUEST__OP_DELETE_RANGE;
    kr.delete_range = m;
    propose(p, &kr, &reply);
  }
  if (reply.status.code == 0 && out != NULL) {
    *out =
        etcdserverpb__delete_range_response__unpack(NULL, reply.len, reply.buf);
    assert(*out != NULL);
  }
  etcdserverpb__delete_range_request__free_unpacked(m, NULL);
  free(wire);
  rc = finish(p, &reply);
  etcd_reply_free(&reply);
  return rc;
}

int pl_txn(struct pl *p, const Etcdserverpb__TxnRequest *rq,
           Etcdserverpb__TxnResponse **out) {
  size_t len;
  uint8_t *wire = pack(&rq->base, &len);
  struct etcd_reply reply = {0};
  Etcdserverpb__TxnRequest *m = NULL;
  int rc = etcd_wire_check_txn(wire, len);
  if (rc == 0) {
    m = etcdserverpb__txn_request__unpack(NULL, len, wire);
    assert(m != NULL);
    rc = etcd_check_txn(m, p->max_txn_ops);
  }
  if (rc != 0) {
    etcd_reply_error(&reply, rc);
  } else {
    Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
    kr.op_case = KEELSTORE__REQUEST__OP_TXN;
    kr.txn = m;
    propose(p, &kr, &reply);
  }
  if (reply.status.code == 0 && out != NULL) {
    *out = etcdserverpb__txn_response__unpack(NULL, reply.len, reply.buf);
    assert(*out != NULL);
  }
  if (m != NULL)
    etcdserverpb__txn_request__free_unpacked(m, NULL);
  free(wire);
  rc = finish(p, &reply);
  etcd_reply_free(&reply);
  return rc;
}

int pl_range(struct pl *p, const Etcdserverpb__RangeRequest *rq,
             Etcdserverpb__RangeResponse **out) {
  size_t len;
  uint8_t *wire = pack(&rq->base, &len);
  Etcdserverpb__RangeRequest *m =
      etcdserverpb__range_request__unpack(NULL, len, wire);
  assert(m != NULL);
  struct etcd_reply reply = {0};
  struct store_range_req sr;
  int rc = etcd_check_range(m);
  if (rc == 0)
    rc = etcd_range_to_store(m, &sr);
  if (rc == 0) {
    struct store_range_result res;
    rc = store_range(p->st, &sr, &res);
    if (rc == 0) {
      rc = etcd_encode_range(&res.resp, &p->ids, &reply);
      assert(rc == 0);
      store_range_result_free(&res);
    }
  }
  if (rc != 0)
    etcd_reply_error(&reply, rc);
  if (reply.status.code == 0 && out != NULL) {
    *out = etcdserverpb__range_response__unpack(NULL, reply.len, reply.buf);
    assert(*out != NULL);
  }
  etcdserverpb__range_request__free_unpacked(m, NULL);
  free(wire);
  rc = finish(p, &reply);
  etcd_reply_free(&reply);
  return rc;
}

int pl_compact(struct pl *p, int64_t rev,
               Etcdserverpb__CompactionResponse **out) {
  Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  c.revision = rev;
  Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
  kr.op_case = KEELSTORE__REQUEST__OP_COMPACTION;
  kr.compaction = &c;
  struct etcd_reply reply = {0};
  propose(p, &kr, &reply);
  if (reply.status.code == 0 && out != NULL) {
    *out =
        etcdserverpb__compaction_response__unpack(NULL, reply.len, reply.buf);
    assert(*out != NULL);
  }
  int rc = finish(p, &reply);
  etcd_reply_free(&reply);
  return rc;
}

int pl_lease_grant(struct pl *p, int64_t ttl, int64_t id,
                   Etcdserverpb__LeaseGrantResponse **out) {
  Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  g.ttl = ttl;
  g.id = id;
  struct etcd_reply reply = {0};
  /* the minimum TTL and the id generator are the node's (here fixed) */
  int rc = etcd_prepare_lease_grant(&g, 2, 0x7000 + (int64_t)p->next_req_id);
  if (rc != 0) {
    etcd_reply_error(&reply, rc);
  } else {
    Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
    kr.op_case = KEELSTORE__REQUEST__OP_LEASE_GRANT;
    kr.lease_grant = &g;
    propose(p, &kr, &reply);
  }
  if (reply.status.code == 0 && out != NULL) {
    *out =
        etcdserverpb__lease_grant_response__unpack(NULL, reply.len, reply.buf);
    assert(*out != NULL);
  }
  rc = finish(p, &reply);
  etcd_reply_free(&reply);
  return rc;
}

int pl_lease_revoke(struct pl *p, int64_t id,
                    Etcdserverpb__LeaseRevokeResponse **out) {
  Etcdserverpb__LeaseRevokeRequest g = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
  g.id = id;
  Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
  kr.op_case = KEELSTORE__REQUEST__OP_LEASE_REVOKE;
  kr.lease_revoke = &g;
  struct etcd_reply reply = {0};
  propose(p, &kr, &reply);
  if (reply.status.code == 0 && out != NULL) {
    *out =
        etcdserverpb__lease_revoke_response__unpack(NULL, reply.len, reply.buf);
    assert(*out != NULL);
  }
  int rc = finish(p, &reply);
  etcd_reply_free(&reply);
  return rc;
}

int pl_alarm(struct pl *p, int action, int alarm,
             Etcdserverpb__AlarmResponse **out) {
  Etcdserverpb__AlarmRequest a = ETCDSERVERPB__ALARM_REQUEST__INIT;
  a.action = (Etcdserverpb__AlarmRequest__AlarmAction)action;
  a.alarm = (Etcdserverpb__AlarmType)alarm;
  a.memberid = p->ids.member_id;
  Keelstore__Request kr = KEELSTORE__REQUEST__INIT;
  kr.op_case = KEELSTORE__REQUEST__OP_ALARM;
  kr.alarm = &a;
  struct etcd_reply reply = {0};
  propose(p, &kr, &reply);
  if (reply.status.code == 0 && out != NULL) {
    *out = etcdserverpb__alarm_response__unpack(NULL, reply.len, reply.buf);
    assert(*out != NULL);
  }
  int rc = finish(p, &reply);
  etcd_reply_free(&reply);
  return rc;
}

int pl_apply_raw(struct pl *p, const uint8_t *data, size_t len, int *req_type) {
  struct store_entry e = {++p->index, 1, STORE_ENTRY_NORMAL, data, len};
  struct apply_result r;
  int rc = apply_entries(p->st, &e, 1, NULL, &r);
  assert(rc == 0);
  (void)rc;
  if (req_type != NULL)
    *req_type = (int)r.reqs[0].req.type;
  int err = r.store.responses[0].error;
  struct etcd_reply reply = {0};
  apply_encode_response(&r, 0, &p->ids, &reply);
  assert(reply.status.code == err);
  etcd_reply_free(&reply);
  apply_result_free(&r);
  return err;
}

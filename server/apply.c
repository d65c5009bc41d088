/* apply.c — keelstore.Request <-> store_request, and the apply step over a
 * batch of committed entries (see apply.h).
 *
 * Decode order, each step a pure function of the bytes:
 *   1. len over APPLY_ENTRY_MAX          -> KEEL_ETOOLARGE
 *   2. wire walk of the txn (field 12)   -> KEEL_EBADMSG / KEEL_ETOOMANYOPS
 *      (bounds protobuf-c's recursion and allocations before it runs),
 *      then keel_pb_check() over the whole entry -> KEEL_EBADMSG (the
 *      shared guard: tags of field 0 written over-long, groups, ...)
 *   3. protobuf-c unpack                 -> KEEL_EBADMSG (malloc failure is
 *      told apart by the allocator and returned as -ENOMEM: never a
 *      decode verdict, since another node may have had the memory)
 *   4. op -> store structs               -> KEEL_EBADMSG (no op, bad enum,
 *      empty RequestOp), -ENOTSUP (auth)
 * A request that decodes is applied exactly as the store rules; one that
 * does not is a no-op whose response is the error.
 */
#include "apply.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "keel_pb.h"

int apply_request_encode(const Keelstore__Request *rq, size_t max_bytes,
                         uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (rq->op_case == KEELSTORE__REQUEST__OP__NOT_SET)
    return -EINVAL;
  if (max_bytes == 0 || max_bytes > APPLY_ENTRY_MAX)
    max_bytes = APPLY_ENTRY_MAX;
  size_t n = keelstore__request__get_packed_size(rq);
  if (n > max_bytes)
    return KEEL_ETOOLARGE;
  uint8_t *b = malloc(n ? n : 1);
  if (b == NULL)
    return -ENOMEM;
  keelstore__request__pack(rq, b);
  *out = b;
  *len = n;
  return 0;
}

/* protobuf-c returns NULL both for bad input and for a failed malloc; this
 * allocator tells them apart. */
struct pb_alloc_state {
  bool failed;
};
static void *pb_alloc(void *ud, size_t n) {
  void *p = malloc(n);
  if (p == NULL)
    ((struct pb_alloc_state *)ud)->failed = true;
  return p;
}
static void pb_free(void *ud, void *p) {
  (void)ud;
  free(p);
}

static void set_error(struct apply_request *out, int code) {
  out->error = code;
  memset(&out->req, 0, sizeof(out->req));
  out->req.type = STORE_REQ_NOOP;
}

/* Step 4: the op into store structs. */
static int translate(struct apply_request *out) {
  const Keelstore__Request *m = out->msg;
  struct store_request *r = &out->req;
  switch (m->op_case) {
  case KEELSTORE__REQUEST__OP_PUT: {
    const Etcdserverpb__PutRequest *p = m->put;
    r->type = STORE_REQ_PUT;
    r->u.put = (struct store_put_req){
        .key = p->key.data,
        .key_len = p->key.len,
        .value = p->value.data,
        .value_len = p->value.len,
        .lease = p->lease,
        .prev_kv = p->prev_kv,
        .ignore_value = p->ignore_value,
        .ignore_lease = p->ignore_lease,
    };
    return 0;
  }
  case KEELSTORE__REQUEST__OP_DELETE_RANGE: {
    const Etcdserverpb__DeleteRangeRequest *d = m->delete_range;
    r->type = STORE_REQ_DELETE_RANGE;
    r->u.delete_range = (struct store_delete_req){
        .key = d->key.data,
        .key_len = d->key.len,
        .range_end = d->range_end.data,
        .range_end_len = d->range_end.len,
        .prev_kv = d->prev_kv,
    };
    return 0;
  }
  case KEELSTORE__REQUEST__OP_TXN:
    r->type = STORE_REQ_TXN;
    return etcd_txn_to_store(m->txn, &r->u.txn, &out->mem);
  case KEELSTORE__REQUEST__OP_COMPACTION:
    r->type = STORE_REQ_COMPACTION;
    r->u.compaction.revision = m->compaction->revision;
    return 0;
  case KEELSTORE__REQUEST__OP_LEASE_GRANT:
    r->type = STORE_REQ_LEASE_GRANT;
    r->u.lease_grant.id = m->lease_grant->id;
    r->u.lease_grant.ttl = m->lease_grant->ttl;
    return 0;
  case KEELSTORE__REQUEST__OP_LEASE_REVOKE:
    r->type = STORE_REQ_LEASE_REVOKE;
    r->u.lease_revoke.id = m->lease_revoke->id;
    return 0;
  case KEELSTORE__REQUEST__OP_LEASE_EXPIRE:
    r->type = STORE_REQ_LEASE_EXPIRE;
    r->u.lease_revoke.id = m->lease_expire->lease_id;
    return 0;
  case KEELSTORE__REQUEST__OP_LEASE_CHECKPOINT:
    r->type = STORE_REQ_LEASE_CHECKPOINT;
    r->u.lease_checkpoint.id = m->lease_checkpoint->lease_id;
    r->u.lease_checkpoint.remaining_ttl = m->lease_checkpoint->remaining_ttl;
    return 0;
  case KEELSTORE__REQUEST__OP_ALARM: {
    const Etcdserverpb__AlarmRequest *a = m->alarm;
    if ((unsigned)a->action > STORE_ALARM_DEACTIVATE ||
        (unsigned)a->alarm > STORE_ALARM_CORRUPT)
      return KEEL_EBADMSG;
    r->type = STORE_REQ_ALARM;
    r->u.alarm.action = (enum store_alarm_action)a->action;
    r->u.alarm.member_id = a->memberid;
    r->u.alarm.alarm = (enum store_alarm_type)a->alarm;
    return 0;
  }
  case KEELSTORE__REQUEST__OP_AUTH:
    return -ENOTSUP; /* the security issue brings auth changes */
  default:
    return KEEL_EBADMSG;
  }
}

int apply_request_decode(const uint8_t *data, size_t len,
                         struct apply_request *out) {
  memset(out, 0, sizeof(*out));
  out->req.type = STORE_REQ_NOOP;
  if (len == 0)
    return 0;
  if (len > APPLY_ENTRY_MAX) {
    set_error(out, KEEL_ETOOLARGE);
    return 0;
  }
  int rc = etcd_wire_check_embedded_txn(data, len, 12);
  if (rc == 0)
    rc = keel_pb_check(&keelstore__request__descriptor, data, len,
                       KEEL_PB_MAX_DEPTH, NULL, 0);
  if (rc != 0) {
    set_error(out, rc);
    return 0;
  }
  struct pb_alloc_state st = {false};
  ProtobufCAllocator alloc = {pb_alloc, pb_free, &st};
  out->msg = keelstore__request__unpack(&alloc, len, data);
  if (out->msg == NULL) {
    set_error(out, st.failed ? -ENOMEM : KEEL_EBADMSG);
    return st.failed ? -ENOMEM : 0;
  }
  out->id = out->msg->id;
  out->proposer = out->msg->proposer;
  rc = translate(out);
  if (rc == -ENOMEM) {
    set_error(out, rc);
    return rc;
  }
  if (rc != 0) {
    free(out->mem);
    out->mem = NULL;
    set_error(out, rc);
  }
  return 0;
}

void apply_request_free(struct apply_request *r) {
  if (r->msg != NULL)
    keelstore__request__free_unpacked(r->msg, NULL);
  free(r->mem);
  memset(r, 0, sizeof(*r));
}

void apply_result_free(struct apply_result *r) {
  store_apply_result_free(&r->store);
  for (size_t i = 0; i < r->n; i++)
    apply_request_free(&r->reqs[i]);
  free(r->reqs);
  memset(r, 0, sizeof(*r));
}

int apply_entries(struct store *st, const struct store_entry *entries, size_t n,
                  const struct store_apply_batch *extra,
                  struct apply_result *out) {
  memset(out, 0, sizeof(*out));
  struct apply_request *reqs = calloc(n ? n : 1, sizeof(*reqs));
  struct store_apply_entry *ents = calloc(n ? n : 1, sizeof(*ents));
  int rc = (reqs && ents) ? 0 : -ENOMEM;
  size_t done = 0;
  for (; rc == 0 && done < n; done++) {
    const struct store_entry *e = &entries[done];
    if (e->type == STORE_ENTRY_NORMAL)
      rc = apply_request_decode(e->data, e->len, &reqs[done]);
    else
      reqs[done].req.type = STORE_REQ_NOOP;
    ents[done] = (struct store_apply_entry){e->index, e->term, &reqs[done].req};
  }
  if (rc == 0) {
    struct store_apply_batch b = {0};
    if (extra != NULL)
      b = *extra;
    b.entries = ents;
    b.n = n;
    rc = store_apply(st, &b, &out->store);
  }
  free(ents);
  if (rc != 0) {
    for (size_t i = 0; reqs && i < done; i++)
      apply_request_free(&reqs[i]);
    free(reqs);
    memset(out, 0, sizeof(*out));
    return rc;
  }
  out->reqs = reqs;
  out->n = n;
  for (size_t i = 0; i < n; i++) {
    struct store_response *resp = &out->store.responses[i];
    if (resp->error == KEEL_EEXIST)
      continue; /* applied before: nothing was done now */
    if (reqs[i].error != 0) {
      resp->error = reqs[i].error;
      continue;
    }
    enum store_req_type t = reqs[i].req.type;
    if ((t == STORE_REQ_PUT || t == STORE_REQ_TXN) &&
        resp->error == KEEL_ENOTFOUND)
      resp->error = KEEL_EKEYNOTFOUND;
    else if (t == STORE_REQ_LEASE_GRANT && resp->error == KEEL_ETOOLARGE)
      resp->error = KEEL_ELEASETTLTOOLARGE;
  }
  return 0;
}

int apply_encode_response(const struct apply_result *r, size_t i,
                          const struct etcd_header_ids *ids,
                          struct etcd_reply *out) {
  if (i >= r->n) {
    etcd_reply_error(out, -EINVAL);
    return -EINVAL;
  }
  return etcd_encode_write(r->reqs[i].req.type, &r->store.responses[i], ids,
                           out);
}

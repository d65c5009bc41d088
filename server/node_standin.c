/* node_standin.c — TEST STAND-IN: put-only request decoding (see
 * node_standin.h). Not the request codec. */
#include "node_standin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "store.pb-c.h"

static int standin_decode(const uint8_t *data, size_t len,
                          struct store_request *req, uint64_t *id,
                          uint64_t *proposer, Keelstore__Request **mem) {
  *mem = NULL;
  Keelstore__Request *r = keelstore__request__unpack(NULL, len, data);
  if (!r)
    return KEEL_EBADMSG;
  *id = r->id;
  *proposer = r->proposer;
  if (r->op_case != KEELSTORE__REQUEST__OP_PUT || !r->put) {
    keelstore__request__free_unpacked(r, NULL);
    return -ENOTSUP;
  }
  memset(req, 0, sizeof(*req));
  req->type = STORE_REQ_PUT;
  req->u.put.key = r->put->key.data;
  req->u.put.key_len = r->put->key.len;
  req->u.put.value = r->put->value.data;
  req->u.put.value_len = r->put->value.len;
  req->u.put.lease = r->put->lease;
  req->u.put.prev_kv = r->put->prev_kv;
  req->u.put.ignore_value = r->put->ignore_value;
  req->u.put.ignore_lease = r->put->ignore_lease;
  *mem = r;
  return 0;
}

struct standin_result {
  struct store_apply_result res;
  size_t n;
  Keelstore__Request **msgs;
};

static void standin_free(struct standin_result *sr) {
  for (size_t i = 0; i < sr->n; i++)
    if (sr->msgs[i])
      keelstore__request__free_unpacked(sr->msgs[i], NULL);
  free(sr->msgs);
  free(sr);
}

static int standin_apply(void *ud, struct store *st,
                         const struct store_entry *ents, size_t n,
                         const struct store_apply_batch *extra,
                         struct node_apply_out *out) {
  (void)ud;
  struct standin_result *sr = calloc(1, sizeof(*sr));
  struct store_apply_entry *ae = calloc(n ? n : 1, sizeof(*ae));
  struct store_request *reqs = calloc(n ? n : 1, sizeof(*reqs));
  int *errs = calloc(n ? n : 1, sizeof(*errs));
  if (sr)
    sr->msgs = calloc(n ? n : 1, sizeof(*sr->msgs));
  int rc = 0;
  if (!sr || !sr->msgs || !ae || !reqs || !errs) {
    rc = -ENOMEM;
    goto out;
  }
  sr->n = n;
  for (size_t i = 0; i < n; i++) {
    ae[i].index = ents[i].index;
    ae[i].term = ents[i].term;
    if (ents[i].type != STORE_ENTRY_NORMAL || ents[i].len == 0)
      continue;
    errs[i] = standin_decode(ents[i].data, ents[i].len, &reqs[i], &out->ids[i],
                             &out->proposers[i], &sr->msgs[i]);
    if (errs[i] == 0)
      ae[i].req = &reqs[i];
  }
  struct store_apply_batch b = *extra;
  b.entries = ae;
  b.n = n;
  rc = store_apply(st, &b, &sr->res);
  if (rc == 0) {
    for (size_t i = 0; i < n && i < sr->res.n_responses; i++)
      if (errs[i])
        sr->res.responses[i].error = errs[i];
    out->responses = sr->res.responses;
    out->result = sr;
  }
out:
  if (rc && sr)
    standin_free(sr);
  free(ae);
  free(reqs);
  free(errs);
  return rc;
}

static void standin_release(void *ud, struct node_apply_out *out) {
  (void)ud;
  struct standin_result *sr = out->result;
  if (!sr)
    return;
  store_apply_result_free(&sr->res);
  standin_free(sr);
  out->result = NULL;
}

struct node_apply_ops node_standin_put_ops(void) {
  struct node_apply_ops ops = {NULL, standin_apply, standin_release};
  return ops;
}

int node_standin_encode_put(const uint8_t *key, size_t key_len,
                            const uint8_t *value, size_t value_len,
                            uint8_t **out, size_t *out_len) {
  Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
  put.key.data = (uint8_t *)key;
  put.key.len = key_len;
  put.value.data = (uint8_t *)value;
  put.value.len = value_len;
  Keelstore__Request r = KEELSTORE__REQUEST__INIT;
  r.op_case = KEELSTORE__REQUEST__OP_PUT;
  r.put = &put;
  size_t n = keelstore__request__get_packed_size(&r);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    return -ENOMEM;
  keelstore__request__pack(&r, buf);
  *out = buf;
  *out_len = n;
  return 0;
}

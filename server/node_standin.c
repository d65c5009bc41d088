/* node_standin.c — TEST STAND-IN: put-only request decoding (see
 * node_standin.h). Not the request codec. */
#include "node_standin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "store.pb-c.h"

static int standin_decode(void *ud, const uint8_t *data, size_t len,
                          struct store_request *req, uint64_t *id,
                          uint64_t *proposer, void **mem) {
  (void)ud;
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

static void standin_release(void *ud, void *mem) {
  (void)ud;
  keelstore__request__free_unpacked(mem, NULL);
}

struct node_apply_ops node_standin_put_ops(void) {
  struct node_apply_ops ops = {NULL, standin_decode, standin_release};
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

/* grpc_test_scaffold.c — TEST SCAFFOLDING ONLY (see the header): handlers
 * that exercise the client-port transport; the real services live in the
 * node. */
#include "grpc_test_scaffold.h"

#include <stdlib.h>
#include <string.h>

#include "rpc.pb-c.h"

#define CLUSTER_ID 0x1111222233334444ull
#define MEMBER_ID 0x5555666677778888ull

static void header_fill(struct grpc_scaffold *s,
                        Etcdserverpb__ResponseHeader *h) {
  h->cluster_id = CLUSTER_ID;
  h->member_id = MEMBER_ID;
  h->revision = s->revision;
  h->raft_term = 2;
}

/* Packs msg and replies; the handler has finished the call afterwards. */
static void reply_packed(keel_grpc_call *call, const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    keel_grpc_call_finish(call, KEEL_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  protobuf_c_message_pack(msg, buf);
  keel_grpc_call_reply(call, buf, n);
  free(buf);
}

static struct scaffold_kv *kv_find(struct grpc_scaffold *s, const uint8_t *k,
                                   size_t n) {
  for (size_t i = 0; i < s->n_kvs; i++)
    if (s->kvs[i].key_len == n && memcmp(s->kvs[i].key, k, n) == 0)
      return &s->kvs[i];
  return NULL;
}

static void kv_put(keel_grpc_call *call, const uint8_t *msg, size_t len,
                   void *ud) {
  struct grpc_scaffold *s = ud;
  Etcdserverpb__PutRequest *req =
      etcdserverpb__put_request__unpack(NULL, len, msg);
  if (req == NULL) {
    keel_grpc_call_finish(call, KEEL_GRPC_INVALID_ARGUMENT,
                          "malformed PutRequest");
    return;
  }
  if (req->key.len == 0) {
    etcdserverpb__put_request__free_unpacked(req, NULL);
    keel_grpc_call_finish(call, KEEL_GRPC_INVALID_ARGUMENT,
                          "etcdserver: key is not provided");
    return;
  }
  struct scaffold_kv *kv = kv_find(s, req->key.data, req->key.len);
  if (kv == NULL && s->n_kvs == SCAFFOLD_MAX_KEYS) {
    etcdserverpb__put_request__free_unpacked(req, NULL);
    keel_grpc_call_finish(call, KEEL_GRPC_RESOURCE_EXHAUSTED,
                          "test scaffold: key table full");
    return;
  }
  uint8_t *v = malloc(req->value.len ? req->value.len : 1);
  if (v == NULL) {
    etcdserverpb__put_request__free_unpacked(req, NULL);
    keel_grpc_call_finish(call, KEEL_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  memcpy(v, req->value.data, req->value.len);
  s->revision++;
  if (kv == NULL) {
    kv = &s->kvs[s->n_kvs++];
    kv->key = malloc(req->key.len);
    memcpy(kv->key, req->key.data, req->key.len);
    kv->key_len = req->key.len;
    kv->create_rev = s->revision;
    kv->version = 0;
    kv->value = NULL;
  }
  free(kv->value);
  kv->value = v;
  kv->value_len = req->value.len;
  kv->mod_rev = s->revision;
  kv->version++;
  etcdserverpb__put_request__free_unpacked(req, NULL);

  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  header_fill(s, &h);
  Etcdserverpb__PutResponse resp = ETCDSERVERPB__PUT_RESPONSE__INIT;
  resp.header = &h;
  reply_packed(call, &resp.base);
}

static void kv_range(keel_grpc_call *call, const uint8_t *msg, size_t len,
                     void *ud) {
  struct grpc_scaffold *s = ud;
  Etcdserverpb__RangeRequest *req =
      etcdserverpb__range_request__unpack(NULL, len, msg);
  if (req == NULL) {
    keel_grpc_call_finish(call, KEEL_GRPC_INVALID_ARGUMENT,
                          "malformed RangeRequest");
    return;
  }
  if (req->range_end.len != 0) {
    etcdserverpb__range_request__free_unpacked(req, NULL);
    keel_grpc_call_finish(call, KEEL_GRPC_UNIMPLEMENTED,
                          "test scaffold: single keys only");
    return;
  }
  struct scaffold_kv *kv = kv_find(s, req->key.data, req->key.len);
  int keys_only = req->keys_only, count_only = req->count_only;
  etcdserverpb__range_request__free_unpacked(req, NULL);

  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  header_fill(s, &h);
  Mvccpb__KeyValue k = MVCCPB__KEY_VALUE__INIT;
  Mvccpb__KeyValue *kp = &k;
  Etcdserverpb__RangeResponse resp = ETCDSERVERPB__RANGE_RESPONSE__INIT;
  resp.header = &h;
  if (kv) {
    resp.count = 1;
    if (!count_only) {
      k.key.data = kv->key;
      k.key.len = kv->key_len;
      if (!keys_only) {
        k.value.data = kv->value;
        k.value.len = kv->value_len;
      }
      k.create_revision = kv->create_rev;
      k.mod_revision = kv->mod_rev;
      k.version = kv->version;
      resp.n_kvs = 1;
      resp.kvs = &kp;
    }
  }
  reply_packed(call, &resp.base);
}

static void status(keel_grpc_call *call, const uint8_t *msg, size_t len,
                   void *ud) {
  (void)msg;
  (void)len;
  struct grpc_scaffold *s = ud;
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  header_fill(s, &h);
  Etcdserverpb__StatusResponse resp = ETCDSERVERPB__STATUS_RESPONSE__INIT;
  resp.header = &h;
  resp.version = "3.4.0";
  resp.dbsize = 4096;
  resp.dbsizeinuse = 4096;
  resp.leader = MEMBER_ID;
  resp.raftindex = (uint64_t)s->revision;
  resp.raftappliedindex = (uint64_t)s->revision;
  resp.raftterm = 2;
  reply_packed(call, &resp.base);
}

/* ---- Echo (BIDI with backpressure) ---- */

struct echo_state {
  uint8_t *pending;
  size_t pending_len;
  int half_closed;
};

static struct echo_state *echo_state(keel_grpc_call *call) {
  struct echo_state *e = keel_grpc_call_user(call);
  if (e == NULL) {
    e = calloc(1, sizeof(*e));
    keel_grpc_call_set_user(call, e);
  }
  return e;
}

static void echo_done(keel_grpc_call *call, int code, const char *m) {
  struct echo_state *e = keel_grpc_call_user(call);
  if (e) {
    free(e->pending);
    free(e);
  }
  keel_grpc_call_finish(call, code, m);
}

static void echo_msg(keel_grpc_call *call, const uint8_t *msg, size_t len,
                     void *ud) {
  (void)ud;
  struct echo_state *e = echo_state(call);
  int rc = keel_grpc_call_send(call, msg, len);
  if (rc == KEEL_EBUSY) {
    /* Hold this one message and stop reading until there is room. */
    e->pending = malloc(len ? len : 1);
    memcpy(e->pending, msg, len);
    e->pending_len = len;
    keel_grpc_call_pause(call);
  } else if (rc != 0) {
    echo_done(call, KEEL_GRPC_INTERNAL, keel_strerror(rc));
  }
}

static void echo_writable(keel_grpc_call *call, void *ud) {
  (void)ud;
  struct echo_state *e = echo_state(call);
  if (e->pending == NULL)
    return;
  if (keel_grpc_call_send(call, e->pending, e->pending_len) != 0)
    return; /* still busy: a later on_writable retries */
  free(e->pending);
  e->pending = NULL;
  if (e->half_closed) {
    echo_done(call, KEEL_GRPC_OK, NULL);
    return;
  }
  keel_grpc_call_resume(call);
}

static void echo_half_close(keel_grpc_call *call, void *ud) {
  (void)ud;
  struct echo_state *e = echo_state(call);
  if (e->pending)
    e->half_closed = 1;
  else
    echo_done(call, KEEL_GRPC_OK, NULL);
}

static void echo_close(keel_grpc_call *call, int reason, void *ud) {
  (void)ud;
  (void)reason;
  echo_done(call, KEEL_GRPC_CANCELLED, NULL);
}

/* ---- Flood (server streaming with backpressure) ---- */

struct flood_state {
  uint32_t count, size, sent;
  uint8_t *buf;
};

static uint32_t get_u32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

static void flood_free(keel_grpc_call *call) {
  struct flood_state *f = keel_grpc_call_user(call);
  free(f->buf);
  free(f);
}

static void flood_pump(keel_grpc_call *call, struct grpc_scaffold *s) {
  struct flood_state *f = keel_grpc_call_user(call);
  while (f->sent < f->count) {
    size_t w = keel_grpc_call_writable(call);
    if (w > s->flood_max_writable_seen)
      s->flood_max_writable_seen = w;
    f->buf[0] = (uint8_t)(f->sent >> 24);
    f->buf[1] = (uint8_t)(f->sent >> 16);
    f->buf[2] = (uint8_t)(f->sent >> 8);
    f->buf[3] = (uint8_t)f->sent;
    int rc = keel_grpc_call_send(call, f->buf, f->size);
    if (rc == KEEL_EBUSY)
      return; /* on_writable resumes */
    if (rc != 0) {
      flood_free(call);
      keel_grpc_call_finish(call, KEEL_GRPC_INTERNAL, keel_strerror(rc));
      return;
    }
    f->sent++;
  }
  flood_free(call);
  keel_grpc_call_finish(call, KEEL_GRPC_OK, NULL);
}

static void flood_msg(keel_grpc_call *call, const uint8_t *msg, size_t len,
                      void *ud) {
  if (len != 8 || get_u32(msg + 4) < 4 || get_u32(msg + 4) > 1 << 20) {
    keel_grpc_call_finish(call, KEEL_GRPC_INVALID_ARGUMENT,
                          "flood: want u32 count, u32 size (4..1 MiB)");
    return;
  }
  struct flood_state *f = calloc(1, sizeof(*f));
  f->count = get_u32(msg);
  f->size = get_u32(msg + 4);
  f->buf = calloc(1, f->size);
  keel_grpc_call_set_user(call, f);
  flood_pump(call, ud);
}

static void flood_writable(keel_grpc_call *call, void *ud) {
  if (keel_grpc_call_user(call))
    flood_pump(call, ud);
}

static void flood_close(keel_grpc_call *call, int reason, void *ud) {
  (void)reason;
  (void)ud;
  flood_free(call);
  keel_grpc_call_finish(call, KEEL_GRPC_CANCELLED, NULL);
}

/* ---- Hang and Later (unary, asynchronous) ---- */

static void hang_msg(keel_grpc_call *call, const uint8_t *msg, size_t len,
                     void *ud) {
  (void)call;
  (void)msg;
  (void)len;
  (void)ud; /* answered only through on_close */
}

static void hang_close(keel_grpc_call *call, int reason, void *ud) {
  (void)ud;
  keel_grpc_call_finish(call, KEEL_GRPC_CANCELLED, keel_strerror(reason));
}

struct later {
  uv_timer_t timer;
  keel_grpc_call *call;
  struct grpc_scaffold *s;
  uint8_t *msg;
  size_t len;
};

static void later_closed(uv_handle_t *h) {
  struct later *lt = h->data;
  free(lt->msg);
  free(lt);
}

static void later_fire(uv_timer_t *t) {
  struct later *lt = t->data;
  /* The call may have ended meanwhile: reply() then just releases it. */
  keel_grpc_call_reply(lt->call, lt->msg, lt->len);
  lt->s->later_pending--;
  uv_close((uv_handle_t *)&lt->timer, later_closed);
}

static void later_msg(keel_grpc_call *call, const uint8_t *msg, size_t len,
                      void *ud) {
  struct grpc_scaffold *s = ud;
  if (len < 4) {
    keel_grpc_call_finish(call, KEEL_GRPC_INVALID_ARGUMENT, "want u32 ms");
    return;
  }
  struct later *lt = calloc(1, sizeof(*lt));
  lt->call = call;
  lt->s = s;
  lt->msg = malloc(len);
  memcpy(lt->msg, msg, len);
  lt->len = len;
  uv_timer_init(s->loop, &lt->timer);
  lt->timer.data = lt;
  s->later_pending++;
  uv_timer_start(&lt->timer, later_fire, get_u32(msg), 0);
}

/* ---- HTTP/1.1 ---- */

static void health(keel_http_request *r, void *ud) {
  (void)ud;
  static const char body[] = "{\"health\":\"true\",\"reason\":\"\"}\n";
  keel_http_respond(r, 200, "application/json", body, sizeof(body) - 1, NULL);
}

static void echo_http(keel_http_request *r, void *ud) {
  (void)ud;
  size_t n;
  /* The body is passed back as it is, pointing into the request: the
   * request must stay valid until the response is written (a regression
   * test: keel_http_respond() used to free it first, found by fuzz_grpc). */
  const uint8_t *b = keel_http_request_body(r, &n);
  keel_http_respond(r, 200, "application/octet-stream", b, n, NULL);
}

/* GET /later: answered from a timer callback (an asynchronous handler). */
struct later_http {
  uv_timer_t timer;
  keel_http_request *req;
};

static void later_http_closed(uv_handle_t *h) {
  free(h->data);
}

static void later_http_fire(uv_timer_t *t) {
  struct later_http *lh = t->data;
  static const char body[] = "later\n";
  keel_http_respond(lh->req, 200, "text/plain", body, sizeof(body) - 1, NULL);
  uv_close((uv_handle_t *)&lh->timer, later_http_closed);
}

static void later_http(keel_http_request *r, void *ud) {
  struct grpc_scaffold *s = ud;
  struct later_http *lh = calloc(1, sizeof(*lh));
  lh->req = r;
  uv_timer_init(s->loop, &lh->timer);
  lh->timer.data = lh;
  uv_timer_start(&lh->timer, later_http_fire, 10, 0);
}

/* GET /big: a 32 MiB body, for the slow-client (stall) timeout. */
static void big_http(keel_http_request *r, void *ud) {
  (void)ud;
  size_t n = 32u * 1024 * 1024;
  char *body = malloc(n);
  memset(body, 'b', n);
  keel_http_respond(r, 200, "application/octet-stream", body, n, NULL);
  free(body);
}

int grpc_scaffold_register(struct grpc_scaffold *s, uv_loop_t *loop,
                           keel_client_listener *l) {
  memset(s, 0, sizeof(*s));
  s->loop = loop;
  s->revision = 1;
  keel_grpc_server *g = keel_client_listener_grpc(l);
  const struct keel_grpc_method methods[] = {
      {"/etcdserverpb.KV/Put", KEEL_GRPC_UNARY, s, kv_put, NULL, NULL, NULL},
      {"/etcdserverpb.KV/Range", KEEL_GRPC_UNARY, s, kv_range, NULL, NULL,
       NULL},
      {"/etcdserverpb.Maintenance/Status", KEEL_GRPC_UNARY, s, status, NULL,
       NULL, NULL},
      {"/keel.test.Echo/Echo", KEEL_GRPC_BIDI, s, echo_msg, echo_half_close,
       echo_close, echo_writable},
      {"/keel.test.Echo/Flood", KEEL_GRPC_SERVER_STREAM, s, flood_msg, NULL,
       flood_close, flood_writable},
      {"/keel.test.Echo/Hang", KEEL_GRPC_UNARY, s, hang_msg, NULL, hang_close,
       NULL},
      {"/keel.test.Echo/Later", KEEL_GRPC_UNARY, s, later_msg, NULL, NULL,
       NULL},
  };
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
    int rc = keel_grpc_server_register(g, &methods[i]);
    if (rc != 0)
      return rc;
  }
  int rc = keel_client_listener_route(l, "GET", "/health", health, s);
  if (rc == 0)
    rc = keel_client_listener_route(l, "POST", "/echo", echo_http, s);
  if (rc == 0)
    rc = keel_client_listener_route(l, "GET", "/later", later_http, s);
  if (rc == 0)
    rc = keel_client_listener_route(l, "GET", "/big", big_http, s);
  return rc;
}

void grpc_scaffold_free(struct grpc_scaffold *s) {
  for (size_t i = 0; i < s->n_kvs; i++) {
    free(s->kvs[i].key);
    free(s->kvs[i].value);
  }
  s->n_kvs = 0;
}

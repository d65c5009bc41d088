/* keel_client.c — libkeel's core: the endpoint table, the request engine
 * (attempt, classify, back off, fail over), and the unary APIs (KV, Lease,
 * Cluster, Maintenance) with their plain-C <-> protobuf conversion.
 *
 * A request (struct op) lives from keel_X() to its callback:
 *
 *   start -> attempt: pick endpoint (breaker) -> unary gRPC call
 *     -> OK: decode, callback, free
 *     -> failed: classify (keel_policy.c)
 *          FINAL, or MAYBE-applied on an unsafe request, or out of attempts
 *          or deadline: callback with the error, free
 *          otherwise: timer(full-jitter backoff) -> attempt
 *
 * Invariants: an op is on c->ops from start to callback; at most one gRPC
 * call per op is in flight, and never while its backoff timer runs; the
 * callback runs exactly once; an unsafe op is never sent twice unless the
 * first attempt certainly was not applied (KEEL_OUTCOME_NOT_APPLIED).
 * Endpoint indexes are only meaningful within one endpoint generation
 * (c->gen); a refresh bumps it and late results no longer touch breakers.
 */
#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_internal.h"

/* ------------------------------------------------------------------ */
/* Arenas                                                              */
/* ------------------------------------------------------------------ */

struct blk {
  struct blk *next;
  alignas(max_align_t) unsigned char data[];
};
struct keel_arena {
  struct blk *blocks;
  ProtobufCMessage *pb;
  int kept;
  alignas(max_align_t) unsigned char first[];
};

void *keel__resp_new(size_t n) {
  struct keel_arena *a = calloc(1, sizeof(*a) + n);
  return a ? a->first : NULL;
}

struct keel_arena *keel__arena_of(const void *resp) {
  return (struct keel_arena *)((const unsigned char *)resp -
                               offsetof(struct keel_arena, first));
}

void *keel__arena_alloc(struct keel_arena *a, size_t n) {
  struct blk *b = calloc(1, sizeof(*b) + (n ? n : 1));
  if (b == NULL)
    return NULL;
  b->next = a->blocks;
  a->blocks = b;
  return b->data;
}

void keel__arena_own_pb(struct keel_arena *a, ProtobufCMessage *pb) {
  assert(a->pb == NULL);
  a->pb = pb;
}

void keel__arena_free(struct keel_arena *a) {
  if (a == NULL)
    return;
  while (a->blocks) {
    struct blk *n = a->blocks->next;
    free(a->blocks);
    a->blocks = n;
  }
  if (a->pb)
    protobuf_c_message_free_unpacked(a->pb, NULL);
  free(a);
}

int keel__arena_kept(struct keel_arena *a) {
  return a->kept;
}

void *keel_resp_keep(const void *resp) {
  if (resp == NULL)
    return NULL;
  keel__arena_of(resp)->kept = 1;
  return (void *)resp;
}

void keel_resp_free(const void *resp) {
  if (resp)
    keel__arena_free(keel__arena_of(resp));
}

/* ------------------------------------------------------------------ */
/* Client and endpoints                                                */
/* ------------------------------------------------------------------ */

void keel_config_default(struct keel_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->request_timeout_ms = 5000;
  cfg->dial_timeout_ms = 2000;
  cfg->max_attempts = 5;
  cfg->backoff_base_ms = 25;
  cfg->backoff_max_ms = 1000;
  cfg->breaker_failures = 3;
  cfg->breaker_cooldown_ms = 1000;
  cfg->max_pending = 10000;
  cfg->max_watchers = 10000;
  cfg->max_keepalives = 10000;
  cfg->max_recv_msg_bytes = 64u << 20;
  cfg->stream_probe_ms = 5000;
  cfg->attempt_timeout_ms = 2000;
}

/* "host:port" or "http://host:port" (trailing '/' allowed). */
static int parse_endpoint(const char *s, struct keel_endpoint *ep) {
  if (s == NULL)
    return -EINVAL;
  if (strncmp(s, "http://", 7) == 0)
    s += 7;
  else if (strstr(s, "://"))
    return -EINVAL; /* https and others: no TLS in libkeel yet */
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s)
    return -EINVAL;
  size_t hl = (size_t)(colon - s);
  const char *h = s;
  if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  if (hl >= sizeof(ep->host))
    return -EINVAL;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || (*end && strcmp(end, "/") != 0) || port <= 0 ||
      port > 65535)
    return -EINVAL;
  memcpy(ep->host, h, hl);
  ep->host[hl] = 0;
  ep->port = (int)port;
  snprintf(ep->name, sizeof(ep->name), "%s:%d", ep->host, ep->port);
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  if (strcmp(ep->host, "localhost") != 0 &&
      uv_ip4_addr(ep->host, 0, &a4) != 0 && uv_ip6_addr(ep->host, 0, &a6) != 0)
    return -EINVAL;
  return 0;
}

static int build_endpoints(keel_client *c, const char *const *list, size_t n,
                           struct keel_endpoint **out) {
  if (n == 0 || n > KEEL_MAX_ENDPOINTS || list == NULL)
    return -EINVAL;
  struct keel_endpoint *eps = calloc(n, sizeof(*eps));
  if (eps == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (parse_endpoint(list[i], &eps[i]) != 0) {
      free(eps);
      return -EINVAL;
    }
    keel_breaker_init(&eps[i].breaker, c->cfg.breaker_failures,
                      c->cfg.breaker_cooldown_ms);
  }
  *out = eps;
  return 0;
}

int keel_client_new(uv_loop_t *loop, const struct keel_config *cfg,
                    keel_client **out) {
  if (loop == NULL || cfg == NULL || out == NULL || cfg->max_attempts == 0 ||
      cfg->max_pending == 0 || cfg->request_timeout_ms == 0)
    return -EINVAL;
  keel_client *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return -ENOMEM;
  c->loop = loop;
  c->cfg = *cfg;
  c->cfg.endpoints = NULL;
  int rc = build_endpoints(c, cfg->endpoints, cfg->n_endpoints, &c->eps);
  if (rc != 0) {
    free(c);
    return rc;
  }
  c->n_eps = cfg->n_endpoints;
  c->rnd = uv_hrtime() ^ (uint64_t)(uintptr_t)c;
  uv_idle_init(loop, &c->sq_idle);
  uv_check_init(loop, &c->sq_check);
  c->sq_idle.data = c->sq_check.data = c;
  c->handles += 2;
  keel__streams_init(c);
  *out = c;
  return 0;
}

uint64_t keel__now(keel_client *c) {
  uv_update_time(c->loop);
  return uv_now(c->loop);
}

size_t keel_endpoint_count(const keel_client *c) {
  return c->n_eps;
}
const char *keel_endpoint_name(const keel_client *c, size_t i) {
  return i < c->n_eps ? c->eps[i].name : "";
}
int keel_endpoint_breaker_state(const keel_client *c, size_t i) {
  return i < c->n_eps ? (int)c->eps[i].breaker.state : -1;
}

int keel__pick(keel_client *c) {
  uint64_t now = keel__now(c);
  for (size_t k = 0; k < c->n_eps; k++) {
    size_t i = (c->cur + k) % c->n_eps;
    if (keel_breaker_allow(&c->eps[i].breaker, now)) {
      c->cur = i;
      return (int)i;
    }
  }
  return -1;
}

void keel__ep_failed(keel_client *c, int i) {
  if (i < 0 || (size_t)i >= c->n_eps)
    return;
  keel_breaker_failure(&c->eps[i].breaker, keel__now(c));
  if (c->cur == (size_t)i)
    c->cur = (c->cur + 1) % c->n_eps;
}

void keel__ep_ok(keel_client *c, int i) {
  if (i >= 0 && (size_t)i < c->n_eps)
    keel_breaker_success(&c->eps[i].breaker);
}

static void on_channel_freed(void *ud) {
  keel_client *c = ud;
  assert(c->handles > 0);
  c->handles--;
  if (c->closing && c->handles == 0 && c->ops == NULL) {
    void (*cb)(void *) = c->close_cb;
    void *cud = c->close_ud;
    free(c->eps);
    free(c);
    if (cb)
      cb(cud);
  }
}

void keel__handle_closed(uv_handle_t *h) {
  on_channel_freed(h->data);
}

static void channel_drop(keel_client *c, struct keel_endpoint *ep) {
  if (ep->ch) {
    keel_grpc_channel *ch = ep->ch;
    ep->ch = NULL;
    keel_grpc_channel_close(ch, on_channel_freed, c);
  }
}

keel_grpc_channel *keel__channel(keel_client *c, int i, int *err) {
  struct keel_endpoint *ep = &c->eps[i];
  if (ep->ch && keel_grpc_channel_state(ep->ch) == KEEL_GRPC_CHANNEL_DEAD)
    channel_drop(c, ep);
  if (ep->ch == NULL) {
    struct keel_grpc_channel_config cc;
    keel_grpc_channel_config_default(&cc);
    cc.connect_timeout_ms = c->cfg.dial_timeout_ms;
    cc.max_recv_msg_bytes = c->cfg.max_recv_msg_bytes;
    int rc = keel_grpc_channel_new(c->loop, ep->host, ep->port, &cc, &ep->ch);
    if (rc != 0) {
      ep->ch = NULL;
      *err = rc;
      return NULL;
    }
    c->handles++;
  }
  return ep->ch;
}

/* ------------------------------------------------------------------ */
/* The request engine                                                  */
/* ------------------------------------------------------------------ */

typedef void *(*decode_fn)(const uint8_t *b, size_t n);

struct op {
  struct op *next, *prev;
  keel_client *c;
  const char *method;
  uint8_t *req;
  size_t req_len;
  int safe;
  int fixed_ep; /* -1: any endpoint with failover */
  uint64_t deadline;
  uint32_t attempts;
  int ep;
  uint64_t gen;
  decode_fn decode;
  keel_cb cb;
  void *ud;
  void (*post)(keel_client *c, const void *resp); /* before cb, on success */
  uv_timer_t timer;
  struct op *qnext; /* start queue (sq_check_cb) */
  int queued;
  uint8_t *resp; /* the response message of the attempt in flight */
  size_t resp_len;
  int resp_count;
  int grpc;
  char msg[320];
  char ep_name[64];
};

static void op_freed(uv_handle_t *h) {
  struct op *op = h->data;
  keel_client *c = op->c;
  free(op);
  on_channel_freed(c);
}

static void finish(struct op *op, int err, const void *resp) {
  keel_client *c = op->c;
  if (op->prev)
    op->prev->next = op->next;
  else
    c->ops = op->next;
  if (op->next)
    op->next->prev = op->prev;
  op->next = op->prev = NULL;
  c->n_pending--;
  if (err == 0 && op->post)
    op->post(c, resp);
  struct keel_result res = {err, op->grpc,    op->msg,
                            0,   op->ep_name, op->attempts};
  if (err == KEEL_ECANCELED && c->closing)
    res.message = "client closed";
  op->cb(&res, err == 0 ? resp : NULL, op->ud);
  if (resp && !keel__arena_kept(keel__arena_of(resp)))
    keel_resp_free(resp);
  free(op->req);
  op->req = NULL;
  /* The client's own handle count holds it alive until the timer closed. */
  op->timer.data = op;
  uv_close((uv_handle_t *)&op->timer, op_freed);
}

static void attempt(struct op *op);

/* Attempts start from a check handle (after the loop's poll phase), never
 * straight from a timer or from keel_X: by then the loop has read any
 * EOF/RST already waiting on an idle connection, so a request is not
 * written into a connection whose server is known dead — it goes to a new
 * connection, fails before anything was sent (certainly not applied) and fails
 * over, instead of ending "outcome unknown". The idle handle keeps that
 * poll from blocking. */
static void sq_idle_cb(uv_idle_t *h) {
  (void)h;
}

static void sq_check_cb(uv_check_t *h) {
  keel_client *c = h->data;
  struct op *q = c->sq_head;
  c->sq_head = c->sq_tail = NULL;
  uv_idle_stop(&c->sq_idle);
  uv_check_stop(&c->sq_check);
  while (q) {
    struct op *next = q->qnext;
    q->qnext = NULL;
    q->queued = 0;
    attempt(q);
    q = next;
  }
}

static void enqueue(struct op *op) {
  keel_client *c = op->c;
  assert(!op->queued);
  op->queued = 1;
  op->qnext = NULL;
  if (c->sq_tail)
    c->sq_tail->qnext = op;
  else
    c->sq_head = op;
  c->sq_tail = op;
  uv_idle_start(&c->sq_idle, sq_idle_cb);
  uv_check_start(&c->sq_check, sq_check_cb);
}

static void on_retry_timer(uv_timer_t *t) {
  enqueue(t->data);
}

static void attempt_failed(struct op *op, struct keel_class cl) {
  keel_client *c = op->c;
  if (op->gen == c->gen) {
    if (cl.endpoint_failure)
      keel__ep_failed(c, op->ep);
    else if (op->ep >= 0)
      keel__ep_ok(c, op->ep);
  }
  if (c->closing) {
    finish(op, KEEL_ECANCELED, NULL);
    return;
  }
  if (cl.outcome == KEEL_OUTCOME_FINAL ||
      (cl.outcome == KEEL_OUTCOME_MAYBE && !op->safe)) {
    finish(op, keel_final_error(&cl, op->safe), NULL);
    return;
  }
  uint64_t now = keel__now(c);
  uint64_t delay =
      keel_backoff_delay(c->cfg.backoff_base_ms, c->cfg.backoff_max_ms,
                         op->attempts, keel_rand_next(&c->rnd));
  if (op->attempts >= c->cfg.max_attempts || now + delay >= op->deadline) {
    size_t l = strlen(op->msg);
    snprintf(op->msg + l, sizeof(op->msg) - l, " (after %u attempts)",
             op->attempts);
    finish(op, cl.err, NULL);
    return;
  }
  uv_timer_start(&op->timer, on_retry_timer, delay, 0);
}

static void on_unary(int code, const char *message,
                     enum keel_grpc_delivery delivery, const uint8_t *resp,
                     size_t len, void *ud) {
  struct op *op = ud;
  keel_client *c = op->c;
  op->grpc = code;
  snprintf(op->msg, sizeof(op->msg), "%s", message ? message : "");
  if (code == KEEL_GRPC_OK) {
    if (op->gen == c->gen)
      keel__ep_ok(c, op->ep);
    void *r = op->decode(resp, len);
    if (r == NULL) {
      snprintf(op->msg, sizeof(op->msg), "malformed %s response from %s",
               op->method, op->ep_name);
      finish(op, KEEL_EBADMSG, NULL);
      return;
    }
    finish(op, 0, r);
    return;
  }
  struct keel_class cl = keel_classify(code, message, delivery);
  if (code == KEEL_GRPC_DEADLINE_EXCEEDED && keel__now(c) < op->deadline) {
    /* Only the attempt's own time ran out (a safe request): the endpoint
     * is slow or stuck (e.g. forwarding to a leader that is gone, or a
     * connect that hangs); applied or not as far as it got. */
    cl.outcome = keel_delivery_outcome(delivery);
    cl.endpoint_failure = 1;
  }
  if (code == KEEL_GRPC_CANCELLED && !c->closing) {
    /* Channel closed under us (endpoint list refreshed). */
    cl.err = KEEL_EUNAVAILABLE;
    cl.outcome = keel_delivery_outcome(delivery);
  }
  attempt_failed(op, cl);
}

/* Unary calls go through keel_grpc_client_start rather than the
 * transport's unary helper so they can carry "hasleader": a member that
 * lost its leader then answers "no leader" at once (certainly not applied,
 * so any request fails over) instead of letting the request time out. */
static const char *const unary_md[] = {"hasleader", "true", NULL};

static void u_on_message(keel_grpc_client_call *call, const uint8_t *msg,
                         size_t len, void *ud) {
  struct op *op = ud;
  (void)call;
  if (op->resp_count++ > 0)
    return; /* a unary method answers once; extra messages are ignored */
  op->resp = malloc(len ? len : 1);
  if (op->resp) {
    memcpy(op->resp, msg, len);
    op->resp_len = len;
  }
}

static void u_on_status(keel_grpc_client_call *call, int code,
                        const char *message, void *ud) {
  struct op *op = ud;
  enum keel_grpc_delivery delivery = keel_grpc_client_delivery(call);
  uint8_t *resp = op->resp;
  size_t len = op->resp_len;
  int count = op->resp_count;
  op->resp = NULL;
  op->resp_len = 0;
  op->resp_count = 0;
  if (code == KEEL_GRPC_OK && (count != 1 || resp == NULL)) {
    code = count == 0 ? KEEL_GRPC_INTERNAL : code;
    message = count == 0 ? "no response message" : message;
    if (resp == NULL && count > 0) {
      code = KEEL_GRPC_RESOURCE_EXHAUSTED;
      message = "out of memory for the response";
    }
  }
  on_unary(code, message, delivery, resp, len, op);
  free(resp);
}

static int unary_start(struct op *op, keel_grpc_channel *ch, uint64_t tmo) {
  static const struct keel_grpc_client_callbacks cbs = {u_on_message,
                                                        u_on_status, NULL};
  keel_grpc_client_call *call;
  int rc =
      keel_grpc_client_start(ch, op->method, tmo, unary_md, &cbs, op, &call);
  if (rc != 0)
    return rc;
  rc = keel_grpc_client_send(call, op->req, op->req_len);
  if (rc == 0)
    rc = keel_grpc_client_close_send(call);
  if (rc != 0)
    keel_grpc_client_cancel(call); /* on_status reports it */
  return 0;
}

/* A safe request gives each attempt at most attempt_timeout_ms, so one
 * stuck endpoint does not eat the whole deadline; an unsafe one gets all
 * the remaining time (its timeout would end it as unknown anyway). */
static uint64_t attempt_timeout(const struct op *op, uint64_t now) {
  uint64_t left = op->deadline - now;
  uint64_t per = op->c->cfg.attempt_timeout_ms;
  if (op->safe && per > 0 && per < left)
    return per;
  return left;
}

static void attempt(struct op *op) {
  keel_client *c = op->c;
  if (c->closing) {
    finish(op, KEEL_ECANCELED, NULL);
    return;
  }
  uint64_t now = keel__now(c);
  if (now >= op->deadline) {
    op->grpc = KEEL_GRPC_DEADLINE_EXCEEDED;
    snprintf(op->msg, sizeof(op->msg), "deadline exceeded after %u attempts",
             op->attempts);
    finish(op, KEEL_ETIMEOUT, NULL);
    return;
  }
  op->attempts++;
  op->gen = c->gen;
  int ep = op->fixed_ep;
  if (ep >= 0 && (size_t)ep >= c->n_eps)
    ep = -1;
  if (op->fixed_ep < 0)
    ep = keel__pick(c);
  op->ep = ep;
  if (ep < 0) {
    op->grpc = -1;
    op->ep_name[0] = 0;
    int l = snprintf(op->msg, sizeof(op->msg),
                     "no endpoint available (circuit breakers open):");
    for (size_t i = 0; i < c->n_eps && l < (int)sizeof(op->msg); i++)
      l += snprintf(op->msg + l, sizeof(op->msg) - (size_t)l, " %s",
                    c->eps[i].name);
    struct keel_class cl = {KEEL_EUNAVAILABLE, KEEL_OUTCOME_NOT_APPLIED, 0};
    attempt_failed(op, cl);
    return;
  }
  snprintf(op->ep_name, sizeof(op->ep_name), "%s", c->eps[ep].name);
  int err = 0;
  keel_grpc_channel *ch = keel__channel(c, ep, &err);
  if (ch != NULL)
    err = unary_start(op, ch, attempt_timeout(op, now));
  if (err == 0)
    return;
  op->grpc = -1;
  snprintf(op->msg, sizeof(op->msg), "%s: %s", op->ep_name, keel_strerror(err));
  if (err == KEEL_EUNAVAILABLE || err == KEEL_EBUSY) {
    /* Refused locally: nothing was sent. */
    struct keel_class cl = {KEEL_EUNAVAILABLE, KEEL_OUTCOME_NOT_APPLIED,
                            err == KEEL_EUNAVAILABLE};
    attempt_failed(op, cl);
    return;
  }
  finish(op, err, NULL);
}

/* Takes ownership of req (malloc'd packed bytes) in every case. */
static int op_start(keel_client *c, const char *method, uint8_t *req,
                    size_t len, int safe, int fixed_ep,
                    const struct keel_opts *opts, decode_fn decode, keel_cb cb,
                    void *ud, void (*post)(keel_client *, const void *)) {
  if (cb == NULL) {
    free(req);
    return -EINVAL;
  }
  if (c->closing) {
    free(req);
    return KEEL_ECANCELED;
  }
  if (fixed_ep >= 0 && (size_t)fixed_ep >= c->n_eps) {
    free(req);
    return -EINVAL;
  }
  if (c->n_pending >= c->cfg.max_pending) {
    free(req);
    return KEEL_EBUSY;
  }
  struct op *op = calloc(1, sizeof(*op));
  if (op == NULL) {
    free(req);
    return -ENOMEM;
  }
  op->c = c;
  op->method = method;
  op->req = req;
  op->req_len = len;
  op->safe = safe || (opts && opts->idempotent);
  op->fixed_ep = fixed_ep;
  uint64_t t =
      opts && opts->timeout_ms ? opts->timeout_ms : c->cfg.request_timeout_ms;
  op->deadline = keel__now(c) + t;
  op->decode = decode;
  op->cb = cb;
  op->ud = ud;
  op->post = post;
  op->ep = -1;
  uv_timer_init(c->loop, &op->timer);
  op->timer.data = op;
  c->handles++;
  op->next = c->ops;
  if (c->ops)
    c->ops->prev = op;
  c->ops = op;
  c->n_pending++;
  /* The first attempt runs from the loop, so cb never runs inside keel_X. */
  enqueue(op);
  return 0;
}

/* Packs a message into a fresh buffer for op_start. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*len ? *len : 1);
  if (b)
    protobuf_c_message_pack(m, b);
  return b;
}

#define KEEL_MAX_SEND (2u << 20)

static int send_msg(keel_client *c, const char *method,
                    const ProtobufCMessage *m, int safe, int fixed_ep,
                    const struct keel_opts *opts, decode_fn decode, keel_cb cb,
                    void *ud, void (*post)(keel_client *, const void *)) {
  size_t len;
  uint8_t *b = pack(m, &len);
  if (b == NULL)
    return -ENOMEM;
  if (len > KEEL_MAX_SEND) {
    free(b);
    return -EINVAL;
  }
  return op_start(c, method, b, len, safe, fixed_ep, opts, decode, cb, ud,
                  post);
}

void keel_client_close(keel_client *c, void (*cb)(void *ud), void *ud) {
  assert(!c->closing);
  c->closing = 1;
  c->close_cb = cb;
  c->close_ud = ud;
  c->handles++; /* held until the end of this function */
  keel__watch_close_all(c);
  keel__keepalive_close_all(c);
  /* Ops waiting for a retry end now; in-flight ones end when their channel
   * closes below (CANCELLED -> KEEL_ECANCELED). */
  struct op *op = c->ops;
  c->sq_head = c->sq_tail = NULL;
  uv_close((uv_handle_t *)&c->sq_idle, keel__handle_closed);
  uv_close((uv_handle_t *)&c->sq_check, keel__handle_closed);
  while (op) {
    struct op *next = op->next;
    if (op->queued || uv_is_active((uv_handle_t *)&op->timer)) {
      op->queued = 0;
      uv_timer_stop(&op->timer);
      finish(op, KEEL_ECANCELED, NULL);
    }
    op = next;
  }
  for (size_t i = 0; i < c->n_eps; i++)
    channel_drop(c, &c->eps[i]);
  on_channel_freed(c);
}

/* ------------------------------------------------------------------ */
/* Conversion helpers                                                  */
/* ------------------------------------------------------------------ */

void keel__header(struct keel_header *h,
                  const Etcdserverpb__ResponseHeader *p) {
  memset(h, 0, sizeof(*h));
  if (p) {
    h->cluster_id = p->cluster_id;
    h->member_id = p->member_id;
    h->revision = p->revision;
    h->raft_term = p->raft_term;
  }
}

void keel__kv(struct keel_kv *o, const Mvccpb__KeyValue *kv) {
  o->key = kv->key.data;
  o->key_len = kv->key.len;
  o->value = kv->value.data;
  o->value_len = kv->value.len;
  o->create_revision = kv->create_revision;
  o->mod_revision = kv->mod_revision;
  o->version = kv->version;
  o->lease = kv->lease;
}

static struct keel_kv *kvs_conv(struct keel_arena *a, Mvccpb__KeyValue **kvs,
                                size_t n) {
  struct keel_kv *o = keel__arena_alloc(a, n * sizeof(*o));
  if (o)
    for (size_t i = 0; i < n; i++)
      keel__kv(&o[i], kvs[i]);
  return o;
}

size_t keel_prefix_end(const uint8_t *key, size_t len, uint8_t *end) {
  size_t n = len;
  while (n > 0 && key[n - 1] == 0xff)
    n--;
  if (n == 0)
    return 0;
  memcpy(end, key, n);
  end[n - 1]++;
  return n;
}

#define BIN(p, l) ((ProtobufCBinaryData){(l), (uint8_t *)(uintptr_t)(p)})

static void range_to_pb(Etcdserverpb__RangeRequest *m,
                        const struct keel_range_req *r) {
  etcdserverpb__range_request__init(m);
  m->key = BIN(r->key, r->key_len);
  m->range_end = BIN(r->range_end, r->range_end_len);
  m->limit = r->limit;
  m->revision = r->revision;
  m->sort_order = (Etcdserverpb__RangeRequest__SortOrder)r->sort_order;
  m->sort_target = (Etcdserverpb__RangeRequest__SortTarget)r->sort_target;
  m->serializable = !!r->serializable;
  m->keys_only = !!r->keys_only;
  m->count_only = !!r->count_only;
  m->min_mod_revision = r->min_mod_revision;
  m->max_mod_revision = r->max_mod_revision;
  m->min_create_revision = r->min_create_revision;
  m->max_create_revision = r->max_create_revision;
}

static void put_to_pb(Etcdserverpb__PutRequest *m,
                      const struct keel_put_req *r) {
  etcdserverpb__put_request__init(m);
  m->key = BIN(r->key, r->key_len);
  m->value = BIN(r->value, r->value_len);
  m->lease = r->lease;
  m->prev_kv = !!r->prev_kv;
  m->ignore_value = !!r->ignore_value;
  m->ignore_lease = !!r->ignore_lease;
}

static void del_to_pb(Etcdserverpb__DeleteRangeRequest *m,
                      const struct keel_delete_req *r) {
  etcdserverpb__delete_range_request__init(m);
  m->key = BIN(r->key, r->key_len);
  m->range_end = BIN(r->range_end, r->range_end_len);
  m->prev_kv = !!r->prev_kv;
}

/* Builds a TxnRequest (and nested ones) in arena a. */
static int txn_to_pb(struct keel_arena *a, Etcdserverpb__TxnRequest *m,
                     const struct keel_txn_req *r, int depth);

static int ops_to_pb(struct keel_arena *a, Etcdserverpb__RequestOp ***out,
                     const struct keel_op *ops, size_t n, int depth) {
  if (n && ops == NULL)
    return -EINVAL;
  Etcdserverpb__RequestOp **v = keel__arena_alloc(a, n * sizeof(*v));
  if (v == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    Etcdserverpb__RequestOp *o = keel__arena_alloc(a, sizeof(*o));
    if (o == NULL)
      return -ENOMEM;
    etcdserverpb__request_op__init(o);
    v[i] = o;
    switch (ops[i].type) {
    case KEEL_OP_RANGE:
      o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
      if (!(o->request_range = keel__arena_alloc(a, sizeof(*o->request_range))))
        return -ENOMEM;
      range_to_pb(o->request_range, &ops[i].u.range);
      break;
    case KEEL_OP_PUT:
      o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
      if (!(o->request_put = keel__arena_alloc(a, sizeof(*o->request_put))))
        return -ENOMEM;
      put_to_pb(o->request_put, &ops[i].u.put);
      break;
    case KEEL_OP_DELETE:
      o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
      if (!(o->request_delete_range =
                keel__arena_alloc(a, sizeof(*o->request_delete_range))))
        return -ENOMEM;
      del_to_pb(o->request_delete_range, &ops[i].u.del);
      break;
    case KEEL_OP_TXN:
      o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
      if (ops[i].u.txn == NULL)
        return -EINVAL;
      if (!(o->request_txn = keel__arena_alloc(a, sizeof(*o->request_txn))))
        return -ENOMEM;
      int rc = txn_to_pb(a, o->request_txn, ops[i].u.txn, depth + 1);
      if (rc)
        return rc;
      break;
    default:
      return -EINVAL;
    }
  }
  *out = v;
  return 0;
}

static int txn_to_pb(struct keel_arena *a, Etcdserverpb__TxnRequest *m,
                     const struct keel_txn_req *r, int depth) {
  if (depth > 16)
    return -EINVAL;
  etcdserverpb__txn_request__init(m);
  if (r->n_compares && r->compares == NULL)
    return -EINVAL;
  m->n_compare = r->n_compares;
  m->compare = keel__arena_alloc(a, r->n_compares * sizeof(*m->compare));
  if (m->compare == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < r->n_compares; i++) {
    const struct keel_compare *k = &r->compares[i];
    Etcdserverpb__Compare *p = keel__arena_alloc(a, sizeof(*p));
    if (p == NULL)
      return -ENOMEM;
    etcdserverpb__compare__init(p);
    p->result = (Etcdserverpb__Compare__CompareResult)k->result;
    p->target = (Etcdserverpb__Compare__CompareTarget)k->target;
    p->key = BIN(k->key, k->key_len);
    p->range_end = BIN(k->range_end, k->range_end_len);
    switch (k->target) {
    case KEEL_CMP_VERSION:
      p->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
      p->version = k->number;
      break;
    case KEEL_CMP_CREATE:
      p->target_union_case =
          ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
      p->create_revision = k->number;
      break;
    case KEEL_CMP_MOD:
      p->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
      p->mod_revision = k->number;
      break;
    case KEEL_CMP_VALUE:
      p->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
      p->value = BIN(k->value, k->value_len);
      break;
    case KEEL_CMP_LEASE:
      p->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
      p->lease = k->number;
      break;
    default:
      return -EINVAL;
    }
    m->compare[i] = p;
  }
  int rc = ops_to_pb(a, &m->success, r->success, r->n_success, depth);
  if (rc)
    return rc;
  m->n_success = r->n_success;
  rc = ops_to_pb(a, &m->failure, r->failure, r->n_failure, depth);
  if (rc)
    return rc;
  m->n_failure = r->n_failure;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Decoders: protobuf -> plain structs in a response arena             */
/* ------------------------------------------------------------------ */

#define UNPACK(T, fn, b, n) ((T *)fn##__unpack(NULL, (n), (b)))

static void *resp_with_pb(size_t size, ProtobufCMessage *pb) {
  if (pb == NULL)
    return NULL;
  void *r = keel__resp_new(size);
  if (r == NULL) {
    protobuf_c_message_free_unpacked(pb, NULL);
    return NULL;
  }
  keel__arena_own_pb(keel__arena_of(r), pb);
  return r;
}

static int range_conv(struct keel_arena *a, struct keel_range_resp *o,
                      const Etcdserverpb__RangeResponse *m) {
  keel__header(&o->header, m->header);
  o->kvs = kvs_conv(a, m->kvs, m->n_kvs);
  o->n_kvs = m->n_kvs;
  o->more = m->more;
  o->count = m->count;
  return o->kvs ? 0 : -ENOMEM;
}

static int put_conv(struct keel_arena *a, struct keel_put_resp *o,
                    const Etcdserverpb__PutResponse *m) {
  keel__header(&o->header, m->header);
  if (m->prev_kv) {
    struct keel_kv *kv = keel__arena_alloc(a, sizeof(*kv));
    if (kv == NULL)
      return -ENOMEM;
    keel__kv(kv, m->prev_kv);
    o->prev_kv = kv;
  }
  return 0;
}

static int del_conv(struct keel_arena *a, struct keel_delete_resp *o,
                    const Etcdserverpb__DeleteRangeResponse *m) {
  keel__header(&o->header, m->header);
  o->deleted = m->deleted;
  o->prev_kvs = kvs_conv(a, m->prev_kvs, m->n_prev_kvs);
  o->n_prev_kvs = m->n_prev_kvs;
  return o->prev_kvs ? 0 : -ENOMEM;
}

static int txn_conv(struct keel_arena *a, struct keel_txn_resp *o,
                    const Etcdserverpb__TxnResponse *m) {
  keel__header(&o->header, m->header);
  o->succeeded = m->succeeded;
  struct keel_op_resp *v = keel__arena_alloc(a, m->n_responses * sizeof(*v));
  if (v == NULL)
    return -ENOMEM;
  o->responses = v;
  o->n_responses = m->n_responses;
  for (size_t i = 0; i < m->n_responses; i++) {
    const Etcdserverpb__ResponseOp *r = m->responses[i];
    int rc = -ENOMEM;
    switch (r->response_case) {
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE: {
      struct keel_range_resp *x = keel__arena_alloc(a, sizeof(*x));
      v[i].type = KEEL_OP_RANGE;
      v[i].u.range = x;
      rc = x ? range_conv(a, x, r->response_range) : -ENOMEM;
      break;
    }
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT: {
      struct keel_put_resp *x = keel__arena_alloc(a, sizeof(*x));
      v[i].type = KEEL_OP_PUT;
      v[i].u.put = x;
      rc = x ? put_conv(a, x, r->response_put) : -ENOMEM;
      break;
    }
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE: {
      struct keel_delete_resp *x = keel__arena_alloc(a, sizeof(*x));
      v[i].type = KEEL_OP_DELETE;
      v[i].u.del = x;
      rc = x ? del_conv(a, x, r->response_delete_range) : -ENOMEM;
      break;
    }
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN: {
      struct keel_txn_resp *x = keel__arena_alloc(a, sizeof(*x));
      v[i].type = KEEL_OP_TXN;
      v[i].u.txn = x;
      rc = x ? txn_conv(a, x, r->response_txn) : -ENOMEM;
      break;
    }
    default:
      rc = -EINVAL; /* a response op with nothing set: malformed */
      break;
    }
    if (rc)
      return rc;
  }
  return 0;
}

/* DEC(name, RespT, PbT, pbfn, body): defines name(bytes) -> RespT* where
 * body fills `o` from `m` (arena `a`) and evaluates to 0 or an error. */
#define DEC(name, RespT, PbT, pbfn, body)                                      \
  static void *name(const uint8_t *b, size_t n) {                              \
    PbT *m = UNPACK(PbT, pbfn, b, n);                                          \
    RespT *o = resp_with_pb(sizeof(RespT), (ProtobufCMessage *)m);             \
    if (o == NULL)                                                             \
      return NULL;                                                             \
    struct keel_arena *a = keel__arena_of(o);                                  \
    (void)a;                                                                   \
    if ((body) != 0) {                                                         \
      keel__arena_free(a);                                                     \
      return NULL;                                                             \
    }                                                                          \
    return o;                                                                  \
  }

static int hdr_only(struct keel_header *o,
                    const Etcdserverpb__ResponseHeader *h) {
  keel__header(o, h);
  return 0;
}

DEC(dec_range, struct keel_range_resp, Etcdserverpb__RangeResponse,
    etcdserverpb__range_response, range_conv(a, o, m))
DEC(dec_put, struct keel_put_resp, Etcdserverpb__PutResponse,
    etcdserverpb__put_response, put_conv(a, o, m))
DEC(dec_del, struct keel_delete_resp, Etcdserverpb__DeleteRangeResponse,
    etcdserverpb__delete_range_response, del_conv(a, o, m))
DEC(dec_txn, struct keel_txn_resp, Etcdserverpb__TxnResponse,
    etcdserverpb__txn_response, txn_conv(a, o, m))
DEC(dec_compact, struct keel_header, Etcdserverpb__CompactionResponse,
    etcdserverpb__compaction_response, hdr_only(o, m->header))
DEC(dec_revoke, struct keel_header, Etcdserverpb__LeaseRevokeResponse,
    etcdserverpb__lease_revoke_response, hdr_only(o, m->header))
DEC(dec_defrag, struct keel_header, Etcdserverpb__DefragmentResponse,
    etcdserverpb__defragment_response, hdr_only(o, m->header))
DEC(dec_moveleader, struct keel_header, Etcdserverpb__MoveLeaderResponse,
    etcdserverpb__move_leader_response, hdr_only(o, m->header))

static int grant_conv(struct keel_lease_grant_resp *o,
                      const Etcdserverpb__LeaseGrantResponse *m) {
  keel__header(&o->header, m->header);
  o->id = m->id;
  o->ttl = m->ttl;
  /* etcd 3.4 may report a failure in the error field with status OK. */
  return m->error && m->error[0] ? -EINVAL : 0;
}
DEC(dec_grant, struct keel_lease_grant_resp, Etcdserverpb__LeaseGrantResponse,
    etcdserverpb__lease_grant_response, grant_conv(o, m))

static int ttl_conv(struct keel_arena *a, struct keel_lease_ttl_resp *o,
                    const Etcdserverpb__LeaseTimeToLiveResponse *m) {
  keel__header(&o->header, m->header);
  o->id = m->id;
  o->ttl = m->ttl;
  o->granted_ttl = m->grantedttl;
  struct keel_bytes *k = keel__arena_alloc(a, m->n_keys * sizeof(*k));
  if (k == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < m->n_keys; i++) {
    k[i].data = m->keys[i].data;
    k[i].len = m->keys[i].len;
  }
  o->keys = k;
  o->n_keys = m->n_keys;
  return 0;
}
DEC(dec_ttl, struct keel_lease_ttl_resp, Etcdserverpb__LeaseTimeToLiveResponse,
    etcdserverpb__lease_time_to_live_response, ttl_conv(a, o, m))

static int leases_conv(struct keel_arena *a, struct keel_lease_list_resp *o,
                       const Etcdserverpb__LeaseLeasesResponse *m) {
  keel__header(&o->header, m->header);
  int64_t *ids = keel__arena_alloc(a, m->n_leases * sizeof(*ids));
  if (ids == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < m->n_leases; i++)
    ids[i] = m->leases[i]->id;
  o->ids = ids;
  o->n_ids = m->n_leases;
  return 0;
}
DEC(dec_leases, struct keel_lease_list_resp, Etcdserverpb__LeaseLeasesResponse,
    etcdserverpb__lease_leases_response, leases_conv(a, o, m))

static void member_conv(struct keel_member *o, const Etcdserverpb__Member *m) {
  o->id = m->id;
  o->name = m->name ? m->name : "";
  o->peer_urls = (const char *const *)m->peerurls;
  o->n_peer_urls = m->n_peerurls;
  o->client_urls = (const char *const *)m->clienturls;
  o->n_client_urls = m->n_clienturls;
  o->is_learner = m->islearner;
}

static int members_conv(struct keel_arena *a, struct keel_members_resp *o,
                        const Etcdserverpb__ResponseHeader *h,
                        Etcdserverpb__Member **ms, size_t n,
                        const Etcdserverpb__Member *added) {
  keel__header(&o->header, h);
  struct keel_member *v = keel__arena_alloc(a, (n + 1) * sizeof(*v));
  if (v == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++)
    member_conv(&v[i], ms[i]);
  if (added) {
    member_conv(&v[n], added);
    o->added = &v[n];
  }
  o->members = v;
  o->n_members = n;
  return 0;
}
DEC(dec_mlist, struct keel_members_resp, Etcdserverpb__MemberListResponse,
    etcdserverpb__member_list_response,
    members_conv(a, o, m->header, m->members, m->n_members, NULL))
DEC(dec_madd, struct keel_members_resp, Etcdserverpb__MemberAddResponse,
    etcdserverpb__member_add_response,
    members_conv(a, o, m->header, m->members, m->n_members, m->member))
DEC(dec_mremove, struct keel_members_resp, Etcdserverpb__MemberRemoveResponse,
    etcdserverpb__member_remove_response,
    members_conv(a, o, m->header, m->members, m->n_members, NULL))
DEC(dec_mupdate, struct keel_members_resp, Etcdserverpb__MemberUpdateResponse,
    etcdserverpb__member_update_response,
    members_conv(a, o, m->header, m->members, m->n_members, NULL))
DEC(dec_mpromote, struct keel_members_resp, Etcdserverpb__MemberPromoteResponse,
    etcdserverpb__member_promote_response,
    members_conv(a, o, m->header, m->members, m->n_members, NULL))

static int status_conv(struct keel_status_resp *o,
                       const Etcdserverpb__StatusResponse *m) {
  keel__header(&o->header, m->header);
  o->version = m->version ? m->version : "";
  o->db_size = m->dbsize;
  o->db_size_in_use = m->dbsizeinuse;
  o->leader = m->leader;
  o->raft_index = m->raftindex;
  o->raft_term = m->raftterm;
  o->raft_applied_index = m->raftappliedindex;
  o->errors = (const char *const *)m->errors;
  o->n_errors = m->n_errors;
  o->is_learner = m->islearner;
  return 0;
}
DEC(dec_status, struct keel_status_resp, Etcdserverpb__StatusResponse,
    etcdserverpb__status_response, status_conv(o, m))

static int alarm_conv(struct keel_arena *a, struct keel_alarm_resp *o,
                      const Etcdserverpb__AlarmResponse *m) {
  keel__header(&o->header, m->header);
  struct keel_alarm *v = keel__arena_alloc(a, m->n_alarms * sizeof(*v));
  if (v == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < m->n_alarms; i++) {
    v[i].member_id = m->alarms[i]->memberid;
    v[i].type = (enum keel_alarm_type)m->alarms[i]->alarm;
  }
  o->alarms = v;
  o->n_alarms = m->n_alarms;
  return 0;
}
DEC(dec_alarm, struct keel_alarm_resp, Etcdserverpb__AlarmResponse,
    etcdserverpb__alarm_response, alarm_conv(a, o, m))

static int hashkv_conv(struct keel_hashkv_resp *o,
                       const Etcdserverpb__HashKVResponse *m) {
  keel__header(&o->header, m->header);
  o->hash = m->hash;
  o->compact_revision = m->compact_revision;
  return 0;
}
DEC(dec_hashkv, struct keel_hashkv_resp, Etcdserverpb__HashKVResponse,
    etcdserverpb__hash_kvresponse, hashkv_conv(o, m))

/* ------------------------------------------------------------------ */
/* Public request functions                                            */
/* ------------------------------------------------------------------ */

#define M_KV "/etcdserverpb.KV/"
#define M_LEASE "/etcdserverpb.Lease/"
#define M_CLUSTER "/etcdserverpb.Cluster/"
#define M_MAINT "/etcdserverpb.Maintenance/"

int keel_range(keel_client *c, const struct keel_range_req *req,
               const struct keel_opts *opts, keel_cb cb, void *ud) {
  if (req == NULL || req->key_len == 0 || req->key == NULL)
    return -EINVAL;
  Etcdserverpb__RangeRequest m;
  range_to_pb(&m, req);
  return send_msg(c, M_KV "Range", &m.base, 1, -1, opts, dec_range, cb, ud,
                  NULL);
}

int keel_put(keel_client *c, const struct keel_put_req *req,
             const struct keel_opts *opts, keel_cb cb, void *ud) {
  if (req == NULL || req->key_len == 0 || req->key == NULL)
    return -EINVAL;
  Etcdserverpb__PutRequest m;
  put_to_pb(&m, req);
  return send_msg(c, M_KV "Put", &m.base, 0, -1, opts, dec_put, cb, ud, NULL);
}

int keel_delete(keel_client *c, const struct keel_delete_req *req,
                const struct keel_opts *opts, keel_cb cb, void *ud) {
  if (req == NULL || req->key_len == 0 || req->key == NULL)
    return -EINVAL;
  Etcdserverpb__DeleteRangeRequest m;
  del_to_pb(&m, req);
  return send_msg(c, M_KV "DeleteRange", &m.base, 0, -1, opts, dec_del, cb, ud,
                  NULL);
}

int keel_txn(keel_client *c, const struct keel_txn_req *req,
             const struct keel_opts *opts, keel_cb cb, void *ud) {
  if (req == NULL)
    return -EINVAL;
  struct keel_arena *a = keel__arena_of(keel__resp_new(1));
  if (a == NULL)
    return -ENOMEM;
  Etcdserverpb__TxnRequest m;
  int rc = txn_to_pb(a, &m, req, 0);
  if (rc == 0)
    rc = send_msg(c, M_KV "Txn", &m.base, 0, -1, opts, dec_txn, cb, ud, NULL);
  keel__arena_free(a);
  return rc;
}

int keel_compact(keel_client *c, int64_t revision, int physical,
                 const struct keel_opts *opts, keel_cb cb, void *ud) {
  Etcdserverpb__CompactionRequest m;
  etcdserverpb__compaction_request__init(&m);
  m.revision = revision;
  m.physical = !!physical;
  return send_msg(c, M_KV "Compact", &m.base, 0, -1, opts, dec_compact, cb, ud,
                  NULL);
}

int keel_lease_grant(keel_client *c, int64_t ttl, int64_t id,
                     const struct keel_opts *opts, keel_cb cb, void *ud) {
  if (ttl <= 0 || id < 0)
    return -EINVAL;
  Etcdserverpb__LeaseGrantRequest m;
  etcdserverpb__lease_grant_request__init(&m);
  m.ttl = ttl;
  m.id = id;
  return send_msg(c, M_LEASE "LeaseGrant", &m.base, 0, -1, opts, dec_grant, cb,
                  ud, NULL);
}

int keel_lease_revoke(keel_client *c, int64_t id, const struct keel_opts *opts,
                      keel_cb cb, void *ud) {
  Etcdserverpb__LeaseRevokeRequest m;
  etcdserverpb__lease_revoke_request__init(&m);
  m.id = id;
  return send_msg(c, M_LEASE "LeaseRevoke", &m.base, 0, -1, opts, dec_revoke,
                  cb, ud, NULL);
}

int keel_lease_ttl(keel_client *c, int64_t id, int keys,
                   const struct keel_opts *opts, keel_cb cb, void *ud) {
  Etcdserverpb__LeaseTimeToLiveRequest m;
  etcdserverpb__lease_time_to_live_request__init(&m);
  m.id = id;
  m.keys = !!keys;
  return send_msg(c, M_LEASE "LeaseTimeToLive", &m.base, 1, -1, opts, dec_ttl,
                  cb, ud, NULL);
}

int keel_lease_leases(keel_client *c, const struct keel_opts *opts, keel_cb cb,
                      void *ud) {
  Etcdserverpb__LeaseLeasesRequest m;
  etcdserverpb__lease_leases_request__init(&m);
  return send_msg(c, M_LEASE "LeaseLeases", &m.base, 1, -1, opts, dec_leases,
                  cb, ud, NULL);
}

int keel_member_list(keel_client *c, int linearizable,
                     const struct keel_opts *opts, keel_cb cb, void *ud) {
  Etcdserverpb__MemberListRequest m;
  etcdserverpb__member_list_request__init(&m);
  m.linearizable = !!linearizable;
  return send_msg(c, M_CLUSTER "MemberList", &m.base, 1, -1, opts, dec_mlist,
                  cb, ud, NULL);
}

int keel_member_add(keel_client *c, const char *const *peer_urls, size_t n,
                    int is_learner, const struct keel_opts *opts, keel_cb cb,
                    void *ud) {
  if (n == 0 || peer_urls == NULL)
    return -EINVAL;
  Etcdserverpb__MemberAddRequest m;
  etcdserverpb__member_add_request__init(&m);
  m.peerurls = (char **)(uintptr_t)peer_urls;
  m.n_peerurls = n;
  m.islearner = !!is_learner;
  return send_msg(c, M_CLUSTER "MemberAdd", &m.base, 0, -1, opts, dec_madd, cb,
                  ud, NULL);
}

int keel_member_remove(keel_client *c, uint64_t id,
                       const struct keel_opts *opts, keel_cb cb, void *ud) {
  Etcdserverpb__MemberRemoveRequest m;
  etcdserverpb__member_remove_request__init(&m);
  m.id = id;
  return send_msg(c, M_CLUSTER "MemberRemove", &m.base, 0, -1, opts,
                  dec_mremove, cb, ud, NULL);
}

int keel_member_update(keel_client *c, uint64_t id,
                       const char *const *peer_urls, size_t n,
                       const struct keel_opts *opts, keel_cb cb, void *ud) {
  if (n == 0 || peer_urls == NULL)
    return -EINVAL;
  Etcdserverpb__MemberUpdateRequest m;
  etcdserverpb__member_update_request__init(&m);
  m.id = id;
  m.peerurls = (char **)(uintptr_t)peer_urls;
  m.n_peerurls = n;
  /* Setting the same URLs again is harmless: safe to repeat. */
  return send_msg(c, M_CLUSTER "MemberUpdate", &m.base, 1, -1, opts,
                  dec_mupdate, cb, ud, NULL);
}

int keel_member_promote(keel_client *c, uint64_t id,
                        const struct keel_opts *opts, keel_cb cb, void *ud) {
  Etcdserverpb__MemberPromoteRequest m;
  etcdserverpb__member_promote_request__init(&m);
  m.id = id;
  return send_msg(c, M_CLUSTER "MemberPromote", &m.base, 0, -1, opts,
                  dec_mpromote, cb, ud, NULL);
}

/* After a successful member list: the client URLs become the endpoints. */
static void refresh_post(keel_client *c, const void *resp) {
  const struct keel_members_resp *r = resp;
  const char *list[KEEL_MAX_ENDPOINTS];
  size_t n = 0;
  for (size_t i = 0; i < r->n_members; i++)
    for (size_t j = 0; j < r->members[i].n_client_urls; j++)
      if (n < KEEL_MAX_ENDPOINTS)
        list[n++] = r->members[i].client_urls[j];
  struct keel_endpoint *eps;
  if (n == 0 || build_endpoints(c, list, n, &eps) != 0)
    return; /* keep the old list: a half-understood one is worse */
  /* Where each old endpoint went (-1: dropped), by name. */
  int moved[KEEL_MAX_ENDPOINTS];
  for (size_t j = 0; j < c->n_eps; j++) {
    moved[j] = -1;
    for (size_t i = 0; i < n && moved[j] < 0; i++)
      if (strcmp(eps[i].name, c->eps[j].name) == 0 && eps[i].ch == NULL) {
        eps[i].breaker = c->eps[j].breaker;
        eps[i].ch = c->eps[j].ch;
        c->eps[j].ch = NULL;
        moved[j] = (int)i;
      }
  }
  c->cur = moved[c->cur] >= 0 ? (size_t)moved[c->cur] : 0;
  /* The streams keep their connection if its endpoint stays; otherwise
   * their channel closes below and they reopen elsewhere. */
  c->wep = c->wep >= 0 ? moved[c->wep] : -1;
  c->kep = c->kep >= 0 ? moved[c->kep] : -1;
  for (size_t j = 0; j < c->n_eps; j++)
    channel_drop(c, &c->eps[j]);
  free(c->eps);
  c->eps = eps;
  c->n_eps = n;
  c->gen++;
}

int keel_endpoints_refresh(keel_client *c, keel_cb cb, void *ud) {
  Etcdserverpb__MemberListRequest m;
  etcdserverpb__member_list_request__init(&m);
  return send_msg(c, M_CLUSTER "MemberList", &m.base, 1, -1, NULL, dec_mlist,
                  cb, ud, refresh_post);
}

int keel_status(keel_client *c, int endpoint, const struct keel_opts *opts,
                keel_cb cb, void *ud) {
  Etcdserverpb__StatusRequest m;
  etcdserverpb__status_request__init(&m);
  return send_msg(c, M_MAINT "Status", &m.base, 1, endpoint, opts, dec_status,
                  cb, ud, NULL);
}

static int alarm(keel_client *c, int action, uint64_t member, int type,
                 const struct keel_opts *opts, keel_cb cb, void *ud) {
  Etcdserverpb__AlarmRequest m;
  etcdserverpb__alarm_request__init(&m);
  m.action = (Etcdserverpb__AlarmRequest__AlarmAction)action;
  m.memberid = member;
  m.alarm = (Etcdserverpb__AlarmType)type;
  return send_msg(c, M_MAINT "Alarm", &m.base, 1, -1, opts, dec_alarm, cb, ud,
                  NULL);
}

int keel_alarm_list(keel_client *c, const struct keel_opts *opts, keel_cb cb,
                    void *ud) {
  return alarm(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET, 0,
               KEEL_ALARM_NONE, opts, cb, ud);
}

int keel_alarm_disarm(keel_client *c, uint64_t member_id,
                      enum keel_alarm_type type, const struct keel_opts *opts,
                      keel_cb cb, void *ud) {
  return alarm(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE,
               member_id, type, opts, cb, ud);
}

int keel_defragment(keel_client *c, int endpoint, const struct keel_opts *opts,
                    keel_cb cb, void *ud) {
  Etcdserverpb__DefragmentRequest m;
  etcdserverpb__defragment_request__init(&m);
  return send_msg(c, M_MAINT "Defragment", &m.base, 1, endpoint, opts,
                  dec_defrag, cb, ud, NULL);
}

int keel_hashkv(keel_client *c, int endpoint, int64_t revision,
                const struct keel_opts *opts, keel_cb cb, void *ud) {
  Etcdserverpb__HashKVRequest m;
  etcdserverpb__hash_kvrequest__init(&m);
  m.revision = revision;
  return send_msg(c, M_MAINT "HashKV", &m.base, 1, endpoint, opts, dec_hashkv,
                  cb, ud, NULL);
}

int keel_move_leader(keel_client *c, int endpoint, uint64_t target_id,
                     const struct keel_opts *opts, keel_cb cb, void *ud) {
  Etcdserverpb__MoveLeaderRequest m;
  etcdserverpb__move_leader_request__init(&m);
  m.targetid = target_id;
  return send_msg(c, M_MAINT "MoveLeader", &m.base, 0, endpoint, opts,
                  dec_moveleader, cb, ud, NULL);
}

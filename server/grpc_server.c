/* grpc_server.c — gRPC over HTTP/2 on an nghttp2 server session, one per
 * connection, driven entirely from the loop thread.
 *
 * Data flow:
 *   socket bytes -> keel_h2_conn_recv -> nghttp2_session_mem_recv -> our
 *   callbacks (headers, data chunks, stream close) -> handlers;
 *   handlers -> keel_grpc_call_send/finish -> the call's send queue ->
 *   nghttp2 pulls it through data_read() as HTTP/2 flow control allows ->
 *   nghttp2_session_mem_send -> keel_net_io.
 *
 * Invariants:
 *   - c->busy is set while nghttp2 is running (mem_recv / mem_send or our
 *     notification pass); output requested meanwhile only sets
 *     c->want_flush, and conn_flush() loops until it is clear. So nghttp2 is
 *     never re-entered, and every change is flushed before control returns
 *     to libuv.
 *   - A call is attached (call->conn != NULL, on c's list) exactly while its
 *     HTTP/2 stream is open. Its queued send bytes count in
 *     c->send_buffered and are freed at detach.
 *   - A call is freed when it is detached and the handler no longer owns it
 *     (never saw it, or called keel_grpc_call_finish) and no callback of it
 *     is on the stack (cb_depth == 0).
 *   - Inbound: bytes reach the decoder in order; while paused they are held
 *     un-consumed, so the peer's flow-control window bounds `held`.
 *   - Outbound: the stream send queue is bounded by stream_send_buffer_bytes
 *     (one message may exceed it when the queue is empty); the transport's
 *     queue is bounded by IO_HIGH_WATER before mem_send is asked for more.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_listener.h"
#include "grpc_conn.h"
#include "keel_buf.h"
#include "keel_error.h"
#include "keel_log.h"

#define IO_HIGH_WATER (256 * 1024)
/* HTTP/2 receive windows: per stream, and for the whole connection. The
 * stream window also bounds what a paused stream holds. */
#define STREAM_WINDOW (1024 * 1024)
#define CONN_WINDOW (16 * 1024 * 1024)
#define MAX_METADATA 16
#define GRPC_MSG_MAX 1024 /* bytes of grpc-message text we send */

struct method_entry {
  struct keel_grpc_method m;
  char *name;
};

struct keel_grpc_server {
  uv_loop_t *loop;
  struct keel_client_listener_config cfg;
  struct method_entry *methods;
  size_t n_methods, cap_methods;
  struct keel_grpc_server_stats stats;
  size_t n_conns;
  keel_grpc_observer_fn observer;
  void *observer_ud;
};

struct keel_h2_conn {
  keel_grpc_server *srv;
  nghttp2_session *ng;
  struct keel_net_io *io;
  void (*on_done)(void *owner);
  void *owner;
  struct keel_grpc_call *calls; /* attached calls, doubly linked */
  size_t n_calls;
  size_t send_buffered; /* sum of the attached calls' send queues */
  int busy, want_flush, notify_pending;
  int done;   /* on_done was called */
  int goaway; /* 0, 1 = notice + PING sent, 2 = final GOAWAY sent */
};

struct keel_grpc_call {
  keel_grpc_server *srv;
  struct keel_h2_conn *conn; /* NULL once detached */
  struct keel_grpc_call *prev, *next;
  int32_t stream_id;
  const struct method_entry *method;

  /* request head */
  char *path;
  char *content_type;
  char *encoding;
  char *http_method;
  uint64_t timeout_ms;
  int has_timeout;
  size_t header_bytes;
  char *md_name[MAX_METADATA], *md_value[MAX_METADATA];
  size_t n_md;

  /* inbound */
  struct keel_grpc_decoder dec;
  uint8_t *req;
  size_t req_len;
  uint64_t n_in;
  struct keel_buf held;
  int paused, remote_closed, end_pending;

  /* outbound */
  struct keel_buf sendq;
  uint64_t n_out;
  int response_started, status_queued;
  int status_code;
  char *status_msg; /* percent-encoded */
  int writable_wanted;

  /* ownership */
  int owned; /* the handler has seen it and must finish it */
  int handler_done;
  int close_notified;
  int close_reason;
  int cb_depth;
  int freeing; /* release started (maybe waiting for the timer to close) */

  int timer_inited;
  uv_timer_t timer;
  uint64_t deadline_at; /* uv_now() ms */
  uint64_t started_ns;  /* uv_hrtime() at the request head */
  void *user;
};

/* ---- small helpers ---------------------------------------------------- */

static char *dupn(const uint8_t *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

#define NV(n, v)                                                               \
  {                                                                            \
    (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                  \
        NGHTTP2_NV_FLAG_NONE                                                   \
  }

static void conn_flush(struct keel_h2_conn *c);
static void call_maybe_free(keel_grpc_call *call);
static void final_goaway(struct keel_h2_conn *c);
#define GOAWAY_PING "keelbye!"

static void conn_kick(struct keel_h2_conn *c) {
  if (c == NULL)
    return;
  if (c->busy) {
    c->want_flush = 1;
    return;
  }
  conn_flush(c);
}

static void conn_fail(struct keel_h2_conn *c) {
  if (!c->done) {
    c->done = 1;
    c->on_done(c->owner);
  }
}

/* ---- server ----------------------------------------------------------- */

int keel_grpc_server_new(uv_loop_t *loop,
                         const struct keel_client_listener_config *cfg,
                         keel_grpc_server **out) {
  keel_grpc_server *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->loop = loop;
  s->cfg = *cfg;
  *out = s;
  return 0;
}

void keel_grpc_server_free(keel_grpc_server *srv) {
  if (srv == NULL)
    return;
  assert(srv->n_conns == 0);
  for (size_t i = 0; i < srv->n_methods; i++)
    free(srv->methods[i].name);
  free(srv->methods);
  free(srv);
}

int keel_grpc_server_register(keel_grpc_server *srv,
                              const struct keel_grpc_method *m) {
  if (m->name == NULL || m->on_message == NULL || m->name[0] != '/')
    return -EINVAL;
  const char *slash = strchr(m->name + 1, '/');
  if (slash == NULL || slash == m->name + 1 || slash[1] == '\0' ||
      strchr(slash + 1, '/') != NULL ||
      memchr(m->name, '.', slash - m->name) == NULL)
    return -EINVAL;
  for (size_t i = 0; i < srv->n_methods; i++)
    if (strcmp(srv->methods[i].name, m->name) == 0)
      return KEEL_EEXIST;
  if (srv->n_methods == srv->cap_methods) {
    size_t cap = srv->cap_methods ? srv->cap_methods * 2 : 32;
    struct method_entry *p = realloc(srv->methods, cap * sizeof(*p));
    if (p == NULL)
      return -ENOMEM;
    srv->methods = p;
    srv->cap_methods = cap;
  }
  struct method_entry *e = &srv->methods[srv->n_methods];
  e->m = *m;
  e->name = strdup(m->name);
  if (e->name == NULL)
    return -ENOMEM;
  e->m.name = e->name;
  srv->n_methods++;
  return 0;
}

void keel_grpc_server_set_observer(keel_grpc_server *srv,
                                   keel_grpc_observer_fn fn, void *ud) {
  srv->observer = fn;
  srv->observer_ud = ud;
}

void keel_grpc_server_stats(const keel_grpc_server *srv,
                            struct keel_grpc_server_stats *out) {
  *out = srv->stats;
}

static const struct method_entry *find_method(keel_grpc_server *srv,
                                              const char *path) {
  for (size_t i = 0; i < srv->n_methods; i++)
    if (strcmp(srv->methods[i].name, path) == 0)
      return &srv->methods[i];
  return NULL;
}

/* grpc-go's wording: "unknown service X" when no method of the service
 * exists, else "unknown method M for service X". */
static void unknown_method_message(keel_grpc_server *srv, const char *path,
                                   char *out, size_t size) {
  const char *p = path[0] == '/' ? path + 1 : path;
  const char *slash = strchr(p, '/');
  if (slash == NULL) {
    snprintf(out, size, "malformed method name: %.200s", path);
    return;
  }
  size_t svc_len = (size_t)(slash - p);
  for (size_t i = 0; i < srv->n_methods; i++) {
    const char *n = srv->methods[i].name + 1;
    if (strncmp(n, p, svc_len) == 0 && n[svc_len] == '/') {
      snprintf(out, size, "unknown method %.200s for service %.*s", slash + 1,
               (int)(svc_len > 200 ? 200 : svc_len), p);
      return;
    }
  }
  snprintf(out, size, "unknown service %.*s",
           (int)(svc_len > 200 ? 200 : svc_len), p);
}

/* ---- calls: lifetime -------------------------------------------------- */

static void call_free_now(keel_grpc_call *call) {
  free(call->path);
  free(call->content_type);
  free(call->encoding);
  free(call->http_method);
  for (size_t i = 0; i < call->n_md; i++) {
    free(call->md_name[i]);
    free(call->md_value[i]);
  }
  keel_grpc_decoder_free(&call->dec);
  free(call->req);
  keel_buf_free(&call->held);
  keel_buf_free(&call->sendq);
  free(call->status_msg);
  free(call);
}

static void on_timer_closed(uv_handle_t *h) {
  call_free_now(h->data);
}

static void call_maybe_free(keel_grpc_call *call) {
  if (call->conn != NULL || call->cb_depth > 0 || call->freeing)
    return;
  if (call->owned && !call->handler_done)
    return;
  call->freeing = 1;
  if (call->owned)
    call->srv->stats.active_calls--;
  if (call->timer_inited) {
    call->timer_inited = 0;
    uv_close((uv_handle_t *)&call->timer, on_timer_closed);
  } else {
    call_free_now(call);
  }
}

/* hold/release keep a call alive across code that may end it (a handler
 * may finish the call it is called for); own marks that a handler has seen
 * the call, from which point only keel_grpc_call_finish() releases it. */
static void hold(keel_grpc_call *call) {
  call->cb_depth++;
}
static void release(keel_grpc_call *call) {
  call->cb_depth--;
  call_maybe_free(call);
}
static void own(keel_grpc_call *call) {
  if (!call->owned) {
    call->owned = 1;
    call->srv->stats.active_calls++;
  }
}
static void cb_enter(keel_grpc_call *call) {
  own(call);
  hold(call);
}
static void cb_leave(keel_grpc_call *call) {
  release(call);
}

/* Tell the handler once that the stream ended early. */
static void notify_close(keel_grpc_call *call) {
  if (!call->owned || call->handler_done || call->close_notified)
    return;
  call->close_notified = 1;
  if (call->method && call->method->m.on_close) {
    cb_enter(call);
    call->method->m.on_close(call, call->close_reason, call->method->m.ud);
    cb_leave(call);
  }
}

static void call_attach(struct keel_h2_conn *c, keel_grpc_call *call) {
  call->conn = c;
  call->next = c->calls;
  call->prev = NULL;
  if (c->calls)
    c->calls->prev = call;
  c->calls = call;
  c->n_calls++;
}

static void call_detach(keel_grpc_call *call) {
  struct keel_h2_conn *c = call->conn;
  if (c == NULL)
    return;
  if (call->prev)
    call->prev->next = call->next;
  else
    c->calls = call->next;
  if (call->next)
    call->next->prev = call->prev;
  c->n_calls--;
  if (call->srv->observer)
    call->srv->observer(
        call->path,
        call->status_queued ? call->status_code : KEEL_GRPC_CANCELLED,
        (uv_hrtime() - call->started_ns) / 1000, call->srv->observer_ud);
  c->send_buffered -= keel_buf_size(&call->sendq);
  keel_buf_free(&call->sendq);
  call->conn = NULL;
  if (call->timer_inited)
    uv_timer_stop(&call->timer);
}

/* ---- calls: outbound -------------------------------------------------- */

static ssize_t data_read(nghttp2_session *ng, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *ud) {
  (void)ud;
  keel_grpc_call *call = source->ptr;
  struct keel_h2_conn *c = call->conn;
  if (c == NULL)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t have = keel_buf_size(&call->sendq);
  size_t n = have < length ? have : length;
  if (n > 0)
    memcpy(buf, call->sendq.p + call->sendq.off, n);
  call->sendq.off += n;
  c->send_buffered -= n;
  if (n == have && call->status_queued) {
    char code[16];
    snprintf(code, sizeof(code), "%d", call->status_code);
    nghttp2_nv trailers[2] = {NV("grpc-status", code)};
    size_t nt = 1;
    if (call->status_msg && call->status_msg[0]) {
      nghttp2_nv m = NV("grpc-message", call->status_msg);
      trailers[nt++] = m;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    int rv = nghttp2_submit_trailer(ng, stream_id, trailers, nt);
    if (rv != 0)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  } else if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  if (call->writable_wanted && call->owned && !call->handler_done)
    c->notify_pending = 1;
  return (ssize_t)n;
}

static int start_response(keel_grpc_call *call) {
  struct keel_h2_conn *c = call->conn;
  nghttp2_nv hdrs[] = {NV(":status", "200"),
                       NV("content-type", "application/grpc")};
  nghttp2_data_provider dp;
  dp.source.ptr = call;
  dp.read_callback = data_read;
  call->response_started = 1;
  return nghttp2_submit_response(c->ng, call->stream_id, hdrs, 2, &dp);
}

/* Queues the final status. With nothing sent yet it is a trailers-only
 * response (one HEADERS frame with END_STREAM); else trailers follow the
 * queued data. http_status is 200 except for HTTP-level refusals. */
static void queue_status_http(keel_grpc_call *call, int http_status, int code,
                              const char *message) {
  struct keel_h2_conn *c = call->conn;
  assert(c != NULL && !call->status_queued);
  call->status_queued = 1;
  call->status_code = code;
  if (message && message[0]) {
    char enc[GRPC_MSG_MAX];
    keel_grpc_percent_encode(message, strlen(message), enc, sizeof(enc));
    call->status_msg = strdup(enc);
  }
  if (!call->response_started) {
    char st[8], cs[16];
    snprintf(st, sizeof(st), "%d", http_status);
    snprintf(cs, sizeof(cs), "%d", code);
    nghttp2_nv hdrs[4] = {NV(":status", st),
                          NV("content-type", "application/grpc"),
                          NV("grpc-status", cs)};
    size_t n = 3;
    if (call->status_msg && call->status_msg[0]) {
      nghttp2_nv m = NV("grpc-message", call->status_msg);
      hdrs[n++] = m;
    }
    call->response_started = 1;
    if (nghttp2_submit_response(c->ng, call->stream_id, hdrs, n, NULL) != 0)
      nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, call->stream_id,
                                NGHTTP2_INTERNAL_ERROR);
  } else {
    nghttp2_session_resume_data(c->ng, call->stream_id);
  }
  conn_kick(c);
}

static void queue_status(keel_grpc_call *call, int code, const char *message) {
  queue_status_http(call, 200, code, message);
}

/* The server ends a call on its own (bad input, deadline): the handler, if
 * it owns the call, is told through on_close(reason). */
static void call_fail(keel_grpc_call *call, int reason, int code,
                      const char *message) {
  if (call->conn == NULL || call->status_queued)
    return;
  call->close_reason = reason;
  hold(call); /* the flush in queue_status may close the stream */
  queue_status(call, code, message);
  notify_close(call);
  release(call);
}

int keel_grpc_call_send(keel_grpc_call *call, const void *msg, size_t len) {
  if (call->handler_done)
    return -EINVAL;
  if (call->conn == NULL || call->status_queued)
    return KEEL_ECANCELED;
  if (call->method->m.kind == KEEL_GRPC_UNARY && call->n_out >= 1)
    return -EINVAL;
  keel_grpc_server *srv = call->srv;
  if (len > srv->cfg.max_send_msg_bytes || len > UINT32_MAX)
    return KEEL_ELIMIT;
  struct keel_h2_conn *c = call->conn;
  size_t total = len + KEEL_GRPC_PREFIX_LEN;
  size_t queued = keel_buf_size(&call->sendq);
  if (queued > 0 &&
      (queued + total > srv->cfg.stream_send_buffer_bytes ||
       c->send_buffered + total > srv->cfg.conn_send_buffer_bytes)) {
    call->writable_wanted = 1;
    srv->stats.send_busy++;
    return KEEL_EBUSY;
  }
  uint8_t prefix[KEEL_GRPC_PREFIX_LEN];
  keel_grpc_prefix_encode(prefix, len);
  if (keel_buf_append(&call->sendq, prefix, sizeof(prefix)) != 0 ||
      keel_buf_append(&call->sendq, msg, len) != 0) {
    /* Undo a half-queued prefix so the stream never carries a torn frame. */
    call->sendq.len = call->sendq.off + queued;
    return -ENOMEM;
  }
  c->send_buffered += total;
  call->n_out++;
  if (keel_buf_size(&call->sendq) > srv->stats.max_stream_send_buffered)
    srv->stats.max_stream_send_buffered = keel_buf_size(&call->sendq);
  if (keel_grpc_call_writable(call) < srv->cfg.stream_send_buffer_bytes / 2)
    call->writable_wanted = 1;
  int rv;
  if (!call->response_started)
    rv = start_response(call);
  else
    rv = nghttp2_session_resume_data(c->ng, call->stream_id);
  (void)rv; /* resume fails only when not deferred: harmless */
  conn_kick(c);
  return 0;
}

size_t keel_grpc_call_writable(const keel_grpc_call *call) {
  if (call->conn == NULL || call->status_queued || call->handler_done)
    return 0;
  const struct keel_client_listener_config *cfg = &call->srv->cfg;
  size_t q = keel_buf_size(&call->sendq);
  size_t sfree = q >= cfg->stream_send_buffer_bytes
                     ? 0
                     : cfg->stream_send_buffer_bytes - q;
  size_t cb = call->conn->send_buffered;
  size_t cfree =
      cb >= cfg->conn_send_buffer_bytes ? 0 : cfg->conn_send_buffer_bytes - cb;
  size_t f = sfree < cfree ? sfree : cfree;
  return f > KEEL_GRPC_PREFIX_LEN ? f - KEEL_GRPC_PREFIX_LEN : 0;
}

int keel_grpc_call_finish(keel_grpc_call *call, int code, const char *message) {
  assert(call->owned && !call->handler_done);
  call->handler_done = 1;
  int rc = 0;
  /* Flushing may close the stream, which may release the call: hold it. */
  hold(call);
  if (call->conn == NULL || call->status_queued)
    rc = KEEL_ECANCELED;
  else
    queue_status(call, code, message);
  release(call);
  return rc;
}

int keel_grpc_call_reply(keel_grpc_call *call, const void *msg, size_t len) {
  int rc = keel_grpc_call_send(call, msg, len);
  if (rc == KEEL_ECANCELED) {
    keel_grpc_call_finish(call, KEEL_GRPC_CANCELLED, NULL);
    return rc;
  }
  if (rc != 0) {
    char m[128];
    snprintf(m, sizeof(m), "grpc: error sending response: %s",
             keel_strerror(rc));
    keel_grpc_call_finish(call,
                          rc == KEEL_ELIMIT ? KEEL_GRPC_RESOURCE_EXHAUSTED
                                            : KEEL_GRPC_INTERNAL,
                          m);
    return rc;
  }
  return keel_grpc_call_finish(call, KEEL_GRPC_OK, NULL);
}

void keel_grpc_call_set_user(keel_grpc_call *call, void *user) {
  call->user = user;
}
void *keel_grpc_call_user(const keel_grpc_call *call) {
  return call->user;
}
const char *keel_grpc_call_method(const keel_grpc_call *call) {
  return call->path;
}

uint64_t keel_grpc_call_deadline_left(const keel_grpc_call *call) {
  if (!call->has_timeout)
    return UINT64_MAX;
  uint64_t now = uv_now(call->srv->loop);
  return now >= call->deadline_at ? 0 : call->deadline_at - now;
}

const char *keel_grpc_call_metadata(const keel_grpc_call *call,
                                    const char *name) {
  for (size_t i = 0; i < call->n_md; i++)
    if (strcasecmp(call->md_name[i], name) == 0)
      return call->md_value[i];
  return NULL;
}

/* ---- calls: inbound --------------------------------------------------- */

static int on_decoded(void *ud, const uint8_t *msg, size_t len) {
  keel_grpc_call *call = ud;
  call->n_in++;
  if (call->method->m.kind != KEEL_GRPC_BIDI) {
    if (call->n_in > 1) {
      call_fail(call, KEEL_EBADMSG, KEEL_GRPC_INTERNAL,
                "grpc: unexpected second request message for a call that "
                "takes one");
      return 1;
    }
    call->req = malloc(len ? len : 1);
    if (call->req == NULL)
      return -ENOMEM;
    if (len)
      memcpy(call->req, msg, len);
    call->req_len = len;
    return 0;
  }
  cb_enter(call);
  call->method->m.on_message(call, msg, len, call->method->m.ud);
  int stop = call->paused || call->status_queued || call->handler_done ||
             call->conn == NULL;
  cb_leave(call);
  return stop ? 1 : 0;
}

/* Feeds bytes to the decoder; returns how many were used (the rest are to
 * be held: the stream was paused by a handler) or -1 if the call failed. */
static ssize_t feed(keel_grpc_call *call, const uint8_t *data, size_t len) {
  size_t used = 0;
  int rc =
      keel_grpc_decoder_feed(&call->dec, data, len, &used, on_decoded, call);
  if (rc == 0 || rc == 1)
    return (ssize_t)used;
  char m[160];
  if (rc == KEEL_ELIMIT) {
    call->srv->stats.msgs_too_large++;
    /* grpc-go's exact text, so clients recognise it. */
    snprintf(m, sizeof(m),
             "grpc: received message larger than max (%" PRIu64 " vs. %zu)",
             call->dec.bad_len, call->srv->cfg.max_recv_msg_bytes);
    call_fail(call, KEEL_ELIMIT, KEEL_GRPC_RESOURCE_EXHAUSTED, m);
  } else if (rc == KEEL_EBADMSG) {
    if (call->dec.bad_flag == 1)
      snprintf(m, sizeof(m),
               "grpc: compressed flag set with identity or empty encoding");
    else
      snprintf(m, sizeof(m), "grpc: received unexpected payload format %u",
               call->dec.bad_flag);
    call_fail(call, KEEL_EBADMSG, KEEL_GRPC_INTERNAL, m);
  } else {
    call_fail(call, rc, KEEL_GRPC_RESOURCE_EXHAUSTED,
              "grpc: out of memory receiving message");
  }
  return -1;
}

/* The client ended its side and every byte was decoded. */
static void end_of_input(keel_grpc_call *call) {
  if (call->conn == NULL || call->status_queued)
    return;
  if (!keel_grpc_decoder_idle(&call->dec)) {
    call_fail(call, KEEL_EBADMSG, KEEL_GRPC_INTERNAL,
              "grpc: stream ended inside a message (truncated message)");
    return;
  }
  const struct keel_grpc_method *m = &call->method->m;
  if (m->kind == KEEL_GRPC_BIDI) {
    if (m->on_half_close && !call->handler_done) {
      cb_enter(call);
      m->on_half_close(call, m->ud);
      cb_leave(call);
    }
    return;
  }
  if (call->n_in != 1) {
    call_fail(call, KEEL_EBADMSG, KEEL_GRPC_INTERNAL,
              "grpc: request message missing for a call that takes one");
    return;
  }
  uint8_t *req = call->req;
  size_t len = call->req_len;
  call->req = NULL;
  cb_enter(call);
  m->on_message(call, req, len, m->ud);
  free(req);
  cb_leave(call);
}

/* Runs held input through the decoder while not paused. */
static void drain_held(keel_grpc_call *call) {
  while (call->conn && !call->paused && keel_buf_size(&call->held) > 0 &&
         !call->status_queued) {
    struct keel_h2_conn *c = call->conn;
    int32_t sid = call->stream_id;
    size_t n = keel_buf_size(&call->held);
    ssize_t used = feed(call, call->held.p + call->held.off, n);
    if (call->conn == NULL)
      return;
    if (used < 0) {
      nghttp2_session_consume(c->ng, sid, n);
      keel_buf_free(&call->held);
      return;
    }
    call->held.off += (size_t)used;
    nghttp2_session_consume(c->ng, sid, (size_t)used);
  }
  if (call->conn && !call->paused && keel_buf_size(&call->held) == 0 &&
      call->end_pending) {
    call->end_pending = 0;
    end_of_input(call);
  }
}

void keel_grpc_call_pause(keel_grpc_call *call) {
  call->paused = 1;
}

void keel_grpc_call_resume(keel_grpc_call *call) {
  if (!call->paused)
    return;
  call->paused = 0;
  if (call->conn == NULL)
    return;
  struct keel_h2_conn *c = call->conn;
  hold(call); /* drain_held may finish the call: keep it alive */
  drain_held(call);
  release(call);
  conn_kick(c); /* window updates go out */
}

/* ---- nghttp2 callbacks ------------------------------------------------ */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame,
                            void *ud) {
  struct keel_h2_conn *c = ud;
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  keel_grpc_call *call = calloc(1, sizeof(*call));
  if (call == NULL)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  call->srv = c->srv;
  call->stream_id = frame->hd.stream_id;
  call->started_ns = uv_hrtime();
  call->close_reason = KEEL_ESTOPPED;
  keel_grpc_decoder_init(&call->dec, c->srv->cfg.max_recv_msg_bytes);
  call_attach(c, call);
  nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, call);
  return 0;
}

static int is_reserved_header(const uint8_t *n, size_t len) {
  static const char *const reserved[] = {
      "content-type",  "te",
      "user-agent",    "grpc-timeout",
      "grpc-encoding", "grpc-accept-encoding"};
  if (len > 0 && n[0] == ':')
    return 1;
  for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
    if (strlen(reserved[i]) == len && memcmp(reserved[i], n, len) == 0)
      return 1;
  return 0;
}

#define HDR_IS(lit)                                                            \
  (namelen == sizeof(lit) - 1 && memcmp(name, lit, namelen) == 0)

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *ud) {
  (void)flags;
  struct keel_h2_conn *c = ud;
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0; /* trailers from a client carry nothing we use */
  keel_grpc_call *call =
      nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (call == NULL)
    return 0;
  /* RFC 7541 counts 32 bytes of overhead per field. */
  call->header_bytes += namelen + valuelen + 32;
  if (call->header_bytes > c->srv->cfg.max_header_list_bytes)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
  char **slot = NULL;
  if (HDR_IS(":path"))
    slot = &call->path;
  else if (HDR_IS(":method"))
    slot = &call->http_method;
  else if (HDR_IS("content-type"))
    slot = &call->content_type;
  else if (HDR_IS("grpc-encoding"))
    slot = &call->encoding;
  if (slot) {
    if (*slot == NULL)
      *slot = dupn(value, valuelen);
    return 0;
  }
  if (HDR_IS("grpc-timeout")) {
    if (keel_grpc_timeout_parse((const char *)value, valuelen,
                                &call->timeout_ms) == 0)
      call->has_timeout = 1;
    return 0;
  }
  if (!is_reserved_header(name, namelen) && call->n_md < MAX_METADATA) {
    call->md_name[call->n_md] = dupn(name, namelen);
    call->md_value[call->n_md] = dupn(value, valuelen);
    call->n_md++;
  }
  return 0;
}

static void on_deadline(uv_timer_t *t) {
  keel_grpc_call *call = t->data;
  if (call->conn == NULL || call->status_queued)
    return;
  call->srv->stats.calls_deadline++;
  call_fail(call, KEEL_ETIMEOUT, KEEL_GRPC_DEADLINE_EXCEEDED,
            "context deadline exceeded");
}

/* The request head is complete: check it and find the handler. */
static void dispatch(struct keel_h2_conn *c, keel_grpc_call *call) {
  keel_grpc_server *srv = c->srv;
  if (call->http_method == NULL || strcmp(call->http_method, "POST") != 0) {
    queue_status_http(call, 405, KEEL_GRPC_INTERNAL,
                      "grpc: method must be POST");
    return;
  }
  if (call->content_type == NULL ||
      strncmp(call->content_type, "application/grpc", 16) != 0 ||
      (call->content_type[16] != '\0' && call->content_type[16] != '+' &&
       call->content_type[16] != ';')) {
    queue_status_http(call, 415, KEEL_GRPC_INTERNAL,
                      "invalid gRPC request content-type");
    return;
  }
  if (call->path == NULL) {
    queue_status(call, KEEL_GRPC_UNIMPLEMENTED, "malformed method name");
    return;
  }
  const struct method_entry *m = find_method(srv, call->path);
  if (m == NULL) {
    char msg[512];
    unknown_method_message(srv, call->path, msg, sizeof(msg));
    srv->stats.calls_unimplemented++;
    queue_status(call, KEEL_GRPC_UNIMPLEMENTED, msg);
    return;
  }
  call->method = m;
  if (call->encoding && strcmp(call->encoding, "identity") != 0) {
    char msg[256];
    snprintf(msg, sizeof(msg),
             "grpc: Decompressor is not installed for grpc-encoding \"%.100s\"",
             call->encoding);
    queue_status(call, KEEL_GRPC_UNIMPLEMENTED, msg);
    return;
  }
  srv->stats.calls_started++;
  if (call->has_timeout) {
    call->deadline_at = uv_now(srv->loop) + call->timeout_ms;
    uv_timer_init(srv->loop, &call->timer);
    call->timer.data = call;
    call->timer_inited = 1;
    uv_timer_start(&call->timer, on_deadline, call->timeout_ms, 0);
  }
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame,
                         void *ud) {
  struct keel_h2_conn *c = ud;
  if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) &&
      c->goaway == 1 && memcmp(frame->ping.opaque_data, GOAWAY_PING, 8) == 0) {
    final_goaway(c);
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
    return 0;
  keel_grpc_call *call =
      nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (call == NULL)
    return 0;
  if (frame->hd.type == NGHTTP2_HEADERS &&
      frame->headers.cat == NGHTTP2_HCAT_REQUEST)
    dispatch(c, call);
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
    call->remote_closed = 1;
    if (call->method == NULL || call->status_queued)
      return 0;
    if (call->paused || keel_buf_size(&call->held) > 0) {
      call->end_pending = 1;
      return 0;
    }
    hold(call);
    end_of_input(call);
    release(call);
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud) {
  (void)flags;
  (void)ud;
  keel_grpc_call *call = nghttp2_session_get_stream_user_data(ng, stream_id);
  if (call == NULL || call->method == NULL || call->status_queued ||
      call->handler_done) {
    nghttp2_session_consume(ng, stream_id, len);
    return 0;
  }
  if (call->paused || keel_buf_size(&call->held) > 0) {
    /* Un-consumed, so the peer cannot send past the window: a peer that
     * does is broken. */
    if (keel_buf_size(&call->held) + len > STREAM_WINDOW ||
        keel_buf_append(&call->held, data, len) != 0) {
      nghttp2_session_consume(ng, stream_id, len);
      call_fail(call, KEEL_ELIMIT, KEEL_GRPC_RESOURCE_EXHAUSTED,
                "grpc: peer sent past the flow-control window");
    }
    return 0;
  }
  hold(call);
  ssize_t used = feed(call, data, len);
  if (used < 0) {
    nghttp2_session_consume(ng, stream_id, len);
  } else {
    nghttp2_session_consume(ng, stream_id, (size_t)used);
    size_t rest = len - (size_t)used;
    if (rest > 0 && call->conn && !call->status_queued) {
      /* Paused mid-chunk: hold the rest, un-consumed. */
      if (keel_buf_append(&call->held, data + used, rest) != 0) {
        nghttp2_session_consume(ng, stream_id, rest);
        call_fail(call, -ENOMEM, KEEL_GRPC_RESOURCE_EXHAUSTED,
                  "grpc: out of memory holding input");
      }
    } else if (rest > 0) {
      nghttp2_session_consume(ng, stream_id, rest); /* call over: drop */
    }
  }
  release(call);
  return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame,
                         void *ud) {
  (void)ud;
  /* After our END_STREAM, a client still sending is told to stop, as
   * grpc-go does (RST_STREAM NO_ERROR). */
  if (frame->hd.type == NGHTTP2_HEADERS &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    keel_grpc_call *call =
        nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (call && !call->remote_closed)
      nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                NGHTTP2_NO_ERROR);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t stream_id,
                           uint32_t error_code, void *ud) {
  (void)ud;
  keel_grpc_call *call = nghttp2_session_get_stream_user_data(ng, stream_id);
  if (call == NULL)
    return 0;
  nghttp2_session_set_stream_user_data(ng, stream_id, NULL);
  (void)error_code; /* any close before our status is a cancellation */
  if (!call->status_queued) {
    call->close_reason = KEEL_ECANCELED;
    if (call->owned)
      call->srv->stats.calls_canceled++;
  }
  call_detach(call);
  hold(call);
  notify_close(call);
  release(call);
  return 0;
}

/* ---- connection ------------------------------------------------------- */

static void conn_flush(struct keel_h2_conn *c) {
  if (c->done)
    return;
  c->busy = 1;
  do {
    c->want_flush = 0;
    while (c->io->ops->pending(c->io) < IO_HIGH_WATER) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(c->ng, &data);
      if (n < 0) {
        keel_logf(KEEL_LOG_WARN, "grpc", "http2 send failed: %s",
                  nghttp2_strerror((int)n));
        c->busy = 0;
        conn_fail(c);
        return;
      }
      if (n == 0)
        break;
      if (c->io->ops->write(c->io, data, (size_t)n) != 0) {
        c->busy = 0;
        conn_fail(c);
        return;
      }
    }
    c->io->ops->flush(c->io);
    if (c->notify_pending) {
      c->notify_pending = 0;
      size_t half = c->srv->cfg.stream_send_buffer_bytes / 2;
      keel_grpc_call *next;
      for (keel_grpc_call *call = c->calls; call; call = next) {
        next = call->next;
        if (!call->writable_wanted || !call->owned || call->handler_done)
          continue;
        if (keel_grpc_call_writable(call) < half)
          continue;
        call->writable_wanted = 0;
        if (call->method->m.on_writable) {
          cb_enter(call);
          call->method->m.on_writable(call, call->method->m.ud);
          cb_leave(call);
        }
      }
    }
  } while (c->want_flush);
  c->busy = 0;
  if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) &&
      c->io->ops->pending(c->io) == 0)
    conn_fail(c); /* finished: GOAWAY done and no stream left */
}

int keel_h2_conn_new(keel_grpc_server *srv, struct keel_net_io *io,
                     void (*on_done)(void *owner), void *owner,
                     struct keel_h2_conn **out) {
  struct keel_h2_conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return -ENOMEM;
  c->srv = srv;
  c->io = io;
  c->on_done = on_done;
  c->owner = owner;

  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    free(c);
    return -ENOMEM;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    free(c);
    return -ENOMEM;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
  /* grpc-go sends the dial target as :authority, and etcdctl dials member
   * URLs with their scheme ("http://127.0.0.1:2379": `endpoint status
   * --cluster`, `defrag --cluster`), which nghttp2's HTTP checks reset with
   * PROTOCOL_ERROR while Go's server (etcd) accepts it. gRPC needs none of
   * those checks: dispatch() checks :method, content-type and :path itself
   * (decision 0923). */
  nghttp2_option_set_no_http_messaging(opt, 1);
  int rv = nghttp2_session_server_new2(&c->ng, cbs, c, opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rv != 0) {
    free(c);
    return -ENOMEM;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
       srv->cfg.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       (uint32_t)srv->cfg.max_header_list_bytes},
  };
  rv = nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 3);
  if (rv == 0)
    rv = nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                               CONN_WINDOW);
  if (rv != 0) {
    nghttp2_session_del(c->ng);
    free(c);
    return -ENOMEM;
  }
  srv->n_conns++;
  *out = c;
  return 0;
}

int keel_h2_conn_recv(struct keel_h2_conn *c, const uint8_t *data, size_t len) {
  if (c->done)
    return KEEL_ESTOPPED;
  c->busy = 1;
  ssize_t n = nghttp2_session_mem_recv(c->ng, data, len);
  c->busy = 0;
  if (n < 0) {
    keel_logf(KEEL_LOG_INFO, "grpc", "http2 protocol error from client: %s",
              nghttp2_strerror((int)n));
    /* Let nghttp2 send its GOAWAY before we close, when it can. */
    conn_flush(c);
    conn_fail(c);
    return KEEL_EBADMSG;
  }
  conn_flush(c);
  return 0;
}

void keel_h2_conn_drained(struct keel_h2_conn *c) {
  conn_kick(c);
}

/* Graceful close in two steps (RFC 9113 section 6.8): a GOAWAY notice with
 * the largest stream id plus a PING; when the PING comes back, every stream
 * the client sent before seeing the notice has arrived, and the final
 * GOAWAY names the last one. So no request racing the shutdown is refused.
 * A client that never answers the PING is cut at the shutdown deadline. */
static void final_goaway(struct keel_h2_conn *c) {
  if (c->goaway >= 2)
    return;
  c->goaway = 2;
  nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(c->ng),
                        NGHTTP2_NO_ERROR, NULL, 0);
  conn_kick(c);
}

void keel_h2_conn_goaway(struct keel_h2_conn *c) {
  if (c->goaway || c->done)
    return;
  c->goaway = 1;
  if (nghttp2_submit_shutdown_notice(c->ng) != 0 ||
      nghttp2_submit_ping(c->ng, NGHTTP2_FLAG_NONE,
                          (const uint8_t *)GOAWAY_PING) != 0) {
    final_goaway(c);
    return;
  }
  conn_kick(c);
}

size_t keel_h2_conn_open_streams(const struct keel_h2_conn *c) {
  return c->n_calls;
}

void keel_h2_conn_free(struct keel_h2_conn *c) {
  if (c == NULL)
    return;
  c->done = 1;
  while (c->calls) {
    keel_grpc_call *call = c->calls;
    if (!call->status_queued)
      call->close_reason = KEEL_ESTOPPED;
    call_detach(call);
    hold(call);
    notify_close(call);
    release(call);
  }
  nghttp2_session_del(c->ng);
  c->srv->n_conns--;
  free(c);
}

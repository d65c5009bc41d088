/* fuzz_grpc.c — libFuzzer target: the client port's whole receive path,
 * reached the way a client reaches it: TCP, the HTTP/2-preface sniffing,
 * nghttp2's framing, HEADERS/grpc-timeout/metadata handling, the 5-byte
 * gRPC message prefix and reassembly, call dispatch, flow control, and the
 * HTTP/1.1 side for input that is not HTTP/2 (server/client_listener.h,
 * server/grpc_server.h).
 *
 * One real listener on 127.0.0.1 serves four test methods that cover the
 * handler shapes the etcd services use:
 *   /fuzz.T/Unary   echoes the request (keel_grpc_call_reply)
 *   /fuzz.T/Later   answers from a 0 ms timer, after the stream may be gone
 *   /fuzz.T/Server  server stream: three messages, then NOT_FOUND
 *   /fuzz.T/Bidi    echoes each message, finishes after the third or on
 *                   half-close
 * and an HTTP/1.1 route "/" that echoes the body.
 *
 * Byte 0 of the input picks the form of the rest:
 *   even: raw bytes, written as they are (seeds carry a real preface);
 *   odd:  a program of HTTP/2 frames built here (so that the fuzzer reaches
 *         deep states without learning HPACK): after the preface and an
 *         empty SETTINGS, each op byte is one of HEADERS (a new stream, a
 *         chosen path, content-type, grpc-timeout, metadata), DATA (a gRPC
 *         message whose prefix may lie about its length), RST_STREAM,
 *         WINDOW_UPDATE, PING, SETTINGS, or raw bytes.
 * The client writes it all, half-closes, and reads until the server closes.
 *
 * What must hold, beyond no crash / leak / sanitizer report:
 *   - the server closes the connection once the input ends (EOF); one still
 *     open after GUARD_MS is a hang;
 *   - every call a handler saw is released: once the connection is gone
 *     and the handlers' timers ran, the server has no active call and every
 *     call we saw was finished exactly once;
 *   - no message reaches a handler larger than max_recv_msg_bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "client_listener.h"
#include "grpc_server.h"
#include "keel_log.h"

#define GUARD_MS 5000
#define MAX_RECV 4096

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_grpc: %s\n", what);                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static uv_loop_t loop;
static keel_client_listener *listener;
static keel_grpc_server *grpc;
static int port;

/* Calls the handlers saw and have not finished; timers not yet run. */
static long calls_open;
static long timers_open;

/* The handlers' state per call (the call's user pointer). */
struct call_state {
  int finished;
  int timer_pending;
  int messages;
  keel_grpc_call *call;
  uv_timer_t timer;
};

static struct call_state *state_of(keel_grpc_call *call) {
  struct call_state *s = keel_grpc_call_user(call);
  if (!s) {
    s = calloc(1, sizeof *s);
    CHECK(s, "out of memory");
    s->call = call;
    keel_grpc_call_set_user(call, s);
    calls_open++;
  }
  return s;
}

static void finish(struct call_state *s, int code, const char *msg) {
  CHECK(!s->finished, "a call finished twice");
  s->finished = 1;
  keel_grpc_call_finish(s->call, code, msg);
  calls_open--;
  if (!s->timer_pending)
    free(s);
}

static void on_timer_closed(uv_handle_t *h) {
  struct call_state *s = h->data;
  timers_open--;
  free(s);
}

static void on_later(uv_timer_t *t) {
  struct call_state *s = t->data; /* freed once the handle is closed */
  CHECK(!s->finished, "timer after finish");
  s->finished = 1;
  keel_grpc_call_finish(s->call, 0, NULL); /* KEEL_ECANCELED is fine */
  calls_open--;
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void on_message(keel_grpc_call *call, const uint8_t *msg, size_t len,
                       void *ud) {
  const char *kind = ud;
  CHECK(len <= MAX_RECV, "a message past max_recv_msg_bytes delivered");
  struct call_state *s = state_of(call);
  CHECK(!s->finished, "a callback after finish");
  s->messages++;
  switch (kind[0]) {
  case 'U':
    s->finished = 1;
    keel_grpc_call_reply(call, msg, len);
    calls_open--;
    free(s);
    break;
  case 'L':
    CHECK(uv_timer_init(&loop, &s->timer) == 0, "timer_init");
    s->timer.data = s;
    s->timer_pending = 1;
    timers_open++;
    uv_timer_start(&s->timer, on_later, 0, 0);
    break;
  case 'S':
    for (int i = 0; i < 3; i++)
      keel_grpc_call_send(call, msg, len);
    finish(s, 5, "fuzz: not found");
    break;
  case 'B':
    keel_grpc_call_send(call, msg, len); /* KEEL_EBUSY is fine */
    if (s->messages >= 3)
      finish(s, 0, NULL);
    break;
  }
}

static void on_half_close(keel_grpc_call *call, void *ud) {
  (void)ud;
  struct call_state *s = state_of(call);
  CHECK(!s->finished, "half-close after finish");
  finish(s, 0, NULL);
}

static void on_close(keel_grpc_call *call, int reason, void *ud) {
  (void)ud;
  (void)reason;
  struct call_state *s = state_of(call);
  CHECK(!s->finished, "on_close after finish");
  if (s->timer_pending)
    return; /* on_later finishes it */
  finish(s, 1, "closed");
}

static void on_http(keel_http_request *r, void *ud) {
  (void)ud;
  size_t len;
  const uint8_t *body = keel_http_request_body(r, &len);
  keel_http_respond(r, 200, "application/octet-stream", body, len, NULL);
}

static void setup(void) {
  keel_log_set_level(KEEL_LOG_OFF);
  CHECK(uv_loop_init(&loop) == 0, "loop_init");
  struct keel_client_listener_config cfg;
  keel_client_listener_config_default(&cfg);
  cfg.max_concurrent_streams = 8;
  cfg.max_recv_msg_bytes = MAX_RECV;
  cfg.max_send_msg_bytes = 3 * MAX_RECV;
  cfg.stream_send_buffer_bytes = 8192;
  cfg.conn_send_buffer_bytes = 32768;
  cfg.max_header_list_bytes = 2048;
  cfg.head_timeout_ms = 2000;
  cfg.http1.max_body_bytes = 4096;
  CHECK(keel_client_listener_new(&loop, &cfg, &listener) == 0, "listener");
  grpc = keel_client_listener_grpc(listener);
  static const struct {
    const char *name, *kind;
    enum keel_grpc_kind k;
  } m[] = {{"/fuzz.T/Unary", "U", KEEL_GRPC_UNARY},
           {"/fuzz.T/Later", "L", KEEL_GRPC_UNARY},
           {"/fuzz.T/Server", "S", KEEL_GRPC_SERVER_STREAM},
           {"/fuzz.T/Bidi", "B", KEEL_GRPC_BIDI}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    struct keel_grpc_method d = {
        .name = m[i].name,
        .kind = m[i].k,
        .ud = (void *)m[i].kind,
        .on_message = on_message,
        .on_half_close = m[i].k == KEEL_GRPC_BIDI ? on_half_close : NULL,
        .on_close = on_close,
    };
    CHECK(keel_grpc_server_register(grpc, &d) == 0, "register");
  }
  CHECK(keel_client_listener_route(listener, NULL, "/", on_http, NULL) == 0,
        "route");
  CHECK(keel_client_listener_start(listener, "127.0.0.1", 0) == 0, "start");
  port = keel_client_listener_port(listener);
  CHECK(port > 0, "no port");
}

/* --- the structured form: HTTP/2 frames built from the input ------------ */

struct out {
  uint8_t *b;
  size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n) {
  if (o->len + n > o->cap) {
    o->cap = (o->len + n) * 2 + 64;
    o->b = realloc(o->b, o->cap);
    CHECK(o->b, "out of memory");
  }
  memcpy(o->b + o->len, p, n);
  o->len += n;
}

static void frame_head(struct out *o, size_t len, uint8_t type, uint8_t flags,
                       uint32_t stream) {
  uint8_t h[9] = {(uint8_t)(len >> 16),
                  (uint8_t)(len >> 8),
                  (uint8_t)len,
                  type,
                  flags,
                  (uint8_t)(stream >> 24 & 0x7f),
                  (uint8_t)(stream >> 16),
                  (uint8_t)(stream >> 8),
                  (uint8_t)stream};
  put(o, h, 9);
}

/* HPACK "literal header field without indexing, new name", no Huffman;
 * lengths below 127 fit the 7-bit prefix. */
static void hpack_literal(struct out *o, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  CHECK(nl < 127 && vl < 127, "header too long for the builder");
  uint8_t z = 0, l;
  put(o, &z, 1);
  l = (uint8_t)nl;
  put(o, &l, 1);
  put(o, name, nl);
  l = (uint8_t)vl;
  put(o, &l, 1);
  put(o, value, vl);
}

struct reader {
  const uint8_t *p;
  size_t n;
};

static uint8_t take(struct reader *r) {
  if (!r->n)
    return 0;
  r->n--;
  return *r->p++;
}

static void build_program(struct reader *r, struct out *o) {
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  put(o, preface, sizeof preface - 1);
  frame_head(o, 0, 0x4, 0, 0); /* SETTINGS, empty */
  static const char *const paths[] = {"/fuzz.T/Unary",
                                      "/fuzz.T/Later",
                                      "/fuzz.T/Server",
                                      "/fuzz.T/Bidi",
                                      "/fuzz.T/Nope",
                                      "nopath",
                                      "/"};
  static const char *const ctypes[] = {"application/grpc",
                                       "application/grpc+proto", "text/plain",
                                       "application/grpc-web"};
  uint32_t stream = 0;
  int ops = 0;
  while (r->n && ops++ < 64) {
    uint8_t op = take(r);
    switch (op % 7) {
    case 0: { /* HEADERS: a new request */
      stream = stream ? stream + 2 : 1;
      if (op & 0x80)
        stream += 2; /* skip an id: ids need not be consecutive */
      uint8_t sel = take(r);
      struct out h = {0};
      hpack_literal(&h, ":method", sel & 0x80 ? "GET" : "POST");
      hpack_literal(&h, ":scheme", "http");
      hpack_literal(&h, ":path", paths[sel % 7]);
      hpack_literal(&h, ":authority", "127.0.0.1");
      hpack_literal(&h, "content-type", ctypes[(sel >> 3) % 4]);
      hpack_literal(&h, "te", "trailers");
      if (sel & 0x40) {
        char t[16];
        snprintf(t, sizeof t, "%um", (unsigned)take(r));
        hpack_literal(&h, "grpc-timeout", t);
      }
      if (sel & 0x20)
        hpack_literal(&h, "token", "fuzz-token");
      frame_head(o, h.len, 0x1, 0x4 | (op & 0x10 ? 0x1 : 0), stream);
      put(o, h.b, h.len);
      free(h.b);
      break;
    }
    case 1: { /* DATA: one gRPC message, its prefix maybe lying */
      size_t n = take(r) % 64;
      uint8_t lie = take(r);
      uint32_t claimed = lie & 0x80   ? (uint32_t)n + (lie & 0x7f)
                         : lie & 0x40 ? MAX_RECV + 1u
                                      : (uint32_t)n;
      uint8_t prefix[5] = {(uint8_t)(lie & 0x20 ? 1 : 0),
                           (uint8_t)(claimed >> 24), (uint8_t)(claimed >> 16),
                           (uint8_t)(claimed >> 8), (uint8_t)claimed};
      if (n > r->n)
        n = r->n;
      frame_head(o, 5 + n, 0x0, op & 0x10 ? 0x1 : 0, stream);
      put(o, prefix, 5);
      put(o, r->p, n);
      r->p += n;
      r->n -= n;
      break;
    }
    case 2: { /* RST_STREAM */
      uint8_t code[4] = {0, 0, 0, take(r) % 14};
      frame_head(o, 4, 0x3, 0, stream);
      put(o, code, 4);
      break;
    }
    case 3: { /* WINDOW_UPDATE on the connection or the stream */
      uint8_t inc[4] = {0, take(r), take(r), take(r)};
      frame_head(o, 4, 0x8, 0, op & 0x10 ? stream : 0);
      put(o, inc, 4);
      break;
    }
    case 4: { /* PING */
      uint8_t data[8] = {take(r), 0, 0, 0, 0, 0, 0, 0};
      frame_head(o, 8, 0x6, 0, 0);
      put(o, data, 8);
      break;
    }
    case 5: { /* SETTINGS with one entry */
      uint8_t e[6] = {0,      (uint8_t)(take(r) % 8), take(r), take(r), take(r),
                      take(r)};
      frame_head(o, 6, 0x4, 0, 0);
      put(o, e, 6);
      break;
    }
    case 6: { /* raw bytes */
      size_t n = take(r) % 32;
      if (n > r->n)
        n = r->n;
      put(o, r->p, n);
      r->p += n;
      r->n -= n;
      break;
    }
    }
  }
}

/* --- the client ------------------------------------------------------- */

struct client {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  uv_shutdown_t shutdown;
  const uint8_t *data;
  size_t size;
  char rbuf[16384];
  int closed;
};

static void on_client_closed(uv_handle_t *h) {
  ((struct client *)h->data)->closed = 1;
}

static void client_close(struct client *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void on_client_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf) {
  (void)s;
  struct client *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  if (n < 0) /* EOF or reset: the server closed its end */
    client_close(s->data);
}

static void on_written(uv_write_t *req, int status) {
  (void)req;
  (void)status; /* the server may close before reading everything */
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

static void on_connected(uv_connect_t *req, int status) {
  struct client *c = req->data;
  CHECK(status == 0, "cannot connect to the listener");
  uv_buf_t buf = uv_buf_init((char *)c->data, (unsigned)c->size);
  CHECK(uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written) == 0,
        "write");
  CHECK(uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) == 0,
        "shutdown");
  CHECK(uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc,
                      on_client_read) == 0,
        "read_start");
}

static void on_guard(uv_timer_t *t) {
  *(int *)t->data = 1;
}

static void over_tcp(const uint8_t *data, size_t size) {
  struct client c;
  memset(&c, 0, sizeof c);
  CHECK(uv_tcp_init(&loop, &c.tcp) == 0, "tcp_init");
  c.tcp.data = &c;
  c.connect.data = &c;
  c.data = data;
  c.size = size;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  CHECK(uv_tcp_connect(&c.connect, &c.tcp, (struct sockaddr *)&addr,
                       on_connected) == 0,
        "tcp_connect");

  int expired = 0;
  uv_timer_t guard;
  uv_timer_init(&loop, &guard);
  guard.data = &expired;
  uv_timer_start(&guard, on_guard, GUARD_MS, 0);
  struct keel_client_listener_stats ls;
  for (;;) {
    keel_client_listener_stats(listener, &ls);
    if ((c.closed && ls.connections_open == 0 && timers_open == 0) || expired)
      break;
    uv_run(&loop, UV_RUN_ONCE);
  }
  CHECK(c.closed, "the server kept a connection open after EOF");
  CHECK(ls.connections_open == 0, "a server connection outlived the client");
  CHECK(timers_open == 0, "a handler timer never ran");
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!listener)
    setup();
  if (size < 1)
    return 0;
  struct out prog = {0};
  if (data[0] & 1) {
    struct reader r = {data + 1, size - 1};
    build_program(&r, &prog);
    over_tcp(prog.b, prog.len);
  } else {
    over_tcp(data + 1, size - 1);
  }
  free(prog.b);
  CHECK(calls_open == 0, "a call the handler saw was never closed for it");
  struct keel_grpc_server_stats st;
  keel_grpc_server_stats(grpc, &st);
  CHECK(st.active_calls == 0, "the server still holds a call");
  return 0;
}

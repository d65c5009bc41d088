/* test_grpc_delivery.c — the client transport's delivery verdict
 * (keel_grpc_client_delivery) for each way a call can end, provoked
 * deterministically against a raw HTTP/2 peer on 127.0.0.1 that this file
 * scripts frame by frame:
 *   NOT_SENT         connect to a closed port; cancel before connecting
 *   REFUSED          RST_STREAM(REFUSED_STREAM); GOAWAY(last_stream_id 0);
 *                    GOAWAY(last 1) then close: stream 3 refused, 1 not
 *   MAYBE_PROCESSED  the peer reads the whole request, then drops the
 *                    connection; a cancel after the peer has the request
 *   ANSWERED         a trailers-only status (etcd's "no leader")
 * The peer acts only after it has parsed the request frames it waits for,
 * so no test depends on timing. A watchdog fails a test after 10 s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "grpc_client.h"

enum peer_mode {
  PEER_RST_REFUSED,   /* RST_STREAM(REFUSED_STREAM) on stream 1 */
  PEER_GOAWAY_0,      /* GOAWAY(last_stream_id 0), connection kept */
  PEER_GOAWAY_1_DROP, /* streams 1 and 3 in; GOAWAY(last 1), then close */
  PEER_DROP,          /* stream 1 in, then close without a byte */
  PEER_HOLD,          /* stream 1 in, then nothing */
  PEER_ANSWER,        /* trailers-only UNAVAILABLE "etcdserver: no leader" */
};

struct peer {
  uv_loop_t *loop;
  enum peer_mode mode;
  uv_tcp_t listener;
  uv_tcp_t conn;
  int port, accepted, acted, conn_closed;
  uint8_t in[64 * 1024];
  size_t in_len, parsed;
  int preface_done;
  int ended[4]; /* END_STREAM seen on stream 1 (index 1) and 3 (index 3) */
};

struct fixture {
  uv_loop_t loop;
  struct peer peer;
  keel_grpc_channel *ch;
  uv_timer_t watchdog;
  int watchdog_fired;
  int peer_gone; /* the listener was closed before connecting */
};

struct status {
  int done, code;
  enum keel_grpc_delivery delivery;
  char message[256];
};

/* ---- the scripted peer ---- */

static void put_frame_header(uint8_t *p, size_t len, uint8_t type,
                             uint8_t flags, uint32_t sid) {
  p[0] = (uint8_t)(len >> 16);
  p[1] = (uint8_t)(len >> 8);
  p[2] = (uint8_t)len;
  p[3] = type;
  p[4] = flags;
  p[5] = (uint8_t)(sid >> 24);
  p[6] = (uint8_t)(sid >> 16);
  p[7] = (uint8_t)(sid >> 8);
  p[8] = (uint8_t)sid;
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

struct peer_write {
  uv_write_t req;
  uint8_t data[512];
};

static void on_peer_written(uv_write_t *req, int status) {
  (void)status; /* the client may already have closed */
  free(req);
}

static void peer_send(struct peer *p, const uint8_t *data, size_t len) {
  struct peer_write *w = malloc(sizeof(*w));
  assert_non_null(w);
  assert_true(len <= sizeof(w->data));
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
  assert_int_equal(
      uv_write(&w->req, (uv_stream_t *)&p->conn, &b, 1, on_peer_written), 0);
}

static void on_peer_conn_closed(uv_handle_t *h) {
  ((struct peer *)h->data)->conn_closed = 1;
}

static void peer_close(struct peer *p) {
  if (!uv_is_closing((uv_handle_t *)&p->conn))
    uv_close((uv_handle_t *)&p->conn, on_peer_conn_closed);
}

static void on_peer_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  struct peer *p = req->data;
  free(req);
  peer_close(p); /* after the queued frames left */
}

/* SETTINGS (empty: the server preface) then mode-specific frames. */
static void peer_act(struct peer *p) {
  uint8_t out[512];
  size_t n = 0;
  put_frame_header(out, 0, NGHTTP2_SETTINGS, 0, 0);
  n += 9;
  switch (p->mode) {
  case PEER_RST_REFUSED:
    put_frame_header(out + n, 4, NGHTTP2_RST_STREAM, 0, 1);
    put_u32(out + n + 9, NGHTTP2_REFUSED_STREAM);
    n += 13;
    break;
  case PEER_GOAWAY_0:
  case PEER_GOAWAY_1_DROP:
    put_frame_header(out + n, 8, NGHTTP2_GOAWAY, 0, 0);
    put_u32(out + n + 9, p->mode == PEER_GOAWAY_0 ? 0 : 1);
    put_u32(out + n + 13, NGHTTP2_NO_ERROR);
    n += 17;
    break;
  case PEER_DROP:
    peer_close(p); /* not even the preface */
    return;
  case PEER_HOLD:
    return;
  case PEER_ANSWER: {
    nghttp2_hd_deflater *def;
    assert_int_equal(nghttp2_hd_deflate_new(&def, 4096), 0);
    const char *hv[][2] = {{":status", "200"},
                           {"content-type", "application/grpc"},
                           {"grpc-status", "14"},
                           {"grpc-message", "etcdserver: no leader"}};
    nghttp2_nv nv[4];
    for (size_t i = 0; i < 4; i++)
      nv[i] = (nghttp2_nv){(uint8_t *)hv[i][0], (uint8_t *)hv[i][1],
                           strlen(hv[i][0]), strlen(hv[i][1]),
                           NGHTTP2_NV_FLAG_NONE};
    ssize_t blen =
        nghttp2_hd_deflate_hd(def, out + n + 9, sizeof(out) - n - 9, nv, 4);
    nghttp2_hd_deflate_del(def);
    assert_true(blen > 0);
    put_frame_header(out + n, (size_t)blen, NGHTTP2_HEADERS,
                     NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS, 1);
    n += 9 + (size_t)blen;
    break;
  }
  }
  peer_send(p, out, n);
  if (p->mode == PEER_GOAWAY_1_DROP) {
    uv_shutdown_t *sd = malloc(sizeof(*sd));
    assert_non_null(sd);
    sd->data = p;
    assert_int_equal(uv_shutdown(sd, (uv_stream_t *)&p->conn, on_peer_shutdown),
                     0);
  }
}

/* Parses the client's preface and frames; acts once the request(s) the
 * mode waits for are complete (END_STREAM seen). */
static void peer_parse(struct peer *p) {
  if (!p->preface_done) {
    if (p->in_len < NGHTTP2_CLIENT_MAGIC_LEN)
      return;
    assert_memory_equal(p->in, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    p->parsed = NGHTTP2_CLIENT_MAGIC_LEN;
    p->preface_done = 1;
  }
  while (p->in_len - p->parsed >= 9) {
    const uint8_t *h = p->in + p->parsed;
    size_t flen = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
    if (p->in_len - p->parsed < 9 + flen)
      break;
    uint32_t sid = (((uint32_t)h[5] & 0x7f) << 24) | ((uint32_t)h[6] << 16) |
                   ((uint32_t)h[7] << 8) | h[8];
    if ((h[3] == NGHTTP2_HEADERS || h[3] == NGHTTP2_DATA) &&
        (h[4] & NGHTTP2_FLAG_END_STREAM) && sid < 4)
      p->ended[sid] = 1;
    p->parsed += 9 + flen;
  }
  int ready =
      p->mode == PEER_GOAWAY_1_DROP ? p->ended[1] && p->ended[3] : p->ended[1];
  if (ready && !p->acted) {
    p->acted = 1;
    peer_act(p);
  }
}

static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct peer *p = h->data;
  *buf = uv_buf_init((char *)p->in + p->in_len,
                     (unsigned)(sizeof(p->in) - p->in_len));
}

static void peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct peer *p = s->data;
  if (nread < 0) {
    peer_close(p);
    return;
  }
  p->in_len += (size_t)nread;
  assert_true(p->in_len < sizeof(p->in)); /* tests send little */
  peer_parse(p);
}

static void peer_on_connection(uv_stream_t *l, int status) {
  struct peer *p = l->data;
  assert_int_equal(status, 0);
  assert_false(p->accepted); /* one connection per test */
  p->accepted = 1;
  uv_tcp_init(p->loop, &p->conn);
  p->conn.data = p;
  assert_int_equal(uv_accept(l, (uv_stream_t *)&p->conn), 0);
  assert_int_equal(
      uv_read_start((uv_stream_t *)&p->conn, peer_alloc, peer_read), 0);
}

static void peer_start(struct peer *p, uv_loop_t *loop, enum peer_mode mode) {
  memset(p, 0, sizeof(*p));
  p->loop = loop;
  p->mode = mode;
  uv_tcp_init(loop, &p->listener);
  p->listener.data = p;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  assert_int_equal(uv_tcp_bind(&p->listener, (struct sockaddr *)&sa, 0), 0);
  assert_int_equal(
      uv_listen((uv_stream_t *)&p->listener, 4, peer_on_connection), 0);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  uv_tcp_getsockname(&p->listener, (struct sockaddr *)&ss, &len);
  p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- fixture ---- */

static void on_watchdog(uv_timer_t *t) {
  ((struct fixture *)t->data)->watchdog_fired = 1;
}

static void run_until(struct fixture *f, const int *flag) {
  while (!*flag && !f->watchdog_fired)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_false(f->watchdog_fired);
}

static int listener_closed;
static void on_listener_closed(uv_handle_t *h) {
  (void)h;
  listener_closed = 1;
}

/* gone = 1: the peer's port is closed before the channel connects, so
 * nothing listens there. */
static void setup_peer_as(struct fixture *f, enum peer_mode mode, int gone) {
  memset(f, 0, sizeof(*f));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  peer_start(&f->peer, &f->loop, mode);
  if (gone) {
    listener_closed = 0;
    uv_close((uv_handle_t *)&f->peer.listener, on_listener_closed);
    while (!listener_closed)
      uv_run(&f->loop, UV_RUN_ONCE);
    f->peer_gone = 1;
  }
  assert_int_equal(
      keel_grpc_channel_new(&f->loop, "127.0.0.1", f->peer.port, NULL, &f->ch),
      0);
  uv_timer_init(&f->loop, &f->watchdog);
  f->watchdog.data = f;
  uv_timer_start(&f->watchdog, on_watchdog, 10000, 0);
  uv_unref((uv_handle_t *)&f->watchdog);
}

static void setup_peer(struct fixture *f, enum peer_mode mode) {
  setup_peer_as(f, mode, 0);
}

static int channel_closed;
static void on_channel_closed(void *ud) {
  (void)ud;
  channel_closed = 1;
}

static void teardown(struct fixture *f) {
  channel_closed = 0;
  keel_grpc_channel_close(f->ch, on_channel_closed, NULL);
  run_until(f, &channel_closed);
  if (f->peer.accepted)
    peer_close(&f->peer);
  if (!f->peer_gone)
    uv_close((uv_handle_t *)&f->peer.listener, NULL);
  uv_close((uv_handle_t *)&f->watchdog, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void st_msg(keel_grpc_client_call *call, const uint8_t *msg, size_t len,
                   void *ud) {
  (void)call;
  (void)msg;
  (void)len;
  (void)ud;
}

static void st_status(keel_grpc_client_call *call, int code,
                      const char *message, void *ud) {
  struct status *s = ud;
  s->done = 1;
  s->code = code;
  s->delivery = keel_grpc_client_delivery(call);
  snprintf(s->message, sizeof(s->message), "%s", message);
}

static const struct keel_grpc_client_callbacks st_cbs = {st_msg, st_status,
                                                         NULL};

/* Starts a call and sends one message with END_STREAM. */
static keel_grpc_client_call *call_put(struct fixture *f, struct status *s) {
  keel_grpc_client_call *call;
  memset(s, 0, sizeof(*s));
  assert_int_equal(keel_grpc_client_start(f->ch, "/etcdserverpb.KV/Put", 0,
                                          NULL, &st_cbs, s, &call),
                   0);
  assert_int_equal(keel_grpc_client_send(call, "req", 3), 0);
  assert_int_equal(keel_grpc_client_close_send(call), 0);
  return call;
}

/* ---- tests ---- */

static void test_not_sent_connect_refused(void **state) {
  (void)state;
  struct fixture f;
  setup_peer_as(&f, PEER_HOLD, 1);
  struct status s;
  call_put(&f, &s);
  run_until(&f, &s.done);
  assert_int_equal(s.code, KEEL_GRPC_UNAVAILABLE);
  assert_int_equal(s.delivery, KEEL_GRPC_NOT_SENT);
  teardown(&f);
}

static void test_not_sent_cancel_before_connect(void **state) {
  (void)state;
  struct fixture f;
  setup_peer(&f, PEER_HOLD);
  struct status s;
  keel_grpc_client_call *call = call_put(&f, &s);
  keel_grpc_client_cancel(call); /* the loop has not run: not connected */
  assert_true(s.done);
  assert_int_equal(s.code, KEEL_GRPC_CANCELLED);
  assert_int_equal(s.delivery, KEEL_GRPC_NOT_SENT);
  teardown(&f);
}

static void test_refused_rst_stream(void **state) {
  (void)state;
  struct fixture f;
  setup_peer(&f, PEER_RST_REFUSED);
  struct status s;
  call_put(&f, &s);
  run_until(&f, &s.done);
  assert_int_equal(s.code, KEEL_GRPC_UNAVAILABLE);
  assert_int_equal(s.delivery, KEEL_GRPC_REFUSED);
  /* the connection itself is fine */
  assert_int_equal(keel_grpc_channel_state(f.ch), KEEL_GRPC_CHANNEL_READY);
  teardown(&f);
}

static void test_refused_goaway_0(void **state) {
  (void)state;
  struct fixture f;
  setup_peer(&f, PEER_GOAWAY_0);
  struct status s;
  call_put(&f, &s);
  run_until(&f, &s.done);
  assert_int_equal(s.code, KEEL_GRPC_UNAVAILABLE);
  assert_int_equal(s.delivery, KEEL_GRPC_REFUSED);
  teardown(&f);
}

static void test_goaway_splits_streams(void **state) {
  (void)state;
  struct fixture f;
  setup_peer(&f, PEER_GOAWAY_1_DROP);
  struct status s1, s3;
  call_put(&f, &s1); /* stream 1: at or below last_stream_id */
  call_put(&f, &s3); /* stream 3: above it */
  run_until(&f, &s1.done);
  run_until(&f, &s3.done);
  assert_int_equal(s3.delivery, KEEL_GRPC_REFUSED);
  assert_int_equal(s1.code, KEEL_GRPC_UNAVAILABLE);
  assert_int_equal(s1.delivery, KEEL_GRPC_MAYBE_PROCESSED);
  teardown(&f);
}

static void test_maybe_processed_drop(void **state) {
  (void)state;
  struct fixture f;
  setup_peer(&f, PEER_DROP);
  struct status s;
  call_put(&f, &s);
  run_until(&f, &s.done);
  assert_true(f.peer.ended[1]); /* the peer had the whole request */
  assert_int_equal(s.code, KEEL_GRPC_UNAVAILABLE);
  assert_int_equal(s.delivery, KEEL_GRPC_MAYBE_PROCESSED);
  teardown(&f);
}

static void test_maybe_processed_cancel(void **state) {
  (void)state;
  struct fixture f;
  setup_peer(&f, PEER_HOLD);
  struct status s;
  keel_grpc_client_call *call = call_put(&f, &s);
  run_until(&f, &f.peer.ended[1]);
  keel_grpc_client_cancel(call);
  assert_true(s.done);
  assert_int_equal(s.code, KEEL_GRPC_CANCELLED);
  assert_int_equal(s.delivery, KEEL_GRPC_MAYBE_PROCESSED);
  teardown(&f);
}

static void test_answered(void **state) {
  (void)state;
  struct fixture f;
  setup_peer(&f, PEER_ANSWER);
  struct status s;
  call_put(&f, &s);
  run_until(&f, &s.done);
  assert_int_equal(s.code, KEEL_GRPC_UNAVAILABLE);
  assert_string_equal(s.message, "etcdserver: no leader");
  assert_int_equal(s.delivery, KEEL_GRPC_ANSWERED);
  teardown(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_not_sent_connect_refused),
      cmocka_unit_test(test_not_sent_cancel_before_connect),
      cmocka_unit_test(test_refused_rst_stream),
      cmocka_unit_test(test_refused_goaway_0),
      cmocka_unit_test(test_goaway_splits_streams),
      cmocka_unit_test(test_maybe_processed_drop),
      cmocka_unit_test(test_maybe_processed_cancel),
      cmocka_unit_test(test_answered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

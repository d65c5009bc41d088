/* test_grpc_loopback.c — the server transport and the client library
 * against each other over 127.0.0.1 on an ephemeral port, in one process
 * and one libuv loop: unary calls, unknown methods, deadlines, the message
 * size limit, a 10,000-message bidi stream with a slow reader (bounded
 * buffers), server streaming, connection loss, graceful shutdown, and
 * HTTP/1.1 on the same port.
 *
 * Nothing waits on wall-clock sleeps: each test runs the loop until the
 * event it expects has happened, under a watchdog timer that fails the test
 * if it does not within 20 s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client_listener.h"
#include "grpc_client.h"
#include "grpc_test_scaffold.h"
#include "rpc.pb-c.h"

struct fixture {
  uv_loop_t loop;
  keel_client_listener *l;
  struct grpc_scaffold scaffold;
  keel_grpc_channel *ch;
  int port;
  uv_timer_t watchdog;
  int watchdog_fired;
  int shutdown_done;
};

static void on_watchdog(uv_timer_t *t) {
  struct fixture *f = t->data;
  f->watchdog_fired = 1;
}

/* Runs the loop until *flag is set (or fails after the watchdog). */
static void run_until(struct fixture *f, const int *flag) {
  while (!*flag && !f->watchdog_fired)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_false(f->watchdog_fired);
}

static void setup_with(struct fixture *f,
                       const struct keel_client_listener_config *cfg) {
  memset(f, 0, sizeof(*f));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(keel_client_listener_new(&f->loop, cfg, &f->l), 0);
  assert_int_equal(grpc_scaffold_register(&f->scaffold, &f->loop, f->l), 0);
  assert_int_equal(keel_client_listener_start(f->l, "127.0.0.1", 0), 0);
  f->port = keel_client_listener_port(f->l);
  assert_true(f->port > 0);
  struct keel_grpc_channel_config cc;
  keel_grpc_channel_config_default(&cc);
  cc.max_send_msg_bytes = 8 * 1024 * 1024; /* to reach the server's limit */
  assert_int_equal(
      keel_grpc_channel_new(&f->loop, "127.0.0.1", f->port, &cc, &f->ch), 0);
  uv_timer_init(&f->loop, &f->watchdog);
  f->watchdog.data = f;
  uv_timer_start(&f->watchdog, on_watchdog, 20000, 0);
  uv_unref((uv_handle_t *)&f->watchdog);
}

static void on_shutdown(void *ud) {
  ((struct fixture *)ud)->shutdown_done = 1;
}

static int channel_closed;
static void on_channel_closed(void *ud) {
  (void)ud;
  channel_closed = 1;
}

static void teardown(struct fixture *f) {
  if (f->ch) {
    channel_closed = 0;
    keel_grpc_channel_close(f->ch, on_channel_closed, NULL);
    run_until(f, &channel_closed);
  }
  if (!f->shutdown_done) {
    assert_int_equal(keel_client_listener_shutdown(f->l, 1000, on_shutdown, f),
                     0);
    run_until(f, &f->shutdown_done);
  }
  struct keel_grpc_server_stats st;
  keel_grpc_server_stats(keel_client_listener_grpc(f->l), &st);
  assert_int_equal(st.active_calls, 0); /* every handler call released */
  keel_client_listener_free(f->l);
  grpc_scaffold_free(&f->scaffold);
  uv_close((uv_handle_t *)&f->watchdog, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* ---- unary helper ---- */

struct unary_result {
  int done, code;
  enum keel_grpc_delivery delivery;
  char message[512];
  uint8_t *resp;
  size_t resp_len;
};

static void unary_cb(int code, const char *message,
                     enum keel_grpc_delivery delivery, const uint8_t *resp,
                     size_t len, void *ud) {
  struct unary_result *r = ud;
  r->done = 1;
  r->code = code;
  r->delivery = delivery;
  snprintf(r->message, sizeof(r->message), "%s", message);
  if (resp) {
    r->resp = malloc(len ? len : 1);
    memcpy(r->resp, resp, len);
    r->resp_len = len;
  }
}

static void unary(struct fixture *f, const char *method, const void *req,
                  size_t len, uint64_t timeout_ms, struct unary_result *r) {
  memset(r, 0, sizeof(*r));
  assert_int_equal(keel_grpc_client_unary(f->ch, method, req, len, timeout_ms,
                                          NULL, unary_cb, r),
                   0);
  run_until(f, &r->done);
}

static void put(struct fixture *f, const char *k, const char *v,
                struct unary_result *r) {
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key.data = (uint8_t *)k;
  req.key.len = strlen(k);
  req.value.data = (uint8_t *)v;
  req.value.len = strlen(v);
  uint8_t buf[1024];
  size_t n = etcdserverpb__put_request__pack(&req, buf);
  unary(f, "/etcdserverpb.KV/Put", buf, n, 5000, r);
}

/* ---- tests ---- */

static void test_unary_put_range(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  struct unary_result r;
  put(&f, "foo", "bar", &r);
  assert_int_equal(r.code, KEEL_GRPC_OK);
  Etcdserverpb__PutResponse *pr =
      etcdserverpb__put_response__unpack(NULL, r.resp_len, r.resp);
  assert_non_null(pr);
  assert_int_equal(pr->header->revision, 2);
  etcdserverpb__put_response__free_unpacked(pr, NULL);
  free(r.resp);

  Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
  rq.key.data = (uint8_t *)"foo";
  rq.key.len = 3;
  uint8_t buf[64];
  size_t n = etcdserverpb__range_request__pack(&rq, buf);
  unary(&f, "/etcdserverpb.KV/Range", buf, n, 5000, &r);
  assert_int_equal(r.code, KEEL_GRPC_OK);
  Etcdserverpb__RangeResponse *rr =
      etcdserverpb__range_response__unpack(NULL, r.resp_len, r.resp);
  assert_non_null(rr);
  assert_int_equal(rr->n_kvs, 1);
  assert_int_equal(rr->kvs[0]->value.len, 3);
  assert_memory_equal(rr->kvs[0]->value.data, "bar", 3);
  assert_int_equal(rr->kvs[0]->mod_revision, 2);
  etcdserverpb__range_response__free_unpacked(rr, NULL);
  free(r.resp);

  /* An error from the handler arrives as a trailers-only response. */
  unary(&f, "/etcdserverpb.KV/Range", "\xff", 1, 5000, &r);
  assert_int_equal(r.code, KEEL_GRPC_INVALID_ARGUMENT);
  assert_int_equal(r.delivery, KEEL_GRPC_ANSWERED); /* the server's error */
  assert_string_equal(r.message, "malformed RangeRequest");
  teardown(&f);
}

struct observed {
  int n;
  char method[64];
  int code;
};

static void observe(const char *method, int code, uint64_t us, void *ud) {
  (void)us;
  struct observed *o = ud;
  o->n++;
  snprintf(o->method, sizeof(o->method), "%s", method ? method : "(none)");
  o->code = code;
}

static void test_unknown_method(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  struct observed o = {0};
  keel_grpc_server_set_observer(keel_client_listener_grpc(f.l), observe, &o);
  struct unary_result r;
  unary(&f, "/etcdserverpb.KV/Nope", "", 0, 5000, &r);
  assert_int_equal(r.code, KEEL_GRPC_UNIMPLEMENTED);
  assert_string_equal(r.message,
                      "unknown method Nope for service etcdserverpb.KV");
  unary(&f, "/no.Such/Thing", "", 0, 5000, &r);
  assert_int_equal(r.code, KEEL_GRPC_UNIMPLEMENTED);
  assert_string_equal(r.message, "unknown service no.Such");
  while (o.n < 2 && !f.watchdog_fired)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(o.n, 2); /* the observer sees every stream end */
  assert_string_equal(o.method, "/no.Such/Thing");
  assert_int_equal(o.code, KEEL_GRPC_UNIMPLEMENTED);
  /* the connection is still good */
  put(&f, "k", "v", &r);
  assert_int_equal(r.code, KEEL_GRPC_OK);
  free(r.resp);
  teardown(&f);
}

static void test_deadline(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  struct unary_result r;
  uint64_t t0 = uv_now(&f.loop);
  unary(&f, "/keel.test.Echo/Hang", "x", 1, 100, &r);
  assert_int_equal(r.code, KEEL_GRPC_DEADLINE_EXCEEDED);
  assert_true(uv_now(&f.loop) - t0 >= 100);
  /* The server saw it too and released the handler's call. */
  struct keel_grpc_server_stats st;
  int released = 0;
  while (!released && !f.watchdog_fired) {
    keel_grpc_server_stats(keel_client_listener_grpc(f.l), &st);
    released =
        st.active_calls == 0 && st.calls_deadline + st.calls_canceled > 0;
    if (!released)
      uv_run(&f.loop, UV_RUN_ONCE);
  }
  assert_true(released);
  teardown(&f);
}

static void test_message_too_large(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  size_t vlen = 2 * 1024 * 1024 + 100;
  char *v = malloc(vlen + 1);
  memset(v, 'x', vlen);
  v[vlen] = 0;
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key.data = (uint8_t *)"big";
  req.key.len = 3;
  req.value.data = (uint8_t *)v;
  req.value.len = vlen;
  size_t n = etcdserverpb__put_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  etcdserverpb__put_request__pack(&req, buf);
  struct unary_result r;
  unary(&f, "/etcdserverpb.KV/Put", buf, n, 5000, &r);
  assert_int_equal(r.code, KEEL_GRPC_RESOURCE_EXHAUSTED);
  char want[128];
  snprintf(want, sizeof(want),
           "grpc: received message larger than max (%zu vs. %d)", n,
           1536 * 1024 + 512 * 1024);
  assert_string_equal(r.message, want);
  /* just under the limit goes through */
  req.value.len = 1536 * 1024;
  n = etcdserverpb__put_request__pack(&req, buf);
  unary(&f, "/etcdserverpb.KV/Put", buf, n, 5000, &r);
  assert_int_equal(r.code, KEEL_GRPC_OK);
  free(r.resp);
  free(buf);
  free(v);
  teardown(&f);
}

/* ---- bidi echo with a slow reader ---- */

#define ECHO_MSGS 10000
#define ECHO_SIZE 1000

struct echo_client {
  struct fixture *f;
  keel_grpc_client_call *call;
  uint32_t sent, received;
  int done, code, order_ok, stalled_sends;
  uv_timer_t pacer;
  uint32_t read_budget;
};

static void echo_pump(struct echo_client *e) {
  uint8_t m[ECHO_SIZE];
  memset(m, 0xab, sizeof(m));
  while (e->sent < ECHO_MSGS) {
    m[0] = (uint8_t)(e->sent >> 24);
    m[1] = (uint8_t)(e->sent >> 16);
    m[2] = (uint8_t)(e->sent >> 8);
    m[3] = (uint8_t)e->sent;
    int rc = keel_grpc_client_send(e->call, m, sizeof(m));
    if (rc == KEEL_EBUSY) {
      e->stalled_sends++;
      return; /* on_writable resumes */
    }
    assert_int_equal(rc, 0);
    e->sent++;
  }
  keel_grpc_client_close_send(e->call);
}

static void echo_on_msg(keel_grpc_client_call *call, const uint8_t *msg,
                        size_t len, void *ud) {
  struct echo_client *e = ud;
  uint32_t seq = ((uint32_t)msg[0] << 24) | ((uint32_t)msg[1] << 16) |
                 ((uint32_t)msg[2] << 8) | msg[3];
  if (len != ECHO_SIZE || seq != e->received)
    e->order_ok = 0;
  e->received++;
  /* The slow reader: a small budget per pacer tick, then pause. */
  if (--e->read_budget == 0)
    keel_grpc_client_pause(call);
}

static void echo_on_status(keel_grpc_client_call *call, int code,
                           const char *message, void *ud) {
  (void)call;
  struct echo_client *e = ud;
  e->done = 1;
  e->code = code;
  e->call = NULL;
  if (code != KEEL_GRPC_OK)
    print_message("echo ended: %d %s after %u messages\n", code, message,
                  e->received);
}

static void echo_on_writable(keel_grpc_client_call *call, void *ud) {
  (void)call;
  echo_pump(ud);
}

static void echo_pace(uv_timer_t *t) {
  struct echo_client *e = t->data;
  if (e->call == NULL)
    return;
  e->read_budget = 200;
  keel_grpc_client_resume(e->call);
}

static void test_bidi_slow_reader(void **state) {
  (void)state;
  struct keel_client_listener_config cfg;
  keel_client_listener_config_default(&cfg);
  cfg.stream_send_buffer_bytes = 64 * 1024;
  struct fixture f;
  setup_with(&f, &cfg);
  struct echo_client e = {.f = &f, .order_ok = 1, .read_budget = 1};
  static const struct keel_grpc_client_callbacks cbs = {
      echo_on_msg, echo_on_status, echo_on_writable};
  assert_int_equal(keel_grpc_client_start(f.ch, "/keel.test.Echo/Echo", 0, NULL,
                                          &cbs, &e, &e.call),
                   0);
  echo_pump(&e);
  /* The reader starts paused (budget 1): run until both sides are stuck,
   * i.e. the client's sends are refused, before reading anything more. */
  while (e.stalled_sends == 0 && !f.watchdog_fired)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_true(e.stalled_sends > 0);
  uv_timer_init(&f.loop, &e.pacer);
  e.pacer.data = &e;
  uv_timer_start(&e.pacer, echo_pace, 1, 1);
  run_until(&f, &e.done);
  uv_close((uv_handle_t *)&e.pacer, NULL);
  assert_int_equal(e.code, KEEL_GRPC_OK);
  assert_int_equal(e.received, ECHO_MSGS);
  assert_true(e.order_ok);
  struct keel_grpc_server_stats st;
  keel_grpc_server_stats(keel_client_listener_grpc(f.l), &st);
  /* Bounded: the server never queued more than its stream buffer plus one
   * message, although 10 MB went through a reader that kept stopping. */
  print_message("server stream buffer high-water: %llu bytes (limit %zu), "
                "server send_busy %llu, client stalled sends %d\n",
                (unsigned long long)st.max_stream_send_buffered,
                cfg.stream_send_buffer_bytes, (unsigned long long)st.send_busy,
                e.stalled_sends);
  assert_true(st.max_stream_send_buffered <=
              cfg.stream_send_buffer_bytes + ECHO_SIZE + KEEL_GRPC_PREFIX_LEN);
  assert_true(st.send_busy > 0);
  teardown(&f);
}

/* ---- server streaming ---- */

struct flood_client {
  int done, code;
  uint32_t received, order_ok;
};

static void flood_on_msg(keel_grpc_client_call *call, const uint8_t *msg,
                         size_t len, void *ud) {
  (void)call;
  struct flood_client *c = ud;
  uint32_t seq = ((uint32_t)msg[0] << 24) | ((uint32_t)msg[1] << 16) |
                 ((uint32_t)msg[2] << 8) | msg[3];
  if (seq != c->received || len != 4096)
    c->order_ok = 0;
  c->received++;
}

static void flood_on_status(keel_grpc_client_call *call, int code,
                            const char *message, void *ud) {
  (void)call;
  (void)message;
  struct flood_client *c = ud;
  c->done = 1;
  c->code = code;
}

static void test_server_stream(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  struct flood_client c = {.order_ok = 1};
  static const struct keel_grpc_client_callbacks cbs = {flood_on_msg,
                                                        flood_on_status, NULL};
  keel_grpc_client_call *call;
  assert_int_equal(keel_grpc_client_start(f.ch, "/keel.test.Echo/Flood", 10000,
                                          NULL, &cbs, &c, &call),
                   0);
  uint8_t req[8] = {0, 0, 0x0b, 0xb8, 0, 0, 0x10, 0}; /* 3000 x 4096 */
  assert_int_equal(keel_grpc_client_send(call, req, 8), 0);
  keel_grpc_client_close_send(call);
  run_until(&f, &c.done);
  assert_int_equal(c.code, KEEL_GRPC_OK);
  assert_int_equal(c.received, 3000);
  assert_true(c.order_ok);
  teardown(&f);
}

/* ---- connection loss and shutdown ---- */

struct status_only {
  int done, code;
  enum keel_grpc_delivery delivery;
  char message[256];
};

static void so_msg(keel_grpc_client_call *call, const uint8_t *msg, size_t len,
                   void *ud) {
  (void)call;
  (void)msg;
  (void)len;
  (void)ud;
}

static void so_status(keel_grpc_client_call *call, int code,
                      const char *message, void *ud) {
  struct status_only *s = ud;
  s->done = 1;
  s->code = code;
  s->delivery = keel_grpc_client_delivery(call);
  snprintf(s->message, sizeof(s->message), "%s", message);
}

static void test_connection_drop(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  static const struct keel_grpc_client_callbacks cbs = {so_msg, so_status,
                                                        NULL};
  struct status_only hang = {0}, echo = {0};
  keel_grpc_client_call *c1, *c2;
  assert_int_equal(keel_grpc_client_start(f.ch, "/keel.test.Echo/Hang", 0, NULL,
                                          &cbs, &hang, &c1),
                   0);
  keel_grpc_client_send(c1, "x", 1);
  keel_grpc_client_close_send(c1);
  assert_int_equal(keel_grpc_client_start(f.ch, "/keel.test.Echo/Echo", 0, NULL,
                                          &cbs, &echo, &c2),
                   0);
  keel_grpc_client_send(c2, "y", 1);
  /* Wait until the server has both calls, then cut: a 1 ms shutdown
   * deadline closes the connection under them. */
  struct keel_grpc_server_stats st;
  do {
    uv_run(&f.loop, UV_RUN_ONCE);
    keel_grpc_server_stats(keel_client_listener_grpc(f.l), &st);
  } while (st.active_calls < 2 && !f.watchdog_fired);
  assert_int_equal(keel_client_listener_shutdown(f.l, 1, on_shutdown, &f), 0);
  run_until(&f, &hang.done);
  run_until(&f, &echo.done);
  assert_int_equal(hang.code, KEEL_GRPC_UNAVAILABLE);
  assert_int_equal(echo.code, KEEL_GRPC_UNAVAILABLE);
  assert_non_null(strstr(hang.message, "connection lost"));
  /* both requests reached the server: it may have processed them */
  assert_int_equal(hang.delivery, KEEL_GRPC_MAYBE_PROCESSED);
  assert_int_equal(echo.delivery, KEEL_GRPC_MAYBE_PROCESSED);
  run_until(&f, &f.shutdown_done);
  assert_int_equal(keel_grpc_channel_state(f.ch), KEEL_GRPC_CHANNEL_DEAD);
  /* a dead channel refuses new calls at once */
  keel_grpc_client_call *c3;
  assert_int_equal(keel_grpc_client_start(f.ch, "/keel.test.Echo/Hang", 0, NULL,
                                          &cbs, &hang, &c3),
                   KEEL_EUNAVAILABLE);
  teardown(&f);
}

static void test_graceful_shutdown(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  struct unary_result r = {0};
  uint8_t req[4] = {0, 0, 0, 100}; /* answered after 100 ms */
  assert_int_equal(keel_grpc_client_unary(f.ch, "/keel.test.Echo/Later", req, 4,
                                          5000, NULL, unary_cb, &r),
                   0);
  while (f.scaffold.later_pending == 0 && !f.watchdog_fired)
    uv_run(&f.loop, UV_RUN_ONCE);
  uint64_t t0 = uv_now(&f.loop);
  assert_int_equal(keel_client_listener_shutdown(f.l, 5000, on_shutdown, &f),
                   0);
  run_until(&f, &r.done);
  assert_int_equal(r.code, KEEL_GRPC_OK); /* the in-flight call finished */
  assert_int_equal(r.resp_len, 4);
  free(r.resp);
  run_until(&f, &f.shutdown_done);
  assert_true(uv_now(&f.loop) - t0 < 5000); /* did not need the deadline */
  teardown(&f);
}

/* ---- HTTP/1.1 on the same port ---- */

struct http_client {
  uv_tcp_t tcp;
  uv_connect_t conn;
  uv_write_t wr;
  const char *request;
  char resp[8192];
  size_t len;
  int done;
};

static void hc_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  (void)s;
  struct http_client *c = h->data;
  *b = uv_buf_init(c->resp + c->len, (unsigned)(sizeof(c->resp) - 1 - c->len));
}

static void hc_closed(uv_handle_t *h) {
  ((struct http_client *)h->data)->done = 1;
}

static void hc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  struct http_client *c = s->data;
  if (n > 0) {
    c->len += (size_t)n;
    c->resp[c->len] = 0;
  } else if (n < 0) {
    uv_close((uv_handle_t *)&c->tcp, hc_closed);
  }
}

static void hc_written(uv_write_t *w, int status) {
  (void)w;
  (void)status;
}

static void hc_connected(uv_connect_t *req, int status) {
  struct http_client *c = req->data;
  assert_int_equal(status, 0);
  uv_buf_t b = uv_buf_init((char *)c->request, (unsigned)strlen(c->request));
  uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, hc_written);
  uv_read_start((uv_stream_t *)&c->tcp, hc_alloc, hc_read);
}

/* Sends request on a fresh connection, returns everything until the server
 * closes it. */
static void http_exchange(struct fixture *f, const char *request,
                          struct http_client *c) {
  memset(c, 0, sizeof(*c));
  c->request = request;
  uv_tcp_init(&f->loop, &c->tcp);
  c->tcp.data = c;
  c->conn.data = c;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", f->port, &a);
  uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&a, hc_connected);
  run_until(f, &c->done);
}

static void test_http1_same_port(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  struct http_client c;
  http_exchange(
      &f, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &c);
  assert_non_null(strstr(c.resp, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(c.resp, "\r\n\r\n{\"health\":\"true\""));
  /* keep-alive: two requests on one connection, the second closes */
  http_exchange(&f,
                "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
                &c);
  char *second = strstr(c.resp, "hello");
  if (second == NULL)
    print_message("response: %s\n", c.resp);
  assert_non_null(second);
  assert_non_null(strstr(second, "HTTP/1.1 200 OK"));
  /* an asynchronous handler, then another request on the same connection */
  http_exchange(&f,
                "GET /later HTTP/1.1\r\n\r\n"
                "GET /later HTTP/1.1\r\nConnection: close\r\n\r\n",
                &c);
  char *first = strstr(c.resp, "\r\n\r\nlater\n");
  assert_non_null(first);
  assert_non_null(strstr(first + 4, "\r\n\r\nlater\n"));
  http_exchange(&f, "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n", &c);
  assert_non_null(strstr(c.resp, "HTTP/1.1 404 Not Found\r\n"));
  assert_non_null(strstr(c.resp, "not found: /nope"));
  http_exchange(&f, "DELETE /health HTTP/1.1\r\nConnection: close\r\n\r\n", &c);
  assert_non_null(strstr(c.resp, "HTTP/1.1 405 "));
  http_exchange(&f, "BREW /pot HTTP/1.1\r\nA b\r\n\r\n", &c);
  assert_non_null(strstr(c.resp, "HTTP/1.1 400 Bad Request\r\n"));
  assert_non_null(strstr(c.resp, "missing name or ':'"));
  teardown(&f);
}

static void test_http1_head_timeout(void **state) {
  (void)state;
  struct keel_client_listener_config cfg;
  keel_client_listener_config_default(&cfg);
  cfg.head_timeout_ms = 100;
  struct fixture f;
  setup_with(&f, &cfg);
  struct http_client c;
  uint64_t t0 = uv_now(&f.loop);
  http_exchange(&f, "GET /health HTTP/1.1\r\nHost:", &c); /* never ends */
  assert_int_equal(c.len, 0);
  assert_true(uv_now(&f.loop) - t0 >= 100);
  struct keel_client_listener_stats st;
  keel_client_listener_stats(f.l, &st);
  assert_true(st.timeouts >= 1);
  teardown(&f);
}

/* ---- limits and refusals ---- */

static void test_limits_and_refusals(void **state) {
  (void)state;
  struct keel_client_listener_config cfg;
  keel_client_listener_config_default(&cfg);
  cfg.max_header_list_bytes = 4096;
  cfg.max_connections = 1;
  struct fixture f;
  setup_with(&f, &cfg);
  static const struct keel_grpc_client_callbacks cbs = {so_msg, so_status,
                                                        NULL};
  /* compressed payloads are not negotiated: grpc-go's refusal */
  struct status_only s = {0};
  keel_grpc_client_call *call;
  const char *gzip_md[] = {"grpc-encoding", "gzip", NULL};
  assert_int_equal(keel_grpc_client_start(f.ch, "/etcdserverpb.KV/Put", 5000,
                                          gzip_md, &cbs, &s, &call),
                   0);
  keel_grpc_client_close_send(call);
  run_until(&f, &s.done);
  assert_int_equal(s.code, KEEL_GRPC_UNIMPLEMENTED);
  assert_string_equal(s.message, "grpc: Decompressor is not installed for "
                                 "grpc-encoding \"gzip\"");
  /* request headers over the limit: the stream is reset */
  char *big = malloc(8000);
  memset(big, 'h', 7999);
  big[7999] = 0;
  const char *big_md[] = {"x-big", big, NULL};
  memset(&s, 0, sizeof(s));
  assert_int_equal(keel_grpc_client_start(f.ch, "/etcdserverpb.KV/Put", 5000,
                                          big_md, &cbs, &s, &call),
                   0);
  keel_grpc_client_close_send(call);
  run_until(&f, &s.done);
  assert_int_not_equal(s.code, KEEL_GRPC_OK);
  free(big);
  /* the connection survived both */
  struct unary_result r;
  put(&f, "a", "b", &r);
  assert_int_equal(r.code, KEEL_GRPC_OK);
  free(r.resp);
  /* max_connections = 1: a second connection is closed at once */
  struct http_client c;
  http_exchange(&f, "GET /health HTTP/1.1\r\n\r\n", &c);
  assert_int_equal(c.len, 0);
  struct keel_client_listener_stats st;
  keel_client_listener_stats(f.l, &st);
  assert_int_equal(st.connections_refused, 1);
  teardown(&f);
}

static void test_connect_refused(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  /* the listener's port once it is gone: nothing listens there */
  int port = f.port;
  assert_int_equal(keel_client_listener_shutdown(f.l, 1000, on_shutdown, &f),
                   0);
  run_until(&f, &f.shutdown_done);
  keel_grpc_channel *ch2;
  assert_int_equal(
      keel_grpc_channel_new(&f.loop, "127.0.0.1", port, NULL, &ch2), 0);
  static const struct keel_grpc_client_callbacks cbs = {so_msg, so_status,
                                                        NULL};
  struct status_only s = {0};
  keel_grpc_client_call *call;
  assert_int_equal(keel_grpc_client_start(ch2, "/etcdserverpb.KV/Put", 5000,
                                          NULL, &cbs, &s, &call),
                   0);
  run_until(&f, &s.done);
  assert_int_equal(s.code, KEEL_GRPC_UNAVAILABLE);
  assert_non_null(strstr(s.message, "connection failed"));
  assert_int_equal(s.delivery, KEEL_GRPC_NOT_SENT);
  channel_closed = 0;
  keel_grpc_channel_close(ch2, on_channel_closed, NULL);
  run_until(&f, &channel_closed);
  teardown(&f);
}

/* RST_STREAM from the client reaches the handler as on_close(CANCELED). */
static void test_client_cancel(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  static const struct keel_grpc_client_callbacks cbs = {so_msg, so_status,
                                                        NULL};
  struct status_only s = {0};
  keel_grpc_client_call *call;
  assert_int_equal(keel_grpc_client_start(f.ch, "/keel.test.Echo/Hang", 0, NULL,
                                          &cbs, &s, &call),
                   0);
  keel_grpc_client_send(call, "x", 1);
  keel_grpc_client_close_send(call);
  struct keel_grpc_server_stats st;
  do {
    uv_run(&f.loop, UV_RUN_ONCE);
    keel_grpc_server_stats(keel_client_listener_grpc(f.l), &st);
  } while (st.active_calls < 1 && !f.watchdog_fired);
  keel_grpc_client_cancel(call);
  assert_true(s.done); /* reported from inside cancel */
  assert_int_equal(s.code, KEEL_GRPC_CANCELLED);
  do {
    uv_run(&f.loop, UV_RUN_ONCE);
    keel_grpc_server_stats(keel_client_listener_grpc(f.l), &st);
  } while (st.active_calls > 0 && !f.watchdog_fired);
  assert_int_equal(st.calls_canceled, 1);
  teardown(&f);
}

/* An HTTP/2 connection with no stream open is closed after the idle
 * timeout; the client sees its channel die. */
static void test_h2_idle_timeout(void **state) {
  (void)state;
  struct keel_client_listener_config cfg;
  keel_client_listener_config_default(&cfg);
  cfg.idle_timeout_ms = 100;
  struct fixture f;
  setup_with(&f, &cfg);
  struct unary_result r;
  put(&f, "k", "v", &r);
  assert_int_equal(r.code, KEEL_GRPC_OK);
  free(r.resp);
  uint64_t t0 = uv_now(&f.loop);
  while (keel_grpc_channel_state(f.ch) != KEEL_GRPC_CHANNEL_DEAD &&
         !f.watchdog_fired)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(keel_grpc_channel_state(f.ch), KEEL_GRPC_CHANNEL_DEAD);
  assert_true(uv_now(&f.loop) - t0 >= 50);
  struct keel_client_listener_stats st;
  keel_client_listener_stats(f.l, &st);
  assert_int_equal(st.timeouts, 1);
  teardown(&f);
}

/* The HTTP/2 preface followed by garbage: the connection is closed (after
 * nghttp2's GOAWAY), the server keeps serving others. */
static void test_h2_garbage(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  struct http_client c;
  http_exchange(&f,
                "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                "\xff\xff\xff\x04\xff\x7f\x7f\x7f\x7fgarbage: a frame "
                "longer than any SETTINGS_MAX_FRAME_SIZE",
                &c);
  assert_true(c.done);
  struct unary_result r;
  put(&f, "still", "up", &r);
  assert_int_equal(r.code, KEEL_GRPC_OK);
  free(r.resp);
  teardown(&f);
}

/* A client that asks for a big response and never reads it is closed after
 * the stall timeout, instead of pinning the response in memory. */
static void silent_written(uv_write_t *w, int status) {
  (void)w;
  (void)status;
}
static void silent_connected(uv_connect_t *req, int status) {
  assert_int_equal(status, 0);
  static const char get[] = "GET /big HTTP/1.1\r\n\r\n";
  static uv_write_t wr;
  uv_buf_t b = uv_buf_init((char *)get, sizeof(get) - 1);
  uv_write(&wr, req->handle, &b, 1, silent_written);
}

static void test_stall_timeout(void **state) {
  (void)state;
  struct keel_client_listener_config cfg;
  keel_client_listener_config_default(&cfg);
  cfg.stall_timeout_ms = 200;
  struct fixture f;
  setup_with(&f, &cfg);
  uv_tcp_t tcp;
  uv_connect_t conn;
  uv_tcp_init(&f.loop, &tcp);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", f.port, &a);
  uv_tcp_connect(&conn, &tcp, (struct sockaddr *)&a, silent_connected);
  struct keel_client_listener_stats st;
  do {
    uv_run(&f.loop, UV_RUN_ONCE);
    keel_client_listener_stats(f.l, &st);
  } while (st.timeouts == 0 && !f.watchdog_fired);
  assert_int_equal(st.timeouts, 1);
  uv_close((uv_handle_t *)&tcp, NULL);
  teardown(&f);
}

/* Cancelling from inside on_message: the status comes right after the
 * callback, nothing more is delivered, the server's stream handler is told
 * and releases its call. */
struct cancel_reader {
  int received, done, code, after_done;
};

static void cr_msg(keel_grpc_client_call *call, const uint8_t *msg, size_t len,
                   void *ud) {
  (void)msg;
  (void)len;
  struct cancel_reader *c = ud;
  if (c->done)
    c->after_done++;
  if (++c->received == 10) {
    keel_grpc_client_cancel(call);
    assert_false(c->done); /* deferred until this callback returns */
  }
}

static void cr_status(keel_grpc_client_call *call, int code,
                      const char *message, void *ud) {
  (void)call;
  (void)message;
  struct cancel_reader *c = ud;
  c->done = 1;
  c->code = code;
}

static void test_cancel_in_callback(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  struct cancel_reader c = {0};
  static const struct keel_grpc_client_callbacks cbs = {cr_msg, cr_status,
                                                        NULL};
  keel_grpc_client_call *call;
  assert_int_equal(keel_grpc_client_start(f.ch, "/keel.test.Echo/Flood", 0,
                                          NULL, &cbs, &c, &call),
                   0);
  uint8_t req[8] = {0, 0x0f, 0x42, 0x40, 0, 0, 0x04, 0}; /* 1e6 x 1 KiB */
  keel_grpc_client_send(call, req, 8);
  keel_grpc_client_close_send(call);
  run_until(&f, &c.done);
  assert_int_equal(c.code, KEEL_GRPC_CANCELLED);
  assert_int_equal(c.received, 10);
  assert_int_equal(c.after_done, 0);
  struct keel_grpc_server_stats st;
  do {
    uv_run(&f.loop, UV_RUN_ONCE);
    keel_grpc_server_stats(keel_client_listener_grpc(f.l), &st);
  } while (st.active_calls > 0 && !f.watchdog_fired);
  assert_int_equal(st.active_calls, 0);
  assert_int_equal(st.calls_canceled, 1);
  teardown(&f);
}

/* Many connections with many concurrent calls each: every call completes,
 * every handler call is released. */
#define STRESS_CHANNELS 16
#define STRESS_CALLS 64

static int stress_done;
static void stress_cb(int code, const char *message,
                      enum keel_grpc_delivery delivery, const uint8_t *resp,
                      size_t len, void *ud) {
  (void)message;
  assert_int_equal(delivery, KEEL_GRPC_ANSWERED);
  (void)resp;
  (void)len;
  (void)ud;
  assert_int_equal(code, KEEL_GRPC_OK);
  stress_done++;
}

static void test_many_connections(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  keel_grpc_channel *chs[STRESS_CHANNELS];
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key.data = (uint8_t *)"k";
  req.key.len = 1;
  req.value.data = (uint8_t *)"v";
  req.value.len = 1;
  uint8_t buf[32];
  size_t n = etcdserverpb__put_request__pack(&req, buf);
  stress_done = 0;
  for (int i = 0; i < STRESS_CHANNELS; i++) {
    assert_int_equal(
        keel_grpc_channel_new(&f.loop, "127.0.0.1", f.port, NULL, &chs[i]), 0);
    for (int j = 0; j < STRESS_CALLS; j++)
      assert_int_equal(keel_grpc_client_unary(chs[i], "/etcdserverpb.KV/Put",
                                              buf, n, 10000, NULL, stress_cb,
                                              NULL),
                       0);
  }
  while (stress_done < STRESS_CHANNELS * STRESS_CALLS && !f.watchdog_fired)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(stress_done, STRESS_CHANNELS * STRESS_CALLS);
  assert_int_equal(f.scaffold.revision, 1 + STRESS_CHANNELS * STRESS_CALLS);
  for (int i = 0; i < STRESS_CHANNELS; i++) {
    channel_closed = 0;
    keel_grpc_channel_close(chs[i], on_channel_closed, NULL);
    run_until(&f, &channel_closed);
  }
  teardown(&f);
}

/* Closing a channel with calls open: each ends CANCELLED "channel closed";
 * the server sees the connection go and releases its handler calls. */
static void test_close_channel_with_calls(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  static const struct keel_grpc_client_callbacks cbs = {so_msg, so_status,
                                                        NULL};
  struct status_only a = {0}, b = {0};
  keel_grpc_client_call *ca, *cb2;
  assert_int_equal(keel_grpc_client_start(f.ch, "/keel.test.Echo/Hang", 0, NULL,
                                          &cbs, &a, &ca),
                   0);
  keel_grpc_client_send(ca, "x", 1);
  keel_grpc_client_close_send(ca);
  assert_int_equal(keel_grpc_client_start(f.ch, "/keel.test.Echo/Echo", 0, NULL,
                                          &cbs, &b, &cb2),
                   0);
  keel_grpc_client_send(cb2, "y", 1);
  struct keel_grpc_server_stats st;
  do {
    uv_run(&f.loop, UV_RUN_ONCE);
    keel_grpc_server_stats(keel_client_listener_grpc(f.l), &st);
  } while (st.active_calls < 2 && !f.watchdog_fired);
  channel_closed = 0;
  keel_grpc_channel_close(f.ch, on_channel_closed, NULL);
  f.ch = NULL;
  assert_true(a.done && b.done);
  assert_int_equal(a.code, KEEL_GRPC_CANCELLED);
  assert_string_equal(b.message, "channel closed");
  run_until(&f, &channel_closed);
  do {
    uv_run(&f.loop, UV_RUN_ONCE);
    keel_grpc_server_stats(keel_client_listener_grpc(f.l), &st);
  } while (st.active_calls > 0 && !f.watchdog_fired);
  assert_int_equal(st.active_calls, 0);
  teardown(&f);
}

/* Keepalive: against a live server the PINGs are answered and a long call
 * only ends by its deadline; against a peer that accepted the connection
 * but never speaks, the call ends UNAVAILABLE "keepalive timeout". */
static void mute_accept(uv_stream_t *server, int status) {
  assert_int_equal(status, 0);
  uv_tcp_t *c = malloc(sizeof(*c));
  uv_tcp_init(server->loop, c);
  assert_int_equal(uv_accept(server, (uv_stream_t *)c), 0);
  server->data = c; /* never read from, never written to */
}

static void free_handle(uv_handle_t *h) {
  free(h);
}

static void test_keepalive(void **state) {
  (void)state;
  struct fixture f;
  setup_with(&f, NULL);
  struct keel_grpc_channel_config cc;
  keel_grpc_channel_config_default(&cc);
  cc.keepalive_time_ms = 20;
  cc.keepalive_timeout_ms = 300;
  static const struct keel_grpc_client_callbacks cbs = {so_msg, so_status,
                                                        NULL};
  keel_grpc_channel *live;
  assert_int_equal(
      keel_grpc_channel_new(&f.loop, "127.0.0.1", f.port, &cc, &live), 0);
  struct status_only s = {0};
  keel_grpc_client_call *call;
  assert_int_equal(keel_grpc_client_start(live, "/keel.test.Echo/Hang", 1000,
                                          NULL, &cbs, &s, &call),
                   0);
  keel_grpc_client_send(call, "x", 1);
  keel_grpc_client_close_send(call);
  run_until(&f, &s.done);
  assert_int_equal(s.code, KEEL_GRPC_DEADLINE_EXCEEDED);
  channel_closed = 0;
  keel_grpc_channel_close(live, on_channel_closed, NULL);
  run_until(&f, &channel_closed);

  uv_tcp_t mute;
  uv_tcp_init(&f.loop, &mute);
  mute.data = NULL;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&mute, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&mute, 4, mute_accept), 0);
  struct sockaddr_storage bound;
  int blen = sizeof(bound);
  uv_tcp_getsockname(&mute, (struct sockaddr *)&bound, &blen);
  int mport = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  keel_grpc_channel *dead;
  assert_int_equal(
      keel_grpc_channel_new(&f.loop, "127.0.0.1", mport, &cc, &dead), 0);
  memset(&s, 0, sizeof(s));
  assert_int_equal(keel_grpc_client_start(dead, "/keel.test.Echo/Hang", 0, NULL,
                                          &cbs, &s, &call),
                   0);
  run_until(&f, &s.done);
  assert_int_equal(s.code, KEEL_GRPC_UNAVAILABLE);
  assert_non_null(strstr(s.message, "keepalive timeout"));
  channel_closed = 0;
  keel_grpc_channel_close(dead, on_channel_closed, NULL);
  run_until(&f, &channel_closed);
  if (mute.data)
    uv_close((uv_handle_t *)mute.data, free_handle);
  uv_close((uv_handle_t *)&mute, NULL);
  teardown(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unary_put_range),
      cmocka_unit_test(test_unknown_method),
      cmocka_unit_test(test_deadline),
      cmocka_unit_test(test_message_too_large),
      cmocka_unit_test(test_bidi_slow_reader),
      cmocka_unit_test(test_server_stream),
      cmocka_unit_test(test_connection_drop),
      cmocka_unit_test(test_graceful_shutdown),
      cmocka_unit_test(test_http1_same_port),
      cmocka_unit_test(test_http1_head_timeout),
      cmocka_unit_test(test_limits_and_refusals),
      cmocka_unit_test(test_connect_refused),
      cmocka_unit_test(test_client_cancel),
      cmocka_unit_test(test_h2_idle_timeout),
      cmocka_unit_test(test_h2_garbage),
      cmocka_unit_test(test_stall_timeout),
      cmocka_unit_test(test_cancel_in_callback),
      cmocka_unit_test(test_many_connections),
      cmocka_unit_test(test_close_channel_with_calls),
      cmocka_unit_test(test_keepalive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

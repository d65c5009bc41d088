/* test_keel_engine.c — libkeel's request engine against in-process fake
 * servers on loopback: which requests are repeated after a lost connection
 * and which are reported as "outcome unknown", retries after a refused
 * connection, the circuit breaker opening, deadlines, closing with requests
 * pending, and endpoint validation.
 *
 * The fake server speaks no HTTP/2: it reads the client's frames and, in
 * DROP mode, closes the connection as soon as a DATA frame (the request
 * message) has arrived — the request was sent, its fate unknown to the
 * client. In SILENT mode it reads and never answers. It counts the DATA
 * frames it saw: that is how often the request was really sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel.h"

enum fake_mode { FAKE_DROP, FAKE_SILENT };

struct fake_conn {
  uv_tcp_t tcp;
  struct fake *f;
  uint8_t buf[1 << 16];
  size_t len;
  size_t skipped_preface;
  int closing;
};

struct fake {
  uv_tcp_t listener;
  enum fake_mode mode;
  int port;
  int data_frames;
  int conns;
  struct fake_conn *open[64];
  int n_open;
};

static void conn_closed(uv_handle_t *h) {
  free(h->data);
}

static void conn_close(struct fake_conn *fc) {
  if (fc->closing)
    return;
  fc->closing = 1;
  for (int i = 0; i < fc->f->n_open; i++)
    if (fc->f->open[i] == fc)
      fc->f->open[i] = fc->f->open[--fc->f->n_open];
  uv_close((uv_handle_t *)&fc->tcp, conn_closed);
}

static void conn_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  struct fake_conn *fc = h->data;
  (void)sz;
  b->base = (char *)fc->buf + fc->len;
  b->len = sizeof(fc->buf) - fc->len;
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct fake_conn *fc = s->data;
  (void)b;
  if (n < 0) {
    conn_close(fc);
    return;
  }
  fc->len += (size_t)n;
  /* Skip the 24-byte preface, then walk whole frames. */
  size_t pos = 0;
  if (!fc->skipped_preface) {
    if (fc->len < 24)
      return;
    pos = 24;
    fc->skipped_preface = 1;
  }
  int saw_data = 0;
  while (fc->len - pos >= 9) {
    size_t flen = ((size_t)fc->buf[pos] << 16) |
                  ((size_t)fc->buf[pos + 1] << 8) | fc->buf[pos + 2];
    if (fc->len - pos < 9 + flen)
      break;
    if (fc->buf[pos + 3] == 0 /* DATA */ && flen > 0) {
      fc->f->data_frames++;
      saw_data = 1;
    }
    pos += 9 + flen;
  }
  memmove(fc->buf, fc->buf + pos, fc->len - pos);
  fc->len -= pos;
  if (saw_data && fc->f->mode == FAKE_DROP)
    conn_close(fc);
}

static void on_conn(uv_stream_t *l, int status) {
  struct fake *f = l->data;
  assert_int_equal(status, 0);
  struct fake_conn *fc = calloc(1, sizeof(*fc));
  assert_non_null(fc);
  fc->f = f;
  uv_tcp_init(l->loop, &fc->tcp);
  fc->tcp.data = fc;
  assert_int_equal(uv_accept(l, (uv_stream_t *)&fc->tcp), 0);
  f->conns++;
  assert_true(f->n_open < 64);
  f->open[f->n_open++] = fc;
  uv_read_start((uv_stream_t *)&fc->tcp, conn_alloc, conn_read);
}

static void fake_start(uv_loop_t *loop, struct fake *f, enum fake_mode mode) {
  memset(f, 0, sizeof(*f));
  f->mode = mode;
  uv_tcp_init(loop, &f->listener);
  f->listener.data = f;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&f->listener, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 16, on_conn), 0);
  int len = sizeof(a);
  uv_tcp_getsockname(&f->listener, (struct sockaddr *)&a, &len);
  f->port = ntohs(a.sin_port);
}

static void fake_stop(struct fake *f) {
  while (f->n_open)
    conn_close(f->open[0]);
  uv_close((uv_handle_t *)&f->listener, NULL);
}

/* A port nobody listens on: bound, then closed. */
static int dead_port(uv_loop_t *loop) {
  struct fake f;
  fake_start(loop, &f, FAKE_SILENT);
  int port = f.port;
  fake_stop(&f);
  uv_run(loop, UV_RUN_NOWAIT);
  return port;
}

struct got {
  int done;
  struct keel_result res;
  char msg[256];
};

static void on_res(const struct keel_result *res, const void *resp, void *ud) {
  struct got *g = ud;
  (void)resp;
  g->done++;
  g->res = *res;
  snprintf(g->msg, sizeof(g->msg), "%s", res->message);
  g->res.message = g->msg;
}

static keel_client *client_for(uv_loop_t *loop, int port) {
  char ep[64];
  snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
  const char *eps[] = {ep};
  struct keel_config cfg;
  keel_config_default(&cfg);
  cfg.endpoints = eps;
  cfg.n_endpoints = 1;
  cfg.backoff_base_ms = 1;
  cfg.backoff_max_ms = 5;
  cfg.breaker_failures = 100; /* these tests are about retries */
  keel_client *c;
  assert_int_equal(keel_client_new(loop, &cfg, &c), 0);
  return c;
}

static void run_until(uv_loop_t *loop, struct got *g) {
  while (!g->done)
    uv_run(loop, UV_RUN_ONCE);
}

static int closed;
static void on_closed(void *ud) {
  (void)ud;
  closed = 1;
}

static void close_client(uv_loop_t *loop, keel_client *c) {
  closed = 0;
  keel_client_close(c, on_closed, NULL);
  while (!closed)
    uv_run(loop, UV_RUN_ONCE);
}

static const uint8_t KEY[] = "k";

static void test_put_lost_connection_is_unknown(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct fake f;
  fake_start(&loop, &f, FAKE_DROP);
  keel_client *c = client_for(&loop, f.port);
  struct keel_put_req p = {
      .key = KEY, .key_len = 1, .value = KEY, .value_len = 1};
  struct got g = {0};
  assert_int_equal(keel_put(c, &p, NULL, on_res, &g), 0);
  assert_int_equal(g.done, 0); /* never inside the call */
  run_until(&loop, &g);
  assert_int_equal(g.res.err, KEEL_EUNKNOWN);
  assert_int_equal(g.res.attempts, 1);
  assert_int_equal(f.data_frames, 1); /* sent exactly once */
  assert_non_null(strstr(g.res.message, "connection lost"));
  close_client(&loop, c);
  fake_stop(&f);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_range_lost_connection_is_retried(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct fake f;
  fake_start(&loop, &f, FAKE_DROP);
  keel_client *c = client_for(&loop, f.port);
  struct keel_range_req r = {.key = KEY, .key_len = 1};
  struct got g = {0};
  assert_int_equal(keel_range(c, &r, NULL, on_res, &g), 0);
  run_until(&loop, &g);
  assert_int_equal(g.res.err, KEEL_EUNAVAILABLE);
  assert_int_equal(g.res.attempts, 5);
  assert_int_equal(f.data_frames, 5);
  assert_non_null(strstr(g.res.message, "after 5 attempts"));
  /* A put the caller marked idempotent is retried like a read. */
  struct keel_put_req p = {.key = KEY, .key_len = 1};
  struct keel_opts o = {.idempotent = 1};
  struct got g2 = {0};
  assert_int_equal(keel_put(c, &p, &o, on_res, &g2), 0);
  run_until(&loop, &g2);
  assert_int_equal(g2.res.err, KEEL_EUNAVAILABLE);
  assert_int_equal(f.data_frames, 10);
  /* A txn without the mark is not. */
  struct keel_txn_req t = {0};
  struct got g3 = {0};
  assert_int_equal(keel_txn(c, &t, NULL, on_res, &g3), 0);
  run_until(&loop, &g3);
  assert_int_equal(g3.res.err, KEEL_EUNKNOWN);
  assert_int_equal(f.data_frames, 11);
  close_client(&loop, c);
  fake_stop(&f);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_refused_put_retried_then_breaker_opens(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  int port = dead_port(&loop);
  char ep[64];
  snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
  const char *eps[] = {ep};
  struct keel_config cfg;
  keel_config_default(&cfg);
  cfg.endpoints = eps;
  cfg.n_endpoints = 1;
  cfg.backoff_base_ms = 1;
  cfg.backoff_max_ms = 2;
  cfg.breaker_failures = 3;
  cfg.breaker_cooldown_ms = 60000;
  keel_client *c;
  assert_int_equal(keel_client_new(&loop, &cfg, &c), 0);
  struct keel_put_req p = {.key = KEY, .key_len = 1};
  struct got g = {0};
  assert_int_equal(keel_put(c, &p, NULL, on_res, &g), 0);
  run_until(&loop, &g);
  /* Never connected, so never applied: retried, and not "unknown". */
  assert_int_equal(g.res.err, KEEL_EUNAVAILABLE);
  assert_int_equal(g.res.attempts, 5);
  /* Three refusals opened the breaker; later attempts did not dial. */
  assert_int_equal(keel_endpoint_breaker_state(c, 0), 1);
  assert_non_null(strstr(g.res.message, "circuit breakers open"));
  close_client(&loop, c);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_deadline(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct fake f;
  fake_start(&loop, &f, FAKE_SILENT);
  keel_client *c = client_for(&loop, f.port);
  struct keel_range_req r = {.key = KEY, .key_len = 1};
  struct keel_opts o = {.timeout_ms = 150};
  struct got g = {0};
  uint64_t t0 = uv_hrtime();
  assert_int_equal(keel_range(c, &r, &o, on_res, &g), 0);
  run_until(&loop, &g);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  assert_int_equal(g.res.err, KEEL_ETIMEOUT);
  assert_true(ms >= 140 && ms < 2000);
  close_client(&loop, c);
  fake_stop(&f);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_watch(keel_watcher *w, const struct keel_watch_batch *b,
                     void *ud) {
  (void)w;
  int *err = ud;
  *err = b->err;
}

static void test_close_with_pending(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct fake f;
  fake_start(&loop, &f, FAKE_SILENT);
  keel_client *c = client_for(&loop, f.port);
  struct keel_range_req r = {.key = KEY, .key_len = 1};
  struct got g[3] = {{0}};
  for (int i = 0; i < 3; i++)
    assert_int_equal(keel_range(c, &r, NULL, on_res, &g[i]), 0);
  struct keel_watch_req wr = {.key = KEY, .key_len = 1};
  int werr = 1;
  assert_int_equal(keel_watch_create(c, &wr, on_watch, &werr, NULL), 0);
  int cycles = 0;
  while (f.data_frames < 3 && cycles++ < 1000)
    uv_run(&loop, UV_RUN_ONCE); /* until the requests are on the wire */
  close_client(&loop, c);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(g[i].done, 1);
    assert_int_equal(g[i].res.err, KEEL_ECANCELED);
  }
  assert_int_equal(werr, KEEL_ECANCELED);
  fake_stop(&f);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A callback that closes the client: the other pending request and the
 * watcher end with KEEL_ECANCELED, once; closing completes. */
static keel_client *closing_client;
static void on_res_close(const struct keel_result *res, const void *resp,
                         void *ud) {
  on_res(res, resp, ud);
  closed = 0;
  keel_client_close(closing_client, on_closed, NULL);
}

static void test_close_inside_callback(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct fake f;
  fake_start(&loop, &f, FAKE_SILENT);
  keel_client *c = client_for(&loop, f.port);
  closing_client = c;
  struct keel_range_req r = {.key = KEY, .key_len = 1};
  struct keel_opts quick = {.timeout_ms = 50};
  struct got g1 = {0}, g2 = {0};
  assert_int_equal(keel_range(c, &r, &quick, on_res_close, &g1), 0);
  assert_int_equal(keel_range(c, &r, NULL, on_res, &g2), 0);
  struct keel_watch_req wr = {.key = KEY, .key_len = 1};
  int werr = 1;
  assert_int_equal(keel_watch_create(c, &wr, on_watch, &werr, NULL), 0);
  closed = 0;
  while (!closed)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(g1.done, 1);
  assert_int_equal(g1.res.err, KEEL_ETIMEOUT);
  assert_int_equal(g2.done, 1);
  assert_int_equal(g2.res.err, KEEL_ECANCELED);
  assert_int_equal(werr, KEEL_ECANCELED);
  fake_stop(&f);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bad_config(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct keel_config cfg;
  keel_config_default(&cfg);
  keel_client *c;
  assert_int_equal(keel_client_new(&loop, &cfg, &c), -EINVAL);
  const char *bad[][1] = {{"127.0.0.1"},        {"127.0.0.1:0"},
                          {"127.0.0.1:99999"},  {"https://127.0.0.1:2379"},
                          {"example.com:2379"}, {"127.0.0.1:23x"}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cfg.endpoints = bad[i];
    cfg.n_endpoints = 1;
    assert_int_equal(keel_client_new(&loop, &cfg, &c), -EINVAL);
  }
  const char *good[] = {"127.0.0.1:2379", "http://localhost:1/", "[::1]:2379"};
  cfg.endpoints = good;
  cfg.n_endpoints = 3;
  assert_int_equal(keel_client_new(&loop, &cfg, &c), 0);
  assert_string_equal(keel_endpoint_name(c, 2), "::1:2379");
  /* Argument errors come back at once, with no callback. */
  struct got g = {0};
  struct keel_range_req empty = {0};
  assert_int_equal(keel_range(c, &empty, NULL, on_res, &g), -EINVAL);
  assert_int_equal(keel_lease_grant(c, 0, 0, NULL, on_res, &g), -EINVAL);
  assert_int_equal(keel_status(c, 7, NULL, on_res, &g), -EINVAL);
  struct keel_op deep[20];
  struct keel_txn_req txns[20];
  for (int i = 0; i < 20; i++) {
    txns[i] = (struct keel_txn_req){0};
    deep[i].type = KEEL_OP_TXN;
    deep[i].u.txn = i + 1 < 20 ? &txns[i + 1] : NULL;
    txns[i].success = &deep[i];
    txns[i].n_success = i + 1 < 20 ? 1 : 0;
  }
  assert_int_equal(keel_txn(c, &txns[0], NULL, on_res, &g), -EINVAL);
  assert_int_equal(g.done, 0);
  close_client(&loop, c);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_prefix_end(void **state) {
  (void)state;
  uint8_t out[8];
  assert_int_equal(keel_prefix_end((const uint8_t *)"abc", 3, out), 3);
  assert_memory_equal(out, "abd", 3);
  const uint8_t k[] = {'a', 0xff, 0xff};
  assert_int_equal(keel_prefix_end(k, 3, out), 1);
  assert_int_equal(out[0], 'b');
  const uint8_t all[] = {0xff};
  assert_int_equal(keel_prefix_end(all, 1, out), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_lost_connection_is_unknown),
      cmocka_unit_test(test_range_lost_connection_is_retried),
      cmocka_unit_test(test_refused_put_retried_then_breaker_opens),
      cmocka_unit_test(test_deadline),
      cmocka_unit_test(test_close_with_pending),
      cmocka_unit_test(test_close_inside_callback),
      cmocka_unit_test(test_bad_config),
      cmocka_unit_test(test_prefix_end),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_http_node_read.c — keeld's read side for /config and OFREP
 * (server/http_node_read.h) over a real one-member node (loop, store, disk
 * thread), and the /config handler mounted on a client listener over it.
 *
 * Covered: a barrier waits for the node (never answers from inside the
 * call) and then sees every write acknowledged before it; the bound on
 * waiting requests (the ones past it fail at once with KEEL_EBUSY, the
 * others succeed); a node without a leader (a 3-member cluster whose
 * peers never start) fails at once with KEEL_ENOLEADER and the /config
 * handler answers 503 with the JSON reason; detached: KEEL_ESTOPPED.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../node/loop_helper.h"
#include "client_listener.h"
#include "config.h"
#include "http_config.h"
#include "http_node_read.h"
#include "keel_error.h"
#include "keel_log.h"
#include "node.h"
#include "node_standin.h"
#include "raft.h"
#include "store.h"

struct fx {
  char dir[256];
  uv_loop_t loop;
  struct keel_config cfg;
  struct store *st;
  struct node *n;
  struct http_node_reader *r;
  struct http_kv_reader rd;
  int stopped;
};

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  socklen_t l = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &l);
  close(fd);
  return ntohs(a.sin_port);
}

/* absent_peers: two more members that never start (no leader ever). */
static void fx_start(struct fx *f, bool absent_peers, size_t max_waiting) {
  char peer[64], cluster[160], dd[300];
  snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", free_port());
  if (absent_peers)
    snprintf(cluster, sizeof(cluster),
             "n1=%s,n2=http://127.0.0.1:1,n3=http://127.0.0.1:2", peer);
  else
    snprintf(cluster, sizeof(cluster), "n1=%s", peer);
  snprintf(dd, sizeof(dd), "%s/data", f->dir);
  char *argv[] = {"keeld", "--name",
                  "n1",    "--data-dir",
                  dd,      "--listen-peer-urls",
                  peer,    "--initial-advertise-peer-urls",
                  peer,    "--initial-cluster",
                  cluster, "--heartbeat-interval",
                  "10",    "--election-timeout",
                  "100",   NULL};
  char err[KEEL_CONFIG_ERR_MAX];
  char *envp[] = {NULL};
  assert_int_equal(keel_config_load(&f->cfg, 15, argv, envp, err, sizeof(err)),
                   0);
  struct store_options so = {0};
  assert_int_equal(store_open(dd, &so, &f->st), 0);
  struct node_options no = {0};
  no.cfg = &f->cfg;
  no.store = f->st;
  no.apply = node_standin_put_ops();
  no.seed = 11;
  assert_int_equal(node_new(&f->loop, &no, &f->n, err, sizeof(err)), 0);
  assert_int_equal(http_node_reader_new(f->n, f->st, max_waiting, &f->r), 0);
  http_node_reader_get(f->r, &f->rd);
}

static int is_leader(void *ctx) {
  struct fx *f = ctx;
  struct node_status s;
  node_status(f->n, &s);
  return s.role == RAFT_LEADER;
}

static void on_stopped(void *ud) {
  ((struct fx *)ud)->stopped = 1;
}

static int stopped(void *ctx) {
  return ((struct fx *)ctx)->stopped;
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  const char *base = getenv("TMPDIR");
  snprintf(f->dir, sizeof(f->dir), "%s/keel-hnr-XXXXXX",
           base && base[0] ? base : "/tmp");
  assert_non_null(mkdtemp(f->dir));
  uv_loop_init(&f->loop);
  keel_log_set_level(KEEL_LOG_WARN);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  if (f->n) {
    http_node_reader_detach(f->r);
    node_stop(f->n, 0, on_stopped, f);
    assert_true(loop_run_until(&f->loop, stopped, f, 5000));
    assert_int_equal(http_node_reader_waiting(f->r), 0);
    http_node_reader_free(f->r);
    store_close(f->st);
  }
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* --- helpers --- */

struct bar {
  int calls;
  int err;
};

static void bar_done(void *arg, int err) {
  struct bar *b = arg;
  b->calls++;
  b->err = err;
}

struct bars {
  struct bar *b;
  int n;
};

static int all_called(void *ctx) {
  struct bars *a = ctx;
  for (int i = 0; i < a->n; i++)
    if (a->b[i].calls == 0)
      return 0;
  return 1;
}

struct put_result {
  int calls;
  int status;
  int64_t revision;
};

static void on_put(void *ud, int status, const struct node_applied *a) {
  struct put_result *r = ud;
  r->calls++;
  r->status = status;
  if (a && a->resp)
    r->revision = a->resp->revision;
}

static int put_called(void *ctx) {
  return ((struct put_result *)ctx)->calls > 0;
}

/* --- tests --- */

static const char key[] = "/config/a/default/x";

/* Leader, and a put applied: the node's view of the leader (its last
 * Ready's soft state, which lags the core) is current, so a read asked now
 * is not one "asked of the old leader". Returns the put's revision. */
static int64_t leader_and_put(struct fx *f) {
  assert_true(loop_run_until(&f->loop, is_leader, f, 5000));
  uint8_t *buf;
  size_t len;
  assert_int_equal(
      node_standin_encode_put((const uint8_t *)key, sizeof(key) - 1,
                              (const uint8_t *)"s:1", 3, &buf, &len),
      0);
  struct put_result pr = {0};
  assert_int_equal(node_propose(f->n, buf, len, on_put, &pr), 0);
  free(buf);
  assert_true(loop_run_until(&f->loop, put_called, &pr, 5000));
  assert_int_equal(pr.status, 0);
  return pr.revision;
}

static void test_barrier_then_one_revision(void **state) {
  struct fx *f = *state;
  fx_start(f, false, 0);
  int64_t rev = leader_and_put(f);

  struct bar b = {0};
  f->rd.read_barrier(f->rd.ctx, bar_done, &b);
  assert_int_equal(b.calls, 0); /* waits for a read point */
  assert_int_equal(http_node_reader_waiting(f->r), 1);
  struct bars all = {&b, 1};
  assert_true(loop_run_until(&f->loop, all_called, &all, 5000));
  assert_int_equal(b.err, 0);
  assert_int_equal(http_node_reader_waiting(f->r), 0);
  int64_t cur = 0, comp = 0;
  assert_int_equal(f->rd.current_revision(f->rd.ctx, &cur, &comp), 0);
  assert_int_equal(cur, rev);
  struct store_range_req q = {
      .key = (const uint8_t *)key, .key_len = sizeof(key) - 1, .revision = cur};
  struct store_range_result res;
  assert_int_equal(f->rd.range(f->rd.ctx, &q, &res), 0);
  assert_int_equal(res.resp.n_kvs, 1);
  assert_memory_equal(res.resp.kvs[0].value, "s:1", 3);
  store_range_result_free(&res);
}

static void test_waiting_is_bounded(void **state) {
  struct fx *f = *state;
  fx_start(f, false, 4);
  leader_and_put(f);
  enum { N = 7 };
  struct bar b[N] = {0};
  for (int i = 0; i < N; i++)
    f->rd.read_barrier(f->rd.ctx, bar_done, &b[i]);
  assert_int_equal(http_node_reader_waiting(f->r), 4);
  for (int i = 4; i < N; i++) { /* refused at once */
    assert_int_equal(b[i].calls, 1);
    assert_int_equal(b[i].err, KEEL_EBUSY);
  }
  struct bars all = {b, N};
  assert_true(loop_run_until(&f->loop, all_called, &all, 5000));
  for (int i = 0; i < 4; i++) {
    assert_int_equal(b[i].calls, 1);
    assert_int_equal(b[i].err, 0);
  }
  assert_int_equal(http_node_reader_waiting(f->r), 0);
  /* room again */
  struct bar again = {0};
  f->rd.read_barrier(f->rd.ctx, bar_done, &again);
  struct bars one = {&again, 1};
  assert_true(loop_run_until(&f->loop, all_called, &one, 5000));
  assert_int_equal(again.err, 0);
}

/* --- without a leader, through the /config handler --- */

struct http_probe {
  int port;
  char resp[2048];
  size_t len;
  int done;
  uv_tcp_t tcp;
  uv_connect_t conn;
  uv_write_t wr;
  uv_buf_t req;
};

static void probe_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  struct http_probe *p = h->data;
  (void)sz;
  b->base = p->resp + p->len;
  b->len = sizeof(p->resp) - 1 - p->len;
}

static void probe_closed(uv_handle_t *h) {
  struct http_probe *p = h->data;
  p->done = 1;
}

static void probe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct http_probe *p = s->data;
  (void)b;
  if (n > 0) {
    p->len += (size_t)n;
    p->resp[p->len] = 0;
    return;
  }
  if (n < 0)
    uv_close((uv_handle_t *)s, probe_closed);
}

static void probe_connected(uv_connect_t *c, int status) {
  struct http_probe *p = c->data;
  assert_int_equal(status, 0);
  uv_write(&p->wr, (uv_stream_t *)&p->tcp, &p->req, 1, NULL);
  uv_read_start((uv_stream_t *)&p->tcp, probe_alloc, probe_read);
}

static int probe_done(void *ctx) {
  return ((struct http_probe *)ctx)->done;
}

static void listener_closed(void *ud) {
  *(int *)ud = 1;
}

static int flag_set(void *ctx) {
  return *(int *)ctx;
}

static void test_no_leader_fails_fast(void **state) {
  struct fx *f = *state;
  fx_start(f, true, 0);
  struct bar b = {0};
  f->rd.read_barrier(f->rd.ctx, bar_done, &b);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.err, KEEL_ENOLEADER);
  assert_int_equal(http_node_reader_waiting(f->r), 0);

  /* the /config handler over it: 503 with the JSON reason */
  http_config *hc;
  assert_int_equal(http_config_new(&f->rd, NULL, &hc), 0);
  keel_client_listener *l;
  assert_int_equal(keel_client_listener_new(&f->loop, NULL, &l), 0);
  assert_int_equal(http_config_register(hc, l), 0);
  assert_int_equal(keel_client_listener_start(l, "127.0.0.1", 0), 0);
  struct http_probe p = {0};
  p.port = keel_client_listener_port(l);
  static const char req[] = "GET /config/billing/dev HTTP/1.1\r\n"
                            "Host: x\r\nConnection: close\r\n\r\n";
  p.req = uv_buf_init((char *)req, sizeof(req) - 1);
  uv_tcp_init(&f->loop, &p.tcp);
  p.tcp.data = &p;
  p.conn.data = &p;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", p.port, &a);
  assert_int_equal(
      uv_tcp_connect(&p.conn, &p.tcp, (struct sockaddr *)&a, probe_connected),
      0);
  assert_true(loop_run_until(&f->loop, probe_done, &p, 5000));
  assert_non_null(strstr(p.resp, "HTTP/1.1 503 "));
  assert_non_null(strstr(p.resp, "application/json"));
  assert_non_null(
      strstr(p.resp, "\"message\":\"linearizable read failed: no leader\""));
  int closed = 0;
  assert_int_equal(
      keel_client_listener_shutdown(l, 100, listener_closed, &closed), 0);
  assert_true(loop_run_until(&f->loop, flag_set, &closed, 5000));
  keel_client_listener_free(l);
  http_config_free(hc);
}

static void test_detached(void **state) {
  struct fx *f = *state;
  fx_start(f, false, 0);
  leader_and_put(f);
  http_node_reader_detach(f->r);
  struct bar b = {0};
  f->rd.read_barrier(f->rd.ctx, bar_done, &b);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.err, KEEL_ESTOPPED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_barrier_then_one_revision, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_waiting_is_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_leader_fails_fast, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_detached, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_keel_cluster.c — libkeel against a real 3-node etcd 3.4 cluster
 * with faults: failover when the endpoint in use is killed (and the
 * breaker opening on it), endpoint refresh from the member list, "no
 * leader" failover, watch resume across a killed endpoint with writes going
 * on (no gap, no duplicate, checked against the store's revisions),
 * compacted resume, a put whose server dies mid-request reported as
 * unknown while a read in the same situation fails over, and move-leader.
 * Each test starts its own cluster and kills it in teardown. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd_harness.h"
#include "keel_internal.h"

#define B(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

static struct etcd_cluster cl;

static int setup(void **state) {
  (void)state;
  return etcd_cluster_start(&cl, 3, NULL);
}

static int teardown(void **state) {
  (void)state;
  etcd_cluster_stop(&cl);
  return 0;
}

static void config(struct keel_config *cfg, const char **eps) {
  keel_config_default(cfg);
  etcd_cluster_endpoints(&cl, eps);
  cfg->endpoints = eps;
  cfg->n_endpoints = 3;
  cfg->breaker_failures = 2;
  cfg->breaker_cooldown_ms = 60000; /* stays open for the test */
}

static void on_timer_flag(uv_timer_t *t) {
  *(int *)t->data = 1;
}

static void run_until(uv_loop_t *loop, int *flag, uint64_t bound_ms) {
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_timer_flag, bound_ms, 0);
  while (!*flag && !fired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  if (!*flag)
    fail_msg("condition not reached within %llu ms",
             (unsigned long long)bound_ms);
}

struct res {
  int done, err;
  uint32_t attempts;
  char ep[64], msg[256];
  int64_t rev;
  size_t n;
};

static void on_res(const struct keel_result *r, const void *resp, void *ud) {
  struct res *x = ud;
  x->done = 1;
  x->err = r->err;
  x->attempts = r->attempts;
  snprintf(x->ep, sizeof(x->ep), "%s", r->endpoint);
  snprintf(x->msg, sizeof(x->msg), "%s", r->message);
  if (resp)
    x->rev = ((const struct keel_header *)resp)->revision;
}

static void on_range(const struct keel_result *r, const void *resp, void *ud) {
  on_res(r, resp, ud);
  if (resp)
    ((struct res *)ud)->n = ((const struct keel_range_resp *)resp)->n_kvs;
}

static const char *last_endpoint(keel_sync *s, const char *key) {
  static char ep[64];
  struct res x = {0};
  struct keel_range_req r = {.key = (const uint8_t *)key,
                             .key_len = strlen(key)};
  assert_int_equal(keel_range(keel_sync_client(s), &r, NULL, on_range, &x), 0);
  run_until(keel_sync_loop(s), &x.done, 10000);
  assert_int_equal(x.err, 0);
  snprintf(ep, sizeof(ep), "%s", x.ep);
  return ep;
}

/* Index of the leader, asked through s. */
static int find_leader(keel_sync *s) {
  int leader = -1;
  for (int i = 0; i < 3; i++) {
    struct keel_status_resp *st;
    assert_int_equal(keel_sync_status(s, i, &st), 0);
    if (st->leader == st->header.member_id)
      leader = i;
    keel_resp_free(st);
  }
  assert_true(leader >= 0);
  return leader;
}

static void test_failover_and_refresh(void **state) {
  (void)state;
  const char *eps[3];
  struct keel_config cfg;
  config(&cfg, eps);
  keel_sync *s;
  assert_int_equal(keel_sync_new(&cfg, &s), 0);
  /* The endpoint in use is a follower: killing it loses no leader, so
   * every later put must succeed. (Killing the leader makes puts in the
   * election window legitimately "unknown": etcd answers "request timed
   * out"; the watch test below covers that case.) */
  int leader = find_leader(s);
  keel_sync_free(s);
  const char *order[3] = {eps[(leader + 1) % 3], eps[leader],
                          eps[(leader + 2) % 3]};
  memcpy(eps, order, sizeof(order));
  cfg.breaker_failures = 1; /* one refused connection opens it */
  assert_int_equal(keel_sync_new(&cfg, &s), 0);
  assert_int_equal(keel_sync_put_str(s, "f/a", "1", NULL), 0);
  char ep[64];
  snprintf(ep, sizeof(ep), "%s", last_endpoint(s, "f/a"));
  int victim = etcd_node_by_endpoint(&cl, ep);
  assert_true(victim >= 0);
  etcd_node_kill(&cl, victim);
  /* Reads and writes go on through the others; none reports an error. */
  for (int i = 0; i < 10; i++) {
    char k[16];
    snprintf(k, sizeof(k), "f/%d", i);
    int rc = keel_sync_put_str(s, k, "v", NULL);
    if (rc != 0)
      fail_msg("put %d after kill: %s", i, keel_sync_message(s));
    char *v;
    assert_int_equal(keel_sync_get(s, "f/a", &v, NULL, NULL), 0);
    assert_string_equal(v, "1");
    free(v);
    assert_true(strcmp(last_endpoint(s, "f/a"), ep) != 0);
  }
  /* The dead endpoint's breaker opened; the others are closed. */
  keel_client *c = keel_sync_client(s);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(keel_endpoint_breaker_state(c, i),
                     strcmp(keel_endpoint_name(c, i), ep) == 0
                         ? KEEL_BREAKER_OPEN
                         : KEEL_BREAKER_CLOSED);
  keel_sync_free(s);

  /* A client that knows one endpoint learns the rest from the members. */
  const char *one[] = {cl.nodes[(victim + 1) % 3].endpoint};
  cfg.endpoints = one;
  cfg.n_endpoints = 1;
  assert_int_equal(keel_sync_new(&cfg, &s), 0);
  assert_int_equal(keel_sync_endpoints_refresh(s), 0);
  assert_int_equal(keel_endpoint_count(keel_sync_client(s)), 3);
  keel_sync_free(s);
}

static void test_no_leader_failover(void **state) {
  (void)state;
  /* Stop two nodes: the third loses its leader and says so at once
   * ("no leader": not applied, so even a put may try elsewhere). */
  etcd_node_stop_signal(&cl, 1, SIGSTOP);
  etcd_node_stop_signal(&cl, 2, SIGSTOP);
  const char *eps[3];
  struct keel_config cfg;
  config(&cfg, eps);
  cfg.n_endpoints = 1;
  cfg.breaker_failures = 100;
  cfg.request_timeout_ms = 1500;
  keel_sync *s;
  assert_int_equal(keel_sync_new(&cfg, &s), 0);
  /* Wait (bounded) until node 0 knows it has no leader. */
  int rc = 0;
  for (int i = 0; i < 100; i++) {
    rc = keel_sync_put_str(s, "nl/k", "v", NULL);
    if (rc == KEEL_ENOLEADER)
      break;
  }
  assert_int_equal(rc, KEEL_ENOLEADER);
  assert_non_null(strstr(keel_sync_message(s), "no leader"));
  keel_sync_free(s);
  /* With all three endpoints, the put waits for the others to come back:
   * retried (not applied) until one has a leader. */
  etcd_node_stop_signal(&cl, 1, SIGCONT);
  etcd_node_stop_signal(&cl, 2, SIGCONT);
  config(&cfg, eps);
  cfg.request_timeout_ms = 10000;
  cfg.max_attempts = 50;
  assert_int_equal(keel_sync_new(&cfg, &s), 0);
  rc = keel_sync_put_str(s, "nl/k", "v", NULL);
  if (rc != 0)
    fail_msg("put after healing: %s", keel_sync_message(s));
  keel_sync_free(s);
}

/* ---- watch resume ---- */

struct wres {
  int64_t revs[4096];
  size_t n;
  int dup_or_gap_order; /* a revision not above the previous one */
  int err;
  int64_t compact;
};

static void on_w(keel_watcher *w, const struct keel_watch_batch *b, void *ud) {
  (void)w;
  struct wres *x = ud;
  if (b->err) {
    x->err = b->err;
    x->compact = b->compact_revision;
    return;
  }
  for (size_t i = 0; i < b->n_events; i++) {
    int64_t r = b->events[i].kv.mod_revision;
    if (x->n > 0 && r <= x->revs[x->n - 1])
      x->dup_or_gap_order = 1;
    if (x->n < 4096)
      x->revs[x->n++] = r;
  }
}

struct writer {
  keel_client *c;
  int next, total, done, unknown;
};

static void write_next(struct writer *w);
static void on_written(const struct keel_result *r, const void *resp,
                       void *ud) {
  (void)resp;
  struct writer *w = ud;
  if (r->err == KEEL_EUNKNOWN)
    w->unknown++;
  write_next(w);
}

static void write_next(struct writer *w) {
  if (w->next >= w->total) {
    w->done = 1;
    return;
  }
  char k[32];
  int n = snprintf(k, sizeof(k), "wr/%05d", w->next++);
  struct keel_put_req p = {
      .key = (const uint8_t *)k, .key_len = (size_t)n, .value = B("v")};
  assert_int_equal(keel_put(w->c, &p, NULL, on_written, w), 0);
}

/* freeze = 0: the stream's server is killed (connection lost);
 * freeze = 1: it is frozen (SIGSTOP: the connection stays up, silent), and
 * the liveness probe must notice. Writes go on meanwhile. */
static void watch_resume(int freeze) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  const char *eps[3];
  struct keel_config cfg;
  config(&cfg, eps);
  cfg.stream_probe_ms = 500;
  keel_client *wc, *pc;
  assert_int_equal(keel_client_new(&loop, &cfg, &wc), 0);
  uint8_t end[8];
  struct keel_watch_req wr = {.key = B("wr/")};
  wr.range_end = end;
  wr.range_end_len = keel_prefix_end(wr.key, wr.key_len, end);
  static struct wres ws;
  memset(&ws, 0, sizeof(ws));
  keel_watcher *w;
  assert_int_equal(keel_watch_create(wc, &wr, on_w, &ws, &w), 0);
  while (keel_watch_next_revision(w) == 0)
    uv_run(&loop, UV_RUN_ONCE);
  int victim = wc->wep;
  assert_true(victim >= 0);
  int vnode = etcd_node_by_endpoint(&cl, wc->eps[victim].name);
  /* The writer avoids a frozen node (its puts would only time out). */
  const char *weps[3];
  size_t nw = 0;
  for (int i = 0; i < 3; i++)
    if (!freeze || i != vnode)
      weps[nw++] = cl.nodes[i].endpoint;
  struct keel_config pcfg = cfg;
  pcfg.endpoints = weps;
  pcfg.n_endpoints = nw;
  assert_int_equal(keel_client_new(&loop, &pcfg, &pc), 0);
  struct writer wt = {.c = pc, .total = freeze ? 200 : 400};
  write_next(&wt);
  /* After 50 events, kill or freeze the node the watch stream is on. */
  while (ws.n < 50 && !wt.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_true(ws.n >= 50);
  if (freeze)
    etcd_node_stop_signal(&cl, vnode, SIGSTOP);
  else
    etcd_node_kill(&cl, vnode);
  run_until(&loop, &wt.done, 60000);
  /* What the store holds under the prefix is the truth: each key was
   * written once, so its mod revision is the revision that wrote it. */
  struct keel_range_req rr = {.key = B("wr/")};
  rr.range_end = end;
  rr.range_end_len = wr.range_end_len;
  keel_sync *s;
  const char *live[2];
  int nl = 0;
  for (int i = 0; i < 3; i++)
    if (cl.nodes[i].pid > 0 && i != vnode)
      live[nl++] = cl.nodes[i].endpoint;
  struct keel_config scfg = cfg;
  scfg.endpoints = live;
  scfg.n_endpoints = (size_t)nl;
  assert_int_equal(keel_sync_new(&scfg, &s), 0);
  struct keel_range_resp *all;
  assert_int_equal(keel_sync_range(s, &rr, NULL, &all), 0);
  int64_t last = 0;
  for (size_t i = 0; i < all->n_kvs; i++)
    last = all->kvs[i].mod_revision > last ? all->kvs[i].mod_revision : last;
  /* Let the watcher catch up to the last write (bounded). */
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(&loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_timer_flag, 20000, 0);
  while (keel_watch_next_revision(w) <= last && !fired)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  assert_int_equal(ws.err, 0);
  assert_false(ws.dup_or_gap_order);
  /* Exactly the store's revisions, in order: no gap, no duplicate. */
  int64_t *want = calloc(all->n_kvs, sizeof(*want));
  for (size_t i = 0; i < all->n_kvs; i++)
    want[i] = all->kvs[i].mod_revision; /* keys sorted = write order */
  if (ws.n != all->n_kvs)
    fail_msg("watch saw %zu events, the store has %zu keys (unknown puts "
             "%d)",
             ws.n, all->n_kvs, wt.unknown);
  for (size_t i = 0; i < ws.n; i++)
    assert_int_equal(ws.revs[i], want[i]);
  /* The stream moved to another endpoint. */
  assert_true(wc->wep != victim);
  fprintf(stderr,
          "# watch resume (%s): %zu events, %d puts unknown, stream moved "
          "%d -> %d\n",
          freeze ? "frozen" : "killed", ws.n, wt.unknown, victim, wc->wep);
  free(want);
  keel_resp_free(all);
  keel_sync_free(s);
  int closed = 0;
  keel_client_close(wc, NULL, NULL);
  keel_client_close(pc, NULL, NULL);
  (void)closed;
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_watch_compacted_resume(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  const char *eps[3];
  struct keel_config cfg;
  config(&cfg, eps);
  cfg.stream_probe_ms = 0; /* the frozen stream must wait for the kill */
  keel_client *wc;
  assert_int_equal(keel_client_new(&loop, &cfg, &wc), 0);
  struct keel_watch_req wr = {.key = B("cr/k")};
  static struct wres ws;
  memset(&ws, 0, sizeof(ws));
  keel_watcher *w;
  assert_int_equal(keel_watch_create(wc, &wr, on_w, &ws, &w), 0);
  while (keel_watch_next_revision(w) == 0)
    uv_run(&loop, UV_RUN_ONCE);
  int victim = etcd_node_by_endpoint(&cl, wc->eps[wc->wep].name);
  /* The stream's server freezes; meanwhile history moves on and is
   * compacted; then the frozen server dies. */
  etcd_node_stop_signal(&cl, victim, SIGSTOP);
  const char *live[2];
  int nl = 0;
  for (int i = 0; i < 3; i++)
    if (i != victim)
      live[nl++] = cl.nodes[i].endpoint;
  struct keel_config scfg = cfg;
  scfg.endpoints = live;
  scfg.n_endpoints = 2;
  keel_sync *s;
  assert_int_equal(keel_sync_new(&scfg, &s), 0);
  /* The frozen node may be the leader: until the others elect a new one
   * a put may time out. Writing the same value again is harmless here,
   * so the puts are marked idempotent and retried. */
  int64_t rev = 0;
  struct keel_opts idem = {.idempotent = 1, .timeout_ms = 10000};
  struct keel_put_req p = {.key = B("cr/k"), .value = B("v")};
  for (int i = 0; i < 5; i++) {
    struct keel_put_resp *pr;
    int rc = keel_sync_put(s, &p, &idem, &pr);
    if (rc != 0)
      fail_msg("put: %s", keel_sync_message(s));
    rev = pr->header.revision;
    keel_resp_free(pr);
  }
  assert_int_equal(keel_sync_compact(s, rev, 1), 0);
  etcd_node_kill(&cl, victim);
  int got = 0;
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(&loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_timer_flag, 20000, 0);
  while (ws.err == 0 && !fired)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  (void)got;
  assert_int_equal(ws.err, KEEL_ECOMPACTED);
  assert_int_equal(ws.compact, rev);
  assert_int_equal(ws.n, 0); /* nothing delivered out of order */
  keel_sync_free(s);
  keel_client_close(wc, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_long_timer(uv_timer_t *t) {
  *(int *)t->data = 1;
}

static void test_put_unknown_read_fails_over(void **state) {
  (void)state;
  const char *eps[3];
  struct keel_config cfg;
  config(&cfg, eps);
  keel_sync *s;
  assert_int_equal(keel_sync_new(&cfg, &s), 0);
  assert_int_equal(keel_sync_put_str(s, "u/r", "1", NULL), 0);
  char ep[64];
  snprintf(ep, sizeof(ep), "%s", last_endpoint(s, "u/r"));
  int victim = etcd_node_by_endpoint(&cl, ep);
  /* The endpoint in use freezes; a put and a read are sent to it (the
   * bytes reach its socket), then it dies: the connection drops with
   * both requests in flight. */
  etcd_node_stop_signal(&cl, victim, SIGSTOP);
  keel_client *c = keel_sync_client(s);
  uv_loop_t *loop = keel_sync_loop(s);
  struct res pr = {0}, rr = {0}, tr = {0};
  struct keel_put_req p = {.key = B("u/p"), .value = B("x")};
  struct keel_range_req r = {.key = B("u/r")};
  /* A create-if-absent txn: its guard makes a repeat harmless, and the
   * caller says so. */
  struct keel_compare absent = {.result = KEEL_CMP_EQUAL,
                                .target = KEEL_CMP_VERSION,
                                .key = B("u/t"),
                                .number = 0};
  struct keel_op create[] = {
      {.type = KEEL_OP_PUT, .u.put = {.key = B("u/t"), .value = B("1")}}};
  struct keel_txn_req txn = {
      .compares = &absent, .n_compares = 1, .success = create, .n_success = 1};
  struct keel_opts guarded = {.idempotent = 1};
  assert_int_equal(keel_put(c, &p, NULL, on_res, &pr), 0);
  assert_int_equal(keel_range(c, &r, NULL, on_range, &rr), 0);
  assert_int_equal(keel_txn(c, &txn, &guarded, on_res, &tr), 0);
  /* Let the loop write the requests (the server cannot answer). */
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_long_timer, 200, 0);
  while (!fired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  assert_int_equal(pr.done + rr.done + tr.done, 0);
  etcd_node_kill(&cl, victim);
  run_until(loop, &pr.done, 10000);
  run_until(loop, &rr.done, 10000);
  run_until(loop, &tr.done, 10000);
  assert_int_equal(tr.err, 0);
  assert_true(tr.attempts >= 2);
  assert_int_equal(pr.err, KEEL_EUNKNOWN);
  assert_int_equal(pr.attempts, 1);
  assert_non_null(strstr(pr.msg, "connection lost"));
  assert_int_equal(rr.err, 0);
  assert_true(rr.attempts >= 2);
  assert_int_equal(rr.n, 1);
  assert_true(strcmp(rr.ep, ep) != 0);
  /* The txn's key exists once, at version 1. */
  struct keel_range_req tk = {.key = B("u/t")};
  struct keel_range_resp *tkr;
  assert_int_equal(keel_sync_range(s, &tk, NULL, &tkr), 0);
  assert_int_equal(tkr->n_kvs, 1);
  assert_int_equal(tkr->kvs[0].version, 1);
  keel_resp_free(tkr);
  keel_sync_free(s);
}

static void test_move_leader(void **state) {
  (void)state;
  const char *eps[3];
  struct keel_config cfg;
  config(&cfg, eps);
  keel_sync *s;
  assert_int_equal(keel_sync_new(&cfg, &s), 0);
  int leader = find_leader(s);
  int target = (leader + 1) % 3;
  struct keel_status_resp *ts;
  assert_int_equal(keel_sync_status(s, target, &ts), 0);
  uint64_t target_id = ts->header.member_id;
  keel_resp_free(ts);
  /* Sent to a follower: "not leader". */
  struct res x = {0};
  keel_client *c = keel_sync_client(s);
  assert_int_equal(keel_move_leader(c, target, target_id, NULL, on_res, &x), 0);
  run_until(keel_sync_loop(s), &x.done, 10000);
  assert_int_equal(x.err, KEEL_ENOTLEADER);
  memset(&x, 0, sizeof(x));
  assert_int_equal(keel_move_leader(c, leader, target_id, NULL, on_res, &x), 0);
  run_until(keel_sync_loop(s), &x.done, 10000);
  if (x.err != 0)
    fail_msg("move-leader: %s", x.msg);
  struct keel_status_resp *after;
  assert_int_equal(keel_sync_status(s, target, &after), 0);
  assert_int_equal(after->leader, target_id);
  keel_resp_free(after);
  keel_sync_free(s);
}

struct kast {
  int renewals, err;
};
static void on_ka(keel_keepalive *ka, int err, int64_t ttl, void *ud) {
  (void)ka;
  (void)ttl;
  struct kast *k = ud;
  if (err)
    k->err = err;
  else
    k->renewals++;
}

/* A lease kept alive through a client whose keep-alive stream's server is
 * killed: the stream reopens elsewhere and the lease outlives its TTL
 * several times over. */
static void keepalive_survives(int freeze) {
  const char *eps[3];
  struct keel_config cfg;
  config(&cfg, eps);
  cfg.stream_probe_ms = 500;
  keel_sync *s;
  assert_int_equal(keel_sync_new(&cfg, &s), 0);
  struct keel_lease_grant_resp *g;
  assert_int_equal(keel_sync_lease_grant(s, 4, 0, &g), 0);
  int64_t id = g->id;
  keel_resp_free(g);
  keel_client *c = keel_sync_client(s);
  uv_loop_t *loop = keel_sync_loop(s);
  struct kast k = {0};
  assert_int_equal(keel_lease_keepalive(c, id, on_ka, &k, NULL), 0);
  while (k.renewals < 2 && k.err == 0)
    uv_run(loop, UV_RUN_ONCE);
  int victim = etcd_node_by_endpoint(&cl, c->eps[c->kep].name);
  if (freeze)
    etcd_node_stop_signal(&cl, victim, SIGSTOP);
  else
    etcd_node_kill(&cl, victim);
  int before = k.renewals;
  /* 9 s: over two TTLs (a time-bounded observation). A 4 s TTL leaves
   * room for an election when the frozen or killed node was the leader:
   * renewals stall until a new leader exists (the new leader extends every
   * lease by its TTL on promotion). */
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_timer_flag, 9000, 0);
  while (!fired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  assert_int_equal(k.err, 0);
  assert_true(k.renewals >= before + 4); /* every TTL/3 = 1.33 s */
  assert_true(c->eps[c->kep].name[0] &&
              etcd_node_by_endpoint(&cl, c->eps[c->kep].name) != victim);
  struct keel_lease_ttl_resp *tr;
  assert_int_equal(keel_sync_lease_ttl(s, id, 0, &tr), 0);
  assert_true(tr->ttl > 0);
  keel_resp_free(tr);
  keel_sync_free(s);
}

static void test_keepalive_survives_kill(void **state) {
  (void)state;
  keepalive_survives(0);
}

static void test_keepalive_survives_frozen_server(void **state) {
  (void)state;
  keepalive_survives(1);
}

static void test_watch_resume_across_kill(void **state) {
  (void)state;
  watch_resume(0);
}

static void test_watch_resume_frozen_server(void **state) {
  (void)state;
  watch_resume(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_failover_and_refresh, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_no_leader_failover, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_resume_across_kill, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_watch_resume_frozen_server, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_watch_compacted_resume, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_put_unknown_read_fails_over, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_move_leader, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keepalive_survives_kill, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_keepalive_survives_frozen_server,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

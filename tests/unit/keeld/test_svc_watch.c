/* test_svc_watch.c — the Watch service (server/svc_watch.h) end to end on
 * one loop: a real store, the service fed through svc_watch_on_applied()
 * exactly as the node feeds it, a client listener on loopback, and the
 * keel client library's watch as the client. No node: the test applies
 * store requests itself (the loop thread is the only store writer here).
 *
 * Covered: history replay with prev_kv, a revision with two events in one
 * batch, entries without a revision, a compacted start revision (canceled
 * with compact_revision), a live watch from "now", and a backlog far past
 * the hub's per-watcher limit and the gRPC stream buffer written while the
 * client is not read (catch-up from history, every event once, in order).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "apply.h"
#include "client_listener.h"
#include "keel.h"
#include "keel_error.h"
#include "store.h"
#include "svc_watch.h"

#define MAX_EV 256

struct rec {
  int64_t rev[MAX_EV];
  int type[MAX_EV];
  char key[MAX_EV][16];
  char prev[MAX_EV][16];
  size_t batch_of[MAX_EV]; /* which batch delivered it */
  size_t n;
  size_t batches;
  int err;
  int64_t compact_rev;
  bool done;
};

static struct {
  uv_loop_t loop;
  char dir[64];
  struct store *st;
  struct svc_watch *sw;
  keel_client_listener *ls;
  keel_client *c;
  uint64_t index;
} T;

static void on_batch(keel_watcher *w, const struct keel_watch_batch *b,
                     void *ud) {
  (void)w;
  struct rec *r = ud;
  r->batches++;
  if (b->err) {
    r->err = b->err;
    r->compact_rev = b->compact_revision;
    r->done = true;
    return;
  }
  for (size_t i = 0; i < b->n_events && r->n < MAX_EV; i++) {
    const struct keel_event *e = &b->events[i];
    r->rev[r->n] = e->kv.mod_revision;
    r->type[r->n] = e->type;
    snprintf(r->key[r->n], 16, "%.*s", (int)e->kv.key_len,
             (const char *)e->kv.key);
    if (e->prev_kv)
      snprintf(r->prev[r->n], 16, "%.*s", (int)e->prev_kv->value_len,
               (const char *)e->prev_kv->value);
    r->batch_of[r->n] = r->batches;
    r->n++;
  }
}

/* Applies one request as a committed entry and tells the service, as the
 * node does after the disk job. */
static int64_t apply(const struct store_request *rq) {
  struct store_apply_entry e = {++T.index, 1, rq};
  struct store_apply_batch b = {.entries = &e, .n = 1};
  struct apply_result ar = {0};
  assert_int_equal(store_apply(T.st, &b, &ar.store), 0);
  struct node_apply_out out = {.result = &ar};
  svc_watch_on_applied(T.sw, &out, false);
  int64_t rev = ar.store.revision;
  store_apply_result_free(&ar.store);
  return rev;
}

static int64_t put(const char *k, const char *v) {
  struct store_request rq = {.type = STORE_REQ_PUT};
  rq.u.put.key = (const uint8_t *)k;
  rq.u.put.key_len = strlen(k);
  rq.u.put.value = (const uint8_t *)v;
  rq.u.put.value_len = strlen(v);
  return apply(&rq);
}

static int64_t put_big(const char *k, size_t len) {
  uint8_t *v = malloc(len);
  assert_non_null(v);
  memset(v, 'x', len);
  struct store_request rq = {.type = STORE_REQ_PUT};
  rq.u.put.key = (const uint8_t *)k;
  rq.u.put.key_len = strlen(k);
  rq.u.put.value = v;
  rq.u.put.value_len = len;
  int64_t rev = apply(&rq);
  free(v);
  return rev;
}

static void run_until(bool *flag, size_t *n, size_t want) {
  uint64_t deadline = uv_now(&T.loop) + 10000;
  while (!(flag && *flag) && !(n && *n >= want)) {
    assert_true(uv_now(&T.loop) < deadline);
    uv_run(&T.loop, UV_RUN_ONCE);
    uv_update_time(&T.loop);
  }
}

static keel_watcher *watch(const char *key, const char *end, int64_t rev,
                           int prev, struct rec *r) {
  struct keel_watch_req q = {0};
  q.key = (const uint8_t *)key;
  q.key_len = strlen(key);
  q.range_end = (const uint8_t *)end;
  q.range_end_len = end ? strlen(end) : 0;
  q.start_revision = rev;
  q.prev_kv = prev;
  keel_watcher *w = NULL;
  assert_int_equal(keel_watch_create(T.c, &q, on_batch, r, &w), 0);
  return w;
}

static int setup(void **state) {
  (void)state;
  memset(&T, 0, sizeof(T));
  assert_int_equal(uv_loop_init(&T.loop), 0);
  strcpy(T.dir, "/tmp/keel-svcwatch-XXXXXX");
  assert_non_null(mkdtemp(T.dir));
  struct store_options so = {0};
  assert_int_equal(store_open(T.dir, &so, &T.st), 0);
  assert_int_equal(svc_watch_new(&T.loop, T.st, &T.sw), 0);
  assert_int_equal(keel_client_listener_new(&T.loop, NULL, &T.ls), 0);
  assert_int_equal(svc_watch_register(T.sw, keel_client_listener_grpc(T.ls)),
                   0);
  assert_int_equal(keel_client_listener_start(T.ls, "127.0.0.1", 0), 0);
  char ep[64];
  snprintf(ep, sizeof(ep), "127.0.0.1:%d", keel_client_listener_port(T.ls));
  const char *eps[] = {ep};
  struct keel_config cfg;
  keel_config_default(&cfg);
  cfg.endpoints = eps;
  cfg.n_endpoints = 1;
  cfg.stream_probe_ms = 0;
  assert_int_equal(keel_client_new(&T.loop, &cfg, &T.c), 0);
  return 0;
}

static void closed(void *ud) {
  *(bool *)ud = true;
}

static int teardown(void **state) {
  (void)state;
  bool cdone = false, ldone = false;
  keel_client_close(T.c, closed, &cdone);
  run_until(&cdone, NULL, 0);
  assert_int_equal(keel_client_listener_shutdown(T.ls, 100, closed, &ldone), 0);
  run_until(&ldone, NULL, 0);
  keel_client_listener_free(T.ls);
  svc_watch_free(T.sw);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&T.loop), 0);
  store_close(T.st);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", T.dir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

/* History with prev_kv; a delete-range of two keys is one revision and
 * arrives in one batch; a NOOP entry makes no revision. */
static void test_history_prev_and_multi_event_revision(void **state) {
  (void)state;
  int64_t r1 = put("a", "1"); /* an empty store is at revision 1 (etcd) */
  put("a", "2");
  struct store_request noop = {.type = STORE_REQ_NOOP};
  apply(&noop);  /* no revision */
  put("b", "3"); /* rev 3 */
  struct store_request del = {.type = STORE_REQ_DELETE_RANGE};
  del.u.delete_range.key = (const uint8_t *)"a";
  del.u.delete_range.key_len = 1;
  del.u.delete_range.range_end = (const uint8_t *)"c";
  del.u.delete_range.range_end_len = 1;
  apply(&del); /* rev 4: two deletes */
  static struct rec r;
  memset(&r, 0, sizeof(r));
  watch("a", "c", r1, 1, &r);
  run_until(NULL, &r.n, 5);
  assert_int_equal(r.n, 5);
  int64_t revs[] = {r1, r1 + 1, r1 + 2, r1 + 3, r1 + 3};
  const char *keys[] = {"a", "a", "b", "a", "b"};
  const char *prevs[] = {"", "1", "", "2", "3"};
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(r.rev[i], revs[i]);
    assert_string_equal(r.key[i], keys[i]);
    assert_string_equal(r.prev[i], prevs[i]);
    assert_int_equal(r.type[i], i >= 3 ? KEEL_EVENT_DELETE : KEEL_EVENT_PUT);
  }
  assert_int_equal(r.batch_of[3], r.batch_of[4]); /* one revision, one batch */
  assert_int_equal(r.err, 0);

  /* Live from "now": the next put arrives, nothing older. */
  static struct rec l;
  memset(&l, 0, sizeof(l));
  keel_watcher *lw = watch("k", NULL, 0, 0, &l);
  uint64_t deadline = uv_now(&T.loop) + 10000;
  while (keel_watch_next_revision(lw) == 0) { /* created answered */
    assert_true(uv_now(&T.loop) < deadline);
    uv_run(&T.loop, UV_RUN_ONCE);
    uv_update_time(&T.loop);
  }
  int64_t rk = put("k", "v");
  assert_int_equal(rk, r1 + 4);
  run_until(NULL, &l.n, 1);
  assert_int_equal(l.n, 1);
  assert_int_equal(l.rev[0], rk);
  assert_string_equal(l.key[0], "k");
}

/* A start revision at or below the compaction: canceled with
 * compact_revision (C + 1 here: a compaction at C drops C's deletes). */
static void test_compacted_start(void **state) {
  (void)state;
  int64_t r1 = put("a", "1");
  int64_t r2 = put("a", "2");
  int64_t r3 = put("a", "3");
  struct store_request c = {.type = STORE_REQ_COMPACTION};
  c.u.compaction.revision = r2;
  apply(&c);
  static struct rec r;
  memset(&r, 0, sizeof(r));
  watch("a", NULL, r1, 0, &r);
  run_until(&r.done, NULL, 0);
  assert_int_equal(r.err, KEEL_ECOMPACTED);
  assert_int_equal(r.compact_rev, r2 + 1);
  assert_int_equal(r.n, 0);
  /* From the compact revision on it works. */
  static struct rec w2;
  memset(&w2, 0, sizeof(w2));
  watch("a", NULL, r3, 0, &w2);
  run_until(NULL, &w2.n, 1);
  assert_int_equal(w2.rev[0], r3);
}

/* 48 x 64 KiB (3 MiB: past the hub's 1 MiB watcher backlog and the 1 MiB
 * gRPC stream buffer) written while the loop does not run: the watcher
 * falls back to history and still gets every event once, in order. */
static void test_backlog_catchup(void **state) {
  (void)state;
  static struct rec r;
  memset(&r, 0, sizeof(r));
  keel_watcher *w = watch("big/", "big0", 0, 0, &r);
  uint64_t deadline = uv_now(&T.loop) + 10000;
  while (keel_watch_next_revision(w) == 0) {
    assert_true(uv_now(&T.loop) < deadline);
    uv_run(&T.loop, UV_RUN_ONCE);
    uv_update_time(&T.loop);
  }
  char k[16];
  int64_t first = 0;
  for (int i = 0; i < 48; i++) {
    snprintf(k, sizeof(k), "big/%02d", i);
    int64_t rev = put_big(k, 64 * 1024);
    if (i == 0)
      first = rev;
  }
  run_until(NULL, &r.n, 48);
  assert_int_equal(r.n, 48);
  for (int i = 0; i < 48; i++) {
    snprintf(k, sizeof(k), "big/%02d", i);
    assert_string_equal(r.key[i], k);
    assert_int_equal(r.rev[i], first + i);
  }
  struct svc_watch_stats st;
  svc_watch_stats(T.sw, &st);
  assert_true(st.events >= 48);
  assert_true(st.victimized > 0); /* the history path was taken */
  assert_int_equal(st.streams, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_history_prev_and_multi_event_revision, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compacted_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backlog_catchup, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

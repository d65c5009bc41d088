/* test_flagcache_etcd.c — the flag cache against a real 3-node etcd 3.4
 * cluster: the first load, a put reaching on_change and the evaluation, a
 * delete giving FLAG_NOT_FOUND, an $evaluators change, an invalid stored
 * definition skipped; the latency from a put's acknowledgement to
 * on_change over 200 changes (printed: the figure for docs/BENCHMARKS.md);
 * and a watch compacted while its server was frozen, after which the cache
 * reads the set again and reports what changed. The cache's client and the
 * writer's client share one loop, so both times are taken as the events
 * arrive. */
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
#include "keel_flags.h"
#include "keel_internal.h"

#define FLAG_ON                                                                \
  "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"           \
  "\"defaultVariant\":\"on\"}"
#define FLAG_OFF                                                               \
  "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"           \
  "\"defaultVariant\":\"off\"}"
#define FLAG_REF                                                               \
  "{\"state\":\"ENABLED\",\"variants\":{\"a\":\"A\",\"b\":\"B\"},"             \
  "\"defaultVariant\":\"a\",\"targeting\":{\"$ref\":\"pick\"}}"

static struct etcd_cluster cl;
static uv_loop_t loop;
static keel_client *cc, *wc; /* the cache's client, the writer's */
static keel_flag_cache *cache;

/* What on_change saw. */
static struct {
  int calls;
  const char *want; /* key waited for */
  int got;          /* want was among the keys */
  uint64_t got_ns;  /* when */
} ch;

static void on_change(keel_flag_cache *c, const char *const *keys, size_t n,
                      void *ud) {
  (void)c;
  (void)ud;
  ch.calls++;
  for (size_t i = 0; i < n; i++)
    if (ch.want && strcmp(keys[i], ch.want) == 0 && !ch.got) {
      ch.got = 1;
      ch.got_ns = uv_hrtime();
    }
}

static void on_timer_flag(uv_timer_t *t) {
  *(int *)t->data = 1;
}

/* Runs the loop until *flag or bound_ms; fails the test on the bound. */
static void run_until(int *flag, uint64_t bound_ms, const char *what) {
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(&loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_timer_flag, bound_ms, 0);
  while (!*flag && !fired)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  if (!*flag)
    fail_msg("timed out waiting for %s", what);
}

struct ack {
  int done, err;
  uint64_t ns;
  int64_t rev;
};

static void on_ack(const struct keel_result *r, const void *resp, void *ud) {
  struct ack *a = ud;
  a->err = r->err;
  a->ns = uv_hrtime();
  if (!r->err)
    a->rev = ((const struct keel_header *)resp)->revision;
  a->done = 1;
}

static void config(struct keel_config *cfg, const char **eps) {
  keel_config_default(cfg);
  etcd_cluster_endpoints(&cl, eps);
  cfg->endpoints = eps;
  cfg->n_endpoints = 3;
}

/* Puts key=val (or deletes key when val is NULL) through the writer and
 * waits until both the acknowledgement and on_change with the flag key
 * arrived; returns nanoseconds from the ack to on_change (negative when
 * on_change came first). */
static uint64_t sent_ns; /* when the last change() sent its write */

static int64_t change(const char *flag, const char *val) {
  char key[128];
  snprintf(key, sizeof key, "/flags/e2e/%s", flag);
  ch.want = flag;
  ch.got = 0;
  struct ack a = {0};
  sent_ns = uv_hrtime();
  if (val) {
    struct keel_put_req p = {.key = (const uint8_t *)key,
                             .key_len = strlen(key),
                             .value = (const uint8_t *)val,
                             .value_len = strlen(val)};
    assert_int_equal(keel_put(wc, &p, NULL, on_ack, &a), 0);
  } else {
    struct keel_delete_req d = {.key = (const uint8_t *)key,
                                .key_len = strlen(key)};
    assert_int_equal(keel_delete(wc, &d, NULL, on_ack, &a), 0);
  }
  run_until(&a.done, 10000, "the write's ack");
  assert_int_equal(a.err, 0);
  run_until(&ch.got, 10000, flag);
  fflush(stdout);
  ch.want = NULL;
  assert_true(keel_flag_cache_revision(cache) >= a.rev);
  return (int64_t)ch.got_ns - (int64_t)a.ns;
}

static int eval_bool(const char *key) {
  struct keel_flag_eval e;
  assert_int_equal(
      keel_flag_cache_evaluate(cache, key, FLAGS_TYPE_BOOLEAN, NULL, 0, &e), 0);
  int r = -2;
  if (e.r.error_code == FLAGS_ERROR_FLAG_NOT_FOUND)
    r = -1;
  else if (e.r.value && json_is_boolean(e.r.value))
    r = json_is_true(e.r.value);
  keel_flag_eval_release(&e);
  return r;
}

static void eval_str(const char *key, const char *want) {
  struct keel_flag_eval e;
  keel_flag_cache_evaluate(cache, key, FLAGS_TYPE_STRING, NULL, 0, &e);
  assert_non_null(e.r.value);
  assert_string_equal(json_string_value(e.r.value), want);
  keel_flag_eval_release(&e);
}

static int group_setup(void **state) {
  (void)state;
  if (etcd_cluster_start(&cl, 3, NULL) != 0)
    return -1;
  uv_loop_init(&loop);
  const char *eps[3];
  struct keel_config cfg;
  config(&cfg, eps);
  /* A frozen stream must stay frozen until its server is killed (the
   * compaction test), not be replaced by the probe. */
  cfg.stream_probe_ms = 0;
  if (keel_client_new(&loop, &cfg, &cc))
    return -1;
  /* The writer starts on another member than the cache's watch. */
  config(&cfg, eps);
  const char *rot[3] = {eps[1], eps[2], eps[0]};
  cfg.endpoints = rot;
  cfg.request_timeout_ms = 15000;
  cfg.max_attempts = 50;
  return keel_client_new(&loop, &cfg, &wc);
}

static int closed;
static void on_closed(void *ud) {
  (void)ud;
  closed++;
}

static int group_teardown(void **state) {
  (void)state;
  if (cache)
    keel_flag_cache_close(cache, on_closed, NULL);
  keel_client_close(cc, NULL, NULL);
  keel_client_close(wc, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop);
  etcd_cluster_stop(&cl);
  if (closed != (cache != NULL))
    fprintf(stderr, "flag cache close: done called %d times\n", closed);
  return rc == 0 && closed == (cache != NULL) ? 0 : -1;
}

static void test_changes(void **state) {
  (void)state;
  /* A flag stored before the cache opens is in its first load. */
  struct ack a = {0};
  struct keel_put_req p = {.key = (const uint8_t *)"/flags/e2e/early",
                           .key_len = 16,
                           .value = (const uint8_t *)FLAG_ON,
                           .value_len = strlen(FLAG_ON)};
  assert_int_equal(keel_put(wc, &p, NULL, on_ack, &a), 0);
  run_until(&a.done, 10000, "put early");
  assert_int_equal(a.err, 0);

  ch.want = "early";
  assert_int_equal(
      keel_flag_cache_open(cc, "e2e", NULL, on_change, NULL, &cache), 0);
  run_until(&ch.got, 10000, "the first load");
  assert_int_equal(ch.calls, 1);
  assert_true(keel_flag_cache_revision(cache) >= a.rev);
  assert_int_equal(eval_bool("early"), 1);

  /* Added, modified, deleted. */
  assert_int_equal(eval_bool("a"), -1);
  change("a", FLAG_ON);
  assert_int_equal(eval_bool("a"), 1);
  change("a", FLAG_OFF);
  assert_int_equal(eval_bool("a"), 0);
  change("a", NULL);
  assert_int_equal(eval_bool("a"), -1);

  /* An $evaluators change reports the flags that use it and changes
   * their answer. */
  change("$evaluators", "{\"pick\":\"b\"}");
  change("r", FLAG_REF);
  eval_str("r", "B");
  change("$evaluators", "{\"pick\":\"a\"}");
  eval_str("r", "A");

  /* etcd does not validate: an invalid definition is stored, and the
   * cache skips it. */
  change("bad", "{\"state\":\"ENABLED\",\"variants\":{}}");
  assert_int_equal(eval_bool("bad"), -1);
  struct keel_flag_cache_stats st;
  keel_flag_cache_stats(cache, &st);
  assert_int_equal(st.invalid, 1);
  assert_int_equal(st.last_error, KEEL_EINVALIDFLAG);
  assert_non_null(strstr(st.last_error_message, "/flags/e2e/bad"));
  change("bad", NULL);
  keel_flag_cache_stats(cache, &st);
  assert_int_equal(st.invalid, 0);
  assert_int_equal(eval_bool("early"), 1);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void test_latency(void **state) {
  (void)state;
  assert_non_null(cache);
  enum { N = 200 };
  int64_t d[N], full[N];
  int before = 0;
  for (int i = 0; i < N; i++) {
    d[i] = change("lat", i % 2 ? FLAG_OFF : FLAG_ON);
    full[i] = (int64_t)ch.got_ns - (int64_t)sent_ns;
    if (d[i] < 0)
      before++;
    assert_int_equal(eval_bool("lat"), i % 2 ? 0 : 1);
  }
  qsort(d, N, sizeof d[0], cmp_i64);
  qsort(full, N, sizeof full[0], cmp_i64);
  printf("flagcache latency over %d changes, 3-node etcd 3.4, writer and "
         "watch on different members:\n"
         "  put acknowledged -> on_change: p50 %.3f ms, p99 %.3f ms, "
         "min %.3f, max %.3f (%d of %d arrived before the ack)\n"
         "  put sent -> on_change: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
         N, d[N / 2] / 1e6, d[N * 99 / 100 - 1] / 1e6, d[0] / 1e6,
         d[N - 1] / 1e6, before, N, full[N / 2] / 1e6,
         full[N * 99 / 100 - 1] / 1e6, full[N - 1] / 1e6);
}

static void test_compaction_during_disconnect(void **state) {
  (void)state;
  assert_non_null(cache);
  /* The cache's watch stream's server freezes; meanwhile flags change and
   * history is compacted; then the frozen server dies and libkeel resumes
   * the watch elsewhere: compacted, so the cache reads the set again. */
  int victim = etcd_node_by_endpoint(&cl, cc->eps[cc->wep].name);
  assert_true(victim >= 0);
  etcd_node_stop_signal(&cl, victim, SIGSTOP);
  const char *live[2];
  int nl = 0;
  for (int i = 0; i < 3; i++)
    if (i != victim)
      live[nl++] = cl.nodes[i].endpoint;
  struct keel_config scfg;
  keel_config_default(&scfg);
  scfg.endpoints = live;
  scfg.n_endpoints = 2;
  scfg.request_timeout_ms = 15000;
  scfg.max_attempts = 50;
  keel_sync *s;
  assert_int_equal(keel_sync_new(&scfg, &s), 0);
  /* The frozen node may be the leader; the writes are idempotent
   * (absolute values), so they may be retried through the election. */
  struct keel_opts idem = {.idempotent = 1, .timeout_ms = 15000};
  const char *k[3] = {"/flags/e2e/early", "/flags/e2e/c1", "/flags/e2e/c2"};
  const char *v[3] = {FLAG_OFF, FLAG_ON, FLAG_OFF};
  int64_t rev = 0;
  for (int i = 0; i < 3; i++) {
    struct keel_put_req p = {.key = (const uint8_t *)k[i],
                             .key_len = strlen(k[i]),
                             .value = (const uint8_t *)v[i],
                             .value_len = strlen(v[i])};
    struct keel_put_resp *pr;
    if (keel_sync_put(s, &p, &idem, &pr) != 0)
      fail_msg("put %s: %s", k[i], keel_sync_message(s));
    rev = pr->header.revision;
    keel_resp_free(pr);
  }
  struct keel_delete_req d = {.key = (const uint8_t *)"/flags/e2e/lat",
                              .key_len = 14};
  struct keel_delete_resp *dr;
  if (keel_sync_delete(s, &d, &idem, &dr) != 0)
    fail_msg("delete: %s", keel_sync_message(s));
  rev = dr->header.revision;
  keel_resp_free(dr);
  assert_int_equal(keel_sync_compact(s, rev, 1), 0);
  keel_sync_free(s);
  etcd_node_kill(&cl, victim);

  ch.want = "c2";
  ch.got = 0;
  run_until(&ch.got, 30000, "the re-read after compaction");
  struct keel_flag_cache_stats st;
  keel_flag_cache_stats(cache, &st);
  assert_int_equal(st.resyncs, 1);
  assert_int_equal(st.last_error, KEEL_ECOMPACTED);
  assert_true(keel_flag_cache_revision(cache) >= rev);
  assert_int_equal(eval_bool("early"), 0);
  assert_int_equal(eval_bool("c1"), 1);
  assert_int_equal(eval_bool("c2"), 0);
  assert_int_equal(eval_bool("lat"), -1);

  /* And the new watch works. */
  change("after", FLAG_ON);
  assert_int_equal(eval_bool("after"), 1);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_changes),
      cmocka_unit_test(test_latency),
      cmocka_unit_test(test_compaction_during_disconnect),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* test_store_watch.c — the watch hub reading its history from a real store
 * (store_watch_read_history): a watcher starting in the past catches up
 * from LMDB while new revisions are applied and published, and must see
 * every revision of its range exactly once, in order, with correct prev_kv;
 * a live watcher sees only new ones; a watcher starting at or below the
 * compact revision is canceled with compact_revision = C + 1, from which
 * a resumed watcher catches up completely. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "store.h"
#include "store_watch.h"
#include "test_util.h"
#include "watch_hub.h"

static struct store *st;
static struct watch_hub *hub;
static uint64_t index_;

/* Applies a put (and publishes it when publish is set). Returns its rev. */
static int64_t put(const char *k, const char *v, bool publish) {
  struct store_request rq = {.type = STORE_REQ_PUT};
  rq.u.put.key = (const uint8_t *)k;
  rq.u.put.key_len = strlen(k);
  rq.u.put.value = (const uint8_t *)v;
  rq.u.put.value_len = strlen(v);
  struct store_apply_entry e = {.index = ++index_, .term = 1, .req = &rq};
  struct store_apply_batch b = {.entries = &e, .n = 1};
  struct store_apply_result res;
  assert_int_equal(store_apply(st, &b, &res), 0);
  assert_int_equal(res.responses[0].error, 0);
  int64_t rev = res.revision;
  if (publish)
    assert_int_equal(watch_hub_publish(hub, rev, res.events, res.n_events), 0);
  store_apply_result_free(&res);
  return rev;
}

struct seen {
  int64_t revs[4096];
  size_t n;
  bool canceled;
  int64_t compact_revision;
};

/* Pulls every batch of the stream into per-watcher records. */
static void pull(struct watch_stream *s, int64_t ids[], struct seen *out[],
                 int nw) {
  struct watch_batch b;
  int rc;
  while ((rc = watch_stream_next(s, 1 << 20, &b)) == 1) {
    for (int w = 0; w < nw; w++) {
      if (b.watch_id != ids[w])
        continue;
      if (b.canceled) {
        out[w]->canceled = true;
        out[w]->compact_revision = b.compact_revision;
      }
      for (size_t i = 0; i < b.n_events; i++) {
        const struct store_event *ev = &b.events[i];
        assert_true(out[w]->n < 4096);
        out[w]->revs[out[w]->n++] = ev->kv.mod_revision;
        /* values are "v<rev>", prev values "v<prev mod_revision>" */
        char want[32];
        snprintf(want, sizeof(want), "v%lld", (long long)ev->kv.mod_revision);
        assert_int_equal(ev->kv.value_len, strlen(want));
        assert_memory_equal(ev->kv.value, want, strlen(want));
        if (ev->has_prev) {
          snprintf(want, sizeof(want), "v%lld",
                   (long long)ev->prev_kv.mod_revision);
          assert_memory_equal(ev->prev_kv.value, want, strlen(want));
          assert_true(ev->prev_kv.mod_revision < ev->kv.mod_revision);
        }
      }
    }
  }
  assert_int_equal(rc, 0);
}

static void put_rev(const char *k, bool publish) {
  int64_t cur;
  store_revisions(st, &cur, NULL);
  char v[32];
  snprintf(v, sizeof(v), "v%lld", (long long)(cur + 1));
  put(k, v, publish);
}

static void test_catchup_from_store(void **state) {
  (void)state;
  char dir[256];
  tu_tmpdir(dir, sizeof(dir), "watch");
  struct store_options o = {.quota_bytes = 16 << 20, .apply_nosync = true};
  assert_int_equal(store_open(dir, &o, &st), 0);
  index_ = 0;
  /* history before the hub exists: revisions 2..301 */
  for (int i = 0; i < 300; i++)
    put_rev(i % 3 == 0 ? "other" : (i % 2 ? "w/a" : "w/b"), false);
  int64_t cur;
  store_revisions(st, &cur, NULL);
  struct watch_hub_config c;
  watch_hub_config_init(&c);
  c.current_rev = cur;
  c.read_history = store_watch_read_history;
  c.history_ctx = st;
  assert_int_equal(watch_hub_new(&c, &hub), 0);
  struct watch_stream *s;
  assert_int_equal(watch_stream_open(hub, NULL, NULL, &s), 0);
  struct watch_create past = {.key = (const uint8_t *)"w/",
                              .key_len = 2,
                              .range_end = (const uint8_t *)"w0",
                              .range_end_len = 2,
                              .start_rev = 2,
                              .flags = WATCH_PREV_KV,
                              .watch_id = WATCH_ID_AUTO};
  struct watch_create live = past;
  live.start_rev = 0;
  int64_t ids[2];
  assert_int_equal(watch_stream_watch(s, &past, &ids[0]), 0);
  assert_int_equal(watch_stream_watch(s, &live, &ids[1]), 0);
  static struct seen a, b;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  struct seen *outs[2] = {&a, &b};
  /* catch-up in small chunks races with live writes */
  for (int round = 0; round < 200; round++) {
    put_rev(round % 2 ? "w/a" : "w/c", true);
    watch_hub_catchup(hub, 7, 4096);
    pull(s, ids, outs, 2);
  }
  while (watch_hub_catchup(hub, 64, 1 << 20) > 0)
    pull(s, ids, outs, 2);
  pull(s, ids, outs, 2);
  /* expected: every revision whose key is under w/ */
  store_revisions(st, &cur, NULL);
  struct store_history h;
  assert_int_equal(store_history_read(st, (const uint8_t *)"w/", 2,
                                      (const uint8_t *)"w0", 2, 2, 0, 100000,
                                      1 << 30, false, &h),
                   0);
  assert_int_equal(a.n, h.n_events);
  for (size_t i = 0; i < h.n_events; i++)
    assert_int_equal(a.revs[i], h.events[i].kv.mod_revision);
  store_history_free(&h);
  assert_int_equal(b.n, 200); /* the live watcher: only new revisions */
  for (size_t i = 1; i < b.n; i++)
    assert_true(b.revs[i] > b.revs[i - 1]);

  /* compaction: a watcher at or below it is canceled at C + 1 */
  struct store_request rq = {.type = STORE_REQ_COMPACTION};
  rq.u.compaction.revision = 250;
  struct store_apply_entry e = {.index = ++index_, .term = 1, .req = &rq};
  struct store_apply_batch bt = {.entries = &e, .n = 1};
  struct store_apply_result res;
  assert_int_equal(store_apply(st, &bt, &res), 0);
  assert_int_equal(res.responses[0].error, 0);
  store_apply_result_free(&res);
  while (store_compact_step(st, 50) == 1)
    ;
  struct watch_create old = past;
  old.start_rev = 100;
  int64_t ids2[1];
  assert_int_equal(watch_stream_watch(s, &old, &ids2[0]), 0);
  static struct seen c1;
  memset(&c1, 0, sizeof(c1));
  struct seen *outs2[1] = {&c1};
  while (watch_hub_catchup(hub, 64, 1 << 20) > 0)
    pull(s, ids2, outs2, 1);
  pull(s, ids2, outs2, 1);
  assert_true(c1.canceled);
  assert_int_equal(c1.compact_revision, 251);
  /* resuming from there is complete */
  old.start_rev = c1.compact_revision;
  assert_int_equal(watch_stream_watch(s, &old, &ids2[0]), 0);
  memset(&c1, 0, sizeof(c1));
  while (watch_hub_catchup(hub, 64, 1 << 20) > 0)
    pull(s, ids2, outs2, 1);
  pull(s, ids2, outs2, 1);
  assert_false(c1.canceled);
  assert_int_equal(store_history_read(st, (const uint8_t *)"w/", 2,
                                      (const uint8_t *)"w0", 2, 251, 0, 100000,
                                      1 << 30, false, &h),
                   0);
  assert_int_equal(c1.n, h.n_events);
  store_history_free(&h);
  watch_stream_close(s);
  watch_hub_free(hub);
  store_close(st);
  tu_rmrf(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_catchup_from_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

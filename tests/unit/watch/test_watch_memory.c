/* test_watch_memory.c — the watch hub's memory stays bounded.
 *
 * test_slow_watcher_1gib: a watcher whose client reads slowly receives
 * 1 GiB of events in total (16,384 revisions of one 64 KiB value each,
 * synthesized on the fly: nothing holds the whole history) while the
 * revisions are published far faster than it reads. It falls behind, stops
 * being buffered, catches up from history in chunks, and in the end has
 * every revision exactly once, in order. Stated bound: the bytes the hub
 * has allocated never exceed 4 MiB (backlog limit 1 MiB, stream limit
 * 2 MiB, plus one revision and the tables); outside sanitizer builds the
 * process's peak RSS also grows by less than 64 MiB.
 *
 * test_idle_watcher_bytes: 100,000 idle watchers on distinct keys cost
 * fewer than 200 bytes each as counted by the hub, plus 16 bytes of malloc
 * overhead per allocation (two per watcher).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "watch_hub.h"

#define VALUE_SIZE (64 * 1024)
#define REVISIONS (16 * 1024) /* x 64 KiB = 1 GiB */
#define HUB_BOUND (4u << 20)
#define RSS_BOUND_KB (64 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static uint8_t value_buf[VALUE_SIZE];

/* Revision r holds one put of key "big/<r % 16>" whose value starts with r
 * (8 bytes, little endian) and is VALUE_SIZE long. */
static void synth(int64_t r, struct store_event *e, char *key) {
  snprintf(key, 16, "big/%02d", (int)(r % 16));
  memset(e, 0, sizeof *e);
  e->type = STORE_EVENT_PUT;
  e->kv.key = (const uint8_t *)key;
  e->kv.key_len = strlen(key);
  memcpy(value_buf, &r, sizeof r);
  e->kv.value = value_buf;
  e->kv.value_len = VALUE_SIZE;
  e->kv.mod_revision = r;
  e->kv.create_revision = r < 16 ? r : r % 16;
  e->kv.version = 1 + r / 16;
}

struct synth_history {
  int64_t compact;
  size_t reads;
};

static int synth_read(void *ctx, const struct watch_history_req *req,
                      watch_emit_fn emit, void *emit_ctx, int64_t *next_rev,
                      int64_t *compact_rev) {
  struct synth_history *sh = ctx;
  sh->reads++;
  if (req->from_rev < sh->compact) {
    *compact_rev = sh->compact;
    return KEEL_ECOMPACTED;
  }
  size_t events = 0, bytes = 0;
  int64_t r = req->from_rev;
  for (; r <= req->max_rev;) {
    struct store_event e;
    char key[16];
    synth(r, &e, key);
    /* every key is under "big/"; the watcher asks for that prefix */
    int rc = emit(emit_ctx, &e);
    if (rc)
      return rc;
    events++;
    bytes += e.kv.key_len + e.kv.value_len;
    r++;
    if (events >= req->max_events || bytes >= req->max_bytes)
      break;
  }
  *next_rev = r;
  return 0;
}

static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6))
      kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

struct consumer {
  int64_t next_expected;
  uint64_t bytes;
  size_t batches;
};

static void consume(struct consumer *c, struct watch_stream *s,
                    size_t max_batches) {
  struct watch_batch b;
  for (size_t i = 0; i < max_batches; i++) {
    int rc = watch_stream_next(s, 256 * 1024, &b);
    assert_true(rc >= 0);
    if (rc == 0)
      return;
    assert_false(b.canceled);
    c->batches++;
    for (size_t j = 0; j < b.n_events; j++) {
      const struct store_event *e = &b.events[j];
      int64_t r;
      assert_int_equal(e->kv.mod_revision, c->next_expected);
      assert_int_equal(e->kv.value_len, VALUE_SIZE);
      memcpy(&r, e->kv.value, sizeof r);
      assert_int_equal(r, c->next_expected);
      assert_int_equal(e->kv.value[VALUE_SIZE - 1], 0x5a);
      c->next_expected++;
      c->bytes += e->kv.value_len;
    }
  }
}

static void test_slow_watcher_1gib(void **state) {
  (void)state;
  memset(value_buf, 0x5a, sizeof value_buf);
  long rss0 = peak_rss_kb();
  struct synth_history sh = {1, 0};
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.read_history = synth_read;
  cfg.history_ctx = &sh;
  cfg.current_rev = 0;
  cfg.watcher_backlog_bytes = 1 << 20;
  cfg.watcher_backlog_events = 64;
  cfg.stream_backlog_bytes = 2 << 20;
  struct watch_hub *h;
  assert_int_equal(watch_hub_new(&cfg, &h), 0);
  struct watch_stream *s;
  assert_int_equal(watch_stream_open(h, NULL, NULL, &s), 0);
  struct watch_create req = {(const uint8_t *)"big/",
                             4,
                             (const uint8_t *)"big0",
                             4,
                             0,
                             0,
                             WATCH_ID_AUTO};
  int64_t id;
  assert_int_equal(watch_stream_watch(s, &req, &id), 0);

  struct consumer c = {1, 0, 0};
  for (int64_t r = 1; r <= REVISIONS; r++) {
    struct store_event e;
    char key[16];
    synth(r, &e, key);
    assert_int_equal(watch_hub_publish(h, r, &e, 1), 0);
    /* the client reads one batch per 8 revisions written */
    if (r % 8 == 0) {
      consume(&c, s, 1);
      watch_hub_catchup(h, 64, 1 << 20);
    }
  }
  struct watch_hub_stats st;
  watch_hub_stats(h, &st);
  assert_true(st.victimized > 0); /* it did fall behind */
  assert_true(sh.reads > 0);      /* and was served from history */
  assert_true(c.next_expected < REVISIONS / 2); /* far behind */
  for (int i = 0; i < 1000000; i++) {
    size_t left = watch_hub_catchup(h, 64, 1 << 20);
    size_t before = c.batches;
    consume(&c, s, SIZE_MAX);
    if (!left && c.batches == before)
      break;
  }
  assert_int_equal(c.next_expected, REVISIONS + 1);
  assert_true(c.bytes >= (1ull << 30));
  watch_hub_stats(h, &st);
  printf("slow watcher: %llu bytes in %zu batches, %zu history reads, hub "
         "peak %zu bytes (bound %u)\n",
         (unsigned long long)c.bytes, c.batches, sh.reads, st.bytes_peak,
         HUB_BOUND);
  assert_true(st.bytes_peak < HUB_BOUND);
  long rss1 = peak_rss_kb();
  printf("peak RSS %ld kB -> %ld kB\n", rss0, rss1);
  if (!SANITIZED && rss0 > 0 && rss1 > 0)
    assert_true(rss1 - rss0 < RSS_BOUND_KB);
  watch_stream_close(s);
  watch_hub_free(h);
}

static void test_idle_watcher_bytes(void **state) {
  (void)state;
  struct synth_history sh = {1, 0};
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.read_history = synth_read;
  cfg.history_ctx = &sh;
  struct watch_hub *h;
  assert_int_equal(watch_hub_new(&cfg, &h), 0);
  struct watch_stream *s;
  assert_int_equal(watch_stream_open(h, NULL, NULL, &s), 0);
  struct watch_hub_stats st0, st1;
  watch_hub_stats(h, &st0);
  enum { N = 100000 };
  for (int i = 0; i < N; i++) {
    char key[32];
    snprintf(key, sizeof key, "/svc/key-%06d", i);
    struct watch_create req = {(const uint8_t *)key, strlen(key), NULL, 0, 0, 0,
                               WATCH_ID_AUTO};
    int64_t id;
    assert_int_equal(watch_stream_watch(s, &req, &id), 0);
  }
  watch_hub_stats(h, &st1);
  double per = (double)(st1.bytes_now - st0.bytes_now) / N;
  printf("idle watcher: %.1f bytes counted by the hub (+32 malloc overhead) "
         "for 15-byte keys\n",
         per);
  assert_true(per + 32 < 200);
  watch_stream_close(s);
  watch_hub_free(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slow_watcher_1gib),
      cmocka_unit_test(test_idle_watcher_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

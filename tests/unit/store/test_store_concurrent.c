/* test_store_concurrent.c — readers on other threads while the writer
 * applies, compacts and defragments (switching LMDB files under them).
 * Every value names its own key and the revision that wrote it, so a reader
 * can check each result it gets on its own: never a torn or stale-mixed
 * read, no error but "compacted", no crash (run under ASan too). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "store.h"
#include "test_util.h"

#define NKEYS 64

static struct store *st;
static atomic_bool stop;
static atomic_long reads_done, bad_reads;

static void key_name(int i, char *buf) {
  snprintf(buf, 16, "c/%02d", i);
}

static bool value_ok(const struct store_kv *kv) {
  char want[64];
  int n = snprintf(want, sizeof(want), "%.*s@%lld", (int)kv->key_len,
                   (const char *)kv->key, (long long)kv->mod_revision);
  return kv->value_len == (size_t)n && memcmp(kv->value, want, n) == 0;
}

static void *reader(void *arg) {
  uint64_t r = (uint64_t)(uintptr_t)arg;
  while (!atomic_load(&stop)) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    int64_t cur, comp;
    store_revisions(st, &cur, &comp);
    struct store_range_req q = {.key = (const uint8_t *)"c/",
                                .key_len = 2,
                                .range_end = (const uint8_t *)"c0",
                                .range_end_len = 2};
    if ((r >> 33) % 2 && cur > 2)
      q.revision = 1 + (int64_t)((r >> 20) % (uint64_t)cur);
    struct store_range_result res;
    int rc = store_range(st, &q, &res);
    if (rc == 0) {
      for (size_t i = 0; i < res.resp.n_kvs; i++) {
        const struct store_kv *kv = &res.resp.kvs[i];
        if (!value_ok(kv) || kv->mod_revision > res.resp.revision)
          atomic_fetch_add(&bad_reads, 1);
      }
      store_range_result_free(&res);
    } else if (rc != KEEL_ECOMPACTED) {
      atomic_fetch_add(&bad_reads, 1);
    }
    if ((r >> 40) % 8 == 0) {
      struct store_history h;
      rc = store_history_read(st, (const uint8_t *)"c/", 2,
                              (const uint8_t *)"c0", 2, comp + 1, 0, 50,
                              1 << 20, true, &h);
      if (rc == 0) {
        for (size_t i = 0; i < h.n_events; i++)
          if (h.events[i].type == STORE_EVENT_PUT && !value_ok(&h.events[i].kv))
            atomic_fetch_add(&bad_reads, 1);
        store_history_free(&h);
      } else if (rc != KEEL_ECOMPACTED) {
        atomic_fetch_add(&bad_reads, 1);
      }
    }
    atomic_fetch_add(&reads_done, 1);
  }
  return NULL;
}

static void test_readers_during_writes_and_defrag(void **state) {
  (void)state;
  char dir[256];
  tu_tmpdir(dir, sizeof(dir), "conc");
  struct store_options o = {.quota_bytes = 64 << 20, .apply_nosync = true};
  assert_int_equal(store_open(dir, &o, &st), 0);
  atomic_store(&stop, false);
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(
        pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)(i + 1)), 0);
  uint64_t index = 0;
  int defrags = 0;
  for (int b = 0; b < 400; b++) {
    struct store_request rq[8];
    struct store_apply_entry ae[8];
    char keys[8][16], vals[8][64];
    int64_t cur;
    store_revisions(st, &cur, NULL);
    for (int i = 0; i < 8; i++) {
      key_name((b * 8 + i * 5) % NKEYS, keys[i]);
      /* each put is its own entry: it gets revision cur + i + 1 */
      int vn = snprintf(vals[i], sizeof(vals[i]), "%s@%lld", keys[i],
                        (long long)(cur + i + 1));
      rq[i] = (struct store_request){.type = STORE_REQ_PUT};
      rq[i].u.put.key = (const uint8_t *)keys[i];
      rq[i].u.put.key_len = strlen(keys[i]);
      rq[i].u.put.value = (const uint8_t *)vals[i];
      rq[i].u.put.value_len = (size_t)vn;
      ae[i] = (struct store_apply_entry){
          .index = ++index, .term = 1, .req = &rq[i]};
    }
    struct store_apply_batch ab = {.entries = ae, .n = 8};
    struct store_apply_result res;
    assert_int_equal(store_apply(st, &ab, &res), 0);
    for (int i = 0; i < 8; i++)
      assert_int_equal(res.responses[i].error, 0);
    store_apply_result_free(&res);
    if (b % 50 == 49) {
      store_revisions(st, &cur, NULL);
      struct store_request c = {.type = STORE_REQ_COMPACTION};
      c.u.compaction.revision = cur - 100;
      struct store_apply_entry ce = {.index = ++index, .term = 1, .req = &c};
      struct store_apply_batch cb = {.entries = &ce, .n = 1};
      assert_int_equal(store_apply(st, &cb, &res), 0);
      assert_int_equal(res.responses[0].error, 0);
      store_apply_result_free(&res);
      int r;
      while ((r = store_compact_step(st, 64)) == 1)
        ;
      assert_int_equal(r, 0);
    }
    if (b % 100 == 99) {
      assert_int_equal(store_defragment(st), 0);
      defrags++;
    }
  }
  atomic_store(&stop, true);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  fprintf(stderr, "concurrent: %ld reads during 400 batches and %d defrags\n",
          atomic_load(&reads_done), defrags);
  assert_int_equal(atomic_load(&bad_reads), 0);
  assert_true(atomic_load(&reads_done) > 0);
  assert_int_equal(store_verify(st), 0);
  store_close(st);
  tu_rmrf(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_readers_during_writes_and_defrag),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

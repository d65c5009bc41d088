/* test_flagcache.c — the flag cache without a server: watch batches and
 * full reads applied to a detached cache (changed keys, FLAG_NOT_FOUND
 * after a delete, $evaluators changes, invalid definitions skipped), and
 * evaluation from 4 threads while the test thread swaps sets thousands of
 * times (run under the sanitizer build: no use after free, no race). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "keel_flags_internal.h"

#define FLAG_ON                                                                \
  "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"           \
  "\"defaultVariant\":\"on\"}"
#define FLAG_OFF                                                               \
  "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"           \
  "\"defaultVariant\":\"off\"}"
#define FLAG_REF                                                               \
  "{\"state\":\"ENABLED\",\"variants\":{\"a\":\"A\",\"b\":\"B\"},"             \
  "\"defaultVariant\":\"a\",\"targeting\":{\"$ref\":\"pick\"}}"

/* What on_change saw last. */
static char seen[64][64];
static size_t n_seen, calls;

static void on_change(keel_flag_cache *c, const char *const *keys, size_t n,
                      void *ud) {
  (void)c;
  (void)ud;
  calls++;
  n_seen = n < 64 ? n : 64;
  for (size_t i = 0; i < n_seen; i++)
    snprintf(seen[i], sizeof seen[i], "%s", keys[i]);
}

static struct keel_event put_ev(const char *key, const char *val) {
  struct keel_event e = {.type = KEEL_EVENT_PUT};
  e.kv.key = (const uint8_t *)key;
  e.kv.key_len = strlen(key);
  e.kv.value = (const uint8_t *)val;
  e.kv.value_len = strlen(val);
  return e;
}

static struct keel_event del_ev(const char *key) {
  struct keel_event e = {.type = KEEL_EVENT_DELETE};
  e.kv.key = (const uint8_t *)key;
  e.kv.key_len = strlen(key);
  return e;
}

/* Evaluates key as a boolean; returns 1/0 for true/false, -1 for
 * FLAG_NOT_FOUND, -2 otherwise. */
static int eval_bool(keel_flag_cache *c, const char *key) {
  struct keel_flag_eval e;
  assert_int_equal(
      keel_flag_cache_evaluate(c, key, FLAGS_TYPE_BOOLEAN, NULL, 0, &e), 0);
  int r = -2;
  if (e.r.error_code == FLAGS_ERROR_FLAG_NOT_FOUND)
    r = -1;
  else if (e.r.value && json_is_boolean(e.r.value))
    r = json_is_true(e.r.value);
  keel_flag_eval_release(&e);
  return r;
}

static void test_events(void **state) {
  (void)state;
  keel_flag_cache *c;
  assert_int_equal(keel_flag_cache_new_detached("web", on_change, NULL, &c), 0);
  assert_int_equal(eval_bool(c, "a"), -1);

  struct keel_event ev[3] = {put_ev("/flags/web/a", FLAG_ON),
                             put_ev("/flags/web/b", FLAG_OFF),
                             put_ev("/flags/web/a", FLAG_OFF)};
  assert_int_equal(keel_flag_cache_apply_events(c, ev, 3, 7), 0);
  assert_int_equal(keel_flag_cache_revision(c), 7);
  assert_int_equal(n_seen, 2); /* a twice: reported once */
  assert_string_equal(seen[0], "a");
  assert_string_equal(seen[1], "b");
  assert_int_equal(eval_bool(c, "a"), 0);
  assert_int_equal(eval_bool(c, "b"), 0);

  /* The same bytes again: no change, no callback. */
  size_t before = calls;
  struct keel_event same = put_ev("/flags/web/b", FLAG_OFF);
  assert_int_equal(keel_flag_cache_apply_events(c, &same, 1, 8), 0);
  assert_int_equal(calls, before);
  assert_int_equal(keel_flag_cache_revision(c), 8);

  /* Modify, then delete. */
  struct keel_event mod = put_ev("/flags/web/b", FLAG_ON);
  assert_int_equal(keel_flag_cache_apply_events(c, &mod, 1, 9), 0);
  assert_int_equal(n_seen, 1);
  assert_string_equal(seen[0], "b");
  assert_int_equal(eval_bool(c, "b"), 1);
  struct keel_event del = del_ev("/flags/web/b");
  assert_int_equal(keel_flag_cache_apply_events(c, &del, 1, 10), 0);
  assert_string_equal(seen[0], "b");
  assert_int_equal(eval_bool(c, "b"), -1);

  /* An invalid definition is skipped and reported in the stats; the
   * others stay. */
  struct keel_event bad = put_ev("/flags/web/bad", "{\"state\":\"MAYBE\"}");
  assert_int_equal(keel_flag_cache_apply_events(c, &bad, 1, 11), 0);
  assert_int_equal(eval_bool(c, "bad"), -1);
  assert_int_equal(eval_bool(c, "a"), 0);
  struct keel_flag_cache_stats st;
  keel_flag_cache_stats(c, &st);
  assert_int_equal(st.invalid, 1);
  assert_int_equal(st.n_flags, 1);
  assert_int_equal(st.last_error, KEEL_EINVALIDFLAG);
  assert_non_null(strstr(st.last_error_message, "/flags/web/bad"));
  /* Not JSON at all, and a key outside the prefix: also no crash. */
  struct keel_event junk[2] = {put_ev("/flags/web/bad", "{not json"),
                               put_ev("/flags/other/x", FLAG_ON)};
  assert_int_equal(keel_flag_cache_apply_events(c, junk, 2, 12), 0);
  assert_int_equal(eval_bool(c, "bad"), -1);
  assert_int_equal(eval_bool(c, "x"), -1);
  keel_flag_cache_free_detached(c);
}

static const char *eval_str(keel_flag_cache *c, const char *key, json_t *ctx) {
  static char buf[32];
  struct keel_flag_eval e;
  keel_flag_cache_evaluate(c, key, FLAGS_TYPE_STRING, ctx, 0, &e);
  snprintf(buf, sizeof buf, "%s",
           e.r.value ? json_string_value(e.r.value)
                     : flags_error_code_name(e.r.error_code));
  keel_flag_eval_release(&e);
  return buf;
}

static void test_evaluators_and_snapshot(void **state) {
  (void)state;
  keel_flag_cache *c;
  assert_int_equal(keel_flag_cache_new_detached("s", on_change, NULL, &c), 0);
  struct keel_event ev[3] = {put_ev("/flags/s/$evaluators", "{\"pick\":\"b\"}"),
                             put_ev("/flags/s/r", FLAG_REF),
                             put_ev("/flags/s/t", FLAG_ON)};
  assert_int_equal(keel_flag_cache_apply_events(c, ev, 3, 3), 0);
  assert_string_equal(eval_str(c, "r", NULL), "B");

  /* Changing $evaluators reports every flag and changes the answer. */
  struct keel_event e2 = put_ev("/flags/s/$evaluators", "{\"pick\":\"a\"}");
  assert_int_equal(keel_flag_cache_apply_events(c, &e2, 1, 4), 0);
  assert_int_equal(n_seen, 3);
  assert_string_equal(seen[0], "$evaluators");
  assert_string_equal(seen[1], "r");
  assert_string_equal(seen[2], "t");
  assert_string_equal(eval_str(c, "r", NULL), "A");

  /* A full read (after compaction): t deleted, r unchanged, u added. */
  struct keel_kv kvs[3] = {0};
  const char *k[3] = {"/flags/s/$evaluators", "/flags/s/r", "/flags/s/u"};
  const char *v[3] = {"{\"pick\":\"a\"}", FLAG_REF, FLAG_OFF};
  for (int i = 0; i < 3; i++) {
    kvs[i].key = (const uint8_t *)k[i];
    kvs[i].key_len = strlen(k[i]);
    kvs[i].value = (const uint8_t *)v[i];
    kvs[i].value_len = strlen(v[i]);
  }
  assert_int_equal(keel_flag_cache_apply_snapshot(c, kvs, 3, 20), 0);
  assert_int_equal(keel_flag_cache_revision(c), 20);
  assert_int_equal(n_seen, 2);
  assert_string_equal(seen[0], "t");
  assert_string_equal(seen[1], "u");
  assert_int_equal(eval_bool(c, "t"), -1);
  assert_int_equal(eval_bool(c, "u"), 0);
  assert_string_equal(eval_str(c, "r", NULL), "A");
  keel_flag_cache_free_detached(c);
}

/* ---- 4 readers, one swapper ---------------------------------------------- */

static atomic_int stop, readers_started;
static atomic_long evals, bad_results;

static void *reader(void *arg) {
  keel_flag_cache *c = arg;
  json_t *ctx = json_pack("{s:s}", "targetingKey", "user-1");
  atomic_fetch_add(&readers_started, 1);
  while (!atomic_load(&stop)) {
    struct keel_flag_eval e;
    keel_flag_cache_evaluate(c, "f", FLAGS_TYPE_BOOLEAN, ctx, 0, &e);
    /* Hold the result across a few more reads of the cache, then use
     * it: the set must still be alive (ASan catches a premature free). */
    struct flags_set *snap = keel_flag_cache_acquire(c);
    if (e.r.error_code == FLAGS_ERROR_NONE) {
      if (!e.r.value || !e.r.variant ||
          json_is_true(e.r.value) != (strcmp(e.r.variant, "on") == 0))
        atomic_fetch_add(&bad_results, 1);
    } else if (e.r.error_code != FLAGS_ERROR_FLAG_NOT_FOUND) {
      atomic_fetch_add(&bad_results, 1);
    }
    if (flags_set_count(snap) > 2)
      atomic_fetch_add(&bad_results, 1);
    flags_set_unref(snap);
    keel_flag_eval_release(&e);
    atomic_fetch_add(&evals, 1);
  }
  json_decref(ctx);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  keel_flag_cache *c;
  assert_int_equal(keel_flag_cache_new_detached("t", NULL, NULL, &c), 0);
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, reader, c), 0);
  /* The swaps must overlap the reads: a loaded machine may not schedule a
   * reader before 3000 swaps are done (this test once failed so, with no
   * read at all). Wait for every reader to run, and after the swaps for
   * some reads, before stopping them. */
  while (atomic_load(&readers_started) < 4)
    sched_yield();
  enum { SWAPS = 3000 };
  for (int i = 0; i < SWAPS; i++) {
    struct keel_event ev[2];
    size_t n = 1;
    ev[0] = i % 5 == 4 ? del_ev("/flags/t/f")
                       : put_ev("/flags/t/f", i % 2 ? FLAG_ON : FLAG_OFF);
    if (i % 7 == 0)
      ev[n++] = put_ev("/flags/t/g", i % 2 ? FLAG_OFF : FLAG_ON);
    assert_int_equal(keel_flag_cache_apply_events(c, ev, n, i + 1), 0);
  }
  while (atomic_load(&evals) < 100)
    sched_yield();
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  struct keel_flag_cache_stats st;
  keel_flag_cache_stats(c, &st);
  assert_true(st.swaps >= SWAPS / 2);
  assert_int_equal(atomic_load(&bad_results), 0);
  assert_true(atomic_load(&evals) > 0);
  keel_flag_cache_free_detached(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_events),
      cmocka_unit_test(test_evaluators_and_snapshot),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

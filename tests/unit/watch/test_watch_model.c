/* test_watch_model.c — randomized comparison of the watch hub against a
 * brute-force model.
 *
 * Each seed drives a random mix of writes (single puts and deletes, txns of
 * several keys), watcher creation (exact key, prefix, range, from-key, all;
 * start now, in the past, in the future, below the compact revision; random
 * filters and options), client cancels, pulls with random byte budgets,
 * catch-up calls with random chunk sizes, compactions, progress ticks and
 * requests — with small backlog limits so that watchers keep falling behind
 * and catching up. At the end everything is drained, and every watcher's
 * deliveries must equal what the model says it should see (or a gap-free
 * prefix of it if it was canceled). The collector checks the per-batch
 * guarantees on every batch along the way.
 *
 * Reproduce one seed: KEEL_WATCH_SEED=1234 ./test_watch_model
 * More seeds: KEEL_WATCH_SEEDS=5000 ./test_watch_model
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
#include "watch_testlib.h"

static uint64_t rng;
static unsigned fail_rate; /* 1 in fail_rate hub allocations fail; 0: none */
static uint64_t fail_count;

static uint64_t next(void);
static int maybe_fail(void *arg, size_t n) {
  (void)arg, (void)n;
  if (fail_rate && next() % fail_rate == 0) {
    fail_count++;
    return 1;
  }
  return 0;
}
static uint64_t current_seed;
/* totals over all seeds, to show the test reaches the interesting paths */
static struct {
  uint64_t events, watchers, victimized, history_reads, compact_cancels,
      client_cancels, progress;
} totals;

static uint64_t next(void) {
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static unsigned pick(unsigned n) {
  return (unsigned)(next() % n);
}

/* Keys: 1 to 3 letters from {a, b, c}: 39 keys with lots of prefixes. */
static void rand_key(char *k) {
  int n = 1 + (int)pick(3);
  for (int i = 0; i < n; i++)
    k[i] = (char)('a' + pick(3));
  k[n] = 0;
}

#define STREAMS 3
#define MAX_IDS 200

struct model {
  struct th_history t;
  struct watch_hub *h;
  struct watch_stream *s[STREAMS];
  struct th_collector c[STREAMS];
  int64_t ids_used[STREAMS];
};

static void create_watch(struct model *m) {
  int si = (int)pick(STREAMS);
  if (m->ids_used[si] >= MAX_IDS)
    return;
  char key[8], end[8];
  struct watch_create req = {0};
  rand_key(key);
  req.key = (const uint8_t *)key;
  req.key_len = strlen(key);
  switch (pick(5)) {
  case 0: /* exact */
    break;
  case 1: /* prefix */
    snprintf(end, sizeof end, "%s", key);
    end[strlen(end) - 1]++;
    req.range_end = (const uint8_t *)end;
    req.range_end_len = strlen(end);
    break;
  case 2: { /* range */
    rand_key(end);
    if (strcmp(end, key) <= 0) {
      snprintf(end, sizeof end, "%s", key);
      end[strlen(end) - 1]++;
    }
    req.range_end = (const uint8_t *)end;
    req.range_end_len = strlen(end);
    break;
  }
  case 3: /* from key */
    req.range_end = (const uint8_t *)"\0";
    req.range_end_len = 1;
    break;
  default: /* everything */
    req.key_len = 0;
    req.range_end = (const uint8_t *)"\0";
    req.range_end_len = 1;
  }
  int64_t rev = watch_hub_revision(m->h);
  switch (pick(4)) {
  case 0:
    req.start_rev = 0;
    break;
  case 1:
    req.start_rev = rev + 1 + pick(4); /* now or future */
    break;
  default:
    req.start_rev = 1 + (int64_t)pick((unsigned)rev + 1); /* past */
  }
  req.flags = (unsigned)pick(32);
  if ((req.flags & (WATCH_NOPUT | WATCH_NODELETE)) ==
      (WATCH_NOPUT | WATCH_NODELETE))
    req.flags &= ~(unsigned)WATCH_NODELETE;
  req.watch_id = WATCH_ID_AUTO;
  int64_t id;
  int rc = watch_stream_watch(m->s[si], &req, &id);
  if (rc == -ENOMEM && fail_rate)
    return;
  assert_int_equal(rc, 0);
  assert_true(id < MAX_IDS);
  m->ids_used[si] = id + 1;
  th_track(&m->c[si], id, &req, rev);
}

static void write_rev(struct model *m) {
  struct th_op ops[4];
  char keys[4][8];
  size_t n = 1 + (pick(3) == 0 ? pick(4) : 0);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    rand_key(keys[k]);
    int dup = 0;
    for (size_t j = 0; j < k; j++)
      dup |= !strcmp(keys[j], keys[k]);
    if (dup)
      continue;
    ops[k].key = keys[k];
    ops[k].value = pick(4) ? (pick(2) ? "v1" : "value-two") : NULL;
    k++;
  }
  int64_t r = th_write(&m->t, ops, k);
  th_publish(&m->t, m->h, r);
}

/* A snapshot install: revisions reach the store without being published. */
static void jump(struct model *m) {
  unsigned n = 1 + pick(5);
  for (unsigned i = 0; i < n; i++) {
    char k[8];
    rand_key(k);
    th_put(&m->t, k, pick(2) ? "snap" : "shot");
  }
  assert_int_equal(watch_hub_jump(m->h, m->t.rev), 0);
}

static void cancel_one(struct model *m) {
  int si = (int)pick(STREAMS);
  if (!m->ids_used[si])
    return;
  int64_t id = pick((unsigned)m->ids_used[si]);
  struct th_watch *w = &m->c[si].w[id];
  int rc = watch_stream_cancel(m->s[si], id, pick(2) ? "bye" : NULL);
  if (rc == 0) {
    assert_true(w->used && !w->canceled);
    w->flags |= 1u << 30; /* remember: canceled by the client */
  } else {
    assert_int_equal(rc, KEEL_ENOTFOUND);
  }
}

static void run_seed(uint64_t seed) {
  current_seed = seed;
  rng = seed * 0x2545f4914f6cdd1dull + 1;
  struct model *m = calloc(1, sizeof *m);
  assert_non_null(m);
  th_init(&m->t);
  m->t.scan_limit = pick(3) ? 0 : 1 + pick(8);
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.watcher_backlog_events = 1 + pick(12);
  cfg.watcher_backlog_bytes = 40 + pick(400);
  cfg.stream_backlog_events = 1 + pick(40);
  cfg.stream_backlog_bytes = 100 + pick(2000);
  cfg.max_batch_events = 1 + pick(8);
  cfg.alloc_fail = maybe_fail;
  /* start with some history the hub never saw live */
  for (int i = 0; i < 5; i++) {
    char k[8];
    rand_key(k);
    th_put(&m->t, k, "init");
  }
  m->h = th_hub(&m->t, &cfg);
  for (int i = 0; i < STREAMS; i++)
    assert_int_equal(watch_stream_open(m->h, th_ready, &m->c[i], &m->s[i]), 0);

  /* one seed in three runs short of memory: allocations fail at random */
  fail_rate = pick(3) == 0 ? 5 + pick(60) : 0;
  int steps = 300 + (int)pick(300);
  for (int step = 0; step < steps; step++) {
    unsigned op = pick(100);
    if (op < 40) {
      write_rev(m);
    } else if (op < 52) {
      create_watch(m);
    } else if (op < 55) {
      cancel_one(m);
    } else if (op < 75) {
      int si = (int)pick(STREAMS);
      th_drain(&m->c[si], m->s[si], 1 + pick(300), 1 + pick(6));
    } else if (op < 90) {
      watch_hub_catchup(m->h, 1 + pick(10), 1 + pick(200));
    } else if (op < 91) {
      /* compact somewhere between the compact and the current revision */
      int64_t span = m->t.rev - m->t.compact;
      if (span > 0)
        m->t.compact += (int64_t)pick((unsigned)span / 2 + 1);
    } else if (op < 92) {
      jump(m);
    } else if (op < 96) {
      watch_hub_progress_tick(m->h);
    } else {
      watch_stream_request_progress(m->s[pick(STREAMS)]);
    }
  }
  /* memory is back: drain everything */
  fail_rate = 0;
  for (int round = 0;; round++) {
    assert_true(round < 100000);
    size_t left = watch_hub_catchup(m->h, 50, 4096);
    size_t got = 0;
    for (int i = 0; i < STREAMS; i++)
      got += th_drain(&m->c[i], m->s[i], 256, SIZE_MAX);
    if (!left && !got)
      break;
  }
  for (int i = 0; i < STREAMS; i++) {
    for (int64_t id = 0; id < m->ids_used[i]; id++) {
      struct th_watch *w = &m->c[i].w[id];
      if (!w->used) /* its creation failed (injected) */
        continue;
      int client_canceled = (w->flags >> 30) & 1;
      w->flags &= ~(1u << 30);
      if (client_canceled)
        assert_true(w->canceled);
      if (w->canceled && !client_canceled) {
        /* only compaction cancels here, and it names the revision; being
         * short of memory never cancels nor skips (it falls back to
         * history) */
        assert_true(w->compact >= 1 && w->compact <= m->t.compact);
        /* what it missed starts below the compact revision */
        int64_t next = w->n_got ? w->got[w->n_got - 1].rev + 1 : w->start;
        assert_true(next < w->compact);
      }
      th_check(&m->t, w, m->t.rev);
      totals.events += w->n_got;
      totals.watchers++;
      totals.progress += w->progress_count;
      totals.compact_cancels += w->canceled && !client_canceled;
      totals.client_cancels += client_canceled;
    }
    watch_stream_close(m->s[i]);
    th_collector_free(&m->c[i]);
  }
  struct watch_hub_stats st;
  watch_hub_stats(m->h, &st);
  assert_int_equal(st.watchers, 0);
  totals.victimized += st.victimized;
  totals.history_reads += st.history_reads;
  watch_hub_free(m->h); /* asserts every hub byte was returned */
  th_free(&m->t);
  free(m);
}

static void test_model(void **state) {
  (void)state;
  const char *one = getenv("KEEL_WATCH_SEED");
  if (one) {
    run_seed(strtoull(one, NULL, 10));
    return;
  }
  const char *n = getenv("KEEL_WATCH_SEEDS");
  uint64_t seeds = n ? strtoull(n, NULL, 10) : 2000;
  for (uint64_t s = 1; s <= seeds; s++)
    run_seed(s);
  printf("model: %llu seeds, %llu watchers, %llu events delivered, "
         "%llu victimized, %llu history reads, %llu compaction cancels, "
         "%llu client cancels, %llu progress\n",
         (unsigned long long)seeds, (unsigned long long)totals.watchers,
         (unsigned long long)totals.events,
         (unsigned long long)totals.victimized,
         (unsigned long long)totals.history_reads,
         (unsigned long long)totals.compact_cancels,
         (unsigned long long)totals.client_cancels,
         (unsigned long long)totals.progress);
  printf("model: %llu injected allocation failures\n",
         (unsigned long long)fail_count);
  /* the run must have exercised every path it claims to test */
  assert_true(totals.victimized > 0 && totals.compact_cancels > 0 &&
              totals.client_cancels > 0 && totals.progress > 0 &&
              totals.history_reads > 0 && fail_count > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  if (failed)
    fprintf(stderr, "failing seed: KEEL_WATCH_SEED=%llu\n",
            (unsigned long long)current_seed);
  return failed;
}

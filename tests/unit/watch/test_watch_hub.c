/* test_watch_hub.c — the watch hub's guarantees, one test each (ordered,
 * unique, reliable, atomic, resumable, bookmarkable), catch-up racing live
 * writes, compaction under a slow watcher, filters, ranges and the errors
 * of the API. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "watch_hub.h"
#include "watch_testlib.h"

struct fx {
  struct th_history t;
  struct watch_hub *h;
  struct watch_stream *s;
  struct th_collector c;
  size_t baseline; /* hub bytes with no stream open */
};

static struct fx *fx_new(struct watch_hub_config *cfg) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  th_init(&f->t);
  struct watch_hub_config def;
  if (!cfg) {
    watch_hub_config_init(&def);
    cfg = &def;
  }
  f->h = th_hub(&f->t, cfg);
  struct watch_hub_stats st;
  watch_hub_stats(f->h, &st);
  f->baseline = st.bytes_now;
  assert_int_equal(watch_stream_open(f->h, th_ready, &f->c, &f->s), 0);
  return f;
}

static void fx_free(struct fx *f) {
  watch_stream_close(f->s);
  struct watch_hub_stats st;
  watch_hub_stats(f->h, &st);
  /* everything the stream held is returned (the shared tables may stay) */
  assert_int_equal(st.watchers, 0);
  assert_int_equal(st.streams, 0);
  watch_hub_free(f->h);
  th_free(&f->t);
  th_collector_free(&f->c);
  free(f);
}

/* Writes a revision to the history and publishes it. */
static int64_t put(struct fx *f, const char *k, const char *v) {
  int64_t r = th_put(&f->t, k, v);
  th_publish(&f->t, f->h, r);
  return r;
}

static int64_t del(struct fx *f, const char *k) {
  int64_t r = th_del(&f->t, k);
  th_publish(&f->t, f->h, r);
  return r;
}

static struct th_watch *watch(struct fx *f, const char *key, const char *end,
                              size_t end_len, int64_t start, unsigned flags) {
  struct watch_create req = {0};
  req.key = (const uint8_t *)key;
  req.key_len = strlen(key);
  req.range_end = (const uint8_t *)end;
  req.range_end_len = end_len;
  req.start_rev = start;
  req.flags = flags;
  req.watch_id = WATCH_ID_AUTO;
  int64_t id = -1;
  assert_int_equal(watch_stream_watch(f->s, &req, &id), 0);
  return th_track(&f->c, id, &req, watch_hub_revision(f->h));
}

/* Catches up and drains until nothing moves. */
static void settle(struct fx *f, size_t max_bytes) {
  for (int i = 0; i < 100000; i++) {
    size_t left = watch_hub_catchup(f->h, 64, 1 << 16);
    size_t got = th_drain(&f->c, f->s, max_bytes, SIZE_MAX);
    if (!left && !got)
      return;
  }
  fail_msg("did not settle");
}

static char *val(int i) {
  static char buf[32];
  snprintf(buf, sizeof buf, "v%d", i);
  return buf;
}

/* Ordered: across live batches, victim fallback and catch-up, a watcher's
 * events come in revision order (the collector checks each batch) and equal
 * the brute-force expectation. */
static void test_ordered(void **state) {
  (void)state;
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.watcher_backlog_events = 4;
  struct fx *f = fx_new(&cfg);
  struct th_watch *w = watch(f, "a/", "a0", 2, 0, 0);
  for (int i = 0; i < 300; i++) {
    char k[16];
    snprintf(k, sizeof k, "a/%d", i % 7);
    put(f, k, val(i));
    put(f, "b", val(i)); /* outside the range */
    if (i % 13 == 0)
      settle(f, 256);
  }
  settle(f, 100);
  th_check(&f->t, w, f->t.rev);
  assert_int_equal(w->n_got, 300);
  for (size_t i = 1; i < w->n_got; i++)
    assert_true(w->got[i].rev > w->got[i - 1].rev);
  struct watch_hub_stats st;
  watch_hub_stats(f->h, &st);
  assert_true(st.victimized > 0); /* the fallback path was taken */
  fx_free(f);
}

/* Unique: a watcher that is both in catch-up and receiving the live stream
 * (the moment it joins) never sees an event twice. */
static void test_unique(void **state) {
  (void)state;
  struct fx *f = fx_new(NULL);
  for (int i = 0; i < 50; i++)
    th_put(&f->t, "k", val(i));
  /* the hub knew of these revisions at start (current_rev) */
  watch_stream_close(f->s);
  watch_hub_free(f->h);
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  f->h = th_hub(&f->t, &cfg);
  assert_int_equal(watch_stream_open(f->h, th_ready, &f->c, &f->s), 0);
  struct th_watch *w = watch(f, "k", NULL, 0, 1, 0);
  /* alternate: a chunk of history, a live write, a drain */
  for (int i = 0; i < 60; i++) {
    watch_hub_catchup(f->h, 3, 1 << 20);
    put(f, "k", val(100 + i));
    th_drain(&f->c, f->s, 1 << 20, SIZE_MAX);
  }
  settle(f, 1 << 20);
  th_check(&f->t, w, f->t.rev);
  assert_int_equal(w->n_got, 110);
  for (size_t i = 0; i < w->n_got; i++)
    assert_int_equal(w->got[i].rev, (int64_t)i + 1);
  fx_free(f);
}

/* Reliable: from any revision in history every matching event arrives,
 * whatever the chunk sizes and however often the reader stops early. */
static void test_reliable(void **state) {
  (void)state;
  struct fx *f = fx_new(NULL);
  f->t.scan_limit = 5;
  const char *keys[] = {"a", "ab", "abc", "b", "ba", "c"};
  for (int i = 0; i < 200; i++) {
    if (i % 5 == 4)
      del(f, keys[i % 6]);
    else
      put(f, keys[i % 6], val(i));
  }
  struct th_watch *ws[] = {
      watch(f, "a", NULL, 0, 1, WATCH_PREV_KV),
      watch(f, "a", "b", 1, 17, 0),  /* prefix a */
      watch(f, "ab", "\0", 1, 1, 0), /* from key ab */
      watch(f, "", "\0", 1, 150, 0), /* everything from 150 */
      watch(f, "b", "c", 1, 199, WATCH_NOPUT),
      watch(f, "zz", NULL, 0, 1, 0), /* nothing */
  };
  for (int i = 0; i < 20; i++)
    put(f, keys[i % 6], val(1000 + i));
  settle(f, 300);
  for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
    th_check(&f->t, ws[i], f->t.rev);
  assert_true(ws[0]->n_got > 0 && ws[3]->n_got > 0);
  assert_int_equal(ws[5]->n_got, 0);
  fx_free(f);
}

/* Atomic: all events of one revision arrive in one batch, even when the
 * revision is larger than the backlog limit and the batch budget, both live
 * and from history; with WATCH_FRAGMENT a big revision is split into
 * batches marked fragment. */
static void test_atomic(void **state) {
  (void)state;
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.watcher_backlog_events = 10;
  struct fx *f = fx_new(&cfg);
  struct th_watch *w = watch(f, "p/", "p0", 2, 0, 0);
  struct th_watch *wf = watch(f, "p/", "p0", 2, 0, WATCH_FRAGMENT);
  struct th_op ops[50];
  char keys[50][16];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 50; i++) {
      snprintf(keys[i], sizeof keys[i], "p/%02d", i);
      ops[i].key = keys[i];
      ops[i].value = "x";
    }
    /* two big revisions back to back: the first goes live into an empty
     * backlog, the second does not fit and comes from history */
    th_publish(&f->t, f->h, th_write(&f->t, ops, 50));
    th_publish(&f->t, f->h, th_write(&f->t, ops, 50));
    put(f, "p/zz", "small");
    size_t before = w->batches;
    settle(f, 200); /* about 5 events per batch */
    assert_true(w->batches > before);
  }
  th_check(&f->t, w, f->t.rev);
  th_check(&f->t, wf, f->t.rev);
  /* without fragments: one batch per big revision (the small ones may be
   * merged); the collector asserted no batch starts inside a revision */
  assert_true(w->batches <= 9);
  assert_true(wf->batches > 20); /* fragments */
  assert_false(wf->in_fragment);
  fx_free(f);
}

/* Resumable: a canceled watcher's events stop (queued ones are dropped);
 * a new watcher from the last delivered revision + 1 sees exactly the
 * rest. */
static void test_resumable(void **state) {
  (void)state;
  struct fx *f = fx_new(NULL);
  struct th_watch *w = watch(f, "k", NULL, 0, 0, 0);
  for (int i = 0; i < 10; i++)
    put(f, "k", val(i));
  th_drain(&f->c, f->s, 1 << 20, SIZE_MAX);
  assert_int_equal(w->n_got, 10);
  for (int i = 10; i < 15; i++)
    put(f, "k", val(i));
  assert_int_equal(watch_stream_cancel(f->s, w->id, "client asked"), 0);
  assert_int_equal(watch_stream_cancel(f->s, w->id, NULL), KEEL_ENOTFOUND);
  th_drain(&f->c, f->s, 1 << 20, SIZE_MAX);
  assert_true(w->canceled);
  assert_string_equal(w->reason, "client asked");
  assert_int_equal(w->n_got, 10); /* queued events were dropped */
  int64_t last = w->got[w->n_got - 1].rev;
  for (int i = 15; i < 20; i++)
    put(f, "k", val(i));
  struct th_watch *w2 = watch(f, "k", NULL, 0, last + 1, 0);
  assert_int_equal(w2->id, 1);
  settle(f, 1 << 20);
  th_check(&f->t, w2, f->t.rev);
  assert_int_equal(w2->n_got, 10);
  assert_int_equal(w2->got[0].rev, last + 1);
  fx_free(f);
}

/* Bookmarkable: periodic and requested progress revisions never go back
 * and never precede a delivered event (the collector checks both); the
 * stream-wide one waits until every watcher is in sync. */
static void test_bookmarkable(void **state) {
  (void)state;
  struct fx *f = fx_new(NULL);
  for (int i = 0; i < 30; i++)
    put(f, "old", val(i));
  struct th_watch *live = watch(f, "k", NULL, 0, 0, WATCH_PROGRESS_NOTIFY);
  struct th_watch *quiet = watch(f, "q", NULL, 0, 0, WATCH_PROGRESS_NOTIFY);
  struct th_watch *behind = watch(f, "old", NULL, 0, 1, 0);
  watch_stream_request_progress(f->s);
  put(f, "k", "1");
  th_drain(&f->c, f->s, 1 << 20, SIZE_MAX);
  /* not yet: `behind` is catching up */
  assert_int_equal(f->c.stream_progress_count, 0);
  watch_hub_progress_tick(f->h); /* live had events: skipped; quiet: sent */
  th_drain(&f->c, f->s, 1 << 20, SIZE_MAX);
  assert_int_equal(live->progress_count, 0);
  assert_int_equal(quiet->progress_count, 1);
  assert_int_equal(quiet->last_progress, f->t.rev);
  watch_hub_progress_tick(f->h); /* now live gets one too */
  watch_hub_progress_tick(f->h); /* not twice while one is queued */
  settle(f, 1 << 20);
  assert_int_equal(live->progress_count, 1);
  assert_int_equal(live->last_progress, f->t.rev);
  assert_int_equal(f->c.stream_progress_count, 1);
  assert_int_equal(f->c.stream_progress, f->t.rev);
  th_check(&f->t, behind, f->t.rev);
  /* events, then a quiet period: the first tick after events is skipped
   * (the events were the progress), the second sends one */
  for (int i = 0; i < 5; i++)
    put(f, "k", val(i));
  settle(f, 1 << 20);
  watch_hub_progress_tick(f->h);
  th_drain(&f->c, f->s, 1 << 20, SIZE_MAX);
  assert_int_equal(live->progress_count, 1);
  watch_hub_progress_tick(f->h);
  th_drain(&f->c, f->s, 1 << 20, SIZE_MAX);
  assert_int_equal(live->progress_count, 2);
  assert_int_equal(live->last_progress, f->t.rev);
  assert_true(live->last_progress >= live->got[live->n_got - 1].rev);
  /* a request with everything in sync and nothing queued: ready at once */
  size_t ready_before = f->c.ready_calls;
  watch_stream_request_progress(f->s);
  assert_int_equal(f->c.ready_calls, ready_before + 1);
  th_drain(&f->c, f->s, 1 << 20, SIZE_MAX);
  assert_int_equal(f->c.stream_progress_count, 2);
  fx_free(f);
}

/* Catch-up racing live writes: events published between every chunk of a
 * watcher's catch-up (one event per chunk) are neither lost nor doubled at
 * the join, for many interleavings. */
static void test_catchup_races_live(void **state) {
  (void)state;
  for (int gap = 1; gap <= 7; gap++) {
    struct fx *f = fx_new(NULL);
    for (int i = 0; i < 40; i++)
      put(f, i % 2 ? "r/a" : "r/b", val(i));
    struct th_watch *w = watch(f, "r/", "r0", 2, 1 + gap, 0);
    int step = 0;
    while (watch_hub_unsynced(f->h) || step < 60) {
      if (step % gap == 0) /* history is read a little faster than written */
        watch_hub_catchup(f->h, (size_t)gap, 1);
      put(f, step % 3 ? "r/a" : "zz", val(step));
      if (step % (gap + 1) == 0)
        th_drain(&f->c, f->s, 64, SIZE_MAX);
      step++;
      assert_true(step < 1000);
    }
    settle(f, 1 << 20);
    th_check(&f->t, w, f->t.rev);
    fx_free(f);
  }
}

/* A slow watcher whose history is compacted before it catches up is
 * canceled with compact_revision; what it got before is a gap-free prefix.
 * A watcher created below the compact revision is canceled the same way. */
static void test_compaction_slow_watcher(void **state) {
  (void)state;
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.watcher_backlog_events = 8;
  struct fx *f = fx_new(&cfg);
  struct th_watch *slow = watch(f, "k", NULL, 0, 0, 0);
  /* a second stream whose client keeps up */
  struct watch_stream *s2;
  struct th_collector *c2 = calloc(1, sizeof *c2);
  assert_non_null(c2);
  assert_int_equal(watch_stream_open(f->h, NULL, NULL, &s2), 0);
  struct watch_create req = {(const uint8_t *)"x", 1, NULL, 0, 0, 0,
                             WATCH_ID_AUTO};
  int64_t id;
  assert_int_equal(watch_stream_watch(s2, &req, &id), 0);
  struct th_watch *fast = th_track(c2, id, &req, watch_hub_revision(f->h));
  for (int i = 0; i < 100; i++) {
    put(f, "k", val(i));
    put(f, "x", val(i));
    th_drain(c2, s2, 1 << 20, SIZE_MAX);
    if (i == 3) /* the slow client reads a little, then stalls */
      th_drain(&f->c, f->s, 1 << 20, SIZE_MAX);
  }
  struct watch_hub_stats st;
  watch_hub_stats(f->h, &st);
  assert_int_equal(st.unsynced, 1);
  f->t.compact = 150; /* the store compacted */
  settle(f, 1 << 20);
  assert_true(slow->canceled);
  assert_int_equal(slow->compact, 150);
  assert_string_equal(slow->reason, keel_strerror(KEEL_ECOMPACTED));
  assert_true(slow->n_got > 0 && slow->n_got < 100);
  th_check(&f->t, slow, f->t.rev); /* prefix, no gap */
  th_drain(c2, s2, 1 << 20, SIZE_MAX);
  assert_false(fast->canceled);
  th_check(&f->t, fast, f->t.rev);
  assert_int_equal(fast->n_got, 100);
  watch_stream_close(s2);
  th_collector_free(c2);
  free(c2);
  /* below the compact revision from the start */
  struct th_watch *old = watch(f, "k", NULL, 0, 10, 0);
  settle(f, 1 << 20);
  assert_true(old->canceled);
  assert_int_equal(old->compact, 150);
  assert_int_equal(old->n_got, 0);
  /* and resuming at the compact revision works */
  struct th_watch *again = watch(f, "k", NULL, 0, 150, 0);
  put(f, "k", "after");
  settle(f, 1 << 20);
  assert_false(again->canceled);
  th_check(&f->t, again, f->t.rev);
  assert_true(again->n_got > 0);
  fx_free(f);
}

/* A read error other than compaction cancels the watcher with the error as
 * reason (the client resumes); -ENOMEM is retried. */
static void test_history_errors(void **state) {
  (void)state;
  struct fx *f = fx_new(NULL);
  for (int i = 0; i < 5; i++)
    put(f, "k", val(i));
  struct th_watch *w = watch(f, "k", NULL, 0, 1, 0);
  f->t.fail_next = -ENOMEM;
  watch_hub_catchup(f->h, 100, 1 << 20);
  assert_int_equal(watch_hub_unsynced(f->h), 1);
  settle(f, 1 << 20);
  th_check(&f->t, w, f->t.rev);
  assert_int_equal(w->n_got, 5);
  struct th_watch *w2 = watch(f, "k", NULL, 0, 2, 0);
  f->t.fail_next = -EIO;
  settle(f, 1 << 20);
  assert_true(w2->canceled);
  assert_string_equal(w2->reason, keel_strerror(-EIO));
  fx_free(f);
}

/* A snapshot install jumps the revision: watchers in sync read the skipped
 * revisions from the new history instead of skipping them; one whose
 * position the new history no longer holds is canceled with
 * compact_revision; one waiting for a later revision stays in sync. */
static void test_jump(void **state) {
  (void)state;
  struct fx *f = fx_new(NULL);
  put(f, "k", "0");
  struct th_watch *exact = watch(f, "k", NULL, 0, 0, 0);
  struct th_watch *prefix = watch(f, "", "\0", 1, 0, WATCH_PREV_KV);
  struct th_watch *future = watch(f, "k", NULL, 0, 12, 0);
  for (int i = 0; i < 9; i++) /* revisions 2..10 never published */
    th_put(&f->t, i % 2 ? "k" : "j", val(i));
  assert_int_equal(watch_hub_jump(f->h, f->t.rev), 0);
  assert_int_equal(watch_hub_unsynced(f->h), 2);
  for (int i = 0; i < 4; i++)
    put(f, "k", val(100 + i)); /* 11..14 live */
  settle(f, 1 << 20);
  th_check(&f->t, exact, f->t.rev);
  th_check(&f->t, prefix, f->t.rev);
  th_check(&f->t, future, f->t.rev);
  assert_int_equal(exact->n_got, 8);
  assert_int_equal(prefix->n_got, 13);
  assert_int_equal(future->n_got, 3);
  /* the new history starts above a watcher's position */
  for (int i = 0; i < 5; i++)
    th_put(&f->t, "k", val(200 + i));
  f->t.compact = f->t.rev - 1;
  assert_int_equal(watch_hub_jump(f->h, f->t.rev), 0);
  settle(f, 1 << 20);
  assert_true(exact->canceled);
  assert_int_equal(exact->compact, f->t.compact);
  fx_free(f);
}

/* Matching cost: with 40,000 groups the index visits O(log G) nodes per
 * event plus the matching groups, not O(G). */
static void test_index_cost(void **state) {
  (void)state;
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.stream_backlog_events = 1 << 20;
  cfg.stream_backlog_bytes = 1 << 30;
  struct fx *f = fx_new(&cfg);
  enum { N = 20000, NESTED = 64 };
  char k[32], e[32];
  for (int i = 0; i < N; i++) {
    snprintf(k, sizeof k, "r/%05d/", i); /* disjoint prefixes */
    snprintf(e, sizeof e, "r/%05d0", i);
    struct watch_create req = {
        (const uint8_t *)k, strlen(k), (const uint8_t *)e, strlen(e), 0, 0,
        WATCH_ID_AUTO};
    int64_t id;
    assert_int_equal(watch_stream_watch(f->s, &req, &id), 0);
    snprintf(k, sizeof k, "e/%05d", i); /* exact keys */
    struct watch_create req2 = {(const uint8_t *)k, strlen(k), NULL, 0, 0, 0,
                                WATCH_ID_AUTO};
    assert_int_equal(watch_stream_watch(f->s, &req2, &id), 0);
  }
  for (int i = 0; i < NESTED; i++) { /* all contain "n/x" */
    snprintf(e, sizeof e, "n/y%03d", i);
    struct watch_create req = {
        (const uint8_t *)"n/", 2, (const uint8_t *)e, strlen(e), 0, 0,
        WATCH_ID_AUTO};
    int64_t id;
    assert_int_equal(watch_stream_watch(f->s, &req, &id), 0);
  }
  struct watch_hub_stats st0, st1;
  struct store_event ev = {0};
  ev.type = STORE_EVENT_PUT;
  ev.kv.value = (const uint8_t *)"v";
  ev.kv.value_len = 1;
  int64_t rev = watch_hub_revision(f->h);
  uint64_t unmatched = 0, one = 0, nested = 0, delivered = 0;
  for (int i = 0; i < 1000; i++) {
    ev.kv.mod_revision = ++rev;
    snprintf(k, sizeof k, "r/%05d/key", (i * 7919) % N);
    ev.kv.key = (const uint8_t *)k;
    ev.kv.key_len = strlen(k);
    watch_hub_stats(f->h, &st0);
    assert_int_equal(watch_hub_publish(f->h, rev, &ev, 1), 0);
    watch_hub_stats(f->h, &st1);
    one += st1.index_steps - st0.index_steps;

    ev.kv.mod_revision = ++rev;
    snprintf(k, sizeof k, "q/%05d", i);
    ev.kv.key_len = strlen(k);
    watch_hub_stats(f->h, &st0);
    assert_int_equal(watch_hub_publish(f->h, rev, &ev, 1), 0);
    watch_hub_stats(f->h, &st1);
    unmatched += st1.index_steps - st0.index_steps;

    ev.kv.mod_revision = ++rev;
    ev.kv.key = (const uint8_t *)"n/x";
    ev.kv.key_len = 3;
    watch_hub_stats(f->h, &st0);
    assert_int_equal(watch_hub_publish(f->h, rev, &ev, 1), 0);
    watch_hub_stats(f->h, &st1);
    nested += st1.index_steps - st0.index_steps;
    if (i % 100 == 99) {
      struct watch_batch b;
      while (watch_stream_next(f->s, 1 << 20, &b) == 1)
        delivered += b.n_events;
    }
  }
  assert_int_equal(delivered, 1000 + 1000 * NESTED);
  printf("index steps per event (%d groups): matching one %.1f, none %.1f, "
         "%d nested %.1f\n",
         2 * N + NESTED, one / 1000.0, unmatched / 1000.0, NESTED,
         nested / 1000.0);
  /* log2(40064) ~ 15.3; a treap's depth is about 2 ln G ~ 21 */
  assert_true(one / 1000.0 < 80);
  assert_true(unmatched / 1000.0 < 80);
  assert_true(nested / 1000.0 < 80 + 4.0 * NESTED);
  fx_free(f);
}

/* The index under churn: thousands of random keys, prefixes, ranges and
 * from-key watchers are added and canceled at random; after every event the
 * set of watchers that got it equals the brute-force set. Seeded. */
static uint64_t ix_rng = 42;
static unsigned ix_pick(unsigned n) {
  ix_rng = ix_rng * 6364136223846793005ull + 1442695040888963407ull;
  return (unsigned)((ix_rng >> 33) % n);
}
static void ix_key(char *k) {
  int n = 1 + (int)ix_pick(4);
  for (int i = 0; i < n; i++)
    k[i] = (char)('a' + ix_pick(4));
  k[n] = 0;
}

static void test_index_random(void **state) {
  (void)state;
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.stream_backlog_events = 1 << 20;
  cfg.stream_backlog_bytes = 1 << 30;
  struct fx *f = fx_new(&cfg);
  enum { MAXW = 6000 };
  struct ixw {
    char key[8], end[8];
    size_t end_len;
    int live, got;
  } *w = calloc(MAXW, sizeof *w);
  assert_non_null(w);
  int n = 0;
  int64_t rev = watch_hub_revision(f->h);
  for (int step = 0; step < 4000; step++) {
    /* a few creations and cancels per event */
    for (int j = 0; j < 2 && n < MAXW; j++) {
      struct ixw *x = &w[n];
      ix_key(x->key);
      switch (ix_pick(4)) {
      case 0:
        x->end_len = 0;
        break;
      case 1:
        ix_key(x->end);
        if (strcmp(x->end, x->key) <= 0) {
          snprintf(x->end, sizeof x->end, "%s", x->key);
          x->end[strlen(x->end) - 1]++;
        }
        x->end_len = strlen(x->end);
        break;
      case 2:
        snprintf(x->end, sizeof x->end, "%s", x->key);
        x->end[strlen(x->end) - 1]++;
        x->end_len = strlen(x->end);
        break;
      default:
        x->end[0] = 0;
        x->end_len = 1;
      }
      struct watch_create req = {(const uint8_t *)x->key,
                                 strlen(x->key),
                                 (const uint8_t *)x->end,
                                 x->end_len,
                                 0,
                                 0,
                                 WATCH_ID_AUTO};
      int64_t id;
      assert_int_equal(watch_stream_watch(f->s, &req, &id), 0);
      assert_int_equal(id, n);
      x->live = 1;
      n++;
    }
    if (n && ix_pick(3) == 0) {
      int v = (int)ix_pick((unsigned)n);
      if (w[v].live) {
        assert_int_equal(watch_stream_cancel(f->s, v, NULL), 0);
        w[v].live = 0;
      }
    }
    char k[8];
    ix_key(k);
    struct store_event ev = {0};
    ev.type = STORE_EVENT_PUT;
    ev.kv.key = (const uint8_t *)k;
    ev.kv.key_len = strlen(k);
    ev.kv.mod_revision = ++rev;
    assert_int_equal(watch_hub_publish(f->h, rev, &ev, 1), 0);
    for (int i = 0; i < n; i++)
      w[i].got = 0;
    struct watch_batch b;
    while (watch_stream_next(f->s, 1 << 20, &b) == 1) {
      if (b.canceled)
        continue;
      assert_int_equal(b.n_events, 1);
      assert_int_equal(b.events[0].kv.mod_revision, rev);
      assert_false(w[b.watch_id].got);
      w[b.watch_id].got = 1;
    }
    for (int i = 0; i < n; i++) {
      int want =
          w[i].live && th_in_range(ev.kv.key, ev.kv.key_len,
                                   (const uint8_t *)w[i].key, strlen(w[i].key),
                                   (const uint8_t *)w[i].end, w[i].end_len);
      if (want != w[i].got)
        fail_msg("step %d key %s watcher %d [%s, %s) live %d: got %d", step, k,
                 i, w[i].key, w[i].end, w[i].live, w[i].got);
    }
  }
  free(w);
  fx_free(f);
}

/* Filters, prev_kv, and the three kinds of range. */
static void test_filters_prev_ranges(void **state) {
  (void)state;
  struct fx *f = fx_new(NULL);
  struct th_watch *noput = watch(f, "k", NULL, 0, 0, WATCH_NOPUT);
  struct th_watch *nodel = watch(f, "k", NULL, 0, 0, WATCH_NODELETE);
  struct th_watch *prev = watch(f, "k", NULL, 0, 0, WATCH_PREV_KV);
  struct th_watch *range = watch(f, "b", "d", 1, 0, 0);
  struct th_watch *from = watch(f, "c", "\0", 1, 0, 0);
  put(f, "k", "1");
  put(f, "k", "2");
  del(f, "k");
  const char *keys[] = {"a", "b", "bz", "c", "d", "e", ""};
  for (int i = 0; i < 7; i++)
    put(f, keys[i], "v");
  settle(f, 1 << 20);
  assert_int_equal(noput->n_got, 1);
  assert_int_equal(noput->got[0].type, STORE_EVENT_DELETE);
  assert_int_equal(nodel->n_got, 2);
  assert_int_equal(prev->n_got, 3);
  assert_false(prev->got[0].has_prev);
  assert_true(prev->got[1].has_prev);
  assert_string_equal(prev->got[1].prev_value, "1");
  assert_string_equal(prev->got[2].prev_value, "2");
  assert_int_equal(range->n_got, 3); /* b, bz, c */
  assert_int_equal(from->n_got, 6);  /* k twice, k deleted, c, d, e */
  th_check(&f->t, noput, f->t.rev);
  th_check(&f->t, nodel, f->t.rev);
  th_check(&f->t, prev, f->t.rev);
  th_check(&f->t, range, f->t.rev);
  th_check(&f->t, from, f->t.rev);
  fx_free(f);
}

/* Bad requests get a clear code and change nothing. */
static void test_errors_and_limits(void **state) {
  (void)state;
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.max_watchers_per_stream = 3;
  cfg.max_key_len = 16;
  cfg.max_streams = 2;
  struct fx *f = fx_new(&cfg);
  struct watch_stream *s2, *s3;
  assert_int_equal(watch_stream_open(f->h, NULL, NULL, &s2), 0);
  assert_int_equal(watch_stream_open(f->h, NULL, NULL, &s3), KEEL_ELIMIT);
  watch_stream_close(s2);
  struct watch_create req = {0};
  int64_t id;
  req.key = (const uint8_t *)"k";
  req.key_len = 1;
  req.watch_id = 7;
  assert_int_equal(watch_stream_watch(f->s, &req, &id), 0);
  assert_int_equal(id, 7);
  assert_int_equal(watch_stream_watch(f->s, &req, &id), KEEL_EEXIST);
  req.watch_id = -5;
  assert_int_equal(watch_stream_watch(f->s, &req, &id), -EINVAL);
  req.watch_id = WATCH_ID_AUTO;
  req.start_rev = -1;
  assert_int_equal(watch_stream_watch(f->s, &req, &id), -EINVAL);
  req.start_rev = 0;
  req.flags = 1u << 12;
  assert_int_equal(watch_stream_watch(f->s, &req, &id), -EINVAL);
  req.flags = 0;
  req.range_end = (const uint8_t *)"a"; /* end <= key */
  req.range_end_len = 1;
  assert_int_equal(watch_stream_watch(f->s, &req, &id), -EINVAL);
  req.range_end = (const uint8_t *)"k";
  assert_int_equal(watch_stream_watch(f->s, &req, &id), -EINVAL);
  req.range_end_len = 0;
  req.key = (const uint8_t *)"0123456789abcdefX";
  req.key_len = 17;
  assert_int_equal(watch_stream_watch(f->s, &req, &id), KEEL_ETOOLARGE);
  req.key_len = 16;
  assert_int_equal(watch_stream_watch(f->s, &req, &id), 0);
  assert_int_equal(id, 0);
  assert_int_equal(watch_stream_watch(f->s, &req, &id), 0);
  assert_int_equal(id, 1);
  assert_int_equal(watch_stream_watch(f->s, &req, &id), KEEL_ELIMIT);
  assert_int_equal(watch_stream_cancel(f->s, 99, NULL), KEEL_ENOTFOUND);
  /* publish: revisions must increase and match the events */
  put(f, "k", "v");
  struct store_event e = f->t.revs[1].ev[0];
  assert_int_equal(watch_hub_publish(f->h, 1, &e, 1), -EINVAL);
  assert_int_equal(watch_hub_publish(f->h, 3, NULL, 0), -EINVAL); /* gap */
  e.kv.mod_revision = 2;
  e.type = (enum store_event_type)7;
  assert_int_equal(watch_hub_publish(f->h, 2, &e, 1), -EINVAL);
  e.type = STORE_EVENT_PUT;
  e.kv.key_len = 17;
  assert_int_equal(watch_hub_publish(f->h, 2, &e, 1), -EINVAL);
  assert_int_equal(watch_hub_revision(f->h), 1); /* nothing changed */
  assert_int_equal(watch_hub_publish(f->h, 2, NULL, 0), 0);
  assert_int_equal(watch_hub_revision(f->h), 2);
  assert_int_equal(watch_hub_jump(f->h, 1), -EINVAL);
  /* bad config */
  struct watch_hub *h2;
  struct watch_hub_config bad;
  watch_hub_config_init(&bad);
  assert_int_equal(watch_hub_new(&bad, &h2), -EINVAL);
  fx_free(f);
}

/* Many streams, many watchers on the same and on overlapping ranges: each
 * gets what the model says; closing streams returns every hub byte. */
static void test_streams_and_sharing(void **state) {
  (void)state;
  struct th_history t;
  th_init(&t);
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  struct watch_hub *h = th_hub(&t, &cfg);
  struct watch_hub_stats st0, st;
  watch_hub_stats(h, &st0);
  struct watch_stream *s[4];
  struct th_collector *c = calloc(4, sizeof *c);
  assert_non_null(c);
  struct th_watch *w[4][20];
  for (int i = 0; i < 4; i++) {
    assert_int_equal(watch_stream_open(h, NULL, NULL, &s[i]), 0);
    for (int j = 0; j < 20; j++) {
      static const char *ranges[][2] = {{"a", ""},   {"a", "b"}, {"", "\0"},
                                        {"ab", "c"}, {"b", ""},  {"aa", "ab"}};
      const char *k = ranges[j % 6][0], *e = ranges[j % 6][1];
      size_t elen = (e[0] == 0 && j % 6 == 2) ? 1 : strlen(e);
      struct watch_create req = {
          (const uint8_t *)k, strlen(k), (const uint8_t *)e, elen, 0, 0,
          WATCH_ID_AUTO};
      int64_t id;
      assert_int_equal(watch_stream_watch(s[i], &req, &id), 0);
      w[i][j] = th_track(&c[i], id, &req, watch_hub_revision(h));
    }
  }
  const char *keys[] = {"a", "aa", "aab", "ab", "abc", "b", "c", ""};
  for (int r = 0; r < 80; r++) {
    int64_t rev = th_put(&t, keys[r % 8], "v");
    th_publish(&t, h, rev);
    if (r % 9 == 0)
      for (int i = 0; i < 4; i++)
        th_drain(&c[i], s[i], 1 << 20, SIZE_MAX);
  }
  for (int i = 0; i < 4; i++) {
    th_drain(&c[i], s[i], 1 << 20, SIZE_MAX);
    for (int j = 0; j < 20; j++)
      th_check(&t, w[i][j], t.rev);
  }
  watch_hub_stats(h, &st);
  assert_int_equal(st.watchers, 80);
  for (int i = 0; i < 4; i++) {
    watch_stream_close(s[i]);
    th_collector_free(&c[i]);
  }
  watch_hub_stats(h, &st);
  assert_int_equal(st.watchers, 0);
  /* only grown tables remain (hash buckets, unsynced reservation) */
  assert_true(st.bytes_now < st0.bytes_now + 4096);
  free(c);
  watch_hub_free(h);
  th_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ordered),
      cmocka_unit_test(test_unique),
      cmocka_unit_test(test_reliable),
      cmocka_unit_test(test_atomic),
      cmocka_unit_test(test_resumable),
      cmocka_unit_test(test_bookmarkable),
      cmocka_unit_test(test_catchup_races_live),
      cmocka_unit_test(test_compaction_slow_watcher),
      cmocka_unit_test(test_history_errors),
      cmocka_unit_test(test_jump),
      cmocka_unit_test(test_index_cost),
      cmocka_unit_test(test_index_random),
      cmocka_unit_test(test_filters_prev_ranges),
      cmocka_unit_test(test_errors_and_limits),
      cmocka_unit_test(test_streams_and_sharing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

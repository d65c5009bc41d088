/* fuzz_watch_hub.c — libFuzzer target: the watch hub (store/watch_hub.h)
 * driven by the input bytes against the in-memory history of the watch
 * tests (tests/unit/watch/watch_testlib.h).
 *
 * The driver is tests/unit/watch/test_watch_model.c's, with every random
 * choice read from the input instead of a PRNG (a choice reads 1, 2 or 4
 * bytes; past the end of the input every choice is 0). One input is one
 * run: hub limits, then up to MAX_STEPS operations — writes (single keys
 * and txns), watcher creation (exact, prefix, range, from-key, all; start
 * now, past, future; any filters and options), client cancels, pulls with
 * chosen byte budgets, catch-up with chosen chunk sizes, compactions,
 * snapshot jumps, progress ticks and requests, failing allocations — then
 * a full drain.
 *
 * Checked: the hub's own asserts; the collector's per-batch guarantees on
 * every batch (revisions never go back, revision order, no split revision
 * outside fragments, nothing after a cancel); at the end every watcher got
 * exactly what the brute-force model says (a gap-free prefix if canceled,
 * and only compaction or the client cancels); the hub returns every byte
 * (watch_hub_free asserts it) and LeakSanitizer finds no leak. A failed
 * check aborts (cmocka's asserts abort: CMOCKA_TEST_ABORT=1).
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

#define STREAMS 3
#define MAX_IDS 200
#define MAX_STEPS 2000

static const uint8_t *in;
static size_t in_left;
static unsigned fail_rate; /* 1 in fail_rate allocations fail; 0: none */
static unsigned fail_tick;

/* A choice in [0, n): as many input bytes as n needs. */
static unsigned pick(unsigned n) {
  if (n <= 1)
    return 0;
  size_t bytes = n <= 256 ? 1 : n <= 65536 ? 2 : 4;
  uint32_t v = 0;
  for (size_t i = 0; i < bytes && in_left; i++, in_left--)
    v = v << 8 | *in++;
  return v % n;
}

/* Deterministic in the input: every fail_rate-th allocation fails. */
static int maybe_fail(void *arg, size_t n) {
  (void)arg, (void)n;
  return fail_rate && ++fail_tick % fail_rate == 0;
}

/* Keys: 1 to 3 letters from {a, b, c}: 39 keys with lots of prefixes. */
static void choose_key(char *k) {
  int n = 1 + (int)pick(3);
  for (int i = 0; i < n; i++)
    k[i] = (char)('a' + pick(3));
  k[n] = 0;
}

struct model {
  struct th_history t;
  struct watch_hub *h;
  struct watch_stream *s[STREAMS];
  struct th_collector c[STREAMS];
  int64_t ids_used[STREAMS];
  unsigned client_canceled[STREAMS][MAX_IDS / 32 + 1];
};

static void create_watch(struct model *m) {
  int si = (int)pick(STREAMS);
  if (m->ids_used[si] >= MAX_IDS)
    return;
  char key[8], end[8];
  struct watch_create req = {0};
  choose_key(key);
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
  case 2: /* range */
    choose_key(end);
    if (strcmp(end, key) <= 0) {
      snprintf(end, sizeof end, "%s", key);
      end[strlen(end) - 1]++;
    }
    req.range_end = (const uint8_t *)end;
    req.range_end_len = strlen(end);
    break;
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
  req.flags = pick(32);
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
    choose_key(keys[k]);
    int dup = 0;
    for (size_t j = 0; j < k; j++)
      dup |= !strcmp(keys[j], keys[k]);
    if (dup)
      continue;
    ops[k].key = keys[k];
    ops[k].value = pick(4) ? (pick(2) ? "v1" : "value-two") : NULL;
    k++;
  }
  th_publish(&m->t, m->h, th_write(&m->t, ops, k));
}

/* A snapshot install: revisions reach the store without being published. */
static void jump(struct model *m) {
  unsigned n = 1 + pick(5);
  for (unsigned i = 0; i < n; i++) {
    char k[8];
    choose_key(k);
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
    m->client_canceled[si][id / 32] |= 1u << (id % 32);
  } else {
    assert_int_equal(rc, KEEL_ENOTFOUND);
  }
}

static void finish(struct model *m) {
  fail_rate = 0; /* memory is back: drain everything */
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
      int by_client = (m->client_canceled[i][id / 32] >> (id % 32)) & 1;
      if (by_client)
        assert_true(w->canceled);
      if (w->canceled && !by_client) {
        /* only compaction cancels, naming the revision; being short of
         * memory never cancels nor skips (it falls back to history) */
        assert_true(w->compact >= 1 && w->compact <= m->t.compact);
        int64_t next = w->n_got ? w->got[w->n_got - 1].rev + 1 : w->start;
        assert_true(next < w->compact);
      }
      th_check(&m->t, w, m->t.rev);
    }
    watch_stream_close(m->s[i]);
    th_collector_free(&m->c[i]);
  }
  struct watch_hub_stats st;
  watch_hub_stats(m->h, &st);
  assert_int_equal(st.watchers, 0);
  watch_hub_free(m->h); /* asserts every hub byte was returned */
  th_free(&m->t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setenv("CMOCKA_TEST_ABORT", "1", 1); /* a failed assert_* aborts */
  in = data;
  in_left = size;
  fail_rate = 0;
  fail_tick = 0;
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
  for (int i = 0, n = (int)pick(6); i < n; i++) { /* history never seen live */
    char k[8];
    choose_key(k);
    th_put(&m->t, k, "init");
  }
  m->h = th_hub(&m->t, &cfg);
  for (int i = 0; i < STREAMS; i++)
    assert_int_equal(watch_stream_open(m->h, th_ready, &m->c[i], &m->s[i]), 0);

  unsigned rate = pick(64);
  fail_rate = rate >= 4 ? 0 : 5 + pick(60); /* one input in 16 is short */
  for (int step = 0; step < MAX_STEPS && in_left; step++) {
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
  finish(m);
  free(m);
  return 0;
}

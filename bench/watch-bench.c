/* watch-bench.c — keel-watch-bench: figures for the watch hub
 * (docs/BENCHMARKS.md, "watch hub"). A benchmark, not a test: it prints
 * figures and checks only that every expected event arrived.
 *
 *   keel-watch-bench [--keys N] [--prefix N] [--rounds R]
 *
 * 1. N watchers (default 100,000) on distinct keys, spread over streams of
 *    1,000: one event per key is published and pulled; reports the time per
 *    delivered event and for all N, and the cost of an event no watcher
 *    matches (the index probe alone).
 * 2. N watchers (default 10,000) on one prefix: one event under the prefix
 *    reaches all of them; reports publish time, pull time, per delivery.
 * 3. Memory per idle watcher: malloc's in-use bytes (mallinfo2) and the
 *    hub's own count, divided by the number of watchers.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel_error.h"
#include "watch_hub.h"

#define PER_STREAM 1000

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd; /* heap chunks + mmapped blocks */
}

/* Every watcher here starts "now", so history is never needed; a read
 * would mean the hub let a watcher fall behind, which this benchmark does
 * not expect: say so and stop. */
static int no_history(void *ctx, const struct watch_history_req *req,
                      watch_emit_fn emit, void *emit_ctx, int64_t *next_rev,
                      int64_t *compact_rev) {
  (void)ctx, (void)req, (void)emit, (void)emit_ctx, (void)next_rev,
      (void)compact_rev;
  fprintf(stderr, "keel-watch-bench: unexpected history read\n");
  exit(1);
}

static struct watch_hub *hub_new(void) {
  struct watch_hub_config cfg;
  watch_hub_config_init(&cfg);
  cfg.read_history = no_history;
  cfg.stream_backlog_events = 1 << 20;
  cfg.stream_backlog_bytes = 256u << 20;
  struct watch_hub *h;
  if (watch_hub_new(&cfg, &h) < 0) {
    fprintf(stderr, "keel-watch-bench: cannot create hub\n");
    exit(1);
  }
  return h;
}

static void must(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "keel-watch-bench: %s: %s\n", what, keel_strerror(rc));
    exit(1);
  }
}

static size_t drain(struct watch_stream *s) {
  struct watch_batch b;
  size_t n = 0;
  int rc;
  while ((rc = watch_stream_next(s, 1 << 20, &b)) == 1)
    n += b.n_events;
  must(rc, "watch_stream_next");
  return n;
}

static void make_event(struct store_event *e, const char *key, int64_t rev) {
  static const uint8_t value[64] = {0};
  memset(e, 0, sizeof *e);
  e->type = STORE_EVENT_PUT;
  e->kv.key = (const uint8_t *)key;
  e->kv.key_len = strlen(key);
  e->kv.value = value;
  e->kv.value_len = sizeof value;
  e->kv.mod_revision = rev;
  e->kv.create_revision = rev;
  e->kv.version = 1;
}

static void bench_distinct(int n) {
  size_t heap0 = heap_in_use();
  struct watch_hub *h = hub_new();
  struct watch_hub_stats st0, st1;
  watch_hub_stats(h, &st0);
  int ns = (n + PER_STREAM - 1) / PER_STREAM;
  struct watch_stream **s = calloc((size_t)ns, sizeof *s);
  if (!s)
    exit(1);
  double t0 = now_s();
  for (int i = 0; i < ns; i++)
    must(watch_stream_open(h, NULL, NULL, &s[i]), "watch_stream_open");
  char key[32];
  for (int i = 0; i < n; i++) {
    snprintf(key, sizeof key, "/svc/key-%06d", i);
    struct watch_create req = {(const uint8_t *)key, strlen(key), NULL, 0, 0, 0,
                               WATCH_ID_AUTO};
    int64_t id;
    must(watch_stream_watch(s[i / PER_STREAM], &req, &id), "watch");
  }
  double t_create = now_s() - t0;
  watch_hub_stats(h, &st1);
  size_t heap1 = heap_in_use();
  printf("distinct_keys.watchers = %d (%d streams)\n", n, ns);
  printf("distinct_keys.create_us_per_watcher = %.3f\n", t_create * 1e6 / n);
  printf("idle_watcher.bytes_malloc = %.1f (key 15 bytes; mallinfo2 "
         "in-use, all hub structures)\n",
         (double)(heap1 - heap0) / n);
  printf("idle_watcher.bytes_hub_counted = %.1f (without malloc headers)\n",
         (double)(st1.bytes_now - st0.bytes_now) / n);

  /* one event per watcher, each its own revision; pulled per stream. The
   * keys are formatted before the clock starts. */
  char(*keys)[32] = malloc((size_t)n * sizeof *keys);
  if (!keys)
    exit(1);
  for (int i = 0; i < n; i++)
    snprintf(keys[i], sizeof keys[i], "/svc/key-%06d", i);
  struct store_event e;
  int64_t rev = 0;
  t0 = now_s();
  for (int i = 0; i < n; i++) {
    make_event(&e, keys[i], ++rev);
    must(watch_hub_publish(h, rev, &e, 1), "publish");
  }
  double t_pub = now_s() - t0;
  t0 = now_s();
  size_t got = 0;
  for (int i = 0; i < ns; i++)
    got += drain(s[i]);
  double t_pull = now_s() - t0;
  if (got != (size_t)n) {
    fprintf(stderr, "keel-watch-bench: %zu events delivered, want %d\n", got,
            n);
    exit(1);
  }
  printf("distinct_keys.deliver_all_ms = %.2f (publish %.2f + pull %.2f; "
         "%d events, one per watcher)\n",
         (t_pub + t_pull) * 1e3, t_pub * 1e3, t_pull * 1e3, n);
  printf("distinct_keys.deliver_one_us = %.3f (publish + pull, per event)\n",
         (t_pub + t_pull) * 1e6 / n);

  /* events no watcher matches: the index probe alone */
  for (int i = 0; i < n; i++)
    snprintf(keys[i], sizeof keys[i], "/other/key-%06d", i);
  t0 = now_s();
  for (int i = 0; i < n; i++) {
    make_event(&e, keys[i], ++rev);
    must(watch_hub_publish(h, rev, &e, 1), "publish");
  }
  double t_miss = now_s() - t0;
  printf("distinct_keys.unmatched_event_us = %.3f (with %d watchers)\n",
         t_miss * 1e6 / n, n);
  free(keys);
  for (int i = 0; i < ns; i++)
    watch_stream_close(s[i]);
  free(s);
  watch_hub_free(h);
}

static void bench_prefix(int n, int rounds) {
  size_t heap0 = heap_in_use();
  struct watch_hub *h = hub_new();
  int ns = (n + PER_STREAM - 1) / PER_STREAM;
  struct watch_stream **s = calloc((size_t)ns, sizeof *s);
  if (!s)
    exit(1);
  for (int i = 0; i < ns; i++)
    must(watch_stream_open(h, NULL, NULL, &s[i]), "watch_stream_open");
  for (int i = 0; i < n; i++) {
    struct watch_create req = {(const uint8_t *)"/flags/",
                               7,
                               (const uint8_t *)"/flags0",
                               7,
                               0,
                               0,
                               WATCH_ID_AUTO};
    int64_t id;
    must(watch_stream_watch(s[i / PER_STREAM], &req, &id), "watch");
  }
  size_t heap1 = heap_in_use();
  struct store_event e;
  double pub = 0, pull = 0;
  int64_t rev = 0;
  for (int r = 0; r < rounds; r++) {
    make_event(&e, "/flags/checkout-v2", ++rev);
    double t0 = now_s();
    must(watch_hub_publish(h, rev, &e, 1), "publish");
    double t1 = now_s();
    size_t got = 0;
    for (int i = 0; i < ns; i++)
      got += drain(s[i]);
    double t2 = now_s();
    if (got != (size_t)n) {
      fprintf(stderr, "keel-watch-bench: %zu deliveries, want %d\n", got, n);
      exit(1);
    }
    pub += t1 - t0;
    pull += t2 - t1;
  }
  printf("one_prefix.watchers = %d (%d streams)\n", n, ns);
  printf("one_prefix.idle_watcher_bytes_malloc = %.1f (shared key group)\n",
         (double)(heap1 - heap0) / n);
  printf("one_prefix.deliver_one_event_ms = %.3f (publish %.3f + pull %.3f; "
         "mean of %d rounds)\n",
         (pub + pull) * 1e3 / rounds, pub * 1e3 / rounds, pull * 1e3 / rounds,
         rounds);
  printf("one_prefix.per_delivery_ns = %.1f\n",
         (pub + pull) * 1e9 / rounds / n);
  for (int i = 0; i < ns; i++)
    watch_stream_close(s[i]);
  free(s);
  watch_hub_free(h);
}

int main(int argc, char **argv) {
  int keys = 100000, prefix = 10000, rounds = 100;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 < argc && !strcmp(a, "--keys"))
      keys = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(a, "--prefix"))
      prefix = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(a, "--rounds"))
      rounds = atoi(argv[++i]);
    else {
      fprintf(stderr,
              "usage: keel-watch-bench [--keys N] [--prefix N] [--rounds R]\n"
              "unknown or incomplete argument: %s\n",
              a);
      return 2;
    }
  }
  if (keys < 1 || keys > 10000000 || prefix < 1 || prefix > 10000000 ||
      rounds < 1 || rounds > 100000) {
    fprintf(stderr, "keel-watch-bench: --keys and --prefix must be in "
                    "1..10000000, --rounds in 1..100000\n");
    return 2;
  }
  bench_distinct(keys);
  bench_prefix(prefix, rounds);
  return 0;
}

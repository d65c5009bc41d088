/* store-bench.c — keel-store-bench: figures for the store alone (no raft,
 * no network), printed for docs/BENCHMARKS.md.
 *
 *   keel-store-bench [--dir DIR] [--batches N] [--batch N] [--value BYTES]
 *                    [--nosync] [--seq] [--reads N]
 *
 * apply: N batches of --batch puts (8-byte keys, hashed counter so inserts
 * land all over the B-tree; --value bytes), each batch one store_apply()
 * (one LMDB write txn; one data fsync by default, none with --nosync).
 * get: single-key ranges at the current revision on random existing keys.
 * get-past: the same at a random past revision (history lookup).
 * scan100: ranges [k, k + 100 key spacings), about 100 keys each.
 * Timing is wall-clock (CLOCK_MONOTONIC) around each phase.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel_error.h"
#include "store.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static bool seq_keys;

/* Key i: big-endian i with --seq (appends at the end of the tree), else a
 * hash of i (inserts all over the tree). */
static void key_of(uint64_t i, uint8_t k[8]) {
  uint64_t v = seq_keys ? i : mix(i);
  for (int b = 7; b >= 0; b--) {
    k[b] = (uint8_t)v;
    v >>= 8;
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: keel-store-bench [--dir DIR] [--batches N] "
          "[--batch N] [--value BYTES] [--nosync] [--seq] [--reads N]\n");
  exit(2);
}

static long arg_num(const char *name, const char *v, long lo, long hi) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || *end || n < lo || n > hi) {
    fprintf(stderr, "keel-store-bench: %s must be a number in [%ld, %ld]\n",
            name, lo, hi);
    exit(2);
  }
  return n;
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  long batches = 200, batch = 1000, vsize = 256, reads = 200000;
  bool nosync = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
      dir = argv[++i];
    else if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc)
      batches = arg_num("--batches", argv[++i], 1, 100000);
    else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
      batch = arg_num("--batch", argv[++i], 1, 100000);
    else if (strcmp(argv[i], "--value") == 0 && i + 1 < argc)
      vsize = arg_num("--value", argv[++i], 0, STORE_VALUE_MAX);
    else if (strcmp(argv[i], "--reads") == 0 && i + 1 < argc)
      reads = arg_num("--reads", argv[++i], 1, 100000000);
    else if (strcmp(argv[i], "--nosync") == 0)
      nosync = true;
    else if (strcmp(argv[i], "--seq") == 0)
      seq_keys = true;
    else
      usage();
  }
  char tmp[256] = {0};
  if (dir == NULL) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmp, sizeof(tmp), "%s/keel-store-bench-XXXXXX", base);
    if (mkdtemp(tmp) == NULL) {
      perror("mkdtemp");
      return 1;
    }
    dir = tmp;
  }
  struct store_options o = {.quota_bytes = 8ull << 30, .apply_nosync = nosync};
  struct store *st;
  int rc = store_open(dir, &o, &st);
  if (rc != 0) {
    fprintf(stderr, "keel-store-bench: open %s: %s\n", dir, keel_strerror(rc));
    return 1;
  }
  uint8_t *keys = malloc((size_t)batch * 8);
  uint8_t *val = malloc((size_t)vsize + 1);
  struct store_request *reqs = calloc((size_t)batch, sizeof(*reqs));
  struct store_apply_entry *ents = calloc((size_t)batch, sizeof(*ents));
  if (!keys || !val || !reqs || !ents)
    return 1;
  memset(val, 'v', (size_t)vsize);
  uint64_t index = 0, n = 0;
  double t0 = now_s(), worst = 0;
  for (long b = 0; b < batches; b++) {
    for (long i = 0; i < batch; i++) {
      key_of(n + (uint64_t)i, keys + i * 8);
      reqs[i].type = STORE_REQ_PUT;
      reqs[i].u.put.key = keys + i * 8;
      reqs[i].u.put.key_len = 8;
      reqs[i].u.put.value = val;
      reqs[i].u.put.value_len = (size_t)vsize;
      ents[i] = (struct store_apply_entry){
          .index = ++index, .term = 1, .req = &reqs[i]};
    }
    struct store_apply_batch ab = {.entries = ents, .n = (size_t)batch};
    struct store_apply_result res;
    double tb = now_s();
    if ((rc = store_apply(st, &ab, &res)) != 0) {
      fprintf(stderr, "keel-store-bench: apply: %s\n", keel_strerror(rc));
      return 1;
    }
    double dt = now_s() - tb;
    if (dt > worst)
      worst = dt;
    store_apply_result_free(&res);
    n += (uint64_t)batch;
  }
  double t_apply = now_s() - t0;
  struct store_size sz;
  store_size(st, &sz);
  printf("apply: %" PRIu64 " puts in %ld batches of %ld (%s 8 B keys, value "
         "%ld B, %s): %.3f s, %.0f puts/s, slowest batch %.1f ms, db %.1f "
         "MiB\n",
         n, batches, batch, seq_keys ? "sequential" : "random", vsize,
         nosync ? "no fsync" : "one fsync per batch", t_apply,
         (double)n / t_apply, worst * 1000, (double)sz.size / (1 << 20));

  /* reads */
  uint64_t seed = 42;
  double t1 = now_s();
  uint64_t found = 0;
  for (long i = 0; i < reads; i++) {
    uint8_t k[8];
    seed = mix(seed);
    key_of(seed % n, k);
    struct store_range_req q = {.key = k, .key_len = 8};
    struct store_range_result r;
    if (store_range(st, &q, &r) != 0)
      return 1;
    found += r.resp.n_kvs;
    store_range_result_free(&r);
  }
  double t_get = now_s() - t1;
  printf("get: %ld single-key ranges at the current revision: %.0f ops/s "
         "(%" PRIu64 " found)\n",
         reads, (double)reads / t_get, found);
  int64_t cur;
  store_revisions(st, &cur, NULL);
  t1 = now_s();
  found = 0;
  for (long i = 0; i < reads; i++) {
    uint8_t k[8];
    seed = mix(seed);
    uint64_t which = seed % n;
    key_of(which, k);
    struct store_range_req q = {.key = k,
                                .key_len = 8,
                                .revision = 2 + (int64_t)which +
                                            (int64_t)(seed >> 40) % 1000};
    if (q.revision > cur)
      q.revision = cur;
    struct store_range_result r;
    if (store_range(st, &q, &r) != 0)
      return 1;
    found += r.resp.n_kvs;
    store_range_result_free(&r);
  }
  t_get = now_s() - t1;
  printf("get-past: %ld single-key ranges at past revisions: %.0f ops/s "
         "(%" PRIu64 " found)\n",
         reads, (double)reads / t_get, found);
  long scans = reads / 20;
  t1 = now_s();
  uint64_t kvs = 0;
  for (long i = 0; i < scans; i++) {
    uint8_t k[8];
    seed = mix(seed);
    key_of(seed % n, k);
    /* [k, k + 100 key spacings): about 100 keys, so count stays small */
    uint64_t kv = 0;
    for (int b = 0; b < 8; b++)
      kv = (kv << 8) | k[b];
    uint64_t span = seq_keys ? 100 : UINT64_MAX / n * 100;
    uint64_t ev = kv + span < kv ? UINT64_MAX : kv + span;
    uint8_t end[8];
    for (int b = 7; b >= 0; b--) {
      end[b] = (uint8_t)ev;
      ev >>= 8;
    }
    struct store_range_req q = {
        .key = k, .key_len = 8, .range_end = end, .range_end_len = 8};
    struct store_range_result r;
    if (store_range(st, &q, &r) != 0)
      return 1;
    kvs += r.resp.n_kvs;
    store_range_result_free(&r);
  }
  t_get = now_s() - t1;
  printf("scan100: %ld ranges of about 100 keys: %.0f "
         "ranges/s, %.0f keys/s\n",
         scans, (double)scans / t_get, (double)kvs / t_get);
  store_close(st);
  free(keys);
  free(val);
  free(reqs);
  free(ents);
  if (tmp[0]) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
      fprintf(stderr, "keel-store-bench: could not remove %s\n", tmp);
  }
  return 0;
}

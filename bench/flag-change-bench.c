/* flag-change-bench.c — keel-flag-change-bench: how long a flag change
 * takes to reach a libkeel flag cache (client/keel_flags.h) that watches
 * the set through another node of a cluster (docs/BENCHMARKS.md, "Flag
 * change to a libkeel cache"). A benchmark, not a test: it prints figures
 * and checks only that every change arrived, with the value written.
 *
 *   keel-flag-change-bench --write HOST:PORT --watch HOST:PORT
 *                          [--changes N] [--txn] [--set NAME]
 *
 * One libuv loop runs two clients: a writer on --write and the cache on
 * --watch, so both times are taken as the events arrive. Each change flips
 * the default variant of /flags/NAME/f (so every write changes the
 * evaluation); the next change starts once the write was acknowledged and
 * the cache reported it. --txn writes as `keel flag set` does: one txn
 * guarded by the set's $evaluators mod_revision. Reported: from the write
 * being sent, and from its acknowledgement, to on_change (p50, p90, p99,
 * max), after 20 warm-up changes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel.h"
#include "keel_flags.h"

#define WARMUP 20
#define MAX_CHANGES 1000000

static const char *const defs[2] = {
    "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"
    "\"defaultVariant\":\"on\"}",
    "{\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},"
    "\"defaultVariant\":\"off\"}"};

static uv_loop_t loop;
static keel_client *wc, *cc;
static keel_flag_cache *cache;
static char key[300], evkey[300];
static int use_txn, total, i_change = -1, ready, failed;
static uint64_t t_sent, t_ack, t_seen;
static int64_t *d_sent, *d_ack;

static void next_change(void);

static int eval_bool(void) {
  struct keel_flag_eval e;
  keel_flag_cache_evaluate(cache, "f", FLAGS_TYPE_BOOLEAN, NULL, 0, &e);
  int v = e.r.value && json_is_true(e.r.value);
  keel_flag_eval_release(&e);
  return v;
}

static void maybe_next(void) {
  if (!t_ack || !t_seen)
    return;
  /* The cache must hold what was written (default flips each change). */
  if (eval_bool() != (i_change % 2 == 0)) {
    fprintf(stderr, "change %d: the cache evaluates the old value\n", i_change);
    failed = 1;
    uv_stop(&loop);
    return;
  }
  if (i_change >= WARMUP) {
    d_sent[i_change - WARMUP] = (int64_t)(t_seen - t_sent);
    d_ack[i_change - WARMUP] = (int64_t)t_seen - (int64_t)t_ack;
  }
  next_change();
}

static void on_written(const struct keel_result *r, const void *resp,
                       void *ud) {
  (void)ud;
  if (r->err) {
    fprintf(stderr, "write %d failed: %s: %s\n", i_change,
            keel_strerror(r->err), r->message);
    failed = 1;
    uv_stop(&loop);
    return;
  }
  if (use_txn && !((const struct keel_txn_resp *)resp)->succeeded) {
    fprintf(stderr, "write %d: txn guard failed\n", i_change);
    failed = 1;
    uv_stop(&loop);
    return;
  }
  t_ack = uv_hrtime();
  maybe_next();
}

static void on_change(keel_flag_cache *c, const char *const *keys, size_t n,
                      void *ud) {
  (void)c;
  (void)ud;
  if (!ready) {
    ready = 1; /* the first load */
    next_change();
    return;
  }
  for (size_t k = 0; k < n; k++)
    if (strcmp(keys[k], "f") == 0 && !t_seen) {
      t_seen = uv_hrtime();
      maybe_next();
      return;
    }
}

static void next_change(void) {
  i_change++;
  if (i_change == total + WARMUP) {
    uv_stop(&loop);
    return;
  }
  t_ack = t_seen = 0;
  const char *v = defs[i_change % 2];
  struct keel_put_req p = {.key = (const uint8_t *)key,
                           .key_len = strlen(key),
                           .value = (const uint8_t *)v,
                           .value_len = strlen(v)};
  t_sent = uv_hrtime();
  int rc;
  if (use_txn) {
    /* As `keel flag set`: guarded by $evaluators (absent: mod 0). */
    struct keel_compare cmp = {.result = KEEL_CMP_EQUAL,
                               .target = KEEL_CMP_MOD,
                               .key = (const uint8_t *)evkey,
                               .key_len = strlen(evkey),
                               .number = 0};
    struct keel_op op = {.type = KEEL_OP_PUT, .u.put = p};
    struct keel_txn_req t = {
        .compares = &cmp, .n_compares = 1, .success = &op, .n_success = 1};
    rc = keel_txn(wc, &t, NULL, on_written, NULL);
  } else
    rc = keel_put(wc, &p, NULL, on_written, NULL);
  if (rc) {
    fprintf(stderr, "write: %s\n", keel_strerror(rc));
    failed = 1;
    uv_stop(&loop);
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void report(const char *what, int64_t *d, int n) {
  qsort(d, (size_t)n, sizeof(*d), cmp_i64);
  printf("  %-28s p50 %7.3f ms  p90 %7.3f ms  p99 %7.3f ms  max %7.3f ms\n",
         what, d[n / 2] / 1e6, d[n * 90 / 100] / 1e6, d[n * 99 / 100] / 1e6,
         d[n - 1] / 1e6);
}

static keel_client *client_on(const char *ep) {
  struct keel_config cfg;
  keel_config_default(&cfg);
  const char *eps[1] = {ep};
  cfg.endpoints = eps;
  cfg.n_endpoints = 1;
  keel_client *c;
  if (keel_client_new(&loop, &cfg, &c) != 0) {
    fprintf(stderr, "bad endpoint %s\n", ep);
    exit(2);
  }
  return c;
}

struct role_st {
  int done, err;
  uint64_t me, leader;
};

static void on_status(const struct keel_result *r, const void *resp, void *ud) {
  struct role_st *st = ud;
  st->done = 1;
  st->err = r->err;
  if (r->err == 0) {
    const struct keel_status_resp *s = resp;
    st->me = s->header.member_id;
    st->leader = s->leader;
  }
}

/* "leader" / "follower" of the node behind c, for the report. */
static const char *role_of(keel_client *c) {
  struct role_st st = {0};
  int rc = keel_status(c, -1, NULL, on_status, &st);
  while (rc == 0 && !st.done)
    uv_run(&loop, UV_RUN_ONCE);
  if (rc || st.err)
    return "?";
  return st.me == st.leader ? "leader" : "follower";
}

static void on_closed(void *ud) {
  (*(int *)ud)++;
}

int main(int argc, char **argv) {
  const char *wep = NULL, *cep = NULL, *set = "bench";
  total = 1000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--write") == 0 && i + 1 < argc)
      wep = argv[++i];
    else if (strcmp(argv[i], "--watch") == 0 && i + 1 < argc)
      cep = argv[++i];
    else if (strcmp(argv[i], "--changes") == 0 && i + 1 < argc)
      total = atoi(argv[++i]);
    else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc)
      set = argv[++i];
    else if (strcmp(argv[i], "--txn") == 0)
      use_txn = 1;
    else {
      fprintf(stderr, "usage: keel-flag-change-bench --write HOST:PORT --watch "
                      "HOST:PORT [--changes N] [--txn] [--set NAME]\n");
      return 2;
    }
  }
  if (!wep || !cep || total < 10 || total > MAX_CHANGES || strlen(set) > 128) {
    fprintf(stderr,
            "need --write and --watch; --changes 10..%d; --set at "
            "most 128 bytes\n",
            MAX_CHANGES);
    return 2;
  }
  snprintf(key, sizeof(key), "/flags/%s/f", set);
  snprintf(evkey, sizeof(evkey), "/flags/%s/$evaluators", set);
  d_sent = calloc((size_t)total, sizeof(int64_t));
  d_ack = calloc((size_t)total, sizeof(int64_t));
  uv_loop_init(&loop);
  wc = client_on(wep);
  cc = client_on(cep);
  const char *wr = role_of(wc), *cr = role_of(cc);
  if (keel_flag_cache_open(cc, set, NULL, on_change, NULL, &cache) != 0) {
    fprintf(stderr, "cannot open the flag cache\n");
    return 1;
  }
  uint64_t t0 = uv_hrtime();
  uv_run(&loop, UV_RUN_DEFAULT);
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  int closed = 0;
  keel_flag_cache_close(cache, on_closed, &closed);
  keel_client_close(wc, on_closed, &closed);
  keel_client_close(cc, on_closed, &closed);
  while (closed < 3)
    uv_run(&loop, UV_RUN_ONCE);
  if (failed)
    return 1;
  char model[600] = "?";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof(line), f))
      if (strncmp(line, "model name", 10) == 0) {
        char *c = strchr(line, ':');
        snprintf(model, sizeof(model), "%s", c ? c + 2 : line);
        model[strcspn(model, "\n")] = 0;
        break;
      }
    fclose(f);
  }
  printf("flag change -> libkeel cache on another node: %d changes (after %d "
         "warm-up) by %s, %.1f s\n"
         "  writer %s (%s), cache watching through %s (%s)\n"
         "  machine: %ld CPUs (nproc), %s\n",
         total, WARMUP, use_txn ? "guarded txn (as keel flag set)" : "put",
         secs, wep, wr, cep, cr, sysconf(_SC_NPROCESSORS_ONLN), model);
  report("write sent -> on_change:", d_sent, total);
  report("write acked -> on_change:", d_ack, total);
  free(d_sent);
  free(d_ack);
  return 0;
}

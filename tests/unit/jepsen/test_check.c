/* test_check.c — the history loader and the checkers: each model on small
 * hand-made histories (valid, invalid, with :fail and :info ops), the
 * limits that make a verdict UNKNOWN, and a cross-check of the WGL search
 * against brute force on random register histories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "history.h"
#include "keel_error.h"
#include "kvstate.h"

/* One event line. V is the EDN text of :value. */
#define OP(p, t, f, v)                                                         \
  "{:process " #p ", :type :" #t ", :f :" #f ", :value " v "}\n"
#define KV(p, t, f, k, v)                                                      \
  "{:process " #p ", :type :" #t ", :f :" #f ", :key \"" k "\", :value " v "}" \
  "\n"

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (uint32_t)((rng_state >> 33) % n);
}

struct fixture {
  struct jepsen_history h;
  struct jepsen_check_result r;
};

static void load(struct fixture *fx, enum jepsen_model model,
                 const char *text) {
  char err[512];
  int rc =
      jepsen_history_parse(text, strlen(text), model, &fx->h, err, sizeof(err));
  if (rc != 0)
    fail_msg("history did not load: %s", err);
}

static enum jepsen_verdict run(struct fixture *fx, enum jepsen_model model,
                               const char *text,
                               const struct jepsen_check_opts *opts) {
  struct jepsen_check_opts def;
  jepsen_check_opts_default(&def);
  def.threads = 2;
  load(fx, model, text);
  assert_int_equal(jepsen_check(&fx->h, opts ? opts : &def, &fx->r), 0);
  return fx->r.verdict;
}

static void done(struct fixture *fx) {
  jepsen_check_result_free(&fx->r);
  jepsen_history_free(&fx->h);
}

static enum jepsen_verdict verdict_of(enum jepsen_model model,
                                      const char *text) {
  struct fixture fx;
  enum jepsen_verdict v = run(&fx, model, text, NULL);
  done(&fx);
  return v;
}

#define REG JEPSEN_MODEL_REGISTER

/* ---- register ----------------------------------------------------------- */

static void test_register_sequential(void **state) {
  (void)state;
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, read, "nil") OP(0, ok, read, "nil")
                          OP(0, invoke, write, "1") OP(0, ok, write, "1")
                              OP(1, invoke, read, "nil") OP(1, ok, read, "1")),
      JEPSEN_VALID);
  /* the initial value is nil */
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, read, "nil") OP(0, ok, read, "0")),
      JEPSEN_INVALID);
}

static void test_register_stale_read(void **state) {
  (void)state;
  struct fixture fx;
  const char *text =
      OP(0, invoke, write, "1") OP(0, ok, write, "1") OP(0, invoke, write, "2")
          OP(0, ok, write, "2") OP(1, invoke, read, "nil") OP(1, ok, read, "1");
  assert_int_equal(run(&fx, REG, text, NULL), JEPSEN_INVALID);
  /* The witness ends in the read, which is marked as the stuck point, and
   * still holds both writes (a write can never be dropped soundly). */
  assert_int_equal(fx.r.n_witness, 3);
  assert_true(fx.r.has_stuck_op);
  const struct jepsen_op *stuck = &fx.h.ops[fx.r.stuck_op];
  assert_int_equal(stuck->f, JEPSEN_F_READ);
  assert_int_equal(stuck->invoke_line, 5);
  char out[4096];
  FILE *f = fmemopen(out, sizeof(out), "w");
  jepsen_check_report(&fx.h, &fx.r, f);
  fclose(f);
  assert_non_null(strstr(out, "INVALID"));
  assert_non_null(strstr(out, ":f :read, :value 1}  lines 5-6   <- no order"));
  done(&fx);
}

/* Two examples from MIT 6.824's 2017 quiz, as in porcupine's tests. */
static void test_register_overlapping(void **state) {
  (void)state;
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, write, "100") OP(1, invoke, read, "nil")
                          OP(2, invoke, read, "nil") OP(2, ok, read, "nil")
                              OP(1, ok, read, "100") OP(0, ok, write, "100")),
      JEPSEN_VALID);
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, write, "200") OP(1, invoke, read, "nil")
                          OP(1, ok, read, "200") OP(2, invoke, read, "nil")
                              OP(2, ok, read, "nil") OP(0, ok, write, "200")),
      JEPSEN_INVALID);
}

static void test_register_cas(void **state) {
  (void)state;
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, write, "1") OP(0, ok, write, "1")
                          OP(0, invoke, cas, "[1 2]") OP(0, ok, cas, "[1 2]")
                              OP(1, invoke, read, "nil") OP(1, ok, read, "2")),
      JEPSEN_VALID);
  /* a successful cas from a value the register did not hold */
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, write, "1") OP(0, ok, write, "1")
                          OP(0, invoke, cas, "[3 4]") OP(0, ok, cas, "[3 4]")),
      JEPSEN_INVALID);
  /* strings and keywords are values too */
  assert_int_equal(
      verdict_of(
          REG, OP(0, invoke, write, "\"a\"") OP(0, ok, write, "\"a\"")
                   OP(0, invoke, cas, "[\"a\" :b]") OP(0, ok, cas, "[\"a\" :b]")
                       OP(1, invoke, read, "nil") OP(1, ok, read, ":b")),
      JEPSEN_VALID);
}

static void test_fail_is_dropped(void **state) {
  (void)state;
  /* A :fail op did not happen: nobody may observe its write. */
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, write, "1") OP(0, fail, write, "1")
                          OP(1, invoke, read, "nil") OP(1, ok, read, "1")),
      JEPSEN_INVALID);
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, write, "1") OP(0, fail, write, "1")
                          OP(1, invoke, read, "nil") OP(1, ok, read, "nil")),
      JEPSEN_VALID);
  /* a failed cas neither */
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, cas, "[nil 5]") OP(0, fail, cas, "[nil 5]")
                          OP(1, invoke, read, "nil") OP(1, ok, read, "5")),
      JEPSEN_INVALID);
}

/* :info ops may or may not have happened, at any time after their invoke:
 * never treated as certain either way. */
static void test_info_is_uncertain(void **state) {
  (void)state;
  const char *wrote = OP(0, invoke, write, "1") OP(0, info, write, "1");
  char text[1024];
  snprintf(text, sizeof(text), "%s%s", wrote,
           OP(1, invoke, read, "nil") OP(1, ok, read, "nil"));
  assert_int_equal(verdict_of(REG, text), JEPSEN_VALID); /* not yet, or never */
  snprintf(text, sizeof(text), "%s%s", wrote,
           OP(1, invoke, read, "nil") OP(1, ok, read, "1"));
  assert_int_equal(verdict_of(REG, text), JEPSEN_VALID); /* it happened */
  /* ... but once seen, it happened: it cannot be undone. */
  snprintf(text, sizeof(text), "%s%s", wrote,
           OP(1, invoke, read, "nil") OP(1, ok, read, "1")
               OP(1, invoke, read, "nil") OP(1, ok, read, "nil"));
  assert_int_equal(verdict_of(REG, text), JEPSEN_INVALID);
  /* It may take effect long after its :info completion line. */
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, write, "1") OP(0, info, write, "1")
                          OP(1, invoke, read, "nil") OP(1, ok, read, "nil")
                              OP(1, invoke, read, "nil") OP(1, ok, read, "1")),
      JEPSEN_VALID);
  /* An :info cas may have failed too. */
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, cas, "[nil 1]") OP(0, info, cas, "[nil 1]")
                          OP(1, invoke, read, "nil") OP(1, ok, read, "nil")),
      JEPSEN_VALID);
  /* An :info read's value means nothing. */
  assert_int_equal(
      verdict_of(REG, OP(0, invoke, read, "nil") OP(0, info, read, "77")),
      JEPSEN_VALID);
}

static void test_never_completed_is_info(void **state) {
  (void)state;
  struct fixture fx;
  assert_int_equal(run(&fx, REG,
                       OP(0, invoke, write, "1") OP(1, invoke, read, "nil")
                           OP(1, ok, read, "1") OP(1, invoke, read, "nil")
                               OP(1, ok, read, "1"),
                       NULL),
                   JEPSEN_VALID);
  assert_int_equal(fx.h.n_never_completed, 1);
  assert_true(fx.h.ops[fx.h.n_ops - 1].info);
  done(&fx);
  assert_int_equal(verdict_of(REG, OP(0, invoke, write, "1")
                                       OP(1, invoke, read, "nil")
                                           OP(1, ok, read, "nil")),
                   JEPSEN_VALID);
}

static void test_independent_keys(void **state) {
  (void)state;
  struct fixture fx;
  const char *text = OP(0, invoke, write, "[1 5]") OP(0, ok, write, "[1 5]")
      OP(1, invoke, read, "[1 nil]") OP(1, ok, read, "[1 5]")
          OP(2, invoke, write, "[\"k2\" 6]") OP(2, ok, write, "[\"k2\" 6]")
              OP(3, invoke, cas, "[\"k2\" [6 7]]")
                  OP(3, ok, cas, "[\"k2\" [6 7]]")
                      OP(1, invoke, read, "[\"k2\" nil]")
                          OP(1, ok, read, "[\"k2\" 6]");
  assert_int_equal(run(&fx, REG, text, NULL), JEPSEN_INVALID);
  assert_int_equal(fx.r.keys, 2);
  assert_int_equal(fx.r.keys_invalid, 1);
  assert_string_equal(jepsen_strtab_get(&fx.h.keys, fx.r.bad_key, NULL),
                      "\"k2\"");
  for (size_t i = 0; i < fx.r.n_witness; i++)
    assert_int_equal(fx.h.ops[fx.r.witness[i]].key, fx.r.bad_key);
  done(&fx);
}

/* ---- kv ----------------------------------------------------------------- */

static void test_kv(void **state) {
  (void)state;
  enum jepsen_model kv = JEPSEN_MODEL_KV;
  /* a missing key reads as "" (or nil) */
  assert_int_equal(verdict_of(kv, KV(0, invoke, get, "a", "nil")
                                      KV(0, ok, get, "a", "\"\"")
                                          KV(0, invoke, get, "a", "nil")
                                              KV(0, ok, get, "a", "nil")),
                   JEPSEN_VALID);
  assert_int_equal(
      verdict_of(kv,
                 KV(0, invoke, put, "a", "\"x\"") KV(0, ok, put, "a", "\"x\"")
                     KV(1, invoke, append, "a", "\"y\"")
                         KV(2, invoke, append, "a", "\"z\"")
                             KV(1, ok, append, "a", "\"y\"")
                                 KV(2, ok, append, "a", "\"z\"")
                                     KV(0, invoke, get, "a", "nil")
                                         KV(0, ok, get, "a", "\"xzy\"")),
      JEPSEN_VALID);
  assert_int_equal(
      verdict_of(kv, KV(0, invoke, append, "a", "\"y\"")
                         KV(0, ok, append, "a", "\"y\"")
                             KV(1, invoke, append, "a", "\"z\"")
                                 KV(1, ok, append, "a", "\"z\"")
                                     KV(0, invoke, get, "a", "nil")
                                         KV(0, ok, get, "a", "\"zy\"")),
      JEPSEN_INVALID);
  /* keys are independent: b's put is not seen on a */
  assert_int_equal(verdict_of(kv, KV(0, invoke, put, "b", "\"1\"")
                                      KV(0, ok, put, "b", "\"1\"")
                                          KV(0, invoke, get, "a", "nil")
                                              KV(0, ok, get, "a", "\"1\"")),
                   JEPSEN_INVALID);
  /* an :info put may land later */
  assert_int_equal(
      verdict_of(kv,
                 KV(0, invoke, put, "a", "\"1\"") KV(0, info, put, "a", "\"1\"")
                     KV(1, invoke, get, "a", "nil") KV(1, ok, get, "a", "\"\"")
                         KV(1, invoke, get, "a", "nil")
                             KV(1, ok, get, "a", "\"1\"")),
      JEPSEN_VALID);
}

/* kv state ids are canonical: equal exactly when the strings are, however
 * they were built (put, appends in pieces, empty appends). */
static void test_kv_state_ids_canonical(void **state) {
  (void)state;
  struct jepsen_kv_states k;
  jepsen_kv_init(&k, (size_t)64 << 20);
  enum { N = 3000 };
  static char strs[N][64];
  static uint32_t ids[N];
  static const char *texts[] = {"", "a", "b", "ab", "ba", "aa", "bab"};
  struct jepsen_kv_piece pieces[7];
  for (int i = 0; i < 7; i++)
    jepsen_kv_piece(&pieces[i], texts[i], (uint32_t)strlen(texts[i]));
  rng_state = 5;
  int n = 1;
  strs[0][0] = '\0';
  ids[0] = JEPSEN_KV_EMPTY;
  assert_int_equal(
      jepsen_kv_append(&k, JEPSEN_KV_EMPTY, &pieces[0], 0, &ids[0]), 0);
  assert_int_equal(ids[0], JEPSEN_KV_EMPTY);
  while (n < N) {
    int from = (int)rnd((uint32_t)n), pc = (int)rnd(7);
    if (strlen(strs[from]) + 3 >= sizeof(strs[0]))
      continue;
    /* half the time without the repeat table, as put and get do */
    uint32_t pid = rnd(2) ? (uint32_t)pc : UINT32_MAX;
    assert_int_equal(jepsen_kv_append(&k, ids[from], &pieces[pc], pid, &ids[n]),
                     0);
    /* from < n, so the two never overlap; copied piecewise because gcc
     * cannot prove that for snprintf (-Wrestrict in Debug builds). */
    size_t flen = strlen(strs[from]);
    memcpy(strs[n], strs[from], flen);
    strcpy(strs[n] + flen, texts[pc]);
    n++;
  }
  for (int i = 0; i < N; i++) {
    for (int j = i + 1; j < N; j += 7) {
      bool same = strcmp(strs[i], strs[j]) == 0;
      if (same != (ids[i] == ids[j]))
        fail_msg("'%s' (id %u) vs '%s' (id %u)", strs[i], ids[i], strs[j],
                 ids[j]);
    }
  }
  jepsen_kv_free(&k);
  /* a tiny budget ends in KEEL_ELIMIT, not an overrun */
  jepsen_kv_init(&k, 4096);
  uint32_t id = JEPSEN_KV_EMPTY;
  int rc = 0;
  for (int i = 0; i < 10000 && rc == 0; i++)
    rc = jepsen_kv_append(&k, id, &pieces[1], 1, &id);
  assert_int_equal(rc, KEEL_ELIMIT);
  jepsen_kv_free(&k);
}

/* ---- set ---------------------------------------------------------------- */

static void test_set(void **state) {
  (void)state;
  enum jepsen_model set = JEPSEN_MODEL_SET;
  const char *adds = OP(0, invoke, add, "1") OP(0, ok, add, "1")
      OP(1, invoke, add, "2") OP(1, ok, add, "2");
  char text[2048];
#define SET_CASE(extra, want)                                                  \
  do {                                                                         \
    snprintf(text, sizeof(text), "%s%s", adds, extra);                         \
    assert_int_equal(verdict_of(set, text), want);                             \
  } while (0)
  SET_CASE(OP(2, invoke, read, "nil") OP(2, ok, read, "#{1 2}"), JEPSEN_VALID);
  /* lost: 2 was acknowledged before the final read began */
  SET_CASE(OP(2, invoke, read, "nil") OP(2, ok, read, "[1]"), JEPSEN_INVALID);
  /* invented: nobody added 3 */
  SET_CASE(OP(2, invoke, read, "nil") OP(2, ok, read, "[1 2 3]"),
           JEPSEN_INVALID);
  /* a duplicate in a read */
  SET_CASE(OP(2, invoke, read, "nil") OP(2, ok, read, "[1 2 2]"),
           JEPSEN_INVALID);
  /* an add of unknown outcome may be present ... */
  SET_CASE(OP(3, invoke, add, "3") OP(3, info, add, "3")
               OP(2, invoke, read, "nil") OP(2, ok, read, "[1 2 3]"),
           JEPSEN_VALID);
  /* ... or absent */
  SET_CASE(OP(3, invoke, add, "3") OP(3, info, add, "3")
               OP(2, invoke, read, "nil") OP(2, ok, read, "[1 2]"),
           JEPSEN_VALID);
  /* a failed add did not happen */
  SET_CASE(OP(3, invoke, add, "3") OP(3, fail, add, "3")
               OP(2, invoke, read, "nil") OP(2, ok, read, "[1 2 3]"),
           JEPSEN_INVALID);
  /* an add acknowledged while the final read ran may be missing */
  SET_CASE(OP(2, invoke, read, "nil") OP(3, invoke, add, "3")
               OP(3, ok, add, "3") OP(2, ok, read, "[1 2]"),
           JEPSEN_VALID);
  /* only the final read must be complete; earlier reads may lag */
  SET_CASE(OP(2, invoke, read, "nil") OP(2, ok, read, "[1]")
               OP(2, invoke, read, "nil") OP(2, ok, read, "[2 1]"),
           JEPSEN_VALID);
  /* never read: unknown */
  SET_CASE("", JEPSEN_UNKNOWN);
  /* a read that fails says nothing */
  SET_CASE(OP(2, invoke, read, "nil") OP(2, fail, read, "nil"), JEPSEN_UNKNOWN);
#undef SET_CASE
}

/* ---- limits: UNKNOWN, never a false VALID -------------------------------- */

/* 40 writes that never complete, then a read of a value nobody wrote: the
 * search must try every subset and order of the writes before the read, far
 * more than fits in the limits below. */
static char *hard_history(void) {
  size_t cap = 1 << 14, n = 0;
  char *t = malloc(cap);
  for (int p = 0; p < 40; p++)
    n += (size_t)snprintf(t + n, cap - n,
                          "{:process %d, :type :invoke, :f :write, :value "
                          "%d}\n",
                          p, p);
  snprintf(t + n, cap - n, "%s",
           OP(99, invoke, read, "nil") OP(99, ok, read, "12345"));
  return t;
}

static void test_time_limit_unknown(void **state) {
  (void)state;
  char *text = hard_history();
  struct jepsen_check_opts o;
  jepsen_check_opts_default(&o);
  o.threads = 1;
  o.time_limit = 0.3;
  o.max_memory = (size_t)1 << 30;
  struct fixture fx;
  assert_int_equal(run(&fx, REG, text, &o), JEPSEN_UNKNOWN);
  assert_non_null(strstr(fx.r.reason, "time limit"));
  assert_true(fx.r.seconds < 5.0);
  done(&fx);
  free(text);
}

static void test_memory_bound_unknown(void **state) {
  (void)state;
  char *text = hard_history();
  struct jepsen_check_opts o;
  jepsen_check_opts_default(&o);
  o.threads = 1;
  o.time_limit = 30;
  o.max_memory = (size_t)8 << 20;
  struct fixture fx;
  assert_int_equal(run(&fx, REG, text, &o), JEPSEN_UNKNOWN);
  assert_non_null(strstr(fx.r.reason, "memory bound"));
  done(&fx);
  free(text);
}

/* An invalid key decides the verdict even when another key runs out of
 * time: INVALID is certain, UNKNOWN is not. */
static void test_invalid_beats_unknown(void **state) {
  (void)state;
  size_t cap = 1 << 14, n = 0;
  char *t = malloc(cap);
  for (int p = 0; p < 40; p++)
    n += (size_t)snprintf(t + n, cap - n,
                          "{:process %d, :type :invoke, :f :write, :value "
                          "[:hard %d]}\n",
                          p, p);
  snprintf(t + n, cap - n, "%s",
           OP(99, invoke, read, "[:hard nil]") OP(99, ok, read, "[:hard 777]")
               OP(98, invoke, read, "[:easy nil]")
                   OP(98, ok, read, "[:easy 1]"));
  struct jepsen_check_opts o;
  jepsen_check_opts_default(&o);
  o.threads = 1;
  o.time_limit = 0.5;
  struct fixture fx;
  assert_int_equal(run(&fx, REG, t, &o), JEPSEN_INVALID);
  assert_string_equal(jepsen_strtab_get(&fx.h.keys, fx.r.bad_key, NULL),
                      ":easy");
  done(&fx);
  free(t);
}

/* A long single-key history made linearizable by construction: each op
 * takes effect at its invoke. With a compact cache key (check.c make_key)
 * its search needs memory for the clients' window, not for the whole
 * history: 50 000 ops fit in 32 MiB, where n/64-word bitsets would need
 * several hundred. `corrupt` makes the last read return a value never
 * written. */
static char *long_history(int nops, bool corrupt, size_t *len_out) {
  size_t cap = (size_t)nops * 160, n = 0;
  char *t = malloc(cap);
  int busy[5] = {0}, value = -1, pending_out[5];
  int done_ops = 0;
  static const char *fs[] = {"read", "write", "cas"};
  char vals[5][32];
  while (done_ops < nops) {
    int p = (int)rnd(5);
    if (!busy[p]) {
      int f = (int)rnd(3);
      int a = (int)rnd(5), b = (int)rnd(5);
      if (f == 0) {
        snprintf(vals[p], sizeof(vals[p]), "nil");
        pending_out[p] = value;
      } else if (f == 1) {
        snprintf(vals[p], sizeof(vals[p]), "%d", a);
        value = a;
      } else {
        snprintf(vals[p], sizeof(vals[p]), "[%d %d]", a, b);
        pending_out[p] = value == a; /* did the cas apply */
        if (value == a)
          value = b;
      }
      n += (size_t)snprintf(t + n, cap - n,
                            "{:process %d, :type :invoke, :f :%s, :value %s}\n",
                            p, fs[f], vals[p]);
      busy[p] = 1 + f;
    } else {
      int f = busy[p] - 1;
      const char *type = "ok";
      char out[32];
      snprintf(out, sizeof(out), "%s", vals[p]);
      if (f == 0 && pending_out[p] >= 0)
        snprintf(out, sizeof(out), "%d", pending_out[p]);
      if (f == 2 && !pending_out[p])
        type = "fail";
      if (corrupt && f == 0 && done_ops >= nops - 100) {
        snprintf(out, sizeof(out), "999");
        corrupt = false;
      }
      n += (size_t)snprintf(t + n, cap - n,
                            "{:process %d, :type :%s, :f :%s, :value %s}\n", p,
                            type, fs[f], out);
      busy[p] = 0;
      done_ops++;
    }
  }
  *len_out = n;
  return t;
}

static void test_long_history_compact_cache(void **state) {
  (void)state;
  struct jepsen_check_opts o;
  jepsen_check_opts_default(&o);
  o.threads = 1;
  o.time_limit = 20;
  o.max_memory = (size_t)32 << 20;
  for (int corrupt = 0; corrupt < 2; corrupt++) {
    rng_state = 99;
    size_t len;
    char *text = long_history(50000, corrupt, &len);
    struct fixture fx;
    struct jepsen_limits lim;
    jepsen_limits_default(&lim);
    char err[512];
    FILE *f = fmemopen(text, len, "r");
    assert_int_equal(
        jepsen_history_read(f, "long", REG, &lim, &fx.h, err, sizeof(err)), 0);
    fclose(f);
    o.witness = false;
    assert_int_equal(jepsen_check(&fx.h, &o, &fx.r), 0);
    if (fx.r.verdict != (corrupt ? JEPSEN_INVALID : JEPSEN_VALID))
      fail_msg("corrupt=%d: %s (%s)", corrupt,
               jepsen_verdict_name(fx.r.verdict), fx.r.reason);
    done(&fx);
    free(text);
  }
}

/* ---- the loader refuses bad input, naming the line ----------------------- */

static void expect_load_error(enum jepsen_model model, const char *text,
                              const char *want) {
  struct jepsen_history h;
  char err[512];
  int rc =
      jepsen_history_parse(text, strlen(text), model, &h, err, sizeof(err));
  if (rc == 0)
    fail_msg("history loaded, expected error '%s'", want);
  if (strstr(err, want) == NULL)
    fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_loader_errors(void **state) {
  (void)state;
  expect_load_error(REG, OP(0, invoke, read, "nil") "{:process 0, :f :read}\n",
                    "history:2: missing or non-keyword :type");
  expect_load_error(REG, OP(0, invoke, read, "nil") "{:process 0 :type}\n",
                    "history:2:");
  expect_load_error(REG, "{:process 0, :type :ok, :f :read, :value 1}\n",
                    "history:1: completion for process 0 which has no pending");
  expect_load_error(REG, OP(0, invoke, read, "nil") OP(0, invoke, read, "nil"),
                    "history:2: process 0 invokes again while its op from "
                    "line 1");
  expect_load_error(REG, OP(0, invoke, read, "nil") OP(0, ok, write, "1"),
                    "does not match its invoke's :f :read");
  expect_load_error(REG, OP(0, invoke, cas, "5"), "[from to]");
  expect_load_error(REG, OP(0, invoke, write, "{:a 1}"), "must be nil, a");
  expect_load_error(REG, OP(0, invoke, put, "1"), ":f :put is not an op");
  expect_load_error(REG, OP(0, invoke, read, "nil") OP(0, ok, read, "1.5"),
                    "history:2:");
  expect_load_error(REG, "[1 2]\n", "must be an EDN map");
  expect_load_error(REG,
                    OP(0, invoke, write, "[1 2]") OP(1, invoke, write, "3"),
                    "history:2: this op uses plain values but line 1 used "
                    "[key value] tuples");
  expect_load_error(REG, OP(0, invoke, write, "1") OP(0, weird, write, "1"),
                    ":type :weird");
  expect_load_error(JEPSEN_MODEL_KV, OP(0, invoke, get, "nil"), "needs a :key");
  expect_load_error(JEPSEN_MODEL_KV, KV(0, invoke, put, "a", "1"),
                    "must be a string");
  expect_load_error(JEPSEN_MODEL_SET,
                    OP(0, invoke, read, "nil") OP(0, ok, read, "3"),
                    "must return a vector");
  expect_load_error(REG, "{:process \"x\", :type :invoke, :f :read}\n",
                    ":process must be an integer");
  /* a line over the limit is refused, not cut */
  char *long_line = malloc(8192);
  memset(long_line, ' ', 8190);
  memcpy(long_line, "{:process 0, :type :invoke, :f :read}", 37);
  long_line[8190] = '\n';
  long_line[8191] = '\0';
  expect_load_error(REG, long_line, "history:1: line longer than 4096 bytes");
  free(long_line);
}

static void test_loader_skips_and_counts(void **state) {
  (void)state;
  struct fixture fx;
  const char *text =
      "{:process :nemesis, :type :info, :f :start, :value nil}\n"
      "\n"
      "{:index 0, :time 5, :process 0, :type :invoke, :f :write, :value 1}\n"
      "{:index 1, :time 6, :process 0, :type :fail, :f :write, :value 1}\n"
      "{:index 2, :time 7, :process 1, :type :invoke, :f :write, :value 2}\n"
      "{:index 3, :time 8, :process 1, :type :info, :f :write, :value 2}\n"
      "{:index 4, :time 9, :process 2, :type :invoke, :f :read, :value nil}\n";
  assert_int_equal(run(&fx, REG, text, NULL), JEPSEN_VALID);
  assert_int_equal(fx.h.n_skipped, 1);
  assert_int_equal(fx.h.n_failed, 1);
  assert_int_equal(fx.h.n_info, 1);
  assert_int_equal(fx.h.n_never_completed, 1);
  assert_int_equal(fx.h.n_ops, 2);
  done(&fx);
}

/* Damaged histories never crash the loader or the checker: every damaged
 * input either loads (and is checked) or is refused with a located error. */
static void test_loader_survives_damage(void **state) {
  (void)state;
  const char *good =
      "{:index 0, :time 5, :process 0, :type :invoke, :f :cas, :value [1 "
      "2]}\n"
      "{:index 1, :time 6, :process 0, :type :ok, :f :cas, :value [1 2]}\n"
      "{:process 1, :type :invoke, :f :read, :value [\"k\" nil]}\n"
      "{:process 1, :type :ok, :f :read, :value [\"k\" \"v\\n\"]}\n";
  static const char alphabet[] = "{}[]()#:\"\\ ,;0123456789-Nnil\n\x01";
  rng_state = 7;
  size_t glen = strlen(good);
  char buf[1024];
  int refused = 0;
  for (int round = 0; round < 3000; round++) {
    memcpy(buf, good, glen + 1);
    size_t len = glen;
    int edits = 1 + (int)rnd(4);
    for (int e = 0; e < edits; e++) {
      size_t at = rnd((uint32_t)len);
      switch (rnd(3)) {
      case 0: /* replace */
        buf[at] = alphabet[rnd(sizeof(alphabet) - 1)];
        break;
      case 1: /* delete */
        memmove(buf + at, buf + at + 1, len - at);
        len--;
        break;
      default: /* insert */
        if (len + 2 < sizeof(buf)) {
          memmove(buf + at + 1, buf + at, len - at + 1);
          buf[at] = alphabet[rnd(sizeof(alphabet) - 1)];
          len++;
        }
      }
    }
    for (enum jepsen_model m = JEPSEN_MODEL_REGISTER; m <= JEPSEN_MODEL_KV;
         m++) {
      struct jepsen_history h;
      char err[512] = "";
      int rc = jepsen_history_parse(buf, len, m, &h, err, sizeof(err));
      if (rc != 0) {
        refused++;
        assert_non_null(strstr(err, "history:"));
        continue;
      }
      struct jepsen_check_opts o;
      jepsen_check_opts_default(&o);
      o.threads = 1;
      o.time_limit = 1;
      struct jepsen_check_result r;
      assert_int_equal(jepsen_check(&h, &o, &r), 0);
      jepsen_check_result_free(&r);
      jepsen_history_free(&h);
    }
  }
  assert_true(refused > 1000);
}

/* ---- WGL against brute force --------------------------------------------- */

struct bf {
  struct jepsen_op ops[16];
  size_t n;
  bool used[16];
};

/* Loads ops for the brute force; ops still running at `cut` become :info,
 * as the witness defines them. */
static size_t bf_load(struct bf *b, const struct jepsen_history *h,
                      const uint32_t *idx, size_t n, uint64_t cut) {
  size_t certain = 0;
  memset(b, 0, sizeof(*b));
  for (size_t i = 0; i < n; i++) {
    struct jepsen_op op = h->ops[idx ? idx[i] : i];
    if (op.call > cut)
      continue;
    if (op.info || op.ret > cut) {
      op.info = true;
      op.ret = JEPSEN_RET_INFINITY;
      op.out_known = false;
    }
    b->ops[b->n++] = op;
    certain += op.info ? 0 : 1;
  }
  return certain;
}

/* Can the ops not yet used be ordered (or, for :info, left out) after a
 * prefix that left the register at `value`? */
static bool bf_search(struct bf *b, uint32_t value, size_t left_certain) {
  if (left_certain == 0)
    return true; /* remaining :info ops may simply never happen */
  for (size_t i = 0; i < b->n; i++) {
    if (b->used[i])
      continue;
    const struct jepsen_op *op = &b->ops[i];
    /* op may go next only if no unused op returned before op was called */
    bool minimal = true;
    for (size_t j = 0; j < b->n && minimal; j++) {
      if (!b->used[j] && j != i && !b->ops[j].info && b->ops[j].ret < op->call)
        minimal = false;
    }
    if (!minimal)
      continue;
    uint32_t next = value;
    bool ok = true;
    switch (op->f) {
    case JEPSEN_F_READ:
      ok = !op->out_known || op->out == value;
      break;
    case JEPSEN_F_WRITE:
      next = op->a;
      break;
    case JEPSEN_F_CAS:
      if (value == op->a)
        next = op->b;
      else
        ok = op->info; /* an unknown cas may have failed */
      break;
    }
    if (!ok)
      continue;
    b->used[i] = true;
    bool found = bf_search(b, next, left_certain - (op->info ? 0 : 1));
    b->used[i] = false;
    if (found)
      return true;
  }
  return false;
}

static void test_matches_brute_force(void **state) {
  (void)state;
  rng_state = 20261122;
  int counts[3] = {0, 0, 0};
  int witnesses_smaller = 0;
  for (int round = 0; round < 400; round++) {
    char text[4096];
    size_t len = 0;
    int busy[3] = {0, 0, 0}; /* 0 idle, else 1 + f */
    char val[3][16];
    int nops = 0, events = 0;
    while (events < 40 && (nops < 7 || busy[0] || busy[1] || busy[2])) {
      int p = (int)rnd(3);
      if (!busy[p]) {
        if (nops >= 7)
          continue;
        int f = (int)rnd(3);
        static const char *fs[] = {"read", "write", "cas"};
        if (f == 0)
          snprintf(val[p], sizeof(val[p]), "nil");
        else if (f == 1)
          snprintf(val[p], sizeof(val[p]), "%u", rnd(3));
        else
          snprintf(val[p], sizeof(val[p]), "[%u %u]", rnd(3), rnd(3));
        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                "{:process %d, :type :invoke, :f :%s, :value "
                                "%s}\n",
                                p, fs[f], val[p]);
        busy[p] = 1 + f;
        nops++;
      } else {
        static const char *fs[] = {"read", "write", "cas"};
        int f = busy[p] - 1;
        uint32_t t = rnd(10);
        const char *type = t < 7 ? "ok" : t < 8 ? "fail" : "info";
        char out[16];
        if (f == 0 && t < 7) {
          uint32_t v = rnd(4);
          if (v == 3)
            snprintf(out, sizeof(out), "nil");
          else
            snprintf(out, sizeof(out), "%u", v);
        } else {
          snprintf(out, sizeof(out), "%s", val[p]);
        }
        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                "{:process %d, :type :%s, :f :%s, :value "
                                "%s}\n",
                                p, type, fs[f], out);
        busy[p] = 0;
      }
      events++;
    }
    struct fixture fx;
    enum jepsen_verdict v = run(&fx, REG, text, NULL);
    struct bf b;
    assert_true(fx.h.n_ops <= 16);
    size_t certain = bf_load(&b, &fx.h, NULL, fx.h.n_ops, UINT64_MAX);
    bool expect = bf_search(&b, JEPSEN_VALUE_NIL, certain);
    if (v != (expect ? JEPSEN_VALID : JEPSEN_INVALID))
      fail_msg("round %d: WGL says %s, brute force %s, history:\n%s", round,
               jepsen_verdict_name(v), expect ? "valid" : "invalid", text);
    counts[v]++;
    /* A witness is itself a history that cannot be linearized, and it is
     * never larger than the key's history. */
    if (v == JEPSEN_INVALID) {
      assert_true(fx.r.n_witness > 0);
      assert_true(fx.r.n_witness <= fx.h.n_ops);
      certain =
          bf_load(&b, &fx.h, fx.r.witness, fx.r.n_witness, fx.r.witness_cut);
      if (bf_search(&b, JEPSEN_VALUE_NIL, certain))
        fail_msg("round %d: the witness can be linearized; history:\n%s", round,
                 text);
      witnesses_smaller += fx.r.n_witness < fx.h.n_ops;
    }
    done(&fx);
  }
  /* the generator must produce both kinds, or the test proves little */
  assert_true(counts[JEPSEN_VALID] > 50);
  assert_true(counts[JEPSEN_INVALID] > 50);
  assert_true(witnesses_smaller > 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_register_sequential),
      cmocka_unit_test(test_register_stale_read),
      cmocka_unit_test(test_register_overlapping),
      cmocka_unit_test(test_register_cas),
      cmocka_unit_test(test_fail_is_dropped),
      cmocka_unit_test(test_info_is_uncertain),
      cmocka_unit_test(test_never_completed_is_info),
      cmocka_unit_test(test_independent_keys),
      cmocka_unit_test(test_kv),
      cmocka_unit_test(test_kv_state_ids_canonical),
      cmocka_unit_test(test_set),
      cmocka_unit_test(test_time_limit_unknown),
      cmocka_unit_test(test_memory_bound_unknown),
      cmocka_unit_test(test_invalid_beats_unknown),
      cmocka_unit_test(test_long_history_compact_cache),
      cmocka_unit_test(test_loader_errors),
      cmocka_unit_test(test_loader_skips_and_counts),
      cmocka_unit_test(test_loader_survives_damage),
      cmocka_unit_test(test_matches_brute_force),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

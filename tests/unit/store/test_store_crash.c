/* test_store_crash.c — crash test with real processes.
 *
 * A child process appends batches to the raft log (with the hard state) and
 * applies them (in two txns, or in one for every other batch), telling the
 * parent over a pipe after each batch is durable. The parent SIGKILLs it at a
 * random moment, reopens the store and checks: the applied index is the end of
 * a whole batch, at least the last batch the child acknowledged; the key-value
 * state and the revision equal a simple model after exactly that prefix of
 * batches; every log entry present holds the bytes written for it. Then the
 * next child continues from where the store says it is, so rounds accumulate.
 * The batch contents are a pure function of the seed, so parent and child agree
 * without sharing anything but the directory.
 *
 * KEEL_CRASH_SEED and KEEL_CRASH_ROUNDS reproduce or lengthen a run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "keel_error.h"
#include "store.h"
#include "test_util.h"

#define NK 40
#define MAXB 6

static uint64_t seed0;

static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* One generated batch: entries, their requests and payload bytes. */
struct gbatch {
  int n;
  struct store_request req[MAXB];
  struct store_request_op ops[MAXB][2];
  char key[MAXB][3][16];
  char val[MAXB][32];
  char data[MAXB][32];
  struct store_apply_entry ae[MAXB];
  struct store_entry le[MAXB];
};

static void gen_batch(uint64_t b, uint64_t first_index, struct gbatch *g) {
  uint64_t r = mix(seed0 ^ (b * 0x100000001b3ull));
  memset(g, 0, sizeof(*g));
  g->n = 1 + (int)(r % MAXB);
  for (int i = 0; i < g->n; i++) {
    r = mix(r);
    struct store_request *rq = &g->req[i];
    snprintf(g->key[i][0], 16, "k%02d", (int)(r % NK));
    snprintf(g->key[i][1], 16, "k%02d", (int)((r >> 8) % NK));
    snprintf(g->val[i], 32, "b%" PRIu64 "-%d", b, i);
    int kind = (int)((r >> 16) % 4);
    if (kind <= 1) {
      rq->type = STORE_REQ_PUT;
      rq->u.put.key = (const uint8_t *)g->key[i][0];
      rq->u.put.key_len = 3;
      rq->u.put.value = (const uint8_t *)g->val[i];
      rq->u.put.value_len = strlen(g->val[i]);
    } else if (kind == 2) {
      rq->type = STORE_REQ_DELETE_RANGE;
      rq->u.delete_range.key = (const uint8_t *)g->key[i][0];
      rq->u.delete_range.key_len = 3;
    } else {
      rq->type = STORE_REQ_TXN;
      if (strcmp(g->key[i][0], g->key[i][1]) == 0)
        g->key[i][1][0] = 'j'; /* never the same key twice */
      for (int o = 0; o < 2; o++) {
        g->ops[i][o].type = STORE_OP_PUT;
        g->ops[i][o].u.put.key = (const uint8_t *)g->key[i][o];
        g->ops[i][o].u.put.key_len = 3;
        g->ops[i][o].u.put.value = (const uint8_t *)g->val[i];
        g->ops[i][o].u.put.value_len = strlen(g->val[i]);
      }
      rq->u.txn.success = g->ops[i];
      rq->u.txn.n_success = 2;
    }
    uint64_t idx = first_index + (uint64_t)i;
    g->ae[i] = (struct store_apply_entry){.index = idx, .term = 1, .req = rq};
    int dl = snprintf(g->data[i], 32, "entry-%" PRIu64, idx);
    g->le[i] = (struct store_entry){.index = idx,
                                    .term = 1,
                                    .data = (const uint8_t *)g->data[i],
                                    .len = (size_t)dl};
  }
}

/* --- model -----------------------------------------------------------------
 */

struct mkey {
  bool alive;
  char val[32];
  int64_t create, mod, version;
};
struct model {
  struct mkey k[2 * NK]; /* "k.." and "j.." */
  int64_t rev;
};

static struct mkey *mk_slot(struct model *m, const uint8_t *key) {
  int i = (key[1] - '0') * 10 + (key[2] - '0');
  return &m->k[(key[0] == 'j' ? NK : 0) + i];
}

static void m_put(struct model *m, const struct store_put_req *p, int64_t rev) {
  struct mkey *s = mk_slot(m, p->key);
  if (!s->alive) {
    s->create = rev;
    s->version = 0;
  }
  s->alive = true;
  s->version++;
  s->mod = rev;
  memcpy(s->val, p->value, p->value_len);
  s->val[p->value_len] = 0;
}

static void m_apply(struct model *m, const struct gbatch *g) {
  for (int i = 0; i < g->n; i++) {
    const struct store_request *rq = &g->req[i];
    if (rq->type == STORE_REQ_PUT) {
      m_put(m, &rq->u.put, ++m->rev);
    } else if (rq->type == STORE_REQ_DELETE_RANGE) {
      struct mkey *s = mk_slot(m, rq->u.delete_range.key);
      if (s->alive) {
        s->alive = false;
        m->rev++;
      }
    } else {
      m->rev++;
      for (int o = 0; o < 2; o++)
        m_put(m, &rq->u.txn.success[o].u.put, m->rev);
    }
  }
}

/* --- child -------------------------------------------------------------------
 */

static void child(const char *dir, int wfd) {
  struct store_options o = {.quota_bytes = 64 << 20, .apply_nosync = true};
  struct store *st;
  if (store_open(dir, &o, &st) != 0)
    _exit(2);
  uint64_t applied, term;
  store_applied(st, &applied, &term);
  uint64_t b = 1, index = 1;
  struct gbatch g;
  /* skip the batches already applied */
  for (;;) {
    gen_batch(b, index, &g);
    if (index + (uint64_t)g.n - 1 > applied)
      break;
    index += (uint64_t)g.n;
    b++;
  }
  if (index != applied + 1)
    _exit(3); /* applied index inside a batch: the test fails */
  for (int k = 0; k < 100000; k++) {
    gen_batch(b, index, &g);
    struct store_hard_state hs = {
        .term = 1, .vote = 1, .commit = index + (uint64_t)g.n - 1};
    struct store_apply_batch ab = {.entries = g.ae, .n = (size_t)g.n};
    if (b % 2) {
      /* one txn for the append, the hard state and the apply */
      ab.append = g.le;
      ab.n_append = (size_t)g.n;
      ab.hard_state = &hs;
    } else if (store_log_append(st, g.le, (size_t)g.n, &hs) != 0) {
      _exit(4);
    }
    struct store_apply_result res;
    if (store_apply(st, &ab, &res) != 0)
      _exit(5);
    store_apply_result_free(&res);
    uint64_t last = index + (uint64_t)g.n - 1;
    if (write(wfd, &last, sizeof(last)) != sizeof(last))
      _exit(6);
    index += (uint64_t)g.n;
    b++;
  }
  _exit(0);
}

/* --- parent
 * -------------------------------------------------------------------- */

static int beyond_ack; /* rounds where more was durable than acknowledged */

static uint64_t verify(const char *dir, uint64_t acked) {
  struct store_options o = {.quota_bytes = 64 << 20, .apply_nosync = true};
  struct store *st;
  assert_int_equal(store_open(dir, &o, &st), 0);
  assert_int_equal(store_verify(st), 0);
  uint64_t applied, term;
  store_applied(st, &applied, &term);
  assert_true(applied >= acked);
  if (applied > acked)
    beyond_ack++;
  /* model after the whole batches up to applied */
  struct model m;
  memset(&m, 0, sizeof(m));
  m.rev = 1;
  uint64_t b = 1, index = 1;
  struct gbatch g;
  while (index <= applied) {
    gen_batch(b, index, &g);
    index += (uint64_t)g.n;
    m_apply(&m, &g);
    b++;
  }
  assert_int_equal(index, applied + 1); /* a whole batch boundary */
  int64_t cur;
  store_revisions(st, &cur, NULL);
  assert_int_equal(cur, m.rev);
  struct store_range_req q = {.key = (const uint8_t *)"\0",
                              .key_len = 1,
                              .range_end = (const uint8_t *)"\0",
                              .range_end_len = 1};
  struct store_range_result r;
  assert_int_equal(store_range(st, &q, &r), 0);
  size_t j = 0;
  /* keys sort as j.. before k.. */
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < NK; i++) {
      const struct mkey *s = &m.k[(pass == 0 ? NK : 0) + i];
      if (!s->alive)
        continue;
      assert_true(j < r.resp.n_kvs);
      const struct store_kv *kv = &r.resp.kvs[j++];
      assert_int_equal(kv->mod_revision, s->mod);
      assert_int_equal(kv->create_revision, s->create);
      assert_int_equal(kv->version, s->version);
      assert_int_equal(kv->value_len, strlen(s->val));
      assert_memory_equal(kv->value, s->val, kv->value_len);
    }
  assert_int_equal(j, r.resp.n_kvs);
  store_range_result_free(&r);
  /* the log holds every entry up to at least the applied index */
  uint64_t last = store_log_last_index(st);
  assert_true(last >= applied);
  if (last > 0) {
    struct store_entries e;
    assert_int_equal(store_log_entries(st, 1, last + 1, 0, &e), 0);
    assert_int_equal(e.n, last);
    for (size_t i = 0; i < e.n; i++) {
      char want[32];
      int n = snprintf(want, sizeof(want), "entry-%zu", i + 1);
      assert_int_equal(e.ents[i].len, (size_t)n);
      assert_memory_equal(e.ents[i].data, want, (size_t)n);
    }
    store_entries_free(&e);
  }
  store_close(st);
  return applied;
}

static void test_crash(void **state) {
  (void)state;
  const char *s = getenv("KEEL_CRASH_SEED");
  const char *rs = getenv("KEEL_CRASH_ROUNDS");
  seed0 = s ? strtoull(s, NULL, 0) : 0xc0ffeeull;
  int rounds = rs ? atoi(rs) : 60;
  fprintf(stderr, "crash test seed=%" PRIu64 " rounds=%d\n", seed0, rounds);
  char dir[256];
  tu_tmpdir(dir, sizeof(dir), "crash");
  uint64_t r = seed0, acked = 0;
  for (int round = 0; round < rounds; round++) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(p[0]);
      child(dir, p[1]);
    }
    close(p[1]);
    r = mix(r);
    /* wait for a random number of durable batches, then kill at once or
     * after a short random delay (the child is mid-batch either way) */
    int want = 1 + (int)(r % 40);
    for (int k = 0; k < want; k++) {
      uint64_t last;
      ssize_t n = read(p[0], &last, sizeof(last));
      if (n != sizeof(last))
        break; /* the child died: waitpid tells why */
      acked = last;
    }
    if ((r >> 20) % 2)
      usleep((useconds_t)((r >> 24) % 3000)); /* fault timing, not sync */
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) {
      fprintf(stderr, "child exited with %d (seed %" PRIu64 ")\n",
              WEXITSTATUS(status), seed0);
      fail();
    }
    /* drain acks written before the kill: they were durable too */
    uint64_t last;
    while (read(p[0], &last, sizeof(last)) == sizeof(last))
      acked = last;
    close(p[0]);
    acked = verify(dir, acked);
  }
  fprintf(stderr,
          "crash test: applied index %" PRIu64 " after %d kills; %d "
          "kills landed after a commit the child had not yet reported\n",
          acked, rounds, beyond_ack);
  assert_true(acked > (uint64_t)rounds);
  tu_rmrf(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_crash)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

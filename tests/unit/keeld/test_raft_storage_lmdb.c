/* test_raft_storage_lmdb.c — raft_storage_lmdb (the raft log view over the
 * store) meets the expectations raft_memstore meets
 * (tests/unit/raft/test_raft_storage.c): each check runs on both backends
 * through one small writer interface, and must give the same answers.
 * Plus what only the disk has: the state survives a close and reopen, and a
 * raft core started on it sees the durable log. */
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
#include "raft.h"
#include "raft_storage_lmdb.h"
#include "store.h"

/* One backend: the raft_storage view plus the writes a Ready asks for. */
struct backend {
  struct raft_storage s;
  struct raft_memstore *mem;
  struct store *st;
  char dir[256];
};

static void be_open_lmdb(struct backend *b) {
  struct store_options o = {0};
  o.quota_bytes = 64ull << 20;
  assert_int_equal(store_open(b->dir, &o, &b->st), 0);
  b->s = raft_storage_lmdb(b->st);
}

static void be_new(struct backend *b, bool lmdb) {
  memset(b, 0, sizeof(*b));
  if (lmdb) {
    const char *base = getenv("TMPDIR");
    snprintf(b->dir, sizeof(b->dir), "%s/keel-rslmdb-XXXXXX",
             base ? base : "/tmp");
    assert_non_null(mkdtemp(b->dir));
    be_open_lmdb(b);
  } else {
    assert_int_equal(raft_memstore_new(&b->mem), 0);
    b->s = raft_memstore_storage(b->mem);
  }
}

static void be_free(struct backend *b) {
  if (b->mem)
    raft_memstore_free(b->mem);
  if (b->st) {
    store_close(b->st);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
    assert_int_equal(system(cmd), 0);
  }
}

static int be_append(struct backend *b, uint64_t index, uint64_t term,
                     const char *data) {
  if (b->mem) {
    struct raft_entry e = {term, index, RAFT_ENTRY_NORMAL, (void *)data,
                           strlen(data)};
    return raft_memstore_append(b->mem, &e, 1);
  }
  struct store_entry e = {index, term, STORE_ENTRY_NORMAL,
                          (const uint8_t *)data, strlen(data)};
  return store_log_append(b->st, &e, 1, NULL);
}

static void be_hard_state(struct backend *b, uint64_t term, uint64_t vote,
                          uint64_t commit) {
  if (b->mem) {
    struct raft_hard_state hs = {term, vote, commit};
    raft_memstore_set_hard_state(b->mem, &hs);
    return;
  }
  struct store_hard_state hs = {term, vote, commit};
  assert_int_equal(store_log_save_hard_state(b->st, &hs), 0);
}

/* Snapshot at index with conf, keeping `keep` entries before it. On the
 * store, the entries are applied first (a snapshot covers applied state). */
static void be_compact(struct backend *b, uint64_t index,
                       const struct raft_snapshot_meta *conf, uint64_t keep) {
  if (b->mem) {
    assert_int_equal(raft_memstore_compact(b->mem, index, conf, keep), 0);
    return;
  }
  struct store_apply_entry ae[64];
  uint64_t applied = 0, applied_term = 0;
  assert_int_equal(store_applied(b->st, &applied, &applied_term), 0);
  size_t n = 0;
  for (uint64_t i = applied + 1; i <= index; i++) {
    uint64_t t;
    assert_int_equal(store_log_term(b->st, i, &t), 0);
    ae[n++] = (struct store_apply_entry){i, t, NULL};
  }
  struct store_apply_batch batch = {.entries = ae, .n = n};
  struct store_apply_result res;
  assert_int_equal(store_apply(b->st, &batch, &res), 0);
  store_apply_result_free(&res);
  struct store_snapshot_meta sm = {0};
  sm.index = index;
  assert_int_equal(store_log_term(b->st, index, &sm.term), 0);
  raft_storage_conf_from_lists(conf->voters, conf->n_voters, conf->learners,
                               conf->n_learners, &sm.conf);
  assert_int_equal(store_log_set_snapshot(b->st, &sm), 0);
  assert_int_equal(store_log_compact(b->st, index - keep), 0);
}

static void free_ents(struct raft_entry *e, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(e[i].data);
  free(e);
}

static void check_empty(bool lmdb) {
  struct backend b;
  be_new(&b, lmdb);
  struct raft_storage *s = &b.s;
  assert_int_equal(s->first_index(s->ctx), 1);
  assert_int_equal(s->last_index(s->ctx), 0);
  uint64_t t = 9;
  assert_int_equal(s->term(s->ctx, 0, &t), 0);
  assert_int_equal(t, 0);
  assert_int_equal(s->term(s->ctx, 1, &t), KEEL_ENOTFOUND);
  struct raft_snapshot_meta m;
  assert_int_equal(s->snapshot(s->ctx, &m), 0);
  assert_int_equal(m.index, 0);
  struct raft_hard_state hs = {1, 1, 1};
  assert_int_equal(s->hard_state(s->ctx, &hs), 0);
  assert_int_equal(hs.term + hs.vote + hs.commit, 0);
  be_free(&b);
}

static void check_append_replaces_suffix(bool lmdb) {
  struct backend b;
  be_new(&b, lmdb);
  struct raft_storage *s = &b.s;
  assert_int_equal(be_append(&b, 1, 1, "a"), 0);
  assert_int_equal(be_append(&b, 2, 1, "b"), 0);
  assert_int_equal(be_append(&b, 3, 1, "c"), 0);
  assert_int_equal(be_append(&b, 2, 2, "X"), 0); /* replaces 2, drops 3 */
  assert_int_equal(s->last_index(s->ctx), 2);
  uint64_t t;
  assert_int_equal(s->term(s->ctx, 2, &t), 0);
  assert_int_equal(t, 2);
  assert_int_equal(s->term(s->ctx, 3, &t), KEEL_ENOTFOUND);
  struct raft_entry *out;
  size_t n;
  assert_int_equal(s->entries(s->ctx, 2, 3, 100, &out, &n), 0);
  assert_int_equal(n, 1);
  assert_memory_equal(out[0].data, "X", 1);
  free_ents(out, n);
  assert_int_equal(be_append(&b, 5, 2, "gap"), -EINVAL); /* a hole */
  be_free(&b);
}

static void check_entries_byte_limit(bool lmdb) {
  struct backend b;
  be_new(&b, lmdb);
  struct raft_storage *s = &b.s;
  be_append(&b, 1, 1, "aaaa");
  be_append(&b, 2, 1, "bbbb");
  be_append(&b, 3, 1, "cccc");
  struct raft_entry *out;
  size_t n;
  assert_int_equal(s->entries(s->ctx, 1, 4, 8, &out, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(out[1].index, 2);
  assert_int_equal(out[1].term, 1);
  assert_int_equal(out[1].type, RAFT_ENTRY_NORMAL);
  assert_memory_equal(out[1].data, "bbbb", 4);
  free_ents(out, n);
  /* always at least one entry, even past the limit */
  assert_int_equal(s->entries(s->ctx, 3, 4, 1, &out, &n), 0);
  assert_int_equal(n, 1);
  free_ents(out, n);
  assert_int_equal(s->entries(s->ctx, 1, 4, 1000, &out, &n), 0);
  assert_int_equal(n, 3);
  free_ents(out, n);
  be_free(&b);
}

static void check_compaction_and_snapshot(bool lmdb) {
  struct backend b;
  be_new(&b, lmdb);
  struct raft_storage *s = &b.s;
  for (uint64_t i = 1; i <= 10; i++)
    assert_int_equal(be_append(&b, i, i < 6 ? 1 : 2, "v"), 0);
  be_hard_state(&b, 2, 1, 10);
  struct raft_snapshot_meta conf = {.voters = {1, 2, 3}, .n_voters = 3};
  be_compact(&b, 8, &conf, 2);
  struct raft_snapshot_meta m;
  assert_int_equal(s->snapshot(s->ctx, &m), 0);
  assert_int_equal(m.index, 8);
  assert_int_equal(m.term, 2);
  assert_int_equal(m.n_voters, 3);
  assert_int_equal(m.voters[2], 3);
  assert_int_equal(s->first_index(s->ctx), 7); /* kept 2 entries: 7, 8 */
  assert_int_equal(s->last_index(s->ctx), 10);
  uint64_t t;
  assert_int_equal(s->term(s->ctx, 6, &t), 0); /* the compaction point */
  assert_int_equal(t, 2);
  assert_int_equal(s->term(s->ctx, 5, &t), KEEL_ECOMPACTED);
  struct raft_entry *out;
  size_t n;
  assert_int_equal(s->entries(s->ctx, 5, 9, 100, &out, &n), KEEL_ECOMPACTED);
  struct raft_hard_state hs;
  assert_int_equal(s->hard_state(s->ctx, &hs), 0);
  assert_int_equal(hs.term, 2);
  assert_int_equal(hs.vote, 1);
  assert_int_equal(hs.commit, 10);
  be_free(&b);
}

#define BOTH(name)                                                             \
  static void test_mem_##name(void **state) {                                  \
    (void)state;                                                               \
    check_##name(false);                                                       \
  }                                                                            \
  static void test_lmdb_##name(void **state) {                                 \
    (void)state;                                                               \
    check_##name(true);                                                        \
  }
BOTH(empty)
BOTH(append_replaces_suffix)
BOTH(entries_byte_limit)
BOTH(compaction_and_snapshot)

/* What a restarted keeld sees: the log and hard state are on disk, and a
 * raft core started on the view resumes from them. */
static void test_lmdb_reopen_and_raft_new(void **state) {
  (void)state;
  struct backend b;
  be_new(&b, true);
  for (uint64_t i = 1; i <= 5; i++)
    assert_int_equal(be_append(&b, i, 3, "entry"), 0);
  be_hard_state(&b, 4, 2, 5);
  store_close(b.st);
  be_open_lmdb(&b);
  struct raft_config c = {0};
  c.id = 1;
  c.voters[0] = 1;
  c.voters[1] = 2;
  c.voters[2] = 3;
  c.n_voters = 3;
  c.election_tick = 10;
  c.heartbeat_tick = 1;
  c.max_inflight = 4;
  c.max_msg_bytes = 1024;
  c.max_uncommitted = 100;
  c.storage = b.s;
  struct raft *r = NULL;
  assert_int_equal(raft_new(&c, &r), 0);
  assert_int_equal(raft_term(r), 4);
  assert_int_equal(raft_last_index(r), 5);
  assert_int_equal(raft_committed(r), 5);
  assert_int_equal(raft_log_term(r, 5), 3);
  /* The committed entries are handed out for applying (applied = 0). */
  assert_true(raft_has_ready(r));
  struct raft_ready rd;
  raft_ready(r, &rd);
  assert_int_equal(rd.n_committed, 5);
  assert_memory_equal(rd.committed[4].data, "entry", 5);
  raft_advance(r, &rd);
  raft_free(r);
  be_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mem_empty),
      cmocka_unit_test(test_lmdb_empty),
      cmocka_unit_test(test_mem_append_replaces_suffix),
      cmocka_unit_test(test_lmdb_append_replaces_suffix),
      cmocka_unit_test(test_mem_entries_byte_limit),
      cmocka_unit_test(test_lmdb_entries_byte_limit),
      cmocka_unit_test(test_mem_compaction_and_snapshot),
      cmocka_unit_test(test_lmdb_compaction_and_snapshot),
      cmocka_unit_test(test_lmdb_reopen_and_raft_new),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

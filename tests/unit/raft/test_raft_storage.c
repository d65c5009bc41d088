/* test_raft_storage.c — the raft_storage contract, on raft_memstore: what
 * store/ must implement on LMDB (first/last index, term at the compaction
 * point, entries with a byte limit, conflicting suffixes replaced,
 * snapshots), and raft_new's validation of its configuration. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "raft.h"

static void append(struct raft_memstore *s, uint64_t index, uint64_t term,
                   const char *data) {
  struct raft_entry e = {term, index, RAFT_ENTRY_NORMAL, (void *)data,
                         strlen(data)};
  assert_int_equal(raft_memstore_append(s, &e, 1), 0);
}

static void test_storage_empty(void **state) {
  (void)state;
  struct raft_memstore *s;
  assert_int_equal(raft_memstore_new(&s), 0);
  struct raft_storage st = raft_memstore_storage(s);
  assert_int_equal(st.first_index(s), 1);
  assert_int_equal(st.last_index(s), 0);
  uint64_t t = 9;
  assert_int_equal(st.term(s, 0, &t), 0);
  assert_int_equal(t, 0);
  assert_int_equal(st.term(s, 1, &t), KEEL_ENOTFOUND);
  struct raft_snapshot_meta m;
  assert_int_equal(st.snapshot(s, &m), 0);
  assert_int_equal(m.index, 0);
  raft_memstore_free(s);
}

static void test_storage_append_replaces_suffix(void **state) {
  (void)state;
  struct raft_memstore *s;
  raft_memstore_new(&s);
  struct raft_storage st = raft_memstore_storage(s);
  append(s, 1, 1, "a");
  append(s, 2, 1, "b");
  append(s, 3, 1, "c");
  append(s, 2, 2, "X"); /* replaces 2 and drops 3 */
  assert_int_equal(st.last_index(s), 2);
  uint64_t t;
  assert_int_equal(st.term(s, 2, &t), 0);
  assert_int_equal(t, 2);
  struct raft_entry e = {1, 5, 0, "gap", 3};
  assert_int_equal(raft_memstore_append(s, &e, 1), -EINVAL); /* a hole */
  raft_memstore_free(s);
}

static void test_storage_entries_byte_limit(void **state) {
  (void)state;
  struct raft_memstore *s;
  raft_memstore_new(&s);
  struct raft_storage st = raft_memstore_storage(s);
  append(s, 1, 1, "aaaa");
  append(s, 2, 1, "bbbb");
  append(s, 3, 1, "cccc");
  struct raft_entry *out;
  size_t n;
  assert_int_equal(st.entries(s, 1, 4, 8, &out, &n), 0);
  assert_int_equal(n, 2);
  assert_memory_equal(out[1].data, "bbbb", 4);
  for (size_t i = 0; i < n; i++)
    free(out[i].data);
  free(out);
  /* always at least one entry, even past the limit */
  assert_int_equal(st.entries(s, 3, 4, 1, &out, &n), 0);
  assert_int_equal(n, 1);
  free(out[0].data);
  free(out);
  raft_memstore_free(s);
}

static void test_storage_compaction_and_snapshot(void **state) {
  (void)state;
  struct raft_memstore *s;
  raft_memstore_new(&s);
  struct raft_storage st = raft_memstore_storage(s);
  for (uint64_t i = 1; i <= 10; i++)
    append(s, i, i < 6 ? 1 : 2, "v");
  struct raft_snapshot_meta conf = {.voters = {1, 2, 3}, .n_voters = 3};
  assert_int_equal(raft_memstore_compact(s, 8, &conf, 2), 0);
  struct raft_snapshot_meta m;
  st.snapshot(s, &m);
  assert_int_equal(m.index, 8);
  assert_int_equal(m.term, 2);
  assert_int_equal(m.n_voters, 3);
  assert_int_equal(st.first_index(s), 7); /* kept 2 entries: 7, 8 */
  uint64_t t;
  assert_int_equal(st.term(s, 6, &t), 0); /* the compaction point */
  assert_int_equal(t, 2);
  assert_int_equal(st.term(s, 5, &t), KEEL_ECOMPACTED);
  struct raft_entry *out;
  size_t n;
  assert_int_equal(st.entries(s, 5, 9, 100, &out, &n), KEEL_ECOMPACTED);
  /* compacting backwards or past the log is refused */
  assert_int_equal(raft_memstore_compact(s, 8, &conf, 0), -EINVAL);
  assert_int_equal(raft_memstore_compact(s, 11, &conf, 0), -EINVAL);
  /* installing a snapshot replaces everything */
  struct raft_snapshot_meta inst = {.index = 20, .term = 4};
  assert_int_equal(raft_memstore_apply_snapshot(s, &inst), 0);
  assert_int_equal(st.first_index(s), 21);
  assert_int_equal(st.last_index(s), 20);
  assert_int_equal(st.term(s, 20, &t), 0);
  assert_int_equal(t, 4);
  raft_memstore_free(s);
}

static void test_config_validation(void **state) {
  (void)state;
  struct raft_memstore *s;
  raft_memstore_new(&s);
  struct raft_config c = {0};
  c.id = 1;
  c.voters[0] = 1;
  c.voters[1] = 2;
  c.n_voters = 2;
  c.election_tick = 10;
  c.heartbeat_tick = 1;
  c.max_inflight = 4;
  c.max_msg_bytes = 1024;
  c.max_uncommitted = 100;
  c.storage = raft_memstore_storage(s);
  struct raft *r = NULL;
  assert_int_equal(raft_new(&c, &r), 0);
  raft_free(r);
  struct raft_config bad = c;
  bad.id = 0;
  assert_int_equal(raft_new(&bad, &r), -EINVAL);
  bad = c;
  bad.heartbeat_tick = 10;
  assert_int_equal(raft_new(&bad, &r), -EINVAL);
  bad = c;
  bad.learners[0] = 2; /* both voter and learner */
  bad.n_learners = 1;
  assert_int_equal(raft_new(&bad, &r), -EINVAL);
  bad = c;
  bad.max_inflight = 0;
  assert_int_equal(raft_new(&bad, &r), -EINVAL);
  bad = c;
  bad.storage.term = NULL;
  assert_int_equal(raft_new(&bad, &r), -EINVAL);
  /* a commit index past the log is corruption, not a crash */
  struct raft_hard_state hs = {.term = 1, .vote = 0, .commit = 5};
  raft_memstore_set_hard_state(s, &hs);
  assert_int_equal(raft_new(&c, &r), KEEL_ECORRUPT);
  raft_memstore_free(s);
}

/* A storage that remembers the most entry bytes one entries() call
 * returned: what the core holds in memory at once from the log. */
static uint64_t spy_max_bytes;
static int (*spy_inner)(void *, uint64_t, uint64_t, uint64_t,
                        struct raft_entry **, size_t *);
static int spy_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                       struct raft_entry **out, size_t *n) {
  int rc = spy_inner(ctx, lo, hi, max_bytes, out, n);
  uint64_t bytes = 0;
  for (size_t i = 0; rc == 0 && i < *n; i++)
    bytes += (*out)[i].len;
  if (bytes > spy_max_bytes)
    spy_max_bytes = bytes;
  return rc;
}

/* A restarted node whose applied index is far behind its commit index
 * (a big log to replay) checks for unapplied membership changes before it
 * campaigns: it must read them page by page, not the whole committed tail
 * at once, and still find a change at the end of it. */
static void test_campaign_check_reads_log_in_pages(void **state) {
  (void)state;
  enum { N = 400, LEN = 1000 };
  static char blob[LEN];
  for (int with_cc = 0; with_cc < 2; with_cc++) {
    struct raft_memstore *s;
    raft_memstore_new(&s);
    for (uint64_t i = 1; i <= N; i++) {
      struct raft_entry e = {1, i, RAFT_ENTRY_NORMAL, blob, LEN};
      if (with_cc && i == N)
        e.type = RAFT_ENTRY_CONF_CHANGE;
      assert_int_equal(raft_memstore_append(s, &e, 1), 0);
    }
    struct raft_hard_state hs = {.term = 1, .vote = 0, .commit = N};
    raft_memstore_set_hard_state(s, &hs);
    struct raft_config c = {0};
    c.id = 1;
    c.voters[0] = 1;
    c.voters[1] = 2;
    c.voters[2] = 3;
    c.n_voters = 3;
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.max_inflight = 4;
    c.max_msg_bytes = 4096;
    c.max_uncommitted = 100;
    c.storage = raft_memstore_storage(s);
    spy_inner = c.storage.entries;
    c.storage.entries = spy_entries;
    spy_max_bytes = 0;
    struct raft *r = NULL;
    assert_int_equal(raft_new(&c, &r), 0);
    for (int i = 0; i < 20; i++)
      raft_tick(r);
    assert_true(spy_max_bytes <= c.max_msg_bytes + LEN);
    /* campaigns only without a committed, unapplied change */
    assert_int_equal(raft_role(r) == RAFT_CANDIDATE, !with_cc);
    raft_free(r);
    raft_memstore_free(s);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_storage_empty),
      cmocka_unit_test(test_storage_append_replaces_suffix),
      cmocka_unit_test(test_storage_entries_byte_limit),
      cmocka_unit_test(test_storage_compaction_and_snapshot),
      cmocka_unit_test(test_config_validation),
      cmocka_unit_test(test_campaign_check_reads_log_in_pages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

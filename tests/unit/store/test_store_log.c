/* test_store_log.c — raft log storage: append with conflicting suffixes,
 * hard state, term/entries bounds, max_bytes, compaction of the prefix,
 * snapshot meta, persistence across reopen. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "store.h"
#include "test_util.h"

struct fx {
  char dir[256];
  struct store *st;
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  tu_tmpdir(f->dir, sizeof(f->dir), "log");
  struct store_options o = {.quota_bytes = 16 << 20};
  assert_int_equal(store_open(f->dir, &o, &f->st), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  store_close(f->st);
  tu_rmrf(f->dir);
  free(f);
  return 0;
}

static void mk(struct store_entry *e, uint64_t index, uint64_t term,
               const char *data) {
  e->index = index;
  e->term = term;
  e->type = STORE_ENTRY_NORMAL;
  e->data = (const uint8_t *)data;
  e->len = strlen(data);
}

static void test_append_and_read(void **state) {
  struct fx *f = *state;
  assert_int_equal(store_log_first_index(f->st), 1);
  assert_int_equal(store_log_last_index(f->st), 0);
  struct store_entry e[3];
  mk(&e[0], 1, 1, "one");
  mk(&e[1], 2, 1, "two");
  mk(&e[2], 3, 2, "three");
  struct store_hard_state hs = {.term = 2, .vote = 7, .commit = 1};
  assert_int_equal(store_log_append(f->st, e, 3, &hs), 0);
  assert_int_equal(store_log_last_index(f->st), 3);
  uint64_t t;
  assert_int_equal(store_log_term(f->st, 3, &t), 0);
  assert_int_equal(t, 2);
  assert_int_equal(store_log_term(f->st, 0, &t), 0); /* the base */
  assert_int_equal(t, 0);
  assert_int_equal(store_log_term(f->st, 4, &t), KEEL_ENOTFOUND);
  struct store_entries out;
  assert_int_equal(store_log_entries(f->st, 1, 4, 0, &out), 0);
  assert_int_equal(out.n, 3);
  assert_memory_equal(out.ents[2].data, "three", 5);
  assert_int_equal(out.ents[2].term, 2);
  store_entries_free(&out);
  /* max_bytes: at least one entry, then stop before passing the limit */
  assert_int_equal(store_log_entries(f->st, 1, 4, 1, &out), 0);
  assert_int_equal(out.n, 1);
  store_entries_free(&out);
  assert_int_equal(store_log_entries(f->st, 1, 4, 6, &out), 0);
  assert_int_equal(out.n, 2);
  store_entries_free(&out);
  assert_int_equal(store_log_entries(f->st, 2, 5, 0, &out), KEEL_ENOTFOUND);
  assert_int_equal(store_log_entries(f->st, 2, 2, 0, &out), -EINVAL);
  struct store_hard_state got;
  assert_int_equal(store_log_load_state(f->st, &got, NULL), 0);
  assert_int_equal(got.term, 2);
  assert_int_equal(got.vote, 7);
  assert_int_equal(got.commit, 1);
}

static void test_conflicting_suffix(void **state) {
  struct fx *f = *state;
  struct store_entry e[4];
  mk(&e[0], 1, 1, "a");
  mk(&e[1], 2, 1, "b");
  mk(&e[2], 3, 1, "c");
  mk(&e[3], 4, 1, "d");
  assert_int_equal(store_log_append(f->st, e, 4, NULL), 0);
  /* leader of term 2 overwrites from index 3 */
  struct store_entry n[2];
  mk(&n[0], 2, 1, "b"); /* same: kept */
  mk(&n[1], 3, 2, "C");
  assert_int_equal(store_log_append(f->st, n, 2, NULL), 0);
  assert_int_equal(store_log_last_index(f->st), 3);
  struct store_entries out;
  assert_int_equal(store_log_entries(f->st, 1, 4, 0, &out), 0);
  assert_int_equal(out.n, 3);
  assert_memory_equal(out.ents[2].data, "C", 1);
  assert_int_equal(out.ents[2].term, 2);
  store_entries_free(&out);
  /* a gap is refused, and so is replacing a committed entry */
  struct store_entry g;
  mk(&g, 9, 2, "gap");
  assert_int_equal(store_log_append(f->st, &g, 1, NULL), -EINVAL);
  struct store_hard_state hs = {.term = 2, .commit = 3};
  assert_int_equal(store_log_save_hard_state(f->st, &hs), 0);
  mk(&g, 3, 3, "bad");
  assert_int_equal(store_log_append(f->st, &g, 1, NULL), -EINVAL);
  assert_int_equal(store_log_last_index(f->st), 3);
}

static void test_compact_and_reopen(void **state) {
  struct fx *f = *state;
  struct store_entry e[10];
  char data[10][8];
  for (int i = 0; i < 10; i++) {
    snprintf(data[i], sizeof(data[i]), "e%d", i + 1);
    mk(&e[i], (uint64_t)i + 1, 1 + (uint64_t)i / 4, data[i]);
  }
  assert_int_equal(store_log_append(f->st, e, 10, NULL), 0);
  /* compaction needs the entries applied first */
  assert_int_equal(store_log_compact(f->st, 5), -EINVAL);
  struct store_apply_entry ae[6];
  for (int i = 0; i < 6; i++)
    ae[i] = (struct store_apply_entry){.index = (uint64_t)i + 1, .term = 1};
  struct store_apply_batch b = {.entries = ae, .n = 6};
  struct store_apply_result r;
  assert_int_equal(store_apply(f->st, &b, &r), 0);
  store_apply_result_free(&r);
  assert_int_equal(store_log_compact(f->st, 5), 0);
  assert_int_equal(store_log_first_index(f->st), 6);
  uint64_t t;
  assert_int_equal(store_log_term(f->st, 5, &t), 0);
  assert_int_equal(t, 2);
  assert_int_equal(store_log_term(f->st, 4, &t), KEEL_ECOMPACTED);
  struct store_entries out;
  assert_int_equal(store_log_entries(f->st, 5, 7, 0, &out), KEEL_ECOMPACTED);
  struct store_snapshot_meta sm = {.index = 5, .term = 2};
  sm.conf.n_voters = 3;
  sm.conf.voters[0] = 1;
  sm.conf.voters[1] = 2;
  sm.conf.voters[2] = 3;
  assert_int_equal(store_log_set_snapshot(f->st, &sm), 0);
  store_close(f->st);
  struct store_options o = {.quota_bytes = 16 << 20};
  assert_int_equal(store_open(f->dir, &o, &f->st), 0);
  assert_int_equal(store_log_first_index(f->st), 6);
  assert_int_equal(store_log_last_index(f->st), 10);
  assert_int_equal(store_log_entries(f->st, 6, 11, 0, &out), 0);
  assert_int_equal(out.n, 5);
  assert_memory_equal(out.ents[4].data, "e10", 3);
  store_entries_free(&out);
  struct store_snapshot_meta got;
  assert_int_equal(store_log_get_snapshot(f->st, &got), 0);
  assert_int_equal(got.index, 5);
  assert_int_equal(got.conf.n_voters, 3);
  assert_int_equal(got.conf.voters[2], 3);
  uint64_t ai, at;
  store_applied(f->st, &ai, &at);
  assert_int_equal(ai, 6);
}

static void test_apply_index_rules(void **state) {
  struct fx *f = *state;
  struct store_apply_entry ae[2] = {{.index = 2, .term = 1},
                                    {.index = 3, .term = 1}};
  struct store_apply_batch b = {.entries = ae, .n = 2};
  struct store_apply_result r;
  /* first entry must be applied + 1 */
  assert_int_equal(store_apply(f->st, &b, &r), -EINVAL);
  ae[0].index = 1;
  ae[1].index = 2;
  assert_int_equal(store_apply(f->st, &b, &r), 0);
  store_apply_result_free(&r);
  /* re-applying is skipped, never applied twice */
  ae[0].index = 2;
  ae[1].index = 3;
  assert_int_equal(store_apply(f->st, &b, &r), 0);
  assert_int_equal(r.responses[0].error, KEEL_EEXIST);
  assert_int_equal(r.responses[1].error, 0);
  store_apply_result_free(&r);
  uint64_t ai, at;
  store_applied(f->st, &ai, &at);
  assert_int_equal(ai, 3);
}

/* Append, hard state and apply in one txn: all or nothing. */
static void test_append_with_apply(void **state) {
  struct fx *f = *state;
  struct store_entry e[2];
  mk(&e[0], 1, 1, "x");
  mk(&e[1], 2, 1, "y");
  struct store_request rq = {.type = STORE_REQ_PUT};
  rq.u.put.key = (const uint8_t *)"k";
  rq.u.put.key_len = 1;
  struct store_apply_entry ae[2] = {{.index = 1, .term = 1, .req = &rq},
                                    {.index = 2, .term = 1}};
  struct store_hard_state hs = {.term = 1, .commit = 2};
  struct store_apply_batch b = {
      .entries = ae, .n = 2, .append = e, .n_append = 2, .hard_state = &hs};
  struct store_apply_result r;
  assert_int_equal(store_apply(f->st, &b, &r), 0);
  store_apply_result_free(&r);
  assert_int_equal(store_log_last_index(f->st), 2);
  uint64_t ai, at;
  store_applied(f->st, &ai, &at);
  assert_int_equal(ai, 2);
  /* a bad append (gap) fails the whole batch: nothing applied */
  struct store_entry g;
  mk(&g, 7, 1, "gap");
  ae[0].index = 3;
  b.n = 1;
  b.append = &g;
  b.n_append = 1;
  assert_int_equal(store_apply(f->st, &b, &r), -EINVAL);
  store_applied(f->st, &ai, &at);
  assert_int_equal(ai, 2);
  int64_t cur;
  store_revisions(f->st, &cur, NULL);
  assert_int_equal(cur, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_append_and_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_conflicting_suffix, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compact_and_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_apply_index_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_append_with_apply, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

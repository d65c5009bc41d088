/* test_store_lessor.c — lease deadlines: expiry order, renew, followers
 * never expire, promotion extends (checkpointed) TTLs, retry of reported
 * expiries, checkpoints, the bound, and a randomized check of the heap and
 * hash table against a brute-force list. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "store_lessor.h"

static void test_expiry_and_renew(void **state) {
  (void)state;
  struct store_lessor *l;
  struct store_lessor_options o = {.min_ttl_s = 2};
  assert_int_equal(store_lessor_create(&o, &l), 0);
  store_lessor_promote(l, 0, 0);
  assert_int_equal(store_lessor_add(l, 1, 10, 0, 0), 0);
  assert_int_equal(store_lessor_add(l, 2, 1, 0, 0), 0); /* raised to 2 s */
  assert_int_equal(store_lessor_add(l, 3, 5, 0, 0), 0);
  assert_int_equal(store_lessor_add(l, 3, 5, 0, 0), KEEL_ELEASEEXISTS);
  int64_t ids[4];
  assert_int_equal(store_lessor_expired(l, 1999, ids, 4), 0);
  assert_int_equal(store_lessor_expired(l, 5000, ids, 4), 2);
  assert_int_equal(ids[0], 2);
  assert_int_equal(ids[1], 3);
  /* reported ones come back only after the retry interval */
  assert_int_equal(store_lessor_expired(l, 5001, ids, 4), 0);
  int64_t ttl;
  assert_int_equal(store_lessor_renew(l, 1, 9000, &ttl), 0);
  assert_int_equal(ttl, 10);
  int64_t rem, granted;
  assert_int_equal(store_lessor_time_to_live(l, 1, 9500, &rem, &granted), 0);
  assert_int_equal(rem, 10); /* 9.5 s left, rounded up */
  assert_int_equal(store_lessor_revoke(l, 2), 0);
  assert_int_equal(store_lessor_revoke(l, 2), KEEL_ELEASENOTFOUND);
  assert_int_equal(store_lessor_expired(l, 8001, ids, 4), 1); /* 3 again */
  assert_int_equal(ids[0], 3);
  store_lessor_free(l);
}

static void test_leader_change_extends(void **state) {
  (void)state;
  struct store_lessor *l;
  assert_int_equal(store_lessor_create(NULL, &l), 0);
  /* a follower keeps leases but never expires them */
  assert_int_equal(store_lessor_add(l, 7, 10, 0, 0), 0);
  assert_int_equal(store_lessor_add(l, 8, 60, 0, 0), 0);
  int64_t ids[4], ttl;
  assert_int_equal(store_lessor_expired(l, 1000000, ids, 4), 0);
  assert_int_equal(store_lessor_renew(l, 7, 0, &ttl), KEEL_ENOTLEADER);
  /* a checkpoint said lease 8 had 5 s left */
  assert_int_equal(store_lessor_checkpoint(l, 8, 5), 0);
  store_lessor_promote(l, 1000000, 2000);
  /* nothing expires at the moment of the leader change */
  assert_int_equal(store_lessor_expired(l, 1000000, ids, 4), 0);
  assert_int_equal(store_lessor_expired(l, 1006999, ids, 4), 0);
  assert_int_equal(store_lessor_expired(l, 1007000, ids, 4), 1);
  assert_int_equal(ids[0], 8);                    /* 5 s + 2 s extension */
  assert_int_equal(store_lessor_revoke(l, 8), 0); /* the expiry applied */
  assert_int_equal(store_lessor_expired(l, 1012000, ids, 4), 1);
  assert_int_equal(ids[0], 7); /* 10 s + 2 s */
  store_lessor_demote(l);
  assert_int_equal(store_lessor_expired(l, 9000000, ids, 4), 0);
  store_lessor_free(l);
}

static void test_checkpoints_and_bound(void **state) {
  (void)state;
  struct store_lessor *l;
  struct store_lessor_options o = {.checkpoint_interval_ms = 1000,
                                   .max_leases = 3};
  assert_int_equal(store_lessor_create(&o, &l), 0);
  store_lessor_promote(l, 0, 0);
  assert_int_equal(store_lessor_add(l, 1, 100, 0, 0), 0);
  assert_int_equal(store_lessor_add(l, 2, 1, 0, 0), 0);
  assert_int_equal(store_lessor_add(l, 3, 100, 0, 0), 0);
  assert_int_equal(store_lessor_add(l, 4, 100, 0, 0), KEEL_ELIMIT);
  struct store_lessor_cp cp[4];
  assert_int_equal(store_lessor_checkpoints(l, 500, cp, 4), 0);
  size_t n = store_lessor_checkpoints(l, 1000, cp, 4);
  assert_int_equal(n, 2); /* lease 2 expires before its next checkpoint */
  assert_int_equal(cp[0].remaining_s, 99);
  assert_int_equal(store_lessor_checkpoints(l, 1500, cp, 4), 0);
  store_lessor_free(l);
}

/* Random adds/revokes/renews against a plain array. */
static void test_random_against_list(void **state) {
  (void)state;
  struct store_lessor *l;
  assert_int_equal(store_lessor_create(NULL, &l), 0);
  store_lessor_promote(l, 0, 0);
  struct {
    int64_t id, deadline;
    bool live, reported;
  } ref[400];
  memset(ref, 0, sizeof(ref));
  srand(1234);
  int64_t now = 0;
  for (int step = 0; step < 20000; step++) {
    now += rand() % 50;
    int i = rand() % 400;
    int op = rand() % 4;
    if (op == 0 && !ref[i].live) {
      int64_t ttl = 1 + rand() % 20;
      assert_int_equal(store_lessor_add(l, i + 1, ttl, 0, now), 0);
      ref[i] = (typeof(ref[0])){i + 1, now + ttl * 1000, true, false};
    } else if (op == 1 && ref[i].live) {
      assert_int_equal(store_lessor_revoke(l, i + 1), 0);
      ref[i].live = false;
    } else if (op == 2 && ref[i].live) {
      int64_t ttl;
      assert_int_equal(store_lessor_renew(l, i + 1, now, &ttl), 0);
      ref[i].deadline = now + ttl * 1000;
      ref[i].reported = false;
    } else if (op == 3) {
      int64_t ids[400];
      size_t n = store_lessor_expired(l, now, ids, 400);
      for (size_t k = 0; k < n; k++) {
        int j = (int)ids[k] - 1;
        assert_true(ref[j].live);
        assert_true(ref[j].deadline <= now);
        ref[j].reported = true;
      }
      /* everything due and never reported was reported now */
      for (int j = 0; j < 400; j++)
        if (ref[j].live && ref[j].deadline <= now)
          assert_true(ref[j].reported);
      /* keep them from being reported again by revoking them */
      for (size_t k = 0; k < n; k++) {
        assert_int_equal(store_lessor_revoke(l, ids[k]), 0);
        ref[ids[k] - 1].live = false;
      }
    }
  }
  size_t live = 0;
  for (int j = 0; j < 400; j++)
    live += ref[j].live;
  assert_int_equal(store_lessor_count(l), live);
  store_lessor_free(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_expiry_and_renew),
      cmocka_unit_test(test_leader_change_extends),
      cmocka_unit_test(test_checkpoints_and_bound),
      cmocka_unit_test(test_random_against_list),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_nemesis.c — the pure parts of the nemesis: the fault schedule and
 * the node choices (partition grudges, kill/pause targets), checked rule by
 * rule over many seeds and both cluster sizes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "nemesis.h"

#define SEEDS 500

static int popcount(uint32_t x) {
  return __builtin_popcount(x);
}

static void test_parse(void **state) {
  (void)state;
  uint32_t m;
  char err[200];
  assert_int_equal(jepsen_nemesis_parse("kill,partition", &m, err, 200), 0);
  assert_int_equal(m, (1u << JEPSEN_NEM_KILL) | (1u << JEPSEN_NEM_PARTITION));
  assert_int_equal(jepsen_nemesis_parse("none", &m, err, 200), 0);
  assert_int_equal(m, 0);
  assert_int_equal(
      jepsen_nemesis_parse("kill,pause,partition,clock,member", &m, err, 200),
      0);
  assert_int_equal(m, 31);
  assert_int_not_equal(jepsen_nemesis_parse("kill,nuke", &m, err, 200), 0);
  assert_non_null(strstr(err, "'nuke'"));
  assert_int_not_equal(jepsen_nemesis_parse("killx", &m, err, 200), 0);
}

/* Field by field: the struct has padding. */
static bool same_events(const struct jepsen_sched_event *a,
                        const struct jepsen_sched_event *b, size_t n) {
  for (size_t k = 0; k < n; k++)
    if (a[k].at != b[k].at || a[k].heal != b[k].heal ||
        a[k].fault.nemesis != b[k].fault.nemesis ||
        a[k].fault.variant != b[k].fault.variant)
      return false;
  return true;
}

static void test_schedule_shape(void **state) {
  (void)state;
  struct jepsen_sched_event ev[256];
  size_t n;
  for (uint64_t seed = 0; seed < SEEDS; seed++) {
    uint32_t mask = (uint32_t)(seed % 31) + 1;
    double interval = 1 + (double)(seed % 7);
    double limit = 30 + (double)(seed % 50);
    assert_int_equal(jepsen_schedule(mask, interval, limit, seed, ev, 256, &n),
                     0);
    /* fault at (2k+1)i, heal at (2k+2)i while the heal fits */
    size_t expect = 0;
    while ((2.0 * (double)(expect / 2) + 2.0) * interval <= limit)
      expect += 2;
    assert_int_equal(n, expect);
    for (size_t k = 0; k < n; k++) {
      assert_true(ev[k].heal == (k % 2 == 1));
      assert_true(ev[k].at <= limit);
      if (k)
        assert_true(ev[k].at > ev[k - 1].at);
      assert_true(mask & (1u << ev[k].fault.nemesis));
      assert_true(ev[k].fault.variant <
                  jepsen_nemesis_variants(ev[k].fault.nemesis));
      if (ev[k].heal) /* a heal undoes the fault just before it */
        assert_memory_equal(&ev[k].fault, &ev[k - 1].fault,
                            sizeof(ev[k].fault));
    }
  }
  /* The same seed gives the same schedule; another seed another one. */
  struct jepsen_sched_event a[64], b[64];
  size_t na, nb;
  assert_int_equal(jepsen_schedule(31, 1, 60, 42, a, 64, &na), 0);
  assert_int_equal(jepsen_schedule(31, 1, 60, 42, b, 64, &nb), 0);
  assert_int_equal(na, nb);
  assert_true(same_events(a, b, na));
  assert_int_equal(jepsen_schedule(31, 1, 60, 43, b, 64, &nb), 0);
  assert_false(same_events(a, b, na));
}

static void test_schedule_covers_variants(void **state) {
  (void)state;
  /* Over a long schedule every nemesis and variant shows up. */
  static struct jepsen_sched_event ev[4096];
  size_t n;
  assert_int_equal(jepsen_schedule(31, 1, 2000, 7, ev, 4096, &n), 0);
  int seen[JEPSEN_NEM__COUNT][8] = {{0}};
  for (size_t k = 0; k < n; k += 2)
    seen[ev[k].fault.nemesis][ev[k].fault.variant]++;
  for (int m = 0; m < JEPSEN_NEM__COUNT; m++)
    for (unsigned v = 0; v < jepsen_nemesis_variants(m); v++)
      assert_true(seen[m][v] > 0);
}

static void test_schedule_limits(void **state) {
  (void)state;
  struct jepsen_sched_event ev[8];
  size_t n;
  assert_int_equal(jepsen_schedule(0, 1, 10, 1, ev, 8, &n), 0);
  assert_int_equal(n, 0);
  /* Shorter than one fault and its heal: nothing. */
  assert_int_equal(jepsen_schedule(1, 5, 9, 1, ev, 8, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(jepsen_schedule(1, 5, 10, 1, ev, 8, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(jepsen_schedule(1, 1, 100, 1, ev, 8, &n), KEEL_ELIMIT);
  assert_int_equal(jepsen_schedule(1, 0, 100, 1, ev, 8, &n), -EINVAL);
  assert_int_equal(jepsen_schedule(1, 1, -1, 1, ev, 8, &n), -EINVAL);
  assert_int_equal(jepsen_schedule(1u << 9, 1, 10, 1, ev, 8, &n), -EINVAL);
}

static bool symmetric(const struct jepsen_grudge *g) {
  for (int i = 0; i < g->n; i++)
    for (int j = 0; j < g->n; j++)
      if (((g->drop[i] >> j) & 1) != ((g->drop[j] >> i) & 1))
        return false;
  return true;
}

/* Two non-empty groups, covering all nodes, each fully cut from the
 * other and whole inside. */
static bool two_groups(const struct jepsen_grudge *g, uint32_t *group_a) {
  uint32_t all = (1u << g->n) - 1;
  uint32_t a = (all & ~g->drop[0]);
  uint32_t b = all & ~a;
  if (!a || !b)
    return false;
  for (int i = 0; i < g->n; i++) {
    uint32_t other = (a & (1u << i)) ? b : a;
    if (g->drop[i] != other)
      return false;
  }
  *group_a = a;
  return true;
}

static void test_grudges(void **state) {
  (void)state;
  for (int n = 3; n <= 7; n++) {
    uint32_t all = (1u << n) - 1;
    for (uint64_t seed = 0; seed < SEEDS; seed++) {
      struct jepsen_rng rng;
      jepsen_rng_seed(&rng, seed);
      struct jepsen_grudge g;
      uint32_t a;
      int leader = (int)(seed % (uint64_t)(n + 1)) - 1; /* -1 .. n-1 */
      for (int v = 0; v < JEPSEN_PART__COUNT; v++) {
        assert_int_equal(jepsen_grudge_make(v, n, leader, &rng, &g), 0);
        assert_int_equal(g.n, n);
        for (int i = 0; i < n; i++) {
          assert_false(g.drop[i] & (1u << i)); /* never itself */
          assert_int_equal(g.drop[i] & ~all, 0);
        }
        switch (v) {
        case JEPSEN_PART_HALVES:
          assert_true(symmetric(&g));
          assert_true(two_groups(&g, &a));
          assert_true(popcount(a) == n / 2 || popcount(a) == n - n / 2);
          break;
        case JEPSEN_PART_LEADER:
          assert_true(symmetric(&g));
          assert_true(two_groups(&g, &a));
          assert_true(popcount(a) == 1 || popcount(a) == n - 1);
          if (leader >= 0)
            assert_int_equal(g.drop[leader], all & ~(1u << leader));
          break;
        case JEPSEN_PART_BRIDGE: {
          assert_true(symmetric(&g));
          int bridges = 0;
          for (int i = 0; i < n; i++)
            bridges += g.drop[i] == 0;
          assert_int_equal(bridges, 1);
          /* Everyone else drops exactly the other side. */
          for (int i = 0; i < n; i++)
            if (g.drop[i])
              for (int j = 0; j < n; j++)
                if (g.drop[i] & (1u << j))
                  assert_false(g.drop[j] & g.drop[i]);
          break;
        }
        case JEPSEN_PART_RING: {
          int m = n / 2 + 1;
          for (int i = 0; i < n; i++)
            assert_int_equal(popcount(all & ~g.drop[i]), m);
          if (m % 2) /* centred windows: n = 4, 5 */
            assert_true(symmetric(&g));
          if (n >= 5)
            for (int i = 0; i < n; i++)
              for (int j = i + 1; j < n; j++)
                assert_int_not_equal(g.drop[i], g.drop[j]);
          break;
        }
        case JEPSEN_PART_ONE_WAY: {
          uint32_t droppers = 0, dropped = 0;
          for (int i = 0; i < n; i++)
            if (g.drop[i]) {
              droppers |= 1u << i;
              dropped |= g.drop[i];
            }
          assert_int_equal(droppers & dropped, 0);
          assert_int_equal(droppers | dropped, all);
          for (int i = 0; i < n; i++)
            if (g.drop[i])
              assert_int_equal(g.drop[i], dropped);
          break;
        }
        }
      }
    }
  }
  struct jepsen_rng rng;
  jepsen_rng_seed(&rng, 1);
  struct jepsen_grudge g;
  assert_int_equal(jepsen_grudge_make(JEPSEN_PART_HALVES, 1, -1, &rng, &g),
                   -EINVAL);
  assert_int_equal(jepsen_grudge_make(JEPSEN_PART_HALVES, 8, -1, &rng, &g),
                   -EINVAL);
  assert_int_equal(jepsen_grudge_make(JEPSEN_PART_LEADER, 3, 3, &rng, &g),
                   -EINVAL);
}

static void test_targets(void **state) {
  (void)state;
  for (int n = 3; n <= 7; n++)
    for (uint64_t seed = 0; seed < SEEDS; seed++) {
      struct jepsen_rng rng;
      jepsen_rng_seed(&rng, seed);
      int leader = (int)(seed % (uint64_t)n);
      assert_int_equal(
          popcount(jepsen_pick_targets(JEPSEN_TGT_ONE, n, -1, &rng)), 1);
      assert_int_equal(jepsen_pick_targets(JEPSEN_TGT_LEADER, n, leader, &rng),
                       1u << leader);
      assert_int_equal(
          popcount(jepsen_pick_targets(JEPSEN_TGT_LEADER, n, -1, &rng)), 1);
      uint32_t mi = jepsen_pick_targets(JEPSEN_TGT_MINORITY, n, -1, &rng);
      uint32_t ma = jepsen_pick_targets(JEPSEN_TGT_MAJORITY, n, -1, &rng);
      assert_int_equal(popcount(mi), (n - 1) / 2);
      assert_true(popcount(mi) * 2 < n);
      assert_int_equal(popcount(ma), n / 2 + 1);
      assert_true(popcount(ma) * 2 > n);
      assert_int_equal((mi | ma) & ~((1u << n) - 1), 0);
    }
}

static void test_describe(void **state) {
  (void)state;
  struct jepsen_grudge g = {.n = 3, .drop = {0x6, 0x1, 0x1}};
  char buf[128];
  jepsen_grudge_describe(&g, buf, sizeof(buf));
  assert_string_equal(buf, "n1 drops n2,n3; n2 drops n1; n3 drops n1");
  struct jepsen_grudge none = {.n = 3};
  jepsen_grudge_describe(&none, buf, sizeof(buf));
  assert_string_equal(buf, "nobody drops anything");
  char tiny[8];
  jepsen_grudge_describe(&g, tiny, sizeof(tiny)); /* truncates, no overrun */
  assert_true(strlen(tiny) < sizeof(tiny));
}

static void test_rng_below(void **state) {
  (void)state;
  struct jepsen_rng rng;
  jepsen_rng_seed(&rng, 9);
  int counts[5] = {0};
  for (int i = 0; i < 50000; i++)
    counts[jepsen_rng_below(&rng, 5)]++;
  for (int k = 0; k < 5; k++)
    assert_true(counts[k] > 9000 && counts[k] < 11000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_schedule_shape),
      cmocka_unit_test(test_schedule_covers_variants),
      cmocka_unit_test(test_schedule_limits),
      cmocka_unit_test(test_grudges),
      cmocka_unit_test(test_targets),
      cmocka_unit_test(test_describe),
      cmocka_unit_test(test_rng_below),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

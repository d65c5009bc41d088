/* test_metrics.c — the Prometheus text format of keeld's /metrics
 * (server/metrics.h): HELP/TYPE lines, plain and labelled samples, integer
 * and fractional numbers, histogram buckets that are cumulative and end in
 * +Inf = count, label value escaping, and the page size limit (the buffer
 * stops, remembers KEEL_ELIMIT and never passes the limit). The figures of
 * a running node are checked end to end (tests/e2e/keeld/maint.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "metrics.h"

static void test_samples_and_families(void **state) {
  (void)state;
  struct metrics_buf b;
  metrics_buf_init(&b, 1 << 16);
  metrics_family(&b, "keel_raft_term", "Current raft term.", "gauge");
  metrics_sample(&b, "keel_raft_term", NULL, 7);
  metrics_sample(&b, "keel_x", "", 0.25);
  metrics_sample(&b, "keel_big", NULL, 9007199254740991.0);
  metrics_sample(&b, "keel_peer_queue_bytes", "peer=\"00000000000000ab\"", 42);
  assert_int_equal(metrics_buf_error(&b), 0);
  assert_string_equal(b.p, "# HELP keel_raft_term Current raft term.\n"
                           "# TYPE keel_raft_term gauge\n"
                           "keel_raft_term 7\n"
                           "keel_x 0.25\n"
                           "keel_big 9007199254740991\n"
                           "keel_peer_queue_bytes{peer=\"00000000000000ab\"} "
                           "42\n");
  assert_int_equal(b.len, strlen(b.p));
  metrics_buf_free(&b);
}

static void test_histogram(void **state) {
  (void)state;
  static const double bounds[] = {0.001, 0.01, 0.1};
  struct metrics_histogram h;
  metrics_histogram_init(&h, bounds, 3);
  metrics_histogram_observe(&h, 0.0005); /* first bucket */
  metrics_histogram_observe(&h, 0.001);  /* le is inclusive */
  metrics_histogram_observe(&h, 0.05);
  metrics_histogram_observe(&h, 3); /* only +Inf */
  assert_int_equal(h.count, 4);
  struct metrics_buf b;
  metrics_buf_init(&b, 1 << 16);
  metrics_histogram_write(&b, "keel_d", "method=\"/a.B/C\"", &h);
  assert_int_equal(metrics_buf_error(&b), 0);
  assert_string_equal(b.p, "keel_d_bucket{method=\"/a.B/C\",le=\"0.001\"} 2\n"
                           "keel_d_bucket{method=\"/a.B/C\",le=\"0.01\"} 2\n"
                           "keel_d_bucket{method=\"/a.B/C\",le=\"0.1\"} 3\n"
                           "keel_d_bucket{method=\"/a.B/C\",le=\"+Inf\"} 4\n"
                           "keel_d_sum{method=\"/a.B/C\"} 3.0515\n"
                           "keel_d_count{method=\"/a.B/C\"} 4\n");
  metrics_buf_free(&b);
  /* Without labels: le alone. */
  metrics_buf_init(&b, 1 << 16);
  metrics_histogram_write(&b, "keel_e", NULL, &h);
  assert_non_null(strstr(b.p, "keel_e_bucket{le=\"+Inf\"} 4\n"));
  assert_non_null(strstr(b.p, "keel_e_count 4\n"));
  metrics_buf_free(&b);
}

static void test_label_escaping(void **state) {
  (void)state;
  char out[64];
  int n = metrics_label(out, sizeof(out), "method", "a\"b\\c\nd");
  assert_string_equal(out, "method=\"a\\\"b\\\\c\\nd\"");
  assert_int_equal(n, (int)strlen(out));
  /* Too long: refused, never truncated silently. */
  char small[8];
  assert_int_equal(metrics_label(small, sizeof(small), "method", "abcdef"), -1);
  assert_string_equal(small, "");
}

static void test_limit(void **state) {
  (void)state;
  struct metrics_buf b;
  metrics_buf_init(&b, 100);
  for (int i = 0; i < 50; i++)
    metrics_sample(&b, "keel_some_long_metric_name", NULL, i);
  assert_int_equal(metrics_buf_error(&b), KEEL_ELIMIT);
  assert_true(b.cap <= 100);
  assert_true(b.len < 100);
  assert_int_equal(b.len, strlen(b.p));
  /* Every line that is there is whole. */
  assert_int_equal(b.p[b.len - 1], '\n');
  metrics_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_samples_and_families),
      cmocka_unit_test(test_histogram),
      cmocka_unit_test(test_label_escaping),
      cmocka_unit_test(test_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

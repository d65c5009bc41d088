/* test_keel_policy.c — libkeel's decisions without I/O: backoff bounds and
 * jitter spread, circuit-breaker transitions on an injected clock, error
 * classification (a server's gRPC status + etcd text, or the transport's
 * delivery verdict, -> keel code, retry safety), and
 * watch-resume bookkeeping (revision tracking, dedupe after a replay). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "keel_grpc_wire.h"
#include "keel_policy.h"

static void test_backoff_cap(void **state) {
  (void)state;
  assert_int_equal(keel_backoff_cap(25, 1000, 1), 25);
  assert_int_equal(keel_backoff_cap(25, 1000, 2), 50);
  assert_int_equal(keel_backoff_cap(25, 1000, 3), 100);
  assert_int_equal(keel_backoff_cap(25, 1000, 6), 800);
  assert_int_equal(keel_backoff_cap(25, 1000, 7), 1000);
  /* No overflow however many attempts. */
  assert_int_equal(keel_backoff_cap(25, 1000, 4000000000u), 1000);
  assert_int_equal(keel_backoff_cap(1, UINT64_MAX / 2, 200), UINT64_MAX / 2);
}

static void test_backoff_bounds_and_spread(void **state) {
  (void)state;
  uint64_t rng = 12345;
  for (uint32_t attempt = 1; attempt <= 10; attempt++) {
    uint64_t cap = keel_backoff_cap(25, 1000, attempt);
    uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
    unsigned buckets[10] = {0};
    const int n = 20000;
    for (int i = 0; i < n; i++) {
      uint64_t d = keel_backoff_delay(25, 1000, attempt, keel_rand_next(&rng));
      assert_true(d <= cap); /* never above the cap */
      lo = d < lo ? d : lo;
      hi = d > hi ? d : hi;
      sum += d;
      buckets[d * 10 / (cap + 1)]++;
    }
    /* Full jitter: the whole [0, cap] range is used ... */
    assert_true(lo <= cap / 50);
    assert_true(hi >= cap - cap / 50);
    /* ... uniformly: mean near cap/2, every tenth of the range ~10%. */
    double mean = (double)sum / n;
    assert_true(mean > cap * 0.45 && mean < cap * 0.55);
    /* (Bucket widths are equal only when the range is wide enough.) */
    for (int b = 0; b < 10 && cap >= 200; b++)
      assert_true(buckets[b] > n / 10 * 0.8 && buckets[b] < n / 10 * 1.2);
  }
}

static void test_rand_never_stuck(void **state) {
  (void)state;
  uint64_t s = 0; /* a zero seed must not give a constant stream */
  uint64_t a = keel_rand_next(&s), b = keel_rand_next(&s);
  assert_true(a != b);
}

static void test_breaker_transitions(void **state) {
  (void)state;
  struct keel_breaker b;
  keel_breaker_init(&b, 3, 1000);
  uint64_t now = 5000;
  assert_int_equal(b.state, KEEL_BREAKER_CLOSED);
  /* Failures below the threshold keep it closed; a success resets. */
  keel_breaker_failure(&b, now);
  keel_breaker_failure(&b, now);
  assert_int_equal(b.state, KEEL_BREAKER_CLOSED);
  keel_breaker_success(&b);
  keel_breaker_failure(&b, now);
  keel_breaker_failure(&b, now);
  assert_int_equal(b.state, KEEL_BREAKER_CLOSED);
  assert_true(keel_breaker_allow(&b, now));
  /* The third consecutive failure opens it. */
  keel_breaker_failure(&b, now);
  assert_int_equal(b.state, KEEL_BREAKER_OPEN);
  assert_false(keel_breaker_allow(&b, now));
  assert_false(keel_breaker_allow(&b, now + 999));
  /* After the cool-down: half-open, exactly one probe. */
  assert_true(keel_breaker_would_allow(&b, now + 1000));
  assert_true(keel_breaker_allow(&b, now + 1000));
  assert_int_equal(b.state, KEEL_BREAKER_HALF_OPEN);
  assert_false(keel_breaker_allow(&b, now + 1001));
  assert_false(keel_breaker_would_allow(&b, now + 1001));
  /* The probe fails: open again, cool-down from now. */
  keel_breaker_failure(&b, now + 1100);
  assert_int_equal(b.state, KEEL_BREAKER_OPEN);
  assert_false(keel_breaker_allow(&b, now + 2000));
  assert_true(keel_breaker_allow(&b, now + 2100));
  assert_int_equal(b.state, KEEL_BREAKER_HALF_OPEN);
  /* The probe succeeds: closed, counter reset. */
  keel_breaker_success(&b);
  assert_int_equal(b.state, KEEL_BREAKER_CLOSED);
  assert_int_equal(b.failures, 0);
  assert_true(keel_breaker_allow(&b, now + 2100));
  assert_true(keel_breaker_allow(&b, now + 2100));
}

static void test_breaker_late_failure_while_open(void **state) {
  (void)state;
  struct keel_breaker b;
  keel_breaker_init(&b, 1, 100);
  keel_breaker_failure(&b, 10);
  assert_int_equal(b.state, KEEL_BREAKER_OPEN);
  /* A request sent before it opened fails late: cool-down restarts. */
  keel_breaker_failure(&b, 90);
  assert_false(keel_breaker_allow(&b, 150));
  assert_true(keel_breaker_allow(&b, 190));
}

struct cls_case {
  int code;
  const char *msg;
  int err;
  enum keel_outcome outcome;
  int ep_fail;
};

/* Statuses that came from the server (delivery ANSWERED). */
static void test_classify_server_answers(void **state) {
  (void)state;
  static const struct cls_case cases[] = {
      {KEEL_GRPC_OUT_OF_RANGE,
       "etcdserver: mvcc: required revision has been compacted",
       KEEL_ECOMPACTED, KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_OUT_OF_RANGE,
       "etcdserver: mvcc: required revision is a future revision",
       KEEL_EFUTUREREV, KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_RESOURCE_EXHAUSTED,
       "etcdserver: mvcc: database space exceeded", KEEL_ENOSPACE,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_NOT_FOUND, "etcdserver: requested lease not found",
       KEEL_ELEASENOTFOUND, KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_FAILED_PRECONDITION, "etcdserver: lease already exists",
       KEEL_ELEASEEXISTS, KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_INVALID_ARGUMENT,
       "etcdserver: duplicate key given in txn request", KEEL_EDUPKEY,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_INVALID_ARGUMENT,
       "etcdserver: too many operations in txn request", KEEL_ETOOMANYOPS,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: request is too large",
       KEEL_ETOOLARGE, KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_UNAVAILABLE, "etcdserver: no leader", KEEL_ENOLEADER,
       KEEL_OUTCOME_NOT_APPLIED, 1},
      {KEEL_GRPC_FAILED_PRECONDITION, "etcdserver: not leader", KEEL_ENOTLEADER,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_UNAVAILABLE, "etcdserver: request timed out", KEEL_ETIMEOUT,
       KEEL_OUTCOME_MAYBE, 1},
      {KEEL_GRPC_UNAVAILABLE, "etcdserver: leader changed", KEEL_ESTEPPEDDOWN,
       KEEL_OUTCOME_MAYBE, 1},
      {KEEL_GRPC_UNAVAILABLE, "etcdserver: server stopped", KEEL_ESTOPPED,
       KEEL_OUTCOME_MAYBE, 1},
      {KEEL_GRPC_NOT_FOUND, "etcdserver: member not found", KEEL_EMEMBER,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_PERMISSION_DENIED, "etcdserver: permission denied", KEEL_EPERM,
       KEEL_OUTCOME_FINAL, 0},
      /* Some other UNAVAILABLE from the server: it had the request. */
      {KEEL_GRPC_UNAVAILABLE, "unexpected HTTP status code received: 503",
       KEEL_EUNAVAILABLE, KEEL_OUTCOME_MAYBE, 1},
      {KEEL_GRPC_DEADLINE_EXCEEDED, "context deadline exceeded", KEEL_ETIMEOUT,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_CANCELLED, "context canceled", KEEL_ECANCELED,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_INVALID_ARGUMENT, "etcdserver: key is not provided", -22,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_UNIMPLEMENTED, "unknown service", KEEL_EVERSION,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_INTERNAL, "some server bug", -5, KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_DATA_LOSS, "", -5, KEEL_OUTCOME_FINAL, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct keel_class c =
        keel_classify(cases[i].code, cases[i].msg, KEEL_GRPC_ANSWERED);
    if (c.err != cases[i].err || c.outcome != cases[i].outcome ||
        c.endpoint_failure != cases[i].ep_fail)
      fail_msg("case %zu (%s): err %d outcome %d epfail %d", i, cases[i].msg,
               c.err, c.outcome, c.endpoint_failure);
  }
  struct keel_class ok = keel_classify(0, NULL, KEEL_GRPC_ANSWERED);
  assert_int_equal(ok.err, 0);
  struct keel_class nul =
      keel_classify(KEEL_GRPC_UNAVAILABLE, NULL, KEEL_GRPC_ANSWERED);
  assert_int_equal(nul.err, KEEL_EUNAVAILABLE);
}

struct deliv_case {
  int code;
  enum keel_grpc_delivery d;
  int err;
  enum keel_outcome outcome;
  int ep_fail;
};

/* Calls the transport ended: only code and delivery count. Each case runs
 * with several messages, among them the texts the old classifier keyed on
 * and an etcd text, to show the message is never looked at. */
static void test_classify_transport_delivery(void **state) {
  (void)state;
  static const struct deliv_case cases[] = {
      {KEEL_GRPC_UNAVAILABLE, KEEL_GRPC_NOT_SENT, KEEL_EUNAVAILABLE,
       KEEL_OUTCOME_NOT_APPLIED, 1},
      {KEEL_GRPC_UNAVAILABLE, KEEL_GRPC_REFUSED, KEEL_EUNAVAILABLE,
       KEEL_OUTCOME_NOT_APPLIED, 1},
      {KEEL_GRPC_UNAVAILABLE, KEEL_GRPC_MAYBE_PROCESSED, KEEL_EUNAVAILABLE,
       KEEL_OUTCOME_MAYBE, 1},
      /* RST_STREAM with another code, a response breaking the protocol */
      {KEEL_GRPC_INTERNAL, KEEL_GRPC_MAYBE_PROCESSED, -5, KEEL_OUTCOME_MAYBE,
       1},
      {KEEL_GRPC_INTERNAL, KEEL_GRPC_NOT_SENT, -5, KEEL_OUTCOME_NOT_APPLIED, 1},
      /* ended by the caller, a deadline, or a local size limit: final */
      {KEEL_GRPC_CANCELLED, KEEL_GRPC_NOT_SENT, KEEL_ECANCELED,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_CANCELLED, KEEL_GRPC_MAYBE_PROCESSED, KEEL_ECANCELED,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_DEADLINE_EXCEEDED, KEEL_GRPC_MAYBE_PROCESSED, KEEL_ETIMEOUT,
       KEEL_OUTCOME_FINAL, 0},
      {KEEL_GRPC_RESOURCE_EXHAUSTED, KEEL_GRPC_MAYBE_PROCESSED, KEEL_ELIMIT,
       KEEL_OUTCOME_FINAL, 0},
  };
  static const char *const msgs[] = {
      "", "connection failed: connection refused",
      "connection lost: end of file", "stream refused by the server",
      "etcdserver: no leader"};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    for (size_t j = 0; j < sizeof(msgs) / sizeof(msgs[0]); j++) {
      struct keel_class c = keel_classify(cases[i].code, msgs[j], cases[i].d);
      if (c.err != cases[i].err || c.outcome != cases[i].outcome ||
          c.endpoint_failure != cases[i].ep_fail)
        fail_msg("case %zu msg %zu: err %d outcome %d epfail %d", i, j, c.err,
                 c.outcome, c.endpoint_failure);
    }
  assert_int_equal(keel_delivery_outcome(KEEL_GRPC_NOT_SENT),
                   KEEL_OUTCOME_NOT_APPLIED);
  assert_int_equal(keel_delivery_outcome(KEEL_GRPC_REFUSED),
                   KEEL_OUTCOME_NOT_APPLIED);
  assert_int_equal(keel_delivery_outcome(KEEL_GRPC_MAYBE_PROCESSED),
                   KEEL_OUTCOME_MAYBE);
  assert_int_equal(keel_delivery_outcome(KEEL_GRPC_ANSWERED),
                   KEEL_OUTCOME_MAYBE);
}

static void test_final_error_unknown_outcome(void **state) {
  (void)state;
  /* A put whose connection died after sending: outcome unknown. */
  struct keel_class lost = keel_classify(KEEL_GRPC_UNAVAILABLE, "anything",
                                         KEEL_GRPC_MAYBE_PROCESSED);
  assert_int_equal(keel_final_error(&lost, 0), KEEL_EUNKNOWN);
  /* The same for a read (safe): the transport error itself. */
  assert_int_equal(keel_final_error(&lost, 1), KEEL_EUNAVAILABLE);
  /* Never connected: not applied, so no "unknown" even for a put. */
  struct keel_class refused =
      keel_classify(KEEL_GRPC_UNAVAILABLE, "anything", KEEL_GRPC_NOT_SENT);
  assert_int_equal(keel_final_error(&refused, 0), KEEL_EUNAVAILABLE);
  struct keel_class to =
      keel_classify(KEEL_GRPC_UNAVAILABLE, "etcdserver: request timed out",
                    KEEL_GRPC_ANSWERED);
  assert_int_equal(keel_final_error(&to, 0), KEEL_EUNKNOWN);
  assert_string_equal(keel_strerror(KEEL_EUNKNOWN),
                      "outcome unknown: the request may or may not have "
                      "been applied");
}

static void test_resume_from_now(void **state) {
  (void)state;
  struct keel_resume r = {0};
  assert_int_equal(keel_resume_start(&r), 0); /* "now" until created */
  keel_resume_created(&r, 41);
  assert_int_equal(keel_resume_start(&r), 42);
  /* A second "created" (after a reconnect) does not move it back. */
  int64_t revs[] = {42, 42, 43};
  size_t first;
  assert_int_equal(keel_resume_filter(&r, revs, 3, &first), 3);
  assert_int_equal(first, 0);
  assert_int_equal(keel_resume_start(&r), 44);
  keel_resume_created(&r, 50);
  assert_int_equal(keel_resume_start(&r), 44);
}

static void test_resume_dedupe_replay(void **state) {
  (void)state;
  struct keel_resume r = {.next_rev = 10};
  size_t first;
  int64_t a[] = {10, 11, 12};
  assert_int_equal(keel_resume_filter(&r, a, 3, &first), 3);
  assert_int_equal(keel_resume_start(&r), 13);
  /* The stream broke; the new one replays 11..14 (server sent more than
   * asked, or a response was in flight): only 13, 14 are new. */
  int64_t b[] = {11, 12, 13, 14};
  assert_int_equal(keel_resume_filter(&r, b, 4, &first), 2);
  assert_int_equal(first, 2);
  assert_int_equal(keel_resume_start(&r), 15);
  /* A response entirely seen: nothing delivered, nothing moved. */
  int64_t c[] = {12, 14};
  assert_int_equal(keel_resume_filter(&r, c, 2, &first), 0);
  assert_int_equal(keel_resume_start(&r), 15);
  /* A txn: several events of one revision stay together. */
  int64_t d[] = {15, 15, 15, 16};
  assert_int_equal(keel_resume_filter(&r, d, 4, &first), 4);
  assert_int_equal(keel_resume_start(&r), 17);
  /* Empty response. */
  assert_int_equal(keel_resume_filter(&r, NULL, 0, &first), 0);
  assert_int_equal(keel_resume_start(&r), 17);
}

static void test_resume_progress(void **state) {
  (void)state;
  struct keel_resume r = {.next_rev = 5};
  keel_resume_progress(&r, 20);
  assert_int_equal(keel_resume_start(&r), 21);
  keel_resume_progress(&r, 3); /* never backwards */
  assert_int_equal(keel_resume_start(&r), 21);
}

/* A simulated resume across a reconnect with an exhaustive check: for
 * every split point of a 1..N revision stream and every replay offset,
 * the delivered sequence is exactly 1..N. */
static void test_resume_no_gap_no_dup(void **state) {
  (void)state;
  const int64_t N = 30;
  for (int64_t cut = 1; cut <= N; cut++) {
    for (int64_t replay = 0; replay < cut; replay++) {
      struct keel_resume r = {.next_rev = 1};
      int64_t got[64];
      size_t ng = 0, first;
      for (int64_t v = 1; v < cut; v++) {
        int64_t one[] = {v};
        if (keel_resume_filter(&r, one, 1, &first))
          got[ng++] = v;
      }
      /* Reconnect: the server restarts from start - replay. */
      int64_t from = keel_resume_start(&r) - replay;
      assert_int_equal(keel_resume_start(&r), cut);
      for (int64_t v = from < 1 ? 1 : from; v <= N; v++) {
        int64_t one[] = {v};
        if (keel_resume_filter(&r, one, 1, &first))
          got[ng++] = v;
      }
      assert_int_equal(ng, N);
      for (size_t i = 0; i < ng; i++)
        assert_int_equal(got[i], (int64_t)i + 1);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backoff_cap),
      cmocka_unit_test(test_backoff_bounds_and_spread),
      cmocka_unit_test(test_rand_never_stuck),
      cmocka_unit_test(test_breaker_transitions),
      cmocka_unit_test(test_breaker_late_failure_while_open),
      cmocka_unit_test(test_classify_server_answers),
      cmocka_unit_test(test_classify_transport_delivery),
      cmocka_unit_test(test_final_error_unknown_outcome),
      cmocka_unit_test(test_resume_from_now),
      cmocka_unit_test(test_resume_dedupe_replay),
      cmocka_unit_test(test_resume_progress),
      cmocka_unit_test(test_resume_no_gap_no_dup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* keel_policy.h — libkeel's pure decision logic, kept apart from I/O so unit
 * tests can drive it with an injected clock and random numbers: backoff
 * with full jitter, the per-endpoint circuit breaker, classification of a
 * failed attempt (error code, retry safety, endpoint health), and the
 * watch-resume revision bookkeeping. Internal: not installed, not in keel.h.
 */
#ifndef KEEL_POLICY_H
#define KEEL_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "grpc_client.h" /* enum keel_grpc_delivery */

/* Full-jitter exponential backoff: a delay drawn uniformly from
 * [0, min(max_ms, base_ms * 2^(attempt-1))] using rnd (any 64-bit random
 * number). attempt >= 1 is the number of failed attempts so far. */
uint64_t keel_backoff_cap(uint64_t base_ms, uint64_t max_ms, uint32_t attempt);
uint64_t keel_backoff_delay(uint64_t base_ms, uint64_t max_ms, uint32_t attempt,
                            uint64_t rnd);

/* xorshift64* — enough for jitter; never 0 state. */
uint64_t keel_rand_next(uint64_t *state);

/* Circuit breaker, one per endpoint.
 *
 *   CLOSED --(threshold consecutive failures)--> OPEN
 *   OPEN --(cooldown elapsed, on the next allow())--> HALF_OPEN: one probe
 *   HALF_OPEN --probe success--> CLOSED;  --probe failure--> OPEN (again)
 *
 * Invariants: failures < threshold while CLOSED; at most one probe in
 * flight while HALF_OPEN; opened_at is the time of the last transition to
 * OPEN. Times are milliseconds from any monotonic clock the caller owns. */
enum keel_breaker_state {
  KEEL_BREAKER_CLOSED = 0,
  KEEL_BREAKER_OPEN = 1,
  KEEL_BREAKER_HALF_OPEN = 2,
};
struct keel_breaker {
  enum keel_breaker_state state;
  uint32_t failures;
  uint32_t threshold;
  uint64_t cooldown_ms;
  uint64_t opened_at;
  int probe_in_flight;
};
void keel_breaker_init(struct keel_breaker *b, uint32_t threshold,
                       uint64_t cooldown_ms);
/* May a request go now? In HALF_OPEN a yes claims the single probe. */
int keel_breaker_allow(struct keel_breaker *b, uint64_t now_ms);
/* Would allow() say yes, without claiming anything. */
int keel_breaker_would_allow(const struct keel_breaker *b, uint64_t now_ms);
void keel_breaker_success(struct keel_breaker *b);
void keel_breaker_failure(struct keel_breaker *b, uint64_t now_ms);

/* How a failed attempt ended, for the retry decision. */
enum keel_outcome {
  KEEL_OUTCOME_FINAL = 0,       /* an answer: do not retry */
  KEEL_OUTCOME_NOT_APPLIED = 1, /* certainly not applied: retry anything */
  KEEL_OUTCOME_MAYBE = 2,       /* may have been applied: retry if safe */
};
struct keel_class {
  int err; /* keel code for the caller */
  enum keel_outcome outcome;
  int endpoint_failure; /* counts against the endpoint's breaker */
};
/* Classifies a finished attempt from its gRPC status and the transport's
 * delivery (grpc_client.h). code 0 gives err 0, FINAL.
 *   delivery ANSWERED: the server's status; etcd's errors are told apart
 *     by code and etcd's stable texts ("no leader" = rejected before it
 *     was proposed: NOT_APPLIED; "request timed out", "leader changed",
 *     "server stopped", other UNAVAILABLE: MAYBE).
 *   otherwise the transport ended it; its message is never parsed:
 *     CANCELLED -> KEEL_ECANCELED, DEADLINE_EXCEEDED -> KEEL_ETIMEOUT,
 *     RESOURCE_EXHAUSTED -> KEEL_ELIMIT, all FINAL; anything else is an
 *     endpoint failure (KEEL_EUNAVAILABLE for UNAVAILABLE, else -EIO),
 *     NOT_APPLIED when NOT_SENT or REFUSED, MAYBE when MAYBE_PROCESSED. */
struct keel_class keel_classify(int grpc_code, const char *message,
                                enum keel_grpc_delivery delivery);

/* The outcome a transport delivery alone implies: NOT_APPLIED for
 * NOT_SENT and REFUSED, else MAYBE (the server had the request). */
enum keel_outcome keel_delivery_outcome(enum keel_grpc_delivery delivery);

/* What the caller is told after a failed attempt that will not be retried:
 * MAYBE on an unsafe request becomes KEEL_EUNKNOWN. */
int keel_final_error(const struct keel_class *cl, int safe);

/* Watch resume bookkeeping for one watcher.
 *   next_rev: the first revision not yet delivered (0 = "from now" and no
 *   answer yet). Events below next_rev are duplicates (a resumed stream
 *   replaying) and are dropped; after delivering a response next_rev is
 *   one past its last event's revision. */
struct keel_resume {
  int64_t next_rev;
};
/* The start revision for (re)creating the watch on a new stream. */
int64_t keel_resume_start(const struct keel_resume *r);
/* A "created" answer at header revision hdr_rev: a watch from now starts
 * at hdr_rev + 1. */
void keel_resume_created(struct keel_resume *r, int64_t hdr_rev);
/* Filters revs[0..n) (ascending mod revisions of one response's events) in
 * place to the indexes to deliver; returns how many kept (the first kept
 * index is returned in *first: the kept ones are a suffix) and advances
 * next_rev. */
size_t keel_resume_filter(struct keel_resume *r, const int64_t *revs, size_t n,
                          size_t *first);
/* A progress notification at hdr_rev: everything up to it was seen. */
void keel_resume_progress(struct keel_resume *r, int64_t hdr_rev);

#endif

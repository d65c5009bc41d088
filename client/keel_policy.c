/* keel_policy.c — backoff, circuit breaker, error classification and watch
 * resume bookkeeping: the decisions behind libkeel's retries, with no I/O
 * (see keel_policy.h for the state diagram and invariants). */
#include "keel_policy.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "keel_error.h"
#include "keel_grpc_wire.h"

uint64_t keel_backoff_cap(uint64_t base_ms, uint64_t max_ms, uint32_t attempt) {
  assert(attempt >= 1);
  uint64_t cap = base_ms;
  /* Doubling stops at max_ms, so no overflow for any attempt count. */
  for (uint32_t i = 1; i < attempt && cap < max_ms; i++)
    cap *= 2;
  return cap < max_ms ? cap : max_ms;
}

uint64_t keel_backoff_delay(uint64_t base_ms, uint64_t max_ms, uint32_t attempt,
                            uint64_t rnd) {
  uint64_t cap = keel_backoff_cap(base_ms, max_ms, attempt);
  return rnd % (cap + 1);
}

uint64_t keel_rand_next(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ULL;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545f4914f6cdd1dULL;
}

void keel_breaker_init(struct keel_breaker *b, uint32_t threshold,
                       uint64_t cooldown_ms) {
  memset(b, 0, sizeof(*b));
  b->threshold = threshold ? threshold : 1;
  b->cooldown_ms = cooldown_ms;
}

int keel_breaker_would_allow(const struct keel_breaker *b, uint64_t now_ms) {
  switch (b->state) {
  case KEEL_BREAKER_CLOSED:
    return 1;
  case KEEL_BREAKER_OPEN:
    return now_ms >= b->opened_at + b->cooldown_ms;
  case KEEL_BREAKER_HALF_OPEN:
    return !b->probe_in_flight;
  }
  return 0;
}

int keel_breaker_allow(struct keel_breaker *b, uint64_t now_ms) {
  if (!keel_breaker_would_allow(b, now_ms))
    return 0;
  if (b->state == KEEL_BREAKER_OPEN)
    b->state = KEEL_BREAKER_HALF_OPEN;
  if (b->state == KEEL_BREAKER_HALF_OPEN)
    b->probe_in_flight = 1;
  return 1;
}

void keel_breaker_success(struct keel_breaker *b) {
  b->state = KEEL_BREAKER_CLOSED;
  b->failures = 0;
  b->probe_in_flight = 0;
}

void keel_breaker_failure(struct keel_breaker *b, uint64_t now_ms) {
  switch (b->state) {
  case KEEL_BREAKER_CLOSED:
    if (++b->failures >= b->threshold) {
      b->state = KEEL_BREAKER_OPEN;
      b->opened_at = now_ms;
    }
    break;
  case KEEL_BREAKER_HALF_OPEN:
    b->state = KEEL_BREAKER_OPEN;
    b->opened_at = now_ms;
    b->probe_in_flight = 0;
    break;
  case KEEL_BREAKER_OPEN:
    /* A late failure of a request sent before the breaker opened: the
     * cool-down restarts, the endpoint is still bad. */
    b->opened_at = now_ms;
    break;
  }
}

static int has(const char *m, const char *s) {
  return strstr(m, s) != NULL;
}

/* A call that ended without the server's status: only the delivery the
 * transport observed says whether it may have been applied; its message
 * is for people and is not looked at. */
static struct keel_class classify_transport(int code,
                                            enum keel_grpc_delivery d) {
  struct keel_class c = {0, KEEL_OUTCOME_FINAL, 0};
  if (code == KEEL_GRPC_CANCELLED) {
    c.err = KEEL_ECANCELED; /* the caller's (or the client's) decision */
  } else if (code == KEEL_GRPC_DEADLINE_EXCEEDED) {
    c.err = KEEL_ETIMEOUT;
  } else if (code == KEEL_GRPC_RESOURCE_EXHAUSTED) {
    c.err = KEEL_ELIMIT; /* a local size limit, not the endpoint's fault */
  } else {
    /* Connection failed or lost, stream refused or reset, a response
     * that broke the protocol: the endpoint's failure. */
    c.err = code == KEEL_GRPC_UNAVAILABLE ? KEEL_EUNAVAILABLE : -EIO;
    c.endpoint_failure = 1;
    c.outcome = keel_delivery_outcome(d);
  }
  return c;
}

struct keel_class keel_classify(int code, const char *m,
                                enum keel_grpc_delivery delivery) {
  struct keel_class c = {0, KEEL_OUTCOME_FINAL, 0};
  if (m == NULL)
    m = "";
  if (code == KEEL_GRPC_OK)
    return c;
  if (delivery != KEEL_GRPC_ANSWERED)
    return classify_transport(code, delivery);
  /* The server's answer. */
  /* etcd's own errors first: their text is stable (rpctypes). */
  if (has(m, "required revision has been compacted"))
    c.err = KEEL_ECOMPACTED;
  else if (has(m, "required revision is a future revision"))
    c.err = KEEL_EFUTUREREV;
  else if (has(m, "database space exceeded"))
    c.err = KEEL_ENOSPACE;
  else if (has(m, "requested lease not found"))
    c.err = KEEL_ELEASENOTFOUND;
  else if (has(m, "lease already exists"))
    c.err = KEEL_ELEASEEXISTS;
  else if (has(m, "duplicate key given in txn request"))
    c.err = KEEL_EDUPKEY;
  else if (has(m, "too many operations in txn request"))
    c.err = KEEL_ETOOMANYOPS;
  else if (has(m, "request is too large"))
    c.err = KEEL_ETOOLARGE;
  else if (has(m, "permission denied"))
    c.err = KEEL_EPERM;
  else if (has(m, "authentication failed") || has(m, "invalid auth token") ||
           has(m, "user name is empty"))
    c.err = KEEL_EAUTH;
  else if (has(m, "corrupt cluster"))
    c.err = KEEL_ECORRUPT;
  else if (has(m, "member") || has(m, "Peer URLs") || has(m, "learner"))
    c.err = KEEL_EMEMBER;
  else if (has(m, "no leader")) {
    /* Rejected before it was proposed: another member may have one. */
    c.err = KEEL_ENOLEADER;
    c.outcome = KEEL_OUTCOME_NOT_APPLIED;
    c.endpoint_failure = 1;
  } else if (has(m, "not leader")) {
    c.err = KEEL_ENOTLEADER;
  } else if (has(m, "server stopped")) {
    c.err = KEEL_ESTOPPED;
    c.outcome = KEEL_OUTCOME_MAYBE;
    c.endpoint_failure = 1;
  } else if (has(m, "leader changed")) {
    c.err = KEEL_ESTEPPEDDOWN;
    c.outcome = KEEL_OUTCOME_MAYBE;
    c.endpoint_failure = 1;
  } else if (code == KEEL_GRPC_UNAVAILABLE && has(m, "request timed out")) {
    /* The proposal may still commit later. */
    c.err = KEEL_ETIMEOUT;
    c.outcome = KEEL_OUTCOME_MAYBE;
    c.endpoint_failure = 1;
  } else if (code == KEEL_GRPC_UNAVAILABLE) {
    /* Some other server-side unavailability (a proxy's 503, a server
     * shutting down): it had the request, so it may have been applied. */
    c.err = KEEL_EUNAVAILABLE;
    c.endpoint_failure = 1;
    c.outcome = KEEL_OUTCOME_MAYBE;
  } else if (code == KEEL_GRPC_DEADLINE_EXCEEDED) {
    c.err = KEEL_ETIMEOUT;
  } else if (code == KEEL_GRPC_CANCELLED) {
    c.err = KEEL_ECANCELED;
  } else if (code == KEEL_GRPC_RESOURCE_EXHAUSTED) {
    c.err = KEEL_ELIMIT;
  } else if (code == KEEL_GRPC_INVALID_ARGUMENT) {
    c.err = -EINVAL;
  } else if (code == KEEL_GRPC_NOT_FOUND) {
    c.err = KEEL_ENOTFOUND;
  } else if (code == KEEL_GRPC_PERMISSION_DENIED) {
    c.err = KEEL_EPERM;
  } else if (code == KEEL_GRPC_UNAUTHENTICATED) {
    c.err = KEEL_EAUTH;
  } else if (code == KEEL_GRPC_UNIMPLEMENTED) {
    c.err = KEEL_EVERSION;
  } else {
    c.err = -EIO;
  }
  return c;
}

enum keel_outcome keel_delivery_outcome(enum keel_grpc_delivery d) {
  return d == KEEL_GRPC_NOT_SENT || d == KEEL_GRPC_REFUSED
             ? KEEL_OUTCOME_NOT_APPLIED
             : KEEL_OUTCOME_MAYBE;
}

int keel_final_error(const struct keel_class *cl, int safe) {
  if (cl->outcome == KEEL_OUTCOME_MAYBE && !safe)
    return KEEL_EUNKNOWN;
  return cl->err;
}

int64_t keel_resume_start(const struct keel_resume *r) {
  return r->next_rev;
}

void keel_resume_created(struct keel_resume *r, int64_t hdr_rev) {
  if (r->next_rev == 0)
    r->next_rev = hdr_rev + 1;
}

size_t keel_resume_filter(struct keel_resume *r, const int64_t *revs, size_t n,
                          size_t *first) {
  size_t i = 0;
  if (r->next_rev > 0)
    while (i < n && revs[i] < r->next_rev)
      i++;
  *first = i;
  if (i < n && revs[n - 1] + 1 > r->next_rev)
    r->next_rev = revs[n - 1] + 1;
  return n - i;
}

void keel_resume_progress(struct keel_resume *r, int64_t hdr_rev) {
  if (hdr_rev + 1 > r->next_rev)
    r->next_rev = hdr_rev + 1;
}

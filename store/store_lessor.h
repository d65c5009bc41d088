/* store_lessor.h — the in-memory lease timers of a node (etcd's lessor).
 *
 * Leases themselves (id, TTL, attached keys) are state-machine data in the
 * store and change only through the log. The lessor keeps what must not be
 * replicated: when each lease expires by this node's monotonic clock. Only
 * the leader's lessor is "primary" and reports expired leases; the server
 * then proposes STORE_REQ_LEASE_EXPIRE for each, and the lease goes away
 * when that entry applies (store_lessor_revoke). A follower keeps its
 * leases without deadlines; when it becomes leader, store_lessor_promote()
 * gives every lease a fresh deadline (its checkpointed remaining TTL, or its
 * full TTL, plus an extension), so a leader change never expires leases at
 * once — clients get time to reach the new leader and keep alive.
 *
 * Not thread-safe: one thread (the loop thread) owns a lessor. Clock values
 * are milliseconds of a monotonic clock supplied by the caller (no clock is
 * read here, so tests and the simulator drive it).
 *
 * Memory is bounded by max_leases (grant fails with KEEL_ELIMIT past it).
 * Finding expired leases costs O(k log n) for k expired, via a min-heap.
 */
#ifndef KEEL_STORE_LESSOR_H
#define KEEL_STORE_LESSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store_lessor;

struct store_lessor_options {
  /* Leases granted with a smaller TTL get this (etcd: 3 election
   * timeouts, rounded up to a second); 0 means 1 second. */
  int64_t min_ttl_s;
  /* How often a lease's remaining TTL is checkpointed through the log;
   * 0 means 5 minutes (etcd's default). */
  int64_t checkpoint_interval_ms;
  /* After reporting a lease expired, report it again after this long if it
   * still exists (the expiry proposal may have been lost); 0 means 3 s. */
  int64_t expiry_retry_ms;
  /* Bound on leases; 0 means 1,000,000. */
  size_t max_leases;
};

/* Errors: -ENOMEM, -EINVAL. */
int store_lessor_create(const struct store_lessor_options *opts,
                        struct store_lessor **out);
void store_lessor_free(struct store_lessor *l);

/* The TTL a grant of ttl_s really gets (raised to the minimum). */
int64_t store_lessor_effective_ttl(const struct store_lessor *l, int64_t ttl_s);

/* Adds a lease that was granted (applied) or loaded at start-up.
 * remaining_s > 0 is a checkpointed remaining TTL. On a primary lessor the
 * deadline is now + (remaining or ttl). Errors: KEEL_ELEASEEXISTS,
 * KEEL_ELIMIT, -ENOMEM. */
int store_lessor_add(struct store_lessor *l, int64_t id, int64_t ttl_s,
                     int64_t remaining_s, int64_t now_ms);
/* Removes a lease (revoke or expiry applied). Errors: KEEL_ELEASENOTFOUND. */
int store_lessor_revoke(struct store_lessor *l, int64_t id);
/* Keep-alive: on the primary only. Sets the deadline to now + TTL and
 * returns the TTL. Errors: KEEL_ELEASENOTFOUND, KEEL_ENOTLEADER. */
int store_lessor_renew(struct store_lessor *l, int64_t id, int64_t now_ms,
                       int64_t *ttl_s);
/* TimeToLive: remaining seconds (rounded up; the TTL itself on a follower
 * without a checkpoint) and the granted TTL. Errors: KEEL_ELEASENOTFOUND. */
int store_lessor_time_to_live(const struct store_lessor *l, int64_t id,
                              int64_t now_ms, int64_t *remaining_s,
                              int64_t *granted_s);
/* Records a checkpoint that applied (every node). */
int store_lessor_checkpoint(struct store_lessor *l, int64_t id,
                            int64_t remaining_s);

/* Becomes primary: every lease gets deadline now + remaining (or TTL) +
 * extend_ms. */
void store_lessor_promote(struct store_lessor *l, int64_t now_ms,
                          int64_t extend_ms);
/* Stops being primary: no deadlines, nothing expires. */
void store_lessor_demote(struct store_lessor *l);
bool store_lessor_is_primary(const struct store_lessor *l);

/* Up to max lease ids whose deadline is <= now (primary only), earliest
 * first. A reported lease is not reported again before expiry_retry_ms. */
size_t store_lessor_expired(struct store_lessor *l, int64_t now_ms,
                            int64_t *ids, size_t max);

struct store_lessor_cp {
  int64_t id;
  int64_t remaining_s;
};
/* Up to max leases whose checkpoint is due (primary only); each is due
 * again checkpoint_interval_ms later. Leases with less than one interval
 * left are not checkpointed (they will expire or be renewed first). */
size_t store_lessor_checkpoints(struct store_lessor *l, int64_t now_ms,
                                struct store_lessor_cp *out, size_t max);

size_t store_lessor_count(const struct store_lessor *l);

#endif

/* keel_flags.h — libkeel's feature-flag cache: the manual.
 *
 * A flag set SET is the prefix /flags/SET/ (flags/flags.h describes the
 * layout). keel_flag_cache_open() reads the whole prefix at one revision,
 * compiles it into an immutable struct flags_set, and keeps it current with
 * one watch on the prefix. Every change batch compiles a new set and swaps
 * it in atomically; evaluation is then local (no network round trip) and
 * may run on any thread while the loop thread swaps sets.
 *
 * THREADS
 *
 *   keel_flag_cache_open, _close, _revision, _stats and the on_change
 *   callback: the client's loop thread only (like the rest of libkeel).
 *   keel_flag_cache_evaluate, keel_flag_cache_acquire and
 *   keel_flag_eval_release: any thread, at any time between open and close.
 *   Readers take no lock: they register in one of two atomic reader
 *   counters for the few instructions it takes to load the current set and
 *   take a reference to it (docs/decisions/0840-flag-cache-set-swap.md).
 *   A set a reader holds stays valid after a swap, and after close, until
 *   the reader releases it.
 *
 * CHANGES
 *
 *   on_change gets the keys of the flags whose definition changed in one
 *   watch batch: added, modified (the stored bytes differ) or deleted. A
 *   change of /flags/SET/$evaluators reports every flag of the set (a $ref
 *   may have changed meaning) and the key "$evaluators". The first complete
 *   load reports every flag (the cache is ready when revision > 0). When the
 *   watch is compacted (the client was away longer than the server keeps
 *   history) or canceled by the server, the cache reads the prefix again,
 *   compiles it, and reports every key whose bytes differ from before. A
 *   broken connection needs nothing: libkeel resumes the watch without a
 *   gap. The keys are valid during the callback only.
 *
 * INVALID DEFINITIONS
 *
 *   Validation on write makes them rare, but a stored definition the
 *   compiler refuses (or one over FLAGS_MAX_DEF_BYTES, or a key beyond
 *   FLAGS_MAX_FLAGS) is skipped: evaluating it answers FLAG_NOT_FOUND. It is
 *   logged and counted in keel_flag_cache_stats(). An invalid $evaluators
 *   document is treated as absent (flags with a $ref answer PARSE_ERROR).
 *
 * ERRORS: functions return 0 or a negative code (keel_error.h).
 */
#ifndef KEEL_FLAGS_CACHE_H
#define KEEL_FLAGS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "flags.h"
#include "keel.h"

typedef struct keel_flag_cache keel_flag_cache;

/* Keys: changed flag keys (NUL-terminated; valid during the call). */
typedef void (*keel_flag_change_cb)(keel_flag_cache *cache,
                                    const char *const *keys, size_t n_keys,
                                    void *ud);

struct keel_flag_cache_opts {
  /* Delay before reading the prefix again after a failed read or a watch
   * the server ended (other than by compaction, which re-reads at once).
   * 0 = 200 ms. */
  uint64_t retry_ms;
};

/* Opens a cache of flag set set_name (1..FLAGS_MAX_KEY_BYTES bytes, no
 * '/') on client c. Returns at once; the first read runs on the loop and
 * on_change (may be NULL) reports every flag when it completes. Until then
 * the set is empty (every key FLAG_NOT_FOUND) and revision is 0. opts may
 * be NULL. A failed read is retried every retry_ms until close; the last
 * error is in the stats.
 * Errors: -EINVAL (bad name, NULL c or out), -ENOMEM, or what keel_range
 * returns (KEEL_ECANCELED: the client is closing). On error nothing is
 * allocated and on_change is never called. */
int keel_flag_cache_open(keel_client *c, const char *set_name,
                         const struct keel_flag_cache_opts *opts,
                         keel_flag_change_cb on_change, void *ud,
                         keel_flag_cache **out);

/* The result of an evaluation, holding a reference to the set it came
 * from: r.value, r.variant and r.metadata point into it and stay valid
 * until keel_flag_eval_release(). */
struct keel_flag_eval {
  struct flags_result r;
  struct flags_set *set; /* owned reference */
};

/* Evaluates flag `key` on the current set: exactly flags_evaluate(set,
 * key, type, ctx, now, &out->r). Thread-safe; no network, no lock. Always
 * release out afterwards (also on error). Returns 0, or -EINVAL for a NULL
 * argument (then out->set is NULL). */
int keel_flag_cache_evaluate(keel_flag_cache *cache, const char *key,
                             enum flags_type type, const json_t *ctx,
                             int64_t now, struct keel_flag_eval *out);
void keel_flag_eval_release(struct keel_flag_eval *e);

/* The current set with a new reference (never NULL): for many evaluations
 * against one consistent snapshot. Release with flags_set_unref().
 * Thread-safe. */
struct flags_set *keel_flag_cache_acquire(keel_flag_cache *cache);

/* The store revision the current set reflects (0 before the first load).
 * Loop thread. */
int64_t keel_flag_cache_revision(const keel_flag_cache *cache);

struct keel_flag_cache_stats {
  uint64_t swaps;   /* sets swapped in, the first load included */
  uint64_t resyncs; /* full re-reads after the first (compaction...) */
  size_t invalid;   /* definitions skipped in the current set */
  size_t n_flags;   /* flags in the current set */
  int last_error;   /* last error code, 0 if none */
  char last_error_message[256]; /* "" if none */
};
/* Copies the counters. Loop thread. */
void keel_flag_cache_stats(const keel_flag_cache *cache,
                           struct keel_flag_cache_stats *out);

/* Stops the watch and frees the cache once nothing of it is in flight;
 * done (may be NULL) is called then, on the loop. on_change is never
 * called after this call; calling this from on_change is allowed. Close
 * every cache of a client before or together with keel_client_close (the
 * cache's timer is a handle on the loop). No thread may call
 * keel_flag_cache_evaluate or _acquire after close begins; sets already held
 * stay valid. */
void keel_flag_cache_close(keel_flag_cache *cache, void (*done)(void *ud),
                           void *ud);

#endif

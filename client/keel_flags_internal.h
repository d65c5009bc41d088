/* keel_flags_internal.h — the parts of the flag cache the unit tests drive
 * without a server: a cache with no client, fed synthetic watch events and
 * range results on the test's own thread (standing in for the loop). */
#ifndef KEEL_FLAGS_INTERNAL_H
#define KEEL_FLAGS_INTERNAL_H

#include "keel_flags.h"

/* A cache with no client and no watch, for set_name. */
int keel_flag_cache_new_detached(const char *set_name,
                                 keel_flag_change_cb on_change, void *ud,
                                 keel_flag_cache **out);
/* Applies one watch batch's events at revision rev (what the watch
 * callback does), swapping in a new set when a definition changed. */
int keel_flag_cache_apply_events(keel_flag_cache *c,
                                 const struct keel_event *events, size_t n,
                                 int64_t rev);
/* Replaces the whole content by kvs at revision rev (what a full read
 * does), reporting the keys whose bytes differ. */
int keel_flag_cache_apply_snapshot(keel_flag_cache *c,
                                   const struct keel_kv *kvs, size_t n,
                                   int64_t rev);
/* Frees a detached cache. */
void keel_flag_cache_free_detached(keel_flag_cache *c);

#endif

/* store_watch.h — the store as the watch hub's history reader.
 *
 * The hub (watch_hub.h) reads history through a callback so that it needs
 * no LMDB; this is that callback for a keel store. Pass it as
 * watch_hub_config.read_history with history_ctx = the struct store *.
 * It may be called from any thread (store reads are LMDB snapshots).
 */
#ifndef KEEL_STORE_WATCH_H
#define KEEL_STORE_WATCH_H

#include "store.h"
#include "watch_hub.h"

/* Implements watch_read_history_fn over store_history_read(). A compaction
 * at C removes the deletions at C too, so the first readable revision is
 * C + 1: from_rev <= C gives KEEL_ECOMPACTED with *compact_rev = C + 1.
 * Errors: that, KEEL_EFUTUREREV, -EINVAL, -ENOMEM, -EIO, or what `emit`
 * returned. */
int store_watch_read_history(void *store, const struct watch_history_req *req,
                             watch_emit_fn emit, void *emit_ctx,
                             int64_t *next_rev, int64_t *compact_rev);

#endif

/* store_watch.c — store_history_read() shaped as the watch hub's
 * read_history callback (see store_watch.h). */
#include "store_watch.h"

#include "keel_error.h"

int store_watch_read_history(void *store, const struct watch_history_req *req,
                             watch_emit_fn emit, void *emit_ctx,
                             int64_t *next_rev, int64_t *compact_rev) {
  struct store *st = store;
  struct store_history h;
  int rc = store_history_read(st, req->key, req->key_len, req->range_end,
                              req->range_end_len, req->from_rev,
                              req->max_rev + 1, req->max_events, req->max_bytes,
                              req->want_prev != 0, &h);
  if (rc == KEEL_ECOMPACTED) {
    int64_t compacted;
    store_revisions(st, NULL, &compacted);
    *compact_rev = compacted + 1;
    return rc;
  }
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < h.n_events; i++) {
    if ((rc = emit(emit_ctx, &h.events[i])) != 0) {
      store_history_free(&h);
      return rc;
    }
  }
  *next_rev = h.next_rev;
  store_history_free(&h);
  return 0;
}

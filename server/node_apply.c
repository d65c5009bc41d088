/* node_apply.c — adapts server/apply's apply_entries() to the node's apply
 * hook; see node_apply.h. Runs on the disk thread (a store writer). */
#include "node_apply.h"

#include <errno.h>
#include <stdlib.h>

#include "apply.h"

static int codec_apply(void *ud, struct store *st,
                       const struct store_entry *ents, size_t n,
                       const struct store_apply_batch *extra,
                       struct node_apply_out *out) {
  (void)ud;
  struct apply_result *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  int rc = apply_entries(st, ents, n, extra, r);
  if (rc != 0) {
    free(r);
    return rc; /* the node stops: a store that cannot apply is not safe */
  }
  for (size_t i = 0; i < n && i < r->n; i++) {
    out->ids[i] = r->reqs[i].id;
    out->proposers[i] = r->reqs[i].proposer;
  }
  out->responses = r->store.responses;
  out->result = r;
  return 0;
}

static void codec_release(void *ud, struct node_apply_out *out) {
  (void)ud;
  struct apply_result *r = out->result;
  if (r) {
    apply_result_free(r);
    free(r);
  }
  out->result = NULL;
  out->responses = NULL;
}

struct node_apply_ops node_apply_codec_ops(void) {
  return (struct node_apply_ops){
      .ud = NULL, .apply = codec_apply, .release = codec_release};
}

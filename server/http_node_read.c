/* http_node_read.c — keeld's http_kv_reader over the node and its store;
 * see http_node_read.h.
 *
 * Invariant: `waiting` counts the node_read() calls whose callback has not
 * run yet; each barrier call ends in exactly one done(), either at once
 * (refused) or from that callback.
 */
#include "http_node_read.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "keel_error.h"

struct http_node_reader {
  struct node *node;
  struct store *st;
  size_t max_waiting;
  size_t waiting;
  bool detached;
};

struct waiter {
  struct http_node_reader *r;
  void (*done)(void *arg, int err);
  void *arg;
};

static void read_point(void *ud, int status) {
  struct waiter *w = ud;
  assert(w->r->waiting > 0);
  w->r->waiting--;
  w->done(w->arg, status);
  free(w);
}

static void barrier(void *ctx, void (*done)(void *arg, int err), void *arg) {
  struct http_node_reader *r = ctx;
  if (r->detached) {
    done(arg, KEEL_ESTOPPED);
    return;
  }
  struct node_status s;
  node_status(r->node, &s);
  if (s.leader == 0) {
    done(arg, KEEL_ENOLEADER);
    return;
  }
  if (r->waiting >= r->max_waiting) {
    done(arg, KEEL_EBUSY);
    return;
  }
  struct waiter *w = malloc(sizeof(*w));
  if (w == NULL) {
    done(arg, -ENOMEM);
    return;
  }
  w->r = r;
  w->done = done;
  w->arg = arg;
  r->waiting++;
  int rc = node_read(r->node, true, read_point, w);
  if (rc != 0) { /* not called back */
    r->waiting--;
    free(w);
    done(arg, rc);
  }
}

static int cur_rev(void *ctx, int64_t *cur, int64_t *comp) {
  struct http_node_reader *r = ctx;
  return store_revisions(r->st, cur, comp);
}

static int range(void *ctx, const struct store_range_req *req,
                 struct store_range_result *out) {
  struct http_node_reader *r = ctx;
  return store_range(r->st, req, out);
}

int http_node_reader_new(struct node *n, struct store *st, size_t max_waiting,
                         struct http_node_reader **out) {
  if (n == NULL || st == NULL || out == NULL)
    return -EINVAL;
  struct http_node_reader *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return -ENOMEM;
  r->node = n;
  r->st = st;
  r->max_waiting = max_waiting ? max_waiting : HTTP_NODE_READ_MAX_WAITING;
  *out = r;
  return 0;
}

void http_node_reader_get(struct http_node_reader *r,
                          struct http_kv_reader *out) {
  out->ctx = r;
  out->read_barrier = barrier;
  out->current_revision = cur_rev;
  out->range = range;
}

void http_node_reader_detach(struct http_node_reader *r) {
  r->detached = true;
}

size_t http_node_reader_waiting(const struct http_node_reader *r) {
  return r->waiting;
}

void http_node_reader_free(struct http_node_reader *r) {
  if (r == NULL)
    return;
  assert(r->waiting == 0);
  free(r);
}

/* http_node_read.h — the read side keeld gives its HTTP endpoints (/config,
 * OFREP): a struct http_kv_reader (http_config.h) whose read barrier is a
 * linearizable read point of the node (node_read(..., linearizable=true):
 * ReadIndex, then this node applied up to the read index), and whose
 * current_revision / range read the node's store at once. A handler calls
 * the barrier, then takes one revision and reads every source at it, so a
 * response is one snapshot no older than any write acknowledged before the
 * request (docs/decisions/0962).
 *
 * The barrier fails fast, with a keel code the handlers answer as 503:
 *   KEEL_ENOLEADER  this node knows no leader (no ReadIndex is attempted,
 *                   so the client is not held for the request timeout)
 *   KEEL_EBUSY      max_waiting requests wait for a read point already
 *   KEEL_ESTOPPED   detached (the node is stopping or gone)
 *   and node_read()'s own outcomes (KEEL_ETIMEOUT, KEEL_EBUSY, ...).
 *
 * THREADS. Everything on the node's loop thread.
 * OWNERSHIP. Borrows the node and the store. Call http_node_reader_detach()
 * before the node is stopped; free only after every request that used it
 * was answered (after the listeners' shutdown callback).
 */
#ifndef KEEL_HTTP_NODE_READ_H
#define KEEL_HTTP_NODE_READ_H

#include <stddef.h>

#include "http_config.h"
#include "node.h"
#include "store.h"

/* Requests of one node waiting for a read point, by default. */
#define HTTP_NODE_READ_MAX_WAITING 512

struct http_node_reader;

/* Creates the reader. max_waiting 0 = HTTP_NODE_READ_MAX_WAITING.
 * Errors: -EINVAL (NULL node or store), -ENOMEM. */
int http_node_reader_new(struct node *n, struct store *st, size_t max_waiting,
                         struct http_node_reader **out);

/* Fills *out with the reader's functions (ctx = r), for http_config_new()
 * and http_ofrep_new(). */
void http_node_reader_get(struct http_node_reader *r,
                          struct http_kv_reader *out);

/* From now on every barrier fails with KEEL_ESTOPPED at once; reads that
 * wait already are completed by node_stop(). */
void http_node_reader_detach(struct http_node_reader *r);

/* Requests waiting for a read point now. */
size_t http_node_reader_waiting(const struct http_node_reader *r);

/* Frees r (NULL is allowed). Only once nothing waits (waiting() is 0). */
void http_node_reader_free(struct http_node_reader *r);

#endif

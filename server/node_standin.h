/* node_standin.h — TEST STAND-IN for the request codec (server/apply's
 * apply_entries(), being written on the codec branch): a node_apply_ops
 * whose apply() understands only keelstore.Request's `put`
 * (etcdserverpb.PutRequest key, value, lease, prev_kv, ignore_value,
 * ignore_lease). Every other request is applied as a no-op whose response
 * error is -ENOTSUP (KEEL_EBADMSG for bytes that are no Request at all).
 * keeld uses it until the codec lands; node tests use it for good.
 */
#ifndef KEEL_NODE_STANDIN_H
#define KEEL_NODE_STANDIN_H

#include "node.h"

/* The stand-in's ops (ud unused). */
struct node_apply_ops node_standin_put_ops(void);

/* Encodes keelstore.Request{put{key, value}} (id/proposer left unset, as
 * node_propose() wants) into a malloc'd buffer. Returns 0 or -ENOMEM. */
int node_standin_encode_put(const uint8_t *key, size_t key_len,
                            const uint8_t *value, size_t value_len,
                            uint8_t **out, size_t *out_len);

#endif

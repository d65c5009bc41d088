/* node_apply.h — the node's apply hook backed by server/apply: every
 * committed entry is decoded as a keelstore.Request and applied with etcd's
 * semantics (apply_entries()), in the same LMDB txn as the Ready's log
 * append and hard state. keeld uses it; node_standin.h remains only as the
 * node unit tests' put-only stand-in. */
#ifndef KEEL_NODE_APPLY_H
#define KEEL_NODE_APPLY_H

#include "node.h"

/* The hook (ud unused). node_applied.result points at the batch's
 * struct apply_result (server/apply.h), so a service can encode the etcd
 * response with apply_encode_response(result, index, ...). */
struct node_apply_ops node_apply_codec_ops(void);

#endif

/* svc_kv.h — the etcd v3 KV service (Range, Put, DeleteRange, Txn, Compact)
 * and the read-only parts of Maintenance (Status) and Cluster (MemberList)
 * on keeld's client port, written against grpc_server.h, node.h and the
 * codec (etcd_codec.h, apply.h).
 *
 * A write: keel_pb_unpack (after etcd_wire_check_txn for a Txn) ->
 * etcd_check_* -> validation on write of /flags/ keys (kv_flags.h: Put and
 * every put of every Txn branch; refused with InvalidArgument naming the
 * key, the JSON path and the rule) -> quota check (Put, Txn with a
 * put: store_quota_exceeded -> "etcdserver: mvcc: database space
 * exceeded") -> wrapped in a
 * keelstore.Request, apply_request_encode(--max-request-bytes) ->
 * node_propose (a follower forwards) -> answered with
 * apply_encode_response() once applied here, or with etcd_error() of the
 * node's outcome (KEEL_EUNKNOWN / KEEL_ETIMEOUT: "request timed out"...).
 * A read: node_read(linearizable unless serializable) -> store_range ->
 * etcd_encode_range.
 *
 * THREADS. Everything on the loop thread of the listeners and the node.
 * OWNERSHIP. The service borrows node, store and cfg; it must be freed
 * after the listeners it was registered on. svc_kv_detach() is called when
 * the node stops: every call arriving afterwards is answered with
 * "etcdserver: server stopped" (the node object goes away before the
 * listeners' grace period ends). Calls in flight are completed by the node
 * (node_stop completes every waiter).
 */
#ifndef KEEL_SVC_KV_H
#define KEEL_SVC_KV_H

#include "grpc_server.h"

struct node;
struct store;
struct keel_config;
struct svc_kv;

/* The version Maintenance.Status reports (etcdctl prints it; the etcd API
 * version keel speaks, as /version's "etcdserver"). */
#define SVC_KV_STATUS_VERSION "3.4.0"

/* Creates the service. Returns 0 or -ENOMEM. */
int svc_kv_new(struct node *node, struct store *st,
               const struct keel_config *cfg, struct svc_kv **out);

/* Registers /etcdserverpb.KV/{Range,Put,DeleteRange,Txn,Compact},
 * /etcdserverpb.Maintenance/Status and /etcdserverpb.Cluster/MemberList on
 * srv (one call per listener). Returns 0 or keel_grpc_server_register()'s
 * error. */
int svc_kv_register(struct svc_kv *kv, keel_grpc_server *srv);

/* The node is stopping / gone: answer new calls with "server stopped". */
void svc_kv_detach(struct svc_kv *kv);

void svc_kv_free(struct svc_kv *kv);

#endif

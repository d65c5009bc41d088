/* svc_maint.h — the rest of etcd's Maintenance service on keeld's client
 * port (Status is svc_kv.h's), the node's /metrics page, and the two
 * background duties that keep the database small: automatic compaction
 * (etcd's --auto-compaction-mode/-retention, proposed by the leader) and the
 * physical removal of compacted history (store_compact_step) on the disk
 * thread.
 *
 *   Alarm        through the log (GET, ACTIVATE, DEACTIVATE), so every node
 *                holds the same alarms; answered once applied here.
 *   Defragment   this node's store: one disk-thread job that finishes the
 *                pending physical compaction, then store_defragment().
 *   Hash         keel's HashKV at the current revision (etcd hashes its
 *                whole bbolt file; keel has no equivalent of the raft
 *                buckets, see docs/etcd-compat.md).
 *   HashKV       store_hash_kv() at a revision: hash + compact_revision,
 *                header revision = current revision (etcd's semantics).
 *   Snapshot     server stream of store_snapshot_*(): the bytes end with
 *                the SHA-256 of everything before them (etcd's trailer),
 *                read on the loop in SVC_MAINT_SNAP_CHUNK steps paced by
 *                the stream's send buffer; at most SVC_MAINT_MAX_SNAPSHOTS
 *                at once (each holds an LMDB read txn).
 *   MoveLeader   node_transfer_leader(), then waits (polling the leader
 *                every 100 ms tick) until the target leads, or answers
 *                etcd's "leader transfer took too long" after the client's
 *                deadline or 10 election timeouts.
 *
 * Errors carry etcd's codes and messages (etcd_error(); a learner gets
 * "rpc not supported for learner" for all of them, as in etcd 3.4).
 *
 * /metrics (HTTP/1.1 GET on the client port): Prometheus text of the node
 * (raft), the disk (fsync/apply histograms), peers, gRPC calls (method and
 * code, latency), watches and the database. Method labels are bounded:
 * SVC_MAINT_MAX_METHODS distinct names; calls to unknown methods count as
 * method="unknown". The names are the contract documented in
 * docs/operations.md.
 *
 * THREADS. Loop thread only (disk work runs through node_disk_submit()).
 * OWNERSHIP. Borrows node, store, cfg and watch. svc_maint_detach() when
 * the node stops (new calls get "server stopped", timers stop, snapshot
 * streams end); svc_maint_free() after the listeners were freed, then run
 * the loop once so the timer handles close.
 */
#ifndef KEEL_SVC_MAINT_H
#define KEEL_SVC_MAINT_H

#include <stdint.h>
#include <uv.h>

#include "client_listener.h"
#include "grpc_server.h"

struct node;
struct store;
struct keel_config;
struct svc_watch;
struct svc_maint;

#define SVC_MAINT_SNAP_CHUNK (64 * 1024)
#define SVC_MAINT_MAX_SNAPSHOTS 4
#define SVC_MAINT_MAX_METHODS 64
/* The largest /metrics page. */
#define SVC_MAINT_METRICS_MAX (4u << 20)

/* Creates the service and starts its timers (auto-compaction as cfg says,
 * physical compaction). watch may be NULL (no watch figures). Returns 0,
 * -EINVAL (a retention store_autocompact_init refuses), -ENOMEM. */
int svc_maint_new(uv_loop_t *loop, struct node *node, struct store *st,
                  const struct keel_config *cfg, struct svc_watch *watch,
                  struct svc_maint **out);

/* Registers the Maintenance methods (but Status) on l's gRPC server, sets
 * the server's call observer (for the gRPC metrics) and routes GET
 * /metrics. One call per listener. Returns 0 or the first error of
 * keel_grpc_server_register() / keel_client_listener_route(). */
int svc_maint_register(struct svc_maint *m, keel_client_listener *l);

/* The node is stopping: new calls are answered "server stopped", timers
 * stop, open snapshot streams end with the same error. */
void svc_maint_detach(struct svc_maint *m);

/* Frees the service (closes its handles; memory released on the next loop
 * run). NULL allowed. */
void svc_maint_free(struct svc_maint *m);

/* Counters for tests. */
struct svc_maint_stats {
  uint64_t auto_compactions; /* Compact proposals made by the policy */
  uint64_t compact_steps;    /* store_compact_step jobs run */
  uint64_t defrags;
  uint64_t snapshots;          /* streams completed */
  uint64_t snapshots_canceled; /* streams the client ended first */
  size_t open_snapshots;       /* streams holding a store snapshot now */
  size_t move_waits;           /* MoveLeader calls waiting for the new leader */
};
void svc_maint_stats(const struct svc_maint *m, struct svc_maint_stats *out);

#endif

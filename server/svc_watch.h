/* svc_watch.h — the etcd v3 Watch service (etcdserverpb.Watch/Watch, a
 * bidirectional gRPC stream) over the watch hub (store/watch_hub.h).
 *
 * This header is the manual. Everything runs on the loop thread.
 *
 * Wiring (keeld.c):
 *   svc_watch_new(loop, store)            before node_new(): the hub starts
 *                                         at the store's current revision
 *   node_options.on_applied = svc_watch_on_applied, applied_ud = the service
 *                                         every applied batch is published
 *   svc_watch_set_node(sw, node, election_ms)  response headers (cluster,
 *                                         member, term), hasleader checks
 *   svc_watch_register(sw, grpc_server)   for each client listener
 *   svc_watch_free(sw)                    after the listeners and the node
 *                                         are gone
 *
 * The stream (etcd semantics, docs/etcd-compat.md §6):
 *   create   -> a "created" response (watch id, header = hub revision) sent
 *               before any event of that watcher; a create the hub refuses
 *               gets {created, canceled, cancel_reason}.
 *   cancel   -> the hub queues {canceled}; nothing follows for that id.
 *   progress -> the hub queues {watch_id -1, header = revision} once the
 *               stream's watchers are in sync.
 *   events   -> pulled from the hub only while the gRPC stream can take them
 *               (at most one encoded response is held here when the send
 *               buffer is full; inbound requests are paused meanwhile), so
 *               a slow client costs the hub's bounded backlog, not memory
 *               here.
 *   a start revision at or below the compaction -> {canceled,
 *               compact_revision}.
 *   The client ending its side does not end the stream (etcd keeps
 *   sending); the stream ends when the client resets it or the connection
 *   goes.
 *
 * Catch-up: while some watcher is behind, a loop timer reads history in
 * bounded chunks (SVC_WATCH_CATCHUP_EVENTS / _BYTES per turn). Progress
 * notifications for progress_notify watchers: every
 * SVC_WATCH_PROGRESS_MS (etcd's default, 10 min).
 */
#ifndef KEEL_SVC_WATCH_H
#define KEEL_SVC_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "grpc_server.h"
#include "node.h"
#include "store.h"

#define SVC_WATCH_PROGRESS_MS (10u * 60 * 1000)
#define SVC_WATCH_CATCHUP_EVENTS 1000
#define SVC_WATCH_CATCHUP_BYTES (1u << 20)
/* Event bytes (keys + values) per WatchResponse: etcd's default
 * --max-request-bytes, as etcd bounds its watch responses. */
#define SVC_WATCH_MAX_BATCH_BYTES (1536u * 1024)
/* Election timeouts without a leader before hasleader streams end (etcd's
 * maxNoLeaderCnt). */
#define SVC_WATCH_NO_LEADER_TICKS 3

struct svc_watch;

/* Creates the service and its hub at the store's current revision. The
 * store is borrowed and must outlive the service. Errors: the store's
 * (store_revisions), watch_hub_new()'s, -ENOMEM. */
int svc_watch_new(uv_loop_t *loop, struct store *st, struct svc_watch **out);

/* The node whose ids/term go into response headers; NULL (none yet, or it
 * stopped; unit tests run without one) puts zeros there and skips the
 * leader checks.
 * election_ms (the node's --election-timeout; 0: no check) paces the
 * leader check: after SVC_WATCH_NO_LEADER_TICKS checks in a row with no
 * leader known, every stream opened with metadata `hasleader: true` (what
 * clientv3 sends) ends with UNAVAILABLE "etcdserver: no leader", as etcd's
 * monitorLeader does, so its client resumes on a member that has one. A new
 * such stream is refused the same way while no leader is known. */
void svc_watch_set_node(struct svc_watch *sw, struct node *n,
                        uint64_t election_ms);

/* Registers /etcdserverpb.Watch/Watch. Errors: keel_grpc_server_register's. */
int svc_watch_register(struct svc_watch *sw, keel_grpc_server *srv);

/* node_applied_fn for node_options.on_applied (ud = the service). out, when
 * not NULL, must come from server/node_apply.h's hook (out->result is a
 * struct apply_result). Publishes each new revision of the batch to the
 * hub, in order; after a snapshot install the hub jumps to the store's
 * revision (watchers catch up from history). A batch the hub refuses
 * (revisions out of order: a bug) is logged and turned into a jump, so
 * watchers re-read history instead of missing events. */
void svc_watch_on_applied(void *ud, const struct node_apply_out *out,
                          bool snapshot);

struct svc_watch_stats {
  size_t streams;      /* open Watch streams */
  size_t watchers;     /* the hub's */
  uint64_t sent;       /* WatchResponses queued to gRPC */
  uint64_t events;     /* events in them */
  uint64_t stalled;    /* sends that found the stream's buffer full */
  uint64_t victimized; /* the hub's: watchers that fell back to history */
};
void svc_watch_stats(const struct svc_watch *sw, struct svc_watch_stats *st);

/* Closes the service: streams still open are dropped (their gRPC calls must
 * be gone already: free the listeners first), the hub freed, the loop
 * handles closed (the memory is released in their close callbacks, so run
 * the loop afterwards). */
void svc_watch_free(struct svc_watch *sw);

#endif

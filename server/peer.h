/* peer.h — the peer transport: keeld's TCP connections to the other members,
 * carrying keelraft.PeerFrame messages (proto/raft.proto), on one libuv loop.
 *
 * Connections (decision 0650). Every node dials every peer and sends only on
 * that outbound connection; the connections peers dial to it are for
 * receiving only. So a pair of nodes holds two TCP connections, one per
 * direction, and no tie-break is needed when both dial at once.
 *
 * Wire. A frame is a 4-byte big-endian length, then that many bytes of an
 * encoded PeerFrame. The length is checked against max_frame_bytes before
 * any of the body is read; a larger frame closes the connection. The first
 * frame in each direction is a Hello: the dialer sends its Hello at once, the
 * listener checks it (protocol version, cluster id, token, a member id it
 * knows under that name) and answers with its own, which the dialer checks
 * the same way (and that it reached the member it meant to dial). A mismatch
 * is logged with both sides' values and the connection is closed. Frames
 * queued for a peer are written only after its Hello was accepted.
 *
 * Sending. peer_transport_send() encodes the frame into the peer's send
 * queue at once and returns; frames go out in order. The queue is bounded in
 * bytes and in frames (frames handed to the socket count until written).
 * While a peer is being dialed, frames wait in the queue; a failed dial
 * drops them (they would be stale by the next attempt) and reports the peer
 * unreachable. When the queue is full, the send fails with KEEL_EBUSY and
 * the owner's on_unreachable is called (once, and again only after a frame
 * got through since): memory does not grow with a dead or slow peer. On a
 * lost connection, frames already handed to the socket are lost (raft
 * retransmits), queued ones wait for the next connection, and on_unreachable
 * is called.
 *
 * Reconnecting. A failed or lost outbound connection is dialed again after a
 * delay drawn uniformly from [0, min(backoff_max, backoff_min * 2^n)] (full
 * jitter, n = failures since the last good handshake). Connections that do
 * not finish their handshake within handshake_timeout_ms are closed.
 *
 * Streams. peer_transport_stream() sends a long sequence of frames (a
 * snapshot) without holding it in memory or stalling the loop: the
 * transport calls the owner's pull function, from the loop, whenever the
 * peer's queue is at most half full, and the pull function sends the next
 * chunk with peer_transport_send().
 *
 * All functions run on the loop thread. Functions that take a callback and
 * return an error never call it.
 */
#ifndef KEEL_PEER_H
#define KEEL_PEER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "raft.pb-c.h"

#define PEER_PROTOCOL_VERSION 1
#define PEER_MAX_LISTENERS 8 /* as many as --listen-peer-urls may hold */

struct keel_config;

struct peer_transport;

/* A frame arrived from member `from` (an authenticated inbound connection).
 * `frame` is valid only during the call. The callback may call any
 * peer_transport function, including peer_transport_close(). */
typedef void (*peer_frame_fn)(void *ctx, uint64_t from,
                              const Keelraft__PeerFrame *frame);

/* Member `peer` could not be reached: a send was refused because its queue
 * is full, or its connection was lost. The node forwards this to raft's
 * report-unreachable. */
typedef void (*peer_unreachable_fn)(void *ctx, uint64_t peer);

/* A stream asks for its next frame: send it with peer_transport_send(t, to,
 * ...) and return 1 if more will follow, 0 if that was the last one, or a
 * negative code to abort the stream (the done callback then gets it). */
typedef int (*peer_pull_fn)(void *ud, struct peer_transport *t, uint64_t to);

/* The stream ended: 0 once its last frame was written to the socket;
 * KEEL_EUNAVAILABLE if the connection was lost, KEEL_ECANCELED if the peer
 * was removed or the transport closed, or the pull function's error. */
typedef void (*peer_stream_done_fn)(void *ud, int status);

typedef void (*peer_closed_fn)(void *ctx);

struct peer_transport_options {
  /* 0: joining an existing cluster whose id is not known yet; the first
   * accepted Hello (token and member checked) tells it, and peers accept
   * a Hello with cluster id 0 from a member they know. */
  uint64_t cluster_id;
  const char *cluster_token; /* copied */
  uint64_t member_id;        /* this node */
  const char *member_name;   /* copied */

  size_t max_frame_bytes;        /* PeerFrame body, both directions */
  size_t queue_bytes;            /* per peer, >= max_frame_bytes */
  size_t queue_frames;           /* per peer, >= 2 */
  uint64_t backoff_min_ms;       /* 0: 50 */
  uint64_t backoff_max_ms;       /* 0: 2000 */
  uint64_t handshake_timeout_ms; /* 0: 5000; also bounds connecting */
  size_t max_pending_inbound;    /* not yet authenticated; 0: 16 */
  uint64_t seed;                 /* for the backoff jitter */

  peer_frame_fn on_frame;             /* required */
  peer_unreachable_fn on_unreachable; /* may be NULL */
  void *ctx;
};

struct peer_stats {
  int connected;      /* outbound handshake done */
  size_t queue_bytes; /* queued + being written */
  size_t queue_frames;
  size_t max_queue_bytes; /* high-water marks */
  size_t max_queue_frames;
  uint64_t frames_sent; /* written to the socket */
  uint64_t frames_received;
  uint64_t send_refused;   /* KEEL_EBUSY */
  uint64_t frames_dropped; /* queued, then dropped by a failed dial */
  uint64_t unreachable_reports;
  uint64_t handshakes; /* outbound connections established */
  uint64_t dial_failures;
};

struct peer_transport_stats {
  uint64_t inbound_accepted; /* handshakes accepted */
  uint64_t inbound_refused;  /* Hello mismatch, too many, timeout */
  uint64_t protocol_errors;  /* bad length, bad frame, wrong first frame */
  uint64_t oversized_frames;
};

/* Creates a transport on `loop`. Nothing listens or dials yet. If SIGPIPE
 * still has its default action (killing the process when a peer resets a
 * connection being written), it is set to ignored.
 * Errors: -EINVAL (missing callback or token, bounds that cannot hold one
 * frame), -ENOMEM, or a libuv error converted to -errno. */
int peer_transport_init(struct peer_transport **out, uv_loop_t *loop,
                        const struct peer_transport_options *opt);

/* Listens for peers on host:port (an IP literal or a name resolved once,
 * now); may be called for up to PEER_MAX_LISTENERS addresses. Port 0 picks a
 * free port; peer_transport_port() tells which.
 * Errors: -EADDRINUSE, -EINVAL (bad host), KEEL_ELIMIT (too many
 * listeners), KEEL_ESTOPPED, other -errno. */
int peer_transport_listen(struct peer_transport *t, const char *host,
                          uint16_t port);

/* The port of the first working listener, or 0 when not listening. */
uint16_t peer_transport_port(const struct peer_transport *t);

/* Adds member `id` named `name` at host:port and starts dialing it. A host
 * name is resolved asynchronously at each dial.
 * Errors: -EINVAL (id 0, our own id, name or host too long), KEEL_EEXIST
 * (id already added), -ENOMEM. */
int peer_transport_add_peer(struct peer_transport *t, uint64_t id,
                            const char *name, const char *host, uint16_t port);

/* Forgets member `id`: closes its connections (both directions), drops its
 * queue, ends its stream with KEEL_ECANCELED.
 * Errors: KEEL_ENOTFOUND. */
int peer_transport_remove_peer(struct peer_transport *t, uint64_t id);

/* Queues `frame` for member `to` (encoded now; the caller keeps `frame`).
 * Errors: KEEL_ENOTFOUND (unknown member), KEEL_ETOOLARGE (encodes to more
 * than max_frame_bytes), KEEL_EBUSY (queue full; on_unreachable was called
 * unless already reported), -ENOMEM, KEEL_ESTOPPED (transport closing). */
int peer_transport_send(struct peer_transport *t, uint64_t to,
                        const Keelraft__PeerFrame *frame);

/* Starts a stream to `to`: `pull` is called from the loop while the peer's
 * queue is at most half full (bytes and frames); each call sends one frame
 * (chunks should be at most half of queue_bytes). `done` is called once at
 * the end. One stream per peer at a time.
 * Errors: KEEL_ENOTFOUND, KEEL_EUNAVAILABLE (no established connection to
 * the peer now), KEEL_EBUSY (a stream to it is running), KEEL_ESTOPPED. */
int peer_transport_stream(struct peer_transport *t, uint64_t to,
                          peer_pull_fn pull, peer_stream_done_fn done,
                          void *ud);

/* Fills the options that come from keeld's configuration: cluster id and
 * token, this member's id and name, max_frame_bytes, queue_bytes and
 * queue_frames. The rest of *out (callbacks, backoff, seed) is zeroed for
 * the caller to set. `cfg` must outlive the transport's init call only. */
void peer_transport_options_from_config(const struct keel_config *cfg,
                                        struct peer_transport_options *out);

/* Listens on every --listen-peer-urls address and adds every other member
 * of --initial-cluster. Errors: as peer_transport_listen() and
 * peer_transport_add_peer(); `err` (errlen bytes) then names the URL or
 * member. Listeners opened before an error stay open (close the transport).
 */
int peer_transport_start_from_config(struct peer_transport *t,
                                     const struct keel_config *cfg, char *err,
                                     size_t errlen);

/* The cluster id: the configured one, or the one learnt from the first
 * accepted Hello when started with 0 (0 until then). */
uint64_t peer_transport_cluster_id(const struct peer_transport *t);

/* Errors: KEEL_ENOTFOUND. */
int peer_transport_peer_stats(const struct peer_transport *t, uint64_t id,
                              struct peer_stats *out);

void peer_transport_stats(const struct peer_transport *t,
                          struct peer_transport_stats *out);

/* The redial delay after `failures` failed attempts: uniform in
 * [0, min(max_ms, min_ms * 2^failures)] (full jitter), drawn from `random`
 * (any 64-bit value). Exposed for tests. */
uint64_t peer_backoff_delay_ms(uint64_t min_ms, uint64_t max_ms,
                               unsigned failures, uint64_t random);

/* Closes every connection, timer and the listener; running streams end with
 * KEEL_ECANCELED. When all handles are closed, `t` is freed and `closed`
 * (may be NULL) is called. Call once. */
void peer_transport_close(struct peer_transport *t, peer_closed_fn closed,
                          void *ctx);

#endif

/* grpc_client.h — a gRPC client over one HTTP/2 (h2c) connection, on a
 * caller's libuv loop: the transport libkeel's etcd v3 client is built on.
 *
 * A channel is one TCP connection to one endpoint. It connects at once;
 * calls may start before the connection is up (their frames wait in the
 * session). When the connection fails or is lost, every open call ends with
 * UNAVAILABLE and the channel is dead: reconnecting, choosing another
 * endpoint and retrying are the caller's policy (libkeel), not this layer's.
 *
 * Threading: everything on the loop thread; nothing blocks.
 *
 * A call's life:
 *   keel_grpc_client_start -> send 0..n messages (keel_grpc_client_send;
 *   KEEL_EBUSY when the call's send buffer is full: wait for on_writable) ->
 *   keel_grpc_client_close_send (half-close: the server sees END_STREAM) ->
 *   on_message for each response message -> on_status exactly once, last.
 *   After on_status returns, the call is freed: do not touch it.
 *   keel_grpc_client_cancel ends it early (on_status(CANCELLED)); a
 *   deadline ends it with DEADLINE_EXCEEDED.
 *   During on_status, keel_grpc_client_delivery() tells how far the request
 *   got (sent? refused? answered?), decided from HTTP/2 events, never from
 *   the message text: that is what a retry decision may rely on.
 *
 * Bounds: inbound message size (max_recv_msg_bytes, RESOURCE_EXHAUSTED past
 * it with grpc-go's wording), outbound message size, per-call send buffer,
 * open calls per channel. A paused call (keel_grpc_client_pause) holds at
 * most one HTTP/2 stream window of input; the server is slowed by flow
 * control, not buffered here.
 */
#ifndef KEEL_GRPC_CLIENT_H
#define KEEL_GRPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "keel_error.h"
#include "keel_grpc_wire.h"

typedef struct keel_grpc_channel keel_grpc_channel;
typedef struct keel_grpc_client_call keel_grpc_client_call;

struct keel_grpc_channel_config {
  size_t max_recv_msg_bytes;     /* 64 MiB */
  size_t max_send_msg_bytes;     /* 2 MiB, as etcd's clientv3 */
  size_t call_send_buffer_bytes; /* 1 MiB queued per call */
  uint32_t max_calls;            /* 1000 open calls per channel */
  uint64_t connect_timeout_ms;   /* 5000 */
  /* Keepalive, as grpc-go's (etcdctl uses 2 s / 6 s): while calls are open
   * and nothing was read for keepalive_time_ms, send a PING; no PING ACK
   * within keepalive_timeout_ms ends the channel ("keepalive timeout"), so a
   * watch on a silently dead connection learns it. 0 = off (default). */
  uint64_t keepalive_time_ms;
  uint64_t keepalive_timeout_ms; /* 20000 */
};

void keel_grpc_channel_config_default(struct keel_grpc_channel_config *c);

enum keel_grpc_channel_state {
  KEEL_GRPC_CHANNEL_CONNECTING = 0,
  KEEL_GRPC_CHANNEL_READY = 1,
  KEEL_GRPC_CHANNEL_DEAD = 2, /* failed, lost or closed: make a new one */
};

/* Creates a channel and starts connecting to host:port. host is a numeric
 * IPv4/IPv6 address or "localhost". cfg NULL = defaults. Returns 0, -EINVAL
 * for a bad address, -ENOMEM. */
int keel_grpc_channel_new(uv_loop_t *loop, const char *host, int port,
                          const struct keel_grpc_channel_config *cfg,
                          keel_grpc_channel **out);

enum keel_grpc_channel_state
keel_grpc_channel_state(const keel_grpc_channel *ch);

/* Why the channel died (a keel/libuv code), 0 while alive. */
int keel_grpc_channel_error(const keel_grpc_channel *ch);

/* Ends every open call with CANCELLED ("channel closed"), closes the
 * connection and frees the channel once libuv released its handles; cb
 * (may be NULL) is called then. The channel must not be used afterwards. */
void keel_grpc_channel_close(keel_grpc_channel *ch, void (*cb)(void *ud),
                             void *ud);

/* How far a call's request got, decided with its status.
 *   NOT_SENT: no byte of the request (HEADERS or DATA) reached the socket:
 *     the connection never came up, the call was cancelled, timed out or
 *     its channel closed before it was written, or nghttp2 refused to open
 *     the stream. Certainly not processed.
 *   REFUSED: written, but the server declared it unprocessed: RST_STREAM
 *     with REFUSED_STREAM, or a GOAWAY whose last-stream-id is below the
 *     call's stream (RFC 9113 8.7). Certainly not processed.
 *   MAYBE_PROCESSED: written, then the call ended without a status from
 *     the server (connection lost, keepalive or deadline expiry, local
 *     cancel, RST_STREAM other than REFUSED_STREAM, a bad or oversized
 *     response message). The server may have processed it.
 *   ANSWERED: the server ended the stream with a status (grpc-status, or
 *     an HTTP status without one, or END_STREAM inside a message): its
 *     answer; code and message are the server's (or derived from its). */
enum keel_grpc_delivery {
  KEEL_GRPC_NOT_SENT = 0,
  KEEL_GRPC_REFUSED = 1,
  KEEL_GRPC_MAYBE_PROCESSED = 2,
  KEEL_GRPC_ANSWERED = 3,
};

struct keel_grpc_client_callbacks {
  /* Each response message; bytes valid during the call only. */
  void (*on_message)(keel_grpc_client_call *call, const uint8_t *msg,
                     size_t len, void *ud);
  /* Exactly once, last. message is percent-decoded, never NULL. */
  void (*on_status)(keel_grpc_client_call *call, int code, const char *message,
                    void *ud);
  /* Optional: room in the send buffer came back after a KEEL_EBUSY. */
  void (*on_writable)(keel_grpc_client_call *call, void *ud);
};

/* Starts a call of method ("/etcdserverpb.KV/Range") with an optional
 * timeout (0 = none; sent as grpc-timeout and enforced here too). cbs is
 * copied. metadata: NULL or a NULL-terminated list of name, value pairs
 * sent as request headers (e.g. {"token", tok, NULL}).
 * Returns 0; KEEL_EUNAVAILABLE when the channel is dead or going away
 * (callbacks never called); KEEL_EBUSY past max_calls; -EINVAL; -ENOMEM. */
int keel_grpc_client_start(keel_grpc_channel *ch, const char *method,
                           uint64_t timeout_ms, const char *const *metadata,
                           const struct keel_grpc_client_callbacks *cbs,
                           void *ud, keel_grpc_client_call **out);

/* Queues one message (copied). Returns 0; KEEL_EBUSY when the call's send
 * buffer cannot take it (a message always fits an empty buffer);
 * KEEL_ELIMIT over max_send_msg_bytes; -EINVAL after close_send. */
int keel_grpc_client_send(keel_grpc_client_call *call, const void *msg,
                          size_t len);

/* Bytes keel_grpc_client_send() accepts now. */
size_t keel_grpc_client_writable(const keel_grpc_client_call *call);

/* Half-close: END_STREAM after the queued messages. Idempotent. */
int keel_grpc_client_close_send(keel_grpc_client_call *call);

/* Cancels the call: RST_STREAM(CANCEL) to the server and on_status(
 * CANCELLED, "canceled by the client") — before this returns, or, when
 * called from inside a callback of the same channel, right after that
 * callback returns. Either way the call must not be used afterwards. */
void keel_grpc_client_cancel(keel_grpc_client_call *call);

/* The call's delivery (above). Valid only inside its on_status. */
enum keel_grpc_delivery
keel_grpc_client_delivery(const keel_grpc_client_call *call);

/* Stop / restart delivering messages. While paused, input is held and not
 * acknowledged to the server's flow-control window. Resume delivers what
 * was held (and, if the stream ended meanwhile, the status). */
void keel_grpc_client_pause(keel_grpc_client_call *call);
void keel_grpc_client_resume(keel_grpc_client_call *call);

/* Convenience: a unary call. metadata as for keel_grpc_client_start
 * (e.g. {"hasleader", "true", NULL}). cb gets the status, the delivery
 * and, when code is OK, the one response message (bytes valid during cb
 * only). Returns as keel_grpc_client_start; once it returned 0, cb is
 * called exactly once (a request that cannot be queued ends the call with
 * RESOURCE_EXHAUSTED or INTERNAL through cb). */
typedef void (*keel_grpc_unary_cb)(int code, const char *message,
                                   enum keel_grpc_delivery delivery,
                                   const uint8_t *resp, size_t resp_len,
                                   void *ud);
int keel_grpc_client_unary(keel_grpc_channel *ch, const char *method,
                           const void *req, size_t req_len, uint64_t timeout_ms,
                           const char *const *metadata, keel_grpc_unary_cb cb,
                           void *ud);

#endif

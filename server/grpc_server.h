/* grpc_server.h — gRPC over HTTP/2 (h2c) for the client port: the method
 * dispatch table and the call API that the etcd v3 services are written
 * against. The connection handling (accept, first-bytes detection, timeouts,
 * shutdown) is client_listener.h; this header is what a service needs.
 *
 * Threading: everything runs on the loop thread that owns the listener; no
 * function here may be called from another thread. A handler that finishes
 * later (after a raft commit, a disk-thread completion) does so from a later
 * callback on the same loop.
 *
 * A call's life:
 *
 *   request HEADERS ──> method looked up ──(unknown)──> UNIMPLEMENTED, no
 *        │                                              handler involved
 *        v
 *   UNARY / SERVER_STREAM: on_message(request) once the single request
 *        message and END_STREAM arrived;
 *   BIDI: on_message for every inbound message as it completes,
 *        on_half_close when the client ends its side.
 *        │
 *        v
 *   handler: keel_grpc_call_send() 0..n times (keel_grpc_call_writable()
 *        says how much may be queued; on_writable fires when room returns),
 *        then keel_grpc_call_finish() exactly once.
 *
 *   If the stream ends first (client RST_STREAM, deadline from grpc-timeout,
 *   connection lost, forced shutdown), on_close(reason) is called once, and
 *   the handler must still call keel_grpc_call_finish() (at once or later)
 *   to release the call; sends and the finish are then dropped and return
 *   KEEL_ECANCELED. After keel_grpc_call_finish() the handler gets no further
 *   callback for the call and must not touch it.
 *
 * This one rule — every call the handler saw is finished by it exactly once —
 * is what makes asynchronous completion safe: the call object stays valid
 * until then, however the stream ended.
 */
#ifndef KEEL_GRPC_SERVER_H
#define KEEL_GRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "keel_error.h"
#include "keel_grpc_wire.h"

typedef struct keel_grpc_server keel_grpc_server;
typedef struct keel_grpc_call keel_grpc_call;

enum keel_grpc_kind {
  KEEL_GRPC_UNARY = 0,
  KEEL_GRPC_SERVER_STREAM = 1,
  KEEL_GRPC_BIDI = 2,
};

/* Why a stream ended before the handler finished it (on_close's reason). */
#define KEEL_GRPC_CLOSE_CANCELED KEEL_ECANCELED /* RST_STREAM from client */
#define KEEL_GRPC_CLOSE_DEADLINE KEEL_ETIMEOUT  /* grpc-timeout expired */
#define KEEL_GRPC_CLOSE_STOPPED KEEL_ESTOPPED   /* connection lost / shutdown */

struct keel_grpc_method {
  /* Full name as on the wire: "/etcdserverpb.KV/Range". Copied. */
  const char *name;
  enum keel_grpc_kind kind;
  void *ud; /* passed to every callback */
  /* Required. The message bytes are valid during the call only. */
  void (*on_message)(keel_grpc_call *call, const uint8_t *msg, size_t len,
                     void *ud);
  /* Optional (BIDI only): the client half-closed its side. */
  void (*on_half_close)(keel_grpc_call *call, void *ud);
  /* Optional: the stream ended before keel_grpc_call_finish(); see above. */
  void (*on_close)(keel_grpc_call *call, int reason, void *ud);
  /* Optional: keel_grpc_call_writable() went from below half the stream's
   * send buffer to at least half. */
  void (*on_writable)(keel_grpc_call *call, void *ud);
};

/* Registers a handler. Returns 0, KEEL_EEXIST when the name is taken,
 * -EINVAL for a name not of the form "/pkg.Service/Method", -ENOMEM.
 * Register before the listener starts; the table is not changed later. */
int keel_grpc_server_register(keel_grpc_server *srv,
                              const struct keel_grpc_method *method);

/* Queues one outbound message (copied). Returns 0; KEEL_EBUSY when the
 * stream's or the connection's send buffer cannot take len more bytes (the
 * message is not queued: wait for on_writable) — a message is always
 * accepted when the stream's buffer is empty, up to the max send message
 * size; KEEL_ELIMIT past that size; KEEL_ECANCELED when the stream already
 * ended; -EINVAL after finish or for a UNARY call's second message. */
int keel_grpc_call_send(keel_grpc_call *call, const void *msg, size_t len);

/* Bytes that keel_grpc_call_send() will accept now (0 once the stream
 * ended). */
size_t keel_grpc_call_writable(const keel_grpc_call *call);

/* Ends the call with a status: queued messages are sent first, then the
 * trailers (grpc-status, grpc-message percent-encoded; message may be NULL).
 * A call that sent nothing gets a trailers-only response. Releases the call:
 * the handler must not use it afterwards. Returns 0, or KEEL_ECANCELED when
 * the stream had already ended (the call is released all the same). */
int keel_grpc_call_finish(keel_grpc_call *call, int code, const char *message);

/* Convenience for UNARY: send(msg) then finish(OK). On a send error the
 * call is finished with INTERNAL/RESOURCE_EXHAUSTED naming the error. */
int keel_grpc_call_reply(keel_grpc_call *call, const void *msg, size_t len);

/* Inbound flow control for BIDI: while paused, inbound messages are held
 * (not delivered, not acknowledged to the peer's flow-control window), so a
 * client that outpaces the handler is slowed by HTTP/2 flow control instead
 * of growing a queue here. Resume delivers what was held, in order. */
void keel_grpc_call_pause(keel_grpc_call *call);
void keel_grpc_call_resume(keel_grpc_call *call);

/* Handler-owned pointer carried by the call (NULL at first). */
void keel_grpc_call_set_user(keel_grpc_call *call, void *user);
void *keel_grpc_call_user(const keel_grpc_call *call);

/* The full method name ("/etcdserverpb.KV/Put"). */
const char *keel_grpc_call_method(const keel_grpc_call *call);

/* Milliseconds left before the client's grpc-timeout expires; UINT64_MAX
 * when the client sent none, 0 when it passed. */
uint64_t keel_grpc_call_deadline_left(const keel_grpc_call *call);

/* Value of a request metadata header (e.g. "token" for etcd auth), NUL-
 * terminated, or NULL. Only headers that are not HTTP/2 pseudo-headers or
 * gRPC reserved ones are kept, up to the header size limit. */
const char *keel_grpc_call_metadata(const keel_grpc_call *call,
                                    const char *name);

/* Called once per request stream when it ends, for metrics: the method path
 * as the client sent it (NULL if it sent none), the gRPC status sent, or
 * CANCELLED when the stream ended without one (client reset, connection
 * lost), and the time from the request head to the end in microseconds.
 * It must not call into the transport. One observer; NULL removes it. */
typedef void (*keel_grpc_observer_fn)(const char *method, int code,
                                      uint64_t duration_us, void *ud);
void keel_grpc_server_set_observer(keel_grpc_server *srv,
                                   keel_grpc_observer_fn fn, void *ud);

/* Counters for /metrics and tests. */
struct keel_grpc_server_stats {
  uint64_t calls_started;
  uint64_t calls_unimplemented;
  uint64_t calls_canceled;           /* RST_STREAM from the client */
  uint64_t calls_deadline;           /* grpc-timeout expired */
  uint64_t msgs_too_large;           /* inbound over the max message size */
  uint64_t send_busy;                /* keel_grpc_call_send() said KEEL_EBUSY */
  uint64_t max_stream_send_buffered; /* high-water mark, bytes */
  uint64_t active_calls;
};
void keel_grpc_server_stats(const keel_grpc_server *srv,
                            struct keel_grpc_server_stats *out);

#endif

/* client_listener.h — the client port: one TCP listener that serves gRPC
 * (HTTP/2 prior knowledge, h2c) and plain HTTP/1.1 on the same port, told
 * apart by the first bytes of each connection (the HTTP/2 client preface
 * "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"; anything else is HTTP/1.1).
 *
 * Threading: everything runs on the caller's libuv loop thread. Handlers
 * (gRPC methods from grpc_server.h, HTTP routes below) are called on it and
 * may complete later from any other callback on the same loop.
 *
 * Lifecycle:
 *   keel_client_listener_new -> register methods / routes ->
 *   keel_client_listener_start -> ... -> keel_client_listener_shutdown
 *   (stop accepting, GOAWAY, in-flight streams get until the deadline, then
 *   everything is closed; the callback fires once all handles are closed)
 *   -> keel_client_listener_free.
 *
 * Limits (every one configurable, defaults in docs/decisions/0601):
 * connections, concurrent streams per connection, message sizes, header
 * sizes, send buffers per stream and per connection, idle and stall
 * timeouts, HTTP/1.1 request sizes.
 */
#ifndef KEEL_CLIENT_LISTENER_H
#define KEEL_CLIENT_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "grpc_server.h"
#include "http1.h"

typedef struct keel_client_listener keel_client_listener;

struct keel_client_listener_config {
  uint32_t max_connections;        /* 1024; past it, new ones are closed */
  uint32_t max_concurrent_streams; /* 1000, HTTP/2 SETTINGS */
  /* Largest inbound gRPC message: etcd's --max-request-bytes (1.5 MiB) plus
   * etcd's 512 KiB gRPC overhead allowance = 2 MiB. The node enforces the
   * 1.5 MiB on the request itself ("etcdserver: request is too large"). */
  size_t max_recv_msg_bytes;
  size_t max_send_msg_bytes;       /* 128 MiB */
  size_t stream_send_buffer_bytes; /* 1 MiB queued per stream */
  size_t conn_send_buffer_bytes;   /* 8 MiB queued over all streams */
  size_t max_header_list_bytes;    /* 64 KiB of request headers */
  uint64_t idle_timeout_ms;        /* 300 s with no stream / request: close */
  uint64_t head_timeout_ms;        /* 10 s to send the first bytes / an HTTP/1.1
                                      request head and body (slow-loris guard) */
  uint64_t stall_timeout_ms;       /* 30 s with output queued and none of it
                                      taken by the peer: close */
  struct keel_http1_limits http1;
};

void keel_client_listener_config_default(struct keel_client_listener_config *c);

/* Creates a listener on loop. cfg is copied (NULL = defaults). Returns 0,
 * -ENOMEM or -EINVAL for a limit of 0. */
int keel_client_listener_new(uv_loop_t *loop,
                             const struct keel_client_listener_config *cfg,
                             keel_client_listener **out);

/* The gRPC dispatch table (register methods on it before start). */
keel_grpc_server *keel_client_listener_grpc(keel_client_listener *l);

/* An HTTP/1.1 request handed to a route handler. The handler must call
 * keel_http_respond() exactly once, now or later; the request stays valid
 * until then even if the connection goes away (the response is then
 * dropped). */
typedef struct keel_http_request keel_http_request;
typedef void (*keel_http_handler_fn)(keel_http_request *req, void *ud);

/* Routes requests whose path starts with prefix (longest prefix wins) and
 * whose method equals method (NULL = any method) to fn. A path with no route
 * gets 404; a path whose routes all want another method gets 405. At most
 * 64 routes. Returns 0, KEEL_ELIMIT, -EINVAL, -ENOMEM. */
int keel_client_listener_route(keel_client_listener *l, const char *method,
                               const char *prefix, keel_http_handler_fn fn,
                               void *ud);

/* The parsed head (method, path, query, headers) and the body. */
const struct keel_http1_head *
keel_http_request_head(const keel_http_request *r);
const uint8_t *keel_http_request_body(const keel_http_request *r, size_t *len);

/* Sends the response and releases the request. extra_headers: raw
 * "Name: value\r\n" lines or NULL. A HEAD request gets the head only.
 * Returns 0, or KEEL_ECANCELED when the connection had gone (released all
 * the same). */
int keel_http_respond(keel_http_request *r, int status,
                      const char *content_type, const void *body, size_t len,
                      const char *extra_headers);

/* Binds host:port (port 0 = ephemeral; read it back with _port) and starts
 * accepting. host must be a numeric IPv4 or IPv6 address. Returns 0 or a
 * negative libuv/errno code (the address is named in the log line). */
int keel_client_listener_start(keel_client_listener *l, const char *host,
                               int port);

/* The bound port, or -1 before a successful start. */
int keel_client_listener_port(const keel_client_listener *l);

/* Graceful shutdown: stop accepting; HTTP/2 connections get GOAWAY and their
 * open streams may finish; idle HTTP/1.1 connections close, busy ones after
 * their response. When deadline_ms passes, whatever is left is closed (open
 * calls see on_close(KEEL_ESTOPPED)). cb(ud) fires once, when every handle
 * is closed. Calling it twice is an error (-EALREADY). */
int keel_client_listener_shutdown(keel_client_listener *l, uint64_t deadline_ms,
                                  void (*cb)(void *ud), void *ud);

/* Frees the listener. Only after the shutdown callback fired, or when it was
 * never started. */
void keel_client_listener_free(keel_client_listener *l);

struct keel_client_listener_stats {
  uint64_t connections_accepted;
  uint64_t connections_refused; /* over max_connections */
  uint64_t connections_open;
  uint64_t connections_h2;
  uint64_t connections_http1;
  uint64_t timeouts; /* idle, head and stall closes */
  uint64_t http1_requests;
  uint64_t http1_rejected; /* 4xx/5xx from the parser */
};
void keel_client_listener_stats(const keel_client_listener *l,
                                struct keel_client_listener_stats *out);

#endif

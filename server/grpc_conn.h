/* grpc_conn.h — internal: the seam between client_listener.c (sockets,
 * first-bytes detection) and grpc_server.c (one nghttp2 server session per
 * connection). Not for services: they use grpc_server.h. */
#ifndef KEEL_GRPC_CONN_H
#define KEEL_GRPC_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "grpc_server.h"
#include "net_io.h"

struct keel_client_listener_config;
struct keel_h2_conn;

/* The dispatch table and its limits (copied from cfg). */
int keel_grpc_server_new(uv_loop_t *loop,
                         const struct keel_client_listener_config *cfg,
                         keel_grpc_server **out);
/* Every connection must have been freed first. */
void keel_grpc_server_free(keel_grpc_server *srv);

/* Creates the server session for one connection and queues its SETTINGS.
 * on_done(owner) is called once when the session is over (finished after
 * GOAWAY, a protocol error from the peer, or EOF handled): the owner then
 * closes the socket and later calls keel_h2_conn_free(). */
int keel_h2_conn_new(keel_grpc_server *srv, struct keel_net_io *io,
                     void (*on_done)(void *owner), void *owner,
                     struct keel_h2_conn **out);

/* Inbound bytes. Returns 0, or a negative code when the session is broken
 * (on_done has then been called). */
int keel_h2_conn_recv(struct keel_h2_conn *c, const uint8_t *data, size_t len);

/* The transport's queue shrank: produce more output. */
void keel_h2_conn_drained(struct keel_h2_conn *c);

/* Graceful close: GOAWAY now; on_done fires when the open streams ended. */
void keel_h2_conn_goaway(struct keel_h2_conn *c);

/* Number of streams still open (0 means the connection is idle). */
size_t keel_h2_conn_open_streams(const struct keel_h2_conn *c);

/* Ends the session at once: every open call gets on_close(KEEL_ESTOPPED).
 * Does not call on_done. */
void keel_h2_conn_free(struct keel_h2_conn *c);

#endif

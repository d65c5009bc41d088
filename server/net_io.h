/* net_io.h — the byte-transport seam under the client port's protocols.
 *
 * HTTP/2 (grpc_server.c) and HTTP/1.1 (client_listener.c) never touch a
 * socket: they hand outbound bytes to a keel_net_io and are handed inbound
 * bytes by its owner. Today the only implementation is plaintext TCP in
 * client_listener.c; TLS (OpenSSL memory BIOs) slots in as another
 * implementation of these three operations without changing the protocols.
 *
 * Everything runs on the loop thread; no operation blocks.
 */
#ifndef KEEL_NET_IO_H
#define KEEL_NET_IO_H

#include <stddef.h>
#include <stdint.h>

struct keel_net_io;

struct keel_net_io_ops {
  /* Queues len bytes for sending; the bytes are copied. Returns 0, -ENOMEM,
   * or KEEL_ESTOPPED once the transport is closing. Callers bound what they
   * queue by checking pending() first (there is no hard cap here so that a
   * protocol can always finish the frame it is writing). */
  int (*write)(struct keel_net_io *io, const void *data, size_t len);
  /* Starts sending what write() queued (one syscall for many frames). */
  void (*flush)(struct keel_net_io *io);
  /* Bytes queued or in flight, not yet accepted by the kernel. */
  size_t (*pending)(const struct keel_net_io *io);
};

struct keel_net_io {
  const struct keel_net_io_ops *ops;
};

#endif

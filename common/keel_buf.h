/* keel_buf.h — a growable byte queue: append at the end, consume from the
 * front. The gRPC server and client keep their pending input and output in
 * one each.
 *
 * Live bytes are p[off..len). Appending first reuses the consumed prefix
 * (moving the live bytes down, usually few), then doubles the allocation.
 * The buffer itself sets no bound: every owner checks keel_buf_size()
 * against its own limit before appending (the limits are the owners' to
 * state, e.g. grpc_server.h's per-stream and per-connection output caps).
 */
#ifndef KEEL_BUF_H
#define KEEL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct keel_buf {
  uint8_t *p;
  size_t off, len, cap; /* live bytes are p[off..len) */
};

/* Appends len bytes. Returns 0 or -ENOMEM (the buffer is unchanged). */
int keel_buf_append(struct keel_buf *b, const void *data, size_t len);

/* Bytes appended and not yet consumed. */
static inline size_t keel_buf_size(const struct keel_buf *b) {
  return b->len - b->off;
}

/* Frees the memory and leaves an empty buffer. */
void keel_buf_free(struct keel_buf *b);

#endif

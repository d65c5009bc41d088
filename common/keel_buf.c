/* keel_buf.c — the growable byte queue; see keel_buf.h. */
#include "keel_buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int keel_buf_append(struct keel_buf *b, const void *data, size_t len) {
  if (len == 0)
    return 0;
  if (b->off > 0 && b->off == b->len)
    b->off = b->len = 0;
  if (b->len + len > b->cap) {
    /* Compact first: the consumed prefix is usually most of the buffer. */
    if (b->off > 0) {
      memmove(b->p, b->p + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    if (b->len + len > b->cap) {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + len)
        cap *= 2;
      uint8_t *p = realloc(b->p, cap);
      if (p == NULL)
        return -ENOMEM;
      b->p = p;
      b->cap = cap;
    }
  }
  memcpy(b->p + b->len, data, len);
  b->len += len;
  return 0;
}

void keel_buf_free(struct keel_buf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

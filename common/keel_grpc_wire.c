/* keel_grpc_wire.c — gRPC message framing, grpc-timeout, grpc-message
 * percent-encoding. See keel_grpc_wire.h. */
#include "keel_grpc_wire.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

const char *keel_grpc_code_name(int code) {
  static const char *const names[] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  if (code < 0 || code > 16)
    return "UNKNOWN_CODE";
  return names[code];
}

void keel_grpc_prefix_encode(uint8_t out[KEEL_GRPC_PREFIX_LEN],
                             size_t msg_len) {
  assert(msg_len <= UINT32_MAX);
  out[0] = 0;
  out[1] = (uint8_t)(msg_len >> 24);
  out[2] = (uint8_t)(msg_len >> 16);
  out[3] = (uint8_t)(msg_len >> 8);
  out[4] = (uint8_t)msg_len;
}

void keel_grpc_decoder_init(struct keel_grpc_decoder *d, size_t max_msg_len) {
  memset(d, 0, sizeof(*d));
  d->max_msg_len = max_msg_len;
}

void keel_grpc_decoder_free(struct keel_grpc_decoder *d) {
  free(d->msg);
  d->msg = NULL;
}

int keel_grpc_decoder_idle(const struct keel_grpc_decoder *d) {
  return d->prefix_have == 0 && d->msg == NULL;
}

int keel_grpc_decoder_feed(struct keel_grpc_decoder *d, const uint8_t *data,
                           size_t len, size_t *consumed, keel_grpc_msg_fn fn,
                           void *ud) {
  size_t pos = 0;
  int rc = 0;
  while (pos < len) {
    if (d->prefix_have < KEEL_GRPC_PREFIX_LEN) {
      size_t take = KEEL_GRPC_PREFIX_LEN - d->prefix_have;
      if (take > len - pos)
        take = len - pos;
      memcpy(d->prefix + d->prefix_have, data + pos, take);
      d->prefix_have += take;
      pos += take;
      if (d->prefix_have < KEEL_GRPC_PREFIX_LEN)
        break;
      if (d->prefix[0] != 0) {
        d->bad_flag = d->prefix[0];
        rc = KEEL_EBADMSG;
        break;
      }
      uint64_t n = ((uint64_t)d->prefix[1] << 24) |
                   ((uint64_t)d->prefix[2] << 16) |
                   ((uint64_t)d->prefix[3] << 8) | d->prefix[4];
      if (n > d->max_msg_len) {
        d->bad_len = n;
        rc = KEEL_ELIMIT;
        break;
      }
      d->msg_len = (size_t)n;
      d->msg_have = 0;
      /* Zero-copy when the whole body is in this chunk. */
      if (len - pos >= d->msg_len) {
        const uint8_t *body = data + pos;
        pos += d->msg_len;
        d->prefix_have = 0;
        rc = fn(ud, body, d->msg_len);
        if (rc != 0)
          break;
        continue;
      }
      /* malloc(0) may return NULL: keep a 1-byte buffer for empty bodies
       * (cannot happen here since len-pos < msg_len, but be exact). */
      d->msg = malloc(d->msg_len ? d->msg_len : 1);
      if (d->msg == NULL) {
        rc = -ENOMEM;
        break;
      }
      continue;
    }
    /* Assembling a body. */
    assert(d->msg != NULL);
    size_t take = d->msg_len - d->msg_have;
    if (take > len - pos)
      take = len - pos;
    memcpy(d->msg + d->msg_have, data + pos, take);
    d->msg_have += take;
    pos += take;
    if (d->msg_have == d->msg_len) {
      uint8_t *body = d->msg;
      d->msg = NULL;
      d->prefix_have = 0;
      rc = fn(ud, body, d->msg_len);
      free(body);
      if (rc != 0)
        break;
    }
  }
  if (consumed)
    *consumed = pos;
  return rc;
}

static const char hexdig[] = "0123456789ABCDEF";

size_t keel_grpc_percent_encode(const char *in, size_t in_len, char *out,
                                size_t out_size) {
  size_t need = 0, w = 0;
  for (size_t i = 0; i < in_len; i++) {
    unsigned char c = (unsigned char)in[i];
    int esc = c < 0x20 || c > 0x7E || c == '%';
    size_t n = esc ? 3 : 1;
    if (out_size > 0 && w + n < out_size) {
      if (esc) {
        out[w] = '%';
        out[w + 1] = hexdig[c >> 4];
        out[w + 2] = hexdig[c & 15];
      } else {
        out[w] = (char)c;
      }
      w += n;
    } else {
      out_size = out_size ? w + 1 : 0; /* stop writing: never resume */
    }
    need += n;
  }
  if (out_size > 0)
    out[w] = '\0';
  return need;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

size_t keel_grpc_percent_decode(const char *in, size_t in_len, char *out,
                                size_t out_size) {
  size_t w = 0;
  if (out_size == 0)
    return 0;
  for (size_t i = 0; i < in_len && w + 1 < out_size; i++) {
    if (in[i] == '%' && i + 2 < in_len && hexval(in[i + 1]) >= 0 &&
        hexval(in[i + 2]) >= 0) {
      out[w++] = (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
      i += 2;
    } else {
      out[w++] = in[i];
    }
  }
  out[w] = '\0';
  return w;
}

int keel_grpc_timeout_parse(const char *value, size_t len, uint64_t *ms) {
  if (len < 2 || len > 9)
    return KEEL_EPARSE;
  uint64_t n = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    if (value[i] < '0' || value[i] > '9')
      return KEEL_EPARSE;
    n = n * 10 + (uint64_t)(value[i] - '0');
  }
  switch (value[len - 1]) {
  case 'H':
    *ms = n * 3600000u;
    break;
  case 'M':
    *ms = n * 60000u;
    break;
  case 'S':
    *ms = n * 1000u;
    break;
  case 'm':
    *ms = n;
    break;
  case 'u':
    *ms = (n + 999) / 1000;
    break;
  case 'n':
    *ms = (n + 999999) / 1000000;
    break;
  default:
    return KEEL_EPARSE;
  }
  return 0;
}

size_t keel_grpc_timeout_format(uint64_t ms, char out[16]) {
  /* At most 8 digits: step up to coarser units, rounding up so a deadline
   * is never shortened. */
  if (ms <= 99999999u)
    return (size_t)snprintf(out, 16, "%llum", (unsigned long long)ms);
  uint64_t s = (ms + 999) / 1000;
  if (s <= 99999999u)
    return (size_t)snprintf(out, 16, "%lluS", (unsigned long long)s);
  uint64_t h = (s + 3599) / 3600;
  if (h > 99999999u)
    h = 99999999u;
  return (size_t)snprintf(out, 16, "%lluH", (unsigned long long)h);
}

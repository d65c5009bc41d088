/* keel_pb.c — wire-format guard in front of protobuf-c; see keel_pb.h. */
#include "keel_pb.h"

#include <stdarg.h>
#include <stdio.h>

#include "keel_error.h"

#define MAX_FIELD_NUMBER 536870911u /* 2^29 - 1 */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return KEEL_EBADMSG;
}

/* Reads a varint of at most max_bytes bytes at p[*off..len). */
static int read_varint(const uint8_t *p, size_t len, size_t *off,
                       unsigned max_bytes, uint64_t *out) {
  uint64_t v = 0;
  for (unsigned i = 0; i < max_bytes; i++) {
    if (*off >= len)
      return -1; /* truncated */
    uint8_t b = p[(*off)++];
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -2; /* too long */
}

/* `base` is the offset of p within the outermost buffer, for messages. */
static int check_message(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                         size_t len, size_t base, unsigned depth,
                         unsigned max_depth, char *err, size_t errlen) {
  if (depth > max_depth)
    return fail(err, errlen, "byte %zu: %s nested deeper than %u messages",
                base, d->name, max_depth);
  size_t off = 0;
  while (off < len) {
    size_t at = off;
    uint64_t tag;
    int rc = read_varint(p, len, &off, 5, &tag);
    if (rc == -1)
      return fail(err, errlen, "byte %zu: truncated field tag", base + at);
    if (rc == -2 || tag > UINT32_MAX)
      return fail(err, errlen, "byte %zu: field tag longer than 5 bytes",
                  base + at);
    uint32_t number = (uint32_t)(tag >> 3);
    unsigned wire = (unsigned)(tag & 7);
    if (number == 0 || number > MAX_FIELD_NUMBER)
      return fail(err, errlen, "byte %zu: field number %u is not allowed",
                  base + at, number);
    uint64_t n;
    switch (wire) {
    case 0: /* varint */
      if (read_varint(p, len, &off, 10, &n) != 0)
        return fail(err, errlen, "byte %zu: field %u: bad varint", base + at,
                    number);
      break;
    case 1: /* 64-bit */
      if (len - off < 8)
        return fail(err, errlen, "byte %zu: field %u: truncated fixed64",
                    base + at, number);
      off += 8;
      break;
    case 5: /* 32-bit */
      if (len - off < 4)
        return fail(err, errlen, "byte %zu: field %u: truncated fixed32",
                    base + at, number);
      off += 4;
      break;
    case 2: { /* length-delimited */
      if (read_varint(p, len, &off, 10, &n) != 0)
        return fail(err, errlen, "byte %zu: field %u: bad length", base + at,
                    number);
      if (n > len - off)
        return fail(err, errlen,
                    "byte %zu: field %u: length %llu runs past the end",
                    base + at, number, (unsigned long long)n);
      const ProtobufCFieldDescriptor *f =
          protobuf_c_message_descriptor_get_field(d, number);
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
        rc = check_message(f->descriptor, p + off, (size_t)n, base + off,
                           depth + 1, max_depth, err, errlen);
        if (rc)
          return rc;
      }
      off += (size_t)n;
      break;
    }
    default:
      return fail(err, errlen,
                  "byte %zu: field %u: wire type %u (groups and unknown "
                  "wire types are not accepted)",
                  base + at, number, wire);
    }
  }
  return 0;
}

int keel_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *data,
                  size_t len, unsigned max_depth, char *err, size_t errlen) {
  if (len && !data)
    return fail(err, errlen, "no data");
  return check_message(d, data, len, 0, 1, max_depth, err, errlen);
}

ProtobufCMessage *keel_pb_unpack(const ProtobufCMessageDescriptor *d,
                                 const uint8_t *data, size_t len, char *err,
                                 size_t errlen) {
  if (keel_pb_check(d, data, len, KEEL_PB_MAX_DEPTH, err, errlen) != 0)
    return NULL;
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);
  if (!m)
    fail(err, errlen, "%s: malformed message", d->name);
  return m;
}

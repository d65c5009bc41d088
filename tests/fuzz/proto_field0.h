/* proto_field0.h — finds decoded protobuf-c messages that carry an unknown
 * field numbered 0, for the fuzz targets.
 *
 * Why: protobuf-c 1.4.1 refuses a field tag whose number is 0 only when the
 * tag is one byte long; an over-long tag varint (0x80 0x00 ...) decodes as
 * an unknown field 0, which pack() then writes back in the canonical one-
 * byte form, which unpack() refuses. So encode(decode(x)) does not decode:
 * a client request embedded in a log entry (decision 0003) would make the
 * entry undecodable on every node. tests/fuzz/crashes/README.md has the
 * reproducers. keel_pb_unpack() (proto/keel_pb.h) now refuses such
 * input before protobuf-c sees it; the targets assert that nothing it
 * accepts carries a field 0.
 */
#ifndef KEEL_FUZZ_PROTO_FIELD0_H
#define KEEL_FUZZ_PROTO_FIELD0_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

static inline bool fuzz_proto_has_field0(const ProtobufCMessage *m) {
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0)
      return true;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    const char *base = (const char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      ProtobufCMessage *const *v =
          *(ProtobufCMessage *const *const *)(base + f->offset);
      for (size_t k = 0; k < n; k++)
        if (fuzz_proto_has_field0(v[k]))
          return true;
      continue;
    }
    /* A oneof's members share storage: only the chosen one is a message. */
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(base + f->quantifier_offset) != f->id)
      continue;
    const ProtobufCMessage *sub =
        *(const ProtobufCMessage *const *)(base + f->offset);
    if (sub && fuzz_proto_has_field0(sub))
      return true;
  }
  return false;
}

#endif

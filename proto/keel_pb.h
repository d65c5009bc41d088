/* keel_pb.h — the one door through which untrusted protobuf bytes enter
 * keel.
 *
 * protobuf-c decodes what it is given, and two of its behaviours are unsafe
 * for bytes from a network or a file (tests/fuzz/crashes/README.md):
 *
 *  - F1: a tag for field number 0 is refused only when the tag is one byte
 *    long. Written over-long (0x80 0x00), it decodes as an unknown field 0,
 *    which pack() writes back in the one-byte form, which unpack() refuses.
 *    A client request embedded in a log entry (decision 0003) would then
 *    make the committed entry undecodable on every node.
 *  - F2: nested messages are decoded recursively with no depth limit, so a
 *    TxnRequest nested 200,000 deep (1.5 MiB) overflows the stack.
 *
 * keel_pb_check() walks the wire bytes against the message descriptor
 * before protobuf-c sees them: every tag must name a field number from 1 to
 * 2^29-1 in at most 5 bytes, wire types must be 0, 1, 2 or 5 (no groups),
 * every varint at most 10 bytes, every length inside the buffer, and
 * messages nested at most `max_depth` deep. It costs one pass over the bytes
 * (each nested message is scanned once, at its own level) and recurses at
 * most max_depth frames. Unknown fields with valid numbers are allowed: they
 * re-encode to bytes that decode again.
 *
 * keel_pb_unpack() is check + unpack: use it for every decode of bytes that
 * did not come from this process.
 */
#ifndef KEEL_PB_H
#define KEEL_PB_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Deep enough for any real request: a nested etcd txn costs two levels
 * (RequestOp -> TxnRequest), so this allows 30 levels of nested txns. */
#define KEEL_PB_MAX_DEPTH 64

/* Returns 0 when `data` is a well-formed encoding of a message of type `d`
 * within the limits above; otherwise KEEL_EBADMSG with a reason in err
 * (NUL-terminated, at most errlen bytes; err may be NULL) naming the byte
 * offset and the rule broken. Does not allocate. */
int keel_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *data,
                  size_t len, unsigned max_depth, char *err, size_t errlen);

/* Checks with KEEL_PB_MAX_DEPTH, then decodes with protobuf-c. Returns the
 * message (free it with protobuf_c_message_free_unpacked) or NULL with a
 * reason in err. */
ProtobufCMessage *keel_pb_unpack(const ProtobufCMessageDescriptor *d,
                                 const uint8_t *data, size_t len, char *err,
                                 size_t errlen);

#endif

/* keel_grpc_wire.h — the gRPC-over-HTTP/2 wire details that the server
 * (server/grpc_server) and the client library (client/grpc_client) share:
 * the 5-byte length-prefixed message framing, the grpc-timeout header, the
 * percent-encoding of grpc-message, and the status codes.
 *
 * Pure code: libc only, no I/O, no allocation except the decoder's message
 * buffer. Reference: grpc/doc/PROTOCOL-HTTP2.md.
 *
 * Message framing (per HTTP/2 DATA stream):
 *
 *   +------------+----------------------+------------------+
 *   | flag: 1 B  | length: 4 B, big-end | message: length  |
 *   +------------+----------------------+------------------+
 *
 * flag 0 = not compressed; keel never negotiates compression, so flag 1 is
 * refused (as grpc-go does when grpc-encoding is identity).
 */
#ifndef KEEL_GRPC_WIRE_H
#define KEEL_GRPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define KEEL_GRPC_PREFIX_LEN 5

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum keel_grpc_code {
  KEEL_GRPC_OK = 0,
  KEEL_GRPC_CANCELLED = 1,
  KEEL_GRPC_UNKNOWN = 2,
  KEEL_GRPC_INVALID_ARGUMENT = 3,
  KEEL_GRPC_DEADLINE_EXCEEDED = 4,
  KEEL_GRPC_NOT_FOUND = 5,
  KEEL_GRPC_ALREADY_EXISTS = 6,
  KEEL_GRPC_PERMISSION_DENIED = 7,
  KEEL_GRPC_RESOURCE_EXHAUSTED = 8,
  KEEL_GRPC_FAILED_PRECONDITION = 9,
  KEEL_GRPC_ABORTED = 10,
  KEEL_GRPC_OUT_OF_RANGE = 11,
  KEEL_GRPC_UNIMPLEMENTED = 12,
  KEEL_GRPC_INTERNAL = 13,
  KEEL_GRPC_UNAVAILABLE = 14,
  KEEL_GRPC_DATA_LOSS = 15,
  KEEL_GRPC_UNAUTHENTICATED = 16,
};

/* "OK", "CANCELLED", ... ; "CODE(n)" style text is not produced: unknown
 * codes give "UNKNOWN_CODE". Static string. */
const char *keel_grpc_code_name(int code);

/* Writes the 5-byte prefix for an uncompressed message of msg_len bytes.
 * msg_len must fit in 32 bits (asserted). */
void keel_grpc_prefix_encode(uint8_t out[KEEL_GRPC_PREFIX_LEN], size_t msg_len);

/* Incremental message decoder. Input may be cut anywhere (HTTP/2 DATA frames
 * do not align with messages). A complete message is handed to the callback
 * without a copy when it lies whole inside one input chunk; otherwise it is
 * assembled in a buffer of exactly its length, which is allocated only after
 * the length passed the limit check — so memory per decoder is bounded by
 * max_msg_len. */
struct keel_grpc_decoder {
  size_t max_msg_len;
  uint8_t prefix[KEEL_GRPC_PREFIX_LEN];
  size_t prefix_have;
  uint8_t *msg; /* assembly buffer (NULL when not assembling) */
  size_t msg_len, msg_have;
  /* Set when feed() returned KEEL_ELIMIT: the announced length. */
  uint64_t bad_len;
  /* Set when feed() returned KEEL_EBADMSG: the flag byte seen. */
  uint8_t bad_flag;
};

/* Called once per complete message. Return 0 to go on, non-zero to stop
 * decoding right after this message (feed() then returns that value and
 * *consumed tells how far it got). The bytes are valid during the call only. */
typedef int (*keel_grpc_msg_fn)(void *ud, const uint8_t *msg, size_t len);

void keel_grpc_decoder_init(struct keel_grpc_decoder *d, size_t max_msg_len);
/* Frees the assembly buffer. The decoder may be re-initialized. */
void keel_grpc_decoder_free(struct keel_grpc_decoder *d);

/* Feeds len bytes. Returns 0 when all were consumed, or:
 *   KEEL_ELIMIT   a message announced a length > max_msg_len (d->bad_len);
 *   KEEL_EBADMSG  the compressed flag was not 0 (d->bad_flag);
 *   -ENOMEM       the assembly buffer could not be allocated;
 *   the callback's non-zero return value.
 * After an error other than a callback stop, the decoder is unusable (the
 * stream must fail). *consumed (may be NULL) receives the bytes used. */
int keel_grpc_decoder_feed(struct keel_grpc_decoder *d, const uint8_t *data,
                           size_t len, size_t *consumed, keel_grpc_msg_fn fn,
                           void *ud);

/* True when the decoder sits between messages (no partial message held):
 * at END_STREAM, anything else is a truncated message. */
int keel_grpc_decoder_idle(const struct keel_grpc_decoder *d);

/* Percent-encodes a grpc-message value: bytes outside 0x20..0x7E and '%' are
 * written as %XX (upper-case hex). Writes at most out_size-1 bytes plus a NUL;
 * never cuts an escape in half. Returns the length the full encoding needs
 * (excluding the NUL): if >= out_size, the output was cut. */
size_t keel_grpc_percent_encode(const char *in, size_t in_len, char *out,
                                size_t out_size);

/* Decodes %XX escapes (a malformed escape is kept as is, as the spec asks).
 * Writes at most out_size-1 bytes plus a NUL; returns the decoded length. */
size_t keel_grpc_percent_decode(const char *in, size_t in_len, char *out,
                                size_t out_size);

/* Parses a grpc-timeout value: 1 to 8 ASCII digits then one unit of
 * H M S m u n. Stores the timeout in milliseconds, rounded up (a 1 ns timeout
 * is 1 ms, so it still expires). Returns 0 or KEEL_EPARSE. */
int keel_grpc_timeout_parse(const char *value, size_t len, uint64_t *ms);

/* Formats ms as a grpc-timeout value ("1500m", or a coarser unit when ms
 * needs more than 8 digits). out must hold 16 bytes. Returns the length. */
size_t keel_grpc_timeout_format(uint64_t ms, char out[16]);

#endif

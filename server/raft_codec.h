/* raft_codec.h — raft core messages (struct raft_message, raft/raft.h) to
 * and from their wire form keelraft.Message (proto/raft.proto), field for
 * field. raft/ never sees protobuf; the peer transport never sees the core's
 * structs; this is the one place they meet.
 *
 * Decoding checks what the protobuf decoder cannot: a message type the core
 * knows, a non-zero sender, entry types, bounded counts and sizes (entries
 * per message, context bytes, members in a snapshot meta). A frame from the
 * network that breaks a rule is refused with KEEL_EBADMSG and a reason, and
 * never reaches the core. The core checks the rest (raft_step()).
 */
#ifndef KEEL_RAFT_CODEC_H
#define KEEL_RAFT_CODEC_H

#include <stddef.h>

#include "raft.h"
#include "raft.pb-c.h"

/* Entries in one decoded message; the frame size limit bounds the bytes. */
#define RAFT_CODEC_MAX_ENTRIES 65536

/* The wire form of one message. Fields point into the raft_message given to
 * raft_codec_encode() (no byte is copied), so that message must outlive
 * the use of `msg` (packing it, usually at once). */
struct raft_codec_out {
  Keelraft__Message msg;
  Keelraft__SnapshotChunk chunk;
  Keelstore__SnapshotMeta meta;
  Keelraft__Entry *ents;   /* malloc'd, n_entries */
  Keelraft__Entry **eptrs; /* malloc'd, n_entries */
};

/* Fills *out from m. Returns 0 or -ENOMEM (nothing to free then). */
int raft_codec_encode(const struct raft_message *m, struct raft_codec_out *out);
/* Frees what raft_codec_encode() allocated. */
void raft_codec_out_free(struct raft_codec_out *out);

/* A decoded message. Entry data, context and snapshot data point into the
 * Keelraft__Message given to raft_codec_decode(), which must outlive `msg`. */
struct raft_codec_in {
  struct raft_message msg;
  struct raft_entry *ents; /* malloc'd */
};

/* Checks and converts pm into *out. Errors: KEEL_EBADMSG (`why`, if not
 * NULL, is set to a static reason), -ENOMEM. On error nothing needs
 * freeing. */
int raft_codec_decode(const Keelraft__Message *pm, struct raft_codec_in *out,
                      const char **why);
void raft_codec_in_free(struct raft_codec_in *in);

#endif

/* fuzz_etcd_messages.c — libFuzzer target: every etcd v3 request message a
 * client can send, through the generated protobuf-c decoders.
 *
 * Input: byte 0 picks the message type (modulo the table below), the rest is
 * the encoded message, as the gRPC layer would hand it over once the 5-byte
 * gRPC prefix is removed. Inputs over the server's default
 * --max-request-bytes are skipped: the server refuses them before decoding.
 *
 * For every input that decodes, the target checks:
 *   1. protobuf_c_message_check() accepts the decoded message (every string
 *      set, every sub-message well formed);
 *   2. packing it writes exactly get_packed_size() bytes;
 *   3. those bytes decode again, and re-packing that gives the same bytes
 *      (encode(decode(x)) is a fixed point after one step: unknown fields,
 *      repeated oneof members and unpacked repeated scalars are normalized
 *      once and then stay put).
 * A failure aborts, which libFuzzer reports as a crash with the input.
 * Messages holding an unknown field numbered 0 skip checks 2-3: a known
 * protobuf-c bug breaks them (proto_field0.h, tests/fuzz/crashes/).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_pb.h"
#include "proto_field0.h"
#include "rpc.pb-c.h"

/* The server's default --max-request-bytes (server/config.c). */
#define FUZZ_MAX_REQUEST_BYTES 1572864

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_etcd_messages: %s: %s\n", d->name, what);          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* Every request of the KV, Watch, Lease, Cluster, Maintenance and Auth
 * services (proto/etcd/rpc.proto). Append only: seeds name types by index. */
static const ProtobufCMessageDescriptor *const requests[] = {
    &etcdserverpb__range_request__descriptor,                       /* 0 */
    &etcdserverpb__put_request__descriptor,                         /* 1 */
    &etcdserverpb__delete_range_request__descriptor,                /* 2 */
    &etcdserverpb__txn_request__descriptor,                         /* 3 */
    &etcdserverpb__compaction_request__descriptor,                  /* 4 */
    &etcdserverpb__watch_request__descriptor,                       /* 5 */
    &etcdserverpb__lease_grant_request__descriptor,                 /* 6 */
    &etcdserverpb__lease_revoke_request__descriptor,                /* 7 */
    &etcdserverpb__lease_keep_alive_request__descriptor,            /* 8 */
    &etcdserverpb__lease_time_to_live_request__descriptor,          /* 9 */
    &etcdserverpb__lease_leases_request__descriptor,                /* 10 */
    &etcdserverpb__member_add_request__descriptor,                  /* 11 */
    &etcdserverpb__member_remove_request__descriptor,               /* 12 */
    &etcdserverpb__member_update_request__descriptor,               /* 13 */
    &etcdserverpb__member_list_request__descriptor,                 /* 14 */
    &etcdserverpb__member_promote_request__descriptor,              /* 15 */
    &etcdserverpb__alarm_request__descriptor,                       /* 16 */
    &etcdserverpb__status_request__descriptor,                      /* 17 */
    &etcdserverpb__defragment_request__descriptor,                  /* 18 */
    &etcdserverpb__hash_request__descriptor,                        /* 19 */
    &etcdserverpb__hash_kvrequest__descriptor,                      /* 20 */
    &etcdserverpb__snapshot_request__descriptor,                    /* 21 */
    &etcdserverpb__move_leader_request__descriptor,                 /* 22 */
    &etcdserverpb__downgrade_request__descriptor,                   /* 23 */
    &etcdserverpb__auth_enable_request__descriptor,                 /* 24 */
    &etcdserverpb__auth_disable_request__descriptor,                /* 25 */
    &etcdserverpb__auth_status_request__descriptor,                 /* 26 */
    &etcdserverpb__authenticate_request__descriptor,                /* 27 */
    &etcdserverpb__auth_user_add_request__descriptor,               /* 28 */
    &etcdserverpb__auth_user_get_request__descriptor,               /* 29 */
    &etcdserverpb__auth_user_list_request__descriptor,              /* 30 */
    &etcdserverpb__auth_user_delete_request__descriptor,            /* 31 */
    &etcdserverpb__auth_user_change_password_request__descriptor,   /* 32 */
    &etcdserverpb__auth_user_grant_role_request__descriptor,        /* 33 */
    &etcdserverpb__auth_user_revoke_role_request__descriptor,       /* 34 */
    &etcdserverpb__auth_role_add_request__descriptor,               /* 35 */
    &etcdserverpb__auth_role_get_request__descriptor,               /* 36 */
    &etcdserverpb__auth_role_list_request__descriptor,              /* 37 */
    &etcdserverpb__auth_role_delete_request__descriptor,            /* 38 */
    &etcdserverpb__auth_role_grant_permission_request__descriptor,  /* 39 */
    &etcdserverpb__auth_role_revoke_permission_request__descriptor, /* 40 */
};
#define N_REQUESTS (sizeof requests / sizeof requests[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size - 1 > FUZZ_MAX_REQUEST_BYTES)
    return 0;
  const ProtobufCMessageDescriptor *d = requests[data[0] % N_REQUESTS];
  ProtobufCMessage *m = keel_pb_unpack(d, data + 1, size - 1, NULL, 0);
  if (!m)
    return 0; /* refused: the server answers with an error */
  CHECK(protobuf_c_message_check(m), "decoded message fails the check");
  CHECK(!fuzz_proto_has_field0(m), "the guard let a field 0 through (F1)");

  size_t n1 = protobuf_c_message_get_packed_size(m);
  uint8_t *b1 = malloc(n1 ? n1 : 1);
  CHECK(b1, "out of memory");
  CHECK(protobuf_c_message_pack(m, b1) == n1, "pack length != packed size");

  ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, n1, b1);
  CHECK(m2, "our own encoding does not decode");
  size_t n2 = protobuf_c_message_get_packed_size(m2);
  CHECK(n2 == n1, "re-encoding changed the size");
  uint8_t *b2 = malloc(n2 ? n2 : 1);
  CHECK(b2, "out of memory");
  CHECK(protobuf_c_message_pack(m2, b2) == n2, "pack length != packed size");
  CHECK(memcmp(b1, b2, n1) == 0, "re-encoding changed the bytes");

  free(b2);
  free(b1);
  protobuf_c_message_free_unpacked(m2, NULL);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}

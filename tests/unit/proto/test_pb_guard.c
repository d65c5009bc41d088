/* test_pb_guard.c — keel_pb_check refuses the inputs that break protobuf-c
 * (tests/fuzz/crashes/README.md, F1 and F2) and accepts real messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "keel_pb.h"
#include "raft.pb-c.h"
#include "rpc.pb-c.h"

static char err[256];

static int check_put(const uint8_t *b, size_t n) {
  return keel_pb_check(&etcdserverpb__put_request__descriptor, b, n,
                       KEEL_PB_MAX_DEPTH, err, sizeof err);
}

static void test_valid_put_accepted(void **state) {
  (void)state;
  Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
  put.key = (ProtobufCBinaryData){3, (uint8_t *)"foo"};
  put.value = (ProtobufCBinaryData){3, (uint8_t *)"bar"};
  put.lease = 42;
  uint8_t buf[64];
  size_t n = etcdserverpb__put_request__pack(&put, buf);
  assert_int_equal(check_put(buf, n), 0);
  ProtobufCMessage *m = keel_pb_unpack(&etcdserverpb__put_request__descriptor,
                                       buf, n, err, sizeof err);
  assert_non_null(m);
  protobuf_c_message_free_unpacked(m, NULL);
  assert_int_equal(check_put(buf, 0), 0); /* the empty message is valid */
}

/* F1: the fuzzer's reproducer (minus its type byte): field 0 in a two-byte
 * tag. protobuf-c alone accepts it; re-encoded, it no longer decodes. */
static void test_field0_overlong_tag_refused(void **state) {
  (void)state;
  static const uint8_t f1[] = {0x80, 0x00, 0x6b};
  assert_int_equal(check_put(f1, sizeof f1), KEEL_EBADMSG);
  assert_non_null(strstr(err, "field number 0"));
  static const uint8_t f1_short[] = {0x00, 0x01};
  assert_int_equal(check_put(f1_short, sizeof f1_short), KEEL_EBADMSG);
  /* and the peer frame form */
  assert_int_equal(keel_pb_check(&keelraft__peer_frame__descriptor, f1,
                                 sizeof f1, KEEL_PB_MAX_DEPTH, err, sizeof err),
                   KEEL_EBADMSG);
}

/* Writes a TxnRequest nested `depth` times through RequestOp.request_txn
 * (TxnRequest.success = 2, RequestOp.request_txn = 4), back to front. */
static size_t varint_len(size_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static size_t put_varint(uint8_t *p, size_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

static uint8_t *deep_txn(unsigned depth, size_t *len) {
  size_t cap = (size_t)depth * 12 + 16;
  uint8_t *buf = malloc(cap);
  assert_non_null(buf);
  size_t end = cap, start = cap; /* inner message is empty */
  for (unsigned i = 0; i < depth; i++) {
    static const uint8_t tags[2] = {0x22 /* op: 4 LEN */,
                                    0x12 /* txn: 2 LEN */};
    for (int t = 0; t < 2; t++) {
      size_t body = end - start;
      uint8_t tmp[10];
      size_t vn = put_varint(tmp, body);
      assert_true(vn == varint_len(body));
      start -= vn;
      memcpy(buf + start, tmp, vn);
      buf[--start] = tags[t];
    }
  }
  *len = end - start;
  memmove(buf, buf + start, *len);
  return buf;
}

/* F2: deep nesting is refused before protobuf-c recurses; a shallow nest
 * passes and decodes. */
static void test_deep_nesting_refused(void **state) {
  (void)state;
  size_t n;
  uint8_t *shallow = deep_txn(10, &n);
  assert_int_equal(keel_pb_check(&etcdserverpb__txn_request__descriptor,
                                 shallow, n, KEEL_PB_MAX_DEPTH, err,
                                 sizeof err),
                   0);
  ProtobufCMessage *m = keel_pb_unpack(&etcdserverpb__txn_request__descriptor,
                                       shallow, n, err, sizeof err);
  assert_non_null(m);
  protobuf_c_message_free_unpacked(m, NULL);
  free(shallow);

  uint8_t *deep = deep_txn(200000, &n);
  assert_true(n < 3 * 1024 * 1024);
  assert_int_equal(keel_pb_check(&etcdserverpb__txn_request__descriptor, deep,
                                 n, KEEL_PB_MAX_DEPTH, err, sizeof err),
                   KEEL_EBADMSG);
  assert_non_null(strstr(err, "nested deeper than 64"));
  assert_null(keel_pb_unpack(&etcdserverpb__txn_request__descriptor, deep, n,
                             err, sizeof err));
  free(deep);
}

static void test_malformed_wire_refused(void **state) {
  (void)state;
  static const uint8_t group[] = {0x0b, 0x0c};        /* field 1, SGROUP */
  static const uint8_t trunc_len[] = {0x0a, 0x05, 1}; /* LEN 5, 1 byte */
  static const uint8_t trunc_varint[] = {0x18, 0xff};
  static const uint8_t long_tag[] = {0x88, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00};
  static const uint8_t trunc_fixed[] = {0x09, 1, 2, 3};
  assert_int_equal(check_put(group, sizeof group), KEEL_EBADMSG);
  assert_non_null(strstr(err, "wire type 3"));
  assert_int_equal(check_put(trunc_len, sizeof trunc_len), KEEL_EBADMSG);
  assert_non_null(strstr(err, "runs past the end"));
  assert_int_equal(check_put(trunc_varint, sizeof trunc_varint), KEEL_EBADMSG);
  assert_int_equal(check_put(long_tag, sizeof long_tag), KEEL_EBADMSG);
  assert_non_null(strstr(err, "longer than 5 bytes"));
  assert_int_equal(check_put(trunc_fixed, sizeof trunc_fixed), KEEL_EBADMSG);
}

/* An unknown field with a valid number passes, and its re-encoding decodes
 * (the property F1 broke). */
static void test_unknown_field_roundtrips(void **state) {
  (void)state;
  static const uint8_t unk[] = {0x0a, 0x01, 'k', 0xf8, 0x80, 0x01, 0x07};
  assert_int_equal(check_put(unk, sizeof unk), 0);
  ProtobufCMessage *m = keel_pb_unpack(&etcdserverpb__put_request__descriptor,
                                       unk, sizeof unk, err, sizeof err);
  assert_non_null(m);
  uint8_t out[32];
  size_t n = protobuf_c_message_pack(m, out);
  protobuf_c_message_free_unpacked(m, NULL);
  assert_int_equal(check_put(out, n), 0);
  m = protobuf_c_message_unpack(&etcdserverpb__put_request__descriptor, NULL, n,
                                out);
  assert_non_null(m);
  protobuf_c_message_free_unpacked(m, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_put_accepted),
      cmocka_unit_test(test_field0_overlong_tag_refused),
      cmocka_unit_test(test_deep_nesting_refused),
      cmocka_unit_test(test_malformed_wire_refused),
      cmocka_unit_test(test_unknown_field_roundtrips),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

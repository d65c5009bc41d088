/* test_raft_codec.c — raft_message <-> keelraft.Message: every field
 * survives a round trip through the wire bytes, and malformed frames
 * (unknown types, zero sender, oversized context, bad entry types, a
 * snapshot without meta or with too many members, random bytes) are refused
 * without reaching the core or crashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "raft_codec.h"

/* Packs m, unpacks the bytes, decodes: the full wire path. */
static Keelraft__Message *wire(const struct raft_message *m) {
  struct raft_codec_out enc;
  assert_int_equal(raft_codec_encode(m, &enc), 0);
  size_t n = keelraft__message__get_packed_size(&enc.msg);
  uint8_t *buf = malloc(n + 1);
  keelraft__message__pack(&enc.msg, buf);
  raft_codec_out_free(&enc);
  Keelraft__Message *pm = keelraft__message__unpack(NULL, n, buf);
  free(buf);
  assert_non_null(pm);
  return pm;
}

static void test_round_trip_append(void **state) {
  (void)state;
  char d1[] = "first", d2[] = "second entry";
  struct raft_entry ents[3] = {
      {7, 41, RAFT_ENTRY_NORMAL, d1, 5},
      {7, 42, RAFT_ENTRY_CONF_CHANGE, d2, 12},
      {8, 43, RAFT_ENTRY_NOOP, NULL, 0},
  };
  uint8_t ctx[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  struct raft_message m = {0};
  m.type = RAFT_MSG_APPEND;
  m.from = 0x1122334455667788ull;
  m.to = 3;
  m.term = 8;
  m.log_term = 7;
  m.index = 40;
  m.entries = ents;
  m.n_entries = 3;
  m.commit = 39;
  m.reject = true;
  m.reject_hint = 12;
  m.conflict_term = 5;
  m.context = ctx;
  m.context_len = sizeof(ctx);
  m.transfer = true;
  Keelraft__Message *pm = wire(&m);
  struct raft_codec_in in;
  assert_int_equal(raft_codec_decode(pm, &in, NULL), 0);
  const struct raft_message *o = &in.msg;
  assert_int_equal(o->type, m.type);
  assert_true(o->from == m.from);
  assert_int_equal(o->to, m.to);
  assert_int_equal(o->term, m.term);
  assert_int_equal(o->log_term, m.log_term);
  assert_int_equal(o->index, m.index);
  assert_int_equal(o->commit, m.commit);
  assert_true(o->reject);
  assert_int_equal(o->reject_hint, 12);
  assert_int_equal(o->conflict_term, 5);
  assert_true(o->transfer);
  assert_int_equal(o->context_len, 8);
  assert_memory_equal(o->context, ctx, 8);
  assert_int_equal(o->n_entries, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(o->entries[i].term, ents[i].term);
    assert_int_equal(o->entries[i].index, ents[i].index);
    assert_int_equal(o->entries[i].type, ents[i].type);
    assert_int_equal(o->entries[i].len, ents[i].len);
    if (ents[i].len)
      assert_memory_equal(o->entries[i].data, ents[i].data, ents[i].len);
  }
  raft_codec_in_free(&in);
  keelraft__message__free_unpacked(pm, NULL);
}

static void test_round_trip_snapshot(void **state) {
  (void)state;
  struct raft_message m = {0};
  m.type = RAFT_MSG_SNAPSHOT;
  m.from = 2;
  m.to = 1;
  m.term = 3;
  m.snapshot.meta.index = 100;
  m.snapshot.meta.term = 3;
  m.snapshot.meta.voters[0] = 1;
  m.snapshot.meta.voters[1] = 2;
  m.snapshot.meta.n_voters = 2;
  m.snapshot.meta.learners[0] = 9;
  m.snapshot.meta.n_learners = 1;
  m.snapshot.offset = 4096;
  m.snapshot.data = "chunk";
  m.snapshot.len = 5;
  m.snapshot.last = true;
  Keelraft__Message *pm = wire(&m);
  struct raft_codec_in in;
  assert_int_equal(raft_codec_decode(pm, &in, NULL), 0);
  const struct raft_snapshot_chunk *c = &in.msg.snapshot;
  assert_int_equal(c->meta.index, 100);
  assert_int_equal(c->meta.term, 3);
  assert_int_equal(c->meta.n_voters, 2);
  assert_int_equal(c->meta.voters[1], 2);
  assert_int_equal(c->meta.n_learners, 1);
  assert_int_equal(c->meta.learners[0], 9);
  assert_int_equal(c->offset, 4096);
  assert_int_equal(c->len, 5);
  assert_memory_equal(c->data, "chunk", 5);
  assert_true(c->last);
  raft_codec_in_free(&in);
  keelraft__message__free_unpacked(pm, NULL);
}

static void test_every_type_round_trips(void **state) {
  (void)state;
  for (int t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
    struct raft_message m = {0};
    m.type = t;
    m.from = 5;
    m.to = 6;
    m.term = (uint64_t)t;
    if (t == RAFT_MSG_SNAPSHOT)
      m.snapshot.meta.index = 1;
    Keelraft__Message *pm = wire(&m);
    struct raft_codec_in in;
    assert_int_equal(raft_codec_decode(pm, &in, NULL), 0);
    assert_int_equal(in.msg.type, t);
    assert_int_equal(in.msg.term, (uint64_t)t);
    raft_codec_in_free(&in);
    keelraft__message__free_unpacked(pm, NULL);
  }
}

static void expect_bad(Keelraft__Message *pm, const char *reason_part) {
  struct raft_codec_in in;
  const char *why = NULL;
  assert_int_equal(raft_codec_decode(pm, &in, &why), KEEL_EBADMSG);
  assert_non_null(why);
  assert_non_null(strstr(why, reason_part));
}

static void test_malformed_refused(void **state) {
  (void)state;
  Keelraft__Message pm = KEELRAFT__MESSAGE__INIT;
  pm.from = 1;
  pm.type = 0;
  expect_bad(&pm, "unknown message type");
  pm.type = (Keelraft__MessageType)(RAFT_MSG_TYPE_MAX + 1);
  expect_bad(&pm, "unknown message type");
  pm.type = (Keelraft__MessageType)-3;
  expect_bad(&pm, "unknown message type");
  pm.type = KEELRAFT__MESSAGE_TYPE__MSG_APPEND;
  pm.from = 0;
  expect_bad(&pm, "sender id 0");
  pm.from = 1;
  uint8_t big[RAFT_MAX_CONTEXT + 1] = {0};
  pm.context.data = big;
  pm.context.len = sizeof(big);
  expect_bad(&pm, "context");
  pm.context.len = 0;
  Keelraft__Entry e = KEELRAFT__ENTRY__INIT;
  e.type = (Keelraft__EntryType)7;
  Keelraft__Entry *ep = &e;
  pm.entries = &ep;
  pm.n_entries = 1;
  expect_bad(&pm, "entry type");
  pm.n_entries = RAFT_CODEC_MAX_ENTRIES + 1;
  expect_bad(&pm, "too many entries");
  pm.n_entries = 0;
  pm.type = KEELRAFT__MESSAGE_TYPE__MSG_SNAPSHOT;
  expect_bad(&pm, "without meta");
  Keelraft__SnapshotChunk ch = KEELRAFT__SNAPSHOT_CHUNK__INIT;
  Keelstore__SnapshotMeta meta = KEELSTORE__SNAPSHOT_META__INIT;
  ch.meta = &meta;
  pm.snapshot = &ch;
  expect_bad(&pm, "index 0");
  meta.index = 5;
  uint64_t many[RAFT_MAX_NODES + 1] = {0};
  meta.voters = many;
  meta.n_voters = RAFT_MAX_NODES + 1;
  expect_bad(&pm, "too many members");
  meta.n_voters = 1;
  struct raft_codec_in in;
  assert_int_equal(raft_codec_decode(&pm, &in, NULL), 0);
  raft_codec_in_free(&in);
}

/* Random and mutated bytes: protobuf-c refuses some, the codec the rest of
 * the bad ones; nothing crashes (run under ASan in the sanitizer build). */
static void test_random_bytes(void **state) {
  (void)state;
  char d[] = "payload";
  struct raft_entry ent = {1, 1, RAFT_ENTRY_NORMAL, d, 7};
  struct raft_message m = {0};
  m.type = RAFT_MSG_APPEND;
  m.from = 1;
  m.to = 2;
  m.entries = &ent;
  m.n_entries = 1;
  struct raft_codec_out enc;
  assert_int_equal(raft_codec_encode(&m, &enc), 0);
  size_t n = keelraft__message__get_packed_size(&enc.msg);
  uint8_t *good = malloc(n);
  keelraft__message__pack(&enc.msg, good);
  raft_codec_out_free(&enc);
  uint64_t x = 88172645463325252ull;
  int decoded = 0, refused = 0;
  for (int round = 0; round < 20000; round++) {
    uint8_t buf[64];
    size_t len;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    if (round % 2) {
      len = n < sizeof(buf) ? n : sizeof(buf);
      memcpy(buf, good, len);
      buf[x % len] ^= (uint8_t)(x >> 8);
      len -= (x >> 16) % 3 == 0 ? (x >> 20) % len : 0;
    } else {
      len = x % sizeof(buf);
      for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
      }
    }
    Keelraft__Message *pm = keelraft__message__unpack(NULL, len, buf);
    if (!pm) {
      refused++;
      continue;
    }
    struct raft_codec_in in;
    if (raft_codec_decode(pm, &in, NULL) == 0) {
      decoded++;
      assert_true(in.msg.type >= 1 && in.msg.type <= RAFT_MSG_TYPE_MAX);
      assert_true(in.msg.from != 0);
      assert_true(in.msg.context_len <= RAFT_MAX_CONTEXT);
      raft_codec_in_free(&in);
    } else {
      refused++;
    }
    keelraft__message__free_unpacked(pm, NULL);
  }
  free(good);
  assert_true(decoded > 0);
  assert_true(refused > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_append),
      cmocka_unit_test(test_round_trip_snapshot),
      cmocka_unit_test(test_every_type_round_trips),
      cmocka_unit_test(test_malformed_refused),
      cmocka_unit_test(test_random_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

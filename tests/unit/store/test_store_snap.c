/* test_store_snap.c — snapshot streams (round trip in odd chunk sizes,
 * corrupted / truncated / over-long streams refused with the old store
 * intact), defragmentation while a reader and a stream are open, the quota
 * (fill to NOSPACE, delete + compact + defrag, clear the alarm, write
 * again) and a full LMDB map (the batch fails whole, nothing corrupted). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "keel_error.h"
#include "keel_log.h"
#include "store.h"
#include "test_util.h"

static uint64_t next_index(struct store *st) {
  uint64_t i, t;
  store_applied(st, &i, &t);
  return i + 1;
}

static int put(struct store *st, const char *k, const uint8_t *v, size_t vlen,
               int64_t lease) {
  struct store_request rq = {.type = STORE_REQ_PUT};
  rq.u.put.key = (const uint8_t *)k;
  rq.u.put.key_len = strlen(k);
  rq.u.put.value = v;
  rq.u.put.value_len = vlen;
  rq.u.put.lease = lease;
  struct store_apply_entry e = {.index = next_index(st), .term = 3, .req = &rq};
  struct store_apply_batch b = {.entries = &e, .n = 1};
  struct store_apply_result res;
  int rc = store_apply(st, &b, &res);
  if (rc != 0)
    return rc;
  rc = res.responses[0].error;
  store_apply_result_free(&res);
  return rc;
}

static int apply_req(struct store *st, const struct store_request *rq) {
  struct store_apply_entry e = {.index = next_index(st), .term = 3, .req = rq};
  struct store_apply_batch b = {.entries = &e, .n = 1};
  struct store_apply_result res;
  int rc = store_apply(st, &b, &res);
  if (rc != 0)
    return rc;
  rc = res.responses[0].error;
  store_apply_result_free(&res);
  return rc;
}

static void fill(struct store *st, int n) {
  struct store_request g = {.type = STORE_REQ_LEASE_GRANT};
  g.u.lease_grant.id = 9;
  g.u.lease_grant.ttl = 30;
  assert_int_equal(apply_req(st, &g), 0);
  char k[32], v[64];
  for (int i = 0; i < n; i++) {
    snprintf(k, sizeof(k), "key/%04d", i % 50);
    int vl = snprintf(v, sizeof(v), "value-%d", i);
    assert_int_equal(put(st, k, (uint8_t *)v, (size_t)vl, i % 7 ? 0 : 9), 0);
  }
  struct store_request c = {.type = STORE_REQ_COMPACTION};
  c.u.compaction.revision = n / 3;
  assert_int_equal(apply_req(st, &c), 0);
}

/* Streams st into a buffer (chunk sizes vary). */
static uint8_t *stream(struct store *st, size_t *len, uint8_t digest[32]) {
  struct store_snapshot *s;
  assert_int_equal(store_snapshot_open(st, &s), 0);
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  size_t chunk = 64;
  for (;;) {
    if (n + chunk > cap) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
    size_t got;
    assert_int_equal(store_snapshot_read(s, buf + n, chunk, &got), 0);
    if (got == 0)
      break;
    n += got;
    chunk = chunk * 3 % 1000 + 64;
  }
  uint64_t size;
  store_snapshot_digest(s, digest, &size);
  assert_int_equal(size, n);
  store_snapshot_close(s);
  *len = n;
  return buf;
}

static int restore(struct store *st, const uint8_t *data, size_t len,
                   size_t chunk) {
  struct store_restore *r;
  int rc = store_restore_begin(st, &r);
  if (rc != 0)
    return rc;
  for (size_t off = 0; off < len; off += chunk) {
    size_t n = len - off < chunk ? len - off : chunk;
    if ((rc = store_restore_write(r, data + off, n)) != 0) {
      store_restore_abort(r);
      return rc;
    }
  }
  return store_restore_finish(r, NULL);
}

static void same_state(struct store *a, struct store *b) {
  uint32_t ha, hb;
  int64_t ca, cb, ra, rb;
  assert_int_equal(store_hash_kv(a, 0, &ha, &ca, &ra), 0);
  assert_int_equal(store_hash_kv(b, 0, &hb, &cb, &rb), 0);
  assert_int_equal(ha, hb);
  assert_int_equal(ca, cb);
  assert_int_equal(ra, rb);
  uint64_t ia, ta, ib, tb;
  store_applied(a, &ia, &ta);
  store_applied(b, &ib, &tb);
  assert_int_equal(ia, ib);
  assert_int_equal(ta, tb);
}

static void test_round_trip(void **state) {
  (void)state;
  char d1[256], d2[256];
  tu_tmpdir(d1, sizeof(d1), "snapA");
  tu_tmpdir(d2, sizeof(d2), "snapB");
  struct store_options o = {.quota_bytes = 16 << 20, .apply_nosync = true};
  struct store *a, *b;
  assert_int_equal(store_open(d1, &o, &a), 0);
  assert_int_equal(store_open(d2, &o, &b), 0);
  fill(a, 300);
  put(b, "old", (const uint8_t *)"x", 1, 0);
  struct store_hard_state hs = {.term = 9, .vote = 2, .commit = 1};
  assert_int_equal(store_log_save_hard_state(b, &hs), 0);
  size_t len;
  uint8_t dig[32], dig2[32];
  uint8_t *data = stream(a, &len, dig);
  assert_int_equal(restore(b, data, len, 777), 0);
  same_state(a, b);
  assert_int_equal(store_verify(b), 0);
  /* B keeps its own term and vote; its log restarts at the snapshot */
  struct store_hard_state got;
  assert_int_equal(store_log_load_state(b, &got, NULL), 0);
  assert_int_equal(got.term, 9);
  assert_int_equal(got.vote, 2);
  uint64_t ia, ta;
  store_applied(a, &ia, &ta);
  assert_int_equal(got.commit, ia);
  assert_int_equal(store_log_first_index(b), ia + 1);
  uint64_t t;
  assert_int_equal(store_log_term(b, ia, &t), 0);
  assert_int_equal(t, 3);
  struct store_lease_keys lk;
  struct store_lease_info li;
  assert_int_equal(store_lease_get(b, 9, &li, &lk), 0);
  assert_true(lk.n > 0);
  store_lease_keys_free(&lk);
  /* the restored store streams the very same bytes */
  size_t len2;
  uint8_t *data2 = stream(b, &len2, dig2);
  assert_int_equal(len, len2);
  assert_memory_equal(dig, dig2, 32);
  free(data2);
  /* and survives a reopen */
  store_close(b);
  assert_int_equal(store_open(d2, &o, &b), 0);
  same_state(a, b);
  /* writes go on after a restore */
  assert_int_equal(put(b, "after", (const uint8_t *)"y", 1, 0), 0);
  free(data);
  store_close(a);
  store_close(b);
  tu_rmrf(d1);
  tu_rmrf(d2);
}

static void test_bad_streams_refused(void **state) {
  (void)state;
  char d1[256], d2[256];
  tu_tmpdir(d1, sizeof(d1), "badA");
  tu_tmpdir(d2, sizeof(d2), "badB");
  struct store_options o = {.quota_bytes = 16 << 20, .apply_nosync = true};
  struct store *a, *b;
  assert_int_equal(store_open(d1, &o, &a), 0);
  assert_int_equal(store_open(d2, &o, &b), 0);
  fill(a, 120);
  assert_int_equal(put(b, "mine", (const uint8_t *)"keep", 4, 0), 0);
  uint32_t before;
  assert_int_equal(store_hash_kv(b, 0, &before, NULL, NULL), 0);
  size_t len;
  uint8_t dig[32];
  uint8_t *data = stream(a, &len, dig);
  /* a flipped byte anywhere: refused (record check or digest) */
  size_t spots[] = {3, 40, len / 2, len - 40, len - 1};
  for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
    data[spots[i]] ^= 0x20;
    int rc = restore(b, data, len, 500);
    assert_true(rc == KEEL_ECORRUPT || rc == KEEL_EVERSION ||
                rc == KEEL_ETOOLARGE);
    data[spots[i]] ^= 0x20;
  }
  /* truncated, and too long */
  assert_int_equal(restore(b, data, len - 1, 500), KEEL_ECORRUPT);
  assert_int_equal(restore(b, data, len / 2, 500), KEEL_ECORRUPT);
  uint8_t *longer = malloc(len + 1);
  memcpy(longer, data, len);
  longer[len] = 0;
  assert_int_equal(restore(b, longer, len + 1, 500), KEEL_ECORRUPT);
  free(longer);
  uint32_t after;
  assert_int_equal(store_hash_kv(b, 0, &after, NULL, NULL), 0);
  assert_int_equal(before, after); /* the old store is untouched */
  /* no leftover files after aborted restores: reopen is clean */
  store_close(b);
  assert_int_equal(store_open(d2, &o, &b), 0);
  assert_int_equal(store_hash_kv(b, 0, &after, NULL, NULL), 0);
  assert_int_equal(before, after);
  free(data);
  store_close(a);
  store_close(b);
  tu_rmrf(d1);
  tu_rmrf(d2);
}

/* Random damage (flips, cuts, inserted and dropped bytes, chunk sizes):
 * every damaged stream is refused with an error, nothing crashes, and the
 * store being restored into never changes. */
static void test_random_damage_refused(void **state) {
  (void)state;
  char d1[256], d2[256];
  tu_tmpdir(d1, sizeof(d1), "dmgA");
  tu_tmpdir(d2, sizeof(d2), "dmgB");
  struct store_options o = {.quota_bytes = 16 << 20, .apply_nosync = true};
  struct store *a, *b;
  assert_int_equal(store_open(d1, &o, &a), 0);
  assert_int_equal(store_open(d2, &o, &b), 0);
  fill(a, 60);
  assert_int_equal(put(b, "mine", (const uint8_t *)"keep", 4, 0), 0);
  uint32_t before, after;
  assert_int_equal(store_hash_kv(b, 0, &before, NULL, NULL), 0);
  size_t len;
  uint8_t dig[32];
  uint8_t *data = stream(a, &len, dig);
  uint8_t *bad = malloc(len + 64);
  uint64_t r = 99;
  keel_log_set_level(KEEL_LOG_OFF); /* hundreds of refusals */
  for (int i = 0; i < 300; i++) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    size_t n = len;
    memcpy(bad, data, len);
    size_t at = (size_t)(r >> 33) % len;
    switch ((r >> 20) % 4) {
    case 0: /* flip some bytes */
      for (int k = 0; k < 1 + (int)((r >> 8) % 4); k++)
        bad[(at + (size_t)k * 977) % len] ^= (uint8_t)(1 + (r >> 40) % 255);
      break;
    case 1: /* cut */
      n = at;
      break;
    case 2: /* insert a byte */
      memmove(bad + at + 1, bad + at, len - at);
      bad[at] = (uint8_t)(r >> 48);
      n = len + 1;
      break;
    default: /* drop a byte */
      memmove(bad + at, bad + at + 1, len - at - 1);
      n = len - 1;
    }
    int rc = restore(b, bad, n, 1 + (size_t)((r >> 12) % 3000));
    assert_int_not_equal(rc, 0);
  }
  keel_log_set_level(KEEL_LOG_INFO);
  assert_int_equal(store_hash_kv(b, 0, &after, NULL, NULL), 0);
  assert_int_equal(before, after);
  assert_int_equal(store_verify(b), 0);
  free(bad);
  free(data);
  store_close(a);
  store_close(b);
  tu_rmrf(d1);
  tu_rmrf(d2);
}

static uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

/* A stream whose bytes and digest are right but whose state is not (a
 * history record missing: a buggy or hostile sender) is refused too. */
static void test_inconsistent_state_refused(void **state) {
  (void)state;
  char d1[256], d2[256];
  tu_tmpdir(d1, sizeof(d1), "incA");
  tu_tmpdir(d2, sizeof(d2), "incB");
  struct store_options o = {.quota_bytes = 16 << 20, .apply_nosync = true};
  struct store *a, *b;
  assert_int_equal(store_open(d1, &o, &a), 0);
  assert_int_equal(store_open(d2, &o, &b), 0);
  fill(a, 40);
  assert_int_equal(put(b, "mine", (const uint8_t *)"keep", 4, 0), 0);
  uint32_t before, after;
  assert_int_equal(store_hash_kv(b, 0, &before, NULL, NULL), 0);
  size_t len;
  uint8_t dig[32];
  uint8_t *data = stream(a, &len, dig);
  /* rebuild it without the first record of the second table */
  uint8_t *out = malloc(len);
  size_t o_n = 28, pos = 28;
  memcpy(out, data, 28);
  int tables = 0, last_db = -1;
  bool dropped = false;
  uint64_t count = 0;
  while (data[pos] != 0xFF) {
    size_t rl = 9 + rd32(data + pos + 1) + rd32(data + pos + 5);
    if (data[pos] != last_db) {
      last_db = data[pos];
      tables++;
    }
    if (tables == 2 && !dropped) {
      dropped = true;
    } else {
      memcpy(out + o_n, data + pos, rl);
      o_n += rl;
      count++;
    }
    pos += rl;
  }
  assert_true(dropped);
  memcpy(out + o_n, data + pos, 9);
  o_n += 9;
  for (int i = 7; i >= 0; i--)
    out[o_n++] = (uint8_t)(count >> (8 * i));
  unsigned dl = 32;
  EVP_Digest(out, o_n, out + o_n, &dl, EVP_sha256(), NULL);
  o_n += 32;
  assert_int_equal(restore(b, out, o_n, 4096), KEEL_ECORRUPT);
  assert_int_equal(store_hash_kv(b, 0, &after, NULL, NULL), 0);
  assert_int_equal(before, after);
  free(out);
  free(data);
  store_close(a);
  store_close(b);
  tu_rmrf(d1);
  tu_rmrf(d2);
}

static int64_t live_keys(struct store *st) {
  struct store_range_req q = {.key = (const uint8_t *)"\0",
                              .key_len = 1,
                              .range_end = (const uint8_t *)"\0",
                              .range_end_len = 1,
                              .count_only = true};
  struct store_range_result r;
  assert_int_equal(store_range(st, &q, &r), 0);
  int64_t c = r.resp.count;
  store_range_result_free(&r);
  return c;
}

static void test_quota_nospace_and_recovery(void **state) {
  (void)state;
  char d[256];
  tu_tmpdir(d, sizeof(d), "quota");
  struct store_options o = {.quota_bytes = 2 << 20, .apply_nosync = true};
  struct store *st;
  assert_int_equal(store_open(d, &o, &st), 0);
  static uint8_t val[8192];
  memset(val, 'v', sizeof(val));
  char k[32];
  int n = 0;
  /* the leader's check before proposing, as the server does it */
  while (!store_quota_exceeded(st, sizeof(val))) {
    snprintf(k, sizeof(k), "fill/%06d", n++);
    assert_int_equal(put(st, k, val, sizeof(val), 0), 0);
    assert_true(n < 10000);
  }
  struct store_request al = {.type = STORE_REQ_ALARM};
  al.u.alarm.action = STORE_ALARM_ACTIVATE;
  al.u.alarm.member_id = 1;
  al.u.alarm.alarm = STORE_ALARM_NOSPACE;
  assert_int_equal(apply_req(st, &al), 0);
  assert_int_equal(put(st, "more", val, 10, 0), KEEL_ENOSPACE);
  assert_int_equal(live_keys(st), n); /* reads work, nothing lost */
  struct store_snapshot *held;        /* a stream open across the defrag */
  assert_int_equal(store_snapshot_open(st, &held), 0);
  /* free space: delete everything, compact, defragment */
  struct store_request del = {.type = STORE_REQ_DELETE_RANGE};
  del.u.delete_range.key = (const uint8_t *)"fill/";
  del.u.delete_range.key_len = 5;
  del.u.delete_range.range_end = (const uint8_t *)"fill0";
  del.u.delete_range.range_end_len = 5;
  assert_int_equal(apply_req(st, &del), 0);
  int64_t cur;
  store_revisions(st, &cur, NULL);
  struct store_request c = {.type = STORE_REQ_COMPACTION};
  c.u.compaction.revision = cur;
  assert_int_equal(apply_req(st, &c), 0);
  /* the physical half of compaction, in bounded steps */
  int steps = 0, r;
  while ((r = store_compact_step(st, 100)) == 1)
    steps++;
  assert_int_equal(r, 0);
  assert_true(steps >= (n * 2) / 100 - 1);
  struct store_size before, after;
  assert_int_equal(store_size(st, &before), 0);
  assert_int_equal(store_defragment(st), 0);
  assert_int_equal(store_size(st, &after), 0);
  assert_true(after.size < before.size);
  assert_true(after.size < o.quota_bytes / 2);
  assert_int_equal(store_quota_exceeded(st, sizeof(val)), 0);
  /* the stream opened before the switch still reads the old file */
  uint8_t buf[4096];
  size_t got, total = 0;
  do {
    assert_int_equal(store_snapshot_read(held, buf, sizeof(buf), &got), 0);
    total += got;
  } while (got > 0);
  assert_true(total > (size_t)n * sizeof(val));
  store_snapshot_close(held);
  /* still refused until the alarm is cleared */
  assert_int_equal(put(st, "more", val, 10, 0), KEEL_ENOSPACE);
  al.u.alarm.action = STORE_ALARM_DEACTIVATE;
  assert_int_equal(apply_req(st, &al), 0);
  assert_int_equal(put(st, "more", val, 10, 0), 0);
  assert_int_equal(live_keys(st), 1);
  store_close(st);
  assert_int_equal(store_open(d, &o, &st), 0);
  assert_int_equal(live_keys(st), 1);
  store_close(st);
  tu_rmrf(d);
}

/* Past the LMDB map (no alarm raised) while a reader is open (so the map
 * cannot grow): the batch fails whole with KEEL_ENOSPACE, earlier batches
 * stay, reads work; once the reader is gone the map grows and deletes,
 * compaction and writes go on. */
static void test_map_full(void **state) {
  (void)state;
  char d[256];
  tu_tmpdir(d, sizeof(d), "mapfull");
  struct store_options o = {.quota_bytes = 64 << 10, .apply_nosync = true};
  struct store *st;
  assert_int_equal(store_open(d, &o, &st), 0);
  static uint8_t val[256 << 10];
  memset(val, 'x', sizeof(val));
  struct store_snapshot *reader;
  assert_int_equal(store_snapshot_open(st, &reader), 0);
  char k[32];
  int rc = 0, n = 0;
  for (; n < 2000; n++) {
    snprintf(k, sizeof(k), "big/%06d", n);
    if ((rc = put(st, k, val, sizeof(val), 0)) != 0)
      break;
  }
  assert_int_equal(rc, KEEL_ENOSPACE);
  uint64_t applied, term;
  store_applied(st, &applied, &term);
  assert_int_equal(live_keys(st), n);
  assert_int_equal(store_verify(st), 0);
  store_snapshot_close(reader);
  /* deletes and compaction free space; the node recovers */
  struct store_request del = {.type = STORE_REQ_DELETE_RANGE};
  del.u.delete_range.key = (const uint8_t *)"big/";
  del.u.delete_range.key_len = 4;
  del.u.delete_range.range_end = (const uint8_t *)"big0";
  del.u.delete_range.range_end_len = 4;
  assert_int_equal(apply_req(st, &del), 0);
  int64_t cur;
  store_revisions(st, &cur, NULL);
  struct store_request c = {.type = STORE_REQ_COMPACTION};
  c.u.compaction.revision = cur;
  assert_int_equal(apply_req(st, &c), 0);
  int r;
  while ((r = store_compact_step(st, 0)) == 1)
    ;
  assert_int_equal(r, 0);
  assert_int_equal(put(st, "again", val, 1024, 0), 0);
  store_close(st);
  assert_int_equal(store_open(d, &o, &st), 0);
  assert_int_equal(live_keys(st), 1);
  store_close(st);
  tu_rmrf(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_bad_streams_refused),
      cmocka_unit_test(test_random_damage_refused),
      cmocka_unit_test(test_inconsistent_state_refused),
      cmocka_unit_test(test_quota_nospace_and_recovery),
      cmocka_unit_test(test_map_full),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

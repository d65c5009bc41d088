/* test_grpc_wire.c — gRPC message framing (whole, fragmented at every
 * split, many messages per chunk), the size limit, the compressed flag,
 * grpc-message percent-encoding and grpc-timeout parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"
#include "keel_grpc_wire.h"

struct sink {
  size_t n;
  size_t lens[64];
  uint8_t data[64][64];
  int stop_after; /* 0 = never */
};

static int collect(void *ud, const uint8_t *msg, size_t len) {
  struct sink *s = ud;
  assert_true(s->n < 64 && len <= 64);
  s->lens[s->n] = len;
  memcpy(s->data[s->n], msg, len);
  s->n++;
  return s->stop_after && (int)s->n == s->stop_after ? 1 : 0;
}

/* Three messages back to back: "abc", "" (empty), "hello world". */
static size_t build_stream(uint8_t *out) {
  const char *msgs[] = {"abc", "", "hello world"};
  size_t pos = 0;
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(msgs[i]);
    keel_grpc_prefix_encode(out + pos, n);
    pos += KEEL_GRPC_PREFIX_LEN;
    memcpy(out + pos, msgs[i], n);
    pos += n;
  }
  return pos;
}

static void check_three(const struct sink *s) {
  assert_int_equal(s->n, 3);
  assert_int_equal(s->lens[0], 3);
  assert_memory_equal(s->data[0], "abc", 3);
  assert_int_equal(s->lens[1], 0);
  assert_int_equal(s->lens[2], 11);
  assert_memory_equal(s->data[2], "hello world", 11);
}

static void test_prefix_encoding(void **state) {
  (void)state;
  uint8_t p[5];
  keel_grpc_prefix_encode(p, 0x01020304);
  uint8_t want[5] = {0, 1, 2, 3, 4};
  assert_memory_equal(p, want, 5);
}

static void test_whole_chunk(void **state) {
  (void)state;
  uint8_t buf[128];
  size_t n = build_stream(buf);
  struct keel_grpc_decoder d;
  keel_grpc_decoder_init(&d, 1024);
  struct sink s = {0};
  size_t used = 0;
  assert_int_equal(keel_grpc_decoder_feed(&d, buf, n, &used, collect, &s), 0);
  assert_int_equal(used, n);
  check_three(&s);
  assert_true(keel_grpc_decoder_idle(&d));
  keel_grpc_decoder_free(&d);
}

/* Every two-way split and byte-at-a-time feeding give the same messages. */
static void test_fragmented(void **state) {
  (void)state;
  uint8_t buf[128];
  size_t n = build_stream(buf);
  for (size_t cut = 0; cut <= n; cut++) {
    struct keel_grpc_decoder d;
    keel_grpc_decoder_init(&d, 1024);
    struct sink s = {0};
    assert_int_equal(keel_grpc_decoder_feed(&d, buf, cut, NULL, collect, &s),
                     0);
    if (cut < n)
      assert_int_equal(
          keel_grpc_decoder_feed(&d, buf + cut, n - cut, NULL, collect, &s), 0);
    check_three(&s);
    assert_true(keel_grpc_decoder_idle(&d));
    keel_grpc_decoder_free(&d);
  }
  struct keel_grpc_decoder d;
  keel_grpc_decoder_init(&d, 1024);
  struct sink s = {0};
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(keel_grpc_decoder_feed(&d, buf + i, 1, NULL, collect, &s),
                     0);
    if (i == 2)
      assert_false(keel_grpc_decoder_idle(&d)); /* inside a prefix */
  }
  check_three(&s);
  keel_grpc_decoder_free(&d);
}

static void test_stop_resume(void **state) {
  (void)state;
  uint8_t buf[128];
  size_t n = build_stream(buf);
  struct keel_grpc_decoder d;
  keel_grpc_decoder_init(&d, 1024);
  struct sink s = {0};
  s.stop_after = 1;
  size_t used = 0;
  assert_int_equal(keel_grpc_decoder_feed(&d, buf, n, &used, collect, &s), 1);
  assert_int_equal(used, 8); /* prefix + "abc" */
  s.stop_after = 0;
  assert_int_equal(
      keel_grpc_decoder_feed(&d, buf + used, n - used, NULL, collect, &s), 0);
  check_three(&s);
  keel_grpc_decoder_free(&d);
}

static void test_size_limit(void **state) {
  (void)state;
  uint8_t p[5];
  struct keel_grpc_decoder d;
  keel_grpc_decoder_init(&d, 100);
  struct sink s = {0};
  /* exactly the limit is fine (body not sent yet) */
  keel_grpc_prefix_encode(p, 100);
  assert_int_equal(keel_grpc_decoder_feed(&d, p, 5, NULL, collect, &s), 0);
  keel_grpc_decoder_free(&d);
  keel_grpc_decoder_init(&d, 100);
  keel_grpc_prefix_encode(p, 101);
  /* refused from the prefix alone, before any body byte */
  assert_int_equal(keel_grpc_decoder_feed(&d, p, 3, NULL, collect, &s), 0);
  assert_int_equal(keel_grpc_decoder_feed(&d, p + 3, 2, NULL, collect, &s),
                   KEEL_ELIMIT);
  assert_int_equal(d.bad_len, 101);
  keel_grpc_decoder_free(&d);
  /* the largest length the prefix can say */
  keel_grpc_decoder_init(&d, 1536 * 1024);
  uint8_t big[5] = {0, 0xff, 0xff, 0xff, 0xff};
  assert_int_equal(keel_grpc_decoder_feed(&d, big, 5, NULL, collect, &s),
                   KEEL_ELIMIT);
  assert_int_equal(d.bad_len, 0xffffffffu);
  keel_grpc_decoder_free(&d);
  assert_int_equal(s.n, 0);
}

static void test_compressed_flag(void **state) {
  (void)state;
  uint8_t m[8] = {1, 0, 0, 0, 3, 'a', 'b', 'c'};
  struct keel_grpc_decoder d;
  keel_grpc_decoder_init(&d, 100);
  struct sink s = {0};
  assert_int_equal(keel_grpc_decoder_feed(&d, m, 8, NULL, collect, &s),
                   KEEL_EBADMSG);
  assert_int_equal(d.bad_flag, 1);
  assert_int_equal(s.n, 0);
  keel_grpc_decoder_free(&d);
}

static void test_percent_encoding(void **state) {
  (void)state;
  char out[128];
  const char *in = "etcdserver: 100% done\n\xc3\xa9";
  size_t need = keel_grpc_percent_encode(in, strlen(in), out, sizeof(out));
  assert_string_equal(out, "etcdserver: 100%25 done%0A%C3%A9");
  assert_int_equal(need, strlen(out));
  char back[128];
  keel_grpc_percent_decode(out, strlen(out), back, sizeof(back));
  assert_string_equal(back, in);
  /* cut output never splits an escape */
  char small[6];
  need = keel_grpc_percent_encode("ab%cd", 5, small, sizeof(small));
  assert_int_equal(need, 7);
  assert_string_equal(small, "ab%25");
  char tiny[4];
  keel_grpc_percent_encode("ab%cd", 5, tiny, sizeof(tiny));
  assert_string_equal(tiny, "ab");
  /* a malformed escape decodes as itself */
  keel_grpc_percent_decode("50%zz%4", 7, back, sizeof(back));
  assert_string_equal(back, "50%zz%4");
  /* plain ASCII passes unchanged */
  keel_grpc_percent_encode("unknown service x.Y", 19, out, sizeof(out));
  assert_string_equal(out, "unknown service x.Y");
}

static void test_timeout(void **state) {
  (void)state;
  uint64_t ms;
  assert_int_equal(keel_grpc_timeout_parse("5S", 2, &ms), 0);
  assert_int_equal(ms, 5000);
  assert_int_equal(keel_grpc_timeout_parse("4999870u", 8, &ms), 0);
  assert_int_equal(ms, 5000);
  assert_int_equal(keel_grpc_timeout_parse("1n", 2, &ms), 0);
  assert_int_equal(ms, 1);
  assert_int_equal(keel_grpc_timeout_parse("2H", 2, &ms), 0);
  assert_int_equal(ms, 7200000);
  assert_int_equal(keel_grpc_timeout_parse("3M", 2, &ms), 0);
  assert_int_equal(ms, 180000);
  assert_int_equal(keel_grpc_timeout_parse("250m", 4, &ms), 0);
  assert_int_equal(ms, 250);
  assert_int_equal(keel_grpc_timeout_parse("123456789m", 10, &ms),
                   KEEL_EPARSE); /* 9 digits */
  assert_int_equal(keel_grpc_timeout_parse("5", 1, &ms), KEEL_EPARSE);
  assert_int_equal(keel_grpc_timeout_parse("5x", 2, &ms), KEEL_EPARSE);
  assert_int_equal(keel_grpc_timeout_parse("-5S", 3, &ms), KEEL_EPARSE);
  char out[16];
  keel_grpc_timeout_format(1500, out);
  assert_string_equal(out, "1500m");
  keel_grpc_timeout_format(1000000000ull, out); /* > 8 digits of ms */
  assert_string_equal(out, "1000000S");
  size_t n = keel_grpc_timeout_format(99999999999999ull, out);
  assert_int_equal(keel_grpc_timeout_parse(out, n, &ms), 0);
  assert_true(ms >= 99999999999999ull);
}

static void test_code_names(void **state) {
  (void)state;
  assert_string_equal(keel_grpc_code_name(KEEL_GRPC_RESOURCE_EXHAUSTED),
                      "RESOURCE_EXHAUSTED");
  assert_string_equal(keel_grpc_code_name(99), "UNKNOWN_CODE");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prefix_encoding),
      cmocka_unit_test(test_whole_chunk),
      cmocka_unit_test(test_fragmented),
      cmocka_unit_test(test_stop_resume),
      cmocka_unit_test(test_size_limit),
      cmocka_unit_test(test_compressed_flag),
      cmocka_unit_test(test_percent_encoding),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_code_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_http1.c — the strict HTTP/1.1 request head parser: good requests,
 * incomplete input, malformed input and every size limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http1.h"
#include "keel_error.h"

static struct keel_http1_limits lim(void) {
  struct keel_http1_limits l;
  keel_http1_limits_default(&l);
  return l;
}

static int parse(const char *s, struct keel_http1_head *h,
                 struct keel_http1_error *e) {
  struct keel_http1_limits l = lim();
  return keel_http1_parse_head(s, strlen(s), &l, h, e);
}

static void expect_error(const char *req, int status) {
  struct keel_http1_head h;
  struct keel_http1_error e = {0};
  int rc = parse(req, &h, &e);
  assert_int_equal(rc, KEEL_EPARSE);
  assert_int_equal(e.status, status);
  assert_non_null(e.reason);
}

static void test_simple_get(void **state) {
  (void)state;
  const char *req = "GET /health?verbose=1 HTTP/1.1\r\nHost: x\r\n"
                    "User-Agent: curl/7\r\n\r\nEXTRA";
  struct keel_http1_head h;
  struct keel_http1_error e;
  int rc = parse(req, &h, &e);
  assert_int_equal(rc, (int)(strlen(req) - 5));
  assert_int_equal(h.method_len, 3);
  assert_memory_equal(h.method, "GET", 3);
  assert_int_equal(h.path_len, 7);
  assert_memory_equal(h.path, "/health", 7);
  assert_int_equal(h.query_len, 9);
  assert_memory_equal(h.query, "verbose=1", 9);
  assert_int_equal(h.version_minor, 1);
  assert_int_equal(h.n_headers, 2);
  assert_true(h.keep_alive);
  assert_int_equal(h.content_length, 0);
  const struct keel_http1_header *ua = keel_http1_find_header(&h, "user-agent");
  assert_non_null(ua);
  assert_int_equal(ua->value_len, 6);
  assert_memory_equal(ua->value, "curl/7", 6);
  assert_null(keel_http1_find_header(&h, "accept"));
}

static void test_post_body_and_connection(void **state) {
  (void)state;
  struct keel_http1_head h;
  struct keel_http1_error e;
  const char *req = "POST /config/app HTTP/1.1\r\nContent-Length:  12 \r\n"
                    "Connection: keep-alive, close\r\n\r\n";
  assert_true(parse(req, &h, &e) > 0);
  assert_int_equal(h.content_length, 12);
  assert_false(h.keep_alive);
  assert_null(h.query);
  /* HTTP/1.0: keep-alive only when asked for */
  assert_true(parse("GET / HTTP/1.0\r\n\r\n", &h, &e) > 0);
  assert_false(h.keep_alive);
  assert_true(
      parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h, &e) > 0);
  assert_true(h.keep_alive);
  /* bare LF line ends are tolerated */
  assert_true(parse("GET /a HTTP/1.1\nHost: x\n\n", &h, &e) > 0);
  assert_int_equal(h.n_headers, 1);
}

static void test_incomplete(void **state) {
  (void)state;
  const char *full = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
  struct keel_http1_head h;
  struct keel_http1_error e;
  struct keel_http1_limits l = lim();
  for (size_t n = 0; n < strlen(full); n++)
    assert_int_equal(keel_http1_parse_head(full, n, &l, &h, &e), 0);
  assert_int_equal(keel_http1_parse_head(full, strlen(full), &l, &h, &e),
                   (int)strlen(full));
}

static void test_malformed(void **state) {
  (void)state;
  expect_error("get / HTTP/1.1\r\n\r\n", 400);      /* lower-case */
  expect_error("GET  / HTTP/1.1\r\n\r\n", 400);     /* double space */
  expect_error("GET health HTTP/1.1\r\n\r\n", 400); /* not origin-form */
  expect_error("GET /\x01 HTTP/1.1\r\n\r\n", 400);  /* control char */
  expect_error("GET / HTTP/1.1 x\r\n\r\n", 400);    /* trailing junk */
  expect_error("GET / FTP/1.1\r\n\r\n", 400);       /* not HTTP */
  expect_error("GET / HTTP/2.0\r\n\r\n", 505);      /* other version */
  expect_error("GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\n: empty\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nContent-Length: 1\r\n"
               "Content-Length: 1\r\n\r\n",
               400);
  expect_error("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400); /* bare CR */
  expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
}

static void test_limits(void **state) {
  (void)state;
  struct keel_http1_limits l = lim();
  struct keel_http1_head h;
  struct keel_http1_error e;
  /* request line over the limit: refused before the line even ends */
  size_t n = l.max_request_line + 10;
  char *big = malloc(n + 64);
  memcpy(big, "GET /", 5);
  memset(big + 5, 'a', n - 5);
  assert_int_equal(keel_http1_parse_head(big, n, &l, &h, &e), KEEL_EPARSE);
  assert_int_equal(e.status, 414);
  free(big);
  /* headers over the head limit: 431 */
  size_t hn = l.max_head_bytes + 100;
  char *hb = malloc(hn + 1);
  strcpy(hb, "GET / HTTP/1.1\r\nX: ");
  size_t pos = strlen(hb);
  memset(hb + pos, 'v', hn - pos);
  hb[hn] = 0;
  assert_int_equal(keel_http1_parse_head(hb, hn, &l, &h, &e), KEEL_EPARSE);
  assert_int_equal(e.status, 431);
  free(hb);
  /* too many headers: 431 */
  char many[8192];
  pos = (size_t)sprintf(many, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < 70; i++)
    pos += (size_t)sprintf(many + pos, "H%d: v\r\n", i);
  pos += (size_t)sprintf(many + pos, "\r\n");
  assert_int_equal(keel_http1_parse_head(many, pos, &l, &h, &e), KEEL_EPARSE);
  assert_int_equal(e.status, 431);
  /* body over the limit: 413 from Content-Length alone */
  char req[128];
  snprintf(req, sizeof(req), "PUT /x HTTP/1.1\r\nContent-Length: %zu\r\n\r\n",
           l.max_body_bytes + 1);
  expect_error(req, 413);
  snprintf(req, sizeof(req), "PUT /x HTTP/1.1\r\nContent-Length: %zu\r\n\r\n",
           l.max_body_bytes);
  assert_true(parse(req, &h, &e) > 0);
}

static void test_format_head(void **state) {
  (void)state;
  char out[256];
  int n = keel_http1_format_head(out, sizeof(out), 503, "application/json", 17,
                                 0, "X-A: b\r\n");
  assert_true(n > 0);
  assert_string_equal(out, "HTTP/1.1 503 Service Unavailable\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: 17\r\nConnection: close\r\n"
                           "X-A: b\r\n\r\n");
  assert_int_equal(keel_http1_format_head(out, 20, 200, NULL, 0, 1, NULL),
                   KEEL_ELIMIT);
}

/* Random and mutated input never crashes the parser and always gets an
 * answer of the documented kinds (run under ASan in the sanitizer build). */
static void test_random_input(void **state) {
  (void)state;
  struct keel_http1_limits l = lim();
  l.max_request_line = 64;
  l.max_head_bytes = 256;
  const char *seed = "POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 3"
                     "\r\nConnection: close\r\n\r\nabc";
  size_t seed_len = strlen(seed);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  char buf[512];
  for (int iter = 0; iter < 50000; iter++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t n;
    if (iter % 2) {
      n = x % sizeof(buf);
      for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (char)(x & 0xff);
      }
    } else {
      n = seed_len;
      memcpy(buf, seed, n);
      buf[x % n] = (char)(x >> 8); /* one mutated byte */
      n = (size_t)(x >> 16) % (n + 1);
    }
    struct keel_http1_head h;
    struct keel_http1_error e = {0};
    int rc = keel_http1_parse_head(buf, n, &l, &h, &e);
    if (rc < 0) {
      assert_int_equal(rc, KEEL_EPARSE);
      assert_true(e.status >= 400 && e.status <= 505);
      assert_non_null(e.reason);
    } else if (rc > 0) {
      assert_true((size_t)rc <= n);
      assert_true(h.path_len >= 1 && h.path[0] == '/');
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple_get),
      cmocka_unit_test(test_post_body_and_connection),
      cmocka_unit_test(test_incomplete),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_format_head),
      cmocka_unit_test(test_random_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* fuzz_http1.c — libFuzzer target: the HTTP/1.1 request-head parser of the
 * client port (server/http1.h), the first code a plain-HTTP client reaches
 * (/health, /metrics, the config-server and OFREP endpoints).
 *
 * Byte 0 of the input picks the limits (the defaults, or small ones so that
 * every limit — request line 414, head 431, header count 431, body 413 — is
 * within the fuzzer's reach); the rest is the bytes a client sent. Beyond
 * "no crash", it checks the parser's promises:
 *
 *   - a complete head (rc > 0) lies within the input, is exactly what the
 *     same call on buf[0..rc) accepts too, and every prefix of it asks for
 *     more bytes (0): a head is never accepted, or refused, early;
 *   - its parts obey the grammar in http1.h: method of 1..15 upper-case
 *     letters, a path starting with '/', no control byte or space in the
 *     target, HTTP/1.0 or 1.1, at most max_headers headers with token names,
 *     a Content-Length within max_body_bytes, every pointer inside the head;
 *   - a refusal carries one of the documented statuses and a reason;
 *   - "need more" (0) happens only while no limit is broken: the input is
 *     shorter than max_head_bytes.
 *   - keel_http1_find_header() finds every parsed header by its name.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http1.h"
#include "keel_error.h"

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_http1: %s\n", what);                               \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static int inside(const char *p, size_t n, const char *buf, size_t len) {
  return p >= buf && p + n <= buf + len;
}

static int is_token_char(unsigned char c) {
  return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static void check_head(const char *buf, size_t rc,
                       const struct keel_http1_limits *lim,
                       const struct keel_http1_head *h) {
  CHECK(h->method_len >= 1 && h->method_len <= 15, "method length");
  CHECK(inside(h->method, h->method_len, buf, rc), "method outside the head");
  for (size_t i = 0; i < h->method_len; i++)
    CHECK(h->method[i] >= 'A' && h->method[i] <= 'Z', "method not A-Z");
  CHECK(h->path_len >= 1 && inside(h->path, h->path_len, buf, rc),
        "path outside the head");
  CHECK(h->path[0] == '/', "path does not start with '/'");
  for (size_t i = 0; i < h->path_len; i++)
    CHECK((unsigned char)h->path[i] > 0x20 && h->path[i] != 0x7f,
          "control byte or space in the path");
  if (h->query) {
    CHECK(inside(h->query, h->query_len, buf, rc), "query outside the head");
    CHECK(h->query > h->path && h->query[-1] == '?', "query not after '?'");
    for (size_t i = 0; i < h->query_len; i++)
      CHECK((unsigned char)h->query[i] > 0x20 && h->query[i] != 0x7f,
            "control byte or space in the query");
  }
  CHECK(h->version_minor == 0 || h->version_minor == 1, "HTTP version");
  CHECK(h->keep_alive == 0 || h->keep_alive == 1, "keep_alive not a boolean");
  CHECK(h->n_headers <= lim->max_headers, "more headers than the limit");
  CHECK(h->content_length <= lim->max_body_bytes,
        "Content-Length past max_body_bytes accepted");
  for (size_t i = 0; i < h->n_headers; i++) {
    const struct keel_http1_header *x = &h->headers[i];
    CHECK(x->name_len >= 1 && inside(x->name, x->name_len, buf, rc),
          "header name outside the head");
    CHECK(x->value_len == 0 || inside(x->value, x->value_len, buf, rc),
          "header value outside the head");
    for (size_t j = 0; j < x->name_len; j++)
      CHECK(is_token_char((unsigned char)x->name[j]),
            "header name not a token");
    if (x->value_len) {
      CHECK(x->value[0] != ' ' && x->value[0] != '\t',
            "header value not trimmed (front)");
      CHECK(x->value[x->value_len - 1] != ' ' &&
                x->value[x->value_len - 1] != '\t',
            "header value not trimmed (back)");
    }
    /* find_header wants a NUL-terminated name; names are short (the head
     * limit bounds them), copy onto the heap to keep ASan's eye on it. */
    char *name = malloc(x->name_len + 1);
    CHECK(name, "out of memory");
    memcpy(name, x->name, x->name_len);
    name[x->name_len] = '\0';
    const struct keel_http1_header *f = keel_http1_find_header(h, name);
    CHECK(f && f <= x, "find_header misses a parsed header");
    CHECK(f->name_len == x->name_len &&
              strncasecmp(f->name, x->name, x->name_len) == 0,
          "find_header returned another name");
    free(name);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct keel_http1_limits lim;
  keel_http1_limits_default(&lim);
  if (data[0] & 1) { /* small limits, each within reach */
    lim.max_request_line = 64 + (data[0] >> 1 & 63);
    lim.max_head_bytes = 128 + (size_t)(data[0] >> 1) * 4;
    lim.max_headers = 1 + (data[0] >> 4);
    lim.max_body_bytes = 100;
  }
  size--;
  /* A copy of exactly `size` bytes: ASan reports any read past the end. */
  char *buf = malloc(size ? size : 1);
  CHECK(buf, "out of memory");
  memcpy(buf, data + 1, size);

  struct keel_http1_head *h = malloc(sizeof *h);
  CHECK(h, "out of memory");
  struct keel_http1_error err = {0, NULL};
  int rc = keel_http1_parse_head(buf, size, &lim, h, &err);
  if (rc > 0) {
    CHECK((size_t)rc <= size, "head longer than the input");
    check_head(buf, (size_t)rc, &lim, h);
    /* The same head alone is accepted with the same length... */
    struct keel_http1_error e2 = {0, NULL};
    CHECK(keel_http1_parse_head(buf, (size_t)rc, &lim, h, &e2) == rc,
          "the head alone parses differently");
    /* ...and no prefix of it is complete or refused. */
    size_t cuts[3] = {(size_t)rc - 1, (size_t)rc / 2,
                      size > 1 ? (size_t)data[size] % (size_t)rc : 0};
    for (int i = 0; i < 3; i++) {
      CHECK(keel_http1_parse_head(buf, cuts[i], &lim, h, &e2) == 0,
            "a prefix of a complete head is not 'need more'");
    }
  } else if (rc == 0) {
    CHECK(size <= lim.max_head_bytes, "'need more' past max_head_bytes");
  } else {
    CHECK(rc == KEEL_EPARSE, "an error other than KEEL_EPARSE");
    CHECK(err.reason && err.reason[0], "a refusal without a reason");
    CHECK(err.status == 400 || err.status == 413 || err.status == 414 ||
              err.status == 431 || err.status == 501 || err.status == 505,
          "a refusal status that http1.h does not list");
  }
  free(h);
  free(buf);
  return 0;
}

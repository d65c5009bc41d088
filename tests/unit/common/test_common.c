/* test_common.c — error names and messages, and the logfmt line format. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "keel_buf.h"
#include "keel_error.h"
#include "keel_log.h"

static void test_strerror_keel_codes(void **state) {
  (void)state;
  assert_string_equal(keel_strerror(0), "ok");
  assert_string_equal(keel_strerror(KEEL_ECOMPACTED),
                      "mvcc: required revision has been compacted");
  assert_string_equal(keel_strerror(KEEL_ENOSPACE),
                      "mvcc: database space exceeded");
  assert_string_equal(keel_err_name(KEEL_ELEASENOTFOUND),
                      "KEEL_ELEASENOTFOUND");
}

static void test_strerror_errno_codes(void **state) {
  (void)state;
  assert_string_equal(keel_strerror(-ENOENT), "No such file or directory");
  assert_string_equal(keel_err_name(-EIO), "EIO");
  assert_string_equal(keel_strerror(-99999), "unknown error");
  assert_string_equal(keel_strerror(12345), "unknown error");
}

/* Every keel code has a distinct value and a message. */
static void test_codes_distinct(void **state) {
  (void)state;
  static const int codes[] = {
#define CODE(name, value, msg) value,
      KEEL_ERROR_MAP(CODE)
#undef CODE
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    assert_true(codes[i] <= -5000);
    assert_string_not_equal(keel_strerror(codes[i]), "unknown error");
    for (size_t j = i + 1; j < n; j++)
      assert_int_not_equal(codes[i], codes[j]);
  }
}

/* Captures what one log call writes to stderr. */
static char *capture_log(void (*fn)(void)) {
  char path[] = "/tmp/keel-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  int saved = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  static char out[4096];
  ssize_t n = pread(fd, out, sizeof out - 1, 0);
  assert_true(n >= 0);
  out[n] = 0;
  close(fd);
  unlink(path);
  return out;
}

static void log_one_event(void) {
  keel_logkv(KEEL_LOG_INFO, "raft", "became \"leader\"\n", "term=%d peer=%s", 5,
             "n2");
}

static void test_log_line_format(void **state) {
  (void)state;
  keel_log_set_node("n1");
  keel_log_set_level(KEEL_LOG_INFO);
  char *line = capture_log(log_one_event);
  assert_non_null(strstr(line, "time="));
  assert_non_null(strstr(line, " level=info node=n1 component=raft "
                               "msg=\"became \\\"leader\\\"\\n\" term=5 "
                               "peer=n2\n"));
  /* one event, one line */
  assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
}

static void log_debug_event(void) {
  keel_logf(KEEL_LOG_DEBUG, "store", "hidden %d", 1);
}

static void test_log_level_filters(void **state) {
  (void)state;
  keel_log_set_level(KEEL_LOG_INFO);
  assert_string_equal(capture_log(log_debug_event), "");
  enum keel_log_level lvl;
  assert_int_equal(keel_log_parse_level("WARN", &lvl), 0);
  assert_int_equal(lvl, KEEL_LOG_WARN);
  assert_int_equal(keel_log_parse_level("loud", &lvl), -EINVAL);
}

static void log_huge_event(void) {
  char big[8192];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  keel_logf(KEEL_LOG_ERROR, "server", "%s", big);
}

static void test_log_long_line_is_cut(void **state) {
  (void)state;
  char *line = capture_log(log_huge_event);
  size_t len = strlen(line);
  assert_true(len <= KEEL_LOG_LINE_MAX);
  assert_memory_equal(line + len - 4, "...\n", 4);
}

/* The consumed prefix is reused before the buffer grows, and the live
 * bytes survive the move. */
static void test_buf_compacts_before_growing(void **state) {
  (void)state;
  struct keel_buf b = {0};
  uint8_t chunk[1000];
  for (size_t i = 0; i < sizeof chunk; i++)
    chunk[i] = (uint8_t)i;
  for (int i = 0; i < 4; i++)
    assert_int_equal(keel_buf_append(&b, chunk, sizeof chunk), 0);
  assert_int_equal(b.cap, 4096);
  b.off += 3500; /* a consumer took 3,500 bytes */
  assert_int_equal(keel_buf_size(&b), 500);
  assert_int_equal(keel_buf_append(&b, chunk, sizeof chunk), 0);
  assert_int_equal(b.cap, 4096); /* compacted, not grown */
  assert_int_equal(b.off, 0);
  assert_int_equal(keel_buf_size(&b), 1500);
  assert_memory_equal(b.p, chunk + 500, 500);
  assert_memory_equal(b.p + 500, chunk, 1000);
  assert_int_equal(keel_buf_append(&b, chunk, 0), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(keel_buf_append(&b, chunk, sizeof chunk), 0);
  assert_int_equal(b.cap, 8192); /* grown by doubling */
  assert_int_equal(keel_buf_size(&b), 4500);
  keel_buf_free(&b);
  assert_null(b.p);
  assert_int_equal(keel_buf_size(&b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_keel_codes),
      cmocka_unit_test(test_strerror_errno_codes),
      cmocka_unit_test(test_codes_distinct),
      cmocka_unit_test(test_log_line_format),
      cmocka_unit_test(test_log_level_filters),
      cmocka_unit_test(test_log_long_line_is_cut),
      cmocka_unit_test(test_buf_compacts_before_growing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

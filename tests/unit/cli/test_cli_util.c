/* test_cli_util.c — unit tests for cli/cli_util.c (the keel CLI's pure
 * pieces): known answers for SHA-256 and base64, argument parsing and its
 * usage errors, safe display of non-UTF-8 bytes, the config file's
 * endpoint list, the txn line language, JSON/YAML output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli_util.h"

static int parse(struct cli_args *a, char *err, const char *first, ...) {
  char *argv[40];
  int argc = 0;
  argv[argc++] = "keel";
  va_list ap;
  va_start(ap, first);
  for (const char *s = first; s; s = va_arg(ap, const char *))
    argv[argc++] = (char *)s;
  va_end(ap);
  return cli_parse_args(argc, argv, a, err, 200);
}

static void test_args(void **st) {
  (void)st;
  struct cli_args a;
  char err[200];
  assert_int_equal(parse(&a, err, "get", "k", "--prefix", "--rev=5", "-w",
                         "json", "--limit", "3", NULL),
                   0);
  assert_int_equal(a.npos, 2);
  assert_string_equal(a.pos[0], "get");
  assert_string_equal(a.pos[1], "k");
  assert_string_equal(a.flag[F_PREFIX], "1");
  assert_string_equal(a.flag[F_REV], "5");
  assert_string_equal(a.flag[F_WRITE_OUT], "json");
  assert_string_equal(a.flag[F_LIMIT], "3");
  /* -wjson, -- ends flags, boolean =false. */
  assert_int_equal(
      parse(&a, err, "-wyaml", "put", "k", "--prefix=false", "--", "-v", NULL),
      0);
  assert_string_equal(a.flag[F_WRITE_OUT], "yaml");
  assert_null(a.flag[F_PREFIX]);
  assert_int_equal(a.npos, 3);
  assert_string_equal(a.pos[2], "-v");
  /* Usage errors name the problem. */
  assert_int_equal(parse(&a, err, "get", "--bogus", NULL), -1);
  assert_string_equal(err, "unknown flag --bogus");
  assert_int_equal(parse(&a, err, "get", "k", "--rev", NULL), -1);
  assert_string_equal(err, "flag --rev needs a value");
  assert_int_equal(parse(&a, err, "get", "--prefix=yes", NULL), -1);
  assert_non_null(strstr(err, "takes no value"));
  assert_int_equal(parse(&a, err, "-x", NULL), -1);
  assert_string_equal(err, "unknown flag -x");
  assert_int_equal(parse(&a, err, "-hx", NULL), -1);
}

/* Flags that repeat (keel flag eval --ctx a=1 --ctx b=2): every occurrence
 * in order; flag[] keeps the last. */
static void test_args_repeat(void **st) {
  (void)st;
  struct cli_args a;
  char err[200];
  assert_int_equal(parse(&a, err, "flag", "eval", "web", "k", "--ctx", "a=1",
                         "--context", "{}", "--ctx=b:=2", "--dry-run",
                         "--nodes", "5", "--dir", "/d", "--type", "bool", NULL),
                   0);
  assert_int_equal(a.npos, 4);
  assert_string_equal(a.flag[F_CTX], "b:=2");
  assert_string_equal(a.flag[F_CONTEXT], "{}");
  assert_string_equal(a.flag[F_DRY_RUN], "1");
  assert_string_equal(a.flag[F_NODES], "5");
  assert_string_equal(a.flag[F_DIR], "/d");
  assert_string_equal(a.flag[F_TYPE], "bool");
  assert_int_equal(a.nocc, 7);
  assert_int_equal(a.occ[0].flag, F_CTX);
  assert_string_equal(a.occ[0].value, "a=1");
  assert_int_equal(a.occ[1].flag, F_CONTEXT);
  assert_int_equal(a.occ[2].flag, F_CTX);
  assert_string_equal(a.occ[2].value, "b:=2");
  assert_string_equal(a.occ[3].value, "1");
  /* Bounded: more than CLI_MAX_OCC flags is an error, not an overflow. */
  char *argv[CLI_MAX_OCC + 3];
  argv[0] = "keel";
  for (int i = 1; i <= CLI_MAX_OCC + 1; i++)
    argv[i] = "--ctx=x=1";
  assert_int_equal(cli_parse_args(CLI_MAX_OCC + 2, argv, &a, err, 200), -1);
  assert_non_null(strstr(err, "too many flags"));
  assert_int_equal(parse(&a, err, "cluster", "up", "--nodes", NULL), -1);
  assert_string_equal(err, "flag --nodes needs a value");
}

static void test_numbers(void **st) {
  (void)st;
  int64_t v;
  uint64_t u;
  assert_int_equal(cli_parse_i64("42", &v), 0);
  assert_int_equal(v, 42);
  assert_int_equal(cli_parse_i64("4x", &v), -1);
  assert_int_equal(cli_parse_i64("", &v), -1);
  assert_int_equal(cli_parse_i64("99999999999999999999", &v), -1);
  assert_int_equal(cli_parse_id("694d7a1b2c3d4e5f", &u), 0);
  assert_true(u == 0x694d7a1b2c3d4e5full);
  assert_int_equal(cli_parse_id("0x10", &u), 0);
  assert_true(u == 16);
  assert_int_equal(cli_parse_id("-1", &u), -1);
  assert_int_equal(cli_parse_id("xyz", &u), -1);
  assert_int_equal(cli_parse_duration_ms("5s", &u), 0);
  assert_true(u == 5000);
  assert_int_equal(cli_parse_duration_ms("250ms", &u), 0);
  assert_true(u == 250);
  assert_int_equal(cli_parse_duration_ms("2m", &u), 0);
  assert_true(u == 120000);
  assert_int_equal(cli_parse_duration_ms("3", &u), 0);
  assert_true(u == 3000);
  assert_int_equal(cli_parse_duration_ms("5h", &u), -1);
  assert_int_equal(cli_parse_duration_ms("-1s", &u), -1);
  assert_int_equal(cli_parse_duration_ms("100000m", &u), -1);
}

static void test_display(void **st) {
  (void)st;
  char *s = cli_display((const uint8_t *)"héllo", 6, 0);
  assert_string_equal(s, "héllo");
  free(s);
  s = cli_display((const uint8_t *)"a\x01\xff\\z", 5, 0);
  assert_string_equal(s, "a\\x01\\xff\\\\z");
  free(s);
  s = cli_display((const uint8_t *)"ab", 2, 1);
  assert_string_equal(s, "\\x61\\x62");
  free(s);
  /* Overlong encoding and a lone surrogate are not UTF-8. */
  assert_false(cli_is_printable((const uint8_t *)"\xc0\xaf", 2));
  assert_false(cli_is_printable((const uint8_t *)"\xed\xa0\x80", 3));
  assert_false(cli_is_printable((const uint8_t *)"\xe2\x82", 2));
  assert_true(cli_is_printable((const uint8_t *)"\xe2\x82\xac\tx\n", 6));
  assert_false(cli_is_printable((const uint8_t *)"\x1b[31m", 5));
  s = cli_display((const uint8_t *)"", 0, 0);
  assert_string_equal(s, "");
  free(s);
}

static void test_base64(void **st) {
  (void)st;
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    char *b = cli_base64((const uint8_t *)in[i], strlen(in[i]));
    assert_string_equal(b, out[i]);
    free(b);
  }
}

static void hex(const uint8_t *h, char *o) {
  for (int i = 0; i < 32; i++)
    sprintf(o + 2 * i, "%02x", h[i]);
}

static void test_sha256(void **st) {
  (void)st;
  struct cli_sha256 s;
  uint8_t h[32];
  char x[65];
  cli_sha256_init(&s);
  cli_sha256_final(&s, h);
  hex(h, x);
  assert_string_equal(
      x, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  cli_sha256_init(&s);
  cli_sha256_update(&s, (const uint8_t *)"abc", 3);
  cli_sha256_final(&s, h);
  hex(h, x);
  assert_string_equal(
      x, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  /* Two blocks, fed in odd pieces. */
  const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  cli_sha256_init(&s);
  for (size_t i = 0; i < strlen(m); i += 7)
    cli_sha256_update(&s, (const uint8_t *)m + i,
                      strlen(m) - i < 7 ? strlen(m) - i : 7);
  cli_sha256_final(&s, h);
  hex(h, x);
  assert_string_equal(
      x, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  /* One million 'a'. */
  uint8_t a[1000];
  memset(a, 'a', sizeof(a));
  cli_sha256_init(&s);
  for (int i = 0; i < 1000; i++)
    cli_sha256_update(&s, a, sizeof(a));
  cli_sha256_final(&s, h);
  hex(h, x);
  assert_string_equal(
      x, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_config(void **st) {
  (void)st;
  char eps[4][256], err[200];
  int n = cli_config_endpoints("# keel\nother: 1\nendpoints:\n  - "
                               "127.0.0.1:2379\n  - \"10.0.0.2:2379\" # b\n"
                               "after: x\n",
                               eps, 4, err, sizeof(err));
  assert_int_equal(n, 2);
  assert_string_equal(eps[0], "127.0.0.1:2379");
  assert_string_equal(eps[1], "10.0.0.2:2379");
  n = cli_config_endpoints("endpoints: [a:1, 'b:2']\n", eps, 4, err,
                           sizeof(err));
  assert_int_equal(n, 2);
  assert_string_equal(eps[1], "b:2");
  n = cli_config_endpoints("endpoints: a:1,b:2\n", eps, 4, err, sizeof(err));
  assert_int_equal(n, 2);
  assert_int_equal(cli_config_endpoints("x: 1\n", eps, 4, err, sizeof(err)), 0);
  assert_int_equal(cli_config_endpoints("endpoints:\n- a\n- b\n- c\n- d\n- "
                                        "e\n",
                                        eps, 4, err, sizeof(err)),
                   -1);
  assert_string_equal(err, "more than 4 endpoints");
  assert_int_equal(
      cli_config_endpoints("endpoints: [a,,b]\n", eps, 4, err, sizeof(err)),
      -1);
  assert_int_equal(
      cli_config_endpoints("endpoints:\n  oops\n", eps, 4, err, sizeof(err)),
      -1);
  assert_non_null(strstr(err, "expected"));
}

static void test_tokenize(void **st) {
  (void)st;
  char buf[256], err[200];
  const char *tok[8];
  size_t tl[8];
  int n = cli_tokenize("put \"a key\" 'x\\y' \"v\\x00\\n\"", buf, sizeof(buf),
                       tok, tl, 8, err, sizeof(err));
  assert_int_equal(n, 4);
  assert_string_equal(tok[0], "put");
  assert_string_equal(tok[1], "a key");
  assert_string_equal(tok[2], "x\\y");
  assert_int_equal(tl[3], 3);
  assert_memory_equal(tok[3], "v\0\n", 3);
  assert_int_equal(cli_tokenize("put \"open", buf, sizeof(buf), tok, tl, 8, err,
                                sizeof(err)),
                   -1);
  assert_string_equal(err, "unterminated quote");
  assert_int_equal(
      cli_tokenize("a b c", buf, sizeof(buf), tok, tl, 2, err, sizeof(err)),
      -1);
  assert_int_equal(cli_tokenize("x \"\\xZZ\"", buf, sizeof(buf), tok, tl, 8,
                                err, sizeof(err)),
                   -1);
}

static void test_compare(void **st) {
  (void)st;
  struct cli_cmp c;
  char err[300];
  assert_int_equal(
      cli_parse_compare("mod(\"k 1\") > \"5\"", &c, err, sizeof(err)), 0);
  assert_string_equal(c.target, "mod");
  assert_string_equal(c.op, ">");
  assert_string_equal(c.key, "k 1");
  assert_string_equal(c.arg, "5");
  free(c.key);
  free(c.arg);
  assert_int_equal(
      cli_parse_compare("value(\"k\") != \"a\\\"b\"", &c, err, sizeof(err)), 0);
  assert_string_equal(c.op, "!=");
  assert_string_equal(c.arg, "a\"b");
  free(c.key);
  free(c.arg);
  assert_int_equal(
      cli_parse_compare("bogus(\"k\") = \"1\"", &c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "targets"));
  assert_int_equal(
      cli_parse_compare("mod(\"k\") ~ \"1\"", &c, err, sizeof(err)), -1);
  assert_int_equal(cli_parse_compare("mod(\"k\" = \"1\"", &c, err, sizeof(err)),
                   -1);
  assert_int_equal(
      cli_parse_compare("mod(\"k\") = \"1\" extra", &c, err, sizeof(err)), -1);
}

static char *render(void (*fn)(FILE *, const struct cli_node *),
                    struct cli_node *n) {
  char *buf;
  size_t len;
  FILE *f = open_memstream(&buf, &len);
  fn(f, n);
  fclose(f);
  return buf;
}

static void test_render(void **st) {
  (void)st;
  struct cli_node *o = cli_obj(NULL, NULL);
  struct cli_node *h = cli_obj(o, "header");
  cli_uint(h, "cluster_id", 18446744073709551615ull);
  cli_int(h, "revision", -3);
  struct cli_node *a = cli_arr(o, "kvs");
  struct cli_node *kv = cli_obj(a, NULL);
  cli_bytes(kv, "key", (const uint8_t *)"foo", 3);
  cli_bytes(kv, "value", (const uint8_t *)"\xff\x00", 2);
  cli_bool(o, "more", 1);
  cli_str(o, "s", "a\"b\n");
  cli_arr(o, "empty");
  char *j = render(cli_render_json, o);
  assert_string_equal(j, "{\"header\":{\"cluster_id\":18446744073709551615,"
                         "\"revision\":-3},\"kvs\":[{\"key\":\"Zm9v\","
                         "\"value\":\"/wA=\"}],\"more\":true,"
                         "\"s\":\"a\\\"b\\n\",\"empty\":[]}\n");
  free(j);
  char *y = render(cli_render_yaml, o);
  assert_string_equal(y, "header:\n  cluster_id: 18446744073709551615\n"
                         "  revision: -3\nkvs:\n  - key: foo\n"
                         "    value: !!binary /wA=\nmore: true\n"
                         "s: \"a\\\"b\\n\"\nempty: []\n");
  free(y);
  cli_node_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_args),    cmocka_unit_test(test_args_repeat),
      cmocka_unit_test(test_numbers), cmocka_unit_test(test_display),
      cmocka_unit_test(test_base64),  cmocka_unit_test(test_sha256),
      cmocka_unit_test(test_config),  cmocka_unit_test(test_tokenize),
      cmocka_unit_test(test_compare), cmocka_unit_test(test_render),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

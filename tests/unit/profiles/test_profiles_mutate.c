/* test_profiles_mutate.c — a seeded, bounded mutation run over the two
 * parsers: whatever bytes arrive, parsing returns 0 or a negative code with
 * a message (never a crash, leak or sanitizer report), and whatever parses
 * survives render -> parse unchanged. Deterministic: one fixed seed. */
#include <errno.h>

#include "helpers.h"

static const char *const yaml_seeds[] = {
    "server:\n  port: 8080\nservers: [a, b]\nitems:\n  - name: x\n"
    "    data: {k: v}\n",
    "a: &x {b: 1}\nc:\n  <<: *x\n  d: [1, 2.5, true, ~, 'q', \"e\\n\"]\n"
    "---\nspring.config.activate.on-profile: prod\na: 2\n",
    "m: |\n  text\n  more\nn: >\n  folded\n  line\nlist:\n- - 1\n  - 2\n"
    "- {x: y}\n",
};

static const char *const props_seeds[] = {
    "a=1\nb : 2\nc\\\n  ontinued\n# c\n! c\nu=\\u00e9\\uD83D\\uDE00\n",
    "servers[0]=x\nservers[1]=y\n#---\nspring.profiles=dev\nk=v\\t\\n\n",
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}

static size_t mutate(char *buf, size_t len, size_t cap) {
  static const char interesting[] = "{}[]:,-?&*!|>'\"#%@`\\\n\t =.$u";
  int edits = 1 + (int)(next() % 4);
  for (int e = 0; e < edits; e++) {
    size_t pos = len ? next() % len : 0;
    switch (next() % 5) {
    case 0: /* replace a byte */
      if (len)
        buf[pos] = (char)(next() & 0xff);
      break;
    case 1: /* insert a syntax byte */
      if (len + 1 < cap) {
        memmove(buf + pos + 1, buf + pos, len - pos);
        buf[pos] = interesting[next() % (sizeof interesting - 1)];
        len++;
      }
      break;
    case 2: /* delete a byte */
      if (len) {
        memmove(buf + pos, buf + pos + 1, len - pos - 1);
        len--;
      }
      break;
    case 3: /* duplicate a chunk */
    {
      size_t n = 1 + next() % 16;
      if (pos + n <= len && len + n < cap) {
        memmove(buf + pos + n, buf + pos, len - pos);
        len += n;
      }
      break;
    }
    default: /* truncate */
      len = pos;
    }
  }
  return len;
}

static void check_round_trip(const struct profiles_docs *d, int yaml) {
  for (size_t i = 0; i < d->count; i++) {
    const struct profiles_list *l = &d->docs[i].props;
    char *out;
    size_t ol;
    struct profiles_error err = {0};
    int rc = yaml ? profiles_render_yaml(l, &out, &ol, &err)
                  : profiles_render_properties(l, &out, &ol, &err);
    if (rc == -EILSEQ)
      continue;
    assert_int_equal(rc, 0);
    struct profiles_docs back;
    profiles_docs_init(&back);
    rc = yaml ? profiles_parse_yaml(out, ol, "rt", "default", NULL, &back, &err)
              : profiles_parse_properties(out, ol, "rt", "default", NULL, &back,
                                          &err);
    if (rc)
      fail_msg("re-parse failed: %s\n%s", err.msg, out);
    const struct profiles_doc *bd = profiles_docs_find(&back, "default");
    assert_non_null(bd);
    if (yaml) {
      if (!profiles_list_equal(l, &bd->props))
        fail_msg("round trip changed:\n%s", out);
    } else {
      assert_int_equal(l->count, bd->props.count);
    }
    profiles_docs_free(&back);
    free(out);
    /* The other renderers accept anything that parsed. */
    rc = profiles_render_json(l, 0, &out, NULL, &err);
    assert_true(rc == 0 || rc == -EILSEQ);
    if (!rc)
      free(out);
    rc = profiles_render_env(l, PROFILES_ENV_SKIP_INVALID, &out, NULL, &err);
    assert_true(rc == 0 || rc == -EINVAL);
    if (!rc)
      free(out);
    struct profiles_list copy;
    assert_int_equal(profiles_list_copy(&copy, l), 0);
    rc = profiles_resolve(&copy, NULL, 0, 0, NULL, &err);
    assert_true(rc == 0 || rc == KEEL_ENOTFOUND || rc == -ELOOP ||
                rc == KEEL_ELIMIT);
    profiles_list_free(&copy);
  }
}

static void run(const char *const *seeds, size_t nseeds, int yaml) {
  char buf[2048];
  int ok = 0, failed = 0;
  for (int iter = 0; iter < 20000; iter++) {
    const char *s = seeds[(size_t)iter % nseeds];
    size_t len = strlen(s);
    memcpy(buf, s, len);
    len = mutate(buf, len, sizeof buf);
    struct profiles_docs d;
    profiles_docs_init(&d);
    struct profiles_error err = {0};
    int rc = yaml
                 ? profiles_parse_yaml(buf, len, "m", "default", NULL, &d, &err)
                 : profiles_parse_properties(buf, len, "m", "default", NULL, &d,
                                             &err);
    if (rc == 0) {
      ok++;
      check_round_trip(&d, yaml);
    } else {
      failed++;
      assert_true(rc < 0);
      assert_true(err.msg[0] != 0);
      assert_int_equal(d.count, 0);
    }
    profiles_docs_free(&d);
  }
  /* Both outcomes must actually occur, or the run proves little. */
  assert_true(ok > 100);
  if (yaml)
    assert_true(failed > 100);
}

static void test_mutated_yaml(void **state) {
  (void)state;
  run(yaml_seeds, sizeof yaml_seeds / sizeof yaml_seeds[0], 1);
}

static void test_mutated_properties(void **state) {
  (void)state;
  run(props_seeds, sizeof props_seeds / sizeof props_seeds[0], 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mutated_yaml),
      cmocka_unit_test(test_mutated_properties),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* fuzz_flags.c — libFuzzer target: flag definition validation and
 * evaluation (flags/flags.h). Definitions arrive from any etcd client (the
 * server validates every write under /flags/) and from `keel flag import`;
 * contexts arrive from OFREP requests. Neither may crash a node.
 *
 * The input is a flagd flags file, optionally followed by a 0xff byte and
 * an evaluation context (JSON). Beyond "no crash", it checks:
 *
 *   - every refusal has a message;
 *   - a file flags_validate_file() accepts compiles (flags_set_from_file),
 *     holds the same flags, and each of its flags, written on its own to
 *     /flags/fuzz/<key> with the file's $evaluators, passes the server's
 *     check (flags_validate_write): import and etcdctl agree;
 *   - evaluation of every flag, for every requested type, with the context
 *     (or none), answers as flags.h says: a value exactly when a variant is
 *     named, an error code exactly when the reason is ERROR, and a missing
 *     flag gives FLAG_NOT_FOUND.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "flags.h"

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_flags: %s\n", what);                               \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static void check_result(const struct flags_result *r) {
  CHECK(r->reason >= FLAGS_REASON_STATIC && r->reason <= FLAGS_REASON_ERROR,
        "reason out of range");
  CHECK((r->value == NULL) == (r->variant == NULL),
        "a value without a variant, or a variant without a value");
  CHECK((r->reason == FLAGS_REASON_ERROR) ==
            (r->error_code != FLAGS_ERROR_NONE),
        "an error code without reason ERROR, or ERROR without a code");
  if (r->reason == FLAGS_REASON_ERROR || r->reason == FLAGS_REASON_DISABLED)
    CHECK(r->value == NULL, "a value with reason ERROR or DISABLED");
  CHECK(memchr(r->error_message, '\0', sizeof r->error_message) != NULL,
        "error message not terminated");
}

/* Each flag of an accepted file passes the per-key write check. */
static void check_keys_agree(const char *file, size_t len) {
  json_error_t jerr;
  json_t *root = json_loadb(file, len, 0, &jerr);
  CHECK(root, "a valid file jansson cannot load");
  json_t *flags = json_object_get(root, "flags");
  json_t *evals = json_object_get(root, "$evaluators");
  char *ev = evals ? json_dumps(evals, JSON_COMPACT) : NULL;
  const char *key;
  json_t *def;
  json_object_foreach(flags, key, def) {
    size_t klen = strlen(key);
    if (klen == 0 || klen > FLAGS_MAX_KEY_BYTES || strchr(key, '/'))
      continue; /* not a key `keel flag import` could store */
    char *d = json_dumps(def, JSON_COMPACT | JSON_ENCODE_ANY);
    CHECK(d, "out of memory");
    char path[FLAGS_MAX_KEY_BYTES + 16];
    int n = snprintf(path, sizeof path, "/flags/fuzz/%s", key);
    char err[512];
    int rc = flags_validate_write(path, (size_t)n, d, strlen(d), ev,
                                  ev ? strlen(ev) : 0, err, sizeof err);
    if (rc != 0) {
      fprintf(stderr, "fuzz_flags: %s refused alone: %s\n", path, err);
      abort();
    }
    free(d);
  }
  free(ev);
  json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *sep = memchr(data, 0xff, size);
  size_t flen = sep ? (size_t)(sep - data) : size;
  char *file = malloc(flen ? flen : 1);
  CHECK(file, "out of memory");
  memcpy(file, data, flen);

  char err[512] = "";
  int valid = flags_validate_file(file, flen, err, sizeof err) == 0;
  if (!valid)
    CHECK(err[0] != '\0', "a refused file without a message");

  struct flags_set *set = NULL;
  err[0] = '\0';
  int rc = flags_set_from_file(file, flen, &set, err, sizeof err);
  if (valid)
    CHECK(rc == 0, "a validated file does not compile");
  if (rc != 0) {
    CHECK(set == NULL, "a failed compile set *out");
    CHECK(err[0] != '\0', "a failed compile without a message");
  }
  if (valid)
    check_keys_agree(file, flen);

  if (set) {
    json_t *ctx = NULL;
    if (sep) {
      json_error_t jerr;
      ctx = json_loadb((const char *)sep + 1, size - flen - 1, 0, &jerr);
      if (ctx && !json_is_object(ctx)) {
        json_decref(ctx);
        ctx = NULL;
      }
    }
    struct flags_result r;
    for (size_t i = 0; i < flags_set_count(set); i++) {
      const char *key = flags_set_key(set, i);
      CHECK(key, "a flag without a key");
      for (int t = FLAGS_TYPE_ANY; t <= FLAGS_TYPE_OBJECT; t++) {
        CHECK(flags_evaluate(set, key, (enum flags_type)t, ctx, 1700000000,
                             &r) == 0,
              "flags_evaluate failed");
        check_result(&r);
      }
    }
    CHECK(flags_evaluate(set, "\x01no such flag", FLAGS_TYPE_ANY, ctx, 0, &r) ==
              0,
          "flags_evaluate failed on a missing flag");
    CHECK(r.reason == FLAGS_REASON_ERROR &&
              r.error_code == FLAGS_ERROR_FLAG_NOT_FOUND,
          "a missing flag is not FLAG_NOT_FOUND");
    json_decref(ctx);
    flags_set_unref(set);
  }
  free(file);
  return 0;
}

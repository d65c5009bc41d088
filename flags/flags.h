/* flags.h — feature flags in flagd's format: validation and evaluation.
 *
 * keel stores each flag of a flag set SET as one key, /flags/SET/FLAG-KEY,
 * whose value is the flag's definition in flagd's JSON schema, and the set's
 * shared rules ($evaluators) at /flags/SET/$evaluators. This library is pure
 * (no I/O, no clock, no global state): it checks definitions before they are
 * written, compiles a set once into an immutable structure, and evaluates
 * flags against an evaluation context with flagd's semantics. The reference
 * for every result is the npm package @openfeature/flagd-core 4.0.x; the
 * differences known to exist are listed in docs/flags.md.
 *
 * A flag definition:
 *
 *   {"state": "ENABLED",                   required: ENABLED | DISABLED
 *    "variants": {"on": true, "off": false},  required: 1..FLAGS_MAX_VARIANTS,
 *                                          all boolean, string, number or
 * object "defaultVariant": "off",              optional: a variant name, or
 * null "targeting": {"if": [...]},           optional: JsonLogic ({} = none)
 *    "metadata": {"team": "web"}}          optional: string/number/bool values
 *
 * Targeting may use {"$ref": "NAME"} to include the set's evaluator NAME.
 *
 * Threads: a struct flags_set is immutable once built; any number of threads
 * may call flags_evaluate() on it at once. flags_set_ref()/flags_set_unref()
 * are atomic, so a cache may swap in a new set while readers finish with the
 * old one.
 *
 * Errors: functions return 0 or a negative code (keel_error.h):
 * KEEL_EINVALIDFLAG for a definition that breaks a rule, KEEL_EPARSE for text
 * that is not JSON, KEEL_ELIMIT for a definition over a size limit, -ENOMEM.
 * Where a function takes err/errlen it writes a one-line message there that
 * names the JSON path and the rule, e.g. "variants.on: all variants must be
 * boolean"; err may be NULL.
 */
#ifndef KEEL_FLAGS_H
#define KEEL_FLAGS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Limits. A definition or evaluators document larger than FLAGS_MAX_DEF_BYTES
 * and a flags file larger than FLAGS_MAX_FILE_BYTES are refused. */
#define FLAGS_MAX_DEF_BYTES (256u * 1024)
#define FLAGS_MAX_FILE_BYTES (8u * 1024 * 1024)
#define FLAGS_MAX_VARIANTS 1024
#define FLAGS_MAX_FLAGS 10000
#define FLAGS_MAX_EVALUATORS 1024
#define FLAGS_MAX_KEY_BYTES 256
/* Targeting limits (nesting depth, operations) are in flags_logic.h:
 * 64 levels and 10000 operations after $ref expansion. */

/* ---- validation ---------------------------------------------------------- */

/* Checks one flag definition (json, len bytes) for flag key `key`. $refs in
 * its targeting are resolved against evaluators_json (the set's
 * $evaluators document) when it is not NULL; with NULL any $ref is an error.
 * The targeting is compiled, so a rule flagd-core could not compile (an
 * unknown operator, a division by the literal 0) is refused here. */
int flags_validate_flag(const char *key, const char *json, size_t len,
                        const char *evaluators_json, size_t evaluators_len,
                        char *err, size_t errlen);

/* Checks a write of `value` to the store key `key` (keylen bytes) under
 * /flags/: /flags/SET/$evaluators must hold valid evaluators, /flags/SET/KEY
 * a valid definition for flag KEY whose $refs resolve in evaluators_json
 * (the set's current $evaluators, or NULL). Any other key under /flags/ is
 * refused. Messages start with the key, e.g. "/flags/web/new-ui:
 * variants.on: all variants must be boolean". A key outside /flags/ returns
 * 0 (not a flag). Changing $evaluators can break stored flags' $refs: the
 * caller checks each flag of the set against the new document. */
int flags_validate_write(const char *key, size_t keylen, const char *value,
                         size_t len, const char *evaluators_json,
                         size_t evaluators_len, char *err, size_t errlen);

/* Checks an $evaluators document: an object of name -> JsonLogic. */
int flags_validate_evaluators(const char *json, size_t len, char *err,
                              size_t errlen);

/* Checks a whole flagd flags file: {"flags": {...}, "$evaluators": {...},
 * "metadata": {...}, "$schema": "..."}. Paths in messages start at the file
 * root ("flags.new-ui.variants.on: ..."). */
int flags_validate_file(const char *json, size_t len, char *err, size_t errlen);

/* ---- compiled sets ---------------------------------------------------------
 */

struct flags_set;
struct flags_builder;

/* Compiles a flagd flags file into *out (refcount 1). The structure of
 * every definition must be valid (as flags_validate_file() checks); a flag
 * whose targeting does not compile (or uses a broken evaluator) is kept and
 * answers ERROR/PARSE_ERROR, as flagd-core does. On error *out is unchanged
 * and nothing is allocated. */
int flags_set_from_file(const char *json, size_t len, struct flags_set **out,
                        char *err, size_t errlen);

/* Builds a set from keel's stored layout, one key at a time: create a
 * builder, give it the $evaluators document first (optional; -EINVAL once a
 * flag was added) and then each flag, then build. A flag whose structure is
 * invalid is refused by flags_builder_add() (and not added; the builder
 * stays usable); a flag whose targeting does not compile against the given
 * evaluators is added and answers PARSE_ERROR. The builder keeps what it
 * needs. flags_builder_build() fails for a key added twice; it may succeed
 * once, after which the builder can only be freed. */
struct flags_builder *flags_builder_new(void);
int flags_builder_set_evaluators(struct flags_builder *b, const char *json,
                                 size_t len, char *err, size_t errlen);
int flags_builder_add(struct flags_builder *b, const char *key,
                      const char *json, size_t len, char *err, size_t errlen);
int flags_builder_build(struct flags_builder *b, struct flags_set **out,
                        char *err, size_t errlen);
void flags_builder_free(struct flags_builder *b);

struct flags_set *flags_set_ref(struct flags_set *s);
void flags_set_unref(struct flags_set *s); /* frees at zero; NULL is ok */

size_t flags_set_count(const struct flags_set *s);
/* Key of the i-th flag (i < count), in the order given; borrowed. */
const char *flags_set_key(const struct flags_set *s, size_t i);

/* ---- evaluation ------------------------------------------------------------
 */

enum flags_reason {
  FLAGS_REASON_STATIC,          /* no targeting: the default variant */
  FLAGS_REASON_TARGETING_MATCH, /* targeting named a variant */
  FLAGS_REASON_DEFAULT,         /* targeting returned null: default variant */
  FLAGS_REASON_DISABLED,        /* state DISABLED: the caller's default */
  FLAGS_REASON_ERROR,           /* see error_code */
};

enum flags_error_code {
  FLAGS_ERROR_NONE,
  FLAGS_ERROR_FLAG_NOT_FOUND,
  FLAGS_ERROR_PARSE_ERROR,
  FLAGS_ERROR_TYPE_MISMATCH,
  FLAGS_ERROR_TARGETING_KEY_MISSING, /* defined by OpenFeature; flagd-core
                                        never reports it (fractional without
                                        a targetingKey falls back to the
                                        default variant), so neither do we */
  FLAGS_ERROR_GENERAL,
};

/* The type the caller asked for (OpenFeature's resolveXxxEvaluation). A
 * variant of another type gives TYPE_MISMATCH. FLAGS_TYPE_ANY skips the check
 * (OFREP). Object matches JSON objects. */
enum flags_type {
  FLAGS_TYPE_ANY,
  FLAGS_TYPE_BOOLEAN,
  FLAGS_TYPE_STRING,
  FLAGS_TYPE_NUMBER,
  FLAGS_TYPE_OBJECT,
};

struct flags_result {
  /* The variant's value, borrowed from the set (valid while the caller holds
   * its reference), or NULL: then the caller's default value applies
   * (DISABLED, ERROR, or DEFAULT with no default variant). */
  const json_t *value;
  const char *variant; /* borrowed, NULL when value is NULL */
  enum flags_reason reason;
  enum flags_error_code error_code;
  const json_t *metadata; /* the flag's metadata object (borrowed), or NULL */
  char error_message[160];
};

/* Evaluates flag `key` of set s for ctx (a JSON object or NULL) at
 * `timestamp` (Unix seconds, exposed to rules as $flagd.timestamp; the
 * library has no clock). Always fills *res and returns 0; -EINVAL if s, key
 * or res is NULL. The context is only read. Rules also see
 * $flagd.flagKey; targetingKey is read from ctx. */
int flags_evaluate(const struct flags_set *s, const char *key,
                   enum flags_type type, const json_t *ctx, int64_t timestamp,
                   struct flags_result *res);

const char *flags_reason_name(enum flags_reason r);         /* "STATIC" ... */
const char *flags_error_code_name(enum flags_error_code c); /* "GENERAL" ... */

#endif

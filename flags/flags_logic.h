/* flags_logic.h — compiled JsonLogic (the subset flagd accepts) and its
 * evaluator; internal to flags/. flags.c turns flag definitions into these.
 *
 * A compiled expression is immutable: evaluation reads it and the caller's
 * context, writes only into a per-call arena, and so may run on any number of
 * threads at once.
 */
#ifndef KEEL_FLAGS_LOGIC_H
#define KEEL_FLAGS_LOGIC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct flags_logic;

/* Limits on one targeting expression (after $ref expansion). */
#define FLAGS_LOGIC_MAX_DEPTH 64
#define FLAGS_LOGIC_MAX_NODES 10000
#define FLAGS_LOGIC_MAX_REF_DEPTH 8
/* Memory one evaluation may use for intermediate values. */
#define FLAGS_EVAL_ARENA_LIMIT (1u << 20)
/* Operations one evaluation may perform (iterating over context arrays
 * repeats the body): past it the evaluation fails (GENERAL). */
#define FLAGS_EVAL_MAX_STEPS 1000000

/* Compiles expr. $ref objects are resolved in evaluators (a JSON object of
 * name -> expression, may be NULL). path names expr in error messages
 * ("targeting"). On failure returns KEEL_EINVALIDFLAG and writes
 * "<path>: <rule>" into err. Constant sub-expressions are evaluated here, as
 * flagd-core does when it compiles a rule, so an expression that cannot be
 * evaluated at all (a division by the literal 0) fails here too. */
int flags_logic_compile(const json_t *expr, const json_t *evaluators,
                        const char *path, struct flags_logic **out, char *err,
                        size_t errlen);

void flags_logic_free(struct flags_logic *l);

/* What an evaluation sees besides the compiled rule. */
struct flags_logic_env {
  const json_t *ctx; /* the evaluation context (an object) or NULL */
  const char *flag_key;
  size_t flag_key_len;
  int64_t timestamp; /* $flagd.timestamp, seconds */
};

/* Evaluates l. On success returns 0 and sets *is_null when the rule returned
 * null, else writes the result as JavaScript's String(result) into buf
 * (NUL-terminated) with its length in *len; a result longer than bufsz-1 sets
 * *len to bufsz (it then names no variant). On an evaluation error (what
 * flagd-core reports as GENERAL) returns -1 and points *msg at a static
 * description. */
int flags_logic_eval(const struct flags_logic *l,
                     const struct flags_logic_env *env, char *buf, size_t bufsz,
                     size_t *len, int *is_null, const char **msg);

#endif

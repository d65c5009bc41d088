/* cli_util.h — the pure pieces of the keel command-line tool: argument
 * parsing, safe display of byte strings, base64, SHA-256, the config file's
 * endpoint list, the txn line language, and a small output tree rendered as
 * JSON or YAML. No I/O and no network here, so tests/unit/cli/ tests all of
 * it directly.
 *
 * Every function that fills a caller buffer or returns a malloc'd string is
 * bounded by its arguments; every parser returns 0 or -1 with a message in
 * err (errlen bytes) naming what was wrong. */
#ifndef KEEL_CLI_UTIL_H
#define KEEL_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- */
/* Arguments                                                         */
/* ---------------------------------------------------------------- */

#define CLI_MAX_POS 32

/* Flag ids; cli_flag_names[] holds their long names. */
enum cli_flag {
  F_ENDPOINTS,
  F_DIAL_TIMEOUT,
  F_COMMAND_TIMEOUT,
  F_WRITE_OUT,
  F_HEX,
  F_DEBUG,
  F_HELP,
  F_PREFIX,
  F_FROM_KEY,
  F_REV,
  F_LIMIT,
  F_KEYS_ONLY,
  F_COUNT_ONLY,
  F_SORT_BY,
  F_ORDER,
  F_LEASE,
  F_PREV_KV,
  F_IGNORE_VALUE,
  F_IGNORE_LEASE,
  F_INTERACTIVE,
  F_ONCE,
  F_KEYS,
  F_LEARNER,
  F_PEER_URLS,
  F_CLUSTER,
  F_PHYSICAL,
  F_TO_REV,
  F_MAX,
  /* keel flag / keel cluster (cmd_flag.c, cmd_cluster.c) */
  F_DRY_RUN,
  F_CONTEXT,
  F_CTX,
  F_TYPE,
  F_NODES,
  F_DIR,
  F_COUNT
};
extern const char *const cli_flag_names[F_COUNT];

#define CLI_MAX_OCC 64
struct cli_args {
  const char *pos[CLI_MAX_POS]; /* positionals (command words first) */
  int npos;
  const char *flag[F_COUNT]; /* value, "1" for a boolean, NULL if absent;
                              * a flag given twice: the last value */
  /* Every flag occurrence in order, for flags that may repeat
   * (keel flag eval --ctx a=1 --ctx b=2). */
  struct {
    int flag;
    const char *value;
  } occ[CLI_MAX_OCC];
  int nocc;
};

/* Parses argv[1..argc) (flags anywhere; "--" ends flags; --name=value,
 * --name value, -w value, -wvalue; -h, -i). Returns 0 or -1 with err
 * ("unknown flag --x", "flag --rev needs a value", "too many arguments",
 * "too many flags" past CLI_MAX_OCC).
 * Pointers in out point into argv. */
int cli_parse_args(int argc, char **argv, struct cli_args *out, char *err,
                   size_t errlen);

/* Parses a whole decimal int64 ("12", "-3"); -1 on anything else. */
int cli_parse_i64(const char *s, int64_t *out);
/* Parses a lease/member id: hex (etcdctl prints them in hex: "694d7a..")
 * or decimal with a "0x"-less hex fallback; -1 when neither. */
int cli_parse_id(const char *s, uint64_t *out);
/* Parses a duration "500ms", "5s", "2m", or a bare number of seconds, into
 * milliseconds; -1 on garbage or a value over a day. */
int cli_parse_duration_ms(const char *s, uint64_t *out);

/* ---------------------------------------------------------------- */
/* Byte strings                                                      */
/* ---------------------------------------------------------------- */

/* 1 when b is valid UTF-8 with no control characters other than \t \n. */
int cli_is_printable(const uint8_t *b, size_t n);
/* A malloc'd NUL-terminated display form of b: as is when printable; else
 * every non-printable byte as \xNN (and '\\' as "\\\\"); hex = 1: every
 * byte as \xNN (etcdctl --hex). NULL only on out-of-memory. */
char *cli_display(const uint8_t *b, size_t n, int hex);
/* A malloc'd standard base64 (with padding) of b. */
char *cli_base64(const uint8_t *b, size_t n);

/* SHA-256, incremental: thin wrappers over OpenSSL's libcrypto (the one
 * implementation keel uses; store/ and server/ hash with it too). final()
 * releases what init() took; an allocation failure aborts. */
struct cli_sha256 {
  void *ctx; /* EVP_MD_CTX */
};
void cli_sha256_init(struct cli_sha256 *s);
void cli_sha256_update(struct cli_sha256 *s, const uint8_t *d, size_t n);
void cli_sha256_final(struct cli_sha256 *s, uint8_t out[32]);

/* ---------------------------------------------------------------- */
/* Config file                                                       */
/* ---------------------------------------------------------------- */

/* Finds the `endpoints:` key in a small YAML document (text, NUL-ended)
 * and copies its items, as a block list ("- a" lines, indented or not) or
 * a flow list ("[a, b]") or a single comma-separated scalar, into out
 * (max items, each at most 255 bytes, quotes removed). Comments (#) and
 * other keys are skipped. Returns the count (0: no endpoints key) or -1
 * with err (too many, item too long, empty item). */
int cli_config_endpoints(const char *text, char out[][256], int max, char *err,
                         size_t errlen);

/* Splits "a,b, c" into out (max items, each < 256); count or -1. */
int cli_split_endpoints(const char *s, char out[][256], int max, char *err,
                        size_t errlen);

/* ---------------------------------------------------------------- */
/* txn language (etcdctl txn's stdin form)                            */
/* ---------------------------------------------------------------- */

#define CLI_MAX_TOKENS 32
/* Splits a line into words: spaces separate; "double quoted" words may
 * hold spaces and \" \\ \n \t \xNN escapes; 'single quoted' are literal.
 * Tokens are written into buf (buflen) back to back. Count or -1. */
int cli_tokenize(const char *line, char *buf, size_t buflen, const char *tok[],
                 size_t tok_len[], int max, char *err, size_t errlen);

/* One parsed compare: target is "mod", "create", "version", "value",
 * "lease"; op one of = != > <; key and operand are malloc'd. */
struct cli_cmp {
  char target[8];
  char op[3];
  char *key;
  size_t key_len;
  char *arg;
  size_t arg_len;
};
/* Parses `mod("k") > "5"`, `value("k") = "v"`. 0 or -1 with err. Free
 * key and arg with free(). */
int cli_parse_compare(const char *line, struct cli_cmp *out, char *err,
                      size_t errlen);

/* ---------------------------------------------------------------- */
/* Output tree: what -w json / -w yaml print                         */
/* ---------------------------------------------------------------- */

enum cli_node_type { N_OBJ, N_ARR, N_INT, N_UINT, N_STR, N_BYTES, N_BOOL };
struct cli_node {
  enum cli_node_type type;
  char *name; /* member name inside an object */
  int64_t i;
  uint64_t u;
  char *s; /* N_STR: NUL-ended; N_BYTES: n bytes */
  size_t n;
  struct cli_node *child, *last, *next;
};
struct cli_node *cli_obj(struct cli_node *parent, const char *name);
struct cli_node *cli_arr(struct cli_node *parent, const char *name);
void cli_int(struct cli_node *parent, const char *name, int64_t v);
void cli_uint(struct cli_node *parent, const char *name, uint64_t v);
void cli_bool(struct cli_node *parent, const char *name, int v);
void cli_str(struct cli_node *parent, const char *name, const char *s);
void cli_bytes(struct cli_node *parent, const char *name, const uint8_t *b,
               size_t n);
void cli_node_free(struct cli_node *n);
/* JSON on one line (bytes as base64, like etcdctl -w json), then '\n'. */
void cli_render_json(FILE *f, const struct cli_node *n);
/* YAML block style (bytes as the display string when printable, else
 * !!binary base64); ends with '\n'. */
void cli_render_yaml(FILE *f, const struct cli_node *n);

#endif

/* edn.h — a small, strict, bounded reader for the EDN that Jepsen writes.
 *
 * Jepsen histories are one EDN map per line. This reader parses one such
 * document (normally one line) into a tree of jepsen_edn values that live in
 * a caller-owned arena. It knows exactly what histories need:
 *
 *   nil  true  false  42  -7  42N  "str\n"  :keyword  symbol
 *   [vector]  (list)  #{set}  {map}   whitespace: space tab \r \n comma
 *   ; comment to end of line
 *
 * and refuses everything else with an error naming the column: floats,
 * ratios, characters (\a), tagged literals (#inst ...), discard (#_).
 *
 * Bounds (nothing grows without a limit):
 *   - the input length is the caller's (the history reader caps line length);
 *   - every value takes at least one input byte, so an arena of `len + 1`
 *     nodes and `len` string bytes always suffices: jepsen_edn_arena_init()
 *     sizes it from the input length and parsing never allocates;
 *   - nesting deeper than JEPSEN_EDN_MAX_DEPTH is an error;
 *   - integers outside int64 are an error.
 *
 * Ownership: values point into the arena (strings are decoded copies, not
 * pointers into the input); they stay valid until the arena is reset or
 * freed. An arena is not thread-safe; use one per thread.
 */
#ifndef JEPSEN_EDN_H
#define JEPSEN_EDN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JEPSEN_EDN_MAX_DEPTH 32

enum jepsen_edn_type {
  JEPSEN_EDN_NIL,
  JEPSEN_EDN_BOOL,
  JEPSEN_EDN_INT,
  JEPSEN_EDN_STRING,
  JEPSEN_EDN_KEYWORD, /* text excludes the leading ':' */
  JEPSEN_EDN_SYMBOL,
  JEPSEN_EDN_VECTOR,
  JEPSEN_EDN_LIST,
  JEPSEN_EDN_SET,
  JEPSEN_EDN_MAP, /* items alternate key, value; count is 2 * pairs */
};

struct jepsen_edn {
  enum jepsen_edn_type type;
  uint32_t count; /* collections: number of items; strings: byte length */
  union {
    bool b;
    int64_t i;
    const char *s; /* STRING, KEYWORD, SYMBOL: NUL-terminated, count bytes */
    const struct jepsen_edn *items; /* collections */
  } u;
};

struct jepsen_edn_arena {
  struct jepsen_edn *nodes;   /* final home of every value */
  struct jepsen_edn *scratch; /* items of collections still open */
  char *text;                 /* decoded strings */
  size_t cap_nodes, used_nodes, used_scratch, cap_text, used_text;
};

struct jepsen_edn_error {
  size_t column; /* 1-based byte column of the offending input */
  char msg[160];
};

/* Prepares an arena able to parse any input of up to max_len bytes.
 * Returns 0 or -ENOMEM. */
int jepsen_edn_arena_init(struct jepsen_edn_arena *a, size_t max_len);
void jepsen_edn_arena_free(struct jepsen_edn_arena *a);

/* Parses exactly one EDN value from text[0..len) (surrounding whitespace and
 * comments allowed, anything else after the value is an error). len must not
 * exceed the arena's max_len. The arena is reset first, so values from a
 * previous parse become invalid.
 * Returns 0 and sets *out, or KEEL_EPARSE with err filled in, or
 * KEEL_ELIMIT (too deep, too long) with err filled in. */
int jepsen_edn_parse(struct jepsen_edn_arena *a, const char *text, size_t len,
                     const struct jepsen_edn **out,
                     struct jepsen_edn_error *err);

/* Looks up a keyword key in a map: returns its value or NULL when the map has
 * no such key. `name` is given without the colon. */
const struct jepsen_edn *jepsen_edn_get(const struct jepsen_edn *map,
                                        const char *name);

/* True when v is the keyword `name` (without the colon). */
bool jepsen_edn_is_keyword(const struct jepsen_edn *v, const char *name);

/* Writes v as EDN into buf (always NUL-terminated when cap > 0). Returns the
 * length the full text needs (like snprintf); output is cut when it exceeds
 * cap - 1. */
size_t jepsen_edn_print(const struct jepsen_edn *v, char *buf, size_t cap);

#endif

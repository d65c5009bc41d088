/* kvstate.h — the kv model's states (strings built by put and append) as
 * small integer ids, for one search. Internal to check.c.
 *
 * A search of an append-heavy key visits millions of states whose strings
 * are long and share prefixes, so a state is a node: (parent state, appended
 * text), with the length and a polynomial hash of the whole string kept in
 * the node. Ids are canonical — two ids are equal exactly when their
 * strings are — because a new node is first looked up by (hash, length) and
 * a hit is confirmed by comparing the two strings byte for byte; a hash
 * collision therefore costs time, never a wrong answer. Repeating an append
 * already made from the same state is one table lookup.
 *
 * Bound: at most `budget` bytes of nodes and tables (KEEL_ELIMIT past it).
 * Texts are not copied: they point into the history's value table, which
 * outlives the search and is read-only while searches run.
 */
#ifndef JEPSEN_KVSTATE_H
#define JEPSEN_KVSTATE_H

#include <stddef.h>
#include <stdint.h>

/* The state of the empty string (a missing key). */
#define JEPSEN_KV_EMPTY 0

struct jepsen_kv_node {
  const char *text; /* the appended part */
  uint64_t hash;    /* of the whole string */
  uint32_t parent, tlen, len;
};

struct jepsen_kv_states {
  struct jepsen_kv_node *nodes;
  uint32_t count, cap;
  uint64_t *pair_keys; /* (parent << 32 | piece) + 1, 0 = empty */
  uint32_t *pair_vals;
  size_t pair_slots, pair_count;
  uint32_t *canon; /* node id + 1 by (hash, len), 0 = empty */
  size_t canon_slots;
  size_t budget;
  char *buf_a, *buf_b; /* for comparing strings */
  size_t buf_cap;
};

/* A text to append, with its hash and B^len precomputed once. */
struct jepsen_kv_piece {
  const char *text;
  uint32_t len;
  uint64_t hash, pow;
};

void jepsen_kv_init(struct jepsen_kv_states *k, size_t budget);
void jepsen_kv_free(struct jepsen_kv_states *k);
void jepsen_kv_piece(struct jepsen_kv_piece *p, const char *text, uint32_t len);

/* Sets *out to the state of string(parent) ++ piece. piece_id names the
 * piece for the repeat-lookup table (UINT32_MAX: do not remember). Returns
 * 0, KEEL_ELIMIT or -ENOMEM. */
int jepsen_kv_append(struct jepsen_kv_states *k, uint32_t parent,
                     const struct jepsen_kv_piece *piece, uint32_t piece_id,
                     uint32_t *out);

#endif

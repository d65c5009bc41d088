/* check.h — the history checkers: linearizability (register, kv) and the
 * set checker.
 *
 * Linearizability is decided by the WGL search (Wing & Gong, with Lowe's
 * cache of visited (linearized-set, model-state) pairs), one independent
 * search per key (P-compositionality: a history is linearizable iff every
 * key's sub-history is), keys spread over a pool of threads. Ops with an
 * unknown outcome (:info, never completed) return at infinity: they may be
 * linearized anywhere after their invoke, or never.
 *
 * Verdicts are never optimistic: VALID only when every key's search finished
 * and found a linearization. A search stopped by the time limit, the memory
 * bound or a stop request makes the key, and so the history, UNKNOWN (an
 * INVALID key elsewhere still makes the history INVALID, which is certain).
 *
 * On INVALID the checker reduces the failing key's ops to a witness: the
 * shortest prefix of the key's history (cut at a completion) that cannot be
 * linearized, from which it then drops every read whose removal keeps it
 * non-linearizable. Both steps keep the witness sound: any sub-history made
 * this way that cannot be linearized proves that the whole history cannot
 * (a prefix of a linearizable history is linearizable once the ops still
 * running at the cut are treated as :info; reads do not change the state).
 * The reduction runs in the time left, and stops early (keeping the smaller
 * witness found so far) when that runs out.
 *
 * The set checker (Jepsen's): the last :ok read of each key must contain
 * every add acknowledged before that read began, and no read may contain an
 * element nobody tried to add (or whose add :fail-ed) before the read ended;
 * adds with an unknown outcome may be present or absent. A key never read is
 * UNKNOWN.
 */
#ifndef JEPSEN_CHECK_H
#define JEPSEN_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "history.h"

enum jepsen_verdict {
  JEPSEN_VALID = 0,
  JEPSEN_INVALID = 1,
  JEPSEN_UNKNOWN = 2,
};

struct jepsen_check_opts {
  double time_limit; /* seconds for the whole check; <= 0: none */
  int threads;       /* worker threads; <= 0: number of CPUs */
  size_t max_memory; /* bytes of search cache over all threads */
  bool witness;      /* reduce a failing key to a witness */
};

/* Defaults: no time limit, one thread per CPU, 2 GiB, witness on. */
void jepsen_check_opts_default(struct jepsen_check_opts *o);

struct jepsen_check_result {
  enum jepsen_verdict verdict;
  size_t keys, keys_valid, keys_invalid, keys_unknown;
  double seconds;         /* to the verdict */
  double witness_seconds; /* spent reducing the witness afterwards */
  uint64_t states;        /* search states cached, over all keys */
  /* The first invalid key (the one with the smallest id) when INVALID: */
  uint32_t bad_key;
  char reason[512]; /* why INVALID or UNKNOWN, one line */
  /* Witness: indices into history.ops, in call order. */
  uint32_t *witness;
  size_t n_witness;
  size_t witness_from; /* ops of the key the witness was reduced from */
  /* The witness's cut: ops of the witness still running at this position
   * count as :info. JEPSEN_RET_INFINITY: no cut. */
  uint64_t witness_cut;
  bool witness_complete; /* the reduction ran to the end */
  /* Ops the witness marks as the point where the search got stuck: the
   * completion that no order of the ops before it can explain. */
  uint32_t stuck_op;
  bool has_stuck_op;
};

/* Checks h. Returns 0 and fills *r (free with jepsen_check_result_free), or
 * -ENOMEM / -EAGAIN (threads) with *r undefined. */
int jepsen_check(const struct jepsen_history *h,
                 const struct jepsen_check_opts *o,
                 struct jepsen_check_result *r);

void jepsen_check_result_free(struct jepsen_check_result *r);

/* Prints the verdict line and, when INVALID, the witness:
 *   INVALID: 1 of 3 keys not linearizable (key 2) ...
 * Output is bounded: at most 60 witness ops are listed. */
void jepsen_check_report(const struct jepsen_history *h,
                         const struct jepsen_check_result *r, FILE *out);

const char *jepsen_verdict_name(enum jepsen_verdict v);

#endif

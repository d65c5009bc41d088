/* history.h — loading a Jepsen history (EDN, one op map per line) into the
 * operations the checkers search.
 *
 * A line is one event: {:type :invoke|:ok|:fail|:info, :process N, :f F,
 * :value V, ...} (other keys such as :index and :time are allowed and
 * ignored; order in the file is real-time order). The loader pairs each
 * invoke with the next completion of the same process:
 *
 *   :ok    the op happened between its invoke and its completion;
 *   :fail  the op did not happen: it is dropped;
 *   :info  the op may have happened at any time after its invoke: its return
 *          is at infinity and a read's result is unknown;
 *   none   an invoke never completed (end of history) counts as :info.
 *
 * Values per model (independent keys use Jepsen's tuple form [key value] on
 * every op of the history, or a :key field in the map):
 *
 *   register  :read  nil -> v          (v: nil, integer, string, keyword,
 *             :write v                     boolean; initial value nil)
 *             :cas [from to]
 *   set       :add e                   (e: a scalar element)
 *             :read nil -> [e ...]     (a vector, list or #{set})
 *   kv        :get nil -> "s"|nil      (:key K on every op; a missing key
 *             :put "s"                  reads as ""; nil reads as "")
 *             :append "s"
 *
 * Ops whose :process is not an integer (Jepsen's :nemesis) are skipped.
 *
 * Errors: the input is refused, never guessed at. Every error names
 * FILE:LINE[:COLUMN] and what was wrong (bad EDN, missing :type, a completion
 * with no invoke, a process invoking twice, a value of the wrong shape ...).
 *
 * Bounds: lines longer than max_line bytes, more than max_ops operations or
 * more than max_value_bytes of distinct values are refused (KEEL_ELIMIT).
 */
#ifndef JEPSEN_HISTORY_H
#define JEPSEN_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "strtab.h"

enum jepsen_model {
  JEPSEN_MODEL_REGISTER,
  JEPSEN_MODEL_SET,
  JEPSEN_MODEL_KV,
};

enum jepsen_f {
  JEPSEN_F_READ,   /* register, set */
  JEPSEN_F_WRITE,  /* register */
  JEPSEN_F_CAS,    /* register */
  JEPSEN_F_ADD,    /* set */
  JEPSEN_F_GET,    /* kv */
  JEPSEN_F_PUT,    /* kv */
  JEPSEN_F_APPEND, /* kv */
};

/* Return position of an op whose outcome is unknown. */
#define JEPSEN_RET_INFINITY UINT64_MAX
/* Value id of nil (register, set) and of "" (kv). */
#define JEPSEN_VALUE_NIL 0

struct jepsen_op {
  uint64_t call, ret; /* event positions (line numbers); ret may be infinity */
  int64_t process;
  uint32_t key;       /* id in jepsen_history.keys */
  uint32_t a, b;      /* write value / cas from, to / kv value / element */
  uint32_t out;       /* read result, when out_known */
  uint32_t elems_off; /* set reads: elements at history.elems[off..off+n) */
  uint32_t elems_n;
  uint32_t invoke_line, complete_line; /* complete_line 0: never completed */
  uint8_t f;                           /* enum jepsen_f */
  bool info;                           /* outcome unknown: ret is infinity */
  bool out_known;                      /* a read whose result is known (:ok) */
};

struct jepsen_history {
  enum jepsen_model model;
  struct jepsen_op *ops; /* in completion order */
  size_t n_ops, cap_ops;
  /* Register and set: values as EDN text (id 0 = "nil"); kv: the raw string
   * (id 0 = ""). */
  struct jepsen_strtab values;
  struct jepsen_strtab keys; /* EDN text of each key; "nil" when unkeyed */
  uint32_t *elems;
  size_t n_elems, cap_elems;
  /* Counts, for the report. */
  size_t n_events, n_failed, n_info, n_never_completed, n_skipped;
};

struct jepsen_limits {
  size_t max_line;        /* bytes per line */
  size_t max_ops;         /* operations in the history */
  size_t max_value_bytes; /* distinct value and key text */
};

/* The defaults: 1 MiB lines, 16 Mi ops, 1 GiB of values. */
void jepsen_limits_default(struct jepsen_limits *l);

/* Reads the history in `in` (name is used in messages). On success returns
 * 0 and fills *h (free it with jepsen_history_free). On failure returns a
 * negative code, writes "NAME:LINE:COL: what" into err, and leaves *h empty.
 * Codes: KEEL_EPARSE (bad input), KEEL_ELIMIT (a bound), -ENOMEM, -EIO. */
int jepsen_history_read(FILE *in, const char *name, enum jepsen_model model,
                        const struct jepsen_limits *limits,
                        struct jepsen_history *h, char *err, size_t errlen);

/* Same for an in-memory text (the tests). */
int jepsen_history_parse(const char *text, size_t len, enum jepsen_model model,
                         struct jepsen_history *h, char *err, size_t errlen);

void jepsen_history_free(struct jepsen_history *h);

/* Parses "register", "set", "kv". Returns 0 or -EINVAL. */
int jepsen_model_parse(const char *name, enum jepsen_model *out);
const char *jepsen_f_name(enum jepsen_f f);

/* Writes op as one readable EDN-like line (no newline):
 *   {:process 3, :type :ok, :f :cas, :value [1 2]} lines 12-15
 * into buf; returns buf. */
const char *jepsen_op_describe(const struct jepsen_history *h,
                               const struct jepsen_op *op, char *buf,
                               size_t cap);

#endif

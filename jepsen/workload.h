/* workload.h — the seam between the harness and a workload: how clients are
 * opened on a node, how ops are generated, and how one op is invoked and
 * classified. The runner owns threads, processes (Jepsen's process ids),
 * timing and the history; a workload only knows its ops.
 *
 * Rules a workload must keep (they make the history honest):
 *   - invoke returns JEPSEN_OUT_OK only when the op certainly took effect
 *     (and, for reads, with the value read); JEPSEN_OUT_FAIL only when it
 *     certainly did not; anything else — timeouts, lost connections,
 *     unknown errors on a write — is JEPSEN_OUT_INFO. After an INFO the
 *     runner retires the process id and reopens the client under a new one,
 *     as Jepsen does.
 *   - invoke returns within timeout seconds (plus a small slack); the
 *     runner records the op as :info if it does not.
 *   - values are written as EDN text: the invoke's :value from generate,
 *     the completion's :value from invoke.
 *
 * Today's only implementation is INTERIM: the register workload drives
 * etcd through `etcdctl` subprocesses (one process per op: slow, tens of
 * ops per second on this machine, but real). libkeel's workloads
 * (register, set, watch) replace it behind this same interface.
 */
#ifndef JEPSEN_WORKLOAD_H
#define JEPSEN_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "history.h"
#include "nemesis.h"

enum jepsen_outcome {
  JEPSEN_OUT_OK,
  JEPSEN_OUT_FAIL,
  JEPSEN_OUT_INFO,
};

#define JEPSEN_VALUE_MAX 512

/* init flags. UNSAFE_READS (tests of the harness only): reads are served
 * from the contacted node's local state without a quorum (etcd:
 * --consistency=s), which is not linearizable; a run with it under
 * partitions must be found INVALID, proving the pipeline sees anomalies. */
#define JEPSEN_WL_UNSAFE_READS 1u

struct jepsen_wop {
  uint8_t f;                    /* enum jepsen_f */
  int64_t key;                  /* independent key */
  int64_t a, b;                 /* write value; cas from, to; add element */
  char value[JEPSEN_VALUE_MAX]; /* the invoke's :value, EDN */
};

struct jepsen_workload {
  const char *name;
  enum jepsen_model model; /* which checker reads the history */
  /* Per-run state; the runner calls init before any client exists and
   * fini after every client is closed. */
  int (*init)(struct jepsen_workload *w, const struct jepsen_cluster *c,
              int concurrency, unsigned flags);
  void (*fini)(struct jepsen_workload *w);
  /* A client for process `process` talking to node `node`. May be called
   * from any client thread; the thread has joined the clients' network
   * namespace already. Returns 0 or a negative code. */
  int (*open)(struct jepsen_workload *w, int64_t process, int node,
              void **client);
  void (*close)(struct jepsen_workload *w, void *client);
  /* The next op for process; thread-safe (rng is the caller's). */
  void (*generate)(struct jepsen_workload *w, struct jepsen_rng *rng,
                   int64_t process, struct jepsen_wop *op);
  /* Runs op; writes the completion's :value into out (EDN) and a short
   * error text into err for :fail / :info. */
  enum jepsen_outcome (*invoke)(struct jepsen_workload *w, void *client,
                                const struct jepsen_wop *op, double timeout,
                                char *out, size_t cap, char *err,
                                size_t errlen);
  void *state;
};

/* Writes s as an EDN string literal ("..." with \" and \\ escaped,
 * newlines as spaces) into buf, truncated to fit cap (>= 3). */
void jepsen_edn_string(const char *s, char *buf, size_t cap);

/* The workload named name for target (or NULL): today "register" on
 * "etcd" (interim, etcdctl). */
const struct jepsen_workload *jepsen_workload_find(const char *name,
                                                   const char *target);

#endif

/* workload_etcdctl.c — INTERIM register workload: drives etcd with one
 * `etcdctl` subprocess per op, until libkeel's clients exist (issue 9).
 *
 * Ops over independent keys "jepsen/r<key>", Jepsen's register mix: half
 * reads, a quarter writes, a quarter cas, values 0..4. Keys rotate every
 * OPS_PER_KEY generated ops so each key's history stays small for the
 * linearizability search.
 *
 * Classification (see workload.h):
 *   read   exit 0 -> :ok with the value (empty output: nil); anything else
 *          -> :fail (a read changes nothing, so failing it is always safe);
 *   write  exit 0 -> :ok; anything else (timeout, dial error, no leader)
 *          -> :info: etcdctl cannot tell "not sent" from "sent, no answer";
 *   cas    a txn "value(k) = from ? put k to" run with etcdctl txn:
 *          SUCCESS -> :ok; FAILURE -> :fail (the compare certainly missed);
 *          anything else -> :info.
 * etcdctl's default reads are linearizable (--consistency=l), so the
 * register model applies.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "keel_error.h"
#include "proc.h"
#include "workload.h"

#define OPS_PER_KEY 60

struct reg_state {
  const struct jepsen_cluster *c;
  bool unsafe_reads;
  atomic_uint_fast64_t ops;
};

struct reg_client {
  int node;
};

static int reg_init(struct jepsen_workload *w, const struct jepsen_cluster *c,
                    int concurrency, unsigned flags) {
  (void)concurrency;
  struct reg_state *s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  s->c = c;
  s->unsafe_reads = (flags & JEPSEN_WL_UNSAFE_READS) != 0;
  atomic_init(&s->ops, 0);
  w->state = s;
  return 0;
}

static void reg_fini(struct jepsen_workload *w) {
  free(w->state);
  w->state = NULL;
}

static int reg_open(struct jepsen_workload *w, int64_t process, int node,
                    void **client) {
  (void)w;
  (void)process;
  struct reg_client *cl = calloc(1, sizeof(*cl));
  if (!cl)
    return -ENOMEM;
  cl->node = node;
  *client = cl;
  return 0;
}

static void reg_close(struct jepsen_workload *w, void *client) {
  (void)w;
  free(client);
}

static void reg_generate(struct jepsen_workload *w, struct jepsen_rng *rng,
                         int64_t process, struct jepsen_wop *op) {
  (void)process;
  struct reg_state *s = w->state;
  uint64_t k = atomic_fetch_add(&s->ops, 1) / OPS_PER_KEY;
  memset(op, 0, sizeof(*op));
  op->key = (int64_t)k;
  uint32_t r = jepsen_rng_below(rng, 4);
  if (r < 2) {
    op->f = JEPSEN_F_READ;
    snprintf(op->value, sizeof(op->value), "[%" PRId64 " nil]", op->key);
  } else if (r == 2) {
    op->f = JEPSEN_F_WRITE;
    op->a = jepsen_rng_below(rng, 5);
    snprintf(op->value, sizeof(op->value), "[%" PRId64 " %" PRId64 "]", op->key,
             op->a);
  } else {
    op->f = JEPSEN_F_CAS;
    op->a = jepsen_rng_below(rng, 5);
    op->b = jepsen_rng_below(rng, 5);
    snprintf(op->value, sizeof(op->value),
             "[%" PRId64 " [%" PRId64 " %" PRId64 "]]", op->key, op->a, op->b);
  }
}

/* The first line of out, trimmed, as a short error text. */
static void first_line(const char *out, bool to, char *err, size_t errlen) {
  if (to) {
    snprintf(err, errlen, "timed out");
    return;
  }
  size_t l = strcspn(out, "\n");
  snprintf(err, errlen, "%.*s", (int)(l > 160 ? 160 : l), out);
}

static enum jepsen_outcome reg_invoke(struct jepsen_workload *w, void *client,
                                      const struct jepsen_wop *op,
                                      double timeout, char *out_value,
                                      size_t cap, char *err, size_t errlen) {
  struct reg_state *s = w->state;
  struct reg_client *cl = client;
  char key[64], val[32], from[32];
  snprintf(key, sizeof(key), "jepsen/r%" PRId64, op->key);
  snprintf(val, sizeof(val), "%" PRId64, op->f == JEPSEN_F_CAS ? op->b : op->a);
  snprintf(from, sizeof(from), "%" PRId64, op->a);
  char out[1024];
  int st = 0;
  bool to = false;
  int rc;
  err[0] = 0;
  snprintf(out_value, cap, "%s", op->value);
  if (op->f == JEPSEN_F_READ) {
    char *args[] = {"get", key, "--print-value-only",
                    s->unsafe_reads ? "--consistency=s" : "--consistency=l",
                    NULL};
    rc = jepsen_cluster_ctl(s->c, 1u << cl->node, args, NULL, timeout, out,
                            sizeof(out), &st, &to);
    if (rc != 0 || to || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      first_line(rc ? keel_strerror(rc) : out, to, err, errlen);
      return JEPSEN_OUT_FAIL;
    }
    /* One line: the value, or nothing when the key does not exist. */
    char *nl = strchr(out, '\n');
    if (nl)
      *nl = 0;
    char *end;
    long v = strtol(out, &end, 10);
    if (!out[0])
      snprintf(out_value, cap, "[%" PRId64 " nil]", op->key);
    else if (*end == 0)
      snprintf(out_value, cap, "[%" PRId64 " %ld]", op->key, v);
    else {
      /* Not a value we wrote: record it as read, as a string, so the
       * checker sees exactly what came back. */
      char lit[256];
      jepsen_edn_string(out, lit, sizeof(lit));
      snprintf(out_value, cap, "[%" PRId64 " %s]", op->key, lit);
    }
    return JEPSEN_OUT_OK;
  }
  if (op->f == JEPSEN_F_WRITE) {
    char *args[] = {"put", key, val, NULL};
    rc = jepsen_cluster_ctl(s->c, 1u << cl->node, args, NULL, timeout, out,
                            sizeof(out), &st, &to);
    if (rc == 0 && !to && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
        strncmp(out, "OK", 2) == 0)
      return JEPSEN_OUT_OK;
    first_line(rc ? keel_strerror(rc) : out, to, err, errlen);
    return JEPSEN_OUT_INFO;
  }
  /* cas: etcdctl txn reads compares, success ops, failure ops from stdin,
   * each block ended by an empty line. */
  char txn[256];
  snprintf(txn, sizeof(txn), "value(\"%s\") = \"%s\"\n\nput %s %s\n\n\n", key,
           from, key, val);
  char *args[] = {"txn", NULL};
  rc = jepsen_cluster_ctl(s->c, 1u << cl->node, args, txn, timeout, out,
                          sizeof(out), &st, &to);
  if (rc == 0 && !to && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    if (strncmp(out, "SUCCESS", 7) == 0)
      return JEPSEN_OUT_OK;
    if (strncmp(out, "FAILURE", 7) == 0) {
      snprintf(err, errlen, "compare failed");
      return JEPSEN_OUT_FAIL;
    }
  }
  first_line(rc ? keel_strerror(rc) : out, to, err, errlen);
  return JEPSEN_OUT_INFO;
}

static const struct jepsen_workload register_etcdctl = {
    .name = "register",
    .model = JEPSEN_MODEL_REGISTER,
    .init = reg_init,
    .fini = reg_fini,
    .open = reg_open,
    .close = reg_close,
    .generate = reg_generate,
    .invoke = reg_invoke,
};

const struct jepsen_workload *jepsen_workload_find(const char *name,
                                                   const char *target) {
  if (strcmp(name, "register") == 0 && strcmp(target, "etcd") == 0)
    return &register_etcdctl;
  return NULL;
}

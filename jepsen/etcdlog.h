/* etcdlog.h — converts old-style Jepsen log lines of a single register into
 * the EDN history format the checkers read (history.h).
 *
 * Input, one event per line (tabs or runs of spaces between fields), as in
 * the etcd histories published with porcupine / linearizability-checker:
 *
 *   INFO  jepsen.util - <process> :<invoke|ok|fail|info> :<read|write|cas> V
 *
 * V is nil, an integer, [from to] or :timed-out. Output, one map per line:
 *
 *   {:index 0, :time 0, :type :invoke, :process 3, :f :cas, :value [1 2]}
 *
 * Meaning:
 *   - ":fail :read :timed-out" becomes a :fail read, which the checker
 *     drops (porcupine keeps it as a read with an unknown result: the same
 *     thing, as a read never changes the register);
 *   - ":info ... :timed-out" may or may not have happened: :info, with the
 *     invoke's value and :error :timed-out;
 *   - ":fail :cas [a b]" stays :fail and is dropped, as Jepsen's checkers do
 *     (porcupine instead keeps it as a cas that ran and found the register
 *     != a: a stronger reading). Both readings give the same verdict on all
 *     102 published histories; see docs/decisions/0501.
 *
 * Every line must match; anything else is an error naming NAME:LINE.
 */
#ifndef JEPSEN_ETCDLOG_H
#define JEPSEN_ETCDLOG_H

#include <stddef.h>
#include <stdio.h>

/* Reads `in` (named `name` in messages) and writes EDN lines to `out`.
 * Returns 0, or KEEL_EPARSE / KEEL_ELIMIT / -EIO with err filled in. */
int jepsen_convert_etcd_log(FILE *in, const char *name, FILE *out, char *err,
                            size_t errlen);

#endif

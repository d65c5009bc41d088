/* watch_testlib.h — helpers for the watch hub tests: an in-memory history
 * that implements the hub's read_history callback, a brute-force model of
 * what a watcher should see, and a collector that checks every batch a
 * stream hands out against the per-batch guarantees. */
#ifndef KEEL_WATCH_TESTLIB_H
#define KEEL_WATCH_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

#include "watch_hub.h"

/* ---- in-memory history ---- */

struct th_rev {
  struct store_event *ev; /* owned copies */
  size_t n;
};

struct th_history {
  struct th_rev *revs; /* revs[r] for r in 1..rev */
  size_t cap;
  int64_t rev;
  int64_t compact;   /* reads from below it fail with KEEL_ECOMPACTED */
  size_t scan_limit; /* stop after this many revisions per read; 0: none */
  int fail_next;     /* next read returns this code (once), if non-zero */
  size_t reads;
};

void th_init(struct th_history *t);
void th_free(struct th_history *t);

/* One write of a txn: a put (value != NULL) or a delete. */
struct th_op {
  const char *key;
  const char *value;
};

/* Appends one revision with these writes (keys distinct), computing
 * versions and prev_kv from the history. Returns the new revision. */
int64_t th_write(struct th_history *t, const struct th_op *ops, size_t n);
int64_t th_put(struct th_history *t, const char *key, const char *value);
int64_t th_del(struct th_history *t, const char *key);

/* Publishes revision r of the history to the hub (asserts success). */
void th_publish(struct th_history *t, struct watch_hub *h, int64_t r);

/* watch_read_history_fn over the history. */
int th_read_history(void *ctx, const struct watch_history_req *req,
                    watch_emit_fn emit, void *emit_ctx, int64_t *next_rev,
                    int64_t *compact_rev);

/* etcd range semantics; end_len 0: the single key; "\0": from key. */
int th_in_range(const uint8_t *k, size_t kn, const uint8_t *key, size_t key_n,
                const uint8_t *end, size_t end_n);

/* A hub over `t` with the given config tweaks applied by the caller. */
struct watch_hub *th_hub(struct th_history *t, struct watch_hub_config *cfg);

/* ---- what a watcher received ---- */

struct th_got {
  int64_t rev;
  int type;
  char key[64];
  char value[64];
  int has_prev;
  char prev_value[64];
};

struct th_watch {
  int64_t id;
  int used;
  /* the request, to compute the expectation */
  char key[64];
  size_t key_len;
  char end[64];
  size_t end_len;
  int64_t start; /* effective first revision */
  unsigned flags;
  /* what arrived */
  struct th_got *got;
  size_t n_got, cap_got;
  size_t batches;
  int64_t last_batch_rev;
  int in_fragment;
  int64_t fragment_rev;
  int64_t last_progress;
  size_t progress_count;
  int canceled;
  int64_t compact;
  char reason[128];
};

struct th_collector {
  struct th_watch w[256];
  int64_t stream_progress; /* last stream-wide progress revision */
  size_t stream_progress_count;
  size_t total_events;
  size_t ready_calls;
};

/* Registers a watcher created in the stream (for expectations). */
struct th_watch *th_track(struct th_collector *c, int64_t id,
                          const struct watch_create *req, int64_t hub_rev);

/* Pulls and checks every pending batch; returns the number of batches.
 * Checks: per watcher, batch revisions never go back and are >= the
 * events in the batch; events are in revision order; a revision is split
 * only by fragments; nothing follows a cancel; a stream progress is >= every
 * event delivered so far. */
size_t th_drain(struct th_collector *c, struct watch_stream *s,
                size_t max_bytes, size_t max_batches);

/* The brute-force expectation for watcher `w` over revisions
 * [w->start, upto]: compares with what arrived. When the watcher was
 * canceled, what arrived must be a prefix of the expectation. */
void th_check(const struct th_history *t, const struct th_watch *w,
              int64_t upto);

void th_collector_free(struct th_collector *c);

/* A ready callback that counts calls in a th_collector. */
void th_ready(void *arg, struct watch_stream *s);

#endif

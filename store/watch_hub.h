/* watch_hub.h — the watch hub: matches committed events to etcd-style
 * watchers and hands each stream batches the server frames as WatchResponses.
 *
 * This header is the manual. The hub lives on the loop thread and takes no
 * locks; every function here must be called from that one thread.
 *
 * Pieces:
 *   - a hub (struct watch_hub): one per node. The store tells it about every
 *     committed revision with watch_hub_publish(); it reads past revisions
 *     through a callback (watch_read_history_fn) the store implements, so the
 *     hub itself never touches LMDB.
 *   - streams (struct watch_stream): one per gRPC Watch stream. A stream holds
 *     many watchers and one delivery queue.
 *   - watchers: a key, a range [key, range_end) or everything from key on,
 *     from a start revision (or "now"), with filters and options.
 *
 * How the server drives it:
 *   1. After the store commits revision R: watch_hub_publish(hub, R, events).
 *   2. When a stream's ready callback fires (its queue went from empty to
 *      non-empty, or a requested progress notification became due), pull
 *      batches with watch_stream_next() while the socket can take them and
 *      frame one WatchResponse per batch.
 *   3. While watch_hub_unsynced() > 0, call watch_hub_catchup() now and then
 *      (an idle handle, or after each loop turn): it reads history in bounded
 *      chunks for watchers that are behind.
 *   4. On a timer (etcd: every 10 minutes), watch_hub_progress_tick().
 *
 * Guarantees (etcd's): for each watcher, events arrive in revision order,
 * each at most once, with no gap while the revisions are in history; all the
 * events of one revision arrive in one batch (or in consecutive batches
 * marked fragment); a watcher can start at any revision still in history; the
 * revision of every batch (the header revision) never goes back and is never
 * lower than an event already delivered.
 */
#ifndef KEEL_WATCH_HUB_H
#define KEEL_WATCH_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "store_event.h"

struct watch_hub;
struct watch_stream;

/* ---- History: what the store implements ------------------------------ */

/* One chunk of history to read: the events of revisions
 * [from_rev, max_rev] whose key lies in the watcher's range, in revision
 * order (within one revision in the store's order).
 *
 * Range semantics are etcd's: range_end_len == 0 means the single key `key`;
 * range_end == "\0" (one zero byte) means every key >= key; otherwise
 * [key, range_end). */
struct watch_history_req {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *range_end;
  size_t range_end_len;
  int64_t from_rev;  /* first revision to read; >= 1 */
  int64_t max_rev;   /* last revision the hub has been told about */
  size_t max_events; /* stop after the revision in which this is reached */
  size_t max_bytes;  /* same, counting key + value (+ prev) bytes */
  int want_prev;     /* fill prev_kv / has_prev on each event */
};

/* The hub's sink for history: called once per event, in order. A non-zero
 * return value asks the reader to stop and return that value. The event and
 * what it points to need only live for the duration of the call (the hub
 * copies what it keeps). */
typedef int (*watch_emit_fn)(void *emit_ctx, const struct store_event *ev);

/* Reads one chunk of history. Contract:
 *   - Compacted history is gone: if req->from_rev is below the first
 *     revision the history still holds, return KEEL_ECOMPACTED, set
 *     *compact_rev to that first revision and emit nothing. The watcher is
 *     canceled with compact_revision = *compact_rev, and a client resumes
 *     from there, so it must be readable. (A store whose compaction at C
 *     also drops revision C sets *compact_rev = C + 1.)
 *   - Otherwise emit the matching events of revisions from req->from_rev on,
 *     never past req->max_rev, and stop at a revision boundary once
 *     max_events or max_bytes is reached (one revision is never split across
 *     chunks, so a chunk may exceed the limits by the rest of one revision).
 *     The reader may also stop early for its own reasons (revisions scanned).
 *   - On success set *next_rev to the first revision not read, which is
 *     greater than req->from_rev (progress) and at most req->max_rev + 1;
 *     return 0.
 *   - Any other negative code means the read failed; if it comes from
 *     `emit`, pass it through.
 * Revisions above max_rev may already be in the store (committed, not yet
 * published to the hub); they must not be emitted: the hub gets them from
 * watch_hub_publish(). This is what makes the join from catch-up to live
 * delivery free of gaps and duplicates. */
typedef int (*watch_read_history_fn)(void *ctx,
                                     const struct watch_history_req *req,
                                     watch_emit_fn emit, void *emit_ctx,
                                     int64_t *next_rev, int64_t *compact_rev);

/* ---- Hub -------------------------------------------------------------- */

struct watch_hub_config {
  int64_t current_rev; /* the store's revision when the hub starts */
  watch_read_history_fn read_history; /* required */
  void *history_ctx;
  size_t max_streams;             /* default 10,000 */
  size_t max_watchers;            /* whole hub; default 1,000,000 */
  size_t max_watchers_per_stream; /* default 100,000 */
  size_t max_key_len;             /* key and range_end; default 64 KiB */
  /* Backlog: bytes and events queued for a watcher (and for a whole stream)
   * but not yet pulled. Past a limit a watcher stops being fed live events
   * and is served from history later. A single revision larger than a limit
   * is still queued when the backlog is empty, so progress never stops.
   * The hub's queued bytes are thus at most max_streams x (stream limit +
   * one revision); the server sizes these to its memory. */
  size_t watcher_backlog_bytes;  /* default 1 MiB */
  size_t watcher_backlog_events; /* default 4096 */
  size_t stream_backlog_bytes;   /* default 8 MiB */
  size_t stream_backlog_events;  /* default 32768 */
  size_t max_batch_events; /* events merged into one batch; default 1000 */
  /* Fault injection for tests: when set and it returns non-zero, the hub's
   * allocation of n bytes fails as if malloc had returned NULL. */
  int (*alloc_fail)(void *arg, size_t n);
  void *alloc_fail_arg;
};

/* Fills `c` with the defaults above and no history reader. */
void watch_hub_config_init(struct watch_hub_config *c);

/* Creates a hub. Errors: -EINVAL (no read_history, negative current_rev, a
 * zero limit, a watcher backlog limit above UINT32_MAX / 2 or max_key_len
 * above UINT32_MAX / 4), -ENOMEM. */
int watch_hub_new(const struct watch_hub_config *c, struct watch_hub **out);

/* Frees the hub. Every stream must have been closed first. */
void watch_hub_free(struct watch_hub *h);

/* The last revision published (or config.current_rev). */
int64_t watch_hub_revision(const struct watch_hub *h);

/* Tells the hub that revision `rev` committed with these events (copied if
 * kept; the caller keeps ownership). Events carry prev_kv (has_prev = 1)
 * whenever the key existed before, as history reads with want_prev do; the
 * hub hands it only to watchers created with WATCH_PREV_KV. Call it only
 * once the revision is readable through read_history (after the LMDB
 * commit). Every event's kv.mod_revision must be
 * `rev`; rev must be watch_hub_revision() + 1 (revisions are published one
 * by one, in order; see watch_hub_jump() for a snapshot install). n may be
 * 0 (a revision without events).
 * Cost: per event, O(log W + matching watchers).
 * Errors: -EINVAL (rev is not the next revision, an event of another
 * revision or of unknown type, a key longer than max_key_len); nothing is
 * changed then. An allocation failure does not fail the call: the watchers
 * concerned drop back to catch-up from history. */
int watch_hub_publish(struct watch_hub *h, int64_t rev,
                      const struct store_event *events, size_t n);

/* The store's revision jumped to `rev` without the revisions in between
 * being published (a snapshot was installed). Every watcher in sync drops
 * to catch-up from its position, so nothing in between is skipped: it is
 * read from history (or the watcher is canceled with compact_revision if
 * the new history does not reach back that far). O(watchers).
 * Errors: -EINVAL (rev < watch_hub_revision()). */
int watch_hub_jump(struct watch_hub *h, int64_t rev);

/* Reads history for watchers that are behind, in chunks of at most
 * max_events events / max_bytes bytes per read_history call, until that much
 * was read in total or no watcher can take more now (its backlog is full).
 * A watcher whose history was compacted is canceled with compact_revision
 * set; a read error other than -ENOMEM cancels it with the error as reason.
 * Returns the number of watchers still behind (>= 0). */
size_t watch_hub_catchup(struct watch_hub *h, size_t max_events,
                         size_t max_bytes);

/* Number of watchers behind the live stream (catching up or victims). */
size_t watch_hub_unsynced(const struct watch_hub *h);

/* Periodic progress: every watcher created with WATCH_PROGRESS_NOTIFY that
 * is in sync, has nothing queued and got no events since the previous tick
 * gets a progress batch. O(watchers). The server calls it on its timer. */
void watch_hub_progress_tick(struct watch_hub *h);

struct watch_hub_stats {
  size_t streams;
  size_t watchers;        /* including canceled ones not yet pulled */
  size_t unsynced;        /* catching up or victims */
  size_t bytes_now;       /* bytes the hub has allocated and not freed */
  size_t bytes_peak;      /* high-water mark of bytes_now */
  uint64_t victimized;    /* times a watcher fell behind its backlog limit */
  uint64_t history_reads; /* read_history calls */
  uint64_t index_steps;   /* hash chain and tree nodes visited by publish */
};
void watch_hub_stats(const struct watch_hub *h, struct watch_hub_stats *st);

/* ---- Streams and watchers --------------------------------------------- */

/* Called when the stream has something to pull: its queue went from empty
 * to non-empty, or a requested progress notification became due. It fires
 * on that transition only: once it fired, keep pulling (when the socket can
 * take more) until watch_stream_next() returns 0. It must not call into the
 * hub (schedule a write instead). */
typedef void (*watch_ready_fn)(void *arg, struct watch_stream *s);

/* Opens a stream. ready may be NULL (the server then polls). Errors:
 * KEEL_ELIMIT (max_streams open), -ENOMEM. */
int watch_stream_open(struct watch_hub *h, watch_ready_fn ready, void *arg,
                      struct watch_stream **out);

/* Closes a stream: its watchers and queued batches are freed. A batch
 * returned by watch_stream_next() is invalid afterwards. */
void watch_stream_close(struct watch_stream *s);

enum watch_flags {
  WATCH_NOPUT = 1 << 0,    /* etcd filter NOPUT: no put events */
  WATCH_NODELETE = 1 << 1, /* etcd filter NODELETE */
  WATCH_PREV_KV = 1 << 2,  /* events carry the previous key-value */
  WATCH_PROGRESS_NOTIFY =
      1 << 3,              /* periodic progress (watch_hub_progress_tick) */
  WATCH_FRAGMENT = 1 << 4, /* a batch may be split (see watch_batch) */
};

#define WATCH_ID_AUTO (-1)   /* watch_create.watch_id: let the hub choose */
#define WATCH_ID_STREAM (-1) /* watch_batch.watch_id of a stream progress */

struct watch_create {
  const uint8_t *key; /* copied */
  size_t key_len;
  const uint8_t *range_end; /* etcd semantics, see watch_history_req */
  size_t range_end_len;
  int64_t start_rev; /* 0: from the next revision; else the first revision
                        to deliver (past, present or future) */
  unsigned flags;    /* enum watch_flags */
  int64_t watch_id;  /* >= 0, or WATCH_ID_AUTO */
};

/* Creates a watcher in stream `s` and stores its id in *watch_id. A start
 * revision in the past is served from history (watch_hub_catchup); below the
 * compact revision the watcher is canceled with compact_revision set, as etcd
 * does. The server sends the "created" response itself, before pulling.
 * Errors: -EINVAL (negative start_rev, unknown flag, range_end <= key, a
 * negative watch_id other than WATCH_ID_AUTO), KEEL_ETOOLARGE (key or
 * range_end longer than max_key_len), KEEL_EEXIST (watch_id in use in this
 * stream), KEEL_ELIMIT (too many watchers in the stream or the hub),
 * -ENOMEM. */
int watch_stream_watch(struct watch_stream *s, const struct watch_create *req,
                       int64_t *watch_id);

/* Cancels a watcher at the client's request: its queued events are dropped
 * and a canceled batch (with `reason`, copied, may be NULL) is queued; the id
 * is free once that batch was pulled. Errors: KEEL_ENOTFOUND (no such
 * watcher, or it is already canceled). */
int watch_stream_cancel(struct watch_stream *s, int64_t watch_id,
                        const char *reason);

/* Asks for one stream-wide progress notification (etcd's
 * WatchProgressRequest): a batch with watch_id WATCH_ID_STREAM and the hub's
 * revision, delivered once every watcher of the stream is in sync and
 * everything queued before it was pulled. */
void watch_stream_request_progress(struct watch_stream *s);

/* One batch: becomes one WatchResponse. */
struct watch_batch {
  int64_t watch_id; /* WATCH_ID_STREAM for a stream progress */
  /* Header revision: every event of this watcher up to it has been
   * delivered (in this batch or earlier). Never goes back per watcher. */
  int64_t revision;
  const struct store_event *events; /* prev_kv cleared unless WATCH_PREV_KV */
  size_t n_events;
  /* 1: more events of the same revision follow in the next batch of this
   * watcher (only for watchers created with WATCH_FRAGMENT). Events of one
   * revision are otherwise never split across batches. */
  int fragment;
  int progress; /* 1: no events, a progress notification */
  int canceled; /* 1: the watcher is gone; no batch for it follows */
  int64_t compact_revision;  /* set when canceled because of compaction */
  const char *cancel_reason; /* NULL or a message */
};

/* Takes the next batch of the stream. Consecutive revisions of one watcher
 * are merged while the batch stays within max_bytes (key + value + prev
 * bytes) and max_batch_events; one revision larger than max_bytes comes
 * alone, split into fragments if the watcher asked for WATCH_FRAGMENT.
 * Returns 1 with *out filled, 0 when nothing is pending, -ENOMEM. *out and
 * what it points to stay valid until the next call on this stream or
 * watch_stream_close(). */
int watch_stream_next(struct watch_stream *s, size_t max_bytes,
                      struct watch_batch *out);

/* Bytes and events queued in the stream and not yet pulled. */
size_t watch_stream_backlog_bytes(const struct watch_stream *s);

#endif

/* svc_watch.c — the etcd Watch stream over the watch hub (svc_watch.h).
 *
 * State of one stream (struct wstream):
 *
 *   open ──create/cancel/progress──> open
 *     │  hub ready ─> queued on sw->ready ─> (idle turn) flush
 *     │  flush: pull batches while gRPC accepts them; a response that
 *     │         does not fit is held in `pending` and inbound is paused
 *     │         until on_writable sends it (so at most ONE response is ever
 *     │         held here, and no "created" overtakes or trails its events)
 *     v
 *   on_close / error / service free ─> watch_stream_close + call finished
 *
 * Invariants:
 *   - the "created" response of a watcher is handed to gRPC (or held in
 *     `pending`) before any batch is pulled for it: batches are only pulled
 *     in flush(), which first sends `pending`;
 *   - while `pending` is set, nothing is pulled and inbound is paused;
 *   - the hub is never called from its own ready callback (on_ready only
 *     queues the stream and starts the idle handle).
 */
#include "svc_watch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "etcd_codec.h"
#include "keel_log.h"
#include "keel_pb.h"
#include "rpc.pb-c.h"
#include "store_watch.h"
#include "watch_hub.h"

#define COMP "watch"
/* Catch-up found nothing it could read (backlogs full): poll again after
 * this long instead of spinning. */
#define CATCHUP_RETRY_MS 20
/* Smallest batch budget asked of the hub (a revision larger than the budget
 * still comes whole, or in fragments). */
#define MIN_BATCH_BYTES 4096

struct wstream {
  struct svc_watch *sw;
  keel_grpc_call *call;
  struct watch_stream *ws;
  struct wstream *prev, *next; /* sw->streams */
  struct wstream *rnext;       /* sw->ready */
  bool queued;
  bool paused;
  bool require_leader; /* metadata hasleader: true */
  uint8_t *pending;    /* one encoded response waiting for room */
  size_t pending_len;
  size_t pending_events; /* events in it (stats) */
};

struct svc_watch {
  uv_loop_t *loop;
  struct store *st;
  struct node *node;
  struct watch_hub *hub;
  uv_idle_t flush_idle;
  uv_timer_t catchup_timer;
  uv_timer_t progress_timer;
  uv_timer_t leader_timer;
  unsigned no_leader_ticks;
  int handles_open;
  struct wstream *streams;
  struct wstream *ready_head, *ready_tail;
  struct svc_watch_stats stats;
};

static void on_flush_idle(uv_idle_t *h);
static void on_ready(void *arg, struct watch_stream *s);
static void on_catchup(uv_timer_t *t);

/* ---- helpers ---------------------------------------------------------- */

static void header_ids(const struct svc_watch *sw,
                       struct etcd_header_ids *ids) {
  memset(ids, 0, sizeof(*ids));
  if (!sw->node)
    return;
  struct node_status ns;
  node_status(sw->node, &ns);
  ids->cluster_id = ns.cluster_id;
  ids->member_id = ns.id;
  ids->raft_term = ns.term;
}

static void kick_catchup(struct svc_watch *sw) {
  if (sw->hub && watch_hub_unsynced(sw->hub) > 0 &&
      !uv_is_active((uv_handle_t *)&sw->catchup_timer))
    uv_timer_start(&sw->catchup_timer, on_catchup, 0, 0);
}

static void ready_unlink(struct svc_watch *sw, struct wstream *w) {
  if (!w->queued)
    return;
  struct wstream **pp = &sw->ready_head, *prev = NULL;
  while (*pp && *pp != w)
    prev = *pp, pp = &(*pp)->rnext;
  if (*pp)
    *pp = w->rnext;
  if (sw->ready_tail == w)
    sw->ready_tail = prev;
  w->queued = false;
  w->rnext = NULL;
}

/* Drops the stream's hub state and memory; the call (if any) is the
 * caller's to finish. */
static void stream_drop(struct wstream *w) {
  struct svc_watch *sw = w->sw;
  ready_unlink(sw, w);
  if (w->ws)
    watch_stream_close(w->ws);
  if (w->prev)
    w->prev->next = w->next;
  else
    sw->streams = w->next;
  if (w->next)
    w->next->prev = w->prev;
  if (w->call)
    keel_grpc_call_set_user(w->call, NULL);
  free(w->pending);
  sw->stats.streams--;
  free(w);
}

static void stream_fail(struct wstream *w, int grpc_code, const char *msg) {
  keel_grpc_call *call = w->call;
  stream_drop(w);
  keel_grpc_call_finish(call, grpc_code, msg);
}

/* Hands an encoded response (malloc'd, ownership taken) to gRPC, or holds
 * it when the stream's buffer is full. Returns 0 sent, 1 held, -1 the
 * stream was failed (w is gone). */
static int send_or_hold(struct wstream *w, uint8_t *buf, size_t len,
                        size_t n_events) {
  struct svc_watch *sw = w->sw;
  int rc = keel_grpc_call_send(w->call, buf, len);
  if (rc == KEEL_EBUSY) {
    sw->stats.stalled++;
    if (w->pending) { /* cannot happen: inbound is paused while held */
      free(buf);
      stream_fail(w, KEEL_GRPC_RESOURCE_EXHAUSTED, "watch: send buffer full");
      return -1;
    }
    w->pending = buf;
    w->pending_len = len;
    w->pending_events = n_events;
    if (!w->paused) {
      w->paused = true;
      keel_grpc_call_pause(w->call);
    }
    return 1;
  }
  free(buf);
  if (rc == 0) {
    sw->stats.sent++;
    sw->stats.events += n_events;
    return 0;
  }
  if (rc == KEEL_ECANCELED)
    return 0; /* the stream ended; on_close follows */
  stream_fail(w, KEEL_GRPC_INTERNAL, keel_strerror(rc));
  return -1;
}

/* Sends what is held, then pulls batches from the hub while gRPC takes
 * them. */
static void flush(struct wstream *w) {
  struct svc_watch *sw = w->sw;
  if (w->pending) {
    int rc = keel_grpc_call_send(w->call, w->pending, w->pending_len);
    if (rc == KEEL_EBUSY)
      return; /* on_writable brings us back */
    free(w->pending);
    w->pending = NULL;
    if (rc == 0) {
      sw->stats.sent++;
      sw->stats.events += w->pending_events;
    }
    if (w->paused) {
      /* Resuming delivers held requests at once, and one of them may end
       * the stream (w and the call gone): pull in the next idle turn
       * instead (stream_drop unlinks w from that list), touch nothing
       * after the resume. */
      w->paused = false;
      on_ready(w, NULL);
      keel_grpc_call_resume(w->call);
      return;
    }
  }
  struct etcd_header_ids ids;
  header_ids(sw, &ids);
  bool pulled = false;
  for (;;) {
    size_t room = keel_grpc_call_writable(w->call);
    if (room == 0)
      break; /* full (on_writable follows) or ended (on_close follows) */
    size_t max = room / 2;
    if (max < MIN_BATCH_BYTES)
      max = MIN_BATCH_BYTES;
    if (max > SVC_WATCH_MAX_BATCH_BYTES)
      max = SVC_WATCH_MAX_BATCH_BYTES;
    struct watch_batch b;
    int rc = watch_stream_next(w->ws, max, &b);
    if (rc == 0)
      break;
    if (rc < 0) {
      stream_fail(w, KEEL_GRPC_RESOURCE_EXHAUSTED, keel_strerror(rc));
      return;
    }
    pulled = true;
    struct etcd_watch_info info = {
        .watch_id = b.watch_id,
        .revision = b.revision,
        .canceled = b.canceled != 0,
        .fragment = b.fragment != 0,
        .compact_revision = b.compact_revision,
        .cancel_reason = b.cancel_reason,
    };
    struct etcd_reply r = {0};
    /* The hub clears prev_kv for watchers without WATCH_PREV_KV. */
    rc = etcd_encode_watch(&info, b.events, b.n_events, true, &ids, &r);
    if (rc) {
      stream_fail(w, KEEL_GRPC_RESOURCE_EXHAUSTED, keel_strerror(rc));
      return;
    }
    rc = send_or_hold(w, r.buf, r.len, b.n_events);
    if (rc != 0)
      break; /* held (w paused) or failed (w gone) */
  }
  if (pulled)
    kick_catchup(sw); /* room in the backlogs: behind watchers may go on */
}

/* ---- hub callbacks and loop handles ----------------------------------- */

static void on_ready(void *arg, struct watch_stream *s) {
  (void)s;
  struct wstream *w = arg;
  struct svc_watch *sw = w->sw;
  if (w->queued)
    return;
  w->queued = true;
  w->rnext = NULL;
  if (sw->ready_tail)
    sw->ready_tail->rnext = w;
  else
    sw->ready_head = w;
  sw->ready_tail = w;
  if (!uv_is_active((uv_handle_t *)&sw->flush_idle))
    uv_idle_start(&sw->flush_idle, on_flush_idle);
}

static void on_flush_idle(uv_idle_t *h) {
  struct svc_watch *sw = h->data;
  uv_idle_stop(h);
  while (sw->ready_head) {
    struct wstream *w = sw->ready_head;
    sw->ready_head = w->rnext;
    if (!sw->ready_head)
      sw->ready_tail = NULL;
    w->queued = false;
    w->rnext = NULL;
    flush(w);
  }
}

static void on_catchup(uv_timer_t *t) {
  struct svc_watch *sw = t->data;
  struct watch_hub_stats before, after;
  watch_hub_stats(sw->hub, &before);
  size_t left = watch_hub_catchup(sw->hub, SVC_WATCH_CATCHUP_EVENTS,
                                  SVC_WATCH_CATCHUP_BYTES);
  watch_hub_stats(sw->hub, &after);
  if (left > 0)
    uv_timer_start(
        t, on_catchup,
        after.history_reads != before.history_reads ? 0 : CATCHUP_RETRY_MS, 0);
}

/* etcd's monitorLeader: a member that has known no leader for
 * SVC_WATCH_NO_LEADER_TICKS election timeouts in a row ends the streams
 * that asked for a leader (hasleader), so their clients move to a member
 * that has one instead of waiting on a partitioned one. */
static void on_leader_check(uv_timer_t *t) {
  struct svc_watch *sw = t->data;
  struct node_status ns = {0};
  if (sw->node)
    node_status(sw->node, &ns);
  if (ns.leader != 0) {
    sw->no_leader_ticks = 0;
    return;
  }
  if (++sw->no_leader_ticks < SVC_WATCH_NO_LEADER_TICKS)
    return;
  size_t n = 0;
  struct wstream *w = sw->streams;
  while (w) {
    struct wstream *next = w->next;
    if (w->require_leader) {
      stream_fail(w, KEEL_GRPC_UNAVAILABLE, "etcdserver: no leader");
      n++;
    }
    w = next;
  }
  if (n)
    keel_logkv(KEEL_LOG_INFO, COMP, "no leader: watch streams ended",
               "streams=%zu election_timeouts=%u", n, sw->no_leader_ticks);
}

static void on_progress(uv_timer_t *t) {
  struct svc_watch *sw = t->data;
  watch_hub_progress_tick(sw->hub);
}

/* ---- publishing --------------------------------------------------------- */

static void hub_jump(struct svc_watch *sw, int64_t rev) {
  if (rev > watch_hub_revision(sw->hub)) {
    int rc = watch_hub_jump(sw->hub, rev);
    if (rc)
      keel_logkv(KEEL_LOG_ERROR, COMP, "watch hub jump failed",
                 "rev=%lld err=%s", (long long)rev, keel_strerror(rc));
  }
  kick_catchup(sw);
}

void svc_watch_on_applied(void *ud, const struct node_apply_out *out,
                          bool snapshot) {
  struct svc_watch *sw = ud;
  const struct apply_result *ar = out ? out->result : NULL;
  if (snapshot) {
    /* The revisions in between were never seen here: watchers re-read
     * them from the new history (or get compact_revision). */
    int64_t cur = 0, compacted = 0;
    if (ar)
      cur = ar->store.revision;
    else if (store_revisions(sw->st, &cur, &compacted) != 0)
      cur = 0;
    hub_jump(sw, cur);
    return;
  }
  if (!ar)
    return;
  const struct store_apply_result *r = &ar->store;
  int64_t cur = watch_hub_revision(sw->hub);
  size_t i = 0;
  while (i < r->n_events && r->events[i].kv.mod_revision <= cur)
    i++; /* already published (cannot happen: one batch is applied once) */
  for (int64_t rev = cur + 1; rev <= r->revision; rev++) {
    size_t j = i;
    while (j < r->n_events && r->events[j].kv.mod_revision == rev)
      j++;
    int rc = watch_hub_publish(sw->hub, rev, r->events + i, j - i);
    if (rc) {
      keel_logkv(KEEL_LOG_ERROR, COMP,
                 "watch hub refused a revision: watchers re-read history",
                 "rev=%lld err=%s", (long long)rev, keel_strerror(rc));
      hub_jump(sw, r->revision);
      return;
    }
    i = j;
  }
}

/* ---- the gRPC handler ------------------------------------------------- */

static void send_created(struct wstream *w, int64_t watch_id, int err) {
  struct etcd_header_ids ids;
  header_ids(w->sw, &ids);
  struct etcd_watch_info info = {
      .watch_id = watch_id,
      .revision = watch_hub_revision(w->sw->hub),
      .created = true,
      .canceled = err != 0,
      .cancel_reason = err ? etcd_error(err).message : NULL,
  };
  struct etcd_reply r = {0};
  int rc = etcd_encode_watch(&info, NULL, 0, false, &ids, &r);
  if (rc) {
    stream_fail(w, KEEL_GRPC_RESOURCE_EXHAUSTED, keel_strerror(rc));
    return;
  }
  send_or_hold(w, r.buf, r.len, 0);
}

static void handle_create(struct wstream *w,
                          const Etcdserverpb__WatchCreateRequest *c) {
  static const uint8_t zero = 0;
  struct watch_create wc = {0};
  /* etcd: an empty key means "\0". */
  wc.key = c->key.len ? c->key.data : &zero;
  wc.key_len = c->key.len ? c->key.len : 1;
  wc.range_end = c->range_end.data;
  wc.range_end_len = c->range_end.len;
  wc.start_rev = c->start_revision;
  for (size_t i = 0; i < c->n_filters; i++) {
    if (c->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT)
      wc.flags |= WATCH_NOPUT;
    else if (c->filters[i] ==
             ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE)
      wc.flags |= WATCH_NODELETE;
  }
  if (c->prev_kv)
    wc.flags |= WATCH_PREV_KV;
  if (c->progress_notify)
    wc.flags |= WATCH_PROGRESS_NOTIFY;
  if (c->fragment)
    wc.flags |= WATCH_FRAGMENT;
  /* clientv3 sends 0 for "server assigns" (docs/etcd-compat.md §6.2). */
  wc.watch_id = c->watch_id == 0 ? WATCH_ID_AUTO : c->watch_id;
  int64_t id = 0;
  int rc = watch_stream_watch(w->ws, &wc, &id);
  if (rc) {
    if (rc == -EINVAL)
      rc = KEEL_EBADMSG;
    send_created(w, c->watch_id, rc);
    return;
  }
  send_created(w, id, 0);
  kick_catchup(w->sw);
}

static void on_message(keel_grpc_call *call, const uint8_t *msg, size_t len,
                       void *ud) {
  struct svc_watch *sw = ud;
  struct wstream *w = keel_grpc_call_user(call);
  if (!w) {
    const char *hl = keel_grpc_call_metadata(call, "hasleader");
    if (hl && strcmp(hl, "true") == 0 && sw->node) {
      struct node_status ns;
      node_status(sw->node, &ns);
      if (ns.leader == 0) {
        keel_grpc_call_finish(call, KEEL_GRPC_UNAVAILABLE,
                              "etcdserver: no leader");
        return;
      }
    }
    w = calloc(1, sizeof(*w));
    int rc = w ? watch_stream_open(sw->hub, on_ready, w, &w->ws) : -ENOMEM;
    if (rc) {
      free(w);
      struct etcd_status es = etcd_error(rc);
      keel_grpc_call_finish(call, es.grpc, es.message);
      return;
    }
    w->sw = sw;
    w->call = call;
    w->require_leader = hl && strcmp(hl, "true") == 0;
    w->next = sw->streams;
    if (sw->streams)
      sw->streams->prev = w;
    sw->streams = w;
    sw->stats.streams++;
    keel_grpc_call_set_user(call, w);
  }
  char err[128];
  Etcdserverpb__WatchRequest *req =
      (Etcdserverpb__WatchRequest *)keel_pb_unpack(
          &etcdserverpb__watch_request__descriptor, msg, len, err, sizeof(err));
  if (!req) {
    stream_fail(w, KEEL_GRPC_INVALID_ARGUMENT, err);
    return;
  }
  switch (req->request_union_case) {
  case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
    handle_create(w, req->create_request);
    break;
  case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
    /* etcd answers a cancel of an unknown id with nothing. */
    (void)watch_stream_cancel(w->ws, req->cancel_request->watch_id, NULL);
    break;
  case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
    watch_stream_request_progress(w->ws);
    break;
  default:
    break; /* etcd ignores an empty request */
  }
  protobuf_c_message_free_unpacked(&req->base, NULL);
  /* The hub's ready callback covers new batches; a create whose response
   * went out may have unblocked nothing else, so nothing more to do here
   * unless the stream is still there and has something held. */
  if (keel_grpc_call_user(call) == w && w->pending == NULL)
    flush(w);
}

static void on_writable(keel_grpc_call *call, void *ud) {
  (void)ud;
  struct wstream *w = keel_grpc_call_user(call);
  if (w)
    flush(w);
}

static void on_close(keel_grpc_call *call, int reason, void *ud) {
  (void)reason;
  (void)ud;
  struct wstream *w = keel_grpc_call_user(call);
  if (w)
    stream_drop(w);
  keel_grpc_call_finish(call, KEEL_GRPC_CANCELLED, NULL);
}

/* ---- life ------------------------------------------------------------- */

int svc_watch_new(uv_loop_t *loop, struct store *st, struct svc_watch **out) {
  int64_t cur = 0, compacted = 0;
  int rc = store_revisions(st, &cur, &compacted);
  if (rc)
    return rc;
  struct svc_watch *sw = calloc(1, sizeof(*sw));
  if (!sw)
    return -ENOMEM;
  struct watch_hub_config hc;
  watch_hub_config_init(&hc);
  hc.current_rev = cur;
  hc.read_history = store_watch_read_history;
  hc.history_ctx = st;
  rc = watch_hub_new(&hc, &sw->hub);
  if (rc) {
    free(sw);
    return rc;
  }
  sw->loop = loop;
  sw->st = st;
  uv_idle_init(loop, &sw->flush_idle);
  uv_timer_init(loop, &sw->catchup_timer);
  uv_timer_init(loop, &sw->progress_timer);
  uv_timer_init(loop, &sw->leader_timer);
  sw->flush_idle.data = sw->catchup_timer.data = sw->progress_timer.data =
      sw->leader_timer.data = sw;
  sw->handles_open = 4;
  uv_timer_start(&sw->progress_timer, on_progress, SVC_WATCH_PROGRESS_MS,
                 SVC_WATCH_PROGRESS_MS);
  uv_unref((uv_handle_t *)&sw->progress_timer);
  *out = sw;
  return 0;
}

void svc_watch_set_node(struct svc_watch *sw, struct node *n,
                        uint64_t election_ms) {
  sw->node = n;
  sw->no_leader_ticks = 0;
  if (n && election_ms) {
    uv_timer_start(&sw->leader_timer, on_leader_check, election_ms,
                   election_ms);
    uv_unref((uv_handle_t *)&sw->leader_timer);
  } else {
    uv_timer_stop(&sw->leader_timer);
  }
}

int svc_watch_register(struct svc_watch *sw, keel_grpc_server *srv) {
  struct keel_grpc_method m = {
      .name = "/etcdserverpb.Watch/Watch",
      .kind = KEEL_GRPC_BIDI,
      .ud = sw,
      .on_message = on_message,
      .on_close = on_close,
      .on_writable = on_writable,
  };
  return keel_grpc_server_register(srv, &m);
}

void svc_watch_stats(const struct svc_watch *sw, struct svc_watch_stats *st) {
  *st = sw->stats;
  struct watch_hub_stats hs;
  watch_hub_stats(sw->hub, &hs);
  st->watchers = hs.watchers;
  st->victimized = hs.victimized;
}

static void on_handle_closed(uv_handle_t *h) {
  struct svc_watch *sw = h->data;
  if (--sw->handles_open == 0)
    free(sw);
}

void svc_watch_free(struct svc_watch *sw) {
  if (!sw)
    return;
  while (sw->streams) {
    sw->streams->call = NULL; /* gone with its listener */
    stream_drop(sw->streams);
  }
  watch_hub_free(sw->hub);
  sw->hub = NULL;
  uv_close((uv_handle_t *)&sw->flush_idle, on_handle_closed);
  uv_close((uv_handle_t *)&sw->catchup_timer, on_handle_closed);
  uv_close((uv_handle_t *)&sw->progress_timer, on_handle_closed);
  uv_close((uv_handle_t *)&sw->leader_timer, on_handle_closed);
}

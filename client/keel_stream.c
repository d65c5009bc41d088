/* keel_stream.c — libkeel's long-lived streams: the shared Watch stream
 * (watchers that survive connection loss), the shared LeaseKeepAlive stream
 * and snapshot downloads.
 *
 * Watch stream states (one per client):
 *
 *   DOWN --(a watcher exists, no reopen timer)--> OPEN: pick an endpoint,
 *     start /etcdserverpb.Watch/Watch, send a create for every watcher
 *     with start_revision = its resume point (keel_resume_start)
 *   OPEN --(stream ends: connection lost, "no leader", server cancel)-->
 *     DOWN + reopen timer (full-jitter backoff on consecutive failures;
 *     the endpoint's breaker counts the failure and "current" moves on)
 *
 * Invariants: every watcher has a client-chosen id, unique per client and
 * reused on every stream, so responses map to watchers without ordering
 * assumptions. A watcher is given an event only if its revision is >= its
 * next_rev (keel_policy.c), and next_rev only grows: after a reconnect the
 * server may replay, the caller never sees a revision twice, and since the
 * watch restarts at next_rev it never misses one (or gets KEEL_ECOMPACTED
 * with the compact revision when history is gone). A watcher is freed only
 * outside its own callback (in_cb / dead flags defer it).
 *
 * The keep-alive stream works the same way; one timer drives both the
 * reopen backoff and the renewals (each lease renewed every TTL/3, from
 * the TTL of its last answer).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_internal.h"

static const char *const stream_md[] = {"hasleader", "true", NULL};

/* ------------------------------------------------------------------ */
/* Watch                                                               */
/* ------------------------------------------------------------------ */

struct keel_watcher {
  struct keel_watcher *next, *prev;
  keel_client *c;
  int64_t id;
  uint8_t *key, *end;
  size_t key_len, end_len;
  int prev_kv, no_put, no_delete, progress_notify;
  struct keel_resume resume;
  keel_watch_cb cb;
  void *ud;
  int in_cb;
  int dead; /* canceled or ended inside its callback: free after it */
};

static void watch_schedule(keel_client *c);
static void w_on_probe(uv_timer_t *t);

static void w_unlink(struct keel_watcher *w) {
  keel_client *c = w->c;
  if (w->prev)
    w->prev->next = w->next;
  else if (c->watchers == w)
    c->watchers = w->next;
  if (w->next)
    w->next->prev = w->prev;
  w->next = w->prev = NULL;
  c->n_watchers--;
}

static void w_free(struct keel_watcher *w) {
  free(w->key);
  free(w->end);
  free(w);
}

/* Dead watchers stay linked while callbacks are being dispatched
 * (c->w_busy), so a callback may cancel any watcher, itself included,
 * without pulling the list from under the loop; they are freed here. */
static void w_sweep(keel_client *c) {
  if (c->w_busy)
    return;
  for (struct keel_watcher *w = c->watchers, *nx; w; w = nx) {
    nx = w->next;
    if (w->dead) {
      w_unlink(w);
      w_free(w);
    }
  }
}

/* Calls the watcher's callback (never for a dead one); a batch with an
 * error is the last: the watcher is dead afterwards. */
static void w_deliver(struct keel_watcher *w,
                      const struct keel_watch_batch *b) {
  if (w->dead)
    return;
  w->c->w_busy++;
  w->in_cb = 1;
  w->cb(w, b, w->ud);
  w->in_cb = 0;
  w->c->w_busy--;
  if (b->err != 0)
    w->dead = 1;
}

static int w_send(keel_client *c, Etcdserverpb__WatchRequest *req) {
  if (c->wcall == NULL)
    return KEEL_EUNAVAILABLE;
  size_t len = etcdserverpb__watch_request__get_packed_size(req);
  uint8_t *b = malloc(len ? len : 1);
  if (b == NULL)
    return -ENOMEM;
  etcdserverpb__watch_request__pack(req, b);
  int rc = keel_grpc_client_send(c->wcall, b, len);
  free(b);
  if (rc != 0) {
    /* Send buffer full (1 MiB of creates) or worse: restart the stream,
     * which re-creates every watcher from its resume point. */
    keel_grpc_client_cancel(c->wcall);
  }
  return rc;
}

static int w_send_create(struct keel_watcher *w) {
  Etcdserverpb__WatchCreateRequest cr;
  etcdserverpb__watch_create_request__init(&cr);
  cr.key = (ProtobufCBinaryData){w->key_len, w->key};
  cr.range_end = (ProtobufCBinaryData){w->end_len, w->end};
  cr.start_revision = keel_resume_start(&w->resume);
  cr.progress_notify = !!w->progress_notify;
  cr.prev_kv = !!w->prev_kv;
  cr.watch_id = w->id;
  Etcdserverpb__WatchCreateRequest__FilterType f[2];
  size_t nf = 0;
  if (w->no_put)
    f[nf++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
  if (w->no_delete)
    f[nf++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
  cr.filters = f;
  cr.n_filters = nf;
  Etcdserverpb__WatchRequest req;
  etcdserverpb__watch_request__init(&req);
  req.request_union_case =
      ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
  req.create_request = &cr;
  return w_send(w->c, &req);
}

static struct keel_watcher *w_find(keel_client *c, int64_t id) {
  for (struct keel_watcher *w = c->watchers; w; w = w->next)
    if (w->id == id && !w->dead)
      return w;
  return NULL;
}

#define MAX_EVENTS_STACK 64

static void w_events(struct keel_watcher *w,
                     const Etcdserverpb__WatchResponse *m) {
  size_t n = m->n_events;
  int64_t stack_revs[MAX_EVENTS_STACK];
  int64_t *revs =
      n <= MAX_EVENTS_STACK ? stack_revs : malloc(n * sizeof(*revs));
  struct keel_event *ev = calloc(n ? n : 1, sizeof(*ev));
  struct keel_kv *prev = calloc(n ? n : 1, sizeof(*prev));
  if (revs == NULL || ev == NULL || prev == NULL) {
    /* Cannot deliver without losing events: end the stream; the resume
     * point did not move, so the reopened stream replays them. */
    if (revs != stack_revs)
      free(revs);
    free(ev);
    free(prev);
    if (w->c->wcall)
      keel_grpc_client_cancel(w->c->wcall);
    return;
  }
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    revs[i] = m->events[i]->kv ? m->events[i]->kv->mod_revision : 0;
    if (revs[i] <= 0 || (i > 0 && revs[i] < revs[i - 1]))
      bad = 1;
  }
  if (bad) {
    /* The resume logic needs ascending revisions: a server that breaks
     * that cannot be followed safely. The watcher ends, with the reason. */
    struct keel_watch_batch b = {0};
    b.err = KEEL_EBADMSG;
    b.message = "malformed watch response: events without a revision or "
                "out of revision order";
    keel__header(&b.header, m->header);
    w_deliver(w, &b);
    n = 0;
  }
  size_t first;
  size_t kept = keel_resume_filter(&w->resume, revs, n, &first);
  for (size_t i = 0; i < kept; i++) {
    const Mvccpb__Event *e = m->events[first + i];
    ev[i].type = e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE
                     ? KEEL_EVENT_DELETE
                     : KEEL_EVENT_PUT;
    if (e->kv)
      keel__kv(&ev[i].kv, e->kv);
    if (e->prev_kv) {
      keel__kv(&prev[i], e->prev_kv);
      ev[i].prev_kv = &prev[i];
    }
  }
  if (kept > 0) {
    struct keel_watch_batch b = {0};
    b.message = "";
    keel__header(&b.header, m->header);
    b.events = ev;
    b.n_events = kept;
    w_deliver(w, &b);
  }
  if (revs != stack_revs)
    free(revs);
  free(ev);
  free(prev);
}

static void w_on_message_body(keel_client *c, const uint8_t *msg, size_t len);

static void w_on_message(keel_grpc_client_call *call, const uint8_t *msg,
                         size_t len, void *ud) {
  keel_client *c = ud;
  (void)call;
  c->w_rx = 1;
  c->w_busy++;
  w_on_message_body(c, msg, len);
  c->w_busy--;
  w_sweep(c);
}

static void w_on_message_body(keel_client *c, const uint8_t *msg, size_t len) {
  Etcdserverpb__WatchResponse *m =
      etcdserverpb__watch_response__unpack(NULL, len, msg);
  if (m == NULL) {
    if (c->wcall)
      keel_grpc_client_cancel(c->wcall); /* reopen; resume covers it */
    return;
  }
  int64_t hdr_rev = m->header ? m->header->revision : 0;
  if (m->watch_id == -1) {
    /* etcd 3.4's answer to a progress request, for every watcher. It is
     * not guarded by "synced" there, so it does not move resume points.
     * Answers to the library's own liveness probes are not delivered. */
    int internal = 0;
    if (c->w_prog_n > 0) {
      internal = (int)(c->w_prog_fifo & 1);
      c->w_prog_fifo >>= 1;
      c->w_prog_n--;
    }
    for (struct keel_watcher *w = internal ? NULL : c->watchers, *nx; w;
         w = nx) {
      nx = w->next;
      struct keel_watch_batch b = {0};
      b.message = "";
      keel__header(&b.header, m->header);
      w_deliver(w, &b);
    }
    etcdserverpb__watch_response__free_unpacked(m, NULL);
    return;
  }
  struct keel_watcher *w = w_find(c, m->watch_id);
  if (w == NULL) {
    etcdserverpb__watch_response__free_unpacked(m, NULL);
    return; /* canceled by us meanwhile */
  }
  if (m->created) {
    c->wfails = 0;
    keel__ep_ok(c, c->wep);
    keel_resume_created(&w->resume, hdr_rev);
  }
  if (m->compact_revision != 0 || m->canceled) {
    struct keel_watch_batch b = {0};
    b.compact_revision = m->compact_revision;
    b.err = m->compact_revision != 0 ? KEEL_ECOMPACTED : KEEL_ECANCELED;
    b.message = m->cancel_reason && m->cancel_reason[0] ? m->cancel_reason
                                                        : keel_strerror(b.err);
    keel__header(&b.header, m->header);
    w_deliver(w, &b);
  } else if (m->n_events > 0) {
    w_events(w, m);
  } else if (!m->created) {
    /* Per-watcher progress notification: sent only for synced watchers. */
    keel_resume_progress(&w->resume, hdr_rev);
    struct keel_watch_batch b = {0};
    b.message = "";
    keel__header(&b.header, m->header);
    w_deliver(w, &b);
  }
  etcdserverpb__watch_response__free_unpacked(m, NULL);
}

static void w_on_status(keel_grpc_client_call *call, int code,
                        const char *message, void *ud) {
  keel_client *c = ud;
  (void)call;
  (void)code;
  (void)message;
  c->wcall = NULL;
  uv_timer_stop(&c->wprobe);
  c->w_prog_fifo = 0;
  c->w_prog_n = 0;
  if (c->closing || c->watchers == NULL)
    return; /* an idle stream ending says little about the endpoint */
  keel__ep_failed(c, c->wep);
  c->wfails++;
  watch_schedule(c);
}

static void w_on_timer(uv_timer_t *t) {
  keel_client *c = t->data;
  c->wtimer_armed = 0;
  watch_schedule(c);
}

/* Opens the stream if watchers need it, or arms the reopen timer. */
static void watch_schedule(keel_client *c) {
  if (c->closing || c->wcall || c->wtimer_armed || c->watchers == NULL)
    return;
  uint64_t delay = 0;
  if (c->wfails > 0)
    delay = keel_backoff_delay(c->cfg.backoff_base_ms, c->cfg.backoff_max_ms,
                               c->wfails, keel_rand_next(&c->rnd));
  int ep = delay == 0 ? keel__pick(c) : -1;
  if (ep < 0) {
    if (delay == 0) /* every breaker open: wait for a cool-down */
      delay = c->cfg.backoff_max_ms;
    c->wtimer_armed = 1;
    uv_timer_start(&c->wtimer, w_on_timer, delay, 0);
    return;
  }
  int err = 0;
  keel_grpc_channel *ch = keel__channel(c, ep, &err);
  static const struct keel_grpc_client_callbacks cbs = {w_on_message,
                                                        w_on_status, NULL};
  c->wep = ep;
  if (ch == NULL ||
      keel_grpc_client_start(ch, "/etcdserverpb.Watch/Watch", 0, stream_md,
                             &cbs, c, &c->wcall) != 0) {
    c->wcall = NULL;
    keel__ep_failed(c, ep);
    c->wfails++;
    watch_schedule(c);
    return;
  }
  c->w_rx = 0;
  c->w_probe_sent = 0;
  if (c->cfg.stream_probe_ms > 0)
    uv_timer_start(&c->wprobe, w_on_probe, c->cfg.stream_probe_ms,
                   c->cfg.stream_probe_ms);
  for (struct keel_watcher *w = c->watchers; w && c->wcall; w = w->next)
    if (!w->dead)
      w_send_create(w);
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (d && n)
    memcpy(d, p, n);
  return d;
}

int keel_watch_create(keel_client *c, const struct keel_watch_req *req,
                      keel_watch_cb cb, void *ud, keel_watcher **out) {
  if (req == NULL || req->key == NULL || req->key_len == 0 || cb == NULL ||
      req->start_revision < 0)
    return -EINVAL;
  if (c->closing)
    return KEEL_ECANCELED;
  if (c->n_watchers >= c->cfg.max_watchers)
    return KEEL_ELIMIT;
  struct keel_watcher *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return -ENOMEM;
  w->key = dup_bytes(req->key, req->key_len);
  w->end = dup_bytes(req->range_end, req->range_end_len);
  if (w->key == NULL || w->end == NULL) {
    w_free(w);
    return -ENOMEM;
  }
  w->c = c;
  w->key_len = req->key_len;
  w->end_len = req->range_end_len;
  w->prev_kv = req->prev_kv;
  w->no_put = req->no_put;
  w->no_delete = req->no_delete;
  w->progress_notify = req->progress_notify;
  w->resume.next_rev = req->start_revision;
  w->id = ++c->next_watch_id;
  w->cb = cb;
  w->ud = ud;
  w->next = c->watchers;
  if (c->watchers)
    c->watchers->prev = w;
  c->watchers = w;
  c->n_watchers++;
  if (out)
    *out = w;
  if (c->wcall)
    w_send_create(w);
  else
    watch_schedule(c);
  return 0;
}

void keel_watch_cancel(keel_watcher *w) {
  keel_client *c = w->c;
  if (w->dead)
    return;
  if (c->wcall) {
    Etcdserverpb__WatchCancelRequest cr;
    etcdserverpb__watch_cancel_request__init(&cr);
    cr.watch_id = w->id;
    Etcdserverpb__WatchRequest req;
    etcdserverpb__watch_request__init(&req);
    req.request_union_case =
        ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST;
    req.cancel_request = &cr;
    w_send(c, &req);
  }
  w->dead = 1;
  w_sweep(c);
}

/* Sends a progress request; internal ones (liveness probes) are answered
 * to nobody. The FIFO of outstanding ones tells the answers apart (the
 * server answers in order on the stream). */
static int w_progress(keel_client *c, int internal) {
  if (c->wcall == NULL)
    return KEEL_EUNAVAILABLE;
  if (c->w_prog_n >= 64)
    return KEEL_EBUSY;
  Etcdserverpb__WatchProgressRequest pr;
  etcdserverpb__watch_progress_request__init(&pr);
  Etcdserverpb__WatchRequest req;
  etcdserverpb__watch_request__init(&req);
  req.request_union_case =
      ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
  req.progress_request = &pr;
  int rc = w_send(c, &req);
  if (rc == 0) {
    c->w_prog_fifo |= (uint64_t)(internal ? 1 : 0) << c->w_prog_n;
    c->w_prog_n++;
  }
  return rc;
}

int keel_watch_progress(keel_client *c) {
  return w_progress(c, 0);
}

/* Liveness: a stream can hang without closing (a frozen server, a silent
 * network). Every stream_probe_ms the stream must have carried a message
 * since the last tick, or answered the probe sent then; otherwise it is
 * canceled and reopened elsewhere, resuming from next_rev. */
static void w_on_probe(uv_timer_t *t) {
  keel_client *c = t->data;
  if (c->wcall == NULL)
    return;
  if (!c->w_rx && c->w_probe_sent) {
    c->w_stalled = 1;
    keel_grpc_client_cancel(c->wcall); /* -> w_on_status -> reopen */
    return;
  }
  c->w_rx = 0;
  c->w_probe_sent = w_progress(c, 1) == 0;
}

int64_t keel_watch_next_revision(const keel_watcher *w) {
  return w->resume.next_rev;
}

void keel__watch_close_all(keel_client *c) {
  if (c->wtimer_armed)
    uv_timer_stop(&c->wtimer);
  c->wtimer_armed = 0;
  c->w_busy++;
  for (struct keel_watcher *w = c->watchers; w; w = w->next) {
    struct keel_watch_batch b = {0};
    b.err = KEEL_ECANCELED;
    b.message = "client closed";
    if (w->in_cb) /* closing from its own callback: no second call */
      w->dead = 1;
    else
      w_deliver(w, &b);
  }
  c->w_busy--;
  w_sweep(c);
  if (c->wcall)
    keel_grpc_client_cancel(c->wcall);
  c->wcall = NULL;
  uv_close((uv_handle_t *)&c->wtimer, keel__handle_closed);
  uv_close((uv_handle_t *)&c->wprobe, keel__handle_closed);
}

/* ------------------------------------------------------------------ */
/* Lease keep-alive                                                    */
/* ------------------------------------------------------------------ */

struct keel_keepalive {
  struct keel_keepalive *next, *prev;
  keel_client *c;
  int64_t id;
  uint64_t next_send; /* loop time of the next renewal */
  int sent;           /* a renewal is outstanding on this stream */
  int awaiting;       /* some renewal unanswered since sent_at */
  uint64_t sent_at;
  keel_keepalive_cb cb;
  void *ud;
  int in_cb, dead;
};

static void ka_schedule(keel_client *c);

static void ka_unlink(struct keel_keepalive *k) {
  keel_client *c = k->c;
  if (k->prev)
    k->prev->next = k->next;
  else if (c->kas == k)
    c->kas = k->next;
  if (k->next)
    k->next->prev = k->prev;
  k->next = k->prev = NULL;
  c->n_kas--;
}

static void ka_sweep(keel_client *c) {
  if (c->k_busy)
    return;
  for (struct keel_keepalive *k = c->kas, *nx; k; k = nx) {
    nx = k->next;
    if (k->dead) {
      ka_unlink(k);
      free(k);
    }
  }
}

static void ka_on_message(keel_grpc_client_call *call, const uint8_t *msg,
                          size_t len, void *ud) {
  keel_client *c = ud;
  (void)call;
  Etcdserverpb__LeaseKeepAliveResponse *m =
      etcdserverpb__lease_keep_alive_response__unpack(NULL, len, msg);
  if (m == NULL)
    return;
  c->kfails = 0;
  keel__ep_ok(c, c->kep);
  uint64_t now = keel__now(c);
  c->k_busy++; /* stops inside callbacks only mark: the list stays intact */
  for (struct keel_keepalive *k = c->kas; k; k = k->next) {
    if (k->id != m->id || k->dead)
      continue;
    k->sent = 0;
    k->awaiting = 0;
    int err = m->ttl <= 0 ? KEEL_ELEASENOTFOUND : 0;
    if (err == 0) {
      uint64_t iv = (uint64_t)m->ttl * 1000 / 3;
      k->next_send = now + (iv < 100 ? 100 : iv);
    }
    if (k->cb) {
      k->in_cb = 1;
      k->cb(k, err, m->ttl, k->ud);
      k->in_cb = 0;
    }
    if (err)
      k->dead = 1; /* the lease is gone: this was the last call */
  }
  c->k_busy--;
  ka_sweep(c);
  etcdserverpb__lease_keep_alive_response__free_unpacked(m, NULL);
  ka_schedule(c);
}

static void ka_on_status(keel_grpc_client_call *call, int code,
                         const char *message, void *ud) {
  keel_client *c = ud;
  (void)call;
  (void)code;
  (void)message;
  c->kcall = NULL;
  if (c->closing || c->kas == NULL)
    return; /* an idle stream ending says little about the endpoint */
  keel__ep_failed(c, c->kep);
  c->kfails++;
  for (struct keel_keepalive *k = c->kas; k; k = k->next) {
    k->sent = 0;
    k->awaiting = 0;
    k->next_send = 0; /* renew at once on the new stream */
  }
  ka_schedule(c);
}

static void ka_on_timer(uv_timer_t *t);

static int ka_open(keel_client *c) {
  int ep = keel__pick(c);
  if (ep < 0)
    return KEEL_EUNAVAILABLE;
  int err = 0;
  keel_grpc_channel *ch = keel__channel(c, ep, &err);
  static const struct keel_grpc_client_callbacks cbs = {ka_on_message,
                                                        ka_on_status, NULL};
  c->kep = ep;
  if (ch == NULL ||
      keel_grpc_client_start(ch, "/etcdserverpb.Lease/LeaseKeepAlive", 0,
                             stream_md, &cbs, c, &c->kcall) != 0) {
    c->kcall = NULL;
    keel__ep_failed(c, ep);
    return KEEL_EUNAVAILABLE;
  }
  return 0;
}

/* Sends due renewals and arms the timer for the next one (or for the
 * reopen backoff when the stream is down). */
static void ka_schedule(keel_client *c) {
  if (c->closing)
    return;
  uv_timer_stop(&c->ktimer);
  if (c->kas == NULL)
    return;
  uint64_t now = keel__now(c);
  if (c->kcall == NULL) {
    uint64_t delay =
        c->kfails
            ? keel_backoff_delay(c->cfg.backoff_base_ms, c->cfg.backoff_max_ms,
                                 c->kfails, keel_rand_next(&c->rnd))
            : 0;
    if (delay > 0 || ka_open(c) != 0) {
      if (delay == 0) {
        c->kfails++;
        delay = c->cfg.backoff_base_ms;
      }
      c->ktimer.data = c;
      uv_timer_start(&c->ktimer, ka_on_timer, delay, 0);
      return;
    }
  }
  uint64_t next = UINT64_MAX;
  for (struct keel_keepalive *k = c->kas; k && c->kcall; k = k->next) {
    if (k->dead)
      continue;
    if (!k->sent && k->next_send <= now) {
      Etcdserverpb__LeaseKeepAliveRequest r;
      etcdserverpb__lease_keep_alive_request__init(&r);
      r.id = k->id;
      uint8_t b[32];
      size_t len = etcdserverpb__lease_keep_alive_request__pack(&r, b);
      if (keel_grpc_client_send(c->kcall, b, len) != 0)
        break; /* buffer full: try at the next tick */
      if (!k->awaiting) {
        k->awaiting = 1;
        k->sent_at = now;
      }
      k->sent = 1;
      /* No answer within a second: send again (the stream may be stuck
       * behind a lost leader; a renewal is safe to repeat). */
      k->next_send = now + 1000;
    }
    if (k->next_send < next)
      next = k->next_send;
  }
  if (c->kcall == NULL) { /* send failed and ended the stream */
    ka_schedule(c);
    return;
  }
  if (next == UINT64_MAX)
    next = now + 1000;
  for (struct keel_keepalive *k = c->kas; k; k = k->next)
    if (k->sent && k->next_send < next)
      next = k->next_send;
  c->ktimer.data = c;
  uv_timer_start(&c->ktimer, ka_on_timer, next > now ? next - now : 1, 0);
}

static void ka_on_timer(uv_timer_t *t) {
  keel_client *c = t->data;
  uint64_t now = keel__now(c);
  for (struct keel_keepalive *k = c->kas; k; k = k->next) {
    if (k->dead || !k->awaiting)
      continue;
    /* Unanswered for stream_probe_ms: the stream hangs (frozen server):
     * reopen it elsewhere; renewals are safe to repeat. */
    if (c->kcall && c->cfg.stream_probe_ms > 0 &&
        now >= k->sent_at + c->cfg.stream_probe_ms) {
      keel_grpc_client_cancel(c->kcall); /* -> ka_on_status -> reopen */
      return;
    }
    if (k->sent && k->next_send <= now)
      k->sent = 0; /* unanswered: resend */
  }
  ka_schedule(c);
}

int keel_lease_keepalive(keel_client *c, int64_t id, keel_keepalive_cb cb,
                         void *ud, keel_keepalive **out) {
  if (id <= 0)
    return -EINVAL;
  if (c->closing)
    return KEEL_ECANCELED;
  if (c->n_kas >= c->cfg.max_keepalives)
    return KEEL_ELIMIT;
  struct keel_keepalive *k = calloc(1, sizeof(*k));
  if (k == NULL)
    return -ENOMEM;
  k->c = c;
  k->id = id;
  k->cb = cb;
  k->ud = ud;
  k->next = c->kas;
  if (c->kas)
    c->kas->prev = k;
  c->kas = k;
  c->n_kas++;
  if (out)
    *out = k;
  ka_schedule(c);
  return 0;
}

void keel_lease_keepalive_stop(keel_keepalive *k) {
  if (k->dead)
    return;
  k->dead = 1;
  ka_sweep(k->c);
  /* The shared stream stays open (idle) for later keep-alives. */
}

void keel__keepalive_close_all(keel_client *c) {
  uv_timer_stop(&c->ktimer);
  c->k_busy++;
  for (struct keel_keepalive *k = c->kas; k; k = k->next) {
    if (k->dead)
      continue;
    k->dead = 1;
    if (k->cb && !k->in_cb) /* not again from inside its own callback */
      k->cb(k, KEEL_ECANCELED, 0, k->ud);
  }
  c->k_busy--;
  ka_sweep(c);
  if (c->kcall)
    keel_grpc_client_cancel(c->kcall);
  c->kcall = NULL;
  uv_close((uv_handle_t *)&c->ktimer, keel__handle_closed);
}

void keel__streams_init(keel_client *c) {
  uv_timer_init(c->loop, &c->wtimer);
  c->wtimer.data = c;
  uv_timer_init(c->loop, &c->ktimer);
  c->ktimer.data = c;
  uv_timer_init(c->loop, &c->wprobe);
  c->wprobe.data = c;
  c->handles += 3;
  c->wep = c->kep = -1;
}

/* ------------------------------------------------------------------ */
/* Snapshot                                                            */
/* ------------------------------------------------------------------ */

struct snap {
  keel_client *c;
  keel_snapshot_data_cb on_data;
  keel_cb done;
  void *ud;
  int stopped;
  char ep_name[64];
};

static void snap_on_message(keel_grpc_client_call *call, const uint8_t *msg,
                            size_t len, void *ud) {
  struct snap *s = ud;
  if (s->stopped)
    return;
  Etcdserverpb__SnapshotResponse *m =
      etcdserverpb__snapshot_response__unpack(NULL, len, msg);
  if (m == NULL) {
    s->stopped = KEEL_EBADMSG;
    keel_grpc_client_cancel(call);
    return;
  }
  int stop = s->on_data(m->blob.data, m->blob.len, m->remaining_bytes, s->ud);
  etcdserverpb__snapshot_response__free_unpacked(m, NULL);
  if (stop) {
    s->stopped = KEEL_ECANCELED;
    keel_grpc_client_cancel(call);
  }
}

static void snap_on_status(keel_grpc_client_call *call, int code,
                           const char *message, void *ud) {
  struct snap *s = ud;
  struct keel_class cl =
      keel_classify(code, message, keel_grpc_client_delivery(call));
  int err = s->stopped ? s->stopped : cl.err;
  if (s->c->closing && err == KEEL_ECANCELED)
    message = "client closed";
  struct keel_result res = {err, code,       message ? message : "",
                            0,   s->ep_name, 1};
  s->done(&res, NULL, s->ud);
  free(s);
}

int keel_snapshot(keel_client *c, int endpoint, const struct keel_opts *opts,
                  keel_snapshot_data_cb on_data, keel_cb done, void *ud) {
  if (on_data == NULL || done == NULL ||
      (endpoint >= 0 && (size_t)endpoint >= c->n_eps))
    return -EINVAL;
  if (c->closing)
    return KEEL_ECANCELED;
  int ep = endpoint >= 0 ? endpoint : keel__pick(c);
  if (ep < 0)
    return KEEL_EUNAVAILABLE;
  int err = 0;
  keel_grpc_channel *ch = keel__channel(c, ep, &err);
  if (ch == NULL)
    return err;
  struct snap *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->c = c;
  s->on_data = on_data;
  s->done = done;
  s->ud = ud;
  snprintf(s->ep_name, sizeof(s->ep_name), "%s", c->eps[ep].name);
  static const struct keel_grpc_client_callbacks cbs = {snap_on_message,
                                                        snap_on_status, NULL};
  keel_grpc_client_call *call;
  int rc =
      keel_grpc_client_start(ch, "/etcdserverpb.Maintenance/Snapshot",
                             opts ? opts->timeout_ms : 0, NULL, &cbs, s, &call);
  if (rc != 0) {
    free(s);
    return rc;
  }
  /* An empty SnapshotRequest is zero bytes on the wire. */
  rc = keel_grpc_client_send(call, "", 0);
  if (rc == 0)
    rc = keel_grpc_client_close_send(call);
  if (rc != 0)
    keel_grpc_client_cancel(call); /* done() reports it */
  return 0;
}

/* watch_testlib.c — in-memory history, brute-force watcher model and the
 * batch-checking collector shared by the watch hub tests. */
#include "watch_testlib.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel_error.h"

void th_init(struct th_history *t) {
  memset(t, 0, sizeof *t);
  t->compact = 1;
}

static void free_kv(struct store_kv *kv) {
  free((void *)kv->key);
  free((void *)kv->value);
}

void th_free(struct th_history *t) {
  for (int64_t r = 1; r <= t->rev; r++) {
    for (size_t i = 0; i < t->revs[r].n; i++) {
      free_kv(&t->revs[r].ev[i].kv);
      if (t->revs[r].ev[i].has_prev)
        free_kv(&t->revs[r].ev[i].prev_kv);
    }
    free(t->revs[r].ev);
  }
  free(t->revs);
  memset(t, 0, sizeof *t);
}

static uint8_t *dup_bytes(const void *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  assert_non_null(d);
  if (n)
    memcpy(d, p, n);
  return d;
}

static void copy_kv(struct store_kv *dst, const struct store_kv *src) {
  *dst = *src;
  dst->key = dup_bytes(src->key, src->key_len);
  dst->value = dup_bytes(src->value, src->value_len);
}

/* The latest live state of `key` before revision `before`, or NULL. */
static const struct store_event *latest(const struct th_history *t,
                                        const char *key, int64_t before) {
  size_t n = strlen(key);
  for (int64_t r = before - 1; r >= 1; r--)
    for (size_t i = 0; i < t->revs[r].n; i++) {
      const struct store_event *e = &t->revs[r].ev[i];
      if (e->kv.key_len == n && !memcmp(e->kv.key, key, n))
        return e->type == STORE_EVENT_PUT ? e : NULL;
    }
  return NULL;
}

int64_t th_write(struct th_history *t, const struct th_op *ops, size_t n) {
  int64_t r = t->rev + 1;
  if ((size_t)r >= t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 64;
    t->revs = realloc(t->revs, nc * sizeof *t->revs);
    assert_non_null(t->revs);
    memset(t->revs + t->cap, 0, (nc - t->cap) * sizeof *t->revs);
    t->cap = nc;
  }
  struct store_event *ev = calloc(n ? n : 1, sizeof *ev);
  assert_non_null(ev);
  for (size_t i = 0; i < n; i++) {
    const struct store_event *prev = latest(t, ops[i].key, r);
    struct store_event *e = &ev[i];
    e->kv.key = dup_bytes(ops[i].key, strlen(ops[i].key));
    e->kv.key_len = strlen(ops[i].key);
    e->kv.mod_revision = r;
    if (ops[i].value) {
      e->type = STORE_EVENT_PUT;
      e->kv.value_len = strlen(ops[i].value);
      e->kv.value = dup_bytes(ops[i].value, e->kv.value_len);
      e->kv.create_revision = prev ? prev->kv.create_revision : r;
      e->kv.version = prev ? prev->kv.version + 1 : 1;
    } else {
      e->type = STORE_EVENT_DELETE;
      e->kv.value = dup_bytes("", 0);
    }
    if (prev) {
      e->has_prev = 1;
      copy_kv(&e->prev_kv, &prev->kv);
    }
  }
  t->revs[r].ev = ev;
  t->revs[r].n = n;
  t->rev = r;
  return r;
}

int64_t th_put(struct th_history *t, const char *key, const char *value) {
  struct th_op op = {key, value};
  return th_write(t, &op, 1);
}

int64_t th_del(struct th_history *t, const char *key) {
  struct th_op op = {key, NULL};
  return th_write(t, &op, 1);
}

void th_publish(struct th_history *t, struct watch_hub *h, int64_t r) {
  assert_true(r >= 1 && r <= t->rev);
  assert_int_equal(watch_hub_publish(h, r, t->revs[r].ev, t->revs[r].n), 0);
}

static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t m = an < bn ? an : bn;
  int c = m ? memcmp(a, b, m) : 0;
  if (c)
    return c;
  return an < bn ? -1 : an > bn;
}

int th_in_range(const uint8_t *k, size_t kn, const uint8_t *key, size_t key_n,
                const uint8_t *end, size_t end_n) {
  if (end_n == 0)
    return kn == key_n && (kn == 0 || !memcmp(k, key, kn));
  if (bytes_cmp(k, kn, key, key_n) < 0)
    return 0;
  if (end_n == 1 && end[0] == 0)
    return 1;
  return bytes_cmp(k, kn, end, end_n) < 0;
}

int th_read_history(void *ctx, const struct watch_history_req *req,
                    watch_emit_fn emit, void *emit_ctx, int64_t *next_rev,
                    int64_t *compact_rev) {
  struct th_history *t = ctx;
  t->reads++;
  if (t->fail_next) {
    int rc = t->fail_next;
    t->fail_next = 0;
    return rc;
  }
  if (req->from_rev < t->compact) {
    *compact_rev = t->compact;
    return KEEL_ECOMPACTED;
  }
  assert_true(req->max_rev <= t->rev);
  size_t events = 0, bytes = 0, scanned = 0;
  int64_t r = req->from_rev;
  for (; r <= req->max_rev; r++) {
    for (size_t i = 0; i < t->revs[r].n; i++) {
      const struct store_event *e = &t->revs[r].ev[i];
      if (!th_in_range(e->kv.key, e->kv.key_len, req->key, req->key_len,
                       req->range_end, req->range_end_len))
        continue;
      struct store_event copy = *e;
      if (!req->want_prev) {
        copy.has_prev = 0;
        memset(&copy.prev_kv, 0, sizeof copy.prev_kv);
      }
      int rc = emit(emit_ctx, &copy);
      if (rc)
        return rc;
      events++;
      bytes += e->kv.key_len + e->kv.value_len;
    }
    scanned++;
    if (events >= req->max_events || bytes >= req->max_bytes ||
        (t->scan_limit && scanned >= t->scan_limit)) {
      r++;
      break;
    }
  }
  *next_rev = r;
  return 0;
}

struct watch_hub *th_hub(struct th_history *t, struct watch_hub_config *cfg) {
  cfg->read_history = th_read_history;
  cfg->history_ctx = t;
  cfg->current_rev = t->rev;
  struct watch_hub *h = NULL;
  assert_int_equal(watch_hub_new(cfg, &h), 0);
  return h;
}

struct th_watch *th_track(struct th_collector *c, int64_t id,
                          const struct watch_create *req, int64_t hub_rev) {
  assert_true(id >= 0 && id < 256);
  struct th_watch *w = &c->w[id];
  free(w->got);
  memset(w, 0, sizeof *w);
  w->id = id;
  w->used = 1;
  assert_true(req->key_len < sizeof w->key &&
              req->range_end_len < sizeof w->end);
  memcpy(w->key, req->key, req->key_len);
  w->key_len = req->key_len;
  if (req->range_end_len)
    memcpy(w->end, req->range_end, req->range_end_len);
  w->end_len = req->range_end_len;
  w->start = req->start_rev ? req->start_rev : hub_rev + 1;
  w->flags = req->flags;
  w->last_batch_rev = 0;
  return w;
}

static void copy_str(char *dst, size_t cap, const uint8_t *p, size_t n) {
  assert_true(n < cap);
  if (n)
    memcpy(dst, p, n);
  dst[n] = 0;
}

static int64_t max_delivered(const struct th_collector *c) {
  int64_t m = 0;
  for (size_t i = 0; i < 256; i++)
    if (c->w[i].used && c->w[i].n_got && c->w[i].got[c->w[i].n_got - 1].rev > m)
      m = c->w[i].got[c->w[i].n_got - 1].rev;
  return m;
}

size_t th_drain(struct th_collector *c, struct watch_stream *s,
                size_t max_bytes, size_t max_batches) {
  size_t batches = 0;
  struct watch_batch b;
  while (batches < max_batches) {
    int rc = watch_stream_next(s, max_bytes, &b);
    if (rc == -ENOMEM) /* injected: nothing was consumed; try later */
      break;
    assert_true(rc >= 0);
    if (rc == 0)
      break;
    batches++;
    if (b.watch_id == WATCH_ID_STREAM) {
      assert_true(b.progress);
      assert_int_equal(b.n_events, 0);
      assert_true(b.revision >= c->stream_progress);
      assert_true(b.revision >= max_delivered(c));
      c->stream_progress = b.revision;
      c->stream_progress_count++;
      continue;
    }
    assert_true(b.watch_id >= 0 && b.watch_id < 256);
    struct th_watch *w = &c->w[b.watch_id];
    assert_true(w->used);
    assert_false(w->canceled);
    w->batches++;
    /* bookmarkable: never back, never below what was delivered */
    assert_true(b.revision >= w->last_batch_rev);
    w->last_batch_rev = b.revision;
    if (b.canceled) {
      assert_int_equal(b.n_events, 0);
      assert_false(w->in_fragment && !(w->flags & WATCH_FRAGMENT));
      w->canceled = 1;
      w->compact = b.compact_revision;
      if (b.cancel_reason)
        snprintf(w->reason, sizeof w->reason, "%s", b.cancel_reason);
      continue;
    }
    if (b.progress) {
      assert_int_equal(b.n_events, 0);
      assert_false(w->in_fragment);
      if (w->n_got)
        assert_true(b.revision >= w->got[w->n_got - 1].rev);
      w->last_progress = b.revision;
      w->progress_count++;
      continue;
    }
    assert_true(b.n_events > 0);
    if (b.fragment)
      assert_true(w->flags & WATCH_FRAGMENT);
    for (size_t i = 0; i < b.n_events; i++) {
      const struct store_event *e = &b.events[i];
      int64_t r = e->kv.mod_revision;
      assert_true(r <= b.revision);
      if (i == 0 && w->in_fragment)
        assert_int_equal(r, w->fragment_rev); /* continues the revision */
      else if (i == 0 && w->n_got)
        /* atomic: a new batch starts a new revision */
        assert_true(r > w->got[w->n_got - 1].rev);
      else if (i > 0)
        assert_true(r >= b.events[i - 1].kv.mod_revision);
      if (w->n_got == w->cap_got) {
        w->cap_got = w->cap_got ? w->cap_got * 2 : 16;
        w->got = realloc(w->got, w->cap_got * sizeof *w->got);
        assert_non_null(w->got);
      }
      struct th_got *g = &w->got[w->n_got++];
      memset(g, 0, sizeof *g);
      g->rev = r;
      g->type = e->type;
      copy_str(g->key, sizeof g->key, e->kv.key, e->kv.key_len);
      if (e->type == STORE_EVENT_PUT)
        copy_str(g->value, sizeof g->value, e->kv.value, e->kv.value_len);
      g->has_prev = e->has_prev;
      if (e->has_prev)
        copy_str(g->prev_value, sizeof g->prev_value, e->prev_kv.value,
                 e->prev_kv.value_len);
      c->total_events++;
    }
    w->in_fragment = b.fragment;
    if (b.fragment) {
      /* a fragment holds one revision only */
      assert_int_equal(b.events[0].kv.mod_revision,
                       b.events[b.n_events - 1].kv.mod_revision);
      w->fragment_rev = b.events[0].kv.mod_revision;
    }
  }
  return batches;
}

void th_check(const struct th_history *t, const struct th_watch *w,
              int64_t upto) {
  size_t k = 0;
  int truncated = 0;
  for (int64_t r = w->start; r <= upto && !truncated; r++) {
    for (size_t i = 0; i < t->revs[r].n; i++) {
      const struct store_event *e = &t->revs[r].ev[i];
      if (!th_in_range(e->kv.key, e->kv.key_len, (const uint8_t *)w->key,
                       w->key_len, (const uint8_t *)w->end, w->end_len))
        continue;
      if (e->type == STORE_EVENT_PUT && (w->flags & WATCH_NOPUT))
        continue;
      if (e->type == STORE_EVENT_DELETE && (w->flags & WATCH_NODELETE))
        continue;
      if (k == w->n_got) {
        /* only a canceled watcher may stop short */
        if (!w->canceled)
          fail_msg("watch %lld: missing event at revision %lld (got %zu)",
                   (long long)w->id, (long long)r, w->n_got);
        truncated = 1;
        break;
      }
      const struct th_got *g = &w->got[k++];
      if (g->rev != r || (int)e->type != g->type ||
          e->kv.key_len != strlen(g->key) ||
          memcmp(e->kv.key, g->key, e->kv.key_len))
        fail_msg("watch %lld: event %zu is rev %lld key %s, expected rev %lld",
                 (long long)w->id, k - 1, (long long)g->rev, g->key,
                 (long long)r);
      if (e->type == STORE_EVENT_PUT)
        assert_true(e->kv.value_len == strlen(g->value) &&
                    !memcmp(e->kv.value, g->value, e->kv.value_len));
      if (w->flags & WATCH_PREV_KV) {
        assert_int_equal(g->has_prev, e->has_prev);
        if (e->has_prev)
          assert_true(
              e->prev_kv.value_len == strlen(g->prev_value) &&
              !memcmp(e->prev_kv.value, g->prev_value, e->prev_kv.value_len));
      } else {
        assert_int_equal(g->has_prev, 0);
      }
    }
  }
  if (k != w->n_got)
    fail_msg("watch %lld: %zu events more than expected", (long long)w->id,
             w->n_got - k);
}

void th_collector_free(struct th_collector *c) {
  for (size_t i = 0; i < 256; i++)
    free(c->w[i].got);
  memset(c, 0, sizeof *c);
}

void th_ready(void *arg, struct watch_stream *s) {
  (void)s;
  ((struct th_collector *)arg)->ready_calls++;
}

/* keel_flags_cache.c — a flag set kept current by one watch, evaluated
 * locally from any thread (the manual is keel_flags.h).
 *
 * State (loop thread):
 *
 *   LOADING --range ok--> WATCHING --watch batch--> WATCHING (swap if changed)
 *      ^  |                  |
 *      |  +--range failed--> (timer retry_ms) --> LOADING
 *      +--- compacted (at once) / server ended the watch (after retry_ms)
 *   any state --close--> CLOSING --range callback and timer done--> freed
 *
 * Invariants:
 *   - `table` is the stored content of the prefix at `revision` (sorted by
 *     flag key, at most FLAGS_MAX_FLAGS + 1 entries, each value at most
 *     FLAGS_MAX_DEF_BYTES or marked too large), and the published set was
 *     compiled from exactly that table.
 *   - At most one Range and at most one watcher are in flight, never both
 *     (the watch starts from the Range's revision + 1).
 *   - The published set pointer only changes on the loop thread (publish());
 *     the old set is unreferenced only once no reader can still be between
 *     loading the pointer and taking its reference (the two reader counters,
 *     docs/decisions/0840-flag-cache-set-swap.md).
 */
#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_flags.h"
#include "keel_flags_internal.h"
#include "keel_internal.h"
#include "keel_log.h"

#define EVALUATORS_KEY "$evaluators"
#define MAX_ENTRIES (FLAGS_MAX_FLAGS + 1)

struct entry {
  char *key; /* flag key (the part after the prefix), NUL-terminated */
  char *val; /* NULL when the stored value was too large */
  size_t len;
};

struct keel_flag_cache {
  /* Shared with reader threads. */
  _Atomic(struct flags_set *) cur;
  atomic_uint epoch;
  atomic_long readers[2];

  /* Loop thread only. */
  keel_client *client;
  uv_loop_t *loop;
  char *prefix;
  size_t prefix_len;
  uint8_t range_end[FLAGS_MAX_KEY_BYTES + 16];
  size_t range_end_len;
  keel_flag_change_cb on_change;
  void *ud;
  uint64_t retry_ms;
  int64_t revision;
  struct entry *table;
  size_t n, cap;
  keel_watcher *w;
  bool loaded, range_inflight, timer_active, closing, timer_closed, detached;
  uv_timer_t timer;
  void (*done)(void *);
  void *done_ud;
  struct keel_flag_cache_stats st;
};

/* ---- set publication (any thread reads, loop thread writes) ------------- */

struct flags_set *keel_flag_cache_acquire(keel_flag_cache *c) {
  unsigned e;
  for (;;) {
    e = atomic_load(&c->epoch);
    atomic_fetch_add(&c->readers[e & 1], 1);
    if (atomic_load(&c->epoch) == e)
      break;
    /* A swap began between the two loads: register again under the new
     * epoch so the writer never waits for us. */
    atomic_fetch_sub(&c->readers[e & 1], 1);
  }
  struct flags_set *s = flags_set_ref(atomic_load(&c->cur));
  atomic_fetch_sub(&c->readers[e & 1], 1);
  return s;
}

/* Publishes s (owned) and drops the old set once every reader that may
 * have loaded it holds its own reference. Readers registered under the new
 * epoch load the new pointer, so the wait ends after the few instructions
 * in-flight readers need. */
static void publish(keel_flag_cache *c, struct flags_set *s) {
  struct flags_set *old = atomic_exchange(&c->cur, s);
  unsigned e = atomic_load(&c->epoch);
  atomic_store(&c->epoch, e + 1);
  while (atomic_load(&c->readers[e & 1]) != 0)
    sched_yield();
  flags_set_unref(old);
  c->st.swaps++;
}

int keel_flag_cache_evaluate(keel_flag_cache *c, const char *key,
                             enum flags_type type, const json_t *ctx,
                             int64_t now, struct keel_flag_eval *out) {
  if (!out)
    return -EINVAL;
  out->set = NULL;
  if (!c || !key)
    return -EINVAL;
  out->set = keel_flag_cache_acquire(c);
  return flags_evaluate(out->set, key, type, ctx, now, &out->r);
}

void keel_flag_eval_release(struct keel_flag_eval *e) {
  if (!e)
    return;
  flags_set_unref(e->set);
  e->set = NULL;
}

/* ---- the table ----------------------------------------------------------- */

static void set_error(keel_flag_cache *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(keel_flag_cache *c, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->st.last_error_message, sizeof c->st.last_error_message, fmt, ap);
  va_end(ap);
  c->st.last_error = err;
  keel_logkv(KEEL_LOG_WARN, "flagcache", c->st.last_error_message,
             "prefix=%s err=%s", c->prefix, keel_strerror(err));
}

static void entries_free(struct entry *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(t[i].key);
    free(t[i].val);
  }
  free(t);
}

/* Binary search; *pos = the index of key or where it would go. */
static bool find(const struct entry *t, size_t n, const char *key,
                 size_t *pos) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = strcmp(t[mid].key, key);
    if (cmp == 0) {
      *pos = mid;
      return true;
    }
    if (cmp < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *pos = lo;
  return false;
}

/* The flag key of a store key under the prefix, as a new string; NULL (and
 * *err set) for a key outside the prefix, empty, too long or holding a NUL
 * byte. */
static char *flag_key(const keel_flag_cache *c, const uint8_t *k, size_t len,
                      int *err) {
  *err = -EINVAL;
  if (len <= c->prefix_len || memcmp(k, c->prefix, c->prefix_len) != 0)
    return NULL;
  size_t fl = len - c->prefix_len;
  if (fl > FLAGS_MAX_KEY_BYTES || memchr(k + c->prefix_len, 0, fl)) {
    *err = KEEL_ELIMIT;
    return NULL;
  }
  char *s = malloc(fl + 1);
  if (!s) {
    *err = -ENOMEM;
    return NULL;
  }
  memcpy(s, k + c->prefix_len, fl);
  s[fl] = 0;
  return s;
}

static int entry_set_value(struct entry *e, const uint8_t *v, size_t len) {
  char *nv = NULL;
  if (len <= FLAGS_MAX_DEF_BYTES) {
    nv = malloc(len + 1);
    if (!nv)
      return -ENOMEM;
    memcpy(nv, v, len);
    nv[len] = 0;
  }
  free(e->val);
  e->val = nv;
  e->len = len;
  return 0;
}

static bool same_value(const struct entry *e, const uint8_t *v, size_t len) {
  if (len > FLAGS_MAX_DEF_BYTES)
    return !e->val && e->len == len; /* cannot tell; too large either way */
  return e->val && e->len == len && memcmp(e->val, v, len) == 0;
}

/* ---- changed keys ---------------------------------------------------------
 */

struct changes {
  char **keys;
  size_t n, cap;
  bool all; /* $evaluators changed: every flag */
};

static int changes_add(struct changes *ch, const char *key) {
  if (ch->n == ch->cap) {
    size_t nc = ch->cap ? ch->cap * 2 : 16;
    char **nk = realloc(ch->keys, nc * sizeof *nk);
    if (!nk)
      return -ENOMEM;
    ch->keys = nk;
    ch->cap = nc;
  }
  if (!(ch->keys[ch->n] = strdup(key)))
    return -ENOMEM;
  ch->n++;
  if (strcmp(key, EVALUATORS_KEY) == 0)
    ch->all = true;
  return 0;
}

static void changes_free(struct changes *ch) {
  for (size_t i = 0; i < ch->n; i++)
    free(ch->keys[i]);
  free(ch->keys);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds every key of the table when $evaluators changed, then sorts and
 * removes duplicates (one batch may change a key more than once). */
static int changes_finish(keel_flag_cache *c, struct changes *ch) {
  if (ch->all)
    for (size_t i = 0; i < c->n; i++)
      if (changes_add(ch, c->table[i].key))
        return -ENOMEM;
  if (ch->n == 0)
    return 0;
  qsort(ch->keys, ch->n, sizeof *ch->keys, cmp_str);
  size_t o = 1;
  for (size_t i = 1; i < ch->n; i++) {
    if (strcmp(ch->keys[i], ch->keys[o - 1]) == 0)
      free(ch->keys[i]);
    else
      ch->keys[o++] = ch->keys[i];
  }
  ch->n = o;
  return 0;
}

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

static bool changed(const struct changes *ch, const char *key) {
  return bsearch(&key, ch->keys, ch->n, sizeof *ch->keys, cmp_str) != NULL;
}

/* ---- compile and publish ------------------------------------------------- */

/* Compiles the table into a new set and publishes it; logs skipped
 * definitions that are among the changed keys (the others were logged
 * when they changed). */
static int rebuild(keel_flag_cache *c, const struct changes *ch) {
  char err[200];
  struct flags_builder *b = flags_builder_new();
  if (!b)
    return -ENOMEM;
  size_t invalid = 0, pos;
  if (find(c->table, c->n, EVALUATORS_KEY, &pos)) {
    const struct entry *e = &c->table[pos];
    int rc = e->val ? flags_builder_set_evaluators(b, e->val, e->len, err,
                                                   sizeof err)
                    : KEEL_ELIMIT;
    if (rc == -ENOMEM) {
      flags_builder_free(b);
      return rc;
    }
    if (rc) {
      invalid++;
      if (!e->val)
        snprintf(err, sizeof err, "over %u bytes", FLAGS_MAX_DEF_BYTES);
      if (changed(ch, e->key))
        set_error(c, rc, "%s%s: skipped: %s", c->prefix, e->key, err);
    }
  }
  for (size_t i = 0; i < c->n; i++) {
    const struct entry *e = &c->table[i];
    if (strcmp(e->key, EVALUATORS_KEY) == 0)
      continue;
    int rc = e->val
                 ? flags_builder_add(b, e->key, e->val, e->len, err, sizeof err)
                 : KEEL_ELIMIT;
    if (rc == -ENOMEM) {
      flags_builder_free(b);
      return rc;
    }
    if (rc) {
      invalid++;
      if (!e->val)
        snprintf(err, sizeof err, "over %u bytes", FLAGS_MAX_DEF_BYTES);
      if (changed(ch, e->key))
        set_error(c, rc, "%s%s: skipped: %s", c->prefix, e->key, err);
    }
  }
  struct flags_set *s = NULL;
  int rc = flags_builder_build(b, &s, err, sizeof err);
  flags_builder_free(b);
  if (rc) {
    /* Keys are unique in the table, so only memory can fail here. */
    set_error(c, rc, "%s: compiling the set failed: %s", c->prefix, err);
    return rc;
  }
  c->st.invalid = invalid;
  c->st.n_flags = flags_set_count(s);
  publish(c, s);
  return 0;
}

static void report(keel_flag_cache *c, const struct changes *ch) {
  bool first = !c->loaded;
  c->loaded = true;
  if ((ch->n || first) && c->on_change && !c->closing)
    c->on_change(c, (const char *const *)ch->keys, ch->n, c->ud);
}

/* ---- applying events and snapshots ---------------------------------------
 */

static int apply_event(keel_flag_cache *c, const struct keel_event *ev,
                       struct changes *ch) {
  int err;
  char *key = flag_key(c, ev->kv.key, ev->kv.key_len, &err);
  if (!key) {
    if (err == -ENOMEM)
      return err;
    set_error(c, err, "%s: ignored a key that is not a flag key (%zu bytes)",
              c->prefix, ev->kv.key_len);
    return 0;
  }
  size_t pos;
  bool have = find(c->table, c->n, key, &pos);
  int rc = 0;
  if (ev->type == KEEL_EVENT_DELETE) {
    if (have) {
      rc = changes_add(ch, key);
      free(c->table[pos].key);
      free(c->table[pos].val);
      memmove(&c->table[pos], &c->table[pos + 1],
              (c->n - pos - 1) * sizeof *c->table);
      c->n--;
    }
  } else if (have) {
    if (!same_value(&c->table[pos], ev->kv.value, ev->kv.value_len)) {
      rc = entry_set_value(&c->table[pos], ev->kv.value, ev->kv.value_len);
      if (!rc)
        rc = changes_add(ch, key);
    }
  } else if (c->n >= MAX_ENTRIES) {
    set_error(c, KEEL_ELIMIT, "%s%s: skipped: the set has %u keys already",
              c->prefix, key, MAX_ENTRIES);
  } else {
    struct entry ne = {.key = key};
    if (c->n == c->cap) {
      size_t nc = c->cap ? c->cap * 2 : 16;
      nc = nc > MAX_ENTRIES ? MAX_ENTRIES : nc;
      struct entry *nt = realloc(c->table, nc * sizeof *nt);
      if (!nt) {
        free(key);
        return -ENOMEM;
      }
      c->table = nt;
      c->cap = nc;
    }
    rc = entry_set_value(&ne, ev->kv.value, ev->kv.value_len);
    if (!rc)
      rc = changes_add(ch, key);
    if (!rc) {
      memmove(&c->table[pos + 1], &c->table[pos],
              (c->n - pos) * sizeof *c->table);
      c->table[pos] = ne;
      c->n++;
      key = NULL; /* owned by the table */
    } else {
      free(ne.val);
    }
  }
  free(key);
  return rc;
}

int keel_flag_cache_apply_events(keel_flag_cache *c,
                                 const struct keel_event *events, size_t n,
                                 int64_t rev) {
  struct changes ch = {0};
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++)
    rc = apply_event(c, &events[i], &ch);
  if (!rc)
    rc = changes_finish(c, &ch);
  if (!rc && ch.n)
    rc = rebuild(c, &ch);
  if (rc) {
    /* Out of memory mid-batch: the table and the set may now disagree.
     * A full re-read restores the invariant. */
    set_error(c, rc, "%s: applying a watch batch failed", c->prefix);
    changes_free(&ch);
    return rc;
  }
  c->revision = rev;
  report(c, &ch);
  changes_free(&ch);
  return 0;
}

int keel_flag_cache_apply_snapshot(keel_flag_cache *c,
                                   const struct keel_kv *kvs, size_t n,
                                   int64_t rev) {
  struct entry *t = calloc(n ? n : 1, sizeof *t);
  if (!t)
    return -ENOMEM;
  size_t tn = 0;
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    int err;
    char *key = flag_key(c, kvs[i].key, kvs[i].key_len, &err);
    if (!key) {
      if (err == -ENOMEM)
        rc = err;
      continue;
    }
    if (tn >= MAX_ENTRIES) {
      set_error(c, KEEL_ELIMIT, "%s%s: skipped: the set has %u keys already",
                c->prefix, key, MAX_ENTRIES);
      free(key);
      continue;
    }
    t[tn].key = key;
    rc = entry_set_value(&t[tn], kvs[i].value, kvs[i].value_len);
    tn++;
  }
  if (!rc) /* Range answers in key order; keep the table sorted anyway. */
    qsort(t, tn, sizeof *t, cmp_entry);
  struct changes ch = {0};
  /* Merge old and new: every key added, removed or with other bytes. */
  for (size_t i = 0, j = 0; !rc && (i < c->n || j < tn);) {
    int cmp = i == c->n ? 1 : j == tn ? -1 : strcmp(c->table[i].key, t[j].key);
    if (cmp < 0)
      rc = changes_add(&ch, c->table[i++].key);
    else if (cmp > 0)
      rc = changes_add(&ch, t[j++].key);
    else {
      const struct entry *o = &c->table[i++], *nw = &t[j++];
      bool same = o->len == nw->len && (o->val == NULL) == (nw->val == NULL) &&
                  (!o->val || memcmp(o->val, nw->val, o->len) == 0);
      if (!same)
        rc = changes_add(&ch, nw->key);
    }
  }
  if (rc) {
    entries_free(t, tn);
    changes_free(&ch);
    return rc;
  }
  entries_free(c->table, c->n);
  c->table = t;
  c->n = tn;
  c->cap = n ? n : 1;
  rc = changes_finish(c, &ch);
  if (!rc)
    rc = rebuild(c, &ch);
  if (rc) {
    changes_free(&ch);
    return rc;
  }
  c->revision = rev;
  report(c, &ch);
  changes_free(&ch);
  return 0;
}

/* ---- the loop: range, watch, retry ---------------------------------------
 */

static void start_load(keel_flag_cache *c);
static void maybe_free(keel_flag_cache *c);

static void on_timer(uv_timer_t *t) {
  keel_flag_cache *c = t->data;
  c->timer_active = false;
  if (!c->closing)
    start_load(c);
}

static void retry_later(keel_flag_cache *c) {
  if (c->closing || c->timer_active)
    return;
  c->timer_active = true;
  uv_timer_start(&c->timer, on_timer, c->retry_ms, 0);
}

static void on_watch(keel_watcher *w, const struct keel_watch_batch *b,
                     void *ud) {
  (void)w;
  keel_flag_cache *c = ud;
  if (b->err == 0) {
    if (keel_flag_cache_apply_events(c, b->events, b->n_events,
                                     b->header.revision) != 0) {
      /* The table may be behind the set: start over from a full read. */
      keel_watch_cancel(c->w);
      c->w = NULL;
      retry_later(c);
    }
    return;
  }
  c->w = NULL; /* the library frees it after this callback */
  if (c->closing)
    return;
  if (b->err == KEEL_ECOMPACTED) {
    set_error(c, b->err, "%s: watch compacted at %lld: reading the set again",
              c->prefix, (long long)b->compact_revision);
    start_load(c);
  } else {
    set_error(c, b->err, "%s: watch ended: %s", c->prefix, b->message);
    retry_later(c);
  }
}

static void on_range(const struct keel_result *res, const void *resp,
                     void *ud) {
  keel_flag_cache *c = ud;
  c->range_inflight = false;
  if (c->closing) {
    maybe_free(c);
    return;
  }
  if (res->err) {
    set_error(c, res->err, "%s: reading the set failed: %s", c->prefix,
              res->message);
    retry_later(c);
    return;
  }
  const struct keel_range_resp *r = resp;
  if (r->more)
    set_error(c, KEEL_ELIMIT, "%s: more than %u keys: the rest is ignored",
              c->prefix, MAX_ENTRIES);
  bool reload = c->loaded;
  int rc =
      keel_flag_cache_apply_snapshot(c, r->kvs, r->n_kvs, r->header.revision);
  if (rc) {
    set_error(c, rc, "%s: applying the set failed", c->prefix);
    retry_later(c);
    return;
  }
  if (reload)
    c->st.resyncs++;
  if (c->closing) /* on_change closed the cache; the timer's close frees it */
    return;
  struct keel_watch_req wr = {.key = (const uint8_t *)c->prefix,
                              .key_len = c->prefix_len,
                              .range_end = c->range_end,
                              .range_end_len = c->range_end_len,
                              .start_revision = c->revision + 1};
  rc = keel_watch_create(c->client, &wr, on_watch, c, &c->w);
  if (rc) {
    c->w = NULL;
    set_error(c, rc, "%s: starting the watch failed", c->prefix);
    if (rc != KEEL_ECANCELED)
      retry_later(c);
  }
}

static void start_load(keel_flag_cache *c) {
  struct keel_range_req r = {.key = (const uint8_t *)c->prefix,
                             .key_len = c->prefix_len,
                             .range_end = c->range_end,
                             .range_end_len = c->range_end_len,
                             .limit = MAX_ENTRIES};
  int rc = keel_range(c->client, &r, NULL, on_range, c);
  if (rc) {
    set_error(c, rc, "%s: reading the set failed", c->prefix);
    if (rc != KEEL_ECANCELED) /* a closing client: nothing more to do */
      retry_later(c);
    return;
  }
  c->range_inflight = true;
}

/* ---- open / close ---------------------------------------------------------
 */

static int cache_new(const char *set_name, keel_flag_change_cb on_change,
                     void *ud, keel_flag_cache **out) {
  if (!set_name || !out)
    return -EINVAL;
  size_t sl = strlen(set_name);
  if (sl == 0 || sl > FLAGS_MAX_KEY_BYTES || strchr(set_name, '/'))
    return -EINVAL;
  keel_flag_cache *c = calloc(1, sizeof *c);
  struct flags_builder *b = flags_builder_new();
  struct flags_set *empty = NULL;
  if (c)
    c->prefix = malloc(sl + 9);
  if (!c || !c->prefix || !b || flags_builder_build(b, &empty, NULL, 0)) {
    flags_builder_free(b);
    if (c)
      free(c->prefix);
    free(c);
    return -ENOMEM;
  }
  flags_builder_free(b);
  c->prefix_len = (size_t)sprintf(c->prefix, "/flags/%s/", set_name);
  c->range_end_len =
      keel_prefix_end((const uint8_t *)c->prefix, c->prefix_len, c->range_end);
  atomic_init(&c->cur, empty);
  atomic_init(&c->epoch, 0);
  atomic_init(&c->readers[0], 0);
  atomic_init(&c->readers[1], 0);
  c->on_change = on_change;
  c->ud = ud;
  c->retry_ms = 200;
  *out = c;
  return 0;
}

static void cache_free(keel_flag_cache *c) {
  flags_set_unref(atomic_load(&c->cur));
  entries_free(c->table, c->n);
  free(c->prefix);
  free(c);
}

int keel_flag_cache_new_detached(const char *set_name,
                                 keel_flag_change_cb on_change, void *ud,
                                 keel_flag_cache **out) {
  int rc = cache_new(set_name, on_change, ud, out);
  if (!rc)
    (*out)->detached = true;
  return rc;
}

void keel_flag_cache_free_detached(keel_flag_cache *c) {
  if (c) {
    if (!c->detached)
      abort(); /* a cache with a client closes with keel_flag_cache_close */
    cache_free(c);
  }
}

int keel_flag_cache_open(keel_client *client, const char *set_name,
                         const struct keel_flag_cache_opts *opts,
                         keel_flag_change_cb on_change, void *ud,
                         keel_flag_cache **out) {
  if (!client)
    return -EINVAL;
  keel_flag_cache *c;
  int rc = cache_new(set_name, on_change, ud, &c);
  if (rc)
    return rc;
  c->client = client;
  if (opts && opts->retry_ms)
    c->retry_ms = opts->retry_ms;
  struct keel_range_req r = {.key = (const uint8_t *)c->prefix,
                             .key_len = c->prefix_len,
                             .range_end = c->range_end,
                             .range_end_len = c->range_end_len,
                             .limit = MAX_ENTRIES};
  rc = keel_range(client, &r, NULL, on_range, c);
  if (rc) {
    cache_free(c);
    return rc;
  }
  c->range_inflight = true;
  /* The loop is the client's: libkeel's callbacks run on it. */
  c->loop = client->loop;
  uv_timer_init(c->loop, &c->timer);
  c->timer.data = c;
  *out = c;
  return 0;
}

static void on_timer_closed(uv_handle_t *h) {
  keel_flag_cache *c = h->data;
  c->timer_closed = true;
  maybe_free(c);
}

static void maybe_free(keel_flag_cache *c) {
  if (!c->closing || c->range_inflight || !c->timer_closed)
    return;
  void (*done)(void *) = c->done;
  void *dud = c->done_ud;
  cache_free(c);
  if (done)
    done(dud);
}

void keel_flag_cache_close(keel_flag_cache *c, void (*done)(void *ud),
                           void *ud) {
  if (!c)
    return;
  assert(!c->detached && !c->closing);
  c->closing = true;
  c->done = done;
  c->done_ud = ud;
  if (c->w) {
    keel_watch_cancel(c->w);
    c->w = NULL;
  }
  uv_timer_stop(&c->timer);
  c->timer_active = false;
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

int64_t keel_flag_cache_revision(const keel_flag_cache *c) {
  return c ? c->revision : 0;
}

void keel_flag_cache_stats(const keel_flag_cache *c,
                           struct keel_flag_cache_stats *out) {
  *out = c->st;
}

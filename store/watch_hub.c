/* watch_hub.c — matching committed events to watchers, per-stream delivery
 * queues with bounded backlogs, and catch-up from history in chunks.
 *
 * DESIGN (read this first)
 *
 * Revisions. hub->rev is the last revision published. A watcher's position
 * is next_rev: every matching event of a revision below next_rev has been
 * queued (or delivered, or filtered out). For a watcher in sync the position
 * is max(next_rev, hub->rev + 1): it takes live events as they come.
 *
 * Watcher states:
 *
 *     create, start <= hub->rev            create, start 0 or > hub->rev
 *               |                                     |
 *               v      a history chunk reaches        v
 *   +----> UNSYNCED ------- hub->rev -------------> SYNCED
 *   |           ^                                   | |
 *   |           +----- watch_hub_jump (snapshot) ---+ |
 *   | backlog                                         | a revision does
 *   | drained                                         | not fit the
 *   | to half                                         | backlog
 *   +----- VICTIM <-----------------------------------+
 *
 *   any state ---- client cancel, or history compacted / read error ---->
 *   CANCELED ---- its cancel batch is pulled ----> freed
 *
 *   SYNCED    in the match index and fed by watch_hub_publish().
 *   UNSYNCED  behind: next_rev <= hub->rev. watch_hub_catchup() reads
 *             [next_rev, hub->rev] from history in chunks. Not fed live.
 *   VICTIM    behind because its backlog (or its stream's) was full when a
 *             revision came; the revision was not queued and next_rev is
 *             that revision. It waits until the backlog drains to half before
 *             reading history (else the chunk would not fit either).
 *   CANCELED  out of the match index and the unsynced set; a cancel batch is
 *             queued last for it; the watcher is freed when that batch is
 *             pulled. A client cancel also drops its queued events.
 *
 * Invariants:
 *   I1 SYNCED => every matching event of revisions [start, hub->rev] is
 *      queued or delivered; UNSYNCED/VICTIM => the same for [start,
 *      next_rev) and next_rev <= hub->rev.
 *   I2 A watcher's queued nodes are in revision order and each holds all of
 *      its events of one revision (or is a progress/cancel marker); a
 *      revision is admitted to the queue whole or not at all.
 *   I3 Live and history never overlap: publish feeds only SYNCED watchers
 *      and only one revision at a time (hub->rev + 1, never a gap);
 *      catch-up reads up to hub->rev at most, and turns a watcher SYNCED
 *      exactly when its next_rev passes hub->rev. Since both run on the one
 *      loop thread, no revision can slip between "read up to hub->rev" and
 *      "take live from hub->rev + 1": that is the gap-free, duplicate-free
 *      join. (If the read were asynchronous the same holds: max_rev is fixed
 *      when the read starts and the state is decided when it ends.)
 *   I4 Batch revisions per watcher never go back: a node records the hub
 *      revision it was built at (live), its own revision (history), or
 *      hub->rev (progress), and nodes are queued in that order.
 *   I5 Memory: a watcher's backlog is at most its limit plus one revision
 *      (admitted only into an empty backlog, or read by catch-up into a
 *      backlog drained to half), and the same for a stream (of which there
 *      are at most max_streams); at most one progress node and one cancel
 *      node per watcher. Idle watchers cost
 *      their struct, a share of their key group, a slot in two hash tables
 *      and one in the unsynced reservation; the tables keep the size of the
 *      high-water mark of watchers, bounded by max_watchers.
 *   I6 unsynced[] holds exactly the UNSYNCED and VICTIM watchers;
 *      w->uidx is each one's index there.
 *
 * Matching. Watchers with the same key (or the same range) share a group;
 * exact-key groups sit in a hash table, range groups in a treap ordered by
 * (start, end) and augmented with the largest end in each subtree, which
 * answers "which ranges contain key k" by visiting only subtrees whose
 * largest end is above k. One event costs a hash probe plus O(log G) tree
 * steps plus the matching watchers.
 *
 * Sharing. An event matched by several watchers is copied once into a
 * reference-counted record; each watcher's queue node points at it.
 */
#include "watch_hub.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

enum wstate { W_SYNCED, W_UNSYNCED, W_VICTIM, W_CANCELED };

/* internal flag bits, above the public enum watch_flags */
#define WF_PUBLIC_MASK 0x1fu
#define WF_RANGE (1u << 5)        /* group is a struct wrange */
#define WF_DISCARD (1u << 6)      /* client canceled: drop queued events */
#define WF_EVENTS_SINCE (1u << 7) /* events queued since the last tick */
#define WF_PROGRESS_Q (1u << 8)   /* a progress node is queued */
#define WF_CANCEL_NOMEM (1u << 9) /* canceled, but no node: report at pull */

struct wev {
  uint32_t refs;
  uint32_t alloc; /* bytes allocated for this record */
  struct store_event ev;
  uint8_t data[];
};

struct watcher;

/* Exact-key group. */
struct wgroup {
  struct wgroup *hnext;
  struct watcher *head;
  uint32_t hash;
  uint32_t key_len;
  uint8_t key[];
};

/* Range group: [key, end) or [key, +inf) when inf. */
struct wrange {
  struct wrange *left, *right;
  struct wrange *maxg; /* node with the largest end in this subtree */
  struct watcher *head;
  uint32_t prio;
  uint32_t key_len;
  uint32_t end_len;
  uint8_t inf;
  uint8_t data[]; /* key, then end */
};

/* 72 bytes on LP64: kept small because idle watchers are the common case. */
struct watcher {
  struct watch_stream *stream;
  void *group; /* struct wgroup or struct wrange (WF_RANGE) */
  struct watcher *gnext, *gprev;
  int64_t id;
  int64_t next_rev;
  struct wnode *open; /* node being filled during one publish */
  uint32_t backlog_bytes;
  uint32_t backlog_events;
  uint32_t uidx;  /* index in hub->unsynced (I6) */
  uint16_t flags; /* enum watch_flags | WF_* */
  uint8_t state;
};

enum wnode_kind { N_EVENTS, N_PROGRESS, N_CANCEL };

struct wnode {
  struct wnode *next;
  struct watcher *w;
  int64_t rev;     /* batch revision (I4) */
  int64_t compact; /* N_CANCEL */
  char *reason;    /* N_CANCEL: copied, owned */
  uint32_t bytes;  /* backlog accounting */
  uint32_t n, cap; /* events */
  uint32_t off;    /* events already handed out as fragments */
  uint8_t kind;
  struct wev *ev[];
};

struct watch_stream {
  struct watch_hub *hub;
  struct watch_stream *next, *prev; /* hub->streams */
  watch_ready_fn ready;
  void *ready_arg;
  struct wnode *head, *tail;
  struct wnode *held; /* consumed by the last pull; freed at the next */
  size_t backlog_bytes;
  size_t backlog_events;
  size_t n_unsynced;
  int progress_req;
  size_t n_cancel_nomem; /* watchers with WF_CANCEL_NOMEM */
  /* watch id -> watcher, open addressing with linear probing */
  struct watcher **ids;
  size_t ids_cap, n_watchers;
  int64_t next_id;
  struct store_event *scratch;
  size_t scratch_cap;
  char *held_reason;
};

struct watch_hub {
  struct watch_hub_config cfg;
  int64_t rev;
  struct watch_stream *streams;
  size_t n_streams, n_watchers;
  /* exact-key groups */
  struct wgroup **buckets;
  size_t n_buckets, n_groups;
  /* range groups */
  struct wrange *root;
  uint64_t prng;
  /* UNSYNCED and VICTIM watchers (I6) */
  struct watcher **unsynced;
  size_t n_unsynced, unsynced_cap, cursor;
  /* watchers touched by the revision being published */
  struct watcher **touched;
  size_t n_touched, touched_cap;
  size_t bytes_now, bytes_peak;
  uint64_t victimized, history_reads, index_steps;
};

/* ---- allocation with accounting -------------------------------------- */

static int fail_injected(struct watch_hub *h, size_t n) {
  return h->cfg.alloc_fail && h->cfg.alloc_fail(h->cfg.alloc_fail_arg, n);
}

static void *hub_alloc(struct watch_hub *h, size_t n) {
  void *p = fail_injected(h, n) ? NULL : malloc(n);
  if (p) {
    h->bytes_now += n;
    if (h->bytes_now > h->bytes_peak)
      h->bytes_peak = h->bytes_now;
  }
  return p;
}

static void *hub_calloc(struct watch_hub *h, size_t n) {
  void *p = hub_alloc(h, n);
  if (p)
    memset(p, 0, n);
  return p;
}

static void hub_free(struct watch_hub *h, void *p, size_t n) {
  if (!p)
    return;
  assert(h->bytes_now >= n);
  h->bytes_now -= n;
  free(p);
}

static void *hub_realloc(struct watch_hub *h, void *p, size_t old, size_t n) {
  void *q = fail_injected(h, n) ? NULL : realloc(p, n);
  if (q) {
    h->bytes_now = h->bytes_now - old + n;
    if (h->bytes_now > h->bytes_peak)
      h->bytes_peak = h->bytes_now;
  }
  return q;
}

/* ---- byte strings ---------------------------------------------------- */

static int bcmp_(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t m = an < bn ? an : bn;
  int c = m ? memcmp(a, b, m) : 0;
  if (c)
    return c;
  return an < bn ? -1 : an > bn;
}

static uint32_t hash_key(const uint8_t *k, size_t n) {
  uint64_t x = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    x ^= k[i];
    x *= 1099511628211ull;
  }
  return (uint32_t)(x ^ (x >> 32));
}

static uint32_t prng_next(struct watch_hub *h) {
  uint64_t z = (h->prng += 0x9e3779b97f4a7c15ull); /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (uint32_t)(z ^ (z >> 31));
}

/* ---- events ---------------------------------------------------------- */

/* What one event counts against a backlog, and against a batch budget. */
static size_t ev_cost(const struct store_event *e, int with_prev) {
  size_t c = 32 + e->kv.key_len + e->kv.value_len;
  if (with_prev && e->has_prev)
    c += e->prev_kv.key_len + e->prev_kv.value_len;
  return c;
}

static struct wev *wev_copy(struct watch_hub *h, const struct store_event *e) {
  size_t n = e->kv.key_len + e->kv.value_len;
  if (e->has_prev)
    n += e->prev_kv.key_len + e->prev_kv.value_len;
  size_t alloc = sizeof(struct wev) + n;
  if (alloc > UINT32_MAX)
    return NULL;
  struct wev *r = hub_alloc(h, alloc);
  if (!r)
    return NULL;
  r->refs = 0;
  r->alloc = (uint32_t)alloc;
  r->ev = *e;
  uint8_t *p = r->data;
#define COPY(field, len)                                                       \
  do {                                                                         \
    if (len)                                                                   \
      memcpy(p, field, len);                                                   \
    field = p;                                                                 \
    p += len;                                                                  \
  } while (0)
  COPY(r->ev.kv.key, e->kv.key_len);
  COPY(r->ev.kv.value, e->kv.value_len);
  if (e->has_prev) {
    COPY(r->ev.prev_kv.key, e->prev_kv.key_len);
    COPY(r->ev.prev_kv.value, e->prev_kv.value_len);
  } else {
    memset(&r->ev.prev_kv, 0, sizeof r->ev.prev_kv);
  }
#undef COPY
  return r;
}

static void wev_unref(struct watch_hub *h, struct wev *r) {
  assert(r->refs > 0);
  if (--r->refs == 0)
    hub_free(h, r, r->alloc);
}

/* ---- groups: exact keys ---------------------------------------------- */

static int buckets_grow(struct watch_hub *h) {
  size_t nb = h->n_buckets ? h->n_buckets * 2 : 64;
  struct wgroup **b = hub_calloc(h, nb * sizeof *b);
  if (!b)
    return -ENOMEM;
  for (size_t i = 0; i < h->n_buckets; i++) {
    struct wgroup *g = h->buckets[i], *next;
    for (; g; g = next) {
      next = g->hnext;
      g->hnext = b[g->hash & (nb - 1)];
      b[g->hash & (nb - 1)] = g;
    }
  }
  hub_free(h, h->buckets, h->n_buckets * sizeof *h->buckets);
  h->buckets = b;
  h->n_buckets = nb;
  return 0;
}

static struct wgroup *exact_find(struct watch_hub *h, const uint8_t *k,
                                 size_t n, uint32_t hash) {
  if (!h->n_buckets)
    return NULL;
  struct wgroup *g = h->buckets[hash & (h->n_buckets - 1)];
  for (; g; g = g->hnext, h->index_steps++)
    if (g->hash == hash && g->key_len == n && !memcmp(g->key, k, n))
      return g;
  return NULL;
}

static struct wgroup *exact_get(struct watch_hub *h, const uint8_t *k,
                                size_t n) {
  uint32_t hash = hash_key(k, n);
  struct wgroup *g = exact_find(h, k, n, hash);
  if (g)
    return g;
  if (h->n_groups >= h->n_buckets && buckets_grow(h) < 0)
    return NULL;
  g = hub_alloc(h, sizeof *g + n);
  if (!g)
    return NULL;
  g->head = NULL;
  g->hash = hash;
  g->key_len = (uint32_t)n;
  if (n)
    memcpy(g->key, k, n);
  size_t b = hash & (h->n_buckets - 1);
  g->hnext = h->buckets[b];
  h->buckets[b] = g;
  h->n_groups++;
  return g;
}

static void exact_drop(struct watch_hub *h, struct wgroup *g) {
  struct wgroup **pp = &h->buckets[g->hash & (h->n_buckets - 1)];
  while (*pp != g)
    pp = &(*pp)->hnext;
  *pp = g->hnext;
  h->n_groups--;
  hub_free(h, g, sizeof *g + g->key_len);
}

/* ---- groups: ranges (augmented treap) -------------------------------- */

static const uint8_t *rkey(const struct wrange *r) {
  return r->data;
}
static const uint8_t *rend(const struct wrange *r) {
  return r->data + r->key_len;
}

/* Compares the ends of two ranges; +inf is largest. */
static int end_cmp(const struct wrange *a, const struct wrange *b) {
  if (a->inf || b->inf)
    return (int)a->inf - (int)b->inf;
  return bcmp_(rend(a), a->end_len, rend(b), b->end_len);
}

/* Orders ranges by (start, end). */
static int range_cmp(const struct wrange *a, const struct wrange *b) {
  int c = bcmp_(rkey(a), a->key_len, rkey(b), b->key_len);
  return c ? c : end_cmp(a, b);
}

/* Is key < end(r)? */
static int end_above(const struct wrange *r, const uint8_t *k, size_t n) {
  return r->inf || bcmp_(k, n, rend(r), r->end_len) < 0;
}

static void fix_max(struct wrange *n) {
  struct wrange *m = n;
  if (n->left && end_cmp(n->left->maxg, m) > 0)
    m = n->left->maxg;
  if (n->right && end_cmp(n->right->maxg, m) > 0)
    m = n->right->maxg;
  n->maxg = m;
}

static struct wrange *rot_right(struct wrange *n) {
  struct wrange *l = n->left;
  n->left = l->right;
  l->right = n;
  fix_max(n);
  fix_max(l);
  return l;
}

static struct wrange *rot_left(struct wrange *n) {
  struct wrange *r = n->right;
  n->right = r->left;
  r->left = n;
  fix_max(n);
  fix_max(r);
  return r;
}

/* Inserts `x` (not present) below `n`; returns the new subtree root. */
static struct wrange *treap_insert(struct wrange *n, struct wrange *x) {
  if (!n)
    return x;
  if (range_cmp(x, n) < 0) {
    n->left = treap_insert(n->left, x);
    if (n->left->prio > n->prio)
      return rot_right(n);
  } else {
    n->right = treap_insert(n->right, x);
    if (n->right->prio > n->prio)
      return rot_left(n);
  }
  fix_max(n);
  return n;
}

static struct wrange *treap_remove(struct wrange *n, struct wrange *x) {
  assert(n);
  if (n == x) {
    if (!n->left)
      return n->right;
    if (!n->right)
      return n->left;
    if (n->left->prio > n->right->prio) {
      n = rot_right(n);
      n->right = treap_remove(n->right, x);
    } else {
      n = rot_left(n);
      n->left = treap_remove(n->left, x);
    }
  } else if (range_cmp(x, n) < 0) {
    n->left = treap_remove(n->left, x);
  } else {
    n->right = treap_remove(n->right, x);
  }
  fix_max(n);
  return n;
}

static struct wrange *treap_find(struct wrange *n, const struct wrange *x) {
  while (n) {
    int c = range_cmp(x, n);
    if (!c)
      return n;
    n = c < 0 ? n->left : n->right;
  }
  return NULL;
}

static struct wrange *range_get(struct watch_hub *h, const uint8_t *k,
                                size_t kn, const uint8_t *e, size_t en,
                                int inf) {
  struct wrange *x = hub_alloc(h, sizeof *x + kn + en);
  if (!x)
    return NULL;
  memset(x, 0, sizeof *x);
  x->key_len = (uint32_t)kn;
  x->end_len = (uint32_t)en;
  x->inf = (uint8_t)inf;
  if (kn)
    memcpy(x->data, k, kn);
  if (en)
    memcpy(x->data + kn, e, en);
  struct wrange *old = treap_find(h->root, x);
  if (old) {
    hub_free(h, x, sizeof *x + kn + en);
    return old;
  }
  x->prio = prng_next(h);
  x->maxg = x;
  h->root = treap_insert(h->root, x);
  return x;
}

static void range_drop(struct watch_hub *h, struct wrange *r) {
  h->root = treap_remove(h->root, r);
  hub_free(h, r, sizeof *r + r->key_len + r->end_len);
}

/* ---- unsynced set (I6) ----------------------------------------------- */

/* Room for `n` entries. Reserved for every watcher at creation, so that
 * falling behind (inside a publish) never needs memory. */
static int unsynced_reserve(struct watch_hub *h, size_t n) {
  if (n <= h->unsynced_cap)
    return 0;
  size_t nc = h->unsynced_cap ? h->unsynced_cap : 16;
  while (nc < n)
    nc *= 2;
  struct watcher **u =
      hub_realloc(h, h->unsynced, h->unsynced_cap * sizeof *u, nc * sizeof *u);
  if (!u)
    return -ENOMEM;
  h->unsynced = u;
  h->unsynced_cap = nc;
  return 0;
}

static void unsynced_add(struct watch_hub *h, struct watcher *w) {
  assert(h->n_unsynced < h->unsynced_cap);
  w->uidx = (uint32_t)h->n_unsynced;
  h->unsynced[h->n_unsynced++] = w;
  w->stream->n_unsynced++;
}

static void unsynced_del(struct watch_hub *h, struct watcher *w) {
  assert(w->uidx < h->n_unsynced && h->unsynced[w->uidx] == w);
  struct watcher *last = h->unsynced[--h->n_unsynced];
  h->unsynced[w->uidx] = last;
  last->uidx = w->uidx;
  w->stream->n_unsynced--;
}

/* ---- stream id table ------------------------------------------------- */

static size_t id_slot(const struct watch_stream *s, int64_t id) {
  uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ull;
  return (size_t)(x >> 17) & (s->ids_cap - 1);
}

static struct watcher **id_find(struct watch_stream *s, int64_t id) {
  if (!s->ids_cap)
    return NULL;
  for (size_t i = id_slot(s, id);; i = (i + 1) & (s->ids_cap - 1)) {
    if (!s->ids[i])
      return NULL;
    if (s->ids[i]->id == id)
      return &s->ids[i];
  }
}

static void id_put_raw(struct watcher **t, size_t cap, struct watcher *w,
                       size_t slot) {
  for (size_t i = slot;; i = (i + 1) & (cap - 1))
    if (!t[i]) {
      t[i] = w;
      return;
    }
}

static int id_put(struct watch_stream *s, struct watcher *w) {
  struct watch_hub *h = s->hub;
  if ((s->n_watchers + 1) * 4 > s->ids_cap * 3) {
    size_t nc = s->ids_cap ? s->ids_cap * 2 : 8;
    struct watcher **t = hub_calloc(h, nc * sizeof *t);
    if (!t)
      return -ENOMEM;
    size_t oc = s->ids_cap;
    struct watcher **old = s->ids;
    s->ids = t;
    s->ids_cap = nc;
    for (size_t i = 0; i < oc; i++)
      if (old[i])
        id_put_raw(t, nc, old[i], id_slot(s, old[i]->id));
    hub_free(h, old, oc * sizeof *old);
  }
  id_put_raw(s->ids, s->ids_cap, w, id_slot(s, w->id));
  s->n_watchers++;
  return 0;
}

/* Backward-shift deletion keeps probe sequences intact without tombstones. */
static void id_del(struct watch_stream *s, struct watcher *w) {
  struct watcher **p = id_find(s, w->id);
  assert(p && *p == w);
  size_t mask = s->ids_cap - 1, i = (size_t)(p - s->ids), j = i;
  s->ids[i] = NULL;
  for (;;) {
    j = (j + 1) & mask;
    if (!s->ids[j])
      break;
    size_t home = id_slot(s, s->ids[j]->id);
    /* move s->ids[j] into the hole at i unless its home lies in (i, j] */
    int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
    if (!stays) {
      s->ids[i] = s->ids[j];
      s->ids[j] = NULL;
      i = j;
    }
  }
  s->n_watchers--;
}

/* ---- queue ----------------------------------------------------------- */

/* Limits are at most UINT32_MAX / 2 (watch_hub_new), so a backlog within a
 * limit plus one node stays below UINT32_MAX. */
#define NODE_BYTES_MAX (UINT32_MAX / 4)

static size_t node_size(uint32_t cap) {
  return sizeof(struct wnode) + (size_t)cap * sizeof(struct wev *);
}

static struct wnode *node_new(struct watch_hub *h, struct watcher *w,
                              enum wnode_kind kind, uint32_t cap) {
  struct wnode *n = hub_alloc(h, node_size(cap));
  if (!n)
    return NULL;
  memset(n, 0, sizeof *n);
  n->w = w;
  n->kind = (uint8_t)kind;
  n->cap = cap;
  return n;
}

static void node_free(struct watch_hub *h, struct wnode *n) {
  for (uint32_t i = 0; i < n->n; i++)
    wev_unref(h, n->ev[i]);
  if (n->reason)
    hub_free(h, n->reason, strlen(n->reason) + 1);
  hub_free(h, n, node_size(n->cap));
}

/* Appends an event reference, growing the node; 0 or -ENOMEM. */
static int node_add(struct watch_hub *h, struct wnode **np, struct wev *e,
                    size_t cost) {
  struct wnode *n = *np;
  if (n->n == n->cap) {
    uint32_t nc = n->cap ? n->cap * 2 : 1;
    n = hub_realloc(h, n, node_size(n->cap), node_size(nc));
    if (!n)
      return -ENOMEM;
    n->cap = nc;
    *np = n;
  }
  e->refs++;
  n->ev[n->n++] = e;
  /* Saturate: a giant revision counts as "more than any limit", which is
   * all the backlog needs to know, and the 32-bit counters cannot wrap. */
  if (cost > NODE_BYTES_MAX - n->bytes)
    n->bytes = NODE_BYTES_MAX;
  else
    n->bytes += (uint32_t)cost;
  return 0;
}

static void enqueue(struct watch_stream *s, struct wnode *n) {
  struct watcher *w = n->w;
  int was_empty = s->head == NULL;
  n->next = NULL;
  if (s->tail)
    s->tail->next = n;
  else
    s->head = n;
  s->tail = n;
  w->backlog_bytes += n->bytes;
  w->backlog_events += n->n;
  s->backlog_bytes += n->bytes;
  s->backlog_events += n->n;
  if (n->n)
    w->flags |= WF_EVENTS_SINCE;
  if (was_empty && s->ready)
    s->ready(s->ready_arg, s);
}

/* Would a node of `bytes`/`events` fit the watcher's and stream's backlog?
 * An empty backlog takes anything (one revision may exceed a limit). */
static int fits(const struct watch_hub *h, const struct watcher *w,
                size_t bytes, size_t events) {
  const struct watch_stream *s = w->stream;
  const struct watch_hub_config *c = &h->cfg;
  int w_ok = w->backlog_events == 0 ||
             (w->backlog_bytes + bytes <= c->watcher_backlog_bytes &&
              w->backlog_events + events <= c->watcher_backlog_events);
  int s_ok = s->backlog_events == 0 ||
             (s->backlog_bytes + bytes <= c->stream_backlog_bytes &&
              s->backlog_events + events <= c->stream_backlog_events);
  return w_ok && s_ok;
}

/* May a behind watcher read history now? Only once both backlogs drained to
 * half, so a chunk has room (and a victim does not flap). */
static int drained(const struct watch_hub *h, const struct watcher *w) {
  const struct watch_stream *s = w->stream;
  const struct watch_hub_config *c = &h->cfg;
  return w->backlog_bytes <= c->watcher_backlog_bytes / 2 &&
         w->backlog_events <= c->watcher_backlog_events / 2 &&
         s->backlog_bytes <= c->stream_backlog_bytes / 2 &&
         s->backlog_events <= c->stream_backlog_events / 2;
}

static void maybe_progress_ready(struct watch_stream *s) {
  if (s->progress_req && s->n_unsynced == 0 && !s->head && s->ready)
    s->ready(s->ready_arg, s);
}

/* ---- watcher lifecycle ----------------------------------------------- */

static const uint8_t *w_key(const struct watcher *w, size_t *n) {
  if (w->flags & WF_RANGE) {
    const struct wrange *r = w->group;
    *n = r->key_len;
    return rkey(r);
  }
  const struct wgroup *g = w->group;
  *n = g->key_len;
  return g->key;
}

/* Does the watcher's key range contain k? (History events are checked; the
 * index already guarantees it for live ones.) */
static int w_contains(const struct watcher *w, const uint8_t *k, size_t n) {
  if (w->flags & WF_RANGE) {
    const struct wrange *r = w->group;
    return bcmp_(rkey(r), r->key_len, k, n) <= 0 && end_above(r, k, n);
  }
  const struct wgroup *g = w->group;
  return g->key_len == n && (n == 0 || !memcmp(g->key, k, n));
}

static void group_unlink(struct watch_hub *h, struct watcher *w) {
  struct watcher **headp = (w->flags & WF_RANGE)
                               ? &((struct wrange *)w->group)->head
                               : &((struct wgroup *)w->group)->head;
  if (w->gprev)
    w->gprev->gnext = w->gnext;
  else
    *headp = w->gnext;
  if (w->gnext)
    w->gnext->gprev = w->gprev;
  w->gnext = w->gprev = NULL;
  if (!*headp) {
    if (w->flags & WF_RANGE)
      range_drop(h, w->group);
    else
      exact_drop(h, w->group);
  }
  w->group = NULL;
}

/* Takes the watcher out of matching and catch-up and queues its cancel
 * batch. The key group goes, so the key is no longer needed. */
static void cancel_watcher(struct watch_hub *h, struct watcher *w,
                           int64_t compact, const char *reason, int discard) {
  struct watch_stream *s = w->stream;
  assert(w->state != W_CANCELED);
  if (w->state == W_UNSYNCED || w->state == W_VICTIM)
    unsynced_del(h, w);
  group_unlink(h, w);
  w->state = W_CANCELED;
  if (discard)
    w->flags |= WF_DISCARD;
  /* The cancel node is the one allocation a cancel needs; without memory the
   * watcher still leaves the index, and the node is made at pull time. */
  struct wnode *n = node_new(h, w, N_CANCEL, 0);
  assert(!w->open); /* never canceled in the middle of a publish */
  if (n) {
    n->rev = h->rev;
    n->compact = compact;
    if (reason) {
      size_t len = strlen(reason);
      if (len > 255)
        len = 255;
      n->reason = hub_alloc(h, len + 1);
      if (n->reason) {
        memcpy(n->reason, reason, len);
        n->reason[len] = 0;
      }
    }
    enqueue(s, n);
  } else {
    /* out of memory: remember the cancel in the watcher itself */
    w->next_rev = compact;
    w->flags |= WF_CANCEL_NOMEM;
    s->n_cancel_nomem++;
    if (!s->head && s->ready)
      s->ready(s->ready_arg, s);
  }
  maybe_progress_ready(s);
}

static void watcher_free(struct watch_hub *h, struct watcher *w) {
  hub_free(h, w, sizeof *w);
  h->n_watchers--;
}

/* ---- hub ------------------------------------------------------------- */

void watch_hub_config_init(struct watch_hub_config *c) {
  memset(c, 0, sizeof *c);
  c->max_streams = 10000;
  c->max_watchers = 1000000;
  c->max_watchers_per_stream = 100000;
  c->max_key_len = 64 * 1024;
  c->watcher_backlog_bytes = 1 << 20;
  c->watcher_backlog_events = 4096;
  c->stream_backlog_bytes = 8 << 20;
  c->stream_backlog_events = 32768;
  c->max_batch_events = 1000;
}

int watch_hub_new(const struct watch_hub_config *c, struct watch_hub **out) {
  if (!c->read_history || c->current_rev < 0 || !c->max_streams ||
      !c->max_watchers || !c->max_watchers_per_stream || !c->max_key_len ||
      !c->watcher_backlog_bytes || !c->watcher_backlog_events ||
      !c->stream_backlog_bytes || !c->stream_backlog_events ||
      !c->max_batch_events || c->watcher_backlog_bytes > UINT32_MAX / 2 ||
      c->watcher_backlog_events > UINT32_MAX / 2 ||
      c->max_key_len > UINT32_MAX / 4)
    return -EINVAL;
  struct watch_hub *h = calloc(1, sizeof *h);
  if (!h)
    return -ENOMEM;
  h->cfg = *c;
  h->rev = c->current_rev;
  h->prng = 0x6b65656c; /* "keel": deterministic treap shapes */
  h->bytes_now = h->bytes_peak = sizeof *h;
  *out = h;
  return 0;
}

void watch_hub_free(struct watch_hub *h) {
  if (!h)
    return;
  assert(!h->streams && "close every stream before freeing the hub");
  hub_free(h, h->buckets, h->n_buckets * sizeof *h->buckets);
  hub_free(h, h->unsynced, h->unsynced_cap * sizeof *h->unsynced);
  hub_free(h, h->touched, h->touched_cap * sizeof *h->touched);
  assert(h->bytes_now == sizeof *h);
  free(h);
}

int64_t watch_hub_revision(const struct watch_hub *h) {
  return h->rev;
}

size_t watch_hub_unsynced(const struct watch_hub *h) {
  return h->n_unsynced;
}

void watch_hub_stats(const struct watch_hub *h, struct watch_hub_stats *st) {
  st->streams = h->n_streams;
  st->watchers = h->n_watchers;
  st->unsynced = h->n_unsynced;
  st->bytes_now = h->bytes_now;
  st->bytes_peak = h->bytes_peak;
  st->victimized = h->victimized;
  st->history_reads = h->history_reads;
  st->index_steps = h->index_steps;
}

/* Fell behind at revision `rev` (not queued): catch up from history later. */
static void make_victim(struct watch_hub *h, struct watcher *w, int64_t rev) {
  assert(w->state == W_SYNCED);
  w->next_rev = rev;
  unsynced_add(h, w);
  w->state = W_VICTIM;
  h->victimized++;
}

static int touch(struct watch_hub *h, struct watcher *w) {
  if (h->n_touched == h->touched_cap) {
    size_t nc = h->touched_cap ? h->touched_cap * 2 : 64;
    struct watcher **t =
        hub_realloc(h, h->touched, h->touched_cap * sizeof *t, nc * sizeof *t);
    if (!t)
      return -ENOMEM;
    h->touched = t;
    h->touched_cap = nc;
  }
  h->touched[h->n_touched++] = w;
  return 0;
}

/* Phase 1 of a publish: add one event to a matching watcher's open node. */
static void offer(struct watch_hub *h, struct watcher *w, int64_t rev,
                  const struct store_event *e, struct wev **shared) {
  if (w->state != W_SYNCED || rev < w->next_rev)
    return;
  if (e->type == STORE_EVENT_PUT && (w->flags & WATCH_NOPUT))
    return;
  if (e->type == STORE_EVENT_DELETE && (w->flags & WATCH_NODELETE))
    return;
  if (!*shared) {
    *shared = wev_copy(h, e);
    if (!*shared)
      goto nomem;
  }
  if (!w->open) {
    if (touch(h, w) < 0)
      goto nomem;
    w->open = node_new(h, w, N_EVENTS, 1);
    if (!w->open) {
      h->n_touched--;
      goto nomem;
    }
  }
  if (node_add(h, &w->open, *shared,
               ev_cost(e, (w->flags & WATCH_PREV_KV) != 0)) < 0)
    goto nomem;
  return;
nomem:
  /* Not queued: the revision will come from history instead. An open node
   * stays in touched[]; phase 2 sees a victim and frees it. */
  make_victim(h, w, rev);
}

static void offer_group(struct watch_hub *h, struct watcher *head, int64_t rev,
                        const struct store_event *e, struct wev **shared) {
  for (struct watcher *w = head, *next; w; w = next) {
    next = w->gnext; /* offer may cancel w on OOM, unlinking it */
    offer(h, w, rev, e, shared);
  }
}

/* Visits range groups containing key k: only subtrees whose largest end is
 * above k, and only left parts whose start is <= k. Iterative on the right
 * spine, recursive on the left (depth O(log G) expected). */
static void stab(struct watch_hub *h, struct wrange *n, const uint8_t *k,
                 size_t kn, int64_t rev, const struct store_event *e,
                 struct wev **shared) {
  while (n) {
    h->index_steps++;
    if (!end_above(n->maxg, k, kn))
      return;
    stab(h, n->left, k, kn, rev, e, shared);
    if (bcmp_(rkey(n), n->key_len, k, kn) > 0)
      return;
    struct wrange *right = n->right;
    if (end_above(n, k, kn))
      offer_group(h, n->head, rev, e, shared);
    n = right;
  }
}

int watch_hub_publish(struct watch_hub *h, int64_t rev,
                      const struct store_event *events, size_t n) {
  /* One by one: a skipped revision would be skipped by every watcher in
   * sync (I1); watch_hub_jump() is the way across a gap. */
  if (rev != h->rev + 1)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (events[i].kv.mod_revision != rev ||
        events[i].kv.key_len > h->cfg.max_key_len ||
        (events[i].type != STORE_EVENT_PUT &&
         events[i].type != STORE_EVENT_DELETE))
      return -EINVAL;
  h->n_touched = 0;
  for (size_t i = 0; i < n; i++) {
    const struct store_event *e = &events[i];
    struct wev *shared = NULL;
    if (h->n_groups) {
      struct wgroup *g = exact_find(h, e->kv.key, e->kv.key_len,
                                    hash_key(e->kv.key, e->kv.key_len));
      if (g)
        offer_group(h, g->head, rev, e, &shared);
    }
    stab(h, h->root, e->kv.key, e->kv.key_len, rev, e, &shared);
    if (shared && shared->refs == 0)
      hub_free(h, shared, shared->alloc);
  }
  /* Phase 2: admit each watcher's revision whole, or make it a victim (I2).
   * The hub's revision moves first so that I1 holds for the watchers that
   * do not fit: their next_rev (= rev) is then <= hub->rev. */
  h->rev = rev;
  for (size_t i = 0; i < h->n_touched; i++) {
    struct watcher *w = h->touched[i];
    struct wnode *node = w->open;
    w->open = NULL;
    if (!node)
      continue;
    if (w->state != W_SYNCED) {
      node_free(h, node);
      continue;
    }
    if (fits(h, w, node->bytes, node->n)) {
      node->rev = rev;
      enqueue(w->stream, node);
    } else {
      node_free(h, node);
      make_victim(h, w, rev);
    }
  }
  h->n_touched = 0;
  return 0;
}

int watch_hub_jump(struct watch_hub *h, int64_t rev) {
  if (rev < h->rev)
    return -EINVAL;
  for (struct watch_stream *s = h->streams; s; s = s->next)
    for (size_t i = 0; i < s->ids_cap; i++) {
      struct watcher *w = s->ids[i];
      if (!w || w->state != W_SYNCED)
        continue;
      if (w->next_rev <= h->rev)
        w->next_rev = h->rev + 1;
      if (w->next_rev <= rev) {
        unsynced_add(h, w); /* capacity reserved at creation */
        w->state = W_UNSYNCED;
      }
    }
  h->rev = rev;
  return 0;
}

/* ---- catch-up -------------------------------------------------------- */

struct catchup_ctx {
  struct watch_hub *h;
  struct watcher *w;
  const struct watch_history_req *req;
  struct wnode *cur; /* events of revision cur_rev, not yet queued */
  int64_t cur_rev;
  int64_t done_rev; /* every revision below it has been queued */
  size_t read;      /* events emitted, filtered ones included */
};

static void flush_rev(struct catchup_ctx *c) {
  if (c->cur) {
    c->cur->rev = c->cur_rev;
    enqueue(c->w->stream, c->cur);
    c->cur = NULL;
  }
  c->done_rev = c->cur_rev + 1;
}

static int catchup_emit(void *arg, const struct store_event *e) {
  struct catchup_ctx *c = arg;
  struct watch_hub *h = c->h;
  struct watcher *w = c->w;
  int64_t r = e->kv.mod_revision;
  if (r < c->req->from_rev || r > c->req->max_rev || r < c->cur_rev ||
      (e->type != STORE_EVENT_PUT && e->type != STORE_EVENT_DELETE))
    return -EINVAL; /* the reader broke its contract */
  if (r != c->cur_rev) {
    if (c->cur_rev)
      flush_rev(c);
    c->cur_rev = r;
  }
  if (!w_contains(w, e->kv.key, e->kv.key_len))
    return -EINVAL;
  c->read++;
  if (e->type == STORE_EVENT_PUT && (w->flags & WATCH_NOPUT))
    return 0;
  if (e->type == STORE_EVENT_DELETE && (w->flags & WATCH_NODELETE))
    return 0;
  struct wev *r_ev = wev_copy(h, e);
  if (!r_ev)
    return -ENOMEM;
  if (!c->cur) {
    c->cur = node_new(h, w, N_EVENTS, 4);
    if (!c->cur) {
      hub_free(h, r_ev, r_ev->alloc);
      return -ENOMEM;
    }
  }
  if (node_add(h, &c->cur, r_ev, ev_cost(e, (w->flags & WATCH_PREV_KV) != 0)) <
      0) {
    hub_free(h, r_ev, r_ev->alloc);
    return -ENOMEM;
  }
  return 0;
}

static void become_synced(struct watch_hub *h, struct watcher *w) {
  unsynced_del(h, w);
  w->state = W_SYNCED;
  maybe_progress_ready(w->stream);
}

/* One chunk for one watcher; returns the events read, filtered ones
 * included (for the caller's budget), or SIZE_MAX when the read ran out of
 * memory. */
static size_t catchup_one(struct watch_hub *h, struct watcher *w,
                          size_t max_events, size_t max_bytes) {
  assert(w->state == W_UNSYNCED);
  const struct watch_hub_config *cfg = &h->cfg;
  if (w->next_rev > h->rev) {
    become_synced(h, w);
    return 0;
  }
  size_t room_ev = cfg->watcher_backlog_events - w->backlog_events;
  size_t room_b = cfg->watcher_backlog_bytes - w->backlog_bytes;
  size_t s_room_ev = cfg->stream_backlog_events - w->stream->backlog_events;
  size_t s_room_b = cfg->stream_backlog_bytes - w->stream->backlog_bytes;
  if (s_room_ev < room_ev)
    room_ev = s_room_ev;
  if (s_room_b < room_b)
    room_b = s_room_b;
  struct watch_history_req req = {0};
  static const uint8_t zero = 0;
  req.key = w_key(w, &req.key_len);
  if (w->flags & WF_RANGE) {
    const struct wrange *r = w->group;
    if (r->inf) {
      req.range_end = &zero;
      req.range_end_len = 1;
    } else {
      req.range_end = rend(r);
      req.range_end_len = r->end_len;
    }
  }
  req.from_rev = w->next_rev;
  req.max_rev = h->rev;
  req.max_events = max_events < room_ev ? max_events : room_ev;
  req.max_bytes = max_bytes < room_b ? max_bytes : room_b;
  if (!req.max_events)
    req.max_events = 1;
  if (!req.max_bytes)
    req.max_bytes = 1;
  req.want_prev = (w->flags & WATCH_PREV_KV) != 0;

  struct catchup_ctx c = {h, w, &req, NULL, 0, req.from_rev, 0};
  int64_t next = 0, compact = 0;
  h->history_reads++;
  int rc = cfg->read_history(cfg->history_ctx, &req, catchup_emit, &c, &next,
                             &compact);
  if (rc == 0 &&
      (next <= req.from_rev || next > req.max_rev + 1 || next <= c.cur_rev))
    rc = -EINVAL; /* no progress, or past what it was asked */
  if (rc == 0) {
    flush_rev(&c);
    w->next_rev = next;
  } else {
    /* Keep only whole revisions (I2): the one being read is dropped and
     * will be read again. */
    if (c.cur)
      node_free(h, c.cur);
    w->next_rev = c.done_rev;
  }
  if (rc == KEEL_ECOMPACTED) {
    cancel_watcher(h, w, compact, keel_strerror(KEEL_ECOMPACTED), 0);
  } else if (rc == -ENOMEM) {
    return SIZE_MAX; /* under memory pressure: stop, try on a later call */
  } else if (rc < 0) {
    cancel_watcher(h, w, 0, keel_strerror(rc), 0);
  } else if (w->next_rev > h->rev) {
    become_synced(h, w);
  }
  return c.read ? c.read : 1; /* an empty chunk still costs a read */
}

size_t watch_hub_catchup(struct watch_hub *h, size_t max_events,
                         size_t max_bytes) {
  if (!max_events)
    max_events = 1;
  if (!max_bytes)
    max_bytes = 1;
  size_t spent = 0;
  size_t idle = 0; /* consecutive watchers that could not read */
  while (h->n_unsynced && spent < max_events && idle < h->n_unsynced) {
    if (h->cursor >= h->n_unsynced)
      h->cursor = 0;
    struct watcher *w = h->unsynced[h->cursor];
    if (w->state == W_VICTIM && drained(h, w))
      w->state = W_UNSYNCED;
    if (w->state != W_UNSYNCED || !drained(h, w)) {
      h->cursor++;
      idle++;
      continue;
    }
    idle = 0;
    size_t n = catchup_one(h, w, max_events - spent, max_bytes);
    if (n == SIZE_MAX)
      break;
    spent += n;
    /* round robin: whether w left the set (its slot now holds another
     * watcher) or not, move on so one watcher cannot starve the others */
    if (h->cursor < h->n_unsynced && h->unsynced[h->cursor] == w)
      h->cursor++;
  }
  return h->n_unsynced;
}

/* ---- progress -------------------------------------------------------- */

void watch_hub_progress_tick(struct watch_hub *h) {
  for (struct watch_stream *s = h->streams; s; s = s->next) {
    for (size_t i = 0; i < s->ids_cap; i++) {
      struct watcher *w = s->ids[i];
      if (!w || !(w->flags & WATCH_PROGRESS_NOTIFY) || w->state != W_SYNCED)
        continue;
      if (w->flags & WF_EVENTS_SINCE) {
        w->flags &= ~WF_EVENTS_SINCE;
        continue;
      }
      if ((w->flags & WF_PROGRESS_Q) || w->backlog_events)
        continue;
      struct wnode *n = node_new(h, w, N_PROGRESS, 0);
      if (!n)
        return; /* the next tick tries again */
      n->rev = h->rev;
      w->flags |= WF_PROGRESS_Q;
      enqueue(s, n);
    }
  }
}

void watch_stream_request_progress(struct watch_stream *s) {
  s->progress_req = 1;
  maybe_progress_ready(s);
}

/* ---- streams --------------------------------------------------------- */

int watch_stream_open(struct watch_hub *h, watch_ready_fn ready, void *arg,
                      struct watch_stream **out) {
  if (h->n_streams >= h->cfg.max_streams)
    return KEEL_ELIMIT;
  struct watch_stream *s = hub_calloc(h, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->hub = h;
  s->ready = ready;
  s->ready_arg = arg;
  s->next = h->streams;
  if (h->streams)
    h->streams->prev = s;
  h->streams = s;
  h->n_streams++;
  *out = s;
  return 0;
}

static void release_held(struct watch_stream *s) {
  struct watch_hub *h = s->hub;
  while (s->held) {
    struct wnode *n = s->held;
    s->held = n->next;
    node_free(h, n);
  }
}

void watch_stream_close(struct watch_stream *s) {
  struct watch_hub *h = s->hub;
  release_held(s);
  while (s->head) {
    struct wnode *n = s->head;
    s->head = n->next;
    node_free(h, n);
  }
  for (size_t i = 0; i < s->ids_cap; i++) {
    struct watcher *w = s->ids[i];
    if (!w)
      continue;
    if (w->state == W_UNSYNCED || w->state == W_VICTIM)
      unsynced_del(h, w);
    if (w->state != W_CANCELED)
      group_unlink(h, w);
    watcher_free(h, w);
  }
  hub_free(h, s->ids, s->ids_cap * sizeof *s->ids);
  hub_free(h, s->scratch, s->scratch_cap * sizeof *s->scratch);
  if (s->prev)
    s->prev->next = s->next;
  else
    h->streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  h->n_streams--;
  hub_free(h, s, sizeof *s);
}

size_t watch_stream_backlog_bytes(const struct watch_stream *s) {
  return s->backlog_bytes;
}

int watch_stream_watch(struct watch_stream *s, const struct watch_create *req,
                       int64_t *watch_id) {
  struct watch_hub *h = s->hub;
  if (req->start_rev < 0 || (req->flags & ~WF_PUBLIC_MASK) ||
      (req->watch_id < 0 && req->watch_id != WATCH_ID_AUTO) ||
      (req->key_len && !req->key) || (req->range_end_len && !req->range_end))
    return -EINVAL;
  if (req->key_len > h->cfg.max_key_len ||
      req->range_end_len > h->cfg.max_key_len)
    return KEEL_ETOOLARGE;
  int is_range = req->range_end_len > 0;
  int inf = req->range_end_len == 1 && req->range_end[0] == 0;
  if (is_range && !inf &&
      bcmp_(req->range_end, req->range_end_len, req->key, req->key_len) <= 0)
    return -EINVAL;
  if (h->n_watchers >= h->cfg.max_watchers ||
      s->n_watchers >= h->cfg.max_watchers_per_stream)
    return KEEL_ELIMIT;
  int64_t id = req->watch_id;
  if (id == WATCH_ID_AUTO) {
    while (id_find(s, s->next_id))
      s->next_id++;
    id = s->next_id++;
  } else if (id_find(s, id)) {
    return KEEL_EEXIST;
  }

  struct watcher *w = hub_calloc(h, sizeof *w);
  if (!w)
    return -ENOMEM;
  w->stream = s;
  w->id = id;
  w->flags = (uint16_t)(req->flags | (is_range ? WF_RANGE : 0));
  if (is_range)
    w->group = range_get(h, req->key, req->key_len, inf ? NULL : req->range_end,
                         inf ? 0 : req->range_end_len, inf);
  else
    w->group = exact_get(h, req->key, req->key_len);
  if (!w->group || unsynced_reserve(h, h->n_watchers + 1) < 0 ||
      id_put(s, w) < 0)
    goto nomem;
  if (req->start_rev == 0 || req->start_rev > h->rev) {
    w->state = W_SYNCED;
    w->next_rev = req->start_rev ? req->start_rev : h->rev + 1;
  } else {
    w->next_rev = req->start_rev;
    unsynced_add(h, w);
    w->state = W_UNSYNCED;
  }
  struct watcher **headp = is_range ? &((struct wrange *)w->group)->head
                                    : &((struct wgroup *)w->group)->head;
  w->gnext = *headp;
  if (*headp)
    (*headp)->gprev = w;
  *headp = w;
  h->n_watchers++;
  *watch_id = id;
  return 0;
nomem:
  if (w->group) {
    /* drop the group if it was created for this watcher alone */
    struct watcher **headp = is_range ? &((struct wrange *)w->group)->head
                                      : &((struct wgroup *)w->group)->head;
    if (!*headp) {
      if (is_range)
        range_drop(h, w->group);
      else
        exact_drop(h, w->group);
    }
  }
  hub_free(h, w, sizeof *w);
  return -ENOMEM;
}

int watch_stream_cancel(struct watch_stream *s, int64_t watch_id,
                        const char *reason) {
  struct watcher **p = id_find(s, watch_id);
  if (!p || (*p)->state == W_CANCELED)
    return KEEL_ENOTFOUND;
  cancel_watcher(s->hub, *p, 0, reason, 1);
  return 0;
}

/* ---- delivery -------------------------------------------------------- */

static int scratch_reserve(struct watch_stream *s, size_t n) {
  if (n <= s->scratch_cap)
    return 0;
  size_t nc = s->scratch_cap ? s->scratch_cap : 16;
  while (nc < n)
    nc *= 2;
  struct store_event *e = hub_realloc(
      s->hub, s->scratch, s->scratch_cap * sizeof *e, nc * sizeof *e);
  if (!e)
    return -ENOMEM;
  s->scratch = e;
  s->scratch_cap = nc;
  return 0;
}

/* Moves the head node to the held list and releases its backlog. */
static void pop_head(struct watch_stream *s) {
  struct wnode *n = s->head;
  struct watcher *w = n->w;
  s->head = n->next;
  if (!s->head)
    s->tail = NULL;
  assert(w->backlog_bytes >= n->bytes && w->backlog_events >= n->n);
  w->backlog_bytes -= n->bytes;
  w->backlog_events -= n->n;
  s->backlog_bytes -= n->bytes;
  s->backlog_events -= n->n;
  n->next = s->held;
  s->held = n;
}

static void copy_out(struct watch_stream *s, size_t at, const struct wnode *n,
                     uint32_t from, uint32_t to, int with_prev) {
  for (uint32_t i = from; i < to; i++) {
    struct store_event *e = &s->scratch[at++];
    *e = n->ev[i]->ev;
    if (!with_prev) {
      e->has_prev = 0;
      memset(&e->prev_kv, 0, sizeof e->prev_kv);
    }
  }
}

int watch_stream_next(struct watch_stream *s, size_t max_bytes,
                      struct watch_batch *out) {
  struct watch_hub *h = s->hub;
  release_held(s);
  memset(out, 0, sizeof *out);
  for (;;) {
    struct wnode *n = s->head;
    if (!n) {
      /* a cancel whose node could not be allocated (rare: scan) */
      for (size_t i = 0; s->n_cancel_nomem && i < s->ids_cap; i++) {
        struct watcher *w = s->ids[i];
        if (w && w->state == W_CANCELED && (w->flags & WF_CANCEL_NOMEM)) {
          s->n_cancel_nomem--;
          out->watch_id = w->id;
          out->revision = h->rev;
          out->canceled = 1;
          out->compact_revision = w->next_rev;
          id_del(s, w);
          watcher_free(h, w);
          return 1;
        }
      }
      if (s->progress_req && s->n_unsynced == 0) {
        s->progress_req = 0;
        out->watch_id = WATCH_ID_STREAM;
        out->revision = h->rev;
        out->progress = 1;
        return 1;
      }
      return 0;
    }
    struct watcher *w = n->w;
    if ((w->flags & WF_DISCARD) && n->kind != N_CANCEL) {
      pop_head(s);
      release_held(s);
      continue;
    }
    out->watch_id = w->id;
    out->revision = n->rev;
    if (n->kind == N_PROGRESS) {
      pop_head(s);
      w->flags &= ~WF_PROGRESS_Q;
      out->progress = 1;
      return 1;
    }
    if (n->kind == N_CANCEL) {
      pop_head(s);
      out->canceled = 1;
      out->compact_revision = n->compact;
      out->cancel_reason = n->reason;
      assert(w->backlog_events == 0); /* the cancel node is the last (I5) */
      id_del(s, w);
      watcher_free(h, w);
      n->w = NULL;
      return 1;
    }
    int with_prev = (w->flags & WATCH_PREV_KV) != 0;
    /* One revision bigger than the budget: fragments, if allowed. */
    if ((w->flags & WATCH_FRAGMENT) && (n->off || n->bytes > max_bytes)) {
      uint32_t i = n->off;
      size_t b = 0;
      do {
        b += ev_cost(&n->ev[i]->ev, with_prev);
        i++;
      } while (i < n->n && b + ev_cost(&n->ev[i]->ev, with_prev) <= max_bytes);
      if (scratch_reserve(s, i - n->off) < 0)
        return -ENOMEM;
      copy_out(s, 0, n, n->off, i, with_prev);
      out->events = s->scratch;
      out->n_events = i - n->off;
      if (i < n->n) {
        out->fragment = 1;
        n->off = i; /* the node stays at the head, alive */
      } else {
        pop_head(s);
      }
      return 1;
    }
    /* Whole revisions of this watcher, merged while within the budget. */
    size_t total = 0, bytes = 0;
    struct wnode *m = n;
    int64_t rev = n->rev;
    do {
      total += m->n;
      bytes += m->bytes;
      rev = m->rev;
      m = m->next;
    } while (m && m->w == w && m->kind == N_EVENTS &&
             bytes + m->bytes <= max_bytes &&
             total + m->n <= h->cfg.max_batch_events);
    if (scratch_reserve(s, total) < 0)
      return -ENOMEM;
    size_t at = 0;
    while (s->head != m) {
      struct wnode *x = s->head;
      copy_out(s, at, x, 0, x->n, with_prev);
      at += x->n;
      pop_head(s);
    }
    assert(at == total);
    out->events = s->scratch;
    out->n_events = total;
    out->revision = rev;
    return 1;
  }
}

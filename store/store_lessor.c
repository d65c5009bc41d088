/* store_lessor.c — lease deadlines: an open-addressing hash table from id
 * to slot, and a binary min-heap of slots ordered by their next event time
 * (deadline or retry time).
 *
 * Invariants: every live lease is in the table and in the heap exactly once
 * (heap_pos names its place); on a follower every heap key is INT64_MAX, so
 * nothing is reported. Checkpoints use a plain scan with a cursor (they are
 * due once per interval per lease, so a linear pass amortises well and keeps
 * one heap).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "store_lessor.h"

struct lease {
  int64_t id; /* 0: free slot */
  int64_t ttl_s;
  int64_t remaining_s; /* checkpointed, 0 if none */
  int64_t deadline_ms; /* INT64_MAX on a follower */
  int64_t when_ms;     /* heap key: deadline, or the retry time */
  int64_t next_cp_ms;
  size_t heap_pos;
};

struct store_lessor {
  struct store_lessor_options o;
  bool primary;
  struct lease *slots; /* slot storage, dense: [0, n) */
  size_t n, cap;
  size_t *table; /* open addressing: slot index + 1, 0 empty */
  size_t tcap;   /* power of two */
  size_t *heap;  /* slot indexes */
  size_t cp_cursor;
};

static uint64_t mix(int64_t id) {
  uint64_t x = (uint64_t)id;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

int store_lessor_create(const struct store_lessor_options *opts,
                        struct store_lessor **out) {
  struct store_lessor *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return -ENOMEM;
  if (opts)
    l->o = *opts;
  if (l->o.min_ttl_s <= 0)
    l->o.min_ttl_s = 1;
  if (l->o.checkpoint_interval_ms <= 0)
    l->o.checkpoint_interval_ms = 5 * 60 * 1000;
  if (l->o.expiry_retry_ms <= 0)
    l->o.expiry_retry_ms = 3000;
  if (l->o.max_leases == 0)
    l->o.max_leases = 1000000;
  *out = l;
  return 0;
}

void store_lessor_free(struct store_lessor *l) {
  if (l == NULL)
    return;
  free(l->slots);
  free(l->table);
  free(l->heap);
  free(l);
}

int64_t store_lessor_effective_ttl(const struct store_lessor *l,
                                   int64_t ttl_s) {
  return ttl_s < l->o.min_ttl_s ? l->o.min_ttl_s : ttl_s;
}

size_t store_lessor_count(const struct store_lessor *l) {
  return l->n;
}

bool store_lessor_is_primary(const struct store_lessor *l) {
  return l->primary;
}

/* --- table -------------------------------------------------------------- */

static size_t *tfind(const struct store_lessor *l, int64_t id) {
  if (l->tcap == 0)
    return NULL;
  size_t mask = l->tcap - 1;
  for (size_t i = mix(id) & mask;; i = (i + 1) & mask) {
    if (l->table[i] == 0)
      return &l->table[i];
    if (l->slots[l->table[i] - 1].id == id)
      return &l->table[i];
  }
}

static int trehash(struct store_lessor *l, size_t ncap) {
  size_t *t = calloc(ncap, sizeof(*t));
  if (t == NULL)
    return -ENOMEM;
  free(l->table);
  l->table = t;
  l->tcap = ncap;
  for (size_t s = 0; s < l->n; s++) {
    size_t *p = tfind(l, l->slots[s].id);
    *p = s + 1;
  }
  return 0;
}

/* Removes the table entry at p, re-inserting the cluster after it. */
static void tremove(struct store_lessor *l, size_t *p) {
  size_t mask = l->tcap - 1;
  size_t i = (size_t)(p - l->table);
  l->table[i] = 0;
  for (size_t j = (i + 1) & mask; l->table[j] != 0; j = (j + 1) & mask) {
    size_t v = l->table[j];
    l->table[j] = 0;
    *tfind(l, l->slots[v - 1].id) = v;
  }
}

/* --- heap ----------------------------------------------------------------- */

static void hswap(struct store_lessor *l, size_t a, size_t b) {
  size_t t = l->heap[a];
  l->heap[a] = l->heap[b];
  l->heap[b] = t;
  l->slots[l->heap[a]].heap_pos = a;
  l->slots[l->heap[b]].heap_pos = b;
}

static int64_t hkey(const struct store_lessor *l, size_t pos) {
  return l->slots[l->heap[pos]].when_ms;
}

static void hdown(struct store_lessor *l, size_t pos) {
  for (;;) {
    size_t c = 2 * pos + 1, m = pos;
    if (c < l->n && hkey(l, c) < hkey(l, m))
      m = c;
    if (c + 1 < l->n && hkey(l, c + 1) < hkey(l, m))
      m = c + 1;
    if (m == pos)
      break;
    hswap(l, pos, m);
    pos = m;
  }
}

static void hfix(struct store_lessor *l, size_t pos) {
  while (pos > 0 && hkey(l, (pos - 1) / 2) > hkey(l, pos)) {
    hswap(l, pos, (pos - 1) / 2);
    pos = (pos - 1) / 2;
  }
  hdown(l, pos);
}

static void set_deadline(struct store_lessor *l, struct lease *e, int64_t now,
                         int64_t extend_ms) {
  if (!l->primary) {
    e->deadline_ms = e->when_ms = INT64_MAX;
    return;
  }
  int64_t secs = e->remaining_s > 0 ? e->remaining_s : e->ttl_s;
  e->deadline_ms = now + secs * 1000 + extend_ms;
  e->when_ms = e->deadline_ms;
  e->next_cp_ms = now + l->o.checkpoint_interval_ms;
}

/* --- operations ------------------------------------------------------------
 */

int store_lessor_add(struct store_lessor *l, int64_t id, int64_t ttl_s,
                     int64_t remaining_s, int64_t now_ms) {
  if (id == 0 || ttl_s <= 0)
    return -EINVAL;
  if (l->n >= l->o.max_leases)
    return KEEL_ELIMIT;
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 64;
    struct lease *ns = realloc(l->slots, ncap * sizeof(*ns));
    if (ns == NULL)
      return -ENOMEM;
    l->slots = ns;
    size_t *nh = realloc(l->heap, ncap * sizeof(*nh));
    if (nh == NULL)
      return -ENOMEM;
    l->heap = nh;
    l->cap = ncap;
  }
  if ((l->n + 1) * 2 > l->tcap) {
    int rc = trehash(l, l->tcap ? l->tcap * 2 : 128);
    if (rc != 0)
      return rc;
  }
  size_t *p = tfind(l, id);
  if (*p != 0)
    return KEEL_ELEASEEXISTS;
  struct lease *e = &l->slots[l->n];
  memset(e, 0, sizeof(*e));
  e->id = id;
  e->ttl_s = store_lessor_effective_ttl(l, ttl_s);
  e->remaining_s = remaining_s > 0 ? remaining_s : 0;
  set_deadline(l, e, now_ms, 0);
  *p = l->n + 1;
  e->heap_pos = l->n;
  l->heap[l->n] = l->n;
  l->n++;
  hfix(l, e->heap_pos);
  return 0;
}

int store_lessor_revoke(struct store_lessor *l, int64_t id) {
  size_t *p = tfind(l, id);
  if (p == NULL || *p == 0)
    return KEEL_ELEASENOTFOUND;
  size_t s = *p - 1;
  /* out of the heap: move the last heap item into its place */
  size_t hp = l->slots[s].heap_pos;
  size_t last = l->n - 1;
  if (hp != last) {
    hswap(l, hp, last);
  }
  tremove(l, tfind(l, id));
  /* move the last slot into s (dense storage) */
  if (s != last) {
    l->slots[s] = l->slots[last];
    l->heap[l->slots[s].heap_pos] = s;
    *tfind(l, l->slots[s].id) = s + 1;
  }
  l->n--;
  if (hp < l->n)
    hfix(l, hp);
  if (l->cp_cursor > l->n)
    l->cp_cursor = 0;
  return 0;
}

static struct lease *get(const struct store_lessor *l, int64_t id) {
  size_t *p = tfind(l, id);
  if (p == NULL || *p == 0)
    return NULL;
  return &l->slots[*p - 1];
}

int store_lessor_renew(struct store_lessor *l, int64_t id, int64_t now_ms,
                       int64_t *ttl_s) {
  struct lease *e = get(l, id);
  if (e == NULL)
    return KEEL_ELEASENOTFOUND;
  if (!l->primary)
    return KEEL_ENOTLEADER;
  e->remaining_s = 0;
  set_deadline(l, e, now_ms, 0);
  hfix(l, e->heap_pos);
  *ttl_s = e->ttl_s;
  return 0;
}

int store_lessor_time_to_live(const struct store_lessor *l, int64_t id,
                              int64_t now_ms, int64_t *remaining_s,
                              int64_t *granted_s) {
  struct lease *e = get(l, id);
  if (e == NULL)
    return KEEL_ELEASENOTFOUND;
  *granted_s = e->ttl_s;
  if (e->deadline_ms == INT64_MAX) {
    *remaining_s = e->remaining_s > 0 ? e->remaining_s : e->ttl_s;
  } else {
    int64_t left = e->deadline_ms - now_ms;
    *remaining_s = left <= 0 ? 0 : (left + 999) / 1000;
  }
  return 0;
}

int store_lessor_checkpoint(struct store_lessor *l, int64_t id,
                            int64_t remaining_s) {
  struct lease *e = get(l, id);
  if (e == NULL)
    return KEEL_ELEASENOTFOUND;
  e->remaining_s = remaining_s > 0 ? remaining_s : 0;
  return 0;
}

void store_lessor_promote(struct store_lessor *l, int64_t now_ms,
                          int64_t extend_ms) {
  l->primary = true;
  for (size_t s = 0; s < l->n; s++)
    set_deadline(l, &l->slots[s], now_ms, extend_ms);
  for (size_t i = l->n / 2 + 1; i-- > 0;)
    if (i < l->n)
      hdown(l, i);
}

void store_lessor_demote(struct store_lessor *l) {
  l->primary = false;
  for (size_t s = 0; s < l->n; s++)
    l->slots[s].deadline_ms = l->slots[s].when_ms = INT64_MAX;
}

size_t store_lessor_expired(struct store_lessor *l, int64_t now_ms,
                            int64_t *ids, size_t max) {
  size_t k = 0;
  if (!l->primary)
    return 0;
  while (k < max && l->n > 0 && hkey(l, 0) <= now_ms) {
    struct lease *e = &l->slots[l->heap[0]];
    ids[k++] = e->id;
    e->when_ms = now_ms + l->o.expiry_retry_ms;
    hfix(l, 0);
  }
  return k;
}

size_t store_lessor_checkpoints(struct store_lessor *l, int64_t now_ms,
                                struct store_lessor_cp *out, size_t max) {
  size_t k = 0;
  if (!l->primary || l->n == 0)
    return 0;
  for (size_t seen = 0; seen < l->n && k < max; seen++) {
    if (l->cp_cursor >= l->n)
      l->cp_cursor = 0;
    struct lease *e = &l->slots[l->cp_cursor++];
    if (e->next_cp_ms > now_ms)
      continue;
    e->next_cp_ms = now_ms + l->o.checkpoint_interval_ms;
    int64_t left = e->deadline_ms - now_ms;
    if (left < l->o.checkpoint_interval_ms)
      continue;
    out[k].id = e->id;
    out[k].remaining_s = (left + 999) / 1000;
    k++;
  }
  return k;
}

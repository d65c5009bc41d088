/* raft_memstore.c — an in-memory raft_storage for tests and keel-sim.
 *
 * Layout: a compaction point (index c, term tc) — the entry just before the
 * first stored one — then ents[0..n) holding indexes c+1 .. c+n, plus the
 * latest snapshot's meta (index >= c). store/ implements the same interface
 * on LMDB; this one keeps the same rules so the simulator exercises them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"
#include "raft.h"

struct raft_memstore {
  struct raft_hard_state hs;
  struct raft_snapshot_meta snap;
  uint64_t c, tc;
  struct raft_entry *ents;
  size_t n, cap;
};

static uint64_t ms_first(void *ctx) {
  struct raft_memstore *s = ctx;
  return s->c + 1;
}

static uint64_t ms_last(void *ctx) {
  struct raft_memstore *s = ctx;
  return s->c + s->n;
}

static int ms_term(void *ctx, uint64_t i, uint64_t *t) {
  struct raft_memstore *s = ctx;
  if (i < s->c)
    return KEEL_ECOMPACTED;
  if (i > s->c + s->n)
    return KEEL_ENOTFOUND;
  *t = i == s->c ? s->tc : s->ents[i - s->c - 1].term;
  return 0;
}

static int ms_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                      struct raft_entry **out, size_t *n) {
  struct raft_memstore *s = ctx;
  *out = NULL;
  *n = 0;
  if (lo <= s->c)
    return KEEL_ECOMPACTED;
  if (hi > s->c + s->n + 1 || lo > hi)
    return KEEL_ENOTFOUND;
  if (lo == hi)
    return 0;
  struct raft_entry *res = malloc((hi - lo) * sizeof(*res));
  if (!res)
    return -ENOMEM;
  uint64_t bytes = 0;
  size_t cnt = 0;
  for (uint64_t i = lo; i < hi; i++) {
    const struct raft_entry *e = &s->ents[i - s->c - 1];
    if (cnt > 0 && bytes + e->len > max_bytes)
      break;
    res[cnt] = *e;
    res[cnt].data = NULL;
    if (e->len) {
      res[cnt].data = malloc(e->len);
      if (!res[cnt].data) {
        for (size_t j = 0; j < cnt; j++)
          free(res[j].data);
        free(res);
        return -ENOMEM;
      }
      memcpy(res[cnt].data, e->data, e->len);
    }
    bytes += e->len;
    cnt++;
  }
  *out = res;
  *n = cnt;
  return 0;
}

static int ms_snapshot(void *ctx, struct raft_snapshot_meta *meta) {
  struct raft_memstore *s = ctx;
  *meta = s->snap;
  return 0;
}

static int ms_hard_state(void *ctx, struct raft_hard_state *hs) {
  struct raft_memstore *s = ctx;
  *hs = s->hs;
  return 0;
}

int raft_memstore_new(struct raft_memstore **out) {
  struct raft_memstore *s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  *out = s;
  return 0;
}

static void drop_from(struct raft_memstore *s, size_t k) {
  for (size_t i = k; i < s->n; i++)
    free(s->ents[i].data);
  s->n = k;
}

void raft_memstore_free(struct raft_memstore *s) {
  if (!s)
    return;
  drop_from(s, 0);
  free(s->ents);
  free(s);
}

struct raft_storage raft_memstore_storage(struct raft_memstore *s) {
  struct raft_storage st = {
      .ctx = s,
      .hard_state = ms_hard_state,
      .first_index = ms_first,
      .last_index = ms_last,
      .term = ms_term,
      .entries = ms_entries,
      .snapshot = ms_snapshot,
  };
  return st;
}

void raft_memstore_set_hard_state(struct raft_memstore *s,
                                  const struct raft_hard_state *hs) {
  s->hs = *hs;
}

int raft_memstore_append(struct raft_memstore *s, const struct raft_entry *e,
                         size_t n) {
  if (!n)
    return 0;
  if (e[0].index <= s->c || e[0].index > s->c + s->n + 1)
    return -EINVAL;
  for (size_t i = 1; i < n; i++)
    if (e[i].index != e[0].index + i)
      return -EINVAL;
  drop_from(s, e[0].index - s->c - 1);
  if (s->n + n > s->cap) {
    size_t cap = (s->n + n) * 2;
    struct raft_entry *p = realloc(s->ents, cap * sizeof(*p));
    if (!p)
      return -ENOMEM;
    s->ents = p;
    s->cap = cap;
  }
  for (size_t i = 0; i < n; i++) {
    struct raft_entry *d = &s->ents[s->n];
    *d = e[i];
    d->data = NULL;
    if (e[i].len) {
      d->data = malloc(e[i].len);
      if (!d->data)
        return -ENOMEM;
      memcpy(d->data, e[i].data, e[i].len);
    }
    s->n++;
  }
  return 0;
}

int raft_memstore_apply_snapshot(struct raft_memstore *s,
                                 const struct raft_snapshot_meta *meta) {
  if (meta->index == 0)
    return -EINVAL;
  drop_from(s, 0);
  s->c = meta->index;
  s->tc = meta->term;
  s->snap = *meta;
  return 0;
}

int raft_memstore_compact(struct raft_memstore *s, uint64_t index,
                          const struct raft_snapshot_meta *conf,
                          uint64_t keep) {
  if (index <= s->snap.index || index > s->c + s->n || index <= s->c)
    return -EINVAL;
  struct raft_snapshot_meta m = *conf;
  m.index = index;
  ms_term(s, index, &m.term);
  s->snap = m;
  uint64_t cut = index > keep ? index - keep : 0;
  if (cut <= s->c)
    return 0;
  size_t k = cut - s->c; /* entries c+1 .. cut go */
  s->tc = s->ents[k - 1].term;
  for (size_t i = 0; i < k; i++)
    free(s->ents[i].data);
  memmove(s->ents, s->ents + k, (s->n - k) * sizeof(*s->ents));
  s->n -= k;
  s->c = cut;
  return 0;
}

int raft_memstore_clone(const struct raft_memstore *s,
                        struct raft_memstore **out) {
  struct raft_memstore *c = calloc(1, sizeof(*c));
  if (!c)
    return -ENOMEM;
  *c = *s;
  c->ents = NULL;
  c->n = c->cap = 0;
  if (s->n) {
    c->ents = malloc(s->n * sizeof(*c->ents));
    if (!c->ents) {
      free(c);
      return -ENOMEM;
    }
    c->cap = s->n;
    for (size_t i = 0; i < s->n; i++) {
      c->ents[i] = s->ents[i];
      c->ents[i].data = NULL;
      if (s->ents[i].len) {
        c->ents[i].data = malloc(s->ents[i].len);
        if (!c->ents[i].data) {
          c->n = i;
          raft_memstore_free(c);
          return -ENOMEM;
        }
        memcpy(c->ents[i].data, s->ents[i].data, s->ents[i].len);
      }
      c->n = i + 1;
    }
  }
  *out = c;
  return 0;
}

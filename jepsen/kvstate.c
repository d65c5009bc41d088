/* kvstate.c — canonical ids for kv model strings (kvstate.h).
 *
 * hash(s) = sum s[i] * B^(len-1-i) mod 2^64, so hash(s ++ t) =
 * hash(s) * B^len(t) + hash(t): an append costs O(1) hashing whatever the
 * length of the string it extends.
 */
#include "kvstate.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

#define HASH_BASE 0x100000001b3ULL

static uint64_t mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ULL;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dULL;
  return x ^ (x >> 33);
}

void jepsen_kv_piece(struct jepsen_kv_piece *p, const char *text,
                     uint32_t len) {
  p->text = text;
  p->len = len;
  p->hash = 0;
  p->pow = 1;
  for (uint32_t i = 0; i < len; i++) {
    p->hash = p->hash * HASH_BASE + (unsigned char)text[i];
    p->pow *= HASH_BASE;
  }
}

static size_t bytes(const struct jepsen_kv_states *k, size_t cap,
                    size_t pair_slots, size_t canon_slots) {
  return cap * sizeof(struct jepsen_kv_node) +
         pair_slots * (sizeof(uint64_t) + sizeof(uint32_t)) +
         canon_slots * sizeof(uint32_t) + 2 * k->buf_cap;
}

void jepsen_kv_init(struct jepsen_kv_states *k, size_t budget) {
  memset(k, 0, sizeof(*k));
  k->budget = budget;
}

void jepsen_kv_free(struct jepsen_kv_states *k) {
  free(k->nodes);
  free(k->pair_keys);
  free(k->pair_vals);
  free(k->canon);
  free(k->buf_a);
  free(k->buf_b);
  memset(k, 0, sizeof(*k));
}

static size_t canon_home(const struct jepsen_kv_states *k, uint64_t hash,
                         uint32_t len) {
  return mix(hash ^ ((uint64_t)len << 40)) & (k->canon_slots - 1);
}

static int grow_canon(struct jepsen_kv_states *k) {
  size_t n = k->canon_slots ? k->canon_slots * 2 : 256;
  if (bytes(k, k->cap, k->pair_slots, n) > k->budget)
    return KEEL_ELIMIT;
  uint32_t *c = calloc(n, sizeof(*c));
  if (!c)
    return -ENOMEM;
  free(k->canon);
  k->canon = c;
  k->canon_slots = n;
  for (uint32_t id = 0; id < k->count; id++) {
    size_t i = canon_home(k, k->nodes[id].hash, k->nodes[id].len);
    while (c[i] != 0)
      i = (i + 1) & (n - 1);
    c[i] = id + 1;
  }
  return 0;
}

static int grow_pairs(struct jepsen_kv_states *k) {
  size_t n = k->pair_slots ? k->pair_slots * 2 : 256;
  if (bytes(k, k->cap, n, k->canon_slots) > k->budget)
    return KEEL_ELIMIT;
  uint64_t *keys = calloc(n, sizeof(*keys));
  uint32_t *vals = calloc(n, sizeof(*vals));
  if (!keys || !vals) {
    free(keys);
    free(vals);
    return -ENOMEM;
  }
  for (size_t i = 0; i < k->pair_slots; i++) {
    if (k->pair_keys[i] == 0)
      continue;
    size_t j = mix(k->pair_keys[i]) & (n - 1);
    while (keys[j] != 0)
      j = (j + 1) & (n - 1);
    keys[j] = k->pair_keys[i];
    vals[j] = k->pair_vals[i];
  }
  free(k->pair_keys);
  free(k->pair_vals);
  k->pair_keys = keys;
  k->pair_vals = vals;
  k->pair_slots = n;
  return 0;
}

/* Writes the string of `id` into buf (at least its length). */
static void materialize(const struct jepsen_kv_states *k, uint32_t id,
                        char *buf) {
  size_t pos = k->nodes[id].len;
  while (id != JEPSEN_KV_EMPTY) {
    const struct jepsen_kv_node *n = &k->nodes[id];
    pos -= n->tlen;
    memcpy(buf + pos, n->text, n->tlen);
    id = n->parent;
  }
}

static int ensure_bufs(struct jepsen_kv_states *k, size_t len) {
  if (len <= k->buf_cap)
    return 0;
  size_t cap = k->buf_cap ? k->buf_cap : 256;
  while (cap < len)
    cap *= 2;
  if (bytes(k, k->cap, k->pair_slots, k->canon_slots) + 2 * (cap - k->buf_cap) >
      k->budget)
    return KEEL_ELIMIT;
  char *a = realloc(k->buf_a, cap);
  if (!a)
    return -ENOMEM;
  k->buf_a = a;
  char *b = realloc(k->buf_b, cap);
  if (!b)
    return -ENOMEM;
  k->buf_b = b;
  k->buf_cap = cap;
  return 0;
}

/* Is string(cand) == string(parent) ++ piece? (Same hash and length.) */
static int same_string(struct jepsen_kv_states *k, uint32_t cand,
                       uint32_t parent, const struct jepsen_kv_piece *piece) {
  size_t len = k->nodes[cand].len;
  int rc = ensure_bufs(k, len);
  if (rc != 0)
    return rc;
  materialize(k, cand, k->buf_a);
  materialize(k, parent, k->buf_b);
  memcpy(k->buf_b + k->nodes[parent].len, piece->text, piece->len);
  return memcmp(k->buf_a, k->buf_b, len) == 0;
}

int jepsen_kv_append(struct jepsen_kv_states *k, uint32_t parent,
                     const struct jepsen_kv_piece *piece, uint32_t piece_id,
                     uint32_t *out) {
  int rc;
  if (k->count == 0) { /* the empty string is always id 0 */
    if ((rc = grow_canon(k)) != 0 || (rc = grow_pairs(k)) != 0)
      return rc;
    k->nodes = malloc(64 * sizeof(*k->nodes));
    if (!k->nodes)
      return -ENOMEM;
    k->cap = 64;
    k->nodes[0] = (struct jepsen_kv_node){"", 0, 0, 0, 0};
    k->count = 1;
    k->canon[canon_home(k, 0, 0)] = 1;
  }
  if (piece->len == 0) {
    *out = parent;
    return 0;
  }
  uint64_t pair = 0;
  size_t pslot = 0;
  if (piece_id != UINT32_MAX) {
    pair = ((uint64_t)parent << 32 | piece_id) + 1;
    for (pslot = mix(pair) & (k->pair_slots - 1); k->pair_keys[pslot] != 0;
         pslot = (pslot + 1) & (k->pair_slots - 1)) {
      if (k->pair_keys[pslot] == pair) {
        *out = k->pair_vals[pslot];
        return 0;
      }
    }
  }
  const struct jepsen_kv_node *p = &k->nodes[parent];
  if ((uint64_t)p->len + piece->len > UINT32_MAX)
    return KEEL_ELIMIT;
  uint64_t hash = p->hash * piece->pow + piece->hash;
  uint32_t len = p->len + piece->len;
  uint32_t id = UINT32_MAX;
  size_t cslot = canon_home(k, hash, len);
  for (; k->canon[cslot] != 0; cslot = (cslot + 1) & (k->canon_slots - 1)) {
    uint32_t cand = k->canon[cslot] - 1;
    if (k->nodes[cand].hash != hash || k->nodes[cand].len != len)
      continue;
    rc = same_string(k, cand, parent, piece);
    if (rc < 0)
      return rc;
    if (rc == 1) {
      id = cand;
      break;
    }
  }
  if (id == UINT32_MAX) {
    if (k->count == k->cap) {
      size_t cap = (size_t)k->cap * 2;
      if (cap > UINT32_MAX ||
          bytes(k, cap, k->pair_slots, k->canon_slots) > k->budget)
        return KEEL_ELIMIT;
      struct jepsen_kv_node *n = realloc(k->nodes, cap * sizeof(*n));
      if (!n)
        return -ENOMEM;
      k->nodes = n;
      k->cap = (uint32_t)cap;
    }
    id = k->count++;
    k->nodes[id] =
        (struct jepsen_kv_node){piece->text, hash, parent, piece->len, len};
    if ((size_t)k->count * 2 > k->canon_slots) {
      if ((rc = grow_canon(k)) != 0)
        return rc; /* grow_canon placed every node, the new one too */
    } else {
      k->canon[cslot] = id + 1; /* cslot is the empty slot the probe hit */
    }
  }
  if (piece_id != UINT32_MAX) {
    if ((k->pair_count + 1) * 2 > k->pair_slots) {
      if ((rc = grow_pairs(k)) != 0)
        return rc;
      for (pslot = mix(pair) & (k->pair_slots - 1); k->pair_keys[pslot] != 0;
           pslot = (pslot + 1) & (k->pair_slots - 1)) {
      }
    }
    k->pair_keys[pslot] = pair;
    k->pair_vals[pslot] = id;
    k->pair_count++;
  }
  *out = id;
  return 0;
}

/* strtab.c — the interning table of strtab.h (FNV-1a, linear probing,
 * resized at half load so probes stay short). */
#include "strtab.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "keel_error.h"

void jepsen_strtab_init(struct jepsen_strtab *t, size_t max_bytes) {
  memset(t, 0, sizeof(*t));
  t->max_bytes = max_bytes;
}

void jepsen_strtab_free(struct jepsen_strtab *t) {
  free(t->data);
  free(t->offs);
  free(t->lens);
  free(t->slots);
  memset(t, 0, sizeof(*t));
}

static uint64_t hash_bytes(uint64_t h, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

#define FNV_BASIS 0xcbf29ce484222325ULL

static int grow_slots(struct jepsen_strtab *t) {
  uint32_t n = t->nslots ? t->nslots * 2 : 64;
  uint32_t *slots = calloc(n, sizeof(*slots));
  if (!slots)
    return -ENOMEM;
  for (uint32_t id = 0; id < t->count; id++) {
    uint64_t h = hash_bytes(FNV_BASIS, t->data + t->offs[id], t->lens[id]);
    uint32_t i = (uint32_t)h & (n - 1);
    while (slots[i] != 0)
      i = (i + 1) & (n - 1);
    slots[i] = id + 1;
  }
  free(t->slots);
  t->slots = slots;
  t->nslots = n;
  return 0;
}

/* Adds s, known to be absent. s must not point into t->data (growth may
 * move it). */
static int add(struct jepsen_strtab *t, const char *s, size_t len,
               uint32_t *id) {
  if (len > UINT32_MAX || t->data_len + len + 1 > t->max_bytes)
    return KEEL_ELIMIT;
  if ((t->count + 1) * 2 > t->nslots) {
    int rc = grow_slots(t);
    if (rc != 0)
      return rc;
  }
  if (t->count == t->cap) {
    uint32_t cap = t->cap ? t->cap * 2 : 64;
    uint64_t *offs = realloc(t->offs, cap * sizeof(*offs));
    if (!offs)
      return -ENOMEM;
    t->offs = offs;
    uint32_t *lens = realloc(t->lens, cap * sizeof(*lens));
    if (!lens)
      return -ENOMEM;
    t->lens = lens;
    t->cap = cap;
  }
  if (t->data_len + len + 1 > t->data_cap) {
    size_t cap = t->data_cap ? t->data_cap : 4096;
    while (cap < t->data_len + len + 1)
      cap *= 2;
    char *data = realloc(t->data, cap);
    if (!data)
      return -ENOMEM;
    t->data = data;
    t->data_cap = cap;
  }
  char *dst = t->data + t->data_len;
  memcpy(dst, s, len);
  dst[len] = '\0';
  uint32_t nid = t->count++;
  t->offs[nid] = t->data_len;
  t->lens[nid] = (uint32_t)len;
  t->data_len += len + 1;
  uint64_t h = hash_bytes(FNV_BASIS, dst, len);
  uint32_t i = (uint32_t)h & (t->nslots - 1);
  while (t->slots[i] != 0)
    i = (i + 1) & (t->nslots - 1);
  t->slots[i] = nid + 1;
  *id = nid;
  return 0;
}

static bool find(const struct jepsen_strtab *t, uint64_t h, const char *a,
                 size_t alen, const char *b, size_t blen, uint32_t *id) {
  if (t->nslots == 0)
    return false;
  for (uint32_t i = (uint32_t)h & (t->nslots - 1);;
       i = (i + 1) & (t->nslots - 1)) {
    uint32_t s = t->slots[i];
    if (s == 0)
      return false;
    uint32_t cand = s - 1;
    const char *c = t->data + t->offs[cand];
    if (t->lens[cand] == alen + blen && memcmp(c, a, alen) == 0 &&
        memcmp(c + alen, b, blen) == 0) {
      *id = cand;
      return true;
    }
  }
}

int jepsen_strtab_intern(struct jepsen_strtab *t, const char *s, size_t len,
                         uint32_t *id) {
  if (find(t, hash_bytes(FNV_BASIS, s, len), s, len, "", 0, id))
    return 0;
  return add(t, s, len, id);
}

const char *jepsen_strtab_get(const struct jepsen_strtab *t, uint32_t id,
                              size_t *len) {
  if (len)
    *len = t->lens[id];
  return t->data + t->offs[id];
}

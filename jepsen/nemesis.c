/* nemesis.c — the nemesis schedule and the choice of nodes a fault hits (see
 * nemesis.h). Pure functions of their arguments and the seed. */
#include "nemesis.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "keel_error.h"

void jepsen_rng_seed(struct jepsen_rng *r, uint64_t seed) {
  r->s = seed;
}

uint64_t jepsen_rng_next(struct jepsen_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint32_t jepsen_rng_below(struct jepsen_rng *r, uint32_t n) {
  /* Rejection keeps it uniform. */
  uint64_t lim = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do
    x = jepsen_rng_next(r);
  while (x >= lim);
  return (uint32_t)(x % n);
}

static const char *const nemesis_names[JEPSEN_NEM__COUNT] = {
    "kill", "pause", "partition", "clock", "member"};
static const char *const target_names[JEPSEN_TGT__COUNT] = {
    "one", "leader", "minority", "majority"};
static const char *const part_names[JEPSEN_PART__COUNT] = {
    "halves", "isolated-leader", "majorities-ring", "bridge", "one-way"};
static const char *const clock_names[JEPSEN_CLOCK__COUNT] = {"bump", "strobe"};
static const char *const member_names[JEPSEN_MEMBER__COUNT] = {"remove",
                                                               "replace"};

unsigned jepsen_nemesis_variants(enum jepsen_nemesis n) {
  switch (n) {
  case JEPSEN_NEM_KILL:
  case JEPSEN_NEM_PAUSE:
    return JEPSEN_TGT__COUNT;
  case JEPSEN_NEM_PARTITION:
    return JEPSEN_PART__COUNT;
  case JEPSEN_NEM_CLOCK:
    return JEPSEN_CLOCK__COUNT;
  case JEPSEN_NEM_MEMBER:
    return JEPSEN_MEMBER__COUNT;
  default:
    return 0;
  }
}

const char *jepsen_nemesis_name(enum jepsen_nemesis n) {
  return (unsigned)n < JEPSEN_NEM__COUNT ? nemesis_names[n] : "?";
}

const char *jepsen_variant_name(struct jepsen_fault f) {
  if (f.variant >= jepsen_nemesis_variants(f.nemesis))
    return "?";
  switch (f.nemesis) {
  case JEPSEN_NEM_KILL:
  case JEPSEN_NEM_PAUSE:
    return target_names[f.variant];
  case JEPSEN_NEM_PARTITION:
    return part_names[f.variant];
  case JEPSEN_NEM_CLOCK:
    return clock_names[f.variant];
  default:
    return member_names[f.variant];
  }
}

int jepsen_nemesis_parse(const char *list, uint32_t *mask, char *err,
                         size_t errlen) {
  *mask = 0;
  if (strcmp(list, "none") == 0 || !*list)
    return 0;
  const char *p = list;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    int found = -1;
    for (int i = 0; i < JEPSEN_NEM__COUNT; i++)
      if (strlen(nemesis_names[i]) == len &&
          memcmp(nemesis_names[i], p, len) == 0)
        found = i;
    if (found < 0) {
      snprintf(err, errlen,
               "'%.*s' is not a nemesis (kill, pause, partition, clock, "
               "member, none)",
               (int)(len > 64 ? 64 : len), p);
      return -EINVAL;
    }
    *mask |= 1u << found;
    p += len;
    if (*p == ',')
      p++;
  }
  return 0;
}

int jepsen_schedule(uint32_t mask, double interval, double time_limit,
                    uint64_t seed, struct jepsen_sched_event *out, size_t cap,
                    size_t *n) {
  *n = 0;
  if (!(interval > 0) || !(time_limit > 0) ||
      (mask & ~((1u << JEPSEN_NEM__COUNT) - 1)))
    return -EINVAL;
  if (!mask)
    return 0;
  uint8_t enabled[JEPSEN_NEM__COUNT];
  unsigned n_enabled = 0;
  for (int i = 0; i < JEPSEN_NEM__COUNT; i++)
    if (mask & (1u << i))
      enabled[n_enabled++] = (uint8_t)i;
  struct jepsen_rng rng;
  jepsen_rng_seed(&rng, seed);
  /* Fault k starts at (2k+1)*interval and heals at (2k+2)*interval. */
  for (size_t k = 0;; k++) {
    double start = (2.0 * (double)k + 1.0) * interval;
    double heal = start + interval;
    if (heal > time_limit)
      break;
    if (*n + 2 > cap)
      return KEEL_ELIMIT;
    struct jepsen_fault f;
    f.nemesis = enabled[jepsen_rng_below(&rng, n_enabled)];
    f.variant = (uint8_t)jepsen_rng_below(
        &rng, jepsen_nemesis_variants((enum jepsen_nemesis)f.nemesis));
    out[(*n)++] = (struct jepsen_sched_event){start, false, f};
    out[(*n)++] = (struct jepsen_sched_event){heal, true, f};
  }
  return 0;
}

/* A random permutation of 0..n-1. */
static void shuffle(int *perm, int n, struct jepsen_rng *rng) {
  for (int i = 0; i < n; i++)
    perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)jepsen_rng_below(rng, (uint32_t)i + 1);
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* Both groups drop each other (a, b: bit sets). */
static void cut(struct jepsen_grudge *g, uint32_t a, uint32_t b, bool both) {
  for (int i = 0; i < g->n; i++) {
    if (a & (1u << i))
      g->drop[i] |= b;
    if (both && (b & (1u << i)))
      g->drop[i] |= a;
  }
}

int jepsen_grudge_make(enum jepsen_partition v, int n, int leader,
                       struct jepsen_rng *rng, struct jepsen_grudge *g) {
  if (n < 2 || n > JEPSEN_MAX_NODES || leader >= n)
    return -EINVAL;
  memset(g, 0, sizeof(*g));
  g->n = n;
  uint32_t all = (1u << n) - 1;
  int perm[JEPSEN_MAX_NODES];
  shuffle(perm, n, rng);
  uint32_t a = 0;
  switch (v) {
  case JEPSEN_PART_HALVES:
  case JEPSEN_PART_ONE_WAY:
    for (int i = 0; i < n / 2; i++)
      a |= 1u << perm[i];
    cut(g, a, all & ~a, v == JEPSEN_PART_HALVES);
    return 0;
  case JEPSEN_PART_LEADER: {
    int l = leader >= 0 ? leader : perm[0];
    cut(g, 1u << l, all & ~(1u << l), true);
    return 0;
  }
  case JEPSEN_PART_BRIDGE: {
    /* perm[0] bridges; the rest split into two halves. */
    uint32_t b = 0;
    for (int i = 1; i < n; i++) {
      if (i <= (n - 1) / 2)
        a |= 1u << perm[i];
      else
        b |= 1u << perm[i];
    }
    cut(g, a, b, true);
    return 0;
  }
  case JEPSEN_PART_RING: {
    /* Nodes on a random ring; the node at position p sees the majority of
     * m positions starting (m-1)/2 before it. For odd m (n = 4, 5) the
     * windows are centred, so seeing is symmetric; otherwise (n = 3, 6, 7)
     * it is directed, as in Jepsen's majorities-ring. */
    int m = n / 2 + 1;
    for (int p = 0; p < n; p++) {
      uint32_t sees = 0;
      for (int k = 0; k < m; k++)
        sees |= 1u << perm[(p - (m - 1) / 2 + k + n) % n];
      g->drop[perm[p]] = all & ~sees;
    }
    return 0;
  }
  default:
    return -EINVAL;
  }
}

uint32_t jepsen_pick_targets(enum jepsen_targets v, int n, int leader,
                             struct jepsen_rng *rng) {
  int perm[JEPSEN_MAX_NODES];
  if (n < 1 || n > JEPSEN_MAX_NODES)
    return 0;
  shuffle(perm, n, rng);
  int k;
  switch (v) {
  case JEPSEN_TGT_LEADER:
    return 1u << (leader >= 0 && leader < n ? leader : perm[0]);
  case JEPSEN_TGT_MINORITY:
    k = (n - 1) / 2;
    break;
  case JEPSEN_TGT_MAJORITY:
    k = n / 2 + 1;
    break;
  default:
    k = 1;
    break;
  }
  uint32_t s = 0;
  for (int i = 0; i < k; i++)
    s |= 1u << perm[i];
  return s;
}

void jepsen_grudge_describe(const struct jepsen_grudge *g, char *buf,
                            size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  for (int i = 0; i < g->n && len + 1 < cap; i++) {
    if (!g->drop[i])
      continue;
    int w =
        snprintf(buf + len, cap - len, "%sn%d drops", len ? "; " : "", i + 1);
    if (w < 0 || (size_t)w >= cap - len)
      return;
    len += (size_t)w;
    bool first = true;
    for (int j = 0; j < g->n; j++) {
      if (!(g->drop[i] & (1u << j)))
        continue;
      w = snprintf(buf + len, cap - len, "%sn%d", first ? " " : ",", j + 1);
      if (w < 0 || (size_t)w >= cap - len)
        return;
      len += (size_t)w;
      first = false;
    }
  }
  if (!len)
    snprintf(buf, cap, "nobody drops anything");
}

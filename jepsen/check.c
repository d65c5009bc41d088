/* check.c — WGL linearizability search, the set checker, the key-parallel
 * driver and the witness reduction (check.h).
 *
 * The search (per key), after Lowe's refinement of Wing & Gong, as in
 * porcupine:
 *
 *   Events (calls and returns) sit in one doubly linked list in history
 *   order; each call node points at its return node. The cursor walks from
 *   the head. At a call it tries to linearize the op now: if the model
 *   accepts it and (linearized-set + op, new state) was never seen, the op
 *   is pushed, its call and return nodes are lifted out of the list, and the
 *   walk restarts at the head. At a return node every op still in the list
 *   before it was tried and none worked from here, so the last push is
 *   undone (nodes unlifted, state restored) and the walk moves on past that
 *   op. An empty list is a linearization; backtracking with nothing pushed
 *   means there is none.
 *
 * Invariants:
 *   - the list holds exactly the events of the ops not yet linearized, in
 *     history order; stack[0..depth) holds the linearized ops in order;
 *   - bits (and its Zobrist hash `zob`) is exactly the set on the stack;
 *   - every (bits, state) pushed is in the cache, so a configuration is
 *     explored at most once: the search is finite and exhaustive. The cache
 *     stores bits in a compact form that is exact for every set the walk
 *     can reach (make_key);
 *   - `lowest` is the first op of certain outcome not on the stack.
 *   - an op with unknown outcome has its return node after every other
 *     event, so it may be linearized anywhere after its call, or (list
 *     empty otherwise) simply last, which is "never" for the observers.
 *
 * Bounds: the cache stops growing at the memory budget and the search
 * checks the deadline and the stop flag every 4096 steps; either ends the
 * key as UNKNOWN, never as VALID.
 */
#include "check.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel_error.h"
#include "kvstate.h"

void jepsen_check_opts_default(struct jepsen_check_opts *o) {
  o->time_limit = 0;
  o->threads = 0;
  o->max_memory = (size_t)2 << 30;
  o->witness = true;
}

const char *jepsen_verdict_name(enum jepsen_verdict v) {
  switch (v) {
  case JEPSEN_VALID:
    return "VALID";
  case JEPSEN_INVALID:
    return "INVALID";
  default:
    return "UNKNOWN";
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Shared by every search of one check. */
struct control {
  atomic_bool stop; /* another key proved the history invalid */
  double deadline;  /* now_s() value; 0: none */
  size_t mem_per_search;
  size_t max_states; /* a search stops (UNKNOWN, budget) past it; 0: none */
  const struct jepsen_history *h;
};

/* One op as the search sees it. */
struct sop {
  uint64_t call, ret;
  uint32_t a, b, out;
  uint32_t idx; /* in history.ops */
  uint8_t f;
  bool info, out_known;
};

struct search_result {
  enum jepsen_verdict verdict;
  bool budget; /* UNKNOWN only because of control.max_states */
  uint64_t states;
  char reason[200];
};

/* ---- the visited-configuration cache ---------------------------------- */

/* Entries are variable-length (the compact key below): one arena of words,
 * each entry [hash][state | len << 32][len key words], found through an
 * open-addressing table of arena offsets + 1. */
struct cache {
  uint64_t *arena;
  size_t used, cap; /* words */
  uint64_t *slots;
  size_t nslots, count;
  size_t budget; /* bytes */
};

static size_t cache_bytes(size_t arena_words, size_t nslots) {
  return (arena_words + nslots) * sizeof(uint64_t);
}

/* Returns 1 when added, 0 when present, KEEL_ELIMIT or -ENOMEM. */
static int cache_insert(struct cache *c, uint64_t hash, uint32_t state,
                        const uint64_t *key, size_t len) {
  if ((c->count + 1) * 2 > c->nslots) {
    size_t n = c->nslots ? c->nslots * 2 : 1024;
    if (cache_bytes(c->cap, n) > c->budget)
      return KEEL_ELIMIT;
    uint64_t *s = calloc(n, sizeof(*s));
    if (!s)
      return -ENOMEM;
    for (size_t i = 0; i < c->nslots; i++) {
      if (c->slots[i] == 0)
        continue;
      size_t j = c->arena[c->slots[i] - 1] & (n - 1);
      while (s[j] != 0)
        j = (j + 1) & (n - 1);
      s[j] = c->slots[i];
    }
    free(c->slots);
    c->slots = s;
    c->nslots = n;
  }
  uint64_t tag = (uint64_t)state | (uint64_t)len << 32;
  size_t mask = c->nslots - 1;
  size_t i = hash & mask;
  for (; c->slots[i] != 0; i = (i + 1) & mask) {
    const uint64_t *e = c->arena + c->slots[i] - 1;
    if (e[0] == hash && e[1] == tag &&
        memcmp(e + 2, key, len * sizeof(uint64_t)) == 0)
      return 0;
  }
  if (c->used + 2 + len > c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 4096;
    while (cap < c->used + 2 + len)
      cap *= 2;
    if (cache_bytes(cap, c->nslots) > c->budget) {
      cap = c->used + 2 + len + c->cap / 4; /* a last, smaller step */
      if (cache_bytes(cap, c->nslots) > c->budget)
        return KEEL_ELIMIT;
    }
    uint64_t *arena = realloc(c->arena, cap * sizeof(uint64_t));
    if (!arena)
      return -ENOMEM;
    c->arena = arena;
    c->cap = cap;
  }
  uint64_t *e = c->arena + c->used;
  e[0] = hash;
  e[1] = tag;
  memcpy(e + 2, key, len * sizeof(uint64_t));
  c->slots[i] = c->used + 1;
  c->used += 2 + len;
  c->count++;
  return 1;
}

static void cache_free(struct cache *c) {
  free(c->arena);
  free(c->slots);
}

static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* ---- models ------------------------------------------------------------ */

/* The kv model's states are strings that appends keep making; they get
 * canonical ids from a table private to the search (kvstate.h), so a state
 * is one integer. An append op's text is pieces[op.b]. */
struct model {
  enum jepsen_model kind;
  struct jepsen_kv_states kv;
  struct jepsen_kv_piece *pieces;
};

/* 1: op may take effect in `state`, giving *next; 0: it may not; <0 error. */
static int step(struct model *m, uint32_t state, const struct sop *op,
                uint32_t *next) {
  *next = state;
  switch ((enum jepsen_f)op->f) {
  case JEPSEN_F_READ:
  case JEPSEN_F_GET:
    return !op->out_known || op->out == state;
  case JEPSEN_F_WRITE:
  case JEPSEN_F_PUT:
    *next = op->a;
    return 1;
  case JEPSEN_F_CAS:
    if (state == op->a) {
      *next = op->b;
      return 1;
    }
    /* A cas whose outcome is unknown may have failed: no effect. */
    return op->info;
  case JEPSEN_F_APPEND: {
    int rc = jepsen_kv_append(&m->kv, state, &m->pieces[op->b], op->b, next);
    return rc < 0 ? rc : 1;
  }
  case JEPSEN_F_ADD:
    break;
  }
  return 0;
}

/* ---- the search -------------------------------------------------------- */

struct event {
  uint64_t pos, tie;
  int32_t op;
  bool call;
};

static int event_cmp(const void *x, const void *y) {
  const struct event *a = x, *b = y;
  if (a->pos != b->pos)
    return a->pos < b->pos ? -1 : 1;
  if (a->tie != b->tie)
    return a->tie < b->tie ? -1 : 1;
  return 0;
}

static void set_reason(struct search_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_reason(struct search_result *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
  va_end(ap);
}

/* The cache key of a linearized set S, compact and exact. Let `low` be the
 * first op (in call order) of certain outcome not in S. Then every certain op
 * before low is in S by definition, and no op called after low returned can
 * be in S: the list walk never passes low's return node, which stays in the
 * list while low is not linearized. So S is exactly: (low, which
 * unknown-outcome ops are in S, which ops in low's window [low, win_end[low])
 * are in S). That takes 1 + n_info/64 + window/64 words instead of n/64:
 * with a handful of clients the window is a handful of ops, so the cache no
 * longer grows with the length of the history. */
static size_t make_key(uint64_t *key, size_t low, size_t n,
                       const uint32_t *win_end, const uint64_t *infobits,
                       size_t iw, const uint64_t *bits) {
  key[0] = low;
  memcpy(key + 1, infobits, iw * sizeof(*key));
  size_t len = 1 + iw;
  if (low < n) {
    size_t w = win_end[low] - low;
    size_t nw = (w + 63) / 64, base = low / 64, sh = low % 64;
    for (size_t k = 0; k < nw; k++) {
      uint64_t word = bits[base + k] >> sh;
      if (sh != 0)
        word |= bits[base + k + 1] << (64 - sh);
      key[len + k] = word;
    }
    if (w % 64 != 0)
      key[len + nw - 1] &= (1ULL << (w % 64)) - 1;
    len += nw;
  }
  return len;
}

/* Decides whether ops[0..n) (one key) are linearizable. ops are modified
 * (kv values are renumbered into the search's own string table). */
static void wgl(struct control *ctl, struct sop *ops, size_t n,
                struct search_result *res) {
  memset(res, 0, sizeof(*res));
  res->verdict = JEPSEN_UNKNOWN;
  struct model m = {.kind = ctl->h->model};
  uint32_t state = JEPSEN_VALUE_NIL;
  size_t words = (n + 63) / 64;
  size_t nodes = 2 * n;
  struct event *ev = malloc((nodes + 1) * sizeof(*ev));
  int32_t *next = malloc((nodes + 1) * sizeof(*next));
  int32_t *prev = malloc((nodes + 1) * sizeof(*prev));
  int32_t *node_op = malloc((nodes + 1) * sizeof(*node_op));
  int32_t *match = malloc((nodes + 1) * sizeof(*match));
  int32_t *stack_node = malloc((n + 1) * sizeof(*stack_node));
  uint32_t *stack_state = malloc((n + 1) * sizeof(*stack_state));
  uint64_t *zob = malloc((n + 1) * sizeof(*zob));
  uint64_t *bits = calloc(words + 2, sizeof(*bits));
  uint32_t *win_end = malloc((n + 1) * sizeof(*win_end));
  uint32_t *info_rank = malloc((n + 1) * sizeof(*info_rank));
  uint32_t *stack_m = malloc((n + 1) * sizeof(*stack_m));
  size_t n_info = 0;
  for (size_t i = 0; i < n; i++)
    n_info += ops[i].info;
  size_t iw = (n_info + 63) / 64;
  uint64_t *infobits = calloc(iw + 1, sizeof(*infobits));
  uint64_t *key = malloc((1 + iw + words + 2) * sizeof(*key));
  /* Half of the memory for kv states (when kv), the rest for the cache. */
  struct cache cache = {.budget = ctl->h->model == JEPSEN_MODEL_KV
                                      ? ctl->mem_per_search / 2
                                      : ctl->mem_per_search};
  if (!ev || !next || !prev || !node_op || !match || !stack_node ||
      !stack_state || !zob || !bits || !win_end || !info_rank || !stack_m ||
      !infobits || !key) {
    set_reason(res, "out of memory");
    goto out;
  }
  /* The compact key (see make_key): ranks of the unknown-outcome ops, and
   * for each op the end of its window, the first op called after it
   * returned. Ops come sorted by call. */
  {
    uint32_t rank = 0;
    for (size_t i = 0; i < n; i++) {
      assert(i == 0 || ops[i - 1].call < ops[i].call);
      info_rank[i] = ops[i].info ? rank++ : UINT32_MAX;
      size_t lo = i + 1, hi = n; /* first j in [i+1, n) called after ret */
      while (!ops[i].info && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ops[mid].call > ops[i].ret)
          hi = mid;
        else
          lo = mid + 1;
      }
      win_end[i] = ops[i].info ? (uint32_t)n : (uint32_t)lo;
    }
  }
  if (m.kind == JEPSEN_MODEL_KV) {
    /* put values and get results become states; append texts pieces */
    jepsen_kv_init(&m.kv, ctl->mem_per_search / 2);
    m.pieces = malloc((n + 1) * sizeof(*m.pieces));
    int rc = m.pieces ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
      size_t len;
      struct jepsen_kv_piece tmp;
      const char *s = jepsen_strtab_get(&ctl->h->values, ops[i].a, &len);
      if (ops[i].f == JEPSEN_F_APPEND) {
        jepsen_kv_piece(&m.pieces[i], s, (uint32_t)len);
        ops[i].b = (uint32_t)i;
      } else if (ops[i].f == JEPSEN_F_PUT) {
        jepsen_kv_piece(&tmp, s, (uint32_t)len);
        rc = jepsen_kv_append(&m.kv, JEPSEN_KV_EMPTY, &tmp, UINT32_MAX,
                              &ops[i].a);
      } else if (ops[i].out_known) {
        s = jepsen_strtab_get(&ctl->h->values, ops[i].out, &len);
        jepsen_kv_piece(&tmp, s, (uint32_t)len);
        rc = jepsen_kv_append(&m.kv, JEPSEN_KV_EMPTY, &tmp, UINT32_MAX,
                              &ops[i].out);
      }
    }
    if (rc != 0) {
      set_reason(res, "kv state table: %s", keel_strerror(rc));
      goto out;
    }
  }
  for (size_t i = 0; i < n; i++) {
    ev[2 * i] = (struct event){ops[i].call, i, (int32_t)i, true};
    /* Unknown outcomes return after everything, in call order. */
    ev[2 * i + 1] = (struct event){
        ops[i].info ? JEPSEN_RET_INFINITY : ops[i].ret, i, (int32_t)i, false};
    zob[i] = mix64(i * 0x2545f4914f6cdd1dULL + 1);
  }
  qsort(ev, nodes, sizeof(*ev), event_cmp);
  {
    int32_t *call_node = stack_node; /* scratch until the search starts */
    for (size_t j = 0; j < nodes; j++) {
      node_op[j] = ev[j].op;
      match[j] = -1;
      if (ev[j].call)
        call_node[ev[j].op] = (int32_t)j;
      else
        match[call_node[ev[j].op]] = (int32_t)j;
      next[j] = j + 1 < nodes ? (int32_t)(j + 1) : -1;
      prev[j] = j == 0 ? (int32_t)nodes : (int32_t)(j - 1);
    }
  }
  const int32_t head = (int32_t)nodes;
  next[head] = nodes ? 0 : -1;
  prev[head] = -1;

  size_t depth = 0;
  uint64_t h = 0, iter = 0;
  size_t lowest = 0; /* the first certain op not linearized (n: none) */
  while (lowest < n && ops[lowest].info)
    lowest++;
  int32_t e = next[head];
  while (next[head] != -1) {
    if ((++iter & 4095) == 0) {
      if (atomic_load_explicit(&ctl->stop, memory_order_relaxed)) {
        set_reason(res, "stopped: another key is already invalid");
        goto out;
      }
      if (ctl->deadline > 0 && now_s() > ctl->deadline) {
        set_reason(res, "time limit reached after %zu states", cache.count);
        goto out;
      }
      if (ctl->max_states > 0 && cache.count > ctl->max_states) {
        res->budget = true;
        set_reason(res, "state budget of %zu reached", ctl->max_states);
        goto out;
      }
    }
    if (match[e] >= 0) { /* a call */
      int32_t op = node_op[e];
      uint32_t ns;
      int ok = step(&m, state, &ops[op], &ns);
      if (ok < 0) {
        set_reason(res, "model state table full (%s)", keel_strerror(ok));
        goto out;
      }
      if (ok) {
        uint64_t nh = h ^ zob[op];
        bits[op / 64] |= 1ULL << (op % 64);
        uint32_t ir = info_rank[op];
        if (ir != UINT32_MAX)
          infobits[ir / 64] |= 1ULL << (ir % 64);
        size_t nlow = lowest;
        while (nlow < n &&
               (ops[nlow].info || (bits[nlow / 64] >> (nlow % 64) & 1) != 0))
          nlow++;
        size_t klen = make_key(key, nlow, n, win_end, infobits, iw, bits);
        int ins = cache_insert(&cache, nh ^ mix64(ns), ns, key, klen);
        if (ins == 1) {
          stack_node[depth] = e;
          stack_state[depth] = state;
          stack_m[depth] = (uint32_t)lowest;
          depth++;
          state = ns;
          h = nh;
          lowest = nlow;
          /* lift the call and its return out of the list */
          next[prev[e]] = next[e];
          prev[next[e]] = prev[e];
          int32_t r = match[e];
          next[prev[r]] = next[r];
          if (next[r] != -1)
            prev[next[r]] = prev[r];
          e = next[head];
          continue;
        }
        bits[op / 64] &= ~(1ULL << (op % 64));
        if (ir != UINT32_MAX)
          infobits[ir / 64] &= ~(1ULL << (ir % 64));
        if (ins < 0) {
          set_reason(res,
                     ins == KEEL_ELIMIT
                         ? "search cache reached its memory bound (%zu states)"
                         : "out of memory (%zu states)",
                     cache.count);
          goto out;
        }
      }
      e = next[e];
    } else { /* a return: nothing before it can go next from here */
      if (depth == 0) {
        res->verdict = JEPSEN_INVALID;
        goto out;
      }
      depth--;
      e = stack_node[depth];
      state = stack_state[depth];
      lowest = stack_m[depth];
      int32_t op = node_op[e];
      h ^= zob[op];
      bits[op / 64] &= ~(1ULL << (op % 64));
      if (info_rank[op] != UINT32_MAX)
        infobits[info_rank[op] / 64] &= ~(1ULL << (info_rank[op] % 64));
      int32_t r = match[e];
      next[prev[r]] = r;
      if (next[r] != -1)
        prev[next[r]] = r;
      next[prev[e]] = e;
      prev[next[e]] = e;
      e = next[e];
    }
  }
  res->verdict = JEPSEN_VALID;
out:
  res->states = cache.count;
  cache_free(&cache);
  if (m.kind == JEPSEN_MODEL_KV)
    jepsen_kv_free(&m.kv);
  free(m.pieces);
  free(ev);
  free(next);
  free(prev);
  free(node_op);
  free(match);
  free(stack_node);
  free(stack_state);
  free(zob);
  free(bits);
  free(win_end);
  free(info_rank);
  free(stack_m);
  free(infobits);
  free(key);
}

/* Builds the search's ops from history ops idx[0..n) (sorted by call), cut
 * at position `cut`: ops invoked after it are left out, ops still running
 * at it become unknown. Reads with an unknown result are left out: they
 * cannot constrain anything. Returns the number of ops written to out. */
static size_t build_sops(const struct jepsen_history *h, const uint32_t *idx,
                         size_t n, uint64_t cut, struct sop *out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const struct jepsen_op *op = &h->ops[idx[i]];
    if (op->call > cut)
      continue;
    struct sop s = {.call = op->call,
                    .ret = op->ret,
                    .a = op->a,
                    .b = op->b,
                    .out = op->out,
                    .idx = idx[i],
                    .f = op->f,
                    .info = op->info,
                    .out_known = op->out_known};
    if (s.info || s.ret > cut) {
      s.info = true;
      s.ret = JEPSEN_RET_INFINITY;
      s.out_known = false;
    }
    if ((s.f == JEPSEN_F_READ || s.f == JEPSEN_F_GET) && !s.out_known)
      continue;
    out[k++] = s;
  }
  return k;
}

/* ---- the set checker -------------------------------------------------- */

/* Per element of one key: the earliest invoke of an add that did not :fail,
 * its earliest acknowledgement, and the last read that contained it. The
 * elements (value ids) of a key are numbered through a small hash table, so
 * checking a key costs time and memory for that key only. */
struct set_elem {
  uint32_t value;
  uint32_t seen; /* read stamp */
  uint64_t first_invoke, first_ack;
};

struct set_index {
  struct set_elem *elems;
  uint32_t *slots; /* elem index + 1 */
  size_t nslots, count;
};

static struct set_elem *set_elem(struct set_index *x, uint32_t value) {
  size_t mask = x->nslots - 1;
  size_t i = mix64(value) & mask;
  for (; x->slots[i] != 0; i = (i + 1) & mask) {
    if (x->elems[x->slots[i] - 1].value == value)
      return &x->elems[x->slots[i] - 1];
  }
  struct set_elem *e = &x->elems[x->count++];
  *e = (struct set_elem){value, 0, UINT64_MAX, UINT64_MAX};
  x->slots[i] = (uint32_t)x->count;
  return e;
}

static void check_set_key(const struct jepsen_history *h, const uint32_t *idx,
                          size_t n, struct search_result *res,
                          uint32_t *bad_op) {
  memset(res, 0, sizeof(*res));
  *bad_op = UINT32_MAX;
  size_t total = 1; /* elements mentioned by the key's ops */
  for (size_t i = 0; i < n; i++) {
    const struct jepsen_op *op = &h->ops[idx[i]];
    total += op->f == JEPSEN_F_ADD ? 1 : op->elems_n;
  }
  struct set_index x = {0};
  x.nslots = 16;
  while (x.nslots < 2 * total)
    x.nslots *= 2;
  x.elems = malloc(total * sizeof(*x.elems));
  x.slots = calloc(x.nslots, sizeof(*x.slots));
  if (!x.elems || !x.slots) {
    res->verdict = JEPSEN_UNKNOWN;
    set_reason(res, "out of memory");
    goto out;
  }
  const struct jepsen_op *final = NULL;
  for (size_t i = 0; i < n; i++) {
    const struct jepsen_op *op = &h->ops[idx[i]];
    if (op->f == JEPSEN_F_ADD) {
      struct set_elem *e = set_elem(&x, op->a);
      if (op->call < e->first_invoke)
        e->first_invoke = op->call;
      if (!op->info && op->ret < e->first_ack)
        e->first_ack = op->ret;
    } else if (op->out_known && (!final || op->ret > final->ret)) {
      final = op;
    }
  }
  uint32_t stamp = 0;
  for (size_t i = 0; i < n; i++) {
    const struct jepsen_op *op = &h->ops[idx[i]];
    if (op->f != JEPSEN_F_READ || !op->out_known)
      continue;
    stamp++;
    for (uint32_t j = 0; j < op->elems_n; j++) {
      uint32_t v = h->elems[op->elems_off + j];
      struct set_elem *e = set_elem(&x, v);
      if (e->seen == stamp) {
        res->verdict = JEPSEN_INVALID;
        *bad_op = idx[i];
        set_reason(res, "a read returned element %s twice",
                   jepsen_strtab_get(&h->values, v, NULL));
        goto out;
      }
      e->seen = stamp;
      if (e->first_invoke > op->ret) {
        res->verdict = JEPSEN_INVALID;
        *bad_op = idx[i];
        set_reason(res,
                   "a read returned element %s, which no add that did not "
                   ":fail had been invoked for before the read completed",
                   jepsen_strtab_get(&h->values, v, NULL));
        goto out;
      }
    }
  }
  if (!final) {
    res->verdict = JEPSEN_UNKNOWN;
    set_reason(res, "the set was never read");
    goto out;
  }
  stamp++;
  for (uint32_t j = 0; j < final->elems_n; j++)
    set_elem(&x, h->elems[final->elems_off + j])->seen = stamp;
  for (size_t i = 0; i < x.count; i++) {
    const struct set_elem *e = &x.elems[i];
    if (e->first_ack < final->call && e->seen != stamp) {
      res->verdict = JEPSEN_INVALID;
      *bad_op = (uint32_t)(final - h->ops);
      set_reason(res,
                 "element %s was acknowledged (line %" PRIu64
                 ") before the final read began but is missing from it",
                 jepsen_strtab_get(&h->values, e->value, NULL), e->first_ack);
      goto out;
    }
  }
  res->verdict = JEPSEN_VALID;
out:
  free(x.elems);
  free(x.slots);
}

/* ---- the driver --------------------------------------------------------- */

/* The first round's budget per key: a few milliseconds of search. */
#define FIRST_ROUND_STATES 50000
/* At most this long is spent making a witness smaller. */
#define WITNESS_SECONDS 10.0

struct keyjob {
  uint32_t key;
  const uint32_t *idx; /* ops of the key, sorted by call */
  size_t n;
  struct search_result res;
  uint32_t bad_op; /* set checker */
};

struct pool {
  struct control *ctl;
  struct keyjob *jobs;
  size_t njobs;
  atomic_size_t next;
  bool second_round; /* only jobs left undecided by the first round */
};

static void run_job(struct control *ctl, struct keyjob *j) {
  const struct jepsen_history *h = ctl->h;
  if (h->model == JEPSEN_MODEL_SET) {
    check_set_key(h, j->idx, j->n, &j->res, &j->bad_op);
  } else {
    struct sop *ops = malloc((j->n + 1) * sizeof(*ops));
    if (!ops) {
      j->res.verdict = JEPSEN_UNKNOWN;
      set_reason(&j->res, "out of memory");
      return;
    }
    size_t k = build_sops(h, j->idx, j->n, JEPSEN_RET_INFINITY, ops);
    wgl(ctl, ops, k, &j->res);
    free(ops);
  }
  if (j->res.verdict == JEPSEN_INVALID)
    atomic_store(&ctl->stop, true);
}

static void *worker(void *arg) {
  struct pool *p = arg;
  for (;;) {
    size_t i = atomic_fetch_add(&p->next, 1);
    if (i >= p->njobs)
      break;
    if (p->second_round && !p->jobs[i].res.budget)
      continue;
    if (atomic_load(&p->ctl->stop)) {
      p->jobs[i].res.verdict = JEPSEN_UNKNOWN;
      p->jobs[i].res.budget = false;
      set_reason(&p->jobs[i].res, "not checked: another key is invalid");
      continue;
    }
    run_job(p->ctl, &p->jobs[i]);
  }
  return NULL;
}

static int cmp_call(const void *x, const void *y, void *arg) {
  const struct jepsen_history *h = arg;
  const struct jepsen_op *a = &h->ops[*(const uint32_t *)x];
  const struct jepsen_op *b = &h->ops[*(const uint32_t *)y];
  return a->call < b->call ? -1 : a->call > b->call;
}

static int cmp_job_size(const void *x, const void *y) {
  const struct keyjob *a = x, *b = y;
  if (a->n != b->n)
    return a->n > b->n ? -1 : 1;
  return a->key < b->key ? -1 : a->key > b->key;
}

/* One trial of the reduction: true only when the search proved ops
 * non-linearizable. A trial gets an eighth of the time left (at least 0.2 s)
 * so one hard trial cannot use it all; an undecided trial counts as "not
 * proved", which only makes the witness larger, never wrong. */
static bool still_invalid(struct control *ctl, double until,
                          const uint32_t *idx, size_t n, uint64_t cut,
                          struct sop *scratch, bool *incomplete) {
  double now = now_s();
  if (now >= until) {
    *incomplete = true;
    return false;
  }
  double slice = (until - now) / 8;
  ctl->deadline = now + (slice < 0.2 ? 0.2 : slice);
  if (ctl->deadline > until)
    ctl->deadline = until;
  size_t k = build_sops(ctl->h, idx, n, cut, scratch);
  struct search_result r;
  wgl(ctl, scratch, k, &r);
  if (r.verdict == JEPSEN_UNKNOWN)
    *incomplete = true;
  return r.verdict == JEPSEN_INVALID;
}

/* Reduces the failing key's ops to a witness (see check.h). */
static int reduce_witness(struct control *ctl, double until,
                          const struct keyjob *j,
                          struct jepsen_check_result *r) {
  const struct jepsen_history *h = ctl->h;
  uint32_t *cur = malloc((j->n + 1) * sizeof(*cur));
  uint64_t *cuts = malloc((j->n + 1) * sizeof(*cuts));
  struct sop *scratch = malloc((j->n + 1) * sizeof(*scratch));
  if (!cur || !cuts || !scratch) {
    free(cur);
    free(cuts);
    free(scratch);
    return -ENOMEM;
  }
  bool incomplete = false;
  /* 1. The shortest failing prefix: binary search over the completions. */
  size_t ncuts = 0;
  for (size_t i = 0; i < j->n; i++) {
    const struct jepsen_op *op = &h->ops[j->idx[i]];
    if (!op->info)
      cuts[ncuts++] = op->ret;
  }
  /* sort completion positions (insertion into place is fine: they are
   * nearly sorted already, ops are in call order) */
  for (size_t i = 1; i < ncuts; i++) {
    uint64_t v = cuts[i];
    size_t k = i;
    while (k > 0 && cuts[k - 1] > v) {
      cuts[k] = cuts[k - 1];
      k--;
    }
    cuts[k] = v;
  }
  uint64_t cut = JEPSEN_RET_INFINITY;
  size_t lo = 0, hi = ncuts; /* answer in [lo, hi]; hi = ncuts: no cut */
  while (lo < hi && now_s() < until) {
    size_t mid = lo + (hi - lo) / 2;
    if (still_invalid(ctl, until, j->idx, j->n, cuts[mid], scratch,
                      &incomplete))
      hi = mid;
    else
      lo = mid + 1;
  }
  if (hi < ncuts)
    cut = cuts[hi];
  size_t n = 0;
  for (size_t i = 0; i < j->n; i++) {
    const struct jepsen_op *op = &h->ops[j->idx[i]];
    if (op->call > cut)
      continue;
    /* reads still running at the cut say nothing: leave them out */
    bool read = op->f == JEPSEN_F_READ || op->f == JEPSEN_F_GET;
    if (read && (op->info || op->ret > cut))
      continue;
    cur[n++] = j->idx[i];
  }
  /* 2. Drop reads while the rest still cannot be linearized. The read that
   * completes at the cut goes last: it is the likeliest to matter. */
  for (size_t i = 0; i < n;) {
    const struct jepsen_op *op = &h->ops[cur[i]];
    bool read = op->f == JEPSEN_F_READ || op->f == JEPSEN_F_GET;
    if (!read || op->ret == cut || n == 1) {
      i++;
      continue;
    }
    uint32_t saved = cur[i];
    memmove(cur + i, cur + i + 1, (n - i - 1) * sizeof(*cur));
    if (still_invalid(ctl, until, cur, n - 1, cut, scratch, &incomplete)) {
      n--;
    } else {
      memmove(cur + i + 1, cur + i, (n - i - 1) * sizeof(*cur));
      cur[i] = saved;
      i++;
    }
  }
  r->witness = cur;
  r->n_witness = n;
  r->witness_from = j->n;
  r->witness_cut = cut;
  r->witness_complete = !incomplete && lo == hi;
  for (size_t i = 0; i < n; i++) {
    if (h->ops[cur[i]].ret == cut) {
      r->stuck_op = cur[i];
      r->has_stuck_op = true;
    }
  }
  free(cuts);
  free(scratch);
  return 0;
}

int jepsen_check(const struct jepsen_history *h,
                 const struct jepsen_check_opts *o,
                 struct jepsen_check_result *r) {
  memset(r, 0, sizeof(*r));
  double start = now_s();
  int threads = o->threads;
  if (threads <= 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    threads = c > 0 ? (int)c : 1;
  }
  if (threads > 256)
    threads = 256;
  struct control ctl = {.deadline =
                            o->time_limit > 0 ? start + o->time_limit : 0,
                        .mem_per_search = o->max_memory / (size_t)threads,
                        .h = h};
  atomic_init(&ctl.stop, false);

  /* Group ops by key (counting sort), each key's ops by call. */
  uint32_t nkeys = h->keys.count;
  size_t *start_of = calloc((size_t)nkeys + 1, sizeof(size_t));
  uint32_t *idx = malloc((h->n_ops + 1) * sizeof(uint32_t));
  struct keyjob *jobs = calloc((size_t)nkeys + 1, sizeof(*jobs));
  pthread_t *tids = calloc((size_t)threads, sizeof(*tids));
  int rc = 0;
  if (!start_of || !idx || !jobs || !tids) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < h->n_ops; i++)
    start_of[h->ops[i].key + 1]++;
  for (uint32_t k = 0; k < nkeys; k++)
    start_of[k + 1] += start_of[k];
  {
    size_t *fill = calloc((size_t)nkeys + 1, sizeof(size_t));
    if (!fill) {
      rc = -ENOMEM;
      goto out;
    }
    for (size_t i = 0; i < h->n_ops; i++) {
      uint32_t k = h->ops[i].key;
      idx[start_of[k] + fill[k]++] = (uint32_t)i;
    }
    free(fill);
  }
  size_t njobs = 0;
  for (uint32_t k = 0; k < nkeys; k++) {
    size_t n = start_of[k + 1] - start_of[k];
    if (n == 0)
      continue;
    qsort_r(idx + start_of[k], n, sizeof(uint32_t), cmp_call, (void *)h);
    jobs[njobs++] = (struct keyjob){.key = k, .idx = idx + start_of[k], .n = n};
  }
  /* Biggest keys first, so one big key does not start last. */
  qsort(jobs, njobs, sizeof(*jobs), cmp_job_size);
  if ((size_t)threads > njobs)
    threads = njobs > 0 ? (int)njobs : 1;
  /* Two rounds: first every key with a small state budget, so that a cheap
   * failing key is found before an expensive key is searched to the end
   * (porcupine gets this from running every key at once); then the keys
   * left undecided, without a budget. */
  for (int round = 0; round < 2; round++) {
    struct pool pool = {
        .ctl = &ctl, .jobs = jobs, .njobs = njobs, .second_round = round == 1};
    atomic_init(&pool.next, 0);
    ctl.max_states = round == 0 && njobs > 1 ? FIRST_ROUND_STATES : 0;
    int started = 0;
    for (; started < threads - 1; started++) {
      if (pthread_create(&tids[started], NULL, worker, &pool) != 0)
        break; /* fewer threads is still correct */
    }
    worker(&pool);
    for (int t = 0; t < started; t++)
      pthread_join(tids[t], NULL);
  }

  r->keys = njobs;
  const struct keyjob *bad = NULL, *unknown = NULL;
  for (size_t i = 0; i < njobs; i++) {
    r->states += jobs[i].res.states;
    switch (jobs[i].res.verdict) {
    case JEPSEN_VALID:
      r->keys_valid++;
      break;
    case JEPSEN_INVALID:
      r->keys_invalid++;
      if (!bad || jobs[i].key < bad->key)
        bad = &jobs[i];
      break;
    default:
      r->keys_unknown++;
      if (!unknown)
        unknown = &jobs[i];
      break;
    }
  }
  r->seconds = now_s() - start;
  if (bad) {
    r->verdict = JEPSEN_INVALID;
    r->bad_key = bad->key;
    if (h->model == JEPSEN_MODEL_SET) {
      snprintf(r->reason, sizeof(r->reason), "%s", bad->res.reason);
      if (bad->bad_op != UINT32_MAX) {
        r->witness = malloc(sizeof(uint32_t));
        if (r->witness) {
          r->witness[0] = bad->bad_op;
          r->n_witness = 1;
          r->witness_from = bad->n;
          r->witness_cut = JEPSEN_RET_INFINITY;
          r->witness_complete = true;
        }
      }
    } else {
      snprintf(r->reason, sizeof(r->reason),
               "no order of the key's %zu ops explains what the clients saw",
               bad->n);
      if (o->witness) {
        /* The verdict is certain already; the witness gets the time left
         * (at least a second, at most WITNESS_SECONDS) and a quarter of
         * the memory per trial. */
        atomic_store(&ctl.stop, false);
        ctl.max_states = 0;
        ctl.mem_per_search /= 4;
        double left = ctl.deadline > 0 ? ctl.deadline - now_s() : 1e9;
        if (left > WITNESS_SECONDS)
          left = WITNESS_SECONDS;
        if (left < 1.0)
          left = 1.0;
        double w0 = now_s();
        rc = reduce_witness(&ctl, w0 + left, bad, r);
        r->witness_seconds = now_s() - w0;
      }
    }
  } else if (unknown) {
    r->verdict = JEPSEN_UNKNOWN;
    const char *key = jepsen_strtab_get(&h->keys, unknown->key, NULL);
    if (h->keys.count == 1 && strcmp(key, "nil") == 0)
      snprintf(r->reason, sizeof(r->reason), "%s", unknown->res.reason);
    else
      snprintf(r->reason, sizeof(r->reason), "key %s: %s", key,
               unknown->res.reason);
  } else {
    r->verdict = JEPSEN_VALID;
  }
out:
  free(start_of);
  free(idx);
  free(jobs);
  free(tids);
  if (rc != 0)
    jepsen_check_result_free(r);
  return rc;
}

void jepsen_check_result_free(struct jepsen_check_result *r) {
  free(r->witness);
  r->witness = NULL;
  r->n_witness = 0;
}

static int cmp_call_plain(const void *x, const void *y, void *arg) {
  return cmp_call(x, y, arg);
}

void jepsen_check_report(const struct jepsen_history *h,
                         const struct jepsen_check_result *r, FILE *out) {
  const char *what = h->model == JEPSEN_MODEL_SET ? "set" : "linearizable";
  switch (r->verdict) {
  case JEPSEN_VALID:
    fprintf(out,
            "VALID: %s; %zu ops on %zu key%s, all %s (%" PRIu64
            " search states, %.3f s)\n",
            what, h->n_ops, r->keys, r->keys == 1 ? "" : "s",
            h->model == JEPSEN_MODEL_SET ? "consistent" : "linearizable",
            r->states, r->seconds);
    return;
  case JEPSEN_UNKNOWN:
    fprintf(out,
            "UNKNOWN: %zu of %zu key%s undecided, none invalid (%s; %.3f "
            "s)\n",
            r->keys_unknown, r->keys, r->keys == 1 ? "" : "s", r->reason,
            r->seconds);
    return;
  case JEPSEN_INVALID:
    break;
  }
  const char *key = jepsen_strtab_get(&h->keys, r->bad_key, NULL);
  char what_key[160];
  if (h->keys.count == 1 && strcmp(key, "nil") == 0)
    snprintf(what_key, sizeof(what_key), "the history"); /* not keyed */
  else
    snprintf(what_key, sizeof(what_key), "key %s", key);
  fprintf(
      out, "INVALID: %s is not %s: %s (%zu of %zu key%s invalid, %.3f s)\n",
      what_key, h->model == JEPSEN_MODEL_SET ? "consistent" : "linearizable",
      r->reason, r->keys_invalid, r->keys, r->keys == 1 ? "" : "s", r->seconds);
  if (r->n_witness == 0)
    return;
  uint32_t *w = malloc(r->n_witness * sizeof(*w));
  if (!w)
    return;
  memcpy(w, r->witness, r->n_witness * sizeof(*w));
  qsort_r(w, r->n_witness, sizeof(*w), cmp_call_plain, (void *)h);
  if (h->model == JEPSEN_MODEL_SET) {
    fprintf(out, "The op that shows it:\n");
  } else {
    fprintf(out,
            "These %zu of the key's %zu ops cannot be linearized together%s "
            "(reduced in %.3f s).\n"
            "They are the shortest prefix of the key's history that fails "
            "(ops still running at\nits end count as :info), with every read "
            "that is not needed for the failure removed;\nany linearization "
            "of the whole history would give one of these. In call order:\n",
            r->n_witness, r->witness_from,
            r->witness_complete ? ""
                                : " (the reduction ran out of time: a "
                                  "smaller one may exist)",
            r->witness_seconds);
  }
  size_t first = r->n_witness > 60 ? r->n_witness - 60 : 0;
  if (first > 0)
    fprintf(out, "  ... %zu earlier ops not shown\n", first);
  char buf[768];
  for (size_t i = first; i < r->n_witness; i++) {
    const struct jepsen_op *op = &h->ops[w[i]];
    jepsen_op_describe(h, op, buf, sizeof(buf));
    bool stuck = r->has_stuck_op && w[i] == r->stuck_op;
    bool running = !op->info && op->ret > r->witness_cut;
    fprintf(out, "  %s%s\n", buf,
            stuck     ? "   <- no order explains this completion"
            : running ? "   (still running at that point: counts as :info)"
                      : "");
  }
  free(w);
}

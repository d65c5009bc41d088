/* sim.c — keel-sim: a deterministic simulator for the raft core.
 *
 * One process runs a whole cluster of raft cores (3 or 5 voters plus two
 * spare nodes that membership changes may add) over a simulated network,
 * disk and clock. Everything random comes from one PRNG seeded by --seed, so
 * a seed replays the same run byte for byte; the FNV hash of the event trace
 * printed at the end proves it.
 *
 * A run has two phases (TigerBeetle's VOPR):
 *  SAFETY   EVENTS events under faults whose rates are drawn per seed (swarm
 *           testing): loss, duplication, delay/reordering, partitions
 *           (halves, isolated leader, one-way, bridge), crash + restart that
 *           loses every unsynced write, slow disks, clock skew, snapshots
 *           and compaction, membership changes and leader transfers.
 *  LIVENESS faults heal (every node up, every link up, no loss). Within
 *           LIVE_TICKS nominal ticks a leader must commit a fresh write and
 *           every member must apply it.
 *
 * Invariants are checked after every event (see check_all and the apply /
 * persist hooks): election safety, log matching (inductively: equal
 * (index, term) => equal entry and equal previous term), leader
 * completeness, leader append-only, state-machine safety (a hash chain over
 * applied entries and installed snapshots), commit/applied monotonic,
 * acknowledged writes durable, linearizable reads (a read's state includes
 * every index any node knew committed when the read was invoked).
 *
 * The disk: a Ready is one disk write; until it completes nothing in it is
 * durable and its messages are not sent. A crash drops the write in flight.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel_error.h"
#include "raft.h"

#define MAXN 7
#define NKEYS 8
#define TICK 100 /* time units per nominal tick */
#define ELECTION_TICK 10
#define HEARTBEAT_TICK 2
#define LIVE_TICKS 500     /* heal -> a leader commits a fresh write */
#define CATCHUP_TICKS 3000 /* heal -> every member applied it */
#define MAX_PENDING 128
#define TRACE_RING 40

/* ---- PRNG and hashing ------------------------------------------------- */

static uint64_t rnd_state;
static uint64_t rnd(void) {
  uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static uint64_t rnd_below(uint64_t n) {
  return n ? rnd() % n : 0;
}
static double rnd_unit(void) {
  return (double)(rnd() >> 11) / (double)(1ULL << 53);
}
static bool chance(double p) {
  return p > 0 && rnd_unit() < p;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}
static uint64_t fnv64(uint64_t h, uint64_t v) {
  return fnv(h, &v, sizeof(v));
}
#define FNV0 0xcbf29ce484222325ULL

/* ---- the state machine ------------------------------------------------ */

enum { OP_WRITE = 1, OP_CONF = 2 };
struct op {
  uint32_t kind;
  uint32_t node; /* proposer */
  uint64_t id;   /* write id, or conf change type */
  uint64_t key;  /* key, or conf node id */
  uint64_t value;
};

struct smsnap {
  uint64_t index;
  uint64_t hash;
  uint64_t kv[NKEYS];
};

/* ---- nodes, events ---------------------------------------------------- */

struct node {
  uint64_t id;
  bool up;
  uint64_t inc; /* incarnation */
  struct raft *r;
  struct raft_memstore *disk;
  struct smsnap durable;     /* SM snapshot stored with disk's snapshot */
  struct smsnap sm;          /* the live state machine */
  struct smsnap incoming[4]; /* snapshot data received from the network */
  int n_incoming;
  bool disk_busy;
  struct raft_ready rd;
  double tick_period;
  uint64_t disk_max;
  bool slow_disk;
  /* invariant bookkeeping (per incarnation) */
  uint64_t seen_commit, seen_applied;
  uint64_t lead_term, lead_last, lead_last_term;
  uint64_t pending_reads[MAX_PENDING][2]; /* read id, index */
  int n_pending_reads;
};

enum {
  EV_TICK,
  EV_DELIVER,
  EV_DISK,
  EV_CLIENT,
  EV_NEMESIS,
  EV_RESTART,
  EV_CRASH
};

struct event {
  uint64_t time, seq;
  int type;
  int node;
  uint64_t inc;
  struct raft_message *msg;
  struct smsnap *snap; /* data riding with a snapshot message */
};

struct write_rec {
  uint64_t id;
  int node;
  uint64_t inc;
  uint64_t start;
};
struct read_rec {
  uint64_t id;
  int node;
  uint64_t inc;
  uint64_t key;
  uint64_t inv_commit;
  uint64_t start;
};

struct trace_ev {
  uint64_t time;
  int type, node;
  int mtype;
  uint64_t from, to, term, index, extra;
};

struct params {
  double loss, dup, reorder;
  uint64_t delay_max;
  double p_client, p_partition, p_crash, p_snapshot, p_conf, p_transfer;
  double p_new_leader_crash; /* crash a leader just after its election */
  double skew;
  int slow_disks;
  bool pre_vote, check_quorum;
  int max_inflight;
  uint64_t max_msg_bytes;
};

struct sim {
  uint64_t seed;
  int n;     /* initial voters */
  int total; /* n + spares */
  struct params p;
  struct node nodes[MAXN];
  bool link[MAXN][MAXN];
  struct event *heap;
  size_t heap_n, heap_cap;
  uint64_t now, seq, events;
  uint64_t trace_hash;
  struct trace_ev ring[TRACE_RING];
  uint64_t ring_n;
  bool live;
  /* global knowledge */
  uint64_t *leader_of_term;
  size_t lot_cap;
  uint64_t *lc_index, *lc_eterm; /* per term: highest index its leader
                                    committed, and that entry's term */
  size_t lc_cap;
  uint64_t *g_term, *g_ent, *g_sm; /* by index, for applied entries */
  size_t g_n, g_cap;
  uint64_t g_commit; /* max commit index any node ever had */
  uint64_t max_acked;
  /* (index, term) -> (entry hash, prev term) for log matching */
  uint64_t *lm_keys, *lm_vals;
  size_t lm_cap, lm_n;
  struct write_rec writes[MAX_PENDING];
  int n_writes;
  struct read_rec reads[MAX_PENDING];
  int n_reads;
  uint64_t next_op_id;
  uint64_t probe_id, probe_index;
  /* figures */
  uint64_t acked, reads_ok, crashes, conf_changes, snapshots, transfers;
  uint64_t installs, conf_applied;
  bool verbose;
};

static struct sim S;
static bool verbose_trace; /* -v: print every event as it happens */
static jmp_buf fail_jmp;
static const char *fail_prog = "keel-sim";

static const char *ev_name(int t) {
  static const char *n[] = {"tick",   "deliver", "disk",
                            "client", "nemesis", "restart"};
  return n[t];
}

static void print_ev(const struct trace_ev *t);

static void trace(int type, int node, const struct raft_message *m,
                  uint64_t extra) {
  struct trace_ev *t = &S.ring[S.ring_n++ % TRACE_RING];
  memset(t, 0, sizeof(*t));
  t->time = S.now;
  t->type = type;
  t->node = node;
  t->extra = extra;
  if (m) {
    t->mtype = m->type;
    t->from = m->from;
    t->to = m->to;
    t->term = m->term;
    t->index = m->index;
  }
  uint64_t h = S.trace_hash;
  h = fnv64(h, S.now);
  h = fnv64(h, (uint64_t)type << 8 | (uint64_t)node);
  h = fnv64(h, extra);
  if (m) {
    h = fnv64(h, (uint64_t)m->type);
    h = fnv64(h, m->from << 16 | m->to);
    h = fnv64(h, m->term);
    h = fnv64(h, m->index);
    h = fnv64(h, m->commit);
    h = fnv64(h, m->n_entries);
  }
  S.trace_hash = h;
  if (verbose_trace)
    print_ev(t);
}

/* The client history goes into the same trace: invocations and
 * completions of writes and reads, with ids and indexes. */
enum { H_WRITE, H_ACK, H_READ, H_READ_OK };
static const char *hist_name[] = {"write", "write-acked", "read",
                                  "read-served"};

static void hist(int kind, uint64_t node, uint64_t id, uint64_t index) {
  struct raft_message m = {0};
  m.from = (uint64_t)kind;
  m.term = id;
  m.index = index;
  trace(EV_CLIENT, (int)node, &m, 0);
}

static void print_ev(const struct trace_ev *t) {
  fprintf(stderr, "  t=%" PRIu64 " %-8s n%d", t->time, ev_name(t->type),
          t->node);
  if (t->type == EV_CLIENT)
    fprintf(stderr, " %s id=%" PRIu64 " index=%" PRIu64, hist_name[t->from],
            t->term, t->index);
  else if (t->mtype)
    fprintf(stderr,
            " %s %" PRIu64 "->%" PRIu64 " term=%" PRIu64 " index=%" PRIu64,
            raft_msg_type_name(t->mtype), t->from, t->to, t->term, t->index);
  if (t->extra)
    fprintf(stderr, " x=%" PRIu64, t->extra);
  fprintf(stderr, "\n");
}

static void dump_trace(void) {
  uint64_t start = S.ring_n > TRACE_RING ? S.ring_n - TRACE_RING : 0;
  fprintf(stderr, "last %" PRIu64 " events:\n", S.ring_n - start);
  for (uint64_t i = start; i < S.ring_n; i++)
    print_ev(&S.ring[i % TRACE_RING]);
  for (int i = 0; i < S.total; i++) {
    struct node *nd = &S.nodes[i];
    if (!nd->up) {
      fprintf(stderr, "  n%" PRIu64 ": down\n", nd->id);
      continue;
    }
    fprintf(stderr,
            "  n%" PRIu64 ": %s term=%" PRIu64 " lead=%" PRIu64
            " commit=%" PRIu64 " applied=%" PRIu64 " last=%" PRIu64 "\n",
            nd->id, raft_role_name(raft_role(nd->r)), raft_term(nd->r),
            raft_leader(nd->r), raft_committed(nd->r), nd->sm.index,
            raft_last_index(nd->r));
    uint64_t v[RAFT_MAX_NODES], l[RAFT_MAX_NODES];
    size_t nv, nl;
    raft_conf(nd->r, v, &nv, l, &nl);
    fprintf(stderr, "      voters:");
    for (size_t k = 0; k < nv; k++)
      fprintf(stderr, " %" PRIu64, v[k]);
    fprintf(stderr, " learners:");
    for (size_t k = 0; k < nl; k++)
      fprintf(stderr, " %" PRIu64, l[k]);
    fprintf(stderr, "\n");
    if (raft_role(nd->r) == RAFT_LEADER) {
      char buf[1024];
      raft_describe_progress(nd->r, buf, sizeof(buf));
      fprintf(stderr, "      progress: %s\n", buf);
    }
  }
}

__attribute__((format(printf, 2, 3))) static void fail(const char *inv,
                                                       const char *fmt, ...) {
  fprintf(stderr, "VIOLATION: %s: ", inv);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr,
          "\nseed %" PRIu64 " (event %" PRIu64 ", time %" PRIu64 ", %s)\n"
          "reproduce: %s --seed %" PRIu64 " --nodes %d\n",
          S.seed, S.events, S.now, S.live ? "liveness" : "safety", fail_prog,
          S.seed, S.n);
  dump_trace();
  longjmp(fail_jmp, 1);
}

/* ---- event heap ------------------------------------------------------- */

static bool ev_less(const struct event *a, const struct event *b) {
  return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void heap_push(struct event e) {
  if (S.heap_n == S.heap_cap) {
    S.heap_cap = S.heap_cap ? S.heap_cap * 2 : 1024;
    S.heap = realloc(S.heap, S.heap_cap * sizeof(*S.heap));
    if (!S.heap)
      abort();
  }
  e.seq = S.seq++;
  size_t i = S.heap_n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!ev_less(&e, &S.heap[p]))
      break;
    S.heap[i] = S.heap[p];
    i = p;
  }
  S.heap[i] = e;
}

static struct event heap_pop(void) {
  struct event top = S.heap[0];
  struct event last = S.heap[--S.heap_n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const struct event *best = &last;
    if (l < S.heap_n && ev_less(&S.heap[l], best)) {
      m = l;
      best = &S.heap[l];
    }
    if (r < S.heap_n && ev_less(&S.heap[r], best))
      m = r;
    if (m == i)
      break;
    S.heap[i] = S.heap[m];
    i = m;
  }
  if (S.heap_n)
    S.heap[i] = last;
  return top;
}

static void schedule(uint64_t delay, int type, int node, uint64_t inc) {
  struct event e = {0};
  e.time = S.now + delay;
  e.type = type;
  e.node = node;
  e.inc = inc;
  heap_push(e);
}

/* ---- messages --------------------------------------------------------- */

static struct raft_message *msg_copy(const struct raft_message *m) {
  struct raft_message *c = malloc(sizeof(*c));
  if (!c)
    abort();
  *c = *m;
  if (m->n_entries) {
    c->entries = malloc(m->n_entries * sizeof(*c->entries));
    if (!c->entries)
      abort();
    for (size_t i = 0; i < m->n_entries; i++) {
      c->entries[i] = m->entries[i];
      c->entries[i].data = NULL;
      if (m->entries[i].len) {
        c->entries[i].data = malloc(m->entries[i].len);
        if (!c->entries[i].data)
          abort();
        memcpy(c->entries[i].data, m->entries[i].data, m->entries[i].len);
      }
    }
  }
  if (m->context_len) {
    c->context = malloc(m->context_len);
    if (!c->context)
      abort();
    memcpy(c->context, m->context, m->context_len);
  }
  return c;
}

static void msg_free(struct raft_message *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->n_entries; i++)
    free(m->entries[i].data);
  free(m->entries);
  free(m->context);
  free(m);
}

static int idx_of(uint64_t id) {
  return (int)id - 1;
}

static void net_send(struct node *from, const struct raft_message *m) {
  if (m->to == 0 || m->to > (uint64_t)S.total)
    return;
  int f = idx_of(from->id), t = idx_of(m->to);
  if (!S.link[f][t] || (!S.live && chance(S.p.loss))) {
    /* keeld's transport reports what it could not deliver (node.c); the
     * core must stay safe with those reports arriving mid-Ready. */
    if (m->type == RAFT_MSG_SNAPSHOT)
      raft_report_snapshot(from->r, m->to, false);
    else
      raft_report_unreachable(from->r, m->to);
    return;
  }
  int copies = (!S.live && chance(S.p.dup)) ? 2 : 1;
  for (int c = 0; c < copies; c++) {
    struct event e = {0};
    uint64_t d = 1 + rnd_below(S.p.delay_max);
    if (!S.live && chance(S.p.reorder))
      d += rnd_below(S.p.delay_max * 10);
    e.time = S.now + d;
    e.type = EV_DELIVER;
    e.node = t;
    e.msg = msg_copy(m);
    if (m->type == RAFT_MSG_SNAPSHOT) {
      /* The transport streams the sender's stored snapshot. */
      if (from->durable.index != m->snapshot.meta.index)
        fail("snapshot-send",
             "n%" PRIu64 " sends snapshot %" PRIu64 " but stores %" PRIu64,
             from->id, m->snapshot.meta.index, from->durable.index);
      e.snap = malloc(sizeof(*e.snap));
      if (!e.snap)
        abort();
      *e.snap = from->durable;
    }
    heap_push(e);
  }
}

/* ---- global checks ---------------------------------------------------- */

static void grow_u64(uint64_t **a, size_t *cap, size_t need) {
  if (need <= *cap)
    return;
  size_t nc = *cap ? *cap : 256;
  while (nc < need)
    nc *= 2;
  *a = realloc(*a, nc * sizeof(uint64_t));
  if (!*a)
    abort();
  memset(*a + *cap, 0, (nc - *cap) * sizeof(uint64_t));
  *cap = nc;
}

static uint64_t entry_hash(const struct raft_entry *e) {
  uint64_t h = fnv64(FNV0, (uint64_t)e->type);
  return fnv(h, e->data, e->len);
}

static void lm_check(struct node *nd, uint64_t index, uint64_t term,
                     uint64_t ehash, uint64_t prev_term) {
  uint64_t key = index * 0x100000001ULL ^ term;
  if (key == 0)
    key = 1;
  size_t mask = S.lm_cap - 1;
  size_t i = (size_t)(fnv64(FNV0, key) & mask);
  while (S.lm_keys[i * 2] != 0) {
    if (S.lm_keys[i * 2] == index && S.lm_keys[i * 2 + 1] == term) {
      if (S.lm_vals[i * 2] != ehash)
        fail("log-matching",
             "n%" PRIu64 " holds a different entry at index %" PRIu64
             " term %" PRIu64,
             nd->id, index, term);
      if (S.lm_vals[i * 2 + 1] != prev_term)
        fail("log-matching",
             "n%" PRIu64 " entry %" PRIu64 "/%" PRIu64 " follows term %" PRIu64
             ", another log has %" PRIu64,
             nd->id, index, term, prev_term, S.lm_vals[i * 2 + 1]);
      return;
    }
    i = (i + 1) & mask;
  }
  if (S.lm_n * 2 >= S.lm_cap)
    return; /* table full: stop recording (bounded memory) */
  S.lm_keys[i * 2] = index;
  S.lm_keys[i * 2 + 1] = term;
  S.lm_vals[i * 2] = ehash;
  S.lm_vals[i * 2 + 1] = prev_term;
  S.lm_n++;
}

static void record_leader(struct node *nd) {
  uint64_t t = raft_term(nd->r);
  grow_u64(&S.leader_of_term, &S.lot_cap, t + 1);
  if (S.leader_of_term[t] == 0) {
    S.leader_of_term[t] = nd->id;
    /* A new leader is still bringing followers up to date: crashing it now
     * is how Figure 8 histories start. */
    if (!S.live && chance(S.p.p_new_leader_crash))
      schedule(1 + rnd_below(3 * TICK), EV_CRASH, idx_of(nd->id), nd->inc);
    /* Leader completeness: whatever a leader of an earlier term committed
     * is in our log (log matching then covers the prefix). */
    uint64_t g = 0, gt = 0;
    for (uint64_t u = 1; u < t && u < S.lc_cap; u++)
      if (S.lc_index[u] > g) {
        g = S.lc_index[u];
        gt = S.lc_eterm[u];
      }
    if (g > 0) {
      uint64_t lt = raft_log_term(nd->r, g);
      bool compacted = lt == 0 && raft_last_index(nd->r) >= g;
      if (!compacted && lt != gt)
        fail("leader-completeness",
             "n%" PRIu64 " leads term %" PRIu64 " but has term %" PRIu64
             " at index %" PRIu64 ", committed earlier with term %" PRIu64,
             nd->id, t, lt, g, gt);
    }
  } else if (S.leader_of_term[t] != nd->id) {
    fail("election-safety",
         "n%" PRIu64 " and n%" PRIu64 " both lead term %" PRIu64, nd->id,
         S.leader_of_term[t], t);
  }
}

static void check_node(struct node *nd) {
  struct raft *r = nd->r;
  uint64_t c = raft_committed(r);
  if (c < nd->seen_commit)
    fail("commit-monotonic", "n%" PRIu64 " commit went %" PRIu64 " -> %" PRIu64,
         nd->id, nd->seen_commit, c);
  nd->seen_commit = c;
  if (c > S.g_commit)
    S.g_commit = c;
  if (raft_applied(r) < nd->seen_applied)
    fail("applied-monotonic", "n%" PRIu64 " applied went back", nd->id);
  nd->seen_applied = raft_applied(r);
  if (c > raft_last_index(r))
    fail("commit-bound", "n%" PRIu64 " commit %" PRIu64 " > last %" PRIu64,
         nd->id, c, raft_last_index(r));
  if (raft_role(r) == RAFT_LEADER) {
    record_leader(nd);
    uint64_t t = raft_term(r);
    if (nd->lead_term == t) {
      if (raft_last_index(r) < nd->lead_last ||
          raft_log_term(r, nd->lead_last) != nd->lead_last_term)
        fail("leader-append-only",
             "n%" PRIu64 " (leader of term %" PRIu64 ") lost entry %" PRIu64,
             nd->id, t, nd->lead_last);
    }
    size_t c1 = S.lc_cap, c2 = S.lc_cap;
    grow_u64(&S.lc_index, &c1, t + 1);
    grow_u64(&S.lc_eterm, &c2, t + 1);
    S.lc_cap = c1;
    if (c > S.lc_index[t]) {
      S.lc_index[t] = c;
      S.lc_eterm[t] = raft_log_term(r, c);
    }
    nd->lead_term = t;
    nd->lead_last = raft_last_index(r);
    nd->lead_last_term = raft_log_term(r, nd->lead_last);
  }
}

static void check_all(void) {
  for (int i = 0; i < S.total; i++)
    if (S.nodes[i].up)
      check_node(&S.nodes[i]);
}

/* ---- the state machine and clients ------------------------------------ */

static void serve_reads(struct node *nd) {
  for (int i = 0; i < nd->n_pending_reads;) {
    uint64_t id = nd->pending_reads[i][0], index = nd->pending_reads[i][1];
    if (nd->sm.index < index) {
      i++;
      continue;
    }
    for (int k = 0; k < S.n_reads; k++) {
      struct read_rec *rr = &S.reads[k];
      if (rr->id != id)
        continue;
      if (nd->sm.index < rr->inv_commit)
        fail("linearizable-read",
             "read %" PRIu64 " at n%" PRIu64 " served at applied %" PRIu64
             " (read index %" PRIu64 ") but index %" PRIu64
             " was committed before it was invoked",
             id, nd->id, nd->sm.index, index, rr->inv_commit);
      S.reads_ok++;
      hist(H_READ_OK, nd->id, id, nd->sm.index);
      S.reads[k] = S.reads[--S.n_reads];
      break;
    }
    nd->pending_reads[i][0] = nd->pending_reads[--nd->n_pending_reads][0];
    nd->pending_reads[i][1] = nd->pending_reads[nd->n_pending_reads][1];
  }
}

static void sm_apply(struct node *nd, const struct raft_entry *e) {
  if (e->index != nd->sm.index + 1)
    fail("apply-order", "n%" PRIu64 " applies %" PRIu64 " after %" PRIu64,
         nd->id, e->index, nd->sm.index);
  uint64_t eh = entry_hash(e);
  bool first = e->index == S.g_n + 1; /* first node to apply this index */
  nd->sm.hash = fnv64(fnv64(nd->sm.hash, e->index), eh);
  nd->sm.index = e->index;
  struct op op;
  if (e->type == RAFT_ENTRY_NORMAL && e->len == sizeof(op)) {
    memcpy(&op, e->data, sizeof(op));
    if (op.kind == OP_WRITE) {
      nd->sm.kv[op.key % NKEYS] = op.value;
      if (op.node == nd->id) {
        for (int k = 0; k < S.n_writes; k++) {
          if (S.writes[k].id == op.id && S.writes[k].inc == nd->inc &&
              S.writes[k].node == idx_of(nd->id)) {
            S.acked++;
            hist(H_ACK, nd->id, op.id, e->index);
            if (e->index > S.max_acked)
              S.max_acked = e->index;
            S.writes[k] = S.writes[--S.n_writes];
            break;
          }
        }
      }
      if (op.id == S.probe_id && S.probe_index == 0)
        S.probe_index = e->index;
    }
  } else if (e->type == RAFT_ENTRY_CONF_CHANGE && e->len == sizeof(op)) {
    memcpy(&op, e->data, sizeof(op));
    struct raft_conf_change cc = {(int)op.id, op.key};
    if (raft_apply_conf_change(nd->r, &cc) == 0 && first)
      S.conf_applied++;
  }
  /* state-machine safety */
  uint64_t i = e->index;
  if (i <= S.g_n) {
    if (S.g_term[i - 1] != e->term || S.g_ent[i - 1] != eh ||
        S.g_sm[i - 1] != nd->sm.hash)
      fail("state-machine-safety",
           "n%" PRIu64 " applied a different entry at %" PRIu64
           " (term %" PRIu64 ", others applied term %" PRIu64 ")",
           nd->id, i, e->term, S.g_term[i - 1]);
  } else if (i == S.g_n + 1) {
    size_t c1 = S.g_cap, c2 = S.g_cap, c3 = S.g_cap;
    grow_u64(&S.g_term, &c1, i);
    grow_u64(&S.g_ent, &c2, i);
    grow_u64(&S.g_sm, &c3, i);
    S.g_cap = c1;
    S.g_term[i - 1] = e->term;
    S.g_ent[i - 1] = eh;
    S.g_sm[i - 1] = nd->sm.hash;
    S.g_n = i;
    if (i > S.g_commit)
      fail("apply-uncommitted",
           "n%" PRIu64 " applied %" PRIu64 " beyond any commit index %" PRIu64,
           nd->id, i, S.g_commit);
  } else {
    fail("state-machine-safety",
         "n%" PRIu64 " applied %" PRIu64 " but nothing applied %" PRIu64,
         nd->id, i, S.g_n + 1);
  }
}

/* ---- driving a node --------------------------------------------------- */

static void finish_ready(struct node *nd);

static void pump(struct node *nd) {
  while (nd->up && !nd->disk_busy && raft_has_ready(nd->r)) {
    raft_ready(nd->r, &nd->rd);
    bool io =
        nd->rd.hard_state_changed || nd->rd.n_entries || nd->rd.has_snapshot;
    if (io) {
      nd->disk_busy = true;
      uint64_t lat = 1 + rnd_below(nd->disk_max);
      schedule(lat, EV_DISK, idx_of(nd->id), nd->inc);
      return;
    }
    finish_ready(nd);
  }
}

static void finish_ready(struct node *nd) {
  struct raft_ready *rd = &nd->rd;
  struct raft_hard_state old;
  raft_memstore_storage(nd->disk).hard_state(nd->disk, &old);
  if (rd->has_snapshot) {
    const struct smsnap *in = NULL;
    for (int k = 0; k < 4 && k < nd->n_incoming; k++)
      if (nd->incoming[k].index == rd->snapshot.index)
        in = &nd->incoming[k];
    if (!in)
      fail("snapshot-data",
           "n%" PRIu64 " installs snapshot %" PRIu64 " it never received",
           nd->id, rd->snapshot.index);
    if (rd->snapshot.index > S.g_n ||
        S.g_sm[rd->snapshot.index - 1] != in->hash)
      fail("state-machine-safety",
           "n%" PRIu64 " installs a snapshot at %" PRIu64
           " that differs from the applied history",
           nd->id, rd->snapshot.index);
    raft_memstore_apply_snapshot(nd->disk, &rd->snapshot);
    S.installs++;
    nd->durable = *in;
    nd->sm = *in;
  }
  if (rd->n_entries) {
    struct raft_storage st = raft_memstore_storage(nd->disk);
    if (raft_role(nd->r) == RAFT_LEADER && rd->n_entries &&
        rd->entries[0].index <= st.last_index(nd->disk)) {
      uint64_t t = 0;
      st.term(nd->disk, rd->entries[0].index, &t);
      if (t != rd->entries[0].term && t == raft_term(nd->r))
        fail("leader-append-only",
             "leader n%" PRIu64 " overwrites its entry %" PRIu64, nd->id,
             rd->entries[0].index);
    }
    int rc = raft_memstore_append(nd->disk, rd->entries, rd->n_entries);
    if (rc != 0)
      fail("persist", "n%" PRIu64 " cannot append at %" PRIu64 ": %s", nd->id,
           rd->entries[0].index, keel_strerror(rc));
    for (size_t i = 0; i < rd->n_entries; i++) {
      uint64_t pt = 0;
      st.term(nd->disk, rd->entries[i].index - 1, &pt);
      lm_check(nd, rd->entries[i].index, rd->entries[i].term,
               entry_hash(&rd->entries[i]), pt);
    }
  }
  if (rd->hard_state_changed) {
    if (rd->hard_state.term < old.term)
      fail("term-monotonic",
           "n%" PRIu64 " persists term %" PRIu64 " after term %" PRIu64, nd->id,
           rd->hard_state.term, old.term);
    if (rd->hard_state.term == old.term && old.vote &&
        rd->hard_state.vote != old.vote)
      fail("one-vote-per-term",
           "n%" PRIu64 " changes its vote in term %" PRIu64, nd->id, old.term);
    if (rd->hard_state.commit < old.commit)
      fail("commit-monotonic", "n%" PRIu64 " persists a lower commit", nd->id);
    raft_memstore_set_hard_state(nd->disk, &rd->hard_state);
  }
  for (size_t i = 0; i < rd->n_messages; i++)
    net_send(nd, &rd->messages[i]);
  for (size_t i = 0; i < rd->n_committed; i++) {
    if (rd->committed[i].index <= nd->sm.index)
      continue; /* covered by the snapshot installed above */
    sm_apply(nd, &rd->committed[i]);
  }
  for (size_t i = 0; i < rd->n_read_states; i++) {
    uint64_t id = 0;
    if (rd->read_states[i].context_len == 8)
      memcpy(&id, rd->read_states[i].context, 8);
    if (nd->n_pending_reads < MAX_PENDING) {
      nd->pending_reads[nd->n_pending_reads][0] = id;
      nd->pending_reads[nd->n_pending_reads][1] = rd->read_states[i].index;
      nd->n_pending_reads++;
    }
  }
  raft_advance(nd->r, rd);
  nd->disk_busy = false;
  serve_reads(nd);
  check_node(nd);
}

static int boot(struct node *nd) {
  struct raft_config cfg = {0};
  cfg.id = nd->id;
  struct raft_snapshot_meta snap;
  raft_memstore_storage(nd->disk).snapshot(nd->disk, &snap);
  if (snap.index) {
    memcpy(cfg.voters, snap.voters, sizeof(cfg.voters));
    cfg.n_voters = snap.n_voters;
    memcpy(cfg.learners, snap.learners, sizeof(cfg.learners));
    cfg.n_learners = snap.n_learners;
  } else {
    for (int i = 0; i < S.n; i++)
      cfg.voters[i] = (uint64_t)i + 1;
    cfg.n_voters = (size_t)S.n;
  }
  nd->sm = nd->durable;
  cfg.applied = nd->durable.index;
  cfg.election_tick = ELECTION_TICK;
  cfg.heartbeat_tick = HEARTBEAT_TICK;
  cfg.pre_vote = S.p.pre_vote;
  cfg.check_quorum = S.p.check_quorum;
  cfg.max_inflight = S.p.max_inflight;
  cfg.max_msg_bytes = S.p.max_msg_bytes;
  cfg.max_uncommitted = 256;
  cfg.seed = S.seed * 1000003 + nd->inc;
  cfg.storage = raft_memstore_storage(nd->disk);
  int rc = raft_new(&cfg, &nd->r);
  if (rc != 0)
    fail("boot", "n%" PRIu64 " cannot start: %s", nd->id, keel_strerror(rc));
  nd->up = true;
  nd->disk_busy = false;
  nd->n_incoming = 0;
  nd->n_pending_reads = 0;
  nd->seen_commit = 0;
  nd->seen_applied = 0;
  nd->lead_term = 0;
  schedule((uint64_t)(nd->tick_period * (0.5 + rnd_unit())), EV_TICK,
           idx_of(nd->id), nd->inc);
  return 0;
}

static void crash(struct node *nd) {
  if (!nd->up)
    return;
  raft_free(nd->r); /* the write in flight (if any) is lost with it */
  nd->r = NULL;
  nd->up = false;
  nd->disk_busy = false;
  nd->inc++;
  S.crashes++;
}

static struct node *find_leader(void) {
  struct node *best = NULL;
  for (int i = 0; i < S.total; i++) {
    struct node *nd = &S.nodes[i];
    if (nd->up && raft_role(nd->r) == RAFT_LEADER &&
        (!best || raft_term(nd->r) > raft_term(best->r)))
      best = nd;
  }
  return best;
}

static struct node *random_up(void) {
  int c[MAXN], k = 0;
  for (int i = 0; i < S.total; i++)
    if (S.nodes[i].up)
      c[k++] = i;
  return k ? &S.nodes[c[rnd_below((uint64_t)k)]] : NULL;
}

static void propose_write(struct node *nd, uint64_t id) {
  struct op op = {OP_WRITE, (uint32_t)nd->id, id, rnd_below(NKEYS), id};
  int rc = raft_propose(nd->r, &op, sizeof(op), NULL);
  if (rc == 0 && S.n_writes < MAX_PENDING) {
    hist(H_WRITE, nd->id, id, 0);
    struct write_rec *w = &S.writes[S.n_writes++];
    w->id = id;
    w->node = idx_of(nd->id);
    w->inc = nd->inc;
    w->start = S.now;
  }
}

static void client_op(void) {
  struct node *nd = random_up();
  if (!nd)
    return;
  uint64_t id = ++S.next_op_id;
  if (rnd_below(10) < 7) {
    propose_write(nd, id);
  } else if (S.n_reads < MAX_PENDING) {
    if (raft_read_index(nd->r, &id, 8) == 0) {
      struct read_rec *rr = &S.reads[S.n_reads++];
      hist(H_READ, nd->id, id, S.g_commit);
      rr->id = id;
      rr->node = idx_of(nd->id);
      rr->inc = nd->inc;
      rr->key = rnd_below(NKEYS);
      rr->inv_commit = S.g_commit;
      rr->start = S.now;
    }
  }
  /* Forget requests that can no longer be answered (bounded history). */
  for (int k = 0; k < S.n_writes;) {
    if (S.now - S.writes[k].start > 100 * TICK)
      S.writes[k] = S.writes[--S.n_writes];
    else
      k++;
  }
  for (int k = 0; k < S.n_reads;) {
    if (S.now - S.reads[k].start > 100 * TICK)
      S.reads[k] = S.reads[--S.n_reads];
    else
      k++;
  }
  pump(nd);
}

static void heal(void) {
  for (int i = 0; i < S.total; i++)
    for (int j = 0; j < S.total; j++)
      S.link[i][j] = true;
}

static void partition(void) {
  int kind = (int)rnd_below(5);
  heal();
  if (kind == 0)
    return;
  struct node *ld = find_leader();
  if (kind == 1) { /* halves */
    bool side[MAXN];
    for (int i = 0; i < S.total; i++)
      side[i] = rnd_below(2);
    for (int i = 0; i < S.total; i++)
      for (int j = 0; j < S.total; j++)
        if (side[i] != side[j])
          S.link[i][j] = false;
  } else if (kind == 2) { /* isolate the leader */
    int l = ld ? idx_of(ld->id) : (int)rnd_below((uint64_t)S.total);
    for (int j = 0; j < S.total; j++)
      if (j != l)
        S.link[l][j] = S.link[j][l] = false;
  } else if (kind == 3) { /* one way */
    int a = (int)rnd_below((uint64_t)S.total);
    int b = (int)rnd_below((uint64_t)S.total);
    if (ld && rnd_below(2))
      a = idx_of(ld->id);
    for (int j = 0; j < S.total; j++)
      if (j != a && (j == b || rnd_below(2)))
        S.link[a][j] = false;
  } else { /* bridge: two sides meet only at one node */
    int b = (int)rnd_below((uint64_t)S.total);
    bool side[MAXN];
    for (int i = 0; i < S.total; i++)
      side[i] = rnd_below(2);
    for (int i = 0; i < S.total; i++)
      for (int j = 0; j < S.total; j++)
        if (i != b && j != b && side[i] != side[j])
          S.link[i][j] = false;
  }
}

static void take_snapshot(struct node *nd) {
  if (!nd || nd->disk_busy || raft_has_ready(nd->r))
    return;
  struct raft_snapshot_meta snap;
  struct raft_storage st = raft_memstore_storage(nd->disk);
  st.snapshot(nd->disk, &snap);
  if (nd->sm.index <= snap.index || nd->sm.index > st.last_index(nd->disk))
    return;
  struct raft_snapshot_meta conf = {0};
  raft_conf(nd->r, conf.voters, &conf.n_voters, conf.learners,
            &conf.n_learners);
  int rc = raft_memstore_compact(nd->disk, nd->sm.index, &conf,
                                 rnd_below(3) ? rnd_below(30) : 0);
  if (rc != 0)
    fail("compact", "n%" PRIu64 " cannot compact at %" PRIu64, nd->id,
         nd->sm.index);
  nd->durable = nd->sm;
  S.snapshots++;
}

static void conf_change(void) {
  struct node *ld = find_leader();
  if (!ld)
    return;
  uint64_t v[RAFT_MAX_NODES], l[RAFT_MAX_NODES];
  size_t nv, nl;
  raft_conf(ld->r, v, &nv, l, &nl);
  struct raft_conf_change cc = {0};
  bool member[MAXN + 1] = {0};
  for (size_t i = 0; i < nv; i++)
    member[v[i]] = true;
  for (size_t i = 0; i < nl; i++)
    member[l[i]] = true;
  uint64_t spare = 0;
  for (int i = S.n; i < S.total; i++)
    if (!member[i + 1] && S.nodes[i].up && S.nodes[i].sm.index == 0 &&
        raft_last_index(S.nodes[i].r) == 0)
      spare = (uint64_t)i + 1;
  if (nv > (size_t)S.n) {
    cc.type = RAFT_CONF_REMOVE_NODE;
    cc.node_id = v[rnd_below(nv)];
  } else if (nl > 0) {
    cc.type = RAFT_CONF_PROMOTE;
    cc.node_id = l[0];
  } else if (spare) {
    cc.type = RAFT_CONF_ADD_LEARNER;
    cc.node_id = spare;
  } else if (nv > 3) {
    cc.type = RAFT_CONF_REMOVE_NODE;
    cc.node_id = v[rnd_below(nv)];
  } else {
    return;
  }
  struct op op = {OP_CONF, (uint32_t)ld->id, (uint64_t)cc.type, cc.node_id, 0};
  if (raft_propose_conf_change(ld->r, &cc, &op, sizeof(op), NULL) == 0)
    S.conf_changes++;
  pump(ld);
}

static void nemesis(void) {
  const struct params *p = &S.p;
  double w[] = {p->p_client,   p->p_partition, p->p_crash,
                p->p_snapshot, p->p_conf,      p->p_transfer};
  double sum = 0;
  for (int i = 0; i < 6; i++)
    sum += w[i];
  double x = rnd_unit() * sum;
  int k = 0;
  while (k < 5 && x >= w[k]) {
    x -= w[k];
    k++;
  }
  switch (k) {
  case 0:
    client_op();
    break;
  case 1:
    partition();
    break;
  case 2: {
    /* Half the crashes hit the leader: term churn is where bugs live. */
    struct node *nd = rnd_below(2) ? find_leader() : NULL;
    if (!nd)
      nd = random_up();
    int up = 0;
    for (int i = 0; i < S.total; i++)
      up += S.nodes[i].up;
    if (nd && up > 1) {
      crash(nd);
      schedule(TICK * (1 + rnd_below(30)), EV_RESTART, idx_of(nd->id), nd->inc);
    }
    break;
  }
  case 3:
    take_snapshot(random_up());
    break;
  case 4:
    conf_change();
    break;
  default: {
    struct node *ld = find_leader();
    if (ld) {
      uint64_t v[RAFT_MAX_NODES], l[RAFT_MAX_NODES];
      size_t nv, nl;
      raft_conf(ld->r, v, &nv, l, &nl);
      if (nv > 1) {
        uint64_t to = v[rnd_below(nv)];
        if (to != ld->id && raft_transfer_leader(ld->r, to) == 0)
          S.transfers++;
        pump(ld);
      }
    }
  }
  }
}

/* ---- one run ---------------------------------------------------------- */

static void draw_params(void) {
  struct params *p = &S.p;
  memset(p, 0, sizeof(*p));
  p->loss = rnd_below(2) ? rnd_unit() * 0.15 : 0;
  p->dup = rnd_below(2) ? rnd_unit() * 0.1 : 0;
  p->reorder = rnd_below(2) ? rnd_unit() * 0.1 : 0;
  static const uint64_t delays[] = {5, 30, 100, 300};
  p->delay_max = delays[rnd_below(4)];
  p->p_client = 1 + rnd_unit() * 4;
  p->p_partition = rnd_below(3) ? rnd_unit() : 0;
  p->p_crash = rnd_below(2) ? rnd_unit() * 0.5 : 0;
  p->p_snapshot = rnd_below(2) ? rnd_unit() : 0;
  p->p_conf = rnd_below(3) == 0 ? rnd_unit() * 0.5 : 0;
  p->p_transfer = rnd_below(3) == 0 ? rnd_unit() * 0.3 : 0;
  p->p_new_leader_crash = rnd_below(3) == 0 ? rnd_unit() * 0.5 : 0;
  static const double skews[] = {0, 0.1, 0.3};
  p->skew = skews[rnd_below(3)];
  p->slow_disks = (int)rnd_below(3);
  p->pre_vote = rnd_below(4) != 0;
  p->check_quorum = rnd_below(4) != 0;
  static const int infl[] = {1, 4, 256};
  p->max_inflight = infl[rnd_below(3)];
  static const uint64_t msg_bytes[] = {64, 256, 4096};
  p->max_msg_bytes = msg_bytes[rnd_below(3)];
}

static void cleanup(void) {
  for (int i = 0; i < S.total; i++) {
    struct node *nd = &S.nodes[i];
    if (nd->up)
      raft_free(nd->r);
    raft_memstore_free(nd->disk);
  }
  for (size_t i = 0; i < S.heap_n; i++) {
    msg_free(S.heap[i].msg);
    free(S.heap[i].snap);
  }
  free(S.heap);
  free(S.leader_of_term);
  free(S.lc_index);
  free(S.lc_eterm);
  free(S.g_term);
  free(S.g_ent);
  free(S.g_sm);
  free(S.lm_keys);
  free(S.lm_vals);
  memset(&S, 0, sizeof(S));
}

static void handle(struct event *e) {
  struct node *nd = &S.nodes[e->node];
  switch (e->type) {
  case EV_TICK:
    if (!nd->up || e->inc != nd->inc)
      break;
    trace(EV_TICK, e->node + 1, NULL, 0);
    raft_tick(nd->r);
    schedule((uint64_t)nd->tick_period, EV_TICK, e->node, nd->inc);
    pump(nd);
    break;
  case EV_DELIVER:
    if (!nd->up) {
      trace(EV_DELIVER, e->node + 1, e->msg, 1);
      break;
    }
    trace(EV_DELIVER, e->node + 1, e->msg, 0);
    if (e->snap) { /* the transport's reassembled stream, kept by index */
      nd->incoming[nd->n_incoming++ % 4] = *e->snap;
      /* the stream ended: its sender learns so (raft_report_snapshot) */
      struct node *sender = &S.nodes[idx_of(e->msg->from)];
      if (sender->up && sender->r)
        raft_report_snapshot(sender->r, e->msg->to, true);
    }
    raft_step(nd->r, e->msg);
    pump(nd);
    break;
  case EV_DISK:
    if (!nd->up || e->inc != nd->inc || !nd->disk_busy)
      break;
    trace(EV_DISK, e->node + 1, NULL, nd->rd.n_entries);
    finish_ready(nd);
    pump(nd);
    break;
  case EV_NEMESIS:
    trace(EV_NEMESIS, 0, NULL, 0);
    if (!S.live) {
      nemesis();
      schedule(1 + rnd_below(2 * TICK), EV_NEMESIS, 0, 0);
    }
    break;
  case EV_CRASH:
    if (!nd->up || e->inc != nd->inc || S.live)
      break;
    trace(EV_CRASH, e->node + 1, NULL, 0);
    crash(nd);
    schedule(TICK * (1 + rnd_below(30)), EV_RESTART, e->node, nd->inc);
    break;
  case EV_RESTART:
    if (nd->up || e->inc != nd->inc)
      break;
    trace(EV_RESTART, e->node + 1, NULL, 0);
    boot(nd);
    pump(nd);
    break;
  default:
    break;
  }
  msg_free(e->msg);
  free(e->snap);
}

struct run_stats {
  uint64_t events, hash, acked, reads, crashes, confs, snaps, transfers;
  uint64_t installs, conf_applied;
  uint64_t live_ticks;
};

static int run(uint64_t seed, int n, uint64_t events, struct run_stats *st) {
  memset(&S, 0, sizeof(S));
  S.seed = seed;
  S.n = n;
  S.total = n + 2;
  S.trace_hash = FNV0;
  rnd_state = seed * 0x2545f4914f6cdd1dULL + 1;
  draw_params();
  S.lm_cap = 1 << 16;
  S.lm_keys = calloc(S.lm_cap * 2, sizeof(uint64_t));
  S.lm_vals = calloc(S.lm_cap * 2, sizeof(uint64_t));
  if (!S.lm_keys || !S.lm_vals)
    abort();
  if (setjmp(fail_jmp)) {
    cleanup();
    return 1;
  }
  heal();
  for (int i = 0; i < S.total; i++) {
    struct node *nd = &S.nodes[i];
    nd->id = (uint64_t)i + 1;
    if (raft_memstore_new(&nd->disk) != 0)
      abort();
    double f = 1.0 + S.p.skew * (2 * rnd_unit() - 1);
    nd->tick_period = TICK * f;
    nd->disk_max = 20;
    if (i < S.p.slow_disks)
      nd->disk_max = 200;
    boot(nd);
  }
  schedule(1, EV_NEMESIS, 0, 0);
  while (S.events < events && S.heap_n) {
    struct event e = heap_pop();
    S.now = e.time;
    S.events++;
    handle(&e);
    check_all();
  }
  /* LIVENESS: heal everything; a fresh write must commit everywhere. */
  S.live = true;
  heal();
  for (int i = 0; i < S.total; i++)
    if (!S.nodes[i].up) {
      S.nodes[i].inc++;
      boot(&S.nodes[i]);
      pump(&S.nodes[i]);
    }
  uint64_t heal_time = S.now;
  uint64_t deadline = S.now + (uint64_t)LIVE_TICKS * TICK;
  uint64_t catchup = S.now + (uint64_t)CATCHUP_TICKS * TICK;
  uint64_t next_try = S.now;
  S.probe_id = ++S.next_op_id;
  S.probe_index = 0;
  bool done = false;
  while (!done && S.heap_n) {
    if (S.probe_index == 0 && S.now >= deadline)
      fail("liveness",
           "no leader committed a fresh write within %d ticks of healing",
           LIVE_TICKS);
    if (S.now >= catchup)
      fail("liveness",
           "members did not apply the fresh write (index %" PRIu64
           ") and every acknowledged write (up to %" PRIu64
           ") within %d ticks of healing",
           S.probe_index, S.max_acked, CATCHUP_TICKS);
    if (S.now >= next_try && S.probe_index == 0) {
      struct node *ld = find_leader();
      if (ld) {
        struct op op = {OP_WRITE, (uint32_t)ld->id, S.probe_id, 0, S.probe_id};
        raft_propose(ld->r, &op, sizeof(op), NULL);
        pump(ld);
      }
      next_try = S.now + ELECTION_TICK * TICK;
    }
    struct event e = heap_pop();
    S.now = e.time;
    S.events++;
    handle(&e);
    check_all();
    if (S.probe_index) {
      struct node *ld = find_leader();
      done = ld != NULL;
      if (ld) {
        uint64_t v[RAFT_MAX_NODES], l[RAFT_MAX_NODES];
        size_t nv, nl;
        raft_conf(ld->r, v, &nv, l, &nl);
        for (size_t i = 0; i < nv + nl && done; i++) {
          uint64_t id = i < nv ? v[i] : l[i - nv];
          if (id > (uint64_t)S.total ||
              S.nodes[id - 1].sm.index < S.probe_index ||
              S.nodes[id - 1].sm.index < S.max_acked)
            done = false;
        }
      }
    }
  }
  st->events = S.events;
  st->hash = S.trace_hash;
  st->acked = S.acked;
  st->reads = S.reads_ok;
  st->crashes = S.crashes;
  st->confs = S.conf_changes;
  st->snaps = S.snapshots;
  st->transfers = S.transfers;
  st->installs = S.installs;
  st->conf_applied = S.conf_applied;
  st->live_ticks = (S.now - heal_time) / TICK;
  cleanup();
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: keel-sim --seed N [--nodes 3|5] [--events E] [-v]\n"
          "       keel-sim --seeds COUNT [--start S] [--nodes 3|5] "
          "[--events E] [--budget SECONDS]\n"
          "  KEEL_SIM_BUDGET (seconds) overrides --budget; a batch stops "
          "starting seeds once it is spent.\n");
}

static bool parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-')
    return false;
  *out = v;
  return true;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  uint64_t seed = 0, seeds = 0, start = 1, nodes = 3, events = 10000;
  uint64_t budget = 0;
  bool have_seed = false, have_seeds = false;
  fail_prog = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    uint64_t *dst = NULL;
    if (!strcmp(a, "--seed")) {
      dst = &seed;
      have_seed = true;
    } else if (!strcmp(a, "--seeds")) {
      dst = &seeds;
      have_seeds = true;
    } else if (!strcmp(a, "--start")) {
      dst = &start;
    } else if (!strcmp(a, "--nodes")) {
      dst = &nodes;
    } else if (!strcmp(a, "--events")) {
      dst = &events;
    } else if (!strcmp(a, "--budget")) {
      dst = &budget;
    } else if (!strcmp(a, "-v")) {

      verbose_trace = true;
      continue;
    } else {
      fprintf(stderr, "keel-sim: unknown argument '%s'\n", a);
      usage();
      return 2;
    }
    if (i + 1 >= argc || !parse_u64(argv[i + 1], dst)) {
      fprintf(stderr, "keel-sim: %s needs a non-negative integer\n", a);
      return 2;
    }
    i++;
  }
  const char *env = getenv("KEEL_SIM_BUDGET");
  if (env && !parse_u64(env, &budget)) {
    fprintf(stderr, "keel-sim: KEEL_SIM_BUDGET must be seconds, got '%s'\n",
            env);
    return 2;
  }
  if (have_seed == have_seeds || (nodes != 3 && nodes != 5) || events == 0 ||
      events > 100000000) {
    usage();
    return 2;
  }
  struct run_stats st;
  if (have_seed) {
    int rc = run(seed, (int)nodes, events, &st);
    if (rc)
      return 1;
    printf("seed %" PRIu64 ": ok events=%" PRIu64 " acked=%" PRIu64
           " reads=%" PRIu64 " crashes=%" PRIu64 " conf_applied=%" PRIu64
           " snapshots=%" PRIu64 " installs=%" PRIu64 " transfers=%" PRIu64
           " heal_ticks=%" PRIu64 "\n",
           seed, st.events, st.acked, st.reads, st.crashes, st.conf_applied,
           st.snaps, st.installs, st.transfers, st.live_ticks);
    printf("hash %016" PRIx64 "\n", st.hash);

    return 0;
  }
  uint64_t passed = 0, failed = 0, total_events = 0, max_heal = 0;
  struct run_stats sum = {0};
  double t0 = now_seconds();
  for (uint64_t s = start; s < start + seeds; s++) {
    if (budget && now_seconds() - t0 >= (double)budget)
      break;
    if (run(s, (int)nodes, events, &st) == 0) {
      passed++;
      total_events += st.events;
      sum.acked += st.acked;
      sum.reads += st.reads;
      sum.crashes += st.crashes;
      sum.conf_applied += st.conf_applied;
      sum.installs += st.installs;
      sum.snaps += st.snaps;
      sum.transfers += st.transfers;
      if (st.live_ticks > max_heal)
        max_heal = st.live_ticks;
    } else {
      failed++;
    }
  }
  double dt = now_seconds() - t0;
  printf("%.1f s, %.0f seeds/min, %.0f events/seed, slowest heal %" PRIu64
         " ticks\n",
         dt, dt > 0 ? (double)(passed + failed) * 60 / dt : 0,
         passed ? (double)total_events / (double)passed : 0, max_heal);
  printf("totals: acked writes %" PRIu64 ", linearizable reads %" PRIu64
         ", crashes %" PRIu64 ", conf changes applied %" PRIu64
         ", snapshots taken %" PRIu64 ", installed %" PRIu64
         ", transfers %" PRIu64 "\n",
         sum.acked, sum.reads, sum.crashes, sum.conf_applied, sum.snaps,
         sum.installs, sum.transfers);
  printf("seeds: %" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
  return failed ? 1 : 0;
}

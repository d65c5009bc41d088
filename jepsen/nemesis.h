/* nemesis.h — the pure parts of the nemesis: a seeded random generator, the
 * fault schedule, and the choice of nodes a fault hits (partition grudges,
 * kill/pause targets). Nothing here touches a process or a network, so the
 * unit tests can check every rule of it exactly (tests/unit/jepsen).
 *
 * The schedule (Jepsen's default): quiet for one interval, then a fault for
 * one interval, its heal, quiet for one interval, the next fault, ... A fault
 * is only scheduled when its heal falls within the time limit, so faults
 * never overlap and every fault is healed by the schedule itself; the runner
 * additionally heals everything at the end. Each fault picks one of the
 * enabled nemeses and one of its variants, uniformly, from the seed.
 */
#ifndef JEPSEN_NEMESIS_H
#define JEPSEN_NEMESIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JEPSEN_MAX_NODES 7

/* splitmix64: tiny, seedable, good enough for choices. */
struct jepsen_rng {
  uint64_t s;
};
void jepsen_rng_seed(struct jepsen_rng *r, uint64_t seed);
uint64_t jepsen_rng_next(struct jepsen_rng *r);
/* Uniform in [0, n); n > 0. */
uint32_t jepsen_rng_below(struct jepsen_rng *r, uint32_t n);

enum jepsen_nemesis {
  JEPSEN_NEM_KILL,
  JEPSEN_NEM_PAUSE,
  JEPSEN_NEM_PARTITION,
  JEPSEN_NEM_CLOCK,
  JEPSEN_NEM_MEMBER,
  JEPSEN_NEM__COUNT,
};

/* Variants of kill and pause: which nodes. */
enum jepsen_targets {
  JEPSEN_TGT_ONE,      /* one random node */
  JEPSEN_TGT_LEADER,   /* the leader (a random node when none is known) */
  JEPSEN_TGT_MINORITY, /* (n-1)/2 random nodes */
  JEPSEN_TGT_MAJORITY, /* n/2+1 random nodes */
  JEPSEN_TGT__COUNT,
};

/* Variants of partition. */
enum jepsen_partition {
  JEPSEN_PART_HALVES, /* random n/2 vs the rest, both ways */
  JEPSEN_PART_LEADER, /* the leader alone vs the rest */
  JEPSEN_PART_RING,   /* majorities ring: each node sees a different majority */
  JEPSEN_PART_BRIDGE, /* two halves joined only by one bridge node */
  JEPSEN_PART_ONE_WAY, /* random halves; only one side drops the other */
  JEPSEN_PART__COUNT,
};

/* Variants of clock. */
enum jepsen_clock {
  JEPSEN_CLOCK_BUMP,   /* a minority jumps by a random offset of +-1..60 s */
  JEPSEN_CLOCK_STROBE, /* a minority flips between two offsets every tick */
  JEPSEN_CLOCK__COUNT,
};

/* Variants of member. */
enum jepsen_member {
  JEPSEN_MEMBER_REMOVE,  /* fault: remove a node; heal: add it back, empty */
  JEPSEN_MEMBER_REPLACE, /* fault: remove a node and add a fresh one at once */
  JEPSEN_MEMBER__COUNT,
};

struct jepsen_fault {
  uint8_t nemesis; /* enum jepsen_nemesis */
  uint8_t variant; /* enum of that nemesis */
};

/* Number of variants of a nemesis. */
unsigned jepsen_nemesis_variants(enum jepsen_nemesis n);
/* "kill", "pause", ... and the variant names ("leader", "ring", ...). */
const char *jepsen_nemesis_name(enum jepsen_nemesis n);
const char *jepsen_variant_name(struct jepsen_fault f);

/* Parses a comma-separated list "kill,pause,partition,clock,member" (or
 * "none") into a bit mask over enum jepsen_nemesis. Returns 0, or -EINVAL
 * with err naming the bad word. */
int jepsen_nemesis_parse(const char *list, uint32_t *mask, char *err,
                         size_t errlen);

struct jepsen_sched_event {
  double at; /* seconds after the workload starts */
  bool heal; /* false: start the fault; true: heal it */
  struct jepsen_fault fault;
};

/* Fills out[0..*n) with the schedule for the nemeses in mask (0: none, an
 * empty schedule), interval > 0 and time_limit > 0 seconds. Events are in
 * time order, alternate start/heal, and the last heal is at or before
 * time_limit. Returns 0, or -EINVAL (bad arguments), or KEEL_ELIMIT when
 * more than cap events would be needed. */
int jepsen_schedule(uint32_t mask, double interval, double time_limit,
                    uint64_t seed, struct jepsen_sched_event *out, size_t cap,
                    size_t *n);

/* A grudge: drop[i] is the bit set of nodes whose packets node i drops. */
struct jepsen_grudge {
  int n;
  uint32_t drop[JEPSEN_MAX_NODES];
};

/* Computes the grudge of a partition variant over n nodes (2..7); leader is
 * the leader's index or -1 when unknown (then a random node stands in).
 * Returns 0 or -EINVAL. Properties (the unit tests check them):
 *   no node drops itself;
 *   halves, leader, bridge: drop is symmetric (ring too when n is 4 or 5;
 *         for 3 nodes a ring of majorities can only be directed);
 *   halves, leader: the nodes form exactly two groups, fully cut;
 *   ring: every node sees (does not drop) exactly a majority including
 *         itself, and no two nodes see the same majority when n >= 5;
 *   bridge: one node drops nobody; the others form two groups that drop
 *           each other;
 *   one-way: one group drops the other, which drops nobody. */
int jepsen_grudge_make(enum jepsen_partition v, int n, int leader,
                       struct jepsen_rng *rng, struct jepsen_grudge *g);

/* The nodes (a bit set) a kill or pause variant hits over n nodes; leader
 * as above. */
uint32_t jepsen_pick_targets(enum jepsen_targets v, int n, int leader,
                             struct jepsen_rng *rng);

/* Writes the grudge as readable text, e.g. "n1 drops n2,n3; n2 drops n1". */
void jepsen_grudge_describe(const struct jepsen_grudge *g, char *buf,
                            size_t cap);

#endif

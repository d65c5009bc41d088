/* cluster.h — a cluster of real server processes under the harness's
 * control: network bring-up and teardown, start/kill/pause of nodes, health,
 * leader discovery, partitions, clocks and membership.
 *
 * Network modes:
 *   netns     (root only) node i runs in its own network namespace
 *             PREFIXn<i> with address 10.77.<slot>.<i>/24 on eth0, a veth
 *             pair whose other end is enslaved to bridge br0 inside a
 *             control namespace PREFIXc (10.77.<slot>.254). Clients and
 *             etcdctl run in the control namespace, so nothing is added to
 *             the host's own namespace and no packet can leave the bridge.
 *             Partitions are iptables DROP rules in the nodes' INPUT chains.
 *   loopback  node i listens on 127.77.<slot>.<i>; no partitions (the
 *             userspace proxy that would allow them is not built yet).
 * PREFIX is "kjh<slot>"; a slot (0..7) is held by an flock on
 * /run/lock/keel-jepsen-<slot>.lock (/tmp when /run/lock is not writable)
 * for the whole run, so concurrent runs do not collide and `cleanup` leaves
 * running tests alone.
 *
 * Teardown (jepsen_cluster_teardown) kills every node, deletes every
 * namespace (which deletes their veths, the bridge and every iptables rule
 * with them) and releases the slot; it is safe after any partial bring-up
 * and idempotent.
 *
 * Targets: what differs between servers (command line, leader discovery,
 * membership commands, health URL, convergence check) is one row of
 * struct jepsen_target; jepsen_target_find("etcd") is the only row today;
 * keeld's row plugs in beside it.
 */
#ifndef JEPSEN_CLUSTER_H
#define JEPSEN_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "nemesis.h"

#define JEPSEN_PREFIX "kjh"
#define JEPSEN_SLOTS 8

enum jepsen_net_mode {
  JEPSEN_NET_NETNS,
  JEPSEN_NET_LOOPBACK,
};

struct jepsen_node {
  char name[24]; /* member name: n1, or n1g2 after a replace */
  char ip[24];
  char netns[24]; /* "" in loopback mode */
  char data_dir[512];
  char log_path[512];
  char clock_path[512]; /* libfaketime's FAKETIME_TIMESTAMP_FILE */
  pid_t pid;            /* 0: not running */
  bool paused;
  bool removed; /* not a member of the cluster right now */
  int gen;      /* data directory generation (member replace/add) */
};

struct jepsen_cluster;

struct jepsen_target {
  const char *name;
  const char *server; /* program, for messages */
  int client_port;
  const char *health_path;   /* HTTP GET on the client port ... */
  const char *health_expect; /* ... healthy when the body contains this */
  /* Fills argv (NULL-terminated, strings in buf) for node i. existing:
   * join a running cluster whose membership is initial_cluster (NULL: the
   * original full membership). Returns 0 or KEEL_ELIMIT. */
  int (*argv)(const struct jepsen_cluster *c, int i, bool existing,
              const char *initial_cluster, char *buf, size_t cap, char **argv,
              size_t argcap);
  /* Sets *leader to the node index the servers name as leader, -1 if none
   * answered. Returns 0 or a negative code with err. */
  int (*leader)(const struct jepsen_cluster *c, int *leader, char *err,
                size_t errlen);
  /* Removes node i from the membership (via the other members). */
  int (*member_remove)(const struct jepsen_cluster *c, int i, char *err,
                       size_t errlen);
  /* Adds node i (its current name and address) as a new member; writes the
   * membership it must start with into initial_cluster. */
  int (*member_add)(const struct jepsen_cluster *c, int i,
                    char *initial_cluster, size_t cap, char *err,
                    size_t errlen);
  /* Compares the store's hash on every running member; 0 when all agree
   * (detail says what was seen), KEEL_ECORRUPT when they differ. */
  int (*converged)(const struct jepsen_cluster *c, char *detail, size_t cap);
};

/* The row for "etcd" (or NULL). */
const struct jepsen_target *jepsen_target_find(const char *name);

struct jepsen_cluster {
  const struct jepsen_target *target;
  enum jepsen_net_mode mode;
  int n;
  int slot;
  int lock_fd;
  char prefix[16];
  char ctl_ns[24]; /* "" in loopback mode */
  char run_dir[400];
  char token[64];
  bool faketime; /* nodes run under libfaketime (clock nemesis) */
  bool net_up;
  struct jepsen_grudge grudge; /* the partition in force */
  /* Set by a signal handler: long waits (health) give up early. */
  volatile int *stop;
  struct jepsen_node nodes[JEPSEN_MAX_NODES];
};

/* Takes a free slot and fills c for n nodes (3..7) of target under
 * run_dir. Returns 0, KEEL_EBUSY (no free slot), -EINVAL. */
int jepsen_cluster_init(struct jepsen_cluster *c, const struct jepsen_target *t,
                        enum jepsen_net_mode m, int n, const char *run_dir,
                        bool faketime, char *err, size_t errlen);

/* Removes leftovers of this slot, then creates namespaces, bridge and veths
 * (netns mode; nothing in loopback mode). */
int jepsen_cluster_net_up(struct jepsen_cluster *c, char *err, size_t errlen);

/* Starts node i (a fresh process on its data directory). */
int jepsen_node_start(struct jepsen_cluster *c, int i, bool existing,
                      const char *initial_cluster, char *err, size_t errlen);
/* SIGKILL and reap; no-op when not running. */
void jepsen_node_kill(struct jepsen_cluster *c, int i);
int jepsen_node_pause(struct jepsen_cluster *c, int i);
int jepsen_node_resume(struct jepsen_cluster *c, int i);
/* One health probe within timeout seconds. */
bool jepsen_node_healthy(const struct jepsen_cluster *c, int i, double timeout);
/* Waits (polling, bounded by timeout) until every running member in mask
 * answers healthy; returns 0 or KEEL_ETIMEOUT with err naming the nodes. */
int jepsen_cluster_wait_healthy(struct jepsen_cluster *c, uint32_t mask,
                                double timeout, char *err, size_t errlen);

/* Installs g (replacing the partition in force) / removes every rule. */
int jepsen_cluster_partition(struct jepsen_cluster *c,
                             const struct jepsen_grudge *g, char *err,
                             size_t errlen);
int jepsen_cluster_heal_net(struct jepsen_cluster *c, char *err, size_t errlen);

/* Sets node i's libfaketime offset, e.g. "+30" or "-12.5" seconds. */
int jepsen_node_set_clock(struct jepsen_cluster *c, int i, double offset);

/* The namespace clients must run in (NULL in loopback mode). */
const char *jepsen_cluster_client_netns(const struct jepsen_cluster *c);
/* "http://IP:PORT" of node i's client port. */
void jepsen_node_client_url(const struct jepsen_cluster *c, int i, char *buf,
                            size_t cap);

/* Kills every node, deletes every namespace, releases the slot. */
void jepsen_cluster_teardown(struct jepsen_cluster *c);

/* Removes leftovers of every slot not held by a running harness: processes
 * in PREFIX namespaces, the namespaces, PREFIX links in the host namespace.
 * Prints what it removed to out; returns the number of objects removed or a
 * negative code. */
int jepsen_cleanup(FILE *out);

/* Runs etcdctl in the clients' namespace with --endpoints of the nodes in
 * mask (helper shared by etcd's row and the interim client). stdout goes
 * to out; stderr is appended only when the command failed. Returns 0 with
 * *status / *timed_out set, -ENOENT when mask names no node, or the code of
 * jepsen_run. */
int jepsen_cluster_ctl(const struct jepsen_cluster *c, uint32_t mask,
                       char *const *args, const char *stdin_text,
                       double timeout, char *out, size_t cap, int *status,
                       bool *timed_out);

#endif

/* etcd_harness.h — real etcd processes for libkeel's e2e tests.
 *
 * Each cluster gets its own temporary directory and its own loopback
 * address 127.X.Y.1 (X, Y from the test's pid and a counter), with ports
 * the kernel picked as free on it, so tests running in parallel never
 * collide. Every etcd runs in its own process group with PDEATHSIG set:
 * it is killed by the harness in teardown, at exit, on SIGINT/SIGTERM, and
 * by the kernel if the test process dies, so no orphan is left.
 *
 * The binary is $KEEL_E2E_ETCD or /usr/bin/etcd (when keeld exists, the
 * same tests run against it by pointing this at it). */
#ifndef ETCD_HARNESS_H
#define ETCD_HARNESS_H

#include <sys/types.h>

#define ETCD_MAX_NODES 5

struct etcd_node {
  pid_t pid; /* 0 when not running */
  char name[16];
  int client_port, peer_port;
  char client_url[80]; /* http://127.X.Y.1:port */
  char endpoint[64];   /* 127.X.Y.1:port */
  char dir[300];
};

struct etcd_cluster {
  int n;
  char ip[32];
  char root[256];
  struct etcd_node nodes[ETCD_MAX_NODES];
};

/* Starts n nodes and waits (bounded, 20 s) until every node answers a
 * Status with a leader. extra_flag: one more etcd flag or NULL.
 * Returns 0 or -1 (with a message on stderr; everything started is
 * stopped). */
int etcd_cluster_start(struct etcd_cluster *cl, int n, const char *extra_flag);
/* SIGKILL one node (its process group) and reap it. */
void etcd_node_kill(struct etcd_cluster *cl, int i);
void etcd_node_stop_signal(struct etcd_cluster *cl, int i, int sig);
/* Kills everything and removes the directory. */
void etcd_cluster_stop(struct etcd_cluster *cl);
/* The endpoints as an array of strings (into the cluster struct). */
void etcd_cluster_endpoints(const struct etcd_cluster *cl, const char **out);
/* Index of the node whose endpoint is "host:port", or -1. */
int etcd_node_by_endpoint(const struct etcd_cluster *cl, const char *ep);

#endif

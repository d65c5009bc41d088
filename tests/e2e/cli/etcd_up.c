/* etcd_up.c — runs a real etcd cluster for the keel CLI's shell e2e tests,
 * through libkeel's e2e harness (tests/e2e/client/etcd_harness.h: own
 * loopback address, own temp dir, no orphans).
 *
 * Usage: etcd_up N. Prints "ENDPOINTS a,b,c" and then one "NODE i ep" line
 * per node, then "READY", on stdout, and obeys lines on stdin:
 *   kill I   SIGKILL node I (prints "KILLED I")
 *   quit     (or end of input) stop everything, remove the dir, exit 0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_harness.h"

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1;
  if (n < 1 || n > ETCD_MAX_NODES) {
    fprintf(stderr, "usage: etcd_up N (1..%d)\n", ETCD_MAX_NODES);
    return 2;
  }
  static struct etcd_cluster cl;
  if (etcd_cluster_start(&cl, n, NULL) != 0) {
    fprintf(stderr, "etcd_up: cluster did not start\n");
    return 1;
  }
  printf("ENDPOINTS ");
  for (int i = 0; i < n; i++)
    printf("%s%s", i ? "," : "", cl.nodes[i].endpoint);
  printf("\n");
  for (int i = 0; i < n; i++)
    printf("NODE %d %s\n", i, cl.nodes[i].endpoint);
  printf("READY\n");
  fflush(stdout);
  char line[128];
  while (fgets(line, sizeof(line), stdin)) {
    int i;
    if (sscanf(line, "kill %d", &i) == 1 && i >= 0 && i < n) {
      etcd_node_kill(&cl, i);
      printf("KILLED %d\n", i);
      fflush(stdout);
    } else if (strncmp(line, "quit", 4) == 0)
      break;
  }
  etcd_cluster_stop(&cl);
  return 0;
}

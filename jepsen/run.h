/* run.h — `keel-jepsen test` and `keel-jepsen cleanup`: a whole run (cluster
 * up, clients and nemesis, heal, settle, check, report) and the removal of
 * leftovers. See docs/JEPSEN.md "The harness". */
#ifndef JEPSEN_RUN_H
#define JEPSEN_RUN_H

/* Exit status: 0 every checker valid; 1 some checker invalid; 2 unknown,
 * interrupted, or the run could not be made (bad usage, no cluster). */
int jepsen_cmd_test(int argc, char **argv);
/* Exit status 0 (prints what it removed) or 2. */
int jepsen_cmd_cleanup(int argc, char **argv);

#endif

/* http_testserver.c — TEST SCAFFOLDING, not keeld: the /config and OFREP
 * handlers (server/http_config.c, server/http_ofrep.c) over a store in a
 * temporary directory, on 127.0.0.1 with an ephemeral port, for the npm
 * client tests. keeld mounts the same handlers on its client port.
 *
 * Usage: http_testserver SEED.tsv [DEFAULT_FLAG_SET]
 * Each line of SEED.tsv is KEY<TAB>VALUE, written in one txn (one revision);
 * a line "--" starts the next txn, so a test can have several revisions
 * (e.g. for labels). Then it prints "LISTENING port=N" and the revision as
 * "REVISION n" lines per txn (before LISTENING), and serves until its stdin
 * reaches end of file (the test closes it, or dies).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_test_scaffold.h"

#define MAX_PAIRS 256

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SEED.tsv [DEFAULT_FLAG_SET]\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (f == NULL) {
    perror(argv[1]);
    return 2;
  }
  struct hts *h = hts_start(argc > 2 ? argv[2] : NULL);
  char *keys[MAX_PAIRS], *vals[MAX_PAIRS];
  size_t n = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int lineno = 0, eof = 0;
  while (!eof) {
    len = getline(&line, &cap, f);
    eof = len < 0;
    lineno++;
    if (!eof && len > 0 && line[len - 1] == '\n')
      line[--len] = 0;
    if (eof || strcmp(line, "--") == 0) {
      if (n > 0) {
        int64_t rev = hts_put_many(h, (const char *const *)keys,
                                   (const char *const *)vals, n);
        printf("REVISION %lld\n", (long long)rev);
        for (size_t i = 0; i < n; i++) {
          free(keys[i]);
          free(vals[i]);
        }
        n = 0;
      }
      continue;
    }
    if (len == 0 || line[0] == '#')
      continue;
    char *tab = strchr(line, '\t');
    if (tab == NULL || n == MAX_PAIRS) {
      fprintf(stderr, "%s:%d: want KEY<TAB>VALUE (at most %d per txn)\n",
              argv[1], lineno, MAX_PAIRS);
      return 2;
    }
    *tab = 0;
    keys[n] = strdup(line);
    vals[n] = strdup(tab + 1);
    n++;
  }
  free(line);
  fclose(f);
  printf("LISTENING port=%d\n", h->port);
  fflush(stdout);
  /* serve until stdin closes: an event, not a timer */
  char buf[256];
  while (fread(buf, 1, sizeof(buf), stdin) > 0) {
  }
  hts_stop(h);
  return 0;
}

/* test_util.h — helpers shared by the store tests: temporary directories,
 * and one-entry apply shortcuts. */
#ifndef KEEL_STORE_TEST_UTIL_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw flags */
#endif
#define KEEL_STORE_TEST_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static int tu_rm_one(const char *path, const struct stat *sb, int flag,
                     struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Removes a directory tree (test scratch only). */
static inline void tu_rmrf(const char *dir) {
  nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Makes a fresh scratch directory under $TMPDIR (or /tmp). */
static inline void tu_tmpdir(char *buf, size_t cap, const char *tag) {
  const char *base = getenv("TMPDIR");
  if (base == NULL || base[0] == 0)
    base = "/tmp";
  snprintf(buf, cap, "%s/keel-%s-XXXXXX", base, tag);
  if (mkdtemp(buf) == NULL) {
    perror("mkdtemp");
    abort();
  }
}

#endif

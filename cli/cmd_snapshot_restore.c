/* cmd_snapshot_restore.c — `keel snapshot restore FILE --data-dir DIR
 * [--name N] [--initial-cluster C] [--initial-cluster-token T]
 * [--initial-advertise-peer-urls U]`: a new keeld data directory from a
 * file written by `snapshot save` (keel's or etcdctl's against keeld), for
 * a NEW cluster of the members given — what `etcdctl snapshot restore`
 * does for etcd. Run it once per member with that member's --name and
 * --data-dir and the same cluster flags; then start each keeld with the
 * same flags (and --initial-cluster-state new).
 *
 * The file (decision 0921): the store's snapshot stream, padding (0x80
 * then zeros) up to a multiple of 512 bytes, then the SHA-256 of all of
 * that (etcd's trailer: size % 512 == 32). One pass: the last 544 bytes
 * are read first to find where the stream ends, then the body is hashed
 * while the stream part is fed to the restore; the new directory is put in
 * place only if the hash matches (server/restore.h).
 *
 * It parses its own flags (they are keeld's, not the client's) and is
 * dispatched from keel_cli.c's main before the client flags are parsed;
 * global flags before the command (--debug, -w ...) are accepted and
 * ignored: it talks to no server.
 */
#include "cmd_snapshot_restore.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keel_error.h"
#include "restore.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_NOTFOUND 3
#define READ_CHUNK (1u << 20)
#define KEELSNAP_MAGIC "KEELSNAP"

const char cli_snapshot_restore_usage[] =
    "snapshot restore FILE --data-dir DIR [flags]";

const char cli_snapshot_restore_help[] =
    "Builds a new keeld data directory from a snapshot file.\n"
    "The file is checked against its sha256 trailer first. The restored\n"
    "member starts a NEW cluster of the members given: new member and\n"
    "cluster ids, the keys and history of the snapshot. Run it once per\n"
    "member with that member's --name and --data-dir and the same cluster\n"
    "flags, then start keeld with the same flags. DIR must not exist. A\n"
    "progress bar is drawn when stdout is a terminal. Works offline.\n\n"
    "  --data-dir DIR                    the new data directory (default\n"
    "                                    <name>.keel)\n"
    "  --name N                          this member (default \"default\")\n"
    "  --initial-cluster C               name=peer-url,... of the new\n"
    "                                    cluster (default <name>=<peer-url>)\n"
    "  --initial-cluster-token T         default keel-cluster\n"
    "  --initial-advertise-peer-urls U   this member's peer URL (default\n"
    "                                    http://127.0.0.1:2380)\n\n"
    "Exit codes: 0 restored, 1 failed (corrupt, not a keel snapshot), 2\n"
    "usage (bad flag, DIR exists), 3 FILE not found.\n";

static const char *const restore_flags[] = {
    "data-dir", "name", "initial-cluster", "initial-cluster-token",
    "initial-advertise-peer-urls"};
#define N_RESTORE_FLAGS (sizeof(restore_flags) / sizeof(restore_flags[0]))

/* Global client flags that take a value (skipped with it). */
static int global_with_value(const char *a) {
  static const char *const g[] = {"--endpoints", "--dial-timeout",
                                  "--command-timeout", "--write-out", "-w"};
  for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
    if (strcmp(a, g[i]) == 0)
      return 1;
  return 0;
}

int cli_snapshot_restore_wanted(int argc, char **argv) {
  const char *w[2];
  int n = 0;
  for (int i = 1; i < argc && n < 2; i++) {
    if (strcmp(argv[i], "--") == 0)
      break;
    if (argv[i][0] == '-') {
      if (global_with_value(argv[i]))
        i++;
      continue;
    }
    w[n++] = argv[i];
  }
  return n == 2 && strcmp(w[0], "snapshot") == 0 &&
         strcmp(w[1], "restore") == 0;
}

static int usage(const char *fmt, const char *arg) {
  fprintf(stderr, "keel: snapshot restore: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nusage: keel %s\n", cli_snapshot_restore_usage);
  return EXIT_USAGE;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(uint64_t done, uint64_t total, double *last, int final) {
  double t = now_s();
  if (!final && t - *last < 0.1)
    return;
  *last = t;
  int pct = total ? (int)(done * 100 / total) : 100;
  char bar[31];
  for (int i = 0; i < 30; i++)
    bar[i] = i < pct * 30 / 100 ? '#' : '-';
  bar[30] = 0;
  printf("\r[%s] %3d%% %.1f/%.1f MB", bar, pct, (double)done / 1e6,
         (double)total / 1e6);
  if (final)
    putchar('\n');
  fflush(stdout);
}

/* Where the store stream ends inside body [0, body): the padding is 0x80
 * then zeros, within the last 512 bytes. Returns the length or -1. */
static int64_t stream_length(FILE *f, uint64_t body) {
  uint8_t tail[512];
  uint64_t k = body < sizeof(tail) ? body : sizeof(tail);
  if (fseeko(f, (off_t)(body - k), SEEK_SET) != 0 ||
      fread(tail, 1, (size_t)k, f) != k)
    return -1;
  int64_t i = (int64_t)k - 1;
  while (i >= 0 && tail[i] == 0)
    i--;
  if (i < 0 || tail[i] != 0x80)
    return -1;
  return (int64_t)(body - k) + i;
}

int cli_snapshot_restore_main(int argc, char **argv) {
  const char *file = NULL;
  const char *val[N_RESTORE_FLAGS] = {0};
  int words = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      printf("Usage: keel %s\n\n%s", cli_snapshot_restore_usage,
             cli_snapshot_restore_help);
      return EXIT_OK;
    }
    if (a[0] != '-') {
      if (words < 2)
        words++; /* "snapshot", "restore" */
      else if (!file)
        file = a;
      else
        return usage("too many arguments (\"%s\")", a);
      continue;
    }
    if (global_with_value(a)) {
      i++;
      continue;
    }
    const char *name = a + (a[1] == '-' ? 2 : 1);
    const char *eq = strchr(name, '=');
    size_t nl = eq ? (size_t)(eq - name) : strlen(name);
    size_t f = 0;
    while (f < N_RESTORE_FLAGS && !(strlen(restore_flags[f]) == nl &&
                                    strncmp(restore_flags[f], name, nl) == 0))
      f++;
    if (f == N_RESTORE_FLAGS) {
      /* Boolean global flags (--debug, --hex) do not matter here. */
      if (strncmp(a, "--debug", 7) == 0 || strncmp(a, "--hex", 5) == 0 ||
          strncmp(a, "--endpoints=", 12) == 0 ||
          strncmp(a, "--dial-timeout=", 15) == 0 ||
          strncmp(a, "--command-timeout=", 18) == 0 ||
          strncmp(a, "--write-out=", 12) == 0 || strncmp(a, "-w", 2) == 0)
        continue;
      return usage("unknown flag %s", a);
    }
    if (eq)
      val[f] = eq + 1;
    else if (i + 1 < argc)
      val[f] = argv[++i];
    else
      return usage("flag %s needs a value", a);
  }
  if (!file)
    return usage("missing argument: FILE%s", "");

  FILE *in = fopen(file, "rb");
  if (!in) {
    fprintf(stderr, "keel: snapshot restore: cannot open %s: %s\n", file,
            strerror(errno));
    return errno == ENOENT ? EXIT_NOTFOUND : EXIT_FAIL;
  }
  struct stat sb;
  fstat(fileno(in), &sb);
  uint64_t size = (uint64_t)sb.st_size;
  if (size < 512 + 32 || size % 512 != 32) {
    fprintf(stderr,
            "keel: snapshot restore: %s has no sha256 trailer (size %" PRIu64
            " bytes, size %% 512 != 32): not a complete snapshot from "
            "'snapshot save'\n",
            file, size);
    fclose(in);
    return EXIT_FAIL;
  }
  uint64_t body = size - 32;
  uint8_t head[8] = {0}, trailer[32];
  int64_t slen = stream_length(in, body);
  if (fseeko(in, 0, SEEK_SET) != 0 || fread(head, 1, 8, in) != 8 ||
      fseeko(in, (off_t)body, SEEK_SET) != 0 ||
      fread(trailer, 1, 32, in) != 32 || fseeko(in, 0, SEEK_SET) != 0) {
    fprintf(stderr, "keel: snapshot restore: reading %s: %s\n", file,
            strerror(errno ? errno : EIO));
    fclose(in);
    return EXIT_FAIL;
  }
  if (memcmp(head, KEELSNAP_MAGIC, 8) != 0 || slen < 0) {
    fprintf(stderr,
            "keel: snapshot restore: %s is not a keel snapshot (an etcd "
            "snapshot? keel restores only files saved from keeld; use "
            "etcdctl for etcd's)\n",
            file);
    fclose(in);
    return EXIT_FAIL;
  }

  /* keeld-style argv for the restore's configuration. */
  char *cargv[2 + 2 * N_RESTORE_FLAGS];
  char flagbuf[N_RESTORE_FLAGS][64];
  int cargc = 0;
  cargv[cargc++] = "keel-restore";
  for (size_t f = 0; f < N_RESTORE_FLAGS; f++) {
    if (!val[f])
      continue;
    snprintf(flagbuf[f], sizeof(flagbuf[f]), "--%s", restore_flags[f]);
    cargv[cargc++] = flagbuf[f];
    cargv[cargc++] = (char *)val[f];
  }
  cargv[cargc] = NULL;
  char err[1024];
  struct keel_restore *r;
  int rc = keel_restore_begin(cargc, cargv, &r, err, sizeof(err));
  if (rc) {
    fprintf(stderr, "keel: snapshot restore: %s\n", err);
    fclose(in);
    return rc == -EEXIST || rc == KEEL_ECONFIG ? EXIT_USAGE : EXIT_FAIL;
  }

  int tty = isatty(STDOUT_FILENO);
  double last = 0;
  EVP_MD_CTX *sha = EVP_MD_CTX_new();
  uint8_t *buf = malloc(READ_CHUNK);
  if (!sha || !buf || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
    fprintf(stderr, "keel: snapshot restore: out of memory\n");
    keel_restore_abort(r);
    EVP_MD_CTX_free(sha);
    free(buf);
    fclose(in);
    return EXIT_FAIL;
  }
  uint64_t done = 0;
  int werr = 0; /* the restore refused the stream: hash on, report after */
  rc = 0;
  while (done < body && rc == 0) {
    size_t want = body - done < READ_CHUNK ? (size_t)(body - done) : READ_CHUNK;
    size_t k = fread(buf, 1, want, in);
    if (k == 0) {
      snprintf(err, sizeof(err), "reading %s: %s", file,
               ferror(in) ? strerror(errno) : "unexpected end of file");
      rc = -EIO;
      break;
    }
    EVP_DigestUpdate(sha, buf, k);
    if (done < (uint64_t)slen && !werr) {
      size_t feed =
          (uint64_t)slen - done < k ? (size_t)((uint64_t)slen - done) : k;
      werr = keel_restore_write(r, buf, feed);
    }
    done += k;
    if (tty)
      progress(done, body, &last, 0);
  }
  fclose(in);
  free(buf);
  uint8_t h[32];
  unsigned int hl = 0;
  EVP_DigestFinal_ex(sha, h, &hl);
  EVP_MD_CTX_free(sha);
  if (tty)
    progress(done, body, &last, 1);
  if (rc == 0 && memcmp(h, trailer, 32) != 0) {
    snprintf(err, sizeof(err),
             "%s: sha256 does not match its trailer: the file is corrupt "
             "(nothing was written)",
             file);
    rc = KEEL_ECORRUPT;
  } else if (rc == 0 && werr) {
    /* The file is as saved, but its content is no valid keel stream. */
    snprintf(err, sizeof(err), "%s: not a valid keel snapshot stream: %s", file,
             keel_strerror(werr));
    rc = werr;
  }
  if (rc) {
    keel_restore_abort(r);
    fprintf(stderr, "keel: snapshot restore: %s\n", err);
    return EXIT_FAIL;
  }
  struct keel_restore_info info;
  rc = keel_restore_finish(r, &info, err, sizeof(err));
  if (rc) {
    fprintf(stderr, "keel: snapshot restore: %s\n", err);
    return EXIT_FAIL;
  }
  printf("Restored %s to %s: revision %" PRId64 ", raft index %" PRIu64
         ", new cluster %016" PRIx64 " of %zu member(s)\n",
         file, info.data_dir, info.revision, info.index, info.cluster_id,
         info.members);
  return EXIT_OK;
}

/* main.c — keel-jepsen: the history checkers and converters on the command
 * line.
 *
 *   keel-jepsen check --model register|set|kv [--time-limit S] [--threads N]
 *                     [--max-memory MIB] [--no-witness] HISTORY
 *   keel-jepsen convert-etcd-log FILE        (EDN on stdout)
 *   keel-jepsen test ...                     (a cluster run: run.h)
 *   keel-jepsen cleanup                      (remove harness leftovers)
 *
 * Exit status of check: 0 valid, 1 invalid, 2 unknown (time or memory limit)
 * or unreadable input / bad usage. One verdict line on stdout, then, when
 * invalid, the ops that show it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "etcdlog.h"
#include "history.h"
#include "keel_error.h"
#include "run.h"

#define EXIT_UNKNOWN 2

static void usage(FILE *out) {
  fprintf(out,
          "usage: keel-jepsen check --model register|set|kv [--time-limit S]\n"
          "                         [--threads N] [--max-memory MIB] "
          "[--no-witness] HISTORY\n"
          "       keel-jepsen convert-etcd-log FILE\n"
          "       keel-jepsen test --target etcd --workload register "
          "--nemesis LIST\n"
          "                        [--nodes N] [--time-limit S] ... "
          "(test --help)\n"
          "       keel-jepsen cleanup\n"
          "\n"
          "check: exit 0 valid, 1 invalid, 2 unknown (limit reached) or "
          "unreadable input.\n"
          "HISTORY holds Jepsen EDN op maps, one per line ('-' reads "
          "stdin).\n");
}

static int parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v > 0) || v > 1e7)
    return -EINVAL;
  *out = v;
  return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -EINVAL;
  *out = v;
  return 0;
}

static int cmd_check(int argc, char **argv) {
  static const struct option opts[] = {
      {"model", required_argument, NULL, 'm'},
      {"time-limit", required_argument, NULL, 't'},
      {"threads", required_argument, NULL, 'j'},
      {"max-memory", required_argument, NULL, 'M'},
      {"no-witness", no_argument, NULL, 'W'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct jepsen_check_opts co;
  jepsen_check_opts_default(&co);
  const char *model_name = NULL;
  int c;
  long v;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'm':
      model_name = optarg;
      break;
    case 't':
      if (parse_double(optarg, &co.time_limit) != 0) {
        fprintf(stderr,
                "keel-jepsen: --time-limit: '%s' is not a number of "
                "seconds > 0\n",
                optarg);
        return EXIT_UNKNOWN;
      }
      break;
    case 'j':
      if (parse_long(optarg, 1, 256, &v) != 0) {
        fprintf(stderr, "keel-jepsen: --threads: '%s' is not 1..256\n", optarg);
        return EXIT_UNKNOWN;
      }
      co.threads = (int)v;
      break;
    case 'M':
      if (parse_long(optarg, 16, 1 << 20, &v) != 0) {
        fprintf(stderr,
                "keel-jepsen: --max-memory: '%s' is not 16..1048576 "
                "MiB\n",
                optarg);
        return EXIT_UNKNOWN;
      }
      co.max_memory = (size_t)v << 20;
      break;
    case 'W':
      co.witness = false;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return EXIT_UNKNOWN;
    }
  }
  if (!model_name || optind != argc - 1) {
    fprintf(stderr, "keel-jepsen check: %s\n",
            !model_name ? "--model is required" : "expected one HISTORY file");
    usage(stderr);
    return EXIT_UNKNOWN;
  }
  enum jepsen_model model;
  if (jepsen_model_parse(model_name, &model) != 0) {
    fprintf(stderr, "keel-jepsen: --model: '%s' is not register, set or kv\n",
            model_name);
    return EXIT_UNKNOWN;
  }
  const char *path = argv[optind];
  FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (!in) {
    fprintf(stderr, "keel-jepsen: %s: %s\n", path, strerror(errno));
    return EXIT_UNKNOWN;
  }
  struct jepsen_limits lim;
  jepsen_limits_default(&lim);
  struct jepsen_history h;
  char err[512];
  int rc = jepsen_history_read(in, path, model, &lim, &h, err, sizeof(err));
  if (in != stdin)
    fclose(in);
  if (rc != 0) {
    fprintf(stderr, "keel-jepsen: unreadable history: %s\n", err);
    printf("UNKNOWN: unreadable history: %s\n", err);
    return EXIT_UNKNOWN;
  }
  struct jepsen_check_result r;
  rc = jepsen_check(&h, &co, &r);
  if (rc != 0) {
    fprintf(stderr, "keel-jepsen: check failed: %s\n", keel_strerror(rc));
    jepsen_history_free(&h);
    return EXIT_UNKNOWN;
  }
  jepsen_check_report(&h, &r, stdout);
  if (h.n_info + h.n_never_completed > 0 || h.n_failed > 0)
    printf("(%zu ops: %zu with unknown outcome, %zu :fail dropped, %zu "
           "non-client events skipped)\n",
           h.n_ops, h.n_info + h.n_never_completed, h.n_failed, h.n_skipped);
  int code = (int)r.verdict;
  jepsen_check_result_free(&r);
  jepsen_history_free(&h);
  return code;
}

static int cmd_convert_etcd_log(int argc, char **argv) {
  if (argc != 2) {
    usage(stderr);
    return EXIT_UNKNOWN;
  }
  FILE *in = fopen(argv[1], "r");
  if (!in) {
    fprintf(stderr, "keel-jepsen: %s: %s\n", argv[1], strerror(errno));
    return EXIT_UNKNOWN;
  }
  char err[512];
  int rc = jepsen_convert_etcd_log(in, argv[1], stdout, err, sizeof(err));
  fclose(in);
  if (rc != 0) {
    fprintf(stderr, "keel-jepsen: %s\n", err);
    return EXIT_UNKNOWN;
  }
  if (fflush(stdout) != 0) {
    fprintf(stderr, "keel-jepsen: writing stdout: %s\n", strerror(errno));
    return EXIT_UNKNOWN;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_UNKNOWN;
  }
  if (strcmp(argv[1], "check") == 0)
    return cmd_check(argc - 1, argv + 1);
  if (strcmp(argv[1], "convert-etcd-log") == 0)
    return cmd_convert_etcd_log(argc - 1, argv + 1);
  if (strcmp(argv[1], "test") == 0)
    return jepsen_cmd_test(argc - 1, argv + 1);
  if (strcmp(argv[1], "cleanup") == 0)
    return jepsen_cmd_cleanup(argc - 1, argv + 1);
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "keel-jepsen: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return EXIT_UNKNOWN;
}

/* keel_cli.c — `keel`, the command-line tool for keel and any etcd v3
 * server: KV, txn, watch, lease, member, endpoint, snapshot and maintenance
 * commands over libkeel (client/keel.h), plus history and rollback of a
 * key through its MVCC revisions.
 *
 * Shape of a run: parse argv (cli_util.c) -> pick the command from the
 * table -> check the flags it allows and its argument count (usage error:
 * exit 2) -> resolve endpoints (--endpoints, KEEL_ENDPOINTS, the config
 * file, 127.0.0.1:2379) -> run the command on one keel_sync client. Every
 * request goes through run_wait(): the asynchronous call plus the client's
 * private loop until its callback ran, so the keel_result (endpoint,
 * attempts, server message) is there for --debug and for error messages.
 *
 * Exit codes: 0 success; 1 the operation failed; 2 usage error; 3 not
 * found (see NOT_FOUND in docs/cli.md). Messages go to stderr, results to
 * stdout, formatted per -w (table, simple, json, yaml). */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_cmd.h"
#include "cli_util.h"
#include "cmd_snapshot_restore.h"
#include "keel.h"

#define KEEL_CLI_VERSION "0.1.0"
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_NOTFOUND 3
/* Largest value `put` sends: libkeel's 2 MiB request limit minus room for
 * the key and framing. etcd itself refuses requests over 1.5 MiB unless
 * started with a larger --max-request-bytes. */
#define MAX_VALUE (2 * 1024 * 1024 - 64 * 1024)
#define MAX_TXN_OPS 128
#define MAX_TXN_LINE 65536

enum fmt { FMT_TABLE, FMT_SIMPLE, FMT_JSON, FMT_YAML };

static struct cli_args A;
static enum fmt g_fmt = FMT_TABLE;
static int g_hex, g_debug;
static char g_eps[KEEL_MAX_ENDPOINTS][256];
static int g_neps;
static const char *g_eps_source = "default";
static uint64_t g_dial_ms = 2000, g_cmd_ms = 5000;
static keel_sync *S;
static const char *g_cmd = "keel";

/* ---------------------------------------------------------------- */
/* Messages and exits                                                */

static void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "keel: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nRun 'keel %s--help' for usage.\n",
          strcmp(g_cmd, "keel") ? g_cmd : "");
  exit(EXIT_USAGE);
}

static void fatal(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "keel: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(code);
}

static const char *eps_list(void) {
  static char buf[KEEL_MAX_ENDPOINTS * 260];
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; i < g_neps && o < sizeof(buf) - 260; i++)
    o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? ", " : "",
                          g_eps[i]);
  return buf;
}

/* ---------------------------------------------------------------- */
/* Requests                                                          */

struct wait {
  int done, err, grpc;
  char msg[1024];
  char endpoint[64];
  uint32_t attempts;
  int64_t compact_rev;
  const void *resp;
};

static void on_res(const struct keel_result *r, const void *resp, void *ud) {
  struct wait *w = ud;
  w->done = 1;
  w->err = r->err;
  w->grpc = r->grpc_status;
  snprintf(w->msg, sizeof(w->msg), "%s", r->message);
  snprintf(w->endpoint, sizeof(w->endpoint), "%s", r->endpoint);
  w->attempts = r->attempts;
  w->compact_rev = r->compact_revision;
  w->resp = (r->err == 0 && resp) ? keel_resp_keep(resp) : NULL;
}

static void run_wait(struct wait *w, int rc, const char *what) {
  if (rc != 0) {
    w->err = rc;
    snprintf(w->msg, sizeof(w->msg), "%s", keel_strerror(rc));
  } else {
    while (!w->done)
      uv_run(keel_sync_loop(S), UV_RUN_ONCE);
  }
  if (g_debug)
    fprintf(stderr, "debug: %s -> err=%d (%s) endpoint=%s attempts=%u%s%s\n",
            what, w->err, w->err ? keel_strerror(w->err) : "ok", w->endpoint,
            w->attempts, w->msg[0] ? " message=" : "", w->msg);
}

#define CALL(w, what, expr)                                                    \
  do {                                                                         \
    memset((w), 0, sizeof(*(w)));                                              \
    run_wait((w), (expr), (what));                                             \
  } while (0)

static struct keel_opts g_opts;

static int64_t oldest_revision(void) {
  struct wait w;
  CALL(&w, "hashkv", keel_hashkv(keel_sync_client(S), -1, 0, NULL, on_res, &w));
  int64_t r = 0;
  if (w.err == 0) {
    r = ((const struct keel_hashkv_resp *)w.resp)->compact_revision;
    keel_resp_free(w.resp);
  }
  return r;
}

/* Prints what went wrong with a request and exits (1, or 3 for "not
 * found"). rev: the revision asked for, for compacted/future errors. */
static void fail_req(const struct wait *w, const char *what, int64_t rev) {
  int e = w->err;
  switch (e) {
  case KEEL_EUNAVAILABLE:
    fatal(EXIT_FAIL,
          "%s: no endpoint reachable (tried: %s; endpoints from %s): %s\n"
          "Check that the servers are running, or point keel at them with "
          "--endpoints host:port,... or KEEL_ENDPOINTS.",
          what, eps_list(), g_eps_source, w->msg);
    break;
  case KEEL_ETIMEOUT:
    fatal(EXIT_FAIL,
          "%s: timed out after %" PRIu64 " ms (endpoints tried: %s%s%s): %s\n"
          "Check the servers with 'keel endpoint health', point keel at "
          "them with --endpoints or KEEL_ENDPOINTS, or raise "
          "--command-timeout. A write that timed out may or may not have "
          "been applied.",
          what, g_cmd_ms, eps_list(), w->endpoint[0] ? "; last: " : "",
          w->endpoint, w->msg);
    break;
  case KEEL_ECOMPACTED: {
    int64_t c = w->compact_rev ? w->compact_rev : oldest_revision();
    if (c > 0)
      fatal(EXIT_FAIL,
            "%s: revision %" PRId64 " has been compacted; the oldest "
            "revision still available is %" PRId64 ". Use --rev %" PRId64
            " or later.",
            what, rev, c, c);
    fatal(EXIT_FAIL, "%s: revision %" PRId64 " has been compacted (%s).", what,
          rev, w->msg);
    break;
  }
  case KEEL_EFUTUREREV:
    fatal(EXIT_FAIL,
          "%s: revision %" PRId64 " is in the future (%s); use a revision "
          "the cluster has reached.",
          what, rev, w->msg);
    break;
  case KEEL_ETOOLARGE:
    fatal(EXIT_FAIL,
          "%s: the server refused the request as too large (%s). etcd "
          "accepts requests up to 1.5 MiB unless started with a larger "
          "--max-request-bytes.",
          what, w->msg);
    break;
  case KEEL_EUNKNOWN:
    fatal(EXIT_FAIL,
          "%s: outcome unknown: the request may or may not have been "
          "applied (%s). Read the key back before retrying.",
          what, w->msg);
    break;
  case KEEL_ENOSPACE:
    fatal(EXIT_FAIL,
          "%s: database space exceeded (%s). Free space with 'keel compact' "
          "and 'keel defrag', then 'keel alarm disarm'.",
          what, w->msg);
    break;
  case KEEL_ELEASENOTFOUND:
    fatal(EXIT_NOTFOUND, "%s: lease not found (%s).", what, w->msg);
    break;
  case KEEL_ENOTFOUND:
    fatal(EXIT_NOTFOUND, "%s: not found (%s).", what, w->msg);
    break;
  case KEEL_EMEMBER:
    fatal(strstr(w->msg, "not found") ? EXIT_NOTFOUND : EXIT_FAIL, "%s: %s",
          what, w->msg);
    break;
  case KEEL_ENOTLEADER:
    fatal(EXIT_FAIL, "%s: not leader (%s): the leader changed; retry.", what,
          w->msg);
    break;
  default:
    fatal(EXIT_FAIL, "%s: %s%s%s", what, keel_strerror(e),
          w->msg[0] && strcmp(w->msg, keel_strerror(e)) ? ": " : "",
          strcmp(w->msg, keel_strerror(e)) ? w->msg : "");
  }
}

#define CHECK(w, what, rev)                                                    \
  do {                                                                         \
    if ((w)->err)                                                              \
      fail_req((w), (what), (rev));                                            \
  } while (0)

/* ---------------------------------------------------------------- */
/* Endpoints and the client                                          */

static void resolve_endpoints(void) {
  char err[256];
  const char *src = A.flag[F_ENDPOINTS];
  if (src) {
    g_eps_source = "--endpoints";
    g_neps =
        cli_split_endpoints(src, g_eps, KEEL_MAX_ENDPOINTS, err, sizeof(err));
    if (g_neps < 0)
      usage_error("--endpoints: %s", err);
    return;
  }
  src = getenv("KEEL_ENDPOINTS");
  if (src && *src) {
    g_eps_source = "KEEL_ENDPOINTS";
    g_neps =
        cli_split_endpoints(src, g_eps, KEEL_MAX_ENDPOINTS, err, sizeof(err));
    if (g_neps < 0)
      fatal(EXIT_USAGE, "KEEL_ENDPOINTS: %s", err);
    return;
  }
  char path[1024];
  const char *xdg = getenv("XDG_CONFIG_HOME");
  const char *home = getenv("HOME");
  if (xdg && *xdg)
    snprintf(path, sizeof(path), "%s/keel/config.yaml", xdg);
  else
    snprintf(path, sizeof(path), "%s/.config/keel/config.yaml",
             home ? home : "");
  FILE *f = fopen(path, "r");
  if (f) {
    static char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    int big = !feof(f);
    fclose(f);
    if (big)
      fatal(EXIT_USAGE, "%s: file larger than 64 KiB", path);
    text[n] = 0;
    g_neps =
        cli_config_endpoints(text, g_eps, KEEL_MAX_ENDPOINTS, err, sizeof(err));
    if (g_neps < 0)
      fatal(EXIT_USAGE, "%s: %s", path, err);
    if (g_neps > 0) {
      static char srcbuf[1100];
      snprintf(srcbuf, sizeof(srcbuf), "%s", path);
      g_eps_source = srcbuf;
      return;
    }
  }
  g_neps = 1;
  strcpy(g_eps[0], "127.0.0.1:2379");
}

static keel_sync *new_sync(char eps[][256], int n) {
  const char *p[KEEL_MAX_ENDPOINTS];
  for (int i = 0; i < n; i++)
    p[i] = eps[i];
  struct keel_config cfg;
  keel_config_default(&cfg);
  cfg.endpoints = p;
  cfg.n_endpoints = (size_t)n;
  cfg.request_timeout_ms = g_cmd_ms;
  cfg.dial_timeout_ms = g_dial_ms;
  keel_sync *s;
  int rc = keel_sync_new(&cfg, &s);
  if (rc != 0)
    fatal(EXIT_USAGE,
          "bad endpoint list (%s): %s. Endpoints are host:port or "
          "http://host:port with a numeric address or localhost.",
          eps_list(), keel_strerror(rc));
  return s;
}

static void open_client(void) {
  resolve_endpoints();
  if (g_debug)
    fprintf(stderr, "debug: endpoints from %s: %s\n", g_eps_source, eps_list());
  S = new_sync(g_eps, g_neps);
}

/* ---------------------------------------------------------------- */
/* Output helpers                                                    */

static char *disp(const uint8_t *b, size_t n) {
  char *s = cli_display(b, n, g_hex);
  if (s == NULL)
    fatal(EXIT_FAIL, "out of memory");
  return s;
}

static void print_bytes_line(const uint8_t *b, size_t n) {
  char *s = disp(b, n);
  fputs(s, stdout);
  fputc('\n', stdout);
  free(s);
}

#define MAX_COLS 12
#define CELL_MAX 120
struct table {
  int ncols, nrows, cap;
  const char *head[MAX_COLS];
  char **cells; /* nrows * ncols, malloc'd */
};

static void table_init(struct table *t, int ncols, ...) {
  memset(t, 0, sizeof(*t));
  t->ncols = ncols;
  va_list ap;
  va_start(ap, ncols);
  for (int i = 0; i < ncols; i++)
    t->head[i] = va_arg(ap, const char *);
  va_end(ap);
}

/* Adds a row; each cell is a printf'd string (already display-safe). */
static void table_row(struct table *t, ...) {
  if (t->nrows == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->cells =
        realloc(t->cells, sizeof(char *) * (size_t)t->cap * (size_t)t->ncols);
    if (t->cells == NULL)
      fatal(EXIT_FAIL, "out of memory");
  }
  va_list ap;
  va_start(ap, t);
  for (int i = 0; i < t->ncols; i++) {
    const char *c = va_arg(ap, const char *);
    size_t n = strlen(c);
    char *d;
    /* Cells stay one line and readable: newlines shown as \n, long
     * values cut at a character boundary (-w simple/json print all). */
    size_t extra = 0;
    for (size_t k = 0; k < n; k++)
      extra += c[k] == '\n' || c[k] == '\t';
    d = malloc(n + extra + 4);
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
      if (o >= CELL_MAX && ((unsigned char)c[k] & 0xc0) != 0x80) {
        memcpy(d + o, "...", 3);
        o += 3;
        break;
      }
      if (c[k] == '\n' || c[k] == '\t') {
        d[o++] = '\\';
        d[o++] = c[k] == '\n' ? 'n' : 't';
      } else
        d[o++] = c[k];
    }
    d[o] = 0;
    t->cells[t->nrows * t->ncols + i] = d;
  }
  va_end(ap);
  t->nrows++;
}

/* Display width: UTF-8 characters (continuation bytes do not count). */
static size_t width(const char *s) {
  size_t w = 0;
  for (; *s; s++)
    w += ((unsigned char)*s & 0xc0) != 0x80;
  return w;
}

static void table_print(struct table *t) {
  size_t w[MAX_COLS];
  for (int i = 0; i < t->ncols; i++) {
    w[i] = width(t->head[i]);
    for (int r = 0; r < t->nrows; r++) {
      size_t x = width(t->cells[r * t->ncols + i]);
      if (x > w[i])
        w[i] = x;
    }
  }
  char line[MAX_COLS * (CELL_MAX + 8) + 8];
  size_t o = 0;
  for (int i = 0; i < t->ncols; i++) {
    line[o++] = '+';
    for (size_t k = 0; k < w[i] + 2; k++)
      line[o++] = '-';
  }
  line[o++] = '+';
  line[o] = 0;
  puts(line);
  for (int r = -1; r < t->nrows; r++) {
    for (int i = 0; i < t->ncols; i++) {
      const char *c = r < 0 ? t->head[i] : t->cells[r * t->ncols + i];
      printf("| %s%*s ", c, (int)(w[i] - width(c)), "");
    }
    puts("|");
    if (r < 0)
      puts(line);
  }
  puts(line);
  for (int k = 0; k < t->nrows * t->ncols; k++)
    free(t->cells[k]);
  free(t->cells);
}

static void emit_tree(struct cli_node *n) {
  if (g_fmt == FMT_JSON)
    cli_render_json(stdout, n);
  else
    cli_render_yaml(stdout, n);
  cli_node_free(n);
}

static void node_header(struct cli_node *p, const struct keel_header *h) {
  struct cli_node *o = cli_obj(p, "header");
  cli_uint(o, "cluster_id", h->cluster_id);
  cli_uint(o, "member_id", h->member_id);
  cli_int(o, "revision", h->revision);
  cli_uint(o, "raft_term", h->raft_term);
}

/* A kv the way etcdctl -w json prints it (zero fields left out). */
static void node_kv(struct cli_node *p, const char *name,
                    const struct keel_kv *kv) {
  struct cli_node *o = cli_obj(p, name);
  if (kv->key_len)
    cli_bytes(o, "key", kv->key, kv->key_len);
  if (kv->create_revision)
    cli_int(o, "create_revision", kv->create_revision);
  if (kv->mod_revision)
    cli_int(o, "mod_revision", kv->mod_revision);
  if (kv->version)
    cli_int(o, "version", kv->version);
  if (kv->value_len)
    cli_bytes(o, "value", kv->value, kv->value_len);
  if (kv->lease)
    cli_int(o, "lease", kv->lease);
}

static char *fmtbuf(const char *fmt, ...) {
  char *s;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    fatal(EXIT_FAIL, "out of memory");
  va_end(ap);
  return s;
}

/* ---------------------------------------------------------------- */
/* Flag values                                                       */

static int64_t flag_i64(int f, int64_t def, int64_t min) {
  if (A.flag[f] == NULL)
    return def;
  int64_t v;
  if (cli_parse_i64(A.flag[f], &v) != 0 || v < min)
    usage_error("--%s: expected a whole number >= %" PRId64 ", got \"%s\"",
                cli_flag_names[f], min, A.flag[f]);
  return v;
}

static uint64_t arg_id(const char *s, const char *what) {
  uint64_t v;
  if (cli_parse_id(s, &v) != 0 || v == 0)
    usage_error("%s: expected a hexadecimal id (as printed by keel), got "
                "\"%s\"",
                what, s);
  return v;
}

/* Key range from KEY [RANGE_END] and --prefix / --from-key. end is at
 * least key_len bytes (or 1). */
static size_t key_range(const char *key, const char *range_end, uint8_t *end) {
  size_t kl = strlen(key);
  if (A.flag[F_PREFIX] && A.flag[F_FROM_KEY])
    usage_error("--prefix and --from-key exclude each other");
  if (range_end && (A.flag[F_PREFIX] || A.flag[F_FROM_KEY]))
    usage_error("a range end cannot be combined with --prefix/--from-key");
  if (A.flag[F_PREFIX]) {
    size_t n = keel_prefix_end((const uint8_t *)key, kl, end);
    if (n == 0) {
      end[0] = 0;
      n = 1;
    }
    return n;
  }
  if (A.flag[F_FROM_KEY]) {
    end[0] = 0;
    return 1;
  }
  if (range_end) {
    size_t n = strlen(range_end);
    memcpy(end, range_end, n);
    return n;
  }
  return 0;
}

/* ---------------------------------------------------------------- */
/* get / put / del                                                   */

static void print_kvs_simple(const struct keel_kv *kvs, size_t n,
                             int keys_only) {
  for (size_t i = 0; i < n; i++) {
    print_bytes_line(kvs[i].key, kvs[i].key_len);
    if (!keys_only)
      print_bytes_line(kvs[i].value, kvs[i].value_len);
  }
}

static void print_kvs_table(const struct keel_kv *kvs, size_t n,
                            int keys_only) {
  struct table t;
  if (keys_only)
    table_init(&t, 4, "KEY", "CREATE_REV", "MOD_REV", "VERSION");
  else
    table_init(&t, 6, "KEY", "VALUE", "CREATE_REV", "MOD_REV", "VERSION",
               "LEASE");
  for (size_t i = 0; i < n; i++) {
    char *k = disp(kvs[i].key, kvs[i].key_len);
    char *v = disp(kvs[i].value, kvs[i].value_len);
    char c[24], m[24], ver[24], l[24];
    snprintf(c, sizeof(c), "%" PRId64, kvs[i].create_revision);
    snprintf(m, sizeof(m), "%" PRId64, kvs[i].mod_revision);
    snprintf(ver, sizeof(ver), "%" PRId64, kvs[i].version);
    if (kvs[i].lease)
      snprintf(l, sizeof(l), "%" PRIx64, (uint64_t)kvs[i].lease);
    else
      strcpy(l, "-");
    if (keys_only)
      table_row(&t, k, c, m, ver);
    else
      table_row(&t, k, v, c, m, ver, l);
    free(k);
    free(v);
  }
  table_print(&t);
}

static void range_tree(struct cli_node *o, const struct keel_range_resp *r) {
  node_header(o, &r->header);
  if (r->n_kvs) {
    struct cli_node *a = cli_arr(o, "kvs");
    for (size_t i = 0; i < r->n_kvs; i++)
      node_kv(a, NULL, &r->kvs[i]);
  }
  if (r->more)
    cli_bool(o, "more", 1);
  cli_int(o, "count", r->count);
}

static void fill_range(struct keel_range_req *q, const char *key,
                       const uint8_t *end, size_t end_len) {
  memset(q, 0, sizeof(*q));
  q->key = (const uint8_t *)key;
  q->key_len = strlen(key);
  q->range_end = end;
  q->range_end_len = end_len;
  q->limit = flag_i64(F_LIMIT, 0, 0);
  q->revision = flag_i64(F_REV, 0, 0);
  q->keys_only = A.flag[F_KEYS_ONLY] != NULL;
  q->count_only = A.flag[F_COUNT_ONLY] != NULL;
  const char *sb = A.flag[F_SORT_BY], *so = A.flag[F_ORDER];
  if (sb) {
    static const char *const names[] = {"KEY", "VERSION", "CREATE", "MODIFY",
                                        "VALUE"};
    int k = -1;
    for (int i = 0; i < 5; i++)
      if (strcasecmp(sb, names[i]) == 0)
        k = i;
    if (k < 0)
      usage_error("--sort-by: expected KEY, VERSION, CREATE, MODIFY or "
                  "VALUE, got \"%s\"",
                  sb);
    q->sort_target = (enum keel_sort_target)k;
    q->sort_order = KEEL_SORT_ASCEND;
  }
  if (so) {
    if (strcasecmp(so, "ASCEND") == 0)
      q->sort_order = KEEL_SORT_ASCEND;
    else if (strcasecmp(so, "DESCEND") == 0)
      q->sort_order = KEEL_SORT_DESCEND;
    else
      usage_error("--order: expected ASCEND or DESCEND, got \"%s\"", so);
  }
}

static int cmd_get(const char **p, int n) {
  uint8_t *end = malloc(strlen(p[0]) + (n > 1 ? strlen(p[1]) : 0) + 2);
  size_t el = key_range(p[0], n > 1 ? p[1] : NULL, end);
  struct keel_range_req q;
  fill_range(&q, p[0], end, el);
  struct wait w;
  CALL(&w, "get", keel_range(keel_sync_client(S), &q, &g_opts, on_res, &w));
  CHECK(&w, "get", q.revision);
  const struct keel_range_resp *r = w.resp;
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    range_tree(o, r);
    emit_tree(o);
  } else if (q.count_only) {
    if (g_fmt == FMT_SIMPLE)
      printf("%" PRId64 "\n", r->count);
    else {
      struct table t;
      table_init(&t, 2, "COUNT", "REVISION");
      char c[24], rv[24];
      snprintf(c, sizeof(c), "%" PRId64, r->count);
      snprintf(rv, sizeof(rv), "%" PRId64, r->header.revision);
      table_row(&t, c, rv);
      table_print(&t);
    }
  } else if (g_fmt == FMT_SIMPLE)
    print_kvs_simple(r->kvs, r->n_kvs, q.keys_only);
  else if (r->n_kvs)
    print_kvs_table(r->kvs, r->n_kvs, q.keys_only);
  int rc = (r->n_kvs == 0 && !q.count_only) ? EXIT_NOTFOUND : 0;
  if (rc && g_fmt == FMT_TABLE)
    fprintf(stderr,
            "keel: get: no key matches \"%s\"%s (revision %" PRId64 ")\n", p[0],
            el ? " and the range" : "", r->header.revision);
  keel_resp_free(r);
  free(end);
  return rc;
}

/* Reads all of stdin (bounded by max) into a malloc'd buffer. */
static uint8_t *read_stdin(size_t max, size_t *len, const char *what) {
  size_t cap = 4096, n = 0;
  uint8_t *b = malloc(cap);
  for (;;) {
    if (n == cap) {
      if (cap > max)
        fatal(EXIT_FAIL,
              "%s: value too large: more than %zu bytes on stdin; keel sends "
              "at most %zu bytes (etcd accepts requests up to 1.5 MiB by "
              "default, --max-request-bytes)",
              what, max, max);
      cap *= 2;
      b = realloc(b, cap);
      if (b == NULL)
        fatal(EXIT_FAIL, "out of memory");
    }
    size_t k = fread(b + n, 1, cap - n, stdin);
    n += k;
    if (k == 0)
      break;
  }
  if (n > max)
    fatal(EXIT_FAIL,
          "put: value too large: %zu bytes read from stdin, keel sends at "
          "most %d bytes (etcd accepts 1.5 MiB by default)",
          n, MAX_VALUE);
  *len = n;
  return b;
}

static int64_t flag_lease(void) {
  if (A.flag[F_LEASE] == NULL)
    return 0;
  uint64_t id;
  if (cli_parse_id(A.flag[F_LEASE], &id) != 0)
    usage_error("--lease: expected a hexadecimal lease id, got \"%s\"",
                A.flag[F_LEASE]);
  return (int64_t)id;
}

static int cmd_put(const char **p, int n) {
  struct keel_put_req q;
  memset(&q, 0, sizeof(q));
  q.key = (const uint8_t *)p[0];
  q.key_len = strlen(p[0]);
  uint8_t *owned = NULL;
  q.ignore_value = A.flag[F_IGNORE_VALUE] != NULL;
  if (n > 1) {
    if (q.ignore_value)
      usage_error("put: --ignore-value takes no VALUE");
    q.value = (const uint8_t *)p[1];
    q.value_len = strlen(p[1]);
  } else if (!q.ignore_value) {
    owned = read_stdin(MAX_VALUE, &q.value_len, "put");
    q.value = owned;
  }
  if (q.value_len > MAX_VALUE)
    fatal(EXIT_FAIL,
          "put: value too large: %zu bytes; keel sends at most %d bytes "
          "(etcd accepts requests up to 1.5 MiB by default, "
          "--max-request-bytes)",
          q.value_len, MAX_VALUE);
  q.lease = flag_lease();
  q.prev_kv = A.flag[F_PREV_KV] != NULL;
  q.ignore_lease = A.flag[F_IGNORE_LEASE] != NULL;
  struct wait w;
  CALL(&w, "put", keel_put(keel_sync_client(S), &q, &g_opts, on_res, &w));
  CHECK(&w, "put", 0);
  const struct keel_put_resp *r = w.resp;
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    node_header(o, &r->header);
    if (r->prev_kv)
      node_kv(o, "prev_kv", r->prev_kv);
    emit_tree(o);
  } else if (g_fmt == FMT_SIMPLE) {
    puts("OK");
    if (r->prev_kv)
      print_kvs_simple(r->prev_kv, 1, 0);
  } else {
    printf("OK (revision %" PRId64 ")\n", r->header.revision);
    if (r->prev_kv) {
      puts("previous:");
      print_kvs_table(r->prev_kv, 1, 0);
    }
  }
  keel_resp_free(r);
  free(owned);
  return 0;
}

static int cmd_del(const char **p, int n) {
  uint8_t *end = malloc(strlen(p[0]) + (n > 1 ? strlen(p[1]) : 0) + 2);
  size_t el = key_range(p[0], n > 1 ? p[1] : NULL, end);
  struct keel_delete_req q = {(const uint8_t *)p[0], strlen(p[0]), end, el,
                              A.flag[F_PREV_KV] != NULL};
  struct wait w;
  CALL(&w, "del", keel_delete(keel_sync_client(S), &q, &g_opts, on_res, &w));
  CHECK(&w, "del", 0);
  const struct keel_delete_resp *r = w.resp;
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    node_header(o, &r->header);
    if (r->deleted)
      cli_int(o, "deleted", r->deleted);
    if (r->n_prev_kvs) {
      struct cli_node *a = cli_arr(o, "prev_kvs");
      for (size_t i = 0; i < r->n_prev_kvs; i++)
        node_kv(a, NULL, &r->prev_kvs[i]);
    }
    emit_tree(o);
  } else if (g_fmt == FMT_SIMPLE) {
    printf("%" PRId64 "\n", r->deleted);
    print_kvs_simple(r->prev_kvs, r->n_prev_kvs, 0);
  } else {
    printf("deleted %" PRId64 " key%s (revision %" PRId64 ")\n", r->deleted,
           r->deleted == 1 ? "" : "s", r->header.revision);
    if (r->n_prev_kvs)
      print_kvs_table(r->prev_kvs, r->n_prev_kvs, 0);
  }
  keel_resp_free(r);
  free(end);
  return 0;
}

/* ---------------------------------------------------------------- */
/* txn                                                               */

/* Owned storage of one parsed txn section. */
struct txn_ops {
  struct keel_op ops[MAX_TXN_OPS];
  int n;
  char *bufs[MAX_TXN_OPS];
  uint8_t *ends[MAX_TXN_OPS];
};

static void txn_error(int lineno, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "keel: txn: line %d: ", lineno);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nRun 'keel txn --help' for the input format.\n");
  exit(EXIT_USAGE);
}

/* Parses "put k v [--lease=ID] [--prev-kv]", "get k [end] [--prefix ...]",
 * "del k [end] [--prefix] [--from-key] [--prev-kv]". */
static void parse_op(const char *line, int lineno, struct txn_ops *t) {
  if (t->n >= MAX_TXN_OPS)
    txn_error(lineno, "more than %d operations in one branch", MAX_TXN_OPS);
  size_t bl = strlen(line) + 1;
  char *buf = malloc(bl);
  const char *tok[CLI_MAX_TOKENS];
  size_t tl[CLI_MAX_TOKENS];
  char err[200];
  int k =
      cli_tokenize(line, buf, bl, tok, tl, CLI_MAX_TOKENS, err, sizeof(err));
  if (k < 0)
    txn_error(lineno, "%s", err);
  const char *pos[3];
  size_t posl[3];
  int np = 0, prefix = 0, fromkey = 0, prevkv = 0, keysonly = 0, countonly = 0;
  int64_t lease = 0, limit = 0, rev = 0;
  for (int i = 1; i < k; i++) {
    const char *a = tok[i];
    if (strncmp(a, "--", 2) != 0) {
      if (np >= 3)
        txn_error(lineno, "too many arguments for %s", tok[0]);
      pos[np] = a;
      posl[np++] = tl[i];
    } else if (strcmp(a, "--prefix") == 0)
      prefix = 1;
    else if (strcmp(a, "--from-key") == 0)
      fromkey = 1;
    else if (strcmp(a, "--prev-kv") == 0)
      prevkv = 1;
    else if (strcmp(a, "--keys-only") == 0)
      keysonly = 1;
    else if (strcmp(a, "--count-only") == 0)
      countonly = 1;
    else if (strncmp(a, "--lease=", 8) == 0) {
      uint64_t id;
      if (cli_parse_id(a + 8, &id))
        txn_error(lineno, "bad lease id in %s", a);
      lease = (int64_t)id;
    } else if (strncmp(a, "--limit=", 8) == 0) {
      if (cli_parse_i64(a + 8, &limit) || limit < 0)
        txn_error(lineno, "bad number in %s", a);
    } else if (strncmp(a, "--rev=", 6) == 0) {
      if (cli_parse_i64(a + 6, &rev) || rev < 0)
        txn_error(lineno, "bad number in %s", a);
    } else
      txn_error(lineno, "unknown option %s for %s", a, tok[0]);
  }
  struct keel_op *op = &t->ops[t->n];
  memset(op, 0, sizeof(*op));
  uint8_t *end = NULL;
  size_t el = 0;
  if (k == 0)
    txn_error(lineno, "empty operation");
  int is_put = strcmp(tok[0], "put") == 0;
  int is_get = strcmp(tok[0], "get") == 0;
  int is_del = strcmp(tok[0], "del") == 0 || strcmp(tok[0], "delete") == 0;
  if (!is_put && !is_get && !is_del)
    txn_error(lineno, "unknown operation \"%s\" (expected put, get or del)",
              tok[0]);
  if (np < 1 || posl[0] == 0)
    txn_error(lineno, "%s needs a key", tok[0]);
  if (is_put) {
    if (np != 2)
      txn_error(lineno, "put needs a key and a value");
    op->type = KEEL_OP_PUT;
    op->u.put = (struct keel_put_req){(const uint8_t *)pos[0],
                                      posl[0],
                                      (const uint8_t *)pos[1],
                                      posl[1],
                                      lease,
                                      prevkv,
                                      0,
                                      0};
  } else {
    if (np > 2)
      txn_error(lineno, "%s takes a key and an optional range end", tok[0]);
    end = malloc(posl[0] + (np > 1 ? posl[1] : 0) + 2);
    if (prefix) {
      el = keel_prefix_end((const uint8_t *)pos[0], posl[0], end);
      if (el == 0)
        end[0] = 0, el = 1;
    } else if (fromkey)
      end[0] = 0, el = 1;
    else if (np > 1) {
      memcpy(end, pos[1], posl[1]);
      el = posl[1];
    }
    if (is_get) {
      op->type = KEEL_OP_RANGE;
      struct keel_range_req *q = &op->u.range;
      q->key = (const uint8_t *)pos[0];
      q->key_len = posl[0];
      q->range_end = end;
      q->range_end_len = el;
      q->limit = limit;
      q->revision = rev;
      q->keys_only = keysonly;
      q->count_only = countonly;
    } else {
      op->type = KEEL_OP_DELETE;
      op->u.del = (struct keel_delete_req){(const uint8_t *)pos[0], posl[0],
                                           end, el, prevkv};
    }
  }
  t->bufs[t->n] = buf;
  t->ends[t->n] = end;
  t->n++;
}

static void op_resp_simple(const struct keel_op_resp *r) {
  switch (r->type) {
  case KEEL_OP_PUT:
    puts("OK");
    if (r->u.put->prev_kv)
      print_kvs_simple(r->u.put->prev_kv, 1, 0);
    break;
  case KEEL_OP_RANGE:
    print_kvs_simple(r->u.range->kvs, r->u.range->n_kvs, 0);
    break;
  case KEEL_OP_DELETE:
    printf("%" PRId64 "\n", r->u.del->deleted);
    print_kvs_simple(r->u.del->prev_kvs, r->u.del->n_prev_kvs, 0);
    break;
  case KEEL_OP_TXN:
    puts(r->u.txn->succeeded ? "SUCCESS" : "FAILURE");
    break;
  }
}

static void op_resp_tree(struct cli_node *a, const struct keel_op_resp *r) {
  /* etcdctl -w json's shape: {"Response":{"ResponseRange":{...}}}. */
  struct cli_node *o = cli_obj(cli_obj(a, NULL), "Response");
  struct cli_node *x;
  switch (r->type) {
  case KEEL_OP_PUT:
    x = cli_obj(o, "ResponsePut");
    node_header(x, &r->u.put->header);
    if (r->u.put->prev_kv)
      node_kv(x, "prev_kv", r->u.put->prev_kv);
    break;
  case KEEL_OP_RANGE:
    x = cli_obj(o, "ResponseRange");
    range_tree(x, r->u.range);
    break;
  case KEEL_OP_DELETE:
    x = cli_obj(o, "ResponseDeleteRange");
    node_header(x, &r->u.del->header);
    if (r->u.del->deleted)
      cli_int(x, "deleted", r->u.del->deleted);
    if (r->u.del->n_prev_kvs) {
      struct cli_node *pa = cli_arr(x, "prev_kvs");
      for (size_t i = 0; i < r->u.del->n_prev_kvs; i++)
        node_kv(pa, NULL, &r->u.del->prev_kvs[i]);
    }
    break;
  case KEEL_OP_TXN:
    x = cli_obj(o, "ResponseTxn");
    cli_bool(x, "succeeded", r->u.txn->succeeded);
    break;
  }
}

static int cmd_txn(const char **p, int n) {
  (void)p;
  (void)n;
  int interactive = A.flag[F_INTERACTIVE] != NULL;
  static struct keel_compare cmps[MAX_TXN_OPS];
  static struct cli_cmp pc[MAX_TXN_OPS];
  int ncmp = 0;
  static struct txn_ops succ, fail;
  int section = 0, lineno = 0;
  char *line = malloc(MAX_TXN_LINE + 2);
  if (interactive)
    fprintf(stderr, "compares:\n");
  while (section < 3 && fgets(line, MAX_TXN_LINE + 2, stdin)) {
    lineno++;
    size_t l = strlen(line);
    if (l > MAX_TXN_LINE)
      txn_error(lineno, "line longer than %d bytes", MAX_TXN_LINE);
    while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
      line[--l] = 0;
    if (l == 0) {
      section++;
      if (interactive && section == 1)
        fprintf(stderr, "\nsuccess requests (get, put, del):\n");
      else if (interactive && section == 2)
        fprintf(stderr, "\nfailure requests (get, put, del):\n");
      continue;
    }
    if (section == 0) {
      if (ncmp >= MAX_TXN_OPS)
        txn_error(lineno, "more than %d compares", MAX_TXN_OPS);
      char err[300];
      struct cli_cmp *c = &pc[ncmp];
      if (cli_parse_compare(line, c, err, sizeof(err)) != 0)
        txn_error(lineno, "%s", err);
      struct keel_compare *k = &cmps[ncmp++];
      memset(k, 0, sizeof(*k));
      k->key = (const uint8_t *)c->key;
      k->key_len = c->key_len;
      k->result = c->op[0] == '='   ? KEEL_CMP_EQUAL
                  : c->op[0] == '>' ? KEEL_CMP_GREATER
                  : c->op[0] == '<' ? KEEL_CMP_LESS
                                    : KEEL_CMP_NOT_EQUAL;
      if (strcmp(c->target, "value") == 0) {
        k->target = KEEL_CMP_VALUE;
        k->value = (const uint8_t *)c->arg;
        k->value_len = c->arg_len;
      } else {
        k->target = strcmp(c->target, "version") == 0  ? KEEL_CMP_VERSION
                    : strcmp(c->target, "create") == 0 ? KEEL_CMP_CREATE
                    : strcmp(c->target, "lease") == 0  ? KEEL_CMP_LEASE
                                                       : KEEL_CMP_MOD;
        if (k->target == KEEL_CMP_LEASE) {
          uint64_t id;
          if (cli_parse_id(c->arg, &id) != 0)
            txn_error(lineno, "lease compare needs a hex lease id");
          k->number = (int64_t)id;
        } else if (cli_parse_i64(c->arg, &k->number) != 0)
          txn_error(lineno, "%s compare needs a number, got \"%s\"", c->target,
                    c->arg);
      }
    } else
      parse_op(line, lineno, section == 1 ? &succ : &fail);
  }
  free(line);
  struct keel_txn_req q = {cmps,           (size_t)ncmp, succ.ops,
                           (size_t)succ.n, fail.ops,     (size_t)fail.n};
  struct wait w;
  CALL(&w, "txn", keel_txn(keel_sync_client(S), &q, &g_opts, on_res, &w));
  CHECK(&w, "txn", 0);
  const struct keel_txn_resp *r = w.resp;
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    node_header(o, &r->header);
    if (r->succeeded)
      cli_bool(o, "succeeded", 1);
    struct cli_node *a = cli_arr(o, "responses");
    for (size_t i = 0; i < r->n_responses; i++)
      op_resp_tree(a, &r->responses[i]);
    emit_tree(o);
  } else {
    if (g_fmt == FMT_TABLE)
      printf("%s (revision %" PRId64 ")\n",
             r->succeeded ? "SUCCESS" : "FAILURE", r->header.revision);
    else
      puts(r->succeeded ? "SUCCESS" : "FAILURE");
    for (size_t i = 0; i < r->n_responses; i++) {
      puts("");
      if (g_fmt == FMT_TABLE && r->responses[i].type == KEEL_OP_RANGE) {
        const struct keel_range_resp *rr = r->responses[i].u.range;
        if (rr->n_kvs)
          print_kvs_table(rr->kvs, rr->n_kvs, 0);
        else
          puts("(no keys)");
      } else
        op_resp_simple(&r->responses[i]);
    }
  }
  keel_resp_free(r);
  for (int i = 0; i < ncmp; i++) {
    free(pc[i].key);
    free(pc[i].arg);
  }
  for (int i = 0; i < succ.n; i++)
    free(succ.bufs[i]), free(succ.ends[i]);
  for (int i = 0; i < fail.n; i++)
    free(fail.bufs[i]), free(fail.ends[i]);
  return 0;
}

/* ---------------------------------------------------------------- */
/* watch                                                             */

static keel_watcher *g_watcher;
static int g_watch_rc = -1;
static uv_signal_t g_sig[2];
static int g_sig_on;

static void stop_signals(void) {
  if (!g_sig_on)
    return;
  g_sig_on = 0;
  for (int i = 0; i < 2; i++) {
    uv_signal_stop(&g_sig[i]);
    uv_close((uv_handle_t *)&g_sig[i], NULL);
  }
}

static void print_event(const struct keel_event *e,
                        const struct keel_header *h) {
  (void)h;
  int put = e->type == KEEL_EVENT_PUT;
  if (g_fmt == FMT_SIMPLE) {
    puts(put ? "PUT" : "DELETE");
    if (e->prev_kv)
      print_kvs_simple(e->prev_kv, 1, 0);
    print_bytes_line(e->kv.key, e->kv.key_len);
    print_bytes_line(e->kv.value, e->kv.value_len);
  } else {
    /* One line per event, revision first, so a reader can check order. */
    char *k = disp(e->kv.key, e->kv.key_len);
    printf("%" PRId64 " %s %s", e->kv.mod_revision, put ? "PUT" : "DELETE", k);
    free(k);
    if (put) {
      char *v = disp(e->kv.value, e->kv.value_len);
      printf(" = %s", v);
      free(v);
    }
    if (e->prev_kv) {
      char *v = disp(e->prev_kv->value, e->prev_kv->value_len);
      printf(" (was: %s)", v);
      free(v);
    }
    putchar('\n');
  }
}

static void on_watch(keel_watcher *wt, const struct keel_watch_batch *b,
                     void *ud) {
  (void)wt;
  int64_t start = *(int64_t *)ud;
  if (b->err) {
    g_watcher = NULL;
    stop_signals();
    if (b->err == KEEL_ECOMPACTED)
      fprintf(stderr,
              "keel: watch: revision %" PRId64 " has been compacted; the "
              "oldest revision still available is %" PRId64
              ". Re-read the keys, then watch with --rev %" PRId64 ".\n",
              start, b->compact_revision, b->compact_revision);
    else
      fprintf(stderr, "keel: watch ended: %s%s%s\n", keel_strerror(b->err),
              b->message[0] ? ": " : "", b->message);
    g_watch_rc = EXIT_FAIL;
    return;
  }
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    if (b->n_events == 0)
      return;
    struct cli_node *o = cli_obj(NULL, NULL);
    struct cli_node *h = cli_obj(o, "Header");
    cli_uint(h, "cluster_id", b->header.cluster_id);
    cli_uint(h, "member_id", b->header.member_id);
    cli_int(h, "revision", b->header.revision);
    cli_uint(h, "raft_term", b->header.raft_term);
    struct cli_node *a = cli_arr(o, "Events");
    for (size_t i = 0; i < b->n_events; i++) {
      struct cli_node *e = cli_obj(a, NULL);
      if (b->events[i].type == KEEL_EVENT_DELETE)
        cli_int(e, "type", 1);
      node_kv(e, "kv", &b->events[i].kv);
      if (b->events[i].prev_kv)
        node_kv(e, "prev_kv", b->events[i].prev_kv);
    }
    cli_int(o, "CompactRevision", 0);
    cli_bool(o, "Canceled", 0);
    cli_bool(o, "Created", 0);
    if (g_fmt == FMT_YAML)
      fputs("---\n", stdout);
    emit_tree(o);
  } else
    for (size_t i = 0; i < b->n_events; i++)
      print_event(&b->events[i], &b->header);
  fflush(stdout);
}

static void on_signal(uv_signal_t *h, int sig) {
  (void)h;
  (void)sig;
  if (g_watcher) {
    keel_watch_cancel(g_watcher);
    g_watcher = NULL;
  }
  g_watch_rc = 0;
  stop_signals();
}

static void start_signals(void) {
  uv_loop_t *loop = keel_sync_loop(S);
  int sigs[2] = {SIGINT, SIGTERM};
  for (int i = 0; i < 2; i++) {
    uv_signal_init(loop, &g_sig[i]);
    uv_signal_start(&g_sig[i], on_signal, sigs[i]);
  }
  g_sig_on = 1;
}

static int cmd_watch(const char **p, int n) {
  uint8_t *end = malloc(strlen(p[0]) + (n > 1 ? strlen(p[1]) : 0) + 2);
  size_t el = key_range(p[0], n > 1 ? p[1] : NULL, end);
  struct keel_watch_req q;
  memset(&q, 0, sizeof(q));
  q.key = (const uint8_t *)p[0];
  q.key_len = strlen(p[0]);
  q.range_end = end;
  q.range_end_len = el;
  static int64_t start;
  start = q.start_revision = flag_i64(F_REV, 0, 0);
  q.prev_kv = A.flag[F_PREV_KV] != NULL;
  start_signals();
  int rc =
      keel_watch_create(keel_sync_client(S), &q, on_watch, &start, &g_watcher);
  if (rc != 0)
    fatal(EXIT_FAIL, "watch: %s", keel_strerror(rc));
  while (g_watch_rc < 0)
    uv_run(keel_sync_loop(S), UV_RUN_ONCE);
  /* Let the closes finish before the client goes. */
  uv_run(keel_sync_loop(S), UV_RUN_NOWAIT);
  free(end);
  fflush(stdout);
  return g_watch_rc;
}

/* ---------------------------------------------------------------- */
/* lease                                                             */

static int64_t g_ka_once, g_ka_rc = -1;
static keel_keepalive *g_ka; /* NULL once stopped or ended */

static void on_ka(keel_keepalive *ka, int err, int64_t ttl, void *ud) {
  int64_t id = *(int64_t *)ud;
  if (err) {
    if (err == KEEL_ELEASENOTFOUND) {
      fprintf(stderr,
              "keel: lease %" PRIx64 " expired or revoked; keep-alive "
              "stopped.\n",
              (uint64_t)id);
      g_ka_rc = EXIT_NOTFOUND;
    } else {
      fprintf(stderr, "keel: lease keep-alive ended: %s\n", keel_strerror(err));
      g_ka_rc = EXIT_FAIL;
    }
    g_ka = NULL;
    stop_signals();
    return;
  }
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    cli_int(o, "ID", id);
    cli_int(o, "TTL", ttl);
    emit_tree(o);
  } else
    printf("lease %" PRIx64 " keepalived with TTL(%" PRId64 ")\n", (uint64_t)id,
           ttl);
  fflush(stdout);
  if (g_ka_once) {
    keel_lease_keepalive_stop(ka);
    g_ka = NULL;
    g_ka_rc = 0;
    stop_signals();
  }
}

static void on_ka_signal(uv_signal_t *h, int sig) {
  (void)h;
  (void)sig;
  /* Stop renewing (the lease then expires on its own, like etcdctl). */
  if (g_ka && g_ka_rc < 0)
    keel_lease_keepalive_stop(g_ka);
  g_ka = NULL;
  g_ka_rc = 0;
  stop_signals();
}

static int cmd_lease(const char **p, int n) {
  (void)n;
  const char *sub = p[-1];
  keel_client *c = keel_sync_client(S);
  struct wait w;
  if (strcmp(sub, "grant") == 0) {
    int64_t ttl;
    if (cli_parse_i64(p[0], &ttl) || ttl <= 0)
      usage_error("lease grant: TTL must be a positive number of seconds, "
                  "got \"%s\"",
                  p[0]);
    CALL(&w, "lease grant", keel_lease_grant(c, ttl, 0, &g_opts, on_res, &w));
    CHECK(&w, "lease grant", 0);
    const struct keel_lease_grant_resp *r = w.resp;
    if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
      struct cli_node *o = cli_obj(NULL, NULL);
      node_header(o, &r->header);
      cli_int(o, "ID", r->id);
      cli_int(o, "TTL", r->ttl);
      emit_tree(o);
    } else
      printf("lease %" PRIx64 " granted with TTL(%" PRId64 "s)\n",
             (uint64_t)r->id, r->ttl);
    keel_resp_free(r);
    return 0;
  }
  if (strcmp(sub, "list") == 0) {
    CALL(&w, "lease list", keel_lease_leases(c, &g_opts, on_res, &w));
    CHECK(&w, "lease list", 0);
    const struct keel_lease_list_resp *r = w.resp;
    if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
      struct cli_node *o = cli_obj(NULL, NULL);
      node_header(o, &r->header);
      struct cli_node *a = cli_arr(o, "leases");
      for (size_t i = 0; i < r->n_ids; i++)
        cli_int(cli_obj(a, NULL), "ID", r->ids[i]);
      emit_tree(o);
    } else {
      printf("found %zu leases\n", r->n_ids);
      for (size_t i = 0; i < r->n_ids; i++)
        printf("%" PRIx64 "\n", (uint64_t)r->ids[i]);
    }
    keel_resp_free(r);
    return 0;
  }
  int64_t id = (int64_t)arg_id(p[0], "lease ID");
  if (strcmp(sub, "revoke") == 0) {
    CALL(&w, "lease revoke", keel_lease_revoke(c, id, &g_opts, on_res, &w));
    CHECK(&w, "lease revoke", 0);
    if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
      struct cli_node *o = cli_obj(NULL, NULL);
      node_header(o, w.resp);
      emit_tree(o);
    } else
      printf("lease %" PRIx64 " revoked\n", (uint64_t)id);
    keel_resp_free(w.resp);
    return 0;
  }
  if (strcmp(sub, "timetolive") == 0) {
    int keys = A.flag[F_KEYS] != NULL;
    CALL(&w, "lease timetolive",
         keel_lease_ttl(c, id, keys, &g_opts, on_res, &w));
    CHECK(&w, "lease timetolive", 0);
    const struct keel_lease_ttl_resp *r = w.resp;
    int rc = r->ttl < 0 ? EXIT_NOTFOUND : 0;
    if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
      struct cli_node *o = cli_obj(NULL, NULL);
      node_header(o, &r->header);
      cli_int(o, "ID", r->id);
      cli_int(o, "TTL", r->ttl);
      cli_int(o, "grantedTTL", r->granted_ttl);
      if (r->n_keys) {
        struct cli_node *a = cli_arr(o, "keys");
        for (size_t i = 0; i < r->n_keys; i++)
          cli_bytes(a, NULL, r->keys[i].data, r->keys[i].len);
      }
      emit_tree(o);
    } else if (r->ttl < 0)
      printf("lease %" PRIx64 " already expired\n", (uint64_t)id);
    else {
      printf("lease %" PRIx64 " granted with TTL(%" PRId64
             "s), remaining(%" PRId64 "s)",
             (uint64_t)id, r->granted_ttl, r->ttl);
      if (keys) {
        printf(", attached keys([");
        for (size_t i = 0; i < r->n_keys; i++) {
          char *k = disp(r->keys[i].data, r->keys[i].len);
          printf("%s%s", i ? " " : "", k);
          free(k);
        }
        printf("])");
      }
      putchar('\n');
    }
    keel_resp_free(r);
    return rc;
  }
  /* keep-alive */
  g_ka_once = A.flag[F_ONCE] != NULL;
  static int64_t kid;
  kid = id;
  uv_loop_t *loop = keel_sync_loop(S);
  for (int i = 0; i < 2; i++) {
    uv_signal_init(loop, &g_sig[i]);
    uv_signal_start(&g_sig[i], on_ka_signal, i ? SIGTERM : SIGINT);
  }
  g_sig_on = 1;
  int rc = keel_lease_keepalive(c, id, on_ka, &kid, &g_ka);
  if (rc)
    fatal(EXIT_FAIL, "lease keep-alive: %s", keel_strerror(rc));
  while (g_ka_rc < 0)
    uv_run(loop, UV_RUN_ONCE);
  uv_run(loop, UV_RUN_NOWAIT);
  return (int)g_ka_rc;
}

/* ---------------------------------------------------------------- */
/* member                                                            */

static void members_tree(struct cli_node *o, const struct keel_member *m,
                         size_t n) {
  struct cli_node *a = cli_arr(o, "members");
  for (size_t i = 0; i < n; i++) {
    struct cli_node *x = cli_obj(a, NULL);
    cli_uint(x, "ID", m[i].id);
    if (m[i].name[0])
      cli_str(x, "name", m[i].name);
    struct cli_node *pu = cli_arr(x, "peerURLs");
    for (size_t k = 0; k < m[i].n_peer_urls; k++)
      cli_str(pu, NULL, m[i].peer_urls[k]);
    if (m[i].n_client_urls) {
      struct cli_node *cu = cli_arr(x, "clientURLs");
      for (size_t k = 0; k < m[i].n_client_urls; k++)
        cli_str(cu, NULL, m[i].client_urls[k]);
    }
    if (m[i].is_learner)
      cli_bool(x, "isLearner", 1);
  }
}

static char *join_urls(const char *const *u, size_t n, const char *sep) {
  size_t l = 1;
  for (size_t i = 0; i < n; i++)
    l += strlen(u[i]) + strlen(sep);
  char *s = malloc(l);
  s[0] = 0;
  for (size_t i = 0; i < n; i++) {
    if (i)
      strcat(s, sep);
    strcat(s, u[i]);
  }
  return s;
}

static void print_members(const struct keel_members_resp *r) {
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    node_header(o, &r->header);
    members_tree(o, r->members, r->n_members);
    emit_tree(o);
    return;
  }
  struct table t;
  table_init(&t, 6, "ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS",
             "IS LEARNER");
  for (size_t i = 0; i < r->n_members; i++) {
    const struct keel_member *m = &r->members[i];
    char id[24];
    snprintf(id, sizeof(id), "%" PRIx64, m->id);
    char *pu = join_urls(m->peer_urls, m->n_peer_urls, ",");
    char *cu = join_urls(m->client_urls, m->n_client_urls, ",");
    const char *st = m->name[0] ? "started" : "unstarted";
    if (g_fmt == FMT_SIMPLE)
      printf("%s, %s, %s, %s, %s, %s\n", id, st, m->name, pu, cu,
             m->is_learner ? "true" : "false");
    else
      table_row(&t, id, st, m->name, pu, cu, m->is_learner ? "true" : "false");
    free(pu);
    free(cu);
  }
  if (g_fmt == FMT_TABLE)
    table_print(&t);
  else
    free(t.cells);
}

static int cmd_member(const char **p, int n) {
  (void)n;
  const char *sub = p[-1];
  keel_client *c = keel_sync_client(S);
  struct wait w;
  if (strcmp(sub, "list") == 0) {
    CALL(&w, "member list", keel_member_list(c, 1, &g_opts, on_res, &w));
    CHECK(&w, "member list", 0);
    print_members(w.resp);
    keel_resp_free(w.resp);
    return 0;
  }
  char urlbuf[4][256];
  const char *urls[4];
  int nu = 0;
  if (strcmp(sub, "add") == 0 || strcmp(sub, "update") == 0) {
    if (A.flag[F_PEER_URLS] == NULL)
      usage_error("member %s: --peer-urls is required", sub);
    char err[200];
    nu = cli_split_endpoints(A.flag[F_PEER_URLS], urlbuf, 4, err, sizeof(err));
    if (nu < 0)
      usage_error("--peer-urls: %s", err);
    for (int i = 0; i < nu; i++)
      urls[i] = urlbuf[i];
  }
  if (strcmp(sub, "add") == 0) {
    CALL(&w, "member add",
         keel_member_add(c, urls, (size_t)nu, A.flag[F_LEARNER] != NULL,
                         &g_opts, on_res, &w));
    CHECK(&w, "member add", 0);
    const struct keel_members_resp *r = w.resp;
    if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
      struct cli_node *o = cli_obj(NULL, NULL);
      node_header(o, &r->header);
      if (r->added) {
        struct cli_node *tmp = cli_obj(NULL, NULL);
        members_tree(tmp, r->added, 1);
        /* "member": the first (only) entry of the temporary list. */
        struct cli_node *m = tmp->child->child;
        tmp->child->child = NULL;
        free(m->name);
        m->name = strdup("member");
        if (o->last)
          o->last->next = m;
        o->last = m;
        cli_node_free(tmp);
      }
      members_tree(o, r->members, r->n_members);
      emit_tree(o);
    } else {
      printf("Member %" PRIx64 " added to cluster %" PRIx64 "%s\n",
             r->added ? r->added->id : 0, r->header.cluster_id,
             A.flag[F_LEARNER] ? " as a learner" : "");
      /* What the new member's server needs to join. */
      printf("\nETCD_NAME=\"%s\"\nETCD_INITIAL_CLUSTER=\"", p[0]);
      for (size_t i = 0; i < r->n_members; i++) {
        const struct keel_member *m = &r->members[i];
        const char *nm = m->name[0]                            ? m->name
                         : (r->added && m->id == r->added->id) ? p[0]
                                                               : "";
        for (size_t k = 0; k < m->n_peer_urls; k++)
          printf("%s%s=%s", (i || k) ? "," : "", nm, m->peer_urls[k]);
      }
      printf("\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n");
    }
    keel_resp_free(r);
    return 0;
  }
  uint64_t id = arg_id(p[0], "member ID");
  const char *what = strcmp(sub, "remove") == 0    ? "member remove"
                     : strcmp(sub, "promote") == 0 ? "member promote"
                                                   : "member update";
  if (strcmp(sub, "remove") == 0)
    CALL(&w, what, keel_member_remove(c, id, &g_opts, on_res, &w));
  else if (strcmp(sub, "promote") == 0)
    CALL(&w, what, keel_member_promote(c, id, &g_opts, on_res, &w));
  else
    CALL(&w, what,
         keel_member_update(c, id, urls, (size_t)nu, &g_opts, on_res, &w));
  CHECK(&w, what, 0);
  const struct keel_members_resp *r = w.resp;
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    node_header(o, &r->header);
    members_tree(o, r->members, r->n_members);
    emit_tree(o);
  } else
    printf("Member %" PRIx64 " %s in cluster %" PRIx64 "\n", id,
           strcmp(sub, "remove") == 0    ? "removed"
           : strcmp(sub, "promote") == 0 ? "promoted"
                                         : "updated",
           r->header.cluster_id);
  keel_resp_free(r);
  return 0;
}

/* ---------------------------------------------------------------- */
/* endpoint                                                          */

/* The endpoints to ask: the list, or with --cluster every member's client
 * URLs (deduplicated). Fills eps, returns the count. */
static int endpoint_targets(char eps[][256]) {
  if (!A.flag[F_CLUSTER]) {
    memcpy(eps, g_eps, sizeof(g_eps[0]) * (size_t)g_neps);
    return g_neps;
  }
  struct wait w;
  CALL(&w, "member list",
       keel_member_list(keel_sync_client(S), 1, &g_opts, on_res, &w));
  CHECK(&w, "member list (for --cluster)", 0);
  const struct keel_members_resp *r = w.resp;
  int k = 0;
  for (size_t i = 0; i < r->n_members; i++)
    for (size_t j = 0; j < r->members[i].n_client_urls; j++) {
      const char *u = r->members[i].client_urls[j];
      if (strncmp(u, "http://", 7) == 0)
        u += 7;
      int dup = 0;
      for (int x = 0; x < k; x++)
        dup |= strcmp(eps[x], u) == 0;
      if (!dup && k < KEEL_MAX_ENDPOINTS && strlen(u) < 256)
        strcpy(eps[k++], u);
    }
  keel_resp_free(r);
  if (k == 0)
    fatal(EXIT_FAIL, "endpoint --cluster: no member has a client URL yet");
  return k;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static char *human_size(int64_t b) {
  if (b >= 1000 * 1000)
    return fmtbuf("%.1f MB", b / 1e6);
  if (b >= 1000)
    return fmtbuf("%.0f kB", b / 1e3);
  return fmtbuf("%" PRId64 " B", b);
}

static int cmd_endpoint(const char **p, int n) {
  (void)p;
  (void)n;
  const char *sub = p[-1];
  static char eps[KEEL_MAX_ENDPOINTS][256];
  int ne = endpoint_targets(eps);
  keel_sync *main_s = S;
  int bad = 0;
  struct cli_node *arr = cli_arr(NULL, NULL);
  struct table t;
  if (strcmp(sub, "status") == 0)
    table_init(&t, 10, "ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER",
               "IS LEARNER", "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX",
               "ERRORS");
  else
    table_init(&t, 4, "ENDPOINT", "HEALTH", "TOOK", "ERROR");
  for (int i = 0; i < ne; i++) {
    /* One client per endpoint: the question is about that member. */
    S = new_sync(&eps[i], 1);
    struct wait w;
    double t0 = now_ms();
    if (strcmp(sub, "status") == 0) {
      CALL(&w, "endpoint status",
           keel_status(keel_sync_client(S), 0, &g_opts, on_res, &w));
      if (w.err) {
        bad = 1;
        fprintf(stderr, "keel: endpoint status: %s: %s (%s)\n", eps[i],
                keel_strerror(w.err), w.msg);
      } else {
        const struct keel_status_resp *r = w.resp;
        char *errs = join_urls(r->errors, r->n_errors, ", ");
        if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
          struct cli_node *o = cli_obj(arr, NULL);
          cli_str(o, "Endpoint", eps[i]);
          struct cli_node *s = cli_obj(o, "Status");
          node_header(s, &r->header);
          cli_str(s, "version", r->version);
          cli_int(s, "dbSize", r->db_size);
          cli_uint(s, "leader", r->leader);
          cli_uint(s, "raftIndex", r->raft_index);
          cli_uint(s, "raftTerm", r->raft_term);
          cli_uint(s, "raftAppliedIndex", r->raft_applied_index);
          cli_int(s, "dbSizeInUse", r->db_size_in_use);
          if (r->is_learner)
            cli_bool(s, "isLearner", 1);
          if (r->n_errors) {
            struct cli_node *ea = cli_arr(s, "errors");
            for (size_t k = 0; k < r->n_errors; k++)
              cli_str(ea, NULL, r->errors[k]);
          }
        } else {
          char *id = fmtbuf("%" PRIx64, r->header.member_id);
          char *sz = human_size(r->db_size);
          char *term = fmtbuf("%" PRIu64, r->raft_term);
          char *idx = fmtbuf("%" PRIu64, r->raft_index);
          char *app = fmtbuf("%" PRIu64, r->raft_applied_index);
          const char *lead =
              r->leader == r->header.member_id ? "true" : "false";
          const char *lrn = r->is_learner ? "true" : "false";
          if (g_fmt == FMT_SIMPLE)
            printf("%s, %s, %s, %s, %s, %s, %s, %s, %s, %s\n", eps[i], id,
                   r->version, sz, lead, lrn, term, idx, app, errs);
          else
            table_row(&t, eps[i], id, r->version, sz, lead, lrn, term, idx, app,
                      errs);
          free(id), free(sz), free(term), free(idx), free(app);
        }
        free(errs);
        keel_resp_free(r);
      }
    } else {
      /* health: a linearizable read must go through raft, like etcdctl. */
      struct keel_range_req q;
      memset(&q, 0, sizeof(q));
      q.key = (const uint8_t *)"health";
      q.key_len = 6;
      CALL(&w, "endpoint health",
           keel_range(keel_sync_client(S), &q, &g_opts, on_res, &w));
      /* Like etcdctl: "permission denied" still proves a working raft. */
      int ok = w.err == 0 || w.err == KEEL_EPERM;
      double took = now_ms() - t0;
      char *tk = fmtbuf("%.3fms", took);
      char *er =
          ok ? strdup("")
             : fmtbuf("%s%s%s", keel_strerror(w.err), w.msg[0] ? ": " : "",
                      strcmp(w.msg, keel_strerror(w.err)) ? w.msg : "");
      if (!ok)
        bad = 1;
      if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
        struct cli_node *o = cli_obj(arr, NULL);
        cli_str(o, "endpoint", eps[i]);
        cli_bool(o, "health", ok);
        cli_str(o, "took", tk);
        if (!ok)
          cli_str(o, "error", er);
      } else if (g_fmt == FMT_SIMPLE) {
        if (ok)
          printf("%s is healthy: successfully committed proposal: took = "
                 "%s\n",
                 eps[i], tk);
        else
          printf("%s is unhealthy: failed to commit proposal: %s\n", eps[i],
                 er);
      } else
        table_row(&t, eps[i], ok ? "true" : "false", tk, er);
      free(tk);
      free(er);
      keel_resp_free(w.resp);
    }
    keel_sync_free(S);
  }
  S = main_s;
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML)
    emit_tree(arr);
  else {
    cli_node_free(arr);
    if (g_fmt == FMT_TABLE)
      table_print(&t);
    else {
      for (int k = 0; k < t.nrows * t.ncols; k++)
        free(t.cells[k]);
      free(t.cells);
    }
  }
  if (bad && strcmp(sub, "health") == 0)
    fprintf(stderr, "keel: endpoint health: unhealthy endpoints among: %s\n",
            eps_list());
  return bad ? EXIT_FAIL : 0;
}

/* ---------------------------------------------------------------- */
/* snapshot                                                          */

struct snap {
  struct wait w; /* first: keel_snapshot hands the same ud to on_res */
  FILE *f;
  const char *path;
  struct cli_sha256 sha;
  uint8_t tail[32]; /* the last 32 bytes seen (held back from the hash) */
  size_t ntail;
  uint64_t got, total;
  int tty, werr;
  double last_draw;
};

static void draw_progress(struct snap *s, int final) {
  double t = now_ms();
  if (!final && t - s->last_draw < 100)
    return;
  s->last_draw = t;
  int pct = s->total ? (int)(s->got * 100 / s->total) : 0;
  int filled = pct * 30 / 100;
  char bar[31];
  for (int i = 0; i < 30; i++)
    bar[i] = i < filled ? '#' : '-';
  bar[30] = 0;
  printf("\r[%s] %3d%% %.1f/%.1f MB", bar, pct, s->got / 1e6, s->total / 1e6);
  if (final)
    putchar('\n');
  fflush(stdout);
}

static int on_snap_data(const uint8_t *d, size_t n, uint64_t remaining,
                        void *ud) {
  struct snap *s = ud;
  if (g_debug)
    fprintf(stderr, "debug: snapshot chunk %zu bytes, %" PRIu64 " to come\n", n,
            remaining);
  if (fwrite(d, 1, n, s->f) != n) {
    s->werr = errno ? errno : EIO;
    return 1;
  }
  /* Hash all but the trailing 32 bytes: keep a 32-byte window back. */
  size_t total = s->ntail + n;
  if (total > 32) {
    size_t push = total - 32; /* bytes leaving the window */
    size_t from_tail = push < s->ntail ? push : s->ntail;
    cli_sha256_update(&s->sha, s->tail, from_tail);
    memmove(s->tail, s->tail + from_tail, s->ntail - from_tail);
    s->ntail -= from_tail;
    size_t from_new = push - from_tail;
    cli_sha256_update(&s->sha, d, from_new);
    memcpy(s->tail + s->ntail, d + from_new, n - from_new);
    s->ntail += n - from_new;
  } else {
    memcpy(s->tail + s->ntail, d, n);
    s->ntail += n;
  }
  s->got += n;
  s->total = s->got + remaining;
  if (s->tty)
    draw_progress(s, 0);
  return 0;
}

static void hex32(const uint8_t *h, char *out) {
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", h[i]);
}

static int snapshot_save(const char *path) {
  char part[4096];
  snprintf(part, sizeof(part), "%s.part", path);
  struct snap s;
  memset(&s, 0, sizeof(s));
  s.path = path;
  /* 0600 like etcdctl: a snapshot holds every key and value. */
  int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  s.f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (s.f == NULL)
    fatal(EXIT_FAIL, "snapshot save: cannot create %s: %s", part,
          strerror(errno));
  cli_sha256_init(&s.sha);
  s.tty = isatty(STDOUT_FILENO) && g_fmt != FMT_JSON;
  /* No deadline unless --command-timeout was given: big databases take
   * time. */
  struct keel_opts o = {A.flag[F_COMMAND_TIMEOUT] ? g_cmd_ms : 0, 0};
  struct wait *wp = &s.w;
  CALL(wp, "snapshot",
       keel_snapshot(keel_sync_client(S), -1, &o, on_snap_data, on_res, &s));
  struct wait w = s.w;
  if (s.tty)
    draw_progress(&s, 1);
  int ok = w.err == 0 && !s.werr;
  if (fflush(s.f) != 0 || fsync(fileno(s.f)) != 0)
    ok = 0, s.werr = errno;
  fclose(s.f);
  if (!ok) {
    unlink(part);
    if (s.werr)
      fatal(EXIT_FAIL, "snapshot save: writing %s: %s", part, strerror(s.werr));
    fail_req(&w, "snapshot save", 0);
  }
  uint8_t h[32];
  cli_sha256_final(&s.sha, h);
  /* etcd appends the sha256 of the database; etcdctl checks it when the
   * size says it is there (size % 512 == 32). */
  int has = s.got % 512 == 32 && s.ntail == 32;
  if (has && memcmp(h, s.tail, 32) != 0) {
    unlink(part);
    fatal(EXIT_FAIL,
          "snapshot save: the snapshot's sha256 does not match its trailer "
          "(corrupted in transit); nothing was saved. Try again.");
  }
  if (rename(part, path) != 0)
    fatal(EXIT_FAIL, "snapshot save: rename %s -> %s: %s", part, path,
          strerror(errno));
  char hx[65];
  hex32(h, hx);
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *n = cli_obj(NULL, NULL);
    cli_str(n, "path", path);
    cli_int(n, "size", (int64_t)s.got);
    cli_bool(n, "verified", has);
    cli_str(n, "sha256", hx);
    emit_tree(n);
  } else
    printf("Snapshot saved at %s (%" PRIu64 " bytes, sha256 %s)\n", path, s.got,
           has ? "verified" : "trailer absent: not verified");
  return 0;
}

static int snapshot_status(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    fatal(errno == ENOENT ? EXIT_NOTFOUND : EXIT_FAIL,
          "snapshot status: cannot open %s: %s", path, strerror(errno));
  struct stat st;
  fstat(fileno(f), &st);
  uint64_t size = (uint64_t)st.st_size;
  int has = size % 512 == 32;
  uint64_t body = has ? size - 32 : size;
  struct cli_sha256 sha;
  cli_sha256_init(&sha);
  uint8_t buf[65536], head[64] = {0}, trailer[32];
  uint64_t done = 0;
  while (done < body) {
    size_t want =
        body - done < sizeof(buf) ? (size_t)(body - done) : sizeof(buf);
    size_t k = fread(buf, 1, want, f);
    if (k == 0)
      fatal(EXIT_FAIL, "snapshot status: read error in %s", path);
    if (done == 0)
      memcpy(head, buf, k < 64 ? k : 64);
    cli_sha256_update(&sha, buf, k);
    done += k;
  }
  int match = 0;
  uint8_t h[32];
  cli_sha256_final(&sha, h);
  if (has && fread(trailer, 1, 32, f) == 32)
    match = memcmp(trailer, h, 32) == 0;
  fclose(f);
  /* bbolt (etcd's database): meta page at 0, magic 0xED0CDAED at 16. */
  uint32_t magic = (uint32_t)head[16] | (uint32_t)head[17] << 8 |
                   (uint32_t)head[18] << 16 | (uint32_t)head[19] << 24;
  uint32_t psize = (uint32_t)head[24] | (uint32_t)head[25] << 8 |
                   (uint32_t)head[26] << 16 | (uint32_t)head[27] << 24;
  const char *format = magic == 0xED0CDAEDu ? "bbolt (etcd)" : "unknown";
  char hx[65];
  hex32(h, hx);
  const char *integ = !has ? "no trailer" : match ? "ok" : "MISMATCH";
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *n = cli_obj(NULL, NULL);
    cli_str(n, "path", path);
    cli_int(n, "totalSize", (int64_t)size);
    cli_str(n, "format", format);
    if (magic == 0xED0CDAEDu)
      cli_int(n, "pageSize", psize);
    cli_str(n, "sha256", hx);
    cli_str(n, "integrity", integ);
    emit_tree(n);
  } else if (g_fmt == FMT_SIMPLE)
    printf("%s, %" PRIu64 ", %s, %s, %s\n", path, size, format, hx, integ);
  else {
    struct table t;
    table_init(&t, 5, "FILE", "TOTAL SIZE", "FORMAT", "SHA256", "INTEGRITY");
    char *sz = human_size((int64_t)size);
    table_row(&t, path, sz, format, hx, integ);
    free(sz);
    table_print(&t);
  }
  if (has && !match) {
    fprintf(stderr,
            "keel: snapshot status: %s: sha256 trailer does not "
            "match the content: the file is corrupt\n",
            path);
    return EXIT_FAIL;
  }
  return 0;
}

static int cmd_snapshot(const char **p, int n) {
  (void)n;
  if (strcmp(p[-1], "save") == 0)
    return snapshot_save(p[0]);
  return snapshot_status(p[0]);
}

/* ---------------------------------------------------------------- */
/* maintenance                                                       */

static int cmd_compact(const char **p, int n) {
  (void)n;
  int64_t rev;
  if (cli_parse_i64(p[0], &rev) || rev <= 0)
    usage_error("compact: REVISION must be a positive number, got \"%s\"",
                p[0]);
  struct wait w;
  CALL(&w, "compact",
       keel_compact(keel_sync_client(S), rev, A.flag[F_PHYSICAL] != NULL,
                    &g_opts, on_res, &w));
  CHECK(&w, "compact", rev);
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    node_header(o, w.resp);
    emit_tree(o);
  } else
    printf("compacted revision %" PRId64 "\n", rev);
  keel_resp_free(w.resp);
  return 0;
}

static int cmd_defrag(const char **p, int n) {
  (void)p;
  (void)n;
  static char eps[KEEL_MAX_ENDPOINTS][256];
  int ne = endpoint_targets(eps);
  keel_sync *main_s = S;
  int bad = 0;
  for (int i = 0; i < ne; i++) {
    S = new_sync(&eps[i], 1);
    struct wait w;
    /* Defragmenting a big database takes a while: no default deadline. */
    struct keel_opts o = {A.flag[F_COMMAND_TIMEOUT] ? g_cmd_ms : 60000, 0};
    CALL(&w, "defrag", keel_defragment(keel_sync_client(S), 0, &o, on_res, &w));
    if (w.err) {
      bad = 1;
      fprintf(stderr, "keel: defrag: %s: %s (%s)\n", eps[i],
              keel_strerror(w.err), w.msg);
    } else
      printf("Finished defragmenting etcd member[%s]\n", eps[i]);
    keel_resp_free(w.resp);
    keel_sync_free(S);
  }
  S = main_s;
  return bad ? EXIT_FAIL : 0;
}

static int cmd_move_leader(const char **p, int n) {
  (void)n;
  uint64_t target = arg_id(p[0], "move-leader TARGET_ID");
  /* Find the leader among the endpoints (move-leader must go to it). */
  keel_client *c = keel_sync_client(S);
  int leader_idx = -1;
  uint64_t leader = 0;
  for (int i = 0; i < (int)keel_endpoint_count(c) && leader_idx < 0; i++) {
    struct wait w;
    CALL(&w, "status", keel_status(c, i, &g_opts, on_res, &w));
    if (w.err)
      continue;
    const struct keel_status_resp *r = w.resp;
    if (r->leader && r->leader == r->header.member_id)
      leader_idx = i, leader = r->leader;
    keel_resp_free(r);
  }
  if (leader_idx < 0)
    fatal(EXIT_FAIL,
          "move-leader: none of the endpoints (%s) is the leader; list "
          "every member in --endpoints (see 'keel member list').",
          eps_list());
  if (leader == target) {
    printf("Member %" PRIx64 " is already the leader\n", target);
    return 0;
  }
  struct wait w;
  CALL(&w, "move-leader",
       keel_move_leader(c, leader_idx, target, &g_opts, on_res, &w));
  CHECK(&w, "move-leader", 0);
  keel_resp_free(w.resp);
  printf("Leadership transferred from %" PRIx64 " to %" PRIx64 "\n", leader,
         target);
  return 0;
}

static int cmd_alarm(const char **p, int n) {
  (void)n;
  struct wait w;
  int disarm = strcmp(p[-1], "disarm") == 0;
  CALL(&w, "alarm list",
       keel_alarm_list(keel_sync_client(S), &g_opts, on_res, &w));
  CHECK(&w, disarm ? "alarm disarm" : "alarm list", 0);
  const struct keel_alarm_resp *r = w.resp;
  /* etcd has no wildcard: disarm each listed alarm by member and type, as
   * etcdctl does, and print the ones disarmed. */
  for (size_t i = 0; disarm && i < r->n_alarms; i++) {
    struct wait d;
    CALL(&d, "alarm disarm",
         keel_alarm_disarm(keel_sync_client(S), r->alarms[i].member_id,
                           r->alarms[i].type, &g_opts, on_res, &d));
    CHECK(&d, "alarm disarm", 0);
    keel_resp_free(d.resp);
  }
  static const char *const names[] = {"NONE", "NOSPACE", "CORRUPT"};
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    node_header(o, &r->header);
    struct cli_node *a = cli_arr(o, "alarms");
    for (size_t i = 0; i < r->n_alarms; i++) {
      struct cli_node *x = cli_obj(a, NULL);
      cli_uint(x, "memberID", r->alarms[i].member_id);
      cli_int(x, "alarm", r->alarms[i].type);
    }
    emit_tree(o);
  } else
    for (size_t i = 0; i < r->n_alarms; i++)
      printf("memberID:%" PRIu64 " alarm:%s\n", r->alarms[i].member_id,
             names[r->alarms[i].type % 3]);
  keel_resp_free(r);
  return 0;
}

/* ---------------------------------------------------------------- */
/* history / rollback                                                */

static int cmd_history(const char **p, int n) {
  (void)n;
  int64_t max = flag_i64(F_MAX, 20, 1);
  if (max > 10000)
    usage_error("--max: at most 10000");
  int64_t rev = flag_i64(F_REV, 0, 0);
  struct keel_range_req q;
  memset(&q, 0, sizeof(q));
  q.key = (const uint8_t *)p[0];
  q.key_len = strlen(p[0]);
  struct table t;
  table_init(&t, 5, "MOD_REV", "VERSION", "CREATE_REV", "LEASE", "VALUE");
  struct cli_node *o = cli_obj(NULL, NULL);
  struct cli_node *a = NULL;
  int count = 0;
  int64_t stopped_compacted = 0;
  int64_t current_rev = 0;
  while (count < max) {
    q.revision = rev;
    struct wait w;
    CALL(&w, "history",
         keel_range(keel_sync_client(S), &q, &g_opts, on_res, &w));
    if (w.err == KEEL_ECOMPACTED && count > 0) {
      stopped_compacted = rev;
      break;
    }
    CHECK(&w, "history", rev);
    const struct keel_range_resp *r = w.resp;
    if (current_rev == 0) {
      current_rev = r->header.revision;
      node_header(o, &r->header);
      a = cli_arr(o, "versions");
    }
    if (r->n_kvs == 0) {
      keel_resp_free(r);
      break;
    }
    const struct keel_kv *kv = &r->kvs[0];
    count++;
    node_kv(a, NULL, kv);
    if (g_fmt == FMT_SIMPLE) {
      printf("%" PRId64 "\n", kv->mod_revision);
      print_bytes_line(kv->value, kv->value_len);
    } else if (g_fmt == FMT_TABLE) {
      char *v = disp(kv->value, kv->value_len);
      char m[24], ver[24], c[24], l[24];
      snprintf(m, sizeof(m), "%" PRId64, kv->mod_revision);
      snprintf(ver, sizeof(ver), "%" PRId64, kv->version);
      snprintf(c, sizeof(c), "%" PRId64, kv->create_revision);
      if (kv->lease)
        snprintf(l, sizeof(l), "%" PRIx64, (uint64_t)kv->lease);
      else
        strcpy(l, "-");
      table_row(&t, m, ver, c, l, v);
      free(v);
    }
    /* The version before this one was current at mod_revision - 1, as
     * long as that is still this key's life (>= create_revision). */
    int64_t prev = kv->mod_revision - 1;
    int first = kv->version <= 1 || prev < kv->create_revision;
    keel_resp_free(r);
    if (first)
      break;
    rev = prev;
  }
  if (count == 0) {
    cli_node_free(o);
    free(t.cells);
    fprintf(stderr,
            "keel: history: key \"%s\" does not exist at revision %" PRId64
            "%s\n",
            p[0], rev ? rev : current_rev,
            rev ? ""
                : " (deleted keys: use --rev with a revision at which it "
                  "existed)");
    return EXIT_NOTFOUND;
  }
  if (g_fmt == FMT_JSON || g_fmt == FMT_YAML)
    emit_tree(o);
  else {
    cli_node_free(o);
    if (g_fmt == FMT_TABLE)
      table_print(&t);
    else
      free(t.cells);
  }
  if (stopped_compacted)
    fprintf(stderr,
            "keel: history: older versions were compacted (revision %" PRId64
            " is gone)\n",
            stopped_compacted);
  else if (count == max)
    fprintf(stderr, "keel: history: stopped after --max %" PRId64 " versions\n",
            max);
  return 0;
}

static int cmd_rollback(const char **p, int n) {
  (void)n;
  if (A.flag[F_TO_REV] == NULL)
    usage_error("rollback: --to-rev N is required");
  int64_t to = flag_i64(F_TO_REV, 0, 1);
  keel_client *c = keel_sync_client(S);
  struct keel_range_req q;
  memset(&q, 0, sizeof(q));
  q.key = (const uint8_t *)p[0];
  q.key_len = strlen(p[0]);
  q.revision = to;
  struct wait old;
  CALL(&old, "rollback", keel_range(c, &q, &g_opts, on_res, &old));
  CHECK(&old, "rollback (reading the old value)", to);
  const struct keel_range_resp *ro = old.resp;
  if (ro->n_kvs == 0)
    fatal(EXIT_NOTFOUND,
          "rollback: key \"%s\" did not exist at revision %" PRId64
          "; see 'keel history %s' for the revisions it has.",
          p[0], to, p[0]);
  q.revision = 0;
  struct wait cur;
  CALL(&cur, "rollback", keel_range(c, &q, &g_opts, on_res, &cur));
  CHECK(&cur, "rollback (reading the current value)", 0);
  const struct keel_range_resp *rc = cur.resp;
  int64_t cur_mod = rc->n_kvs ? rc->kvs[0].mod_revision : 0;
  /* Guard: the key is still at the revision we read (mod 0 = absent). */
  struct keel_compare cmp;
  memset(&cmp, 0, sizeof(cmp));
  cmp.result = KEEL_CMP_EQUAL;
  cmp.target = KEEL_CMP_MOD;
  cmp.key = q.key;
  cmp.key_len = q.key_len;
  cmp.number = cur_mod;
  struct keel_op op;
  memset(&op, 0, sizeof(op));
  op.type = KEEL_OP_PUT;
  op.u.put.key = q.key;
  op.u.put.key_len = q.key_len;
  op.u.put.value = ro->kvs[0].value;
  op.u.put.value_len = ro->kvs[0].value_len;
  struct keel_txn_req tq = {&cmp, 1, &op, 1, NULL, 0};
  /* Test hook (tests/e2e/cli): wait for one line on stdin between the
   * read and the guarded write, so a test can change the key in between
   * deterministically. Unused otherwise. */
  if (getenv("KEEL_TEST_ROLLBACK_PAUSE")) {
    fprintf(stderr, "rollback: paused (test hook)\n");
    char tmp[8];
    if (fgets(tmp, sizeof(tmp), stdin) == NULL)
      tmp[0] = 0;
  }
  /* The compare makes a repeat harmless: retry after a lost connection. */
  struct keel_opts o = g_opts;
  o.idempotent = 1;
  struct wait w;
  CALL(&w, "rollback", keel_txn(c, &tq, &o, on_res, &w));
  CHECK(&w, "rollback", 0);
  const struct keel_txn_resp *r = w.resp;
  int ok = r->succeeded;
  if (!ok)
    fprintf(stderr,
            "keel: rollback: \"%s\" changed after it was read (its "
            "mod_revision is no longer %" PRId64
            "); nothing was written. Check 'keel history %s' and run the "
            "rollback again.\n",
            p[0], cur_mod, p[0]);
  else if (g_fmt == FMT_JSON || g_fmt == FMT_YAML) {
    struct cli_node *t = cli_obj(NULL, NULL);
    node_header(t, &r->header);
    cli_int(t, "restored_from_revision", to);
    node_kv(t, "value_from", &ro->kvs[0]);
    emit_tree(t);
  } else
    printf("OK: \"%s\" set to its value at revision %" PRId64
           " (new revision %" PRId64 ")\n",
           p[0], to, r->header.revision);
  keel_resp_free(r);
  keel_resp_free(ro);
  keel_resp_free(rc);
  return ok ? 0 : EXIT_FAIL;
}

/* ---------------------------------------------------------------- */
/* version / completion / cluster                                    */

static int cmd_version(const char **p, int n) {
  (void)p;
  (void)n;
  printf("keel version: %s\nAPI version: 3.4\n", KEEL_CLI_VERSION);
  return 0;
}

static const char bash_completion[] =
    "# keel bash completion: source <(keel completion bash)\n"
    "_keel() {\n"
    "  local cur prev cmd sub i\n"
    "  cur=\"${COMP_WORDS[COMP_CWORD]}\"\n"
    "  prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
    "  cmd=\"\" sub=\"\"\n"
    "  for ((i=1; i<COMP_CWORD; i++)); do\n"
    "    case \"${COMP_WORDS[i]}\" in\n"
    "      -*) ;;\n"
    "      *) if [ -z \"$cmd\" ]; then cmd=\"${COMP_WORDS[i]}\"; "
    "elif [ -z \"$sub\" ]; then sub=\"${COMP_WORDS[i]}\"; fi ;;\n"
    "    esac\n"
    "  done\n"
    "  case \"$prev\" in\n"
    "    -w|--write-out) COMPREPLY=($(compgen -W \"table simple json yaml\" "
    "-- \"$cur\")); return ;;\n"
    "    --sort-by) COMPREPLY=($(compgen -W \"KEY VERSION CREATE MODIFY "
    "VALUE\" -- \"$cur\")); return ;;\n"
    "    --order) COMPREPLY=($(compgen -W \"ASCEND DESCEND\" -- \"$cur\")); "
    "return ;;\n"
    "  esac\n"
    "  local global=\"--endpoints --dial-timeout --command-timeout "
    "--write-out --hex --debug --help\"\n"
    "  local words\n"
    "  case \"$cmd\" in\n"
    "    \"\") words=\"get put del txn watch lease member endpoint snapshot "
    "compact defrag move-leader alarm history rollback version completion "
    "cluster flag help\" ;;\n"
    "    get) words=\"--prefix --from-key --rev --limit --keys-only "
    "--count-only --sort-by --order\" ;;\n"
    "    put) words=\"--lease --prev-kv --ignore-value --ignore-lease\" ;;\n"
    "    del) words=\"--prefix --from-key --prev-kv\" ;;\n"
    "    txn) words=\"--interactive\" ;;\n"
    "    watch) words=\"--prefix --rev --prev-kv\" ;;\n"
    "    lease) [ -z \"$sub\" ] && words=\"grant revoke keep-alive timetolive "
    "list\" || words=\"--once --keys\" ;;\n"
    "    member) [ -z \"$sub\" ] && words=\"list add remove promote update\" "
    "|| words=\"--peer-urls --learner\" ;;\n"
    "    endpoint) [ -z \"$sub\" ] && words=\"status health\" || "
    "words=\"--cluster\" ;;\n"
    "    snapshot) [ -z \"$sub\" ] && words=\"save status restore\" ;;\n"
    "    alarm) [ -z \"$sub\" ] && words=\"list disarm\" ;;\n"
    "    completion) words=\"bash zsh\" ;;\n"
    "    compact) words=\"--physical\" ;;\n"
    "    defrag) words=\"--cluster\" ;;\n"
    "    history) words=\"--max --rev\" ;;\n"
    "    rollback) words=\"--to-rev\" ;;\n"
    "    cluster) [ -z \"$sub\" ] && words=\"up status down\" || "
    "words=\"--nodes --dir\" ;;\n"
    "    flag) [ -z \"$sub\" ] && words=\"list get set enable disable delete "
    "import export eval watch\" || words=\"--dry-run --context --ctx "
    "--type\" ;;\n"
    "  esac\n"
    "  if [[ \"$cur\" == -* ]]; then\n"
    "    COMPREPLY=($(compgen -W \"$words $global\" -- \"$cur\"))\n"
    "  else\n"
    "    COMPREPLY=($(compgen -W \"${words//--[a-z-]*/}\" -- \"$cur\"))\n"
    "    [ -z \"$cmd$sub\" ] || [ ${#COMPREPLY[@]} -gt 0 ] || "
    "COMPREPLY=($(compgen -f -- \"$cur\"))\n"
    "  fi\n"
    "}\n"
    "complete -F _keel keel\n";

static int cmd_completion(const char **p, int n) {
  (void)n;
  if (strcmp(p[0], "bash") == 0)
    fputs(bash_completion, stdout);
  else if (strcmp(p[0], "zsh") == 0) {
    /* zsh runs the bash function through its bashcompinit layer. */
    fputs("#compdef keel\n# keel zsh completion: source <(keel completion "
          "zsh)\nautoload -U +X bashcompinit && bashcompinit\n",
          stdout);
    fputs(bash_completion, stdout);
  } else
    usage_error("completion: expected bash or zsh, got \"%s\"", p[0]);
  return 0;
}

/* ---------------------------------------------------------------- */
/* Services for the command files (cli_cmd.h)                        */

const struct cli_args *cli_cmd_args(void) {
  return &A;
}
enum cli_fmt cli_cmd_format(void) {
  return (enum cli_fmt)g_fmt;
}
uint64_t cli_cmd_timeout_ms(void) {
  return g_cmd_ms;
}
keel_sync *cli_cmd_client(void) {
  return S;
}
const char *cli_cmd_endpoints(void) {
  return eps_list();
}

void cli_cmd_usage_error(const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  usage_error("%s", buf);
  abort(); /* not reached: usage_error exits */
}

void cli_cmd_fatal(int code, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  fatal(code, "%s", buf);
  abort();
}

static struct wait g_last; /* the last cli_cmd_request's outcome */

int cli_cmd_request(const char *what, int64_t rev, int die,
                    cli_cmd_start_fn start, void *arg, const void **resp,
                    char *msg, size_t msglen) {
  struct wait w;
  CALL(&w, what, start(keel_sync_client(S), on_res, &w, arg));
  *resp = w.resp;
  g_last = w;
  g_last.resp = NULL;
  if (w.err && die)
    fail_req(&w, what, rev);
  if (msg && msglen)
    snprintf(msg, msglen, "%s", w.msg);
  return w.err;
}

void cli_cmd_fail_last(const char *what, int64_t rev) {
  assert(g_last.err != 0);
  fail_req(&g_last, what, rev);
  abort(); /* not reached: fail_req exits */
}

char *cli_cmd_display(const uint8_t *b, size_t n) {
  return disp(b, n);
}

struct cli_cmd_table {
  struct table t;
};

struct cli_cmd_table *cli_cmd_table_new(int ncols, const char *const *heads) {
  assert(ncols > 0 && ncols <= MAX_COLS);
  struct cli_cmd_table *t = calloc(1, sizeof(*t));
  if (t == NULL)
    fatal(EXIT_FAIL, "out of memory");
  t->t.ncols = ncols;
  for (int i = 0; i < ncols; i++)
    t->t.head[i] = heads[i];
  return t;
}

void cli_cmd_table_row(struct cli_cmd_table *t, const char *const *cells) {
  const char *c[MAX_COLS] = {0};
  for (int i = 0; i < t->t.ncols; i++)
    c[i] = cells[i];
  /* table_row reads exactly ncols arguments; the rest are ignored. */
  table_row(&t->t, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9],
            c[10], c[11]);
}

void cli_cmd_table_print(struct cli_cmd_table *t) {
  table_print(&t->t);
  free(t);
}

/* ---------------------------------------------------------------- */
/* Command table and help                                            */

#define FL(x) (1ull << (x))
#define GLOBAL                                                                 \
  (FL(F_ENDPOINTS) | FL(F_DIAL_TIMEOUT) | FL(F_COMMAND_TIMEOUT) |              \
   FL(F_WRITE_OUT) | FL(F_HEX) | FL(F_DEBUG) | FL(F_HELP))

struct command {
  const char *name, *sub;
  int (*fn)(const char **p, int n);
  int minp, maxp;
  uint64_t flags;
  int needs_client;
  const char *usage, *help;
};

static const struct command commands[] = {
    {"get", NULL, cmd_get, 1, 2,
     FL(F_PREFIX) | FL(F_FROM_KEY) | FL(F_REV) | FL(F_LIMIT) | FL(F_KEYS_ONLY) |
         FL(F_COUNT_ONLY) | FL(F_SORT_BY) | FL(F_ORDER),
     1, "get KEY [RANGE_END] [flags]",
     "Reads a key, a range [KEY, RANGE_END), a prefix or every key from KEY.\n"
     "Exit 3 when nothing matches (except with --count-only).\n\n"
     "  --prefix            every key starting with KEY\n"
     "  --from-key          every key >= KEY\n"
     "  --rev N             read at revision N (history; 0 = latest)\n"
     "  --limit N           at most N keys\n"
     "  --keys-only         keys without values\n"
     "  --count-only        only the number of keys\n"
     "  --sort-by TARGET    KEY, VERSION, CREATE, MODIFY or VALUE\n"
     "  --order ORDER       ASCEND or DESCEND\n"},
    {"put", NULL, cmd_put, 1, 2,
     FL(F_LEASE) | FL(F_PREV_KV) | FL(F_IGNORE_VALUE) | FL(F_IGNORE_LEASE), 1,
     "put KEY [VALUE] [flags]",
     "Writes VALUE to KEY.\nVALUE is read from stdin when omitted; use\n"
     "'keel put KEY -- -value' for a value starting with '-'.\n\n"
     "  --lease ID          attach the key to lease ID (hex)\n"
     "  --prev-kv           print the previous key-value\n"
     "  --ignore-value      keep the current value (update the lease only)\n"
     "  --ignore-lease      keep the current lease\n"},
    {"del", NULL, cmd_del, 1, 2, FL(F_PREFIX) | FL(F_FROM_KEY) | FL(F_PREV_KV),
     1, "del KEY [RANGE_END] [flags]",
     "Deletes a key, a range, a prefix or every key from KEY.\nPrints how "
     "many were deleted (0 is not an error).\n\n"
     "  --prefix            every key starting with KEY\n"
     "  --from-key          every key >= KEY\n"
     "  --prev-kv           print the deleted key-values\n"},
    {"txn", NULL, cmd_txn, 0, 0, FL(F_INTERACTIVE), 1, "txn [-i]",
     "Runs a transaction read from stdin.\nInput in etcdctl's form: "
     "compares, a\nblank line, the operations run on success, a blank line, "
     "the\noperations run on failure.\n\n"
     "  compares:   mod(\"key\") > \"5\"   (mod, create, version, value, "
     "lease;\n"
     "              = != > <)\n"
     "  operations: put KEY VALUE [--lease=ID] [--prev-kv]\n"
     "              get KEY [END] [--prefix] [--from-key] [--rev=N] "
     "[--limit=N]\n"
     "              del KEY [END] [--prefix] [--from-key] [--prev-kv]\n"
     "  Words with spaces go in \"double quotes\" (\\\" \\\\ \\n \\xNN) or "
     "'single quotes'.\n\n"
     "  -i, --interactive   prompt for each section (on stderr)\n\n"
     "Example:\n"
     "  printf 'value(\"k\") = \"v1\"\\n\\nput k v2\\n\\nget k\\n' | keel "
     "txn\n"},
    {"watch", NULL, cmd_watch, 1, 2, FL(F_PREFIX) | FL(F_REV) | FL(F_PREV_KV),
     1, "watch KEY [RANGE_END] [flags]",
     "Prints every change to a key, range or prefix as it happens.\nRuns "
     "until Ctrl-C or SIGTERM (exit 0). Survives the loss of an endpoint: it\n"
     "resumes on another one from the next revision, with no gap and no\n"
     "duplicate. Table output: one line per event, revision first:\n"
     "  REV PUT KEY = VALUE   /   REV DELETE KEY\n\n"
     "  --prefix            every key starting with KEY\n"
     "  --rev N             start at revision N (replays history)\n"
     "  --prev-kv           also show the value before each change\n"},
    {"lease", "grant", cmd_lease, 1, 1, 0, 1, "lease grant TTL",
     "Grants a lease of TTL seconds; prints its id (hex).\n"},
    {"lease", "revoke", cmd_lease, 1, 1, 0, 1, "lease revoke ID",
     "Revokes a lease and deletes its keys. Exit 3 if it does not exist.\n"},
    {"lease", "keep-alive", cmd_lease, 1, 1, FL(F_ONCE), 1,
     "lease keep-alive ID [--once]",
     "Keeps a lease alive until Ctrl-C (exit 0); exit 3 if it expired.\n\n"
     "  --once              renew once and exit\n"},
    {"lease", "timetolive", cmd_lease, 1, 1, FL(F_KEYS), 1,
     "lease timetolive ID [--keys]",
     "Shows a lease's remaining time; exit 3 if it expired.\n\n"
     "  --keys              also list the keys attached to it\n"},
    {"lease", "list", cmd_lease, 0, 0, 0, 1, "lease list",
     "Lists every lease id.\n"},
    {"member", "list", cmd_member, 0, 0, 0, 1, "member list",
     "Lists the cluster's members.\n"},
    {"member", "add", cmd_member, 1, 1, FL(F_PEER_URLS) | FL(F_LEARNER), 1,
     "member add NAME --peer-urls URL[,URL] [--learner]",
     "Adds a member and prints the settings its server needs to join.\n\n"
     "  --peer-urls URLS    the new member's peer URLs (required)\n"
     "  --learner           add it as a non-voting learner\n"},
    {"member", "remove", cmd_member, 1, 1, 0, 1, "member remove ID",
     "Removes a member (id in hex, from 'keel member list').\n"},
    {"member", "promote", cmd_member, 1, 1, 0, 1, "member promote ID",
     "Promotes a learner that has caught up to a voting member.\n"},
    {"member", "update", cmd_member, 1, 1, FL(F_PEER_URLS), 1,
     "member update ID --peer-urls URL[,URL]",
     "Changes a member's peer URLs.\n"},
    {"endpoint", "status", cmd_endpoint, 0, 0, FL(F_CLUSTER), 1,
     "endpoint status [--cluster]",
     "Shows each endpoint's status.\nVersion, db size, leader, raft\n"
     "term and index. Exit 1 if any endpoint does not answer.\n\n"
     "  --cluster           ask every member (from the member list)\n"},
    {"endpoint", "health", cmd_endpoint, 0, 0, FL(F_CLUSTER), 1,
     "endpoint health [--cluster]",
     "Checks each endpoint's health.\nA linearizable read (it needs a "
     "working\nleader). Exit 1 if any endpoint is unhealthy.\n\n"
     "  --cluster           check every member (from the member list)\n"},
    {"snapshot", "save", cmd_snapshot, 1, 1, 0, 1, "snapshot save FILE",
     "Saves a snapshot of the database to FILE.\nWritten as FILE.part,\n"
     "checked against the sha256 etcd appends, then renamed). A progress\n"
     "bar is drawn when stdout is a terminal. No deadline unless\n"
     "--command-timeout is given.\n"},
    {"snapshot", "status", cmd_snapshot, 1, 1, 0, 0, "snapshot status FILE",
     "Checks a saved snapshot file.\nSize, format, sha256, and whether "
     "the\nsha256 trailer matches. Exit 1 if it does not; 3 if FILE is "
     "missing.\n"},
    {"snapshot", "restore", cmd_snapshot, 1, 1, 0, 0,
     cli_snapshot_restore_usage, cli_snapshot_restore_help},
    {"compact", NULL, cmd_compact, 1, 1, FL(F_PHYSICAL), 1,
     "compact REVISION [--physical]",
     "Discards history before REVISION.\n\n"
     "  --physical          wait until the space is reclaimed\n"},
    {"defrag", NULL, cmd_defrag, 0, 0, FL(F_CLUSTER), 1, "defrag [--cluster]",
     "Defragments each endpoint's database (one at a time).\n\n"
     "  --cluster           every member (from the member list)\n"},
    {"move-leader", NULL, cmd_move_leader, 1, 1, 0, 1, "move-leader TARGET_ID",
     "Transfers leadership to the member TARGET_ID (hex).\n--endpoints must\n"
     "include the current leader.\n"},
    {"alarm", "list", cmd_alarm, 0, 0, 0, 1, "alarm list",
     "Lists active alarms (NOSPACE, CORRUPT).\n"},
    {"alarm", "disarm", cmd_alarm, 0, 0, 0, 1, "alarm disarm",
     "Disarms every alarm and prints the ones disarmed.\n"},
    {"history", NULL, cmd_history, 1, 1, FL(F_MAX) | FL(F_REV), 1,
     "history KEY [--max N] [--rev R]",
     "Lists the past versions of KEY with their revisions.\nNewest first, "
     "by reading the key at mod_revision-1 back to its create_revision.\n"
     "Stops at compacted history (with a note). Exit 3 if KEY does not\n"
     "exist.\n\n"
     "  --max N             at most N versions (default 20, at most 10000)\n"
     "  --rev R             start from the version current at revision R\n"
     "                      (for a key deleted since)\n"},
    {"rollback", NULL, cmd_rollback, 1, 1, FL(F_TO_REV), 1,
     "rollback KEY --to-rev N",
     "Writes the value KEY had at revision N as a new revision.\nThe write\n"
     "is a txn guarded by the key's current mod_revision: if the key\n"
     "changes in between, nothing is written and keel exits 1. Exit 3 if\n"
     "KEY did not exist at N.\n"},
    {"version", NULL, cmd_version, 0, 0, 0, 0, "version",
     "Prints keel's version.\n"},
    {"completion", NULL, cmd_completion, 1, 1, 0, 0, "completion bash|zsh",
     "Prints a shell completion script.\n"
     "  source <(keel completion bash)     # in ~/.bashrc\n"
     "  source <(keel completion zsh)      # in ~/.zshrc\n"},
    {"flag", "list", cli_cmd_flag, 0, 1, 0, 1, "flag list [SET]",
     "Lists the flags of SET, or every flag set.\nState, variants, default\n"
     "variant and revision of each flag (stored under /flags/SET/).\n"},
    {"flag", "get", cli_cmd_flag, 2, 2, 0, 1, "flag get SET KEY",
     "Prints the definition of flag KEY of SET.\nExit 3 if there is none.\n"},
    {"flag", "set", cli_cmd_flag, 2, 3, 0, 1, "flag set SET KEY [JSON]",
     "Writes a flag definition (flagd JSON).\nRead from stdin when JSON is\n"
     "omitted. Validated first (the set's $evaluators included); a\n"
     "definition that breaks a rule is refused with its JSON path. KEY\n"
     "$evaluators writes the set's shared rules.\n"},
    {"flag", "enable", cli_cmd_flag, 2, 2, 0, 1, "flag enable SET KEY",
     "Sets a flag's state to ENABLED.\nGuarded: a concurrent change makes\n"
     "it fail (exit 1) rather than be lost. Exit 3 if there is no flag.\n"},
    {"flag", "disable", cli_cmd_flag, 2, 2, 0, 1, "flag disable SET KEY",
     "Sets a flag's state to DISABLED.\nGuarded like enable.\n"},
    {"flag", "delete", cli_cmd_flag, 2, 2, 0, 1, "flag delete SET KEY",
     "Deletes a flag.\nExit 3 if there is none.\n"},
    {"flag", "import", cli_cmd_flag, 2, 2, FL(F_DRY_RUN), 1,
     "flag import SET FILE [--dry-run]",
     "Makes SET hold exactly the flags of a flagd file.\nFILE - is stdin.\n"
     "One txn writes every new or changed flag and $evaluators and deletes\n"
     "the flags that left the file; it is guarded by the set's revision, so\n"
     "a concurrent change makes it fail (exit 1) with nothing written.\n\n"
     "  --dry-run           print the diff, write nothing\n"},
    {"flag", "export", cli_cmd_flag, 1, 2, 0, 1, "flag export SET [FILE]",
     "Writes SET as a flagd flags file.\nTo FILE or stdout; 'keel flag\n"
     "import' of it changes nothing.\n"},
    {"flag", "eval", cli_cmd_flag, 2, 2, FL(F_CONTEXT) | FL(F_CTX) | FL(F_TYPE),
     1, "flag eval SET KEY [--context J] [--ctx k=v]...",
     "Evaluates a flag.\nPrints value, variant and reason (and the error\n"
     "code); flagd's semantics, at the current revision of the set.\n\n"
     "  --context JSON      the evaluation context, a JSON object\n"
     "  --ctx k=v           one context string (repeatable; k:=JSON for a\n"
     "                      typed value: --ctx age:=42); overrides --context\n"
     "  --type T            boolean, string, number or object: a variant of\n"
     "                      another type is TYPE_MISMATCH (default: any)\n"},
    {"flag", "watch", cli_cmd_flag, 1, 1,
     FL(F_CONTEXT) | FL(F_CTX) | FL(F_TYPE), 1,
     "flag watch SET [--context J] [--ctx k=v]...",
     "Prints each change of a flag set and the new evaluation.\nOne line\n"
     "per flag as it is first read, then one per changed flag. Runs until\n"
     "Ctrl-C or SIGTERM (exit 0).\n\n"
     "  --context, --ctx, --type   as for 'flag eval'\n"},
    {"cluster", "up", cli_cmd_cluster, 0, 0, FL(F_NODES) | FL(F_DIR), 0,
     "cluster up [--nodes 1|3|5] [--dir D]",
     "Starts a local cluster of keeld processes on free loopback ports.\n"
     "Waits until every node is healthy, prints the endpoints and how to\n"
     "use them, and records the cluster in D. keeld is taken from beside\n"
     "the keel binary, else from PATH. Interrupted (Ctrl-C), it stops what\n"
     "it started.\n\n"
     "  --nodes N           1, 3 or 5 nodes (default 3)\n"
     "  --dir D             state, data and logs (default $KEEL_CLUSTER_DIR,\n"
     "                      else /tmp/keel-cluster-$UID)\n"},
    {"cluster", "status", cli_cmd_cluster, 0, 0, FL(F_DIR), 0,
     "cluster status [--dir D]",
     "Shows each node of the local cluster in D.\nProcess, health,\n"
     "leader, revision. Exit 1 if a node is down or unhealthy, 3 if D holds\n"
     "no cluster.\n"},
    {"cluster", "down", cli_cmd_cluster, 0, 0, FL(F_DIR), 0,
     "cluster down [--dir D]",
     "Stops the local cluster in D.\nSIGTERM, then SIGKILL after 5 s. Data\n"
     "and logs stay in D. Exit 3 if D holds no cluster.\n"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char global_help[] =
    "Global flags:\n"
    "  --endpoints LIST        host:port[,host:port...]; else KEEL_ENDPOINTS,\n"
    "                          else 'endpoints:' in "
    "~/.config/keel/config.yaml,\n"
    "                          else 127.0.0.1:2379\n"
    "  --dial-timeout D        connect timeout (default 2s; 500ms, 5s, 1m)\n"
    "  --command-timeout D     deadline per request incl. retries (default "
    "5s)\n"
    "  -w, --write-out FORMAT  table (default), simple, json, yaml\n"
    "  --hex                   print keys and values as \\xNN escapes\n"
    "  --debug                 print each request's endpoint and attempts on "
    "stderr\n"
    "  -h, --help              help\n\n"
    "Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 not found.\n";

static void print_main_help(void) {
  printf("keel — command-line client for keel and etcd v3 clusters\n\n"
         "Usage: keel [global flags] COMMAND [args] [flags]\n\nCommands:\n");
  for (size_t i = 0; i < N_COMMANDS; i++)
    printf("  %-46s %.*s\n", commands[i].usage,
           (int)strcspn(commands[i].help, ".\n"), commands[i].help);
  printf("\n%s\nRun 'keel COMMAND --help' for a command's details.\n",
         global_help);
}

static void print_cmd_help(const struct command *c) {
  printf("Usage: keel %s\n\n%s\n%s", c->usage, c->help, global_help);
}

int main(int argc, char **argv) {
  char err[256];
  signal(SIGPIPE, SIG_DFL);
  /* Offline, with keeld's flags: parsed by the command itself. */
  if (cli_snapshot_restore_wanted(argc, argv))
    return cli_snapshot_restore_main(argc, argv);
  if (cli_parse_args(argc, argv, &A, err, sizeof(err)) != 0)
    usage_error("%s", err);
  if (A.npos == 0 || strcmp(A.pos[0], "help") == 0) {
    if (A.npos > 1) {
      /* keel help CMD [SUB] */
      for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, A.pos[1]) == 0 &&
            (commands[i].sub == NULL ||
             (A.npos > 2 && strcmp(commands[i].sub, A.pos[2]) == 0) ||
             A.npos == 2)) {
          if (commands[i].sub && A.npos == 2)
            printf("Usage: keel %s\n", commands[i].usage);
          else {
            print_cmd_help(&commands[i]);
            return 0;
          }
        }
      return 0;
    }
    print_main_help();
    if (A.npos == 0 && !A.flag[F_HELP]) {
      fprintf(stderr, "keel: no command given\n");
      return EXIT_USAGE;
    }
    return 0;
  }
  /* Find the command (and subcommand). */
  const struct command *cmd = NULL;
  int known = 0;
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (strcmp(commands[i].name, A.pos[0]) != 0)
      continue;
    known = 1;
    if (commands[i].sub == NULL ||
        (A.npos > 1 && strcmp(commands[i].sub, A.pos[1]) == 0)) {
      cmd = &commands[i];
      break;
    }
  }
  if (!known)
    usage_error("unknown command \"%s\"", A.pos[0]);
  if (cmd == NULL) {
    static char cmdname[64];
    snprintf(cmdname, sizeof(cmdname), "%s ", A.pos[0]);
    g_cmd = cmdname;
    if (A.flag[F_HELP] || A.npos == 1) {
      printf("Usage:\n");
      for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, A.pos[0]) == 0)
          printf("  keel %-44s %.*s\n", commands[i].usage,
                 (int)strcspn(commands[i].help, ".\n"), commands[i].help);
      if (A.flag[F_HELP])
        return 0;
      fprintf(stderr, "keel: %s needs a subcommand\n", A.pos[0]);
      return EXIT_USAGE;
    }
    usage_error("unknown subcommand \"%s %s\"", A.pos[0], A.pos[1]);
  }
  static char cmdname[64];
  snprintf(cmdname, sizeof(cmdname), "%s%s%s ", cmd->name, cmd->sub ? " " : "",
           cmd->sub ? cmd->sub : "");
  g_cmd = cmdname;
  if (A.flag[F_HELP]) {
    print_cmd_help(cmd);
    return 0;
  }
  for (int f = 0; f < F_COUNT; f++)
    if (A.flag[f] && !((GLOBAL | cmd->flags) & FL(f)))
      usage_error("flag --%s does not apply to '%s'", cli_flag_names[f],
                  cmd->usage);
  int skip = cmd->sub ? 2 : 1;
  int np = A.npos - skip;
  if (np < cmd->minp)
    usage_error("missing argument: usage: keel %s", cmd->usage);
  if (np > cmd->maxp)
    usage_error("too many arguments: usage: keel %s", cmd->usage);
  const char *wf = A.flag[F_WRITE_OUT];
  if (wf) {
    if (strcmp(wf, "table") == 0)
      g_fmt = FMT_TABLE;
    else if (strcmp(wf, "simple") == 0)
      g_fmt = FMT_SIMPLE;
    else if (strcmp(wf, "json") == 0)
      g_fmt = FMT_JSON;
    else if (strcmp(wf, "yaml") == 0)
      g_fmt = FMT_YAML;
    else
      usage_error("--write-out: expected table, simple, json or yaml, got "
                  "\"%s\"",
                  wf);
  }
  g_hex = A.flag[F_HEX] != NULL;
  g_debug = A.flag[F_DEBUG] != NULL;
  if (A.flag[F_DIAL_TIMEOUT] &&
      (cli_parse_duration_ms(A.flag[F_DIAL_TIMEOUT], &g_dial_ms) ||
       g_dial_ms == 0))
    usage_error("--dial-timeout: expected a duration like 2s or 500ms, got "
                "\"%s\"",
                A.flag[F_DIAL_TIMEOUT]);
  if (A.flag[F_COMMAND_TIMEOUT] &&
      (cli_parse_duration_ms(A.flag[F_COMMAND_TIMEOUT], &g_cmd_ms) ||
       g_cmd_ms == 0))
    usage_error("--command-timeout: expected a duration like 5s, got \"%s\"",
                A.flag[F_COMMAND_TIMEOUT]);
  if (cmd->needs_client)
    open_client();
  int rc = cmd->fn(A.pos + skip, np);
  if (fflush(stdout) != 0)
    rc = EXIT_FAIL;
  if (S)
    keel_sync_free(S);
  return rc;
}

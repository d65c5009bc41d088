/* config.c — keeld's settings table, and the flag, environment and YAML
 * readers and validation rules that all work from it.
 *
 * Loading happens in three steps:
 *   1. collect: each source (flags, environment, file) fills one `raw` slot
 *      per setting with the value text and where it came from;
 *   2. pick: for every setting the strongest source wins (flag > env > file >
 *      default) and its text is parsed by the setting's type;
 *   3. cross-check: rules that tie settings together (election timeout vs
 *      heartbeat, own name in --initial-cluster ...), then the ids.
 * Every error names the winning source of the setting it is about, so a user
 * sees the value that was actually used and where to change it.
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <yaml.h>

#include "keel_error.h"
#include "keel_log.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

enum setting_type {
  T_NAME,      /* a member name: [A-Za-z0-9._-], 1..63 bytes */
  T_STRING,    /* free text up to the field's size */
  T_URLS,      /* comma-separated http://host:port list */
  T_CLUSTER,   /* name=url,name=url,... */
  T_ENUM,      /* one of `choices`, stored as its index */
  T_UINT,      /* a decimal integer in [min, max] */
  T_BYTES,     /* an integer with an optional KiB/MiB/GiB suffix */
  T_RETENTION, /* checked against --auto-compaction-mode later */
  T_LOGLEVEL,
};

struct setting {
  const char *key;
  enum setting_type type;
  size_t offset; /* in struct keel_config */
  size_t size;   /* of the field */
  const char *def;
  uint64_t min, max;
  const char *const *choices;
  const char *help;
};

static const char *const cluster_states[] = {"new", "existing", NULL};
static const char *const compaction_modes[] = {"periodic", "revision", NULL};

#define F(field)                                                               \
  offsetof(struct keel_config, field), sizeof(((struct keel_config *)0)->field)

/* THE table. The order is the order of --help. A NULL default means
 * "derived from other settings" (explained in the help text). */
static const struct setting settings[] = {
    {"name", T_NAME, F(name), "default", 0, 0, NULL,
     "Human-readable name of this member; must appear in "
     "--initial-cluster."},
    {"data-dir", T_STRING, F(data_dir), "", 0, 0, NULL,
     "Directory of this member's data (the LMDB environment). Default: "
     "\"<name>.keel\"."},
    {"listen-client-urls", T_URLS, F(listen_client_urls),
     "http://127.0.0.1:2379", 0, 0, NULL,
     "URLs to listen on for client traffic (etcd v3 gRPC and HTTP)."},
    {"advertise-client-urls", T_URLS, F(advertise_client_urls),
     "http://127.0.0.1:2379", 0, 0, NULL,
     "This member's client URLs as told to the rest of the cluster and to "
     "clients."},
    {"listen-peer-urls", T_URLS, F(listen_peer_urls), "http://127.0.0.1:2380",
     0, 0, NULL, "URLs to listen on for peer (raft) traffic."},
    {"initial-advertise-peer-urls", T_URLS, F(initial_advertise_peer_urls),
     "http://127.0.0.1:2380", 0, 0, NULL,
     "This member's peer URLs as told to the rest of the cluster."},
    {"initial-cluster", T_CLUSTER, F(members), "", 0, 0, NULL,
     "Initial members, as name=peer-url,name=peer-url,... (one URL per "
     "member). Default: \"<name>=<first initial-advertise-peer-url>\"."},
    {"initial-cluster-state", T_ENUM, F(initial_cluster_state), "new", 0, 0,
     cluster_states,
     "\"new\" to bootstrap a cluster from --initial-cluster, \"existing\" "
     "to join one that runs already."},
    {"initial-cluster-token", T_STRING, F(initial_cluster_token),
     "keel-cluster", 0, 0, NULL,
     "Token unique to this cluster; it goes into the member and cluster ids, "
     "so peers of another cluster are refused."},
    {"heartbeat-interval", T_UINT, F(heartbeat_interval_ms), "100", 10, 10000,
     NULL, "Time (in milliseconds) between leader heartbeats."},
    {"election-timeout", T_UINT, F(election_timeout_ms), "1000", 50, 50000,
     NULL,
     "Time (in milliseconds) without a leader before an election; at least "
     "5 times --heartbeat-interval."},
    {"snapshot-count", T_UINT, F(snapshot_count), "100000", 1, 1000000000, NULL,
     "Applied entries between snapshots (and log compaction)."},
    {"quota-backend-bytes", T_BYTES, F(quota_backend_bytes), "2GiB", 64 * KIB,
     256 * GIB, NULL,
     "Database size past which writes fail with NOSPACE (bytes, or with a "
     "KiB/MiB/GiB suffix)."},
    {"auto-compaction-mode", T_ENUM, F(auto_compaction_mode), "periodic", 0, 0,
     compaction_modes,
     "\"periodic\" keeps --auto-compaction-retention of time, \"revision\" "
     "keeps that many revisions."},
    {"auto-compaction-retention", T_RETENTION, F(auto_compaction_retention),
     "0", 0, 0, NULL,
     "History to keep: a duration (\"1h\", \"30m\", \"90s\"; a bare number is "
     "hours, as etcd) in periodic mode, a revision count in revision mode. 0 "
     "turns auto-compaction off."},
    {"max-request-bytes", T_BYTES, F(max_request_bytes), "1572864", 1 * KIB,
     64 * MIB, NULL,
     "Largest client request accepted (bytes, or with a KiB/MiB suffix)."},
    {"log-level", T_LOGLEVEL, F(log_level), "info", 0, 0, NULL,
     "debug, info, warn, error or off."},
    {"config-file", T_STRING, F(config_file), "", 0, 0, NULL,
     "YAML file with settings (keys as the flag names). Flag and environment "
     "only."},
    {"peer-max-frame-bytes", T_BYTES, F(peer_max_frame_bytes), "8MiB", 64 * KIB,
     256 * MIB, NULL,
     "keel: largest peer frame sent or accepted; at least "
     "--max-request-bytes and --snapshot-chunk-bytes plus 64 KiB."},
    {"peer-send-queue-bytes", T_BYTES, F(peer_send_queue_bytes), "64MiB",
     64 * KIB, 4 * GIB, NULL,
     "keel: bytes queued for one peer before sends fail and the peer is "
     "reported unreachable; at least --peer-max-frame-bytes."},
    {"peer-send-queue-frames", T_UINT, F(peer_send_queue_frames), "4096", 1,
     1000000, NULL, "keel: frames queued for one peer, the same way."},
    {"snapshot-chunk-bytes", T_BYTES, F(snapshot_chunk_bytes), "1MiB", 4 * KIB,
     64 * MIB, NULL, "keel: bytes of snapshot data per InstallSnapshot chunk."},
    {"disk-queue-jobs", T_UINT, F(disk_queue_jobs), "1024", 1, 1 << 20, NULL,
     "keel: jobs queued for the disk thread before the loop holds work back."},
    {"ofrep-default-flag-set", T_STRING, F(ofrep_default_flag_set), "", 0, 0,
     NULL,
     "keel: the flag set (/flags/<set>/) OFREP evaluates when a request has "
     "no X-Keel-Flag-Set header. Default: none (the header is required)."},
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

enum source { SRC_DEFAULT = 0, SRC_FILE, SRC_ENV, SRC_FLAG };

struct raw {
  char *value; /* owned; NULL when the source did not set it */
  int line;    /* SRC_FILE */
};

struct loader {
  struct keel_config *cfg;
  char *err;
  size_t errlen;
  struct raw raw[4][N_SETTINGS]; /* by source */
  int chosen[N_SETTINGS];        /* the source that won */
  const char *chosen_value[N_SETTINGS];
  char file_path[KEEL_CONFIG_PATH_MAX];
};

static int setting_index(const char *key) {
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (strcmp(settings[i].key, key) == 0)
      return (int)i;
  return -1;
}

static void env_name(const char *key, char *out, size_t len) {
  size_t n = snprintf(out, len, "KEEL_");
  for (const char *p = key; *p && n + 1 < len; p++)
    out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
  out[n] = '\0';
}

static int fail(struct loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct loader *ld, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ld->err, ld->errlen, fmt, ap);
  va_end(ap);
  return KEEL_ECONFIG;
}

/* "--key=value", "KEEL_KEY=value", "node.yaml:3: key=value" or
 * "--key=value (default)": how the setting's winning value is shown. */
static void describe(const struct loader *ld, int i, char *out, size_t len) {
  const char *key = settings[i].key;
  const char *v = ld->chosen_value[i] ? ld->chosen_value[i] : "";
  char env[96];
  switch (ld->chosen[i]) {
  case SRC_FLAG:
    snprintf(out, len, "--%s=%s", key, v);
    break;
  case SRC_ENV:
    env_name(key, env, sizeof env);
    snprintf(out, len, "%s=%s", env, v);
    break;
  case SRC_FILE:
    snprintf(out, len, "%s:%d: %s=%s", ld->file_path, ld->raw[SRC_FILE][i].line,
             key, v);
    break;
  default:
    snprintf(out, len, "--%s=%s (default)", key, v);
    break;
  }
}

static int fail_setting(struct loader *ld, int i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_setting(struct loader *ld, int i, const char *fmt, ...) {
  char what[KEEL_CONFIG_VALUE_MAX + 256];
  char rule[512];
  describe(ld, i, what, sizeof what);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rule, sizeof rule, fmt, ap);
  va_end(ap);
  return fail(ld, "%s: %s", what, rule);
}

/* Levenshtein distance over at most 64 bytes, '_' counted equal to '-'. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strnlen(a, 64), lb = strnlen(b, 64);
  size_t row[65];
  for (size_t j = 0; j <= lb; j++)
    row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      char ca = a[i - 1] == '_' ? '-' : (char)tolower((unsigned char)a[i - 1]);
      char cb = b[j - 1] == '_' ? '-' : (char)tolower((unsigned char)b[j - 1]);
      size_t best = diag + (ca != cb);
      if (row[j] + 1 < best)
        best = row[j] + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      diag = row[j];
      row[j] = best;
    }
  }
  return row[lb];
}

/* The known key nearest to `key`, or NULL when none is close. */
static const char *suggest(const char *key) {
  const char *best = NULL;
  size_t best_d = 4;
  for (size_t i = 0; i < N_SETTINGS; i++) {
    size_t d = edit_distance(key, settings[i].key);
    if (d < best_d) {
      best_d = d;
      best = settings[i].key;
    }
  }
  return best;
}

static void suggestion_text(const char *prefix, const char *key, char *out,
                            size_t len) {
  const char *s = suggest(key);
  if (s)
    snprintf(out, len, " (did you mean \"%s%s\"?)", prefix, s);
  else
    snprintf(out, len, " (keeld --help lists the settings)");
}

static int set_raw(struct loader *ld, enum source src, int i, const char *v,
                   size_t len, int line) {
  if (len >= KEEL_CONFIG_VALUE_MAX)
    return -1;
  char *copy = malloc(len + 1);
  if (!copy)
    return -ENOMEM;
  memcpy(copy, v, len);
  copy[len] = '\0';
  free(ld->raw[src][i].value);
  ld->raw[src][i].value = copy;
  ld->raw[src][i].line = line;
  return 0;
}

/* --- flags ------------------------------------------------------------- */

static int collect_flags(struct loader *ld, int argc, char **argv) {
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    if (arg[0] != '-' || arg[1] == '\0')
      return fail(ld,
                  "unexpected argument \"%s\": settings are given as "
                  "--flag value",
                  arg);
    /* Go's flag package (etcd's) takes -flag as well as --flag. */
    const char *name = arg[1] == '-' ? arg + 2 : arg + 1;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    char key[80];
    if (name_len == 0 || name_len >= sizeof key)
      return fail(ld, "bad flag \"%s\"", arg);
    memcpy(key, name, name_len);
    key[name_len] = '\0';
    /* --help and --version answer at once, whatever else is wrong. */
    if (strcmp(key, "help") == 0 || strcmp(key, "h") == 0) {
      ld->cfg->help = 1;
      return 0;
    }
    if (strcmp(key, "version") == 0) {
      ld->cfg->version = 1;
      return 0;
    }
    int i = setting_index(key);
    if (i < 0) {
      char hint[128];
      suggestion_text("--", key, hint, sizeof hint);
      return fail(ld, "unknown flag --%s%s", key, hint);
    }
    const char *value;
    if (eq) {
      value = eq + 1;
    } else {
      if (a + 1 >= argc)
        return fail(ld, "--%s: missing value", key);
      value = argv[++a];
    }
    if (ld->raw[SRC_FLAG][i].value)
      return fail(ld, "--%s given twice (\"%s\" and \"%s\")", key,
                  ld->raw[SRC_FLAG][i].value, value);
    int rc = set_raw(ld, SRC_FLAG, i, value, strlen(value), 0);
    if (rc == -1)
      return fail(ld, "--%s: value longer than %d bytes", key,
                  KEEL_CONFIG_VALUE_MAX - 1);
    if (rc < 0)
      return fail(ld, "out of memory");
  }
  return 0;
}

/* --- environment ------------------------------------------------------- */

static int collect_env(struct loader *ld, char **envp) {
  if (!envp)
    return 0;
  for (char **e = envp; *e; e++) {
    if (strncmp(*e, "KEEL_", 5) != 0)
      continue;
    const char *eq = strchr(*e, '=');
    if (!eq)
      continue;
    size_t vlen = (size_t)(eq - *e);
    int found = -1;
    for (size_t i = 0; i < N_SETTINGS && found < 0; i++) {
      char env[96];
      env_name(settings[i].key, env, sizeof env);
      if (strlen(env) == vlen && memcmp(env, *e, vlen) == 0)
        found = (int)i;
    }
    if (found < 0) {
      /* Other programs share the KEEL_ prefix: warn, do not refuse. */
      char key[80];
      size_t klen = vlen - 5 < sizeof key - 1 ? vlen - 5 : sizeof key - 1;
      for (size_t k = 0; k < klen; k++)
        key[k] = (*e)[5 + k] == '_' ? '-'
                                    : (char)tolower((unsigned char)(*e)[5 + k]);
      key[klen] = '\0';
      const char *near = suggest(key);
      if (near) {
        char env[96];
        env_name(near, env, sizeof env);
        keel_logkv(KEEL_LOG_WARN, "config",
                   "environment variable is not a keeld setting",
                   "var=%.*s did_you_mean=%s", (int)vlen, *e, env);
      }
      continue;
    }
    int rc = set_raw(ld, SRC_ENV, found, eq + 1, strlen(eq + 1), 0);
    if (rc == -1)
      return fail(ld, "%.*s: value longer than %d bytes", (int)vlen, *e,
                  KEEL_CONFIG_VALUE_MAX - 1);
    if (rc < 0)
      return fail(ld, "out of memory");
  }
  return 0;
}

/* --- YAML file ----------------------------------------------------------- */

static char *read_file(struct loader *ld, const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fail(ld, "--config-file=%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(KEEL_CONFIG_FILE_MAX + 1);
  if (!buf) {
    fclose(f);
    fail(ld, "out of memory");
    return NULL;
  }
  size_t n = fread(buf, 1, KEEL_CONFIG_FILE_MAX + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    fail(ld, "--config-file=%s: read error", path);
    return NULL;
  }
  if (n > KEEL_CONFIG_FILE_MAX) {
    free(buf);
    fail(ld, "--config-file=%s: larger than %u bytes", path,
         KEEL_CONFIG_FILE_MAX);
    return NULL;
  }
  *len = n;
  return buf;
}

static const char *event_name(yaml_event_type_t t) {
  switch (t) {
  case YAML_SEQUENCE_START_EVENT:
    return "a list";
  case YAML_MAPPING_START_EVENT:
    return "a mapping";
  case YAML_ALIAS_EVENT:
    return "an alias";
  case YAML_SCALAR_EVENT:
    return "a value";
  default:
    return "something else";
  }
}

static bool is_null_scalar(const yaml_event_t *ev) {
  const char *v = (const char *)ev->data.scalar.value;
  if (ev->data.scalar.quoted_implicit && !ev->data.scalar.plain_implicit)
    return false; /* "" or '~' quoted: a real empty string */
  return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
         strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* Reads the value of key `i` (the parser is just past the key). Sequences of
 * scalars are allowed for list settings and joined with ','. */
static int file_value(struct loader *ld, yaml_parser_t *p, int i, int line) {
  const char *path = ld->file_path;
  const char *key = settings[i].key;
  yaml_event_t ev;
  if (!yaml_parser_parse(p, &ev))
    return fail(ld, "%s:%zu: %s", path, p->problem_mark.line + 1,
                p->problem ? p->problem : "YAML syntax error");
  int rc = 0;
  if (ev.type == YAML_SCALAR_EVENT) {
    if (!is_null_scalar(&ev)) {
      rc = set_raw(ld, SRC_FILE, i, (const char *)ev.data.scalar.value,
                   ev.data.scalar.length, line);
      if (rc == -1)
        rc = fail(ld, "%s:%d: %s: value longer than %d bytes", path, line, key,
                  KEEL_CONFIG_VALUE_MAX - 1);
    }
    yaml_event_delete(&ev);
    return rc;
  }
  bool list = settings[i].type == T_URLS || settings[i].type == T_CLUSTER;
  if (ev.type != YAML_SEQUENCE_START_EVENT || !list) {
    rc = fail(ld, "%s:%zu: %s: expected a single value, found %s", path,
              ev.start_mark.line + 1, key, event_name(ev.type));
    yaml_event_delete(&ev);
    return rc;
  }
  yaml_event_delete(&ev);
  char joined[KEEL_CONFIG_VALUE_MAX];
  size_t n = 0;
  for (;;) {
    if (!yaml_parser_parse(p, &ev))
      return fail(ld, "%s:%zu: %s", path, p->problem_mark.line + 1,
                  p->problem ? p->problem : "YAML syntax error");
    if (ev.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&ev);
      break;
    }
    if (ev.type != YAML_SCALAR_EVENT) {
      rc = fail(ld, "%s:%zu: %s: list items must be single values, found %s",
                path, ev.start_mark.line + 1, key, event_name(ev.type));
      yaml_event_delete(&ev);
      return rc;
    }
    size_t l = ev.data.scalar.length;
    if (n + l + 2 >= sizeof joined) {
      yaml_event_delete(&ev);
      return fail(ld, "%s:%d: %s: value longer than %d bytes", path, line, key,
                  KEEL_CONFIG_VALUE_MAX - 1);
    }
    if (n)
      joined[n++] = ',';
    memcpy(joined + n, ev.data.scalar.value, l);
    n += l;
    yaml_event_delete(&ev);
  }
  rc = set_raw(ld, SRC_FILE, i, joined, n, line);
  return rc < 0 ? fail(ld, "out of memory") : 0;
}

static int parse_yaml(struct loader *ld, yaml_parser_t *p) {
  const char *path = ld->file_path;
  int first_line[N_SETTINGS] = {0};
  int depth = 0; /* 0 before the top mapping, 1 inside, 2 after */
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(p, &ev))
      return fail(ld, "%s:%zu: %s%s%s", path, p->problem_mark.line + 1,
                  p->problem ? p->problem : "YAML syntax error",
                  p->context ? " " : "", p->context ? p->context : "");
    int line = (int)ev.start_mark.line + 1;
    yaml_event_type_t type = ev.type;
    int rc = 0;
    switch (type) {
    case YAML_STREAM_START_EVENT:
      break;
    case YAML_STREAM_END_EVENT:
      yaml_event_delete(&ev);
      return 0;
    case YAML_DOCUMENT_START_EVENT:
      if (depth == 2)
        rc = fail(ld, "%s:%d: only one YAML document is allowed", path, line);
      break;
    case YAML_DOCUMENT_END_EVENT:
      break;
    case YAML_MAPPING_START_EVENT:
      if (depth != 0)
        rc = fail(ld, "%s:%d: unexpected mapping", path, line);
      depth = 1;
      break;
    case YAML_MAPPING_END_EVENT:
      depth = 2;
      break;
    case YAML_SCALAR_EVENT: {
      if (depth != 1) {
        rc = fail(ld,
                  "%s:%d: expected a mapping of settings (key: value), "
                  "found a single value",
                  path, line);
        break;
      }
      const char *key = (const char *)ev.data.scalar.value;
      int i = setting_index(key);
      if (i < 0) {
        char hint[128];
        suggestion_text("", key, hint, sizeof hint);
        rc = fail(ld, "%s:%d: unknown key \"%.64s\"%s", path, line, key, hint);
      } else if (strcmp(key, "config-file") == 0) {
        rc = fail(ld, "%s:%d: config-file cannot be set in a config file", path,
                  line);
      } else if (first_line[i]) {
        rc = fail(ld, "%s:%d: %s given twice (first at line %d)", path, line,
                  key, first_line[i]);
      } else {
        first_line[i] = line;
        yaml_event_delete(&ev);
        rc = file_value(ld, p, i, line);
        if (rc < 0)
          return rc;
        continue;
      }
      break;
    }
    default:
      rc = fail(ld,
                "%s:%d: expected a mapping of settings (key: value), found "
                "%s",
                path, line, event_name(type));
      break;
    }
    yaml_event_delete(&ev);
    if (rc < 0)
      return rc;
  }
}

static int collect_file(struct loader *ld, const char *path) {
  snprintf(ld->file_path, sizeof ld->file_path, "%s", path);
  size_t len = 0;
  char *buf = read_file(ld, path, &len);
  if (!buf)
    return KEEL_ECONFIG;
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) {
    free(buf);
    return fail(ld, "out of memory");
  }
  yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
  int rc = parse_yaml(ld, &p);
  yaml_parser_delete(&p);
  free(buf);
  return rc;
}

/* --- values ---------------------------------------------------------------
 * Each parser returns 0, or -1 with the rule in `rule`. */

static int parse_u64(const char *s, uint64_t *out, const char **end) {
  if (!isdigit((unsigned char)*s))
    return -1;
  uint64_t v = 0;
  while (isdigit((unsigned char)*s)) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -2;
    v = v * 10 + d;
    s++;
  }
  *out = v;
  *end = s;
  return 0;
}

static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                      char *rule, size_t len) {
  const char *end;
  int rc = parse_u64(s, out, &end);
  if (rc == -1 || (rc == 0 && *end != '\0')) {
    snprintf(rule, len, "not a number");
    return -1;
  }
  if (rc == -2 || *out < min || *out > max) {
    snprintf(rule, len, "must be between %llu and %llu",
             (unsigned long long)min, (unsigned long long)max);
    return -1;
  }
  return 0;
}

static int parse_bytes(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                       char *rule, size_t len) {
  const char *end;
  uint64_t v;
  int rc = parse_u64(s, &v, &end);
  uint64_t mult = 1;
  if (rc == 0) {
    if (strcmp(end, "") == 0 || strcmp(end, "B") == 0)
      mult = 1;
    else if (strcmp(end, "KiB") == 0)
      mult = KIB;
    else if (strcmp(end, "MiB") == 0)
      mult = MIB;
    else if (strcmp(end, "GiB") == 0)
      mult = GIB;
    else
      rc = -1;
  }
  if (rc == -1) {
    snprintf(rule, len, "not a size (bytes, or a number with KiB, MiB or GiB)");
    return -1;
  }
  if (rc == -2 || v > UINT64_MAX / mult || v * mult < min || v * mult > max) {
    snprintf(rule, len, "must be between %llu and %llu bytes",
             (unsigned long long)min, (unsigned long long)max);
    return -1;
  }
  *out = v * mult;
  return 0;
}

/* Go-style duration with h, m, s, ms units ("1h30m"), or a bare number of
 * hours (etcd's reading of --auto-compaction-retention). Result in ms. */
static int parse_retention_ms(const char *s, uint64_t *out) {
  const char *end;
  uint64_t v;
  int rc = parse_u64(s, &v, &end);
  if (rc < 0)
    return -1;
  if (*end == '\0') {
    if (v > UINT64_MAX / 3600000)
      return -1;
    *out = v * 3600000;
    return 0;
  }
  uint64_t total = 0;
  for (;;) {
    uint64_t unit;
    if (strncmp(end, "ms", 2) == 0) {
      unit = 1;
      end += 2;
    } else if (*end == 'h') {
      unit = 3600000;
      end++;
    } else if (*end == 'm') {
      unit = 60000;
      end++;
    } else if (*end == 's') {
      unit = 1000;
      end++;
    } else {
      return -1;
    }
    if (v > (UINT64_MAX - total) / unit)
      return -1;
    total += v * unit;
    if (*end == '\0')
      break;
    if (parse_u64(end, &v, &end) < 0)
      return -1;
  }
  *out = total;
  return 0;
}

static bool valid_name(const char *s, char *rule, size_t len) {
  size_t n = strlen(s);
  if (n == 0 || n >= KEEL_CONFIG_NAME_MAX) {
    snprintf(rule, len, "a name has 1 to %d bytes", KEEL_CONFIG_NAME_MAX - 1);
    return false;
  }
  for (const char *p = s; *p; p++) {
    if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
      snprintf(rule, len,
               "a name may only hold letters, digits, '-', '_' and '.'");
      return false;
    }
  }
  return true;
}

int keel_config_parse_url(const char *text, struct keel_url *out, char *err,
                          size_t errlen) {
  memset(out, 0, sizeof *out);
  size_t n = strlen(text);
  if (n >= sizeof out->text) {
    snprintf(err, errlen, "URL longer than %d bytes", KEEL_CONFIG_URL_MAX - 1);
    return -EINVAL;
  }
  memcpy(out->text, text, n + 1);
  const char *p = text;
  if (strncmp(p, "http://", 7) == 0) {
    p += 7;
  } else if (strncmp(p, "https://", 8) == 0) {
    snprintf(err, errlen, "\"%s\": https is not supported yet (use http://)",
             text);
    return -EINVAL;
  } else {
    snprintf(err, errlen, "\"%s\" is not a URL of the form http://host:port",
             text);
    return -EINVAL;
  }
  const char *host = p, *host_end;
  if (*p == '[') {
    host = p + 1;
    host_end = strchr(host, ']');
    if (!host_end) {
      snprintf(err, errlen, "\"%s\": unclosed '[' in the host", text);
      return -EINVAL;
    }
    p = host_end + 1;
  } else {
    host_end = p + strcspn(p, ":/?#");
    p = host_end;
  }
  if (host_end == host) {
    snprintf(err, errlen, "\"%s\": missing host", text);
    return -EINVAL;
  }
  for (const char *h = host; h < host_end; h++) {
    if (!isalnum((unsigned char)*h) && !strchr(".-_:", *h)) {
      snprintf(err, errlen, "\"%s\": bad character '%c' in the host", text, *h);
      return -EINVAL;
    }
  }
  memcpy(out->host, host, (size_t)(host_end - host));
  if (*p != ':') {
    snprintf(err, errlen, "\"%s\": missing port (http://host:port)", text);
    return -EINVAL;
  }
  p++;
  uint64_t port;
  const char *end;
  if (parse_u64(p, &port, &end) < 0 || port == 0 || port > 65535) {
    snprintf(err, errlen, "\"%s\": the port must be a number from 1 to 65535",
             text);
    return -EINVAL;
  }
  if (*end == '/' && end[1] == '\0')
    end++; /* a lone trailing slash is harmless */
  if (*end != '\0') {
    snprintf(err, errlen, "\"%s\": unexpected \"%s\" after the port", text,
             end);
    return -EINVAL;
  }
  out->port = (uint16_t)port;
  return 0;
}

static int parse_urls(const char *s, struct keel_url_list *out, char *rule,
                      size_t len) {
  out->n = 0;
  const char *p = s;
  char one[KEEL_CONFIG_URL_MAX + 1];
  for (;;) {
    size_t l = strcspn(p, ",");
    if (l == 0) {
      snprintf(rule, len, "empty URL in the list");
      return -1;
    }
    if (l >= sizeof one) {
      snprintf(rule, len, "URL longer than %d bytes", KEEL_CONFIG_URL_MAX - 1);
      return -1;
    }
    if (out->n == KEEL_CONFIG_MAX_URLS) {
      snprintf(rule, len, "more than %d URLs", KEEL_CONFIG_MAX_URLS);
      return -1;
    }
    memcpy(one, p, l);
    one[l] = '\0';
    if (keel_config_parse_url(one, &out->v[out->n], rule, len) < 0)
      return -1;
    for (size_t k = 0; k < out->n; k++) {
      if (strcmp(out->v[k].text, one) == 0) {
        snprintf(rule, len, "\"%s\" is listed twice", one);
        return -1;
      }
    }
    out->n++;
    p += l;
    if (*p == '\0')
      return 0;
    p++;
  }
}

static int parse_cluster(const char *s, struct keel_config *cfg, char *rule,
                         size_t len) {
  cfg->n_members = 0;
  const char *p = s;
  char one[KEEL_CONFIG_NAME_MAX + KEEL_CONFIG_URL_MAX + 2];
  for (;;) {
    size_t l = strcspn(p, ",");
    if (l == 0 || l >= sizeof one) {
      snprintf(rule, len, "%s member entry (expected name=http://host:port)",
               l ? "overlong" : "empty");
      return -1;
    }
    if (cfg->n_members == KEEL_CONFIG_MAX_MEMBERS) {
      snprintf(rule, len, "more than %d members", KEEL_CONFIG_MAX_MEMBERS);
      return -1;
    }
    memcpy(one, p, l);
    one[l] = '\0';
    char *eq = strchr(one, '=');
    if (!eq) {
      snprintf(rule, len, "\"%s\" is not name=http://host:port", one);
      return -1;
    }
    *eq = '\0';
    struct keel_member *m = &cfg->members[cfg->n_members];
    char sub[256];
    if (!valid_name(one, sub, sizeof sub)) {
      snprintf(rule, len, "member \"%.64s\": %s", one, sub);
      return -1;
    }
    memcpy(m->name, one, strlen(one) + 1); /* valid_name(): it fits */
    if (keel_config_parse_url(eq + 1, &m->peer_url, sub, sizeof sub) < 0) {
      snprintf(rule, len, "member %s: %s", m->name, sub);
      return -1;
    }
    for (size_t k = 0; k < cfg->n_members; k++) {
      if (strcmp(cfg->members[k].name, m->name) == 0) {
        snprintf(rule, len,
                 "member name \"%s\" appears twice (one peer URL per member)",
                 m->name);
        return -1;
      }
      if (strcmp(cfg->members[k].peer_url.text, m->peer_url.text) == 0) {
        snprintf(rule, len, "peer URL %s is given to both %s and %s",
                 m->peer_url.text, cfg->members[k].name, m->name);
        return -1;
      }
    }
    cfg->n_members++;
    p += l;
    if (*p == '\0')
      return 0;
    p++;
  }
}

static int parse_setting(struct loader *ld, int i, const char *v) {
  const struct setting *s = &settings[i];
  char *field = (char *)ld->cfg + s->offset;
  char rule[512];
  int bad = 0;
  uint64_t u = 0;
  switch (s->type) {
  case T_NAME:
    if (!valid_name(v, rule, sizeof rule))
      bad = 1;
    else
      memcpy(field, v, strlen(v) + 1);
    break;
  case T_STRING:
    if (strlen(v) >= s->size) {
      snprintf(rule, sizeof rule, "longer than %zu bytes", s->size - 1);
      bad = 1;
    } else {
      memcpy(field, v, strlen(v) + 1);
    }
    break;
  case T_URLS:
    bad = parse_urls(v, (struct keel_url_list *)field, rule, sizeof rule) < 0;
    break;
  case T_CLUSTER:
    if (v[0] != '\0')
      bad = parse_cluster(v, ld->cfg, rule, sizeof rule) < 0;
    break;
  case T_ENUM: {
    int found = -1;
    for (int k = 0; s->choices[k]; k++)
      if (strcmp(v, s->choices[k]) == 0)
        found = k;
    assert(s->size == sizeof(int));
    if (found < 0) {
      size_t n = snprintf(rule, sizeof rule, "must be one of");
      for (int k = 0; s->choices[k] && n < sizeof rule; k++)
        n += snprintf(rule + n, sizeof rule - n, "%s %s", k ? "," : "",
                      s->choices[k]);
      bad = 1;
    } else {
      *(int *)field = found;
    }
    break;
  }
  case T_UINT:
  case T_BYTES:
    if (s->type == T_UINT)
      bad = parse_uint(v, s->min, s->max, &u, rule, sizeof rule) < 0;
    else
      bad = parse_bytes(v, s->min, s->max, &u, rule, sizeof rule) < 0;
    if (!bad && s->size == sizeof(uint32_t))
      *(uint32_t *)field = (uint32_t)u;
    else if (!bad)
      *(uint64_t *)field = u;
    break;
  case T_RETENTION:
    break; /* needs the mode: cross_check() */
  case T_LOGLEVEL: {
    enum keel_log_level level;
    if (keel_log_parse_level(v, &level) < 0) {
      snprintf(rule, sizeof rule,
               "must be one of debug, info, warn, error, "
               "off");
      bad = 1;
    } else {
      *(int *)field = (int)level;
    }
    break;
  }
  }
  if (bad)
    return fail_setting(ld, i, "%s", rule);
  return 0;
}

#define IDX(key) setting_index_checked(key)
static int setting_index_checked(const char *key) {
  int i = setting_index(key);
  assert(i >= 0);
  return i;
}

static bool url_in(const struct keel_url *u, const struct keel_url_list *l) {
  for (size_t k = 0; k < l->n; k++)
    if (strcmp(l->v[k].host, u->host) == 0 && l->v[k].port == u->port)
      return true;
  return false;
}

static int cross_check(struct loader *ld) {
  struct keel_config *cfg = ld->cfg;

  if (cfg->election_timeout_ms < 5ull * cfg->heartbeat_interval_ms)
    return fail_setting(ld, IDX("election-timeout"),
                        "must be at least 5 times --heartbeat-interval (%u)",
                        cfg->heartbeat_interval_ms);

  int ri = IDX("auto-compaction-retention");
  const char *rv = ld->chosen_value[ri];
  if (cfg->auto_compaction_mode == KEEL_COMPACTION_REVISION) {
    char rule[256];
    if (parse_uint(rv, 0, UINT64_MAX, &cfg->auto_compaction_retention, rule,
                   sizeof rule) < 0)
      return fail_setting(ld, ri,
                          "with --auto-compaction-mode=revision it is a "
                          "number of revisions: %s",
                          rule);
  } else if (parse_retention_ms(rv, &cfg->auto_compaction_retention) < 0) {
    return fail_setting(ld, ri,
                        "with --auto-compaction-mode=periodic it is a "
                        "duration such as 1h, 30m, 90s, or a number of hours");
  }

  const uint64_t slack = 64 * KIB;
  if (cfg->peer_max_frame_bytes < cfg->max_request_bytes + slack)
    return fail_setting(ld, IDX("peer-max-frame-bytes"),
                        "must be at least --max-request-bytes (%llu) + 64 KiB",
                        (unsigned long long)cfg->max_request_bytes);
  if (cfg->peer_max_frame_bytes < cfg->snapshot_chunk_bytes + slack)
    return fail_setting(
        ld, IDX("peer-max-frame-bytes"),
        "must be at least --snapshot-chunk-bytes (%llu) + 64 KiB",
        (unsigned long long)cfg->snapshot_chunk_bytes);
  if (cfg->peer_send_queue_bytes < cfg->peer_max_frame_bytes)
    return fail_setting(ld, IDX("peer-send-queue-bytes"),
                        "must be at least --peer-max-frame-bytes (%llu)",
                        (unsigned long long)cfg->peer_max_frame_bytes);

  for (const char *p = cfg->ofrep_default_flag_set; *p; p++)
    if (*p == '/' || (unsigned char)*p < 0x21 || *p == 0x7f)
      return fail_setting(ld, IDX("ofrep-default-flag-set"),
                          "a flag set name has no '/', blanks or control "
                          "characters");

  if (cfg->data_dir[0] == '\0')
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s.keel", cfg->name);

  int ci = IDX("initial-cluster");
  if (cfg->n_members == 0) {
    /* etcd's default: this member alone at its advertised peer URL. */
    struct keel_member *m = &cfg->members[0];
    memcpy(m->name, cfg->name, sizeof m->name);
    m->peer_url = cfg->initial_advertise_peer_urls.v[0];
    cfg->n_members = 1;
  }
  const struct keel_member *self = NULL;
  for (size_t k = 0; k < cfg->n_members; k++)
    if (strcmp(cfg->members[k].name, cfg->name) == 0)
      self = &cfg->members[k];
  if (!self)
    return fail_setting(
        ld, ci, "this member's --name (%s) is not in the cluster", cfg->name);
  if (!url_in(&self->peer_url, &cfg->initial_advertise_peer_urls))
    return fail_setting(ld, ci,
                        "%s's peer URL %s is not among "
                        "--initial-advertise-peer-urls",
                        cfg->name, self->peer_url.text);

  for (size_t a = 0; a < cfg->listen_client_urls.n; a++)
    if (url_in(&cfg->listen_client_urls.v[a], &cfg->listen_peer_urls))
      return fail_setting(ld, IDX("listen-client-urls"),
                          "%s is also a --listen-peer-urls address",
                          cfg->listen_client_urls.v[a].text);

  uint64_t ids[KEEL_CONFIG_MAX_MEMBERS];
  for (size_t k = 0; k < cfg->n_members; k++) {
    struct keel_member *m = &cfg->members[k];
    m->id = keel_config_member_id(m->name, m->peer_url.text,
                                  cfg->initial_cluster_token);
    for (size_t j = 0; j < k; j++)
      if (ids[j] == m->id) /* 2^-64 per pair; refuse rather than merge */
        return fail_setting(ld, ci, "members %s and %s derive the same id",
                            cfg->members[j].name, m->name);
    ids[k] = m->id;
    if (m == self)
      cfg->member_id = m->id;
  }
  cfg->cluster_id =
      keel_config_cluster_id(ids, cfg->n_members, cfg->initial_cluster_token);
  return 0;
}

int keel_config_load(struct keel_config *cfg, int argc, char **argv,
                     char **envp, char *err, size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  struct loader *ld = calloc(1, sizeof *ld);
  if (!ld) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  ld->cfg = cfg;
  ld->err = err;
  ld->errlen = errlen;
  if (errlen)
    err[0] = '\0';

  int rc = collect_flags(ld, argc, argv);
  if (rc == 0 && (cfg->help || cfg->version))
    goto out;
  if (rc == 0)
    rc = collect_env(ld, envp);
  if (rc == 0) {
    int fi = IDX("config-file");
    const char *path = ld->raw[SRC_FLAG][fi].value ? ld->raw[SRC_FLAG][fi].value
                                                   : ld->raw[SRC_ENV][fi].value;
    if (path && path[0])
      rc = collect_file(ld, path);
  }
  for (size_t i = 0; i < N_SETTINGS && rc == 0; i++) {
    ld->chosen[i] = SRC_DEFAULT;
    ld->chosen_value[i] = settings[i].def;
    for (int src = SRC_FLAG; src > SRC_DEFAULT; src--) {
      if (ld->raw[src][i].value) {
        ld->chosen[i] = src;
        ld->chosen_value[i] = ld->raw[src][i].value;
        break;
      }
    }
    rc = parse_setting(ld, (int)i, ld->chosen_value[i]);
  }
  if (rc == 0)
    rc = cross_check(ld);

out:
  for (int src = 0; src < 4; src++)
    for (size_t i = 0; i < N_SETTINGS; i++)
      free(ld->raw[src][i].value);
  free(ld);
  return rc;
}

void keel_config_print_help(FILE *out) {
  fprintf(out,
          "Usage: keeld [flags]\n"
          "\n"
          "keeld runs one member of a keel cluster.\n"
          "\n"
          "Every setting is a flag (--name value or --name=value), an "
          "environment\n"
          "variable (KEEL_ and the name in upper case with '_' for '-'), or "
          "a key in\n"
          "the YAML file given by --config-file. A flag wins over the "
          "environment,\n"
          "which wins over the file, which wins over the default.\n"
          "\n"
          "  --help, -h\n"
          "        Print this text and exit.\n"
          "  --version\n"
          "        Print the version and exit.\n");
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const struct setting *s = &settings[i];
    const char *meta = "string";
    switch (s->type) {
    case T_URLS:
      meta = "urls";
      break;
    case T_CLUSTER:
      meta = "name=url,...";
      break;
    case T_UINT:
      meta = "number";
      break;
    case T_BYTES:
      meta = "bytes";
      break;
    case T_RETENTION:
      meta = "duration|revisions";
      break;
    case T_ENUM:
      meta = "choice";
      break;
    case T_LOGLEVEL:
      meta = "level";
      break;
    default:
      break;
    }
    char env[96];
    env_name(s->key, env, sizeof env);
    if (s->def[0])
      fprintf(out, "  --%s <%s>\n        %s\n        (default \"%s\"; env %s",
              s->key, meta, s->help, s->def, env);
    else
      fprintf(out, "  --%s <%s>\n        %s\n        (env %s", s->key, meta,
              s->help, env);
    if (s->type == T_UINT || s->type == T_BYTES)
      fprintf(out, "; %llu..%llu", (unsigned long long)s->min,
              (unsigned long long)s->max);
    fprintf(out, ")\n");
  }
}

/* --- ids ------------------------------------------------------------------ */

/* Ids are SHA-256 digests (decision 0651), computed with OpenSSL's
 * libcrypto, the same implementation the store hashes snapshots with. A
 * failure here is an allocation failure at start-up: nothing to recover. */
static EVP_MD_CTX *sha256_begin(void) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
    abort();
  return c;
}

static void sha256_update(EVP_MD_CTX *c, const void *data, size_t len) {
  if (EVP_DigestUpdate(c, data, len) != 1)
    abort();
}

static void sha256_end(EVP_MD_CTX *c, uint8_t out[32]) {
  unsigned n = 0;
  if (EVP_DigestFinal_ex(c, out, &n) != 1 || n != 32)
    abort();
  EVP_MD_CTX_free(c);
}

static uint64_t id_from_digest(const uint8_t d[32]) {
  uint64_t id = 0;
  for (int i = 0; i < 8; i++)
    id = id << 8 | d[i];
  return id ? id : 1;
}

uint64_t keel_config_member_id(const char *name, const char *peer_url,
                               const char *token) {
  uint8_t d[32];
  EVP_MD_CTX *c = sha256_begin();
  sha256_update(c, "keel-member-v1", sizeof "keel-member-v1");
  sha256_update(c, name, strlen(name) + 1);
  sha256_update(c, peer_url, strlen(peer_url) + 1);
  sha256_update(c, token, strlen(token) + 1);
  sha256_end(c, d);
  return id_from_digest(d);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

uint64_t keel_config_cluster_id(const uint64_t *ids, size_t n,
                                const char *token) {
  uint64_t sorted[KEEL_CONFIG_MAX_MEMBERS];
  assert(n <= KEEL_CONFIG_MAX_MEMBERS);
  memcpy(sorted, ids, n * sizeof *ids);
  qsort(sorted, n, sizeof *sorted, cmp_u64);
  uint8_t d[32];
  EVP_MD_CTX *c = sha256_begin();
  sha256_update(c, "keel-cluster-v1", sizeof "keel-cluster-v1");
  for (size_t i = 0; i < n; i++) {
    uint8_t be[8];
    for (int k = 0; k < 8; k++)
      be[k] = (uint8_t)(sorted[i] >> (56 - 8 * k));
    sha256_update(c, be, 8);
  }
  sha256_update(c, token, strlen(token));
  sha256_end(c, d);
  return id_from_digest(d);
}

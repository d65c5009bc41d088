/* config.h — keeld's settings: what they are, where they come from, and the
 * rules they must follow.
 *
 * One table (config.c) defines every setting: its name, which is the
 * command-line flag (--data-dir), the config-file key (data-dir) and, upper-
 * cased with '-' as '_' behind KEEL_, the environment variable
 * (KEEL_DATA_DIR); its type, default, bounds and help text. Parsing, the
 * environment, the YAML file, validation and `keeld --help` all read that
 * table, so they cannot disagree.
 *
 * Sources, strongest first: command-line flag (`--name value` or
 * `--name=value`), KEEL_* environment variable, the YAML file named by
 * --config-file (or KEEL_CONFIG_FILE), the default. The names are etcd's where
 * the meaning is etcd's (decision 0651 lists the keel-specific ones).
 *
 * A bad setting stops start-up: keel_config_load() fails with KEEL_ECONFIG
 * and a message naming the setting, where it came from and the rule:
 *
 *   --election-timeout=50: must be at least 5 times --heartbeat-interval (100)
 *   KEEL_SNAPSHOT_COUNT=ten: not a number
 *   node.yaml:4: unknown key "data_dir" (did you mean "data-dir"?)
 *
 * Member ids: every node derives the same id for a member from its name, its
 * peer URL and the cluster token; the cluster id from the sorted member ids
 * and the token (decision 0651 gives the scheme).
 */
#ifndef KEEL_CONFIG_H
#define KEEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KEEL_CONFIG_NAME_MAX 64    /* bytes in a member name, with the NUL */
#define KEEL_CONFIG_PATH_MAX 1024  /* bytes in a path, with the NUL */
#define KEEL_CONFIG_TOKEN_MAX 128  /* bytes in the cluster token, with NUL */
#define KEEL_CONFIG_URL_MAX 256    /* bytes in one URL, with the NUL */
#define KEEL_CONFIG_MAX_URLS 8     /* URLs in one URL-list setting */
#define KEEL_CONFIG_MAX_MEMBERS 16 /* members in --initial-cluster */
#define KEEL_CONFIG_VALUE_MAX 4096 /* bytes in any raw setting value */
#define KEEL_CONFIG_FILE_MAX (1u << 20) /* bytes in a config file */
#define KEEL_CONFIG_FLAG_SET_MAX 129    /* bytes in a flag set name, with NUL */
#define KEEL_CONFIG_ERR_MAX 512         /* a good size for error buffers */

/* A parsed http://host:port URL. Only http is accepted for now (TLS comes
 * with the security work); the port is required; no path. */
struct keel_url {
  char text[KEEL_CONFIG_URL_MAX]; /* as given */
  char host[KEEL_CONFIG_URL_MAX]; /* without brackets for IPv6 */
  uint16_t port;
};

struct keel_url_list {
  size_t n;
  struct keel_url v[KEEL_CONFIG_MAX_URLS];
};

struct keel_member {
  uint64_t id; /* keel_config_member_id(name, peer_url, token) */
  char name[KEEL_CONFIG_NAME_MAX];
  struct keel_url peer_url;
};

enum keel_cluster_state {
  KEEL_CLUSTER_NEW = 0,
  KEEL_CLUSTER_EXISTING = 1,
};

enum keel_compaction_mode {
  KEEL_COMPACTION_PERIODIC = 0,
  KEEL_COMPACTION_REVISION = 1,
};

struct keel_config {
  /* --- etcd's settings --- */
  char name[KEEL_CONFIG_NAME_MAX];
  char data_dir[KEEL_CONFIG_PATH_MAX]; /* default "<name>.keel" */
  struct keel_url_list listen_client_urls;
  struct keel_url_list advertise_client_urls;
  struct keel_url_list listen_peer_urls;
  struct keel_url_list initial_advertise_peer_urls;
  size_t n_members; /* --initial-cluster, in the order given */
  struct keel_member members[KEEL_CONFIG_MAX_MEMBERS];
  enum keel_cluster_state initial_cluster_state;
  char initial_cluster_token[KEEL_CONFIG_TOKEN_MAX];
  uint32_t heartbeat_interval_ms;
  uint32_t election_timeout_ms;
  uint64_t snapshot_count;
  uint64_t quota_backend_bytes;
  enum keel_compaction_mode auto_compaction_mode;
  /* --auto-compaction-retention: periodic mode: a duration ("1h", "30m",
   * "90s", or a bare number of hours as etcd reads it), kept in ms;
   * revision mode: a number of revisions. 0 turns auto-compaction off. */
  uint64_t auto_compaction_retention;
  uint64_t max_request_bytes;
  int log_level; /* enum keel_log_level */
  char config_file[KEEL_CONFIG_PATH_MAX];

  /* --- keel's own (decision 0651) --- */
  uint64_t peer_max_frame_bytes;
  uint64_t peer_send_queue_bytes;
  uint64_t peer_send_queue_frames;
  uint64_t snapshot_chunk_bytes;
  uint64_t disk_queue_jobs;
  /* The flag set OFREP evaluates when a request has no X-Keel-Flag-Set
   * header; "" = the header is required. */
  char ofrep_default_flag_set[KEEL_CONFIG_FLAG_SET_MAX];

  /* --- derived --- */
  uint64_t member_id;  /* this node's id */
  uint64_t cluster_id; /* keel_config_cluster_id() of the members */

  /* Set when --help / --version was given; nothing else was validated. */
  int help;
  int version;
};

/* Fills *cfg from argv[1..argc-1], the NULL-terminated environment `envp`
 * (NULL for none) and the config file they name, then validates it.
 * Returns 0, or KEEL_ECONFIG with a one-line message in err (errlen bytes,
 * KEEL_CONFIG_ERR_MAX is enough) naming the setting, its source and the rule.
 * If --help or --version is among the flags, returns 0 with cfg->help or
 * cfg->version set and does not validate the rest. Unknown flags and file
 * keys are refused with the nearest known name as a suggestion; an unknown
 * KEEL_* variable is only logged as a warning (with a suggestion), since other
 * programs (the CLI, test scripts) use the same prefix.
 * Allocates nothing that outlives the call; *cfg needs no freeing. */
int keel_config_load(struct keel_config *cfg, int argc, char **argv,
                     char **envp, char *err, size_t errlen);

/* Writes `keeld --help`: usage, then every setting with its flag, value
 * type, default, environment variable and help text. */
void keel_config_print_help(FILE *out);

/* The member id every node computes for the member `name` with peer URL
 * `peer_url` in the cluster `token`: the first 8 bytes, big-endian, of
 * SHA-256("keel-member-v1" NUL name NUL peer_url NUL token); 0 (raft's "no
 * node") becomes 1. */
uint64_t keel_config_member_id(const char *name, const char *peer_url,
                               const char *token);

/* The cluster id: the first 8 bytes, big-endian, of SHA-256("keel-cluster-v1"
 * NUL, then each member id as 8 big-endian bytes in ascending order, then
 * the token); 0 becomes 1. The order of `ids` does not matter. */
uint64_t keel_config_cluster_id(const uint64_t *ids, size_t n,
                                const char *token);

/* Parses one http://host:port URL into *out. Returns 0 or -EINVAL with the
 * broken rule in err. */
int keel_config_parse_url(const char *text, struct keel_url *out, char *err,
                          size_t errlen);

#endif

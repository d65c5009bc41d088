/* test_config.c — keeld's settings: defaults, precedence (flag > env > file
 * > default), every validation message, YAML errors with line numbers,
 * --help coverage, and member/cluster id determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "keel_error.h"

static char tmpdir[64];
static char yaml_path[128];

static int group_setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/keel-config-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  snprintf(yaml_path, sizeof yaml_path, "%s/node.yaml", tmpdir);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  unlink(yaml_path);
  rmdir(tmpdir);
  return 0;
}

static void write_yaml(const char *text) {
  FILE *f = fopen(yaml_path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Loads with argv (NULL-terminated, without argv[0]) and env. */
static int load(struct keel_config *cfg, char *err, const char *const *args,
                const char *const *env) {
  char *argv[64] = {"keeld"};
  int argc = 1;
  for (; args && args[argc - 1]; argc++)
    argv[argc] = (char *)args[argc - 1];
  return keel_config_load(cfg, argc, argv, (char **)env, err,
                          KEEL_CONFIG_ERR_MAX);
}

static struct keel_config cfg;
static char err[KEEL_CONFIG_ERR_MAX];

static void test_defaults(void **state) {
  (void)state;
  assert_int_equal(load(&cfg, err, NULL, NULL), 0);
  assert_string_equal(cfg.name, "default");
  assert_string_equal(cfg.data_dir, "default.keel");
  assert_int_equal(cfg.heartbeat_interval_ms, 100);
  assert_int_equal(cfg.election_timeout_ms, 1000);
  assert_int_equal(cfg.snapshot_count, 100000);
  assert_int_equal(cfg.quota_backend_bytes, 2ull << 30);
  assert_int_equal(cfg.max_request_bytes, 1572864);
  assert_int_equal(cfg.initial_cluster_state, KEEL_CLUSTER_NEW);
  assert_int_equal(cfg.auto_compaction_mode, KEEL_COMPACTION_PERIODIC);
  assert_int_equal(cfg.auto_compaction_retention, 0);
  assert_int_equal(cfg.listen_client_urls.n, 1);
  assert_string_equal(cfg.listen_client_urls.v[0].host, "127.0.0.1");
  assert_int_equal(cfg.listen_client_urls.v[0].port, 2379);
  assert_int_equal(cfg.n_members, 1);
  assert_string_equal(cfg.members[0].name, "default");
  assert_int_equal(cfg.member_id,
                   keel_config_member_id("default", "http://127.0.0.1:2380",
                                         "keel-cluster"));
  assert_int_not_equal(cfg.cluster_id, 0);
}

static void test_precedence(void **state) {
  (void)state;
  write_yaml("# node.yaml\n"
             "heartbeat-interval: 200\n"
             "election-timeout: 2000\n"
             "snapshot-count: 5\n"
             "data-dir: /from/file\n"
             "listen-peer-urls:\n"
             "  - http://127.0.0.1:7001\n"
             "  - http://[::1]:7001\n");
  const char *args[] = {"--snapshot-count=7", "--config-file", yaml_path, NULL};
  const char *env[] = {"KEEL_SNAPSHOT_COUNT=6", "KEEL_ELECTION_TIMEOUT=3000",
                       "PATH=/bin", NULL};
  assert_int_equal(load(&cfg, err, args, env), 0);
  assert_int_equal(cfg.snapshot_count, 7);          /* flag over env, file */
  assert_int_equal(cfg.election_timeout_ms, 3000);  /* env over file */
  assert_int_equal(cfg.heartbeat_interval_ms, 200); /* file over default */
  assert_string_equal(cfg.data_dir, "/from/file");  /* file */
  assert_int_equal(cfg.quota_backend_bytes, 2ull << 30); /* default */
  assert_int_equal(cfg.listen_peer_urls.n, 2);
  assert_string_equal(cfg.listen_peer_urls.v[1].host, "::1");

  /* The file may be named by the environment too; flags still win. */
  const char *env2[] = {"KEEL_CONFIG_FILE", NULL, NULL};
  char var[200];
  snprintf(var, sizeof var, "KEEL_CONFIG_FILE=%s", yaml_path);
  env2[0] = var;
  const char *args2[] = {"--heartbeat-interval", "150", NULL};
  assert_int_equal(load(&cfg, err, args2, env2), 0);
  assert_int_equal(cfg.heartbeat_interval_ms, 150);
  assert_int_equal(cfg.snapshot_count, 5);
}

static void test_sizes_and_retention(void **state) {
  (void)state;
  const char *args[] = {"--quota-backend-bytes=8MiB",
                        "--auto-compaction-retention=1h30m", NULL};
  assert_int_equal(load(&cfg, err, args, NULL), 0);
  assert_int_equal(cfg.quota_backend_bytes, 8 << 20);
  assert_int_equal(cfg.auto_compaction_retention, 90 * 60 * 1000);
  const char *args2[] = {"--auto-compaction-retention=2", NULL};
  assert_int_equal(load(&cfg, err, args2, NULL), 0);
  assert_int_equal(cfg.auto_compaction_retention, 2 * 3600 * 1000);
  const char *args3[] = {"--auto-compaction-mode=revision",
                         "--auto-compaction-retention=1000", NULL};
  assert_int_equal(load(&cfg, err, args3, NULL), 0);
  assert_int_equal(cfg.auto_compaction_mode, KEEL_COMPACTION_REVISION);
  assert_int_equal(cfg.auto_compaction_retention, 1000);
}

struct bad_case {
  const char *args[8];
  const char *env[4];
  const char *yaml; /* written to node.yaml and passed with --config-file */
  const char *want; /* a substring of the message */
};

#define CLUSTER3                                                               \
  "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2381,n3=http://127.0.0.1:2382"

static const struct bad_case bad_cases[] = {
    {{"--election-timeout=50"},
     {0},
     NULL,
     "--election-timeout=50: must be at least 5 times --heartbeat-interval "
     "(100)"},
    {{"--heartbeat-interval=300", "--election-timeout", "1000"},
     {0},
     NULL,
     "--election-timeout=1000: must be at least 5 times --heartbeat-interval "
     "(300)"},
    {{0},
     {"KEEL_SNAPSHOT_COUNT=ten"},
     NULL,
     "KEEL_SNAPSHOT_COUNT=ten: not a number"},
    {{0},
     {0},
     "name: n1\nheartbeat-interval: 5\n",
     "node.yaml:2: heartbeat-interval=5: must be between 10 and 10000"},
    {{"--listen-peer-urls=127.0.0.1:2380"},
     {0},
     NULL,
     "--listen-peer-urls=127.0.0.1:2380: \"127.0.0.1:2380\" is not a URL of "
     "the form http://host:port"},
    {{"--listen-client-urls=http://127.0.0.1"}, {0}, NULL, "missing port"},
    {{"--ofrep-default-flag-set=we/b"},
     {0},
     NULL,
     "--ofrep-default-flag-set=we/b: a flag set name has no '/'"},
    {{"--advertise-client-urls=http://127.0.0.1:99999"},
     {0},
     NULL,
     "the port must be a number from 1 to 65535"},
    {{"--listen-client-urls=https://127.0.0.1:2379"},
     {0},
     NULL,
     "https is not supported yet"},
    {{"--listen-client-urls=http://127.0.0.1:2379/v3"},
     {0},
     NULL,
     "unexpected \"/v3\" after the port"},
    {{"--name", "n4", "--initial-cluster", CLUSTER3},
     {0},
     NULL,
     "this member's --name (n4) is not in the cluster"},
    {{"--name", "n2", "--initial-cluster", CLUSTER3},
     {0},
     NULL,
     "n2's peer URL http://127.0.0.1:2381 is not among "
     "--initial-advertise-peer-urls"},
    {{"--name", "n1", "--initial-cluster",
      "n1=http://127.0.0.1:2380,n1=http://127.0.0.1:2381"},
     {0},
     NULL,
     "member name \"n1\" appears twice"},
    {{"--name", "n1", "--initial-cluster",
      "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2380"},
     {0},
     NULL,
     "peer URL http://127.0.0.1:2380 is given to both n1 and n2"},
    {{"--initial-cluster", "default"},
     {0},
     NULL,
     "\"default\" is not name=http://host:port"},
    {{"--name", "bad name"}, {0}, NULL, "--name=bad name: a name may only"},
    {{"--data_dir=/x"},
     {0},
     NULL,
     "unknown flag --data_dir (did you mean \"--data-dir\"?)"},
    {{"--election-timout=1000"},
     {0},
     NULL,
     "unknown flag --election-timout (did you mean \"--election-timeout\"?)"},
    {{"--frobnicate=1"}, {0}, NULL, "unknown flag --frobnicate (keeld --help"},
    {{0},
     {0},
     "name: default\n\ndata_dir: /x\n",
     "node.yaml:3: unknown key \"data_dir\" (did you mean \"data-dir\"?)"},
    {{0},
     {0},
     "name: default\nsnapshot-count: 1\nsnapshot-count: 2\n",
     "node.yaml:3: snapshot-count given twice (first at line 2)"},
    {{0},
     {0},
     "name: default\nlisten-peer-urls: [http://127.0.0.1:1\n",
     "node.yaml:3:"},
    {{0}, {0}, "name: default\n  bad: indent\n", "node.yaml:2:"},
    {{0},
     {0},
     "name: default\nname2:\n  nested: map\n",
     "node.yaml:2: unknown key \"name2\""},
    {{0},
     {0},
     "snapshot-count:\n  nested: 1\n",
     "node.yaml:2: snapshot-count: expected a single value, found a mapping"},
    {{0},
     {0},
     "snapshot-count: [1, 2]\n",
     "node.yaml:1: snapshot-count: expected a single value, found a list"},
    {{0}, {0}, "- a\n- b\n", "node.yaml:1: expected a mapping"},
    {{0},
     {0},
     "config-file: other.yaml\n",
     "node.yaml:1: config-file cannot be set in a config file"},
    {{"--config-file=/nonexistent/keel.yaml"},
     {0},
     NULL,
     "--config-file=/nonexistent/keel.yaml: cannot open"},
    {{"--initial-cluster-state=old"},
     {0},
     NULL,
     "--initial-cluster-state=old: must be one of new, existing"},
    {{"--auto-compaction-retention=5x"},
     {0},
     NULL,
     "--auto-compaction-retention=5x: with --auto-compaction-mode=periodic"},
    {{"--auto-compaction-mode=revision", "--auto-compaction-retention=1h"},
     {0},
     NULL,
     "--auto-compaction-retention=1h: with --auto-compaction-mode=revision it "
     "is a number of revisions"},
    {{"--quota-backend-bytes=2TB"}, {0}, NULL, "not a size"},
    {{"--quota-backend-bytes=1024"},
     {0},
     NULL,
     "--quota-backend-bytes=1024: must be between 65536 and"},
    {{"--log-level=loud"}, {0}, NULL, "--log-level=loud: must be one of"},
    {{"--name"}, {0}, NULL, "--name: missing value"},
    {{"n1"}, {0}, NULL, "unexpected argument \"n1\""},
    {{"--name=a", "--name=b"}, {0}, NULL, "--name given twice"},
    {{"--max-request-bytes=16MiB"},
     {0},
     NULL,
     "--peer-max-frame-bytes=8MiB (default): must be at least "
     "--max-request-bytes (16777216) + 64 KiB"},
    {{"--peer-send-queue-bytes=1MiB"},
     {0},
     NULL,
     "--peer-send-queue-bytes=1MiB: must be at least --peer-max-frame-bytes"},
    {{"--listen-client-urls=http://127.0.0.1:2380"},
     {0},
     NULL,
     "is also a --listen-peer-urls address"},
};

static void test_validation_messages(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const struct bad_case *c = &bad_cases[i];
    const char *args[12];
    size_t n = 0;
    for (; c->args[n]; n++)
      args[n] = c->args[n];
    if (c->yaml) {
      write_yaml(c->yaml);
      args[n++] = "--config-file";
      args[n++] = yaml_path;
    }
    args[n] = NULL;
    int rc = load(&cfg, err, args, c->env);
    if (rc != KEEL_ECONFIG || !strstr(err, c->want)) {
      fprintf(stderr, "case %zu: rc=%d\n  got:  %s\n  want: %s\n", i, rc, err,
              c->want);
      fail();
    }
  }
}

static void test_three_nodes_agree_on_ids(void **state) {
  (void)state;
  uint64_t ids[3][3], cluster[3];
  const char *names[] = {"n1", "n2", "n3"};
  const char *urls[] = {"http://127.0.0.1:2380", "http://127.0.0.1:2381",
                        "http://127.0.0.1:2382"};
  for (int k = 0; k < 3; k++) {
    const char *args[] = {"--name",
                          names[k],
                          "--initial-advertise-peer-urls",
                          urls[k],
                          "--initial-cluster",
                          CLUSTER3,
                          "--initial-cluster-token",
                          "tok-1",
                          NULL};
    assert_int_equal(load(&cfg, err, args, NULL), 0);
    assert_int_equal(cfg.n_members, 3);
    for (int m = 0; m < 3; m++)
      ids[k][m] = cfg.members[m].id;
    cluster[k] = cfg.cluster_id;
    assert_int_equal(cfg.member_id, cfg.members[k].id);
  }
  for (int k = 1; k < 3; k++) {
    assert_int_equal(cluster[k], cluster[0]);
    for (int m = 0; m < 3; m++)
      assert_int_equal(ids[k][m], ids[0][m]);
  }
  assert_int_not_equal(ids[0][0], ids[0][1]);
  /* The scheme documented in config.h, computed independently. */
  assert_int_equal(ids[0][0], keel_config_member_id("n1", urls[0], "tok-1"));
  uint64_t reversed[3] = {ids[0][2], ids[0][1], ids[0][0]};
  assert_int_equal(keel_config_cluster_id(reversed, 3, "tok-1"), cluster[0]);
  /* Every input matters. */
  assert_int_not_equal(keel_config_member_id("n1", urls[0], "tok-2"),
                       ids[0][0]);
  assert_int_not_equal(keel_config_member_id("n1", urls[1], "tok-1"),
                       ids[0][0]);
  assert_int_not_equal(keel_config_member_id("n9", urls[0], "tok-1"),
                       ids[0][0]);
  assert_int_not_equal(keel_config_cluster_id(reversed, 3, "tok-2"),
                       cluster[0]);
  assert_int_not_equal(keel_config_cluster_id(reversed, 2, "tok-1"),
                       cluster[0]);
}

/* Pinned values: ids are persisted and exchanged between nodes, so the
 * derivation must never change (decision 0651). */
static void test_ids_pinned(void **state) {
  (void)state;
  uint64_t n1 = keel_config_member_id("n1", "http://127.0.0.1:2380", "tok-1");
  assert_true(n1 == 0x696cd98e8c00f698ULL);
  uint64_t ids[2] = {n1, 7};
  assert_true(keel_config_cluster_id(ids, 2, "tok-1") == 0x4bbc5ed0827158f9ULL);
}

static void test_help_lists_every_setting(void **state) {
  (void)state;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_non_null(f);
  keel_config_print_help(f);
  fclose(f);
  static const char *const etcd_flags[] = {
      "name",
      "data-dir",
      "listen-client-urls",
      "advertise-client-urls",
      "listen-peer-urls",
      "initial-advertise-peer-urls",
      "initial-cluster",
      "initial-cluster-state",
      "initial-cluster-token",
      "heartbeat-interval",
      "election-timeout",
      "snapshot-count",
      "quota-backend-bytes",
      "auto-compaction-mode",
      "auto-compaction-retention",
      "max-request-bytes",
      "log-level",
      "config-file",
      "peer-max-frame-bytes",
      "peer-send-queue-bytes",
      "peer-send-queue-frames",
      "snapshot-chunk-bytes",
      "disk-queue-jobs",
      "ofrep-default-flag-set",
  };
  for (size_t i = 0; i < sizeof etcd_flags / sizeof etcd_flags[0]; i++) {
    char flag[80], env[80];
    snprintf(flag, sizeof flag, "  --%s <", etcd_flags[i]);
    snprintf(env, sizeof env, "env KEEL_");
    size_t n = strlen(env);
    for (const char *p = etcd_flags[i]; *p; p++)
      env[n++] = *p == '-' ? '_' : (char)(*p - 'a' + 'A');
    env[n] = '\0';
    if (!strstr(text, flag) || !strstr(text, env)) {
      fprintf(stderr, "help lacks %s or %s\n", flag, env);
      fail();
    }
    /* Every listed flag is accepted, and its environment variable too. */
  }
  assert_non_null(
      strstr(text, "(default \"100\"; env KEEL_HEARTBEAT_INTERVAL"));
  /* The help is the table: count the settings it lists. */
  int listed = 0;
  for (const char *p = text; (p = strstr(p, "\n  --")); p++)
    listed++;
  assert_int_equal(listed, 2 + (int)(sizeof etcd_flags / sizeof etcd_flags[0]));
  free(text);

  const char *args[] = {"--help", "--bogus-is-not-checked", NULL};
  assert_int_equal(load(&cfg, err, args, NULL), 0);
  assert_true(cfg.help);
}

static void test_env_names_every_setting(void **state) {
  (void)state;
  const char *env[] = {"KEEL_NAME=n2",
                       "KEEL_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:2381",
                       "KEEL_INITIAL_CLUSTER=" CLUSTER3,
                       "KEEL_INITIAL_CLUSTER_STATE=existing",
                       "KEEL_DATA_DIR=/var/lib/keel",
                       "KEEL_MAX_REQUEST_BYTES=2MiB",
                       "KEEL_NOT_A_SETTING=1",
                       NULL};
  assert_int_equal(load(&cfg, err, NULL, env), 0);
  assert_string_equal(cfg.name, "n2");
  assert_string_equal(cfg.data_dir, "/var/lib/keel");
  assert_int_equal(cfg.initial_cluster_state, KEEL_CLUSTER_EXISTING);
  assert_int_equal(cfg.max_request_bytes, 2 << 20);
  assert_int_equal(cfg.member_id, cfg.members[1].id);
}

/* Go-style single-dash flags (etcd's), --version, and list values in YAML
 * for list settings. */
static void test_flag_forms_and_yaml_lists(void **state) {
  (void)state;
  write_yaml("name: n2\n"
             "initial-cluster:\n"
             "  - n1=http://127.0.0.1:2380\n"
             "  - n2=http://127.0.0.1:2381\n"
             "initial-advertise-peer-urls: http://127.0.0.1:2381\n"
             "initial-cluster-token: 'quoted token'\n"
             "snapshot-count: ~\n");
  const char *args[] = {"-config-file", yaml_path, "-heartbeat-interval=50",
                        NULL};
  assert_int_equal(load(&cfg, err, args, NULL), 0);
  assert_int_equal(cfg.heartbeat_interval_ms, 50);
  assert_int_equal(cfg.n_members, 2);
  assert_string_equal(cfg.members[1].peer_url.host, "127.0.0.1");
  assert_int_equal(cfg.members[1].peer_url.port, 2381);
  assert_string_equal(cfg.initial_cluster_token, "quoted token");
  assert_int_equal(cfg.snapshot_count, 100000); /* null: not set */
  assert_int_equal(
      cfg.member_id,
      keel_config_member_id("n2", "http://127.0.0.1:2381", "quoted token"));
  const char *vargs[] = {"--version", NULL};
  assert_int_equal(load(&cfg, err, vargs, NULL), 0);
  assert_true(cfg.version);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_precedence),
      cmocka_unit_test(test_sizes_and_retention),
      cmocka_unit_test(test_validation_messages),
      cmocka_unit_test(test_three_nodes_agree_on_ids),
      cmocka_unit_test(test_ids_pinned),
      cmocka_unit_test(test_help_lists_every_setting),
      cmocka_unit_test(test_env_names_every_setting),
      cmocka_unit_test(test_flag_forms_and_yaml_lists),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

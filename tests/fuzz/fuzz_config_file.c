/* fuzz_config_file.c — libFuzzer target: keeld's YAML config file
 * (server/config.c), read the way keeld reads it.
 *
 * keel_config_load() takes the file by name (--config-file) and has no
 * buffer entry point, so each input is written to one scratch file
 * ($TMPDIR or /tmp, named after the process id) and loaded with
 *   keeld --config-file <that file>
 * and an empty environment. The target checks config.h's promises:
 *   - the result is 0 or KEEL_ECONFIG, and an error comes with a message;
 *   - a loaded configuration obeys the cross-setting rules (election timeout
 *     at least 5 heartbeats, frame limit above the request limit and the
 *     snapshot chunk plus 64 KiB, queue above the frame limit), names a
 *     cluster of 1..KEEL_CONFIG_MAX_MEMBERS members that includes this one,
 *     has non-zero member and cluster ids, and every string is terminated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "keel_error.h"
#include "keel_log.h"

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_config_file: %s\n", what);                         \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define TERMINATED(s) (strnlen((s), sizeof(s)) < sizeof(s))

static char path[256];

static void check_urls(const struct keel_url_list *l) {
  CHECK(l->n <= KEEL_CONFIG_MAX_URLS, "too many URLs");
  for (size_t i = 0; i < l->n; i++)
    CHECK(TERMINATED(l->v[i].text) && TERMINATED(l->v[i].host),
          "unterminated URL");
}

static void check_loaded(const struct keel_config *c) {
  CHECK(TERMINATED(c->name) && TERMINATED(c->data_dir) &&
            TERMINATED(c->initial_cluster_token) && TERMINATED(c->config_file),
        "unterminated string setting");
  CHECK(c->election_timeout_ms >= 5ull * c->heartbeat_interval_ms,
        "election timeout below 5 heartbeats");
  CHECK(c->peer_max_frame_bytes >= c->max_request_bytes + 65536 &&
            c->peer_max_frame_bytes >= c->snapshot_chunk_bytes + 65536 &&
            c->peer_send_queue_bytes >= c->peer_max_frame_bytes,
        "peer limits break the cross-setting rules");
  check_urls(&c->listen_client_urls);
  check_urls(&c->advertise_client_urls);
  check_urls(&c->listen_peer_urls);
  check_urls(&c->initial_advertise_peer_urls);
  CHECK(c->n_members >= 1 && c->n_members <= KEEL_CONFIG_MAX_MEMBERS,
        "member count out of bounds");
  int self = 0;
  for (size_t i = 0; i < c->n_members; i++) {
    CHECK(TERMINATED(c->members[i].name), "unterminated member name");
    CHECK(c->members[i].id != 0, "member id 0");
    if (strcmp(c->members[i].name, c->name) == 0 &&
        c->members[i].id == c->member_id)
      self = 1;
  }
  CHECK(self, "this member is not in the cluster");
  CHECK(c->member_id != 0 && c->cluster_id != 0, "zero member or cluster id");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!path[0]) {
    keel_log_set_level(KEEL_LOG_OFF);
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/keel-fuzz-config-%ld.yaml",
             tmp && tmp[0] ? tmp : "/tmp", (long)getpid());
  }
  FILE *f = fopen(path, "wb");
  CHECK(f, "cannot write the scratch file");
  CHECK(fwrite(data, 1, size, f) == size && fclose(f) == 0,
        "cannot write the scratch file");

  char *argv[] = {"keeld", "--config-file", path, NULL};
  struct keel_config *cfg = malloc(sizeof *cfg);
  CHECK(cfg, "out of memory");
  char err[KEEL_CONFIG_ERR_MAX];
  err[0] = '\0';
  int rc = keel_config_load(cfg, 3, argv, NULL, err, sizeof err);
  if (rc == 0) {
    if (!cfg->help && !cfg->version)
      check_loaded(cfg);
  } else {
    CHECK(rc == KEEL_ECONFIG, "error other than KEEL_ECONFIG");
    CHECK(err[0] != '\0' && TERMINATED(err), "error without a message");
  }
  free(cfg);
  unlink(path);
  return 0;
}

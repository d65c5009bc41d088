/* restore.c — a new keeld data directory from a snapshot stream; see
 * restore.h. The member list is written in node.c's format (store meta
 * "members": a keelstore.SnapshotMeta holding only members; "cluster-id":
 * 8 bytes big-endian), which node_new() reads at start.
 */
#define _GNU_SOURCE
#include "restore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "keel_error.h"
#include "store.h"
#include "store.pb-c.h"

struct keel_restore {
  struct keel_config cfg;
  char tmp[4200];
  struct store *st;
  struct store_restore *rs;
};

/* Removes the files of dir (one level: the store keeps no subdirectory)
 * and dir itself. */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return -errno;
  int rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

/* The directory that holds path (for the fsync after the rename). */
static void parent_of(const char *path, char *out, size_t cap) {
  snprintf(out, cap, "%s", path);
  size_t n = strlen(out);
  while (n > 1 && out[n - 1] == '/')
    out[--n] = 0;
  char *slash = strrchr(out, '/');
  if (!slash)
    snprintf(out, cap, ".");
  else if (slash == out)
    out[1] = 0;
  else
    *slash = 0;
}

int keel_restore_begin(int argc, char **argv, struct keel_restore **out,
                       char *err, size_t errlen) {
  *out = NULL;
  struct keel_restore *r = calloc(1, sizeof(*r));
  if (!r)
    return -ENOMEM;
  int rc = keel_config_load(&r->cfg, argc, argv, NULL, err, errlen);
  if (rc) {
    free(r);
    return rc;
  }
  struct stat sb;
  if (stat(r->cfg.data_dir, &sb) == 0) {
    snprintf(err, errlen,
             "data-dir \"%s\" exists: restore builds a new one (choose "
             "another --data-dir, or remove it)",
             r->cfg.data_dir);
    free(r);
    return -EEXIST;
  }
  snprintf(r->tmp, sizeof(r->tmp), "%s.restoring", r->cfg.data_dir);
  remove_dir(r->tmp); /* left by an interrupted restore */
  struct store_options so = {0};
  so.quota_bytes = r->cfg.quota_backend_bytes;
  rc = store_open(r->tmp, &so, &r->st);
  if (rc == 0)
    rc = store_restore_begin(r->st, &r->rs);
  if (rc) {
    snprintf(err, errlen, "creating the store in %s: %s", r->tmp,
             keel_strerror(rc));
    store_close(r->st);
    remove_dir(r->tmp);
    free(r);
    return rc;
  }
  *out = r;
  return 0;
}

int keel_restore_write(struct keel_restore *r, const uint8_t *data,
                       size_t len) {
  return store_restore_write(r->rs, data, len);
}

void keel_restore_abort(struct keel_restore *r) {
  if (!r)
    return;
  if (r->rs)
    store_restore_abort(r->rs);
  store_close(r->st);
  remove_dir(r->tmp);
  free(r);
}

/* The member list in node.c's meta format. *out is malloc'd. */
static int encode_members(const struct keel_config *cfg, uint8_t **out,
                          size_t *len) {
  Keelstore__Member ms[KEEL_CONFIG_MAX_MEMBERS], *mp[KEEL_CONFIG_MAX_MEMBERS];
  char *urls[KEEL_CONFIG_MAX_MEMBERS];
  size_t n = cfg->n_members;
  for (size_t i = 0; i < n; i++) {
    keelstore__member__init(&ms[i]);
    ms[i].id = cfg->members[i].id;
    ms[i].name = (char *)cfg->members[i].name;
    urls[i] = (char *)cfg->members[i].peer_url.text;
    ms[i].peer_urls = &urls[i];
    ms[i].n_peer_urls = 1;
    mp[i] = &ms[i];
  }
  Keelstore__SnapshotMeta sm = KEELSTORE__SNAPSHOT_META__INIT;
  sm.members = mp;
  sm.n_members = n;
  *len = keelstore__snapshot_meta__get_packed_size(&sm);
  *out = malloc(*len ? *len : 1);
  if (!*out)
    return -ENOMEM;
  keelstore__snapshot_meta__pack(&sm, *out);
  return 0;
}

int keel_restore_finish(struct keel_restore *r, struct keel_restore_info *info,
                        char *err, size_t errlen) {
  const struct keel_config *cfg = &r->cfg;
  struct store_snapshot_meta sm = {0};
  for (size_t i = 0; i < cfg->n_members && i < STORE_MAX_MEMBERS; i++)
    sm.conf.voters[sm.conf.n_voters++] = cfg->members[i].id;
  int rc = store_restore_finish(r->rs, &sm.conf);
  r->rs = NULL;
  if (rc) {
    snprintf(err, errlen, "the snapshot stream is not valid: %s",
             keel_strerror(rc));
    keel_restore_abort(r);
    return rc;
  }
  int64_t compacted = 0;
  rc = store_applied(r->st, &sm.index, &sm.term);
  if (rc == 0)
    rc = store_revisions(r->st, &info->revision, &compacted);
  if (rc == 0 && sm.index == 0) {
    snprintf(err, errlen,
             "the snapshot has applied index 0 (nothing ever "
             "applied): nothing to restore");
    keel_restore_abort(r);
    return KEEL_ECORRUPT;
  }
  /* The log's snapshot (what the raft core reads back at start). */
  if (rc == 0)
    rc = store_log_set_snapshot(r->st, &sm);
  uint8_t *members = NULL;
  size_t mlen = 0;
  if (rc == 0)
    rc = encode_members(cfg, &members, &mlen);
  if (rc == 0) {
    /* Term and commit in one txn with the member list and the cluster id.
     * store_apply needs one entry: the snapshot's own (already applied, so
     * skipped: nothing else changes). */
    uint8_t idbe[8];
    for (int b = 0; b < 8; b++)
      idbe[b] = (uint8_t)(cfg->cluster_id >> (56 - 8 * b));
    struct store_meta_write meta[2] = {{"members", members, mlen},
                                       {"cluster-id", idbe, 8}};
    struct store_hard_state hs = {sm.term, 0, sm.index};
    struct store_apply_entry e = {sm.index, sm.term, NULL};
    struct store_apply_batch b = {0};
    b.entries = &e;
    b.n = 1;
    b.hard_state = &hs;
    b.meta = meta;
    b.n_meta = 2;
    struct store_apply_result res;
    rc = store_apply(r->st, &b, &res);
    if (rc == 0)
      store_apply_result_free(&res);
  }
  free(members);
  if (rc) {
    snprintf(err, errlen, "writing the new cluster's state: %s",
             keel_strerror(rc));
    keel_restore_abort(r);
    return rc;
  }
  store_close(r->st);
  r->st = NULL;
  char parent[4200];
  parent_of(cfg->data_dir, parent, sizeof(parent));
  if (fsync_path(r->tmp) != 0 || rename(r->tmp, cfg->data_dir) != 0) {
    rc = -errno;
    snprintf(err, errlen, "renaming %s to %s: %s", r->tmp, cfg->data_dir,
             strerror(errno));
    remove_dir(r->tmp);
    free(r);
    return rc;
  }
  (void)fsync_path(parent);
  snprintf(info->data_dir, sizeof(info->data_dir), "%s", cfg->data_dir);
  info->index = sm.index;
  info->term = sm.term;
  info->members = cfg->n_members;
  info->cluster_id = cfg->cluster_id;
  free(r);
  return 0;
}

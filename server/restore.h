/* restore.h — builds a keeld data directory from a snapshot stream: the
 * offline half of `keel snapshot restore` (what `etcdctl snapshot restore`
 * does for etcd). The result is the state machine of the snapshot as a
 * NEW cluster of the members given, which keeld then starts from with the
 * same --initial-cluster / --initial-cluster-token.
 *
 *   keel_restore_begin(argc, argv)   keeld-style flags of the new member:
 *        --name, --data-dir, --initial-cluster, --initial-cluster-token,
 *        --initial-advertise-peer-urls (validated by keel_config_load, as
 *        keeld will: ids come out the same); the data dir must not exist;
 *        the store is built in DATA_DIR.restoring
 *   keel_restore_write(...)           the store's snapshot stream
 *        (store.h "Stream format"), in pieces of any size
 *   keel_restore_finish()             checks the stream (SHA-256, end
 *        record), then in the new store: the snapshot's state machine, the
 *        new members as the configuration (voters) and member list, the
 *        new cluster id, the raft log empty with its base at the snapshot's
 *        (index, term) and the hard state term = that term, commit = index;
 *        fsync, then rename DATA_DIR.restoring -> DATA_DIR (the commit
 *        point: a failure or crash before it leaves no DATA_DIR).
 *
 * What is kept from the old cluster: keys, history not compacted, the
 * compact revision, leases, alarms (as etcd). What is not: members, the
 * cluster id, the raft log.
 *
 * The file framing of `snapshot save` (padding, the outer SHA-256 trailer)
 * is the caller's: only the store stream comes here.
 *
 * Errors: 0 or a negative code with a one-line reason in err: KEEL_ECONFIG
 * (bad flag), -EEXIST (data dir exists), KEEL_ECORRUPT (not a keel
 * snapshot stream, digest mismatch, truncated), -errno from the file
 * system. After an error of begin nothing is left on disk; after an error of
 * write call keel_restore_abort(); finish always frees r.
 */
#ifndef KEEL_RESTORE_H
#define KEEL_RESTORE_H

#include <stddef.h>
#include <stdint.h>

struct keel_restore;

int keel_restore_begin(int argc, char **argv, struct keel_restore **out,
                       char *err, size_t errlen);
int keel_restore_write(struct keel_restore *r, const uint8_t *data, size_t len);
/* On success: the data dir, applied index and member count of the result
 * (what to tell the user). */
struct keel_restore_info {
  char data_dir[4096];
  uint64_t index, term;
  int64_t revision;
  size_t members;
  uint64_t cluster_id;
};
int keel_restore_finish(struct keel_restore *r, struct keel_restore_info *info,
                        char *err, size_t errlen);
/* Drops everything written (removes DATA_DIR.restoring) and frees r. */
void keel_restore_abort(struct keel_restore *r);

#endif

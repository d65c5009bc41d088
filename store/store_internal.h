/* store_internal.h — what the store's source files share: the open LMDB
 * file (struct store_db) with its reference count, the store handle, the
 * byte encodings, the result arena and LMDB error conversion. Not for use
 * outside store/.
 *
 * Invariants:
 *  - st->db is the live file. Only the writer thread replaces it (defragment,
 *    restore), under st->mu; readers take a reference under st->mu, so an old
 *    file stays open until its last reader ends.
 *  - Every write txn is begun and committed by the writer thread, one at a
 *    time; st->cache (revision, applied index, alarms) mirrors the meta DB as
 *    of the last commit and is read by other threads under st->mu.
 */
#ifndef KEEL_STORE_INTERNAL_H
#define KEEL_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

enum {
  DB_RAFT_LOG,
  DB_RAFT_STATE,
  DB_KV_KEY,
  DB_KV_REV,
  DB_LEASES,
  DB_LEASE_KEYS,
  DB_META,
  DB_COUNT
};

struct store_db {
  MDB_env *env;
  MDB_dbi dbi[DB_COUNT];
  int refs; /* readers + 1 while live; under store.mu */
  uint32_t gen;
  char path[4096];
};

struct store_cache {
  int64_t revision;
  int64_t compact_rev;
  uint64_t applied_index;
  uint64_t applied_term;
  bool nospace;
  /* Log shape, read by the raft core's storage calls. */
  uint64_t log_base_index;
  uint64_t log_base_term;
  uint64_t log_last;
  uint64_t hs_commit;
};

struct store {
  pthread_mutex_t mu;
  struct store_db *db;
  struct store_cache cache;
  struct store_options opts;
  uint64_t mapsize; /* under mu; grows when the map fills */
  uint64_t map_max;
  char dir[4000];
};

/* --- encoding --------------------------------------------------------- */

static inline void be64_put(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}
static inline uint64_t be64_get(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}
static inline void be32_put(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static inline uint32_t be32_get(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

/* kv_key dup item: main(8) sub(8) create(8) version(8) lease(8); the top
 * bit of sub marks a tombstone. */
#define REV_TOMBSTONE (1ull << 63)

/* --- arena: results own their memory ---------------------------------- */

struct arena {
  void *head; /* chain of chunks */
  uint8_t *cur;
  size_t left;
};
void *arena_alloc(struct arena *a, size_t n);
void *arena_dup(struct arena *a, const void *p, size_t n);
void arena_free_chain(void *head);

/* --- errors and txns --------------------------------------------------- */

int store_mdb_err(int rc);
/* Reader reference on the live file, and a read-only txn on it. */
struct store_db *store_db_acquire(struct store *st);
void store_db_release(struct store *st, struct store_db *db);
int store_read_begin(struct store *st, struct store_db **db, MDB_txn **txn);
void store_read_end(struct store *st, struct store_db *db, MDB_txn *txn);

/* meta helpers (within a txn) */
int meta_get_u64(struct store_db *db, MDB_txn *txn, const char *name,
                 uint64_t *v);
int meta_put_u64(struct store_db *db, MDB_txn *txn, const char *name,
                 uint64_t v);
int store_load_cache(struct store_db *db, MDB_txn *txn, struct store_cache *c);

/* Log append inside the caller's write txn (store.c); store_log_appended()
 * publishes the new shape once that txn has committed. */
int store_log_append_txn(struct store *st, MDB_txn *txn,
                         const struct store_entry *ents, size_t n,
                         const struct store_hard_state *hs, uint64_t *new_last);
void store_log_appended(struct store *st, uint64_t last,
                        const struct store_hard_state *hs);

/* conf state encoding (meta "conf") */
size_t conf_encode(const struct store_conf_state *cs, uint8_t *buf);
int conf_decode(const uint8_t *p, size_t n, struct store_conf_state *cs);
#define CONF_ENC_MAX (4 * 4 + 4 * 8 * STORE_MAX_MEMBERS + 1)

/* Opens the LMDB file at path with the store's options. */
int store_db_open(struct store *st, const char *path, uint32_t gen,
                  struct store_db **out);
void store_db_close(struct store_db *db);
/* Makes gen the live file: fsyncs, writes CURRENT atomically. */
int store_set_current(struct store *st, uint32_t gen);
void store_gen_path(const struct store *st, uint32_t gen, char *buf,
                    size_t cap);
/* MDB_MAP_FULL: grows the map by half (at most 4x the initial size) if no
 * read txn is open, so the writer can retry once. 0 if grown, else
 * KEEL_ENOSPACE. Writer thread. */
int store_grow_map(struct store *st);
/* Switches the live file (writer thread). */
void store_swap_db(struct store *st, struct store_db *ndb);

/* Key range helpers (etcd rules). end NULL/0 with single=true: one key. */
struct keyrange {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *end; /* NULL: unbounded above */
  size_t end_len;
  bool single;
};
void keyrange_make(struct keyrange *r, const uint8_t *key, size_t key_len,
                   const uint8_t *end, size_t end_len);
/* <0 before the range start is not asked: in-range test for key >= start */
bool keyrange_below_end(const struct keyrange *r, const uint8_t *k, size_t n);
int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);

/* Garbage left by a logical compaction at `compact` (store_kv.c): a kv_key
 * item or kv_rev record that is a tombstone or not the latest state of its
 * key at compact. kc is a cursor on kv_key. */
int store_kv_item_dead(struct store_db *db, MDB_txn *txn, int64_t compact,
                       MDB_cursor *kc, const MDB_val *k, const MDB_val *item,
                       bool *dead);
int store_kv_rec_dead(struct store_db *db, MDB_txn *txn, int64_t compact,
                      MDB_cursor *kc, const MDB_val *k, const MDB_val *d,
                      bool *dead);

/* store_verify() on a given file and txn (store_kv.c). */
int store_verify_db(struct store_db *db, MDB_txn *txn);

uint32_t store_crc32c(uint32_t crc, const uint8_t *p, size_t n);

#endif

/* store.c — opening the store (the CURRENT file and the LMDB environment),
 * reader references, error conversion, the result arena, and the raft log
 * storage.
 *
 * Files: <dir>/CURRENT holds "keel-NNNNNN.mdb\n", the live LMDB file (opened
 * with MDB_NOSUBDIR; its lock file is the same name + "-lock"). A new file is
 * only ever made live by renaming CURRENT.tmp over CURRENT after both are
 * fsynced; at open every other keel-*.mdb file is a leftover of an
 * interrupted defragment or restore and is removed.
 *
 * Raft log invariant: raft_log holds exactly the indexes (base, last]; the
 * base (index, term) lives in raft_state "log_base". hard_state.commit never
 * points below an entry that append would replace (append refuses).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keel_error.h"
#include "keel_log.h"
#include "store_internal.h"

static const char *const db_names[DB_COUNT] = {
    "raft_log", "raft_state", "kv_key", "kv_rev",
    "leases",   "lease_keys", "meta",
};

/* Bumped when the on-disk layout changes incompatibly. */
#define STORE_FORMAT 1

int store_mdb_err(int rc) {
  switch (rc) {
  case 0:
    return 0;
  case MDB_MAP_FULL:
  case MDB_TXN_FULL:
    return KEEL_ENOSPACE;
  case MDB_NOTFOUND:
    return KEEL_ENOTFOUND;
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INVALID:
  case MDB_BAD_TXN:
    return KEEL_ECORRUPT;
  case MDB_VERSION_MISMATCH:
    return KEEL_EVERSION;
  case MDB_READERS_FULL:
    return KEEL_EBUSY;
  case MDB_BAD_VALSIZE: /* a key past LMDB's limit: the caller's input */
    return KEEL_ETOOLARGE;
  case ENOMEM:
    return -ENOMEM;
  case ENOSPC:
    return -ENOSPC;
  default:
    if (rc > 0 && rc < 4096)
      return -rc;
    return -EIO;
  }
}

/* --- arena --------------------------------------------------------------- */

struct chunk {
  struct chunk *next;
  size_t size;
  max_align_t data[];
};

void *arena_alloc(struct arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n == 0)
    n = 16;
  if (n > a->left) {
    size_t size = n > 16384 ? n : 16384;
    struct chunk *c = malloc(sizeof(*c) + size);
    if (c == NULL)
      return NULL;
    c->next = a->head;
    c->size = size;
    a->head = c;
    a->cur = (uint8_t *)c->data;
    a->left = size;
  }
  void *p = a->cur;
  a->cur += n;
  a->left -= n;
  return p;
}

void *arena_dup(struct arena *a, const void *p, size_t n) {
  void *d = arena_alloc(a, n);
  if (d != NULL && n > 0)
    memcpy(d, p, n);
  return d;
}

void arena_free_chain(void *head) {
  struct chunk *c = head;
  while (c != NULL) {
    struct chunk *next = c->next;
    free(c);
    c = next;
  }
}

/* --- key ranges ------------------------------------------------------------
 */

int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t n = an < bn ? an : bn;
  int c = n ? memcmp(a, b, n) : 0;
  if (c != 0)
    return c;
  return an < bn ? -1 : an > bn ? 1 : 0;
}

void keyrange_make(struct keyrange *r, const uint8_t *key, size_t key_len,
                   const uint8_t *end, size_t end_len) {
  r->key = key;
  r->key_len = key_len;
  r->single = end_len == 0;
  r->end = NULL;
  r->end_len = 0;
  if (end_len == 1 && end[0] == 0) {
    /* from-key; and "\0".."\0" is every key (key "\0" sorts first anyway
     * except the empty key, which is not a valid key). */
    if (key_len == 1 && key[0] == 0)
      r->key_len = 0;
  } else if (end_len > 0) {
    r->end = end;
    r->end_len = end_len;
  }
}

bool keyrange_below_end(const struct keyrange *r, const uint8_t *k, size_t n) {
  if (r->single)
    return bytes_cmp(k, n, r->key, r->key_len) == 0;
  if (r->end == NULL)
    return true;
  return bytes_cmp(k, n, r->end, r->end_len) < 0;
}

/* --- CRC-32C ----------------------------------------------------------------
 */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[i] = c;
  }
}

uint32_t store_crc32c(uint32_t crc, const uint8_t *p, size_t n) {
  pthread_once(&crc_once, crc_init);
  crc = ~crc;
  for (size_t i = 0; i < n; i++)
    crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* --- meta ---------------------------------------------------------------- */

int meta_get_u64(struct store_db *db, MDB_txn *txn, const char *name,
                 uint64_t *v) {
  MDB_val k = {strlen(name), (void *)name}, d;
  int rc = mdb_get(txn, db->dbi[DB_META], &k, &d);
  if (rc == MDB_NOTFOUND)
    return KEEL_ENOTFOUND;
  if (rc != 0)
    return store_mdb_err(rc);
  if (d.mv_size != 8)
    return KEEL_ECORRUPT;
  *v = be64_get(d.mv_data);
  return 0;
}

int meta_put_u64(struct store_db *db, MDB_txn *txn, const char *name,
                 uint64_t v) {
  uint8_t b[8];
  be64_put(b, v);
  MDB_val k = {strlen(name), (void *)name}, d = {8, b};
  return store_mdb_err(mdb_put(txn, db->dbi[DB_META], &k, &d, 0));
}

static int state_get(struct store_db *db, MDB_txn *txn, const char *name,
                     MDB_val *d) {
  MDB_val k = {strlen(name), (void *)name};
  int rc = mdb_get(txn, db->dbi[DB_RAFT_STATE], &k, d);
  if (rc == MDB_NOTFOUND)
    return KEEL_ENOTFOUND;
  return store_mdb_err(rc);
}

static int state_put(struct store_db *db, MDB_txn *txn, const char *name,
                     const void *p, size_t n) {
  MDB_val k = {strlen(name), (void *)name}, d = {n, (void *)p};
  return store_mdb_err(mdb_put(txn, db->dbi[DB_RAFT_STATE], &k, &d, 0));
}

size_t conf_encode(const struct store_conf_state *cs, uint8_t *buf) {
  uint8_t *p = buf;
  const uint64_t *lists[4] = {cs->voters, cs->learners, cs->voters_outgoing,
                              cs->learners_next};
  uint32_t ns[4] = {cs->n_voters, cs->n_learners, cs->n_voters_outgoing,
                    cs->n_learners_next};
  for (int l = 0; l < 4; l++) {
    assert(ns[l] <= STORE_MAX_MEMBERS);
    be32_put(p, ns[l]);
    p += 4;
    for (uint32_t i = 0; i < ns[l]; i++) {
      be64_put(p, lists[l][i]);
      p += 8;
    }
  }
  *p++ = cs->auto_leave ? 1 : 0;
  return (size_t)(p - buf);
}

int conf_decode(const uint8_t *p, size_t n, struct store_conf_state *cs) {
  memset(cs, 0, sizeof(*cs));
  uint64_t *lists[4] = {cs->voters, cs->learners, cs->voters_outgoing,
                        cs->learners_next};
  uint32_t *ns[4] = {&cs->n_voters, &cs->n_learners, &cs->n_voters_outgoing,
                     &cs->n_learners_next};
  const uint8_t *end = p + n;
  for (int l = 0; l < 4; l++) {
    if (end - p < 4)
      return KEEL_ECORRUPT;
    uint32_t c = be32_get(p);
    p += 4;
    if (c > STORE_MAX_MEMBERS || (size_t)(end - p) < 8u * c)
      return KEEL_ECORRUPT;
    for (uint32_t i = 0; i < c; i++, p += 8)
      lists[l][i] = be64_get(p);
    *ns[l] = c;
  }
  if (end - p != 1)
    return KEEL_ECORRUPT;
  cs->auto_leave = *p != 0;
  return 0;
}

int store_load_cache(struct store_db *db, MDB_txn *txn, struct store_cache *c) {
  memset(c, 0, sizeof(*c));
  uint64_t v;
  int rc;
  c->revision = 1; /* etcd: an empty store is at revision 1 */
  if ((rc = meta_get_u64(db, txn, "revision", &v)) == 0)
    c->revision = (int64_t)v;
  else if (rc != KEEL_ENOTFOUND)
    return rc;
  if ((rc = meta_get_u64(db, txn, "compact_rev", &v)) == 0)
    c->compact_rev = (int64_t)v;
  else if (rc != KEEL_ENOTFOUND)
    return rc;
  if ((rc = meta_get_u64(db, txn, "applied_index", &v)) == 0)
    c->applied_index = v;
  else if (rc != KEEL_ENOTFOUND)
    return rc;
  if ((rc = meta_get_u64(db, txn, "applied_term", &v)) == 0)
    c->applied_term = v;
  else if (rc != KEEL_ENOTFOUND)
    return rc;
  /* alarms: meta "alarm/" member(8) type(4) */
  MDB_cursor *cur;
  if ((rc = mdb_cursor_open(txn, db->dbi[DB_META], &cur)) != 0)
    return store_mdb_err(rc);
  MDB_val k = {6, "alarm/"}, d;
  rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size == 18 && memcmp(k.mv_data, "alarm/", 6) == 0) {
    if (be32_get((uint8_t *)k.mv_data + 14) == STORE_ALARM_NOSPACE)
      c->nospace = true;
    rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return store_mdb_err(rc);

  if ((rc = state_get(db, txn, "log_base", &d)) == 0) {
    if (d.mv_size != 16)
      return KEEL_ECORRUPT;
    c->log_base_index = be64_get(d.mv_data);
    c->log_base_term = be64_get((uint8_t *)d.mv_data + 8);
  } else if (rc != KEEL_ENOTFOUND) {
    return rc;
  }
  if ((rc = state_get(db, txn, "hard_state", &d)) == 0) {
    if (d.mv_size != 24)
      return KEEL_ECORRUPT;
    c->hs_commit = be64_get((uint8_t *)d.mv_data + 16);
  } else if (rc != KEEL_ENOTFOUND) {
    return rc;
  }
  c->log_last = c->log_base_index;
  if ((rc = mdb_cursor_open(txn, db->dbi[DB_RAFT_LOG], &cur)) != 0)
    return store_mdb_err(rc);
  rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
  if (rc == 0) {
    if (k.mv_size != 8) {
      mdb_cursor_close(cur);
      return KEEL_ECORRUPT;
    }
    c->log_last = be64_get(k.mv_data);
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return store_mdb_err(rc);
  if (c->log_last < c->log_base_index)
    return KEEL_ECORRUPT;
  return 0;
}

/* --- files -----------------------------------------------------------------
 */

void store_gen_path(const struct store *st, uint32_t gen, char *buf,
                    size_t cap) {
  snprintf(buf, cap, "%s/keel-%06u.mdb", st->dir, gen);
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return -errno;
  int rc = fsync(fd) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

int store_set_current(struct store *st, uint32_t gen) {
  char tmp[4096], cur[4096], line[64];
  snprintf(tmp, sizeof(tmp), "%s/CURRENT.tmp", st->dir);
  snprintf(cur, sizeof(cur), "%s/CURRENT", st->dir);
  int n = snprintf(line, sizeof(line), "keel-%06u.mdb\n", gen);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return -errno;
  int rc = 0;
  if (write(fd, line, (size_t)n) != n || fsync(fd) < 0)
    rc = errno ? -errno : -EIO;
  close(fd);
  if (rc == 0 && rename(tmp, cur) < 0)
    rc = -errno;
  if (rc == 0)
    rc = fsync_dir(st->dir);
  return rc;
}

static int read_current(const struct store *st, uint32_t *gen) {
  char cur[4096], line[64] = {0};
  snprintf(cur, sizeof(cur), "%s/CURRENT", st->dir);
  int fd = open(cur, O_RDONLY);
  if (fd < 0)
    return -errno;
  ssize_t n = read(fd, line, sizeof(line) - 1);
  close(fd);
  unsigned g;
  char nl;
  if (n != 16 || sscanf(line, "keel-%6u.mdb%c", &g, &nl) != 2 || nl != '\n' ||
      g == 0) {
    keel_logkv(KEEL_LOG_ERROR, "store", "CURRENT file is not valid", "dir=%s",
               st->dir);
    return KEEL_ECORRUPT;
  }
  *gen = g;
  return 0;
}

/* Removes every keel-*.mdb(-lock) file but the live one, and CURRENT.tmp. */
static void remove_stale(const struct store *st, uint32_t live) {
  DIR *d = opendir(st->dir);
  if (d == NULL)
    return;
  struct dirent *e;
  char keep[64], keep_lock[64], path[4096 + 300];
  snprintf(keep, sizeof(keep), "keel-%06u.mdb", live);
  snprintf(keep_lock, sizeof(keep_lock), "keel-%06u.mdb-lock", live);
  while ((e = readdir(d)) != NULL) {
    bool ours = strncmp(e->d_name, "keel-", 5) == 0 ||
                strcmp(e->d_name, "CURRENT.tmp") == 0;
    if (!ours || strcmp(e->d_name, keep) == 0 ||
        strcmp(e->d_name, keep_lock) == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", st->dir, e->d_name);
    keel_logkv(KEEL_LOG_INFO, "store", "removing stale file", "path=%s", path);
    unlink(path);
  }
  closedir(d);
}

int store_db_open(struct store *st, const char *path, uint32_t gen,
                  struct store_db **out) {
  struct store_db *db = calloc(1, sizeof(*db));
  if (db == NULL)
    return -ENOMEM;
  snprintf(db->path, sizeof(db->path), "%s", path);
  db->gen = gen;
  db->refs = 1;
  int rc = mdb_env_create(&db->env);
  if (rc == 0)
    rc = mdb_env_set_mapsize(db->env, st->mapsize);
  if (rc == 0)
    rc = mdb_env_set_maxdbs(db->env, DB_COUNT);
  if (rc == 0)
    rc = mdb_env_set_maxreaders(db->env, 256);
  /* NOTLS: read txns are tied to their object, not the thread, so a chunked
   * snapshot or history read can span calls and threads. */
  if (rc == 0)
    rc = mdb_env_open(db->env, path, MDB_NOSUBDIR | MDB_NOTLS, 0644);
  if (rc != 0) {
    int err = store_mdb_err(rc);
    keel_logkv(KEEL_LOG_ERROR, "store", "cannot open LMDB file",
               "path=%s err=%s", path, mdb_strerror(rc));
    if (db->env)
      mdb_env_close(db->env);
    free(db);
    return err;
  }
  MDB_txn *txn;
  rc = mdb_txn_begin(db->env, NULL, 0, &txn);
  for (int i = 0; rc == 0 && i < DB_COUNT; i++) {
    unsigned flags = MDB_CREATE;
    if (i == DB_KV_KEY)
      flags |= MDB_DUPSORT | MDB_DUPFIXED;
    rc = mdb_dbi_open(txn, db_names[i], flags, &db->dbi[i]);
  }
  uint64_t fmt = 0;
  if (rc == 0) {
    int r = meta_get_u64(db, txn, "format", &fmt);
    if (r == KEEL_ENOTFOUND)
      r = meta_put_u64(db, txn, "format", STORE_FORMAT);
    else if (r == 0 && fmt != STORE_FORMAT)
      r = KEEL_EVERSION;
    if (r != 0) {
      mdb_txn_abort(txn);
      mdb_env_close(db->env);
      free(db);
      return r;
    }
    rc = mdb_txn_commit(txn);
  } else {
    mdb_txn_abort(txn);
  }
  if (rc != 0) {
    mdb_env_close(db->env);
    free(db);
    return store_mdb_err(rc);
  }
  *out = db;
  return 0;
}

void store_db_close(struct store_db *db) {
  if (db == NULL)
    return;
  mdb_env_close(db->env);
  free(db);
}

/* Closes a file that is no longer live and deletes it. */
static void db_retire(struct store_db *db) {
  char lock[4096 + 8];
  snprintf(lock, sizeof(lock), "%s-lock", db->path);
  char path[4096];
  snprintf(path, sizeof(path), "%s", db->path);
  store_db_close(db);
  unlink(path);
  unlink(lock);
}

struct store_db *store_db_acquire(struct store *st) {
  pthread_mutex_lock(&st->mu);
  struct store_db *db = st->db;
  db->refs++;
  pthread_mutex_unlock(&st->mu);
  return db;
}

void store_db_release(struct store *st, struct store_db *db) {
  pthread_mutex_lock(&st->mu);
  int left = --db->refs;
  pthread_mutex_unlock(&st->mu);
  if (left == 0)
    db_retire(db);
}

void store_swap_db(struct store *st, struct store_db *ndb) {
  pthread_mutex_lock(&st->mu);
  struct store_db *old = st->db;
  st->db = ndb;
  int left = --old->refs;
  pthread_mutex_unlock(&st->mu);
  if (left == 0)
    db_retire(old);
}

int store_read_begin(struct store *st, struct store_db **db, MDB_txn **txn) {
  *db = store_db_acquire(st);
  int rc = mdb_txn_begin((*db)->env, NULL, MDB_RDONLY, txn);
  if (rc != 0) {
    store_db_release(st, *db);
    return store_mdb_err(rc);
  }
  return 0;
}

void store_read_end(struct store *st, struct store_db *db, MDB_txn *txn) {
  mdb_txn_abort(txn);
  store_db_release(st, db);
}

int store_open(const char *dir, const struct store_options *opts,
               struct store **out) {
  *out = NULL;
  struct store_options o = {0};
  if (opts != NULL)
    o = *opts;
  if (o.quota_bytes == 0)
    o.quota_bytes = STORE_DEFAULT_QUOTA;
  if (o.quota_bytes > STORE_MAX_QUOTA || o.quota_bytes < 64 * 1024) {
    keel_logkv(KEEL_LOG_ERROR, "store", "quota out of range",
               "quota=%llu min=65536 max=%llu",
               (unsigned long long)o.quota_bytes,
               (unsigned long long)STORE_MAX_QUOTA);
    return -EINVAL;
  }
  if (strlen(dir) >= 3900)
    return -ENAMETOOLONG;
  struct store *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return -ENOMEM;
  pthread_mutex_init(&st->mu, NULL);
  snprintf(st->dir, sizeof(st->dir), "%s", dir);
  st->opts = o;
  st->mapsize = 2 * o.quota_bytes + 64 * 1024 * 1024;
  long page = sysconf(_SC_PAGESIZE);
  st->mapsize =
      (st->mapsize + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
  st->map_max = 4 * st->mapsize;

  int rc = 0;
  if (mkdir(dir, 0755) < 0 && errno != EEXIST)
    rc = -errno;
  uint32_t gen = 0;
  bool fresh = false;
  if (rc == 0) {
    rc = read_current(st, &gen);
    if (rc == -ENOENT) {
      gen = 1;
      fresh = true;
      rc = 0;
    }
  }
  if (rc == 0) {
    remove_stale(st, fresh ? 0 : gen);
    char path[4096];
    store_gen_path(st, gen, path, sizeof(path));
    struct stat sb;
    if (!fresh && stat(path, &sb) != 0) {
      /* LMDB would create an empty file: a lost store must not look new */
      keel_logkv(KEEL_LOG_ERROR, "store", "the file CURRENT names is missing",
                 "path=%s", path);
      rc = KEEL_ECORRUPT;
    } else {
      rc = store_db_open(st, path, gen, &st->db);
    }
    if (rc == 0 && fresh)
      rc = store_set_current(st, gen);
  }
  if (rc == 0) {
    MDB_txn *txn;
    rc = store_mdb_err(mdb_txn_begin(st->db->env, NULL, MDB_RDONLY, &txn));
    if (rc == 0) {
      rc = store_load_cache(st->db, txn, &st->cache);
      mdb_txn_abort(txn);
    }
  }
  if (rc != 0) {
    if (st->db)
      store_db_close(st->db);
    pthread_mutex_destroy(&st->mu);
    free(st);
    return rc;
  }
  *out = st;
  return 0;
}

void store_close(struct store *st) {
  if (st == NULL)
    return;
  assert(st->db->refs == 1); /* every read has ended */
  store_db_close(st->db);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

/* --- raft log
 * ----------------------------------------------------------------- */

static int hs_put(struct store_db *db, MDB_txn *txn,
                  const struct store_hard_state *hs) {
  uint8_t b[24];
  be64_put(b, hs->term);
  be64_put(b + 8, hs->vote);
  be64_put(b + 16, hs->commit);
  return state_put(db, txn, "hard_state", b, 24);
}

int store_log_append_txn(struct store *st, MDB_txn *txn,
                         const struct store_entry *ents, size_t n,
                         const struct store_hard_state *hs,
                         uint64_t *new_last) {
  struct store_db *db = st->db;
  struct store_cache c = st->cache; /* writer thread: no race */
  for (size_t i = 1; i < n; i++)
    if (ents[i].index != ents[i - 1].index + 1)
      return -EINVAL;
  size_t i0 = 0;
  while (i0 < n && ents[i0].index <= c.log_base_index)
    i0++;
  if (i0 < n && ents[i0].index > c.log_last + 1) {
    keel_logkv(KEEL_LOG_ERROR, "store", "log append leaves a gap",
               "first=%llu last=%llu", (unsigned long long)ents[i0].index,
               (unsigned long long)c.log_last);
    return -EINVAL;
  }
  int rc;
  uint64_t last = c.log_last;
  uint8_t kb[8];
  MDB_val k = {8, kb}, d;
  /* Skip entries already stored with the same term. */
  while (i0 < n && ents[i0].index <= last) {
    be64_put(kb, ents[i0].index);
    rc = mdb_get(txn, db->dbi[DB_RAFT_LOG], &k, &d);
    if (rc != 0)
      return store_mdb_err(rc);
    if (d.mv_size < 12)
      return KEEL_ECORRUPT;
    if (be64_get(d.mv_data) != ents[i0].term)
      break;
    i0++;
  }
  if (i0 < n && ents[i0].index <= last) {
    /* Conflict: drop the suffix from ents[i0].index. */
    uint64_t from = ents[i0].index;
    uint64_t commit = hs ? hs->commit : c.hs_commit;
    if (from <= commit || from <= c.applied_index) {
      keel_logkv(KEEL_LOG_ERROR, "store",
                 "log append would replace committed entries",
                 "from=%llu commit=%llu", (unsigned long long)from,
                 (unsigned long long)commit);
      return -EINVAL;
    }
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, db->dbi[DB_RAFT_LOG], &cur)) != 0)
      return store_mdb_err(rc);
    /* Reposition after each delete: simple, and truncation is rare. */
    int r;
    for (;;) {
      be64_put(kb, from);
      k.mv_size = 8;
      k.mv_data = kb;
      if ((r = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE)) != 0)
        break;
      if ((r = mdb_cursor_del(cur, 0)) != 0)
        break;
    }
    mdb_cursor_close(cur);
    if (r != MDB_NOTFOUND)
      return store_mdb_err(r);
    last = from - 1;
  }
  for (size_t i = i0; i < n; i++) {
    be64_put(kb, ents[i].index);
    k.mv_size = 8;
    k.mv_data = kb;
    d.mv_size = 12 + ents[i].len;
    if ((rc = mdb_put(txn, db->dbi[DB_RAFT_LOG], &k, &d,
                      MDB_APPEND | MDB_RESERVE)) != 0)
      return store_mdb_err(rc);
    uint8_t *p = d.mv_data;
    be64_put(p, ents[i].term);
    be32_put(p + 8, ents[i].type);
    if (ents[i].len)
      memcpy(p + 12, ents[i].data, ents[i].len);
    last = ents[i].index;
  }
  if (hs != NULL && (rc = hs_put(db, txn, hs)) != 0)
    return rc;
  *new_last = last;
  return 0;
}

void store_log_appended(struct store *st, uint64_t last,
                        const struct store_hard_state *hs) {
  pthread_mutex_lock(&st->mu);
  st->cache.log_last = last;
  if (hs != NULL)
    st->cache.hs_commit = hs->commit;
  pthread_mutex_unlock(&st->mu);
}

int store_grow_map(struct store *st) {
  int rc = KEEL_ENOSPACE;
  pthread_mutex_lock(&st->mu);
  struct store_db *db = st->db;
  uint64_t next = st->mapsize + st->mapsize / 2;
  /* Readers take a reference under mu before they begin a txn, so with no
   * reference but the store's own no txn is open in this process, which is
   * what mdb_env_set_mapsize() requires. */
  if (db->refs == 1 && next <= st->map_max &&
      mdb_env_set_mapsize(db->env, next) == 0) {
    keel_logkv(KEEL_LOG_WARN, "store", "LMDB map full: grown",
               "from=%llu to=%llu", (unsigned long long)st->mapsize,
               (unsigned long long)next);
    st->mapsize = next;
    rc = 0;
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static int log_append_once(struct store *st, const struct store_entry *ents,
                           size_t n, const struct store_hard_state *hs);

int store_log_append(struct store *st, const struct store_entry *ents, size_t n,
                     const struct store_hard_state *hs) {
  int rc = log_append_once(st, ents, n, hs);
  if (rc == KEEL_ENOSPACE && store_grow_map(st) == 0)
    rc = log_append_once(st, ents, n, hs);
  return rc;
}

static int log_append_once(struct store *st, const struct store_entry *ents,
                           size_t n, const struct store_hard_state *hs) {
  MDB_txn *txn;
  int rc = store_mdb_err(mdb_txn_begin(st->db->env, NULL, 0, &txn));
  if (rc != 0)
    return rc;
  uint64_t last;
  if ((rc = store_log_append_txn(st, txn, ents, n, hs, &last)) != 0) {
    mdb_txn_abort(txn);
    return rc;
  }
  if ((rc = mdb_txn_commit(txn)) != 0)
    return store_mdb_err(rc);
  store_log_appended(st, last, hs);
  return 0;
}

int store_log_save_hard_state(struct store *st,
                              const struct store_hard_state *hs) {
  return store_log_append(st, NULL, 0, hs);
}

int store_log_load_state(struct store *st, struct store_hard_state *hs,
                         struct store_conf_state *cs) {
  struct store_db *db;
  MDB_txn *txn;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  MDB_val d;
  memset(hs, 0, sizeof(*hs));
  if (cs)
    memset(cs, 0, sizeof(*cs));
  rc = state_get(db, txn, "hard_state", &d);
  if (rc == 0 && d.mv_size == 24) {
    hs->term = be64_get(d.mv_data);
    hs->vote = be64_get((uint8_t *)d.mv_data + 8);
    hs->commit = be64_get((uint8_t *)d.mv_data + 16);
  } else if (rc == 0) {
    rc = KEEL_ECORRUPT;
  } else if (rc == KEEL_ENOTFOUND) {
    rc = 0;
  }
  if (rc == 0 && cs != NULL) {
    MDB_val k = {4, "conf"};
    int r = mdb_get(txn, db->dbi[DB_META], &k, &d);
    if (r == 0)
      rc = conf_decode(d.mv_data, d.mv_size, cs);
    else if (r != MDB_NOTFOUND)
      rc = store_mdb_err(r);
  }
  store_read_end(st, db, txn);
  return rc;
}

uint64_t store_log_first_index(struct store *st) {
  pthread_mutex_lock(&st->mu);
  uint64_t v = st->cache.log_base_index + 1;
  pthread_mutex_unlock(&st->mu);
  return v;
}

uint64_t store_log_last_index(struct store *st) {
  pthread_mutex_lock(&st->mu);
  uint64_t v = st->cache.log_last;
  pthread_mutex_unlock(&st->mu);
  return v;
}

int store_log_term(struct store *st, uint64_t i, uint64_t *term) {
  pthread_mutex_lock(&st->mu);
  struct store_cache c = st->cache;
  pthread_mutex_unlock(&st->mu);
  if (i < c.log_base_index)
    return KEEL_ECOMPACTED;
  if (i == c.log_base_index) {
    *term = c.log_base_term;
    return 0;
  }
  if (i > c.log_last)
    return KEEL_ENOTFOUND;
  struct store_db *db;
  MDB_txn *txn;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  uint8_t kb[8];
  be64_put(kb, i);
  MDB_val k = {8, kb}, d;
  rc = mdb_get(txn, db->dbi[DB_RAFT_LOG], &k, &d);
  if (rc == 0 && d.mv_size >= 12)
    *term = be64_get(d.mv_data);
  else if (rc == 0)
    rc = KEEL_ECORRUPT;
  else if (rc == MDB_NOTFOUND)
    rc = KEEL_ECOMPACTED; /* dropped meanwhile */
  else
    rc = store_mdb_err(rc);
  store_read_end(st, db, txn);
  return rc;
}

int store_log_entries(struct store *st, uint64_t lo, uint64_t hi,
                      uint64_t max_bytes, struct store_entries *out) {
  memset(out, 0, sizeof(*out));
  if (lo >= hi)
    return -EINVAL;
  pthread_mutex_lock(&st->mu);
  struct store_cache c = st->cache;
  pthread_mutex_unlock(&st->mu);
  if (lo <= c.log_base_index)
    return KEEL_ECOMPACTED;
  if (hi > c.log_last + 1)
    return KEEL_ENOTFOUND;
  struct store_db *db;
  MDB_txn *txn;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  struct arena a = {0};
  size_t cap = (size_t)(hi - lo);
  if (cap > 4096)
    cap = 4096;
  struct store_entry *ents = malloc(cap * sizeof(*ents));
  MDB_cursor *cur = NULL;
  if (ents == NULL) {
    rc = -ENOMEM;
    goto done;
  }
  if ((rc = mdb_cursor_open(txn, db->dbi[DB_RAFT_LOG], &cur)) != 0) {
    rc = store_mdb_err(rc);
    goto done;
  }
  uint8_t kb[8];
  be64_put(kb, lo);
  MDB_val k = {8, kb}, d;
  uint64_t bytes = 0, want = lo;
  size_t n = 0;
  int r = mdb_cursor_get(cur, &k, &d, MDB_SET_KEY);
  while (r == 0 && want < hi) {
    if (k.mv_size != 8 || be64_get(k.mv_data) != want || d.mv_size < 12) {
      rc = KEEL_ECORRUPT;
      goto done;
    }
    size_t len = d.mv_size - 12;
    if (max_bytes && n > 0 && bytes + len > max_bytes)
      break;
    if (n == cap) {
      size_t ncap = cap * 2;
      struct store_entry *ne = realloc(ents, ncap * sizeof(*ents));
      if (ne == NULL) {
        rc = -ENOMEM;
        goto done;
      }
      ents = ne;
      cap = ncap;
    }
    const uint8_t *p = d.mv_data;
    ents[n].index = want;
    ents[n].term = be64_get(p);
    ents[n].type = be32_get(p + 8);
    ents[n].len = len;
    ents[n].data = arena_dup(&a, p + 12, len);
    if (ents[n].data == NULL) {
      rc = -ENOMEM;
      goto done;
    }
    bytes += len;
    n++;
    want++;
    r = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  if (n == 0) {
    rc = r == MDB_NOTFOUND ? KEEL_ECOMPACTED : store_mdb_err(r);
    goto done;
  }
  if (want < hi && r != 0 && !(max_bytes && bytes > 0)) {
    rc = r == MDB_NOTFOUND ? KEEL_ENOTFOUND : store_mdb_err(r);
    goto done;
  }
  /* The arena owns entry data; ents is freed with it via mem. */
  struct store_entry *kept = arena_dup(&a, ents, n * sizeof(*ents));
  if (kept == NULL) {
    rc = -ENOMEM;
    goto done;
  }
  out->ents = kept;
  out->n = n;
  out->mem = a.head;
  a.head = NULL;
  rc = 0;
done:
  if (cur)
    mdb_cursor_close(cur);
  store_read_end(st, db, txn);
  free(ents);
  arena_free_chain(a.head);
  return rc;
}

void store_entries_free(struct store_entries *e) {
  if (e == NULL)
    return;
  arena_free_chain(e->mem);
  memset(e, 0, sizeof(*e));
}

static int snap_meta_put(struct store_db *db, MDB_txn *txn,
                         const struct store_snapshot_meta *m) {
  uint8_t b[16 + CONF_ENC_MAX];
  be64_put(b, m->index);
  be64_put(b + 8, m->term);
  size_t n = conf_encode(&m->conf, b + 16);
  return state_put(db, txn, "snapshot", b, 16 + n);
}

int store_log_set_snapshot(struct store *st,
                           const struct store_snapshot_meta *meta) {
  MDB_txn *txn;
  int rc = store_mdb_err(mdb_txn_begin(st->db->env, NULL, 0, &txn));
  if (rc != 0)
    return rc;
  rc = snap_meta_put(st->db, txn, meta);
  if (rc != 0) {
    mdb_txn_abort(txn);
    return rc;
  }
  return store_mdb_err(mdb_txn_commit(txn));
}

int store_log_get_snapshot(struct store *st, struct store_snapshot_meta *out) {
  memset(out, 0, sizeof(*out));
  struct store_db *db;
  MDB_txn *txn;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  MDB_val d;
  rc = state_get(db, txn, "snapshot", &d);
  if (rc == 0) {
    if (d.mv_size < 16)
      rc = KEEL_ECORRUPT;
    else {
      out->index = be64_get(d.mv_data);
      out->term = be64_get((uint8_t *)d.mv_data + 8);
      rc = conf_decode((uint8_t *)d.mv_data + 16, d.mv_size - 16, &out->conf);
    }
  } else if (rc == KEEL_ENOTFOUND) {
    rc = 0;
  }
  store_read_end(st, db, txn);
  return rc;
}

int store_log_compact(struct store *st, uint64_t upto) {
  struct store_cache c = st->cache;
  if (upto < c.log_base_index)
    return KEEL_ECOMPACTED;
  if (upto == c.log_base_index)
    return 0;
  if (upto > c.applied_index || upto > c.log_last)
    return -EINVAL;
  struct store_db *db = st->db;
  MDB_txn *txn;
  int rc = store_mdb_err(mdb_txn_begin(db->env, NULL, 0, &txn));
  if (rc != 0)
    return rc;
  MDB_cursor *cur;
  uint64_t term = 0;
  if ((rc = mdb_cursor_open(txn, db->dbi[DB_RAFT_LOG], &cur)) != 0) {
    mdb_txn_abort(txn);
    return store_mdb_err(rc);
  }
  MDB_val k, d;
  int r;
  for (;;) {
    if ((r = mdb_cursor_get(cur, &k, &d, MDB_FIRST)) != 0)
      break;
    if (k.mv_size != 8 || d.mv_size < 12) {
      r = MDB_CORRUPTED;
      break;
    }
    if (be64_get(k.mv_data) > upto)
      break;
    if (be64_get(k.mv_data) == upto)
      term = be64_get(d.mv_data);
    if ((r = mdb_cursor_del(cur, 0)) != 0)
      break;
  }
  mdb_cursor_close(cur);
  if (r != 0 && r != MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return store_mdb_err(r);
  }
  uint8_t b[16];
  be64_put(b, upto);
  be64_put(b + 8, term);
  if ((rc = state_put(db, txn, "log_base", b, 16)) != 0) {
    mdb_txn_abort(txn);
    return rc;
  }
  if ((rc = mdb_txn_commit(txn)) != 0)
    return store_mdb_err(rc);
  pthread_mutex_lock(&st->mu);
  st->cache.log_base_index = upto;
  st->cache.log_base_term = term;
  pthread_mutex_unlock(&st->mu);
  return 0;
}

/* --- queries on the cache / sizes
 * --------------------------------------------- */

int store_applied(struct store *st, uint64_t *index, uint64_t *term) {
  pthread_mutex_lock(&st->mu);
  *index = st->cache.applied_index;
  *term = st->cache.applied_term;
  pthread_mutex_unlock(&st->mu);
  return 0;
}

int store_revisions(struct store *st, int64_t *current, int64_t *compacted) {
  pthread_mutex_lock(&st->mu);
  if (current)
    *current = st->cache.revision;
  if (compacted)
    *compacted = st->cache.compact_rev;
  pthread_mutex_unlock(&st->mu);
  return 0;
}

int store_nospace_alarm(struct store *st) {
  pthread_mutex_lock(&st->mu);
  int v = st->cache.nospace;
  pthread_mutex_unlock(&st->mu);
  return v;
}

int store_alarm_list(struct store *st, struct store_alarm_member *out,
                     size_t cap, size_t *n) {
  struct store_db *db;
  MDB_txn *txn;
  *n = 0;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  MDB_cursor *cur;
  if ((rc = mdb_cursor_open(txn, db->dbi[DB_META], &cur)) != 0) {
    store_read_end(st, db, txn);
    return store_mdb_err(rc);
  }
  MDB_val k = {6, "alarm/"}, d;
  rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size == 18 && memcmp(k.mv_data, "alarm/", 6) == 0 &&
         *n < cap) {
    out[*n].member_id = be64_get((uint8_t *)k.mv_data + 6);
    out[*n].alarm = (enum store_alarm_type)be32_get((uint8_t *)k.mv_data + 14);
    (*n)++;
    rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  store_read_end(st, db, txn);
  return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
}

int store_size(struct store *st, struct store_size *out) {
  struct store_db *db;
  MDB_txn *txn;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  MDB_envinfo info;
  MDB_stat stat;
  mdb_env_info(db->env, &info);
  mdb_env_stat(db->env, &stat);
  out->size = (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize;
  out->quota = st->opts.quota_bytes;
  /* Free pages: the free list DB (dbi 0 of the txn) holds page lists. */
  uint64_t free_pages = 0;
  MDB_cursor *cur;
  if (mdb_cursor_open(txn, 0, &cur) == 0) {
    MDB_val k, d;
    int r = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
    while (r == 0) {
      if (d.mv_size >= sizeof(size_t)) { /* first word: the count */
        size_t cnt;
        memcpy(&cnt, d.mv_data, sizeof(cnt)); /* may be unaligned */
        free_pages += cnt;
      }
      r = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
  }
  uint64_t fb = free_pages * stat.ms_psize;
  out->size_in_use = fb < out->size ? out->size - fb : 0;
  store_read_end(st, db, txn);
  return 0;
}

int store_quota_exceeded(struct store *st, uint64_t cost) {
  struct store_size s;
  if (store_size(st, &s) != 0)
    return 1;
  return s.size + cost > s.quota;
}

int store_meta_get(struct store *st, const char *name, uint8_t *buf, size_t cap,
                   size_t *len) {
  char kb[300];
  int kn = snprintf(kb, sizeof(kb), "x/%s", name);
  if (kn < 0 || (size_t)kn >= sizeof(kb))
    return -EINVAL;
  struct store_db *db;
  MDB_txn *txn;
  int rc = store_read_begin(st, &db, &txn);
  if (rc != 0)
    return rc;
  MDB_val k = {(size_t)kn, kb}, d;
  rc = mdb_get(txn, db->dbi[DB_META], &k, &d);
  if (rc == 0) {
    *len = d.mv_size;
    memcpy(buf, d.mv_data, d.mv_size < cap ? d.mv_size : cap);
  }
  rc = store_mdb_err(rc);
  store_read_end(st, db, txn);
  return rc;
}

/* --- defragment ------------------------------------------------------------
 */

int store_defragment(struct store *st) {
  struct store_db *old = st->db;
  uint32_t gen = old->gen + 1;
  char path[4096], lock[4200];
  store_gen_path(st, gen, path, sizeof(path));
  snprintf(lock, sizeof(lock), "%s-lock", path);
  unlink(path);
  unlink(lock);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0)
    return -errno;
  int rc = mdb_env_copyfd2(old->env, fd, MDB_CP_COMPACT);
  if (rc == 0 && fsync(fd) < 0)
    rc = errno;
  close(fd);
  if (rc != 0) {
    unlink(path);
    keel_logkv(KEEL_LOG_ERROR, "store", "defragment copy failed", "err=%s",
               mdb_strerror(rc));
    return rc == ENOSPC ? -ENOSPC : store_mdb_err(rc);
  }
  struct store_db *ndb;
  if ((rc = store_db_open(st, path, gen, &ndb)) != 0) {
    unlink(path);
    unlink(lock);
    return rc;
  }
  if ((rc = store_set_current(st, gen)) != 0) {
    store_db_close(ndb);
    unlink(path);
    unlink(lock);
    return rc;
  }
  store_swap_db(st, ndb);
  keel_logkv(KEEL_LOG_INFO, "store", "defragmented", "file=%s", path);
  return 0;
}

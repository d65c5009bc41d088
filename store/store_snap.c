/* store_snap.c — snapshot streams of the state machine, restore from one,
 * and the auto-compaction policy.
 *
 * A stream is produced from one LMDB read txn, so it is a consistent cut at
 * the applied index even while the writer goes on. It is pulled in chunks
 * of the caller's size; at most one record is buffered (records are bounded
 * by STORE_KEY_MAX and the value limit), so memory is bounded.
 *
 * Restore writes into a new LMDB file beside the live one and only makes it
 * live by renaming CURRENT (store.c) after the SHA-256 trailer, the end
 * record and the applied position all check out and the file is fsynced:
 * a crash or a bad stream at any point leaves the old store in place.
 *
 * Restore states: WRITING (records go into the new file) -> ENDED (end
 * record seen, waiting for the 32-byte trailer) -> DONE (trailer seen);
 * any error -> FAILED (only abort is allowed). finish() checks DONE.
 */
#include <assert.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "keel_error.h"
#include "keel_log.h"
#include "store_internal.h"

#define SNAP_MAGIC "KEELSNAP"
#define SNAP_VERSION 1
#define SNAP_HDR 28
#define SNAP_REC_HDR 9
#define SNAP_END_DB 0xFF
/* Largest record: a history record with the largest key and value. */
#define SNAP_REC_MAX (STORE_VALUE_MAX + 2 * STORE_KEY_MAX + 64)
/* Restore commits this many bytes per LMDB txn (bounds dirty pages). */
#define RESTORE_TXN_BYTES (64u * 1024 * 1024)

/* In ascending id order: restore checks tables come in this order. */
static const int snap_dbs[] = {DB_KV_KEY, DB_KV_REV, DB_LEASES, DB_LEASE_KEYS,
                               DB_META};
#define N_SNAP_DBS (sizeof(snap_dbs) / sizeof(snap_dbs[0]))

static bool snap_db_known(int db) {
  for (size_t i = 0; i < N_SNAP_DBS; i++)
    if (snap_dbs[i] == db)
      return true;
  return false;
}

struct store_snapshot {
  struct store *st;
  struct store_db *db;
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_cursor *kc; /* on kv_key, for garbage checks */
  int64_t compact;
  size_t db_pos; /* index into snap_dbs */
  bool cur_started;
  int phase; /* 0 header, 1 records, 2 end record, 3 trailer, 4 done */
  uint8_t *pend;
  size_t pend_len, pend_off, pend_cap;
  EVP_MD_CTX *sha;
  uint8_t digest[32];
  uint64_t size, count;
  uint64_t index, term;
};

static int pend_reserve(struct store_snapshot *s, size_t n) {
  if (n <= s->pend_cap)
    return 0;
  size_t cap = s->pend_cap ? s->pend_cap : 4096;
  while (cap < n)
    cap *= 2;
  uint8_t *p = realloc(s->pend, cap);
  if (p == NULL)
    return -ENOMEM;
  s->pend = p;
  s->pend_cap = cap;
  return 0;
}

int store_snapshot_open(struct store *st, struct store_snapshot **out) {
  *out = NULL;
  struct store_snapshot *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->st = st;
  s->sha = EVP_MD_CTX_new();
  if (s->sha == NULL || EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(s->sha);
    free(s);
    return -ENOMEM;
  }
  int rc = store_read_begin(st, &s->db, &s->txn);
  if (rc != 0) {
    EVP_MD_CTX_free(s->sha);
    free(s);
    return rc;
  }
  uint64_t v;
  if (meta_get_u64(s->db, s->txn, "applied_index", &v) == 0)
    s->index = v;
  if (meta_get_u64(s->db, s->txn, "applied_term", &v) == 0)
    s->term = v;
  if (meta_get_u64(s->db, s->txn, "compact_rev", &v) == 0)
    s->compact = (int64_t)v;
  if ((rc = mdb_cursor_open(s->txn, s->db->dbi[DB_KV_KEY], &s->kc)) != 0) {
    store_read_end(st, s->db, s->txn);
    EVP_MD_CTX_free(s->sha);
    free(s);
    return store_mdb_err(rc);
  }
  *out = s;
  return 0;
}

void store_snapshot_position(struct store_snapshot *s, uint64_t *index,
                             uint64_t *term) {
  *index = s->index;
  *term = s->term;
}

/* Produces the next unit of the stream into pend. Returns 0, or 1 at the
 * end of the stream. */
static int snap_next(struct store_snapshot *s) {
  s->pend_len = s->pend_off = 0;
  int rc;
  switch (s->phase) {
  case 0:
    if ((rc = pend_reserve(s, SNAP_HDR)) != 0)
      return rc;
    memcpy(s->pend, SNAP_MAGIC, 8);
    be32_put(s->pend + 8, SNAP_VERSION);
    be64_put(s->pend + 12, s->index);
    be64_put(s->pend + 20, s->term);
    s->pend_len = SNAP_HDR;
    s->phase = 1;
    break;
  case 1:
    for (;;) {
      if (s->db_pos >= N_SNAP_DBS) {
        s->phase = 2;
        return snap_next(s);
      }
      MDB_val k, d;
      int g;
      if (!s->cur_started) {
        if ((g = mdb_cursor_open(s->txn, s->db->dbi[snap_dbs[s->db_pos]],
                                 &s->cur)) != 0)
          return store_mdb_err(g);
        s->cur_started = true;
        g = mdb_cursor_get(s->cur, &k, &d, MDB_FIRST);
      } else {
        g = mdb_cursor_get(s->cur, &k, &d, MDB_NEXT);
      }
      if (g == MDB_NOTFOUND) {
        mdb_cursor_close(s->cur);
        s->cur = NULL;
        s->cur_started = false;
        s->db_pos++;
        continue;
      }
      if (g != 0)
        return store_mdb_err(g);
      /* Skip what is not state: compaction garbage (the physical half may
       * not have run yet) and its progress marker. */
      int dbid = snap_dbs[s->db_pos];
      bool skip = false;
      if (dbid == DB_META)
        skip = k.mv_size == 8 && memcmp(k.mv_data, "phys_pos", 8) == 0;
      else if (dbid == DB_KV_KEY)
        rc =
            store_kv_item_dead(s->db, s->txn, s->compact, s->kc, &k, &d, &skip);
      else if (dbid == DB_KV_REV)
        rc = store_kv_rec_dead(s->db, s->txn, s->compact, s->kc, &k, &d, &skip);
      if (rc != 0)
        return rc;
      if (skip)
        continue;
      size_t n = SNAP_REC_HDR + k.mv_size + d.mv_size;
      if ((rc = pend_reserve(s, n)) != 0)
        return rc;
      s->pend[0] = (uint8_t)snap_dbs[s->db_pos];
      be32_put(s->pend + 1, (uint32_t)k.mv_size);
      be32_put(s->pend + 5, (uint32_t)d.mv_size);
      memcpy(s->pend + SNAP_REC_HDR, k.mv_data, k.mv_size);
      if (d.mv_size)
        memcpy(s->pend + SNAP_REC_HDR + k.mv_size, d.mv_data, d.mv_size);
      s->pend_len = n;
      s->count++;
      break;
    }
    break;
  case 2:
    if ((rc = pend_reserve(s, SNAP_REC_HDR + 8)) != 0)
      return rc;
    s->pend[0] = SNAP_END_DB;
    be32_put(s->pend + 1, 0);
    be32_put(s->pend + 5, 8);
    be64_put(s->pend + SNAP_REC_HDR, s->count);
    s->pend_len = SNAP_REC_HDR + 8;
    s->phase = 3;
    break;
  case 3: {
    /* the digest covers everything before it */
    unsigned len = 32;
    if (EVP_DigestFinal_ex(s->sha, s->digest, &len) != 1)
      return -EIO;
    if ((rc = pend_reserve(s, 32)) != 0)
      return rc;
    memcpy(s->pend, s->digest, 32);
    s->pend_len = 32;
    s->phase = 4;
    s->size += 32;
    return 0;
  }
  default:
    return 1;
  }
  if (EVP_DigestUpdate(s->sha, s->pend, s->pend_len) != 1)
    return -EIO;
  s->size += s->pend_len;
  return 0;
}

int store_snapshot_read(struct store_snapshot *s, uint8_t *buf, size_t cap,
                        size_t *n) {
  *n = 0;
  if (cap < 64)
    return -EINVAL;
  while (*n < cap) {
    if (s->pend_off == s->pend_len) {
      int rc = snap_next(s);
      if (rc == 1)
        break;
      if (rc != 0)
        return rc;
    }
    size_t take = s->pend_len - s->pend_off;
    if (take > cap - *n)
      take = cap - *n;
    memcpy(buf + *n, s->pend + s->pend_off, take);
    s->pend_off += take;
    *n += take;
  }
  if (s->phase == 4 && s->pend_off == s->pend_len && s->txn != NULL) {
    /* all read: let the old file go as soon as possible */
    if (s->cur)
      mdb_cursor_close(s->cur);
    s->cur = NULL;
    mdb_cursor_close(s->kc);
    s->kc = NULL;
    store_read_end(s->st, s->db, s->txn);
    s->txn = NULL;
  }
  return 0;
}

void store_snapshot_digest(struct store_snapshot *s, uint8_t sha256[32],
                           uint64_t *size) {
  memcpy(sha256, s->digest, 32);
  *size = s->size;
}

void store_snapshot_close(struct store_snapshot *s) {
  if (s == NULL)
    return;
  if (s->cur)
    mdb_cursor_close(s->cur);
  if (s->kc)
    mdb_cursor_close(s->kc);
  if (s->txn)
    store_read_end(s->st, s->db, s->txn);
  EVP_MD_CTX_free(s->sha);
  free(s->pend);
  free(s);
}

/* --- restore -----------------------------------------------------------------
 */

enum { R_HEADER, R_RECORDS, R_TRAILER, R_DONE, R_FAILED };

struct store_restore {
  struct store *st;
  struct store_db *db; /* the new file */
  MDB_txn *txn;
  int state;
  uint8_t *buf; /* the unit being assembled */
  size_t have, need;
  bool in_payload;
  uint8_t rec_db;
  uint32_t klen, vlen;
  EVP_MD_CTX *sha;
  uint64_t count, index, term, txn_bytes;
  uint8_t last_key[DB_COUNT][STORE_KEY_MAX + 16];
  size_t last_len[DB_COUNT];
  bool seen[DB_COUNT];
  int last_db;
  char path[4096];
};

static int restore_fail(struct store_restore *r, int rc, const char *why) {
  keel_logkv(KEEL_LOG_ERROR, "store", "snapshot restore refused",
             "reason=\"%s\" err=%s", why, keel_err_name(rc));
  r->state = R_FAILED;
  return rc;
}

int store_restore_begin(struct store *st, struct store_restore **out) {
  *out = NULL;
  struct store_restore *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return -ENOMEM;
  r->st = st;
  r->buf = malloc(SNAP_REC_MAX + SNAP_REC_HDR);
  r->sha = EVP_MD_CTX_new();
  if (r->buf == NULL || r->sha == NULL ||
      EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) {
    free(r->buf);
    EVP_MD_CTX_free(r->sha);
    free(r);
    return -ENOMEM;
  }
  uint32_t gen = st->db->gen + 1;
  store_gen_path(st, gen, r->path, sizeof(r->path));
  char lock[4200];
  snprintf(lock, sizeof(lock), "%s-lock", r->path);
  unlink(r->path);
  unlink(lock);
  int rc = store_db_open(st, r->path, gen, &r->db);
  if (rc == 0) {
    /* Not live until CURRENT names it: sync once at the end. */
    mdb_env_set_flags(r->db->env, MDB_NOSYNC, 1);
    rc = store_mdb_err(mdb_txn_begin(r->db->env, NULL, 0, &r->txn));
  }
  if (rc != 0) {
    store_db_close(r->db);
    unlink(r->path);
    unlink(lock);
    free(r->buf);
    EVP_MD_CTX_free(r->sha);
    free(r);
    return rc;
  }
  r->state = R_HEADER;
  r->need = SNAP_HDR;
  r->last_db = -1;
  *out = r;
  return 0;
}

/* Stores one record; records must come DB by DB in LMDB order. */
static int restore_record(struct store_restore *r) {
  uint8_t db = r->rec_db;
  const uint8_t *key = r->buf + SNAP_REC_HDR;
  const uint8_t *val = key + r->klen;
  if (!snap_db_known(db))
    return restore_fail(r, KEEL_ECORRUPT, "unknown table in stream");
  if ((int)db != r->last_db) {
    if (r->seen[db] || (int)db < r->last_db)
      return restore_fail(r, KEEL_ECORRUPT, "tables out of order");
    r->seen[db] = true;
    r->last_db = db;
  }
  if (r->klen == 0 || r->klen > STORE_KEY_MAX + 16)
    return restore_fail(r, KEEL_ECORRUPT, "bad key length");
  MDB_val k = {r->klen, (void *)key}, d = {r->vlen, (void *)val};
  unsigned flags = 0;
  if (db == DB_KV_KEY) {
    flags = MDB_APPENDDUP;
    if (r->vlen != 40)
      return restore_fail(r, KEEL_ECORRUPT, "bad revision item");
  } else if (db != DB_META) {
    flags = MDB_APPEND;
  } else {
    if (r->last_len[db] &&
        bytes_cmp(key, r->klen, r->last_key[db], r->last_len[db]) <= 0)
      return restore_fail(r, KEEL_ECORRUPT, "meta keys out of order");
    memcpy(r->last_key[db], key, r->klen);
    r->last_len[db] = r->klen;
    if (r->klen == 6 && memcmp(key, "format", 6) == 0) {
      if (r->vlen != 8 || be64_get(val) != 1)
        return restore_fail(r, KEEL_EVERSION, "stream format");
    }
  }
  int rc = mdb_put(r->txn, r->db->dbi[db], &k, &d, flags);
  if (rc == MDB_KEYEXIST)
    return restore_fail(r, KEEL_ECORRUPT, "records out of order");
  if (rc != 0)
    return restore_fail(r, store_mdb_err(rc), "cannot write record");
  r->count++;
  r->txn_bytes += r->klen + r->vlen + 64;
  if (r->txn_bytes >= RESTORE_TXN_BYTES) {
    rc = mdb_txn_commit(r->txn);
    r->txn = NULL;
    if (rc == 0)
      rc = mdb_txn_begin(r->db->env, NULL, 0, &r->txn);
    if (rc != 0)
      return restore_fail(r, store_mdb_err(rc), "cannot write record");
    r->txn_bytes = 0;
  }
  return 0;
}

/* Consumes one complete unit in buf[0..need). */
static int restore_unit(struct store_restore *r) {
  switch (r->state) {
  case R_HEADER:
    if (memcmp(r->buf, SNAP_MAGIC, 8) != 0)
      return restore_fail(r, KEEL_ECORRUPT, "not a keel snapshot");
    if (be32_get(r->buf + 8) != SNAP_VERSION)
      return restore_fail(r, KEEL_EVERSION, "snapshot version");
    r->index = be64_get(r->buf + 12);
    r->term = be64_get(r->buf + 20);
    EVP_DigestUpdate(r->sha, r->buf, SNAP_HDR);
    r->state = R_RECORDS;
    r->need = SNAP_REC_HDR;
    r->in_payload = false;
    return 0;
  case R_RECORDS:
    if (!r->in_payload) {
      r->rec_db = r->buf[0];
      r->klen = be32_get(r->buf + 1);
      r->vlen = be32_get(r->buf + 5);
      if ((uint64_t)r->klen + r->vlen > SNAP_REC_MAX)
        return restore_fail(r, KEEL_ETOOLARGE, "record too large");
      if (r->rec_db == SNAP_END_DB && (r->klen != 0 || r->vlen != 8))
        return restore_fail(r, KEEL_ECORRUPT, "bad end record");
      r->in_payload = true;
      r->need = SNAP_REC_HDR + r->klen + r->vlen;
      if (r->need > SNAP_REC_HDR)
        return 0;
    }
    EVP_DigestUpdate(r->sha, r->buf, r->need);
    r->in_payload = false;
    if (r->rec_db == SNAP_END_DB) {
      if (be64_get(r->buf + SNAP_REC_HDR) != r->count)
        return restore_fail(r, KEEL_ECORRUPT, "record count mismatch");
      r->state = R_TRAILER;
      r->need = 32;
      return 0;
    }
    r->need = SNAP_REC_HDR;
    return restore_record(r);
  case R_TRAILER: {
    uint8_t digest[32];
    unsigned len = 32;
    if (EVP_DigestFinal_ex(r->sha, digest, &len) != 1)
      return restore_fail(r, -EIO, "digest");
    if (memcmp(digest, r->buf, 32) != 0)
      return restore_fail(r, KEEL_ECORRUPT, "SHA-256 mismatch");
    r->state = R_DONE;
    r->need = 0;
    return 0;
  }
  default:
    return restore_fail(r, KEEL_ECORRUPT, "bytes after the end of stream");
  }
}

int store_restore_write(struct store_restore *r, const uint8_t *data,
                        size_t len) {
  if (r->state == R_FAILED)
    return KEEL_ECORRUPT;
  while (len > 0) {
    if (r->state == R_DONE)
      return restore_fail(r, KEEL_ECORRUPT, "bytes after the end of stream");
    size_t take = r->need - r->have;
    if (take > len)
      take = len;
    memcpy(r->buf + r->have, data, take);
    r->have += take;
    data += take;
    len -= take;
    if (r->have == r->need) {
      int rc = restore_unit(r);
      if (rc != 0)
        return rc;
      /* a record header may grow into its payload: keep the bytes */
      if (!(r->state == R_RECORDS && r->in_payload))
        r->have = 0;
    }
  }
  return 0;
}

void store_restore_abort(struct store_restore *r) {
  if (r == NULL)
    return;
  if (r->txn)
    mdb_txn_abort(r->txn);
  if (r->db) {
    char lock[4200];
    snprintf(lock, sizeof(lock), "%s-lock", r->path);
    store_db_close(r->db);
    unlink(r->path);
    unlink(lock);
  }
  EVP_MD_CTX_free(r->sha);
  free(r->buf);
  free(r);
}

int store_restore_finish(struct store_restore *r,
                         const struct store_conf_state *conf) {
  struct store *st = r->st;
  int rc = 0;
  if (r->state != R_DONE) {
    rc = r->state == R_FAILED
             ? KEEL_ECORRUPT
             : restore_fail(r, KEEL_ECORRUPT, "stream ends early");
    store_restore_abort(r);
    return rc;
  }
  struct store_db *db = r->db;
  uint64_t applied = 0;
  if (meta_get_u64(db, r->txn, "applied_index", &applied) != 0)
    applied = 0;
  if (applied != r->index) {
    rc = restore_fail(r, KEEL_ECORRUPT, "applied index differs from header");
    store_restore_abort(r);
    return rc;
  }
  /* Raft state: keep this node's term and vote; the log restarts at the
   * snapshot. */
  struct store_hard_state hs;
  struct store_conf_state cs;
  if ((rc = store_log_load_state(st, &hs, &cs)) != 0) {
    store_restore_abort(r);
    return rc;
  }
  if (hs.commit < r->index)
    hs.commit = r->index;
  uint8_t b[24 + 16 + CONF_ENC_MAX];
  be64_put(b, hs.term);
  be64_put(b + 8, hs.vote);
  be64_put(b + 16, hs.commit);
  MDB_val k = {10, "hard_state"}, d = {24, b};
  rc = mdb_put(r->txn, db->dbi[DB_RAFT_STATE], &k, &d, 0);
  uint8_t base[16];
  be64_put(base, r->index);
  be64_put(base + 8, r->term);
  MDB_val bk = {8, "log_base"}, bd = {16, base};
  if (rc == 0)
    rc = mdb_put(r->txn, db->dbi[DB_RAFT_STATE], &bk, &bd, 0);
  if (rc == 0) {
    uint8_t sm[16 + CONF_ENC_MAX];
    be64_put(sm, r->index);
    be64_put(sm + 8, r->term);
    struct store_conf_state snapconf;
    if (conf != NULL) {
      snapconf = *conf;
    } else {
      MDB_val ck = {4, "conf"}, cd;
      memset(&snapconf, 0, sizeof(snapconf));
      if (mdb_get(r->txn, db->dbi[DB_META], &ck, &cd) == 0 &&
          conf_decode(cd.mv_data, cd.mv_size, &snapconf) != 0) {
        rc = restore_fail(r, KEEL_ECORRUPT, "bad conf state");
        store_restore_abort(r);
        return rc;
      }
    }
    size_t n = conf_encode(&snapconf, sm + 16);
    MDB_val sk = {8, "snapshot"}, sd = {16 + n, sm};
    rc = mdb_put(r->txn, db->dbi[DB_RAFT_STATE], &sk, &sd, 0);
    if (rc == 0 && conf != NULL) {
      MDB_val ck = {4, "conf"}, cd = {n, sm + 16};
      rc = mdb_put(r->txn, db->dbi[DB_META], &ck, &cd, 0);
    }
  }
  if (rc == 0) {
    rc = mdb_txn_commit(r->txn);
    r->txn = NULL;
  }
  if (rc == 0) {
    mdb_env_set_flags(db->env, MDB_NOSYNC, 0);
    rc = mdb_env_sync(db->env, 1);
  }
  struct store_cache c;
  if (rc == 0) {
    MDB_txn *txn;
    rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
      /* The digest proves the bytes arrived as sent, not that the sender's
       * state was sound: check the invariants before switching to it. */
      rc = store_verify_db(db, txn);
      if (rc == 0)
        rc = store_load_cache(db, txn, &c);
      mdb_txn_abort(txn);
      if (rc != 0) {
        int err = rc;
        restore_fail(r, err, "restored state is inconsistent");
        store_restore_abort(r);
        return err;
      }
    }
  }
  if (rc != 0) {
    rc = store_mdb_err(rc);
    store_restore_abort(r);
    return rc;
  }
  /* The commit point. */
  if ((rc = store_set_current(st, db->gen)) != 0) {
    store_restore_abort(r);
    return rc;
  }
  r->db = NULL;
  store_swap_db(st, db);
  pthread_mutex_lock(&st->mu);
  st->cache = c;
  pthread_mutex_unlock(&st->mu);
  keel_logkv(KEEL_LOG_INFO, "store", "snapshot restored",
             "index=%llu term=%llu records=%llu", (unsigned long long)r->index,
             (unsigned long long)r->term, (unsigned long long)r->count);
  EVP_MD_CTX_free(r->sha);
  free(r->buf);
  free(r);
  return 0;
}

/* --- auto-compaction
 * ------------------------------------------------------------ */

int store_autocompact_init(struct store_autocompact *ac,
                           enum store_autocompact_mode mode,
                           int64_t retention) {
  memset(ac, 0, sizeof(*ac));
  ac->mode = mode;
  ac->retention = retention;
  switch (mode) {
  case STORE_AUTOCOMPACT_OFF:
    return 0;
  case STORE_AUTOCOMPACT_PERIODIC:
    if (retention <= 0)
      return -EINVAL;
    ac->interval_ms = retention / 10 > 0 ? retention / 10 : 1;
    return 0;
  case STORE_AUTOCOMPACT_REVISION:
    if (retention <= 0)
      return -EINVAL;
    ac->interval_ms = 5 * 60 * 1000;
    return 0;
  }
  return -EINVAL;
}

int64_t store_autocompact_tick(struct store_autocompact *ac, int64_t now_ms,
                               int64_t current_rev, int64_t compacted_rev) {
  if (ac->mode == STORE_AUTOCOMPACT_OFF)
    return 0;
  if (!ac->started) {
    ac->started = true;
    ac->last_ms = now_ms;
    if (ac->mode == STORE_AUTOCOMPACT_PERIODIC) {
      ac->sample_ms[0] = now_ms;
      ac->sample_rev[0] = current_rev;
      ac->n_samples = 1;
    }
    return 0;
  }
  if (now_ms - ac->last_ms < ac->interval_ms)
    return 0;
  ac->last_ms = now_ms;
  int64_t target = 0;
  if (ac->mode == STORE_AUTOCOMPACT_REVISION) {
    target = current_rev - ac->retention;
  } else {
    /* keep the samples as a window: drop the oldest when full */
    if (ac->n_samples == STORE_AUTOCOMPACT_SAMPLES) {
      memmove(ac->sample_ms, ac->sample_ms + 1,
              (STORE_AUTOCOMPACT_SAMPLES - 1) * sizeof(int64_t));
      memmove(ac->sample_rev, ac->sample_rev + 1,
              (STORE_AUTOCOMPACT_SAMPLES - 1) * sizeof(int64_t));
      ac->n_samples--;
    }
    ac->sample_ms[ac->n_samples] = now_ms;
    ac->sample_rev[ac->n_samples] = current_rev;
    ac->n_samples++;
    /* the newest sample taken at least `retention` ago */
    for (int i = ac->n_samples - 1; i >= 0; i--)
      if (now_ms - ac->sample_ms[i] >= ac->retention) {
        target = ac->sample_rev[i];
        break;
      }
  }
  if (target > current_rev)
    target = current_rev;
  return target > compacted_rev ? target : 0;
}

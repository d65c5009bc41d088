/* http_ofrep.c — OFREP single and bulk evaluation over the http_kv_reader,
 * with a bounded LRU of compiled flag sets.
 *
 * A request goes: check method, path, set name and body size -> parse the
 * context -> read barrier -> current revision R -> identity of the set at R
 * (one keys-only range: count of keys and highest mod revision) -> the
 * compiled set from the cache, or a full range at R and a build -> evaluate
 * -> respond.
 *
 * Why (count, max mod revision) identifies a set's content: every put gets
 * a revision above every earlier one, so between two states of the prefix
 * either a surviving put raised the maximum, or only deletes happened and
 * the count fell (a put that was deleted again leaves both unchanged, and
 * then so is the content). docs/decisions/0822-ofrep-set-identity.md.
 *
 * Invariants: one keel_http_respond() per request; a cache entry holds one
 * reference to its set, a request that evaluates takes its own.
 */
#define _GNU_SOURCE
#include "http_ofrep.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "flags.h"
#include "keel_error.h"
#include "keel_log.h"

#define LOG_COMP "ofrep"
#define BASE "/ofrep/v1/evaluate/flags"
#define MAX_SET_NAME 128

struct cache_ent {
  char *set;
  int64_t count, max_mod;
  struct flags_set *fs;
  uint64_t used; /* LRU clock */
};

struct http_ofrep {
  struct http_kv_reader rd;
  struct http_ofrep_options opt;
  char *default_set;
  struct cache_ent *cache;
  size_t n_cache;
  uint64_t clock;
  struct http_ofrep_stats stats;
};

struct ofrep_job {
  http_ofrep *o;
  keel_http_request *req;
  char *set;
  char *key; /* NULL for bulk */
  json_t *ctx;
  char *if_none_match; /* NULL when absent */
};

void http_ofrep_options_default(struct http_ofrep_options *o) {
  memset(o, 0, sizeof(*o));
  o->max_body_bytes = 64 * 1024;
  o->cache_sets = 16;
}

static int set_name_ok(const char *s, size_t n) {
  if (n == 0 || n > MAX_SET_NAME)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '/' || (unsigned char)s[i] < 0x21 || s[i] == 0x7f)
      return 0;
  return 1;
}

/* ---- responses ----------------------------------------------------------- */

static void respond_json(keel_http_request *req, int status, json_t *o,
                         const char *extra) {
  char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (body == NULL) {
    keel_http_respond(req, 500, "application/json",
                      "{\"errorDetails\":\"out of memory\"}", 32, NULL);
    return;
  }
  keel_http_respond(req, status, "application/json", body, strlen(body), extra);
  free(body);
}

/* {key?, errorCode, errorDetails} (the key is omitted for bulk failures). */
static json_t *failure(const char *key, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *failure(const char *key, const char *code, const char *fmt,
                       ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  json_t *o = json_object();
  if (o == NULL)
    return NULL;
  if (key)
    json_object_set_new(o, "key", json_string(key));
  json_object_set_new(o, "errorCode", json_string(code));
  json_t *d = json_string(msg);
  json_object_set_new(o, "errorDetails", d ? d : json_string("(not UTF-8)"));
  return o;
}

/* One evaluation as OFREP's evaluationSuccess / evaluationFailure. *status
 * gets the HTTP status the single-flag endpoint answers with. */
static json_t *eval_json(const char *key, const struct flags_result *r,
                         int *status) {
  if (r->reason == FLAGS_REASON_ERROR) {
    *status = r->error_code == FLAGS_ERROR_FLAG_NOT_FOUND ? 404 : 400;
    return failure(key, flags_error_code_name(r->error_code), "%s",
                   r->error_message[0] ? r->error_message
                                       : flags_error_code_name(r->error_code));
  }
  *status = 200;
  json_t *o = json_object();
  if (o == NULL)
    return NULL;
  json_object_set_new(o, "key", json_string(key));
  json_object_set_new(o, "reason", json_string(flags_reason_name(r->reason)));
  /* No value (DISABLED, or no default variant): the code default applies,
   * OFREP's codeDefaultFlag (protocol ADR 0006) — value and variant left
   * out. */
  if (r->value != NULL) {
    json_object_set_new(o, "variant", json_string(r->variant));
    json_object_set(o, "value", (json_t *)r->value);
  }
  json_object_set_new(
      o, "metadata", r->metadata ? json_deep_copy(r->metadata) : json_object());
  return o;
}

/* ---- the set at one revision --------------------------------------------- */

static void cache_put(http_ofrep *o, const char *set, int64_t count,
                      int64_t max_mod, struct flags_set *fs) {
  size_t slot = o->n_cache;
  if (o->n_cache == o->opt.cache_sets) { /* evict the least recently used */
    slot = 0;
    for (size_t i = 1; i < o->n_cache; i++)
      if (o->cache[i].used < o->cache[slot].used)
        slot = i;
    free(o->cache[slot].set);
    flags_set_unref(o->cache[slot].fs);
  } else {
    o->n_cache++;
  }
  struct cache_ent *e = &o->cache[slot];
  e->set = strdup(set);
  e->count = count;
  e->max_mod = max_mod;
  e->fs = flags_set_ref(fs);
  e->used = ++o->clock;
  if (e->set == NULL) { /* drop the entry rather than keep a nameless one */
    flags_set_unref(e->fs);
    *e = o->cache[--o->n_cache];
  }
}

static int range_prefix(http_ofrep *o, const char *prefix, int64_t rev,
                        int keys_only, struct store_range_result *r) {
  size_t pl = strlen(prefix);
  char end[MAX_SET_NAME + 16];
  memcpy(end, prefix, pl);
  end[pl - 1]++; /* "/" -> "0" */
  struct store_range_req q = {.key = (const uint8_t *)prefix,
                              .key_len = pl,
                              .range_end = (const uint8_t *)end,
                              .range_end_len = pl,
                              .revision = rev};
  if (keys_only) {
    q.keys_only = true;
    q.limit = 1;
    q.sort_order = STORE_SORT_DESCEND;
    q.sort_target = STORE_SORT_MOD;
  } else {
    q.limit = FLAGS_MAX_FLAGS + 2; /* the flags and $evaluators, +1 to see */
  }
  return o->rd.range(o->rd.ctx, &q, r);
}

/* The compiled set `set` at the current revision (a new reference in *out;
 * NULL for a set with no keys), and its identity. Returns 0 or a keel code
 * (msg filled). */
static int load_set(http_ofrep *o, const char *set, struct flags_set **out,
                    int64_t *count, int64_t *max_mod, char *msg, size_t mlen) {
  *out = NULL;
  int64_t cur = 0, comp = 0;
  int rc = o->rd.current_revision(o->rd.ctx, &cur, &comp);
  if (rc < 0) {
    snprintf(msg, mlen, "read failed: %s", keel_strerror(rc));
    return rc;
  }
  char prefix[MAX_SET_NAME + 16];
  snprintf(prefix, sizeof(prefix), "/flags/%s/", set);
  struct store_range_result r;
  rc = range_prefix(o, prefix, cur, 1, &r);
  if (rc < 0) {
    snprintf(msg, mlen, "read failed: %s", keel_strerror(rc));
    return rc;
  }
  *count = r.resp.count;
  *max_mod = r.resp.n_kvs ? r.resp.kvs[0].mod_revision : 0;
  store_range_result_free(&r);
  if (*count == 0)
    return 0;
  for (size_t i = 0; i < o->n_cache; i++) {
    struct cache_ent *e = &o->cache[i];
    if (e->count == *count && e->max_mod == *max_mod &&
        strcmp(e->set, set) == 0) {
      e->used = ++o->clock;
      o->stats.cache_hits++;
      *out = flags_set_ref(e->fs);
      return 0;
    }
  }
  rc = range_prefix(o, prefix, cur, 0, &r);
  if (rc < 0) {
    snprintf(msg, mlen, "read failed: %s", keel_strerror(rc));
    return rc;
  }
  if (r.resp.more || r.resp.n_kvs > FLAGS_MAX_FLAGS + 1) {
    store_range_result_free(&r);
    snprintf(msg, mlen, "flag set '%s' has more than %u flags", set,
             FLAGS_MAX_FLAGS);
    return KEEL_ELIMIT;
  }
  struct flags_builder *b = flags_builder_new();
  if (b == NULL) {
    store_range_result_free(&r);
    snprintf(msg, mlen, "out of memory");
    return -ENOMEM;
  }
  size_t pl = strlen(prefix);
  char err[256];
  /* $evaluators first (the builder wants it before any flag) */
  for (size_t i = 0; i < r.resp.n_kvs; i++) {
    const struct store_kv *kv = &r.resp.kvs[i];
    if (kv->key_len == pl + 11 &&
        memcmp(kv->key + pl, "$evaluators", 11) == 0 &&
        flags_builder_set_evaluators(b, (const char *)kv->value, kv->value_len,
                                     err, sizeof(err)) < 0)
      keel_logkv(KEEL_LOG_WARN, LOG_COMP, "stored $evaluators not usable",
                 "set=%s err=\"%s\"", set, err);
  }
  for (size_t i = 0; i < r.resp.n_kvs; i++) {
    const struct store_kv *kv = &r.resp.kvs[i];
    size_t kl = kv->key_len - pl;
    if ((kl == 11 && memcmp(kv->key + pl, "$evaluators", 11) == 0) || kl == 0 ||
        kl > FLAGS_MAX_KEY_BYTES)
      continue;
    char fkey[FLAGS_MAX_KEY_BYTES + 1];
    memcpy(fkey, kv->key + pl, kl);
    fkey[kl] = 0;
    if (strlen(fkey) != kl || strchr(fkey, '/'))
      continue;
    if (flags_builder_add(b, fkey, (const char *)kv->value, kv->value_len, err,
                          sizeof(err)) < 0)
      keel_logkv(KEEL_LOG_WARN, LOG_COMP, "stored flag skipped",
                 "set=%s flag=%s err=\"%s\"", set, fkey, err);
  }
  store_range_result_free(&r);
  struct flags_set *fs = NULL;
  rc = flags_builder_build(b, &fs, err, sizeof(err));
  flags_builder_free(b);
  if (rc < 0) {
    snprintf(msg, mlen, "flag set '%s' cannot be built: %s", set, err);
    return rc;
  }
  o->stats.builds++;
  cache_put(o, set, *count, *max_mod, fs);
  *out = fs; /* the build's reference goes to the caller */
  return 0;
}

/* ---- ETag ------------------------------------------------------------------
 */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ull;
  }
  return h;
}

/* "<max_mod>-<count>-<16 hex of FNV-1a over set, count, max_mod, context>" */
static void make_etag(char *out, size_t n, const char *set, int64_t count,
                      int64_t max_mod, const json_t *ctx) {
  uint64_t h = 14695981039346656037ull;
  h = fnv(h, set, strlen(set) + 1);
  h = fnv(h, &count, sizeof(count));
  h = fnv(h, &max_mod, sizeof(max_mod));
  char *c =
      ctx ? json_dumps(ctx, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
          : NULL;
  if (c) {
    h = fnv(h, c, strlen(c));
    free(c);
  }
  snprintf(out, n, "\"%lld-%lld-%016llx\"", (long long)max_mod,
           (long long)count, (unsigned long long)h);
}

/* RFC 9110 If-None-Match: "*" or a list of entity tags (weak comparison). */
static int etag_matches(const char *inm, const char *etag) {
  size_t el = strlen(etag);
  const char *p = inm;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (*p == '*')
      return 1;
    if (strncmp(p, "W/", 2) == 0)
      p += 2;
    if (strncmp(p, etag, el) == 0 &&
        (p[el] == 0 || p[el] == ',' || p[el] == ' ' || p[el] == '\t'))
      return 1;
    while (*p && *p != ',')
      p++;
  }
  return 0;
}

/* ---- serving ---------------------------------------------------------------
 */

static void job_free(struct ofrep_job *j) {
  free(j->set);
  free(j->key);
  json_decref(j->ctx);
  free(j->if_none_match);
  free(j);
}

static void serve(struct ofrep_job *j) {
  http_ofrep *o = j->o;
  struct flags_set *fs = NULL;
  int64_t count = 0, max_mod = 0;
  char msg[400];
  int rc = load_set(o, j->set, &fs, &count, &max_mod, msg, sizeof(msg));
  if (rc < 0) {
    respond_json(j->req, 500, failure(NULL, "GENERAL", "%s", msg), NULL);
    return;
  }
  int64_t now = o->opt.now ? o->opt.now(o->opt.now_ud) : (int64_t)time(NULL);
  if (j->key != NULL) {
    struct flags_result res;
    int status;
    json_t *body;
    if (fs == NULL) {
      status = 404;
      body = failure(j->key, "FLAG_NOT_FOUND",
                     "flag '%s' not found in flag set '%s'", j->key, j->set);
    } else {
      flags_evaluate(fs, j->key, FLAGS_TYPE_ANY, j->ctx, now, &res);
      o->stats.evaluations++;
      if (res.error_code == FLAGS_ERROR_FLAG_NOT_FOUND)
        snprintf(res.error_message, sizeof(res.error_message),
                 "flag '%s' not found in flag set '%s'", j->key, j->set);
      body = eval_json(j->key, &res, &status);
    }
    respond_json(j->req, status, body, NULL);
    flags_set_unref(fs);
    return;
  }
  char etag[96], hdr[128];
  make_etag(etag, sizeof(etag), j->set, count, max_mod, j->ctx);
  snprintf(hdr, sizeof(hdr), "ETag: %s\r\n", etag);
  if (j->if_none_match && etag_matches(j->if_none_match, etag)) {
    keel_http_respond(j->req, 304, NULL, NULL, 0, hdr);
    flags_set_unref(fs);
    return;
  }
  json_t *arr = json_array();
  size_t n = fs ? flags_set_count(fs) : 0;
  for (size_t i = 0; i < n && arr; i++) {
    const char *k = flags_set_key(fs, i);
    struct flags_result res;
    int st;
    flags_evaluate(fs, k, FLAGS_TYPE_ANY, j->ctx, now, &res);
    o->stats.evaluations++;
    json_t *e = eval_json(k, &res, &st);
    if (e == NULL || json_array_append_new(arr, e) < 0) {
      json_decref(arr);
      arr = NULL;
    }
  }
  json_t *body = arr ? json_object() : NULL;
  if (body)
    json_object_set_new(body, "flags", arr);
  else
    json_decref(arr);
  respond_json(j->req, 200, body, hdr);
  flags_set_unref(fs);
}

static void after_barrier(void *arg, int err) {
  struct ofrep_job *j = arg;
  if (err < 0) /* no leader, busy, timed out, stopping: the node cannot
                  serve a read now, another node (or a retry) may */
    respond_json(j->req, 503,
                 failure(j->key, "GENERAL", "linearizable read failed: %s",
                         keel_strerror(err)),
                 NULL);
  else
    serve(j);
  job_free(j);
}

static int header_value(const struct keel_http1_head *h, const char *name,
                        const char **v, size_t *vl) {
  const struct keel_http1_header *x = keel_http1_find_header(h, name);
  if (x == NULL)
    return 0;
  *v = x->value;
  *vl = x->value_len;
  return 1;
}

void http_ofrep_handle(keel_http_request *req, void *ud) {
  http_ofrep *o = ud;
  const struct keel_http1_head *h = keel_http_request_head(req);
  if (!(h->method_len == 4 && memcmp(h->method, "POST", 4) == 0)) {
    keel_http_respond(req, 405, "text/plain; charset=utf-8",
                      "method not allowed: use POST\n", 29, "Allow: POST\r\n");
    return;
  }
  size_t bl = sizeof(BASE) - 1;
  char *key = NULL;
  if (h->path_len < bl || memcmp(h->path, BASE, bl) != 0 ||
      (h->path_len > bl && h->path[bl] != '/')) {
    keel_http_respond(req, 404, "text/plain; charset=utf-8", "not found\n", 10,
                      NULL);
    return;
  }
  if (h->path_len > bl) { /* single: /flags/{key} */
    const char *k = h->path + bl + 1;
    size_t kl = h->path_len - bl - 1;
    int bad = 0;
    if (kl > 3 * FLAGS_MAX_KEY_BYTES) {
      respond_json(req, 400,
                   failure("", "GENERAL", "flag key longer than %u bytes",
                           FLAGS_MAX_KEY_BYTES),
                   NULL);
      return;
    }
    key = http_percent_decode(k, kl, &bad);
    json_t *utf8 = key ? json_string(key) : NULL; /* NULL: not UTF-8 */
    int key_ok = utf8 != NULL;
    json_decref(utf8);
    if (key == NULL || !key_ok || key[0] == 0 || strchr(key, '/') ||
        strlen(key) > FLAGS_MAX_KEY_BYTES) {
      int oom = key == NULL && !bad;
      free(key);
      if (oom)
        respond_json(req, 500, NULL, NULL);
      else
        respond_json(req, 400,
                     failure("", "GENERAL",
                             "bad flag key in path: empty, '/', not UTF-8, "
                             "a malformed escape, or longer than %u bytes",
                             FLAGS_MAX_KEY_BYTES),
                     NULL);
      return;
    }
  }
  const char *fkey = key; /* NULL for bulk: failures then carry no key */
  const char *sv;
  size_t sl;
  char *set = NULL;
  if (header_value(h, "X-Keel-Flag-Set", &sv, &sl)) {
    if (!set_name_ok(sv, sl)) {
      respond_json(req, 400,
                   failure(fkey, "GENERAL",
                           "bad X-Keel-Flag-Set: 1..%d bytes, no '/', no "
                           "blanks or control characters",
                           MAX_SET_NAME),
                   NULL);
      free(key);
      return;
    }
    set = strndup(sv, sl);
  } else if (o->default_set) {
    set = strdup(o->default_set);
  } else {
    respond_json(req, 400,
                 failure(fkey, "GENERAL",
                         "no flag set: send the header X-Keel-Flag-Set"),
                 NULL);
    free(key);
    return;
  }
  size_t blen = 0;
  const uint8_t *body = keel_http_request_body(req, &blen);
  if (blen > o->opt.max_body_bytes) {
    respond_json(req, 413,
                 failure(fkey, "GENERAL",
                         "request body is %zu bytes (limit "
                         "%zu)",
                         blen, o->opt.max_body_bytes),
                 NULL);
    free(key);
    free(set);
    return;
  }
  json_t *ctx = NULL;
  if (blen > 0) {
    json_error_t je;
    json_t *doc =
        json_loadb((const char *)body, blen, JSON_REJECT_DUPLICATES, &je);
    const char *why = NULL;
    if (doc == NULL)
      why = je.text;
    else if (!json_is_object(doc))
      why = "the body must be a JSON object {\"context\": {...}}";
    else {
      json_t *c = json_object_get(doc, "context");
      if (c != NULL && !json_is_object(c) && !json_is_null(c))
        why = "\"context\" must be an object";
      else if (json_is_object(c))
        ctx = json_incref(c);
    }
    if (why) {
      char w[256];
      if (doc == NULL)
        snprintf(w, sizeof(w), "%s (line %d, column %d)", why, je.line,
                 je.column);
      else
        snprintf(w, sizeof(w), "%s", why);
      json_decref(doc);
      respond_json(req, 400,
                   failure(fkey, "INVALID_CONTEXT", "bad request body: %s", w),
                   NULL);
      free(key);
      free(set);
      return;
    }
    json_decref(doc);
  }
  struct ofrep_job *j = calloc(1, sizeof(*j));
  if (j == NULL || set == NULL) {
    free(j);
    free(key);
    free(set);
    json_decref(ctx);
    respond_json(req, 500, NULL, NULL);
    return;
  }
  j->o = o;
  j->req = req;
  j->set = set;
  j->key = key;
  j->ctx = ctx;
  const char *inm;
  size_t inml;
  if (key == NULL && header_value(h, "If-None-Match", &inm, &inml))
    j->if_none_match = strndup(inm, inml);
  if (o->rd.read_barrier)
    o->rd.read_barrier(o->rd.ctx, after_barrier, j);
  else
    after_barrier(j, 0);
}

int http_ofrep_new(const struct http_kv_reader *reader,
                   const struct http_ofrep_options *opts, http_ofrep **out) {
  if (reader == NULL || reader->current_revision == NULL ||
      reader->range == NULL || out == NULL)
    return -EINVAL;
  struct http_ofrep_options op;
  if (opts)
    op = *opts;
  else
    http_ofrep_options_default(&op);
  if (op.max_body_bytes == 0 || op.cache_sets == 0 ||
      (op.default_set && !set_name_ok(op.default_set, strlen(op.default_set))))
    return -EINVAL;
  http_ofrep *o = calloc(1, sizeof(*o));
  if (o == NULL)
    return -ENOMEM;
  o->rd = *reader;
  o->opt = op;
  o->cache = calloc(op.cache_sets, sizeof(*o->cache));
  o->default_set = op.default_set ? strdup(op.default_set) : NULL;
  if (o->cache == NULL || (op.default_set && o->default_set == NULL)) {
    http_ofrep_free(o);
    return -ENOMEM;
  }
  o->opt.default_set = o->default_set;
  *out = o;
  return 0;
}

int http_ofrep_register(http_ofrep *o, keel_client_listener *l) {
  return keel_client_listener_route(l, NULL, BASE, http_ofrep_handle, o);
}

void http_ofrep_stats(const http_ofrep *o, struct http_ofrep_stats *out) {
  *out = o->stats;
}

void http_ofrep_free(http_ofrep *o) {
  if (o == NULL)
    return;
  for (size_t i = 0; i < o->n_cache; i++) {
    free(o->cache[i].set);
    flags_set_unref(o->cache[i].fs);
  }
  free(o->cache);
  free(o->default_set);
  free(o);
}

/* http_config.c — the Spring Cloud Config Server-compatible endpoints
 * (/config/...) over the http_kv_reader, and the store-backed reader.
 *
 * A request goes: parse the path (percent-decoding each segment) -> read
 * barrier (if the reader has one) -> pick the revision R (label or current)
 * -> read every source of profiles_merge_order() at R -> render. Nothing is
 * read at any other revision than R, which is why a response is always one
 * consistent snapshot (tested by writing between the range calls).
 *
 * Invariant: every request gets exactly one keel_http_respond(), and a job
 * (struct cfg_job) lives from the handler to that call.
 */
#define _GNU_SOURCE /* asprintf, strncasecmp */
#include "http_config.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keel_error.h"
#include "keel_log.h"
#include "profiles.h"

#define LOG_COMP "http-config"
#define V2_MEDIA "application/vnd.spring-cloud.config-server.v2+json"

struct http_config {
  struct http_kv_reader rd;
  struct http_config_limits lim;
};

/* ---- the store-backed reader ------------------------------------------- */

static int store_cur_rev(void *ctx, int64_t *cur, int64_t *comp) {
  return store_revisions(ctx, cur, comp);
}

static int store_rng(void *ctx, const struct store_range_req *req,
                     struct store_range_result *out) {
  return store_range(ctx, req, out);
}

void http_kv_reader_from_store(struct store *st, struct http_kv_reader *out) {
  memset(out, 0, sizeof(*out));
  out->ctx = st;
  out->current_revision = store_cur_rev;
  out->range = store_rng;
}

/* ---- helpers ------------------------------------------------------------ */

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

char *http_percent_decode(const char *in, size_t len, int *bad) {
  *bad = 0;
  char *out = malloc(len + 1);
  if (out == NULL)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (in[i] != '%') {
      out[o++] = in[i];
      continue;
    }
    int h = i + 2 < len ? hexval(in[i + 1]) : -1;
    int l = i + 2 < len ? hexval(in[i + 2]) : -1;
    if (h < 0 || l < 0 || (h == 0 && l == 0)) {
      free(out);
      *bad = 1;
      return NULL;
    }
    out[o++] = (char)(h * 16 + l);
    i += 2;
  }
  out[o] = 0;
  return out;
}

void http_config_limits_default(struct http_config_limits *lim) {
  lim->max_path_bytes = 1024;
  lim->max_profiles = 16;
  lim->max_label_bytes = 128;
}

/* A Spring-style JSON error: {"status":..,"error":..,"message":..,"path":..}
 * (the shape Spring Boot's error controller answers with). */
static void respond_error(keel_http_request *req, int status, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));
static void respond_error(keel_http_request *req, int status, const char *fmt,
                          ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  const struct keel_http1_head *h = keel_http_request_head(req);
  json_t *o = json_object();
  char *body = NULL;
  if (o != NULL) {
    json_object_set_new(o, "status", json_integer(status));
    json_object_set_new(o, "error", json_string(keel_http1_reason(status)));
    /* invalid UTF-8 in a message (echoed input) must not lose the error */
    json_t *m = json_string(msg);
    json_object_set_new(o, "message",
                        m ? m : json_string("(message not UTF-8)"));
    json_t *p = json_stringn(h->path, h->path_len); /* NULL: not UTF-8 */
    json_object_set_new(o, "path", p ? p : json_null());
    body = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
  }
  if (body == NULL) {
    keel_http_respond(req, 500, "text/plain; charset=utf-8", "out of memory\n",
                      14, NULL);
    return;
  }
  keel_http_respond(req, status, "application/json", body, strlen(body), NULL);
  free(body);
}

/* ---- request parsing ---------------------------------------------------- */

enum cfg_kind { KIND_ENV, KIND_FLAT };
enum cfg_fmt { FMT_YAML, FMT_PROPERTIES, FMT_JSON };

struct cfg_job {
  http_config *c;
  keel_http_request *req;
  enum cfg_kind kind;
  enum cfg_fmt fmt;
  char *app, *profiles, *label; /* decoded; label may be NULL */
  int v2;
  int resolve;
};

static void job_free(struct cfg_job *j) {
  free(j->app);
  free(j->profiles);
  free(j->label);
  free(j);
}

/* Splits "{app}-{profile}.{ext}" the way Spring's path pattern does: the
 * profile runs from the LAST '-' to the extension. Returns 1 when seg has
 * that shape (app and profile non-empty, a known extension). */
static int split_flat(const char *seg, char **app, char **profile,
                      enum cfg_fmt *fmt) {
  static const struct {
    const char *ext;
    enum cfg_fmt fmt;
  } exts[] = {{".yml", FMT_YAML},
              {".yaml", FMT_YAML},
              {".properties", FMT_PROPERTIES},
              {".json", FMT_JSON}};
  size_t n = strlen(seg);
  for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
    size_t el = strlen(exts[i].ext);
    if (n <= el || strcmp(seg + n - el, exts[i].ext) != 0)
      continue;
    size_t stem = n - el;
    const char *dash = NULL;
    for (size_t k = 0; k < stem; k++)
      if (seg[k] == '-')
        dash = seg + k;
    if (dash == NULL || dash == seg || (size_t)(dash - seg) + 1 >= stem)
      return 0;
    *app = strndup(seg, (size_t)(dash - seg));
    *profile = strndup(dash + 1, stem - (size_t)(dash - seg) - 1);
    *fmt = exts[i].fmt;
    return 1;
  }
  return 0;
}

static int header_contains(const struct keel_http1_head *h, const char *name,
                           const char *needle) {
  for (size_t i = 0; i < h->n_headers; i++) {
    const struct keel_http1_header *x = &h->headers[i];
    if (x->name_len != strlen(name) ||
        strncasecmp(x->name, name, x->name_len) != 0)
      continue;
    size_t nl = strlen(needle);
    for (size_t k = 0; k + nl <= x->value_len; k++)
      if (strncasecmp(x->value + k, needle, nl) == 0)
        return 1;
  }
  return 0;
}

/* "resolvePlaceholders=false" anywhere in the query turns resolution off
 * (Spring's default is true). */
static int query_resolve(const struct keel_http1_head *h) {
  if (h->query == NULL)
    return 1;
  const char *key = "resolvePlaceholders=";
  size_t kl = strlen(key);
  const char *q = h->query, *end = h->query + h->query_len;
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *e = amp ? amp : end;
    if ((size_t)(e - q) > kl && strncmp(q, key, kl) == 0) {
      size_t vl = (size_t)(e - q) - kl;
      if (vl == 5 && strncasecmp(q + kl, "false", 5) == 0)
        return 0;
    }
    q = e + 1;
  }
  return 1;
}

/* ---- reading at one revision -------------------------------------------- */

/* Reads every key under prefix at rev into a sorted list. */
static int read_prefix(http_config *c, const char *app, const char *profile,
                       int64_t rev, struct profiles_list *out,
                       struct profiles_error *perr) {
  char *prefix = NULL;
  int rc = profiles_key_encode(app, profile, NULL, &prefix);
  if (rc < 0)
    return rc;
  size_t pl = strlen(prefix);
  char *end = strdup(prefix);
  if (end == NULL) {
    free(prefix);
    return -ENOMEM;
  }
  end[pl - 1]++; /* "/" -> "0": every key with the prefix */
  struct store_range_req q = {.key = (const uint8_t *)prefix,
                              .key_len = pl,
                              .range_end = (const uint8_t *)end,
                              .range_end_len = pl,
                              .revision = rev};
  struct store_range_result r;
  rc = c->rd.range(c->rd.ctx, &q, &r);
  free(end);
  free(prefix);
  if (rc < 0)
    return rc;
  for (size_t i = 0; i < r.resp.n_kvs && rc == 0; i++) {
    const struct store_kv *kv = &r.resp.kvs[i];
    rc = profiles_list_add_stored(out, app, profile, (const char *)kv->key,
                                  kv->key_len, (const char *)kv->value,
                                  kv->value_len, perr);
  }
  store_range_result_free(&r);
  if (rc == 0)
    profiles_list_sort(out);
  return rc;
}

/* Resolves the label to a revision. Returns 0, or responds itself and
 * returns 1. */
static int pick_revision(struct cfg_job *j, int64_t cur, int64_t comp,
                         int64_t *rev) {
  *rev = cur;
  if (j->label == NULL)
    return 0;
  const char *l = j->label;
  if (strncmp(l, "rev-", 4) == 0 && l[4] >= '0' && l[4] <= '9' &&
      strlen(l) <= 4 + 18) {
    char *e;
    long long n = strtoll(l + 4, &e, 10);
    if (*e == 0 && n <= 0) { /* revision 0 would mean "current" to range */
      respond_error(j->req, 404, "label '%s' not found: revisions start at 1",
                    l);
      return 1;
    }
    if (*e == 0) {
      *rev = n;
      return 0;
    }
  }
  char *key = NULL;
  if (asprintf(&key, "%s%s/%s", HTTP_CONFIG_TAG_ROOT, j->app, l) < 0) {
    respond_error(j->req, 500, "out of memory");
    return 1;
  }
  struct store_range_req q = {
      .key = (const uint8_t *)key, .key_len = strlen(key), .revision = cur};
  struct store_range_result r;
  int rc = j->c->rd.range(j->c->rd.ctx, &q, &r);
  free(key);
  if (rc < 0) {
    respond_error(j->req, 503, "reading tag '%s': %s", l, keel_strerror(rc));
    return 1;
  }
  if (r.resp.n_kvs == 0) {
    store_range_result_free(&r);
    respond_error(j->req, 404,
                  "label '%s' not found: not rev-N and no tag of that name "
                  "for application '%s'",
                  l, j->app);
    return 1;
  }
  char buf[24];
  const struct store_kv *kv = &r.resp.kvs[0];
  size_t n = kv->value_len < sizeof(buf) - 1 ? kv->value_len : sizeof(buf) - 1;
  memcpy(buf, kv->value, n);
  buf[n] = 0;
  int ok = kv->value_len > 0 && kv->value_len < sizeof(buf) - 1;
  char *e = NULL;
  long long v = ok ? strtoll(buf, &e, 10) : 0;
  store_range_result_free(&r);
  if (!ok || *e != 0 || v <= 0) {
    respond_error(j->req, 500,
                  "tag '%s' of application '%s' does not hold a revision", l,
                  j->app);
    return 1;
  }
  (void)comp;
  *rev = v;
  return 0;
}

static void respond_read_error(struct cfg_job *j, int rc, int64_t rev,
                               int64_t comp, const struct profiles_error *pe) {
  if (rc == KEEL_ECOMPACTED)
    respond_error(j->req, 410,
                  "revision %lld has been compacted (compacted revision %lld)",
                  (long long)rev, (long long)comp);
  else if (rc == KEEL_EFUTUREREV)
    respond_error(j->req, 404,
                  "label '%s' not found: revision %lld is in the "
                  "future",
                  j->label ? j->label : "", (long long)rev);
  else if (rc == KEEL_EPARSE || (rc == -EINVAL && pe && pe->msg[0]))
    respond_error(j->req, 500, "stored configuration is invalid: %s",
                  pe ? pe->msg : "");
  else
    respond_error(j->req, 503, "read failed: %s", keel_strerror(rc));
}

static void serve(struct cfg_job *j) {
  http_config *c = j->c;
  int64_t cur = 0, comp = 0, rev = 0;
  int rc = c->rd.current_revision(c->rd.ctx, &cur, &comp);
  if (rc < 0) {
    respond_error(j->req, 503, "read failed: %s", keel_strerror(rc));
    return;
  }
  if (pick_revision(j, cur, comp, &rev))
    return;
  if (rev > cur) {
    respond_read_error(j, KEEL_EFUTUREREV, rev, comp, NULL);
    return;
  }
  if (rev < comp) {
    respond_read_error(j, KEEL_ECOMPACTED, rev, comp, NULL);
    return;
  }

  struct profiles_source_id *ids = NULL;
  size_t n = 0;
  rc = profiles_merge_order(j->app, j->profiles, &ids, &n);
  if (rc < 0) {
    respond_error(j->req, 400, "bad application or profile name in '%s/%s'",
                  j->app, j->profiles);
    return;
  }
  struct profiles_list *lists = calloc(n, sizeof(*lists));
  struct profiles_named_source *srcs = calloc(n, sizeof(*srcs));
  const struct profiles_list **ptrs = calloc(n, sizeof(*ptrs));
  char **prefixes = calloc(n, sizeof(*prefixes));
  struct profiles_error pe = {0};
  size_t nonempty = 0;
  if (lists == NULL || srcs == NULL || ptrs == NULL || prefixes == NULL) {
    rc = -ENOMEM;
  } else {
    for (size_t i = 0; i < n; i++)
      profiles_list_init(&lists[i]);
    for (size_t i = 0; i < n && rc == 0; i++) {
      rc = read_prefix(c, ids[i].app, ids[i].profile, rev, &lists[i], &pe);
      if (rc == 0)
        rc =
            profiles_key_encode(ids[i].app, ids[i].profile, NULL, &prefixes[i]);
      ptrs[i] = &lists[i];
      if (rc == 0 && lists[i].count > 0) {
        srcs[nonempty].name = ids[i].name;
        srcs[nonempty].key_prefix = prefixes[i];
        srcs[nonempty].props = &lists[i];
        nonempty++;
      }
    }
  }

  char *out = NULL;
  size_t out_len = 0;
  const char *ctype = "application/json";
  int responded = 0;
  if (rc < 0) {
    respond_read_error(j, rc, rev, comp, &pe);
    responded = 1;
  } else if (nonempty == 0) {
    respond_error(j->req, 404,
                  "no configuration for application '%s' profiles '%s' at "
                  "revision %lld",
                  j->app, j->profiles, (long long)rev);
    responded = 1;
  } else if (j->kind == KIND_ENV) {
    rc = profiles_render_environment(j->app, j->profiles, j->label, rev, srcs,
                                     nonempty, j->v2, &out, &out_len, &pe);
    if (j->v2)
      ctype = V2_MEDIA;
  } else {
    struct profiles_list merged;
    profiles_list_init(&merged);
    struct profiles_limits lim;
    profiles_limits_default(&lim);
    rc = profiles_merge(ptrs, n, &lim, &merged);
    if (rc == 0 && j->resolve) /* an EMPTY environment: not the server's */
      rc = profiles_resolve(&merged, NULL, 0, PROFILES_IGNORE_UNRESOLVABLE,
                            &lim, &pe);
    if (rc == 0) {
      if (j->fmt == FMT_YAML) {
        rc = profiles_render_yaml(&merged, &out, &out_len, &pe);
        ctype = "text/plain; charset=utf-8";
      } else if (j->fmt == FMT_PROPERTIES) {
        rc = profiles_render_properties(&merged, &out, &out_len, &pe);
        ctype = "text/plain; charset=utf-8";
      } else {
        rc = profiles_render_json(&merged, 0, &out, &out_len, &pe);
      }
    }
    profiles_list_free(&merged);
  }
  if (responded) {
    /* answered above */
  } else if (rc < 0) {
    /* a render or placeholder failure: the stored data cannot be served */
    respond_error(j->req, 500, "cannot render configuration: %s",
                  pe.msg[0] ? pe.msg : keel_strerror(rc));
  } else {
    char hdr[64];
    snprintf(hdr, sizeof(hdr), "X-Keel-Revision: %lld\r\n", (long long)rev);
    keel_http_respond(j->req, 200, ctype, out, out_len, hdr);
  }
  free(out);
  for (size_t i = 0; i < n; i++) {
    if (lists)
      profiles_list_free(&lists[i]);
    if (prefixes)
      free(prefixes[i]);
  }
  free(lists);
  free(srcs);
  free(ptrs);
  free(prefixes);
  profiles_source_ids_free(ids, n);
}

static void after_barrier(void *arg, int err) {
  struct cfg_job *j = arg;
  if (err < 0)
    respond_error(j->req, 503, "linearizable read failed: %s",
                  keel_strerror(err));
  else
    serve(j);
  job_free(j);
}

void http_config_handle(keel_http_request *req, void *ud) {
  http_config *c = ud;
  const struct keel_http1_head *h = keel_http_request_head(req);
  if (!((h->method_len == 3 && memcmp(h->method, "GET", 3) == 0) ||
        (h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0))) {
    keel_http_respond(req, 405, "text/plain; charset=utf-8",
                      "method not allowed: use GET\n", 28,
                      "Allow: GET, HEAD\r\n");
    return;
  }
  if (h->path_len > c->lim.max_path_bytes) {
    respond_error(req, 400, "path is %zu bytes (limit %zu)", h->path_len,
                  c->lim.max_path_bytes);
    return;
  }
  static const char base[] = "/config/";
  if (h->path_len < sizeof(base) - 1 ||
      memcmp(h->path, base, sizeof(base) - 1) != 0) {
    respond_error(req, 404, "not a config path");
    return;
  }
  /* up to three non-empty segments after /config/ */
  char *seg[3] = {0};
  size_t nseg = 0;
  const char *p = h->path + sizeof(base) - 1, *end = h->path + h->path_len;
  int bad = 0;
  while (p < end) {
    const char *sl = memchr(p, '/', (size_t)(end - p));
    const char *e = sl ? sl : end;
    if (e == p || nseg == 3) {
      bad = 404;
      break;
    }
    int badesc = 0;
    seg[nseg] = http_percent_decode(p, (size_t)(e - p), &badesc);
    if (seg[nseg] == NULL) {
      bad = badesc ? 400 : 500;
      break;
    }
    json_t *utf8 = json_string(seg[nseg]); /* NULL: not UTF-8 */
    if (utf8 == NULL) {
      nseg++;
      bad = 401; /* reported as 400 below, with its own message */
      break;
    }
    json_decref(utf8);
    nseg++;
    p = sl ? sl + 1 : end;
    if (sl && p == end) { /* trailing slash */
      bad = 404;
      break;
    }
  }
  struct cfg_job *j = calloc(1, sizeof(*j));
  if (j == NULL)
    bad = 500;
  if (!bad && nseg == 0)
    bad = 404;
  if (!bad) {
    j->c = c;
    j->req = req;
    char *a = NULL, *pr = NULL;
    const char *flat = nseg == 1 ? seg[0] : nseg == 2 ? seg[1] : NULL;
    if (flat && split_flat(flat, &a, &pr, &j->fmt)) {
      j->kind = KIND_FLAT;
      j->app = a;
      j->profiles = pr;
      if (nseg == 2) {
        j->label = seg[0];
        seg[0] = NULL;
      }
      j->resolve = query_resolve(h);
      if (a == NULL || pr == NULL)
        bad = 500;
    } else if (nseg >= 2) {
      j->kind = KIND_ENV;
      j->app = seg[0];
      j->profiles = seg[1];
      seg[0] = seg[1] = NULL;
      if (nseg == 3) {
        j->label = seg[2];
        seg[2] = NULL;
      }
      j->v2 = header_contains(h, "Accept", V2_MEDIA);
    } else {
      bad = 404;
    }
  }
  for (size_t i = 0; i < 3; i++)
    free(seg[i]);
  if (bad) {
    if (bad == 400)
      respond_error(req, 400, "malformed percent-escape (or %%00) in path");
    else if (bad == 401)
      respond_error(req, 400, "path segment is not UTF-8 after decoding");
    else if (bad == 404)
      respond_error(req, 404,
                    "no such endpoint: use /config/{app}/{profiles}[/{label}] "
                    "or /config/[{label}/]{app}-{profile}.yml|.yaml|"
                    ".properties|.json");
    else
      respond_error(req, 500, "out of memory");
    if (j)
      job_free(j);
    return;
  }
  size_t nprof = 1;
  for (const char *q = j->profiles; *q; q++)
    nprof += *q == ',';
  if (nprof > c->lim.max_profiles) {
    respond_error(req, 400, "too many profiles: %zu (limit %zu)", nprof,
                  c->lim.max_profiles);
    job_free(j);
    return;
  }
  if (j->label && strlen(j->label) > c->lim.max_label_bytes) {
    respond_error(req, 400, "label is %zu bytes (limit %zu)", strlen(j->label),
                  c->lim.max_label_bytes);
    job_free(j);
    return;
  }
  if (j->label && (strchr(j->label, '/') || j->label[0] == '.')) {
    respond_error(req, 404, "label '%s' not found", j->label);
    job_free(j);
    return;
  }
  if (c->rd.read_barrier)
    c->rd.read_barrier(c->rd.ctx, after_barrier, j);
  else
    after_barrier(j, 0);
}

int http_config_new(const struct http_kv_reader *reader,
                    const struct http_config_limits *lim, http_config **out) {
  if (reader == NULL || reader->current_revision == NULL ||
      reader->range == NULL || out == NULL)
    return -EINVAL;
  struct http_config_limits l;
  if (lim)
    l = *lim;
  else
    http_config_limits_default(&l);
  if (l.max_path_bytes == 0 || l.max_profiles == 0 || l.max_label_bytes == 0)
    return -EINVAL;
  http_config *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return -ENOMEM;
  c->rd = *reader;
  c->lim = l;
  *out = c;
  return 0;
}

int http_config_register(http_config *c, keel_client_listener *l) {
  return keel_client_listener_route(l, NULL, "/config/", http_config_handle, c);
}

void http_config_free(http_config *c) {
  free(c);
}

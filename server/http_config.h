/* http_config.h — Spring Cloud Config Server-compatible endpoints on the
 * client port (base path /config), and the narrow read interface that every
 * HTTP handler of keeld (these and OFREP, http_ofrep.h) reads the store
 * through.
 *
 * Endpoints (docs/profiles.md "HTTP endpoints" is the reference):
 *   GET /config/{app}/{profiles}[/{label}]          Environment JSON
 *   GET /config/{app}-{profile}.yml|.yaml|.properties|.json
 *   GET /config/{label}/{app}-{profile}.yml|...     the merged document
 * Every response is read at ONE revision (a label pins it; else the current
 * revision when the request is served), so a service never sees half of an
 * update. That revision is the Environment "version" and the header
 * X-Keel-Revision of every 200.
 *
 * Labels: "rev-N" is revision N; any other label is a tag, stored at
 * /config-tags/<app>/<label> as the decimal revision (written by
 * `keel profile tag`). An unknown tag or a future revision is 404; a
 * revision at or below the compaction point is 410 Gone, the body naming the
 * compacted revision (docs/decisions/0821).
 *
 * Threading: handlers run on the listener's loop thread; the reader's
 * functions are called there too.
 */
#ifndef KEEL_HTTP_CONFIG_H
#define KEEL_HTTP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "client_listener.h"
#include "store.h"

/* ---- the read side every HTTP handler uses ----------------------------- */

/* How a handler reads. A handler calls read_barrier once per request (when
 * set) and, in its callback, current_revision once and then range as often
 * as it needs, passing that revision explicitly, so the whole response is
 * one snapshot.
 *
 * - read_barrier (optional, NULL = serializable reads): the node supplies
 *   linearizable reads here (ReadIndex: call done(arg, 0) once the local
 *   store has applied up to the read index, or done(arg, error) with a keel
 *   code such as KEEL_ENOLEADER / KEEL_ETIMEOUT). done must be called
 *   exactly once, on the loop thread, now or later.
 * - current_revision: the revision to read at and the compaction point.
 *   Returns 0 or a negative code.
 * - range: store_range() semantics (KEEL_ECOMPACTED, KEEL_EFUTUREREV ...);
 *   the result is released with store_range_result_free(). */
struct http_kv_reader {
  void *ctx;
  void (*read_barrier)(void *ctx, void (*done)(void *arg, int err), void *arg);
  int (*current_revision)(void *ctx, int64_t *current, int64_t *compacted);
  int (*range)(void *ctx, const struct store_range_req *req,
               struct store_range_result *out);
};

/* A reader over a local store: serializable reads, no barrier. The store
 * must outlive every handler using the reader. */
void http_kv_reader_from_store(struct store *st, struct http_kv_reader *out);

/* ---- config endpoints -------------------------------------------------- */

/* Key prefix of tags: /config-tags/<app>/<name> holds a decimal revision. */
#define HTTP_CONFIG_TAG_ROOT "/config-tags/"

struct http_config_limits {
  size_t max_path_bytes;  /* request path, before decoding (default 1024) */
  size_t max_profiles;    /* profiles in one request (default 16) */
  size_t max_label_bytes; /* default 128 */
};

void http_config_limits_default(struct http_config_limits *lim);

typedef struct http_config http_config;

/* Creates the endpoint set. reader is copied; lim NULL = defaults.
 * Errors: -ENOMEM, -EINVAL (NULL reader functions, a limit of 0). */
int http_config_new(const struct http_kv_reader *reader,
                    const struct http_config_limits *lim, http_config **out);

/* Routes /config/ on l to this endpoint set (GET and HEAD; other methods
 * get 405). Returns what keel_client_listener_route() returns. */
int http_config_register(http_config *c, keel_client_listener *l);

/* The route handler itself (ud = the http_config), for a caller that mounts
 * it under its own router. */
void http_config_handle(keel_http_request *req, void *ud);

/* Frees c. Only once no request is in flight (after the listener's
 * shutdown callback). NULL is allowed. */
void http_config_free(http_config *c);

/* ---- helpers shared with http_ofrep.c ---------------------------------- */

/* Percent-decodes in[0..len) into a malloc'd NUL-terminated string.
 * Refuses a malformed escape and %00 (NULL returned, *bad set to 1); NULL
 * with *bad 0 means out of memory. '+' stays '+' (path segments). */
char *http_percent_decode(const char *in, size_t len, int *bad);

#endif

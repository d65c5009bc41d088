/* http_ofrep.h — the OpenFeature Remote Evaluation Protocol (OFREP) on the
 * client port: flags of a stored flag set (/flags/<set>/..., flags.h)
 * evaluated for the caller's context.
 *
 *   POST /ofrep/v1/evaluate/flags/{key}   one flag
 *   POST /ofrep/v1/evaluate/flags         every flag of the set (bulk), with
 *                                         ETag; If-None-Match -> 304
 *
 * Request body: {"context": {...}} (may be empty or omit "context"). The set
 * is named by the header X-Keel-Flag-Set, else the configured default. The
 * shapes follow open-feature/protocol service/openapi.yaml (docs/flags.md
 * "OFREP" lists every status and body).
 *
 * One revision per request: the set is read at the revision current when the
 * request is served (after the reader's barrier). Compiled sets are cached
 * per (set, count of keys, highest mod revision of its keys) — a pair that
 * identifies the set's content at any revision, see docs/decisions/0822 —
 * in a small LRU (cache_sets entries), so repeated evaluations do not
 * rebuild. The bulk ETag hashes that identity and the canonical context.
 *
 * Threading: everything runs on the listener's loop thread (the cache has
 * no lock); compiled sets are immutable and refcounted, so a future caller
 * may evaluate them elsewhere.
 */
#ifndef KEEL_HTTP_OFREP_H
#define KEEL_HTTP_OFREP_H

#include <stddef.h>
#include <stdint.h>

#include "client_listener.h"
#include "http_config.h" /* struct http_kv_reader */

struct http_ofrep_options {
  /* The set used when the request has no X-Keel-Flag-Set header; NULL =
   * the header is required (400 without it). Copied. */
  const char *default_set;
  size_t max_body_bytes; /* request body; default 64 KiB (413 past it) */
  size_t cache_sets;     /* compiled sets kept; default 16 */
  /* Unix seconds for $flagd.timestamp; NULL = time(NULL). */
  int64_t (*now)(void *ud);
  void *now_ud;
};

void http_ofrep_options_default(struct http_ofrep_options *o);

typedef struct http_ofrep http_ofrep;

/* Creates the endpoints. reader is copied; opts NULL = defaults.
 * Errors: -EINVAL (bad reader, a limit of 0, a default set name that is
 * empty, longer than 128 bytes or holds '/'), -ENOMEM. */
int http_ofrep_new(const struct http_kv_reader *reader,
                   const struct http_ofrep_options *opts, http_ofrep **out);

/* Routes POST /ofrep/v1/evaluate/flags (and /flags/{key}) on l. */
int http_ofrep_register(http_ofrep *o, keel_client_listener *l);

/* The route handler (ud = the http_ofrep). */
void http_ofrep_handle(keel_http_request *req, void *ud);

struct http_ofrep_stats {
  uint64_t builds;      /* sets compiled (cache misses) */
  uint64_t cache_hits;  /* requests served from a cached set */
  uint64_t evaluations; /* flags evaluated */
};
void http_ofrep_stats(const http_ofrep *o, struct http_ofrep_stats *out);

/* Frees o and its cache; only once no request is in flight. NULL ok. */
void http_ofrep_free(http_ofrep *o);

#endif

/* http_test_scaffold.h — TEST SCAFFOLDING for the HTTP endpoints: a store in
 * a temporary directory, a keel_client_listener on 127.0.0.1:0 with the
 * /config and OFREP handlers mounted, its loop on a background thread, write
 * helpers that apply entries to the store directly (no raft: keeld's node
 * is not part of this), and a tiny blocking HTTP/1.1 client. Used by the
 * unit tests and by tests/e2e/http's test server.
 *
 * Threads: the loop thread runs the handlers (and reads the store); the
 * caller's thread writes (one writer at a time). The range hook runs on the
 * loop thread while the caller waits for a response, so it may write too.
 */
#ifndef KEEL_HTTP_TEST_SCAFFOLD_H
#define KEEL_HTTP_TEST_SCAFFOLD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http_config.h"
#include "http_ofrep.h"
#include "store.h"

struct hts {
  char dir[256];
  struct store *st;
  uint64_t index;
  uv_loop_t loop;
  uv_async_t stop;
  pthread_t thr;
  keel_client_listener *l;
  http_config *cfg;
  http_ofrep *ofrep;
  int port;
  /* Called on the loop thread before each range the handlers make (call =
   * 0, 1, ...); NULL = none. */
  void (*on_range)(struct hts *h, int call);
  int range_calls;
  int64_t now; /* $flagd.timestamp the OFREP handler sees */
};

/* Opens the store in a fresh temp dir and starts serving. default_set may
 * be NULL. Aborts the process on failure (scaffolding). */
struct hts *hts_start(const char *default_set);
/* Stops, frees, removes the directory. */
void hts_stop(struct hts *h);

/* Writes (each one entry = one revision unless noted). Return the store's
 * revision after the write. */
int64_t hts_put(struct hts *h, const char *key, const char *value);
int64_t hts_del(struct hts *h, const char *key);
/* Puts n pairs (keys[i], vals[i]) in ONE txn: one revision. */
int64_t hts_put_many(struct hts *h, const char *const *keys,
                     const char *const *vals, size_t n);
void hts_compact(struct hts *h, int64_t rev);
int64_t hts_rev(struct hts *h);

struct hts_resp {
  int status;
  char *head; /* the response head, NUL-terminated */
  char *body; /* NUL-terminated */
  size_t body_len;
};

/* Sends one request (Connection: close) to 127.0.0.1:port and reads the
 * whole response. extra_headers: raw "Name: value\r\n" lines or NULL; body
 * may be NULL. Returns 0 or -1 (resp zeroed). */
int hts_request(int port, const char *method, const char *path,
                const char *extra_headers, const char *body, size_t body_len,
                struct hts_resp *resp);
/* The value of header name in resp (malloc'd), or NULL. */
char *hts_header(const struct hts_resp *r, const char *name);
void hts_resp_free(struct hts_resp *r);

#endif

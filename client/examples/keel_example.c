/* keel_example.c — libkeel in a small program: the blocking wrappers for a
 * put and a get, then the asynchronous API on the same loop for a watch
 * that prints the next N changes under a prefix.
 *
 *   keel_example ENDPOINTS PREFIX N     (ENDPOINTS: host:port[,host:port])
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"

struct seen {
  int left;
};

static void on_watch(keel_watcher *w, const struct keel_watch_batch *b,
                     void *ud) {
  struct seen *s = ud;
  if (b->err) { /* compacted, canceled: the watcher is gone after this */
    fprintf(stderr, "watch ended: %s (%s)\n", keel_strerror(b->err),
            b->message);
    s->left = 0;
    return;
  }
  for (size_t i = 0; i < b->n_events && s->left > 0; i++, s->left--)
    printf("%s %.*s = %.*s (rev %lld)\n",
           b->events[i].type == KEEL_EVENT_PUT ? "PUT" : "DELETE",
           (int)b->events[i].kv.key_len, (const char *)b->events[i].kv.key,
           (int)b->events[i].kv.value_len, (const char *)b->events[i].kv.value,
           (long long)b->events[i].kv.mod_revision);
  if (s->left == 0)
    keel_watch_cancel(w); /* allowed inside the callback */
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s host:port[,host:port...] PREFIX N\n", argv[0]);
    return 2;
  }
  if (strlen(argv[2]) == 0 || strlen(argv[2]) > 200) {
    fprintf(stderr, "PREFIX: 1 to 200 bytes\n");
    return 2;
  }
  const char *eps[KEEL_MAX_ENDPOINTS];
  size_t n = 0;
  for (char *t = strtok(argv[1], ","); t && n < KEEL_MAX_ENDPOINTS;
       t = strtok(NULL, ","))
    eps[n++] = t;
  struct keel_config cfg;
  keel_config_default(&cfg);
  cfg.endpoints = eps;
  cfg.n_endpoints = n;
  keel_sync *s;
  int rc = keel_sync_new(&cfg, &s);
  if (rc != 0) {
    fprintf(stderr, "bad endpoints: %s\n", keel_strerror(rc));
    return 2;
  }
  char key[256];
  snprintf(key, sizeof(key), "%shello", argv[2]);
  int64_t rev;
  rc = keel_sync_put_str(s, key, "world", &rev);
  if (rc == KEEL_EUNKNOWN) /* the put may or may not have happened */
    fprintf(stderr, "put: outcome unknown (%s)\n", keel_sync_message(s));
  else if (rc != 0) {
    fprintf(stderr, "put: %s (%s)\n", keel_strerror(rc), keel_sync_message(s));
    keel_sync_free(s);
    return 1;
  }
  char *v;
  if (keel_sync_get(s, key, &v, NULL, NULL) == 0) {
    printf("%s = %s\n", key, v);
    free(v);
  }
  /* Watch the prefix from the revision after our put. */
  uint8_t end[256];
  struct keel_watch_req wr = {.key = (const uint8_t *)argv[2],
                              .key_len = strlen(argv[2]),
                              .start_revision = rev + 1};
  wr.range_end = end;
  wr.range_end_len = keel_prefix_end(wr.key, wr.key_len, end);
  struct seen seen = {atoi(argv[3])};
  if (seen.left > 0 &&
      keel_watch_create(keel_sync_client(s), &wr, on_watch, &seen, NULL) == 0)
    while (seen.left > 0)
      uv_run(keel_sync_loop(s), UV_RUN_ONCE);
  keel_sync_free(s);
  return 0;
}

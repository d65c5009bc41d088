/* keel_sync.c — libkeel's blocking wrappers: a client on a private libuv
 * loop; each call starts the asynchronous request and runs the loop until
 * its callback fired. Retries, failover and deadlines are the async core's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_internal.h"

struct keel_sync {
  uv_loop_t loop;
  keel_client *c;
  int done, err;
  void *resp;
  int64_t compact_revision;
  char msg[512];
};

int keel_sync_new(const struct keel_config *cfg, keel_sync **out) {
  keel_sync *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  int rc = uv_loop_init(&s->loop);
  if (rc != 0) {
    free(s);
    return rc;
  }
  rc = keel_client_new(&s->loop, cfg, &s->c);
  if (rc != 0) {
    uv_loop_close(&s->loop);
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

static void on_closed(void *ud) {
  ((keel_sync *)ud)->done = 1;
}

void keel_sync_free(keel_sync *s) {
  if (s == NULL)
    return;
  s->done = 0;
  keel_client_close(s->c, on_closed, s);
  while (!s->done)
    uv_run(&s->loop, UV_RUN_ONCE);
  uv_run(&s->loop, UV_RUN_DEFAULT); /* let the last handles close */
  uv_loop_close(&s->loop);
  free(s);
}

keel_client *keel_sync_client(keel_sync *s) {
  return s->c;
}
uv_loop_t *keel_sync_loop(keel_sync *s) {
  return &s->loop;
}
const char *keel_sync_message(const keel_sync *s) {
  return s->msg;
}
int64_t keel_sync_compact_revision(const keel_sync *s) {
  return s->compact_revision;
}

static void on_done(const struct keel_result *res, const void *resp, void *ud) {
  keel_sync *s = ud;
  s->done = 1;
  s->err = res->err;
  s->compact_revision = res->compact_revision;
  snprintf(s->msg, sizeof(s->msg), "%s", res->message);
  s->resp = resp ? keel_resp_keep(resp) : NULL;
}

/* Runs one started request to completion; rc is what starting it said. */
static int run(keel_sync *s, int rc, void **out) {
  if (out)
    *out = NULL;
  if (rc != 0) {
    snprintf(s->msg, sizeof(s->msg), "%s", keel_strerror(rc));
    return rc;
  }
  while (!s->done)
    uv_run(&s->loop, UV_RUN_ONCE);
  if (out)
    *out = s->resp;
  else
    keel_resp_free(s->resp);
  s->resp = NULL;
  return s->err;
}

#define BEGIN(s)                                                               \
  do {                                                                         \
    (s)->done = 0;                                                             \
    (s)->err = 0;                                                              \
    (s)->resp = NULL;                                                          \
    (s)->msg[0] = 0;                                                           \
    (s)->compact_revision = 0;                                                 \
  } while (0)

int keel_sync_range(keel_sync *s, const struct keel_range_req *req,
                    const struct keel_opts *opts,
                    struct keel_range_resp **out) {
  BEGIN(s);
  return run(s, keel_range(s->c, req, opts, on_done, s), (void **)out);
}

int keel_sync_put(keel_sync *s, const struct keel_put_req *req,
                  const struct keel_opts *opts, struct keel_put_resp **out) {
  BEGIN(s);
  return run(s, keel_put(s->c, req, opts, on_done, s), (void **)out);
}

int keel_sync_delete(keel_sync *s, const struct keel_delete_req *req,
                     const struct keel_opts *opts,
                     struct keel_delete_resp **out) {
  BEGIN(s);
  return run(s, keel_delete(s->c, req, opts, on_done, s), (void **)out);
}

int keel_sync_txn(keel_sync *s, const struct keel_txn_req *req,
                  const struct keel_opts *opts, struct keel_txn_resp **out) {
  BEGIN(s);
  return run(s, keel_txn(s->c, req, opts, on_done, s), (void **)out);
}

int keel_sync_compact(keel_sync *s, int64_t revision, int physical) {
  BEGIN(s);
  return run(s, keel_compact(s->c, revision, physical, NULL, on_done, s), NULL);
}

int keel_sync_lease_grant(keel_sync *s, int64_t ttl, int64_t id,
                          struct keel_lease_grant_resp **out) {
  BEGIN(s);
  return run(s, keel_lease_grant(s->c, ttl, id, NULL, on_done, s),
             (void **)out);
}

int keel_sync_lease_revoke(keel_sync *s, int64_t id) {
  BEGIN(s);
  return run(s, keel_lease_revoke(s->c, id, NULL, on_done, s), NULL);
}

int keel_sync_lease_ttl(keel_sync *s, int64_t id, int keys,
                        struct keel_lease_ttl_resp **out) {
  BEGIN(s);
  return run(s, keel_lease_ttl(s->c, id, keys, NULL, on_done, s), (void **)out);
}

int keel_sync_lease_leases(keel_sync *s, struct keel_lease_list_resp **out) {
  BEGIN(s);
  return run(s, keel_lease_leases(s->c, NULL, on_done, s), (void **)out);
}

int keel_sync_member_list(keel_sync *s, struct keel_members_resp **out) {
  BEGIN(s);
  return run(s, keel_member_list(s->c, 0, NULL, on_done, s), (void **)out);
}

int keel_sync_status(keel_sync *s, int endpoint,
                     struct keel_status_resp **out) {
  BEGIN(s);
  return run(s, keel_status(s->c, endpoint, NULL, on_done, s), (void **)out);
}

int keel_sync_endpoints_refresh(keel_sync *s) {
  BEGIN(s);
  return run(s, keel_endpoints_refresh(s->c, on_done, s), NULL);
}

int keel_sync_get(keel_sync *s, const char *key, char **value, size_t *len,
                  int64_t *mod_revision) {
  struct keel_range_req r = {0};
  r.key = (const uint8_t *)key;
  r.key_len = key ? strlen(key) : 0;
  struct keel_range_resp *resp;
  int rc = keel_sync_range(s, &r, NULL, &resp);
  if (rc != 0)
    return rc;
  if (resp->n_kvs == 0) {
    keel_resp_free(resp);
    snprintf(s->msg, sizeof(s->msg), "key not found");
    return KEEL_ENOTFOUND;
  }
  const struct keel_kv *kv = &resp->kvs[0];
  if (value) {
    *value = malloc(kv->value_len + 1);
    if (*value == NULL) {
      keel_resp_free(resp);
      return -ENOMEM;
    }
    memcpy(*value, kv->value, kv->value_len);
    (*value)[kv->value_len] = 0;
  }
  if (len)
    *len = kv->value_len;
  if (mod_revision)
    *mod_revision = kv->mod_revision;
  keel_resp_free(resp);
  return 0;
}

int keel_sync_put_str(keel_sync *s, const char *key, const char *value,
                      int64_t *revision) {
  struct keel_put_req p = {0};
  p.key = (const uint8_t *)key;
  p.key_len = key ? strlen(key) : 0;
  p.value = (const uint8_t *)value;
  p.value_len = value ? strlen(value) : 0;
  struct keel_put_resp *resp;
  int rc = keel_sync_put(s, &p, NULL, &resp);
  if (rc == 0) {
    if (revision)
      *revision = resp->header.revision;
    keel_resp_free(resp);
  }
  return rc;
}

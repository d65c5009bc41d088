/* maint_client.c — libkeel calls for test_svc_maint.c; see
 * maint_client.h. */
#include "maint_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"

static struct {
  uv_loop_t *loop;
  keel_client *c;
  char ep[64];
  bool done;
  int err, grpc;
  char msg[256];
  /* per call */
  int64_t rev, compact;
  uint32_t hash;
  size_t n;
  uint64_t member;
  uint8_t *buf;
  size_t len, cap, chunks;
  int stop_after, bad_remaining;
  uint64_t last_remaining;
} M;

static void on_guard(uv_timer_t *t) {
  *(bool *)t->data = true;
}

/* Runs the loop until the callback said done; -ETIMEDOUT after 10 s. */
static int wait_done(void) {
  bool expired = false;
  uv_timer_t t;
  uv_timer_init(M.loop, &t);
  t.data = &expired;
  uv_timer_start(&t, on_guard, 10000, 0);
  while (!M.done && !expired)
    uv_run(M.loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(M.loop, UV_RUN_NOWAIT);
  return M.done ? M.err : -110;
}

static void begin(void) {
  M.done = false;
  M.err = 0;
  M.grpc = -1;
  M.msg[0] = 0;
}

static void note(const struct keel_result *res) {
  M.err = res->err;
  M.grpc = res->grpc_status;
  strncpy(M.msg, res->message, sizeof(M.msg) - 1);
  M.done = true;
}

int mc_open(uv_loop_t *loop, int port) {
  memset(&M, 0, sizeof(M));
  M.loop = loop;
  snprintf(M.ep, sizeof(M.ep), "127.0.0.1:%d", port);
  const char *eps[] = {M.ep};
  struct keel_config cfg;
  keel_config_default(&cfg);
  cfg.endpoints = eps;
  cfg.n_endpoints = 1;
  cfg.stream_probe_ms = 0;
  return keel_client_new(loop, &cfg, &M.c);
}

static void on_closed(void *ud) {
  (void)ud;
  M.done = true;
}

void mc_close(void) {
  begin();
  keel_client_close(M.c, on_closed, NULL);
  wait_done();
  free(M.buf);
  M.buf = NULL;
}

int mc_grpc_status(void) {
  return M.grpc;
}

const char *mc_message(void) {
  return M.msg;
}

static void on_put(const struct keel_result *res, const void *resp, void *ud) {
  (void)ud;
  if (res->err == 0)
    M.rev = ((const struct keel_put_resp *)resp)->header.revision;
  note(res);
}

int mc_put(const char *key, size_t value_len, int64_t *rev) {
  uint8_t *v = malloc(value_len ? value_len : 1);
  memset(v, 'v', value_len);
  struct keel_put_req q = {0};
  q.key = (const uint8_t *)key;
  q.key_len = strlen(key);
  q.value = v;
  q.value_len = value_len;
  begin();
  int rc = keel_put(M.c, &q, NULL, on_put, NULL);
  free(v);
  if (rc)
    return rc;
  rc = wait_done();
  if (rev)
    *rev = M.rev;
  return rc;
}

static void on_plain(const struct keel_result *res, const void *resp,
                     void *ud) {
  (void)resp;
  (void)ud;
  note(res);
}

int mc_compact(int64_t rev) {
  begin();
  int rc = keel_compact(M.c, rev, 0, NULL, on_plain, NULL);
  return rc ? rc : wait_done();
}

static int on_snap(const uint8_t *data, size_t len, uint64_t remaining,
                   void *ud) {
  (void)ud;
  if (M.len + len > M.cap) {
    M.cap = (M.len + len) * 2;
    M.buf = realloc(M.buf, M.cap);
  }
  memcpy(M.buf + M.len, data, len);
  M.len += len;
  M.chunks++;
  if (M.last_remaining == 0 && M.chunks > 1)
    M.bad_remaining = 1; /* a zero before this chunk */
  M.last_remaining = remaining;
  return M.stop_after > 0 && (int)M.chunks >= M.stop_after;
}

int mc_snapshot(int stop_after, uint8_t **buf, size_t *len, size_t *chunks,
                uint64_t *last_remaining, int *bad_remaining) {
  free(M.buf);
  M.buf = NULL;
  M.len = M.cap = M.chunks = 0;
  M.bad_remaining = 0;
  M.last_remaining = 0;
  M.stop_after = stop_after;
  begin();
  int rc = keel_snapshot(M.c, 0, NULL, on_snap, on_plain, NULL);
  if (rc)
    return rc;
  rc = wait_done();
  *buf = M.buf;
  *len = M.len;
  *chunks = M.chunks;
  *last_remaining = M.last_remaining;
  *bad_remaining = M.bad_remaining;
  return rc;
}

int mc_move_leader(uint64_t target) {
  begin();
  int rc = keel_move_leader(M.c, 0, target, NULL, on_plain, NULL);
  return rc ? rc : wait_done();
}

static void on_hashkv(const struct keel_result *res, const void *resp,
                      void *ud) {
  (void)ud;
  if (res->err == 0) {
    const struct keel_hashkv_resp *h = resp;
    M.hash = h->hash;
    M.compact = h->compact_revision;
    M.rev = h->header.revision;
  }
  note(res);
}

int mc_hashkv(int64_t rev, uint32_t *hash, int64_t *compact, int64_t *hrev) {
  begin();
  int rc = keel_hashkv(M.c, 0, rev, NULL, on_hashkv, NULL);
  if (rc)
    return rc;
  rc = wait_done();
  *hash = M.hash;
  *compact = M.compact;
  *hrev = M.rev;
  return rc;
}

int mc_defrag(void) {
  begin();
  int rc = keel_defragment(M.c, 0, NULL, on_plain, NULL);
  return rc ? rc : wait_done();
}

static void on_alarms(const struct keel_result *res, const void *resp,
                      void *ud) {
  (void)ud;
  M.n = 0;
  if (res->err == 0) {
    const struct keel_alarm_resp *a = resp;
    M.n = a->n_alarms;
    M.member = a->n_alarms ? a->alarms[0].member_id : 0;
  }
  note(res);
}

int mc_alarm_list(size_t *n, uint64_t *member) {
  begin();
  int rc = keel_alarm_list(M.c, NULL, on_alarms, NULL);
  if (rc)
    return rc;
  rc = wait_done();
  *n = M.n;
  *member = M.member;
  return rc;
}

int mc_alarm_disarm(uint64_t member, size_t *n) {
  begin();
  int rc =
      keel_alarm_disarm(M.c, member, KEEL_ALARM_NOSPACE, NULL, on_alarms, NULL);
  if (rc)
    return rc;
  rc = wait_done();
  *n = M.n;
  return rc;
}

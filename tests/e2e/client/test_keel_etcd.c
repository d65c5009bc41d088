/* test_keel_etcd.c — every libkeel call against one real etcd 3.4 node:
 * KV (range options, put, delete, txn with nested ops), compaction errors,
 * leases and keep-alive, watches (events, prev_kv, progress, cancel,
 * compacted start), cluster membership, maintenance (status, alarms,
 * defragment, hash-kv, snapshot), the NOSPACE mapping and a deadline
 * against a stopped server. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd_harness.h"
#include "keel.h"

static struct etcd_cluster cl;
static keel_sync *S;

#define B(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

static int group_setup(void **state) {
  (void)state;
  if (etcd_cluster_start(&cl, 1, NULL) != 0)
    return -1;
  const char *eps[1];
  etcd_cluster_endpoints(&cl, eps);
  struct keel_config cfg;
  keel_config_default(&cfg);
  cfg.endpoints = eps;
  cfg.n_endpoints = 1;
  return keel_sync_new(&cfg, &S);
}

static int group_teardown(void **state) {
  (void)state;
  keel_sync_free(S);
  etcd_cluster_stop(&cl);
  return 0;
}

static int64_t put(const char *k, const char *v) {
  int64_t rev = 0;
  int rc = keel_sync_put_str(S, k, v, &rev);
  if (rc != 0)
    fail_msg("put %s: %s (%s)", k, keel_strerror(rc), keel_sync_message(S));
  return rev;
}

static void test_kv(void **state) {
  (void)state;
  int64_t r1 = put("kv/a", "1");
  int64_t r2 = put("kv/b", "2");
  put("kv/c", "3");
  char *v;
  size_t vl;
  int64_t mod;
  assert_int_equal(keel_sync_get(S, "kv/b", &v, &vl, &mod), 0);
  assert_string_equal(v, "2");
  assert_int_equal(mod, r2);
  free(v);
  assert_int_equal(keel_sync_get(S, "kv/none", &v, &vl, &mod), KEEL_ENOTFOUND);

  /* Prefix, limit, sort descending by key: c, b; more and count. */
  uint8_t end[8];
  struct keel_range_req r = {.key = B("kv/")};
  r.range_end = end;
  r.range_end_len = keel_prefix_end(r.key, r.key_len, end);
  r.limit = 2;
  r.sort_order = KEEL_SORT_DESCEND;
  r.sort_target = KEEL_SORT_KEY;
  struct keel_range_resp *rr;
  assert_int_equal(keel_sync_range(S, &r, NULL, &rr), 0);
  assert_int_equal(rr->n_kvs, 2);
  assert_true(rr->more);
  assert_int_equal(rr->count, 3);
  assert_memory_equal(rr->kvs[0].key, "kv/c", 4);
  assert_memory_equal(rr->kvs[1].value, "2", 1);
  assert_int_equal(rr->kvs[1].version, 1);
  assert_int_equal(rr->kvs[1].create_revision, r2);
  keel_resp_free(rr);
  /* keys_only, count_only, serializable, mod-revision filter. */
  r.limit = 0;
  r.keys_only = 1;
  r.serializable = 1;
  assert_int_equal(keel_sync_range(S, &r, NULL, &rr), 0);
  assert_int_equal(rr->n_kvs, 3);
  assert_int_equal(rr->kvs[0].value_len, 0);
  keel_resp_free(rr);
  r.keys_only = 0;
  r.count_only = 1;
  assert_int_equal(keel_sync_range(S, &r, NULL, &rr), 0);
  assert_int_equal(rr->n_kvs, 0);
  assert_int_equal(rr->count, 3);
  keel_resp_free(rr);
  r.count_only = 0;
  r.min_mod_revision = r2;
  r.sort_order = KEEL_SORT_ASCEND;
  assert_int_equal(keel_sync_range(S, &r, NULL, &rr), 0);
  assert_int_equal(rr->n_kvs, 2);
  assert_memory_equal(rr->kvs[0].key, "kv/b", 4);
  keel_resp_free(rr);

  /* Put with prev_kv; a read at an older revision sees the old value. */
  struct keel_put_req p = {.key = B("kv/a"), .value = B("one"), .prev_kv = 1};
  struct keel_put_resp *pr;
  assert_int_equal(keel_sync_put(S, &p, NULL, &pr), 0);
  assert_non_null(pr->prev_kv);
  assert_memory_equal(pr->prev_kv->value, "1", 1);
  keel_resp_free(pr);
  struct keel_range_req old = {.key = B("kv/a"), .revision = r1};
  assert_int_equal(keel_sync_range(S, &old, NULL, &rr), 0);
  assert_memory_equal(rr->kvs[0].value, "1", 1);
  keel_resp_free(rr);
  /* ignore_value keeps the value. */
  struct keel_put_req iv = {.key = B("kv/a"), .ignore_value = 1};
  assert_int_equal(keel_sync_put(S, &iv, NULL, NULL), 0);
  assert_int_equal(keel_sync_get(S, "kv/a", &v, &vl, NULL), 0);
  assert_string_equal(v, "one");
  free(v);

  /* Delete the prefix with prev_kv. */
  struct keel_delete_req d = {.key = B("kv/"), .prev_kv = 1};
  d.range_end = end;
  d.range_end_len = r.range_end_len;
  struct keel_delete_resp *dr;
  assert_int_equal(keel_sync_delete(S, &d, NULL, &dr), 0);
  assert_int_equal(dr->deleted, 3);
  assert_int_equal(dr->n_prev_kvs, 3);
  keel_resp_free(dr);
}

static void test_txn(void **state) {
  (void)state;
  int64_t rev = put("txn/k", "v1");
  /* if mod(txn/k) == rev: put txn/k=v2, get txn/k, nested txn (if
   * value(txn/k) == "v1": etcd evaluates every compare, nested ones too,
   * before applying any op) */
  struct keel_compare inner_cmp = {.result = KEEL_CMP_EQUAL,
                                   .target = KEEL_CMP_VALUE,
                                   .key = B("txn/k"),
                                   .value = B("v1")};
  struct keel_op inner_ops[] = {
      {.type = KEEL_OP_PUT,
       .u.put = {.key = B("txn/nested"), .value = B("y")}}};
  struct keel_txn_req inner = {.compares = &inner_cmp,
                               .n_compares = 1,
                               .success = inner_ops,
                               .n_success = 1};
  struct keel_compare cmp = {.result = KEEL_CMP_EQUAL,
                             .target = KEEL_CMP_MOD,
                             .key = B("txn/k"),
                             .number = rev};
  struct keel_op succ[] = {
      {.type = KEEL_OP_PUT, .u.put = {.key = B("txn/k"), .value = B("v2")}},
      {.type = KEEL_OP_RANGE, .u.range = {.key = B("txn/k")}},
      {.type = KEEL_OP_TXN, .u.txn = &inner},
      {.type = KEEL_OP_DELETE, .u.del = {.key = B("txn/none")}},
  };
  struct keel_op fail[] = {
      {.type = KEEL_OP_RANGE, .u.range = {.key = B("txn/k")}}};
  struct keel_txn_req t = {.compares = &cmp,
                           .n_compares = 1,
                           .success = succ,
                           .n_success = 4,
                           .failure = fail,
                           .n_failure = 1};
  struct keel_opts guarded = {.idempotent = 1}; /* the compare guards it */
  struct keel_txn_resp *tr;
  assert_int_equal(keel_sync_txn(S, &t, &guarded, &tr), 0);
  assert_true(tr->succeeded);
  assert_int_equal(tr->n_responses, 4);
  assert_int_equal(tr->responses[0].type, KEEL_OP_PUT);
  assert_int_equal(tr->responses[1].type, KEEL_OP_RANGE);
  assert_memory_equal(tr->responses[1].u.range->kvs[0].value, "v2", 2);
  assert_int_equal(tr->responses[2].type, KEEL_OP_TXN);
  assert_true(tr->responses[2].u.txn->succeeded);
  assert_int_equal(tr->responses[3].u.del->deleted, 0);
  keel_resp_free(tr);
  /* The same txn again: the guard fails, the failure branch runs. */
  assert_int_equal(keel_sync_txn(S, &t, &guarded, &tr), 0);
  assert_false(tr->succeeded);
  assert_int_equal(tr->n_responses, 1);
  keel_resp_free(tr);
  /* Two puts of one key: etcd's duplicate-key error. */
  struct keel_op dup[] = {
      {.type = KEEL_OP_PUT, .u.put = {.key = B("txn/d"), .value = B("1")}},
      {.type = KEEL_OP_PUT, .u.put = {.key = B("txn/d"), .value = B("2")}}};
  struct keel_txn_req td = {.success = dup, .n_success = 2};
  assert_int_equal(keel_sync_txn(S, &td, NULL, &tr), KEEL_EDUPKEY);
  assert_null(tr);
  assert_non_null(strstr(keel_sync_message(S), "duplicate key"));
}

static void test_compact_errors(void **state) {
  (void)state;
  int64_t r1 = put("cmp/k", "1");
  int64_t r2 = put("cmp/k", "2");
  assert_int_equal(keel_sync_compact(S, r2, 1), 0);
  struct keel_range_req r = {.key = B("cmp/k"), .revision = r1};
  struct keel_range_resp *rr;
  assert_int_equal(keel_sync_range(S, &r, NULL, &rr), KEEL_ECOMPACTED);
  assert_non_null(strstr(keel_sync_message(S), "compacted"));
  r.revision = r2 + 1000;
  assert_int_equal(keel_sync_range(S, &r, NULL, &rr), KEEL_EFUTUREREV);
  assert_int_equal(keel_sync_compact(S, r1, 0), KEEL_ECOMPACTED);
}

static void test_lease(void **state) {
  (void)state;
  struct keel_lease_grant_resp *g;
  assert_int_equal(keel_sync_lease_grant(S, 30, 0, &g), 0);
  int64_t id = g->id;
  assert_true(id > 0);
  assert_int_equal(g->ttl, 30);
  keel_resp_free(g);
  struct keel_put_req p = {.key = B("lease/k"), .value = B("x"), .lease = id};
  assert_int_equal(keel_sync_put(S, &p, NULL, NULL), 0);
  struct keel_lease_ttl_resp *t;
  assert_int_equal(keel_sync_lease_ttl(S, id, 1, &t), 0);
  assert_int_equal(t->granted_ttl, 30);
  assert_true(t->ttl > 0 && t->ttl <= 30);
  assert_int_equal(t->n_keys, 1);
  assert_memory_equal(t->keys[0].data, "lease/k", 7);
  keel_resp_free(t);
  struct keel_lease_list_resp *l;
  assert_int_equal(keel_sync_lease_leases(S, &l), 0);
  int found = 0;
  for (size_t i = 0; i < l->n_ids; i++)
    found |= l->ids[i] == id;
  assert_true(found);
  keel_resp_free(l);
  /* A chosen id twice: lease exists. */
  assert_int_equal(keel_sync_lease_grant(S, 30, 4242, &g), 0);
  keel_resp_free(g);
  assert_int_equal(keel_sync_lease_grant(S, 30, 4242, &g), KEEL_ELEASEEXISTS);
  assert_int_equal(keel_sync_lease_revoke(S, 4242), 0);
  /* Revoke removes the key; a second revoke: lease not found. */
  assert_int_equal(keel_sync_lease_revoke(S, id), 0);
  assert_int_equal(keel_sync_get(S, "lease/k", NULL, NULL, NULL),
                   KEEL_ENOTFOUND);
  assert_int_equal(keel_sync_lease_revoke(S, id), KEEL_ELEASENOTFOUND);
  assert_non_null(strstr(keel_sync_message(S), "lease not found"));
}

/* ---- async helpers ---- */

struct ka_state {
  int renewals, final_err, ended;
  int64_t last_ttl;
};

static void on_ka(keel_keepalive *ka, int err, int64_t ttl, void *ud) {
  (void)ka;
  struct ka_state *st = ud;
  if (err) {
    st->final_err = err;
    st->ended = 1;
  } else {
    st->renewals++;
    st->last_ttl = ttl;
  }
}

static void on_timer_flag(uv_timer_t *t) {
  *(int *)t->data = 1;
}

/* Runs the loop for ms (a time-bounded observation, not a sync point). */
static void run_for(uv_loop_t *loop, uint64_t ms) {
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_timer_flag, ms, 0);
  while (!fired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs until *flag or the bound (then fails). */
static void run_until(uv_loop_t *loop, int *flag, uint64_t bound_ms) {
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_timer_flag, bound_ms, 0);
  while (!*flag && !fired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  if (!*flag)
    fail_msg("condition not reached within %llu ms",
             (unsigned long long)bound_ms);
}

static void test_keepalive(void **state) {
  (void)state;
  keel_client *c = keel_sync_client(S);
  struct keel_lease_grant_resp *g;
  assert_int_equal(keel_sync_lease_grant(S, 2, 0, &g), 0);
  int64_t id = g->id;
  keel_resp_free(g);
  /* The sync handle's loop drives the async API too. */
  uv_loop_t *loop = keel_sync_loop(S);
  struct ka_state st = {0};
  keel_keepalive *ka;
  assert_int_equal(keel_lease_keepalive(c, id, on_ka, &st, &ka), 0);
  /* 3.5 s > the 2 s TTL: only renewals (every ~0.67 s) keep it. */
  run_for(loop, 3500);
  assert_true(st.renewals >= 4);
  assert_int_equal(st.last_ttl, 2);
  struct keel_lease_ttl_resp *t;
  assert_int_equal(keel_sync_lease_ttl(S, id, 0, &t), 0);
  assert_true(t->ttl > 0);
  keel_resp_free(t);
  keel_lease_keepalive_stop(ka);
  assert_int_equal(keel_sync_lease_revoke(S, id), 0);
  /* Keeping a revoked lease alive: the callback says it is gone. */
  struct ka_state st2 = {0};
  assert_int_equal(keel_lease_keepalive(c, id, on_ka, &st2, NULL), 0);
  run_until(loop, &st2.ended, 5000);
  assert_int_equal(st2.final_err, KEEL_ELEASENOTFOUND);
}

struct wstate {
  int batches, n, err, empty;
  int64_t revs[64];
  int types[64];
  char prev[64][8];
  int64_t compact, hdr_rev;
};

static void on_w(keel_watcher *w, const struct keel_watch_batch *b, void *ud) {
  (void)w;
  struct wstate *s = ud;
  s->batches++;
  if (b->err) {
    s->err = b->err;
    s->compact = b->compact_revision;
    return;
  }
  if (b->n_events == 0) {
    s->empty++;
    s->hdr_rev = b->header.revision;
  }
  for (size_t i = 0; i < b->n_events && s->n < 64; i++) {
    s->revs[s->n] = b->events[i].kv.mod_revision;
    s->types[s->n] = b->events[i].type;
    if (b->events[i].prev_kv)
      snprintf(s->prev[s->n], 8, "%.*s", (int)b->events[i].prev_kv->value_len,
               b->events[i].prev_kv->value);
    s->n++;
  }
}

static void on_done_flag(const struct keel_result *res, const void *resp,
                         void *ud) {
  (void)resp;
  *(int *)ud = res->err == 0 ? 1 : res->err;
}

static void test_watch(void **state) {
  (void)state;
  keel_client *c = keel_sync_client(S);
  uv_loop_t *loop = keel_sync_loop(S);
  uint8_t end[16];
  struct keel_watch_req wr = {.key = B("w/"), .prev_kv = 1};
  wr.range_end = end;
  wr.range_end_len = keel_prefix_end(wr.key, wr.key_len, end);
  struct wstate ws = {0};
  keel_watcher *w;
  assert_int_equal(keel_watch_create(c, &wr, on_w, &ws, &w), 0);
  /* Wait for "created" (the resume point becomes known). */
  while (keel_watch_next_revision(w) == 0)
    uv_run(loop, UV_RUN_ONCE);
  int64_t first = keel_watch_next_revision(w);
  put("w/a", "1");
  put("w/a", "2");
  put("other", "x");
  struct keel_delete_req d = {.key = B("w/a")};
  assert_int_equal(keel_sync_delete(S, &d, NULL, NULL), 0);
  while (ws.n < 3)
    uv_run(loop, UV_RUN_ONCE);
  assert_int_equal(ws.n, 3);
  assert_int_equal(ws.revs[0], first);
  assert_int_equal(ws.revs[1], first + 1);
  assert_int_equal(ws.revs[2], first + 3); /* "other" is not ours */
  assert_int_equal(ws.types[2], KEEL_EVENT_DELETE);
  assert_string_equal(ws.prev[2], "2");
  assert_string_equal(ws.prev[1], "1");
  /* Progress request: an empty batch at the current revision. */
  assert_int_equal(keel_watch_progress(c), 0);
  while (ws.empty == 0)
    uv_run(loop, UV_RUN_ONCE);
  assert_int_equal(ws.hdr_rev, first + 3);
  keel_watch_cancel(w);
  put("w/b", "after cancel");
  int done = 0;
  struct keel_range_req rr = {.key = B("w/b")};
  keel_range(c, &rr, NULL, on_done_flag, &done);
  run_until(loop, &done, 5000);
  assert_int_equal(ws.n, 3); /* nothing after cancel */

  /* Watching from a compacted revision: KEEL_ECOMPACTED with the
   * compact revision. */
  int64_t cr = put("w/c", "1");
  assert_int_equal(keel_sync_compact(S, cr, 0), 0);
  struct keel_watch_req old = {.key = B("w/c"), .start_revision = first};
  struct wstate os = {0};
  assert_int_equal(keel_watch_create(c, &old, on_w, &os, NULL), 0);
  while (os.err == 0)
    uv_run(loop, UV_RUN_ONCE);
  assert_int_equal(os.err, KEEL_ECOMPACTED);
  assert_int_equal(os.compact, cr);
}

struct mres {
  int done;
  int err;
  uint64_t id;
  int learner;
  size_t n;
  char msg[200];
};

static void on_m(const struct keel_result *res, const void *resp, void *ud) {
  struct mres *r = ud;
  const struct keel_members_resp *m = resp;
  r->done = 1;
  r->err = res->err;
  snprintf(r->msg, sizeof(r->msg), "%s", res->message);
  if (m) {
    r->n = m->n_members;
    if (m->added) {
      r->id = m->added->id;
      r->learner = m->added->is_learner;
    }
  }
}

static void test_cluster(void **state) {
  (void)state;
  struct keel_members_resp *m;
  assert_int_equal(keel_sync_member_list(S, &m), 0);
  assert_int_equal(m->n_members, 1);
  assert_string_equal(m->members[0].name, "n0");
  assert_int_equal(m->members[0].n_client_urls, 1);
  assert_string_equal(m->members[0].client_urls[0], cl.nodes[0].client_url);
  keel_resp_free(m);
  assert_int_equal(keel_sync_endpoints_refresh(S), 0);
  assert_int_equal(keel_endpoint_count(keel_sync_client(S)), 1);

  /* Add a learner (never started), update its peer URL, fail to promote
   * it (not in sync), remove it, fail to remove it again. */
  keel_client *c = keel_sync_client(S);
  uv_loop_t *loop = keel_sync_loop(S);
  char peer[64];
  snprintf(peer, sizeof(peer), "http://%s:1", cl.ip);
  const char *peers[] = {peer};
  struct mres r = {0};
  assert_int_equal(keel_member_add(c, peers, 1, 1, NULL, on_m, &r), 0);
  run_until(loop, &r.done, 5000);
  assert_int_equal(r.err, 0);
  assert_true(r.learner);
  assert_int_equal(r.n, 2);
  uint64_t id = r.id;
  snprintf(peer, sizeof(peer), "http://%s:2", cl.ip);
  memset(&r, 0, sizeof(r));
  assert_int_equal(keel_member_update(c, id, peers, 1, NULL, on_m, &r), 0);
  run_until(loop, &r.done, 5000);
  assert_int_equal(r.err, 0);
  memset(&r, 0, sizeof(r));
  assert_int_equal(keel_member_promote(c, id, NULL, on_m, &r), 0);
  run_until(loop, &r.done, 5000);
  assert_int_equal(r.err, KEEL_EMEMBER);
  memset(&r, 0, sizeof(r));
  assert_int_equal(keel_member_remove(c, id, NULL, on_m, &r), 0);
  run_until(loop, &r.done, 5000);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.n, 1);
  memset(&r, 0, sizeof(r));
  assert_int_equal(keel_member_remove(c, id, NULL, on_m, &r), 0);
  run_until(loop, &r.done, 5000);
  assert_int_equal(r.err, KEEL_EMEMBER);
  assert_non_null(strstr(r.msg, "member"));
}

struct snapst {
  uint64_t bytes, last_remaining;
  int chunks, stop_after, done, err;
};
static int on_snap_data(const uint8_t *d, size_t n, uint64_t remaining,
                        void *ud) {
  struct snapst *s = ud;
  (void)d;
  s->bytes += n;
  s->chunks++;
  s->last_remaining = remaining;
  return s->stop_after && s->chunks >= s->stop_after;
}
static void on_snap_done(const struct keel_result *res, const void *resp,
                         void *ud) {
  (void)resp;
  struct snapst *s = ud;
  s->done = 1;
  s->err = res->err;
}

struct any {
  int done, err;
  struct keel_header hdr;
  uint32_t hash;
  size_t n;
};
static void on_any(const struct keel_result *res, const void *resp, void *ud) {
  struct any *a = ud;
  a->done = 1;
  a->err = res->err;
  if (resp)
    a->hdr = *(const struct keel_header *)resp; /* header comes first */
}
static void on_hash(const struct keel_result *res, const void *resp, void *ud) {
  struct any *a = ud;
  a->done = 1;
  a->err = res->err;
  if (resp)
    a->hash = ((const struct keel_hashkv_resp *)resp)->hash;
}
static void on_alarm(const struct keel_result *res, const void *resp,
                     void *ud) {
  struct any *a = ud;
  a->done = 1;
  a->err = res->err;
  if (resp)
    a->n = ((const struct keel_alarm_resp *)resp)->n_alarms;
}

static void test_maintenance(void **state) {
  (void)state;
  keel_client *c = keel_sync_client(S);
  uv_loop_t *loop = keel_sync_loop(S);
  struct keel_status_resp *st;
  assert_int_equal(keel_sync_status(S, 0, &st), 0);
  assert_non_null(strstr(st->version, "3.4"));
  assert_int_equal(st->leader, st->header.member_id);
  assert_true(st->db_size > 0);
  assert_true(st->raft_index > 0);
  keel_resp_free(st);
  struct any a = {0};
  assert_int_equal(keel_alarm_list(c, NULL, on_alarm, &a), 0);
  run_until(loop, &a.done, 5000);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.n, 0);
  memset(&a, 0, sizeof(a));
  assert_int_equal(
      keel_alarm_disarm(c, 0, KEEL_ALARM_NOSPACE, NULL, on_alarm, &a), 0);
  run_until(loop, &a.done, 5000);
  assert_int_equal(a.err, 0);
  memset(&a, 0, sizeof(a));
  assert_int_equal(keel_defragment(c, 0, NULL, on_any, &a), 0);
  run_until(loop, &a.done, 10000);
  assert_int_equal(a.err, 0); /* (etcd 3.4 sends an empty header here) */
  memset(&a, 0, sizeof(a));
  assert_int_equal(keel_hashkv(c, 0, 0, NULL, on_hash, &a), 0);
  run_until(loop, &a.done, 5000);
  assert_int_equal(a.err, 0);
  assert_true(a.hash != 0);
  /* Snapshot: every byte, remaining reaches 0. */
  struct snapst s = {0};
  assert_int_equal(keel_snapshot(c, 0, NULL, on_snap_data, on_snap_done, &s),
                   0);
  run_until(loop, &s.done, 10000);
  assert_int_equal(s.err, 0);
  assert_true(s.bytes > 4096);
  assert_int_equal(s.last_remaining, 0);
  /* Stopped by the caller after the first chunk. */
  struct snapst s2 = {.stop_after = 1};
  assert_int_equal(keel_snapshot(c, -1, NULL, on_snap_data, on_snap_done, &s2),
                   0);
  run_until(loop, &s2.done, 10000);
  assert_int_equal(s2.err, KEEL_ECANCELED);
  assert_int_equal(s2.chunks, 1);
}

/* Deadline: the server is stopped (SIGSTOP), so a read cannot finish. */
static void test_deadline_stopped_server(void **state) {
  (void)state;
  put("dl/k", "1");
  etcd_node_stop_signal(&cl, 0, SIGSTOP);
  struct keel_range_req r = {.key = B("dl/k")};
  struct keel_opts o = {.timeout_ms = 300};
  uint64_t t0 = uv_hrtime();
  struct keel_range_resp *rr;
  int rc = keel_sync_range(S, &r, &o, &rr);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  etcd_node_stop_signal(&cl, 0, SIGCONT);
  assert_int_equal(rc, KEEL_ETIMEOUT);
  assert_true(ms >= 290 && ms < 3000);
  /* And it works again once the server runs. */
  rc = keel_sync_range(S, &r, NULL, &rr);
  if (rc != 0)
    fail_msg("after SIGCONT: %s: %s", keel_strerror(rc), keel_sync_message(S));
  keel_resp_free(rr);
}

/* NOSPACE: a node with a tiny quota; writes fail with KEEL_ENOSPACE and
 * the alarm shows in the alarm list. */
static struct etcd_cluster q;
static int q_setup(void **state) {
  (void)state;
  return etcd_cluster_start(&q, 1, "--quota-backend-bytes=262144");
}
static int q_teardown(void **state) {
  (void)state;
  etcd_cluster_stop(&q);
  return 0;
}

static void test_nospace(void **state) {
  (void)state;
  const char *eps[1];
  etcd_cluster_endpoints(&q, eps);
  struct keel_config cfg;
  keel_config_default(&cfg);
  cfg.endpoints = eps;
  cfg.n_endpoints = 1;
  keel_sync *s;
  assert_int_equal(keel_sync_new(&cfg, &s), 0);
  static char big[64 * 1024];
  memset(big, 'x', sizeof(big) - 1);
  int rc = 0;
  /* etcd checks the quota against the committed backend size, which grows
   * at its batch commits (every 100 ms): keep writing until it refuses. */
  for (int i = 0; i < 2000 && rc == 0; i++) {
    char k[32];
    snprintf(k, sizeof(k), "big/%d", i);
    rc = keel_sync_put_str(s, k, big, NULL);
  }
  assert_int_equal(rc, KEEL_ENOSPACE);
  assert_non_null(strstr(keel_sync_message(s), "database space exceeded"));
  struct any a = {0};
  assert_int_equal(keel_alarm_list(keel_sync_client(s), NULL, on_alarm, &a), 0);
  run_until(keel_sync_loop(s), &a.done, 5000);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.n, 1);
  /* Deletes still work past the quota. */
  struct keel_delete_req d = {.key = B("big/0")};
  assert_int_equal(keel_sync_delete(s, &d, NULL, NULL), 0);
  keel_sync_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kv),
      cmocka_unit_test(test_txn),
      cmocka_unit_test(test_compact_errors),
      cmocka_unit_test(test_lease),
      cmocka_unit_test(test_keepalive),
      cmocka_unit_test(test_watch),
      cmocka_unit_test(test_cluster),
      cmocka_unit_test(test_maintenance),
      cmocka_unit_test(test_deadline_stopped_server),
      cmocka_unit_test_setup_teardown(test_nospace, q_setup, q_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

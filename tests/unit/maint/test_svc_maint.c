/* test_svc_maint.c — the Maintenance service (server/svc_maint.h) on one
 * loop: a one-member node with the real apply hook, svc_kv + svc_maint on a
 * client listener, and libkeel as the client (maint_client.c).
 *
 * Covered: a snapshot of several chunks arrives whole, in etcd's file shape
 * (size % 512 == 32, the last 32 bytes the SHA-256 of the rest, the store
 * stream inside), remaining_bytes 0 only on the last chunk; a snapshot the
 * client stops after one chunk releases its store snapshot and the next one
 * works; MoveLeader to itself answers at once, to a stranger "bad leader
 * transferee"; HashKV at the current revision equals the store's, below
 * the compact revision it is "compacted"; Defragment shrinks the file after
 * a compaction (the physical compaction runs first); an ACTIVATEd alarm is
 * listed with its member and disarmed through the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include "../node/loop_helper.h"
#include "apply.h"
#include "client_listener.h"
#include "config.h"
#include "keel_error.h"
#include "keel_log.h"
#include "maint_client.h"
#include "node.h"
#include "node_apply.h"
#include "raft.h"
#include "store.h"
#include "svc_kv.h"
#include "svc_maint.h"

static struct {
  uv_loop_t loop;
  char dir[256];
  struct keel_config cfg;
  struct store *st;
  struct node *n;
  struct svc_kv *kv;
  struct svc_maint *m;
  keel_client_listener *ls;
  int stopped, closed;
} T;

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  socklen_t l = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &l);
  close(fd);
  return ntohs(a.sin_port);
}

static int is_leader(void *ctx) {
  (void)ctx;
  struct node_status s;
  node_status(T.n, &s);
  return s.role == RAFT_LEADER;
}

static int setup(void **state) {
  (void)state;
  memset(&T, 0, sizeof(T));
  keel_log_set_level(KEEL_LOG_WARN);
  const char *base = getenv("TMPDIR");
  snprintf(T.dir, sizeof(T.dir), "%s/keel-maint-XXXXXX",
           base && base[0] ? base : "/tmp");
  assert_non_null(mkdtemp(T.dir));
  assert_int_equal(uv_loop_init(&T.loop), 0);
  char peer[64], cluster[96], dd[300];
  snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", free_port());
  snprintf(cluster, sizeof(cluster), "n1=%s", peer);
  snprintf(dd, sizeof(dd), "%s/data", T.dir);
  char *argv[] = {"keeld", "--name",
                  "n1",    "--data-dir",
                  dd,      "--listen-peer-urls",
                  peer,    "--initial-advertise-peer-urls",
                  peer,    "--initial-cluster",
                  cluster, "--heartbeat-interval",
                  "10",    "--election-timeout",
                  "100",   NULL};
  char err[KEEL_CONFIG_ERR_MAX];
  char *envp[] = {NULL};
  assert_int_equal(keel_config_load(&T.cfg, 15, argv, envp, err, sizeof(err)),
                   0);
  struct store_options so = {0};
  so.quota_bytes = 64ull << 20;
  assert_int_equal(store_open(dd, &so, &T.st), 0);
  struct node_options no = {0};
  no.cfg = &T.cfg;
  no.store = T.st;
  no.apply = node_apply_codec_ops();
  no.seed = 7;
  assert_int_equal(node_new(&T.loop, &no, &T.n, err, sizeof(err)), 0);
  assert_true(loop_run_until(&T.loop, is_leader, NULL, 5000));
  assert_int_equal(svc_kv_new(T.n, T.st, &T.cfg, &T.kv), 0);
  assert_int_equal(svc_maint_new(&T.loop, T.n, T.st, &T.cfg, NULL, &T.m), 0);
  assert_int_equal(keel_client_listener_new(&T.loop, NULL, &T.ls), 0);
  assert_int_equal(svc_kv_register(T.kv, keel_client_listener_grpc(T.ls)), 0);
  assert_int_equal(svc_maint_register(T.m, T.ls), 0);
  assert_int_equal(keel_client_listener_start(T.ls, "127.0.0.1", 0), 0);
  assert_int_equal(mc_open(&T.loop, keel_client_listener_port(T.ls)), 0);
  return 0;
}

static void on_closed(void *ud) {
  (void)ud;
  T.closed = 1;
}

static void on_stopped(void *ud) {
  (void)ud;
  T.stopped = 1;
}

static int both_done(void *ctx) {
  (void)ctx;
  return T.closed && T.stopped;
}

static int teardown(void **state) {
  (void)state;
  mc_close();
  svc_kv_detach(T.kv);
  svc_maint_detach(T.m);
  assert_int_equal(keel_client_listener_shutdown(T.ls, 200, on_closed, NULL),
                   0);
  node_stop(T.n, 0, on_stopped, NULL);
  assert_true(loop_run_until(&T.loop, both_done, NULL, 5000));
  keel_client_listener_free(T.ls);
  svc_kv_free(T.kv);
  svc_maint_free(T.m);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&T.loop), 0);
  store_close(T.st);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

static void sha256(const uint8_t *d, size_t n, uint8_t out[32]) {
  unsigned int l = 0;
  EVP_Digest(d, n, out, &l, EVP_sha256(), NULL);
}

static void test_snapshot_whole_and_stopped(void **state) {
  (void)state;
  char k[16];
  /* ~4 MB: more than the stream's send buffer and the client's HTTP/2
   * window, so a client that stops early finds the stream still open. */
  for (int i = 0; i < 30; i++) {
    snprintf(k, sizeof(k), "big%d", i);
    assert_int_equal(mc_put(k, 140000, NULL), 0);
  }
  uint8_t *buf;
  size_t len, chunks;
  uint64_t last;
  int bad;
  assert_int_equal(mc_snapshot(0, &buf, &len, &chunks, &last, &bad), 0);
  assert_true(chunks >= 4);
  assert_int_equal(last, 0);
  assert_false(bad);
  assert_int_equal(len % 512, 32);
  uint8_t h[32];
  sha256(buf, len - 32, h);
  assert_memory_equal(h, buf + len - 32, 32);
  assert_memory_equal(buf, "KEELSNAP", 8);
  struct svc_maint_stats ms;
  svc_maint_stats(T.m, &ms);
  assert_int_equal(ms.snapshots, 1);
  assert_int_equal(ms.open_snapshots, 0);

  /* Stopped by the client after one chunk: the stream's store snapshot is
   * released (on_close), and a new stream works. */
  size_t whole = chunks;
  int rc = mc_snapshot(1, &buf, &len, &chunks, &last, &bad);
  assert_int_not_equal(rc, 0);
  assert_true(chunks >= 1 && chunks < whole);
  struct svc_maint_stats now;
  uint64_t deadline = uv_now(&T.loop) + 5000;
  do {
    uv_run(&T.loop, UV_RUN_NOWAIT);
    svc_maint_stats(T.m, &now);
    uv_update_time(&T.loop);
  } while (now.open_snapshots && uv_now(&T.loop) < deadline);
  assert_int_equal(now.open_snapshots, 0);
  assert_int_equal(now.snapshots, 1);
  assert_int_equal(now.snapshots_canceled, 1);
  assert_int_equal(mc_snapshot(0, &buf, &len, &chunks, &last, &bad), 0);
  assert_int_equal(len % 512, 32);
}

static void test_move_leader(void **state) {
  (void)state;
  struct node_status s;
  node_status(T.n, &s);
  assert_int_equal(mc_move_leader(s.id), 0);
  assert_int_not_equal(mc_move_leader(0x1234), 0);
  assert_int_equal(mc_grpc_status(), 9); /* FailedPrecondition */
  assert_non_null(strstr(mc_message(), "bad leader transferee"));
  struct svc_maint_stats ms;
  svc_maint_stats(T.m, &ms);
  assert_int_equal(ms.move_waits, 0);
}

static void test_hashkv_and_defrag(void **state) {
  (void)state;
  int64_t r1 = 0, r2 = 0;
  for (int i = 0; i < 20; i++)
    assert_int_equal(mc_put("churn", 20000, &r1), 0);
  assert_int_equal(mc_put("last", 10, &r2), 0);
  uint32_t hash, want;
  int64_t compact, rev, wc, wr;
  assert_int_equal(mc_hashkv(0, &hash, &compact, &rev), 0);
  assert_int_equal(store_hash_kv(T.st, 0, &want, &wc, &wr), 0);
  assert_int_equal(hash, want);
  assert_int_equal(rev, r2);
  assert_int_equal(compact, 0);
  assert_int_equal(mc_compact(r2), 0);
  assert_int_equal(mc_hashkv(r1 - 1, &hash, &compact, &rev), KEEL_ECOMPACTED);
  assert_int_equal(mc_hashkv(0, &hash, &compact, &rev), 0);
  assert_int_equal(compact, r2);
  struct store_size before, after;
  assert_int_equal(store_size(T.st, &before), 0);
  assert_int_equal(mc_defrag(), 0);
  assert_int_equal(store_size(T.st, &after), 0);
  assert_true(after.size < before.size);
  struct svc_maint_stats ms;
  svc_maint_stats(T.m, &ms);
  assert_int_equal(ms.defrags, 1);
}

static int alarm_done;

static void on_alarm_applied(void *ud, int status,
                             const struct node_applied *applied) {
  (void)ud;
  (void)applied;
  assert_int_equal(status, 0);
  alarm_done = 1;
}

static int alarm_applied(void *ctx) {
  (void)ctx;
  return alarm_done;
}

static void test_alarm(void **state) {
  (void)state;
  size_t n = 9;
  uint64_t member = 0;
  assert_int_equal(mc_alarm_list(&n, &member), 0);
  assert_int_equal(n, 0);
  /* ACTIVATE as svc_kv's quota check proposes it. */
  struct node_status s;
  node_status(T.n, &s);
  Etcdserverpb__AlarmRequest ar = ETCDSERVERPB__ALARM_REQUEST__INIT;
  ar.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
  ar.memberid = s.id;
  ar.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
  Keelstore__Request rq = KEELSTORE__REQUEST__INIT;
  rq.op_case = KEELSTORE__REQUEST__OP_ALARM;
  rq.alarm = &ar;
  uint8_t *buf;
  size_t len;
  assert_int_equal(apply_request_encode(&rq, 0, &buf, &len), 0);
  alarm_done = 0;
  assert_int_equal(node_propose(T.n, buf, len, on_alarm_applied, NULL), 0);
  free(buf);
  assert_true(loop_run_until(&T.loop, alarm_applied, NULL, 5000));
  assert_int_equal(mc_alarm_list(&n, &member), 0);
  assert_int_equal(n, 1);
  assert_int_equal(member, s.id);
  assert_int_equal(store_nospace_alarm(T.st), 1);
  /* etcd has no wildcard: a DEACTIVATE for member 0 changes nothing. */
  assert_int_equal(mc_alarm_disarm(0, &n), 0);
  assert_int_equal(store_nospace_alarm(T.st), 1);
  assert_int_equal(mc_alarm_disarm(s.id, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(mc_alarm_list(&n, &member), 0);
  assert_int_equal(n, 0);
  assert_int_equal(store_nospace_alarm(T.st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_snapshot_whole_and_stopped, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_move_leader, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hashkv_and_defrag, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alarm, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

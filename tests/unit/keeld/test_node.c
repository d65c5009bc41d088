/* test_node.c — the node (server/node.h) in one process: a one-member
 * cluster on a real loop, store and disk thread. Proposals of one turn share
 * Readies and come back applied with their store responses in log order; a
 * request the decoder refuses gets the decoder's error; reads; the waiter
 * bound; a stop completes every waiter (KEEL_EUNKNOWN) and the stopped
 * callback; a restart resumes from the disk with every write there; the
 * bootstrap entries; without a quorum, writes and linearizable reads fail
 * while serializable reads run.
 * (Several nodes, forwarding, kill -9 and snapshots: tests/e2e/keeld.) */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../node/loop_helper.h"
#include "config.h"
#include "keel_error.h"
#include "keel_log.h"
#include "node.h"
#include "node_standin.h"
#include "raft.h"
#include "store.h"
#include "store.pb-c.h"

struct fx {
  char dir[256];
  uv_loop_t loop;
  struct keel_config cfg;
  struct store *st;
  struct node *n;
  int stopped;
  int port;          /* kept across restarts: the member id depends on it */
  bool absent_peers; /* two more members that never start */
};

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

static void fx_start(struct fx *f, size_t max_waiters) {
  char peer[64], cluster[160], dd[300];
  if (!f->port)
    f->port = free_port();
  int port = f->port;
  snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", port);
  if (f->absent_peers)
    snprintf(cluster, sizeof(cluster),
             "n1=%s,n2=http://127.0.0.1:1,n3=http://127.0.0.1:2", peer);
  else
    snprintf(cluster, sizeof(cluster), "n1=%s", peer);
  snprintf(dd, sizeof(dd), "%s/data", f->dir);
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
  assert_int_equal(keel_config_load(&f->cfg, 15, argv, envp, err, sizeof(err)),
                   0);
  struct store_options so = {0};
  so.quota_bytes = 64ull << 20;
  assert_int_equal(store_open(dd, &so, &f->st), 0);
  struct node_options no = {0};
  no.cfg = &f->cfg;
  no.store = f->st;
  no.apply = node_standin_put_ops();
  no.seed = 7;
  no.max_waiters = max_waiters;
  assert_int_equal(node_new(&f->loop, &no, &f->n, err, sizeof(err)), 0);
}

static int is_leader(void *ctx) {
  struct fx *f = ctx;
  struct node_status s;
  node_status(f->n, &s);
  return s.role == RAFT_LEADER;
}

static void on_stopped(void *ud) {
  ((struct fx *)ud)->stopped = 1;
}

static int stopped(void *ctx) {
  return ((struct fx *)ctx)->stopped;
}

static void fx_stop(struct fx *f) {
  f->stopped = 0;
  node_stop(f->n, 0, on_stopped, f);
  assert_true(loop_run_until(&f->loop, stopped, f, 5000));
  f->n = NULL;
  store_close(f->st);
  f->st = NULL;
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  const char *base = getenv("TMPDIR");
  snprintf(f->dir, sizeof(f->dir), "%s/keel-node-XXXXXX",
           base && base[0] ? base : "/tmp");
  assert_non_null(mkdtemp(f->dir));
  uv_loop_init(&f->loop);
  keel_log_set_level(KEEL_LOG_WARN);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  if (f->n)
    fx_stop(f);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* --- proposals --- */

struct result {
  int calls;
  int status;
  int64_t revision;
  int resp_error;
};

static void on_put(void *ud, int status, const struct node_applied *a) {
  struct result *r = ud;
  const struct store_response *resp = a ? a->resp : NULL;
  r->calls++;
  r->status = status;
  if (resp) {
    r->revision = resp->revision;
    r->resp_error = resp->error;
  }
}

static int propose_put(struct fx *f, const char *key, const char *val,
                       struct result *r) {
  uint8_t *buf;
  size_t len;
  assert_int_equal(node_standin_encode_put((const uint8_t *)key, strlen(key),
                                           (const uint8_t *)val, strlen(val),
                                           &buf, &len),
                   0);
  int rc = node_propose(f->n, buf, len, on_put, r);
  free(buf);
  return rc;
}

struct all_done {
  struct result *r;
  int n;
};

static int all_called(void *ctx) {
  struct all_done *a = ctx;
  for (int i = 0; i < a->n; i++)
    if (a->r[i].calls == 0)
      return 0;
  return 1;
}

static void test_batch_of_puts_applies_in_order(void **state) {
  struct fx *f = *state;
  fx_start(f, 0);
  assert_true(loop_run_until(&f->loop, is_leader, f, 5000));
  struct node_status before;
  node_status(f->n, &before);
  enum { N = 100 };
  struct result r[N] = {0};
  for (int i = 0; i < N; i++) {
    char k[16], v[16];
    snprintf(k, sizeof(k), "key%03d", i);
    snprintf(v, sizeof(v), "val%03d", i);
    assert_int_equal(propose_put(f, k, v, &r[i]), 0);
    assert_int_equal(r[i].calls, 0); /* never from inside node_propose */
  }
  struct all_done a = {r, N};
  assert_true(loop_run_until(&f->loop, all_called, &a, 5000));
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].status, 0);
    assert_int_equal(r[i].resp_error, 0);
    assert_int_equal(r[i].revision, i + 2); /* revision 1 is the empty store */
  }
  struct node_status after;
  node_status(f->n, &after);
  /* One turn of proposals: one Ready to persist them, one to apply them
   * (a single node commits once its own write is durable). */
  assert_true(after.readies - before.readies <= 3);
  assert_int_equal(after.proposals_applied, N);
  assert_int_equal(after.applied, after.commit);
  struct store_range_req q = {0};
  q.key = (const uint8_t *)"key042";
  q.key_len = 6;
  struct store_range_result res;
  assert_int_equal(store_range(f->st, &q, &res), 0);
  assert_int_equal(res.resp.n_kvs, 1);
  assert_memory_equal(res.resp.kvs[0].value, "val042", 6);
  store_range_result_free(&res);
}

static void test_decoder_error_reaches_the_waiter(void **state) {
  struct fx *f = *state;
  fx_start(f, 0);
  assert_true(loop_run_until(&f->loop, is_leader, f, 5000));
  /* A delete the put-only stand-in does not know: applied as a no-op. */
  Etcdserverpb__DeleteRangeRequest del =
      ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  Keelstore__Request req = KEELSTORE__REQUEST__INIT;
  req.op_case = KEELSTORE__REQUEST__OP_DELETE_RANGE;
  req.delete_range = &del;
  uint8_t buf[64];
  size_t len = keelstore__request__pack(&req, buf);
  struct result r = {0};
  assert_int_equal(node_propose(f->n, buf, len, on_put, &r), 0);
  struct all_done a = {&r, 1};
  assert_true(loop_run_until(&f->loop, all_called, &a, 5000));
  assert_int_equal(r.status, 0); /* applied, as a no-op */
  assert_int_equal(r.resp_error, -ENOTSUP);
  /* The node goes on. */
  struct result r2 = {0};
  assert_int_equal(propose_put(f, "after", "ok", &r2), 0);
  struct all_done a2 = {&r2, 1};
  assert_true(loop_run_until(&f->loop, all_called, &a2, 5000));
  assert_int_equal(r2.status, 0);
}

/* --- reads --- */

struct rd {
  int calls;
  int status;
};

static void on_read(void *ud, int status) {
  struct rd *r = ud;
  r->calls++;
  r->status = status;
}

static int read_called(void *ctx) {
  return ((struct rd *)ctx)->calls > 0;
}

static void test_reads(void **state) {
  struct fx *f = *state;
  fx_start(f, 0);
  assert_true(loop_run_until(&f->loop, is_leader, f, 5000));
  struct result w = {0};
  assert_int_equal(propose_put(f, "k", "v", &w), 0);
  struct all_done a = {&w, 1};
  assert_true(loop_run_until(&f->loop, all_called, &a, 5000));
  struct node_status s;
  node_status(f->n, &s);
  uint64_t acked_at = s.applied;
  struct rd lin = {0}, ser = {0}, lin2 = {0};
  assert_int_equal(node_read(f->n, true, on_read, &lin), 0);
  assert_int_equal(node_read(f->n, true, on_read, &lin2), 0);
  assert_int_equal(node_read(f->n, false, on_read, &ser), 0);
  assert_int_equal(ser.calls, 0); /* never from inside node_read */
  assert_int_equal(lin.calls, 0);
  assert_true(loop_run_until(&f->loop, read_called, &ser, 5000));
  assert_int_equal(ser.status, 0);
  assert_true(loop_run_until(&f->loop, read_called, &lin, 5000));
  assert_true(loop_run_until(&f->loop, read_called, &lin2, 5000));
  assert_int_equal(lin.status, 0);
  assert_int_equal(lin2.status, 0);
  /* Both linearizable reads (one ReadIndex request for the turn) ran with
   * the acknowledged write applied. */
  node_status(f->n, &s);
  assert_true(s.applied >= acked_at);
  assert_true(acked_at >= 2);
}

/* --- bounds and stop --- */

static void test_waiter_bound_and_stop(void **state) {
  struct fx *f = *state;
  fx_start(f, 4);
  assert_true(loop_run_until(&f->loop, is_leader, f, 5000));
  struct result r[5] = {0};
  for (int i = 0; i < 4; i++)
    assert_int_equal(propose_put(f, "k", "v", &r[i]), 0);
  assert_int_equal(propose_put(f, "k", "v", &r[4]), KEEL_EBUSY);
  /* Stop before the loop ran: nothing is committed, so every waiter learns
   * that its outcome is unknown, exactly once. */
  fx_stop(f);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].status, KEEL_EUNKNOWN);
  }
  assert_int_equal(r[4].calls, 0);
}

static void test_restart_resumes_from_disk(void **state) {
  struct fx *f = *state;
  fx_start(f, 0);
  assert_true(loop_run_until(&f->loop, is_leader, f, 5000));
  struct result r[10] = {0};
  for (int i = 0; i < 10; i++) {
    char k[8];
    snprintf(k, sizeof(k), "r%d", i);
    assert_int_equal(propose_put(f, k, "x", &r[i]), 0);
  }
  struct all_done a = {r, 10};
  assert_true(loop_run_until(&f->loop, all_called, &a, 5000));
  struct node_status s1;
  node_status(f->n, &s1);
  fx_stop(f);

  fx_start(f, 0);
  struct node_status s2;
  node_status(f->n, &s2);
  assert_int_equal(s2.applied, s1.applied); /* nothing applied twice */
  assert_true(s2.term >= s1.term);
  assert_true(loop_run_until(&f->loop, is_leader, f, 5000));
  struct result more = {0};
  assert_int_equal(propose_put(f, "r10", "y", &more), 0);
  struct all_done a2 = {&more, 1};
  assert_true(loop_run_until(&f->loop, all_called, &a2, 5000));
  assert_int_equal(more.status, 0);
  assert_int_equal(more.revision, r[9].revision + 1);
}

/* Without a quorum there is no leader: a write is refused at once
 * (certainly not applied), a linearizable read fails from the loop with
 * KEEL_ENOLEADER, a serializable read still runs. */
static void test_no_leader(void **state) {
  struct fx *f = *state;
  f->absent_peers = true;
  fx_start(f, 0);
  struct result r = {0};
  assert_int_equal(propose_put(f, "k", "v", &r), KEEL_ENOLEADER);
  struct rd lin = {0}, ser = {0};
  assert_int_equal(node_read(f->n, true, on_read, &lin), 0);
  assert_int_equal(node_read(f->n, false, on_read, &ser), 0);
  assert_int_equal(lin.calls + ser.calls, 0);
  assert_true(loop_run_until(&f->loop, read_called, &lin, 5000));
  assert_int_equal(lin.status, KEEL_ENOLEADER);
  assert_true(loop_run_until(&f->loop, read_called, &ser, 5000));
  assert_int_equal(ser.status, 0);
  struct node_status s;
  node_status(f->n, &s);
  assert_int_equal(s.leader, 0);
  assert_int_equal(r.calls, 0);
}

/* A new cluster's log starts with one ADD_NODE entry per bootstrap member
 * (decision 0774), committed; the member list names them. */
static void test_bootstrap_entries(void **state) {
  struct fx *f = *state;
  fx_start(f, 0);
  struct store_entries e;
  assert_int_equal(store_log_entries(f->st, 1, 2, 0, &e), 0);
  assert_int_equal(e.n, 1);
  assert_int_equal(e.ents[0].term, 1);
  assert_int_equal(e.ents[0].type, STORE_ENTRY_CONF_CHANGE);
  Keelstore__ConfChange *cc =
      keelstore__conf_change__unpack(NULL, e.ents[0].len, e.ents[0].data);
  assert_non_null(cc);
  assert_int_equal(cc->type, KEELSTORE__CONF_CHANGE_TYPE__CONF_ADD_NODE);
  assert_true(cc->node_id == f->cfg.member_id);
  assert_string_equal(cc->name, "n1");
  keelstore__conf_change__free_unpacked(cc, NULL);
  store_entries_free(&e);
  struct store_hard_state hs;
  struct store_conf_state cs;
  assert_int_equal(store_log_load_state(f->st, &hs, &cs), 0);
  assert_true(hs.term >= 1);
  assert_true(hs.commit >= 1);
  struct node_member m[4];
  assert_int_equal(node_members(f->n, m, 4), 1);
  assert_true(m[0].id == f->cfg.member_id);
  assert_false(m[0].learner);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_batch_of_puts_applies_in_order,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_decoder_error_reaches_the_waiter,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_reads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waiter_bound_and_stop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_resumes_from_disk, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_entries, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_leader, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

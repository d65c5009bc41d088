/* test_raft_scenario.c — exact message sequences (cowsql/etcd style trace
 * assertions): an election and log replication in a 3-node cluster, with
 * messages delivered in FIFO order. A change in what the core sends, or in
 * what order, shows up here as a readable diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define TMAX 64

struct trace {
  char line[TMAX][96];
  size_t n;
};

static void fmt(char *buf, size_t len, const struct raft_message *m) {
  int off = snprintf(buf, len, "%s %llu->%llu t%llu",
                     raft_msg_type_name(m->type), (unsigned long long)m->from,
                     (unsigned long long)m->to, (unsigned long long)m->term);
  switch (m->type) {
  case RAFT_MSG_VOTE:
  case RAFT_MSG_PRE_VOTE:
    snprintf(buf + off, len - (size_t)off, " last=%llu/%llu",
             (unsigned long long)m->index, (unsigned long long)m->log_term);
    break;
  case RAFT_MSG_APPEND:
    snprintf(buf + off, len - (size_t)off, " prev=%llu/%llu n=%zu commit=%llu",
             (unsigned long long)m->index, (unsigned long long)m->log_term,
             m->n_entries, (unsigned long long)m->commit);
    break;
  case RAFT_MSG_APPEND_RESPONSE:
    snprintf(buf + off, len - (size_t)off, " index=%llu%s",
             (unsigned long long)m->index, m->reject ? " reject" : "");
    break;
  case RAFT_MSG_HEARTBEAT:
    snprintf(buf + off, len - (size_t)off, " commit=%llu",
             (unsigned long long)m->commit);
    break;
  default:
    if (m->reject)
      snprintf(buf + off, len - (size_t)off, " reject");
    break;
  }
}

/* Delivers the whole queue FIFO, recording every message. */
static void run(struct h_net *net, struct trace *t) {
  h_drain_all(net);
  while (net->qn) {
    struct raft_message m = h_take(net, 0);
    if (t->n < TMAX)
      fmt(t->line[t->n++], sizeof(t->line[0]), &m);
    raft_step(net->r[m.to], &m);
    h_drain(net, (int)m.to);
    h_free_msg(&m);
  }
}

static void expect(const struct trace *t, const char *const *want, size_t n) {
  for (size_t i = 0; i < t->n || i < n; i++) {
    const char *got = i < t->n ? t->line[i] : "(nothing)";
    const char *exp = i < n ? want[i] : "(nothing)";
    if (strcmp(got, exp) != 0) {
      for (size_t k = 0; k < t->n; k++)
        print_message("  %zu: %s\n", k, t->line[k]);
      fail_msg("message %zu: got '%s', want '%s'", i, got, exp);
    }
  }
}

/* n1 times out and wins term 1; its no-op commits everywhere. */
static void test_scenario_election(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  for (int i = 0; i < 20; i++)
    raft_tick(net->r[1]);
  struct trace t = {0};
  run(net, &t);
  static const char *const want[] = {
      "vote 1->2 t1 last=0/0",
      "vote 1->3 t1 last=0/0",
      "vote_resp 2->1 t1",
      "vote_resp 3->1 t1",
      /* leader after the first grant: the no-op goes out */
      "append 1->2 t1 prev=0/0 n=1 commit=0",
      "append 1->3 t1 prev=0/0 n=1 commit=0",
      "append_resp 2->1 t1 index=1",
      "append_resp 3->1 t1 index=1",
      /* the no-op commits on n2's ack: the new commit index goes out */
      "append 1->2 t1 prev=1/1 n=0 commit=1",
      "append 1->3 t1 prev=1/1 n=0 commit=1",
      "append_resp 2->1 t1 index=1",
      "append_resp 3->1 t1 index=1",
  };
  expect(&t, want, sizeof(want) / sizeof(want[0]));
  assert_int_equal(raft_role(net->r[1]), RAFT_LEADER);
  for (int i = 1; i <= 3; i++)
    assert_int_equal(raft_committed(net->r[i]), 1);
  h_free(net);
}

/* With pre-vote the real election is preceded by a pre-vote round at the
 * would-be term, which changes nobody's term. */
static void test_scenario_prevote_election(void **state) {
  (void)state;
  struct h_opts o = {.pre_vote = true};
  struct h_net *net = h_new(3, &o);
  net->cut[1][3] = net->cut[3][1] = true;
  for (int i = 0; i < 20; i++)
    raft_tick(net->r[1]);
  struct trace t = {0};
  h_drain_all(net);
  /* drop what crosses the cut, record the rest */
  while (net->qn) {
    struct raft_message m = h_take(net, 0);
    if (!net->cut[m.from][m.to]) {
      fmt(t.line[t.n++], sizeof(t.line[0]), &m);
      raft_step(net->r[m.to], &m);
      h_drain(net, (int)m.to);
    }
    h_free_msg(&m);
  }
  static const char *const want[] = {
      "pre_vote 1->2 t1 last=0/0",
      "pre_vote_resp 2->1 t1",
      "vote 1->2 t1 last=0/0",
      "vote_resp 2->1 t1",
      "append 1->2 t1 prev=0/0 n=1 commit=0",
      "append_resp 2->1 t1 index=1",
      "append 1->2 t1 prev=1/1 n=0 commit=1",
      "append_resp 2->1 t1 index=1",
  };
  expect(&t, want, sizeof(want) / sizeof(want[0]));
  h_free(net);
}

/* A proposal is replicated, committed, and the commit index propagated;
 * then a lagging follower is caught up by probing. */
static void test_scenario_replication(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_clear(net);
  raft_propose(net->r[1], "a", 1, NULL);
  struct trace t = {0};
  run(net, &t);
  static const char *const want[] = {
      "append 1->2 t1 prev=1/1 n=1 commit=1",
      "append 1->3 t1 prev=1/1 n=1 commit=1",
      "append_resp 2->1 t1 index=2",
      "append_resp 3->1 t1 index=2",
      "append 1->2 t1 prev=2/1 n=0 commit=2",
      "append 1->3 t1 prev=2/1 n=0 commit=2",
      "append_resp 2->1 t1 index=2",
      "append_resp 3->1 t1 index=2",
  };
  expect(&t, want, sizeof(want) / sizeof(want[0]));

  /* n3 misses two entries, then the heartbeat round finds it behind */
  h_isolate(net, 3, true);
  raft_propose(net->r[1], "b", 1, NULL);
  raft_propose(net->r[1], "c", 1, NULL);
  h_deliver(net);
  h_isolate(net, 3, false);
  raft_tick(net->r[1]);
  struct trace t2 = {0};
  run(net, &t2);
  static const char *const want2[] = {
      "heartbeat 1->2 t1 commit=4",
      "heartbeat 1->3 t1 commit=2",
      "heartbeat_resp 2->1 t1",
      "heartbeat_resp 3->1 t1",
      /* n3 was in replicate state with next past its log: the empty append
       * is rejected with its last index as the hint */
      "append 1->3 t1 prev=4/1 n=0 commit=4",
      "append_resp 3->1 t1 index=4 reject",
      "append 1->3 t1 prev=2/1 n=2 commit=4",
      "append_resp 3->1 t1 index=4",
      /* it was paused (probing): an empty append brings the commit index
       * (etcd does the same) */
      "append 1->3 t1 prev=4/1 n=0 commit=4",
      "append_resp 3->1 t1 index=4",
  };
  expect(&t2, want2, sizeof(want2) / sizeof(want2[0]));
  assert_int_equal(raft_committed(net->r[3]), 4);
  h_free(net);
}

/* raft_report_unreachable: n3 missed two appends (dropped by its transport);
 * once reported, the leader probes it from its match index with the next
 * append instead of a heartbeat round finding the gap. */
static void test_scenario_report_unreachable(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_clear(net);
  h_isolate(net, 3, true);
  raft_propose(net->r[1], "b", 1, NULL);
  raft_propose(net->r[1], "c", 1, NULL);
  h_deliver(net);
  h_isolate(net, 3, false);
  raft_report_unreachable(net->r[1], 3);
  raft_report_unreachable(net->r[2], 3); /* a follower ignores it */
  raft_report_unreachable(net->r[1],
                          9); /* so does the leader, for a stranger */
  raft_propose(net->r[1], "d", 1, NULL);
  struct trace t = {0};
  run(net, &t);
  static const char *const want[] = {
      "append 1->2 t1 prev=3/1 n=1 commit=3",
      /* probing from match (1): everything n3 missed, in one append */
      "append 1->3 t1 prev=1/1 n=3 commit=3",
      "append_resp 2->1 t1 index=4",
      "append_resp 3->1 t1 index=4",
      "append 1->2 t1 prev=4/1 n=0 commit=4",
      "append 1->3 t1 prev=4/1 n=0 commit=4",
      "append_resp 2->1 t1 index=4",
      "append_resp 3->1 t1 index=4",
  };
  expect(&t, want, sizeof(want) / sizeof(want[0]));
  assert_int_equal(raft_committed(net->r[3]), 4);
  h_free(net);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scenario_election),
      cmocka_unit_test(test_scenario_prevote_election),
      cmocka_unit_test(test_scenario_replication),
      cmocka_unit_test(test_scenario_report_unreachable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

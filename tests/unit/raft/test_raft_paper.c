/* test_raft_paper.c — one test per rule of the Raft paper's Figure 2 and of
 * the membership, snapshot, pre-vote, check-quorum, ReadIndex and
 * leadership-transfer sections (Ongaro's dissertation), in the style of
 * etcd's raft paper tests. Each test's name and comment quote the rule. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "keel_error.h"

static void tick_n(struct raft *r, int n) {
  for (int i = 0; i < n; i++)
    raft_tick(r);
}

/* A follower that has no news for 2 * election_tick ticks has campaigned. */
static void timeout(struct h_net *net, int id) {
  tick_n(net->r[id], 20);
  h_drain(net, id);
}

static struct raft_message msg(int type, uint64_t from, uint64_t to,
                               uint64_t term) {
  struct raft_message m = {0};
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

/* ---- Figure 2: rules for all servers ---------------------------------- */

/* "If commitIndex > lastApplied: increment lastApplied, apply
 * log[lastApplied] to state machine" — committed entries come out of Ready
 * in order, and applied follows. */
static void test_all_apply_committed_in_order(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_propose(net, 1, "a");
  h_propose(net, 1, "b");
  for (int i = 1; i <= 3; i++) {
    h_deliver(net);
    assert_int_equal(raft_committed(net->r[1]), 3);
  }
  tick_n(net->r[1], 1); /* heartbeat carries the commit index */
  h_deliver(net);
  for (int i = 1; i <= 3; i++) {
    assert_int_equal(raft_applied(net->r[i]), 3);
    assert_int_equal(net->applied[i], 3);
  }
  h_free(net);
}

/* "If RPC request or response contains term T > currentTerm: set
 * currentTerm = T, convert to follower" — for a leader and a candidate. */
static void test_all_higher_term_converts_to_follower(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  assert_int_equal(raft_role(net->r[1]), RAFT_LEADER);
  struct raft_message m =
      msg(RAFT_MSG_APPEND_RESPONSE, 2, 1, raft_term(net->r[1]) + 5);
  raft_step(net->r[1], &m);
  assert_int_equal(raft_role(net->r[1]), RAFT_FOLLOWER);
  assert_int_equal(raft_term(net->r[1]), 6);

  timeout(net, 2);
  assert_int_equal(raft_role(net->r[2]), RAFT_CANDIDATE);
  m = msg(RAFT_MSG_HEARTBEAT, 3, 2, raft_term(net->r[2]) + 1);
  raft_step(net->r[2], &m);
  assert_int_equal(raft_role(net->r[2]), RAFT_FOLLOWER);
  assert_int_equal(raft_leader(net->r[2]), 3);
  h_free(net);
}

/* ---- Figure 2: followers ---------------------------------------------- */

/* "Respond to RPCs from candidates and leaders." */
static void test_follower_responds_to_rpcs(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_message m = msg(RAFT_MSG_HEARTBEAT, 2, 1, 1);
  raft_step(net->r[1], &m);
  h_drain(net, 1);
  assert_int_equal(net->qn, 1);
  assert_int_equal(net->q[0].type, RAFT_MSG_HEARTBEAT_RESPONSE);
  assert_int_equal(net->q[0].to, 2);
  assert_int_equal(raft_leader(net->r[1]), 2);
  h_free(net);
}

/* "If election timeout elapses without receiving AppendEntries RPC from
 * current leader or granting vote to candidate: convert to candidate." The
 * timeout is randomized in [election_tick, 2 * election_tick). */
static void test_follower_election_timeout(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  tick_n(net->r[1], 9);
  assert_int_equal(raft_role(net->r[1]), RAFT_FOLLOWER);
  tick_n(net->r[1], 11);
  assert_int_equal(raft_role(net->r[1]), RAFT_CANDIDATE);
  /* heartbeats hold it back */
  for (int i = 0; i < 50; i++) {
    struct raft_message m = msg(RAFT_MSG_HEARTBEAT, 3, 2, 0);
    raft_step(net->r[2], &m);
    raft_tick(net->r[2]);
  }
  assert_int_equal(raft_role(net->r[2]), RAFT_FOLLOWER);
  h_free(net);
}

/* The timer resets only on "receiving AppendEntries RPC from current leader
 * or granting vote to candidate": a vote request with a higher term that we
 * refuse (its log is behind) moves our term but not our timer, so a node
 * with a stale log and a fast clock cannot keep an election from happening. */
static void test_follower_refused_vote_keeps_timer(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_entry e = {1, 1, 0, "a", 1};
  struct raft_message a = msg(RAFT_MSG_APPEND, 2, 1, 1);
  a.entries = &e;
  a.n_entries = 1;
  raft_step(net->r[1], &a);
  for (int round = 0; round < 4; round++) {
    tick_n(net->r[1], 5);
    struct raft_message v = msg(RAFT_MSG_VOTE, 3, 1, 2 + (uint64_t)round);
    raft_step(net->r[1], &v); /* last 0/0: behind us, refused */
  }
  /* 20 ticks since the leader was last heard: we must have campaigned */
  assert_int_equal(raft_role(net->r[1]), RAFT_CANDIDATE);
  h_free(net);
}

/* ---- Figure 2: candidates --------------------------------------------- */

/* "On conversion to candidate, start election: increment currentTerm,
 * vote for self, reset election timer, send RequestVote RPCs to all other
 * servers." The term and vote are persisted before the requests go out
 * (same Ready). */
static void test_candidate_starts_election(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  tick_n(net->r[1], 20);
  assert_int_equal(raft_term(net->r[1]), 1);
  struct raft_ready rd;
  assert_true(raft_has_ready(net->r[1]));
  raft_ready(net->r[1], &rd);
  assert_true(rd.hard_state_changed);
  assert_int_equal(rd.hard_state.term, 1);
  assert_int_equal(rd.hard_state.vote, 1);
  assert_int_equal(rd.n_messages, 2);
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(rd.messages[i].type, RAFT_MSG_VOTE);
    assert_int_equal(rd.messages[i].term, 1);
    assert_int_equal(rd.messages[i].to, i + 2);
  }
  raft_advance(net->r[1], &rd);
  h_free(net);
}

/* "If votes received from majority of servers: become leader." A leader's
 * first act is a no-op entry of its term. */
static void test_candidate_wins_with_majority(void **state) {
  (void)state;
  struct h_net *net = h_new(5, NULL);
  net->cut[1][4] = net->cut[1][5] = true; /* 2 of 4 voters are enough */
  timeout(net, 1);
  h_deliver(net);
  assert_int_equal(raft_role(net->r[1]), RAFT_LEADER);
  assert_int_equal(raft_last_index(net->r[1]), 1);
  assert_int_equal(raft_log_term(net->r[1], 1), 1);
  h_free(net);
}

/* "If AppendEntries RPC received from new leader: convert to follower." */
static void test_candidate_steps_down_for_leader(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  timeout(net, 1);
  h_clear(net);
  struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, raft_term(net->r[1]));
  raft_step(net->r[1], &m);
  assert_int_equal(raft_role(net->r[1]), RAFT_FOLLOWER);
  assert_int_equal(raft_leader(net->r[1]), 2);
  h_free(net);
}

/* "If election timeout elapses: start new election." */
static void test_candidate_restarts_election(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  timeout(net, 1);
  assert_int_equal(raft_term(net->r[1]), 1);
  h_clear(net);
  timeout(net, 1);
  assert_int_equal(raft_role(net->r[1]), RAFT_CANDIDATE);
  assert_int_equal(raft_term(net->r[1]), 2);
  h_free(net);
}

/* ---- Figure 2: leaders ------------------------------------------------ */

/* "Upon election: send initial empty AppendEntries RPCs (heartbeat) to each
 * server; repeat during idle periods to prevent election timeouts." */
static void test_leader_heartbeats(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_clear(net);
  raft_tick(net->r[1]); /* heartbeat_tick = 1 */
  h_drain(net, 1);
  assert_int_equal(h_count(net, RAFT_MSG_HEARTBEAT), 2);
  h_deliver(net);
  for (int i = 0; i < 100; i++) {
    raft_tick(net->r[1]);
    raft_tick(net->r[2]);
    raft_tick(net->r[3]);
    h_deliver(net);
  }
  assert_int_equal(raft_role(net->r[1]), RAFT_LEADER);
  assert_int_equal(raft_term(net->r[2]), 1);
  h_free(net);
}

/* "If command received from client: append entry to local log, respond
 * after entry applied to state machine." */
static void test_leader_appends_proposal(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  uint64_t index = 0;
  assert_int_equal(raft_propose(net->r[1], "x", 1, &index), 0);
  assert_int_equal(index, 2);
  h_drain(net, 1);
  assert_int_equal(h_count(net, RAFT_MSG_APPEND), 2);
  assert_int_equal(net->q[0].n_entries, 1);
  assert_int_equal(net->q[0].entries[0].index, 2);
  assert_memory_equal(net->q[0].entries[0].data, "x", 1);
  h_deliver(net);
  assert_int_equal(net->applied[1], 2);
  h_free(net);
}

/* "If AppendEntries fails because of log inconsistency: decrement
 * nextIndex and retry." With conflict hints the leader skips a whole term
 * of the follower's log in one round trip. */
static void test_leader_backtracks_with_hint(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  /* n1 gets 20 entries of term 1 that nobody else sees */
  h_isolate(net, 1, true);
  for (int i = 0; i < 20; i++)
    h_propose(net, 1, "stale");
  h_clear(net);
  /* n2 leads term 2 with n3 and writes 3 entries */
  h_isolate(net, 1, true);
  h_elect(net, 2);
  for (int i = 0; i < 3; i++)
    h_propose(net, 2, "new");
  h_isolate(net, 1, false);
  /* one append to n1 is rejected with a hint that lands on index 1 */
  h_clear(net);
  raft_tick(net->r[2]);
  h_drain(net, 2);
  size_t rounds = 0;
  while (raft_log_term(net->r[1], 5) != 2 && rounds < 10) {
    h_deliver(net);
    raft_tick(net->r[2]);
    rounds++;
  }
  assert_int_equal(raft_log_term(net->r[1], 5), 2);
  assert_true(rounds <= 2);
  assert_int_equal(raft_last_index(net->r[1]), raft_last_index(net->r[2]));
  h_free(net);
}

/* "If there exists an N such that N > commitIndex, a majority of
 * matchIndex[i] >= N, and log[N].term == currentTerm: set commitIndex = N"
 * (Figure 8: never commit an older term's entry by counting replicas). */
static void test_leader_commits_only_own_term(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_isolate(net, 1, true);
  h_propose(net, 1, "old"); /* index 2, term 1, only on n1 */
  h_clear(net);
  /* n1 becomes leader of a later term; n2 gets index 2 but not the no-op
   * of the new term (messages carry one entry at a time). */
  h_isolate(net, 1, false);
  raft_free(net->r[1]);
  struct h_opts o = {.max_msg_bytes = 1, .max_inflight = 1};
  net->r[1] = h_boot(net, 1, &o);
  net->cut[1][3] = true;
  /* elect n1 with n2's vote only; n2 receives the appends */
  struct raft_message m = msg(RAFT_MSG_TIMEOUT_NOW, 2, 1, raft_term(net->r[1]));
  raft_step(net->r[1], &m);
  h_drain(net, 1);
  /* deliver until n2 has index 2 but intercept the append carrying 3 */
  for (int guard = 0; guard < 100 && net->qn; guard++) {
    struct raft_message x = h_take(net, 0);
    bool hold = x.type == RAFT_MSG_APPEND && x.n_entries &&
                x.entries[0].index == 3 && raft_log_term(net->r[2], 2) == 1;
    if (!hold && !net->cut[x.from][x.to]) {
      raft_step(net->r[x.to], &x);
      h_drain(net, (int)x.to);
    }
    h_free_msg(&x);
  }
  assert_int_equal(raft_role(net->r[1]), RAFT_LEADER);
  assert_int_equal(raft_log_term(net->r[2], 2), 1);
  /* index 2 (term 1) is on a majority, yet not committed */
  assert_int_equal(raft_committed(net->r[1]), 1);
  /* the no-op of the current term reaches n2: both commit */
  raft_tick(net->r[1]);
  h_deliver(net);
  assert_int_equal(raft_committed(net->r[1]), 3);
  h_free(net);
}

/* ---- replication flow control (etcd's progress tracking) -------------- */

/* Pipelining: in REPLICATE state the leader keeps up to max_inflight
 * appends in flight without waiting, then pauses until acks free slots. */
static void test_flow_inflight_window(void **state) {
  (void)state;
  struct h_opts o = {.max_inflight = 2};
  struct h_net *net = h_new(2, &o);
  h_elect(net, 1);
  h_clear(net);
  for (int i = 0; i < 5; i++)
    raft_propose(net->r[1], "p", 1, NULL);
  h_drain(net, 1);
  assert_int_equal(h_count(net, RAFT_MSG_APPEND), 2); /* window full */
  struct raft_message a = h_take(net, 0);
  raft_step(net->r[2], &a);
  h_free_msg(&a);
  h_drain(net, 2);
  /* the ack frees a slot: the next append goes out */
  struct raft_message ack = h_take(net, net->qn - 1);
  assert_int_equal(ack.type, RAFT_MSG_APPEND_RESPONSE);
  raft_step(net->r[1], &ack);
  h_free_msg(&ack);
  h_drain(net, 1);
  assert_int_equal(h_count(net, RAFT_MSG_APPEND), 2);
  h_deliver(net);
  assert_int_equal(raft_committed(net->r[1]), 6);
  h_free(net);
}

/* max_msg_bytes caps the entry bytes of one append (at least one entry). */
static void test_flow_max_bytes_per_message(void **state) {
  (void)state;
  struct h_opts o = {.max_msg_bytes = 10};
  struct h_net *net = h_new(2, &o);
  h_elect(net, 1);
  h_clear(net);
  raft_propose(net->r[1], "0123456", 7, NULL);
  raft_propose(net->r[1], "0123456", 7, NULL);
  raft_propose(net->r[1], "01", 2, NULL);
  assert_int_equal(raft_propose(net->r[1], "01234567890", 11, NULL),
                   KEEL_ETOOLARGE);
  h_isolate(net, 2, true);
  h_drain(net, 1);
  h_clear(net);
  h_isolate(net, 2, false);
  /* a fresh follower view: n2 restarts and probes from index 2 */
  raft_free(net->r[1]);
  net->r[1] = h_boot(net, 1, &o);
  h_elect(net, 1);
  for (size_t i = 0; i < net->qn; i++)
    if (net->q[i].type == RAFT_MSG_APPEND) {
      size_t bytes = 0;
      for (size_t k = 0; k < net->q[i].n_entries; k++)
        bytes += net->q[i].entries[k].len;
      assert_true(net->q[i].n_entries <= 1 || bytes <= 10);
    }
  h_deliver(net);
  assert_int_equal(raft_last_index(net->r[2]), raft_last_index(net->r[1]));
  h_free(net);
}

/* PROBE state: while the leader does not know a follower's match it sends
 * one append and waits (for a response or a heartbeat response) before
 * sending more; proposals meanwhile do not go to that follower. */
static void test_flow_probe_one_at_a_time(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_isolate(net, 3, true);
  h_elect(net, 1); /* the no-op probe to n3 is lost */
  h_clear(net);
  for (int i = 0; i < 3; i++)
    raft_propose(net->r[1], "p", 1, NULL);
  h_drain(net, 1);
  size_t to2 = 0, to3 = 0;
  for (size_t i = 0; i < net->qn; i++) {
    to2 += net->q[i].type == RAFT_MSG_APPEND && net->q[i].to == 2;
    to3 += net->q[i].type == RAFT_MSG_APPEND && net->q[i].to == 3;
  }
  assert_int_equal(to2, 3); /* REPLICATE: pipelined */
  assert_int_equal(to3, 0); /* PROBE: paused */
  h_deliver(net);
  h_isolate(net, 3, false);
  raft_tick(net->r[1]); /* heartbeat; its response unpauses the probe */
  h_deliver(net);
  assert_int_equal(raft_last_index(net->r[3]), 4);
  assert_int_equal(raft_committed(net->r[3]), 4);
  h_free(net);
}

/* SNAPSHOT state waits for the follower; if the snapshot is lost the leader
 * sends it again after two election timeouts. */
static void test_flow_lost_snapshot_is_resent(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_isolate(net, 3, true);
  for (int i = 0; i < 5; i++)
    h_propose(net, 1, "v");
  struct raft_snapshot_meta conf = {.voters = {1, 2, 3}, .n_voters = 3};
  assert_int_equal(raft_memstore_compact(net->ms[1], 5, &conf, 0), 0);
  h_isolate(net, 3, false);
  net->drop_type = RAFT_MSG_SNAPSHOT;
  for (int t = 0; t < 25; t++) {
    raft_tick(net->r[1]);
    h_deliver(net);
  }
  size_t snaps = net->dropped;
  assert_int_equal(snaps, 2);
  assert_int_equal(raft_last_index(net->r[3]), 1); /* never got it */
  h_free(net);
}

/* raft_report_snapshot: a snapshot the transport reports as failed is sent
 * again at the next heartbeat round, well before the two election timeouts
 * of the fallback above; a delivered one waits for the follower. */
static void test_flow_reported_snapshot(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_isolate(net, 3, true);
  for (int i = 0; i < 5; i++)
    h_propose(net, 1, "v");
  struct raft_snapshot_meta conf = {.voters = {1, 2, 3}, .n_voters = 3};
  assert_int_equal(raft_memstore_compact(net->ms[1], 5, &conf, 0), 0);
  h_isolate(net, 3, false);
  net->drop_type = RAFT_MSG_SNAPSHOT;
  int ticks = 0;
  while (net->dropped == 0 && ticks < 10) {
    raft_tick(net->r[1]);
    h_deliver(net);
    ticks++;
  }
  assert_int_equal(net->dropped, 1);
  raft_report_snapshot(net->r[1], 3, false);
  raft_report_snapshot(net->r[2], 3, false); /* a follower ignores it */
  /* one heartbeat interval later it is resent */
  for (int t = 0; t < 2 && net->dropped == 1; t++) {
    raft_tick(net->r[1]);
    h_deliver(net);
  }
  assert_int_equal(net->dropped, 2);
  /* now let it through and report it delivered */
  net->drop_type = 0;
  raft_report_snapshot(net->r[1], 3, true);
  for (int t = 0; t < 4; t++) {
    raft_tick(net->r[1]);
    h_deliver(net);
  }
  assert_int_equal(raft_last_index(net->r[3]), 6);
  assert_int_equal(raft_committed(net->r[3]), 6);
  h_free(net);
}

/* A follower forwards a proposal to its leader (MSG_PROPOSE); without a
 * leader it refuses. */
static void test_propose_forwarded_by_follower(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  assert_int_equal(raft_propose(net->r[2], "f", 1, NULL), KEEL_ENOLEADER);
  h_elect(net, 1);
  uint64_t index = 99;
  assert_int_equal(raft_propose(net->r[2], "f", 1, &index), 0);
  assert_int_equal(index, 0);
  h_drain(net, 2);
  assert_int_equal(net->q[0].type, RAFT_MSG_PROPOSE);
  h_deliver(net);
  assert_int_equal(raft_committed(net->r[1]), 2);
  assert_int_equal(net->applied[1], 2);
  h_free(net);
}

/* Restart: a node comes back with its persisted term, vote and commit and
 * hands out the committed entries its state machine has not applied. */
static void test_restart_replays_committed(void **state) {
  (void)state;
  struct h_net *net = h_new(1, NULL);
  timeout(net, 1);
  h_deliver(net);
  h_propose(net, 1, "a");
  h_propose(net, 1, "b");
  assert_int_equal(raft_committed(net->r[1]), 3);
  raft_free(net->r[1]);
  net->r[1] = h_boot(net, 1, NULL); /* applied = 0: no snapshot */
  assert_int_equal(raft_term(net->r[1]), 1);
  assert_int_equal(raft_committed(net->r[1]), 3);
  struct raft_ready rd;
  assert_true(raft_has_ready(net->r[1]));
  raft_ready(net->r[1], &rd);
  assert_int_equal(rd.n_committed, 3);
  assert_int_equal(rd.committed[2].index, 3);
  assert_false(rd.hard_state_changed);
  raft_advance(net->r[1], &rd);
  assert_int_equal(raft_applied(net->r[1]), 3);
  h_free(net);
}

/* ---- AppendEntries receiver ------------------------------------------- */

/* "Reply false if term < currentTerm." The stale leader learns the newer
 * term (so it steps down) and the follower's log is unchanged. */
static void test_append_rejects_stale_term(void **state) {
  (void)state;
  struct h_opts o = {.check_quorum = true};
  struct h_net *net = h_new(3, &o);
  h_elect(net, 1);
  h_elect(net, 2);
  h_clear(net);
  uint64_t last = raft_last_index(net->r[3]);
  struct raft_entry e = {.term = 1, .index = 2, .data = "s", .len = 1};
  struct raft_message m = msg(RAFT_MSG_APPEND, 1, 3, 1);
  m.index = 1;
  m.log_term = 1;
  m.entries = &e;
  m.n_entries = 1;
  raft_step(net->r[3], &m);
  h_drain(net, 3);
  assert_int_equal(raft_last_index(net->r[3]), last);
  assert_int_equal(net->qn, 1);
  assert_int_equal(net->q[0].type, RAFT_MSG_APPEND_RESPONSE);
  assert_int_equal(net->q[0].term, 2);
  h_free(net);
}

/* "Reply false if log doesn't contain an entry at prevLogIndex whose term
 * matches prevLogTerm." */
static void test_append_rejects_missing_prev(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 1);
  m.index = 5;
  m.log_term = 1;
  raft_step(net->r[1], &m);
  h_drain(net, 1);
  assert_int_equal(net->qn, 1);
  assert_true(net->q[0].reject);
  assert_int_equal(net->q[0].index, 5);
  assert_int_equal(net->q[0].reject_hint, 0); /* our last index */
  h_free(net);
}

/* "If an existing entry conflicts with a new one (same index but different
 * terms), delete the existing entry and all that follow it." "Append any
 * new entries not already in the log." */
static void test_append_truncates_conflicts(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_entry e1[3] = {
      {1, 1, 0, "a", 1}, {1, 2, 0, "b", 1}, {1, 3, 0, "c", 1}};
  struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 1);
  m.entries = e1;
  m.n_entries = 3;
  raft_step(net->r[1], &m);
  h_drain(net, 1);
  assert_int_equal(raft_last_index(net->r[1]), 3);
  struct raft_entry e2[1] = {{2, 2, 0, "X", 1}};
  m = msg(RAFT_MSG_APPEND, 3, 1, 2);
  m.index = 1;
  m.log_term = 1;
  m.entries = e2;
  m.n_entries = 1;
  raft_step(net->r[1], &m);
  h_drain(net, 1);
  assert_int_equal(raft_last_index(net->r[1]), 2);
  assert_int_equal(raft_log_term(net->r[1], 2), 2);
  /* a duplicate of an old, shorter append changes nothing */
  m = msg(RAFT_MSG_APPEND, 3, 1, 2);
  m.index = 0;
  m.log_term = 0;
  m.entries = e1;
  m.n_entries = 1;
  raft_step(net->r[1], &m);
  assert_int_equal(raft_last_index(net->r[1]), 2);
  h_free(net);
}

/* "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit,
 * index of last new entry)." */
static void test_append_advances_commit(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_entry e[2] = {{1, 1, 0, "a", 1}, {1, 2, 0, "b", 1}};
  struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 1);
  m.entries = e;
  m.n_entries = 2;
  m.commit = 9;
  raft_step(net->r[1], &m);
  assert_int_equal(raft_committed(net->r[1]), 2);
  h_free(net);
}

/* ---- RequestVote receiver --------------------------------------------- */

/* "Reply false if term < currentTerm." */
static void test_vote_rejects_stale_term(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_elect(net, 2);
  h_clear(net);
  struct raft_message m = msg(RAFT_MSG_VOTE, 3, 1, 1);
  m.index = 99;
  m.log_term = 9;
  raft_step(net->r[1], &m);
  h_drain(net, 1);
  assert_int_equal(net->qn, 0); /* stale: ignored */
  h_free(net);
}

/* "If votedFor is null or candidateId, and candidate's log is at least as
 * up-to-date as receiver's log, grant vote" — and only one vote per term. */
static void test_vote_once_per_term(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_message m = msg(RAFT_MSG_VOTE, 2, 1, 1);
  raft_step(net->r[1], &m);
  m.from = 3;
  raft_step(net->r[1], &m);
  m.from = 2; /* a retry from the same candidate is granted again */
  raft_step(net->r[1], &m);
  struct raft_ready rd;
  raft_ready(net->r[1], &rd);
  assert_int_equal(rd.hard_state.vote, 2);
  assert_int_equal(rd.n_messages, 3);
  assert_false(rd.messages[0].reject);
  assert_true(rd.messages[1].reject);
  assert_false(rd.messages[2].reject);
  raft_advance(net->r[1], &rd);
  h_free(net);
}

/* "Raft determines which of two logs is more up-to-date by comparing the
 * index and term of the last entries" (5.4.1): a candidate with an older
 * last term, or the same term and a shorter log, is refused. */
static void test_vote_requires_up_to_date_log(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_entry e[2] = {{2, 1, 0, "a", 1}, {2, 2, 0, "b", 1}};
  struct raft_message a = msg(RAFT_MSG_APPEND, 2, 1, 2);
  a.entries = e;
  a.n_entries = 2;
  raft_step(net->r[1], &a);
  h_drain(net, 1);
  h_clear(net);
  struct raft_message m = msg(RAFT_MSG_VOTE, 3, 1, 3);
  m.index = 5;
  m.log_term = 1; /* older last term, longer log */
  raft_step(net->r[1], &m);
  m = msg(RAFT_MSG_VOTE, 3, 1, 4);
  m.index = 1;
  m.log_term = 2; /* same term, shorter */
  raft_step(net->r[1], &m);
  m = msg(RAFT_MSG_VOTE, 3, 1, 5);
  m.index = 2;
  m.log_term = 2; /* equal: granted */
  raft_step(net->r[1], &m);
  h_drain(net, 1);
  assert_int_equal(net->qn, 3);
  assert_true(net->q[0].reject);
  assert_true(net->q[1].reject);
  assert_false(net->q[2].reject);
  h_free(net);
}

/* Persistence: "Updated on stable storage before responding to RPCs" —
 * a restarted node remembers its term and vote and does not vote twice. */
static void test_vote_survives_restart(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_message m = msg(RAFT_MSG_VOTE, 2, 1, 1);
  raft_step(net->r[1], &m);
  h_drain(net, 1);
  h_clear(net);
  raft_free(net->r[1]);
  net->r[1] = h_boot(net, 1, NULL);
  assert_int_equal(raft_term(net->r[1]), 1);
  m.from = 3;
  raft_step(net->r[1], &m);
  h_drain(net, 1);
  assert_true(net->q[0].reject);
  h_free(net);
}

/* ---- pre-vote (dissertation 9.6) -------------------------------------- */

/* "the candidate would first ask other servers whether its log was
 * up-to-date enough to get their vote": nobody's term moves until a
 * majority said yes, then the real election runs at term + 1. */
static void test_prevote_keeps_terms(void **state) {
  (void)state;
  struct h_opts o = {.pre_vote = true};
  struct h_net *net = h_new(3, &o);
  h_isolate(net, 3, true);
  for (int i = 0; i < 5; i++) {
    timeout(net, 3);
    h_deliver(net);
  }
  assert_int_equal(raft_term(net->r[3]), 0);
  assert_int_equal(raft_role(net->r[3]), RAFT_PRE_CANDIDATE);
  h_isolate(net, 3, false);
  timeout(net, 1);
  assert_int_equal(raft_role(net->r[1]), RAFT_PRE_CANDIDATE);
  assert_int_equal(raft_term(net->r[1]), 0);
  h_deliver(net);
  assert_int_equal(raft_role(net->r[1]), RAFT_LEADER);
  assert_int_equal(raft_term(net->r[1]), 1);
  h_free(net);
}

/* A pre-vote is refused to a node whose log is behind. */
static void test_prevote_rejects_stale_log(void **state) {
  (void)state;
  struct h_opts o = {.pre_vote = true};
  struct h_net *net = h_new(3, &o);
  h_elect(net, 1);
  h_isolate(net, 3, true);
  h_propose(net, 1, "x");
  h_isolate(net, 3, false);
  h_isolate(net, 1, true); /* leader gone: n3 (behind) tries first */
  timeout(net, 3);
  h_deliver(net);
  assert_int_not_equal(raft_role(net->r[3]), RAFT_LEADER);
  assert_int_equal(raft_term(net->r[2]), 1);
  h_free(net);
}

/* "a server that was partitioned away ... can no longer disrupt the
 * cluster when it rejoins": its pre-votes are refused while a leader is
 * alive (check-quorum lease), and no term moves. */
static void test_prevote_rejoining_node_does_not_disrupt(void **state) {
  (void)state;
  struct h_opts o = {.pre_vote = true, .check_quorum = true};
  struct h_net *net = h_new(3, &o);
  h_elect(net, 1);
  h_isolate(net, 3, true);
  for (int i = 0; i < 100; i++) {
    raft_tick(net->r[1]);
    raft_tick(net->r[2]);
    raft_tick(net->r[3]);
    h_deliver(net);
  }
  assert_int_equal(raft_term(net->r[3]), 1);
  h_isolate(net, 3, false);
  for (int i = 0; i < 30; i++) {
    raft_tick(net->r[1]);
    raft_tick(net->r[2]);
    raft_tick(net->r[3]);
    h_deliver(net);
  }
  assert_int_equal(raft_role(net->r[1]), RAFT_LEADER);
  assert_int_equal(raft_term(net->r[1]), 1);
  assert_int_equal(raft_leader(net->r[3]), 1);
  h_free(net);
}

/* ---- check-quorum (dissertation 6.2) ---------------------------------- */

/* "a leader steps down if an election timeout elapses without a successful
 * round of heartbeats to a majority of its cluster." */
static void test_checkquorum_leader_steps_down(void **state) {
  (void)state;
  struct h_opts o = {.check_quorum = true};
  struct h_net *net = h_new(3, &o);
  h_elect(net, 1);
  h_isolate(net, 1, true);
  for (int i = 0; i < 25; i++) {
    raft_tick(net->r[1]);
    h_deliver(net);
  }
  assert_int_equal(raft_role(net->r[1]), RAFT_FOLLOWER);
  h_free(net);
}

/* "if a server receives a RequestVote request within the minimum election
 * timeout of hearing from a current leader, it does not update its term or
 * grant its vote." */
static void test_checkquorum_lease_ignores_votes(void **state) {
  (void)state;
  struct h_opts o = {.check_quorum = true};
  struct h_net *net = h_new(3, &o);
  h_elect(net, 1);
  struct raft_message m = msg(RAFT_MSG_VOTE, 3, 2, 5);
  m.index = 100;
  m.log_term = 4;
  raft_step(net->r[2], &m);
  assert_int_equal(raft_term(net->r[2]), 1);
  h_free(net);
}

/* ---- snapshots (section 7) -------------------------------------------- */

/* "the leader must occasionally send snapshots to followers that lag
 * behind": a follower missing compacted entries gets InstallSnapshot,
 * installs it, and replication continues from there. */
static void test_snapshot_sent_to_lagging_follower(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_isolate(net, 3, true);
  for (int i = 0; i < 10; i++)
    h_propose(net, 1, "v");
  struct raft_snapshot_meta conf = {.voters = {1, 2, 3}, .n_voters = 3};
  assert_int_equal(raft_memstore_compact(net->ms[1], 8, &conf, 0), 0);
  h_clear(net);
  h_isolate(net, 3, false);
  raft_tick(net->r[1]);
  h_drain(net, 1);
  size_t snaps = 0;
  for (int guard = 0; guard < 100 && net->qn; guard++) {
    struct raft_message x = h_take(net, 0);
    snaps += x.type == RAFT_MSG_SNAPSHOT;
    if (x.type == RAFT_MSG_SNAPSHOT) {
      assert_int_equal(x.snapshot.meta.index, 8);
      assert_true(x.snapshot.last);
    }
    raft_step(net->r[x.to], &x);
    h_drain(net, (int)x.to);
    h_free_msg(&x);
  }
  assert_int_equal(snaps, 1);
  assert_int_equal(net->applied[3], 11);
  assert_int_equal(raft_last_index(net->r[3]), 11);
  h_free(net);
}

/* Log compaction: entries below the snapshot are gone, but the log still
 * answers the term at the compaction point. */
static void test_snapshot_compaction_keeps_terms(void **state) {
  (void)state;
  struct h_net *net = h_new(1, NULL);
  timeout(net, 1);
  h_deliver(net);
  for (int i = 0; i < 5; i++)
    h_propose(net, 1, "v");
  struct raft_snapshot_meta conf = {.voters = {1}, .n_voters = 1};
  assert_int_equal(raft_memstore_compact(net->ms[1], 4, &conf, 1), 0);
  assert_int_equal(raft_log_term(net->r[1], 3), 1);
  assert_int_equal(raft_log_term(net->r[1], 2), 0); /* compacted */
  h_propose(net, 1, "after");
  assert_int_equal(raft_committed(net->r[1]), 7);
  h_free(net);
}

/* ---- membership (dissertation 4) -------------------------------------- */

static int propose_cc(struct h_net *net, int id, int type, uint64_t node) {
  struct raft_conf_change cc = {type, node};
  int rc = raft_propose_conf_change(net->r[id], &cc, &cc, sizeof(cc), NULL);
  h_deliver(net);
  return rc;
}

/* "a leader may not propose a configuration change until its no-op of the
 * current term is committed" and "one change at a time". */
static void test_membership_one_at_a_time(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  timeout(net, 1); /* elected, but the no-op not yet committed */
  h_drain_all(net);
  struct raft_message x;
  while (net->qn) { /* deliver votes only */
    x = h_take(net, 0);
    if (x.type == RAFT_MSG_VOTE || x.type == RAFT_MSG_VOTE_RESPONSE) {
      raft_step(net->r[x.to], &x);
      h_drain(net, (int)x.to);
    }
    h_free_msg(&x);
  }
  assert_int_equal(raft_role(net->r[1]), RAFT_LEADER);
  struct raft_conf_change cc = {RAFT_CONF_ADD_LEARNER, 4};
  assert_int_equal(
      raft_propose_conf_change(net->r[1], &cc, &cc, sizeof(cc), NULL),
      KEEL_EBUSY);
  h_clear(net);
  raft_tick(net->r[1]);
  h_deliver(net);
  assert_int_equal(
      raft_propose_conf_change(net->r[1], &cc, &cc, sizeof(cc), NULL), 0);
  struct raft_conf_change cc2 = {RAFT_CONF_ADD_LEARNER, 5};
  assert_int_equal(
      raft_propose_conf_change(net->r[1], &cc2, &cc2, sizeof(cc2), NULL),
      KEEL_EBUSY);
  h_deliver(net);
  assert_false(raft_is_voter(net->r[1], 4));
  h_free(net);
}

/* Learners receive the log but do not vote or count for commit; a
 * promoted learner does. */
static void test_membership_learner_and_promote(void **state) {
  (void)state;
  struct h_opts o = {.n_learners = 1};
  struct h_net *net = h_new(3, &o); /* voters 1, 2; learner 3 */
  h_elect(net, 1);
  h_propose(net, 1, "x");
  assert_int_equal(raft_last_index(net->r[3]), 2);
  timeout(net, 3);
  assert_int_equal(raft_role(net->r[3]), RAFT_FOLLOWER); /* never campaigns */
  h_isolate(net, 3, true);
  h_propose(net, 1, "y"); /* commits with 1 and 2 */
  assert_int_equal(raft_committed(net->r[1]), 3);
  h_isolate(net, 3, false);
  assert_int_equal(propose_cc(net, 1, RAFT_CONF_PROMOTE, 3), 0);
  raft_tick(net->r[1]);
  h_deliver(net);
  assert_true(raft_is_voter(net->r[1], 3));
  assert_true(raft_is_voter(net->r[3], 3));
  h_isolate(net, 2, true);
  h_propose(net, 1, "z"); /* needs 3 now: 2 of 3 voters */
  assert_int_equal(raft_committed(net->r[1]), raft_last_index(net->r[1]));
  h_free(net);
}

/* "the leader steps down once the Cnew entry is committed" — a removed
 * leader stops leading after applying its removal. */
static void test_membership_removed_leader_steps_down(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  assert_int_equal(propose_cc(net, 1, RAFT_CONF_REMOVE_NODE, 1), 0);
  assert_int_not_equal(raft_role(net->r[1]), RAFT_LEADER);
  assert_false(raft_is_voter(net->r[2], 1));
  timeout(net, 1); /* not a member: does not campaign */
  assert_int_equal(raft_role(net->r[1]), RAFT_FOLLOWER);
  timeout(net, 2);
  h_deliver(net);
  assert_int_equal(raft_role(net->r[2]), RAFT_LEADER);
  h_free(net);
}

/* ---- ReadIndex (dissertation 6.4) ------------------------------------- */

/* "The leader ... sends heartbeats; once a majority acknowledged, it knows
 * it was still the leader when it received the read" — and requests made
 * together share one round. */
static void test_readindex_batched_heartbeat_round(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_clear(net);
  uint64_t a = 1, b = 2, c = 3;
  assert_int_equal(raft_read_index(net->r[1], &a, 8), 0);
  assert_int_equal(raft_read_index(net->r[1], &b, 8), 0);
  assert_int_equal(raft_read_index(net->r[1], &c, 8), 0);
  h_drain(net, 1);
  assert_int_equal(net->n_reads[1], 0); /* not before the round */
  assert_int_equal(h_count(net, RAFT_MSG_HEARTBEAT), 2); /* one round */
  h_deliver(net);
  assert_int_equal(net->n_reads[1], 3);
  assert_int_equal(net->read_index[1], raft_committed(net->r[1]));
  h_free(net);
}

/* Without a quorum the round never completes: no read state. */
static void test_readindex_needs_quorum(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_isolate(net, 1, true);
  uint64_t a = 1;
  raft_read_index(net->r[1], &a, 8);
  for (int i = 0; i < 5; i++) {
    raft_tick(net->r[1]);
    h_deliver(net);
  }
  assert_int_equal(net->n_reads[1], 0);
  h_free(net);
}

/* "followers ... request the current readIndex from the leader". */
static void test_readindex_from_follower(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_propose(net, 1, "x");
  uint64_t a = 7;
  assert_int_equal(raft_read_index(net->r[2], &a, 8), 0);
  h_deliver(net);
  assert_int_equal(net->n_reads[2], 1);
  assert_int_equal(net->read_index[2], 2);
  h_free(net);
}

/* "the leader must first commit a blank no-op entry at the start of its
 * term" before it can answer: until then the read waits. */
static void test_readindex_waits_for_noop(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  timeout(net, 1);
  struct raft_message x;
  h_drain_all(net);
  while (net->qn) {
    x = h_take(net, 0);
    if (x.type == RAFT_MSG_VOTE || x.type == RAFT_MSG_VOTE_RESPONSE) {
      raft_step(net->r[x.to], &x);
      h_drain(net, (int)x.to);
    }
    h_free_msg(&x);
  }
  uint64_t a = 1;
  raft_read_index(net->r[1], &a, 8);
  h_drain(net, 1);
  assert_int_equal(h_count(net, RAFT_MSG_HEARTBEAT), 0);
  h_clear(net);
  raft_tick(net->r[1]);
  h_deliver(net); /* no-op commits, then the round runs */
  assert_int_equal(net->n_reads[1], 1);
  assert_int_equal(net->read_index[1], 1);
  h_free(net);
}

/* ---- leadership transfer (dissertation 3.10) -------------------------- */

/* "The prior leader ... sends it a TimeoutNow request ... the target server
 * starts a new election" once its log is up to date; votes are granted
 * despite the leader lease. */
static void test_transfer_timeout_now(void **state) {
  (void)state;
  struct h_opts o = {.check_quorum = true, .pre_vote = true};
  struct h_net *net = h_new(3, &o);
  h_elect(net, 1);
  h_isolate(net, 3, true);
  h_propose(net, 1, "x");
  h_isolate(net, 3, false);
  h_clear(net);
  assert_int_equal(raft_transfer_leader(net->r[1], 3), 0);
  assert_int_equal(raft_propose(net->r[1], "y", 1, NULL), KEEL_EDROPPED);
  h_drain(net, 1);
  assert_int_equal(h_count(net, RAFT_MSG_TIMEOUT_NOW), 0); /* behind */
  h_deliver(net);
  assert_int_equal(raft_role(net->r[3]), RAFT_LEADER);
  assert_int_equal(raft_role(net->r[1]), RAFT_FOLLOWER);
  assert_int_equal(raft_leader(net->r[2]), 3);
  h_free(net);
}

/* A follower asked to transfer leadership passes the request on. */
static void test_transfer_requested_at_follower(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  assert_int_equal(raft_transfer_leader(net->r[2], 3), KEEL_ENOLEADER);
  h_elect(net, 1);
  assert_int_equal(raft_transfer_leader(net->r[2], 3), 0);
  h_drain(net, 2);
  assert_int_equal(net->q[0].type, RAFT_MSG_TRANSFER_LEADER);
  assert_int_equal(net->q[0].index, 3);
  h_deliver(net);
  assert_int_equal(raft_role(net->r[3]), RAFT_LEADER);
  h_free(net);
}

/* A transfer that does not finish within an election timeout is
 * abandoned, and the leader accepts proposals again. */
static void test_transfer_aborts(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  h_elect(net, 1);
  h_isolate(net, 3, true);
  assert_int_equal(raft_transfer_leader(net->r[1], 3), 0);
  for (int i = 0; i < 12; i++) {
    raft_tick(net->r[1]);
    h_deliver(net);
  }
  assert_int_equal(raft_role(net->r[1]), RAFT_LEADER);
  assert_int_equal(raft_propose(net->r[1], "y", 1, NULL), 0);
  assert_int_equal(raft_transfer_leader(net->r[1], 9), KEEL_EMEMBER);
  h_free(net);
}

/* ---- bad input -------------------------------------------------------- */

static void test_step_rejects_malformed(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_message m = msg(99, 2, 1, 1);
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  m = msg(RAFT_MSG_APPEND, 0, 1, 1);
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  struct raft_entry e[2] = {{1, 1, 0, "a", 1}, {1, 3, 0, "b", 1}};
  m = msg(RAFT_MSG_APPEND, 2, 1, 1);
  m.entries = e;
  m.n_entries = 2; /* not contiguous */
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  e[1].index = 2;
  e[1].term = 5; /* entry newer than the message's term */
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  m = msg(RAFT_MSG_HEARTBEAT, 2, 3, 1); /* addressed to n3 */
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  m = msg(RAFT_MSG_SNAPSHOT, 2, 1, 1);
  m.snapshot.meta.index = 5;
  m.snapshot.meta.n_voters = RAFT_MAX_NODES + 1;
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  assert_int_equal(raft_last_index(net->r[1]), 0);
  assert_int_equal(raft_term(net->r[1]), 0);
  uint64_t big[RAFT_MAX_CONTEXT];
  assert_int_equal(raft_read_index(net->r[1], big, sizeof(big)), -EINVAL);
  h_free(net);
}

/* Entry payloads that cannot be real (NULL data with a length), indexes that
 * wrap past UINT64_MAX and snapshot configurations no cluster can have (no
 * voter, a zero or repeated id) are refused like any malformed message,
 * and change nothing. */
static void test_step_rejects_malformed_payloads(void **state) {
  (void)state;
  struct h_net *net = h_new(3, NULL);
  struct raft_entry e = {1, 1, RAFT_ENTRY_NORMAL, NULL, 5};
  struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 1);
  m.entries = &e;
  m.n_entries = 1;
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  m = msg(RAFT_MSG_PROPOSE, 2, 1, 0);
  m.entries = &e;
  m.n_entries = 1;
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  /* prev index + entries past UINT64_MAX */
  struct raft_entry w = {1, 0, RAFT_ENTRY_NORMAL, "a", 1};
  m = msg(RAFT_MSG_APPEND, 2, 1, 1);
  m.index = UINT64_MAX;
  m.entries = &w;
  m.n_entries = 1;
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  m = msg(RAFT_MSG_SNAPSHOT, 2, 1, 1);
  m.snapshot.meta.term = 1;
  m.snapshot.meta.index = UINT64_MAX;
  m.snapshot.meta.voters[0] = 1;
  m.snapshot.meta.n_voters = 1;
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  m.snapshot.meta.index = 5;
  m.snapshot.meta.n_voters = 0; /* no voter */
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  m.snapshot.meta.voters[1] = 1; /* listed twice */
  m.snapshot.meta.n_voters = 2;
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  m.snapshot.meta.voters[1] = 2;
  m.snapshot.meta.learners[0] = 2; /* voter and learner */
  m.snapshot.meta.n_learners = 1;
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  m.snapshot.meta.learners[0] = 0; /* zero id */
  assert_int_equal(raft_step(net->r[1], &m), KEEL_EBADMSG);
  assert_int_equal(raft_last_index(net->r[1]), 0);
  assert_int_equal(raft_term(net->r[1]), 0);
  assert_true(raft_is_voter(net->r[1], 3));
  /* the same snapshot, well formed, is installed */
  m.snapshot.meta.learners[0] = 3;
  assert_int_equal(raft_step(net->r[1], &m), 0);
  assert_int_equal(raft_last_index(net->r[1]), 5);
  assert_false(raft_is_voter(net->r[1], 3));
  h_free(net);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_apply_committed_in_order),
      cmocka_unit_test(test_all_higher_term_converts_to_follower),
      cmocka_unit_test(test_follower_responds_to_rpcs),
      cmocka_unit_test(test_follower_election_timeout),
      cmocka_unit_test(test_follower_refused_vote_keeps_timer),
      cmocka_unit_test(test_candidate_starts_election),
      cmocka_unit_test(test_candidate_wins_with_majority),
      cmocka_unit_test(test_candidate_steps_down_for_leader),
      cmocka_unit_test(test_candidate_restarts_election),
      cmocka_unit_test(test_leader_heartbeats),
      cmocka_unit_test(test_leader_appends_proposal),
      cmocka_unit_test(test_leader_backtracks_with_hint),
      cmocka_unit_test(test_leader_commits_only_own_term),
      cmocka_unit_test(test_flow_inflight_window),
      cmocka_unit_test(test_flow_max_bytes_per_message),
      cmocka_unit_test(test_flow_probe_one_at_a_time),
      cmocka_unit_test(test_flow_lost_snapshot_is_resent),
      cmocka_unit_test(test_flow_reported_snapshot),
      cmocka_unit_test(test_propose_forwarded_by_follower),
      cmocka_unit_test(test_restart_replays_committed),
      cmocka_unit_test(test_append_rejects_stale_term),
      cmocka_unit_test(test_append_rejects_missing_prev),
      cmocka_unit_test(test_append_truncates_conflicts),
      cmocka_unit_test(test_append_advances_commit),
      cmocka_unit_test(test_vote_rejects_stale_term),
      cmocka_unit_test(test_vote_once_per_term),
      cmocka_unit_test(test_vote_requires_up_to_date_log),
      cmocka_unit_test(test_vote_survives_restart),
      cmocka_unit_test(test_prevote_keeps_terms),
      cmocka_unit_test(test_prevote_rejects_stale_log),
      cmocka_unit_test(test_prevote_rejoining_node_does_not_disrupt),
      cmocka_unit_test(test_checkquorum_leader_steps_down),
      cmocka_unit_test(test_checkquorum_lease_ignores_votes),
      cmocka_unit_test(test_snapshot_sent_to_lagging_follower),
      cmocka_unit_test(test_snapshot_compaction_keeps_terms),
      cmocka_unit_test(test_membership_one_at_a_time),
      cmocka_unit_test(test_membership_learner_and_promote),
      cmocka_unit_test(test_membership_removed_leader_steps_down),
      cmocka_unit_test(test_readindex_batched_heartbeat_round),
      cmocka_unit_test(test_readindex_needs_quorum),
      cmocka_unit_test(test_readindex_from_follower),
      cmocka_unit_test(test_readindex_waits_for_noop),
      cmocka_unit_test(test_transfer_timeout_now),
      cmocka_unit_test(test_transfer_requested_at_follower),
      cmocka_unit_test(test_transfer_aborts),
      cmocka_unit_test(test_step_rejects_malformed),
      cmocka_unit_test(test_step_rejects_malformed_payloads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

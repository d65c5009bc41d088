/* test_peer.c — peer transports in one process on 127.0.0.1: frames between
 * three nodes, Hello refusals (other cluster, unknown member), an oversized
 * frame, a peer that is down then comes up (bounded queue, unreachable
 * reported, reconnection), and a 64 MiB chunked stream delivered intact
 * while the loop keeps turning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "keel_error.h"
#include "loop_helper.h"
#include "peer.h"

#define MAX_NODES 3
#define CLUSTER_ID 0xC1C1C1C1ull
#define TOKEN "tok"

struct node {
  struct peer_transport *t;
  uint64_t id;
  char name[16];
  uint16_t port;
  /* received */
  uint64_t frames;
  uint64_t from_count[MAX_NODES + 2];
  uint64_t next_seq[MAX_NODES + 2]; /* per sender: expected term */
  int out_of_order;
  uint64_t last_term;
  uint64_t unreachable;
  /* stream receiving */
  uint64_t stream_bytes;
  uint64_t stream_hash;
  int stream_last_seen;
  int stream_bad_offset;
  int closed;
};

static uv_loop_t loop;

static void on_frame(void *ctx, uint64_t from,
                     const Keelraft__PeerFrame *frame) {
  struct node *n = ctx;
  n->frames++;
  assert_int_equal(frame->body_case, KEELRAFT__PEER_FRAME__BODY_MESSAGE);
  const Keelraft__Message *m = frame->message;
  assert_int_equal(m->from, from);
  if (m->type == KEELRAFT__MESSAGE_TYPE__MSG_SNAPSHOT) {
    const Keelraft__SnapshotChunk *c = m->snapshot;
    if (c->offset != n->stream_bytes)
      n->stream_bad_offset = 1;
    /* 64-bit words: the chunk sizes are multiples of 8. */
    for (size_t i = 0; i + 8 <= c->data.len; i += 8) {
      uint64_t w;
      memcpy(&w, c->data.data + i, 8);
      n->stream_hash = (n->stream_hash ^ w) * 0x100000001B3ull;
    }
    n->stream_bytes += c->data.len;
    if (c->last)
      n->stream_last_seen = 1;
    return;
  }
  size_t k = from % (MAX_NODES + 2);
  n->from_count[k]++;
  if (m->term != n->next_seq[k])
    n->out_of_order = 1;
  n->next_seq[k] = m->term + 1;
  n->last_term = m->term;
}

static void on_unreachable(void *ctx, uint64_t peer) {
  (void)peer;
  struct node *n = ctx;
  n->unreachable++;
}

static struct peer_transport_options options(struct node *n, uint64_t cid,
                                             const char *token) {
  struct peer_transport_options o = {
      .cluster_id = cid,
      .cluster_token = token,
      .member_id = n->id,
      .member_name = n->name,
      .max_frame_bytes = 1 << 20,
      .queue_bytes = 4 << 20,
      .queue_frames = 4096,
      .backoff_min_ms = 5,
      .backoff_max_ms = 100,
      .handshake_timeout_ms = 2000,
      .seed = n->id,
      .on_frame = on_frame,
      .on_unreachable = on_unreachable,
      .ctx = n,
  };
  return o;
}

static void node_start_opts(struct node *n, uint64_t id,
                            struct peer_transport_options *o) {
  o->member_id = id;
  o->seed = id;
  assert_int_equal(peer_transport_init(&n->t, &loop, o), 0);
  assert_int_equal(peer_transport_listen(n->t, "127.0.0.1", n->port), 0);
  n->port = peer_transport_port(n->t);
  assert_int_not_equal(n->port, 0);
}

static void node_start(struct node *n, uint64_t id, uint64_t cid,
                       const char *token) {
  n->id = id;
  snprintf(n->name, sizeof n->name, "n%llu", (unsigned long long)id);
  struct peer_transport_options o = options(n, cid, token);
  node_start_opts(n, id, &o);
}

static void on_node_closed(void *ctx) {
  ((struct node *)ctx)->closed = 1;
}

static int node_is_closed(void *ctx) {
  return ((struct node *)ctx)->closed;
}

static void node_stop(struct node *n) {
  n->closed = 0;
  peer_transport_close(n->t, on_node_closed, n);
  assert_true(loop_run_until(&loop, node_is_closed, n, 5000));
  n->t = NULL;
}

static void link(struct node *a, struct node *b) {
  assert_int_equal(
      peer_transport_add_peer(a->t, b->id, b->name, "127.0.0.1", b->port), 0);
}

struct conn_wait {
  struct node *a;
  uint64_t peer;
};

static int connected(void *ctx) {
  struct conn_wait *w = ctx;
  struct peer_stats st;
  if (peer_transport_peer_stats(w->a->t, w->peer, &st) < 0)
    return 0;
  return st.connected;
}

static void wait_connected(struct node *a, struct node *b) {
  struct conn_wait w = {a, b->id};
  assert_true(loop_run_until(&loop, connected, &w, 5000));
}

static int send_msg(struct node *a, uint64_t to, uint64_t seq, size_t pad) {
  static uint8_t padding[64 * 1024];
  Keelraft__Message m = KEELRAFT__MESSAGE__INIT;
  m.type = KEELRAFT__MESSAGE_TYPE__MSG_HEARTBEAT;
  m.from = a->id;
  m.to = to;
  m.term = seq;
  m.context.data = padding;
  m.context.len = pad;
  Keelraft__PeerFrame f = KEELRAFT__PEER_FRAME__INIT;
  f.body_case = KEELRAFT__PEER_FRAME__BODY_MESSAGE;
  f.message = &m;
  return peer_transport_send(a->t, to, &f);
}

static int setup(void **state) {
  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&loop), 0);
  return 0;
}

/* --- three nodes exchange frames ------------------------------------------ */

struct all_received {
  struct node *nodes;
  int n;
  uint64_t want;
};

static int all_received(void *ctx) {
  struct all_received *w = ctx;
  for (int i = 0; i < w->n; i++)
    if (w->nodes[i].frames < w->want)
      return 0;
  return 1;
}

static void test_three_nodes_exchange(void **state) {
  (void)state;
  static struct node nodes[3];
  memset(nodes, 0, sizeof nodes);
  for (int i = 0; i < 3; i++)
    node_start(&nodes[i], (uint64_t)i + 1, CLUSTER_ID, TOKEN);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      if (i != j && !(i == 2 && j == 0))
        link(&nodes[i], &nodes[j]);
  /* One peer by host name: resolved asynchronously at each dial. */
  assert_int_equal(
      peer_transport_add_peer(nodes[2].t, 1, "n1", "localhost", nodes[0].port),
      0);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      if (i != j)
        wait_connected(&nodes[i], &nodes[j]);
  for (uint64_t seq = 0; seq < 500; seq++)
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++)
        if (i != j)
          assert_int_equal(send_msg(&nodes[i], nodes[j].id, seq, seq % 300), 0);
  struct all_received w = {nodes, 3, 1000};
  assert_true(loop_run_until(&loop, all_received, &w, 10000));
  for (int i = 0; i < 3; i++) {
    assert_int_equal(nodes[i].frames, 1000);
    assert_false(nodes[i].out_of_order);
    for (int j = 0; j < 3; j++)
      if (i != j)
        assert_int_equal(nodes[i].from_count[nodes[j].id], 500);
    assert_int_equal(nodes[i].unreachable, 0);
  }
  struct peer_stats st;
  assert_int_equal(peer_transport_peer_stats(nodes[0].t, 2, &st), 0);
  assert_int_equal(st.frames_sent, 500);
  assert_int_equal(st.handshakes, 1);
  /* Unknown member, our own id, duplicates. */
  assert_int_equal(send_msg(&nodes[0], 9, 0, 0), KEEL_ENOTFOUND);
  assert_int_equal(peer_transport_add_peer(nodes[0].t, 1, "n1", "127.0.0.1", 1),
                   -EINVAL);
  assert_int_equal(peer_transport_add_peer(nodes[0].t, 2, "n2", "127.0.0.1", 1),
                   KEEL_EEXIST);
  for (int i = 0; i < 3; i++)
    node_stop(&nodes[i]);
}

/* --- Hello refusals --------------------------------------------------------
 */

struct refused_wait {
  struct node *n;
  uint64_t want;
};

static int refused(void *ctx) {
  struct refused_wait *w = ctx;
  struct peer_transport_stats st;
  peer_transport_stats(w->n->t, &st);
  return st.inbound_refused >= w->want;
}

static void test_hello_mismatch_refused(void **state) {
  (void)state;
  static struct node a, b, c;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&c, 0, sizeof c);
  node_start(&a, 1, CLUSTER_ID, TOKEN);
  node_start(&b, 2, CLUSTER_ID + 1, "other-token"); /* another cluster */
  node_start(&c, 3, CLUSTER_ID, TOKEN);             /* a stranger */
  link(&a, &b);
  link(&b, &a);
  link(&c, &a); /* a does not know 3 */
  struct refused_wait wa = {&a, 3}, wb = {&b, 1};
  assert_true(loop_run_until(&loop, refused, &wa, 5000));
  assert_true(loop_run_until(&loop, refused, &wb, 5000));
  struct peer_stats st;
  assert_int_equal(peer_transport_peer_stats(a.t, 2, &st), 0);
  assert_false(st.connected);
  assert_true(st.dial_failures >= 1);
  assert_int_equal(peer_transport_peer_stats(b.t, 1, &st), 0);
  assert_false(st.connected);
  assert_int_equal(peer_transport_peer_stats(c.t, 1, &st), 0);
  assert_false(st.connected);
  assert_int_equal(send_msg(&b, 1, 0, 0), 0);
  assert_int_equal(send_msg(&c, 1, 0, 0), 0);
  /* Let the refusals happen a few more times: nothing is delivered. */
  wa.want += 3;
  assert_true(loop_run_until(&loop, refused, &wa, 5000));
  assert_int_equal(a.frames, 0);
  struct peer_transport_stats ts;
  peer_transport_stats(a.t, &ts);
  assert_int_equal(ts.inbound_accepted, 0);
  node_stop(&a);
  node_stop(&b);
  node_stop(&c);
}

/* --- oversized frame -------------------------------------------------------
 */

struct raw_client {
  uv_tcp_t tcp;
  uv_connect_t req;
  uv_write_t wreq;
  int connected;
  int eof;
  size_t received;
  char buf[4096];
  uint8_t out[512];
  size_t out_len;
};

static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf) {
  (void)s;
  struct raw_client *r = h->data;
  *buf = uv_buf_init(r->buf, sizeof r->buf);
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  struct raw_client *r = s->data;
  if (n < 0)
    r->eof = 1;
  else
    r->received += (size_t)n;
}

static void raw_written(uv_write_t *req, int status) {
  (void)req;
  (void)status;
}

static void raw_connected(uv_connect_t *req, int status) {
  struct raw_client *r = req->data;
  assert_int_equal(status, 0);
  r->connected = 1;
  uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
  if (r->out_len == 0)
    return; /* a silent client */
  uv_buf_t b = uv_buf_init((char *)r->out, (unsigned)r->out_len);
  assert_int_equal(
      uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, raw_written), 0);
}

static int raw_eof(void *ctx) {
  return ((struct raw_client *)ctx)->eof;
}

static void test_oversized_frame_closes(void **state) {
  (void)state;
  static struct node a;
  memset(&a, 0, sizeof a);
  node_start(&a, 1, CLUSTER_ID, TOKEN);
  /* a knows member 2 at a port nobody listens on; we play member 2. */
  assert_int_equal(peer_transport_add_peer(a.t, 2, "n2", "127.0.0.1", 1), 0);

  struct raw_client *r = calloc(1, sizeof *r);
  Keelraft__Hello h = KEELRAFT__HELLO__INIT;
  h.protocol_version = PEER_PROTOCOL_VERSION;
  h.cluster_id = CLUSTER_ID;
  h.cluster_token = TOKEN;
  h.member_id = 2;
  h.member_name = "n2";
  Keelraft__PeerFrame f = KEELRAFT__PEER_FRAME__INIT;
  f.body_case = KEELRAFT__PEER_FRAME__BODY_HELLO;
  f.hello = &h;
  size_t len = keelraft__peer_frame__pack(&f, r->out + 4);
  r->out[0] = r->out[1] = r->out[2] = 0;
  r->out[3] = (uint8_t)len;
  uint32_t big = (1u << 20) + 1; /* max_frame_bytes + 1 */
  uint8_t *p = r->out + 4 + len;
  p[0] = (uint8_t)(big >> 24);
  p[1] = (uint8_t)(big >> 16);
  p[2] = (uint8_t)(big >> 8);
  p[3] = (uint8_t)big;
  r->out_len = 4 + len + 4;

  uv_tcp_init(&loop, &r->tcp);
  r->tcp.data = r;
  r->req.data = r;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", a.port, &addr);
  assert_int_equal(
      uv_tcp_connect(&r->req, &r->tcp, (struct sockaddr *)&addr, raw_connected),
      0);
  assert_true(loop_run_until(&loop, raw_eof, r, 5000));
  assert_true(r->received > 0); /* a's Hello came first: we were accepted */
  struct peer_transport_stats ts;
  peer_transport_stats(a.t, &ts);
  assert_int_equal(ts.inbound_accepted, 1);
  assert_int_equal(ts.oversized_frames, 1);
  uv_close((uv_handle_t *)&r->tcp, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  free(r);

  /* The sending side refuses to build such a frame at all. */
  static uint8_t blob[(1 << 20) + 1];
  Keelraft__Message m = KEELRAFT__MESSAGE__INIT;
  m.context.data = blob;
  m.context.len = sizeof blob;
  Keelraft__PeerFrame big_frame = KEELRAFT__PEER_FRAME__INIT;
  big_frame.body_case = KEELRAFT__PEER_FRAME__BODY_MESSAGE;
  big_frame.message = &m;
  assert_int_equal(peer_transport_send(a.t, 2, &big_frame), KEEL_ETOOLARGE);
  node_stop(&a);
}

static void raw_start(struct raw_client *r, uint16_t port) {
  uv_tcp_init(&loop, &r->tcp);
  r->tcp.data = r;
  r->req.data = r;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  assert_int_equal(
      uv_tcp_connect(&r->req, &r->tcp, (struct sockaddr *)&addr, raw_connected),
      0);
}

/* Connections that stay silent, open with something other than a Hello, or
 * send bytes that do not decode are closed. */
static void test_bad_handshakes_closed(void **state) {
  (void)state;
  static struct node a;
  memset(&a, 0, sizeof a);
  a.id = 1;
  snprintf(a.name, sizeof a.name, "n1");
  struct peer_transport_options o = options(&a, CLUSTER_ID, TOKEN);
  o.handshake_timeout_ms = 200;
  node_start_opts(&a, 1, &o);
  assert_int_equal(peer_transport_add_peer(a.t, 2, "n2", "127.0.0.1", 1), 0);

  struct raw_client *r = calloc(3, sizeof *r);
  /* 0: silent. 1: a Message first. 2: undecodable bytes. */
  Keelraft__Message m = KEELRAFT__MESSAGE__INIT;
  m.from = 2;
  Keelraft__PeerFrame f = KEELRAFT__PEER_FRAME__INIT;
  f.body_case = KEELRAFT__PEER_FRAME__BODY_MESSAGE;
  f.message = &m;
  size_t len = keelraft__peer_frame__pack(&f, r[1].out + 4);
  r[1].out[3] = (uint8_t)len;
  r[1].out_len = 4 + len;
  static const uint8_t junk[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
  memcpy(r[2].out, junk, sizeof junk);
  r[2].out_len = sizeof junk;
  for (int i = 0; i < 3; i++)
    raw_start(&r[i], a.port);
  for (int i = 0; i < 3; i++) {
    assert_true(loop_run_until(&loop, raw_eof, &r[i], 5000));
    assert_int_equal(r[i].received, 0); /* never got a's Hello */
    uv_close((uv_handle_t *)&r[i].tcp, NULL);
  }
  uv_run(&loop, UV_RUN_NOWAIT);
  free(r);
  struct peer_transport_stats ts;
  peer_transport_stats(a.t, &ts);
  assert_int_equal(ts.inbound_accepted, 0);
  assert_int_equal(ts.protocol_errors, 2);
  assert_true(ts.inbound_refused >= 1); /* the silent one timed out */
  node_stop(&a);
}

/* --- a peer that is down, then up ------------------------------------------
 */

struct stat_wait {
  struct node *n;
  uint64_t peer;
  uint64_t min_dial_failures;
};

static int dial_failed(void *ctx) {
  struct stat_wait *w = ctx;
  struct peer_stats st;
  peer_transport_peer_stats(w->n->t, w->peer, &st);
  return st.dial_failures >= w->min_dial_failures;
}

/* Frames arrive in order, so the last one means all ten did. */
static int got_last_term(void *ctx) {
  return ((struct node *)ctx)->last_term == 100009;
}

static void test_peer_down_then_up(void **state) {
  (void)state;
  static struct node a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.id = 1;
  snprintf(a.name, sizeof a.name, "n1");
  struct peer_transport_options o = options(&a, CLUSTER_ID, TOKEN);
  o.queue_bytes = 64 * 1024;
  o.max_frame_bytes = 16 * 1024;
  node_start_opts(&a, 1, &o);

  /* Find a free port, then free it: b is down. */
  node_start(&b, 2, CLUSTER_ID, TOKEN);
  uint16_t port = b.port;
  node_stop(&b);
  b.port = port;
  link(&a, &b);
  struct stat_wait sw = {&a, 2, 2};
  assert_true(loop_run_until(&loop, dial_failed, &sw, 5000));

  int refused = 0;
  uint64_t sent = 0;
  for (int i = 0; i < 1000 && !refused; i++) {
    int rc = send_msg(&a, 2, (uint64_t)i, 1000);
    if (rc == KEEL_EBUSY)
      refused = 1;
    else
      assert_int_equal(rc, 0), sent++;
  }
  assert_true(refused);
  assert_true(sent >= 50 && sent <= 64);
  struct peer_stats st;
  assert_int_equal(peer_transport_peer_stats(a.t, 2, &st), 0);
  assert_true(st.queue_bytes <= 64 * 1024);
  assert_true(st.max_queue_bytes <= 64 * 1024);
  assert_int_equal(st.send_refused, 1);
  assert_true(a.unreachable >= 1);
  assert_false(st.connected);

  /* More refused sends do not report again until something got through. */
  uint64_t reports = a.unreachable;
  assert_int_equal(send_msg(&a, 2, 9999, 1000), KEEL_EBUSY);
  assert_int_equal(a.unreachable, reports);

  /* b comes up on the same port; a reconnects on its own. */
  memset(&b, 0, sizeof b);
  b.port = port;
  node_start(&b, 2, CLUSTER_ID, TOKEN);
  assert_int_equal(b.port, port);
  link(&b, &a);
  wait_connected(&a, &b);
  for (uint64_t i = 100000; i < 100010; i++)
    assert_int_equal(send_msg(&a, 2, i, 10), 0);
  assert_true(loop_run_until(&loop, got_last_term, &b, 5000));
  assert_int_equal(peer_transport_peer_stats(a.t, 2, &st), 0);
  assert_true(st.connected);
  assert_true(st.queue_bytes <= 64 * 1024);
  node_stop(&a);
  node_stop(&b);
}

/* --- a 64 MiB stream ---------------------------------------------------------
 */

#define STREAM_BYTES (64ull << 20)
#define CHUNK_BYTES (256u << 10)

struct stream_src {
  uint64_t offset;
  uint64_t rng;
  uint64_t hash;
  uint8_t chunk[CHUNK_BYTES];
  int done;
  int status;
  struct node *from;
};

static int pull_chunk(void *ud, struct peer_transport *t, uint64_t to) {
  struct stream_src *s = ud;
  for (size_t i = 0; i < CHUNK_BYTES; i += 8) {
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    memcpy(s->chunk + i, &s->rng, 8);
    s->hash = (s->hash ^ s->rng) * 0x100000001B3ull;
  }
  Keelraft__SnapshotChunk c = KEELRAFT__SNAPSHOT_CHUNK__INIT;
  c.offset = s->offset;
  c.data.data = s->chunk;
  c.data.len = CHUNK_BYTES;
  c.last = s->offset + CHUNK_BYTES == STREAM_BYTES;
  Keelraft__Message m = KEELRAFT__MESSAGE__INIT;
  m.type = KEELRAFT__MESSAGE_TYPE__MSG_SNAPSHOT;
  m.from = s->from->id;
  m.to = to;
  m.snapshot = &c;
  Keelraft__PeerFrame f = KEELRAFT__PEER_FRAME__INIT;
  f.body_case = KEELRAFT__PEER_FRAME__BODY_MESSAGE;
  f.message = &m;
  int rc = peer_transport_send(t, to, &f);
  if (rc < 0)
    return rc;
  s->offset += CHUNK_BYTES;
  return c.last ? 0 : 1;
}

static void stream_done(void *ud, int status) {
  struct stream_src *s = ud;
  s->done = 1;
  s->status = status;
}

/* The longest loop iteration, idle (poll wait) time excluded. */
struct iter_meter {
  uv_prepare_t prepare;
  uint64_t last_ns, last_idle_ns, max_busy_ns;
  uint64_t iterations;
};

static void on_prepare(uv_prepare_t *h) {
  struct iter_meter *m = h->data;
  uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(h->loop);
  if (m->last_ns) {
    uint64_t busy = (now - m->last_ns) - (idle - m->last_idle_ns);
    if (busy > m->max_busy_ns)
      m->max_busy_ns = busy;
  }
  m->last_ns = now;
  m->last_idle_ns = idle;
  m->iterations++;
}

struct stream_wait {
  struct stream_src *src;
  struct node *dst;
};

static int stream_finished(void *ctx) {
  struct stream_wait *w = ctx;
  return w->src->done && w->dst->stream_last_seen;
}

static void test_stream_64mib(void **state) {
  (void)state;
  assert_int_equal(uv_loop_configure(&loop, UV_METRICS_IDLE_TIME), 0);
  static struct node a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  node_start(&a, 1, CLUSTER_ID, TOKEN);
  node_start(&b, 2, CLUSTER_ID, TOKEN);
  link(&a, &b);
  link(&b, &a);
  wait_connected(&a, &b);
  b.stream_hash = 0xcbf29ce484222325ull;

  struct stream_src *src = calloc(1, sizeof *src);
  src->rng = 0x1234567;
  src->hash = 0xcbf29ce484222325ull;
  src->from = &a;
  struct iter_meter meter = {0};
  uv_prepare_init(&loop, &meter.prepare);
  meter.prepare.data = &meter;
  uv_prepare_start(&meter.prepare, on_prepare);

  uint64_t t0 = uv_hrtime();
  assert_int_equal(peer_transport_stream(a.t, 2, pull_chunk, stream_done, src),
                   0);
  assert_int_equal(peer_transport_stream(a.t, 2, pull_chunk, stream_done, src),
                   KEEL_EBUSY);
  /* Heartbeats still flow during the stream. */
  assert_int_equal(send_msg(&a, 2, 0, 0), 0);
  struct stream_wait w = {src, &b};
  assert_true(loop_run_until(&loop, stream_finished, &w, 60000));
  uint64_t elapsed_ms = (uv_hrtime() - t0) / 1000000;
  uv_close((uv_handle_t *)&meter.prepare, NULL);

  assert_int_equal(src->status, 0);
  assert_false(b.stream_bad_offset);
  assert_int_equal(b.stream_bytes, STREAM_BYTES);
  assert_true(b.stream_hash == src->hash);
  assert_int_equal(b.from_count[1], 1);
  struct peer_stats st;
  assert_int_equal(peer_transport_peer_stats(a.t, 2, &st), 0);
  assert_true(st.max_queue_bytes <= 4u << 20); /* never the whole stream */
  assert_int_equal(st.send_refused, 0);
  printf("stream: %llu MiB in %llu ms, %llu loop iterations, longest "
         "iteration %.2f ms, peak queue %zu KiB\n",
         (unsigned long long)(STREAM_BYTES >> 20),
         (unsigned long long)elapsed_ms, (unsigned long long)meter.iterations,
         meter.max_busy_ns / 1e6, st.max_queue_bytes >> 10);
  /* A generous guard (shared CI machine, sanitizers): a loop that stalled
   * on the whole stream would hold it for seconds. */
  assert_true(meter.max_busy_ns < 1000ull * 1000 * 1000);
  free(src);
  node_stop(&a);
  node_stop(&b);
}

/* A stream whose peer goes away ends with an error, not silence. */
static int src_done(void *ctx) {
  return ((struct stream_src *)ctx)->done;
}

static void test_stream_aborts_on_removal(void **state) {
  (void)state;
  static struct node a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  node_start(&a, 1, CLUSTER_ID, TOKEN);
  node_start(&b, 2, CLUSTER_ID, TOKEN);
  link(&a, &b);
  link(&b, &a);
  wait_connected(&a, &b);
  struct stream_src *src = calloc(1, sizeof *src);
  src->rng = 1;
  src->from = &a;
  assert_int_equal(peer_transport_stream(a.t, 2, pull_chunk, stream_done, src),
                   0);
  /* Stop b while chunks flow: a sees the connection drop. */
  node_stop(&b);
  assert_true(loop_run_until(&loop, src_done, src, 5000));
  assert_true(src->status == KEEL_EUNAVAILABLE || src->status == 0);
  assert_true(src->status != 0 || src->offset == STREAM_BYTES);
  assert_true(a.unreachable >= 1);
  free(src);
  node_stop(&a);
}

/* Removing the peer cancels its stream at once; no unreachable report. */
static void test_remove_peer_cancels_stream(void **state) {
  (void)state;
  static struct node a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  node_start(&a, 1, CLUSTER_ID, TOKEN);
  node_start(&b, 2, CLUSTER_ID, TOKEN);
  link(&a, &b);
  link(&b, &a); /* b accepts only members it knows */
  wait_connected(&a, &b);
  struct stream_src *src = calloc(1, sizeof *src);
  src->rng = 1;
  src->from = &a;
  assert_int_equal(peer_transport_stream(a.t, 2, pull_chunk, stream_done, src),
                   0);
  uv_run(&loop, UV_RUN_NOWAIT); /* a first pull */
  assert_int_equal(peer_transport_remove_peer(a.t, 2), 0);
  assert_true(src->done);
  assert_int_equal(src->status, KEEL_ECANCELED);
  assert_int_equal(a.unreachable, 0);
  assert_int_equal(peer_transport_remove_peer(a.t, 2), KEEL_ENOTFOUND);
  assert_int_equal(send_msg(&a, 2, 0, 0), KEEL_ENOTFOUND);
  free(src);
  node_stop(&a);
  node_stop(&b);
}

/* A member that answers the Hello, then never reads again. */
struct stuck_server {
  uv_tcp_t listener;
  uv_tcp_t conn;
  uv_write_t wreq;
  uint8_t hello[256];
  size_t hello_len;
  size_t got;
  int answered;
  char buf[4096];
};

static void stuck_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf) {
  (void)s;
  struct stuck_server *st = h->data;
  *buf = uv_buf_init(st->buf, sizeof st->buf);
}

static void stuck_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  struct stuck_server *st = s->data;
  if (n <= 0)
    return;
  st->got += (size_t)n;
  if (!st->answered) {
    st->answered = 1;
    uv_buf_t b = uv_buf_init((char *)st->hello, (unsigned)st->hello_len);
    assert_int_equal(uv_write(&st->wreq, s, &b, 1, raw_written), 0);
    uv_read_stop(s); /* and never read again */
  }
}

static void stuck_accept(uv_stream_t *server, int status) {
  struct stuck_server *st = server->data;
  assert_int_equal(status, 0);
  uv_tcp_init(&loop, &st->conn);
  st->conn.data = st;
  assert_int_equal(uv_accept(server, (uv_stream_t *)&st->conn), 0);
  uv_read_start((uv_stream_t *)&st->conn, stuck_alloc, stuck_read);
}

/* A connected peer that stops reading: the queue bound holds, sends are
 * refused and the peer is reported unreachable, and the memory accepted
 * stays below kernel buffers + the queue bound. */
static void test_slow_peer_bounded(void **state) {
  (void)state;
  static struct node a;
  memset(&a, 0, sizeof a);
  a.id = 1;
  snprintf(a.name, sizeof a.name, "n1");
  struct peer_transport_options o = options(&a, CLUSTER_ID, TOKEN);
  o.queue_bytes = 1 << 20;
  o.max_frame_bytes = 64 << 10;
  node_start_opts(&a, 1, &o);

  struct stuck_server *st = calloc(1, sizeof *st);
  Keelraft__Hello h = KEELRAFT__HELLO__INIT;
  h.protocol_version = PEER_PROTOCOL_VERSION;
  h.cluster_id = CLUSTER_ID;
  h.cluster_token = TOKEN;
  h.member_id = 2;
  h.member_name = "n2";
  Keelraft__PeerFrame f = KEELRAFT__PEER_FRAME__INIT;
  f.body_case = KEELRAFT__PEER_FRAME__BODY_HELLO;
  f.hello = &h;
  size_t len = keelraft__peer_frame__pack(&f, st->hello + 4);
  st->hello[3] = (uint8_t)len;
  st->hello_len = 4 + len;
  uv_tcp_init(&loop, &st->listener);
  st->listener.data = st;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  assert_int_equal(uv_tcp_bind(&st->listener, (struct sockaddr *)&addr, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&st->listener, 8, stuck_accept), 0);
  struct sockaddr_in got;
  int alen = sizeof got;
  uv_tcp_getsockname(&st->listener, (struct sockaddr *)&got, &alen);
  assert_int_equal(
      peer_transport_add_peer(a.t, 2, "n2", "127.0.0.1", ntohs(got.sin_port)),
      0);
  struct node fake_b = {.id = 2};
  wait_connected(&a, &fake_b);

  uint64_t accepted = 0, refused = 0;
  struct peer_stats ps;
  for (int turn = 0; turn < 2000; turn++) {
    int rc;
    while ((rc = send_msg(&a, 2, 0, 60000)) == 0)
      accepted += 60000;
    assert_int_equal(rc, KEEL_EBUSY);
    refused++;
    assert_int_equal(peer_transport_peer_stats(a.t, 2, &ps), 0);
    assert_true(ps.queue_bytes <= 1 << 20);
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  assert_true(ps.connected);
  assert_true(ps.max_queue_bytes <= 1 << 20);
  assert_true(a.unreachable >= 1);
  /* Whatever was accepted is in kernel buffers or our queue: bounded. */
  assert_true(accepted < (64ull << 20));
  printf("slow peer: %llu KiB accepted before the queue stayed full\n",
         (unsigned long long)(accepted >> 10));
  uv_close((uv_handle_t *)&st->conn, NULL);
  uv_close((uv_handle_t *)&st->listener, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  free(st);
  node_stop(&a);
}

static uint16_t free_port(void) {
  uv_tcp_t tcp;
  uv_tcp_init(&loop, &tcp);
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  assert_int_equal(uv_tcp_bind(&tcp, (struct sockaddr *)&addr, 0), 0);
  struct sockaddr_in got;
  int len = sizeof got;
  assert_int_equal(uv_tcp_getsockname(&tcp, (struct sockaddr *)&got, &len), 0);
  uv_close((uv_handle_t *)&tcp, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  return ntohs(got.sin_port);
}

/* Two nodes started from keeld configurations find each other. */
static void test_start_from_config(void **state) {
  (void)state;
  uint16_t p1 = free_port(), p2 = free_port();
  char cluster[256], url1[64], url2[64];
  snprintf(url1, sizeof url1, "http://127.0.0.1:%u", p1);
  snprintf(url2, sizeof url2, "http://127.0.0.1:%u", p2);
  snprintf(cluster, sizeof cluster, "n1=%s,n2=%s", url1, url2);
  static struct keel_config cfg[2];
  static struct node nodes[2];
  memset(nodes, 0, sizeof nodes);
  const char *urls[2] = {url1, url2};
  char err[KEEL_CONFIG_ERR_MAX];
  for (int i = 0; i < 2; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i + 1);
    char *argv[] = {"keeld",
                    "--name",
                    name,
                    "--listen-peer-urls",
                    (char *)urls[i],
                    "--initial-advertise-peer-urls",
                    (char *)urls[i],
                    "--initial-cluster",
                    cluster,
                    "--listen-client-urls",
                    "http://127.0.0.1:1",
                    NULL};
    assert_int_equal(keel_config_load(&cfg[i], 11, argv, NULL, err, sizeof err),
                     0);
    struct peer_transport_options o;
    peer_transport_options_from_config(&cfg[i], &o);
    assert_int_equal(o.max_frame_bytes, 8u << 20);
    o.on_frame = on_frame;
    o.on_unreachable = on_unreachable;
    o.ctx = &nodes[i];
    nodes[i].id = cfg[i].member_id;
    assert_int_equal(peer_transport_init(&nodes[i].t, &loop, &o), 0);
    assert_int_equal(
        peer_transport_start_from_config(nodes[i].t, &cfg[i], err, sizeof err),
        0);
  }
  assert_int_equal(cfg[0].cluster_id, cfg[1].cluster_id);
  wait_connected(&nodes[0], &nodes[1]);
  wait_connected(&nodes[1], &nodes[0]);
  assert_int_equal(send_msg(&nodes[0], nodes[1].id, 0, 0), 0);
  struct all_received w = {&nodes[1], 1, 1};
  assert_true(loop_run_until(&loop, all_received, &w, 5000));

  /* A second node on a taken port: the error names the URL. */
  struct peer_transport *t3;
  struct peer_transport_options o;
  peer_transport_options_from_config(&cfg[0], &o);
  o.on_frame = on_frame;
  assert_int_equal(peer_transport_init(&t3, &loop, &o), 0);
  assert_int_equal(
      peer_transport_start_from_config(t3, &cfg[0], err, sizeof err),
      -EADDRINUSE);
  assert_non_null(strstr(err, "--listen-peer-urls: cannot listen on "));
  assert_non_null(strstr(err, url1));
  static struct node n3;
  n3.t = t3;
  node_stop(&n3);
  node_stop(&nodes[0]);
  node_stop(&nodes[1]);
}

static void test_backoff_full_jitter_bounded(void **state) {
  (void)state;
  /* The cap doubles per failure up to the maximum, never past it. */
  assert_int_equal(peer_backoff_delay_ms(50, 2000, 0, 50), 50);
  assert_int_equal(peer_backoff_delay_ms(50, 2000, 0, 51), 0);
  assert_int_equal(peer_backoff_delay_ms(50, 2000, 1, 100), 100);
  assert_int_equal(peer_backoff_delay_ms(50, 2000, 1, 101), 0);
  assert_int_equal(peer_backoff_delay_ms(50, 2000, 3, 400), 400);
  assert_int_equal(peer_backoff_delay_ms(50, 2000, 3, 401), 0);
  assert_int_equal(peer_backoff_delay_ms(50, 2000, 6, 2000), 2000);
  assert_int_equal(peer_backoff_delay_ms(50, 2000, 6, 2001), 0);
  for (unsigned f = 0; f < 200; f += 7) {
    uint64_t r = 0x9E3779B97F4A7C15ull * (f + 1);
    for (int k = 0; k < 100; k++, r = r * 6364136223846793005ull + 1)
      assert_true(peer_backoff_delay_ms(50, 2000, f, r) <= 2000);
  }
  /* Full jitter: delays spread over the whole range, including near 0. */
  uint64_t lo = UINT64_MAX, hi = 0, r = 1;
  for (int k = 0; k < 1000; k++) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t d = peer_backoff_delay_ms(50, 2000, 10, r);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  assert_true(lo < 100 && hi > 1900);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backoff_full_jitter_bounded),
      cmocka_unit_test_setup_teardown(test_three_nodes_exchange, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hello_mismatch_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oversized_frame_closes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bad_handshakes_closed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_peer_down_then_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_64mib, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_aborts_on_removal, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_remove_peer_cancels_stream, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_start_from_config, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slow_peer_bounded, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

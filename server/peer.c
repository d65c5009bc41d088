/* peer.c — TCP connections between keeld nodes: framing, the Hello
 * handshake, bounded send queues, reconnection with backoff, and chunked
 * streams. peer.h describes the behaviour; this comment the machinery.
 *
 * OBJECTS
 *
 *   transport  its listeners, one housekeeping timer (handshake deadlines),
 *              one idle handle (the stream pump), the peers, the connections.
 *   peer       a member we send to: its send queue, its outbound connection
 *              (at most one), its authenticated inbound connection (at most
 *              one), a retry timer, at most one stream.
 *   conn       one TCP connection, outbound or inbound.
 *
 * CONNECTION STATES
 *
 *   outbound:  CONNECTING --connect ok, Hello written--> HANDSHAKE
 *              HANDSHAKE --their Hello checks out--> UP
 *   inbound:   HANDSHAKE --their Hello checks out, ours written--> UP
 *   any state --error, EOF, bad frame, deadline, removal--> CLOSING
 *
 *   A CLOSING conn is off every peer and waits for libuv's close callback,
 *   which frees it. A closed outbound conn schedules the next dial.
 *
 * INVARIANTS
 *
 *   1. peer->out_bytes/out_frames count the frames in the queue and those
 *      handed to the socket but not yet written, and never exceed the
 *      bounds; only peer_transport_send() adds to them (the handshake Hello
 *      is not counted: one per connection).
 *   2. Frames are handed to the socket only on an UP outbound conn, in
 *      queue order, so frames reach a peer in the order they were sent.
 *   3. A peer's memory outlives everything that points to it: it holds one
 *      reference per open retry timer, per conn pointing to it and per DNS
 *      request, and is freed when removed and unreferenced. Write callbacks
 *      run before their conn's close callback, so they may use conn->peer.
 *   4. A receive buffer holds at most 4 + max_frame_bytes bytes: the length
 *      is checked before the buffer grows for a body.
 *   5. The transport is freed only when every handle and request it opened
 *      has called back (t->open == 0).
 *
 * COSTS
 *
 *   A send encodes once into a single malloc'd buffer (header + body) and
 *   costs one uv_write (usually one write(2) at once). A received frame is
 *   decoded in place from the receive buffer; the buffer is compacted with
 *   one memmove per read. The stream pump encodes at most half a queue per
 *   loop turn, so a 64 MiB snapshot never sits in memory and no turn copies
 *   more than queue_bytes/2.
 */
#include "peer.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keel_error.h"
#include "keel_log.h"
#include "keel_pb.h"

#define RBUF_MIN (64 * 1024)
#define HOST_MAX 256
#define NAME_MAX_LEN 64
#define TOKEN_MAX 128
#define HOUSEKEEPING_MS 100

enum conn_state { C_CONNECTING, C_HANDSHAKE, C_UP, C_CLOSING };

struct peer;

struct conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  struct peer_transport *t;
  struct peer *peer; /* outbound: the dialed peer; inbound: once UP */
  bool outbound;
  enum conn_state state;
  uint64_t deadline; /* uv_now() limit for CONNECTING/HANDSHAKE */
  uint8_t *rbuf;
  size_t rlen, rcap;
  struct conn *prev, *next; /* t->conns */
};

struct out_frame {
  uv_write_t req;
  struct out_frame *next;
  struct peer *peer;   /* NULL: not counted (a Hello) */
  uint64_t stream_gen; /* 0: not part of a stream */
  size_t len;
  uint8_t data[];
};

struct peer {
  struct peer_transport *t;
  uint64_t id;
  char name[NAME_MAX_LEN];
  char host[HOST_MAX];
  uint16_t port;
  struct peer *next; /* t->peers (live peers only) */
  bool removed;
  int refs;

  struct conn *out;
  struct conn *in;
  uv_timer_t retry;
  unsigned failures;
  uv_getaddrinfo_t gai;
  bool resolving;
  unsigned addr_turn; /* which resolved address the next dial uses */

  struct out_frame *qhead, *qtail; /* not yet handed to the socket */
  size_t out_bytes, out_frames;    /* queued + being written */
  bool report_armed;               /* on_unreachable may fire */

  struct {
    bool active;
    bool last_queued;
    bool want_pull;
    size_t inflight; /* the stream's frames not yet written */
    uint64_t gen;
    peer_pull_fn pull;
    peer_stream_done_fn done;
    void *ud;
  } stream;

  struct peer_stats stats;
};

struct peer_transport {
  uv_loop_t *loop;
  struct peer_transport_options opt;
  char token[TOKEN_MAX];
  char name[NAME_MAX_LEN];

  struct {
    uv_tcp_t tcp;
    bool ok; /* listening; a failed one is closing or closed */
  } listeners[PEER_MAX_LISTENERS];
  size_t n_listeners;
  uv_timer_t housekeeping;
  uv_idle_t pump;
  bool pump_active;

  struct peer *peers;
  struct conn *conns;
  size_t pending_inbound;
  uint64_t rng;
  uint64_t stream_gen;
  struct peer *pulling; /* the peer whose pull function runs now */
  uint64_t peers_gen;   /* bumped when t->peers changes */

  int open; /* handles and requests not yet called back */
  bool closing;
  peer_closed_fn closed;
  void *closed_ctx;
  struct peer_transport_stats stats;
};

/* --- small helpers -------------------------------------------------------- */

static uint64_t next_random(struct peer_transport *t) {
  /* xorshift64*: the jitter needs spread, not secrecy. */
  uint64_t x = t->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

static void maybe_finish_close(struct peer_transport *t);

static void handle_closed(uv_handle_t *h) {
  struct peer_transport *t = h->data;
  t->open--;
  maybe_finish_close(t);
}

static void peer_unref(struct peer *p) {
  assert(p->refs > 0);
  if (--p->refs == 0 && p->removed) {
    struct out_frame *f = p->qhead;
    while (f) {
      struct out_frame *next = f->next;
      free(f);
      f = next;
    }
    free(p);
  }
}

static struct peer *find_peer(const struct peer_transport *t, uint64_t id) {
  for (struct peer *p = t->peers; p; p = p->next)
    if (p->id == id)
      return p;
  return NULL;
}

static void report_unreachable(struct peer *p) {
  if (!p->report_armed)
    return;
  p->report_armed = false;
  p->stats.unreachable_reports++;
  if (p->t->opt.on_unreachable)
    p->t->opt.on_unreachable(p->t->opt.ctx, p->id);
}

static void pump_start(struct peer_transport *t);

static void stream_end(struct peer *p, int status) {
  if (!p->stream.active)
    return;
  p->stream.active = false;
  p->stream.want_pull = false;
  /* Chunks of this stream still queued would reach the peer as a torn
   * stream: drop them (those being written are past recall). */
  if (status != 0) {
    struct out_frame **pp = &p->qhead;
    p->qtail = NULL;
    while (*pp) {
      struct out_frame *f = *pp;
      if (f->stream_gen == p->stream.gen) {
        p->stream.inflight--;
        *pp = f->next;
        p->out_bytes -= f->len;
        p->out_frames--;
        free(f);
      } else {
        p->qtail = f;
        pp = &f->next;
      }
    }
  }
  if (p->stream.done)
    p->stream.done(p->stream.ud, status);
}

/* Frees the frames not yet handed to the socket; returns how many. */
static size_t drop_queue(struct peer *p) {
  size_t n = 0;
  while (p->qhead) {
    struct out_frame *f = p->qhead;
    p->qhead = f->next;
    p->out_bytes -= f->len;
    p->out_frames--;
    free(f);
    n++;
  }
  p->qtail = NULL;
  p->stats.frames_dropped += n;
  return n;
}

/* --- connections ---------------------------------------------------------- */

static void schedule_dial(struct peer *p);

static void conn_on_close(uv_handle_t *h) {
  struct conn *c = h->data;
  struct peer_transport *t = c->t;
  if (c->prev)
    c->prev->next = c->next;
  else
    t->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  if (c->peer)
    peer_unref(c->peer); /* invariant 3: after the write callbacks */
  free(c->rbuf);
  free(c);
  t->open--;
  maybe_finish_close(t);
}

/* Closes c (idempotent). `why` is logged when not NULL. */
static void conn_close(struct conn *c, const char *why) {
  if (c->state == C_CLOSING)
    return;
  struct peer_transport *t = c->t;
  struct peer *p = c->peer;
  enum conn_state was = c->state;
  c->state = C_CLOSING;
  if (!c->outbound && was != C_UP)
    t->pending_inbound--;
  if (why)
    keel_logkv(KEEL_LOG_INFO, "peer", why, "peer=%s direction=%s",
               p ? p->name : "unknown", c->outbound ? "out" : "in");
  uv_close((uv_handle_t *)&c->tcp, conn_on_close);
  if (p) {
    if (c->outbound && p->out == c) {
      p->out = NULL;
      p->stats.connected = 0;
      if (was == C_UP) {
        stream_end(p, KEEL_EUNAVAILABLE);
        p->report_armed = true; /* a lost link is always news */
        if (!p->removed)
          report_unreachable(p);
      } else if (!p->removed) {
        /* Frames queued while the peer was unreachable are stale by the
         * next dial: drop them, so a reconnect does not replay a backlog. */
        p->stats.dial_failures++;
        if (drop_queue(p) > 0)
          report_unreachable(p);
      }
      schedule_dial(p);
    }
    if (!c->outbound && p->in == c)
      p->in = NULL;
  }
}

static struct conn *conn_new(struct peer_transport *t, bool outbound) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  if (uv_tcp_init(t->loop, &c->tcp) < 0) {
    free(c);
    return NULL;
  }
  c->tcp.data = c;
  c->t = t;
  c->outbound = outbound;
  c->state = outbound ? C_CONNECTING : C_HANDSHAKE;
  c->deadline = uv_now(t->loop) + t->opt.handshake_timeout_ms;
  c->next = t->conns;
  if (t->conns)
    t->conns->prev = c;
  t->conns = c;
  t->open++;
  return c;
}

static void on_write(uv_write_t *req, int status) {
  struct out_frame *f = (struct out_frame *)req;
  struct peer *p = f->peer;
  if (p) {
    assert(p->out_bytes >= f->len && p->out_frames > 0);
    p->out_bytes -= f->len;
    p->out_frames--;
    if (status == 0) {
      p->stats.frames_sent++;
      p->report_armed = true;
    }
    if (p->stream.active && f->stream_gen == p->stream.gen) {
      p->stream.inflight--;
      if (status == 0 && p->stream.last_queued && p->stream.inflight == 0)
        stream_end(p, 0);
    }
    if (p->stream.active && !p->stream.last_queued) {
      p->stream.want_pull = true;
      pump_start(p->t);
    }
  }
  free(f);
}

/* Hands f to the socket. On failure the conn is closed and f freed. */
static void conn_write(struct conn *c, struct out_frame *f) {
  uv_buf_t buf = uv_buf_init((char *)f->data, (unsigned)f->len);
  int rc = uv_write(&f->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
  if (rc < 0) {
    on_write(&f->req, rc);
    conn_close(c, "peer connection write failed");
  }
}

static void flush(struct peer *p) {
  struct conn *c = p->out;
  while (c && c->state == C_UP && p->qhead) {
    struct out_frame *f = p->qhead;
    p->qhead = f->next;
    if (!p->qhead)
      p->qtail = NULL;
    f->next = NULL;
    conn_write(c, f);
    c = p->out; /* a failed write closes it */
  }
}

static struct out_frame *encode(const Keelraft__PeerFrame *frame, size_t body) {
  struct out_frame *f = malloc(sizeof *f + 4 + body);
  if (!f)
    return NULL;
  memset(f, 0, sizeof *f);
  f->data[0] = (uint8_t)(body >> 24);
  f->data[1] = (uint8_t)(body >> 16);
  f->data[2] = (uint8_t)(body >> 8);
  f->data[3] = (uint8_t)body;
  size_t n = keelraft__peer_frame__pack(frame, f->data + 4);
  assert(n == body);
  f->len = 4 + body;
  return f;
}

static void send_hello(struct conn *c) {
  struct peer_transport *t = c->t;
  Keelraft__Hello hello = KEELRAFT__HELLO__INIT;
  hello.protocol_version = PEER_PROTOCOL_VERSION;
  hello.cluster_id = t->opt.cluster_id;
  hello.cluster_token = t->token;
  hello.member_id = t->opt.member_id;
  hello.member_name = t->name;
  Keelraft__PeerFrame frame = KEELRAFT__PEER_FRAME__INIT;
  frame.body_case = KEELRAFT__PEER_FRAME__BODY_HELLO;
  frame.hello = &hello;
  struct out_frame *f =
      encode(&frame, keelraft__peer_frame__get_packed_size(&frame));
  if (!f) {
    conn_close(c, "out of memory for the peer Hello");
    return;
  }
  conn_write(c, f);
}

/* Checks a peer's Hello; returns the peer it authenticates, or NULL after
 * logging why it was refused. `expect` is the dialed peer (outbound). */
static struct peer *check_hello(struct conn *c, const Keelraft__Hello *h,
                                struct peer *expect) {
  struct peer_transport *t = c->t;
  const char *dir = c->outbound ? "out" : "in";
  const char *token = h->cluster_token ? h->cluster_token : "";
  const char *name = h->member_name ? h->member_name : "";
  if (h->protocol_version != PEER_PROTOCOL_VERSION) {
    keel_logkv(KEEL_LOG_ERROR, "peer",
               "refused peer: unsupported protocol version",
               "direction=%s their_version=%u our_version=%u", dir,
               h->protocol_version, PEER_PROTOCOL_VERSION);
    return NULL;
  }
  /* Cluster id 0 is a member joining an existing cluster (started with
   * --initial-cluster-state existing and an empty store): it does not know
   * the id yet and learns it from the first Hello it accepts (below). The
   * token and the member checks still apply. */
  bool they_join = h->cluster_id == 0, we_join = t->opt.cluster_id == 0;
  if ((!they_join && !we_join && h->cluster_id != t->opt.cluster_id) ||
      strcmp(token, t->token) != 0) {
    keel_logkv(KEEL_LOG_ERROR, "peer",
               "refused peer: it belongs to another cluster",
               "direction=%s their_name=%.64s their_cluster_id=%016llx "
               "their_token=\"%.64s\" our_cluster_id=%016llx "
               "our_token=\"%.64s\"",
               dir, name, (unsigned long long)h->cluster_id, token,
               (unsigned long long)t->opt.cluster_id, t->token);
    return NULL;
  }
  struct peer *p = find_peer(t, h->member_id);
  if (!p || (expect && p != expect) || strcmp(p->name, name) != 0) {
    keel_logkv(KEEL_LOG_ERROR, "peer",
               expect ? "refused peer: the address answers as another member"
                      : "refused peer: unknown member",
               "direction=%s their_id=%016llx their_name=%.64s "
               "expected=%.64s",
               dir, (unsigned long long)h->member_id, name,
               expect ? expect->name : (p ? p->name : "a configured member"));
    return NULL;
  }
  if (we_join && !they_join) {
    t->opt.cluster_id = h->cluster_id;
    keel_logkv(KEEL_LOG_INFO, "peer", "joined: learned the cluster id",
               "cluster_id=%016llx from=%.64s",
               (unsigned long long)h->cluster_id, name);
  }
  return p;
}

uint64_t peer_transport_cluster_id(const struct peer_transport *t) {
  return t->opt.cluster_id;
}

static void deliver(struct conn *c, const uint8_t *body, size_t len) {
  struct peer_transport *t = c->t;
  /* Through the guard: protobuf-c alone accepts inputs that break a
   * re-encode or overflow the stack (proto/keel_pb.h). */
  Keelraft__PeerFrame *frame = (Keelraft__PeerFrame *)keel_pb_unpack(
      &keelraft__peer_frame__descriptor, body, len, NULL, 0);
  if (!frame || frame->body_case == KEELRAFT__PEER_FRAME__BODY__NOT_SET) {
    t->stats.protocol_errors++;
    if (frame)
      keelraft__peer_frame__free_unpacked(frame, NULL);
    conn_close(c, "closing peer connection: undecodable frame");
    return;
  }
  bool is_hello = frame->body_case == KEELRAFT__PEER_FRAME__BODY_HELLO;
  if (c->state == C_HANDSHAKE) {
    if (!is_hello) {
      t->stats.protocol_errors++;
      conn_close(c, "closing peer connection: first frame is not a Hello");
    } else if (c->outbound) {
      struct peer *p = check_hello(c, frame->hello, c->peer);
      if (!p) {
        conn_close(c, NULL);
      } else {
        c->state = C_UP;
        p->failures = 0;
        p->stats.connected = 1;
        p->stats.handshakes++;
        keel_logkv(KEEL_LOG_INFO, "peer", "connected to peer",
                   "peer=%s id=%016llx", p->name, (unsigned long long)p->id);
        flush(p);
      }
    } else {
      struct peer *p = check_hello(c, frame->hello, NULL);
      if (!p) {
        t->stats.inbound_refused++;
        conn_close(c, NULL);
      } else {
        if (p->in)
          conn_close(p->in, "replacing an older inbound connection");
        c->state = C_UP;
        t->pending_inbound--;
        c->peer = p;
        p->refs++;
        p->in = c;
        t->stats.inbound_accepted++;
        send_hello(c);
      }
    }
  } else if (is_hello || c->outbound) {
    /* Outbound conns only carry the peer's Hello; a second Hello is a
     * confused peer. */
    t->stats.protocol_errors++;
    conn_close(c, "closing peer connection: unexpected frame");
  } else {
    c->peer->stats.frames_received++;
    t->opt.on_frame(t->opt.ctx, c->peer->id, frame);
  }
  keelraft__peer_frame__free_unpacked(frame, NULL);
}

static size_t frame_len(const uint8_t *p) {
  return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct conn *c = h->data;
  /* Invariant 4: a body's length was checked before we grow for it. */
  size_t want = RBUF_MIN;
  if (c->rlen >= 4) {
    size_t need = 4 + frame_len(c->rbuf);
    if (need > want)
      want = need;
  }
  if (c->rcap < want) {
    uint8_t *n = realloc(c->rbuf, want);
    if (!n) {
      *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    c->rbuf = n;
    c->rcap = want;
  }
  *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct conn *c = s->data;
  struct peer_transport *t = c->t;
  if (nread < 0) {
    conn_close(c, nread == UV_EOF ? "peer closed the connection"
                                  : "peer connection read error");
    return;
  }
  c->rlen += (size_t)nread;
  size_t off = 0;
  while (c->state != C_CLOSING && c->rlen - off >= 4) {
    size_t len = frame_len(c->rbuf + off);
    if (len > t->opt.max_frame_bytes) {
      t->stats.oversized_frames++;
      t->stats.protocol_errors++;
      keel_logkv(KEEL_LOG_ERROR, "peer",
                 "closing peer connection: frame exceeds the limit",
                 "peer=%s frame_bytes=%zu max_frame_bytes=%zu",
                 c->peer ? c->peer->name : "unknown", len,
                 t->opt.max_frame_bytes);
      conn_close(c, NULL);
      break;
    }
    if (c->rlen - off < 4 + len)
      break;
    deliver(c, c->rbuf + off + 4, len);
    off += 4 + len;
  }
  if (c->state == C_CLOSING)
    return;
  if (off > 0) {
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
  }
  /* Give back a big frame's buffer once it has been consumed. */
  if (c->rlen == 0 && c->rcap > 4 * RBUF_MIN) {
    free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = 0;
  }
}

/* --- dialing -------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  if (c->state == C_CLOSING)
    return;
  if (status < 0) {
    keel_logkv(KEEL_LOG_DEBUG, "peer", "dial failed", "peer=%s error=%s",
               c->peer->name, uv_err_name(status));
    conn_close(c, NULL);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_tcp_keepalive(&c->tcp, 1, 5);
  c->state = C_HANDSHAKE;
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc < 0) {
    conn_close(c, "peer connection read failed");
    return;
  }
  send_hello(c);
}

static void dial_addr(struct peer *p, const struct sockaddr *addr) {
  struct peer_transport *t = p->t;
  struct conn *c = conn_new(t, true);
  if (!c) {
    schedule_dial(p);
    return;
  }
  c->peer = p;
  p->refs++;
  p->out = c;
  c->connect_req.data = c;
  int rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connect);
  if (rc < 0)
    conn_close(c, NULL);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  struct peer *p = req->data;
  struct peer_transport *t = p->t;
  t->open--;
  p->resolving = false;
  if (status == 0 && !p->removed && !t->closing) {
    /* A name may resolve to several addresses (::1 and 127.0.0.1 for
     * localhost) of which only some listen: each dial takes the next. */
    unsigned n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
      n++;
    struct addrinfo *pick = res;
    for (unsigned k = p->addr_turn++ % n; k > 0; k--)
      pick = pick->ai_next;
    dial_addr(p, pick->ai_addr);
  } else if (!p->removed && !t->closing) {
    keel_logkv(KEEL_LOG_WARN, "peer", "cannot resolve peer host",
               "peer=%s host=%s error=%s", p->name, p->host,
               uv_err_name(status));
    p->stats.dial_failures++;
    schedule_dial(p);
  }
  uv_freeaddrinfo(res);
  peer_unref(p);
  maybe_finish_close(t);
}

static void dial(struct peer *p) {
  struct peer_transport *t = p->t;
  if (p->removed || t->closing || p->out)
    return;
  struct sockaddr_storage ss;
  if (uv_ip4_addr(p->host, p->port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(p->host, p->port, (struct sockaddr_in6 *)&ss) == 0) {
    dial_addr(p, (struct sockaddr *)&ss);
    return;
  }
  char port[8];
  snprintf(port, sizeof port, "%u", p->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  p->gai.data = p;
  int rc = uv_getaddrinfo(t->loop, &p->gai, on_resolved, p->host, port, &hints);
  if (rc < 0) {
    schedule_dial(p);
    return;
  }
  p->resolving = true;
  p->refs++;
  t->open++;
}

uint64_t peer_backoff_delay_ms(uint64_t min_ms, uint64_t max_ms,
                               unsigned failures, uint64_t random) {
  unsigned n = failures < 30 ? failures : 30;
  uint64_t cap = min_ms << n;
  if (cap > max_ms || (cap >> n) != min_ms) /* past the cap, or overflow */
    cap = max_ms;
  return random % (cap + 1); /* full jitter */
}

static void on_retry(uv_timer_t *timer) {
  dial(timer->data);
}

static void schedule_dial(struct peer *p) {
  struct peer_transport *t = p->t;
  if (p->removed || t->closing)
    return;
  uint64_t delay =
      peer_backoff_delay_ms(t->opt.backoff_min_ms, t->opt.backoff_max_ms,
                            p->failures, next_random(t));
  p->failures++;
  uv_timer_start(&p->retry, on_retry, delay, 0);
}

/* --- accepting ------------------------------------------------------------ */

static void on_connection(uv_stream_t *server, int status) {
  struct peer_transport *t = server->data;
  if (status < 0 || t->closing)
    return;
  struct conn *c = conn_new(t, false);
  if (!c)
    return;
  t->pending_inbound++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    conn_close(c, NULL);
    return;
  }
  if (t->pending_inbound > t->opt.max_pending_inbound) {
    t->stats.inbound_refused++;
    conn_close(c, "refused peer connection: too many unauthenticated");
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_tcp_keepalive(&c->tcp, 1, 5);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
    conn_close(c, NULL);
}

static void on_housekeeping(uv_timer_t *timer) {
  struct peer_transport *t = timer->data;
  uint64_t now = uv_now(t->loop);
  for (struct conn *c = t->conns; c; c = c->next) {
    if ((c->state == C_CONNECTING || c->state == C_HANDSHAKE) &&
        now >= c->deadline) {
      if (!c->outbound)
        t->stats.inbound_refused++;
      conn_close(c, "closing peer connection: handshake timed out");
    }
  }
}

/* --- streams -------------------------------------------------------------- */

static bool below_half(const struct peer *p) {
  const struct peer_transport *t = p->t;
  return p->out_bytes <= t->opt.queue_bytes / 2 &&
         p->out_frames < (t->opt.queue_frames + 1) / 2;
}

static void on_pump(uv_idle_t *idle) {
  struct peer_transport *t = idle->data;
  bool again = false;
  /* Pull and done callbacks may add or remove peers: the walk stops when
   * the list changed and resumes next turn. */
  uint64_t peers_gen = t->peers_gen;
  for (struct peer *p = t->peers; p && !t->closing; p = p->next) {
    while (p->stream.active && p->stream.want_pull && !p->stream.last_queued &&
           below_half(p)) {
      uint64_t gen = p->stream.gen;
      size_t before = p->out_frames;
      t->pulling = p;
      int rc = p->stream.pull(p->stream.ud, t, p->id);
      t->pulling = NULL;
      if (!p->stream.active || p->stream.gen != gen)
        break; /* the pull ended it (removal, close, lost link) */
      if (rc < 0) {
        stream_end(p, rc);
        break;
      }
      if (rc == 0) {
        /* Ends when the last of its frames has been written. */
        p->stream.last_queued = true;
        if (p->stream.inflight == 0)
          stream_end(p, 0);
        break;
      }
      if (p->out_frames == before)
        break; /* it sent nothing: try again next turn, do not spin here */
    }
    if (t->peers_gen != peers_gen) {
      again = true;
      break;
    }
    if (p->stream.active && !p->stream.last_queued && below_half(p))
      again = true; /* can pull more next turn */
    else
      p->stream.want_pull = p->stream.active && !p->stream.last_queued;
  }
  if (!again || t->closing) {
    uv_idle_stop(&t->pump);
    t->pump_active = false;
  }
}

static void pump_start(struct peer_transport *t) {
  if (t->pump_active || t->closing)
    return;
  t->pump_active = true;
  uv_idle_start(&t->pump, on_pump);
}

/* --- public --------------------------------------------------------------- */

int peer_transport_init(struct peer_transport **out, uv_loop_t *loop,
                        const struct peer_transport_options *opt) {
  *out = NULL;
  if (!opt->on_frame || !opt->cluster_token || !opt->member_name ||
      opt->member_id == 0 || opt->max_frame_bytes == 0 ||
      opt->max_frame_bytes > UINT32_MAX ||
      opt->queue_bytes < opt->max_frame_bytes + 4 || opt->queue_frames < 2 ||
      strlen(opt->cluster_token) >= TOKEN_MAX ||
      strlen(opt->member_name) >= NAME_MAX_LEN)
    return -EINVAL;
  /* A write to a connection the peer reset raises SIGPIPE, whose default
   * action kills the process; libuv reports EPIPE once it is ignored. */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  struct peer_transport *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  t->loop = loop;
  t->opt = *opt;
  snprintf(t->token, sizeof t->token, "%s", opt->cluster_token);
  snprintf(t->name, sizeof t->name, "%s", opt->member_name);
  t->opt.cluster_token = t->token;
  t->opt.member_name = t->name;
  if (!t->opt.backoff_min_ms)
    t->opt.backoff_min_ms = 50;
  if (!t->opt.backoff_max_ms)
    t->opt.backoff_max_ms = 2000;
  if (t->opt.backoff_max_ms < t->opt.backoff_min_ms)
    t->opt.backoff_max_ms = t->opt.backoff_min_ms;
  if (!t->opt.handshake_timeout_ms)
    t->opt.handshake_timeout_ms = 5000;
  if (!t->opt.max_pending_inbound)
    t->opt.max_pending_inbound = 16;
  t->rng = opt->seed ^ 0x9E3779B97F4A7C15ull;
  if (!t->rng)
    t->rng = 1;

  uv_timer_init(loop, &t->housekeeping);
  t->housekeeping.data = t;
  uv_idle_init(loop, &t->pump);
  t->pump.data = t;
  t->open = 2;
  uv_timer_start(&t->housekeeping, on_housekeeping, HOUSEKEEPING_MS,
                 HOUSEKEEPING_MS);
  *out = t;
  return 0;
}

int peer_transport_listen(struct peer_transport *t, const char *host,
                          uint16_t port) {
  if (t->closing)
    return KEEL_ESTOPPED;
  if (t->n_listeners == PEER_MAX_LISTENERS)
    return KEEL_ELIMIT;
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
    /* Start-up only: a synchronous lookup is acceptable here. */
    uv_getaddrinfo_t req;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    if (uv_getaddrinfo(t->loop, &req, NULL, host, portstr, &hints) != 0)
      return -EINVAL;
    memcpy(&ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
  }
  uv_tcp_t *l = &t->listeners[t->n_listeners].tcp;
  int rc = uv_tcp_init(t->loop, l);
  if (rc < 0)
    return rc;
  l->data = t;
  t->open++;
  t->n_listeners++;
  rc = uv_tcp_bind(l, (struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)l, 128, on_connection);
  if (rc < 0) {
    /* The slot stays used: its handle is closing. */
    uv_close((uv_handle_t *)l, handle_closed);
    return rc; /* libuv codes are -errno on Unix */
  }
  t->listeners[t->n_listeners - 1].ok = true;
  return 0;
}

uint16_t peer_transport_port(const struct peer_transport *t) {
  size_t i = 0;
  while (i < t->n_listeners && !t->listeners[i].ok)
    i++;
  if (i == t->n_listeners)
    return 0;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&t->listeners[i].tcp, (struct sockaddr *)&ss, &len) <
      0)
    return 0;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int peer_transport_add_peer(struct peer_transport *t, uint64_t id,
                            const char *name, const char *host, uint16_t port) {
  if (t->closing)
    return KEEL_ESTOPPED;
  if (id == 0 || id == t->opt.member_id || strlen(name) >= NAME_MAX_LEN ||
      strlen(host) >= HOST_MAX)
    return -EINVAL;
  if (find_peer(t, id))
    return KEEL_EEXIST;
  struct peer *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  p->t = t;
  p->id = id;
  snprintf(p->name, sizeof p->name, "%s", name);
  snprintf(p->host, sizeof p->host, "%s", host);
  p->port = port;
  p->report_armed = true;
  uv_timer_init(t->loop, &p->retry);
  p->retry.data = p;
  p->refs = 1; /* the retry timer */
  t->open++;
  p->next = t->peers;
  t->peers = p;
  t->peers_gen++;
  dial(p);
  return 0;
}

static void on_retry_closed(uv_handle_t *h) {
  struct peer *p = h->data;
  struct peer_transport *t = p->t;
  t->open--;
  peer_unref(p);
  maybe_finish_close(t);
}

static void remove_peer(struct peer *p) {
  struct peer_transport *t = p->t;
  struct peer **pp = &t->peers;
  while (*pp != p)
    pp = &(*pp)->next;
  *pp = p->next;
  t->peers_gen++;
  p->removed = true;
  stream_end(p, KEEL_ECANCELED);
  if (p->out)
    conn_close(p->out, NULL);
  if (p->in)
    conn_close(p->in, NULL);
  if (p->resolving)
    uv_cancel((uv_req_t *)&p->gai); /* its callback still runs */
  uv_close((uv_handle_t *)&p->retry, on_retry_closed);
}

int peer_transport_remove_peer(struct peer_transport *t, uint64_t id) {
  struct peer *p = find_peer(t, id);
  if (!p)
    return KEEL_ENOTFOUND;
  remove_peer(p);
  return 0;
}

int peer_transport_send(struct peer_transport *t, uint64_t to,
                        const Keelraft__PeerFrame *frame) {
  if (t->closing)
    return KEEL_ESTOPPED;
  struct peer *p = find_peer(t, to);
  if (!p)
    return KEEL_ENOTFOUND;
  size_t body = keelraft__peer_frame__get_packed_size(frame);
  if (body > t->opt.max_frame_bytes)
    return KEEL_ETOOLARGE;
  if (p->out_bytes + 4 + body > t->opt.queue_bytes ||
      p->out_frames + 1 > t->opt.queue_frames) {
    p->stats.send_refused++;
    report_unreachable(p);
    return KEEL_EBUSY;
  }
  struct out_frame *f = encode(frame, body);
  if (!f)
    return -ENOMEM;
  f->peer = p;
  if (t->pulling == p) {
    f->stream_gen = p->stream.gen;
    p->stream.inflight++;
  }
  p->out_bytes += f->len;
  p->out_frames++;
  if (p->out_bytes > p->stats.max_queue_bytes)
    p->stats.max_queue_bytes = p->out_bytes;
  if (p->out_frames > p->stats.max_queue_frames)
    p->stats.max_queue_frames = p->out_frames;
  if (p->qtail)
    p->qtail->next = f;
  else
    p->qhead = f;
  p->qtail = f;
  flush(p);
  return 0;
}

int peer_transport_stream(struct peer_transport *t, uint64_t to,
                          peer_pull_fn pull, peer_stream_done_fn done,
                          void *ud) {
  if (t->closing)
    return KEEL_ESTOPPED;
  struct peer *p = find_peer(t, to);
  if (!p)
    return KEEL_ENOTFOUND;
  if (!p->out || p->out->state != C_UP)
    return KEEL_EUNAVAILABLE;
  if (p->stream.active)
    return KEEL_EBUSY;
  p->stream.active = true;
  p->stream.last_queued = false;
  p->stream.want_pull = true;
  p->stream.inflight = 0;
  p->stream.gen = ++t->stream_gen;
  p->stream.pull = pull;
  p->stream.done = done;
  p->stream.ud = ud;
  pump_start(t);
  return 0;
}

void peer_transport_options_from_config(const struct keel_config *cfg,
                                        struct peer_transport_options *out) {
  memset(out, 0, sizeof *out);
  out->cluster_id = cfg->cluster_id;
  out->cluster_token = cfg->initial_cluster_token;
  out->member_id = cfg->member_id;
  out->member_name = cfg->name;
  out->max_frame_bytes = cfg->peer_max_frame_bytes;
  out->queue_bytes = cfg->peer_send_queue_bytes;
  out->queue_frames = cfg->peer_send_queue_frames;
}

int peer_transport_start_from_config(struct peer_transport *t,
                                     const struct keel_config *cfg, char *err,
                                     size_t errlen) {
  for (size_t i = 0; i < cfg->listen_peer_urls.n; i++) {
    const struct keel_url *u = &cfg->listen_peer_urls.v[i];
    int rc = peer_transport_listen(t, u->host, u->port);
    if (rc < 0) {
      snprintf(err, errlen, "--listen-peer-urls: cannot listen on %s: %s",
               u->text, keel_strerror(rc));
      return rc;
    }
  }
  for (size_t i = 0; i < cfg->n_members; i++) {
    const struct keel_member *m = &cfg->members[i];
    if (m->id == cfg->member_id)
      continue;
    int rc = peer_transport_add_peer(t, m->id, m->name, m->peer_url.host,
                                     m->peer_url.port);
    if (rc < 0) {
      snprintf(err, errlen, "--initial-cluster: cannot add member %s: %s",
               m->name, keel_strerror(rc));
      return rc;
    }
  }
  return 0;
}

int peer_transport_peer_stats(const struct peer_transport *t, uint64_t id,
                              struct peer_stats *out) {
  const struct peer *p = find_peer(t, id);
  if (!p)
    return KEEL_ENOTFOUND;
  *out = p->stats;
  out->queue_bytes = p->out_bytes;
  out->queue_frames = p->out_frames;
  return 0;
}

void peer_transport_stats(const struct peer_transport *t,
                          struct peer_transport_stats *out) {
  *out = t->stats;
}

static void maybe_finish_close(struct peer_transport *t) {
  if (!t->closing || t->open > 0)
    return;
  assert(t->peers == NULL && t->conns == NULL);
  peer_closed_fn closed = t->closed;
  void *ctx = t->closed_ctx;
  free(t);
  if (closed)
    closed(ctx);
}

void peer_transport_close(struct peer_transport *t, peer_closed_fn closed,
                          void *ctx) {
  assert(!t->closing);
  t->closed = closed;
  t->closed_ctx = ctx;
  while (t->peers)
    remove_peer(t->peers);
  t->closing = true;
  for (struct conn *c = t->conns; c; c = c->next)
    conn_close(c, NULL);
  for (size_t i = 0; i < t->n_listeners; i++)
    if (t->listeners[i].ok)
      uv_close((uv_handle_t *)&t->listeners[i].tcp, handle_closed);
  uv_close((uv_handle_t *)&t->housekeeping, handle_closed);
  uv_close((uv_handle_t *)&t->pump, handle_closed);
}

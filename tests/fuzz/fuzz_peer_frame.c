/* fuzz_peer_frame.c — libFuzzer target: the peer frame decoder of
 * server/peer.c, reached the way a peer reaches it.
 *
 * peer.c decodes frames inside its read callback (length prefix, bound
 * check, reassembly, keelraft.PeerFrame decoding, the Hello handshake) and
 * exports no decode function; rather than add a seam to it, this target
 * runs one real transport (member "fuzz-a", id 1, which knows member
 * "fuzz-b", id 2) listening on 127.0.0.1 and, for every input:
 *
 *   1. splits the input as peer.h's wire format says (4-byte big-endian
 *      length, body) and decodes each body with keelraft__peer_frame__unpack,
 *      checking pack(unpack(body)) decodes again to the same encoding — the
 *      generated decoder alone, past any handshake;
 *   2. opens a TCP connection to the transport, writes the input as is,
 *      half-closes, and reads until the transport closes the connection —
 *      the whole receive path. Seeds that begin with fuzz-b's valid Hello
 *      get past the handshake, so later frames reach on_frame, which checks
 *      the frame it is given is no Hello, is attributed to fuzz-b and
 *      re-encodes within the frame limit. Afterwards: frames were delivered
 *      only if the input starts with a Hello fuzz-a must accept, and no more
 *      than the complete frames after it.
 *
 * The transport must close every connection once the input is consumed (it
 * got EOF); one still open after GUARD_MS is reported as a hang (abort).
 * max_frame_bytes is small (4096) so that oversized frames are within
 * libFuzzer's reach.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "keel_log.h"
#include "keel_pb.h"
#include "peer.h"
#include "proto_field0.h"

#define FUZZ_MAX_FRAME 4096
#define GUARD_MS 5000

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_peer_frame: %s\n", what);                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static uv_loop_t loop;
static struct peer_transport *transport;
static uint16_t port;

/* --- 1: the decoder on its own ------------------------------------------ */

static void roundtrip(const uint8_t *body, size_t len) {
  Keelraft__PeerFrame *f = (Keelraft__PeerFrame *)keel_pb_unpack(
      &keelraft__peer_frame__descriptor, body, len, NULL, 0);
  if (!f)
    return;
  CHECK(!fuzz_proto_has_field0(&f->base), "the guard let a field 0 through");
  size_t n = keelraft__peer_frame__get_packed_size(f);
  uint8_t *b = malloc(n ? n : 1);
  CHECK(b, "out of memory");
  CHECK(keelraft__peer_frame__pack(f, b) == n, "pack length != packed size");
  Keelraft__PeerFrame *g = keelraft__peer_frame__unpack(NULL, n, b);
  CHECK(g, "our own encoding does not decode");
  CHECK(keelraft__peer_frame__get_packed_size(g) == n,
        "re-encoding changed the size");
  keelraft__peer_frame__free_unpacked(g, NULL);
  keelraft__peer_frame__free_unpacked(f, NULL);
  free(b);
}

/* What the input holds, by the wire format: complete frames, and whether
 * the first one is a Hello the transport must accept (fuzz-b's). */
static size_t input_frames;
static int input_hello_ok;
static size_t delivered;

static int is_good_hello(const Keelraft__PeerFrame *f) {
  const Keelraft__Hello *h = f->hello;
  return f->body_case == KEELRAFT__PEER_FRAME__BODY_HELLO &&
         h->protocol_version == PEER_PROTOCOL_VERSION &&
         /* cluster id 0 is a joining member's Hello, which the transport
          * accepts from a member it knows (peer.h, cluster_id) */
         (h->cluster_id == 0x1111 || h->cluster_id == 0) && h->member_id == 2 &&
         h->cluster_token && strcmp(h->cluster_token, "fuzz-token") == 0 &&
         h->member_name && strcmp(h->member_name, "fuzz-b") == 0;
}

static void split_frames(const uint8_t *p, size_t size) {
  input_frames = 0;
  input_hello_ok = 0;
  while (size >= 4) {
    size_t len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 |
                 (size_t)p[3];
    if (len > FUZZ_MAX_FRAME || len > size - 4)
      return;
    if (input_frames == 0) {
      Keelraft__PeerFrame *f = keelraft__peer_frame__unpack(NULL, len, p + 4);
      input_hello_ok = f && is_good_hello(f);
      if (f)
        keelraft__peer_frame__free_unpacked(f, NULL);
    }
    input_frames++;
    roundtrip(p + 4, len);
    p += 4 + len;
    size -= 4 + len;
  }
}

/* --- 2: the transport over TCP ------------------------------------------ */

static void on_frame(void *ctx, uint64_t from, const Keelraft__PeerFrame *f) {
  (void)ctx;
  CHECK(from == 2, "frame attributed to a member that did not send it");
  CHECK(f->body_case != KEELRAFT__PEER_FRAME__BODY__NOT_SET &&
            f->body_case != KEELRAFT__PEER_FRAME__BODY_HELLO,
        "on_frame got a Hello or an empty frame");
  CHECK(keelraft__peer_frame__get_packed_size(f) <= FUZZ_MAX_FRAME,
        "delivered frame re-encodes past max_frame_bytes");
  delivered++;
}

struct client {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  uv_shutdown_t shutdown;
  const uint8_t *data;
  size_t size;
  char rbuf[4096];
  int closed;
};

static void on_client_closed(uv_handle_t *h) {
  ((struct client *)h->data)->closed = 1;
}

static void client_close(struct client *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void on_client_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf) {
  (void)s;
  struct client *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  if (n < 0) /* EOF or reset: the transport closed its end */
    client_close(s->data);
}

static void on_written(uv_write_t *req, int status) {
  (void)req;
  (void)status; /* the transport may close before reading everything */
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

static void on_connected(uv_connect_t *req, int status) {
  struct client *c = req->data;
  CHECK(status == 0, "cannot connect to the transport's listener");
  uv_buf_t buf = uv_buf_init((char *)c->data, (unsigned)c->size);
  CHECK(uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written) == 0,
        "write");
  CHECK(uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) == 0,
        "shutdown");
  CHECK(uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc,
                      on_client_read) == 0,
        "read_start");
}

static void on_guard(uv_timer_t *t) {
  *(int *)t->data = 1;
}

static void over_tcp(const uint8_t *data, size_t size) {
  struct client c;
  memset(&c, 0, sizeof c);
  CHECK(uv_tcp_init(&loop, &c.tcp) == 0, "tcp_init");
  c.tcp.data = &c;
  c.connect.data = &c;
  c.data = data;
  c.size = size;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  CHECK(uv_tcp_connect(&c.connect, &c.tcp, (struct sockaddr *)&addr,
                       on_connected) == 0,
        "tcp_connect");

  int expired = 0;
  uv_timer_t guard;
  uv_timer_init(&loop, &guard);
  guard.data = &expired;
  uv_timer_start(&guard, on_guard, GUARD_MS, 0);
  while (!c.closed && !expired)
    uv_run(&loop, UV_RUN_ONCE);
  CHECK(c.closed, "the transport kept a connection open after EOF");
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_NOWAIT); /* the guard's and the server conn's close */
}

static void setup(void) {
  keel_log_set_level(KEEL_LOG_OFF);
  CHECK(uv_loop_init(&loop) == 0, "loop_init");
  struct peer_transport_options o = {
      .cluster_id = 0x1111,
      .cluster_token = "fuzz-token",
      .member_id = 1,
      .member_name = "fuzz-a",
      .max_frame_bytes = FUZZ_MAX_FRAME,
      .queue_bytes = 4 * FUZZ_MAX_FRAME,
      .queue_frames = 8,
      /* fuzz-b's address refuses connections; redial rarely */
      .backoff_min_ms = 600000,
      .backoff_max_ms = 600000,
      .on_frame = on_frame,
  };
  CHECK(peer_transport_init(&transport, &loop, &o) == 0, "transport init");
  CHECK(peer_transport_listen(transport, "127.0.0.1", 0) == 0, "listen");
  port = peer_transport_port(transport);
  CHECK(port != 0, "no port");
  CHECK(peer_transport_add_peer(transport, 2, "fuzz-b", "127.0.0.1", 1) == 0,
        "add_peer");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!transport)
    setup();
  split_frames(data, size);
  delivered = 0;
  over_tcp(data, size);
  /* Only what follows fuzz-b's Hello is delivered, each frame at most once */
  CHECK(delivered == 0 || input_hello_ok, "a frame delivered without Hello");
  CHECK(delivered == 0 || delivered < input_frames,
        "more frames delivered than the input holds after its Hello");
  return 0;
}

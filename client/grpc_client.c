/* grpc_client.c — gRPC client calls over an nghttp2 client session on one
 * libuv TCP connection. See grpc_client.h for the contract.
 *
 * Invariants:
 *   - ch->busy is set while nghttp2 runs (mem_recv / mem_send); output
 *     wanted meanwhile sets ch->want_flush and ch_flush() loops. Status
 *     callbacks never run inside nghttp2: a call that ended is marked
 *     `ended` and reported by ch_report() after nghttp2 returned, so a
 *     status callback may start or cancel calls, or close the channel.
 *   - The nghttp2 session is deleted only when nothing is running inside it
 *     (ch_del_session checks busy), whatever callback decided to close.
 *   - A call is on ch->calls from start until its status is reported; then
 *     it is freed (after its timer handle closed, if it had a deadline).
 *   - Input is decoded only while the call is not paused; held input is
 *     un-consumed, so the server's window bounds it.
 *   - Bytes leave through the transport ops (write/flush/pending); TLS will
 *     be another implementation of them.
 *   - A call's delivery is decided with its status from HTTP/2 events only:
 *     ANSWERED when the server ended the stream, REFUSED on REFUSED_STREAM
 *     (RST_STREAM, or nghttp2 closing streams above a GOAWAY's
 *     last-stream-id) for a request that was written, else MAYBE_PROCESSED
 *     if a byte of its first HEADERS/DATA frame reached uv_write
 *     (ch->handed > call->req_mark), else NOT_SENT. Never from texts.
 */
#include "grpc_client.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_buf.h"
#include "keel_log.h"

#define IO_HIGH_WATER (256 * 1024)
#define STREAM_WINDOW (1024 * 1024)
#define CONN_WINDOW (16 * 1024 * 1024)
#define STATUS_MSG_MAX 1024

/* The byte-transport seam (plaintext TCP now). */
struct cli_io_ops {
  int (*write)(keel_grpc_channel *ch, const void *data, size_t len);
  void (*flush)(keel_grpc_channel *ch);
  size_t (*pending)(const keel_grpc_channel *ch);
};

struct keel_grpc_channel {
  uv_loop_t *loop;
  struct keel_grpc_channel_config cfg;
  const struct cli_io_ops *io;
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_timer_t connect_timer; /* connect timeout, then the keepalive tick */
  uint64_t last_read;       /* uv_now() of the last bytes read */
  uint64_t ping_sent_at;    /* 0 = no keepalive PING outstanding */
  int ping_overdue;
  nghttp2_session *ng;
  enum keel_grpc_channel_state state;
  int error;
  int busy, want_flush, reporting;
  int closing, handles_open, freed, hold;
  void (*close_cb)(void *ud);
  void *close_ud;
  keel_grpc_client_call *calls; /* open, doubly linked */
  size_t n_calls;
  char *out;
  size_t out_len, out_cap, inflight;
  /* Delivery bookkeeping: bytes nghttp2 produced so far, and bytes handed
   * to the socket (uv_write) so far. Output leaves in order and every
   * flush hands over all of it, so a frame produced when `produced` was M
   * reached the socket iff handed > M. */
  uint64_t produced, handed;
  char authority[80];
  char read_buf[64 * 1024];
};

struct keel_grpc_client_call {
  keel_grpc_channel *ch;
  keel_grpc_client_call *prev, *next;
  int32_t stream_id;
  struct keel_grpc_client_callbacks cbs;
  void *ud;
  struct keel_grpc_decoder dec;
  struct keel_buf held, sendq;
  int paused, send_closed, eof_sent, writable_wanted;
  int stream_closed; /* nghttp2 stream gone */
  int ended;         /* status decided, waiting to be reported */
  int aborted;       /* ended locally: held input is dropped */
  int reported;
  int code;
  char *message;
  int have_status;                  /* grpc-status seen in headers/trailers */
  enum keel_grpc_delivery delivery; /* decided with the status */
  int req_out;       /* a HEADERS/DATA frame of the request was produced */
  uint64_t req_mark; /* ch->produced when it was */
  int http_status;
  int timer_inited;
  uv_timer_t timer;
};

static void ch_flush(keel_grpc_channel *ch);
static void ch_report(keel_grpc_channel *ch);
static void ch_fail(keel_grpc_channel *ch, int err, const char *why);
static void ch_maybe_free(keel_grpc_channel *ch);

void keel_grpc_channel_config_default(struct keel_grpc_channel_config *c) {
  c->max_recv_msg_bytes = 64u * 1024 * 1024;
  c->max_send_msg_bytes = 2u * 1024 * 1024;
  c->call_send_buffer_bytes = 1024 * 1024;
  c->max_calls = 1000;
  c->connect_timeout_ms = 5000;
  c->keepalive_time_ms = 0;
  c->keepalive_timeout_ms = 20000;
}

/* ---- buffers ---------------------------------------------------------- */

/* ---- transport: plaintext TCP ----------------------------------------- */

static size_t tcp_pending(const keel_grpc_channel *ch) {
  return ch->out_len + ch->inflight;
}

static int tcp_write(keel_grpc_channel *ch, const void *data, size_t len) {
  if (ch->out_len + len > ch->out_cap) {
    size_t cap = ch->out_cap ? ch->out_cap : 16384;
    while (cap < ch->out_len + len)
      cap *= 2;
    char *p = realloc(ch->out, cap);
    if (p == NULL)
      return -ENOMEM;
    ch->out = p;
    ch->out_cap = cap;
  }
  memcpy(ch->out + ch->out_len, data, len);
  ch->out_len += len;
  return 0;
}

struct write_req {
  uv_write_t req;
  keel_grpc_channel *ch;
  char *data;
  size_t len;
};

static void on_write_done(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  keel_grpc_channel *ch = w->ch;
  ch->inflight -= w->len;
  free(w->data);
  free(w);
  if (ch->state == KEEL_GRPC_CHANNEL_DEAD)
    return;
  if (status < 0) {
    ch_fail(ch, status, uv_strerror(status));
    return;
  }
  ch_flush(ch);
}

static void tcp_flush(keel_grpc_channel *ch) {
  /* Until connected, output waits in ch->out. */
  if (ch->state != KEEL_GRPC_CHANNEL_READY || ch->out_len == 0)
    return;
  struct write_req *w = malloc(sizeof(*w));
  if (w == NULL) {
    ch_fail(ch, -ENOMEM, "out of memory");
    return;
  }
  w->ch = ch;
  w->data = ch->out;
  w->len = ch->out_len;
  ch->out = NULL;
  ch->out_len = ch->out_cap = 0;
  ch->inflight += w->len;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
  size_t len = w->len;
  int rc = uv_write(&w->req, (uv_stream_t *)&ch->tcp, &b, 1, on_write_done);
  if (rc < 0) {
    ch->inflight -= w->len;
    free(w->data);
    free(w);
    ch_fail(ch, rc, uv_strerror(rc));
    return;
  }
  ch->handed += len;
}

static const struct cli_io_ops tcp_ops = {tcp_write, tcp_flush, tcp_pending};

/* ---- call endings ----------------------------------------------------- */

/* Did any byte of the request reach the socket? (See ch->handed.) */
static int call_on_wire(const keel_grpc_client_call *call) {
  return call->req_out && call->ch->handed > call->req_mark;
}

/* The delivery of a call ended here, not by a server status: never
 * written = NOT_SENT, else MAYBE_PROCESSED. (Streams a GOAWAY puts above
 * its last-stream-id never get here: nghttp2 closes them on receipt with
 * REFUSED_STREAM, see on_stream_close.) */
static enum keel_grpc_delivery
call_local_delivery(const keel_grpc_client_call *call) {
  return call_on_wire(call) ? KEEL_GRPC_MAYBE_PROCESSED : KEEL_GRPC_NOT_SENT;
}

/* Decides the call's status and delivery (first decision wins) and queues
 * the report. An abort (cancel, deadline, connection loss, bad input)
 * drops input not yet delivered; a status from the server is reported
 * after it. */
static void call_end_as(keel_grpc_client_call *call, int code, const char *msg,
                        int aborted, enum keel_grpc_delivery delivery) {
  if (call->ended)
    return;
  call->ended = 1;
  call->aborted = aborted;
  call->code = code;
  call->delivery = delivery;
  free(call->message);
  call->message = strdup(msg ? msg : "");
  if (call->timer_inited)
    uv_timer_stop(&call->timer);
}

static void call_end(keel_grpc_client_call *call, int code, const char *msg) {
  call_end_as(call, code, msg, 1, call_local_delivery(call));
}

static void call_free_now(keel_grpc_client_call *call) {
  keel_grpc_decoder_free(&call->dec);
  keel_buf_free(&call->held);
  keel_buf_free(&call->sendq);
  free(call->message);
  free(call);
}

static void on_call_timer_closed(uv_handle_t *h) {
  call_free_now(h->data);
}

static void call_unlink(keel_grpc_client_call *call) {
  keel_grpc_channel *ch = call->ch;
  if (call->prev)
    call->prev->next = call->next;
  else
    ch->calls = call->next;
  if (call->next)
    call->next->prev = call->prev;
  ch->n_calls--;
}

/* Reports ended calls whose input has been delivered (a paused call keeps
 * its status until resumed, so no message is lost behind it). */
static void ch_report(keel_grpc_channel *ch) {
  if (ch->reporting || ch->busy)
    return;
  ch->reporting = 1;
  int again = 1;
  while (again) {
    again = 0;
    keel_grpc_client_call *next;
    for (keel_grpc_client_call *call = ch->calls; call; call = next) {
      next = call->next;
      if (!call->ended || call->reported)
        continue;
      if (call->paused && keel_buf_size(&call->held) > 0 && !call->aborted)
        continue; /* deliver the held messages first (on resume) */
      call->reported = 1;
      if (!call->stream_closed && ch->ng &&
          ch->state != KEEL_GRPC_CHANNEL_DEAD) {
        nghttp2_session_set_stream_user_data(ch->ng, call->stream_id, NULL);
        nghttp2_submit_rst_stream(ch->ng, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_CANCEL);
        ch->want_flush = 1;
      }
      call_unlink(call);
      call->cbs.on_status(call, call->code, call->message, call->ud);
      if (call->timer_inited)
        uv_close((uv_handle_t *)&call->timer, on_call_timer_closed);
      else
        call_free_now(call);
      again = 1; /* the callback may have changed the list */
      break;
    }
  }
  ch->reporting = 0;
  if (ch->closing) {
    ch_maybe_free(ch);
    return;
  }
  if (ch->want_flush)
    ch_flush(ch);
}

/* ---- nghttp2 callbacks ------------------------------------------------ */

static int on_decoded(void *ud, const uint8_t *msg, size_t len) {
  keel_grpc_client_call *call = ud;
  if (call->aborted)
    return 1;
  call->cbs.on_message(call, msg, len, call->ud);
  return call->paused || call->aborted ? 1 : 0;
}

/* Decodes as much as allowed; returns bytes used or -1 (call ended). */
static ssize_t feed(keel_grpc_client_call *call, const uint8_t *data,
                    size_t len) {
  size_t used = 0;
  int rc =
      keel_grpc_decoder_feed(&call->dec, data, len, &used, on_decoded, call);
  if (rc == 0 || rc == 1)
    return (ssize_t)used;
  char m[160];
  if (rc == KEEL_ELIMIT) {
    snprintf(m, sizeof(m),
             "grpc: received message larger than max (%" PRIu64 " vs. %zu)",
             call->dec.bad_len, call->ch->cfg.max_recv_msg_bytes);
    call_end(call, KEEL_GRPC_RESOURCE_EXHAUSTED, m);
  } else if (rc == KEEL_EBADMSG) {
    call_end(call, KEEL_GRPC_INTERNAL,
             "grpc: compressed flag set with identity or empty encoding");
  } else {
    call_end(call, KEEL_GRPC_RESOURCE_EXHAUSTED,
             "grpc: out of memory receiving message");
  }
  return -1;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud) {
  (void)flags;
  (void)ud;
  keel_grpc_client_call *call =
      nghttp2_session_get_stream_user_data(ng, stream_id);
  if (call == NULL || call->aborted) {
    nghttp2_session_consume(ng, stream_id, len);
    return 0;
  }
  if (call->paused || keel_buf_size(&call->held) > 0) {
    if (keel_buf_size(&call->held) + len > STREAM_WINDOW ||
        keel_buf_append(&call->held, data, len) != 0) {
      nghttp2_session_consume(ng, stream_id, len);
      call_end(call, KEEL_GRPC_RESOURCE_EXHAUSTED,
               "grpc: server sent past the flow-control window");
    }
    return 0;
  }
  ssize_t used = feed(call, data, len);
  if (used < 0) {
    nghttp2_session_consume(ng, stream_id, len);
    return 0;
  }
  nghttp2_session_consume(ng, stream_id, (size_t)used);
  if ((size_t)used < len && !call->aborted) {
    if (keel_buf_append(&call->held, data + used, len - (size_t)used) != 0) {
      nghttp2_session_consume(ng, stream_id, len - (size_t)used);
      call_end(call, KEEL_GRPC_RESOURCE_EXHAUSTED,
               "grpc: out of memory holding input");
    }
  } else if ((size_t)used < len) {
    nghttp2_session_consume(ng, stream_id, len - (size_t)used);
  }
  return 0;
}

#define HDR_IS(lit)                                                            \
  (namelen == sizeof(lit) - 1 && memcmp(name, lit, namelen) == 0)

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *ud) {
  (void)flags;
  (void)ud;
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  keel_grpc_client_call *call =
      nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (call == NULL)
    return 0;
  if (HDR_IS(":status")) {
    int s = 0;
    for (size_t i = 0; i < valuelen && i < 3; i++)
      s = s * 10 + (value[i] - '0');
    call->http_status = s;
  } else if (HDR_IS("grpc-status")) {
    int s = 0;
    for (size_t i = 0; i < valuelen && i < 3; i++) {
      if (value[i] < '0' || value[i] > '9') {
        s = KEEL_GRPC_UNKNOWN;
        break;
      }
      s = s * 10 + (value[i] - '0');
    }
    call->have_status = 1;
    call->code = s;
  } else if (HDR_IS("grpc-message")) {
    char m[STATUS_MSG_MAX];
    keel_grpc_percent_decode((const char *)value, valuelen, m, sizeof(m));
    free(call->message);
    call->message = strdup(m);
  }
  return 0;
}

/* HTTP status to gRPC code when no grpc-status came (PROTOCOL-HTTP2 spec). */
static int http_to_grpc(int http) {
  switch (http) {
  case 400:
    return KEEL_GRPC_INTERNAL;
  case 401:
    return KEEL_GRPC_UNAUTHENTICATED;
  case 403:
    return KEEL_GRPC_PERMISSION_DENIED;
  case 404:
    return KEEL_GRPC_UNIMPLEMENTED;
  case 429:
  case 502:
  case 503:
  case 504:
    return KEEL_GRPC_UNAVAILABLE;
  default:
    return KEEL_GRPC_UNKNOWN;
  }
}

static void end_from_status(keel_grpc_client_call *call) {
  if (call->have_status) {
    char *m = call->message;
    call->message = NULL;
    call_end_as(call, call->code, m, 0, KEEL_GRPC_ANSWERED);
    free(m);
    return;
  }
  char m[96];
  snprintf(m, sizeof(m), "unexpected HTTP status code received from server: %d",
           call->http_status);
  call_end_as(call, http_to_grpc(call->http_status), m, 1, KEEL_GRPC_ANSWERED);
}

#define KEEPALIVE_PING "keelping"

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame,
                         void *ud) {
  keel_grpc_channel *ch = ud;
  if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) &&
      memcmp(frame->ping.opaque_data, KEEPALIVE_PING, 8) == 0) {
    ch->ping_sent_at = 0;
    ch->ping_overdue = 0;
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
    return 0;
  if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  keel_grpc_client_call *call =
      nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (call == NULL || call->ended)
    return 0;
  if (keel_buf_size(&call->held) == 0 && !keel_grpc_decoder_idle(&call->dec) &&
      call->code == KEEL_GRPC_OK) {
    /* The server ended the stream: its (broken) answer. */
    call_end_as(call, KEEL_GRPC_INTERNAL,
                "grpc: server ended the stream inside a message", 1,
                KEEL_GRPC_ANSWERED);
    return 0;
  }
  end_from_status(call);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t stream_id,
                           uint32_t error_code, void *ud) {
  (void)ud;
  keel_grpc_client_call *call =
      nghttp2_session_get_stream_user_data(ng, stream_id);
  if (call == NULL)
    return 0;
  call->stream_closed = 1;
  if (!call->ended) {
    char m[128];
    int code;
    if (error_code == NGHTTP2_REFUSED_STREAM) {
      /* RST_STREAM(REFUSED_STREAM) from the server, or nghttp2 closing a
       * stream above a GOAWAY's last-stream-id: not processed (RFC 9113
       * 8.7). A stream never written is plainly NOT_SENT. */
      snprintf(m, sizeof(m), "stream refused by the server (going away)");
      call_end_as(call, KEEL_GRPC_UNAVAILABLE, m, 1,
                  call_on_wire(call) ? KEEL_GRPC_REFUSED : KEEL_GRPC_NOT_SENT);
      return 0;
    } else if (error_code == NGHTTP2_CANCEL) {
      code = KEEL_GRPC_CANCELLED;
      snprintf(m, sizeof(m), "stream canceled by the server");
    } else {
      code = KEEL_GRPC_INTERNAL;
      snprintf(m, sizeof(m), "stream terminated by RST_STREAM with error: %s",
               nghttp2_http2_strerror(error_code));
    }
    call_end(call, code, m);
  }
  return 0;
}

/* Marks a call's request as produced by its first HEADERS or DATA frame;
 * nghttp2 calls this before mem_send returns that frame's bytes, so the
 * bytes start at or after ch->produced. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame,
                         void *ud) {
  keel_grpc_channel *ch = ud;
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
    return 0;
  keel_grpc_client_call *call =
      nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (call != NULL && !call->req_out) {
    call->req_out = 1;
    call->req_mark = ch->produced;
  }
  return 0;
}

static ssize_t data_read(nghttp2_session *ng, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *ud) {
  (void)source;
  (void)ud;
  /* Through the stream's user data, not source->ptr: a reported call is
   * freed at once and its stream's pointer cleared, while its RST_STREAM may
   * still be queued. */
  keel_grpc_client_call *call =
      nghttp2_session_get_stream_user_data(ng, stream_id);
  if (call == NULL)
    return NGHTTP2_ERR_DEFERRED;
  size_t have = keel_buf_size(&call->sendq);
  size_t n = have < length ? have : length;
  if (n > 0)
    memcpy(buf, call->sendq.p + call->sendq.off, n);
  call->sendq.off += n;
  if (n == have && call->send_closed) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    call->eof_sent = 1;
  } else if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  if (call->writable_wanted && keel_grpc_client_writable(call) >=
                                   call->ch->cfg.call_send_buffer_bytes / 2)
    call->writable_wanted = 2; /* notify after nghttp2 returns */
  return (ssize_t)n;
}

/* ---- channel ---------------------------------------------------------- */

static void ch_del_session(keel_grpc_channel *ch) {
  if (ch->state == KEEL_GRPC_CHANNEL_DEAD && !ch->busy && ch->ng) {
    nghttp2_session_del(ch->ng);
    ch->ng = NULL;
  }
}

static void ch_flush(keel_grpc_channel *ch) {
  if (ch->state == KEEL_GRPC_CHANNEL_DEAD || ch->ng == NULL)
    return;
  if (ch->busy) {
    ch->want_flush = 1;
    return;
  }
  ch->busy = 1;
  do {
    ch->want_flush = 0;
    while (ch->io->pending(ch) < IO_HIGH_WATER) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(ch->ng, &data);
      if (n < 0) {
        ch->busy = 0;
        ch_fail(ch, KEEL_EBADMSG, nghttp2_strerror((int)n));
        return;
      }
      if (n == 0)
        break;
      if (ch->io->write(ch, data, (size_t)n) != 0) {
        ch->busy = 0;
        ch_fail(ch, -ENOMEM, "out of memory");
        return;
      }
      ch->produced += (uint64_t)n;
    }
    ch->io->flush(ch);
    ch->busy = 0;
    if (ch->state == KEEL_GRPC_CHANNEL_DEAD) {
      ch_report(ch);
      ch_del_session(ch);
      return;
    }
    /* writable notifications, outside nghttp2 */
    keel_grpc_client_call *next;
    for (keel_grpc_client_call *call = ch->calls; call; call = next) {
      next = call->next;
      if (call->writable_wanted == 2 && !call->ended) {
        call->writable_wanted = 0;
        if (call->cbs.on_writable)
          call->cbs.on_writable(call, call->ud);
      }
    }
    ch->busy = 1;
  } while (ch->want_flush && ch->state != KEEL_GRPC_CHANNEL_DEAD);
  ch->busy = 0;
  ch_report(ch);
  if (ch->state == KEEL_GRPC_CHANNEL_DEAD) {
    ch_del_session(ch);
    return;
  }
  if (ch->state == KEEL_GRPC_CHANNEL_READY &&
      !nghttp2_session_want_read(ch->ng) &&
      !nghttp2_session_want_write(ch->ng) && ch->io->pending(ch) == 0)
    ch_fail(ch, KEEL_EUNAVAILABLE, "server closed the connection (GOAWAY)");
}

/* Frees a closed channel once its handles are closed and no code of ours
 * is on the stack for it. */
static void ch_maybe_free(keel_grpc_channel *ch) {
  if (!ch->closing || ch->handles_open > 0 || ch->reporting || ch->busy ||
      ch->hold || ch->freed)
    return;
  ch->freed = 1;
  void (*cb)(void *) = ch->close_cb;
  void *ud = ch->close_ud;
  assert(ch->calls == NULL && ch->ng == NULL);
  free(ch->out);
  free(ch);
  if (cb)
    cb(ud);
}

static void on_tcp_closed(uv_handle_t *h) {
  keel_grpc_channel *ch = h->data;
  ch->handles_open--;
  ch_maybe_free(ch);
}

/* The connection is gone: every open call ends with UNAVAILABLE (or the
 * status already decided). */
static void ch_fail(keel_grpc_channel *ch, int err, const char *why) {
  if (ch->state == KEEL_GRPC_CHANNEL_DEAD)
    return;
  int was_ready = ch->state == KEEL_GRPC_CHANNEL_READY;
  ch->state = KEEL_GRPC_CHANNEL_DEAD;
  ch->error = err;
  char m[256];
  snprintf(m, sizeof(m), "%s: %s",
           was_ready ? "connection lost" : "connection failed", why);
  for (keel_grpc_client_call *call = ch->calls; call; call = call->next) {
    call->stream_closed = 1;
    call->paused = 0; /* deliver the error now */
    keel_buf_free(&call->held);
    call_end(call, KEEL_GRPC_UNAVAILABLE, m);
  }
  if (!uv_is_closing((uv_handle_t *)&ch->tcp))
    uv_close((uv_handle_t *)&ch->tcp, on_tcp_closed);
  if (!uv_is_closing((uv_handle_t *)&ch->connect_timer))
    uv_close((uv_handle_t *)&ch->connect_timer, on_tcp_closed);
  if (!ch->busy)
    ch_report(ch); /* else the caller's ch_flush/ch_read reports */
  ch_del_session(ch);
}

static void ch_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  keel_grpc_channel *ch = h->data;
  *buf = uv_buf_init(ch->read_buf, sizeof(ch->read_buf));
}

static void ch_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  keel_grpc_channel *ch = s->data;
  if (nread == 0 || ch->state == KEEL_GRPC_CHANNEL_DEAD)
    return;
  if (nread < 0) {
    ch_fail(ch, (int)nread,
            nread == UV_EOF ? "server closed the connection"
                            : uv_strerror((int)nread));
    return;
  }
  ch->last_read = uv_now(ch->loop);
  ch->busy = 1;
  ssize_t n = nghttp2_session_mem_recv(ch->ng, (const uint8_t *)buf->base,
                                       (size_t)nread);
  ch->busy = 0;
  if (ch->state == KEEL_GRPC_CHANNEL_DEAD) {
    ch_report(ch);
    ch_del_session(ch);
    return;
  }
  if (n < 0) {
    ch_fail(ch, KEEL_EBADMSG, nghttp2_strerror((int)n));
    return;
  }
  ch_flush(ch);
}

static void on_keepalive_tick(uv_timer_t *t) {
  keel_grpc_channel *ch = t->data;
  if (ch->state != KEEL_GRPC_CHANNEL_READY || ch->ng == NULL)
    return;
  uint64_t now = uv_now(ch->loop);
  if (ch->ping_sent_at) {
    /* Overdue is decided one tick later: an I/O poll runs between two
     * ticks, so an ACK that arrived while this process was not scheduled
     * is read before the channel is declared dead. */
    if (now - ch->ping_sent_at >= ch->cfg.keepalive_timeout_ms) {
      if (ch->ping_overdue)
        ch_fail(ch, KEEL_ETIMEOUT, "keepalive timeout: no PING ACK");
      else
        ch->ping_overdue = 1;
    }
    return;
  }
  /* As grpc-go by default: no pings without open calls. */
  if (ch->n_calls == 0 || now - ch->last_read < ch->cfg.keepalive_time_ms)
    return;
  if (nghttp2_submit_ping(ch->ng, NGHTTP2_FLAG_NONE,
                          (const uint8_t *)KEEPALIVE_PING) == 0) {
    ch->ping_sent_at = now ? now : 1;
    ch_flush(ch);
  }
}

static void on_connect(uv_connect_t *req, int status) {
  keel_grpc_channel *ch = req->data;
  if (ch->state == KEEL_GRPC_CHANNEL_DEAD)
    return;
  uv_timer_stop(&ch->connect_timer);
  if (status < 0) {
    ch_fail(ch, status, uv_strerror(status));
    return;
  }
  ch->state = KEEL_GRPC_CHANNEL_READY;
  ch->last_read = uv_now(ch->loop);
  if (ch->cfg.keepalive_time_ms) {
    uint64_t tick = ch->cfg.keepalive_time_ms < ch->cfg.keepalive_timeout_ms
                        ? ch->cfg.keepalive_time_ms
                        : ch->cfg.keepalive_timeout_ms;
    tick = tick / 4 ? tick / 4 : 1;
    uv_timer_start(&ch->connect_timer, on_keepalive_tick, tick, tick);
  }
  uv_tcp_nodelay(&ch->tcp, 1);
  int rc = uv_read_start((uv_stream_t *)&ch->tcp, ch_alloc, ch_read);
  if (rc < 0) {
    ch_fail(ch, rc, uv_strerror(rc));
    return;
  }
  ch_flush(ch);
}

static void on_connect_timeout(uv_timer_t *t) {
  keel_grpc_channel *ch = t->data;
  ch_fail(ch, KEEL_ETIMEOUT, "connect timed out");
}

int keel_grpc_channel_new(uv_loop_t *loop, const char *host, int port,
                          const struct keel_grpc_channel_config *cfg,
                          keel_grpc_channel **out) {
  struct sockaddr_storage ss;
  if (strcmp(host, "localhost") == 0)
    host = "127.0.0.1";
  int rc = strchr(host, ':')
               ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)
               : uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (rc != 0 || port <= 0 || port > 65535)
    return -EINVAL;
  keel_grpc_channel *ch = calloc(1, sizeof(*ch));
  if (ch == NULL)
    return -ENOMEM;
  ch->loop = loop;
  if (cfg)
    ch->cfg = *cfg;
  else
    keel_grpc_channel_config_default(&ch->cfg);
  if (ch->cfg.keepalive_time_ms && ch->cfg.keepalive_timeout_ms == 0)
    ch->cfg.keepalive_timeout_ms = 20000;
  ch->io = &tcp_ops;
  snprintf(ch->authority, sizeof(ch->authority),
           strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);

  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    free(ch);
    return -ENOMEM;
  }
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    free(ch);
    return -ENOMEM;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  rc = nghttp2_session_client_new2(&ch->ng, cbs, ch, opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rc != 0) {
    free(ch);
    return -ENOMEM;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
  };
  nghttp2_submit_settings(ch->ng, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(ch->ng, NGHTTP2_FLAG_NONE, 0,
                                        CONN_WINDOW);

  uv_tcp_init(loop, &ch->tcp);
  ch->tcp.data = ch;
  uv_timer_init(loop, &ch->connect_timer);
  ch->connect_timer.data = ch;
  ch->handles_open = 2;
  ch->connect_req.data = ch;
  rc = uv_tcp_connect(&ch->connect_req, &ch->tcp, (struct sockaddr *)&ss,
                      on_connect);
  if (rc != 0) {
    /* Report through the normal path so the caller frees it with close. */
    ch_fail(ch, rc, uv_strerror(rc));
  } else {
    uv_timer_start(&ch->connect_timer, on_connect_timeout,
                   ch->cfg.connect_timeout_ms, 0);
  }
  /* The preface and SETTINGS wait in ch->out until connected. */
  ch_flush(ch);
  *out = ch;
  return 0;
}

enum keel_grpc_channel_state
keel_grpc_channel_state(const keel_grpc_channel *ch) {
  return ch->state;
}

int keel_grpc_channel_error(const keel_grpc_channel *ch) {
  return ch->error;
}

void keel_grpc_channel_close(keel_grpc_channel *ch, void (*cb)(void *ud),
                             void *ud) {
  assert(!ch->closing);
  ch->hold++;
  for (keel_grpc_client_call *call = ch->calls; call; call = call->next) {
    call->paused = 0;
    keel_buf_free(&call->held);
    call_end(call, KEEL_GRPC_CANCELLED, "channel closed");
  }
  ch->closing = 1;
  ch->close_cb = cb;
  ch->close_ud = ud;
  if (ch->state != KEEL_GRPC_CHANNEL_DEAD)
    ch_fail(ch, KEEL_ESTOPPED, "channel closed");
  else if (!ch->busy)
    ch_report(ch);
  ch_del_session(ch);
  ch->hold--;
  ch_maybe_free(ch);
}

/* ---- calls ------------------------------------------------------------ */

static void on_call_deadline(uv_timer_t *t) {
  keel_grpc_client_call *call = t->data;
  call->paused = 0;
  call_end(call, KEEL_GRPC_DEADLINE_EXCEEDED, "context deadline exceeded");
  ch_report(call->ch);
}

int keel_grpc_client_start(keel_grpc_channel *ch, const char *method,
                           uint64_t timeout_ms, const char *const *metadata,
                           const struct keel_grpc_client_callbacks *cbs,
                           void *ud, keel_grpc_client_call **out) {
  if (method == NULL || method[0] != '/' || cbs == NULL ||
      cbs->on_message == NULL || cbs->on_status == NULL)
    return -EINVAL;
  if (ch->state == KEEL_GRPC_CHANNEL_DEAD || ch->closing || ch->ng == NULL)
    return KEEL_EUNAVAILABLE;
  if (ch->n_calls >= ch->cfg.max_calls)
    return KEEL_EBUSY;
  size_t n_md = 0;
  if (metadata)
    while (metadata[n_md * 2] && metadata[n_md * 2 + 1] && n_md < 32)
      n_md++;
  keel_grpc_client_call *call = calloc(1, sizeof(*call));
  nghttp2_nv *nva = calloc(8 + n_md, sizeof(nghttp2_nv));
  if (call == NULL || nva == NULL) {
    free(call);
    free(nva);
    return -ENOMEM;
  }
  call->ch = ch;
  call->cbs = *cbs;
  call->ud = ud;
  keel_grpc_decoder_init(&call->dec, ch->cfg.max_recv_msg_bytes);
  char tmo[16];
  size_t n = 0;
#define ADD(nm, val)                                                           \
  nva[n++] = (nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(val), strlen(nm),       \
                          strlen(val), NGHTTP2_NV_FLAG_NONE}
  ADD(":method", "POST");
  ADD(":scheme", "http");
  ADD(":path", method);
  ADD(":authority", ch->authority);
  ADD("content-type", "application/grpc");
  ADD("te", "trailers");
  ADD("user-agent", "keel-grpc/0.1");
  if (timeout_ms) {
    keel_grpc_timeout_format(timeout_ms, tmo);
    ADD("grpc-timeout", tmo);
  }
  for (size_t i = 0; i < n_md; i++)
    ADD(metadata[2 * i], metadata[2 * i + 1]);
#undef ADD
  nghttp2_data_provider dp;
  dp.source.ptr = call;
  dp.read_callback = data_read;
  int32_t sid = nghttp2_submit_request(ch->ng, NULL, nva, n, &dp, call);
  free(nva);
  if (sid < 0) {
    keel_grpc_decoder_free(&call->dec);
    free(call);
    return sid == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED ? KEEL_EUNAVAILABLE
                                                       : -ENOMEM;
  }
  call->stream_id = sid;
  call->next = ch->calls;
  if (ch->calls)
    ch->calls->prev = call;
  ch->calls = call;
  ch->n_calls++;
  if (timeout_ms) {
    uv_timer_init(ch->loop, &call->timer);
    call->timer.data = call;
    call->timer_inited = 1;
    uv_timer_start(&call->timer, on_call_deadline, timeout_ms, 0);
  }
  ch_flush(ch);
  *out = call;
  return 0;
}

size_t keel_grpc_client_writable(const keel_grpc_client_call *call) {
  if (call->ended || call->send_closed)
    return 0;
  size_t lim = call->ch->cfg.call_send_buffer_bytes;
  size_t q = keel_buf_size(&call->sendq);
  size_t f = q >= lim ? 0 : lim - q;
  return f > KEEL_GRPC_PREFIX_LEN ? f - KEEL_GRPC_PREFIX_LEN : 0;
}

int keel_grpc_client_send(keel_grpc_client_call *call, const void *msg,
                          size_t len) {
  if (call->send_closed)
    return -EINVAL;
  if (call->ended)
    return KEEL_ECANCELED;
  if (len > call->ch->cfg.max_send_msg_bytes)
    return KEEL_ELIMIT;
  size_t q = keel_buf_size(&call->sendq);
  if (q > 0 &&
      q + len + KEEL_GRPC_PREFIX_LEN > call->ch->cfg.call_send_buffer_bytes) {
    call->writable_wanted = 1;
    return KEEL_EBUSY;
  }
  uint8_t prefix[KEEL_GRPC_PREFIX_LEN];
  keel_grpc_prefix_encode(prefix, len);
  if (keel_buf_append(&call->sendq, prefix, sizeof(prefix)) != 0 ||
      keel_buf_append(&call->sendq, msg, len) != 0) {
    call->sendq.len = call->sendq.off + q;
    return -ENOMEM;
  }
  if (call->ch->ng && !call->stream_closed)
    nghttp2_session_resume_data(call->ch->ng, call->stream_id);
  ch_flush(call->ch);
  return 0;
}

int keel_grpc_client_close_send(keel_grpc_client_call *call) {
  if (call->send_closed)
    return 0;
  call->send_closed = 1;
  if (call->ch->ng && !call->stream_closed && !call->ended) {
    nghttp2_session_resume_data(call->ch->ng, call->stream_id);
    ch_flush(call->ch);
  }
  return 0;
}

void keel_grpc_client_cancel(keel_grpc_client_call *call) {
  keel_grpc_channel *ch = call->ch;
  call->paused = 0;
  keel_buf_free(&call->held);
  call_end(call, KEEL_GRPC_CANCELLED, "canceled by the client");
  ch_report(ch);
}

enum keel_grpc_delivery
keel_grpc_client_delivery(const keel_grpc_client_call *call) {
  return call->delivery;
}

void keel_grpc_client_pause(keel_grpc_client_call *call) {
  call->paused = 1;
}

void keel_grpc_client_resume(keel_grpc_client_call *call) {
  if (!call->paused)
    return;
  call->paused = 0;
  keel_grpc_channel *ch = call->ch;
  while (!call->paused && keel_buf_size(&call->held) > 0 && !call->aborted) {
    size_t nheld = keel_buf_size(&call->held);
    ssize_t used = feed(call, call->held.p + call->held.off, nheld);
    size_t u = used < 0 ? nheld : (size_t)used;
    call->held.off += u;
    if (ch->ng && !call->stream_closed)
      nghttp2_session_consume(ch->ng, call->stream_id, u);
  }
  if (call->aborted)
    keel_buf_free(&call->held);
  ch_flush(ch); /* window updates; reports a status held behind input */
  ch_report(ch);
}

/* ---- unary convenience ------------------------------------------------ */

struct unary_ctx {
  keel_grpc_unary_cb cb;
  void *ud;
  uint8_t *resp;
  size_t resp_len;
  int n;
};

static void unary_msg(keel_grpc_client_call *call, const uint8_t *msg,
                      size_t len, void *ud) {
  struct unary_ctx *u = ud;
  if (u->n++ > 0) {
    call_end(call, KEEL_GRPC_INTERNAL,
             "grpc: server sent more than one response message");
    return;
  }
  u->resp = malloc(len ? len : 1);
  if (u->resp == NULL) {
    call_end(call, KEEL_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  if (len)
    memcpy(u->resp, msg, len);
  u->resp_len = len;
}

static void unary_status(keel_grpc_client_call *call, int code,
                         const char *message, void *ud) {
  struct unary_ctx *u = ud;
  enum keel_grpc_delivery d = keel_grpc_client_delivery(call);
  if (code == KEEL_GRPC_OK && u->n != 1)
    u->cb(KEEL_GRPC_INTERNAL, "grpc: server sent no response message", d, NULL,
          0, u->ud);
  else if (code == KEEL_GRPC_OK)
    u->cb(code, message, d, u->resp, u->resp_len, u->ud);
  else
    u->cb(code, message, d, NULL, 0, u->ud);
  free(u->resp);
  free(u);
}

int keel_grpc_client_unary(keel_grpc_channel *ch, const char *method,
                           const void *req, size_t req_len, uint64_t timeout_ms,
                           const char *const *metadata, keel_grpc_unary_cb cb,
                           void *ud) {
  struct unary_ctx *u = calloc(1, sizeof(*u));
  if (u == NULL)
    return -ENOMEM;
  u->cb = cb;
  u->ud = ud;
  static const struct keel_grpc_client_callbacks cbs = {unary_msg, unary_status,
                                                        NULL};
  keel_grpc_client_call *call;
  int rc =
      keel_grpc_client_start(ch, method, timeout_ms, metadata, &cbs, u, &call);
  if (rc != 0) {
    free(u);
    return rc;
  }
  rc = keel_grpc_client_send(call, req, req_len);
  if (rc != 0) {
    /* The call exists: end it through the normal path (cb gets the error). */
    char m[96];
    snprintf(m, sizeof(m), "grpc: cannot send request: %s", keel_strerror(rc));
    call_end(call,
             rc == KEEL_ELIMIT ? KEEL_GRPC_RESOURCE_EXHAUSTED
                               : KEEL_GRPC_INTERNAL,
             m);
    ch_report(ch);
    return 0;
  }
  keel_grpc_client_close_send(call);
  return 0;
}

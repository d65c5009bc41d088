/* client_listener.c — the client port: accept, tell HTTP/2 from HTTP/1.1 by
 * the first bytes, run HTTP/1.1 requests through the router, hand HTTP/2 to
 * grpc_server.c, enforce the connection limits and timeouts, shut down
 * gracefully.
 *
 * A connection's states:
 *
 *   SNIFF --(24 bytes == HTTP/2 preface)--> H2 --(GOAWAY done / error)--+
 *     |                                                                 |
 *     +--(a byte differs from the preface)--> H1 --(close / error)------+
 *                                                                       v
 *                                                                   CLOSING
 *                                                                 (uv_close)
 *
 * Detection reads no more than it must: the first byte that differs from
 * the preface decides HTTP/1.1 (any HTTP/1.1 method differs at byte 0 or 1,
 * "PRI" itself is not a method we route), so a short HTTP/1.1 request is
 * never kept waiting for 24 bytes.
 *
 * HTTP/1.1 requests are served one at a time per connection: while a
 * handler holds a request, reading stops, so a pipelining client is slowed
 * by TCP instead of filling a buffer here. Bytes that already arrived stay
 * in `in` (bounded by one read on top of a head).
 *
 * Outbound bytes of both protocols go through the keel_net_io seam (plain
 * TCP below); the sweep timer closes connections that stay idle, that do not
 * complete a request head in time, or that take none of our output for
 * stall_timeout_ms.
 */
#include "client_listener.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_conn.h"
#include "keel_error.h"
#include "keel_log.h"
#include "net_io.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24
#define READ_BUF_SIZE (64 * 1024)
#define MAX_ROUTES 64

enum conn_mode { MODE_SNIFF, MODE_H2, MODE_H1 };

struct route {
  char *method; /* NULL = any */
  char *prefix;
  size_t prefix_len;
  keel_http_handler_fn fn;
  void *ud;
};

struct lconn;

struct keel_client_listener {
  uv_loop_t *loop;
  struct keel_client_listener_config cfg;
  keel_grpc_server *grpc;
  struct route routes[MAX_ROUTES];
  size_t n_routes;
  uv_tcp_t server;
  uv_timer_t sweep, deadline;
  int started, shutting, port;
  int handles_open; /* server, sweep, deadline while open */
  struct lconn *conns;
  void (*shutdown_cb)(void *ud);
  void *shutdown_ud;
  int shutdown_reported;
  char read_buf[READ_BUF_SIZE]; /* reads are consumed at once: one buffer */
  struct keel_client_listener_stats stats;
};

struct keel_http_request {
  struct lconn *conn; /* NULL once the connection is gone */
  struct keel_http1_head head;
  char *buf; /* head + body, owned */
  size_t body_off, body_len;
};

struct write_req {
  uv_write_t req;
  struct lconn *conn;
  char *data;
  size_t len;
};

struct lconn {
  uv_tcp_t tcp;
  struct keel_net_io io;
  keel_client_listener *l;
  struct lconn *prev, *next;
  enum conn_mode mode;
  int closing, reading;
  char sniff[H2_PREFACE_LEN];
  size_t sniff_len;
  struct keel_h2_conn *h2;
  /* outbound: bytes queued by io_write, not yet handed to uv_write */
  char *out;
  size_t out_len, out_cap;
  size_t inflight; /* bytes handed to uv_write, not yet completed */
  /* HTTP/1.1 */
  char *in;
  size_t in_len, in_cap;
  keel_http_request *cur;
  int close_after_write, in_process, sent_continue;
  /* timestamps (uv_now ms) */
  uint64_t accepted_at, last_read, head_started, last_progress;
  uint64_t idle_goaway_at; /* HTTP/2 idle: when GOAWAY was sent, else 0 */
};

static void conn_close(struct lconn *c);
static void process_h1(struct lconn *c);
static void check_shutdown_done(keel_client_listener *l);

void keel_client_listener_config_default(
    struct keel_client_listener_config *c) {
  memset(c, 0, sizeof(*c));
  c->max_connections = 1024;
  c->max_concurrent_streams = 1000;
  c->max_recv_msg_bytes = 1536 * 1024 + 512 * 1024;
  c->max_send_msg_bytes = 128u * 1024 * 1024;
  c->stream_send_buffer_bytes = 1024 * 1024;
  c->conn_send_buffer_bytes = 8 * 1024 * 1024;
  c->max_header_list_bytes = 64 * 1024;
  c->idle_timeout_ms = 300000;
  c->head_timeout_ms = 10000;
  c->stall_timeout_ms = 30000;
  keel_http1_limits_default(&c->http1);
}

/* ---- the plaintext TCP transport (keel_net_io) ------------------------- */

static struct lconn *io_conn(const struct keel_net_io *io) {
  return (struct lconn *)((char *)io - offsetof(struct lconn, io));
}

static size_t io_pending(const struct keel_net_io *io) {
  const struct lconn *c = io_conn(io);
  return c->out_len + c->inflight;
}

static int io_write(struct keel_net_io *io, const void *data, size_t len) {
  struct lconn *c = io_conn(io);
  if (c->closing)
    return KEEL_ESTOPPED;
  if (len == 0)
    return 0;
  if (io_pending(io) == 0)
    c->last_progress = uv_now(c->l->loop);
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 16384;
    while (cap < c->out_len + len)
      cap *= 2;
    char *p = realloc(c->out, cap);
    if (p == NULL)
      return -ENOMEM;
    c->out = p;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, data, len);
  c->out_len += len;
  return 0;
}

static void on_write_done(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct lconn *c = w->conn;
  c->inflight -= w->len;
  free(w->data);
  free(w);
  if (c->closing)
    return;
  if (status < 0) {
    keel_logf(KEEL_LOG_DEBUG, "net", "client write failed: %s",
              uv_strerror(status));
    conn_close(c);
    return;
  }
  c->last_progress = uv_now(c->l->loop);
  if (c->mode == MODE_H2 && c->h2)
    keel_h2_conn_drained(c->h2);
  else if (c->mode == MODE_H1 && c->close_after_write &&
           io_pending(&c->io) == 0)
    conn_close(c);
}

static void io_flush(struct keel_net_io *io) {
  struct lconn *c = io_conn(io);
  if (c->closing || c->out_len == 0)
    return;
  struct write_req *w = malloc(sizeof(*w));
  if (w == NULL) {
    conn_close(c);
    return;
  }
  /* Hand the whole buffer over: no copy, the next write starts a new one. */
  w->conn = c;
  w->data = c->out;
  w->len = c->out_len;
  c->out = NULL;
  c->out_len = c->out_cap = 0;
  c->inflight += w->len;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
  if (rc < 0) {
    c->inflight -= w->len;
    free(w->data);
    free(w);
    conn_close(c);
  }
}

static const struct keel_net_io_ops tcp_io_ops = {
    .write = io_write,
    .flush = io_flush,
    .pending = io_pending,
};

/* ---- connection lifecycle --------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
  struct lconn *c = h->data;
  keel_client_listener *l = c->l;
  if (c->h2)
    keel_h2_conn_free(c->h2);
  if (c->cur)
    c->cur->conn = NULL; /* the handler still owns it */
  if (c->prev)
    c->prev->next = c->next;
  else
    l->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  l->stats.connections_open--;
  free(c->in);
  free(c->out);
  free(c);
  check_shutdown_done(l);
}

static void conn_close(struct lconn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_h2_done(void *owner) {
  conn_close(owner);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct lconn *c = h->data;
  *buf = uv_buf_init(c->l->read_buf, READ_BUF_SIZE);
}

static void read_stop(struct lconn *c) {
  if (c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void read_start(struct lconn *c) {
  if (!c->reading && !c->closing) {
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) == 0)
      c->reading = 1;
    else
      conn_close(c);
  }
}

static int h1_append(struct lconn *c, const char *data, size_t len) {
  if (len == 0)
    return 0;
  if (c->in_len + len > c->in_cap) {
    size_t cap = c->in_cap ? c->in_cap : 4096;
    while (cap < c->in_len + len)
      cap *= 2;
    char *p = realloc(c->in, cap);
    if (p == NULL)
      return -ENOMEM;
    c->in = p;
    c->in_cap = cap;
  }
  memcpy(c->in + c->in_len, data, len);
  c->in_len += len;
  return 0;
}

static void become_h1(struct lconn *c, const char *rest, size_t rest_len) {
  c->mode = MODE_H1;
  c->l->stats.connections_http1++;
  c->head_started = uv_now(c->l->loop);
  if (h1_append(c, c->sniff, c->sniff_len) != 0 ||
      h1_append(c, rest, rest_len) != 0) {
    conn_close(c);
    return;
  }
  process_h1(c);
}

static void become_h2(struct lconn *c, const char *rest, size_t rest_len) {
  c->mode = MODE_H2;
  c->l->stats.connections_h2++;
  if (keel_h2_conn_new(c->l->grpc, &c->io, on_h2_done, c, &c->h2) != 0) {
    conn_close(c);
    return;
  }
  if (keel_h2_conn_recv(c->h2, (const uint8_t *)c->sniff, c->sniff_len) != 0)
    return;
  if (rest_len)
    keel_h2_conn_recv(c->h2, (const uint8_t *)rest, rest_len);
  if (c->l->shutting && !c->closing)
    keel_h2_conn_goaway(c->h2);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct lconn *c = s->data;
  if (nread == 0)
    return;
  if (nread < 0) {
    if (nread != UV_EOF)
      keel_logf(KEEL_LOG_DEBUG, "net", "client read failed: %s",
                uv_strerror((int)nread));
    conn_close(c);
    return;
  }
  if (c->closing)
    return;
  c->last_read = uv_now(c->l->loop);
  const char *data = buf->base;
  size_t len = (size_t)nread;
  switch (c->mode) {
  case MODE_SNIFF: {
    size_t i = 0;
    while (i < len && c->sniff_len < H2_PREFACE_LEN) {
      if (data[i] != h2_preface[c->sniff_len]) {
        become_h1(c, data + i, len - i); /* sniff holds data[0..i) */
        return;
      }
      c->sniff[c->sniff_len++] = data[i++];
    }
    if (c->sniff_len == H2_PREFACE_LEN)
      become_h2(c, data + i, len - i);
    return;
  }
  case MODE_H2:
    keel_h2_conn_recv(c->h2, (const uint8_t *)data, len);
    return;
  case MODE_H1:
    if (c->in_len == 0 && c->cur == NULL)
      c->head_started = c->last_read;
    if (h1_append(c, data, len) != 0) {
      conn_close(c);
      return;
    }
    process_h1(c);
    return;
  }
}

/* ---- HTTP/1.1 --------------------------------------------------------- */

static void h1_write_response(struct lconn *c, int status,
                              const char *content_type, const void *body,
                              size_t len, int keep_alive, int head_only,
                              const char *extra) {
  char head[2048];
  int n = keel_http1_format_head(head, sizeof(head), status, content_type, len,
                                 keep_alive, extra);
  if (n < 0) {
    /* Extra headers too long: answer without them rather than not at all. */
    n = keel_http1_format_head(head, sizeof(head), 500, "text/plain", 0, 0,
                               NULL);
    body = NULL;
    len = 0;
    keep_alive = 0;
  }
  c->io.ops->write(&c->io, head, (size_t)n);
  if (len && !head_only)
    c->io.ops->write(&c->io, body, len);
  c->io.ops->flush(&c->io);
  if (!keep_alive) {
    c->close_after_write = 1;
    read_stop(c);
    if (io_pending(&c->io) == 0)
      conn_close(c);
  }
}

static void h1_refuse(struct lconn *c, int status, const char *reason) {
  char body[256];
  int n = snprintf(body, sizeof(body), "%s\n", reason);
  c->l->stats.http1_rejected++;
  h1_write_response(c, status, "text/plain; charset=utf-8", body, (size_t)n, 0,
                    0, NULL);
}

static void route_request(keel_client_listener *l, keel_http_request *req) {
  const struct keel_http1_head *h = &req->head;
  const struct route *best = NULL;
  int path_matched = 0;
  for (size_t i = 0; i < l->n_routes; i++) {
    const struct route *r = &l->routes[i];
    if (r->prefix_len > h->path_len ||
        memcmp(r->prefix, h->path, r->prefix_len) != 0)
      continue;
    path_matched = 1;
    int method_ok = r->method == NULL ||
                    (strlen(r->method) == h->method_len &&
                     memcmp(r->method, h->method, h->method_len) == 0) ||
                    (h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0 &&
                     strcmp(r->method, "GET") == 0);
    if (method_ok && (best == NULL || r->prefix_len > best->prefix_len))
      best = r;
  }
  if (best) {
    best->fn(req, best->ud);
    return;
  }
  char body[300];
  int n;
  if (path_matched)
    n = snprintf(body, sizeof(body), "method %.*s not allowed for %.*s\n",
                 (int)h->method_len, h->method,
                 (int)(h->path_len > 200 ? 200 : h->path_len), h->path);
  else
    n = snprintf(body, sizeof(body), "not found: %.*s\n",
                 (int)(h->path_len > 200 ? 200 : h->path_len), h->path);
  keel_http_respond(req, path_matched ? 405 : 404, "text/plain; charset=utf-8",
                    body, (size_t)n, NULL);
}

static void process_h1(struct lconn *c) {
  if (c->in_process)
    return; /* the loop below goes on once the handler returns */
  c->in_process = 1;
  keel_client_listener *l = c->l;
  while (!c->closing && !c->close_after_write && c->cur == NULL &&
         c->in_len > 0) {
    struct keel_http1_head head;
    struct keel_http1_error err;
    int rc =
        keel_http1_parse_head(c->in, c->in_len, &l->cfg.http1, &head, &err);
    if (rc < 0) {
      h1_refuse(c, err.status, err.reason);
      break;
    }
    if (rc == 0)
      break; /* need more of the head */
    size_t total = (size_t)rc + (size_t)head.content_length;
    if (c->in_len < total) {
      const struct keel_http1_header *ex =
          keel_http1_find_header(&head, "expect");
      if (ex && !c->sent_continue && ex->value_len == 12 &&
          strncasecmp(ex->value, "100-continue", 12) == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        c->io.ops->write(&c->io, cont, sizeof(cont) - 1);
        c->io.ops->flush(&c->io);
        c->sent_continue = 1;
      }
      break; /* need more of the body */
    }
    keel_http_request *req = calloc(1, sizeof(*req));
    char *copy = req ? malloc(total) : NULL;
    if (copy == NULL) {
      free(req);
      h1_refuse(c, 503, "out of memory");
      break;
    }
    memcpy(copy, c->in, total);
    memmove(c->in, c->in + total, c->in_len - total);
    c->in_len -= total;
    c->sent_continue = 0;
    req->conn = c;
    req->buf = copy;
    rc = keel_http1_parse_head(copy, total, &l->cfg.http1, &req->head, &err);
    assert(rc > 0); /* the same bytes parsed a moment ago */
    req->body_off = (size_t)rc;
    req->body_len = (size_t)head.content_length;
    c->cur = req;
    l->stats.http1_requests++;
    read_stop(c); /* one request at a time */
    route_request(l, req);
    if (c->cur == NULL && c->in_len > 0)
      c->head_started = uv_now(l->loop);
  }
  c->in_process = 0;
  if (!c->closing && !c->close_after_write && c->cur == NULL)
    read_start(c);
}

const struct keel_http1_head *
keel_http_request_head(const keel_http_request *r) {
  return &r->head;
}

const uint8_t *keel_http_request_body(const keel_http_request *r, size_t *len) {
  *len = r->body_len;
  return (const uint8_t *)r->buf + r->body_off;
}

int keel_http_respond(keel_http_request *r, int status,
                      const char *content_type, const void *body, size_t len,
                      const char *extra_headers) {
  struct lconn *c = r->conn;
  int head_only =
      r->head.method_len == 4 && memcmp(r->head.method, "HEAD", 4) == 0;
  int keep = r->head.keep_alive;
  /* The request is freed only after the response was written: the body or
   * a header value may point into r->buf (an echo, a header copied back). */
  if (c == NULL) {
    free(r->buf);
    free(r);
    return KEEL_ECANCELED;
  }
  assert(c->cur == r);
  c->cur = NULL;
  if (c->l->shutting)
    keep = 0;
  h1_write_response(c, status, content_type, body, len, keep, head_only,
                    extra_headers);
  free(r->buf);
  free(r);
  if (!c->closing && !c->close_after_write) {
    c->head_started = uv_now(c->l->loop);
    process_h1(c);
  }
  return 0;
}

int keel_client_listener_route(keel_client_listener *l, const char *method,
                               const char *prefix, keel_http_handler_fn fn,
                               void *ud) {
  if (prefix == NULL || prefix[0] != '/' || fn == NULL)
    return -EINVAL;
  if (l->n_routes >= MAX_ROUTES)
    return KEEL_ELIMIT;
  struct route *r = &l->routes[l->n_routes];
  r->prefix = strdup(prefix);
  r->method = method ? strdup(method) : NULL;
  if (r->prefix == NULL || (method && r->method == NULL)) {
    free(r->prefix);
    free(r->method);
    return -ENOMEM;
  }
  r->prefix_len = strlen(prefix);
  r->fn = fn;
  r->ud = ud;
  l->n_routes++;
  return 0;
}

/* ---- listener --------------------------------------------------------- */

int keel_client_listener_new(uv_loop_t *loop,
                             const struct keel_client_listener_config *cfg,
                             keel_client_listener **out) {
  struct keel_client_listener_config def;
  if (cfg == NULL) {
    keel_client_listener_config_default(&def);
    cfg = &def;
  }
  if (cfg->max_connections == 0 || cfg->max_concurrent_streams == 0 ||
      cfg->max_recv_msg_bytes == 0 || cfg->max_send_msg_bytes == 0 ||
      cfg->stream_send_buffer_bytes == 0 || cfg->conn_send_buffer_bytes == 0 ||
      cfg->max_header_list_bytes == 0 || cfg->idle_timeout_ms == 0 ||
      cfg->head_timeout_ms == 0 || cfg->stall_timeout_ms == 0 ||
      cfg->http1.max_head_bytes == 0 || cfg->http1.max_request_line == 0 ||
      cfg->http1.max_headers == 0)
    return -EINVAL;
  keel_client_listener *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return -ENOMEM;
  l->loop = loop;
  l->cfg = *cfg;
  l->port = -1;
  int rc = keel_grpc_server_new(loop, &l->cfg, &l->grpc);
  if (rc != 0) {
    free(l);
    return rc;
  }
  *out = l;
  return 0;
}

keel_grpc_server *keel_client_listener_grpc(keel_client_listener *l) {
  return l->grpc;
}

static void sweep(uv_timer_t *t) {
  keel_client_listener *l = t->data;
  uint64_t now = uv_now(l->loop);
  const struct keel_client_listener_config *cfg = &l->cfg;
  struct lconn *next;
  for (struct lconn *c = l->conns; c; c = next) {
    next = c->next;
    if (c->closing)
      continue;
    const char *why = NULL;
    if (io_pending(&c->io) > 0 &&
        now - c->last_progress > cfg->stall_timeout_ms)
      why = "peer takes no output (stall timeout)";
    else if (c->mode == MODE_SNIFF &&
             now - c->accepted_at > cfg->head_timeout_ms)
      why = "no request within the head timeout";
    else if (c->mode == MODE_H1 && c->cur == NULL && c->in_len > 0 &&
             now - c->head_started > cfg->head_timeout_ms)
      why = "request not complete within the head timeout";
    else if (c->mode == MODE_H1 && c->cur == NULL && c->in_len == 0 &&
             now - c->last_read > cfg->idle_timeout_ms)
      why = "idle";
    else if (c->mode == MODE_H2 && c->h2 &&
             keel_h2_conn_open_streams(c->h2) == 0 &&
             now - c->last_read > cfg->idle_timeout_ms) {
      /* As grpc-go's MaxConnectionIdle: a graceful GOAWAY, so a request
       * racing it is not lost; a client that does not finish the goodbye
       * within the head timeout is cut. */
      if (c->idle_goaway_at == 0) {
        l->stats.timeouts++;
        c->idle_goaway_at = now;
        keel_logf(KEEL_LOG_DEBUG, "net", "idle HTTP/2 connection: GOAWAY");
        keel_h2_conn_goaway(c->h2);
        continue;
      }
      if (now - c->idle_goaway_at > cfg->head_timeout_ms) {
        keel_logf(KEEL_LOG_DEBUG, "net", "closing client connection: %s",
                  "idle, GOAWAY not answered");
        conn_close(c);
      }
      continue;
    }
    if (why) {
      l->stats.timeouts++;
      keel_logf(KEEL_LOG_DEBUG, "net", "closing client connection: %s", why);
      conn_close(c);
    }
  }
}

static void on_connection(uv_stream_t *server, int status) {
  keel_client_listener *l = server->data;
  if (status < 0) {
    keel_logf(KEEL_LOG_WARN, "net", "accept failed: %s", uv_strerror(status));
    return;
  }
  struct lconn *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    /* Accept into a throwaway handle is impossible without memory; the
     * kernel keeps the connection queued and libuv retries. */
    return;
  }
  c->l = l;
  c->io.ops = &tcp_io_ops;
  uv_tcp_init(l->loop, &c->tcp);
  c->tcp.data = c;
  c->next = l->conns;
  if (l->conns)
    l->conns->prev = c;
  l->conns = c;
  l->stats.connections_open++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  l->stats.connections_accepted++;
  if (l->shutting || l->stats.connections_open > l->cfg.max_connections) {
    l->stats.connections_refused++;
    keel_logf(KEEL_LOG_DEBUG, "net", "refusing client connection: %s",
              l->shutting ? "shutting down" : "max connections reached");
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uint64_t now = uv_now(l->loop);
  c->accepted_at = c->last_read = c->head_started = c->last_progress = now;
  read_start(c);
}

int keel_client_listener_start(keel_client_listener *l, const char *host,
                               int port) {
  assert(!l->started);
  struct sockaddr_storage ss;
  int rc;
  if (strchr(host, ':'))
    rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
  else
    rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (rc != 0) {
    keel_logf(KEEL_LOG_ERROR, "net", "bad client listen address %s: %s", host,
              uv_strerror(rc));
    return rc;
  }
  uv_tcp_init(l->loop, &l->server);
  l->server.data = l;
  rc = uv_tcp_bind(&l->server, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&l->server, 511, on_connection);
  if (rc != 0) {
    keel_logf(KEEL_LOG_ERROR, "net", "cannot listen on %s:%d: %s", host, port,
              uv_strerror(rc));
    uv_close((uv_handle_t *)&l->server, NULL);
    return rc;
  }
  struct sockaddr_storage bound;
  int blen = sizeof(bound);
  uv_tcp_getsockname(&l->server, (struct sockaddr *)&bound, &blen);
  l->port = ntohs(bound.ss_family == AF_INET6
                      ? ((struct sockaddr_in6 *)&bound)->sin6_port
                      : ((struct sockaddr_in *)&bound)->sin_port);
  uint64_t tick = l->cfg.idle_timeout_ms;
  if (l->cfg.head_timeout_ms < tick)
    tick = l->cfg.head_timeout_ms;
  if (l->cfg.stall_timeout_ms < tick)
    tick = l->cfg.stall_timeout_ms;
  tick /= 4;
  if (tick < 10)
    tick = 10;
  if (tick > 1000)
    tick = 1000;
  uv_timer_init(l->loop, &l->sweep);
  l->sweep.data = l;
  uv_timer_start(&l->sweep, sweep, tick, tick);
  uv_unref((uv_handle_t *)&l->sweep); /* the listener keeps the loop alive */
  uv_timer_init(l->loop, &l->deadline);
  l->deadline.data = l;
  l->handles_open = 3;
  l->started = 1;
  keel_logkv(KEEL_LOG_INFO, "net", "client port listening",
             "address=%s port=%d", host, l->port);
  return 0;
}

int keel_client_listener_port(const keel_client_listener *l) {
  return l->port;
}

static void on_handle_closed(uv_handle_t *h) {
  keel_client_listener *l = h->data;
  l->handles_open--;
  check_shutdown_done(l);
}

static void check_shutdown_done(keel_client_listener *l) {
  if (!l->shutting || l->conns != NULL || l->shutdown_reported)
    return;
  if (l->handles_open == 2 && !uv_is_closing((uv_handle_t *)&l->sweep)) {
    /* server closed and no connection left: close the timers */
    uv_close((uv_handle_t *)&l->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&l->deadline, on_handle_closed);
    return;
  }
  if (l->handles_open == 0) {
    l->shutdown_reported = 1;
    if (l->shutdown_cb)
      l->shutdown_cb(l->shutdown_ud);
  }
}

static void on_shutdown_deadline(uv_timer_t *t) {
  keel_client_listener *l = t->data;
  struct lconn *next;
  for (struct lconn *c = l->conns; c; c = next) {
    next = c->next;
    conn_close(c);
  }
}

int keel_client_listener_shutdown(keel_client_listener *l, uint64_t deadline_ms,
                                  void (*cb)(void *ud), void *ud) {
  if (l->shutting)
    return -EALREADY;
  if (!l->started)
    return -EINVAL;
  l->shutting = 1;
  l->shutdown_cb = cb;
  l->shutdown_ud = ud;
  uv_close((uv_handle_t *)&l->server, on_handle_closed);
  uv_timer_start(&l->deadline, on_shutdown_deadline, deadline_ms, 0);
  struct lconn *next;
  for (struct lconn *c = l->conns; c; c = next) {
    next = c->next;
    if (c->closing)
      continue;
    if (c->mode == MODE_SNIFF || (c->mode == MODE_H1 && c->cur == NULL))
      conn_close(c);
    else if (c->mode == MODE_H2 && c->h2)
      keel_h2_conn_goaway(c->h2);
    /* busy HTTP/1.1: keel_http_respond closes after the response */
  }
  check_shutdown_done(l);
  return 0;
}

void keel_client_listener_free(keel_client_listener *l) {
  if (l == NULL)
    return;
  assert(!l->started || l->shutdown_reported);
  for (size_t i = 0; i < l->n_routes; i++) {
    free(l->routes[i].prefix);
    free(l->routes[i].method);
  }
  keel_grpc_server_free(l->grpc);
  free(l);
}

void keel_client_listener_stats(const keel_client_listener *l,
                                struct keel_client_listener_stats *out) {
  *out = l->stats;
}

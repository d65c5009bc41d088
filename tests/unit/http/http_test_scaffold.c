/* http_test_scaffold.c — TEST SCAFFOLDING: see http_test_scaffold.h. */
#define _GNU_SOURCE
#include "http_test_scaffold.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what, int rc) {
  fprintf(stderr, "http_test_scaffold: %s failed: %d\n", what, rc);
  abort();
}

/* ---- reader with a hook ---------------------------------------------------
 */

static int hk_cur(void *ctx, int64_t *cur, int64_t *comp) {
  struct hts *h = ctx;
  return store_revisions(h->st, cur, comp);
}

static int hk_range(void *ctx, const struct store_range_req *req,
                    struct store_range_result *out) {
  struct hts *h = ctx;
  if (h->on_range)
    h->on_range(h, h->range_calls);
  h->range_calls++;
  return store_range(h->st, req, out);
}

static int64_t hk_now(void *ud) {
  return ((struct hts *)ud)->now;
}

/* ---- loop thread ----------------------------------------------------------
 */

static void *loop_main(void *arg) {
  struct hts *h = arg;
  uv_run(&h->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void on_shut(void *ud) {
  struct hts *h = ud;
  uv_close((uv_handle_t *)&h->stop, NULL);
}

static void on_stop(uv_async_t *a) {
  struct hts *h = a->data;
  keel_client_listener_shutdown(h->l, 2000, on_shut, h);
}

struct hts *hts_start(const char *default_set) {
  struct hts *h = calloc(1, sizeof(*h));
  if (h == NULL)
    die("calloc", -1);
  const char *base = getenv("TMPDIR");
  snprintf(h->dir, sizeof(h->dir), "%s/keel-http-XXXXXX",
           base && base[0] ? base : "/tmp");
  if (mkdtemp(h->dir) == NULL)
    die("mkdtemp", -1);
  struct store_options so = {.quota_bytes = 16 << 20, .apply_nosync = true};
  int rc = store_open(h->dir, &so, &h->st);
  if (rc < 0)
    die("store_open", rc);
  h->now = 1700000000;
  struct http_kv_reader rd = {
      .ctx = h, .current_revision = hk_cur, .range = hk_range};
  if ((rc = http_config_new(&rd, NULL, &h->cfg)) < 0)
    die("http_config_new", rc);
  struct http_ofrep_options oo;
  http_ofrep_options_default(&oo);
  oo.default_set = default_set;
  oo.now = hk_now;
  oo.now_ud = h;
  oo.cache_sets = 4;
  if ((rc = http_ofrep_new(&rd, &oo, &h->ofrep)) < 0)
    die("http_ofrep_new", rc);
  uv_loop_init(&h->loop);
  uv_async_init(&h->loop, &h->stop, on_stop);
  h->stop.data = h;
  if ((rc = keel_client_listener_new(&h->loop, NULL, &h->l)) < 0)
    die("listener_new", rc);
  if ((rc = http_config_register(h->cfg, h->l)) < 0 ||
      (rc = http_ofrep_register(h->ofrep, h->l)) < 0)
    die("register", rc);
  if ((rc = keel_client_listener_start(h->l, "127.0.0.1", 0)) < 0)
    die("listener_start", rc);
  h->port = keel_client_listener_port(h->l);
  if (pthread_create(&h->thr, NULL, loop_main, h) != 0)
    die("pthread_create", -1);
  return h;
}

static int rm_one(const char *p, const struct stat *sb, int f,
                  struct FTW *ftw) {
  (void)sb;
  (void)f;
  (void)ftw;
  return remove(p);
}

void hts_stop(struct hts *h) {
  uv_async_send(&h->stop);
  pthread_join(h->thr, NULL);
  keel_client_listener_free(h->l);
  uv_loop_close(&h->loop);
  http_config_free(h->cfg);
  http_ofrep_free(h->ofrep);
  store_close(h->st);
  nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(h);
}

/* ---- writes ---------------------------------------------------------------
 */

static int64_t apply1(struct hts *h, const struct store_request *rq) {
  struct store_apply_entry e = {.index = ++h->index, .term = 1, .req = rq};
  struct store_apply_batch b = {.entries = &e, .n = 1};
  struct store_apply_result res;
  int rc = store_apply(h->st, &b, &res);
  if (rc < 0 || res.responses[0].error != 0)
    die("store_apply", rc < 0 ? rc : res.responses[0].error);
  int64_t rev = res.revision;
  store_apply_result_free(&res);
  return rev;
}

int64_t hts_put(struct hts *h, const char *key, const char *value) {
  struct store_request rq = {.type = STORE_REQ_PUT};
  rq.u.put.key = (const uint8_t *)key;
  rq.u.put.key_len = strlen(key);
  rq.u.put.value = (const uint8_t *)value;
  rq.u.put.value_len = strlen(value);
  return apply1(h, &rq);
}

int64_t hts_del(struct hts *h, const char *key) {
  struct store_request rq = {.type = STORE_REQ_DELETE_RANGE};
  rq.u.delete_range.key = (const uint8_t *)key;
  rq.u.delete_range.key_len = strlen(key);
  return apply1(h, &rq);
}

int64_t hts_put_many(struct hts *h, const char *const *keys,
                     const char *const *vals, size_t n) {
  struct store_request_op *ops = calloc(n, sizeof(*ops));
  for (size_t i = 0; i < n; i++) {
    ops[i].type = STORE_OP_PUT;
    ops[i].u.put.key = (const uint8_t *)keys[i];
    ops[i].u.put.key_len = strlen(keys[i]);
    ops[i].u.put.value = (const uint8_t *)vals[i];
    ops[i].u.put.value_len = strlen(vals[i]);
  }
  struct store_request rq = {.type = STORE_REQ_TXN};
  rq.u.txn.success = ops;
  rq.u.txn.n_success = n;
  int64_t rev = apply1(h, &rq);
  free(ops);
  return rev;
}

void hts_compact(struct hts *h, int64_t rev) {
  struct store_request rq = {.type = STORE_REQ_COMPACTION};
  rq.u.compaction.revision = rev;
  apply1(h, &rq);
}

int64_t hts_rev(struct hts *h) {
  int64_t cur, comp;
  store_revisions(h->st, &cur, &comp);
  return cur;
}

/* ---- client ---------------------------------------------------------------
 */

int hts_request(int port, const char *method, const char *path,
                const char *extra_headers, const char *body, size_t body_len,
                struct hts_resp *resp) {
  memset(resp, 0, sizeof(*resp));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
    close(fd);
    return -1;
  }
  char *req = NULL;
  int n = asprintf(&req,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   "%sContent-Length: %zu\r\n\r\n",
                   method, path, extra_headers ? extra_headers : "", body_len);
  if (n < 0) {
    close(fd);
    return -1;
  }
  size_t off = 0;
  while (off < (size_t)n) {
    ssize_t w = write(fd, req + off, (size_t)n - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  free(req);
  off = 0;
  while (body && off < body_len) {
    ssize_t w = write(fd, body + off, body_len - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (len + 1 >= cap)
      buf = realloc(buf, cap *= 2);
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = 0;
  char *sep = strstr(buf, "\r\n\r\n");
  if (sep == NULL || sscanf(buf, "HTTP/1.%*d %d", &resp->status) != 1) {
    free(buf);
    return -1;
  }
  resp->head = strndup(buf, (size_t)(sep - buf) + 2);
  resp->body_len = len - (size_t)(sep + 4 - buf);
  resp->body = malloc(resp->body_len + 1);
  memcpy(resp->body, sep + 4, resp->body_len);
  resp->body[resp->body_len] = 0;
  free(buf);
  return 0;
}

char *hts_header(const struct hts_resp *r, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = r->head; p && *p;) {
    const char *e = strstr(p, "\r\n");
    if (e == NULL)
      break;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ')
        v++;
      return strndup(v, (size_t)(e - v));
    }
    p = e + 2;
  }
  return NULL;
}

void hts_resp_free(struct hts_resp *r) {
  free(r->head);
  free(r->body);
  memset(r, 0, sizeof(*r));
}

/* keeld.c — the keel server program: configuration, logging, the store, the
 * node (node.h), the client port with the etcd gRPC services (svc_kv.h:
 * KV, Status, MemberList; svc_watch.h: Watch) and its HTTP/1.1 endpoints,
 * and an orderly stop on SIGTERM/SIGINT.
 *
 *   start: keel_config_load (flags > KEEL_* env > --config-file > default)
 *          -> store_open(--data-dir) -> svc_watch_new (the etcd Watch
 *          service; the node hands it every applied batch: on_applied)
 *          -> node_new (raft, disk thread, peer transport) -> a client
 *          listener per --listen-client-urls (gRPC: KV, Watch, ...)
 *          -> log "serving client requests" (tests wait for /health, not
 *          for this line).
 *   stop:  SIGTERM/SIGINT -> listeners stop accepting (in-flight requests
 *          get STOP_GRACE_MS) and, in parallel, the node hands leadership
 *          over and drains its disk queue -> store_close -> exit 0. A
 *          watchdog ends the process with status 1 at WATCHDOG_MS if any of
 *          that hangs, so a stop never takes longer than 2 s.
 *
 * HTTP/1.1 on the client port:
 *   /health   200 {"health":"true"} when a leader is known and a
 *             linearizable read (ReadIndex) succeeds; else 503 with a
 *             JSON reason.
 *   /readyz   200 once this node knows a leader; else 503.
 *   /version  the etcd versions keel speaks and keel's own.
 *   /metrics  Prometheus text (svc_maint.h; names in decision 0924).
 *   /config/  the Spring Cloud Config Server endpoints (http_config.h)
 *   /ofrep/v1/evaluate/flags[/{key}]  OFREP (http_ofrep.h); the set is
 *             X-Keel-Flag-Set or --ofrep-default-flag-set
 * Both read through http_node_read.h (decision 0962): a linearizable
 * read barrier (node_read, ReadIndex) per request, then every source at
 * the one revision current after it. A node without a leader answers 503
 * at once (JSON reason); at most HTTP_NODE_READ_MAX_WAITING requests wait
 * for a read point (past it: 503 "busy: try again"); a read that gets no
 * read point within the node's request timeout is 503 too.
 *
 * The rest of Maintenance (Alarm, Defragment, Hash, HashKV, Snapshot,
 * MoveLeader), automatic and physical compaction: svc_maint.h.
 *
 * TEST ONLY: --unsafe-test-endpoints (taken out of argv before the
 * configuration is read, and printed nowhere but here) adds
 *   POST /test/put?key=K   (body: the value) a put through the log
 *   GET  /test/get?key=K[&serializable]   the value after a linearizable
 *                                           (or serializable) read
 *   GET  /test/status  this node's id, leader, role, term, commit, applied
 *   POST /test/member?op=add|add-learner|promote|remove&name=&peer=|&id=
 *   GET  /test/members  the member list as of the applied index
 * so e2e tests can write without an etcd client. Never use it in
 * production: it has no limits beyond the transport's and no auth.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "client_listener.h"
#include "config.h"
#include "http_config.h"
#include "http_node_read.h"
#include "http_ofrep.h"
#include "keel_error.h"
#include "keel_log.h"
#include "node.h"
#include "node_apply.h"
#include "node_standin.h" /* node_standin_encode_put: test endpoints */
#include "raft.h"
#include "store.h"
#include "svc_kv.h"
#include "svc_maint.h"
#include "svc_watch.h"

extern char **environ;

#define STOP_GRACE_MS 800
#define TRANSFER_MS 900
#define WATCHDOG_MS 1900
#define KEELD_VERSION "0.1.0"

struct app {
  uv_loop_t *loop;
  struct keel_config cfg;
  struct store *st;
  struct node *node;
  struct svc_kv *kv;                /* etcd KV, Status, MemberList (svc_kv.h) */
  struct svc_watch *watch;          /* the etcd Watch service */
  struct svc_maint *maint;          /* Maintenance, /metrics, compaction */
  http_config *http_cfg;            /* /config/ (Spring Cloud Config) */
  http_ofrep *ofrep;                /* /ofrep/v1/ */
  struct http_node_reader *http_rd; /* their reads (http_node_read.h) */
  keel_client_listener *ls[KEEL_CONFIG_MAX_URLS];
  size_t n_ls;
  size_t pending; /* shutdown steps still running */
  uv_signal_t sigterm, sigint;
  uv_timer_t watchdog;
  bool stopping;
  bool test_endpoints;
};

static void respond_json(keel_http_request *r, int status, const char *body) {
  keel_http_respond(r, status, "application/json", body, strlen(body), NULL);
}

/* --- /health ------------------------------------------------------ */

static void health_read_done(void *ud, int status) {
  keel_http_request *r = ud;
  if (status == 0) {
    respond_json(r, 200, "{\"health\":\"true\",\"reason\":\"\"}");
    return;
  }
  char body[256];
  snprintf(body, sizeof(body),
           "{\"health\":\"false\",\"reason\":\"linearizable read failed: %s\"}",
           keel_strerror(status));
  respond_json(r, 503, body);
}

static void on_health(keel_http_request *r, void *ud) {
  struct app *a = ud;
  if (a->stopping || !a->node) {
    respond_json(r, 503, "{\"health\":\"false\",\"reason\":\"stopping\"}");
    return;
  }
  struct node_status s;
  node_status(a->node, &s);
  if (s.leader == 0) {
    respond_json(r, 503, "{\"health\":\"false\",\"reason\":\"no leader\"}");
    return;
  }
  int rc = node_read(a->node, true, health_read_done, r);
  if (rc)
    health_read_done(r, rc);
}

static void on_readyz(keel_http_request *r, void *ud) {
  struct app *a = ud;
  struct node_status s;
  if (a->stopping || !a->node) {
    keel_http_respond(r, 503, "text/plain", "stopping\n", 9, NULL);
    return;
  }
  node_status(a->node, &s);
  if (s.leader)
    keel_http_respond(r, 200, "text/plain", "ok\n", 3, NULL);
  else
    keel_http_respond(r, 503, "text/plain", "no leader\n", 10, NULL);
}

static void on_version(keel_http_request *r, void *ud) {
  (void)ud;
  respond_json(r, 200,
               "{\"etcdserver\":\"3.4.0\",\"etcdcluster\":\"3.4.0\","
               "\"keel\":\"" KEELD_VERSION "\"}");
}

/* --- /config and OFREP ------------------------------------------------ */

static int http_endpoints_new(struct app *a) {
  int rc = http_node_reader_new(a->node, a->st, 0, &a->http_rd);
  if (rc)
    return rc;
  struct http_kv_reader rd;
  http_node_reader_get(a->http_rd, &rd);
  rc = http_config_new(&rd, NULL, &a->http_cfg);
  if (rc)
    return rc;
  struct http_ofrep_options oo;
  http_ofrep_options_default(&oo);
  if (a->cfg.ofrep_default_flag_set[0])
    oo.default_set = a->cfg.ofrep_default_flag_set;
  return http_ofrep_new(&rd, &oo, &a->ofrep);
}

/* --- TEST ONLY endpoints --------------------------------------------- */

/* The raw value of `name` in the query ("a=1&key=x"), not URL-decoded. */
static bool query_param(const struct keel_http1_head *h, const char *name,
                        const char **val, size_t *len) {
  if (!h->query)
    return false;
  size_t nl = strlen(name);
  const char *p = h->query, *end = h->query + h->query_len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *e = amp ? amp : end;
    if ((size_t)(e - p) >= nl && memcmp(p, name, nl) == 0 &&
        (p + nl == e || p[nl] == '=')) {
      *val = p + nl + (p + nl < e ? 1 : 0);
      *len = (size_t)(e - *val);
      return true;
    }
    p = e + 1;
  }
  return false;
}

static void test_put_done(void *ud, int status,
                          const struct node_applied *applied) {
  keel_http_request *r = ud;
  const struct store_response *resp = applied ? applied->resp : NULL;
  char body[256];
  if (status == 0 && resp && resp->error == 0) {
    snprintf(body, sizeof(body), "{\"revision\":%" PRId64 "}\n",
             resp->revision);
    respond_json(r, 200, body);
  } else {
    int e = status ? status : (resp ? resp->error : KEEL_EUNKNOWN);
    snprintf(body, sizeof(body), "{\"error\":\"%s\",\"code\":\"%s\"}\n",
             keel_strerror(e), keel_err_name(e));
    respond_json(r, 503, body);
  }
}

static void on_test_put(keel_http_request *r, void *ud) {
  struct app *a = ud;
  const char *key;
  size_t klen;
  if (!query_param(keel_http_request_head(r), "key", &key, &klen) || !klen) {
    respond_json(r, 400, "{\"error\":\"key= missing\"}\n");
    return;
  }
  size_t vlen;
  const uint8_t *val = keel_http_request_body(r, &vlen);
  uint8_t *buf;
  size_t len;
  if (a->stopping || node_standin_encode_put((const uint8_t *)key, klen, val,
                                             vlen, &buf, &len) != 0) {
    respond_json(r, 503, "{\"error\":\"unavailable\"}\n");
    return;
  }
  int rc = node_propose(a->node, buf, len, test_put_done, r);
  free(buf);
  if (rc)
    test_put_done(r, rc, NULL);
}

struct test_get {
  struct app *a;
  keel_http_request *r;
};

static void test_get_read(void *ud, int status) {
  struct test_get *g = ud;
  keel_http_request *r = g->r;
  if (status) {
    char body[128];
    snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", keel_strerror(status));
    respond_json(r, 503, body);
    free(g);
    return;
  }
  const char *key;
  size_t klen;
  query_param(keel_http_request_head(r), "key", &key, &klen);
  struct store_range_req q = {0};
  q.key = (const uint8_t *)key;
  q.key_len = klen;
  struct store_range_result res;
  int rc = store_range(g->a->st, &q, &res);
  if (rc) {
    char body[128];
    snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", keel_strerror(rc));
    respond_json(r, 500, body);
  } else if (res.resp.n_kvs == 0) {
    keel_http_respond(r, 404, "text/plain", "", 0, NULL);
    store_range_result_free(&res);
  } else {
    keel_http_respond(r, 200, "application/octet-stream", res.resp.kvs[0].value,
                      res.resp.kvs[0].value_len, NULL);
    store_range_result_free(&res);
  }
  free(g);
}

static void on_test_get(keel_http_request *r, void *ud) {
  struct app *a = ud;
  const char *key, *dummy;
  size_t klen, dl;
  const struct keel_http1_head *h = keel_http_request_head(r);
  if (!query_param(h, "key", &key, &klen) || !klen) {
    respond_json(r, 400, "{\"error\":\"key= missing\"}\n");
    return;
  }
  struct test_get *g = malloc(sizeof(*g));
  if (!g || a->stopping) {
    free(g);
    respond_json(r, 503, "{\"error\":\"unavailable\"}\n");
    return;
  }
  g->a = a;
  g->r = r;
  bool ser = query_param(h, "serializable", &dummy, &dl);
  int rc = node_read(a->node, !ser, test_get_read, g);
  if (rc)
    test_get_read(g, rc);
}

static void on_test_status(keel_http_request *r, void *ud) {
  struct app *a = ud;
  if (a->stopping || !a->node) {
    respond_json(r, 503, "{\"error\":\"stopping\"}\n");
    return;
  }
  struct node_status s;
  node_status(a->node, &s);
  char body[512];
  snprintf(body, sizeof(body),
           "{\"id\":\"%016" PRIx64 "\",\"leader\":\"%016" PRIx64
           "\",\"role\":\"%s\",\"term\":%" PRIu64 ",\"commit\":%" PRIu64
           ",\"applied\":%" PRIu64 ",\"leader_changes\":%" PRIu64 "}\n",
           s.id, s.leader, raft_role_name(s.role), s.term, s.commit, s.applied,
           s.leader_changes);
  respond_json(r, 200, body);
}

/* POST /test/member?op=add|add-learner|promote|remove|update
 *   &name=N&peer=URL (add, add-learner: the id is derived as every node
 *   derives it) or &id=HEX (promote, remove). */
static void test_member_done(void *ud, int status,
                             const struct node_applied *applied) {
  (void)applied;
  keel_http_request *r = ud;
  char body[160];
  snprintf(body, sizeof(body), "{\"status\":\"%s\",\"code\":\"%s\"}\n",
           status ? keel_strerror(status) : "ok", keel_err_name(status));
  respond_json(r, status ? 503 : 200, body);
}

static void on_test_member(keel_http_request *r, void *ud) {
  struct app *a = ud;
  const struct keel_http1_head *h = keel_http_request_head(r);
  const char *v;
  size_t vl;
  char op[16] = "", name[KEEL_CONFIG_NAME_MAX] = "",
       peer[KEEL_CONFIG_URL_MAX] = "", idhex[20] = "";
  if (query_param(h, "op", &v, &vl) && vl < sizeof(op))
    memcpy(op, v, vl), op[vl] = 0;
  if (query_param(h, "name", &v, &vl) && vl < sizeof(name))
    memcpy(name, v, vl), name[vl] = 0;
  if (query_param(h, "peer", &v, &vl) && vl < sizeof(peer))
    memcpy(peer, v, vl), peer[vl] = 0;
  if (query_param(h, "id", &v, &vl) && vl < sizeof(idhex))
    memcpy(idhex, v, vl), idhex[vl] = 0;
  int type = -1;
  uint64_t id = 0;
  if (strcmp(op, "add") == 0 || strcmp(op, "add-learner") == 0) {
    type = op[3] ? RAFT_CONF_ADD_LEARNER : RAFT_CONF_ADD_NODE;
    if (name[0] && peer[0])
      id = keel_config_member_id(name, peer, a->cfg.initial_cluster_token);
  } else if (strcmp(op, "promote") == 0 || strcmp(op, "remove") == 0) {
    type = op[0] == 'p' ? RAFT_CONF_PROMOTE : RAFT_CONF_REMOVE_NODE;
    id = strtoull(idhex, NULL, 16);
  }
  if (type < 0 || id == 0) {
    respond_json(r, 400, "{\"error\":\"bad op, name/peer or id\"}\n");
    return;
  }
  if (a->stopping) {
    test_member_done(r, KEEL_ESTOPPED, NULL);
    return;
  }
  int rc = node_propose_conf_change(a->node, type, id, name, peer,
                                    test_member_done, r);
  if (rc)
    test_member_done(r, rc, NULL);
}

static void on_test_members(keel_http_request *r, void *ud) {
  struct app *a = ud;
  if (a->stopping || !a->node) {
    respond_json(r, 503, "{\"error\":\"stopping\"}\n");
    return;
  }
  struct node_member m[RAFT_MAX_NODES];
  size_t n = node_members(a->node, m, RAFT_MAX_NODES);
  char body[RAFT_MAX_NODES * 400 + 64];
  size_t off = (size_t)snprintf(body, sizeof(body), "{\"members\":[");
  for (size_t i = 0; i < n && off < sizeof(body); i++)
    off += (size_t)snprintf(body + off, sizeof(body) - off,
                            "%s{\"id\":\"%016" PRIx64
                            "\",\"name\":\"%s\",\"peer\":\"%s\","
                            "\"learner\":%s}",
                            i ? "," : "", m[i].id, m[i].name, m[i].peer_url,
                            m[i].learner ? "true" : "false");
  if (off < sizeof(body))
    snprintf(body + off, sizeof(body) - off, "]}\n");
  respond_json(r, 200, body);
}

/* --- stop ------------------------------------------------------------ */

static void step_done(struct app *a) {
  if (--a->pending > 0)
    return;
  for (size_t i = 0; i < a->n_ls; i++)
    keel_client_listener_free(a->ls[i]);
  a->n_ls = 0;
  svc_kv_free(a->kv);
  a->kv = NULL;
  svc_watch_free(a->watch);
  a->watch = NULL;
  svc_maint_free(a->maint);
  a->maint = NULL;
  http_config_free(a->http_cfg);
  a->http_cfg = NULL;
  http_ofrep_free(a->ofrep);
  a->ofrep = NULL;
  http_node_reader_free(a->http_rd);
  a->http_rd = NULL;
  store_close(a->st);
  a->st = NULL;
  keel_logkv(KEEL_LOG_INFO, "keeld", "stopped", NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->watchdog, NULL);
}

static void on_listener_closed(void *ud) {
  step_done(ud);
}

static void on_node_stopped(void *ud) {
  struct app *a = ud;
  a->node = NULL;
  svc_watch_set_node(a->watch, NULL, 0);
  step_done(a);
}

static void on_watchdog(uv_timer_t *t) {
  (void)t;
  keel_logkv(KEEL_LOG_ERROR, "keeld", "stop did not finish in time: exiting",
             "limit_ms=%d", WATCHDOG_MS);
  _exit(1);
}

static void begin_stop(struct app *a, const char *why) {
  if (a->stopping)
    return;
  a->stopping = true;
  keel_logkv(KEEL_LOG_INFO, "keeld", "stopping", "reason=%s", why);
  uv_timer_start(&a->watchdog, on_watchdog, WATCHDOG_MS, 0);
  uv_unref((uv_handle_t *)&a->watchdog);
  svc_kv_detach(a->kv); /* new calls: "server stopped" */
  svc_maint_detach(a->maint);
  http_node_reader_detach(a->http_rd); /* new HTTP reads: 503 */
  a->pending = 1 + a->n_ls + 1;        /* +1 released below */
  for (size_t i = 0; i < a->n_ls; i++)
    if (keel_client_listener_shutdown(a->ls[i], STOP_GRACE_MS,
                                      on_listener_closed, a) != 0)
      a->pending--;
  node_stop(a->node, TRANSFER_MS, on_node_stopped, a);
  step_done(a);
}

static void on_signal(uv_signal_t *s, int signum) {
  begin_stop(s->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* A removed member stops itself (exit 0, like a stop on SIGTERM). */
static void on_removed(void *ud) {
  begin_stop(ud, "removed-from-cluster");
}

/* --- main ------------------------------------------------------------ */

int main(int argc, char **argv) {
  static struct app app;
  struct app *a = &app;
  /* Take the test-only flag out before the configuration sees argv. */
  int j = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--unsafe-test-endpoints") == 0)
      a->test_endpoints = true;
    else
      argv[j++] = argv[i];
  }
  argc = j;
  argv[argc] = NULL;

  char err[KEEL_CONFIG_ERR_MAX];
  int rc = keel_config_load(&a->cfg, argc, argv, environ, err, sizeof(err));
  if (rc) {
    fprintf(stderr, "keeld: %s\n", err);
    return 2;
  }
  if (a->cfg.help) {
    keel_config_print_help(stdout);
    return 0;
  }
  if (a->cfg.version) {
    printf("keeld %s (etcd API 3.4)\n", KEELD_VERSION);
    return 0;
  }
  keel_log_set_node(a->cfg.name);
  keel_log_set_level((enum keel_log_level)a->cfg.log_level);

  struct store_options so = {0};
  so.quota_bytes = a->cfg.quota_backend_bytes;
  rc = store_open(a->cfg.data_dir, &so, &a->st);
  if (rc) {
    keel_logkv(KEEL_LOG_ERROR, "keeld", "cannot open the data directory",
               "data_dir=\"%s\" err=%s", a->cfg.data_dir, keel_strerror(rc));
    return 1;
  }

  a->loop = uv_default_loop();
  rc = svc_watch_new(a->loop, a->st, &a->watch);
  if (rc) {
    keel_logkv(KEEL_LOG_ERROR, "keeld", "cannot start the watch service",
               "err=%s", keel_strerror(rc));
    return 1;
  }
  struct node_options no = {0};
  no.cfg = &a->cfg;
  no.store = a->st;
  no.apply = node_apply_codec_ops();
  no.on_removed = on_removed;
  no.removed_ud = a;
  no.on_applied = svc_watch_on_applied; /* committed events -> watchers */
  no.applied_ud = a->watch;
  rc = node_new(a->loop, &no, &a->node, err, sizeof(err));
  if (rc) {
    keel_logkv(KEEL_LOG_ERROR, "keeld", "cannot start the node",
               "err=%s reason=\"%s\"", keel_strerror(rc), err);
    return 1;
  }
  rc = svc_kv_new(a->node, a->st, &a->cfg, &a->kv);
  if (rc) {
    keel_logkv(KEEL_LOG_ERROR, "keeld", "cannot create the KV service",
               "err=%s", keel_strerror(rc));
    return 1;
  }
  svc_watch_set_node(a->watch, a->node, a->cfg.election_timeout_ms);
  rc = svc_maint_new(a->loop, a->node, a->st, &a->cfg, a->watch, &a->maint);
  if (rc) {
    keel_logkv(KEEL_LOG_ERROR, "keeld", "cannot create the maintenance service",
               "err=%s", keel_strerror(rc));
    return 1;
  }
  rc = http_endpoints_new(a);
  if (rc) {
    keel_logkv(KEEL_LOG_ERROR, "keeld", "cannot create the HTTP endpoints",
               "err=%s", keel_strerror(rc));
    return 1;
  }

  for (size_t i = 0; i < a->cfg.listen_client_urls.n; i++) {
    const struct keel_url *u = &a->cfg.listen_client_urls.v[i];
    keel_client_listener *l;
    rc = keel_client_listener_new(a->loop, NULL, &l);
    if (rc == 0)
      rc = svc_watch_register(a->watch, keel_client_listener_grpc(l));
    if (rc == 0) {
      keel_client_listener_route(l, "GET", "/health", on_health, a);
      keel_client_listener_route(l, "GET", "/readyz", on_readyz, a);
      keel_client_listener_route(l, "GET", "/version", on_version, a);
      rc = svc_kv_register(a->kv, keel_client_listener_grpc(l));
      if (rc == 0)
        rc = svc_maint_register(a->maint, l);
      if (rc == 0)
        rc = http_config_register(a->http_cfg, l);
      if (rc == 0)
        rc = http_ofrep_register(a->ofrep, l);
      if (rc == 0 && a->test_endpoints) {
        keel_client_listener_route(l, "POST", "/test/put", on_test_put, a);
        keel_client_listener_route(l, "GET", "/test/get", on_test_get, a);
        keel_client_listener_route(l, "GET", "/test/status", on_test_status, a);
        keel_client_listener_route(l, "POST", "/test/member", on_test_member,
                                   a);
        keel_client_listener_route(l, "GET", "/test/members", on_test_members,
                                   a);
      }
      if (rc == 0)
        rc = keel_client_listener_start(l, u->host, u->port);
    }
    if (rc) {
      keel_logkv(KEEL_LOG_ERROR, "keeld", "cannot listen for clients",
                 "url=%s err=%s", u->text, keel_strerror(rc));
      return 1;
    }
    a->ls[a->n_ls++] = l;
    keel_logkv(KEEL_LOG_INFO, "keeld", "serving client requests",
               "url=%s port=%d test_endpoints=%d", u->text,
               keel_client_listener_port(l), a->test_endpoints);
  }

  uv_signal_init(a->loop, &a->sigterm);
  uv_signal_init(a->loop, &a->sigint);
  a->sigterm.data = a->sigint.data = a;
  uv_signal_start(&a->sigterm, on_signal, SIGTERM);
  uv_signal_start(&a->sigint, on_signal, SIGINT);
  uv_timer_init(a->loop, &a->watchdog);

  uv_run(a->loop, UV_RUN_DEFAULT);
  keel_logkv(KEEL_LOG_DEBUG, "keeld", "loop ended", NULL);
  uv_loop_close(a->loop);
  return 0;
}

/* keel_internal.h — what libkeel's files share: the client struct, the
 * endpoint table, response arenas and the stream helpers. Not public. */
#ifndef KEEL_INTERNAL_H
#define KEEL_INTERNAL_H

#include <protobuf-c/protobuf-c.h>

#include "grpc_client.h"
#include "keel.h"
#include "keel_policy.h"
#include "rpc.pb-c.h"

struct keel_endpoint {
  char name[64]; /* host:port */
  char host[48];
  int port;
  struct keel_breaker breaker;
  keel_grpc_channel *ch; /* NULL until used; replaced when dead */
};

struct op;
struct keel_client {
  uv_loop_t *loop;
  struct keel_config cfg; /* endpoints field not used after new */
  struct keel_endpoint *eps;
  size_t n_eps;
  size_t cur;
  uint64_t gen; /* bumped when the endpoint list is replaced */
  uint64_t rnd;
  int closing;
  uint32_t n_pending;
  uint32_t handles; /* libuv handles and channels not yet released */
  struct op *ops;   /* pending requests */
  struct op *sq_head, *sq_tail; /* attempts to start after the poll */
  uv_idle_t sq_idle;
  uv_check_t sq_check;
  void (*close_cb)(void *);
  void *close_ud;
  /* watch stream (keel_watch.c) */
  struct keel_watcher *watchers;
  uint32_t n_watchers;
  int w_busy; /* dispatching watcher callbacks: dead ones stay linked */
  int64_t next_watch_id;
  keel_grpc_client_call *wcall;
  int wep;           /* endpoint of the watch stream */
  uint32_t wfails;   /* consecutive stream failures, for backoff */
  uv_timer_t wtimer; /* reopen backoff */
  uv_timer_t wprobe; /* stream liveness (stream_probe_ms) */
  int w_rx;          /* a message arrived since the last probe tick */
  int w_probe_sent;
  int w_stalled;
  uint64_t w_prog_fifo; /* outstanding progress requests, 1 = internal */
  int w_prog_n;
  int wtimer_armed;
  /* keep-alive stream */
  struct keel_keepalive *kas;
  uint32_t n_kas;
  int k_busy;
  keel_grpc_client_call *kcall;
  int kep;
  uint32_t kfails;
  uv_timer_t ktimer; /* ticks renewals and reopen backoff */
};

uint64_t keel__now(keel_client *c);
/* Picks an endpoint the breaker allows (claims a half-open probe), from
 * the current one on; -1 when every breaker is open. */
int keel__pick(keel_client *c);
/* A live channel to endpoint i (made on demand), or NULL with *err. */
keel_grpc_channel *keel__channel(keel_client *c, int i, int *err);
/* Marks endpoint i failed (breaker) and moves "current" past it. */
void keel__ep_failed(keel_client *c, int i);
void keel__ep_ok(keel_client *c, int i);
void keel__handle_closed(uv_handle_t *h);

/* Response arenas: a response struct lives in a block list that also owns
 * the protobuf message its bytes point into. */
struct keel_arena;
/* A zeroed response struct of n bytes heading a new arena. */
void *keel__resp_new(size_t n);
void *keel__arena_alloc(struct keel_arena *a, size_t n);
void keel__arena_own_pb(struct keel_arena *a, ProtobufCMessage *pb);
void keel__arena_free(struct keel_arena *a);
struct keel_arena *keel__arena_of(const void *resp);
int keel__arena_kept(struct keel_arena *a);

void keel__header(struct keel_header *h, const Etcdserverpb__ResponseHeader *p);
void keel__kv(struct keel_kv *out, const Mvccpb__KeyValue *kv);

/* keel_watch.c: stream parts of closing the client. */
void keel__watch_close_all(keel_client *c);
void keel__keepalive_close_all(keel_client *c);
void keel__streams_init(keel_client *c);

#endif

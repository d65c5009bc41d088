/* grpc_test_scaffold.h — TEST SCAFFOLDING ONLY, not keel's store: a tiny
 * in-memory stand-in for etcdserverpb.KV Put/Range (single keys, no ranges,
 * no history), Maintenance/Status, and test-only streaming methods, so the
 * client-port transport can be exercised by the real etcdctl and by the
 * client library before the real node exists.
 *
 * Methods registered:
 *   /etcdserverpb.KV/Put, /etcdserverpb.KV/Range   (single keys only)
 *   /etcdserverpb.Maintenance/Status
 *   /keel.test.Echo/Echo   BIDI: echoes every message, with backpressure
 *                          (pauses input while its output buffer is full)
 *   /keel.test.Echo/Flood  SERVER_STREAM: request = u32 count, u32 size
 *                          (big-endian); answers count messages of size
 *                          bytes, message i starting with u32 i; sends only
 *                          as far as keel_grpc_call_writable() allows
 *   /keel.test.Echo/Hang   UNARY: never answers (deadline tests)
 *   /keel.test.Echo/Later  UNARY: answers its request after u32 ms
 * HTTP/1.1 routes: GET /health, POST /echo, GET /later (answered 10 ms
 * later, from a timer), GET /big (a 32 MiB body).
 */
#ifndef GRPC_TEST_SCAFFOLD_H
#define GRPC_TEST_SCAFFOLD_H

#include <stdint.h>
#include <uv.h>

#include "client_listener.h"

#define SCAFFOLD_MAX_KEYS 1024

struct scaffold_kv {
  uint8_t *key, *value;
  size_t key_len, value_len;
  int64_t create_rev, mod_rev, version;
};

struct grpc_scaffold {
  uv_loop_t *loop;
  struct scaffold_kv kvs[SCAFFOLD_MAX_KEYS];
  size_t n_kvs;
  int64_t revision;
  uint64_t flood_max_writable_seen; /* for tests */
  int later_pending;                /* Later calls not answered yet */
};

int grpc_scaffold_register(struct grpc_scaffold *s, uv_loop_t *loop,
                           keel_client_listener *l);
void grpc_scaffold_free(struct grpc_scaffold *s);

#endif

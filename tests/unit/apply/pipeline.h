/* pipeline.h — a single-node, in-process etcd request pipeline for tests
 * (NOT a server): a request is encoded as a client would, unpacked and
 * validated as keeld's gRPC layer will, wrapped in a keelstore.Request,
 * encoded for the log, decoded, applied to a store in a temporary
 * directory, and the response is encoded and decoded as etcdctl would.
 * Each call returns the keel code the client's status maps from (0 OK).
 */
#ifndef KEEL_TEST_PIPELINE_H
#define KEEL_TEST_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apply.h"
#include "etcd_codec.h"

struct pl {
  char dir[256];
  struct store *st;
  uint64_t index;
  uint64_t next_req_id;
  struct etcd_header_ids ids;
  uint32_t max_txn_ops;
  /* the last reply's status as the client saw it */
  struct etcd_status status;
};

/* Opens a store in a fresh temporary directory (quota in bytes, 0:
 * 64 MiB). */
void pl_open(struct pl *p, uint64_t quota);
void pl_close(struct pl *p);

/* Each takes the client's message, returns the status code's keel code,
 * and on success *out (if not NULL) is the decoded response (free with the
 * matching protobuf-c __free_unpacked(.., NULL)). */
int pl_put(struct pl *p, const Etcdserverpb__PutRequest *rq,
           Etcdserverpb__PutResponse **out);
int pl_range(struct pl *p, const Etcdserverpb__RangeRequest *rq,
             Etcdserverpb__RangeResponse **out);
int pl_delete(struct pl *p, const Etcdserverpb__DeleteRangeRequest *rq,
              Etcdserverpb__DeleteRangeResponse **out);
int pl_txn(struct pl *p, const Etcdserverpb__TxnRequest *rq,
           Etcdserverpb__TxnResponse **out);
int pl_compact(struct pl *p, int64_t rev,
               Etcdserverpb__CompactionResponse **out);
int pl_lease_grant(struct pl *p, int64_t ttl, int64_t id,
                   Etcdserverpb__LeaseGrantResponse **out);
int pl_lease_revoke(struct pl *p, int64_t id,
                    Etcdserverpb__LeaseRevokeResponse **out);
int pl_alarm(struct pl *p, int action, int alarm,
             Etcdserverpb__AlarmResponse **out);
/* Applies raw entry bytes as the next log entry; returns the response's
 * error (the decoded request in *req_type). */
int pl_apply_raw(struct pl *p, const uint8_t *data, size_t len, int *req_type);

#endif

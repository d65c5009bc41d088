/* maint_client.h — the libkeel side of test_svc_maint.c, in its own
 * translation unit (client/keel.h and server/config.h both define struct
 * keel_config). Every call runs the loop until its callback came (10 s
 * guard) and returns the result's err (0 or a negative code). */
#ifndef KEEL_TEST_MAINT_CLIENT_H
#define KEEL_TEST_MAINT_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

int mc_open(uv_loop_t *loop, int port);
void mc_close(void);
/* The last result's gRPC status and message. */
int mc_grpc_status(void);
const char *mc_message(void);

int mc_put(const char *key, size_t value_len, int64_t *rev);
int mc_compact(int64_t rev);
/* Reads a whole snapshot (or stops after stop_after chunks when > 0):
 * *buf malloc'd; *chunks received; *last_remaining of the last chunk;
 * *bad_remaining set if a chunk before the last said 0 to come. */
int mc_snapshot(int stop_after, uint8_t **buf, size_t *len, size_t *chunks,
                uint64_t *last_remaining, int *bad_remaining);
int mc_move_leader(uint64_t target);
int mc_hashkv(int64_t rev, uint32_t *hash, int64_t *compact, int64_t *hrev);
int mc_defrag(void);
int mc_alarm_list(size_t *n, uint64_t *member);
/* DEACTIVATE NOSPACE of member (etcd has no wildcard member). */
int mc_alarm_disarm(uint64_t member, size_t *n);

#endif

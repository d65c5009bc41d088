/* loop_helper.h — drive a libuv loop until an event happened, with a time
 * limit as the failure guard (never a sleep as synchronization). */
#ifndef KEEL_TEST_LOOP_HELPER_H
#define KEEL_TEST_LOOP_HELPER_H

#include <uv.h>

typedef int (*loop_cond_fn)(void *ctx);

struct loop_guard {
  int expired;
};

static void loop_guard_fire(uv_timer_t *t) {
  struct loop_guard *g = t->data;
  g->expired = 1;
}

/* Runs `loop` one iteration at a time until cond(ctx) is true (returns 1)
 * or timeout_ms passed (returns 0). */
static inline int loop_run_until(uv_loop_t *loop, loop_cond_fn cond, void *ctx,
                                 uint64_t timeout_ms) {
  struct loop_guard g = {0};
  uv_timer_t timer;
  uv_timer_init(loop, &timer);
  timer.data = &g;
  uv_timer_start(&timer, loop_guard_fire, timeout_ms, 0);
  while (!cond(ctx) && !g.expired)
    uv_run(loop, UV_RUN_ONCE);
  int ok = cond(ctx);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(loop, UV_RUN_NOWAIT); /* let the close complete */
  return ok;
}

#endif

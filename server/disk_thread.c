/* disk_thread.c — a bounded FIFO of jobs between the loop thread and the one
 * disk thread, with completions posted back through one uv_async_t.
 *
 * DESIGN
 *
 * The jobs live in a ring of `capacity` slots, addressed by three counters
 * that only ever grow (a slot is counter % capacity):
 *
 *      done_pos  <=  ran_pos  <=  submit_pos  <=  done_pos + capacity
 *      |<- ran, completion ->|<-- queued -->|<----- free slots ----->|
 *          not yet run
 *
 *   submit_pos  next slot to fill. Written by the loop thread (submit).
 *   ran_pos     next slot to run. Written by the disk thread after a job's
 *               work function returned and its status is stored.
 *   done_pos    next completion to run. Written and read by the loop thread
 *               only.
 *
 * A job therefore moves through
 *
 *      FREE --submit--> QUEUED --work runs--> RAN --async cb--> FREE
 *            (loop)             (disk)              (loop, done())
 *
 * INVARIANTS
 *
 *   1. submit_pos and ran_pos are read and written under `mu`; a slot's
 *      fields are written before the counter that publishes them moves, so
 *      the mutex orders each hand-off (the slot belongs to the disk thread
 *      from submit until ran_pos passes it, then to the loop again).
 *   2. Jobs run, and complete, in submit order: the disk thread takes
 *      ran_pos and nothing else; the loop completes done_pos and nothing else.
 *   3. A slot is reused only after its completion ran (submit_pos - done_pos
 *      < capacity), so the disk thread never sees a slot being rewritten.
 *   4. Once `stopping` is set no job is accepted; the thread exits only when
 *      ran_pos == submit_pos, so every accepted job runs (drain).
 *   5. The async handle is referenced while jobs are in flight or a close is
 *      under way, so uv_run() does not return with work outstanding and does
 *      not stay alive for an idle disk thread.
 *
 * COSTS
 *
 *   submit: one mutex lock and a condition signal; no allocation. A finished
 *   job costs the disk thread one lock and one uv_async_send(); libuv merges
 *   sends that arrive before the loop wakes, and one callback drains every
 *   finished job (coalescing), so a burst of N small jobs costs far fewer
 *   than N loop wake-ups. Memory is fixed at init: capacity * 32 bytes.
 */
#include "disk_thread.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "keel_error.h"

/* Far above any sane setting; keeps capacity * sizeof(slot) from
 * overflowing. */
#define DISK_THREAD_MAX_CAPACITY (1u << 20)

struct disk_slot {
  disk_work_fn work;
  disk_done_fn done;
  void *arg;
  int status;
};

struct disk_thread {
  uv_loop_t *loop;
  uv_async_t wake; /* disk -> loop: "jobs ran" or "thread exited" */
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond; /* loop -> disk: "a job was queued" or "stop" */

  struct disk_slot *slots;
  size_t capacity;

  /* Under mu. */
  uint64_t submit_pos;
  uint64_t ran_pos;
  int stopping;
  int exited;

  /* Loop thread only. */
  uint64_t done_pos;
  int closing;
  int joined;
  disk_closed_fn closed;
  void *closed_ctx;
  struct disk_thread_stats stats;
};

static void disk_main(void *arg) {
  struct disk_thread *dt = arg;
  uv_mutex_lock(&dt->mu);
  for (;;) {
    while (dt->ran_pos == dt->submit_pos && !dt->stopping)
      uv_cond_wait(&dt->cond, &dt->mu);
    if (dt->ran_pos == dt->submit_pos)
      break; /* stopping and drained */
    struct disk_slot *s = &dt->slots[dt->ran_pos % dt->capacity];
    uv_mutex_unlock(&dt->mu);

    /* The slot is ours until ran_pos moves past it (invariant 1). */
    int status = s->work(s->arg);

    uv_mutex_lock(&dt->mu);
    s->status = status;
    dt->ran_pos++;
    uv_mutex_unlock(&dt->mu);
    uv_async_send(&dt->wake);
    uv_mutex_lock(&dt->mu);
  }
  dt->exited = 1;
  uv_mutex_unlock(&dt->mu);
  uv_async_send(&dt->wake);
}

static void on_wake_closed(uv_handle_t *h) {
  struct disk_thread *dt = h->data;
  disk_closed_fn closed = dt->closed;
  void *ctx = dt->closed_ctx;
  uv_cond_destroy(&dt->cond);
  uv_mutex_destroy(&dt->mu);
  free(dt->slots);
  free(dt);
  if (closed)
    closed(ctx);
}

static void update_ref(struct disk_thread *dt) {
  if (dt->closing || dt->stats.depth > 0)
    uv_ref((uv_handle_t *)&dt->wake);
  else
    uv_unref((uv_handle_t *)&dt->wake);
}

static void on_wake(uv_async_t *h) {
  struct disk_thread *dt = h->data;
  int ran_any = 0;
  for (;;) {
    uv_mutex_lock(&dt->mu);
    uint64_t ran = dt->ran_pos;
    int exited = dt->exited;
    uv_mutex_unlock(&dt->mu);

    if (dt->done_pos == ran) {
      if (exited && dt->closing && !dt->joined) {
        /* Invariant 4: the thread exits only when drained. It has already
         * left disk_main, so this join returns at once. */
        assert(ran == dt->submit_pos);
        uv_thread_join(&dt->thread);
        dt->joined = 1;
        uv_close((uv_handle_t *)&dt->wake, on_wake_closed);
        return;
      }
      break;
    }
    while (dt->done_pos < ran) {
      struct disk_slot s = dt->slots[dt->done_pos % dt->capacity];
      /* Free the slot before the callback, so that it may submit again. */
      dt->done_pos++;
      dt->stats.depth--;
      dt->stats.completed++;
      ran_any = 1;
      if (s.done)
        s.done(s.arg, s.status);
    }
  }
  if (ran_any)
    dt->stats.wakeups++;
  update_ref(dt);
}

int disk_thread_init(struct disk_thread **out, uv_loop_t *loop,
                     size_t capacity) {
  *out = NULL;
  if (capacity == 0 || capacity > DISK_THREAD_MAX_CAPACITY)
    return -EINVAL;
  struct disk_thread *dt = calloc(1, sizeof *dt);
  if (!dt)
    return -ENOMEM;
  dt->slots = calloc(capacity, sizeof *dt->slots);
  if (!dt->slots) {
    free(dt);
    return -ENOMEM;
  }
  dt->loop = loop;
  dt->capacity = capacity;
  dt->stats.capacity = capacity;
  int rc = uv_mutex_init(&dt->mu);
  if (rc < 0)
    goto fail_mutex;
  rc = uv_cond_init(&dt->cond);
  if (rc < 0)
    goto fail_cond;
  rc = uv_async_init(loop, &dt->wake, on_wake);
  if (rc < 0)
    goto fail_async;
  dt->wake.data = dt;
  rc = uv_thread_create(&dt->thread, disk_main, dt);
  if (rc < 0) {
    /* The handle must be closed through the loop; free from its callback.
     * No callback: a failed init calls nothing. */
    dt->closed = NULL;
    uv_close((uv_handle_t *)&dt->wake, on_wake_closed);
    return rc;
  }
  update_ref(dt);
  *out = dt;
  return 0;

fail_async:
  uv_cond_destroy(&dt->cond);
fail_cond:
  uv_mutex_destroy(&dt->mu);
fail_mutex:
  free(dt->slots);
  free(dt);
  return rc;
}

int disk_thread_submit(struct disk_thread *dt, disk_work_fn work,
                       disk_done_fn done, void *arg) {
  assert(work != NULL);
  if (dt->closing)
    return KEEL_ESTOPPED;
  if (dt->stats.depth >= dt->capacity) {
    dt->stats.refused++;
    return KEEL_EBUSY;
  }
  uv_mutex_lock(&dt->mu);
  assert(dt->submit_pos - dt->done_pos < dt->capacity); /* invariant 3 */
  struct disk_slot *s = &dt->slots[dt->submit_pos % dt->capacity];
  s->work = work;
  s->done = done;
  s->arg = arg;
  s->status = 0;
  dt->submit_pos++;
  uv_cond_signal(&dt->cond);
  uv_mutex_unlock(&dt->mu);

  dt->stats.submitted++;
  dt->stats.depth++;
  if (dt->stats.depth > dt->stats.max_depth)
    dt->stats.max_depth = dt->stats.depth;
  if (dt->stats.depth == 1)
    update_ref(dt);
  return 0;
}

size_t disk_thread_depth(const struct disk_thread *dt) {
  return dt->stats.depth;
}

void disk_thread_stats(const struct disk_thread *dt,
                       struct disk_thread_stats *out) {
  *out = dt->stats;
}

void disk_thread_close(struct disk_thread *dt, disk_closed_fn closed,
                       void *ctx) {
  assert(!dt->closing);
  dt->closing = 1;
  dt->closed = closed;
  dt->closed_ctx = ctx;
  update_ref(dt);
  uv_mutex_lock(&dt->mu);
  dt->stopping = 1;
  uv_cond_signal(&dt->cond);
  uv_mutex_unlock(&dt->mu);
  /* The thread answers with a wake-up once it has drained and exited;
   * on_wake() then joins and closes. */
}

/* disk_thread.h — the one worker thread that runs keeld's disk work.
 *
 * The loop thread never blocks on the disk: it submits a job (a function and
 * its argument) and goes on; the disk thread runs jobs one at a time in the
 * order they were submitted; when a job has run, its completion callback runs
 * back on the loop thread. This queue is the only hand-off between the two
 * threads (DESIGN.md, "Threads"): a job's argument belongs to the disk thread
 * from submit until the work function returns, and to the loop thread again
 * when the completion callback runs.
 *
 * The queue is bounded. A full queue refuses the job at once with KEEL_EBUSY
 * rather than blocking the loop or growing; the caller keeps the work for a
 * later turn (decision 0652). A job counts against the bound from submit until
 * its completion callback has returned, so the memory held by finished but
 * not yet completed jobs is bounded too.
 *
 *   uv_loop_t *loop = ...;
 *   struct disk_thread *dt;
 *   disk_thread_init(&dt, loop, 1024);
 *   disk_thread_submit(dt, write_entries, entries_written, batch);
 *   ...
 *   disk_thread_close(dt, on_closed, ctx);   // drains, joins, then on_closed
 *
 * Every function here is called on the loop thread (the thread that runs
 * `loop`), except the work functions, which run on the disk thread.
 */
#ifndef KEEL_DISK_THREAD_H
#define KEEL_DISK_THREAD_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* Runs on the disk thread. Returns 0 or a negative keel code, which is passed
 * to the job's completion callback. It must not touch loop-thread state other
 * than through `arg`. */
typedef int (*disk_work_fn)(void *arg);

/* Runs on the loop thread after the work function returned `status`. It may
 * submit new jobs. */
typedef void (*disk_done_fn)(void *arg, int status);

/* Called on the loop thread once disk_thread_close() has finished: every job
 * ran, every completion ran, the thread was joined and the handle closed. The
 * disk_thread is freed before the call. */
typedef void (*disk_closed_fn)(void *ctx);

struct disk_thread;

/* Figures for /metrics and tests. */
struct disk_thread_stats {
  uint64_t submitted; /* jobs accepted by disk_thread_submit() */
  uint64_t completed; /* completion callbacks run */
  uint64_t refused;   /* submits refused with KEEL_EBUSY */
  uint64_t wakeups;   /* async wake-ups that ran completions (coalesced) */
  size_t depth;       /* jobs accepted and not yet completed */
  size_t max_depth;   /* the largest depth seen */
  size_t capacity;    /* the bound given to disk_thread_init() */
};

/* Starts the disk thread and registers its wake-up handle on `loop`.
 * `capacity` (>= 1) bounds the jobs in flight. On success *out owns the
 * thread until disk_thread_close().
 * Errors: -EINVAL (capacity 0 or too large), -ENOMEM, or a -errno from
 * creating the thread; on error nothing is left running. */
int disk_thread_init(struct disk_thread **out, uv_loop_t *loop,
                     size_t capacity);

/* Queues a job. `work` (not NULL) runs on the disk thread after every job
 * submitted before it; then `done` (may be NULL) runs on the loop thread,
 * in the same order as the jobs ran.
 * Errors: KEEL_EBUSY when `capacity` jobs are in flight (the job is not
 * queued: try again after a completion); KEEL_ESTOPPED after
 * disk_thread_close(). If an error is returned, neither callback is called. */
int disk_thread_submit(struct disk_thread *dt, disk_work_fn work,
                       disk_done_fn done, void *arg);

/* Jobs accepted and not yet completed. */
size_t disk_thread_depth(const struct disk_thread *dt);

void disk_thread_stats(const struct disk_thread *dt,
                       struct disk_thread_stats *out);

/* Stops accepting jobs and shuts down without blocking the loop: the disk
 * thread runs every job already queued, their completions run on the loop,
 * the thread is joined (it has exited by then, so the join does not wait),
 * and the wake-up handle is closed; then `closed` (may be NULL) runs and `dt`
 * is gone. Call it once. */
void disk_thread_close(struct disk_thread *dt, disk_closed_fn closed,
                       void *ctx);

#endif

/* test_disk_thread.c — the disk thread runs jobs in FIFO order on its own
 * thread, completes them on the loop thread, refuses work past its bound,
 * coalesces wake-ups, and drains on shutdown. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disk_thread.h"
#include "keel_error.h"
#include "loop_helper.h"

#define MAX_JOBS 2000

struct fixture {
  uv_loop_t loop;
  uv_thread_t loop_thread;
  struct disk_thread *dt;

  /* Written by work functions (disk thread), read after completions. */
  int ran[MAX_JOBS];
  int n_ran;
  int work_on_loop_thread;
  uv_sem_t gate;    /* a job with index gate_at waits on it */
  uv_sem_t ran_sem; /* posted by every work function */
  int gate_at;

  /* Loop thread. */
  int done[MAX_JOBS];
  int n_done;
  int done_off_loop_thread;
  int closed;
  int chain_left;
};

struct job {
  struct fixture *f;
  int index;
};

static struct job jobs[MAX_JOBS];

static int work(void *arg) {
  struct job *j = arg;
  struct fixture *f = j->f;
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &f->loop_thread))
    f->work_on_loop_thread = 1;
  if (j->index == f->gate_at)
    uv_sem_wait(&f->gate);
  f->ran[f->n_ran++] = j->index;
  uv_sem_post(&f->ran_sem);
  return -j->index; /* a status the completion must see */
}

static void done(void *arg, int status) {
  struct job *j = arg;
  struct fixture *f = j->f;
  uv_thread_t self = uv_thread_self();
  if (!uv_thread_equal(&self, &f->loop_thread))
    f->done_off_loop_thread = 1;
  assert_int_equal(status, -j->index);
  f->done[f->n_done++] = j->index;
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->loop_thread = uv_thread_self();
  f->gate_at = -1;
  assert_int_equal(uv_sem_init(&f->gate, 0), 0);
  assert_int_equal(uv_sem_init(&f->ran_sem, 0), 0);
  *state = f;
  return 0;
}

static void on_closed(void *ctx) {
  struct fixture *f = ctx;
  f->closed = 1;
}

static int is_closed(void *ctx) {
  return ((struct fixture *)ctx)->closed;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  if (f->dt && !f->closed) {
    disk_thread_close(f->dt, on_closed, f);
    assert_true(loop_run_until(&f->loop, is_closed, f, 10000));
  }
  assert_int_equal(uv_loop_close(&f->loop), 0);
  uv_sem_destroy(&f->gate);
  uv_sem_destroy(&f->ran_sem);
  free(f);
  return 0;
}

static int submit(struct fixture *f, int index) {
  jobs[index].f = f;
  jobs[index].index = index;
  return disk_thread_submit(f->dt, work, done, &jobs[index]);
}

struct want_done {
  struct fixture *f;
  int n;
};

static int reached(void *ctx) {
  struct want_done *w = ctx;
  return w->f->n_done >= w->n;
}

static void test_fifo_and_threads(void **state) {
  struct fixture *f = *state;
  assert_int_equal(disk_thread_init(&f->dt, &f->loop, 1024), 0);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(submit(f, i), 0);
  struct want_done w = {f, 1000};
  assert_true(loop_run_until(&f->loop, reached, &w, 10000));
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(f->ran[i], i);
    assert_int_equal(f->done[i], i);
  }
  assert_false(f->work_on_loop_thread);
  assert_false(f->done_off_loop_thread);
  struct disk_thread_stats st;
  disk_thread_stats(f->dt, &st);
  assert_int_equal(st.submitted, 1000);
  assert_int_equal(st.completed, 1000);
  assert_int_equal(st.depth, 0);
  assert_true(st.max_depth <= 1000);
  /* With nothing in flight the idle disk thread does not keep the loop
   * alive. */
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

static void test_bounded_queue(void **state) {
  struct fixture *f = *state;
  assert_int_equal(disk_thread_init(&f->dt, &f->loop, 4), 0);
  f->gate_at = 0; /* job 0 holds the disk thread */
  for (int i = 0; i < 4; i++)
    assert_int_equal(submit(f, i), 0);
  assert_int_equal(submit(f, 4), KEEL_EBUSY);
  assert_int_equal(submit(f, 4), KEEL_EBUSY);
  assert_int_equal(disk_thread_depth(f->dt), 4);
  struct disk_thread_stats st;
  disk_thread_stats(f->dt, &st);
  assert_int_equal(st.refused, 2);
  assert_int_equal(st.max_depth, 4);

  uv_sem_post(&f->gate);
  struct want_done w = {f, 4};
  assert_true(loop_run_until(&f->loop, reached, &w, 10000));
  /* The refused job was never run: the caller still owns it. */
  assert_int_equal(f->n_ran, 4);
  assert_int_equal(submit(f, 4), 0);
  w.n = 5;
  assert_true(loop_run_until(&f->loop, reached, &w, 10000));
  assert_int_equal(f->done[4], 4);
}

/* Jobs that finished while the loop was busy elsewhere complete in one
 * wake-up. */
static void test_coalesced_wakeup(void **state) {
  struct fixture *f = *state;
  assert_int_equal(disk_thread_init(&f->dt, &f->loop, 64), 0);
  for (int i = 0; i < 50; i++)
    assert_int_equal(submit(f, i), 0);
  for (int i = 0; i < 50; i++)
    uv_sem_wait(&f->ran_sem); /* every work function has run */
  struct want_done w = {f, 50};
  assert_true(loop_run_until(&f->loop, reached, &w, 10000));
  struct disk_thread_stats st;
  disk_thread_stats(f->dt, &st);
  assert_int_equal(st.completed, 50);
  /* Jobs 0..48 had published before the loop ran (job 49's work started
   * after job 48 was published); only job 49 may need a second wake-up. */
  assert_true(st.wakeups >= 1 && st.wakeups <= 2);
}

static void chain_done(void *arg, int status);

static void chain_submit(struct fixture *f) {
  int i = 100 - f->chain_left;
  jobs[i].f = f;
  jobs[i].index = i;
  assert_int_equal(disk_thread_submit(f->dt, work, chain_done, &jobs[i]), 0);
}

static void chain_done(void *arg, int status) {
  done(arg, status);
  struct fixture *f = ((struct job *)arg)->f;
  if (--f->chain_left > 0)
    chain_submit(f);
}

/* A completion may submit the next job, even into a queue of capacity 1. */
static void test_submit_from_completion(void **state) {
  struct fixture *f = *state;
  assert_int_equal(disk_thread_init(&f->dt, &f->loop, 1), 0);
  f->chain_left = 100;
  chain_submit(f);
  struct want_done w = {f, 100};
  assert_true(loop_run_until(&f->loop, reached, &w, 10000));
  for (int i = 0; i < 100; i++)
    assert_int_equal(f->done[i], i);
}

static void test_close_drains(void **state) {
  struct fixture *f = *state;
  assert_int_equal(disk_thread_init(&f->dt, &f->loop, 16), 0);
  f->gate_at = 0;
  for (int i = 0; i < 10; i++)
    assert_int_equal(submit(f, i), 0);
  disk_thread_close(f->dt, on_closed, f);
  assert_int_equal(submit(f, 10), KEEL_ESTOPPED);
  uv_sem_post(&f->gate);
  assert_true(loop_run_until(&f->loop, is_closed, f, 10000));
  assert_int_equal(f->n_ran, 10);
  assert_int_equal(f->n_done, 10);
  for (int i = 0; i < 10; i++)
    assert_int_equal(f->done[i], i);
  f->dt = NULL;
}

static void test_close_idle(void **state) {
  struct fixture *f = *state;
  assert_int_equal(disk_thread_init(&f->dt, &f->loop, 16), 0);
  disk_thread_close(f->dt, on_closed, f);
  assert_true(loop_run_until(&f->loop, is_closed, f, 10000));
  f->dt = NULL;
}

static void test_init_rejects_bad_capacity(void **state) {
  struct fixture *f = *state;
  struct disk_thread *dt;
  assert_int_equal(disk_thread_init(&dt, &f->loop, 0), -EINVAL);
  assert_null(dt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fifo_and_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounded_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_coalesced_wakeup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_submit_from_completion, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_idle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_init_rejects_bad_capacity, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

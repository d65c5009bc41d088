/* grpc_testserver.c — TEST PROGRAM: the client-port transport serving the
 * test scaffolding handlers (tests/unit/grpc/grpc_test_scaffold.h: single-
 * key KV Put/Range, Maintenance/Status, echo streams, GET /health), so the
 * real etcdctl and curl can be pointed at it as separate processes.
 *
 *   grpc_testserver [port]     (default 0: an ephemeral port)
 *
 * Prints "LISTENING port=N" on stdout once it accepts connections (tests
 * wait for that line, never for time). SIGTERM or SIGINT: graceful shutdown
 * (2 s deadline), exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "client_listener.h"
#include "grpc_test_scaffold.h"

static keel_client_listener *listener;
static uv_signal_t sigterm, sigint;

static void on_shutdown(void *ud) {
  (void)ud;
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)s;
  (void)signum;
  keel_client_listener_shutdown(listener, 2000, on_shutdown, NULL);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  uv_loop_t *loop = uv_default_loop();
  struct grpc_scaffold scaffold;
  if (keel_client_listener_new(loop, NULL, &listener) != 0 ||
      grpc_scaffold_register(&scaffold, loop, listener) != 0) {
    fprintf(stderr, "grpc_testserver: setup failed\n");
    return 1;
  }
  int rc = keel_client_listener_start(listener, "127.0.0.1", port);
  if (rc != 0) {
    fprintf(stderr, "grpc_testserver: cannot listen: %s\n", uv_strerror(rc));
    return 1;
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  printf("LISTENING port=%d\n", keel_client_listener_port(listener));
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  keel_client_listener_free(listener);
  grpc_scaffold_free(&scaffold);
  uv_loop_close(loop);
  return 0;
}

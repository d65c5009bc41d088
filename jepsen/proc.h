/* proc.h — child processes for the harness: long-lived servers (spawned,
 * signalled, reaped by the caller) and short commands run to completion with
 * a deadline (ip, iptables, etcdctl), optionally inside a named network
 * namespace (/run/netns/NAME, as made by `ip netns add`).
 *
 * Every child gets its own process group (so a terminal's Ctrl-C reaches
 * only the harness, which then tears down in order) and PR_SET_PDEATHSIG
 * SIGKILL, so no child outlives the thread that forked it even when the
 * harness itself is killed with SIGKILL. Servers must therefore be spawned
 * from a thread that lives for the whole run (the runner's main thread).
 */
#ifndef JEPSEN_PROC_H
#define JEPSEN_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct jepsen_cmd {
  const char *netns;      /* NULL: the caller's namespace */
  char *const *argv;      /* argv[0] is searched in PATH */
  char *const *env_extra; /* NULL-terminated "K=V" added to the env; NULL */
  const char *log_path;   /* spawn: stdout+stderr appended here */
  const char *stdin_text; /* run: written to the child's stdin; NULL */
  /* run: when set, stderr is captured here (NUL-terminated, truncated)
   * instead of being interleaved with stdout. */
  char *err_buf;
  size_t err_cap;
};

/* Starts a long-lived child. Returns its pid (> 0) or a negative code
 * (-ENOENT: program not found, -errno). The caller reaps it (waitpid). */
pid_t jepsen_spawn(const struct jepsen_cmd *c);

/* Runs a command to completion within timeout seconds, capturing stdout and
 * stderr (interleaved) into out (NUL-terminated, truncated at cap-1; the
 * rest is drained and discarded). On the deadline the child's process group
 * is killed. Returns 0 and sets *status (the wait status) and *timed_out, or
 * a negative code when the command could not be started. */
int jepsen_run(const struct jepsen_cmd *c, double timeout, char *out,
               size_t cap, int *status, bool *timed_out);

/* Convenience: runs argv (NULL-terminated) in netns; 0 when it exited 0,
 * else -EIO with the output in err (when err is not NULL). */
int jepsen_run_ok(const char *netns, char *const *argv, double timeout,
                  char *err, size_t errlen);

/* Monotonic seconds. */
double jepsen_now(void);

#endif

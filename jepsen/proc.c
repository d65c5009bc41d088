/* proc.c — child processes: spawn servers, run commands with a deadline
 * (see proc.h). Everything a child needs (paths, the namespace fd, the
 * environment) is prepared before fork, so the child only makes system calls
 * between fork and exec (the harness forks from several threads). */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_ENV 512

double jepsen_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resolves a program name in PATH into buf. */
static int which(const char *name, char *buf, size_t cap) {
  if (strchr(name, '/')) {
    snprintf(buf, cap, "%s", name);
    return access(buf, X_OK) == 0 ? 0 : -ENOENT;
  }
  const char *path = getenv("PATH");
  if (!path)
    path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  while (*path) {
    const char *e = strchr(path, ':');
    size_t len = e ? (size_t)(e - path) : strlen(path);
    int w = snprintf(buf, cap, "%.*s/%s", (int)len, path, name);
    if (w > 0 && (size_t)w < cap && access(buf, X_OK) == 0)
      return 0;
    path += len;
    if (*path == ':')
      path++;
  }
  /* Root's tools may live in sbin even when PATH lacks it. */
  static const char *const extra[] = {"/usr/sbin", "/sbin"};
  for (size_t i = 0; i < 2; i++) {
    snprintf(buf, cap, "%s/%s", extra[i], name);
    if (access(buf, X_OK) == 0)
      return 0;
  }
  return -ENOENT;
}

struct prepared {
  char path[PATH_MAX];
  int ns_fd;
  char **envp; /* NULL: environ */
};

static int prepare(const struct jepsen_cmd *c, struct prepared *p) {
  p->ns_fd = -1;
  p->envp = NULL;
  if (which(c->argv[0], p->path, sizeof(p->path)) != 0)
    return -ENOENT;
  if (c->netns) {
    char ns[PATH_MAX];
    snprintf(ns, sizeof(ns), "/run/netns/%s", c->netns);
    p->ns_fd = open(ns, O_RDONLY | O_CLOEXEC);
    if (p->ns_fd < 0)
      return -errno;
  }
  if (c->env_extra) {
    size_t n = 0, k = 0;
    while (environ[n])
      n++;
    while (c->env_extra[k])
      k++;
    if (n + k + 1 > MAX_ENV) {
      if (p->ns_fd >= 0)
        close(p->ns_fd);
      return -E2BIG;
    }
    p->envp = calloc(n + k + 1, sizeof(char *));
    if (!p->envp) {
      if (p->ns_fd >= 0)
        close(p->ns_fd);
      return -ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
      p->envp[m++] = c->env_extra[i];
    for (size_t i = 0; i < n; i++) {
      /* Extras override inherited variables of the same name. */
      const char *eq = strchr(environ[i], '=');
      size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
      bool shadowed = false;
      for (size_t j = 0; j < k; j++)
        if (strncmp(c->env_extra[j], environ[i], nl) == 0 &&
            c->env_extra[j][nl] == '=')
          shadowed = true;
      if (!shadowed)
        p->envp[m++] = environ[i];
    }
    p->envp[m] = NULL;
  }
  return 0;
}

static void release(struct prepared *p) {
  if (p->ns_fd >= 0)
    close(p->ns_fd);
  free(p->envp);
}

/* In the child: only system calls, then exec. */
static void child(const struct prepared *p, char *const *argv, int in_fd,
                  int out_fd, int err_fd) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (p->ns_fd >= 0 && setns(p->ns_fd, CLONE_NEWNET) != 0)
    _exit(126);
  if (in_fd >= 0)
    dup2(in_fd, 0);
  if (out_fd >= 0) {
    dup2(out_fd, 1);
    dup2(err_fd >= 0 ? err_fd : out_fd, 2);
  }
  execve(p->path, argv, p->envp ? p->envp : environ);
  _exit(127);
}

pid_t jepsen_spawn(const struct jepsen_cmd *c) {
  struct prepared p;
  int rc = prepare(c, &p);
  if (rc != 0)
    return rc;
  int out = open(c->log_path ? c->log_path : "/dev/null",
                 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || in < 0) {
    rc = -errno;
    if (out >= 0)
      close(out);
    if (in >= 0)
      close(in);
    release(&p);
    return rc;
  }
  pid_t pid = fork();
  if (pid == 0)
    child(&p, c->argv, in, out, -1);
  rc = pid < 0 ? -errno : 0;
  close(out);
  close(in);
  release(&p);
  if (rc != 0)
    return rc;
  setpgid(pid, pid); /* also here, so it holds before we signal the group */
  return pid;
}

int jepsen_run(const struct jepsen_cmd *c, double timeout, char *out,
               size_t cap, int *status, bool *timed_out) {
  struct prepared p;
  int rc = prepare(c, &p);
  *timed_out = false;
  *status = -1;
  if (cap)
    out[0] = 0;
  if (rc != 0)
    return rc;
  int po[2], pe[2] = {-1, -1}, pi[2] = {-1, -1};
  if (pipe2(po, O_CLOEXEC) != 0) {
    release(&p);
    return -errno;
  }
  if ((c->stdin_text && pipe2(pi, O_CLOEXEC) != 0) ||
      (c->err_buf && pipe2(pe, O_CLOEXEC) != 0)) {
    rc = -errno;
    close(po[0]);
    close(po[1]);
    if (pi[0] >= 0) {
      close(pi[0]);
      close(pi[1]);
    }
    release(&p);
    return rc;
  }
  if (c->err_buf && c->err_cap)
    c->err_buf[0] = 0;
  int devnull = -1;
  if (!c->stdin_text)
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0)
    child(&p, c->argv, c->stdin_text ? pi[0] : devnull, po[1], pe[1]);
  int fork_err = pid < 0 ? -errno : 0;
  close(po[1]);
  if (pe[1] >= 0)
    close(pe[1]);
  if (devnull >= 0)
    close(devnull);
  if (pi[0] >= 0)
    close(pi[0]);
  release(&p);
  if (fork_err) {
    close(po[0]);
    if (pe[0] >= 0)
      close(pe[0]);
    if (pi[1] >= 0)
      close(pi[1]);
    return fork_err;
  }
  setpgid(pid, pid);
  if (c->stdin_text) {
    /* Small inputs only (a txn): one write fits the pipe buffer. */
    size_t len = strlen(c->stdin_text);
    ssize_t w = write(pi[1], c->stdin_text, len > 4096 ? 4096 : len);
    (void)w;
    close(pi[1]);
  }
  double deadline = jepsen_now() + timeout;
  /* Two streams: [0] stdout into out, [1] stderr into err_buf. */
  int fds[2] = {po[0], pe[0]};
  char *bufs[2] = {out, c->err_buf};
  size_t caps[2] = {cap, c->err_cap}, lens[2] = {0, 0};
  char sink[4096];
  for (;;) {
    struct pollfd pf[2];
    int np = 0, map[2];
    for (int k = 0; k < 2; k++)
      if (fds[k] >= 0) {
        pf[np] = (struct pollfd){fds[k], POLLIN, 0};
        map[np++] = k;
      }
    if (!np)
      break;
    double left = deadline - jepsen_now();
    if (left <= 0) {
      *timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    int pr = poll(pf, (nfds_t)np, (int)(left * 1000) + 1);
    if (pr <= 0)
      continue; /* EINTR or the deadline: checked above */
    for (int q = 0; q < np; q++) {
      if (!pf[q].revents)
        continue;
      int k = map[q];
      ssize_t r;
      if (lens[k] + 1 < caps[k])
        r = read(fds[k], bufs[k] + lens[k], caps[k] - 1 - lens[k]);
      else
        r = read(fds[k], sink, sizeof(sink));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        close(fds[k]);
        fds[k] = -1;
        continue;
      }
      if (lens[k] + 1 < caps[k]) {
        lens[k] += (size_t)r;
        bufs[k][lens[k]] = 0;
      }
    }
  }
  for (int k = 0; k < 2; k++)
    if (fds[k] >= 0)
      close(fds[k]);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  *status = st;
  /* Stray grandchildren holding the pipe are gone with the group. */
  if (*timed_out)
    kill(-pid, SIGKILL);
  return 0;
}

int jepsen_run_ok(const char *netns, char *const *argv, double timeout,
                  char *err, size_t errlen) {
  struct jepsen_cmd c = {.netns = netns, .argv = argv};
  char out[2048];
  int st;
  bool to;
  int rc = jepsen_run(&c, timeout, out, sizeof(out), &st, &to);
  if (rc != 0) {
    if (err)
      snprintf(err, errlen, "%s: cannot start: %s", argv[0], strerror(-rc));
    return rc;
  }
  if (to || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    if (err) {
      size_t l = strlen(out);
      while (l && (out[l - 1] == '\n' || out[l - 1] == ' '))
        out[--l] = 0;
      snprintf(err, errlen, "%s %s%s: %s", argv[0], argv[1] ? argv[1] : "",
               to ? " (timed out)" : "", out);
    }
    return -EIO;
  }
  return 0;
}

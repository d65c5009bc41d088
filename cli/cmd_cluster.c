/* cmd_cluster.c — `keel cluster up|status|down`: a local cluster of keeld
 * processes on loopback, for trying keel and for tests.
 *
 * up: picks 2N free ports on 127.0.0.1 (all bound at once by the kernel,
 * then released), starts N keeld processes (found beside the keel binary,
 * else on PATH; KEEL_KEELD overrides) each in its own session with its log
 * in D/NAME.log and its data in D/NAME, records every process in
 * D/cluster.state as soon as it exists, waits (30 s at most) until every
 * node answers GET /health with 200 (a linearizable read through a leader),
 * then prints the endpoints and returns, leaving the nodes running.
 *
 * No orphans: SIGINT, SIGTERM, SIGHUP and SIGQUIT are caught during up; a
 * node that dies, a node that stays unhealthy, or a signal makes up stop
 * every process it started (SIGTERM, then SIGKILL after 5 s) before it
 * exits. Signals are blocked from just before each fork until its pid is
 * recorded, so no process can be started and forgotten. The processes live
 * in their own sessions, so a Ctrl-C typed later in the terminal does not
 * reach them; only `keel cluster down` (or a signal to their pids) stops
 * them. Should keel itself be killed with SIGKILL during up, the state file
 * already names every process started, and `keel cluster down --dir D`
 * stops them.
 *
 * A process is "ours" only when its pid is alive and its start time
 * (/proc/PID/stat field 22) is the one recorded, so a recycled pid is never
 * signalled.
 *
 * State file, one line per node (text, written to a temporary file and
 * renamed):
 *   node NAME PID STARTTIME CLIENT_PORT PEER_PORT
 * A second `up` in the same D restarts a stopped cluster with the same
 * names, ports and data; it refuses while any node of it still runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_cmd.h"

#define MAX_NODES 7
#define UP_DEADLINE_MS 30000
#define TERM_GRACE_MS 5000
#define STATE_FILE "cluster.state"

struct node {
  char name[16];
  pid_t pid;
  unsigned long long start; /* /proc start time, 0 when unknown */
  int client, peer;
  int exited; /* up: reaped by waitpid */
};

static struct node nodes[MAX_NODES];
static int nnodes;
static char dir[PATH_MAX];
static volatile sig_atomic_t interrupted;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits ms milliseconds or until a signal arrives: the polling interval of
 * the bounded waits below. */
static void pause_ms(int ms) {
  poll(NULL, 0, ms);
}

/* ---------------------------------------------------------------- */
/* Processes                                                          */

/* Start time of pid from /proc, 0 if it is gone or a zombie. */
static unsigned long long proc_start(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = 0;
  /* The command name may hold spaces and ')': fields start after the last
   * ')'. Field 3 is the state, field 22 the start time. */
  char *p = strrchr(buf, ')');
  if (p == NULL)
    return 0;
  p += 2;
  if (*p == 'Z' || *p == 'X')
    return 0;
  for (int field = 3; field < 22 && p; field++) {
    p = strchr(p, ' ');
    if (p)
      p++;
  }
  return p ? strtoull(p, NULL, 10) : 0;
}

static int alive(const struct node *n) {
  if (n->pid <= 0 || n->exited)
    return 0;
  unsigned long long s = proc_start(n->pid);
  return s != 0 && (n->start == 0 || s == n->start);
}

/* Reaps our children that exited (only during up: they are ours then). */
static void reap(void) {
  for (int i = 0; i < nnodes; i++)
    if (nodes[i].pid > 0 && !nodes[i].exited &&
        waitpid(nodes[i].pid, NULL, WNOHANG) == nodes[i].pid)
      nodes[i].exited = 1;
}

/* SIGTERM to every live node, SIGKILL to those still there after the
 * grace period; returns how many were stopped. */
static int stop_all(int quiet) {
  int stopped = 0;
  for (int i = 0; i < nnodes; i++)
    if (alive(&nodes[i])) {
      kill(nodes[i].pid, SIGTERM);
      stopped++;
    }
  uint64_t deadline = now_ms() + TERM_GRACE_MS;
  for (;;) {
    reap();
    int left = 0;
    for (int i = 0; i < nnodes; i++)
      left += alive(&nodes[i]);
    if (left == 0)
      break;
    if (now_ms() >= deadline) {
      for (int i = 0; i < nnodes; i++)
        if (alive(&nodes[i])) {
          if (!quiet)
            fprintf(stderr,
                    "keel: %s (pid %d) ignored SIGTERM for %d s; "
                    "sending SIGKILL\n",
                    nodes[i].name, (int)nodes[i].pid, TERM_GRACE_MS / 1000);
          kill(nodes[i].pid, SIGKILL);
        }
      uint64_t d2 = now_ms() + 2000;
      while (now_ms() < d2) {
        reap();
        int l2 = 0;
        for (int i = 0; i < nnodes; i++)
          l2 += alive(&nodes[i]);
        if (l2 == 0)
          break;
        pause_ms(10);
      }
      break;
    }
    pause_ms(10);
  }
  return stopped;
}

/* ---------------------------------------------------------------- */
/* State file                                                         */

static void state_path(char *out, size_t len, const char *suffix) {
  snprintf(out, len, "%s/%s%s", dir, STATE_FILE, suffix);
}

static void write_state(void) {
  char path[PATH_MAX + 32], tmp[PATH_MAX + 32];
  state_path(path, sizeof(path), "");
  state_path(tmp, sizeof(tmp), ".tmp");
  FILE *f = fopen(tmp, "w");
  if (f == NULL) {
    fprintf(stderr, "keel: cannot write %s: %s\n", tmp, strerror(errno));
    return;
  }
  fprintf(f, "# keel cluster state (keel cluster up); one line per node:\n"
             "# node NAME PID STARTTIME CLIENT_PORT PEER_PORT\n");
  for (int i = 0; i < nnodes; i++)
    fprintf(f, "node %s %d %llu %d %d\n", nodes[i].name, (int)nodes[i].pid,
            nodes[i].start, nodes[i].client, nodes[i].peer);
  if (fflush(f) != 0 || fsync(fileno(f)) != 0)
    fprintf(stderr, "keel: writing %s: %s\n", tmp, strerror(errno));
  fclose(f);
  if (rename(tmp, path) != 0)
    fprintf(stderr, "keel: cannot rename %s: %s\n", tmp, strerror(errno));
}

/* 1 when D holds a state file (nodes loaded), 0 when not; exits on a
 * malformed file. */
static int read_state(void) {
  char path[PATH_MAX + 32];
  state_path(path, sizeof(path), "");
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  char line[256];
  int lineno = 0;
  nnodes = 0;
  while (fgets(line, sizeof(line), f)) {
    lineno++;
    if (line[0] == '#' || line[0] == '\n')
      continue;
    struct node n;
    memset(&n, 0, sizeof(n));
    int pid;
    if (nnodes >= MAX_NODES ||
        sscanf(line, "node %15s %d %llu %d %d", n.name, &pid, &n.start,
               &n.client, &n.peer) != 5 ||
        n.client <= 0 || n.client > 65535 || n.peer <= 0 || n.peer > 65535)
      cli_cmd_fatal(CLI_EXIT_FAIL,
                    "%s:%d: not a keel cluster state line; remove the file "
                    "if no keeld of it runs",
                    path, lineno);
    n.pid = pid;
    nodes[nnodes++] = n;
  }
  fclose(f);
  return nnodes > 0;
}

/* ---------------------------------------------------------------- */
/* Health                                                             */

/* GET /health on 127.0.0.1:port within timeout_ms: 1 when 200. */
static int healthy(int port, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  int ok = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 &&
      errno != EINPROGRESS)
    goto out;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (poll(&p, 1, timeout_ms) != 1)
    goto out;
  int soerr = 0;
  socklen_t sl = sizeof(soerr);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr)
    goto out;
  static const char req[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Connection: close\r\n\r\n";
  if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
    goto out;
  char buf[64];
  size_t n = 0;
  while (n < 12) {
    uint64_t t = now_ms();
    if (t >= deadline)
      goto out;
    p.events = POLLIN;
    if (poll(&p, 1, (int)(deadline - t)) != 1)
      goto out;
    ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
    if (k <= 0)
      break;
    n += (size_t)k;
  }
  buf[n] = 0;
  ok = n >= 12 && strncmp(buf, "HTTP/1.", 7) == 0 &&
       strncmp(buf + 9, "200", 3) == 0;
out:
  close(fd);
  return ok;
}

/* ---------------------------------------------------------------- */
/* up                                                                 */

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/* keeld: $KEEL_KEELD, else beside the keel binary, else on PATH. */
static void find_keeld(char *out, size_t len) {
  const char *env = getenv("KEEL_KEELD");
  if (env && *env) {
    if (access(env, X_OK) != 0)
      cli_cmd_fatal(CLI_EXIT_FAIL, "KEEL_KEELD=%s: not an executable: %s", env,
                    strerror(errno));
    snprintf(out, len, "%s", env);
    return;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = 0;
      if (snprintf(out, len, "%s/keeld", self) < (int)len &&
          access(out, X_OK) == 0)
        return;
    }
  }
  const char *path = getenv("PATH");
  if (path) {
    char *copy = strdup(path), *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
      if (snprintf(out, len, "%s/keeld", *d ? d : ".") < (int)len &&
          access(out, X_OK) == 0) {
        free(copy);
        return;
      }
    }
    free(copy);
  }
  cli_cmd_fatal(CLI_EXIT_FAIL,
                "keeld not found beside keel (%s) or on PATH. Build it "
                "(cmake --build build --target keeld) or set KEEL_KEELD.",
                n > 0 ? self : "?");
}

/* Fills nodes[].client/peer with 2*nnodes distinct free loopback ports. */
static void pick_ports(void) {
  int fds[2 * MAX_NODES];
  for (int i = 0; i < 2 * nnodes; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = 0,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(a);
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fds[i], (struct sockaddr *)&a, &sl) != 0)
      cli_cmd_fatal(CLI_EXIT_FAIL, "cluster up: no free loopback port: %s",
                    strerror(errno));
    int port = ntohs(a.sin_port);
    if (i % 2 == 0)
      nodes[i / 2].client = port;
    else
      nodes[i / 2].peer = port;
  }
  for (int i = 0; i < 2 * nnodes; i++)
    close(fds[i]);
}

static void print_log_tail(const struct node *n) {
  char path[PATH_MAX + 32];
  snprintf(path, sizeof(path), "%s/%s.log", dir, n->name);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  /* The last 2 KiB. */
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, sz > 2048 ? sz - 2048 : 0, SEEK_SET);
  char buf[2049];
  size_t k = fread(buf, 1, 2048, f);
  buf[k] = 0;
  fclose(f);
  fprintf(stderr, "--- end of %s\n%s%s", path, buf,
          k && buf[k - 1] != '\n' ? "\n" : "");
}

/* Stops what up started and exits. */
static void up_fail(int code, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));
static void up_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "keel: cluster up: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  int n = stop_all(0);
  write_state();
  fprintf(stderr,
          "keel: cluster up: stopped the %d keeld process%s it had "
          "started; logs in %s\n",
          n, n == 1 ? "" : "es", dir);
  exit(code);
}

static void start_node(struct node *n, const char *keeld, const char *cluster) {
  char data[PATH_MAX + 32], log[PATH_MAX + 32], curl[64], purl[64];
  snprintf(data, sizeof(data), "%s/%s", dir, n->name);
  snprintf(log, sizeof(log), "%s/%s.log", dir, n->name);
  snprintf(curl, sizeof(curl), "http://127.0.0.1:%d", n->client);
  snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", n->peer);
  int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logfd < 0)
    up_fail(CLI_EXIT_FAIL, "cannot open %s: %s", log, strerror(errno));
  sigset_t all, old;
  sigfillset(&all);
  /* Blocked from before the fork until the pid is recorded. */
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t pid = fork();
  if (pid == 0) {
    /* Child: own session (terminal signals do not reach it), default
     * signal dispositions, stdin from /dev/null, output to the log. */
    setsid();
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
      sigaction(sigs[i], &dfl, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
      dup2(nul, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    execl(keeld, keeld, "--name", n->name, "--data-dir", data,
          "--listen-client-urls", curl, "--advertise-client-urls", curl,
          "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
          "--initial-cluster", cluster, "--initial-cluster-state", "new",
          (char *)NULL);
    dprintf(2, "keel cluster up: exec %s: %s\n", keeld, strerror(errno));
    _exit(127);
  }
  int ferr = errno;
  close(logfd);
  if (pid > 0) {
    n->pid = pid;
    n->exited = 0;
    n->start = proc_start(pid);
    write_state();
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (pid < 0)
    up_fail(CLI_EXIT_FAIL, "fork: %s", strerror(ferr));
}

static int cmd_up(void) {
  const struct cli_args *a = cli_cmd_args();
  int want = 3;
  if (a->flag[F_NODES]) {
    char *end;
    long v = strtol(a->flag[F_NODES], &end, 10);
    if (*end || (v != 1 && v != 3 && v != 5))
      cli_cmd_usage_error("--nodes: expected 1, 3 or 5, got \"%s\"",
                          a->flag[F_NODES]);
    want = (int)v;
  }
  char keeld[PATH_MAX];
  find_keeld(keeld, sizeof(keeld));
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    cli_cmd_fatal(CLI_EXIT_FAIL, "cluster up: cannot create %s: %s", dir,
                  strerror(errno));
  int restart = read_state();
  if (restart) {
    for (int i = 0; i < nnodes; i++)
      if (alive(&nodes[i]))
        cli_cmd_fatal(CLI_EXIT_FAIL,
                      "cluster up: a cluster already runs in %s (%s, pid %d). "
                      "See 'keel cluster status --dir %s', or stop it with "
                      "'keel cluster down --dir %s'.",
                      dir, nodes[i].name, (int)nodes[i].pid, dir, dir);
    if (a->flag[F_NODES] && want != nnodes)
      cli_cmd_fatal(CLI_EXIT_FAIL,
                    "cluster up: %s holds a stopped %d-node cluster; start "
                    "it without --nodes, or remove %s for a new one",
                    dir, nnodes, dir);
  } else {
    nnodes = want;
    memset(nodes, 0, sizeof(nodes));
    for (int i = 0; i < nnodes; i++)
      snprintf(nodes[i].name, sizeof(nodes[i].name), "n%d", i + 1);
    pick_ports();
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
    sigaction(sigs[i], &sa, NULL);
  char cluster[MAX_NODES * 64];
  size_t o = 0;
  for (int i = 0; i < nnodes; i++)
    o += (size_t)snprintf(cluster + o, sizeof(cluster) - o,
                          "%s%s=http://127.0.0.1:%d", i ? "," : "",
                          nodes[i].name, nodes[i].peer);
  for (int i = 0; i < nnodes && !interrupted; i++)
    start_node(&nodes[i], keeld, cluster);
  /* Wait until every node is healthy, a node dies, the deadline passes or
   * a signal comes. */
  uint64_t deadline = now_ms() + UP_DEADLINE_MS;
  int ok[MAX_NODES] = {0}, nok = 0;
  while (nok < nnodes) {
    if (interrupted)
      up_fail(130, "interrupted while waiting for the nodes");
    reap();
    for (int i = 0; i < nnodes; i++) {
      if (nodes[i].exited) {
        print_log_tail(&nodes[i]);
        up_fail(CLI_EXIT_FAIL,
                "%s exited during start-up (log above: %s/%s.log)",
                nodes[i].name, dir, nodes[i].name);
      }
      if (!ok[i] && healthy(nodes[i].client, 500)) {
        ok[i] = 1;
        nok++;
      }
    }
    if (nok == nnodes)
      break;
    if (now_ms() >= deadline) {
      for (int i = 0; i < nnodes; i++)
        if (!ok[i])
          print_log_tail(&nodes[i]);
      up_fail(CLI_EXIT_FAIL,
              "not every node became healthy within %d s (GET /health)",
              UP_DEADLINE_MS / 1000);
    }
    pause_ms(50);
  }
  char eps[MAX_NODES * 24];
  o = 0;
  for (int i = 0; i < nnodes; i++)
    o += (size_t)snprintf(eps + o, sizeof(eps) - o, "%s127.0.0.1:%d",
                          i ? "," : "", nodes[i].client);
  enum cli_fmt fmt = cli_cmd_format();
  if (fmt == CLI_FMT_SIMPLE)
    printf("%s\n", eps);
  else if (fmt == CLI_FMT_JSON || fmt == CLI_FMT_YAML) {
    struct cli_node *o = cli_obj(NULL, NULL);
    cli_str(o, "dir", dir);
    cli_str(o, "endpoints", eps);
    struct cli_node *a = cli_arr(o, "nodes");
    for (int i = 0; i < nnodes; i++) {
      struct cli_node *n = cli_obj(a, NULL);
      char log[PATH_MAX + 32];
      snprintf(log, sizeof(log), "%s/%s.log", dir, nodes[i].name);
      cli_str(n, "name", nodes[i].name);
      cli_int(n, "pid", nodes[i].pid);
      cli_int(n, "client_port", nodes[i].client);
      cli_int(n, "peer_port", nodes[i].peer);
      cli_str(n, "log", log);
    }
    if (fmt == CLI_FMT_JSON)
      cli_render_json(stdout, o);
    else
      cli_render_yaml(stdout, o);
    cli_node_free(o);
  } else {
    printf("cluster: %d node%s %s in %s\n", nnodes, nnodes == 1 ? "" : "s",
           restart ? "restarted" : "up", dir);
    for (int i = 0; i < nnodes; i++)
      printf("  %-4s pid %-7d client http://127.0.0.1:%-5d peer "
             "http://127.0.0.1:%-5d log %s/%s.log\n",
             nodes[i].name, (int)nodes[i].pid, nodes[i].client, nodes[i].peer,
             dir, nodes[i].name);
    printf("\nUse it:\n"
           "  export KEEL_ENDPOINTS=%s\n"
           "  keel put /config/hello world && keel get /config/hello\n"
           "  etcdctl --endpoints=%s member list\n"
           "  keel cluster status --dir %s\n"
           "Stop it:\n"
           "  keel cluster down --dir %s\n",
           eps, eps, dir, dir);
  }
  return 0;
}

/* ---------------------------------------------------------------- */
/* status / down                                                      */

static int no_cluster(const char *what) {
  fprintf(stderr,
          "keel: cluster %s: no cluster in %s (no %s). Start one with 'keel "
          "cluster up --dir %s'.\n",
          what, dir, STATE_FILE, dir);
  return CLI_EXIT_NOTFOUND;
}

static int cmd_status(void) {
  if (!read_state())
    return no_cluster("status");
  /* Member status through libkeel, each node on its own. */
  const char *eps[MAX_NODES];
  char epbuf[MAX_NODES][32];
  for (int i = 0; i < nnodes; i++) {
    snprintf(epbuf[i], sizeof(epbuf[i]), "127.0.0.1:%d", nodes[i].client);
    eps[i] = epbuf[i];
  }
  struct keel_config cfg;
  keel_config_default(&cfg);
  cfg.endpoints = eps;
  cfg.n_endpoints = (size_t)nnodes;
  cfg.request_timeout_ms = 2000;
  cfg.dial_timeout_ms = 1000;
  cfg.max_attempts = 1;
  keel_sync *s = NULL;
  if (keel_sync_new(&cfg, &s) != 0)
    s = NULL;
  int bad = 0;
  enum cli_fmt fmt = cli_cmd_format();
  struct cli_node *tree = cli_obj(NULL, NULL);
  cli_str(tree, "dir", dir);
  struct cli_node *arr = cli_arr(tree, "nodes");
  struct cli_cmd_table *t = cli_cmd_table_new(
      8, (const char *const[]){"NAME", "PID", "PROCESS", "HEALTH", "ENDPOINT",
                               "LEADER", "REVISION", "RAFT_TERM"});
  for (int i = 0; i < nnodes; i++) {
    int up = alive(&nodes[i]);
    int h = up && healthy(nodes[i].client, 1000);
    char pid[16], rev[24] = "-", term[24] = "-";
    const char *leader = "-";
    snprintf(pid, sizeof(pid), "%d", (int)nodes[i].pid);
    struct keel_status_resp *st = NULL;
    if (up && s && keel_sync_status(s, i, &st) == 0) {
      snprintf(rev, sizeof(rev), "%" PRId64, st->header.revision);
      snprintf(term, sizeof(term), "%" PRIu64, st->raft_term);
      leader = st->leader == st->header.member_id ? "yes" : "no";
    }
    struct cli_node *n = cli_obj(arr, NULL);
    cli_str(n, "name", nodes[i].name);
    cli_int(n, "pid", nodes[i].pid);
    cli_bool(n, "running", up);
    cli_bool(n, "healthy", h);
    cli_str(n, "endpoint", epbuf[i]);
    if (st) {
      cli_bool(n, "leader", st->leader == st->header.member_id);
      cli_int(n, "revision", st->header.revision);
      cli_uint(n, "raft_term", st->raft_term);
      keel_resp_free(st);
    }
    bad += !h;
    if (fmt == CLI_FMT_SIMPLE)
      printf("%s %s %s %s\n", nodes[i].name, up ? "running" : "stopped",
             h ? "healthy" : "unhealthy", epbuf[i]);
    else if (fmt == CLI_FMT_TABLE)
      cli_cmd_table_row(t, (const char *const[]){nodes[i].name, pid,
                                                 up ? "running" : "stopped",
                                                 h ? "healthy" : "unhealthy",
                                                 epbuf[i], leader, rev, term});
  }
  if (fmt == CLI_FMT_JSON)
    cli_render_json(stdout, tree);
  else if (fmt == CLI_FMT_YAML)
    cli_render_yaml(stdout, tree);
  cli_node_free(tree);
  if (fmt == CLI_FMT_TABLE)
    cli_cmd_table_print(t);
  else
    free(t); /* rows only added for a table */
  if (s)
    keel_sync_free(s);
  if (bad)
    fprintf(stderr,
            "keel: cluster status: %d of %d node%s not healthy (logs "
            "in %s)\n",
            bad, nnodes, nnodes == 1 ? "" : "s", dir);
  return bad ? CLI_EXIT_FAIL : 0;
}

static int cmd_down(void) {
  if (!read_state())
    return no_cluster("down");
  int running = 0;
  for (int i = 0; i < nnodes; i++)
    running += alive(&nodes[i]);
  if (running == 0) {
    printf("cluster: already stopped (data and logs in %s)\n", dir);
    return 0;
  }
  int n = stop_all(0);
  int left = 0;
  for (int i = 0; i < nnodes; i++)
    if (alive(&nodes[i])) {
      fprintf(stderr, "keel: cluster down: %s (pid %d) is still running\n",
              nodes[i].name, (int)nodes[i].pid);
      left++;
    }
  if (left)
    return CLI_EXIT_FAIL;
  printf("cluster: stopped %d node%s (data and logs kept in %s; 'keel "
         "cluster up --dir %s' starts them again)\n",
         n, n == 1 ? "" : "s", dir, dir);
  return 0;
}

int cli_cmd_cluster(const char **p, int n) {
  (void)n;
  const char *sub = p[-1];
  const char *d = cli_cmd_args()->flag[F_DIR];
  if (d == NULL || *d == 0)
    d = getenv("KEEL_CLUSTER_DIR");
  if (d && *d)
    snprintf(dir, sizeof(dir), "%s", d);
  else {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/keel-cluster-%u", tmp && *tmp ? tmp : "/tmp",
             (unsigned)getuid());
  }
  if (strlen(dir) > PATH_MAX - 64)
    cli_cmd_usage_error("--dir: path too long");
  /* Absolute, so the printed commands work from anywhere. */
  if (dir[0] != '/') {
    char cwd[PATH_MAX], abs[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) &&
        snprintf(abs, sizeof(abs), "%s/%s", cwd, dir) < (int)sizeof(abs))
      snprintf(dir, sizeof(dir), "%s", abs);
  }
  if (strcmp(sub, "up") == 0)
    return cmd_up();
  if (strcmp(sub, "status") == 0)
    return cmd_status();
  return cmd_down();
}

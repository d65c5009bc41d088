/* etcd_harness.c — starts, stops and kills real etcd processes for the
 * libkeel e2e tests (see etcd_harness.h for the isolation rules). */
#define _GNU_SOURCE
#include "etcd_harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keel.h"

/* Every pid started, for the exit/signal cleanup. */
static pid_t all_pids[64];
static int n_all;
static int hooks_installed;

/* Clusters not stopped yet (a failed assertion longjmps past a test's
 * own cleanup): their directories go at exit. */
static struct etcd_cluster *live[16];

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *f);

static void kill_all(void) {
  for (int i = 0; i < n_all; i++)
    if (all_pids[i] > 0) {
      kill(-all_pids[i], SIGKILL);
      kill(-all_pids[i], SIGCONT);
    }
}

static void at_exit(void) {
  kill_all();
  for (int i = 0; i < n_all; i++)
    if (all_pids[i] > 0)
      waitpid(all_pids[i], NULL, 0);
  for (int i = 0; i < 16; i++)
    if (live[i] && live[i]->root[0])
      nftw(live[i]->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void on_signal(int sig) {
  kill_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_hooks(void) {
  if (hooks_installed)
    return;
  hooks_installed = 1;
  atexit(at_exit);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGABRT, on_signal);
  signal(SIGSEGV, on_signal);
  signal(SIGPIPE, SIG_IGN);
}

static void forget_pid(pid_t p) {
  for (int i = 0; i < n_all; i++)
    if (all_pids[i] == p)
      all_pids[i] = 0;
}

/* A port the kernel says is free on ip. */
static int free_port(const char *ip) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  socklen_t l = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &l);
  close(fd);
  return ntohs(a.sin_port);
}

static pid_t spawn(struct etcd_cluster *cl, int i, const char *initial,
                   const char *extra) {
  struct etcd_node *nd = &cl->nodes[i];
  char listen_c[64], listen_p[64], log[320];
  snprintf(listen_c, sizeof(listen_c), "http://%s:%d", cl->ip, nd->client_port);
  snprintf(listen_p, sizeof(listen_p), "http://%s:%d", cl->ip, nd->peer_port);
  snprintf(log, sizeof(log), "%s.log", nd->dir);
  const char *bin = getenv("KEEL_E2E_ETCD");
  if (bin == NULL)
    bin = "/usr/bin/etcd";
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    const char *argv[40];
    int a = 0;
    argv[a++] = bin;
    argv[a++] = "--name";
    argv[a++] = nd->name;
    argv[a++] = "--data-dir";
    argv[a++] = nd->dir;
    argv[a++] = "--listen-client-urls";
    argv[a++] = listen_c;
    argv[a++] = "--advertise-client-urls";
    argv[a++] = listen_c;
    argv[a++] = "--listen-peer-urls";
    argv[a++] = listen_p;
    argv[a++] = "--initial-advertise-peer-urls";
    argv[a++] = listen_p;
    argv[a++] = "--initial-cluster";
    argv[a++] = initial;
    argv[a++] = "--initial-cluster-state";
    argv[a++] = "new";
    argv[a++] = "--initial-cluster-token";
    argv[a++] = cl->ip;
    argv[a++] = "--heartbeat-interval";
    argv[a++] = "50";
    argv[a++] = "--election-timeout";
    argv[a++] = "500";
    argv[a++] = "--logger";
    argv[a++] = "zap";
    argv[a++] = "--log-level";
    argv[a++] = "warn";
    if (extra)
      argv[a++] = extra;
    argv[a] = NULL;
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  setpgid(pid, pid);
  if (n_all < 64)
    all_pids[n_all++] = pid;
  return pid;
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *f) {
  (void)st;
  (void)flag;
  (void)f;
  remove(p);
  return 0;
}

/* Waits until every node answers Status with a leader (bounded). */
static int wait_ready(struct etcd_cluster *cl) {
  for (int i = 0; i < cl->n; i++) {
    const char *eps[] = {cl->nodes[i].endpoint};
    struct keel_config cfg;
    keel_config_default(&cfg);
    cfg.endpoints = eps;
    cfg.n_endpoints = 1;
    cfg.request_timeout_ms = 1000;
    cfg.breaker_failures = 1000;
    cfg.max_attempts = 20;
    cfg.backoff_max_ms = 100;
    keel_sync *s;
    if (keel_sync_new(&cfg, &s) != 0)
      return -1;
    int ok = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
      struct keel_status_resp *st;
      int rc = keel_sync_status(s, 0, &st);
      if (rc == 0) {
        ok = st->leader != 0;
        keel_resp_free(st);
        if (ok)
          break;
      }
      int status;
      if (waitpid(cl->nodes[i].pid, &status, WNOHANG) == cl->nodes[i].pid) {
        fprintf(stderr, "etcd %s exited early (see %s.log)\n",
                cl->nodes[i].name, cl->nodes[i].dir);
        cl->nodes[i].pid = 0;
        break;
      }
      struct timespec t;
      clock_gettime(CLOCK_MONOTONIC, &t);
      if (t.tv_sec - t0.tv_sec > 20) {
        fprintf(stderr, "etcd %s not ready after 20 s: %s\n", cl->nodes[i].name,
                keel_sync_message(s));
        break;
      }
      /* The status call itself retried for up to its deadline; a leaderless
       * answer comes back at once, so pace the next question. */
      if (rc == 0)
        usleep(50 * 1000);
    }
    keel_sync_free(s);
    if (!ok)
      return -1;
  }
  return 0;
}

int etcd_cluster_start(struct etcd_cluster *cl, int n, const char *extra_flag) {
  static int counter;
  install_hooks();
  memset(cl, 0, sizeof(*cl));
  cl->n = n;
  unsigned x = (unsigned)getpid() % 250 + 1;
  unsigned y = (unsigned)(counter++ * 37 + getpid() / 250) % 250 + 1;
  snprintf(cl->ip, sizeof(cl->ip), "127.%u.%u.1", x, y);
  snprintf(cl->root, sizeof(cl->root), "/tmp/keel-e2e-XXXXXX");
  if (mkdtemp(cl->root) == NULL)
    return -1;
  for (int i = 0; i < 16; i++)
    if (live[i] == NULL || live[i] == cl) {
      live[i] = cl;
      break;
    }
  char initial[1024] = "";
  size_t l = 0;
  for (int i = 0; i < n; i++) {
    struct etcd_node *nd = &cl->nodes[i];
    snprintf(nd->name, sizeof(nd->name), "n%d", i);
    nd->client_port = free_port(cl->ip);
    nd->peer_port = free_port(cl->ip);
    if (nd->client_port <= 0 || nd->peer_port <= 0 ||
        nd->client_port == nd->peer_port) {
      fprintf(stderr, "no free port on %s\n", cl->ip);
      return -1;
    }
    snprintf(nd->endpoint, sizeof(nd->endpoint), "%s:%d", cl->ip,
             nd->client_port);
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "http://%s", nd->endpoint);
    memcpy(nd->client_url, tmp, sizeof(nd->client_url) - 1);
    snprintf(tmp, sizeof(tmp), "%s/n%d", cl->root, i);
    memcpy(nd->dir, tmp, sizeof(nd->dir) - 1);
    l +=
        (size_t)snprintf(initial + l, sizeof(initial) - l, "%sn%d=http://%s:%d",
                         i ? "," : "", i, cl->ip, nd->peer_port);
  }
  for (int i = 0; i < n; i++) {
    cl->nodes[i].pid = spawn(cl, i, initial, extra_flag);
    if (cl->nodes[i].pid <= 0) {
      etcd_cluster_stop(cl);
      return -1;
    }
  }
  if (wait_ready(cl) != 0) {
    etcd_cluster_stop(cl);
    return -1;
  }
  return 0;
}

/* The state letter from a /proc stat file ('T' = stopped). */
static char stat_state(const char *path) {
  char buf[512];
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  return p && p[1] == ' ' ? p[2] : 0;
}

/* 'T' when every thread of pid is stopped, 'R' when none is, 'M' mixed,
 * 0 when the process is gone. */
static char proc_state(pid_t pid) {
  char path[300];
  snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  if (d == NULL)
    return 0;
  int stopped = 0, running = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, e->d_name);
    char st = stat_state(path);
    if (st == 'T' || st == 't')
      stopped++;
    else if (st)
      running++;
  }
  closedir(d);
  if (stopped + running == 0)
    return 0;
  return running == 0 ? 'T' : stopped == 0 ? 'R' : 'M';
}

void etcd_node_stop_signal(struct etcd_cluster *cl, int i, int sig) {
  pid_t pid = cl->nodes[i].pid;
  if (pid <= 0)
    return;
  kill(-pid, sig);
  /* kill() returns before a multi-threaded process has stopped (or
   * resumed): wait for the state to change, so the test's next step
   * really meets a stopped (running) server. Bounded: 5 s. */
  for (int k = 0; k < 5000; k++) {
    char st = proc_state(pid);
    if (st == 0 || (sig == SIGSTOP && st == 'T') ||
        (sig != SIGSTOP && st == 'R'))
      return;
    usleep(1000);
  }
  fprintf(stderr, "etcd %s did not change state after signal %d\n",
          cl->nodes[i].name, sig);
}

void etcd_node_kill(struct etcd_cluster *cl, int i) {
  pid_t p = cl->nodes[i].pid;
  if (p <= 0)
    return;
  kill(-p, SIGKILL);
  kill(-p, SIGCONT);
  waitpid(p, NULL, 0);
  forget_pid(p);
  cl->nodes[i].pid = 0;
}

void etcd_cluster_stop(struct etcd_cluster *cl) {
  for (int i = 0; i < cl->n; i++)
    etcd_node_kill(cl, i);
  if (cl->root[0])
    nftw(cl->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  cl->root[0] = 0;
  for (int i = 0; i < 16; i++)
    if (live[i] == cl)
      live[i] = NULL;
}

void etcd_cluster_endpoints(const struct etcd_cluster *cl, const char **out) {
  for (int i = 0; i < cl->n; i++)
    out[i] = cl->nodes[i].endpoint;
}

int etcd_node_by_endpoint(const struct etcd_cluster *cl, const char *ep) {
  for (int i = 0; i < cl->n; i++)
    if (strcmp(cl->nodes[i].endpoint, ep) == 0)
      return i;
  return -1;
}

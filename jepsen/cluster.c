/* cluster.c — real server processes in network namespaces (see cluster.h).
 *
 * State of a node: stopped (pid 0) -> running (pid > 0) <-> paused
 * (SIGSTOP); removed nodes are stopped and not members. The runner's main
 * thread is the only one that changes node state, so no locks are needed;
 * client threads read only the immutable names and addresses.
 *
 * Invariants: every object this file creates carries the slot's prefix
 * (namespaces kjh<slot>c, kjh<slot>n<i>), so teardown and `cleanup` can find
 * them by name; nothing is created in the host's namespace.
 */
#include "cluster.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keel_error.h"
#include "proc.h"

#define CMD_TIMEOUT 10.0
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

/* ---- etcd's row ---------------------------------------------------------- */

static void etcd_initial_cluster(const struct jepsen_cluster *c, char *buf,
                                 size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  for (int i = 0; i < c->n; i++) {
    int w = snprintf(buf + len, cap - len, "%s%s=http://%s:2380", i ? "," : "",
                     c->nodes[i].name, c->nodes[i].ip);
    if (w < 0 || (size_t)w >= cap - len)
      return;
    len += (size_t)w;
  }
}

static int etcd_argv(const struct jepsen_cluster *c, int i, bool existing,
                     const char *initial_cluster, char *buf, size_t cap,
                     char **argv, size_t argcap) {
  const struct jepsen_node *nd = &c->nodes[i];
  char ic[1024];
  if (!initial_cluster) {
    etcd_initial_cluster(c, ic, sizeof(ic));
    initial_cluster = ic;
  }
  /* Each argument as "--name=value", packed into buf. */
  const char *fmt[][2] = {
      {"--name=%s", nd->name},
      {"--data-dir=%s", nd->data_dir},
      {"--listen-client-urls=http://%s:2379", nd->ip},
      {"--advertise-client-urls=http://%s:2379", nd->ip},
      {"--listen-peer-urls=http://%s:2380", nd->ip},
      {"--initial-advertise-peer-urls=http://%s:2380", nd->ip},
      {"--initial-cluster=%s", initial_cluster},
      {"--initial-cluster-state=%s", existing ? "existing" : "new"},
      {"--initial-cluster-token=%s", c->token},
  };
  size_t nf = sizeof(fmt) / sizeof(fmt[0]);
  if (nf + 2 > argcap)
    return KEEL_ELIMIT;
  size_t len = 0, a = 0;
  argv[a++] = "etcd";
  for (size_t k = 0; k < nf; k++) {
    int w = snprintf(buf + len, cap - len, fmt[k][0], fmt[k][1]);
    if (w < 0 || (size_t)w + 1 >= cap - len)
      return KEEL_ELIMIT;
    argv[a++] = buf + len;
    len += (size_t)w + 1;
  }
  argv[a] = NULL;
  return 0;
}

/* Index of the node whose client URL starts line, or -1. */
static int node_of_url(const struct jepsen_cluster *c, const char *line) {
  for (int i = 0; i < c->n; i++) {
    char url[64];
    jepsen_node_client_url(c, i, url, sizeof(url));
    size_t l = strlen(url);
    if (strncmp(line, url, l) == 0 && (line[l] == ',' || line[l] == ' '))
      return i;
  }
  return -1;
}

static uint32_t members_running(const struct jepsen_cluster *c) {
  uint32_t m = 0;
  for (int i = 0; i < c->n; i++)
    if (c->nodes[i].pid > 0 && !c->nodes[i].removed)
      m |= 1u << i;
  return m;
}

static int etcd_leader(const struct jepsen_cluster *c, int *leader, char *err,
                       size_t errlen) {
  /* Simple output: "URL, ID, VERSION, SIZE, IS_LEADER, IS_LEARNER, ..." */
  char *args[] = {"endpoint", "status", NULL};
  char out[4096];
  int st;
  bool to;
  *leader = -1;
  int rc = jepsen_cluster_ctl(c, members_running(c), args, NULL, 4.0, out,
                              sizeof(out), &st, &to);
  if (rc != 0) {
    snprintf(err, errlen, "etcdctl endpoint status: %s", keel_strerror(rc));
    return rc;
  }
  for (char *sv, *line = strtok_r(out, "\n", &sv); line;
       line = strtok_r(NULL, "\n", &sv)) {
    int i = node_of_url(c, line);
    if (i < 0 || c->nodes[i].paused)
      continue;
    char *p = line;
    for (int f = 0; f < 4 && p; f++) {
      p = strchr(p, ',');
      if (p)
        p++;
    }
    if (p && strncmp(p, " true", 5) == 0)
      *leader = i;
  }
  return 0;
}

/* The member id (hex) of the member named name, from `member list`. */
static int etcd_member_id(const struct jepsen_cluster *c, uint32_t via,
                          const char *name, char *id, size_t cap, char *err,
                          size_t errlen) {
  char *args[] = {"member", "list", NULL};
  char out[4096];
  int st;
  bool to;
  int rc =
      jepsen_cluster_ctl(c, via, args, NULL, 5.0, out, sizeof(out), &st, &to);
  if (rc == 0 && (to || !WIFEXITED(st) || WEXITSTATUS(st) != 0))
    rc = -EIO;
  if (rc != 0) {
    snprintf(err, errlen, "etcdctl member list failed: %.200s", out);
    return rc;
  }
  /* "8e9e05c52164694d, started, n1, http://...:2380, http://...:2379, f" */
  for (char *sv, *line = strtok_r(out, "\n", &sv); line;
       line = strtok_r(NULL, "\n", &sv)) {
    char lid[32], status[32], lname[64];
    if (sscanf(line, "%31[0-9a-f], %31[^,], %63[^,],", lid, status, lname) ==
            3 &&
        strcmp(lname, name) == 0) {
      snprintf(id, cap, "%s", lid);
      return 0;
    }
  }
  snprintf(err, errlen, "member %s is not in the member list", name);
  return KEEL_ENOTFOUND;
}

static int etcd_member_remove(const struct jepsen_cluster *c, int i, char *err,
                              size_t errlen) {
  uint32_t via = members_running(c) & ~(1u << i);
  char id[32];
  int rc =
      etcd_member_id(c, via, c->nodes[i].name, id, sizeof(id), err, errlen);
  if (rc != 0)
    return rc;
  char *args[] = {"member", "remove", id, NULL};
  char out[2048];
  int st;
  bool to;
  rc = jepsen_cluster_ctl(c, via, args, NULL, 8.0, out, sizeof(out), &st, &to);
  if (rc == 0 && (to || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
    snprintf(err, errlen, "etcdctl member remove %s: %.200s", id, out);
    return -EIO;
  }
  return rc;
}

static int etcd_member_add(const struct jepsen_cluster *c, int i,
                           char *initial_cluster, size_t cap, char *err,
                           size_t errlen) {
  uint32_t via = members_running(c) & ~(1u << i);
  char peer[80];
  snprintf(peer, sizeof(peer), "--peer-urls=http://%s:2380", c->nodes[i].ip);
  char name[32];
  snprintf(name, sizeof(name), "%s", c->nodes[i].name);
  char *args[] = {"member", "add", name, peer, NULL};
  char out[4096];
  int st;
  bool to;
  int rc =
      jepsen_cluster_ctl(c, via, args, NULL, 8.0, out, sizeof(out), &st, &to);
  if (rc == 0 && (to || !WIFEXITED(st) || WEXITSTATUS(st) != 0))
    rc = -EIO;
  const char *p = rc == 0 ? strstr(out, "ETCD_INITIAL_CLUSTER=\"") : NULL;
  if (!p) {
    snprintf(err, errlen, "etcdctl member add %s: %.200s", name, out);
    return rc ? rc : KEEL_EPARSE;
  }
  p += strlen("ETCD_INITIAL_CLUSTER=\"");
  const char *e = strchr(p, '"');
  if (!e || (size_t)(e - p) >= cap) {
    snprintf(err, errlen, "etcdctl member add: bad ETCD_INITIAL_CLUSTER");
    return KEEL_EPARSE;
  }
  memcpy(initial_cluster, p, (size_t)(e - p));
  initial_cluster[e - p] = 0;
  return 0;
}

static int etcd_converged(const struct jepsen_cluster *c, char *detail,
                          size_t cap) {
  /* "URL, HASH" per endpoint; with no writes running, equal hashes at each
   * member's latest revision mean equal stores. */
  char *args[] = {"endpoint", "hashkv", NULL};
  char out[4096];
  int st;
  bool to;
  uint32_t m = members_running(c);
  int rc =
      jepsen_cluster_ctl(c, m, args, NULL, 6.0, out, sizeof(out), &st, &to);
  if (rc != 0) {
    snprintf(detail, cap, "etcdctl endpoint hashkv: %s", keel_strerror(rc));
    return rc;
  }
  unsigned long long first = 0;
  int seen = 0;
  bool differ = false;
  size_t len = 0;
  detail[0] = 0;
  for (char *sv, *line = strtok_r(out, "\n", &sv); line;
       line = strtok_r(NULL, "\n", &sv)) {
    int i = node_of_url(c, line);
    const char *comma = strchr(line, ',');
    if (i < 0 || !comma)
      continue;
    unsigned long long h = strtoull(comma + 1, NULL, 10);
    if (seen++ == 0)
      first = h;
    else if (h != first)
      differ = true;
    int w = snprintf(detail + len, cap - len, "%s%s=%llu", len ? " " : "",
                     c->nodes[i].name, h);
    if (w > 0 && (size_t)w < cap - len)
      len += (size_t)w;
  }
  if (seen != __builtin_popcount(m)) {
    snprintf(detail + len, cap - len, " (only %d of %d answered)", seen,
             __builtin_popcount(m));
    return KEEL_EUNAVAILABLE;
  }
  return differ ? KEEL_ECORRUPT : 0;
}

static const struct jepsen_target targets[] = {
    {
        .name = "etcd",
        .server = "etcd",
        .client_port = 2379,
        .health_path = "/health",
        .health_expect = "\"health\":\"true\"",
        .argv = etcd_argv,
        .leader = etcd_leader,
        .member_remove = etcd_member_remove,
        .member_add = etcd_member_add,
        .converged = etcd_converged,
    },
    /* keel: keeld's row goes here (its flags, /health, `keel` member ops). */
};

const struct jepsen_target *jepsen_target_find(const char *name) {
  for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
    if (strcmp(targets[i].name, name) == 0)
      return &targets[i];
  return NULL;
}

/* ---- the cluster ----------------------------------------------------------
 */

const char *jepsen_cluster_client_netns(const struct jepsen_cluster *c) {
  return c->mode == JEPSEN_NET_NETNS ? c->ctl_ns : NULL;
}

void jepsen_node_client_url(const struct jepsen_cluster *c, int i, char *buf,
                            size_t cap) {
  snprintf(buf, cap, "http://%s:%d", c->nodes[i].ip, c->target->client_port);
}

static int lock_slot(int slot, bool wait_free) {
  char path[128];
  snprintf(path, sizeof(path), "/run/lock/keel-jepsen-%d.lock", slot);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(path, sizeof(path), "/tmp/keel-jepsen-%d.lock", slot);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }
  if (fd < 0)
    return -errno;
  if (flock(fd, LOCK_EX | (wait_free ? 0 : LOCK_NB)) != 0) {
    close(fd);
    return KEEL_EBUSY;
  }
  return fd;
}

int jepsen_cluster_init(struct jepsen_cluster *c, const struct jepsen_target *t,
                        enum jepsen_net_mode m, int n, const char *run_dir,
                        bool faketime, char *err, size_t errlen) {
  memset(c, 0, sizeof(*c));
  c->lock_fd = -1;
  if (n < 3 || n > JEPSEN_MAX_NODES || strlen(run_dir) >= 300) {
    snprintf(err, errlen, "nodes must be 3..%d and the run dir shorter",
             JEPSEN_MAX_NODES);
    return -EINVAL;
  }
  c->target = t;
  c->mode = m;
  c->n = n;
  c->faketime = faketime;
  c->slot = -1;
  for (int s = 0; s < JEPSEN_SLOTS; s++) {
    int fd = lock_slot(s, false);
    if (fd >= 0) {
      c->slot = s;
      c->lock_fd = fd;
      break;
    }
  }
  if (c->slot < 0) {
    snprintf(err, errlen, "all %d harness slots are in use", JEPSEN_SLOTS);
    return KEEL_EBUSY;
  }
  snprintf(c->prefix, sizeof(c->prefix), JEPSEN_PREFIX "%d", c->slot);
  if (m == JEPSEN_NET_NETNS)
    snprintf(c->ctl_ns, sizeof(c->ctl_ns), "%sc", c->prefix);
  snprintf(c->run_dir, sizeof(c->run_dir), "%s", run_dir);
  snprintf(c->token, sizeof(c->token), "keel-jepsen-%d-%ld", c->slot,
           (long)getpid());
  c->grudge.n = n;
  for (int i = 0; i < n; i++) {
    struct jepsen_node *nd = &c->nodes[i];
    snprintf(nd->name, sizeof(nd->name), "n%d", i + 1);
    if (m == JEPSEN_NET_NETNS) {
      snprintf(nd->ip, sizeof(nd->ip), "10.77.%d.%d", c->slot, i + 1);
      snprintf(nd->netns, sizeof(nd->netns), "%sn%d", c->prefix, i + 1);
    } else {
      snprintf(nd->ip, sizeof(nd->ip), "127.77.%d.%d", c->slot, i + 1);
    }
    snprintf(nd->data_dir, sizeof(nd->data_dir), "%s/data/n%d.g0", run_dir,
             i + 1);
    snprintf(nd->log_path, sizeof(nd->log_path), "%s/n%d.log", run_dir, i + 1);
    snprintf(nd->clock_path, sizeof(nd->clock_path), "%s/n%d.faketime", run_dir,
             i + 1);
  }
  return 0;
}

/* Removes the namespaces of one slot (killing what runs in them). */
static int remove_slot_namespaces(const char *prefix, FILE *out) {
  DIR *d = opendir("/run/netns");
  if (!d)
    return 0;
  int removed = 0;
  struct dirent *e;
  char names[64][64];
  int nn = 0;
  while ((e = readdir(d)) && nn < 64) {
    size_t pl = strlen(prefix);
    if (strncmp(e->d_name, prefix, pl) != 0)
      continue;
    /* kjh<slot> then 'c' or 'n': not kjh1 matching kjh10 */
    char k = e->d_name[pl];
    if (k != 'c' && k != 'n')
      continue;
    snprintf(names[nn++], sizeof(names[0]), "%s", e->d_name);
  }
  closedir(d);
  for (int k = 0; k < nn; k++) {
    char *pids_argv[] = {"ip", "netns", "pids", names[k], NULL};
    struct jepsen_cmd cmd = {.argv = pids_argv};
    char buf[4096];
    int st;
    bool to;
    if (jepsen_run(&cmd, CMD_TIMEOUT, buf, sizeof(buf), &st, &to) == 0) {
      for (char *sv, *t = strtok_r(buf, "\n", &sv); t;
           t = strtok_r(NULL, "\n", &sv)) {
        long pid = strtol(t, NULL, 10);
        if (pid > 1 && pid != (long)getpid()) {
          kill((pid_t)pid, SIGKILL);
          if (out)
            fprintf(out, "killed process %ld in namespace %s\n", pid, names[k]);
          removed++;
        }
      }
    }
    char *del[] = {"ip", "netns", "delete", names[k], NULL};
    char err[512];
    if (jepsen_run_ok(NULL, del, CMD_TIMEOUT, err, sizeof(err)) == 0) {
      removed++;
      if (out)
        fprintf(out, "deleted namespace %s\n", names[k]);
    } else if (out) {
      fprintf(out, "could not delete namespace %s: %s\n", names[k], err);
    }
  }
  return removed;
}

static int ipv(char *err, size_t errlen, char **argv) {
  return jepsen_run_ok(NULL, argv, CMD_TIMEOUT, err, errlen);
}

#define IP(...) ipv(err, errlen, (char *[]){"ip", __VA_ARGS__, NULL})

int jepsen_cluster_net_up(struct jepsen_cluster *c, char *err, size_t errlen) {
  char dir[600];
  snprintf(dir, sizeof(dir), "%s/data", c->run_dir);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
    return -errno;
  }
  for (int i = 0; i < c->n; i++) {
    if (c->faketime && jepsen_node_set_clock(c, i, 0) != 0) {
      snprintf(err, errlen, "cannot write %s", c->nodes[i].clock_path);
      return -EIO;
    }
  }
  if (c->mode != JEPSEN_NET_NETNS)
    return 0;
  if (geteuid() != 0) {
    snprintf(err, errlen, "network namespaces need root (use --net loopback)");
    return -EPERM;
  }
  remove_slot_namespaces(c->prefix, NULL);
  c->net_up = true; /* from here on, teardown has work to do */
  char addr[32];
  snprintf(addr, sizeof(addr), "10.77.%d.254/24", c->slot);
  int rc;
  if ((rc = IP("netns", "add", c->ctl_ns)) ||
      (rc = IP("-n", c->ctl_ns, "link", "set", "lo", "up")) ||
      (rc = IP("-n", c->ctl_ns, "link", "add", "br0", "type", "bridge")) ||
      (rc = IP("-n", c->ctl_ns, "addr", "add", addr, "dev", "br0")) ||
      (rc = IP("-n", c->ctl_ns, "link", "set", "br0", "up")))
    return rc;
  for (int i = 0; i < c->n; i++) {
    struct jepsen_node *nd = &c->nodes[i];
    char veth[16], naddr[32];
    snprintf(veth, sizeof(veth), "v%d", i + 1);
    snprintf(naddr, sizeof(naddr), "%s/24", nd->ip);
    if ((rc = IP("netns", "add", nd->netns)) ||
        (rc = IP("-n", nd->netns, "link", "set", "lo", "up")) ||
        (rc = IP("-n", c->ctl_ns, "link", "add", veth, "type", "veth", "peer",
                 "name", "eth0", "netns", nd->netns)) ||
        (rc =
             IP("-n", c->ctl_ns, "link", "set", veth, "master", "br0", "up")) ||
        (rc = IP("-n", nd->netns, "addr", "add", naddr, "dev", "eth0")) ||
        (rc = IP("-n", nd->netns, "link", "set", "eth0", "up")))
      return rc;
  }
  return 0;
}

int jepsen_node_set_clock(struct jepsen_cluster *c, int i, double offset) {
  /* Written whole and renamed, so libfaketime never reads half a file. */
  char tmp[600];
  snprintf(tmp, sizeof(tmp), "%s.tmp", c->nodes[i].clock_path);
  FILE *f = fopen(tmp, "w");
  if (!f)
    return -errno;
  fprintf(f, "%+.3f\n", offset);
  if (fclose(f) != 0)
    return -EIO;
  return rename(tmp, c->nodes[i].clock_path) == 0 ? 0 : -errno;
}

int jepsen_node_start(struct jepsen_cluster *c, int i, bool existing,
                      const char *initial_cluster, char *err, size_t errlen) {
  struct jepsen_node *nd = &c->nodes[i];
  if (nd->pid > 0)
    return 0;
  char buf[4096];
  char *argv[32];
  int rc = c->target->argv(c, i, existing, initial_cluster, buf, sizeof(buf),
                           argv, 32);
  if (rc != 0) {
    snprintf(err, errlen, "command line of %s too long", nd->name);
    return rc;
  }
  char preload[300], file[600];
  snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", FAKETIME_LIB);
  snprintf(file, sizeof(file), "FAKETIME_TIMESTAMP_FILE=%s", nd->clock_path);
  char *env[] = {preload, file, "FAKETIME_NO_CACHE=1", NULL};
  FILE *log = fopen(nd->log_path, "a");
  if (log) {
    fprintf(log, "==== keel-jepsen: starting %s:", nd->name);
    for (int k = 0; argv[k]; k++)
      fprintf(log, " %s", argv[k]);
    fprintf(log, "\n");
    fclose(log);
  }
  struct jepsen_cmd cmd = {
      .netns = c->mode == JEPSEN_NET_NETNS ? nd->netns : NULL,
      .argv = argv,
      .env_extra = c->faketime ? env : NULL,
      .log_path = nd->log_path,
  };
  pid_t pid = jepsen_spawn(&cmd);
  if (pid < 0) {
    snprintf(err, errlen, "cannot start %s (%s): %s", nd->name, argv[0],
             strerror(-pid));
    return pid;
  }
  nd->pid = pid;
  nd->paused = false;
  return 0;
}

void jepsen_node_kill(struct jepsen_cluster *c, int i) {
  struct jepsen_node *nd = &c->nodes[i];
  if (nd->pid <= 0)
    return;
  kill(nd->pid, SIGKILL);
  while (waitpid(nd->pid, NULL, 0) < 0 && errno == EINTR)
    ;
  nd->pid = 0;
  nd->paused = false;
}

int jepsen_node_pause(struct jepsen_cluster *c, int i) {
  struct jepsen_node *nd = &c->nodes[i];
  if (nd->pid <= 0 || nd->paused)
    return 0;
  if (kill(nd->pid, SIGSTOP) != 0)
    return -errno;
  nd->paused = true;
  return 0;
}

int jepsen_node_resume(struct jepsen_cluster *c, int i) {
  struct jepsen_node *nd = &c->nodes[i];
  if (nd->pid <= 0 || !nd->paused)
    return 0;
  if (kill(nd->pid, SIGCONT) != 0)
    return -errno;
  nd->paused = false;
  return 0;
}

/* A TCP socket created inside netns (NULL: here), connected with a
 * deadline. setns affects only the calling thread, and the socket keeps the
 * namespace it was made in. */
static int connect_in(const char *netns, const char *ip, int port,
                      double timeout) {
  int self = -1, target = -1, fd = -1;
  if (netns) {
    char path[128];
    snprintf(path, sizeof(path), "/run/netns/%s", netns);
    self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    target = open(path, O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
      if (self >= 0)
        close(self);
      if (target >= 0)
        close(target);
      return -EIO;
    }
  }
  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (netns) {
    /* Going back cannot fail for a namespace we came from; if it did, the
     * thread would be stranded, so stop rather than go on. */
    if (setns(self, CLONE_NEWNET) != 0)
      abort();
    close(self);
    close(target);
  }
  if (fd < 0)
    return -errno;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, ip, &sa.sin_addr);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -errno;
  }
  struct pollfd pf = {fd, POLLOUT, 0};
  int soerr = 0;
  socklen_t sl = sizeof(soerr);
  if (poll(&pf, 1, (int)(timeout * 1000)) != 1 ||
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
    close(fd);
    return -ETIMEDOUT;
  }
  return fd;
}

bool jepsen_node_healthy(const struct jepsen_cluster *c, int i,
                         double timeout) {
  const struct jepsen_node *nd = &c->nodes[i];
  double deadline = jepsen_now() + timeout;
  int fd = connect_in(jepsen_cluster_client_netns(c), nd->ip,
                      c->target->client_port, timeout);
  if (fd < 0)
    return false;
  char req[256];
  int len = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     c->target->health_path, nd->ip);
  if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
    close(fd);
    return false;
  }
  char resp[4096];
  size_t got = 0;
  while (got + 1 < sizeof(resp)) {
    double left = deadline - jepsen_now();
    if (left <= 0)
      break;
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, (int)(left * 1000) + 1) != 1)
      break;
    ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  resp[got] = 0;
  return strncmp(resp, "HTTP/1.1 200", 12) == 0 &&
         strstr(resp, c->target->health_expect) != NULL;
}

int jepsen_cluster_wait_healthy(struct jepsen_cluster *c, uint32_t mask,
                                double timeout, char *err, size_t errlen) {
  double deadline = jepsen_now() + timeout;
  uint32_t pending = mask;
  for (;;) {
    for (int i = 0; i < c->n; i++) {
      if (!(pending & (1u << i)))
        continue;
      if (c->nodes[i].pid <= 0 || c->nodes[i].removed ||
          jepsen_node_healthy(c, i, 1.0))
        pending &= ~(1u << i);
    }
    if (!pending)
      return 0;
    if (jepsen_now() >= deadline || (c->stop && *c->stop))
      break;
    /* Poll interval between probes of a server that is still starting;
     * each probe itself waits on the socket. */
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  size_t len =
      (size_t)snprintf(err, errlen, "not healthy after %.0f s:", timeout);
  for (int i = 0; i < c->n && len < errlen; i++)
    if (pending & (1u << i))
      len += (size_t)snprintf(err + len, errlen - len, " %s (see %s)",
                              c->nodes[i].name, c->nodes[i].log_path);
  return KEEL_ETIMEOUT;
}

/* Loads node i's INPUT rules: drop packets from every node in drop. */
static int load_rules(struct jepsen_cluster *c, int i, uint32_t drop, char *err,
                      size_t errlen) {
  char rules[2048];
  size_t len =
      (size_t)snprintf(rules, sizeof(rules),
                       "*filter\n:INPUT ACCEPT [0:0]\n"
                       ":FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
  for (int j = 0; j < c->n; j++)
    if (drop & (1u << j))
      len += (size_t)snprintf(rules + len, sizeof(rules) - len,
                              "-A INPUT -s %s/32 -j DROP\n", c->nodes[j].ip);
  snprintf(rules + len, sizeof(rules) - len, "COMMIT\n");
  char *argv[] = {"iptables-restore", "-w", "5", NULL};
  struct jepsen_cmd cmd = {
      .netns = c->nodes[i].netns, .argv = argv, .stdin_text = rules};
  char out[1024];
  int st;
  bool to;
  int rc = jepsen_run(&cmd, CMD_TIMEOUT, out, sizeof(out), &st, &to);
  if (rc == 0 && (to || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
    snprintf(err, errlen, "iptables-restore in %s: %s", c->nodes[i].netns, out);
    return -EIO;
  }
  return rc;
}

int jepsen_cluster_partition(struct jepsen_cluster *c,
                             const struct jepsen_grudge *g, char *err,
                             size_t errlen) {
  if (c->mode != JEPSEN_NET_NETNS) {
    snprintf(err, errlen,
             "partitions need --net netns (the loopback proxy is not built)");
    return -ENOTSUP;
  }
  for (int i = 0; i < c->n; i++) {
    int rc = load_rules(c, i, g->drop[i], err, errlen);
    if (rc != 0)
      return rc;
    c->grudge.drop[i] = g->drop[i];
  }
  return 0;
}

int jepsen_cluster_heal_net(struct jepsen_cluster *c, char *err,
                            size_t errlen) {
  if (c->mode != JEPSEN_NET_NETNS)
    return 0;
  struct jepsen_grudge none = {.n = c->n};
  return jepsen_cluster_partition(c, &none, err, errlen);
}

int jepsen_cluster_ctl(const struct jepsen_cluster *c, uint32_t mask,
                       char *const *args, const char *stdin_text,
                       double timeout, char *out, size_t cap, int *status,
                       bool *timed_out) {
  /* No endpoint at all would make etcdctl fall back to 127.0.0.1:2379,
   * which is not ours. */
  *timed_out = false;
  *status = -1;
  if (cap)
    out[0] = 0;
  if (!(mask & ((1u << c->n) - 1)))
    return -ENOENT;
  char eps[512];
  size_t len = (size_t)snprintf(eps, sizeof(eps), "--endpoints=");
  for (int i = 0; i < c->n; i++)
    if (mask & (1u << i)) {
      char url[64];
      jepsen_node_client_url(c, i, url, sizeof(url));
      len += (size_t)snprintf(eps + len, sizeof(eps) - len, "%s%s",
                              eps[len - 1] == '=' ? "" : ",", url);
    }
  char ct[48];
  snprintf(ct, sizeof(ct), "--command-timeout=%.1fs", timeout);
  char *argv[24];
  size_t a = 0;
  argv[a++] = "etcdctl";
  argv[a++] = eps;
  argv[a++] = "--dial-timeout=1s";
  argv[a++] = ct;
  for (size_t k = 0; args[k] && a < 23; k++)
    argv[a++] = args[k];
  argv[a] = NULL;
  /* stdout alone is parsed (etcdctl logs warnings on stderr even when it
   * succeeds); stderr is appended only when the command failed, for the
   * error message. */
  char errbuf[1024];
  struct jepsen_cmd cmd = {.netns = jepsen_cluster_client_netns(c),
                           .argv = argv,
                           .stdin_text = stdin_text,
                           .err_buf = errbuf,
                           .err_cap = sizeof(errbuf)};
  int rc = jepsen_run(&cmd, timeout + 2.0, out, cap, status, timed_out);
  if (rc == 0 &&
      (*timed_out || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0)) {
    /* etcdctl's own error line beats the client library's warnings. */
    const char *e = strstr(errbuf, "Error:");
    size_t l = strlen(out);
    if (l + 1 < cap)
      snprintf(out + l, cap - l, "%s", e ? e : errbuf);
  }
  return rc;
}

void jepsen_cluster_teardown(struct jepsen_cluster *c) {
  for (int i = 0; i < c->n; i++)
    jepsen_node_kill(c, i);
  if (c->net_up) {
    remove_slot_namespaces(c->prefix, NULL);
    c->net_up = false;
  }
  if (c->lock_fd >= 0) {
    close(c->lock_fd);
    c->lock_fd = -1;
  }
}

int jepsen_cleanup(FILE *out) {
  int removed = 0;
  for (int s = 0; s < JEPSEN_SLOTS; s++) {
    int fd = lock_slot(s, false);
    if (fd < 0) {
      fprintf(out, "slot %d is in use by a running harness: left alone\n", s);
      continue;
    }
    char prefix[16];
    snprintf(prefix, sizeof(prefix), JEPSEN_PREFIX "%d", s);
    removed += remove_slot_namespaces(prefix, out);
    close(fd);
  }
  /* Host-namespace links with the prefix (none are made; older or crashed
   * variants might have). */
  char *argv[] = {"ip", "-o", "link", "show", NULL};
  struct jepsen_cmd cmd = {.argv = argv};
  char buf[16384];
  int st;
  bool to;
  if (jepsen_run(&cmd, CMD_TIMEOUT, buf, sizeof(buf), &st, &to) == 0) {
    for (char *sv, *line = strtok_r(buf, "\n", &sv); line;
         line = strtok_r(NULL, "\n", &sv)) {
      char name[64];
      if (sscanf(line, "%*d: %63[^:@]", name) == 1 &&
          strncmp(name, JEPSEN_PREFIX, strlen(JEPSEN_PREFIX)) == 0) {
        char *del[] = {"ip", "link", "delete", name, NULL};
        if (jepsen_run_ok(NULL, del, CMD_TIMEOUT, NULL, 0) == 0) {
          fprintf(out, "deleted link %s\n", name);
          removed++;
        }
      }
    }
  }
  return removed;
}

/* run.c — one harness run: `keel-jepsen test`.
 *
 * Phases (the main thread drives them in order; any failure or SIGINT /
 * SIGTERM / SIGHUP jumps to teardown, which always runs):
 *
 *   setup    slot, run directory, network, nodes, health
 *   workload C client threads invoke ops and append to history.edn; the
 *            main thread plays the nemesis schedule (fault, heal, ...)
 *   stop     at --time-limit: clients finish their op in flight and stop
 *   heal     every fault undone: processes resumed/restarted, rules
 *            flushed, clocks reset, removed members added back
 *   settle   every node healthy again (bounded), then the convergence check
 *   teardown processes killed, namespaces deleted, slot released
 *   check    the history checker; results.edn, latency.png, timeline.html,
 *            one verdict line
 *
 * Threads: the main thread alone forks servers (PR_SET_PDEATHSIG is per
 * thread) and changes node state; client threads share only the history
 * (one mutex) and the workload (its own rules). Client threads block the
 * termination signals so the main thread receives them.
 *
 * Bounds: history lines are written as they happen (nothing kept but the
 * per-op records for the plots, at most MAX_RECS); nemesis events at most
 * MAX_EVENTS.
 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cluster.h"
#include "history.h"
#include "keel_error.h"
#include "nemesis.h"
#include "proc.h"
#include "workload.h"

#define MAX_RECS 200000
#define MAX_EVENTS 4096
#define MAX_CONCURRENCY 64
#define EXIT_UNKNOWN 2

static volatile int g_stop_signal;

static void on_signal(int sig) {
  g_stop_signal = sig;
}

struct opts {
  const char *target, *workload, *nemesis, *run_dir;
  int nodes, concurrency;
  double time_limit, interval, op_timeout, settle, check_limit;
  uint64_t seed;
  enum jepsen_net_mode net;
  bool unsafe_reads;
};

/* One completed op, for the plot and the timeline. */
struct rec {
  int64_t process;
  double t_inv, t_done; /* seconds since the start */
  uint8_t f;
  uint8_t type; /* enum jepsen_outcome */
};

struct nem_interval {
  double t0, t1; /* t1 < 0: not healed (yet) */
  char what[200];
};

struct run {
  struct opts o;
  struct jepsen_cluster c;
  struct jepsen_workload w;
  FILE *hist, *nem;
  pthread_mutex_t mu;
  uint64_t index;
  double t0;
  struct rec *recs;
  size_t n_recs;
  size_t n_ok, n_fail, n_info;
  struct nem_interval ivals[MAX_EVENTS];
  size_t n_ivals;
  size_t n_faults, n_fault_errors;
  atomic_int stop_clients;
  /* fault state for its heal */
  uint32_t killed, paused, clocked, removed;
  bool strobe;
  double strobe_delta;
  struct jepsen_rng rng;
};

/* ---- history --------------------------------------------------------------
 */

static double since(const struct run *r) {
  return jepsen_now() - r->t0;
}

/* Appends one event; the caller holds r->mu. Returns its time. */
static double hist_line(struct run *r, const char *type, const char *process,
                        const char *f, const char *value) {
  double t = since(r);
  fprintf(r->hist,
          "{:index %" PRIu64 ", :time %" PRId64
          ", :type :%s, :process %s, :f :%s, :value %s}\n",
          r->index++, (int64_t)(t * 1e9), type, process, f, value);
  return t;
}

void jepsen_edn_string(const char *s, char *buf, size_t cap) {
  size_t len = 0;
  if (cap < 3)
    return;
  buf[len++] = '"';
  for (; *s && len + 3 < cap; s++) {
    if (*s == '"' || *s == '\\')
      buf[len++] = '\\';
    buf[len++] = (*s == '\n' || *s == '\t') ? ' ' : *s;
  }
  buf[len++] = '"';
  buf[len] = 0;
}

static void nemesis_event(struct run *r, bool start, const char *what,
                          const char *error) {
  char v[600], text[520];
  snprintf(text, sizeof(text), "%s%s%s", what, error ? ": FAILED: " : "",
           error ? error : "");
  jepsen_edn_string(text, v, sizeof(v));
  pthread_mutex_lock(&r->mu);
  double t = hist_line(r, "info", ":nemesis", start ? "start" : "stop", v);
  fflush(r->hist);
  pthread_mutex_unlock(&r->mu);
  fprintf(r->nem, "{:time %.3f, :f :%s, :value %s}\n", t,
          start ? "start" : "stop", v);
  fflush(r->nem);
  if (start && r->n_ivals < MAX_EVENTS) {
    struct nem_interval *iv = &r->ivals[r->n_ivals++];
    iv->t0 = t;
    iv->t1 = -1;
    snprintf(iv->what, sizeof(iv->what), "%s", what);
  } else if (!start && r->n_ivals && r->ivals[r->n_ivals - 1].t1 < 0) {
    r->ivals[r->n_ivals - 1].t1 = t;
  }
  fprintf(stderr, "keel-jepsen: %6.1f s nemesis %s %s%s%s\n", t,
          start ? "start" : "stop ", what, error ? ": FAILED: " : "",
          error ? error : "");
}

/* ---- clients --------------------------------------------------------------
 */

struct worker {
  struct run *r;
  int idx;
  pthread_t th;
  int error;
};

static void *worker_main(void *arg) {
  struct worker *wk = arg;
  struct run *r = wk->r;
  const char *ns = jepsen_cluster_client_netns(&r->c);
  if (ns) {
    char path[128];
    snprintf(path, sizeof(path), "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      wk->error = -errno;
      if (fd >= 0)
        close(fd);
      return NULL;
    }
    close(fd);
  }
  struct jepsen_rng rng;
  jepsen_rng_seed(&rng, r->o.seed * 7919 + (uint64_t)wk->idx + 1);
  int64_t process = wk->idx;
  void *client = NULL;
  int node = (int)(process % r->c.n);
  if ((wk->error = r->w.open(&r->w, process, node, &client)) != 0)
    return NULL;
  while (!atomic_load(&r->stop_clients) && !g_stop_signal) {
    struct jepsen_wop op;
    r->w.generate(&r->w, &rng, process, &op);
    char pbuf[32];
    snprintf(pbuf, sizeof(pbuf), "%" PRId64, process);
    const char *fname = jepsen_f_name((enum jepsen_f)op.f);
    pthread_mutex_lock(&r->mu);
    double t_inv = hist_line(r, "invoke", pbuf, fname, op.value);
    pthread_mutex_unlock(&r->mu);
    char out[JEPSEN_VALUE_MAX], err[200];
    enum jepsen_outcome oc = r->w.invoke(&r->w, client, &op, r->o.op_timeout,
                                         out, sizeof(out), err, sizeof(err));
    pthread_mutex_lock(&r->mu);
    static const char *const names[] = {"ok", "fail", "info"};
    double t_done = hist_line(r, names[oc], pbuf, fname, out);
    if (oc != JEPSEN_OUT_OK && err[0]) {
      /* The reason as a trailing comment, for people reading the file. */
      fseek(r->hist, -1, SEEK_CUR);
      fprintf(r->hist, " ; %.*s\n", (int)strcspn(err, "\n"), err);
    }
    if (oc == JEPSEN_OUT_OK)
      r->n_ok++;
    else if (oc == JEPSEN_OUT_FAIL)
      r->n_fail++;
    else
      r->n_info++;
    if (r->n_recs < MAX_RECS)
      r->recs[r->n_recs++] =
          (struct rec){process, t_inv, t_done, op.f, (uint8_t)oc};
    pthread_mutex_unlock(&r->mu);
    if (oc == JEPSEN_OUT_INFO) {
      /* Jepsen: a process whose op is indeterminate is never reused. */
      r->w.close(&r->w, client);
      client = NULL;
      process += r->o.concurrency;
      if ((wk->error = r->w.open(&r->w, process, node, &client)) != 0)
        return NULL;
    }
  }
  r->w.close(&r->w, client);
  return NULL;
}

/* ---- nemesis --------------------------------------------------------------
 */

static void nodes_text(const struct jepsen_cluster *c, uint32_t set, char *buf,
                       size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  for (int i = 0; i < c->n; i++)
    if (set & (1u << i)) {
      int w = snprintf(buf + len, cap - len, "%s%s", len ? "," : "",
                       c->nodes[i].name);
      if (w > 0 && (size_t)w < cap - len)
        len += (size_t)w;
    }
}

static int leader_of(struct run *r) {
  int leader = -1;
  char err[256];
  if (r->c.target->leader(&r->c, &leader, err, sizeof(err)) != 0)
    return -1;
  return leader;
}

/* Removes node i from the cluster and stops it; its next start uses a
 * fresh data directory. */
static int member_out(struct run *r, int i, char *err, size_t errlen) {
  /* etcd refuses reconfiguration until every member it counts on has been
   * connected for 5 s (a member re-added by the previous heal may not
   * have): retry for at most half an interval. */
  double deadline = jepsen_now() + r->o.interval / 2;
  int rc;
  for (;;) {
    rc = r->c.target->member_remove(&r->c, i, err, errlen);
    if (rc == 0 || g_stop_signal || jepsen_now() >= deadline)
      break;
    struct timespec ts = {0, 250 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (rc != 0)
    return rc;
  jepsen_node_kill(&r->c, i);
  struct jepsen_node *nd = &r->c.nodes[i];
  nd->removed = true;
  nd->gen++;
  snprintf(nd->data_dir, sizeof(nd->data_dir), "%s/data/n%d.g%d", r->c.run_dir,
           i + 1, nd->gen);
  return 0;
}

static int member_in(struct run *r, int i, bool rename, char *err,
                     size_t errlen) {
  struct jepsen_node *nd = &r->c.nodes[i];
  if (rename)
    snprintf(nd->name, sizeof(nd->name), "n%dg%d", i + 1, nd->gen);
  char ic[1024];
  int rc = r->c.target->member_add(&r->c, i, ic, sizeof(ic), err, errlen);
  if (rc != 0)
    return rc;
  nd->removed = false;
  return jepsen_node_start(&r->c, i, true, ic, err, errlen);
}

static void fault_start(struct run *r, struct jepsen_fault f) {
  struct jepsen_cluster *c = &r->c;
  char what[200], who[64], err[512] = "";
  int rc = 0;
  snprintf(what, sizeof(what), "%s %s", jepsen_nemesis_name(f.nemesis),
           jepsen_variant_name(f));
  size_t wl = strlen(what);
  nemesis_event(r, true, what, NULL);
  r->n_faults++;
  switch (f.nemesis) {
  case JEPSEN_NEM_KILL:
  case JEPSEN_NEM_PAUSE: {
    int leader = f.variant == JEPSEN_TGT_LEADER ? leader_of(r) : -1;
    uint32_t t = jepsen_pick_targets(f.variant, c->n, leader, &r->rng);
    for (int i = 0; i < c->n; i++)
      if (t & (1u << i)) {
        if (f.nemesis == JEPSEN_NEM_KILL)
          jepsen_node_kill(c, i);
        else if ((rc = jepsen_node_pause(c, i)) != 0)
          snprintf(err, sizeof(err), "SIGSTOP: %s", strerror(-rc));
      }
    if (f.nemesis == JEPSEN_NEM_KILL)
      r->killed = t;
    else
      r->paused = t;
    nodes_text(c, t, who, sizeof(who));
    snprintf(what + wl, sizeof(what) - wl, ": %s", who);
    break;
  }
  case JEPSEN_NEM_PARTITION: {
    struct jepsen_grudge g;
    int leader = f.variant == JEPSEN_PART_LEADER ? leader_of(r) : -1;
    jepsen_grudge_make(f.variant, c->n, leader, &r->rng, &g);
    snprintf(what + wl, sizeof(what) - wl, ": ");
    jepsen_grudge_describe(&g, what + wl + 2, sizeof(what) - wl - 2);
    rc = jepsen_cluster_partition(c, &g, err, sizeof(err));
    break;
  }
  case JEPSEN_NEM_CLOCK: {
    uint32_t t =
        jepsen_pick_targets(JEPSEN_TGT_MINORITY, c->n, -1, &r->rng) | 0;
    if (!t)
      t = 1;
    double off = (double)(1 + jepsen_rng_below(&r->rng, 60)) *
                 (jepsen_rng_below(&r->rng, 2) ? 1 : -1);
    for (int i = 0; i < c->n; i++)
      if (t & (1u << i) && (rc = jepsen_node_set_clock(c, i, off)) != 0)
        snprintf(err, sizeof(err), "writing the clock file: %s", strerror(-rc));
    r->clocked = t;
    r->strobe = f.variant == JEPSEN_CLOCK_STROBE;
    r->strobe_delta = off;
    nodes_text(c, t, who, sizeof(who));
    snprintf(what + wl, sizeof(what) - wl, ": %s %+.0f s%s", who, off,
             r->strobe ? " (flipping every 100 ms)" : "");
    break;
  }
  case JEPSEN_NEM_MEMBER: {
    int i = (int)jepsen_rng_below(&r->rng, (uint32_t)c->n);
    snprintf(what + wl, sizeof(what) - wl, ": %s", c->nodes[i].name);
    rc = member_out(r, i, err, sizeof(err));
    if (rc == 0 && f.variant == JEPSEN_MEMBER_REPLACE) {
      /* etcd refuses to add while it counts itself unhealthy right after
       * the removal: retry for at most half an interval. */
      double deadline = jepsen_now() + r->o.interval / 2;
      bool rename = true;
      do {
        rc = member_in(r, i, rename, err, sizeof(err));
        rename = false;
        if (rc == 0 || g_stop_signal)
          break;
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
      } while (jepsen_now() < deadline);
      if (rc == 0)
        err[0] = 0;
      else
        r->removed |= 1u << i; /* the heal adds it back */
      wl = strlen(what);
      snprintf(what + wl, sizeof(what) - wl, " -> %s", c->nodes[i].name);
    } else if (rc == 0) {
      r->removed |= 1u << i;
    }
    break;
  }
  }
  for (size_t l = strlen(err); l && (err[l - 1] == '\n' || err[l - 1] == ' ');)
    err[--l] = 0;
  if (err[0])
    r->n_fault_errors++;
  /* The start line already went out; this one records what was hit. */
  pthread_mutex_lock(&r->mu);
  char v[700];
  char text[720];
  snprintf(text, sizeof(text), "%s%s%s", what, err[0] ? ": FAILED: " : "", err);
  jepsen_edn_string(text, v, sizeof(v));
  hist_line(r, "info", ":nemesis", "start", v);
  pthread_mutex_unlock(&r->mu);
  if (r->n_ivals)
    snprintf(r->ivals[r->n_ivals - 1].what, sizeof(r->ivals[0].what), "%s",
             what);
  fprintf(r->nem, "{:time %.3f, :f :start, :value %s}\n", since(r), v);
  fflush(r->nem);
  fprintf(stderr, "keel-jepsen: %6.1f s   %s\n", since(r), text);
}

/* Undoes every fault in force; returns 0 or the first error (in err). */
static int heal_all(struct run *r, char *err, size_t errlen) {
  struct jepsen_cluster *c = &r->c;
  int first = 0;
  char e[512];
  for (int i = 0; i < c->n; i++) {
    int rc = jepsen_node_resume(c, i);
    if (rc && !first) {
      first = rc;
      snprintf(err, errlen, "SIGCONT %s: %s", c->nodes[i].name, strerror(-rc));
    }
  }
  r->paused = 0;
  int rc = jepsen_cluster_heal_net(c, e, sizeof(e));
  if (rc && !first) {
    first = rc;
    snprintf(err, errlen, "%s", e);
  }
  if (c->faketime)
    for (int i = 0; i < c->n; i++)
      jepsen_node_set_clock(c, i, 0);
  r->clocked = 0;
  r->strobe = false;
  for (int i = 0; i < c->n; i++) {
    if (c->nodes[i].removed)
      continue;
    rc = jepsen_node_start(c, i, false, NULL, e, sizeof(e));
    if (rc && !first) {
      first = rc;
      snprintf(err, errlen, "%s", e);
    }
  }
  r->killed = 0;
  for (int i = 0; i < c->n; i++) {
    if (!c->nodes[i].removed)
      continue;
    /* Adding needs a quorum, which may take a moment after the heals
     * above; retry within the settle time. */
    double deadline = jepsen_now() + r->o.settle;
    do {
      rc = member_in(r, i, false, e, sizeof(e));
      if (rc == 0 || g_stop_signal)
        break;
      struct timespec ts = {0, 500 * 1000 * 1000};
      nanosleep(&ts, NULL);
    } while (jepsen_now() < deadline);
    if (rc && !first) {
      first = rc;
      snprintf(err, errlen, "%s", e);
    }
  }
  r->removed = 0;
  return first;
}

static void fault_heal(struct run *r, struct jepsen_fault f) {
  char err[512] = "";
  char what[64];
  snprintf(what, sizeof(what), "%s %s", jepsen_nemesis_name(f.nemesis),
           jepsen_variant_name(f));
  heal_all(r, err, sizeof(err));
  if (!err[0] && f.nemesis == JEPSEN_NEM_MEMBER) {
    /* A member just added is still catching up, and etcd refuses the next
     * reconfiguration until it has started: give it (bounded) time. */
    char e[512];
    jepsen_cluster_wait_healthy(&r->c, (1u << r->c.n) - 1, r->o.interval, e,
                                sizeof(e));
  }
  nemesis_event(r, false, what, err[0] ? err : NULL);
}

/* Waits until t (seconds since start), flipping strobed clocks. Returns
 * false when a signal asks to stop. */
static bool wait_until(struct run *r, double t) {
  bool flip = false;
  for (;;) {
    if (g_stop_signal)
      return false;
    double left = t - since(r);
    if (left <= 0)
      return true;
    if (r->strobe) {
      flip = !flip;
      for (int i = 0; i < r->c.n; i++)
        if (r->clocked & (1u << i))
          jepsen_node_set_clock(&r->c, i, flip ? 0 : r->strobe_delta);
    }
    double step = left < 0.1 ? left : 0.1;
    struct timespec ts = {0, (long)(step * 1e9)};
    nanosleep(&ts, NULL);
  }
}

/* ---- outputs --------------------------------------------------------------
 */

static int write_plot(struct run *r, char *err, size_t errlen) {
  char path[600];
  snprintf(path, sizeof(path), "%s/latency.dat", r->o.run_dir);
  FILE *d = fopen(path, "w");
  if (!d) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -errno;
  }
  fprintf(d, "# invoke_s latency_ms outcome(0 ok,1 fail,2 info) f\n");
  for (size_t i = 0; i < r->n_recs; i++)
    fprintf(d, "%.4f %.3f %d %s\n", r->recs[i].t_inv,
            (r->recs[i].t_done - r->recs[i].t_inv) * 1e3, r->recs[i].type,
            jepsen_f_name((enum jepsen_f)r->recs[i].f));
  fclose(d);
  snprintf(path, sizeof(path), "%s/latency.gp", r->o.run_dir);
  FILE *g = fopen(path, "w");
  if (!g) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -errno;
  }
  fprintf(g,
          "set terminal pngcairo size 1400,600 font ',10'\n"
          "set output 'latency.png'\n"
          "set title '%s %s, nemesis %s, %d nodes: latency of each op "
          "(shaded: nemesis active)'\n"
          "set xlabel 'time since start (s)'\nset ylabel 'latency (ms)'\n"
          "set logscale y\nset grid\nset key outside right top\n"
          "set xrange [0:%.1f]\n",
          r->o.target, r->o.workload, r->o.nemesis, r->o.nodes,
          since(r) > 1 ? since(r) : 1.0);
  for (size_t i = 0; i < r->n_ivals; i++) {
    double t1 = r->ivals[i].t1 >= 0 ? r->ivals[i].t1 : since(r);
    char label[64];
    /* Just the nemesis and variant; quotes would end gnuplot's string. */
    snprintf(label, sizeof(label), "%.*s", (int)strcspn(r->ivals[i].what, ":'"),
             r->ivals[i].what);
    fprintf(g,
            "set object %zu rect from %.3f, graph 0 to %.3f, graph 1 "
            "fc rgb '#f4c2c2' fs solid 0.5 noborder behind\n"
            "set label %zu '%s' at %.3f, graph 0.97 font ',8' front\n",
            i + 1, r->ivals[i].t0, t1, i + 1, label, r->ivals[i].t0 + 0.2);
  }
  fprintf(g, "plot 'latency.dat' using 1:($3==0?$2:1/0) with points pt 7 "
             "ps 0.5 lc rgb '#1b9e3e' title 'ok', \\\n"
             "     '' using 1:($3==1?$2:1/0) with points pt 5 ps 0.6 "
             "lc rgb '#d62728' title 'fail', \\\n"
             "     '' using 1:($3==2?$2:1/0) with points pt 9 ps 0.8 "
             "lc rgb '#1f4fd6' title 'info'\n");
  fclose(g);
  char *argv[] = {"sh", "-c", "cd \"$0\" && gnuplot latency.gp",
                  (char *)r->o.run_dir, NULL};
  return jepsen_run_ok(NULL, argv, 60.0, err, errlen);
}

static void html_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<')
      fputs("&lt;", f);
    else if (*s == '>')
      fputs("&gt;", f);
    else if (*s == '&')
      fputs("&amp;", f);
    else if (*s == '"')
      fputs("&quot;", f);
    else
      fputc(*s, f);
  }
}

static int write_timeline(struct run *r, char *err, size_t errlen) {
  char path[600];
  snprintf(path, sizeof(path), "%s/timeline.html", r->o.run_dir);
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -errno;
  }
  /* Columns: processes in order of first appearance (at most 400). */
  enum { MAX_COLS = 400 };
  int64_t cols[MAX_COLS];
  int ncols = 0;
  for (size_t i = 0; i < r->n_recs && ncols < MAX_COLS; i++) {
    bool seen = false;
    for (int k = 0; k < ncols && !seen; k++)
      seen = cols[k] == r->recs[i].process;
    if (!seen)
      cols[ncols++] = r->recs[i].process;
  }
  double total = since(r);
  double scale = total > 0 ? 30000.0 / total : 40;
  if (scale > 40)
    scale = 40; /* px per second */
  int colw = 16, left = 60;
  int width = left + ncols * colw + 20;
  int height = (int)(total * scale) + 60;
  fprintf(f,
          "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
          "<title>keel-jepsen timeline</title><style>body{font:12px "
          "sans-serif} rect.op{stroke:#333;stroke-width:0.3}</style></head>"
          "<body><h3>%s %s, nemesis %s, %d nodes: %zu ops</h3>"
          "<p>One column per process (Jepsen process ids; a process that saw "
          "an indeterminate op is retired). Time runs down. Green :ok, red "
          ":fail, blue :info; shaded bands: nemesis active. Hover for "
          "details.</p>\n<svg xmlns='http://www.w3.org/2000/svg' width='%d' "
          "height='%d'>\n",
          r->o.target, r->o.workload, r->o.nemesis, r->o.nodes, r->n_recs,
          width, height);
  for (size_t i = 0; i < r->n_ivals; i++) {
    double t1 = r->ivals[i].t1 >= 0 ? r->ivals[i].t1 : total;
    fprintf(f,
            "<rect x='0' y='%.1f' width='%d' height='%.1f' fill='#f4c2c2' "
            "opacity='0.5'><title>",
            30 + r->ivals[i].t0 * scale, width, (t1 - r->ivals[i].t0) * scale);
    html_escape(f, r->ivals[i].what);
    fprintf(f, "</title></rect>\n<text x='2' y='%.1f' font-size='9'>",
            30 + r->ivals[i].t0 * scale + 9);
    char shortw[40];
    snprintf(shortw, sizeof(shortw), "%.*s",
             (int)strcspn(r->ivals[i].what, ":"), r->ivals[i].what);
    html_escape(f, shortw);
    fprintf(f, "</text>\n");
  }
  for (int t = 0; t <= (int)total; t += 5)
    fprintf(f, "<text x='30' y='%.1f' font-size='9'>%ds</text>\n",
            30 + t * scale, t);
  static const char *const colors[] = {"#7fd18b", "#f08080", "#8fb0f5"};
  static const char *const names[] = {"ok", "fail", "info"};
  for (size_t i = 0; i < r->n_recs; i++) {
    const struct rec *rc = &r->recs[i];
    int col = -1;
    for (int k = 0; k < ncols && col < 0; k++)
      if (cols[k] == rc->process)
        col = k;
    if (col < 0)
      continue;
    double h = (rc->t_done - rc->t_inv) * scale;
    fprintf(f,
            "<rect class='op' x='%d' y='%.2f' width='%d' height='%.2f' "
            "fill='%s'><title>process %" PRId64 " %s :%s %.3f-%.3f s "
            "(%.1f ms)</title></rect>\n",
            left + col * colw, 30 + rc->t_inv * scale, colw - 2, h < 1 ? 1 : h,
            colors[rc->type], rc->process, jepsen_f_name((enum jepsen_f)rc->f),
            names[rc->type], rc->t_inv, rc->t_done,
            (rc->t_done - rc->t_inv) * 1e3);
  }
  fprintf(f, "</svg></body></html>\n");
  return fclose(f) == 0 ? 0 : -EIO;
}

/* ---- the command ----------------------------------------------------------
 */

static void usage(FILE *out) {
  fprintf(out, "usage: keel-jepsen test --workload register --nemesis "
               "kill,pause,partition,clock,member|none\n"
               "         [--target etcd] [--nodes 3|5] [--time-limit S] "
               "[--interval S]\n"
               "         [--concurrency C] [--op-timeout S] [--settle S] "
               "[--check-time-limit S]\n"
               "         [--net netns|loopback] [--seed N] [--run-dir DIR]\n"
               "         [--unsafe-local-reads]   (harness self-test: must be "
               "INVALID)\n"
               "       keel-jepsen cleanup\n");
}

static int parse_num(const char *name, const char *s, double lo, double hi,
                     double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo) || !(v <= hi)) {
    fprintf(stderr, "keel-jepsen test: --%s: '%s' is not a number in %g..%g\n",
            name, s, lo, hi);
    return -EINVAL;
  }
  *out = v;
  return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o) {
  static const struct option lo[] = {
      {"target", required_argument, NULL, 'T'},
      {"workload", required_argument, NULL, 'w'},
      {"nemesis", required_argument, NULL, 'n'},
      {"nodes", required_argument, NULL, 'N'},
      {"time-limit", required_argument, NULL, 't'},
      {"interval", required_argument, NULL, 'i'},
      {"concurrency", required_argument, NULL, 'c'},
      {"op-timeout", required_argument, NULL, 'o'},
      {"settle", required_argument, NULL, 's'},
      {"check-time-limit", required_argument, NULL, 'k'},
      {"net", required_argument, NULL, 'm'},
      {"seed", required_argument, NULL, 'S'},
      {"run-dir", required_argument, NULL, 'd'},
      {"unsafe-local-reads", no_argument, NULL, 'U'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  *o = (struct opts){.target = "etcd",
                     .workload = "register",
                     .nemesis = "none",
                     .nodes = 3,
                     .concurrency = -1,
                     .time_limit = 60,
                     .interval = 5,
                     .op_timeout = 2,
                     .settle = 60,
                     .check_limit = 120,
                     .seed = (uint64_t)time(NULL),
                     .net = geteuid() == 0 ? JEPSEN_NET_NETNS
                                           : JEPSEN_NET_LOOPBACK};
  int c;
  double v;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'T':
      o->target = optarg;
      break;
    case 'w':
      o->workload = optarg;
      break;
    case 'n':
      o->nemesis = optarg;
      break;
    case 'N':
      if (parse_num("nodes", optarg, 3, JEPSEN_MAX_NODES, &v))
        return -EINVAL;
      o->nodes = (int)v;
      break;
    case 't':
      if (parse_num("time-limit", optarg, 1, 86400, &o->time_limit))
        return -EINVAL;
      break;
    case 'i':
      if (parse_num("interval", optarg, 0.5, 3600, &o->interval))
        return -EINVAL;
      break;
    case 'c':
      if (parse_num("concurrency", optarg, 1, MAX_CONCURRENCY, &v))
        return -EINVAL;
      o->concurrency = (int)v;
      break;
    case 'o':
      if (parse_num("op-timeout", optarg, 0.1, 60, &o->op_timeout))
        return -EINVAL;
      break;
    case 's':
      if (parse_num("settle", optarg, 1, 3600, &o->settle))
        return -EINVAL;
      break;
    case 'k':
      if (parse_num("check-time-limit", optarg, 1, 86400, &o->check_limit))
        return -EINVAL;
      break;
    case 'm':
      if (strcmp(optarg, "netns") == 0)
        o->net = JEPSEN_NET_NETNS;
      else if (strcmp(optarg, "loopback") == 0)
        o->net = JEPSEN_NET_LOOPBACK;
      else {
        fprintf(stderr,
                "keel-jepsen test: --net: '%s' is not netns or "
                "loopback\n",
                optarg);
        return -EINVAL;
      }
      break;
    case 'S':
      if (parse_num("seed", optarg, 0, 9e15, &v))
        return -EINVAL;
      o->seed = (uint64_t)v;
      break;
    case 'd':
      o->run_dir = optarg;
      break;
    case 'U':
      o->unsafe_reads = true;
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return -EINVAL;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "keel-jepsen test: unexpected argument '%s'\n",
            argv[optind]);
    return -EINVAL;
  }
  if (o->concurrency < 0)
    o->concurrency = 2 * o->nodes;
  return 0;
}

static int mkdir_p(const char *path) {
  char buf[600];
  snprintf(buf, sizeof(buf), "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -errno;
      *p = '/';
    }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/* Runs the checker on the history file; fills *verdict and a one-line
 * summary; the full report goes to check.txt. */
static void run_check(struct run *r, enum jepsen_verdict *verdict,
                      char *summary, size_t cap, size_t *keys) {
  char path[600];
  snprintf(path, sizeof(path), "%s/history.edn", r->o.run_dir);
  *verdict = JEPSEN_UNKNOWN;
  *keys = 0;
  FILE *in = fopen(path, "r");
  if (!in) {
    snprintf(summary, cap, "cannot open %s", path);
    return;
  }
  struct jepsen_limits lim;
  jepsen_limits_default(&lim);
  struct jepsen_history h;
  char err[512];
  int rc =
      jepsen_history_read(in, path, r->w.model, &lim, &h, err, sizeof(err));
  fclose(in);
  if (rc != 0) {
    snprintf(summary, cap, "unreadable history: %s", err);
    return;
  }
  struct jepsen_check_opts co;
  jepsen_check_opts_default(&co);
  co.time_limit = r->o.check_limit;
  struct jepsen_check_result res;
  if (jepsen_check(&h, &co, &res) != 0) {
    snprintf(summary, cap, "the checker could not run");
    jepsen_history_free(&h);
    return;
  }
  snprintf(path, sizeof(path), "%s/check.txt", r->o.run_dir);
  FILE *out = fopen(path, "w");
  if (out) {
    jepsen_check_report(&h, &res, out);
    fclose(out);
  }
  char *text = NULL;
  size_t tl = 0;
  FILE *m = open_memstream(&text, &tl);
  if (m) {
    jepsen_check_report(&h, &res, m);
    fclose(m);
    snprintf(summary, cap, "%.*s", (int)strcspn(text, "\n"), text);
    free(text);
  }
  *verdict = res.verdict;
  *keys = res.keys;
  jepsen_check_result_free(&res);
  jepsen_history_free(&h);
}

int jepsen_cmd_test(int argc, char **argv) {
  struct run *r = calloc(1, sizeof(*r));
  if (!r)
    return EXIT_UNKNOWN;
  int prc = parse_opts(argc, argv, &r->o);
  if (prc != 0) {
    free(r);
    return prc > 0 ? 0 : EXIT_UNKNOWN;
  }
  struct opts *o = &r->o;
  const struct jepsen_target *t = jepsen_target_find(o->target);
  const struct jepsen_workload *w =
      jepsen_workload_find(o->workload, o->target);
  uint32_t mask;
  char err[1024] = "";
  if (!t || !w || jepsen_nemesis_parse(o->nemesis, &mask, err, sizeof(err))) {
    fprintf(stderr, "keel-jepsen test: %s\n",
            !t   ? "--target: only 'etcd' exists yet (keeld is not built)"
            : !w ? "--workload: only 'register' exists yet (interim etcdctl "
                   "client; libkeel's workloads come later)"
                 : err);
    free(r);
    return EXIT_UNKNOWN;
  }
  if ((mask & (1u << JEPSEN_NEM_PARTITION)) && o->net != JEPSEN_NET_NETNS) {
    fprintf(stderr, "keel-jepsen test: the partition nemesis needs --net "
                    "netns (root); the loopback proxy is not built yet\n");
    free(r);
    return EXIT_UNKNOWN;
  }
  r->w = *w;
  static struct jepsen_sched_event events[MAX_EVENTS];
  size_t n_events;
  if (jepsen_schedule(mask, o->interval, o->time_limit, o->seed, events,
                      MAX_EVENTS, &n_events) != 0) {
    fprintf(stderr, "keel-jepsen test: too many faults: raise --interval\n");
    free(r);
    return EXIT_UNKNOWN;
  }
  char dir[400];
  if (!o->run_dir) {
    char stamp[32];
    time_t now = time(NULL);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", gmtime(&now));
    snprintf(dir, sizeof(dir), "jepsen-runs/%s-%s-%s-%ld", o->target,
             o->workload, stamp, (long)getpid());
    o->run_dir = dir;
  }
  if (mkdir_p(o->run_dir) != 0) {
    fprintf(stderr, "keel-jepsen test: cannot create %s: %s\n", o->run_dir,
            strerror(errno));
    free(r);
    return EXIT_UNKNOWN;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  jepsen_rng_seed(&r->rng, o->seed ^ 0x5eed);
  pthread_mutex_init(&r->mu, NULL);
  atomic_init(&r->stop_clients, 0);
  r->recs = calloc(MAX_RECS, sizeof(*r->recs));

  const char *phase = "setup";
  int code = EXIT_UNKNOWN;
  bool workload_ready = false, interrupted = false, recovered = false;
  char recovery[512] = "", converge[512] = "not checked";
  int conv_rc = KEEL_EUNAVAILABLE;
  struct worker workers[MAX_CONCURRENCY];
  int n_workers = 0;
  char path[600];
  snprintf(path, sizeof(path), "%s/history.edn", o->run_dir);
  r->hist = fopen(path, "w");
  snprintf(path, sizeof(path), "%s/nemesis.edn", o->run_dir);
  r->nem = fopen(path, "w");
  if (!r->hist || !r->nem || !r->recs) {
    fprintf(stderr, "keel-jepsen test: cannot write in %s\n", o->run_dir);
    goto out;
  }
  fprintf(stderr,
          "keel-jepsen: %s %s, nemesis %s, %d nodes (%s), %.0f s, seed "
          "%" PRIu64 ", run dir %s\n",
          o->target, o->workload, o->nemesis, o->nodes,
          o->net == JEPSEN_NET_NETNS ? "netns" : "loopback", o->time_limit,
          o->seed, o->run_dir);
  if (jepsen_cluster_init(&r->c, t, o->net, o->nodes, o->run_dir,
                          (mask & (1u << JEPSEN_NEM_CLOCK)) != 0, err,
                          sizeof(err)) != 0)
    goto fail;
  r->c.stop = &g_stop_signal;
  if (jepsen_cluster_net_up(&r->c, err, sizeof(err)) != 0)
    goto fail;
  for (int i = 0; i < o->nodes; i++)
    if (jepsen_node_start(&r->c, i, false, NULL, err, sizeof(err)) != 0)
      goto fail;
  double t_up = jepsen_now();
  if (jepsen_cluster_wait_healthy(&r->c, (1u << o->nodes) - 1, 60, err,
                                  sizeof(err)) != 0)
    goto fail;
  fprintf(stderr, "keel-jepsen: %d nodes healthy in %.1f s (slot %d)\n",
          o->nodes, jepsen_now() - t_up, r->c.slot);
  if (r->w.init(&r->w, &r->c, o->concurrency,
                o->unsafe_reads ? JEPSEN_WL_UNSAFE_READS : 0) != 0) {
    snprintf(err, sizeof(err), "workload init failed");
    goto fail;
  }
  workload_ready = true;

  phase = "workload";
  r->t0 = jepsen_now();
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  for (int i = 0; i < o->concurrency; i++) {
    workers[i] = (struct worker){.r = r, .idx = i};
    if (pthread_create(&workers[i].th, NULL, worker_main, &workers[i]) != 0)
      break;
    n_workers++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  for (size_t e = 0; e < n_events; e++) {
    if (!wait_until(r, events[e].at))
      break;
    if (events[e].heal)
      fault_heal(r, events[e].fault);
    else
      fault_start(r, events[e].fault);
  }
  wait_until(r, o->time_limit);
  phase = "stop";
  atomic_store(&r->stop_clients, 1);
  for (int i = 0; i < n_workers; i++) {
    pthread_join(workers[i].th, NULL);
    if (workers[i].error && !err[0])
      snprintf(err, sizeof(err), "client %d: %s", i,
               keel_strerror(workers[i].error));
  }
  n_workers = 0;
  if (g_stop_signal)
    goto fail;

  phase = "heal";
  if (heal_all(r, recovery, sizeof(recovery)) == 0 &&
      jepsen_cluster_wait_healthy(&r->c, (1u << o->nodes) - 1, o->settle,
                                  recovery, sizeof(recovery)) == 0) {
    recovered = true;
    /* Converged: every member's hash equal (retried: a member that just
     * rejoined may still be catching up). */
    double deadline = jepsen_now() + o->settle;
    do {
      conv_rc = t->converged(&r->c, converge, sizeof(converge));
      if (conv_rc == 0 || g_stop_signal)
        break;
      struct timespec ts = {0, 500 * 1000 * 1000};
      nanosleep(&ts, NULL);
    } while (jepsen_now() < deadline);
  }
  if (g_stop_signal)
    goto fail;
  phase = "done";
  goto out;

fail:
  interrupted = g_stop_signal != 0;
  if (interrupted)
    snprintf(err, sizeof(err), "interrupted by signal %d", g_stop_signal);
  fprintf(stderr, "keel-jepsen: %s failed: %s\n", phase, err);
out:
  atomic_store(&r->stop_clients, 1);
  for (int i = 0; i < n_workers; i++)
    pthread_join(workers[i].th, NULL);
  jepsen_cluster_teardown(&r->c);
  if (workload_ready)
    r->w.fini(&r->w);
  if (r->hist)
    fclose(r->hist);
  if (r->nem)
    fclose(r->nem);
  if (strcmp(phase, "done") != 0) {
    printf("UNKNOWN: the run did not complete (%s: %s); run dir %s\n", phase,
           err, o->run_dir);
    pthread_mutex_destroy(&r->mu);
    free(r->recs);
    free(r);
    return EXIT_UNKNOWN;
  }

  enum jepsen_verdict lin;
  char summary[600];
  size_t keys;
  run_check(r, &lin, summary, sizeof(summary), &keys);
  enum jepsen_verdict conv = conv_rc == 0               ? JEPSEN_VALID
                             : conv_rc == KEEL_ECORRUPT ? JEPSEN_INVALID
                                                        : JEPSEN_UNKNOWN;
  enum jepsen_verdict rec = recovered ? JEPSEN_VALID : JEPSEN_INVALID;
  enum jepsen_verdict all = lin;
  if (conv == JEPSEN_INVALID || rec == JEPSEN_INVALID)
    all = JEPSEN_INVALID;
  else if (all == JEPSEN_VALID && conv != JEPSEN_VALID)
    all = JEPSEN_UNKNOWN;
  static const char *const vk[] = {"valid", "invalid", "unknown"};
  char es[700], cs[600], rs[600];
  jepsen_edn_string(summary, es, sizeof(es));
  jepsen_edn_string(converge, cs, sizeof(cs));
  jepsen_edn_string(recovered ? "every node healthy after the final heal"
                              : recovery,
                    rs, sizeof(rs));
  snprintf(path, sizeof(path), "%s/results.edn", o->run_dir);
  FILE *res = fopen(path, "w");
  if (res) {
    fprintf(res,
            "{:valid? %s, :verdict :%s,\n"
            " :linearizable {:valid? %s, :verdict :%s, :model :%s, :keys "
            "%zu, :summary %s},\n"
            " :recovery {:valid? %s, :detail %s},\n"
            " :convergence {:valid? %s, :verdict :%s, :detail %s},\n"
            " :stats {:ops %zu, :ok %zu, :fail %zu, :info %zu, :faults %zu, "
            ":fault-errors %zu},\n"
            " :test {:target \"%s\", :workload \"%s\", :nemesis \"%s\", "
            ":nodes %d, :net :%s, :time-limit %.1f, :interval %.1f, "
            ":concurrency %d, :seed %" PRIu64 ", :unsafe-local-reads %s}}\n",
            all == JEPSEN_VALID ? "true" : "false", vk[all],
            lin == JEPSEN_VALID ? "true" : "false", vk[lin],
            r->w.model == JEPSEN_MODEL_SET ? "set" : "register", keys, es,
            recovered ? "true" : "false", rs,
            conv == JEPSEN_VALID ? "true" : "false", vk[conv], cs,
            r->n_ok + r->n_fail + r->n_info, r->n_ok, r->n_fail, r->n_info,
            r->n_faults, r->n_fault_errors, o->target, o->workload, o->nemesis,
            o->nodes, o->net == JEPSEN_NET_NETNS ? "netns" : "loopback",
            o->time_limit, o->interval, o->concurrency, o->seed,
            o->unsafe_reads ? "true" : "false");
    fclose(res);
  }
  char perr[512] = "";
  if (write_plot(r, perr, sizeof(perr)) != 0)
    fprintf(stderr, "keel-jepsen: latency plot: %s\n", perr);
  if (write_timeline(r, perr, sizeof(perr)) != 0)
    fprintf(stderr, "keel-jepsen: timeline: %s\n", perr);
  static const char *const vu[] = {"VALID", "INVALID", "UNKNOWN"};
  printf("%s: %s %s, nemesis %s, %d nodes, %.0f s: %zu ops (%zu ok, %zu "
         "fail, %zu info), %zu faults (%zu failed to apply); "
         "linearizable: %s; recovered: %s; converged: %s (%s); run dir %s\n",
         vu[all], o->target, o->workload, o->nemesis, o->nodes, o->time_limit,
         r->n_ok + r->n_fail + r->n_info, r->n_ok, r->n_fail, r->n_info,
         r->n_faults, r->n_fault_errors, vk[lin], recovered ? "yes" : recovery,
         vk[conv], converge, o->run_dir);
  if (lin != JEPSEN_VALID)
    printf("  checker: %s (details in check.txt)\n", summary);
  code = (int)all;
  pthread_mutex_destroy(&r->mu);
  free(r->recs);
  free(r);
  return code;
}

int jepsen_cmd_cleanup(int argc, char **argv) {
  (void)argv;
  if (argc != 1) {
    usage(stderr);
    return EXIT_UNKNOWN;
  }
  if (geteuid() != 0) {
    fprintf(stderr, "keel-jepsen cleanup: needs root (namespaces)\n");
    return EXIT_UNKNOWN;
  }
  int n = jepsen_cleanup(stdout);
  if (n < 0)
    return EXIT_UNKNOWN;
  printf("cleanup: removed %d leftover object%s\n", n, n == 1 ? "" : "s");
  return 0;
}

/* flags-bench.c — local flag evaluations per second (keel-flags-bench).
 *
 * The flag: three targeting rules (a list membership, a string prefix, a
 * semantic-version comparison) and a fractional rollout, the shape issue 8
 * asks for. Contexts come from a pre-built pool of 4096 (different
 * targetingKey, e-mail, country, version), so the rollout and every rule
 * path are exercised. Each thread evaluates for --seconds and the total is
 * printed, per wall-clock second and per CPU-second of the evaluating
 * threads. A benchmark, not a test: it prints figures.
 *
 * usage: keel-flags-bench [--seconds S] [--threads N]
 */
#include "flags.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *FLAGS_FILE =
    "{\"flags\": {\"new-checkout\": {"
    "\"state\": \"ENABLED\","
    "\"variants\": {\"on\": true, \"off\": false},"
    "\"defaultVariant\": \"off\","
    "\"targeting\": {\"if\": ["
    "  {\"in\": [{\"var\": \"email\"}, [\"admin@example.com\", "
    "\"qa@example.com\", \"ops@example.com\"]]}, \"on\","
    "  {\"starts_with\": [{\"var\": \"country\"}, \"DE\"]}, \"off\","
    "  {\"sem_ver\": [{\"var\": \"appVersion\"}, \"<\", \"2.0.0\"]}, \"off\","
    "  {\"fractional\": [[\"on\", 10], [\"off\", 90]]}"
    "]}}}}";

#define POOL 4096

static struct flags_set *set;
static json_t *pool[POOL];
static double seconds = 2.0;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct result {
  unsigned long long evals, reasons[5];
  double cpu; /* seconds of CPU this thread used */
};

static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg) {
  struct result *res = arg;
  double end = now() + seconds, cpu0 = thread_cpu();
  unsigned long long n = 0;
  while (now() < end) {
    for (int i = 0; i < 1024; i++) {
      struct flags_result r;
      flags_evaluate(set, "new-checkout", FLAGS_TYPE_BOOLEAN,
                     pool[(n + (unsigned)i) % POOL], 1700000000, &r);
      res->reasons[r.reason]++;
    }
    n += 1024;
  }
  res->evals = n;
  res->cpu = thread_cpu() - cpu0;
  return NULL;
}

int main(int argc, char **argv) {
  int threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--seconds"))
      seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads"))
      threads = atoi(argv[i + 1]);
  }
  if (threads < 1 || threads > 64 || seconds <= 0) {
    fprintf(stderr, "usage: %s [--seconds S] [--threads N (1..64)]\n", argv[0]);
    return 2;
  }
  char err[256];
  if (flags_set_from_file(FLAGS_FILE, strlen(FLAGS_FILE), &set, err,
                          sizeof err)) {
    fprintf(stderr, "flags: %s\n", err);
    return 1;
  }
  static const char *countries[] = {"DE", "US", "FR", "DE-BY", "GB"};
  static const char *versions[] = {"1.9.3", "2.0.0", "2.1.0", "3.0.0-beta.1"};
  for (int i = 0; i < POOL; i++) {
    char email[64], key[32];
    snprintf(key, sizeof key, "user-%d", i);
    snprintf(email, sizeof email,
             i % 97 == 0 ? "qa@example.com" : "user%d@example.org", i);
    pool[i] = json_pack("{s:s, s:s, s:s, s:s}", "targetingKey", key, "email",
                        email, "country", countries[i % 5], "appVersion",
                        versions[(i / 5) % 4]);
  }
  pthread_t t[64];
  struct result res[64];
  memset(res, 0, sizeof res);
  double start = now();
  for (int i = 0; i < threads; i++)
    pthread_create(&t[i], NULL, run, &res[i]);
  unsigned long long total = 0, reasons[5] = {0};
  double cpu = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    total += res[i].evals;
    cpu += res[i].cpu;
    for (int k = 0; k < 5; k++)
      reasons[k] += res[i].reasons[k];
  }
  double elapsed = now() - start;
  printf("flag: fractional rollout + 3 rules (in, starts_with, sem_ver)\n");
  printf("threads: %d  seconds: %.2f  evaluations: %llu\n", threads, elapsed,
         total);
  printf("evaluations/s: %.0f  (%.0f per thread, %.0f ns each)\n",
         (double)total / elapsed, (double)total / elapsed / threads,
         elapsed * threads * 1e9 / (double)total);
  /* On a shared machine the wall-clock rate includes time the thread was
   * not running; the CPU-time rate is what one core does. */
  printf("evaluations per CPU-second: %.0f  (%.0f ns of CPU each)\n",
         (double)total / cpu, cpu * 1e9 / (double)total);
  printf("reasons: TARGETING_MATCH %llu  DEFAULT %llu  ERROR %llu\n",
         reasons[FLAGS_REASON_TARGETING_MATCH], reasons[FLAGS_REASON_DEFAULT],
         reasons[FLAGS_REASON_ERROR]);
  for (int i = 0; i < POOL; i++)
    json_decref(pool[i]);
  flags_set_unref(set);
  return reasons[FLAGS_REASON_ERROR] ? 1 : 0;
}

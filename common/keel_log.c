/* keel_log.c — logfmt lines on stderr; see keel_log.h for the contract. */
#include "keel_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum keel_log_level log_level = KEEL_LOG_INFO;
static char log_node[64] = "";

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "off"};

void keel_log_set_level(enum keel_log_level level) {
  log_level = level;
}

enum keel_log_level keel_log_get_level(void) {
  return log_level;
}

void keel_log_set_node(const char *name) {
  snprintf(log_node, sizeof log_node, "%s", name ? name : "");
}

int keel_log_parse_level(const char *text, enum keel_log_level *out) {
  for (int i = 0; i <= KEEL_LOG_OFF; i++) {
    if (strcasecmp(text, level_names[i]) == 0) {
      *out = (enum keel_log_level)i;
      return 0;
    }
  }
  return -EINVAL;
}

/* One line under construction. `cut` records that something did not fit,
 * so emit() can mark the line instead of ending it silently short. */
struct line {
  char buf[KEEL_LOG_LINE_MAX];
  size_t len; /* always < sizeof buf */
  int cut;
};

static void vappendf(struct line *l, const char *fmt, va_list ap) {
  size_t room = sizeof l->buf - l->len;
  int n = vsnprintf(l->buf + l->len, room, fmt, ap);
  if (n < 0)
    return;
  if ((size_t)n >= room) {
    l->len = sizeof l->buf - 1;
    l->cut = 1;
  } else {
    l->len += (size_t)n;
  }
}

static void appendf(struct line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void appendf(struct line *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vappendf(l, fmt, ap);
  va_end(ap);
}

/* Quotes a message the logfmt way: backslash and quote escaped, control
 * characters as \n, \t or \xNN, so one event is always one line. */
static void append_quoted(struct line *l, const char *msg) {
  appendf(l, "\"");
  for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
    if (l->len + 8 >= sizeof l->buf) {
      l->cut = 1;
      return;
    }
    if (*p == '"' || *p == '\\')
      appendf(l, "\\%c", *p);
    else if (*p == '\n')
      appendf(l, "\\n");
    else if (*p == '\t')
      appendf(l, "\\t");
    else if (*p < 0x20 || *p == 0x7f)
      appendf(l, "\\x%02x", *p);
    else
      l->buf[l->len++] = (char)*p;
  }
  appendf(l, "\"");
}

static void format_prefix(struct line *l, enum keel_log_level level,
                          const char *component) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  l->len = 0;
  l->cut = 0;
  appendf(l,
          "time=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s node=%s "
          "component=%s msg=",
          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
          tm.tm_sec, ts.tv_nsec / 1000000L, level_names[level],
          log_node[0] ? log_node : "-", component ? component : "-");
}

static void emit(struct line *l) {
  if (l->cut) {
    /* Mark it so a reader knows the line is incomplete. */
    if (l->len > sizeof l->buf - 5)
      l->len = sizeof l->buf - 5;
    memcpy(l->buf + l->len, "...", 3);
    l->len += 3;
  }
  l->buf[l->len++] = '\n';
  size_t off = 0;
  while (off < l->len) {
    ssize_t n = write(STDERR_FILENO, l->buf + off, l->len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; /* stderr is gone: nothing sensible left to do */
    off += (size_t)n;
  }
}

void keel_logkv(enum keel_log_level level, const char *component,
                const char *msg, const char *fields_fmt, ...) {
  if (level < log_level || level >= KEEL_LOG_OFF)
    return;
  struct line l;
  format_prefix(&l, level, component);
  append_quoted(&l, msg ? msg : "");
  if (fields_fmt && *fields_fmt && !l.cut) {
    appendf(&l, " ");
    va_list ap;
    va_start(ap, fields_fmt);
    vappendf(&l, fields_fmt, ap);
    va_end(ap);
  }
  emit(&l);
}

void keel_logf(enum keel_log_level level, const char *component,
               const char *msg_fmt, ...) {
  if (level < log_level || level >= KEEL_LOG_OFF)
    return;
  char msg[KEEL_LOG_LINE_MAX];
  va_list ap;
  va_start(ap, msg_fmt);
  vsnprintf(msg, sizeof msg, msg_fmt, ap);
  va_end(ap);
  struct line l;
  format_prefix(&l, level, component);
  append_quoted(&l, msg);
  emit(&l);
}

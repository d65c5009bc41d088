/* keel_log.h — structured logging: one logfmt line per event on stderr.
 *
 *   time=2026-11-22T03:04:05.678Z level=info node=n1 component=raft
 *   msg="became leader" term=5
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so lines from different threads never interleave. Lines longer than
 * KEEL_LOG_LINE_MAX are cut (and end in "..."): a log call never allocates.
 *
 * The level and node name are process-wide settings made once at start-up
 * (before threads start); reading them afterwards needs no lock.
 */
#ifndef KEEL_LOG_H
#define KEEL_LOG_H

#include <stdarg.h>

#define KEEL_LOG_LINE_MAX 2048

enum keel_log_level {
  KEEL_LOG_DEBUG = 0,
  KEEL_LOG_INFO = 1,
  KEEL_LOG_WARN = 2,
  KEEL_LOG_ERROR = 3,
  KEEL_LOG_OFF = 4,
};

void keel_log_set_level(enum keel_log_level level);
enum keel_log_level keel_log_get_level(void);
/* The node name printed in every line; copied (at most 63 bytes). */
void keel_log_set_node(const char *name);
/* Parses "debug", "info", "warn", "error", "off". Returns 0 or -EINVAL. */
int keel_log_parse_level(const char *text, enum keel_log_level *out);

/* Logs msg (quoted and escaped), then the optional logfmt fields given by
 * fields_fmt (printf-style, written as is: "term=%llu peer=%s"). fields_fmt
 * may be NULL. */
void keel_logkv(enum keel_log_level level, const char *component,
                const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Logs a printf-formatted message with no extra fields. */
void keel_logf(enum keel_log_level level, const char *component,
               const char *msg_fmt, ...) __attribute__((format(printf, 3, 4)));

#define KEEL_LOG_ENABLED(level) ((level) >= keel_log_get_level())

#endif

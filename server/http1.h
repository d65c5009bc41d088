/* http1.h — a small, strict HTTP/1.1 request parser and response writer for
 * the client port's plain-HTTP side (/health, /metrics, /version, config and
 * flag endpoints). Pure code: no I/O. The connection handling that uses it
 * lives in client_listener.c.
 *
 * What is accepted (anything else is refused with a status and a reason):
 *   - request line "METHOD SP origin-form SP HTTP/1.x CRLF"; the method is
 *     1..15 upper-case letters; the target starts with '/' and has no
 *     control characters or spaces; it is split at the first '?' into path
 *     and query;
 *   - header lines "name: value" with a token name; no obsolete line
 *     folding; bare LF line ends are tolerated (RFC 9112 section 2.2);
 *   - bodies only by Content-Length (one value, digits only); a
 *     Transfer-Encoding header gets 501, since no client of this port needs
 *     chunked uploads;
 *   - keep-alive: HTTP/1.1 default on, HTTP/1.0 default off, "Connection:
 *     close" / "Connection: keep-alive" override.
 * Limits (struct keel_http1_limits) bound the request line (414), the head
 * (431), the header count (431) and the body (413).
 */
#ifndef KEEL_HTTP1_H
#define KEEL_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define KEEL_HTTP1_MAX_HEADERS_CAP 64

struct keel_http1_limits {
  size_t max_request_line; /* default 4096 */
  size_t max_head_bytes;   /* request line + headers, default 16 KiB */
  size_t max_headers;      /* default 64 (<= KEEL_HTTP1_MAX_HEADERS_CAP) */
  size_t max_body_bytes;   /* default 1.5 MiB */
};

/* Fills the defaults above. */
void keel_http1_limits_default(struct keel_http1_limits *l);

struct keel_http1_header {
  const char *name; /* not NUL-terminated */
  size_t name_len;
  const char *value; /* trimmed of surrounding spaces; not NUL-terminated */
  size_t value_len;
};

/* A parsed request head. Every pointer points into the buffer given to
 * keel_http1_parse_head(); it stays valid as long as that buffer does. */
struct keel_http1_head {
  const char *method;
  size_t method_len;
  const char *path; /* starts with '/' */
  size_t path_len;
  const char *query; /* after '?', may be empty; NULL when there was none */
  size_t query_len;
  int version_minor; /* 0 or 1 */
  struct keel_http1_header headers[KEEL_HTTP1_MAX_HEADERS_CAP];
  size_t n_headers;
  uint64_t content_length; /* 0 when absent */
  int keep_alive;
};

/* The outcome of a parse that failed: the HTTP status to answer with and a
 * static reason naming the rule broken (sent as the response body). */
struct keel_http1_error {
  int status; /* 400, 413, 414, 431, 501, 505 */
  const char *reason;
};

/* Parses the head at the start of buf[0..len).
 * Returns the head length (> 0, through the blank line) when complete;
 * 0 when more bytes are needed (and none of the limits is broken yet);
 * KEEL_EPARSE when the request must be refused: *err says how.
 * A body longer than max_body_bytes is refused here (413) from its
 * Content-Length, before any of it is read. */
int keel_http1_parse_head(const char *buf, size_t len,
                          const struct keel_http1_limits *limits,
                          struct keel_http1_head *head,
                          struct keel_http1_error *err);

/* Case-insensitive header lookup; returns the first match or NULL. */
const struct keel_http1_header *
keel_http1_find_header(const struct keel_http1_head *head, const char *name);

/* "OK", "Not Found", ...; "Unknown" for codes it does not know. */
const char *keel_http1_reason(int status);

/* Formats a response head into out (at most out_size bytes):
 *   HTTP/1.1 <status> <reason>\r\n
 *   Content-Type: <content_type>\r\n        (when content_type != NULL)
 *   Content-Length: <body_len>\r\n
 *   Connection: close\r\n                    (when !keep_alive)
 *   <extra_headers>                          (raw "Name: value\r\n" lines)
 *   \r\n
 * Returns the length, or KEEL_ELIMIT when out is too small. */
int keel_http1_format_head(char *out, size_t out_size, int status,
                           const char *content_type, size_t body_len,
                           int keep_alive, const char *extra_headers);

#endif

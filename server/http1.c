/* http1.c — strict HTTP/1.1 request head parser and response head writer.
 * See http1.h for what is accepted and the limits. The parser re-scans the
 * buffer from the start on every call: heads are small (bounded by
 * max_head_bytes), so the cost is a few kilobytes per read at worst, and
 * there is no parser state to get wrong between reads. */
#include "http1.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keel_error.h"

void keel_http1_limits_default(struct keel_http1_limits *l) {
  l->max_request_line = 4096;
  l->max_head_bytes = 16 * 1024;
  l->max_headers = 64;
  l->max_body_bytes = 1536 * 1024;
}

static int fail(struct keel_http1_error *err, int status, const char *reason) {
  err->status = status;
  err->reason = reason;
  return KEEL_EPARSE;
}

/* RFC 9110 tchar */
static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return 1;
  return strchr("!#$%&'*+-.^_`|~", c) != NULL && c != 0;
}

/* Finds the end of the line starting at p: returns the index of '\n' or -1.
 * *eol_len is 2 for CRLF, 1 for bare LF. A bare CR is an error (-2). */
static long find_eol(const char *buf, size_t start, size_t len,
                     size_t *eol_len) {
  for (size_t i = start; i < len; i++) {
    if (buf[i] == '\n') {
      if (i > start && buf[i - 1] == '\r') {
        *eol_len = 2;
      } else {
        *eol_len = 1;
      }
      return (long)i;
    }
    if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n')
      return -2;
  }
  return -1;
}

static int parse_request_line(const char *line, size_t n,
                              struct keel_http1_head *h,
                              struct keel_http1_error *err) {
  size_t i = 0;
  while (i < n && line[i] >= 'A' && line[i] <= 'Z')
    i++;
  if (i == 0 || i > 15 || i >= n || line[i] != ' ')
    return fail(err, 400, "malformed request line: bad method");
  h->method = line;
  h->method_len = i;
  size_t t = ++i;
  while (i < n && line[i] != ' ') {
    unsigned char c = (unsigned char)line[i];
    if (c < 0x21 || c == 0x7f)
      return fail(err, 400, "malformed request line: bad character in target");
    i++;
  }
  if (i == t || line[t] != '/')
    return fail(err, 400, "malformed request line: target must start with '/'");
  if (i >= n)
    return fail(err, 400, "malformed request line: missing HTTP version");
  const char *target = line + t;
  size_t tlen = i - t;
  const char *q = memchr(target, '?', tlen);
  h->path = target;
  if (q) {
    h->path_len = (size_t)(q - target);
    h->query = q + 1;
    h->query_len = tlen - h->path_len - 1;
  } else {
    h->path_len = tlen;
    h->query = NULL;
    h->query_len = 0;
  }
  i++;
  const char *ver = line + i;
  size_t vlen = n - i;
  int well_formed = vlen == 8 && memcmp(ver, "HTTP/", 5) == 0 &&
                    ver[5] >= '0' && ver[5] <= '9' && ver[6] == '.' &&
                    ver[7] >= '0' && ver[7] <= '9';
  if (!well_formed)
    return fail(err, 400, "malformed request line: bad HTTP version");
  if (ver[5] != '1')
    return fail(err, 505, "HTTP version not supported: use HTTP/1.1");
  if (ver[7] == '1')
    h->version_minor = 1;
  else if (ver[7] == '0')
    h->version_minor = 0;
  else
    return fail(err, 505, "HTTP version not supported: use HTTP/1.1");
  return 0;
}

static int token_eq(const char *a, size_t alen, const char *b) {
  return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* Does the comma-separated header value contain token tok? */
static int has_token(const char *v, size_t n, const char *tok) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    size_t s = i;
    while (i < n && v[i] != ',')
      i++;
    size_t e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
      e--;
    if (e > s && token_eq(v + s, e - s, tok))
      return 1;
  }
  return 0;
}

int keel_http1_parse_head(const char *buf, size_t len,
                          const struct keel_http1_limits *limits,
                          struct keel_http1_head *h,
                          struct keel_http1_error *err) {
  memset(h, 0, sizeof(*h));
  size_t eol_len = 0;
  long eol = find_eol(buf, 0, len, &eol_len);
  if (eol == -2)
    return fail(err, 400, "malformed request: bare CR");
  if (eol < 0) {
    if (len > limits->max_request_line)
      return fail(err, 414, "request line too long");
    if (len > limits->max_head_bytes)
      return fail(err, 431, "request header fields too large");
    return 0;
  }
  size_t line_len = (size_t)eol + 1 - eol_len;
  if (line_len > limits->max_request_line)
    return fail(err, 414, "request line too long");
  int rc = parse_request_line(buf, line_len, h, err);
  if (rc != 0)
    return rc;

  int have_cl = 0, conn_close = 0, conn_keep = 0;
  size_t pos = (size_t)eol + 1;
  for (;;) {
    eol = find_eol(buf, pos, len, &eol_len);
    if (eol == -2)
      return fail(err, 400, "malformed request: bare CR");
    if (eol < 0) {
      if (len > limits->max_head_bytes)
        return fail(err, 431, "request header fields too large");
      return 0;
    }
    if ((size_t)eol + 1 > limits->max_head_bytes)
      return fail(err, 431, "request header fields too large");
    const char *line = buf + pos;
    size_t n = (size_t)eol + 1 - eol_len - pos;
    pos = (size_t)eol + 1;
    if (n == 0)
      break; /* end of head */
    if (line[0] == ' ' || line[0] == '\t')
      return fail(err, 400, "malformed header: obsolete line folding");
    const char *colon = memchr(line, ':', n);
    if (colon == NULL || colon == line)
      return fail(err, 400, "malformed header: missing name or ':'");
    size_t name_len = (size_t)(colon - line);
    for (size_t i = 0; i < name_len; i++)
      if (!is_tchar((unsigned char)line[i]))
        return fail(err, 400, "malformed header: bad character in name");
    const char *v = colon + 1;
    size_t vlen = n - name_len - 1;
    while (vlen && (*v == ' ' || *v == '\t')) {
      v++;
      vlen--;
    }
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
      vlen--;
    for (size_t i = 0; i < vlen; i++) {
      unsigned char c = (unsigned char)v[i];
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return fail(err, 400, "malformed header: control character in value");
    }
    if (h->n_headers >= limits->max_headers ||
        h->n_headers >= KEEL_HTTP1_MAX_HEADERS_CAP)
      return fail(err, 431, "too many header fields");
    struct keel_http1_header *hd = &h->headers[h->n_headers++];
    hd->name = line;
    hd->name_len = name_len;
    hd->value = v;
    hd->value_len = vlen;

    if (token_eq(line, name_len, "content-length")) {
      if (have_cl)
        return fail(err, 400, "malformed header: repeated Content-Length");
      if (vlen == 0 || vlen > 19)
        return fail(err, 400, "malformed header: bad Content-Length");
      uint64_t cl = 0;
      for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
          return fail(err, 400, "malformed header: bad Content-Length");
        cl = cl * 10 + (uint64_t)(v[i] - '0');
      }
      have_cl = 1;
      h->content_length = cl;
    } else if (token_eq(line, name_len, "transfer-encoding")) {
      return fail(err, 501,
                  "Transfer-Encoding is not supported: send Content-Length");
    } else if (token_eq(line, name_len, "connection")) {
      if (has_token(v, vlen, "close"))
        conn_close = 1;
      if (has_token(v, vlen, "keep-alive"))
        conn_keep = 1;
    }
  }
  if (h->content_length > limits->max_body_bytes)
    return fail(err, 413, "request body too large");
  if (conn_close)
    h->keep_alive = 0;
  else if (h->version_minor == 1 || conn_keep)
    h->keep_alive = 1;
  else
    h->keep_alive = 0;
  return (int)pos;
}

const struct keel_http1_header *
keel_http1_find_header(const struct keel_http1_head *head, const char *name) {
  for (size_t i = 0; i < head->n_headers; i++)
    if (token_eq(head->headers[i].name, head->headers[i].name_len, name))
      return &head->headers[i];
  return NULL;
}

const char *keel_http1_reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 422:
    return "Unprocessable Content";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
}

int keel_http1_format_head(char *out, size_t out_size, int status,
                           const char *content_type, size_t body_len,
                           int keep_alive, const char *extra_headers) {
  int n = snprintf(
      out, out_size, "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n%s%s\r\n",
      status, keel_http1_reason(status), content_type ? "Content-Type: " : "",
      content_type ? content_type : "", content_type ? "\r\n" : "", body_len,
      keep_alive ? "" : "Connection: close\r\n",
      extra_headers ? extra_headers : "");
  if (n < 0 || (size_t)n >= out_size)
    return KEEL_ELIMIT;
  return n;
}

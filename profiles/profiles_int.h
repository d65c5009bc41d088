/* profiles_int.h — helpers shared by the files of profiles/, not part of
 * the public API. */
#ifndef KEEL_PROFILES_INT_H
#define KEEL_PROFILES_INT_H

#include <stdarg.h>
#include <stddef.h>

#include "profiles.h"

/* A growable byte buffer, always NUL-terminated when len > 0 or data set. */
struct pbuf {
  char *data;
  size_t len;
  size_t cap;
  int oom; /* sticky: an append failed */
};

void pbuf_put(struct pbuf *b, const char *s, size_t n);
void pbuf_puts(struct pbuf *b, const char *s);
void pbuf_putc(struct pbuf *b, char c);
void pbuf_printf(struct pbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the text to the caller (*out, *out_len); -ENOMEM after any failed
 * append (the buffer is freed then). */
int pbuf_finish(struct pbuf *b, char **out, size_t *out_len);
void pbuf_free(struct pbuf *b);

/* Fills err (may be NULL). With a file, the message is prefixed
 * "file:line:column: " (line/column 1-based). */
void perr_set(struct profiles_error *err, const char *file, int line,
              int column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
int putf8_valid(const char *s, size_t n);
/* Length of the longest valid UTF-8 prefix of s[0..n). */
size_t putf8_prefix(const char *s, size_t n);

/* Validates an app or profile name (see profiles_key_encode). */
int pname_valid(const char *s);

/* The checks every parser makes before reading a byte: the base profile's
 * name and the document size. Sets *lim to the defaults (in *dl) when NULL
 * and *file to the name used in messages. Returns 0, -EINVAL or
 * KEEL_ELIMIT with err filled. */
int pparse_begin(size_t len, const char *filename, const char *base_profile,
                 const struct profiles_limits **lim, struct profiles_limits *dl,
                 const char **file, struct profiles_error *err);

/* Profiles one import may produce. */
#define PDOCS_MAX 256

/* Adds `props` (taken over: emptied on success and failure) as the newest
 * definition of `profile` in docs: merged over an existing document of that
 * profile with profiles_merge() rules. Errors: -ENOMEM, KEEL_ELIMIT (too many
 * properties), -E2BIG (more than PDOCS_MAX profiles). */
int pdocs_add(struct profiles_docs *d, const char *profile,
              struct profiles_list *props, const struct profiles_limits *lim);

/* Moves every doc of src into dst (src is emptied). On error dst is
 * unchanged and src freed. */
int pdocs_absorb(struct profiles_docs *dst, struct profiles_docs *src,
                 const struct profiles_limits *lim);

/* Removes the on-profile markers from a flat document and returns the
 * profiles it names (malloc'd array of malloc'd names, *n of them; *n == 0
 * when the document names none). Errors: -EINVAL with a message in err
 * (without position; the caller prefixes it). */
int ptake_on_profile(struct profiles_list *l, char ***names, size_t *n,
                     char *why, size_t why_len);

#endif

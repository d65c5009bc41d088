/* strtab.h — interned byte strings with dense ids, for the history checkers.
 *
 * The checkers compare values and model states millions of times; interning
 * turns each comparison into an integer compare. A table maps distinct byte
 * strings to ids 0, 1, 2, ... in insertion order and back.
 *
 * Bound: a table refuses to hold more than `max_bytes` of string data
 * (jepsen_strtab_intern returns KEEL_ELIMIT), so a history with endless
 * distinct values cannot eat the machine. Not thread-safe: one table per
 * thread, or read-only sharing after loading.
 */
#ifndef JEPSEN_STRTAB_H
#define JEPSEN_STRTAB_H

#include <stddef.h>
#include <stdint.h>

struct jepsen_strtab {
  char *data; /* all strings, each followed by a NUL */
  size_t data_len, data_cap, max_bytes;
  uint64_t *offs; /* id -> offset in data */
  uint32_t *lens; /* id -> length */
  uint32_t count, cap;
  uint32_t *slots; /* open addressing: id + 1, 0 = empty */
  uint32_t nslots; /* power of two */
};

/* Prepares an empty table holding at most max_bytes of string data. */
void jepsen_strtab_init(struct jepsen_strtab *t, size_t max_bytes);
void jepsen_strtab_free(struct jepsen_strtab *t);

/* Finds or adds s[0..len). Sets *id. Returns 0, -ENOMEM, or KEEL_ELIMIT when
 * the table's byte bound would be exceeded. */
int jepsen_strtab_intern(struct jepsen_strtab *t, const char *s, size_t len,
                         uint32_t *id);

/* The string of an id (NUL-terminated; *len may be NULL). The pointer is
 * valid until the next intern call (the data may move). */
const char *jepsen_strtab_get(const struct jepsen_strtab *t, uint32_t id,
                              size_t *len);

#endif

/* keel_error.c — names and messages for keel's error codes. */
/* for strerrordesc_np and strerrorname_np */
#define _GNU_SOURCE
#include "keel_error.h"

#include <errno.h>
#include <string.h>

const char *keel_strerror(int code) {
  if (code == 0)
    return "ok";
  switch (code) {
#define KEEL_ERROR_CASE(name, value, msg)                                      \
  case value:                                                                  \
    return msg;
    KEEL_ERROR_MAP(KEEL_ERROR_CASE)
#undef KEEL_ERROR_CASE
  default:
    break;
  }
  if (code < 0 && code > -4096) {
    /* Unlike strerror(), these return static strings and are thread-safe;
     * unknown codes fall back to a fixed text. */
    const char *s = strerrordesc_np(-code);
    return s ? s : "unknown system error";
  }
  return "unknown error";
}

const char *keel_err_name(int code) {
  if (code == 0)
    return "OK";
  switch (code) {
#define KEEL_ERROR_NAME(name, value, msg)                                      \
  case value:                                                                  \
    return #name;
    KEEL_ERROR_MAP(KEEL_ERROR_NAME)
#undef KEEL_ERROR_NAME
  default:
    break;
  }
  if (code < 0 && code > -4096) {
    const char *s = strerrorname_np(-code);
    return s ? s : "EUNKNOWN";
  }
  return "EUNKNOWN";
}

/* crosscheck-driver.c — evaluates cross-check cases with keel's flags
 * library, for crosscheck.mjs to compare against flagd-core.
 *
 * Input (stdin), one JSON object per line:
 *   {"set": N, "config": "<flagd flags file>", "timestamp": T,
 *    "evals": [{"flag": KEY, "type": "boolean|string|number|object",
 *               "context": {...}}, ...]}
 * Output (stdout), one line per evaluation, in order:
 *   {"value": V|null, "variant": S|null, "reason": R, "errorCode": C|null}
 * or, when the whole file is refused, one line per evaluation
 *   {"loadError": "message"}.
 */
#include "flags.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum flags_type type_of(const char *t) {
  if (!t)
    return FLAGS_TYPE_ANY;
  if (!strcmp(t, "boolean"))
    return FLAGS_TYPE_BOOLEAN;
  if (!strcmp(t, "string"))
    return FLAGS_TYPE_STRING;
  if (!strcmp(t, "number"))
    return FLAGS_TYPE_NUMBER;
  if (!strcmp(t, "object"))
    return FLAGS_TYPE_OBJECT;
  return FLAGS_TYPE_ANY;
}

int main(void) {
  size_t cap = 1 << 20;
  char *line = malloc(cap);
  if (!line)
    return 2;
  size_t lineno = 0;
  for (;;) {
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0)
      break;
    lineno++;
    json_error_t je;
    json_t *c = json_loadb(line, (size_t)n, 0, &je);
    if (!c) {
      fprintf(stderr, "line %zu: %s\n", lineno, je.text);
      return 2;
    }
    const char *config = json_string_value(json_object_get(c, "config"));
    json_int_t ts = json_integer_value(json_object_get(c, "timestamp"));
    json_t *evals = json_object_get(c, "evals");
    struct flags_set *set = NULL;
    char err[512];
    int rc = flags_set_from_file(config, config ? strlen(config) : 0, &set, err,
                                 sizeof err);
    size_t i;
    json_t *e;
    json_array_foreach(evals, i, e) {
      json_t *out;
      if (rc) {
        out = json_pack("{s:s}", "loadError", err);
      } else {
        struct flags_result r;
        flags_evaluate(set, json_string_value(json_object_get(e, "flag")),
                       type_of(json_string_value(json_object_get(e, "type"))),
                       json_object_get(e, "context"), ts, &r);
        out = json_object();
        json_object_set(out, "value",
                        r.value ? (json_t *)r.value : json_null());
        json_object_set_new(out, "variant",
                            r.variant ? json_string(r.variant) : json_null());
        json_object_set_new(out, "reason",
                            json_string(flags_reason_name(r.reason)));
        json_object_set_new(
            out, "errorCode",
            r.error_code ? json_string(flags_error_code_name(r.error_code))
                         : json_null());
        json_object_set_new(out, "message", json_string(r.error_message));
      }
      char *s = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
      puts(s);
      free(s);
      json_decref(out);
    }
    flags_set_unref(set);
    json_decref(c);
  }
  free(line);
  return 0;
}

/* flags_js.h — the JavaScript corner cases flagd-core's evaluator depends on.
 *
 * flagd-core runs JsonLogic in JavaScript, so "the same result" means the
 * same number formatting (String(1e21) is "1e+21"), the same string-to-number
 * coercion (+" 0x1A " is 26), the same MurmurHash3 and the same semver rules
 * (node-semver 7). These helpers are pure functions with no global state.
 */
#ifndef KEEL_FLAGS_JS_H
#define KEEL_FLAGS_JS_H

#include <stddef.h>
#include <stdint.h>

/* ECMAScript Number::toString(x) into buf (at least 32 bytes). Returns the
 * length. NaN -> "NaN", infinities -> "Infinity"/"-Infinity", -0 -> "0". */
size_t flags_js_numstr(double x, char *buf);

/* ECMAScript ToNumber(string): trims whitespace, "" -> 0, 0x/0o/0b
 * prefixes, "Infinity"; anything else that is not a decimal literal -> NaN. */
double flags_js_tonumber(const char *s, size_t len);

/* MurmurHash3 x86_32 over the bytes of s with seed 0. */
uint32_t flags_murmur3_32(const void *s, size_t len, uint32_t seed);

/* A parsed semantic version (node-semver's SemVer, build metadata dropped). */
#define FLAGS_SEMVER_MAX_PRE 16
struct flags_semver {
  double major, minor, patch; /* <= 2^53-1, as node-semver enforces */
  int npre;
  struct {
    const char *s;
    size_t len;
    int numeric; /* all digits: compared as a number */
    double num;
  } pre[FLAGS_SEMVER_MAX_PRE];
};

/* flagd-core's normalizeVersion(): strip one leading v/V, then a strict
 * semver 2.0.0 parse (node-semver's FULL regex, after trimming), else for
 * "N" or "N.M" a coercion to N.M.0. Returns 0 or -1 (not a version). The
 * prerelease identifiers point into s. */
int flags_semver_parse(const char *s, size_t len, struct flags_semver *out);

/* node-semver compare(): -1, 0 or 1. */
int flags_semver_compare(const struct flags_semver *a,
                         const struct flags_semver *b);

#endif

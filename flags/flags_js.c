/* flags_js.c — JavaScript number formatting and coercion, MurmurHash3 and
 * node-semver parsing, as flagd-core (JavaScript) performs them. See
 * flags_js.h. */
#include "flags_js.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t flags_js_numstr(double x, char *buf) {
  if (isnan(x))
    return (size_t)sprintf(buf, "NaN");
  if (isinf(x))
    return (size_t)sprintf(buf, x < 0 ? "-Infinity" : "Infinity");
  if (x == 0)
    return (size_t)sprintf(buf, "0");
  if (x < 0) {
    buf[0] = '-';
    return 1 + flags_js_numstr(-x, buf + 1);
  }
  if (x < 9007199254740992.0 && x == floor(x)) /* exact integers */
    return (size_t)sprintf(buf, "%.0f", x);
  /* Shortest digit string that reads back as x (ECMAScript's k). */
  char e[40];
  int p;
  for (p = 1; p <= 17; p++) {
    snprintf(e, sizeof e, "%.*e", p - 1, x);
    if (strtod(e, NULL) == x)
      break;
  }
  char digits[24];
  int k = 0;
  const char *c = e;
  for (; *c && *c != 'e'; c++)
    if (*c >= '0' && *c <= '9')
      digits[k++] = *c;
  while (k > 1 && digits[k - 1] == '0')
    k--;
  int n = atoi(c + 1) + 1; /* x = 0.d1..dk * 10^n */
  size_t o = 0;
  if (k <= n && n <= 21) {
    memcpy(buf, digits, (size_t)k);
    o = (size_t)k;
    for (int i = 0; i < n - k; i++)
      buf[o++] = '0';
  } else if (0 < n && n <= 21) {
    memcpy(buf, digits, (size_t)n);
    o = (size_t)n;
    buf[o++] = '.';
    memcpy(buf + o, digits + n, (size_t)(k - n));
    o += (size_t)(k - n);
  } else if (-6 < n && n <= 0) {
    buf[o++] = '0';
    buf[o++] = '.';
    for (int i = 0; i < -n; i++)
      buf[o++] = '0';
    memcpy(buf + o, digits, (size_t)k);
    o += (size_t)k;
  } else {
    buf[o++] = digits[0];
    if (k > 1) {
      buf[o++] = '.';
      memcpy(buf + o, digits + 1, (size_t)(k - 1));
      o += (size_t)(k - 1);
    }
    o += (size_t)sprintf(buf + o, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
  }
  buf[o] = 0;
  return o;
}

/* Length of the JS white space or line terminator at s, or 0. */
static size_t js_space(const unsigned char *s, size_t len) {
  if (len >= 1 && (s[0] == ' ' || (s[0] >= 9 && s[0] <= 13)))
    return 1;
  if (len >= 2 && s[0] == 0xC2 && s[1] == 0xA0)
    return 2; /* U+00A0 */
  if (len >= 3) {
    unsigned cp =
        ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    if ((s[0] & 0xF0) == 0xE0 &&
        (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
         cp == 0xFEFF))
      return 3;
  }
  return 0;
}

static size_t js_space_back(const unsigned char *s, size_t len) {
  for (size_t w = 1; w <= 3 && w <= len; w++)
    if (js_space(s + len - w, w) == w)
      return w;
  return 0;
}

static double parse_radix(const char *s, size_t len, int radix) {
  if (len == 0)
    return NAN;
  double v = 0;
  for (size_t i = 0; i < len; i++) {
    int d;
    char c = s[i];
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'z')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'Z')
      d = c - 'A' + 10;
    else
      return NAN;
    if (d >= radix)
      return NAN;
    v = v * radix + d;
  }
  return v;
}

double flags_js_tonumber(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t w;
  while (len && (w = js_space(s, len))) {
    s += w;
    len -= w;
  }
  while (len && (w = js_space_back(s, len)))
    len -= w;
  if (len == 0)
    return 0;
  const char *p = (const char *)s;
  if (len > 2 && p[0] == '0') {
    char r = p[1];
    if (r == 'x' || r == 'X')
      return parse_radix(p + 2, len - 2, 16);
    if (r == 'o' || r == 'O')
      return parse_radix(p + 2, len - 2, 8);
    if (r == 'b' || r == 'B')
      return parse_radix(p + 2, len - 2, 2);
  }
  size_t i = 0;
  int neg = 0;
  if (p[0] == '+' || p[0] == '-') {
    neg = p[0] == '-';
    i = 1;
  }
  if (len - i == 8 && memcmp(p + i, "Infinity", 8) == 0)
    return neg ? -INFINITY : INFINITY;
  /* StrDecimalLiteral: digits [. digits] | . digits, then [eE][+-]digits */
  size_t start = i, intd = 0, fracd = 0;
  while (i < len && p[i] >= '0' && p[i] <= '9')
    i++, intd++;
  if (i < len && p[i] == '.') {
    i++;
    while (i < len && p[i] >= '0' && p[i] <= '9')
      i++, fracd++;
  }
  if (intd + fracd == 0)
    return NAN;
  if (i < len && (p[i] == 'e' || p[i] == 'E')) {
    i++;
    if (i < len && (p[i] == '+' || p[i] == '-'))
      i++;
    size_t ed = 0;
    while (i < len && p[i] >= '0' && p[i] <= '9')
      i++, ed++;
    if (ed == 0)
      return NAN;
  }
  if (i != len)
    return NAN;
  char tmp[512];
  if (len >= sizeof tmp)
    return NAN; /* no literal that long is a sensible number; keeps a bound */
  memcpy(tmp, p, len);
  tmp[len] = 0;
  (void)start;
  return strtod(tmp, NULL);
}

static uint32_t rotl32(uint32_t x, int r) {
  return (x << r) | (x >> (32 - r));
}

uint32_t flags_murmur3_32(const void *key, size_t len, uint32_t seed) {
  const uint8_t *data = key;
  const size_t nblocks = len / 4;
  uint32_t h1 = seed;
  const uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
  for (size_t i = 0; i < nblocks; i++) {
    uint32_t k1 = (uint32_t)data[i * 4] | (uint32_t)data[i * 4 + 1] << 8 |
                  (uint32_t)data[i * 4 + 2] << 16 |
                  (uint32_t)data[i * 4 + 3] << 24;
    k1 *= c1;
    k1 = rotl32(k1, 15);
    k1 *= c2;
    h1 ^= k1;
    h1 = rotl32(h1, 13);
    h1 = h1 * 5 + 0xe6546b64;
  }
  const uint8_t *tail = data + nblocks * 4;
  uint32_t k1 = 0;
  switch (len & 3) {
  case 3:
    k1 ^= (uint32_t)tail[2] << 16;
    /* fall through */
  case 2:
    k1 ^= (uint32_t)tail[1] << 8;
    /* fall through */
  case 1:
    k1 ^= tail[0];
    k1 *= c1;
    k1 = rotl32(k1, 15);
    k1 *= c2;
    h1 ^= k1;
  }
  h1 ^= (uint32_t)len;
  h1 ^= h1 >> 16;
  h1 *= 0x85ebca6b;
  h1 ^= h1 >> 13;
  h1 *= 0xc2b2ae35;
  h1 ^= h1 >> 16;
  return h1;
}

#define SEMVER_MAX_LENGTH 256
#define MAX_SAFE 9007199254740991.0

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}
static int is_ldn(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         c == '-';
}

/* NUMERICIDENTIFIER: 0|[1-9]\d* ; returns chars consumed or 0. */
static size_t numeric_id(const char *s, size_t len, double *v) {
  if (len == 0 || !is_digit(s[0]))
    return 0;
  if (s[0] == '0') {
    *v = 0;
    return 1;
  }
  size_t i = 0;
  double x = 0;
  while (i < len && is_digit(s[i]))
    x = x * 10 + (s[i++] - '0');
  *v = x;
  return i;
}

static int semver_strict(const char *s, size_t len, struct flags_semver *o) {
  size_t i = 0;
  if (len > 0 && s[0] == 'v')
    i = 1;
  double *parts[3] = {&o->major, &o->minor, &o->patch};
  for (int k = 0; k < 3; k++) {
    size_t n = numeric_id(s + i, len - i, parts[k]);
    if (n == 0)
      return -1;
    i += n;
    if (*parts[k] > MAX_SAFE)
      return -1;
    if (k < 2) {
      if (i >= len || s[i] != '.')
        return -1;
      i++;
    }
  }
  o->npre = 0;
  if (i < len && s[i] == '-') {
    i++;
    for (;;) {
      size_t st = i;
      int all_digits = 1;
      while (i < len && is_ldn(s[i])) {
        if (!is_digit(s[i]))
          all_digits = 0;
        i++;
      }
      size_t n = i - st;
      if (n == 0)
        return -1;
      if (all_digits && n > 1 && s[st] == '0')
        return -1; /* numeric identifiers have no leading zeros */
      if (o->npre == FLAGS_SEMVER_MAX_PRE)
        return -1;
      o->pre[o->npre].s = s + st;
      o->pre[o->npre].len = n;
      o->pre[o->npre].numeric = all_digits;
      o->pre[o->npre].num = all_digits ? strtod(s + st, NULL) : 0;
      o->npre++;
      if (i < len && s[i] == '.') {
        i++;
        continue;
      }
      break;
    }
  }
  if (i < len && s[i] == '+') {
    i++;
    for (;;) {
      size_t st = i;
      while (i < len && is_ldn(s[i]))
        i++;
      if (i == st)
        return -1;
      if (i < len && s[i] == '.') {
        i++;
        continue;
      }
      break;
    }
  }
  return i == len ? 0 : -1;
}

int flags_semver_parse(const char *s, size_t len, struct flags_semver *out) {
  if (len > 0 && (s[0] == 'v' || s[0] == 'V'))
    s++, len--;
  if (len > SEMVER_MAX_LENGTH)
    return -1;
  /* node-semver trims the string before matching */
  const char *t = s;
  size_t tl = len;
  size_t w;
  while (tl && (w = js_space((const unsigned char *)t, tl)))
    t += w, tl -= w;
  while (tl && (w = js_space_back((const unsigned char *)t, tl)))
    tl -= w;
  if (semver_strict(t, tl, out) == 0)
    return 0;
  /* /^\d+(\.\d+)?$/ (untrimmed) -> semver.coerce(): N.M.0 */
  size_t i = 0, a = 0, b = 0;
  while (i < len && is_digit(s[i]))
    i++, a++;
  if (a == 0)
    return -1;
  if (i < len && s[i] == '.') {
    i++;
    while (i < len && is_digit(s[i]))
      i++, b++;
    if (b == 0)
      return -1;
  }
  if (i != len)
    return -1;
  /* coerce() takes runs of at most 16 digits, then re-parses strictly, so a
   * leading zero ("01") fails as it does in node-semver. */
  if (a > 16 || b > 16)
    return -1;
  if ((a > 1 && s[0] == '0') || (b > 1 && s[a + 1] == '0'))
    return -1;
  out->major = 0;
  for (size_t k = 0; k < a; k++)
    out->major = out->major * 10 + (s[k] - '0');
  out->minor = 0;
  for (size_t k = 0; k < b; k++)
    out->minor = out->minor * 10 + (s[a + 1 + k] - '0');
  out->patch = 0;
  out->npre = 0;
  if (out->major > MAX_SAFE || out->minor > MAX_SAFE)
    return -1;
  return 0;
}

static int cmpd(double a, double b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

int flags_semver_compare(const struct flags_semver *a,
                         const struct flags_semver *b) {
  int c = cmpd(a->major, b->major);
  if (!c)
    c = cmpd(a->minor, b->minor);
  if (!c)
    c = cmpd(a->patch, b->patch);
  if (c)
    return c;
  if (a->npre && !b->npre)
    return -1;
  if (!a->npre && b->npre)
    return 1;
  for (int i = 0;; i++) {
    if (i == a->npre && i == b->npre)
      return 0;
    if (i == b->npre)
      return 1;
    if (i == a->npre)
      return -1;
    const __typeof__(a->pre[0]) *x = &a->pre[i], *y = &b->pre[i];
    if (x->numeric && y->numeric) {
      c = cmpd(x->num, y->num);
    } else if (x->numeric) {
      c = -1;
    } else if (y->numeric) {
      c = 1;
    } else {
      size_t n = x->len < y->len ? x->len : y->len;
      c = memcmp(x->s, y->s, n);
      if (!c)
        c = cmpd((double)x->len, (double)y->len);
      c = c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    if (c)
      return c;
  }
}

/* profiles.h — environment profiles: Spring-style flat properties, their
 * YAML / .properties parsers and renderers, the merge order, ${...}
 * placeholders, environment-variable naming and overrides, the stored key and
 * value format, and the Spring Cloud Config "Environment" JSON.
 *
 * This header is the manual. docs/profiles.md describes the same rules for
 * people who implement the CLI and the HTTP endpoints on top of it.
 *
 * A pure library: no network, no clock, no global state. The only file access
 * is profiles_parse_file(), which reads the one path it is given.
 *
 * Conventions
 * - Functions return 0 or a negative code (keel_error.h): -ENOMEM,
 *   -EINVAL (a bad argument: name, app, profile), KEEL_EPARSE (a malformed
 *   document or stored value), KEEL_ELIMIT (a size/depth/count limit),
 *   KEEL_ENOTFOUND (an unresolved placeholder), -ELOOP (a placeholder cycle),
 *   -EILSEQ (a value a format cannot carry, e.g. invalid UTF-8 in JSON).
 * - Functions that take a `struct profiles_error *err` (may be NULL) fill it
 *   with a readable message when they fail; for parse errors the message is
 *   "file:line:column: reason" with 1-based line and column.
 * - Every string the library returns is malloc'd and owned by the caller
 *   (free()); every struct it fills is released by its *_free function.
 * - Values never hold a NUL byte (parsers refuse them), so every value is a
 *   C string and also carries its length.
 */
#ifndef KEEL_PROFILES_H
#define KEEL_PROFILES_H

#include <stddef.h>
#include <stdint.h>

/* ---- properties ------------------------------------------------------- */

/* The YAML type a value had when it was imported. Plain YAML scalars are
 * resolved with YAML 1.1 / SnakeYAML rules (what Spring uses), see
 * profiles_scalar_resolve(); quoted scalars and everything in a .properties
 * file are strings. */
enum profiles_type {
  PROFILES_STRING = 0,
  PROFILES_INTEGER,
  PROFILES_FLOAT,
  PROFILES_BOOLEAN,
  PROFILES_NULL,
};

/* "string", "integer", "float", "boolean", "null". */
const char *profiles_type_name(enum profiles_type t);

/* One property: a flattened name ("a.b.c", "servers[0]", "a[0][1]",
 * "a[1].data"), its value text and its type. For non-strings the text is
 * canonical: integers in decimal, booleans "true"/"false", null "" and
 * floats in the shortest form that reads back to the same double (".inf",
 * "-.inf", ".nan" for the special values). */
struct profiles_prop {
  char *name;
  char *value;
  size_t value_len;
  enum profiles_type type;
};

/* An owned list of properties. Names are unique in every list the library
 * returns, and such lists are sorted in natural order (profiles_name_cmp). */
struct profiles_list {
  struct profiles_prop *items;
  size_t count;
  size_t cap;
};

void profiles_list_init(struct profiles_list *l);
void profiles_list_free(struct profiles_list *l);

/* Appends a copy of name and value (value_len bytes; it must not hold a NUL).
 * Does not check for duplicates: call profiles_list_sort() after a series of
 * appends. Errors: -ENOMEM, -EINVAL (NUL in value, NULL name). */
int profiles_list_add(struct profiles_list *l, const char *name,
                      const char *value, size_t value_len,
                      enum profiles_type type);

/* Sorts by profiles_name_cmp and removes duplicate names; of duplicates the
 * one appended last survives (later definitions win, as in a .properties
 * file). */
void profiles_list_sort(struct profiles_list *l);

/* The property with this name in a sorted list, or NULL. */
const struct profiles_prop *profiles_list_find(const struct profiles_list *l,
                                               const char *name);

/* Deep copy. Errors: -ENOMEM (dst is then empty). */
int profiles_list_copy(struct profiles_list *dst,
                       const struct profiles_list *src);

/* 1 when both sorted lists hold the same names, values and types. */
int profiles_list_equal(const struct profiles_list *a,
                        const struct profiles_list *b);

/* Natural order of property names: byte order, except that the digits
 * inside [..] compare as numbers, so "a[2]" < "a[10]", and "a" < "a.b" <
 * "a[0]". Returns <0, 0, >0. */
int profiles_name_cmp(const char *a, const char *b);

/* Resolves a plain (unquoted) YAML scalar the way SnakeYAML does (YAML 1.1):
 *   null:    "", "~", "null", "Null", "NULL"
 *   boolean: true/false, yes/no, on/off in lower, Capitalised or UPPER case
 *   integer: [-+]?(0|[1-9][0-9_]*), 0x.. hex, 0b.. binary, 0[0-7_]+ octal,
 *            in int64 range (larger ones stay strings)
 *   float:   [-+]?digits with a '.' and/or an exponent, ".5", ".inf",
 *            "-.inf", ".nan" (and their Capitalised/UPPER forms)
 *   string:  everything else (also sexagesimal "12:30", which YAML 1.1 would
 *            read as a number — on purpose, times should stay text).
 * Stores the type in *type and the canonical text (malloc'd) in *canonical.
 * Errors: -ENOMEM. */
int profiles_scalar_resolve(const char *text, size_t len,
                            enum profiles_type *type, char **canonical);

/* ---- limits and errors ------------------------------------------------ */

struct profiles_limits {
  size_t max_doc_bytes;  /* one input document/file (default 4 MiB) */
  size_t max_depth;      /* nesting of maps/lists (default 64) */
  size_t max_props;      /* properties per profile (default 10000) */
  size_t max_name_len;   /* property name bytes (default 1024) */
  size_t max_value_len;  /* value bytes, also after placeholders (64 KiB) */
  size_t max_ref_depth;  /* placeholder nesting/reference chain (32) */
  size_t max_expansions; /* placeholder expansions per value (10000) */
};

/* The defaults above. */
void profiles_limits_default(struct profiles_limits *lim);

struct profiles_error {
  int line;      /* 1-based, 0 when the error has no position */
  int column;    /* 1-based, 0 when the error has no position */
  char msg[512]; /* complete message, "file:line:column: reason" when
                    positioned */
};

/* ---- parsing ---------------------------------------------------------- */

/* The properties one import produced, per profile. */
struct profiles_doc {
  char *profile;
  struct profiles_list props; /* sorted, unique names */
};

struct profiles_docs {
  struct profiles_doc *docs;
  size_t count;
};

void profiles_docs_init(struct profiles_docs *d);
void profiles_docs_free(struct profiles_docs *d);

/* The document for a profile, or NULL. */
const struct profiles_doc *profiles_docs_find(const struct profiles_docs *d,
                                              const char *profile);

/* Parses YAML from buf (len bytes; need not be NUL-terminated) and adds its
 * properties to *out. `filename` only names the input in messages.
 *
 * Each document of a multi-document stream goes to `base_profile`, unless
 * it sets `spring.config.activate.on-profile` (or the legacy
 * `spring.profiles`): then it goes to each profile named there (a name, a
 * comma-separated list, or a YAML list; profile expressions with ! & | ( )
 * are refused). That property itself is not stored. When several documents
 * (or several calls, e.g. one per file) feed the same profile, the later one
 * wins the way profiles_merge() decides, lists replaced whole.
 *
 * Flattening follows Spring's YamlProcessor: map keys join with '.', list
 * items get "[i]", a key that starts with '[' joins without a dot, an empty
 * list becomes the empty string, an empty map produces nothing, null becomes
 * type null. Anchors and aliases work, so do `<<` merge keys. Duplicate keys
 * in one map, non-scalar keys and a non-map document root are errors.
 *
 * `base_profile` always gets a document, empty when every document of the
 * input names other profiles: importing a file into a profile replaces it.
 *
 * On error *out is left as it was before the call (nothing half-added), err
 * says "filename:line:column: reason". Errors: KEEL_EPARSE, KEEL_ELIMIT,
 * -EINVAL (bad base_profile or target profile name), -ENOMEM. */
int profiles_parse_yaml(const char *buf, size_t len, const char *filename,
                        const char *base_profile,
                        const struct profiles_limits *lim,
                        struct profiles_docs *out, struct profiles_error *err);

/* Same for a Java .properties file: `key=value`, `key: value`, `key value`,
 * '\' line continuations (leading blanks of the next line dropped), comment
 * lines starting with '#' or '!', the escapes \t \n \r \f \uXXXX (surrogate
 * pairs combined) and \<any> = <any>. Input must be UTF-8. Every value is a
 * string. A line "#---" (or "!---") starts a new document, as in Spring Boot,
 * so documents can carry spring.config.activate.on-profile too. Duplicate
 * keys: the last wins. Same errors as profiles_parse_yaml(). */
int profiles_parse_properties(const char *buf, size_t len, const char *filename,
                              const char *base_profile,
                              const struct profiles_limits *lim,
                              struct profiles_docs *out,
                              struct profiles_error *err);

/* Reads `path` (at most lim->max_doc_bytes) and parses it as .properties when
 * its name ends in ".properties", otherwise as YAML. Errors: those of the
 * parsers, and -errno from open/read. */
int profiles_parse_file(const char *path, const char *base_profile,
                        const struct profiles_limits *lim,
                        struct profiles_docs *out, struct profiles_error *err);

/* ---- rendering -------------------------------------------------------- */

/* Unflattening (for YAML and JSON): names are split into map keys ('.') and
 * list indices ("[n]"). A node whose children are exactly the indices
 * 0..n-1 becomes a list; any other node a map, whose bracketed children are
 * written as keys "[n]" (Spring's flattening joins those back without a
 * dot). A property that cannot sit in the tree (its path runs through a
 * leaf, or its name is malformed) is written as a top-level key holding its
 * whole name, which flattens back to the same name. So for any list L:
 * parse(render(L)) == L.
 *
 * All renderers take a sorted, unique list, return a malloc'd NUL-terminated
 * text in *out (and its length in *out_len when not NULL). */

/* YAML (one document). Strings that would read back as another type are
 * quoted. Errors: -EILSEQ (a value or name is not UTF-8), -ENOMEM. */
int profiles_render_yaml(const struct profiles_list *l, char **out,
                         size_t *out_len, struct profiles_error *err);

/* Nested JSON with types kept (integers as numbers, floats as numbers except
 * the non-finite ones, which JSON cannot carry and are written as the
 * strings ".inf", "-.inf", ".nan"). `indent` 0 = compact. Errors: -EILSEQ,
 * -ENOMEM. */
int profiles_render_json(const struct profiles_list *l, int indent, char **out,
                         size_t *out_len, struct profiles_error *err);

/* Java .properties, one "name=value" per line, escaped as
 * java.util.Properties.store does (non-ASCII as \uXXXX). Errors: -EILSEQ,
 * -ENOMEM. */
int profiles_render_properties(const struct profiles_list *l, char **out,
                               size_t *out_len, struct profiles_error *err);

/* ---- environment variables -------------------------------------------- */

/* Spring's environment-variable name for a property: upper case, '.' and
 * '[' ']' become '_', '-' is removed, runs of '_' collapse to one, and a
 * trailing '_' is dropped: "spring.datasource.url" -> SPRING_DATASOURCE_URL,
 * "my.service[0].other" -> MY_SERVICE_0_OTHER, "a[0][1]" -> A_0_1.
 * Returns a malloc'd name, or NULL when the result would not be a valid
 * POSIX shell name ([A-Z_][A-Z0-9_]*, e.g. a name with '/' or non-ASCII) or
 * on allocation failure. */
char *profiles_env_name(const char *prop_name);

struct profiles_env_entry {
  char *name;       /* environment variable name */
  char *value;      /* the property's value text */
  const char *prop; /* the property name (points into the list) */
};

/* Skip properties whose env name is not a valid shell name instead of
 * failing. */
#define PROFILES_ENV_SKIP_INVALID 0x1

/* The variables for every property of l, in list order (a null property
 * gives the empty string). Errors: -EINVAL when a name has no valid env name
 * (unless PROFILES_ENV_SKIP_INVALID), or when two properties map to the same
 * variable (err names both), -ENOMEM. */
int profiles_env_entries(const struct profiles_list *l, unsigned flags,
                         struct profiles_env_entry **out, size_t *n,
                         struct profiles_error *err);
void profiles_env_entries_free(struct profiles_env_entry *e, size_t n);

/* Shell text "export NAME='value'\n" per variable. The value is single-quoted
 * with ' written as '\'' so that `eval "$(...)"` in any POSIX shell sets
 * exactly the value, whatever bytes it holds (quotes, newlines, $, `,
 * backslashes, non-UTF-8). Errors: those of profiles_env_entries(). */
int profiles_render_env(const struct profiles_list *l, unsigned flags,
                        char **out, size_t *out_len,
                        struct profiles_error *err);

/* Relaxed binding: every property whose env name (profiles_env_name) is set
 * in envp ("NAME=VALUE" strings; n entries, or up to a NULL entry when n is
 * (size_t)-1) takes that variable's value. The type stays the property's
 * type when the text resolves to it as a plain scalar (SERVER_PORT=9090 on
 * an integer stays an integer), else it becomes string. Only existing
 * properties are overridden. Errors: KEEL_ELIMIT (value too long), -ENOMEM.
 * On error l is unchanged. */
int profiles_apply_env(struct profiles_list *l, const char *const *envp,
                       size_t n, const struct profiles_limits *lim,
                       struct profiles_error *err);

/* ---- placeholders ----------------------------------------------------- */

/* Leave an unresolvable placeholder as written instead of failing. */
#define PROFILES_IGNORE_UNRESOLVABLE 0x1

/* Resolves ${name} and ${name:default} in every string value of l, in
 * place. A name is looked up as a property of l, then as an environment
 * variable with that exact name in envp, then as the variable
 * profiles_env_name(name) (so ${db.url} finds DB_URL). The value found is
 * itself resolved (recursively); so are defaults and names
 * (${${which}.url}). "\${" stands for a literal "${" and is unescaped. A
 * default runs to the matching '}' (braces nest) and starts after the first
 * ':' at nesting level 0. A resolved value keeps its property's type (a
 * string stays a string even when it now reads like a number).
 *
 * Errors (err says which property and placeholder): -ELOOP for a cycle, the
 * message naming the chain "a -> b -> a"; KEEL_ENOTFOUND for an unresolved
 * placeholder (unless PROFILES_IGNORE_UNRESOLVABLE); KEEL_ELIMIT when the
 * chain is deeper than lim->max_ref_depth, a value grows past
 * lim->max_value_len or needs more than lim->max_expansions expansions.
 * A "${" without its closing '}' is not a placeholder and stays as written
 * (as in Spring). On error l is unchanged. */
int profiles_resolve(struct profiles_list *l, const char *const *envp, size_t n,
                     unsigned flags, const struct profiles_limits *lim,
                     struct profiles_error *err);

/* ---- merge order ------------------------------------------------------ */

/* The shared app every app inherits from, and the base profile. */
#define PROFILES_SHARED_APP "application"
#define PROFILES_DEFAULT_PROFILE "default"

/* One source to read: properties of /config/<app>/<profile>/. */
struct profiles_source_id {
  char *app;
  char *profile;
  char *name; /* "keel:<app>-<profile>", or "keel:<app>" for the default
                 profile: Spring clients recognise a profile-specific source
                 by "-<profile>" in its name */
};

/* The sources to read for `app` and the comma-separated `profiles` (empty or
 * NULL means "default"), most specific first. For "p1,p2" (the last wins):
 *   app-p2, application-p2, app-p1, application-p1, app, application
 * Duplicates are dropped (keeping the most specific place), so app
 * "application" or a listed "default" give no repeats. Profile names are
 * trimmed of blanks. Errors: -EINVAL (bad app or profile name: see
 * profiles_key_encode), KEEL_ELIMIT (more than 64 profiles), -ENOMEM. */
int profiles_merge_order(const char *app, const char *profiles,
                         struct profiles_source_id **out, size_t *n);
void profiles_source_ids_free(struct profiles_source_id *s, size_t n);

/* Merges lists given most specific first (srcs[0] wins). A name is taken
 * from the first source that has it; a list is replaced whole: once a source
 * defines any property under a list root (the part of a name before its
 * first '['), or a scalar at that root, less specific sources contribute
 * nothing under that root. So servers[0..n] come from one source only.
 * out must be initialised and empty; it comes back sorted. Errors: -ENOMEM,
 * KEEL_ELIMIT (more than lim->max_props results; lim may be NULL). */
int profiles_merge(const struct profiles_list *const *srcs, size_t n,
                   const struct profiles_limits *lim,
                   struct profiles_list *out);

/* ---- stored keys and values ------------------------------------------- */

#define PROFILES_KEY_ROOT "/config/"

/* "/config/<app>/<profile>/<property>" (malloc'd). App and profile: 1..128
 * bytes, no '/', ',', NUL, control characters or blanks, not "." or "..".
 * Property: 1..max_name_len (1024) bytes, no NUL or control characters.
 * Errors: -EINVAL, -ENOMEM. prop may be NULL: then the result is the prefix
 * "/config/<app>/<profile>/" (for a range read of the whole profile). */
int profiles_key_encode(const char *app, const char *profile, const char *prop,
                        char **out);

/* Splits a key (len bytes) back into malloc'd app, profile and property.
 * Errors: -EINVAL when the key is not under /config/ with three parts, or a
 * part is not valid as above; -ENOMEM. */
int profiles_key_decode(const char *key, size_t len, char **app, char **profile,
                        char **prop);

/* The stored value: one type tag byte, ':', then the text.
 *   s:<text>  string        i:<decimal>  integer   f:<float>  float
 *   b:true / b:false        n:           null
 * Encode returns a malloc'd buffer of *out_len bytes. */
int profiles_value_encode(const struct profiles_prop *p, char **out,
                          size_t *out_len);

/* Decodes a stored value (len bytes) into *type and a malloc'd NUL-terminated
 * *text (*text_len bytes). Errors: KEEL_EPARSE (no/unknown tag, a NUL byte,
 * text that is not canonical for its type), -ENOMEM. */
int profiles_value_decode(const char *buf, size_t len, enum profiles_type *type,
                          char **text, size_t *text_len);

/* Decodes one stored key/value pair (as a range read returns them) and
 * appends the property to l. When app / profile are not NULL the key must
 * belong to them. Call profiles_list_sort() after the last one.
 * Errors (err names the key): -EINVAL (not a profile key, or one of another
 * app or profile), KEEL_EPARSE (bad stored value), -ENOMEM. */
int profiles_list_add_stored(struct profiles_list *l, const char *app,
                             const char *profile, const char *key,
                             size_t key_len, const char *val, size_t val_len,
                             struct profiles_error *err);

/* ---- diff ------------------------------------------------------------- */

enum profiles_change_op {
  PROFILES_ADDED,
  PROFILES_REMOVED,
  PROFILES_CHANGED,
};

struct profiles_change {
  enum profiles_change_op op;
  const struct profiles_prop *from; /* NULL when added (points into `from`) */
  const struct profiles_prop *to;   /* NULL when removed (points into `to`) */
};

/* The changes that turn sorted list `from` into sorted list `to`, in name
 * order; a change of value or of type counts. The puts (added, changed) and
 * deletes (removed) of this diff replace a stored profile by `to`. *out is
 * malloc'd (NULL when *n == 0) and points into both lists, which must
 * outlive it. Errors: -ENOMEM. */
int profiles_diff(const struct profiles_list *from,
                  const struct profiles_list *to, struct profiles_change **out,
                  size_t *n);

/* The write for one change of a diff of app/profile: *key (malloc'd) is
 * always set; for an addition or change *val (malloc'd, *val_len bytes) is
 * the stored value to put, for a removal *val is NULL (delete *key).
 * Errors: -EINVAL (bad app, profile or property name), -ENOMEM. */
int profiles_change_encode(const char *app, const char *profile,
                           const struct profiles_change *c, char **key,
                           char **val, size_t *val_len);

/* ---- Spring Cloud Config Environment ---------------------------------- */

/* One property source of an Environment, most specific first. */
struct profiles_named_source {
  const char *name;                  /* e.g. "keel:billing-prod" */
  const char *key_prefix;            /* "/config/billing/prod/", for v2
                                        origins; may be NULL */
  const struct profiles_list *props; /* sorted */
};

/* Spring Cloud Config Server's Environment JSON:
 *   {"name": app, "profiles": [..], "label": label|null,
 *    "version": "<revision>", "state": null,
 *    "propertySources": [{"name": .., "source": {"a.b": value, ..}}, ..]}
 * profiles is the comma-separated list as requested ("default" when empty).
 * Values keep their types. With v2 (media type
 * application/vnd.spring-cloud.config-server.v2+json) every value is
 * {"value": v, "origin": "<key_prefix><name>"} (no origin field when
 * key_prefix is NULL). Sources with no properties are still listed.
 * Errors: -EILSEQ (non-UTF-8 text), -ENOMEM. */
int profiles_render_environment(const char *app, const char *profiles,
                                const char *label, int64_t revision,
                                const struct profiles_named_source *srcs,
                                size_t n, int v2, char **out, size_t *out_len,
                                struct profiles_error *err);

#endif

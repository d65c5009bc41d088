/* keel_error.h — error codes shared by every keel module.
 *
 * Convention (libuv's): a function returns 0 on success or a negative code.
 * Codes from errno pass through as -errno (-ENOMEM, -EIO, -EINVAL ...); the
 * codes below are keel's own and live in a range no errno, libuv or LMDB
 * code uses (-5000 and down). LMDB and libuv codes are converted where they
 * enter keel (store/, server/), so a caller only ever sees these two kinds.
 *
 * keel_strerror() names any of them. Where etcd has a message for the same
 * condition, the text is etcd's, so that users and client libraries see what
 * they are used to.
 */
#ifndef KEEL_ERROR_H
#define KEEL_ERROR_H

/* X(name, value, message) */
#define KEEL_ERROR_MAP(X)                                                      \
  X(KEEL_ECOMPACTED, -5001, "mvcc: required revision has been compacted")      \
  X(KEEL_EFUTUREREV, -5002, "mvcc: required revision is a future revision")    \
  X(KEEL_ENOSPACE, -5003, "mvcc: database space exceeded")                     \
  X(KEEL_ELEASENOTFOUND, -5004, "requested lease not found")                   \
  X(KEEL_ELEASEEXISTS, -5005, "lease already exists")                          \
  X(KEEL_ENOTLEADER, -5006, "not leader")                                      \
  X(KEEL_ENOLEADER, -5007, "no leader")                                        \
  X(KEEL_ETOOLARGE, -5008, "request is too large")                             \
  X(KEEL_EDUPKEY, -5009, "duplicate key given in txn request")                 \
  X(KEEL_ECORRUPT, -5010, "data is corrupt")                                   \
  X(KEEL_ETIMEOUT, -5011, "request timed out")                                 \
  X(KEEL_ESTOPPED, -5012, "server stopped")                                    \
  X(KEEL_EDROPPED, -5013, "proposal dropped")                                  \
  X(KEEL_ENOTFOUND, -5014, "not found")                                        \
  X(KEEL_EBADMSG, -5015, "malformed message")                                  \
  X(KEEL_ELIMIT, -5016, "limit exceeded")                                      \
  X(KEEL_EUNAVAILABLE, -5017, "service unavailable")                           \
  X(KEEL_EBUSY, -5018, "busy: try again")                                      \
  X(KEEL_EEXIST, -5019, "already exists")                                      \
  X(KEEL_ECONFIG, -5020, "invalid configuration")                              \
  X(KEEL_EVERSION, -5021, "unsupported version")                               \
  X(KEEL_EPERM, -5022, "permission denied")                                    \
  X(KEEL_EAUTH, -5023, "authentication failed")                                \
  X(KEEL_ECANCELED, -5024, "canceled")                                         \
  X(KEEL_EUNKNOWN, -5025,                                                      \
    "outcome unknown: the request may or may not have "                        \
    "been applied")                                                            \
  X(KEEL_ESTEPPEDDOWN, -5026, "leader stepped down")                           \
  X(KEEL_EMEMBER, -5027, "invalid membership change")                          \
  X(KEEL_ETOOMANYOPS, -5028, "too many operations in txn request")             \
  X(KEEL_EINVALIDFLAG, -5029, "invalid feature flag definition")               \
  X(KEEL_EPARSE, -5030, "parse error")                                         \
  X(KEEL_EEMPTYKEY, -5031, "key is not provided")                              \
  X(KEEL_EKEYNOTFOUND, -5032, "key not found")                                 \
  X(KEEL_EVALUEPROVIDED, -5033, "value is provided")                           \
  X(KEEL_ELEASEPROVIDED, -5034, "lease is provided")                           \
  X(KEEL_ELEASETTLTOOLARGE, -5035, "too large lease TTL")                      \
  X(KEEL_ELEARNER, -5086, "rpc not supported for learner")

enum keel_error {
#define KEEL_ERROR_ENUM(name, value, msg) name = value,
  KEEL_ERROR_MAP(KEEL_ERROR_ENUM)
#undef KEEL_ERROR_ENUM
};

/* A readable message for any code keel returns: its own codes, -errno, or
 * 0 ("ok"). Never returns NULL; the string is static. */
const char *keel_strerror(int code);

/* The symbolic name of a code ("KEEL_ECOMPACTED", "EIO"), for logs. */
const char *keel_err_name(int code);

#endif

/* tb.h — builders of etcd request messages for the apply tests. Every
 * builder allocates from one list freed by tb_free_all(). */
#ifndef KEEL_TEST_TB_H
#define KEEL_TEST_TB_H

#include <stdlib.h>
#include <string.h>

#include "rpc.pb-c.h"

struct tb_node {
  struct tb_node *next;
  max_align_t data[];
};
static struct tb_node *tb_list;

static inline void *tb_alloc(size_t n) {
  struct tb_node *x = calloc(1, sizeof(*x) + n);
  x->next = tb_list;
  tb_list = x;
  return x->data;
}
static inline void tb_free_all(void) {
  while (tb_list) {
    struct tb_node *n = tb_list->next;
    free(tb_list);
    tb_list = n;
  }
}

static inline ProtobufCBinaryData B(const char *s) {
  return (ProtobufCBinaryData){s ? strlen(s) : 0, (uint8_t *)s};
}

static inline Etcdserverpb__PutRequest *mk_put(const char *k, const char *v) {
  Etcdserverpb__PutRequest *p = tb_alloc(sizeof(*p));
  etcdserverpb__put_request__init(p);
  p->key = B(k);
  p->value = B(v);
  return p;
}
static inline Etcdserverpb__RangeRequest *mk_range(const char *k,
                                                   const char *end) {
  Etcdserverpb__RangeRequest *r = tb_alloc(sizeof(*r));
  etcdserverpb__range_request__init(r);
  r->key = B(k);
  r->range_end = B(end);
  return r;
}
static inline Etcdserverpb__DeleteRangeRequest *
mk_del(const char *k, const char *end, bool prev) {
  Etcdserverpb__DeleteRangeRequest *r = tb_alloc(sizeof(*r));
  etcdserverpb__delete_range_request__init(r);
  r->key = B(k);
  r->range_end = B(end);
  r->prev_kv = prev;
  return r;
}
/* "\0" as a range end: one zero byte */
static const char ZERO[] = "";
static inline ProtobufCBinaryData B0(void) {
  return (ProtobufCBinaryData){1, (uint8_t *)ZERO};
}

static inline Etcdserverpb__RequestOp *op_put(const char *k, const char *v) {
  Etcdserverpb__RequestOp *o = tb_alloc(sizeof(*o));
  etcdserverpb__request_op__init(o);
  o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  o->request_put = mk_put(k, v);
  return o;
}
static inline Etcdserverpb__RequestOp *op_get(const char *k, const char *end) {
  Etcdserverpb__RequestOp *o = tb_alloc(sizeof(*o));
  etcdserverpb__request_op__init(o);
  o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
  o->request_range = mk_range(k, end);
  return o;
}
static inline Etcdserverpb__RequestOp *op_del(const char *k, const char *end,
                                              bool prev) {
  Etcdserverpb__RequestOp *o = tb_alloc(sizeof(*o));
  etcdserverpb__request_op__init(o);
  o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
  o->request_delete_range = mk_del(k, end, prev);
  return o;
}
static inline Etcdserverpb__RequestOp *op_txn(Etcdserverpb__TxnRequest *t) {
  Etcdserverpb__RequestOp *o = tb_alloc(sizeof(*o));
  etcdserverpb__request_op__init(o);
  o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
  o->request_txn = t;
  return o;
}
static inline Etcdserverpb__RequestOp *op_empty(void) {
  Etcdserverpb__RequestOp *o = tb_alloc(sizeof(*o));
  etcdserverpb__request_op__init(o);
  return o;
}

/* A compare on a number target (VERSION, CREATE, MOD, LEASE). */
static inline Etcdserverpb__Compare *cmp_num(const char *k, int target,
                                             int result, int64_t n) {
  Etcdserverpb__Compare *c = tb_alloc(sizeof(*c));
  etcdserverpb__compare__init(c);
  c->key = B(k);
  c->target = (Etcdserverpb__Compare__CompareTarget)target;
  c->result = (Etcdserverpb__Compare__CompareResult)result;
  static const int cases[] = {
      ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION,
      ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION,
      ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION,
      ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE,
      ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE};
  c->target_union_case = (Etcdserverpb__Compare__TargetUnionCase)cases[target];
  switch (target) {
  case 0:
    c->version = n;
    break;
  case 1:
    c->create_revision = n;
    break;
  case 2:
    c->mod_revision = n;
    break;
  default:
    c->lease = n;
  }
  return c;
}
static inline Etcdserverpb__Compare *cmp_val(const char *k, int result,
                                             const char *v) {
  Etcdserverpb__Compare *c = tb_alloc(sizeof(*c));
  etcdserverpb__compare__init(c);
  c->key = B(k);
  c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
  c->result = (Etcdserverpb__Compare__CompareResult)result;
  c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
  c->value = B(v);
  return c;
}

static inline Etcdserverpb__TxnRequest *
mk_txn(Etcdserverpb__Compare **c, size_t nc, Etcdserverpb__RequestOp **s,
       size_t ns, Etcdserverpb__RequestOp **f, size_t nf) {
  Etcdserverpb__TxnRequest *t = tb_alloc(sizeof(*t));
  etcdserverpb__txn_request__init(t);
  t->compare = tb_alloc((nc + 1) * sizeof(*c));
  if (nc)
    memcpy(t->compare, c, nc * sizeof(*c));
  t->n_compare = nc;
  t->success = tb_alloc((ns + 1) * sizeof(*s));
  if (ns)
    memcpy(t->success, s, ns * sizeof(*s));
  t->n_success = ns;
  t->failure = tb_alloc((nf + 1) * sizeof(*f));
  if (nf)
    memcpy(t->failure, f, nf * sizeof(*f));
  t->n_failure = nf;
  return t;
}
#define CMPS(...)                                                              \
  (Etcdserverpb__Compare *[]){__VA_ARGS__},                                    \
      sizeof((Etcdserverpb__Compare *[]){__VA_ARGS__}) /                       \
          sizeof(Etcdserverpb__Compare *)
#define OPS(...)                                                               \
  (Etcdserverpb__RequestOp *[]){__VA_ARGS__},                                  \
      sizeof((Etcdserverpb__RequestOp *[]){__VA_ARGS__}) /                     \
          sizeof(Etcdserverpb__RequestOp *)
#define NONE_C NULL, 0
#define NONE_O NULL, 0

#endif

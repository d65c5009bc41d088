/* store_event.h — a key-value pair and a change event, as the store produces
 * them and the watch hub delivers them.
 *
 * This is the seam between the MVCC store (which writes events into history
 * and reads them back) and the watch hub (which matches them to watchers):
 * both speak only these structs. Field meanings are etcd's mvccpb.KeyValue
 * and mvccpb.Event.
 *
 * Ownership: a store_kv points at bytes it does not own unless a function
 * says otherwise; events handed to the hub are copied by the hub if it keeps
 * them.
 */
#ifndef KEEL_STORE_EVENT_H
#define KEEL_STORE_EVENT_H

#include <stddef.h>
#include <stdint.h>

struct store_kv {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
  int64_t create_revision; /* revision of the put that created the key */
  int64_t mod_revision;    /* revision of the last change */
  int64_t version;         /* puts since creation; 0 after delete */
  int64_t lease;           /* attached lease id, 0 for none */
};

enum store_event_type {
  STORE_EVENT_PUT = 0,    /* same values as mvccpb.Event.EventType */
  STORE_EVENT_DELETE = 1, /* kv holds the key and mod_revision only */
};

struct store_event {
  enum store_event_type type;
  struct store_kv kv;
  struct store_kv prev_kv; /* the key's previous state; has_prev says if set */
  int has_prev;
};

#endif

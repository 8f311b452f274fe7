/*
 * store_internal.h — what store_lmdb.c (objects, collections, schemas)
 * shares with store_sync.c (the sync state of store.h), both parts of one
 * store.  Private to those two files.
 *
 * A public call is one store_call: store_call_begin, steps that each
 * return 0 or a negative errno (recording a message on failure), then
 * store_call_finish, which commits on 0 and aborts otherwise.
 */
#ifndef REALMFS_STORE_INTERNAL_H
#define REALMFS_STORE_INTERNAL_H

#include "realmfs/store.h"

#include "lmdb_support.h"

#include <lmdb.h>

struct store {
    MDB_env *environment;
    MDB_dbi collections;
    MDB_dbi objects;
    MDB_dbi schemas;
    MDB_dbi meta;
    bool read_only;
    size_t max_key_size;
    /* Sync state, opened only when synced (store_sync.c says what each
     * holds). */
    bool synced;
    MDB_dbi mirror;
    MDB_dbi outbox;
    MDB_dbi held_deletes;
    MDB_dbi outbox_index;
    MDB_dbi subscriptions;
    MDB_dbi staged_downloads;
    MDB_dbi read_only_objects;
};

/* What a public function is doing: its error messages name the operation
 * and the collection, and every step works in the one transaction the call
 * runs in. */
typedef struct store_call {
    lmdb_call lmdb;
    store *store;
} store_call;

enum store_access { STORE_READ, STORE_WRITE };
enum store_scope { STORE_WHOLE, STORE_ONE_COLLECTION };

/* collection is NULL when the call names none. */
store_call store_call_new(store *store, const char *operation, const char *collection);

/* Validates what every call shares (the collection name with
 * STORE_ONE_COLLECTION, a writable store with STORE_WRITE) and begins the
 * transaction; store_call_finish must follow whenever this succeeds. */
int store_call_begin(store_call *call, enum store_access access, enum store_scope scope);
int store_call_finish(store_call *call, int result);

/* The object's text in the LMDB map (valid until the transaction ends),
 * or 0 with *text NULL when there is no such object. */
int store_find_object_text(const store_call *call, const lmdb_object_key *key,
                           const char **text, size_t *size);

/* The text of an object record read from the objects database. */
int store_object_record_text(const lmdb_call *call, const MDB_val *value, const char **text,
                             size_t *size);

/* Write an object record at key with the given version. */
int store_write_object_record(const store_call *call, const lmdb_object_key *key,
                              uint64_t version, const char *text, size_t size,
                              int64_t modified_ns, store_object_info *info);

/* Delete the record at key: -ENOENT with a message when there is none. */
int store_delete_object_record(const store_call *call, const lmdb_object_key *key);

/* The next value of the store-wide version counter. */
int store_take_next_version(const store_call *call, uint64_t *version);

/* Create the collection named by key's prefix unless it exists. */
int store_ensure_collection(const store_call *call, const char *collection);

int store_current_time_ns(const store_call *call, int64_t *nanoseconds);

/* ---- store_sync.c ---------------------------------------------------- */

/* Opens (creating them unless read-only) the sync databases when options
 * ask for sync or the store was synced before; sets store->synced.
 * upgrading: the store is being upgraded from format 1 (store_lmdb.c). */
int store_sync_open(const store_call *call, bool requested, bool upgrading);

/* One object a write changes: its visible text before and after (NULL:
 * absent). */
typedef struct store_object_change {
    const json_t *id;
    const char *old_text;
    size_t old_size;
    const char *new_text;
    size_t new_size;
} store_object_change;

/*
 * Queue one changeset holding the diffs of the changes, in order; nothing
 * when they change no field.  held: the changeset is one delete to hold
 * (store_delete_object_held).  Every object write of a synced store calls
 * this in its transaction, before the object records change.
 */
int store_sync_queue_changes(const store_call *call, const store_object_change *changes,
                             size_t count, bool held);

#endif

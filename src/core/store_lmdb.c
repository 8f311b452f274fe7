/*
 * store_lmdb.c — the object store of store.h on LMDB.
 *
 * One LMDB environment per data directory holds four named databases, and
 * six more for the sync state of a synced store (store_sync.c):
 *
 *   collections  collection name                  -> collection_record (with
 *                                                     its object count)
 *   objects      object key (lmdb_support.h)      -> object_header, then text
 *   schemas      collection name                  -> schema text
 *   meta         "format", "version", "sync.*"    -> uint64_t (or text)
 *
 * Object keys order as store.h documents (lmdb_support.h says how).
 * Numbers inside values are stored in native byte order: LMDB files are
 * not portable across architectures anyway.
 */
#include "store_internal.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    DATABASE_COUNT = 11, /* 4 here, 7 in store_sync.c */
};

#define DEFAULT_MAP_SIZE (UINT64_C(64) << 30)
/* Format 2 added object_count to collection records, and to synced
 * stores the outbox index and staged downloads kept as documents; a store
 * in format 1 is upgraded when opened for writing (upgrade_format). */
#define FORMAT_VERSION UINT64_C(2)
#define FORMAT_WITHOUT_COUNTS UINT64_C(1)
#define META_FORMAT "format"
#define META_VERSION "version"

/* The value stored for each collection.  object_count changes in the
 * transaction of every object write, so counting costs no walk. */
typedef struct collection_record {
    int64_t created_ns;
    uint64_t object_count;
} collection_record;

/* The fixed start of every object value; the canonical text follows. */
typedef struct object_header {
    uint64_t version;
    int64_t modified_ns;
} object_header;

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static _Thread_local lmdb_error_message last_error;

const char *store_last_error(void)
{
    return last_error.text;
}

store_call store_call_new(store *store, const char *operation, const char *collection)
{
    return (store_call){
        .lmdb = { .last_error = &last_error, .operation = operation, .collection = collection },
        .store = store,
    };
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

int store_call_begin(store_call *call, enum store_access access, enum store_scope scope)
{
    if (scope == STORE_ONE_COLLECTION) {
        int result = lmdb_check_collection_name(&call->lmdb, call->lmdb.collection);
        if (result != 0)
            return result;
    }
    if (access == STORE_WRITE && call->store->read_only)
        return lmdb_fail(&call->lmdb, -EROFS, "the store is open read-only");
    return lmdb_call_begin(&call->lmdb, call->store->environment, access == STORE_WRITE);
}

int store_call_finish(store_call *call, int result)
{
    return lmdb_call_finish(&call->lmdb, result);
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */

static int object_key_build(const store_call *call, const json_t *id, lmdb_object_key *key)
{
    return lmdb_object_key_build(&call->lmdb, call->lmdb.collection, id,
                                 call->store->max_key_size, key);
}

/* ------------------------------------------------------------------ */
/* Records                                                             */

static int read_object_record(const lmdb_call *call, const MDB_val *value,
                              store_object_info *info, const char **text)
{
    object_header header;
    if (value->mv_size < sizeof header)
        return lmdb_fail(call, -EIO, "corrupt object record (%zu bytes)", value->mv_size);
    memcpy(&header, value->mv_data, sizeof header);
    info->size = value->mv_size - sizeof header;
    info->modified_ns = header.modified_ns;
    info->version = header.version;
    *text = (const char *)value->mv_data + sizeof header;
    return 0;
}

int store_object_record_text(const lmdb_call *call, const MDB_val *value, const char **text,
                             size_t *size)
{
    store_object_info info = { 0 };
    int result = read_object_record(call, value, &info, text);
    *size = result == 0 ? info.size : 0;
    return result;
}

/* A NUL-terminated malloc'd copy of bytes that live in the LMDB map, which
 * is only valid until the transaction ends. */
static int copy_text(const store_call *call, const char *bytes, size_t size, char **text)
{
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return lmdb_fail(&call->lmdb, -ENOMEM, "out of memory copying %zu bytes", size);
    memcpy(copy, bytes, size);
    copy[size] = '\0';
    *text = copy;
    return 0;
}

/* Each write transaction that changes objects takes the next value of the
 * store-wide counter, so a reader can tell whether an object changed
 * without comparing its text. */
int store_take_next_version(const store_call *call, uint64_t *version)
{
    uint64_t current;
    int result = lmdb_get_number(&call->lmdb, call->store->meta, META_VERSION, &current);
    if (result < 0)
        return result;
    result = lmdb_put_number(&call->lmdb, call->store->meta, META_VERSION, current + 1);
    if (result != 0)
        return result;
    *version = current + 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Collections                                                         */

/* The record of the named collection: 1 when it exists, else 0. */
static int read_collection_record(const store_call *call, const char *collection,
                                  collection_record *record)
{
    MDB_val key = lmdb_text_value(collection), data;
    int code = mdb_get(call->lmdb.transaction, call->store->collections, &key, &data);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    if (data.mv_size != sizeof *record)
        return lmdb_fail(&call->lmdb, -EIO, "corrupt collection record (%zu bytes)",
                         data.mv_size);
    memcpy(record, data.mv_data, sizeof *record);
    return 1;
}

/* flags: 0 to replace, MDB_NOOVERWRITE to create (-EEXIST when present). */
static int write_collection_record(const store_call *call, const char *collection,
                                   const collection_record *record, unsigned int flags)
{
    MDB_val key = lmdb_text_value(collection);
    MDB_val data = { .mv_size = sizeof *record, .mv_data = (void *)record };
    int code = mdb_put(call->lmdb.transaction, call->store->collections, &key, &data, flags);
    if (code == MDB_KEYEXIST)
        return lmdb_fail(&call->lmdb, -EEXIST, "the collection already exists");
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    return 0;
}

static int collection_exists(const store_call *call)
{
    collection_record record;
    return read_collection_record(call, call->lmdb.collection, &record);
}

/* The call's collection's record; -ENOENT when there is no such
 * collection. */
static int require_collection_record(const store_call *call, collection_record *record)
{
    int exists = read_collection_record(call, call->lmdb.collection, record);
    if (exists < 0)
        return exists;
    return exists ? 0 : lmdb_fail(&call->lmdb, -ENOENT, "no such collection");
}

static int require_collection(const store_call *call)
{
    collection_record record;
    return require_collection_record(call, &record);
}

int store_current_time_ns(const store_call *call, int64_t *nanoseconds)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
        int error = errno;
        return lmdb_fail(&call->lmdb, -error, "clock_gettime: %s", strerror(error));
    }
    *nanoseconds = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    return 0;
}

static int create_collection(const store_call *call)
{
    collection_record record = { 0 };
    int result = store_current_time_ns(call, &record.created_ns);
    if (result != 0)
        return result;
    return write_collection_record(call, call->lmdb.collection, &record, MDB_NOOVERWRITE);
}

int store_ensure_collection(const store_call *call, const char *collection)
{
    store_call named = *call;
    named.lmdb.collection = collection;
    int exists = collection_exists(&named);
    if (exists != 0)
        return exists < 0 ? exists : 0;
    return create_collection(&named);
}

/* The collection that key belongs to gained (added) or lost an object. */
static int count_object_change(const store_call *call, const lmdb_object_key *key, bool added)
{
    /* an object key starts with its collection's name and a NUL */
    const char *collection = (const char *)key->bytes;
    collection_record record;
    int exists = read_collection_record(call, collection, &record);
    if (exists < 0)
        return exists;
    if (!exists || (!added && record.object_count == 0))
        return lmdb_fail(&call->lmdb, -EIO, "the object count of collection \"%s\" is corrupt",
                         collection);
    record.object_count = added ? record.object_count + 1 : record.object_count - 1;
    return write_collection_record(call, collection, &record, 0);
}

static int drop_collection(const store_call *call)
{
    collection_record record;
    int result = require_collection_record(call, &record);
    if (result != 0)
        return result;
    if (record.object_count > 0)
        return lmdb_fail(&call->lmdb, -ENOTEMPTY, "the collection still holds objects");
    MDB_val key = lmdb_text_value(call->lmdb.collection);
    int code = mdb_del(call->lmdb.transaction, call->store->collections, &key, NULL);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_del");
    return 0;
}

static int count_objects(const store_call *call, uint64_t *count)
{
    collection_record record;
    int result = require_collection_record(call, &record);
    *count = result == 0 ? record.object_count : 0;
    return result;
}

/* ------------------------------------------------------------------ */
/* Objects                                                             */

/* Distinguishes a missing collection from a missing object in the
 * message; both are -ENOENT. */
static int report_missing_object(const store_call *call)
{
    int result = require_collection(call);
    if (result != 0)
        return result;
    return lmdb_fail(&call->lmdb, -ENOENT, "no object with this id");
}

static int find_object(const store_call *call, const json_t *id, MDB_val *record)
{
    lmdb_object_key key;
    int result = object_key_build(call, id, &key);
    if (result != 0)
        return result;
    MDB_val key_value = lmdb_object_key_value(&key);
    int code = mdb_get(call->lmdb.transaction, call->store->objects, &key_value, record);
    if (code == MDB_NOTFOUND)
        return report_missing_object(call);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    return 0;
}

static int get_object(const store_call *call, const json_t *id, char **text,
                      store_object_info *info)
{
    MDB_val record;
    int result = find_object(call, id, &record);
    if (result != 0)
        return result;
    store_object_info found;
    const char *stored_text = NULL;
    result = read_object_record(&call->lmdb, &record, &found, &stored_text);
    if (result != 0)
        return result;
    if (text != NULL) {
        result = copy_text(call, stored_text, found.size, text);
        if (result != 0)
            return result;
    }
    if (info != NULL)
        *info = found;
    return 0;
}

int store_write_object_record(const store_call *call, const lmdb_object_key *key,
                              uint64_t version, const char *text, size_t size,
                              int64_t modified_ns, store_object_info *info)
{
    if (text == NULL && size > 0)
        return lmdb_fail(&call->lmdb, -EINVAL, "no text given for %zu bytes", size);
    if (size > SIZE_MAX - sizeof(object_header))
        return lmdb_fail(&call->lmdb, -EFBIG, "an object of %zu bytes is too large", size);
    MDB_val key_value = lmdb_object_key_value(key);
    MDB_val data = { .mv_size = sizeof(object_header) + size, .mv_data = NULL };
    /* Trying to create first finds out, at no extra cost for a new
     * object, whether the collection's count changes. */
    int code = mdb_put(call->lmdb.transaction, call->store->objects, &key_value, &data,
                       MDB_RESERVE | MDB_NOOVERWRITE);
    bool created = code == 0;
    if (code == MDB_KEYEXIST) {
        data = (MDB_val){ .mv_size = sizeof(object_header) + size, .mv_data = NULL };
        code = mdb_put(call->lmdb.transaction, call->store->objects, &key_value, &data,
                       MDB_RESERVE);
    }
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    object_header header = { .version = version, .modified_ns = modified_ns };
    memcpy(data.mv_data, &header, sizeof header);
    if (size > 0)
        memcpy((char *)data.mv_data + sizeof header, text, size);
    if (info != NULL)
        *info = (store_object_info){ .size = size, .modified_ns = modified_ns, .version = version };
    return created ? count_object_change(call, key, true) : 0;
}

int store_find_object_text(const store_call *call, const lmdb_object_key *key,
                           const char **text, size_t *size)
{
    *text = NULL;
    *size = 0;
    MDB_val key_value = lmdb_object_key_value(key), record;
    int code = mdb_get(call->lmdb.transaction, call->store->objects, &key_value, &record);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    store_object_info info = { 0 };
    int result = read_object_record(&call->lmdb, &record, &info, text);
    *size = info.size;
    return result;
}

/* On a synced store, queue what the write does to the visible documents:
 * the objects' texts before the write, then changes[i].new_text. */
static int queue_changes(const store_call *call, store_object_change *changes, size_t count,
                         const lmdb_object_key *keys, bool held)
{
    if (!call->store->synced)
        return 0;
    for (size_t i = 0; i < count; i++) {
        int result = store_find_object_text(call, &keys[i], &changes[i].old_text,
                                            &changes[i].old_size);
        if (result != 0)
            return result;
    }
    return store_sync_queue_changes(call, changes, count, held);
}

static int put_object(const store_call *call, const json_t *id, const char *text, size_t size,
                      int64_t modified_ns, store_object_info *info)
{
    lmdb_object_key key;
    int result = object_key_build(call, id, &key);
    if (result != 0)
        return result;
    result = require_collection(call);
    if (result != 0)
        return result;
    store_object_change change = { .id = id, .new_text = text, .new_size = size };
    result = queue_changes(call, &change, 1, &key, false);
    if (result != 0)
        return result;
    uint64_t version;
    result = store_take_next_version(call, &version);
    if (result != 0)
        return result;
    return store_write_object_record(call, &key, version, text, size, modified_ns, info);
}

int store_delete_object_record(const store_call *call, const lmdb_object_key *key)
{
    MDB_val key_value = lmdb_object_key_value(key);
    int code = mdb_del(call->lmdb.transaction, call->store->objects, &key_value, NULL);
    if (code == MDB_NOTFOUND)
        return report_missing_object(call);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_del");
    return count_object_change(call, key, false);
}

static int delete_object(const store_call *call, const json_t *id, bool held)
{
    lmdb_object_key key;
    int result = object_key_build(call, id, &key);
    if (result != 0)
        return result;
    store_object_change change = { .id = id };
    result = queue_changes(call, &change, 1, &key, held);
    if (result != 0)
        return result;
    result = store_delete_object_record(call, &key);
    if (result != 0)
        return result;
    uint64_t version;
    return store_take_next_version(call, &version);
}

static int rename_object(const store_call *call, const json_t *old_id, const json_t *new_id,
                         const char *text, size_t size, int64_t modified_ns,
                         store_object_info *info)
{
    lmdb_object_key keys[2];
    int result = object_key_build(call, old_id, &keys[0]);
    if (result != 0)
        return result;
    result = object_key_build(call, new_id, &keys[1]);
    if (result != 0)
        return result;
    store_object_change changes[2] = {
        { .id = old_id },
        { .id = new_id, .new_text = text, .new_size = size },
    };
    /* renaming an object to its own id is a put */
    MDB_val old_key = lmdb_object_key_value(&keys[0]);
    size_t count = lmdb_object_key_equals(&old_key, &keys[1]) ? 1 : 2;
    result = queue_changes(call, &changes[2 - count], count, &keys[2 - count], false);
    if (result != 0)
        return result;
    result = store_delete_object_record(call, &keys[0]);
    if (result != 0)
        return result;
    uint64_t version;
    result = store_take_next_version(call, &version);
    if (result != 0)
        return result;
    return store_write_object_record(call, &keys[1], version, text, size, modified_ns, info);
}

typedef struct scan_state {
    const lmdb_object_key *start;
    bool skip_start;
    bool decode_ids; /* fill in each view's id before the visit */
    int (*visit)(const store_object_view *object, void *context);
    void *context;
} scan_state;

static int visit_object(const lmdb_call *call, const MDB_val *key, const MDB_val *value,
                        void *state)
{
    const scan_state *scan = state;
    if (scan->skip_start && lmdb_object_key_equals(key, scan->start))
        return 0;
    store_object_view view;
    int result = read_object_record(call, value, &view.info, &view.text);
    if (result != 0)
        return result;
    size_t prefix_size = scan->start->collection_prefix_size;
    view.stored_id = (const uint8_t *)key->mv_data + prefix_size;
    view.stored_id_size = key->mv_size - prefix_size;
    json_t *id = NULL;
    if (scan->decode_ids) {
        result = lmdb_object_key_decode_id(call, view.stored_id, view.stored_id_size, &id);
        if (result != 0)
            return result;
    }
    view.id = id;
    result = scan->visit(&view, scan->context);
    json_decref(id);
    return result;
}

static int scan_objects(const store_call *call, const json_t *start, bool skip_start,
                        bool decode_ids,
                        int (*visit)(const store_object_view *object, void *context),
                        void *context)
{
    int result = require_collection(call);
    if (result != 0)
        return result;
    lmdb_object_key start_key;
    lmdb_object_key_start(&start_key, call->lmdb.collection);
    if (start != NULL) {
        result = lmdb_object_key_append_id(&call->lmdb, &start_key, start,
                                           call->store->max_key_size);
        if (result != 0)
            return result;
    }
    scan_state scan = {
        .start = &start_key,
        .skip_start = start != NULL && skip_start,
        .decode_ids = decode_ids,
        .visit = visit,
        .context = context,
    };
    return lmdb_for_each_object(&call->lmdb, call->store->objects, &start_key, visit_object,
                                &scan);
}

/* ------------------------------------------------------------------ */
/* Schemas                                                             */

static int get_schema(const store_call *call, char **text, size_t *size)
{
    MDB_val key = lmdb_text_value(call->lmdb.collection), data;
    int code = mdb_get(call->lmdb.transaction, call->store->schemas, &key, &data);
    if (code == MDB_NOTFOUND)
        return lmdb_fail(&call->lmdb, -ENOENT, "no schema");
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    int result = copy_text(call, data.mv_data, data.mv_size, text);
    if (result == 0 && size != NULL)
        *size = data.mv_size;
    return result;
}

static int put_schema(const store_call *call, const char *text, size_t size)
{
    if (text == NULL && size > 0)
        return lmdb_fail(&call->lmdb, -EINVAL, "no text given for %zu bytes", size);
    MDB_val key = lmdb_text_value(call->lmdb.collection);
    MDB_val data = { .mv_size = size, .mv_data = (void *)text };
    int code = mdb_put(call->lmdb.transaction, call->store->schemas, &key, &data, 0);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    return 0;
}

static int delete_schema(const store_call *call)
{
    MDB_val key = lmdb_text_value(call->lmdb.collection);
    int code = mdb_del(call->lmdb.transaction, call->store->schemas, &key, NULL);
    if (code == MDB_NOTFOUND)
        return lmdb_fail(&call->lmdb, -ENOENT, "no schema");
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_del");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */

static int open_environment(const store_call *call, const char *directory, uint64_t map_size)
{
    store *store = call->store;
    /* NOSYNC: a commit reaches the page cache, which survives a crash of
     * the process; store_sync() flushes to disk.  NOTLS: read
     * transactions are not tied to the thread that began them. */
    lmdb_environment_options options = {
        .max_databases = DATABASE_COUNT,
        .map_size = map_size,
        .flags = MDB_NOSYNC | MDB_NOTLS | (store->read_only ? MDB_RDONLY : 0),
        .mode = 0644,
    };
    int result = lmdb_open_environment(&call->lmdb, directory, &options, &store->environment);
    if (result != 0)
        return result;
    store->max_key_size = lmdb_max_key_size(store->environment);
    return 0;
}

static int open_database(const store_call *call, const char *name, MDB_dbi *database)
{
    return lmdb_open_database(&call->lmdb, name, call->store->read_only ? 0 : MDB_CREATE,
                              database);
}

static int count_object(const lmdb_call *call, const MDB_val *key, const MDB_val *value,
                        void *state)
{
    (void)call;
    (void)key;
    (void)value;
    uint64_t *count = state;
    (*count)++;
    return 0;
}

/* A format 1 collection record (its creation time alone) gets the count
 * of its objects. */
static int count_collection_objects(const store_call *call, MDB_cursor *cursor,
                                    const MDB_val *key, const MDB_val *value)
{
    collection_record record = { 0 };
    char name[LMDB_COLLECTION_NAME_MAX + 1];
    if (value->mv_size != sizeof record.created_ns || key->mv_size == 0 ||
        key->mv_size > LMDB_COLLECTION_NAME_MAX)
        return lmdb_fail(&call->lmdb, -EIO, "corrupt collection record (%zu bytes)",
                         value->mv_size);
    memcpy(&record.created_ns, value->mv_data, sizeof record.created_ns);
    memcpy(name, key->mv_data, key->mv_size);
    name[key->mv_size] = '\0';
    lmdb_object_key start;
    lmdb_object_key_start(&start, name);
    int result = lmdb_for_each_object(&call->lmdb, call->store->objects, &start, count_object,
                                      &record.object_count);
    if (result != 0)
        return result;
    MDB_val name_value = { .mv_size = key->mv_size, .mv_data = name };
    MDB_val data = { .mv_size = sizeof record, .mv_data = &record };
    int code = mdb_cursor_put(cursor, &name_value, &data, MDB_CURRENT);
    return code == 0 ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_put");
}

/*
 * Brings a store in format 1 to FORMAT_VERSION: every collection record
 * gets its object count (here) and a synced store's outbox its index
 * (store_sync_open).  *upgrading says whether that is needed.  A
 * read-only opener cannot write the upgrade: -ENOTSUP.
 */
static int upgrade_format(const store_call *call, bool *upgrading)
{
    uint64_t format;
    int found = lmdb_get_number(&call->lmdb, call->store->meta, META_FORMAT, &format);
    *upgrading = found > 0 && format == FORMAT_WITHOUT_COUNTS;
    if (found < 0 || !*upgrading)
        return found < 0 ? found : 0;
    if (call->store->read_only)
        return lmdb_fail(&call->lmdb, -ENOTSUP, "the store was written by an older realmfs "
                         "(format 1): open it read-write once (mount it) to upgrade it");
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, call->store->collections, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    MDB_val key, value;
    int result = 0;
    for (code = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); code == 0 && result == 0;
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT))
        result = count_collection_objects(call, cursor, &key, &value);
    result = lmdb_cursor_finish(&call->lmdb, cursor, result, code, "mdb_cursor_get");
    if (result != 0)
        return result;
    return lmdb_put_number(&call->lmdb, call->store->meta, META_FORMAT, FORMAT_VERSION);
}

static int open_databases(const store_call *call, bool synced)
{
    store *store = call->store;
    bool upgrading = false;
    int result = open_database(call, "collections", &store->collections);
    if (result == 0)
        result = open_database(call, "objects", &store->objects);
    if (result == 0)
        result = open_database(call, "schemas", &store->schemas);
    if (result == 0)
        result = open_database(call, "meta", &store->meta);
    if (result == 0)
        result = upgrade_format(call, &upgrading);
    if (result == 0)
        result = lmdb_check_format(&call->lmdb, store->meta, FORMAT_VERSION, !store->read_only);
    if (result == 0)
        result = store_sync_open(call, synced, upgrading);
    return result;
}

static int open_store(store_call *call, const char *directory, uint64_t map_size, bool synced)
{
    store *store = call->store;
    if (directory == NULL || directory[0] == '\0')
        return lmdb_fail(&call->lmdb, -EINVAL, "no directory given");
    if (!store->read_only) {
        /* mkdir -p: a data directory may be configured below folders
         * that do not exist yet. */
        int result = lmdb_make_directories(&call->lmdb, directory, 0755);
        if (result != 0)
            return result;
    }
    int result = open_environment(call, directory, map_size);
    if (result != 0)
        return result;
    /* Databases are opened once, in a transaction that commits, so their
     * handles stay valid for every later transaction of any thread. */
    result = store_call_begin(call, store->read_only ? STORE_READ : STORE_WRITE, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(call, open_databases(call, synced));
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */

int store_open(const char *directory, const store_options *options, store **out)
{
    *out = NULL;
    char operation[sizeof "open store " + PATH_MAX];
    snprintf(operation, sizeof operation, "open store %s", directory != NULL ? directory : "");
    store *opened = calloc(1, sizeof *opened);
    store_call call = store_call_new(opened, operation, NULL);
    if (opened == NULL)
        return lmdb_fail(&call.lmdb, -ENOMEM, "out of memory");
    opened->read_only = options != NULL && options->read_only;
    uint64_t map_size = options != NULL && options->map_size != 0 ? options->map_size
                                                                  : DEFAULT_MAP_SIZE;
    int result = open_store(&call, directory, map_size, options != NULL && options->synced);
    if (result != 0) {
        store_close(opened);
        return result;
    }
    *out = opened;
    return 0;
}

void store_close(store *store)
{
    if (store == NULL)
        return;
    if (store->environment != NULL)
        mdb_env_close(store->environment);
    free(store);
}

int store_sync(store *store)
{
    store_call call = store_call_new(store, "sync store", NULL);
    if (store->read_only)
        return 0;
    int code = mdb_env_sync(store->environment, 1);
    if (code != 0)
        return lmdb_fail_mdb(&call.lmdb, code, "mdb_env_sync");
    return 0;
}

int store_get_statistics(store *store, store_statistics *statistics)
{
    store_call call = store_call_new(store, "get store statistics", NULL);
    uint64_t file_bytes;
    int result = lmdb_data_file_bytes(&call.lmdb, store->environment, &file_bytes);
    if (result != 0)
        return result;
    MDB_envinfo info;
    int code = mdb_env_info(store->environment, &info);
    if (code != 0)
        return lmdb_fail_mdb(&call.lmdb, code, "mdb_env_info");
    MDB_stat environment_stat;
    code = mdb_env_stat(store->environment, &environment_stat);
    if (code != 0)
        return lmdb_fail_mdb(&call.lmdb, code, "mdb_env_stat");
    statistics->file_bytes = file_bytes;
    /* Pages are numbered from 0, and every page up to the last one is
     * either in use or on LMDB's free list waiting for reuse. */
    statistics->used_bytes = ((uint64_t)info.me_last_pgno + 1) * environment_stat.ms_psize;
    return 0;
}

int store_create_collection(store *store, const char *name)
{
    store_call call = store_call_new(store, "create collection", name);
    int result = store_call_begin(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, create_collection(&call));
}

int store_drop_collection(store *store, const char *name)
{
    store_call call = store_call_new(store, "drop collection", name);
    int result = store_call_begin(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, drop_collection(&call));
}

int store_has_collection(store *store, const char *name)
{
    store_call call = store_call_new(store, "look up collection", name);
    int result = store_call_begin(&call, STORE_READ, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    int exists = collection_exists(&call);
    result = store_call_finish(&call, exists < 0 ? exists : 0);
    return result != 0 ? result : exists;
}

int store_list_collections(store *store, int (*visit)(const char *name, void *context),
                           void *context)
{
    store_call call = store_call_new(store, "list collections", NULL);
    int result = store_call_begin(&call, STORE_READ, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(&call, lmdb_for_each_name(&call.lmdb, store->collections, visit, context));
}

int store_count_objects(store *store, const char *collection, uint64_t *count)
{
    store_call call = store_call_new(store, "count objects", collection);
    int result = store_call_begin(&call, STORE_READ, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, count_objects(&call, count));
}

int store_get_object_info(store *store, const char *collection, const json_t *id,
                          store_object_info *info)
{
    return store_get_object(store, collection, id, NULL, info);
}

int store_get_object(store *store, const char *collection, const json_t *id, char **text,
                     store_object_info *info)
{
    store_call call = store_call_new(store, "get object", collection);
    int result = store_call_begin(&call, STORE_READ, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, get_object(&call, id, text, info));
}

int store_put_object(store *store, const char *collection, const json_t *id, const char *text,
                     size_t size, int64_t modified_ns, store_object_info *info)
{
    store_call call = store_call_new(store, "put object", collection);
    int result = store_call_begin(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, put_object(&call, id, text, size, modified_ns, info));
}

int store_delete_object(store *store, const char *collection, const json_t *id)
{
    store_call call = store_call_new(store, "delete object", collection);
    int result = store_call_begin(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, delete_object(&call, id, false));
}

int store_delete_object_held(store *store, const char *collection, const json_t *id)
{
    store_call call = store_call_new(store, "delete object", collection);
    int result = store_call_begin(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, delete_object(&call, id, true));
}

int store_rename_object(store *store, const char *collection, const json_t *old_id,
                        const json_t *new_id, const char *text, size_t size,
                        int64_t modified_ns, store_object_info *info)
{
    store_call call = store_call_new(store, "rename object", collection);
    int result = store_call_begin(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call,
                       rename_object(&call, old_id, new_id, text, size, modified_ns, info));
}

int store_scan_objects(store *store, const char *collection, const json_t *start,
                       bool skip_start,
                       int (*visit)(const store_object_view *object, void *context),
                       void *context)
{
    store_call call = store_call_new(store, "scan objects", collection);
    int result = store_call_begin(&call, STORE_READ, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, scan_objects(&call, start, skip_start, true, visit, context));
}

int store_scan_object_texts(store *store, const char *collection, const json_t *start,
                            bool skip_start,
                            int (*visit)(const store_object_view *object, void *context),
                            void *context)
{
    store_call call = store_call_new(store, "scan objects", collection);
    int result = store_call_begin(&call, STORE_READ, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, scan_objects(&call, start, skip_start, false, visit, context));
}

int store_object_view_id(const store_object_view *object, json_t **id)
{
    if (object->id != NULL) {
        *id = json_incref((json_t *)object->id);
        return 0;
    }
    store_call call = store_call_new(NULL, "decode object id", NULL);
    return lmdb_object_key_decode_id(&call.lmdb, object->stored_id, object->stored_id_size, id);
}

int store_get_schema(store *store, const char *collection, char **text, size_t *size)
{
    store_call call = store_call_new(store, "get schema", collection);
    int result = store_call_begin(&call, STORE_READ, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, get_schema(&call, text, size));
}

int store_put_schema(store *store, const char *collection, const char *text, size_t size)
{
    store_call call = store_call_new(store, "put schema", collection);
    int result = store_call_begin(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, put_schema(&call, text, size));
}

int store_delete_schema(store *store, const char *collection)
{
    store_call call = store_call_new(store, "delete schema", collection);
    int result = store_call_begin(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, delete_schema(&call));
}

int store_list_schemas(store *store, int (*visit)(const char *collection, void *context),
                       void *context)
{
    store_call call = store_call_new(store, "list schemas", NULL);
    int result = store_call_begin(&call, STORE_READ, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(&call, lmdb_for_each_name(&call.lmdb, store->schemas, visit, context));
}

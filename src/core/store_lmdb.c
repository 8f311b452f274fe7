/*
 * store_lmdb.c — the object store of store.h on LMDB.
 *
 * One LMDB environment per data directory holds four named databases:
 *
 *   collections  collection name                  -> collection_record
 *   objects      collection name, 0x00, id key    -> object_header, then text
 *   schemas      collection name                  -> schema text
 *   meta         "format", "version"              -> uint64_t
 *
 * An id key is a type tag followed by bytes chosen so that LMDB's default
 * key order (memcmp) is the documented id order:
 *
 *   0x01  int       8 bytes big-endian, sign bit flipped
 *   0x02  ObjectId  its 12 bytes
 *   0x03  string    its bytes (may contain NUL)
 *
 * Collection names never contain NUL, so "Task\0" starts a key range that
 * no object of "TaskList" can fall into.  Numbers inside values are stored
 * in native byte order: LMDB files are not portable across architectures
 * anyway.
 */
#include "realmfs/store.h"
#include "realmfs/value.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum {
    COLLECTION_NAME_MAX = 255,
    DATABASE_COUNT = 4,
    /* LMDB's maximum key size unless it was built with another one. */
    KEY_CAPACITY = 511,
    ID_TAG_INT = 0x01,
    ID_TAG_OBJECT_ID = 0x02,
    ID_TAG_STRING = 0x03,
};

#define DEFAULT_MAP_SIZE (UINT64_C(64) << 30)
#define FORMAT_VERSION UINT64_C(1)
#define META_FORMAT "format"
#define META_VERSION "version"

struct store {
    MDB_env *environment;
    MDB_dbi collections;
    MDB_dbi objects;
    MDB_dbi schemas;
    MDB_dbi meta;
    bool read_only;
    size_t max_key_size;
    char *data_file; /* path of data.mdb, measured by store_get_statistics */
};

/* The value stored for each collection. */
typedef struct collection_record {
    int64_t created_ns;
} collection_record;

/* The fixed start of every object value; the canonical text follows. */
typedef struct object_header {
    uint64_t version;
    int64_t modified_ns;
} object_header;

/* The key of an object, or (with size == collection_prefix_size) the first
 * possible key of its collection. */
typedef struct object_key {
    size_t size;
    size_t collection_prefix_size; /* the name and its 0x00 */
    uint8_t bytes[KEY_CAPACITY];
} object_key;

/*
 * What a public function is doing: its error messages name the operation
 * and the collection, and every internal step works in the one transaction
 * the call runs in.
 */
typedef struct store_call {
    store *store;
    const char *operation;  /* "put object" */
    const char *collection; /* NULL when the call names none */
    MDB_txn *transaction;
} store_call;

enum access { READ, WRITE };
enum scope { WHOLE_STORE, ONE_COLLECTION };

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static _Thread_local char last_error[512];

const char *store_last_error(void)
{
    return last_error;
}

/* Records the message for store_last_error() and returns error, so a
 * failure path reads "return fail(...)". */
__attribute__((format(printf, 3, 4)))
static int fail(const store_call *call, int error, const char *format, ...)
{
    int used;
    if (call->collection != NULL)
        used = snprintf(last_error, sizeof last_error, "%s in collection \"%.*s\": ",
                        call->operation, COLLECTION_NAME_MAX, call->collection);
    else
        used = snprintf(last_error, sizeof last_error, "%s: ", call->operation);
    if (used < 0 || (size_t)used >= sizeof last_error)
        return error;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(last_error + used, sizeof last_error - (size_t)used, format, arguments);
    va_end(arguments);
    return error;
}

/* LMDB reports its own conditions as negative MDB_* codes and system
 * failures as positive errno values; the store's callers see one errno. */
static int errno_from_lmdb(int code)
{
    switch (code) {
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_KEYEXIST:
        return -EEXIST;
    case MDB_MAP_FULL:
        return -ENOSPC;
    default:
        return code > 0 ? -code : -EIO;
    }
}

static int fail_lmdb(const store_call *call, int code, const char *lmdb_function)
{
    if (code == MDB_MAP_FULL)
        return fail(call, -ENOSPC, "%s: the store is full (%s); reopen it with a larger map_size",
                    lmdb_function, mdb_strerror(code));
    return fail(call, errno_from_lmdb(code), "%s: %s", lmdb_function, mdb_strerror(code));
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

static int check_collection_name(const store_call *call)
{
    if (call->collection == NULL || call->collection[0] == '\0')
        return fail(call, -EINVAL, "a collection name must not be empty");
    if (strnlen(call->collection, COLLECTION_NAME_MAX + 1) > COLLECTION_NAME_MAX)
        return fail(call, -ENAMETOOLONG, "a collection name has at most %d bytes",
                    COLLECTION_NAME_MAX);
    return 0;
}

/* Validates what every call shares and starts the one transaction it runs
 * in; finish_call() must follow whenever this succeeds. */
static int begin_call(store_call *call, enum access access, enum scope scope)
{
    if (scope == ONE_COLLECTION) {
        int result = check_collection_name(call);
        if (result != 0)
            return result;
    }
    if (access == WRITE && call->store->read_only)
        return fail(call, -EROFS, "the store is open read-only");
    int code = mdb_txn_begin(call->store->environment, NULL,
                             access == WRITE ? 0 : MDB_RDONLY, &call->transaction);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_txn_begin");
    return 0;
}

/* Commits when result is 0 and aborts otherwise, so that no path leaves a
 * write transaction (and LMDB's writer lock) behind.  Returns result, or
 * the commit's failure. */
static int finish_call(store_call *call, int result)
{
    MDB_txn *transaction = call->transaction;
    call->transaction = NULL;
    if (result != 0) {
        mdb_txn_abort(transaction);
        return result;
    }
    int code = mdb_txn_commit(transaction);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_txn_commit");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */

static MDB_val name_key(const char *name)
{
    return (MDB_val){ .mv_size = strlen(name), .mv_data = (void *)name };
}

static MDB_val object_key_value(const object_key *key)
{
    return (MDB_val){ .mv_size = key->size, .mv_data = (void *)key->bytes };
}

static void object_key_start_collection(object_key *key, const char *collection)
{
    size_t length = strlen(collection);
    memcpy(key->bytes, collection, length);
    key->bytes[length] = 0x00;
    key->size = length + 1;
    key->collection_prefix_size = length + 1;
}

/* Flipping the sign bit maps INT64_MIN..INT64_MAX onto 0..UINT64_MAX in
 * the same order; big-endian bytes then compare like the numbers. */
static void encode_sortable_int(int64_t number, uint8_t bytes[8])
{
    uint64_t big_endian = htobe64((uint64_t)number ^ (UINT64_C(1) << 63));
    memcpy(bytes, &big_endian, sizeof big_endian);
}

static int64_t decode_sortable_int(const uint8_t bytes[8])
{
    uint64_t big_endian;
    memcpy(&big_endian, bytes, sizeof big_endian);
    return (int64_t)(be64toh(big_endian) ^ (UINT64_C(1) << 63));
}

static int object_key_append_id(const store_call *call, object_key *key, const json_t *id)
{
    uint8_t fixed[VALUE_OBJECT_ID_SIZE];
    const void *payload = fixed;
    size_t payload_size;
    uint8_t tag;
    if (id == NULL)
        return fail(call, -EINVAL, "no object id given");
    value_type type = value_type_of(id);
    switch (type) {
    case VALUE_INT:
        tag = ID_TAG_INT;
        encode_sortable_int(json_integer_value(id), fixed);
        payload_size = 8;
        break;
    case VALUE_OBJECT_ID:
        tag = ID_TAG_OBJECT_ID;
        if (!value_get_object_id(id, fixed))
            return fail(call, -EINVAL, "malformed objectId");
        payload_size = VALUE_OBJECT_ID_SIZE;
        break;
    case VALUE_STRING:
        tag = ID_TAG_STRING;
        payload = json_string_value(id);
        payload_size = json_string_length(id);
        break;
    default:
        return fail(call, -EINVAL, "an object id must be a string, long or objectId, not %s",
                    value_type_name(type));
    }
    size_t room = call->store->max_key_size - key->size - 1;
    if (payload_size > room)
        return fail(call, -ENAMETOOLONG, "the object id has %zu bytes; this collection allows %zu",
                    payload_size, room);
    key->bytes[key->size] = tag;
    memcpy(key->bytes + key->size + 1, payload, payload_size);
    key->size += 1 + payload_size;
    return 0;
}

static int object_key_build(const store_call *call, const json_t *id, object_key *key)
{
    object_key_start_collection(key, call->collection);
    return object_key_append_id(call, key, id);
}

/* The id of an object key from the bytes after its collection prefix. */
static int decode_id(const store_call *call, const uint8_t *bytes, size_t size, json_t **id)
{
    json_t *decoded;
    if (size == 1 + 8 && bytes[0] == ID_TAG_INT) {
        decoded = json_integer(decode_sortable_int(bytes + 1));
    } else if (size == 1 + VALUE_OBJECT_ID_SIZE && bytes[0] == ID_TAG_OBJECT_ID) {
        decoded = value_new_object_id(bytes + 1);
    } else if (size >= 1 && bytes[0] == ID_TAG_STRING) {
        /* The bytes were copied from a json string, so they are valid
         * UTF-8 and checking them again would only slow listings down. */
        decoded = json_stringn_nocheck((const char *)bytes + 1, size - 1);
    } else {
        return fail(call, -EIO, "corrupt object key (%zu id bytes)", size);
    }
    if (decoded == NULL)
        return fail(call, -ENOMEM, "out of memory decoding an object id");
    *id = decoded;
    return 0;
}

static bool key_in_collection(const MDB_val *key, const object_key *collection_start)
{
    return key->mv_size >= collection_start->collection_prefix_size
        && memcmp(key->mv_data, collection_start->bytes,
                  collection_start->collection_prefix_size) == 0;
}

static bool key_equals(const MDB_val *key, const object_key *other)
{
    return key->mv_size == other->size && memcmp(key->mv_data, other->bytes, other->size) == 0;
}

/* ------------------------------------------------------------------ */
/* Records                                                             */

static int read_object_record(const store_call *call, const MDB_val *value,
                              store_object_info *info, const char **text)
{
    object_header header;
    if (value->mv_size < sizeof header)
        return fail(call, -EIO, "corrupt object record (%zu bytes)", value->mv_size);
    memcpy(&header, value->mv_data, sizeof header);
    info->size = value->mv_size - sizeof header;
    info->modified_ns = header.modified_ns;
    info->version = header.version;
    *text = (const char *)value->mv_data + sizeof header;
    return 0;
}

/* A NUL-terminated malloc'd copy of bytes that live in the LMDB map, which
 * is only valid until the transaction ends. */
static int copy_text(const store_call *call, const char *bytes, size_t size, char **text)
{
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return fail(call, -ENOMEM, "out of memory copying %zu bytes", size);
    memcpy(copy, bytes, size);
    copy[size] = '\0';
    *text = copy;
    return 0;
}

/* Returns 1 and sets *value when the meta record exists, 0 when not;
 * *value is 0 unless the record was read. */
static int read_meta_number(const store_call *call, const char *name, uint64_t *value)
{
    *value = 0;
    MDB_val key = name_key(name), data;
    int code = mdb_get(call->transaction, call->store->meta, &key, &data);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return fail_lmdb(call, code, "mdb_get");
    if (data.mv_size != sizeof *value)
        return fail(call, -EIO, "corrupt meta record \"%s\"", name);
    memcpy(value, data.mv_data, sizeof *value);
    return 1;
}

static int write_meta_number(const store_call *call, const char *name, uint64_t value)
{
    MDB_val key = name_key(name);
    MDB_val data = { .mv_size = sizeof value, .mv_data = &value };
    int code = mdb_put(call->transaction, call->store->meta, &key, &data, 0);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_put");
    return 0;
}

/* Each write transaction that changes objects takes the next value of the
 * store-wide counter, so a reader can tell whether an object changed
 * without comparing its text. */
static int take_next_version(const store_call *call, uint64_t *version)
{
    uint64_t current;
    int result = read_meta_number(call, META_VERSION, &current);
    if (result < 0)
        return result;
    result = write_meta_number(call, META_VERSION, current + 1);
    if (result != 0)
        return result;
    *version = current + 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Collections                                                         */

static int collection_exists(const store_call *call)
{
    MDB_val key = name_key(call->collection), data;
    int code = mdb_get(call->transaction, call->store->collections, &key, &data);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return fail_lmdb(call, code, "mdb_get");
    return 1;
}

static int require_collection(const store_call *call)
{
    int exists = collection_exists(call);
    if (exists < 0)
        return exists;
    return exists ? 0 : fail(call, -ENOENT, "no such collection");
}

static int current_time_ns(const store_call *call, int64_t *nanoseconds)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
        int error = errno;
        return fail(call, -error, "clock_gettime: %s", strerror(error));
    }
    *nanoseconds = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    return 0;
}

static int create_collection(const store_call *call)
{
    collection_record record;
    int result = current_time_ns(call, &record.created_ns);
    if (result != 0)
        return result;
    MDB_val key = name_key(call->collection);
    MDB_val data = { .mv_size = sizeof record, .mv_data = &record };
    int code = mdb_put(call->transaction, call->store->collections, &key, &data, MDB_NOOVERWRITE);
    if (code == MDB_KEYEXIST)
        return fail(call, -EEXIST, "the collection already exists");
    if (code != 0)
        return fail_lmdb(call, code, "mdb_put");
    return 0;
}

/* One step of a walk over a collection's objects; a non-zero return ends
 * the walk and becomes its result. */
typedef int object_step(const store_call *call, const MDB_val *key, const MDB_val *value,
                        void *state);

/* Walks the objects of call->collection in key order from the key from
 * (whose collection prefix bounds the walk). */
static int for_each_object(const store_call *call, const object_key *from,
                           object_step *step, void *state)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->transaction, call->store->objects, &cursor);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_cursor_open");
    MDB_val key = object_key_value(from), value;
    int result = 0;
    for (code = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
         code == 0 && key_in_collection(&key, from);
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        result = step(call, &key, &value, state);
        if (result != 0)
            break;
    }
    mdb_cursor_close(cursor);
    if (result != 0)
        return result;
    if (code != 0 && code != MDB_NOTFOUND)
        return fail_lmdb(call, code, "mdb_cursor_get");
    return 0;
}

static int refuse_any_object(const store_call *call, const MDB_val *key, const MDB_val *value,
                             void *state)
{
    (void)key;
    (void)value;
    (void)state;
    return fail(call, -ENOTEMPTY, "the collection still holds objects");
}

static int count_object(const store_call *call, const MDB_val *key, const MDB_val *value,
                        void *state)
{
    (void)call;
    (void)key;
    (void)value;
    uint64_t *count = state;
    (*count)++;
    return 0;
}

static int drop_collection(const store_call *call)
{
    int result = require_collection(call);
    if (result != 0)
        return result;
    object_key start;
    object_key_start_collection(&start, call->collection);
    result = for_each_object(call, &start, refuse_any_object, NULL);
    if (result != 0)
        return result;
    MDB_val key = name_key(call->collection);
    int code = mdb_del(call->transaction, call->store->collections, &key, NULL);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_del");
    return 0;
}

static int count_objects(const store_call *call, uint64_t *count)
{
    int result = require_collection(call);
    if (result != 0)
        return result;
    object_key start;
    object_key_start_collection(&start, call->collection);
    *count = 0;
    return for_each_object(call, &start, count_object, count);
}

/* Collection and schema databases are both keyed by collection name. */
static int for_each_name(const store_call *call, MDB_dbi database,
                         int (*visit)(const char *name, void *context), void *context)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->transaction, database, &cursor);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_cursor_open");
    MDB_val key, value;
    int result = 0;
    for (code = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); code == 0;
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        char name[COLLECTION_NAME_MAX + 1];
        if (key.mv_size == 0 || key.mv_size > COLLECTION_NAME_MAX) {
            result = fail(call, -EIO, "corrupt collection name (%zu bytes)", key.mv_size);
            break;
        }
        memcpy(name, key.mv_data, key.mv_size);
        name[key.mv_size] = '\0';
        result = visit(name, context);
        if (result != 0)
            break;
    }
    mdb_cursor_close(cursor);
    if (result != 0)
        return result;
    if (code != MDB_NOTFOUND)
        return fail_lmdb(call, code, "mdb_cursor_get");
    return 0;
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
    return fail(call, -ENOENT, "no object with this id");
}

static int find_object(const store_call *call, const json_t *id, MDB_val *record)
{
    object_key key;
    int result = object_key_build(call, id, &key);
    if (result != 0)
        return result;
    MDB_val key_value = object_key_value(&key);
    int code = mdb_get(call->transaction, call->store->objects, &key_value, record);
    if (code == MDB_NOTFOUND)
        return report_missing_object(call);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_get");
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
    result = read_object_record(call, &record, &found, &stored_text);
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

static int write_object(const store_call *call, const object_key *key, uint64_t version,
                        const char *text, size_t size, int64_t modified_ns,
                        store_object_info *info)
{
    if (text == NULL && size > 0)
        return fail(call, -EINVAL, "no text given for %zu bytes", size);
    if (size > SIZE_MAX - sizeof(object_header))
        return fail(call, -EFBIG, "an object of %zu bytes is too large", size);
    MDB_val key_value = object_key_value(key);
    MDB_val data = { .mv_size = sizeof(object_header) + size, .mv_data = NULL };
    int code = mdb_put(call->transaction, call->store->objects, &key_value, &data, MDB_RESERVE);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_put");
    object_header header = { .version = version, .modified_ns = modified_ns };
    memcpy(data.mv_data, &header, sizeof header);
    if (size > 0)
        memcpy((char *)data.mv_data + sizeof header, text, size);
    if (info != NULL)
        *info = (store_object_info){ .size = size, .modified_ns = modified_ns, .version = version };
    return 0;
}

static int put_object(const store_call *call, const json_t *id, const char *text, size_t size,
                      int64_t modified_ns, store_object_info *info)
{
    object_key key;
    int result = object_key_build(call, id, &key);
    if (result != 0)
        return result;
    result = require_collection(call);
    if (result != 0)
        return result;
    uint64_t version;
    result = take_next_version(call, &version);
    if (result != 0)
        return result;
    return write_object(call, &key, version, text, size, modified_ns, info);
}

static int delete_object_key(const store_call *call, const object_key *key)
{
    MDB_val key_value = object_key_value(key);
    int code = mdb_del(call->transaction, call->store->objects, &key_value, NULL);
    if (code == MDB_NOTFOUND)
        return report_missing_object(call);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_del");
    return 0;
}

static int delete_object(const store_call *call, const json_t *id)
{
    object_key key;
    int result = object_key_build(call, id, &key);
    if (result != 0)
        return result;
    result = delete_object_key(call, &key);
    if (result != 0)
        return result;
    uint64_t version;
    return take_next_version(call, &version);
}

static int rename_object(const store_call *call, const json_t *old_id, const json_t *new_id,
                         const char *text, size_t size, int64_t modified_ns,
                         store_object_info *info)
{
    object_key old_key, new_key;
    int result = object_key_build(call, old_id, &old_key);
    if (result != 0)
        return result;
    result = object_key_build(call, new_id, &new_key);
    if (result != 0)
        return result;
    result = delete_object_key(call, &old_key);
    if (result != 0)
        return result;
    uint64_t version;
    result = take_next_version(call, &version);
    if (result != 0)
        return result;
    return write_object(call, &new_key, version, text, size, modified_ns, info);
}

typedef struct scan_state {
    const object_key *start;
    bool skip_start;
    bool decode_ids; /* fill in each view's id before the visit */
    int (*visit)(const store_object_view *object, void *context);
    void *context;
} scan_state;

static int visit_object(const store_call *call, const MDB_val *key, const MDB_val *value,
                        void *state)
{
    const scan_state *scan = state;
    if (scan->skip_start && key_equals(key, scan->start))
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
        result = decode_id(call, view.stored_id, view.stored_id_size, &id);
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
    object_key start_key;
    object_key_start_collection(&start_key, call->collection);
    if (start != NULL) {
        result = object_key_append_id(call, &start_key, start);
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
    return for_each_object(call, &start_key, visit_object, &scan);
}

/* ------------------------------------------------------------------ */
/* Schemas                                                             */

static int get_schema(const store_call *call, char **text, size_t *size)
{
    MDB_val key = name_key(call->collection), data;
    int code = mdb_get(call->transaction, call->store->schemas, &key, &data);
    if (code == MDB_NOTFOUND)
        return fail(call, -ENOENT, "no schema");
    if (code != 0)
        return fail_lmdb(call, code, "mdb_get");
    int result = copy_text(call, data.mv_data, data.mv_size, text);
    if (result == 0 && size != NULL)
        *size = data.mv_size;
    return result;
}

static int put_schema(const store_call *call, const char *text, size_t size)
{
    if (text == NULL && size > 0)
        return fail(call, -EINVAL, "no text given for %zu bytes", size);
    MDB_val key = name_key(call->collection);
    MDB_val data = { .mv_size = size, .mv_data = (void *)text };
    int code = mdb_put(call->transaction, call->store->schemas, &key, &data, 0);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_put");
    return 0;
}

static int delete_schema(const store_call *call)
{
    MDB_val key = name_key(call->collection);
    int code = mdb_del(call->transaction, call->store->schemas, &key, NULL);
    if (code == MDB_NOTFOUND)
        return fail(call, -ENOENT, "no schema");
    if (code != 0)
        return fail_lmdb(call, code, "mdb_del");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */

/* mkdir -p: a data directory may be configured below folders that do not
 * exist yet. */
static int make_directories(const store_call *call, const char *directory)
{
    char *path = strdup(directory);
    if (path == NULL)
        return fail(call, -ENOMEM, "out of memory");
    int result = 0;
    for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash != NULL)
            *slash = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            int error = errno;
            result = fail(call, -error, "mkdir %s: %s", path, strerror(error));
            break;
        }
        if (slash == NULL)
            break;
        *slash = '/';
    }
    free(path);
    return result;
}

static int open_environment(const store_call *call, const char *directory, uint64_t map_size)
{
    store *store = call->store;
    if (map_size > SIZE_MAX)
        return fail(call, -EINVAL, "a map size of %llu bytes does not fit this platform",
                    (unsigned long long)map_size);
    int code = mdb_env_create(&store->environment);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_env_create");
    code = mdb_env_set_maxdbs(store->environment, DATABASE_COUNT);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_env_set_maxdbs");
    code = mdb_env_set_mapsize(store->environment, (size_t)map_size);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_env_set_mapsize");
    /* NOSYNC: a commit reaches the page cache, which survives a crash of
     * the process; store_sync() flushes to disk.  NOTLS: read
     * transactions are not tied to the thread that began them. */
    unsigned int flags = MDB_NOSYNC | MDB_NOTLS | (store->read_only ? MDB_RDONLY : 0);
    code = mdb_env_open(store->environment, directory, flags, 0644);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_env_open");
    /* A process that crashed while reading leaves its reader slot behind,
     * which would keep LMDB from reusing the pages it was reading. */
    int stale_readers;
    code = mdb_reader_check(store->environment, &stale_readers);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_reader_check");
    int max_key_size = mdb_env_get_maxkeysize(store->environment);
    store->max_key_size = max_key_size < KEY_CAPACITY ? (size_t)max_key_size : KEY_CAPACITY;
    return 0;
}

static int open_database(const store_call *call, const char *name, MDB_dbi *database)
{
    unsigned int flags = call->store->read_only ? 0 : MDB_CREATE;
    int code = mdb_dbi_open(call->transaction, name, flags, database);
    if (code == MDB_NOTFOUND)
        return fail(call, -ENOENT, "not a realmfs store (no \"%s\" database)", name);
    if (code != 0)
        return fail_lmdb(call, code, "mdb_dbi_open");
    return 0;
}

/* A store written in another layout must not be misread; a new store
 * gets the current one. */
static int check_format(const store_call *call)
{
    uint64_t format;
    int found = read_meta_number(call, META_FORMAT, &format);
    if (found < 0)
        return found;
    if (!found && call->store->read_only)
        return fail(call, -ENOENT, "not a realmfs store (no format version)");
    if (!found)
        return write_meta_number(call, META_FORMAT, FORMAT_VERSION);
    if (format != FORMAT_VERSION)
        return fail(call, -ENOTSUP, "format version %llu; this program reads version %llu",
                    (unsigned long long)format, (unsigned long long)FORMAT_VERSION);
    return 0;
}

static int open_databases(const store_call *call)
{
    store *store = call->store;
    int result = open_database(call, "collections", &store->collections);
    if (result == 0)
        result = open_database(call, "objects", &store->objects);
    if (result == 0)
        result = open_database(call, "schemas", &store->schemas);
    if (result == 0)
        result = open_database(call, "meta", &store->meta);
    if (result == 0)
        result = check_format(call);
    return result;
}

static int open_store(store_call *call, const char *directory, uint64_t map_size)
{
    store *store = call->store;
    if (directory == NULL || directory[0] == '\0')
        return fail(call, -EINVAL, "no directory given");
    if (!store->read_only) {
        int result = make_directories(call, directory);
        if (result != 0)
            return result;
    }
    if (asprintf(&store->data_file, "%s/data.mdb", directory) < 0) {
        store->data_file = NULL;
        return fail(call, -ENOMEM, "out of memory");
    }
    int result = open_environment(call, directory, map_size);
    if (result != 0)
        return result;
    /* Databases are opened once, in a transaction that commits, so their
     * handles stay valid for every later transaction of any thread. */
    result = begin_call(call, store->read_only ? READ : WRITE, WHOLE_STORE);
    if (result != 0)
        return result;
    return finish_call(call, open_databases(call));
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */

int store_open(const char *directory, const store_options *options, store **out)
{
    *out = NULL;
    char operation[sizeof "open store " + PATH_MAX];
    snprintf(operation, sizeof operation, "open store %s", directory != NULL ? directory : "");
    store *opened = calloc(1, sizeof *opened);
    store_call call = { .store = opened, .operation = operation };
    if (opened == NULL)
        return fail(&call, -ENOMEM, "out of memory");
    opened->read_only = options != NULL && options->read_only;
    uint64_t map_size = options != NULL && options->map_size != 0 ? options->map_size
                                                                  : DEFAULT_MAP_SIZE;
    int result = open_store(&call, directory, map_size);
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
    free(store->data_file);
    free(store);
}

int store_sync(store *store)
{
    store_call call = { .store = store, .operation = "sync store" };
    if (store->read_only)
        return 0;
    int code = mdb_env_sync(store->environment, 1);
    if (code != 0)
        return fail_lmdb(&call, code, "mdb_env_sync");
    return 0;
}

int store_get_statistics(store *store, store_statistics *statistics)
{
    store_call call = { .store = store, .operation = "get store statistics" };
    struct stat file;
    if (stat(store->data_file, &file) != 0) {
        int error = errno;
        return fail(&call, -error, "stat %s: %s", store->data_file, strerror(error));
    }
    MDB_envinfo info;
    int code = mdb_env_info(store->environment, &info);
    if (code != 0)
        return fail_lmdb(&call, code, "mdb_env_info");
    MDB_stat environment_stat;
    code = mdb_env_stat(store->environment, &environment_stat);
    if (code != 0)
        return fail_lmdb(&call, code, "mdb_env_stat");
    statistics->file_bytes = (uint64_t)file.st_size;
    /* Pages are numbered from 0, and every page up to the last one is
     * either in use or on LMDB's free list waiting for reuse. */
    statistics->used_bytes = ((uint64_t)info.me_last_pgno + 1) * environment_stat.ms_psize;
    return 0;
}

int store_create_collection(store *store, const char *name)
{
    store_call call = { .store = store, .operation = "create collection", .collection = name };
    int result = begin_call(&call, WRITE, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, create_collection(&call));
}

int store_drop_collection(store *store, const char *name)
{
    store_call call = { .store = store, .operation = "drop collection", .collection = name };
    int result = begin_call(&call, WRITE, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, drop_collection(&call));
}

int store_has_collection(store *store, const char *name)
{
    store_call call = { .store = store, .operation = "look up collection", .collection = name };
    int result = begin_call(&call, READ, ONE_COLLECTION);
    if (result != 0)
        return result;
    int exists = collection_exists(&call);
    result = finish_call(&call, exists < 0 ? exists : 0);
    return result != 0 ? result : exists;
}

int store_list_collections(store *store, int (*visit)(const char *name, void *context),
                           void *context)
{
    store_call call = { .store = store, .operation = "list collections" };
    int result = begin_call(&call, READ, WHOLE_STORE);
    if (result != 0)
        return result;
    return finish_call(&call, for_each_name(&call, store->collections, visit, context));
}

int store_count_objects(store *store, const char *collection, uint64_t *count)
{
    store_call call = { .store = store, .operation = "count objects", .collection = collection };
    int result = begin_call(&call, READ, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, count_objects(&call, count));
}

int store_get_object_info(store *store, const char *collection, const json_t *id,
                          store_object_info *info)
{
    return store_get_object(store, collection, id, NULL, info);
}

int store_get_object(store *store, const char *collection, const json_t *id, char **text,
                     store_object_info *info)
{
    store_call call = { .store = store, .operation = "get object", .collection = collection };
    int result = begin_call(&call, READ, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, get_object(&call, id, text, info));
}

int store_put_object(store *store, const char *collection, const json_t *id, const char *text,
                     size_t size, int64_t modified_ns, store_object_info *info)
{
    store_call call = { .store = store, .operation = "put object", .collection = collection };
    int result = begin_call(&call, WRITE, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, put_object(&call, id, text, size, modified_ns, info));
}

int store_delete_object(store *store, const char *collection, const json_t *id)
{
    store_call call = { .store = store, .operation = "delete object", .collection = collection };
    int result = begin_call(&call, WRITE, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, delete_object(&call, id));
}

int store_rename_object(store *store, const char *collection, const json_t *old_id,
                        const json_t *new_id, const char *text, size_t size,
                        int64_t modified_ns, store_object_info *info)
{
    store_call call = { .store = store, .operation = "rename object", .collection = collection };
    int result = begin_call(&call, WRITE, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call,
                       rename_object(&call, old_id, new_id, text, size, modified_ns, info));
}

int store_scan_objects(store *store, const char *collection, const json_t *start,
                       bool skip_start,
                       int (*visit)(const store_object_view *object, void *context),
                       void *context)
{
    store_call call = { .store = store, .operation = "scan objects", .collection = collection };
    int result = begin_call(&call, READ, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, scan_objects(&call, start, skip_start, true, visit, context));
}

int store_scan_object_texts(store *store, const char *collection, const json_t *start,
                            bool skip_start,
                            int (*visit)(const store_object_view *object, void *context),
                            void *context)
{
    store_call call = { .store = store, .operation = "scan objects", .collection = collection };
    int result = begin_call(&call, READ, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, scan_objects(&call, start, skip_start, false, visit, context));
}

int store_object_view_id(const store_object_view *object, json_t **id)
{
    if (object->id != NULL) {
        *id = json_incref((json_t *)object->id);
        return 0;
    }
    store_call call = { .operation = "decode object id" };
    return decode_id(&call, object->stored_id, object->stored_id_size, id);
}

int store_get_schema(store *store, const char *collection, char **text, size_t *size)
{
    store_call call = { .store = store, .operation = "get schema", .collection = collection };
    int result = begin_call(&call, READ, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, get_schema(&call, text, size));
}

int store_put_schema(store *store, const char *collection, const char *text, size_t size)
{
    store_call call = { .store = store, .operation = "put schema", .collection = collection };
    int result = begin_call(&call, WRITE, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, put_schema(&call, text, size));
}

int store_delete_schema(store *store, const char *collection)
{
    store_call call = { .store = store, .operation = "delete schema", .collection = collection };
    int result = begin_call(&call, WRITE, ONE_COLLECTION);
    if (result != 0)
        return result;
    return finish_call(&call, delete_schema(&call));
}

int store_list_schemas(store *store, int (*visit)(const char *collection, void *context),
                       void *context)
{
    store_call call = { .store = store, .operation = "list schemas" };
    int result = begin_call(&call, READ, WHOLE_STORE);
    if (result != 0)
        return result;
    return finish_call(&call, for_each_name(&call, store->schemas, visit, context));
}

/*
 * lmdb_support.c — the plumbing of lmdb_support.h.
 */
#include "lmdb_support.h"

#include "realmfs/value.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    ID_TAG_INT = 0x01,
    ID_TAG_OBJECT_ID = 0x02,
    ID_TAG_STRING = 0x03,
    SORTABLE_INT_SIZE = 8,
};

/* ------------------------------------------------------------------ */
/* Errors                                                              */

int lmdb_fail(const lmdb_call *call, int error, const char *format, ...)
{
    char *message = call->last_error->text;
    size_t size = sizeof call->last_error->text;
    int used;
    if (call->collection != NULL)
        used = snprintf(message, size, "%s in collection \"%.*s\": ", call->operation,
                        LMDB_COLLECTION_NAME_MAX, call->collection);
    else
        used = snprintf(message, size, "%s: ", call->operation);
    if (used < 0 || (size_t)used >= size)
        return error;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message + used, size - (size_t)used, format, arguments);
    va_end(arguments);
    return error;
}

int lmdb_errno(int code)
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

int lmdb_fail_mdb(const lmdb_call *call, int code, const char *mdb_function)
{
    if (code == MDB_MAP_FULL)
        return lmdb_fail(call, -ENOSPC,
                         "%s: the store is full (%s); reopen it with a larger map size",
                         mdb_function, mdb_strerror(code));
    return lmdb_fail(call, lmdb_errno(code), "%s: %s", mdb_function, mdb_strerror(code));
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

int lmdb_call_begin(lmdb_call *call, MDB_env *environment, bool write)
{
    int code = mdb_txn_begin(environment, NULL, write ? 0 : MDB_RDONLY, &call->transaction);
    if (code != 0) {
        call->transaction = NULL;
        return lmdb_fail_mdb(call, code, "mdb_txn_begin");
    }
    return 0;
}

int lmdb_call_finish(lmdb_call *call, int result)
{
    MDB_txn *transaction = call->transaction;
    call->transaction = NULL;
    if (result != 0) {
        mdb_txn_abort(transaction);
        return result;
    }
    int code = mdb_txn_commit(transaction);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_txn_commit");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */

int lmdb_make_directory(const lmdb_call *call, const char *path, mode_t mode)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        int error = errno;
        return lmdb_fail(call, -error, "mkdir %s: %s", path, strerror(error));
    }
    return 0;
}

int lmdb_make_directories(const lmdb_call *call, const char *path, mode_t mode)
{
    char *partial = strdup(path);
    if (partial == NULL)
        return lmdb_fail(call, -ENOMEM, "out of memory");
    int result = 0;
    for (char *slash = strchr(partial + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash != NULL)
            *slash = '\0';
        result = lmdb_make_directory(call, partial, mode);
        if (result != 0 || slash == NULL)
            break;
        *slash = '/';
    }
    free(partial);
    return result;
}

static int configure_and_open(const lmdb_call *call, MDB_env *environment, const char *directory,
                              const lmdb_environment_options *options)
{
    int code = mdb_env_set_maxdbs(environment, options->max_databases);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_env_set_maxdbs");
    code = mdb_env_set_mapsize(environment, (size_t)options->map_size);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_env_set_mapsize");
    code = mdb_env_open(environment, directory, options->flags, options->mode);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_env_open");
    int stale_readers;
    code = mdb_reader_check(environment, &stale_readers);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_reader_check");
    return 0;
}

int lmdb_open_environment(const lmdb_call *call, const char *directory,
                          const lmdb_environment_options *options, MDB_env **environment)
{
    *environment = NULL;
    if (options->map_size > SIZE_MAX)
        return lmdb_fail(call, -EINVAL, "a map size of %llu bytes does not fit this platform",
                         (unsigned long long)options->map_size);
    MDB_env *created;
    int code = mdb_env_create(&created);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_env_create");
    int result = configure_and_open(call, created, directory, options);
    if (result != 0) {
        mdb_env_close(created);
        return result;
    }
    *environment = created;
    return 0;
}

size_t lmdb_max_key_size(MDB_env *environment)
{
    int max_key_size = mdb_env_get_maxkeysize(environment);
    return max_key_size < LMDB_KEY_CAPACITY ? (size_t)max_key_size : LMDB_KEY_CAPACITY;
}

int lmdb_open_database(const lmdb_call *call, const char *name, unsigned int flags,
                       MDB_dbi *database)
{
    int code = mdb_dbi_open(call->transaction, name, flags, database);
    if (code == MDB_NOTFOUND)
        return lmdb_fail(call, -ENOENT, "not a realmfs store (no \"%s\" database)", name);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_dbi_open");
    return 0;
}

int lmdb_check_format(const lmdb_call *call, MDB_dbi meta, uint64_t format_version,
                      bool may_create)
{
    uint64_t format;
    int found = lmdb_get_number(call, meta, "format", &format);
    if (found < 0)
        return found;
    if (!found && !may_create)
        return lmdb_fail(call, -ENOENT, "not a realmfs store (no format version)");
    if (!found)
        return lmdb_put_number(call, meta, "format", format_version);
    if (format != format_version)
        return lmdb_fail(call, -ENOTSUP, "format version %llu; this program reads version %llu",
                         (unsigned long long)format, (unsigned long long)format_version);
    return 0;
}

int lmdb_data_file_bytes(const lmdb_call *call, MDB_env *environment, uint64_t *bytes)
{
    const char *directory;
    int code = mdb_env_get_path(environment, &directory);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_env_get_path");
    char path[PATH_MAX];
    int length = snprintf(path, sizeof path, "%s/data.mdb", directory);
    if (length < 0 || (size_t)length >= sizeof path)
        return lmdb_fail(call, -ENAMETOOLONG, "the path of %s/data.mdb is too long", directory);
    struct stat file;
    if (stat(path, &file) != 0) {
        int error = errno;
        return lmdb_fail(call, -error, "stat %s: %s", path, strerror(error));
    }
    *bytes = (uint64_t)file.st_size;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Records                                                             */

MDB_val lmdb_text_value(const char *text)
{
    return (MDB_val){ .mv_size = strlen(text), .mv_data = (void *)text };
}

int lmdb_get_number(const lmdb_call *call, MDB_dbi database, const char *name, uint64_t *value)
{
    *value = 0;
    MDB_val key = lmdb_text_value(name), data;
    int code = mdb_get(call->transaction, database, &key, &data);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_get");
    if (data.mv_size != sizeof *value)
        return lmdb_fail(call, -EIO, "corrupt record \"%s\" (%zu bytes)", name, data.mv_size);
    memcpy(value, data.mv_data, sizeof *value);
    return 1;
}

int lmdb_put_number(const lmdb_call *call, MDB_dbi database, const char *name, uint64_t value)
{
    MDB_val key = lmdb_text_value(name);
    MDB_val data = { .mv_size = sizeof value, .mv_data = &value };
    int code = mdb_put(call->transaction, database, &key, &data, 0);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_put");
    return 0;
}

MDB_val lmdb_number_key_value(lmdb_number_key *key, uint64_t number)
{
    uint64_t big_endian = htobe64(number);
    memcpy(key->bytes, &big_endian, sizeof key->bytes);
    return (MDB_val){ .mv_size = sizeof key->bytes, .mv_data = key->bytes };
}

int lmdb_number_key_decode(const lmdb_call *call, const MDB_val *key, uint64_t *number)
{
    uint64_t big_endian;
    if (key->mv_size != sizeof big_endian)
        return lmdb_fail(call, -EIO, "corrupt number key (%zu bytes)", key->mv_size);
    memcpy(&big_endian, key->mv_data, sizeof big_endian);
    *number = be64toh(big_endian);
    return 0;
}

int lmdb_parse_json_record(const lmdb_call *call, const MDB_val *value, json_t **record)
{
    json_error_t error;
    *record = json_loadb(value->mv_data, value->mv_size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                         &error);
    if (*record == NULL)
        return lmdb_fail(call, -EIO, "damaged record: %s", error.text);
    if (!json_is_object(*record)) {
        json_decref(*record);
        *record = NULL;
        return lmdb_fail(call, -EIO, "damaged record: not a JSON object");
    }
    return 0;
}

int lmdb_put_json_record(const lmdb_call *call, MDB_dbi database, const MDB_val *key,
                         const json_t *record, unsigned int flags)
{
    char *text = json_dumps(record, JSON_COMPACT);
    if (text == NULL)
        return lmdb_fail(call, -ENOMEM, "out of memory");
    MDB_val value = lmdb_text_value(text);
    int code = mdb_put(call->transaction, database, (MDB_val *)key, &value, flags);
    free(text);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_put");
    return 0;
}

int lmdb_cursor_finish(const lmdb_call *call, MDB_cursor *cursor, int result, int code,
                       const char *mdb_function)
{
    mdb_cursor_close(cursor);
    if (result != 0)
        return result;
    if (code != 0 && code != MDB_NOTFOUND)
        return lmdb_fail_mdb(call, code, mdb_function);
    return 0;
}

int lmdb_for_each_name(const lmdb_call *call, MDB_dbi database,
                       int (*visit)(const char *name, void *context), void *context)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->transaction, database, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_cursor_open");
    MDB_val key, value;
    int result = 0;
    for (code = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); code == 0;
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        char name[LMDB_COLLECTION_NAME_MAX + 1];
        if (key.mv_size == 0 || key.mv_size > LMDB_COLLECTION_NAME_MAX
            || memchr(key.mv_data, '\0', key.mv_size) != NULL) {
            result = lmdb_fail(call, -EIO, "corrupt collection name (%zu bytes)", key.mv_size);
            break;
        }
        memcpy(name, key.mv_data, key.mv_size);
        name[key.mv_size] = '\0';
        result = visit(name, context);
        if (result != 0)
            break;
    }
    return lmdb_cursor_finish(call, cursor, result, code, "mdb_cursor_get");
}

/* ------------------------------------------------------------------ */
/* Object keys                                                         */

int lmdb_check_collection_name(const lmdb_call *call, const char *collection)
{
    if (collection == NULL || collection[0] == '\0')
        return lmdb_fail(call, -EINVAL, "a collection name must not be empty");
    if (strnlen(collection, LMDB_COLLECTION_NAME_MAX + 1) > LMDB_COLLECTION_NAME_MAX)
        return lmdb_fail(call, -ENAMETOOLONG, "a collection name has at most %d bytes",
                         LMDB_COLLECTION_NAME_MAX);
    return 0;
}

void lmdb_object_key_start(lmdb_object_key *key, const char *collection)
{
    size_t length = strlen(collection);
    memcpy(key->bytes, collection, length);
    key->bytes[length] = 0x00;
    key->size = length + 1;
    key->collection_prefix_size = length + 1;
}

/* Flipping the sign bit maps INT64_MIN..INT64_MAX onto 0..UINT64_MAX in
 * the same order; big-endian bytes then compare like the numbers. */
static void encode_sortable_int(int64_t number, uint8_t bytes[SORTABLE_INT_SIZE])
{
    uint64_t big_endian = htobe64((uint64_t)number ^ (UINT64_C(1) << 63));
    memcpy(bytes, &big_endian, sizeof big_endian);
}

static int64_t decode_sortable_int(const uint8_t bytes[SORTABLE_INT_SIZE])
{
    uint64_t big_endian;
    memcpy(&big_endian, bytes, sizeof big_endian);
    return (int64_t)(be64toh(big_endian) ^ (UINT64_C(1) << 63));
}

int lmdb_object_key_append_id(const lmdb_call *call, lmdb_object_key *key, const json_t *id,
                              size_t max_key_size)
{
    uint8_t fixed[VALUE_OBJECT_ID_SIZE];
    const void *payload = fixed;
    size_t payload_size;
    uint8_t tag;
    if (id == NULL)
        return lmdb_fail(call, -EINVAL, "no object id given");
    value_type type = value_type_of(id);
    switch (type) {
    case VALUE_INT:
        tag = ID_TAG_INT;
        encode_sortable_int(json_integer_value(id), fixed);
        payload_size = SORTABLE_INT_SIZE;
        break;
    case VALUE_OBJECT_ID:
        tag = ID_TAG_OBJECT_ID;
        if (!value_get_object_id(id, fixed))
            return lmdb_fail(call, -EINVAL, "malformed objectId");
        payload_size = VALUE_OBJECT_ID_SIZE;
        break;
    case VALUE_STRING:
        tag = ID_TAG_STRING;
        payload = json_string_value(id);
        payload_size = json_string_length(id);
        break;
    default:
        return lmdb_fail(call, -EINVAL,
                         "an object id must be a string, long or objectId, not %s",
                         value_type_name(type));
    }
    size_t room = max_key_size - key->size - 1;
    if (payload_size > room)
        return lmdb_fail(call, -ENAMETOOLONG,
                         "the object id has %zu bytes; this collection allows %zu",
                         payload_size, room);
    key->bytes[key->size] = tag;
    memcpy(key->bytes + key->size + 1, payload, payload_size);
    key->size += 1 + payload_size;
    return 0;
}

int lmdb_object_key_build(const lmdb_call *call, const char *collection, const json_t *id,
                          size_t max_key_size, lmdb_object_key *key)
{
    int result = lmdb_check_collection_name(call, collection);
    if (result != 0)
        return result;
    lmdb_object_key_start(key, collection);
    return lmdb_object_key_append_id(call, key, id, max_key_size);
}

MDB_val lmdb_object_key_value(const lmdb_object_key *key)
{
    return (MDB_val){ .mv_size = key->size, .mv_data = (void *)key->bytes };
}

bool lmdb_object_key_in_collection(const MDB_val *key, const lmdb_object_key *collection_key)
{
    return key->mv_size >= collection_key->collection_prefix_size
        && memcmp(key->mv_data, collection_key->bytes,
                  collection_key->collection_prefix_size) == 0;
}

bool lmdb_object_key_equals(const MDB_val *key, const lmdb_object_key *other)
{
    return key->mv_size == other->size && memcmp(key->mv_data, other->bytes, other->size) == 0;
}

int lmdb_object_key_decode_id(const lmdb_call *call, const uint8_t *bytes, size_t size,
                              json_t **id)
{
    json_t *decoded;
    if (size == 1 + SORTABLE_INT_SIZE && bytes[0] == ID_TAG_INT) {
        decoded = json_integer(decode_sortable_int(bytes + 1));
    } else if (size == 1 + VALUE_OBJECT_ID_SIZE && bytes[0] == ID_TAG_OBJECT_ID) {
        decoded = value_new_object_id(bytes + 1);
    } else if (size >= 1 && bytes[0] == ID_TAG_STRING) {
        /* The bytes were copied from a json string, so they are valid
         * UTF-8 and checking them again would only slow listings down. */
        decoded = json_stringn_nocheck((const char *)bytes + 1, size - 1);
    } else {
        return lmdb_fail(call, -EIO, "corrupt object key (%zu id bytes)", size);
    }
    if (decoded == NULL)
        return lmdb_fail(call, -ENOMEM, "out of memory decoding an object id");
    *id = decoded;
    return 0;
}

int lmdb_for_each_object(const lmdb_call *call, MDB_dbi database, const lmdb_object_key *from,
                         lmdb_object_step *step, void *state)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->transaction, database, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(call, code, "mdb_cursor_open");
    MDB_val key = lmdb_object_key_value(from), value;
    int result = 0;
    for (code = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
         code == 0 && lmdb_object_key_in_collection(&key, from);
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        result = step(call, &key, &value, state);
        if (result != 0)
            break;
    }
    return lmdb_cursor_finish(call, cursor, result, code, "mdb_cursor_get");
}

/*
 * sync_store_lmdb.c — the sync server's store of sync_store.h on LMDB, in
 * <data>/sync, with eight named databases:
 *
 *   meta         "format", "server_version", "oldest_history",
 *                "next_file_identity"                  -> uint64_t
 *   collections  collection name                       -> uint64_t count of
 *                                                         existing objects
 *   states       object key                            -> merge state, the
 *                                                         compact JSON of
 *                                                         object_state_to_json
 *   documents    object key                            -> canonical text of
 *                                                         the visible document
 *   tombstones   object key                            -> int64_t latest
 *                                                         timestamp of the state
 *   history      server version (8 bytes big-endian)   -> history_header, then
 *                                                         the changeset's
 *                                                         compact JSON
 *   files        file identity (8 bytes big-endian)    -> file record (JSON)
 *   notices      file identity, client version (8      -> notice record (JSON)
 *                bytes big-endian each), position
 *                in its upload (4 bytes big-endian)
 *
 * Object keys are those of lmdb_support.h, so a collection's documents
 * are in the id order store.h documents.  A document record exists exactly
 * while its object exists, so that a bootstrap scan reads documents
 * without parsing merge states; a tombstone record exists exactly while a
 * state exists whose object does not, so that trimming visits only those.
 * File records are {"user_id", "last_integrated_client_version",
 * "query_version", "subscriptions", "last_seen"} ("last_seen" in ms).
 * Notice records are {"collection", "reason", "server_version", "object"},
 * "object" the text of {"id": <id>, "server_document": <document or
 * null>} in one-line canonical Extended JSON, which keeps every value's
 * type exactly.
 * Numbers inside values are in native byte order, like every realmfs
 * LMDB file.
 */
#include "realmfs/sync_store.h"

#include "realmfs/ejson.h"
#include "realmfs/value.h"

#include "lmdb_support.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    DATABASE_COUNT = 8,
    MESSAGE_SIZE = 256,
};

#define DEFAULT_MAP_SIZE (UINT64_C(64) << 30)
#define FORMAT_VERSION UINT64_C(1)
#define META_SERVER_VERSION "server_version"
#define META_OLDEST_HISTORY "oldest_history"
#define META_NEXT_FILE_IDENTITY "next_file_identity"

struct sync_store {
    MDB_env *environment;
    MDB_dbi meta;
    MDB_dbi collections;
    MDB_dbi states;
    MDB_dbi documents;
    MDB_dbi tombstones;
    MDB_dbi history;
    MDB_dbi files;
    MDB_dbi notices;
    size_t max_key_size;
};

struct sync_store_snapshot {
    sync_store *store;
    MDB_txn *transaction;
    uint64_t server_version;
};

/* The fixed start of every history record; the changeset's JSON follows. */
typedef struct history_header {
    int64_t integrated_ms;
} history_header;

typedef struct sync_call {
    lmdb_call lmdb;
    sync_store *store;
} sync_call;

/* ------------------------------------------------------------------ */
/* Calls                                                               */

static _Thread_local lmdb_error_message last_error;

const char *sync_store_last_error(void)
{
    return last_error.text;
}

/* collection is NULL when the call names none. */
static sync_call new_call(sync_store *store, const char *operation, const char *collection)
{
    return (sync_call){
        .lmdb = { .last_error = &last_error, .operation = operation, .collection = collection },
        .store = store,
    };
}

static int begin_call(sync_call *call, bool write)
{
    return lmdb_call_begin(&call->lmdb, call->store->environment, write);
}

static int finish_call(sync_call *call, int result)
{
    return lmdb_call_finish(&call->lmdb, result);
}

/* A call that reads in a snapshot's transaction, which outlives it. */
static sync_call snapshot_call(sync_store_snapshot *snapshot, const char *operation,
                               const char *collection)
{
    sync_call call = new_call(snapshot->store, operation, collection);
    call.lmdb.transaction = snapshot->transaction;
    return call;
}

static int fail_out_of_memory(const sync_call *call)
{
    return lmdb_fail(&call->lmdb, -ENOMEM, "out of memory");
}

static int get_meta(const sync_call *call, const char *name, uint64_t missing_value,
                    uint64_t *value)
{
    int found = lmdb_get_number(&call->lmdb, call->store->meta, name, value);
    if (found < 0)
        return found;
    if (!found)
        *value = missing_value;
    return 0;
}

static int put_meta(const sync_call *call, const char *name, uint64_t value)
{
    return lmdb_put_number(&call->lmdb, call->store->meta, name, value);
}

static int get_server_version(const sync_call *call, uint64_t *version)
{
    return get_meta(call, META_SERVER_VERSION, 0, version);
}

/* The first version still in the history: 1 until something is trimmed. */
static int get_oldest_history(const sync_call *call, uint64_t *version)
{
    return get_meta(call, META_OLDEST_HISTORY, 1, version);
}

/* mdb_del that accepts a missing key. */
static int delete_if_present(const sync_call *call, MDB_dbi database, MDB_val *key)
{
    int code = mdb_del(call->lmdb.transaction, database, key, NULL);
    if (code != 0 && code != MDB_NOTFOUND)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_del");
    return 0;
}

static int put_record(const sync_call *call, MDB_dbi database, MDB_val *key, const void *bytes,
                      size_t size)
{
    MDB_val value = { .mv_size = size, .mv_data = (void *)bytes };
    int code = mdb_put(call->lmdb.transaction, database, key, &value, 0);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Collections                                                         */

/* The count of a collection's existing objects; 0 for one never seen. */
static int get_collection_count(const sync_call *call, const char *collection, uint64_t *count)
{
    int found = lmdb_get_number(&call->lmdb, call->store->collections, collection, count);
    return found < 0 ? found : 0;
}

static int add_to_collection_count(const sync_call *call, const char *collection, int64_t delta)
{
    uint64_t count;
    int result = get_collection_count(call, collection, &count);
    if (result != 0)
        return result;
    if (delta < 0 && count < (uint64_t)-delta)
        return lmdb_fail(&call->lmdb, -EIO, "the object count of \"%s\" is damaged", collection);
    return lmdb_put_number(&call->lmdb, call->store->collections, collection,
                           count + (uint64_t)delta);
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

void sync_store_file_clear(sync_store_file *file)
{
    free(file->user_id);
    json_decref(file->subscriptions);
    *file = (sync_store_file){ 0 };
}

static int load_file_record(const sync_call *call, uint64_t identity, json_t **record)
{
    lmdb_number_key key_bytes;
    MDB_val key = lmdb_number_key_value(&key_bytes, identity), value;
    int code = mdb_get(call->lmdb.transaction, call->store->files, &key, &value);
    if (code == MDB_NOTFOUND)
        return lmdb_fail(&call->lmdb, -ENOENT, "no client file %llu",
                         (unsigned long long)identity);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    return lmdb_parse_json_record(&call->lmdb, &value, record);
}

static int save_file_record(const sync_call *call, uint64_t identity, const json_t *record,
                            unsigned int flags)
{
    lmdb_number_key key_bytes;
    MDB_val key = lmdb_number_key_value(&key_bytes, identity);
    return lmdb_put_json_record(&call->lmdb, call->store->files, &key, record, flags);
}

static bool read_record_number(const json_t *record, const char *name, uint64_t *number)
{
    const json_t *value = json_object_get(record, name);
    if (!json_is_integer(value) || json_integer_value(value) < 0)
        return false;
    *number = (uint64_t)json_integer_value(value);
    return true;
}

static int file_from_record(const sync_call *call, uint64_t identity, const json_t *record,
                            sync_store_file *file)
{
    const json_t *user_id = json_object_get(record, "user_id");
    const json_t *subscriptions = json_object_get(record, "subscriptions");
    const json_t *last_seen = json_object_get(record, "last_seen");
    uint64_t last_integrated, query_version;
    if (!json_is_string(user_id) || !json_is_object(subscriptions)
        || !json_is_integer(last_seen)
        || !read_record_number(record, "last_integrated_client_version", &last_integrated)
        || !read_record_number(record, "query_version", &query_version))
        return lmdb_fail(&call->lmdb, -EIO, "the record of client file %llu is damaged",
                         (unsigned long long)identity);
    *file = (sync_store_file){
        .identity = identity,
        .user_id = strdup(json_string_value(user_id)),
        .last_integrated_client_version = last_integrated,
        .query_version = query_version,
        .subscriptions = json_deep_copy(subscriptions),
        .last_seen_ms = json_integer_value(last_seen),
    };
    if (file->user_id == NULL || file->subscriptions == NULL) {
        sync_store_file_clear(file);
        return fail_out_of_memory(call);
    }
    return 0;
}

/* The next identity: never 0, never reused. */
static int create_file(const sync_call *call, const char *user_id, int64_t now_ms,
                       uint64_t *identity)
{
    if (user_id == NULL)
        return lmdb_fail(&call->lmdb, -EINVAL, "no user id given");
    uint64_t next;
    int result = get_meta(call, META_NEXT_FILE_IDENTITY, 1, &next);
    if (result != 0)
        return result;
    if (next > INT64_MAX)
        return lmdb_fail(&call->lmdb, -EOVERFLOW, "every file identity is taken");
    json_t *record = json_pack("{s:s, s:I, s:I, s:{}, s:I}", "user_id", user_id,
                               "last_integrated_client_version", (json_int_t)0,
                               "query_version", (json_int_t)0, "subscriptions",
                               "last_seen", (json_int_t)now_ms);
    if (record == NULL)
        return lmdb_fail(&call->lmdb, -EINVAL, "the user id is not UTF-8, or out of memory");
    result = save_file_record(call, next, record, MDB_NOOVERWRITE);
    json_decref(record);
    if (result == 0)
        result = put_meta(call, META_NEXT_FILE_IDENTITY, next + 1);
    if (result == 0)
        *identity = next;
    return result;
}

/* Replaces one member of a file's record; takes the reference to value. */
static int update_file(const sync_call *call, uint64_t identity, const char *member,
                       json_t *value)
{
    if (value == NULL)
        return fail_out_of_memory(call);
    json_t *record;
    int result = load_file_record(call, identity, &record);
    if (result != 0) {
        json_decref(value);
        return result;
    }
    if (json_object_set_new(record, member, value) != 0)
        result = fail_out_of_memory(call);
    else
        result = save_file_record(call, identity, record, 0);
    json_decref(record);
    return result;
}

static int set_file_query(const sync_call *call, uint64_t identity, uint64_t query_version,
                          const json_t *subscriptions)
{
    if (!json_is_object(subscriptions))
        return lmdb_fail(&call->lmdb, -EINVAL, "subscriptions must be a JSON object");
    if (query_version > INT64_MAX)
        return lmdb_fail(&call->lmdb, -EINVAL, "query version %llu is out of range",
                         (unsigned long long)query_version);
    int result = update_file(call, identity, "subscriptions", json_deep_copy(subscriptions));
    if (result == 0)
        result = update_file(call, identity, "query_version",
                             json_integer((json_int_t)query_version));
    return result;
}

/* ------------------------------------------------------------------ */
/* The objects an integration works on                                 */

/* One object loaded into an integration: its merge state and visible
 * document, changed in memory and written back once at the end. */
typedef struct cached_object {
    lmdb_object_key key;     /* bytes start with the collection as a C string */
    object_state *state;
    json_t *document;        /* visible now; NULL when the object does not exist */
    char *text;              /* canonical text of document; NULL with it */
    size_t text_size;
    bool existed_before;     /* a document was stored when it was loaded */
    bool state_was_stored;
    bool dirty;              /* its state took an instruction */
    /* While integrating one changeset: */
    bool touched;
    json_t *document_before; /* at the changeset's first touch */
} cached_object;

/* The objects of one integration, found by key in an open-addressing hash
 * table of indexes (plus one, so that 0 is an empty slot). */
typedef struct object_cache {
    cached_object *objects;
    size_t count;
    size_t capacity;
    size_t *slots;
    size_t slot_count;  /* a power of two, more than twice count */
    size_t *touched;    /* indexes, in order of first touch in a changeset */
    size_t touched_count;
} object_cache;

static const char *cached_collection(const cached_object *object)
{
    return (const char *)object->key.bytes;
}

static uint64_t hash_key(const uint8_t *bytes, size_t size)
{
    /* FNV-1a */
    uint64_t hash = UINT64_C(14695981039346656037);
    for (size_t index = 0; index < size; index++) {
        hash ^= bytes[index];
        hash *= UINT64_C(1099511628211);
    }
    return hash;
}

/* The slot that holds key, or the empty slot where it would go. */
static size_t *cache_slot(const object_cache *cache, const lmdb_object_key *key)
{
    size_t mask = cache->slot_count - 1;
    for (size_t slot = hash_key(key->bytes, key->size) & mask;; slot = (slot + 1) & mask) {
        size_t index = cache->slots[slot];
        if (index == 0)
            return &cache->slots[slot];
        const lmdb_object_key *other = &cache->objects[index - 1].key;
        if (other->size == key->size && memcmp(other->bytes, key->bytes, key->size) == 0)
            return &cache->slots[slot];
    }
}

static int cache_grow_slots(object_cache *cache)
{
    size_t slot_count = cache->slot_count == 0 ? 64 : cache->slot_count * 2;
    size_t *slots = calloc(slot_count, sizeof *slots);
    if (slots == NULL)
        return -ENOMEM;
    free(cache->slots);
    cache->slots = slots;
    cache->slot_count = slot_count;
    for (size_t index = 0; index < cache->count; index++)
        *cache_slot(cache, &cache->objects[index].key) = index + 1;
    return 0;
}

/* Room for one more object (and its index in the touched list). */
static int cache_reserve(object_cache *cache)
{
    if (cache->count == cache->capacity) {
        size_t capacity = cache->capacity == 0 ? 16 : cache->capacity * 2;
        cached_object *objects = realloc(cache->objects, capacity * sizeof *objects);
        if (objects == NULL)
            return -ENOMEM;
        cache->objects = objects;
        size_t *touched = realloc(cache->touched, capacity * sizeof *touched);
        if (touched == NULL)
            return -ENOMEM;
        cache->touched = touched;
        cache->capacity = capacity;
    }
    if (2 * (cache->count + 1) >= cache->slot_count)
        return cache_grow_slots(cache);
    return 0;
}

static void cached_object_release(cached_object *object)
{
    object_state_free(object->state);
    json_decref(object->document);
    json_decref(object->document_before);
    free(object->text);
}

static void cache_release(object_cache *cache)
{
    for (size_t index = 0; index < cache->count; index++)
        cached_object_release(&cache->objects[index]);
    free(cache->objects);
    free(cache->slots);
    free(cache->touched);
}

static int load_state(const sync_call *call, const MDB_val *value, object_state **state)
{
    json_error_t error;
    json_t *json = json_loadb(value->mv_data, value->mv_size, JSON_ALLOW_NUL, &error);
    if (json == NULL)
        return lmdb_fail(&call->lmdb, -EIO, "damaged merge state: %s", error.text);
    char message[MESSAGE_SIZE];
    int result = object_state_from_json(json, state, message, sizeof message);
    json_decref(json);
    if (result == -EINVAL)
        return lmdb_fail(&call->lmdb, -EIO, "damaged merge state: %s", message);
    if (result != 0)
        return fail_out_of_memory(call);
    return 0;
}

/* Fills object (whose key is set) from the store. */
static int load_object(const sync_call *call, cached_object *object, const json_t *id)
{
    MDB_val key = lmdb_object_key_value(&object->key), value;
    int code = mdb_get(call->lmdb.transaction, call->store->states, &key, &value);
    if (code != 0 && code != MDB_NOTFOUND)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    object->state_was_stored = code == 0;
    if (code == MDB_NOTFOUND) {
        object->state = object_state_new(id);
        return object->state != NULL ? 0 : fail_out_of_memory(call);
    }
    int result = load_state(call, &value, &object->state);
    if (result != 0)
        return result;
    code = mdb_get(call->lmdb.transaction, call->store->documents, &key, &value);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    object->existed_before = true;
    object->text = malloc(value.mv_size);
    if (object->text == NULL)
        return fail_out_of_memory(call);
    memcpy(object->text, value.mv_data, value.mv_size);
    object->text_size = value.mv_size;
    if (object_state_document(object->state, &object->document) != 0)
        return fail_out_of_memory(call);
    if (object->document == NULL)
        return lmdb_fail(&call->lmdb, -EIO, "a document is stored for an object whose merge "
                                            "state says it does not exist");
    return 0;
}

/* The index of the cached object (collection, id), loading it on first
 * use. */
static int cache_find(const sync_call *call, object_cache *cache, const char *collection,
                      const json_t *id, size_t *index)
{
    if (cache_reserve(cache) != 0)
        return fail_out_of_memory(call);
    cached_object *object = &cache->objects[cache->count];
    *object = (cached_object){ 0 };
    int result = lmdb_object_key_build(&call->lmdb, collection, id, call->store->max_key_size,
                                       &object->key);
    if (result != 0)
        return result;
    size_t *slot = cache_slot(cache, &object->key);
    if (*slot != 0) {
        *index = *slot - 1;
        return 0;
    }
    result = load_object(call, object, id);
    if (result != 0) {
        cached_object_release(object);
        return result;
    }
    *index = cache->count++;
    *slot = *index + 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Integration                                                         */

void sync_store_integration_clear(sync_store_integration *integration)
{
    for (size_t index = 0; index < integration->change_count; index++) {
        sync_store_object_change *change = &integration->changes[index];
        free(change->collection);
        json_decref(change->id);
        json_decref(change->old_document);
        json_decref(change->new_document);
    }
    free(integration->changes);
    *integration = (sync_store_integration){ 0 };
}

/* The record of the file whose changesets are being integrated.  The
 * changesets of one upload come from one file: its record is read once
 * and written once, not parsed and written again for each of them. */
typedef struct origin_record {
    uint64_t identity; /* 0: none held */
    json_t *record;
    bool changed;
} origin_record;

/* Writes the record held when it changed, and lets it go. */
static int origin_record_flush(const sync_call *call, origin_record *origin)
{
    int result = 0;
    if (origin->record != NULL && origin->changed)
        result = save_file_record(call, origin->identity, origin->record, 0);
    json_decref(origin->record);
    *origin = (origin_record){ 0 };
    return result;
}

static int origin_record_hold(const sync_call *call, origin_record *origin, uint64_t identity)
{
    if (origin->record != NULL && origin->identity == identity)
        return 0;
    int result = origin_record_flush(call, origin);
    if (result == 0)
        result = load_file_record(call, identity, &origin->record);
    if (result == 0)
        origin->identity = identity;
    return result;
}

/* The server version a changeset gets, and whether a client's changeset
 * was integrated already; records the file's progress in origin, which
 * the caller flushes. */
static int check_origin(const sync_call *call, origin_record *origin, const changeset *changeset,
                        int64_t now_ms, bool *skipped)
{
    *skipped = false;
    if (changeset->origin == 0)
        return 0;
    int result = origin_record_hold(call, origin, changeset->origin);
    if (result != 0)
        return result;
    uint64_t last_integrated;
    if (!read_record_number(origin->record, "last_integrated_client_version", &last_integrated))
        return lmdb_fail(&call->lmdb, -EIO, "the record of client file %llu is damaged",
                         (unsigned long long)changeset->origin);
    if (changeset->client_version <= last_integrated) {
        *skipped = true;
        return 0;
    }
    origin->changed = true;
    if (json_object_set_new(origin->record, "last_integrated_client_version",
                            json_integer((json_int_t)changeset->client_version)) != 0
        || json_object_set_new(origin->record, "last_seen", json_integer(now_ms)) != 0)
        return fail_out_of_memory(call);
    return 0;
}

static int apply_instructions(const sync_call *call, object_cache *cache,
                              const changeset *changeset)
{
    for (size_t index = 0; index < changeset->count; index++) {
        const changeset_instruction *instruction = &changeset->instructions[index];
        size_t object_index = 0;
        int result = cache_find(call, cache, instruction->collection, instruction->id,
                                &object_index);
        if (result != 0)
            return result;
        cached_object *object = &cache->objects[object_index];
        if (!object->touched) {
            object->touched = true;
            object->document_before = json_incref(object->document);
            cache->touched[cache->touched_count++] = object_index;
        }
        changeset_clock clock = changeset_instruction_clock(changeset, index);
        result = object_state_join_instruction(object->state, instruction, &clock);
        if (result == -ENOMEM)
            return fail_out_of_memory(call);
        if (result < 0)
            return lmdb_fail(&call->lmdb, result, "instruction %zu does not apply to \"%s\"",
                             index, instruction->collection);
        object->dirty = true;
    }
    return 0;
}

/* Whether the object's visible document changed since document_before
 * (content or field order: its canonical text); if so, its new document
 * and text replace the old ones. */
static int refresh_document(const sync_call *call, cached_object *object, bool *changed)
{
    json_t *document;
    if (object_state_document(object->state, &document) != 0)
        return fail_out_of_memory(call);
    char *text = NULL;
    size_t text_size = 0;
    if (document != NULL) {
        text = ejson_format_line(document, &text_size);
        if (text == NULL) {
            json_decref(document);
            return fail_out_of_memory(call);
        }
    }
    *changed = (text == NULL) != (object->text == NULL) || text_size != object->text_size
               || (text != NULL && memcmp(text, object->text, text_size) != 0);
    if (!*changed) {
        json_decref(document);
        free(text);
        return 0;
    }
    json_decref(object->document);
    free(object->text);
    object->document = document;
    object->text = text;
    object->text_size = text_size;
    return 0;
}

/* Reports, in order of first touch, the objects of the changeset just
 * applied whose visible document changed, and resets the touch marks.  On
 * failure what the marks hold is released with the cache. */
static int collect_changes(const sync_call *call, object_cache *cache,
                           sync_store_integration *integration)
{
    if (cache->touched_count > 0) {
        integration->changes = calloc(cache->touched_count, sizeof *integration->changes);
        if (integration->changes == NULL)
            return fail_out_of_memory(call);
    }
    for (size_t index = 0; index < cache->touched_count; index++) {
        cached_object *object = &cache->objects[cache->touched[index]];
        bool changed = false;
        int result = refresh_document(call, object, &changed);
        if (result != 0)
            return result;
        json_t *before = object->document_before;
        object->document_before = NULL;
        object->touched = false;
        if (!changed) {
            json_decref(before);
            continue;
        }
        sync_store_object_change *change = &integration->changes[integration->change_count++];
        change->collection = strdup(cached_collection(object));
        change->id = json_incref((json_t *)object_state_id(object->state));
        change->old_document = before;
        change->new_document = json_incref(object->document);
        if (change->collection == NULL)
            return fail_out_of_memory(call);
    }
    cache->touched_count = 0;
    return 0;
}

static int append_history(const sync_call *call, uint64_t server_version,
                          const changeset *changeset, int64_t now_ms)
{
    json_t *json = changeset_to_json(changeset);
    if (json == NULL)
        return lmdb_fail(&call->lmdb, -EINVAL, "changeset %llu cannot be written as JSON "
                                               "(text that is not UTF-8, or out of memory)",
                         (unsigned long long)server_version);
    char *text = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (text == NULL)
        return fail_out_of_memory(call);
    size_t text_size = strlen(text);
    lmdb_number_key key_bytes;
    MDB_val key = lmdb_number_key_value(&key_bytes, server_version);
    MDB_val value = { .mv_size = sizeof(history_header) + text_size, .mv_data = NULL };
    int code = mdb_put(call->lmdb.transaction, call->store->history, &key, &value, MDB_RESERVE);
    if (code == 0) {
        history_header header = { .integrated_ms = now_ms };
        memcpy(value.mv_data, &header, sizeof header);
        memcpy((char *)value.mv_data + sizeof header, text, text_size);
    }
    free(text);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    return 0;
}

static int64_t clock_timestamp(const json_t *clock)
{
    return json_integer_value(json_array_get(clock, 0));
}

static int64_t later_timestamp(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* The latest timestamp of any clock in a merge state's JSON
 * (changeset.h documents its members). */
static int64_t latest_timestamp(const json_t *state_json)
{
    int64_t latest = clock_timestamp(json_object_get(state_json, "deleted"));
    size_t index;
    const json_t *element;
    json_array_foreach(json_object_get(state_json, "created"), index, element)
        latest = later_timestamp(latest, clock_timestamp(element));
    json_array_foreach(json_object_get(state_json, "fields"), index, element) {
        latest = later_timestamp(latest, clock_timestamp(json_object_get(element, "first")));
        latest = later_timestamp(latest, clock_timestamp(json_object_get(element, "last")));
    }
    return latest;
}

/* Keeps a tombstone exactly while the object does not exist. */
static int write_tombstone(const sync_call *call, const cached_object *object,
                           const json_t *state_json)
{
    MDB_val key = lmdb_object_key_value(&object->key);
    if (object->document != NULL)
        return object->state_was_stored && !object->existed_before
                   ? delete_if_present(call, call->store->tombstones, &key)
                   : 0;
    int64_t timestamp = latest_timestamp(state_json);
    return put_record(call, call->store->tombstones, &key, &timestamp, sizeof timestamp);
}

static int write_object(const sync_call *call, const cached_object *object)
{
    json_t *state_json = object_state_to_json(object->state);
    if (state_json == NULL)
        return fail_out_of_memory(call);
    char *state_text = json_dumps(state_json, JSON_COMPACT);
    if (state_text == NULL) {
        json_decref(state_json);
        return fail_out_of_memory(call);
    }
    MDB_val key = lmdb_object_key_value(&object->key);
    int result = put_record(call, call->store->states, &key, state_text, strlen(state_text));
    free(state_text);
    if (result == 0)
        result = write_tombstone(call, object, state_json);
    json_decref(state_json);
    if (result != 0)
        return result;
    if (object->document != NULL)
        return put_record(call, call->store->documents, &key, object->text, object->text_size);
    return delete_if_present(call, call->store->documents, &key);
}

/* The change in a collection's count of existing objects, summed over the
 * objects of one integration. */
typedef struct count_change {
    const char *collection;
    int64_t delta;
} count_change;

static int write_objects(const sync_call *call, const object_cache *cache)
{
    count_change *counts = calloc(cache->count + 1, sizeof *counts);
    if (counts == NULL)
        return fail_out_of_memory(call);
    size_t count_changes = 0;
    int result = 0;
    for (size_t index = 0; index < cache->count && result == 0; index++) {
        const cached_object *object = &cache->objects[index];
        if (!object->dirty)
            continue;
        result = write_object(call, object);
        const char *collection = cached_collection(object);
        size_t slot = 0;
        while (slot < count_changes && strcmp(counts[slot].collection, collection) != 0)
            slot++;
        if (slot == count_changes)
            counts[count_changes++].collection = collection;
        counts[slot].delta += (object->document != NULL) - object->existed_before;
    }
    /* Every collection written to gets its record, so that listings show
     * collections that held objects. */
    for (size_t slot = 0; slot < count_changes && result == 0; slot++)
        result = add_to_collection_count(call, counts[slot].collection, counts[slot].delta);
    free(counts);
    return result;
}

static int integrate(const sync_call *call, const changeset *changesets, size_t count,
                     int64_t now_ms, sync_store_integration *results)
{
    uint64_t server_version;
    int result = get_server_version(call, &server_version);
    object_cache cache = { 0 };
    origin_record origin = { 0 };
    for (size_t index = 0; index < count && result == 0; index++) {
        bool skipped;
        result = check_origin(call, &origin, &changesets[index], now_ms, &skipped);
        if (result != 0 || skipped) {
            results[index].skipped = skipped;
            continue;
        }
        results[index].server_version = ++server_version;
        result = apply_instructions(call, &cache, &changesets[index]);
        if (result == 0)
            result = collect_changes(call, &cache, &results[index]);
        if (result == 0)
            result = append_history(call, server_version, &changesets[index], now_ms);
    }
    int flushed = origin_record_flush(call, &origin);
    if (result == 0)
        result = flushed;
    if (result == 0)
        result = write_objects(call, &cache);
    if (result == 0)
        result = put_meta(call, META_SERVER_VERSION, server_version);
    cache_release(&cache);
    return result;
}

/* ------------------------------------------------------------------ */
/* History                                                             */

typedef struct history_record {
    uint64_t server_version;
    int64_t integrated_ms;
    const char *text;
    size_t text_size;
} history_record;

static int read_history_record(const sync_call *call, const MDB_val *key, const MDB_val *value,
                               history_record *record)
{
    int result = lmdb_number_key_decode(&call->lmdb, key, &record->server_version);
    if (result != 0)
        return result;
    history_header header;
    if (value->mv_size < sizeof header)
        return lmdb_fail(&call->lmdb, -EIO, "history record %llu is damaged",
                         (unsigned long long)record->server_version);
    memcpy(&header, value->mv_data, sizeof header);
    record->integrated_ms = header.integrated_ms;
    record->text = (const char *)value->mv_data + sizeof header;
    record->text_size = value->mv_size - sizeof header;
    return 0;
}

typedef int history_visit(uint64_t server_version, const changeset *changeset, void *context);

static int visit_history_record(const sync_call *call, const history_record *record,
                                history_visit *visit, void *context)
{
    json_error_t error;
    json_t *json = json_loadb(record->text, record->text_size, JSON_ALLOW_NUL, &error);
    if (json == NULL)
        return lmdb_fail(&call->lmdb, -EIO, "history record %llu is damaged: %s",
                         (unsigned long long)record->server_version, error.text);
    changeset changeset;
    char message[MESSAGE_SIZE];
    int result = changeset_parse(json, &changeset, message, sizeof message);
    json_decref(json);
    if (result == -ENOMEM)
        return fail_out_of_memory(call);
    if (result != 0)
        return lmdb_fail(&call->lmdb, -EIO, "history record %llu is damaged: %s",
                         (unsigned long long)record->server_version, message);
    result = visit(record->server_version, &changeset, context);
    changeset_clear(&changeset);
    return result;
}

static int scan_history(const sync_call *call, uint64_t after_version, history_visit *visit,
                        void *context)
{
    uint64_t oldest;
    int result = get_oldest_history(call, &oldest);
    if (result != 0)
        return result;
    if (after_version < UINT64_MAX && after_version + 1 < oldest)
        return lmdb_fail(&call->lmdb, -ESTALE,
                         "the history starts at version %llu; version %llu is gone",
                         (unsigned long long)oldest, (unsigned long long)after_version + 1);
    if (after_version == UINT64_MAX)
        return 0;
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, call->store->history, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    lmdb_number_key key_bytes;
    MDB_val key = lmdb_number_key_value(&key_bytes, after_version + 1), value;
    for (code = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE); code == 0 && result == 0;
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        history_record record;
        result = read_history_record(call, &key, &value, &record);
        if (result == 0)
            result = visit_history_record(call, &record, visit, context);
    }
    return lmdb_cursor_finish(&call->lmdb, cursor, result, code, "mdb_cursor_get");
}

/* Deletes history records integrated before cutoff_ms; returns how many
 * in *removed and sets oldest_history to the first one left. */
static int trim_history_records(const sync_call *call, int64_t cutoff_ms, uint64_t *removed)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, call->store->history, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    *removed = 0;
    int result = 0;
    uint64_t first_kept = 0;
    MDB_val key, value;
    /* Versions are integrated in time order, so the first record that is
     * new enough ends the walk.  After mdb_cursor_del the cursor already
     * stands on the next record, which MDB_NEXT then returns. */
    for (code = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); code == 0 && result == 0;
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        history_record record;
        result = read_history_record(call, &key, &value, &record);
        if (result != 0)
            break;
        if (record.integrated_ms >= cutoff_ms) {
            first_kept = record.server_version;
            break;
        }
        code = mdb_cursor_del(cursor, 0);
        if (code != 0)
            break;
        (*removed)++;
    }
    result = lmdb_cursor_finish(&call->lmdb, cursor, result, code,
                                "mdb_cursor_get/mdb_cursor_del");
    if (result != 0 || *removed == 0)
        return result;
    if (first_kept == 0) {
        result = get_server_version(call, &first_kept);
        first_kept++;
    }
    return result == 0 ? put_meta(call, META_OLDEST_HISTORY, first_kept) : result;
}

/* Deletes the merge states of objects that do not exist and were last
 * written before cutoff_ms. */
static int trim_tombstones(const sync_call *call, int64_t cutoff_ms)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, call->store->tombstones, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    int result = 0;
    MDB_val key, value;
    for (code = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); code == 0 && result == 0;
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        int64_t timestamp;
        if (value.mv_size != sizeof timestamp) {
            result = lmdb_fail(&call->lmdb, -EIO, "a tombstone record is damaged");
            break;
        }
        memcpy(&timestamp, value.mv_data, sizeof timestamp);
        if (timestamp >= cutoff_ms)
            continue;
        /* The key lives in a page of tombstones, which deleting from
         * states must not be trusted to leave alone. */
        lmdb_object_key copy = { .size = key.mv_size };
        if (key.mv_size > sizeof copy.bytes) {
            result = lmdb_fail(&call->lmdb, -EIO, "a tombstone key is damaged");
            break;
        }
        memcpy(copy.bytes, key.mv_data, key.mv_size);
        MDB_val state_key = lmdb_object_key_value(&copy);
        result = delete_if_present(call, call->store->states, &state_key);
        if (result == 0)
            code = mdb_cursor_del(cursor, 0);
        if (code != 0)
            break;
    }
    return lmdb_cursor_finish(&call->lmdb, cursor, result, code, "mdb_cursor_get/mdb_cursor_del");
}

/* ------------------------------------------------------------------ */
/* Notices                                                             */

/* A notice's key: its file, the client version of its changeset and its
 * position in its upload, each as 8 big-endian bytes, so that a file's
 * notices lie together in the order they were sent. */
typedef struct notice_key {
    uint8_t bytes[3 * sizeof(lmdb_number_key)];
} notice_key;

static MDB_val notice_key_value(notice_key *key, uint64_t file_identity, uint64_t client_version,
                                uint64_t position)
{
    const uint64_t parts[] = { file_identity, client_version, position };
    for (size_t index = 0; index < 3; index++) {
        lmdb_number_key part;
        lmdb_number_key_value(&part, parts[index]);
        memcpy(key->bytes + index * sizeof part.bytes, part.bytes, sizeof part.bytes);
    }
    return (MDB_val){ .mv_size = sizeof key->bytes, .mv_data = key->bytes };
}

/* The file identity (and client version) a notice key holds. */
static int decode_notice_key(const sync_call *call, const MDB_val *key, uint64_t *file_identity,
                             uint64_t *client_version)
{
    if (key->mv_size != sizeof(notice_key))
        return lmdb_fail(&call->lmdb, -EIO, "a notice key is damaged");
    MDB_val part = { .mv_size = sizeof(lmdb_number_key), .mv_data = key->mv_data };
    int result = lmdb_number_key_decode(&call->lmdb, &part, file_identity);
    part.mv_data = (char *)key->mv_data + sizeof(lmdb_number_key);
    return result == 0 ? lmdb_number_key_decode(&call->lmdb, &part, client_version) : result;
}

void sync_store_notice_clear(sync_store_notice *notice)
{
    free(notice->collection);
    json_decref(notice->id);
    free(notice->reason);
    json_decref(notice->server_document);
    *notice = (sync_store_notice){ 0 };
}

void sync_store_notices_free(sync_store_notice *notices, size_t count)
{
    if (notices == NULL)
        return;
    for (size_t index = 0; index < count; index++)
        sync_store_notice_clear(&notices[index]);
    free(notices);
}

static int put_notice(const sync_call *call, const sync_store_notice *notice, uint64_t position,
                      uint64_t server_version)
{
    if (notice->collection == NULL || notice->id == NULL || notice->reason == NULL)
        return lmdb_fail(&call->lmdb, -EINVAL, "a notice needs a collection, an id and a reason");
    json_t *file;
    int result = load_file_record(call, notice->file_identity, &file);
    if (result != 0)
        return result;
    json_decref(file);
    json_t *object = json_pack("{s:O, s:O?}", "id", notice->id, "server_document",
                               notice->server_document);
    char *object_text = object != NULL ? ejson_format_line(object, NULL) : NULL;
    json_decref(object);
    json_t *record = NULL;
    if (object_text != NULL)
        record = json_pack("{s:s, s:s, s:I, s:s}", "collection", notice->collection, "reason",
                           notice->reason, "server_version", (json_int_t)server_version,
                           "object", object_text);
    free(object_text);
    if (record == NULL)
        return lmdb_fail(&call->lmdb, -EINVAL, "a notice cannot be written as JSON (text "
                                               "that is not UTF-8, or out of memory)");
    notice_key key_bytes;
    MDB_val key = notice_key_value(&key_bytes, notice->file_identity, notice->client_version,
                                   position);
    result = lmdb_put_json_record(&call->lmdb, call->store->notices, &key, record, 0);
    json_decref(record);
    return result;
}

static int integrate_upload(const sync_call *call, const changeset *changesets, size_t count,
                            const sync_store_notice *notices, size_t notice_count,
                            int64_t now_ms, sync_store_integration *results)
{
    uint64_t before;
    int result = get_server_version(call, &before);
    if (result == 0)
        result = integrate(call, changesets, count, now_ms, results);
    uint64_t after = before;
    if (result == 0)
        result = get_server_version(call, &after);
    if (result == 0 && notice_count > 0 && after == before)
        return lmdb_fail(&call->lmdb, -EINVAL, "notices of an upload that integrates nothing");
    for (size_t index = 0; index < notice_count && result == 0; index++)
        result = put_notice(call, &notices[index], index, after);
    return result;
}

static int read_notice_string(const sync_call *call, const json_t *record, const char *name,
                              const char **text)
{
    *text = json_string_value(json_object_get(record, name));
    return *text != NULL ? 0 : lmdb_fail(&call->lmdb, -EIO, "a notice record is damaged");
}

/* The id and the server's document of a notice record. */
static int read_notice_object(const sync_call *call, const char *text, sync_store_notice *notice)
{
    ejson_error error;
    json_t *object = ejson_parse(text, strlen(text), &error);
    if (object == NULL)
        return lmdb_fail(&call->lmdb, -EIO, "a notice record is damaged: %s", error.message);
    json_t *document = json_object_get(object, "server_document");
    notice->id = json_incref(json_object_get(object, "id"));
    notice->server_document = json_is_null(document) ? NULL : json_incref(document);
    json_decref(object);
    if (notice->id == NULL || document == NULL)
        return lmdb_fail(&call->lmdb, -EIO, "a notice record is damaged");
    return 0;
}

static int notice_from_record(const sync_call *call, const MDB_val *key, const json_t *record,
                              sync_store_notice *notice)
{
    *notice = (sync_store_notice){ 0 };
    const char *collection, *reason, *object;
    int result = decode_notice_key(call, key, &notice->file_identity, &notice->client_version);
    if (result == 0)
        result = read_notice_string(call, record, "collection", &collection);
    if (result == 0)
        result = read_notice_string(call, record, "reason", &reason);
    if (result == 0)
        result = read_notice_string(call, record, "object", &object);
    if (result == 0 && !read_record_number(record, "server_version", &notice->server_version))
        result = lmdb_fail(&call->lmdb, -EIO, "a notice record is damaged");
    if (result == 0)
        result = read_notice_object(call, object, notice);
    if (result == 0) {
        notice->collection = strdup(collection);
        notice->reason = strdup(reason);
        if (notice->collection == NULL || notice->reason == NULL)
            result = fail_out_of_memory(call);
    }
    if (result != 0)
        sync_store_notice_clear(notice);
    return result;
}

/* Decides about one notice record during a walk: *remove deletes it. */
typedef int notice_step(const sync_call *call, const MDB_val *key, const json_t *record,
                        uint64_t server_version, void *context, bool *remove);

/* Walks the notices of one file (every notice when file_identity is 0). */
static int walk_notices(const sync_call *call, uint64_t file_identity, notice_step *step,
                        void *context)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, call->store->notices, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    notice_key start_bytes;
    MDB_val key = notice_key_value(&start_bytes, file_identity, 0, 0), value;
    int result = 0;
    /* After mdb_cursor_del the cursor already stands on the next record,
     * which MDB_NEXT then returns. */
    for (code = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE); code == 0 && result == 0;
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        uint64_t file, client_version, server_version;
        result = decode_notice_key(call, &key, &file, &client_version);
        if (result != 0 || (file_identity != 0 && file != file_identity))
            break;
        json_t *record;
        result = lmdb_parse_json_record(&call->lmdb, &value, &record);
        if (result != 0)
            break;
        bool remove = false;
        if (!read_record_number(record, "server_version", &server_version))
            result = lmdb_fail(&call->lmdb, -EIO, "a notice record is damaged");
        else
            result = step(call, &key, record, server_version, context, &remove);
        json_decref(record);
        if (result == 0 && remove)
            code = mdb_cursor_del(cursor, 0);
        if (code != 0)
            break;
    }
    return lmdb_cursor_finish(&call->lmdb, cursor, result, code,
                              "mdb_cursor_get/mdb_cursor_del");
}

typedef struct unseen_notices {
    uint64_t last_server_version;
    sync_store_notice *notices;
    size_t count;
    size_t capacity;
} unseen_notices;

static int take_unseen_notice(const sync_call *call, const MDB_val *key, const json_t *record,
                              uint64_t server_version, void *context, bool *remove)
{
    unseen_notices *unseen = context;
    *remove = server_version <= unseen->last_server_version;
    if (*remove)
        return 0;
    if (unseen->count == unseen->capacity) {
        size_t capacity = unseen->capacity == 0 ? 4 : unseen->capacity * 2;
        sync_store_notice *notices = realloc(unseen->notices, capacity * sizeof *notices);
        if (notices == NULL)
            return fail_out_of_memory(call);
        unseen->notices = notices;
        unseen->capacity = capacity;
    }
    int result = notice_from_record(call, key, record, &unseen->notices[unseen->count]);
    if (result == 0)
        unseen->count++;
    return result;
}

/* Drops the notices below the oldest version of the history. */
static int trim_notice(const sync_call *call, const MDB_val *key, const json_t *record,
                       uint64_t server_version, void *context, bool *remove)
{
    (void)call;
    (void)key;
    (void)record;
    *remove = server_version < *(const uint64_t *)context;
    return 0;
}

static int trim_notices(const sync_call *call)
{
    uint64_t oldest;
    int result = get_oldest_history(call, &oldest);
    return result == 0 ? walk_notices(call, 0, trim_notice, &oldest) : result;
}

/* ------------------------------------------------------------------ */
/* Reading objects                                                     */

/* The record of object id (of the call's collection) in database: 0
 * with *value, 1 when there is none, or a negative errno. */
static int find_object_record(const sync_call *call, MDB_dbi database, const json_t *id,
                              MDB_val *value)
{
    lmdb_object_key key_bytes;
    int result = lmdb_object_key_build(&call->lmdb, call->lmdb.collection, id,
                                       call->store->max_key_size, &key_bytes);
    if (result != 0)
        return result;
    MDB_val key = lmdb_object_key_value(&key_bytes);
    int code = mdb_get(call->lmdb.transaction, database, &key, value);
    if (code == MDB_NOTFOUND)
        return 1;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    return 0;
}

static int get_document(const sync_call *call, const json_t *id, json_t **document)
{
    MDB_val value;
    int result = find_object_record(call, call->store->documents, id, &value);
    if (result == 1)
        return lmdb_fail(&call->lmdb, -ENOENT, "no object with this id");
    if (result != 0)
        return result;
    ejson_error error;
    *document = ejson_parse(value.mv_data, value.mv_size, &error);
    if (*document == NULL)
        return lmdb_fail(&call->lmdb, -EIO, "a stored document is damaged: %s", error.message);
    return 0;
}

static int get_object_state(const sync_call *call, const json_t *id, object_state **state)
{
    MDB_val value;
    int result = find_object_record(call, call->store->states, id, &value);
    if (result == 1) {
        *state = object_state_new(id);
        return *state != NULL ? 0 : fail_out_of_memory(call);
    }
    return result == 0 ? load_state(call, &value, state) : result;
}

typedef struct scan_state {
    const lmdb_object_key *after;  /* NULL: from the first */
    int (*visit)(const sync_store_document_view *document, void *context);
    void *context;
} scan_state;

static int visit_document(const lmdb_call *call, const MDB_val *key, const MDB_val *value,
                          void *state)
{
    const scan_state *scan = state;
    if (scan->after != NULL && lmdb_object_key_equals(key, scan->after))
        return 0;
    size_t prefix_size = strlen(call->collection) + 1;
    json_t *id;
    int result = lmdb_object_key_decode_id(call, (const uint8_t *)key->mv_data + prefix_size,
                                           key->mv_size - prefix_size, &id);
    if (result != 0)
        return result;
    sync_store_document_view view = { .id = id, .text = value->mv_data, .size = value->mv_size };
    result = scan->visit(&view, scan->context);
    json_decref(id);
    return result;
}

static int scan_documents(const sync_call *call, const json_t *after_id,
                          int (*visit)(const sync_store_document_view *document, void *context),
                          void *context)
{
    int result = lmdb_check_collection_name(&call->lmdb, call->lmdb.collection);
    if (result != 0)
        return result;
    lmdb_object_key start;
    lmdb_object_key_start(&start, call->lmdb.collection);
    if (after_id != NULL) {
        result = lmdb_object_key_append_id(&call->lmdb, &start, after_id,
                                           call->store->max_key_size);
        if (result != 0)
            return result;
    }
    scan_state scan = {
        .after = after_id != NULL ? &start : NULL,
        .visit = visit,
        .context = context,
    };
    return lmdb_for_each_object(&call->lmdb, call->store->documents, &start, visit_document,
                                &scan);
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */

static int open_databases(const sync_call *call)
{
    sync_store *store = call->store;
    struct {
        const char *name;
        MDB_dbi *database;
    } databases[] = {
        { "meta", &store->meta },           { "collections", &store->collections },
        { "states", &store->states },       { "documents", &store->documents },
        { "tombstones", &store->tombstones }, { "history", &store->history },
        { "files", &store->files },         { "notices", &store->notices },
    };
    _Static_assert(sizeof databases / sizeof databases[0] == DATABASE_COUNT,
                   "every database is opened");
    for (size_t index = 0; index < DATABASE_COUNT; index++) {
        int result = lmdb_open_database(&call->lmdb, databases[index].name, MDB_CREATE,
                                        databases[index].database);
        if (result != 0)
            return result;
    }
    return lmdb_check_format(&call->lmdb, store->meta, FORMAT_VERSION, true);
}

static int open_store(sync_call *call, const char *data_directory, uint64_t map_size)
{
    if (data_directory == NULL || data_directory[0] == '\0')
        return lmdb_fail(&call->lmdb, -EINVAL, "no data directory given");
    char directory[PATH_MAX];
    int length = snprintf(directory, sizeof directory, "%s/sync", data_directory);
    if (length < 0 || (size_t)length >= sizeof directory)
        return lmdb_fail(&call->lmdb, -ENAMETOOLONG, "the data directory's path is too long");
    /* Only the server's user may read what every client wrote. */
    int result = lmdb_make_directories(&call->lmdb, directory, 0700);
    if (result != 0)
        return result;
    /* NOSYNC: a commit reaches the page cache, which survives a crash of
     * the process; sync_store_sync() flushes to disk.  NOTLS: snapshots
     * are read transactions open next to the thread's write
     * transactions. */
    lmdb_environment_options options = {
        .max_databases = DATABASE_COUNT,
        .map_size = map_size != 0 ? map_size : DEFAULT_MAP_SIZE,
        .flags = MDB_NOSYNC | MDB_NOTLS,
        .mode = 0600,
    };
    result = lmdb_open_environment(&call->lmdb, directory, &options, &call->store->environment);
    if (result != 0)
        return result;
    call->store->max_key_size = lmdb_max_key_size(call->store->environment);
    /* Database handles outlive the transaction that opened them only when
     * it commits. */
    result = begin_call(call, true);
    if (result != 0)
        return result;
    return finish_call(call, open_databases(call));
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */

int sync_store_open(const char *data_directory, uint64_t map_size, sync_store **out)
{
    *out = NULL;
    char operation[sizeof "open sync store " + PATH_MAX];
    snprintf(operation, sizeof operation, "open sync store %s",
             data_directory != NULL ? data_directory : "");
    sync_store *opened = calloc(1, sizeof *opened);
    sync_call call = new_call(opened, operation, NULL);
    if (opened == NULL)
        return fail_out_of_memory(&call);
    int result = open_store(&call, data_directory, map_size);
    if (result != 0) {
        sync_store_close(opened);
        return result;
    }
    *out = opened;
    return 0;
}

void sync_store_close(sync_store *store)
{
    if (store == NULL)
        return;
    if (store->environment != NULL)
        mdb_env_close(store->environment);
    free(store);
}

int sync_store_sync(sync_store *store)
{
    sync_call call = new_call(store, "sync the sync store", NULL);
    int code = mdb_env_sync(store->environment, 1);
    if (code != 0)
        return lmdb_fail_mdb(&call.lmdb, code, "mdb_env_sync");
    return 0;
}

static int database_entries(const sync_call *call, MDB_dbi database, uint64_t *entries)
{
    MDB_stat stat;
    int code = mdb_stat(call->lmdb.transaction, database, &stat);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_stat");
    *entries = stat.ms_entries;
    return 0;
}

static int get_statistics(const sync_call *call, sync_store_statistics *statistics)
{
    uint64_t next_file_identity;
    int result = get_server_version(call, &statistics->server_version);
    if (result == 0)
        result = get_oldest_history(call, &statistics->oldest_history);
    if (result == 0)
        result = database_entries(call, call->store->history, &statistics->history_changesets);
    if (result == 0)
        result = database_entries(call, call->store->documents, &statistics->objects);
    if (result == 0)
        result = get_meta(call, META_NEXT_FILE_IDENTITY, 1, &next_file_identity);
    if (result == 0) {
        statistics->files = next_file_identity - 1;
        result = lmdb_data_file_bytes(&call->lmdb, call->store->environment,
                                      &statistics->file_bytes);
    }
    return result;
}

int sync_store_get_statistics(sync_store *store, sync_store_statistics *statistics)
{
    sync_call call = new_call(store, "get sync store statistics", NULL);
    int result = begin_call(&call, false);
    if (result != 0)
        return result;
    return finish_call(&call, get_statistics(&call, statistics));
}

int sync_store_create_file(sync_store *store, const char *user_id, int64_t now_ms,
                           uint64_t *identity)
{
    sync_call call = new_call(store, "create client file", NULL);
    int result = begin_call(&call, true);
    if (result != 0)
        return result;
    return finish_call(&call, create_file(&call, user_id, now_ms, identity));
}

int sync_store_get_file(sync_store *store, uint64_t identity, sync_store_file *file)
{
    sync_call call = new_call(store, "get client file", NULL);
    int result = begin_call(&call, false);
    if (result != 0)
        return result;
    json_t *record = NULL;
    result = load_file_record(&call, identity, &record);
    if (result == 0)
        result = file_from_record(&call, identity, record, file);
    json_decref(record);
    return finish_call(&call, result);
}

int sync_store_set_file_query(sync_store *store, uint64_t identity, uint64_t query_version,
                              const json_t *subscriptions)
{
    sync_call call = new_call(store, "set client file query", NULL);
    int result = begin_call(&call, true);
    if (result != 0)
        return result;
    return finish_call(&call, set_file_query(&call, identity, query_version, subscriptions));
}

int sync_store_touch_file(sync_store *store, uint64_t identity, int64_t now_ms)
{
    sync_call call = new_call(store, "touch client file", NULL);
    int result = begin_call(&call, true);
    if (result != 0)
        return result;
    return finish_call(&call, update_file(&call, identity, "last_seen", json_integer(now_ms)));
}

int sync_store_integrate_upload(sync_store *store, const changeset *changesets, size_t count,
                                const sync_store_notice *notices, size_t notice_count,
                                int64_t now_ms, sync_store_integration *results)
{
    sync_call call = new_call(store, "integrate changesets", NULL);
    for (size_t index = 0; index < count; index++)
        results[index] = (sync_store_integration){ 0 };
    int result = begin_call(&call, true);
    if (result == 0)
        result = finish_call(&call, integrate_upload(&call, changesets, count, notices,
                                                     notice_count, now_ms, results));
    if (result != 0) {
        for (size_t index = 0; index < count; index++)
            sync_store_integration_clear(&results[index]);
    }
    return result;
}

int sync_store_integrate(sync_store *store, const changeset *changesets, size_t count,
                         int64_t now_ms, sync_store_integration *results)
{
    return sync_store_integrate_upload(store, changesets, count, NULL, 0, now_ms, results);
}

int sync_store_take_unseen_notices(sync_store *store, uint64_t file_identity,
                                   uint64_t last_server_version, sync_store_notice **notices,
                                   size_t *count)
{
    *notices = NULL;
    *count = 0;
    sync_call call = new_call(store, "take unseen notices", NULL);
    if (file_identity == 0)
        return lmdb_fail(&call.lmdb, -EINVAL, "file identity 0 is no file");
    int result = begin_call(&call, true);
    if (result != 0)
        return result;
    unseen_notices unseen = { .last_server_version = last_server_version };
    result = finish_call(&call, walk_notices(&call, file_identity, take_unseen_notice, &unseen));
    if (result != 0) {
        sync_store_notices_free(unseen.notices, unseen.count);
        return result;
    }
    *notices = unseen.notices;
    *count = unseen.count;
    return 0;
}

int sync_store_get_document(sync_store *store, const char *collection, const json_t *id,
                            json_t **document)
{
    sync_call call = new_call(store, "get document", collection);
    int result = begin_call(&call, false);
    if (result != 0)
        return result;
    return finish_call(&call, get_document(&call, id, document));
}

int sync_store_get_object_state(sync_store *store, const char *collection, const json_t *id,
                                object_state **state)
{
    *state = NULL;
    sync_call call = new_call(store, "get merge state", collection);
    int result = begin_call(&call, false);
    if (result != 0)
        return result;
    return finish_call(&call, get_object_state(&call, id, state));
}

int sync_store_scan_history(sync_store *store, uint64_t after_version, history_visit *visit,
                            void *context)
{
    sync_call call = new_call(store, "scan history", NULL);
    int result = begin_call(&call, false);
    if (result != 0)
        return result;
    result = scan_history(&call, after_version, visit, context);
    /* A read transaction has nothing to commit: a visit's non-zero return
     * ends it like a failure, and is what the caller gets. */
    int finished = finish_call(&call, 0);
    return result != 0 ? result : finished;
}

int sync_store_trim_history(sync_store *store, int64_t cutoff_ms)
{
    sync_call call = new_call(store, "trim history", NULL);
    int result = begin_call(&call, true);
    if (result != 0)
        return result;
    uint64_t removed = 0;
    result = trim_history_records(&call, cutoff_ms, &removed);
    if (result == 0)
        result = trim_tombstones(&call, cutoff_ms);
    if (result == 0)
        result = trim_notices(&call);
    result = finish_call(&call, result);
    if (result != 0)
        return result;
    return removed > INT_MAX ? INT_MAX : (int)removed;
}

int sync_store_snapshot_begin(sync_store *store, sync_store_snapshot **out)
{
    *out = NULL;
    sync_call call = new_call(store, "begin snapshot", NULL);
    sync_store_snapshot *snapshot = calloc(1, sizeof *snapshot);
    if (snapshot == NULL)
        return fail_out_of_memory(&call);
    int result = begin_call(&call, false);
    if (result == 0)
        result = get_server_version(&call, &snapshot->server_version);
    if (result != 0) {
        if (call.lmdb.transaction != NULL)
            finish_call(&call, result);
        free(snapshot);
        return result;
    }
    snapshot->store = store;
    snapshot->transaction = call.lmdb.transaction;
    *out = snapshot;
    return 0;
}

void sync_store_snapshot_end(sync_store_snapshot *snapshot)
{
    if (snapshot == NULL)
        return;
    mdb_txn_abort(snapshot->transaction);
    free(snapshot);
}

uint64_t sync_store_snapshot_version(const sync_store_snapshot *snapshot)
{
    return snapshot->server_version;
}

int sync_store_snapshot_scan(sync_store_snapshot *snapshot, const char *collection,
                             const json_t *after_id,
                             int (*visit)(const sync_store_document_view *document,
                                          void *context),
                             void *context)
{
    sync_call call = snapshot_call(snapshot, "scan documents", collection);
    return scan_documents(&call, after_id, visit, context);
}

int sync_store_snapshot_get_document(sync_store_snapshot *snapshot, const char *collection,
                                     const json_t *id, json_t **document)
{
    sync_call call = snapshot_call(snapshot, "get document", collection);
    return get_document(&call, id, document);
}

int sync_store_snapshot_count(sync_store_snapshot *snapshot, const char *collection,
                              uint64_t *count)
{
    sync_call call = snapshot_call(snapshot, "count documents", collection);
    int result = lmdb_check_collection_name(&call.lmdb, collection);
    if (result != 0)
        return result;
    return get_collection_count(&call, collection, count);
}

int sync_store_snapshot_list_collections(sync_store_snapshot *snapshot,
                                         int (*visit)(const char *collection, void *context),
                                         void *context)
{
    sync_call call = snapshot_call(snapshot, "list collections", NULL);
    return lmdb_for_each_name(&call.lmdb, snapshot->store->collections, visit, context);
}

/*
 * store_sync.c — the sync state of a synced store (store.h, "Sync state").
 *
 * Seven more databases in the store's environment:
 *
 *   mirror            object key -> the server's document, one-line canonical text
 *   outbox            client version (8 bytes big-endian) -> outbox record
 *   outbox_index      object key -> the client versions (8 bytes big-endian,
 *                     sorted duplicates) of the outbox changesets touching it
 *   held_deletes      object key -> client version (8 bytes) of its held delete
 *   subscriptions     collection, 0x00, name -> RQL text
 *   staged_downloads  object key -> the document a download batch leaves so
 *                     far ("Applying downloads" below)
 *   read_only_objects object key -> nothing: the server said its user may
 *                     not write the object ("Access" below)
 *
 * and numbers in meta under "sync.*".  An outbox record is a JSON object:
 *
 *   {"changeset": <changeset_to_json, origin 0>,
 *    "held": {"since": <ms>, "document": "<the deleted text>"}}   held only
 *
 * The origin is filled in when the changeset leaves (store_scan_outbox),
 * since a store queues changes before the server gave it an identity.
 *
 * held_deletes finds, per object, a held delete that is still the newest
 * outbox changeset for the object: every queued changeset removes the
 * entries of the objects it touches, and a held delete then adds its own.
 *
 * outbox_index lets a download show the objects it touched with their
 * pending changes on top without reading the whole outbox: every change
 * to the outbox (append_to_outbox, a held delete merged away, an
 * acknowledgement, a client reset) changes the index in the same
 * transaction.
 */
#include "store_internal.h"

#include "realmfs/ejson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define META_SYNCED "sync.enabled"
#define META_FILE_IDENTITY "sync.file_identity"
#define META_LAST_SERVER_VERSION "sync.last_server_version"
#define META_ACKNOWLEDGED "sync.last_acknowledged_client_version"
#define META_NEXT_CLIENT_VERSION "sync.next_client_version"
#define META_LAST_TIMESTAMP "sync.last_timestamp"
#define META_SUBSCRIPTIONS_VERSION "sync.subscriptions_version"
#define META_ACCEPTED_QUERY "sync.accepted_query_version"
#define META_REFUSED_QUERY "sync.refused_query_version"
#define META_QUERY_ERROR "sync.query_error"
#define META_CLIENT_RESET "sync.client_reset"
#define META_REJECTED_WRITES "sync.rejected_writes"
#define META_SERVER_SCHEMAS "sync.server_schemas"
#define META_DEVELOPMENT_MODE "sync.development_mode"

enum {
    SUBSCRIPTION_NAME_MAX = 255,
    QUERY_ERROR_SIZE = sizeof ((store_sync_progress *)NULL)->query_error,
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static int require_synced(const store_call *call)
{
    if (!call->store->synced)
        return lmdb_fail(&call->lmdb, -EINVAL, "the store is not synced");
    return 0;
}

static int now_ms(const store_call *call, int64_t *milliseconds)
{
    int64_t nanoseconds;
    int result = store_current_time_ns(call, &nanoseconds);
    *milliseconds = nanoseconds / 1000000;
    return result;
}

static int get_meta(const store_call *call, const char *name, uint64_t *value)
{
    int found = lmdb_get_number(&call->lmdb, call->store->meta, name, value);
    return found < 0 ? found : 0;
}

static int put_meta(const store_call *call, const char *name, uint64_t value)
{
    return lmdb_put_number(&call->lmdb, call->store->meta, name, value);
}

/* Raise a meta number to value unless it is already there or beyond. */
static int raise_meta(const store_call *call, const char *name, uint64_t value)
{
    uint64_t current;
    int result = get_meta(call, name, &current);
    if (result == 0 && value > current)
        result = put_meta(call, name, value);
    return result;
}

static int out_of_memory(const store_call *call)
{
    return lmdb_fail(&call->lmdb, -ENOMEM, "out of memory");
}

/* A growing array of count items with room for one more (items itself,
 * or moved), or NULL when out of memory (then items is unchanged). */
static void *make_room(void *items, size_t count, size_t *capacity, size_t item_size)
{
    if (count < *capacity)
        return items;
    size_t grown_capacity = *capacity ? *capacity * 2 : 16;
    void *grown = realloc(items, grown_capacity * item_size);
    if (grown != NULL)
        *capacity = grown_capacity;
    return grown;
}

/* A step of walk_records may return WALK_STOP to end the walk without
 * an error. */
enum { WALK_STOP = 1 };
typedef int record_step(const store_call *call, MDB_cursor *cursor, const MDB_val *key,
                        const MDB_val *value, void *state);

/* Visit the records of database in key order, from start (NULL: the
 * first); a step may delete its record through the cursor. */
static int walk_records(const store_call *call, MDB_dbi database, const MDB_val *start,
                        record_step *step, void *state)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, database, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    MDB_val key = start != NULL ? *start : (MDB_val){ 0 }, value;
    int result = 0;
    for (code = mdb_cursor_get(cursor, &key, &value, start != NULL ? MDB_SET_RANGE : MDB_FIRST);
         code == 0 && result == 0; code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT))
        result = step(call, cursor, &key, &value, state);
    if (result == WALK_STOP)
        result = code = 0;
    return lmdb_cursor_finish(&call->lmdb, cursor, result, code, "mdb_cursor_get");
}

/* A document from a stored or given canonical text; *document NULL for a
 * NULL text (an absent object). */
static int parse_document(const store_call *call, const char *text, size_t size,
                          json_t **document)
{
    *document = NULL;
    if (text == NULL)
        return 0;
    ejson_error error;
    *document = ejson_parse(text, size, &error);
    if (*document == NULL)
        return lmdb_fail(&call->lmdb, -EINVAL, "the object is not Extended JSON: %s",
                         error.message);
    return 0;
}

static int object_key(const store_call *call, const char *collection, const json_t *id,
                      lmdb_object_key *key)
{
    return lmdb_object_key_build(&call->lmdb, collection, id, call->store->max_key_size, key);
}

/* Delete a record that may be missing. */
static int delete_record(const store_call *call, MDB_dbi database, MDB_val *key)
{
    int code = mdb_del(call->lmdb.transaction, database, key, NULL);
    if (code != 0 && code != MDB_NOTFOUND)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_del");
    return 0;
}

static int parse_changeset(const store_call *call, const json_t *json, changeset *out)
{
    char message[256];
    int result = changeset_parse(json, out, message, sizeof message);
    if (result != 0)
        return lmdb_fail(&call->lmdb, result == -EINVAL ? -EIO : result,
                         "damaged changeset record: %s", message);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The outbox and its index                                            */

/* Walks the outbox in order; step gets each changeset (held_since: when a
 * held delete was made, -1 when it is not one) and may delete it through
 * the cursor or return WALK_STOP. */
typedef int outbox_step(const store_call *call, MDB_cursor *cursor, changeset *queued,
                        int64_t held_since, void *state);

typedef struct outbox_walk {
    uint64_t last_version;
    outbox_step *step;
    void *state;
} outbox_walk;

/* The changeset of an outbox record, and when it is a held delete, the
 * time it was made (else -1). */
static int read_outbox_record(const store_call *call, const MDB_val *value, changeset *queued,
                              int64_t *held_since)
{
    json_t *record;
    int result = lmdb_parse_json_record(&call->lmdb, value, &record);
    if (result != 0)
        return result;
    result = parse_changeset(call, json_object_get(record, "changeset"), queued);
    json_t *since = json_object_get(json_object_get(record, "held"), "since");
    *held_since = json_is_integer(since) ? json_integer_value(since) : -1;
    json_decref(record);
    return result;
}

static int outbox_record(const store_call *call, MDB_cursor *cursor, const MDB_val *key,
                         const MDB_val *value, void *state)
{
    const outbox_walk *walk = state;
    uint64_t version;
    int result = lmdb_number_key_decode(&call->lmdb, key, &version);
    if (result != 0 || version > walk->last_version)
        return result != 0 ? result : WALK_STOP;
    changeset queued = { 0 };
    int64_t held_since;
    result = read_outbox_record(call, value, &queued, &held_since);
    if (result == 0)
        result = walk->step(call, cursor, &queued, held_since, walk->state);
    changeset_clear(&queued);
    return result;
}

static int for_each_outbox_changeset(const store_call *call, uint64_t first_version,
                                     uint64_t last_version, outbox_step *step, void *state)
{
    outbox_walk walk = { .last_version = last_version, .step = step, .state = state };
    lmdb_number_key first_key;
    MDB_val start = lmdb_number_key_value(&first_key, first_version);
    return walk_records(call, call->store->outbox, &start, outbox_record, &walk);
}

/* Adds or removes the outbox_index entry of one object (key) for the
 * outbox changeset of client version. */
static int index_entry(const store_call *call, MDB_val *key, uint64_t version, bool add)
{
    lmdb_number_key version_key;
    MDB_val value = lmdb_number_key_value(&version_key, version);
    if (add) {
        int code = mdb_put(call->lmdb.transaction, call->store->outbox_index, key, &value,
                           MDB_NODUPDATA);
        return code == 0 || code == MDB_KEYEXIST ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    }
    int code = mdb_del(call->lmdb.transaction, call->store->outbox_index, key, &value);
    return code == 0 || code == MDB_NOTFOUND ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_del");
}

/* Adds or removes the outbox_index entries of the objects a changeset
 * (in the outbox at its client_version) touches. */
static int index_changeset(const store_call *call, const changeset *changes, bool add)
{
    for (size_t i = 0; i < changes->count; i++) {
        const changeset_instruction *instruction = &changes->instructions[i];
        lmdb_object_key key;
        int result = object_key(call, instruction->collection, instruction->id, &key);
        if (result != 0)
            return result;
        MDB_val key_value = lmdb_object_key_value(&key);
        result = index_entry(call, &key_value, changes->client_version, add);
        if (result != 0)
            return result;
    }
    return 0;
}

/* An outbox written before the index existed (format 1) gets it. */
static int index_queued(const store_call *call, MDB_cursor *cursor, changeset *queued,
                        int64_t held_since, void *state)
{
    (void)cursor;
    (void)held_since;
    (void)state;
    return index_changeset(call, queued, true);
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */

/* The collection (a C string in collection) and the id (a new reference)
 * of a stored object key, as the objects and mirror databases use. */
static int decode_object_key(const store_call *call, const MDB_val *key,
                             char collection[LMDB_COLLECTION_NAME_MAX + 1], json_t **id)
{
    *id = NULL;
    const char *bytes = key->mv_data;
    size_t name_size = strnlen(bytes, key->mv_size);
    if (name_size == key->mv_size || name_size > LMDB_COLLECTION_NAME_MAX)
        return lmdb_fail(&call->lmdb, -EIO, "corrupt object key");
    memcpy(collection, bytes, name_size + 1);
    return lmdb_object_key_decode_id(&call->lmdb, (const uint8_t *)bytes + name_size + 1,
                                     key->mv_size - name_size - 1, id);
}

/* A store that becomes synced holds objects the server has never seen:
 * each is queued as created, as if it had just been written. */
static int queue_existing_object(const store_call *call, MDB_cursor *cursor, const MDB_val *key,
                                 const MDB_val *value, void *state)
{
    (void)cursor;
    (void)state;
    char collection[LMDB_COLLECTION_NAME_MAX + 1];
    json_t *id;
    int result = decode_object_key(call, key, collection, &id);
    store_call named = *call;
    named.lmdb.collection = collection;
    store_object_change change = { .id = id };
    if (result == 0)
        result = store_object_record_text(&call->lmdb, value, &change.new_text, &change.new_size);
    if (result == 0)
        result = store_sync_queue_changes(&named, &change, 1, false);
    json_decref(id);
    return result;
}

/* Format 1 kept no outbox index, and staged a batch as its changesets:
 * the outbox gets its index, and a staged batch (which the server sends
 * again after the next bind anyway) goes. */
static int upgrade_sync_state(const store_call *call)
{
    int result = for_each_outbox_changeset(call, 1, UINT64_MAX, index_queued, NULL);
    int code = result == 0 ? mdb_drop(call->lmdb.transaction, call->store->staged_downloads, 0)
                           : 0;
    return code == 0 ? result : lmdb_fail_mdb(&call->lmdb, code, "mdb_drop");
}

int store_sync_open(const store_call *call, bool requested, bool upgrading)
{
    store *store = call->store;
    uint64_t was_synced;
    int result = get_meta(call, META_SYNCED, &was_synced);
    if (result != 0)
        return result;
    /* a read-only opener of a store that was never synced has nothing to read */
    store->synced = was_synced || (requested && !store->read_only);
    if (!store->synced)
        return 0;
    unsigned int create = store->read_only ? 0 : MDB_CREATE;
    const struct {
        const char *name;
        MDB_dbi *database;
        unsigned int flags;
    } databases[] = {
        { "mirror", &store->mirror, 0 },
        { "outbox", &store->outbox, 0 },
        { "outbox_index", &store->outbox_index, MDB_DUPSORT | MDB_DUPFIXED },
        { "held_deletes", &store->held_deletes, 0 },
        { "subscriptions", &store->subscriptions, 0 },
        { "staged_downloads", &store->staged_downloads, 0 },
        { "read_only_objects", &store->read_only_objects, 0 },
    };
    for (size_t i = 0; i < sizeof databases / sizeof databases[0] && result == 0; i++)
        result = lmdb_open_database(&call->lmdb, databases[i].name, create | databases[i].flags,
                                    databases[i].database);
    if (result == 0 && was_synced && upgrading)
        result = upgrade_sync_state(call);
    if (result != 0 || was_synced)
        return result;
    result = put_meta(call, META_SYNCED, 1);
    if (result == 0)
        result = put_meta(call, META_NEXT_CLIENT_VERSION, 1);
    if (result == 0)
        result = walk_records(call, store->objects, NULL, queue_existing_object, NULL);
    return result;
}

/* ------------------------------------------------------------------ */
/* Queuing local writes                                                */

/* The held delete of key that a write may merge with: its client version,
 * or 0 when there is none or it is too old (then it may have been
 * uploaded). */
static int find_mergeable_held_delete(const store_call *call, MDB_val *held_key, int64_t now,
                                      uint64_t *client_version, json_t **outbox_record)
{
    *client_version = 0;
    *outbox_record = NULL;
    MDB_val value;
    int code = mdb_get(call->lmdb.transaction, call->store->held_deletes, held_key, &value);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    uint64_t version;
    int result = lmdb_number_key_decode(&call->lmdb, &value, &version);
    if (result != 0)
        return result;
    lmdb_number_key version_key;
    MDB_val key = lmdb_number_key_value(&version_key, version);
    code = mdb_get(call->lmdb.transaction, call->store->outbox, &key, &value);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    json_t *record;
    result = lmdb_parse_json_record(&call->lmdb, &value, &record);
    if (result != 0)
        return result;
    json_t *since = json_object_get(json_object_get(record, "held"), "since");
    if (json_is_integer(since) && now - json_integer_value(since) < STORE_HELD_DELETE_MS) {
        *client_version = version;
        *outbox_record = record;
    } else {
        json_decref(record);
    }
    return 0;
}

/*
 * When a held delete of the object can merge with this write, *base
 * becomes the deleted document and the held delete leaves the outbox.
 * Either way the object no longer has a held delete that is its newest
 * changeset.
 */
static int merge_held_delete(const store_call *call, const store_object_change *change,
                             int64_t now, json_t **base)
{
    lmdb_object_key key;
    int result = object_key(call, call->lmdb.collection, change->id, &key);
    if (result != 0)
        return result;
    MDB_val held_key = lmdb_object_key_value(&key);
    uint64_t held_version = 0;
    json_t *held_record = NULL;
    if (change->old_text == NULL && change->new_text != NULL)
        result = find_mergeable_held_delete(call, &held_key, now, &held_version, &held_record);
    if (result == 0)
        result = delete_record(call, call->store->held_deletes, &held_key);
    if (result != 0 || held_record == NULL)
        return result;
    const char *deleted = json_string_value(
        json_object_get(json_object_get(held_record, "held"), "document"));
    if (deleted == NULL)
        result = lmdb_fail(&call->lmdb, -EIO, "damaged held delete %llu",
                           (unsigned long long)held_version);
    if (result == 0) {
        json_decref(*base);
        result = parse_document(call, deleted, strlen(deleted), base);
    }
    json_decref(held_record);
    lmdb_number_key version_key;
    MDB_val outbox_key = lmdb_number_key_value(&version_key, held_version);
    if (result == 0)
        result = delete_record(call, call->store->outbox, &outbox_key);
    /* a held delete's one instruction is the delete of this object */
    return result != 0 ? result : index_entry(call, &held_key, held_version, false);
}

/* The documents before and after a change, parsed before anything is
 * written: texts in the LMDB map are only valid until the next write. */
typedef struct parsed_change {
    json_t *old_document;
    json_t *new_document;
} parsed_change;

static int diff_change(const store_call *call, const store_object_change *change,
                       parsed_change *parsed, int64_t now, changeset *changes)
{
    int result = merge_held_delete(call, change, now, &parsed->old_document);
    char message[256];
    if (result == 0) {
        result = changeset_diff(call->lmdb.collection, change->id, parsed->old_document,
                                parsed->new_document, changes, message, sizeof message);
        if (result != 0)
            result = lmdb_fail(&call->lmdb, result, "cannot queue the change: %s", message);
    }
    return result;
}

/* The next changeset timestamp: the clock, but always past the last one. */
static int take_timestamp(const store_call *call, int64_t now, int64_t *timestamp)
{
    uint64_t last;
    int result = get_meta(call, META_LAST_TIMESTAMP, &last);
    if (result != 0)
        return result;
    *timestamp = now > (int64_t)last ? now : (int64_t)last + 1;
    return put_meta(call, META_LAST_TIMESTAMP, (uint64_t)*timestamp);
}

/* A held delete keeps the deleted text (held_text), to merge with the
 * object's next write. */
static int append_to_outbox(const store_call *call, changeset *changes, int64_t now,
                            const json_t *held_id, const char *held_text)
{
    uint64_t version;
    int result = get_meta(call, META_NEXT_CLIENT_VERSION, &version);
    if (result == 0)
        result = put_meta(call, META_NEXT_CLIENT_VERSION, version + 1);
    if (result == 0)
        result = take_timestamp(call, now, &changes->timestamp);
    if (result != 0)
        return result;
    changes->client_version = version;
    json_t *held_member = NULL;
    if (held_text != NULL) {
        held_member = json_pack("{s:I, s:s}", "since", (json_int_t)now, "document", held_text);
        if (held_member == NULL)
            return out_of_memory(call);
    }
    lmdb_number_key version_key;
    MDB_val key = lmdb_number_key_value(&version_key, version);
    json_t *record = json_pack("{s:o, s:o*}", "changeset", changeset_to_json(changes), "held",
                               held_member);
    result = record != NULL ? lmdb_put_json_record(&call->lmdb, call->store->outbox, &key,
                                                   record, 0)
                            : out_of_memory(call);
    json_decref(record);
    if (result == 0)
        result = index_changeset(call, changes, true);
    if (result != 0 || held_text == NULL)
        return result;
    lmdb_object_key object;
    result = object_key(call, call->lmdb.collection, held_id, &object);
    if (result != 0)
        return result;
    MDB_val held_key = lmdb_object_key_value(&object);
    int code = mdb_put(call->lmdb.transaction, call->store->held_deletes, &held_key, &key, 0);
    return code == 0 ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
}

int store_sync_queue_changes(const store_call *call, const store_object_change *changes,
                             size_t count, bool held)
{
    if (count > 2)
        return lmdb_fail(&call->lmdb, -EINVAL, "a write changes at most two objects");
    parsed_change parsed[2] = { { 0 } };
    bool holds = held && count == 1 && changes[0].old_text != NULL;
    char *held_text = holds ? strndup(changes[0].old_text, changes[0].old_size) : NULL;
    int result = holds && held_text == NULL ? out_of_memory(call) : 0;
    for (size_t i = 0; i < count && result == 0; i++) {
        result = parse_document(call, changes[i].old_text, changes[i].old_size,
                                &parsed[i].old_document);
        if (result == 0)
            result = parse_document(call, changes[i].new_text, changes[i].new_size,
                                    &parsed[i].new_document);
    }
    int64_t now;
    if (result == 0)
        result = now_ms(call, &now);
    changeset queued = { 0 };
    for (size_t i = 0; i < count && result == 0; i++)
        result = diff_change(call, &changes[i], &parsed[i], now, &queued);
    if (result == 0 && queued.count > 0)
        result = append_to_outbox(call, &queued, now, changes[0].id, held_text);
    changeset_clear(&queued);
    for (size_t i = 0; i < count; i++) {
        json_decref(parsed[i].old_document);
        json_decref(parsed[i].new_document);
    }
    free(held_text);
    return result;
}

/* ------------------------------------------------------------------ */
/* Progress and query results                                          */

static int get_progress(const store_call *call, store_sync_progress *progress)
{
    memset(progress, 0, sizeof *progress);
    const struct {
        const char *name;
        uint64_t *value;
    } numbers[] = {
        { META_FILE_IDENTITY, &progress->file_identity },
        { META_LAST_SERVER_VERSION, &progress->last_server_version },
        { META_ACKNOWLEDGED, &progress->last_acknowledged_client_version },
        { META_NEXT_CLIENT_VERSION, &progress->next_client_version },
        { META_SUBSCRIPTIONS_VERSION, &progress->subscriptions_version },
        { META_ACCEPTED_QUERY, &progress->accepted_query_version },
        { META_REFUSED_QUERY, &progress->refused_query_version },
        { META_REJECTED_WRITES, &progress->rejected_writes },
    };
    int result = 0;
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0] && result == 0; i++)
        result = get_meta(call, numbers[i].name, numbers[i].value);
    uint64_t resetting, server_schemas, development_mode;
    if (result == 0)
        result = get_meta(call, META_CLIENT_RESET, &resetting);
    if (result == 0)
        result = get_meta(call, META_SERVER_SCHEMAS, &server_schemas);
    if (result == 0)
        result = get_meta(call, META_DEVELOPMENT_MODE, &development_mode);
    if (result != 0)
        return result;
    progress->client_reset_pending = resetting != 0;
    progress->server_schemas = server_schemas != 0;
    progress->development_mode = development_mode != 0;
    MDB_stat outbox, read_only;
    int code = mdb_stat(call->lmdb.transaction, call->store->outbox, &outbox);
    if (code == 0)
        code = mdb_stat(call->lmdb.transaction, call->store->read_only_objects, &read_only);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_stat");
    progress->outbox_changesets = outbox.ms_entries;
    progress->read_only_objects = read_only.ms_entries;
    MDB_val key = lmdb_text_value(META_QUERY_ERROR), value;
    code = mdb_get(call->lmdb.transaction, call->store->meta, &key, &value);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    size_t size = value.mv_size < sizeof progress->query_error
                      ? value.mv_size : sizeof progress->query_error - 1;
    memcpy(progress->query_error, value.mv_data, size);
    return 0;
}

/* The refused query's message stays only while no later set was
 * accepted. */
static int set_query_result(const store_call *call, uint64_t query_version, bool accepted,
                            const char *message)
{
    uint64_t accepted_version, refused_version;
    int result = get_meta(call, META_ACCEPTED_QUERY, &accepted_version);
    if (result == 0)
        result = get_meta(call, META_REFUSED_QUERY, &refused_version);
    if (result != 0)
        return result;
    MDB_val key = lmdb_text_value(META_QUERY_ERROR);
    if (accepted && query_version > accepted_version) {
        result = put_meta(call, META_ACCEPTED_QUERY, query_version);
        if (result == 0 && query_version > refused_version)
            result = delete_record(call, call->store->meta, &key);
    } else if (!accepted && query_version > refused_version && query_version > accepted_version) {
        result = put_meta(call, META_REFUSED_QUERY, query_version);
        MDB_val text = lmdb_text_value(message != NULL ? message : "");
        if (text.mv_size >= QUERY_ERROR_SIZE)
            text.mv_size = QUERY_ERROR_SIZE - 1;
        int code = result == 0 ? mdb_put(call->lmdb.transaction, call->store->meta, &key, &text, 0)
                               : 0;
        if (code != 0)
            result = lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    }
    return result;
}

static int set_file_identity(const store_call *call, uint64_t identity)
{
    if (identity == 0 || identity > INT64_MAX)
        return lmdb_fail(&call->lmdb, -EINVAL, "file identity %llu is out of range",
                         (unsigned long long)identity);
    uint64_t current;
    int result = get_meta(call, META_FILE_IDENTITY, &current);
    if (result != 0 || current == identity)
        return result;
    if (current != 0)
        return lmdb_fail(&call->lmdb, -EEXIST, "the store has file identity %llu already",
                         (unsigned long long)current);
    return put_meta(call, META_FILE_IDENTITY, identity);
}

/* ------------------------------------------------------------------ */
/* Reading the outbox                                                  */

typedef struct outbox_scan {
    uint64_t identity;
    size_t max_changesets;
    int64_t now;
    int (*visit)(const changeset *changeset, void *context);
    void *context;
    size_t visited;
} outbox_scan;

static int scan_changeset(const store_call *call, MDB_cursor *cursor, changeset *queued,
                          int64_t held_since, void *state)
{
    (void)call;
    (void)cursor;
    outbox_scan *scan = state;
    if (held_since >= 0 && scan->now - held_since < STORE_HELD_DELETE_MS)
        return WALK_STOP;
    queued->origin = scan->identity;
    int result = scan->visit(queued, scan->context);
    if (result != 0)
        return result;
    scan->visited++;
    return scan->visited == scan->max_changesets ? WALK_STOP : 0;
}

static int scan_outbox(const store_call *call, uint64_t after, outbox_scan *scan)
{
    uint64_t resetting;
    int result = get_meta(call, META_FILE_IDENTITY, &scan->identity);
    if (result == 0)
        result = get_meta(call, META_CLIENT_RESET, &resetting);
    if (result != 0)
        return result;
    if (scan->identity == 0)
        return lmdb_fail(&call->lmdb, -EAGAIN, "the store has no file identity yet");
    if (resetting)
        return lmdb_fail(&call->lmdb, -EAGAIN, "a client reset waits for its bootstrap");
    result = for_each_outbox_changeset(call, after + 1, UINT64_MAX, scan_changeset, scan);
    return result != 0 ? result : (int)scan->visited;
}

/* ------------------------------------------------------------------ */
/* Subscriptions                                                       */

typedef struct subscription_key {
    uint8_t bytes[LMDB_COLLECTION_NAME_MAX + 1 + SUBSCRIPTION_NAME_MAX];
    MDB_val value;
} subscription_key;

static int build_subscription_key(const store_call *call, const char *name,
                                  subscription_key *key)
{
    int result = lmdb_check_collection_name(&call->lmdb, call->lmdb.collection);
    if (result != 0)
        return result;
    size_t name_size = name != NULL ? strlen(name) : 0;
    if (name_size == 0 || strchr(name, '/') != NULL)
        return lmdb_fail(&call->lmdb, -EINVAL, "a subscription name is not empty and has no '/'");
    if (name_size > SUBSCRIPTION_NAME_MAX)
        return lmdb_fail(&call->lmdb, -ENAMETOOLONG, "subscription name of %zu bytes (at most %d)",
                         name_size, SUBSCRIPTION_NAME_MAX);
    size_t collection_size = strlen(call->lmdb.collection);
    if (collection_size + 1 + name_size > call->store->max_key_size)
        return lmdb_fail(&call->lmdb, -ENAMETOOLONG, "collection and subscription name too long");
    memcpy(key->bytes, call->lmdb.collection, collection_size + 1);
    memcpy(key->bytes + collection_size + 1, name, name_size);
    key->value = (MDB_val){ .mv_size = collection_size + 1 + name_size, .mv_data = key->bytes };
    return 0;
}

static int bump_subscriptions_version(const store_call *call, uint64_t *version)
{
    uint64_t current;
    int result = get_meta(call, META_SUBSCRIPTIONS_VERSION, &current);
    if (result == 0)
        result = put_meta(call, META_SUBSCRIPTIONS_VERSION, current + 1);
    if (result == 0 && version != NULL)
        *version = current + 1;
    return result;
}

/* 1 and *query (in the map) when the subscription exists, else 0. */
static int find_subscription(const store_call *call, subscription_key *key, MDB_val *query)
{
    int code = mdb_get(call->lmdb.transaction, call->store->subscriptions, &key->value, query);
    if (code == MDB_NOTFOUND)
        return 0;
    return code == 0 ? 1 : lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
}

static int put_subscription(const store_call *call, const char *name, const char *query)
{
    subscription_key key;
    int result = build_subscription_key(call, name, &key);
    if (result != 0)
        return result;
    if (query == NULL || query[0] == '\0')
        return lmdb_fail(&call->lmdb, -EINVAL, "a subscription's query is not empty");
    MDB_val text = lmdb_text_value(query), current;
    int found = find_subscription(call, &key, &current);
    if (found < 0)
        return found;
    if (found && current.mv_size == text.mv_size && memcmp(current.mv_data, query, text.mv_size) == 0)
        return 0;
    int code = mdb_put(call->lmdb.transaction, call->store->subscriptions, &key.value, &text, 0);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    return bump_subscriptions_version(call, NULL);
}

static int delete_subscription(const store_call *call, const char *name)
{
    subscription_key key;
    int result = build_subscription_key(call, name, &key);
    if (result != 0)
        return result;
    int code = mdb_del(call->lmdb.transaction, call->store->subscriptions, &key.value, NULL);
    if (code == MDB_NOTFOUND)
        return lmdb_fail(&call->lmdb, -ENOENT, "no subscription \"%s\"", name);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_del");
    return bump_subscriptions_version(call, NULL);
}

static int rename_subscription(const store_call *call, const char *old_name,
                               const char *new_name)
{
    subscription_key old_key, new_key;
    int result = build_subscription_key(call, old_name, &old_key);
    if (result == 0)
        result = build_subscription_key(call, new_name, &new_key);
    if (result != 0)
        return result;
    MDB_val query;
    int found = find_subscription(call, &old_key, &query);
    if (found <= 0)
        return found < 0 ? found : lmdb_fail(&call->lmdb, -ENOENT, "no subscription \"%s\"",
                                             old_name);
    if (strcmp(old_name, new_name) == 0)
        return 0;
    /* the map's bytes move when the database changes: copy the query first */
    char *text = malloc(query.mv_size + 1);
    if (text == NULL)
        return out_of_memory(call);
    memcpy(text, query.mv_data, query.mv_size);
    text[query.mv_size] = '\0';
    MDB_val copy = { .mv_size = query.mv_size, .mv_data = text };
    int code = mdb_put(call->lmdb.transaction, call->store->subscriptions, &new_key.value, &copy, 0);
    free(text);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    code = mdb_del(call->lmdb.transaction, call->store->subscriptions, &old_key.value, NULL);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_del");
    return bump_subscriptions_version(call, NULL);
}

static int get_subscription(const store_call *call, const char *name, char **query)
{
    subscription_key key;
    int result = build_subscription_key(call, name, &key);
    if (result != 0)
        return result;
    MDB_val text;
    int found = find_subscription(call, &key, &text);
    if (found <= 0)
        return found < 0 ? found : lmdb_fail(&call->lmdb, -ENOENT, "no subscription \"%s\"", name);
    *query = strndup(text.mv_data, text.mv_size);
    return *query != NULL ? 0 : out_of_memory(call);
}

typedef int subscription_visit(const char *collection, const char *name, const char *query,
                               void *context);

typedef struct subscription_listing {
    subscription_visit *visit;
    void *context;
} subscription_listing;

static int list_subscription(const store_call *call, MDB_cursor *cursor, const MDB_val *key,
                             const MDB_val *value, void *state)
{
    (void)cursor;
    const subscription_listing *listing = state;
    /* key and query as C strings: "collection\0name\0query\0" */
    char *texts = malloc(key->mv_size + value->mv_size + 2);
    if (texts == NULL)
        return out_of_memory(call);
    memcpy(texts, key->mv_data, key->mv_size);
    texts[key->mv_size] = '\0';
    memcpy(texts + key->mv_size + 1, value->mv_data, value->mv_size);
    texts[key->mv_size + 1 + value->mv_size] = '\0';
    size_t collection_size = strlen(texts);
    int result;
    if (collection_size >= key->mv_size)
        result = lmdb_fail(&call->lmdb, -EIO, "corrupt subscription key");
    else
        result = listing->visit(texts, texts + collection_size + 1, texts + key->mv_size + 1,
                                listing->context);
    free(texts);
    return result;
}

/* ------------------------------------------------------------------ */
/* Applying downloads                                                  */

/*
 * A batch is staged as it arrives, as the documents it leaves: staged
 * maps each object key the batch touched so far to its mirror document
 * after the batch's changesets (one-line canonical text, a NUL, then the
 * canonical pretty text the mount shows when nothing is pending), or to
 * nothing when the batch deleted it.  The work per object is done while
 * the rest of the batch is still on its way, and the last message only
 * moves the staged documents into the mirror and the visible objects.
 */

/* An object a download or a dropped outbox changeset touched. */
typedef struct touched_object {
    lmdb_object_key key;
    char *collection;
    json_t *id;
    json_t *mirror;       /* the server's document; NULL when not in view */
    bool loaded;          /* mirror was read (or made moot by a delete) */
    json_t *visible;      /* mirror + pending outbox instructions */
    bool pending;         /* the outbox holds instructions for it */
    char *lost_text;      /* a client reset could not re-apply its local change */
} touched_object;

typedef struct touched_set {
    touched_object *objects;
    size_t count;
    size_t capacity;
    json_t *positions; /* object key bytes -> position in objects */
} touched_set;

static int touched_set_init(const store_call *call, touched_set *set)
{
    *set = (touched_set){ .positions = json_object() };
    return set->positions != NULL ? 0 : out_of_memory(call);
}

static void touched_object_clear(touched_object *object)
{
    free(object->collection);
    json_decref(object->id);
    json_decref(object->mirror);
    json_decref(object->visible);
    free(object->lost_text);
}

static void touched_set_clear(touched_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        touched_object_clear(&set->objects[i]);
    free(set->objects);
    json_decref(set->positions);
}

/* The object's entry, or NULL when the set does not hold it. */
static touched_object *touched_find(const touched_set *set, const lmdb_object_key *key)
{
    json_t *position = json_object_getn(set->positions, (const char *)key->bytes, key->size);
    return position != NULL ? &set->objects[json_integer_value(position)] : NULL;
}

/* The mirror's document of the object, from the mirror database. */
static int load_mirror(const store_call *call, touched_object *object)
{
    object->loaded = true;
    MDB_val key = lmdb_object_key_value(&object->key), value;
    int code = mdb_get(call->lmdb.transaction, call->store->mirror, &key, &value);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    int result = parse_document(call, value.mv_data, value.mv_size, &object->mirror);
    return result == -EINVAL ? lmdb_fail(&call->lmdb, -EIO, "damaged mirror document") : result;
}

/* The one-line text of a staged document (NULL for a deleted one) and
 * its pretty text. */
typedef struct staged_document {
    const char *line;
    size_t line_size;
    const char *pretty;
    size_t pretty_size;
} staged_document;

static int read_staged(const store_call *call, const MDB_val *value, staged_document *staged)
{
    *staged = (staged_document){ 0 };
    if (value->mv_size == 0)
        return 0;
    const char *bytes = value->mv_data;
    const char *separator = memchr(bytes, '\0', value->mv_size);
    if (separator == NULL)
        return lmdb_fail(&call->lmdb, -EIO, "damaged staged document");
    staged->line = bytes;
    staged->line_size = (size_t)(separator - bytes);
    staged->pretty = separator + 1;
    staged->pretty_size = value->mv_size - staged->line_size - 1;
    return 0;
}

/* The object's mirror document as the batch staged so far leaves it. */
static int load_staged_or_mirror(const store_call *call, touched_object *object)
{
    MDB_val key = lmdb_object_key_value(&object->key), value;
    int code = mdb_get(call->lmdb.transaction, call->store->staged_downloads, &key, &value);
    if (code == MDB_NOTFOUND)
        return load_mirror(call, object);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    object->loaded = true;
    staged_document staged;
    int result = read_staged(call, &value, &staged);
    if (result == 0)
        result = parse_document(call, staged.line, staged.line_size, &object->mirror);
    return result == -EINVAL ? lmdb_fail(&call->lmdb, -EIO, "damaged staged document") : result;
}

/* The entry of an object, added (its documents not loaded) when new. */
static int touch_object(const store_call *call, touched_set *set, const char *collection,
                        json_t *id, touched_object **out)
{
    lmdb_object_key key;
    int result = object_key(call, collection, id, &key);
    if (result != 0)
        return result;
    *out = touched_find(set, &key);
    if (*out != NULL)
        return 0;
    touched_object *objects = make_room(set->objects, set->count, &set->capacity,
                                        sizeof *objects);
    if (objects == NULL)
        return out_of_memory(call);
    set->objects = objects;
    touched_object *object = &set->objects[set->count];
    *object = (touched_object){ .key = key, .id = json_incref(id) };
    object->collection = strdup(collection);
    if (object->collection == NULL) {
        json_decref(object->id);
        return out_of_memory(call);
    }
    set->count++;
    if (json_object_setn_new_nocheck(set->positions, (const char *)key.bytes, key.size,
                                     json_integer((json_int_t)set->count - 1)) != 0)
        return out_of_memory(call);
    *out = object;
    return 0;
}

/* The entry of the instruction's object. */
static int touch(const store_call *call, touched_set *set, const changeset_instruction *instruction,
                 touched_object **out)
{
    return touch_object(call, set, instruction->collection, instruction->id, out);
}

static int replay(const store_call *call, const changeset_instruction *instruction,
                  json_t **document)
{
    return changeset_replay(instruction, document) == 0 ? 0 : out_of_memory(call);
}

/* The staged documents follow the server's changeset.  A delete needs
 * no earlier document, which spares a bootstrap's replacements any
 * lookup.  The instructions of one object come together and share its id
 * (protocol_read_received), so a run of them finds its entry once. */
static int mirror_changeset(const store_call *call, touched_set *set, const changeset *changes)
{
    const changeset_instruction *previous = NULL;
    size_t previous_position = 0;
    for (size_t i = 0; i < changes->count; i++) {
        const changeset_instruction *instruction = &changes->instructions[i];
        touched_object *object = NULL;
        int result = 0;
        if (previous != NULL && previous->id == instruction->id &&
            strcmp(previous->collection, instruction->collection) == 0)
            object = &set->objects[previous_position];
        else
            result = touch(call, set, instruction, &object);
        if (result != 0)
            return result;
        previous = instruction;
        previous_position = (size_t)(object - set->objects);
        if (!object->loaded && instruction->operation != CHANGESET_DELETE)
            result = load_staged_or_mirror(call, object);
        object->loaded = true;
        if (result == 0)
            result = replay(call, instruction, &object->mirror);
        if (result != 0)
            return result;
    }
    return 0;
}

static int write_staged(const store_call *call, const touched_object *object)
{
    MDB_val key = lmdb_object_key_value(&object->key);
    MDB_val value = { 0 };
    if (object->mirror == NULL) {
        int code = mdb_put(call->lmdb.transaction, call->store->staged_downloads, &key, &value, 0);
        return code == 0 ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    }
    size_t line_size, pretty_size;
    char *line = ejson_format_line(object->mirror, &line_size);
    char *pretty = ejson_format_pretty(object->mirror, &pretty_size);
    int result = line != NULL && pretty != NULL ? 0 : out_of_memory(call);
    if (result == 0) {
        value.mv_size = line_size + 1 + pretty_size;
        int code = mdb_put(call->lmdb.transaction, call->store->staged_downloads, &key, &value,
                           MDB_RESERVE);
        if (code != 0)
            result = lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    }
    if (result == 0) {
        memcpy(value.mv_data, line, line_size);
        ((char *)value.mv_data)[line_size] = '\0';
        memcpy((char *)value.mv_data + line_size + 1, pretty, pretty_size);
    }
    free(line);
    free(pretty);
    return result;
}

static int stage_download(const store_call *call, const protocol_download_body *download)
{
    touched_set set;
    int result = touched_set_init(call, &set);
    for (size_t i = 0; i < download->changeset_count && result == 0; i++)
        result = mirror_changeset(call, &set, &download->changesets[i].changeset);
    for (size_t i = 0; i < set.count && result == 0; i++)
        result = write_staged(call, &set.objects[i]);
    touched_set_clear(&set);
    return result;
}

static int discard_staged(const store_call *call)
{
    int code = mdb_drop(call->lmdb.transaction, call->store->staged_downloads, 0);
    return code == 0 ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_drop");
}

/* The held delete's index entry goes with it, unless a later held delete
 * of the object replaced it. */
static int forget_held_delete(const store_call *call, const changeset *dropped)
{
    lmdb_object_key key;
    const changeset_instruction *deleted = &dropped->instructions[0];
    int result = object_key(call, deleted->collection, deleted->id, &key);
    if (result != 0)
        return result;
    MDB_val held_key = lmdb_object_key_value(&key), value;
    int code = mdb_get(call->lmdb.transaction, call->store->held_deletes, &held_key, &value);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    uint64_t version;
    result = lmdb_number_key_decode(&call->lmdb, &value, &version);
    if (result != 0 || version != dropped->client_version)
        return result;
    return delete_record(call, call->store->held_deletes, &held_key);
}

static int touch_changeset(const store_call *call, touched_set *set, const changeset *changes)
{
    for (size_t i = 0; i < changes->count; i++) {
        touched_object *object;
        int result = touch(call, set, &changes->instructions[i], &object);
        if (result != 0)
            return result;
    }
    return 0;
}

/* An acknowledged changeset leaves the outbox; its objects are shown
 * again as the mirror and what is still pending say. */
static int drop_acknowledged(const store_call *call, MDB_cursor *cursor, changeset *queued,
                             int64_t held_since, void *state)
{
    int result = touch_changeset(call, state, queued);
    if (result == 0)
        result = index_changeset(call, queued, false);
    if (result == 0 && held_since >= 0)
        result = forget_held_delete(call, queued);
    if (result != 0)
        return result;
    int code = mdb_cursor_del(cursor, 0);
    return code == 0 ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_del");
}

/* What a download changes in the visible objects: each change has the
 * store's next version and one time; the objects whose text changed are
 * listed for the caller. */
typedef struct visible_update {
    uint64_t version;
    int64_t modified_ns;
    store_download_change *changes;
    size_t count;
    size_t capacity;
} visible_update;

/* Starts showing texts; the changes listed before (modes) stay listed. */
static int begin_visible_update(const store_call *call, visible_update *update)
{
    int result = store_take_next_version(call, &update->version);
    return result == 0 ? store_current_time_ns(call, &update->modified_ns) : result;
}

/* One object whose visible text is about to be shown. */
typedef struct shown_object {
    const lmdb_object_key *key;
    const char *collection;
    const json_t *id;      /* NULL: decoded from key when the change is listed */
    const char *text;      /* NULL: the object is not visible */
    size_t size;
    const char *lost_text; /* for store_download_change.lost_text, or NULL */
} shown_object;

static int list_change(const store_call *call, visible_update *update, const shown_object *object,
                       bool existed)
{
    store_download_change *changes = make_room(update->changes, update->count,
                                               &update->capacity, sizeof *changes);
    if (changes == NULL)
        return out_of_memory(call);
    update->changes = changes;
    store_download_change *change = &update->changes[update->count];
    *change = (store_download_change){ .existed = existed, .exists = object->text != NULL };
    change->collection = strdup(object->collection);
    if (change->collection == NULL)
        return out_of_memory(call);
    update->count++;
    if (object->lost_text != NULL && (change->lost_text = strdup(object->lost_text)) == NULL)
        return out_of_memory(call);
    if (object->id != NULL) {
        change->id = json_incref((json_t *)object->id);
        return 0;
    }
    size_t prefix = object->key->collection_prefix_size;
    return lmdb_object_key_decode_id(&call->lmdb, object->key->bytes + prefix,
                                     object->key->size - prefix, &change->id);
}

/* Makes the object's visible text object->text, and lists it when that
 * changed it. */
static int show_text(const store_call *call, const shown_object *object, visible_update *update)
{
    const char *current;
    size_t current_size;
    int result = store_find_object_text(call, object->key, &current, &current_size);
    if (result != 0)
        return result;
    bool existed = current != NULL;
    bool unchanged = object->text == NULL ? !existed
                                          : existed && current_size == object->size &&
                                                memcmp(current, object->text, object->size) == 0;
    if (unchanged)
        return 0;
    store_call named = *call;
    named.lmdb.collection = object->collection;
    if (object->text != NULL) {
        result = store_ensure_collection(&named, object->collection);
        if (result == 0)
            result = store_write_object_record(&named, object->key, update->version,
                                               object->text, object->size,
                                               update->modified_ns, NULL);
    } else {
        result = store_delete_object_record(&named, object->key);
    }
    return result == 0 ? list_change(call, update, object, existed) : result;
}

/* Makes the object's visible text what the mirror and the outbox say
 * (compute_object_visible), and lists it when that changed it. */
static int show_object(const store_call *call, const touched_object *object, visible_update *update)
{
    /* An object out of view that still has local changes stays as the
     * user left it until they are acknowledged. */
    if (object->mirror == NULL && object->pending)
        return 0;
    shown_object shown = { .key = &object->key, .collection = object->collection,
                           .id = object->id, .lost_text = object->lost_text };
    char *text = NULL;
    if (object->visible != NULL && (text = ejson_format_pretty(object->visible, &shown.size)) == NULL)
        return out_of_memory(call);
    shown.text = text;
    int result = show_text(call, &shown, update);
    free(text);
    return result;
}

/* Replays on object->visible the object's instructions of the outbox
 * changeset of client version (an outbox_index entry of the object). */
static int replay_pending_changeset(const store_call *call, touched_object *object,
                                    const MDB_val *version)
{
    uint64_t client_version;
    int result = lmdb_number_key_decode(&call->lmdb, version, &client_version);
    if (result != 0)
        return result;
    lmdb_number_key version_key;
    MDB_val key = lmdb_number_key_value(&version_key, client_version), value;
    int code = mdb_get(call->lmdb.transaction, call->store->outbox, &key, &value);
    if (code != 0)
        return code == MDB_NOTFOUND
                   ? lmdb_fail(&call->lmdb, -EIO, "the outbox index names changeset %llu, "
                               "which the outbox lacks", (unsigned long long)client_version)
                   : lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    changeset queued = { 0 };
    int64_t held_since;
    result = read_outbox_record(call, &value, &queued, &held_since);
    /* visible shares the mirror's document until something changes it */
    if (result == 0 && object->visible != NULL && object->visible == object->mirror) {
        object->visible = json_deep_copy(object->mirror);
        json_decref(object->mirror);
        if (object->visible == NULL)
            result = out_of_memory(call);
    }
    for (size_t i = 0; i < queued.count && result == 0; i++) {
        const changeset_instruction *instruction = &queued.instructions[i];
        lmdb_object_key instruction_key;
        result = object_key(call, instruction->collection, instruction->id, &instruction_key);
        if (result != 0)
            break;
        MDB_val stored = lmdb_object_key_value(&instruction_key);
        if (lmdb_object_key_equals(&stored, &object->key))
            result = replay(call, instruction, &object->visible);
    }
    changeset_clear(&queued);
    object->pending = true;
    return result;
}

/* visible := mirror + the pending instructions of the outbox changesets
 * that touch the object, in client-version order. */
static int compute_object_visible(const store_call *call, touched_object *object)
{
    int result = object->loaded ? 0 : load_mirror(call, object);
    if (result != 0)
        return result;
    object->visible = json_incref(object->mirror);
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, call->store->outbox_index, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    MDB_val key = lmdb_object_key_value(&object->key), version;
    for (code = mdb_cursor_get(cursor, &key, &version, MDB_SET_KEY); code == 0 && result == 0;
         code = mdb_cursor_get(cursor, &key, &version, MDB_NEXT_DUP))
        result = replay_pending_changeset(call, object, &version);
    return lmdb_cursor_finish(&call->lmdb, cursor, result, code, "mdb_cursor_get");
}

static int compute_visible(const store_call *call, touched_set *set)
{
    int result = 0;
    for (size_t i = 0; i < set->count && result == 0; i++)
        result = compute_object_visible(call, &set->objects[i]);
    return result;
}

/* 1 when the outbox holds changes of the object, else 0. */
static int has_pending_changes(const store_call *call, MDB_val *key)
{
    MDB_val version;
    int code = mdb_get(call->lmdb.transaction, call->store->outbox_index, key, &version);
    if (code == MDB_NOTFOUND)
        return 0;
    return code == 0 ? 1 : lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
}

/* Shows a staged object that has pending changes: they are replayed on
 * the staged document. */
static int show_with_pending_changes(const store_call *call, const lmdb_object_key *key,
                                     const staged_document *staged, visible_update *update)
{
    char collection[LMDB_COLLECTION_NAME_MAX + 1];
    touched_object object = { .key = *key, .loaded = true };
    MDB_val key_value = lmdb_object_key_value(key);
    int result = decode_object_key(call, &key_value, collection, &object.id);
    if (result == 0 && (object.collection = strdup(collection)) == NULL)
        result = out_of_memory(call);
    if (result == 0)
        result = parse_document(call, staged->line, staged->line_size, &object.mirror);
    if (result == 0)
        result = compute_object_visible(call, &object);
    if (result == 0)
        result = show_object(call, &object, update);
    touched_object_clear(&object);
    return result;
}

/* One staged document goes into the mirror, and with showing (NULL when
 * a client reset shows everything itself) into the visible objects. */
static int commit_staged_document(const store_call *call, const MDB_val *key,
                                  const MDB_val *value, visible_update *update)
{
    if (key->mv_size > sizeof ((lmdb_object_key *)NULL)->bytes)
        return lmdb_fail(&call->lmdb, -EIO, "corrupt staged key");
    lmdb_object_key object_key = { .size = key->mv_size };
    memcpy(object_key.bytes, key->mv_data, key->mv_size);
    object_key.collection_prefix_size = strnlen((const char *)object_key.bytes, key->mv_size) + 1;
    /* the map's bytes are only valid until the next write */
    char *copy = malloc(value->mv_size + 1);
    if (copy == NULL)
        return out_of_memory(call);
    memcpy(copy, value->mv_data, value->mv_size);
    MDB_val copied = { .mv_size = value->mv_size, .mv_data = copy };
    staged_document staged;
    int result = read_staged(call, &copied, &staged);
    MDB_val mirror_key = lmdb_object_key_value(&object_key);
    if (result == 0 && staged.line == NULL) {
        result = delete_record(call, call->store->mirror, &mirror_key);
    } else if (result == 0) {
        MDB_val line = { .mv_size = staged.line_size, .mv_data = (void *)staged.line };
        int code = mdb_put(call->lmdb.transaction, call->store->mirror, &mirror_key, &line, 0);
        if (code != 0)
            result = lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    }
    int pending = result == 0 && update != NULL ? has_pending_changes(call, &mirror_key) : 0;
    if (pending < 0)
        result = pending;
    if (result == 0 && update != NULL && pending) {
        if (staged.line != NULL)
            result = show_with_pending_changes(call, &object_key, &staged, update);
    } else if (result == 0 && update != NULL) {
        char collection[LMDB_COLLECTION_NAME_MAX + 1];
        memcpy(collection, object_key.bytes, object_key.collection_prefix_size);
        shown_object shown = { .key = &object_key, .collection = collection,
                               .text = staged.pretty, .size = staged.pretty_size };
        result = show_text(call, &shown, update);
    }
    free(copy);
    return result;
}

static int commit_staged_record(const store_call *call, MDB_cursor *cursor, const MDB_val *key,
                                const MDB_val *value, void *state)
{
    (void)cursor;
    return commit_staged_document(call, key, value, state);
}

/* The staged batch into the mirror, and unless update is NULL into the
 * visible objects.  Staged stays until discard_staged. */
static int commit_staged(const store_call *call, visible_update *update)
{
    return walk_records(call, call->store->staged_downloads, NULL, commit_staged_record, update);
}

/* 1 when the batch staged the object, else 0. */
static int is_staged(const store_call *call, const lmdb_object_key *key)
{
    MDB_val key_value = lmdb_object_key_value(key), value;
    int code = mdb_get(call->lmdb.transaction, call->store->staged_downloads, &key_value, &value);
    if (code == MDB_NOTFOUND)
        return 0;
    return code == 0 ? 1 : lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
}

/* Shows the objects of the set, but those commit_staged showed already
 * (skip_staged). */
static int show_objects(const store_call *call, touched_set *set, bool skip_staged,
                        visible_update *update)
{
    int result = 0;
    for (size_t i = 0; i < set->count && result == 0; i++) {
        touched_object *object = &set->objects[i];
        int staged = skip_staged ? is_staged(call, &object->key) : 0;
        if (staged < 0)
            return staged;
        if (staged)
            continue;
        result = compute_object_visible(call, object);
        if (result == 0)
            result = show_object(call, object, update);
    }
    return result;
}

static int record_download_progress(const store_call *call, const protocol_download_body *download)
{
    int result = put_meta(call, META_LAST_SERVER_VERSION, download->server_version);
    if (result == 0)
        result = raise_meta(call, META_ACKNOWLEDGED, download->last_integrated_client_version);
    if (result == 0 && download->query_version > 0)
        result = set_query_result(call, download->query_version, true, NULL);
    return result;
}

/* ------------------------------------------------------------------ */
/* Access                                                              */

/*
 * read_only_objects follows the downloads' access entries
 * (docs/protocol.md, "Access"): each message's entries apply after its
 * changesets, and an object loses its entry when it leaves the view (a
 * delete in a download).  Both happen message by message, in the
 * message's transaction, also for the messages of a batch that is only
 * staged: so an entry of a later message is never undone by a delete in
 * an earlier one, and an object of a bootstrap is read-only from the
 * moment it shows.
 */

/* The object's read-only mark changed: a visible one is listed, for the
 * caller to drop what the kernel caches of its mode. */
static int list_mode_change(const store_call *call, const lmdb_object_key *key,
                            const char *collection, const json_t *id, visible_update *update)
{
    const char *text;
    size_t size;
    int result = store_find_object_text(call, key, &text, &size);
    if (result != 0 || text == NULL)
        return result;
    shown_object shown = { .key = key, .collection = collection, .id = id, .text = text,
                           .size = size };
    return list_change(call, update, &shown, true);
}

static int forget_access_of_deleted(const store_call *call, const protocol_download_body *download,
                                    visible_update *update)
{
    /* a bootstrap's replacements are deletes too: spare them the lookups
     * while no object is read-only, as with most apps */
    MDB_stat marked;
    int code = mdb_stat(call->lmdb.transaction, call->store->read_only_objects, &marked);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_stat");
    if (marked.ms_entries == 0)
        return 0;
    for (size_t i = 0; i < download->changeset_count; i++) {
        const changeset *changes = &download->changesets[i].changeset;
        for (size_t j = 0; j < changes->count; j++) {
            const changeset_instruction *instruction = &changes->instructions[j];
            if (instruction->operation != CHANGESET_DELETE)
                continue;
            lmdb_object_key key;
            int result = object_key(call, instruction->collection, instruction->id, &key);
            if (result != 0)
                return result;
            MDB_val key_value = lmdb_object_key_value(&key);
            code = mdb_del(call->lmdb.transaction, call->store->read_only_objects, &key_value,
                           NULL);
            if (code != 0 && code != MDB_NOTFOUND)
                return lmdb_fail_mdb(&call->lmdb, code, "mdb_del");
            /* until the batch completes, the object shows, now writable */
            if (code == 0)
                result = list_mode_change(call, &key, instruction->collection, instruction->id,
                                          update);
            if (result != 0)
                return result;
        }
    }
    return 0;
}

/* Marks the object read-only or writable; a visible object whose mark
 * changed is listed, for the caller to drop what the kernel caches of
 * its mode. */
static int set_object_access(const store_call *call, const protocol_object_access *entry,
                             visible_update *update)
{
    lmdb_object_key key;
    int result = object_key(call, entry->collection, entry->id, &key);
    if (result != 0)
        return result;
    MDB_val key_value = lmdb_object_key_value(&key), nothing = { 0 };
    MDB_txn *transaction = call->lmdb.transaction;
    int code = entry->writable
                   ? mdb_del(transaction, call->store->read_only_objects, &key_value, NULL)
                   : mdb_put(transaction, call->store->read_only_objects, &key_value, &nothing,
                             MDB_NOOVERWRITE);
    if (code == MDB_NOTFOUND || code == MDB_KEYEXIST)
        return 0; /* it already was so */
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, entry->writable ? "mdb_del" : "mdb_put");
    return list_mode_change(call, &key, entry->collection, entry->id, update);
}

static int apply_access(const store_call *call, const protocol_download_body *download,
                        visible_update *update)
{
    int result = 0;
    for (size_t i = 0; i < download->access_count && result == 0; i++)
        result = set_object_access(call, &download->access[i], update);
    return result;
}

static int is_read_only(const store_call *call, const json_t *id)
{
    lmdb_object_key key;
    int result = object_key(call, call->lmdb.collection, id, &key);
    if (result != 0)
        return result;
    MDB_val key_value = lmdb_object_key_value(&key), value;
    int code = mdb_get(call->lmdb.transaction, call->store->read_only_objects, &key_value, &value);
    if (code == MDB_NOTFOUND)
        return 0;
    return code == 0 ? 1 : lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
}

/* ------------------------------------------------------------------ */
/* Client reset                                                        */

/* A read-only object, which the reset makes writable: a visible one is
 * listed, so that the kernel drops the mode it caches (0444) at once. */
static int list_read_only_object(const store_call *call, MDB_cursor *cursor, const MDB_val *key,
                                 const MDB_val *value, void *state)
{
    (void)cursor;
    (void)value;
    char collection[LMDB_COLLECTION_NAME_MAX + 1];
    json_t *id;
    int result = decode_object_key(call, key, collection, &id);
    lmdb_object_key object;
    if (result == 0)
        result = object_key(call, collection, id, &object);
    if (result == 0)
        result = list_mode_change(call, &object, collection, id, state);
    json_decref(id);
    return result;
}

/*
 * Between store_begin_client_reset and the bootstrap that completes it,
 * the outbox is "set aside": kept, and replayed on the new mirror as
 * usual, but not uploaded; the new file's server history knows none of
 * it.  The reset completes with the first bootstrap (a last_in_batch
 * download) of the subscription set as it stands: the outbox then turns
 * into new changesets against the fresh documents, or into losses.
 */
static int begin_client_reset(const store_call *call, visible_update *update)
{
    const char *forgotten[] = {
        META_FILE_IDENTITY, META_LAST_SERVER_VERSION, META_ACKNOWLEDGED,
        META_ACCEPTED_QUERY, META_REFUSED_QUERY,
    };
    int result = 0;
    for (size_t i = 0; i < sizeof forgotten / sizeof forgotten[0] && result == 0; i++)
        result = put_meta(call, forgotten[i], 0);
    MDB_val query_error = lmdb_text_value(META_QUERY_ERROR);
    if (result == 0)
        result = delete_record(call, call->store->meta, &query_error);
    int code = result == 0 ? mdb_drop(call->lmdb.transaction, call->store->mirror, 0) : 0;
    /* the new file's bootstrap says again what may not be written */
    if (code == 0 && result == 0)
        result = walk_records(call, call->store->read_only_objects, NULL, list_read_only_object,
                              update);
    if (code == 0 && result == 0)
        code = mdb_drop(call->lmdb.transaction, call->store->read_only_objects, 0);
    if (code != 0)
        result = lmdb_fail_mdb(&call->lmdb, code, "mdb_drop");
    if (result == 0)
        result = discard_staged(call);
    /* With no subscription ever written, the new file gets the empty set:
     * its (empty) bootstrap is what completes the reset. */
    uint64_t subscriptions_version;
    if (result == 0)
        result = get_meta(call, META_SUBSCRIPTIONS_VERSION, &subscriptions_version);
    if (result == 0 && subscriptions_version == 0)
        result = bump_subscriptions_version(call, NULL);
    if (result == 0)
        result = put_meta(call, META_CLIENT_RESET, 1);
    return result;
}

/* Whether this download completes a pending client reset. */
static int completes_client_reset(const store_call *call, const protocol_download_body *download,
                                  bool *completes)
{
    uint64_t resetting, subscriptions_version;
    int result = get_meta(call, META_CLIENT_RESET, &resetting);
    if (result == 0)
        result = get_meta(call, META_SUBSCRIPTIONS_VERSION, &subscriptions_version);
    *completes = result == 0 && resetting && download->last_in_batch &&
                 download->query_version >= subscriptions_version;
    return result;
}

/* A visible object or a mirror document joins the set. */
static int touch_stored_object(const store_call *call, MDB_cursor *cursor, const MDB_val *key,
                               const MDB_val *value, void *state)
{
    (void)cursor;
    (void)value;
    char collection[LMDB_COLLECTION_NAME_MAX + 1];
    json_t *id;
    touched_object *object;
    int result = decode_object_key(call, key, collection, &id);
    if (result == 0)
        result = touch_object(call, state, collection, id, &object);
    json_decref(id);
    return result;
}

static int touch_set_aside(const store_call *call, MDB_cursor *cursor, changeset *queued,
                           int64_t held_since, void *state)
{
    (void)cursor;
    (void)held_since;
    return touch_changeset(call, state, queued);
}

/* 1 when some subscription names the collection, else 0. */
static int collection_subscribed(const store_call *call, const char *collection)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, call->store->subscriptions, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    size_t prefix_size = strlen(collection) + 1;
    MDB_val key = { .mv_size = prefix_size, .mv_data = (void *)collection }, value;
    code = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
    bool found = code == 0 && key.mv_size > prefix_size &&
                 memcmp(key.mv_data, collection, prefix_size) == 0;
    int result = lmdb_cursor_finish(&call->lmdb, cursor, 0, code == MDB_NOTFOUND ? 0 : code,
                                    "mdb_cursor_get");
    return result != 0 ? result : found;
}

/*
 * What becomes of an object's set-aside changes: object->visible holds
 * them replayed on the fresh document (object->mirror).  They go up again
 * as the diff between the two; but an edit of an object the server does
 * not show (it was deleted, or the subscriptions no longer select it) has
 * nothing to apply to, and a new object in a collection no subscription
 * names would never come back to the mount: those are lost, with the
 * local text kept in lost_text for the caller to report.
 */
static int recover_object(const store_call *call, touched_object *object, int64_t now)
{
    if (object->mirror == NULL) {
        int subscribed = object->visible != NULL
                             ? collection_subscribed(call, object->collection) : 0;
        if (subscribed < 0)
            return subscribed;
        if (!subscribed) {
            const char *current;
            size_t size;
            int result = store_find_object_text(call, &object->key, &current, &size);
            if (result != 0)
                return result;
            if (object->visible != NULL)
                object->lost_text = ejson_format_pretty(object->visible, NULL);
            else if (current != NULL)
                object->lost_text = strndup(current, size);
            if ((object->visible != NULL || current != NULL) && object->lost_text == NULL)
                return out_of_memory(call);
            json_decref(object->visible);
            object->visible = NULL;
            object->pending = false; /* nothing of it waits any more: it leaves */
            return 0;
        }
    }
    changeset recovered = { 0 };
    char message[256];
    int result = changeset_diff(object->collection, object->id, object->mirror, object->visible,
                                &recovered, message, sizeof message);
    if (result != 0)
        result = lmdb_fail(&call->lmdb, result, "cannot re-apply a local change: %s", message);
    if (result == 0 && recovered.count > 0)
        result = append_to_outbox(call, &recovered, now, NULL, NULL);
    changeset_clear(&recovered);
    return result;
}

/*
 * Completes a client reset, after the download's batch went into the
 * mirror: every object visible, in the mirror or named by the set-aside
 * outbox is shown anew as the fresh mirror plus what could be re-applied
 * of the set-aside changes.
 */
static int complete_client_reset(const store_call *call, visible_update *update)
{
    touched_set set;
    int result = touched_set_init(call, &set);
    if (result == 0)
        result = walk_records(call, call->store->objects, NULL, touch_stored_object, &set);
    if (result == 0)
        result = walk_records(call, call->store->mirror, NULL, touch_stored_object, &set);
    if (result == 0)
        result = for_each_outbox_changeset(call, 1, UINT64_MAX, touch_set_aside, &set);
    if (result == 0)
        result = compute_visible(call, &set);
    int code = result == 0 ? mdb_drop(call->lmdb.transaction, call->store->outbox, 0) : 0;
    if (code == 0 && result == 0)
        code = mdb_drop(call->lmdb.transaction, call->store->outbox_index, 0);
    if (code == 0 && result == 0)
        code = mdb_drop(call->lmdb.transaction, call->store->held_deletes, 0);
    if (code != 0)
        result = lmdb_fail_mdb(&call->lmdb, code, "mdb_drop");
    int64_t now;
    if (result == 0)
        result = now_ms(call, &now);
    for (size_t i = 0; i < set.count && result == 0; i++)
        if (set.objects[i].pending)
            result = recover_object(call, &set.objects[i], now);
    for (size_t i = 0; i < set.count && result == 0; i++)
        result = show_object(call, &set.objects[i], update);
    if (result == 0)
        result = put_meta(call, META_CLIENT_RESET, 0);
    touched_set_clear(&set);
    return result;
}

/* The last message of a batch: the staged batch (this message included)
 * and the acknowledged outbox changesets become the mirror and the
 * visible objects. */
static int complete_batch(const store_call *call, const protocol_download_body *download,
                          visible_update *update)
{
    touched_set acknowledged;
    int result = touched_set_init(call, &acknowledged);
    if (result == 0)
        result = for_each_outbox_changeset(call, 1, download->last_integrated_client_version,
                                           drop_acknowledged, &acknowledged);
    bool completes_reset = false;
    if (result == 0)
        result = completes_client_reset(call, download, &completes_reset);
    if (result == 0)
        result = begin_visible_update(call, update);
    if (result == 0 && completes_reset) {
        result = commit_staged(call, NULL);
        if (result == 0)
            result = discard_staged(call);
        if (result == 0)
            result = complete_client_reset(call, update);
    } else if (result == 0) {
        result = commit_staged(call, update);
        if (result == 0)
            result = show_objects(call, &acknowledged, true, update);
        if (result == 0)
            result = discard_staged(call);
    }
    touched_set_clear(&acknowledged);
    return result;
}

static int apply_download(const store_call *call, const protocol_download_body *download,
                          visible_update *update)
{
    uint64_t identity, last_server_version;
    int result = get_meta(call, META_FILE_IDENTITY, &identity);
    if (result == 0)
        result = get_meta(call, META_LAST_SERVER_VERSION, &last_server_version);
    if (result != 0)
        return result;
    if (identity == 0)
        return lmdb_fail(&call->lmdb, -EINVAL, "the store has no file identity yet");
    if (download->server_version < last_server_version)
        return lmdb_fail(&call->lmdb, -EINVAL, "server version %llu is behind %llu",
                         (unsigned long long)download->server_version,
                         (unsigned long long)last_server_version);
    result = stage_download(call, download);
    if (result == 0)
        result = forget_access_of_deleted(call, download, update);
    if (result == 0 && download->last_in_batch)
        result = complete_batch(call, download, update);
    if (result == 0)
        result = apply_access(call, download, update);
    if (result == 0 && download->last_in_batch)
        result = record_download_progress(call, download);
    return result;
}

/* ------------------------------------------------------------------ */
/* Refused writes                                                      */

/*
 * A compensating write: the server refused what the outbox changesets up
 * to client_version do to one object, and integrated the rest of them.
 * The object's instructions leave those changesets (one left empty leaves
 * the outbox: client versions may have gaps), so that the object shows
 * the mirror again with only the later changes on top; those were made
 * after the refused ones and are the server's to judge.
 */

typedef struct version_list {
    uint64_t *versions;
    size_t count;
    size_t capacity;
} version_list;

/* The client versions, up to last_version, of the outbox changesets that
 * touch the object at key, in order. */
static int list_pending_versions(const store_call *call, const lmdb_object_key *key,
                                 uint64_t last_version, version_list *list)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, call->store->outbox_index, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    MDB_val key_value = lmdb_object_key_value(key), version_value;
    int result = 0;
    for (code = mdb_cursor_get(cursor, &key_value, &version_value, MDB_SET_KEY);
         code == 0 && result == 0;
         code = mdb_cursor_get(cursor, &key_value, &version_value, MDB_NEXT_DUP)) {
        uint64_t version;
        result = lmdb_number_key_decode(&call->lmdb, &version_value, &version);
        if (result != 0 || version > last_version)
            break;
        uint64_t *versions = make_room(list->versions, list->count, &list->capacity,
                                       sizeof *versions);
        if (versions == NULL)
            result = out_of_memory(call);
        else
            (list->versions = versions)[list->count++] = version;
    }
    return lmdb_cursor_finish(&call->lmdb, cursor, result, code, "mdb_cursor_get");
}

/* Copies into kept the instructions of queued that are not on the object
 * at key. */
static int keep_other_objects(const store_call *call, const changeset *queued,
                              const lmdb_object_key *key, changeset *kept)
{
    *kept = (changeset){ .origin = queued->origin, .client_version = queued->client_version,
                         .timestamp = queued->timestamp };
    for (size_t i = 0; i < queued->count; i++) {
        const changeset_instruction *instruction = &queued->instructions[i];
        lmdb_object_key instruction_key;
        int result = object_key(call, instruction->collection, instruction->id, &instruction_key);
        if (result != 0)
            return result;
        MDB_val stored = lmdb_object_key_value(&instruction_key);
        if (lmdb_object_key_equals(&stored, key))
            continue;
        char message[256];
        result = changeset_append(kept, instruction->operation, instruction->collection,
                                  instruction->id, instruction->path, instruction->value,
                                  message, sizeof message);
        if (result != 0)
            return lmdb_fail(&call->lmdb, result, "cannot keep an outbox instruction: %s",
                             message);
    }
    return 0;
}

/* The object at key leaves the outbox changeset of client version. */
static int drop_refused_instructions(const store_call *call, const lmdb_object_key *key,
                                     uint64_t version)
{
    lmdb_number_key version_key;
    MDB_val outbox_key = lmdb_number_key_value(&version_key, version), value;
    int code = mdb_get(call->lmdb.transaction, call->store->outbox, &outbox_key, &value);
    if (code != 0)
        return code == MDB_NOTFOUND
                   ? lmdb_fail(&call->lmdb, -EIO, "the outbox index names changeset %llu, "
                               "which the outbox lacks", (unsigned long long)version)
                   : lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    json_t *record;
    int result = lmdb_parse_json_record(&call->lmdb, &value, &record);
    if (result != 0)
        return result;
    changeset queued = { 0 }, kept = { 0 };
    result = parse_changeset(call, json_object_get(record, "changeset"), &queued);
    if (result == 0)
        result = keep_other_objects(call, &queued, key, &kept);
    /* a held delete's one instruction is the delete of this object */
    if (result == 0 && json_object_get(record, "held") != NULL)
        result = forget_held_delete(call, &queued);
    if (result == 0 && kept.count == 0) {
        result = delete_record(call, call->store->outbox, &outbox_key);
    } else if (result == 0) {
        json_t *json = changeset_to_json(&kept);
        if (json == NULL || json_object_set_new(record, "changeset", json) != 0)
            result = out_of_memory(call);
        else
            result = lmdb_put_json_record(&call->lmdb, call->store->outbox, &outbox_key, record,
                                          0);
    }
    MDB_val key_value = lmdb_object_key_value(key);
    if (result == 0)
        result = index_entry(call, &key_value, version, false);
    changeset_clear(&queued);
    changeset_clear(&kept);
    json_decref(record);
    return result;
}

static int increment_meta(const store_call *call, const char *name)
{
    uint64_t value;
    int result = get_meta(call, name, &value);
    return result == 0 ? put_meta(call, name, value + 1) : result;
}

/*
 * *rejected: the object's visible text before the revert, or NULL.
 * Returns 1, changing nothing, when no outbox changeset up to
 * client_version touches the object: the error was handled before (the
 * server sends it again when it cannot know the client received it).  A
 * first error always finds them: the outbox keeps a changeset until the
 * download that acknowledges it, which the server sends after the error.
 */
static int revert_refused_write(const store_call *call, const char *collection, const json_t *id,
                                uint64_t client_version, char **rejected,
                                visible_update *update)
{
    touched_object object = { .id = json_incref((json_t *)id), .collection = strdup(collection) };
    int result = object.collection != NULL ? object_key(call, collection, id, &object.key)
                                           : out_of_memory(call);
    version_list refused = { 0 };
    if (result == 0)
        result = list_pending_versions(call, &object.key, client_version, &refused);
    if (result == 0 && refused.count == 0) {
        touched_object_clear(&object);
        return 1;
    }
    const char *text = NULL;
    size_t size = 0;
    if (result == 0)
        result = store_find_object_text(call, &object.key, &text, &size);
    if (result == 0 && text != NULL && (*rejected = strndup(text, size)) == NULL)
        result = out_of_memory(call);
    for (size_t i = 0; i < refused.count && result == 0; i++)
        result = drop_refused_instructions(call, &object.key, refused.versions[i]);
    if (result == 0)
        result = begin_visible_update(call, update);
    if (result == 0)
        result = compute_object_visible(call, &object);
    if (result == 0)
        result = show_object(call, &object, update);
    if (result == 0)
        result = increment_meta(call, META_REJECTED_WRITES);
    free(refused.versions);
    touched_object_clear(&object);
    return result;
}

/* ------------------------------------------------------------------ */
/* The server's schemas                                                */

static int put_server_schema(const store_call *call, const char *collection, const json_t *schema)
{
    int result = lmdb_check_collection_name(&call->lmdb, collection);
    if (result != 0)
        return result;
    size_t size;
    char *text = ejson_format_pretty(schema, &size);
    if (text == NULL)
        return out_of_memory(call);
    MDB_val key = lmdb_text_value(collection), value = { .mv_size = size, .mv_data = text };
    int code = mdb_put(call->lmdb.transaction, call->store->schemas, &key, &value, 0);
    free(text);
    return code == 0 ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
}

static int set_server_schemas(const store_call *call, const json_t *collections,
                              bool development_mode)
{
    if (!json_is_object(collections))
        return lmdb_fail(&call->lmdb, -EINVAL, "the schemas are not a JSON object");
    int code = mdb_drop(call->lmdb.transaction, call->store->schemas, 0);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_drop");
    const char *collection;
    json_t *schema;
    json_object_foreach((json_t *)collections, collection, schema) {
        int result = put_server_schema(call, collection, schema);
        if (result != 0)
            return result;
    }
    int result = put_meta(call, META_SERVER_SCHEMAS, 1);
    return result == 0 ? put_meta(call, META_DEVELOPMENT_MODE, development_mode) : result;
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */

/* The changes a finished call listed go to the caller, or are freed when
 * it failed. */
static int hand_over_changes(int result, visible_update *update, store_download_change **changes,
                             size_t *change_count)
{
    if (result != 0) {
        store_free_download_changes(update->changes, update->count);
        return result;
    }
    *changes = update->changes;
    *change_count = update->count;
    return 0;
}

/* Begins a call on a synced store; store_call_finish must follow when it
 * succeeds. */
static int begin_sync_call(store_call *call, enum store_access access, enum store_scope scope)
{
    int result = require_synced(call);
    if (result != 0)
        return result;
    return store_call_begin(call, access, scope);
}

int store_get_sync_progress(store *store, store_sync_progress *progress)
{
    store_call call = store_call_new(store, "get sync progress", NULL);
    int result = begin_sync_call(&call, STORE_READ, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(&call, get_progress(&call, progress));
}

int store_set_file_identity(store *store, uint64_t identity)
{
    store_call call = store_call_new(store, "set file identity", NULL);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(&call, set_file_identity(&call, identity));
}

int store_set_query_result(store *store, uint64_t query_version, bool accepted,
                           const char *message)
{
    store_call call = store_call_new(store, "set query result", NULL);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(&call, set_query_result(&call, query_version, accepted, message));
}

int store_scan_outbox(store *store, uint64_t after_client_version, size_t max_changesets,
                      int64_t now_ms, int (*visit)(const changeset *changeset, void *context),
                      void *context)
{
    store_call call = store_call_new(store, "scan outbox", NULL);
    int result = begin_sync_call(&call, STORE_READ, STORE_WHOLE);
    if (result != 0)
        return result;
    outbox_scan scan = {
        .max_changesets = max_changesets,
        .now = now_ms,
        .visit = visit,
        .context = context,
    };
    return store_call_finish(&call, scan_outbox(&call, after_client_version, &scan));
}

int store_put_subscription(store *store, const char *collection, const char *name,
                           const char *query)
{
    store_call call = store_call_new(store, "put subscription", collection);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, put_subscription(&call, name, query));
}

int store_delete_subscription(store *store, const char *collection, const char *name)
{
    store_call call = store_call_new(store, "delete subscription", collection);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, delete_subscription(&call, name));
}

int store_rename_subscription(store *store, const char *collection, const char *old_name,
                              const char *new_name)
{
    store_call call = store_call_new(store, "rename subscription", collection);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, rename_subscription(&call, old_name, new_name));
}

int store_get_subscription(store *store, const char *collection, const char *name,
                           char **query)
{
    store_call call = store_call_new(store, "get subscription", collection);
    int result = begin_sync_call(&call, STORE_READ, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, get_subscription(&call, name, query));
}

int store_list_subscriptions(store *store, subscription_visit *visit, void *context)
{
    store_call call = store_call_new(store, "list subscriptions", NULL);
    int result = begin_sync_call(&call, STORE_READ, STORE_WHOLE);
    if (result != 0)
        return result;
    subscription_listing listing = { .visit = visit, .context = context };
    return store_call_finish(&call, walk_records(&call, store->subscriptions, NULL,
                                                 list_subscription, &listing));
}

int store_bump_subscriptions_version(store *store, uint64_t *version)
{
    store_call call = store_call_new(store, "bump subscriptions version", NULL);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(&call, bump_subscriptions_version(&call, version));
}

int store_apply_download(store *store, const protocol_download_body *download,
                         store_download_change **changes, size_t *change_count)
{
    *changes = NULL;
    *change_count = 0;
    store_call call = store_call_new(store, "apply download", NULL);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_WHOLE);
    if (result != 0)
        return result;
    visible_update update = { 0 };
    result = store_call_finish(&call, apply_download(&call, download, &update));
    return hand_over_changes(result, &update, changes, change_count);
}

void store_free_download_changes(store_download_change *changes, size_t change_count)
{
    for (size_t i = 0; i < change_count; i++) {
        free(changes[i].collection);
        free(changes[i].lost_text);
        json_decref(changes[i].id);
    }
    free(changes);
}

int store_discard_staged_downloads(store *store)
{
    store_call call = store_call_new(store, "discard staged downloads", NULL);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(&call, discard_staged(&call));
}

int store_begin_client_reset(store *store, store_download_change **changes, size_t *change_count)
{
    *changes = NULL;
    *change_count = 0;
    store_call call = store_call_new(store, "begin client reset", NULL);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_WHOLE);
    if (result != 0)
        return result;
    visible_update update = { 0 };
    result = store_call_finish(&call, begin_client_reset(&call, &update));
    return hand_over_changes(result, &update, changes, change_count);
}

int store_object_is_read_only(store *store, const char *collection, const json_t *id)
{
    store_call call = store_call_new(store, "check object access", collection);
    int result = begin_sync_call(&call, STORE_READ, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    return store_call_finish(&call, is_read_only(&call, id));
}

int store_revert_refused_write(store *store, const char *collection, const json_t *id,
                               uint64_t client_version, char **rejected_text,
                               store_download_change **changes, size_t *change_count)
{
    *rejected_text = NULL;
    *changes = NULL;
    *change_count = 0;
    store_call call = store_call_new(store, "revert refused write", collection);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_ONE_COLLECTION);
    if (result != 0)
        return result;
    visible_update update = { 0 };
    result = store_call_finish(&call, revert_refused_write(&call, collection, id, client_version,
                                                           rejected_text, &update));
    if (result != 0) {
        free(*rejected_text);
        *rejected_text = NULL;
    }
    return hand_over_changes(result, &update, changes, change_count);
}

int store_set_server_schemas(store *store, const json_t *collections, bool development_mode)
{
    store_call call = store_call_new(store, "set the server's schemas", NULL);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(&call, set_server_schemas(&call, collections, development_mode));
}

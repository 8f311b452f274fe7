/*
 * store_sync.c — the sync state of a synced store (store.h, "Sync state").
 *
 * Five more databases in the store's environment:
 *
 *   mirror            object key -> the server's document, one-line canonical text
 *   outbox            client version (8 bytes big-endian) -> outbox record
 *   held_deletes      object key -> client version (8 bytes) of its held delete
 *   subscriptions     collection, 0x00, name -> RQL text
 *   staged_downloads  sequence (8 bytes big-endian) -> staged record
 *
 * and numbers in meta under "sync.*".  An outbox record is a JSON object:
 *
 *   {"changeset": <changeset_to_json, origin 0>,
 *    "held": {"since": <ms>, "document": "<the deleted text>"}}   held only
 *
 * The origin is filled in when the changeset leaves (store_scan_outbox),
 * since a store queues changes before the server gave it an identity.  A
 * staged record is {"server_version": V, "changeset": <changeset_to_json>}.
 *
 * held_deletes finds, per object, a held delete that is still the newest
 * outbox changeset for the object: every queued changeset removes the
 * entries of the objects it touches, and a held delete then adds its own.
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

static int put_changeset_record(const store_call *call, MDB_dbi database, MDB_val *key,
                                const changeset *changes, const char *member, json_t *extra,
                                const char *extra_member)
{
    json_t *record = json_object();
    json_t *json = changeset_to_json(changes);
    int result = 0;
    if (record == NULL || json == NULL || json_object_set_new(record, member, json) != 0)
        result = out_of_memory(call);
    json = NULL;
    if (result == 0 && extra != NULL && json_object_set(record, extra_member, extra) != 0)
        result = out_of_memory(call);
    if (result == 0)
        result = lmdb_put_json_record(&call->lmdb, database, key, record, 0);
    json_decref(record);
    return result;
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

int store_sync_open(const store_call *call, bool requested)
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
    unsigned int flags = store->read_only ? 0 : MDB_CREATE;
    const struct {
        const char *name;
        MDB_dbi *database;
    } databases[] = {
        { "mirror", &store->mirror },
        { "outbox", &store->outbox },
        { "held_deletes", &store->held_deletes },
        { "subscriptions", &store->subscriptions },
        { "staged_downloads", &store->staged_downloads },
    };
    for (size_t i = 0; i < sizeof databases / sizeof databases[0] && result == 0; i++)
        result = lmdb_open_database(&call->lmdb, databases[i].name, flags, databases[i].database);
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
    return result != 0 ? result : delete_record(call, call->store->outbox, &outbox_key);
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
    result = put_changeset_record(call, call->store->outbox, &key, changes, "changeset",
                                  held_member, "held");
    json_decref(held_member);
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
    };
    int result = 0;
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0] && result == 0; i++)
        result = get_meta(call, numbers[i].name, numbers[i].value);
    uint64_t resetting;
    if (result == 0)
        result = get_meta(call, META_CLIENT_RESET, &resetting);
    if (result != 0)
        return result;
    progress->client_reset_pending = resetting != 0;
    MDB_stat outbox;
    int code = mdb_stat(call->lmdb.transaction, call->store->outbox, &outbox);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_stat");
    progress->outbox_changesets = outbox.ms_entries;
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

static int outbox_record(const store_call *call, MDB_cursor *cursor, const MDB_val *key,
                         const MDB_val *value, void *state)
{
    const outbox_walk *walk = state;
    uint64_t version;
    int result = lmdb_number_key_decode(&call->lmdb, key, &version);
    if (result != 0 || version > walk->last_version)
        return result != 0 ? result : WALK_STOP;
    json_t *record;
    result = lmdb_parse_json_record(&call->lmdb, value, &record);
    if (result != 0)
        return result;
    changeset queued = { 0 };
    result = parse_changeset(call, json_object_get(record, "changeset"), &queued);
    json_t *since = json_object_get(json_object_get(record, "held"), "since");
    int64_t held_since = json_is_integer(since) ? json_integer_value(since) : -1;
    json_decref(record);
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

/* An object a download or a dropped outbox changeset touched. */
typedef struct touched_object {
    lmdb_object_key key;
    char *collection;
    json_t *id;
    json_t *mirror;       /* the server's document; NULL when not in view */
    bool mirror_changed;
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

static void touched_set_clear(touched_set *set)
{
    for (size_t i = 0; i < set->count; i++) {
        free(set->objects[i].collection);
        json_decref(set->objects[i].id);
        json_decref(set->objects[i].mirror);
        json_decref(set->objects[i].visible);
        free(set->objects[i].lost_text);
    }
    free(set->objects);
    json_decref(set->positions);
}

/* The object's entry, or NULL when the set does not hold it. */
static touched_object *touched_find(const touched_set *set, const lmdb_object_key *key)
{
    json_t *position = json_object_getn(set->positions, (const char *)key->bytes, key->size);
    return position != NULL ? &set->objects[json_integer_value(position)] : NULL;
}

static int load_mirror(const store_call *call, touched_object *object)
{
    MDB_val key = lmdb_object_key_value(&object->key), value;
    int code = mdb_get(call->lmdb.transaction, call->store->mirror, &key, &value);
    if (code == MDB_NOTFOUND)
        return 0;
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    int result = parse_document(call, value.mv_data, value.mv_size, &object->mirror);
    return result == -EINVAL ? lmdb_fail(&call->lmdb, -EIO, "damaged mirror document") : result;
}

/* The entry of an object, added (with its mirror document) when new. */
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
    if (set->count == set->capacity) {
        size_t capacity = set->capacity ? set->capacity * 2 : 16;
        touched_object *grown = realloc(set->objects, capacity * sizeof *grown);
        if (grown == NULL)
            return out_of_memory(call);
        set->objects = grown;
        set->capacity = capacity;
    }
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
    return load_mirror(call, object);
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

/* The mirror follows the server's changeset. */
static int mirror_changeset(const store_call *call, touched_set *set, const changeset *changes)
{
    for (size_t i = 0; i < changes->count; i++) {
        touched_object *object;
        int result = touch(call, set, &changes->instructions[i], &object);
        if (result == 0)
            result = replay(call, &changes->instructions[i], &object->mirror);
        if (result != 0)
            return result;
        object->mirror_changed = true;
    }
    return 0;
}

static int discard_staged(const store_call *call)
{
    int code = mdb_drop(call->lmdb.transaction, call->store->staged_downloads, 0);
    return code == 0 ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_drop");
}

static int stage_download(const store_call *call, const protocol_download_body *download)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, call->store->staged_downloads, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    MDB_val key, value;
    code = mdb_cursor_get(cursor, &key, &value, MDB_LAST);
    uint64_t sequence = 0;
    int result = 0;
    if (code == 0)
        result = lmdb_number_key_decode(&call->lmdb, &key, &sequence);
    result = lmdb_cursor_finish(&call->lmdb, cursor, result, code, "mdb_cursor_get");
    for (size_t i = 0; i < download->changeset_count && result == 0; i++) {
        const protocol_download_changeset *staged = &download->changesets[i];
        json_t *server_version = json_integer((json_int_t)staged->server_version);
        if (server_version == NULL)
            return out_of_memory(call);
        lmdb_number_key sequence_key;
        MDB_val staged_key = lmdb_number_key_value(&sequence_key, ++sequence);
        result = put_changeset_record(call, call->store->staged_downloads, &staged_key,
                                      &staged->changeset, "changeset", server_version,
                                      "server_version");
        json_decref(server_version);
    }
    return result;
}

/* One staged changeset of the batch into the mirror. */
static int mirror_staged(const store_call *call, MDB_cursor *cursor, const MDB_val *key,
                         const MDB_val *value, void *state)
{
    (void)cursor;
    (void)key;
    json_t *record;
    int result = lmdb_parse_json_record(&call->lmdb, value, &record);
    changeset staged = { 0 };
    if (result == 0)
        result = parse_changeset(call, json_object_get(record, "changeset"), &staged);
    json_decref(record);
    if (result == 0)
        result = mirror_changeset(call, state, &staged);
    changeset_clear(&staged);
    return result;
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
    if (result != 0)
        return result;
    if (held_since >= 0) {
        int result = forget_held_delete(call, queued);
        if (result != 0)
            return result;
    }
    int code = mdb_cursor_del(cursor, 0);
    return code == 0 ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_del");
}

static int replay_pending(const store_call *call, MDB_cursor *cursor, changeset *queued,
                          int64_t held_since, void *state)
{
    (void)cursor;
    (void)held_since;
    touched_set *set = state;
    for (size_t i = 0; i < queued->count; i++) {
        lmdb_object_key key;
        const changeset_instruction *instruction = &queued->instructions[i];
        int result = object_key(call, instruction->collection, instruction->id, &key);
        touched_object *object = result == 0 ? touched_find(set, &key) : NULL;
        if (object != NULL) {
            object->pending = true;
            result = replay(call, instruction, &object->visible);
        }
        if (result != 0)
            return result;
    }
    return 0;
}

static int write_mirror(const store_call *call, touched_object *object)
{
    MDB_val key = lmdb_object_key_value(&object->key);
    if (object->mirror == NULL)
        return delete_record(call, call->store->mirror, &key);
    size_t size;
    char *text = ejson_format_line(object->mirror, &size);
    if (text == NULL)
        return out_of_memory(call);
    MDB_val value = { .mv_size = size, .mv_data = text };
    int code = mdb_put(call->lmdb.transaction, call->store->mirror, &key, &value, 0);
    free(text);
    return code == 0 ? 0 : lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
}

typedef struct change_list {
    store_download_change *changes;
    size_t count;
} change_list;

/* Makes the object's visible text what the mirror and the outbox say, and
 * lists it when that changed it. */
static int show_object(const store_call *call, const touched_object *object, uint64_t version,
                       int64_t modified_ns, change_list *list)
{
    /* An object out of view that still has local changes stays as the
     * user left it until they are acknowledged. */
    if (object->mirror == NULL && object->pending)
        return 0;
    const char *current;
    size_t current_size;
    int result = store_find_object_text(call, &object->key, &current, &current_size);
    if (result != 0)
        return result;
    size_t size = 0;
    char *text = object->visible != NULL ? ejson_format_pretty(object->visible, &size) : NULL;
    if (object->visible != NULL && text == NULL)
        return out_of_memory(call);
    bool unchanged = text == NULL ? current == NULL
                                  : current != NULL && current_size == size &&
                                        memcmp(current, text, size) == 0;
    store_call named = *call;
    named.lmdb.collection = object->collection;
    if (!unchanged && text != NULL) {
        result = store_ensure_collection(&named, object->collection);
        if (result == 0)
            result = store_write_object_record(&named, &object->key, version, text, size,
                                               modified_ns, NULL);
    } else if (!unchanged) {
        result = store_delete_object_record(&named, &object->key);
    }
    free(text);
    if (result != 0 || unchanged)
        return result;
    store_download_change *change = &list->changes[list->count];
    change->collection = strdup(object->collection);
    if (change->collection == NULL)
        return out_of_memory(call);
    change->id = json_incref(object->id);
    if (object->lost_text != NULL && (change->lost_text = strdup(object->lost_text)) == NULL)
        return out_of_memory(call);
    change->existed = current != NULL;
    change->exists = object->visible != NULL;
    list->count++;
    return 0;
}

/* visible := mirror + the pending instructions, for every object of the
 * set. */
static int compute_visible(const store_call *call, touched_set *set)
{
    for (size_t i = 0; i < set->count; i++) {
        touched_object *object = &set->objects[i];
        if (object->mirror != NULL) {
            object->visible = json_deep_copy(object->mirror);
            if (object->visible == NULL)
                return out_of_memory(call);
        }
    }
    return for_each_outbox_changeset(call, 1, UINT64_MAX, replay_pending, set);
}

/* Writes the changed mirror documents and the visible texts of the set. */
static int show_objects(const store_call *call, touched_set *set, change_list *list)
{
    list->changes = calloc(set->count ? set->count : 1, sizeof *list->changes);
    if (list->changes == NULL)
        return out_of_memory(call);
    uint64_t version;
    int64_t now;
    int result = store_take_next_version(call, &version);
    if (result == 0)
        result = store_current_time_ns(call, &now);
    for (size_t i = 0; i < set->count && result == 0; i++) {
        if (set->objects[i].mirror_changed)
            result = write_mirror(call, &set->objects[i]);
        if (result == 0)
            result = show_object(call, &set->objects[i], version, now, list);
    }
    return result;
}

static int show_touched_objects(const store_call *call, touched_set *set, change_list *list)
{
    int result = compute_visible(call, set);
    return result == 0 ? show_objects(call, set, list) : result;
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
/* Client reset                                                        */

/*
 * Between store_begin_client_reset and the bootstrap that completes it,
 * the outbox is "set aside": kept, and replayed on the new mirror as
 * usual, but not uploaded; the new file's server history knows none of
 * it.  The reset completes with the first bootstrap (a last_in_batch
 * download) of the subscription set as it stands: the outbox then turns
 * into new changesets against the fresh documents, or into losses.
 */
static int begin_client_reset(const store_call *call)
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
 * Completes a client reset, after the download's changesets went into
 * the mirror (download_set): every object visible, in the mirror or named
 * by the set-aside outbox is shown anew as the fresh mirror plus what
 * could be re-applied of the set-aside changes.
 */
static int complete_client_reset(const store_call *call, touched_set *download_set,
                                 change_list *list)
{
    int result = 0;
    for (size_t i = 0; i < download_set->count && result == 0; i++)
        if (download_set->objects[i].mirror_changed)
            result = write_mirror(call, &download_set->objects[i]);
    touched_set set = { .positions = json_object() };
    if (set.positions == NULL)
        result = out_of_memory(call);
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
        code = mdb_drop(call->lmdb.transaction, call->store->held_deletes, 0);
    if (code != 0)
        result = lmdb_fail_mdb(&call->lmdb, code, "mdb_drop");
    int64_t now;
    if (result == 0)
        result = now_ms(call, &now);
    for (size_t i = 0; i < set.count && result == 0; i++)
        if (set.objects[i].pending)
            result = recover_object(call, &set.objects[i], now);
    if (result == 0)
        result = show_objects(call, &set, list);
    if (result == 0)
        result = put_meta(call, META_CLIENT_RESET, 0);
    touched_set_clear(&set);
    return result;
}

static int apply_download(const store_call *call, const protocol_download_body *download,
                          change_list *list)
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
    if (!download->last_in_batch)
        return stage_download(call, download);
    touched_set set = { .positions = json_object() };
    if (set.positions == NULL)
        return out_of_memory(call);
    result = walk_records(call, call->store->staged_downloads, NULL, mirror_staged, &set);
    if (result == 0)
        result = discard_staged(call);
    for (size_t i = 0; i < download->changeset_count && result == 0; i++)
        result = mirror_changeset(call, &set, &download->changesets[i].changeset);
    if (result == 0)
        result = for_each_outbox_changeset(call, 1, download->last_integrated_client_version,
                                           drop_acknowledged, &set);
    bool completes_reset = false;
    if (result == 0)
        result = completes_client_reset(call, download, &completes_reset);
    if (result == 0)
        result = completes_reset ? complete_client_reset(call, &set, list)
                                 : show_touched_objects(call, &set, list);
    if (result == 0)
        result = record_download_progress(call, download);
    touched_set_clear(&set);
    return result;
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */

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
    change_list list = { 0 };
    result = store_call_finish(&call, apply_download(&call, download, &list));
    if (result != 0) {
        store_free_download_changes(list.changes, list.count);
        return result;
    }
    *changes = list.changes;
    *change_count = list.count;
    return 0;
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

int store_begin_client_reset(store *store)
{
    store_call call = store_call_new(store, "begin client reset", NULL);
    int result = begin_sync_call(&call, STORE_WRITE, STORE_WHOLE);
    if (result != 0)
        return result;
    return store_call_finish(&call, begin_client_reset(&call));
}

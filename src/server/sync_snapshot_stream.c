/*
 * sync_snapshot_stream.c — bootstraps and catch-ups, produced batch by
 * batch from a store snapshot (sync_snapshot_stream.h).
 */
#include "sync_snapshot_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/ejson.h"
#include "realmfs/protocol.h"
#include "realmfs/value.h"

/* Bytes a delete is counted as in a batch (it carries no document). */
#define SYNC_STREAM_DELETE_BYTES 64

/* One object a catch-up sends: what the history touched. */
typedef struct sync_stream_key {
    char *collection;
    json_t *id;
} sync_stream_key;

typedef enum sync_stream_kind {
    SYNC_STREAM_BOOTSTRAP,
    SYNC_STREAM_CATCH_UP,
} sync_stream_kind;

struct sync_snapshot_stream {
    sync_stream_kind kind;
    const app_config *app;
    sync_store_snapshot *snapshot;
    sync_view *old_view; /* bootstrap only; may be NULL */
    sync_view *new_view; /* the view the client ends with */
    sync_stream_header header;
    size_t batch_bytes;
    protocol_download_writer *writer; /* the batch's instructions, one batch at a time */
    int64_t timestamp;
    uint64_t objects_done;
    uint64_t objects_total;

    /* bootstrap: the collections of both views, in byte order, and where
     * the scan of the current one stands */
    char **collections;
    size_t collection_count;
    size_t collection_index;
    json_t *after_id;

    /* catch-up: the keys, in store order, and the next one to send */
    sync_stream_key *keys;
    size_t key_count;
    size_t key_index;
};

/* The batch being filled while a scan runs: its instructions go into the
 * stream's writer, and the download (with no changesets of its own) takes
 * the access entries of the objects the client may not write as they
 * come. */
typedef struct sync_stream_batch {
    sync_snapshot_stream *stream;
    const char *collection;
    protocol_message download;
    size_t bytes;
    size_t objects;
    int failure; /* negative errno when a visit failed */
    char *message;
    size_t message_size;
} sync_stream_batch;

void sync_snapshot_stream_free(sync_snapshot_stream *stream)
{
    if (stream == NULL)
        return;
    sync_store_snapshot_end(stream->snapshot);
    protocol_download_writer_free(stream->writer);
    sync_view_unref(stream->old_view);
    sync_view_unref(stream->new_view);
    for (size_t index = 0; index < stream->collection_count; index++)
        free(stream->collections[index]);
    free(stream->collections);
    json_decref(stream->after_id);
    for (size_t index = 0; index < stream->key_count; index++) {
        free(stream->keys[index].collection);
        json_decref(stream->keys[index].id);
    }
    free(stream->keys);
    free(stream);
}

static int sync_stream_report(int result, char *message, size_t message_size, const char *what)
{
    if (result == -ENOMEM)
        snprintf(message, message_size, "out of memory");
    else
        snprintf(message, message_size, "%s: %s", what, sync_store_last_error());
    return result;
}

static int sync_stream_start(sync_stream_kind kind, const app_config *app, sync_store *store,
                             sync_view *new_view, const sync_stream_header *header,
                             size_t batch_bytes, int64_t now_ms, sync_snapshot_stream **out,
                             char *message, size_t message_size)
{
    *out = NULL;
    sync_snapshot_stream *stream = calloc(1, sizeof *stream);
    if (stream == NULL)
        return sync_stream_report(-ENOMEM, message, message_size, "");
    stream->kind = kind;
    stream->app = app;
    stream->new_view = sync_view_ref(new_view);
    stream->header = *header;
    stream->batch_bytes = batch_bytes;
    stream->timestamp = now_ms;
    int result = protocol_download_writer_new(&stream->writer);
    if (result != 0) {
        sync_snapshot_stream_free(stream);
        return sync_stream_report(result, message, message_size, "");
    }
    result = sync_store_snapshot_begin(store, &stream->snapshot);
    if (result != 0) {
        sync_snapshot_stream_free(stream);
        return sync_stream_report(result, message, message_size, "opening a snapshot");
    }
    *out = stream;
    return 0;
}

/* ---- Bootstrap ---------------------------------------------------------- */

static bool sync_stream_has_collection(const sync_snapshot_stream *stream, const char *name)
{
    for (size_t index = 0; index < stream->collection_count; index++)
        if (strcmp(stream->collections[index], name) == 0)
            return true;
    return false;
}

static int sync_stream_compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int sync_stream_add_collections(sync_snapshot_stream *stream, const sync_view *view)
{
    size_t count = view ? sync_view_collection_count(view) : 0;
    for (size_t index = 0; index < count; index++) {
        const char *name = sync_view_collection_at(view, index);
        if (sync_stream_has_collection(stream, name))
            continue;
        char **grown = realloc(stream->collections,
                               (stream->collection_count + 1) * sizeof *stream->collections);
        if (grown == NULL)
            return -ENOMEM;
        stream->collections = grown;
        stream->collections[stream->collection_count] = strdup(name);
        if (stream->collections[stream->collection_count] == NULL)
            return -ENOMEM;
        stream->collection_count++;
    }
    return 0;
}

int sync_snapshot_stream_bootstrap(const app_config *app, sync_store *store, sync_view *old_view,
                                   sync_view *new_view, const sync_stream_header *header,
                                   size_t batch_bytes, int64_t now_ms, sync_snapshot_stream **out,
                                   char *message, size_t message_size)
{
    sync_snapshot_stream *stream;
    int result = sync_stream_start(SYNC_STREAM_BOOTSTRAP, app, store, new_view, header,
                                   batch_bytes, now_ms, &stream, message, message_size);
    if (result != 0)
        return result;
    stream->old_view = old_view ? sync_view_ref(old_view) : NULL;
    result = sync_stream_add_collections(stream, old_view);
    if (result == 0)
        result = sync_stream_add_collections(stream, new_view);
    if (result != 0) {
        sync_snapshot_stream_free(stream);
        return sync_stream_report(result, message, message_size, "");
    }
    qsort(stream->collections, stream->collection_count, sizeof *stream->collections,
          sync_stream_compare_names);
    for (size_t index = 0; index < stream->collection_count; index++) {
        uint64_t count = 0;
        result = sync_store_snapshot_count(stream->snapshot, stream->collections[index], &count);
        if (result != 0) {
            sync_snapshot_stream_free(stream);
            return sync_stream_report(result, message, message_size, "counting objects");
        }
        stream->objects_total += count;
    }
    *out = stream;
    return 0;
}

/* ---- Catch-up ----------------------------------------------------------- */

typedef struct sync_stream_key_list {
    const sync_view *view;
    uint64_t last_version; /* the snapshot's: later history is not in it */
    sync_stream_key *keys;
    size_t count;
    size_t capacity;
} sync_stream_key_list;

static int sync_stream_add_key(sync_stream_key_list *list, const changeset_instruction *instruction)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 64;
        sync_stream_key *grown = realloc(list->keys, capacity * sizeof *grown);
        if (grown == NULL)
            return -ENOMEM;
        list->keys = grown;
        list->capacity = capacity;
    }
    char *collection = strdup(instruction->collection);
    if (collection == NULL)
        return -ENOMEM;
    list->keys[list->count++] = (sync_stream_key){collection, json_incref(instruction->id)};
    return 0;
}

static int sync_stream_collect_keys(uint64_t server_version, const changeset *changeset,
                                    void *context)
{
    sync_stream_key_list *list = context;
    if (server_version > list->last_version)
        return 0;
    for (size_t index = 0; index < changeset->count; index++) {
        const changeset_instruction *instruction = &changeset->instructions[index];
        if (!sync_view_has_collection(list->view, instruction->collection))
            continue;
        int result = sync_stream_add_key(list, instruction);
        if (result != 0)
            return result;
    }
    return 0;
}

/* Ids in the store's order: ints, then ObjectIds, then strings. */
static int sync_stream_id_rank(const json_t *id)
{
    switch (value_type_of(id)) {
    case VALUE_INT:
        return 0;
    case VALUE_OBJECT_ID:
        return 1;
    default:
        return 2;
    }
}

static int sync_stream_compare_ids(const json_t *a, const json_t *b)
{
    int rank = sync_stream_id_rank(a) - sync_stream_id_rank(b);
    int order = 0;
    if (rank != 0)
        return rank;
    (void)value_compare(a, b, &order); /* same type: always ordered */
    return order;
}

static int sync_stream_compare_keys(const void *a, const void *b)
{
    const sync_stream_key *left = a;
    const sync_stream_key *right = b;
    int order = strcmp(left->collection, right->collection);
    return order != 0 ? order : sync_stream_compare_ids(left->id, right->id);
}

/* Sort, then keep the first of each run of equal keys. */
static void sync_stream_sort_unique(sync_snapshot_stream *stream)
{
    if (stream->key_count == 0)
        return;
    qsort(stream->keys, stream->key_count, sizeof *stream->keys, sync_stream_compare_keys);
    size_t kept = 0;
    for (size_t index = 0; index < stream->key_count; index++) {
        if (kept > 0 && sync_stream_compare_keys(&stream->keys[kept - 1], &stream->keys[index]) == 0) {
            free(stream->keys[index].collection);
            json_decref(stream->keys[index].id);
            continue;
        }
        stream->keys[kept++] = stream->keys[index];
    }
    stream->key_count = kept;
}

int sync_snapshot_stream_catch_up(const app_config *app, sync_store *store, sync_view *view,
                                  uint64_t after_version, const sync_stream_header *header,
                                  size_t batch_bytes, int64_t now_ms, sync_snapshot_stream **out,
                                  char *message, size_t message_size)
{
    sync_snapshot_stream *stream;
    int result = sync_stream_start(SYNC_STREAM_CATCH_UP, app, store, view, header, batch_bytes,
                                   now_ms, &stream, message, message_size);
    if (result != 0)
        return result;
    sync_stream_key_list list = {
        .view = view, .last_version = sync_store_snapshot_version(stream->snapshot)};
    result = sync_store_scan_history(store, after_version, sync_stream_collect_keys, &list);
    stream->keys = list.keys;
    stream->key_count = list.count;
    if (result != 0) {
        sync_snapshot_stream_free(stream);
        if (result == -ESTALE) {
            snprintf(message, message_size,
                     "the server no longer has the history after version %llu",
                     (unsigned long long)after_version);
            return result;
        }
        return sync_stream_report(result, message, message_size, "reading the history");
    }
    sync_stream_sort_unique(stream);
    stream->objects_total = stream->key_count;
    *out = stream;
    return 0;
}

/* ---- Batches ------------------------------------------------------------ */

/* A replacement (or, with object not visible, a delete) of one object,
 * with the access entry that says when the client may not write it. */
static int sync_stream_add_replacement(sync_stream_batch *batch, const json_t *id,
                                       const sync_view_object *object, const json_t *prepared)
{
    json_t *readable = NULL;
    int result = object->visible ? sync_view_readable_document(batch->stream->new_view, object,
                                                               prepared, &readable)
                                 : 0;
    if (result == 0)
        result = changeset_replace_visit(batch->collection, id, readable,
                                         protocol_download_writer_add, batch->stream->writer,
                                         batch->message, batch->message_size);
    json_decref(readable);
    if (result == 0)
        batch->objects++;
    if (result >= 0 && object->visible && !object->writable) {
        json_t *copy = json_deep_copy(id); /* a scan's id lives only during its visit */
        int added = copy != NULL ? protocol_download_add_access(&batch->download.body.download,
                                                                batch->collection, copy, false)
                                 : -ENOMEM;
        json_decref(copy);
        if (added != 0)
            result = added;
    }
    return result;
}

/* Add one object as the views show it: a replacement when the new view
 * shows it, a delete when it may be on the client (the old view showed
 * it, or a catch-up), else nothing.  document NULL: it does not exist;
 * else it is the caller's, read from the store, and is changed here
 * (sync_view_prepare_own_document). */
static int sync_stream_add_object(sync_stream_batch *batch, const json_t *id, json_t *document,
                                  size_t bytes)
{
    sync_snapshot_stream *stream = batch->stream;
    json_t *prepared = NULL;
    int result = document ? sync_view_prepare_own_document(stream->app, batch->collection,
                                                           document, &prepared)
                          : 0;
    if (result != 0)
        return result;
    sync_view_object object;
    sync_view_examine(stream->new_view, batch->collection, prepared, &object);
    bool may_be_on_client = stream->kind == SYNC_STREAM_CATCH_UP ||
                            (stream->old_view != NULL &&
                             sync_view_contains(stream->old_view, batch->collection, prepared));
    if (object.visible || may_be_on_client)
        result = sync_stream_add_replacement(batch, id, &object, prepared);
    json_decref(prepared);
    stream->objects_done++;
    batch->bytes += bytes;
    return result < 0 ? result : 0;
}

static int sync_stream_add_text(sync_stream_batch *batch, const sync_store_document_view *view)
{
    ejson_error error;
    json_t *document = ejson_parse(view->text, view->size, &error);
    if (document == NULL) {
        snprintf(batch->message, batch->message_size, "%s: a stored document does not parse: %s",
                 batch->collection, error.message);
        return -EIO;
    }
    int result = sync_stream_add_object(batch, view->id, document, view->size);
    json_decref(document);
    return result;
}

/* Stops the scan once the batch is full, remembering where it stood. */
static int sync_stream_visit_scanned(const sync_store_document_view *view, void *context)
{
    sync_stream_batch *batch = context;
    int result = sync_stream_add_text(batch, view);
    if (result != 0) {
        batch->failure = result;
        return 1;
    }
    if (batch->bytes < batch->stream->batch_bytes)
        return 0;
    json_decref(batch->stream->after_id);
    batch->stream->after_id = json_deep_copy(view->id);
    if (batch->stream->after_id == NULL)
        batch->failure = -ENOMEM;
    return 1;
}

static int sync_stream_fill_bootstrap(sync_stream_batch *batch)
{
    sync_snapshot_stream *stream = batch->stream;
    while (batch->bytes < stream->batch_bytes && stream->collection_index < stream->collection_count) {
        batch->collection = stream->collections[stream->collection_index];
        int result = sync_store_snapshot_scan(stream->snapshot, batch->collection, stream->after_id,
                                              sync_stream_visit_scanned, batch);
        if (batch->failure != 0)
            return batch->failure;
        if (result < 0)
            return sync_stream_report(result, batch->message, batch->message_size,
                                      "scanning a snapshot");
        if (result == 0) {
            stream->collection_index++;
            json_decref(stream->after_id);
            stream->after_id = NULL;
        }
    }
    return 0;
}

/* The size a document has in the store, its canonical one-line text, so
 * that catch-up batches fill up as bootstrap batches do. */
static int sync_stream_stored_size(const json_t *document, size_t *size)
{
    char *text = ejson_format_line(document, size);
    if (text == NULL)
        return -ENOMEM;
    free(text);
    return 0;
}

static int sync_stream_add_keyed_object(sync_stream_batch *batch, const sync_stream_key *key)
{
    json_t *document = NULL;
    int result = sync_store_snapshot_get_document(batch->stream->snapshot, key->collection,
                                                  key->id, &document);
    if (result == -ENOENT)
        return sync_stream_add_object(batch, key->id, NULL, SYNC_STREAM_DELETE_BYTES);
    if (result != 0)
        return sync_stream_report(result, batch->message, batch->message_size,
                                  "reading a snapshot");
    size_t size;
    result = sync_stream_stored_size(document, &size);
    if (result == 0)
        result = sync_stream_add_object(batch, key->id, document, size);
    json_decref(document);
    return result;
}

static int sync_stream_fill_catch_up(sync_stream_batch *batch)
{
    sync_snapshot_stream *stream = batch->stream;
    while (batch->bytes < stream->batch_bytes && stream->key_index < stream->key_count) {
        const sync_stream_key *key = &stream->keys[stream->key_index];
        batch->collection = key->collection;
        int result = sync_stream_add_keyed_object(batch, key);
        if (result != 0)
            return result;
        stream->key_index++;
    }
    return 0;
}

static bool sync_stream_finished(const sync_snapshot_stream *stream)
{
    return stream->kind == SYNC_STREAM_BOOTSTRAP ? stream->collection_index == stream->collection_count
                                                 : stream->key_index == stream->key_count;
}

static char *sync_stream_frame(sync_snapshot_stream *stream, sync_stream_batch *batch,
                               bool finished, size_t *length, char *message, size_t message_size)
{
    protocol_download_body *body = &batch->download.body.download;
    body->server_version = sync_store_snapshot_version(stream->snapshot);
    body->last_integrated_client_version = stream->header.last_integrated_client_version;
    body->query_version = stream->header.query_version;
    body->last_in_batch = finished;
    body->progress_estimate = finished || stream->objects_total == 0
                                  ? 1.0
                                  : (double)stream->objects_done / (double)stream->objects_total;
    if (body->progress_estimate > 1.0)
        body->progress_estimate = 1.0;
    protocol_error error;
    char *frame = protocol_download_writer_finish(stream->writer, &batch->download,
                                                  body->server_version, stream->timestamp,
                                                  length, &error);
    if (frame == NULL)
        snprintf(message, message_size, "a bootstrap frame cannot be sent: %s", error.message);
    return frame;
}

int sync_snapshot_stream_next(sync_snapshot_stream *stream, char **frame, size_t *length,
                              bool *finished, size_t *objects, char *message,
                              size_t message_size)
{
    *frame = NULL;
    sync_stream_batch batch = {.stream = stream, .message = message, .message_size = message_size};
    protocol_message_init(&batch.download, PROTOCOL_MESSAGE_DOWNLOAD, stream->header.session);
    int result = stream->kind == SYNC_STREAM_BOOTSTRAP ? sync_stream_fill_bootstrap(&batch)
                                                       : sync_stream_fill_catch_up(&batch);
    if (result == -ENOMEM)
        snprintf(message, message_size, "out of memory");
    if (result == 0) {
        *finished = sync_stream_finished(stream);
        *objects = batch.objects;
        *frame = sync_stream_frame(stream, &batch, *finished, length, message, message_size);
        if (*frame == NULL)
            result = -EINVAL;
    }
    protocol_message_clear(&batch.download);
    return result;
}

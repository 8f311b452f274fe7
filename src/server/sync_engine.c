/*
 * sync_engine.c — the protocol logic of realmfs-server (sync_engine.h):
 * connections, their sessions and outboxes, and what each message does.
 *
 * Every connection has an outbox, a FIFO shared by its sessions in the
 * order things happened.  An item is a ready frame or a snapshot stream
 * (a bootstrap or catch-up, sync_snapshot_stream.h) that produces its
 * frames when the transport asks for them and stays at the front until
 * its last one.  Because nothing overtakes anything, a mark is answered by
 * queuing the answer: everything before it has been sent once it goes out;
 * and changes integrated after a stream's snapshot, queued behind the
 * stream, reach the client after the state they apply to.
 *
 * Uploads are checked against the uploader's roles and the schemas
 * (sync_write_check.h): the refused objects get compensating writes,
 * queued first and stored with the integration, so that a bind sends them
 * again until the client's progress shows it received them; the rest
 * integrates before sync_engine_receive returns, then fans out: the
 * effect of every changed object on every bound session's view, as far
 * as that session may read it, is queued right away (sync_download.h),
 * the uploader's own session included, which always gets a download as
 * its acknowledgement.
 *
 * A connection's user context (sync_user.h) is read at connect, and again
 * whenever the custom user data may have changed (an upload touched its
 * collection, or another process wrote); a session whose user's context changed
 * gets a new view and a stream of the difference, as a new subscription
 * set does.
 *
 * Another process may write the store too (realmfs-server import).  The
 * engine notices when the store is past the version it has fanned out
 * (every tick, and around each upload) and queues a catch-up for every
 * bound session over what it did not see.
 */
#include "sync_engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "realmfs/protocol.h"
#include "sync_download.h"
#include "sync_snapshot_stream.h"
#include "sync_user.h"
#include "sync_view.h"
#include "sync_write_check.h"

#define SYNC_ENGINE_DEFAULT_BATCH_BYTES ((size_t)1 << 20)

/*
 * Ready frames a connection may have queued by default.  A client that
 * reads slower than changes arrive would otherwise make the server hold
 * every change for it; past this it is disconnected with going_away and
 * catches up from the history when it binds again, which costs the server
 * nothing while it is away.
 */
#define SYNC_ENGINE_DEFAULT_MAX_QUEUED_BYTES ((size_t)64 << 20)

typedef struct sync_session {
    struct sync_session *next;
    uint64_t id;
    bool failed; /* a session-level error was sent: only unbind counts now */
    uint64_t file_identity;
    uint64_t query_version;
    uint64_t last_integrated_client_version;
    sync_view *view; /* NULL until the bind succeeded */
} sync_session;

typedef struct sync_outbox_item {
    struct sync_outbox_item *next;
    uint64_t session;               /* 0 for the connection's own frames */
    char *frame;                    /* a ready frame, or */
    size_t length;
    sync_snapshot_stream *stream;   /* frames still to be made */
    bool bootstrap;                 /* the stream answers a query */
    double started_seconds;         /* monotonic clock, for bootstraps */
} sync_outbox_item;

struct sync_connection {
    sync_engine *engine;
    sync_connection *previous;
    sync_connection *next;
    auth_user user;
    sync_user *user_context; /* as the rules see the user; NULL only when it
                                could not be read (the connection then fails) */
    void *transport_context;
    int64_t last_receive_ms;
    sync_session *sessions;
    sync_outbox_item *outbox_head;
    sync_outbox_item *outbox_tail;
    size_t queued_bytes;             /* of ready frames */
    protocol_error_code error_code;  /* the connection-level error that ends it; 0 */
};

struct sync_engine {
    app_config *app;
    const rules *rules;
    sync_schema *schema;
    sync_store *store;
    sync_engine_options options;
    sync_engine_callbacks callbacks;
    sync_connection *connections;
    bool shutting_down;
    uint64_t server_version; /* every bound session has been given (queued)
                                what concerns it up to this version */
    bool users_stale;        /* the custom user data may have changed since
                                the connections' user contexts were read */
    sync_engine_metrics metrics;
};

static double sync_engine_monotonic_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/*
 * A message text as the protocol sends it: a copy (cut to out_size) of
 * text without the incomplete UTF-8 sequence that snprintf leaves at the
 * end when it truncates a message quoting a client's string; such a text
 * would not serialize.  Returns out.
 */
static const char *sync_message_text(const char *text, char *out, size_t out_size)
{
    snprintf(out, out_size, "%s", text);
    size_t length = strlen(out);
    size_t lead = length;
    while (lead > 0 && length - lead < 4 && ((unsigned char)out[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead == 0)
        return out;
    unsigned char first = (unsigned char)out[lead - 1];
    size_t expected = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC0 ? 2 : 1;
    if (length - (lead - 1) < expected)
        out[lead - 1] = '\0';
    return out;
}

/* ---- Outbox ------------------------------------------------------------- */

static void sync_outbox_item_free(sync_outbox_item *item)
{
    free(item->frame);
    sync_snapshot_stream_free(item->stream);
    free(item);
}

static void sync_outbox_append(sync_connection *connection, sync_outbox_item *item)
{
    if (connection->outbox_tail != NULL)
        connection->outbox_tail->next = item;
    else
        connection->outbox_head = item;
    connection->outbox_tail = item;
    if (item->frame != NULL)
        connection->queued_bytes += item->length;
    if (connection->engine->callbacks.wants_to_write != NULL)
        connection->engine->callbacks.wants_to_write(connection->transport_context);
}

/* Drop the items of one session (session 0: every item). */
static void sync_outbox_drop(sync_connection *connection, uint64_t session)
{
    sync_outbox_item **link = &connection->outbox_head;
    connection->outbox_tail = NULL;
    while (*link != NULL) {
        sync_outbox_item *item = *link;
        if (session == 0 || item->session == session) {
            *link = item->next;
            if (item->frame != NULL)
                connection->queued_bytes -= item->length;
            sync_outbox_item_free(item);
        } else {
            connection->outbox_tail = item;
            link = &item->next;
        }
    }
}

static int sync_close_code_of(protocol_error_code code)
{
    switch (code) {
    case PROTOCOL_ERROR_MESSAGE_TOO_LARGE:
        return 1009;
    case PROTOCOL_ERROR_AUTHENTICATION_FAILED:
        return 1008;
    case PROTOCOL_ERROR_GOING_AWAY:
    case PROTOCOL_ERROR_IDLE_TIMEOUT:
        return 1001;
    case PROTOCOL_ERROR_INTERNAL:
        return 1011;
    default:
        return 1002;
    }
}

/*
 * End the connection with a connection-level error: what was queued is
 * dropped (the client will bind again and catch up), the error is the
 * only frame left to send.  Returns code.  The first error wins.
 */
static int sync_connection_fail(sync_connection *connection, protocol_error_code code,
                                const char *text)
{
    if (connection->error_code != 0)
        return connection->error_code;
    connection->error_code = code;
    if (code <= PROTOCOL_ERROR_UNSUPPORTED_PROTOCOL_VERSION)
        connection->engine->metrics.protocol_errors++;
    sync_outbox_drop(connection, 0);
    protocol_message message;
    char sendable[512];
    sync_outbox_item *item = calloc(1, sizeof *item);
    if (item == NULL ||
        protocol_error_init(&message, 0, code,
                            sync_message_text(text, sendable, sizeof sendable)) != 0) {
        free(item);
        return code; /* closed without its message: nothing else to do */
    }
    protocol_error error;
    item->frame = protocol_serialize(&message, &item->length, &error);
    protocol_message_clear(&message);
    if (item->frame == NULL) {
        free(item);
        return code;
    }
    sync_outbox_append(connection, item);
    return code;
}

static int sync_connection_fail_internal(sync_connection *connection, const char *what, int result)
{
    char text[320];
    snprintf(text, sizeof text, "%s: %s", what,
             result == -ENOMEM ? "out of memory" : sync_store_last_error());
    return sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
}

/* A new item for the outbox, or NULL when nothing more is to be sent:
 * once a connection-level error is queued, or when memory ran out (which
 * ends the connection). */
static sync_outbox_item *sync_outbox_new_item(sync_connection *connection, uint64_t session)
{
    if (connection->error_code != 0)
        return NULL;
    sync_outbox_item *item = calloc(1, sizeof *item);
    if (item == NULL) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
        return NULL;
    }
    item->session = session;
    return item;
}

static void sync_outbox_push_frame(sync_connection *connection, uint64_t session, char *frame,
                                   size_t length)
{
    sync_outbox_item *item = sync_outbox_new_item(connection, session);
    if (item == NULL) {
        free(frame);
        return;
    }
    item->frame = frame;
    item->length = length;
    sync_outbox_append(connection, item);
    if (connection->queued_bytes > connection->engine->options.max_queued_bytes)
        sync_connection_fail(connection, PROTOCOL_ERROR_GOING_AWAY,
                             "the client fell too far behind with its downloads; "
                             "reconnect to catch up");
}

static void sync_outbox_push_stream(sync_connection *connection, uint64_t session,
                                    sync_snapshot_stream *stream, bool bootstrap)
{
    sync_outbox_item *item = sync_outbox_new_item(connection, session);
    if (item == NULL) {
        sync_snapshot_stream_free(stream);
        return;
    }
    item->stream = stream;
    item->bootstrap = bootstrap;
    item->started_seconds = sync_engine_monotonic_seconds();
    sync_outbox_append(connection, item);
}

/* Queue what protocol_serialize made of a message (frame NULL: it failed
 * with error), and clear the message.  A message that cannot be written is
 * the server's bug: internal error. */
static void sync_outbox_push_serialized(sync_connection *connection, protocol_message *message,
                                        char *frame, size_t length, const protocol_error *error)
{
    uint64_t session = message->session;
    const char *type = protocol_message_type_name(message->type);
    if (frame == NULL) {
        char text[320];
        snprintf(text, sizeof text, "a %s message cannot be written: %s", type, error->message);
        protocol_message_clear(message);
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
        return;
    }
    protocol_message_clear(message);
    sync_outbox_push_frame(connection, session, frame, length);
}

static void sync_outbox_push_message(sync_connection *connection, protocol_message *message)
{
    size_t length;
    protocol_error error;
    char *frame = protocol_serialize(message, &length, &error);
    sync_outbox_push_serialized(connection, message, frame, length, &error);
}

/*
 * Queue a download, split in two (recursively) when its frame would be
 * over the size limit; only a single changeset too large for a frame
 * cannot be sent.  The message is cleared.
 */
static void sync_outbox_push_download(sync_connection *connection, protocol_message *message)
{
    size_t length;
    protocol_error error;
    char *frame = protocol_serialize_download(message, &length, &error);
    protocol_download_body *body = &message->body.download;
    if (frame != NULL || error.code != PROTOCOL_ERROR_MESSAGE_TOO_LARGE ||
        body->changeset_count < 2) {
        sync_outbox_push_serialized(connection, message, frame, length, &error);
        return;
    }
    /* The access entries apply after every changeset: they go with the
     * second part. */
    protocol_message second;
    protocol_message_init(&second, PROTOCOL_MESSAGE_DOWNLOAD, message->session);
    second.body.download = *body;
    second.body.download.changesets = NULL;
    second.body.download.changeset_count = 0;
    second.body.download.changeset_capacity = 0;
    body->access = NULL;
    body->access_count = 0;
    body->access_capacity = 0;
    size_t keep = body->changeset_count / 2;
    for (size_t index = keep; index < body->changeset_count; index++) {
        protocol_download_changeset *moved = &body->changesets[index];
        if (protocol_download_add(&second.body.download, moved->server_version,
                                  &moved->changeset) != 0) {
            protocol_message_clear(&second);
            protocol_message_clear(message);
            sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
            return;
        }
    }
    body->changeset_count = keep;
    body->server_version = body->changesets[keep - 1].server_version;
    sync_outbox_push_download(connection, message);
    sync_outbox_push_download(connection, &second);
}

/* ---- Sessions ----------------------------------------------------------- */

static sync_session *sync_session_find(const sync_connection *connection, uint64_t id)
{
    for (sync_session *session = connection->sessions; session != NULL; session = session->next)
        if (session->id == id)
            return session;
    return NULL;
}

static void sync_session_remove(sync_connection *connection, sync_session *session)
{
    sync_session **link = &connection->sessions;
    while (*link != session)
        link = &(*link)->next;
    *link = session->next;
    sync_outbox_drop(connection, session->id);
    sync_view_unref(session->view);
    free(session);
    connection->engine->metrics.sessions--;
}

/* A session-level error: the session ends, and ignores everything but
 * unbind from now on. */
static void sync_session_fail(sync_connection *connection, sync_session *session,
                              protocol_error_code code, const char *text)
{
    session->failed = true;
    sync_outbox_drop(connection, session->id);
    protocol_message message;
    char sendable[512];
    if (protocol_error_init(&message, session->id, code,
                            sync_message_text(text, sendable, sizeof sendable)) != 0) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
        return;
    }
    sync_outbox_push_message(connection, &message);
}

static void sync_session_query_error(sync_connection *connection, sync_session *session,
                                     uint64_t query_version, const char *text)
{
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_QUERY_ERROR, session->id);
    message.body.query_error.query_version = query_version;
    message.body.query_error.code = PROTOCOL_ERROR_BAD_QUERY;
    char sendable[512];
    message.body.query_error.message = strdup(sync_message_text(text, sendable, sizeof sendable));
    if (message.body.query_error.message == NULL) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
        return;
    }
    sync_outbox_push_message(connection, &message);
}

static void sync_session_init_download(const sync_session *session, uint64_t server_version,
                                       protocol_message *message)
{
    protocol_message_init(message, PROTOCOL_MESSAGE_DOWNLOAD, session->id);
    message->body.download.server_version = server_version;
    message->body.download.last_integrated_client_version =
        session->last_integrated_client_version;
    message->body.download.query_version = session->query_version;
    message->body.download.last_in_batch = true;
    message->body.download.progress_estimate = 1.0;
}

static sync_stream_header sync_session_stream_header(const sync_session *session)
{
    return (sync_stream_header){
        .session = session->id,
        .query_version = session->query_version,
        .last_integrated_client_version = session->last_integrated_client_version,
    };
}

/* The schemas the client validates with (docs/protocol.md, "schema"). */
static void sync_session_send_schema(sync_engine *engine, sync_connection *connection,
                                     const sync_session *session)
{
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_SCHEMA, session->id);
    message.body.schema.development_mode = sync_schema_development_mode(engine->schema);
    message.body.schema.collections = sync_schema_collections_json(engine->schema);
    if (message.body.schema.collections == NULL) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
        return;
    }
    sync_outbox_push_message(connection, &message);
}

/* One error per refused object (docs/protocol.md, "error"), queued
 * before the download that acknowledges the upload, or, sent again at a
 * bind, before the catch-up. */
static void sync_session_send_compensating_writes(sync_connection *connection,
                                                  const sync_session *session,
                                                  const sync_store_notice *notices, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        const sync_store_notice *notice = &notices[index];
        protocol_message message;
        protocol_compensating_write *write = calloc(1, sizeof *write);
        if (write == NULL ||
            protocol_error_init(&message, session->id, PROTOCOL_ERROR_COMPENSATING_WRITE,
                                notice->reason) != 0) {
            free(write);
            sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
            return;
        }
        message.body.error.compensating_write = write;
        *write = (protocol_compensating_write){
            .collection = strdup(notice->collection),
            .id = json_incref(notice->id),
            .reason = strdup(notice->reason),
            .server_document = json_incref(notice->server_document),
            .client_version = notice->client_version,
        };
        if (write->collection == NULL || write->reason == NULL) {
            protocol_message_clear(&message);
            sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
            return;
        }
        sync_outbox_push_message(connection, &message);
    }
}

/*
 * A file's query is stored as its subscriptions plus, under this name,
 * what the permissions of its view depended on (sync_view_access_json),
 * so that a bind can tell whether they changed since the file was last
 * served.  No collection has this name (sync_view_new refuses names
 * starting with $); files stored before roles existed lack it.
 */
#define SYNC_ENGINE_ACCESS_MEMBER "$access"

/* Record the session's query with its view's permissions. */
static int sync_session_record_query(sync_engine *engine, const sync_session *session)
{
    json_t *stored = json_copy((json_t *)sync_view_subscriptions(session->view));
    if (stored == NULL ||
        json_object_set_new(stored, SYNC_ENGINE_ACCESS_MEMBER,
                            sync_view_access_json(session->view)) != 0) {
        json_decref(stored);
        return -ENOMEM;
    }
    int result = sync_store_set_file_query(engine->store, session->file_identity,
                                           session->query_version, stored);
    json_decref(stored);
    return result;
}

/* ---- Engine ------------------------------------------------------------- */

int sync_engine_new(app_config *app, const rules *rules, sync_schema *schema, sync_store *store,
                    const sync_engine_options *options, const sync_engine_callbacks *callbacks,
                    sync_engine **out, char *message, size_t message_size)
{
    *out = NULL;
    if (app == NULL || rules == NULL || schema == NULL || store == NULL) {
        snprintf(message, message_size, "an engine needs an app, its rules and schemas, and a "
                                        "store");
        return -EINVAL;
    }
    sync_engine *engine = calloc(1, sizeof *engine);
    if (engine == NULL) {
        snprintf(message, message_size, "out of memory");
        return -ENOMEM;
    }
    engine->app = app;
    engine->rules = rules;
    engine->schema = schema;
    engine->store = store;
    if (options != NULL)
        engine->options = *options;
    if (engine->options.bootstrap_batch_bytes == 0)
        engine->options.bootstrap_batch_bytes = SYNC_ENGINE_DEFAULT_BATCH_BYTES;
    if (engine->options.max_queued_bytes == 0)
        engine->options.max_queued_bytes = SYNC_ENGINE_DEFAULT_MAX_QUEUED_BYTES;
    if (engine->options.idle_timeout_ms == 0)
        engine->options.idle_timeout_ms = (int64_t)PROTOCOL_IDLE_TIMEOUT_SECONDS * 1000;
    if (callbacks != NULL)
        engine->callbacks = *callbacks;
    sync_store_statistics statistics;
    int result = sync_store_get_statistics(store, &statistics);
    if (result != 0) {
        snprintf(message, message_size, "reading the store's statistics: %s",
                 sync_store_last_error());
        free(engine);
        return result;
    }
    engine->server_version = statistics.server_version;
    snprintf(message, message_size, "%s", "");
    *out = engine;
    return 0;
}

void sync_engine_free(sync_engine *engine)
{
    free(engine);
}

sync_connection *sync_engine_connect(sync_engine *engine, const auth_user *user,
                                     void *transport_context, int64_t now_ms)
{
    sync_connection *connection = calloc(1, sizeof *connection);
    if (connection == NULL)
        return NULL;
    connection->user = *user;
    connection->user.email = user->email ? strdup(user->email) : NULL;
    if (user->email != NULL && connection->user.email == NULL) {
        free(connection);
        return NULL;
    }
    connection->engine = engine;
    connection->transport_context = transport_context;
    connection->last_receive_ms = now_ms;
    connection->next = engine->connections;
    if (engine->connections != NULL)
        engine->connections->previous = connection;
    engine->connections = connection;
    engine->metrics.connections++;
    char text[400];
    int result = sync_user_new(engine->app, engine->store, user, &connection->user_context, text,
                               sizeof text);
    if (engine->shutting_down)
        sync_connection_fail(connection, PROTOCOL_ERROR_GOING_AWAY, "the server is shutting down");
    else if (result != 0)
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
    return connection;
}

void sync_engine_disconnect(sync_engine *engine, sync_connection *connection)
{
    while (connection->sessions != NULL)
        sync_session_remove(connection, connection->sessions);
    sync_outbox_drop(connection, 0);
    if (connection->previous != NULL)
        connection->previous->next = connection->next;
    else
        engine->connections = connection->next;
    if (connection->next != NULL)
        connection->next->previous = connection->previous;
    auth_user_clear(&connection->user);
    sync_user_unref(connection->user_context);
    free(connection);
    engine->metrics.connections--;
}

int sync_engine_close_code(const sync_connection *connection)
{
    return connection->error_code != 0 ? sync_close_code_of(connection->error_code) : 0;
}

char *sync_engine_next_frame(sync_engine *engine, sync_connection *connection, size_t *length)
{
    while (connection->outbox_head != NULL) {
        sync_outbox_item *item = connection->outbox_head;
        char *frame;
        if (item->frame != NULL) {
            frame = item->frame;
            *length = item->length;
            item->frame = NULL;
            connection->queued_bytes -= *length;
            connection->outbox_head = item->next;
            if (connection->outbox_head == NULL)
                connection->outbox_tail = NULL;
            sync_outbox_item_free(item);
            return frame;
        }
        bool finished = false;
        size_t objects = 0;
        char message[300];
        int result = sync_snapshot_stream_next(item->stream, &frame, length, &finished, &objects,
                                               message, sizeof message);
        if (result != 0) {
            sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, message);
            continue;
        }
        engine->metrics.objects_out += objects;
        if (finished) {
            if (item->bootstrap) {
                engine->metrics.bootstraps++;
                engine->metrics.bootstrap_seconds +=
                    sync_engine_monotonic_seconds() - item->started_seconds;
            }
            connection->outbox_head = item->next;
            if (connection->outbox_head == NULL)
                connection->outbox_tail = NULL;
            sync_outbox_item_free(item);
        }
        return frame;
    }
    return NULL;
}

/* ---- bind --------------------------------------------------------------- */

static sync_session *sync_session_add(sync_connection *connection, uint64_t id)
{
    sync_session *session = calloc(1, sizeof *session);
    if (session == NULL)
        return NULL;
    session->id = id;
    session->next = connection->sessions;
    connection->sessions = session;
    connection->engine->metrics.sessions++;
    return session;
}

static const sync_session *sync_session_with_file(const sync_connection *connection,
                                                  uint64_t file_identity)
{
    for (const sync_session *session = connection->sessions; session != NULL;
         session = session->next)
        if (!session->failed && session->file_identity == file_identity)
            return session;
    return NULL;
}

static void sync_bind_new_file(sync_engine *engine, sync_connection *connection,
                               sync_session *session, int64_t now_ms)
{
    json_t *none = json_object();
    char text[300];
    int result = none ? sync_view_new(engine->app, engine->rules, connection->user_context, none,
                                      &session->view, text, sizeof text)
                      : -ENOMEM;
    json_decref(none);
    if (result == 0)
        result = sync_store_create_file(engine->store, connection->user.id, now_ms,
                                        &session->file_identity);
    if (result != 0) {
        sync_connection_fail_internal(connection, "allocating a file identity", result);
        return;
    }
    protocol_message ident;
    protocol_message_init(&ident, PROTOCOL_MESSAGE_IDENT, session->id);
    ident.body.ident.file_identity = session->file_identity;
    sync_outbox_push_message(connection, &ident);
    sync_session_send_schema(engine, connection, session);
}

/* Whether the client's progress fits what the server has; else why not. */
static bool sync_bind_progress_fits(const sync_engine *engine, const protocol_bind_body *bind,
                                    const sync_store_file *file, char *text, size_t text_size)
{
    if (bind->last_server_version > engine->server_version) {
        snprintf(text, text_size,
                 "the client has downloaded server version %llu, but the server is at %llu",
                 (unsigned long long)bind->last_server_version,
                 (unsigned long long)engine->server_version);
        return false;
    }
    if (bind->last_integrated_client_version > file->last_integrated_client_version) {
        snprintf(text, text_size,
                 "the client had client version %llu acknowledged, but the server has "
                 "integrated only up to %llu",
                 (unsigned long long)bind->last_integrated_client_version,
                 (unsigned long long)file->last_integrated_client_version);
        return false;
    }
    return true;
}

/* Queue a catch-up of the session from after_version to the latest. */
static void sync_session_catch_up(sync_engine *engine, sync_connection *connection,
                                  sync_session *session, uint64_t after_version, int64_t now_ms)
{
    sync_stream_header header = sync_session_stream_header(session);
    sync_snapshot_stream *stream;
    char text[300];
    int result = sync_snapshot_stream_catch_up(engine->app, engine->store, session->view,
                                               after_version, &header,
                                               engine->options.bootstrap_batch_bytes, now_ms,
                                               &stream, text, sizeof text);
    if (result == -ESTALE)
        sync_session_fail(connection, session, PROTOCOL_ERROR_CLIENT_RESET_REQUIRED, text);
    else if (result != 0)
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
    else
        sync_outbox_push_stream(connection, session->id, stream, false);
}

/*
 * The changesets after the engine's server version, up to version, did not
 * go through this engine: another process wrote them (realmfs-server
 * import).  Every bound session catches up over them, as a client that
 * binds again would.
 */
static void sync_engine_catch_up_sessions(sync_engine *engine, uint64_t version, int64_t now_ms)
{
    if (version <= engine->server_version)
        return;
    uint64_t after_version = engine->server_version;
    engine->server_version = version;
    if (app_config_custom_user_data(engine->app) != NULL)
        engine->users_stale = true; /* it may be what was written */
    for (sync_connection *connection = engine->connections; connection != NULL;
         connection = connection->next) {
        for (sync_session *session = connection->sessions;
             session != NULL && connection->error_code == 0; session = session->next) {
            if (!session->failed && session->view != NULL)
                sync_session_catch_up(engine, connection, session, after_version, now_ms);
        }
    }
}

/* Catch every session up over what other processes wrote; -errno when the
 * store cannot say. */
static int sync_engine_catch_up_foreign_writes(sync_engine *engine, int64_t now_ms)
{
    sync_store_statistics statistics;
    int result = sync_store_get_statistics(engine->store, &statistics);
    if (result == 0)
        sync_engine_catch_up_sessions(engine, statistics.server_version, now_ms);
    return result;
}

/*
 * Send the session what its permissions changed since its file was last
 * served (stored_access, NULL when the file was stored before roles
 * existed): the client may hold objects, or fields, it may no longer
 * read, and lack others.  What it was served then is not known exactly,
 * so the old side of the difference is the view without permissions,
 * everything the subscriptions match: a delete for each object the
 * session may not read now, a replacement for each it may.
 */
static int sync_bind_resend_if_permissions_changed(sync_engine *engine,
                                                   sync_connection *connection,
                                                   sync_session *session,
                                                   const json_t *stored_access, int64_t now_ms,
                                                   char *text, size_t text_size)
{
    json_t *access = sync_view_access_json(session->view);
    if (access == NULL)
        return -ENOMEM;
    bool changed = stored_access == NULL || !json_equal(access, (json_t *)stored_access);
    json_decref(access);
    if (!changed)
        return 0;
    if (sync_view_collection_count(session->view) == 0)
        return sync_session_record_query(engine, session);
    sync_view *unrestricted = NULL;
    int result = sync_view_new(engine->app, NULL, NULL, sync_view_subscriptions(session->view),
                               &unrestricted, text, text_size);
    sync_stream_header header = sync_session_stream_header(session);
    sync_snapshot_stream *stream = NULL;
    if (result == 0)
        result = sync_snapshot_stream_bootstrap(engine->app, engine->store, unrestricted,
                                                session->view, &header,
                                                engine->options.bootstrap_batch_bytes, now_ms,
                                                &stream, text, text_size);
    sync_view_unref(unrestricted);
    if (result == 0) {
        sync_outbox_push_stream(connection, session->id, stream, false);
        result = sync_session_record_query(engine, session);
        if (result != 0)
            snprintf(text, text_size, "recording the subscriptions: %s",
                     result == -ENOMEM ? "out of memory" : sync_store_last_error());
    }
    return result;
}

/*
 * The compensating writes the client may have missed: the connection that
 * carried one may have dropped before it arrived, while the upload was
 * integrated all the same.  They precede the catch-up, which holds the
 * acknowledgement that would otherwise drop the refused changes silently
 * (docs/protocol.md, "error").
 */
static void sync_bind_resend_notices(sync_engine *engine, sync_connection *connection,
                                     const sync_session *session, uint64_t last_server_version)
{
    sync_store_notice *notices;
    size_t count;
    int result = sync_store_take_unseen_notices(engine->store, session->file_identity,
                                                last_server_version, &notices, &count);
    if (result != 0) {
        sync_connection_fail_internal(connection, "reading the compensating writes", result);
        return;
    }
    sync_session_send_compensating_writes(connection, session, notices, count);
    sync_store_notices_free(notices, count);
}

/* The subscriptions of a stored query (a new reference), and its
 * permissions (borrowed from stored, NULL when absent). */
static json_t *sync_bind_stored_subscriptions(const json_t *stored, const json_t **access)
{
    *access = json_object_get(stored, SYNC_ENGINE_ACCESS_MEMBER);
    json_t *subscriptions = json_copy((json_t *)stored);
    if (subscriptions != NULL)
        json_object_del(subscriptions, SYNC_ENGINE_ACCESS_MEMBER);
    return subscriptions;
}

/* The bind of a file the server knows and the client may continue:
 * its view, schemas, catch-up, and what changed in its permissions. */
static void sync_bind_resume(sync_engine *engine, sync_connection *connection,
                             sync_session *session, const protocol_bind_body *bind,
                             const sync_store_file *file, int64_t now_ms)
{
    char text[300];
    const json_t *stored_access;
    json_t *subscriptions = sync_bind_stored_subscriptions(file->subscriptions, &stored_access);
    int result = subscriptions != NULL
                     ? sync_view_new(engine->app, engine->rules, connection->user_context,
                                     subscriptions, &session->view, text, sizeof text)
                     : -ENOMEM;
    json_decref(subscriptions);
    if (result == -EINVAL) {
        sync_session_fail(connection, session, PROTOCOL_ERROR_BAD_QUERY, text);
        return;
    }
    if (result != 0) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
        return;
    }
    session->file_identity = bind->file_identity;
    session->query_version = file->query_version;
    session->last_integrated_client_version = file->last_integrated_client_version;
    sync_session_send_schema(engine, connection, session);
    sync_bind_resend_notices(engine, connection, session, bind->last_server_version);
    if (connection->error_code != 0)
        return;
    if (bind->last_server_version < engine->server_version)
        sync_session_catch_up(engine, connection, session, bind->last_server_version, now_ms);
    if (session->failed || connection->error_code != 0)
        return;
    result = sync_bind_resend_if_permissions_changed(engine, connection, session, stored_access,
                                                     now_ms, text, sizeof text);
    if (result != 0) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
        return;
    }
    result = sync_store_touch_file(engine->store, bind->file_identity, now_ms);
    if (result != 0)
        sync_connection_fail_internal(connection, "recording the bind", result);
}

static void sync_bind_existing_file(sync_engine *engine, sync_connection *connection,
                                    sync_session *session, const protocol_bind_body *bind,
                                    int64_t now_ms)
{
    char text[300];
    sync_store_file file = {0};
    int result = sync_store_get_file(engine->store, bind->file_identity, &file);
    if (result == -ENOENT) {
        snprintf(text, sizeof text, "file identity %llu is unknown to this server",
                 (unsigned long long)bind->file_identity);
        sync_session_fail(connection, session, PROTOCOL_ERROR_BAD_FILE_IDENTITY, text);
        return;
    }
    if (result == 0)
        result = sync_engine_catch_up_foreign_writes(engine, now_ms);
    if (result != 0) {
        sync_store_file_clear(&file);
        sync_connection_fail_internal(connection, "reading the client file", result);
        return;
    }
    const sync_session *other = sync_session_with_file(connection, bind->file_identity);
    if (strcmp(file.user_id, connection->user.id) != 0) {
        snprintf(text, sizeof text, "file identity %llu belongs to another user",
                 (unsigned long long)bind->file_identity);
        sync_session_fail(connection, session, PROTOCOL_ERROR_PERMISSION_DENIED, text);
    } else if (other != NULL) {
        snprintf(text, sizeof text, "file identity %llu is already bound in session %llu",
                 (unsigned long long)bind->file_identity, (unsigned long long)other->id);
        sync_session_fail(connection, session, PROTOCOL_ERROR_SESSION_ALREADY_BOUND, text);
    } else if (!sync_bind_progress_fits(engine, bind, &file, text, sizeof text)) {
        sync_session_fail(connection, session, PROTOCOL_ERROR_CLIENT_RESET_REQUIRED, text);
    } else {
        sync_bind_resume(engine, connection, session, bind, &file, now_ms);
    }
    sync_store_file_clear(&file);
}

static void sync_engine_bind(sync_engine *engine, sync_connection *connection,
                             const protocol_message *message, int64_t now_ms)
{
    char text[100];
    sync_session *existing = sync_session_find(connection, message->session);
    if (existing != NULL) {
        snprintf(text, sizeof text, "session %llu is already bound",
                 (unsigned long long)message->session);
        sync_session_fail(connection, existing, PROTOCOL_ERROR_SESSION_ALREADY_BOUND, text);
        return;
    }
    sync_session *session = sync_session_add(connection, message->session);
    if (session == NULL)
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
    else if (message->body.bind.file_identity == 0)
        sync_bind_new_file(engine, connection, session, now_ms);
    else
        sync_bind_existing_file(engine, connection, session, &message->body.bind, now_ms);
}

/* ---- query -------------------------------------------------------------- */

static void sync_engine_query(sync_engine *engine, sync_connection *connection,
                              sync_session *session, const protocol_query_body *query,
                              int64_t now_ms)
{
    char text[400];
    if (query->query_version <= session->query_version) {
        snprintf(text, sizeof text, "query_version %llu is not greater than %llu, the last one "
                 "accepted", (unsigned long long)query->query_version,
                 (unsigned long long)session->query_version);
        sync_session_query_error(connection, session, query->query_version, text);
        return;
    }
    json_t *subscriptions = sync_view_subscriptions_json(query);
    int result = subscriptions ? sync_schema_admit_subscriptions(engine->schema, subscriptions,
                                                                 text, sizeof text)
                               : -ENOMEM;
    if (result != 0) {
        json_decref(subscriptions);
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL,
                             result == -ENOMEM ? "out of memory" : text);
        return;
    }
    sync_view *view = NULL;
    result = sync_view_new(engine->app, engine->rules, connection->user_context, subscriptions,
                           &view, text, sizeof text);
    json_decref(subscriptions);
    if (result == -EINVAL) {
        sync_session_query_error(connection, session, query->query_version, text);
        return;
    }
    if (result != 0) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
        return;
    }
    sync_view *old_view = session->view;
    session->view = view;
    uint64_t old_query_version = session->query_version;
    session->query_version = query->query_version;
    result = sync_session_record_query(engine, session);
    if (result != 0) {
        session->view = old_view;
        session->query_version = old_query_version;
        sync_view_unref(view);
        sync_connection_fail_internal(connection, "recording the subscriptions", result);
        return;
    }
    sync_stream_header header = sync_session_stream_header(session);
    sync_snapshot_stream *stream;
    result = sync_snapshot_stream_bootstrap(engine->app, engine->store, old_view, view, &header,
                                            engine->options.bootstrap_batch_bytes, now_ms,
                                            &stream, text, sizeof text);
    sync_view_unref(old_view);
    if (result != 0)
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
    else
        sync_outbox_push_stream(connection, session->id, stream, true);
}

/* ---- upload ------------------------------------------------------------- */

/* One changed object, as clients may see it before and after. */
typedef struct sync_prepared_change {
    const sync_store_object_change *change;
    json_t *before;
    json_t *after;
} sync_prepared_change;

/* The changes of one upload, prepared once for every session. */
typedef struct sync_fan_out {
    const changeset *changesets;
    const sync_store_integration *results;
    size_t count;
    sync_prepared_change *prepared; /* all changes of all results, in order */
    size_t prepared_count;
} sync_fan_out;

static void sync_fan_out_clear(sync_fan_out *fan_out)
{
    for (size_t index = 0; index < fan_out->prepared_count; index++) {
        json_decref(fan_out->prepared[index].before);
        json_decref(fan_out->prepared[index].after);
    }
    free(fan_out->prepared);
}

static int sync_fan_out_prepare(const app_config *app, sync_fan_out *fan_out)
{
    size_t total = 0;
    for (size_t index = 0; index < fan_out->count; index++)
        total += fan_out->results[index].change_count;
    fan_out->prepared = calloc(total ? total : 1, sizeof *fan_out->prepared);
    if (fan_out->prepared == NULL)
        return -ENOMEM;
    for (size_t index = 0; index < fan_out->count; index++) {
        const sync_store_integration *result = &fan_out->results[index];
        for (size_t change = 0; change < result->change_count; change++) {
            sync_prepared_change *prepared = &fan_out->prepared[fan_out->prepared_count++];
            prepared->change = &result->changes[change];
            const char *collection = prepared->change->collection;
            int status = 0;
            if (prepared->change->old_document != NULL)
                status = sync_view_prepare_document(app, collection, prepared->change->old_document,
                                                    &prepared->before);
            if (status == 0 && prepared->change->new_document != NULL)
                status = sync_view_prepare_document(app, collection, prepared->change->new_document,
                                                    &prepared->after);
            if (status != 0)
                return status;
        }
    }
    return 0;
}

/*
 * What the client must be told about writing an object after a change
 * (docs/protocol.md, "Access"): an object that enters the view, or is
 * replaced (which drops what the client knew), comes read-only when it is;
 * one that stays changes when its writability does; one that leaves needs
 * nothing.  before and after are what the session received of it.
 */
static int sync_fan_out_note_access(sync_download_access *access, const char *collection,
                                    const json_t *id, const sync_view_object *was,
                                    const sync_view_object *is, const json_t *before,
                                    const json_t *after)
{
    if (!is->visible)
        return sync_download_access_forget(access, collection, id);
    /* The common case, decided without comparing the documents. */
    if (is->writable && (!was->visible || was->writable) &&
        !sync_download_access_has(access, collection, id))
        return 0;
    bool replaced = !was->visible || !sync_download_diff_keeps_order(before, after);
    if (replaced && !is->writable)
        return sync_download_access_note(access, collection, id, false);
    if (replaced)
        return sync_download_access_has(access, collection, id)
                   ? sync_download_access_note(access, collection, id, true)
                   : 0;
    if (was->writable != is->writable)
        return sync_download_access_note(access, collection, id, is->writable);
    return 0;
}

/* The effect of one changed object on a session's view, appended to
 * effect: what the session may read of it before and after. */
static int sync_fan_out_change(const sync_session *session, const sync_prepared_change *prepared,
                               changeset *effect, sync_download_access *access, size_t *objects,
                               char *text, size_t text_size)
{
    const char *collection = prepared->change->collection;
    const json_t *id = prepared->change->id;
    sync_view_object was;
    sync_view_object is;
    sync_view_examine(session->view, collection, prepared->before, &was);
    sync_view_examine(session->view, collection, prepared->after, &is);
    if (!was.visible && !is.visible)
        return 0;
    json_t *before = NULL;
    json_t *after = NULL;
    int status = was.visible ? sync_view_readable_document(session->view, &was,
                                                           prepared->before, &before)
                             : 0;
    if (status == 0 && is.visible)
        status = sync_view_readable_document(session->view, &is, prepared->after, &after);
    if (status == 0)
        status = sync_download_append_effect(collection, id, before, after, effect, text,
                                             text_size);
    if (status > 0)
        (*objects)++;
    if (status >= 0) {
        int noted = sync_fan_out_note_access(access, collection, id, &was, &is, before, after);
        if (noted != 0)
            status = noted;
    }
    if (status == -ENOMEM)
        snprintf(text, text_size, "out of memory");
    json_decref(before);
    json_decref(after);
    return status;
}

/* The effects of one integrated changeset on a session's view, appended
 * to its download; *prepared walks the prepared changes. */
static int sync_fan_out_changeset(const sync_fan_out *fan_out, size_t index,
                                  const sync_session *session, const sync_prepared_change **next,
                                  protocol_download_body *download,
                                  sync_download_access *access, size_t *objects, char *text,
                                  size_t text_size)
{
    const changeset *original = &fan_out->changesets[index];
    const sync_store_integration *result = &fan_out->results[index];
    changeset effect = {.origin = original->origin,
                        .client_version = original->client_version,
                        .timestamp = original->timestamp};
    int status = 0;
    for (size_t change = 0; status >= 0 && change < result->change_count; change++)
        status = sync_fan_out_change(session, (*next)++, &effect, access, objects, text,
                                     text_size);
    if (status >= 0 && effect.count > 0)
        status = protocol_download_add(download, result->server_version, &effect);
    changeset_clear(&effect);
    return status < 0 ? status : 0;
}

/* Queue what an upload changed for one session; the uploader's own
 * session gets a download even when it is empty: the acknowledgement. */
static void sync_fan_out_to_session(sync_engine *engine, sync_connection *connection,
                                    const sync_session *session, const sync_fan_out *fan_out,
                                    bool uploader)
{
    protocol_message message;
    sync_session_init_download(session, engine->server_version, &message);
    const sync_prepared_change *next = fan_out->prepared;
    sync_download_access access = {0};
    size_t objects = 0;
    char text[300] = "out of memory";
    int status = 0;
    for (size_t index = 0; status == 0 && index < fan_out->count; index++) {
        if (fan_out->results[index].skipped)
            next += fan_out->results[index].change_count;
        else
            status = sync_fan_out_changeset(fan_out, index, session, &next,
                                            &message.body.download, &access, &objects, text,
                                            sizeof text);
    }
    if (status == 0 && sync_download_access_add_to(&access, &message.body.download) != 0)
        status = -ENOMEM;
    sync_download_access_clear(&access);
    if (status != 0) {
        protocol_message_clear(&message);
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
        return;
    }
    if (message.body.download.changeset_count == 0 && message.body.download.access_count == 0 &&
        !uploader) {
        protocol_message_clear(&message);
        return;
    }
    engine->metrics.objects_out += objects;
    sync_outbox_push_download(connection, &message);
}

static void sync_fan_out_everywhere(sync_engine *engine, const sync_session *uploader,
                                    const sync_fan_out *fan_out)
{
    for (sync_connection *connection = engine->connections; connection != NULL;
         connection = connection->next) {
        for (sync_session *session = connection->sessions;
             session != NULL && connection->error_code == 0; session = session->next) {
            if (!session->failed && session->view != NULL)
                sync_fan_out_to_session(engine, connection, session, fan_out,
                                        session == uploader);
        }
    }
}

/* Count an integrated upload and move the versions on: the engine's, and
 * the uploader's acknowledgement (skipped changesets were integrated
 * before, so they are acknowledged too). */
static void sync_engine_record_integration(sync_engine *engine, sync_session *uploader,
                                           const changeset *changesets, size_t count,
                                           const sync_store_integration *results, int64_t now_ms)
{
    for (size_t index = 0; index < count; index++) {
        if (results[index].skipped) {
            engine->metrics.changesets_skipped++;
            continue;
        }
        engine->metrics.changesets_in++;
        /* Another process may have written in between. */
        sync_engine_catch_up_sessions(engine, results[index].server_version - 1, now_ms);
        engine->server_version = results[index].server_version;
        for (size_t change = 0; change < results[index].change_count; change++)
            if (sync_user_is_custom_data_collection(engine->app,
                                                    results[index].changes[change].collection))
                engine->users_stale = true;
    }
    if (count > 0) {
        uint64_t last = changesets[count - 1].client_version;
        if (last > uploader->last_integrated_client_version)
            uploader->last_integrated_client_version = last;
    }
}

/* Integrate what an upload may integrate, with the notices of what it
 * may not, and queue its effects on every session (the uploader's
 * acknowledgement included). */
static void sync_engine_integrate(sync_engine *engine, sync_connection *connection,
                                  sync_session *session, const changeset *changesets,
                                  size_t count, const sync_store_notice *notices,
                                  size_t notice_count, int64_t now_ms)
{
    char text[300];
    sync_fan_out fan_out = {.changesets = changesets, .count = count};
    sync_store_integration *results = calloc(count ? count : 1, sizeof *results);
    int result = results ? sync_store_integrate_upload(engine->store, changesets, count, notices,
                                                       notice_count, now_ms, results)
                         : -ENOMEM;
    if (result == -ENOENT) {
        snprintf(text, sizeof text, "file identity %llu is unknown to this server: %s",
                 (unsigned long long)session->file_identity, sync_store_last_error());
        sync_session_fail(connection, session, PROTOCOL_ERROR_BAD_FILE_IDENTITY, text);
        free(results);
        return;
    }
    if (result != 0) {
        free(results);
        sync_connection_fail_internal(connection, "integrating the upload", result);
        return;
    }
    sync_engine_record_integration(engine, session, changesets, count, results, now_ms);
    fan_out.results = results;
    result = sync_fan_out_prepare(engine->app, &fan_out);
    if (result == 0)
        sync_fan_out_everywhere(engine, session, &fan_out);
    else
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
    sync_fan_out_clear(&fan_out);
    for (size_t index = 0; index < count; index++)
        sync_store_integration_clear(&results[index]);
    free(results);
}

/*
 * The notices of the refused objects of an upload, one per object, in
 * upload order: what the client is told now and, should it not receive
 * it, at its next bind.  NULL when out of memory.
 */
static sync_store_notice *sync_session_notices_of(const sync_session *session,
                                                  const sync_write_check *check)
{
    sync_store_notice *notices = calloc(check->refusal_count ? check->refusal_count : 1,
                                        sizeof *notices);
    for (size_t index = 0; notices != NULL && index < check->refusal_count; index++) {
        const sync_write_refusal *refusal = &check->refusals[index];
        char reason[512];
        notices[index] = (sync_store_notice){
            .file_identity = session->file_identity,
            .client_version = refusal->client_version,
            .collection = strdup(refusal->collection),
            .id = json_incref(refusal->id),
            .reason = strdup(sync_message_text(refusal->reason, reason, sizeof reason)),
            .server_document = json_incref(refusal->server_document),
        };
        if (notices[index].collection == NULL || notices[index].reason == NULL) {
            sync_store_notices_free(notices, index + 1);
            notices = NULL;
        }
    }
    return notices;
}

/* The schemas changed: every bound session is told. */
static void sync_engine_broadcast_schema(sync_engine *engine)
{
    for (sync_connection *connection = engine->connections; connection != NULL;
         connection = connection->next) {
        for (sync_session *session = connection->sessions;
             session != NULL && connection->error_code == 0; session = session->next) {
            if (!session->failed && session->view != NULL)
                sync_session_send_schema(engine, connection, session);
        }
    }
}

static void sync_engine_upload(sync_engine *engine, sync_connection *connection,
                               sync_session *session, const protocol_upload_body *upload,
                               int64_t now_ms)
{
    char text[300];
    for (size_t index = 0; index < upload->changeset_count; index++) {
        if (upload->changesets[index].origin == session->file_identity)
            continue;
        snprintf(text, sizeof text, "upload.changesets[%zu]: origin %llu is not the session's "
                 "file identity %llu", index,
                 (unsigned long long)upload->changesets[index].origin,
                 (unsigned long long)session->file_identity);
        sync_session_fail(connection, session, PROTOCOL_ERROR_BAD_CHANGESET, text);
        return;
    }
    int result = sync_engine_catch_up_foreign_writes(engine, now_ms);
    if (result != 0) {
        sync_connection_fail_internal(connection, "reading the store's statistics", result);
        return;
    }
    sync_write_check check;
    result = sync_write_check_run(engine->app, engine->schema, engine->store, session->view,
                                  upload->changesets, upload->changeset_count,
                                  session->last_integrated_client_version, &check, text,
                                  sizeof text);
    if (result != 0) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
        return;
    }
    sync_store_notice *notices = sync_session_notices_of(session, &check);
    if (notices == NULL)
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, "out of memory");
    else
        sync_session_send_compensating_writes(connection, session, notices, check.refusal_count);
    if (connection->error_code == 0)
        sync_engine_integrate(engine, connection, session, check.allowed, check.count, notices,
                              check.refusal_count, now_ms);
    sync_store_notices_free(notices, check.refusal_count);
    if (check.schema_extended)
        sync_engine_broadcast_schema(engine);
    sync_write_check_clear(&check);
}

/* ---- Permission changes ------------------------------------------------- */

/*
 * The session's user context changed: its view is built again with the
 * same subscriptions, and what that changed is streamed to the client
 * like the bootstrap of a new subscription set, from the old view to the
 * new one.
 */
static void sync_session_renew_view(sync_engine *engine, sync_connection *connection,
                                    sync_session *session, int64_t now_ms)
{
    char text[300];
    sync_view *view = NULL;
    int result = sync_view_new(engine->app, engine->rules, connection->user_context,
                               sync_view_subscriptions(session->view), &view, text, sizeof text);
    if (result != 0) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
        return;
    }
    sync_view *old_view = session->view;
    session->view = view;
    sync_stream_header header = sync_session_stream_header(session);
    sync_snapshot_stream *stream = NULL;
    if (sync_view_collection_count(view) > 0)
        result = sync_snapshot_stream_bootstrap(engine->app, engine->store, old_view, view,
                                                &header, engine->options.bootstrap_batch_bytes,
                                                now_ms, &stream, text, sizeof text);
    sync_view_unref(old_view);
    if (result != 0) {
        sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
        return;
    }
    if (stream != NULL)
        sync_outbox_push_stream(connection, session->id, stream, false);
    result = sync_session_record_query(engine, session);
    if (result != 0)
        sync_connection_fail_internal(connection, "recording the subscriptions", result);
}

/* Read the user context of connections again, once the custom user data
 * may have changed, and renew the views of those whose context did. */
static void sync_engine_refresh_users(sync_engine *engine, int64_t now_ms)
{
    if (!engine->users_stale)
        return;
    engine->users_stale = false;
    for (sync_connection *connection = engine->connections; connection != NULL;
         connection = connection->next) {
        if (connection->error_code != 0)
            continue;
        sync_user *fresh = NULL;
        char text[400];
        int result = sync_user_new(engine->app, engine->store, &connection->user, &fresh, text,
                                   sizeof text);
        if (result != 0) {
            sync_connection_fail(connection, PROTOCOL_ERROR_INTERNAL, text);
            continue;
        }
        if (sync_user_equal(fresh, connection->user_context)) {
            sync_user_unref(fresh);
            continue;
        }
        sync_user_unref(connection->user_context);
        connection->user_context = fresh;
        for (sync_session *session = connection->sessions;
             session != NULL && connection->error_code == 0; session = session->next) {
            if (!session->failed && session->view != NULL)
                sync_session_renew_view(engine, connection, session, now_ms);
        }
    }
}

/* ---- receive ------------------------------------------------------------ */

/* A frame protocol_parse refused: session-level codes (a bad changeset)
 * end their session, the others the connection. */
static int sync_engine_refuse_frame(sync_connection *connection, const protocol_error *error)
{
    if (error->session == 0)
        return sync_connection_fail(connection, error->code, error->message);
    sync_session *session = sync_session_find(connection, error->session);
    char text[300];
    if (session == NULL) {
        snprintf(text, sizeof text, "session %llu is not bound (%s)",
                 (unsigned long long)error->session, error->message);
        return sync_connection_fail(connection, PROTOCOL_ERROR_UNEXPECTED_MESSAGE, text);
    }
    if (!session->failed)
        sync_session_fail(connection, session, error->code, error->message);
    return 0;
}

static void sync_engine_dispatch(sync_engine *engine, sync_connection *connection,
                                 const protocol_message *message, int64_t now_ms)
{
    char text[300];
    if (message->type == PROTOCOL_MESSAGE_PING) {
        protocol_message pong;
        protocol_message_init(&pong, PROTOCOL_MESSAGE_PONG, 0);
        pong.body.ping = message->body.ping;
        sync_outbox_push_message(connection, &pong);
        return;
    }
    if (message->type == PROTOCOL_MESSAGE_BIND) {
        sync_engine_bind(engine, connection, message, now_ms);
        return;
    }
    sync_session *session = sync_session_find(connection, message->session);
    if (session == NULL) {
        snprintf(text, sizeof text, "%s for session %llu, which is not bound",
                 protocol_message_type_name(message->type), (unsigned long long)message->session);
        sync_connection_fail(connection, PROTOCOL_ERROR_UNEXPECTED_MESSAGE, text);
        return;
    }
    if (message->type == PROTOCOL_MESSAGE_UNBIND) {
        sync_session_remove(connection, session);
        protocol_message unbound;
        protocol_message_init(&unbound, PROTOCOL_MESSAGE_UNBOUND, message->session);
        sync_outbox_push_message(connection, &unbound);
        return;
    }
    if (session->failed)
        return;
    switch (message->type) {
    case PROTOCOL_MESSAGE_MARK: {
        protocol_message mark;
        protocol_message_init(&mark, PROTOCOL_MESSAGE_MARK, session->id);
        mark.body.mark = message->body.mark;
        sync_outbox_push_message(connection, &mark);
        break;
    }
    case PROTOCOL_MESSAGE_QUERY:
        sync_engine_query(engine, connection, session, &message->body.query, now_ms);
        break;
    case PROTOCOL_MESSAGE_UPLOAD:
        sync_engine_upload(engine, connection, session, &message->body.upload, now_ms);
        break;
    default:
        break; /* protocol_sent_by let no other type through */
    }
}

int sync_engine_receive(sync_engine *engine, sync_connection *connection, const char *text,
                        size_t length, bool binary, int64_t now_ms)
{
    if (connection->error_code != 0)
        return connection->error_code;
    connection->last_receive_ms = now_ms;
    if (length > PROTOCOL_MAX_MESSAGE_BYTES)
        return sync_connection_fail(connection, PROTOCOL_ERROR_MESSAGE_TOO_LARGE,
                                    "a frame is larger than 16 MiB (16,777,216 bytes)");
    if (binary)
        return sync_connection_fail(connection, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                                    "a binary frame: messages are WebSocket text frames");
    protocol_message message;
    protocol_error error;
    if (protocol_parse(text, length, &message, &error) != 0)
        return sync_engine_refuse_frame(connection, &error);
    if (!protocol_sent_by(message.type, PROTOCOL_CLIENT)) {
        char reason[100];
        snprintf(reason, sizeof reason, "%s is a message only the server sends",
                 protocol_message_type_name(message.type));
        protocol_message_clear(&message);
        return sync_connection_fail(connection, PROTOCOL_ERROR_UNEXPECTED_MESSAGE, reason);
    }
    sync_engine_dispatch(engine, connection, &message, now_ms);
    protocol_message_clear(&message);
    sync_engine_refresh_users(engine, now_ms);
    return connection->error_code;
}

void sync_engine_tick(sync_engine *engine, int64_t now_ms)
{
    char text[100];
    snprintf(text, sizeof text, "no message for %lld seconds",
             (long long)(engine->options.idle_timeout_ms / 1000));
    for (sync_connection *connection = engine->connections; connection != NULL;
         connection = connection->next) {
        if (now_ms - connection->last_receive_ms >= engine->options.idle_timeout_ms)
            sync_connection_fail(connection, PROTOCOL_ERROR_IDLE_TIMEOUT, text);
    }
    /* A store that cannot answer now is asked again at the next tick. */
    (void)sync_engine_catch_up_foreign_writes(engine, now_ms);
    sync_engine_refresh_users(engine, now_ms);
}

void sync_engine_shutdown(sync_engine *engine)
{
    engine->shutting_down = true;
    for (sync_connection *connection = engine->connections; connection != NULL;
         connection = connection->next)
        sync_connection_fail(connection, PROTOCOL_ERROR_GOING_AWAY, "the server is shutting down");
}

void sync_engine_get_metrics(sync_engine *engine, sync_engine_metrics *metrics)
{
    *metrics = engine->metrics;
    metrics->server_version = engine->server_version;
    sync_store_statistics statistics;
    /* A store that cannot answer now leaves the history figure at 0. */
    if (sync_store_get_statistics(engine->store, &statistics) == 0) {
        metrics->history_changesets = statistics.history_changesets;
        metrics->server_version = statistics.server_version;
    }
}

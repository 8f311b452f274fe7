/*
 * sync_client.c — the sync thread of a synced mount (sync_client.h).
 *
 * The thread owns one sync_transport and at most one connection, with one
 * session (SYNC_SESSION) on it.  Its loop: connect when due, send what is
 * due (query, mark, uploads, ping), then run the transport's event loop
 * until something arrives, the FUSE thread wakes it (sync_status_wake
 * after a local commit) or a timer is due.  Received messages are handled
 * inside the event loop: downloads go to the store in one transaction each
 * (store_apply_download), then the kernel is told (the changed callback).
 *
 * Everything durable is in the store: what the server acknowledged, the
 * outbox, the subscriptions and the answers to them.  The thread keeps
 * only per-connection bookkeeping, so a lost connection costs nothing but
 * a re-bind: the server skips changesets it already integrated.
 *
 * Logging in: the first connection presents the mount's credential; the
 * server answers with a session token (a login message), which the thread
 * keeps in memory only and presents on every later connection, so that a
 * reconnect costs the server no password hash and an anonymous mount stays
 * the same user.  A refused token is forgotten, and the next connection
 * logs in with the credential again, once; an anonymous mount cannot, and
 * stops syncing (docs/sync.md).
 */
#include "sync_client.h"

#include <errno.h>
#include <libwebsockets.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "realmfs/auth.h"
#include "realmfs/ejson.h"
#include "realmfs/object_name.h"
#include "realmfs/protocol.h"
#include "realmfs/protocol_download_reader.h"
#include "realmfs/schema.h"
#include "realmfs/sync_transport.h"

/* The one session of the connection: a mount syncs one file. */
#define SYNC_SESSION 1

/* Uploads sent and not acknowledged, at most: enough to keep a loopback
 * or LAN link busy, little enough that an acknowledgement is never far. */
#define SYNC_UPLOAD_WINDOW_BYTES (1024 * 1024)
/* Changesets per upload message; halved while a message would pass
 * PROTOCOL_MAX_MESSAGE_BYTES. */
#define SYNC_UPLOAD_MAX_CHANGESETS 256

/* Reconnection delays: doubling from the first to the last, +-25%. */
#define SYNC_BACKOFF_FIRST_MS 500
#define SYNC_BACKOFF_MAX_MS 60000

/* A connection that brought nothing for two ping intervals is lost. */
#define SYNC_SILENCE_LIMIT_MS (2 * PROTOCOL_PING_INTERVAL_SECONDS * 1000)

/* How often to look again at an outbox whose head is a young held delete. */
#define SYNC_HELD_DELETE_RECHECK_MS 250
/*
 * A subscription set goes to the server only once it has not changed for
 * this long: an editor's save (rename the file away, write a new one, or
 * write a temporary file and rename it over) passes through sets the user
 * never meant, and each sent set costs a bootstrap and makes objects
 * leave and come back.
 */
#define SYNC_SUBSCRIPTIONS_SETTLE_MS 100

/* Longest the event loop sleeps without a timer due. */
#define SYNC_IDLE_SERVICE_MS 1000

/* How long the close handshake at the end may take. */
#define SYNC_CLOSE_WAIT_MS 500

/* A document in the error log is cut above this, as fs_ops.c does. */
#define SYNC_LOGGED_CONTENT_LIMIT (64 * 1024)

/* An upload message sent and not yet acknowledged. */
typedef struct sync_upload_in_flight {
    uint64_t last_client_version;
    size_t bytes;
    size_t changesets;
} sync_upload_in_flight;

struct sync_client {
    char *server_url;
    char *app_id;
    char *authorization; /* the mount's credential */
    char *ca_file;
    char *mountpoint;
    store *store;
    error_log *errors;
    sync_status *status;
    sync_client_changed_fn changed;
    sync_client_schema_changed_fn schema_changed;
    void *changed_context;
    pthread_t thread;

    /* Set by sync_client_stop, read by the thread. */
    atomic_bool stopping;
    _Atomic int64_t drain_deadline_ms;

    /* Everything below belongs to the sync thread. */
    char session_token[AUTH_SESSION_TOKEN_SIZE]; /* "": none yet, or refused */
    bool connected_with_token; /* the connection presented session_token */
    sync_transport *transport;
    sync_transport_connection *connection;
    bool bound;                  /* bind sent, and the file has an identity */
    bool gave_up;                /* the server said a person must act */
    bool resetting;              /* a client reset waits for its bootstrap */
    bool query_needs_new_version; /* the set was unanswered when we bound */
    uint64_t sent_query_version; /* on this connection; 0: none */
    uint64_t sent_mark;          /* on this connection */
    uint64_t uploaded_through;   /* the last client version sent or acknowledged */
    sync_upload_in_flight *in_flight;
    size_t in_flight_count;
    size_t in_flight_capacity;
    size_t in_flight_bytes;
    size_t in_flight_changesets;
    size_t upload_batch_limit;
    int64_t last_received_ms;
    int64_t last_ping_ms;
    int64_t retry_at_ms;
    int64_t held_delete_recheck_ms; /* 0: none planned */
    uint64_t seen_subscriptions_version; /* the latest set seen, and when */
    int64_t subscriptions_seen_ms;
    int64_t subscriptions_recheck_ms;    /* 0: none planned */
    int backoff_ms;
    double server_backoff_seconds; /* the hint of the last error, until used */
    uint64_t jitter_state;
};

static int64_t now_ms(void)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
}

/* libwebsockets logs to stderr by default, which is the user's terminal
 * during the login check and in the foreground: what matters reaches the
 * user through our own messages and the status instead. */
static int open_transport(const char *ca_file, sync_transport **transport, char *message,
                          size_t message_size)
{
    lws_set_log_level(0, NULL);
    sync_transport_options options = {.ca_file = ca_file};
    return sync_transport_new(&options, transport, message, message_size);
}

static char *copy_or_null(const char *text)
{
    return text ? strdup(text) : NULL;
}

/* ---- reporting ------------------------------------------------------- */

/* A problem the server reported, or the thread met, in .realmfs/errors.
 * path: the object concerned, or "" for the mount as a whole. */
static void log_problem(sync_client *client, const char *path, int error_code,
                        const char *reason, const json_t *extra)
{
    error_log_append(client->errors, path, "sync", error_code, reason, extra);
}

static void set_state(sync_client *client, sync_connection_state state, const char *error)
{
    sync_status_set_state(client->status, state, error,
                          state == SYNC_STATE_OFFLINE ? client->retry_at_ms : 0);
}

/* Stop syncing until the next mount: what the server said needs a person. */
static void give_up(sync_client *client, const char *reason)
{
    client->gave_up = true;
    log_problem(client, "", EPERM, reason, NULL);
    set_state(client, SYNC_STATE_ERROR, reason);
}

/* ---- sending --------------------------------------------------------- */

/* Serialize and queue a message; *bytes (may be NULL) gets its size.
 * -EMSGSIZE when it would be too large, -EINVAL for another rule it
 * breaks (a bug: logged), or what sync_transport_send returns. */
static int send_message(sync_client *client, const protocol_message *message, size_t *bytes)
{
    protocol_error error;
    size_t length;
    char *text = protocol_serialize(message, &length, &error);
    if (!text) {
        if (error.code == PROTOCOL_ERROR_MESSAGE_TOO_LARGE)
            return -EMSGSIZE;
        char reason[400];
        snprintf(reason, sizeof reason, "cannot write a %s message: %s",
                 protocol_message_type_name(message->type), error.message);
        log_problem(client, "", EINVAL, reason, NULL);
        return error.code == PROTOCOL_ERROR_INTERNAL ? -ENOMEM : -EINVAL;
    }
    int result = sync_transport_send(client->connection, text, length);
    free(text);
    if (bytes)
        *bytes = length;
    return result;
}

static void send_bind(sync_client *client, const store_sync_progress *progress)
{
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_BIND, SYNC_SESSION);
    message.body.bind.file_identity = progress->file_identity;
    if (progress->file_identity) {
        message.body.bind.last_server_version = progress->last_server_version;
        message.body.bind.last_integrated_client_version =
            progress->last_acknowledged_client_version;
    }
    send_message(client, &message, NULL);
}

typedef struct query_builder {
    protocol_query_body *query;
    int error;
} query_builder;

static int add_subscription(const char *collection, const char *name, const char *query,
                            void *context)
{
    query_builder *builder = context;
    builder->error = protocol_query_add(builder->query, collection, name, query);
    return builder->error;
}

/* The subscription set goes when it is newer than anything the server has
 * answered, and not sent on this connection yet.  After a reconnection the
 * server may have recorded the set already (it records before it
 * bootstraps) and wants a greater version for the same set: hence the
 * bump. */
static void send_query_if_due(sync_client *client, const store_sync_progress *progress,
                              int64_t now)
{
    uint64_t version = progress->subscriptions_version;
    if (version != client->seen_subscriptions_version) {
        client->seen_subscriptions_version = version;
        client->subscriptions_seen_ms = now;
    }
    client->subscriptions_recheck_ms = 0;
    if (now < client->subscriptions_seen_ms + SYNC_SUBSCRIPTIONS_SETTLE_MS) {
        client->subscriptions_recheck_ms = client->subscriptions_seen_ms +
                                           SYNC_SUBSCRIPTIONS_SETTLE_MS;
        return;
    }
    bool unanswered = version > progress->accepted_query_version &&
                      version > progress->refused_query_version;
    if (version == 0 || !unanswered || version <= client->sent_query_version)
        return;
    if (client->query_needs_new_version) {
        if (store_bump_subscriptions_version(client->store, &version) != 0)
            return;
        client->query_needs_new_version = false;
    }
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_QUERY, SYNC_SESSION);
    message.body.query.query_version = version;
    query_builder builder = {.query = &message.body.query};
    int error = store_list_subscriptions(client->store, add_subscription, &builder);
    if (!error)
        error = send_message(client, &message, NULL);
    protocol_message_clear(&message);
    if (error)
        return;
    client->sent_query_version = version;
    sync_status_set_bootstrap(client->status, version, 0.0);
}

static void send_mark_if_due(sync_client *client)
{
    sync_status_snapshot snapshot;
    sync_status_get(client->status, &snapshot);
    if (snapshot.mark_requested <= client->sent_mark)
        return;
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_MARK, SYNC_SESSION);
    message.body.mark.request = snapshot.mark_requested;
    if (send_message(client, &message, NULL) == 0)
        client->sent_mark = snapshot.mark_requested;
}

static void send_ping_if_due(sync_client *client, int64_t now)
{
    if (now - client->last_ping_ms < PROTOCOL_PING_INTERVAL_SECONDS * 1000)
        return;
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_PING, 0);
    message.body.ping.timestamp = (uint64_t)now;
    if (send_message(client, &message, NULL) == 0)
        client->last_ping_ms = now;
}

static int take_outbox_changeset(const changeset *outbox_changeset, void *context)
{
    protocol_upload_body *upload = context;
    /* store_scan_outbox lets the visitor take the changeset's contents */
    return protocol_upload_add(upload, (changeset *)outbox_changeset);
}

static int remember_in_flight(sync_client *client, uint64_t last_client_version, size_t bytes,
                              size_t changesets)
{
    if (client->in_flight_count == client->in_flight_capacity) {
        size_t capacity = client->in_flight_capacity ? 2 * client->in_flight_capacity : 16;
        sync_upload_in_flight *grown = realloc(client->in_flight, capacity * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        client->in_flight = grown;
        client->in_flight_capacity = capacity;
    }
    client->in_flight[client->in_flight_count++] = (sync_upload_in_flight){
        .last_client_version = last_client_version, .bytes = bytes, .changesets = changesets};
    client->in_flight_bytes += bytes;
    client->in_flight_changesets += changesets;
    return 0;
}

/* The server integrated everything up to client_version. */
static void forget_acknowledged(sync_client *client, uint64_t client_version)
{
    size_t done = 0;
    while (done < client->in_flight_count &&
           client->in_flight[done].last_client_version <= client_version) {
        client->in_flight_bytes -= client->in_flight[done].bytes;
        client->in_flight_changesets -= client->in_flight[done].changesets;
        done++;
    }
    if (done > 0) /* in_flight may be NULL while nothing ever went up */
        memmove(client->in_flight, client->in_flight + done,
                (client->in_flight_count - done) * sizeof *client->in_flight);
    client->in_flight_count -= done;
    if (client->uploaded_through < client_version)
        client->uploaded_through = client_version;
}

/* One upload message from the outbox.  1 when one was sent, 0 when there
 * was nothing to send, <0 on failure. */
static int send_one_upload(sync_client *client, const store_sync_progress *progress, int64_t now)
{
    for (;;) {
        protocol_message message;
        protocol_message_init(&message, PROTOCOL_MESSAGE_UPLOAD, SYNC_SESSION);
        protocol_upload_body *upload = &message.body.upload;
        upload->last_integrated_server_version = progress->last_server_version;
        int visited = store_scan_outbox(client->store, client->uploaded_through,
                                        client->upload_batch_limit, now, take_outbox_changeset,
                                        upload);
        if (visited < 0 || upload->changeset_count == 0) {
            protocol_message_clear(&message);
            return visited < 0 ? visited : 0;
        }
        size_t bytes = 0;
        int error = send_message(client, &message, &bytes);
        size_t count = upload->changeset_count;
        uint64_t last = upload->changesets[count - 1].client_version;
        protocol_message_clear(&message);
        if (error == -EMSGSIZE && count > 1) {
            client->upload_batch_limit = count / 2;
            continue;
        }
        if (error == -EMSGSIZE) {
            char reason[200];
            snprintf(reason, sizeof reason, "local change %llu is too large to upload (over %d "
                     "bytes as a message); later changes wait behind it",
                     (unsigned long long)last, PROTOCOL_MAX_MESSAGE_BYTES);
            give_up(client, reason);
            return -EMSGSIZE;
        }
        if (error)
            return error;
        client->uploaded_through = last;
        client->upload_batch_limit = SYNC_UPLOAD_MAX_CHANGESETS;
        return remember_in_flight(client, last, bytes, count) == 0 ? 1 : -ENOMEM;
    }
}

static void send_uploads_if_due(sync_client *client, const store_sync_progress *progress,
                                int64_t now)
{
    int sent = 0;
    while (client->in_flight_bytes < SYNC_UPLOAD_WINDOW_BYTES &&
           (sent = send_one_upload(client, progress, now)) == 1)
        ;
    /* Nothing more left to send while changesets wait beyond the ones in
     * flight: the outbox's head is a held delete not old enough yet. */
    bool held = sent == 0 && progress->outbox_changesets > client->in_flight_changesets;
    client->held_delete_recheck_ms = held ? now + SYNC_HELD_DELETE_RECHECK_MS : 0;
}

/* Everything due on a bound session.  Uploads wait while the latest
 * subscription set has not gone yet: the server judges a write by the
 * session's view at the time, and would refuse one of an object only the
 * new set selects (the user subscribed, then wrote). */
static void send_due_messages(sync_client *client, int64_t now)
{
    store_sync_progress progress;
    if (store_get_sync_progress(client->store, &progress) != 0)
        return;
    send_query_if_due(client, &progress, now);
    send_mark_if_due(client);
    uint64_t version = progress.subscriptions_version;
    bool set_unsent = version > client->sent_query_version &&
                      version > progress.accepted_query_version &&
                      version > progress.refused_query_version;
    if (!set_unsent)
        send_uploads_if_due(client, &progress, now);
}

/* ---- receiving ------------------------------------------------------- */

/* <Collection>/<file name of id>, as the user sees the object. */
static void object_path(const char *collection, const json_t *id, char *path, size_t size)
{
    char name[OBJECT_NAME_MAX + 1];
    if (object_name_from_id(id, name) != 0)
        snprintf(name, sizeof name, "?");
    snprintf(path, size, "%s/%s", collection, name);
}

/* A document (or an _id) as the JSON its Extended JSON text is, for an
 * error record; NULL when out of memory. */
static json_t *extended_json(const json_t *value)
{
    char *text = ejson_format_line(value, NULL);
    json_t *json = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    free(text);
    return json;
}

/* The members of an error record that name an object and keep what the
 * user had in it under content_member (left out when content is NULL or
 * too large to log).  NULL when out of memory. */
static json_t *object_record(const char *collection, const json_t *id,
                             const char *content_member, const char *content)
{
    json_t *record = json_pack("{s:s, s:o}", "collection", collection, "_id", extended_json(id));
    if (record && content && strlen(content) <= SYNC_LOGGED_CONTENT_LIMIT &&
        json_object_set_new(record, content_member, json_string(content)) != 0) {
        json_decref(record);
        return NULL;
    }
    return record;
}

/*
 * A write the server refused (a compensating write, docs/sync.md,
 * "Errors"): the object drops the refused changes and shows the server's
 * version at once, and the error log keeps what the user had.  The
 * download that acknowledges the upload comes after this error, and
 * changes nothing more of the object: the refused write never reached
 * the mirror.  The server sends the error again after a reconnection
 * when the mount may have missed it; one it handled before is ignored.
 */
static void revert_refused_write(sync_client *client, const protocol_error_body *error)
{
    const protocol_compensating_write *write = error->compensating_write;
    if (!write) {
        log_problem(client, "", EACCES, error->message, NULL);
        return;
    }
    char *rejected = NULL;
    store_download_change *changes = NULL;
    size_t count = 0;
    int failed = store_revert_refused_write(client->store, write->collection, write->id,
                                            write->client_version, &rejected, &changes, &count);
    if (failed == 1)
        return;
    char path[PATH_MAX], file[PATH_MAX + 1];
    object_path(write->collection, write->id, path, sizeof path);
    snprintf(file, sizeof file, "%s/%s", client->mountpoint, path);
    json_t *extra = object_record(write->collection, write->id, "rejected", rejected);
    json_t *details = json_pack("{s:s, s:s, s:o}", "kind", "compensating_write", "file", file,
                                "server_document", write->server_document
                                                       ? extended_json(write->server_document)
                                                       : json_null());
    if (extra && (!details || json_object_update(extra, details) != 0)) {
        json_decref(extra);
        extra = NULL; /* the line, without what memory was lacking for */
    }
    json_decref(details);
    char reason[SYNC_STATUS_TEXT_MAX + 600];
    if (failed)
        snprintf(reason, sizeof reason, "%s (the mount could not revert its copy: %s)",
                 write->reason, store_last_error());
    log_problem(client, path, EACCES, failed ? reason : write->reason, extra);
    json_decref(extra);
    free(rejected);
    if (count && client->changed)
        client->changed(changes, count, client->changed_context);
    store_free_download_changes(changes, count);
}

static int add_schema_name(const char *collection, void *context)
{
    return json_object_set_new(context, collection, json_null()) == 0 ? 0 : -ENOMEM;
}

/* The schemas of the message that this client can use (schema_check),
 * each other one reported; NULL when out of memory. */
static json_t *usable_schemas(sync_client *client, const json_t *collections)
{
    json_t *usable = json_object();
    const char *collection;
    json_t *value;
    json_object_foreach((json_t *)collections, collection, value) {
        char message[300], reason[700];
        if (schema_check(value, message, sizeof message) != 0) {
            snprintf(reason, sizeof reason, "the server's schema of %s cannot be used here, so "
                     "local writes to it are not checked: %s", collection, message);
            log_problem(client, "", EINVAL, reason, NULL);
        } else if (!usable || json_object_set(usable, collection, value) != 0) {
            json_decref(usable);
            return NULL;
        }
    }
    return usable;
}

/*
 * The server's schemas replace the mount's, so that local writes are
 * checked as the server will check them.  A schema this client cannot
 * read is left out (the server still judges writes to it), with a line
 * in the error log; then the kernel forgets every schema file that may
 * have changed.
 */
static void handle_schema(sync_client *client, const protocol_schema_body *schema)
{
    json_t *usable = usable_schemas(client, schema->collections), *changed = json_object();
    const char *collection;
    json_t *value;
    int error = !usable || !changed ? -ENOMEM
                                    : store_list_schemas(client->store, add_schema_name, changed);
    if (!error)
        error = json_object_update(changed, usable) == 0 ? 0 : -ENOMEM;
    if (!error)
        error = store_set_server_schemas(client->store, usable, schema->development_mode);
    if (error) {
        char reason[600];
        snprintf(reason, sizeof reason, "cannot keep the server's schemas: %s",
                 error == -ENOMEM ? "out of memory" : store_last_error());
        log_problem(client, "", -error, reason, NULL);
    } else if (client->schema_changed) {
        json_object_foreach(changed, collection, value)
            client->schema_changed(collection, client->changed_context);
    }
    json_decref(usable);
    json_decref(changed);
}

/*
 * The server cannot continue the file's history (restored from a backup,
 * history trimmed, file unknown): start over as a new file, keeping the
 * local changes to re-apply on the fresh copy (store_begin_client_reset).
 * The caller drops the session; the next connection binds the new file
 * at once.
 */
static void begin_client_reset(sync_client *client, const char *reason)
{
    store_sync_progress progress;
    char text[SYNC_STATUS_TEXT_MAX + 200];
    store_download_change *writable = NULL;
    size_t count = 0;
    if (store_begin_client_reset(client->store, &writable, &count) != 0 ||
        store_get_sync_progress(client->store, &progress) != 0) {
        snprintf(text, sizeof text, "%s; the client reset failed: %s", reason,
                 store_last_error());
        give_up(client, text);
        return;
    }
    /* read-only objects became writable: their mode changed */
    if (count && client->changed)
        client->changed(writable, count, client->changed_context);
    store_free_download_changes(writable, count);
    client->resetting = true;
    client->backoff_ms = SYNC_BACKOFF_FIRST_MS;
    snprintf(text, sizeof text, "%s; client reset: the mount downloads a fresh copy, then "
             "re-applies the %llu local changes waiting to go up", reason,
             (unsigned long long)progress.outbox_changesets);
    log_problem(client, "", ESTALE, text, NULL);
}

/* What the download that completed a client reset could not re-apply
 * goes to the error log with its content; then a summary. */
static void log_client_reset_outcome(sync_client *client, const store_download_change *changes,
                                     size_t count)
{
    size_t lost = 0;
    for (size_t i = 0; i < count; i++) {
        if (!changes[i].lost_text)
            continue;
        char path[PATH_MAX];
        object_path(changes[i].collection, changes[i].id, path, sizeof path);
        json_t *extra = object_record(changes[i].collection, changes[i].id, "content",
                                      changes[i].lost_text);
        log_problem(client, path, ESTALE, "client reset: this local change could not be "
                    "re-applied (the server no longer has the object, or no subscription "
                    "selects it); its content is kept here", extra);
        json_decref(extra);
        lost++;
    }
    store_sync_progress progress;
    if (store_get_sync_progress(client->store, &progress) != 0)
        return;
    char text[200];
    snprintf(text, sizeof text, "client reset completed: %llu local changes re-applied, %zu "
             "could not be", (unsigned long long)progress.outbox_changesets, lost);
    log_problem(client, "", ESTALE, text, NULL);
}

/* Drop the connection; the closed handler plans the next attempt. */
static void drop_connection(sync_client *client, const char *reason)
{
    if (!client->gave_up)
        set_state(client, SYNC_STATE_OFFLINE, reason);
    if (client->connection)
        sync_transport_close(client->connection);
}

static void handle_error(sync_client *client, const protocol_message *message)
{
    const protocol_error_body *error = &message->body.error;
    char reason[600];
    snprintf(reason, sizeof reason, "%s (%s): %s",
             message->session == 0 ? "connection error" : "session error",
             protocol_error_code_name(error->code), error->message);
    if (error->code == PROTOCOL_ERROR_COMPENSATING_WRITE) {
        revert_refused_write(client, error);
        return;
    }
    client->server_backoff_seconds = error->backoff_seconds;
    if (error->action == PROTOCOL_ACTION_CLIENT_RESET) {
        begin_client_reset(client, reason);
    } else if (!error->try_again) {
        give_up(client, reason);
    } else {
        log_problem(client, "", EAGAIN, reason, NULL);
    }
    /* A session-level error ends the session; the server closes the
     * connection itself after a connection-level one. */
    if (message->session != 0 && client->connection) {
        protocol_message unbind;
        protocol_message_init(&unbind, PROTOCOL_MESSAGE_UNBIND, SYNC_SESSION);
        send_message(client, &unbind, NULL);
        drop_connection(client, reason);
    }
}

static void session_bound(sync_client *client)
{
    client->bound = true;
    set_state(client, SYNC_STATE_CONNECTED, NULL);
}

static void handle_download(sync_client *client, const protocol_download_body *download)
{
    store_download_change *changes = NULL;
    size_t count = 0;
    int error = store_apply_download(client->store, download, &changes, &count);
    if (error) {
        char reason[600];
        snprintf(reason, sizeof reason, "cannot apply a download: %s", store_last_error());
        log_problem(client, "", -error, reason, NULL);
        drop_connection(client, reason);
        return;
    }
    if (count && client->changed)
        client->changed(changes, count, client->changed_context);
    if (client->resetting && download->last_in_batch) {
        store_sync_progress progress;
        if (store_get_sync_progress(client->store, &progress) == 0 &&
            !progress.client_reset_pending) {
            client->resetting = false;
            log_client_reset_outcome(client, changes, count);
        }
    }
    store_free_download_changes(changes, count);
    /* a working session: the next loss starts backing off afresh */
    client->backoff_ms = SYNC_BACKOFF_FIRST_MS;
    if (download->last_in_batch)
        forget_acknowledged(client, download->last_integrated_client_version);
    if (client->sent_query_version && download->query_version == client->sent_query_version)
        sync_status_set_bootstrap(client->status, download->query_version,
                                  download->last_in_batch ? 1.0 : download->progress_estimate);
}

/* The token replaces the one before (a renewal) for every next connection. */
static void keep_session_token(sync_client *client, const protocol_login_body *login)
{
    snprintf(client->session_token, sizeof client->session_token, "%s", login->token);
}

static void forget_session_token(sync_client *client)
{
    explicit_bzero(client->session_token, sizeof client->session_token);
}

static void handle_message(sync_client *client, const protocol_message *message)
{
    switch (message->type) {
    case PROTOCOL_MESSAGE_LOGIN:
        keep_session_token(client, &message->body.login);
        break;
    case PROTOCOL_MESSAGE_IDENT:
        if (store_set_file_identity(client->store, message->body.ident.file_identity) == 0) {
            session_bound(client);
        } else {
            char reason[600];
            snprintf(reason, sizeof reason, "cannot keep the file identity: %s",
                     store_last_error());
            give_up(client, reason);
            drop_connection(client, reason);
        }
        break;
    case PROTOCOL_MESSAGE_DOWNLOAD:
        handle_download(client, &message->body.download);
        break;
    case PROTOCOL_MESSAGE_QUERY_ERROR: {
        const protocol_query_error_body *refusal = &message->body.query_error;
        store_set_query_result(client->store, refusal->query_version, false, refusal->message);
        if (refusal->query_version == client->sent_query_version)
            sync_status_set_bootstrap(client->status, refusal->query_version, 1.0);
        break;
    }
    case PROTOCOL_MESSAGE_MARK:
        sync_status_set_mark_answered(client->status, message->body.mark.request);
        break;
    case PROTOCOL_MESSAGE_SCHEMA:
        handle_schema(client, &message->body.schema);
        break;
    case PROTOCOL_MESSAGE_ERROR:
        handle_error(client, message);
        break;
    default: /* pong and unbound: having received them is enough */
        break;
    }
}

static void on_received(sync_transport_connection *connection, const char *text, size_t length,
                        void *context)
{
    (void)connection;
    sync_client *client = context;
    client->last_received_ms = now_ms();
    protocol_message message;
    protocol_error error;
    if (protocol_read_received(text, length, &message, &error) != 0) {
        char reason[400];
        snprintf(reason, sizeof reason, "the server sent a message this client cannot read: %s",
                 error.message);
        log_problem(client, "", EPROTO, reason, NULL);
        drop_connection(client, reason);
        return;
    }
    if (!protocol_sent_by(message.type, PROTOCOL_SERVER) ||
        (message.session != 0 && message.session != SYNC_SESSION)) {
        char reason[200];
        snprintf(reason, sizeof reason, "the server sent an unexpected %s message",
                 protocol_message_type_name(message.type));
        log_problem(client, "", EPROTO, reason, NULL);
        drop_connection(client, reason);
    } else {
        handle_message(client, &message);
    }
    protocol_message_clear(&message);
}

/* ---- the connection -------------------------------------------------- */

static void on_connected(sync_transport_connection *connection, void *context)
{
    (void)connection;
    sync_client *client = context;
    int64_t now = now_ms();
    client->last_received_ms = now;
    client->last_ping_ms = now;
    store_sync_progress progress;
    int error = store_get_sync_progress(client->store, &progress);
    if (!error)
        error = store_discard_staged_downloads(client->store);
    if (error) {
        char reason[600];
        snprintf(reason, sizeof reason, "cannot read the sync state: %s", store_last_error());
        drop_connection(client, reason);
        return;
    }
    client->uploaded_through = progress.last_acknowledged_client_version;
    client->resetting = progress.client_reset_pending;
    client->in_flight_count = client->in_flight_bytes = client->in_flight_changesets = 0;
    client->sent_query_version = 0;
    client->query_needs_new_version =
        progress.subscriptions_version > progress.accepted_query_version &&
        progress.subscriptions_version > progress.refused_query_version;
    sync_status_snapshot snapshot;
    sync_status_get(client->status, &snapshot);
    client->sent_mark = snapshot.mark_answered;
    send_bind(client, &progress);
    if (progress.file_identity)
        session_bound(client);
}

/* Jittered exponential backoff, or the server's hint when longer. */
static int next_retry_delay_ms(sync_client *client)
{
    client->jitter_state ^= client->jitter_state << 13;
    client->jitter_state ^= client->jitter_state >> 7;
    client->jitter_state ^= client->jitter_state << 17;
    double jitter = 0.75 + 0.5 * (double)(client->jitter_state % 10001) / 10000.0;
    double delay = client->backoff_ms * jitter;
    double hint = client->server_backoff_seconds * 1000.0;
    client->server_backoff_seconds = 0;
    if (client->backoff_ms < SYNC_BACKOFF_MAX_MS)
        client->backoff_ms = client->backoff_ms * 2 < SYNC_BACKOFF_MAX_MS
                                 ? client->backoff_ms * 2 : SYNC_BACKOFF_MAX_MS;
    return (int)(hint > delay ? hint : delay);
}

static bool is_anonymous_login(const char *authorization)
{
    return authorization && strcasecmp(authorization, "Anonymous") == 0;
}

/* The server refused the session token (expired, purged, user disabled):
 * log in with the credential again at once, unless it is anonymous,
 * which would make the mount another user. */
static void session_token_refused(sync_client *client, const char *reason)
{
    char text[SYNC_STATUS_TEXT_MAX];
    forget_session_token(client);
    if (is_anonymous_login(client->authorization)) {
        snprintf(text, sizeof text, "the server refused the session token of this anonymous "
                 "mount (HTTP 401): %s; an anonymous mount cannot log in as the same user "
                 "again: mount again to sync as a new anonymous user", reason);
        give_up(client, text);
        return;
    }
    snprintf(text, sizeof text, "the server refused the session token (HTTP 401): %s; logging "
             "in again with the mount's credentials", reason);
    log_problem(client, "", EACCES, text, NULL);
    client->retry_at_ms = now_ms();
    set_state(client, SYNC_STATE_OFFLINE, text);
}

static void on_closed(sync_transport_connection *connection, int close_code, int http_status,
                      const char *reason, void *context)
{
    (void)connection;
    sync_client *client = context;
    client->connection = NULL;
    client->bound = false;
    if (atomic_load(&client->stopping))
        return;
    if (client->gave_up)
        return;
    char text[SYNC_STATUS_TEXT_MAX];
    if (http_status == 401 && client->connected_with_token) {
        session_token_refused(client, reason);
        return;
    }
    if (http_status == 400 || http_status == 401 || http_status == 403 || http_status == 404) {
        snprintf(text, sizeof text, "the server refused the connection (HTTP %d): %s",
                 http_status, reason);
        give_up(client, text);
        return;
    }
    if (http_status)
        snprintf(text, sizeof text, "HTTP %d: %s", http_status, reason);
    else if (close_code)
        snprintf(text, sizeof text, "closed by the server (%d): %s", close_code, reason);
    else
        snprintf(text, sizeof text, "%s", reason);
    client->retry_at_ms = now_ms() + next_retry_delay_ms(client);
    set_state(client, SYNC_STATE_OFFLINE, text);
}

static const sync_transport_handlers client_handlers = {
    .connected = on_connected,
    .received = on_received,
    .closed = on_closed,
};

static void open_connection(sync_client *client)
{
    char message[SYNC_STATUS_TEXT_MAX];
    set_state(client, SYNC_STATE_CONNECTING, NULL);
    client->last_received_ms = now_ms(); /* a connection attempt gets as long as silence */
    char bearer[sizeof "Bearer " + AUTH_SESSION_TOKEN_SIZE];
    client->connected_with_token = client->session_token[0] != '\0';
    if (client->connected_with_token)
        snprintf(bearer, sizeof bearer, "Bearer %s", client->session_token);
    int error = sync_transport_connect(client->transport, client->server_url, client->app_id,
                                       client->connected_with_token ? bearer
                                                                    : client->authorization,
                                       &client_handlers, client, &client->connection, message,
                                       sizeof message);
    explicit_bzero(bearer, sizeof bearer);
    if (error == -EINVAL) {
        give_up(client, message);
    } else if (error) {
        client->connection = NULL;
        client->retry_at_ms = now_ms() + next_retry_delay_ms(client);
        set_state(client, SYNC_STATE_OFFLINE, message);
    }
}

static void wake_transport(void *context)
{
    sync_transport_wake(context);
}

static int new_transport(sync_client *client, char *message, size_t message_size)
{
    int error = open_transport(client->ca_file, &client->transport, message, message_size);
    if (!error)
        sync_status_set_waker(client->status, wake_transport, client->transport);
    return error;
}

/* A connection that went silent may hang on a dead peer for as long as
 * TCP tries: drop it with the whole transport, which closes without
 * waiting, and start a new one. */
static void abandon_silent_connection(sync_client *client)
{
    char message[SYNC_STATUS_TEXT_MAX];
    sync_status_set_waker(client->status, NULL, NULL);
    sync_transport_free(client->transport);
    client->transport = NULL;
    client->connection = NULL;
    client->bound = false;
    client->retry_at_ms = now_ms() + next_retry_delay_ms(client);
    set_state(client, SYNC_STATE_OFFLINE, "the server stopped answering");
    if (new_transport(client, message, sizeof message) != 0)
        give_up(client, message);
}

/* How long the event loop may wait before something is due. */
static int service_timeout_ms(const sync_client *client, int64_t now)
{
    int64_t due = now + SYNC_IDLE_SERVICE_MS;
    if (!client->connection && !client->gave_up && client->retry_at_ms < due)
        due = client->retry_at_ms;
    /* The other timers serve a bound session (send_due_messages sets
     * them); once it is lost they are stale, and a due time in the past
     * would make the loop spin instead of waiting for the retry. */
    if (!client->bound)
        return due <= now ? 0 : (int)(due - now);
    if (client->last_ping_ms + PROTOCOL_PING_INTERVAL_SECONDS * 1000 < due)
        due = client->last_ping_ms + PROTOCOL_PING_INTERVAL_SECONDS * 1000;
    if (client->held_delete_recheck_ms && client->held_delete_recheck_ms < due)
        due = client->held_delete_recheck_ms;
    if (client->subscriptions_recheck_ms && client->subscriptions_recheck_ms < due)
        due = client->subscriptions_recheck_ms;
    return due <= now ? 0 : (int)(due - now);
}

/* After sync_client_stop: keep going while the outbox may still reach the
 * server before the deadline. */
static bool still_draining(sync_client *client, int64_t now)
{
    if (!client->connection || now >= atomic_load(&client->drain_deadline_ms))
        return false;
    store_sync_progress progress;
    return store_get_sync_progress(client->store, &progress) == 0 &&
           progress.outbox_changesets > 0;
}

/* At the end: a close frame, so the server forgets the session at once. */
static void close_politely(sync_client *client)
{
    if (!client->connection)
        return;
    sync_transport_close(client->connection);
    int64_t deadline = now_ms() + SYNC_CLOSE_WAIT_MS;
    for (int64_t now = now_ms(); client->connection && now < deadline; now = now_ms())
        if (sync_transport_service(client->transport, (int)(deadline - now)) != 0)
            break;
}

static void *sync_thread_main(void *argument)
{
    sync_client *client = argument;
    char message[SYNC_STATUS_TEXT_MAX];
    if (new_transport(client, message, sizeof message) != 0) {
        give_up(client, message);
        return NULL;
    }
    for (;;) {
        int64_t now = now_ms();
        if (atomic_load(&client->stopping)) {
            if (!still_draining(client, now))
                break;
        } else if (!client->connection && !client->gave_up && now >= client->retry_at_ms) {
            open_connection(client);
        }
        if (client->connection && now - client->last_received_ms > SYNC_SILENCE_LIMIT_MS) {
            abandon_silent_connection(client);
            if (!client->transport)
                break;
            continue;
        }
        if (client->bound) {
            send_ping_if_due(client, now);
            send_due_messages(client, now);
        }
        if (sync_transport_service(client->transport, service_timeout_ms(client, now)) != 0) {
            give_up(client, "the connection's event loop failed");
            break;
        }
    }
    close_politely(client);
    sync_status_set_waker(client->status, NULL, NULL);
    sync_transport_free(client->transport);
    client->transport = NULL;
    client->connection = NULL;
    if (!client->gave_up)
        set_state(client, SYNC_STATE_DISABLED, NULL);
    return NULL;
}

/* ---- the public functions -------------------------------------------- */

static void free_client(sync_client *client)
{
    forget_session_token(client);
    if (client->authorization) {
        explicit_bzero(client->authorization, strlen(client->authorization));
        free(client->authorization);
    }
    free(client->server_url);
    free(client->app_id);
    free(client->ca_file);
    free(client->mountpoint);
    free(client->in_flight);
    free(client);
}

int sync_client_start(const sync_client_options *options, store *store, error_log *errors,
                      sync_status *status, const sync_client_listener *listener,
                      sync_client **out, char *message, size_t message_size)
{
    *out = NULL;
    sync_client *client = calloc(1, sizeof *client);
    if (!client) {
        snprintf(message, message_size, "out of memory");
        return -ENOMEM;
    }
    client->server_url = strdup(options->server_url);
    client->app_id = strdup(options->app_id);
    client->authorization = copy_or_null(options->authorization);
    if (options->session_token)
        snprintf(client->session_token, sizeof client->session_token, "%s",
                 options->session_token);
    client->ca_file = copy_or_null(options->ca_file);
    client->mountpoint = strdup(options->mountpoint);
    client->store = store;
    client->errors = errors;
    client->status = status;
    client->changed = listener->changed;
    client->schema_changed = listener->schema_changed;
    client->changed_context = listener->context;
    client->backoff_ms = SYNC_BACKOFF_FIRST_MS;
    client->upload_batch_limit = SYNC_UPLOAD_MAX_CHANGESETS;
    client->jitter_state = (uint64_t)now_ms() * 2654435761u ^ (uint64_t)getpid() ^ 1;
    atomic_init(&client->stopping, false);
    atomic_init(&client->drain_deadline_ms, 0);
    if (!client->server_url || !client->app_id || !client->mountpoint ||
        (options->authorization && !client->authorization) ||
        (options->ca_file && !client->ca_file)) {
        free_client(client);
        snprintf(message, message_size, "out of memory");
        return -ENOMEM;
    }
    int error = pthread_create(&client->thread, NULL, sync_thread_main, client);
    if (error) {
        free_client(client);
        snprintf(message, message_size, "cannot start the sync thread: %s", strerror(error));
        return -error;
    }
    *out = client;
    return 0;
}

void sync_client_stop(sync_client *client, int drain_ms, uint64_t *left)
{
    if (left)
        *left = 0;
    if (!client)
        return;
    atomic_store(&client->drain_deadline_ms, now_ms() + drain_ms);
    atomic_store(&client->stopping, true);
    sync_status_wake(client->status);
    pthread_join(client->thread, NULL);
    store_sync_progress progress;
    if (left && store_get_sync_progress(client->store, &progress) == 0)
        *left = progress.outbox_changesets;
    free_client(client);
}

/* ---- the login check -------------------------------------------------- */

typedef struct login_check {
    bool done;
    sync_login_result result;
    char *session_token;
    char *message;
    size_t message_size;
} login_check;

/* Accepted; the check ends with the login message. */
static void on_login_connected(sync_transport_connection *connection, void *context)
{
    (void)connection;
    login_check *check = context;
    check->result = SYNC_LOGIN_ACCEPTED;
}

static void on_login_received(sync_transport_connection *connection, const char *text,
                              size_t length, void *context)
{
    login_check *check = context;
    protocol_message message;
    protocol_error error;
    if (protocol_parse(text, length, &message, &error) != 0)
        return;
    if (message.type == PROTOCOL_MESSAGE_LOGIN) {
        snprintf(check->session_token, AUTH_SESSION_TOKEN_SIZE, "%s", message.body.login.token);
        explicit_bzero(message.body.login.token, strlen(message.body.login.token));
        sync_transport_close(connection);
    }
    protocol_message_clear(&message);
}

static void on_login_closed(sync_transport_connection *connection, int close_code,
                            int http_status, const char *reason, void *context)
{
    (void)connection;
    (void)close_code;
    login_check *check = context;
    check->done = true;
    if (check->result == SYNC_LOGIN_ACCEPTED)
        return;
    if (http_status == 401)
        snprintf(check->message, check->message_size,
                 "the server refused the login (HTTP 401): %s", reason);
    else if (http_status == 404)
        snprintf(check->message, check->message_size,
                 "the server does not serve this app (HTTP 404): check --app");
    else if (http_status)
        snprintf(check->message, check->message_size, "the server refused the connection "
                 "(HTTP %d): %s", http_status, reason);
    else
        snprintf(check->message, check->message_size, "cannot reach the server: %s", reason);
    check->result = http_status && http_status != 503 ? SYNC_LOGIN_REFUSED
                                                      : SYNC_LOGIN_UNREACHABLE;
}

static const sync_transport_handlers login_handlers = {
    .connected = on_login_connected,
    .received = on_login_received,
    .closed = on_login_closed,
};

sync_login_result sync_client_check_login(const sync_client_options *options, int timeout_ms,
                                          char session_token[AUTH_SESSION_TOKEN_SIZE],
                                          char *message, size_t message_size)
{
    session_token[0] = '\0';
    login_check check = {.result = SYNC_LOGIN_UNREACHABLE, .session_token = session_token,
                         .message = message, .message_size = message_size};
    snprintf(message, message_size, "the server did not answer within %d ms", timeout_ms);
    sync_transport *transport;
    if (open_transport(options->ca_file, &transport, message, message_size) != 0)
        return SYNC_LOGIN_UNREACHABLE;
    sync_transport_connection *connection;
    int error = sync_transport_connect(transport, options->server_url, options->app_id,
                                       options->authorization, &login_handlers, &check,
                                       &connection, message, message_size);
    if (error) {
        sync_transport_free(transport);
        return error == -EINVAL ? SYNC_LOGIN_REFUSED : SYNC_LOGIN_UNREACHABLE;
    }
    int64_t deadline = now_ms() + timeout_ms;
    for (int64_t now = now_ms(); !check.done && now < deadline; now = now_ms())
        if (sync_transport_service(transport, (int)(deadline - now)) != 0)
            break;
    sync_transport_free(transport);
    return check.done ? check.result
                      : check.result == SYNC_LOGIN_ACCEPTED ? SYNC_LOGIN_ACCEPTED
                                                            : SYNC_LOGIN_UNREACHABLE;
}

int sync_client_basic_authorization(const char *email, const char *password, char **out)
{
    *out = NULL;
    if (!*email || !*password || strchr(email, ':'))
        return -EINVAL;
    size_t credentials_size = strlen(email) + 1 + strlen(password) + 1;
    if (credentials_size > INT_MAX / 2)
        return -EINVAL;
    char *credentials = malloc(credentials_size);
    size_t header_size = sizeof "Basic " + 4 * (credentials_size / 3 + 1) + 1;
    char *header = malloc(header_size);
    int error = credentials && header ? 0 : -ENOMEM;
    if (!error) {
        size_t email_length = strlen(email);
        memcpy(credentials, email, email_length);
        credentials[email_length] = ':';
        memcpy(credentials + email_length + 1, password, strlen(password) + 1);
        memcpy(header, "Basic ", 6);
        if (lws_b64_encode_string(credentials, (int)strlen(credentials), header + 6,
                                  (int)(header_size - 6)) < 0)
            error = -ENOMEM;
    }
    if (credentials) {
        explicit_bzero(credentials, credentials_size);
        free(credentials);
    }
    if (error) {
        if (header)
            explicit_bzero(header, header_size);
        free(header);
        return error;
    }
    *out = header;
    return 0;
}

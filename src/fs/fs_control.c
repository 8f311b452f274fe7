/*
 * fs_control.c — contents of the generated files in .realmfs/.
 *
 * status is JSON describing the mount; `realmfs status`, `realmfs unmount`
 * and `realmfs query` read it to find the daemon and its data directory, so
 * its "pid" and "data" fields are part of the CLI's contract, and so is the
 * "sync" member that `realmfs wait` polls (docs/mount.md describes it).
 * Building it never waits for the sync thread: what the status shows comes
 * from the store and from a snapshot of sync_status.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "realmfs/ejson.h"
#include "sync_status.h"

typedef struct collection_walk {
    fs_context *fs;
    json_t *list;
    uint64_t total;
    int error;
} collection_walk;

static int describe_collection(const char *name, void *context)
{
    collection_walk *walk = context;
    uint64_t count = 0;
    int error = store_count_objects(walk->fs->store, name, &count);
    if (error) {
        walk->error = error;
        return 1;
    }
    char *schema_text = NULL;
    size_t schema_size = 0;
    bool has_schema = store_get_schema(walk->fs->store, name, &schema_text, &schema_size) == 0;
    free(schema_text);
    walk->total += count;
    json_t *entry = json_pack("{s:s, s:I, s:b}", "name", name, "objects", (json_int_t)count,
                              "schema", has_schema);
    if (!entry || json_array_append_new(walk->list, entry) != 0) {
        walk->error = -ENOMEM;
        return 1;
    }
    return 0;
}

typedef struct subscription_walk {
    json_t *list;
    const char *state;
} subscription_walk;

static int describe_subscription(const char *collection, const char *name, const char *query,
                                 void *context)
{
    subscription_walk *walk = context;
    json_t *entry = json_pack("{s:s, s:s, s:s, s:s}", "collection", collection, "name", name,
                              "query", query, "state", walk->state);
    return !entry || json_array_append_new(walk->list, entry) != 0 ? -ENOMEM : 0;
}

/* The state of the subscription set written last: the server has applied
 * its bootstrap (complete), refused it (error, while the set it accepted
 * before stays in effect), is sending its bootstrap, or has not had it. */
static const char *subscription_set_state(const store_sync_progress *progress,
                                          const sync_status_snapshot *connection)
{
    if (progress->accepted_query_version >= progress->subscriptions_version)
        return "complete";
    if (progress->refused_query_version >= progress->subscriptions_version)
        return "error";
    if (connection->state == SYNC_STATE_CONNECTED &&
        connection->sent_query_version >= progress->subscriptions_version)
        return "bootstrapping";
    return "pending";
}

/* The "sync" member of the status: on a mount without a server, only the
 * state "disabled". */
static int describe_sync(fs_context *fs, json_t **out)
{
    if (!fs->sync_status) {
        *out = json_pack("{s:s}", "state", sync_status_state_name(SYNC_STATE_DISABLED));
        return *out ? 0 : -ENOMEM;
    }
    sync_status_snapshot connection;
    sync_status_get(fs->sync_status, &connection);
    store_sync_progress progress;
    int error = store_get_sync_progress(fs->store, &progress);
    if (error)
        return error;
    const char *set_state = subscription_set_state(&progress, &connection);
    subscription_walk walk = {.list = json_array(), .state = set_state};
    if (!walk.list)
        return -ENOMEM;
    error = store_list_subscriptions(fs->store, describe_subscription, &walk);
    if (error) {
        json_decref(walk.list);
        return error;
    }
    double bootstrap = strcmp(set_state, "complete") == 0        ? 1.0
                       : strcmp(set_state, "bootstrapping") == 0 ? connection.bootstrap_progress
                                                                 : 0.0;
    *out = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:f,"
        " s:{s:I, s:I}, s:o}",
        "state", sync_status_state_name(connection.state),
        "last_error", connection.last_error,
        "server", connection.server_url,
        "app", connection.app_id,
        "user", connection.user,
        "file_identity", (json_int_t)progress.file_identity,
        "last_server_version", (json_int_t)progress.last_server_version,
        "pending_uploads", (json_int_t)progress.outbox_changesets,
        "read_only_objects", (json_int_t)progress.read_only_objects,
        "rejected_writes", (json_int_t)progress.rejected_writes,
        "subscriptions_version", (json_int_t)progress.subscriptions_version,
        "accepted_query_version", (json_int_t)progress.accepted_query_version,
        "refused_query_version", (json_int_t)progress.refused_query_version,
        "query_error", progress.query_error,
        "query_state", set_state,
        "bootstrap_progress", bootstrap,
        "marks", "requested", (json_int_t)connection.mark_requested,
                 "answered", (json_int_t)connection.mark_answered,
        "subscriptions", walk.list);
    return *out ? 0 : -ENOMEM;
}

int fs_control_status_text(fs_context *fs, char **text, size_t *size)
{
    collection_walk walk = {.fs = fs, .list = json_array()};
    if (!walk.list)
        return -ENOMEM;
    int error = store_list_collections(fs->store, describe_collection, &walk);
    if (error == 1)
        error = walk.error;
    store_statistics statistics = {0};
    if (!error)
        error = store_get_statistics(fs->store, &statistics);
    json_t *sync = NULL;
    if (!error)
        error = describe_sync(fs, &sync);
    if (error) {
        json_decref(walk.list);
        return error;
    }
    char mounted_at[40];
    if (ejson_format_iso_date(fs->mounted_ns / 1000000, mounted_at, sizeof mounted_at) != 0)
        mounted_at[0] = '\0';
    json_t *status = json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:I, s:{s:I, s:I}, s:I, s:o}",
        "mode", fs->sync_status ? "synced" : "local",
        "mountpoint", fs->mountpoint,
        "data", fs->data_directory,
        "pid", (json_int_t)getpid(),
        "version", REALMFS_VERSION,
        "mounted_at", mounted_at,
        "collections", walk.list,
        "objects", (json_int_t)walk.total,
        "store", "file_bytes", (json_int_t)statistics.file_bytes,
                 "used_bytes", (json_int_t)statistics.used_bytes,
        "errors", (json_int_t)error_log_count(fs->errors),
        "sync", sync);
    if (!status)
        return -ENOMEM;
    *text = json_dumps(status, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(status);
    if (!*text)
        return -ENOMEM;
    size_t length = strlen(*text);
    char *with_newline = realloc(*text, length + 2);
    if (!with_newline) {
        free(*text);
        return -ENOMEM;
    }
    with_newline[length] = '\n';
    with_newline[length + 1] = '\0';
    *text = with_newline;
    *size = length + 1;
    return 0;
}

int fs_control_errors_text(fs_context *fs, char **text, size_t *size)
{
    return error_log_read(fs->errors, text, size);
}

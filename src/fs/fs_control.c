/*
 * fs_control.c — contents of the generated files in .realmfs/.
 *
 * status is JSON describing the mount; `realmfs status`, `realmfs unmount`
 * and `realmfs query` read it to find the daemon and its data directory, so
 * its "pid" and "data" fields are part of the CLI's contract.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "realmfs/ejson.h"

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
    if (error) {
        json_decref(walk.list);
        return error;
    }
    char mounted_at[40];
    if (ejson_format_iso_date(fs->mounted_ns / 1000000, mounted_at, sizeof mounted_at) != 0)
        mounted_at[0] = '\0';
    json_t *status = json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:I, s:{s:I, s:I}, s:I}",
        "mode", "local",
        "mountpoint", fs->mountpoint,
        "data", fs->data_directory,
        "pid", (json_int_t)getpid(),
        "version", REALMFS_VERSION,
        "mounted_at", mounted_at,
        "collections", walk.list,
        "objects", (json_int_t)walk.total,
        "store", "file_bytes", (json_int_t)statistics.file_bytes,
                 "used_bytes", (json_int_t)statistics.used_bytes,
        "errors", (json_int_t)error_log_count(fs->errors));
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

/*
 * export_app.c — `realmfs-server export-app` (see export_app.h).
 *
 * The app is loaded twice: as exported, and as the server runs it (with
 * sync_schema_open applying what Development Mode learned).  The export
 * is copied file by file, and then what differs between the two is
 * written over the copy, so that nothing else in the export changes.
 */
#include "export_app.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_file.h"
#include "realmfs/app_config.h"
#include "sync_schema.h"

enum { EXPORT_APP_COPY_BUFFER_SIZE = 64 * 1024 };

/* Where a failure is described, and the path (relative to the export) of
 * the entry being copied, for that description. */
typedef struct export_app_copy {
    char *message;
    size_t message_size;
    char path[PATH_MAX];
} export_app_copy;

/* Every message is "<subject>: <problem>", the subject mostly a path. */
static int export_app_fail(char *message, size_t message_size, int error, const char *subject,
                           const char *problem)
{
    if (message_size > 0)
        snprintf(message, message_size, "%s: %s", subject, problem);
    return error;
}

/* errno as the result, and the message "<path>: <strerror>". */
static int export_app_fail_errno(char *message, size_t message_size, const char *path)
{
    int error = errno;
    return export_app_fail(message, message_size, -error, path, strerror(error));
}

/* ------------------------------------------------------------------------ */
/* Copying the export                                                       */

static int export_app_copy_bytes(int source, int target)
{
    char buffer[EXPORT_APP_COPY_BUFFER_SIZE];
    for (;;) {
        ssize_t count = read(source, buffer, sizeof buffer);
        if (count < 0 && errno == EINTR)
            continue;
        if (count <= 0)
            return count == 0 ? 0 : -errno;
        for (ssize_t done = 0; done < count;) {
            ssize_t written = write(target, buffer + done, (size_t)(count - done));
            if (written < 0 && errno != EINTR)
                return -errno;
            done += written > 0 ? written : 0;
        }
    }
}

static int export_app_copy_file(export_app_copy *copy, int source_directory,
                                int target_directory, const char *name, mode_t mode)
{
    int source = openat(source_directory, name, O_RDONLY | O_CLOEXEC);
    if (source < 0)
        return export_app_fail_errno(copy->message, copy->message_size, copy->path);
    int target = openat(target_directory, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                        mode & 0777);
    int result = target < 0 ? -errno : export_app_copy_bytes(source, target);
    if (target >= 0 && close(target) != 0 && result == 0)
        result = -errno;
    close(source);
    if (result != 0)
        return export_app_fail(copy->message, copy->message_size, result, copy->path,
                               strerror(-result));
    return 0;
}

static int export_app_copy_link(export_app_copy *copy, int source_directory,
                                int target_directory, const char *name)
{
    char target[PATH_MAX];
    ssize_t length = readlinkat(source_directory, name, target, sizeof target - 1);
    if (length < 0)
        return export_app_fail_errno(copy->message, copy->message_size, copy->path);
    target[length] = '\0';
    if (symlinkat(target, target_directory, name) != 0)
        return export_app_fail_errno(copy->message, copy->message_size, copy->path);
    return 0;
}

static int export_app_copy_tree(export_app_copy *copy, int source_directory,
                                int target_directory);

static int export_app_copy_subdirectory(export_app_copy *copy, int source_directory,
                                        int target_directory, const char *name, mode_t mode)
{
    if (mkdirat(target_directory, name, (mode & 0777) | 0700) != 0)
        return export_app_fail_errno(copy->message, copy->message_size, copy->path);
    int source = openat(source_directory, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (source < 0)
        return export_app_fail_errno(copy->message, copy->message_size, copy->path);
    int target = openat(target_directory, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int result = target < 0 ? export_app_fail_errno(copy->message, copy->message_size, copy->path)
                            : export_app_copy_tree(copy, source, target);
    if (target >= 0)
        close(target);
    close(source);
    return result;
}

/* Copy one entry of source_directory, whose path copy->path names. */
static int export_app_copy_entry(export_app_copy *copy, int source_directory,
                                 int target_directory, const char *name)
{
    struct stat status;
    if (fstatat(source_directory, name, &status, AT_SYMLINK_NOFOLLOW) != 0)
        return export_app_fail_errno(copy->message, copy->message_size, copy->path);
    if (S_ISDIR(status.st_mode))
        return export_app_copy_subdirectory(copy, source_directory, target_directory, name,
                                            status.st_mode);
    if (S_ISREG(status.st_mode))
        return export_app_copy_file(copy, source_directory, target_directory, name,
                                    status.st_mode);
    if (S_ISLNK(status.st_mode))
        return export_app_copy_link(copy, source_directory, target_directory, name);
    return export_app_fail(copy->message, copy->message_size, -EINVAL, copy->path,
                           "not a file, directory or symbolic link");
}

/* Copy every entry of source_directory into target_directory. */
static int export_app_copy_tree(export_app_copy *copy, int source_directory, int target_directory)
{
    int listing = dup(source_directory);
    DIR *stream = listing < 0 ? NULL : fdopendir(listing);
    if (stream == NULL) {
        int result = export_app_fail_errno(copy->message, copy->message_size, copy->path);
        if (listing >= 0)
            close(listing);
        return result;
    }
    size_t length = strlen(copy->path);
    int result = 0;
    errno = 0;
    for (struct dirent *entry; result == 0 && (entry = readdir(stream)) != NULL; errno = 0) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        int written = snprintf(copy->path + length, sizeof copy->path - length, "%s%s",
                               length > 0 ? "/" : "", name);
        if (written < 0 || (size_t)written >= sizeof copy->path - length)
            result = export_app_fail(copy->message, copy->message_size, -ENAMETOOLONG,
                                     copy->path, "path is too long");
        else
            result = export_app_copy_entry(copy, source_directory, target_directory, name);
        copy->path[length] = '\0';
    }
    if (result == 0 && errno != 0)
        result = export_app_fail_errno(copy->message, copy->message_size, copy->path);
    closedir(stream);
    return result;
}

/* Make out_directory, or accept it when it exists and is empty. */
static int export_app_prepare_out(const char *out_directory, char *message, size_t message_size)
{
    if (mkdir(out_directory, 0755) == 0)
        return 0;
    if (errno != EEXIST)
        return export_app_fail_errno(message, message_size, out_directory);
    DIR *stream = opendir(out_directory);
    if (stream == NULL)
        return export_app_fail_errno(message, message_size, out_directory);
    bool empty = true;
    for (struct dirent *entry; empty && (entry = readdir(stream)) != NULL;)
        empty = strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0;
    closedir(stream);
    if (!empty)
        return export_app_fail(message, message_size, -EEXIST, out_directory,
                               "exists and is not empty");
    return 0;
}

/* A copy into the export itself would copy itself again without end. */
static int export_app_check_outside(const char *app_directory, const char *out_directory,
                                    char *message, size_t message_size)
{
    char app[PATH_MAX], out[PATH_MAX];
    if (realpath(app_directory, app) == NULL)
        return export_app_fail_errno(message, message_size, app_directory);
    if (realpath(out_directory, out) == NULL)
        return export_app_fail_errno(message, message_size, out_directory);
    size_t length = strlen(app);
    if (strncmp(app, out, length) == 0 && (out[length] == '/' || out[length] == '\0'))
        return export_app_fail(message, message_size, -EINVAL, out_directory,
                               "is inside the app export");
    return 0;
}

static int export_app_copy_export(const char *app_directory, const char *out_directory,
                                  char *message, size_t message_size)
{
    int result = export_app_check_outside(app_directory, out_directory, message, message_size);
    if (result != 0)
        return result;
    int source = open(app_directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (source < 0)
        return export_app_fail_errno(message, message_size, app_directory);
    int target = open(out_directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (target < 0) {
        result = export_app_fail_errno(message, message_size, out_directory);
    } else {
        export_app_copy copy = {.message = message, .message_size = message_size};
        result = export_app_copy_tree(&copy, source, target);
        close(target);
    }
    close(source);
    return result;
}

/* ------------------------------------------------------------------------ */
/* What Development Mode learned                                            */

static int export_app_make_directory(const char *path, char *message, size_t message_size)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return export_app_fail_errno(message, message_size, path);
}

static int export_app_write_schema(const app_collection *collection, const char *out_directory,
                                   char *message, size_t message_size)
{
    char database[PATH_MAX], directory[PATH_MAX], file[PATH_MAX];
    int length = snprintf(database, sizeof database, "%s/data_sources/%s/%s", out_directory,
                          collection->service, collection->database);
    int directory_length = snprintf(directory, sizeof directory, "%s/%s", database,
                                    collection->directory);
    int file_length = snprintf(file, sizeof file, "%s/schema.json", directory);
    if (length < 0 || directory_length < 0 || file_length < 0 || (size_t)file_length >= sizeof file)
        return export_app_fail(message, message_size, -ENAMETOOLONG, directory,
                               "path is too long");
    int result = export_app_make_directory(database, message, message_size);
    if (result == 0)
        result = export_app_make_directory(directory, message, message_size);
    if (result == 0)
        result = json_file_write(file, collection->schema, JSON_INDENT(4) | JSON_SORT_KEYS,
                                 message, message_size);
    return result;
}

/* The schema of every collection that has one the export lacks. */
static int export_app_write_schemas(const app_config *exported, const app_config *running,
                                    const char *out_directory, char *message,
                                    size_t message_size)
{
    size_t count = app_config_collection_count(running);
    for (size_t i = 0; i < count; i++) {
        const app_collection *collection = app_config_collection_at(running, i);
        const app_collection *original = app_config_find_collection(exported, collection->name);
        const json_t *original_schema = original != NULL ? original->schema : NULL;
        if (collection->schema == NULL
            || (original_schema != NULL
                && json_equal((json_t *)original_schema, (json_t *)collection->schema)))
            continue;
        int result = export_app_write_schema(collection, out_directory, message, message_size);
        if (result != 0)
            return result;
    }
    return 0;
}

/* Fields are only ever added, after the export's own, so a longer list is
 * a changed one. */
static int export_app_write_queryable_fields(const app_config *exported,
                                             const app_config *running,
                                             const char *out_directory, char *message,
                                             size_t message_size)
{
    size_t count = app_config_queryable_field_count(running);
    if (count == app_config_queryable_field_count(exported))
        return 0;
    char file[PATH_MAX];
    if (snprintf(file, sizeof file, "%s/sync/config.json", out_directory) >= (int)sizeof file)
        return export_app_fail(message, message_size, -ENAMETOOLONG, out_directory,
                               "path is too long");
    json_t *config;
    int result = json_file_read(file, &config, message, message_size);
    if (result != 0)
        return result;
    json_t *fields = json_array();
    for (size_t i = 0; fields != NULL && i < count; i++) {
        if (json_array_append_new(fields, json_string(app_config_queryable_field_at(running, i)))
            != 0) {
            json_decref(fields);
            fields = NULL;
        }
    }
    if (fields == NULL || json_object_set_new(config, "queryable_fields_names", fields) != 0)
        result = export_app_fail(message, message_size, -ENOMEM, file, "out of memory");
    else
        result = json_file_write(file, config, JSON_INDENT(4), message, message_size);
    json_decref(config);
    return result;
}

/* ------------------------------------------------------------------------ */
/* The command                                                              */

/* Load the export, and with running also apply what was learned. */
static int export_app_load(const char *app_directory, const char *data_directory,
                           bool running, app_config **app, char *message, size_t message_size)
{
    char problem[1024];
    int result = app_config_load(app_directory, app, problem, sizeof problem);
    if (result != 0)
        return export_app_fail(message, message_size, result, app_directory, problem);
    if (!running)
        return 0;
    sync_schema *schema;
    result = sync_schema_open(*app, data_directory, &schema, problem, sizeof problem);
    sync_schema_close(schema);
    if (result != 0)
        return export_app_fail(message, message_size, result,
                               "cannot read what Development Mode learned", problem);
    return 0;
}

int export_app_write(const char *app_directory, const char *data_directory,
                     const char *out_directory, char *message, size_t message_size)
{
    if (message_size > 0)
        message[0] = '\0';
    app_config *exported = NULL;
    app_config *running = NULL;
    struct stat status;
    int result = stat(data_directory, &status) == 0
                     ? 0
                     : export_app_fail_errno(message, message_size, data_directory);
    if (result == 0)
        result = export_app_load(app_directory, data_directory, false, &exported, message,
                                 message_size);
    if (result == 0)
        result = export_app_load(app_directory, data_directory, true, &running, message,
                                 message_size);
    if (result == 0)
        result = export_app_prepare_out(out_directory, message, message_size);
    if (result == 0)
        result = export_app_copy_export(app_directory, out_directory, message, message_size);
    if (result == 0)
        result = export_app_write_schemas(exported, running, out_directory, message,
                                          message_size);
    if (result == 0)
        result = export_app_write_queryable_fields(exported, running, out_directory, message,
                                                   message_size);
    app_config_free(running);
    app_config_free(exported);
    return result;
}

/*
 * fs_ops.c — the FUSE low-level operation handlers of a mount.
 *
 * The tree (docs/mount.md):
 *   /                         collections, and .realmfs
 *   /<Collection>/<_id>.json  objects; any other name is a scratch file
 *   /.realmfs/status, errors  generated, read-only
 *   /.realmfs/schema/<Collection>.json   App Services schemas
 *
 * Objects and schemas are "documents": each open handle that writes keeps
 * a private draft, and the draft is validated and committed to the store
 * when the handle is flushed (every close()) or fsync'd.  A draft that
 * fails validation fails that close()/fsync() with EINVAL, leaves the
 * stored version untouched, and is recorded in .realmfs/errors.
 *
 * Scratch files (editor swap and backup files, sed's temporary file, ...)
 * are ordinary files kept under <data>/scratch/ and passed through.
 *
 * On a synced mount some documents are read-only (docs/sync.md): objects
 * the server says the user may not write, and the server's schemas
 * outside Development Mode.  They show mode 0444, and everything that
 * would change them fails with EACCES before anything is stored or
 * queued, so an editor warns before the user types.
 *
 * All handlers run on the FUSE thread (see fs.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "realmfs/ejson.h"
#include "realmfs/object_name.h"
#include "realmfs/schema.h"
#include "realmfs/value.h"
#include "sync_status.h"

#define SCHEMA_SCRATCH_DIRECTORY ".schema"
#define SUBSCRIPTIONS_SCRATCH_DIRECTORY ".subscriptions"
#define REJECTED_CONTENT_LIMIT (64 * 1024)
/* readdir cookies at or above this continue the walk over stored objects */
#define READDIR_OBJECTS_BASE ((off_t)1 << 40)

static fs_context *context_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static fs_handle *handle_of(struct fuse_file_info *fi)
{
    return (fs_handle *)(uintptr_t)fi->fh;
}

static int64_t now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static struct timespec timespec_of_ns(int64_t ns)
{
    return (struct timespec){.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
}

static bool is_document_kind(fs_node_kind kind)
{
    return kind == FS_NODE_OBJECT || kind == FS_NODE_SCHEMA || kind == FS_NODE_SUBSCRIPTION;
}

/* A collection name: what MongoDB accepts and a directory can show. */
static bool collection_name_is_valid(const char *name)
{
    size_t length = strlen(name);
    return length > 0 && length <= 250 && name[0] != '.' && !strchr(name, '$') &&
           strncmp(name, "system.", 7) != 0;
}

/* The stem of "<Collection>.json" in the schema directory, or NULL. */
static char *schema_collection_of(const char *name)
{
    size_t length = strlen(name);
    if (length <= 5 || strcmp(name + length - 5, ".json") != 0)
        return NULL;
    char *collection = strndup(name, length - 5);
    if (collection && !collection_name_is_valid(collection)) {
        free(collection);
        return NULL;
    }
    return collection;
}

/* Path of a node as the user sees it, relative to the mountpoint. */
static void user_path(const fs_node *node, char *out, size_t size)
{
    if (node->kind == FS_NODE_SCHEMA || (node->kind == FS_NODE_SCRATCH && !node->collection))
        snprintf(out, size, FS_CONTROL_DIR "/schema/%s", node->name);
    else if (node->kind == FS_NODE_SUBSCRIPTION)
        snprintf(out, size, FS_CONTROL_DIR "/subscriptions/%s/%s", node->collection, node->name);
    else
        snprintf(out, size, "%s/%s", node->collection, node->name);
}

/* The directory, relative to <data>/scratch, holding the scratch files of
 * dir.  Names starting with '.' are no collection's, so they cannot clash. */
static void scratch_directory(const fs_node *dir, char *out, size_t size)
{
    if (dir->kind == FS_NODE_SCHEMA_DIR)
        snprintf(out, size, SCHEMA_SCRATCH_DIRECTORY);
    else if (dir->kind == FS_NODE_SUBSCRIPTION_DIR)
        snprintf(out, size, SUBSCRIPTIONS_SCRATCH_DIRECTORY "/%s", dir->collection);
    else
        snprintf(out, size, "%s", dir->name);
}

/* Backing path, relative to <data>/scratch, of a scratch name in dir. */
static void scratch_path(const fs_node *dir, const char *name, char *out, size_t size)
{
    scratch_directory(dir, out, size);
    size_t used = strlen(out);
    snprintf(out + used, size - used, "/%s", name);
}

static int ensure_scratch_directory(fs_context *fs, const fs_node *dir)
{
    if (dir->kind == FS_NODE_SUBSCRIPTION_DIR &&
        mkdirat(fs->scratch_directory_fd, SUBSCRIPTIONS_SCRATCH_DIRECTORY, 0700) != 0 &&
        errno != EEXIST)
        return -errno;
    char directory[PATH_MAX];
    scratch_directory(dir, directory, sizeof directory);
    if (mkdirat(fs->scratch_directory_fd, directory, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static void record_rejection(fs_context *fs, const fs_node *node, const char *operation,
                             const char *reason, const char *content, size_t size)
{
    char path[PATH_MAX];
    user_path(node, path, sizeof path);
    json_t *extra = NULL;
    if (content && size <= REJECTED_CONTENT_LIMIT) {
        json_t *text = json_stringn(content, size);  /* NULL when not UTF-8 */
        if (text)
            extra = json_pack("{s:o}", "content", text);
    }
    error_log_append(fs->errors, path, operation, EINVAL, reason, extra);
    json_decref(extra);
}

/* ---------------------------------------------------------------------
 * Documents: loading, validating and committing objects and schemas
 * --------------------------------------------------------------------- */

static int load_document(fs_context *fs, const fs_node *node, char **text, size_t *size,
                         store_object_info *info)
{
    *info = (store_object_info){0};
    if (node->pending) {
        *text = strdup("");
        *size = 0;
        return *text ? 0 : -ENOMEM;
    }
    if (node->kind == FS_NODE_SCHEMA) {
        char *collection = schema_collection_of(node->name);
        if (!collection)
            return -ENOENT;
        int error = store_get_schema(fs->store, collection, text, size);
        free(collection);
        info->size = *size;
        info->modified_ns = fs->mounted_ns;
        return error;
    }
    if (node->kind == FS_NODE_SUBSCRIPTION) {
        int error = fs_subscription_load(fs, node->collection, node->name, text, size);
        info->size = error ? 0 : *size;
        info->modified_ns = fs->mounted_ns;
        return error;
    }
    int error = store_get_object(fs->store, node->collection, node->id, text, info);
    if (!error)
        *size = info->size;
    return error;
}

static void describe_parse_error(const ejson_error *parse_error, char *reason, size_t size)
{
    if (parse_error->line > 0)
        snprintf(reason, size, "line %d, column %d: %s", parse_error->line, parse_error->column,
                 parse_error->message);
    else
        snprintf(reason, size, "%s", parse_error->message);
}

/* Put _id first, as MongoDB does on insert and mongoexport shows it. */
static json_t *with_id_first(json_t *document, const json_t *id)
{
    json_t *result = json_object();
    if (!result || json_object_set(result, "_id", (json_t *)id) != 0 ||
        json_object_update(result, document) != 0) {
        json_decref(result);
        return NULL;
    }
    return result;
}

static bool id_type_is_supported(const json_t *id)
{
    value_type type = value_type_of(id);
    return type == VALUE_STRING || type == VALUE_INT || type == VALUE_OBJECT_ID;
}

/*
 * Check a parsed object against its file name and its collection's schema,
 * and produce its canonical text.  Takes ownership of document.
 */
static int prepare_object(fs_context *fs, const fs_node *node, json_t *document,
                          char **canonical, size_t *canonical_size, json_t **id_out,
                          char *reason, size_t reason_size)
{
    int error = -EINVAL;
    json_t *id = json_object_get(document, "_id");
    char expected_name[OBJECT_NAME_MAX + 1];
    if (!id && !node->id) {
        snprintf(reason, reason_size,
                 "this file name is the hash of a long _id: the content must give the _id");
        goto done;
    }
    if (!id)
        id = node->id;
    const char *first_key = json_object_iter_key(json_object_iter(document));
    if (!first_key || strcmp(first_key, "_id") != 0) {
        json_t *reordered = with_id_first(document, id);
        json_decref(document);
        document = reordered;
        if (!document) {
            error = -ENOMEM;
            goto done;
        }
        id = json_object_get(document, "_id");
    }
    if (!id_type_is_supported(id)) {
        snprintf(reason, reason_size, "_id must be a string, an integer or an ObjectId, not %s",
                 value_type_name(value_type_of(id)));
        goto done;
    }
    if (object_name_from_id(id, expected_name) != 0 || strcmp(expected_name, node->name) != 0) {
        snprintf(reason, reason_size, "_id does not match the file name: this _id belongs in %s",
                 expected_name);
        goto done;
    }
    char *schema_text = NULL;
    size_t schema_size = 0;
    if (store_get_schema(fs->store, node->collection, &schema_text, &schema_size) == 0) {
        json_t *schema = json_loadb(schema_text, schema_size, 0, NULL);
        free(schema_text);
        if (!schema) {
            snprintf(reason, reason_size, "the collection's schema cannot be read");
            error = -EIO;
            goto done;
        }
        error = schema_validate_document(schema, document, reason, reason_size);
        json_decref(schema);
        if (error)
            goto done;
    }
    *canonical = ejson_format_pretty(document, canonical_size);
    if (!*canonical) {
        error = -ENOMEM;
        goto done;
    }
    *id_out = json_incref(json_object_get(document, "_id"));
    error = 0;
done:
    json_decref(document);
    return error;
}

static int prepare_schema(const char *text, size_t size, char **canonical,
                          size_t *canonical_size, char *reason, size_t reason_size)
{
    json_error_t parse_error;
    json_t *schema = json_loadb(text, size, JSON_REJECT_DUPLICATES, &parse_error);
    if (!schema) {
        snprintf(reason, reason_size, "line %d, column %d: %s", parse_error.line,
                 parse_error.column, parse_error.text);
        return -EINVAL;
    }
    int error = -EINVAL;
    if (!json_is_object(schema))
        snprintf(reason, reason_size, "a schema must be a JSON object");
    else
        error = schema_check(schema, reason, reason_size);
    if (!error) {
        *canonical = ejson_format_pretty(schema, canonical_size);
        error = *canonical ? 0 : -ENOMEM;
    }
    json_decref(schema);
    return error;
}

/* A committed object change waits in the outbox of a synced store
 * (store.h): let the sync thread upload it now. */
static void announce_object_change(fs_context *fs)
{
    if (fs->sync_status)
        sync_status_wake(fs->sync_status);
}

/* Once a synced mount holds the server's schemas, they are the server's
 * to change, unless it is in Development Mode.  1, 0 or -errno. */
static int schemas_are_read_only(fs_context *fs)
{
    if (!fs->sync_status)
        return 0;
    store_sync_progress progress;
    int error = store_get_sync_progress(fs->store, &progress);
    if (error)
        return error;
    return progress.server_schemas && !progress.development_mode;
}

/* 0 when a document of kind (collection and id: those of an object; id
 * NULL for one not stored yet) may change, -EACCES when it is read-only,
 * or -errno.  A new object may always be written: the server judges
 * creations. */
static int check_kind_writable(fs_context *fs, fs_node_kind kind, const char *collection,
                               const json_t *id)
{
    int read_only = 0;
    if (kind == FS_NODE_SCHEMA)
        read_only = schemas_are_read_only(fs);
    else if (kind == FS_NODE_OBJECT && fs->sync_status && id)
        read_only = store_object_is_read_only(fs->store, collection, id);
    return read_only < 0 ? read_only : read_only ? -EACCES : 0;
}

static int check_writable(fs_context *fs, const fs_node *node)
{
    return check_kind_writable(fs, node->kind, node->collection,
                               node->pending ? NULL : node->id);
}

static mode_t document_mode(fs_context *fs, const fs_node *node)
{
    return check_writable(fs, node) == -EACCES ? 0444 : 0644;
}

/*
 * Validate text as the new content of node and store it, changed at
 * modified_ns (0: now).  When replaced is given (a rename), its stored
 * version is removed in the same step.  Empty content keeps a pending
 * document pending.  Rejections are recorded in the error log under
 * operation.
 */
static int commit_document(fs_context *fs, fs_node *node, const char *text, size_t size,
                           const fs_node *replaced, const char *operation, int64_t modified_ns)
{
    if (modified_ns == 0)
        modified_ns = now_ns();
    if (size == 0 && node->pending && !replaced)
        return 0;
    char reason[512] = "";
    char *canonical = NULL;
    size_t canonical_size = 0;
    int error;
    if (node->kind == FS_NODE_SCHEMA) {
        error = prepare_schema(text, size, &canonical, &canonical_size, reason, sizeof reason);
        char *collection = schema_collection_of(node->name);
        if (!error && collection)
            error = store_put_schema(fs->store, collection, canonical, canonical_size);
        free(collection);
        if (!error && replaced && !replaced->pending) {
            char *old_collection = schema_collection_of(replaced->name);
            if (old_collection)
                store_delete_schema(fs->store, old_collection);
            free(old_collection);
        }
    } else if (node->kind == FS_NODE_SUBSCRIPTION) {
        error = fs_subscription_commit(fs, node, text, size, replaced, reason, sizeof reason);
    } else if (size == 0) {
        snprintf(reason, sizeof reason, "an empty file is not an object");
        error = -EINVAL;
    } else {
        ejson_error parse_error;
        json_t *document = ejson_parse(text, size, &parse_error);
        json_t *id = NULL;
        if (!document) {
            describe_parse_error(&parse_error, reason, sizeof reason);
            error = -EINVAL;
        } else {
            error = prepare_object(fs, node, document, &canonical, &canonical_size, &id,
                                   reason, sizeof reason);
        }
        if (!error && replaced && !replaced->pending)
            error = store_rename_object(fs->store, node->collection, replaced->id, id, canonical,
                                        canonical_size, modified_ns, NULL);
        else if (!error)
            error = store_put_object(fs->store, node->collection, id, canonical, canonical_size,
                                     modified_ns, NULL);
        if (!error)
            announce_object_change(fs);
        if (!error && !node->id)
            node->id = json_incref(id);
        json_decref(id);
    }
    if (error && !reason[0])
        snprintf(reason, sizeof reason, "%s", store_last_error());
    free(canonical);
    if (error) {
        record_rejection(fs, node, operation, reason, text, size);
        return error;
    }
    fs_node_set_pending(node, false);
    return 0;
}

/* held: the object moves to a scratch name, as editors do when they save
 * (store_delete_object_held), so its re-creation can become one update. */
static int delete_document(fs_context *fs, fs_node *node, bool held)
{
    if (node->pending)
        return 0;
    if (node->kind == FS_NODE_OBJECT) {
        int error = held ? store_delete_object_held(fs->store, node->collection, node->id)
                         : store_delete_object(fs->store, node->collection, node->id);
        if (!error)
            announce_object_change(fs);
        return error;
    }
    if (node->kind == FS_NODE_SUBSCRIPTION)
        return fs_subscription_delete(fs, node);
    char *collection = schema_collection_of(node->name);
    int error = collection ? store_delete_schema(fs->store, collection) : -ENOENT;
    free(collection);
    return error;
}

/* ---------------------------------------------------------------------
 * Attributes and lookup
 * --------------------------------------------------------------------- */

static void fill_directory(fs_context *fs, struct stat *st, nlink_t links)
{
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = links;
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_mtim = st->st_ctim = st->st_atim = timespec_of_ns(fs->mounted_ns);
}

static void fill_file(fs_context *fs, struct stat *st, mode_t mode, size_t size, int64_t mtime)
{
    st->st_mode = S_IFREG | mode;
    st->st_nlink = 1;
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_size = (off_t)size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
    st->st_mtim = st->st_ctim = st->st_atim = timespec_of_ns(mtime);
}

/* A document as one of its handles has it; linked: its name still
 * leads to it (else nlink 0). */
static void fill_from_handle(fs_context *fs, struct stat *st, mode_t mode,
                             const fs_handle *handle, bool linked)
{
    fill_file(fs, st, mode, handle->size, handle->dirty ? now_ns() : handle->modified_ns);
    st->st_nlink = linked;
}

static int generated_text(fs_context *fs, const fs_node *node, char **text, size_t *size)
{
    return node->kind == FS_NODE_STATUS ? fs_control_status_text(fs, text, size)
                                        : fs_control_errors_text(fs, text, size);
}

/*
 * The attributes of node and how long the kernel may cache them: a long
 * time for stored state (every change to it notifies the kernel), zero for
 * anything that changes without the kernel seeing it (drafts, scratch
 * files, generated files).
 *
 * A document's size is that of the handle asking, when the kernel names
 * one (the size check before each cached read): a reader sees its
 * snapshot and a writer its draft, so neither's reads are cut to the
 * other's length.  Otherwise (stat, fstat) it is that of the draft written
 * last, as on a disk file, or else of the stored version.
 *
 * A document deleted while open (unlinked, renamed over, or deleted by a
 * download) keeps answering through its open handles, as a disk file's
 * inode does, with no link left: fstat on an open descriptor works.  The
 * kernel names no handle for fstat, so any open handle of the node
 * answers, from its snapshot or draft.
 */
static int node_attributes(fs_context *fs, fs_node *node, const fs_handle *asking,
                           struct stat *st, double *timeout)
{
    memset(st, 0, sizeof *st);
    st->st_ino = node->ino;
    *timeout = 0;
    switch (node->kind) {
    case FS_NODE_ROOT:
    case FS_NODE_CONTROL_DIR:
        fill_directory(fs, st, 1); /* 1: subdirectory count not tracked */
        *timeout = FS_STABLE_TIMEOUT_SECONDS;
        return 0;
    case FS_NODE_SCHEMA_DIR:
    case FS_NODE_COLLECTION:
    case FS_NODE_SUBSCRIPTIONS_DIR:
    case FS_NODE_SUBSCRIPTION_DIR:
        fill_directory(fs, st, 2);
        *timeout = FS_STABLE_TIMEOUT_SECONDS;
        return 0;
    case FS_NODE_MARK:
        fill_file(fs, st, 0644, 0, fs->mounted_ns);
        return 0;
    case FS_NODE_STATUS:
    case FS_NODE_ERRORS: {
        char *text;
        size_t size;
        int error = generated_text(fs, node, &text, &size);
        if (error)
            return error;
        free(text);
        fill_file(fs, st, 0444, size, now_ns());
        return 0;
    }
    case FS_NODE_SCHEMA:
    case FS_NODE_OBJECT:
    case FS_NODE_SUBSCRIPTION: {
        mode_t mode = document_mode(fs, node);
        if (!(asking && asking->node == node && asking->fd < 0))
            asking = NULL;
        const fs_handle *answering = asking && (asking->writable || node->parent == 0 ||
                                                node->latest_draft || asking->version == 0)
                                         ? asking
                                         : node->latest_draft;
        if (!answering && node->parent == 0)
            answering = node->open_documents;
        if (answering) {
            fill_from_handle(fs, st, mode, answering, node->parent != 0);
            return 0;
        }
        if (node->pending) {
            fill_file(fs, st, mode, 0, node->pending_modified_ns);
            return 0;
        }
        store_object_info info;
        int error;
        if (node->kind == FS_NODE_OBJECT) {
            error = store_get_object_info(fs->store, node->collection, node->id, &info);
        } else {
            char *text;
            size_t size;
            error = load_document(fs, node, &text, &size, &info);
            if (!error)
                free(text);
        }
        if (error == -ENOENT && node->open_documents) {
            fill_from_handle(fs, st, mode, node->open_documents, false);
            return 0;
        }
        if (error)
            return error;
        if (asking && asking->version != info.version) {
            /* a page-cache reader of an older version: its reads must not
             * be cut or padded to the new length */
            fill_from_handle(fs, st, mode, asking, true);
            return 0;
        }
        fill_file(fs, st, mode, info.size, info.modified_ns);
        *timeout = node->open_writers ? 0 : FS_STABLE_TIMEOUT_SECONDS;
        if (*timeout > 0)
            node->kernel_attr_version = info.version;
        return 0;
    }
    case FS_NODE_SCRATCH: {
        const fs_node *dir = fs_node_get(node->parent);
        if (!dir)
            return -ENOENT;
        char path[PATH_MAX];
        scratch_path(dir, node->name, path, sizeof path);
        if (fstatat(fs->scratch_directory_fd, path, st, AT_SYMLINK_NOFOLLOW) != 0)
            return -errno;
        st->st_ino = node->ino;
        st->st_uid = fs->uid;
        st->st_gid = fs->gid;
        return 0;
    }
    }
    return -EIO;
}

static int resolve_hashed_name(fs_context *fs, const fs_node *dir, const char *name, json_t **id);

/* Which kind a name in dir is, and whether it exists; *node_out receives a
 * node (created if needed) when it exists. */
static int find_child(fs_context *fs, fs_node *dir, const char *name, fs_node **node_out)
{
    /* pending and scratch names live only in the node table and on disk;
     * everything else is checked against the store, its source of truth */
    fs_node *existing = fs_node_find(dir->ino, name);
    if (existing && (existing->pending || existing->kind == FS_NODE_SCRATCH)) {
        *node_out = existing;
        return 0;
    }
    switch (dir->kind) {
    case FS_NODE_ROOT:
        if (strcmp(name, FS_CONTROL_DIR) == 0) {
            *node_out = fs_node_obtain(dir->ino, name, FS_NODE_CONTROL_DIR, NULL);
            return *node_out ? 0 : -ENOMEM;
        }
        if (store_has_collection(fs->store, name) != 1)
            return -ENOENT;
        *node_out = fs_node_obtain(dir->ino, name, FS_NODE_COLLECTION, name);
        return *node_out ? 0 : -ENOMEM;
    case FS_NODE_CONTROL_DIR: {
        fs_node_kind kind;
        if (strcmp(name, "schema") == 0)
            kind = FS_NODE_SCHEMA_DIR;
        else if (strcmp(name, "status") == 0)
            kind = FS_NODE_STATUS;
        else if (strcmp(name, "errors") == 0)
            kind = FS_NODE_ERRORS;
        else if (strcmp(name, "subscriptions") == 0 && fs->sync_status)
            kind = FS_NODE_SUBSCRIPTIONS_DIR;
        else if (strcmp(name, "mark") == 0 && fs->sync_status)
            kind = FS_NODE_MARK;
        else
            return -ENOENT;
        *node_out = fs_node_obtain(dir->ino, name, kind, NULL);
        return *node_out ? 0 : -ENOMEM;
    }
    case FS_NODE_SUBSCRIPTIONS_DIR: {
        int exists = fs_subscription_directory_exists(fs, name);
        if (exists != 1)
            return exists < 0 ? exists : -ENOENT;
        *node_out = fs_node_obtain(dir->ino, name, FS_NODE_SUBSCRIPTION_DIR, name);
        return *node_out ? 0 : -ENOMEM;
    }
    case FS_NODE_SUBSCRIPTION_DIR:
        if (!fs_subscription_name_is_scratch(name)) {
            char *text;
            size_t size;
            int error = fs_subscription_load(fs, dir->collection, name, &text, &size);
            if (error)
                return error;
            free(text);
            *node_out = fs_node_obtain(dir->ino, name, FS_NODE_SUBSCRIPTION, dir->collection);
            return *node_out ? 0 : -ENOMEM;
        }
        break;
    case FS_NODE_SCHEMA_DIR: {
        char *collection = schema_collection_of(name);
        if (collection) {
            char *text;
            size_t size;
            int error = store_get_schema(fs->store, collection, &text, &size);
            if (!error) {
                free(text);
                *node_out = fs_node_obtain(dir->ino, name, FS_NODE_SCHEMA, collection);
            }
            free(collection);
            if (error)
                return error;
            return *node_out ? 0 : -ENOMEM;
        }
        break;
    }
    case FS_NODE_COLLECTION: {
        json_t *id = NULL;
        object_name_kind kind = object_name_classify(name, &id);
        int error = 0;
        if (kind == OBJECT_NAME_HASHED)
            error = resolve_hashed_name(fs, dir, name, &id);
        if (kind != OBJECT_NAME_SCRATCH) {
            store_object_info info;
            if (!error)
                error = store_get_object_info(fs->store, dir->collection, id, &info);
            if (!error) {
                *node_out = fs_node_obtain(dir->ino, name, FS_NODE_OBJECT, dir->collection);
                if (*node_out && !(*node_out)->id)
                    (*node_out)->id = json_incref(id);
                error = *node_out ? 0 : -ENOMEM;
            }
            json_decref(id);
            return error;
        }
        break;
    }
    default:
        return -ENOTDIR;
    }
    /* a scratch name: it exists if its backing file does */
    char path[PATH_MAX];
    struct stat st;
    scratch_path(dir, name, path, sizeof path);
    if (fstatat(fs->scratch_directory_fd, path, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -ENOENT;
    *node_out = fs_node_obtain(dir->ino, name, FS_NODE_SCRATCH, dir->collection);
    return *node_out ? 0 : -ENOMEM;
}

typedef struct hashed_search {
    const char *name;
    json_t *found;
} hashed_search;

static int match_hashed_name(const store_object_view *object, void *context)
{
    hashed_search *search = context;
    char name[OBJECT_NAME_MAX + 1];
    if (object_name_from_id(object->id, name) == 0 && strcmp(name, search->name) == 0) {
        search->found = json_incref((json_t *)object->id);
        return 1;
    }
    /* ids sort by bytes: once past the prefix, no later id can match */
    if (value_type_of(object->id) != VALUE_STRING)
        return 1;
    return 0;
}

/* A hashed name stands for a long string _id that starts with its decoded
 * prefix; the store's id order lets us scan just the ids with that prefix. */
static int resolve_hashed_name(fs_context *fs, const fs_node *dir, const char *name, json_t **id)
{
    char *prefix;
    size_t prefix_length;
    uint64_t hash;
    if (object_name_hashed_parts(name, &prefix, &prefix_length, &hash) != 0)
        return -ENOENT;
    json_t *start = json_stringn_nocheck(prefix, prefix_length);
    free(prefix);
    if (!start)
        return -ENOMEM;
    hashed_search search = {.name = name};
    int error = store_scan_objects(fs->store, dir->collection, start, false, match_hashed_name,
                                   &search);
    json_decref(start);
    if (error < 0)
        return error;
    if (!search.found)
        return -ENOENT;
    *id = search.found;
    return 0;
}

static int entry_of(fs_context *fs, fs_node *node, struct fuse_entry_param *entry)
{
    memset(entry, 0, sizeof *entry);
    double timeout;
    int error = node_attributes(fs, node, NULL, &entry->attr, &timeout);
    if (error)
        return error;
    entry->ino = node->ino;
    entry->attr_timeout = timeout;
    /* Every name, pending and scratch ones too, changes only through this
     * daemon, which tells the kernel (fs_notify) when it changes one by
     * itself, so the kernel may keep names for long. */
    entry->entry_timeout = FS_STABLE_TIMEOUT_SECONDS;
    return 0;
}

static void reply_entry(fuse_req_t req, fs_node *node)
{
    struct fuse_entry_param entry;
    int error = entry_of(context_of(req), node, &entry);
    if (error) {
        fuse_reply_err(req, -error);
        return;
    }
    if (fuse_reply_entry(req, &entry) == 0)
        node->lookups++;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fs_context *fs = context_of(req);
    fs_node *dir = fs_node_get(parent);
    fs_node *node = NULL;
    int error = dir ? find_child(fs, dir, name, &node) : -ENOENT;
    if (error == -ENOENT) {
        /* a negative entry the kernel may cache: creations here go through it */
        struct fuse_entry_param negative = {.ino = 0, .entry_timeout = FS_STABLE_TIMEOUT_SECONDS};
        fuse_reply_entry(req, &negative);
        return;
    }
    if (error) {
        fuse_reply_err(req, -error);
        return;
    }
    reply_entry(req, node);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t count)
{
    fs_node *node = fs_node_get(ino);
    if (node)
        fs_node_forget(node, count);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++) {
        fs_node *node = fs_node_get(forgets[i].ino);
        if (node)
            fs_node_forget(node, forgets[i].nlookup);
    }
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_node *node = fs_node_get(ino);
    struct stat st;
    double timeout;
    int error = node ? node_attributes(context_of(req), node, fi ? handle_of(fi) : NULL, &st,
                                       &timeout)
                     : -ENOENT;
    if (error)
        fuse_reply_err(req, -error);
    else
        fuse_reply_attr(req, &st, timeout);
}

/* access(2), which the kernel asks us about when it does not check modes
 * itself (no default_permissions): a write is refused where the mode
 * says 0444, so `test -w` and editors that ask agree with `ls -l`. */
static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    fs_node *node = fs_node_get(ino);
    int error = node ? 0 : -ENOENT;
    if (!error && (mask & W_OK) && (node->kind == FS_NODE_STATUS || node->kind == FS_NODE_ERRORS))
        error = -EACCES;
    else if (!error && (mask & W_OK) && is_document_kind(node->kind))
        error = check_writable(context_of(req), node);
    fuse_reply_err(req, -error);
}

/* ---------------------------------------------------------------------
 * Handles
 * --------------------------------------------------------------------- */

static void record_rejection_of_emptying(fs_context *fs, const fs_node *node)
{
    record_rejection(fs, node, "close",
                     "the file was emptied and closed without new content; an empty file is "
                     "not an object, so the previous version is kept", "", 0);
}

static void release_writers(int64_t overdue_at_ns);

static fs_handle *handle_new(fs_context *fs, fs_node *node)
{
    fs_handle *handle = calloc(1, sizeof *handle);
    if (handle) {
        handle->fs = fs;
        handle->node = node;
        handle->fd = -1;
    }
    return handle;
}

/* A document's open handles answer for it once it is deleted
 * (node_attributes). */
static void handle_track_document(fs_handle *handle)
{
    handle->next_open_document = handle->node->open_documents;
    handle->node->open_documents = handle;
}

static void handle_untrack_document(fs_handle *handle)
{
    fs_handle **link = &handle->node->open_documents;
    while (*link && *link != handle)
        link = &(*link)->next_open_document;
    if (*link)
        *link = handle->next_open_document;
}

static void handle_free(fs_handle *handle)
{
    if (handle->writable && handle->dirty && !handle->written && handle->node->parent != 0)
        record_rejection_of_emptying(handle->fs, handle->node);
    if (handle->fd >= 0)
        close(handle->fd);
    if (handle->writable)
        handle->node->open_writers--;
    if (handle->cached)
        handle->node->cached_readers--;
    /* the writers this reader held go ahead once it is wholly gone */
    bool releases_writers = handle->holds_writers && --handle->node->holding_readers == 0 &&
                            handle->node->waiting_writers;
    if (handle->node && handle->node->latest_draft == handle)
        handle->node->latest_draft = NULL;
    if (handle->node)
        handle_untrack_document(handle);
    for (size_t i = 0; i < handle->extra_count; i++)
        free(handle->extra_names[i]);
    free(handle->extra_names);
    json_decref(handle->resume_id);
    free(handle->data);
    free(handle);
    if (releases_writers)
        release_writers(0);
}

static int handle_reserve(fs_handle *handle, size_t size)
{
    if (size <= handle->capacity)
        return 0;
    size_t capacity = handle->capacity ? handle->capacity : 4096;
    while (capacity < size)
        capacity *= 2;
    char *data = realloc(handle->data, capacity);
    if (!data)
        return -ENOMEM;
    handle->data = data;
    handle->capacity = capacity;
    return 0;
}

static int handle_resize(fs_handle *handle, size_t size)
{
    int error = handle_reserve(handle, size);
    if (error)
        return error;
    if (size > handle->size)
        memset(handle->data + handle->size, 0, size - handle->size);
    handle->size = size;
    return 0;
}

static void handle_mark_dirty(fs_handle *handle)
{
    handle->dirty = true;
    handle->node->latest_draft = handle;
}

/*
 * Commit a handle's draft, if it has one; a handle that only read never
 * validates anything.  A draft that was emptied (O_TRUNC) but not yet
 * written is not committed: a shell's `> file` closes a duplicate of the
 * descriptor before anything is written, and that close must not fail nor
 * store an empty object.  If the handle is released still empty, the
 * emptying is recorded as rejected (handle_free).
 */
static int handle_commit(fs_context *fs, fs_handle *handle, const char *operation)
{
    if (!handle->dirty || !handle->written || handle->node->parent == 0)
        return 0;
    int error = commit_document(fs, handle->node, handle->data, handle->size, NULL, operation, 0);
    if (!error) {
        handle->dirty = handle->written = false;
        if (handle->node->latest_draft == handle)
            handle->node->latest_draft = NULL;
    }
    return error;
}

/*
 * Reading through the page cache
 * ------------------------------
 * Every handle reads its own snapshot or draft (op_read serves the handle
 * named in the request), but the kernel keeps one page cache and one
 * i_size per inode for all of them.  A reader may therefore use the page
 * cache (repeated reads then cost no request at all) only while nothing
 * can put another version's length or pages under it:
 *  - the node is a stored object with no writer open or waiting, and the
 *    readers already using the page cache hold this same version;
 *  - the kernel's attributes were last given for this version (or the
 *    kernel dropped them itself, which it does on every write through the
 *    mount, and then asks again before reading);
 *  - its pages are kept (keep_cache) only if they can hold no other
 *    version; otherwise the open drops them.
 * Every other reader uses direct I/O.  A writer that opens an object while
 * page-cache readers hold it waits (op_open) until they close, at most
 * FS_WRITER_WAIT_SECONDS, because its O_TRUNC and writes change the
 * kernel's i_size for everyone.  Changes that do not come through the
 * kernel (downloads) cannot wait; the readers' own attribute requests then
 * answer with their snapshot (node_attributes).
 */
static bool may_read_through_page_cache(const fs_node *node, const store_object_info *info)
{
    return node->kind == FS_NODE_OBJECT && !node->pending && node->parent != 0 &&
           node->open_writers == 0 && node->waiting_writers == 0 && !node->latest_draft &&
           node->kernel_attr_version == info->version &&
           (node->cached_readers == 0 || node->page_cache_version == info->version);
}

static int open_document(fs_context *fs, fs_node *node, int flags, fs_handle *handle,
                         struct fuse_file_info *fi)
{
    handle->writable = (flags & O_ACCMODE) != O_RDONLY;
    int error = handle->writable ? check_writable(fs, node) : 0;
    if (error)
        return error;
    store_object_info info;
    char *text;
    size_t size;
    error = load_document(fs, node, &text, &size, &info);
    if (error)
        return error;
    handle->data = text;
    handle->size = size;
    handle->capacity = size + 1;
    handle->modified_ns = node->pending ? node->pending_modified_ns : info.modified_ns;
    if (handle->writable)
        node->open_writers++;
    else
        handle->version = info.version;
    if (handle->writable && (flags & O_TRUNC)) {
        handle->size = 0;
        if (!node->pending)
            handle_mark_dirty(handle);
    }
    if (!handle->writable && may_read_through_page_cache(node, &info)) {
        fi->keep_cache = node->page_cache_version == info.version;
        node->page_cache_version = info.version;
        node->cached_readers++;
        node->holding_readers++;
        handle->cached = handle->holds_writers = true;
    } else {
        fi->direct_io = 1;
    }
    fi->noflush = !handle->writable; /* a reader has nothing to flush on close */
    return 0;
}

static int open_scratch(fs_context *fs, fs_node *node, int flags, mode_t mode, fs_handle *handle)
{
    const fs_node *dir = fs_node_get(node->parent);
    if (!dir)
        return -ENOENT;
    char path[PATH_MAX];
    scratch_path(dir, node->name, path, sizeof path);
    handle->fd = openat(fs->scratch_directory_fd, path, (flags & ~O_NOFOLLOW) | O_CLOEXEC, mode);
    return handle->fd < 0 ? -errno : 0;
}

static int open_node(fs_context *fs, fs_node *node, int flags, mode_t mode,
                     struct fuse_file_info *fi, fs_handle **out)
{
    fs_handle *handle = handle_new(fs, node);
    if (!handle)
        return -ENOMEM;
    int error;
    switch (node->kind) {
    case FS_NODE_OBJECT:
    case FS_NODE_SCHEMA:
    case FS_NODE_SUBSCRIPTION:
        error = open_document(fs, node, flags, handle, fi);
        if (!error)
            handle_track_document(handle);
        break;
    case FS_NODE_MARK:
        /* what is written is dropped (op_write): opening is the request */
        if ((flags & O_ACCMODE) != O_RDONLY)
            sync_status_request_mark(fs->sync_status);
        fi->direct_io = 1;
        error = 0;
        break;
    case FS_NODE_SCRATCH:
        error = open_scratch(fs, node, flags, mode, handle);
        break;
    case FS_NODE_STATUS:
    case FS_NODE_ERRORS:
        error = (flags & O_ACCMODE) != O_RDONLY ? -EACCES
                                                : generated_text(fs, node, &handle->data, &handle->size);
        fi->direct_io = 1;
        break;
    default:
        error = -EISDIR;
    }
    if (error) {
        handle_free(handle);
        return error;
    }
    fi->fh = (uintptr_t)handle;
    *out = handle;
    return 0;
}

static void finish_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_node *node = fs_node_get(ino);
    fs_handle *handle;
    int error = node ? open_node(context_of(req), node, fi->flags, 0, fi, &handle) : -ENOENT;
    if (error)
        fuse_reply_err(req, -error);
    else if (fuse_reply_open(req, fi) != 0)
        handle_free(handle);
}

/* Opens for writing held until the page-cache readers of their object
 * close (see "Reading through the page cache"); FUSE thread only, oldest
 * first. */
typedef struct waiting_writer {
    fuse_req_t req;
    fuse_ino_t ino;
    struct fuse_file_info fi;
    int64_t deadline_ns;
    struct waiting_writer *next;
} waiting_writer;

static waiting_writer *waiting_writers;

/* A reader that keeps an object open longer than this (less, tail -f, a
 * process that reads and then writes the same file) no longer holds up a
 * writer; it may then see the new version's length. */
#define FS_WRITER_WAIT_SECONDS 1

static int hold_writer(fuse_req_t req, fs_node *node, const struct fuse_file_info *fi)
{
    waiting_writer *waiting = malloc(sizeof *waiting);
    if (!waiting)
        return -ENOMEM;
    *waiting = (waiting_writer){.req = req, .ino = node->ino, .fi = *fi,
                                .deadline_ns = now_ns() + FS_WRITER_WAIT_SECONDS * 1000000000LL};
    waiting_writer **tail = &waiting_writers;
    while (*tail)
        tail = &(*tail)->next;
    *tail = waiting;
    node->waiting_writers++;
    return 0;
}

/* The readers a writer waited for in vain hold up no later writer: one
 * `less` or `tail -f` must not slow every save of the object by the wait. */
static void stop_holding_writers(fs_node *node)
{
    for (fs_handle *handle = node->open_documents; handle; handle = handle->next_open_document) {
        if (handle->holds_writers) {
            handle->holds_writers = false;
            node->holding_readers--;
        }
    }
}

/* Let every held open go ahead, oldest first, whose object no page-cache
 * reader holds any more or whose deadline is not after overdue_at_ns (0:
 * none is overdue). */
static void release_writers(int64_t overdue_at_ns)
{
    waiting_writer **link = &waiting_writers;
    while (*link) {
        waiting_writer *waiting = *link;
        fs_node *node = fs_node_get(waiting->ino);
        if (node && node->holding_readers > 0 &&
            !(overdue_at_ns && waiting->deadline_ns <= overdue_at_ns)) {
            link = &waiting->next;
            continue;
        }
        *link = waiting->next;
        if (node)
            node->waiting_writers--;
        finish_open(waiting->req, waiting->ino, &waiting->fi);
        free(waiting);
        link = &waiting_writers; /* finish_open may have changed the list */
    }
}

int fs_writer_wait_milliseconds(void)
{
    if (!waiting_writers)
        return -1;
    int64_t remaining_ns = waiting_writers->deadline_ns - now_ns();
    return remaining_ns <= 0 ? 0 : (int)(remaining_ns / 1000000) + 1;
}

void fs_release_overdue_writers(void)
{
    int64_t now = now_ns();
    for (waiting_writer *waiting = waiting_writers; waiting; waiting = waiting->next) {
        fs_node *node = fs_node_get(waiting->ino);
        if (node && waiting->deadline_ns <= now)
            stop_holding_writers(node);
    }
    release_writers(now);
}

void fs_abandon_waiting_writers(void)
{
    while (waiting_writers) {
        waiting_writer *waiting = waiting_writers;
        waiting_writers = waiting->next;
        fuse_reply_err(waiting->req, ENODEV);
        free(waiting);
    }
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_node *node = fs_node_get(ino);
    bool writes = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
    if (node && writes && node->holding_readers > 0 && hold_writer(req, node, fi) == 0)
        return;
    finish_open(req, ino, fi);
}

/* A directory of documents and scratch files. */
static bool is_object_directory(const fs_node *dir)
{
    return dir->kind == FS_NODE_COLLECTION || dir->kind == FS_NODE_SCHEMA_DIR ||
           dir->kind == FS_NODE_SUBSCRIPTION_DIR;
}

/* The kind a new name in dir gets: a document, or a scratch file. */
static fs_node_kind kind_of_new_name(const fs_node *dir, const char *name)
{
    if (dir->kind == FS_NODE_SCHEMA_DIR) {
        char *collection = schema_collection_of(name);
        bool is_schema = collection != NULL;
        free(collection);
        return is_schema ? FS_NODE_SCHEMA : FS_NODE_SCRATCH;
    }
    if (dir->kind == FS_NODE_SUBSCRIPTION_DIR)
        return fs_subscription_name_is_scratch(name) ? FS_NODE_SCRATCH : FS_NODE_SUBSCRIPTION;
    return object_name_classify(name, NULL) == OBJECT_NAME_SCRATCH ? FS_NODE_SCRATCH
                                                                   : FS_NODE_OBJECT;
}

static int create_node(fs_context *fs, fs_node *dir, const char *name, mode_t mode, int flags,
                       fs_node **out)
{
    if (!is_object_directory(dir))
        return dir->kind == FS_NODE_ROOT || dir->kind == FS_NODE_CONTROL_DIR ||
                       dir->kind == FS_NODE_SUBSCRIPTIONS_DIR
                   ? -EPERM
                   : -ENOTDIR;
    if (strlen(name) > OBJECT_NAME_MAX)
        return -ENAMETOOLONG;
    fs_node *node = NULL;
    int error = find_child(fs, dir, name, &node);
    if (!error && (flags & O_EXCL))
        return -EEXIST;
    if (!error) {
        *out = node;
        return 0;
    }
    if (error != -ENOENT)
        return error;
    fs_node_kind kind = kind_of_new_name(dir, name);
    error = check_kind_writable(fs, kind, dir->collection, NULL);
    if (error)
        return error;
    if (kind == FS_NODE_SCRATCH) {
        error = ensure_scratch_directory(fs, dir);
        if (error)
            return error;
        char path[PATH_MAX];
        scratch_path(dir, name, path, sizeof path);
        int fd = openat(fs->scratch_directory_fd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                        mode & 07777);
        if (fd < 0)
            return -errno;
        close(fd);
    }
    char *schema_collection = kind == FS_NODE_SCHEMA ? schema_collection_of(name) : NULL;
    node = fs_node_obtain(dir->ino, name, kind,
                          schema_collection ? schema_collection : dir->collection);
    free(schema_collection);
    if (!node)
        return -ENOMEM;
    if (kind != FS_NODE_SCRATCH) {
        json_decref(node->id);
        node->id = NULL;
        if (kind == FS_NODE_OBJECT)
            object_name_classify(name, &node->id);
        fs_node_set_pending(node, true);
        node->pending_modified_ns = now_ns();
    }
    *out = node;
    return 0;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    fs_context *fs = context_of(req);
    fs_node *dir = fs_node_get(parent);
    fs_node *node = NULL;
    fs_handle *handle = NULL;
    int error = dir ? create_node(fs, dir, name, mode, fi->flags, &node) : -ENOENT;
    if (!error)
        error = open_node(fs, node, fi->flags & ~(O_CREAT | O_EXCL), mode, fi, &handle);
    struct fuse_entry_param entry;
    if (!error)
        error = entry_of(fs, node, &entry);
    if (error) {
        if (handle)
            handle_free(handle);
        fuse_reply_err(req, -error);
        return;
    }
    if (fuse_reply_create(req, &entry, fi) == 0)
        node->lookups++;
    else
        handle_free(handle);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)rdev;
    fs_node *dir = fs_node_get(parent);
    fs_node *node = NULL;
    int error = !S_ISREG(mode) ? -EPERM
                : dir          ? create_node(context_of(req), dir, name, mode, O_EXCL, &node)
                               : -ENOENT;
    if (error)
        fuse_reply_err(req, -error);
    else
        reply_entry(req, node);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                    struct fuse_file_info *fi)
{
    (void)ino;
    fs_handle *handle = handle_of(fi);
    if (handle->fd >= 0) {
        char *buffer = malloc(size ? size : 1);
        if (!buffer) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        ssize_t n = pread(handle->fd, buffer, size, offset);
        if (n < 0)
            fuse_reply_err(req, errno);
        else
            fuse_reply_buf(req, buffer, (size_t)n);
        free(buffer);
        return;
    }
    fs_node *node = handle->node;
    if (!handle->cached && node->page_cache_version != handle->version)
        node->page_cache_version = 0; /* a direct handle's mmap fills pages too */
    if (handle->cached && node->kernel_attr_version != handle->version) {
        /* The kernel was given a newer version's size while this reader
         * stayed open; a short answer here shrinks the kernel's size to the
         * reader's, which must not outlive this read. */
        node->kernel_attr_version = 0;
        fs_notify_inode(node->ino);
    }
    if ((size_t)offset >= handle->size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t available = handle->size - (size_t)offset;
    fuse_reply_buf(req, handle->data + offset, size < available ? size : available);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t offset,
                     struct fuse_file_info *fi)
{
    (void)ino;
    fs_handle *handle = handle_of(fi);
    if (handle->fd >= 0) {
        ssize_t n = pwrite(handle->fd, data, size, offset);
        if (n < 0)
            fuse_reply_err(req, errno);
        else
            fuse_reply_write(req, (size_t)n);
        return;
    }
    if (handle->node->kind == FS_NODE_MARK) {
        fuse_reply_write(req, size);
        return;
    }
    if (!handle->writable) {
        fuse_reply_err(req, EBADF);
        return;
    }
    size_t position = (fi->flags & O_APPEND) ? handle->size : (size_t)offset;
    size_t end = position + size;
    int error = handle_resize(handle, end > handle->size ? end : handle->size);
    if (error) {
        fuse_reply_err(req, -error);
        return;
    }
    memcpy(handle->data + position, data, size);
    handle_mark_dirty(handle);
    handle->written = true;
    fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    int error = handle_commit(context_of(req), handle_of(fi), "close");
    fuse_reply_err(req, -error);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    handle_free(handle_of(fi));
    fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    fs_context *fs = context_of(req);
    fs_handle *handle = handle_of(fi);
    int error;
    if (handle->fd >= 0)
        error = (datasync ? fdatasync(handle->fd) : fsync(handle->fd)) == 0 ? 0 : -errno;
    else
        error = handle_commit(fs, handle, "fsync");
    if (!error && handle->fd < 0)
        error = store_sync(fs->store);
    fuse_reply_err(req, -error);
}

/* ---------------------------------------------------------------------
 * setattr: size changes, times; mode and owner are not object data
 * --------------------------------------------------------------------- */

static int truncate_document(fs_context *fs, fs_node *node, off_t size, fs_handle *handle)
{
    if (size < 0)
        return -EINVAL;
    if (handle && handle->writable) {
        int error = handle_resize(handle, (size_t)size);
        if (!error)
            handle_mark_dirty(handle);
        handle->written = handle->written || size > 0;
        return error;
    }
    /* truncate(2) on a path: the change is the whole save, commit it now */
    fs_handle *temporary = handle_new(fs, node);
    if (!temporary)
        return -ENOMEM;
    store_object_info info;
    int error = load_document(fs, node, &temporary->data, &temporary->size, &info);
    if (!error) {
        temporary->capacity = temporary->size + 1;
        error = handle_resize(temporary, (size_t)size);
    }
    if (!error && (size_t)size != info.size) {
        handle_mark_dirty(temporary);
        temporary->written = true;
        error = handle_commit(fs, temporary, "truncate");
    }
    handle_free(temporary);
    return error;
}

static int set_document_time(fs_context *fs, fs_node *node, int64_t modified_ns)
{
    if (node->pending) {
        node->pending_modified_ns = modified_ns;
        return 0;
    }
    if (node->kind != FS_NODE_OBJECT)
        return 0;
    char *text;
    store_object_info info;
    int error = store_get_object(fs->store, node->collection, node->id, &text, &info);
    if (error)
        return error;
    error = store_put_object(fs->store, node->collection, node->id, text, info.size, modified_ns, NULL);
    free(text);
    return error;
}

static int64_t requested_time_ns(const struct stat *attr, int to_set)
{
    if (to_set & FUSE_SET_ATTR_MTIME_NOW)
        return now_ns();
    return (int64_t)attr->st_mtim.tv_sec * 1000000000 + attr->st_mtim.tv_nsec;
}

static int setattr_scratch(fs_context *fs, fs_node *node, const struct stat *attr, int to_set,
                           fs_handle *handle)
{
    const fs_node *dir = fs_node_get(node->parent);
    if (!dir)
        return -ENOENT;
    char path[PATH_MAX];
    scratch_path(dir, node->name, path, sizeof path);
    int fd = fs->scratch_directory_fd;
    if ((to_set & FUSE_SET_ATTR_MODE) && fchmodat(fd, path, attr->st_mode & 07777, 0) != 0)
        return -errno;
    if (to_set & FUSE_SET_ATTR_SIZE) {
        int result = handle && handle->fd >= 0 ? ftruncate(handle->fd, attr->st_size) : -1;
        if (!(handle && handle->fd >= 0)) {
            int file = openat(fd, path, O_WRONLY | O_CLOEXEC);
            result = file < 0 ? -1 : ftruncate(file, attr->st_size);
            if (file >= 0)
                close(file);
        }
        if (result != 0)
            return -errno;
    }
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
        struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
        if (to_set & FUSE_SET_ATTR_ATIME)
            times[0] = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? (struct timespec){.tv_nsec = UTIME_NOW}
                                                           : attr->st_atim;
        if (to_set & FUSE_SET_ATTR_MTIME)
            times[1] = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? (struct timespec){.tv_nsec = UTIME_NOW}
                                                           : attr->st_mtim;
        if (utimensat(fd, path, times, AT_SYMLINK_NOFOLLOW) != 0)
            return -errno;
    }
    return 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    fs_context *fs = context_of(req);
    fs_node *node = fs_node_get(ino);
    fs_handle *handle = fi ? handle_of(fi) : NULL;
    int error = node ? 0 : -ENOENT;
    if (!error && node->kind == FS_NODE_SCRATCH) {
        error = setattr_scratch(fs, node, attr, to_set, handle);
    } else if (!error && is_document_kind(node->kind)) {
        if (to_set & FUSE_SET_ATTR_SIZE) {
            error = check_writable(fs, node);
            if (!error)
                error = truncate_document(fs, node, attr->st_size, handle);
        }
        if (!error && (to_set & FUSE_SET_ATTR_MTIME))
            error = set_document_time(fs, node, requested_time_ns(attr, to_set));
    } else if (!error && (to_set & FUSE_SET_ATTR_SIZE) && node->kind != FS_NODE_MARK) {
        error = node->kind == FS_NODE_STATUS || node->kind == FS_NODE_ERRORS ? -EACCES : -EISDIR;
    }
    if (error) {
        fuse_reply_err(req, -error);
        return;
    }
    struct stat st;
    double timeout;
    error = node_attributes(fs, node, handle, &st, &timeout);
    if (error)
        fuse_reply_err(req, -error);
    else
        fuse_reply_attr(req, &st, timeout);
}

/* ---------------------------------------------------------------------
 * Names: mkdir, rmdir, unlink, symlink, readlink, rename
 * --------------------------------------------------------------------- */

/*
 * The root and .realmfs/subscriptions both list collections: when one of
 * them gains or loses one, the kernel may still cache a (negative) entry
 * for it in the other.
 */
static void notify_collection_twin(const fs_node *dir, const char *collection)
{
    fuse_ino_t twin = FUSE_ROOT_ID;
    if (dir->kind == FS_NODE_ROOT) {
        const fs_node *control = fs_node_find(FUSE_ROOT_ID, FS_CONTROL_DIR);
        const fs_node *subscriptions = control ? fs_node_find(control->ino, "subscriptions") : NULL;
        if (!subscriptions)
            return; /* never looked up: the kernel caches nothing under it */
        twin = subscriptions->ino;
    }
    fs_notify_entry(twin, collection);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)mode;
    fs_context *fs = context_of(req);
    fs_node *dir = fs_node_get(parent);
    int error = !dir ? -ENOENT
                : dir->kind != FS_NODE_ROOT && dir->kind != FS_NODE_SUBSCRIPTIONS_DIR ? -EPERM
                : !collection_name_is_valid(name)                                    ? -EINVAL
                : dir->kind == FS_NODE_ROOT ? store_create_collection(fs->store, name)
                                            : fs_subscription_directory_create(fs, name);
    if (error) {
        fuse_reply_err(req, -error);
        return;
    }
    notify_collection_twin(dir, name);
    fs_node *node = fs_node_obtain(parent, name,
                                   dir->kind == FS_NODE_ROOT ? FS_NODE_COLLECTION
                                                             : FS_NODE_SUBSCRIPTION_DIR,
                                   name);
    if (!node)
        fuse_reply_err(req, ENOMEM);
    else
        reply_entry(req, node);
}

static int count_pending(fs_node *node, void *context)
{
    (void)node;
    (*(size_t *)context)++;
    return 0;
}

/* Whether the scratch area of a collection holds any file; removes the
 * (empty) area when asked. */
static int scratch_area_is_empty(fs_context *fs, const char *directory)
{
    int fd = openat(fs->scratch_directory_fd, directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : -errno;
    DIR *listing = fdopendir(fd);
    if (!listing) {
        close(fd);
        return -errno;
    }
    int empty = 1;
    struct dirent *entry;
    while ((entry = readdir(listing)))
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
            empty = 0;
    closedir(listing);
    return empty;
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fs_context *fs = context_of(req);
    fs_node *dir = fs_node_get(parent);
    fs_node *node = NULL;
    int error = dir ? find_child(fs, dir, name, &node) : -ENOENT;
    if (!error && node->kind != FS_NODE_COLLECTION && node->kind != FS_NODE_SUBSCRIPTION_DIR)
        error = node->kind == FS_NODE_CONTROL_DIR || node->kind == FS_NODE_SCHEMA_DIR ||
                        node->kind == FS_NODE_SUBSCRIPTIONS_DIR
                    ? -EBUSY
                    : -ENOTDIR;
    size_t pending = 0;
    if (!error)
        fs_nodes_visit_pending(node->ino, count_pending, &pending);
    if (!error && pending > 0)
        error = -ENOTEMPTY;
    char area[PATH_MAX] = "";
    if (!error) {
        scratch_directory(node, area, sizeof area);
        int empty = scratch_area_is_empty(fs, area);
        error = empty < 0 ? empty : empty == 0 ? -ENOTEMPTY : 0;
    }
    if (!error)
        error = node->kind == FS_NODE_COLLECTION ? store_drop_collection(fs->store, name)
                                                 : fs_subscription_directory_remove(fs, name);
    if (!error) {
        unlinkat(fs->scratch_directory_fd, area, AT_REMOVEDIR);
        notify_collection_twin(dir, name);
        fs_node_detach(node);
    }
    fuse_reply_err(req, -error);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fs_context *fs = context_of(req);
    fs_node *dir = fs_node_get(parent);
    fs_node *node = NULL;
    int error = dir ? find_child(fs, dir, name, &node) : -ENOENT;
    if (!error && node->kind == FS_NODE_SCRATCH) {
        char path[PATH_MAX];
        scratch_path(dir, name, path, sizeof path);
        error = unlinkat(fs->scratch_directory_fd, path, 0) == 0 ? 0 : -errno;
    } else if (!error && is_document_kind(node->kind)) {
        error = check_writable(fs, node);
        if (!error)
            error = delete_document(fs, node, false);
    } else if (!error) {
        error = node->kind == FS_NODE_COLLECTION ? -EISDIR : -EPERM;
    }
    if (!error)
        fs_node_detach(node);
    fuse_reply_err(req, -error);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    fs_context *fs = context_of(req);
    fs_node *dir = fs_node_get(parent);
    int error = !dir                                          ? -ENOENT
                : !is_object_directory(dir)                   ? -EPERM
                : kind_of_new_name(dir, name) != FS_NODE_SCRATCH ? -EPERM
                                                              : ensure_scratch_directory(fs, dir);
    if (!error) {
        char path[PATH_MAX];
        scratch_path(dir, name, path, sizeof path);
        error = symlinkat(link, fs->scratch_directory_fd, path) == 0 ? 0 : -errno;
    }
    fs_node *node = NULL;
    if (!error)
        node = fs_node_obtain(parent, name, FS_NODE_SCRATCH, dir->collection);
    if (error)
        fuse_reply_err(req, -error);
    else if (!node)
        fuse_reply_err(req, ENOMEM);
    else
        reply_entry(req, node);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    fs_context *fs = context_of(req);
    fs_node *node = fs_node_get(ino);
    const fs_node *dir = node ? fs_node_get(node->parent) : NULL;
    if (!node || node->kind != FS_NODE_SCRATCH || !dir) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    char path[PATH_MAX], target[PATH_MAX];
    scratch_path(dir, node->name, path, sizeof path);
    ssize_t length = readlinkat(fs->scratch_directory_fd, path, target, sizeof target - 1);
    if (length < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    target[length] = '\0';
    fuse_reply_readlink(req, target);
}

static int read_scratch_file(fs_context *fs, const char *path, char **text, size_t *size)
{
    int fd = openat(fs->scratch_directory_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ELOOP ? -EINVAL : -errno;
    fs_handle reader = {.fd = -1};
    int error = 0;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = -errno;
            break;
        }
        if (n == 0)
            break;
        error = handle_reserve(&reader, reader.size + (size_t)n + 1);
        if (error)
            break;
        memcpy(reader.data + reader.size, chunk, (size_t)n);
        reader.size += (size_t)n;
    }
    close(fd);
    if (error) {
        free(reader.data);
        return error;
    }
    *text = reader.data ? reader.data : strdup("");
    *size = reader.size;
    return *text ? 0 : -ENOMEM;
}

static int write_scratch_file(fs_context *fs, const fs_node *dir, const char *name,
                              const char *text, size_t size, bool no_replace)
{
    int error = ensure_scratch_directory(fs, dir);
    if (error)
        return error;
    char path[PATH_MAX];
    scratch_path(dir, name, path, sizeof path);
    int fd = openat(fs->scratch_directory_fd, path,
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (no_replace ? O_EXCL : 0), 0644);
    if (fd < 0)
        return -errno;
    ssize_t written = write(fd, text, size);
    error = written == (ssize_t)size ? 0 : written < 0 ? -errno : -EIO;
    close(fd);
    if (error)
        unlinkat(fs->scratch_directory_fd, path, 0);
    return error;
}

/* The text a document would have under a new object name: its stored
 * content with _id set to the id the new name stands for. */
static int text_with_new_id(const char *text, size_t size, const json_t *new_id,
                            char **out, size_t *out_size)
{
    ejson_error parse_error;
    json_t *document = ejson_parse(text, size, &parse_error);
    if (!document)
        return -EIO;
    int error = json_object_set(document, "_id", (json_t *)new_id) == 0 ? 0 : -ENOMEM;
    if (!error) {
        *out = ejson_format_pretty(document, out_size);
        error = *out ? 0 : -ENOMEM;
    }
    json_decref(document);
    return error;
}

/* The node a rename creates in place of target_name: a document node that
 * is committed below, with its _id taken from the name. */
static fs_node *prepare_target_document(fs_node *dir, const char *name, fs_node_kind kind)
{
    fs_node *target = calloc(1, sizeof *target);
    if (!target)
        return NULL;
    target->kind = kind;
    target->parent = dir->ino;
    target->name = strdup(name);
    target->collection = kind == FS_NODE_SCHEMA ? schema_collection_of(name)
                                                : (dir->collection ? strdup(dir->collection) : NULL);
    target->pending = true;
    if (kind == FS_NODE_OBJECT)
        object_name_classify(name, &target->id);
    return target;
}

static void free_target_document(fs_node *target)
{
    json_decref(target->id);
    free(target->name);
    free(target->collection);
    free(target);
}

/* After a successful rename into a document name, the moved node takes
 * the identity the target was committed under. */
static void adopt_document_identity(fs_node *node, fs_node *target)
{
    node->kind = target->kind;
    free(node->collection);
    node->collection = target->collection;
    target->collection = NULL;
    json_decref(node->id);
    node->id = json_incref(target->id);
}

static int rename_scratch_to_document(fs_context *fs, fs_node *dir, fs_node *source,
                                      const char *new_name, fs_node_kind target_kind)
{
    char source_path[PATH_MAX];
    scratch_path(dir, source->name, source_path, sizeof source_path);
    char *text = NULL;
    size_t size = 0;
    int error = read_scratch_file(fs, source_path, &text, &size);
    fs_node *target = error ? NULL : prepare_target_document(dir, new_name, target_kind);
    if (!error && !target)
        error = -ENOMEM;
    /* like mv on a disk, the object keeps the moved file's time (rsync -a sets it) */
    struct stat scratch_status;
    int64_t modified_ns = 0;
    if (!error && fstatat(fs->scratch_directory_fd, source_path, &scratch_status, 0) == 0)
        modified_ns = (int64_t)scratch_status.st_mtim.tv_sec * 1000000000 + scratch_status.st_mtim.tv_nsec;
    if (!error) {
        target->ino = source->ino;
        error = commit_document(fs, target, text, size, NULL, "rename", modified_ns);
    }
    if (!error) {
        unlinkat(fs->scratch_directory_fd, source_path, 0);
        adopt_document_identity(source, target);
        fs_node_set_pending(source, target->pending); /* an empty scratch file becomes a pending object */
        source->pending_modified_ns = now_ns();
    }
    if (target)
        free_target_document(target);
    free(text);
    return error;
}

static int rename_document_to_scratch(fs_context *fs, fs_node *dir, fs_node *source,
                                      const char *new_name)
{
    char *text = NULL;
    size_t size;
    store_object_info info;
    int error = load_document(fs, source, &text, &size, &info);
    if (!error)
        error = write_scratch_file(fs, dir, new_name, text, size, false);
    if (!error)
        error = delete_document(fs, source, true);
    if (!error) {
        source->kind = FS_NODE_SCRATCH;
        json_decref(source->id);
        source->id = NULL;
        fs_node_set_pending(source, false);
    }
    free(text);
    return error;
}

static int rename_document_to_document(fs_context *fs, fs_node *dir, fs_node *source,
                                       const char *new_name, fs_node_kind target_kind,
                                       fs_node *existing)
{
    char *text;
    size_t size;
    store_object_info info;
    int error = load_document(fs, source, &text, &size, &info);
    if (error)
        return error;
    fs_node *target = prepare_target_document(dir, new_name, target_kind);
    char *renamed = NULL;
    size_t renamed_size = size;
    if (!target)
        error = -ENOMEM;
    else if (target_kind == FS_NODE_OBJECT && size > 0 && target->id)
        error = text_with_new_id(text, size, target->id, &renamed, &renamed_size);
    if (!error) {
        target->ino = source->ino;
        /* a pending source replaces the target with nothing yet */
        if (source->pending && existing && is_document_kind(existing->kind))
            error = delete_document(fs, existing, false);
        else if (!source->pending)
            error = commit_document(fs, target, renamed ? renamed : text, renamed_size, source,
                                    "rename", info.modified_ns);
    }
    if (!error) {
        adopt_document_identity(source, target);
        fs_notify_inode(source->ino); /* its _id, so its size, changed under the kernel */
    }
    free(renamed);
    if (target)
        free_target_document(target);
    free(text);
    return error;
}

/*
 * Rename within one object directory.  The cases, by source and target name:
 *   scratch -> scratch    a plain rename of backing files
 *   scratch -> document   commit the scratch file's content (editors' and
 *                         sed's save); invalid content fails with EINVAL
 *                         and leaves the scratch file where it was
 *   document -> scratch   the document's content moves into a scratch file
 *                         and the document goes (vim's and emacs' backups)
 *   document -> document  a new _id (the content's _id follows the name)
 * The node keeps its inode number: the kernel moves its dentry.
 */
static int rename_in_directory(fs_context *fs, fs_node *dir, fs_node *source,
                               const char *new_name, unsigned int flags)
{
    fs_node *existing = NULL;
    int lookup = find_child(fs, dir, new_name, &existing);
    if (lookup == 0 && (flags & RENAME_NOREPLACE))
        return -EEXIST;
    if (lookup == 0 && existing == source)
        return 0;
    fs_node_kind target_kind = kind_of_new_name(dir, new_name);
    /* neither the name left nor the one replaced may be read-only, nor,
     * for a new name, the kind of document it makes */
    int error = check_writable(fs, source);
    if (!error)
        error = lookup == 0 ? check_writable(fs, existing)
                            : check_kind_writable(fs, target_kind, dir->collection, NULL);
    if (error)
        return error;
    if (source->kind == FS_NODE_SCRATCH && target_kind == FS_NODE_SCRATCH) {
        char source_path[PATH_MAX], target_path[PATH_MAX];
        scratch_path(dir, source->name, source_path, sizeof source_path);
        scratch_path(dir, new_name, target_path, sizeof target_path);
        error = renameat(fs->scratch_directory_fd, source_path, fs->scratch_directory_fd,
                         target_path) == 0 ? 0 : -errno;
    } else if (source->kind == FS_NODE_SCRATCH) {
        error = rename_scratch_to_document(fs, dir, source, new_name, target_kind);
    } else if (target_kind == FS_NODE_SCRATCH) {
        error = rename_document_to_scratch(fs, dir, source, new_name);
    } else {
        error = rename_document_to_document(fs, dir, source, new_name, target_kind, existing);
    }
    if (error)
        return error;
    fs_node_move(source, dir->ino, new_name);
    return 0;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t new_parent,
                      const char *new_name, unsigned int flags)
{
    fs_context *fs = context_of(req);
    fs_node *dir = fs_node_get(parent);
    fs_node *source = NULL;
    int error = dir ? find_child(fs, dir, name, &source) : -ENOENT;
    if (!error && (flags & RENAME_EXCHANGE))
        error = -EINVAL;
    else if (!error && (parent != new_parent || !is_object_directory(dir)))
        error = -EXDEV;
    else if (!error && strlen(new_name) > OBJECT_NAME_MAX)
        error = -ENAMETOOLONG;
    if (!error)
        error = rename_in_directory(fs, dir, source, new_name, flags);
    fuse_reply_err(req, -error);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char *new_name)
{
    (void)ino;
    (void)new_parent;
    (void)new_name;
    fuse_reply_err(req, EPERM);
}

/* ---------------------------------------------------------------------
 * Directories
 * --------------------------------------------------------------------- */

static int add_extra_name(fs_handle *handle, const char *name)
{
    if ((handle->extra_count & (handle->extra_count - 1)) == 0) {
        size_t capacity = handle->extra_count ? handle->extra_count * 2 : 8;
        char **names = realloc(handle->extra_names, capacity * sizeof *names);
        if (!names)
            return -ENOMEM;
        handle->extra_names = names;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    handle->extra_names[handle->extra_count++] = copy;
    return 0;
}

static int add_pending_name(fs_node *node, void *context)
{
    return add_extra_name(context, node->name) ? 1 : 0;
}

static int add_listed_name(const char *name, void *context)
{
    return add_extra_name(context, name) ? 1 : 0;
}

static int add_schema_name(const char *collection, void *context)
{
    char name[PATH_MAX];
    snprintf(name, sizeof name, "%s.json", collection);
    return add_extra_name(context, name) ? 1 : 0;
}

static int add_scratch_names(fs_context *fs, const fs_node *dir, fs_handle *handle)
{
    char directory[PATH_MAX];
    scratch_directory(dir, directory, sizeof directory);
    int fd = openat(fs->scratch_directory_fd, directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *listing = fdopendir(fd);
    if (!listing) {
        close(fd);
        return -errno;
    }
    int error = 0;
    struct dirent *entry;
    while (!error && (entry = readdir(listing)))
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
            error = add_extra_name(handle, entry->d_name);
    closedir(listing);
    return error;
}

/*
 * A directory handle lists small, in-memory name sets up front (scratch
 * files, pending objects, collections, schemas) and streams the stored
 * objects of a collection from the store, so a collection of any size is
 * listed without holding it in memory.
 */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_context *fs = context_of(req);
    fs_node *dir = fs_node_get(ino);
    fs_handle *handle = dir ? handle_new(fs, dir) : NULL;
    int error = !dir ? -ENOENT : !handle ? -ENOMEM : 0;
    if (!error) {
        switch (dir->kind) {
        case FS_NODE_ROOT:
            error = add_extra_name(handle, FS_CONTROL_DIR);
            if (!error && store_list_collections(fs->store, add_listed_name, handle) != 0)
                error = -ENOMEM;
            break;
        case FS_NODE_CONTROL_DIR:
            error = add_extra_name(handle, "schema");
            if (!error)
                error = add_extra_name(handle, "status");
            if (!error)
                error = add_extra_name(handle, "errors");
            /* only a synced store keeps subscriptions (store.h) */
            if (!error && fs->sync_status)
                error = add_extra_name(handle, "subscriptions");
            if (!error && fs->sync_status)
                error = add_extra_name(handle, "mark");
            break;
        case FS_NODE_SUBSCRIPTIONS_DIR:
            if (fs_subscription_directories_list(fs, add_listed_name, handle) != 0)
                error = -ENOMEM;
            break;
        case FS_NODE_SCHEMA_DIR:
        case FS_NODE_SUBSCRIPTION_DIR:
            if (dir->kind == FS_NODE_SCHEMA_DIR
                    ? store_list_schemas(fs->store, add_schema_name, handle) != 0
                    : fs_subscriptions_list(fs, dir->collection, add_listed_name, handle) != 0)
                error = -ENOMEM;
            /* fall through */
        case FS_NODE_COLLECTION:
            if (!error && fs_nodes_visit_pending(dir->ino, add_pending_name, handle) != 0)
                error = -ENOMEM;
            if (!error)
                error = add_scratch_names(fs, dir, handle);
            break;
        default:
            error = -ENOTDIR;
        }
    }
    if (error) {
        if (handle)
            handle_free(handle);
        fuse_reply_err(req, -error);
        return;
    }
    /* The kernel may keep a collection's listing: it drops it by itself on
     * every create, unlink and rename through the mount, and whoever else
     * changes a collection (the sync thread) must invalidate its inode. */
    if (dir->kind == FS_NODE_COLLECTION)
        fi->cache_readdir = fi->keep_cache = 1;
    fi->fh = (uintptr_t)handle;
    if (fuse_reply_open(req, fi) != 0)
        handle_free(handle);
}

typedef struct directory_page {
    fuse_req_t req;
    fs_context *fs;
    fs_handle *handle;
    bool plus;
    char *buffer;
    size_t size;
    size_t used;
    uint64_t ordinal; /* objects: index of the next one */
    bool full;
    bool may_hold_read_only; /* objects: some object of the store is read-only */
} directory_page;

/* Add one entry; false when it does not fit (then nothing was added). */
static bool page_add(directory_page *page, fs_node *node, const char *name, const struct stat *st,
                     double attr_timeout, off_t next_cookie)
{
    size_t room = page->size - page->used;
    size_t needed;
    if (page->plus) {
        struct fuse_entry_param entry = {.ino = node ? node->ino : 0, .attr = *st,
                                         .attr_timeout = attr_timeout};
        if (node)
            entry.entry_timeout = FS_STABLE_TIMEOUT_SECONDS;
        needed = fuse_add_direntry_plus(page->req, page->buffer + page->used, room, name, &entry,
                                        next_cookie);
    } else {
        needed = fuse_add_direntry(page->req, page->buffer + page->used, room, name, st,
                                   next_cookie);
    }
    if (needed > room) {
        page->full = true;
        return false;
    }
    page->used += needed;
    if (page->plus && node)
        node->lookups++;
    return true;
}

static void page_add_named(directory_page *page, const char *name, off_t next_cookie)
{
    fs_node *dir = page->handle->node;
    struct stat st = {0};
    double timeout = 0;
    fs_node *node = NULL;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        st.st_ino = dir->ino;
        st.st_mode = S_IFDIR;
        page_add(page, NULL, name, &st, 0, next_cookie);
        return;
    }
    if (find_child(page->fs, dir, name, &node) != 0 ||
        node_attributes(page->fs, node, NULL, &st, &timeout) != 0)
        return; /* gone since opendir: skip it */
    page_add(page, node, name, &st, timeout, next_cookie);
}

static int page_add_object(const store_object_view *object, void *context)
{
    directory_page *page = context;
    char name[OBJECT_NAME_MAX + 1];
    if (object_name_from_id(object->id, name) != 0) {
        page->ordinal++;
        return 0;
    }
    fs_node *dir = page->handle->node;
    fs_node *node = fs_node_obtain(dir->ino, name, FS_NODE_OBJECT, dir->collection);
    if (!node)
        return -ENOMEM;
    if (!node->id)
        node->id = json_incref((json_t *)object->id);
    struct stat st = {.st_ino = node->ino};
    fill_file(page->fs, &st, page->may_hold_read_only ? document_mode(page->fs, node) : 0644,
              object->info.size, object->info.modified_ns);
    st.st_ino = node->ino;
    if (!page_add(page, node, name, &st, FS_STABLE_TIMEOUT_SECONDS,
                  READDIR_OBJECTS_BASE + (off_t)page->ordinal + 1))
        return 1;
    node->kernel_attr_version = object->info.version;
    page->ordinal++;
    json_decref(page->handle->resume_id);
    page->handle->resume_id = json_incref((json_t *)object->id);
    page->handle->resume_ordinal = page->ordinal;
    return 0;
}

typedef struct skip_walk {
    uint64_t remaining;
    json_t *last;
} skip_walk;

static int skip_objects(const store_object_view *object, void *context)
{
    skip_walk *walk = context;
    if (walk->remaining == 0)
        return 1;
    walk->remaining--;
    json_decref(walk->last);
    walk->last = json_incref((json_t *)object->id);
    return 0;
}

/* Continue the object walk at ordinal: directly after the last entry this
 * handle listed (the common case), or by counting from the start after a
 * seekdir elsewhere. */
static int page_add_objects(directory_page *page, uint64_t ordinal)
{
    fs_handle *handle = page->handle;
    const char *collection = handle->node->collection;
    if (ordinal != 0 && !(handle->resume_id && handle->resume_ordinal == ordinal)) {
        skip_walk walk = {.remaining = ordinal};
        int error = store_scan_objects(page->fs->store, collection, NULL, false, skip_objects, &walk);
        json_decref(handle->resume_id);
        handle->resume_id = walk.last;
        handle->resume_ordinal = ordinal;
        if (error < 0)
            return error;
        if (walk.remaining > 0)
            return 0;
    }
    page->ordinal = ordinal;
    /* asking the store object by object only when there is something to find */
    store_sync_progress progress;
    page->may_hold_read_only = page->fs->sync_status &&
                               (store_get_sync_progress(page->fs->store, &progress) != 0 ||
                                progress.read_only_objects > 0);
    json_t *start = ordinal == 0 ? NULL : json_incref(handle->resume_id);
    int error = store_scan_objects(page->fs->store, collection, start, start != NULL,
                                   page_add_object, page);
    json_decref(start);
    return error < 0 ? error : 0;
}

static void read_directory(fuse_req_t req, size_t size, off_t offset, struct fuse_file_info *fi,
                           bool plus)
{
    fs_handle *handle = handle_of(fi);
    directory_page page = {.req = req, .fs = context_of(req), .handle = handle, .plus = plus,
                           .size = size, .buffer = malloc(size)};
    if (!page.buffer) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int error = 0;
    if (offset < READDIR_OBJECTS_BASE) {
        size_t fixed = 2 + handle->extra_count;
        for (size_t index = (size_t)offset; index < fixed && !page.full; index++) {
            const char *name = index == 0 ? "." : index == 1 ? ".." : handle->extra_names[index - 2];
            page_add_named(&page, name, (off_t)index + 1);
        }
        offset = READDIR_OBJECTS_BASE;
    }
    if (!page.full && handle->node->kind == FS_NODE_COLLECTION)
        error = page_add_objects(&page, (uint64_t)(offset - READDIR_OBJECTS_BASE));
    if (error && page.used == 0)
        fuse_reply_err(req, -error);
    else
        fuse_reply_buf(req, page.buffer, page.used);
    free(page.buffer);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                       struct fuse_file_info *fi)
{
    (void)ino;
    read_directory(req, size, offset, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                           struct fuse_file_info *fi)
{
    (void)ino;
    read_directory(req, size, offset, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    handle_free(handle_of(fi));
    fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    (void)fi;
    int error = store_sync(context_of(req)->store);
    fuse_reply_err(req, -error);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    fs_context *fs = context_of(req);
    struct statvfs st;
    if (statvfs(fs->data_directory, &st) != 0) {
        fuse_reply_err(req, errno);
        return;
    }
    st.f_namemax = OBJECT_NAME_MAX;
    fuse_reply_statfs(req, &st);
}

static void op_init(void *userdata, struct fuse_conn_info *connection)
{
    (void)userdata;
    /* The kernel checks permissions itself (default_permissions); we want
     * readdirplus so `ls -l` costs one request per page, not per file. */
    if (connection->capable & FUSE_CAP_READDIRPLUS)
        connection->want |= FUSE_CAP_READDIRPLUS;
    connection->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    if (connection->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        connection->want |= FUSE_CAP_ATOMIC_O_TRUNC;
}

const struct fuse_lowlevel_ops fs_operations = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .access = op_access,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .create = op_create,
};

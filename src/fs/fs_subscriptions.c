/*
 * fs_subscriptions.c — subscriptions as files:
 * .realmfs/subscriptions/<Collection>/<name> holds one RQL predicate.
 *
 * A subscription file is a document like an object (fs_ops.c keeps the
 * drafts and commits them at close): its stored form is the predicate
 * without surrounding white space, and the file reads as that predicate and
 * a newline, so `echo 'done == false' > file` reads back as written.  A
 * predicate that does not parse (against the collection's schema, when the
 * mount has one) is refused, and the subscription keeps its previous one.
 *
 * The directories are the mount's collections and every collection that has
 * a subscription: mkdir creates the collection (the place its objects will
 * be downloaded to), rmdir removes a collection that holds neither
 * subscriptions nor objects.
 *
 * Every change of the set wakes the sync thread, which sends the new set.
 * Only synced mounts have subscriptions (a store keeps them with its sync
 * state), so fs_context.sync_status is never NULL here.  Runs on the FUSE
 * thread, like the handlers that call it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "realmfs/rql.h"
#include "sync_status.h"

#define QUERY_WHITE_SPACE " \t\r\n"

bool fs_subscription_name_is_scratch(const char *name)
{
    size_t length = strlen(name);
    if (length == 0 || name[0] == '.' || name[0] == '#' || name[length - 1] == '~')
        return true;
    /* a name is sent to the server as a JSON string, so it must be UTF-8 */
    json_t *as_string = json_string(name);
    json_decref(as_string);
    return as_string == NULL;
}

/* ---------------------------------------------------------------------
 * Directories
 * --------------------------------------------------------------------- */

typedef struct name_list {
    char **names;
    size_t count;
    size_t capacity;
} name_list;

static void name_list_clear(name_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->names[i]);
    free(list->names);
    *list = (name_list){0};
}

/* Append name unless it is the last one (the sources list in order). */
static int name_list_add(name_list *list, const char *name)
{
    if (list->count > 0 && strcmp(list->names[list->count - 1], name) == 0)
        return 0;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        char **names = realloc(list->names, capacity * sizeof *names);
        if (!names)
            return -ENOMEM;
        list->names = names;
        list->capacity = capacity;
    }
    if (!(list->names[list->count] = strdup(name)))
        return -ENOMEM;
    list->count++;
    return 0;
}

static int add_collection(const char *collection, void *context)
{
    return name_list_add(context, collection);
}

static int add_subscription_collection(const char *collection, const char *name,
                                       const char *query, void *context)
{
    (void)name;
    (void)query;
    return name_list_add(context, collection);
}

static int compare_names(const void *left, const void *right)
{
    return strcmp(*(char *const *)left, *(char *const *)right);
}

int fs_subscription_directories_list(fs_context *fs,
                                     int (*visit)(const char *collection, void *context),
                                     void *context)
{
    name_list list = {0};
    int result = store_list_collections(fs->store, add_collection, &list);
    if (result == 0)
        result = store_list_subscriptions(fs->store, add_subscription_collection, &list);
    if (result == 0 && list.count > 0) {
        qsort(list.names, list.count, sizeof *list.names, compare_names);
        for (size_t i = 0; result == 0 && i < list.count; i++)
            if (i == 0 || strcmp(list.names[i], list.names[i - 1]) != 0)
                result = visit(list.names[i], context);
    }
    name_list_clear(&list);
    return result;
}

typedef struct collection_search {
    const char *collection;
    bool found;
} collection_search;

static int find_subscription_collection(const char *collection, const char *name,
                                        const char *query, void *context)
{
    (void)name;
    (void)query;
    collection_search *search = context;
    search->found = strcmp(collection, search->collection) == 0;
    return search->found;
}

/* 1 when the collection has a subscription, 0 when not, or -errno. */
static int has_subscriptions(fs_context *fs, const char *collection)
{
    collection_search search = {.collection = collection};
    int result = store_list_subscriptions(fs->store, find_subscription_collection, &search);
    return result < 0 ? result : search.found;
}

int fs_subscription_directory_exists(fs_context *fs, const char *collection)
{
    int exists = store_has_collection(fs->store, collection);
    return exists == 0 ? has_subscriptions(fs, collection) : exists;
}

int fs_subscription_directory_create(fs_context *fs, const char *collection)
{
    int exists = fs_subscription_directory_exists(fs, collection);
    if (exists != 0)
        return exists < 0 ? exists : -EEXIST;
    return store_create_collection(fs->store, collection);
}

int fs_subscription_directory_remove(fs_context *fs, const char *collection)
{
    int subscribed = has_subscriptions(fs, collection);
    if (subscribed != 0)
        return subscribed < 0 ? subscribed : -ENOTEMPTY;
    int error = store_drop_collection(fs->store, collection);
    return error == -ENOENT ? 0 : error;
}

typedef struct name_walk {
    const char *collection;
    int (*visit)(const char *name, void *context);
    void *context;
} name_walk;

static int visit_name_in_collection(const char *collection, const char *name, const char *query,
                                    void *context)
{
    (void)query;
    name_walk *walk = context;
    return strcmp(collection, walk->collection) == 0 ? walk->visit(name, walk->context) : 0;
}

int fs_subscriptions_list(fs_context *fs, const char *collection,
                          int (*visit)(const char *name, void *context), void *context)
{
    name_walk walk = {.collection = collection, .visit = visit, .context = context};
    return store_list_subscriptions(fs->store, visit_name_in_collection, &walk);
}

/* ---------------------------------------------------------------------
 * Files
 * --------------------------------------------------------------------- */

int fs_subscription_load(fs_context *fs, const char *collection, const char *name, char **text,
                         size_t *size)
{
    char *query;
    int error = store_get_subscription(fs->store, collection, name, &query);
    if (error)
        return error;
    int length = asprintf(text, "%s\n", query);
    free(query);
    if (length < 0)
        return -ENOMEM;
    *size = (size_t)length;
    return 0;
}

/* Parse text (NUL-terminated) as a predicate on collection, so that the
 * positions rql_parse reports are positions in the file. */
static int check_query(fs_context *fs, const char *collection, const char *text, char *reason,
                       size_t reason_size)
{
    char *schema_text = NULL;
    json_t *schema = NULL;
    if (store_get_schema(fs->store, collection, &schema_text, NULL) == 0) {
        schema = json_loads(schema_text, 0, NULL);
        free(schema_text);
        if (!schema) {
            snprintf(reason, reason_size, "the collection's schema cannot be read");
            return -EIO;
        }
    }
    rql_error parse_error;
    rql_query *query = rql_parse(text, NULL, schema, &parse_error);
    json_decref(schema);
    if (!query) {
        snprintf(reason, reason_size, "%s", parse_error.message);
        return -EINVAL;
    }
    rql_free(query);
    return 0;
}

int fs_subscription_commit(fs_context *fs, const fs_node *node, const char *text, size_t size,
                           const fs_node *renamed_from, char *reason, size_t reason_size)
{
    if (memchr(text, '\0', size)) {
        snprintf(reason, reason_size, "a subscription is a text: the file holds a NUL byte");
        return -EINVAL;
    }
    char *file_text = strndup(text, size);
    if (!file_text)
        return -ENOMEM;
    char *query = file_text + strspn(file_text, QUERY_WHITE_SPACE);
    size_t length = strlen(query);
    while (length > 0 && strchr(QUERY_WHITE_SPACE, query[length - 1]))
        length--;
    int error;
    if (length == 0) {
        snprintf(reason, reason_size,
                 "an empty file is not a subscription; delete the file to remove it");
        error = -EINVAL;
    } else {
        error = check_query(fs, node->collection, file_text, reason, reason_size);
    }
    query[length] = '\0';
    if (!error && renamed_from && !renamed_from->pending)
        error = store_rename_subscription(fs->store, node->collection, renamed_from->name,
                                          node->name);
    if (!error)
        error = store_put_subscription(fs->store, node->collection, node->name, query);
    free(file_text);
    if (!error)
        sync_status_wake(fs->sync_status);
    return error;
}

int fs_subscription_delete(fs_context *fs, const fs_node *node)
{
    int error = store_delete_subscription(fs->store, node->collection, node->name);
    if (!error)
        sync_status_wake(fs->sync_status);
    return error;
}

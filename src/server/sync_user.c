/*
 * sync_user.c — a connection's user as the rules see it (sync_user.h).
 */
#include "sync_user.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/ejson.h"
#include "realmfs/value.h"

struct sync_user {
    size_t references;
    char id[AUTH_ID_SIZE];
    char type[sizeof ((auth_user *)0)->type];
    json_t *data;
    json_t *custom_data; /* NULL: none */
    filter_user filter;  /* points into the members above */
};

sync_user *sync_user_ref(sync_user *user)
{
    user->references++;
    return user;
}

void sync_user_unref(sync_user *user)
{
    if (user == NULL || --user->references > 0)
        return;
    json_decref(user->data);
    json_decref(user->custom_data);
    free(user);
}

const filter_user *sync_user_filter(const sync_user *user)
{
    return &user->filter;
}

bool sync_user_is_custom_data_collection(const app_config *app, const char *collection)
{
    const app_custom_user_data *custom = app_config_custom_user_data(app);
    return custom != NULL && strcmp(custom->collection, collection) == 0;
}

/* A scan for the document whose field holds the user id. */
typedef struct sync_user_search {
    const char *field;
    const json_t *user_id;
    json_t *found;
    bool damaged; /* a stored document does not parse */
} sync_user_search;

static int sync_user_visit(const sync_store_document_view *view, void *context)
{
    sync_user_search *search = context;
    ejson_error error;
    json_t *document = ejson_parse(view->text, view->size, &error);
    if (document == NULL) {
        search->damaged = true;
        return 1;
    }
    json_t *value = value_get_path(document, search->field);
    if (value != NULL && value_equal(value, search->user_id)) {
        search->found = document;
        return 1;
    }
    json_decref(document);
    return 0;
}

static int sync_user_scan_for(sync_store *store, const char *collection, const char *field,
                              const json_t *user_id, json_t **document, const char **problem)
{
    sync_store_snapshot *snapshot;
    int result = sync_store_snapshot_begin(store, &snapshot);
    if (result != 0)
        return result;
    sync_user_search search = {.field = field, .user_id = user_id};
    result = sync_store_snapshot_scan(snapshot, collection, NULL, sync_user_visit, &search);
    sync_store_snapshot_end(snapshot);
    if (search.damaged) {
        *problem = "a stored document does not parse";
        return -EIO;
    }
    if (result < 0)
        return result;
    *document = search.found;
    return 0;
}

/* The document with _id the user id, as a string or else as an
 * ObjectId; *document NULL when neither exists. */
static int sync_user_get_by_id(sync_store *store, const char *collection, const json_t *user_id,
                               json_t **document)
{
    int result = sync_store_get_document(store, collection, user_id, document);
    if (result != -ENOENT)
        return result;
    json_t *raw = json_pack("{s:O}", "$oid", user_id);
    ejson_error error;
    json_t *object_id = raw != NULL ? ejson_normalize(raw, &error) : NULL;
    json_decref(raw);
    if (object_id == NULL)
        return 0; /* not 24 hex digits: no ObjectId form to try */
    result = sync_store_get_document(store, collection, object_id, document);
    json_decref(object_id);
    return result == -ENOENT ? 0 : result;
}

/* *problem is set for failures the store's message does not explain. */
static int sync_user_read_custom_data(const app_config *app, sync_store *store,
                                      const char *user_id, json_t **document,
                                      const char **problem)
{
    *document = NULL;
    const app_custom_user_data *custom = app_config_custom_user_data(app);
    if (custom == NULL)
        return 0;
    json_t *id = json_string(user_id);
    if (id == NULL)
        return -ENOMEM;
    int result = strcmp(custom->user_id_field, "_id") == 0
                     ? sync_user_get_by_id(store, custom->collection, id, document)
                     : sync_user_scan_for(store, custom->collection, custom->user_id_field, id,
                                          document, problem);
    json_decref(id);
    return result;
}

int sync_user_new(const app_config *app, sync_store *store, const auth_user *user,
                  sync_user **out, char *message, size_t message_size)
{
    *out = NULL;
    sync_user *made = calloc(1, sizeof *made);
    if (made == NULL) {
        snprintf(message, message_size, "out of memory");
        return -ENOMEM;
    }
    made->references = 1;
    snprintf(made->id, sizeof made->id, "%s", user->id);
    snprintf(made->type, sizeof made->type, "%s", user->type);
    made->data = user->email != NULL ? json_pack("{s:s}", "email", user->email) : json_object();
    if (made->data == NULL) {
        sync_user_unref(made);
        snprintf(message, message_size, "out of memory");
        return -ENOMEM;
    }
    const char *problem = NULL;
    int result = sync_user_read_custom_data(app, store, made->id, &made->custom_data, &problem);
    if (result == -ENOMEM)
        problem = "out of memory";
    if (result != 0) {
        snprintf(message, message_size, "reading the custom user data of %s in %s: %s", made->id,
                 app_config_custom_user_data(app)->collection,
                 problem != NULL ? problem : sync_store_last_error());
        sync_user_unref(made);
        return result;
    }
    made->filter = (filter_user){
        .id = made->id, .type = made->type, .data = made->data, .custom_data = made->custom_data};
    *out = made;
    return 0;
}

static bool sync_user_same_json(const json_t *a, const json_t *b)
{
    return a == NULL || b == NULL ? a == b : json_equal(a, b);
}

bool sync_user_equal(const sync_user *a, const sync_user *b)
{
    return strcmp(a->id, b->id) == 0 && strcmp(a->type, b->type) == 0 &&
           sync_user_same_json(a->data, b->data) &&
           sync_user_same_json(a->custom_data, b->custom_data);
}

json_t *sync_user_json(const sync_user *user)
{
    return json_pack("{s:s, s:s, s:O, s:O}", "id", user->id, "type", user->type, "data",
                     user->data, "custom_data",
                     user->custom_data != NULL ? user->custom_data : json_null());
}

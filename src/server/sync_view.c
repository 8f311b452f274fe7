/*
 * sync_view.c — a session's parsed subscription set, its user's roles,
 * and the tests a document passes before it reaches a client
 * (sync_view.h).
 */
#include "sync_view.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/rql.h"
#include "realmfs/schema.h"

/* The subscriptions of one collection, and the user's role there. */
typedef struct sync_view_collection {
    char *name;
    rql_query **queries;
    size_t query_count;
    const rules_role *role;
} sync_view_collection;

struct sync_view {
    size_t references;
    const app_config *app;
    const rules *rules; /* NULL: no permissions */
    sync_user *user;    /* NULL with rules */
    json_t *subscriptions;
    sync_view_collection *collections; /* sorted by name */
    size_t collection_count;
};

json_t *sync_view_subscriptions_json(const protocol_query_body *query)
{
    json_t *subscriptions = json_object();
    for (size_t index = 0; subscriptions != NULL && index < query->subscription_count; index++) {
        const protocol_subscription *subscription = &query->subscriptions[index];
        json_t *list = json_object_get(subscriptions, subscription->collection);
        if (list == NULL) {
            list = json_array();
            if (json_object_set_new(subscriptions, subscription->collection, list) != 0)
                goto fail;
        }
        if (json_array_append_new(list, json_pack("{s:s, s:s}", "name", subscription->name,
                                                  "query", subscription->query)) != 0)
            goto fail;
    }
    return subscriptions;
fail:
    json_decref(subscriptions);
    return NULL;
}

static void sync_view_free(sync_view *view)
{
    for (size_t index = 0; index < view->collection_count; index++) {
        sync_view_collection *collection = &view->collections[index];
        for (size_t query = 0; query < collection->query_count; query++)
            rql_free(collection->queries[query]);
        free(collection->queries);
        free(collection->name);
    }
    free(view->collections);
    json_decref(view->subscriptions);
    sync_user_unref(view->user);
    free(view);
}

static int sync_view_refuse(char *message, size_t message_size, const char *collection,
                            const char *name, const char *format, ...)
{
    int written = snprintf(message, message_size, "%s: %s: ", collection, name);
    if (written >= 0 && (size_t)written < message_size) {
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(message + written, message_size - (size_t)written, format, arguments);
        va_end(arguments);
    }
    return -EINVAL;
}

typedef struct sync_view_field_check {
    const app_config *app;
    const char *collection;
    const char *refused_path; /* the first path that is not queryable */
} sync_view_field_check;

/* Queryability is decided by a path's top-level field.  -ENOMEM, or 1 to
 * stop at a path that is not queryable. */
static int sync_view_check_field(const char *path, void *context)
{
    sync_view_field_check *check = context;
    char *field = strndup(path, strcspn(path, "."));
    if (field == NULL)
        return -ENOMEM;
    bool queryable = app_config_field_is_queryable(check->app, check->collection, field);
    free(field);
    if (queryable)
        return 0;
    check->refused_path = path;
    return 1;
}

static bool sync_view_schema_names(const json_t *schema, const char *field)
{
    return json_object_get(json_object_get(schema, "properties"), field) != NULL;
}

/* Parse one subscription's query and enforce the Flexible Sync rules. */
static int sync_view_parse_query(const app_config *app, const char *collection,
                                 const json_t *subscription, rql_query **out, char *message,
                                 size_t message_size)
{
    const char *name = json_string_value(json_object_get(subscription, "name"));
    const char *text = json_string_value(json_object_get(subscription, "query"));
    if (name == NULL || text == NULL)
        return sync_view_refuse(message, message_size, collection, name ? name : "?",
                                "a subscription needs a name and a query");
    const app_collection *described = app_config_find_collection(app, collection);
    if (described == NULL && !app_config_sync(app)->development_mode)
        return sync_view_refuse(message, message_size, collection, name,
                                "the app has no collection \"%s\"", collection);
    const json_t *schema = described ? described->schema : NULL;
    rql_error error;
    rql_query *query = rql_parse(text, NULL, schema, &error);
    if (query == NULL)
        return sync_view_refuse(message, message_size, collection, name, "%s", error.message);
    sync_view_field_check check = {.app = app, .collection = collection};
    int result = rql_visit_fields(query, sync_view_check_field, &check);
    if (result != 0) {
        if (result > 0)
            result = sync_view_refuse(message, message_size, collection, name,
                                      "%s is not a queryable field", check.refused_path);
        rql_free(query); /* it owns refused_path */
        return result;
    }
    const char *indexed = app_config_indexed_queryable_field(app);
    if (indexed != NULL && sync_view_schema_names(schema, indexed) &&
        !rql_requires_field_equality(query, indexed)) {
        rql_free(query);
        return sync_view_refuse(message, message_size, collection, name,
                                "the query must test %s, the indexed queryable field, with == or "
                                "IN at its top level (joined with AND)",
                                indexed);
    }
    *out = query;
    return 0;
}

const rules_role *sync_view_role(const sync_view *view, const char *collection)
{
    if (view->rules == NULL)
        return NULL;
    return rules_select_role(view->rules, collection, sync_user_filter(view->user));
}

static int sync_view_add_collection(sync_view *view, const app_config *app, const char *name,
                                    const json_t *subscriptions, char *message,
                                    size_t message_size)
{
    sync_view_collection *collection = &view->collections[view->collection_count];
    size_t count = json_array_size(subscriptions);
    if (count == 0)
        return sync_view_refuse(message, message_size, name, "(none)",
                                "a collection needs a non-empty array of subscriptions");
    if (name[0] == '$')
        return sync_view_refuse(message, message_size, name, "(all)",
                                "a collection name never starts with $");
    collection->name = strdup(name);
    collection->queries = calloc(count, sizeof *collection->queries);
    view->collection_count++;
    if (collection->name == NULL || collection->queries == NULL)
        return -ENOMEM;
    collection->role = sync_view_role(view, name);
    for (size_t index = 0; index < count; index++) {
        int result = sync_view_parse_query(app, name, json_array_get(subscriptions, index),
                                           &collection->queries[index], message, message_size);
        if (result != 0)
            return result;
        collection->query_count++;
    }
    return 0;
}

static int sync_view_compare_collections(const void *a, const void *b)
{
    return strcmp(((const sync_view_collection *)a)->name,
                  ((const sync_view_collection *)b)->name);
}

int sync_view_new(const app_config *app, const rules *rules, sync_user *user,
                  const json_t *subscriptions, sync_view **out, char *message,
                  size_t message_size)
{
    *out = NULL;
    if (message_size > 0)
        message[0] = '\0';
    sync_view *view = calloc(1, sizeof *view);
    size_t count = json_object_size(subscriptions);
    if (view == NULL)
        return -ENOMEM;
    view->references = 1;
    view->app = app;
    view->rules = rules;
    view->user = user != NULL ? sync_user_ref(user) : NULL;
    view->subscriptions = json_incref((json_t *)subscriptions);
    view->collections = calloc(count ? count : 1, sizeof *view->collections);
    if (view->collections == NULL) {
        sync_view_free(view);
        return -ENOMEM;
    }
    const char *name;
    const json_t *list;
    json_object_foreach((json_t *)subscriptions, name, list) {
        int result = sync_view_add_collection(view, app, name, list, message, message_size);
        if (result != 0) {
            if (result == -ENOMEM)
                snprintf(message, message_size, "out of memory");
            sync_view_free(view);
            return result;
        }
    }
    qsort(view->collections, view->collection_count, sizeof *view->collections,
          sync_view_compare_collections);
    *out = view;
    return 0;
}

sync_view *sync_view_ref(sync_view *view)
{
    view->references++;
    return view;
}

void sync_view_unref(sync_view *view)
{
    if (view != NULL && --view->references == 0)
        sync_view_free(view);
}

size_t sync_view_collection_count(const sync_view *view)
{
    return view->collection_count;
}

const char *sync_view_collection_at(const sync_view *view, size_t index)
{
    return view->collections[index].name;
}

static const sync_view_collection *sync_view_find(const sync_view *view, const char *name)
{
    sync_view_collection key = {.name = (char *)name};
    return bsearch(&key, view->collections, view->collection_count, sizeof *view->collections,
                   sync_view_compare_collections);
}

bool sync_view_has_collection(const sync_view *view, const char *collection)
{
    return sync_view_find(view, collection) != NULL;
}

int sync_view_prepare_own_document(const app_config *app, const char *collection,
                                   json_t *document, json_t **prepared)
{
    *prepared = NULL;
    const app_collection *described = app_config_find_collection(app, collection);
    if (described != NULL && described->schema != NULL) {
        int result = schema_strip_unknown_fields(described->schema, document);
        if (result >= 0)
            result = schema_validate_document(described->schema, document, NULL, 0);
        if (result != 0)
            return result == -ENOMEM ? -ENOMEM : 0;
    }
    *prepared = json_incref(document);
    return 0;
}

int sync_view_prepare_document(const app_config *app, const char *collection,
                               const json_t *document, json_t **prepared)
{
    *prepared = NULL;
    const app_collection *described = app_config_find_collection(app, collection);
    if (described == NULL || described->schema == NULL) {
        *prepared = json_incref((json_t *)document);
        return 0;
    }
    json_t *copy = json_deep_copy(document);
    if (copy == NULL)
        return -ENOMEM;
    int result = sync_view_prepare_own_document(app, collection, copy, prepared);
    json_decref(copy);
    return result;
}

const json_t *sync_view_subscriptions(const sync_view *view)
{
    return view->subscriptions;
}

sync_user *sync_view_user(const sync_view *view)
{
    return view->user;
}

bool sync_view_has_permissions(const sync_view *view)
{
    return view->rules != NULL;
}

static bool sync_view_matches(const sync_view_collection *subscribed, const json_t *prepared)
{
    for (size_t index = 0; index < subscribed->query_count; index++)
        if (rql_matches(subscribed->queries[index], prepared))
            return true;
    return false;
}

void sync_view_examine(const sync_view *view, const char *collection, const json_t *prepared,
                       sync_view_object *object)
{
    *object = (sync_view_object){0};
    const sync_view_collection *subscribed = prepared ? sync_view_find(view, collection) : NULL;
    if (subscribed == NULL || !sync_view_matches(subscribed, prepared))
        return;
    if (view->rules == NULL) {
        object->visible = object->writable = object->all_fields_readable = true;
        return;
    }
    if (subscribed->role == NULL)
        return;
    object->role = subscribed->role;
    object->access =
        rules_evaluate_document(subscribed->role, prepared, sync_user_filter(view->user));
    object->visible = object->access.readable;
    object->writable = object->access.readable && object->access.writable;
    object->all_fields_readable = object->access.all_fields_readable;
}

bool sync_view_contains(const sync_view *view, const char *collection, const json_t *prepared)
{
    sync_view_object object;
    sync_view_examine(view, collection, prepared, &object);
    return object.visible;
}

int sync_view_readable_document(const sync_view *view, const sync_view_object *object,
                                const json_t *prepared, json_t **readable)
{
    if (object->all_fields_readable) {
        *readable = json_incref((json_t *)prepared);
        return 0;
    }
    *readable = json_deep_copy(prepared);
    int result = *readable != NULL ? rules_strip_unreadable_fields(object->role, &object->access,
                                                                   *readable,
                                                                   sync_user_filter(view->user))
                                   : -ENOMEM;
    if (result != 0) {
        json_decref(*readable);
        *readable = NULL;
    }
    return result;
}

/* The rules a collection's roles come from: its own rules.json when it
 * has roles there, else the default rule (rules.h). */
static const json_t *sync_view_rules_source(const sync_view *view, const char *collection)
{
    const app_collection *described = app_config_find_collection(view->app, collection);
    if (described != NULL && described->rules != NULL &&
        json_array_size(json_object_get(described->rules, "roles")) > 0)
        return described->rules;
    return app_config_default_rule(view->app);
}

json_t *sync_view_access_json(const sync_view *view)
{
    if (view->rules == NULL)
        return json_null();
    json_t *roles = json_object();
    for (size_t index = 0; roles != NULL && index < view->collection_count; index++) {
        const sync_view_collection *collection = &view->collections[index];
        const json_t *source = sync_view_rules_source(view, collection->name);
        json_t *entry = json_pack(
            "{s:o, s:O}", "name",
            collection->role ? json_string(rules_role_name(collection->role)) : json_null(),
            "rules", source != NULL ? source : json_null());
        if (json_object_set_new(roles, collection->name, entry) != 0) {
            json_decref(roles);
            roles = NULL;
        }
    }
    return roles ? json_pack("{s:o, s:o}", "user", sync_user_json(view->user), "roles", roles)
                 : NULL;
}
